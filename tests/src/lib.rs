//! Helpers for Roundtable's integration tests: run the real `roundtable`
//! binary against temporary homes, real nodes in one process
//! ([`Cluster`]), and a member's device turned rogue ([`Rogue`]).

pub mod cluster;
pub mod rogue;

pub use cluster::{Cluster, bounded};
pub use rogue::Rogue;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use roundtable_core::{Profile, Timestamp};
use roundtable_store::{CircleStore, Home, StoreError};

/// The `roundtable` binary built for this test run. `cargo test --workspace`
/// builds it next to the test executables.
pub fn roundtable_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/roundtable
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let bin = dir.join(format!("roundtable{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        bin.display()
    );
    bin
}

/// What a run of the binary printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Panics with everything printed unless the exit code is `code`.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "expected exit code {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics unless the run succeeded.
    pub fn ok(self) -> Self {
        self.expect_code(0)
    }

    /// The standard output parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Asserts that stderr is exactly one line starting with `error: `
    /// (or, under `--json`, one JSON object naming the error).
    pub fn one_line_error(self) -> Self {
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line on stderr, got:\n{}",
            self.stderr
        );
        // Under --json, the one line is a JSON object with the error.
        let json_error = serde_json::from_str::<serde_json::Value>(lines[0])
            .is_ok_and(|v| v["error"].is_string());
        assert!(
            lines[0].starts_with("error: ") || json_error,
            "{}",
            lines[0]
        );
        self
    }
}

/// A temporary home for one device, and a way to run the binary in it.
#[derive(Debug)]
pub struct TestHome {
    dir: tempfile::TempDir,
}

impl Default for TestHome {
    fn default() -> Self {
        Self::new()
    }
}

impl TestHome {
    /// A new empty home.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// Its directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The config file this home's runs read (none until a test writes it).
    pub fn config_path(&self) -> PathBuf {
        self.path().join("config.toml")
    }

    /// `roundtable --home HOME`, reading this home's config file only.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(roundtable_bin());
        cmd.env("ROUNDTABLE_CONFIG", self.config_path())
            .arg("--home")
            .arg(self.path());
        cmd
    }

    /// Runs `roundtable --home HOME args...`, with no stdin, bounded by a timeout.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        run_bounded(cmd, Duration::from_secs(60))
    }

    /// Runs `roundtable --home HOME args...` with `input` on its stdin.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        run_bounded_with_input(cmd, Some(input), Duration::from_secs(60))
    }

    /// Runs the binary with its clock fixed at `now` (RFC 3339).
    pub fn run_at(&self, now: &str, args: &[&str]) -> Run {
        let mut cmd = self.command();
        cmd.env("ROUNDTABLE_NOW", now).args(args);
        run_bounded(cmd, Duration::from_secs(60))
    }

    /// The store of this home, for helpers that stand in for the network.
    pub fn store(&self) -> Home {
        Home::new(self.path())
    }

    /// Every file under the home and its bytes, to check that nothing changed.
    pub fn snapshot_files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        collect(self.path(), self.path(), &mut out);
        out
    }
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.file_name().is_some_and(|n| n != "lock") {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            out.insert(rel, std::fs::read(&path).unwrap_or_default());
        }
    }
}

/// The notes of every check-in in a `show --json`, sorted.
pub fn notes(show: &serde_json::Value) -> Vec<String> {
    let mut notes: Vec<String> = show["checkins"]
        .as_object()
        .map(|m| {
            m.values()
                .filter_map(|c| c["note"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    notes.sort();
    notes
}

/// Brings `newcomer` into the only circle of `host` the way an invitation
/// will: `host` adds them as a member, and they receive the whole document.
/// Stands in for the join flow of the network layer in tests of the CLI.
pub fn join_by_hand(host: &TestHome, newcomer: &TestHome, name: &str) {
    let hs = host.store();
    let ns = newcomer.store();
    let lock = hs.lock("test join").expect("lock host");
    let id = *hs
        .circle_ids()
        .expect("circles")
        .first()
        .expect("host has a circle");
    let inviter = hs.identity().expect("identity").expect("host identity");
    let mut store = hs.open_circle(&lock, id).expect("open host circle");
    let nlock = ns.lock("test join").expect("lock newcomer");
    let (me, _) = ns.ensure_identity(&nlock).expect("newcomer identity");
    store
        .edit(|c| -> Result<(), StoreError> {
            let profile = Profile::named(name);
            Ok(c.add_member(
                &me.cert,
                &profile,
                Some(inviter.member.id()),
                Timestamp::now(),
            )?)
        })
        .expect("add member");
    let keys = hs
        .circle_keys(id)
        .expect("read keys")
        .expect("host has the keys");
    ns.create_circle(&nlock, store.circle(), &keys)
        .expect("store circle at newcomer");
}

/// Exchanges every change between the homes' copies of their circles, as
/// sync over the network will. Stands in for the network in CLI tests.
pub fn sync_by_hand(homes: &[&TestHome]) {
    let stores: Vec<Home> = homes.iter().map(|h| h.store()).collect();
    let locks: Vec<_> = stores
        .iter()
        .map(|s| s.lock("test sync").expect("lock"))
        .collect();
    let id = *stores[0]
        .circle_ids()
        .expect("circles")
        .first()
        .expect("a circle");
    let mut open: Vec<CircleStore> = stores
        .iter()
        .zip(&locks)
        .map(|(s, l)| s.open_circle(l, id).expect("open circle"))
        .collect();
    let everything: Vec<Vec<u8>> = open.iter().map(|s| s.circle().save()).collect();
    for store in &mut open {
        for doc in &everything {
            store.apply(doc).expect("apply changes");
        }
    }
}

/// Runs a command to completion, killing it if it outlives `limit`.
pub fn run_bounded(cmd: Command, limit: Duration) -> Run {
    run_bounded_with_input(cmd, None, limit)
}

/// Runs a command to completion with `input` on its stdin (none: no
/// stdin), killing it if it outlives `limit`.
pub fn run_bounded_with_input(mut cmd: Command, input: Option<&str>, limit: Duration) -> Run {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn roundtable");
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        use std::io::Write;
        // A child that stops reading early closes the pipe: not an error here.
        let _ = stdin.write_all(text.as_bytes());
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    // Reading both pipes to the end in another thread: a full pipe must never stall the child.
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(limit) {
        Ok(out) => out.expect("collect output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{cmd:?} ran longer than {limit:?}");
        }
    };
    let Output {
        status,
        stdout,
        stderr,
    } = output;
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `roundtable up` of a home, as a process: on loopback, relay, mDNS and
/// the web app off. Killed when dropped.
pub struct Up(Child);

impl Up {
    /// Starts it and waits until it answers on its control socket.
    pub fn start(home: &TestHome) -> Self {
        let child = home
            .command()
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--relay",
                "none",
                "--no-mdns",
                "--no-web",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("roundtable up starts");
        let up = Self(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !home.path().join("control.sock").exists() {
            assert!(Instant::now() < deadline, "the node did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The socket answers once the node serves.
        while home.run(&["status", "--json"]).json()["running"] != true {
            assert!(Instant::now() < deadline, "the node does not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
        up
    }

    /// SIGTERM, then the node must exit cleanly.
    pub fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("kill runs");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.0.try_wait().expect("the node's status") {
                assert!(status.success(), "the node exited with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the node did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
