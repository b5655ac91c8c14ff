//! The stewards a circle records (`circle.stewards.<id>`): added by any
//! member in their own name, stopped by any member, never deleted.

use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, Value};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, EntityId, MemberId};
use crate::schema;
use crate::time::Timestamp;

/// The key under the circle record where stewards are recorded.
pub(crate) const STEWARDS: &str = "stewards";
/// The most stewards a circle uses at once (records not removed).
pub const MAX_STEWARDS: usize = 16;
/// The most steward records a circle holds, removed ones included: records
/// are never deleted, so this keeps the document bounded (at about 1.2 KB
/// a record, some 150 KB), and is far more than a circle adding and
/// removing a steward every month for ten years writes.
pub const MAX_STEWARD_RECORDS: usize = 128;
/// The longest a steward's ticket may be, in bytes.
pub const MAX_TICKET: usize = 1024;

/// Where one steward keeps one circle: random, kept in the circle's
/// steward record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LockerId(pub [u8; 16]);

impl LockerId {
    /// A fresh one.
    pub fn random(rng: &mut impl RngCore) -> Self {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        Self(b)
    }

    /// As lowercase hex.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// From lowercase hex.
    pub fn from_hex(s: &str) -> Option<Self> {
        Some(Self(unhex(s)?))
    }
}

/// A steward as the circle records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StewardRecord {
    /// The record's id.
    pub id: EntityId,
    /// The steward's ticket, as its operator gave it.
    pub ticket: String,
    /// The steward's id (its ticket's; a device uses a record only when
    /// the two agree).
    pub steward: DeviceId,
    /// Where it keeps this circle.
    pub locker: LockerId,
    /// Who added it.
    pub added_by: Option<MemberId>,
    /// When (display only).
    pub added_at: Timestamp,
    /// Who stopped the circle using it, if anyone.
    pub removed_by: Option<MemberId>,
    /// What the member who added it called it ("Maya's Pi"), if anything.
    pub name: Option<String>,
}

impl StewardRecord {
    /// What people call it: the name it was given, else after who added
    /// it ("Maya's steward"), with `name_of` saying members' names.
    pub fn called(&self, name_of: impl Fn(&MemberId) -> String) -> String {
        match (&self.name, &self.added_by) {
            (Some(name), _) => name.clone(),
            (None, Some(by)) => format!("{}'s steward", name_of(by)),
            (None, None) => format!("steward {}", self.steward.fmt_short()),
        }
    }
}

fn scalar(doc: &automerge::Automerge, obj: &ObjId, key: &str) -> Option<ScalarValue> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => Some(s.into_owned()),
        _ => None,
    }
}

pub(crate) fn maps_at(doc: &automerge::Automerge, obj: &ObjId, key: &str) -> Vec<ObjId> {
    doc.get_all(obj, key)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(v, id)| matches!(v, Value::Object(ObjType::Map)).then_some(id))
        .collect()
}

pub(crate) fn read_record(
    doc: &automerge::Automerge,
    rec: &ObjId,
    id: EntityId,
) -> Option<StewardRecord> {
    record_of(id, |k| scalar(doc, rec, k))
}

/// A steward record from its fields, as `get` finds them; `None` when it
/// does not read as one.
pub(crate) fn record_of(
    id: EntityId,
    get: impl Fn(&str) -> Option<ScalarValue>,
) -> Option<StewardRecord> {
    let text = |k: &str| match get(k)? {
        ScalarValue::Str(s) => Some(s.to_string()),
        _ => None,
    };
    let ticket = text("ticket")?;
    if ticket.is_empty() || ticket.len() > MAX_TICKET {
        return None;
    }
    let locker = LockerId::from_hex(&text("locker")?)?;
    let steward = text("steward")?.parse().ok()?;
    let added_at = match get("at")? {
        ScalarValue::Int(n) => Timestamp::from_millis(n),
        _ => return None,
    };
    // A name is optional; one that is not a name as the circle keeps
    // names makes the record unreadable, as any other bad field does.
    let name = match get("name") {
        None => None,
        Some(ScalarValue::Str(n)) => {
            let n = n.to_string();
            if crate::text::checked_name("steward's name", &n).ok()? != n {
                return None;
            }
            Some(n)
        }
        Some(_) => return None,
    };
    Some(StewardRecord {
        name,
        id,
        ticket,
        steward,
        locker,
        added_by: text("by").and_then(|s| s.parse().ok()),
        added_at,
        removed_by: text("removed_by").and_then(|s| s.parse().ok()),
    })
}

/// How many steward records a circle holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StewardCount {
    /// Every record, removed ones included.
    pub(crate) records: usize,
    /// Records with no removal: the stewards in use.
    pub(crate) in_use: usize,
}

/// The steward records of `doc`, as it stands or at `heads`: every map in
/// every stewards collection (concurrent ones included), so every device
/// counting a change's own history counts alike.
pub(crate) fn count_stewards(
    doc: &automerge::Automerge,
    heads: Option<&[automerge::ChangeHash]>,
) -> StewardCount {
    let all = |obj: &ObjId, key: &str| {
        match heads {
            Some(h) => doc.get_all_at(obj, key, h),
            None => doc.get_all(obj, key),
        }
        .unwrap_or_default()
    };
    let maps = |obj: &ObjId, key: &str| -> Vec<ObjId> {
        all(obj, key)
            .into_iter()
            .filter_map(|(v, id)| matches!(v, Value::Object(ObjType::Map)).then_some(id))
            .collect()
    };
    let mut count = StewardCount::default();
    for info in maps(&automerge::ROOT, schema::CIRCLE) {
        for stewards in maps(&info, STEWARDS) {
            let keys: Vec<String> = match heads {
                Some(h) => doc.keys_at(&stewards, h).collect(),
                None => doc.keys(&stewards).collect(),
            };
            for key in keys {
                for rec in maps(&stewards, &key) {
                    count.records += 1;
                    if all(&rec, "removed_by").is_empty() {
                        count.in_use += 1;
                    }
                }
            }
        }
    }
    count
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
