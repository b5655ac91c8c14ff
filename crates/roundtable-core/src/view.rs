//! Reading a circle: the document as plain data, and its canonical JSON.
//!
//! The reader walks the document itself rather than trusting any one
//! object: where concurrent edits left several maps at one key it takes their
//! union (the winner's fields first), and an entry that does not have the
//! shape this version expects is left out rather than failing the whole view.
//! A peer's odd or newer data can therefore never hide the rest of the circle.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use automerge::iter::{DocItem, DocObjItem};
use automerge::{ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value as Json;

use crate::identity::DeviceCert;
use crate::ids::{CircleId, DeviceId, EntityId, MemberId};
use crate::mood::Mood;
use crate::time::Timestamp;

/// The key under which the reader records an object's causal position.
const ORDER: &str = "__order";
/// The key under which the reader records the device that made an object
/// (its Automerge actor), so rules can check who wrote what.
const BY: &str = "__by";

/// Everything in a circle. Serializes to the canonical JSON of `show --json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CircleView {
    /// Format version written by the newest writer.
    #[serde(default)]
    pub schema: u64,
    /// Name, about, and when it began.
    #[serde(default, deserialize_with = "or_default")]
    pub circle: CircleInfo,
    /// The people in the circle, by member id.
    #[serde(default, deserialize_with = "lenient_map")]
    pub members: BTreeMap<MemberId, Member>,
    /// Check-ins, by id.
    #[serde(default, deserialize_with = "lenient_map")]
    pub checkins: BTreeMap<EntityId, Checkin>,
    /// Moments: milestones and ordinary days.
    #[serde(default, deserialize_with = "lenient_map")]
    pub moments: BTreeMap<EntityId, Moment>,
    /// Asks and offers of help.
    #[serde(default, deserialize_with = "lenient_map")]
    pub requests: BTreeMap<EntityId, Request>,
    /// Shared meals and other gatherings.
    #[serde(default, deserialize_with = "lenient_map")]
    pub gatherings: BTreeMap<EntityId, Gathering>,
    /// Invitations, by id (only the hash of each secret is here).
    #[serde(default, deserialize_with = "lenient_map")]
    pub invites: BTreeMap<EntityId, Invite>,
    /// Proposals to remove a member, as written (see [`crate::membership`]
    /// for what they add up to).
    #[serde(default, deserialize_with = "lenient_map")]
    pub removals: BTreeMap<EntityId, RemovalRecord>,
}

/// A proposal to remove a member, as written in the circle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RemovalRecord {
    /// Whom it would remove.
    pub target: MemberId,
    /// Who proposed it.
    pub by: MemberId,
    /// In the proposer's words.
    #[serde(default)]
    pub reason: String,
    /// When (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// The members whose consent counts, as the proposer saw the circle.
    #[serde(default, deserialize_with = "lenient_map")]
    pub electorate: BTreeMap<MemberId, bool>,
    /// Consents, by the consenting device.
    #[serde(default, deserialize_with = "lenient_map")]
    pub consents: BTreeMap<DeviceId, Consent>,
    /// Set when the proposer withdrew it.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub withdrawn: Option<Withdrawn>,
    /// Causal position (a Lamport clock).
    #[serde(default, rename = "__order", skip_serializing)]
    pub order: u64,
    /// The device that wrote it.
    #[serde(
        default,
        rename = "__by",
        deserialize_with = "or_default",
        skip_serializing
    )]
    pub by_device: Option<DeviceId>,
}

/// One member's consent to a removal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Consent {
    /// The member consenting.
    pub member: MemberId,
    /// When (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// The device that wrote it.
    #[serde(
        default,
        rename = "__by",
        deserialize_with = "or_default",
        skip_serializing
    )]
    pub by_device: Option<DeviceId>,
}

/// A withdrawal of a proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Withdrawn {
    /// When (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// The device that wrote it.
    #[serde(
        default,
        rename = "__by",
        deserialize_with = "or_default",
        skip_serializing
    )]
    pub by_device: Option<DeviceId>,
}

/// An invitation recorded in the circle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Invite {
    /// The member who made it.
    pub by: MemberId,
    /// For a new member or a new device.
    pub kind: crate::invite::InviteKind,
    /// BLAKE3 of the secret in the ticket.
    pub secret_hash: String,
    /// When it stops working (checked with a little tolerance for clocks).
    pub expires_at: Timestamp,
    /// How many times it can be redeemed.
    pub uses: u32,
    /// When it was made (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// Set when someone withdrew it.
    #[serde(default)]
    pub revoked: bool,
    /// Devices that redeemed it, and their members.
    #[serde(default, deserialize_with = "lenient_map")]
    pub redeemed: BTreeMap<DeviceId, Redeemed>,
    /// The device that wrote it: an invite counts only when this is a
    /// device of the member it names as `by`.
    #[serde(
        default,
        rename = "__by",
        deserialize_with = "or_default",
        skip_serializing
    )]
    pub by_device: Option<DeviceId>,
}

/// One redemption of an invite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Redeemed {
    /// The member who came in (or whose device did).
    pub member: MemberId,
    /// When (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// Causal position (a Lamport clock): of concurrent redemptions beyond
    /// an invite's uses, the earliest count (see [`crate::membership`]).
    #[serde(default, rename = "__order", skip_serializing)]
    pub order: u64,
}

/// The circle itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CircleInfo {
    /// Its id.
    pub id: CircleId,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// What it is about.
    #[serde(default)]
    pub about: String,
    /// When it was created (display only).
    #[serde(default)]
    pub created_at: Timestamp,
    /// Who created it.
    #[serde(default, deserialize_with = "or_default")]
    pub created_by: Option<MemberId>,
}

impl Default for CircleInfo {
    fn default() -> Self {
        Self {
            id: CircleId::from_bytes([0; 16]),
            name: String::new(),
            about: String::new(),
            created_at: Timestamp::default(),
            created_by: None,
        }
    }
}

/// A member of the circle, in their own words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Member {
    /// Their name.
    pub name: String,
    /// Their pronouns.
    #[serde(default)]
    pub pronouns: String,
    /// "What I'd like you to remember about me."
    #[serde(default)]
    pub remember: String,
    /// Their unfinished story.
    #[serde(default)]
    pub story: String,
    /// When they joined (display only).
    #[serde(default)]
    pub joined_at: Timestamp,
    /// Who invited them; nobody for the founder.
    #[serde(default, deserialize_with = "or_default")]
    pub invited_by: Option<MemberId>,
    /// Their devices, each certified by their member key.
    #[serde(default, deserialize_with = "lenient_map")]
    pub devices: BTreeMap<DeviceId, Device>,
    /// Set while they are stepping back for a while.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub away: Option<Away>,
    /// Set when they left the circle of their own accord.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub left: Option<Left>,
    /// Causal position of their joining (a Lamport clock, never wall-clock).
    #[serde(default, rename = "__order", skip_serializing)]
    pub order: u64,
}

/// "I'm stepping back for a while."
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Away {
    /// Since when (display only).
    #[serde(default)]
    pub since: Timestamp,
    /// Until when, if they said.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub until: Option<Timestamp>,
    /// What they said.
    #[serde(default)]
    pub note: String,
    /// Causal position (a Lamport clock), for the feed.
    #[serde(default, rename = "__order", skip_serializing)]
    pub order: u64,
}

/// "I'm leaving the circle."
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Left {
    /// When (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// Causal position (a Lamport clock), for the feed.
    #[serde(default, rename = "__order", skip_serializing)]
    pub order: u64,
}

/// One device of a member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Device {
    /// The member's signature over this device (hex).
    pub cert: String,
    /// When it was added (display only).
    #[serde(default)]
    pub added_at: Timestamp,
    /// What the device calls itself ("Ana's phone"); empty until it says.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Set when another device of the member revoked it.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub revoked: Option<Revoked>,
}

/// A device's revocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Revoked {
    /// When (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// Causal position (a Lamport clock).
    #[serde(default, rename = "__order", skip_serializing)]
    pub order: u64,
    /// The device that wrote it.
    #[serde(
        default,
        rename = "__by",
        deserialize_with = "or_default",
        skip_serializing
    )]
    pub by_device: Option<DeviceId>,
}

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
    /// Potluck: who brings what.
    #[serde(default, deserialize_with = "lenient_map")]
    pub dishes: BTreeMap<EntityId, Dish>,
    /// Who came.
    #[serde(default, deserialize_with = "lenient_map")]
    pub came: BTreeMap<MemberId, Came>,
    /// Causal position (a Lamport clock, never wall-clock).
    #[serde(default, rename = "__order", skip_serializing)]
    pub order: u64,
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

/// How long after its start a gathering still counts as upcoming: people
/// are there.
pub const UPCOMING_FOR_MS: i64 = 6 * 3_600_000;

impl CircleView {
    /// Gatherings still to come (or under way), soonest first.
    pub fn upcoming(&self, now: Timestamp) -> Vec<(&EntityId, &Gathering)> {
        let horizon = now.as_millis() - UPCOMING_FOR_MS;
        let mut items: Vec<_> = self
            .gatherings
            .iter()
            .filter_map(|(id, g)| {
                let t = g.starts_at()?.as_millis();
                (t >= horizon).then_some((t, id, g))
            })
            .collect();
        items.sort_by_key(|(t, id, _)| (*t, **id));
        items.into_iter().map(|(_, id, g)| (id, g)).collect()
    }

    /// Gatherings that are over, most recent first.
    pub fn past_gatherings(&self, now: Timestamp) -> Vec<(&EntityId, &Gathering)> {
        let horizon = now.as_millis() - UPCOMING_FOR_MS;
        let mut items: Vec<_> = self
            .gatherings
            .iter()
            .filter_map(|(id, g)| {
                let t = g.starts_at().map_or(i64::MIN, |t| t.as_millis());
                (t < horizon).then_some((t, id, g))
            })
            .collect();
        items.sort_by_key(|(t, id, _)| (std::cmp::Reverse(*t), **id));
        items.into_iter().map(|(_, id, g)| (id, g)).collect()
    }
}

/// Where an invite stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteState {
    /// It still lets people in.
    Open,
    /// Its maker withdrew it.
    Revoked,
    /// Every use is taken.
    UsedUp,
    /// Past its expiry.
    Expired,
}

impl InviteState {
    /// "open", "revoked", "used up", "expired".
    pub fn as_str(self) -> &'static str {
        match self {
            InviteState::Open => "open",
            InviteState::Revoked => "revoked",
            InviteState::UsedUp => "used up",
            InviteState::Expired => "expired",
        }
    }
}

impl Invite {
    /// Where it stands at `now`.
    pub fn state(&self, now: Timestamp) -> InviteState {
        if self.revoked {
            InviteState::Revoked
        } else if self.redeemed.len() >= self.uses as usize {
            InviteState::UsedUp
        } else if now.as_millis() > self.expires_at.as_millis() {
            InviteState::Expired
        } else {
            InviteState::Open
        }
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

impl CircleView {
    /// Reads a whole document.
    pub fn read(doc: &impl ReadDoc) -> Self {
        let mut json = read_tree(doc, &ROOT, ObjType::Map, 0);
        crate::entries::drop_withdrawn(&mut json);
        let mut view: CircleView = serde_json::from_value(json).unwrap_or_default();
        view.check_authors();
        view
    }

    /// Only the collections membership rests on: members, invites and removals.
    pub fn read_membership(doc: &impl ReadDoc) -> Self {
        use crate::schema::{INVITES, MEMBERS, REMOVALS};
        Self::read_collections(doc, &[MEMBERS, INVITES, REMOVALS])
    }

    /// Only the named collections, read as [`Self::read`] reads them; the
    /// rest of the view is empty. Invites are checked against members, so
    /// read the members with them.
    pub(crate) fn read_collections(doc: &impl ReadDoc, collections: &[&str]) -> Self {
        let mut root = serde_json::Map::new();
        for collection in collections {
            let Ok(all) = doc.get_all(&ROOT, *collection) else {
                continue;
            };
            let merged = all
                .into_iter()
                .rev()
                .filter_map(|(v, id)| match v {
                    Value::Object(k) => Some(read_tree(doc, &id, k, 1)),
                    Value::Scalar(_) => None,
                })
                .reduce(union);
            if let Some(m) = merged {
                root.insert((*collection).into(), m);
            }
        }
        let mut root = Json::Object(root);
        crate::entries::drop_withdrawn(&mut root);
        let mut view: CircleView = serde_json::from_value(root).unwrap_or_default();
        view.check_authors();
        view
    }

    fn check_authors(&mut self) {
        // A device whose certificate does not verify does not speak for anyone.
        for (member, m) in &mut self.members {
            m.devices
                .retain(|device, d| DeviceCert::from_parts(*member, *device, &d.cert).is_ok());
        }
        // An invite speaks for the member it names only when a device of
        // that member wrote it; any other is no invite at all.
        let members = &self.members;
        self.invites.retain(|_, inv| {
            inv.by_device.is_some_and(|d| {
                members
                    .get(&inv.by)
                    .is_some_and(|m| m.devices.contains_key(&d))
            })
        });
    }

    /// The canonical JSON: keys sorted at every level, maps ordered by id,
    /// two-space indentation, a final newline. Identical state gives identical bytes.
    pub fn to_canonical_json(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or(Json::Null);
        let mut out = serde_json::to_string_pretty(&canonicalize(value)).unwrap_or_default();
        out.push('\n');
        out
    }
}

/// Sorts object keys at every level, whatever map type serde_json was built with.
pub fn canonicalize(value: Json) -> Json {
    match value {
        Json::Object(map) => {
            let sorted: BTreeMap<String, Json> =
                map.into_iter().map(|(k, v)| (k, canonicalize(v))).collect();
            Json::Object(sorted.into_iter().collect())
        }
        Json::Array(items) => Json::Array(items.into_iter().map(canonicalize).collect()),
        other => other,
    }
}

/// Deep enough for any shape this schema has; deeper data is not ours.
const MAX_DEPTH: usize = 16;

/// Reads a map and everything under it as JSON, the way [`read_object`]
/// does, in one pass over the document: Automerge walks every object below
/// `obj` once, and only keys with concurrent values, and objects other than
/// maps, are looked up again.
fn read_tree(doc: &impl ReadDoc, obj: &ObjId, kind: ObjType, depth: usize) -> Json {
    if kind != ObjType::Map {
        return read_object(doc, obj, kind, depth);
    }
    let mut maps: HashMap<ObjId, Slots> = HashMap::new();
    // Automerge gives an object's keys one after another.
    let mut current: Option<(std::sync::Arc<ObjId>, Slots)> = None;
    for DocObjItem { obj, item } in doc.iter_at(obj, None) {
        let DocItem::Map(item) = item else { continue };
        if current.as_ref().is_none_or(|(o, _)| **o != *obj) {
            if let Some((o, slots)) = current.take() {
                maps.entry((*o).clone()).or_default().extend(slots);
            }
            current = Some((obj, Vec::new()));
        }
        let id = item.id();
        let slot = match (item.conflict, item.value.into_value()) {
            (true, _) => Slot::Conflict,
            (false, Value::Object(k)) => Slot::Object(k, id),
            (false, Value::Scalar(s)) => Slot::Scalar(scalar(&s)),
        };
        if let Some((_, slots)) = &mut current {
            slots.push((item.key.into_owned(), slot));
        }
    }
    if let Some((o, slots)) = current {
        maps.entry((*o).clone()).or_default().extend(slots);
    }
    build(doc, &maps, obj, depth)
}

/// What one pass saw in a map, key by key.
type Slots = Vec<(String, Slot)>;

/// What one pass saw at a map's key.
enum Slot {
    Scalar(Json),
    Object(ObjType, ObjId),
    /// Concurrent values: looked up again, all of them.
    Conflict,
}

/// Puts together the JSON of a map from what [`read_tree`] gathered.
fn build(doc: &impl ReadDoc, maps: &HashMap<ObjId, Slots>, obj: &ObjId, depth: usize) -> Json {
    if depth > MAX_DEPTH {
        return Json::Null;
    }
    let mut out = serde_json::Map::new();
    for (key, slot) in maps.get(obj).into_iter().flatten() {
        let json = match slot {
            Slot::Scalar(j) => Some(j.clone()),
            Slot::Object(ObjType::Map, id) => Some(mark(build(doc, maps, id, depth + 1), id)),
            Slot::Object(k, id) => Some(read_value(doc, Value::Object(*k), id, depth, true)),
            Slot::Conflict => read_key(doc, obj, key, depth),
        };
        if let Some(j) = json {
            out.insert(key.clone(), j);
        }
    }
    Json::Object(out)
}

/// A map read from inside a map, marked with its causal position and maker.
fn mark(mut json: Json, id: &ObjId) -> Json {
    if let (Json::Object(m), ObjId::Id(counter, actor, _)) = (&mut json, id) {
        m.insert(ORDER.into(), Json::from(*counter));
        m.insert(BY.into(), Json::String(actor.to_hex_string()));
    }
    json
}

/// Reads an object as JSON. At a key with several concurrent maps, the
/// winner's fields come first and the others fill in what it lacks.
///
/// A map is read in one pass over its keys; only a key where concurrent
/// edits left several values is looked up again for all of them.
fn read_object(doc: &impl ReadDoc, obj: &ObjId, kind: ObjType, depth: usize) -> Json {
    if depth > MAX_DEPTH {
        return Json::Null;
    }
    match kind {
        ObjType::Map | ObjType::Table => {
            let mut out = serde_json::Map::new();
            for item in doc.map_range(obj, ..) {
                let id = item.id();
                let json = if item.conflict {
                    read_key(doc, obj, &item.key, depth)
                } else {
                    Some(read_value(doc, item.value.into_value(), &id, depth, true))
                };
                if let Some(j) = json {
                    out.insert(item.key.into_owned(), j);
                }
            }
            Json::Object(out)
        }
        ObjType::List => Json::Array(
            doc.list_range(obj, ..)
                .map(|item| {
                    let id = item.id();
                    read_value(doc, item.value.into_value(), &id, depth, false)
                })
                .collect(),
        ),
        ObjType::Text => Json::String(doc.text(obj).unwrap_or_default()),
    }
}

/// Every value concurrent edits left at `key`, merged: the winner's fields
/// first, the others filling in what it lacks.
fn read_key(doc: &impl ReadDoc, obj: &ObjId, key: &str, depth: usize) -> Option<Json> {
    let mut all = doc.get_all(obj, key).ok()?;
    // Automerge's winner is the last of the conflicting values.
    let winner = all.pop();
    winner
        .into_iter()
        .chain(all)
        .map(|(value, id)| read_value(doc, value, &id, depth, true))
        .reduce(union)
}

/// One value as JSON. A map in a map is marked with its causal position
/// and its maker (`marked`); maps in lists are not.
fn read_value(
    doc: &impl ReadDoc,
    value: Value<'_>,
    id: &ObjId,
    depth: usize,
    marked: bool,
) -> Json {
    match value {
        Value::Object(k) => {
            let j = read_object(doc, id, k, depth + 1);
            if marked { mark(j, id) } else { j }
        }
        Value::Scalar(s) => scalar(&s),
    }
}

/// `first` with whatever `other` has that `first` lacks, recursively.
/// Only maps merge: when the winner is a scalar, the winner stands.
fn union(first: Json, other: Json) -> Json {
    match (first, other) {
        (Json::Object(mut a), Json::Object(b)) => {
            for (k, vb) in b {
                let merged = match a.remove(&k) {
                    Some(va) => union(va, vb),
                    None => vb,
                };
                a.insert(k, merged);
            }
            Json::Object(a)
        }
        (first, _) => first,
    }
}

fn scalar(s: &ScalarValue) -> Json {
    match s {
        ScalarValue::Str(s) => Json::String(s.to_string()),
        ScalarValue::Int(i) => Json::from(*i),
        ScalarValue::Uint(u) => Json::from(*u),
        ScalarValue::F64(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        ScalarValue::Counter(c) => Json::from(i64::from(c)),
        ScalarValue::Timestamp(t) => Json::from(*t),
        ScalarValue::Boolean(b) => Json::Bool(*b),
        ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } | ScalarValue::Null => Json::Null,
    }
}

/// Deserializes a map, leaving out entries whose key or value does not parse.
fn lenient_map<'de, D, K, V>(d: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: FromStr + Ord,
    V: DeserializeOwned,
{
    let raw = match Json::deserialize(d)? {
        Json::Object(m) => m,
        _ => return Ok(BTreeMap::new()),
    };
    Ok(raw
        .into_iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, serde_json::from_value(v).ok()?)))
        .collect())
}

/// Deserializes a value, falling back to its default if it does not parse.
fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(serde_json::from_value(Json::deserialize(d)?).unwrap_or_default())
}

impl fmt::Display for CircleView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_canonical_json())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use automerge::transaction::Transactable;
    use automerge::{ActorId, Automerge};
    use proptest::prelude::*;

    use super::*;

    /// The reader as it was first written: every key looked up with all its
    /// values. The one-pass reader must say exactly what this says.
    fn by_key(doc: &Automerge, obj: &ObjId, kind: ObjType, depth: usize) -> Json {
        if depth > MAX_DEPTH {
            return Json::Null;
        }
        let value = |value: Value<'_>, id: ObjId, mark: bool| match value {
            Value::Object(k) => {
                let mut j = by_key(doc, &id, k, depth + 1);
                if let (true, Json::Object(m), ObjId::Id(counter, actor, _)) = (mark, &mut j, &id) {
                    m.insert(ORDER.into(), Json::from(*counter));
                    m.insert(BY.into(), Json::String(actor.to_hex_string()));
                }
                j
            }
            Value::Scalar(s) => scalar(&s),
        };
        match kind {
            ObjType::Map | ObjType::Table => {
                let mut out = serde_json::Map::new();
                for key in doc.keys(obj) {
                    let mut all = doc.get_all(obj, key.as_str()).unwrap();
                    let winner = all.pop();
                    let merged = winner
                        .into_iter()
                        .chain(all)
                        .map(|(v, id)| value(v, id, true))
                        .reduce(union);
                    if let Some(j) = merged {
                        out.insert(key, j);
                    }
                }
                Json::Object(out)
            }
            ObjType::List => Json::Array(
                (0..doc.length(obj))
                    .filter_map(|i| doc.get(obj, i).unwrap())
                    .map(|(v, id)| value(v, id, false))
                    .collect(),
            ),
            ObjType::Text => Json::String(doc.text(obj).unwrap()),
        }
    }

    /// One edit of a random document: a scalar, a map, a list or a text at
    /// one of a few keys, somewhere among the maps already there.
    fn edit(doc: &mut Automerge, path: &[u8], key: u8, what: u8) {
        let mut tx = doc.transaction();
        let mut obj = ROOT;
        for step in path {
            let maps: Vec<ObjId> = tx
                .map_range(&obj, ..)
                .filter(|i| matches!(i.value, automerge::ValueRef::Object(ObjType::Map)))
                .map(|i| i.id())
                .collect();
            if maps.is_empty() {
                break;
            }
            obj = maps[usize::from(*step) % maps.len()].clone();
        }
        let key = format!("k{}", key % 4);
        match what % 6 {
            0 => drop(tx.put(&obj, &key, i64::from(what))),
            1 => drop(tx.put(&obj, &key, format!("s{what}"))),
            2 => {
                let m = tx.put_object(&obj, &key, ObjType::Map).unwrap();
                tx.put(&m, "x", i64::from(what)).unwrap();
            }
            3 => {
                let l = tx.put_object(&obj, &key, ObjType::List).unwrap();
                let m = tx.insert_object(&l, 0, ObjType::Map).unwrap();
                tx.put(&m, "y", "in a list").unwrap();
                tx.insert(&l, 1, true).unwrap();
            }
            4 => {
                let t = tx.put_object(&obj, &key, ObjType::Text).unwrap();
                tx.splice_text(&t, 0, 0, "words").unwrap();
            }
            _ => drop(tx.delete(&obj, &key)),
        }
        tx.commit();
    }

    proptest! {
        /// Three copies edit apart (so keys hold conflicting values and
        /// concurrent maps), merge, and both readers agree on every copy.
        #[test]
        fn one_pass_reads_what_key_by_key_reads(
            edits in prop::collection::vec((0usize..3, prop::collection::vec(any::<u8>(), 0..3), any::<u8>(), any::<u8>(), any::<bool>()), 1..40)
        ) {
            let mut copies: Vec<Automerge> = (0..3u8)
                .map(|i| Automerge::new().with_actor(ActorId::from(vec![i + 1; 16])))
                .collect();
            for (copy, path, key, what, merge) in edits {
                edit(&mut copies[copy], &path, key, what);
                if merge {
                    let mut other = copies[(copy + 1) % 3].clone();
                    copies[copy].merge(&mut other).unwrap();
                }
            }
            for doc in &copies {
                let expected = by_key(doc, &ROOT, ObjType::Map, 0);
                prop_assert_eq!(&read_object(doc, &ROOT, ObjType::Map, 0), &expected);
                prop_assert_eq!(&read_tree(doc, &ROOT, ObjType::Map, 0), &expected);
            }
        }
    }
}
