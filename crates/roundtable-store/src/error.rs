//! The store's error type.

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use crate::files::CompactionReason;
use crate::lock::LockError;

/// Why a store operation failed. Each message says what failed, where, and
/// what the user can do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    #[error("could not {op} {}: {source}; {}", path.display(), hint(source))]
    Io {
        /// What was being done ("read", "fsync", ...).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The error from the system.
        source: io::Error,
    },
    /// There is no circle directory there.
    #[error("there is no circle at {}", dir.display())]
    NotFound {
        /// The directory looked for.
        dir: PathBuf,
    },
    /// A circle already exists where a new one was to be created.
    #[error("a circle already exists at {}; open it instead of creating it", dir.display())]
    AlreadyExists {
        /// The directory.
        dir: PathBuf,
    },
    /// The log cannot take another record until a fresh snapshot is written.
    #[error("cannot append to the log of {}: {reason}; write a fresh snapshot (compact) first", dir.display())]
    NeedsCompaction {
        /// The circle directory.
        dir: PathBuf,
        /// Why.
        reason: CompactionReason,
    },
    /// A record was empty or larger than the format allows.
    #[error(
        "cannot store a record of {len} bytes: records hold 1 to {} bytes",
        crate::MAX_RECORD_LEN
    )]
    RecordSize {
        /// The payload's length.
        len: usize,
    },
    /// A circle's files are damaged beyond the torn tail a crash leaves.
    #[error(
        "the circle at {} is damaged: {what}; run `roundtable repair` to keep everything that verifies and set the damaged files aside",
        dir.display()
    )]
    Damaged {
        /// The circle directory.
        dir: PathBuf,
        /// What is damaged, in plain words.
        what: String,
    },
    /// Nothing of a damaged circle could be recovered.
    #[error(
        "nothing in the circle at {} could be recovered; join the circle again from another member's device",
        dir.display()
    )]
    Unrecoverable {
        /// The circle directory.
        dir: PathBuf,
    },
    /// A key file does not parse. It is left as it is.
    #[error("the key file {} is damaged ({reason}); it was left untouched: restore it from a backup", path.display())]
    BadKeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The home has no identity yet.
    #[error("this home has no identity yet; run `roundtable id` to make one")]
    NoIdentity,
    /// Changes from elsewhere did not parse; nothing was stored.
    #[error("the changes could not be applied ({0}); nothing was stored")]
    BadChanges(String),
    /// The circle's rules refused an edit; nothing was stored.
    #[error(transparent)]
    Refused(#[from] roundtable_core::CoreError),
    /// The home's lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The home was written by a newer release; nothing was touched.
    #[error(
        "the home {} was written by a newer Roundtable (home format {found}; this version reads up to {}); nothing was changed: update Roundtable to open it",
        home.display(),
        crate::format::HOME_FORMAT
    )]
    NewerHome {
        /// The home.
        home: PathBuf,
        /// The format its stamp names.
        found: u32,
    },
    /// The home's format stamp does not read; nothing was touched.
    #[error("{} does not read as a home format stamp (\"roundtable-home-format N\"); nothing was changed: restore it from a backup", path.display())]
    BadFormatStamp {
        /// The stamp file.
        path: PathBuf,
    },
}

impl StoreError {
    /// An [`Io`](Self::Io) error: `op` failed on `path`.
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What the user can do about an I/O error.
fn hint(error: &io::Error) -> &'static str {
    match error.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => "free some disk space and try again",
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            "check that you can write to the Roundtable home"
        }
        _ => "check the disk and try again",
    }
}
