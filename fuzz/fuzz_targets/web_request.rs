//! The web app's guard on an arbitrary request head: never a panic, never a
//! request let through without the secret, at another host or from another
//! origin.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_web::fuzzing::web_request(data));
