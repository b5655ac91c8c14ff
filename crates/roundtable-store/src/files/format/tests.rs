use proptest::prelude::*;

use super::*;

fn log_of(records: &[&[u8]]) -> Vec<u8> {
    let mut bytes = LOG_MAGIC.to_vec();
    for r in records {
        bytes.extend_from_slice(&encode_record(r));
    }
    bytes
}

const RECORDS: [&[u8]; 3] = [b"first", b"second record", b"third"];

/// Byte offsets of the records of `log_of(&RECORDS)`.
const AT: [usize; 3] = [8, 8 + 8 + 5, 8 + 8 + 5 + 8 + 13];

fn owned(records: &[&[u8]]) -> Vec<Vec<u8>> {
    records.iter().map(|r| r.to_vec()).collect()
}

#[test]
fn a_clean_log_round_trips() {
    let parsed = parse_log(&log_of(&RECORDS));
    assert_eq!(parsed.records, owned(&RECORDS));
    assert!(parsed.damage.is_empty());
    assert_eq!(parse_log(&LOG_MAGIC), ParsedLog::default());
}

#[test]
fn a_log_cut_anywhere_is_a_torn_tail_after_a_verified_prefix() {
    let bytes = log_of(&RECORDS);
    let ends = [AT[1], AT[2], bytes.len()];
    for cut in LOG_MAGIC.len()..bytes.len() {
        let parsed = parse_log(&bytes[..cut]);
        let whole = ends.iter().filter(|&&end| end <= cut).count();
        assert_eq!(parsed.records, owned(&RECORDS[..whole]), "cut at {cut}");
        if AT.contains(&cut) {
            assert!(parsed.damage.is_empty(), "cut at {cut}");
        } else {
            let torn = Damage::TornTail {
                file: FileKind::Log,
                record: whole + 1,
                offset: AT[whole] as u64,
            };
            assert!(torn.is_benign());
            assert_eq!(parsed.damage, [torn], "cut at {cut}");
        }
    }
}

#[test]
fn a_truncated_header_is_a_torn_tail() {
    let mut bytes = log_of(&RECORDS[..1]);
    bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3]);
    let parsed = parse_log(&bytes);
    assert_eq!(parsed.records, owned(&RECORDS[..1]));
    assert!(matches!(
        parsed.damage[..],
        [Damage::TornTail { record: 2, .. }]
    ));
}

#[test]
fn zeros_to_the_end_are_a_torn_tail() {
    // What an append leaves when the file's new length reaches the disk
    // before its bytes.
    let mut bytes = log_of(&RECORDS[..2]);
    bytes.extend_from_slice(&[0; 20]);
    let parsed = parse_log(&bytes);
    assert_eq!(parsed.records, owned(&RECORDS[..2]));
    assert!(matches!(
        parsed.damage[..],
        [Damage::TornTail { record: 3, .. }]
    ));
}

#[test]
fn a_flipped_payload_byte_loses_only_its_record() {
    let mut bytes = log_of(&RECORDS);
    bytes[AT[1] + 8 + 3] ^= 0x40;
    let parsed = parse_log(&bytes);
    assert_eq!(parsed.records, owned(&[RECORDS[0], RECORDS[2]]));
    let damage = Damage::ChecksumMismatch {
        file: FileKind::Log,
        record: 2,
        offset: AT[1] as u64,
    };
    assert!(!damage.is_benign());
    assert_eq!(parsed.damage, std::slice::from_ref(&damage));
    assert_eq!(
        damage.to_string(),
        "log record 2 at byte 21 fails its checksum"
    );
}

#[test]
fn a_flipped_checksum_byte_loses_only_its_record() {
    let mut bytes = log_of(&RECORDS);
    bytes[AT[0] + 5] ^= 1;
    let parsed = parse_log(&bytes);
    assert_eq!(parsed.records, owned(&RECORDS[1..]));
    assert!(matches!(
        parsed.damage[..],
        [Damage::ChecksumMismatch { record: 1, .. }]
    ));
}

#[test]
fn a_flipped_length_byte_is_real_damage_and_the_rest_is_recovered() {
    // Too long for the file: it would look torn, but records follow.
    let mut bytes = log_of(&RECORDS);
    bytes[AT[0] + 2] ^= 0x10;
    let parsed = parse_log(&bytes);
    assert_eq!(parsed.records, owned(&RECORDS[1..]));
    assert!(matches!(
        parsed.damage[..],
        [Damage::ImplausibleLength {
            record: 1,
            len: 0x10_0005,
            ..
        }]
    ));

    // On the last record: the payload still matches its checksum.
    let mut bytes = log_of(&RECORDS);
    bytes[AT[2] + 1] ^= 0x01;
    let parsed = parse_log(&bytes);
    assert_eq!(parsed.records, owned(&RECORDS));
    assert!(parsed.damage.iter().all(|d| !d.is_benign()));
    assert_eq!(parsed.damage.len(), 1);

    // Shorter, or longer but inside the file.
    for flip in [0x01, 0x08] {
        let mut bytes = log_of(&RECORDS);
        bytes[AT[0]] ^= flip;
        let parsed = parse_log(&bytes);
        assert_eq!(parsed.records, owned(&RECORDS[1..]), "flip {flip}");
        assert!(matches!(
            parsed.damage[..],
            [Damage::ChecksumMismatch { record: 1, .. }]
        ));
    }
}

#[test]
fn zero_and_implausible_lengths_are_real_damage() {
    let mut bytes = log_of(&RECORDS[..1]);
    bytes.extend_from_slice(&[0; 32]);
    bytes.extend_from_slice(&encode_record(RECORDS[2]));
    let parsed = parse_log(&bytes);
    assert_eq!(parsed.records, owned(&[RECORDS[0], RECORDS[2]]));
    let zero = &parsed.damage[0];
    assert_eq!(
        *zero,
        Damage::ZeroLength {
            file: FileKind::Log,
            record: 2,
            offset: AT[1] as u64
        }
    );
    assert!(!zero.is_benign());

    let mut bytes = log_of(&RECORDS[..1]);
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(&[7; 12]);
    let parsed = parse_log(&bytes);
    assert_eq!(parsed.records, owned(&RECORDS[..1]));
    let damage = &parsed.damage[..];
    assert!(matches!(
        damage,
        [Damage::ImplausibleLength { len: u32::MAX, .. }]
    ));
    assert_eq!(
        damage[0].to_string(),
        "log record 2 at byte 21 claims an implausible length of 4294967295 bytes"
    );
}

#[test]
fn a_bad_magic_recovers_nothing() {
    for bytes in [&b""[..], b"RTLOG", b"RTLOG002", b"RTSNAP01\x05\0\0\0"] {
        let parsed = parse_log(bytes);
        assert!(parsed.records.is_empty());
        assert_eq!(
            parsed.damage,
            [Damage::BadMagic {
                file: FileKind::Log
            }]
        );
    }
    assert_eq!(
        Damage::BadMagic {
            file: FileKind::Log
        }
        .to_string(),
        "log does not start with the RTLOG001 header"
    );
}

#[test]
fn snapshots_parse_exactly_one_record() {
    let bytes = encode_snapshot(b"state");
    assert_eq!(parse_snapshot(&bytes).as_deref(), Ok(&b"state"[..]));
    let file = FileKind::Snapshot;

    assert_eq!(parse_snapshot(b""), Err(Damage::BadMagic { file }));
    assert_eq!(parse_snapshot(&LOG_MAGIC), Err(Damage::BadMagic { file }));
    let torn = Damage::TornTail {
        file,
        record: 1,
        offset: 8,
    };
    assert_eq!(parse_snapshot(&bytes[..bytes.len() - 1]), Err(torn.clone()));
    assert!(!torn.is_benign(), "a snapshot is never appended to");
    assert_eq!(parse_snapshot(&SNAPSHOT_MAGIC), Err(torn));

    let mut flipped = bytes.clone();
    flipped[18] ^= 4;
    let mismatch = Damage::ChecksumMismatch {
        file,
        record: 1,
        offset: 8,
    };
    assert_eq!(parse_snapshot(&flipped), Err(mismatch));

    let mut longer = bytes.clone();
    longer.extend_from_slice(b"xyz");
    let trailing = Damage::TrailingBytes {
        file,
        offset: 21,
        len: 3,
    };
    assert_eq!(parse_snapshot(&longer), Err(trailing.clone()));
    assert_eq!(
        trailing.to_string(),
        "snapshot has 3 unexpected bytes after its record at byte 21"
    );
}

#[test]
fn resync_stays_cheap_on_hostile_input() {
    // Headers everywhere that claim the rest of the file, none verifying.
    let mut bytes = LOG_MAGIC.to_vec();
    while bytes.len() < 1 << 16 {
        let rest = ((1 << 16) - bytes.len()) as u32;
        bytes.extend_from_slice(&rest.to_le_bytes());
    }
    let parsed = parse_log(&bytes);
    assert!(parsed.records.is_empty());
    assert!(!parsed.damage.is_empty());
}

fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 0..8)
}

/// Whether `sub` appears in `all` in order (not necessarily adjacent).
fn is_subsequence(sub: &[Vec<u8>], all: &[Vec<u8>]) -> bool {
    let mut rest = all.iter();
    sub.iter().all(|s| rest.any(|a| a == s))
}

proptest! {
    #[test]
    fn parsing_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_log(&bytes);
        let _ = parse_snapshot(&bytes);
        let mut log = LOG_MAGIC.to_vec();
        log.extend_from_slice(&bytes);
        let parsed = parse_log(&log);
        prop_assert!(parsed.records.iter().map(Vec::len).sum::<usize>() <= bytes.len());
    }

    #[test]
    fn written_records_read_back(records in payloads()) {
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let parsed = parse_log(&log_of(&refs));
        prop_assert_eq!(parsed.records, records);
        prop_assert!(parsed.damage.is_empty());
    }

    #[test]
    fn a_flipped_byte_is_real_damage_and_invents_nothing(
        records in payloads().prop_filter("some records", |r| !r.is_empty()),
        at in any::<prop::sample::Index>(),
        flip in 1..=255u8,
    ) {
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let mut bytes = log_of(&refs);
        let at = at.index(bytes.len());
        bytes[at] ^= flip;
        let parsed = parse_log(&bytes);
        prop_assert!(is_subsequence(&parsed.records, &records), "{:?}", parsed);
        prop_assert!(parsed.damage.iter().any(|d| !d.is_benign()), "{:?}", parsed);
        if at >= LOG_MAGIC.len() {
            prop_assert!(parsed.records.len() + 1 >= records.len(), "{:?}", parsed);
        }
    }
}
