//! The circle's life in order.
//!
//! Entries are ordered causally — by the Lamport counter of the operation
//! that created them, then by id — never by wall-clock time, so a device
//! whose clock runs a day ahead shows the wrong time but cannot jump the
//! queue: anything written after seeing an entry comes after it everywhere.

use crate::ids::{EntityId, MemberId};
use crate::view::{
    Away, Checkin, CircleView, Gathering, Left, Member, Moment, RemovalRecord, Rename, Request,
};

/// One entry of the feed.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    /// Someone joined.
    Joined(MemberId, &'a Member),
    /// A check-in.
    Checkin(EntityId, &'a Checkin),
    /// A moment.
    Moment(EntityId, &'a Moment),
    /// An ask or offer.
    Request(EntityId, &'a Request),
    /// A gathering.
    Gathering(EntityId, &'a Gathering),
    /// Someone is stepping back for a while.
    SteppingBack(MemberId, &'a Away),
    /// Someone left the circle.
    Left(MemberId, &'a Left),
    /// Someone took another name: "Lee now goes by Maya".
    Renamed(MemberId, &'a Rename),
    /// A proposal to remove someone (what became of it: see
    /// [`crate::membership::Membership::proposals`]).
    Proposal(EntityId, &'a RemovalRecord),
}

impl Entry<'_> {
    /// Causal position.
    pub fn order(&self) -> u64 {
        match self {
            Entry::Joined(_, m) => m.order,
            Entry::Checkin(_, c) => c.order,
            Entry::Moment(_, m) => m.order,
            Entry::Request(_, r) => r.order,
            Entry::Gathering(_, g) => g.order,
            Entry::SteppingBack(_, a) => a.order,
            Entry::Left(_, l) => l.order,
            Entry::Renamed(_, r) => r.order,
            Entry::Proposal(_, p) => p.order,
        }
    }

    /// The entry's id as text (a member id for `Joined`).
    pub fn id(&self) -> String {
        match self {
            Entry::Joined(id, _) | Entry::SteppingBack(id, _) | Entry::Left(id, _) => {
                id.to_string()
            }
            Entry::Renamed(id, r) => format!("{id}-{}", r.at.as_millis()),
            Entry::Checkin(id, _)
            | Entry::Moment(id, _)
            | Entry::Request(id, _)
            | Entry::Gathering(id, _)
            | Entry::Proposal(id, _) => id.to_string(),
        }
    }

    /// What kind of entry, as printed in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Joined(..) => "joined",
            Entry::Checkin(..) => "checkin",
            Entry::Moment(..) => "moment",
            Entry::Request(_, r) => r.kind.as_str(),
            Entry::Gathering(..) => "gathering",
            Entry::SteppingBack(..) => "stepping_back",
            Entry::Left(..) => "left",
            Entry::Renamed(..) => "renamed",
            Entry::Proposal(..) => "removal_proposal",
        }
    }
}

/// Every entry, oldest first.
pub fn timeline(view: &CircleView) -> Vec<Entry<'_>> {
    let mut out: Vec<Entry<'_>> = Vec::new();
    out.extend(view.members.iter().map(|(id, m)| Entry::Joined(*id, m)));
    out.extend(view.checkins.iter().map(|(id, c)| Entry::Checkin(*id, c)));
    out.extend(view.moments.iter().map(|(id, m)| Entry::Moment(*id, m)));
    out.extend(view.requests.iter().map(|(id, r)| Entry::Request(*id, r)));
    out.extend(
        view.gatherings
            .iter()
            .map(|(id, g)| Entry::Gathering(*id, g)),
    );
    out.extend(
        view.members
            .iter()
            .filter_map(|(id, m)| Some(Entry::SteppingBack(*id, m.away.as_ref()?))),
    );
    out.extend(view.members.iter().flat_map(|(id, m)| {
        m.left
            .iter()
            .chain(m.leaves.values())
            .map(move |l| Entry::Left(*id, l))
    }));
    out.extend(
        view.members
            .iter()
            .flat_map(|(id, m)| m.renames.values().map(move |r| Entry::Renamed(*id, r))),
    );
    out.extend(view.removals.iter().map(|(id, p)| Entry::Proposal(*id, p)));
    // By causal position, then by id: the id is written out only for
    // entries of the same position, not in every comparison.
    out.sort_by(|a, b| a.order().cmp(&b.order()).then_with(|| a.id().cmp(&b.id())));
    out
}
