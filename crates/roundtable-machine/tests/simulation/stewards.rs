//! Devices that are never awake at the same time, meeting only through a
//! steward: the real keeper, over a crash-testing disk, honest or not.

use roundtable_core::circle::device_of;

use super::*;
use crate::world::Hostile;

/// An edit acknowledged on a turn, with the key epoch its device was in.
struct Written {
    by: usize,
    heads: Vec<ChangeHash>,
    epoch: u64,
}

/// One device's turn: it wakes (finding every edit it acknowledged), is
/// awake a while, writes or takes part in a removal, and goes to sleep
/// (or crashes). Nobody else is awake meanwhile.
fn turn(w: &mut World, i: usize, circle: CircleId, step: usize, writes: bool) -> Vec<Written> {
    restart(w, i);
    let awake = w.rng().random_range(2_000..6_000);
    w.run_for(awake);
    let mut written = Vec::new();
    if writes {
        let edits = w.rng().random_range(0..3);
        for k in 0..edits {
            let ins = insiders(w, circle);
            if !ins.contains(&i) {
                break;
            }
            let op = Op::Checkin {
                mood: Mood::Okay,
                note: format!("turn {step}.{k} of {}", w.devs[i].name),
            };
            if perform(w, i, circle, op) {
                let m = w.devs[i].machine();
                written.push(Written {
                    by: i,
                    heads: m.circle(circle).unwrap().heads(),
                    epoch: m.epoch(circle).unwrap(),
                });
            }
            let pause = w.rng().random_range(0..800);
            w.run_for(pause);
        }
    }
    let more = w.rng().random_range(1_000..3_000);
    w.run_for(more);
    if w.rng().random_bool(0.15) {
        w.crash(i);
    } else {
        w.stop(i);
    }
    written
}

/// Every change a device holds was made by the device its actor names:
/// no steward, however it lies, got a device to take something false.
fn nothing_false(w: &mut World, circle: CircleId) {
    let devices: Vec<DeviceId> = w.devs.iter().map(|d| d.device).collect();
    let docs: Vec<Option<Circle>> = (0..w.devs.len())
        .map(|i| {
            w.devs[i]
                .machine
                .as_mut()
                .and_then(|m| m.circle(circle).ok().cloned())
        })
        .collect();
    for (i, doc) in docs.iter().enumerate() {
        let Some(doc) = doc else { continue };
        for change in doc.doc().get_changes(&[]) {
            let Some((author, _)) = device_of(change.actor_id()) else {
                panic!("{} holds a change of no device", w.devs[i].name);
            };
            let Some(j) = devices.iter().position(|d| *d == author) else {
                panic!(
                    "{} holds a change of a device not in the world",
                    w.devs[i].name
                );
            };
            if let Some(theirs) = &docs[j] {
                assert!(
                    theirs.has_change(&change.hash()),
                    "{} holds a change {} never made",
                    w.devs[i].name,
                    w.devs[j].name
                );
            }
        }
    }
}

/// Three or four members, one steward; after joining, never two devices
/// awake together. Sometimes a member is removed by consent along the
/// way, sometimes the steward crashes. Everyone still in ends with the
/// same circle and key, every acknowledged edit everywhere; the removed
/// member holds nothing written under a key after theirs.
fn never_together(seed: u64) {
    never_together_with(seed, None, None);
}

/// `hostile`: how the steward lies; `honest_from`: the round from which it
/// stops (never, with `None`).
fn never_together_with(seed: u64, hostile: Option<Hostile>, honest_from: Option<usize>) {
    let mut w = World::new(seed);
    w.weather = Weather::CALM;
    let (founder, circle) = found(&mut w);
    let members = w.rng().random_range(3..=4);
    for k in 1..members {
        let d = w.add_device(&format!("m{k}"));
        assert!(join(&mut w, founder, d, circle, InviteKind::Member));
    }
    let st = w.add_steward(hostile);
    let steward = w.stewards[st].id;
    assert!(perform(
        &mut w,
        founder,
        circle,
        Op::AddSteward {
            ticket: "a steward of the simulation".into(),
            steward,
            name: None,
        },
    ));
    // The record reaches everyone while they are together, once.
    w.run_for(4_000);
    w.weather = Weather::STORMY;
    for i in 0..w.devs.len() {
        w.stop(i);
    }
    w.apart = true;

    let remove = members == 4 && w.rng().random_bool(0.5);
    let target = 3;
    let mut removed_epoch = None;
    let mut written = Vec::new();
    let mut step = 0;
    for round in 0..5 {
        if honest_from == Some(round) {
            w.stewards[st].hostile = None;
        }
        let mut order: Vec<usize> = (0..w.devs.len()).collect();
        rand::seq::SliceRandom::shuffle(order.as_mut_slice(), w.rng());
        for i in order {
            step += 1;
            written.extend(turn(&mut w, i, circle, step, true));
            if remove && round == 1 && i == 1 {
                // m1 proposes to remove m3 on a turn of their own.
                restart(&mut w, 1);
                let target_member = w.devs[target]
                    .machine
                    .as_ref()
                    .map(|m| m.identity().member.id());
                let target_member = match target_member {
                    Some(m) => m,
                    None => {
                        w.start(target);
                        let m = w.devs[target].machine().identity().member.id();
                        w.stop(target);
                        m
                    }
                };
                perform(
                    &mut w,
                    1,
                    circle,
                    Op::ProposeRemoval {
                        target: target_member,
                        reason: "simulated".into(),
                    },
                );
                w.run_for(3_000);
                w.stop(1);
            }
            if remove && round >= 2 && i == 2 && removed_epoch.is_none() {
                // m2 consents on a turn of theirs, once they see it.
                restart(&mut w, 2);
                w.run_for(3_000);
                let reading = w.devs[2].machine().read(circle).unwrap();
                let open = reading
                    .membership
                    .proposals
                    .values()
                    .find(|p| p.state == ProposalState::Open)
                    .map(|p| p.id);
                if let Some(proposal) = open {
                    perform(&mut w, 2, circle, Op::Consent { proposal });
                    let epoch = w.devs[2].machine().read(circle).unwrap().membership.epoch;
                    removed_epoch = Some(epoch);
                }
                w.run_for(3_000);
                w.stop(2);
            }
            if w.rng().random_bool(0.05) {
                w.crash_steward(st);
            }
        }
    }
    // Turns without writing, until everyone has heard everything.
    for _ in 0..4 {
        for i in 0..w.devs.len() {
            turn(&mut w, i, circle, step, false);
        }
    }
    for i in 0..w.devs.len() {
        restart(&mut w, i);
    }
    nothing_false(&mut w, circle);
    if hostile.is_some() && honest_from.is_none() {
        // A lying steward may keep people apart (it is one path, never
        // the only one); it cannot make anyone take something false.
        return;
    }
    if let Err(why) = converged(&mut w, circle) {
        tell(&mut w, circle);
        if hostile.is_some() {
            panic!("a steward that lied for a while, then was honest, kept people apart: {why}");
        }
        panic!("devices never awake together did not meet through the steward: {why}");
    }
    // Folding keeps the steward near the circle's size: each shelf (one
    // per key the circle used) within about twice a sealed save, once
    // past the fold floor (small here, so that folding is played).
    let size = w.devs[0].machine().circle(circle).unwrap().save().len() as u64;
    if let Some(keeper) = w.stewards[st].keeper.as_ref() {
        for l in keeper.status().lockers {
            let bound = l.shelves as u64 * (3 * size + 4096);
            assert!(
                l.bytes <= bound,
                "the steward holds {} bytes on {} shelves for a circle of {size}",
                l.bytes,
                l.shelves
            );
        }
    }
    if let Some(epoch) = removed_epoch {
        let doc = w.devs[target].machine().circle(circle).unwrap().clone();
        for wr in written
            .iter()
            .filter(|wr| wr.by != target && wr.epoch >= epoch)
        {
            assert!(
                !wr.heads.iter().any(|h| doc.has_change(h)),
                "the removed member got an edit written under a later key"
            );
        }
    }
}

/// What each device holds and how it stands with its stewards, for a
/// failing seed.
fn tell(w: &mut World, circle: CircleId) {
    for d in w.devs.iter_mut() {
        let name = d.name.clone();
        if let Some(m) = d.machine.as_mut() {
            let doc = m.circle(circle).unwrap();
            let changes = doc.doc().get_changes(&[]).len();
            let heads: Vec<String> = doc
                .heads()
                .iter()
                .map(|h| h.to_string()[..8].to_owned())
                .collect();
            let status = m.status();
            let c = &status.circles[0];
            eprintln!(
                "{name}: {changes} changes, heads {heads:?}, epoch {}, stewards {:?}, dropped {:?}, refused {:?}",
                c.epoch, c.stewards, status.dropped, status.refused
            );
        }
    }
}

/// A steward restored from an older copy of its disk answers with less
/// than it showed: the device says so, and puts everything there again,
/// so the others still meet.
fn rolled_back(seed: u64) {
    let mut w = World::new(seed);
    w.weather = Weather::CALM;
    let (founder, circle) = found(&mut w);
    let other = w.add_device("m1");
    assert!(join(&mut w, founder, other, circle, InviteKind::Member));
    let st = w.add_steward(None);
    let steward = w.stewards[st].id;
    assert!(perform(
        &mut w,
        founder,
        circle,
        Op::AddSteward {
            ticket: "a steward of the simulation".into(),
            steward,
            name: None,
        },
    ));
    w.run_for(4_000);
    w.stop(founder);
    w.stop(other);
    w.apart = true;
    let early = w.steward_backup(st);
    for step in 0..3 {
        turn(&mut w, founder, circle, step, true);
        turn(&mut w, other, circle, step, true);
    }
    w.restore_steward(st, &early);
    restart(&mut w, founder);
    w.run_for(5_000);
    let status = w.devs[founder].machine().status();
    let stewards = &status.circles[0].stewards;
    assert!(
        stewards.iter().any(|s| s.stale.is_some()),
        "a steward that lost what it kept is not told: {stewards:?}"
    );
    w.stop(founder);
    for step in 3..7 {
        turn(&mut w, other, circle, step, step < 4);
        turn(&mut w, founder, circle, step, step < 4);
    }
    restart(&mut w, founder);
    restart(&mut w, other);
    if let Err(why) = converged(&mut w, circle) {
        panic!("after the steward's rollback: {why}");
    }
}

/// A steward alters what it hands out to one device: that device says
/// so, and once the steward is honest again it takes the same items
/// intact (its cursor stayed before them), so the two still meet.
fn altered(seed: u64) {
    let mut w = World::new(seed);
    w.weather = Weather::CALM;
    let (founder, circle) = found(&mut w);
    let other = w.add_device("m1");
    assert!(join(&mut w, founder, other, circle, InviteKind::Member));
    let st = w.add_steward(None);
    let steward = w.stewards[st].id;
    assert!(perform(
        &mut w,
        founder,
        circle,
        Op::AddSteward {
            ticket: "a steward of the simulation".into(),
            steward,
            name: None,
        },
    ));
    w.run_for(4_000);
    w.stop(founder);
    w.stop(other);
    w.apart = true;
    restart(&mut w, other);
    w.run_for(2_000);
    let note = format!("written while {} slept", w.devs[founder].name);
    assert!(perform(
        &mut w,
        other,
        circle,
        Op::Checkin {
            mood: Mood::Okay,
            note: note.clone(),
        },
    ));
    w.run_for(3_000);
    w.stop(other);
    w.stewards[st].hostile = Some(Hostile::AltersEvery);
    restart(&mut w, founder);
    w.run_for(5_000);
    let status = w.devs[founder].machine().status();
    let stewards = &status.circles[0].stewards;
    assert!(
        stewards.iter().any(|s| s
            .stale
            .as_deref()
            .is_some_and(|why| why.contains("does not open"))),
        "a steward that altered what it handed out is not told: {stewards:?}"
    );
    let json = w.devs[founder]
        .machine()
        .circle(circle)
        .unwrap()
        .canonical_json();
    assert!(!json.contains(&note), "an altered item was taken");
    w.stop(founder);
    w.stewards[st].hostile = None;
    restart(&mut w, founder);
    restart(&mut w, other);
    w.run_for(5_000);
    if let Err(why) = converged(&mut w, circle) {
        tell(&mut w, circle);
        panic!("after the steward altered items for a while: {why}");
    }
}

#[test]
fn a_steward_that_alters_items_is_told_and_they_come_intact_later() {
    run_seeds(
        "a_steward_that_alters_items_is_told_and_they_come_intact_later",
        0..40,
        altered,
    );
}

// 1,000 seeds in two halves, so they run side by side.
#[test]
fn devices_never_awake_together_meet_through_a_steward_0() {
    run_seeds(
        "devices_never_awake_together_meet_through_a_steward_0",
        0..500,
        never_together,
    );
}

#[test]
fn devices_never_awake_together_meet_through_a_steward_1() {
    run_seeds(
        "devices_never_awake_together_meet_through_a_steward_1",
        500..1_000,
        never_together,
    );
}

/// Two devices awake at once with no path between them but the steward:
/// what one writes reaches the other at once (the steward tells it as it
/// keeps it), not at the next wake.
fn live(seed: u64) {
    let mut w = World::new(seed);
    w.weather = Weather::CALM;
    let (founder, circle) = found(&mut w);
    let other = w.add_device("m1");
    assert!(join(&mut w, founder, other, circle, InviteKind::Member));
    let st = w.add_steward(None);
    let steward = w.stewards[st].id;
    assert!(perform(
        &mut w,
        founder,
        circle,
        Op::AddSteward {
            ticket: "a steward of the simulation".into(),
            steward,
            name: None,
        },
    ));
    w.run_for(4_000);
    w.apart = true;
    // Both watch the steward's shelf by now.
    w.run_for(3_000);
    for k in 0..5 {
        let (from, to) = if k % 2 == 0 {
            (founder, other)
        } else {
            (other, founder)
        };
        assert!(perform(
            &mut w,
            from,
            circle,
            Op::Checkin {
                mood: Mood::Okay,
                note: format!("live {k}"),
            },
        ));
        let heads = w.devs[from].machine().circle(circle).unwrap().heads();
        // Well within a tick of the wake-up schedule: two deliveries'
        // delays and no more.
        w.run_for(100);
        let there = w.devs[to].machine().circle(circle).unwrap().clone();
        assert!(
            heads.iter().all(|h| there.has_change(h)),
            "an edit did not reach a device awake at the same time through the steward at once"
        );
    }
    // Both say the steward holds all they hold.
    w.run_for(1_000);
    for i in [founder, other] {
        let status = w.devs[i].machine().status();
        let st = &status.circles[0].stewards[0];
        assert!(st.connected && st.up_to_date, "{}: {st:?}", w.devs[i].name);
    }
}

#[test]
fn devices_awake_together_meet_live_through_a_steward() {
    run_seeds(
        "devices_awake_together_meet_live_through_a_steward",
        0..40,
        live,
    );
}

#[test]
fn a_hostile_steward_makes_no_device_take_anything_false() {
    run_seeds(
        "a_hostile_steward_makes_no_device_take_anything_false",
        0..60,
        |seed| {
            let how = [
                Hostile::FlipsBits,
                Hostile::Replays,
                Hostile::Mixes,
                Hostile::Withholds,
            ][(seed % 4) as usize];
            never_together_with(seed, Some(how), None);
        },
    );
}

/// A steward that lies for a while (altering, replaying, mixing or
/// withholding what it hands out) and is honest afterwards has delayed
/// people, and lost nobody anything: devices never awake together meet
/// through it all the same.
#[test]
fn a_steward_that_lies_for_a_while_delays_but_loses_nothing() {
    run_seeds(
        "a_steward_that_lies_for_a_while_delays_but_loses_nothing",
        0..100,
        |seed| {
            let how = [
                Hostile::FlipsBits,
                Hostile::Replays,
                Hostile::Mixes,
                Hostile::Withholds,
            ][(seed % 4) as usize];
            never_together_with(seed, Some(how), Some(2 + (seed / 4 % 2) as usize));
        },
    );
}

#[test]
fn a_steward_that_rolls_back_is_told_and_filled_again() {
    run_seeds(
        "a_steward_that_rolls_back_is_told_and_filled_again",
        0..40,
        rolled_back,
    );
}
