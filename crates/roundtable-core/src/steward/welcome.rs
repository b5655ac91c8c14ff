//! Invites that wait at a steward: a welcome sealed to a ticket's secret,
//! at a slot only a holder of the ticket can name (see
//! `docs/PROTOCOL.md`, "Invites that wait").

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::ShelfError;
use crate::ids::CircleId;

const WELCOME_FORGET_CONTEXT: &str = "roundtable 2026 steward welcome forget v1";
const WELCOME_AEAD_CONTEXT: &str = "roundtable 2026 steward welcome aead v1";
const WELCOME_AAD: &[u8] = b"roundtable/steward-welcome/1";

/// What an inviter leaves at a steward for someone whose ticket it made:
/// the circle as it stood, the signed heads that prove it, the epoch's
/// key, and for a device pairing the member's key. Sealed under a key
/// derived from the ticket's secret, so only a holder of the ticket opens
/// it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingWelcome {
    /// The circle, its proofs and key.
    pub circle: crate::wire::WelcomeCircle,
    /// For a device pairing: the member's key seed.
    pub member_key: Option<[u8; 32]>,
}

impl std::fmt::Debug for WaitingWelcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitingWelcome").finish_non_exhaustive()
    }
}

impl Drop for WaitingWelcome {
    fn drop(&mut self) {
        if let Some(k) = self.member_key.as_mut() {
            zeroize::Zeroize::zeroize(k);
        }
    }
}

/// Where a welcome waits, and the token that lets it be forgotten: both
/// from the ticket's secret, so the steward learns neither the secret nor
/// the circle.
#[derive(Clone)]
pub struct WelcomeSlot {
    forget: Zeroizing<[u8; 32]>,
    aead: Zeroizing<[u8; 32]>,
}

impl WelcomeSlot {
    /// The slot of the invite whose ticket holds `secret`, for `circle`.
    pub fn of(circle: CircleId, secret: &crate::invite::InviteSecret) -> Self {
        let input = Zeroizing::new([secret.as_bytes().as_slice(), circle.as_bytes()].concat());
        Self {
            forget: Zeroizing::new(blake3::derive_key(WELCOME_FORGET_CONTEXT, &input)),
            aead: Zeroizing::new(blake3::derive_key(WELCOME_AEAD_CONTEXT, &input)),
        }
    }

    /// A slot from what [`WelcomeSlot::keys`] gave, to seal its welcome
    /// again.
    pub fn from_keys(forget: [u8; 32], aead: [u8; 32]) -> Self {
        Self {
            forget: Zeroizing::new(forget),
            aead: Zeroizing::new(aead),
        }
    }

    /// Its two keys (the forget token and the sealing key), for the
    /// inviting device to keep while its welcome waits.
    pub fn keys(&self) -> ([u8; 32], [u8; 32]) {
        (*self.forget, *self.aead)
    }

    /// Its name at the steward: the hash of the token that forgets it.
    pub fn name(&self) -> [u8; 32] {
        slot_of_token(&self.forget)
    }

    /// The token that lets the steward forget it.
    pub fn forget_token(&self) -> [u8; 32] {
        *self.forget
    }

    /// Seals a welcome for this slot.
    pub fn seal(&self, welcome: &WaitingWelcome, rng: &mut impl RngCore) -> Vec<u8> {
        let plain = Zeroizing::new(postcard::to_stdvec(welcome).expect("welcomes always encode"));
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        let ct = XChaCha20Poly1305::new(self.aead.as_ref().into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: WELCOME_AAD,
                },
            )
            .expect("encryption of a bounded plaintext does not fail");
        [nonce.as_slice(), &ct].concat()
    }

    /// Opens a welcome a steward handed out for this slot. Never panics.
    pub fn open(&self, bytes: &[u8]) -> Result<WaitingWelcome, ShelfError> {
        let (nonce, ct) = bytes
            .split_first_chunk::<24>()
            .ok_or(ShelfError::Unopenable)?;
        let plain = XChaCha20Poly1305::new(self.aead.as_ref().into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: WELCOME_AAD,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| ShelfError::Unopenable)?;
        postcard::from_bytes(&plain).map_err(|_| ShelfError::Malformed)
    }
}

/// The name of the slot a forget token forgets (what a steward checks).
pub fn slot_of_token(token: &[u8; 32]) -> [u8; 32] {
    *blake3::hash(token).as_bytes()
}
