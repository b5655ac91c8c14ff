//! Where a steward keeps what it holds: a flat namespace of keys, each
//! holding bytes that are written whole and replaced whole. The steward's
//! own home on disk by default ([`FsBlobs`]); S3-compatible object storage
//! for a steward that keeps many circles, so several steward processes can
//! share one bucket ([`S3Blobs`]).
//!
//! Keys are `/`-separated segments of `[a-z0-9._-]`, none empty, none
//! starting with `.`, at most [`MAX_KEY_LEN`] bytes in all; an
//! implementation refuses any other key ([`check_key`]). A key may be both a
//! blob and the prefix of others (`a` and `a/b`). A blob holds at most
//! [`MAX_BLOB_LEN`] bytes: larger writes are refused, and so is reading a
//! larger object someone else put there, rather than allocating it.

mod fs;
mod s3;

pub use self::fs::FsBlobs;
pub use self::s3::S3Blobs;

/// The longest key, in bytes.
pub const MAX_KEY_LEN: usize = 512;

/// The most bytes one blob may hold (64 MiB).
pub const MAX_BLOB_LEN: u64 = 64 << 20;

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
    /// Whether other processes may write here too (shared object
    /// storage), so what this one indexed may be behind.
    fn shared(&self) -> bool {
        false
    }
}

/// Checks that `key` is one the namespace allows (see the [module](self)).
pub fn check_key(key: &str) -> Result<(), BlobError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.split('/').all(is_segment) {
        return Err(BlobError::BadKey(key.to_owned()));
    }
    Ok(())
}

/// Checks a prefix for [`Blobs::list`]: a valid key, or empty for the whole
/// namespace.
fn check_prefix(prefix: &str) -> Result<(), BlobError> {
    if prefix.is_empty() {
        Ok(())
    } else {
        check_key(prefix)
    }
}

/// Whether `name` is one segment of a key.
fn is_segment(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
}

/// Refuses a blob larger than [`MAX_BLOB_LEN`].
fn check_len(key: &str, len: u64) -> Result<(), BlobError> {
    if len > MAX_BLOB_LEN {
        return Err(too_large(key, len));
    }
    Ok(())
}

fn too_large(key: &str, len: u64) -> BlobError {
    BlobError::Io(format!(
        "{key}: {len} bytes, more than the {MAX_BLOB_LEN} a blob may hold"
    ))
}

/// A boxed or shared store is the store it holds.
macro_rules! forward {
    ($($t:ty),*) => {$(
        impl<T: Blobs + ?Sized> Blobs for $t {
            fn create(&self, key: &str, bytes: &[u8]) -> Result<bool, BlobError> {
                (**self).create(key, bytes)
            }
            fn put(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError> {
                (**self).put(key, bytes)
            }
            fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
                (**self).get(key)
            }
            fn list(
                &self,
                prefix: &str,
                after: Option<&str>,
                limit: usize,
            ) -> Result<Vec<(String, u64)>, BlobError> {
                (**self).list(prefix, after, limit)
            }
            fn delete(&self, key: &str) -> Result<(), BlobError> {
                (**self).delete(key)
            }
            fn shared(&self) -> bool {
                (**self).shared()
            }
        }
    )*};
}
forward!(Box<T>, std::sync::Arc<T>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        let longest = format!("{}bb", "a/".repeat(255));
        assert_eq!(longest.len(), MAX_KEY_LEN);
        for good in ["a", "a/b", "0.1_x-y/z", "a..b", longest.as_str()] {
            assert!(check_key(good).is_ok(), "{good:?}");
        }
        let long = format!("{}b", "a/".repeat(256));
        assert_eq!(long.len(), 513);
        for bad in [
            "",
            "/",
            "/a",
            "a/",
            "a//b",
            ".a",
            "a/.b",
            "a/..",
            "..",
            "A",
            "a b",
            "é",
            "a\\b",
            "a/b\0",
            long.as_str(),
        ] {
            assert!(
                matches!(check_key(bad), Err(BlobError::BadKey(k)) if k == bad),
                "{bad:?}"
            );
        }
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("/").is_err());
    }
}
