//! A member's device writes hundreds of edits a second. The others take
//! them in at the pace the budget allows (`roundtable_machine::rate`), go
//! on taking in everyone else's as they come, and in the end hold every
//! edit: the flooder's too.

use roundtable_core::Op;
use roundtable_machine::rate::{BURST, HELD, PER_SECOND};
use roundtable_machine::{Delayed, Event};

use super::*;

/// How often a reader is told a circle changed, per virtual second, at
/// most, while another device floods: the budget's pace, plus one apply
/// per sync round (with each peer, a session every few seconds, each a
/// few rounds) and the honest edits of the others.
const TOLD_PER_SECOND: usize = PER_SECOND as usize + 10;

/// The flooder writes `per_second` edits a second for `seconds` (in steps
/// of 10 ms); every other device writes one edit a second. Returns, for
/// each device, how often its readers were told the circle changed in each
/// second.
fn flood(
    w: &mut World,
    circle: CircleId,
    flooder: usize,
    per_second: usize,
    seconds: usize,
) -> Vec<Vec<usize>> {
    let n = w.devs.len();
    let mut told = vec![Vec::new(); n];
    for d in &mut w.devs {
        d.events.clear();
    }
    let per_step = per_second / 100;
    for second in 0..seconds {
        for step in 0..100 {
            for k in 0..per_step {
                let op = Op::Moment {
                    text: format!("flood {second}.{step}.{k}"),
                };
                perform(w, flooder, circle, op);
            }
            if step == 50 {
                for i in (0..n).filter(|i| *i != flooder) {
                    let op = Op::Checkin {
                        mood: Mood::Okay,
                        note: format!("{i} at {second}"),
                    };
                    perform(w, i, circle, op);
                }
            }
            w.run_for(10);
        }
        for (i, d) in w.devs.iter_mut().enumerate() {
            let changed = d
                .events
                .drain(..)
                .filter(|e| matches!(e, Event::Changed { .. }))
                .count();
            told[i].push(changed);
        }
    }
    told
}

/// What device `at` held back of device `of`'s edits.
fn delayed(w: &mut World, at: usize, of: usize, circle: CircleId) -> Delayed {
    let of = w.devs[of].device;
    let status = w.devs[at].machine().status();
    status
        .circles
        .iter()
        .find(|c| c.id == circle)
        .and_then(|c| c.devices.iter().find(|d| d.device == of))
        .map(|d| d.delayed)
        .unwrap_or_default()
}

/// The others' readers are told of changes at the budget's pace, not the
/// flood's, in every second of it.
fn assert_paced(w: &World, told: &[Vec<usize>], flooder: usize) {
    for (i, seconds) in told.iter().enumerate() {
        if i == flooder {
            continue;
        }
        // The first second may spend the burst.
        let first = seconds.first().copied().unwrap_or(0);
        assert!(
            first <= BURST as usize + TOLD_PER_SECOND,
            "{} was told of {first} changes in the flood's first second",
            w.devs[i].name
        );
        for (s, n) in seconds.iter().enumerate().skip(1) {
            assert!(
                *n <= TOLD_PER_SECOND,
                "{} was told of {n} changes in second {s} of the flood (at most {TOLD_PER_SECOND}): {seconds:?}",
                w.devs[i].name
            );
        }
    }
}

/// One flood, measured closely, on a calm network: the pace, the counts,
/// and every edit everywhere in the end.
#[test]
fn an_edit_flood_is_taken_in_at_the_budgets_pace_and_nothing_is_lost() {
    let mut w = World::new(70_000);
    w.weather = Weather::CALM;
    let (a, circle) = found(&mut w);
    let (b, c) = (w.add_device("m1"), w.add_device("m2"));
    assert!(join(&mut w, a, b, circle, InviteKind::Member));
    assert!(join(&mut w, a, c, circle, InviteKind::Member));
    w.run_for(5_000);
    let told = flood(&mut w, circle, b, 300, 20);
    assert_paced(&w, &told, b);
    for i in [a, c] {
        let d = delayed(&mut w, i, b, circle);
        assert!(d.held >= HELD as u64, "{d:?}");
        assert!(d.left_for_sync > 0, "{d:?}");
        // Nobody else's edits were held back.
        assert_eq!(delayed(&mut w, i, 3 - i - b, circle), Delayed::default());
    }
    settle(&mut w, circle);
    assert_eq!(w.devs[b].acked.len(), 300 * 20);
}

/// Seeds of a circle of three to five members in which one floods for a
/// while over a stormy network, with a partition part of the time and a
/// crash of another device: every device's readers are told at the pace,
/// and the circle settles with every edit, the flooder's included.
fn edit_flood(seed: u64) {
    let mut w = World::new(seed);
    w.weather = Weather::CALM;
    let (founder, circle) = found(&mut w);
    let members = w.rng().random_range(2..=4);
    for k in 1..=members {
        let d = w.add_device(&format!("m{k}"));
        assert!(join(&mut w, founder, d, circle, InviteKind::Member));
    }
    w.run_for(5_000);
    w.weather = Weather::STORMY;
    let n = w.devs.len();
    let flooder = w.rng().random_range(0..n);
    let told = flood(&mut w, circle, flooder, 300, 5);
    assert_paced(&w, &told, flooder);
    // A partition, and a device down, while the flood goes on.
    w.cut = Some((0..n).filter(|_| w.rng().random_bool(0.5)).collect());
    let others: Vec<usize> = (0..n).filter(|i| *i != flooder).collect();
    let down = pick(&mut w, &others).unwrap();
    w.crash(down);
    flood(&mut w, circle, flooder, 200, 5);
    w.cut = None;
    restart(&mut w, down);
    let told = flood(&mut w, circle, flooder, 300, 5);
    assert_paced(&w, &told, flooder);
    settle(&mut w, circle);
}

#[test]
fn an_edit_flood() {
    run_seeds("an_edit_flood", 70_100..70_104, edit_flood);
}
