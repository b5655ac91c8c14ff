//! The messages devices send each other, as bytes.
//!
//! Every message is one version byte ([`WIRE_VERSION`]) followed by the
//! message in postcard encoding. [`decode`] is a pure function from bytes to
//! a typed message or an error — never a panic, never an allocation much
//! larger than its input — which makes it the fuzz target for everything a
//! peer can send. The protocols that carry these messages are described in
//! `docs/PROTOCOL.md`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::authorship::SignedHead;
use crate::keys::KeyOffer;

/// The format version of every message defined here.
pub const WIRE_VERSION: u8 = 4;

/// The QUIC application close code with which a device that does not speak
/// a peer's wire version closes the peer's connection. Its reason is
/// [`version_reason`], which every release reads, so the peer learns which
/// version to update to (or that the other device should).
pub const VERSION_CLOSE: u32 = 426;

/// The close reason that goes with [`VERSION_CLOSE`]: `roundtable wire <n>`.
pub fn version_reason() -> String {
    format!("roundtable wire {WIRE_VERSION}")
}

/// The version a [`version_reason`] names.
pub fn parse_version_reason(reason: &[u8]) -> Option<u8> {
    std::str::from_utf8(reason)
        .ok()?
        .strip_prefix("roundtable wire ")?
        .parse()
        .ok()
}

/// The largest message accepted on a stream (a whole circle can travel in
/// a join or a sync message).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// A message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Nothing at all.
    #[error("empty message")]
    Empty,
    /// A version this build does not speak.
    #[error(
        "message version {found} is not supported (this build speaks {WIRE_VERSION}); update Roundtable"
    )]
    Version {
        /// The version byte found.
        found: u8,
    },
    /// Larger than any message we accept.
    #[error("message of {0} bytes is larger than the limit")]
    TooLarge(usize),
    /// The bytes are not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Encodes a message with its version byte.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = vec![WIRE_VERSION];
    // Serializing our own plain data types into a Vec cannot fail.
    out.extend(postcard::to_stdvec(msg).unwrap_or_default());
    out
}

/// Decodes a message, checking its version and size.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != WIRE_VERSION {
        return Err(WireError::Version { found: version });
    }
    if bytes.len() > MAX_MESSAGE {
        return Err(WireError::TooLarge(bytes.len()));
    }
    let (msg, rest) =
        postcard::take_from_bytes(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(msg)
}

/// Join protocol, first message: a device redeeming an invite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The circle the invite is for.
    pub circle: [u8; 16],
    /// The invite's id.
    pub invite: [u8; 8],
    /// The invite's secret, from the ticket.
    pub secret: [u8; 32],
    /// The member the connecting device belongs to.
    pub member: [u8; 32],
    /// The member's signature certifying the connecting device (64 bytes).
    pub cert: Vec<u8>,
    /// For a new member: the name they want.
    pub name: Option<String>,
}

/// One circle handed to a device that was let in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WelcomeCircle {
    /// The whole document, saved.
    pub doc: Vec<u8>,
    /// The circle key of the current epoch (it also derives the gossip topic).
    pub key: KeyOffer,
    /// Signed heads proving who wrote the document's changes.
    pub heads: Vec<SignedHead>,
}

/// Join protocol, the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinReply {
    /// In: the circle(s) and, when pairing a device, the member's key.
    Welcome {
        /// The circles to store.
        circles: Vec<WelcomeCircle>,
        /// The member identity key's seed, for a paired device only.
        member_key: Option<[u8; 32]>,
    },
    /// Not in, and why, in words for the person.
    Refused {
        /// Why.
        reason: String,
    },
}

/// Sync protocol: the frames of one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncFrame {
    /// The opener names the circle.
    Hello {
        /// Which circle.
        circle: [u8; 16],
    },
    /// The answerer serves it; the exchange can begin.
    Ready,
    /// The answerer refuses, with a reason.
    Refused {
        /// Why.
        reason: String,
    },
    /// One round: signed heads the sender has not sent yet in this
    /// session, and one Automerge sync message, or nothing to say.
    Round {
        /// Proofs of authorship (see [`crate::authorship`]).
        heads: Vec<SignedHead>,
        /// The sync message.
        msg: Option<Vec<u8>>,
    },
    /// After the rounds: the circle key of the sender's epoch, for a peer
    /// still admitted (`None` for one that is not).
    Keys(Option<KeyOffer>),
}

/// The news inside a sealed gossip envelope (see [`crate::keys`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// New changes of the sending device, small enough for gossip, and its
    /// signed head that proves them.
    Changes {
        /// The changes.
        changes: Vec<u8>,
        /// The sender's signed head.
        head: SignedHead,
    },
    /// "I have new heads": too big for gossip, fetch them by sync.
    Heads {
        /// The sender's heads of the document.
        heads: Vec<[u8; 32]>,
    },
}

/// Steward protocol: what a device asks of a steward, one shelf per
/// stream (see [`crate::steward`] and PROTOCOL.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StewardRequest {
    /// Opens a shelf of a locker, proving the key it is named by.
    Open {
        /// The locker (from the circle's steward record).
        locker: [u8; 16],
        /// The shelf: the verifying key derived from a circle key.
        shelf: [u8; 32],
        /// The shelf key's signature over the steward, locker, shelf and
        /// the connecting device (64 bytes).
        proof: Vec<u8>,
    },
    /// What lies on the shelf after `after`, except what this device put
    /// there itself, up to about `max_bytes`.
    Fetch {
        /// The last number already had.
        after: u64,
        /// How much to send at most (one item always goes).
        max_bytes: u32,
    },
    /// Puts a sealed item on the shelf; with `supersede_below`, the
    /// changes and snapshots numbered below it are dropped once it is kept.
    Put {
        /// Its kind ([`crate::steward::ShelfKind`] as a byte).
        kind: u8,
        /// The sealed bytes.
        bytes: Vec<u8>,
        /// What it supersedes.
        supersede_below: Option<u64>,
    },
    /// From now on, send what others put on this shelf as it arrives.
    Watch,
    /// Leaves a sealed welcome for someone holding a ticket (a shelf must
    /// be open: only the circle's devices leave welcomes).
    Leave {
        /// Where it waits ([`crate::steward::WelcomeSlot::name`]).
        slot: [u8; 32],
        /// The sealed welcome.
        bytes: Vec<u8>,
        /// When the steward drops it (ms since 1970): the invite's expiry.
        expires_at: i64,
    },
    /// Takes the welcome waiting in a slot (no shelf needed: the slot's
    /// name comes from the ticket).
    Take {
        /// Where it waits.
        slot: [u8; 32],
    },
    /// Forgets a welcome: the token whose hash names its slot.
    Forget {
        /// The token.
        token: [u8; 32],
    },
}

/// One item on a shelf, as a steward hands it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShelfEntry {
    /// Its number on the shelf (increasing).
    pub seq: u64,
    /// Its kind, as labelled when it was put.
    pub kind: u8,
    /// The sealed bytes.
    pub bytes: Vec<u8>,
}

/// Steward protocol: the answers, in order, and what arrives while
/// watching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StewardReply {
    /// The shelf is open.
    Opened {
        /// The newest number on it.
        last: u64,
        /// The bytes it holds.
        bytes: u64,
    },
    /// Items after the asked number, oldest first.
    Items {
        /// The items.
        items: Vec<ShelfEntry>,
        /// The newest number they reach (those this device put skipped).
        upto: u64,
        /// Whether more are waiting.
        more: bool,
    },
    /// The item was kept, durably.
    Stored {
        /// Its number.
        seq: u64,
        /// The bytes the shelf now holds.
        bytes: u64,
    },
    /// Another device put this while this one watched.
    Arrived(ShelfEntry),
    /// The welcome was left (or forgotten), durably.
    Left,
    /// The welcome waiting in the slot asked for.
    Welcome {
        /// The sealed welcome.
        bytes: Vec<u8>,
    },
    /// Not done, and why, in words for the person.
    Refused {
        /// Why.
        reason: String,
    },
}

/// Farewell protocol: a device refused as departed asks what made it so
/// (see [`crate::farewell`]). At most [`crate::farewell::MAX_REQUEST`]
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FarewellRequest {
    /// Which circle.
    pub circle: [u8; 16],
    /// The heads of the asking device's copy (at most
    /// [`crate::farewell::MAX_ASKED_HEADS`] are looked at).
    pub heads: Vec<[u8; 32]>,
}

/// Farewell protocol, the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FarewellReply {
    /// The changes up to the removal that the asking device lacks, and
    /// the signed heads that prove them.
    Changes {
        /// A chunk of Automerge changes.
        changes: Vec<u8>,
        /// Proofs of authorship.
        heads: Vec<SignedHead>,
    },
    /// Nothing for this device, and why.
    Refused {
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let e = Body::Heads {
            heads: vec![[3; 32]],
        };
        let bytes = encode(&e);
        assert_eq!(decode::<Body>(&bytes).unwrap(), e);
        assert_eq!(decode::<Body>(&[]), Err(WireError::Empty));
        let mut v9 = bytes.clone();
        v9[0] = 9;
        assert_eq!(decode::<Body>(&v9), Err(WireError::Version { found: 9 }));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            decode::<Body>(&trailing),
            Err(WireError::Malformed(_))
        ));
        assert!(decode::<Body>(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn the_version_a_close_names_reads_back() {
        assert_eq!(
            parse_version_reason(version_reason().as_bytes()),
            Some(WIRE_VERSION)
        );
        assert_eq!(parse_version_reason(b"roundtable wire 3"), Some(3));
        assert_eq!(parse_version_reason(b"synced"), None);
        assert_eq!(parse_version_reason(b"roundtable wire 999"), None);
    }
}
