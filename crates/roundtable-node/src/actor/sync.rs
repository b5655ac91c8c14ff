//! The catch-up path: the actor's side of sync sessions (admitting them,
//! generating and receiving rounds, keys, how each ends) and anti-entropy.

use super::*;

impl Actor {
    pub(super) fn sync_generate(
        &mut self,
        circle: CircleId,
        peer: EndpointId,
    ) -> (Vec<SignedHead>, Option<Vec<u8>>) {
        let Some(s) = self.circles.get_mut(&circle) else {
            return (Vec::new(), None);
        };
        let Some(p) = s.peers.get_mut(&peer) else {
            return (Vec::new(), None);
        };
        // Every proof known, and our own newest, that this session has not
        // sent yet: changes that came in since the last round (by gossip,
        // or from another session) go out with the heads that prove them,
        // else the peer would have to refuse them as unproven.
        let mut heads = s.book.all();
        heads.extend(SignedHead::sign(s.store.circle(), &self.me.device));
        heads.retain(|h| p.heads_sent.insert(h.hash));
        let msg = s.store.circle().sync_generate(&mut p.sync);
        p.session_out += msg.as_ref().map_or(0, Vec::len);
        (heads, msg)
    }

    /// Writes what this device knows it shares with `peer` (Automerge's
    /// sync state) and when they last synced.
    pub(super) fn keep_peer(&self, circle: CircleId, peer: EndpointId) {
        let Some(p) = self.circles.get(&circle).and_then(|s| s.peers.get(&peer)) else {
            return;
        };
        let record = PeerRecord {
            state: p.sync.persist(),
            last_synced: p.last_synced.map(Timestamp::as_millis),
        };
        if let Ok(bytes) = postcard::to_stdvec(&record)
            && let Err(e) = self
                .home
                .write_record(self.lock(), peer_record(circle, peer), &bytes)
        {
            debug!("could not keep the sync state of {}: {e}", peer.fmt_short());
        }
    }

    pub(super) async fn key_in(&mut self, circle: CircleId, peer: EndpointId, offer: &KeyOffer) {
        let Some(served) = self.circles.get_mut(&circle) else {
            return;
        };
        // Only from a device our own copy still admits, and only a key made
        // (and signed) by a device admitted too.
        let admitted = &served.membership.admitted;
        if !admitted.contains(&device_of(peer))
            || !admitted.contains(&DeviceId::from_bytes(offer.by))
            || !served.keys.accept(circle, offer)
        {
            return;
        }
        let keys = served.keys.clone();
        if let Err(e) = self.home.save_circle_keys(self.lock(), circle, &keys) {
            warn!(%circle, "could not keep the circle key: {e}");
        }
        debug!(%circle, epoch = keys.epoch(), "settled on the circle key another device made");
        self.follow(circle).await;
    }

    /// Lets a peer's session in, if the schedule says so (one session per
    /// circle and peer; of two opened at once, the smaller id's goes on).
    pub(super) fn admit_sync(
        &mut self,
        circle: CircleId,
        peer: EndpointId,
    ) -> Result<u64, SyncRefusal> {
        let served = self
            .circles
            .get(&circle)
            .ok_or(SyncRefusal::UnknownCircle)?;
        if !served.peers.contains_key(&peer) {
            return Err(SyncRefusal::NotAdmitted);
        }
        let asked = schedule::Input::Asked {
            circle,
            peer,
            theirs_first: peer < self.net().id(),
        };
        for output in self.schedule.handle(asked, now()) {
            match output {
                schedule::Output::Admit { token, .. } => {
                    self.begin_session(circle, peer);
                    return Ok(token);
                }
                schedule::Output::Busy { .. } => return Err(SyncRefusal::Busy),
                _ => {}
            }
        }
        Err(SyncRefusal::Busy)
    }

    /// Asks for a sync with `peer` now; the schedule says whether one opens
    /// (or runs again once the one under way ends).
    pub(super) fn start_sync(&mut self, circle: CircleId, peer: EndpointId) {
        if peer == self.net().id() {
            return;
        }
        let outputs = self
            .schedule
            .handle(schedule::Input::Wanted { circle, peer }, now());
        self.carry_out(outputs);
    }

    /// Time passed: syncs with the peers due for anti-entropy, and asks
    /// for gossip neighbours where a circle is short of them.
    pub(super) fn tick(&mut self) {
        let outputs = self.schedule.handle(schedule::Input::Tick, now());
        self.carry_out(outputs);
    }

    /// Carries out what the schedule said: opens sessions, asks for
    /// neighbours. (Admitting and closing are answered where they are asked.)
    fn carry_out(&mut self, outputs: Vec<schedule::Output<CircleId, EndpointId>>) {
        for output in outputs {
            match output {
                schedule::Output::Open {
                    circle,
                    peer,
                    token,
                } => {
                    self.begin_session(circle, peer);
                    let dialer = self.dialer.clone();
                    let tx = self.sessions_tx.clone();
                    self.tasks.spawn(
                        session::sync_as_opener(dialer, tx, circle, peer, token)
                            .instrument(self.span.clone()),
                    );
                }
                schedule::Output::Meet {
                    circle,
                    candidates,
                    missing,
                } => self.meet(circle, candidates, missing),
                schedule::Output::Admit { .. }
                | schedule::Output::Busy { .. }
                | schedule::Output::Closed { .. } => {}
            }
        }
    }

    /// Whether `session` is the one the schedule has under way with its
    /// peer (a session that lost a tie-break is not answered).
    pub(super) fn current(&self, session: SessionId) -> bool {
        self.schedule.current(session.circle, session.peer) == Some(session.token)
    }

    /// A session with `peer` starts from what this copy holds now.
    fn begin_session(&mut self, circle: CircleId, peer: EndpointId) {
        if let Some(served) = self.circles.get_mut(&circle) {
            let heads = served.store.circle().heads();
            if let Some(p) = served.peers.get_mut(&peer) {
                p.begin_session(&heads);
            }
        }
    }

    pub(super) async fn sync_receive(
        &mut self,
        circle: CircleId,
        peer: EndpointId,
        heads: &[SignedHead],
        msg: Option<&[u8]>,
    ) -> Result<(), SyncRefusal> {
        let served = self
            .circles
            .get_mut(&circle)
            .ok_or(SyncRefusal::UnknownCircle)?;
        let learned = served.book.learn(circle, heads) > 0;
        let Some(msg) = msg else {
            if learned {
                self.keep_book(circle);
            }
            return Ok(());
        };
        let Served {
            store, peers, book, ..
        } = served;
        let p = peers.get_mut(&peer).ok_or(SyncRefusal::NotAdmitted)?;
        let before = store.circle().heads();
        let applied = store.edit(|c| -> Result<_, StoreError> {
            Ok(c.sync_receive_verified(&mut p.sync, msg, book)?)
        })?;
        p.session_in += applied.applied;
        let changed = store.circle().heads() != before;
        self.note_refused(circle, peer, &applied);
        if changed || learned {
            self.keep_book(circle);
        }
        if changed {
            self.changed(circle);
            self.refresh_admitted().await;
        }
        Ok(())
    }

    pub(super) fn sync_end(
        &mut self,
        circle: CircleId,
        peer: EndpointId,
        token: u64,
        ok: bool,
        refused: bool,
    ) {
        let ended = schedule::Input::Ended {
            circle,
            peer,
            token,
            ok,
        };
        let Some(again) = self
            .schedule
            .handle(ended, now())
            .into_iter()
            .find_map(|output| match output {
                schedule::Output::Closed { again, .. } => Some(again),
                _ => None,
            })
        else {
            // A session that lost the tie-break to the peer's: nothing to record.
            return;
        };
        let Some(p) = self
            .circles
            .get_mut(&circle)
            .and_then(|s| s.peers.get_mut(&peer))
        else {
            return;
        };
        let (got, sent) = (
            std::mem::take(&mut p.session_in),
            std::mem::take(&mut p.session_out),
        );
        // Something changed hands, or could have: an idle check-in is one
        // where the peer already had all of ours and sent nothing new.
        let told = ok && (got > 0 || !p.level);
        if ok {
            p.last_synced = Some(Timestamp::now());
        }
        // An idle check-in changes nothing worth a write (its time is kept
        // in memory until the next session that exchanges something).
        if told || !ok {
            self.keep_peer(circle, peer);
        }
        if told && tracing::enabled!(tracing::Level::INFO) {
            info!(%circle, "synced with {}: {got} changes in, {} KB out", self.who(circle, peer), sent.div_ceil(1024));
        }
        self.remember_addr(peer);
        self.emit(Event::Synced {
            circle,
            peer: device_of(peer),
            ok,
        });
        // Once a peer has had everything (or shut us out as departed), the
        // others know this member left.
        let left = (ok || refused)
            && self
                .circles
                .get(&circle)
                .is_some_and(|s| s.membership.left.contains(&self.me.member.id()));
        if left {
            self.unserve_left(circle);
        } else if again {
            self.start_sync(circle, peer);
        }
    }
}
