//! The Roundtable node: one actor that owns this device's circles (the
//! store), its place on the network, and the sync between them.
//!
//! The node is the only writer of its home while it runs. Everything else —
//! the CLI, the web app, tests — talks to it through a cloneable
//! [`NodeHandle`] (in process) or the local control socket
//! ([`control`], a Unix socket in the home, 0600). It follows each circle's
//! gossip topic for live changes, runs Automerge sync with a peer whenever
//! the peer comes up, an announcement names heads it lacks, or the periodic
//! anti-entropy timer fires, and tells followers what happened as [`Event`]s.
//!
//! ```no_run
//! # async fn run() -> Result<(), roundtable_node::NodeError> {
//! use roundtable_node::{Node, NodeConfig};
//!
//! let node = Node::spawn(NodeConfig::loopback("/tmp/maya")).await?;
//! let handle = node.handle();
//! for (id, name) in handle.circles().await? {
//!     println!("serving {name} ({id})");
//! }
//! node.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod actor;
pub mod control;
mod handle;
mod schedule;
mod session;

use std::path::PathBuf;
use std::time::Duration;

use roundtable_core::{CircleId, CoreError, DeviceId, MemberId, Timestamp};
use roundtable_net::{NetConfig, NetError};
use roundtable_store::StoreError;
use serde::{Deserialize, Serialize};

pub use handle::{Node, NodeHandle};
pub use session::redeem_ticket;

/// How a node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The home directory (identity, circles).
    pub home: PathBuf,
    /// Network settings.
    pub net: NetConfig,
    /// How often to check in with each peer when nothing else prompts it.
    pub anti_entropy: Duration,
    /// The longest wait between attempts to reach a peer that keeps failing.
    pub max_backoff: Duration,
    /// Serve the local control socket in the home.
    pub control_socket: bool,
}

impl NodeConfig {
    /// Defaults for a person's device: all interfaces, mDNS, the default relay.
    pub fn new(home: impl Into<PathBuf>) -> Self {
        Self {
            home: home.into(),
            net: NetConfig::default(),
            anti_entropy: Duration::from_secs(10),
            max_backoff: Duration::from_secs(20),
            control_socket: true,
        }
    }

    /// Loopback only, no relay, no mDNS, quick anti-entropy: tests and examples.
    pub fn loopback(home: impl Into<PathBuf>) -> Self {
        Self {
            net: NetConfig::loopback(),
            anti_entropy: Duration::from_secs(2),
            max_backoff: Duration::from_secs(5),
            ..Self::new(home)
        }
    }
}

/// What went wrong in the node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The node has stopped.
    #[error("the node has stopped")]
    Closed,
    /// A problem with the files of the home.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The circle's rules refused something.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The network failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// No such circle here.
    #[error("this device is not in circle {0}")]
    UnknownCircle(CircleId),
    /// A circle whose files the node could not open when it started.
    #[error("the running node could not open this circle: {reason} (stop `roundtable up` first)")]
    Unopened {
        /// Which circle.
        circle: CircleId,
        /// Why, naming what to do.
        reason: String,
    },
    /// The other device said no, with its reason.
    #[error("{0}")]
    Refused(String),
    /// A peer broke the protocol or went silent.
    #[error("{0}")]
    Protocol(String),
}

/// Something that happened, for whoever follows the node (the CLI's
/// `--follow`, the web app).
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// A circle as it reads now: what pages and views show, computed once
/// per change of the circle and shared until the next one.
#[derive(Debug, Clone)]
pub struct Reading {
    /// Everything in the circle, as the core reads it.
    pub view: std::sync::Arc<roundtable_core::CircleView>,
    /// Who is in.
    pub membership: std::sync::Arc<roundtable_core::Membership>,
}

/// What `roundtable status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// This device.
    pub device: DeviceId,
    /// Its member.
    pub member: MemberId,
    /// Where it listens.
    pub addrs: Vec<String>,
    /// Each circle served.
    pub circles: Vec<CircleStatus>,
    /// Gossip messages dropped since start, by reason (replayed, bad
    /// signature, does not decrypt, ...).
    #[serde(default)]
    pub dropped: std::collections::BTreeMap<String, u64>,
    /// Received changes refused since start, by reason (unproven author,
    /// device not admitted, ...).
    #[serde(default)]
    pub refused: std::collections::BTreeMap<String, u64>,
}

/// One circle in [`Status`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CircleStatus {
    /// The circle.
    pub id: CircleId,
    /// Its name.
    pub name: String,
    /// Its epoch: one more for every removal and device revocation.
    #[serde(default)]
    pub epoch: u64,
    /// Devices connected in its gossip neighbourhood now.
    pub connected: Vec<DeviceId>,
    /// Every other device of the circle, and how it stands.
    pub devices: Vec<DeviceStatus>,
}

/// One peer device in [`CircleStatus`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// The device.
    pub device: DeviceId,
    /// Whose it is.
    pub member: MemberId,
    /// Their name.
    pub name: String,
    /// What the device calls itself ("Ana's phone"), if it said.
    #[serde(default)]
    pub device_name: String,
    /// Connected now.
    pub connected: bool,
    /// Whether, at the last sync, it had every change we have now.
    pub has_all_our_changes: bool,
    /// When we last finished a sync with it.
    pub last_synced: Option<Timestamp>,
}
