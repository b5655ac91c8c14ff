//! Letting devices in: serving an invite's redemption, and keeping what a
//! welcome hands over.

use roundtable_core::Redemption;

use super::*;

impl Machine {
    /// A device asks to be let in with an invite (its own key proved
    /// itself in the connection's handshake, so `peer` is who it is).
    pub fn serve_join(
        &mut self,
        req: JoinRequest,
        peer: DeviceId,
        now: Now,
        rng: &mut impl RngCore,
    ) -> JoinReply {
        let refuse = |reason: String| JoinReply::Refused { reason };
        let circle = CircleId::from_bytes(req.circle);
        if !self.circles.contains_key(&circle) {
            // The same words as for an invite this circle does not know, so
            // nobody learns from asking which circles this device holds.
            return refuse(roundtable_core::UNKNOWN_INVITE.into());
        }
        let invite_id = EntityId::from_bytes(req.invite);
        let cert = match self.joining_cert(circle, &req, invite_id, peer) {
            Ok(cert) => cert,
            Err(reason) => return refuse(reason),
        };
        let secret = InviteSecret::from_bytes(req.secret);
        let profile = req.name.as_deref().map(Profile::named);
        let redemption = Redemption {
            invite: invite_id,
            secret: &secret,
            cert: &cert,
            profile: profile.as_ref(),
        };
        let invite = match self.edit_announced(circle, now, rng, |c, _| {
            c.redeem_invite(&redemption, now.wall)
        }) {
            Ok(inv) => inv,
            Err(e) => return refuse(e.to_string()),
        };
        // Whatever the redemption wrote, nothing is handed over unless the
        // circle now admits the device (not to a removed member, not on an
        // invite whose maker has left, not beyond an invite's uses).
        if !self.circles[&circle]
            .store
            .circle()
            .membership()
            .admitted
            .contains(&peer)
        {
            let n = count(&mut self.refused, "join not admitted after redeeming");
            info!(%circle, peer = %peer.fmt_short(), count = n, "a redeemed invite did not let the device in; handing over nothing");
            return refuse("this ticket cannot let you into the circle; ask a member".into());
        }
        let mut handed = vec![circle];
        if invite.kind == InviteKind::Device {
            handed.extend(self.pair_everywhere(circle, &cert, now, rng));
        }
        let circles = match self.welcome_circles(circle, &handed) {
            Ok(circles) => circles,
            Err(reason) => return refuse(reason),
        };
        let member_key = (invite.kind == InviteKind::Device && cert.member == self.me.member.id())
            .then(|| *self.me.member.to_seed());
        info!(%circle, peer = %peer.fmt_short(), kind = invite.kind.as_str(), "let a device in");
        JoinReply::Welcome {
            circles,
            member_key,
        }
    }

    /// The certificate a joining device will hold: its own, verified; or,
    /// for a pairing, one this member's key makes for it (only on an
    /// invite this member's own device wrote).
    fn joining_cert(
        &self,
        circle: CircleId,
        req: &JoinRequest,
        invite_id: EntityId,
        peer: DeviceId,
    ) -> Result<DeviceCert, String> {
        let Ok(signature) = <[u8; 64]>::try_from(req.cert.as_slice()) else {
            return Err("the device certificate is malformed".into());
        };
        let cert = DeviceCert {
            member: MemberId::from_bytes(req.member),
            device: peer,
            signature,
        };
        if cert.verify().is_err() {
            return Err("your device's certificate does not verify".into());
        }
        // The view holds only invites a device of their member wrote.
        let pairing_by = self.circles[&circle]
            .store
            .circle()
            .view()
            .invites
            .get(&invite_id)
            .filter(|i| i.kind == InviteKind::Device)
            .map(|i| i.by);
        let Some(by) = pairing_by else {
            return Ok(cert);
        };
        // A new device of this member: the member key here certifies it
        // (the device's own key proved itself in the TLS handshake), and
        // travels to it in the welcome.
        if by != self.me.member.id() {
            return Err(
                "pair using a ticket from one of your own devices' nodes, the one that made it"
                    .into(),
            );
        }
        Ok(self.me.member.certify(peer))
    }

    /// A member's new device joins every other circle the member is in
    /// here: the circles it was added to.
    fn pair_everywhere(
        &mut self,
        circle: CircleId,
        cert: &DeviceCert,
        now: Now,
        rng: &mut impl RngCore,
    ) -> Vec<CircleId> {
        let others: Vec<CircleId> = self
            .circles
            .iter()
            .filter(|(id, s)| **id != circle && s.store.circle().is_member(cert.member))
            .map(|(id, _)| *id)
            .collect();
        let mut added = Vec::new();
        for id in others {
            let served = self.circles.get_mut(&id).expect("listed above");
            let before = served.store.circle().heads();
            if served
                .store
                .edit(|c| -> Result<_, StoreError> { Ok(c.add_device(cert, now.wall)?) })
                .is_ok()
            {
                self.announce(id, &before, now, rng);
                added.push(id);
            }
        }
        added
    }

    /// What a welcome hands over of each circle: the document, the key
    /// and the signed heads; refused when the circle asked for has no key
    /// to offer yet.
    fn welcome_circles(
        &self,
        circle: CircleId,
        handed: &[CircleId],
    ) -> Result<Vec<WelcomeCircle>, String> {
        let mut circles = Vec::new();
        for id in handed {
            let served = &self.circles[id];
            let Some(key) = served.keys.offer() else {
                if *id == circle {
                    return Err(
                        "this device cannot hand over the circle's key yet; ask another member for a ticket"
                            .into(),
                    );
                }
                continue;
            };
            let mut heads = served.book.all();
            heads.extend(SignedHead::sign_all(served.store.circle(), &self.me.device));
            circles.push(WelcomeCircle {
                doc: served.store.circle().save(),
                key,
                heads,
            });
        }
        Ok(circles)
    }

    /// Keeps what an inviting device handed over for `ticket`, once all
    /// of it checks out: every change proven, every key signed by a device
    /// of its circle, a member key only where the ticket calls for one.
    pub fn welcome(
        &mut self,
        welcome: Welcome,
        ticket: &Ticketed,
        now: Now,
        rng: &mut impl RngCore,
    ) -> Result<Vec<CircleId>, Error> {
        let refused = |why: &str| Error::Refused(why.to_owned());
        // Everything handed over is checked before anything is kept: every
        // change proven, every key signed by a device of its circle.
        let mut checked = Vec::new();
        for wc in welcome.circles {
            let probe = Circle::load(&wc.doc)?;
            let id = probe.id();
            let mut book = HeadBook::for_circle(&probe);
            book.learn(id, &wc.heads);
            let (circle, applied) = Circle::load_verified(&wc.doc, &mut book)?;
            if !applied.rejected.is_empty() {
                return Err(Error::Refused(format!(
                    "the circle handed over holds {} change(s) whose authors could not be verified; ask another member for a ticket",
                    applied.rejected.len()
                )));
            }
            let keys = Keyring::from_offer(id, &wc.key)
                .filter(|_| {
                    circle
                        .membership()
                        .admitted
                        .contains(&DeviceId::from_bytes(wc.key.by))
                })
                .ok_or_else(|| {
                    refused("the circle key handed over is not signed by a device of the circle; ask another member for a ticket")
                })?;
            checked.push((circle, book, keys, wc));
        }
        let Some((ticketed, ..)) = checked.iter().find(|(c, ..)| c.id() == ticket.circle) else {
            return Err(refused(
                "the inviting device did not hand over the circle of the ticket",
            ));
        };
        if let Some(seed) = welcome.member_key {
            // A member key comes only with a device ticket, and only the key
            // of the member whose device made that invite.
            let member = MemberKey::from_seed(&seed);
            let maker = ticketed.view().invites.get(&ticket.invite).map(|i| i.by);
            if ticket.kind != InviteKind::Device || maker != Some(member.id()) {
                return Err(refused(
                    "the inviting device handed over a member key this ticket does not call for; nothing was kept",
                ));
            }
            if member.id() != self.me.member.id() {
                if !self.circles.is_empty() {
                    return Err(refused(
                        "this device already belongs to a member with circles; pair a fresh device instead",
                    ));
                }
                self.me = self.home.adopt_member_key(self.lock(), &member)?;
            }
        }
        let inviter = ticket.inviter;
        let mut ids = Vec::new();
        for (circle, book, keys, wc) in checked {
            let id = circle.id();
            if !circle.is_member(self.mine(&circle.membership())) {
                return Err(refused(
                    "the circle handed over does not list this device's member",
                ));
            }
            if let Some(served) = self.circles.get_mut(&id) {
                let Served {
                    store, book: known, ..
                } = served;
                known.learn(id, &wc.heads);
                store
                    .edit(|c| -> Result<_, StoreError> { Ok(c.apply_verified(&wc.doc, known)?) })?;
                // Someone who left and is back before this device let the
                // circle go: the key of the epoch their return started.
                if keys.epoch() > served.keys.epoch() {
                    served.keys = keys.clone();
                    self.home.save_circle_keys(self.lock(), id, &keys)?;
                }
            } else if self.home.circle_ids()?.contains(&id) {
                // Someone who left, back with a ticket: their copy is kept
                // here, and what was handed over (their return, the key
                // of the epoch it started) joins it.
                let mut store = self.home.open_circle(self.lock(), id)?;
                let mut known = book;
                store.edit(|c| -> Result<_, StoreError> {
                    Ok(c.apply_verified(&wc.doc, &mut known)?)
                })?;
                self.home.save_circle_keys(self.lock(), id, &keys)?;
                self.home.unmark_forget(self.lock(), id)?;
                self.serve(id, store, keys, now);
                if let Some(served) = self.circles.get_mut(&id) {
                    served.book.learn(id, &wc.heads);
                }
            } else {
                let store = self.home.create_circle(self.lock(), &circle, &keys)?;
                self.serve(id, store, keys, now);
                if let Some(served) = self.circles.get_mut(&id) {
                    served.book = book;
                }
            }
            self.keep_book(id);
            ids.push(id);
        }
        self.refresh_admitted(now, rng);
        for id in &ids {
            self.changed(*id, now);
            self.start_sync(*id, inviter, now, rng);
        }
        Ok(ids)
    }
}

impl Machine {
    /// A welcome taken from a circle's steward while every member's device
    /// was off: checked as a welcome from the inviting device is (every
    /// change proven, the key signed by a device of the circle), and it
    /// must hold the ticket's invite as the inviting device made it. Then
    /// this device lets itself in, in a change of its own that every
    /// device judges alike (`Circle::redeem_self`), kept durably; its node
    /// hands it on through the steward.
    #[allow(clippy::too_many_arguments)]
    pub fn welcome_waiting(
        &mut self,
        welcome: &roundtable_core::steward::WaitingWelcome,
        ticket: &Ticketed,
        secret: &InviteSecret,
        name: Option<&str>,
        at: Timestamp,
        now: Now,
        rng: &mut impl RngCore,
    ) -> Result<Vec<CircleId>, Error> {
        let refused = |why: &str| Error::Refused(why.to_owned());
        let wc = &welcome.circle;
        let probe = Circle::load(&wc.doc)?;
        let id = probe.id();
        if id != ticket.circle {
            return Err(refused(
                "what waits at the steward is another circle than the ticket's; ask for a new ticket",
            ));
        }
        if self.circles.contains_key(&id) {
            return Err(refused("this device is in that circle already"));
        }
        if self.home.circle_ids()?.contains(&id) {
            return Err(refused(
                "this device holds that circle already: someone who left comes back through a member's device, so join again while the member who gave you the ticket is online",
            ));
        }
        let mut book = HeadBook::for_circle(&probe);
        book.learn(id, &wc.heads);
        let (circle, applied) = Circle::load_verified(&wc.doc, &mut book)?;
        if !applied.rejected.is_empty() {
            return Err(refused(
                "the circle waiting at the steward holds changes whose authors could not be verified; ask for a new ticket",
            ));
        }
        let view = circle.view();
        let made_by_inviter = view
            .invites
            .get(&ticket.invite)
            .is_some_and(|i| i.by_device == Some(ticket.inviter) && i.kind == ticket.kind);
        if !made_by_inviter {
            return Err(refused(
                "what waits at the steward is not the invite the ticket's device made; ask for a new ticket",
            ));
        }
        let keys = Keyring::from_offer(id, &wc.key)
            .filter(|_| {
                circle
                    .membership()
                    .admitted
                    .contains(&DeviceId::from_bytes(wc.key.by))
            })
            .ok_or_else(|| {
                refused("the circle key waiting at the steward is not signed by a device of the circle; ask for a new ticket")
            })?;
        if let Some(seed) = welcome.member_key {
            let member = MemberKey::from_seed(&seed);
            let maker = view.invites.get(&ticket.invite).map(|i| i.by);
            if ticket.kind != InviteKind::Device || maker != Some(member.id()) {
                return Err(refused(
                    "the steward handed over a member key this ticket does not call for; nothing was kept",
                ));
            }
            if member.id() != self.me.member.id() {
                if !self.circles.is_empty() {
                    return Err(refused(
                        "this device already belongs to a member with circles; pair a fresh device instead",
                    ));
                }
                self.me = self.home.adopt_member_key(self.lock(), &member)?;
            }
        } else if ticket.kind == InviteKind::Device {
            return Err(refused(
                "the pairing waiting at the steward came without its member's key; ask for a new ticket",
            ));
        }
        let store = self.home.create_circle(self.lock(), &circle, &keys)?;
        self.serve(id, store, keys, now);
        if let Some(served) = self.circles.get_mut(&id) {
            served.book = book;
        }
        let cert = self.me.cert.clone();
        let profile = match ticket.kind {
            InviteKind::Member => Some(Profile::named(name.unwrap_or_default())),
            InviteKind::Device => None,
        };
        let redeemed = self.edit_announced(id, now, rng, |c, _| {
            c.redeem_self(
                &Redemption {
                    invite: ticket.invite,
                    secret,
                    cert: &cert,
                    profile: profile.as_ref(),
                },
                at,
            )
        });
        if let Err(e) = redeemed {
            // Nothing of a circle this device could not enter is kept.
            self.circles.remove(&id);
            if let Err(f) = self.home.forget_circle(self.lock(), id) {
                warn!(circle = %id, "could not remove what a failed join kept: {f}");
            }
            return Err(e);
        }
        self.keep_book(id);
        self.refresh_admitted(now, rng);
        Ok(vec![id])
    }
}

/// What a device receives when an invite lets it in.
#[derive(Debug, Clone)]
pub struct Welcome {
    /// The circles to keep.
    pub circles: Vec<WelcomeCircle>,
    /// For a paired device: its member's key.
    pub member_key: Option<[u8; 32]>,
}

impl Welcome {
    /// The welcome a join reply carries, or the inviting device's reason
    /// for refusing.
    pub fn from_reply(reply: JoinReply) -> Result<Self, Error> {
        match reply {
            JoinReply::Welcome {
                circles,
                member_key,
            } => Ok(Self {
                circles,
                member_key,
            }),
            JoinReply::Refused { reason } => Err(Error::Refused(reason)),
        }
    }
}

/// What an invite allows.
#[derive(Debug, Clone, Copy)]
pub struct Terms {
    /// A new member, or another device of this member.
    pub kind: InviteKind,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// How many times it may be used.
    pub uses: u32,
}

/// What a ticket says, as far as keeping a welcome needs it.
#[derive(Debug, Clone, Copy)]
pub struct Ticketed {
    /// The circle it invites to.
    pub circle: CircleId,
    /// The invite.
    pub invite: EntityId,
    /// A member's invite or a device pairing.
    pub kind: InviteKind,
    /// The device that made it.
    pub inviter: DeviceId,
}

/// The request that redeems a ticket at its inviting device.
pub fn join_request(
    me: &Identity,
    circle: CircleId,
    invite: EntityId,
    secret: &InviteSecret,
    name: Option<&str>,
) -> JoinRequest {
    JoinRequest {
        circle: *circle.as_bytes(),
        invite: *invite.as_bytes(),
        secret: *secret.as_bytes(),
        member: *me.member.id().as_bytes(),
        cert: me.cert.signature.to_vec(),
        name: name.map(str::to_owned),
    }
}
