//! The node and its cloneable handle.

use roundtable_core::{CircleId, DeviceId, EntityId, InviteKind, MemberId, Op, Timestamp};
use roundtable_net::{CircleTicket, Dialer, EndpointAddr};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::Welcome;
use crate::actor::Actor;
use crate::api::{self, Answer, CircleSummary};
use crate::{Event, NodeConfig, NodeError, Status};

/// What the handle asks of the actor, each with the channel its answer
/// comes back on. The node's public API is [`crate::api`], served by
/// [`NodeHandle::call`] through these. (What sessions and other tasks ask
/// is [`crate::session::SessionRequest`].)
#[derive(Debug)]
pub(crate) enum Request {
    Circles(oneshot::Sender<Vec<(CircleId, String)>>),
    Doc {
        circle: CircleId,
        reply: oneshot::Sender<Result<Vec<u8>, NodeError>>,
    },
    Read {
        circle: CircleId,
        reply: oneshot::Sender<Result<crate::Reading, NodeError>>,
    },
    Heads {
        circle: CircleId,
        reply: oneshot::Sender<Result<Vec<roundtable_core::ChangeHash>, NodeError>>,
    },
    Perform {
        circle: CircleId,
        op: Op,
        now: Timestamp,
        reply: oneshot::Sender<Result<Option<EntityId>, NodeError>>,
    },
    Create {
        name: String,
        about: String,
        display_name: String,
        now: Timestamp,
        reply: oneshot::Sender<Result<CircleId, NodeError>>,
    },
    Invite {
        circle: CircleId,
        kind: InviteKind,
        expires_at: Timestamp,
        uses: u32,
        label: String,
        now: Timestamp,
        reply: oneshot::Sender<Result<CircleTicket, NodeError>>,
    },
    /// What a joining device needs from its own node: who it is and a dialer.
    JoinPrep(oneshot::Sender<(roundtable_store::Identity, Dialer)>),
    Welcome {
        welcome: Welcome,
        ticket: Box<CircleTicket>,
        reply: oneshot::Sender<Result<Vec<CircleId>, NodeError>>,
    },
    WelcomeWaiting {
        welcome: Box<roundtable_core::steward::WaitingWelcome>,
        ticket: Box<CircleTicket>,
        name: Option<String>,
        reply: oneshot::Sender<Result<Vec<CircleId>, NodeError>>,
    },
    Status(oneshot::Sender<Status>),
    Addr(oneshot::Sender<EndpointAddr>),
    Identity(oneshot::Sender<(DeviceId, MemberId)>),
    RecoveryWords(oneshot::Sender<zeroize::Zeroizing<String>>),
    Certificate(oneshot::Sender<roundtable_core::DeviceCert>),
    WebHost {
        fresh: String,
        reply: oneshot::Sender<Result<String, NodeError>>,
    },
    Seen {
        circle: CircleId,
        reply: oneshot::Sender<Result<Option<roundtable_machine::Looked>, NodeError>>,
    },
    MarkSeen {
        circle: CircleId,
        at: Timestamp,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// What serves the web app next to the node mints its login links: the
/// control socket asks it for one when `roundtable web` runs.
pub trait WebLinks: Send + Sync + std::fmt::Debug {
    /// A fresh one-time login link; with `sign_out`, every browser signed
    /// in so far is signed out first.
    fn login_link(&self, sign_out: bool) -> String;
}

/// The web app's link maker, once one is set.
pub(crate) type WebSlot = std::sync::Arc<std::sync::RwLock<Option<std::sync::Arc<dyn WebLinks>>>>;

/// A cheap, cloneable way to talk to a running node.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    pub(crate) tx: mpsc::Sender<Request>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) me: watch::Receiver<(DeviceId, MemberId)>,
    pub(crate) web: WebSlot,
}

impl NodeHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| NodeError::Closed)?;
        rx.await.map_err(|_| NodeError::Closed)
    }

    /// Serves one request of the node's API ([`api::Request`]): the one
    /// path the control socket takes, and what the typed methods below
    /// are for in process. [`api::Request::Events`] is a stream, not an
    /// answer: follow it with [`Self::subscribe`].
    pub async fn call(&self, request: api::Request) -> Result<Answer, NodeError> {
        use api::Request as R;
        Ok(match request {
            R::Circles => Answer::Circles(
                self.circles()
                    .await?
                    .into_iter()
                    .map(|(id, name)| CircleSummary { id, name })
                    .collect(),
            ),
            R::Doc { circle } => Answer::Doc(self.doc(circle).await?),
            R::Heads { circle } => Answer::Heads(self.heads(circle).await?),
            R::Perform { circle, op, now } => {
                Answer::Performed(self.perform(circle, op, now).await?)
            }
            R::Create {
                name,
                about,
                display_name,
                now,
            } => Answer::Created(
                self.create_circle(&name, &about, &display_name, now)
                    .await?,
            ),
            R::Invite {
                circle,
                kind,
                expires_at,
                uses,
                label,
                now,
            } => {
                let ticket = self
                    .invite_labelled(circle, kind, expires_at, uses, &label, now)
                    .await?;
                Answer::Invited(ticket.to_line())
            }
            R::Join { ticket, name } => {
                let ticket =
                    CircleTicket::parse(&ticket).map_err(|e| NodeError::Refused(e.to_string()))?;
                Answer::Joined(self.join(&ticket, name.as_deref()).await?)
            }
            R::Status => Answer::Status(self.status().await?),
            R::Identity => {
                let (device, member) = self.identity().await?;
                Answer::Identity { device, member }
            }
            R::Events => {
                return Err(NodeError::Refused(
                    "events are a stream: follow them rather than ask for an answer".into(),
                ));
            }
            R::WebLink { sign_out } => Answer::WebLink(self.web_login_link(sign_out).ok_or_else(
                || {
                    NodeError::Refused(
                        "this node serves no web app (it was started with --no-web); restart it with `roundtable up` to use your circles in a browser".into(),
                    )
                },
            )?),
            R::Seen { circle, now } => {
                self.mark_seen(circle, now).await?;
                Answer::Done
            }
        })
    }

    /// The circles served, with their names.
    pub async fn circles(&self) -> Result<Vec<(CircleId, String)>, NodeError> {
        self.ask(Request::Circles).await
    }

    /// A circle's whole document, saved (to read it elsewhere).
    pub async fn doc(&self, circle: CircleId) -> Result<Vec<u8>, NodeError> {
        self.ask(|reply| Request::Doc { circle, reply }).await?
    }

    /// A circle as it reads now, without copying its document: the node
    /// keeps the reading until the circle changes.
    pub async fn read(&self, circle: CircleId) -> Result<crate::Reading, NodeError> {
        self.ask(|reply| Request::Read { circle, reply }).await?
    }

    /// The heads of a circle's change graph: two copies with the same heads
    /// hold the same changes. Cheap, unlike [`Self::doc`].
    pub async fn heads(
        &self,
        circle: CircleId,
    ) -> Result<Vec<roundtable_core::ChangeHash>, NodeError> {
        self.ask(|reply| Request::Heads { circle, reply }).await?
    }

    /// Performs an edit as this device's member; returns once it is durable
    /// (and on its way to the circle).
    pub async fn perform(
        &self,
        circle: CircleId,
        op: Op,
        now: Timestamp,
    ) -> Result<Option<EntityId>, NodeError> {
        self.ask(|reply| Request::Perform {
            circle,
            op,
            now,
            reply,
        })
        .await?
    }

    /// Starts a new circle with this device's member as its first member.
    pub async fn create_circle(
        &self,
        name: &str,
        about: &str,
        display_name: &str,
        now: Timestamp,
    ) -> Result<CircleId, NodeError> {
        self.ask(|reply| Request::Create {
            name: name.to_owned(),
            about: about.to_owned(),
            display_name: display_name.to_owned(),
            now,
            reply,
        })
        .await?
    }

    /// Makes an invite and the ticket that carries it.
    pub async fn invite(
        &self,
        circle: CircleId,
        kind: InviteKind,
        expires_at: Timestamp,
        uses: u32,
        now: Timestamp,
    ) -> Result<CircleTicket, NodeError> {
        self.invite_labelled(circle, kind, expires_at, uses, "", now)
            .await
    }

    /// Makes an invite with the label its maker gives it ("for Sam"), and
    /// the ticket that carries it.
    pub async fn invite_labelled(
        &self,
        circle: CircleId,
        kind: InviteKind,
        expires_at: Timestamp,
        uses: u32,
        label: &str,
        now: Timestamp,
    ) -> Result<CircleTicket, NodeError> {
        self.ask(|reply| Request::Invite {
            circle,
            kind,
            expires_at,
            uses,
            label: label.to_owned(),
            now,
            reply,
        })
        .await?
    }

    /// Redeems a ticket: reaches the inviting device, and stores the
    /// circle(s) it hands over. Returns the circles now served.
    pub async fn join(
        &self,
        ticket: &CircleTicket,
        name: Option<&str>,
    ) -> Result<Vec<CircleId>, NodeError> {
        let (me, dialer) = self.ask(Request::JoinPrep).await?;
        let welcome = match crate::session::redeem_ticket(&dialer, ticket, &me, name).await {
            Ok(w) => w,
            // The inviting device is off: the invite waits at the
            // circle's steward, where the ticket names one.
            Err(NodeError::Unreachable(why)) if !ticket.stewards.is_empty() => {
                tracing::info!("{why}; taking the invite from the circle's steward");
                let waiting = crate::steward::take_welcome(&dialer, ticket).await?;
                let ids = self
                    .ask(|reply| Request::WelcomeWaiting {
                        welcome: Box::new(waiting),
                        ticket: Box::new(ticket.clone()),
                        name: name.map(str::to_owned),
                        reply,
                    })
                    .await??;
                if ticket.uses == 1 {
                    // Used: nobody else takes it (the circle's rule would
                    // turn a second joiner away anyway).
                    crate::steward::forget_welcome(&dialer, ticket).await;
                }
                return Ok(ids);
            }
            Err(e) => return Err(e),
        };
        let ticket = Box::new(ticket.clone());
        self.ask(|reply| Request::Welcome {
            welcome,
            ticket,
            reply,
        })
        .await?
    }

    /// Peers, circles and how each peer stands.
    pub async fn status(&self) -> Result<Status, NodeError> {
        self.ask(Request::Status).await
    }

    /// How others reach this device.
    pub async fn addr(&self) -> Result<EndpointAddr, NodeError> {
        self.ask(Request::Addr).await
    }

    /// This device and its member as they are now, without asking the
    /// node: a device paired while the node runs is its new member's at
    /// once.
    pub fn me(&self) -> (DeviceId, MemberId) {
        *self.me.borrow()
    }

    /// This device and its member.
    pub async fn identity(&self) -> Result<(DeviceId, MemberId), NodeError> {
        self.ask(Request::Identity).await
    }

    /// This device's certificate from its member key: what a request to
    /// be recognised on it carries (see `roundtable_net::RecoveryRequest`).
    pub async fn certificate(&self) -> Result<roundtable_core::DeviceCert, NodeError> {
        self.ask(Request::Certificate).await
    }

    /// This device's member's recovery key: their member key as 24 words
    /// to write down (see `roundtable_core::MemberKey::to_words`). Asked
    /// for only when the person asks to see it.
    pub async fn recovery_words(&self) -> Result<zeroize::Zeroizing<String>, NodeError> {
        self.ask(Request::RecoveryWords).await
    }

    /// The web app's host label kept in this home, or, the first time (or
    /// when the kept one does not read as a DNS label), `fresh`, kept from
    /// now on. It is owner-only like the keys, and lets nobody in by
    /// itself: sessions and login links stay of one run.
    pub async fn web_host(&self, fresh: String) -> Result<String, NodeError> {
        self.ask(|reply| Request::WebHost { fresh, reply }).await?
    }

    /// Where this device's person last looked at a circle, with the
    /// circle as it stood then (`None` before the first look): what
    /// `roundtable_core::since::account` tells them arrived since.
    pub async fn seen(
        &self,
        circle: CircleId,
    ) -> Result<Option<roundtable_machine::Looked>, NodeError> {
        self.ask(|reply| Request::Seen { circle, reply }).await?
    }

    /// This device's person looked at a circle at `at`.
    pub async fn mark_seen(&self, circle: CircleId, at: Timestamp) -> Result<(), NodeError> {
        self.ask(|reply| Request::MarkSeen { circle, at, reply })
            .await?
    }

    /// Follows what happens in the node.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Sets (or, with `None`, clears) what makes the web app's login links.
    pub fn set_web_links(&self, links: Option<std::sync::Arc<dyn WebLinks>>) {
        if let Ok(mut slot) = self.web.write() {
            *slot = links;
        }
    }

    /// A fresh login link for the web app this node serves, if it serves one.
    pub fn web_login_link(&self, sign_out: bool) -> Option<String> {
        let links = self.web.read().ok()?.clone()?;
        Some(links.login_link(sign_out))
    }
}

/// A running node. Dropping it stops the node as [`Node::shutdown`] does,
/// in the background: wait for that to end with `shutdown` instead when the
/// home is needed again at once.
#[derive(Debug)]
pub struct Node {
    handle: NodeHandle,
    task: JoinHandle<()>,
    /// Dropped with the node, which tells the actor to stop.
    _alive: oneshot::Sender<()>,
}

impl Node {
    /// Starts a node on its home: takes the home's writer lock, opens every
    /// circle, binds the network and joins each circle's gossip topic.
    /// Returns as soon as it listens; it never waits for relays or DNS.
    pub async fn spawn(config: NodeConfig) -> Result<Self, NodeError> {
        let (alive, gone) = oneshot::channel();
        let (handle, task) = Actor::spawn(config, gone).await?;
        Ok(Self {
            handle,
            task,
            _alive: alive,
        })
    }

    /// A handle to talk to the node.
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Stops in order: no new work, sync states saved, gossip topics left,
    /// the endpoint closed, the control socket removed, the lock released.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        let Self {
            handle,
            task,
            _alive,
        } = self;
        let (reply, rx) = oneshot::channel();
        if handle.tx.send(Request::Shutdown(reply)).await.is_ok() {
            let _ = rx.await;
        }
        task.await.map_err(|e| NodeError::Crashed(e.to_string()))
    }
}
