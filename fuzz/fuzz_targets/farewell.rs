//! The farewell protocol: what a removed device asks and is answered.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_core::fuzzing::farewell(data));
