//! Double-ups: what edits made on devices that had not met doubled, found
//! alike on every copy that holds them, said in words to the people they
//! concern, and settled by one ordinary edit everywhere.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Cast, T0};
use jiff::tz::TimeZone;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use roundtable_core::double_ups::{self, DoubleUp};
use roundtable_core::{
    Answer, Circle, EntityId, GatheringEdit, NewGathering, Op, RequestKind, Timestamp,
};

const DAY: i64 = 86_400_000;

fn at(days: i64) -> Timestamp {
    Timestamp::from_millis(T0 + days * DAY)
}

fn now() -> Timestamp {
    at(2)
}

fn found(c: &Circle) -> Vec<DoubleUp> {
    double_ups::find(&c.view(), now())
}

fn merged(a: &mut Circle, b: &mut Circle) {
    a.merge(b).unwrap();
    b.merge(a).unwrap();
}

/// The base circle (Maya, Sam, Ada), an ask of Ada's and a soup night of
/// Maya's, and two copies of it.
struct Apart {
    cast: Cast,
    a: Circle,
    b: Circle,
    ask: EntityId,
    soup: EntityId,
}

fn apart(one_of_each: bool) -> Apart {
    let cast = Cast::new(7);
    let mut base = cast.circle();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (maya, ada) = (cast.members[0].id(), cast.members[2].id());
    let ask = base
        .request(
            RequestKind::Ask,
            ada,
            "a lift to the clinic",
            "Thursday",
            at(1),
            &mut rng,
        )
        .unwrap();
    let soup = base
        .gathering(
            maya,
            &NewGathering {
                title: "Soup night".into(),
                starts: "2026-12-05T19:00:00+00:00[UTC]".parse().unwrap(),
                place: "Maya's".into(),
                hosts: vec![],
                one_of_each,
            },
            at(1),
            &mut rng,
        )
        .unwrap();
    let a = cast.fork(&base, 1);
    let b = cast.fork(&base, 2);
    Apart {
        cast,
        a,
        b,
        ask,
        soup,
    }
}

#[test]
fn an_ask_taken_up_twice_apart_is_said_to_both_and_settled_by_one_stepping_aside() {
    let Apart {
        cast,
        mut a,
        mut b,
        ask,
        ..
    } = apart(false);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (maya, sam, ada) = (
        cast.members[0].id(),
        cast.members[1].id(),
        cast.members[2].id(),
    );
    a.commit_to(ask, maya, "I'll drive", now(), &mut rng)
        .unwrap();
    assert!(found(&a).is_empty(), "one taker is what it needs");
    b.commit_to(ask, sam, "I can take her", now(), &mut rng)
        .unwrap();
    merged(&mut a, &mut b);
    let (on_a, on_b) = (found(&a), found(&b));
    assert_eq!(on_a, on_b);
    assert_eq!(on_a.len(), 1, "{on_a:#?}");
    let d = &on_a[0];
    assert_eq!(d.kind(), "taken_by_more");
    assert!(d.concerns(maya) && d.concerns(sam) && d.concerns(ada));
    let tz = TimeZone::UTC;
    let view = a.view();
    assert_eq!(
        d.says(&view, Some(maya), now(), &tz),
        "You and Sam both took up Ada's ask \"a lift to the clinic\", which needs one person. One of you can step aside, or Ada can say all are welcome."
    );
    assert_eq!(
        d.says(&view, Some(ada), now(), &tz),
        "Maya and Sam both took up your ask \"a lift to the clinic\", which needs one person. If both are welcome, say so; else one of them can step aside."
    );
    // Sam steps aside, on his copy; Maya's copy learns of it.
    let choices = d.choices(sam, now(), &tz);
    assert_eq!(choices.len(), 1);
    assert_eq!(choices[0].label, "Step aside");
    b.perform(&choices[0].op, sam, now(), &mut rng).unwrap();
    assert!(found(&b).is_empty());
    merged(&mut a, &mut b);
    assert!(found(&a).is_empty(), "settled on every copy");
    assert_eq!(a.view().requests[&ask].commitments.len(), 1);
}

#[test]
fn the_asker_saying_both_are_welcome_settles_it_and_only_the_asker_may() {
    let Apart {
        cast,
        mut a,
        mut b,
        ask,
        ..
    } = apart(false);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (maya, sam, ada) = (
        cast.members[0].id(),
        cast.members[1].id(),
        cast.members[2].id(),
    );
    a.commit_to(ask, maya, "I'll drive", now(), &mut rng)
        .unwrap();
    b.commit_to(ask, sam, "me too", now(), &mut rng).unwrap();
    merged(&mut a, &mut b);
    let d = found(&a).remove(0);
    let tz = TimeZone::UTC;
    assert!(
        d.choices(maya, now(), &tz)
            .iter()
            .all(|c| c.label != "Both are welcome"),
        "only the asker says how many it needs"
    );
    let welcome = d
        .choices(ada, now(), &tz)
        .into_iter()
        .find(|c| c.label == "Both are welcome")
        .unwrap();
    assert_eq!(
        welcome.op,
        Op::Hands {
            request: ask,
            hands: 2
        }
    );
    a.perform(&welcome.op, ada, now(), &mut rng).unwrap();
    merged(&mut a, &mut b);
    assert!(found(&b).is_empty());
    // A member may not say how many someone else's ask needs.
    assert!(b.set_hands(ask, sam, 5, now()).is_err());
    assert!(b.set_hands(ask, ada, 0, now()).is_err());
}

#[test]
fn a_time_changed_on_two_devices_apart_is_shown_with_both_and_kept_once() {
    let Apart {
        cast,
        mut a,
        mut b,
        soup,
        ..
    } = apart(false);
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let (maya, sam) = (cast.members[0].id(), cast.members[1].id());
    let edit = |starts: &str| GatheringEdit {
        starts: Some(starts.parse().unwrap()),
        ..GatheringEdit::default()
    };
    a.edit_gathering(soup, maya, &edit("2026-12-03T19:00:00+00:00[UTC]"), now())
        .unwrap();
    b.edit_gathering(soup, maya, &edit("2026-12-04T18:00:00+00:00[UTC]"), now())
        .unwrap();
    assert!(
        b.edit_gathering(soup, sam, &edit("2026-12-06T18:00:00+00:00[UTC]"), now())
            .is_err(),
        "only the proposer and hosts change a gathering"
    );
    merged(&mut a, &mut b);
    let on_a = found(&a);
    assert_eq!(on_a, found(&b));
    assert_eq!(on_a.len(), 1, "{on_a:#?}");
    let d = &on_a[0];
    assert_eq!(d.kind(), "changed");
    assert!(d.concerns(maya) && !d.concerns(sam));
    let tz = TimeZone::UTC;
    let says = d.says(&a.view(), Some(maya), now(), &tz);
    assert!(
        says.starts_with("The time of \"Soup night\" was changed on devices that had not met: "),
        "{says}"
    );
    assert!(
        says.contains("Thu 3 Dec, 19:00") && says.contains("Fri 4 Dec, 18:00"),
        "{says}"
    );
    let choices = d.choices(maya, now(), &tz);
    assert_eq!(choices.len(), 2);
    let keep = choices
        .iter()
        .find(|c| c.label == "Keep Fri 4 Dec, 18:00")
        .unwrap();
    a.perform(&keep.op, maya, now(), &mut rng).unwrap();
    merged(&mut a, &mut b);
    assert!(found(&a).is_empty() && found(&b).is_empty());
    assert_eq!(
        b.view().gatherings[&soup].starts,
        "2026-12-04T18:00:00+00:00[UTC]"
    );
}

#[test]
fn an_answer_that_differs_across_ones_own_devices_is_said_to_them_alone() {
    let Apart {
        cast,
        mut a,
        mut b,
        soup,
        ..
    } = apart(false);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (maya, sam) = (cast.members[0].id(), cast.members[1].id());
    a.rsvp(soup, sam, Answer::Yes, now()).unwrap();
    b.rsvp(soup, sam, Answer::No, now()).unwrap();
    // The same answer on both is no double-up.
    a.rsvp(soup, maya, Answer::Yes, now()).unwrap();
    b.rsvp(soup, maya, Answer::Yes, now()).unwrap();
    merged(&mut a, &mut b);
    let on_a = found(&a);
    assert_eq!(on_a, found(&b));
    assert_eq!(on_a.len(), 1, "{on_a:#?}");
    let d = &on_a[0];
    assert!(d.concerns(sam) && !d.concerns(maya));
    let tz = TimeZone::UTC;
    let says = d.says(&a.view(), Some(sam), now(), &tz);
    assert!(
        says == "You answered \"Soup night\" differently on devices that had not met: yes or no. Which stands?"
            || says
                == "You answered \"Soup night\" differently on devices that had not met: no or yes. Which stands?",
        "{says}"
    );
    assert!(d.choices(maya, now(), &tz).is_empty());
    let no = d
        .choices(sam, now(), &tz)
        .into_iter()
        .find(|c| c.label == "Keep \"no\"")
        .unwrap();
    b.perform(&no.op, sam, now(), &mut rng).unwrap();
    merged(&mut a, &mut b);
    assert!(found(&a).is_empty());
    assert_eq!(a.view().gatherings[&soup].rsvps[&sam].answer, Answer::No);
}

#[test]
fn a_dish_brought_twice_is_a_double_up_only_where_the_potluck_asked_for_one_of_each() {
    for one_of_each in [false, true] {
        let Apart {
            cast,
            mut a,
            mut b,
            soup,
            ..
        } = apart(one_of_each);
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let (maya, sam) = (cast.members[0].id(), cast.members[1].id());
        a.bring(soup, maya, "Bread", "", now(), &mut rng).unwrap();
        b.bring(soup, sam, " bread", "vegan", now(), &mut rng)
            .unwrap();
        b.bring(soup, sam, "salad", "", now(), &mut rng).unwrap();
        merged(&mut a, &mut b);
        let on_a = found(&a);
        assert_eq!(on_a, found(&b));
        if !one_of_each {
            assert!(on_a.is_empty(), "{on_a:#?}");
            continue;
        }
        assert_eq!(on_a.len(), 1, "{on_a:#?}");
        let d = &on_a[0];
        assert_eq!(d.kind(), "dish_twice");
        let tz = TimeZone::UTC;
        let says = d.says(&a.view(), Some(maya), now(), &tz);
        assert!(
            says.starts_with("You and Sam are both bringing \"")
                && says.ends_with("to \"Soup night\", which asks for one of each. One of you can bring something else."),
            "{says}"
        );
        let aside = d.choices(sam, now(), &tz).remove(0);
        b.perform(&aside.op, sam, now(), &mut rng).unwrap();
        merged(&mut a, &mut b);
        assert!(found(&a).is_empty());
        assert_eq!(
            a.view().gatherings[&soup].dishes.len(),
            2,
            "the salad stays"
        );
    }
}

#[test]
fn words_edited_on_two_devices_apart_are_the_authors_to_choose() {
    let Apart {
        cast,
        mut a,
        mut b,
        ask,
        ..
    } = apart(false);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (maya, ada) = (cast.members[0].id(), cast.members[2].id());
    a.edit_entry(ask, ada, "a lift to the clinic at 9", now())
        .unwrap();
    b.edit_entry(ask, ada, "a lift to the clinic at 10", now())
        .unwrap();
    merged(&mut a, &mut b);
    let on_a = found(&a);
    assert_eq!(on_a, found(&b));
    assert_eq!(on_a.len(), 1, "{on_a:#?}");
    let d = &on_a[0];
    assert!(d.concerns(ada) && !d.concerns(maya));
    let tz = TimeZone::UTC;
    let says = d.says(&a.view(), Some(ada), now(), &tz);
    assert!(
        says.starts_with("Your ask or offer was changed on two devices before they met: "),
        "{says}"
    );
    let keep = d.choices(ada, now(), &tz).remove(1);
    a.perform(&keep.op, ada, now(), &mut rng).unwrap();
    merged(&mut a, &mut b);
    assert!(found(&b).is_empty());
}

/// One edit on a copy of its own: who makes it and what.
#[derive(Debug, Clone)]
enum Apt {
    Take(usize),
    Rsvp(usize, bool),
    Bring(usize, u8),
    Time(u8),
    Place(u8),
    Words(u8),
}

fn apt() -> impl Strategy<Value = Apt> {
    prop_oneof![
        (0usize..3).prop_map(Apt::Take),
        (0usize..3, any::<bool>()).prop_map(|(m, y)| Apt::Rsvp(m, y)),
        (0usize..3, 0u8..3).prop_map(|(m, d)| Apt::Bring(m, d)),
        (0u8..3).prop_map(Apt::Time),
        (0u8..3).prop_map(Apt::Place),
        (0u8..3).prop_map(Apt::Words),
    ]
}

fn make(w: &Apart, c: &mut Circle, edit: &Apt, rng: &mut ChaCha8Rng) {
    let m = |i: usize| w.cast.members[i].id();
    let (maya, ada) = (m(0), m(2));
    let _ = match edit {
        Apt::Take(i) => c.commit_to(w.ask, m(*i), "I'll go", now(), rng).map(drop),
        Apt::Rsvp(i, yes) => c
            .rsvp(
                w.soup,
                m(*i),
                if *yes { Answer::Yes } else { Answer::Maybe },
                now(),
            )
            .map(drop),
        Apt::Bring(i, d) => c
            .bring(
                w.soup,
                m(*i),
                ["bread", "soup", "pie"][*d as usize],
                "",
                now(),
                rng,
            )
            .map(drop),
        Apt::Time(h) => c
            .edit_gathering(
                w.soup,
                maya,
                &GatheringEdit {
                    starts: Some(format!("2026-12-05T1{h}:00:00+00:00[UTC]").parse().unwrap()),
                    ..GatheringEdit::default()
                },
                now(),
            )
            .map(drop),
        Apt::Place(p) => c
            .edit_gathering(
                w.soup,
                maya,
                &GatheringEdit {
                    place: Some(format!("place {p}")),
                    ..GatheringEdit::default()
                },
                now(),
            )
            .map(drop),
        Apt::Words(t) => c
            .edit_entry(w.ask, ada, &format!("a lift, take {t}"), now())
            .map(drop),
    };
}

proptest! {
    /// Any edits made on two copies apart: once they meet, both find the
    /// same double-ups, whichever way the merge went; and the choices each
    /// offers, made on either copy, settle it on both (an ask three people
    /// took up settles after two step aside).
    #[test]
    fn every_copy_finds_the_same_double_ups_and_choices_settle_each_everywhere(
        on_a in prop::collection::vec(apt(), 0..6),
        on_b in prop::collection::vec(apt(), 0..6),
        settle_on_a in any::<bool>(),
    ) {
        let w = apart(true);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (mut a, mut b) = (w.a.clone(), w.b.clone());
        for e in &on_a { make(&w, &mut a, e, &mut rng); }
        for e in &on_b { make(&w, &mut b, e, &mut rng); }
        // One copy takes the other's changes, and the other way round.
        let mut a_then_b = a.clone();
        a_then_b.merge(&mut b.clone()).unwrap();
        let mut b_then_a = b.clone();
        b_then_a.merge(&mut a.clone()).unwrap();
        let all = found(&a_then_b);
        prop_assert_eq!(&all, &found(&b_then_a));
        let tz = TimeZone::UTC;
        for d in &all {
            let (mut x, mut y) = (a_then_b.clone(), b_then_a.clone());
            let mut steps = 0;
            while let Some(now_d) = found(&x).into_iter().find(|e| e.id == d.id) {
                steps += 1;
                prop_assert!(steps <= 8, "{:?} never settles", now_d);
                let Some((who, choice)) = now_d.people.iter().find_map(|p| {
                    now_d.choices(*p, now(), &tz).into_iter().next().map(|c| (*p, c))
                }) else {
                    prop_assert!(false, "nobody can settle {:?}", now_d);
                    break;
                };
                let settler = if settle_on_a { &mut x } else { &mut y };
                settler.perform(&choice.op, who, now(), &mut rng).unwrap();
                merged(&mut x, &mut y);
                prop_assert_eq!(found(&x), found(&y));
            }
        }
    }
}

/// A device's copy with the head book a node keeps beside it, so what it
/// hears goes through the checks every received change goes through.
struct Dev {
    key: roundtable_core::DeviceKey,
    circle: Circle,
    book: roundtable_core::HeadBook,
}

impl Dev {
    /// `seed` names the device as `Cast::circle` certified it.
    fn of(base: &Circle, seed: u8) -> Self {
        let key = roundtable_core::DeviceKey::from_seed(&[seed; 32]);
        let mut circle = Circle::load(&base.save()).unwrap();
        circle.set_device(key.id());
        Self {
            key,
            circle,
            book: roundtable_core::HeadBook::default(),
        }
    }

    /// Hears everything `from` has, as a sync would hand it over.
    fn hear(&mut self, from: &Dev) {
        let mut heads = from.book.all();
        heads.extend(roundtable_core::SignedHead::sign_all(
            &from.circle,
            &from.key,
        ));
        self.book.learn(self.circle.id(), &heads);
        let applied = self
            .circle
            .apply_verified(&from.circle.changes_since(&[]), &mut self.book)
            .unwrap();
        assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
    }
}

#[test]
fn double_ups_and_what_settles_them_pass_the_checks_every_received_change_passes() {
    let w = apart(true);
    let mut base = w.a.clone();
    base.set_device(roundtable_core::DeviceKey::from_seed(&[200; 32]).id());
    let (maya, sam) = (w.cast.members[0].id(), w.cast.members[1].id());
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let (mut m, mut s) = (Dev::of(&base, 200), Dev::of(&base, 202));
    m.circle
        .commit_to(w.ask, maya, "I'll drive", now(), &mut rng)
        .unwrap();
    m.circle
        .edit_gathering(
            w.soup,
            maya,
            &GatheringEdit {
                place: Some("the hall".into()),
                ..GatheringEdit::default()
            },
            now(),
        )
        .unwrap();
    m.circle
        .bring(w.soup, maya, "pie", "", now(), &mut rng)
        .unwrap();
    s.circle
        .commit_to(w.ask, sam, "me", now(), &mut rng)
        .unwrap();
    s.circle
        .bring(w.soup, sam, "Pie", "", now(), &mut rng)
        .unwrap();
    m.hear(&s);
    s.hear(&m);
    let on_m = found(&m.circle);
    assert_eq!(on_m, found(&s.circle));
    let kinds: Vec<&str> = on_m.iter().map(DoubleUp::kind).collect();
    assert_eq!(kinds, vec!["taken_by_more", "dish_twice"], "{on_m:#?}");
    // Ada is not here to say both are welcome: Sam steps aside from both.
    let tz = TimeZone::UTC;
    for d in &on_m {
        let c = d.choices(sam, now(), &tz).remove(0);
        s.circle.perform(&c.op, sam, now(), &mut rng).unwrap();
    }
    m.hear(&s);
    assert!(found(&m.circle).is_empty());
    assert_eq!(m.circle.view().gatherings[&w.soup].place, "the hall");
    // What nobody may do is refused before it is written.
    assert!(s.circle.set_hands(w.ask, sam, 3, now()).is_err());
    assert!(
        s.circle
            .edit_gathering(
                w.soup,
                sam,
                &GatheringEdit {
                    title: Some("Sam's night".into()),
                    ..GatheringEdit::default()
                },
                now(),
            )
            .is_err()
    );
}
