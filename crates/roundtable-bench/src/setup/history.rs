//! Circles of realistic history: a cast of twenty, years of check-ins,
//! replies, moments, asks and offers, gatherings; homes holding them as a
//! device keeps them; edits made offline through the store.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use automerge::ReadDoc;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use roundtable_core::{
    Answer, Circle, CircleId, DeviceKey, EntityId, EpochKey, Keyring, MemberKey, Mood, Op, Profile,
    Timestamp, view::RequestKind,
};
use roundtable_store::Home;

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
                hands: 1,
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
                    one_of_each: false,
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
