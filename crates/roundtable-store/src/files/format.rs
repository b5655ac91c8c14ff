//! The byte formats of `snapshot` and `log`, and their pure parsers.
//!
//! ```text
//! snapshot = "RTSNAP01" record
//! log      = "RTLOG001" record*
//! record   = length: u32 LE | crc32 of payload: u32 LE | payload (length bytes)
//! ```
//!
//! The parsers do no I/O, never panic, and never trust a length field to
//! size an allocation: what they allocate is in proportion to their input,
//! so they can be fed any bytes (they are fuzz targets).

use std::fmt;

/// The first eight bytes of a snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"RTSNAP01";
/// The first eight bytes of a log file.
pub const LOG_MAGIC: [u8; 8] = *b"RTLOG001";
/// The largest payload a record may hold (256 MiB). A length field above it
/// is damage, so a damaged length cannot make a reader allocate absurdly.
pub const MAX_RECORD_LEN: usize = 256 << 20;

const HEADER_LEN: usize = 8;

/// Which of a circle's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `snapshot`: the whole circle as of the last compaction.
    Snapshot,
    /// `log`: the records appended since.
    Log,
}

impl FileKind {
    /// The file's name inside the circle directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Log => "log",
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file_name())
    }
}

/// Something wrong with a circle file. `record` counts from 1 and `offset`
/// is the byte where the record starts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Damage {
    /// The file ends inside a record, or in zeros from the start of one. At
    /// the end of the log this is what a crash during an append leaves, and
    /// that append was never acknowledged: the only damage that is expected
    /// (see [`is_benign`](Self::is_benign)).
    TornTail {
        /// Which file.
        file: FileKind,
        /// The record cut short.
        record: usize,
        /// Where it starts.
        offset: u64,
    },
    /// A record's payload does not match its checksum.
    ChecksumMismatch {
        /// Which file.
        file: FileKind,
        /// The damaged record.
        record: usize,
        /// Where it starts.
        offset: u64,
    },
    /// The file does not start with the header of its kind.
    BadMagic {
        /// Which file.
        file: FileKind,
    },
    /// A record claims to be empty; the store never writes one (a run of
    /// zero bytes reads this way).
    ZeroLength {
        /// Which file.
        file: FileKind,
        /// The record.
        record: usize,
        /// Where it starts.
        offset: u64,
    },
    /// A record claims a length above [`MAX_RECORD_LEN`], or beyond the end
    /// of the file while valid bytes follow.
    ImplausibleLength {
        /// Which file.
        file: FileKind,
        /// The record.
        record: usize,
        /// Where it starts.
        offset: u64,
        /// The length it claims.
        len: u32,
    },
    /// The file is not there.
    Missing {
        /// Which file.
        file: FileKind,
    },
    /// The snapshot has bytes after its record.
    TrailingBytes {
        /// Which file.
        file: FileKind,
        /// Where they start.
        offset: u64,
        /// How many.
        len: u64,
    },
}

impl Damage {
    /// The file it is in.
    pub fn file(&self) -> FileKind {
        match self {
            Self::TornTail { file, .. }
            | Self::ChecksumMismatch { file, .. }
            | Self::BadMagic { file }
            | Self::ZeroLength { file, .. }
            | Self::ImplausibleLength { file, .. }
            | Self::Missing { file }
            | Self::TrailingBytes { file, .. } => *file,
        }
    }

    /// Whether this is only the torn tail a crash leaves at the end of the
    /// log, which loses nothing that was acknowledged. Everything else is
    /// real damage.
    pub fn is_benign(&self) -> bool {
        matches!(
            self,
            Self::TornTail {
                file: FileKind::Log,
                ..
            }
        )
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TornTail {
                file,
                record,
                offset,
            } => match file {
                FileKind::Log => write!(
                    f,
                    "log ends inside record {record} at byte {offset}: an append cut short by a crash"
                ),
                FileKind::Snapshot => {
                    write!(f, "snapshot ends inside its record at byte {offset}")
                }
            },
            Self::ChecksumMismatch {
                file,
                record,
                offset,
            } => write!(
                f,
                "{file} record {record} at byte {offset} fails its checksum"
            ),
            Self::BadMagic { file } => write!(
                f,
                "{file} does not start with the {} header",
                String::from_utf8_lossy(match file {
                    FileKind::Snapshot => &SNAPSHOT_MAGIC,
                    FileKind::Log => &LOG_MAGIC,
                })
            ),
            Self::ZeroLength {
                file,
                record,
                offset,
            } => write!(f, "{file} record {record} at byte {offset} has length zero"),
            Self::ImplausibleLength {
                file,
                record,
                offset,
                len,
            } => write!(
                f,
                "{file} record {record} at byte {offset} claims an implausible length of {len} bytes"
            ),
            Self::Missing { file } => write!(f, "the {file} file is missing"),
            Self::TrailingBytes { file, offset, len } => {
                write!(
                    f,
                    "{file} has {len} unexpected bytes after its record at byte {offset}"
                )
            }
        }
    }
}

/// What verified in a log, and what did not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedLog {
    /// Every record whose checksum verifies, in file order.
    pub records: Vec<Vec<u8>>,
    /// The damage found, in file order; empty for a clean log.
    pub damage: Vec<Damage>,
}

/// The bytes of a snapshot file holding `payload`. The caller checks the
/// length against [`MAX_RECORD_LEN`].
pub(crate) fn encode_snapshot(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SNAPSHOT_MAGIC.len() + HEADER_LEN + payload.len());
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&encode_record(payload));
    out
}

/// The bytes of one record. The caller checks the length against
/// [`MAX_RECORD_LEN`].
pub(crate) fn encode_record(payload: &[u8]) -> Vec<u8> {
    debug_assert!(!payload.is_empty() && payload.len() <= MAX_RECORD_LEN);
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Parses a snapshot file: its header and exactly one record.
pub fn parse_snapshot(bytes: &[u8]) -> Result<Vec<u8>, Damage> {
    let file = FileKind::Snapshot;
    if !bytes.starts_with(&SNAPSHOT_MAGIC) {
        return Err(Damage::BadMagic { file });
    }
    let at = SNAPSHOT_MAGIC.len();
    let (payload, end) = read_record(bytes, at, file, 1)?;
    if end != bytes.len() {
        return Err(Damage::TrailingBytes {
            file,
            offset: end as u64,
            len: (bytes.len() - end) as u64,
        });
    }
    Ok(payload.to_vec())
}

/// Parses a log file. Records after a damaged one are still recovered when
/// a later record can be found that verifies.
pub fn parse_log(bytes: &[u8]) -> ParsedLog {
    let file = FileKind::Log;
    let mut parsed = ParsedLog::default();
    if !bytes.starts_with(&LOG_MAGIC) {
        parsed.damage.push(Damage::BadMagic { file });
        return parsed;
    }
    // Resynchronising checksums bytes it has no length for; this bounds the
    // work on hostile input to a few passes over it.
    let mut budget = bytes.len().saturating_mul(4).saturating_add(1 << 16);
    let mut at = LOG_MAGIC.len();
    let mut record = 1;
    while at < bytes.len() {
        match read_record(bytes, at, file, record) {
            Ok((payload, end)) => {
                parsed.records.push(payload.to_vec());
                at = end;
            }
            Err(damage) => {
                if bytes[at..].iter().all(|&b| b == 0) {
                    // Zeros to the end: an append whose new length reached
                    // the disk before its bytes did, as some file systems
                    // leave after a crash. Only a crash artifact looks so.
                    parsed.damage.push(Damage::TornTail {
                        file,
                        record,
                        offset: at as u64,
                    });
                    break;
                }
                if let Some(payload) = whole_despite_length(bytes, at, &damage) {
                    parsed.damage.push(not_torn(damage, bytes, at));
                    parsed.records.push(payload.to_vec());
                    break;
                }
                match resync(bytes, at, &damage, &mut budget) {
                    Some(next) => {
                        parsed.damage.push(not_torn(damage, bytes, at));
                        at = next;
                    }
                    None => {
                        parsed.damage.push(damage);
                        break;
                    }
                }
            }
        }
        record += 1;
    }
    parsed
}

/// Reads the record at `at`: its payload and where the next one starts.
fn read_record(
    bytes: &[u8],
    at: usize,
    file: FileKind,
    record: usize,
) -> Result<(&[u8], usize), Damage> {
    let offset = at as u64;
    let rest = bytes.get(at..).unwrap_or_default();
    let (Some(len), Some(crc)) = (read_u32(rest, 0), read_u32(rest, 4)) else {
        return Err(Damage::TornTail {
            file,
            record,
            offset,
        });
    };
    let n = len as usize;
    if n == 0 {
        // An empty record's checksum is zero, so zeroed blocks would
        // otherwise read as valid records.
        return Err(Damage::ZeroLength {
            file,
            record,
            offset,
        });
    }
    if n > MAX_RECORD_LEN {
        return Err(Damage::ImplausibleLength {
            file,
            record,
            offset,
            len,
        });
    }
    let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + n) else {
        return Err(Damage::TornTail {
            file,
            record,
            offset,
        });
    };
    if crc32fast::hash(payload) != crc {
        return Err(Damage::ChecksumMismatch {
            file,
            record,
            offset,
        });
    }
    Ok((payload, at + HEADER_LEN + n))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The payload of a record that looks torn but whose bytes up to the end of
/// the file match its checksum: the last record with a damaged length, not
/// an append cut short.
fn whole_despite_length<'a>(bytes: &'a [u8], at: usize, damage: &Damage) -> Option<&'a [u8]> {
    if !matches!(damage, Damage::TornTail { .. }) {
        return None;
    }
    let crc = read_u32(bytes, at + 4)?;
    let payload = bytes.get(at + HEADER_LEN..)?;
    (!payload.is_empty() && crc32fast::hash(payload) == crc).then_some(payload)
}

/// Where parsing can carry on after damage at `at`: the first offset after
/// it where a record verifies, or the end of the file.
///
/// Usually only a payload or checksum is damaged and the next record starts
/// where the damaged one claims to end. But if its length is what is
/// damaged, the next record starts elsewhere, most likely inside the
/// claimed span, so that is searched first, as far as is cheap: searching a
/// large payload byte by byte can cost far more than the file's size.
fn resync(bytes: &[u8], at: usize, damage: &Damage, budget: &mut usize) -> Option<usize> {
    let claimed = match damage {
        Damage::ChecksumMismatch { .. } => read_u32(bytes, at)
            .map(|len| at.saturating_add(HEADER_LEN).saturating_add(len as usize))
            .filter(|&end| end == bytes.len() || verifies_at(bytes, end, budget)),
        _ => None,
    };
    let Some(claimed) = claimed else {
        return (at + 1..bytes.len()).find(|&next| verifies_at(bytes, next, budget));
    };
    let span = claimed - at;
    let allowance = (*budget).min(span.saturating_mul(2).saturating_add(1 << 12));
    let mut left = allowance;
    let inside = (at + 1..claimed).find(|&next| verifies_at(bytes, next, &mut left));
    *budget -= allowance - left;
    Some(inside.unwrap_or(claimed))
}

/// Whether a record verifies at `at`, checksumming no more than `budget`
/// bytes (and taking what it uses from it).
fn verifies_at(bytes: &[u8], at: usize, budget: &mut usize) -> bool {
    let (Some(len), Some(crc)) = (read_u32(bytes, at), read_u32(bytes, at + 4)) else {
        return false;
    };
    let n = len as usize;
    if n == 0 || n > MAX_RECORD_LEN || n > *budget {
        return false;
    }
    let Some(payload) = bytes.get(at + HEADER_LEN..at + HEADER_LEN + n) else {
        return false;
    };
    *budget -= n;
    crc32fast::hash(payload) == crc
}

/// A record that looks torn but has valid bytes after it was not cut short
/// by a crash: its length is wrong.
fn not_torn(damage: Damage, bytes: &[u8], at: usize) -> Damage {
    match damage {
        Damage::TornTail {
            file,
            record,
            offset,
        } => Damage::ImplausibleLength {
            file,
            record,
            offset,
            len: read_u32(bytes, at).unwrap_or(0),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests;
