//! The Roundtable node: one actor that owns this device's place on the
//! network and its [`roundtable_machine::Machine`] (the circles, and every
//! decision about them), feeds the machine what happens and carries out
//! what it says.
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
pub mod api;
pub mod control;
mod handle;
mod session;
mod steward;

use std::path::PathBuf;
use std::time::Duration;

use roundtable_core::CoreError;
use roundtable_net::{NetConfig, NetError};
use roundtable_store::StoreError;

pub use api::{Answer, ControlError, ErrorKind, Request};
pub use handle::{Node, NodeHandle, WebLinks};
pub use roundtable_machine::rate::PER_SECOND as EDITS_PER_SECOND;
pub use roundtable_machine::{
    CircleStatus, Delayed, DeviceStatus, Error as MachineError, Event, ForkedDevice, Looked,
    Reading, Status, StewardStatus, Welcome,
};
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
    /// The file layer the home is kept through: the real file system
    /// unless a test swaps in one that is slow or fails.
    pub fs: Option<std::sync::Arc<dyn roundtable_store::Fs>>,
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
            fs: None,
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
    /// What the machine could not do: the circle's rules, the files of a
    /// circle, a circle not here. (Its refusals are [`Self::Refused`].)
    #[error(transparent)]
    Machine(MachineError),
    /// The home's own files, as the node starts (its lock, its identity).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The network failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// This device or the other one said no, with its reason: the
    /// machine's refusals and the other device's alike.
    #[error("{0}")]
    Refused(String),
    /// A peer broke the protocol or went silent.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The control socket could not be served.
    #[error("control socket: {0}")]
    ControlSocket(std::io::Error),
    /// The node's own task ended abnormally (it panicked).
    #[error("the node's task failed: {0}")]
    Crashed(String),
    /// The device to reach could not be reached.
    #[error("{0}")]
    Unreachable(String),
}

impl NodeError {
    /// What kind of failure this is: the one place a node's error is
    /// sorted for the CLI's exit code, the control socket and the web app.
    pub fn kind(&self) -> ErrorKind {
        let core = |c: &CoreError| {
            if c.is_bad_input() {
                ErrorKind::BadInput
            } else {
                ErrorKind::Failed
            }
        };
        match self {
            Self::Machine(MachineError::Core(c)) => core(c),
            Self::Machine(MachineError::Store(s)) => match &**s {
                StoreError::Refused(c) => core(c),
                _ => ErrorKind::Failed,
            },
            Self::Store(StoreError::Refused(c)) => core(c),
            Self::Machine(MachineError::UnknownCircle(_)) => ErrorKind::UnknownCircle,
            Self::Machine(MachineError::Refused(_)) | Self::Refused(_) => ErrorKind::Refused,
            Self::Unreachable(_) => ErrorKind::Unreachable,
            Self::Closed => ErrorKind::Closed,
            _ => ErrorKind::Failed,
        }
    }
}

impl From<MachineError> for NodeError {
    fn from(e: MachineError) -> Self {
        match e {
            // One variant for every refusal, wherever it was said.
            MachineError::Refused(why) => Self::Refused(why),
            e => Self::Machine(e),
        }
    }
}

impl From<CoreError> for NodeError {
    fn from(e: CoreError) -> Self {
        Self::Machine(e.into())
    }
}

/// How a conversation with a peer went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// A step of the conversation failed on the connection.
    #[error("{step}: {why}")]
    Step {
        /// What this side was doing ("sending", "connecting").
        step: &'static str,
        /// What the connection said.
        why: String,
    },
    /// The peer said nothing for longer than a step may take.
    #[error("{step}: the peer went silent")]
    Silent {
        /// What this side was waiting on.
        step: &'static str,
    },
    /// The peer closed the stream before the message this side waited for.
    #[error("{0}")]
    EndedEarly(&'static str),
    /// What the peer sent does not read.
    #[error(transparent)]
    Wire(#[from] roundtable_core::wire::WireError),
    /// The peer speaks another version of the wire protocol.
    #[error("the peer speaks wire version {0}")]
    Version(u32),
    /// The sync session ended early, and why.
    #[error(transparent)]
    Session(#[from] roundtable_machine::SessionError),
    /// An id that is no device's.
    #[error("not a device id: {0}")]
    NotADevice(String),
}
