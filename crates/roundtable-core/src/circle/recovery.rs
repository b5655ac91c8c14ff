//! Vouching for a member's new device, refusing it, and carrying a
//! recovery through (see [`crate::membership`]).

use automerge::ObjType;
use automerge::transaction::Transactable;
use rand::RngCore;

use super::Circle;
use crate::doc::child_map;
use crate::error::CoreError;
use crate::identity::{DeviceCert, hex};
use crate::ids::{EntityId, MemberId};
use crate::membership::{
    MAX_RECOVERY_WAIT_HOURS, MIN_RECOVERY_WAIT_HOURS, Membership, Proposal, ProposalKind,
    ProposalState, Recovery,
};
use crate::schema;
use crate::time::Timestamp;

impl Circle {
    /// Vouches, as `by`, that `cert`'s device (certified by the new key
    /// its person holds) is `target`'s: the first vouch makes the
    /// proposal, with the wait the member's devices have to refuse it.
    /// Returns the proposal's id. Those after consent to it
    /// ([`Circle::consent_removal`]).
    #[allow(clippy::too_many_arguments)]
    pub fn propose_recovery(
        &mut self,
        by: MemberId,
        target: MemberId,
        cert: &DeviceCert,
        wait_hours: u64,
        reason: &str,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<EntityId, CoreError> {
        cert.verify()?;
        if !(MIN_RECOVERY_WAIT_HOURS..=MAX_RECOVERY_WAIT_HOURS).contains(&wait_hours) {
            return Err(CoreError::Invalid(format!(
                "the wait must be between {MIN_RECOVERY_WAIT_HOURS} and {MAX_RECOVERY_WAIT_HOURS} hours"
            )));
        }
        let membership = self.membership();
        if membership.certified.contains(&cert.device) {
            return Err(CoreError::NotAllowed(
                "that device is in the circle already; a request comes from a device new to it"
                    .into(),
            ));
        }
        if cert.member == target || membership.member_by_key(cert.member).is_some() {
            return Err(CoreError::NotAllowed(
                "that key is a member's already: whoever holds it can pair a device or join with a ticket"
                    .into(),
            ));
        }
        if let Some(p) = membership.proposals.values().find(|p| {
            p.recovery.as_ref().is_some_and(|r| r.device == cert.device)
                && matches!(p.state, ProposalState::Open | ProposalState::Carried)
        }) {
            return Err(CoreError::NotAllowed(format!(
                "someone vouched for this device already ({}); vouch with that proposal instead",
                p.id
            )));
        }
        let extra = Extra {
            cert: cert.clone(),
            wait_hours,
        };
        self.propose(
            ProposalKind::Recover,
            by,
            target,
            reason,
            Some(extra),
            now,
            rng,
        )
    }

    /// Vouches, as `by`, that `cert`'s device is `target`'s: the first
    /// vouch for the device proposes the recovery (with its wait), later
    /// ones consent to it. Returns the recovery's id.
    #[allow(clippy::too_many_arguments)]
    pub fn vouch(
        &mut self,
        by: MemberId,
        target: MemberId,
        cert: &DeviceCert,
        wait_hours: u64,
        reason: &str,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<EntityId, CoreError> {
        let open = self.standing().membership.proposals.values().find_map(|p| {
            let r = p.recovery.as_ref()?;
            (r.device == cert.device && r.key == cert.member && p.state == ProposalState::Open)
                .then_some((p.id, p.target))
        });
        match open {
            Some((id, about)) if about == target => {
                self.consent_removal(by, id, now)?;
                Ok(id)
            }
            Some(_) => Err(CoreError::NotAllowed(
                "someone vouched for this device as another member's; check with them, and with the person".into(),
            )),
            None => self.propose_recovery(by, target, cert, wait_hours, reason, now, rng),
        }
    }

    /// The circle's wait for recoveries now (see
    /// [`CircleView::recovery_wait_hours`]), read from its record alone.
    pub fn recovery_wait_hours(&self) -> u64 {
        self.view_of(&[schema::CIRCLE]).recovery_wait_hours()
    }

    /// Sets, as member `by`, how long a member's own devices may refuse a
    /// recovery from now on; recoveries already vouched for keep the wait
    /// they began with.
    pub fn set_recovery_wait(
        &mut self,
        by: MemberId,
        hours: u64,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        self.require_member(by)?;
        if !(MIN_RECOVERY_WAIT_HOURS..=MAX_RECOVERY_WAIT_HOURS).contains(&hours) {
            return Err(CoreError::Invalid(format!(
                "the wait must be between {MIN_RECOVERY_WAIT_HOURS} and {MAX_RECOVERY_WAIT_HOURS} hours (1 to 14 days)"
            )));
        }
        let info = self.info_obj()?;
        self.transact(now, "recovery wait", |tx| {
            let w = tx.put_object(&info, schema::RECOVERY_WAIT, ObjType::Map)?;
            tx.put(&w, "hours", hours)?;
            tx.put(&w, "at", now.as_millis())?;
            Ok(())
        })
    }

    /// Refuses a recovery of this device's own member (`by`): whoever
    /// asked is not them, or they have their device back.
    pub fn refuse_recovery(
        &mut self,
        by: MemberId,
        proposal: EntityId,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        self.require_member(by)?;
        let me = self.me()?;
        let membership = self.membership();
        let p = recovery_of(&membership, proposal)?;
        // A vouch made apart counts with the first: so does refusing it.
        let p = match p.recovery.as_ref().and_then(|r| r.joined) {
            Some(first) => recovery_of(&membership, first)?,
            None => p,
        };
        let proposal = p.id;
        if p.target != by || !membership.admitted.contains(&me) {
            return Err(CoreError::NotAllowed(
                "only the member's own devices can refuse a request to become theirs".into(),
            ));
        }
        let r = p.recovery.as_ref().expect("a recovery");
        if r.completed.is_some() || !matches!(p.state, ProposalState::Open | ProposalState::Carried)
        {
            return Err(CoreError::NotAllowed(format!(
                "this request is {}; nothing to refuse",
                state_words(p.state, r)
            )));
        }
        if r.refused_by.contains(&me) {
            return Err(CoreError::NotAllowed(
                "this device refused it already".into(),
            ));
        }
        let obj = self.require_entity(schema::REMOVALS, proposal, "proposal")?;
        self.transact(now, "refuse recovery", |tx| {
            let refused = child_map(tx, &obj, "refused")?;
            let s = tx.put_object(&refused, me.to_string(), ObjType::Map)?;
            tx.put(&s, "at", now.as_millis())?;
            Ok(())
        })
    }

    /// The recoveries this device (of member `by`) may carry through at
    /// `now`: vouched for, the wait over by its clock, refused by nobody.
    pub fn recoveries_due(&self, by: MemberId, now: Timestamp) -> Vec<EntityId> {
        let standing = self.standing();
        if !standing.membership.is_member(by) {
            return Vec::new();
        }
        standing
            .membership
            .proposals
            .values()
            .filter(|p| {
                p.state == ProposalState::Carried
                    && p.electorate.contains(&by)
                    && p.recovery.as_ref().is_some_and(|r| {
                        r.completed.is_none() && r.refused_by.is_empty() && r.waited(now)
                    })
            })
            .map(|p| p.id)
            .collect()
    }

    /// Carries a recovery through, as `by` (a member who could vouch):
    /// records it done and adds the new device to its member's record, in
    /// one change. Only once the wait is over by this device's clock.
    pub fn complete_recovery(
        &mut self,
        by: MemberId,
        proposal: EntityId,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        self.require_member(by)?;
        let membership = self.membership();
        let p = recovery_of(&membership, proposal)?;
        let r = p.recovery.clone().expect("a recovery");
        if !p.electorate.contains(&by) {
            return Err(CoreError::NotAllowed(
                "only a member who could vouch for it carries a recovery through".into(),
            ));
        }
        if p.state != ProposalState::Carried || r.completed.is_some() || !r.refused_by.is_empty() {
            return Err(CoreError::NotAllowed(format!(
                "this request is {}; nothing to carry through",
                state_words(p.state, &r)
            )));
        }
        if !r.waited(now) {
            return Err(CoreError::NotAllowed(
                "the member's own devices may still refuse it; it can be carried through once the wait is over"
                    .into(),
            ));
        }
        self.room_for_a_device(p.target)?;
        let record =
            self.view()
                .removals
                .get(&proposal)
                .cloned()
                .ok_or(CoreError::NoSuchEntity {
                    kind: "proposal",
                    id: proposal,
                })?;
        let member = self.require_member(p.target)?;
        let obj = self.require_entity(schema::REMOVALS, proposal, "proposal")?;
        self.transact(now, "complete recovery", |tx| {
            let done = tx.put_object(&obj, "completed", ObjType::Map)?;
            tx.put(&done, "at", now.as_millis())?;
            let devices = child_map(tx, &member, schema::DEVICES)?;
            let d = tx.put_object(&devices, r.device.to_string(), ObjType::Map)?;
            tx.put(&d, "cert", record.cert.as_str())?;
            tx.put(&d, "key", hex(r.key.as_bytes()))?;
            tx.put(&d, "added_at", now.as_millis())?;
            Ok(())
        })
    }
}

/// What a recovery's proposal writes beside a removal's.
pub(super) struct Extra {
    pub(super) cert: DeviceCert,
    pub(super) wait_hours: u64,
}

impl Extra {
    /// Writes the new key, device, certificate and wait into the
    /// proposal `obj`, and the (empty) map refusals go in.
    pub(super) fn write(
        &self,
        tx: &mut automerge::transaction::Transaction<'_>,
        obj: &automerge::ObjId,
    ) -> Result<(), automerge::AutomergeError> {
        tx.put(obj, "key", hex(self.cert.member.as_bytes()))?;
        tx.put(obj, "device", self.cert.device.to_string())?;
        tx.put(obj, "cert", self.cert.signature_hex())?;
        tx.put(obj, "wait_hours", self.wait_hours)?;
        tx.put_object(obj, "refused", ObjType::Map)?;
        Ok(())
    }
}

fn recovery_of(membership: &Membership, id: EntityId) -> Result<&Proposal, CoreError> {
    membership
        .proposals
        .get(&id)
        .filter(|p| p.kind == ProposalKind::Recover && p.recovery.is_some())
        .ok_or(CoreError::NoSuchEntity {
            kind: "recovery",
            id,
        })
}

/// Where a recovery stands, in a word or two.
fn state_words(state: ProposalState, r: &Recovery) -> &'static str {
    match state {
        _ if r.completed.is_some() && state != ProposalState::Refused => "carried through",
        ProposalState::Carried => "vouched for",
        other => other.as_str(),
    }
}
