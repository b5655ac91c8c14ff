//! The node's actor: the one task that owns the network. It turns what
//! happens (requests, incoming connections, gossip, session frames,
//! timers) into jobs for the [`Machine`], with the time they need, and
//! carries out what the machine says. It decides nothing about a circle
//! itself, and never touches the disk: the machine and the home's files
//! live on the keeper's thread.
//!
//! - `actor/keeper.rs`: the thread that owns the machine and the files;
//! - `actor/gossip.rs`: gossip topics, neighbours, envelopes in and out;
//! - `actor/sessions.rs`: sync and join sessions, and where peers were met;
//! - here: the loop, the public API's requests, start and shutdown.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use roundtable_core::{DeviceId, MemberId, Timestamp};
use roundtable_machine::{Machine, Now, Output, Terms, Ticketed, Timing};
use roundtable_net::{CircleTicket, Dialer, EndpointId, GossipEvent, GossipSender, Incoming, Net};
use roundtable_store::{Home, NodeRecord};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::{Instrument, error, error_span, info};

use crate::handle::{NodeHandle, Request};
use crate::session::SessionRequest;
use crate::{Event, NodeConfig, NodeError};

mod gossip;
mod keeper;
mod sessions;

use keeper::{Batch, Keeper, Kept};

/// How often a steward's shelf is read whole again (see
/// [`Timing::steward_reread`]): once a day costs at most a copy of the
/// circle a day, and heals what a steward got wrong for a while.
const STEWARD_REREAD: Duration = Duration::from_secs(24 * 3600);

/// A circle's gossip topic as followed: the sender, and the task that
/// reads it.
struct Topic {
    sender: GossipSender,
    _reader: AbortOnDropHandle<()>,
}

pub(crate) struct Actor {
    config: NodeConfig,
    /// The node's span, which every task it spawns carries too.
    span: tracing::Span,
    /// Ends when the [`crate::Node`] is dropped: the node then stops as
    /// if asked to.
    node_gone: oneshot::Receiver<()>,
    /// Every decision about the circles, on a thread of its own.
    keeper: Keeper,
    /// What the machine asks to be done, a batch per job.
    from_keeper: mpsc::UnboundedReceiver<Batch>,
    /// A tick waits for the keeper: the next is not handed over until it ran.
    tick_queued: Arc<AtomicBool>,
    net: Option<Net>,
    dialer: Dialer,
    /// The gossip topic followed for each circle.
    topics: BTreeMap<roundtable_core::CircleId, Topic>,
    /// What the node's handles ask (the public API).
    rx: mpsc::Receiver<Request>,
    /// What sessions and other tasks ask; they get `sessions_tx`.
    sessions_tx: mpsc::Sender<SessionRequest>,
    sessions_rx: mpsc::Receiver<SessionRequest>,
    incoming: mpsc::Receiver<Incoming>,
    gossip_tx: mpsc::Sender<(roundtable_core::CircleId, GossipEvent)>,
    gossip_rx: mpsc::Receiver<(roundtable_core::CircleId, GossipEvent)>,
    events: broadcast::Sender<Event>,
    /// Who this device is, for handles to read at once: a pairing makes
    /// it another member's device while the node runs.
    me: watch::Sender<(DeviceId, MemberId)>,
    tasks: JoinSet<()>,
    /// Sync sessions peers opened, each ending with its peer's id.
    answering: JoinSet<EndpointId>,
    /// How many of those each peer has open.
    answering_per_peer: HashMap<EndpointId, usize>,
    /// Join requests being served (anyone may ask, so they are few at once).
    joining: JoinSet<()>,
    control: Option<crate::control::ControlServer>,
    /// Steward sessions open, and where to send their requests.
    stewards: HashMap<
        roundtable_machine::StewardSession,
        mpsc::UnboundedSender<Vec<roundtable_core::wire::StewardRequest>>,
    >,
}

/// The time, as the machine takes it (tokio's clock, so a paused test
/// clock holds for it too).
fn now() -> Now {
    Now {
        mono: Instant::now().into_std(),
        wall: Timestamp::now(),
    }
}

/// Randomness for the machine's keys and nonces (the keeper thread's own).
fn rng() -> rand::rngs::ThreadRng {
    rand::rng()
}

fn endpoint_of(device: DeviceId) -> Option<EndpointId> {
    EndpointId::from_bytes(device.as_bytes()).ok()
}

fn device_of(id: EndpointId) -> DeviceId {
    DeviceId::from_bytes(*id.as_bytes())
}

impl Actor {
    /// Starts the actor; it stops when asked to, or when `node_gone` ends.
    pub(crate) async fn spawn(
        config: NodeConfig,
        node_gone: oneshot::Receiver<()>,
    ) -> Result<(NodeHandle, tokio::task::JoinHandle<()>), NodeError> {
        let home = match &config.fs {
            Some(fs) => Home::with_fs(&config.home, fs.clone()),
            None => Home::new(&config.home),
        };
        let (home, lock, me) = tokio::task::spawn_blocking(move || {
            let lock = home.lock("roundtable up")?;
            let (me, _) = home.ensure_identity(&lock)?;
            Ok::<_, NodeError>((home, lock, me))
        })
        .await
        .map_err(|e| NodeError::Crashed(e.to_string()))??;
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
            steward_reread: STEWARD_REREAD,
            steward_fold_floor: roundtable_machine::STEWARD_FOLD_FLOOR,
        };
        let (keeper, from_keeper) =
            Keeper::start(home, lock, timing, now(), dialer.clone(), span.clone()).await?;
        let mut actor = Actor {
            config,
            span: span.clone(),
            node_gone,
            keeper,
            from_keeper,
            tick_queued: Arc::default(),
            net: Some(net),
            dialer,
            topics: BTreeMap::new(),
            rx,
            sessions_tx,
            sessions_rx,
            incoming,
            gossip_tx,
            gossip_rx,
            events: events.clone(),
            me: watch::channel((me.device.id(), me.member.id())).0,
            tasks: JoinSet::new(),
            answering: JoinSet::new(),
            answering_per_peer: HashMap::new(),
            joining: JoinSet::new(),
            control: None,
            stewards: HashMap::new(),
        };
        // What opening the circles asked for (following their topics).
        if let Some(batch) = actor.from_keeper.recv().await {
            actor.carry_out(batch).instrument(span.clone()).await;
        }
        let handle = NodeHandle {
            tx,
            events,
            me: actor.me.subscribe(),
            web: Default::default(),
        };
        if actor.config.control_socket {
            let server = crate::control::serve(&actor.config.home, handle.clone(), &span)
                .map_err(NodeError::ControlSocket)?;
            actor.control = Some(server);
        }
        let task = tokio::spawn(actor.run().instrument(span));
        Ok((handle, task))
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
                batch = self.from_keeper.recv() => match batch {
                    Some(batch) => self.carry_out(batch).await,
                    None => {
                        error!("the machine's thread ended: stopping");
                        self.shutdown().await;
                        return;
                    }
                },
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
                Some(conn) = self.incoming.recv() => self.accept(conn).await,
                Some((circle, ev)) = self.gossip_rx.recv() => self.on_gossip(circle, ev).await,
                _ = tick.tick() => self.tick().await,
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

    /// The machine's timers, and the address book when it is due; one tick
    /// at a time, however far behind the keeper is.
    async fn tick(&mut self) {
        if self.tick_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let queued = self.tick_queued.clone();
        let at = now();
        self.keeper
            .submit(move |k| {
                queued.store(false, Ordering::Release);
                k.machine.tick(at, &mut rng());
                k.keep_addresses(false);
            })
            .await;
    }

    /// Carries out what one job of the machine asked for, in order.
    async fn carry_out(&mut self, batch: Batch) {
        self.me
            .send_if_modified(|was| std::mem::replace(was, batch.me) != batch.me);
        for output in batch.outputs {
            match output {
                Output::Event(event) => {
                    let _ = self.events.send(event);
                }
                Output::Broadcast { circle, bytes } => self.broadcast(circle, bytes).await,
                Output::Follow {
                    circle,
                    topic,
                    peers,
                } => self.follow(circle, topic, peers).await,
                Output::Unfollow { circle } => {
                    self.topics.remove(&circle);
                }
                Output::JoinPeers { circle, peers } => self.join_peers(circle, peers),
                Output::Meet {
                    circle,
                    candidates,
                    missing,
                } => self.meet(circle, candidates, missing),
                Output::Admit(devices) => {
                    let all: std::collections::BTreeSet<EndpointId> =
                        devices.into_iter().filter_map(endpoint_of).collect();
                    self.net().admitted().set(all);
                }
                Output::AdmitFarewell(devices) => {
                    let all: Vec<EndpointId> =
                        devices.into_iter().filter_map(endpoint_of).collect();
                    self.net().admitted().set_farewell(all);
                }
                Output::Farewell {
                    circle,
                    peer,
                    request,
                } => self.ask_farewell(circle, peer, request),
                Output::Open { session } => self.open_session(session),
                Output::Reached(peer) => self.remember_addr(peer),
                Output::StewardOpen {
                    session,
                    ticket,
                    steward,
                    requests,
                } => self.open_steward(session, ticket, steward, requests),
                Output::StewardSend { session, requests } => self.steward_send(session, requests),
                Output::StewardClose { session } => {
                    // Its task sees the channel close and ends.
                    self.stewards.remove(&session);
                }
            }
        }
    }

    /// Answers what the node's handles ask: the network's part here, the
    /// rest on the keeper's thread, which replies.
    async fn handle(&mut self, req: Request) {
        let at = now();
        match req {
            Request::Addr(reply) => {
                let _ = reply.send(self.net().addr());
            }
            Request::Invite {
                circle,
                kind,
                expires_at,
                uses,
                label,
                now: when,
                reply,
            } => {
                let inviter = self.net().addr();
                self.keeper
                    .submit(move |k| {
                        let terms = Terms {
                            kind,
                            expires_at,
                            uses,
                        };
                        let made =
                            k.machine
                                .invite_labelled(circle, terms, &label, when, at, &mut rng());
                        let ticket = made.map(|(invite, secret)| {
                            let mut ticket = CircleTicket {
                                stewards: stewards_to_name(&k.machine, circle),
                                circle,
                                inviter,
                                invite,
                                secret,
                                kind,
                                expires_at,
                                uses,
                                sig: [0; 64],
                            };
                            ticket.sign(&k.machine.identity().device);
                            ticket
                        });
                        let _ = reply.send(ticket.map_err(Into::into));
                    })
                    .await;
            }
            Request::Status(reply) => {
                // Where others can reach us (every interface), else the bound sockets.
                let net = self.net();
                let mut addrs: Vec<String> = net.addr().ip_addrs().map(|a| a.to_string()).collect();
                if addrs.is_empty() {
                    addrs = net.bound_sockets().iter().map(|a| a.to_string()).collect();
                }
                self.keeper
                    .submit(move |k| {
                        let mut status = k.machine.status();
                        status.addrs = addrs;
                        let _ = reply.send(status);
                    })
                    .await;
            }
            Request::Shutdown(_) => {}
            req => self.keeper.submit(move |k| k.answer(req, at)).await,
        }
    }

    async fn shutdown(&mut self) {
        let started = Instant::now();
        info!("shutting down");
        self.control = None;
        let _ = std::fs::remove_file(crate::control::socket_path(&self.config.home));
        // Leave every topic: drop the senders and the readers.
        self.topics.clear();
        self.stewards.clear();
        self.tasks.shutdown().await;
        self.answering.shutdown().await;
        self.joining.shutdown().await;
        // Sessions only move bytes: what they exchanged is already in the
        // machine's sync states, which it keeps now as a session's end would.
        self.keeper
            .submit(|k| {
                k.keep_addresses(true);
                k.machine.close();
            })
            .await;
        self.keeper.stop().await;
        info!(elapsed = ?started.elapsed(), "everything kept; closing connections");
        if let Some(net) = self.net.take() {
            net.shutdown().await;
        }
        info!(elapsed = ?started.elapsed(), "stopped");
    }
}

/// The circle's stewards an invite names, where it waits too.
fn stewards_to_name(
    machine: &Machine,
    circle: roundtable_core::CircleId,
) -> Vec<roundtable_net::EndpointAddr> {
    machine
        .circle(circle)
        .map(|c| c.stewards())
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.removed_by.is_none())
        .filter_map(|r| {
            let t = roundtable_net::StewardTicket::parse(&r.ticket).ok()?;
            (t.id() == *r.steward.as_bytes()).then_some(t.addr)
        })
        .take(4)
        .collect()
}

impl Kept {
    /// Answers a handle's request that is the machine's alone.
    fn answer(&mut self, req: Request, at: Now) {
        let machine = &mut self.machine;
        match req {
            Request::Circles(reply) => {
                let _ = reply.send(machine.circles());
            }
            Request::Read { circle, reply } => {
                let _ = reply.send(machine.read(circle).map_err(Into::into));
            }
            Request::Heads { circle, reply } => {
                let heads = machine.circle(circle).map(|c| c.heads());
                let _ = reply.send(heads.map_err(Into::into));
            }
            Request::Doc { circle, reply } => {
                let doc = machine.circle(circle).map(|c| c.save());
                let _ = reply.send(doc.map_err(Into::into));
            }
            Request::Perform {
                circle,
                op,
                now: when,
                reply,
            } => {
                let done = machine.perform(circle, &op, when, at, &mut rng());
                let _ = reply.send(done.map_err(Into::into));
            }
            Request::Create {
                name,
                about,
                display_name,
                now: when,
                reply,
            } => {
                let made = machine.create(&name, &about, &display_name, when, at, &mut rng());
                let _ = reply.send(made.map_err(Into::into));
            }
            Request::JoinPrep(reply) => {
                let _ = reply.send((machine.identity().clone(), self.dialer.clone()));
            }
            Request::Welcome {
                welcome,
                ticket,
                reply,
            } => {
                let kept = machine.welcome(welcome, &ticketed(&ticket), at, &mut rng());
                if kept.is_ok() {
                    self.met_inviter(&ticket);
                }
                let _ = reply.send(kept.map_err(Into::into));
            }
            Request::WelcomeWaiting {
                welcome,
                ticket,
                name,
                reply,
            } => {
                let kept = machine.welcome_waiting(
                    &welcome,
                    &ticketed(&ticket),
                    &ticket.secret,
                    name.as_deref(),
                    Timestamp::now(),
                    at,
                    &mut rng(),
                );
                if kept.is_ok() {
                    self.met_inviter(&ticket);
                }
                let _ = reply.send(kept.map_err(Into::into));
            }
            Request::Identity(reply) => {
                let me = machine.identity();
                let _ = reply.send((me.device.id(), me.member.id()));
            }
            Request::RecoveryWords(reply) => {
                let _ = reply.send(machine.identity().member.to_words());
            }
            Request::Certificate(reply) => {
                let _ = reply.send(machine.identity().cert.clone());
            }
            Request::WebHost { fresh, reply } => {
                let _ = reply.send(self.web_host(fresh));
            }
            Request::Seen { circle, reply } => {
                let _ = reply.send(machine.seen(circle).map_err(Into::into));
            }
            Request::MarkSeen { circle, at, reply } => {
                let _ = reply.send(machine.mark_seen(circle, at).map_err(Into::into));
            }
            // The network's part, answered by the actor.
            Request::Addr(_)
            | Request::Invite { .. }
            | Request::Status(_)
            | Request::Shutdown(_) => {}
        }
    }

    /// Where the inviter of a ticket just redeemed is, before the sync with
    /// it opens.
    fn met_inviter(&mut self, ticket: &CircleTicket) {
        self.dialer.add_addr(ticket.inviter.clone());
        self.save_address(ticket.inviter.clone());
    }

    /// See [`crate::NodeHandle::web_host`].
    fn web_host(&self, fresh: String) -> Result<String, NodeError> {
        let is_label = |l: &str| {
            (16..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        if let Some(kept) = self.machine.read_record(NodeRecord::WebHost)
            && let Ok(kept) = String::from_utf8(kept)
            && is_label(kept.trim_end())
        {
            return Ok(kept.trim_end().to_owned());
        }
        debug_assert!(is_label(&fresh), "{fresh:?} is not a host label");
        self.machine
            .write_record(NodeRecord::WebHost, format!("{fresh}\n").as_bytes())?;
        Ok(fresh)
    }
}

/// What the machine reads of a ticket redeemed.
fn ticketed(ticket: &CircleTicket) -> Ticketed {
    Ticketed {
        circle: ticket.circle,
        invite: ticket.invite,
        kind: ticket.kind,
        inviter: device_of(ticket.inviter.id),
    }
}
