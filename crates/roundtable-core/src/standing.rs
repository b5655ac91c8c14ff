//! Who is in the circle, kept with the heads it was read at.
//!
//! Every edit checks that its author is a member, and every change from a
//! peer is judged against who was admitted. Reading members, invites and
//! removals out of the document each time would make every edit dearer as
//! the circle grows, so a [`Circle`](crate::circle::Circle) keeps that
//! reading together with the heads it was read at, and reads again only
//! once the heads have moved. A local edit that wrote nothing under those
//! collections (as where the objects its operations write into were made
//! says) carries the reading over to its new heads; changes from a peer
//! are read again (see docs/BENCHMARKS.md on carrying it over those too).
//! Keyed by heads, a kept
//! reading can never be stale: whatever changed the document in any other
//! way, the next look finds different heads and reads again.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use automerge::legacy::{ObjectId, OpId, OpType};
use automerge::{Automerge, Change, ChangeHash, ObjId, Prop, ReadDoc};

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
pub(crate) struct Kept(Mutex<Inner>);

#[derive(Default, Clone)]
struct Inner {
    at: Option<(Vec<ChangeHash>, Arc<Standing>)>,
    /// For objects changes wrote into: whether they sit under membership.
    /// An object's place is fixed when it is made, so this never goes stale.
    places: HashMap<ObjectId, bool>,
}

/// Places remembered at most; past this the memory starts again.
const MAX_PLACES: usize = 4_096;

impl Kept {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock; a poisoned one still holds a whole value.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The standing of `doc` as it is now: the kept one when the heads
    /// match, else read again and kept.
    pub(crate) fn now(&self, doc: &Automerge) -> Arc<Standing> {
        let heads = doc.get_heads();
        if let Some((at, standing)) = &self.inner().at
            && *at == heads
        {
            return standing.clone();
        }
        let standing = Arc::new(Standing::read(doc));
        self.inner().at = Some((heads, standing.clone()));
        standing
    }

    /// Whether a standing is kept for exactly `heads`.
    pub(crate) fn holds_at(&self, heads: &[ChangeHash]) -> bool {
        self.inner().at.as_ref().is_some_and(|(at, _)| at == heads)
    }

    /// After `changes` were applied to `doc` on top of `before`: when none
    /// of them wrote anything membership rests on, the standing kept for
    /// `before` holds for the heads `doc` has now.
    pub(crate) fn carry_over(&self, doc: &Automerge, before: &[ChangeHash], changes: &[Change]) {
        let mut inner = self.inner();
        if inner.at.as_ref().is_none_or(|(at, _)| at != before) {
            return;
        }
        if inner.places.len() > MAX_PLACES {
            inner.places.clear();
        }
        if changes_touch(doc, changes, &mut inner.places) {
            return;
        }
        if let Some((at, _)) = &mut inner.at {
            *at = doc.get_heads();
        }
    }
}

impl Clone for Kept {
    fn clone(&self) -> Self {
        Self(Mutex::new(self.inner().clone()))
    }
}

impl fmt::Debug for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner();
        f.debug_struct("Kept")
            .field("heads", &inner.at.as_ref().map(|(at, _)| at.len()))
            .field("places", &inner.places.len())
            .finish()
    }
}

/// Whether any operation of `changes` (applied to `doc`) writes at the
/// root or into an object under members, invites or removals. An object's
/// place is where the operation that made it put it, whether or not it is
/// still visible, so a write into a lost or deleted object counts too.
/// Objects the changes make themselves sit where they are made; older ones
/// are looked up once and remembered in `places`.
fn changes_touch(
    doc: &Automerge,
    changes: &[Change],
    places: &mut HashMap<ObjectId, bool>,
) -> bool {
    for change in changes {
        let start = change.start_op().get();
        let actor = change.actor_id();
        for (i, op) in change.decode().operations.into_iter().enumerate() {
            let touches = match places.get(&op.obj) {
                Some(t) => *t,
                None => {
                    let t = placed_under_membership(doc, &op.obj);
                    places.insert(op.obj.clone(), t);
                    t
                }
            };
            if touches {
                return true;
            }
            if matches!(op.action, OpType::Make(_)) {
                places.insert(ObjectId::Id(OpId(start + i as u64, actor.clone())), false);
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
