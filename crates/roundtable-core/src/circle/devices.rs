//! The membership as a copy of the circle reads it, and a member taking
//! back one of their devices or one of their invites.

use automerge::ObjType;
use automerge::transaction::Transactable;

use super::Circle;
use crate::doc::child_map;
use crate::error::CoreError;
use crate::ids::{DeviceId, EntityId, MemberId};
use crate::membership::Membership;
use crate::schema;
use crate::time::Timestamp;

impl Circle {
    /// The membership as the document says it is now (the circle keeps
    /// it until a change touches what it rests on).
    pub fn membership(&self) -> Membership {
        self.standing().membership.clone()
    }

    /// The device whose edits these are (the document's actor).
    pub fn device(&self) -> Option<DeviceId> {
        crate::actors::device_of(self.doc().get_actor()).map(|(d, _)| d)
    }

    pub(super) fn me(&self) -> Result<DeviceId, CoreError> {
        self.device()
            .ok_or_else(|| CoreError::Invalid("this copy of the circle has no device set".into()))
    }

    /// Revokes another device of `member` (this device's member).
    pub fn revoke_device(
        &mut self,
        member: MemberId,
        device: DeviceId,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        let me = self.me()?;
        let view = self.view();
        let m = view
            .members
            .get(&member)
            .ok_or_else(|| CoreError::NotAMember(format!("member {}", member.fmt_short())))?;
        if !m.devices.contains_key(&me) {
            return Err(CoreError::NotAllowed(
                "only a device of the same member can revoke a device".into(),
            ));
        }
        if !m.devices.contains_key(&device) {
            return Err(CoreError::NotAllowed(format!(
                "device {} is not one of yours; `roundtable device list` shows them",
                device.fmt_short()
            )));
        }
        if device == me {
            return Err(CoreError::NotAllowed(
                "a device cannot revoke itself; revoke it from another of your devices".into(),
            ));
        }
        let membership = Membership::from_view(&view);
        if membership.revoked.contains(&me) {
            return Err(CoreError::NotAllowed("this device has been revoked".into()));
        }
        if membership.revoked.contains(&device) {
            return Err(CoreError::NotAllowed(format!(
                "device {} is already revoked",
                device.fmt_short()
            )));
        }
        let obj = self.require_member(member)?;
        self.transact(now, "revoke device", |tx| {
            let devices = child_map(tx, &obj, schema::DEVICES)?;
            let d = child_map(tx, &devices, &device.to_string())?;
            let r = tx.put_object(&d, "revoked", ObjType::Map)?;
            tx.put(&r, "at", now.as_millis())?;
            Ok(())
        })
    }

    /// Revokes an invite so its ticket no longer works.
    pub fn revoke_invite(
        &mut self,
        by: MemberId,
        invite: EntityId,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        self.require_member(by)?;
        let view = self.view();
        let inv = view.invites.get(&invite).ok_or(CoreError::NoSuchEntity {
            kind: "invite",
            id: invite,
        })?;
        if inv.by != by {
            return Err(CoreError::NotAllowed(
                "only the member who made an invite can revoke it; ask them".into(),
            ));
        }
        if inv.revoked {
            return Err(CoreError::NotAllowed(
                "this invite is already revoked".into(),
            ));
        }
        let obj = self.require_entity(schema::INVITES, invite, "invite")?;
        self.transact(now, "revoke invite", |tx| {
            tx.put(&obj, "revoked", true)?;
            Ok(())
        })
    }
}
