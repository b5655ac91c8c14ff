//! Editing and withdrawing what one wrote (see [`crate::entries`]), by its
//! author alone.

use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, ROOT, ReadDoc, Value};

use super::Circle;
use crate::entries::{EntryKind, Found, find};
use crate::error::CoreError;
use crate::ids::{EntityId, MemberId};
use crate::schema;
use crate::text::checked;
use crate::time::Timestamp;

impl Circle {
    fn obj_at(&self, path: &[String]) -> Option<ObjId> {
        let mut obj = ROOT;
        for key in path {
            obj = match self.doc().get(&obj, key.as_str()).ok()?? {
                (Value::Object(ObjType::Map), id) => id,
                _ => return None,
            };
        }
        Some(obj)
    }

    fn own_entry(&self, id: EntityId, me: MemberId) -> Result<(Found, ObjId), CoreError> {
        self.require_member(me)?;
        let view = self.view();
        let found = find(&view, id).ok_or(CoreError::NoSuchEntity { kind: "entry", id })?;
        if found.author != me {
            return Err(CoreError::NotAllowed(format!(
                "this {} is {}'s; only they can change or withdraw it",
                found.kind.noun(),
                view.name_of(&found.author)
            )));
        }
        let obj = self.obj_at(&found.path).ok_or(CoreError::NoSuchEntity {
            kind: found.kind.noun(),
            id,
        })?;
        Ok((found, obj))
    }

    /// Changes the words of something `me` wrote; returns what it was.
    pub fn edit_entry(
        &mut self,
        id: EntityId,
        me: MemberId,
        text: &str,
        now: Timestamp,
    ) -> Result<EntryKind, CoreError> {
        let (found, obj) = self.own_entry(id, me)?;
        let (field, max, required) = found.kind.text_field();
        let text = checked(found.kind.noun(), text, max, required)?;
        self.transact(now, "edit", |tx| {
            tx.put(&obj, field, text)?;
            tx.put(&obj, "edited_at", now.as_millis())?;
            Ok(())
        })?;
        Ok(found.kind)
    }

    /// Takes back something `me` wrote: its words are emptied and views
    /// leave it out. Returns what it was.
    pub fn withdraw_entry(
        &mut self,
        id: EntityId,
        me: MemberId,
        now: Timestamp,
    ) -> Result<EntryKind, CoreError> {
        let (found, obj) = self.own_entry(id, me)?;
        self.transact(now, "withdraw", |tx| {
            for field in found.kind.words() {
                if tx.get(&obj, *field)?.is_some() {
                    tx.put(&obj, *field, "")?;
                }
            }
            tx.put(&obj, crate::view::WITHDRAWN, now.as_millis())?;
            Ok(())
        })?;
        Ok(found.kind)
    }
}

impl Circle {
    /// The dishes `member` brings to a gathering now.
    pub fn dishes_of(&self, gathering: EntityId, member: MemberId) -> Vec<(EntityId, String)> {
        self.view_of(&[schema::GATHERINGS])
            .dishes_of(gathering, member)
    }

    /// Withdraws every dish `member` brings to a gathering (before they
    /// bring something else instead).
    pub fn withdraw_dishes(
        &mut self,
        gathering: EntityId,
        member: MemberId,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        for (id, _) in self.dishes_of(gathering, member) {
            self.withdraw_entry(id, member, now)?;
        }
        Ok(())
    }
}
