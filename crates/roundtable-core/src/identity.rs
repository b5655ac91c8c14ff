//! Identities: a device key and a member identity key that certifies it.
//!
//! A *device key* is an ed25519 key owned by one device; its public half is
//! the device's [`DeviceId`] and, in the network layer, its endpoint id. A
//! *member key* is the person: it signs a [`DeviceCert`] for each device of
//! theirs, so the circle can tell which devices speak for which member.
//!
//! Keys are kept on disk as one line of text, parsed by [`parse_key_file`]
//! (a pure function, fuzzed).

use std::collections::HashSet;
use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::error::CoreError;
use crate::ids::{DeviceId, MemberId};

/// Domain separation for device certificates.
const CERT_CONTEXT: &[u8] = b"roundtable/device-cert/1";

/// Which kind of secret a key file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A device key.
    Device,
    /// A member identity key.
    Member,
    /// A circle's secret as the first version kept it; read now as the
    /// circle key of epoch 0 (see `crate::keys::Keyring`).
    Circle,
}

impl KeyKind {
    const fn tag(self) -> &'static str {
        match self {
            KeyKind::Device => "roundtable-device-key-1",
            KeyKind::Member => "roundtable-member-key-1",
            KeyKind::Circle => "roundtable-circle-secret-1",
        }
    }
}

fn random_seed() -> Zeroizing<[u8; 32]> {
    let mut seed = Zeroizing::new([0u8; 32]);
    // The OS random source failing is not something a person can fix or we can work around.
    getrandom::fill(seed.as_mut()).expect("the operating system's random source failed");
    seed
}

/// This device's secret key. Zeroized on drop.
#[derive(Clone)]
pub struct DeviceKey(SigningKey);

/// A member's identity secret key. Zeroized on drop.
#[derive(Clone)]
pub struct MemberKey(SigningKey);

macro_rules! key_impl {
    ($name:ident, $id:ident, $kind:expr) => {
        impl $name {
            /// A new random key from the operating system's random source.
            pub fn generate() -> Self {
                Self(SigningKey::from_bytes(&random_seed()))
            }

            /// From a 32-byte secret seed.
            pub fn from_seed(seed: &[u8; 32]) -> Self {
                Self(SigningKey::from_bytes(seed))
            }

            /// The 32-byte secret seed (e.g. to build the network endpoint's key).
            pub fn to_seed(&self) -> Zeroizing<[u8; 32]> {
                Zeroizing::new(self.0.to_bytes())
            }

            /// The public id.
            pub fn id(&self) -> $id {
                $id::from_bytes(self.0.verifying_key().to_bytes())
            }

            /// The key as the one line of text kept in its file.
            pub fn to_file_text(&self) -> Zeroizing<String> {
                key_file_text($kind, &self.0.to_bytes())
            }

            /// Reads a key file written by [`Self::to_file_text`].
            pub fn from_file_text(bytes: &[u8]) -> Result<Self, CoreError> {
                parse_key_file($kind, bytes).map(|seed| Self::from_seed(&seed))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.id().fmt_short())
            }
        }
    };
}

key_impl!(DeviceKey, DeviceId, KeyKind::Device);
key_impl!(MemberKey, MemberId, KeyKind::Member);

impl DeviceKey {
    /// Signs a message with this device's key.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }

    /// The signing key itself (for the X25519 of key boxes).
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.0
    }
}

/// Whether `sig` is `device`'s signature over `msg` (strict verification).
pub fn verify_device_signature(device: DeviceId, msg: &[u8], sig: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(device.as_bytes())
        .is_ok_and(|k| k.verify_strict(msg, &Signature::from_bytes(sig)).is_ok())
}

/// How many words a recovery key is.
pub const RECOVERY_WORDS: usize = 24;

impl MemberKey {
    /// The member key as a recovery key a person can write down: the 24
    /// words of the BIP39 English list that spell its 32 bytes (the last
    /// word carries a checksum, so a miscopied word is caught).
    pub fn to_words(&self) -> Zeroizing<String> {
        let seed = self.to_seed();
        // 32 bytes is a length BIP39 spells: this cannot fail.
        let words = bip39::Mnemonic::from_entropy(seed.as_ref())
            .map(|m| m.words().collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        Zeroizing::new(words)
    }

    /// The member key a recovery key spells. Case, numbering ("1." or
    /// "1)") and line breaks are ignored; anything else wrong is said in
    /// one line: which word is not in the list, how many there are, or
    /// that they do not add up (a word miscopied or out of order).
    pub fn from_words(text: &str) -> Result<Self, CoreError> {
        let words: Vec<String> = text
            .split(|c: char| c.is_whitespace() || c == ',')
            .map(|w| w.trim_matches(|c: char| c.is_ascii_digit() || c == '.' || c == ')'))
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        let wrong = |why: String| CoreError::Invalid(why);
        if words.len() != RECOVERY_WORDS {
            return Err(wrong(format!(
                "a recovery key is {RECOVERY_WORDS} words; these are {}",
                words.len()
            )));
        }
        let joined = Zeroizing::new(words.join(" "));
        let mnemonic = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &joined)
            .map_err(|e| match e {
                bip39::Error::UnknownWord(i) => wrong(format!(
                    "word {} (\"{}\") is not one a recovery key uses; check how it is spelled",
                    i + 1,
                    words.get(i).map_or("", String::as_str)
                )),
                _ => wrong(
                    "these words do not add up to a recovery key: one is probably miscopied or out of order"
                        .into(),
                ),
            })?;
        let (entropy, len) = mnemonic.to_entropy_array();
        let entropy = Zeroizing::new(entropy);
        let seed: [u8; 32] = entropy[..len]
            .try_into()
            .map_err(|_| wrong(format!("a recovery key is {RECOVERY_WORDS} words")))?;
        let seed = Zeroizing::new(seed);
        Ok(Self::from_seed(&seed))
    }

    /// Certifies that `device` speaks for this member.
    pub fn certify(&self, device: DeviceId) -> DeviceCert {
        let member = self.id();
        let sig = self.0.sign(&cert_message(member, device));
        DeviceCert {
            member,
            device,
            signature: sig.to_bytes(),
        }
    }
}

fn cert_message(member: MemberId, device: DeviceId) -> Vec<u8> {
    [CERT_CONTEXT, member.as_bytes(), device.as_bytes()].concat()
}

/// A member's signature saying "this device is mine".
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCert {
    /// The member who certifies.
    pub member: MemberId,
    /// The device certified.
    pub device: DeviceId,
    /// ed25519 signature by the member key.
    pub signature: [u8; 64],
}

impl fmt::Debug for DeviceCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DeviceCert({} -> {})",
            self.member.fmt_short(),
            self.device.fmt_short()
        )
    }
}

impl DeviceCert {
    /// Checks the signature.
    pub fn verify(&self) -> Result<(), CoreError> {
        let bad = || {
            CoreError::BadKey(format!(
                "the certificate of device {} by member {} does not verify",
                self.device.fmt_short(),
                self.member.fmt_short()
            ))
        };
        // Every read of a circle checks every certificate in it; a
        // certificate that verified once always will, so remember it.
        static VERIFIED: std::sync::OnceLock<std::sync::Mutex<HashSet<[u8; 32]>>> =
            std::sync::OnceLock::new();
        let digest = *blake3::hash(
            &[
                self.member.as_bytes().as_slice(),
                self.device.as_bytes(),
                &self.signature,
            ]
            .concat(),
        )
        .as_bytes();
        let verified = VERIFIED.get_or_init(Default::default);
        if verified.lock().is_ok_and(|v| v.contains(&digest)) {
            return Ok(());
        }
        let key = VerifyingKey::from_bytes(self.member.as_bytes()).map_err(|_| bad())?;
        let sig = Signature::from_bytes(&self.signature);
        key.verify_strict(&cert_message(self.member, self.device), &sig)
            .map_err(|_| bad())?;
        if let Ok(mut v) = verified.lock()
            && v.len() < 100_000
        {
            v.insert(digest);
        }
        Ok(())
    }

    /// The signature as hex, as stored in the circle document.
    pub fn signature_hex(&self) -> String {
        hex(&self.signature)
    }

    /// Rebuilds a certificate from its parts and checks it.
    pub fn from_parts(
        member: MemberId,
        device: DeviceId,
        signature_hex: &str,
    ) -> Result<Self, CoreError> {
        let bytes = decode_hex_exact::<64>(signature_hex.trim()).ok_or_else(|| {
            CoreError::BadKey("a device certificate signature must be 128 hex characters".into())
        })?;
        let cert = Self {
            member,
            device,
            signature: bytes,
        };
        cert.verify()?;
        Ok(cert)
    }
}

/// Bytes as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `N` bytes from `2 * N` hex characters, or `None`.
pub(crate) fn decode_hex_exact<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi << 4 | lo) as u8;
    }
    Some(out)
}

/// The one line of text a secret of `kind` is kept as; read back with [`parse_key_file`].
pub fn key_file_text(kind: KeyKind, seed: &[u8; 32]) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::with_capacity(kind.tag().len() + 66));
    s.push_str(kind.tag());
    s.push(':');
    for b in seed {
        s.push_str(&format!("{b:02x}"));
    }
    s.push('\n');
    s
}

/// Parses the text of a key file: `<tag>:<64 hex characters>` and an optional
/// line ending. Pure; never panics.
pub fn parse_key_file(kind: KeyKind, bytes: &[u8]) -> Result<Zeroizing<[u8; 32]>, CoreError> {
    let what = match kind {
        KeyKind::Device => "device key",
        KeyKind::Member => "member key",
        KeyKind::Circle => "circle secret",
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|_| CoreError::BadKey(format!("the {what} file is not text")))?;
    let text = text.trim_end_matches(['\n', '\r']);
    let Some((tag, hex)) = text.split_once(':') else {
        return Err(CoreError::BadKey(format!(
            "the {what} file is damaged (no ':' separator)"
        )));
    };
    if tag != kind.tag() {
        return Err(CoreError::BadKey(format!(
            "the {what} file starts with {tag:?}, expected {:?}",
            kind.tag()
        )));
    }
    decode_hex_exact::<32>(hex)
        .map(Zeroizing::new)
        .ok_or_else(|| {
            CoreError::BadKey(format!(
                "the {what} file is damaged (expected 64 hex characters)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_refuse_the_other_kind() {
        let d = DeviceKey::generate();
        let text = d.to_file_text();
        let back = DeviceKey::from_file_text(text.as_bytes()).unwrap();
        assert_eq!(back.id(), d.id());
        assert!(MemberKey::from_file_text(text.as_bytes()).is_err());
        assert!(DeviceKey::from_file_text(&text.as_bytes()[..40]).is_err());
        assert!(DeviceKey::from_file_text(b"").is_err());
        assert!(DeviceKey::from_file_text(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn certificates_verify_and_tampering_is_caught() {
        let m = MemberKey::generate();
        let d = DeviceKey::generate();
        let cert = m.certify(d.id());
        cert.verify().unwrap();
        let again =
            DeviceCert::from_parts(cert.member, cert.device, &cert.signature_hex()).unwrap();
        assert_eq!(again, cert);
        let other = DeviceKey::generate().id();
        assert!(DeviceCert::from_parts(cert.member, other, &cert.signature_hex()).is_err());
        let mut bad = cert.clone();
        bad.signature[3] ^= 1;
        assert!(bad.verify().is_err());
    }
}
