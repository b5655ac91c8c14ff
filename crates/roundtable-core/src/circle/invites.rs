//! Making, checking and redeeming invites (see [`crate::invite`]).

use automerge::transaction::{Transactable, Transaction};
use automerge::{ObjId, ObjType, ReadDoc, Value};
use ed25519_dalek::Signer;
use rand::RngCore;

use super::Circle;
use super::members::Admission;
use crate::doc::{Maker, authored, collection};
use crate::error::CoreError;
use crate::identity::DeviceCert;
use crate::ids::{DeviceId, EntityId, MemberId};
use crate::invite::{
    CLOCK_TOLERANCE_MS, InviteKind, InviteSecret, MAX_INVITE_LIFETIME_MS, Redemption,
    UNKNOWN_INVITE, redeem_message,
};
use crate::membership::Membership;
use crate::schema;
use crate::schema::limits;
use crate::time::Timestamp;
use crate::view::{CircleView, Invite};

impl Circle {
    /// Makes an invite; returns its id and the secret for the ticket.
    pub fn create_invite(
        &mut self,
        by: MemberId,
        kind: InviteKind,
        expires_at: Timestamp,
        uses: u32,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<(EntityId, InviteSecret), CoreError> {
        self.create_labelled_invite(by, kind, expires_at, uses, "", now, rng)
    }

    /// Makes an invite with a label its maker gives it ("for Sam"), so
    /// invites can be told apart; at most [`limits::NAME`] characters, and
    /// optional (empty: none).
    #[allow(clippy::too_many_arguments)]
    pub fn create_labelled_invite(
        &mut self,
        by: MemberId,
        kind: InviteKind,
        expires_at: Timestamp,
        uses: u32,
        label: &str,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<(EntityId, InviteSecret), CoreError> {
        self.require_member(by)?;
        let label = crate::text::checked("invite's label", label, limits::NAME, false)?;
        if uses == 0 {
            return Err(CoreError::Invalid(
                "an invite needs at least one use".into(),
            ));
        }
        if expires_at <= now {
            return Err(CoreError::Invalid(
                "an invite must expire in the future".into(),
            ));
        }
        if expires_at.as_millis() - now.as_millis() > MAX_INVITE_LIFETIME_MS {
            return Err(CoreError::Invalid(
                "an invite can stay open for at most 30 days; make a new one when it runs out"
                    .into(),
            ));
        }
        if kind == InviteKind::Device {
            self.room_for_a_device(by)?;
        }
        let id = EntityId::random(rng);
        let secret = InviteSecret::random(rng);
        let hash = secret.hash_hex();
        let redeem_key = crate::identity::hex(secret.redeem_key().verifying_key().as_bytes());
        self.transact(now, "invite", |tx| {
            let invites = collection(tx, schema::INVITES)?;
            let obj = authored(tx, &invites, id, Maker::By(by), now)?;
            tx.put(&obj, "kind", kind.as_str())?;
            tx.put(&obj, "secret_hash", hash.as_str())?;
            tx.put(&obj, "redeem_key", redeem_key.as_str())?;
            tx.put(&obj, "expires_at", expires_at.as_millis())?;
            tx.put(&obj, "uses", i64::from(uses))?;
            if !label.is_empty() {
                tx.put(&obj, "label", label)?;
            }
            tx.put_object(&obj, "redeemed", ObjType::Map)?;
            Ok(())
        })?;
        Ok((id, secret))
    }

    /// Checks an invite the way its redemption will, changing nothing.
    pub fn check_invite(
        &self,
        invite: EntityId,
        secret: &InviteSecret,
        now: Timestamp,
    ) -> Result<Invite, CoreError> {
        check(&self.view(), self.device(), invite, secret, now)
    }

    /// Redeems an invite: checks it, adds the new member (or the new device
    /// of the inviting member) and records the redemption, all in one change.
    /// Redeeming again from the same device is accepted and changes nothing,
    /// so a joiner whose connection broke can simply retry.
    pub fn redeem_invite(
        &mut self,
        r: &Redemption<'_>,
        now: Timestamp,
    ) -> Result<Invite, CoreError> {
        r.cert.verify()?;
        let view = self.view();
        if let Some(inv) = redeemed_already(&view, r) {
            return Ok(inv);
        }
        let inv = check(&view, self.device(), r.invite, r.secret, now)?;
        let admission = self.admission_for(&view, r, &inv)?;
        // A device a recovery made its member's is in already: the ticket
        // only brings it the circle, and stays unused.
        let member = Membership::from_view(&view).acting_as(r.cert.member);
        if member != r.cert.member && matches!(admission, Admission::Already) {
            return Ok(inv);
        }
        let obj = self.require_entity(schema::INVITES, r.invite, "invite")?;
        let cert = r.cert.clone();
        self.transact(now, "redeem invite", |tx| {
            put_redemption(tx, &obj, &cert, member, now, None)?;
            admission.write(tx, now)
        })?;
        self.read_invite(r.invite)
    }

    /// Lets this device in with an invite, on its own copy of the circle
    /// (a welcome), while no member's device need be there: checks the
    /// invite as [`Circle::redeem_invite`] does, then writes, in one change
    /// of this device, the redemption with its proof (signed with the
    /// invite's redeem key) and the new member with this device (or this
    /// device of the inviting member, for a device invite). The copy's
    /// writer must be this device ([`Circle::set_writer`]), the one `r`'s
    /// certificate names. Every device that receives the change judges it
    /// the same way (see the module docs). Redeeming again on the same copy
    /// changes nothing.
    pub fn redeem_self(&mut self, r: &Redemption<'_>, now: Timestamp) -> Result<Invite, CoreError> {
        r.cert.verify()?;
        if self.device() != Some(r.cert.device) {
            return Err(CoreError::Invalid(
                "a device lets only itself in: this copy of the circle must write as the device the certificate names"
                    .into(),
            ));
        }
        let view = self.view();
        if let Some(inv) = redeemed_already(&view, r) {
            return Ok(inv);
        }
        let inv = check(&view, self.device(), r.invite, r.secret, now)?;
        let key = r.secret.redeem_key();
        if inv.redeem_key != Some(key.verifying_key().to_bytes()) {
            return Err(CoreError::NotAllowed(
                "this invite can only be redeemed at a member's device (it was made before tickets could let someone in on their own); join while its maker's device is on, or ask for a new one"
                    .into(),
            ));
        }
        let admission = self.admission_for(&view, r, &inv)?;
        if matches!(admission, Admission::Return { .. }) {
            return Err(CoreError::NotAllowed(
                "you left this circle, and coming back is recorded by a member's device: join again while the member who gave you the ticket is online"
                    .into(),
            ));
        }
        let membership = Membership::from_view(&view);
        // A device a recovery made its member's is in already: the copy is
        // all it needed (as at a member's device, the ticket stays unused).
        let recovered = membership
            .member_by_key(r.cert.member)
            .is_some_and(|m| m != r.cert.member);
        if recovered && matches!(admission, Admission::Already) {
            return Ok(inv);
        }
        if membership.certified.contains(&r.cert.device) || matches!(admission, Admission::Already)
        {
            return Err(CoreError::NotAllowed(
                "this device is in the circle already, or was; a ticket cannot bring it in again"
                    .into(),
            ));
        }
        let obj = self.require_entity(schema::INVITES, r.invite, "invite")?;
        if !matches!(
            self.doc().get(&obj, "redeemed"),
            Ok(Some((Value::Object(ObjType::Map), _)))
        ) {
            return Err(CoreError::NotAllowed(
                "this invite's record is damaged; ask for a new one".into(),
            ));
        }
        let message = redeem_message(self.id(), r.invite, r.cert.device, r.cert.member, inv.kind);
        let proof = crate::identity::hex(&key.sign(&message).to_bytes());
        let cert = r.cert.clone();
        self.transact(now, "redeem invite", |tx| {
            put_redemption(tx, &obj, &cert, cert.member, now, Some((inv.kind, &proof)))?;
            admission.write(tx, now)
        })?;
        self.read_invite(r.invite)
    }

    /// Checks who a redemption would let in, and what it would write for
    /// them (the same for both ways of redeeming).
    fn admission_for(
        &self,
        view: &CircleView,
        r: &Redemption<'_>,
        inv: &Invite,
    ) -> Result<Admission, CoreError> {
        let membership = Membership::from_view(view);
        // A key a recovery gave a member speaks for that member.
        let member = membership.acting_as(r.cert.member);
        if inv.kind == InviteKind::Member && membership.removed.contains(&member) {
            return Err(CoreError::NotAllowed(
                "you were removed from this circle by consent; a ticket cannot bring you back, but the circle can welcome you back by the same consent: ask a member to propose it"
                    .into(),
            ));
        }
        let returning = inv.kind == InviteKind::Member && membership.left.contains(&member);
        if membership.departed.contains(&r.cert.device) && !returning {
            return Err(CoreError::NotAllowed(
                "this device has left the circle and cannot come back with a ticket".into(),
            ));
        }
        match inv.kind {
            // Someone who left comes back as themselves with any member's
            // ticket: their name, their history, their devices.
            InviteKind::Member if returning => {
                self.return_admission(view, &membership, r.cert, r.invite)
            }
            // A member who lost their devices and restored their member key
            // (a recovery key) comes in with any member's ticket as
            // themselves: the ticket adds this device of theirs.
            InviteKind::Member if membership.members.contains(&member) => {
                self.device_admission(r.cert)
            }
            InviteKind::Member => {
                let profile = r.profile.ok_or_else(|| {
                    CoreError::Invalid("a new member needs a name: join with --as NAME".into())
                })?;
                crate::text::checked_name("name", &profile.name)?;
                view.check_new_name(&profile.name, Some(r.cert.member))?;
                if view.members.contains_key(&r.cert.member) {
                    return Err(CoreError::NotAllowed(
                        "you were in this circle and are not now; a ticket cannot bring you back"
                            .into(),
                    ));
                }
                self.member_admission(r.cert, profile, Some(inv.by))
            }
            InviteKind::Device => {
                if member != inv.by {
                    return Err(CoreError::NotAllowed(
                        "this ticket pairs a device of the member who made it, not of someone else"
                            .into(),
                    ));
                }
                self.device_admission(r.cert)
            }
        }
    }

    /// What a member's ticket writes for someone who left: their return,
    /// starting their next stint, and the device, if it is new (their old
    /// devices come back with them; a revoked one does not).
    fn return_admission(
        &self,
        view: &CircleView,
        membership: &Membership,
        cert: &DeviceCert,
        invite: EntityId,
    ) -> Result<Admission, CoreError> {
        let member = cert.member;
        let obj = self
            .entity(schema::MEMBERS, &member.to_string())
            .ok_or_else(|| CoreError::NotAMember(format!("member {}", member.fmt_short())))?;
        if membership.revoked.contains(&cert.device) {
            return Err(CoreError::NotAllowed(
                "this device was revoked and cannot come back; join from another device".into(),
            ));
        }
        let known = view
            .members
            .get(&member)
            .is_some_and(|m| m.devices.contains_key(&cert.device));
        if !known {
            self.room_for_a_device(member)?;
        }
        Ok(Admission::Return {
            member: obj,
            stint: membership.stint_of(member) + 1,
            invite,
            device: (!known).then(|| cert.clone()),
        })
    }

    /// The invite `id` as the circle reads it now.
    fn read_invite(&self, id: EntityId) -> Result<Invite, CoreError> {
        self.view()
            .invites
            .get(&id)
            .cloned()
            .ok_or(CoreError::NoSuchEntity { kind: "invite", id })
    }
}

/// The invite, when `r`'s device redeemed it already with `r`'s secret.
fn redeemed_already(view: &CircleView, r: &Redemption<'_>) -> Option<Invite> {
    view.invites
        .get(&r.invite)
        .filter(|inv| {
            inv.redeemed.contains_key(&r.cert.device) && inv.secret_hash == r.secret.hash_hex()
        })
        .cloned()
}

/// Writes the record of `cert`'s device redeeming the invite `invite` for
/// `member` (whose key certified it), with the invite's kind and the proof
/// for a self-redemption.
fn put_redemption(
    tx: &mut Transaction<'_>,
    invite: &ObjId,
    cert: &DeviceCert,
    member: MemberId,
    now: Timestamp,
    proof: Option<(InviteKind, &str)>,
) -> Result<(), CoreError> {
    let redeemed = crate::doc::child_map(tx, invite, "redeemed")?;
    let rec = tx.put_object(&redeemed, cert.device.to_string(), ObjType::Map)?;
    tx.put(&rec, "member", member.to_string())?;
    tx.put(&rec, "at", now.as_millis())?;
    if let Some((kind, proof)) = proof {
        tx.put(&rec, "kind", kind.as_str())?;
        tx.put(&rec, "proof", proof)?;
    }
    Ok(())
}

/// Checks an invite as `here` (the device checking) sees the circle.
/// Invites whose maker has left (a revoked device, a removed member) no
/// longer work. The clock tolerance applies only when another device's
/// clock set the expiry.
fn check(
    view: &CircleView,
    here: Option<DeviceId>,
    invite: EntityId,
    secret: &InviteSecret,
    now: Timestamp,
) -> Result<Invite, CoreError> {
    let inv = view
        .invites
        .get(&invite)
        .ok_or_else(|| CoreError::NotAllowed(UNKNOWN_INVITE.into()))?;
    if inv.secret_hash != secret.hash_hex() {
        return Err(CoreError::NotAllowed(
            "this ticket's secret does not match its invite".into(),
        ));
    }
    let maker_in = inv
        .by_device
        .is_some_and(|d| Membership::from_view(view).admitted.contains(&d));
    if !maker_in {
        return Err(CoreError::NotAllowed(
            "the device that made this invite has left the circle; ask a member for a new one"
                .into(),
        ));
    }
    if inv.revoked {
        return Err(CoreError::NotAllowed(
            "this invite was revoked; ask for a new one".into(),
        ));
    }
    let tolerance = if inv.by_device.is_some() && inv.by_device == here {
        0
    } else {
        CLOCK_TOLERANCE_MS
    };
    if now.as_millis() > inv.expires_at.as_millis() + tolerance {
        return Err(CoreError::NotAllowed(
            "this invite has expired; ask for a new one".into(),
        ));
    }
    if inv.redeemed.len() >= inv.uses as usize {
        return Err(CoreError::NotAllowed(
            "this invite has been used up; ask for a new one".into(),
        ));
    }
    Ok(inv.clone())
}
