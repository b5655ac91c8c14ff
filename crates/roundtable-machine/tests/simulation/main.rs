//! The node's state machines, the code that ships, simulated by seed: many
//! writers, joins and pairings, removals by consent and revocations with
//! key rotation, partitions, crashes that lose what was not durable, a
//! device away for thousands of edits, a member who misbehaves, a stolen
//! phone letting an accomplice in as it is revoked, and a member coming
//! back from their recovery key on a new device. Every
//! seed must end converged: on every device still in, the same document
//! (the same heads and canonical JSON), the same epoch, members and key;
//! no acknowledged edit lost; nobody out holding the key.
//!
//! `SIM_SEEDS=N` runs N seeds from each test's first; a failing seed says
//! how to replay it alone (`SIM_SEED=s`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod flood;
mod stewards;
mod world;

use std::collections::BTreeSet;
use std::ops::Range;

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc, Value};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use roundtable_core::double_ups::{self, DoubleUp};
use roundtable_core::keys::seal;
use roundtable_core::membership::needed;
use roundtable_core::wire::Body;
use roundtable_core::{
    ChangeHash, Circle, CircleId, DeviceId, HeadBook, InviteKind, MemberId, Mood, Op,
    ProposalState, RequestKind, SignedHead, Timestamp,
};
use roundtable_machine::{Terms, Ticketed, Welcome, join_request};
use world::{Acked, Weather, World};

fn env(key: &str) -> Option<u64> {
    std::env::var(key).ok().and_then(|s| s.parse().ok())
}

/// Runs `scenario` for every seed of `seeds` (or those the environment
/// names). A failing seed prints the command that replays it.
fn run_seeds(test: &str, seeds: Range<u64>, scenario: fn(u64)) {
    let seeds = match (env("SIM_SEED"), env("SIM_SEEDS")) {
        (Some(seed), count) => seed..seed + count.unwrap_or(1),
        (None, Some(count)) => seeds.start..seeds.start + count,
        (None, None) => seeds,
    };
    for seed in seeds {
        if let Err(e) = std::panic::catch_unwind(|| scenario(seed)) {
            eprintln!(
                "\nseed {seed} failed. Replay it alone with:\n  \
                 SIM_SEED={seed} cargo test -p roundtable-machine --test simulation {test} -- --exact --nocapture\n"
            );
            std::panic::resume_unwind(e);
        }
    }
}

const DAY: i64 = 86_400_000;

/// Device `joiner` redeems a ticket device `inviter` made, the way a join
/// does: the request over one connection, the welcome checked and kept.
/// Nothing happens when the two cannot reach each other.
fn join(w: &mut World, inviter: usize, joiner: usize, circle: CircleId, kind: InviteKind) -> bool {
    if !w.reachable(inviter, joiner) {
        return false;
    }
    let at = w.wall(inviter);
    let terms = Terms {
        kind,
        expires_at: at.plus_millis(DAY),
        uses: 1,
    };
    let Some(Ok((invite, secret))) =
        w.input(inviter, |m, now, rng| m.invite(circle, terms, at, now, rng))
    else {
        return false;
    };
    let name = w.devs[joiner].name.clone();
    let request = join_request(
        w.devs[joiner].machine().identity(),
        circle,
        invite,
        &secret,
        Some(&name),
    );
    let peer = w.devs[joiner].device;
    let reply = w
        .input(inviter, |m, now, rng| m.serve_join(request, peer, now, rng))
        .expect("up");
    let Ok(welcome) = Welcome::from_reply(reply) else {
        return false;
    };
    let ticket = Ticketed {
        circle,
        invite,
        kind,
        inviter: w.devs[inviter].device,
    };
    w.input(joiner, |m, now, rng| m.welcome(welcome, &ticket, now, rng))
        .is_some_and(|kept| kept.is_ok())
}

/// A first device, "m0", starts a circle.
fn found(w: &mut World) -> (usize, CircleId) {
    let founder = w.add_device("m0");
    let at = w.wall(founder);
    let circle = w
        .input(founder, |m, now, rng| {
            m.create("Sim", "", "m0", at, now, rng)
        })
        .expect("up")
        .expect("a circle is made");
    (founder, circle)
}

/// Devices that are up and admitted to the circle by their own copy.
fn insiders(w: &mut World, circle: CircleId) -> Vec<usize> {
    (0..w.devs.len())
        .filter(|i| {
            let device = w.devs[*i].device;
            w.devs[*i]
                .machine
                .as_mut()
                .and_then(|m| m.read(circle).ok())
                .is_some_and(|r| r.membership.admitted.contains(&device))
        })
        .collect()
}

fn pick(w: &mut World, from: &[usize]) -> Option<usize> {
    from.choose(w.rng()).copied()
}

/// Device `i` does `op`; an acknowledged edit is remembered, to be found
/// durable and everywhere at the end.
fn perform(w: &mut World, i: usize, circle: CircleId, op: Op) -> bool {
    let at = w.wall(i);
    let done = w.input(i, |m, now, rng| m.perform(circle, &op, at, now, rng));
    if let Some(Ok(_)) = done {
        let heads = w.devs[i].machine().circle(circle).unwrap().heads();
        let words = match &op {
            Op::Checkin { note, .. } => Some(note.clone()),
            Op::Moment { text } => Some(text.clone()),
            _ => None,
        };
        if !w.devs[i].forked {
            w.devs[i].acked.push(Acked {
                circle,
                heads,
                words,
            });
        }
        return true;
    }
    false
}

/// Someone writes something.
fn write(w: &mut World, circle: CircleId, step: usize) {
    let ins = insiders(w, circle);
    let Some(i) = pick(w, &ins) else { return };
    let op = match w.rng().random_range(0..5) {
        0 => Op::Checkin {
            mood: Mood::Okay,
            note: format!("step {step}"),
        },
        1 => Op::Moment {
            text: format!("a moment at step {step}"),
        },
        2 => Op::Profile {
            name: None,
            pronouns: None,
            remember: Some(format!("as of step {step}")),
            story: None,
        },
        // Asks, taken up by whoever is about, apart as often as not: the
        // double-ups of a partitioned circle.
        3 => {
            let view = w.devs[i].machine().read(circle).unwrap().view;
            let open: Vec<_> = view
                .requests
                .iter()
                .filter(|(_, r)| r.done.is_none())
                .map(|(id, _)| *id)
                .collect();
            match open.choose(w.rng()) {
                Some(to) if w.rng().random_bool(0.8) => Op::Commit {
                    to: *to,
                    text: format!("I'll go (step {step})"),
                },
                _ => Op::Request {
                    kind: RequestKind::Ask,
                    text: format!("a lift at step {step}"),
                    when: String::new(),
                    hands: 1,
                },
            }
        }
        _ => {
            settle_one(w, i, circle);
            return;
        }
    };
    perform(w, i, circle, op);
}

/// The double-ups device `i`'s copy finds.
fn double_ups_of(w: &mut World, i: usize, circle: CircleId) -> Vec<DoubleUp> {
    let view = w.devs[i].machine().read(circle).unwrap().view;
    double_ups::find(&view, Timestamp::from_millis(0))
}

/// Device `i`'s person settles a double-up that concerns them, if any, by
/// its first choice; whether they did.
fn settle_one(w: &mut World, i: usize, circle: CircleId) -> bool {
    let me = w.devs[i].machine().identity().member.id();
    let at = w.wall(i);
    let choice = double_ups_of(w, i, circle).iter().find_map(|d| {
        d.choices(me, at, &jiff::tz::TimeZone::UTC)
            .into_iter()
            .next()
    });
    match choice {
        Some(c) => perform(w, i, circle, c.op),
        None => false,
    }
}

/// Every device still in settles what concerns its person, round after
/// round, the circle converging between: then none of them finds a
/// double-up it could settle, and all find the same ones.
fn settle_double_ups(w: &mut World, circle: CircleId) {
    for _ in 0..4 {
        let Some((live, _)) = still_in(w, circle) else {
            return;
        };
        for &i in &live {
            for _ in 0..8 {
                if !settle_one(w, i, circle) {
                    break;
                }
            }
        }
        settle(w, circle);
    }
    let Some((live, _)) = still_in(w, circle) else {
        return;
    };
    for &i in &live {
        let me = w.devs[i].machine().identity().member.id();
        let at = w.wall(i);
        let left: Vec<String> = double_ups_of(w, i, circle)
            .iter()
            .filter(|d| !d.choices(me, at, &jiff::tz::TimeZone::UTC).is_empty())
            .map(|d| d.id.clone())
            .collect();
        assert!(
            left.is_empty(),
            "{} could still settle {left:?} after everyone settled and met",
            w.devs[i].name
        );
    }
}

/// Someone proposes a removal, consents to one, or withdraws their own.
fn govern(w: &mut World, circle: CircleId) {
    let ins = insiders(w, circle);
    let Some(i) = pick(w, &ins) else { return };
    let me = w.devs[i].machine().identity().member.id();
    let reading = w.devs[i].machine().read(circle).unwrap();
    let m = &reading.membership;
    let open: Vec<_> = m
        .proposals
        .values()
        .filter(|p| p.state == ProposalState::Open)
        .cloned()
        .collect();
    let others: Vec<MemberId> = m.members.iter().filter(|x| **x != me).copied().collect();
    let op = match w.rng().random_range(0..4) {
        0 => others.choose(w.rng()).map(|target| Op::ProposeRemoval {
            target: *target,
            reason: "simulated".into(),
        }),
        1 | 2 => open.choose(w.rng()).map(|p| Op::Consent { proposal: p.id }),
        _ => open
            .iter()
            .find(|p| p.by == me)
            .map(|p| Op::Withdraw { proposal: p.id }),
    };
    if let Some(op) = op {
        perform(w, i, circle, op);
    }
}

/// A member revokes another of their devices.
fn revoke(w: &mut World, circle: CircleId) {
    let ins = insiders(w, circle);
    let Some(i) = pick(w, &ins) else { return };
    let me = w.devs[i].machine().identity().member.id();
    let mine = w.devs[i].device;
    let reading = w.devs[i].machine().read(circle).unwrap();
    let other = reading.view.members.get(&me).and_then(|rec| {
        rec.devices
            .keys()
            .find(|d| **d != mine && reading.membership.admitted.contains(d))
            .copied()
    });
    if let Some(device) = other {
        perform(w, i, circle, Op::RevokeDevice { device });
    }
}

/// Starts device `i` again, and finds every edit it acknowledged still
/// there.
fn restart(w: &mut World, i: usize) {
    w.start(i);
    let acked = w.devs[i].acked.clone();
    let lenient = forks(w);
    let machine = w.devs[i].machine();
    for a in acked {
        let doc = machine
            .circle(a.circle)
            .unwrap_or_else(|e| panic!("a circle did not open again: {e}"));
        let json = lenient.then(|| doc.canonical_json());
        assert!(
            holds(doc, json.as_deref(), &a),
            "an acknowledged edit was lost in a crash"
        );
    }
}

/// Whether some device of the world signed two changes under one number.
fn forks(w: &World) -> bool {
    w.devs.iter().any(|d| d.forked)
}

/// Whether `doc` holds an acknowledged edit: its changes, or, where a
/// device forked (`json` is then the circle's canonical JSON), its words.
/// What an honest device wrote on top of a change the circle dropped is
/// written again, as new changes with the same words.
fn holds(doc: &Circle, json: Option<&str>, a: &Acked) -> bool {
    a.heads.iter().all(|h| doc.has_change(h))
        || json
            .zip(a.words.as_ref())
            .is_some_and(|(json, words)| json.contains(&format!("\"{words}\"")))
}

/// The devices still in: those that what they hold between them admits.
/// A device that departed without hearing of it still thinks itself in;
/// so the answer is a fixed point. It is taken among the largest group of
/// devices that can still reach one another (each admits the other): a
/// device let in only by one whose revocation it never heard of, say, can
/// reach nobody else, and nobody else knows it was let in.
fn still_in(w: &mut World, circle: CircleId) -> Option<(Vec<usize>, Circle)> {
    let admitted: Vec<Option<BTreeSet<DeviceId>>> = (0..w.devs.len())
        .map(|i| {
            let m = w.devs[i].machine.as_mut()?;
            m.circle(circle).ok()?;
            Some(m.read(circle).ok()?.membership.admitted.clone())
        })
        .collect();
    let links = |i: usize, j: usize| {
        let (Some(a), Some(b)) = (&admitted[i], &admitted[j]) else {
            return false;
        };
        a.contains(&w.devs[j].device) && b.contains(&w.devs[i].device)
    };
    let mut serving: Vec<usize> = Vec::new();
    let mut seen = BTreeSet::new();
    for start in (0..w.devs.len()).filter(|i| admitted[*i].is_some()) {
        if !seen.insert(start) {
            continue;
        }
        let mut group = vec![start];
        let mut k = 0;
        while k < group.len() {
            let i = group[k];
            for j in 0..w.devs.len() {
                if !seen.contains(&j) && links(i, j) {
                    seen.insert(j);
                    group.push(j);
                }
            }
            k += 1;
        }
        if group.len() > serving.len() {
            serving = group;
        }
    }
    let mut live: BTreeSet<DeviceId> = serving.iter().map(|i| w.devs[*i].device).collect();
    loop {
        let holders: Vec<usize> = serving
            .iter()
            .copied()
            .filter(|i| live.contains(&w.devs[*i].device))
            .collect();
        let first = holders.first()?;
        // From what each holds durably-readable, without anything Automerge
        // keeps waiting for missing dependencies.
        let mut all =
            Circle::load(&w.devs[*first].machine().circle(circle).unwrap().save()).unwrap();
        let mut book = HeadBook::new();
        for i in &holders {
            let heads: Vec<SignedHead> = w.devs[*i].machine().signed_heads(circle).unwrap();
            book.learn(circle, &heads);
        }
        for i in &holders {
            let save = w.devs[*i].machine().circle(circle).unwrap().save();
            if let Err(e) = all.apply_verified(&save, &mut book) {
                panic!(
                    "{}'s copy does not merge with the others: {e}",
                    w.devs[*i].name
                );
            }
        }
        let admitted = all.membership().admitted;
        let next: BTreeSet<DeviceId> = live.intersection(&admitted).copied().collect();
        if next == live {
            let live = holders
                .into_iter()
                .filter(|i| admitted.contains(&w.devs[*i].device))
                .collect();
            return Some((live, all));
        }
        live = next;
    }
}

/// Whether every device still in agrees, and nobody out holds the key.
fn converged(w: &mut World, circle: CircleId) -> Result<(), String> {
    let Some((live, _)) = still_in(w, circle) else {
        // Everyone removed everyone else at once: legal, if sad.
        return Ok(());
    };
    let Some(&first) = live.first() else {
        return Ok(());
    };
    let topic = w.devs[first].topic(circle);
    let (heads, json, membership, epoch, ups) = {
        let m = w.devs[first].machine();
        let doc = m.circle(circle).unwrap();
        let ups: Vec<String> = double_ups::find(&doc.view(), Timestamp::from_millis(0))
            .into_iter()
            .map(|d| d.id)
            .collect();
        (
            doc.heads(),
            doc.canonical_json(),
            doc.membership(),
            m.epoch(circle).unwrap(),
            ups,
        )
    };
    for &i in &live {
        let name = w.devs[i].name.clone();
        let t = w.devs[i].topic(circle);
        let m = w.devs[i].machine();
        let doc = m.circle(circle).unwrap();
        if doc.heads() != heads {
            return Err(format!("{name} holds other changes"));
        }
        if doc.canonical_json() != json {
            return Err(format!("{name} reads the circle otherwise"));
        }
        let found: Vec<String> = double_ups::find(&doc.view(), Timestamp::from_millis(0))
            .into_iter()
            .map(|d| d.id)
            .collect();
        if found != ups {
            return Err(format!(
                "{name} finds other double-ups: {found:?}, not {ups:?}"
            ));
        }
        let mine = doc.membership();
        if mine.epoch != membership.epoch || mine.members != membership.members {
            return Err(format!("{name} sees other members or another epoch"));
        }
        if m.epoch(circle).unwrap() != epoch || epoch != membership.epoch {
            return Err(format!(
                "{name}'s key is of epoch {}, the circle's is {}",
                m.epoch(circle).unwrap(),
                membership.epoch
            ));
        }
        if t != topic || t.is_none() {
            return Err(format!("{name} follows another topic (holds another key)"));
        }
    }
    // Every acknowledged edit of a device still in reached everyone.
    let lenient = forks(w);
    for &j in &live {
        let doc = w.devs[j].machine().circle(circle).unwrap().clone();
        let json = lenient.then(|| doc.canonical_json());
        for &i in &live {
            let acked = w.devs[i].acked.clone();
            for a in acked.iter().filter(|a| a.circle == circle) {
                if !holds(&doc, json.as_deref(), a) {
                    return Err(format!(
                        "{} lacks an edit acknowledged by {} ({:?})",
                        w.devs[j].name, w.devs[i].name, a.words
                    ));
                }
            }
        }
    }
    // Nobody who is out follows the topic of the key everyone in holds.
    for i in 0..w.devs.len() {
        if !live.contains(&i) && w.devs[i].up() && w.devs[i].topic(circle) == topic {
            return Err(format!(
                "{} is out but holds the current key",
                w.devs[i].name
            ));
        }
    }
    // No removal carried by fewer than the rule asks.
    for p in membership.proposals.values() {
        if p.state == ProposalState::Carried {
            assert!(p.consents.len() >= 2, "carried by one person");
            assert!(p.consents.len() >= needed(p.electorate.len()));
            assert!(p.consents.is_subset(&p.electorate));
            assert!(!p.electorate.contains(&p.target));
        }
    }
    Ok(())
}

/// The network heals and every device comes back; the circle must settle.
fn settle(w: &mut World, circle: CircleId) {
    w.cut = None;
    w.weather = Weather::CALM;
    for i in 0..w.devs.len() {
        if !w.devs[i].up() {
            restart(w, i);
        }
    }
    let mut last = String::new();
    for _ in 0..150 {
        w.run_for(2_000);
        match converged(w, circle) {
            Ok(()) => return,
            Err(why) => last = why,
        }
    }
    let live = still_in(w, circle).map(|(l, _)| l).unwrap_or_default();
    for (i, d) in w.devs.iter_mut().enumerate() {
        let name = format!(
            "{} {}{}",
            d.name,
            d.device.fmt_short(),
            if live.contains(&i) { " (in)" } else { "" }
        );
        if let Some(m) = d.machine.as_mut()
            && let Ok(r) = m.read(circle)
        {
            eprintln!(
                "{name}: {} changes, epoch {} (key {}), admitted {:?}",
                m.circle(circle).unwrap().heads().len(),
                r.membership.epoch,
                m.epoch(circle).unwrap(),
                r.membership
                    .admitted
                    .iter()
                    .map(|d| d.fmt_short())
                    .collect::<Vec<_>>()
            );
            let status = m.status();
            eprintln!(
                "  since its last start: dropped {:?}, refused {:?}",
                status.dropped, status.refused
            );
        }
    }
    panic!("did not settle in 300 s of a calm network: {last}");
}

/// A circle's life: members join, one pairs a second device, and then
/// people write, propose removals and consent, revoke devices, while the
/// network partitions and devices crash and come back.
fn life(seed: u64) {
    life_with(seed, false);
}

/// Runs a circle's life; returns what the run delivered, as one number.
fn life_with(seed: u64, rogue: bool) -> u64 {
    let mut w = World::new(seed);
    w.weather = Weather::CALM;
    let (_, circle) = found(&mut w);
    let members = w.rng().random_range(2..=4);
    for k in 1..=members {
        let d = w.add_device(&format!("m{k}"));
        let ins = insiders(&mut w, circle);
        let inviter = pick(&mut w, &ins).unwrap();
        join(&mut w, inviter, d, circle, InviteKind::Member);
        let pause = w.rng().random_range(0..1_500);
        w.run_for(pause);
    }
    if w.rng().random_bool(0.7) {
        let ins = insiders(&mut w, circle);
        let owner = pick(&mut w, &ins).unwrap();
        let name = format!("{}'s phone", w.devs[owner].name);
        let d = w.add_device(&name);
        join(&mut w, owner, d, circle, InviteKind::Device);
    }
    // The rogue: a member's device (not the founder's), still in the
    // circle, that also forges, replays and sends noise.
    let rogue = rogue.then_some(1);
    w.weather = Weather::STORMY;
    for step in 0..30 {
        match w.rng().random_range(0..100) {
            0..40 => write(&mut w, circle, step),
            40..55 => govern(&mut w, circle),
            55..59 => revoke(&mut w, circle),
            59..67 => {
                w.cut = if w.cut.is_some() || w.rng().random_bool(0.3) {
                    None
                } else {
                    let n = w.devs.len();
                    Some((0..n).filter(|_| w.rng().random_bool(0.5)).collect())
                };
            }
            67..74 => {
                let up: Vec<usize> = (0..w.devs.len()).filter(|i| w.devs[*i].up()).collect();
                if up.len() > 1
                    && let Some(i) = pick(&mut w, &up)
                {
                    if w.rng().random_bool(0.7) {
                        w.crash(i);
                    } else {
                        w.stop(i);
                    }
                }
            }
            74..82 => {
                let down: Vec<usize> = (0..w.devs.len()).filter(|i| !w.devs[*i].up()).collect();
                if let Some(i) = pick(&mut w, &down) {
                    restart(&mut w, i);
                }
            }
            82..86 if w.devs.len() < 7 => {
                let ins = insiders(&mut w, circle);
                if let Some(inviter) = pick(&mut w, &ins) {
                    let d = w.add_device(&format!("late{step}"));
                    join(&mut w, inviter, d, circle, InviteKind::Member);
                }
            }
            86..92 => {
                w.weather = if w.rng().random_bool(0.5) {
                    Weather::CALM
                } else {
                    Weather::STORMY
                };
            }
            _ => {
                if let Some(r) = rogue {
                    misbehave(&mut w, r, circle, step);
                } else {
                    write(&mut w, circle, step);
                }
            }
        }
        let pause = w.rng().random_range(0..3_000);
        w.run_for(pause);
    }
    settle(&mut w, circle);
    settle_double_ups(&mut w, circle);
    if rogue.is_some() {
        for i in 0..w.devs.len() {
            if let Some(m) = w.devs[i].machine.as_mut()
                && let Ok(doc) = m.circle(circle)
            {
                assert!(
                    !doc.canonical_json().contains("Mallory"),
                    "a forged rename reached {}",
                    w.devs[i].name
                );
            }
        }
    }
    w.fingerprint()
}

/// The rogue forges a rename of another member in its own name (a change
/// its own device signs, so its proof holds, but the circle's rules give
/// nobody another's record), replays what it heard, or sends noise.
fn misbehave(w: &mut World, r: usize, circle: CircleId, step: usize) {
    if !w.devs[r].up() {
        return;
    }
    match w.rng().random_range(0..4) {
        3 => {
            let others: Vec<usize> = (0..w.devs.len()).filter(|i| *i != r).collect();
            if let Some(victim) = pick(w, &others) {
                plant(w, r, victim, circle);
            }
        }
        0 => {
            let at = w.wall(r);
            let m = w.devs[r].machine();
            let Ok(doc) = m.circle(circle) else { return };
            let mut forged = doc.clone();
            let Ok(Some(keys)) = m.home().circle_keys(circle) else {
                return;
            };
            let device = m.identity().device.clone();
            let me = m.identity().member.id();
            let Some(victim) = forged.membership().members.into_iter().find(|x| *x != me) else {
                return;
            };
            let before = forged.heads();
            forged
                .transact(at, "rename", |tx| {
                    let Some((Value::Object(ObjType::Map), members)) =
                        tx.get(ROOT, "members").unwrap()
                    else {
                        return Ok(());
                    };
                    if let Some((Value::Object(ObjType::Map), rec)) =
                        tx.get(&members, victim.to_string()).unwrap()
                    {
                        tx.put(&rec, "name", "Mallory").unwrap();
                    }
                    Ok(())
                })
                .unwrap();
            let changes = forged.changes_since(&before);
            let Some(head) = SignedHead::sign(&forged, &device) else {
                return;
            };
            let body = Body::Changes { changes, head };
            if let Some(bytes) = seal(circle, &keys, &device, &body, w.rng()) {
                w.gossip_from(r, circle, bytes);
            }
        }
        1 => {
            let heard = w.devs[r].heard.clone();
            if let Some((c, bytes)) = heard.choose(w.rng()).cloned() {
                w.gossip_from(r, c, bytes);
            }
        }
        _ => {
            let len = w.rng().random_range(0..600);
            let noise: Vec<u8> = (0..len).map(|_| w.rng().random()).collect();
            w.gossip_from(r, circle, noise);
        }
    }
    let _ = step;
}

/// The rogue `r` makes up two changes in the name of `victim`'s device,
/// the second building on the first, and gossips only the second: a change
/// that would wait for a history that never comes, holding the victim's
/// next sequence number.
fn plant(w: &mut World, r: usize, victim: usize, circle: CircleId) -> bool {
    let at = w.wall(r);
    let victim_device = w.devs[victim].device;
    let m = w.devs[r].machine();
    let Ok(doc) = m.circle(circle) else {
        return false;
    };
    let Ok(Some(keys)) = m.home().circle_keys(circle) else {
        return false;
    };
    let device = m.identity().device.clone();
    let member = m.identity().member.id();
    let head = SignedHead::sign(doc, &device);
    let mut forged = doc.clone();
    forged.set_device(victim_device);
    let note = |text: &str| Op::Moment { text: text.into() };
    let mut rng = rand::rng();
    let made = forged
        .perform(&note("made up"), member, at, &mut rng)
        .is_ok();
    let after_first = forged.heads();
    let made = made
        && forged
            .perform(&note("made up too"), member, at, &mut rng)
            .is_ok();
    let (true, Some(head)) = (made, head) else {
        return false;
    };
    let changes = forged.changes_since(&after_first);
    let body = Body::Changes { changes, head };
    let Some(bytes) = seal(circle, &keys, &device, &body, w.rng()) else {
        return false;
    };
    w.gossip_from(r, circle, bytes);
    true
}

/// The rogue `r` signs two different changes under one number (its
/// current session's next), and gossips one to some devices and the other
/// to the rest. Its own copy holds neither, so its next real edit takes
/// that number a third time.
fn equivocate(w: &mut World, r: usize, circle: CircleId, step: usize) -> Option<[ChangeHash; 2]> {
    if !w.devs[r].up() {
        return None;
    }
    let at = w.wall(r);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(w.rng().random());
    let m = w.devs[r].machine();
    let Ok(doc) = m.circle(circle) else {
        return None;
    };
    let Ok(Some(keys)) = m.home().circle_keys(circle) else {
        return None;
    };
    let device = m.identity().device.clone();
    let member = m.identity().member.id();
    let before = doc.heads();
    let mut bodies = Vec::new();
    let mut pair = Vec::new();
    for side in ["one", "two"] {
        let mut fork = doc.clone();
        let text = format!("fork {side} at step {step}");
        fork.perform(&Op::Moment { text }, member, at, &mut rng)
            .ok()?;
        let head = SignedHead::sign(&fork, &device)?;
        pair.push(ChangeHash(head.hash));
        let changes = fork.changes_since(&before);
        bodies.push(Body::Changes { changes, head });
    }
    let others: Vec<usize> = (0..w.devs.len()).filter(|i| *i != r).collect();
    let (one, two): (Vec<usize>, Vec<usize>) =
        others.iter().partition(|_| w.rng().random_bool(0.5));
    for (to, body) in [one, two].iter().zip(bodies) {
        if let Some(bytes) = seal(circle, &keys, &device, &body, w.rng()) {
            w.gossip_to(r, to, circle, bytes);
        }
    }
    w.devs[r].forked = true;
    w.devs[r].acked.clear();
    Some([pair[0], pair[1]])
}

/// Someone writes words (a check-in or a moment), which a change the
/// circle drops cannot take with it.
fn write_words(w: &mut World, circle: CircleId, step: usize) {
    let ins = insiders(w, circle);
    let Some(i) = pick(w, &ins) else { return };
    let op = if w.rng().random_bool(0.5) {
        Op::Checkin {
            mood: Mood::Okay,
            note: format!("step {step} by {i}"),
        }
    } else {
        Op::Moment {
            text: format!("a moment at step {step} by {i}"),
        }
    };
    perform(w, i, circle, op);
}

/// A member's device signs two different changes under one number, at
/// several points of a circle's life, and tells each half of the circle a
/// different one, while others write on top of what they heard, the
/// network partitions and devices crash. Every device still in ends with
/// the same circle, holding at most one change of each pair, and every
/// word an honest device acknowledged (what was written on top of the
/// change that went is written again). Where the rogue's member has a
/// second device, that device revokes it.
fn forking(seed: u64) {
    let mut w = World::new(seed);
    w.weather = Weather::CALM;
    let (_, circle) = found(&mut w);
    let members = w.rng().random_range(2..=4);
    for k in 1..=members {
        let d = w.add_device(&format!("m{k}"));
        assert!(join(&mut w, 0, d, circle, InviteKind::Member));
    }
    w.run_for(5_000);
    let rogue = 1;
    let twin = w.rng().random_bool(0.5).then(|| {
        let d = w.add_device("m1's phone");
        assert!(join(&mut w, rogue, d, circle, InviteKind::Device));
        d
    });
    w.run_for(5_000);
    w.weather = Weather::STORMY;
    let mut forks = Vec::new();
    for step in 0..30 {
        match w.rng().random_range(0..100) {
            0..45 => write_words(&mut w, circle, step),
            45..60 => forks.extend(equivocate(&mut w, rogue, circle, step)),
            60..68 => {
                w.cut = if w.cut.is_some() {
                    None
                } else {
                    let n = w.devs.len();
                    Some((0..n).filter(|_| w.rng().random_bool(0.5)).collect())
                };
            }
            68..76 => {
                let up: Vec<usize> = (0..w.devs.len()).filter(|i| w.devs[*i].up()).collect();
                if up.len() > 1
                    && let Some(i) = pick(&mut w, &up)
                {
                    w.crash(i);
                }
            }
            76..86 => {
                let down: Vec<usize> = (0..w.devs.len()).filter(|i| !w.devs[*i].up()).collect();
                if let Some(i) = pick(&mut w, &down) {
                    restart(&mut w, i);
                }
            }
            _ => {
                // The rogue writes too, under numbers its forks took.
                let op = Op::Moment {
                    text: format!("rogue at step {step}"),
                };
                perform(&mut w, rogue, circle, op);
            }
        }
        let pause = w.rng().random_range(0..3_000);
        w.run_for(pause);
    }
    settle(&mut w, circle);
    let (live, _) = still_in(&mut w, circle).unwrap();
    for &i in &live {
        let doc = w.devs[i].machine().circle(circle).unwrap().clone();
        for pair in &forks {
            let held = pair.iter().filter(|h| doc.has_change(h)).count();
            assert!(
                held <= 1,
                "{} holds both changes of one number",
                w.devs[i].name
            );
        }
    }
    if let Some(twin) = twin
        && live.contains(&twin)
    {
        // The rogue's own other device saw a fork only if one reached it.
        let told = w.devs[twin].machine().status().circles[0].forked.len();
        if told > 0 {
            let rogue_device = w.devs[rogue].device;
            let reading = w.devs[twin].machine().read(circle).unwrap();
            assert!(
                !reading.membership.admitted.contains(&rogue_device),
                "the rogue's member's other device revokes it"
            );
        }
    }
}

/// A device whose home is restored from an older backup writes before it
/// hears from anyone (or after, as the seed says). A writer works in a
/// session of its own, so nothing it writes numbers like what it wrote
/// before the restore: the circle settles with every word, old and new,
/// and nobody sees a fork.
fn restored(seed: u64) {
    let mut w = World::new(seed);
    w.weather = Weather::CALM;
    let (a, circle) = found(&mut w);
    let members = w.rng().random_range(1..=3);
    for k in 1..=members {
        let d = w.add_device(&format!("m{k}"));
        assert!(join(&mut w, a, d, circle, InviteKind::Member));
    }
    let d = 1;
    for step in 0..5 {
        write_words(&mut w, circle, step);
    }
    w.run_for(5_000);
    w.stop(d);
    let backup = w.backup(d);
    w.start(d);
    // Written after the backup, and shared with the others.
    for n in 0..w.rng().random_range(1..6) {
        let op = Op::Checkin {
            mood: Mood::Heavy,
            note: format!("after the backup {n}"),
        };
        assert!(perform(&mut w, d, circle, op));
    }
    w.run_for(10_000);
    w.restore(d, &backup);
    let offline = w.rng().random_bool(0.5);
    if offline {
        w.cut = Some([d].into());
    }
    w.start(d);
    for n in 0..3 {
        let op = Op::Moment {
            text: format!("after the restore {n}"),
        };
        assert!(perform(&mut w, d, circle, op));
        let pause = w.rng().random_range(0..2_000);
        w.run_for(pause);
    }
    w.weather = Weather::STORMY;
    for step in 5..10 {
        write_words(&mut w, circle, step);
        w.run_for(1_000);
    }
    settle(&mut w, circle);
    let (live, _) = still_in(&mut w, circle).unwrap();
    assert!(live.contains(&d));
    for i in live {
        let status = w.devs[i].machine().status();
        assert!(
            status.circles.iter().all(|c| c.forked.is_empty()),
            "no fork"
        );
        let json = w.devs[i].machine().circle(circle).unwrap().canonical_json();
        for text in ["after the backup 0", "after the restore 2"] {
            assert!(json.contains(text), "{} lacks {text:?}", w.devs[i].name);
        }
    }
}

/// A made-up change waiting for history that never comes cannot hold back
/// the real changes of the device in whose name it was made.
#[test]
fn a_change_made_up_in_anothers_name_cannot_hold_back_their_real_ones() {
    let mut w = World::new(60_000);
    w.weather = Weather::CALM;
    let (a, circle) = found(&mut w);
    let (b, c) = (w.add_device("m1"), w.add_device("m2"));
    assert!(join(&mut w, a, b, circle, InviteKind::Member));
    assert!(join(&mut w, a, c, circle, InviteKind::Member));
    // The rogue has written before, so it has a signed head to send.
    let hello = Op::Moment {
        text: "hello".into(),
    };
    assert!(perform(&mut w, b, circle, hello));
    w.run_for(5_000);
    assert!(plant(&mut w, b, a, circle));
    w.run_for(2_000);
    let waiting = w.devs[c].machine().circle(circle).unwrap().missing_deps();
    assert!(!waiting.is_empty(), "the made-up change waits at m2");
    for n in 0..3 {
        let op = Op::Moment {
            text: format!("real {n}"),
        };
        assert!(perform(&mut w, a, circle, op));
    }
    w.run_for(2_000);
    let heads = |w: &mut World, i: usize| w.devs[i].machine().circle(circle).unwrap().heads();
    assert_eq!(heads(&mut w, c), heads(&mut w, a));
    // They applied as they came, not after a failure and another sync.
    let dropped = w.devs[c].machine().status().dropped;
    assert_eq!(dropped.get("does not apply"), None, "{dropped:?}");
}

/// A device left on while everyone else is away is idle: it keeps trying
/// to reach them, but each try is a dial and nothing more. No sync message
/// is worked out for a peer that does not answer, and a try that brought
/// nothing writes nothing to the disk.
#[test]
fn a_device_alone_only_dials_while_the_others_are_away() {
    let mut w = World::new(61_000);
    w.weather = Weather::CALM;
    let (a, circle) = found(&mut w);
    let (b, c) = (w.add_device("m1"), w.add_device("m2"));
    assert!(join(&mut w, a, b, circle, InviteKind::Member));
    assert!(join(&mut w, a, c, circle, InviteKind::Member));
    assert!(perform(
        &mut w,
        b,
        circle,
        Op::Moment {
            text: "see you all on Sunday".into()
        }
    ));
    w.run_for(5_000);
    w.stop(b);
    w.stop(c);
    // Sessions under way when they went end, and the head book is written.
    w.run_for(60_000);
    let (writes, dialled, connected) = (w.write_ops(a), w.devs[a].dialled, w.devs[a].connected);
    w.run_for(10 * 60_000);
    let tries = w.devs[a].dialled - dialled;
    assert!(tries >= 20, "it kept trying to reach them: {tries} tries");
    assert_eq!(w.devs[a].connected, connected, "nobody answered");
    assert_eq!(w.write_ops(a), writes, "{tries} tries wrote to the disk");
}

/// A device away while the others make thousands of edits comes back and
/// catches up.
fn away(seed: u64) {
    let mut w = World::new(seed);
    w.weather = Weather::CALM;
    let (a, circle) = found(&mut w);
    let b = w.add_device("m1");
    let c = w.add_device("m2");
    assert!(join(&mut w, a, b, circle, InviteKind::Member));
    assert!(join(&mut w, a, c, circle, InviteKind::Member));
    w.run_for(5_000);
    w.stop(c);
    w.weather = Weather::STORMY;
    for n in 0..2_000 {
        let who = if n % 2 == 0 { a } else { b };
        perform(
            &mut w,
            who,
            circle,
            Op::Checkin {
                mood: Mood::Okay,
                note: format!("{n}"),
            },
        );
        if n % 50 == 0 {
            w.run_for(200);
        }
    }
    settle(&mut w, circle);
}

/// Six members split four and two for ten minutes. Both sides write; the
/// four remove one of the two (three consents of five are enough), which
/// moves them to a new epoch and key. When the network heals, the other of
/// the two catches up, takes the new key and is in; the removed one is out
/// and holds nothing new.
fn long_partition(seed: u64) {
    let mut w = World::new(seed);
    w.weather = Weather::CALM;
    let (founder, circle) = found(&mut w);
    for k in 1..6 {
        let d = w.add_device(&format!("m{k}"));
        assert!(join(&mut w, founder, d, circle, InviteKind::Member));
    }
    w.run_for(10_000);
    w.weather = Weather::STORMY;
    w.cut = Some([4, 5].into());
    let target = w.devs[5].machine().identity().member.id();
    let proposal = {
        let at = w.wall(0);
        let op = Op::ProposeRemoval {
            target,
            reason: "moved away".into(),
        };
        w.input(0, |m, now, rng| m.perform(circle, &op, at, now, rng))
            .unwrap()
            .unwrap()
            .unwrap()
    };
    for minute in 0..10 {
        for i in 0..6 {
            let op = Op::Moment {
                text: format!("minute {minute}, from {i}"),
            };
            perform(&mut w, i, circle, op);
        }
        if minute == 2 {
            for i in 1..3 {
                assert!(perform(&mut w, i, circle, Op::Consent { proposal }));
            }
        }
        w.run_for(60_000);
    }
    let epoch = w.devs[0].machine().epoch(circle).unwrap();
    assert_eq!(epoch, 1, "the four moved on to a new key");
    settle(&mut w, circle);
    let (live, _) = still_in(&mut w, circle).unwrap();
    assert_eq!(
        live,
        vec![0, 1, 2, 3, 4],
        "the removed member is out, the other in"
    );
    assert_ne!(w.devs[5].topic(circle), w.devs[0].topic(circle));
    // Refused by the others, the removed device asks one for its farewell:
    // it learns of its removal from the records, and of nothing written
    // after it.
    w.run_for(60_000);
    let removed = w.devs[5].machine().status().circles[0].removed.clone();
    let notice = removed.expect("the removed device knows it was removed");
    assert!(notice.starts_with("You are no longer in"), "{notice}");
    let json = w.devs[5].machine().circle(circle).unwrap().canonical_json();
    assert!(
        !json.contains("minute 9, from 2"),
        "it read what was written after"
    );
}

/// A member's phone is stolen. The thief, apart from the member's laptop,
/// lets an accomplice in from the phone (redeeming a ticket there, or
/// making one the accomplice uses), and some seeds the accomplice lets a
/// friend in too, while the member revokes the phone from the laptop. Some
/// of the others hear from the thief's side first, some from the laptop's.
/// Once the news meets, on every device still in: the accomplices are out,
/// without the key; the phone is out; the member and everyone else are in.
fn stolen(seed: u64) {
    let mut w = World::new(seed);
    w.weather = Weather::CALM;
    let (laptop, circle) = found(&mut w);
    for k in 1..=2 {
        let d = w.add_device(&format!("m{k}"));
        assert!(join(&mut w, laptop, d, circle, InviteKind::Member));
    }
    let phone = w.add_device("m0's phone");
    assert!(join(&mut w, laptop, phone, circle, InviteKind::Device));
    w.run_for(10_000);
    let accomplice = w.add_device("x");
    let friend = w.add_device("y");
    // The thief's side: the phone, the accomplices, and whoever of the
    // others hears from it first.
    let mut thieves: BTreeSet<usize> = [phone, accomplice, friend].into();
    for k in 1..=2 {
        if w.rng().random_bool(0.5) {
            thieves.insert(k);
        }
    }
    w.cut = Some(thieves);
    w.weather = Weather::STORMY;
    let revoke_first = w.rng().random_bool(0.5);
    let revoke = |w: &mut World| {
        let device = w.devs[phone].device;
        assert!(perform(w, laptop, circle, Op::RevokeDevice { device }));
    };
    if revoke_first {
        revoke(&mut w);
    }
    assert!(join(&mut w, phone, accomplice, circle, InviteKind::Member));
    let with_friend = w.rng().random_bool(0.5);
    if with_friend {
        let pause = w.rng().random_range(0..5_000);
        w.run_for(pause);
        assert!(join(&mut w, accomplice, friend, circle, InviteKind::Member));
    }
    perform(
        &mut w,
        accomplice,
        circle,
        Op::Checkin {
            mood: Mood::Okay,
            note: "hello".into(),
        },
    );
    if !revoke_first {
        revoke(&mut w);
    }
    let pause = w.rng().random_range(0..30_000);
    w.run_for(pause);
    settle(&mut w, circle);
    let (live, all) = still_in(&mut w, circle).unwrap();
    assert_eq!(live, vec![laptop, 1, 2], "only the laptop and the others");
    let m = all.membership();
    let view = all.view();
    let mut heard = 0;
    for who in [accomplice, friend] {
        let member = w.devs[who].machine().identity().member.id();
        assert!(
            !m.is_member(member),
            "{} is still a member",
            w.devs[who].name
        );
        assert!(!m.admitted.contains(&w.devs[who].device));
        heard += u64::from(view.members.contains_key(&member));
    }
    assert!(m.revoked.contains(&w.devs[phone].device));
    assert_eq!(m.members.len(), 3);
    // The phone, and each accomplice whose admission reached those in
    // (a thief's side nobody in heard from keeps its news to itself).
    assert_eq!(m.epoch, 1 + heard);
}

/// A member loses their laptop. On a new device they type their recovery
/// key back in and come in with a ticket from whoever is about, as
/// themselves, while others write across a stormy network; half the seeds
/// they then revoke the lost laptop (which may turn up again). Once
/// settled: one member, their old words and their new ones everywhere, the
/// new device in, the lost one out if revoked.
fn recovered(seed: u64) {
    let mut w = World::new(seed);
    w.weather = Weather::CALM;
    let (founder, circle) = found(&mut w);
    for k in 1..=2 {
        let d = w.add_device(&format!("m{k}"));
        assert!(join(&mut w, founder, d, circle, InviteKind::Member));
    }
    let lost = 1;
    let before = Op::Checkin {
        mood: Mood::Okay,
        note: "before the loss".into(),
    };
    assert!(perform(&mut w, lost, circle, before));
    w.run_for(10_000);
    let words = w.devs[lost].machine().identity().member.to_words();
    let lost_member = w.devs[lost].machine().identity().member.id();
    w.stop(lost);
    let member = roundtable_core::MemberKey::from_words(&words).unwrap();
    let again = w.add_device_of("m1 again", member);
    w.weather = Weather::STORMY;
    for step in 0..5 {
        write_words(&mut w, circle, step);
    }
    let inviter = if w.rng().random_bool(0.5) { 0 } else { 2 };
    let mut joined = false;
    for _ in 0..20 {
        if join(&mut w, inviter, again, circle, InviteKind::Member) {
            joined = true;
            break;
        }
        w.run_for(5_000);
    }
    if !joined {
        w.weather = Weather::CALM;
        w.cut = None;
        assert!(join(&mut w, inviter, again, circle, InviteKind::Member));
    }
    let after = Op::Moment {
        text: "after the recovery".into(),
    };
    assert!(perform(&mut w, again, circle, after));
    let revoke_lost = w.rng().random_bool(0.5);
    if revoke_lost {
        let device = w.devs[lost].device;
        assert!(perform(&mut w, again, circle, Op::RevokeDevice { device }));
    }
    for step in 5..10 {
        write_words(&mut w, circle, step);
        w.run_for(1_000);
    }
    settle(&mut w, circle);
    let (live, all) = still_in(&mut w, circle).unwrap();
    assert!(live.contains(&again));
    assert_eq!(live.contains(&lost), !revoke_lost);
    let m = all.membership();
    assert_eq!(m.members.len(), 3, "the same three people");
    let me = w.devs[again].machine().identity().member.id();
    assert_eq!(me, lost_member);
    assert!(m.admitted.contains(&w.devs[again].device));
    let json = all.canonical_json();
    for text in ["before the loss", "after the recovery"] {
        assert!(json.contains(text), "{text:?} is missing");
    }
}

/// A member loses their laptop, and has no recovery key. A new device of
/// theirs, on a new member key, asks; two of the other three vouch, each on
/// their own copy, over a stormy network. Half the seeds the lost laptop
/// turns up in the wait and refuses. Then every device sleeps past the
/// wait, and wakes: where nobody refused, whoever ticks first carries it
/// through, and a ticket brings the new device the circle, where it
/// writes as the same member; where one refused, the old laptop stays
/// theirs and the new device is nobody's.
fn vouched_for(seed: u64) {
    let mut w = World::new(seed);
    w.weather = Weather::CALM;
    let (founder, circle) = found(&mut w);
    for k in 1..=3 {
        let d = w.add_device(&format!("m{k}"));
        assert!(join(&mut w, founder, d, circle, InviteKind::Member));
    }
    let lost = 3;
    let member = w.devs[lost].machine().identity().member.id();
    let before = Op::Checkin {
        mood: Mood::Okay,
        note: "before the loss".into(),
    };
    assert!(perform(&mut w, lost, circle, before));
    // The circle's wait, set by one member: the first vouch writes it.
    assert!(perform(&mut w, 1, circle, Op::RecoveryWait { hours: 24 }));
    w.run_for(10_000);
    w.stop(lost);
    let new = w.add_device("m3 new");
    let cert = w.devs[new].machine().identity().cert.clone();
    let vouch = Op::Vouch {
        target: member,
        key: cert.member,
        device: cert.device,
        cert: cert.signature_hex(),
        reason: "we spoke on the phone".into(),
    };
    w.weather = Weather::STORMY;
    let mut proposal = None;
    for i in [0, 2] {
        let at = w.wall(i);
        let id = w
            .input(i, |m, now, rng| m.perform(circle, &vouch, at, now, rng))
            .expect("up")
            .expect("a vouch is taken")
            .expect("an id");
        proposal.get_or_insert(id);
        write_words(&mut w, circle, i);
        w.run_for(20_000);
    }
    let proposal = proposal.expect("vouched");
    settle(&mut w, circle);
    let refuse = w.rng().random_bool(0.5);
    if refuse {
        // Found in a drawer in the wait (settle woke it): it refuses.
        assert!(perform(
            &mut w,
            lost,
            circle,
            Op::RefuseRecovery { proposal }
        ));
        w.run_for(30_000);
    } else {
        w.stop(lost);
    }
    // Everyone's laptop is closed past the wait.
    let up: Vec<usize> = (0..w.devs.len()).filter(|i| w.devs[*i].up()).collect();
    for &i in &up {
        w.stop(i);
    }
    w.run_for(25 * 3_600_000);
    for &i in &up {
        w.start(i);
    }
    w.run_for(30_000);
    settle(&mut w, circle);
    if !refuse {
        let inviter = w.rng().random_range(0..3);
        assert!(
            join(&mut w, inviter, new, circle, InviteKind::Member),
            "a ticket brings the new device the circle"
        );
        let after = Op::Moment {
            text: "back on a new laptop".into(),
        };
        assert!(perform(&mut w, new, circle, after));
        settle(&mut w, circle);
    }
    let (live, all) = still_in(&mut w, circle).unwrap();
    let m = all.membership();
    assert_eq!(m.members.len(), 4, "the same four people");
    assert!(m.is_member(member));
    let (state, recovery) = {
        let p = &m.proposals[&proposal];
        let first = p
            .recovery
            .as_ref()
            .and_then(|r| r.joined)
            .unwrap_or(proposal);
        let p = &m.proposals[&first];
        (p.state, p.recovery.clone().expect("a recovery"))
    };
    assert_eq!(
        recovery.wait_hours, 24,
        "the circle's wait, as the first vouch found it"
    );
    let json = all.canonical_json();
    assert!(json.contains("before the loss"));
    if refuse {
        assert_eq!(state, ProposalState::Refused);
        assert!(recovery.completed.is_none());
        assert!(live.contains(&lost));
        assert!(!m.admitted.contains(&w.devs[new].device));
        assert_eq!(m.key_of(member), member);
    } else {
        assert_eq!(state, ProposalState::Carried);
        assert!(recovery.completed.is_some());
        assert!(live.contains(&new) && !live.contains(&lost));
        assert_eq!(m.key_of(member), cert.member);
        assert!(m.departed.contains(&w.devs[lost].device));
        assert!(json.contains("back on a new laptop"));
        let author = all
            .view()
            .moments
            .values()
            .find(|e| e.text == "back on a new laptop")
            .map(|e| e.author);
        assert_eq!(author, Some(member), "written as the same member");
    }
}

/// A member steps out of the circle after a hard month, over a stormy
/// network, while the others write on; later one of them (any) gives them
/// a ticket, and they come back on the laptop they left from, as
/// themselves: the same person, the same device, what they wrote before
/// still theirs, and the circle on its third key.
fn left_and_back(seed: u64) {
    let mut w = World::new(seed);
    w.weather = Weather::CALM;
    let (founder, circle) = found(&mut w);
    for k in 1..=3 {
        let d = w.add_device(&format!("m{k}"));
        assert!(join(&mut w, founder, d, circle, InviteKind::Member));
    }
    let leaver = 3;
    let member = w.devs[leaver].machine().identity().member.id();
    let before = Op::Moment {
        text: "before I step out".into(),
    };
    assert!(perform(&mut w, leaver, circle, before));
    w.run_for(10_000);
    w.weather = Weather::STORMY;
    assert!(perform(&mut w, leaver, circle, Op::Leave { forget: false }));
    for step in 0..5 {
        write_words(&mut w, circle, step);
        w.run_for(20_000);
    }
    let inviter = w.rng().random_range(0..3);
    let mut back = false;
    for _ in 0..20 {
        if join(&mut w, inviter, leaver, circle, InviteKind::Member) {
            back = true;
            break;
        }
        w.run_for(5_000);
    }
    if !back {
        w.weather = Weather::CALM;
        w.cut = None;
        assert!(join(&mut w, inviter, leaver, circle, InviteKind::Member));
    }
    let after = Op::Moment {
        text: "glad to be back".into(),
    };
    assert!(perform(&mut w, leaver, circle, after));
    for step in 5..10 {
        write_words(&mut w, circle, step);
        w.run_for(1_000);
    }
    settle(&mut w, circle);
    let (live, all) = still_in(&mut w, circle).unwrap();
    assert_eq!(
        live,
        [0, 1, 2, 3],
        "the one who left is back, on the same device"
    );
    let m = all.membership();
    assert!(m.is_member(member));
    assert_eq!(m.stint_of(member), 1);
    assert_eq!(m.epoch, 2, "one key for the leaving, one for the return");
    let by = w.devs[inviter].machine().identity().member.id();
    assert_eq!(m.returns[&member][0].by, [by].into());
    assert_eq!(
        w.devs[leaver].machine().epoch(circle).unwrap(),
        2,
        "the one back holds the new key"
    );
    assert_eq!(w.devs[leaver].topic(circle), w.devs[0].topic(circle));
    let json = all.canonical_json();
    for text in ["before I step out", "glad to be back"] {
        assert!(json.contains(text), "{text:?} is missing");
    }
}

/// Five members; three of the others remove one, who is told. Weeks
/// later, after talking it through, three of the four welcome them back
/// by the same consent. The removed laptop, never told to do anything
/// (whether or not it heard of its removal), hears of the welcome from the
/// others and is in the circle again on its new key; the removal stays in
/// the record.
fn removed_and_welcomed_back(seed: u64) {
    let mut w = World::new(seed);
    w.weather = Weather::CALM;
    let (founder, circle) = found(&mut w);
    for k in 1..=4 {
        let d = w.add_device(&format!("m{k}"));
        assert!(join(&mut w, founder, d, circle, InviteKind::Member));
    }
    w.run_for(10_000);
    let out = 4;
    let target = w.devs[out].machine().identity().member.id();
    let propose = |w: &mut World, by: usize, op: Op| {
        let at = w.wall(by);
        w.input(by, |m, now, rng| m.perform(circle, &op, at, now, rng))
            .unwrap()
            .unwrap()
            .unwrap()
    };
    w.weather = Weather::STORMY;
    let removal = propose(
        &mut w,
        0,
        Op::ProposeRemoval {
            target,
            reason: "it hurt people".into(),
        },
    );
    w.run_for(30_000);
    for i in 1..3 {
        let consented = (0..60).any(|_| {
            perform(&mut w, i, circle, Op::Consent { proposal: removal }) || {
                w.run_for(5_000);
                false
            }
        });
        assert!(consented, "the proposal reached them");
    }
    for step in 0..5 {
        write_words(&mut w, circle, step);
        w.run_for(20_000);
    }
    settle(&mut w, circle);
    // Refused by the others, it asks them for its farewell, one at most
    // hourly each: some seeds it hears of its removal, some not (where
    // every copy wrote on before it could keep a farewell).
    let told = (0..6).any(|_| {
        w.run_for(600_000);
        w.devs[out].machine().status().circles[0].removed.is_some()
    });
    if told {
        let r = w.devs[out].machine().read(circle).unwrap();
        assert!(r.membership.removed.contains(&target));
    }

    w.weather = Weather::STORMY;
    let welcome = propose(
        &mut w,
        1,
        Op::ProposeWelcome {
            target,
            reason: "we talked it through".into(),
        },
    );
    w.run_for(30_000);
    for i in [0, 3] {
        let consented = (0..60).any(|_| {
            perform(&mut w, i, circle, Op::Consent { proposal: welcome }) || {
                w.run_for(5_000);
                false
            }
        });
        assert!(consented, "the proposal reached them");
    }
    for step in 5..8 {
        write_words(&mut w, circle, step);
        w.run_for(20_000);
    }
    settle(&mut w, circle);
    let after = Op::Moment {
        text: "thank you for having me back".into(),
    };
    assert!(perform(&mut w, out, circle, after));
    settle(&mut w, circle);
    let (live, all) = still_in(&mut w, circle).unwrap();
    assert_eq!(live, [0, 1, 2, 3, 4], "welcomed back, without a command");
    let m = all.membership();
    assert!(m.is_member(target));
    assert_eq!(m.stint_of(target), 1);
    assert_eq!(m.epoch, 2);
    assert_eq!(m.proposals[&removal].state, ProposalState::Carried);
    assert_eq!(m.returns[&target][0].proposal, Some(welcome));
    assert!(w.devs[out].machine().status().circles[0].removed.is_none());
    assert_eq!(
        w.devs[out].machine().epoch(circle).unwrap(),
        2,
        "on the new key"
    );
    assert_eq!(w.devs[out].topic(circle), w.devs[0].topic(circle));
    assert!(
        all.canonical_json()
            .contains("thank you for having me back")
    );
}

#[test]
fn leaving_and_coming_back() {
    run_seeds("leaving_and_coming_back", 96_000..96_100, left_and_back);
}

#[test]
fn a_removal_and_a_welcome_back_by_consent() {
    run_seeds(
        "a_removal_and_a_welcome_back_by_consent",
        97_000..97_025,
        removed_and_welcomed_back,
    );
}

/// Two devices open a sync session with each other at the same instant:
/// the sessions cross. The one the smaller device id opened goes on, the
/// other is refused and ends without a word, and one session brings both
/// up to date.
#[test]
fn of_two_sessions_opened_at_once_one_goes_on() {
    let mut w = World::new(50_000);
    w.weather = Weather::CALM;
    let (a, circle) = found(&mut w);
    let b = w.add_device("m1");
    assert!(join(&mut w, a, b, circle, InviteKind::Member));
    w.run_for(10_000);
    // Gossip is lost from here on: only a session brings the edits over.
    w.weather = Weather {
        drop: 1.0,
        dup: 0.0,
        delay: (5, 5),
    };
    for (i, note) in [(a, "from a"), (b, "from b")] {
        let op = Op::Moment { text: note.into() };
        assert!(perform(&mut w, i, circle, op));
    }
    for i in [a, b] {
        w.devs[i].events.clear();
    }
    let peers = [w.devs[b].device, w.devs[a].device];
    for (i, peer) in [a, b].into_iter().zip(peers) {
        w.input(i, |m, now, rng| {
            // The peer is a gossip neighbour that came up again.
            m.neighbour_down(circle, peer, now);
            m.neighbour_up(circle, peer, now, rng);
        });
    }
    w.run_for(1_000);
    let synced = |w: &World, i: usize| -> Vec<bool> {
        w.devs[i]
            .events
            .iter()
            .filter_map(|e| match e {
                roundtable_machine::Event::Synced { ok, .. } => Some(*ok),
                _ => None,
            })
            .collect()
    };
    assert_eq!(synced(&w, a), [true], "one session, and it went through");
    assert_eq!(synced(&w, b), [true], "one session, and it went through");
    let heads = |w: &mut World, i: usize| w.devs[i].machine().circle(circle).unwrap().heads();
    assert_eq!(heads(&mut w, a), heads(&mut w, b));
}

const LIFE_SEEDS: u64 = 1_000;

// The circle's life, a thousand seeds in four parts that run side by side.
#[test]
fn life_0() {
    run_seeds("life_0", 0..LIFE_SEEDS / 4, life);
}

#[test]
fn life_1() {
    run_seeds("life_1", LIFE_SEEDS / 4..LIFE_SEEDS / 2, life);
}

#[test]
fn life_2() {
    run_seeds("life_2", LIFE_SEEDS / 2..3 * LIFE_SEEDS / 4, life);
}

#[test]
fn life_3() {
    run_seeds("life_3", 3 * LIFE_SEEDS / 4..LIFE_SEEDS, life);
}

#[test]
fn a_rogue_member() {
    run_seeds("a_rogue_member", 10_000..10_100, |seed| {
        life_with(seed, true);
    });
}

#[test]
fn a_seed_replays_exactly() {
    run_seeds("a_seed_replays_exactly", 30_000..30_004, |seed| {
        let rogue = seed % 2 == 1;
        assert_eq!(life_with(seed, rogue), life_with(seed, rogue));
    });
}

#[test]
fn a_long_partition_with_a_removal_on_one_side() {
    run_seeds(
        "a_long_partition_with_a_removal_on_one_side",
        40_000..40_010,
        long_partition,
    );
}

#[test]
fn an_equivocating_member() {
    run_seeds("an_equivocating_member", 70_000..70_060, forking);
}

#[test]
fn a_home_restored_from_a_backup() {
    run_seeds("a_home_restored_from_a_backup", 80_000..80_040, restored);
}

#[test]
fn a_stolen_phone_lets_an_accomplice_in_as_it_is_revoked_0() {
    run_seeds(
        "a_stolen_phone_lets_an_accomplice_in_as_it_is_revoked_0",
        90_000..90_500,
        stolen,
    );
}

#[test]
fn a_stolen_phone_lets_an_accomplice_in_as_it_is_revoked_1() {
    run_seeds(
        "a_stolen_phone_lets_an_accomplice_in_as_it_is_revoked_1",
        90_500..91_000,
        stolen,
    );
}

#[test]
fn a_lost_laptop_and_a_recovery_key() {
    run_seeds(
        "a_lost_laptop_and_a_recovery_key",
        95_000..95_100,
        recovered,
    );
}

#[test]
fn a_lost_identity_vouched_for() {
    run_seeds("a_lost_identity_vouched_for", 98_000..98_020, vouched_for);
}

#[test]
fn away_for_thousands_of_edits() {
    run_seeds("away_for_thousands_of_edits", 20_000..20_002, away);
}
