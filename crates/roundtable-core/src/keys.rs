//! Circle keys by epoch, and the sealed envelopes that travel on gossip.
//!
//! Every epoch (see [`crate::membership`]) has one symmetric circle key. A
//! device that learns of a new epoch makes a *candidate* key at once, so it
//! never goes a moment without one; devices hand their candidates to each
//! other over authenticated sync connections, and everyone settles on the
//! candidate made by the smallest device id. The key is never derived from
//! the document (a removed member has the document) and never travels in a
//! ticket. Only the current epoch's keys are kept.
//!
//! A candidate counts only as made by the device that signed it: its maker
//! signs the epoch and a hash of the key ([`KeyOffer::verify`]), so a
//! member relaying keys cannot pass one off as another device's. A device
//! that signs two candidates for one epoch (say, to give different peers
//! different keys) is settled deterministically: of its candidates, the one
//! with the smallest key hash counts, and every device that sees both picks
//! the same one.
//!
//! An envelope is encrypted with XChaCha20-Poly1305 under a key derived from
//! the circle key, bound to the circle id, the epoch and the sending device
//! (as associated data), padded to one of a few sizes, and signed by the
//! sending device. [`open`] checks all of that and says which check failed;
//! it never panics on any input.

use std::collections::{HashSet, VecDeque};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, VerifyingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::CoreError;
use crate::identity::{DeviceKey, KeyKind, parse_key_file};
use crate::ids::{CircleId, DeviceId};
use crate::wire::{self, Body};

const KEY_FILE_PREFIX: &str = "roundtable-circle-keys-3";
/// Key files of the version before candidates were signed.
const KEY_FILE_PREFIX_UNSIGNED: &str = "roundtable-circle-keys-2";
const ENVELOPE_CONTEXT: &[u8] = b"roundtable/envelope/1";
const CANDIDATE_CONTEXT: &[u8] = b"roundtable/candidate/1";
const AEAD_CONTEXT: &str = "roundtable gossip aead v1";

/// Plaintext sizes an envelope is padded to (the largest fits gossip's
/// 4 KiB message cap with the envelope's own fields).
pub const PAD_BUCKETS: [usize; 3] = [512, 1536, 3584];

/// One candidate key for one epoch. Zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct EpochKey {
    /// The epoch.
    pub epoch: u64,
    /// The device that made it (the smallest wins).
    pub by: [u8; 32],
    key: Zeroizing<[u8; 32]>,
    /// The maker's signature (see [`KeyOffer::verify`]); `None` only for
    /// keys kept by a version that did not sign them.
    sig: Option<Vec<u8>>,
}

impl std::fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EpochKey(epoch {}, by {})",
            self.epoch,
            DeviceId::from_bytes(self.by).fmt_short()
        )
    }
}

impl EpochKey {
    /// An unsigned key from its parts (tests and fuzzing; a keyring never
    /// offers an unsigned key).
    pub fn new(epoch: u64, by: [u8; 32], key: [u8; 32]) -> Self {
        Self {
            epoch,
            by,
            key: Zeroizing::new(key),
            sig: None,
        }
    }

    /// A fresh random candidate for `circle`, made and signed by `device`.
    pub fn random(
        circle: CircleId,
        epoch: u64,
        device: &DeviceKey,
        rng: &mut impl RngCore,
    ) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        let by = *device.id().as_bytes();
        let sig = device
            .sign(&candidate_message(circle, epoch, &by, &key))
            .to_vec();
        Self {
            epoch,
            by,
            key,
            sig: Some(sig),
        }
    }

    /// The hash that orders a device's candidates (and that it signs).
    fn commitment(&self) -> [u8; 32] {
        *blake3::hash(self.key.as_ref()).as_bytes()
    }

    /// The order candidates are chosen in: the smallest maker, then the
    /// smallest key hash.
    fn rank(&self) -> ([u8; 32], [u8; 32]) {
        (self.by, self.commitment())
    }

    /// The key's bytes (for the gossip topic and the hand-over).
    pub fn secret(&self) -> &[u8; 32] {
        &self.key
    }

    /// The gossip topic of `circle` in this key's epoch: derived from the
    /// key and the circle's id, never from anything public alone.
    pub fn topic(&self, circle: CircleId) -> [u8; 32] {
        gossip_topic(&self.key, circle.as_bytes())
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        let k = Zeroizing::new(blake3::derive_key(AEAD_CONTEXT, self.key.as_ref()));
        XChaCha20Poly1305::new(k.as_ref().into())
    }
}

fn candidate_message(circle: CircleId, epoch: u64, by: &[u8; 32], key: &[u8; 32]) -> Vec<u8> {
    [
        CANDIDATE_CONTEXT,
        circle.as_bytes(),
        &epoch.to_le_bytes(),
        by,
        blake3::hash(key).as_bytes(),
    ]
    .concat()
}

/// A key as handed to another device over an authenticated connection.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyOffer {
    /// The epoch.
    pub epoch: u64,
    /// Who made it.
    pub by: [u8; 32],
    /// The key.
    pub key: [u8; 32],
    /// The maker's signature over the circle, the epoch and the key's hash
    /// (64 bytes).
    pub sig: Vec<u8>,
}

impl KeyOffer {
    /// Whether the device named `by` signed this key for `circle`.
    pub fn verify(&self, circle: CircleId) -> bool {
        let (Ok(maker), Ok(sig)) = (
            VerifyingKey::from_bytes(&self.by),
            <[u8; 64]>::try_from(self.sig.as_slice()),
        ) else {
            return false;
        };
        maker
            .verify_strict(
                &candidate_message(circle, self.epoch, &self.by, &self.key),
                &Signature::from_bytes(&sig),
            )
            .is_ok()
    }
}

impl std::fmt::Debug for KeyOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyOffer(epoch {})", self.epoch)
    }
}

impl Drop for KeyOffer {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

/// The keys of a circle's current epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    epoch: u64,
    candidates: Vec<EpochKey>,
}

impl Keyring {
    /// Every candidate held for the epoch, the active one among them.
    pub fn candidates(&self) -> &[EpochKey] {
        &self.candidates
    }

    /// A keyring holding one key.
    pub fn with(key: EpochKey) -> Self {
        Self {
            epoch: key.epoch,
            candidates: vec![key],
        }
    }

    /// The epoch the keyring is in.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The key in use: the candidate of the smallest device id (and of
    /// its candidates, the smallest key hash).
    pub fn active(&self) -> &EpochKey {
        // A keyring always holds at least one candidate (see `with` and `advance`).
        self.candidates
            .iter()
            .min_by_key(|k| k.rank())
            .expect("a keyring holds a key")
    }

    /// Moves to `epoch` with a fresh candidate of our own, when the circle
    /// has gone past the keyring's epoch; returns whether it moved. The
    /// keyring never goes back.
    pub fn advance(
        &mut self,
        circle: CircleId,
        epoch: u64,
        me: &DeviceKey,
        rng: &mut impl RngCore,
    ) -> bool {
        if epoch <= self.epoch {
            return false;
        }
        self.epoch = epoch;
        self.candidates = vec![EpochKey::random(circle, epoch, me, rng)];
        true
    }

    /// What to hand an admitted peer: the key in use, with its maker's
    /// signature. `None` when that key was kept unsigned by an earlier
    /// version and is not ours to sign (see [`Keyring::sign_own`]).
    pub fn offer(&self) -> Option<KeyOffer> {
        let k = self.active();
        Some(KeyOffer {
            epoch: k.epoch,
            by: k.by,
            key: *k.secret(),
            sig: k.sig.clone()?,
        })
    }

    /// Signs our own candidates kept unsigned by an earlier version.
    pub fn sign_own(&mut self, circle: CircleId, me: &DeviceKey) {
        let mine = *me.id().as_bytes();
        for k in self.candidates.iter_mut().filter(|k| k.by == mine) {
            if k.sig.is_none() {
                let msg = candidate_message(circle, k.epoch, &k.by, &k.key);
                k.sig = Some(me.sign(&msg).to_vec());
            }
        }
    }

    /// A keyring holding the key an admitted device handed over, when it
    /// is signed by its maker for `circle`.
    pub fn from_offer(circle: CircleId, offer: &KeyOffer) -> Option<Self> {
        offer.verify(circle).then(|| {
            Self::with(EpochKey {
                epoch: offer.epoch,
                by: offer.by,
                key: Zeroizing::new(offer.key),
                sig: Some(offer.sig.clone()),
            })
        })
    }

    /// Takes in a peer's key for our epoch; returns whether the active key
    /// changed. Keys for other epochs are ignored (the document tells the
    /// epoch, and the sync that comes first brings the document), and so
    /// are keys their maker did not sign for `circle`. Of two candidates
    /// of one maker, the one with the smaller key hash is kept, so the
    /// keyring stays one candidate per maker whatever peers send.
    pub fn accept(&mut self, circle: CircleId, offer: &KeyOffer) -> bool {
        if offer.epoch != self.epoch || !offer.verify(circle) {
            return false;
        }
        let before = self.active().rank();
        let candidate = EpochKey {
            epoch: offer.epoch,
            by: offer.by,
            key: Zeroizing::new(offer.key),
            sig: Some(offer.sig.clone()),
        };
        match self.candidates.iter_mut().find(|k| k.by == offer.by) {
            Some(k) if candidate.rank() < k.rank() => *k = candidate,
            Some(_) => return false,
            None => self.candidates.push(candidate),
        }
        before != self.active().rank()
    }

    /// The file text: one line per candidate.
    pub fn to_file_text(&self) -> Zeroizing<String> {
        let mut out = String::new();
        for k in &self.candidates {
            match &k.sig {
                Some(sig) => out.push_str(&format!(
                    "{KEY_FILE_PREFIX}:{}:{}:{}:{}\n",
                    k.epoch,
                    hex(&k.by),
                    hex(k.secret()),
                    hex(sig)
                )),
                None => out.push_str(&format!(
                    "{KEY_FILE_PREFIX_UNSIGNED}:{}:{}:{}\n",
                    k.epoch,
                    hex(&k.by),
                    hex(k.secret())
                )),
            }
        }
        Zeroizing::new(out)
    }

    /// Reads a keyring file (or the single secret of earlier versions, as
    /// epoch 0). Damaged text is an error naming the file's kind.
    pub fn from_file_text(bytes: &[u8]) -> Result<Self, CoreError> {
        let bad = || CoreError::BadKey("the circle key file is damaged".into());
        let text = std::str::from_utf8(bytes).map_err(|_| bad())?;
        let mut candidates = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Ok(old) = parse_key_file(KeyKind::Circle, line.as_bytes()) {
                candidates.push(EpochKey::new(0, [0; 32], *old));
                continue;
            }
            let parts: Vec<&str> = line.split(':').collect();
            let (epoch, by, key, sig) = match parts.as_slice() {
                [KEY_FILE_PREFIX, epoch, by, key, sig] => (epoch, by, key, Some(sig)),
                [KEY_FILE_PREFIX_UNSIGNED, epoch, by, key] => (epoch, by, key, None),
                _ => return Err(bad()),
            };
            let mut k = EpochKey::new(
                epoch.parse().map_err(|_| bad())?,
                unhex::<32>(by).ok_or_else(bad)?,
                unhex::<32>(key).ok_or_else(bad)?,
            );
            if let Some(sig) = sig {
                k.sig = Some(unhex::<64>(sig).ok_or_else(bad)?.to_vec());
            }
            candidates.push(k);
        }
        let epoch = candidates.iter().map(|k| k.epoch).max().ok_or_else(bad)?;
        candidates.retain(|k| k.epoch == epoch);
        Ok(Self { epoch, candidates })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// An envelope as it travels: everything but `ciphertext` is in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Which circle.
    pub circle: [u8; 16],
    /// Which epoch's key sealed it.
    pub epoch: u64,
    /// The sending device.
    pub from: [u8; 32],
    /// XChaCha20 nonce.
    pub nonce: [u8; 24],
    /// The padded body, encrypted and authenticated.
    pub ciphertext: Vec<u8>,
    /// The sending device's signature over all of the above (64 bytes).
    pub sig: Vec<u8>,
}

/// Why an envelope was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum EnvelopeError {
    /// The bytes are not an envelope.
    #[error("not an envelope")]
    Malformed,
    /// For another circle.
    #[error("for another circle")]
    OtherCircle,
    /// Sealed in an epoch other than ours.
    #[error("from another epoch")]
    OtherEpoch,
    /// From a device not admitted to the circle.
    #[error("from a device not admitted")]
    NotAdmitted,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// No key of ours opens it.
    #[error("does not decrypt")]
    Undecryptable,
    /// Decrypted, but the body does not read.
    #[error("body does not read")]
    BadBody,
}

fn signed_part(s: &Sealed) -> Vec<u8> {
    [
        ENVELOPE_CONTEXT,
        &s.circle,
        &s.epoch.to_le_bytes(),
        &s.from,
        &s.nonce,
        &s.ciphertext,
    ]
    .concat()
}

fn aad(circle: &[u8; 16], epoch: u64, from: &[u8; 32]) -> Vec<u8> {
    [circle.as_slice(), &epoch.to_le_bytes(), from].concat()
}

/// The padded plaintext of a body, or `None` when it is too big for gossip.
fn pad(body: &Body) -> Option<Vec<u8>> {
    let plain = postcard::to_stdvec(body).ok()?;
    let len = u32::try_from(plain.len()).ok()?;
    let bucket = *PAD_BUCKETS.iter().find(|b| plain.len() + 4 <= **b)?;
    let mut out = Vec::with_capacity(bucket);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&plain);
    out.resize(bucket, 0);
    Some(out)
}

fn unpad(padded: &[u8]) -> Option<Body> {
    let (len, rest) = padded.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    let body = rest.get(..len)?;
    if rest[len..].iter().any(|b| *b != 0) {
        return None;
    }
    postcard::from_bytes(body).ok()
}

/// Seals a body for gossip; `None` when it is too big (send heads instead).
pub fn seal(
    circle: CircleId,
    keys: &Keyring,
    device: &DeviceKey,
    body: &Body,
    rng: &mut impl RngCore,
) -> Option<Vec<u8>> {
    let padded = Zeroizing::new(pad(body)?);
    let key = keys.active();
    let from = *device.id().as_bytes();
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let ciphertext = key
        .cipher()
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &padded,
                aad: &aad(circle.as_bytes(), key.epoch, &from),
            },
        )
        .ok()?;
    let mut sealed = Sealed {
        circle: *circle.as_bytes(),
        epoch: key.epoch,
        from,
        nonce,
        ciphertext,
        sig: Vec::new(),
    };
    sealed.sig = device.sign(&signed_part(&sealed)).to_vec();
    Some(wire::encode(&sealed))
}

/// Opens an envelope: checks circle, epoch, sender, signature, then
/// decrypts. `admitted` says whether a device may send to this circle.
pub fn open(
    bytes: &[u8],
    circle: CircleId,
    keys: &Keyring,
    admitted: impl Fn(DeviceId) -> bool,
) -> Result<(DeviceId, Body), EnvelopeError> {
    let s: Sealed = wire::decode(bytes).map_err(|_| EnvelopeError::Malformed)?;
    if s.circle != *circle.as_bytes() {
        return Err(EnvelopeError::OtherCircle);
    }
    if s.epoch != keys.epoch() {
        return Err(EnvelopeError::OtherEpoch);
    }
    let from = DeviceId::from_bytes(s.from);
    if !admitted(from) {
        return Err(EnvelopeError::NotAdmitted);
    }
    let sig = <[u8; 64]>::try_from(s.sig.as_slice()).map_err(|_| EnvelopeError::BadSignature)?;
    VerifyingKey::from_bytes(&s.from)
        .and_then(|k| k.verify_strict(&signed_part(&s), &Signature::from_bytes(&sig)))
        .map_err(|_| EnvelopeError::BadSignature)?;
    let aad = aad(&s.circle, s.epoch, &s.from);
    let padded = keys
        .candidates
        .iter()
        .find_map(|k| {
            k.cipher()
                .decrypt(
                    XNonce::from_slice(&s.nonce),
                    Payload {
                        msg: &s.ciphertext,
                        aad: &aad,
                    },
                )
                .ok()
        })
        .map(Zeroizing::new)
        .ok_or(EnvelopeError::Undecryptable)?;
    let body = unpad(&padded).ok_or(EnvelopeError::BadBody)?;
    Ok((from, body))
}

/// Remembers the envelopes seen lately, so a replayed one is noticed (and
/// counted); replays are harmless anyway, since applying a change twice
/// changes nothing.
#[derive(Debug, Default)]
pub struct ReplayFilter {
    seen: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl ReplayFilter {
    const CAPACITY: usize = 4096;

    /// Whether these bytes were seen before; remembers them if not.
    pub fn is_replay(&mut self, bytes: &[u8]) -> bool {
        let h = *blake3::hash(bytes).as_bytes();
        if !self.seen.insert(h) {
            return true;
        }
        self.order.push_back(h);
        if self.order.len() > Self::CAPACITY
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        false
    }
}

/// The gossip topic of a circle in an epoch, from the epoch's circle key
/// and the circle's id.
pub fn gossip_topic(circle_key: &[u8; 32], circle_id: &[u8; 16]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key("roundtable 2026 gossip topic v1");
    hasher.update(circle_key);
    hasher.update(circle_id);
    *hasher.finalize().as_bytes()
}
