//! Who is in the circle, kept with the heads it was read at.
//!
//! Every edit checks that its author is a member, and every change from a
//! peer is judged against who was admitted. Reading members, invites and
//! removals out of the document each time would make every edit dearer as
//! the circle grows, so a [`Circle`](crate::circle::Circle) keeps that
//! reading together with the heads it was read at, and reads again only
//! once the heads have moved. Changes that wrote nothing under those
//! collections or the circle record (whose stewards the guarded shape
//! holds), as where the objects their operations write into were made
//! says, carry the reading over to the new heads: a local edit's, with
//! the places of objects remembered ([`Kept::carry_over`]), and changes
//! from a peer, looked up afresh in the document that holds them
//! ([`Kept::carry_over_received`]: a device that signs two changes under
//! one number could make one object id name two places, so nothing a peer
//! sent is remembered). Keyed by heads, a kept
//! reading can never be stale: whatever changed the document in any other
//! way, the next look finds different heads and reads again.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use automerge::legacy::{ObjectId, Op, OpId, OpType};
use automerge::{Automerge, Change, ChangeHash, ObjId, Prop, ReadDoc};

use crate::membership::Membership;
use crate::schema::{CIRCLE, INVITES, MEMBERS, REMOVALS};
use crate::shape::Shape;
use crate::view::CircleView;

/// The membership collections as read at some heads.
#[derive(Debug)]
pub(crate) struct Standing {
    /// Members, invites, removals and the circle's record (the rest of
    /// the view is empty): who is in, and what they and the circle are
    /// called.
    pub(crate) view: Arc<CircleView>,
    /// What they add up to.
    pub(crate) membership: Membership,
    /// The guarded objects, read when first asked for.
    shape: OnceLock<Shape>,
}

impl Standing {
    fn read(doc: &Automerge) -> Self {
        let view = CircleView::read_collections(doc, &[MEMBERS, INVITES, REMOVALS, CIRCLE]);
        let membership = Membership::from_view(&view);
        Self {
            view: Arc::new(view),
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
        let decoded: Vec<Vec<Op>> = changes.iter().map(|c| c.decode().operations).collect();
        if changes_touch(doc, changes, &decoded, &mut inner.places) {
            return;
        }
        if let Some((at, _)) = &mut inner.at {
            *at = doc.get_heads();
        }
    }

    /// As [`Self::carry_over`], for changes received from a peer (with
    /// their operations, `ops[i]` those of `changes[i]`): where each object
    /// they write into sits is read from `doc` (which holds them), none of
    /// it remembered.
    pub(crate) fn carry_over_received(
        &self,
        doc: &Automerge,
        before: &[ChangeHash],
        changes: &[Change],
        ops: &[Vec<Op>],
    ) {
        let mut inner = self.inner();
        if inner.at.as_ref().is_none_or(|(at, _)| at != before) {
            return;
        }
        if changes_touch(doc, changes, ops, &mut HashMap::new()) {
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
/// are looked up once and remembered in `places`. `ops[i]` are the
/// operations of `changes[i]`.
fn changes_touch(
    doc: &Automerge,
    changes: &[Change],
    ops: &[Vec<Op>],
    places: &mut HashMap<ObjectId, bool>,
) -> bool {
    for (change, ops) in changes.iter().zip(ops) {
        let start = change.start_op().get();
        let actor = change.actor_id();
        for (i, op) in ops.iter().enumerate() {
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
/// members, invites, removals or the circle record.
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
        Prop::Map(collection) => {
            [MEMBERS, INVITES, REMOVALS, CIRCLE].contains(&collection.as_str())
        }
        Prop::Seq(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::{
        Circle, DeviceKey, HeadBook, MemberKey, Mood, Profile, ProfileEdit, SignedHead, Timestamp,
    };

    fn now() -> Timestamp {
        Timestamp::from_millis(1_795_464_000_000)
    }

    /// `to` takes in what `from` wrote since `before`, as a node would.
    fn receive(to: &mut Circle, from: &Circle, before: &[automerge::ChangeHash], key: &DeviceKey) {
        let mut book = HeadBook::for_circle(to);
        book.learn(to.id(), &[SignedHead::sign(from, key).expect("a head")]);
        let out = to
            .apply_verified(&from.changes_since(before), &mut book)
            .expect("applies");
        assert!(out.rejected.is_empty(), "{out:?}");
    }

    #[test]
    fn a_peers_check_in_carries_who_is_in_over_and_a_profile_edit_does_not() {
        let (maya, mp) = (MemberKey::generate(), DeviceKey::generate());
        let (sam, sp) = (MemberKey::generate(), DeviceKey::generate());
        let mut rng = rand::rng();
        let mut mine = Circle::create(
            "Supper",
            "",
            &maya.certify(mp.id()),
            &Profile::named("Maya"),
            now(),
            &mut rng,
        )
        .expect("made");
        mine.add_member(
            &sam.certify(sp.id()),
            &Profile::named("Sam"),
            Some(maya.id()),
            now(),
        )
        .expect("added");
        let mut theirs = mine.clone();
        theirs.set_device(sp.id());
        let kept = mine.standing();
        // A check-in writes nowhere who is in rests: the same reading.
        let before = theirs.heads();
        theirs
            .checkin(sam.id(), Mood::Okay, "soup tonight", now(), &mut rng)
            .expect("checked in");
        receive(&mut mine, &theirs, &before, &sp);
        assert!(Arc::ptr_eq(&kept, &mine.standing()), "carried over");
        // A profile edit writes under members: read again.
        let before = theirs.heads();
        theirs
            .edit_profile(
                sam.id(),
                &ProfileEdit {
                    name: Some("Sam B".into()),
                    ..ProfileEdit::default()
                },
                now(),
            )
            .expect("edited");
        receive(&mut mine, &theirs, &before, &sp);
        let fresh = mine.standing();
        assert!(!Arc::ptr_eq(&kept, &fresh), "read again");
        assert_eq!(fresh.view.members[&sam.id()].name, "Sam B");
    }
}
