//! Tickets: one line of text that lets someone into a circle.
//!
//! A ticket is `roundtable` followed by lowercase base32 (iroh's ticket
//! convention) of a versioned postcard body and a 4-byte BLAKE3 checksum, so
//! a mistyped or cut ticket is caught before anything is dialled. It carries
//! the circle's id, where to reach the inviting device, and the invite's id
//! and secret — never the circle's key or secret.

use iroh::EndpointAddr;
use iroh_tickets::{ParseError, Ticket};
use roundtable_core::{CircleId, EntityId, InviteKind, InviteSecret, Timestamp};
use serde::{Deserialize, Serialize};

/// An invitation, as carried by a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircleTicket {
    /// The circle.
    pub circle: CircleId,
    /// Where to reach the inviting device.
    pub inviter: EndpointAddr,
    /// Which invite.
    pub invite: EntityId,
    /// The invite's secret.
    pub secret: InviteSecret,
    /// A new member or a new device.
    pub kind: InviteKind,
    /// When the invite stops working (as the inviter's clock said).
    pub expires_at: Timestamp,
}

#[derive(Serialize, Deserialize)]
enum Wire {
    V1 {
        circle: [u8; 16],
        inviter: EndpointAddr,
        invite: [u8; 8],
        secret: [u8; 32],
        device: bool,
        expires_at: i64,
    },
}

const CHECKSUM: usize = 4;

fn checksum(body: &[u8]) -> [u8; CHECKSUM] {
    let h = blake3::hash(body);
    let mut out = [0u8; CHECKSUM];
    out.copy_from_slice(&h.as_bytes()[..CHECKSUM]);
    out
}

impl Ticket for CircleTicket {
    const KIND: &'static str = "roundtable";

    fn encode_bytes(&self) -> Vec<u8> {
        let wire = Wire::V1 {
            circle: *self.circle.as_bytes(),
            inviter: self.inviter.clone(),
            invite: *self.invite.as_bytes(),
            secret: *self.secret.as_bytes(),
            device: self.kind == InviteKind::Device,
            expires_at: self.expires_at.as_millis(),
        };
        let mut body = postcard::to_stdvec(&wire).unwrap_or_default();
        let sum = checksum(&body);
        body.extend_from_slice(&sum);
        body
    }

    fn decode_bytes(bytes: &[u8]) -> Result<Self, ParseError> {
        if bytes.len() < CHECKSUM {
            return Err(ParseError::verification_failed("too short"));
        }
        let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM);
        if checksum(body) != sum {
            return Err(ParseError::verification_failed("checksum mismatch"));
        }
        let Wire::V1 {
            circle,
            inviter,
            invite,
            secret,
            device,
            expires_at,
        } = postcard::from_bytes(body)?;
        Ok(Self {
            circle: CircleId::from_bytes(circle),
            inviter,
            invite: EntityId::from_bytes(invite),
            secret: InviteSecret::from_bytes(secret),
            kind: if device {
                InviteKind::Device
            } else {
                InviteKind::Member
            },
            expires_at: Timestamp::from_millis(expires_at),
        })
    }
}

/// A ticket could not be read. Every message is one line a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// Not a Roundtable ticket at all.
    #[error(
        "this is not a Roundtable ticket (it should start with \"roundtable\"); ask for a new one"
    )]
    WrongPrefix,
    /// Cut short, mistyped, or altered.
    #[error("this ticket is damaged or incomplete ({0}); copy the whole line again")]
    Damaged(String),
}

impl CircleTicket {
    /// The ticket as one line of text.
    pub fn to_line(&self) -> String {
        self.encode_string()
    }

    /// Reads a ticket someone pasted. Surrounding white space is ignored.
    /// Pure; never panics (fuzzed).
    pub fn parse(line: &str) -> Result<Self, TicketError> {
        let line = line.trim();
        if !line.starts_with(Self::KIND) {
            return Err(TicketError::WrongPrefix);
        }
        Self::decode_string(line).map_err(|e| {
            let why = match e {
                ParseError::Kind { .. } => return TicketError::WrongPrefix,
                ParseError::Encoding { .. } => "not valid base32".to_owned(),
                ParseError::Postcard { .. } => "its contents do not parse".to_owned(),
                ParseError::Verify { message, .. } => message.to_owned(),
                other => other.to_string(),
            };
            TicketError::Damaged(why)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> CircleTicket {
        let id = iroh::SecretKey::from_bytes(&[5; 32]).public();
        CircleTicket {
            circle: CircleId::from_bytes([1; 16]),
            inviter: EndpointAddr::new(id).with_ip_addr("127.0.0.1:4242".parse().unwrap()),
            invite: EntityId::from_bytes([2; 8]),
            secret: InviteSecret::from_bytes([3; 32]),
            kind: InviteKind::Member,
            expires_at: Timestamp::from_millis(1_795_464_000_000),
        }
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        let t = ticket();
        let line = t.to_line();
        assert!(line.starts_with("roundtable"), "{line}");
        assert_eq!(CircleTicket::parse(&format!("  {line}\n")).unwrap(), t);
        assert_eq!(
            CircleTicket::parse("endpointabc"),
            Err(TicketError::WrongPrefix)
        );
        assert!(matches!(
            CircleTicket::parse(&line[..line.len() - 5]),
            Err(TicketError::Damaged(_))
        ));
        // One character changed: the checksum catches it.
        let mut chars: Vec<char> = line.chars().collect();
        let i = chars.len() / 2;
        chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
        let altered: String = chars.into_iter().collect();
        assert!(matches!(
            CircleTicket::parse(&altered),
            Err(TicketError::Damaged(_))
        ));
        assert!(matches!(
            CircleTicket::parse("roundtable!!!"),
            Err(TicketError::Damaged(_))
        ));
        assert!(matches!(
            CircleTicket::parse("roundtable"),
            Err(TicketError::Damaged(_))
        ));
    }
}
