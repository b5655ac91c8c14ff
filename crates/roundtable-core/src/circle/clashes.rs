//! Two different changes under one number, met while applying: the
//! circle keeps the one every device keeps (see [`crate::equivocation`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use automerge::transaction::Transactable;
use automerge::{
    ActorId, Automerge, Change, ChangeHash, ObjId, ObjType, PatchAction, Prop, ROOT, ReadDoc, Value,
};

use super::Circle;
use crate::actors::{device_of, next_session};
use crate::authorship::{Applied, HeadBook, Rejection, proven};
use crate::doc::guarded;
use crate::equivocation::Equivocation;
use crate::error::CoreError;
use crate::time::Timestamp;

/// How many forks along one batch are decided before the rest is refused.
const MAX_FORKS: usize = 8;

impl Circle {
    /// Applies `incoming` where Automerge refused it because a change in
    /// it has the actor and number of another: keeps the one the rule
    /// keeps (see the module docs), applies the rest with the usual checks.
    pub(crate) fn apply_clashing(
        &mut self,
        incoming: Vec<Change>,
        heads: &mut HeadBook,
    ) -> Result<Applied, CoreError> {
        self.apply_clashing_at(incoming, heads, 0)
    }

    /// [`Circle::apply_clashing`], `depth` times over already: each time
    /// decides the first clash along each actor, and looks again only if
    /// another lies further along (a device that forked more than once).
    fn apply_clashing_at(
        &mut self,
        incoming: Vec<Change>,
        heads: &mut HeadBook,
        depth: usize,
    ) -> Result<Applied, CoreError> {
        let mut pending: Vec<Change> = incoming
            .into_iter()
            .filter(|c| !self.has_change(&c.hash()))
            .collect();
        // What no signed head covers would be refused anyway; it is
        // refused first, so only a device's own signature can make this
        // copy look for, or drop, what it holds.
        let proven = proven(&pending, heads);
        let mut refused: Vec<(ChangeHash, Rejection)> = Vec::new();
        let mut unproven: HashSet<ChangeHash> = HashSet::new();
        pending.retain(|c| {
            let out = !proven.contains(&c.hash()) || c.deps().iter().any(|d| unproven.contains(d));
            if out {
                unproven.insert(c.hash());
                refused.push((c.hash(), Rejection::Unproven));
            }
            !out
        });
        let mut equivocated = Vec::new();

        // Every change under each number, proven ones of what arrived and
        // what this copy holds. Along one actor, only the first number
        // with two changes is decided here: the changes after it build on
        // one of the two and go or stay with it.
        let mut numbers: BTreeMap<Vec<u8>, BTreeMap<u64, BTreeSet<ChangeHash>>> = BTreeMap::new();
        for c in &pending {
            let actor = c.actor_id().to_bytes().to_vec();
            numbers
                .entry(actor)
                .or_default()
                .entry(c.seq())
                .or_default()
                .insert(c.hash());
        }
        let wanted: Vec<(Vec<u8>, u64)> = numbers
            .iter()
            .flat_map(|(a, seqs)| seqs.keys().map(|s| (a.clone(), *s)))
            .collect();
        let ours = self.numbered(wanted.iter());
        let mut losers: HashSet<ChangeHash> = HashSet::new();
        let mut drop_ours: HashSet<ChangeHash> = HashSet::new();
        for (actor, seqs) in &mut numbers {
            for (seq, hashes) in seqs.iter_mut() {
                let mine = ours.get(&(actor.clone(), *seq));
                hashes.extend(mine);
                let mut all = hashes.iter().copied();
                let Some(kept) = all.next() else { continue };
                let dropped: Vec<ChangeHash> = all.collect();
                if dropped.is_empty() {
                    continue;
                }
                for d in dropped {
                    if Some(&d) == mine {
                        drop_ours.insert(d);
                    } else {
                        losers.insert(d);
                    }
                    equivocated.extend(equivocation(actor, kept, d));
                }
                break;
            }
        }
        if !drop_ours.is_empty() {
            self.drop_with_descendants(&drop_ours, &mut pending, &mut refused)?;
        }
        // What builds on a change that goes, goes with it.
        let mut gone: HashSet<ChangeHash> = losers.clone();
        pending.retain(|c| {
            let out = gone.contains(&c.hash()) || c.deps().iter().any(|d| gone.contains(d));
            if out {
                gone.insert(c.hash());
                let why = if losers.contains(&c.hash()) {
                    Rejection::Equivocation
                } else {
                    Rejection::BuildsOnRejected
                };
                refused.push((c.hash(), why));
            }
            !out
        });

        let before = self.heads();
        let was = self.membership();
        let mut clash = false;
        let applied = guarded(|| {
            let doc = self.doc_mut();
            doc.apply_changes(pending.clone())
                .inspect_err(|e| clash = crate::doc::is_clash(e))
        });
        self.know_own_actor();
        let mut out = if clash && depth < MAX_FORKS {
            self.apply_clashing_at(pending, heads, depth + 1)?
        } else {
            let out = self.verify_since(&before, Some(&was), heads)?;
            applied?;
            out
        };
        heads.forget_refused(&refused);
        out.rejected.extend(refused);
        out.equivocated.extend(equivocated);
        Ok(out)
    }

    /// The changes this copy holds under the given actors and numbers,
    /// found from each actor's newest change back along its own chain.
    fn numbered<'a>(
        &self,
        wanted: impl Iterator<Item = &'a (Vec<u8>, u64)>,
    ) -> HashMap<(Vec<u8>, u64), ChangeHash> {
        let mut lowest: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for (actor, seq) in wanted {
            let low = lowest.entry(actor.clone()).or_insert(*seq);
            *low = (*low).min(*seq);
        }
        let mut out = HashMap::new();
        if lowest.is_empty() {
            return out;
        }
        // The newest change of each wanted actor: on each path from the
        // heads back, the first change of it.
        let mut newest: HashMap<Vec<u8>, Change> = HashMap::new();
        let mut seen = HashSet::new();
        let mut stack = self.heads();
        while let Some(h) = stack.pop() {
            if !seen.insert(h) {
                continue;
            }
            let Some(c) = self.doc().get_change_by_hash(&h) else {
                continue;
            };
            let actor = c.actor_id().to_bytes().to_vec();
            if lowest.contains_key(&actor) {
                if newest.get(&actor).is_none_or(|n| n.seq() < c.seq()) {
                    newest.insert(actor.clone(), c.clone());
                }
                continue;
            }
            stack.extend(c.deps().iter().copied());
        }
        // Down each actor's chain: every change builds on the one
        // numbered before it.
        for (actor, mut c) in newest {
            let low = lowest[&actor];
            loop {
                out.insert((actor.clone(), c.seq()), c.hash());
                if c.seq() <= low {
                    break;
                }
                let prev = c.deps().iter().find_map(|d| {
                    self.doc()
                        .get_change_by_hash(d)
                        .filter(|p| p.actor_id() == c.actor_id() && p.seq() + 1 == c.seq())
                });
                match prev {
                    Some(p) => c = p,
                    None => break,
                }
            }
        }
        out
    }

    /// Rebuilds this copy without `drop` and everything built on it (held
    /// or in `pending`), then writes again, in a new session, what this
    /// device had written among what went.
    fn drop_with_descendants(
        &mut self,
        drop: &HashSet<ChangeHash>,
        pending: &mut Vec<Change>,
        refused: &mut Vec<(ChangeHash, Rejection)>,
    ) -> Result<(), CoreError> {
        let old = self.doc().clone();
        let me = device_of(old.get_actor());
        let mut gone: HashSet<ChangeHash> = drop.clone();
        let mut kept = Vec::new();
        let mut ours_gone = Vec::new();
        for c in old.get_changes(&[]) {
            if gone.contains(&c.hash()) || c.deps().iter().any(|d| gone.contains(d)) {
                gone.insert(c.hash());
                // What this device wrote on top, not the change that lost
                // itself (were it this device's, the device forked).
                let mine =
                    me.is_some_and(|(d, _)| device_of(c.actor_id()).is_some_and(|(x, _)| x == d));
                if mine && !drop.contains(&c.hash()) {
                    ours_gone.push(c);
                }
            } else {
                kept.push(c);
            }
        }
        pending.retain(|c| {
            let out = c.deps().iter().any(|d| gone.contains(d));
            if out {
                gone.insert(c.hash());
                refused.push((c.hash(), Rejection::BuildsOnRejected));
            }
            !out
        });
        let mut fresh = Automerge::new();
        guarded(|| fresh.apply_changes(kept))?;
        // Never number a change like one that went: a new session.
        let actor = match me {
            Some((device, session)) => crate::actors::session_actor(device, next_session(session)),
            None => old.get_actor().clone(),
        };
        fresh.set_actor(actor);
        self.replace_doc(fresh);
        for c in ours_gone {
            self.write_again(&old, &c)?;
        }
        Ok(())
    }

    /// Writes again on this copy what change `c` of `old` did: the values
    /// it put and the keys it deleted, at the same places. What it wrote
    /// inside something that is no longer here cannot be placed and is left.
    fn write_again(&mut self, old: &Automerge, c: &Change) -> Result<(), CoreError> {
        let patches = old.diff(c.deps(), &[c.hash()]);
        if patches.is_empty() {
            return Ok(());
        }
        let message = c.message().unwrap_or_default().to_owned();
        // When it was first written (the change's own time, display only).
        let when = Timestamp::from_millis(c.timestamp().saturating_mul(1000));
        self.transact(when, &message, |tx| {
            for p in patches {
                let Some(obj) = place(tx, &p.path) else {
                    continue;
                };
                match p.action {
                    PatchAction::PutMap { key, value, .. } => match value.0 {
                        Value::Object(kind) => {
                            let there = tx.get(&obj, &key)?;
                            if !matches!(there, Some((Value::Object(k), _)) if k == kind) {
                                tx.put_object(&obj, &key, kind)?;
                            }
                        }
                        Value::Scalar(s) => tx.put(&obj, &key, s.into_owned())?,
                    },
                    PatchAction::DeleteMap { key } if tx.get(&obj, &key)?.is_some() => {
                        tx.delete(&obj, &key)?;
                    }
                    // Gone already; and the circle keeps maps and plain
                    // values only.
                    _ => {}
                }
            }
            Ok(())
        })
    }
}

/// The object at `path` (from the root, by keys), if it is still there.
fn place(doc: &impl ReadDoc, path: &[(ObjId, Prop)]) -> Option<ObjId> {
    let mut at = ROOT;
    for (_, prop) in path {
        match doc.get(&at, prop.clone()).ok()?? {
            (Value::Object(ObjType::Map), obj) => at = obj,
            _ => return None,
        }
    }
    Some(at)
}

fn equivocation(actor: &[u8], kept: ChangeHash, dropped: ChangeHash) -> Option<Equivocation> {
    let (device, _) = device_of(&ActorId::from(actor))?;
    Some(Equivocation {
        device,
        kept,
        dropped,
    })
}
