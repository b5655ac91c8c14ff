//! `StewardTicket::parse` on any line a person could paste.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_net::fuzzing::steward_ticket(data));
