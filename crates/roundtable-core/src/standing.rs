//! Who is in the circle, kept with the heads it was read at.
//!
//! Every edit checks that its author is a member, and every change from a
//! peer is judged against who was admitted. Reading members, invites and
//! removals out of the document each time would make every edit dearer as
//! the circle grows, so a [`Circle`](crate::circle::Circle) keeps that
//! reading together with the heads it was read at, and reads again only
//! once the heads have moved. Changes that wrote nothing under those
//! collections carry the reading over to their new heads: for a local edit
//! its own patches say where it wrote; for changes from a peer, where the
//! objects their operations write into were made. Keyed by heads, a kept
//! reading can never be stale: whatever changed the document in any other
//! way, the next look finds different heads and reads again.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use automerge::legacy::{ObjectId, OpId, OpType};
use automerge::{Automerge, Change, ChangeHash, ObjId, Patch, Prop, ReadDoc};

use crate::membership::Membership;
use crate::schema::{INVITES, MEMBERS, REMOVALS};
use crate::shape::Shape;
use crate::view::CircleView;

/// The membership collections as read at some heads.
#[derive(Debug)]
pub(crate) struct Standing {
    /// Members, invites and removals (the rest of the view is empty).
    pub(crate) view: CircleView,
    /// What they add up to.
    pub(crate) membership: Membership,
    /// The guarded objects, read when first asked for.
    shape: OnceLock<Shape>,
}

impl Standing {
    fn read(doc: &Automerge) -> Self {
        let view = CircleView::read_membership(doc);
        let membership = Membership::from_view(&view);
        Self {
            view,
            membership,
            shape: OnceLock::new(),
        }
    }

    /// The guarded objects; `doc` must be at the heads this was read at.
    pub(crate) fn shape(&self, doc: &Automerge) -> &Shape {
        self.shape.get_or_init(|| Shape::read(doc, &self.view))
    }
}

/// A circle's kept [`Standing`] and the heads it holds for.
#[derive(Default)]
pub(crate) struct Kept(Mutex<Option<(Vec<ChangeHash>, Arc<Standing>)>>);

impl Kept {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<(Vec<ChangeHash>, Arc<Standing>)>> {
        // Nothing panics while holding the lock; a poisoned one still holds a whole value.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The standing of `doc` as it is now: the kept one when the heads
    /// match, else read again and kept.
    pub(crate) fn now(&self, doc: &Automerge) -> Arc<Standing> {
        let heads = doc.get_heads();
        if let Some((at, standing)) = &*self.slot()
            && *at == heads
        {
            return standing.clone();
        }
        let standing = Arc::new(Standing::read(doc));
        *self.slot() = Some((heads, standing.clone()));
        standing
    }

    /// Whether a standing is kept for exactly `heads`.
    pub(crate) fn holds_at(&self, heads: &[ChangeHash]) -> bool {
        self.slot().as_ref().is_some_and(|(at, _)| at == heads)
    }

    /// After changes from `from` to `to` that wrote nothing membership
    /// rests on: the kept standing holds at `to` too.
    pub(crate) fn carry(&self, from: &[ChangeHash], to: Vec<ChangeHash>) {
        let mut slot = self.slot();
        if let Some((at, _)) = &mut *slot
            && at == from
        {
            *at = to;
        }
    }
}

/// Whether a local edit's patches land on the root itself or under
/// members, invites or removals.
pub(crate) fn patches_touch(patches: &[Patch]) -> bool {
    patches.iter().any(|patch| match patch.path.first() {
        None => true,
        Some((_, prop)) => is_membership(prop),
    })
}

/// Whether any operation of `changes` (applied to `doc`) writes at the
/// root or into an object under members, invites or removals. An object's
/// place is where the operation that made it put it, whether or not it is
/// still visible, so a write into a lost or deleted object counts too.
pub(crate) fn changes_touch(doc: &Automerge, changes: &[Change]) -> bool {
    // Where each object written into sits, by whether that is under
    // membership: objects the changes make themselves inherit it from the
    // object they are made in, so only older ones are looked up.
    let mut under: HashMap<ObjectId, bool> = HashMap::new();
    for change in changes {
        let start = change.start_op().get();
        let actor = change.actor_id();
        for (i, op) in change.decode().operations.into_iter().enumerate() {
            let touches = match under.get(&op.obj) {
                Some(t) => *t,
                None => {
                    let t = placed_under_membership(doc, &op.obj);
                    under.insert(op.obj.clone(), t);
                    t
                }
            };
            if touches {
                return true;
            }
            if matches!(op.action, OpType::Make(_)) {
                under.insert(ObjectId::Id(OpId(start + i as u64, actor.clone())), false);
            }
        }
    }
    false
}

/// Whether an object that was already there sits at the root or under
/// members, invites or removals.
fn placed_under_membership(doc: &Automerge, obj: &ObjectId) -> bool {
    let ObjectId::Id(OpId(counter, actor)) = obj else {
        return true;
    };
    // The actor's index is looked up when it does not match.
    let id = ObjId::Id(*counter, actor.clone(), usize::MAX);
    doc.parents(&id).map_or(true, |p| {
        p.path().first().is_none_or(|(_, prop)| is_membership(prop))
    })
}

fn is_membership(prop: &Prop) -> bool {
    match prop {
        Prop::Map(collection) => [MEMBERS, INVITES, REMOVALS].contains(&collection.as_str()),
        Prop::Seq(_) => true,
    }
}

impl Clone for Kept {
    fn clone(&self) -> Self {
        Self(Mutex::new(self.slot().clone()))
    }
}

impl fmt::Debug for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kept = self.slot().as_ref().map(|(at, _)| at.len());
        f.debug_struct("Kept").field("heads", &kept).finish()
    }
}
