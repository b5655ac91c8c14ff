//! Proposing that someone leave, or be welcomed back, consenting and
//! withdrawing (see [`crate::membership`]).

use automerge::ObjType;
use automerge::transaction::Transactable;
use rand::RngCore;

use super::Circle;
use crate::doc::{Maker, authored, child_map, collection};
use crate::error::CoreError;
use crate::ids::{EntityId, MemberId};
use crate::membership::{Membership, Proposal, ProposalKind, ProposalState, cannot_pass};
use crate::schema::{self, limits};
use crate::text::checked;
use crate::time::Timestamp;
use crate::view::CircleView;

impl Circle {
    /// Proposes to remove `target`; returns the proposal's id.
    pub fn propose_removal(
        &mut self,
        by: MemberId,
        target: MemberId,
        reason: &str,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<EntityId, CoreError> {
        self.propose(ProposalKind::Remove, by, target, reason, None, now, rng)
    }

    /// Proposes to welcome back `target`, who was removed by consent; it
    /// carries by the same rule as a removal ([`WELCOME_RULE`]). Returns
    /// the proposal's id.
    pub fn propose_welcome(
        &mut self,
        by: MemberId,
        target: MemberId,
        reason: &str,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<EntityId, CoreError> {
        self.propose(ProposalKind::Welcome, by, target, reason, None, now, rng)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn propose(
        &mut self,
        kind: ProposalKind,
        by: MemberId,
        target: MemberId,
        reason: &str,
        extra: Option<super::recovery::Extra>,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<EntityId, CoreError> {
        self.require_member(by)?;
        let reason = checked("reason", reason, limits::NOTE, false)?;
        let view = self.view();
        let membership = Membership::from_view(&view);
        match kind {
            ProposalKind::Remove | ProposalKind::Recover if !membership.is_member(target) => {
                return Err(CoreError::NotAMember(format!(
                    "member {}",
                    target.fmt_short()
                )));
            }
            ProposalKind::Welcome if membership.left.contains(&target) => {
                return Err(CoreError::NotAllowed(format!(
                    "{} left of their own accord; to come back they need only a ticket (`roundtable invite create`)",
                    view.name_of(&target)
                )));
            }
            ProposalKind::Welcome if !membership.removed.contains(&target) => {
                return Err(CoreError::NotAllowed(format!(
                    "{} is not removed from the circle, so there is nothing to welcome them back from",
                    view.name_of(&target)
                )));
            }
            _ => {}
        }
        if target == by {
            return Err(CoreError::NotAllowed(
                "to leave, step back instead (`roundtable away`); a proposal is about someone else"
                    .into(),
            ));
        }
        let stint = membership.stint_of(target);
        if let Some(p) = membership.proposals.values().find(|p| {
            p.target == target
                && p.kind == kind
                && kind != ProposalKind::Recover
                && p.stint == stint
                && p.state == ProposalState::Open
        }) {
            return Err(CoreError::NotAllowed(format!(
                "there is already an open proposal about them ({}); consent to it instead",
                p.id
            )));
        }
        let electorate: Vec<MemberId> = membership
            .members
            .iter()
            .filter(|m| **m != target)
            .copied()
            .collect();
        if let Some(why) = cannot_pass(electorate.len()) {
            return Err(CoreError::NotAllowed(why));
        }
        let id = EntityId::random(rng);
        let message = match kind {
            ProposalKind::Remove => "propose removal",
            ProposalKind::Welcome => "propose welcome back",
            ProposalKind::Recover => "vouch for a recovery",
        };
        self.transact(now, message, |tx| {
            let removals = collection(tx, schema::REMOVALS)?;
            let obj = authored(tx, &removals, id, Maker::By(by), now)?;
            tx.put(&obj, "target", target.to_string())?;
            tx.put(&obj, "reason", reason)?;
            if kind != ProposalKind::Remove {
                tx.put(&obj, "kind", kind.as_str())?;
            }
            if stint > 0 {
                tx.put(&obj, "stint", stint)?;
            }
            let e = tx.put_object(&obj, "electorate", ObjType::Map)?;
            for m in &electorate {
                tx.put(&e, m.to_string(), true)?;
            }
            tx.put_object(&obj, "consents", ObjType::Map)?;
            if let Some(extra) = &extra {
                extra.write(tx, &obj)?;
            }
            Ok(())
        })?;
        Ok(id)
    }

    fn open_proposal(&self, id: EntityId) -> Result<(Proposal, CircleView), CoreError> {
        let view = self.view();
        let membership = Membership::from_view(&view);
        let p = membership
            .proposals
            .get(&id)
            .cloned()
            .ok_or(CoreError::NoSuchEntity {
                kind: "proposal",
                id,
            })?;
        match p.state {
            ProposalState::Open => Ok((p, view)),
            other => Err(CoreError::NotAllowed(format!(
                "this proposal is {}; nothing more to do",
                other.as_str()
            ))),
        }
    }

    /// Consents to a proposal, as `by` (this device's member).
    pub fn consent_removal(
        &mut self,
        by: MemberId,
        proposal: EntityId,
        now: Timestamp,
    ) -> Result<ProposalState, CoreError> {
        self.require_member(by)?;
        let me = self.me()?;
        let (p, _) = self.open_proposal(proposal)?;
        if by == p.target {
            return Err(CoreError::NotAllowed(
                "this proposal is about you; it is for the others to decide".into(),
            ));
        }
        if !p.electorate.contains(&by) {
            return Err(CoreError::NotAllowed(
                "you joined after this proposal was made, so it is not yours to decide".into(),
            ));
        }
        if p.consents.contains(&by) {
            return Err(CoreError::NotAllowed(
                "you have already consented to this proposal".into(),
            ));
        }
        let obj = self.require_entity(schema::REMOVALS, proposal, "proposal")?;
        self.transact(now, "consent to removal", |tx| {
            let consents = child_map(tx, &obj, "consents")?;
            let c = tx.put_object(&consents, me.to_string(), ObjType::Map)?;
            tx.put(&c, "member", by.to_string())?;
            tx.put(&c, "at", now.as_millis())?;
            Ok(())
        })?;
        Ok(self
            .membership()
            .proposals
            .get(&proposal)
            .map_or(ProposalState::Open, |p| p.state))
    }

    /// Withdraws a proposal `by` made.
    pub fn withdraw_removal(
        &mut self,
        by: MemberId,
        proposal: EntityId,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        self.require_member(by)?;
        let (p, _) = self.open_proposal(proposal)?;
        if p.by != by {
            return Err(CoreError::NotAllowed(
                "only the member who proposed it can withdraw a proposal".into(),
            ));
        }
        let obj = self.require_entity(schema::REMOVALS, proposal, "proposal")?;
        self.transact(now, "withdraw removal", |tx| {
            let w = tx.put_object(&obj, "withdrawn", ObjType::Map)?;
            tx.put(&w, "at", now.as_millis())?;
            Ok(())
        })
    }
}
