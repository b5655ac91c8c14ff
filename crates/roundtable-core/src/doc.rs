//! The document at its lowest level, for reading and writing alike:
//! outside bytes parsed without a panic, the maps at a key, a map made
//! where it is missing, and the one way an authored entity is made.

use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::transaction::{Transactable, Transaction};
use automerge::{Automerge, ObjId, ObjType, ROOT, ReadDoc, Value};

use crate::error::CoreError;
use crate::ids::{EntityId, MemberId};
use crate::time::Timestamp;

/// Runs an Automerge parse of outside bytes, turning both errors and panics
/// into [`CoreError::BadDocument`]: hostile bytes must never bring a node down.
pub(crate) fn guarded<T>(
    f: impl FnOnce() -> Result<T, automerge::AutomergeError>,
) -> Result<T, CoreError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(CoreError::BadDocument(e.to_string())),
        Err(_) => Err(CoreError::BadDocument("malformed data".into())),
    }
}

/// Whether Automerge refused changes because one held back for missing
/// history already holds their device's sequence number.
pub(crate) fn is_clash(e: &automerge::AutomergeError) -> bool {
    matches!(e, automerge::AutomergeError::DuplicateSeqNumber(..))
}

/// Every map object at `obj[key]` (concurrent ones included).
pub(crate) fn maps(doc: &Automerge, obj: &ObjId, key: &str) -> Vec<ObjId> {
    doc.get_all(obj, key)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(v, id)| matches!(v, Value::Object(ObjType::Map)).then_some(id))
        .collect()
}

/// Every map object that is a value of `obj`.
pub(crate) fn children(doc: &Automerge, obj: &ObjId) -> Vec<ObjId> {
    doc.keys(obj).flat_map(|k| maps(doc, obj, &k)).collect()
}

/// The winning map at `ROOT[name]`, created if a document lacks it.
pub(crate) fn collection(tx: &mut Transaction<'_>, name: &str) -> Result<ObjId, CoreError> {
    child_map(tx, &ROOT, name)
}

/// The winning map at `parent[key]`, created if missing.
pub(crate) fn child_map(
    tx: &mut Transaction<'_>,
    parent: &ObjId,
    key: &str,
) -> Result<ObjId, CoreError> {
    match tx.get(parent, key)? {
        Some((Value::Object(ObjType::Map), obj)) => Ok(obj),
        _ => Ok(tx.put_object(parent, key, ObjType::Map)?),
    }
}

/// Who made an entity, under the key its kind keeps them at.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Maker {
    /// `author`: the member who said it (a check-in, a moment, an ask or
    /// an offer, a gathering, a reply, a commitment, a dish).
    Author(MemberId),
    /// `by`: the member who did it (an invite, a proposal, a steward
    /// record).
    By(MemberId),
}

/// A new entity at `parent[id]`: a map holding who made it and when
/// (`at`); the caller writes the rest. Every authored entity is made here.
pub(crate) fn authored(
    tx: &mut Transaction<'_>,
    parent: &ObjId,
    id: EntityId,
    maker: Maker,
    now: Timestamp,
) -> Result<ObjId, CoreError> {
    let (key, member) = match maker {
        Maker::Author(m) => ("author", m),
        Maker::By(m) => ("by", m),
    };
    let obj = tx.put_object(parent, id.to_string(), ObjType::Map)?;
    tx.put(&obj, key, member.to_string())?;
    tx.put(&obj, "at", now.as_millis())?;
    Ok(obj)
}
