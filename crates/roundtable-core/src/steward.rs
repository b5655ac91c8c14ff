//! Stewards: always-on peers that keep a circle's changes sealed, so
//! devices that are never awake at the same time still meet.
//!
//! A steward never holds the circle's key. What it keeps for a circle is a
//! *locker* (a random id the circle's steward record holds, so only those
//! who hold the circle know it), and in it one *shelf* per circle key: the
//! shelf's name is the verifying half of an ed25519 key derived from the
//! epoch's circle key ([`ShelfKey`]), so a device proves it holds the key
//! by signing, and the steward checks the signature without learning the
//! key. A removed member holds only the keys of epochs before the removal:
//! the shelves of later keys are names they cannot compute and proofs they
//! cannot make, so they get nothing new.
//!
//! What lies on a shelf is sealed under the key ([`ShelfKey::seal`]): the
//! device's changes with the signed heads that prove them, a snapshot of
//! the whole circle that supersedes what it covers, or the key of a later
//! epoch boxed to each device still in ([`KeyBox`]), so a device asleep
//! while the circle moved on finds its way to the new shelf. A steward can
//! withhold, delay, replay or drop; it cannot forge, because every change
//! is checked as a change from any peer is ([`crate::authorship`]).
//!
//! The circle records its stewards (`circle.stewards.<id>`): any member
//! may add one and any member may stop the circle using one; both are
//! written down with who did it, for everyone to see ([`StewardRecord`]).
//! Every device holds each change to those records to what this module
//! writes (see [`crate::shape`]): a record is added in its writer's own
//! name, keeps its ticket, steward, locker and who added it, and gains
//! only a removal, once, in its writer's own name; nothing is deleted.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::authorship::SignedHead;
use crate::identity::DeviceKey;
use crate::ids::{CircleId, DeviceId};
use crate::keys::{EpochKey, KeyOffer};

pub(crate) mod records;
mod welcome;

use records::hex;
pub use records::{LockerId, MAX_STEWARD_RECORDS, MAX_STEWARDS, MAX_TICKET, StewardRecord};
pub use welcome::{WaitingWelcome, WelcomeSlot, slot_of_token};

const ACCESS_CONTEXT: &str = "roundtable 2026 steward shelf access v1";
const AEAD_CONTEXT: &str = "roundtable 2026 steward shelf aead v1";
const BOX_CONTEXT: &str = "roundtable 2026 steward key box v1";
const PROOF_CONTEXT: &[u8] = b"roundtable/steward/open/1";
const SEAL_CONTEXT: &[u8] = b"roundtable/shelf/1";
/// What lies on a shelf, as the steward sees it: which kind of sealed
/// thing (the kind is bound into the seal, so a steward cannot relabel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum ShelfKind {
    /// A device's changes and the heads that prove them.
    Changes = 0,
    /// The whole circle, superseding what lay on the shelf before it.
    Snapshot = 1,
    /// A later key, boxed to each device still in. Never superseded.
    Keys = 2,
}

impl ShelfKind {
    /// From its byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Changes),
            1 => Some(Self::Snapshot),
            2 => Some(Self::Keys),
            _ => None,
        }
    }

    /// A short word for file names and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Changes => "changes",
            Self::Snapshot => "snapshot",
            Self::Keys => "keys",
        }
    }

    /// From [`Self::as_str`].
    pub fn from_word(s: &str) -> Option<Self> {
        [Self::Changes, Self::Snapshot, Self::Keys]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// What a shelf item holds once opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShelfItem {
    /// Changes (Automerge change chunks, concatenated) and the signed
    /// heads that prove them.
    Changes {
        /// The changes.
        changes: Vec<u8>,
        /// Their proofs.
        heads: Vec<SignedHead>,
    },
    /// The whole circle (`save()`) and the signed heads that prove it.
    Snapshot {
        /// The document.
        doc: Vec<u8>,
        /// Its proofs.
        heads: Vec<SignedHead>,
    },
    /// A later key of the circle, boxed to each device still in.
    Keys {
        /// The device that boxed it.
        from: [u8; 32],
        /// One box per device.
        boxes: Vec<KeyBox>,
    },
}

impl ShelfItem {
    /// Its kind.
    pub fn kind(&self) -> ShelfKind {
        match self {
            Self::Changes { .. } => ShelfKind::Changes,
            Self::Snapshot { .. } => ShelfKind::Snapshot,
            Self::Keys { .. } => ShelfKind::Keys,
        }
    }
}

/// A key offer sealed from one device to another (X25519 of their device
/// keys, XChaCha20-Poly1305 through `crypto_box`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyBox {
    /// For whom.
    pub to: [u8; 32],
    /// The box's nonce.
    pub nonce: [u8; 24],
    /// The sealed offer.
    pub sealed: Vec<u8>,
}

/// Why a shelf item did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShelfError {
    /// Too short, or not sealed under this key for this locker and kind
    /// (tampered with, another circle's, another shelf's).
    #[error("does not open under this circle's key")]
    Unopenable,
    /// Opened, but not a shelf item.
    #[error("opened, but is not a shelf item")]
    Malformed,
    /// Opened, but of another kind than the steward said.
    #[error("is of another kind than labelled")]
    WrongKind,
}

/// The key that opens one shelf: derived from one circle key.
pub struct ShelfKey {
    signing: SigningKey,
    aead: Zeroizing<[u8; 32]>,
    /// The epoch of the circle key it is derived from.
    pub epoch: u64,
}

impl std::fmt::Debug for ShelfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ShelfKey(epoch {}, {})",
            self.epoch,
            &hex(&self.shelf())[..12]
        )
    }
}

impl ShelfKey {
    /// The shelf key of `circle` under one of its circle keys.
    pub fn of(circle: CircleId, key: &EpochKey) -> Self {
        let input = Zeroizing::new([key.secret().as_slice(), circle.as_bytes()].concat());
        let seed = Zeroizing::new(blake3::derive_key(ACCESS_CONTEXT, &input));
        let aead = Zeroizing::new(blake3::derive_key(AEAD_CONTEXT, &input));
        Self {
            signing: SigningKey::from_bytes(&seed),
            aead,
            epoch: key.epoch,
        }
    }

    /// The shelf's name: the verifying key a steward checks proofs with.
    pub fn shelf(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// Proves to `steward` that `device` holds this key, for `locker`.
    pub fn proof(&self, steward: &[u8; 32], locker: &LockerId, device: &[u8; 32]) -> Vec<u8> {
        let shelf = self.shelf();
        self.signing
            .sign(&proof_message(steward, locker, &shelf, device))
            .to_bytes()
            .to_vec()
    }

    /// Seals an item for this shelf of `locker`.
    pub fn seal(&self, locker: &LockerId, item: &ShelfItem, rng: &mut impl RngCore) -> Vec<u8> {
        let plain = Zeroizing::new(postcard::to_stdvec(item).expect("shelf items always encode"));
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        let ct = XChaCha20Poly1305::new(self.aead.as_ref().into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &self.aad(locker, item.kind()),
                },
            )
            .expect("encryption of a bounded plaintext does not fail");
        [nonce.as_slice(), &ct].concat()
    }

    /// Opens an item of this shelf of `locker`, labelled `kind` by the
    /// steward. Never panics, whatever the bytes.
    pub fn open(
        &self,
        locker: &LockerId,
        kind: ShelfKind,
        bytes: &[u8],
    ) -> Result<ShelfItem, ShelfError> {
        let (nonce, ct) = bytes
            .split_first_chunk::<24>()
            .ok_or(ShelfError::Unopenable)?;
        let plain = XChaCha20Poly1305::new(self.aead.as_ref().into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: &self.aad(locker, kind),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| ShelfError::Unopenable)?;
        let item: ShelfItem = postcard::from_bytes(&plain).map_err(|_| ShelfError::Malformed)?;
        if item.kind() != kind {
            return Err(ShelfError::WrongKind);
        }
        Ok(item)
    }

    fn aad(&self, locker: &LockerId, kind: ShelfKind) -> Vec<u8> {
        [SEAL_CONTEXT, &locker.0, &self.shelf(), &[kind as u8]].concat()
    }
}

fn proof_message(
    steward: &[u8; 32],
    locker: &LockerId,
    shelf: &[u8; 32],
    device: &[u8; 32],
) -> Vec<u8> {
    [PROOF_CONTEXT, steward, &locker.0, shelf, device].concat()
}

/// Whether `proof` shows that `device` holds the key of `shelf`, for this
/// steward and locker (what a steward checks; it needs no key).
pub fn verify_proof(
    steward: &[u8; 32],
    locker: &LockerId,
    shelf: &[u8; 32],
    device: &[u8; 32],
    proof: &[u8],
) -> bool {
    let (Ok(vk), Ok(sig)) = (VerifyingKey::from_bytes(shelf), <[u8; 64]>::try_from(proof)) else {
        return false;
    };
    vk.verify_strict(
        &proof_message(steward, locker, shelf, device),
        &Signature::from_bytes(&sig),
    )
    .is_ok()
}

fn box_cipher(me: &DeviceKey, them: &[u8; 32]) -> Option<crypto_box::ChaChaBox> {
    let their = VerifyingKey::from_bytes(them)
        .ok()?
        .to_montgomery()
        .to_bytes();
    let mine = Zeroizing::new(me.signing_key().to_scalar_bytes());
    Some(crypto_box::ChaChaBox::new(
        &crypto_box::PublicKey::from(their),
        &crypto_box::SecretKey::from(*mine),
    ))
}

/// Boxes `offer` from this device to `to`.
pub fn box_key(
    offer: &KeyOffer,
    me: &DeviceKey,
    to: DeviceId,
    rng: &mut impl RngCore,
) -> Option<KeyBox> {
    use crypto_box::aead::Aead as _;
    let cipher = box_cipher(me, to.as_bytes())?;
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let plain = Zeroizing::new(postcard::to_stdvec(offer).ok()?);
    let msg = [BOX_CONTEXT.as_bytes(), &plain].concat();
    let sealed = cipher.encrypt((&nonce).into(), msg.as_slice()).ok()?;
    Some(KeyBox {
        to: *to.as_bytes(),
        nonce,
        sealed,
    })
}

/// Opens a box `from` made for this device; `None` if it is not for this
/// device or does not open.
pub fn open_key_box(b: &KeyBox, from: &[u8; 32], me: &DeviceKey) -> Option<KeyOffer> {
    use crypto_box::aead::Aead as _;
    if b.to != *me.id().as_bytes() {
        return None;
    }
    let plain = box_cipher(me, from)?
        .decrypt((&b.nonce).into(), b.sealed.as_slice())
        .ok()
        .map(Zeroizing::new)?;
    let body = plain.strip_prefix(BOX_CONTEXT.as_bytes())?;
    postcard::from_bytes(body).ok()
}

/// What a batch of changes (or a saved document) covers: the devices
/// that wrote them, and their heads (the changes no other in the batch
/// builds on). Never panics; `None` when the bytes are no changes.
pub fn covered_by(
    bytes: &[u8],
) -> Option<(
    std::collections::BTreeSet<DeviceId>,
    Vec<automerge::ChangeHash>,
)> {
    let changes = crate::equivocation::changes_in(bytes).ok()?;
    let mut devices = std::collections::BTreeSet::new();
    let mut deps = std::collections::BTreeSet::new();
    for c in &changes {
        if let Some((d, _)) = crate::actors::device_of(c.actor_id()) {
            devices.insert(d);
        }
        deps.extend(c.deps().iter().copied());
    }
    let heads = changes
        .iter()
        .map(|c| c.hash())
        .filter(|h| !deps.contains(h))
        .collect();
    Some((devices, heads))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand_chacha::ChaCha20Rng {
        rand_chacha::ChaCha20Rng::seed_from_u64(7)
    }

    #[test]
    fn a_shelf_item_opens_only_under_its_key_locker_and_kind() {
        let mut rng = rng();
        let circle = CircleId::random(&mut rng);
        let dev = DeviceKey::from_seed(&[1; 32]);
        let k1 = EpochKey::random(circle, 0, &dev, &mut rng);
        let k2 = EpochKey::random(circle, 1, &dev, &mut rng);
        let (s1, s2) = (ShelfKey::of(circle, &k1), ShelfKey::of(circle, &k2));
        assert_ne!(s1.shelf(), s2.shelf());
        let locker = LockerId::random(&mut rng);
        let item = ShelfItem::Changes {
            changes: vec![1, 2, 3],
            heads: vec![],
        };
        let sealed = s1.seal(&locker, &item, &mut rng);
        assert_eq!(s1.open(&locker, ShelfKind::Changes, &sealed), Ok(item));
        assert_eq!(
            s2.open(&locker, ShelfKind::Changes, &sealed),
            Err(ShelfError::Unopenable)
        );
        assert_eq!(
            s1.open(&LockerId([0; 16]), ShelfKind::Changes, &sealed),
            Err(ShelfError::Unopenable)
        );
        assert_eq!(
            s1.open(&locker, ShelfKind::Snapshot, &sealed),
            Err(ShelfError::Unopenable)
        );
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x40;
            assert!(s1.open(&locker, ShelfKind::Changes, &bad).is_err());
        }
        assert!(s1.open(&locker, ShelfKind::Changes, &sealed[..20]).is_err());
        // Another circle's key of the same bytes is another shelf.
        let other = ShelfKey::of(CircleId::random(&mut rng), &k1);
        assert_ne!(other.shelf(), s1.shelf());
    }

    #[test]
    fn a_proof_holds_only_for_its_steward_locker_and_device() {
        let mut rng = rng();
        let circle = CircleId::random(&mut rng);
        let dev = DeviceKey::from_seed(&[1; 32]);
        let key = ShelfKey::of(circle, &EpochKey::random(circle, 0, &dev, &mut rng));
        let locker = LockerId::random(&mut rng);
        let (steward, device) = ([9; 32], [3; 32]);
        let proof = key.proof(&steward, &locker, &device);
        let shelf = key.shelf();
        assert!(verify_proof(&steward, &locker, &shelf, &device, &proof));
        assert!(!verify_proof(&[8; 32], &locker, &shelf, &device, &proof));
        assert!(!verify_proof(
            &steward,
            &LockerId([1; 16]),
            &shelf,
            &device,
            &proof
        ));
        assert!(!verify_proof(&steward, &locker, &shelf, &[4; 32], &proof));
        assert!(!verify_proof(&steward, &locker, &[7; 32], &device, &proof));
        assert!(!verify_proof(
            &steward,
            &locker,
            &shelf,
            &device,
            &proof[..63]
        ));
    }

    #[test]
    fn a_key_box_opens_only_for_its_device_from_its_maker() {
        let mut rng = rng();
        let circle = CircleId::random(&mut rng);
        let a = DeviceKey::from_seed(&[1; 32]);
        let b = DeviceKey::from_seed(&[2; 32]);
        let c = DeviceKey::from_seed(&[3; 32]);
        let key = EpochKey::random(circle, 4, &a, &mut rng);
        let offer = crate::keys::Keyring::with(key)
            .offer()
            .expect("a signed key offers");
        let boxed = box_key(&offer, &a, b.id(), &mut rng).expect("boxes");
        let opened = open_key_box(&boxed, a.id().as_bytes(), &b).expect("opens for b");
        assert_eq!(opened.key, offer.key);
        assert!(opened.verify(circle));
        assert!(open_key_box(&boxed, a.id().as_bytes(), &c).is_none());
        let mut for_c = boxed.clone();
        for_c.to = *c.id().as_bytes();
        assert!(open_key_box(&for_c, a.id().as_bytes(), &c).is_none());
        assert!(open_key_box(&boxed, c.id().as_bytes(), &b).is_none());
    }
}
