//! Who is in, as written: members and their devices, invites and their
//! redemptions, proposals to remove someone and the consents to them. What
//! these add up to is [`crate::membership`]'s to say.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::lenient::{Also, lenient_map, or_default};
use crate::ids::{DeviceId, MemberId};
use crate::time::Timestamp;

/// Whom an invite is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InviteKind {
    /// Someone new to the circle.
    Member,
    /// Another device of the member who made the invite.
    Device,
}

impl InviteKind {
    /// The word stored and printed.
    pub const fn as_str(self) -> &'static str {
        match self {
            InviteKind::Member => "member",
            InviteKind::Device => "device",
        }
    }
}

/// One admission into the circle, as written: a member's record, or one
/// device record of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LetIn {
    /// The member's record.
    Member(MemberId),
    /// A device record of the member.
    Device(MemberId, DeviceId),
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
    /// To remove them, or to welcome them back.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "ProposalKind::is_remove"
    )]
    pub kind: ProposalKind,
    /// Which of the target's stints in the circle it is about: 0 for the
    /// first, one more for each time they came back (see
    /// [`crate::membership`]).
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "is_zero"
    )]
    pub stint: u64,
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
    /// For a recovery: the member key the person holds now, on a device
    /// with no key of the circle (see [`crate::membership`]).
    #[serde(default, with = "hex_key", skip_serializing_if = "Option::is_none")]
    pub key: Option<[u8; 32]>,
    /// For a recovery: their new device.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub device: Option<DeviceId>,
    /// For a recovery: the new key's signature over the new device (hex),
    /// as a device record keeps it.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub cert: String,
    /// For a recovery: how many hours the member's devices may refuse it
    /// once it carried.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "is_zero"
    )]
    pub wait_hours: u64,
    /// For a recovery: refusals by the member's own devices, by device.
    #[serde(
        default,
        deserialize_with = "lenient_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub refused: BTreeMap<DeviceId, Stamp>,
    /// For a recovery: set when it was carried through, once its wait was
    /// over, with the new device's record in the same change.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub completed: Option<Stamp>,
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

/// What a proposal asks the circle to agree to.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ProposalKind {
    /// That a member leave the circle.
    #[default]
    Remove,
    /// That someone removed come back.
    Welcome,
    /// That a new device, with no key of the circle, be a member's in
    /// place of the ones they lost.
    Recover,
}

impl ProposalKind {
    /// Whether it is a removal (as records written before there were
    /// welcomes are).
    pub fn is_remove(&self) -> bool {
        *self == ProposalKind::Remove
    }

    /// The word written and printed.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProposalKind::Remove => "remove",
            ProposalKind::Welcome => "welcome",
            ProposalKind::Recover => "recover",
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One member's consent to a proposal.
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

/// The circle's wait for recoveries, as the member who last set it wrote
/// it (see [`crate::membership::Recovery`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecoveryWait {
    /// Hours a member's own devices may refuse a recovery once it carried.
    #[serde(default)]
    pub hours: u64,
    /// When it was set (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// The device that set it.
    #[serde(
        default,
        rename = "__by",
        deserialize_with = "or_default",
        skip_serializing
    )]
    pub by_device: Option<DeviceId>,
}

/// When, and from which device, something was said once (a refusal of a
/// recovery, its completion).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Stamp {
    /// When (as the writing device's clock said).
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
    /// Causal position (a Lamport clock).
    #[serde(default, rename = "__order", skip_serializing)]
    pub order: u64,
}

/// An invitation recorded in the circle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Invite {
    /// The member who made it.
    pub by: MemberId,
    /// For a new member or a new device.
    pub kind: InviteKind,
    /// BLAKE3 of the secret in the ticket.
    pub secret_hash: String,
    /// The public half of the key derived from the secret
    /// ([`crate::InviteSecret::redeem_key`]), which signs a redemption the
    /// joining device writes itself; `None` for invites made before there
    /// was one, which only a member's device can redeem.
    #[serde(default, with = "hex_key", skip_serializing_if = "Option::is_none")]
    pub redeem_key: Option<[u8; 32]>,
    /// When it stops working (checked with a little tolerance for clocks).
    pub expires_at: Timestamp,
    /// How many times it can be redeemed.
    pub uses: u32,
    /// When it was made (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// What its maker called it ("for Sam"), to tell invites apart; empty
    /// when none was given.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub label: String,
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

/// A 32-byte key as the circle stores it: 64 hex characters. Anything else
/// reads as no key.
mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value as Json;

    pub(super) fn serialize<S: Serializer>(
        key: &Option<[u8; 32]>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match key {
            Some(k) => s.serialize_str(&crate::identity::hex(k)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<[u8; 32]>, D::Error> {
        let value = Json::deserialize(d)?;
        Ok(value
            .as_str()
            .and_then(crate::identity::decode_hex_exact::<32>))
    }
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
    /// Each time they left again after coming back, by the stint it ends
    /// (1 for the first time back; the first leaving is `left`).
    #[serde(
        default,
        deserialize_with = "lenient_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub leaves: BTreeMap<u64, Left>,
    /// Each time a member's ticket brought them back after they left, by
    /// the stint it starts (1 for the first time back).
    #[serde(
        default,
        deserialize_with = "lenient_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub returns: BTreeMap<u64, Returned>,
    /// The names they went by before, each change of name once, keyed by
    /// a random id (so renames made apart all stay).
    #[serde(
        default,
        deserialize_with = "lenient_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub renames: BTreeMap<String, Rename>,
    /// Causal position of their joining (a Lamport clock, never wall-clock).
    #[serde(default, rename = "__order", skip_serializing)]
    pub order: u64,
    /// The device that wrote their record: the device that let them in,
    /// or, for someone who let themselves in with an invite, their own.
    #[serde(
        default,
        rename = "__by",
        deserialize_with = "or_default",
        skip_serializing
    )]
    pub by_device: Option<DeviceId>,
    /// Values edits on devices of theirs that had not met left at their
    /// profile's fields (see [`crate::double_ups`]).
    #[serde(
        default,
        rename = "__also",
        skip_serializing,
        deserialize_with = "or_default"
    )]
    pub also: Also,
}

/// "Lee now goes by Maya": a member took another name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Rename {
    /// The name they went by until then.
    #[serde(default)]
    pub from: String,
    /// The name they took.
    #[serde(default)]
    pub to: String,
    /// When (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// Causal position (a Lamport clock), for the feed.
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

/// "Welcome back": a member's ticket brought back someone who had left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Returned {
    /// The invite whose ticket they came back with.
    pub invite: crate::ids::EntityId,
    /// When (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// Causal position (a Lamport clock), for the feed.
    #[serde(default, rename = "__order", skip_serializing)]
    pub order: u64,
    /// The device that wrote it: the one that took the ticket.
    #[serde(
        default,
        rename = "__by",
        deserialize_with = "or_default",
        skip_serializing
    )]
    pub by_device: Option<DeviceId>,
}

/// One device of a member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Device {
    /// The member's signature over this device (hex).
    pub cert: String,
    /// The member key that signed it, when it is not the one the member
    /// joined with (a key a recovery gave them); `None` for that one.
    #[serde(default, with = "hex_key", skip_serializing_if = "Option::is_none")]
    pub key: Option<[u8; 32]>,
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
    /// Causal position of its record (a Lamport clock): of a member's
    /// records beyond [`crate::membership::MAX_DEVICE_RECORDS`], the
    /// earliest count.
    #[serde(default, rename = "__order", skip_serializing)]
    pub order: u64,
    /// The device that wrote its record: another device of the member
    /// (pairing), the device that let the member in, or, for a device that
    /// let itself in with an invite, itself.
    #[serde(
        default,
        rename = "__by",
        deserialize_with = "or_default",
        skip_serializing
    )]
    pub by_device: Option<DeviceId>,
}

/// A device's revocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Revoked {
    /// When (display only).
    #[serde(default)]
    pub at: Timestamp,
    /// What the device let in that this revocation had not seen: people
    /// and devices it let in on changes the revocation does not build on.
    /// Worked out from the document's history when it is read (see
    /// [`crate::membership`], "removal wins"); never written.
    #[serde(skip)]
    pub unaware_of: BTreeSet<LetIn>,
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
