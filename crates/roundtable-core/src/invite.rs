//! Invitations: how someone new, or a new device of a member, comes in.
//!
//! An invite is a record in the circle (who made it, for a new member or a
//! new device, until when, how many uses) holding only the BLAKE3 hash of a
//! random secret, and the public half of a key derived from that secret
//! (its *redeem key*, [`InviteSecret::redeem_key`]). The secret itself
//! travels in the ticket, to the person invited; the circle's keys never
//! do. Every redemption is recorded in the document, so every device
//! agrees on what was used. An invite is redeemed in one of two ways:
//!
//! - **At a member's device** ([`Circle::redeem_invite`]): the joiner
//!   brings the secret over an authenticated connection, and the member's
//!   device checks the invite, records the redemption and adds the new
//!   member (or the new device of the inviting member) in one change of its
//!   own.
//! - **By the joining device itself** ([`Circle::redeem_self`]): the joiner
//!   holds a copy of the circle handed over with the ticket (a welcome left
//!   where it can be fetched while every member's device is off) and
//!   writes, in one change of its own device, the redemption, signed with
//!   the redeem key (`proof`), and its own record: the new member with this
//!   device, or this device of the inviting member (whose member key came
//!   with the welcome). Invites made before there were redeem keys have
//!   none, and only the first way redeems them.
//!
//! **A member's ticket also brings back someone who lost their devices.**
//! A person who restored their member key from its recovery key
//! ([`crate::MemberKey::from_words`]) on a new device redeems any member's
//! ticket as themselves: where they are in the circle, the ticket adds
//! this device of theirs (certified by their member key) rather than a new
//! member, either way above.
//!
//! **A member's ticket also brings back someone who left**, at a member's
//! device only: the device that takes the ticket records the redemption
//! and the return to their next stint (`returns/<stint>`) in one change,
//! and their old devices come back with them. Someone removed comes back
//! only by the consent that removed them (see [`crate::membership`]):
//! their ticket is refused, with words that say so.
//!
//! **Every device judges a self-redemption alike.** Its device is admitted
//! nowhere yet, so the change is taken in (see [`crate::authorship`]) only
//! when it is exactly a valid self-redemption, judged by the circle the
//! change builds on (its own history) and nothing else: its device is the
//! one its redemption and its certificate name, and was never in the
//! circle; the proof verifies under the invite's redeem key; the invite,
//! made by a device (still admitted) of the member it names, is neither
//! revoked nor used up in that history; the change writes the redemption
//! and that one member's (or device's) record and nothing else; a new
//! member is new to that history (so nobody removed, or who left, comes
//! back this way); a device a member's ticket brings in for someone
//! already in goes into their devices record, certified by them; and a
//! paired device is certified by the invite's maker, still a member.
//! Anything else is refused like any change its device may not make. Once in, the device's later changes are judged as any
//! member's. Who counts when redemptions of one invite meet is
//! [`crate::membership`]'s rule, the same for both ways.
//!
//! **Expiry is enforced where the welcome is handed out**, never by the
//! devices that receive a redemption: they share no clock. A member's
//! device refuses an expired ticket (within [`CLOCK_TOLERANCE_MS`]), and a
//! steward keeping a sealed welcome drops it when its invite expires; a
//! self-redemption that reaches the circle counts if its invite was not
//! revoked or used up in its history.

use ed25519_dalek::SigningKey;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::identity::DeviceCert;
use crate::ids::{CircleId, DeviceId, EntityId, MemberId};
use crate::people::Profile;
pub use crate::view::InviteKind;

/// How far apart two devices' clocks may be when an expiry is checked.
pub const CLOCK_TOLERANCE_MS: i64 = 10 * 60 * 1000;

/// What a device says of an invite it does not know, in every case, so an
/// outsider learns nothing of which circles or invites it holds.
pub const UNKNOWN_INVITE: &str =
    "this invite is not known to the circle (it may have been revoked)";

mod self_redemption;
pub(crate) use self_redemption::lets_itself_in;

/// The context of the key derivation from an invite's secret to its redeem key.
const REDEEM_KEY_CONTEXT: &str = "roundtable 2026 invite redeem key v1";
/// Domain separation for the proof of a self-redemption.
const REDEEM_CONTEXT: &[u8] = b"roundtable/redeem/1";

/// What the redeem key signs to let `device` (of `member`) in with invite
/// `invite` of `circle`: `"roundtable/redeem/1" ‖ circle ‖ invite ‖ device ‖
/// member ‖ kind` (the kind's word last).
pub fn redeem_message(
    circle: CircleId,
    invite: EntityId,
    device: DeviceId,
    member: MemberId,
    kind: InviteKind,
) -> Vec<u8> {
    [
        REDEEM_CONTEXT,
        circle.as_bytes(),
        invite.as_bytes(),
        device.as_bytes(),
        member.as_bytes(),
        kind.as_str().as_bytes(),
    ]
    .concat()
}

/// The longest an invite may stay open: thirty days.
pub const MAX_INVITE_LIFETIME_MS: i64 = 30 * 24 * 60 * 60 * 1000;

/// The secret half of an invite, carried by the ticket. Zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteSecret(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for InviteSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteSecret(..)")
    }
}

impl InviteSecret {
    /// A fresh random secret.
    pub fn random(rng: &mut impl RngCore) -> Self {
        let mut b = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(b.as_mut());
        Self(b)
    }

    /// From its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// What the circle stores: the hash, never the secret.
    pub fn hash_hex(&self) -> String {
        blake3::hash(self.0.as_ref()).to_hex().to_string()
    }

    /// The key that signs a redemption the joining device writes itself
    /// (see the module docs). Its public half is in the invite's record;
    /// only someone who holds the secret can sign with it.
    pub fn redeem_key(&self) -> SigningKey {
        let seed = Zeroizing::new(blake3::derive_key(REDEEM_KEY_CONTEXT, self.0.as_ref()));
        SigningKey::from_bytes(&seed)
    }
}

/// What someone redeeming an invite brings.
#[derive(Debug, Clone)]
pub struct Redemption<'a> {
    /// The invite's id.
    pub invite: EntityId,
    /// Its secret.
    pub secret: &'a InviteSecret,
    /// The redeeming device, certified by its member.
    pub cert: &'a DeviceCert,
    /// For a new member: how they want to be called.
    pub profile: Option<&'a Profile>,
}
