//! Where a steward keeps what it holds: a flat namespace of keys, each
//! holding bytes that are written whole and replaced whole. The steward's
//! own home on disk by default ([`FsBlobs`]); S3-compatible object storage
//! for a steward that keeps many circles, so several steward processes can
//! share one bucket ([`S3Blobs`]).
//!
//! Keys are `/`-separated segments of `[a-z0-9._-]`, none empty, none
//! starting with `.`; an implementation refuses any other key.

/// What went wrong with the storage.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// A key the namespace does not allow.
    #[error("not a valid key: {0:?}")]
    BadKey(String),
    /// The storage failed (a disk error, the object store unreachable).
    #[error("storage: {0}")]
    Io(String),
}

/// A flat namespace of keys holding bytes. Every write is durable when it
/// returns; a crash leaves each key either as it was or as written, never
/// torn.
pub trait Blobs: Send + Sync {
    /// Stores `bytes` under `key` only if nothing is there yet: `true` if
    /// it stored them, `false` if the key was taken (by this process or,
    /// for shared object storage, another). Two racing creates of one key
    /// never both return `true`.
    fn create(&self, key: &str, bytes: &[u8]) -> Result<bool, BlobError>;
    /// Stores `bytes` under `key`, replacing what was there.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError>;
    /// What is under `key`, if anything.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BlobError>;
    /// The keys under `prefix` (a whole segment path, e.g. `"lockers/ab"`,
    /// listing `"lockers/ab/..."` at any depth) that sort after `after`
    /// (a full key, or none for from the start), in byte order, at most
    /// `limit`, each with its size in bytes.
    fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, BlobError>;
    /// Removes `key`; nothing happens if it is not there.
    fn delete(&self, key: &str) -> Result<(), BlobError>;
}
