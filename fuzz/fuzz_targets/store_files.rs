//! `parse_log` and `parse_snapshot` on arbitrary bytes, as a damaged or
//! hostile circle directory would hand them over.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_store::fuzzing::store_files(data));
