//! The shape of a circle's Automerge document, and the rule for changing it.
//!
//! ```text
//! ROOT
//! ├─ schema: uint                       SCHEMA_VERSION of the newest writer's format
//! ├─ circle: { id, name, about, created_at, created_by,
//! │            recovery_wait: { hours, at }, stewards: { ... } }
//! ├─ members:     { <member id>: { name, pronouns, remember, story, joined_at,
//! │                                invited_by, devices: { <device id>: { cert, added_at } },
//! │                                renames: { <at>-<device>: { from, to, at } } } }
//! ├─ checkins:    { <entity id>: { author, mood, note, at, replies: { <entity id>: reply } } }
//! ├─ moments:     { <entity id>: { author, text, at, replies } }
//! ├─ requests:    { <entity id>: { kind: ask|offer, ... } }      asks and offers
//! ├─ gatherings:  { <entity id>: { ... } }
//! ├─ invites:     { <entity id>: { ... } }
//! └─ removals:    { <entity id>: { ... } }
//! ```
//!
//! Rules that keep concurrent edits meaningful:
//!
//! - Entities live in maps under random [`EntityId`](crate::EntityId)s (or
//!   under the member/device id they describe), never in lists, so two devices
//!   adding at once can never shift each other's meaning.
//! - Every collection above is created in the circle's first change, which all
//!   devices share (the document travels with the invite; it is never
//!   recreated). A collection added by a later schema version may be created
//!   by two devices at once; readers therefore take the *union* of all
//!   conflicting maps found at a key (see `view`), and writers add to the
//!   winning one, so no entry is lost either way.
//! - A field edited concurrently resolves to one value, chosen the same way on
//!   every device (Automerge's rule); readers never depend on which.
//!
//! Versions: `schema` holds the format version of the newest writer. A change
//! within a version only *adds* optional fields or collections, which older
//! readers ignore. A build refuses to *write* to a circle whose `schema` is
//! newer than [`SCHEMA_VERSION`] (it can still read it), and a build that
//! migrates writes the new number in the same change as the migration, which
//! must itself be additive and idempotent, because several devices may run it
//! concurrently.

/// The newest document format this build writes.
pub const SCHEMA_VERSION: u64 = 1;

pub(crate) const SCHEMA: &str = "schema";
pub(crate) const CIRCLE: &str = "circle";
pub(crate) const MEMBERS: &str = "members";
pub(crate) const DEVICES: &str = "devices";
/// A member's changes of name, each said to everyone.
pub(crate) const RENAMES: &str = "renames";
/// Each time a member left again after coming back, by stint.
pub(crate) const LEAVES: &str = "leaves";
/// Each time a member's ticket brought back someone who had left, by stint.
pub(crate) const RETURNS: &str = "returns";
pub(crate) const CHECKINS: &str = "checkins";
pub(crate) const REPLIES: &str = "replies";
pub(crate) const MOMENTS: &str = "moments";
pub(crate) const REQUESTS: &str = "requests";
pub(crate) const GATHERINGS: &str = "gatherings";
pub(crate) const INVITES: &str = "invites";
pub(crate) const REMOVALS: &str = "removals";
/// The circle's wait for recoveries, in its record: `{ hours, at }`.
pub(crate) const RECOVERY_WAIT: &str = "recovery_wait";

/// Every top-level collection, created in the circle's first change.
pub(crate) const COLLECTIONS: [&str; 7] = [
    MEMBERS, CHECKINS, MOMENTS, REQUESTS, GATHERINGS, INVITES, REMOVALS,
];

/// Limits on text, in characters, so one edit cannot bloat everyone's copy.
pub mod limits {
    /// A circle's or a member's name.
    pub const NAME: usize = 100;
    /// Pronouns.
    pub const PRONOUNS: usize = 40;
    /// Short free text: a check-in note, a reply, "what I'd like you to remember".
    pub const NOTE: usize = 4_000;
    /// Long free text: a member's story, a circle's about.
    pub const STORY: usize = 20_000;
    /// The most hands an ask may say it needs.
    pub const HANDS: u32 = 20;
}
