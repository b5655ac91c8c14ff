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

    /// Lets a peer's session in. When both sides opened one at the same
    /// time, the session opened by the smaller device id goes on and the
    /// other is refused, so exactly one runs.
    pub(super) fn admit_sync(
        &mut self,
        circle: CircleId,
        peer: EndpointId,
    ) -> Result<u64, SyncRefusal> {
        let me = self.net().id();
        let busy = self.running.get(&(circle, peer)).map(|(_, role)| *role);
        let served = self
            .circles
            .get_mut(&circle)
            .ok_or(SyncRefusal::UnknownCircle)?;
        let heads = served.store.circle().heads();
        let Some(p) = served.peers.get_mut(&peer) else {
            return Err(SyncRefusal::NotAdmitted);
        };
        // One session per circle and peer: a second one the peer opens is
        // refused, and so is theirs when ours is on and our id is smaller.
        // Only when both opened at once and theirs wins does it replace ours.
        let busy = match busy {
            Some(Role::Answerer) => true,
            Some(Role::Opener) => peer > me,
            None => false,
        };
        if busy {
            return Err(SyncRefusal::Busy);
        }
        p.begin_session(&heads);
        self.next_token += 1;
        self.running
            .insert((circle, peer), (self.next_token, Role::Answerer));
        Ok(self.next_token)
    }

    pub(super) fn start_sync(&mut self, circle: CircleId, peer: EndpointId) {
        if peer == self.net().id() {
            return;
        }
        let busy = self.running.contains_key(&(circle, peer));
        let Some(served) = self.circles.get_mut(&circle) else {
            return;
        };
        let heads = served.store.circle().heads();
        let Some(p) = served.peers.get_mut(&peer) else {
            return;
        };
        if busy {
            // What called for this may have come after the running session
            // exchanged what it covers: go again when it ends.
            p.again = true;
            return;
        }
        p.begin_session(&heads);
        self.next_token += 1;
        let token = self.next_token;
        self.running.insert((circle, peer), (token, Role::Opener));
        let dialer = self.dialer.clone();
        let tx = self.tx.clone();
        self.tasks.spawn(
            session::sync_as_opener(dialer, tx, circle, peer, token).instrument(self.span.clone()),
        );
    }

    pub(super) fn anti_entropy(&mut self) {
        let now = Instant::now();
        let due: Vec<(CircleId, EndpointId)> = self
            .circles
            .iter()
            .flat_map(|(id, s)| {
                s.peers
                    .iter()
                    .filter(|(_, p)| p.next <= now)
                    .map(|(peer, _)| (*id, *peer))
            })
            .filter(|k| !self.running.contains_key(k))
            .collect();
        for (circle, peer) in due {
            if let Some(p) = self
                .circles
                .get_mut(&circle)
                .and_then(|s| s.peers.get_mut(&peer))
            {
                // Until this attempt ends, do not try again.
                p.next = now + self.config.max_backoff * 4;
            }
            self.start_sync(circle, peer);
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
        if self.running.get(&(circle, peer)).map(|(t, _)| *t) != Some(token) {
            // A session that lost the tie-break to the peer's: nothing to record.
            return;
        }
        self.running.remove(&(circle, peer));
        let (interval, max) = (self.config.anti_entropy, self.config.max_backoff);
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
        let again = std::mem::take(&mut p.again) && ok;
        // Something changed hands, or could have: an idle check-in is one
        // where the peer already had all of ours and sent nothing new.
        let told = ok && (got > 0 || !p.level);
        if ok {
            p.backoff = interval;
        } else {
            p.backoff = (p.backoff * 2).clamp(Duration::from_secs(1), max);
        }
        p.next = Instant::now() + p.backoff;
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
