//! A recovery key as a person types it back into `roundtable recover --words`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roundtable_core::fuzzing::recovery_words(data));
