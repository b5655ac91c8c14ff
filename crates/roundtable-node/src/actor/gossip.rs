//! The live path: what this node gossips after an edit, and what it does
//! with the envelopes and neighbour events gossip brings.

use rand::seq::SliceRandom as _;

use super::*;

impl Actor {
    /// Gossips what changed since `before`: the changes themselves when they
    /// fit, else the new heads (peers then fetch them by sync). Either way
    /// sealed with the circle key and signed by this device.
    pub(super) async fn announce(&mut self, circle: CircleId, before: &[ChangeHash]) {
        self.changed(circle);
        self.refresh_admitted().await;
        let Some(served) = self.circles.get(&circle) else {
            return;
        };
        let changes = served.store.circle().changes_since(before);
        if changes.is_empty() {
            return;
        }
        let seal = |body: Body| {
            keys::seal(
                circle,
                &served.keys,
                &self.me.device,
                &body,
                &mut rand::rng(),
            )
        };
        let sealed = SignedHead::sign(served.store.circle(), &self.me.device)
            .and_then(|head| seal(Body::Changes { changes, head }))
            .or_else(|| {
                let heads = served.store.circle().heads().iter().map(|h| h.0).collect();
                seal(Body::Heads { heads })
            });
        if let (Some(sender), Some(bytes)) = (&served.sender, sealed)
            && let Err(e) = sender.broadcast(bytes.into()).await
        {
            debug!(%circle, "gossip broadcast failed: {e}");
        }
    }

    /// Asks up to `missing` of `candidates` to become gossip neighbours
    /// in `circle` (the schedule says when a circle is short of them): this
    /// device connects to devices it knows how to reach, in random order,
    /// hands gossip the connections, and asks them in. Gossip would not
    /// dial again a device it once failed to reach.
    pub(super) fn meet(
        &mut self,
        circle: CircleId,
        mut candidates: Vec<EndpointId>,
        missing: usize,
    ) {
        let Some(sender) = self.circles.get(&circle).and_then(|s| s.sender.clone()) else {
            return;
        };
        candidates.shuffle(&mut rand::rng());
        let dialer = self.dialer.clone();
        self.tasks.spawn(
            async move {
                let mut met = Vec::new();
                for peer in candidates {
                    if met.len() == missing {
                        break;
                    }
                    if dialer.known_addr(peer).await.is_some()
                        && dialer.connect_gossip(peer).await.is_ok()
                    {
                        met.push(peer);
                    }
                }
                if !met.is_empty() {
                    let _ = sender.join_peers(met).await;
                }
            }
            .instrument(self.span.clone()),
        );
    }

    pub(super) async fn on_gossip(&mut self, circle: CircleId, ev: GossipEvent) {
        match ev {
            GossipEvent::NeighborUp(peer) => {
                self.schedule
                    .handle(schedule::Input::NeighbourUp { circle, peer }, now());
                if tracing::enabled!(tracing::Level::INFO) {
                    info!(%circle, "{} is connected", self.who(circle, peer));
                }
                self.emit(Event::PeerUp {
                    circle,
                    peer: device_of(peer),
                });
                // A peer that comes up may have missed anything: catch up now.
                self.start_sync(circle, peer);
            }
            GossipEvent::NeighborDown(peer) => {
                self.schedule
                    .handle(schedule::Input::NeighbourDown { circle, peer }, now());
                self.emit(Event::PeerDown {
                    circle,
                    peer: device_of(peer),
                });
            }
            GossipEvent::Received(msg) => {
                self.on_envelope(circle, &msg.content, msg.delivered_from)
                    .await
            }
            GossipEvent::Lagged => {
                let peers: Vec<EndpointId> = self.schedule.neighbours(circle).collect();
                for p in peers {
                    self.start_sync(circle, p);
                }
            }
        }
    }

    pub(super) fn count(map: &mut BTreeMap<String, u64>, reason: impl ToString) -> u64 {
        let n = map.entry(reason.to_string()).or_default();
        *n += 1;
        *n
    }

    /// Counts and logs changes that were refused.
    pub(super) fn note_refused(&mut self, circle: CircleId, from: EndpointId, applied: &Applied) {
        for (hash, why) in &applied.rejected {
            let n = Self::count(&mut self.refused, why);
            debug!(%circle, from = %from.fmt_short(), change = %hash, count = n, "refused a change: {why}");
        }
    }

    pub(super) async fn on_envelope(&mut self, circle: CircleId, bytes: &[u8], via: EndpointId) {
        let Some(served) = self.circles.get_mut(&circle) else {
            return;
        };
        if served.replays.is_replay(bytes) {
            let n = Self::count(&mut self.dropped, "replayed");
            debug!(%circle, count = n, "a gossip message came again; nothing to do");
            return;
        }
        let admitted = &served.membership.admitted;
        let (from, body) = match keys::open(bytes, circle, &served.keys, |d| admitted.contains(&d))
        {
            Ok(opened) => opened,
            Err(e) => {
                let n = Self::count(&mut self.dropped, e);
                debug!(%circle, via = %via.fmt_short(), count = n, "dropped a gossip message: {e}");
                // From a later epoch: the sender knows something we do not yet.
                if e == EnvelopeError::OtherEpoch
                    && let Ok(sealed) = wire::decode::<Sealed>(bytes)
                    && sealed.epoch > served.keys.epoch()
                    && let Ok(from) = EndpointId::from_bytes(&sealed.from)
                {
                    self.start_sync(circle, from);
                }
                return;
            }
        };
        let Some(from) = endpoint_of(from) else {
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
                            self.changed(circle);
                            self.refresh_admitted().await;
                        }
                        missing
                    }
                    Err(e) => {
                        let n = Self::count(&mut self.dropped, "does not apply");
                        debug!(%circle, count = n, "gossiped changes did not apply: {e}");
                        true
                    }
                }
            }
            Body::Heads { heads } => heads
                .iter()
                .any(|h| !served.store.circle().has_change(&ChangeHash(*h))),
        };
        if need_sync {
            self.start_sync(circle, from);
            if via != from {
                self.start_sync(circle, via);
            }
        }
    }

    /// Keeps a circle's head book, so proofs survive a restart: written
    /// with the next tick (at most twice a second) and at shutdown, not on
    /// every change. A proof lost to a crash costs nothing lasting: every
    /// device sends its own, and all it knows, in each sync session.
    pub(super) fn keep_book(&mut self, circle: CircleId) {
        self.unsaved_books.insert(circle);
    }

    /// Writes the head books that changed.
    pub(super) fn save_books(&mut self) {
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
