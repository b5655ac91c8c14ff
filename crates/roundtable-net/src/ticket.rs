//! Tickets: one line of text that lets someone into a circle.
//!
//! A ticket is `roundtable` followed by lowercase base32 (iroh's ticket
//! convention) of a versioned postcard body and a 4-byte BLAKE3 checksum, so
//! a mistyped or cut ticket is caught before anything is dialled. It carries
//! the circle's id, where to reach the inviting device, and the invite's id,
//! secret, kind, expiry and uses — never the circle's key — all signed by the
//! inviting device, so a ticket altered on the way is refused before anything
//! is dialled.

use iroh::EndpointAddr;
use iroh_tickets::{ParseError, Ticket};
use roundtable_core::schema::limits;
use roundtable_core::{
    CircleId, DeviceCert, DeviceId, DeviceKey, EntityId, InviteKind, InviteSecret, MemberId,
    Timestamp, verify_device_signature,
};
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
    /// How many times it can be redeemed.
    pub uses: u32,
    /// The circle's stewards, where the invite also waits when the
    /// inviting device is off (signed by their ids; addresses are hints).
    pub stewards: Vec<EndpointAddr>,
    /// The inviting device's signature over all of the above but the
    /// addresses (which are only hints where to reach it).
    pub sig: [u8; 64],
}

const TICKET_CONTEXT: &[u8] = b"roundtable/ticket/1";

#[derive(Serialize, Deserialize)]
enum Wire {
    /// Unsigned tickets of the first version: refused.
    V1 {
        circle: [u8; 16],
        inviter: EndpointAddr,
        invite: [u8; 8],
        secret: [u8; 32],
        device: bool,
        expires_at: i64,
    },
    V2 {
        circle: [u8; 16],
        inviter: EndpointAddr,
        invite: [u8; 8],
        secret: [u8; 32],
        device: bool,
        expires_at: i64,
        uses: u32,
        sig: Vec<u8>,
    },
    V3 {
        circle: [u8; 16],
        inviter: EndpointAddr,
        invite: [u8; 8],
        secret: [u8; 32],
        device: bool,
        expires_at: i64,
        uses: u32,
        stewards: Vec<EndpointAddr>,
        sig: Vec<u8>,
    },
}

/// The most stewards a ticket names.
const MAX_TICKET_STEWARDS: usize = 4;

const CHECKSUM: usize = 4;

/// The body of `bytes`, once its checksum (the last bytes) matches.
fn checked(bytes: &[u8]) -> Result<&[u8], ParseError> {
    if bytes.len() < CHECKSUM {
        return Err(ParseError::verification_failed("too short"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM);
    if checksum(body) != sum {
        return Err(ParseError::verification_failed("checksum mismatch"));
    }
    Ok(body)
}

fn checksum(body: &[u8]) -> [u8; CHECKSUM] {
    let h = blake3::hash(body);
    let mut out = [0u8; CHECKSUM];
    out.copy_from_slice(&h.as_bytes()[..CHECKSUM]);
    out
}

impl Ticket for CircleTicket {
    const KIND: &'static str = "roundtable";

    fn encode_bytes(&self) -> Vec<u8> {
        let (circle, inviter, invite, secret, device, expires_at, uses, sig) = (
            *self.circle.as_bytes(),
            self.inviter.clone(),
            *self.invite.as_bytes(),
            *self.secret.as_bytes(),
            self.kind == InviteKind::Device,
            self.expires_at.as_millis(),
            self.uses,
            self.sig.to_vec(),
        );
        // A ticket without stewards reads as before, for older versions.
        let wire = if self.stewards.is_empty() {
            Wire::V2 {
                circle,
                inviter,
                invite,
                secret,
                device,
                expires_at,
                uses,
                sig,
            }
        } else {
            Wire::V3 {
                circle,
                inviter,
                invite,
                secret,
                device,
                expires_at,
                uses,
                stewards: self.stewards.clone(),
                sig,
            }
        };
        let mut body = postcard::to_stdvec(&wire).unwrap_or_default();
        let sum = checksum(&body);
        body.extend_from_slice(&sum);
        body
    }

    fn decode_bytes(bytes: &[u8]) -> Result<Self, ParseError> {
        let body = checked(bytes)?;
        let (circle, inviter, invite, secret, device, expires_at, uses, stewards, sig) =
            match postcard::from_bytes(body)? {
                Wire::V1 { .. } => {
                    return Err(ParseError::verification_failed(
                        "it is from an older version of Roundtable",
                    ));
                }
                Wire::V2 {
                    circle,
                    inviter,
                    invite,
                    secret,
                    device,
                    expires_at,
                    uses,
                    sig,
                } => (
                    circle,
                    inviter,
                    invite,
                    secret,
                    device,
                    expires_at,
                    uses,
                    Vec::new(),
                    sig,
                ),
                Wire::V3 {
                    circle,
                    inviter,
                    invite,
                    secret,
                    device,
                    expires_at,
                    uses,
                    stewards,
                    sig,
                } => (
                    circle, inviter, invite, secret, device, expires_at, uses, stewards, sig,
                ),
            };
        if stewards.len() > MAX_TICKET_STEWARDS {
            return Err(ParseError::verification_failed(
                "it names too many stewards",
            ));
        }
        let sig = <[u8; 64]>::try_from(sig.as_slice())
            .map_err(|_| ParseError::verification_failed("its signature is malformed"))?;
        let ticket = Self {
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
            uses,
            stewards,
            sig,
        };
        if !verify_device_signature(ticket.inviter_device(), &ticket.signed_part(), &ticket.sig) {
            return Err(ParseError::verification_failed(
                "it was altered after the inviting device signed it",
            ));
        }
        Ok(ticket)
    }
}

/// A person's request to be recognised in a circle on a new device, after
/// losing every device of theirs: one line they send to members as they
/// would a ticket (`roundtablerecover` and base32 of a versioned postcard
/// body and a checksum). It names the circle, who they say they are, and
/// their new device, certified by the new member key they made, which
/// proves they hold it. It holds no secret: what makes it count is
/// members vouching, having checked with the person themselves (see
/// `roundtable_core::membership`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryRequest {
    /// The circle.
    pub circle: CircleId,
    /// The name they say is theirs in the circle ("Ana").
    pub name: String,
    /// Their new device, certified by their new member key.
    pub cert: DeviceCert,
}

#[derive(Serialize, Deserialize)]
enum RecoveryWire {
    V1 {
        circle: [u8; 16],
        name: String,
        key: [u8; 32],
        device: [u8; 32],
        sig: Vec<u8>,
    },
}

impl Ticket for RecoveryRequest {
    const KIND: &'static str = "roundtablerecover";

    fn encode_bytes(&self) -> Vec<u8> {
        let wire = RecoveryWire::V1 {
            circle: *self.circle.as_bytes(),
            name: self.name.clone(),
            key: *self.cert.member.as_bytes(),
            device: *self.cert.device.as_bytes(),
            sig: self.cert.signature.to_vec(),
        };
        let mut body = postcard::to_stdvec(&wire).unwrap_or_default();
        let sum = checksum(&body);
        body.extend_from_slice(&sum);
        body
    }

    fn decode_bytes(bytes: &[u8]) -> Result<Self, ParseError> {
        let body = checked(bytes)?;
        let RecoveryWire::V1 {
            circle,
            name,
            key,
            device,
            sig,
        } = postcard::from_bytes(body)?;
        if name.trim().is_empty() || name.chars().count() > limits::NAME {
            return Err(ParseError::verification_failed(
                "the name in it is empty or too long",
            ));
        }
        let signature = <[u8; 64]>::try_from(sig.as_slice())
            .map_err(|_| ParseError::verification_failed("its signature is malformed"))?;
        let cert = DeviceCert {
            member: MemberId::from_bytes(key),
            device: DeviceId::from_bytes(device),
            signature,
        };
        cert.verify()
            .map_err(|_| ParseError::verification_failed("its certificate does not verify"))?;
        Ok(Self {
            circle: CircleId::from_bytes(circle),
            name,
            cert,
        })
    }
}

impl RecoveryRequest {
    /// A request to be recognised as `name` in `circle` on the device
    /// `cert` certifies, or, when the name would not read back, why in
    /// words.
    pub fn new(circle: CircleId, name: &str, cert: DeviceCert) -> Result<Self, String> {
        let name = name.trim();
        if name.is_empty() {
            return Err("say the name the circle knows you by".to_owned());
        }
        if name.chars().count() > limits::NAME {
            return Err(format!(
                "a name is at most {} characters: say the one the circle knows you by",
                limits::NAME
            ));
        }
        Ok(Self {
            circle,
            name: name.to_owned(),
            cert,
        })
    }

    /// The request as one line of text.
    pub fn to_line(&self) -> String {
        self.encode_string()
    }

    /// Reads a request someone pasted (white space anywhere is ignored,
    /// and case). Pure; never panics (fuzzed).
    pub fn parse(line: &str) -> Result<Self, TicketError> {
        let line = pasted(line);
        if !line.starts_with(Self::KIND) {
            return Err(TicketError::NotARecoveryRequest);
        }
        Self::decode_string(&line).map_err(|e| TicketError::DamagedRequest(why_damaged(e)))
    }
}

/// A line as pasted, without the white space chat apps and mail wrap long
/// lines with, and lower-cased (base32 a phone or a person upper-cased
/// reads the same).
fn pasted(line: &str) -> String {
    line.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A ticket with the right prefix that does not read.
fn damaged(e: ParseError) -> TicketError {
    TicketError::Damaged(why_damaged(e))
}

/// Why a line with the right prefix does not read, in words.
fn why_damaged(e: ParseError) -> String {
    match e {
        ParseError::Encoding { .. } => "not valid base32".to_owned(),
        ParseError::Postcard { .. } => "its contents do not parse".to_owned(),
        ParseError::Verify { message, .. } => message.to_owned(),
        other => other.to_string(),
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
    /// A steward's ticket where an invite was expected.
    #[error(
        "this is a steward's ticket, not an invite: add it with `roundtable steward add TICKET`"
    )]
    StewardNotInvite,
    /// Something else where a steward's ticket was expected.
    #[error(
        "this is not a steward's ticket (it should start with \"roundtablesteward\"); ask its operator for `roundtable steward ticket`"
    )]
    NotASteward,
    /// Something else where a recovery request was expected.
    #[error(
        "this is not a request to be recognised on a new device (it should start with \"roundtablerecover\"); ask the person to send it again"
    )]
    NotARecoveryRequest,
    /// A recovery request where an invite was expected.
    #[error(
        "this is someone's request to be recognised on a new device, not an invite: vouch for it with `roundtable vouch REQUEST` once you have checked with them"
    )]
    RecoveryNotInvite,
    /// Cut short, mistyped, or altered.
    #[error("this ticket is damaged or incomplete ({0}); copy the whole line again")]
    Damaged(String),
    /// A recovery request cut short, mistyped, or altered.
    #[error("this request is damaged or incomplete ({0}); copy the whole line again")]
    DamagedRequest(String),
}

impl CircleTicket {
    /// The inviting device.
    pub fn inviter_device(&self) -> DeviceId {
        DeviceId::from_bytes(*self.inviter.id.as_bytes())
    }

    fn signed_part(&self) -> Vec<u8> {
        let mut part = [
            TICKET_CONTEXT,
            self.circle.as_bytes(),
            self.inviter.id.as_bytes(),
            self.invite.as_bytes(),
            blake3::hash(self.secret.as_bytes()).as_bytes(),
            &[u8::from(self.kind == InviteKind::Device)],
            &self.expires_at.as_millis().to_le_bytes(),
            &self.uses.to_le_bytes(),
        ]
        .concat();
        // The stewards' ids are signed too (a ticket without any signs as
        // before).
        for s in &self.stewards {
            part.extend_from_slice(s.id.as_bytes());
        }
        part
    }

    /// Signs the ticket with the inviting device's key (whose id must be
    /// `inviter.id`).
    pub fn sign(&mut self, key: &DeviceKey) {
        self.sig = key.sign(&self.signed_part());
    }

    /// The ticket as one line of text.
    pub fn to_line(&self) -> String {
        self.encode_string()
    }

    /// Reads a ticket someone pasted. Surrounding white space is ignored.
    /// Pure; never panics (fuzzed).
    /// Whitespace anywhere in the text is ignored: chat apps and mail wrap
    /// long lines.
    /// Tickets are lower-case base32, so one a phone or a person upper-cased
    /// reads the same.
    pub fn parse(line: &str) -> Result<Self, TicketError> {
        let line = pasted(line);
        if line.starts_with(StewardTicket::KIND) {
            return Err(TicketError::StewardNotInvite);
        }
        if line.starts_with(RecoveryRequest::KIND) {
            return Err(TicketError::RecoveryNotInvite);
        }
        if !line.starts_with(Self::KIND) {
            return Err(TicketError::WrongPrefix);
        }
        Self::decode_string(&line).map_err(|e| match e {
            ParseError::Kind { .. } => TicketError::WrongPrefix,
            other => damaged(other),
        })
    }
}

/// Where to reach a steward, as its operator hands it out: one line,
/// `roundtablesteward` and base32 of its address and a checksum. It holds
/// no secret: the steward's id is proved by TLS when a device connects,
/// and the addresses are hints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StewardTicket {
    /// The steward's id and addresses.
    pub addr: EndpointAddr,
}

#[derive(Serialize, Deserialize)]
enum StewardWire {
    V1 { addr: EndpointAddr },
}

impl Ticket for StewardTicket {
    const KIND: &'static str = "roundtablesteward";

    fn encode_bytes(&self) -> Vec<u8> {
        let mut body = postcard::to_stdvec(&StewardWire::V1 {
            addr: self.addr.clone(),
        })
        .unwrap_or_default();
        let sum = checksum(&body);
        body.extend_from_slice(&sum);
        body
    }

    fn decode_bytes(bytes: &[u8]) -> Result<Self, ParseError> {
        let body = checked(bytes)?;
        let StewardWire::V1 { addr } = postcard::from_bytes(body)?;
        Ok(Self { addr })
    }
}

impl StewardTicket {
    /// The steward's id.
    pub fn id(&self) -> [u8; 32] {
        *self.addr.id.as_bytes()
    }

    /// The ticket as one line of text.
    pub fn to_line(&self) -> String {
        self.encode_string()
    }

    /// Reads a steward's ticket someone pasted (white space anywhere is
    /// ignored). Pure; never panics (fuzzed).
    pub fn parse(line: &str) -> Result<Self, TicketError> {
        let line = pasted(line);
        if !line.starts_with(Self::KIND) {
            return Err(TicketError::NotASteward);
        }
        Self::decode_string(&line).map_err(damaged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> CircleTicket {
        let key = DeviceKey::from_seed(&[5; 32]);
        let id = iroh::PublicKey::from_bytes(key.id().as_bytes()).unwrap();
        let mut t = CircleTicket {
            circle: CircleId::from_bytes([1; 16]),
            inviter: EndpointAddr::new(id).with_ip_addr("127.0.0.1:4242".parse().unwrap()),
            invite: EntityId::from_bytes([2; 8]),
            secret: InviteSecret::from_bytes([3; 32]),
            kind: InviteKind::Member,
            expires_at: Timestamp::from_millis(1_795_464_000_000),
            uses: 1,
            stewards: Vec::new(),
            sig: [0; 64],
        };
        t.sign(&key);
        t
    }

    #[test]
    fn an_upper_cased_ticket_reads_the_same() {
        let t = ticket();
        let line = t.to_line();
        assert_eq!(CircleTicket::parse(&line.to_uppercase()).unwrap(), t);
        let mixed: String = line
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 3 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        assert_eq!(CircleTicket::parse(&mixed).unwrap(), t);
    }

    #[test]
    fn a_tampered_ticket_is_refused_even_with_a_good_checksum() {
        let mut t = ticket();
        // Someone extends the expiry and re-computes the checksum: the signature catches it.
        t.expires_at = Timestamp::from_millis(t.expires_at.as_millis() + 86_400_000);
        let err = CircleTicket::parse(&t.to_line()).unwrap_err();
        assert!(err.to_string().contains("altered"), "{err}");
        let mut t = ticket();
        t.uses = 100;
        assert!(CircleTicket::parse(&t.to_line()).is_err());
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        let t = ticket();
        let line = t.to_line();
        assert!(line.starts_with("roundtable"), "{line}");
        assert_eq!(CircleTicket::parse(&format!("  {line}\n")).unwrap(), t);
        // Wrapped by a chat app every 40 characters, with spaces and tabs.
        let wrapped: String = line
            .as_bytes()
            .chunks(40)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n \t");
        assert_eq!(CircleTicket::parse(&wrapped).unwrap(), t);
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

    #[test]
    fn a_ticket_naming_stewards_round_trips_and_signs_them() {
        let key = DeviceKey::from_seed(&[5; 32]);
        let steward =
            iroh::PublicKey::from_bytes(DeviceKey::from_seed(&[7; 32]).id().as_bytes()).unwrap();
        let mut t = ticket();
        t.stewards =
            vec![EndpointAddr::new(steward).with_ip_addr("127.0.0.1:4244".parse().unwrap())];
        t.sign(&key);
        assert_eq!(CircleTicket::parse(&t.to_line()).unwrap(), t);
        // Another steward put in its place is caught by the signature.
        let other =
            iroh::PublicKey::from_bytes(DeviceKey::from_seed(&[8; 32]).id().as_bytes()).unwrap();
        t.stewards = vec![EndpointAddr::new(other)];
        let err = CircleTicket::parse(&t.to_line()).unwrap_err();
        assert!(err.to_string().contains("altered"), "{err}");
    }

    #[test]
    fn a_steward_ticket_round_trips_and_is_told_from_an_invite() {
        let key = DeviceKey::from_seed(&[6; 32]);
        let id = iroh::PublicKey::from_bytes(key.id().as_bytes()).unwrap();
        let t = StewardTicket {
            addr: EndpointAddr::new(id).with_ip_addr("127.0.0.1:4243".parse().unwrap()),
        };
        let line = t.to_line();
        assert!(line.starts_with("roundtablesteward"), "{line}");
        assert_eq!(StewardTicket::parse(&format!(" {line}\n")).unwrap(), t);
        assert_eq!(
            CircleTicket::parse(&line),
            Err(TicketError::StewardNotInvite)
        );
        assert_eq!(
            StewardTicket::parse(&ticket().to_line()),
            Err(TicketError::NotASteward)
        );
        assert!(matches!(
            StewardTicket::parse(&line[..line.len() - 3]),
            Err(TicketError::Damaged(_))
        ));
    }

    #[test]
    fn a_recovery_request_round_trips_and_is_told_from_an_invite() {
        let key = roundtable_core::MemberKey::from_seed(&[9; 32]);
        let device = DeviceKey::from_seed(&[10; 32]);
        let r = RecoveryRequest {
            circle: CircleId::from_bytes([1; 16]),
            name: "Ana".into(),
            cert: key.certify(device.id()),
        };
        let line = r.to_line();
        assert!(line.starts_with("roundtablerecover"), "{line}");
        // Wrapped and upper-cased by a chat app, it reads the same.
        let wrapped = format!(" {}\n{} ", &line[..40], line[40..].to_uppercase());
        assert_eq!(RecoveryRequest::parse(&wrapped).unwrap(), r);
        assert_eq!(
            CircleTicket::parse(&line),
            Err(TicketError::RecoveryNotInvite)
        );
        assert_eq!(
            RecoveryRequest::parse(&ticket().to_line()),
            Err(TicketError::NotARecoveryRequest)
        );
        let cut = RecoveryRequest::parse(&line[..line.len() - 3]).unwrap_err();
        assert!(matches!(cut, TicketError::DamagedRequest(_)));
        assert!(
            cut.to_string().starts_with("this request is damaged"),
            "{cut}"
        );
        // A certificate that is not the new key's own is refused.
        let mut forged = r.clone();
        forged.cert.device = DeviceKey::from_seed(&[11; 32]).id();
        let err = RecoveryRequest::parse(&forged.to_line()).unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");
        // So is a name nobody could have.
        let mut long = r.clone();
        long.name = "A".repeat(500);
        assert!(RecoveryRequest::parse(&long.to_line()).is_err());
    }
}
