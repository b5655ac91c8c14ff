//! The machine's edges: the time an input happened, what it asks whoever
//! runs it to do, what it tells the node's followers, and what goes wrong.

use super::*;

/// The time an input happened: the monotonic clock the schedule counts
/// with, and the wall clock records are stamped with.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// For waits and intervals.
    pub mono: Instant,
    /// For what is written down (when a peer last synced, a join).
    pub wall: Timestamp,
}

/// What the machine asks whoever runs it to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Tell the node's followers.
    Event(Event),
    /// Gossip these bytes (a sealed envelope) on the circle's topic.
    Broadcast {
        /// Which circle.
        circle: CircleId,
        /// The envelope.
        bytes: Vec<u8>,
    },
    /// Follow the circle's gossip topic, leaving the one it followed
    /// before, if any, with these devices to start from.
    Follow {
        /// Which circle.
        circle: CircleId,
        /// The topic (see [`roundtable_core::keys::gossip_topic`]).
        topic: [u8; 32],
        /// Devices to ask in.
        peers: Vec<DeviceId>,
    },
    /// Stop following the circle's topic.
    Unfollow {
        /// Which circle.
        circle: CircleId,
    },
    /// Ask these devices into the circle's topic.
    JoinPeers {
        /// Which circle.
        circle: CircleId,
        /// Whom.
        peers: Vec<DeviceId>,
    },
    /// Connect to devices of `candidates`, in this order, until `missing`
    /// are reached, and ask those into the circle's topic.
    Meet {
        /// Which circle.
        circle: CircleId,
        /// Whom to try, in order.
        candidates: Vec<DeviceId>,
        /// How many to reach.
        missing: usize,
    },
    /// Only these devices may connect to this one.
    Admit(BTreeSet<DeviceId>),
    /// These devices, of members a circle removed, may ask this one for
    /// their farewell (and for nothing else); hand each request to
    /// [`Machine::serve_farewell`].
    AdmitFarewell(BTreeSet<DeviceId>),
    /// Ask `peer` for this device's farewell from the circle, and hand
    /// the answer (or `None` if it could not be had) to
    /// [`Machine::farewell_reply`].
    Farewell {
        /// Which circle.
        circle: CircleId,
        /// Whom to ask.
        peer: DeviceId,
        /// What to send.
        request: roundtable_core::wire::FarewellRequest,
    },
    /// Open a sync session with the session's peer; once connected, send
    /// what [`Machine::connected`] says (the Hello and the first round),
    /// then hand every frame it receives to [`Machine::frame`]. Nothing of
    /// the session is worked out before the peer answers the dial: a peer
    /// that is away costs a dial, not a sync message.
    Open {
        /// The session.
        session: SessionId,
    },
    /// A sync with this device went through: keep where it was reached.
    Reached(DeviceId),
    /// Reach a steward (where its ticket says; it must prove `steward`),
    /// open a stream of the steward protocol, send these requests, and
    /// hand every reply to [`Machine::steward_reply`] (or the failure to
    /// [`Machine::steward_broken`]).
    StewardOpen {
        /// The session.
        session: StewardSession,
        /// The steward's ticket.
        ticket: String,
        /// The steward's id, which its ticket must name.
        steward: DeviceId,
        /// What to send first.
        requests: Vec<roundtable_core::wire::StewardRequest>,
    },
    /// Send these on the session's stream.
    StewardSend {
        /// The session.
        session: StewardSession,
        /// What to send.
        requests: Vec<roundtable_core::wire::StewardRequest>,
    },
    /// Close the session's stream.
    StewardClose {
        /// The session.
        session: StewardSession,
    },
}

/// What went wrong, as the machine says it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A problem with the files of the home.
    #[error(transparent)]
    Store(Box<StoreError>),
    /// The circle's rules refused something.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// No such circle here.
    #[error("this device is not in circle {0}")]
    UnknownCircle(CircleId),
    /// A circle whose files could not be opened at the start.
    #[error("the running node could not open this circle: {reason} (stop `roundtable up` first)")]
    Unopened {
        /// Which circle.
        circle: CircleId,
        /// Why, naming what to do.
        reason: String,
    },
    /// Another device's offer was refused, with the reason.
    #[error("{0}")]
    Refused(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Self::Store(Box::new(e))
    }
}

/// Something that happened, for whoever follows the node (the CLI's
/// `--follow`, the web app).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A circle changed (a local edit, gossip or sync).
    Changed {
        /// Which circle.
        circle: CircleId,
    },
    /// A peer joined a circle's gossip neighbourhood.
    PeerUp {
        /// Which circle.
        circle: CircleId,
        /// Which device.
        peer: DeviceId,
    },
    /// A peer left it.
    PeerDown {
        /// Which circle.
        circle: CircleId,
        /// Which device.
        peer: DeviceId,
    },
    /// A sync session ended.
    Synced {
        /// Which circle.
        circle: CircleId,
        /// With whom.
        peer: DeviceId,
        /// Whether it completed.
        ok: bool,
    },
}
