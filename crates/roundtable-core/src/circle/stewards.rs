//! Adding a steward to the circle's record and stopping one (see
//! [`crate::steward`]).

use std::collections::BTreeMap;

use automerge::{ObjType, ReadDoc, Value};
use rand::RngCore;

use super::Circle;
use crate::doc::{Maker, authored, child_map};
use crate::error::CoreError;
use crate::ids::{DeviceId, EntityId, MemberId};
use crate::schema;
use crate::steward::records::{
    LockerId, MAX_STEWARD_RECORDS, MAX_STEWARDS, MAX_TICKET, STEWARDS, StewardRecord,
    count_stewards, maps_at, read_record,
};
use crate::time::Timestamp;

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
