//! Automerge bytes from a peer or the disk: `Circle::load`, `Circle::apply`
//! and a sync message on a valid circle, then its view and canonical JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_core::fuzzing::circle_bytes(data));
