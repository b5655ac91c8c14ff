//! [`SimFs`]: an in-memory file system that models what survives a crash,
//! with faults injected at chosen operations.
//!
//! It keeps two views of everything. A file has the content reads see, the
//! content on the disk, and which bytes are dirty (written since they last
//! went to the disk); a directory has the entries reads see and the entries
//! on the disk, plus the unsynced changes in the order they were made. A
//! crash ([`SimFs::crashed_state`]) builds the file system a restarted
//! process would find.
//!
//! Operations that change the disk are numbered from 0 in the order they are
//! called ([`SimFs::write_ops`]); reads are not counted. A test runs its
//! workload once to count them, then again once per operation number with a
//! [`Fault`] planted there.
//!
//! ```
//! use std::path::Path;
//! use roundtable_store::Fs;
//! use roundtable_store::fault::{CrashState, Fault, SimFs};
//!
//! let fs = SimFs::new();
//! fs.inject(2, Fault::Crash);
//! fs.create_dir_all(Path::new("/a")).unwrap(); // op 0
//! fs.write_new(Path::new("/a/f"), b"hello").unwrap(); // op 1
//! assert!(fs.sync_file(Path::new("/a/f")).is_err()); // op 2: the crash
//! // The file's name was never synced into its directory: a power cut loses it.
//! let after = fs.crashed_state(CrashState::POWER_LOSS);
//! assert!(!after.exists(Path::new("/a")).unwrap());
//! ```

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::io::{self, ErrorKind};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::fs::Fs;

/// A fault planted at one operation number (see [`SimFs::inject`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The operation fails with an error of this kind. A write or append
    /// stores the first half of its bytes before failing; anything else has
    /// no effect, except that a failed `sync_file` drops the file's dirty
    /// bytes as Linux does after a failed writeback: reads still see them,
    /// but they never reach the disk, and later syncs succeed without them.
    FailOnce(ErrorKind),
    /// Like `FailOnce`, and every later operation that changes the disk fails
    /// the same way: a disk that has filled up or gone read-only.
    FailFrom(ErrorKind),
    /// The process stops during the operation: a write or append stores the
    /// first half of its bytes, anything else does not happen, and every
    /// later call, reads included, fails. Take
    /// [`crashed_state`](SimFs::crashed_state) to restart.
    Crash,
}

/// How much of what was not synced survives a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Only what was synced.
    Synced,
    /// Everything, as if the system had written it all back just in time.
    All,
    /// This percentage of what was not synced, the oldest first: of each
    /// file, the first of its dirty bytes in file order; of each directory,
    /// its first unsynced changes in the order they were made.
    Percent(u8),
}

/// What a crash leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashState {
    /// Only the process died. The system still holds everything written,
    /// and what was not synced is still not durable.
    ProcessExit,
    /// The power was cut. Whatever survives is durable afterwards.
    PowerLoss {
        /// What survives of unsynced directory changes.
        entries: Kept,
        /// What survives of unsynced file content.
        contents: Kept,
    },
}

impl CrashState {
    /// A power cut that keeps only what was synced.
    pub const POWER_LOSS: Self = Self::PowerLoss {
        entries: Kept::Synced,
        contents: Kept::Synced,
    };

    /// A set of crash states varied enough to catch a missing sync of either
    /// a file or a directory, a reliance on one reaching the disk before the
    /// other, and torn writes.
    pub const VARIETY: [Self; 6] = [
        Self::ProcessExit,
        Self::POWER_LOSS,
        Self::PowerLoss {
            entries: Kept::All,
            contents: Kept::All,
        },
        // Names journaled, data not: catches a rename before the file's sync.
        Self::PowerLoss {
            entries: Kept::All,
            contents: Kept::Synced,
        },
        Self::PowerLoss {
            entries: Kept::Synced,
            contents: Kept::All,
        },
        Self::PowerLoss {
            entries: Kept::Percent(50),
            contents: Kept::Percent(50),
        },
    ];
}

/// An in-memory [`Fs`] with crash semantics and fault injection. Clones share
/// the same file system.
#[derive(Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

#[derive(Clone)]
struct State {
    /// Indexed by inode number; 0 is the root directory.
    nodes: Vec<Node>,
    ops: u64,
    faults: HashMap<u64, Fault>,
    failing: Option<ErrorKind>,
    crashed: bool,
}

#[derive(Clone)]
enum Node {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Clone, Default)]
struct FileNode {
    /// What reads see.
    data: Vec<u8>,
    /// What a power cut leaves.
    disk: Vec<u8>,
    /// The bytes of `data` that the next writeback sends to the disk, in
    /// file order. A failed sync empties it without writing anything.
    dirty: Vec<Range<usize>>,
    /// Truncated since the last writeback, so the disk's old bytes go.
    truncated: bool,
}

impl FileNode {
    /// The disk's content once the first `percent` of the dirty bytes (and,
    /// at 100, the file's length) have been written back.
    fn written_back(&self, percent: u8) -> Vec<u8> {
        let total = self.dirty.iter().map(ExactSizeIterator::len).sum();
        let mut left = percent_of(total, percent);
        let mut disk = if self.truncated {
            Vec::new()
        } else {
            self.disk.clone()
        };
        for range in &self.dirty {
            let take = left.min(range.len());
            if take == 0 {
                break;
            }
            let end = range.start + take;
            if disk.len() < end {
                disk.resize(end, 0);
            }
            disk[range.start..end].copy_from_slice(&self.data[range.start..end]);
            left -= take;
        }
        if percent >= 100 {
            // Bytes whose writeback failed read back as zeros past the old end.
            disk.resize(self.data.len(), 0);
        }
        disk
    }

    fn write(&mut self, at: usize, bytes: &[u8]) {
        self.data.truncate(at);
        self.data.extend_from_slice(bytes);
        let range = at..at + bytes.len();
        if !range.is_empty() {
            self.dirty.push(range);
        }
    }
}

#[derive(Clone, Default)]
struct DirNode {
    entries: BTreeMap<OsString, usize>,
    synced: BTreeMap<OsString, usize>,
    /// Unsynced changes in order; each one (a rename within the directory is
    /// one) is applied whole or not at all.
    pending: Vec<Vec<(OsString, Option<usize>)>>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            nodes: vec![Node::Dir(DirNode::default())],
            ops: 0,
            faults: HashMap::new(),
            failing: None,
            crashed: false,
        }
    }
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("SimFs")
            .field("write_ops", &s.ops)
            .field("crashed", &s.crashed)
            .finish_non_exhaustive()
    }
}

/// What a counted operation should do.
enum Outcome {
    Normal,
    Fail(io::Error),
}

impl SimFs {
    /// An empty file system holding only the root directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many operations that change the disk have been called so far.
    pub fn write_ops(&self) -> u64 {
        self.lock().ops
    }

    /// Plants `fault` at operation number `op` (counted from 0, see
    /// [`write_ops`](Self::write_ops)).
    pub fn inject(&self, op: u64, fault: Fault) {
        self.lock().faults.insert(op, fault);
    }

    /// Whether a planted [`Fault::Crash`] has happened.
    pub fn has_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// The file system a restarted process finds after a crash now (planted
    /// or not). It counts operations from 0 and has no faults planted.
    pub fn crashed_state(&self, crash: CrashState) -> SimFs {
        let old = self.lock();
        let state = match crash {
            CrashState::ProcessExit => State {
                nodes: old.nodes.clone(),
                ..State::default()
            },
            CrashState::PowerLoss { entries, contents } => {
                let mut new = State {
                    nodes: Vec::new(),
                    ..State::default()
                };
                let mut map = HashMap::new();
                survive(&old.nodes, 0, entries, contents, &mut new.nodes, &mut map);
                new
            }
        };
        SimFs {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Every file as reads see it now, by path, for checks in tests.
    pub fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let s = self.lock();
        let mut out = Vec::new();
        let mut stack = vec![(PathBuf::from("/"), 0)];
        while let Some((path, id)) = stack.pop() {
            match &s.nodes[id] {
                Node::File(f) => out.push((path, f.data.clone())),
                Node::Dir(d) => {
                    for (name, child) in &d.entries {
                        stack.push((path.join(name), *child));
                    }
                }
            }
        }
        out.sort();
        out
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Copies what survives of node `id` (and below) into `out`; `map` keeps a
/// node reached by two names a single node.
fn survive(
    old: &[Node],
    id: usize,
    entries: Kept,
    contents: Kept,
    out: &mut Vec<Node>,
    map: &mut HashMap<usize, usize>,
) -> usize {
    if let Some(&new) = map.get(&id) {
        return new;
    }
    let new = out.len();
    map.insert(id, new);
    out.push(Node::Dir(DirNode::default()));
    out[new] = match &old[id] {
        Node::File(f) => {
            let data = match contents {
                Kept::Synced => f.disk.clone(),
                Kept::All => f.written_back(100),
                Kept::Percent(p) => f.written_back(p),
            };
            Node::File(FileNode {
                disk: data.clone(),
                data,
                ..FileNode::default()
            })
        }
        Node::Dir(d) => {
            let names = match entries {
                Kept::Synced => d.synced.clone(),
                Kept::All => d.entries.clone(),
                Kept::Percent(p) => {
                    let mut names = d.synced.clone();
                    for change in &d.pending[..percent_of(d.pending.len(), p)] {
                        apply(&mut names, change);
                    }
                    names
                }
            };
            let mut dir = DirNode::default();
            for (name, child) in names {
                let child = survive(old, child, entries, contents, out, map);
                dir.entries.insert(name, child);
            }
            dir.synced = dir.entries.clone();
            Node::Dir(dir)
        }
    };
    new
}

fn percent_of(len: usize, percent: u8) -> usize {
    len * usize::from(percent.min(100)) / 100
}

fn apply(names: &mut BTreeMap<OsString, usize>, change: &[(OsString, Option<usize>)]) {
    for (name, target) in change {
        match target {
            Some(id) => names.insert(name.clone(), *id),
            None => names.remove(name),
        };
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        ErrorKind::NotFound,
        format!("{} does not exist", path.display()),
    )
}

/// The names along `path`; `..` is not supported.
fn components(path: &Path) -> io::Result<Vec<OsString>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push(name.to_os_string()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(io::Error::new(
                    ErrorKind::InvalidInput,
                    format!("{} contains `..`", path.display()),
                ));
            }
        }
    }
    Ok(out)
}

impl State {
    /// Counts an operation that changes the disk and says whether it fails.
    fn begin(&mut self, what: &str, path: &Path) -> io::Result<Outcome> {
        self.check_running()?;
        let op = self.ops;
        self.ops += 1;
        let failure = |kind: ErrorKind| {
            io::Error::new(
                kind,
                format!(
                    "{kind} (simulated, {what} {}, operation {op})",
                    path.display()
                ),
            )
        };
        if let Some(kind) = self.failing {
            return Ok(Outcome::Fail(failure(kind)));
        }
        Ok(match self.faults.remove(&op) {
            None => Outcome::Normal,
            Some(Fault::FailOnce(kind)) => Outcome::Fail(failure(kind)),
            Some(Fault::FailFrom(kind)) => {
                self.failing = Some(kind);
                Outcome::Fail(failure(kind))
            }
            Some(Fault::Crash) => {
                self.crashed = true;
                Outcome::Fail(stopped())
            }
        })
    }

    fn check_running(&self) -> io::Result<()> {
        if self.crashed {
            return Err(stopped());
        }
        Ok(())
    }

    fn lookup(&self, path: &Path) -> io::Result<Option<usize>> {
        let mut id = 0;
        for name in components(path)? {
            let Node::Dir(d) = &self.nodes[id] else {
                return Ok(None);
            };
            match d.entries.get(&name) {
                Some(&child) => id = child,
                None => return Ok(None),
            }
        }
        Ok(Some(id))
    }

    fn file(&mut self, path: &Path) -> io::Result<&mut FileNode> {
        let id = self.lookup(path)?.ok_or_else(|| not_found(path))?;
        match &mut self.nodes[id] {
            Node::File(f) => Ok(f),
            Node::Dir(_) => Err(io::Error::new(
                ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            )),
        }
    }

    fn dir(&mut self, path: &Path) -> io::Result<&mut DirNode> {
        let id = self.lookup(path)?.ok_or_else(|| not_found(path))?;
        self.dir_at(id, path)
    }

    fn dir_at(&mut self, id: usize, path: &Path) -> io::Result<&mut DirNode> {
        match &mut self.nodes[id] {
            Node::Dir(d) => Ok(d),
            Node::File(_) => Err(io::Error::new(
                ErrorKind::NotADirectory,
                format!("{} is not a directory", path.display()),
            )),
        }
    }

    /// The directory that holds `path`'s name, and the name.
    fn parent(&self, path: &Path) -> io::Result<(usize, OsString)> {
        let mut names = components(path)?;
        let name = names
            .pop()
            .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "the root has no parent"))?;
        let parent: PathBuf = names.iter().collect();
        let id = self.lookup(&parent)?.ok_or_else(|| not_found(&parent))?;
        Ok((id, name))
    }

    fn link(&mut self, dir: usize, change: Vec<(OsString, Option<usize>)>) -> io::Result<()> {
        let d = self.dir_at(dir, Path::new("(parent)"))?;
        apply(&mut d.entries, &change);
        d.pending.push(change);
        Ok(())
    }
}

fn stopped() -> io::Error {
    io::Error::other("the process has stopped (simulated crash)")
}

impl Fs for SimFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut s = self.lock();
        s.check_running()?;
        Ok(s.file(path)?.data.clone())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let s = self.lock();
        s.check_running()?;
        Ok(s.lookup(path)?.is_some())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut s = self.lock();
        s.check_running()?;
        let d = s.dir(path)?;
        Ok(d.entries
            .keys()
            .map(|n| n.to_string_lossy().into_owned())
            .collect())
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let mut s = self.lock();
        s.check_running()?;
        Ok(s.file(path)?.data.len() as u64)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if let Outcome::Fail(e) = s.begin("create_dir_all", path)? {
            return Err(e);
        }
        let mut id = 0;
        for name in components(path)? {
            let existing = s.dir_at(id, path)?.entries.get(&name).copied();
            id = match existing {
                Some(child) => child,
                None => {
                    let child = s.nodes.len();
                    s.nodes.push(Node::Dir(DirNode::default()));
                    s.link(id, vec![(name, Some(child))])?;
                    child
                }
            };
        }
        s.dir_at(id, path).map(|_| ())
    }

    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.lock();
        let outcome = s.begin("write_new", path)?;
        let (dir, name) = s.parent(path)?;
        let id = match s.dir_at(dir, path)?.entries.get(&name).copied() {
            Some(id) => id,
            None => {
                let id = s.nodes.len();
                s.nodes.push(Node::File(FileNode::default()));
                s.link(dir, vec![(name, Some(id))])?;
                id
            }
        };
        let Node::File(f) = &mut s.nodes[id] else {
            return Err(io::Error::new(
                ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            ));
        };
        f.truncated = true;
        f.dirty.clear();
        match outcome {
            Outcome::Normal => {
                f.write(0, bytes);
                Ok(())
            }
            Outcome::Fail(e) => {
                f.write(0, &bytes[..bytes.len() / 2]);
                Err(e)
            }
        }
    }

    fn append(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.lock();
        let outcome = s.begin("append", path)?;
        let f = s.file(path)?;
        let end = f.data.len();
        match outcome {
            Outcome::Normal => {
                f.write(end, bytes);
                Ok(())
            }
            Outcome::Fail(e) => {
                f.write(end, &bytes[..bytes.len() / 2]);
                Err(e)
            }
        }
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let outcome = s.begin("sync_file", path)?;
        let crashed = s.crashed;
        let f = s.file(path)?;
        match outcome {
            Outcome::Normal => {
                f.disk = f.written_back(100);
                f.dirty.clear();
                f.truncated = false;
                Ok(())
            }
            Outcome::Fail(e) => {
                if !crashed {
                    // The kernel marks the pages clean: they stay readable
                    // but are never written.
                    f.dirty.clear();
                }
                Err(e)
            }
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if let Outcome::Fail(e) = s.begin("rename", from)? {
            return Err(e);
        }
        let (from_dir, from_name) = s.parent(from)?;
        let (to_dir, to_name) = s.parent(to)?;
        let id = s.dir_at(from_dir, from)?.entries.get(&from_name).copied();
        let id = id.ok_or_else(|| not_found(from))?;
        let target = s.dir_at(to_dir, to)?.entries.get(&to_name).copied();
        if let Some(target) = target
            && target != id
            && matches!(s.nodes[target], Node::Dir(_))
        {
            return Err(io::Error::new(
                ErrorKind::DirectoryNotEmpty,
                format!("{} is a directory", to.display()),
            ));
        }
        if from_dir == to_dir {
            s.link(from_dir, vec![(from_name, None), (to_name, Some(id))])
        } else {
            // Two directories: each records its half, and a crash may keep
            // either half without the other unless both are synced.
            s.link(from_dir, vec![(from_name, None)])?;
            s.link(to_dir, vec![(to_name, Some(id))])
        }
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if let Outcome::Fail(e) = s.begin("remove_file", path)? {
            return Err(e);
        }
        let (dir, name) = s.parent(path)?;
        let id = s.dir_at(dir, path)?.entries.get(&name).copied();
        let id = id.ok_or_else(|| not_found(path))?;
        if matches!(s.nodes[id], Node::Dir(_)) {
            return Err(io::Error::new(
                ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            ));
        }
        // The node stays: the synced entries may still name it, and a power
        // cut before the directory's sync brings the file back whole.
        s.link(dir, vec![(name, None)])
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if let Outcome::Fail(e) = s.begin("sync_dir", path)? {
            return Err(e);
        }
        let d = s.dir(path)?;
        d.synced = d.entries.clone();
        d.pending.clear();
        Ok(())
    }
}
