//! Damaged files and a second writer: clear errors, nothing overwritten,
//! everything that verifies recovered.

#![allow(clippy::unwrap_used)]

use roundtable_tests::TestHome;

fn circle_dir(home: &TestHome) -> std::path::PathBuf {
    let circles = home.path().join("circles");
    let entry = std::fs::read_dir(&circles)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    entry.path()
}

fn home_with_checkins(n: usize) -> TestHome {
    let home = TestHome::new();
    home.run(&["circle", "create", "Supper", "--as", "Maya"])
        .ok();
    for i in 0..n {
        home.run(&["checkin", "--mood", "okay", &format!("day {i}")])
            .ok();
    }
    home
}

fn notes(home: &TestHome) -> Vec<String> {
    roundtable_tests::notes(&home.run(&["show", "--json"]).ok().json())
}

#[test]
fn a_flipped_byte_is_refused_untouched_then_repaired() {
    let home = home_with_checkins(4);
    let log = circle_dir(&home).join("log");
    let mut bytes = std::fs::read(&log).unwrap();
    // Flip a byte inside the second record's payload.
    let len = bytes.len();
    bytes[len - 30] ^= 0x40;
    std::fs::write(&log, &bytes).unwrap();
    let before = home.snapshot_files();
    for args in [
        &["show"][..],
        &["checkin", "--mood", "okay"],
        &["feed", "--json"],
    ] {
        let r = home.run(args).expect_code(1).one_line_error();
        assert!(r.stderr.contains("repair"), "says what to do: {}", r.stderr);
    }
    assert_eq!(
        before,
        home.snapshot_files(),
        "a damaged circle was changed"
    );

    let r = home.run(&["repair", "--json"]).ok().json();
    let aside = r["set_aside"].as_array().unwrap();
    assert_eq!(aside.len(), 1, "{r}");
    let kept = std::fs::read(aside[0].as_str().unwrap()).unwrap();
    assert_eq!(kept, bytes, "the damaged file is kept aside byte for byte");
    // The last check-in's record was damaged; the others verify and are kept.
    assert_eq!(notes(&home), vec!["day 0", "day 1", "day 2"]);
    home.run(&["checkin", "--mood", "thriving", "fixed"]).ok();
    assert_eq!(notes(&home).len(), 4);
}

#[test]
fn a_torn_last_record_opens_and_is_set_aside_on_the_next_edit() {
    let home = home_with_checkins(3);
    let log = circle_dir(&home).join("log");
    let bytes = std::fs::read(&log).unwrap();
    // A crash in the middle of appending a fourth record.
    let mut torn = bytes.clone();
    torn.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&log, &torn).unwrap();
    assert_eq!(notes(&home), vec!["day 0", "day 1", "day 2"]);
    home.run(&["checkin", "--mood", "okay", "day 3"]).ok();
    assert_eq!(notes(&home), vec!["day 0", "day 1", "day 2", "day 3"]);
    let damaged = circle_dir(&home).join("damaged");
    let kept: Vec<Vec<u8>> = std::fs::read_dir(&damaged)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        kept.contains(&torn),
        "the torn log is kept aside, not deleted"
    );
}

#[test]
fn zero_length_and_missing_files_are_refused() {
    let home = home_with_checkins(1);
    let dir = circle_dir(&home);
    std::fs::write(dir.join("snapshot"), b"").unwrap();
    let r = home.run(&["show"]).expect_code(1).one_line_error();
    assert!(r.stderr.contains("snapshot"), "{}", r.stderr);

    let home = home_with_checkins(1);
    let dir = circle_dir(&home);
    std::fs::remove_file(dir.join("log")).unwrap();
    let before = home.snapshot_files();
    let r = home
        .run(&["checkin", "--mood", "okay"])
        .expect_code(1)
        .one_line_error();
    assert!(r.stderr.contains("log"), "{}", r.stderr);
    assert_eq!(before, home.snapshot_files());
}

#[test]
fn a_damaged_key_file_is_a_clear_error() {
    let home = home_with_checkins(0);
    let key = home.path().join("identity").join("device.key");
    std::fs::write(&key, b"roundtable-device-key-1:zz").unwrap();
    let before = home.snapshot_files();
    let r = home
        .run(&["checkin", "--mood", "okay"])
        .expect_code(1)
        .one_line_error();
    assert!(r.stderr.contains("device.key"), "{}", r.stderr);
    home.run(&["id"]).expect_code(1).one_line_error();
    assert_eq!(
        before,
        home.snapshot_files(),
        "a damaged key is never overwritten"
    );
}

#[test]
fn a_second_writer_is_told_who_holds_the_home() {
    let home = home_with_checkins(0);
    let store = roundtable_store::Home::new(home.path());
    let _held = store.lock("roundtable up").unwrap();
    let before = home.snapshot_files();
    let r = home
        .run(&["checkin", "--mood", "okay"])
        .expect_code(1)
        .one_line_error();
    assert!(
        r.stderr.contains("roundtable up"),
        "names the holder: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&std::process::id().to_string()),
        "{}",
        r.stderr
    );
    assert_eq!(before, home.snapshot_files());
}

#[test]
fn a_running_node_names_repair_for_a_damaged_circle() {
    let home = home_with_checkins(4);
    let log = circle_dir(&home).join("log");
    let mut bytes = std::fs::read(&log).unwrap();
    let len = bytes.len();
    bytes[len - 30] ^= 0x40;
    std::fs::write(&log, &bytes).unwrap();
    let before = home.snapshot_files();
    let up = roundtable_tests::Up::start(&home);
    for args in [&["show"][..], &["checkin", "--mood", "okay", "hello"]] {
        let r = home.run(args).expect_code(1).one_line_error();
        assert!(
            r.stderr.contains("repair") && !r.stderr.contains("no circle yet"),
            "says what to do: {}",
            r.stderr
        );
    }
    up.stop();
    let after = home.snapshot_files();
    let circles: Vec<_> = before
        .keys()
        .filter(|p| p.to_string_lossy().contains("circles"))
        .collect();
    for p in circles {
        assert_eq!(before.get(p), after.get(p), "{} was changed", p.display());
    }
}
