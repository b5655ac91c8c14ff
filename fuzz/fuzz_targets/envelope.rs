//! Opening a sealed gossip envelope, and reading a circle key file, on
//! arbitrary bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_core::fuzzing::envelope(data));
