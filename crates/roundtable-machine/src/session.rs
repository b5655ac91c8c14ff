//! A sync session as a state object: it takes the frame the peer sent and
//! says what to send back, and when the session is over.
//!
//! The protocol, for one circle between two devices:
//!
//! 1. The opener sends `Hello` (naming the circle) and, without waiting,
//!    its first `Round`. The answerer lets it in (`Ready`) or says why not
//!    (`Refused`), and reads the round only once it has let it in.
//! 2. Lockstep rounds: the opener's round `k`, then the answerer's. Each
//!    round holds the signed heads the session has not sent yet and one
//!    Automerge sync message, or nothing to say. A round in which neither
//!    side said anything settles the session on both sides at once.
//!    A side that has received changes in [`crate::rate::SESSION_ROUNDS`]
//!    rounds of the session sends its key instead of its next round: the
//!    rest waits for the next session, at the schedule's pace (a device
//!    writing without pause would otherwise keep a session, and the
//!    receiver's applying, going without end). The peer answers with its
//!    key, and the session has gone well.
//! 3. Each side hands the other the circle key of its epoch (`Keys`), if
//!    its own copy still admits the other. Neither waits for the other's
//!    key before sending its own, so the answerer's rides right behind its
//!    last round and the keys cost no round trip.

use roundtable_core::wire::SyncFrame;
use roundtable_core::{CircleId, DeviceId, SignedHead};

use crate::schedule::Role;

/// A session that needs more rounds than this is not converging.
pub(crate) const MAX_ROUNDS: usize = 1_000;

/// The largest frame read before the peer is admitted to a circle (a
/// Hello, a Ready or a Refused with its reason).
pub const MAX_OPENING: usize = 1024;

/// One sync session: with whom, for which circle, and the token the
/// schedule gave it. Only the session whose token is current for its
/// circle and peer is answered: one that lost a tie-break must not share
/// the other's sync state or mark its signed heads as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId {
    /// The circle.
    pub circle: CircleId,
    /// The peer device.
    pub peer: DeviceId,
    /// The schedule's token for it.
    pub token: u64,
}

/// What a session does next: frames to send, in order, and whether it is
/// over (and how). Once it is over the machine has recorded its end; the
/// one carrying the session only closes it.
#[derive(Debug, Default)]
pub struct Step {
    /// Frames to send the peer.
    pub send: Vec<SyncFrame>,
    /// `Some` once the session is over: `Ok` if it completed, else why not.
    pub end: Option<Result<(), SessionError>>,
}

impl Step {
    pub(crate) fn send(frames: Vec<SyncFrame>) -> Self {
        Self {
            send: frames,
            end: None,
        }
    }

    pub(crate) fn failed(why: impl Into<SessionError>) -> Self {
        Self {
            send: Vec::new(),
            end: Some(Err(why.into())),
        }
    }
}

/// Why a sync session ended before it completed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// This device would not go on with it.
    #[error(transparent)]
    Refusal(#[from] SyncRefusal),
    /// The peer would not, and said why.
    #[error("the other device said no: {0}")]
    Refused(String),
    /// The peer sent something the protocol does not allow there.
    #[error("expected {expected}, got {got}")]
    Unexpected {
        /// What the session waited for.
        expected: &'static str,
        /// What came.
        got: &'static str,
    },
    /// More rounds than a session may take.
    #[error("sync did not converge")]
    NotConverging,
}

/// Why the machine will not go on with a sync session: said to the peer
/// when it opened the session, else the session ends with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncRefusal {
    /// This device does not serve the circle.
    #[error("this device does not hold that circle")]
    UnknownCircle,
    /// The peer's device is not admitted to the circle.
    #[error("your device is not admitted to this circle")]
    NotAdmitted,
    /// A session with the peer is under way already.
    #[error("busy: a sync with you is already under way")]
    Busy,
    /// Another session with the peer took this one's place.
    #[error("another sync with you took this one's place")]
    Superseded,
    /// What the peer sent could not be applied or kept.
    #[error("what you sent does not apply: {0}")]
    DoesNotApply(#[from] roundtable_store::StoreError),
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The opener waits for `Ready`.
    Opening,
    /// Rounds are exchanged.
    Rounds,
    /// Settled: waiting for the peer's key.
    Keys,
}

/// One side of a session under way.
#[derive(Debug, Clone)]
pub(crate) struct SyncSession {
    pub(crate) token: u64,
    pub(crate) role: Role,
    pub(crate) phase: Phase,
    /// Whether this side's last round said something.
    pub(crate) said: bool,
    pub(crate) rounds: usize,
    /// Rounds of the peer's that brought changes.
    pub(crate) brought: usize,
}

impl SyncSession {
    /// The opener's side, dialling; its first round goes with the Hello
    /// once the peer answers ([`Machine::connected`](crate::Machine::connected)).
    pub(crate) fn opener(token: u64) -> Self {
        Self {
            token,
            role: Role::Opener,
            phase: Phase::Opening,
            said: false,
            rounds: 1,
            brought: 0,
        }
    }

    /// The answerer's side, once it has let the opener in.
    pub(crate) fn answerer(token: u64) -> Self {
        Self {
            token,
            role: Role::Answerer,
            phase: Phase::Rounds,
            said: false,
            rounds: 0,
            brought: 0,
        }
    }
}

/// The name of a frame, for errors.
pub(crate) fn frame_name(frame: &SyncFrame) -> &'static str {
    match frame {
        SyncFrame::Hello { .. } => "Hello",
        SyncFrame::Ready => "Ready",
        SyncFrame::Refused { .. } => "Refused",
        SyncFrame::Round { .. } => "Round",
        SyncFrame::Keys(_) => "Keys",
    }
}

/// One side's round: the signed heads it has not sent yet, and a sync
/// message (or nothing to say).
pub(crate) type Round = (Vec<SignedHead>, Option<Vec<u8>>);
