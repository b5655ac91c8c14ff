//! What people share: check-ins and replies, moments, asks and offers with
//! the commitments to them, gatherings with their answers and dishes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lenient::{Also, Version, lenient_map, or_default};
use crate::ids::{EntityId, MemberId};
use crate::mood::Mood;
use crate::time::Timestamp;

/// "How I am doing."
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Checkin {
    /// Who checked in.
    pub author: MemberId,
    /// One of four words.
    pub mood: Mood,
    /// What they said.
    #[serde(default)]
    pub note: String,
    /// When (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// Replies, in words.
    #[serde(default, deserialize_with = "lenient_map")]
    pub replies: BTreeMap<EntityId, Reply>,
    /// Values concurrent edits left at its fields, by field (see
    /// [`crate::double_ups`]).
    #[serde(
        default,
        rename = "__also",
        skip_serializing,
        deserialize_with = "or_default"
    )]
    pub also: Also,
    /// Causal position (a Lamport clock, never wall-clock).
    #[serde(default, rename = "__order", skip_serializing)]
    pub order: u64,
}

/// A reply in words. There is no count of replies anywhere, on purpose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Reply {
    /// Who replied.
    pub author: MemberId,
    /// What they said.
    pub text: String,
    /// When (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// Values concurrent edits left at its fields, by field (see
    /// [`crate::double_ups`]).
    #[serde(
        default,
        rename = "__also",
        skip_serializing,
        deserialize_with = "or_default"
    )]
    pub also: Also,
    /// Causal position (a Lamport clock, never wall-clock).
    #[serde(default, rename = "__order", skip_serializing)]
    pub order: u64,
}

/// A milestone or an ordinary Tuesday.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Moment {
    /// Who shared it.
    pub author: MemberId,
    /// What happened.
    pub text: String,
    /// When (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// Replies, in words.
    #[serde(default, deserialize_with = "lenient_map")]
    pub replies: BTreeMap<EntityId, Reply>,
    /// Values concurrent edits left at its fields, by field (see
    /// [`crate::double_ups`]).
    #[serde(
        default,
        rename = "__also",
        skip_serializing,
        deserialize_with = "or_default"
    )]
    pub also: Also,
    /// Causal position (a Lamport clock, never wall-clock).
    #[serde(default, rename = "__order", skip_serializing)]
    pub order: u64,
}

/// Whether a request asks for help or offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestKind {
    /// "Could someone ...?"
    Ask,
    /// "I can ..."
    Offer,
}

impl RequestKind {
    /// The word stored and printed.
    pub const fn as_str(self) -> &'static str {
        match self {
            RequestKind::Ask => "ask",
            RequestKind::Offer => "offer",
        }
    }

    /// "asks", "offers": what its author does, in a sentence.
    pub const fn verb(self) -> &'static str {
        match self {
            RequestKind::Ask => "asks",
            RequestKind::Offer => "offers",
        }
    }
}

/// An ask for help or an offer of it. Asking is wisdom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Request {
    /// Ask or offer.
    pub kind: RequestKind,
    /// Who asked or offered.
    pub author: MemberId,
    /// What is needed or offered.
    pub text: String,
    /// When it is needed or available, in their words ("Tuesday evening").
    #[serde(default)]
    pub when: String,
    /// When it was posted (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// How many people an ask needs (1 unless it says; left out of the
    /// JSON when 1).
    #[serde(
        default = "one",
        deserialize_with = "hands",
        skip_serializing_if = "is_one"
    )]
    pub hands: u32,
    /// People saying "I'll do it", each in their own words; concurrent
    /// commitments are all kept.
    #[serde(default, deserialize_with = "lenient_map")]
    pub commitments: BTreeMap<EntityId, Commitment>,
    /// Set once the author closed it, with their thanks.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub done: Option<Done>,
    /// Replies, in words.
    #[serde(default, deserialize_with = "lenient_map")]
    pub replies: BTreeMap<EntityId, Reply>,
    /// Values concurrent edits left at its fields, by field (see
    /// [`crate::double_ups`]).
    #[serde(
        default,
        rename = "__also",
        skip_serializing,
        deserialize_with = "or_default"
    )]
    pub also: Also,
    /// Causal position (a Lamport clock, never wall-clock).
    #[serde(default, rename = "__order", skip_serializing)]
    pub order: u64,
}

/// "I'll bring soup Tuesday."
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Commitment {
    /// Who committed.
    pub author: MemberId,
    /// What they said they would do.
    pub text: String,
    /// When (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// Values concurrent edits left at its fields, by field (see
    /// [`crate::double_ups`]).
    #[serde(
        default,
        rename = "__also",
        skip_serializing,
        deserialize_with = "or_default"
    )]
    pub also: Also,
    /// Causal position (a Lamport clock, never wall-clock).
    #[serde(default, rename = "__order", skip_serializing)]
    pub order: u64,
}

/// The loop closed, with thanks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Done {
    /// When (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// The author's thanks, in words.
    #[serde(default)]
    pub thanks: String,
}

/// A shared meal or other gathering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Gathering {
    /// What it is.
    pub title: String,
    /// When it starts, with its time zone (RFC 9557, e.g.
    /// `2026-11-24T19:00:00-05:00[America/New_York]`).
    pub starts: String,
    /// Where.
    #[serde(default)]
    pub place: String,
    /// Who is hosting.
    #[serde(default, deserialize_with = "lenient_map")]
    pub hosts: BTreeMap<MemberId, bool>,
    /// Who proposed it.
    pub author: MemberId,
    /// When it was proposed (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// Each member's answer; their latest word stands.
    #[serde(default, deserialize_with = "lenient_map")]
    pub rsvps: BTreeMap<MemberId, Rsvp>,
    /// Whether the potluck asks for one of each dish, so the same dish
    /// twice is a double-up.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub one_of_each: bool,
    /// Potluck: who brings what.
    #[serde(default, deserialize_with = "lenient_map")]
    pub dishes: BTreeMap<EntityId, Dish>,
    /// Who came.
    #[serde(default, deserialize_with = "lenient_map")]
    pub came: BTreeMap<MemberId, Came>,
    /// Values concurrent edits left at its fields, by field (see
    /// [`crate::double_ups`]).
    #[serde(
        default,
        rename = "__also",
        skip_serializing,
        deserialize_with = "or_default"
    )]
    pub also: Also,
    /// Causal position (a Lamport clock, never wall-clock).
    #[serde(default, rename = "__order", skip_serializing)]
    pub order: u64,
}

/// One, the hands an ask needs unless it says.
fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// Hands as written: a number from 1 to [`crate::schema::limits::HANDS`];
/// anything else reads as one.
fn hands<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = serde_json::Value::deserialize(d)?.as_u64().unwrap_or(1);
    Ok(u32::try_from(n)
        .ok()
        .filter(|n| (1..=crate::schema::limits::HANDS).contains(n))
        .unwrap_or(1))
}

impl Gathering {
    /// The start as a zoned time, if it parses.
    pub fn starts_zoned(&self) -> Option<jiff::ZonedDateTime> {
        self.starts.parse().ok()
    }

    /// When it starts, if the time parses.
    pub fn starts_at(&self) -> Option<Timestamp> {
        self.starts_zoned()
            .map(|z| Timestamp::from_millis(z.timestamp().as_millisecond()))
    }
}

/// Yes, no or maybe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    /// Coming.
    Yes,
    /// Not coming.
    No,
    /// Not sure yet.
    Maybe,
}

impl Answer {
    /// The word stored and printed.
    pub const fn as_str(self) -> &'static str {
        match self {
            Answer::Yes => "yes",
            Answer::No => "no",
            Answer::Maybe => "maybe",
        }
    }
}

/// A member's answer to a gathering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Rsvp {
    /// Yes, no or maybe.
    pub answer: Answer,
    /// When they answered (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// A word with it ("running late").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// When the member answered on devices that had not met, each answer
    /// as written (the one that stands first).
    #[serde(
        default,
        rename = "__versions",
        skip_serializing,
        deserialize_with = "or_default"
    )]
    pub versions: Vec<Version<Rsvp>>,
}

/// Something someone brings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Dish {
    /// Who brings it.
    pub author: MemberId,
    /// What.
    pub dish: String,
    /// Dietary notes ("vegan", "has nuts").
    #[serde(default)]
    pub dietary: String,
    /// When they said so (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// Values concurrent edits left at its fields, by field (see
    /// [`crate::double_ups`]).
    #[serde(
        default,
        rename = "__also",
        skip_serializing,
        deserialize_with = "or_default"
    )]
    pub also: Also,
}

/// Someone was there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Came {
    /// Who marked it.
    pub marked_by: MemberId,
    /// When (display only).
    #[serde(default)]
    pub at: Timestamp,
}
