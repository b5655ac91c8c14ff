//! Reading a circle again after it changed, at the cost of the change
//! rather than of its history.
//!
//! A circle that lived for years holds tens of thousands of entries, and a
//! whole read walks every one of them; after one new check-in, all but one
//! read as before. So the entries of the care collections (check-ins,
//! moments, asks and offers, gatherings) an earlier view holds are kept, and
//! only those the new changes wrote into are read again: each change's
//! operations name the objects they write, and each object's path up to the
//! root names the entry it lies in. The small collections membership rests
//! on (the circle's record, members, invites, removals) are read whole, with
//! the rules over them, when a change wrote into them, and kept otherwise.
//!
//! The result is the view a whole read gives, by construction: an entry is
//! read and merged by the same code a whole read uses, withdrawn entries are
//! left out the same way, and whatever the walk cannot place for sure (a
//! collection made again, a path through a list, very many changes) falls
//! back to a whole read. `tests/view_after.rs` holds the two equal over
//! random lives, concurrent edits and hostile writes.

use std::collections::{BTreeMap, BTreeSet};

use automerge::legacy::{Key, ObjectId, OpId};
use automerge::{Automerge, ChangeHash, ObjId, ObjType, Prop, ROOT, ReadDoc, Value};
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use super::CircleView;
use super::reader::{read_entry, read_key};
use crate::ids::EntityId;
use crate::schema;

/// The collections read entry by entry.
const CARE: [&str; 4] = [
    schema::CHECKINS,
    schema::MOMENTS,
    schema::REQUESTS,
    schema::GATHERINGS,
];

/// The parts of the root read whole every time (they are small).
const SMALL: [&str; 5] = [
    schema::SCHEMA,
    schema::CIRCLE,
    schema::MEMBERS,
    schema::INVITES,
    schema::REMOVALS,
];

/// Beyond this many new changes, a whole read is as good.
const MOST_CHANGES: usize = 1_000;

impl CircleView {
    /// The view of `doc`, given `prev`, the view of it at the heads
    /// `before` (which `doc` must include). Equal to [`CircleView::read`]
    /// of `doc`; it costs what changed since `before`, not the history.
    pub fn read_after(prev: CircleView, doc: &Automerge, before: &[ChangeHash]) -> Self {
        match touched(doc, before) {
            Some(t) => after(prev, doc, &t).unwrap_or_else(|| Self::read(doc)),
            None => Self::read(doc),
        }
    }
}

/// What the changes since an earlier view wrote into.
#[derive(Default)]
struct Touched {
    /// Entries of the care collections, by collection and key.
    entries: BTreeSet<(&'static str, String)>,
    /// The small parts (members, invites, removals, the circle's record).
    small: bool,
}

/// What the changes since `before` wrote into, or `None` where a whole
/// read is needed.
fn touched(doc: &Automerge, before: &[ChangeHash]) -> Option<Touched> {
    // A document that does not hold `before` is another one (a copy
    // rebuilt, say): nothing of the earlier view can be kept.
    if !before.iter().all(|h| doc.get_change_by_hash(h).is_some()) {
        return None;
    }
    let changes = doc.get_changes(before);
    if changes.len() > MOST_CHANGES {
        return None;
    }
    let mut t = Touched::default();
    for change in &changes {
        for op in change.decode().operations {
            let (counter, actor) = match &op.obj {
                // A care collection made (again) at the root: read it all.
                ObjectId::Root => match &op.key {
                    Key::Map(k) if CARE.contains(&k.as_str()) => return None,
                    Key::Map(k) => {
                        t.small |= SMALL.contains(&k.as_str());
                        continue;
                    }
                    Key::Seq(_) => return None,
                },
                ObjectId::Id(OpId(counter, actor)) => (*counter, actor.clone()),
            };
            let path = doc.parents(ObjId::Id(counter, actor, 0)).ok()?.path();
            let Some((ObjId::Root, Prop::Map(top))) = path.first() else {
                return None;
            };
            let Some(collection) = CARE.iter().find(|c| *c == top) else {
                t.small |= SMALL.contains(&top.as_str());
                continue;
            };
            let key = match (path.get(1), &op.key) {
                (Some((_, Prop::Map(k))), _) => k.clone(),
                (None, Key::Map(k)) => k.to_string(),
                _ => return None,
            };
            t.entries.insert((*collection, key));
        }
    }
    Some(t)
}

/// `prev` with the entries the changes wrote into read again, and the
/// small parts read whole where they wrote into those; `None` where the
/// root does not read as a whole read would take it.
fn after(mut prev: CircleView, doc: &Automerge, touched: &Touched) -> Option<CircleView> {
    let mut view = if touched.small {
        let mut root = serde_json::Map::new();
        for key in SMALL {
            if let Some(c) = read_key(doc, &ROOT, key, 0) {
                let v = c.keep(&mut root, key);
                root.insert(key.to_owned(), v);
            }
        }
        let mut view: CircleView = serde_json::from_value(Json::Object(root)).ok()?;
        view.check_authors();
        crate::membership::removal_wins::note_unaware(&mut view, doc);
        view.checkins = std::mem::take(&mut prev.checkins);
        view.moments = std::mem::take(&mut prev.moments);
        view.requests = std::mem::take(&mut prev.requests);
        view.gatherings = std::mem::take(&mut prev.gatherings);
        view
    } else {
        // Nothing membership rests on changed: what `prev` made of it
        // stands (checked authors, admissions a revocation voids).
        prev
    };
    let mut maps: BTreeMap<&str, Vec<ObjId>> = BTreeMap::new();
    for (collection, key) in &touched.entries {
        if !maps.contains_key(collection) {
            maps.insert(collection, collection_maps(doc, collection)?);
        }
        let json = read_entry(doc, &maps[collection], key);
        match *collection {
            schema::CHECKINS => refresh(&mut view.checkins, collection, key, json),
            schema::MOMENTS => refresh(&mut view.moments, collection, key, json),
            schema::REQUESTS => refresh(&mut view.requests, collection, key, json),
            _ => refresh(&mut view.gatherings, collection, key, json),
        }
    }
    Some(view)
}

/// A collection's maps, winner first, as a whole read merges them; `None`
/// where something other than a map stands there.
fn collection_maps(doc: &Automerge, collection: &str) -> Option<Vec<ObjId>> {
    let mut all = doc.get_all(&ROOT, collection).ok()?;
    if all
        .iter()
        .any(|(v, _)| !matches!(v, Value::Object(ObjType::Map)))
    {
        return None;
    }
    // Automerge's winner is the last of them.
    let winner = all.pop();
    Some(winner.into_iter().chain(all).map(|(_, id)| id).collect())
}

/// Puts an entry as read now in its place, or takes it out where it is
/// gone, withdrawn or does not read (as a whole read would leave it out).
fn refresh<V: DeserializeOwned>(
    map: &mut BTreeMap<EntityId, V>,
    collection: &str,
    key: &str,
    json: Option<Json>,
) {
    let Ok(id) = key.parse::<EntityId>() else {
        return;
    };
    let entry = json
        .and_then(|mut j| super::reader::stands(collection, &mut j).then_some(j))
        .and_then(|j| serde_json::from_value(j).ok());
    match entry {
        Some(v) => map.insert(id, v),
        None => map.remove(&id),
    };
}
