//! One writer per home: an advisory lock on `<home>/lock`.
//!
//! The writer holds it exclusively and writes who it is into the file, so a
//! second writer can say who is in the way. Readers hold it shared, so they
//! never read while a writer is at work. The system releases the lock when
//! the holder exits, however it exits.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use tracing::debug;

/// The lock file's name inside the home.
pub const LOCK_FILE: &str = "lock";

/// How long to wait for a holder that is about to let go.
const PATIENCE: Duration = Duration::from_secs(1);
const PAUSE: Duration = Duration::from_millis(25);

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds it.
    #[error("another roundtable is using the home {}: {holder}; stop it or wait for it to finish", home.display())]
    Held {
        /// The home.
        home: PathBuf,
        /// Who holds it, as it described itself ("pid 1234 (roundtable up)").
        holder: String,
    },
    /// The lock file could not be opened or written.
    #[error("could not lock {}: {source}; check that you can write to the Roundtable home", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The error from the system.
        source: io::Error,
    },
}

/// A held lock on a home; released on drop.
#[derive(Debug)]
pub struct HomeLock {
    file: File,
    path: PathBuf,
    exclusive: bool,
    /// The writing session this lock begins (see [`HomeLock::session`]).
    session: u64,
}

impl HomeLock {
    /// Becomes the home's only writer, waiting up to about a second for a
    /// holder to let go. `holder` says who we are to anyone who has to wait
    /// ("roundtable checkin"). Creates the home if needed.
    pub fn acquire(home: &Path, holder: &str) -> Result<Self, LockError> {
        let mut lock = Self::take(home, true)?;
        let me = format!("pid {} ({holder})", std::process::id());
        let path = lock.path.clone();
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        lock.file.set_len(0).map_err(io)?;
        lock.file.seek(SeekFrom::Start(0)).map_err(io)?;
        lock.file.write_all(me.as_bytes()).map_err(io)?;
        debug!(path = %lock.path.display(), holder = %me, "home locked");
        lock.session = getrandom::u64()
            .map_err(|e| LockError::Io {
                path: lock.path.clone(),
                source: e.into(),
            })?
            .max(1);
        Ok(lock)
    }

    /// The writing session this lock begins: every circle its holder
    /// opens writes under an Automerge actor of this session (see
    /// `roundtable_core::circle::session_actor`), so a home restored from
    /// an older copy, or copied, never numbers a change like one made
    /// before. Random, never 0.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Sets the writing session, for a holder that makes its own
    /// randomness (a simulation that must replay exactly). 0 becomes 1.
    pub fn set_session(&mut self, session: u64) {
        self.session = session.max(1);
    }

    /// A reader's lock, shared with other readers, waiting like
    /// [`acquire`](Self::acquire) for a writer to finish.
    pub fn shared(home: &Path) -> Result<Self, LockError> {
        Self::take(home, false)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn take(home: &Path, exclusive: bool) -> Result<Self, LockError> {
        let path = home.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut dirs = std::fs::DirBuilder::new();
        dirs.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dirs, 0o700);
        dirs.create(home).map_err(io)?;
        let mut options = OpenOptions::new();
        // Never truncate on open: the file names the current holder.
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(io)?;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let attempt = if exclusive {
                file.try_lock()
            } else {
                file.try_lock_shared()
            };
            match attempt {
                Ok(()) => break,
                Err(TryLockError::Error(e)) => return Err(io(e)),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => thread::sleep(PAUSE),
                Err(TryLockError::WouldBlock) => {
                    return Err(LockError::Held {
                        home: home.to_path_buf(),
                        holder: holder_of(&mut file),
                    });
                }
            }
        }
        Ok(Self {
            file,
            path,
            exclusive,
            session: 0,
        })
    }
}

/// What the holder wrote, or who it must be if it wrote nothing.
fn holder_of(file: &mut File) -> String {
    let mut text = String::new();
    let read = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.take(256).read_to_string(&mut text));
    match read {
        Ok(_) if !text.trim().is_empty() => text.trim().to_owned(),
        // Only writers describe themselves.
        _ => "a process reading it".to_owned(),
    }
}

impl Drop for HomeLock {
    fn drop(&mut self) {
        if self.exclusive {
            // Clear the description so a later reader is not named after us.
            // The lock itself goes with the file handle.
            let _ = self.file.set_len(0);
        }
    }
}
