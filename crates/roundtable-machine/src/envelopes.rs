//! The live path: what this device gossips after an edit, and what it
//! does with the envelopes and neighbour events gossip brings.

use rand::seq::SliceRandom as _;

use super::*;

impl Machine {
    /// Gossips what changed since `before`: the changes themselves when they
    /// fit, else the new heads (peers then fetch them by sync). Either way
    /// sealed with the circle key and signed by this device.
    pub(crate) fn announce(
        &mut self,
        circle: CircleId,
        before: &[ChangeHash],
        now: Now,
        rng: &mut impl RngCore,
    ) {
        self.changed(circle, now);
        self.refresh_admitted(now, rng);
        let Some(served) = self.circles.get(&circle) else {
            return;
        };
        let changes = served.store.circle().changes_since(before);
        if changes.is_empty() {
            return;
        }
        let mut seal = |body: Body| {
            roundtable_core::keys::seal(circle, &served.keys, &self.me.device, &body, rng)
        };
        let sealed = match SignedHead::sign(served.store.circle(), &self.me.device) {
            Some(head) => seal(Body::Changes { changes, head }),
            None => None,
        }
        .or_else(|| {
            let heads = served.store.circle().heads().iter().map(|h| h.0).collect();
            seal(Body::Heads { heads })
        });
        if let Some(bytes) = sealed {
            self.outbox.push(Output::Broadcast { circle, bytes });
        }
        // The stewards watched get it at once too.
        self.push_to_stewards(circle, rng);
        if let Some(s) = self.circles.get_mut(&circle) {
            s.steward_due = false;
        }
    }

    /// A device joined the circle's gossip neighbourhood: it may have
    /// missed anything, so a sync with it is due now.
    pub fn neighbour_up(
        &mut self,
        circle: CircleId,
        peer: DeviceId,
        now: Now,
        rng: &mut impl RngCore,
    ) {
        self.schedule
            .handle(schedule::Input::NeighbourUp { circle, peer }, now.mono);
        if tracing::enabled!(tracing::Level::INFO) {
            info!(%circle, "{} is connected", self.who(circle, peer));
        }
        self.emit(Event::PeerUp { circle, peer });
        self.start_sync(circle, peer, now, rng);
    }

    /// A device left the circle's gossip neighbourhood.
    pub fn neighbour_down(&mut self, circle: CircleId, peer: DeviceId, now: Now) {
        self.schedule
            .handle(schedule::Input::NeighbourDown { circle, peer }, now.mono);
        self.emit(Event::PeerDown { circle, peer });
    }

    /// Gossip fell behind and dropped messages: catch up with every
    /// neighbour.
    pub fn lagged(&mut self, circle: CircleId, now: Now, rng: &mut impl RngCore) {
        let peers: Vec<DeviceId> = self.schedule.neighbours(circle).collect();
        for p in peers {
            self.start_sync(circle, p, now, rng);
        }
    }

    /// Shuffles the devices to ask in as gossip neighbours (the schedule
    /// says when a circle is short of them).
    pub(crate) fn meet(
        &mut self,
        circle: CircleId,
        mut candidates: Vec<DeviceId>,
        missing: usize,
        rng: &mut impl RngCore,
    ) {
        if !self.circles.contains_key(&circle) {
            return;
        }
        candidates.shuffle(rng);
        self.outbox.push(Output::Meet {
            circle,
            candidates,
            missing,
        });
    }

    /// Counts and logs changes that were refused.
    pub(crate) fn note_refused(
        &mut self,
        circle: CircleId,
        from: DeviceId,
        applied: &roundtable_core::Applied,
    ) {
        for (hash, why) in &applied.rejected {
            let n = count(&mut self.refused, why);
            debug!(%circle, from = %from.fmt_short(), change = %hash, count = n, "refused a change: {why}");
        }
    }

    /// An envelope gossip brought, relayed by `via`: opened only with this
    /// epoch's key and only from an admitted device, then applied if every
    /// change in it is proven. Missing changes (or heads this copy lacks)
    /// call for a sync with the sender and the relay.
    pub fn gossip(
        &mut self,
        circle: CircleId,
        bytes: &[u8],
        via: DeviceId,
        now: Now,
        rng: &mut impl RngCore,
    ) {
        let Some(served) = self.circles.get_mut(&circle) else {
            return;
        };
        if served.replays.is_replay(bytes) {
            let n = count(&mut self.dropped, "replayed");
            debug!(%circle, count = n, "a gossip message came again; nothing to do");
            return;
        }
        let admitted = &served.membership.admitted;
        let opened =
            roundtable_core::keys::open(bytes, circle, &served.keys, |d| admitted.contains(&d));
        let (from, body) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                let n = count(&mut self.dropped, e);
                debug!(%circle, via = %via.fmt_short(), count = n, "dropped a gossip message: {e}");
                // From a later epoch: the sender knows something we do not yet.
                if e == EnvelopeError::OtherEpoch
                    && let Ok(sealed) = wire::decode::<Sealed>(bytes)
                    && sealed.epoch > served.keys.epoch()
                {
                    self.start_sync(circle, DeviceId::from_bytes(sealed.from), now, rng);
                }
                return;
            }
        };
        // Past the sender's budget, changes wait (see `rate`).
        let Some(body) = self.within_rate(circle, from, body, now) else {
            return;
        };
        self.take_in(circle, from, via, body, now, rng);
    }

    /// Applies what an opened envelope brought from `from` (relayed by
    /// `via`), and asks for a sync if something is missing.
    pub(crate) fn take_in(
        &mut self,
        circle: CircleId,
        from: DeviceId,
        via: DeviceId,
        body: Body,
        now: Now,
        rng: &mut impl RngCore,
    ) {
        let Some(served) = self.circles.get_mut(&circle) else {
            return;
        };
        let need_sync = match body {
            Body::Changes { changes, head } => {
                let before = served.store.circle().heads();
                served.book.learn(circle, [&head]);
                let Served { store, book, .. } = served;
                match store
                    .edit(|c| -> Result<_, StoreError> { Ok(c.apply_verified(&changes, book)?) })
                {
                    Ok(applied) => {
                        let changed = store.circle().heads() != before;
                        let missing = !store.circle().missing_deps().is_empty();
                        self.note_refused(circle, from, &applied);
                        if changed {
                            self.keep_book(circle);
                            self.changed(circle, now);
                            self.refresh_admitted(now, rng);
                        }
                        self.settle_forks(circle, &applied, &before, now, rng);
                        missing
                    }
                    Err(e) => {
                        let n = count(&mut self.dropped, "does not apply");
                        debug!(%circle, count = n, "gossiped changes did not apply: {e}");
                        true
                    }
                }
            }
            Body::Heads { heads } => heads
                .iter()
                .any(|h| !served.store.circle().has_change(&ChangeHash(*h))),
        };
        // A sender writing past its budget is caught up with by the
        // schedule's syncs, not one per message.
        if need_sync && !self.behind(circle, from) {
            self.start_sync(circle, from, now, rng);
            if via != from {
                self.start_sync(circle, via, now, rng);
            }
        }
    }

    /// Keeps a circle's head book, so proofs survive a restart: written
    /// at a tick at most every `BOOKS_EVERY` (5 s) and at shutdown, not
    /// on every change (a busy circle would otherwise spend a durable
    /// write on it twice a second). A proof lost to a crash costs nothing
    /// lasting: every device sends its own, and all it knows, in each
    /// sync session.
    pub(crate) fn keep_book(&mut self, circle: CircleId) {
        self.unsaved_books.insert(circle);
    }

    /// Writes the head books that changed.
    pub(crate) fn save_books(&mut self) {
        for circle in std::mem::take(&mut self.unsaved_books) {
            let Some(served) = self.circles.get(&circle) else {
                continue;
            };
            if let Err(e) = self.home.write_record(
                self.lock(),
                NodeRecord::HeadBook(circle),
                &served.book.persist(),
            ) {
                debug!(%circle, "could not keep the signed heads: {e}");
            }
        }
    }
}
