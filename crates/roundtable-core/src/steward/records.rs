//! The stewards a circle records (`circle.stewards.<id>`): added by any
//! member in their own name, stopped by any member, never deleted.

use std::collections::BTreeMap;

use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, Value};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{LockerId, MAX_STEWARD_RECORDS, MAX_STEWARDS, MAX_TICKET, STEWARDS};
use crate::circle::Circle;
use crate::doc::{Maker, authored, child_map};
use crate::error::CoreError;
use crate::ids::{DeviceId, EntityId, MemberId};
use crate::schema;
use crate::time::Timestamp;

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

fn maps_at(doc: &automerge::Automerge, obj: &ObjId, key: &str) -> Vec<ObjId> {
    doc.get_all(obj, key)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(v, id)| matches!(v, Value::Object(ObjType::Map)).then_some(id))
        .collect()
}

impl Circle {
    /// The stewards the circle records, removed ones included, in the
    /// order they were added.
    pub fn stewards(&self) -> Vec<StewardRecord> {
        let doc = self.doc();
        let mut out = BTreeMap::new();
        for info in maps_at(doc, &automerge::ROOT, schema::CIRCLE) {
            for stewards in maps_at(doc, &info, STEWARDS) {
                for key in doc.keys(&stewards) {
                    let Ok(id) = key.parse::<EntityId>() else {
                        continue;
                    };
                    for rec in maps_at(doc, &stewards, &key) {
                        if let Some(r) = read_record(doc, &rec, id) {
                            let e = out.entry((r.added_at, id)).or_insert(r.clone());
                            e.removed_by = e.removed_by.or(r.removed_by);
                        }
                    }
                }
            }
        }
        out.into_values().collect()
    }

    /// Records a steward for the circle, in `me`'s name; returns its id.
    pub fn add_steward(
        &mut self,
        me: MemberId,
        ticket: &str,
        name: Option<&str>,
        steward: DeviceId,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<(EntityId, LockerId), CoreError> {
        self.require_member(me)?;
        let ticket = ticket.trim();
        if ticket.is_empty() || ticket.len() > MAX_TICKET || !ticket.is_ascii() {
            return Err(CoreError::Invalid(
                "that is not a steward's ticket: copy the whole line `roundtable steward ticket` printed".into(),
            ));
        }
        let name = name
            .filter(|n| !n.trim().is_empty())
            .map(|n| crate::text::checked_name("steward's name", n))
            .transpose()?;
        let all = self.stewards();
        if all
            .iter()
            .any(|s| s.ticket == ticket && s.removed_by.is_none())
        {
            return Err(CoreError::Invalid(
                "this circle already uses that steward".into(),
            ));
        }
        let count = count_stewards(self.doc(), None);
        if count.in_use >= MAX_STEWARDS {
            return Err(CoreError::Invalid(format!(
                "a circle uses at most {MAX_STEWARDS} stewards at once: stop using one first"
            )));
        }
        if count.records >= MAX_STEWARD_RECORDS {
            return Err(CoreError::Invalid(format!(
                "this circle has recorded {MAX_STEWARD_RECORDS} stewards, as many as a circle may"
            )));
        }
        let id = EntityId::random(rng);
        let locker = LockerId::random(rng);
        self.transact(now, "add steward", |tx| {
            let info = match tx.get(automerge::ROOT, schema::CIRCLE)? {
                Some((Value::Object(ObjType::Map), obj)) => obj,
                _ => return Err(CoreError::NotACircle("it has no circle record".into())),
            };
            let stewards = child_map(tx, &info, STEWARDS)?;
            let rec = authored(tx, &stewards, id, Maker::By(me), now)?;
            use automerge::transaction::Transactable;
            tx.put(&rec, "ticket", ticket)?;
            tx.put(&rec, "steward", steward.to_string())?;
            tx.put(&rec, "locker", locker.to_hex())?;
            if let Some(name) = &name {
                tx.put(&rec, "name", name.as_str())?;
            }
            Ok(())
        })?;
        Ok((id, locker))
    }

    /// Stops the circle using a steward, in `me`'s name.
    pub fn remove_steward(
        &mut self,
        me: MemberId,
        id: EntityId,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        self.require_member(me)?;
        let Some(found) = self.stewards().into_iter().find(|s| s.id == id) else {
            return Err(CoreError::NoSuchEntity {
                kind: "steward",
                id,
            });
        };
        if found.removed_by.is_some() {
            return Ok(());
        }
        let doc = self.doc();
        let rec = maps_at(doc, &automerge::ROOT, schema::CIRCLE)
            .into_iter()
            .flat_map(|info| maps_at(doc, &info, STEWARDS))
            .flat_map(|s| maps_at(doc, &s, &id.to_string()))
            .next()
            .ok_or(CoreError::NoSuchEntity {
                kind: "steward",
                id,
            })?;
        self.transact(now, "remove steward", |tx| {
            use automerge::transaction::Transactable;
            tx.put(&rec, "removed_by", me.to_string())?;
            tx.put(&rec, "removed_at", now.as_millis())?;
            Ok(())
        })
    }
}

fn read_record(doc: &automerge::Automerge, rec: &ObjId, id: EntityId) -> Option<StewardRecord> {
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
