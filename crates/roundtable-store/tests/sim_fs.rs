//! The crash model of `SimFs` itself: what each kind of crash keeps.

#![allow(clippy::unwrap_used)]

use std::io::ErrorKind;
use std::path::Path;

use roundtable_store::Fs;
use roundtable_store::fault::{CrashState, Fault, Kept, SimFs};

fn p(path: &str) -> &Path {
    Path::new(path)
}

fn power_loss(entries: Kept, contents: Kept) -> CrashState {
    CrashState::PowerLoss { entries, contents }
}

#[test]
fn names_survive_a_power_cut_only_once_their_directory_is_synced() {
    let fs = SimFs::new();
    fs.create_dir_all(p("/d")).unwrap();
    fs.sync_dir(p("/")).unwrap();
    fs.write_new(p("/d/a.tmp"), b"new").unwrap();
    fs.sync_file(p("/d/a.tmp")).unwrap();
    fs.rename(p("/d/a.tmp"), p("/d/a")).unwrap();

    let lost = fs.crashed_state(CrashState::POWER_LOSS);
    assert_eq!(lost.list_dir(p("/d")).unwrap(), Vec::<String>::new());
    let kept = fs.crashed_state(power_loss(Kept::All, Kept::Synced));
    assert_eq!(kept.read(p("/d/a")).unwrap(), b"new");
    // Still volatile after a process exit: a power cut then loses it.
    let restarted = fs.crashed_state(CrashState::ProcessExit);
    assert_eq!(restarted.read(p("/d/a")).unwrap(), b"new");
    let later = restarted.crashed_state(CrashState::POWER_LOSS);
    assert!(!later.exists(p("/d/a")).unwrap());

    fs.sync_dir(p("/d")).unwrap();
    let synced = fs.crashed_state(CrashState::POWER_LOSS);
    assert_eq!(synced.list_dir(p("/d")).unwrap(), ["a"]);
    assert_eq!(synced.read(p("/d/a")).unwrap(), b"new");
}

#[test]
fn unsynced_bytes_survive_in_part_or_not_at_all() {
    let fs = SimFs::new();
    fs.write_new(p("/f"), b"head").unwrap();
    fs.sync_file(p("/f")).unwrap();
    fs.sync_dir(p("/")).unwrap();
    fs.append(p("/f"), b"12345678").unwrap();

    let read = |crash| fs.crashed_state(crash).read(p("/f")).unwrap();
    assert_eq!(read(CrashState::POWER_LOSS), b"head");
    assert_eq!(read(power_loss(Kept::Synced, Kept::All)), b"head12345678");
    assert_eq!(
        read(power_loss(Kept::Synced, Kept::Percent(50))),
        b"head1234"
    );
    assert_eq!(read(CrashState::ProcessExit), b"head12345678");
}

#[test]
fn a_failed_sync_drops_the_dirty_bytes_for_good() {
    let fs = SimFs::new();
    fs.write_new(p("/f"), b"head").unwrap();
    fs.sync_file(p("/f")).unwrap();
    fs.sync_dir(p("/")).unwrap();
    fs.append(p("/f"), b"lost").unwrap();
    fs.inject(fs.write_ops(), Fault::FailOnce(ErrorKind::Other));
    assert!(fs.sync_file(p("/f")).is_err());
    // Reads still see the bytes; a later sync succeeds without them.
    fs.append(p("/f"), b"more").unwrap();
    fs.sync_file(p("/f")).unwrap();
    assert_eq!(fs.read(p("/f")).unwrap(), b"headlostmore");
    let after = fs.crashed_state(CrashState::POWER_LOSS);
    assert_eq!(after.read(p("/f")).unwrap(), b"head\0\0\0\0more");
}

#[test]
fn faults_fire_at_their_operation() {
    let fs = SimFs::new();
    fs.inject(1, Fault::FailOnce(ErrorKind::StorageFull));
    fs.inject(3, Fault::FailFrom(ErrorKind::StorageFull));
    fs.write_new(p("/f"), b"abcd").unwrap();
    let err = fs.append(p("/f"), b"efgh").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StorageFull);
    assert_eq!(fs.read(p("/f")).unwrap(), b"abcdef", "half the bytes land");
    fs.sync_file(p("/f")).unwrap();
    for _ in 0..3 {
        assert!(fs.sync_dir(p("/")).is_err());
    }
    assert_eq!(fs.read(p("/f")).unwrap(), b"abcdef", "reads still work");
    assert_eq!(fs.write_ops(), 6);

    let fs = SimFs::new();
    fs.inject(0, Fault::Crash);
    assert!(fs.write_new(p("/f"), b"abcd").is_err());
    assert!(fs.has_crashed());
    assert!(fs.read(p("/f")).is_err(), "a stopped process reads nothing");
    let after = fs.crashed_state(power_loss(Kept::All, Kept::All));
    assert_eq!(after.read(p("/f")).unwrap(), b"ab");
}

#[test]
fn a_removal_survives_a_power_cut_only_once_its_directory_is_synced() {
    let fs = SimFs::new();
    fs.create_dir_all(p("/d")).unwrap();
    fs.sync_dir(p("/")).unwrap();
    fs.write_new(p("/d/a"), b"kept").unwrap();
    fs.sync_file(p("/d/a")).unwrap();
    fs.sync_dir(p("/d")).unwrap();
    fs.remove_file(p("/d/a")).unwrap();
    assert!(!fs.exists(p("/d/a")).unwrap());
    assert_eq!(
        fs.remove_file(p("/d/a")).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Not yet durable: a power cut brings the file back whole.
    let back = fs.crashed_state(CrashState::POWER_LOSS);
    assert_eq!(back.read(p("/d/a")).unwrap(), b"kept");
    let gone = fs.crashed_state(power_loss(Kept::All, Kept::Synced));
    assert!(!gone.exists(p("/d/a")).unwrap());
    // A process exit keeps the removal, still volatile.
    let restarted = fs.crashed_state(CrashState::ProcessExit);
    assert!(!restarted.exists(p("/d/a")).unwrap());
    let later = restarted.crashed_state(CrashState::POWER_LOSS);
    assert_eq!(later.read(p("/d/a")).unwrap(), b"kept");

    fs.sync_dir(p("/d")).unwrap();
    for crash in CrashState::VARIETY {
        assert!(!fs.crashed_state(crash).exists(p("/d/a")).unwrap());
    }
}

#[test]
fn a_removal_and_a_later_create_of_the_same_name_stay_in_order() {
    let fs = SimFs::new();
    fs.write_new(p("/a"), b"old").unwrap();
    fs.sync_file(p("/a")).unwrap();
    fs.sync_dir(p("/")).unwrap();
    fs.remove_file(p("/a")).unwrap();
    fs.write_new(p("/a"), b"new").unwrap();
    fs.sync_file(p("/a")).unwrap();

    let read = |crash| fs.crashed_state(crash).read(p("/a")).ok();
    assert_eq!(read(CrashState::POWER_LOSS).as_deref(), Some(&b"old"[..]));
    assert_eq!(
        read(power_loss(Kept::All, Kept::Synced)).as_deref(),
        Some(&b"new"[..])
    );
    // Half of the two changes: the removal without the new name.
    assert_eq!(read(power_loss(Kept::Percent(50), Kept::All)), None);
}

#[test]
fn a_removal_fails_cleanly() {
    let fs = SimFs::new();
    fs.create_dir_all(p("/d")).unwrap();
    assert_eq!(
        fs.remove_file(p("/d")).unwrap_err().kind(),
        ErrorKind::IsADirectory
    );
    assert_eq!(
        fs.remove_file(p("/nowhere/f")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    fs.write_new(p("/d/f"), b"x").unwrap();
    fs.inject(fs.write_ops(), Fault::FailOnce(ErrorKind::PermissionDenied));
    assert!(fs.remove_file(p("/d/f")).is_err());
    assert!(
        fs.exists(p("/d/f")).unwrap(),
        "a failed removal removes nothing"
    );
    fs.inject(fs.write_ops(), Fault::Crash);
    assert!(fs.remove_file(p("/d/f")).is_err());
    let after = fs.crashed_state(CrashState::ProcessExit);
    assert!(
        after.exists(p("/d/f")).unwrap(),
        "nor does a crash during it"
    );
}

#[test]
fn file_len_reads_nothing_and_tells_a_directory_apart() {
    let fs = SimFs::new();
    fs.create_dir_all(p("/d")).unwrap();
    fs.write_new(p("/d/f"), b"12345").unwrap();
    fs.append(p("/d/f"), b"678").unwrap();
    let ops = fs.write_ops();
    assert_eq!(fs.file_len(p("/d/f")).unwrap(), 8);
    assert_eq!(fs.write_ops(), ops, "not counted as a change");
    assert_eq!(
        fs.file_len(p("/d")).unwrap_err().kind(),
        ErrorKind::IsADirectory
    );
    assert_eq!(
        fs.file_len(p("/d/g")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}
