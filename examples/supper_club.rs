//! A supper club in one process: a circle on disk, three members, a week of
//! check-ins, an ask that gets answered, a potluck, and the quiet view.
//!
//! Run it with `cargo run -p roundtable-examples --example supper_club`.

use anyhow::Result;
use roundtable_core::quiet::{QuietRule, quiet};
use roundtable_core::{
    Answer, DeviceKey, MemberKey, Mood, NewGathering, Op, Profile, RequestKind, Timestamp,
};
use roundtable_store::{Home, StoreError};

const DAY: i64 = 86_400_000;

fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let home = Home::new(dir.path());
    let lock = home.lock("supper_club example")?;
    let (maya, _) = home.ensure_identity(&lock)?;
    let start = Timestamp::from_millis(1_795_464_000_000);
    let mut rng = rand::rng();

    // Maya starts the circle on this device; Sam and Ada join (here by hand;
    // over the network a ticket does this).
    let circle = roundtable_core::Circle::create(
        "Tuesday Supper",
        "soup, bread and each other",
        &maya.cert,
        &Profile::named("Maya"),
        start,
        &mut rng,
    )?;
    let keys = roundtable_core::Keyring::with(roundtable_core::EpochKey::random(
        circle.id(),
        0,
        &maya.device,
        &mut rng,
    ));
    let mut store = home.create_circle(&lock, &circle, &keys)?;
    let sam = MemberKey::generate();
    let ada = MemberKey::generate();
    store.edit(|c| -> Result<(), StoreError> {
        c.add_member(
            &sam.certify(DeviceKey::generate().id()),
            &Profile::named("Sam"),
            Some(maya.member.id()),
            start,
        )?;
        c.add_member(
            &ada.certify(DeviceKey::generate().id()),
            &Profile::named("Ada"),
            Some(maya.member.id()),
            start,
        )?;
        Ok(())
    })?;

    // A week in the circle. Every edit is durable before `edit` returns.
    let at = |d: i64| start.plus_millis(d * DAY);
    store.edit(|c| {
        c.checkin(sam.id(), Mood::Okay, "busy week", at(1), &mut rng)?;
        c.checkin(sam.id(), Mood::Okay, "", at(3), &mut rng)?;
        c.checkin(sam.id(), Mood::Heavy, "", at(5), &mut rng)?;
        c.checkin(
            ada.id(),
            Mood::Struggling,
            "my mum is in hospital",
            at(6),
            &mut rng,
        )?;
        Ok::<_, anyhow::Error>(())
    })?;
    let me = maya.member.id();
    let ask = store.edit(|c| {
        Ok::<_, anyhow::Error>(c.perform(
            &Op::Request {
                kind: RequestKind::Ask,
                text: "meals for Ada this week".into(),
                when: "Mon–Fri".into(),
                hands: 5,
            },
            me,
            at(6),
            &mut rng,
        )?)
    })?;
    let ask = ask.expect("an ask has an id");
    store.edit(|c| {
        c.commit_to(ask, sam.id(), "I'll bring soup Tuesday", at(6), &mut rng)?;
        let g = c.gathering(
            me,
            &NewGathering {
                title: "Soup night".into(),
                starts: "2026-12-01T19:00:00+00:00[Europe/London]".parse()?,
                place: "Maya's kitchen".into(),
                hosts: vec![],
                one_of_each: true,
            },
            at(7),
            &mut rng,
        )?;
        c.rsvp(g, sam.id(), Answer::Yes, at(7))?;
        c.bring(g, sam.id(), "lentil soup", "vegan", at(7), &mut rng)?;
        Ok::<_, anyhow::Error>(())
    })?;

    let view = store.circle().view();
    println!(
        "{}",
        roundtable_core::export::markdown(&view, &jiff::tz::TimeZone::UTC)
    );
    println!("Twelve days on, who has gone quiet?");
    for q in quiet(&view, at(19), &QuietRule::default()) {
        println!("  {}", q.reason);
    }
    Ok(())
}
