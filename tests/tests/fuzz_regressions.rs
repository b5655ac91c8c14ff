//! Replays the inputs kept in `fuzz/regressions/` for every fuzz target
//! through the same checks the targets run, so that whatever the fuzzer once
//! found stays fixed, on a stable toolchain and without the fuzzer.

#![allow(clippy::unwrap_used)]

use std::panic::catch_unwind;
use std::path::{Path, PathBuf};

/// Runs `check` on every input kept for `target`; fails naming each input
/// whose check panicked (its message is printed above), or if there are none.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no inputs kept in {}", dir.display());
    let failed: Vec<String> = inputs
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).unwrap();
            catch_unwind(|| check(&data)).is_err()
        })
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs fail their check: {failed:?}",
        failed.len(),
        inputs.len()
    );
}

#[test]
fn key_file() {
    replay("key_file", roundtable_core::fuzzing::key_file);
}

#[test]
fn circle_bytes() {
    replay("circle_bytes", roundtable_core::fuzzing::circle_bytes);
}

#[test]
fn wire() {
    replay("wire", roundtable_core::fuzzing::wire);
}

#[test]
fn seen() {
    replay("seen", roundtable_core::fuzzing::seen);
}

#[test]
fn recovery_words() {
    replay("recovery_words", roundtable_core::fuzzing::recovery_words);
}

#[test]
fn farewell() {
    replay("farewell", roundtable_core::fuzzing::farewell);
}

#[test]
fn store_files() {
    replay("store_files", roundtable_store::fuzzing::store_files);
}

#[test]
fn ticket() {
    replay("ticket", roundtable_net::fuzzing::ticket);
}

#[test]
fn envelope() {
    replay("envelope", roundtable_core::fuzzing::envelope);
}

#[test]
fn dates() {
    replay("dates", roundtable_core::fuzzing::dates);
}

#[test]
fn live_have() {
    replay("live_have", roundtable_web::fuzzing::live_have);
}

#[test]
fn web_request() {
    replay("web_request", roundtable_web::fuzzing::web_request);
}

#[test]
fn steward() {
    replay("steward", roundtable_core::fuzzing::steward);
}

#[test]
fn steward_ticket() {
    replay("steward_ticket", roundtable_net::fuzzing::steward_ticket);
}

#[test]
fn recovery_request() {
    replay(
        "recovery_request",
        roundtable_net::fuzzing::recovery_request,
    );
}

#[test]
fn steward_requests() {
    replay(
        "steward_requests",
        roundtable_steward::fuzzing::steward_requests,
    );
}
