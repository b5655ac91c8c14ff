//! A steward answering a stream of requests from anyone.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_steward::fuzzing::steward_requests(data));
