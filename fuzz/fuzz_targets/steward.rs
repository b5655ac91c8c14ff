//! What a device does with bytes a steward hands it: shelf items of every
//! kind, waiting welcomes, the changes an item covers.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_core::fuzzing::steward(data));
