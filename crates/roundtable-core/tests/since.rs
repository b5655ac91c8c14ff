//! While you were away: what arrived since a person last looked, in
//! words, what concerns them first, whatever order it came in.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Cast, T0};
use jiff::tz::TimeZone;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use roundtable_core::since::{About, MAX_LINES, Seen, account};
use roundtable_core::{Answer, GatheringEdit, Mood, NewGathering, RequestKind, Timestamp};

const DAY: i64 = 86_400_000;

fn at(days: i64) -> Timestamp {
    Timestamp::from_millis(T0 + days * DAY)
}

#[test]
fn what_arrived_is_told_in_words_with_what_concerns_you_first() {
    let cast = Cast::new(3);
    let mut c = cast.circle();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (maya, sam, ada) = (
        cast.members[0].id(),
        cast.members[1].id(),
        cast.members[2].id(),
    );
    let mine = c
        .checkin(maya, Mood::Heavy, "long week", at(1), &mut rng)
        .unwrap();
    let ask = c
        .request(RequestKind::Ask, maya, "a lift", "", at(1), &mut rng)
        .unwrap();
    let soup = c
        .gathering(
            ada,
            &NewGathering {
                title: "Soup night".into(),
                starts: "2026-12-05T19:00:00+00:00[UTC]".parse().unwrap(),
                place: "Ada's".into(),
                hosts: vec![],
                one_of_each: false,
            },
            at(1),
            &mut rng,
        )
        .unwrap();
    c.rsvp(soup, maya, Answer::Yes, at(1)).unwrap();
    let ladder = c
        .request(RequestKind::Ask, sam, "a ladder", "", at(1), &mut rng)
        .unwrap();
    c.commit_to(ladder, maya, "mine is free", at(1), &mut rng)
        .unwrap();
    let seen = Seen::now(&c, at(2));

    // Maya is away; the others write, and she writes a little too.
    c.checkin(sam, Mood::Okay, "", at(3), &mut rng).unwrap();
    c.checkin(sam, Mood::Okay, "", at(4), &mut rng).unwrap();
    c.checkin(ada, Mood::Struggling, "rough", at(4), &mut rng)
        .unwrap();
    c.reply(mine, sam, "here for you", at(4), &mut rng).unwrap();
    c.commit_to(ask, ada, "I'll drive", at(4), &mut rng)
        .unwrap();
    c.edit_gathering(
        soup,
        ada,
        &GatheringEdit {
            starts: Some("2026-12-03T19:00:00+00:00[UTC]".parse().unwrap()),
            ..GatheringEdit::default()
        },
        at(4),
    )
    .unwrap();
    c.step_back(ada, Some(at(12)), "", at(5)).unwrap();
    c.close_request(ladder, sam, "thanks!", at(5)).unwrap();
    c.moment(maya, "my own news", at(5), &mut rng).unwrap();

    let before = c.view_at(&seen.heads).unwrap();
    let tz = TimeZone::UTC;
    let a = account(&before, &c.view(), maya, seen.at, at(6), &tz).unwrap();
    assert_eq!(a.heading(), "While you were away (since Wed 25 Nov)");
    let lines: Vec<(&str, bool)> = a.lines.iter().map(|l| (l.text.as_str(), l.yours)).collect();
    assert_eq!(
        lines,
        vec![
            ("Sam replied to you: \"here for you\"", true),
            ("Sam's ask \"a ladder\", which you took up, is done", true),
            (
                "Ada will help with your ask \"a lift\": \"I'll drive\"",
                true
            ),
            ("\"Soup night\" moved to Thu 3 Dec, 19:00", true),
            ("Ada is stepping back until Sat 5 Dec", false),
            ("Sam checked in twice", false),
            ("Ada checked in, and is struggling", false),
        ],
        "{a:#?}"
    );
    assert_eq!(a.lines[0].about, Some(About::Entry(mine)));
    assert_eq!(a.lines[3].about, Some(About::Gathering(soup)));
    assert_eq!(a.lines[1].about, Some(About::Entry(ladder)));
    assert!(!a.more);
    // Her own edits are not news to her; Sam's account has hers.
    let for_sam = account(&before, &c.view(), sam, seen.at, at(6), &tz).unwrap();
    assert!(
        for_sam
            .lines
            .iter()
            .any(|l| l.text == "Maya shared a moment: \"my own news\"" && !l.yours)
    );
    // Nothing new from others: nothing to tell.
    let now = Seen::now(&c, at(6));
    let same = c.view_at(&now.heads).unwrap();
    assert_eq!(account(&same, &c.view(), maya, now.at, at(6), &tz), None);
}

#[test]
fn a_long_absence_is_told_in_a_few_lines_and_a_mark_that_does_not_read_is_no_mark() {
    let cast = Cast::new(4);
    let mut c = cast.circle();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (maya, sam) = (cast.members[0].id(), cast.members[1].id());
    let seen = Seen::now(&c, at(1));
    let tz = TimeZone::UTC;
    for i in 0..50 {
        c.request(
            RequestKind::Offer,
            sam,
            &format!("offer {i}"),
            "",
            at(2),
            &mut rng,
        )
        .unwrap();
    }
    // Fifty offers are one person's news: one line.
    let before = c.view_at(&seen.heads).unwrap();
    let a = account(&before, &c.view(), maya, seen.at, at(3), &tz).unwrap();
    let lines: Vec<&str> = a.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(lines, vec!["Sam offered \"offer 49\" and more"]);
    // Every ask is someone needing a hand: one by one, first, and a long
    // absence is told in a few lines.
    for i in 0..20 {
        c.request(
            RequestKind::Ask,
            sam,
            &format!("ask {i}"),
            "",
            at(2),
            &mut rng,
        )
        .unwrap();
    }
    let a = account(&before, &c.view(), maya, seen.at, at(3), &tz).unwrap();
    assert_eq!(a.lines.len(), MAX_LINES);
    assert!(a.more);
    assert_eq!(a.lines[0].text, "Sam asked for a hand: \"ask 0\"");

    assert_eq!(Seen::from_bytes(&seen.to_bytes()), Some(seen));
    for junk in [
        &b""[..],
        b"{",
        b"[]",
        b"{\"heads\":[\"zz\"],\"at\":1}",
        &[0xff; 70_000],
    ] {
        assert_eq!(Seen::from_bytes(junk), None);
    }
    // Heads this copy does not hold (a copy repaired since): refused.
    let other = cast.circle();
    let mut elsewhere = Cast::new(5).circle();
    elsewhere
        .moment(Cast::new(5).members[0].id(), "x", at(1), &mut rng)
        .unwrap();
    assert!(other.view_at(&elsewhere.heads()).is_err());
}
