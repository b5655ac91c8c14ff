//! `S3Blobs`, and two keepers sharing a bucket as two steward processes
//! do, against a real S3-compatible server: moto's, from PyPI,
//! installed into a virtual environment under the target directory the
//! first time and started by each test on a free loopback port.
//!
//! Without `python3 -m venv` or pip these tests say so and pass, unless the
//! `CI` environment variable is set: then they fail.

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod common;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use roundtable_core::CircleId;
use roundtable_core::keys::EpochKey;
use roundtable_core::steward::{LockerId, ShelfKey, ShelfKind};
use roundtable_core::wire::{StewardReply, StewardRequest};
use roundtable_steward::blobs::{BlobError, Blobs, MAX_BLOB_LEN, S3Blobs};
use roundtable_steward::{Keeper, Limits, Session};

use common::{behaves_as_blobs, racing_creates};

/// Moto honours `If-None-Match` on PUT since late 2024 (during 5.0); the
/// behaviour and race tests check that the installed one does.
const MOTO: &str = "moto[server]>=5.1,<6";

/// Runs moto's server on one thread: with threads its check of
/// `If-None-Match` and its write are two steps another request can come
/// between, which real S3 never allows.
const LAUNCHER: &str = "\
import moto.server as server
run_simple = server.run_simple
def one_thread(*args, **kwargs):
    kwargs['threaded'] = False
    return run_simple(*args, **kwargs)
server.run_simple = one_thread
server.main(['-H', '127.0.0.1', '-p', '0'])
";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Runs `command` with its output in files under `logs`, for at most
/// `timeout`.
fn run(mut command: Command, logs: &Path, timeout: Duration) -> Result<(), String> {
    let what = format!("{command:?}");
    let out = logs.with_extension("out");
    command
        .stdin(Stdio::null())
        .stdout(File::create(&out).map_err(|e| e.to_string())?)
        .stderr(File::create(&out).map_err(|e| e.to_string())?);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            if status.success() {
                return Ok(());
            }
            let output = fs::read_to_string(&out).unwrap_or_default();
            let tail: Vec<&str> = output.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!("{what} failed ({status}):\n{}", tail.join("\n")));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what} took more than {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The Python of a virtual environment with moto installed, made the first
/// time; `Err` when Python, venv or pip cannot be used here.
fn moto_python() -> Result<PathBuf, String> {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let venv = base.join("moto-venv");
    let python = venv.join("bin/python");
    let ready = venv.join("installed");
    fs::create_dir_all(&base).map_err(|e| e.to_string())?;
    // Tests and test processes that start at once make it once.
    let lock = File::create(base.join("moto-venv.lock")).map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| e.to_string())?;
    if ready.exists() {
        return Ok(python);
    }
    let _ = fs::remove_dir_all(&venv);
    let mut venv_cmd = Command::new("python3");
    venv_cmd.args(["-m", "venv"]).arg(&venv);
    run(venv_cmd, &base.join("venv"), Duration::from_secs(120))?;
    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        MOTO,
    ]);
    run(pip, &base.join("pip"), Duration::from_secs(900))?;
    fs::write(&ready, MOTO).map_err(|e| e.to_string())?;
    Ok(python)
}

/// A moto server on a free loopback port, killed when dropped, panic or not.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto with `bucket`, or says why the test is skipped.
    fn start(bucket: &str) -> Option<Self> {
        let python = match moto_python() {
            Ok(python) => python,
            Err(why) if !in_ci() => {
                println!("SKIPPED: cannot install moto with python3 -m venv and pip: {why}");
                eprintln!("SKIPPED: cannot install moto with python3 -m venv and pip: {why}");
                return None;
            }
            Err(why) => panic!("CI is set, so moto must be installable: {why}"),
        };
        let mut child = Command::new(python)
            .args(["-c", LAUNCHER])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start moto's server");
        let stderr = child.stderr.take().unwrap();
        let mut moto = Moto { child, port: 0 };
        // Read the log to its end, so the server never blocks on a full
        // pipe; the port comes from its first lines.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while moto.port == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("moto said no port in 60 s: {seen:#?}"));
            if let Some(at) = line.find("http://127.0.0.1:") {
                let digits: String = line[at + 17..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                moto.port = digits.parse().unwrap();
            }
            seen.push(line);
        }
        // The first request loads moto's services, which takes a while.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match moto.request("PUT", &format!("/{bucket}")) {
                Ok(200) => break,
                outcome if Instant::now() > deadline => {
                    panic!("moto did not make the bucket in 60 s: {outcome:?}")
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        Some(moto)
    }

    /// Sends an unsigned request with no body; the response's status.
    fn request(&self, method: &str, path: &str) -> std::io::Result<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut response = String::new();
        stream.take(64 * 1024).read_to_string(&mut response)?;
        let status = response
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.get(2..5))
            .and_then(|code| code.parse().ok());
        status.ok_or_else(|| std::io::Error::other(format!("not HTTP: {response:?}")))
    }

    fn options(&self) -> Vec<(&'static str, String)> {
        vec![
            ("endpoint", format!("http://127.0.0.1:{}", self.port)),
            ("allow_http", "true".to_owned()),
            ("access_key_id", "steward".to_owned()),
            ("secret_access_key", "steward".to_owned()),
            ("region", "us-east-1".to_owned()),
            ("timeout", "30s".to_owned()),
        ]
    }

    fn blobs(&self, url: &str) -> S3Blobs {
        S3Blobs::from_url_with_options(url, self.options()).unwrap()
    }
}

#[test]
fn behaves_as_blobs_against_a_real_s3_server() {
    let Some(moto) = Moto::start("steward") else {
        return;
    };
    let blobs = moto.blobs("s3://steward/home/one");
    behaves_as_blobs(&blobs);

    // Another prefix is another namespace; the whole bucket sees both.
    let other = moto.blobs("s3://steward/home/two");
    let bucket = moto.blobs("s3://steward");
    blobs.put("k", b"one").unwrap();
    other.put("k", b"two").unwrap();
    assert_eq!(blobs.get("k").unwrap().unwrap(), b"one");
    assert_eq!(
        bucket.list("home", None, 10).unwrap(),
        [("home/one/k".to_owned(), 3), ("home/two/k".to_owned(), 3)]
    );
    // An object under the prefix that is no key is not listed.
    bucket.put("home/one/z", b"z").unwrap();
    let raw = store(&moto, "steward");
    let stranger = ObjectPath::from("home/one/Not A Key");
    block_on(raw.put(&stranger, PutPayload::from_static(b"?"))).unwrap();
    assert_eq!(
        blobs.list("", None, 10).unwrap(),
        [("k".to_owned(), 3), ("z".to_owned(), 1)]
    );
}

#[test]
fn two_processes_racing_to_create_a_key_never_both_win() {
    let Some(moto) = Moto::start("race") else {
        return;
    };
    let first = moto.blobs("s3://race/steward");
    let second = moto.blobs("s3://race/steward");
    racing_creates(&[&first, &second], 30);
}

#[test]
fn calls_block_safely_from_any_thread() {
    let Some(moto) = Moto::start("threads") else {
        return;
    };
    let blobs = std::sync::Arc::new(moto.blobs("s3://threads"));

    // A plain thread.
    let b = std::sync::Arc::clone(&blobs);
    std::thread::spawn(move || b.put("plain", b"thread").unwrap())
        .join()
        .unwrap();

    // A blocking task of a multi-threaded runtime, as async code should.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let b = std::sync::Arc::clone(&blobs);
    let got = runtime.block_on(async move {
        let task = tokio::task::spawn_blocking(move || {
            b.put("blocking", b"task").unwrap();
            b.get("plain").unwrap()
        });
        tokio::time::timeout(Duration::from_secs(60), task).await
    });
    assert_eq!(got.unwrap().unwrap().unwrap(), b"thread");

    // Straight from async code on a current-thread runtime: it blocks that
    // thread, but neither panics nor deadlocks.
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = current.block_on(async { blobs.get("blocking").unwrap() });
    assert_eq!(got.unwrap(), b"task");

    // Made, used and dropped inside async code: its own runtime starts,
    // and shuts down in the background.
    current.block_on(async {
        let fresh = moto.blobs("s3://threads");
        assert_eq!(fresh.get("plain").unwrap().unwrap(), b"thread");
        drop(fresh);
    });
    drop(runtime);
}

#[test]
fn an_oversized_object_is_refused_not_read() {
    let Some(moto) = Moto::start("big") else {
        return;
    };
    let blobs = moto.blobs("s3://big/steward");
    let raw = store(&moto, "big");
    let len = usize::try_from(MAX_BLOB_LEN).unwrap() + 1;
    let path = ObjectPath::from("steward/huge");
    block_on(raw.put(&path, PutPayload::from(vec![7u8; len]))).unwrap();
    assert!(matches!(blobs.get("huge"), Err(BlobError::Io(_))));
    assert_eq!(
        blobs.list("", None, 10).unwrap(),
        [("huge".to_owned(), MAX_BLOB_LEN + 1)]
    );
    blobs.delete("huge").unwrap();
    assert_eq!(blobs.get("huge").unwrap(), None);
}

/// The bucket through object_store itself, to put what `S3Blobs` never
/// would.
fn store(moto: &Moto, bucket: &str) -> object_store::aws::AmazonS3 {
    let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
    for (key, value) in moto.options() {
        builder = builder.with_config(key.parse().unwrap(), value);
    }
    builder.build().unwrap()
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(120), future).await })
        .expect("object_store answered in time")
}

/// What a keeper answers `request` of `session`.
fn ask(k: &Keeper<S3Blobs>, session: &mut Session, request: StewardRequest) -> StewardReply {
    k.handle(session, request, 1_000).unwrap().reply
}

/// A session of `device` on the one shelf of the test's circle.
fn opened(k: &Keeper<S3Blobs>, device: [u8; 32]) -> Session {
    let (locker, shelf) = test_shelf();
    let mut s = Session::new(device);
    let request = StewardRequest::Open {
        locker: locker.0,
        shelf: shelf.shelf(),
        proof: shelf.proof(&k.id(), &locker, &device),
    };
    let reply = ask(k, &mut s, request);
    assert!(matches!(reply, StewardReply::Opened { .. }), "{reply:?}");
    s
}

fn test_shelf() -> (LockerId, ShelfKey) {
    let circle = CircleId::from_bytes([1; 16]);
    let key = EpochKey::new(0, [2; 32], [3; 32]);
    (LockerId([1; 16]), ShelfKey::of(circle, &key))
}

fn put_item(
    k: &Keeper<S3Blobs>,
    s: &mut Session,
    kind: ShelfKind,
    bytes: &[u8],
    below: Option<u64>,
) -> u64 {
    let request = StewardRequest::Put {
        kind: kind as u8,
        bytes: bytes.to_vec(),
        supersede_below: below,
    };
    match ask(k, s, request) {
        StewardReply::Stored { seq, .. } => seq,
        other => panic!("{other:?}"),
    }
}

fn fetched(k: &Keeper<S3Blobs>, s: &mut Session) -> Vec<(u64, Vec<u8>)> {
    assert!(k.fetch_size(s, 0, u32::MAX) > 0, "a fetch takes room first");
    let request = StewardRequest::Fetch {
        after: 0,
        max_bytes: u32::MAX,
    };
    match ask(k, s, request) {
        StewardReply::Items { items, .. } => items.into_iter().map(|i| (i.seq, i.bytes)).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn two_steward_processes_over_one_bucket_serve_what_either_keeps() {
    let Some(moto) = Moto::start("shared") else {
        return;
    };
    let (ana, ben, anyone) = ([10; 32], [11; 32], [12; 32]);
    let url = "s3://shared/steward";
    let a = Keeper::open(moto.blobs(url), [42; 32], Limits::default()).unwrap();
    let b = Keeper::open(moto.blobs(url), [42; 32], Limits::default()).unwrap();
    // Ben's device is on B before anything is kept; Ana's puts through A.
    let mut on_b = opened(&b, ben);
    let mut on_a = opened(&a, ana);
    assert_eq!(put_item(&a, &mut on_a, ShelfKind::Changes, b"one", None), 1);
    assert_eq!(put_item(&a, &mut on_a, ShelfKind::Changes, b"two", None), 2);
    // B tells Ben's keep-alive of them, and hands them over.
    let reply = ask(&b, &mut on_b, StewardRequest::Watch);
    assert!(
        matches!(reply, StewardReply::Opened { last: 2, .. }),
        "{reply:?}"
    );
    assert_eq!(
        fetched(&b, &mut on_b),
        [(1, b"one".to_vec()), (2, b"two".to_vec())]
    );
    // Ben's put through B takes the next number, not one A handed out.
    assert_eq!(
        put_item(&b, &mut on_b, ShelfKind::Changes, b"three", None),
        3
    );
    // A fold through A drops what it covers; B, opened afresh, serves
    // only the snapshot and counts only its bytes.
    assert_eq!(
        put_item(&a, &mut on_a, ShelfKind::Snapshot, b"all of it", Some(4)),
        4
    );
    let mut again = opened(&b, ben);
    assert_eq!(fetched(&b, &mut again), [(4, b"all of it".to_vec())]);
    assert_eq!(b.status().bytes, 9);

    // A welcome left through A is taken, and forgotten, through B.
    let token = [7; 32];
    let slot = roundtable_core::steward::slot_of_token(&token);
    let leave = StewardRequest::Leave {
        slot,
        bytes: b"sealed welcome".to_vec(),
        expires_at: i64::MAX,
    };
    assert!(matches!(ask(&a, &mut on_a, leave), StewardReply::Left));
    let mut stranger = Session::new(anyone);
    assert_eq!(b.welcome_size(&slot), 14);
    let reply = ask(&b, &mut stranger, StewardRequest::Take { slot });
    assert!(
        matches!(&reply, StewardReply::Welcome { bytes } if bytes == b"sealed welcome"),
        "{reply:?}"
    );
    let reply = ask(&b, &mut stranger, StewardRequest::Forget { token });
    assert!(matches!(reply, StewardReply::Left), "{reply:?}");
    // Gone for A too.
    let reply = ask(&a, &mut stranger, StewardRequest::Take { slot });
    assert!(matches!(reply, StewardReply::Refused { .. }), "{reply:?}");
}
