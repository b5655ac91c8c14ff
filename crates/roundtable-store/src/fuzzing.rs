//! The check behind the `store_files` fuzz target in `fuzz/`.
//!
//! [`store_files`] feeds arbitrary bytes to [`parse_log`] and
//! [`parse_snapshot`] and panics if an invariant breaks. The fuzz target
//! calls it on generated inputs; `tests/fuzz_regressions.rs` calls it on the
//! inputs kept in `fuzz/regressions/store_files/`. Not part of the crate's
//! API.

#![doc(hidden)]

use crate::{
    Damage, FileKind, LOG_MAGIC, MAX_RECORD_LEN, SNAPSHOT_MAGIC, parse_log, parse_snapshot,
};

/// The same bytes read as a log and as a snapshot. Neither parser panics;
/// what they return is accounted for by the input; a clean parse re-encodes
/// to exactly the input; and recovered log records, written out again,
/// read back clean.
pub fn store_files(data: &[u8]) {
    check_log(data);
    check_snapshot(data);
}

fn check_log(data: &[u8]) {
    let parsed = parse_log(data);
    for damage in &parsed.damage {
        assert_eq!(damage.file(), FileKind::Log, "log damage names {damage:?}");
        let _ = (damage.to_string(), damage.is_benign());
    }
    if !data.starts_with(&LOG_MAGIC) {
        assert!(
            parsed.records.is_empty(),
            "records from a log with no header"
        );
        assert_eq!(
            parsed.damage,
            [Damage::BadMagic {
                file: FileKind::Log
            }]
        );
        return;
    }

    // Records come from disjoint stretches after the header, each with its
    // own length and checksum in front.
    let mut accounted = LOG_MAGIC.len();
    for (i, record) in parsed.records.iter().enumerate() {
        assert!(
            !record.is_empty() && record.len() <= MAX_RECORD_LEN && record.len() <= data.len(),
            "record {i} has {} bytes from an input of {}",
            record.len(),
            data.len()
        );
        accounted += 8 + record.len();
    }
    assert!(
        accounted <= data.len(),
        "records account for {accounted} bytes of an input of {}",
        data.len()
    );

    // A torn tail is benign only because nothing follows it.
    if let Some(i) = parsed
        .damage
        .iter()
        .position(|d| matches!(d, Damage::TornTail { .. }))
    {
        assert_eq!(i + 1, parsed.damage.len(), "damage after a torn tail");
    }

    if parsed.damage.is_empty() {
        assert_eq!(
            encode_log(&parsed.records),
            data,
            "a clean log is not exactly its records"
        );
    }
    let again = parse_log(&encode_log(&parsed.records));
    assert!(
        again.damage.is_empty(),
        "recovered records written out again read as damaged: {:?}",
        again.damage
    );
    assert_eq!(
        again.records, parsed.records,
        "recovered records written out again read differently"
    );
}

fn check_snapshot(data: &[u8]) {
    match parse_snapshot(data) {
        Ok(payload) => {
            assert!(!payload.is_empty(), "an empty snapshot record was accepted");
            let mut file = SNAPSHOT_MAGIC.to_vec();
            file.extend(encode_record(&payload));
            assert_eq!(
                file, data,
                "a snapshot parsed from bytes other than its own"
            );
        }
        Err(damage) => {
            assert_eq!(damage.file(), FileKind::Snapshot, "{damage:?}");
            assert!(
                !damage.is_benign(),
                "snapshot damage judged benign: {damage:?}"
            );
            let _ = damage.to_string();
        }
    }
}

/// A log holding `records`, written independently of the store's own
/// encoder so that each checks the other.
fn encode_log(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = LOG_MAGIC.to_vec();
    for record in records {
        out.extend(encode_record(record));
    }
    out
}

fn encode_record(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}
