//! Identifiers: circles, members, devices and the entities inside a circle.
//!
//! Every identifier is shown as lowercase hex. People may type any unique
//! prefix of one (see [`resolve_prefix`]).

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::error::ParseIdError;

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Number of bytes in this identifier.
            pub const LEN: usize = $len;

            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// The first ten hex characters, enough to tell members of one circle apart.
            pub fn fmt_short(&self) -> String {
                let mut s = self.to_string();
                s.truncate(10);
                s
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in &self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.fmt_short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let bytes = decode_hex(s.trim(), $len, $what)?;
                let mut out = [0u8; $len];
                out.copy_from_slice(&bytes);
                Ok(Self(out))
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_id!(
    /// A circle's public identifier: random, chosen when the circle is created.
    CircleId,
    16,
    "circle id"
);
hex_id!(
    /// A member: the public half of their member identity key (ed25519).
    MemberId,
    32,
    "member id"
);
hex_id!(
    /// A device: the public half of its device key (ed25519), which is also
    /// its network identity.
    DeviceId,
    32,
    "device id"
);
hex_id!(
    /// An entity inside a circle (a check-in, a reply, a gathering, ...):
    /// random, so concurrent creations on different devices never collide.
    EntityId,
    8,
    "entity id"
);

impl CircleId {
    /// A fresh random circle id.
    pub fn random(rng: &mut impl RngCore) -> Self {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        Self(b)
    }
}

impl EntityId {
    /// A fresh random entity id.
    pub fn random(rng: &mut impl RngCore) -> Self {
        let mut b = [0u8; 8];
        rng.fill_bytes(&mut b);
        Self(b)
    }
}

fn decode_hex(s: &str, len: usize, what: &'static str) -> Result<Vec<u8>, ParseIdError> {
    if s.len() != len * 2 {
        return Err(ParseIdError {
            what,
            reason: format!("expected {} hex characters, got {}", len * 2, s.len()),
        });
    }
    let digit = |c: u8| -> Result<u8, ParseIdError> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(ParseIdError {
                what,
                reason: format!("{:?} is not a hex digit", char::from(c)),
            }),
        }
    };
    s.as_bytes()
        .chunks(2)
        .map(|pair| Ok(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// The outcome of looking an identifier up by a prefix someone typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved<T> {
    /// Exactly one candidate matches.
    One(T),
    /// Nothing matches.
    None,
    /// Several candidates match; the caller should ask for more characters.
    Ambiguous(Vec<T>),
    /// Fewer characters than [`MIN_PREFIX`] that are not a whole id: too
    /// few to mean one thing for long, as the circle grows.
    TooShort,
}

/// The fewest characters of an id that a lookup accepts.
pub const MIN_PREFIX: usize = 4;

/// Finds the candidates whose hex form starts with `prefix` (case-insensitive).
/// An exact match wins even when it is also the prefix of another id; any
/// other prefix needs at least [`MIN_PREFIX`] characters.
pub fn resolve_prefix<T: fmt::Display + Clone>(
    prefix: &str,
    candidates: impl IntoIterator<Item = T>,
) -> Resolved<T> {
    let prefix = prefix.trim().to_ascii_lowercase();
    if prefix.is_empty() {
        return Resolved::None;
    }
    let mut found = Vec::new();
    for c in candidates {
        let s = c.to_string();
        if s == prefix {
            return Resolved::One(c);
        }
        if s.starts_with(&prefix) {
            found.push(c);
        }
    }
    if prefix.chars().count() < MIN_PREFIX {
        return Resolved::TooShort;
    }
    match found.len() {
        0 => Resolved::None,
        1 => Resolved::One(found.remove(0)),
        _ => Resolved::Ambiguous(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = EntityId::from_bytes([0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 0xff]);
        assert_eq!(id.to_string(), "deadbeef000102ff");
        assert_eq!("DEADBEEF000102FF".parse::<EntityId>().unwrap(), id);
        assert!("deadbeef".parse::<EntityId>().is_err());
        assert!("deadbeef000102fg".parse::<EntityId>().is_err());
        assert!("ééééééé".parse::<EntityId>().is_err());
    }

    #[test]
    fn prefixes() {
        let a = EntityId::from_bytes([0xab, 0, 0, 0, 0, 0, 0, 0]);
        let b = EntityId::from_bytes([0xac, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(resolve_prefix("ab00", [a, b]), Resolved::One(a));
        assert_eq!(resolve_prefix("AB00", [a, b]), Resolved::One(a));
        assert_eq!(resolve_prefix("ab", [a, b]), Resolved::TooShort);
        assert_eq!(resolve_prefix("a", [a, b]), Resolved::TooShort);
        let c = EntityId::from_bytes([0xab, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(
            resolve_prefix("ab00", [a, c]),
            Resolved::Ambiguous(vec![a, c])
        );
        assert_eq!(resolve_prefix("ff00", [a, b]), Resolved::None);
        assert_eq!(resolve_prefix("", [a, b]), Resolved::None);
        // A whole id is never too short.
        assert_eq!(resolve_prefix("x", ["x"]), Resolved::One("x"));
    }
}
