//! What the membership says in words: who came back and how, and what a
//! member removed by consent is told.

use super::*;

impl Membership {
    /// "Welcomed back by Maya on 3 Dec", or "welcomed back by consent of
    /// Maya and Sam on 4 Dec": the last time `member` came back, as the
    /// people page says it; `None` for someone in their first stint.
    pub fn back_words(&self, view: &CircleView, member: MemberId) -> Option<String> {
        let back = self.returns.get(&member)?.last()?;
        let mut names: Vec<String> = back.by.iter().map(|m| view.name_of(m)).collect();
        names.sort();
        let who = match names.as_slice() {
            [] => "the others".to_owned(),
            [one] => one.clone(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        };
        let how = if back.proposal.is_some() {
            "by consent of "
        } else {
            "by "
        };
        Some(format!(
            "welcomed back {how}{who} on {}",
            crate::people::day_month(back.at)
        ))
    }

    /// What a member removed by consent is told, in one sentence, the same
    /// on every device and in every app: "You are no longer in Tuesday
    /// Supper: Maya and Sam agreed to remove you on 3 Dec. Your copy is
    /// kept; you can read it but not write." `None` unless `member` was
    /// removed by consent in this copy. The day is that of the last
    /// consent the removal counted (UTC, display only).
    pub fn removal_notice(&self, view: &CircleView, member: MemberId) -> Option<String> {
        if !self.removed.contains(&member) {
            return None;
        }
        let circle = crate::people::clean_name(&view.circle.name);
        let circle = if circle.is_empty() {
            "this circle".to_owned()
        } else {
            circle
        };
        let carried = self
            .proposals
            .values()
            .filter(|p| {
                p.target == member
                    && p.kind == ProposalKind::Remove
                    && p.stint == self.stint_of(member)
                    && p.state == ProposalState::Carried
            })
            .min_by_key(|p| (p.at, p.id));
        let Some(p) = carried else {
            return Some(format!(
                "You are no longer in {circle}: the others agreed to remove you. {KEPT}"
            ));
        };
        let when = last_consent(view, p);
        let mut names: Vec<String> = p.consents.iter().map(|m| view.name_of(m)).collect();
        names.sort();
        let who = match names.as_slice() {
            [] => "the others".to_owned(),
            [one] => one.clone(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        };
        Some(format!(
            "You are no longer in {circle}: {who} agreed to remove you on {}. {KEPT}",
            crate::people::day_month(when)
        ))
    }
}

/// What a removed member keeps, as every notice ends.
const KEPT: &str = "Your copy is kept; you can read it but not write.";

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
