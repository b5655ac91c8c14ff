//! What the scenarios share: sizes, timing and process readings, circles of
//! realistic history, nodes on loopback, bare iroh endpoints and Automerge's
//! stock sync loop.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use automerge::sync::{Message, State, SyncDoc};
use automerge::{Automerge, ChangeHash, ReadDoc};
use iroh::address_lookup::memory::MemoryLookup;
use iroh::endpoint::{Connection, presets};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh::{Endpoint, RelayMode, SecretKey};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use roundtable_core::{
    Answer, Circle, CircleId, DeviceKey, EntityId, EpochKey, InviteKind, Keyring, MemberKey, Mood,
    Op, Profile, Timestamp, view::RequestKind,
};
use roundtable_net::framing::{read_frame, write_frame};
use roundtable_node::{Event, Node, NodeConfig, NodeHandle};
use roundtable_store::Home;
use tokio::sync::broadcast;

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
            b1: vec![(3, 1000), (10, 300)],
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

// ---------------------------------------------------------------- histories

const WORDS: &[&str] = &[
    "soup", "long", "week", "tired", "better", "walk", "garden", "mum", "call", "thanks", "work",
    "sleep", "rain", "kids", "bread", "doctor", "news", "quiet", "tea", "friday", "laughed",
    "hard", "morning", "dog", "bus", "late", "again", "finally", "lovely", "heavy", "okay",
    "missed", "you", "all", "dinner", "cooked", "visit", "hospital", "good", "day", "moving",
    "boxes", "school", "exam", "birthday", "cake", "sorry", "thinking", "of", "you", "here", "if",
    "needed", "can", "bring", "lift", "tuesday", "weekend", "back", "slowly",
];

fn words(rng: &mut impl Rng, min: usize, max: usize) -> String {
    let n = rng.random_range(min..=max);
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.random_range(0..WORDS.len())]);
    }
    s
}

/// The people of a circle: member and device keys, member 0 is this device's.
#[derive(Debug, Clone)]
pub(crate) struct Cast {
    /// Member keys.
    pub(crate) members: Vec<MemberKey>,
    /// One device each.
    pub(crate) devices: Vec<DeviceKey>,
}

impl Cast {
    /// `n` people.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            members: (0..n).map(|_| MemberKey::generate()).collect(),
            devices: (0..n).map(|_| DeviceKey::generate()).collect(),
        }
    }
}

/// Writes the edits people make over years: check-ins, replies, moments,
/// asks and offers, gatherings with answers and dishes.
#[derive(Debug)]
pub(crate) struct Life {
    rng: ChaCha8Rng,
    now: i64,
    step: i64,
    repliable: VecDeque<EntityId>,
    requests: VecDeque<EntityId>,
    gatherings: VecDeque<EntityId>,
    members: usize,
}

impl Life {
    /// A life starting at `start` with about `edits` edits spread over
    /// three years.
    pub(crate) fn new(seed: u64, start: Timestamp, edits: usize, members: usize) -> Self {
        let three_years = 3 * 365 * 24 * 3600 * 1000_i64;
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: start.as_millis(),
            step: (three_years / edits.max(1) as i64).max(1),
            repliable: VecDeque::new(),
            requests: VecDeque::new(),
            gatherings: VecDeque::new(),
            members,
        }
    }

    /// Now, in the circle's life.
    pub(crate) fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now)
    }

    /// The next edit: who makes it and what.
    pub(crate) fn next(&mut self) -> (usize, Op) {
        self.now += self.rng.random_range(self.step / 2..=self.step * 3 / 2 + 1);
        let who = self.rng.random_range(0..self.members);
        let roll = self.rng.random_range(0..100);
        let pick = |rng: &mut ChaCha8Rng, q: &VecDeque<EntityId>| -> Option<EntityId> {
            (!q.is_empty()).then(|| q[rng.random_range(0..q.len())])
        };
        let rng = &mut self.rng;
        let op = match roll {
            0..40 => Op::Checkin {
                mood: Mood::ALL[rng.random_range(0..Mood::ALL.len())],
                note: words(rng, 3, 16),
            },
            40..70 => match pick(rng, &self.repliable) {
                Some(to) => Op::Reply {
                    to,
                    text: words(rng, 2, 12),
                },
                None => Op::Moment {
                    text: words(rng, 3, 10),
                },
            },
            70..78 => Op::Moment {
                text: words(rng, 3, 14),
            },
            78..85 => Op::Request {
                kind: if rng.random_bool(0.5) {
                    RequestKind::Ask
                } else {
                    RequestKind::Offer
                },
                text: words(rng, 3, 10),
                when: "this week".into(),
            },
            85..89 => match pick(rng, &self.requests) {
                Some(to) => Op::Commit {
                    to,
                    text: words(rng, 2, 6),
                },
                None => Op::Checkin {
                    mood: Mood::Okay,
                    note: words(rng, 3, 10),
                },
            },
            89..92 => {
                let starts = Timestamp::from_millis(self.now + 7 * 24 * 3600 * 1000)
                    .to_jiff()
                    .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                    .to_string();
                Op::Gathering {
                    title: words(rng, 1, 4),
                    starts,
                    place: words(rng, 1, 3),
                    hosts: Vec::new(),
                }
            }
            92..97 => match pick(rng, &self.gatherings) {
                Some(gathering) => Op::Rsvp {
                    gathering,
                    answer: [Answer::Yes, Answer::No, Answer::Maybe][rng.random_range(0..3)],
                    note: String::new(),
                },
                None => Op::Moment {
                    text: words(rng, 3, 10),
                },
            },
            _ => match pick(rng, &self.gatherings) {
                Some(gathering) => Op::Bring {
                    gathering,
                    dish: words(rng, 1, 3),
                    dietary: String::new(),
                    instead: false,
                },
                None => Op::Moment {
                    text: words(rng, 3, 10),
                },
            },
        };
        (who, op)
    }

    /// Remembers what an edit created, for later replies and answers.
    pub(crate) fn made(&mut self, op: &Op, id: Option<EntityId>) {
        let Some(id) = id else {
            return;
        };
        let q = match op {
            Op::Checkin { .. } | Op::Moment { .. } => &mut self.repliable,
            Op::Request { .. } => {
                self.repliable.push_back(id);
                if self.repliable.len() > 64 {
                    self.repliable.pop_front();
                }
                &mut self.requests
            }
            Op::Gathering { .. } => &mut self.gatherings,
            _ => return,
        };
        q.push_back(id);
        if q.len() > 64 {
            q.pop_front();
        }
    }

    /// Makes the next edit on `circle` as the member who makes it; the
    /// circle's device is left as that member's.
    pub(crate) fn edit(&mut self, circle: &mut Circle, cast: &Cast) -> Result<()> {
        let (who, op) = self.next();
        circle.set_device(cast.devices[who].id());
        let now = self.now();
        // An edit the rules refuse (a reply to something withdrawn, say)
        // is simply not made, as in life.
        if let Ok(id) = circle.perform(&op, cast.members[who].id(), now, &mut self.rng) {
            self.made(&op, id);
        }
        Ok(())
    }
}

/// A home holding one circle with a long history, laid out on disk as a
/// device keeps it: a snapshot, and the last edits in the log.
#[derive(Debug)]
pub(crate) struct HistoryHome {
    /// The home directory.
    pub(crate) dir: PathBuf,
    /// The circle.
    pub(crate) id: CircleId,
    /// Its people (member 0 is this home's).
    pub(crate) cast: Cast,
    /// Its keys.
    pub(crate) keys: Keyring,
    /// Automerge operations in it when built.
    pub(crate) ops: u64,
    /// Changes in it when built.
    pub(crate) changes: u64,
    /// How long building took.
    pub(crate) built_in: Duration,
}

/// Gives the home at `home` this device's identity, with the given keys.
pub(crate) fn write_identity(home: &Path, member: &MemberKey, device: &DeviceKey) -> Result<()> {
    let home = roundtable_store::Home::new(home);
    let lock = home.lock("roundtable-bench")?;
    home.set_identity(&lock, member, device)?;
    Ok(())
}

/// A new circle of `cast`, founded by member 0, everyone added.
pub(crate) fn found(cast: &Cast, start: Timestamp) -> Result<Circle> {
    let mut rng = rand::rng();
    let mut c = Circle::create(
        "Tuesday Supper",
        "soup and company, every week",
        &cast.members[0].certify(cast.devices[0].id()),
        &Profile::named("Maya"),
        start,
        &mut rng,
    )?;
    for i in 1..cast.members.len() {
        c.add_member(
            &cast.members[i].certify(cast.devices[i].id()),
            &Profile::named(format!("Friend {i}")),
            Some(cast.members[0].id()),
            start.plus_millis(i as i64),
        )?;
    }
    Ok(c)
}

/// Builds a circle of 20 members with about `ops` Automerge operations of
/// history in `dir`: the history in memory, stored as a snapshot, then the
/// last `tail` edits made through the store (each appended and fsynced).
pub(crate) fn build_history(dir: &Path, ops: u64, tail: usize, seed: u64) -> Result<HistoryHome> {
    let t = Instant::now();
    let cast = Cast::new(20);
    let start = Timestamp::from_millis(Timestamp::now().as_millis() - 3 * 365 * 24 * 3600 * 1000);
    // About five and a half operations an edit.
    let edits = (ops as usize * 2 / 11).max(10);
    let mut life = Life::new(seed, start, edits, cast.members.len());
    let mut circle = found(&cast, start)?;
    let mut n = 0usize;
    loop {
        life.edit(&mut circle, &cast)?;
        n += 1;
        if n.is_multiple_of(256) && circle.doc().stats().num_ops + (tail as u64 * 6) >= ops {
            break;
        }
    }
    circle.set_device(cast.devices[0].id());
    write_identity(dir, &cast.members[0], &cast.devices[0])?;
    let home = Home::new(dir);
    let lock = home.lock("bench")?;
    let keys = Keyring::with(EpochKey::random(
        circle.id(),
        0,
        &cast.devices[0],
        &mut rand::rng(),
    ));
    home.create_circle(&lock, &circle, &keys)?;
    let id = circle.id();
    drop(circle);
    let mut store = home.open_circle(&lock, id)?;
    for _ in 0..tail {
        store.edit(|c| -> Result<(), roundtable_store::StoreError> {
            // Life's own errors are refusals by the rules, never I/O.
            let _ = life.edit(c, &cast);
            c.set_device(cast.devices[0].id());
            Ok(())
        })?;
    }
    let stats = store.circle().doc().stats();
    drop(store);
    drop(lock);
    Ok(HistoryHome {
        dir: dir.to_path_buf(),
        id,
        cast,
        keys,
        ops: stats.num_ops,
        changes: stats.num_changes,
        built_in: t.elapsed(),
    })
}

// ---------------------------------------------------------------- nodes

/// A free UDP port on loopback.
pub(crate) fn free_port() -> Result<u16> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
    Ok(s.local_addr()?.port())
}

/// A node on loopback, no relay, no mDNS, at a fixed port (so peers find it
/// again after a restart), with a person's device's timings (anti-entropy
/// every 10 s, backoff up to 20 s), not the quicker ones tests use.
pub(crate) fn node_config(home: &Path, port: u16) -> NodeConfig {
    let mut c = NodeConfig::new(home);
    c.net = roundtable_net::NetConfig::loopback();
    c.net.listen = vec![SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))];
    c
}

/// How long any wait for nodes may take before the scenario fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(180);

/// Runs `fut`, failing if it takes longer than `PATIENCE`.
pub(crate) async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .map_err(|_| anyhow!("{what} took longer than {PATIENCE:?}"))
}

/// Real nodes in this process, each in its own home, sharing one circle.
#[derive(Debug)]
pub(crate) struct Nodes {
    /// Their homes.
    pub(crate) homes: Vec<PathBuf>,
    ports: Vec<u16>,
    nodes: Vec<Option<Node>>,
    /// The circle.
    pub(crate) circle: CircleId,
}

impl Nodes {
    /// `n` nodes under `dir`; node 0 founds the circle and invites the
    /// others, who join by ticket.
    pub(crate) async fn spawn(dir: &Path, n: usize) -> Result<Self> {
        let mut homes = Vec::new();
        let mut ports = Vec::new();
        let mut nodes = Vec::new();
        for i in 0..n {
            let home = dir.join(format!("node{i}"));
            let port = free_port()?;
            nodes.push(Some(
                bounded("starting a node", Node::spawn(node_config(&home, port))).await??,
            ));
            homes.push(home);
            ports.push(port);
        }
        let mut me = Self {
            homes,
            ports,
            nodes,
            circle: CircleId::from_bytes([0; 16]),
        };
        me.circle = bounded(
            "founding the circle",
            me.handle(0)?
                .create_circle("Tuesday Supper", "", "Maya", Timestamp::now()),
        )
        .await??;
        for i in 1..n {
            let now = Timestamp::now();
            let ticket = me
                .handle(0)?
                .invite(
                    me.circle,
                    InviteKind::Member,
                    now.plus_millis(3_600_000),
                    1,
                    now,
                )
                .await?;
            bounded(
                "joining",
                me.handle(i)?.join(&ticket, Some(&format!("Friend {i}"))),
            )
            .await??;
        }
        Ok(me)
    }

    /// Node `i`'s handle.
    pub(crate) fn handle(&self, i: usize) -> Result<NodeHandle> {
        Ok(self
            .nodes
            .get(i)
            .and_then(Option::as_ref)
            .ok_or_else(|| anyhow!("node {i} is not running"))?
            .handle())
    }

    /// Stops node `i` in order.
    pub(crate) async fn stop(&mut self, i: usize) -> Result<()> {
        if let Some(node) = self.nodes[i].take() {
            bounded("stopping a node", node.shutdown()).await??;
        }
        Ok(())
    }

    /// Starts node `i` again, at its old port.
    pub(crate) async fn start(&mut self, i: usize) -> Result<()> {
        let node = bounded(
            "starting a node",
            Node::spawn(node_config(&self.homes[i], self.ports[i])),
        )
        .await??;
        self.nodes[i] = Some(node);
        Ok(())
    }

    /// Stops every node.
    pub(crate) async fn shutdown(mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            self.stop(i).await?;
        }
        Ok(())
    }
}

/// A node's copy of a circle.
pub(crate) async fn node_circle(h: &NodeHandle, circle: CircleId) -> Result<Circle> {
    Ok(Circle::load(&h.doc(circle).await?)?)
}

/// Waits until `a` and `b` hold the same heads, checking after each sync
/// session either ends (and every two seconds). Returns when the session
/// that made them equal ended. Subscribe before the nodes can sync.
pub(crate) async fn wait_in_sync(
    a: (&NodeHandle, &mut broadcast::Receiver<Event>),
    b: (&NodeHandle, &mut broadcast::Receiver<Event>),
    circle: CircleId,
) -> Result<Instant> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if Instant::now() > deadline {
            bail!("the nodes did not get in sync within {PATIENCE:?}");
        }
        let ev = tokio::select! {
            e = a.1.recv() => e,
            e = b.1.recv() => e,
            () = tokio::time::sleep(Duration::from_secs(2)) => Err(broadcast::error::RecvError::Lagged(0)),
        };
        let at = Instant::now();
        let check = match ev {
            Ok(Event::Synced { ok, .. }) => ok,
            Ok(_) => false,
            Err(broadcast::error::RecvError::Lagged(_)) => true,
            Err(broadcast::error::RecvError::Closed) => bail!("a node stopped"),
        };
        if check {
            let ha = a.0.heads(circle).await?;
            let hb = b.0.heads(circle).await?;
            if ha == hb {
                return Ok(at);
            }
        }
    }
}

/// Makes `n` edits as this home's member on a stopped node's files, 50 to
/// each fsynced record.
pub(crate) fn offline_edits(home: &Path, circle: CircleId, n: usize, seed: u64) -> Result<()> {
    let home = Home::new(home);
    let lock = home.lock("bench offline edits")?;
    let me = home.identity()?.ok_or_else(|| anyhow!("no identity"))?;
    let mut store = home.open_circle(&lock, circle)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut done = 0;
    while done < n {
        let batch = (n - done).min(50);
        store.edit(|c| -> Result<(), roundtable_store::StoreError> {
            for _ in 0..batch {
                let op = Op::Checkin {
                    mood: Mood::Okay,
                    note: words(&mut rng, 3, 16),
                };
                c.perform(&op, me.member.id(), Timestamp::now(), &mut rng)
                    .map_err(roundtable_store::StoreError::from)?;
            }
            Ok(())
        })?;
        done += batch;
    }
    Ok(())
}

// ---------------------------------------------------------------- bare iroh

/// A bare iroh endpoint on loopback, relay off.
pub(crate) async fn bare_endpoint() -> Result<Endpoint> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    bare_endpoint_with(secret).await
}

/// A bare iroh endpoint on loopback, relay off, with this secret key.
pub(crate) async fn bare_endpoint_with(secret: [u8; 32]) -> Result<Endpoint> {
    let ep = Endpoint::builder(presets::Minimal)
        .secret_key(SecretKey::from_bytes(&secret))
        .clear_ip_transports()
        .bind_addr(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)))?
        .relay_mode(RelayMode::Disabled)
        .address_lookup(MemoryLookup::new())
        .bind()
        .await?;
    Ok(ep)
}

/// The ALPN of the stock sync anchor.
pub(crate) const STOCK_ALPN: &[u8] = b"bench/automerge-sync/0";

/// Bytes and rounds of one side of a sync exchange.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Traffic {
    /// Bytes this side sent (frames and their length prefixes).
    pub(crate) sent: u64,
    /// Bytes it received.
    pub(crate) received: u64,
    /// Rounds: one message each way.
    pub(crate) rounds: u64,
}

/// Automerge's stock sync loop over one stream, in lockstep rounds: each
/// side generates a message (or says it has none) and takes in the
/// other's, until a round in which neither has anything to say.
pub(crate) async fn stock_sync<S, R>(
    doc: &mut Automerge,
    state: &mut State,
    send: &mut S,
    recv: &mut R,
    opener: bool,
) -> Result<Traffic>
where
    S: tokio::io::AsyncWrite + Unpin,
    R: tokio::io::AsyncRead + Unpin,
{
    let mut t = Traffic::default();
    let frame_of = |msg: &Option<Vec<u8>>| -> Vec<u8> {
        match msg {
            Some(m) => [&[1u8][..], m].concat(),
            None => vec![0],
        }
    };
    loop {
        // The opener speaks first; the answerer answers what it heard, in
        // the same round (as Roundtable's sessions do).
        let (said, heard) = if opener {
            let mine = doc.generate_sync_message(state).map(Message::encode);
            let frame = frame_of(&mine);
            write_frame(send, &frame).await?;
            t.sent += 4 + frame.len() as u64;
            let theirs = read_frame(recv, usize::MAX)
                .await?
                .ok_or_else(|| anyhow!("stream ended"))?;
            t.received += 4 + theirs.len() as u64;
            let heard = theirs.first() == Some(&1);
            if heard {
                doc.receive_sync_message(state, Message::decode(&theirs[1..])?)?;
            }
            (mine.is_some(), heard)
        } else {
            let theirs = read_frame(recv, usize::MAX)
                .await?
                .ok_or_else(|| anyhow!("stream ended"))?;
            t.received += 4 + theirs.len() as u64;
            let heard = theirs.first() == Some(&1);
            if heard {
                doc.receive_sync_message(state, Message::decode(&theirs[1..])?)?;
            }
            let mine = doc.generate_sync_message(state).map(Message::encode);
            let frame = frame_of(&mine);
            write_frame(send, &frame).await?;
            t.sent += 4 + frame.len() as u64;
            (mine.is_some(), heard)
        };
        t.rounds += 1;
        if !said && !heard {
            return Ok(t);
        }
    }
}

/// A server for the stock sync anchor: answers one session per connection
/// with its document.
#[derive(Debug, Clone)]
pub(crate) struct StockServer {
    doc: std::sync::Arc<tokio::sync::Mutex<(Automerge, State)>>,
    done: tokio::sync::mpsc::Sender<Result<Traffic, String>>,
}

impl ProtocolHandler for StockServer {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let result = async {
            let (mut send, mut recv) = conn.accept_bi().await?;
            let mut guard = self.doc.lock().await;
            let (doc, state) = &mut *guard;
            let t = stock_sync(doc, state, &mut send, &mut recv, false).await?;
            send.finish()?;
            conn.closed().await;
            anyhow::Ok(t)
        }
        .await
        .map_err(|e| e.to_string());
        let _ = self.done.send(result).await;
        Ok(())
    }
}

/// A running stock sync server.
pub(crate) struct Stock {
    /// Its router (and endpoint).
    pub(crate) router: Router,
    /// Sessions as they end.
    pub(crate) done: tokio::sync::mpsc::Receiver<Result<Traffic, String>>,
    /// Its document after the sessions.
    pub(crate) doc: std::sync::Arc<tokio::sync::Mutex<(Automerge, State)>>,
}

/// Starts a stock sync server holding `doc`, with `state` for its peer.
pub(crate) async fn stock_server(doc: Automerge, state: State) -> Result<Stock> {
    let ep = bare_endpoint().await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let shared = std::sync::Arc::new(tokio::sync::Mutex::new((doc, state)));
    let router = Router::builder(ep)
        .accept(
            STOCK_ALPN,
            StockServer {
                doc: shared.clone(),
                done: tx,
            },
        )
        .spawn();
    Ok(Stock {
        router,
        done: rx,
        doc: shared,
    })
}

/// One stock sync session from a client endpoint to `server`: the client
/// side's traffic, and the time from dialling to in sync (both sides done).
pub(crate) async fn stock_client(
    ep: &Endpoint,
    server: &mut Stock,
    doc: &mut Automerge,
    state: &mut State,
) -> Result<(Duration, Traffic)> {
    let t = Instant::now();
    let conn = ep
        .connect(server.router.endpoint().addr(), STOCK_ALPN)
        .await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    let traffic = stock_sync(doc, state, &mut send, &mut recv, true).await?;
    let took = t.elapsed();
    send.finish()?;
    conn.close(0u32.into(), b"done");
    server
        .done
        .recv()
        .await
        .ok_or_else(|| anyhow!("server gone"))?
        .map_err(|e| anyhow!("server side: {e}"))?;
    Ok((took, traffic))
}

/// A sync state that knows the peer had `shared` at the last sync, as a
/// state persisted after a session would.
pub(crate) fn state_after(shared: &[ChangeHash]) -> State {
    let mut s = State::new();
    let mut heads = shared.to_vec();
    heads.sort();
    s.shared_heads = heads;
    s
}
