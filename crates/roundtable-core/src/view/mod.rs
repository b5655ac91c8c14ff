//! Reading a circle: the document as plain data, and its canonical JSON.
//!
//! The reader walks the document itself rather than trusting any one
//! object: where concurrent edits left several maps at one key it takes their
//! union (the winner's fields first), and an entry that does not have the
//! shape this version expects is left out rather than failing the whole view.
//! A peer's odd or newer data can therefore never hide the rest of the circle.
//!
//! - this file: [`CircleView`], reading a whole circle or some of its
//!   collections, and the canonical JSON;
//! - `membership.rs`: members and devices, invites, removals as written;
//! - `care.rs`: check-ins, moments, asks and offers, gatherings;
//! - `reader.rs`: the document as JSON, in one walk, less what was withdrawn;
//! - `lenient.rs`: typing it, leaving out what does not parse;
//! - `after.rs`: reading it again after a change, at the change's cost.

use std::collections::BTreeMap;
use std::fmt;

use automerge::{Automerge, ObjType, ROOT, ReadDoc, Value};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::identity::DeviceCert;
use crate::ids::{CircleId, EntityId, MemberId};
use crate::time::Timestamp;

mod after;
mod care;
mod lenient;
mod membership;
mod reader;

pub use care::{
    Answer, Came, Checkin, Commitment, Dish, Done, Gathering, Moment, Reply, Request, RequestKind,
    Rsvp,
};
pub use lenient::{Also, Version};
use lenient::{lenient_map, or_default};
pub use membership::{
    Away, Consent, Device, Invite, InviteKind, InviteState, Left, LetIn, Member, ProposalKind,
    RecoveryWait, Redeemed, RemovalRecord, Rename, Returned, Revoked, Withdrawn,
};
pub(crate) use reader::WITHDRAWN;
use reader::{read_tree, union};

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
    /// The wait for recoveries, once a member set one (see
    /// [`CircleView::recovery_wait_hours`]).
    #[serde(default, deserialize_with = "or_default")]
    pub recovery_wait: Option<RecoveryWait>,
}

impl Default for CircleInfo {
    fn default() -> Self {
        Self {
            id: CircleId::from_bytes([0; 16]),
            name: String::new(),
            about: String::new(),
            created_at: Timestamp::default(),
            created_by: None,
            recovery_wait: None,
        }
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

impl CircleView {
    /// Reads a whole document.
    pub fn read(doc: &Automerge) -> Self {
        let mut json = read_tree(doc, &ROOT, ObjType::Map, 0);
        reader::drop_withdrawn(&mut json);
        let mut view: CircleView = serde_json::from_value(json).unwrap_or_default();
        view.check_authors();
        crate::membership::removal_wins::note_unaware(&mut view, doc);
        view
    }

    /// Only the collections membership rests on: members, invites and removals.
    pub fn read_membership(doc: &Automerge) -> Self {
        use crate::schema::{INVITES, MEMBERS, REMOVALS};
        Self::read_collections(doc, &[MEMBERS, INVITES, REMOVALS])
    }

    /// Only the named collections, read as [`Self::read`] reads them; the
    /// rest of the view is empty. Invites are checked against members, so
    /// read the members with them.
    pub(crate) fn read_collections(doc: &Automerge, collections: &[&str]) -> Self {
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
        reader::drop_withdrawn(&mut root);
        let mut view: CircleView = serde_json::from_value(root).unwrap_or_default();
        view.check_authors();
        crate::membership::removal_wins::note_unaware(&mut view, doc);
        view
    }

    fn check_authors(&mut self) {
        // A device whose certificate does not verify does not speak for
        // anyone. One certified by a key a recovery gave its member names
        // that key; whether the key is the member's is the membership's
        // to say.
        for (member, m) in &mut self.members {
            m.devices.retain(|device, d| {
                let signer = d.key.map_or(*member, MemberId::from_bytes);
                DeviceCert::from_parts(signer, *device, &d.cert).is_ok()
            });
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

impl fmt::Display for CircleView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_canonical_json())
    }
}
