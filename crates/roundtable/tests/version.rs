//! The binary itself answers `--version` and `--help`. (Having a test here
//! also makes `cargo test --workspace` build the binary that the
//! integration tests in `tests/` run.)

use std::process::Command;

#[test]
fn version_and_help() {
    let bin = env!("CARGO_BIN_EXE_roundtable");
    let out = Command::new(bin).arg("--version").output().expect("runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("roundtable "));
    let out = Command::new(bin).arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["up", "invite", "join", "checkin", "quiet"] {
        assert!(help.contains(cmd), "{help}");
    }
    let out = Command::new(bin).arg("--bogus").output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "bad usage exits 2");
}
