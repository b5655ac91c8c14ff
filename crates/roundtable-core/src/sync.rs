//! Catching up with a peer: Automerge's sync protocol, one state per peer.
//!
//! Each side keeps a [`PeerSync`] for every peer. A session is a series of
//! rounds; in each, both sides generate a message (or nothing) and receive
//! the other's. When a whole round passes with nothing said by either side,
//! both hold the same heads and the session ends. The state is kept between
//! sessions ([`PeerSync::persist`]), so a returning peer starts from what was
//! shared last time instead of its whole history.

use automerge::ChangeHash;
use automerge::sync::State;

/// What this device knows of one peer's copy of a circle.
#[derive(Debug, Clone, Default)]
pub struct PeerSync {
    pub(crate) state: State,
}

impl PeerSync {
    /// A peer we never synced with.
    pub fn fresh() -> Self {
        Self::default()
    }

    /// A peer's state as persisted; damaged bytes give a fresh state (which
    /// only costs a longer first exchange).
    pub fn restore(bytes: &[u8]) -> Self {
        match State::decode(bytes) {
            // Automerge writes the heads sorted and asserts they are when it
            // encodes the next message, so unsorted ones are damage too.
            Ok(state) if state.shared_heads.is_sorted() => Self { state },
            _ => Self::fresh(),
        }
    }

    /// The part worth keeping between sessions (the heads both sides had).
    pub fn persist(&self) -> Vec<u8> {
        self.state.encode()
    }

    /// Starts a new session: what was in flight in an earlier one is forgotten.
    pub fn new_session(&mut self) {
        self.state = State::decode(&self.state.encode()).unwrap_or_default();
    }

    /// The heads the peer last told us it has.
    pub fn their_heads(&self) -> Option<&[ChangeHash]> {
        self.state.their_heads.as_deref()
    }

    /// Whether, as of the last session, the peer had exactly what `heads`
    /// (this copy's heads, sorted as Automerge gives them) hold: then a new
    /// session has nothing of ours to send.
    pub fn level_with(&self, heads: &[ChangeHash]) -> bool {
        self.state.shared_heads == heads
    }
}
