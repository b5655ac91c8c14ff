//! The circles this device serves: opening and serving each, following
//! its gossip topic, keeping who is admitted in step with its membership
//! (and the epoch's key with it), folding its log in, and letting go of a
//! circle its member left.

use super::*;

impl Actor {
    /// Opens a stored circle and joins its gossip topic.
    pub(super) async fn open(&mut self, id: CircleId) -> Result<(), NodeError> {
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
                let k = Keyring::with(EpochKey::random(id, 0, &self.me.device, &mut rand::rng()));
                self.home.save_circle_keys(self.lock(), id, &k)?;
                k
            }
        };
        self.serve(id, store, keys).await;
        Ok(())
    }

    pub(super) async fn serve(&mut self, id: CircleId, mut store: CircleStore, keys: Keyring) {
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
                    first: self.config.anti_entropy,
                },
                now(),
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
                sender: None,
                _reader: None,
                peers,
                reading: None,
                compact_failing: false,
            },
        );
        if self.circles[&id].book.len() != kept {
            self.keep_book(id);
        }
        // A circle this member left, and that a peer already has all of:
        // nothing more to serve.
        let served = &self.circles[&id];
        if served.membership.left.contains(&self.me.member.id())
            && served
                .peers
                .values()
                .any(|p| served.store.circle().peer_has_everything(&p.sync))
        {
            self.unserve_left(id);
            return;
        }
        // Let the circle's devices in (and out) before gossip dials them.
        self.admit_peers();
        self.follow(id).await;
    }

    /// Tells the network who may connect: every peer of every circle served.
    pub(super) fn admit_peers(&self) {
        let all: BTreeSet<EndpointId> = self
            .circles
            .values()
            .flat_map(|s| s.peers.keys().copied())
            .collect();
        self.net().admitted().set(all);
    }

    /// Joins the gossip topic of a circle's current key (leaving the one
    /// of an earlier key, if any).
    pub(super) async fn follow(&mut self, id: CircleId) {
        let Some(served) = self.circles.get_mut(&id) else {
            return;
        };
        served.sender = None;
        served._reader = None;
        self.schedule
            .handle(schedule::Input::Followed { circle: id }, now());
        let Some(served) = self.circles.get_mut(&id) else {
            return;
        };
        let topic = topic_for(served.keys.active().secret(), id.as_bytes());
        let devices: Vec<EndpointId> = served.peers.keys().copied().collect();
        let net = self
            .net
            .as_ref()
            .expect("the network runs while the node runs");
        match net.gossip().subscribe(topic, devices).await {
            Ok(t) => {
                let (sender, mut receiver) = t.split();
                let tx = self.gossip_tx.clone();
                let reader = tokio::spawn(
                    async move {
                        while let Some(Ok(ev)) = receiver.next().await {
                            if tx.send((id, ev)).await.is_err() {
                                break;
                            }
                        }
                    }
                    .instrument(self.span.clone()),
                );
                served.sender = Some(sender);
                served._reader = Some(AbortOnDropHandle::new(reader));
            }
            Err(e) => warn!(circle = %id, "could not follow the circle's live changes: {e}"),
        }
    }

    /// The devices, other than this one, admitted to a circle.
    pub(super) fn others(&self, membership: &Membership) -> Vec<EndpointId> {
        let mine = self.me.device.id();
        membership
            .admitted
            .iter()
            .filter(|d| **d != mine)
            .filter_map(|d| endpoint_of(*d))
            .collect()
    }

    /// Reads who is in each circle again: lets in new devices and meets
    /// them, drops devices that departed, and when the circle has gone into
    /// a new epoch, makes a key for it and moves to its gossip topic.
    pub(super) async fn refresh_admitted(&mut self) {
        let ids: Vec<CircleId> = self.circles.keys().copied().collect();
        for id in ids {
            let membership = self.circles[&id].store.circle().membership();
            let devices = self.others(&membership);
            let served = self.circles.get_mut(&id).expect("present");
            let gone: Vec<EndpointId> = served
                .peers
                .keys()
                .filter(|p| !devices.contains(p))
                .copied()
                .collect();
            let mut new = Vec::new();
            for d in &devices {
                served.peers.entry(*d).or_insert_with(|| {
                    new.push(*d);
                    Peer::new(PeerSync::fresh(), None)
                });
            }
            for peer in gone {
                served.peers.remove(&peer);
                self.schedule
                    .handle(schedule::Input::Gone { circle: id, peer }, now());
            }
            for peer in &new {
                let first = Duration::from_secs(1);
                let met = schedule::Input::Met {
                    circle: id,
                    peer: *peer,
                    first,
                };
                self.schedule.handle(met, now());
            }
            let rotated =
                served
                    .keys
                    .advance(id, membership.epoch, &self.me.device, &mut rand::rng());
            served.membership = membership;
            self.admit_peers();
            let served = self.circles.get_mut(&id).expect("present");
            if rotated {
                let keys = served.keys.clone();
                if let Err(e) = self.home.save_circle_keys(self.lock(), id, &keys) {
                    warn!(circle = %id, "could not keep the new epoch's key: {e}");
                }
                info!(circle = %id, epoch = keys.epoch(), "the circle moved to a new epoch; new key, new topic");
                self.follow(id).await;
                // Hand the new key to everyone still in.
                for d in &devices {
                    self.start_sync(id, *d);
                }
            } else if let (Some(sender), false) = (&served.sender, new.is_empty()) {
                let sender = sender.clone();
                tokio::spawn(
                    async move {
                        let _ = sender.join_peers(new).await;
                    }
                    .instrument(self.span.clone()),
                );
            }
        }
    }

    /// Folds each circle's log into its snapshot once it is due, and no
    /// sync session of the circle is under way (it would wait for it).
    pub(super) fn compact_due(&mut self) {
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
    pub(super) fn unserve_left(&mut self, circle: CircleId) {
        let Some(served) = self.circles.remove(&circle) else {
            return;
        };
        let name = served.store.circle().name();
        drop(served);
        self.schedule
            .handle(schedule::Input::LetGo { circle }, now());
        self.admit_peers();
        info!(%circle, "you left \"{name}\" and the others know; this device no longer serves it");
        if self.home.marked_forget(circle) {
            match self.home.forget_circle(self.lock(), circle) {
                Ok(()) => info!(%circle, "forgot this device's copy of \"{name}\", as asked"),
                Err(e) => warn!(%circle, "could not forget the circle's files: {e}"),
            }
        }
        self.changed(circle);
    }
}
