//! The circles this device serves: opening and serving each, following
//! its gossip topic, keeping who is admitted in step with its membership
//! (and the epoch's key with it), folding its log in, and letting go of a
//! circle its member left.

use std::time::Duration;

use super::*;

impl Machine {
    /// Opens a stored circle and follows its gossip topic.
    pub(crate) fn open_circle(
        &mut self,
        id: CircleId,
        now: Now,
        rng: &mut impl RngCore,
    ) -> Result<(), Error> {
        let store = self.home.open_circle(self.lock(), id)?;
        let keys = match self.home.circle_keys(id)? {
            Some(mut k) => {
                // Keys kept by a version that did not sign candidates.
                let before = k.clone();
                k.sign_own(id, &self.me.device);
                if k != before {
                    self.home.save_circle_keys(self.lock(), id, &k)?;
                }
                k
            }
            None => {
                // A circle kept without keys: this device starts epoch 0's.
                let k = Keyring::with(EpochKey::random(id, 0, &self.me.device, rng));
                self.home.save_circle_keys(self.lock(), id, &k)?;
                k
            }
        };
        self.serve(id, store, keys, now);
        Ok(())
    }

    pub(crate) fn serve(&mut self, id: CircleId, mut store: CircleStore, keys: Keyring, now: Now) {
        // Folding the log in waits for the tick, off the path of a write.
        store.compact_later();
        let membership = store.circle().membership();
        let mut book = self
            .home
            .read_record(NodeRecord::HeadBook(id))
            .ok()
            .flatten()
            .map(|b| HeadBook::restore(&b))
            .unwrap_or_default();
        // Only the circle's own devices have a place in the book.
        let kept = book.len();
        book.know_devices(&membership.certified);
        let devices = self.others(&membership);
        let mut peers = BTreeMap::new();
        for peer in &devices {
            let record = self
                .home
                .read_record(peer_record(id, *peer))
                .ok()
                .flatten()
                .and_then(|b| postcard::from_bytes::<PeerRecord>(&b).ok());
            peers.insert(
                *peer,
                Peer::new(
                    record
                        .as_ref()
                        .map(|r| PeerSync::restore(&r.state))
                        .unwrap_or_default(),
                    record
                        .and_then(|r| r.last_synced)
                        .map(Timestamp::from_millis),
                ),
            );
            self.schedule.handle(
                schedule::Input::Met {
                    circle: id,
                    peer: *peer,
                    first: self.timing.anti_entropy,
                },
                now.mono,
            );
        }
        info!(circle = %id, peers = devices.len(), epoch = keys.epoch(), "serving circle");
        self.circles.insert(
            id,
            Served {
                store,
                keys,
                book,
                membership,
                replays: ReplayFilter::default(),
                peers,
                reading: None,
                seen: None,
                compact_failing: false,
                recovery_failing: false,
                forked: BTreeMap::new(),
                stewards: stewards::Stewards::restore(
                    self.home
                        .read_record(NodeRecord::Stewards(id))
                        .ok()
                        .flatten(),
                ),
                steward_due: true,
                farewells: self.restore_farewells(id),
                farewell_tried: BTreeSet::new(),
            },
        );
        if self.circles[&id].book.len() != kept {
            self.keep_book(id);
        }
        // A circle this member left, and that a peer already has all of:
        // nothing more to serve.
        let served = &self.circles[&id];
        if served
            .membership
            .left
            .contains(&self.mine(&served.membership))
            && served
                .peers
                .values()
                .any(|p| served.store.circle().peer_has_everything(&p.sync))
        {
            self.unserve_left(id, now);
            return;
        }
        self.keep_farewells(id);
        // Let the circle's devices in (and out) before gossip dials them.
        self.admit_peers();
        // A circle that removed this member is kept, and read, not synced.
        if self.removed_here(&self.circles[&id].membership) {
            self.unserve_removed(id, now);
            return;
        }
        self.follow(id, now);
    }

    /// Tells the network who may connect: every peer of every circle served.
    pub(crate) fn admit_peers(&mut self) {
        let all: BTreeSet<DeviceId> = self
            .circles
            .values()
            .flat_map(|s| s.peers.keys().copied())
            .collect();
        self.outbox.push(Output::Admit(all));
        let farewell = self.farewell_devices();
        self.outbox.push(Output::AdmitFarewell(farewell));
    }

    /// Follows the gossip topic of a circle's current key (leaving the one
    /// of an earlier key, if any).
    pub(crate) fn follow(&mut self, id: CircleId, now: Now) {
        let Some(served) = self.circles.get(&id) else {
            return;
        };
        let topic = served.keys.active().topic(id);
        let peers: Vec<DeviceId> = served.peers.keys().copied().collect();
        self.schedule
            .handle(schedule::Input::Followed { circle: id }, now.mono);
        self.outbox.push(Output::Follow {
            circle: id,
            topic,
            peers,
        });
    }

    /// The devices, other than this one, admitted to a circle. A device
    /// whose member the circle removed keeps them too, though it no longer
    /// syncs with them: they may let it in again, should the circle
    /// welcome its member back.
    pub(crate) fn others(&self, membership: &Membership) -> Vec<DeviceId> {
        let mine = self.me.device.id();
        membership
            .admitted
            .iter()
            .filter(|d| **d != mine)
            .copied()
            .collect()
    }

    /// Reads who is in each circle again: lets in new devices and meets
    /// them, drops devices that departed, and when the circle has gone into
    /// a new epoch, makes a key for it and moves to its gossip topic.
    pub(crate) fn refresh_admitted(&mut self, now: Now, rng: &mut impl RngCore) {
        let ids: Vec<CircleId> = self.circles.keys().copied().collect();
        for id in ids {
            let membership = self.circles[&id].store.circle().membership();
            let devices = self.others(&membership);
            let mine = self.mine(&membership);
            let served = self.circles.get_mut(&id).expect("present");
            let gone: Vec<DeviceId> = served
                .peers
                .keys()
                .filter(|p| !devices.contains(p))
                .copied()
                .collect();
            let out = membership.removed.contains(&mine);
            let was_removed = served.membership.removed.contains(&mine);
            // Welcomed back: every device of the circle is to be met again,
            // from scratch (what was said before the removal is stale).
            let welcomed_back = was_removed && !out;
            if welcomed_back {
                for p in served.peers.values_mut() {
                    p.sync = PeerSync::fresh();
                }
            }
            let mut new = Vec::new();
            for d in &devices {
                let known = served.peers.contains_key(d);
                served
                    .peers
                    .entry(*d)
                    .or_insert_with(|| Peer::new(PeerSync::fresh(), None));
                if !known || welcomed_back {
                    new.push(*d);
                }
            }
            for peer in gone {
                served.peers.remove(&peer);
                self.schedule
                    .handle(schedule::Input::Gone { circle: id, peer }, now.mono);
            }
            // A device out is met by nobody; it only lets them in.
            for peer in new.iter().filter(|_| !out) {
                let met = schedule::Input::Met {
                    circle: id,
                    peer: *peer,
                    first: Duration::from_secs(1),
                };
                self.schedule.handle(met, now.mono);
            }
            let served = self.circles.get_mut(&id).expect("present");
            if out {
                // Out: no key of a later epoch, no topic, no peers.
                served.membership = membership;
                self.admit_peers();
                if !was_removed {
                    self.unserve_removed(id, now);
                }
                continue;
            }
            let rotated = served
                .keys
                .advance(id, membership.epoch, &self.me.device, rng);
            served.membership = membership;
            self.keep_farewells(id);
            self.admit_peers();
            if welcomed_back {
                info!(circle = %id, "the circle welcomed you back");
            }
            if rotated || welcomed_back {
                let keys = self.circles[&id].keys.clone();
                if let Err(e) = self.home.save_circle_keys(self.lock(), id, &keys) {
                    warn!(circle = %id, "could not keep the new epoch's key: {e}");
                }
                info!(circle = %id, epoch = keys.epoch(), "the circle moved to a new epoch; new key, new topic");
                self.follow(id, now);
                // Hand the new key to everyone still in.
                for d in &devices {
                    self.start_sync(id, *d, now, rng);
                }
            } else if !new.is_empty() {
                self.outbox.push(Output::JoinPeers {
                    circle: id,
                    peers: new,
                });
            }
        }
    }

    /// Folds each circle's log into its snapshot once it is due, and no
    /// sync session of the circle is under way (it would wait for it).
    pub(crate) fn compact_due(&mut self) {
        for (id, served) in &mut self.circles {
            if self.schedule.syncing(*id) {
                continue;
            }
            match served.store.compact_if_due() {
                Ok(_) => served.compact_failing = false,
                // Said once, not every tick (a full disk stays full a while).
                Err(e) if served.compact_failing => {
                    debug!(circle = %id, "still cannot fold the log into the snapshot: {e}");
                }
                Err(e) => {
                    served.compact_failing = true;
                    warn!(circle = %id, "could not fold the log into the snapshot, will keep trying: {e}");
                }
            }
        }
    }

    /// Stops serving a circle this member left, once a peer has it: its
    /// gossip topic is left, its devices no longer admitted for its sake,
    /// and its files forgotten if the member asked.
    pub(crate) fn unserve_left(&mut self, circle: CircleId, now: Now) {
        let Some(served) = self.circles.remove(&circle) else {
            return;
        };
        let name = served.store.circle().name();
        drop(served);
        self.schedule
            .handle(schedule::Input::LetGo { circle }, now.mono);
        self.outbox.push(Output::Unfollow { circle });
        self.admit_peers();
        info!(%circle, "you left \"{name}\" and the others know; this device no longer serves it");
        if self.home.marked_forget(circle) {
            match self.home.forget_circle(self.lock(), circle) {
                Ok(()) => info!(%circle, "forgot this device's copy of \"{name}\", as asked"),
                Err(e) => warn!(%circle, "could not forget the circle's files: {e}"),
            }
        }
        self.changed(circle, now);
    }
}

/// Where the sync state with a peer is kept.
pub(crate) fn peer_record(circle: CircleId, peer: DeviceId) -> NodeRecord {
    NodeRecord::PeerSync { circle, peer }
}

impl Machine {
    /// After changes came in that showed a device signing two different
    /// changes under one number (see `roundtable_core::equivocation`):
    /// remembers it for status, tells the log once, and, where this copy
    /// dropped changes it held, starts every peer's sync afresh (what it
    /// shared with them may name changes it no longer has) and syncs, so
    /// what it wrote again goes out. A forked device of this device's own
    /// member is revoked from here, like a lost one.
    pub(crate) fn settle_forks(
        &mut self,
        circle: CircleId,
        applied: &roundtable_core::Applied,
        before: &[ChangeHash],
        now: Now,
        rng: &mut impl RngCore,
    ) {
        if applied.equivocated.is_empty() {
            return;
        }
        let me = self.me.device.id();
        let mine = self.me.member.id();
        let mut revoke = Vec::new();
        let mut told = Vec::new();
        let rebuilt = {
            let Some(served) = self.circles.get_mut(&circle) else {
                return;
            };
            let view = served.read().view;
            for e in &applied.equivocated {
                if served.forked.insert(e.device, e.clone()).is_none() {
                    told.push(e.device);
                }
                let ours = view
                    .members
                    .get(&mine)
                    .is_some_and(|m| m.devices.contains_key(&e.device));
                if e.device != me && ours && served.membership.admitted.contains(&e.device) {
                    revoke.push(e.device);
                }
            }
            let rebuilt = !before.iter().all(|h| served.store.circle().has_change(h));
            if rebuilt {
                for p in served.peers.values_mut() {
                    p.sync = PeerSync::fresh();
                }
            }
            rebuilt
        };
        for device in told {
            let who = self.who(circle, device);
            warn!(
                %circle,
                device = %device.fmt_short(),
                "{who} signed two different changes under one number; the circle keeps one of them. \
                 Unless its owner copied it while it ran, it may be stolen or tampered with: it should be revoked"
            );
        }
        for device in revoke {
            let done = self.edit_announced(circle, now, rng, |c, _| {
                c.revoke_device(mine, device, now.wall)
            });
            if let Err(e) = done {
                warn!(%circle, device = %device.fmt_short(), "could not revoke this member's forked device: {e}");
            }
        }
        if rebuilt {
            self.changed(circle, now);
            let peers: Vec<DeviceId> = self.circles[&circle].peers.keys().copied().collect();
            for peer in peers {
                self.start_sync(circle, peer, now, rng);
            }
        }
    }
}
