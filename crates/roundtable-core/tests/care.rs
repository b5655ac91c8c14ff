//! The circle's care under a fixed clock: the quiet view, asks and offers,
//! gatherings, stepping back, the feed's order and the archive.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Cast, T0};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use roundtable_core::quiet::{QuietRule, quiet};
use roundtable_core::{Answer, Mood, NewGathering, RequestKind, Timestamp};

const DAY: i64 = 86_400_000;

fn at(days: f64) -> Timestamp {
    Timestamp::from_millis(T0 + (days * DAY as f64) as i64)
}

#[test]
fn quiet_is_measured_against_each_members_own_rhythm() {
    let cast = Cast::new(5);
    let mut c = cast.circle();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (maya, sam, ada) = (
        cast.members[0].id(),
        cast.members[1].id(),
        cast.members[2].id(),
    );
    // Sam checks in every 4 days, last on day 20.
    for d in [0.0, 4.0, 8.0, 12.0, 16.0, 20.0] {
        c.checkin(sam, Mood::Okay, "", at(d), &mut rng).unwrap();
    }
    // Maya writes every 15 days, last on day 15.
    for d in [0.0, 15.0] {
        c.moment(maya, "garden", at(d), &mut rng).unwrap();
    }
    c.checkin(maya, Mood::Okay, "", at(30.0), &mut rng).unwrap();
    // Ada only replied once, on day 1.
    let first = *c.view().checkins.keys().next().unwrap();
    c.reply(first, ada, "here for you", at(1.0), &mut rng)
        .unwrap();

    let rule = QuietRule::default();
    // Day 31: Sam's silence is 11 days against a 4-day rhythm; Ada is new
    // and silent for 30 days; Maya wrote yesterday.
    let now = at(31.0);
    let q = quiet(&c.view(), now, &rule);
    let names: Vec<&str> = q.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, vec!["Ada", "Sam"], "{q:#?}");
    let sam_q = q.iter().find(|q| q.member == sam).unwrap();
    assert_eq!(sam_q.days_silent, 11);
    assert_eq!(sam_q.usual_gap_days, Some(4.0));
    assert_eq!(
        sam_q.reason,
        "Sam usually shows up every 4 days; it has been 11 days"
    );

    // On day 26 Sam has been silent 6 days: less than twice his rhythm of 4.
    let names: Vec<String> = quiet(&c.view(), at(26.0), &rule)
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert!(!names.contains(&"Sam".to_owned()), "{names:?}");

    // Stepping back: Sam is left be until the date he gave.
    c.step_back(sam, Some(at(40.0)), "exams", at(30.5)).unwrap();
    let names: Vec<String> = quiet(&c.view(), now, &rule)
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(names, vec!["Ada"]);
    let names: Vec<String> = quiet(&c.view(), at(41.0), &rule)
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert!(
        names.contains(&"Sam".to_owned()),
        "back on the radar after the date: {names:?}"
    );
    c.come_back(sam, at(31.0)).unwrap();
    assert!(c.view().members[&sam].away.is_none());
}

#[test]
fn a_clock_a_day_ahead_does_not_make_anyone_quiet_or_jump_the_feed() {
    let cast = Cast::new(6);
    let base = cast.circle();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (maya, sam) = (cast.members[0].id(), cast.members[1].id());
    let mut a = cast.fork(&base, 0);
    // Sam's device runs a day ahead.
    for d in [0.0, 2.0, 4.0] {
        a.checkin(sam, Mood::Okay, "early", at(d + 1.0), &mut rng)
            .unwrap();
    }
    let now = at(4.0);
    let names: Vec<String> = quiet(&a.view(), now, &QuietRule::default())
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert!(!names.contains(&"Sam".to_owned()), "{names:?}");
    // Maya writes after seeing Sam's check-ins, with a correct clock: she comes after him.
    a.checkin(maya, Mood::Heavy, "later", now, &mut rng)
        .unwrap();
    let view = a.view();
    let feed = roundtable_core::feed::timeline(&view);
    assert_eq!(feed.last().unwrap().kind(), "checkin");
    match feed.last().unwrap() {
        roundtable_core::feed::Entry::Checkin(_, c) => assert_eq!(c.note, "later"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn concurrent_commitments_rsvps_and_dishes_are_all_kept() {
    let cast = Cast::new(7);
    let mut base = cast.circle();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (maya, sam, ada) = (
        cast.members[0].id(),
        cast.members[1].id(),
        cast.members[2].id(),
    );
    let ask = base
        .request(
            RequestKind::Ask,
            maya,
            "soup this week?",
            "Tuesday",
            at(0.0),
            &mut rng,
        )
        .unwrap();
    let g = base
        .gathering(
            maya,
            &NewGathering {
                title: "Soup night".into(),
                starts: "2026-12-01T19:00:00-05:00[America/New_York]"
                    .parse()
                    .unwrap(),
                place: "Maya's".into(),
                hosts: vec![maya, ada],
                one_of_each: false,
            },
            at(0.0),
            &mut rng,
        )
        .unwrap();
    let mut a = cast.fork(&base, 0);
    let mut b = cast.fork(&base, 1);
    a.commit_to(ask, sam, "I'll bring soup Tuesday", at(1.0), &mut rng)
        .unwrap();
    b.commit_to(ask, ada, "I'll bring bread", at(1.0), &mut rng)
        .unwrap();
    a.rsvp(g, sam, Answer::Yes, at(1.0)).unwrap();
    b.rsvp(g, ada, Answer::Maybe, at(1.0)).unwrap();
    a.bring(g, sam, "lentil soup", "vegan", at(1.0), &mut rng)
        .unwrap();
    b.bring(g, ada, "sourdough", "has gluten", at(1.0), &mut rng)
        .unwrap();
    let (mut a2, mut b2) = (a.clone(), b.clone());
    a.merge(&mut b2).unwrap();
    b.merge(&mut a2).unwrap();
    assert_eq!(a.canonical_json(), b.canonical_json());
    let v = a.view();
    assert_eq!(v.requests[&ask].commitments.len(), 2);
    assert_eq!(v.gatherings[&g].rsvps.len(), 2);
    assert_eq!(v.gatherings[&g].dishes.len(), 2);
    assert_eq!(v.gatherings[&g].hosts.len(), 2);

    // Only the asker closes the loop.
    assert!(a.close_request(ask, sam, "", at(2.0)).is_err());
    a.close_request(ask, maya, "thank you both", at(2.0))
        .unwrap();
    assert_eq!(
        a.view().requests[&ask].done.as_ref().unwrap().thanks,
        "thank you both"
    );
    a.came(g, sam, maya, at(3.0)).unwrap();
    let md = roundtable_core::export::markdown(&a.view(), &jiff::tz::TimeZone::UTC);
    for needle in [
        "soup this week?",
        "I'll bring soup Tuesday",
        "I'll bring bread",
        "thank you both",
        "Soup night",
        "lentil soup (vegan)",
        "came: Sam",
        // When it starts, as people say it (here in UTC, with the hour at
        // its place), never the stored "…-05:00[America/New_York]".
        "Wed 2 Dec 2026, 00:00 (19:00 in America/New\\_York)",
    ] {
        assert!(md.contains(needle), "{needle} missing from:\n{md}");
    }
    assert!(!md.contains("[America/New_York]"), "{md}");
}
