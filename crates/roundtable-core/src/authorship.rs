//! Who wrote what: every change is proven to come from the device named as
//! its author before it is applied.
//!
//! A change's Automerge actor id is the id (the public key) of the device
//! that made it. A device proves authorship by signing its *head*: the hash
//! of its latest change. Because a change's hash covers the hashes of the
//! changes it builds on, one signed head vouches for that device's whole
//! history up to it. So proofs cost one signature per device and session,
//! not one per change, and nothing of them is stored in the document.
//!
//! Signed heads travel with gossip and at the start of every sync session,
//! and every device keeps the newest one it has seen of each device
//! ([`HeadBook`]). A change received from anyone — its author or a member
//! relaying it — is applied only when:
//!
//! - a signed head of its actor's device reaches it through the hash chain
//!   (so a member cannot make or alter a change under another's actor id);
//! - its device is admitted to the circle, or, for a device that has
//!   departed (revoked, or its member removed), the change does not build on
//!   its departure (so it cannot go on writing, while what it wrote before
//!   stays, wherever it arrived first); a device whose member left or was
//!   removed and came back is judged by the circle each change builds on,
//!   so what it wrote while out stays out and what it writes back in
//!   counts;
//! - or, for a device not admitted in the circle the change builds on, the
//!   change is a valid self-redemption: the device letting itself in with
//!   an invite, proven with the invite's redeem key, writing its redemption
//!   and its own record and nothing else, as the change's own history
//!   judges it (see [`crate::invite`]); its later changes then build on its
//!   admission and are judged like any member's;
//! - it keeps the circle's outline and the records of who is in: only the
//!   first change writes at the document's root, and nobody rewrites a
//!   consent, a proposal, a device or a redemption (see [`crate::shape`]).
//!
//! Changes that fail are dropped and counted; the rest are applied.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use automerge::{Automerge, Change, ChangeHash};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::actors::device_of;
use crate::identity::DeviceKey;
use crate::ids::{CircleId, DeviceId, MemberId};
use crate::membership::Membership;
use crate::standing::Standing;

const HEAD_CONTEXT: &[u8] = b"roundtable/head/1";
const SESSION_HEAD_CONTEXT: &[u8] = b"roundtable/head/2";

/// A device's signature over its newest change in one circle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    /// The device that made the change and signs for it.
    pub device: [u8; 32],
    /// The device's writing session the change was made in (its Automerge
    /// actor is the device id and this, see [`crate::circle::session_actor`];
    /// 0 for the device id alone).
    pub session: u64,
    /// Sequence number of the change among its session's changes.
    pub seq: u64,
    /// The change's hash.
    pub hash: [u8; 32],
    /// ed25519 signature by the device key (64 bytes).
    pub sig: Vec<u8>,
}

fn head_message(
    circle: CircleId,
    device: &[u8; 32],
    session: u64,
    seq: u64,
    hash: &[u8; 32],
) -> Vec<u8> {
    if session == 0 {
        return [
            HEAD_CONTEXT,
            circle.as_bytes(),
            device,
            &seq.to_le_bytes(),
            hash,
        ]
        .concat();
    }
    [
        SESSION_HEAD_CONTEXT,
        circle.as_bytes(),
        device,
        &session.to_le_bytes(),
        &seq.to_le_bytes(),
        hash,
    ]
    .concat()
}

impl SignedHead {
    /// Signs that change `hash`, number `seq` among `key`'s changes in
    /// session 0, is the device's newest in `circle` (whatever it really
    /// holds: a peer checks the hash chain, not the claim).
    pub fn new(circle: CircleId, key: &DeviceKey, seq: u64, hash: [u8; 32]) -> Self {
        Self::new_in(circle, key, 0, seq, hash)
    }

    /// Like [`SignedHead::new`], for a change of writing session `session`.
    pub fn new_in(
        circle: CircleId,
        key: &DeviceKey,
        session: u64,
        seq: u64,
        hash: [u8; 32],
    ) -> Self {
        let device = *key.id().as_bytes();
        let sig = key.sign(&head_message(circle, &device, session, seq, &hash));
        Self {
            device,
            session,
            seq,
            hash,
            sig: sig.to_vec(),
        }
    }

    /// Checks the signature against the device's key.
    pub fn verify(&self, circle: CircleId) -> bool {
        let (Ok(key), Ok(sig)) = (
            VerifyingKey::from_bytes(&self.device),
            <[u8; 64]>::try_from(self.sig.as_slice()),
        ) else {
            return false;
        };
        key.verify_strict(
            &head_message(circle, &self.device, self.session, self.seq, &self.hash),
            &Signature::from_bytes(&sig),
        )
        .is_ok()
    }

    /// The device that signed.
    pub fn device_id(&self) -> DeviceId {
        DeviceId::from_bytes(self.device)
    }
}

mod book;
pub use book::HeadBook;

/// What applying received changes did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Changes that were new and proven, now in the circle.
    pub applied: usize,
    /// Changes dropped, each with the reason.
    pub rejected: Vec<(ChangeHash, Rejection)>,
    /// Devices found to have signed two different changes under one
    /// number, and which of the two the circle keeps (see
    /// [`crate::equivocation`]).
    pub equivocated: Vec<crate::equivocation::Equivocation>,
}

/// Why a received change was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Its actor is not a device id.
    NotADevice,
    /// No signed head of its device covers it.
    Unproven,
    /// Its device is not (or no longer) admitted to the circle.
    NotAdmitted,
    /// It writes at the document's root (which only the first change
    /// does), or rewrites a record of who is in (see [`crate::shape`]).
    Outline,
    /// It builds on a change that was dropped.
    BuildsOnRejected,
    /// It is larger than any edit may be (see [`crate::shape`]).
    TooLarge,
    /// Its device signed another change under the same number, and the
    /// circle keeps that one (see [`crate::equivocation`]).
    Equivocation,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rejection::NotADevice => "its author is not a device",
            Rejection::Unproven => "its author's signature does not cover it",
            Rejection::NotAdmitted => "its device is not admitted to the circle",
            Rejection::Outline => "it rewrites the circle's outline or a record of who is in",
            Rejection::BuildsOnRejected => "it builds on a change that was refused",
            Rejection::TooLarge => "it is larger than any edit may be",
            Rejection::Equivocation => {
                "its device signed another change under the same number, which the circle keeps"
            }
        })
    }
}

/// The changes of `batch` that a signed head in `book` reaches through
/// the batch's own hash chain, each by a head of its own device (a head
/// covers the changes of every session of its device it reaches).
pub(crate) fn proven(batch: &[Change], book: &HeadBook) -> HashSet<ChangeHash> {
    let by_hash: HashMap<ChangeHash, &Change> = batch.iter().map(|c| (c.hash(), c)).collect();
    let devices: BTreeSet<DeviceId> = batch
        .iter()
        .filter_map(|c| device_of(c.actor_id()).map(|(d, _)| d))
        .collect();
    let mut proven = HashSet::new();
    for device in devices {
        let mut seen = HashSet::new();
        let mut stack: Vec<ChangeHash> = book
            .heads_of(&device)
            .filter(|h| by_hash.contains_key(h))
            .collect();
        while let Some(h) = stack.pop() {
            if !seen.insert(h) {
                continue;
            }
            let Some(c) = by_hash.get(&h) else { continue };
            if of_device(c, device) {
                proven.insert(h);
            }
            stack.extend(c.deps().iter().filter(|d| by_hash.contains_key(d)));
        }
    }
    proven
}

/// Whether `c` was made by `device`, in any of its sessions.
pub(crate) fn of_device(c: &Change, device: DeviceId) -> bool {
    device_of(c.actor_id()).is_some_and(|(d, _)| d == device)
}

/// Whether each change of `chain` (one device's, in order) was made while
/// its device was admitted, for a device whose member left or was removed
/// and came back. Whether it was depends only on which of `turns` (the
/// changes that wrote a leaving, a return, a proposal about the member or
/// a consent to one, or a revocation of the device) the change builds on,
/// and each change builds on all its predecessor did: so the chain falls
/// into stretches that build on the same turns, found by halving, and the
/// circle is read once per stretch (`was_in`), not once per change.
fn admitted_along(
    doc: &automerge::Automerge,
    chain: &[&Change],
    turns: &[ChangeHash],
    was_in: impl Fn(&Change) -> bool,
) -> Vec<bool> {
    if chain.is_empty() {
        return Vec::new();
    }
    let seen = |i: usize| {
        let c = chain[i].hash();
        let mut s = crate::membership::known_of(doc, c, turns);
        s.remove(&c);
        s
    };
    // Where each stretch starts, found by halving between changes that
    // build on different turns.
    let mut starts = vec![0];
    let mut stack = vec![(0, seen(0), chain.len() - 1, seen(chain.len() - 1))];
    while let Some((lo, at_lo, hi, at_hi)) = stack.pop() {
        if at_lo == at_hi {
            continue;
        }
        if hi - lo == 1 {
            starts.push(hi);
            continue;
        }
        let mid = lo + (hi - lo) / 2;
        let at_mid = seen(mid);
        stack.push((lo, at_lo, mid, at_mid.clone()));
        stack.push((mid, at_mid, hi, at_hi));
    }
    starts.sort_unstable();
    let mut out = vec![false; chain.len()];
    for (k, start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(chain.len());
        let admitted = was_in(chain[*start]);
        out[*start..end].fill(admitted);
    }
    out
}

/// Decides which of `new` (just applied on top of `before`, where the
/// membership was `was`; `ops[i]` the operations of `new[i]`) must go.
#[allow(clippy::too_many_arguments)]
pub(crate) fn judge(
    doc: &Automerge,
    standing: &Standing,
    id: CircleId,
    before: &[ChangeHash],
    was: Option<&Membership>,
    new: &[Change],
    ops: &[Vec<automerge::legacy::Op>],
    heads: &HeadBook,
) -> Vec<(ChangeHash, Rejection)> {
    let shape = standing.shape(doc);
    let had_history = !before.is_empty();
    let proven = proven(new, heads);
    let admission = Admission::find(doc, standing, id, was, new);

    let mut rejected = Vec::new();
    let mut bad: HashSet<ChangeHash> = HashSet::new();
    // `get_changes` lists changes in causal order, so a change's new deps are judged first.
    for (c, ops) in new.iter().zip(ops) {
        let hash = c.hash();
        let verdict = (|| {
            let Some((device, _)) = device_of(c.actor_id()) else {
                return Some(Rejection::NotADevice);
            };
            if c.deps().iter().any(|d| bad.contains(d)) {
                return Some(Rejection::BuildsOnRejected);
            }
            if crate::shape::too_large(c, ops) {
                return Some(Rejection::TooLarge);
            }
            if !proven.contains(&hash) {
                return Some(Rejection::Unproven);
            }
            let allowed = admission.allowed(c, &device)
                // The founder's first change makes the circle it is admitted to.
                || (!had_history && c.deps().is_empty());
            if !allowed {
                return Some(Rejection::NotAdmitted);
            }
            if shape.breaks(c, ops, doc, had_history) {
                return Some(Rejection::Outline);
            }
            None
        })();
        if let Some(r) = verdict {
            bad.insert(hash);
            rejected.push((hash, r));
        }
    }
    rejected
}

/// Which new changes their devices made while admitted.
///
/// A change counts only if its device was admitted in the circle the change
/// builds on. That is quick to see for a device admitted both before and
/// after the batch; for any other, the circle is read as the change saw it.
/// A device's own changes form a chain (one per writing session) along
/// which admission starts once and ends once, so when its first and last
/// new changes were made while admitted, all between were too. Not so for
/// a device whose member left or was removed and came back, or was
/// recovered (a recovery refused after it was carried through lets devices
/// go and back): it may have been out in between, so its chain is read in
/// stretches (see `admitted_along`).
struct Admission<'a> {
    /// The membership after the batch, and before it.
    now: &'a Membership,
    was: Option<&'a Membership>,
    /// Each device of a member who came back or was recovered, and whose
    /// it is.
    came_back: BTreeMap<DeviceId, MemberId>,
    /// Changes made while their device was admitted, each read as it saw
    /// the circle.
    was_admitted: HashSet<ChangeHash>,
    /// First changes by which a device let itself in.
    let_in: HashSet<ChangeHash>,
}

impl<'a> Admission<'a> {
    fn find(
        doc: &Automerge,
        standing: &'a Standing,
        id: CircleId,
        was: Option<&'a Membership>,
        new: &[Change],
    ) -> Self {
        let now = &standing.membership;
        let came_back = standing
            .view
            .members
            .iter()
            .filter(|(m, _)| now.stints.contains_key(m) || now.recovered.contains(m))
            .flat_map(|(m, mm)| mm.devices.keys().map(move |d| (*d, *m)))
            .collect();
        let mut admission = Admission {
            now,
            was,
            came_back,
            was_admitted: HashSet::new(),
            let_in: HashSet::new(),
        };
        let mut chains: BTreeMap<(DeviceId, u64), Vec<&Change>> = BTreeMap::new();
        for c in new {
            if let Some(slot) = device_of(c.actor_id())
                && !admission.quick(&slot.0)
            {
                chains.entry(slot).or_default().push(c);
            }
        }
        for ((device, _), chain) in chains {
            admission.read_chain(doc, id, device, chain);
        }
        admission
    }

    /// Admitted before the batch and after it, and never out between.
    fn quick(&self, device: &DeviceId) -> bool {
        self.now.admitted.contains(device)
            && self.was.is_none_or(|m| m.admitted.contains(device))
            && !self.came_back.contains_key(device)
    }

    /// Notes which of one device's chain of new changes it made while
    /// admitted. A device that was not admitted may still let itself in:
    /// its first change may be a self-redemption (see [`crate::invite`]),
    /// after which it is admitted, so such a chain opens like an admitted
    /// one.
    fn read_chain(
        &mut self,
        doc: &Automerge,
        id: CircleId,
        device: DeviceId,
        mut chain: Vec<&Change>,
    ) {
        let was_in = |c: &Change| was_in(doc, c, &device);
        chain.sort_by_key(|c| c.seq());
        let (first, rest) = (chain[0], &chain[1..]);
        let opens = if was_in(first) {
            self.was_admitted.insert(first.hash());
            true
        } else if crate::invite::lets_itself_in(doc, first, id) {
            self.let_in.insert(first.hash());
            true
        } else {
            false
        };
        if let Some(member) = self.came_back.get(&device) {
            let turns = crate::membership::turns_of(doc, *member, device);
            let along = admitted_along(doc, rest, &turns, was_in);
            self.was_admitted.extend(
                rest.iter()
                    .zip(along)
                    .filter(|(_, a)| *a)
                    .map(|(c, _)| c.hash()),
            );
        } else if opens && rest.last().is_none_or(|last| was_in(last)) {
            self.was_admitted.extend(rest.iter().map(|c| c.hash()));
        } else {
            self.was_admitted
                .extend(rest.iter().filter(|c| was_in(c)).map(|c| c.hash()));
        }
    }

    /// Whether `c`, by `device`, was made while the device was admitted.
    fn allowed(&self, c: &Change, device: &DeviceId) -> bool {
        let hash = c.hash();
        self.quick(device) || self.was_admitted.contains(&hash) || self.let_in.contains(&hash)
    }
}

/// Whether `device` was admitted in the circle `c` builds on.
fn was_in(doc: &Automerge, c: &Change, device: &DeviceId) -> bool {
    doc.fork_at(c.deps())
        .is_ok_and(|then| Membership::read(&then).admitted.contains(device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circle::Circle;
    use crate::identity::MemberKey;
    use crate::{Mood, Profile, Timestamp};

    /// The quick way to this device's newest change finds what the walk
    /// through history finds, including nothing for a device that never
    /// wrote and a change that arrived from another copy of itself.
    #[test]
    fn own_newest_change_without_a_walk() {
        let mut rng = rand::rng();
        let (maya, sam) = (MemberKey::generate(), MemberKey::generate());
        let (md, sd) = (DeviceKey::generate(), DeviceKey::generate());
        let t = Timestamp::from_millis(1_795_464_000_000);
        let mut c = Circle::create(
            "S",
            "",
            &maya.certify(md.id()),
            &Profile::named("M"),
            t,
            &mut rng,
        )
        .unwrap();
        c.add_member(
            &sam.certify(sd.id()),
            &Profile::named("S"),
            Some(maya.id()),
            t,
        )
        .unwrap();
        let sam = sam.clone();
        let newest = |c: &Circle| -> Vec<ChangeHash> {
            c.newest_of_device(sd.id())
                .iter()
                .map(Change::hash)
                .collect()
        };
        let mut at_sam = c.clone();
        at_sam.set_writer(sd.id(), 7);
        assert!(newest(&at_sam).is_empty());
        assert!(at_sam.walk_to_newest_of(sd.id()).is_empty());
        for i in 0..5 {
            at_sam
                .checkin(sam.id(), Mood::Okay, &format!("{i}"), t, &mut rng)
                .unwrap();
            c.checkin(maya.id(), Mood::Okay, "m", t, &mut rng).unwrap();
        }
        at_sam.merge(&mut c.clone()).unwrap();
        let quick = at_sam.newest_of_device(sd.id());
        assert_eq!(quick.len(), 1);
        let quick = quick[0].clone();
        assert_eq!(vec![quick.hash()], at_sam.walk_to_newest_of(sd.id()));
        assert_eq!(quick.seq(), 5);
        // A fresh copy of Sam's device that got his changes from elsewhere.
        let mut fresh = c.clone();
        fresh.set_writer(sd.id(), 8);
        fresh.merge(&mut at_sam.clone()).unwrap();
        assert_eq!(newest(&fresh), vec![quick.hash()]);
        // ... or as bytes (gossip, a log), or by sync.
        let mut by_bytes = c.clone();
        by_bytes.set_writer(sd.id(), 9);
        assert!(newest(&by_bytes).is_empty());
        by_bytes.apply(&at_sam.save()).unwrap();
        assert_eq!(newest(&by_bytes), vec![quick.hash()]);
        let mut by_sync = c.clone();
        by_sync.set_writer(sd.id(), 10);
        let (mut ours, mut theirs) = (crate::PeerSync::fresh(), crate::PeerSync::fresh());
        for _ in 0..10 {
            if let Some(m) = at_sam.sync_generate(&mut theirs) {
                by_sync.sync_receive(&mut ours, &m).unwrap();
            }
            if let Some(m) = by_sync.sync_generate(&mut ours) {
                at_sam.sync_receive(&mut theirs, &m).unwrap();
            }
        }
        assert_eq!(newest(&by_sync), vec![quick.hash()]);
        // Writing in a new session: its change is the newest, and reaches
        // the older session's.
        by_sync
            .checkin(sam.id(), Mood::Okay, "again", t, &mut rng)
            .unwrap();
        let again = newest(&by_sync);
        assert_eq!(again.len(), 1);
        assert_ne!(again, vec![quick.hash()]);
        // A copy restored from before Sam's changes writes in a session of
        // its own, then gets the old ones: both branches are newest until
        // it writes again.
        let mut restored = c.clone();
        restored.set_writer(sd.id(), 11);
        restored
            .checkin(sam.id(), Mood::Okay, "restored", t, &mut rng)
            .unwrap();
        restored.merge(&mut at_sam.clone()).unwrap();
        let both = newest(&restored);
        assert_eq!(both.len(), 2);
        assert!(both.contains(&quick.hash()));
        let mut walked = restored.walk_to_newest_of(sd.id());
        walked.sort();
        let mut both = both;
        both.sort();
        assert_eq!(walked, both);
        restored
            .checkin(sam.id(), Mood::Okay, "merged", t, &mut rng)
            .unwrap();
        assert_eq!(newest(&restored).len(), 1);
    }
}
