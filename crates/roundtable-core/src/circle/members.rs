//! Who is in and how they are known: admitting a member or a device
//! (checked first, written in the same change as what let them in), a
//! device naming itself, and a member's own profile, whose changes of name
//! are told to everyone.

use automerge::transaction::{Transactable, Transaction};
use automerge::{ObjId, ObjType, ReadDoc, ScalarValue};

use super::{
    Circle, Profile, ProfileEdit, check_device_name, checked, checked_name, child_map, collection,
};
use crate::error::CoreError;
use crate::identity::DeviceCert;
use crate::ids::{EntityId, MemberId};
use crate::schema::{self, limits};
use crate::time::Timestamp;
use crate::view::CircleView;

/// A member or a device checked and ready to be written into the circle
/// (see [`Circle::add_member`], [`Circle::add_device`]), so that an edit
/// letting someone in can write it in the same change as its own records.
#[derive(Debug, Clone)]
pub(crate) enum Admission {
    /// A new member with their first device.
    Member {
        cert: DeviceCert,
        profile: Profile,
        invited_by: Option<MemberId>,
    },
    /// A new device of a member already here (the map of their record),
    /// and, when the key that certified it is one a recovery gave them,
    /// that key.
    Device {
        cert: DeviceCert,
        member: ObjId,
        recovered_key: bool,
    },
    /// Someone who left, back with a member's ticket (the map of their
    /// record): their return, starting `stint`, and the device, when it
    /// is new.
    Return {
        member: ObjId,
        stint: u64,
        invite: EntityId,
        device: Option<DeviceCert>,
    },
    /// The device is there already: nothing to write.
    Already,
}

impl Admission {
    /// Writes the member's or the device's record inside `tx`.
    pub(crate) fn write(&self, tx: &mut Transaction<'_>, now: Timestamp) -> Result<(), CoreError> {
        match self {
            Admission::Member {
                cert,
                profile,
                invited_by,
            } => put_member(tx, cert, profile, *invited_by, now),
            Admission::Device {
                cert,
                member,
                recovered_key,
            } => {
                let devices = child_map(tx, member, schema::DEVICES)?;
                put_device(tx, &devices, cert, now)?;
                if *recovered_key {
                    let d = child_map(tx, &devices, &cert.device.to_string())?;
                    tx.put(&d, "key", crate::identity::hex(cert.member.as_bytes()))?;
                }
                Ok(())
            }
            Admission::Return {
                member,
                stint,
                invite,
                device,
            } => {
                let returns = child_map(tx, member, schema::RETURNS)?;
                let r = tx.put_object(&returns, stint.to_string(), ObjType::Map)?;
                tx.put(&r, "invite", invite.to_string())?;
                tx.put(&r, "at", now.as_millis())?;
                if let Some(cert) = device {
                    let devices = child_map(tx, member, schema::DEVICES)?;
                    put_device(tx, &devices, cert, now)?;
                }
                Ok(())
            }
            Admission::Already => Ok(()),
        }
    }
}

impl Circle {
    /// Adds a member with their first device. Adding someone already here
    /// only adds the device.
    pub fn add_member(
        &mut self,
        device: &DeviceCert,
        profile: &Profile,
        invited_by: Option<MemberId>,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        let admission = self.member_admission(device, profile, invited_by)?;
        self.admit(&admission, now)
    }

    /// Adds a device certified by a member of this circle. Adding one that
    /// is already there changes nothing; a revoked one cannot come back
    /// (records of who is in only grow, see `shape`).
    pub fn add_device(&mut self, cert: &DeviceCert, now: Timestamp) -> Result<(), CoreError> {
        let admission = self.device_admission(cert)?;
        self.admit(&admission, now)
    }

    /// Checks what [`Circle::add_member`] would write, writing nothing.
    pub(crate) fn member_admission(
        &self,
        device: &DeviceCert,
        profile: &Profile,
        invited_by: Option<MemberId>,
    ) -> Result<Admission, CoreError> {
        device.verify()?;
        check_profile(profile)?;
        if let Some(inviter) = invited_by {
            self.require_member(inviter)?;
        }
        if self
            .membership()
            .member_by_key(device.member)
            .is_some_and(|m| self.is_member(m))
        {
            return self.device_admission(device);
        }
        self.view()
            .check_new_name(&profile.name, Some(device.member))?;
        Ok(Admission::Member {
            cert: device.clone(),
            profile: profile.clone(),
            invited_by,
        })
    }

    /// Checks what [`Circle::add_device`] would write, writing nothing.
    /// A device certified by the key a recovery gave its member goes into
    /// that member's record, naming the key.
    pub(crate) fn device_admission(&self, cert: &DeviceCert) -> Result<Admission, CoreError> {
        cert.verify()?;
        let membership = self.membership();
        if membership.keys.contains_key(&cert.member) {
            return Err(CoreError::NotAllowed(
                "the circle recovered this member on a new key, so a device their old key certifies no longer counts; pair from a device of the new key"
                    .into(),
            ));
        }
        let id = membership.acting_as(cert.member);
        let member = self.require_member(id)?;
        if let Some(known) = self
            .view()
            .members
            .get(&id)
            .and_then(|m| m.devices.get(&cert.device).cloned())
        {
            if known.revoked.is_some() {
                return Err(CoreError::NotAllowed(
                    "this device was revoked and cannot come back; reset it to pair it as a new device"
                        .into(),
                ));
            }
            return Ok(Admission::Already);
        }
        self.room_for_a_device(id)?;
        Ok(Admission::Device {
            cert: cert.clone(),
            member,
            recovered_key: id != cert.member,
        })
    }

    /// Writes what an admission says, as one change (nothing for a device
    /// that is there already).
    fn admit(&mut self, admission: &Admission, now: Timestamp) -> Result<(), CoreError> {
        let message = match admission {
            Admission::Member { .. } => "add member",
            Admission::Device { .. } => "add device",
            Admission::Return { .. } => "welcome back",
            Admission::Already => return Ok(()),
        };
        self.transact(now, message, |tx| admission.write(tx, now))
    }

    /// Whether `member` may have one more device: at most
    /// [`MAX_ACTIVE_DEVICES`](crate::membership::MAX_ACTIVE_DEVICES) not
    /// revoked, and [`MAX_DEVICE_RECORDS`](crate::membership::MAX_DEVICE_RECORDS)
    /// ever; if not, says what to do.
    pub fn room_for_a_device(&self, member: MemberId) -> Result<(), CoreError> {
        use crate::membership::{MAX_ACTIVE_DEVICES, MAX_DEVICE_RECORDS};
        let view = CircleView::read_membership(self.doc());
        let Some(m) = view.members.get(&member) else {
            return Ok(());
        };
        let revoked = &self.membership().revoked;
        let active = m.devices.keys().filter(|d| !revoked.contains(d)).count();
        if m.devices.len() >= MAX_DEVICE_RECORDS {
            return Err(CoreError::NotAllowed(format!(
                "you have had {MAX_DEVICE_RECORDS} devices in this circle, revoked ones included, the most a member may ever have; go on with a device you have, or join anew as a new member"
            )));
        }
        if active >= MAX_ACTIVE_DEVICES {
            return Err(CoreError::NotAllowed(format!(
                "you have {active} devices in this circle, the most a member may have at once; revoke one you no longer use first (roundtable device revoke ID), then pair again"
            )));
        }
        Ok(())
    }

    /// Names this device ("Ana's phone"), as its member's devices list it.
    /// Only a device names itself.
    pub fn name_device(&mut self, name: &str, now: Timestamp) -> Result<(), CoreError> {
        let me = self.device().ok_or_else(|| {
            CoreError::Invalid("this copy of the circle has no device set".into())
        })?;
        let name = check_device_name(name)?;
        let member = self
            .view()
            .members
            .iter()
            .find(|(_, m)| m.devices.contains_key(&me))
            .map(|(id, _)| *id)
            .ok_or_else(|| CoreError::NotAMember("this device is in no member's record".into()))?;
        let obj = self.require_member(member)?;
        self.transact(now, "name device", |tx| {
            let devices = child_map(tx, &obj, schema::DEVICES)?;
            let d = child_map(tx, &devices, &me.to_string())?;
            tx.put(&d, "name", name.as_str())?;
            Ok(())
        })
    }

    /// Changes some fields of `member`'s own profile.
    pub fn edit_profile(
        &mut self,
        member: MemberId,
        edit: &ProfileEdit,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        let obj = self.require_member(member)?;
        let fields = [
            ("name", &edit.name, limits::NAME, true),
            ("pronouns", &edit.pronouns, limits::PRONOUNS, false),
            ("remember", &edit.remember, limits::NOTE, false),
            ("story", &edit.story, limits::STORY, false),
        ];
        for (field, value, max, required) in &fields {
            if let Some(v) = value {
                checked(field, v, *max, *required)?;
            }
        }
        let (name, was) = match &edit.name {
            Some(n) => {
                checked_name("name", n)?;
                let view = self.view();
                let was = view.members.get(&member).map(|m| m.name.clone());
                (Some(view.check_new_name(n, Some(member))?), was)
            }
            None => (None, None),
        };
        // A new name is said to everyone: who they were, who they are now.
        let renamed = match (&name, was) {
            (Some(to), Some(from)) if crate::people::clean_name(&from) != *to => {
                Some((to.clone(), from))
            }
            _ => None,
        };
        let key = format!(
            "{}-{}",
            now.as_millis(),
            self.device().map(|d| d.fmt_short()).unwrap_or_default()
        );
        self.transact(now, "edit profile", |tx| {
            for (field, value, _, _) in fields {
                if let Some(v) = value {
                    match (field, &name) {
                        ("name", Some(n)) => tx.put(&obj, field, n.as_str())?,
                        _ => tx.put(&obj, field, v.trim())?,
                    }
                }
            }
            if let Some((to, from)) = renamed {
                let renames = match tx.get(&obj, schema::RENAMES)? {
                    Some((automerge::Value::Object(ObjType::Map), id)) => id,
                    _ => tx.put_object(&obj, schema::RENAMES, ObjType::Map)?,
                };
                let r = tx.put_object(&renames, key.as_str(), ObjType::Map)?;
                tx.put(&r, "from", from.as_str())?;
                tx.put(&r, "to", to.as_str())?;
                tx.put(&r, "at", now.as_millis())?;
            }
            Ok(())
        })
    }
}

pub(super) fn check_profile(p: &Profile) -> Result<(), CoreError> {
    checked_name("name", &p.name)?;
    checked("pronouns", &p.pronouns, limits::PRONOUNS, false)?;
    checked("remember", &p.remember, limits::NOTE, false)?;
    checked("story", &p.story, limits::STORY, false)?;
    Ok(())
}

pub(super) fn put_member(
    tx: &mut Transaction<'_>,
    device: &DeviceCert,
    profile: &Profile,
    invited_by: Option<MemberId>,
    now: Timestamp,
) -> Result<(), CoreError> {
    let members = collection(tx, schema::MEMBERS)?;
    let m = tx.put_object(&members, device.member.to_string(), ObjType::Map)?;
    tx.put(&m, "name", crate::people::clean_name(&profile.name))?;
    tx.put(&m, "pronouns", profile.pronouns.trim())?;
    tx.put(&m, "remember", profile.remember.trim())?;
    tx.put(&m, "story", profile.story.trim())?;
    tx.put(&m, "joined_at", now.as_millis())?;
    match invited_by {
        Some(i) => tx.put(&m, "invited_by", i.to_string())?,
        None => tx.put(&m, "invited_by", ScalarValue::Null)?,
    }
    let devices = tx.put_object(&m, schema::DEVICES, ObjType::Map)?;
    put_device(tx, &devices, device, now)
}

fn put_device(
    tx: &mut Transaction<'_>,
    devices: &ObjId,
    cert: &DeviceCert,
    now: Timestamp,
) -> Result<(), CoreError> {
    let d = tx.put_object(devices, cert.device.to_string(), ObjType::Map)?;
    tx.put(&d, "cert", cert.signature_hex())?;
    tx.put(&d, "added_at", now.as_millis())?;
    Ok(())
}
