//! Two different changes under one number: which one the circle keeps.
//!
//! Automerge numbers each actor's changes 1, 2, 3, ... and refuses a change
//! whose number its actor already used. A device whose home was restored
//! from an older copy would once have done that by accident; it no longer
//! can, because every writer works in a session of its own
//! ([`crate::circle::session_actor`]). So two *different* changes signed by
//! one device under the same actor and number can only come from a device
//! that misbehaves (a member's tampered or stolen device). Left alone, they
//! split the circle for good: devices holding one refuse the other, and
//! with it every change that arrives beside it.
//!
//! The rule, the same on every device:
//!
//! - Only a change whose device's signed head reaches it counts (see
//!   [`crate::authorship`]); an unproven one is refused as always, so a
//!   member cannot knock out another device's change by making one up.
//! - Of two proven changes with the same actor and number, the one with the
//!   smaller hash stays. The other goes, with every change that builds on
//!   it, on every device that held it.
//! - What this device itself had written on top of the change that went is
//!   written again (the same values at the same places), in a new session,
//!   so nothing a person wrote is lost. Other devices do the same for
//!   theirs when they learn of it.
//! - The device is named in [`Applied::equivocated`], so the node can tell
//!   people and its member can revoke it.

use automerge::{Automerge, Change, ChangeHash};

use crate::doc::guarded;
use crate::error::CoreError;
use crate::ids::DeviceId;

/// A device that signed two different changes under one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equivocation {
    /// The device.
    pub device: DeviceId,
    /// The change every device keeps.
    pub kept: ChangeHash,
    /// The change every device drops, with what builds on it.
    pub dropped: ChangeHash,
}

/// The changes in bytes that [`Automerge::load_incremental`] takes:
/// change chunks one after another, or a whole saved document.
pub(crate) fn changes_in(bytes: &[u8]) -> Result<Vec<Change>, CoreError> {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    const DOCUMENT: u8 = 0;
    let bad = |why: &str| CoreError::BadDocument(format!("malformed changes: {why}"));
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 10 || rest[..4] != MAGIC {
            return Err(bad("a chunk does not start as one"));
        }
        let kind = rest[8];
        let mut len_bytes = &rest[9..];
        let len = leb128::read::unsigned(&mut len_bytes).map_err(|_| bad("bad chunk length"))?;
        let header = rest.len() - len_bytes.len();
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(header))
            .filter(|end| *end <= rest.len())
            .ok_or_else(|| bad("a chunk runs past the end"))?;
        let chunk = &rest[..end];
        if kind == DOCUMENT {
            let doc = guarded(|| Automerge::load(chunk))?;
            out.extend(doc.get_changes(&[]));
        } else {
            let change = Change::try_from(chunk).map_err(|e| bad(&e.to_string()))?;
            out.push(change);
        }
        rest = &rest[end..];
    }
    Ok(out)
}

/// The changes `doc` holds back for missing history: what a save keeping
/// them adds to one that does not.
pub(crate) fn waiting_in(doc: &Automerge) -> Vec<Change> {
    let save = |retain_orphans| {
        doc.save_with_options(automerge::SaveOptions {
            deflate: false,
            retain_orphans,
        })
    };
    let (with, without) = (save(true), save(false));
    with.strip_prefix(without.as_slice())
        .and_then(|orphans| changes_in(orphans).ok())
        .unwrap_or_default()
}
