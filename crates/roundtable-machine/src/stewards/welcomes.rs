//! Invites that wait: a welcome for each ticket this device makes where
//! the circle has stewards, left at each of them (and forgotten there when
//! the invite is revoked) until it expires. When the circle's key changes
//! while one waits, it is sealed again with the circle as it stands and
//! its new key, and replaces the one before at each steward: a joiner who
//! takes it later comes in under the key the circle uses by then.

use super::*;

/// A welcome to leave at the stewards for a ticket this device made.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct PendingWelcome {
    pub(super) invite: EntityId,
    pub(super) slot: [u8; 32],
    pub(super) forget: [u8; 32],
    pub(super) bytes: Vec<u8>,
    pub(super) expires_at: i64,
    /// The stewards it was left at.
    pub(super) left: BTreeSet<EntityId>,
    /// Revoked: to be forgotten at each steward it was left at.
    pub(super) revoked: bool,
    /// The slot's sealing key, to seal it again when the circle's key
    /// changes (welcomes kept before there was one are not).
    #[serde(default)]
    pub(super) aead: Option<[u8; 32]>,
    /// A pairing: it carries this member's key.
    #[serde(default)]
    pub(super) pairing: bool,
    /// Stewards holding an earlier seal of it, to be forgotten there
    /// before this one is left.
    #[serde(default)]
    pub(super) outdated: BTreeSet<EntityId>,
}

impl Machine {
    /// Keeps a welcome for a ticket this device just made, to leave at
    /// every steward of the circle (at once where one is watched).
    pub(crate) fn keep_welcome(
        &mut self,
        circle: CircleId,
        invite: EntityId,
        secret: &roundtable_core::InviteSecret,
        kind: roundtable_core::InviteKind,
        expires_at: Timestamp,
        rng: &mut impl RngCore,
    ) {
        if self.usable_stewards(circle).is_empty() {
            return;
        }
        let pairing = kind == roundtable_core::InviteKind::Device;
        let Some(welcome) = self.welcome_now(circle, pairing) else {
            return;
        };
        let slot = st::WelcomeSlot::of(circle, secret);
        let served = self.circles.get_mut(&circle).expect("served");
        served.stewards.kept.welcomes.push(PendingWelcome {
            invite,
            slot: slot.name(),
            forget: slot.forget_token(),
            bytes: slot.seal(&welcome, rng),
            expires_at: expires_at.as_millis(),
            left: BTreeSet::new(),
            revoked: false,
            aead: Some(slot.keys().1),
            pairing,
            outdated: BTreeSet::new(),
        });
        served.stewards.dirty = true;
        self.send_welcomes(circle);
    }

    /// A welcome into the circle as it stands, under its key now.
    fn welcome_now(&self, circle: CircleId, pairing: bool) -> Option<st::WaitingWelcome> {
        let heads = self.signed_heads(circle).ok()?;
        let served = self.circles.get(&circle)?;
        Some(st::WaitingWelcome {
            circle: roundtable_core::wire::WelcomeCircle {
                doc: served.store.circle().save(),
                key: served.keys.offer()?,
                heads,
            },
            member_key: pairing.then(|| *self.me.member.to_seed()),
        })
    }

    /// The circle's key changed: every welcome still waiting is sealed
    /// again with the circle as it stands and its new key, to replace the
    /// one left at each steward.
    pub(super) fn reseal_welcomes(&mut self, circle: CircleId, rng: &mut impl RngCore) {
        let waiting = self.circles.get(&circle).is_some_and(|s| {
            s.stewards
                .kept
                .welcomes
                .iter()
                .any(|p| !p.revoked && p.aead.is_some())
        });
        if !waiting {
            return;
        }
        let (Some(plain), Some(paired)) = (
            self.welcome_now(circle, false),
            self.welcome_now(circle, true),
        ) else {
            return;
        };
        let served = self.circles.get_mut(&circle).expect("served");
        for p in &mut served.stewards.kept.welcomes {
            let Some(aead) = p.aead.filter(|_| !p.revoked) else {
                continue;
            };
            let slot = st::WelcomeSlot::from_keys(p.forget, aead);
            p.bytes = slot.seal(if p.pairing { &paired } else { &plain }, rng);
            let left = std::mem::take(&mut p.left);
            p.outdated.extend(left);
        }
        served.stewards.dirty = true;
        info!(%circle, "the circle's key changed: invites waiting at stewards sealed again");
        self.send_welcomes(circle);
    }

    /// An invite of this device was revoked: its welcomes are forgotten
    /// at every steward they were left at.
    pub(crate) fn forget_welcome(&mut self, circle: CircleId, invite: EntityId) {
        let Some(served) = self.circles.get_mut(&circle) else {
            return;
        };
        for p in &mut served.stewards.kept.welcomes {
            if p.invite == invite {
                p.revoked = true;
                served.stewards.dirty = true;
            }
        }
        self.send_welcomes(circle);
    }

    fn send_welcomes(&mut self, circle: CircleId) {
        let Some(served) = self.circles.get(&circle) else {
            return;
        };
        let watching: Vec<(EntityId, u64)> = served
            .stewards
            .links
            .iter()
            .filter_map(|(id, l)| {
                let o = l.open.as_ref()?;
                (o.watching && !o.visit).then_some((*id, o.token))
            })
            .collect();
        for (steward, token) in watching {
            let session = StewardSession {
                circle,
                steward,
                token,
            };
            let requests = self.welcomes_for(session);
            if !requests.is_empty() {
                self.outbox.push(Output::StewardSend { session, requests });
            }
        }
    }

    /// The welcomes to leave at (or forget from) a watched steward.
    pub(super) fn welcomes_for(&mut self, session: StewardSession) -> Vec<StewardRequest> {
        let Some(served) = self.circles.get_mut(&session.circle) else {
            return Vec::new();
        };
        let now_ms = served.stewards.kept.reached.get(&session.steward).copied();
        let Some(open) = served
            .stewards
            .links
            .get_mut(&session.steward)
            .and_then(|l| l.open.as_mut())
        else {
            return Vec::new();
        };
        let in_flight: BTreeSet<[u8; 32]> = open
            .expect
            .iter()
            .filter_map(|e| match e {
                Expect::Left { slot, .. } => Some(*slot),
                _ => None,
            })
            .collect();
        let mut out = Vec::new();
        for p in &served.stewards.kept.welcomes {
            if in_flight.contains(&p.slot) || now_ms.is_some_and(|t| p.expires_at <= t) {
                continue;
            }
            let here = p.left.contains(&session.steward);
            let outdated = p.outdated.contains(&session.steward);
            if (p.revoked && here) || outdated {
                open.expect.push_back(Expect::Left {
                    slot: p.slot,
                    forgot: true,
                });
                out.push(StewardRequest::Forget { token: p.forget });
            }
            if !p.revoked && !here {
                open.expect.push_back(Expect::Left {
                    slot: p.slot,
                    forgot: false,
                });
                out.push(StewardRequest::Leave {
                    slot: p.slot,
                    bytes: p.bytes.clone(),
                    expires_at: p.expires_at,
                });
            }
        }
        out
    }
}
