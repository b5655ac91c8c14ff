//! [`FsBlobs`]: blobs kept as files under a root directory, through the
//! store's file layer ([`Fs`]), so the same code runs on the real disk
//! ([`OsFs`](roundtable_store::OsFs)) and, in tests and the simulation, on
//! [`SimFs`](roundtable_store::fault::SimFs) with its crashes.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use roundtable_store::{Fs, create_dir_durably};

use super::{BlobError, Blobs, MAX_KEY_LEN, check_key, check_len, check_prefix, is_segment};

/// Appended to a segment to name the directory of the keys under it.
const DIR_MARK: char = '+';

/// How many locks the keys are spread over: writes of different keys
/// rarely wait for each other.
const STRIPES: usize = 64;

/// Blobs kept as files under a root directory, through the store's file
/// layer ([`Fs`]), so the same code runs on the real disk
/// ([`OsFs`](roundtable_store::OsFs)) and, in tests and the simulation, on
/// [`SimFs`](roundtable_store::fault::SimFs) with its crashes.
///
/// # Layout
///
/// ```text
/// <root>/
/// ├─ lockers+/            the directory of the keys under "lockers/"
/// │  ├─ ab+/
/// │  │  ├─ 0001           the blob "lockers/ab/0001"
/// │  │  └─ .0002.tmp      a write of "lockers/ab/0002" under way, or cut short
/// │  └─ ab               the blob "lockers/ab", beside the keys under it
/// ```
///
/// Each segment but the last is a directory named after it with `+`
/// appended, a character no key has, so a key can be a blob and the prefix
/// of others at once, as in object storage. Names starting with `.` are
/// temporary files and never keys.
///
/// # Durability
///
/// A write goes to `.<name>.tmp` beside its target, which is fsynced,
/// renamed over the target, and the directory fsynced; a crash leaves the
/// key's old bytes or its new ones, never a mix. A new directory is fsynced
/// into its parent before anything is written in it. A delete fsyncs the
/// directory. A temporary file has one name per key, so a crash leaves at
/// most one per key, which the next write of that key reuses and
/// [`FsBlobs::open`] removes.
///
/// Writes of one key are serialised inside the process, which makes
/// [`create`](Blobs::create) atomic. One process, and one `FsBlobs`, owns a
/// root at a time (the steward's home lock sees to the process).
pub struct FsBlobs<F> {
    fs: F,
    root: PathBuf,
    /// Each key's writes take the lock of its stripe.
    stripes: Box<[Mutex<()>]>,
    /// Directories this value has made sure are durable in their parents.
    durable_dirs: Mutex<HashSet<PathBuf>>,
}

impl<F: Fs> fmt::Debug for FsBlobs<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsBlobs")
            .field("fs", &self.fs)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl<F: Fs> FsBlobs<F> {
    /// Opens the blobs under `root`, creating it durably if it is missing,
    /// and removes the temporary files that a crash in the middle of a
    /// write left behind (which walks every directory under `root` once).
    pub fn open(fs: F, root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = root.into();
        create_dir_durably(&fs, &root).map_err(|e| BlobError::Io(e.to_string()))?;
        let blobs = Self {
            fs,
            root: root.clone(),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            durable_dirs: Mutex::new(HashSet::from([root])),
        };
        blobs.remove_leftovers(&blobs.root)?;
        Ok(blobs)
    }

    /// The directory the blobs are under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file system the blobs are on.
    pub fn fs(&self) -> &F {
        &self.fs
    }

    /// Removes the temporary files in `dir` and below.
    fn remove_leftovers(&self, dir: &Path) -> Result<(), BlobError> {
        let mut removed = false;
        for name in self.fs.list_dir(dir).map_err(io_at("list", dir))? {
            if name.starts_with('.') {
                let path = dir.join(&name);
                match self.fs.remove_file(&path) {
                    Ok(()) => removed = true,
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    // Not a file of ours: leave it be.
                    Err(e) if e.kind() == ErrorKind::IsADirectory => {}
                    Err(e) => return Err(io_error("remove", &path, &e)),
                }
            } else if name.ends_with(DIR_MARK) {
                self.remove_leftovers(&dir.join(&name))?;
            }
        }
        if removed {
            self.fs.sync_dir(dir).map_err(io_at("fsync", dir))?;
        }
        Ok(())
    }

    /// Where `key` lives: its directory, its file, and its temporary file.
    fn locate(&self, key: &str) -> Result<Location, BlobError> {
        check_key(key)?;
        let mut segments: Vec<&str> = key.split('/').collect();
        let name = segments.pop().unwrap_or(key);
        let mut dirs = Vec::with_capacity(segments.len() + 1);
        let mut dir = self.root.clone();
        dirs.push(dir.clone());
        for segment in segments {
            dir.push(format!("{segment}{DIR_MARK}"));
            dirs.push(dir.clone());
        }
        Ok(Location {
            file: dir.join(name),
            temp: dir.join(format!(".{name}.tmp")),
            dirs,
        })
    }

    /// The lock that `key`'s writes take.
    fn lock(&self, key: &str) -> MutexGuard<'_, ()> {
        // FNV-1a: stable, and plenty to spread keys.
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let stripe = usize::try_from(hash % STRIPES as u64).unwrap_or(0);
        self.stripes[stripe]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes sure each of `dirs` (from the root down) exists and is durable
    /// in its parent. A directory made by an earlier process that crashed
    /// before syncing its parent is synced here too, so it is done once per
    /// directory and `FsBlobs`, not once per directory made.
    fn ensure_dirs(&self, dirs: &[PathBuf]) -> Result<(), BlobError> {
        for pair in dirs.windows(2) {
            let [parent, dir] = pair else { continue };
            if self.durable().contains(dir) {
                continue;
            }
            self.fs.create_dir_all(dir).map_err(io_at("create", dir))?;
            self.fs.sync_dir(parent).map_err(io_at("fsync", parent))?;
            self.durable().insert(dir.clone());
        }
        Ok(())
    }

    fn durable(&self) -> MutexGuard<'_, HashSet<PathBuf>> {
        self.durable_dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `bytes` to `at` durably; the caller holds the key's lock.
    fn write(&self, at: &Location, bytes: &[u8]) -> Result<(), BlobError> {
        self.ensure_dirs(&at.dirs)?;
        let dir = at.dir();
        let steps = || -> Result<(), BlobError> {
            self.fs
                .write_new(&at.temp, bytes)
                .map_err(io_at("write", &at.temp))?;
            self.fs
                .sync_file(&at.temp)
                .map_err(io_at("fsync", &at.temp))?;
            self.fs
                .rename(&at.temp, &at.file)
                .map_err(io_at("rename a new file into", &at.file))?;
            self.fs.sync_dir(dir).map_err(io_at("fsync", dir))
        };
        let result = steps();
        if result.is_err() {
            // Best effort: a leftover is reused by the next write of the key
            // and removed by the next open anyway.
            let _ = self.fs.remove_file(&at.temp);
        }
        result
    }

    /// Lists the keys in `dir` and below, whose keys start with
    /// `key_prefix`, into `out`.
    fn walk(
        &self,
        dir: &Path,
        key_prefix: &str,
        after: Option<&str>,
        limit: usize,
        out: &mut Vec<(String, u64)>,
    ) -> Result<(), BlobError> {
        let names = match self.fs.list_dir(dir) {
            Ok(names) => names,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error("list", dir, &e)),
        };
        // What each entry sorts as among the keys: a directory's keys all
        // start with its segment and `/`, so sorting it as that puts it
        // where its keys belong.
        let mut entries: Vec<(String, &str)> = names
            .iter()
            .filter_map(|name| match name.strip_suffix(DIR_MARK) {
                Some(segment) if is_segment(segment) => {
                    Some((format!("{segment}/"), name.as_str()))
                }
                None if is_segment(name) => Some((name.clone(), name.as_str())),
                _ => None,
            })
            .collect();
        entries.sort_unstable();
        for (sorts_as, name) in entries {
            if out.len() >= limit {
                break;
            }
            let key = format!("{key_prefix}{sorts_as}");
            let path = dir.join(name);
            if key.ends_with('/') {
                // Every key below starts with `key`: none is after `after`
                // if `after` sorts past all of them, and none is a key if
                // `key` is as long as a key may be.
                let skip = after.is_some_and(|a| a > key.as_str() && !a.starts_with(&key))
                    || key.len() >= MAX_KEY_LEN;
                if !skip {
                    self.walk(&path, &key, after, limit, out)?;
                }
                continue;
            }
            if after.is_some_and(|a| key.as_str() <= a) || key.len() > MAX_KEY_LEN {
                continue;
            }
            match self.fs.file_len(&path) {
                Ok(len) => out.push((key, len)),
                // Deleted since the listing, or not a file of ours.
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::IsADirectory) => {}
                Err(e) => return Err(io_error("measure", &path, &e)),
            }
        }
        Ok(())
    }
}

impl<F: Fs> Blobs for FsBlobs<F> {
    fn create(&self, key: &str, bytes: &[u8]) -> Result<bool, BlobError> {
        let at = self.locate(key)?;
        check_len(key, bytes.len() as u64)?;
        let _lock = self.lock(key);
        if self
            .fs
            .exists(&at.file)
            .map_err(io_at("look for", &at.file))?
        {
            // What it found may be the unsynced write of a process that
            // crashed: make it durable before saying the key is taken.
            self.ensure_dirs(&at.dirs)?;
            self.fs
                .sync_file(&at.file)
                .map_err(io_at("fsync", &at.file))?;
            let dir = at.dir();
            self.fs.sync_dir(dir).map_err(io_at("fsync", dir))?;
            return Ok(false);
        }
        self.write(&at, bytes)?;
        Ok(true)
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError> {
        let at = self.locate(key)?;
        check_len(key, bytes.len() as u64)?;
        let _lock = self.lock(key);
        self.write(&at, bytes)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let at = self.locate(key)?;
        let not_found = |e: &io::Error| e.kind() == ErrorKind::NotFound;
        match self.fs.file_len(&at.file) {
            Ok(len) => check_len(key, len)?,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(io_error("measure", &at.file, &e)),
        }
        let bytes = match self.fs.read(&at.file) {
            Ok(bytes) => bytes,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(io_error("read", &at.file, &e)),
        };
        // Replaced by a larger file since it was measured.
        check_len(key, bytes.len() as u64)?;
        Ok(Some(bytes))
    }

    fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, BlobError> {
        check_prefix(prefix)?;
        if let Some(after) = after {
            check_key(after)?;
        }
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut dir = self.root.clone();
        let mut key_prefix = String::new();
        if !prefix.is_empty() {
            for segment in prefix.split('/') {
                dir.push(format!("{segment}{DIR_MARK}"));
            }
            key_prefix = format!("{prefix}/");
        }
        self.walk(&dir, &key_prefix, after, limit, &mut out)?;
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<(), BlobError> {
        let at = self.locate(key)?;
        let _lock = self.lock(key);
        match self.fs.remove_file(&at.file) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove", &at.file, &e)),
        }
        // Even when it was gone already: a process that crashed may have
        // removed it without making that durable.
        let dir = at.dir();
        match self.fs.sync_dir(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("fsync", dir, &e)),
        }
    }
}

/// Where one key lives.
struct Location {
    /// The root and each directory down to the one holding the file.
    dirs: Vec<PathBuf>,
    file: PathBuf,
    temp: PathBuf,
}

impl Location {
    fn dir(&self) -> &Path {
        self.dirs.last().map_or(Path::new("."), PathBuf::as_path)
    }
}

fn io_error(op: &str, path: &Path, e: &io::Error) -> BlobError {
    BlobError::Io(format!("cannot {op} {}: {e}", path.display()))
}

fn io_at<'a>(op: &'a str, path: &'a Path) -> impl FnOnce(io::Error) -> BlobError + 'a {
    move |e| io_error(op, path, &e)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use roundtable_store::Fs;
    use roundtable_store::fault::SimFs;

    use super::*;

    fn open() -> FsBlobs<SimFs> {
        FsBlobs::open(SimFs::new(), "/home/blobs").unwrap()
    }

    #[test]
    fn keys_map_to_files_under_marked_directories() {
        let blobs = open();
        let at = blobs.locate("lockers/ab/0001").unwrap();
        assert_eq!(at.file, Path::new("/home/blobs/lockers+/ab+/0001"));
        assert_eq!(at.temp, Path::new("/home/blobs/lockers+/ab+/.0001.tmp"));
        assert_eq!(at.dir(), Path::new("/home/blobs/lockers+/ab+"));
        assert_eq!(at.dirs.len(), 3);
        let at = blobs.locate("top").unwrap();
        assert_eq!(at.file, Path::new("/home/blobs/top"));
        assert_eq!(at.dir(), Path::new("/home/blobs"));
        for bad in ["../x", "a/../../x", "/etc/passwd", "a/.hidden", ""] {
            assert!(matches!(blobs.locate(bad), Err(BlobError::BadKey(_))));
        }
    }

    #[test]
    fn a_blob_and_the_keys_under_it_are_kept_apart() {
        let blobs = open();
        blobs.put("a", b"leaf").unwrap();
        blobs.put("a/b", b"below").unwrap();
        assert_eq!(blobs.get("a").unwrap().unwrap(), b"leaf");
        assert_eq!(blobs.get("a/b").unwrap().unwrap(), b"below");
        let fs = blobs.fs();
        assert_eq!(fs.list_dir(Path::new("/home/blobs")).unwrap(), ["a", "a+"]);
    }

    #[test]
    fn strangers_in_the_directories_are_not_keys() {
        let blobs = open();
        blobs.put("d/k", b"x").unwrap();
        let fs = blobs.fs();
        fs.write_new(Path::new("/home/blobs/UPPER"), b"?").unwrap();
        fs.write_new(Path::new("/home/blobs/d+/.k.tmp"), b"half")
            .unwrap();
        fs.create_dir_all(Path::new("/home/blobs/plain")).unwrap();
        fs.create_dir_all(Path::new("/home/blobs/Bad+")).unwrap();
        assert_eq!(blobs.list("", None, 10).unwrap(), [("d/k".to_owned(), 1)]);
    }

    #[test]
    fn reopening_removes_leftover_temporary_files_only() {
        let blobs = open();
        blobs.put("d/e/k", b"kept").unwrap();
        let fs = blobs.fs().clone();
        for leftover in ["/home/blobs/.x.tmp", "/home/blobs/d+/e+/.k.tmp"] {
            fs.write_new(Path::new(leftover), b"torn").unwrap();
        }
        drop(blobs);
        let blobs = FsBlobs::open(fs.clone(), "/home/blobs").unwrap();
        let files: Vec<_> = fs.files().into_iter().map(|(p, _)| p).collect();
        assert_eq!(files, [Path::new("/home/blobs/d+/e+/k")]);
        assert_eq!(blobs.get("d/e/k").unwrap().unwrap(), b"kept");
    }
}
