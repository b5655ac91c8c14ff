//! Removal by consent, device revocation and epoch rotation, as a
//! deterministic simulation: many devices proposing, consenting,
//! withdrawing and revoking at once, syncing in random pairs across
//! partitions, handing keys only to devices their own copy admits. Every
//! schedule must end with all remaining devices in the same epoch, with the
//! same members and the same circle key, and with no removal carried by
//! fewer than the rule allows.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use roundtable_core::membership::needed;
use roundtable_core::{
    Circle, DeviceId, DeviceKey, EpochKey, HeadBook, Keyring, MemberId, MemberKey, Membership,
    Mood, Profile, ProposalState, SignedHead, Timestamp,
};

const SEEDS: u64 = 1_000;
const STEPS: usize = 20;

struct Node {
    device: DeviceKey,
    member: MemberId,
    circle: Circle,
    keys: Keyring,
    book: HeadBook,
    /// This device's signed head at `signed.0`.
    signed: std::cell::RefCell<(Vec<roundtable_core::ChangeHash>, Option<SignedHead>)>,
}

impl Node {
    fn id(&self) -> DeviceId {
        self.device.id()
    }

    fn membership(&self) -> Membership {
        self.circle.membership()
    }

    fn heads(&self) -> Vec<SignedHead> {
        let mut all = self.book.all();
        let mut signed = self.signed.borrow_mut();
        let heads = self.circle.heads();
        if signed.0 != heads {
            *signed = (heads, SignedHead::sign(&self.circle, &self.device));
        }
        all.extend(signed.1.clone());
        all
    }

    fn admits(&self, other: DeviceId) -> bool {
        self.membership().admitted.contains(&other)
    }

    fn rotate(&mut self, rng: &mut StdRng) {
        let epoch = self.membership().epoch;
        let circle = self.circle.id();
        self.keys.advance(circle, epoch, &self.device, rng);
    }
}

fn now(step: usize) -> Timestamp {
    Timestamp::from_millis(1_795_464_000_000 + step as i64 * 60_000)
}

/// One sync session between `a` and `b`, as the node runs it: admission
/// checked by both, signed heads first, the document both ways (verified),
/// then keys, each side handing its key only to a peer its own copy admits.
fn sync(nodes: &mut [Node], a: usize, b: usize, rng: &mut StdRng) -> bool {
    if !nodes[a].admits(nodes[b].id()) || !nodes[b].admits(nodes[a].id()) {
        return false;
    }
    let before = (
        nodes[a].circle.heads(),
        nodes[b].circle.heads(),
        nodes[a].keys.clone(),
        nodes[b].keys.clone(),
    );
    let same = nodes[a].circle.heads() == nodes[b].circle.heads();
    for (from, to) in [(a, b), (b, a)].into_iter().filter(|_| !same) {
        let heads = nodes[from].heads();
        // What `to` lacks, as the sync protocol would send it.
        let known: Vec<_> = nodes[to]
            .circle
            .heads()
            .into_iter()
            .filter(|h| nodes[from].circle.has_change(h))
            .collect();
        let doc = nodes[from].circle.changes_since(&known);
        let circle = nodes[to].circle.id();
        let node = &mut nodes[to];
        node.book.learn(circle, &heads);
        let applied = node.circle.apply_verified(&doc, &mut node.book).unwrap();
        assert!(
            applied.rejected.is_empty(),
            "honest changes refused: {applied:?}"
        );
        // Who the circle keeps as in is who the document says.
        assert_eq!(
            node.circle.membership(),
            Membership::read(node.circle.doc())
        );
    }
    for n in [a, b] {
        nodes[n].rotate(rng);
    }
    for (from, to) in [(a, b), (b, a)] {
        if nodes[from].admits(nodes[to].id()) && nodes[to].admits(nodes[from].id()) {
            let offer = nodes[from].keys.offer().unwrap();
            let circle = nodes[to].circle.id();
            nodes[to].keys.accept(circle, &offer);
        }
    }
    before
        != (
            nodes[a].circle.heads(),
            nodes[b].circle.heads(),
            nodes[a].keys.clone(),
            nodes[b].keys.clone(),
        )
}

fn setup(rng: &mut StdRng) -> Vec<Node> {
    let members = rng.random_range(3..=5);
    let keys: Vec<MemberKey> = (0..members)
        .map(|_| MemberKey::from_seed(&rng.random()))
        .collect();
    // Member 0 has two devices, so one can revoke the other.
    let mut devices: Vec<(DeviceKey, usize)> = (0..members)
        .map(|m| (DeviceKey::from_seed(&rng.random()), m))
        .collect();
    devices.push((DeviceKey::from_seed(&rng.random()), 0));
    let t = now(0);
    let mut circle = Circle::create(
        "Sim",
        "",
        &keys[0].certify(devices[0].0.id()),
        &Profile::named("m0"),
        t,
        rng,
    )
    .unwrap();
    for (i, (d, m)) in devices.iter().enumerate().skip(1) {
        let cert = keys[*m].certify(d.id());
        if i == members {
            circle.add_device(&cert, t).unwrap();
        } else {
            circle
                .add_member(
                    &cert,
                    &Profile::named(format!("m{m}")),
                    Some(keys[0].id()),
                    t,
                )
                .unwrap();
        }
    }
    let mut book = HeadBook::new();
    book.learn(circle.id(), &SignedHead::sign(&circle, &devices[0].0));
    let key = EpochKey::random(circle.id(), 0, &devices[0].0, rng);
    devices
        .into_iter()
        .map(|(device, m)| {
            let mut copy = circle.clone();
            copy.set_device(device.id());
            Node {
                member: keys[m].id(),
                device,
                circle: copy,
                keys: Keyring::with(key.clone()),
                book: book.clone(),
                signed: Default::default(),
            }
        })
        .collect()
}

/// One random edit by node `n`, as a person would make it; refusals (say,
/// consenting twice) are expected and change nothing.
fn act(nodes: &mut [Node], n: usize, step: usize, rng: &mut StdRng) {
    let t = now(step);
    let node = &mut nodes[n];
    let m = node.membership();
    if !m.admitted.contains(&node.id()) {
        return;
    }
    let me = node.member;
    let open: Vec<_> = m
        .proposals
        .values()
        .filter(|p| p.state == ProposalState::Open)
        .cloned()
        .collect();
    let before = node.circle.heads();
    let result = match rng.random_range(0..10) {
        0..=2 => {
            let others: Vec<MemberId> = m.members.iter().filter(|x| **x != me).copied().collect();
            match others.choose(rng) {
                Some(target) => node
                    .circle
                    .propose_removal(me, *target, "sim", t, rng)
                    .map(|_| ()),
                None => Ok(()),
            }
        }
        3..=6 => match open.choose(rng) {
            Some(p) => node.circle.consent_removal(me, p.id, t).map(|_| ()),
            None => Ok(()),
        },
        7 => match open.iter().find(|p| p.by == me) {
            Some(p) => node.circle.withdraw_removal(me, p.id, t),
            None => Ok(()),
        },
        8 => {
            let mine: Vec<DeviceId> = m
                .admitted
                .iter()
                .filter(|d| **d != node.id())
                .filter(|d| node.circle.view().members[&me].devices.contains_key(d))
                .copied()
                .collect();
            match mine.first() {
                Some(d) => node.circle.revoke_device(me, *d, t),
                None => Ok(()),
            }
        }
        _ => node
            .circle
            .checkin(me, Mood::Okay, "still here", t, rng)
            .map(|_| ()),
    };
    if result.is_err() {
        assert_eq!(
            before,
            node.circle.heads(),
            "a refused edit changed something"
        );
    }
    node.rotate(rng);
}

fn run(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut nodes = setup(&mut rng);
    let count = nodes.len();
    for step in 1..=STEPS {
        // Sometimes a partition: two sides that cannot reach each other.
        let cut: Option<BTreeSet<usize>> = rng
            .random_bool(0.4)
            .then(|| (0..count).filter(|_| rng.random_bool(0.5)).collect());
        for _ in 0..rng.random_range(1..=3) {
            let n = rng.random_range(0..count);
            act(&mut nodes, n, step, &mut rng);
        }
        for _ in 0..rng.random_range(0..=4) {
            let a = rng.random_range(0..count);
            let b = rng.random_range(0..count);
            let apart = cut
                .as_ref()
                .is_some_and(|c| c.contains(&a) != c.contains(&b));
            if a != b && !apart {
                sync(&mut nodes, a, b, &mut rng);
            }
        }
    }
    // The network heals: sync every pair until nothing changes.
    let mut rounds = 0;
    loop {
        let mut changed = false;
        for a in 0..count {
            for b in 0..count {
                if a < b {
                    changed |= sync(&mut nodes, a, b, &mut rng);
                }
            }
        }
        if !changed {
            break;
        }
        rounds += 1;
        assert!(rounds < 50, "seed {seed}: did not settle");
    }

    // Who is still in: the devices that what they hold between them
    // admits. A device that departed without hearing of it still thinks
    // itself in, and what it wrote meanwhile reaches nobody, since nobody
    // who knows talks to it; so the answer is a fixed point.
    let mut live_ids: BTreeSet<DeviceId> = nodes.iter().map(Node::id).collect();
    let reference = loop {
        let holders: Vec<&Node> = nodes
            .iter()
            .filter(|n| live_ids.contains(&n.id()))
            .collect();
        if holders.is_empty() {
            // Everyone removed everyone else at once: legal, if sad.
            return;
        }
        let mut all = holders[0].circle.clone();
        let mut book = HeadBook::new();
        for n in &holders {
            book.learn(all.id(), &n.heads());
        }
        for n in &holders {
            let out = all.apply_verified(&n.circle.save(), &mut book).unwrap();
            if std::env::var("SIM_DEBUG").is_ok() && !out.rejected.is_empty() {
                eprintln!(
                    "reference refused from {}: {:?}",
                    n.id().fmt_short(),
                    out.rejected
                );
            }
        }
        let m = all.membership();
        let next: BTreeSet<DeviceId> = live_ids.intersection(&m.admitted).copied().collect();
        if next == live_ids {
            break m;
        }
        live_ids = next;
    };
    let live: Vec<&Node> = nodes
        .iter()
        .filter(|n| reference.admitted.contains(&n.id()))
        .collect();
    let first = live[0];
    let m0 = first.membership();
    if std::env::var("SIM_DEBUG").is_ok() {
        for n in &nodes {
            let m = n.membership();
            eprintln!(
                "{} live={} epoch={} admitted={:?} removed={:?} revoked={:?} heads={}",
                n.id().fmt_short(),
                reference.admitted.contains(&n.id()),
                m.epoch,
                m.admitted.iter().map(|d| d.fmt_short()).collect::<Vec<_>>(),
                m.removed.iter().map(|d| d.fmt_short()).collect::<Vec<_>>(),
                m.revoked.iter().map(|d| d.fmt_short()).collect::<Vec<_>>(),
                n.circle.doc().get_changes(&[]).len()
            );
        }
    }
    for n in &live {
        let m = n.membership();
        assert_eq!(
            n.circle.heads(),
            first.circle.heads(),
            "seed {seed}: documents differ"
        );
        assert_eq!(m.epoch, m0.epoch, "seed {seed}: epochs differ");
        assert_eq!(m.members, m0.members, "seed {seed}: members differ");
        assert_eq!(
            n.keys.epoch(),
            m0.epoch,
            "seed {seed}: a keyring lags its epoch"
        );
        assert_eq!(
            n.keys.active(),
            first.keys.active(),
            "seed {seed}: circle keys differ"
        );
    }
    // Nobody who left holds the key of the epoch everyone is in.
    for n in nodes.iter().filter(|n| !m0.admitted.contains(&n.id())) {
        assert!(
            n.keys.epoch() < m0.epoch || n.keys.active() != first.keys.active(),
            "seed {seed}: a device that left holds the current key"
        );
    }
    // No removal carried with fewer consents than the rule asks.
    for p in m0.proposals.values() {
        if p.state == ProposalState::Carried {
            assert!(p.consents.len() >= 2, "seed {seed}: carried by one person");
            assert!(p.consents.len() >= needed(p.electorate.len()));
            assert!(p.consents.is_subset(&p.electorate));
            assert!(!p.electorate.contains(&p.target));
        }
    }
}

/// Runs seeds `range` (or `SIM_SEED` and `SIM_SEEDS` from the environment,
/// to replay one).
fn run_seeds(range: std::ops::Range<u64>) {
    let env = |k: &str| std::env::var(k).ok().and_then(|s| s.parse::<u64>().ok());
    let range = match (env("SIM_SEED"), env("SIM_SEEDS")) {
        (Some(from), count) => from..from + count.unwrap_or(1),
        _ => range,
    };
    for seed in range {
        run(seed);
    }
}

// A thousand schedules in all, in two halves that run side by side.
#[test]
fn a_thousand_schedules_converge_on_epoch_members_and_key() {
    run_seeds(0..SEEDS / 2);
}

#[test]
fn a_thousand_schedules_converge_on_epoch_members_and_key_second_half() {
    run_seeds(SEEDS / 2..SEEDS);
}

#[test]
fn one_member_alone_cannot_remove_anyone() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut nodes = setup(&mut rng);
    // Two-person electorates aside, a proposer alone never carries it,
    // however many times they consent.
    let me = nodes[1].member;
    let target = nodes[2].member;
    let p = nodes[1]
        .circle
        .propose_removal(me, target, "alone", now(1), &mut rng)
        .unwrap();
    assert!(nodes[1].circle.consent_removal(me, p, now(2)).is_err());
    let m = nodes[1].membership();
    assert_eq!(m.proposals[&p].state, ProposalState::Open);
    assert!(m.members.contains(&target));
    assert_eq!(m.epoch, 0);
}

#[test]
fn concurrent_redemptions_of_a_single_use_invite_resolve_to_one() {
    use roundtable_core::{InviteKind, Redemption};

    let mut rng = StdRng::seed_from_u64(11);
    let maya = MemberKey::from_seed(&rng.random());
    let (laptop, phone) = (
        DeviceKey::from_seed(&rng.random()),
        DeviceKey::from_seed(&rng.random()),
    );
    let mut a = Circle::create(
        "Sim",
        "",
        &maya.certify(laptop.id()),
        &Profile::named("Maya"),
        now(0),
        &mut rng,
    )
    .unwrap();
    a.add_device(&maya.certify(phone.id()), now(0)).unwrap();
    let (invite, secret) = a
        .create_invite(maya.id(), InviteKind::Member, now(100), 1, now(1), &mut rng)
        .unwrap();
    // Two of Maya's devices each let someone in with the same ticket.
    let mut b = a.clone();
    b.set_device(phone.id());
    let (x, y) = (
        MemberKey::from_seed(&rng.random()),
        MemberKey::from_seed(&rng.random()),
    );
    let (xd, yd) = (
        DeviceKey::from_seed(&rng.random()),
        DeviceKey::from_seed(&rng.random()),
    );
    for (copy, who, dev, name) in [(&mut a, &x, &xd, "X"), (&mut b, &y, &yd, "Y")] {
        copy.redeem_invite(
            &Redemption {
                invite,
                secret: &secret,
                cert: &who.certify(dev.id()),
                profile: Some(&Profile::named(name)),
            },
            now(2),
        )
        .unwrap();
        assert!(copy.membership().is_member(who.id()));
    }
    a.merge(&mut b.clone()).unwrap();
    b.merge(&mut a.clone()).unwrap();
    let (ma, mb) = (a.membership(), b.membership());
    assert_eq!(ma, mb, "both copies agree");
    let in_x = ma.is_member(x.id());
    let in_y = ma.is_member(y.id());
    assert!(in_x ^ in_y, "exactly one of the two is in");
    let out = if in_x { yd.id() } else { xd.id() };
    assert!(!ma.admitted.contains(&out));
    assert!(ma.departed.contains(&out));
}
