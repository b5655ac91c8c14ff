//! Taking back and changing what one wrote: check-ins, moments, asks and
//! offers, replies, commitments and dishes can be edited, and withdrawn,
//! by their author alone (received changes are held to the same rule, see
//! [`crate::shape`]).
//!
//! Withdrawing empties the entry's text in the document and marks it
//! `withdrawn`; views leave withdrawn entries out entirely, so no text of
//! theirs is shown anywhere. The change history keeps what Automerge must:
//! the earlier values stay in past changes, which a member could read with
//! tools of their own.

use crate::ids::{EntityId, MemberId};
use crate::schema::{self, limits};
use crate::view::CircleView;

/// What kind of entry an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A check-in.
    Checkin,
    /// A moment.
    Moment,
    /// An ask or an offer.
    Request,
    /// A reply to one of those.
    Reply,
    /// A commitment to an ask or offer.
    Commitment,
    /// A dish someone brings to a gathering.
    Dish,
}

impl EntryKind {
    /// In words.
    pub fn noun(self) -> &'static str {
        match self {
            EntryKind::Checkin => "check-in",
            EntryKind::Moment => "moment",
            EntryKind::Request => "ask or offer",
            EntryKind::Reply => "reply",
            EntryKind::Commitment => "commitment",
            EntryKind::Dish => "dish",
        }
    }

    /// The field that holds its words, how long they may be, and whether
    /// an edit may leave it empty.
    pub(crate) fn text_field(self) -> (&'static str, usize, bool) {
        match self {
            EntryKind::Checkin => ("note", limits::NOTE, false),
            EntryKind::Dish => ("dish", limits::NAME, true),
            _ => ("text", limits::NOTE, true),
        }
    }

    /// Fields a withdrawal empties.
    pub(crate) fn words(self) -> &'static [&'static str] {
        match self {
            EntryKind::Checkin => &["note"],
            EntryKind::Request => &["text", "when"],
            EntryKind::Dish => &["dish", "dietary"],
            _ => &["text"],
        }
    }
}

/// Where an entry sits: its path from the root, and whose it is.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) kind: EntryKind,
    pub(crate) path: Vec<String>,
    pub(crate) author: MemberId,
}

pub(crate) fn find(view: &CircleView, id: EntityId) -> Option<Found> {
    let key = id.to_string();
    let p = |parts: &[&str]| parts.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    if let Some(c) = view.checkins.get(&id) {
        return Some(Found {
            kind: EntryKind::Checkin,
            path: p(&[schema::CHECKINS, &key]),
            author: c.author,
        });
    }
    if let Some(m) = view.moments.get(&id) {
        return Some(Found {
            kind: EntryKind::Moment,
            path: p(&[schema::MOMENTS, &key]),
            author: m.author,
        });
    }
    if let Some(r) = view.requests.get(&id) {
        return Some(Found {
            kind: EntryKind::Request,
            path: p(&[schema::REQUESTS, &key]),
            author: r.author,
        });
    }
    let replies = view
        .checkins
        .iter()
        .map(|(pid, c)| (schema::CHECKINS, pid, &c.replies))
        .chain(
            view.moments
                .iter()
                .map(|(pid, m)| (schema::MOMENTS, pid, &m.replies)),
        )
        .chain(
            view.requests
                .iter()
                .map(|(pid, r)| (schema::REQUESTS, pid, &r.replies)),
        );
    for (coll, parent, rs) in replies {
        if let Some(r) = rs.get(&id) {
            return Some(Found {
                kind: EntryKind::Reply,
                path: p(&[coll, &parent.to_string(), schema::REPLIES, &key]),
                author: r.author,
            });
        }
    }
    for (parent, r) in &view.requests {
        if let Some(c) = r.commitments.get(&id) {
            return Some(Found {
                kind: EntryKind::Commitment,
                path: p(&[schema::REQUESTS, &parent.to_string(), "commitments", &key]),
                author: c.author,
            });
        }
    }
    for (parent, g) in &view.gatherings {
        if let Some(d) = g.dishes.get(&id) {
            return Some(Found {
                kind: EntryKind::Dish,
                path: p(&[schema::GATHERINGS, &parent.to_string(), "dishes", &key]),
                author: d.author,
            });
        }
    }
    None
}

/// Every id an entry one can edit or withdraw has: for looking one up by
/// the start of its id.
pub fn entry_ids(view: &CircleView) -> Vec<EntityId> {
    let mut ids: Vec<EntityId> = Vec::new();
    ids.extend(view.checkins.keys());
    ids.extend(view.moments.keys());
    ids.extend(view.requests.keys());
    for c in view.checkins.values() {
        ids.extend(c.replies.keys());
    }
    for m in view.moments.values() {
        ids.extend(m.replies.keys());
    }
    for r in view.requests.values() {
        ids.extend(r.replies.keys());
        ids.extend(r.commitments.keys());
    }
    for g in view.gatherings.values() {
        ids.extend(g.dishes.keys());
    }
    ids
}

impl CircleView {
    /// What `member` brings to a gathering, as (dish id, dish).
    pub fn dishes_of(&self, gathering: EntityId, member: MemberId) -> Vec<(EntityId, String)> {
        self.gatherings
            .get(&gathering)
            .map(|g| {
                g.dishes
                    .iter()
                    .filter(|(_, d)| d.author == member)
                    .map(|(id, d)| (*id, d.dish.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}
