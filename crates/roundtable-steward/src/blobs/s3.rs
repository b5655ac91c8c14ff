//! [`S3Blobs`]: blobs as objects in an S3-compatible bucket, under a key
//! prefix, so several steward processes can share one bucket.

use std::fmt;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use tokio::runtime::Runtime;

use super::{BlobError, Blobs, MAX_BLOB_LEN, check_key, check_len, check_prefix, too_large};

/// The longest any one call may take, retries included, before it fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Blobs as objects in an S3-compatible bucket, under a key prefix, so
/// several steward processes can share one bucket.
///
/// The key `lockers/ab/0001` under `s3://bucket/steward` is the object
/// `steward/lockers/ab/0001`. Objects under the prefix whose names are not
/// keys are left alone and never listed.
///
/// # Blocking
///
/// [`Blobs`] is synchronous and the object store is async. An `S3Blobs`
/// owns a small tokio runtime of its own (one worker thread) and runs each
/// call there, waiting for it on the calling thread. It never enters the
/// caller's runtime, so it cannot panic with "Cannot start a runtime from
/// within a runtime" nor deadlock on a runtime whose threads are all
/// waiting; but each call blocks its thread until the store answers, so
/// async code must make its calls from
/// [`spawn_blocking`](tokio::task::spawn_blocking). Dropping an `S3Blobs`
/// anywhere, async code included, is fine: its runtime shuts down in the
/// background.
///
/// # Bounds
///
/// Every call gives up after five minutes, the object store's own retries
/// included. A get of an object larger than
/// [`MAX_BLOB_LEN`](super::MAX_BLOB_LEN) fails before reading its body.
/// [`create`](Blobs::create) is a conditional write, so two processes never
/// both create one key; when S3 answers a racing conditional write with
/// 409 Conflict, the create reports the key as taken.
pub struct S3Blobs {
    store: Arc<AmazonS3>,
    /// The prefix every key's object has, without a trailing `/`; empty for
    /// the top of the bucket.
    root: String,
    url: String,
    /// Only `None` while being dropped.
    runtime: Option<Runtime>,
}

impl fmt::Debug for S3Blobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Blobs")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl S3Blobs {
    /// Blobs under `url`, `s3://bucket` or `s3://bucket/prefix`, configured
    /// by the usual environment: `AWS_ENDPOINT` (or `AWS_ENDPOINT_URL`) for
    /// a store other than Amazon's, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP` for a plain
    /// HTTP endpoint, and the other `AWS_*` settings of
    /// [`AmazonS3Builder::from_env`].
    ///
    /// The store must support conditional writes (`If-None-Match: *`), as
    /// Amazon S3, MinIO and R2 do: [`create`](Blobs::create) relies on them.
    pub fn from_url(url: &str) -> Result<Self, BlobError> {
        Self::from_url_with_options(url, std::iter::empty::<(&str, &str)>())
    }

    /// Like [`from_url`](Self::from_url), with `options` taking precedence
    /// over the environment. Each option is named like its environment
    /// variable, in lower case, with or without the `aws_` prefix:
    /// `("endpoint", "http://127.0.0.1:9000")`, `("allow_http", "true")`,
    /// `("access_key_id", ..)`.
    pub fn from_url_with_options<I, K, V>(url: &str, options: I) -> Result<Self, BlobError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let root = root_of(url)?;
        let mut builder = AmazonS3Builder::from_env().with_url(url);
        for (key, value) in options {
            let key = key.as_ref();
            let config: AmazonS3ConfigKey = key
                .to_ascii_lowercase()
                .parse()
                .map_err(|e| BlobError::Io(format!("unknown S3 option {key:?}: {e}")))?;
            builder = builder.with_config(config, value);
        }
        // `create` is only right with conditional writes.
        builder = builder.with_conditional_put(S3ConditionalPut::ETagMatch);
        let store = builder
            .build()
            .map_err(|e| BlobError::Io(format!("cannot use {url}: {e}")))?;
        // Made last: dropped on an error path inside async code, a runtime
        // would panic.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("steward-s3")
            .enable_all()
            .build()
            .map_err(|e| BlobError::Io(format!("cannot start the S3 client's runtime: {e}")))?;
        Ok(Self {
            store: Arc::new(store),
            root,
            url: url.to_owned(),
            runtime: Some(runtime),
        })
    }

    /// The URL the blobs are under.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object that holds `key`, a valid key or, for listing, empty.
    fn path(&self, key: &str) -> Result<Path, BlobError> {
        let full = match (self.root.is_empty(), key.is_empty()) {
            (true, _) => key.to_owned(),
            (false, true) => self.root.clone(),
            (false, false) => format!("{}/{key}", self.root),
        };
        Path::parse(&full).map_err(|e| BlobError::Io(format!("not an object name {full:?}: {e}")))
    }

    /// Runs `call` on this value's runtime and waits for its outcome. The
    /// calling thread only waits on a channel, so it may be any thread.
    fn run<T, C>(&self, what: String, call: C) -> Result<T, BlobError>
    where
        T: Send + 'static,
        C: Future<Output = Result<T, object_store::Error>> + Send + 'static,
    {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| BlobError::Io("the S3 client has shut down".to_owned()))?;
        let (tx, rx) = mpsc::sync_channel(1);
        runtime.spawn(async move {
            let outcome = match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(object_store::Error::Generic {
                    store: "S3",
                    source: format!("no answer in {CALL_TIMEOUT:?}").into(),
                }),
            };
            // The caller may have given up waiting; then nobody listens.
            let _ = tx.send(outcome);
        });
        // The call's own timeout fires first; this one only guards against
        // a runtime that stopped running it.
        match rx.recv_timeout(CALL_TIMEOUT + Duration::from_secs(30)) {
            Ok(outcome) => outcome.map_err(|e| BlobError::Io(format!("{what}: {e}"))),
            Err(_) => Err(BlobError::Io(format!(
                "{what}: the S3 client stopped without an answer"
            ))),
        }
    }
}

impl Drop for S3Blobs {
    fn drop(&mut self) {
        // Never blocks, so it is fine inside async code too.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What a get finds.
enum Found {
    Missing,
    TooLarge(u64),
    Bytes(Vec<u8>),
}

impl Blobs for S3Blobs {
    fn create(&self, key: &str, bytes: &[u8]) -> Result<bool, BlobError> {
        check_key(key)?;
        check_len(key, bytes.len() as u64)?;
        let path = self.path(key)?;
        let store = Arc::clone(&self.store);
        let payload = PutPayload::from(bytes.to_vec());
        self.run(format!("create {key}"), async move {
            match store.put_opts(&path, payload, PutMode::Create.into()).await {
                Ok(_) => Ok(true),
                // Also what a 409 from a racing conditional write becomes:
                // never a second `true`.
                Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError> {
        check_key(key)?;
        check_len(key, bytes.len() as u64)?;
        let path = self.path(key)?;
        let store = Arc::clone(&self.store);
        let payload = PutPayload::from(bytes.to_vec());
        self.run(format!("put {key}"), async move {
            store.put(&path, payload).await.map(|_| ())
        })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
        check_key(key)?;
        let path = self.path(key)?;
        let store = Arc::clone(&self.store);
        let found = self.run(format!("get {key}"), async move {
            let result = match store.get(&path).await {
                Ok(result) => result,
                Err(object_store::Error::NotFound { .. }) => return Ok(Found::Missing),
                Err(e) => return Err(e),
            };
            if result.meta.size > MAX_BLOB_LEN {
                return Ok(Found::TooLarge(result.meta.size));
            }
            let capacity = usize::try_from(result.meta.size).unwrap_or(0);
            let mut bytes = Vec::with_capacity(capacity);
            let mut body = result.into_stream();
            while let Some(chunk) = body.next().await {
                bytes.extend_from_slice(&chunk?);
                // A body longer than the object's announced size.
                if bytes.len() as u64 > MAX_BLOB_LEN {
                    return Ok(Found::TooLarge(bytes.len() as u64));
                }
            }
            Ok(Found::Bytes(bytes))
        })?;
        match found {
            Found::Missing => Ok(None),
            Found::TooLarge(len) => Err(too_large(key, len)),
            Found::Bytes(bytes) => Ok(Some(bytes)),
        }
    }

    fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, BlobError> {
        check_prefix(prefix)?;
        let offset = match after {
            Some(after) => {
                check_key(after)?;
                Some(self.path(after)?)
            }
            None => None,
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let dir = self.path(prefix)?;
        let store = Arc::clone(&self.store);
        let root = self.root.clone();
        self.run(format!("list {prefix:?}"), async move {
            let mut listing = match &offset {
                Some(offset) => store.list_with_offset(Some(&dir), offset),
                None => store.list(Some(&dir)),
            };
            let mut keys = Vec::new();
            // Pages are fetched as they are needed: stopping early saves
            // the rest.
            while let Some(meta) = listing.next().await {
                let meta = meta?;
                // Past `offset` already by the store's promise, but checked
                // anyway: a wrong order here would make paging lose keys.
                if offset.as_ref().is_some_and(|o| meta.location <= *o) {
                    continue;
                }
                // Objects under the prefix that are not keys are not listed.
                if let Some(key) = key_of(&root, &meta.location) {
                    keys.push((key.to_owned(), meta.size));
                    if keys.len() >= limit {
                        break;
                    }
                }
            }
            Ok(keys)
        })
    }

    fn delete(&self, key: &str) -> Result<(), BlobError> {
        check_key(key)?;
        let path = self.path(key)?;
        let store = Arc::clone(&self.store);
        self.run(format!("delete {key}"), async move {
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    /// Several steward processes may share a bucket.
    fn shared(&self) -> bool {
        true
    }
}

/// The key that `object` holds under `root`, if it is one.
fn key_of<'a>(root: &str, object: &'a Path) -> Option<&'a str> {
    let name = object.as_ref();
    let key = if root.is_empty() {
        name
    } else {
        name.strip_prefix(root)?.strip_prefix('/')?
    };
    check_key(key).ok().map(|()| key)
}

/// The key prefix in `url`: the path of `s3://bucket/path`, without
/// slashes at either end.
fn root_of(url: &str) -> Result<String, BlobError> {
    let bad = |why: &str| BlobError::Io(format!("not an s3://bucket/prefix URL: {url:?}: {why}"));
    let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if parsed.scheme() != "s3" {
        return Err(bad("the scheme is not s3"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("no bucket"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("a query or fragment"));
    }
    let root = parsed.path().trim_matches('/').to_owned();
    if !root.is_empty() {
        let path = Path::parse(&root).map_err(|e| bad(&e.to_string()))?;
        if path.as_ref() != root {
            return Err(bad("the prefix is not a plain object name"));
        }
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_prefix_comes_from_the_url() {
        assert_eq!(root_of("s3://bucket").unwrap(), "");
        assert_eq!(root_of("s3://bucket/").unwrap(), "");
        assert_eq!(root_of("s3://bucket/steward").unwrap(), "steward");
        assert_eq!(root_of("s3://bucket/a/b/").unwrap(), "a/b");
        for bad in [
            "bucket/prefix",
            "https://bucket/prefix",
            "s3:///prefix",
            "s3://bucket/a//b",
            "s3://bucket/a?x=1",
        ] {
            assert!(root_of(bad).is_err(), "{bad}");
        }
    }

    fn offline(url: &str) -> S3Blobs {
        let options = [
            ("endpoint", "http://127.0.0.1:9"),
            ("allow_http", "true"),
            ("access_key_id", "k"),
            ("secret_access_key", "s"),
            ("region", "us-east-1"),
        ];
        S3Blobs::from_url_with_options(url, options).unwrap()
    }

    #[test]
    fn keys_map_to_objects_under_the_prefix() {
        let blobs = offline("s3://bucket/steward/one");
        assert_eq!(
            blobs.path("lockers/ab").unwrap().as_ref(),
            "steward/one/lockers/ab"
        );
        assert_eq!(blobs.path("").unwrap().as_ref(), "steward/one");
        let object = Path::parse("steward/one/lockers/ab").unwrap();
        assert_eq!(key_of(&blobs.root, &object), Some("lockers/ab"));
        for stranger in [
            "steward/one",
            "steward/oneself/x",
            "steward/one/UPPER",
            "other/x",
        ] {
            assert_eq!(key_of(&blobs.root, &Path::parse(stranger).unwrap()), None);
        }
        let top = offline("s3://bucket");
        assert_eq!(top.path("a/b").unwrap().as_ref(), "a/b");
        assert_eq!(key_of(&top.root, &Path::parse("a/b").unwrap()), Some("a/b"));
    }

    #[test]
    fn bad_keys_and_options_are_refused_before_any_request() {
        let blobs = offline("s3://bucket/p");
        assert!(matches!(blobs.get("../x"), Err(BlobError::BadKey(_))));
        assert!(matches!(blobs.put("/x", b""), Err(BlobError::BadKey(_))));
        assert!(matches!(
            blobs.list("a", Some("B"), 1),
            Err(BlobError::BadKey(_))
        ));
        assert!(matches!(
            S3Blobs::from_url_with_options("s3://bucket", [("no_such_option", "1")]),
            Err(BlobError::Io(_))
        ));
    }
}
