//! One circle's durable files, in its own directory:
//!
//! ```text
//! <dir>/
//! ├─ snapshot        the whole circle as of the last compaction
//! ├─ log             records appended since
//! └─ damaged/        damaged files kept byte for byte: snapshot-1, log-1, ...
//! ```
//!
//! `snapshot.tmp` and `log.tmp` may be left over from an interrupted
//! compaction; they are ignored and overwritten by the next one.

mod format;

use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{debug, info};

pub use self::format::{
    Damage, FileKind, LOG_MAGIC, MAX_RECORD_LEN, ParsedLog, SNAPSHOT_MAGIC, parse_log,
    parse_snapshot,
};
use self::format::{encode_record, encode_snapshot};
use crate::error::StoreError;
use crate::fs::Fs;

const DAMAGED: &str = "damaged";
/// Appended to a circle directory's name while [`CircleFiles::create`]
/// builds it.
pub const CREATING_SUFFIX: &str = ".creating";

/// Why a log takes no more records until the next compaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompactionReason {
    /// The log ends in a record cut short by a crash.
    TornTail,
    /// The log is damaged or missing.
    Damaged,
    /// A write failed, so what reached the disk is unknown.
    FailedWrite,
}

impl fmt::Display for CompactionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TornTail => "it ends in a record cut short by a crash",
            Self::Damaged => "it is damaged or missing",
            Self::FailedWrite => "an earlier write failed, so what reached the disk is unknown",
        })
    }
}

/// What [`CircleFiles::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovered {
    /// The snapshot's payload; empty when the snapshot is missing or damaged
    /// (a stored payload is never empty).
    pub snapshot: Vec<u8>,
    /// Every log record that verifies, in order.
    pub records: Vec<Vec<u8>>,
    /// What is wrong with the files, snapshot first.
    pub damage: Vec<Damage>,
}

impl Recovered {
    /// Whether both files are whole.
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }

    /// Whether anything is wrong beyond the torn tail a crash leaves, which
    /// loses nothing acknowledged.
    pub fn has_real_damage(&self) -> bool {
        self.damage.iter().any(|d| !d.is_benign())
    }

    /// The damage in plain words, one clause per problem.
    pub fn describe_damage(&self) -> String {
        let clauses: Vec<String> = self.damage.iter().map(ToString::to_string).collect();
        clauses.join("; ")
    }
}

/// A circle's snapshot and log, open for appending.
///
/// # Durability
///
/// [`append`](Self::append) returns `Ok` only once the record is fsynced, and
/// only that acknowledges it. After any failed write nothing is known about
/// what reached the disk (a failed fsync may have dropped the data while a
/// retry reports success), so the log takes no more records until a
/// compaction starts it afresh.
#[derive(Debug)]
pub struct CircleFiles {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    /// Set while the log may not be appended to.
    blocked: Option<CompactionReason>,
    /// The file on disk may not be whole, so compaction keeps a copy.
    snapshot_damaged: bool,
    log_damaged: bool,
    /// Whether this handle has synced the circle directory and its parent:
    /// a process that crashed before syncing them may have left names that
    /// this one can see but a power cut would lose.
    dirs_synced: bool,
    log_len: u64,
    snapshot_len: u64,
    set_aside: Vec<PathBuf>,
}

impl CircleFiles {
    /// Creates a circle's files in `dir`, which must not exist, holding
    /// `snapshot` and an empty log. Returns once all of it is durable.
    ///
    /// The files are built in a sibling directory named with
    /// [`CREATING_SUFFIX`] that is renamed to `dir` once complete, so `dir`
    /// never exists half made. After an interrupted attempt that sibling is
    /// left behind and reused by the next one.
    pub fn create(fs: Arc<dyn Fs>, dir: &Path, snapshot: &[u8]) -> Result<Self, StoreError> {
        check_size(snapshot)?;
        if fs.exists(dir).map_err(at("look for", dir))? {
            return Err(StoreError::AlreadyExists {
                dir: dir.to_path_buf(),
            });
        }
        let Some(name) = dir.file_name() else {
            let e = std::io::Error::new(ErrorKind::InvalidInput, "not a directory name");
            return Err(StoreError::io("create", dir, e));
        };
        let mut staging_name = name.to_os_string();
        staging_name.push(CREATING_SUFFIX);
        let staging = dir.with_file_name(staging_name);
        create_dir_durably(fs.as_ref(), &staging)?;
        for (kind, bytes) in [
            (FileKind::Snapshot, encode_snapshot(snapshot)),
            (FileKind::Log, LOG_MAGIC.to_vec()),
        ] {
            let path = staging.join(kind.file_name());
            fs.write_new(&path, &bytes).map_err(at("write", &path))?;
            fs.sync_file(&path).map_err(at("fsync", &path))?;
        }
        fs.sync_dir(&staging).map_err(at("fsync", &staging))?;
        fs.rename(&staging, dir)
            .map_err(at("rename a new circle into", dir))?;
        let parent = parent_of(dir);
        fs.sync_dir(parent).map_err(at("fsync", parent))?;
        Ok(Self {
            fs,
            dir: dir.to_path_buf(),
            blocked: None,
            snapshot_damaged: false,
            log_damaged: false,
            dirs_synced: true,
            log_len: LOG_MAGIC.len() as u64,
            snapshot_len: snapshot.len() as u64,
            set_aside: Vec::new(),
        })
    }

    /// Reads a circle's files, changing nothing on disk.
    ///
    /// Damage is reported in [`Recovered::damage`], not as an error: the
    /// caller decides whether to go on with what verified. A torn tail at
    /// the end of the log is the expected result of a crash and loses
    /// nothing acknowledged. While the log has any damage, torn tail
    /// included, [`append`](Self::append) refuses until a
    /// [`compact`](Self::compact).
    ///
    /// After a failed write, call [`reread`](Self::reread) on the handle
    /// that failed rather than opening afresh: a fresh handle cannot know
    /// that what it reads may not be on the disk.
    pub fn open(fs: Arc<dyn Fs>, dir: &Path) -> Result<(Self, Recovered), StoreError> {
        if !fs.exists(dir).map_err(at("look for", dir))? {
            return Err(StoreError::NotFound {
                dir: dir.to_path_buf(),
            });
        }
        let mut recovered = Recovered::default();
        let snapshot_path = dir.join(FileKind::Snapshot.file_name());
        match read_if_present(fs.as_ref(), &snapshot_path)? {
            Some(bytes) => match parse_snapshot(&bytes) {
                Ok(payload) => recovered.snapshot = payload,
                Err(damage) => recovered.damage.push(damage),
            },
            None => recovered.damage.push(Damage::Missing {
                file: FileKind::Snapshot,
            }),
        }
        let snapshot_damaged = !recovered.damage.is_empty();
        let snapshot_len = recovered.snapshot.len() as u64;
        let log_path = dir.join(FileKind::Log.file_name());
        let mut log_len = 0;
        match read_if_present(fs.as_ref(), &log_path)? {
            Some(bytes) => {
                log_len = bytes.len() as u64;
                let parsed = parse_log(&bytes);
                recovered.records = parsed.records;
                recovered.damage.extend(parsed.damage);
            }
            None => recovered.damage.push(Damage::Missing {
                file: FileKind::Log,
            }),
        }
        let log_damage: Vec<&Damage> = recovered
            .damage
            .iter()
            .filter(|d| d.file() == FileKind::Log)
            .collect();
        let blocked = match log_damage.as_slice() {
            [] => None,
            all if all.iter().all(|d| d.is_benign()) => Some(CompactionReason::TornTail),
            _ => Some(CompactionReason::Damaged),
        };
        for damage in &recovered.damage {
            // Real damage reaches the caller in `Recovered`, which says what to do;
            // logging it here too would say it twice.
            if damage.is_benign() {
                info!(dir = %dir.display(), "{damage}");
            } else {
                debug!(dir = %dir.display(), "circle file damaged: {damage}");
            }
        }
        let files = Self {
            fs,
            dir: dir.to_path_buf(),
            blocked,
            snapshot_damaged,
            log_damaged: blocked.is_some(),
            dirs_synced: false,
            log_len,
            snapshot_len,
            set_aside: Vec::new(),
        };
        Ok((files, recovered))
    }

    /// Reads the files again, as [`open`](Self::open) does, for a caller that
    /// throws its state away after a failed write. Unlike a fresh `open`, the
    /// handle remembers the failure and keeps refusing appends until a
    /// compaction: what it reads may include bytes that never reached the
    /// disk, and only a compaction that covers them makes them durable.
    pub fn reread(&mut self) -> Result<Recovered, StoreError> {
        let (fresh, recovered) = Self::open(self.fs.clone(), &self.dir)?;
        self.blocked = self.blocked.or(fresh.blocked);
        self.snapshot_damaged |= fresh.snapshot_damaged;
        self.log_damaged |= fresh.log_damaged;
        self.log_len = fresh.log_len;
        self.snapshot_len = fresh.snapshot_len;
        Ok(recovered)
    }

    /// The circle directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether [`append`](Self::append) may be called; if not,
    /// [`compact`](Self::compact) first.
    pub fn can_append(&self) -> bool {
        self.blocked.is_none()
    }

    /// Why [`append`](Self::append) would refuse, if it would.
    pub fn needs_compaction(&self) -> Option<CompactionReason> {
        self.blocked
    }

    /// The log's size in bytes, to decide when to compact.
    pub fn log_len(&self) -> u64 {
        self.log_len
    }

    /// The snapshot's size in bytes (its payload), to decide when to compact.
    pub fn snapshot_len(&self) -> u64 {
        self.snapshot_len
    }

    /// Where the last [`compact`](Self::compact) kept damaged files.
    pub fn set_aside(&self) -> &[PathBuf] {
        &self.set_aside
    }

    /// Appends one record to the log and fsyncs it. `Ok` means the record
    /// is durable: only then may the edit be acknowledged.
    ///
    /// Refuses with [`StoreError::NeedsCompaction`] if the log is damaged,
    /// ends in a torn record, or a write failed earlier: a record appended
    /// there would sit behind bytes that do not verify.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), StoreError> {
        check_size(payload)?;
        if let Some(reason) = self.blocked {
            return Err(StoreError::NeedsCompaction {
                dir: self.dir.clone(),
                reason,
            });
        }
        // Until this returns Ok, assume the worst.
        self.blocked = Some(CompactionReason::FailedWrite);
        self.sync_dirs_once()?;
        let log = self.path(FileKind::Log);
        let record = encode_record(payload);
        self.log_damaged = true;
        self.fs
            .append(&log, &record)
            .map_err(at("append to", &log))?;
        self.fs.sync_file(&log).map_err(at("fsync", &log))?;
        self.log_damaged = false;
        self.blocked = None;
        self.log_len += record.len() as u64;
        Ok(())
    }

    /// Replaces the snapshot with `snapshot`, which must cover every record
    /// in the log, and starts an empty log. Damaged files are first copied
    /// into `damaged/` (see [`set_aside`](Self::set_aside)). A success also
    /// lifts any refusal of [`append`](Self::append).
    ///
    /// # Crash safety
    ///
    /// 1. The new snapshot is written to `snapshot.tmp` and fsynced.
    /// 2. If the snapshot is damaged, its bytes are copied to
    ///    `damaged/snapshot-<n>`, fsynced, and `damaged/` is fsynced.
    /// 3. `snapshot.tmp` is renamed over `snapshot` and the directory fsynced.
    /// 4. The same for the log: an empty `log.tmp` is written and fsynced,
    ///    a damaged log (a torn tail included) copied to `damaged/log-<n>`,
    ///    then `log.tmp` renamed over `log` and the directory fsynced.
    ///
    /// Each rename replaces a whole file atomically, so `snapshot` and `log`
    /// always exist and are each either the old or the new file. A crash
    /// before step 3 leaves the old pair; after step 3 but before step 4 it
    /// leaves the new snapshot with the old log, whose records the snapshot
    /// already covers. Replaying them is harmless because records are
    /// idempotent (as Automerge changes are), so every state opens and loses
    /// nothing acknowledged. A damaged file is copied, not moved, so there is
    /// no moment without a `snapshot` or `log`, and its bytes are durable in
    /// `damaged/` before the rename replaces it; nothing there is ever
    /// overwritten, as `<n>` is always new.
    pub fn compact(&mut self, snapshot: &[u8]) -> Result<(), StoreError> {
        check_size(snapshot)?;
        self.blocked = Some(CompactionReason::FailedWrite);
        self.set_aside.clear();
        self.sync_dirs_once()?;
        self.replace(FileKind::Snapshot, &encode_snapshot(snapshot))?;
        self.snapshot_damaged = false;
        self.replace(FileKind::Log, &LOG_MAGIC)?;
        self.log_damaged = false;
        self.blocked = None;
        self.log_len = LOG_MAGIC.len() as u64;
        self.snapshot_len = snapshot.len() as u64;
        Ok(())
    }

    /// Steps 1 to 3 (or 4) of [`compact`](Self::compact) for one file.
    fn replace(&mut self, kind: FileKind, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(kind);
        let tmp = self.dir.join(format!("{}.tmp", kind.file_name()));
        self.fs.write_new(&tmp, bytes).map_err(at("write", &tmp))?;
        self.fs.sync_file(&tmp).map_err(at("fsync", &tmp))?;
        let damaged = match kind {
            FileKind::Snapshot => self.snapshot_damaged,
            FileKind::Log => self.log_damaged,
        };
        if damaged && let Some(kept) = self.keep_aside(kind)? {
            self.set_aside.push(kept);
        }
        self.fs
            .rename(&tmp, &path)
            .map_err(at("rename a new file into", &path))?;
        self.fs.sync_dir(&self.dir).map_err(at("fsync", &self.dir))
    }

    /// Copies a damaged file into `damaged/` durably, under a new name.
    fn keep_aside(&self, kind: FileKind) -> Result<Option<PathBuf>, StoreError> {
        let fs = self.fs.as_ref();
        let Some(bytes) = read_if_present(fs, &self.path(kind))? else {
            return Ok(None);
        };
        let aside = self.dir.join(DAMAGED);
        if !fs.exists(&aside).map_err(at("look for", &aside))? {
            fs.create_dir_all(&aside).map_err(at("create", &aside))?;
            fs.sync_dir(&self.dir).map_err(at("fsync", &self.dir))?;
        }
        let prefix = format!("{}-", kind.file_name());
        let taken = fs.list_dir(&aside).map_err(at("list", &aside))?;
        let n = taken
            .iter()
            .filter_map(|name| name.strip_prefix(&prefix)?.parse::<u64>().ok())
            .max()
            .map_or(1, |n| n + 1);
        let target = aside.join(format!("{prefix}{n}"));
        fs.write_new(&target, &bytes)
            .map_err(at("write", &target))?;
        fs.sync_file(&target).map_err(at("fsync", &target))?;
        fs.sync_dir(&aside).map_err(at("fsync", &aside))?;
        info!(dir = %self.dir.display(), kept = %target.display(), "damaged {kind} kept aside");
        Ok(Some(target))
    }

    fn sync_dirs_once(&mut self) -> Result<(), StoreError> {
        if !self.dirs_synced {
            let parent = parent_of(&self.dir);
            for dir in [self.dir.as_path(), parent] {
                self.fs.sync_dir(dir).map_err(at("fsync", dir))?;
            }
            self.dirs_synced = true;
        }
        Ok(())
    }

    fn path(&self, kind: FileKind) -> PathBuf {
        self.dir.join(kind.file_name())
    }
}

/// Replaces the file at `path` with `bytes` durably: through `<path>.tmp`,
/// fsynced, renamed into place, and the directory fsynced. A crash leaves
/// either the old file or the new one. Like everything the store writes,
/// the file is readable only by its owner. The directory must exist
/// durably already (see [`create_dir_durably`]).
pub fn write_durably(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs.write_new(&tmp, bytes).map_err(at("write", &tmp))?;
    fs.sync_file(&tmp).map_err(at("fsync", &tmp))?;
    fs.rename(&tmp, path)
        .map_err(at("rename a new file into", path))?;
    let parent = parent_of(path);
    fs.sync_dir(parent).map_err(at("fsync", parent))
}

/// Creates a directory and any missing parents durably: every directory on
/// the path is fsynced into its parent, not only those made now, because an
/// earlier attempt that failed or crashed may have made some without.
pub fn create_dir_durably(fs: &dyn Fs, dir: &Path) -> Result<(), StoreError> {
    let ancestors: Vec<&Path> = dir
        .ancestors()
        .filter(|p| !p.as_os_str().is_empty() && p.parent().is_some())
        .collect();
    let mut existed = Vec::with_capacity(ancestors.len());
    for path in &ancestors {
        existed.push(fs.exists(path).map_err(at("look for", path))?);
    }
    fs.create_dir_all(dir).map_err(at("create", dir))?;
    for (path, existed) in ancestors.iter().zip(existed).rev() {
        let parent = parent_of(path);
        match fs.sync_dir(parent) {
            Ok(()) => {}
            // A directory we may not read is not one we made.
            Err(e) if existed && e.kind() == ErrorKind::PermissionDenied => {
                debug!(dir = %parent.display(), "cannot fsync: {e}");
            }
            Err(e) => return Err(StoreError::io("fsync", parent, e)),
        }
    }
    Ok(())
}

/// Turns an I/O error into a [`StoreError`] saying what failed where.
fn at<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |e| StoreError::io(op, path, e)
}

fn read_if_present(fs: &dyn Fs, path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs.read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("read", path, e)),
    }
}

fn check_size(payload: &[u8]) -> Result<(), StoreError> {
    if payload.is_empty() || payload.len() > MAX_RECORD_LEN {
        return Err(StoreError::RecordSize { len: payload.len() });
    }
    Ok(())
}

/// The directory holding `path`'s name.
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
