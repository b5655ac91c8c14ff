//! `wire::decode` on arbitrary bytes, for every message a peer sends.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_core::fuzzing::wire(data));
