//! The store on the real file system, and the home lock.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use roundtable_store::{
    CircleFiles, Damage, FileKind, HomeLock, LockError, OsFs, StoreError, write_durably,
};

#[test]
fn a_circle_round_trips_through_the_real_file_system() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("circles").join("c1");
    let mut files = CircleFiles::create(Arc::new(OsFs), &dir, b"snapshot 1").unwrap();
    files.append(b"one").unwrap();
    files.append(b"two").unwrap();
    assert!(matches!(
        CircleFiles::create(Arc::new(OsFs), &dir, b"again"),
        Err(StoreError::AlreadyExists { .. })
    ));

    let (mut files, recovered) = CircleFiles::open(Arc::new(OsFs), &dir).unwrap();
    assert!(recovered.is_clean());
    assert_eq!(recovered.snapshot, b"snapshot 1");
    assert_eq!(recovered.records, [b"one".to_vec(), b"two".to_vec()]);
    files.append(b"three").unwrap();
    files.compact(b"snapshot 2").unwrap();
    files.append(b"four").unwrap();

    let (_, recovered) = CircleFiles::open(Arc::new(OsFs), &dir).unwrap();
    assert!(recovered.is_clean());
    assert_eq!(recovered.snapshot, b"snapshot 2");
    assert_eq!(recovered.records, [b"four".to_vec()]);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["log", "snapshot"]);
}

#[test]
fn open_reports_damage_and_changes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("c1");
    let mut files = CircleFiles::create(Arc::new(OsFs), &dir, b"snapshot").unwrap();
    files.append(b"one").unwrap();
    std::fs::write(dir.join("snapshot"), b"").unwrap();
    std::fs::remove_file(dir.join("log")).unwrap();

    let (mut files, recovered) = CircleFiles::open(Arc::new(OsFs), &dir).unwrap();
    assert!(recovered.has_real_damage());
    assert_eq!(
        recovered.damage,
        [
            Damage::BadMagic {
                file: FileKind::Snapshot
            },
            Damage::Missing {
                file: FileKind::Log
            },
        ]
    );
    assert_eq!(
        recovered.describe_damage(),
        "snapshot does not start with the RTSNAP01 header; the log file is missing"
    );
    assert_eq!(std::fs::read(dir.join("snapshot")).unwrap(), b"");
    assert!(!dir.join("log").exists());
    assert!(files.append(b"two").is_err());

    files.compact(b"rebuilt").unwrap();
    assert_eq!(files.set_aside(), [dir.join("damaged").join("snapshot-1")]);
    assert_eq!(std::fs::read(&files.set_aside()[0]).unwrap(), b"");
    let (_, recovered) = CircleFiles::open(Arc::new(OsFs), &dir).unwrap();
    assert!(recovered.is_clean());
    assert_eq!(recovered.snapshot, b"rebuilt");

    let missing = home.path().join("nothing here");
    let err = CircleFiles::open(Arc::new(OsFs), &missing).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

#[cfg(unix)]
#[test]
fn everything_written_is_private() {
    use std::os::unix::fs::PermissionsExt;

    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("circles").join("c1");
    let mut files = CircleFiles::create(Arc::new(OsFs), &dir, b"snapshot").unwrap();
    files.append(b"one").unwrap();
    files.compact(b"snapshot 2").unwrap();
    let key = home.path().join("device.key");
    write_durably(&OsFs, &key, b"secret").unwrap();
    assert_eq!(std::fs::read(&key).unwrap(), b"secret");

    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for file in [dir.join("snapshot"), dir.join("log"), key] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    for d in [home.path().join("circles"), dir] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
}

#[test]
fn a_second_writer_is_told_who_holds_the_home() {
    let home = tempfile::tempdir().unwrap();
    let held = HomeLock::acquire(home.path(), "roundtable up").unwrap();
    let err = HomeLock::acquire(home.path(), "roundtable checkin").unwrap_err();
    let LockError::Held { holder, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        *holder,
        format!("pid {} (roundtable up)", std::process::id())
    );
    let message = err.to_string();
    assert!(
        message.contains("pid") && message.contains("(roundtable up)"),
        "{message}"
    );
    assert!(
        message.contains("stop it or wait for it to finish"),
        "{message}"
    );
    assert!(
        HomeLock::shared(home.path()).is_err(),
        "a reader waits for the writer"
    );

    drop(held);
    let _writer = HomeLock::acquire(home.path(), "roundtable checkin").unwrap();
}

#[test]
fn readers_share_the_lock_and_keep_writers_out() {
    let home = tempfile::tempdir().unwrap();
    let first = HomeLock::shared(home.path()).unwrap();
    let second = HomeLock::shared(home.path()).unwrap();
    let err = HomeLock::acquire(home.path(), "roundtable up").unwrap_err();
    assert!(err.to_string().contains("a process reading it"), "{err}");
    drop((first, second));
    HomeLock::acquire(home.path(), "roundtable up").unwrap();
}

#[test]
fn a_lock_waits_briefly_for_its_holder() {
    let home = tempfile::tempdir().unwrap();
    let held = HomeLock::acquire(home.path(), "roundtable up").unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        drop(held);
    });
    HomeLock::acquire(home.path(), "roundtable checkin").unwrap();
    releaser.join().unwrap();
}

/// A new home with its identity, its writer's lock and a new circle in it.
struct Fresh {
    dir: tempfile::TempDir,
    home: roundtable_store::Home,
    lock: roundtable_store::WriteLock,
    me: roundtable_store::Identity,
    circle: roundtable_core::Circle,
    store: roundtable_store::CircleStore,
}

fn fresh_circle() -> Fresh {
    use roundtable_core::{Circle, EpochKey, Keyring, Profile, Timestamp};
    use roundtable_store::Home;

    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    let lock = home.lock("test").unwrap();
    let (me, _) = home.ensure_identity(&lock).unwrap();
    let mut rng = rand::rng();
    let t = Timestamp::from_millis(1_795_464_000_000);
    let circle =
        Circle::create("Supper", "", &me.cert, &Profile::named("Maya"), t, &mut rng).unwrap();
    let keys = Keyring::with(EpochKey::random(circle.id(), 0, &me.device, &mut rng));
    let store = home.create_circle(&lock, &circle, &keys).unwrap();
    Fresh {
        dir,
        home,
        lock,
        me,
        circle,
        store,
    }
}

/// A circle that lives for years: the log is folded into the snapshot as it
/// grows, so the files stay close to Automerge's own `save()`, and what
/// opens is exactly what was written.
#[test]
fn the_log_is_compacted_as_a_circle_grows() {
    use roundtable_core::{Mood, Timestamp};

    let Fresh {
        dir,
        home,
        lock,
        me,
        circle,
        mut store,
    } = fresh_circle();
    let mut rng = rand::rng();
    let t = Timestamp::from_millis(1_795_464_000_000);
    let files = |name: &str| {
        std::fs::metadata(
            dir.path()
                .join("circles")
                .join(circle.id().to_string())
                .join(name),
        )
        .unwrap()
        .len()
    };
    let mut most_log = 0;
    for i in 0..3_000 {
        store
            .edit(|c| -> Result<_, StoreError> {
                Ok(c.checkin(
                    me.member.id(),
                    Mood::Okay,
                    &format!("day {i}: a few words"),
                    t,
                    &mut rng,
                )
                .unwrap())
            })
            .unwrap();
        most_log = most_log.max(files("log"));
    }
    let saved = store.circle().save().len() as u64;
    let (snapshot, log) = (files("snapshot"), files("log"));
    // The log never grew past its share of the snapshot (plus one record).
    assert!(
        most_log <= (64 << 10) + 4096 || most_log <= snapshot / 8 + 4096,
        "log reached {most_log} B next to a {snapshot} B snapshot"
    );
    assert!(
        snapshot + log <= saved + saved / 8 + (64 << 10) + 64,
        "{snapshot} + {log} B on disk for a {saved} B save()"
    );
    let heads = store.circle().heads();
    drop(store);
    let reopened = home.open_circle(&lock, circle.id()).unwrap();
    assert_eq!(reopened.circle().heads(), heads);
    assert_eq!(reopened.circle().view().checkins.len(), 3_000);
}

/// A node leaves folding the log in to its own time: writes only append,
/// and `compact_if_due` folds the log in once it is due, not before.
#[test]
fn compaction_can_wait_for_its_holder() {
    use roundtable_core::{Mood, Timestamp};

    let Fresh {
        dir,
        home,
        lock,
        me,
        circle,
        mut store,
    } = fresh_circle();
    let mut rng = rand::rng();
    let t = Timestamp::from_millis(1_795_464_000_000);
    store.compact_later();
    let log = || {
        std::fs::metadata(
            dir.path()
                .join("circles")
                .join(circle.id().to_string())
                .join("log"),
        )
        .map_or(0, |m| m.len())
    };
    assert!(!store.compact_if_due().unwrap(), "nothing is due yet");
    for i in 0..1_000 {
        store
            .edit(|c| -> Result<_, StoreError> {
                Ok(
                    c.checkin(me.member.id(), Mood::Okay, &format!("day {i}"), t, &mut rng)
                        .unwrap(),
                )
            })
            .unwrap();
    }
    let grown = log();
    assert!(
        grown > 64 << 10,
        "the log was folded in by a write: {grown} B"
    );
    assert!(store.compact_if_due().unwrap(), "a grown log is due");
    assert!(log() < grown / 8, "the log is still {} B", log());
    assert!(
        !store.compact_if_due().unwrap(),
        "nothing is due right after"
    );
    let heads = store.circle().heads();
    drop(store);
    let reopened = home.open_circle(&lock, circle.id()).unwrap();
    assert_eq!(reopened.circle().heads(), heads);
}

#[test]
fn a_home_can_be_given_known_keys() {
    use roundtable_core::{DeviceKey, MemberKey};
    use roundtable_store::Home;

    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    let lock = home.lock("test").unwrap();
    let (member, device) = (
        MemberKey::from_seed(&[7; 32]),
        DeviceKey::from_seed(&[8; 32]),
    );
    let me = home.set_identity(&lock, &member, &device).unwrap();
    assert_eq!(me.member.id(), member.id());
    assert_eq!(me.device.id(), device.id());
    drop(lock);
    let again = Home::new(dir.path()).identity().unwrap().unwrap();
    assert_eq!(again.device.id(), device.id());
}

#[test]
fn files_are_measured_and_removed_on_the_real_file_system() {
    use std::io::ErrorKind;

    use roundtable_store::Fs;

    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("d");
    let file = dir.join("f");
    OsFs.create_dir_all(&dir).unwrap();
    OsFs.write_new(&file, b"12345").unwrap();
    OsFs.append(&file, b"678").unwrap();
    assert_eq!(OsFs.file_len(&file).unwrap(), 8);
    assert_eq!(
        OsFs.file_len(&dir).unwrap_err().kind(),
        ErrorKind::IsADirectory
    );
    assert_eq!(
        OsFs.file_len(&dir.join("g")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    OsFs.remove_file(&file).unwrap();
    OsFs.sync_dir(&dir).unwrap();
    assert!(!OsFs.exists(&file).unwrap());
    assert_eq!(
        OsFs.remove_file(&file).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(OsFs.remove_file(&dir).is_err(), "never a directory");
}
