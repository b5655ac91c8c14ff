//! `FsBlobs` on the real disk and on the store's crash-simulating `SimFs`:
//! the shared behaviour, then what crashes and failed writes leave.

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;

use roundtable_steward::blobs::{BlobError, Blobs, FsBlobs, MAX_BLOB_LEN};
use roundtable_store::fault::{CrashState, Fault, SimFs};
use roundtable_store::{Fs, OsFs};

use common::{behaves_as_blobs, racing_creates};

const ROOT: &str = "/home/steward/blobs";

#[test]
fn behaves_as_blobs_on_the_real_disk() {
    let home = tempfile::tempdir().unwrap();
    let blobs = FsBlobs::open(OsFs, home.path().join("blobs")).unwrap();
    behaves_as_blobs(&blobs);
}

#[test]
fn behaves_as_blobs_on_sim_fs() {
    let blobs = FsBlobs::open(SimFs::new(), ROOT).unwrap();
    behaves_as_blobs(&blobs);
}

#[test]
fn racing_creates_have_one_winner() {
    let home = tempfile::tempdir().unwrap();
    let blobs = FsBlobs::open(OsFs, home.path()).unwrap();
    racing_creates(&[&blobs], 40);
}

#[test]
fn writers_of_different_keys_do_not_disturb_each_other() {
    let home = tempfile::tempdir().unwrap();
    let blobs = FsBlobs::open(OsFs, home.path()).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let blobs = &blobs;
            s.spawn(move || {
                for i in 0..25 {
                    // Every thread writes into the same new directories.
                    blobs.put(&format!("d/{}/{t}-{i}", i % 5), &[t; 9]).unwrap();
                }
            });
        }
    });
    let listed = blobs.list("d", None, 1000).unwrap();
    assert_eq!(listed.len(), 100);
    assert!(listed.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(listed.iter().all(|(_, len)| *len == 9));
}

#[test]
fn blobs_are_private_files_where_the_layout_says() {
    use std::os::unix::fs::PermissionsExt;

    let home = tempfile::tempdir().unwrap();
    let blobs = FsBlobs::open(OsFs, home.path().join("blobs")).unwrap();
    blobs.put("lockers/ab/0001", b"sealed").unwrap();
    blobs.put("lockers", b"also a blob").unwrap();
    let file = home.path().join("blobs/lockers+/ab+/0001");
    assert_eq!(std::fs::read(&file).unwrap(), b"sealed");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir = std::fs::metadata(home.path().join("blobs/lockers+")).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);
    assert_eq!(
        std::fs::read(home.path().join("blobs/lockers")).unwrap(),
        b"also a blob"
    );
}

#[test]
fn an_oversized_file_is_refused_not_read() {
    let home = tempfile::tempdir().unwrap();
    let blobs = FsBlobs::open(OsFs, home.path()).unwrap();
    blobs.put("big", b"small for now").unwrap();
    // Sparse: nothing is written, and nothing would be read.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(home.path().join("big"))
        .unwrap();
    file.set_len(MAX_BLOB_LEN + 1).unwrap();
    assert!(matches!(blobs.get("big"), Err(BlobError::Io(_))));
    assert_eq!(
        blobs.list("", None, 10).unwrap(),
        [("big".to_owned(), MAX_BLOB_LEN + 1)],
        "listed with its size, which is measured, not read"
    );
    file.set_len(MAX_BLOB_LEN).unwrap();
    assert_eq!(
        blobs.get("big").unwrap().unwrap().len() as u64,
        MAX_BLOB_LEN
    );
}

/// One step of a workload.
#[derive(Debug, Clone, Copy)]
enum Op {
    Put(&'static str, &'static [u8]),
    Create(&'static str, &'static [u8]),
    Delete(&'static str),
}

use Op::{Create, Delete, Put};

/// Replaces, creates (won and lost), deletes and re-creates, in new and
/// shared directories, with a key that is also a prefix.
const WORKLOAD: [Op; 12] = [
    Put("l/a/one", b"first"),
    Create("l/a/two", b"created"),
    Put("top", b"top"),
    Put("l/a/one", b"second, longer than the first"),
    Create("l/a/two", b"not again"),
    Delete("top"),
    Create("top", b"top again"),
    Put("l", b"a blob that is a prefix too"),
    Put("l/b/c/d", b"deep"),
    Delete("l/a/one"),
    Create("l/a/one", b"third"),
    Put("l/b/c/d", b"deeper"),
];

fn keys() -> Vec<&'static str> {
    let mut keys: Vec<&str> = WORKLOAD
        .iter()
        .map(|op| match *op {
            Put(k, _) | Create(k, _) | Delete(k) => k,
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// What each key may hold: every value it may have, `None` for absent.
type Allowed = BTreeMap<&'static str, Vec<Option<Vec<u8>>>>;

/// Runs the workload on `fs` and says what each key may hold afterwards.
/// With `stop_at_error`, stops at the first failed call (a crash);
/// otherwise goes on, as a process does after a failed write.
fn run(fs: &SimFs, stop_at_error: bool) -> Allowed {
    let mut allowed: Allowed = keys().into_iter().map(|k| (k, vec![None])).collect();
    let blobs = match FsBlobs::open(fs.clone(), ROOT) {
        Ok(blobs) => blobs,
        Err(_) if stop_at_error => return allowed,
        // A failure that passes: the next open works.
        Err(_) => match FsBlobs::open(fs.clone(), ROOT) {
            Ok(blobs) => blobs,
            Err(_) => return allowed,
        },
    };
    for op in WORKLOAD {
        let (key, outcome) = match op {
            Put(k, v) => (k, blobs.put(k, v).map(|()| Some(v.to_vec()))),
            Delete(k) => (k, blobs.delete(k).map(|()| None)),
            Create(k, v) => {
                let outcome = blobs.create(k, v).map(|won| {
                    let may = &allowed[k];
                    if won {
                        assert!(may.contains(&None), "{k} was created twice");
                        Some(v.to_vec())
                    } else {
                        assert!(may.iter().any(Option::is_some), "{k} was free");
                        None
                    }
                });
                match outcome {
                    Ok(Some(v)) => (k, Ok(Some(v))),
                    // Lost: the key keeps what it may hold, less absence.
                    Ok(None) => {
                        allowed.get_mut(k).unwrap().retain(Option::is_some);
                        continue;
                    }
                    Err(e) => (k, Err(e)),
                }
            }
        };
        let may = allowed.get_mut(key).unwrap();
        match outcome {
            Ok(value) => *may = vec![value],
            Err(_) => {
                let intended = match op {
                    Put(_, v) | Create(_, v) => Some(v.to_vec()),
                    Delete(_) => None,
                };
                may.push(intended);
                if stop_at_error {
                    return allowed;
                }
            }
        }
    }
    allowed
}

/// Checks the blobs in `fs` against `allowed`; returns what each key holds.
fn check(fs: &SimFs, allowed: &Allowed, context: &str) -> BTreeMap<&'static str, Vec<u8>> {
    let blobs = FsBlobs::open(fs.clone(), ROOT).unwrap();
    let mut held = BTreeMap::new();
    for (key, may) in allowed {
        let got = blobs.get(key).unwrap();
        assert!(
            may.contains(&got),
            "{context}: {key} holds {got:?}, not one of {may:?}"
        );
        if let Some(bytes) = got {
            held.insert(*key, bytes);
        }
    }
    let expected: Vec<(String, u64)> = held
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.len() as u64))
        .collect();
    assert_eq!(blobs.list("", None, 100).unwrap(), expected, "{context}");
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = blobs.list("", after.as_deref(), 2).unwrap();
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        paged.extend(page);
    }
    assert_eq!(paged, expected, "{context}: in pages");
    for (path, _) in fs.files() {
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(!name.starts_with('.'), "{context}: {} left", path.display());
    }
    held
}

/// After recovering from a crash, writes on, then cuts the power: what was
/// acknowledged after the restart survives, and so does whatever a lost
/// create found there.
fn write_on_and_cut_power(fs: &SimFs, allowed: &Allowed, context: &str) {
    let held = check(fs, allowed, context);
    let blobs = FsBlobs::open(fs.clone(), ROOT).unwrap();
    let mut allowed = allowed.clone();
    for (key, bytes) in &held {
        assert!(!blobs.create(key, b"lost").unwrap(), "{context}: {key}");
        allowed.insert(*key, vec![Some(bytes.clone())]);
    }
    blobs.put("l/b/c/new", b"after the restart").unwrap();
    allowed.insert("l/b/c/new", vec![Some(b"after the restart".to_vec())]);
    if let Some((key, _)) = held.iter().next() {
        blobs.delete(key).unwrap();
        allowed.insert(*key, vec![None]);
    }
    if !held.contains_key("top") {
        assert!(blobs.create("top", b"created after").unwrap());
        allowed.insert("top", vec![Some(b"created after".to_vec())]);
    }
    drop(blobs);
    let context = format!("{context}, then a power cut");
    check(
        &fs.crashed_state(CrashState::POWER_LOSS),
        &allowed,
        &context,
    );
}

#[test]
fn a_crash_at_any_point_leaves_every_key_old_or_new() {
    let clean = SimFs::new();
    let allowed = run(&clean, true);
    assert!(allowed.values().all(|may| may.len() == 1));
    let total = clean.write_ops();
    for crash_at in 0..=total {
        let fs = SimFs::new();
        fs.inject(crash_at, Fault::Crash);
        let allowed = run(&fs, true);
        assert_eq!(fs.has_crashed(), crash_at < total);
        for crash in CrashState::VARIETY {
            let context = format!("crash at operation {crash_at}, {crash:?}");
            write_on_and_cut_power(&fs.crashed_state(crash), &allowed, &context);
        }
    }
}

#[test]
fn a_failed_write_changes_at_most_its_own_key() {
    let total = {
        let clean = SimFs::new();
        run(&clean, false);
        clean.write_ops()
    };
    for kind in [
        Fault::FailOnce(ErrorKind::Other),
        Fault::FailFrom(ErrorKind::StorageFull),
    ] {
        for fail_at in 0..total {
            let fs = SimFs::new();
            fs.inject(fail_at, kind);
            let allowed = run(&fs, false);
            let context = format!("{kind:?} at operation {fail_at}");
            if matches!(kind, Fault::FailOnce(_)) {
                check(&fs, &allowed, &context);
            }
            let context = format!("{context}, then a power cut");
            check(
                &fs.crashed_state(CrashState::POWER_LOSS),
                &allowed,
                &context,
            );
        }
    }
}

#[test]
fn a_leftover_temporary_file_is_never_listed_and_goes_at_the_next_open() {
    let fs = SimFs::new();
    let blobs = FsBlobs::open(fs.clone(), ROOT).unwrap();
    blobs.put("d/k", b"whole").unwrap();
    // Crash in the middle of replacing it: after the temporary file's sync.
    let ops = fs.write_ops();
    fs.inject(ops + 2, Fault::Crash);
    assert!(blobs.put("d/k", b"replacement").is_err());
    let after = fs.crashed_state(CrashState::ProcessExit);
    let temp = Path::new(ROOT).join("d+/.k.tmp");
    assert_eq!(after.read(&temp).unwrap(), b"replacement");
    let blobs = FsBlobs::open(after.clone(), ROOT).unwrap();
    assert!(!after.exists(&temp).unwrap());
    assert_eq!(blobs.get("d/k").unwrap().unwrap(), b"whole");
    assert_eq!(blobs.list("", None, 10).unwrap(), [("d/k".to_owned(), 5)]);
}
