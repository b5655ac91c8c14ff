//! `dates::parse` on arbitrary text, as a person might type a date.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_core::fuzzing::dates(data));
