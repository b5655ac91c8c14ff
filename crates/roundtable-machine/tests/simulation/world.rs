//! The simulated world: real [`Machine`]s, each on its own in-memory file
//! system, over a network that delays, reorders, drops, duplicates and
//! partitions, under one virtual clock. Every choice (delays, losses,
//! keys, ids) comes from the seed, so a seed replays exactly.
//!
//! What is simplified, and how:
//!
//! - **Gossip** is a broadcast to every device that follows the same topic
//!   and that both sides admit, each copy delayed, dropped or duplicated on
//!   its own. Neighbours are every such device that is reachable: the
//!   machine's `JoinPeers` and `Meet` (which only steer iroh-gossip's
//!   overlay) are not needed for that.
//! - **Sync sessions** run over a connection that keeps order, as a QUIC
//!   stream does. A connection breaks when a partition or a crash cuts it;
//!   the side still up hears it after a timeout, as a session step's
//!   timeout would tell it.
//! - **Admission** is checked when a connection opens and when gossip is
//!   delivered, as the endpoint does.
//! - **Crashes** drop the machine without its `close`, and the file system
//!   keeps what the crash state keeps ([`CrashState::VARIETY`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use roundtable_core::wire::SyncFrame;
use roundtable_core::wire::{ShelfEntry, StewardReply, StewardRequest};
use roundtable_core::{ChangeHash, CircleId, DeviceId, DeviceKey, MemberKey, Timestamp};
use roundtable_machine::{Machine, Now, Output, SessionId, Step, StewardSession, Timing};
use roundtable_steward::blobs::FsBlobs;
use roundtable_steward::{Keeper, Limits};
use roundtable_store::Home;
use roundtable_store::fault::{CrashState, SimFs};

/// How unreliable the network is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Weather {
    /// Chance a gossip message is lost.
    pub(crate) drop: f64,
    /// Chance a gossip message arrives twice.
    pub(crate) dup: f64,
    /// Delay of each message, in milliseconds.
    pub(crate) delay: (u64, u64),
}

impl Weather {
    pub(crate) const STORMY: Self = Self {
        drop: 0.2,
        dup: 0.1,
        delay: (1, 400),
    };
    pub(crate) const CALM: Self = Self {
        drop: 0.0,
        dup: 0.0,
        delay: (1, 20),
    };
}

/// How long a session waits for a silent peer before it gives up.
const SILENCE: u64 = 20_000;
/// How often each machine's timer fires.
const TICK: u64 = 500;

/// One device of the world.
pub(crate) struct Dev {
    pub(crate) name: String,
    root: PathBuf,
    fs: Arc<SimFs>,
    pub(crate) machine: Option<Machine>,
    rng: ChaCha8Rng,
    /// Its wall clock is this far off.
    skew_ms: i64,
    /// Bumped at each restart: what was in flight to an earlier life is lost.
    life: u64,
    pub(crate) device: DeviceId,
    topics: BTreeMap<CircleId, [u8; 32]>,
    admitted: BTreeSet<DeviceId>,
    /// Devices of removed members that may ask it for their farewell.
    pub(crate) farewell: BTreeSet<DeviceId>,
    neighbours: BTreeMap<CircleId, BTreeSet<usize>>,
    next_tick: u64,
    /// The heads each acknowledged edit left (every change in them
    /// durable), and its words where it has some.
    pub(crate) acked: Vec<Acked>,
    /// It signed two different changes under one number: what it
    /// acknowledged is its own lookout from then on.
    pub(crate) forked: bool,
    /// Gossip this device received (a rogue replays it).
    pub(crate) heard: Vec<(CircleId, Vec<u8>)>,
    /// What its machine told its followers.
    pub(crate) events: Vec<roundtable_machine::Event>,
    /// A peer the machine just said it reached, until the session's end
    /// is told right after.
    reached: Option<DeviceId>,
    /// Sync sessions its machine opened, and how many of them reached
    /// their peer.
    pub(crate) dialled: u64,
    pub(crate) connected: u64,
}

impl Dev {
    pub(crate) fn up(&self) -> bool {
        self.machine.is_some()
    }

    pub(crate) fn machine(&mut self) -> &mut Machine {
        self.machine.as_mut().expect("the device is up")
    }

    pub(crate) fn topic(&self, circle: CircleId) -> Option<[u8; 32]> {
        self.topics.get(&circle).copied()
    }
}

/// An edit a device acknowledged: the heads it left, and its words.
#[derive(Debug, Clone)]
pub(crate) struct Acked {
    pub(crate) circle: CircleId,
    pub(crate) heads: Vec<ChangeHash>,
    pub(crate) words: Option<String>,
}

/// A connection carrying one sync session.
struct Conn {
    opener: usize,
    answerer: usize,
    lives: (u64, u64),
    /// Each side's session, once it has one.
    sessions: [Option<SessionId>; 2],
    /// Each side is done with it.
    done: [bool; 2],
    /// When the last frame each way arrives, so frames keep their order.
    last: [u64; 2],
    /// Something cut it; both sides hear of it.
    cut: bool,
}

enum Delivery {
    Gossip {
        to: usize,
        life: u64,
        via: usize,
        topic: [u8; 32],
        circle: CircleId,
        bytes: Vec<u8>,
    },
    /// A frame for side `side` (0: the opener, 1: the answerer).
    Frame {
        conn: u64,
        side: usize,
        frame: SyncFrame,
    },
    /// Side `side` hears that the connection is gone.
    Closed { conn: u64, side: usize },
    /// A steward's answer reaches a device.
    StewardReply {
        to: usize,
        life: u64,
        session: StewardSession,
        reply: StewardReply,
    },
    /// A device hears its steward session broke.
    StewardBroken {
        to: usize,
        life: u64,
        session: StewardSession,
    },
}

/// How a steward in the world misbehaves, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hostile {
    /// Flips a bit of some items it hands out.
    FlipsBits,
    /// Flips a bit of every item it hands out.
    AltersEvery,
    /// Hands out items it handed out before, again, in place of new ones.
    Replays,
    /// Hands out items of another shelf or locker.
    Mixes,
    /// Hands out nothing new for a while, then all of it.
    Withholds,
}

/// A steward of the world: the real keeper over a crash-testing disk.
pub(crate) struct SimSteward {
    pub(crate) id: DeviceId,
    root: PathBuf,
    fs: Arc<SimFs>,
    pub(crate) keeper: Option<Keeper<FsBlobs<Arc<SimFs>>>>,
    life: u64,
    pub(crate) hostile: Option<Hostile>,
    /// Items it handed out (a replaying or mixing steward uses them).
    seen: Vec<ShelfEntry>,
}

/// A device's stream to a steward.
struct StewardConn {
    steward: usize,
    life: u64,
    dev_life: u64,
    session: roundtable_steward::Session,
    last: u64,
}

pub(crate) struct World {
    rng: ChaCha8Rng,
    pub(crate) now_ms: u64,
    base: Instant,
    t0: Timestamp,
    timing: Timing,
    pub(crate) devs: Vec<Dev>,
    queue: BTreeMap<(u64, u64), Delivery>,
    seq: u64,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    /// Devices cut off from the others, if a partition is on.
    pub(crate) cut: Option<BTreeSet<usize>>,
    /// No device reaches another (only stewards), as when they are never
    /// awake together.
    pub(crate) apart: bool,
    pub(crate) stewards: Vec<SimSteward>,
    steward_conns: BTreeMap<(usize, StewardSession), StewardConn>,
    pub(crate) weather: Weather,
    dir: tempfile::TempDir,
    /// Everything delivered, in order, hashed: two runs of one seed must
    /// end with the same.
    trace: std::hash::DefaultHasher,
}

impl World {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            now_ms: 0,
            base: Instant::now(),
            t0: Timestamp::from_millis(1_780_000_000_000),
            timing: Timing {
                anti_entropy: Duration::from_secs(3),
                max_backoff: Duration::from_secs(8),
                steward_reread: Duration::from_secs(20),
                // Small circles fold too, so folding is played.
                steward_fold_floor: 1024,
            },
            devs: Vec::new(),
            queue: BTreeMap::new(),
            seq: 0,
            conns: BTreeMap::new(),
            next_conn: 0,
            cut: None,
            apart: false,
            stewards: Vec::new(),
            steward_conns: BTreeMap::new(),
            weather: Weather::STORMY,
            dir: tempfile::tempdir().expect("a temporary directory"),
            trace: std::hash::DefaultHasher::new(),
        }
    }

    /// The world's own randomness (what to do next, to whom).
    pub(crate) fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    fn now_of(&self, i: usize) -> Now {
        let skew = self.devs[i].skew_ms;
        Now {
            mono: self.base + Duration::from_millis(self.now_ms),
            wall: self.t0.plus_millis(self.now_ms as i64 + skew),
        }
    }

    /// The wall clock of device `i`, as its person would stamp an edit.
    pub(crate) fn wall(&self, i: usize) -> Timestamp {
        self.now_of(i).wall
    }

    /// Adds a device with a member key of its own (from the seed), up.
    pub(crate) fn add_device(&mut self, name: &str) -> usize {
        let member = MemberKey::from_seed(&self.rng.random());
        self.add_device_of(name, member)
    }

    /// A new device whose home holds `member`'s key (restored from its
    /// recovery key, say), with a device key of its own; started.
    pub(crate) fn add_device_of(&mut self, name: &str, member: MemberKey) -> usize {
        let device = DeviceKey::from_seed(&self.rng.random());
        let i = self.devs.len();
        let root = self.dir.path().join(format!("dev{i}"));
        std::fs::create_dir_all(&root).expect("a device directory");
        let fs = Arc::new(SimFs::new());
        let home = Home::with_fs(&root, fs.clone());
        let lock = home.lock("simulation").expect("the home's lock");
        home.set_identity(&lock, &member, &device)
            .expect("an identity");
        drop(lock);
        let skew_ms = self.rng.random_range(-120_000..=120_000);
        self.devs.push(Dev {
            name: name.to_owned(),
            root,
            fs,
            machine: None,
            rng: ChaCha8Rng::seed_from_u64(self.rng.random()),
            skew_ms,
            life: 0,
            device: device.id(),
            topics: BTreeMap::new(),
            admitted: BTreeSet::new(),
            farewell: BTreeSet::new(),
            neighbours: BTreeMap::new(),
            next_tick: self.now_ms + self.rng.random_range(0..TICK),
            acked: Vec::new(),
            forked: false,
            heard: Vec::new(),
            events: Vec::new(),
            reached: None,
            dialled: 0,
            connected: 0,
        });
        self.start(i);
        i
    }

    /// Starts device `i`'s machine on what its disk holds.
    pub(crate) fn start(&mut self, i: usize) {
        let now = self.now_of(i);
        let dev = &mut self.devs[i];
        assert!(dev.machine.is_none());
        let home = Home::with_fs(&dev.root, dev.fs.clone());
        let lock = home.lock("simulation").expect("the home's lock");
        let machine = Machine::open(home, lock, self.timing, now, &mut dev.rng)
            .expect("the machine opens what its disk holds");
        dev.machine = Some(machine);
        self.carry_out(i);
    }

    /// Device `i` crashes: what was not durable is lost as `crash` says,
    /// and everything in flight to it with it.
    pub(crate) fn crash(&mut self, i: usize) {
        let crash = *CrashState::VARIETY
            .choose(&mut self.rng)
            .expect("crash states");
        let dev = &mut self.devs[i];
        let Some(machine) = dev.machine.take() else {
            return;
        };
        drop(machine);
        dev.fs = Arc::new(dev.fs.crashed_state(crash));
        self.gone(i);
    }

    /// Device `i` stops in good order.
    pub(crate) fn stop(&mut self, i: usize) {
        let Some(mut machine) = self.devs[i].machine.take() else {
            return;
        };
        machine.close();
        self.gone(i);
    }

    fn gone(&mut self, i: usize) {
        self.steward_conns.retain(|(d, _), _| *d != i);
        let dev = &mut self.devs[i];
        dev.life += 1;
        dev.topics.clear();
        dev.admitted.clear();
        dev.farewell.clear();
        dev.neighbours.clear();
        // The peers of its sessions hear nothing more and give up.
        let cut: Vec<(u64, usize)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.opener == i || c.answerer == i)
            .map(|(id, c)| (*id, if c.opener == i { 1 } else { 0 }))
            .collect();
        for (conn, side) in cut {
            self.push(self.now_ms + SILENCE, Delivery::Closed { conn, side });
        }
    }

    /// Devices `a` and `b` can reach each other now.
    pub(crate) fn reachable(&self, a: usize, b: usize) -> bool {
        !self.apart
            && self.devs[a].up()
            && self.devs[b].up()
            && self
                .cut
                .as_ref()
                .is_none_or(|c| c.contains(&a) == c.contains(&b))
    }

    fn push(&mut self, at: u64, d: Delivery) {
        self.seq += 1;
        self.queue.insert((at, self.seq), d);
    }

    fn delay(&mut self) -> u64 {
        let (lo, hi) = self.weather.delay;
        self.rng.random_range(lo..=hi)
    }

    /// Gives device `i`'s machine an input, with the device's time and
    /// randomness, and carries out what it asks. `None` if it is down.
    pub(crate) fn input<T>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Machine, Now, &mut ChaCha8Rng) -> T,
    ) -> Option<T> {
        let now = self.now_of(i);
        let dev = &mut self.devs[i];
        let machine = dev.machine.as_mut()?;
        let out = f(machine, now, &mut dev.rng);
        self.carry_out(i);
        Some(out)
    }

    /// Device `i` gossips `bytes` on the circle's topic, whatever its
    /// machine would say (a rogue's forgeries and replays).
    pub(crate) fn gossip_from(&mut self, i: usize, circle: CircleId, bytes: Vec<u8>) {
        self.output(i, Output::Broadcast { circle, bytes });
    }

    /// Like [`World::gossip_from`], to the devices of `to` only (a rogue
    /// that tells each what it wants them to hear).
    pub(crate) fn gossip_to(&mut self, i: usize, to: &[usize], circle: CircleId, bytes: Vec<u8>) {
        let Some(topic) = self.devs[i].topic(circle) else {
            return;
        };
        for &j in to {
            if j == i || !self.gossip_link(i, j, topic) {
                continue;
            }
            let at = self.now_ms + self.delay();
            let life = self.devs[j].life;
            let bytes = bytes.clone();
            self.push(
                at,
                Delivery::Gossip {
                    to: j,
                    life,
                    via: i,
                    topic,
                    circle,
                    bytes,
                },
            );
        }
    }

    /// How many operations that change its disk device `i` has made.
    pub(crate) fn write_ops(&self, i: usize) -> u64 {
        self.devs[i].fs.write_ops()
    }

    /// A copy of what device `i`'s disk holds now, as a backup takes it.
    pub(crate) fn backup(&self, i: usize) -> SimFs {
        self.devs[i].fs.crashed_state(CrashState::ProcessExit)
    }

    /// Device `i` stops and its disk is replaced by a copy of `backup`:
    /// its person restored it from an older copy. Start it again with
    /// [`World::start`].
    pub(crate) fn restore(&mut self, i: usize, backup: &SimFs) {
        self.stop(i);
        self.devs[i].fs = Arc::new(backup.crashed_state(CrashState::ProcessExit));
    }

    /// Does what device `i`'s machine asked.
    pub(crate) fn carry_out(&mut self, i: usize) {
        loop {
            let Some(machine) = self.devs[i].machine.as_mut() else {
                return;
            };
            let outputs = machine.drain();
            if outputs.is_empty() {
                return;
            }
            for output in outputs {
                self.output(i, output);
            }
        }
    }

    fn output(&mut self, i: usize, output: Output) {
        match output {
            Output::Broadcast { circle, bytes } => {
                let Some(topic) = self.devs[i].topic(circle) else {
                    return;
                };
                for j in 0..self.devs.len() {
                    if j == i || !self.gossip_link(i, j, topic) {
                        continue;
                    }
                    if self.rng.random_bool(self.weather.drop) {
                        continue;
                    }
                    let copies = if self.rng.random_bool(self.weather.dup) {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        let at = self.now_ms + self.delay();
                        let life = self.devs[j].life;
                        self.push(
                            at,
                            Delivery::Gossip {
                                to: j,
                                life,
                                via: i,
                                topic,
                                circle,
                                bytes: bytes.clone(),
                            },
                        );
                    }
                }
            }
            Output::Follow { circle, topic, .. } => {
                self.devs[i].topics.insert(circle, topic);
                self.devs[i].neighbours.remove(&circle);
            }
            Output::Unfollow { circle } => {
                self.devs[i].topics.remove(&circle);
                self.devs[i].neighbours.remove(&circle);
            }
            Output::Admit(devices) => self.devs[i].admitted = devices,
            Output::AdmitFarewell(devices) => self.devs[i].farewell = devices,
            Output::Farewell {
                circle,
                peer,
                request,
            } => self.farewell(i, circle, peer, request),
            Output::Open { session } => self.open(i, session),
            // Gossip's overlay is every reachable follower here.
            Output::JoinPeers { .. } | Output::Meet { .. } => {}
            Output::Event(event) => {
                // Where a peer was reached is kept for the sessions that
                // went through, and only for those.
                if let roundtable_machine::Event::Synced { peer, ok, .. } = &event {
                    let reached = self.devs[i].reached.take();
                    assert_eq!(
                        reached == Some(*peer),
                        *ok,
                        "{}: a session with {} that {} kept where it was reached: {reached:?}",
                        self.devs[i].name,
                        peer.fmt_short(),
                        if *ok { "went through" } else { "failed" },
                    );
                }
                self.devs[i].events.push(event);
            }
            Output::Reached(peer) => self.devs[i].reached = Some(peer),
            Output::StewardOpen {
                session,
                steward,
                requests,
                ..
            } => {
                let Some(k) = self.stewards.iter().position(|s| s.id == steward) else {
                    self.steward_broken(i, session);
                    return;
                };
                if self.stewards[k].keeper.is_none() {
                    self.steward_broken(i, session);
                    return;
                }
                let conn = StewardConn {
                    steward: k,
                    life: self.stewards[k].life,
                    dev_life: self.devs[i].life,
                    session: roundtable_steward::Session::new(*self.devs[i].device.as_bytes()),
                    last: self.now_ms,
                };
                self.steward_conns.insert((i, session), conn);
                self.ask_steward(i, session, requests);
            }
            Output::StewardSend { session, requests } => self.ask_steward(i, session, requests),
            Output::StewardClose { session } => {
                self.steward_conns.remove(&(i, session));
            }
        }
    }

    /// Adds a steward to the world, up; returns its index.
    pub(crate) fn add_steward(&mut self, hostile: Option<Hostile>) -> usize {
        let key = DeviceKey::from_seed(&self.rng.random());
        let k = self.stewards.len();
        let root = self.dir.path().join(format!("steward{k}"));
        let mut st = SimSteward {
            id: key.id(),
            root,
            fs: Arc::new(SimFs::new()),
            keeper: None,
            life: 0,
            hostile,
            seen: Vec::new(),
        };
        st.keeper = Some(open_keeper(&st));
        self.stewards.push(st);
        k
    }

    /// Steward `k` crashes (what was not durable is lost as the crash
    /// says) and comes back at once on what its disk holds.
    pub(crate) fn crash_steward(&mut self, k: usize) {
        let crash = *CrashState::VARIETY
            .choose(&mut self.rng)
            .expect("crash states");
        let disk = self.stewards[k].fs.crashed_state(crash);
        self.steward_on(k, disk);
    }

    /// A copy of what steward `k`'s disk holds now.
    pub(crate) fn steward_backup(&self, k: usize) -> SimFs {
        self.stewards[k].fs.crashed_state(CrashState::ProcessExit)
    }

    /// Steward `k`'s operator restores its disk from an older copy.
    pub(crate) fn restore_steward(&mut self, k: usize, backup: &SimFs) {
        self.steward_on(k, backup.crashed_state(CrashState::ProcessExit));
    }

    /// Steward `k` starts again on `disk`; its streams are cut.
    fn steward_on(&mut self, k: usize, disk: SimFs) {
        let st = &mut self.stewards[k];
        st.keeper = None;
        st.fs = Arc::new(disk);
        st.life += 1;
        st.keeper = Some(open_keeper(st));
        let cut: Vec<(usize, StewardSession)> = self
            .steward_conns
            .iter()
            .filter(|(_, c)| c.steward == k)
            .map(|(key, _)| *key)
            .collect();
        for (i, session) in cut {
            self.steward_conns.remove(&(i, session));
            self.steward_broken(i, session);
        }
    }

    fn steward_broken(&mut self, i: usize, session: StewardSession) {
        let life = self.devs[i].life;
        self.push(
            self.now_ms + SILENCE,
            Delivery::StewardBroken {
                to: i,
                life,
                session,
            },
        );
    }

    /// Device `i`'s requests reach its steward, which answers each (and
    /// tells the shelf's other watchers what was put).
    fn ask_steward(&mut self, i: usize, session: StewardSession, requests: Vec<StewardRequest>) {
        for request in requests {
            let Some(conn) = self.steward_conns.get_mut(&(i, session)) else {
                return;
            };
            let k = conn.steward;
            let st = &mut self.stewards[k];
            if st.life != conn.life || st.keeper.is_none() {
                self.steward_conns.remove(&(i, session));
                self.steward_broken(i, session);
                return;
            }
            let now_ms = self.t0.as_millis() + self.now_ms as i64;
            let handled = st
                .keeper
                .as_ref()
                .expect("up")
                .handle(&mut conn.session, request, now_ms)
                .expect("the simulated disk does not fail");
            let mut reply = handled.reply;
            if let Some(h) = st.hostile {
                reply = misbehave(h, reply, &mut st.seen, &mut self.rng);
            }
            self.steward_to(i, session, reply);
            if let Some((shelf, by, entry)) = handled.arrived {
                let watchers: Vec<(usize, StewardSession)> = self
                    .steward_conns
                    .iter()
                    .filter(|((d, _), c)| {
                        c.steward == k
                            && *d != i
                            && c.session.watching()
                            && c.session.shelf() == Some(shelf)
                            && c.session.device() != by
                    })
                    .map(|(key, _)| *key)
                    .collect();
                for (j, s) in watchers {
                    self.steward_to(j, s, StewardReply::Arrived(entry.clone()));
                }
            }
        }
    }

    /// Sends a steward's answer to device `i`, after those before it.
    fn steward_to(&mut self, i: usize, session: StewardSession, reply: StewardReply) {
        let delay = self.delay();
        let Some(conn) = self.steward_conns.get_mut(&(i, session)) else {
            return;
        };
        let at = (self.now_ms + delay).max(conn.last);
        conn.last = at;
        let life = conn.dev_life;
        self.push(
            at,
            Delivery::StewardReply {
                to: i,
                life,
                session,
                reply,
            },
        );
    }

    /// Whether gossip from `i` reaches `j` on `topic`: both follow it, each
    /// admits the other, and they can reach each other.
    fn gossip_link(&self, i: usize, j: usize, topic: [u8; 32]) -> bool {
        let (a, b) = (&self.devs[i], &self.devs[j]);
        self.reachable(i, j)
            && b.topics.values().any(|t| *t == topic)
            && a.admitted.contains(&b.device)
            && b.admitted.contains(&a.device)
    }

    fn index_of(&self, device: DeviceId) -> Option<usize> {
        self.devs.iter().position(|d| d.device == device)
    }

    fn open(&mut self, i: usize, session: SessionId) {
        self.devs[i].dialled += 1;
        let id = self.next_conn;
        self.next_conn += 1;
        let answerer = self.index_of(session.peer);
        let conn = Conn {
            opener: i,
            answerer: answerer.unwrap_or(usize::MAX),
            lives: (self.devs[i].life, answerer.map_or(0, |j| self.devs[j].life)),
            sessions: [Some(session), None],
            done: [false, false],
            last: [self.now_ms; 2],
            cut: false,
        };
        self.conns.insert(id, conn);
        let Some(j) = answerer.filter(|j| self.reachable(i, *j)) else {
            // Nobody answers: the dial times out.
            self.push(
                self.now_ms + SILENCE,
                Delivery::Closed { conn: id, side: 0 },
            );
            return;
        };
        if !self.devs[j].admitted.contains(&self.devs[i].device) {
            // The endpoint closes the connection as not admitted.
            let at = self.now_ms + self.delay();
            self.conns.get_mut(&id).expect("just made").done[1] = true;
            self.refuse(id, at);
            return;
        }
        // Connected: the opener works out its first frames now.
        self.devs[i].connected += 1;
        let Some(machine) = self.devs[i].machine.as_mut() else {
            return;
        };
        let first = machine.connected(session);
        self.step(id, 0, first);
    }

    /// Device `i` asks `peer` for its farewell: answered at once where the
    /// peer is up, reachable and lets it ask (else it hears nothing came).
    fn farewell(
        &mut self,
        i: usize,
        circle: CircleId,
        peer: DeviceId,
        request: roundtable_core::wire::FarewellRequest,
    ) {
        let me = self.devs[i].device;
        let reply = self
            .index_of(peer)
            .filter(|j| self.reachable(i, *j) && self.devs[*j].farewell.contains(&me))
            .and_then(|j| {
                let now = self.now_of(j);
                let machine = self.devs[j].machine.as_mut()?;
                let reply = machine.serve_farewell(me, request, now);
                self.carry_out(j);
                Some(reply)
            });
        let now = self.now_of(i);
        let dev = &mut self.devs[i];
        if let Some(machine) = dev.machine.as_mut() {
            machine.farewell_reply(circle, peer, reply, now, &mut dev.rng);
        }
    }

    /// The opener hears its connection was closed as not admitted.
    fn refuse(&mut self, conn: u64, at: u64) {
        // Marked by side 2: a refusal, told to the opener.
        self.push(at, Delivery::Closed { conn, side: 2 });
    }

    /// Sends `frame` to side `to` of a connection, after the frames before it.
    fn send(&mut self, conn: u64, to: usize, frame: SyncFrame) {
        let delay = self.delay();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let at = (self.now_ms + delay).max(c.last[to]);
        c.last[to] = at;
        self.push(
            at,
            Delivery::Frame {
                conn,
                side: to,
                frame,
            },
        );
    }

    /// Side `side` of a connection is done with it: the other side hears so
    /// after the frames already on their way.
    fn finish(&mut self, conn: u64, side: usize) {
        let other = 1 - side;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.done[side] = true;
        if c.done[other] {
            self.conns.remove(&conn);
            return;
        }
        if c.cut {
            return;
        }
        let at = c.last[other].max(self.now_ms) + 1;
        c.last[other] = at;
        self.push(at, Delivery::Closed { conn, side: other });
    }

    /// The connection still links the lives it was opened between, and
    /// nothing cuts it.
    fn intact(&self, c: &Conn) -> bool {
        c.answerer != usize::MAX
            && self.devs[c.opener].life == c.lives.0
            && self.devs[c.answerer].life == c.lives.1
            && self.reachable(c.opener, c.answerer)
    }

    /// What the run delivered, in order, as one number.
    pub(crate) fn fingerprint(&self) -> u64 {
        use std::hash::Hasher;
        self.trace.finish()
    }

    fn deliver(&mut self, d: Delivery) {
        use std::hash::Hash;
        self.now_ms.hash(&mut self.trace);
        match &d {
            Delivery::Gossip { to, bytes, .. } => (0u8, *to, bytes.len()).hash(&mut self.trace),
            Delivery::Frame { conn, side, frame } => {
                (1u8, *conn, *side, roundtable_core::wire::encode(frame)).hash(&mut self.trace)
            }
            Delivery::Closed { conn, side } => (2u8, *conn, *side).hash(&mut self.trace),
            Delivery::StewardReply { to, reply, .. } => {
                (3u8, *to, roundtable_core::wire::encode(reply)).hash(&mut self.trace)
            }
            Delivery::StewardBroken { to, .. } => (4u8, *to).hash(&mut self.trace),
        }
        match d {
            Delivery::Gossip {
                to,
                life,
                via,
                topic,
                circle,
                bytes,
            } => {
                if self.devs[to].life != life || !self.gossip_link(via, to, topic) {
                    return;
                }
                let now = self.now_of(to);
                let dev = &mut self.devs[to];
                dev.heard.push((circle, bytes.clone()));
                let from = self.devs[via].device;
                let dev = &mut self.devs[to];
                let machine = dev.machine.as_mut().expect("reachable means up");
                machine.gossip(circle, &bytes, from, now, &mut dev.rng);
                self.carry_out(to);
            }
            Delivery::Frame { conn, side, frame } => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                if c.done[side] {
                    return;
                }
                if !self.intact(c) {
                    self.cut_conn(conn);
                    return;
                }
                let (me, peer) = if side == 0 {
                    (c.opener, c.answerer)
                } else {
                    (c.answerer, c.opener)
                };
                let peer = self.devs[peer].device;
                let session = c.sessions[side];
                let now = self.now_of(me);
                let dev = &mut self.devs[me];
                let machine = dev.machine.as_mut().expect("intact means up");
                let step = match session {
                    Some(session) => machine.frame(session, frame, now, &mut dev.rng),
                    None => {
                        let (session, step) = machine.answer(peer, frame, now);
                        self.conns.get_mut(&conn).expect("present").sessions[1] = session;
                        step
                    }
                };
                self.carry_out(me);
                self.step(conn, side, step);
            }
            d @ (Delivery::StewardReply { .. } | Delivery::StewardBroken { .. }) => {
                self.deliver_steward(d)
            }
            Delivery::Closed { conn, side } => {
                // Side 2: the opener, closed out as not admitted.
                let (side, refused) = if side == 2 { (0, true) } else { (side, false) };
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if c.done[side] {
                    return;
                }
                c.done[side] = true;
                let both = c.done == [true, true];
                let (me, life) = if side == 0 {
                    (c.opener, c.lives.0)
                } else {
                    (c.answerer, c.lives.1)
                };
                let session = c.sessions[side];
                if both {
                    self.conns.remove(&conn);
                }
                if me == usize::MAX || self.devs[me].life != life {
                    return;
                }
                let now = self.now_of(me);
                let dev = &mut self.devs[me];
                if let (Some(machine), Some(session)) = (dev.machine.as_mut(), session) {
                    machine.broken(session, refused, now, &mut dev.rng);
                    self.carry_out(me);
                }
            }
        }
    }

    fn deliver_steward(&mut self, d: Delivery) {
        match d {
            Delivery::StewardReply {
                to,
                life,
                session,
                reply,
            } => {
                if self.devs[to].life != life || !self.devs[to].up() {
                    return;
                }
                let Some(next) =
                    self.input(to, |m, now, rng| m.steward_reply(session, reply, now, rng))
                else {
                    return;
                };
                if !next.is_empty() {
                    self.ask_steward(to, session, next);
                }
            }
            Delivery::StewardBroken { to, life, session } => {
                if self.devs[to].life != life {
                    return;
                }
                self.steward_conns.remove(&(to, session));
                self.input(to, |m, now, _| {
                    m.steward_broken(session, "the steward went silent".into(), now)
                });
            }
            _ => unreachable!("only steward deliveries"),
        }
    }

    /// Sends what a session's step says, and closes its side when it is over.
    fn step(&mut self, conn: u64, side: usize, step: Step) {
        for frame in step.send {
            self.send(conn, 1 - side, frame);
        }
        if step.end.is_some() {
            self.finish(conn, side);
        }
    }

    /// A connection broke: each side still in it hears so after a while.
    fn cut_conn(&mut self, conn: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if std::mem::replace(&mut c.cut, true) {
            return;
        }
        let pending: Vec<usize> = (0..2).filter(|s| !c.done[*s]).collect();
        for side in pending {
            self.push(self.now_ms + SILENCE, Delivery::Closed { conn, side });
        }
    }

    /// Fires the timers due at this instant, and tells each machine which
    /// neighbours came and went.
    fn tick(&mut self, i: usize) {
        let now = self.now_of(i);
        let circles: Vec<(CircleId, [u8; 32])> =
            self.devs[i].topics.iter().map(|(c, t)| (*c, *t)).collect();
        for (circle, topic) in circles {
            let now_set: BTreeSet<usize> = (0..self.devs.len())
                .filter(|j| *j != i && self.gossip_link(i, *j, topic))
                .collect();
            let before = self.devs[i]
                .neighbours
                .get(&circle)
                .cloned()
                .unwrap_or_default();
            for j in now_set.difference(&before) {
                let peer = self.devs[*j].device;
                self.input(i, |m, now, rng| m.neighbour_up(circle, peer, now, rng));
            }
            for j in before.difference(&now_set) {
                let peer = self.devs[*j].device;
                self.input(i, |m, now, _| m.neighbour_down(circle, peer, now));
            }
            self.devs[i].neighbours.insert(circle, now_set);
            self.carry_out(i);
        }
        let dev = &mut self.devs[i];
        if let Some(machine) = dev.machine.as_mut() {
            machine.tick(now, &mut dev.rng);
        }
        self.carry_out(i);
    }

    /// Runs the world for `ms` of virtual time.
    pub(crate) fn run_for(&mut self, ms: u64) {
        let until = self.now_ms + ms;
        loop {
            let next_delivery = self.queue.keys().next().map(|(t, _)| *t);
            let next_tick = self
                .devs
                .iter()
                .enumerate()
                .filter(|(_, d)| d.up())
                .map(|(i, d)| (d.next_tick, i))
                .min();
            let tick_first = match (next_tick, next_delivery) {
                (Some((t, _)), Some(d)) => t <= d,
                (Some(_), None) => true,
                (None, _) => false,
            };
            let at = if tick_first {
                next_tick.map(|(t, _)| t)
            } else {
                next_delivery
            };
            let Some(at) = at.filter(|t| *t <= until) else {
                self.now_ms = until;
                return;
            };
            self.now_ms = self.now_ms.max(at);
            if tick_first {
                let (_, i) = next_tick.expect("a tick is due");
                self.devs[i].next_tick = at + TICK;
                self.tick(i);
            } else {
                let key = *self.queue.keys().next().expect("a delivery is due");
                let d = self.queue.remove(&key).expect("present");
                self.deliver(d);
            }
        }
    }
}

fn open_keeper(st: &SimSteward) -> Keeper<FsBlobs<Arc<SimFs>>> {
    let blobs =
        FsBlobs::open(st.fs.clone(), st.root.join("blobs")).expect("the simulated disk opens");
    Keeper::open(blobs, *st.id.as_bytes(), Limits::default()).expect("the keeper reads its disk")
}

/// What a hostile steward makes of an honest answer.
fn misbehave(
    how: Hostile,
    reply: StewardReply,
    seen: &mut Vec<ShelfEntry>,
    rng: &mut ChaCha8Rng,
) -> StewardReply {
    let StewardReply::Items {
        mut items,
        upto,
        more,
    } = reply
    else {
        return reply;
    };
    match how {
        Hostile::FlipsBits | Hostile::AltersEvery => {
            let odds = if how == Hostile::AltersEvery {
                1.0
            } else {
                0.5
            };
            for item in &mut items {
                if !item.bytes.is_empty() && rng.random_bool(odds) {
                    let at = rng.random_range(0..item.bytes.len());
                    item.bytes[at] ^= 1 << rng.random_range(0..8);
                }
            }
        }
        Hostile::Replays if !seen.is_empty() => {
            for item in &mut items {
                if rng.random_bool(0.3) {
                    let old = seen.choose(rng).expect("not empty").clone();
                    *item = ShelfEntry {
                        seq: item.seq,
                        ..old
                    };
                }
            }
        }
        Hostile::Mixes if !seen.is_empty() => {
            let other = seen.choose(rng).expect("not empty").clone();
            items.push(ShelfEntry { seq: upto, ..other });
        }
        Hostile::Withholds if rng.random_bool(0.5) => {
            return StewardReply::Items {
                items: Vec::new(),
                upto: items.first().map_or(upto, |i| i.seq.saturating_sub(1)),
                more,
            };
        }
        _ => {}
    }
    seen.extend(items.iter().cloned());
    if seen.len() > 64 {
        seen.drain(..seen.len() - 64);
    }
    StewardReply::Items { items, upto, more }
}
