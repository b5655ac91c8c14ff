//! Telling a removed member: what a device hands the device of a member
//! the circle removed by consent, so that it learns of its removal from
//! the real records, and checks them as it checks any change.
//!
//! Once the others remove a member, every device refuses that member's
//! devices at the handshake, so a removed device never receives the
//! consents that removed it. A device that holds the removal keeps a
//! [`Farewell`] for the member, made when it first saw the removal: the
//! heads of its copy then, and the signed heads that prove every change up
//! to them. Asked by a device of that member (on its own ALPN, see
//! PROTOCOL.md), it answers with the changes up to those heads that the
//! device lacks, and those proofs. Nothing written after the removal can be
//! in it: a farewell is made only from a copy in which nothing builds on
//! the removal's own records ([`Farewell::make`]), and later changes are
//! not in the fork at its heads. The removed device applies the changes
//! through [`Circle::apply_verified`], like any it receives, so one
//! hostile member cannot make anyone believe they were removed.

use std::collections::BTreeSet;

use automerge::{ChangeHash, ObjType, ROOT, ReadDoc, Value};
use serde::{Deserialize, Serialize};

use crate::authorship::SignedHead;
use crate::circle::Circle;
use crate::doc::guarded;
use crate::error::CoreError;
use crate::identity::DeviceKey;
use crate::ids::MemberId;
use crate::membership::ProposalState;
use crate::schema;

/// The most document heads a removed device names in its request (a copy
/// has a handful; past this it is simply sent more than it lacks).
pub const MAX_ASKED_HEADS: usize = 64;

/// The largest request read, before allocating for it.
pub const MAX_REQUEST: usize = 4 * 1024;

/// What a device keeps of one removal, to hand the removed member's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Farewell {
    /// The member removed.
    pub member: MemberId,
    /// The heads of this copy when it first saw the removal.
    pub heads: Vec<[u8; 32]>,
    /// Signed heads proving every change up to `heads`.
    pub proofs: Vec<SignedHead>,
}

impl Farewell {
    /// The farewell for `member` from this copy as it stands, if the
    /// circle removed them and nothing in this copy builds on the records
    /// that removed them (their proposal and its consents) — else `None`:
    /// something written after the removal would go along. `proofs`: the
    /// signed heads this device holds (its head book); its own newest are
    /// signed here.
    pub fn make(
        circle: &Circle,
        member: MemberId,
        proofs: Vec<SignedHead>,
        me: &DeviceKey,
    ) -> Option<Self> {
        let records = removal_records(circle, member)?;
        let doc = circle.doc();
        let listed: Vec<ChangeHash> = records.iter().copied().collect();
        let builds_on_removal = doc
            .get_changes(&listed)
            .iter()
            .any(|c| c.deps().iter().any(|d| records.contains(d)));
        if builds_on_removal {
            return None;
        }
        let heads = circle.heads();
        let mut proofs: Vec<SignedHead> = proofs
            .into_iter()
            .filter(|h| circle.has_change(&ChangeHash(h.hash)))
            .collect();
        proofs.extend(SignedHead::sign_all(circle, me));
        Some(Self {
            member,
            heads: heads.iter().map(|h| h.0).collect(),
            proofs,
        })
    }

    /// What to hand a removed device whose copy has `theirs` as heads: the
    /// changes up to this farewell's heads that it lacks (a change chunk
    /// for [`Circle::apply_verified`]), and the proofs.
    pub fn answer(
        &self,
        circle: &Circle,
        theirs: &[[u8; 32]],
    ) -> Result<(Vec<u8>, Vec<SignedHead>), CoreError> {
        let heads: Vec<ChangeHash> = self.heads.iter().map(|h| ChangeHash(*h)).collect();
        let doc = circle.doc();
        let then = guarded(|| doc.fork_at(&heads))?;
        // Heads the fork does not hold (their own later changes) say
        // nothing of what they lack: they are sent a little more.
        let known: Vec<ChangeHash> = theirs
            .iter()
            .map(|h| ChangeHash(*h))
            .filter(|h| then.get_change_by_hash(h).is_some())
            .collect();
        Ok((then.save_after(&known), self.proofs.clone()))
    }
}

/// The hashes of the changes that wrote the carried proposal removing
/// `member` and its consents; `None` when no proposal removing them carried.
fn removal_records(circle: &Circle, member: MemberId) -> Option<BTreeSet<ChangeHash>> {
    let membership = circle.membership();
    if !membership.removed.contains(&member) {
        return None;
    }
    let doc = circle.doc();
    let (Value::Object(ObjType::Map), removals) = doc.get(ROOT, schema::REMOVALS).ok()?? else {
        return None;
    };
    let mut records = BTreeSet::new();
    for p in membership
        .proposals
        .values()
        .filter(|p| p.target == member && p.state == ProposalState::Carried)
    {
        let Some((Value::Object(ObjType::Map), obj)) =
            doc.get(&removals, p.id.to_string()).ok().flatten()
        else {
            continue;
        };
        records.extend(doc.hash_for_opid(&obj));
        if let Some((Value::Object(ObjType::Map), consents)) =
            doc.get(&obj, "consents").ok().flatten()
        {
            for key in doc.keys(&consents) {
                if let Some((_, c)) = doc.get(&consents, &key).ok().flatten() {
                    records.extend(doc.hash_for_opid(&c));
                }
            }
        }
    }
    (!records.is_empty()).then_some(records)
}
