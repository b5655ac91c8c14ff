//! `RecoveryRequest::parse` on arbitrary text, as a person might paste it.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_net::fuzzing::recovery_request(data));
