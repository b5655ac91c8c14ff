//! The node's actor: the one task that owns the circles, the store and the
//! network, and reacts to requests, incoming connections, gossip and timers
//! in a single `select!` loop.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use n0_future::StreamExt;
use roundtable_core::keys::{self, Sealed};
use roundtable_core::wire::{self, Body, JoinReply, JoinRequest, WelcomeCircle};
use roundtable_core::{
    Applied, ChangeHash, Circle, CircleId, DeviceCert, DeviceId, EntityId, EnvelopeError, EpochKey,
    HeadBook, InviteKind, InviteSecret, KeyOffer, Keyring, MemberId, MemberKey, Membership, Op,
    PeerSync, Profile, Redemption, ReplayFilter, SignedHead, Timestamp, UNKNOWN_INVITE,
};
use roundtable_net::{
    CircleTicket, Dialer, EndpointAddr, EndpointId, GossipEvent, GossipSender, Incoming, Net,
    topic_for,
};
use roundtable_store::{CircleStore, Home, Identity, NodeRecord, StoreError, WriteLock};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::{Instrument, debug, error_span, info, warn};

use crate::handle::{NodeHandle, Request};
use crate::schedule::{self, Schedule, Timing};
use crate::session::{self, SessionId, SessionRequest, SyncRefusal, Welcome};
use crate::{CircleStatus, DeviceStatus, Event, NodeConfig, NodeError, Status};

mod circles;
mod gossip;
mod join;
mod peers;
mod sync;

/// What is kept about a peer between runs.
#[derive(Serialize, Deserialize)]
struct PeerRecord {
    state: Vec<u8>,
    last_synced: Option<i64>,
}

/// What a circle keeps of one peer: what the two share, and the session
/// under way. When to sync with it is the [`Schedule`]'s to say.
struct Peer {
    sync: PeerSync,
    last_synced: Option<Timestamp>,
    /// This session's changes applied from the peer, and bytes sent to it.
    session_in: usize,
    session_out: usize,
    /// At this session's start the peer had everything we had.
    level: bool,
    /// Signed heads (by change hash) this session has sent the peer.
    heads_sent: HashSet<[u8; 32]>,
}

impl Peer {
    fn new(sync: PeerSync, last_synced: Option<Timestamp>) -> Self {
        Self {
            sync,
            last_synced,
            session_in: 0,
            session_out: 0,
            level: false,
            heads_sent: HashSet::new(),
        }
    }

    /// Starts a session with this peer, while this copy is at `heads`.
    fn begin_session(&mut self, heads: &[ChangeHash]) {
        self.sync.new_session();
        self.level = self.sync.level_with(heads);
        self.heads_sent.clear();
    }
}

struct Served {
    store: CircleStore,
    /// The circle keys of the current epoch.
    keys: Keyring,
    /// Proofs of who wrote what (see `roundtable_core::authorship`).
    book: HeadBook,
    /// Who is in, as the circle says now.
    membership: Membership,
    replays: ReplayFilter,
    sender: Option<GossipSender>,
    _reader: Option<AbortOnDropHandle<()>>,
    peers: BTreeMap<EndpointId, Peer>,
    /// The last reading and the heads it was read at.
    reading: Option<(Vec<roundtable_core::ChangeHash>, crate::Reading)>,
    /// Folding the log in failed at the last try.
    compact_failing: bool,
}

pub(crate) struct Actor {
    config: NodeConfig,
    /// The node's span, which every task it spawns carries too.
    span: tracing::Span,
    /// Ends when the [`crate::Node`] is dropped: the node then stops as
    /// if asked to.
    node_gone: oneshot::Receiver<()>,
    home: Home,
    lock: Option<WriteLock>,
    me: Identity,
    net: Option<Net>,
    dialer: Dialer,
    circles: BTreeMap<CircleId, Served>,
    /// Circles whose files could not be opened, and why.
    unopened: BTreeMap<CircleId, String>,
    /// Circles whose head book changed since it was last written.
    unsaved_books: BTreeSet<CircleId>,
    /// What the node's handles ask (the public API).
    rx: mpsc::Receiver<Request>,
    /// What sessions and other tasks ask; they get `sessions_tx`.
    sessions_tx: mpsc::Sender<SessionRequest>,
    sessions_rx: mpsc::Receiver<SessionRequest>,
    incoming: mpsc::Receiver<Incoming>,
    gossip_tx: mpsc::Sender<(CircleId, GossipEvent)>,
    gossip_rx: mpsc::Receiver<(CircleId, GossipEvent)>,
    events: broadcast::Sender<Event>,
    tasks: JoinSet<()>,
    /// Sync sessions peers opened, each ending with its peer's id.
    answering: JoinSet<EndpointId>,
    /// How many of those each peer has open.
    answering_per_peer: HashMap<EndpointId, usize>,
    /// Join requests being served (anyone may ask, so they are few at once).
    joining: JoinSet<()>,
    /// When to sync with whom: the sessions under way, and when each
    /// peer is due.
    schedule: Schedule<CircleId, EndpointId>,
    control: Option<crate::control::ControlServer>,
    /// Gossip messages dropped, by reason.
    dropped: BTreeMap<String, u64>,
    /// Received changes refused, by reason.
    refused: BTreeMap<String, u64>,
}

/// The time, as the schedule takes it (tokio's clock, so a paused test
/// clock holds for it too).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Sync sessions one peer may have open with us at once, counted from the
/// connection on (before its Hello is read).
const MAX_ANSWERING_PER_PEER: usize = 8;
/// Sync sessions peers may have open with us at once, in all.
const MAX_ANSWERING: usize = 256;
/// Join requests served at once.
const MAX_JOINING: usize = 16;

fn endpoint_of(device: DeviceId) -> Option<EndpointId> {
    EndpointId::from_bytes(device.as_bytes()).ok()
}

fn device_of(id: EndpointId) -> DeviceId {
    DeviceId::from_bytes(*id.as_bytes())
}

/// Where the sync state with a peer is kept.
fn peer_record(circle: CircleId, peer: EndpointId) -> NodeRecord {
    NodeRecord::PeerSync {
        circle,
        peer: device_of(peer),
    }
}

impl Served {
    /// The circle as it reads now; read again only when it changed.
    fn read(&mut self) -> crate::Reading {
        let heads = self.store.circle().heads();
        if let Some((at, reading)) = &self.reading
            && *at == heads
        {
            return reading.clone();
        }
        let circle = self.store.circle();
        let reading = crate::Reading {
            view: std::sync::Arc::new(circle.view()),
            membership: std::sync::Arc::new(circle.membership()),
        };
        self.reading = Some((heads, reading.clone()));
        reading
    }
}

impl Actor {
    /// Starts the actor; it stops when asked to, or when `node_gone` ends.
    pub(crate) async fn spawn(
        config: NodeConfig,
        node_gone: oneshot::Receiver<()>,
    ) -> Result<(NodeHandle, tokio::task::JoinHandle<()>), NodeError> {
        let home = Home::new(&config.home);
        let lock = home.lock("roundtable up")?;
        let (me, _) = home.ensure_identity(&lock)?;
        let (tx, rx) = mpsc::channel(256);
        let (sessions_tx, sessions_rx) = mpsc::channel(256);
        let (incoming_tx, incoming) = mpsc::channel(64);
        let (gossip_tx, gossip_rx) = mpsc::channel(1024);
        let (events, _) = broadcast::channel(1024);
        let net = Net::bind(
            *me.device.to_seed(),
            &config.net,
            Default::default(),
            incoming_tx,
        )
        .await?;
        let dialer = net.dialer();
        let span = error_span!("node", me = %me.device.id().fmt_short());
        let timing = Timing {
            anti_entropy: config.anti_entropy,
            max_backoff: config.max_backoff,
        };
        let mut actor = Actor {
            config,
            span: span.clone(),
            node_gone,
            home,
            lock: Some(lock),
            me,
            net: Some(net),
            dialer,
            circles: BTreeMap::new(),
            unopened: BTreeMap::new(),
            unsaved_books: BTreeSet::new(),
            rx,
            sessions_tx,
            sessions_rx,
            incoming,
            gossip_tx,
            gossip_rx,
            events: events.clone(),
            tasks: JoinSet::new(),
            answering: JoinSet::new(),
            answering_per_peer: HashMap::new(),
            joining: JoinSet::new(),
            schedule: Schedule::new(timing),
            control: None,
            dropped: BTreeMap::new(),
            refused: BTreeMap::new(),
        };
        actor.load_addresses();
        for id in actor.home.circle_ids()? {
            if let Err(e) = actor.open(id).await {
                warn!(circle = %id, "not serving this circle: {e}");
                actor.unopened.insert(id, e.to_string());
            }
        }
        actor.refresh_admitted().await;
        let handle = NodeHandle { tx, events };
        if actor.config.control_socket {
            let server = crate::control::serve(actor.home.root(), handle.clone(), &span)
                .map_err(|e| NodeError::Protocol(format!("control socket: {e}")))?;
            actor.control = Some(server);
        }
        let task = tokio::spawn(actor.run().instrument(span));
        Ok((handle, task))
    }

    fn lock(&self) -> &WriteLock {
        // The lock is held from spawn until shutdown, and only released after the loop ends.
        self.lock
            .as_ref()
            .expect("the writer's lock is held while the node runs")
    }

    fn net(&self) -> &Net {
        self.net
            .as_ref()
            .expect("the network runs while the node runs")
    }

    async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                Some(req) = self.rx.recv() => {
                    if let Request::Shutdown(reply) = req {
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    self.handle(req).await;
                }
                Some(req) = self.sessions_rx.recv() => self.handle_session(req).await,
                _ = &mut self.node_gone => {
                    info!("the node was dropped without a shutdown: stopping");
                    self.shutdown().await;
                    return;
                }
                Some(conn) = self.incoming.recv() => self.accept(conn),
                Some((circle, ev)) = self.gossip_rx.recv() => self.on_gossip(circle, ev).await,
                _ = tick.tick() => {
                    self.tick();
                    self.save_books();
                    self.compact_due();
                }
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
                Some(done) = self.answering.join_next(), if !self.answering.is_empty() => {
                    if let Ok(peer) = done
                        && let Some(n) = self.answering_per_peer.get_mut(&peer)
                    {
                        *n -= 1;
                        if *n == 0 {
                            self.answering_per_peer.remove(&peer);
                        }
                    }
                }
                Some(_) = self.joining.join_next(), if !self.joining.is_empty() => {}
            }
        }
    }

    /// Starts serving a connection a peer opened, unless that peer (or
    /// everyone) already has as many open as we serve at once: then the
    /// connection is closed at once, before anything is read from it.
    fn accept(&mut self, conn: Incoming) {
        let tx = self.sessions_tx.clone();
        match conn {
            Incoming::Sync(conn) => {
                let peer = conn.remote_id();
                let open = self.answering_per_peer.entry(peer).or_default();
                if *open >= MAX_ANSWERING_PER_PEER || self.answering.len() >= MAX_ANSWERING {
                    let n = Self::count(&mut self.dropped, "too many sync sessions at once");
                    debug!(peer = %peer.fmt_short(), count = n, "refused a sync session: too many open");
                    conn.close(1u32.into(), b"busy");
                    return;
                }
                *open += 1;
                self.answering.spawn(
                    async move {
                        session::sync_as_answerer(conn, tx).await;
                        peer
                    }
                    .instrument(self.span.clone()),
                );
            }
            Incoming::Join(conn) => {
                if self.joining.len() >= MAX_JOINING {
                    let n = Self::count(&mut self.dropped, "too many joins at once");
                    debug!(count = n, "refused a join: too many at once");
                    conn.close(1u32.into(), b"busy");
                    return;
                }
                self.joining
                    .spawn(session::serve_join(conn, tx).instrument(self.span.clone()));
            }
        }
    }

    /// A peer device as a person knows it: "Sam's phone" or "Sam (3fa2…)".
    fn who(&self, circle: CircleId, peer: EndpointId) -> String {
        let device = device_of(peer);
        self.circles
            .get(&circle)
            .and_then(|s| {
                let view = s.store.circle().view();
                view.members.iter().find_map(|(m, mm)| {
                    let d = mm.devices.get(&device)?;
                    Some(if d.name.is_empty() {
                        format!("{} ({})", view.name_of(m), device.fmt_short())
                    } else {
                        format!("{} ({})", view.name_of(m), d.name)
                    })
                })
            })
            .unwrap_or_else(|| device.fmt_short())
    }

    /// Why a circle is not served here.
    fn unknown(&self, circle: CircleId) -> NodeError {
        match self.unopened.get(&circle) {
            Some(reason) => NodeError::Unopened {
                circle,
                reason: reason.clone(),
            },
            None => NodeError::UnknownCircle(circle),
        }
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// A circle changed here: followers are told, and its peers are due for
    /// anti-entropy within the usual interval (sooner than a failed
    /// peer's backoff would say).
    fn changed(&mut self, circle: CircleId) {
        self.emit(Event::Changed { circle });
        self.schedule
            .handle(schedule::Input::Changed { circle }, now());
    }

    async fn handle(&mut self, req: Request) {
        match req {
            Request::Circles(reply) => {
                let list = self
                    .circles
                    .iter()
                    .map(|(id, s)| (*id, s.store.circle().name()))
                    .chain(self.unopened.keys().map(|id| (*id, "(damaged)".to_owned())))
                    .collect();
                let _ = reply.send(list);
            }
            Request::Read { circle, reply } => {
                let reading = match self.circles.get_mut(&circle) {
                    Some(s) => Ok(s.read()),
                    None => Err(self.unknown(circle)),
                };
                let _ = reply.send(reading);
            }
            Request::Heads { circle, reply } => {
                let heads = self
                    .circles
                    .get(&circle)
                    .map(|s| s.store.circle().heads())
                    .ok_or_else(|| self.unknown(circle));
                let _ = reply.send(heads);
            }
            Request::Doc { circle, reply } => {
                let doc = self
                    .circles
                    .get(&circle)
                    .map(|s| s.store.circle().save())
                    .ok_or_else(|| self.unknown(circle));
                let _ = reply.send(doc);
            }
            Request::Perform {
                circle,
                op,
                now,
                reply,
            } => {
                let _ = reply.send(self.perform(circle, &op, now).await);
            }
            Request::Create {
                name,
                about,
                display_name,
                now,
                reply,
            } => {
                let _ = reply.send(self.create(&name, &about, &display_name, now).await);
            }
            Request::Invite {
                circle,
                kind,
                expires_at,
                uses,
                now,
                reply,
            } => {
                let _ = reply.send(self.invite(circle, kind, expires_at, uses, now).await);
            }
            Request::JoinPrep(reply) => {
                let _ = reply.send((self.me.clone(), self.dialer.clone()));
            }
            Request::Welcome {
                welcome,
                ticket,
                reply,
            } => {
                let _ = reply.send(self.welcome(welcome, &ticket).await);
            }
            Request::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Request::Addr(reply) => {
                let _ = reply.send(self.net().addr());
            }
            Request::Identity(reply) => {
                let _ = reply.send((self.me.device.id(), self.me.member.id()));
            }
            Request::Shutdown(_) => {}
        }
    }

    /// Answers what a session (or another of the node's tasks) asks.
    async fn handle_session(&mut self, req: SessionRequest) {
        match req {
            SessionRequest::SyncAdmit {
                circle,
                peer,
                reply,
            } => {
                let _ = reply.send(self.admit_sync(circle, peer));
            }
            SessionRequest::SyncGenerate { session, reply } => {
                let round = if self.current(session) {
                    Ok(self.sync_generate(session.circle, session.peer))
                } else {
                    Err(SyncRefusal::Superseded)
                };
                let _ = reply.send(round);
            }
            SessionRequest::SyncReceive {
                session,
                heads,
                msg,
                reply,
            } => {
                let received = if self.current(session) {
                    self.sync_receive(session.circle, session.peer, &heads, msg.as_deref())
                        .await
                } else {
                    Err(SyncRefusal::Superseded)
                };
                let _ = reply.send(received);
            }
            SessionRequest::SyncKeyOut { session, reply } => {
                let offer = self
                    .circles
                    .get(&session.circle)
                    .filter(|_| self.current(session))
                    .filter(|s| s.membership.admitted.contains(&device_of(session.peer)))
                    .and_then(|s| s.keys.offer());
                let _ = reply.send(offer);
            }
            SessionRequest::SyncKeyIn { session, offer } => {
                if self.current(session) {
                    self.key_in(session.circle, session.peer, &offer).await;
                }
            }
            SessionRequest::SyncEnd {
                session,
                ok,
                refused,
            } => self.sync_end(session.circle, session.peer, session.token, ok, refused),
            SessionRequest::JoinServe {
                request,
                peer,
                reply,
            } => {
                let answer = self.serve_join(request, peer).await;
                let _ = reply.send(answer);
            }
            SessionRequest::Remember(addr) => self.save_address(addr),
        }
    }

    /// Edits a circle durably, then tells the circle what changed.
    async fn edit_announced<T>(
        &mut self,
        circle: CircleId,
        f: impl FnOnce(&mut Circle) -> Result<T, roundtable_core::CoreError>,
    ) -> Result<T, NodeError> {
        if !self.circles.contains_key(&circle) {
            return Err(self.unknown(circle));
        }
        let served = self.circles.get_mut(&circle).expect("checked above");
        let before = served.store.circle().heads();
        let out = served
            .store
            .edit(|c| -> Result<_, StoreError> { Ok(f(c)?) })?;
        self.announce(circle, &before).await;
        Ok(out)
    }

    async fn perform(
        &mut self,
        circle: CircleId,
        op: &Op,
        now: Timestamp,
    ) -> Result<Option<EntityId>, NodeError> {
        let member = self.me.member.id();
        let out = self
            .edit_announced(circle, |c| c.perform(op, member, now, &mut rand::rng()))
            .await?;
        if let Op::Leave { forget: true } = op {
            self.home.mark_forget(self.lock(), circle)?;
        }
        Ok(out)
    }

    async fn create(
        &mut self,
        name: &str,
        about: &str,
        display_name: &str,
        now: Timestamp,
    ) -> Result<CircleId, NodeError> {
        let circle = Circle::create(
            name,
            about,
            &self.me.cert,
            &Profile::named(display_name),
            now,
            &mut rand::rng(),
        )?;
        let id = circle.id();
        let keys = Keyring::with(EpochKey::random(id, 0, &self.me.device, &mut rand::rng()));
        let store = self.home.create_circle(self.lock(), &circle, &keys)?;
        self.serve(id, store, keys).await;
        self.changed(id);
        Ok(id)
    }

    async fn invite(
        &mut self,
        circle: CircleId,
        kind: InviteKind,
        expires_at: Timestamp,
        uses: u32,
        now: Timestamp,
    ) -> Result<CircleTicket, NodeError> {
        let member = self.me.member.id();
        let (invite, secret) = self
            .edit_announced(circle, |c| {
                c.create_invite(member, kind, expires_at, uses, now, &mut rand::rng())
            })
            .await?;
        let mut ticket = CircleTicket {
            circle,
            inviter: self.net().addr(),
            invite,
            secret,
            kind,
            expires_at,
            uses,
            sig: [0; 64],
        };
        ticket.sign(&self.me.device);
        Ok(ticket)
    }

    async fn shutdown(&mut self) {
        info!("shutting down");
        self.control = None;
        let _ = std::fs::remove_file(crate::control::socket_path(self.home.root()));
        // Leave every topic: drop the senders and the readers.
        for s in self.circles.values_mut() {
            s.sender = None;
            s._reader = None;
        }
        self.tasks.shutdown().await;
        self.answering.shutdown().await;
        self.joining.shutdown().await;
        // Sessions only move bytes: what they exchanged is already in the
        // actor's sync states, kept here as a session's end would keep it.
        let running: Vec<(CircleId, EndpointId)> =
            self.schedule.sessions().map(|(c, p, _)| (c, p)).collect();
        for (circle, peer) in running {
            self.keep_peer(circle, peer);
        }
        self.save_books();
        if let Some(net) = self.net.take() {
            net.shutdown().await;
        }
        self.circles.clear();
        self.lock = None;
    }
}
