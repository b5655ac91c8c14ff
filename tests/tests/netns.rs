//! Separate machines, as network namespaces: three hosts on a bridge, each
//! running the real `roundtable up`, converge after a partition heals. Needs
//! root and `ip` (iproute2); CI has both.

use std::process::Command;

use roundtable_tests::roundtable_bin;

fn can_run() -> Result<(), String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| e.to_string())?;
    if String::from_utf8_lossy(&root.stdout).trim() != "0" {
        return Err("not root".into());
    }
    Command::new("ip")
        .arg("-V")
        .output()
        .map_err(|_| "iproute2 (`ip`) is not installed".to_owned())?;
    // One probe per call: the tests of this file ask at the same time.
    static PROBES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = format!("rtprobe{}x{n}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &probe])
        .status()
        .map_err(|e| e.to_string())?;
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    if !ok.success() {
        return Err("network namespaces cannot be made here".into());
    }
    Ok(())
}

#[test]
fn three_hosts_in_namespaces_converge_after_a_partition() {
    if let Err(why) = can_run() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the namespace test, but: {why}"
        );
        println!("skipped: {why}");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/netns/partition.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(roundtable_bin())
        .output()
        .expect("run the namespace script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "the namespace test failed:\n{text}");
    assert!(text.contains("identical on all three hosts"), "{text}");
}

#[test]
fn a_joiner_reaches_the_steward_only_through_a_relay() {
    if let Err(why) = can_run() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the namespace test, but: {why}"
        );
        println!("skipped: {why}");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/netns/steward_relay.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(roundtable_bin())
        .arg(env!("CARGO_BIN_EXE_relay"))
        .output()
        .expect("run the namespace script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "the namespace test failed:\n{text}");
    assert!(text.contains("joined through the relay"), "{text}");
    assert!(
        text.contains("the inviter sees Joe in the circle"),
        "{text}"
    );
}
