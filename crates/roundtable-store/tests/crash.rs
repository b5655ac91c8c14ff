//! Crash-point campaigns: run a workload on `SimFs` once to count its disk
//! operations, then once per operation with a crash or a failure planted
//! there, and check what a restarted process finds.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;

use roundtable_store::fault::{CrashState, Fault, SimFs};
use roundtable_store::{CircleFiles, Fs, Recovered, StoreError};

const DIR: &str = "/home/circles/c1";

const FAULTS: [Fault; 5] = [
    Fault::Crash,
    Fault::FailOnce(ErrorKind::StorageFull),
    Fault::FailOnce(ErrorKind::Other),
    Fault::FailFrom(ErrorKind::StorageFull),
    Fault::FailFrom(ErrorKind::ReadOnlyFilesystem),
];

fn dir() -> &'static Path {
    Path::new(DIR)
}

fn open(fs: &SimFs) -> Result<(CircleFiles, Recovered), StoreError> {
    CircleFiles::open(Arc::new(fs.clone()), dir())
}

/// A snapshot covering `edits`: the caller's whole state, one edit a line.
fn snapshot_of<'a>(edits: impl IntoIterator<Item = &'a Vec<u8>>) -> Vec<u8> {
    let mut out = b"snapshot".to_vec();
    for edit in edits {
        out.push(b'\n');
        out.extend_from_slice(edit);
    }
    out
}

/// Every edit the files hold, in the snapshot or in log records.
fn contents(recovered: &Recovered) -> BTreeSet<Vec<u8>> {
    let mut all: BTreeSet<Vec<u8>> = recovered
        .snapshot
        .split(|&b| b == b'\n')
        .skip(1)
        .map(<[u8]>::to_vec)
        .collect();
    all.extend(recovered.records.iter().cloned());
    all
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Edit,
    Compact,
}

const WORKLOAD: [Step; 14] = {
    use Step::{Compact, Edit};
    [
        Edit, Edit, Edit, Edit, Compact, Edit, Edit, Edit, Edit, Compact, Edit, Edit, Edit, Edit,
    ]
};

/// What a caller does after a failed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterFailure {
    /// Keeps its state in memory; the next edit compacts.
    CarryOn,
    /// Throws its state away and reads the files again through its handle.
    Reread,
    /// Throws its state and handle away, opens the files afresh and compacts
    /// before anything else (a fresh handle knows nothing of the failure).
    Reopen,
}

/// What the workload was told was durable.
#[derive(Debug, Default)]
struct Acked {
    created: bool,
    edits: Vec<Vec<u8>>,
}

/// Creates a circle and edits it as a caller would, stopping if the process
/// crashes.
fn workload(fs: &SimFs, after_failure: AfterFailure) -> Acked {
    let mut acked = Acked::default();
    let mut state: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut files = None;
    for _attempt in 0..2 {
        match CircleFiles::create(Arc::new(fs.clone()), dir(), &snapshot_of(&state)) {
            Ok(f) => {
                acked.created = true;
                files = Some(f);
                break;
            }
            // An earlier attempt got as far as the rename.
            Err(StoreError::AlreadyExists { .. }) => {
                if let Ok((f, recovered)) = open(fs) {
                    assert!(
                        !recovered.has_real_damage(),
                        "{}",
                        recovered.describe_damage()
                    );
                    files = Some(f);
                }
                break;
            }
            Err(_) if fs.has_crashed() => return acked,
            Err(_) => {}
        }
    }
    let Some(mut files) = files else {
        return acked;
    };
    for (i, step) in WORKLOAD.iter().enumerate() {
        if fs.has_crashed() {
            break;
        }
        let result = match step {
            Step::Edit => {
                let edit = format!("edit {i:02}").into_bytes();
                state.insert(edit.clone());
                let result = if files.can_append() {
                    files.append(&edit)
                } else {
                    files.compact(&snapshot_of(&state))
                };
                if result.is_ok() {
                    acked.edits.push(edit);
                }
                result
            }
            Step::Compact => files.compact(&snapshot_of(&state)),
        };
        if result.is_err() && after_failure != AfterFailure::CarryOn {
            let recovered = if after_failure == AfterFailure::Reread {
                files.reread()
            } else {
                open(fs).map(|(f, recovered)| {
                    files = f;
                    recovered
                })
            };
            let Ok(recovered) = recovered else { break };
            assert!(
                !recovered.has_real_damage(),
                "{}",
                recovered.describe_damage()
            );
            state = contents(&recovered);
            if after_failure == AfterFailure::Reopen {
                // If this fails too, the handle refuses appends and the next
                // edit compacts.
                let _ = files.compact(&snapshot_of(&state));
            }
        }
    }
    acked
}

/// Every file under the circle's `damaged/` directory.
fn kept_aside(fs: &SimFs) -> Vec<Vec<u8>> {
    let aside = dir().join("damaged");
    fs.files()
        .into_iter()
        .filter(|(path, _)| path.starts_with(&aside))
        .map(|(_, bytes)| bytes)
        .collect()
}

/// Checks what a restarted process finds on `fs`, then that it can carry on
/// and that what it does next survives a power cut.
///
/// `strict` is false when a failed sync may have left bytes that the
/// restarted process can read but that never reached the disk (only a
/// process exit keeps them visible). Nothing can tell them apart, so it may
/// build on them, and a power cut then leaves a hole: real damage, though
/// everything acknowledged still survives.
fn check_restart(fs: &SimFs, acked: &Acked, what: &str, strict: bool) {
    let (mut files, recovered) = match open(fs) {
        Ok(opened) => opened,
        Err(StoreError::NotFound { .. }) if !acked.created && acked.edits.is_empty() => return,
        Err(e) => panic!("{what}: does not open: {e}"),
    };
    assert!(
        !recovered.has_real_damage(),
        "{what}: {}",
        recovered.describe_damage()
    );
    let mut state = contents(&recovered);
    for edit in &acked.edits {
        assert!(
            state.contains(edit),
            "{what}: lost acknowledged {:?}",
            String::from_utf8_lossy(edit)
        );
    }

    let log_before = fs.read(&dir().join("log")).ok();
    let next = b"after restart".to_vec();
    state.insert(next.clone());
    if files.can_append() {
        files.append(&next).expect("append after a restart");
    } else {
        files
            .compact(&snapshot_of(&state))
            .expect("compaction after a restart");
    }
    let after = fs.crashed_state(CrashState::POWER_LOSS);
    if !recovered.is_clean() {
        let log = log_before.expect("a damaged log is still there");
        assert!(
            kept_aside(&after).contains(&log),
            "{what}: the torn log was not kept"
        );
    }
    let (_, recovered) = open(&after).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
    let reopened = contents(&recovered);
    if strict {
        assert!(
            recovered.is_clean(),
            "{what}: {}",
            recovered.describe_damage()
        );
        assert!(state.is_subset(&reopened), "{what}: lost an edit");
    } else {
        for edit in acked.edits.iter().chain([&next]) {
            assert!(reopened.contains(edit), "{what}: lost an acknowledged edit");
        }
    }
}

#[test]
fn every_crash_or_failure_point_keeps_what_was_acknowledged() {
    let counting = SimFs::new();
    let acked = workload(&counting, AfterFailure::CarryOn);
    assert!(acked.created);
    assert_eq!(acked.edits.len(), 12);
    check_restart(&counting, &acked, "no fault", true);
    let ops = counting.write_ops();

    let mut covered = 0;
    for op in 0..ops {
        for fault in FAULTS {
            for after_failure in [
                AfterFailure::CarryOn,
                AfterFailure::Reread,
                AfterFailure::Reopen,
            ] {
                if fault == Fault::Crash && after_failure != AfterFailure::CarryOn {
                    continue;
                }
                let fs = SimFs::new();
                fs.inject(op, fault);
                let acked = workload(&fs, after_failure);
                for crash in CrashState::VARIETY {
                    let what = format!("{fault:?} at op {op}, {after_failure:?}, then {crash:?}");
                    let strict = fault == Fault::Crash || crash != CrashState::ProcessExit;
                    check_restart(&fs.crashed_state(crash), &acked, &what, strict);
                    covered += 1;
                }
            }
        }
    }
    println!("covered {covered} crash points ({ops} disk operations in the workload)");
}

/// A circle whose snapshot and log are both damaged, everything durable.
fn damaged_circle() -> (SimFs, Vec<u8>, Vec<u8>) {
    let fs = SimFs::new();
    let mut files =
        CircleFiles::create(Arc::new(fs.clone()), dir(), b"snapshot\nfirst").expect("create");
    for edit in ["a", "b", "c"] {
        files.append(edit.as_bytes()).expect("append");
    }
    let flip = |name: &str, at: usize| {
        let path = dir().join(name);
        let mut bytes = fs.read(&path).expect("read");
        let at = bytes.len() - at;
        bytes[at] ^= 0x20;
        fs.write_new(&path, &bytes).expect("write");
        fs.sync_file(&path).expect("sync");
        bytes
    };
    let log = flip("log", 1);
    let snapshot = flip("snapshot", 2);
    (fs.crashed_state(CrashState::POWER_LOSS), snapshot, log)
}

/// Repairs a damaged circle as a caller would: open, then compact what
/// verified.
fn repair(fs: &SimFs) -> Result<(), StoreError> {
    let (mut files, recovered) = open(fs)?;
    let mut state = contents(&recovered);
    state.insert(b"first".to_vec());
    files.compact(&snapshot_of(&state))
}

#[test]
fn a_damaged_file_survives_every_crash_during_its_repair() {
    let (base, snapshot, log) = damaged_circle();
    let (_, recovered) = open(&base).unwrap();
    assert!(recovered.has_real_damage());
    assert_eq!(recovered.records, [b"a".to_vec(), b"b".to_vec()]);

    let counting = base.crashed_state(CrashState::ProcessExit);
    repair(&counting).unwrap();
    let mut aside = kept_aside(&counting);
    aside.sort();
    assert_eq!(aside, [log.clone(), snapshot.clone()]);
    let ops = counting.write_ops();

    let mut covered = 0;
    for op in 0..ops {
        for fault in FAULTS {
            let fs = base.crashed_state(CrashState::ProcessExit);
            fs.inject(op, fault);
            let repaired = repair(&fs).is_ok() || (!fs.has_crashed() && repair(&fs).is_ok());
            for crash in CrashState::VARIETY {
                let what = format!("{fault:?} at op {op}, then {crash:?}");
                let after = fs.crashed_state(crash);
                for (name, bytes) in [("snapshot", &snapshot), ("log", &log)] {
                    let in_place = after.read(&dir().join(name)).ok().as_ref() == Some(bytes);
                    assert!(
                        in_place || kept_aside(&after).contains(bytes),
                        "{what}: the damaged {name} is gone"
                    );
                }
                let (_, recovered) = open(&after).unwrap_or_else(|e| panic!("{what}: {e}"));
                if repaired && crash != CrashState::ProcessExit {
                    assert!(
                        recovered.is_clean(),
                        "{what}: {}",
                        recovered.describe_damage()
                    );
                }
                if recovered.is_clean() {
                    let state = contents(&recovered);
                    for edit in ["first", "a", "b"] {
                        assert!(state.contains(edit.as_bytes()), "{what}: lost {edit}");
                    }
                }
                covered += 1;
            }
        }
    }
    println!("covered {covered} crash points while repairing ({ops} disk operations)");
}

#[test]
fn appends_refuse_after_a_torn_tail_until_compacted() {
    let fs = SimFs::new();
    let mut files = CircleFiles::create(Arc::new(fs.clone()), dir(), b"snapshot").unwrap();
    files.append(b"one").unwrap();
    fs.inject(fs.write_ops(), Fault::Crash);
    assert!(files.append(b"two").is_err());

    let after = fs.crashed_state(CrashState::PowerLoss {
        entries: roundtable_store::fault::Kept::All,
        contents: roundtable_store::fault::Kept::All,
    });
    let (mut files, recovered) = open(&after).unwrap();
    assert!(!recovered.is_clean() && !recovered.has_real_damage());
    assert_eq!(recovered.records, [b"one".to_vec()]);
    let err = files.append(b"three").unwrap_err();
    assert!(matches!(err, StoreError::NeedsCompaction { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "cannot append to the log of /home/circles/c1: it ends in a record cut short by a crash; \
         write a fresh snapshot (compact) first"
    );
    files.compact(b"snapshot\none\nthree").unwrap();
    assert_eq!(files.set_aside(), [dir().join("damaged/log-1")]);
    files.append(b"four").unwrap();
    let (_, recovered) = open(&after).unwrap();
    assert!(recovered.is_clean());
    assert_eq!(recovered.records, [b"four".to_vec()]);
}

#[test]
fn a_failed_write_blocks_appends_until_a_compaction() {
    let fs = SimFs::new();
    let mut files = CircleFiles::create(Arc::new(fs.clone()), dir(), b"snapshot").unwrap();
    fs.inject(fs.write_ops() + 1, Fault::FailOnce(ErrorKind::StorageFull));
    let err = files.append(b"one").unwrap_err();
    assert!(err.to_string().contains("free some disk space"), "{err}");
    assert!(!files.can_append());
    let err = files.append(b"two").unwrap_err();
    assert!(matches!(err, StoreError::NeedsCompaction { .. }), "{err}");
    files.compact(b"snapshot\none\ntwo").unwrap();
    files.append(b"three").unwrap();
}
