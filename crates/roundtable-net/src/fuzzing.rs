//! Checks run by the `ticket` fuzz target and by the replay of its kept
//! inputs (`tests/tests/fuzz_regressions.rs`). Not part of the API.
#![doc(hidden)]

use iroh_tickets::Ticket;

use crate::{CircleTicket, RecoveryRequest, StewardTicket};

/// A pasted line never panics the parser; a ticket that parses prints back
/// to a line that parses to the same ticket.
pub fn ticket(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = CircleTicket::parse(line) {
        let again = CircleTicket::parse(&t.to_line()).expect("a printed ticket parses");
        assert_eq!(again, t, "a ticket survives printing");
        assert_eq!(again.encode_bytes(), t.encode_bytes());
    }
}

/// The same for a steward's ticket.
pub fn steward_ticket(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = StewardTicket::parse(line) {
        let again = StewardTicket::parse(&t.to_line()).expect("a printed ticket parses");
        assert_eq!(again, t, "a steward's ticket survives printing");
    }
}

/// The same for a request to be recognised on a new device.
pub fn recovery_request(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = RecoveryRequest::parse(line) {
        let again = RecoveryRequest::parse(&r.to_line()).expect("a printed request parses");
        assert_eq!(again, r, "a request survives printing");
    }
}
