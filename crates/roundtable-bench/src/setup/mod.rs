//! What the scenarios share: sizes, timing and process readings (here),
//! circles of realistic history (`history.rs`), nodes on loopback
//! (`nodes.rs`), bare iroh endpoints and Automerge's stock sync loop
//! (`bare.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};

mod bare;
mod history;
mod nodes;

pub(crate) use bare::*;
pub(crate) use history::*;
pub(crate) use nodes::*;

/// How big each scenario runs.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Tiny sizes: checks the harness, not the speed.
    pub(crate) quick: bool,
    /// B1: circle sizes, and the edits timed at each.
    pub(crate) b1: Vec<(usize, usize)>,
    /// B2: regimes (missing on A, missing on B, shared history before).
    pub(crate) b2: Vec<Regime>,
    /// B3, B5: history sizes in Automerge operations.
    pub(crate) histories: Vec<u64>,
    /// B3: times each process run is repeated.
    pub(crate) repeats: usize,
    /// B4: circles in the larger idle node.
    pub(crate) b4_circles: usize,
    /// B5: remote changes applied per history.
    pub(crate) b5_changes: usize,
    /// B5: idle window.
    pub(crate) idle: Duration,
    /// B6: restarts.
    pub(crate) b6_runs: usize,
    /// B6: edits made while the restarted node was down.
    pub(crate) b6_edits: usize,
    /// B7: edits to catch up.
    pub(crate) b7_edits: usize,
}

/// One catch-up regime of B2.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Regime {
    /// Edits both sides share before.
    pub(crate) shared: usize,
    /// Edits only A makes.
    pub(crate) on_a: usize,
    /// Edits only B makes.
    pub(crate) on_b: usize,
}

impl Regime {
    /// How the table names it.
    pub(crate) fn name(&self) -> String {
        let k = self.on_a + self.on_b;
        let total = self.shared + k;
        if self.on_b > 0 {
            format!(
                "diverged {}+{} of {}",
                count(self.on_a),
                count(self.on_b),
                count(total)
            )
        } else if self.shared == 0 {
            format!("K={} (all of history)", count(k))
        } else {
            format!("K={} of {}", count(k), count(total))
        }
    }
}

/// 1000 -> "1k".
pub(crate) fn count(n: usize) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

impl Plan {
    /// The full run.
    pub(crate) fn full() -> Self {
        Self {
            quick: false,
            b1: vec![(3, 1000), (10, 1000)],
            b2: vec![
                Regime {
                    shared: 0,
                    on_a: 1_000,
                    on_b: 0,
                },
                Regime {
                    shared: 0,
                    on_a: 10_000,
                    on_b: 0,
                },
                Regime {
                    shared: 9_000,
                    on_a: 1_000,
                    on_b: 0,
                },
                Regime {
                    shared: 9_000,
                    on_a: 500,
                    on_b: 500,
                },
                Regime {
                    shared: 90_000,
                    on_a: 10_000,
                    on_b: 0,
                },
            ],
            histories: vec![10_000, 100_000],
            repeats: 5,
            b4_circles: 10,
            b5_changes: 200,
            idle: Duration::from_secs(20),
            b6_runs: 5,
            b6_edits: 10,
            b7_edits: 10_000,
        }
    }

    /// Tiny sizes.
    pub(crate) fn quick() -> Self {
        Self {
            quick: true,
            b1: vec![(3, 20)],
            b2: vec![
                Regime {
                    shared: 0,
                    on_a: 20,
                    on_b: 0,
                },
                Regime {
                    shared: 180,
                    on_a: 20,
                    on_b: 0,
                },
                Regime {
                    shared: 180,
                    on_a: 10,
                    on_b: 10,
                },
            ],
            histories: vec![2_000],
            repeats: 1,
            b4_circles: 3,
            b5_changes: 5,
            idle: Duration::from_secs(2),
            b6_runs: 1,
            b6_edits: 3,
            b7_edits: 50,
        }
    }
}

// ---------------------------------------------------------------- numbers

/// The value at quantile `q` (0..=1) of `xs` (sorted here).
pub(crate) fn quantile(xs: &[Duration], q: f64) -> Duration {
    if xs.is_empty() {
        return Duration::ZERO;
    }
    let mut v = xs.to_vec();
    v.sort();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// The median.
pub(crate) fn median(xs: &[Duration]) -> Duration {
    quantile(xs, 0.5)
}

/// Times `f` `n` times; the median.
pub(crate) fn median_of<T>(n: usize, mut f: impl FnMut() -> Result<T>) -> Result<(Duration, T)> {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..n.max(1) {
        let t = Instant::now();
        let v = f()?;
        times.push(t.elapsed());
        last = Some(v);
    }
    Ok((median(&times), last.ok_or_else(|| anyhow!("no run"))?))
}

/// CPU time this thread has used.
pub(crate) fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

// ---------------------------------------------------------------- processes

/// A process's resident set (VmRSS), in bytes.
pub(crate) fn rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| anyhow!("no VmRSS for {pid}"))
}

/// A process's CPU time so far (utime + stime of /proc/PID/stat).
pub(crate) fn cpu_of(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("bad /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Duration::from_millis(ticks * 1000 / clock_ticks()))
}

fn clock_ticks() -> u64 {
    // USER_HZ; 100 on every Linux this runs on, but ask when we can.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// How often one device gossips an edit in the scenarios that time them: a
/// little slower than the pace the others take a device's gossip in at
/// (past it, they hold its messages back and apply them together on a
/// tick: see `roundtable_machine::rate`). A person writes far slower.
pub(crate) const PACE: Duration =
    Duration::from_millis(1_000 / roundtable_node::EDITS_PER_SECOND + 10);

/// The `roundtable` binary of the same profile as this one, built if missing.
pub(crate) fn roundtable_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or_else(|| anyhow!("no exe dir"))?;
    let bin = dir.join("roundtable");
    if bin.exists() {
        return Ok(bin);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", "roundtable"]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    eprintln!("building the roundtable binary the process scenarios time ...");
    let ok = cmd.status().context("running cargo build")?.success();
    if !ok || !bin.exists() {
        bail!(
            "{} is missing: build it with `cargo build -p roundtable`",
            bin.display()
        );
    }
    Ok(bin)
}

/// `roundtable --home HOME args...` with the config file kept inside the home.
pub(crate) fn roundtable(home: &Path) -> Result<Command> {
    let mut cmd = Command::new(roundtable_bin()?);
    cmd.env("ROUNDTABLE_CONFIG", home.join("config.toml"))
        .env_remove("RUST_LOG")
        .arg("--home")
        .arg(home)
        .stdin(Stdio::null());
    Ok(cmd)
}

/// Runs a command to completion; its wall time. Fails unless it exits 0.
pub(crate) fn timed_run(mut cmd: Command) -> Result<Duration> {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let t = Instant::now();
    let out = cmd.output()?;
    let took = t.elapsed();
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd.get_args().collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(took)
}

/// A `roundtable up` process, stopped (SIGTERM, then killed) when dropped.
pub(crate) struct UpProcess {
    child: std::process::Child,
}

impl UpProcess {
    /// Starts `roundtable up` on loopback (at `port`, or any) with no
    /// relay, mDNS or web app, and waits until its control socket answers.
    pub(crate) fn start(home: &Path, port: Option<u16>) -> Result<Self> {
        let listen = format!("127.0.0.1:{}", port.unwrap_or(0));
        let mut cmd = roundtable(home)?;
        cmd.args([
            "up",
            "--listen",
            &listen,
            "--relay",
            "none",
            "--no-mdns",
            "--no-web",
            "--no-browser",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let child = cmd.spawn()?;
        let up = Self { child };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if home.join("control.sock").exists() {
                let mut st = roundtable(home)?;
                st.args(["status", "--json"]);
                if let Ok(out) = st.output()
                    && String::from_utf8_lossy(&out.stdout).contains("\"running\": true")
                {
                    return Ok(up);
                }
            }
            if Instant::now() > deadline {
                bail!("roundtable up did not start within 120 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for UpProcess {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes under a directory.
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                n += dir_size(&p);
            } else if let Ok(m) = p.metadata() {
                n += m.len();
            }
        }
    }
    n
}
