//! Applying what arrives only where its authorship is proven and its
//! device may write (see [`crate::authorship`]), and signing this device's
//! own heads.

use std::collections::{BTreeMap, HashSet};

use automerge::{Automerge, Change, ChangeHash, ReadDoc};

use super::{Circle, OwnNewest};
use crate::actors::device_of;
use crate::authorship::{Applied, HeadBook, SignedHead, judge};
use crate::doc::guarded;
use crate::error::CoreError;
use crate::identity::DeviceKey;
use crate::ids::DeviceId;
use crate::membership::Membership;

impl Circle {
    /// The newest changes of `device`, of any of its writing sessions: the
    /// one its current session made last, or, before it writes, the ones
    /// its earlier sessions ended on (more than one only where a restored
    /// home wrote beside what it had written before).
    ///
    /// Found by a walk from the heads back once, then kept up to date from
    /// the changes that arrive (Automerge lists those since a set of heads),
    /// so signing a head costs a walk through history once per open, not
    /// once per session with a peer.
    pub(crate) fn newest_of_device(&self, device: DeviceId) -> Vec<Change> {
        let doc = self.doc();
        let heads = doc.get_heads();
        // This copy's own session: its newest change reaches everything
        // that was here when it was made; only changes of the device that
        // arrived since, from another session, can stand beside it.
        if device_of(doc.get_actor()).is_some_and(|(d, _)| d == device)
            && let Some(last) = doc.get_last_local_change()
        {
            let since = changes_of_device_since(doc, &[last.hash()], device);
            let mut newest = vec![last];
            newest.extend(since);
            return newest_per_session(newest);
        }
        let mut own = self.own_newest.lock().unwrap_or_else(|e| e.into_inner());
        let kept = own
            .as_ref()
            .filter(|k| k.device == device && k.heads.iter().all(|h| self.has_change(h)));
        let newest: Vec<ChangeHash> = match kept {
            Some(k) if k.heads == heads => k.newest.clone(),
            Some(k) => {
                let mut newest: Vec<Change> = k
                    .newest
                    .iter()
                    .filter_map(|h| doc.get_change_by_hash(h))
                    .collect();
                newest.extend(changes_of_device_since(doc, &k.heads, device));
                newest_per_session(newest)
                    .iter()
                    .map(Change::hash)
                    .collect()
            }
            None => self.walk_to_newest_of(device),
        };
        *own = Some(OwnNewest {
            device,
            heads,
            newest: newest.clone(),
        });
        newest
            .iter()
            .filter_map(|h| doc.get_change_by_hash(h))
            .collect()
    }

    /// The newest changes of `device`, found from the heads back: on each
    /// path, the first change of the device (everything behind it is older).
    /// The walk reads each change's metadata only (its author and what it
    /// builds on), not its operations: for a device that never wrote, it
    /// goes through all of history.
    pub(crate) fn walk_to_newest_of(&self, device: DeviceId) -> Vec<ChangeHash> {
        let doc = self.doc();
        let mut seen = HashSet::new();
        let mut stack: Vec<ChangeHash> = self.heads();
        let mut found = Vec::new();
        while let Some(h) = stack.pop() {
            if !seen.insert(h) {
                continue;
            }
            let Some(meta) = doc.get_change_meta_by_hash(&h) else {
                continue;
            };
            if device_of(&meta.actor).is_some_and(|(d, _)| d == device) {
                found.extend(doc.get_change_by_hash(&h));
                continue;
            }
            stack.extend(meta.deps);
        }
        newest_per_session(found).iter().map(Change::hash).collect()
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
            let waiting = crate::equivocation::waiting_in(self.doc());
            self.drop_waiting()?;
            let (again, still) = self.apply_seeing_clash(bytes);
            if still {
                // A change this copy holds does: two under one number.
                // What was held back goes along, to be checked with the
                // rest (a peer that sent it does not send it again).
                let mut incoming = crate::equivocation::changes_in(bytes)?;
                incoming.extend(waiting);
                let out = self.apply_clashing(incoming, heads);
                self.bound_waiting(bytes.len())?;
                return out;
            }
            result = again;
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
        let (mut result, clash) = self.sync_receive_seeing_clash(peer, bytes);
        if clash {
            // A change held back claims a sequence number this message
            // needs: forget it and take the message again.
            let waiting = crate::equivocation::waiting_in(self.doc());
            self.drop_waiting()?;
            let (again, still) = self.sync_receive_seeing_clash(peer, bytes);
            if still {
                // A change this copy holds does: two under one number.
                let out = self.sync_receive_clashing(peer, bytes, waiting, heads);
                self.bound_waiting(bytes.len())?;
                return out;
            }
            result = again;
        }
        let verified = self.verify_since(&before, Some(&was), heads);
        self.bound_waiting(bytes.len())?;
        result?;
        verified
    }

    /// Checks every change applied since `before`; when any fails, goes
    /// back to `before` and applies only the ones that passed. Settles the
    /// head book on what this copy then holds.
    pub(crate) fn verify_since(
        &mut self,
        before: &[ChangeHash],
        was: Option<&Membership>,
        heads: &mut HeadBook,
    ) -> Result<Applied, CoreError> {
        let out = self.judge_since(before, was, heads);
        heads.know_devices(&self.membership().certified);
        if let Ok(applied) = &out {
            heads.forget_refused(&applied.rejected);
        }
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
        // Each change's operations, decoded once for every check below.
        let ops: Vec<_> = new.iter().map(|c| c.decode().operations).collect();
        // Who is in after these changes is who was in before them, unless
        // one wrote where membership (or the guarded shape) rests.
        self.kept
            .carry_over_received(self.doc(), before, &new, &ops);
        let rejected = judge(
            self.doc(),
            &self.standing(),
            self.id(),
            before,
            was,
            &new,
            &ops,
            heads,
        );
        if rejected.is_empty() {
            return Ok(Applied {
                applied: new.len(),
                rejected: Vec::new(),
                equivocated: Vec::new(),
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
        Ok(Applied {
            applied,
            rejected,
            equivocated: Vec::new(),
        })
    }
}

/// Of changes of one device, the newest of each session (a session's
/// changes form a chain: each builds on the one numbered before it).
fn newest_per_session(changes: Vec<Change>) -> Vec<Change> {
    let mut best: BTreeMap<Vec<u8>, Change> = BTreeMap::new();
    for c in changes {
        let actor = c.actor_id().to_bytes().to_vec();
        if best.get(&actor).is_none_or(|b| b.seq() < c.seq()) {
            best.insert(actor, c);
        }
    }
    best.into_values().collect()
}

/// The most bytes received while Automerge holds changes back for missing
/// history before all of it is forgotten: each could be a change a member
/// made up, so what a peer can make this device hold is bounded.
const MAX_WAITING: usize = 1 << 20;

impl SignedHead {
    /// Signs `key`'s device's newest change in `circle`; `None` before its
    /// first. Where the device's changes end on more than one branch (a
    /// home restored from an older copy wrote beside what it had written
    /// before), this is one of them; [`SignedHead::sign_all`] signs each.
    pub fn sign(circle: &Circle, key: &DeviceKey) -> Option<Self> {
        // Just after an edit: the change this session made last, which
        // covers that edit.
        let doc = circle.doc();
        if let Some((device, session)) = device_of(doc.get_actor())
            && device == key.id()
            && let Some(last) = doc.get_last_local_change()
        {
            return Some(Self::new_in(
                circle.id(),
                key,
                session,
                last.seq(),
                last.hash().0,
            ));
        }
        Self::sign_all(circle, key).into_iter().next()
    }

    /// Signs each of `key`'s device's newest changes in `circle`: one per
    /// branch its changes end on (one, but for a restored home).
    pub fn sign_all(circle: &Circle, key: &DeviceKey) -> Vec<Self> {
        circle
            .newest_of_device(key.id())
            .into_iter()
            .filter_map(|c| {
                let (_, session) = device_of(c.actor_id())?;
                Some(Self::new_in(circle.id(), key, session, c.seq(), c.hash().0))
            })
            .collect()
    }
}

impl HeadBook {
    /// An empty book for the devices `circle` certifies.
    pub fn for_circle(circle: &Circle) -> Self {
        let mut book = Self::new();
        book.know_devices(&circle.membership().certified);
        book
    }

    /// Marks, in each session, the newest head whose change `circle`
    /// holds, and lets go of heads behind it. Heads of changes not held
    /// stay pending (under two changes of one number, the other's proof
    /// is still needed until its change arrives or is refused).
    pub fn settle(&mut self, circle: &Circle) {
        self.settle_by(|h| circle.has_change(h));
    }
}

/// The changes `device` made that `doc` holds beyond `heads`. Only their
/// metadata is read to pick them out: after a catch-up, the changes since
/// are thousands, nearly all of other devices.
fn changes_of_device_since(doc: &Automerge, heads: &[ChangeHash], device: DeviceId) -> Vec<Change> {
    doc.get_changes_meta(heads)
        .into_iter()
        .filter(|m| device_of(&m.actor).is_some_and(|(d, _)| d == device))
        .filter_map(|m| doc.get_change_by_hash(&m.hash))
        .collect()
}
