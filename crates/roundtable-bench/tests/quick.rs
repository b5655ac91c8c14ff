//! The benchmarks' harness, in the test suite: every scenario runs at tiny
//! sizes next to its anchor and completes, and the table names each. The
//! numbers mean nothing here (a debug build, tiny sizes): speed is measured
//! by `--all` in release, as `docs/BENCHMARKS.md` says.

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Far more than the quick run takes on a slow machine.
const LIMIT: Duration = Duration::from_secs(20 * 60);

#[test]
fn every_scenario_runs_at_tiny_sizes_next_to_its_anchor() {
    let child = Command::new(env!("CARGO_BIN_EXE_roundtable-bench"))
        .arg("--quick")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the benchmarks start");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(LIMIT) {
        Ok(out) => out.expect("their output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("the quick benchmarks ran longer than {LIMIT:?}");
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for scenario in ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8"] {
        assert!(
            stderr.contains(&format!("   {scenario} done in")),
            "{scenario} did not complete:\n{stderr}"
        );
    }
    assert!(stdout.contains("sizes: quick"), "{stdout}");
    // B1 stands next to the floor as well as bare gossip, its parts named.
    for part in [
        "p50, against the floor",
        "the author's fsync",
        "Automerge's apply",
    ] {
        assert!(stdout.contains(part), "no {part:?} in B1:\n{stdout}");
    }
    // A live page's update stands next to the whole page, and is smaller:
    // only the parts that changed come back (bytes, not time).
    let live = stdout
        .lines()
        .find(|l| l.contains("a live page's update after a change"))
        .unwrap_or_else(|| panic!("no live update row:\n{stdout}"));
    assert!(live.contains("< 1×: met"), "{live}");
}
