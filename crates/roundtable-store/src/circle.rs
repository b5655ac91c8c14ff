//! One circle on disk: its Automerge document kept as a snapshot plus a log
//! of changes, with every edit durable before it is acknowledged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use roundtable_core::{Circle, DeviceId};
use tracing::{debug, warn};

use crate::StoreError;
use crate::files::{CircleFiles, Recovered};
use crate::fs::Fs;

/// The log is compacted into the snapshot once it holds more than this
/// share of the snapshot's size (1/8)... A change is stored many times
/// smaller in a snapshot than as a log record, so a log left to grow soon
/// outweighs the snapshot on disk and slows every open.
const COMPACT_AT_SHARE: u64 = 8;

/// ... but never for a log smaller than this: a small circle would
/// otherwise rewrite its snapshot every few edits.
const COMPACT_MIN_LOG: u64 = 64 << 10;

/// Whether a log of `log` bytes next to a snapshot of `snapshot` bytes is
/// due to be compacted.
fn due(log: u64, snapshot: u64) -> bool {
    log > COMPACT_MIN_LOG && log > snapshot / COMPACT_AT_SHARE
}

/// What `repair` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repaired {
    /// Damaged files, now kept aside under the circle's `damaged/` directory.
    pub set_aside: Vec<PathBuf>,
    /// Changes in the recovered circle.
    pub changes_kept: usize,
    /// Changes that verified but could not be applied because an earlier
    /// change they build on was lost (another member's device may still have it).
    pub changes_missing: usize,
}

/// A circle open for editing by this home's one writer.
#[derive(Debug)]
pub struct CircleStore {
    dir: PathBuf,
    files: CircleFiles,
    circle: Circle,
    device: DeviceId,
    /// The writing session edits are made in (see
    /// `roundtable_core::circle::session_actor`); a new one whenever the
    /// memory is read again from disk, so nothing that was made but not
    /// kept is ever numbered again.
    session: u64,
    /// Whoever holds the store folds the log in with
    /// [`CircleStore::compact_if_due`], not each write.
    compact_later: bool,
}

impl CircleStore {
    pub(crate) fn create(
        fs: Arc<dyn Fs>,
        dir: &Path,
        circle: &Circle,
        device: DeviceId,
        session: u64,
    ) -> Result<Self, StoreError> {
        let files = CircleFiles::create(fs, dir, &circle.save())?;
        let mut circle = circle.clone();
        circle.set_writer(device, session);
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            circle,
            device,
            session,
            compact_later: false,
        })
    }

    /// Reads a circle, refusing real damage.
    pub(crate) fn read(fs: Arc<dyn Fs>, dir: &Path) -> Result<Circle, StoreError> {
        let (_files, recovered) = CircleFiles::open(fs, dir)?;
        build(dir, &recovered)
    }

    pub(crate) fn open(
        fs: Arc<dyn Fs>,
        dir: &Path,
        device: DeviceId,
        session: u64,
    ) -> Result<Self, StoreError> {
        let (files, recovered) = CircleFiles::open(fs, dir)?;
        let mut circle = build(dir, &recovered)?;
        circle.set_writer(device, session);
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            circle,
            device,
            session,
            compact_later: false,
        })
    }

    /// The circle as it stands (every change in it is durable).
    pub fn circle(&self) -> &Circle {
        &self.circle
    }

    /// Runs an edit and makes it durable. Returns only once the change's
    /// record is on disk and fsynced; on any failure the edit is not
    /// acknowledged and the in-memory circle is reloaded from disk, so it
    /// never holds what the disk may not.
    pub fn edit<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut Circle) -> Result<T, E>,
    ) -> Result<T, E> {
        let before = self.circle.heads();
        let out = match f(&mut self.circle) {
            Ok(out) => out,
            Err(e) => {
                // An edit made of several changes can fail after the first:
                // nothing of it was acknowledged, so nothing of it stays.
                if self.circle.heads() != before {
                    self.reload();
                }
                return Err(e);
            }
        };
        if !before.iter().all(|h| self.circle.has_change(h)) {
            // The history lost changes it held (two changes of one device
            // under one number, and the circle keeps the other): the log
            // cannot say that, a fresh snapshot can.
            self.compact()?;
            return Ok(out);
        }
        let changes = self.circle.changes_since(&before);
        if !changes.is_empty() {
            self.persist(&changes)?;
        }
        Ok(out)
    }

    /// Applies changes that came from elsewhere (a peer, a file) and makes
    /// them durable. Returns how many operations were new.
    pub fn apply(&mut self, bytes: &[u8]) -> Result<usize, StoreError> {
        let before = self.circle.heads();
        let new = self
            .circle
            .apply(bytes)
            .map_err(|e| StoreError::BadChanges(e.to_string()))?;
        let changes = self.circle.changes_since(&before);
        if !changes.is_empty() {
            self.persist(&changes)?;
        }
        Ok(new)
    }

    /// Writes a fresh snapshot and drops the log it covers.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        let snapshot = self.circle.save();
        if let Err(e) = self.files.compact(&snapshot) {
            self.reload();
            return Err(e);
        }
        Ok(())
    }

    fn persist(&mut self, changes: &[u8]) -> Result<(), StoreError> {
        let result = if self.files.can_append() {
            self.files.append(changes)
        } else {
            // After a crash (a torn tail) or a failed write the log cannot be
            // appended to; a snapshot of everything starts it afresh.
            debug!(dir = %self.dir.display(), "log needs a fresh start; compacting");
            self.files.compact(&self.circle.save())
        };
        if let Err(e) = result {
            self.reload();
            return Err(e);
        }
        if !self.compact_later {
            // The edit is already durable; a failed compaction only means a longer log.
            if let Err(e) = self.compact_if_due() {
                warn!(dir = %self.dir.display(), "compaction failed, will retry later: {e}");
            }
        }
        Ok(())
    }

    /// The size of the circle's snapshot on disk: about its size saved.
    pub fn snapshot_len(&self) -> u64 {
        self.files.snapshot_len()
    }

    /// Leaves folding the log into the snapshot to [`Self::compact_if_due`],
    /// so a write (an edit, changes from a peer) is acknowledged as soon as
    /// it is durable, without rewriting the snapshot first. A node calls it
    /// between messages.
    pub fn compact_later(&mut self) {
        self.compact_later = true;
    }

    /// Folds the log into the snapshot when it has grown past its share
    /// (see [`due`]); says whether it did.
    pub fn compact_if_due(&mut self) -> Result<bool, StoreError> {
        if !due(self.files.log_len(), self.files.snapshot_len()) {
            return Ok(false);
        }
        self.compact()?;
        Ok(true)
    }

    /// Throws away the in-memory state and reads the disk again. The file
    /// handle remembers a failed write, so the next edit compacts rather
    /// than appending after bytes that may never have reached the disk.
    fn reload(&mut self) {
        let fresh = self
            .files
            .reread()
            .and_then(|recovered| build(&self.dir, &recovered));
        match fresh {
            Ok(mut circle) => {
                // Go on in a new session: a change made in memory but
                // never kept is then never numbered alike by another.
                self.session = roundtable_core::circle::next_session(self.session);
                circle.set_writer(self.device, self.session);
                self.circle = circle;
            }
            Err(e) => {
                warn!(dir = %self.dir.display(), "could not reread the circle after a failed write: {e}")
            }
        }
    }

    pub(crate) fn repair(fs: Arc<dyn Fs>, dir: &Path) -> Result<Repaired, StoreError> {
        let (mut files, recovered) = CircleFiles::open(fs, dir)?;
        if recovered.is_clean() {
            return Ok(Repaired {
                changes_kept: build(dir, &recovered)?.doc().get_changes(&[]).len(),
                ..Repaired::default()
            });
        }
        let mut doc = roundtable_core::Circle::load(&recovered.snapshot)
            .map(|c| c.doc().clone())
            .unwrap_or_default();
        for record in &recovered.records {
            // A record that verified but does not parse is skipped; it stays in the file set aside.
            let _ = doc.load_incremental(record);
        }
        let circle = Circle::from_doc(doc).map_err(|_| StoreError::Unrecoverable {
            dir: dir.to_path_buf(),
        })?;
        let changes_missing = circle.missing_deps().len();
        let set_aside = files
            .compact(&circle.save())
            .map(|()| files.set_aside().to_vec())?;
        Ok(Repaired {
            set_aside,
            changes_kept: circle.doc().get_changes(&[]).len(),
            changes_missing,
        })
    }
}

/// The circle from what verified on disk; real damage is an error that says
/// what to do.
fn build(dir: &Path, recovered: &Recovered) -> Result<Circle, StoreError> {
    if recovered.has_real_damage() {
        return Err(StoreError::Damaged {
            dir: dir.to_path_buf(),
            what: recovered.describe_damage(),
        });
    }
    let damaged = |what: String| StoreError::Damaged {
        dir: dir.to_path_buf(),
        what,
    };
    // One load of the snapshot and every record after it, as Automerge
    // reads concatenated chunks; only when that fails, record by record to
    // say which one.
    let whole: Vec<u8> = std::iter::once(&recovered.snapshot)
        .chain(&recovered.records)
        .flat_map(|b| b.iter().copied())
        .collect();
    let circle = match Circle::load(&whole) {
        Ok(c) => c,
        Err(_) => {
            let mut circle = Circle::load(&recovered.snapshot)
                .map_err(|e| damaged(format!("the snapshot verifies but does not load ({e})")))?;
            for (i, record) in recovered.records.iter().enumerate() {
                circle.apply(record).map_err(|e| {
                    damaged(format!(
                        "log record {} verifies but does not load ({e})",
                        i + 1
                    ))
                })?;
            }
            circle
        }
    };
    if !circle.missing_deps().is_empty() {
        return Err(damaged(format!(
            "{} changes in the log build on changes that are missing",
            circle.missing_deps().len()
        )));
    }
    Ok(circle)
}
