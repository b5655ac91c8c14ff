//! Crash-safe storage for Roundtable: each circle is a snapshot plus an
//! append-only log of records, every record length-prefixed and checksummed.
//!
//! # Files
//!
//! ```text
//! snapshot = "RTSNAP01" record          the whole circle at the last compaction
//! log      = "RTLOG001" record*         what happened since
//! record   = length: u32 LE | crc32 of payload: u32 LE | payload
//! ```
//!
//! A record holds 1 to [`MAX_RECORD_LEN`] bytes. [`parse_snapshot`] and
//! [`parse_log`] read these formats without I/O and never panic.
//!
//! # Durability
//!
//! - An edit is acknowledged only after its record has been appended to the
//!   log and the log fsynced ([`CircleFiles::append`] returned `Ok`).
//! - After any failed write the log takes no more records until a
//!   compaction, because a failed fsync says nothing reliable about the file.
//! - Compaction writes the new snapshot to a temporary file, fsyncs it,
//!   renames it over the old one and fsyncs the directory; only then does it
//!   start an empty log the same way. Log records the snapshot already covers
//!   are harmless to replay, so a crash at any point loses nothing
//!   acknowledged. See [`CircleFiles::compact`].
//! - A crash during an append leaves a torn tail: the log ends inside a
//!   record that was never acknowledged. Opening accepts it; anything else
//!   wrong is real damage, reported in [`Recovered::damage`]. A damaged file
//!   is never overwritten or deleted: compaction first copies it into the
//!   circle's `damaged/` directory.
//! - Everything goes through the [`Fs`] trait; [`fault::SimFs`] implements
//!   it in memory with crash semantics and injected faults.
//! - One process writes a home at a time ([`HomeLock`]).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use roundtable_store::{CircleFiles, OsFs};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let home = tempfile::tempdir()?;
//! let dir = home.path().join("circle");
//! let mut files = CircleFiles::create(Arc::new(OsFs), &dir, b"first snapshot")?;
//! files.append(b"change 1")?; // durable once this returns
//! files.append(b"change 2")?;
//!
//! let (mut files, recovered) = CircleFiles::open(Arc::new(OsFs), &dir)?;
//! assert!(recovered.is_clean());
//! assert_eq!(recovered.snapshot, b"first snapshot");
//! assert_eq!(recovered.records, [b"change 1", b"change 2"]);
//!
//! files.compact(b"first snapshot + changes 1 and 2")?;
//! let (_, recovered) = CircleFiles::open(Arc::new(OsFs), &dir)?;
//! assert!(recovered.records.is_empty());
//! # Ok(())
//! # }
//! ```

mod circle;
mod error;
pub mod fault;
mod files;
pub mod format;
mod fs;
pub mod fuzzing;
mod home;
mod lock;

pub use crate::circle::{CircleStore, Repaired};
pub use crate::error::StoreError;
pub use crate::files::{
    CREATING_SUFFIX, CircleFiles, CompactionReason, Damage, FileKind, LOG_MAGIC, MAX_RECORD_LEN,
    ParsedLog, Recovered, SNAPSHOT_MAGIC, create_dir_durably, parse_log, parse_snapshot,
    write_durably,
};
pub use crate::fs::{Fs, OsFs};
pub use crate::home::{Home, Identity, NodeRecord, WriteLock};
pub use crate::lock::{HomeLock, LOCK_FILE, LockError};
