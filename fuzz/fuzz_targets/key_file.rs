//! `parse_key_file` on arbitrary bytes, for every kind of key file.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_core::fuzzing::key_file(data));
