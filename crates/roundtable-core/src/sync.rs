//! Catching up with a peer: Automerge's sync protocol, one state per peer.
//!
//! Each side keeps a [`PeerSync`] for every peer. A session is a series of
//! rounds; in each, both sides generate a message (or nothing) and receive
//! the other's. When a whole round passes with nothing said by either side,
//! both hold the same heads and the session ends. The state is kept between
//! sessions ([`PeerSync::persist`]), so a returning peer starts from what was
//! shared last time instead of its whole history.

use automerge::ChangeHash;
use automerge::ReadDoc;
use automerge::sync::{Message, State, SyncDoc};

use crate::circle::Circle;
use crate::doc::guarded;
use crate::error::CoreError;

/// What this device knows of one peer's copy of a circle.
#[derive(Debug, Clone, Default)]
pub struct PeerSync {
    state: State,
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

impl Circle {
    /// The next sync message for a peer, if there is anything to say.
    pub fn sync_generate(&self, peer: &mut PeerSync) -> Option<Vec<u8>> {
        self.doc()
            .generate_sync_message(&mut peer.state)
            .map(Message::encode)
    }

    /// Takes in a peer's sync message. Bad bytes are an error, never a panic,
    /// and change nothing.
    pub fn sync_receive(&mut self, peer: &mut PeerSync, bytes: &[u8]) -> Result<(), CoreError> {
        self.sync_receive_seeing_clash(peer, bytes).0
    }

    /// Like [`Self::sync_receive`], and says whether it failed on a clash
    /// with a change held back for missing history.
    pub(crate) fn sync_receive_seeing_clash(
        &mut self,
        peer: &mut PeerSync,
        bytes: &[u8],
    ) -> (Result<(), CoreError>, bool) {
        let msg = match Message::decode(bytes) {
            Ok(msg) => msg,
            Err(e) => {
                let bad = CoreError::BadDocument(format!("bad sync message: {e}"));
                return (Err(bad), false);
            }
        };
        let doc = self.doc_mut();
        let state = &mut peer.state;
        let mut clash = false;
        let received = guarded(|| {
            doc.receive_sync_message(state, msg)
                .inspect_err(|e| clash = crate::doc::is_clash(e))
        });
        self.know_own_actor();
        (received, clash)
    }

    /// Takes in a peer's sync message whose changes clash with what this
    /// copy holds (two changes under one number): the changes go through
    /// the rule of [`crate::equivocation`], with `waiting` (what Automerge
    /// held back before), then the message without them moves the state on.
    pub(crate) fn sync_receive_clashing(
        &mut self,
        peer: &mut PeerSync,
        bytes: &[u8],
        waiting: Vec<automerge::Change>,
        heads: &mut crate::HeadBook,
    ) -> Result<crate::Applied, CoreError> {
        let mut msg = Message::decode(bytes)
            .map_err(|e| CoreError::BadDocument(format!("bad sync message: {e}")))?;
        let blob: Vec<u8> = msg.changes.iter().flatten().copied().collect();
        let mut incoming = crate::equivocation::changes_in(&blob)?;
        incoming.extend(waiting);
        let applied = self.apply_clashing(incoming, heads)?;
        msg.changes = automerge::sync::ChunkList::empty();
        let doc = self.doc_mut();
        let state = &mut peer.state;
        guarded(|| doc.receive_sync_message(state, msg))?;
        self.know_own_actor();
        Ok(applied)
    }

    /// Whether the peer, as far as we know, has every change we have.
    pub fn peer_has_everything(&self, peer: &PeerSync) -> bool {
        let Some(theirs) = peer.their_heads() else {
            return false;
        };
        let known: Vec<ChangeHash> = theirs
            .iter()
            .copied()
            .filter(|h| self.doc().get_change_by_hash(h).is_some())
            .collect();
        if known.is_empty() {
            return self.heads().is_empty();
        }
        self.doc().get_changes(&known).is_empty()
    }
}
