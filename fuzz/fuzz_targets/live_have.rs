//! What a live page says it holds (`X-Live-Have`), arbitrary: never a
//! panic, only the page's own parts sent, each once, and readable back.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_web::fuzzing::live_have(data));
