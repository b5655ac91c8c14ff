//! Proposals: removing someone, or welcoming someone removed back, by
//! consent, and what a proposal says in words. How they count is
//! [`super::Membership`]'s to say.

use automerge::ObjType;
use automerge::transaction::Transactable;
use rand::RngCore;

use super::{Membership, Proposal, ProposalKind, ProposalState, recovery};
use crate::circle::Circle;
use crate::doc::{Maker, authored, child_map, collection};
use crate::error::CoreError;
use crate::ids::{EntityId, MemberId};
use crate::schema::{self, limits};
use crate::text::checked;
use crate::time::Timestamp;
use crate::view::CircleView;

/// The rule for removing someone, in words, as every view states it.
pub const REMOVAL_RULE: &str = "Nobody owns the table: removing someone takes a majority of the others, and never fewer than two people.";

/// The rule for welcoming back someone removed, in words, as every view
/// states it before anyone agrees.
pub const WELCOME_RULE: &str = "Welcoming back someone who was removed takes what removing them took: a majority of the others, and never fewer than two people. They come back as themselves, and the circle moves to a new key.";

/// How many consents a proposal with this electorate needs.
pub fn needed(electorate: usize) -> usize {
    (electorate / 2 + 1).max(2)
}

/// Why a proposal to remove someone could never pass with `electorate`
/// members other than the one concerned, if it could not: then it is not
/// made at all.
pub fn cannot_pass(electorate: usize) -> Option<String> {
    let needed = needed(electorate);
    (electorate < needed).then(|| {
        let others = match electorate {
            0 => "nobody else".to_owned(),
            1 => "only you".to_owned(),
            n => format!("only {n} members"),
        };
        format!(
            "removing someone takes the consent of at least {needed} members other than them, and besides them the circle has {others}, so it could never pass; if you need to part ways, you can leave the circle yourself"
        )
    })
}

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
        extra: Option<recovery::Extra>,
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

impl Proposal {
    /// What became of the proposal, in words: "Maya proposed that Lee
    /// leave the circle: ... (1 of 2 consents needed)", "Lee left the
    /// circle by consent", ...
    pub fn words(&self, view: &CircleView) -> String {
        let (by, target) = (view.name_of(&self.by), view.name_of(&self.target));
        let reason = if self.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", self.reason)
        };
        if let Some(r) = &self.recovery {
            return recovery::words(self, r, view);
        }
        if self.kind == ProposalKind::Welcome {
            return match self.state {
                ProposalState::Open => format!(
                    "{by} proposed welcoming {target} back{reason} ({} of {} consents needed so far)",
                    self.consents.len(),
                    self.needed
                ),
                ProposalState::Carried => format!(
                    "{target} was welcomed back by consent ({} of {} consented to {by}'s proposal{reason})",
                    self.consents.len(),
                    self.electorate.len()
                ),
                ProposalState::Withdrawn => {
                    format!("{by} withdrew the proposal to welcome {target} back")
                }
                ProposalState::Void | ProposalState::Refused => {
                    format!("a proposal about {target} did not count")
                }
            };
        }
        match self.state {
            ProposalState::Open => format!(
                "{by} proposed that {target} leave the circle{reason} ({} of {} consents needed so far)",
                self.consents.len(),
                self.needed
            ),
            ProposalState::Carried => format!(
                "{target} left the circle by consent ({} of {} consented to {by}'s proposal{reason})",
                self.consents.len(),
                self.electorate.len()
            ),
            ProposalState::Withdrawn => {
                format!("{by} withdrew the proposal that {target} leave the circle")
            }
            ProposalState::Void | ProposalState::Refused => {
                format!("a proposal about {target} did not count")
            }
        }
    }
}
