//! The catch-up path: sync sessions (opening, answering, each frame, how
//! each ends), the keys handed over after them, and anti-entropy.

use crate::session::{MAX_ROUNDS, Phase, Round, SessionError, SyncSession, frame_name};

use super::*;

impl Machine {
    /// A peer opened a sync session and sent `hello`. Returns the session,
    /// if it was let in, and what to send: `Ready`, or `Refused` with the
    /// reason (the session is then over).
    pub fn answer(
        &mut self,
        peer: DeviceId,
        hello: SyncFrame,
        now: Now,
    ) -> (Option<SessionId>, Step) {
        // A Hello that reads is in our wire version.
        self.other_versions.remove(&peer);
        let SyncFrame::Hello { circle } = hello else {
            let got = frame_name(&hello);
            let unexpected = SessionError::Unexpected {
                expected: "Hello",
                got,
            };
            return (None, Step::failed(unexpected));
        };
        let circle = CircleId::from_bytes(circle);
        match self.admit_sync(circle, peer, now) {
            Ok(token) => {
                let session = SessionId {
                    circle,
                    peer,
                    token,
                };
                self.set_session(session, SyncSession::answerer(token));
                (Some(session), Step::send(vec![SyncFrame::Ready]))
            }
            Err(refusal) => {
                let reason = refusal.to_string();
                let step = Step {
                    send: vec![SyncFrame::Refused { reason }],
                    end: Some(Err(refusal.into())),
                };
                (None, step)
            }
        }
    }

    /// The peer of `session` sent `frame`: what to send back, and whether
    /// the session is over. A session that is not current (it lost a
    /// tie-break, or already ended) is not answered.
    pub fn frame(
        &mut self,
        session: SessionId,
        frame: SyncFrame,
        now: Now,
        rng: &mut impl RngCore,
    ) -> Step {
        self.other_versions.remove(&session.peer);
        let Some(mut state) = self.take_session(session) else {
            return Step::failed(SyncRefusal::Superseded);
        };
        let step = self.advance(session, &mut state, frame, now, rng);
        match &step.end {
            Some(result) => self.end_session(session, result.is_ok(), false, now, rng),
            None => {
                if !self.set_session(session, state) {
                    // The peer is no longer in: nothing more to say to it.
                    self.end_session(session, false, false, now, rng);
                    return Step::failed(SyncRefusal::NotAdmitted);
                }
            }
        }
        step
    }

    /// The session this device opened reached its peer: its first frames,
    /// the Hello and the first round (worked out now, from what this copy
    /// holds now, so a peer that never answers costs nothing but the
    /// dial). The first round goes with the Hello, without waiting for
    /// Ready. A session no longer current ends here.
    pub fn connected(&mut self, session: SessionId) -> Step {
        let Some(mut state) = self.take_session(session) else {
            return Step::failed(SyncRefusal::Superseded);
        };
        let (heads, msg) = self.generate(session);
        state.said = msg.is_some();
        if !self.set_session(session, state) {
            return Step::failed(SyncRefusal::NotAdmitted);
        }
        Step::send(vec![
            SyncFrame::Hello {
                circle: *session.circle.as_bytes(),
            },
            SyncFrame::Round { heads, msg },
        ])
    }

    /// A sync with `peer` failed because it speaks wire version `version`
    /// (what it sent did not read as ours, or it closed the connection
    /// naming its own): status shows which of the two needs an update,
    /// until a session with it reads again.
    pub fn peer_speaks(&mut self, peer: DeviceId, version: u8) {
        if version == roundtable_core::wire::WIRE_VERSION {
            self.other_versions.remove(&peer);
        } else {
            self.other_versions.insert(peer, version);
        }
    }

    /// The session broke before it ended (the connection failed, the peer
    /// went silent). `refused` says the peer shut this device out as not
    /// admitted: it knows this member departed.
    pub fn broken(&mut self, session: SessionId, refused: bool, now: Now, rng: &mut impl RngCore) {
        if self.current(session) {
            self.end_session(session, false, refused, now, rng);
        }
    }

    fn advance(
        &mut self,
        session: SessionId,
        state: &mut SyncSession,
        frame: SyncFrame,
        now: Now,
        rng: &mut impl RngCore,
    ) -> Step {
        match (state.phase, frame) {
            (Phase::Opening, SyncFrame::Ready) => {
                state.phase = Phase::Rounds;
                Step::default()
            }
            (Phase::Opening, SyncFrame::Refused { reason }) => {
                Step::failed(SessionError::Refused(reason))
            }
            (Phase::Rounds, SyncFrame::Round { heads, msg }) => {
                let heard = msg.is_some();
                let before = self.session_in(session);
                if let Err(refusal) = self.receive(session, &heads, msg.as_deref(), now, rng) {
                    return Step::failed(refusal);
                }
                if self.session_in(session) > before {
                    state.brought += 1;
                }
                // Enough for one session: the rest comes with the next.
                if state.brought >= crate::rate::SESSION_ROUNDS {
                    state.phase = Phase::Keys;
                    return Step::send(vec![SyncFrame::Keys(self.key_out(session))]);
                }
                // Round k of the opener pairs with round k of the answerer;
                // a pair in which neither said anything settles the session.
                // The opener sees that on the answerer's round, the
                // answerer on its own.
                let opener = state.role == schedule::Role::Opener;
                let mut send = Vec::new();
                if !(opener && !state.said && !heard) {
                    state.rounds += 1;
                    if state.rounds > MAX_ROUNDS {
                        return Step::failed(SessionError::NotConverging);
                    }
                    let (heads, msg) = self.generate(session);
                    state.said = msg.is_some();
                    send.push(SyncFrame::Round { heads, msg });
                }
                if send.is_empty() || (!opener && !state.said && !heard) {
                    state.phase = Phase::Keys;
                    send.push(SyncFrame::Keys(self.key_out(session)));
                }
                Step::send(send)
            }
            // The peer had enough for one session (or settled): its key
            // ends the rounds, and ours answers it.
            (Phase::Rounds, SyncFrame::Keys(offer)) => {
                if let Some(offer) = offer {
                    self.key_in(session, &offer, now);
                }
                Step {
                    send: vec![SyncFrame::Keys(self.key_out(session))],
                    end: Some(Ok(())),
                }
            }
            (Phase::Keys, SyncFrame::Keys(offer)) => {
                if let Some(offer) = offer {
                    self.key_in(session, &offer, now);
                }
                Step {
                    send: Vec::new(),
                    end: Some(Ok(())),
                }
            }
            (phase, other) => {
                let expected = match phase {
                    Phase::Opening => "Ready",
                    Phase::Rounds => "a sync round",
                    Phase::Keys => "keys",
                };
                Step::failed(SessionError::Unexpected {
                    expected,
                    got: frame_name(&other),
                })
            }
        }
    }

    /// How many changes `session` has applied from its peer so far.
    fn session_in(&self, session: SessionId) -> usize {
        self.circles
            .get(&session.circle)
            .and_then(|s| s.peers.get(&session.peer))
            .map_or(0, |p| p.session_in)
    }

    /// The state of `session`, taken out while a frame is handled; `None`
    /// if it is not the current session with its peer.
    fn take_session(&mut self, session: SessionId) -> Option<SyncSession> {
        if !self.current(session) {
            return None;
        }
        let peer = self
            .circles
            .get_mut(&session.circle)?
            .peers
            .get_mut(&session.peer)?;
        peer.session.take_if(|s| s.token == session.token)
    }

    /// Puts a session's state in its place; false if its peer is gone.
    fn set_session(&mut self, session: SessionId, state: SyncSession) -> bool {
        match self
            .circles
            .get_mut(&session.circle)
            .and_then(|s| s.peers.get_mut(&session.peer))
        {
            Some(p) => {
                p.session = Some(state);
                true
            }
            None => false,
        }
    }

    /// This side's next round: every proof known, and our own newest,
    /// that this session has not sent yet, and a sync message. Changes
    /// that came in since the last round (by gossip, or from another
    /// session) go out with the heads that prove them, else the peer would
    /// have to refuse them as unproven.
    fn generate(&mut self, session: SessionId) -> Round {
        let Some(s) = self.circles.get_mut(&session.circle) else {
            return (Vec::new(), None);
        };
        let Some(p) = s.peers.get_mut(&session.peer) else {
            return (Vec::new(), None);
        };
        let mut heads = s.book.all();
        heads.extend(SignedHead::sign_all(s.store.circle(), &self.me.device));
        heads.retain(|h| p.heads_sent.insert(h.hash));
        let msg = s.store.circle().sync_generate(&mut p.sync);
        p.session_out += msg.as_ref().map_or(0, Vec::len);
        (heads, msg)
    }

    fn receive(
        &mut self,
        session: SessionId,
        heads: &[SignedHead],
        msg: Option<&[u8]>,
        now: Now,
        rng: &mut impl RngCore,
    ) -> Result<(), SyncRefusal> {
        let SessionId { circle, peer, .. } = session;
        if heads.is_empty() && msg.is_none() {
            return Ok(());
        }
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
            self.changed(circle, now);
            self.refresh_admitted(now, rng);
        }
        self.settle_forks(circle, &applied, &before, now, rng);
        Ok(())
    }

    /// The key to hand the peer after the rounds, if this copy still
    /// admits it.
    fn key_out(&self, session: SessionId) -> Option<KeyOffer> {
        self.circles
            .get(&session.circle)
            .filter(|s| s.membership.admitted.contains(&session.peer))
            .and_then(|s| s.keys.offer())
    }

    /// A key the peer handed over: taken only from a device this copy
    /// still admits, and only a key made (and signed) by a device admitted
    /// too.
    fn key_in(&mut self, session: SessionId, offer: &KeyOffer, now: Now) {
        let circle = session.circle;
        let Some(served) = self.circles.get_mut(&circle) else {
            return;
        };
        let admitted = &served.membership.admitted;
        if !admitted.contains(&session.peer)
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
        self.follow(circle, now);
    }

    /// Lets a peer's session in, if the schedule says so (one session per
    /// circle and peer; of two opened at once, the smaller id's goes on).
    fn admit_sync(
        &mut self,
        circle: CircleId,
        peer: DeviceId,
        now: Now,
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
            theirs_first: peer < self.me.device.id(),
        };
        for output in self.schedule.handle(asked, now.mono) {
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
    pub(crate) fn start_sync(
        &mut self,
        circle: CircleId,
        peer: DeviceId,
        now: Now,
        rng: &mut impl RngCore,
    ) {
        if peer == self.me.device.id() {
            return;
        }
        let outputs = self
            .schedule
            .handle(schedule::Input::Wanted { circle, peer }, now.mono);
        self.carry_out(outputs, rng);
    }

    /// Carries out what the schedule said: opens sessions, asks for
    /// neighbours. (Admitting and closing are answered where they are asked.)
    pub(crate) fn carry_out(
        &mut self,
        outputs: Vec<schedule::Output<CircleId, DeviceId>>,
        rng: &mut impl RngCore,
    ) {
        for output in outputs {
            match output {
                schedule::Output::Open {
                    circle,
                    peer,
                    token,
                } => {
                    let session = SessionId {
                        circle,
                        peer,
                        token,
                    };
                    self.begin_session(circle, peer);
                    self.set_session(session, SyncSession::opener(token));
                    self.outbox.push(Output::Open { session });
                }
                schedule::Output::Meet {
                    circle,
                    candidates,
                    missing,
                } => self.meet(circle, candidates, missing, rng),
                schedule::Output::Admit { .. }
                | schedule::Output::Busy { .. }
                | schedule::Output::Closed { .. } => {}
            }
        }
    }

    /// Whether `session` is the one the schedule has under way with its
    /// peer (a session that lost a tie-break is not answered).
    fn current(&self, session: SessionId) -> bool {
        self.schedule.current(session.circle, session.peer) == Some(session.token)
    }

    /// A session with `peer` starts from what this copy holds now.
    fn begin_session(&mut self, circle: CircleId, peer: DeviceId) {
        if let Some(served) = self.circles.get_mut(&circle) {
            let heads = served.store.circle().heads();
            if let Some(p) = served.peers.get_mut(&peer) {
                p.sync.new_session();
                p.level = p.sync.level_with(&heads);
                p.heads_sent.clear();
                p.session = None;
            }
        }
    }

    /// Records how a session ended: when the peer is due again, what the
    /// two now share, and who hears of it.
    fn end_session(
        &mut self,
        session: SessionId,
        ok: bool,
        refused: bool,
        now: Now,
        rng: &mut impl RngCore,
    ) {
        let SessionId {
            circle,
            peer,
            token,
        } = session;
        let ended = schedule::Input::Ended {
            circle,
            peer,
            token,
            ok,
        };
        let Some(again) = self
            .schedule
            .handle(ended, now.mono)
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
        p.session = None;
        let (got, sent) = (
            std::mem::take(&mut p.session_in),
            std::mem::take(&mut p.session_out),
        );
        // Something changed hands, or could have: an idle check-in is one
        // where the peer already had all of ours and sent nothing new.
        let told = ok && (got > 0 || !p.level);
        if ok {
            p.last_synced = Some(now.wall);
        }
        // An idle check-in changes nothing worth a write (its time is kept
        // in memory until the next session that exchanges something), nor
        // does a failed one that brought nothing (a peer away: what the
        // two share is as it was).
        if told || got > 0 {
            self.keep_peer(circle, peer);
        }
        if told && tracing::enabled!(tracing::Level::INFO) {
            info!(%circle, "synced with {}: {got} changes in, {} KB out", self.who(circle, peer), sent.div_ceil(1024));
        }
        if ok {
            // Only where a session went through is worth keeping: a failed
            // one tells nothing of where the peer is now.
            self.outbox.push(Output::Reached(peer));
        }
        self.emit(Event::Synced { circle, peer, ok });
        // Once a peer has had everything (or shut us out as departed), the
        // others know this member left.
        let left = (ok || refused)
            && self
                .circles
                .get(&circle)
                .is_some_and(|s| s.membership.left.contains(&self.me.member.id()));
        if left {
            self.unserve_left(circle, now);
            return;
        }
        // Shut out while this copy has us in: the peer may know of a
        // removal this device never received.
        if refused {
            self.ask_farewell(circle, peer, now);
        }
        if again {
            self.start_sync(circle, peer, now, rng);
        }
    }

    /// Writes what this device knows it shares with `peer` (Automerge's
    /// sync state) and when they last synced.
    pub(crate) fn keep_peer(&self, circle: CircleId, peer: DeviceId) {
        let Some(p) = self.circles.get(&circle).and_then(|s| s.peers.get(&peer)) else {
            return;
        };
        let record = PeerRecord {
            state: p.sync.persist(),
            last_synced: p.last_synced.map(Timestamp::as_millis),
        };
        if let Ok(bytes) = postcard::to_stdvec(&record)
            && let Err(e) =
                self.home
                    .write_record(self.lock(), circles::peer_record(circle, peer), &bytes)
        {
            debug!("could not keep the sync state of {}: {e}", peer.fmt_short());
        }
    }
}
