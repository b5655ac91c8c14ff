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
//!   stays, wherever it arrived first);
//! - it keeps the circle's outline and the records of who is in: only the
//!   first change writes at the document's root, and nobody rewrites a
//!   consent, a proposal, a device or a redemption (see [`crate::shape`]).
//!
//! Changes that fail are dropped and counted; the rest are applied.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use automerge::{ActorId, Change, ChangeHash, ReadDoc};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::circle::{Circle, guarded};
use crate::error::CoreError;
use crate::identity::DeviceKey;
use crate::ids::{CircleId, DeviceId};
use crate::membership::Membership;

const HEAD_CONTEXT: &[u8] = b"roundtable/head/1";

/// A device's signature over its newest change in one circle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    /// The device (whose id is also its Automerge actor id).
    pub device: [u8; 32],
    /// Sequence number of the change among this device's changes.
    pub seq: u64,
    /// The change's hash.
    pub hash: [u8; 32],
    /// ed25519 signature by the device key (64 bytes).
    pub sig: Vec<u8>,
}

fn head_message(circle: CircleId, device: &[u8; 32], seq: u64, hash: &[u8; 32]) -> Vec<u8> {
    [
        HEAD_CONTEXT,
        circle.as_bytes(),
        device,
        &seq.to_le_bytes(),
        hash,
    ]
    .concat()
}

impl SignedHead {
    /// Signs `device`'s newest change in `circle`; `None` before its first.
    pub fn sign(circle: &Circle, key: &DeviceKey) -> Option<Self> {
        let device = *key.id().as_bytes();
        let change = circle.last_change_of(&ActorId::from(device.as_slice()))?;
        Some(Self::new(circle.id(), key, change.seq(), change.hash().0))
    }

    /// Signs that change `hash`, number `seq` among `key`'s changes, is
    /// the device's newest in `circle` (whatever it really holds: a peer
    /// checks the hash chain, not the claim).
    pub fn new(circle: CircleId, key: &DeviceKey, seq: u64, hash: [u8; 32]) -> Self {
        let device = *key.id().as_bytes();
        let sig = key.sign(&head_message(circle, &device, seq, &hash));
        Self {
            device,
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
            &head_message(circle, &self.device, self.seq, &self.hash),
            &Signature::from_bytes(&sig),
        )
        .is_ok()
    }

    /// The device that signed.
    pub fn device_id(&self) -> DeviceId {
        DeviceId::from_bytes(self.device)
    }
}

/// The signed heads known of each device in one circle: the newest whose
/// change this copy holds (it covers every change of that device here), and
/// a few newer ones whose changes are still on their way.
///
/// The book is bounded, whatever peers send: it keeps heads only for the
/// circle's certified devices ([`HeadBook::know_devices`]), at most
/// `1 + PENDING` of each, plus a few heads of devices not (yet) certified
/// here, whose certificates may be on their way in the same session. A
/// head is verified only once it has a place in the book, so a flood of
/// heads costs a lookup each, not a signature check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadBook {
    heads: BTreeMap<[u8; 32], Vec<SignedHead>>,
    /// Heads of devices not certified here (yet), oldest first; not kept
    /// across restarts (peers send heads again at every session).
    #[serde(skip)]
    strangers: Vec<SignedHead>,
    /// The circle's certified devices (departed ones included: their
    /// history still needs its proof).
    #[serde(skip)]
    devices: BTreeSet<[u8; 32]>,
}

impl HeadBook {
    /// Newer heads kept per device while their changes are on their way.
    const PENDING: usize = 3;
    /// Heads kept of devices not certified here.
    pub const STRANGERS: usize = 16;

    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty book for the devices `circle` certifies.
    pub fn for_circle(circle: &Circle) -> Self {
        let mut book = Self::new();
        book.know_devices(&circle.membership().certified);
        book
    }

    /// Reads a kept book; damaged bytes give an empty one (peers send heads
    /// again at every session). Call [`HeadBook::know_devices`] before use.
    pub fn restore(bytes: &[u8]) -> Self {
        postcard::from_bytes(bytes).unwrap_or_default()
    }

    /// The bytes to keep.
    pub fn persist(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Tells the book which devices the circle certifies: heads of others
    /// are dropped, heads of strangers now certified are taken in.
    pub fn know_devices(&mut self, devices: &BTreeSet<DeviceId>) {
        self.devices = devices.iter().map(|d| *d.as_bytes()).collect();
        let known = &self.devices;
        self.heads.retain(|d, _| known.contains(d));
        let strangers = std::mem::take(&mut self.strangers);
        for h in strangers {
            if self.devices.contains(&h.device) {
                self.place(h);
            } else {
                self.strangers.push(h);
            }
        }
    }

    /// Takes in heads that verify and are not known yet; returns how many
    /// were taken. Heads that do not verify are ignored.
    pub fn learn<'a>(
        &mut self,
        circle: CircleId,
        heads: impl IntoIterator<Item = &'a SignedHead>,
    ) -> usize {
        let mut taken = 0;
        // An honest peer sends at most as many of one device as a book
        // keeps; signatures beyond that are not even checked.
        let mut tried: HashMap<[u8; 32], usize> = HashMap::new();
        let mut strangers_tried = 0;
        for h in heads {
            let known_device = self.devices.contains(&h.device);
            let tries = if known_device {
                let n = tried.entry(h.device).or_default();
                *n += 1;
                *n
            } else {
                strangers_tried += 1;
                strangers_tried
            };
            let limit = if known_device {
                1 + Self::PENDING
            } else {
                Self::STRANGERS
            };
            if tries > limit {
                continue;
            }
            let fresh = if known_device {
                let known = self.heads.get(&h.device);
                let older = known.and_then(|k| k.first()).is_some_and(|k| k.seq > h.seq);
                !older && !known.is_some_and(|k| k.iter().any(|k| k.hash == h.hash))
            } else {
                !self.strangers.iter().any(|k| k.hash == h.hash)
            };
            if !fresh || !h.verify(circle) {
                continue;
            }
            if known_device {
                self.place(h.clone());
            } else {
                self.strangers.push(h.clone());
                if self.strangers.len() > Self::STRANGERS {
                    self.strangers.remove(0);
                }
            }
            taken += 1;
        }
        taken
    }

    fn place(&mut self, h: SignedHead) {
        let known = self.heads.entry(h.device).or_default();
        if known.iter().any(|k| k.hash == h.hash) {
            return;
        }
        known.push(h);
        known.sort_by_key(|k| k.seq);
        if known.len() > 1 + Self::PENDING {
            // Keep the first (it may be the one this copy holds).
            known.remove(1);
        }
    }

    /// Drops heads older than the newest one whose change `circle` holds.
    pub fn settle(&mut self, circle: &Circle) {
        for known in self.heads.values_mut() {
            if let Some(i) = known
                .iter()
                .rposition(|k| circle.has_change(&ChangeHash(k.hash)))
            {
                known.drain(..i);
            }
        }
    }

    /// Every head known, to hand to a peer.
    pub fn all(&self) -> Vec<SignedHead> {
        self.heads
            .values()
            .flatten()
            .chain(&self.strangers)
            .cloned()
            .collect()
    }

    /// How many heads the book holds.
    pub fn len(&self) -> usize {
        self.heads.values().map(Vec::len).sum::<usize>() + self.strangers.len()
    }

    /// Whether the book holds no head.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn of(&self, device: &[u8; 32]) -> impl Iterator<Item = ChangeHash> + '_ {
        let device = *device;
        self.heads
            .get(&device)
            .into_iter()
            .flatten()
            .chain(self.strangers.iter().filter(move |h| h.device == device))
            .map(|h| ChangeHash(h.hash))
    }
}

/// What applying received changes did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Changes that were new and proven, now in the circle.
    pub applied: usize,
    /// Changes dropped, each with the reason.
    pub rejected: Vec<(ChangeHash, Rejection)>,
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
        })
    }
}

impl Circle {
    /// The newest change made by `actor`, if any.
    pub(crate) fn last_change_of(&self, actor: &ActorId) -> Option<Change> {
        // This copy's own device: Automerge keeps each actor's newest
        // sequence number, and knows the device as one of the document's
        // actors whenever it has written (every path that brings changes in
        // tells it again, see `know_own_actor`). So a device that never
        // wrote costs a lookup, not a walk through all of history.
        if self.doc().get_actor() == actor {
            return self.doc().get_last_local_change();
        }
        self.walk_to_last_change_of(actor)
    }

    /// The newest change of `actor`, found from the heads back.
    fn walk_to_last_change_of(&self, actor: &ActorId) -> Option<Change> {
        // The device's changes form a chain; the newest is found from the heads back.
        let mut seen = HashSet::new();
        let mut stack: Vec<ChangeHash> = self.heads();
        let mut best: Option<Change> = None;
        while let Some(h) = stack.pop() {
            if !seen.insert(h) {
                continue;
            }
            let Some(c) = self.doc().get_change_by_hash(&h) else {
                continue;
            };
            if c.actor_id() == actor {
                if best.as_ref().is_none_or(|b| b.seq() < c.seq()) {
                    best = Some(c);
                }
                // Everything behind this change of theirs is older.
                continue;
            }
            stack.extend(c.deps().iter().copied());
        }
        best
    }

    /// Applies received changes (change chunks or a saved document),
    /// keeping only those whose authorship is proven by `heads` and whose
    /// device may write (see the module docs). Nothing unproven is ever
    /// applied, not even for a moment visible to a reader.
    pub fn apply_verified(
        &mut self,
        bytes: &[u8],
        heads: &mut HeadBook,
    ) -> Result<Applied, CoreError> {
        let before = self.heads();
        let was = self.membership();
        // Bytes that fail part-way may have added changes: check those too.
        let (mut result, clash) = self.apply_seeing_clash(bytes);
        if clash {
            // A change held back claims a sequence number these need.
            self.drop_waiting()?;
            result = self.apply(bytes);
        }
        let verified = self.verify_since(&before, Some(&was), heads);
        self.bound_waiting(bytes.len())?;
        result?;
        verified
    }

    /// Keeps what is held back for missing history small: once more than
    /// [`MAX_WAITING`] bytes came in while something waits, all of it goes
    /// (sync brings real changes again, with their history). `received`:
    /// the bytes just applied.
    fn bound_waiting(&mut self, received: usize) -> Result<(), CoreError> {
        if self.missing_deps().is_empty() {
            self.waiting = 0;
            return Ok(());
        }
        self.waiting = self.waiting.saturating_add(received);
        if self.waiting > MAX_WAITING {
            self.drop_waiting()?;
        }
        Ok(())
    }

    /// Loads a saved circle received from elsewhere, keeping only the
    /// changes proven the same way.
    pub fn load_verified(bytes: &[u8], heads: &mut HeadBook) -> Result<(Self, Applied), CoreError> {
        let mut circle = Self::load(bytes)?;
        let applied = circle.verify_since(&[], None, heads)?;
        Circle::from_doc(circle.doc().clone()).map(|c| (c, applied))
    }

    /// Applies an Automerge sync message the same way.
    pub fn sync_receive_verified(
        &mut self,
        peer: &mut crate::sync::PeerSync,
        bytes: &[u8],
        heads: &mut HeadBook,
    ) -> Result<Applied, CoreError> {
        let before = self.heads();
        let was = self.membership();
        let (result, clash) = self.sync_receive_seeing_clash(peer, bytes);
        let verified = self.verify_since(&before, Some(&was), heads);
        if clash {
            // A change held back claims a sequence number this message
            // needs: forget it, so the next round applies.
            self.drop_waiting()?;
        }
        self.bound_waiting(bytes.len())?;
        result?;
        verified
    }

    /// Checks every change applied since `before`; when any fails, goes
    /// back to `before` and applies only the ones that passed. Settles the
    /// head book on what this copy then holds.
    fn verify_since(
        &mut self,
        before: &[ChangeHash],
        was: Option<&Membership>,
        heads: &mut HeadBook,
    ) -> Result<Applied, CoreError> {
        let out = self.judge_since(before, was, heads);
        heads.know_devices(&self.membership().certified);
        heads.settle(self);
        out
    }

    fn judge_since(
        &mut self,
        before: &[ChangeHash],
        was: Option<&Membership>,
        heads: &HeadBook,
    ) -> Result<Applied, CoreError> {
        let new = self.doc().get_changes(before);
        if new.is_empty() {
            return Ok(Applied::default());
        }
        let rejected = judge(self, before, was, &new, heads);
        if rejected.is_empty() {
            return Ok(Applied {
                applied: new.len(),
                rejected: Vec::new(),
            });
        }
        let bad: HashSet<ChangeHash> = rejected.iter().map(|(h, _)| *h).collect();
        let good: Vec<Change> = new
            .into_iter()
            .filter(|c| !bad.contains(&c.hash()))
            .collect();
        let applied = good.len();
        let actor = self.doc().get_actor().clone();
        let doc = self.doc();
        let mut back = guarded(|| doc.fork_at(before))?;
        back.set_actor(actor);
        guarded(|| back.apply_changes(good))?;
        *self.doc_mut() = back;
        self.know_own_actor();
        Ok(Applied { applied, rejected })
    }
}

/// The most bytes received while Automerge holds changes back for missing
/// history before all of it is forgotten: each could be a change a member
/// made up, so what a peer can make this device hold is bounded.
const MAX_WAITING: usize = 1 << 20;

/// Decides which of `new` (just applied on top of `before`) must go.
/// Decides which of `new` (just applied on top of `before`, where the
/// membership was `was`) must go.
fn judge(
    circle: &Circle,
    before: &[ChangeHash],
    was: Option<&Membership>,
    new: &[Change],
    heads: &HeadBook,
) -> Vec<(ChangeHash, Rejection)> {
    let standing = circle.standing();
    let membership = &standing.membership;
    let shape = standing.shape(circle.doc());
    let by_hash: HashMap<ChangeHash, &Change> = new.iter().map(|c| (c.hash(), c)).collect();
    let had_history = !before.is_empty();

    // For each device: the new changes of it that its signed head reaches
    // through the hash chain.
    let covered_from = |starts: &mut dyn Iterator<Item = ChangeHash>, actor: &ActorId| {
        let mut out = HashSet::new();
        let mut seen = HashSet::new();
        let mut stack: Vec<ChangeHash> = starts.filter(|h| by_hash.contains_key(h)).collect();
        while let Some(h) = stack.pop() {
            if !seen.insert(h) {
                continue;
            }
            let Some(c) = by_hash.get(&h) else { continue };
            if c.actor_id() == actor {
                out.insert(h);
            }
            stack.extend(c.deps().iter().filter(|d| by_hash.contains_key(d)));
        }
        out
    };

    let actors: BTreeSet<ActorId> = new.iter().map(|c| c.actor_id().clone()).collect();
    let mut proven: HashSet<ChangeHash> = HashSet::new();
    for actor in &actors {
        let Ok(bytes) = <[u8; 32]>::try_from(actor.to_bytes()) else {
            continue;
        };
        proven.extend(covered_from(&mut heads.of(&bytes), actor));
    }
    // Admission: a change counts only if its device was admitted in the
    // circle the change builds on. That is quick to see for a device
    // admitted both before and after the batch; for any other, the circle
    // is read as the change saw it. A device's own changes form a chain
    // along which admission starts once and ends once, so when its first
    // and last new changes were made while admitted, all between were too.
    let was_in = |c: &Change, device: &DeviceId| {
        circle
            .doc()
            .fork_at(c.deps())
            .is_ok_and(|then| Membership::read(&then).admitted.contains(device))
    };
    let quick = |device: &DeviceId| {
        membership.admitted.contains(device) && was.is_none_or(|m| m.admitted.contains(device))
    };
    let mut chains: BTreeMap<[u8; 32], Vec<&Change>> = BTreeMap::new();
    for c in new {
        if let Ok(bytes) = <[u8; 32]>::try_from(c.actor_id().to_bytes())
            && !quick(&DeviceId::from_bytes(bytes))
        {
            chains.entry(bytes).or_default().push(c);
        }
    }
    let mut was_admitted: HashSet<ChangeHash> = HashSet::new();
    for (bytes, mut chain) in chains {
        let device = DeviceId::from_bytes(bytes);
        chain.sort_by_key(|c| c.seq());
        let ends = [chain[0], chain[chain.len() - 1]];
        if ends.iter().all(|c| was_in(c, &device)) {
            was_admitted.extend(chain.iter().map(|c| c.hash()));
        } else {
            was_admitted.extend(
                chain
                    .iter()
                    .filter(|c| was_in(c, &device))
                    .map(|c| c.hash()),
            );
        }
    }

    let mut rejected = Vec::new();
    let mut bad: HashSet<ChangeHash> = HashSet::new();
    // `get_changes` lists changes in causal order, so a change's new deps are judged first.
    for c in new {
        let hash = c.hash();
        let verdict = (|| {
            let Ok(bytes) = <[u8; 32]>::try_from(c.actor_id().to_bytes()) else {
                return Some(Rejection::NotADevice);
            };
            if c.deps().iter().any(|d| bad.contains(d)) {
                return Some(Rejection::BuildsOnRejected);
            }
            if crate::shape::too_large(c) {
                return Some(Rejection::TooLarge);
            }
            if !proven.contains(&hash) {
                return Some(Rejection::Unproven);
            }
            let device = DeviceId::from_bytes(bytes);
            let allowed = quick(&device)
                || was_admitted.contains(&hash)
                // The founder's first change makes the circle it is admitted to.
                || (!had_history && c.deps().is_empty());
            if !allowed {
                return Some(Rejection::NotAdmitted);
            }
            if shape.breaks(c, circle.doc(), had_history) {
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

#[cfg(test)]
mod tests {
    use super::*;
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
        let sam_actor = ActorId::from(sd.id().as_bytes().as_slice());
        let mut at_sam = c.clone();
        at_sam.set_device(sd.id());
        assert!(at_sam.last_change_of(&sam_actor).is_none());
        assert!(at_sam.walk_to_last_change_of(&sam_actor).is_none());
        for i in 0..5 {
            at_sam
                .checkin(sam.id(), Mood::Okay, &format!("{i}"), t, &mut rng)
                .unwrap();
            c.checkin(maya.id(), Mood::Okay, "m", t, &mut rng).unwrap();
        }
        at_sam.merge(&mut c.clone()).unwrap();
        let quick = at_sam.last_change_of(&sam_actor).unwrap();
        assert_eq!(
            quick.hash(),
            at_sam.walk_to_last_change_of(&sam_actor).unwrap().hash()
        );
        assert_eq!(quick.seq(), 5);
        // A fresh copy of Sam's device that got his changes from elsewhere.
        let mut fresh = c.clone();
        fresh.set_device(sd.id());
        fresh.merge(&mut at_sam.clone()).unwrap();
        assert_eq!(
            fresh.last_change_of(&sam_actor).unwrap().hash(),
            quick.hash()
        );
        // ... or as bytes (gossip, a log), or by sync.
        let mut by_bytes = c.clone();
        by_bytes.set_device(sd.id());
        by_bytes.apply(&at_sam.save()).unwrap();
        assert_eq!(
            by_bytes.last_change_of(&sam_actor).unwrap().hash(),
            quick.hash()
        );
        let mut by_sync = c.clone();
        by_sync.set_device(sd.id());
        let (mut ours, mut theirs) = (crate::PeerSync::fresh(), crate::PeerSync::fresh());
        for _ in 0..10 {
            if let Some(m) = at_sam.sync_generate(&mut theirs) {
                by_sync.sync_receive(&mut ours, &m).unwrap();
            }
            if let Some(m) = by_sync.sync_generate(&mut ours) {
                at_sam.sync_receive(&mut theirs, &m).unwrap();
            }
        }
        assert_eq!(
            by_sync.last_change_of(&sam_actor).unwrap().hash(),
            quick.hash()
        );
    }
}
