//! The file-system layer: every disk access of the store goes through [`Fs`],
//! so tests can swap in [`SimFs`](crate::fault::SimFs) and fail or crash any
//! single operation.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The file operations the store needs, and nothing more.
///
/// Each operation that changes the disk is a separate call, so a fault can be
/// injected between any two steps. Durability is explicit: a write, append,
/// directory creation, rename or removal is only known to survive a power cut
/// after [`sync_file`](Fs::sync_file) of the file and
/// [`sync_dir`](Fs::sync_dir) of the directory that holds its name.
pub trait Fs: Send + Sync + fmt::Debug {
    /// The whole content of a file; `NotFound` when it does not exist.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;

    /// The names of the entries of a directory, sorted.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;

    /// The length in bytes of a file, without reading it; `NotFound` when it
    /// does not exist, `IsADirectory` for a directory.
    fn file_len(&self, path: &Path) -> io::Result<u64>;

    /// Creates a directory and any missing parents, readable only by their
    /// owner. Succeeds if it already exists.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// Creates or truncates a file, readable and writable only by its owner,
    /// and writes all of `bytes`. Not durable by itself.
    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;

    /// Appends all of `bytes` to an existing file (`NotFound` if it does not
    /// exist). Not durable by itself.
    fn append(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;

    /// Flushes a file's content to stable storage (fsync).
    fn sync_file(&self, path: &Path) -> io::Result<()>;

    /// Renames a file, atomically replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a file (not a directory); `NotFound` when it does not exist.
    /// Like a rename, the removal is durable only once the directory that
    /// held the name is synced.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Flushes a directory's entries (names created, renamed or removed in
    /// it) to stable storage.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
}

/// The real file system, through `std`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsFs;

impl Fs for OsFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let meta = fs::metadata(path)?;
        if meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            ));
        }
        Ok(meta.len())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(path)
    }

    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        // The mode above only applies when the file is new.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        file.write_all(bytes)
    }

    fn append(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        // Never `create`: appending to a missing log must fail rather than make
        // a file without its header.
        OpenOptions::new().append(true).open(path)?.write_all(bytes)
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        // Since Linux 4.13 a descriptor opened after a failed writeback still
        // reports the error if nobody has seen it yet, so reopening is sound.
        File::open(path)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        #[cfg(unix)]
        return File::open(path)?.sync_all();
        // Windows cannot open a directory this way; NTFS journals renames.
        #[cfg(not(unix))]
        {
            let _ = path;
            Ok(())
        }
    }
}
