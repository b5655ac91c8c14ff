//! The reader: a document as JSON, walked rather than trusted. Where
//! concurrent edits left several values at one key it takes their union
//! (the winner's fields first); each map read from inside a map is marked
//! with its causal position and its maker, so rules can check who wrote
//! what.

use std::collections::HashMap;

use automerge::iter::{DocItem, DocObjItem};
use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, Value};
use serde_json::Value as Json;

/// The key under which the reader records an object's causal position.
pub(super) const ORDER: &str = "__order";
/// The key under which the reader records the device that made an object
/// (its Automerge actor), so rules can check who wrote what.
pub(super) const BY: &str = "__by";
/// The key under which the reader keeps, in a map, the values concurrent
/// edits left at its scalar keys: `{key: [{value, by}, ...]}`, the winner
/// first (see [`crate::double_ups`]).
pub(super) const ALSO: &str = "__also";
/// The key under which the reader keeps, in a map that concurrent edits
/// made more than once, each of them as written: `[{value, by}, ...]`, the
/// winner first.
pub(super) const VERSIONS: &str = "__versions";

/// Deep enough for any shape this schema has; deeper data is not ours.
const MAX_DEPTH: usize = 16;

/// Reads a map and everything under it as JSON, the way [`read_object`]
/// does, in one pass over the document: Automerge walks every object below
/// `obj` once, and only keys with concurrent values, and objects other than
/// maps, are looked up again.
pub(super) fn read_tree(doc: &impl ReadDoc, obj: &ObjId, kind: ObjType, depth: usize) -> Json {
    if kind != ObjType::Map {
        return read_object(doc, obj, kind, depth);
    }
    let mut maps: HashMap<ObjId, Slots> = HashMap::new();
    // Automerge gives an object's keys one after another.
    let mut current: Option<(std::sync::Arc<ObjId>, Slots)> = None;
    for DocObjItem { obj, item } in doc.iter_at(obj, None) {
        let DocItem::Map(item) = item else { continue };
        if current.as_ref().is_none_or(|(o, _)| **o != *obj) {
            if let Some((o, slots)) = current.take() {
                maps.entry((*o).clone()).or_default().extend(slots);
            }
            current = Some((obj, Vec::new()));
        }
        let id = item.id();
        let slot = match (item.conflict, item.value.into_value()) {
            (true, _) => Slot::Conflict,
            (false, Value::Object(k)) => Slot::Object(k, id),
            (false, Value::Scalar(s)) => Slot::Scalar(scalar(&s)),
        };
        if let Some((_, slots)) = &mut current {
            slots.push((item.key.into_owned(), slot));
        }
    }
    if let Some((o, slots)) = current {
        maps.entry((*o).clone()).or_default().extend(slots);
    }
    build(doc, &maps, obj, depth)
}

/// What one pass saw in a map, key by key.
type Slots = Vec<(String, Slot)>;

/// What one pass saw at a map's key.
enum Slot {
    Scalar(Json),
    Object(ObjType, ObjId),
    /// Concurrent values: looked up again, all of them.
    Conflict,
}

/// Puts together the JSON of a map from what [`read_tree`] gathered.
fn build(doc: &impl ReadDoc, maps: &HashMap<ObjId, Slots>, obj: &ObjId, depth: usize) -> Json {
    if depth > MAX_DEPTH {
        return Json::Null;
    }
    let mut out = serde_json::Map::new();
    for (key, slot) in maps.get(obj).into_iter().flatten() {
        let json = match slot {
            Slot::Scalar(j) => Some(j.clone()),
            Slot::Object(ObjType::Map, id) => Some(mark(build(doc, maps, id, depth + 1), id)),
            Slot::Object(k, id) => Some(read_value(doc, Value::Object(*k), id, depth, true)),
            Slot::Conflict => read_key(doc, obj, key, depth).map(|c| c.keep(&mut out, key)),
        };
        if let Some(j) = json {
            out.insert(key.clone(), j);
        }
    }
    Json::Object(out)
}

/// A map read from inside a map, marked with its causal position and maker.
fn mark(mut json: Json, id: &ObjId) -> Json {
    if let (Json::Object(m), ObjId::Id(counter, ..)) = (&mut json, id) {
        m.insert(ORDER.into(), Json::from(*counter));
        m.insert(BY.into(), writer(id));
    }
    json
}

/// Reads an object as JSON. At a key with several concurrent maps, the
/// winner's fields come first and the others fill in what it lacks.
///
/// A map is read in one pass over its keys; only a key where concurrent
/// edits left several values is looked up again for all of them.
fn read_object(doc: &impl ReadDoc, obj: &ObjId, kind: ObjType, depth: usize) -> Json {
    if depth > MAX_DEPTH {
        return Json::Null;
    }
    match kind {
        ObjType::Map | ObjType::Table => {
            let mut out = serde_json::Map::new();
            for item in doc.map_range(obj, ..) {
                let id = item.id();
                let json = if item.conflict {
                    read_key(doc, obj, &item.key, depth).map(|c| c.keep(&mut out, &item.key))
                } else {
                    Some(read_value(doc, item.value.into_value(), &id, depth, true))
                };
                if let Some(j) = json {
                    out.insert(item.key.into_owned(), j);
                }
            }
            Json::Object(out)
        }
        ObjType::List => Json::Array(
            doc.list_range(obj, ..)
                .map(|item| {
                    let id = item.id();
                    read_value(doc, item.value.into_value(), &id, depth, false)
                })
                .collect(),
        ),
        ObjType::Text => Json::String(doc.text(obj).unwrap_or_default()),
    }
}

/// One entry of a collection as a whole read gives it: its value in each
/// of `maps` (the collection's maps, winner first: several where
/// concurrent edits made the collection twice), merged as the collections
/// are. `None` where no map holds it.
pub(super) fn read_entry(doc: &impl ReadDoc, maps: &[ObjId], key: &str) -> Option<Json> {
    maps.iter()
        .filter_map(|m| {
            // Where a scalar's concurrent values would be kept: beside the
            // entries, where no entry is read from.
            let mut beside = serde_json::Map::new();
            read_key(doc, m, key, 1).map(|c| c.keep(&mut beside, key))
        })
        .reduce(union)
}

/// Every value concurrent edits left at `key`, winner first.
pub(super) fn read_key(
    doc: &impl ReadDoc,
    obj: &ObjId,
    key: &str,
    depth: usize,
) -> Option<Concurrent> {
    let all = doc.get_all(obj, key).ok()?;
    Concurrent::read(doc, all, depth)
}

/// The values concurrent edits left at one key, each with who wrote it,
/// the winner first.
pub(super) struct Concurrent(Vec<(Json, Json)>);

impl Concurrent {
    /// Reads the values `get_all` gave, in its order (the winner last).
    pub(super) fn read(
        doc: &impl ReadDoc,
        mut all: Vec<(Value<'_>, ObjId)>,
        depth: usize,
    ) -> Option<Self> {
        // Automerge's winner is the last of the conflicting values.
        let winner = all.pop()?;
        Some(Self(
            std::iter::once(winner)
                .chain(all)
                .map(|(value, id)| (read_value(doc, value, &id, depth, true), writer(&id)))
                .collect(),
        ))
    }

    /// The value the key reads as: the values merged (the winner's fields
    /// first, the others filling in what it lacks). With more than one,
    /// they are also kept as they were written, for the rules that notice
    /// double-ups: a map keeps them under [`VERSIONS`], and a scalar under
    /// [`ALSO`] in the map `out` that holds the key.
    pub(super) fn keep(self, out: &mut serde_json::Map<String, Json>, key: &str) -> Json {
        let versions: Vec<Json> = self
            .0
            .iter()
            .map(|(value, by)| serde_json::json!({ "value": value, "by": by }))
            .collect();
        let merged = self
            .0
            .into_iter()
            .map(|(value, _)| value)
            .reduce(union)
            .unwrap_or(Json::Null);
        if versions.len() < 2 {
            return merged;
        }
        match merged {
            Json::Object(mut m) => {
                m.insert(VERSIONS.into(), Json::Array(versions));
                Json::Object(m)
            }
            scalar => {
                if let Json::Object(also) = out
                    .entry(ALSO)
                    .or_insert_with(|| Json::Object(serde_json::Map::new()))
                {
                    also.insert(key.to_owned(), Json::Array(versions));
                }
                scalar
            }
        }
    }
}

/// The device that made an operation, as text (an actor that is no
/// device's, in hex).
fn writer(id: &ObjId) -> Json {
    match id {
        ObjId::Id(_, actor, _) => Json::String(
            crate::actors::device_of(actor)
                .map_or_else(|| actor.to_hex_string(), |(d, _)| d.to_string()),
        ),
        ObjId::Root => Json::Null,
    }
}

/// One value as JSON. A map in a map is marked with its causal position
/// and its maker (`marked`); maps in lists are not.
fn read_value(
    doc: &impl ReadDoc,
    value: Value<'_>,
    id: &ObjId,
    depth: usize,
    marked: bool,
) -> Json {
    match value {
        Value::Object(k) => {
            let j = read_object(doc, id, k, depth + 1);
            if marked { mark(j, id) } else { j }
        }
        Value::Scalar(s) => scalar(&s),
    }
}

/// `first` with whatever `other` has that `first` lacks, recursively.
/// Only maps merge: when the winner is a scalar, the winner stands.
pub(super) fn union(first: Json, other: Json) -> Json {
    match (first, other) {
        (Json::Object(mut a), Json::Object(b)) => {
            for (k, vb) in b {
                let merged = match a.remove(&k) {
                    Some(va) => union(va, vb),
                    None => vb,
                };
                a.insert(k, merged);
            }
            Json::Object(a)
        }
        (first, _) => first,
    }
}

fn scalar(s: &ScalarValue) -> Json {
    match s {
        ScalarValue::Str(s) => Json::String(s.to_string()),
        ScalarValue::Int(i) => Json::from(*i),
        ScalarValue::Uint(u) => Json::from(*u),
        ScalarValue::F64(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        ScalarValue::Counter(c) => Json::from(i64::from(c)),
        ScalarValue::Timestamp(t) => Json::from(*t),
        ScalarValue::Boolean(b) => Json::Bool(*b),
        ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } | ScalarValue::Null => Json::Null,
    }
}

/// The field that marks an entry withdrawn.
pub(crate) const WITHDRAWN: &str = "withdrawn";

/// Leaves withdrawn entries out of a circle read as JSON (before it is
/// typed), so no view shows them.
pub(super) fn drop_withdrawn(root: &mut Json) {
    for coll in [
        crate::schema::CHECKINS,
        crate::schema::MOMENTS,
        crate::schema::REQUESTS,
        crate::schema::GATHERINGS,
    ] {
        if let Some(entries) = root.get_mut(coll).and_then(|m| m.as_object_mut()) {
            entries.retain(|_, e| stands(coll, e));
        }
    }
}

/// Whether an entity of `collection` stands (its author did not withdraw
/// it), with what was withdrawn inside it (replies, commitments, dishes,
/// answers) left out. A gathering is never withdrawn as a whole.
pub(crate) fn stands(collection: &str, e: &mut Json) -> bool {
    let gone = |v: &Json| v.get(WITHDRAWN).is_some();
    let inside: &[&str] = match collection {
        crate::schema::CHECKINS | crate::schema::MOMENTS => &[crate::schema::REPLIES],
        crate::schema::REQUESTS => &[crate::schema::REPLIES, "commitments"],
        crate::schema::GATHERINGS => &["dishes", "rsvps"],
        _ => &[],
    };
    if collection != crate::schema::GATHERINGS && gone(e) {
        return false;
    }
    for sub in inside {
        if let Some(m) = e.get_mut(*sub).and_then(|m| m.as_object_mut()) {
            m.retain(|_, x| !gone(x));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use automerge::transaction::Transactable;
    use automerge::{ActorId, Automerge, ROOT};
    use proptest::prelude::*;

    use super::*;

    /// The reader as it was first written: every key looked up with all its
    /// values. The one-pass reader must say exactly what this says.
    fn by_key(doc: &Automerge, obj: &ObjId, kind: ObjType, depth: usize) -> Json {
        if depth > MAX_DEPTH {
            return Json::Null;
        }
        let value = |value: Value<'_>, id: ObjId, mark: bool| match value {
            Value::Object(k) => {
                let mut j = by_key(doc, &id, k, depth + 1);
                if let (true, Json::Object(m), ObjId::Id(counter, actor, _)) = (mark, &mut j, &id) {
                    m.insert(ORDER.into(), Json::from(*counter));
                    let by = crate::actors::device_of(actor)
                        .map_or_else(|| actor.to_hex_string(), |(d, _)| d.to_string());
                    m.insert(BY.into(), Json::String(by));
                }
                j
            }
            Value::Scalar(s) => scalar(&s),
        };
        match kind {
            ObjType::Map | ObjType::Table => {
                let mut out = serde_json::Map::new();
                for key in doc.keys(obj) {
                    let mut all = doc.get_all(obj, key.as_str()).unwrap();
                    if all.len() > 1 {
                        let c = Concurrent::read(doc, all, depth).unwrap();
                        let j = c.keep(&mut out, &key);
                        out.insert(key, j);
                        continue;
                    }
                    let merged = all.pop().map(|(v, id)| value(v, id, true));
                    if let Some(j) = merged {
                        out.insert(key, j);
                    }
                }
                Json::Object(out)
            }
            ObjType::List => Json::Array(
                (0..doc.length(obj))
                    .filter_map(|i| doc.get(obj, i).unwrap())
                    .map(|(v, id)| value(v, id, false))
                    .collect(),
            ),
            ObjType::Text => Json::String(doc.text(obj).unwrap()),
        }
    }

    /// One edit of a random document: a scalar, a map, a list or a text at
    /// one of a few keys, somewhere among the maps already there.
    fn edit(doc: &mut Automerge, path: &[u8], key: u8, what: u8) {
        let mut tx = doc.transaction();
        let mut obj = ROOT;
        for step in path {
            let maps: Vec<ObjId> = tx
                .map_range(&obj, ..)
                .filter(|i| matches!(i.value, automerge::ValueRef::Object(ObjType::Map)))
                .map(|i| i.id())
                .collect();
            if maps.is_empty() {
                break;
            }
            obj = maps[usize::from(*step) % maps.len()].clone();
        }
        let key = format!("k{}", key % 4);
        match what % 6 {
            0 => drop(tx.put(&obj, &key, i64::from(what))),
            1 => drop(tx.put(&obj, &key, format!("s{what}"))),
            2 => {
                let m = tx.put_object(&obj, &key, ObjType::Map).unwrap();
                tx.put(&m, "x", i64::from(what)).unwrap();
            }
            3 => {
                let l = tx.put_object(&obj, &key, ObjType::List).unwrap();
                let m = tx.insert_object(&l, 0, ObjType::Map).unwrap();
                tx.put(&m, "y", "in a list").unwrap();
                tx.insert(&l, 1, true).unwrap();
            }
            4 => {
                let t = tx.put_object(&obj, &key, ObjType::Text).unwrap();
                tx.splice_text(&t, 0, 0, "words").unwrap();
            }
            _ => drop(tx.delete(&obj, &key)),
        }
        tx.commit();
    }

    proptest! {
        /// Three copies edit apart (so keys hold conflicting values and
        /// concurrent maps), merge, and both readers agree on every copy.
        #[test]
        fn one_pass_reads_what_key_by_key_reads(
            edits in prop::collection::vec((0usize..3, prop::collection::vec(any::<u8>(), 0..3), any::<u8>(), any::<u8>(), any::<bool>()), 1..40)
        ) {
            let mut copies: Vec<Automerge> = (0..3u8)
                .map(|i| Automerge::new().with_actor(ActorId::from(vec![i + 1; 16])))
                .collect();
            for (copy, path, key, what, merge) in edits {
                edit(&mut copies[copy], &path, key, what);
                if merge {
                    let mut other = copies[(copy + 1) % 3].clone();
                    copies[copy].merge(&mut other).unwrap();
                }
            }
            for doc in &copies {
                let expected = by_key(doc, &ROOT, ObjType::Map, 0);
                prop_assert_eq!(&read_object(doc, &ROOT, ObjType::Map, 0), &expected);
                prop_assert_eq!(&read_tree(doc, &ROOT, ObjType::Map, 0), &expected);
            }
        }
    }
}
