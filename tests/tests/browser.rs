//! The local web app in a real browser: `node --test` runs every
//! `tests/web/*.test.mjs` against the binary built for this run, driving
//! Debian's chromium through playwright-core (helpers in
//! `tests/web/harness.mjs`; `tests/web/smoke.test.mjs` checks the harness
//! itself).
//!
//! They need chromium (`apt-get install chromium`, or its path in env
//! `CHROMIUM`), Node.js 20.14 or newer, and `npm ci --prefix tests/web`.
//! Without them the test says so on stderr and passes, unless env `CI` is
//! set: then it fails, naming what to install.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long all the browser tests together may take.
const LIMIT: Duration = Duration::from_secs(10 * 60);

/// How long one `test()` may take before node cancels it.
const TEST_TIMEOUT_MS: u32 = 5 * 60 * 1000;

#[test]
fn browser_end_to_end() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_path_buf();
    let web = root.join("tests").join("web");

    let missing = missing_prerequisites(&web);
    if !missing.is_empty() {
        let what = missing.join("; ");
        assert!(
            std::env::var_os("CI").is_none(),
            "the browser tests cannot run, missing: {what}. Install with \
             `apt-get install chromium` and `npm ci --prefix tests/web` (Node.js 20.14 or newer)"
        );
        // Straight to stderr, past the test harness's capture: a skip must show.
        let _ = writeln!(
            std::io::stderr(),
            "note: browser tests skipped (missing: {what}); to run them: \
             apt-get install chromium && npm ci --prefix tests/web"
        );
        return;
    }

    let files = test_files(&root, &web);
    assert!(!files.is_empty(), "no tests/web/*.test.mjs to run");
    let bin = roundtable_tests::roundtable_bin();

    let mut cmd = Command::new("node");
    cmd.current_dir(&root)
        .arg("--test")
        .arg("--test-concurrency=1")
        .arg("--test-force-exit")
        .arg("--test-reporter=spec")
        .arg(format!("--test-timeout={TEST_TIMEOUT_MS}"))
        .args(&files)
        .env("ROUNDTABLE_BIN", &bin)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!(
        "node --test --test-concurrency=1 {}",
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut child = cmd.spawn().expect("node starts");
    let out = Captured::start(child.stdout.take().expect("node's stdout is piped"));
    let err = Captured::start(child.stderr.take().expect("node's stderr is piped"));

    let finished = wait_bounded(&mut child, LIMIT);
    let status = match finished {
        Some(status) => status,
        None => stop_tree(&mut child),
    };
    let stdout = out.finish();
    let stderr = err.finish();
    println!("$ {shown}\n{stdout}");
    if !stderr.trim().is_empty() {
        println!("stderr:\n{stderr}");
    }
    assert!(
        finished.is_some(),
        "the browser tests did not finish within {} minutes; stopped them ({status})",
        LIMIT.as_secs() / 60
    );
    assert!(
        status.success(),
        "the browser tests failed ({status}); node's output is above"
    );
}

/// What the browser tests need and this machine lacks, with how to get it.
fn missing_prerequisites(web: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        missing.push(format!(
            "{} (apt-get install chromium, or set CHROMIUM)",
            chromium.display()
        ));
    }
    match Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !node_is_recent(&version) {
                missing.push(format!("Node.js 20.14 or newer (found {version})"));
            }
        }
        _ => missing.push("node (Node.js 20.14 or newer)".to_owned()),
    }
    for package in ["playwright-core", "axe-core"] {
        if !web
            .join("node_modules")
            .join(package)
            .join("package.json")
            .exists()
        {
            missing.push(format!(
                "tests/web/node_modules/{package} (npm ci --prefix tests/web)"
            ));
            break;
        }
    }
    missing
}

/// Whether `node --version` (e.g. `v20.20.2`) has `--test-force-exit`.
fn node_is_recent(version: &str) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (20, 14)
}

/// `tests/web/*.test.mjs`, relative to the repository root, sorted.
fn test_files(root: &Path, web: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(web)
        .expect("tests/web is readable")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".test.mjs"))
        })
        .map(|p| p.strip_prefix(root).map(Path::to_path_buf).unwrap_or(p))
        .collect();
    files.sort();
    files
}

/// Waits for `child` to exit, at most `limit`.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("node's status") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops node and everything it started (test files, nodes, chromium):
/// SIGTERM to them all, then SIGKILL to whatever is left after 15 s.
fn stop_tree(child: &mut Child) -> ExitStatus {
    let first = process_tree(child.id());
    signal(&first, "TERM");
    if let Some(status) = wait_bounded(child, Duration::from_secs(15)) {
        // Whatever node left behind was reparented: the first list finds it.
        signal(&still_running(&first), "KILL");
        return status;
    }
    let mut left = still_running(&first);
    left.extend(process_tree(child.id()));
    signal(&left, "KILL");
    let _ = child.kill();
    child.wait().expect("node's status after SIGKILL")
}

/// A process, told apart from a later one with the same id by its start time.
type Proc = (u32, u64);

/// `root` and all its descendants, from /proc (empty elsewhere than Linux).
fn process_tree(root: u32) -> Vec<Proc> {
    let mut all: Vec<(Proc, u32)> = Vec::new(); // (process, parent)
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Some((ppid, start)) = stat_of(pid) {
                all.push(((pid, start), ppid));
            }
        }
    }
    let mut tree: Vec<Proc> = all
        .iter()
        .filter(|((pid, _), _)| *pid == root)
        .map(|(p, _)| *p)
        .collect();
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i].0;
        tree.extend(
            all.iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree
}

/// The parent and start time of a process, from `/proc/PID/stat`.
fn stat_of(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ... starttime(22nd) ..."; comm may hold spaces.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((ppid, start))
}

/// Those of `procs` that are still the same running processes.
fn still_running(procs: &[Proc]) -> Vec<Proc> {
    procs
        .iter()
        .filter(|(pid, start)| stat_of(*pid).is_some_and(|(_, s)| s == *start))
        .copied()
        .collect()
}

fn signal(procs: &[Proc], sig: &str) {
    if procs.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .args(procs.iter().map(|(pid, _)| pid.to_string()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A pipe read to its end on a thread, kept so far in a buffer.
struct Captured {
    buf: Arc<Mutex<Vec<u8>>>,
    thread: JoinHandle<()>,
}

impl Captured {
    fn start(mut pipe: impl Read + Send + 'static) -> Self {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buf);
        let thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("output buffer")
                    .extend_from_slice(&chunk[..n]);
            }
        });
        Self { buf, thread }
    }

    /// What was read, once the pipe ends or 10 s have passed (a process
    /// that survived may still hold it open).
    fn finish(self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let bytes = self.buf.lock().expect("output buffer").clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
