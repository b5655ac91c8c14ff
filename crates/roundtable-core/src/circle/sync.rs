//! A circle catching up with a peer (see [`crate::sync`]).

use automerge::ChangeHash;
use automerge::ReadDoc;
use automerge::sync::{Message, SyncDoc};

use super::Circle;
use crate::doc::guarded;
use crate::error::CoreError;
use crate::sync::PeerSync;

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
