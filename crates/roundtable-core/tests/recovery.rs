//! A recovery key: the member key as 24 words a person writes down, and a
//! new device that restored it coming back as its member with any member's
//! ticket, at a member's device or on its own copy, judged alike by all.
#![allow(clippy::unwrap_used)]

use roundtable_core::{
    Circle, DeviceKey, HeadBook, InviteKind, MemberKey, Mood, Profile, Redemption, SignedHead,
    Timestamp,
};

fn now() -> Timestamp {
    Timestamp::from_millis(1_795_464_000_000)
}

fn later() -> Timestamp {
    Timestamp::from_millis(now().as_millis() + 24 * 3_600_000)
}

#[test]
fn the_words_spell_the_member_key_and_say_what_is_wrong() {
    let ana = MemberKey::generate();
    let words = ana.to_words();
    let list: Vec<&str> = words.split(' ').collect();
    assert_eq!(list.len(), 24);
    assert_eq!(MemberKey::from_words(&words).unwrap().id(), ana.id());
    // As a person copies them back: numbered, in capitals, over lines.
    let typed: String = list
        .iter()
        .enumerate()
        .map(|(i, w)| {
            format!(
                "{}. {}{}",
                i + 1,
                w.to_uppercase(),
                if i % 6 == 5 { "\n" } else { " " }
            )
        })
        .collect();
    assert_eq!(MemberKey::from_words(&typed).unwrap().id(), ana.id());

    let err = |text: &str| MemberKey::from_words(text).unwrap_err().to_string();
    assert!(err(&list[..12].join(" ")).contains("24 words; these are 12"));
    let mut unknown = list.clone();
    unknown[6] = "roundtable";
    let e = err(&unknown.join(" "));
    assert!(e.contains("word 7 (\"roundtable\")"), "{e}");
    // Two words swapped: every word is in the list, the checksum is not.
    let mut swapped = list.clone();
    let (a, b) = (0..24)
        .flat_map(|i| (i + 1..24).map(move |j| (i, j)))
        .find(|(i, j)| list[*i] != list[*j])
        .unwrap();
    swapped.swap(a, b);
    let e = err(&swapped.join(" "));
    assert!(e.contains("miscopied or out of order"), "{e}");
    assert!(!e.contains(&words[..]), "an error never repeats the key");
    // BIP39's own vector: 32 zero bytes are "abandon" 23 times and "art".
    let zeros = MemberKey::from_seed(&[0; 32]);
    assert_eq!(
        zeros.to_words().as_str(),
        format!("{}art", "abandon ".repeat(23))
    );
}

/// Maya founds the circle; Ana joins on her laptop and writes.
fn circle() -> (Circle, MemberKey, DeviceKey, MemberKey, DeviceKey) {
    let mut rng = rand::rng();
    let (maya, maya_dev) = (MemberKey::generate(), DeviceKey::generate());
    let (ana, ana_laptop) = (MemberKey::generate(), DeviceKey::generate());
    let mut c = Circle::create(
        "Supper",
        "",
        &maya.certify(maya_dev.id()),
        &Profile::named("Maya"),
        now(),
        &mut rng,
    )
    .unwrap();
    c.set_device(maya_dev.id());
    c.add_member(
        &ana.certify(ana_laptop.id()),
        &Profile::named("Ana"),
        Some(maya.id()),
        now(),
    )
    .unwrap();
    let mut at_ana = c.clone();
    at_ana.set_device(ana_laptop.id());
    at_ana
        .checkin(ana.id(), Mood::Okay, "from the old laptop", now(), &mut rng)
        .unwrap();
    c.merge(&mut at_ana).unwrap();
    (c, maya, maya_dev, ana, ana_laptop)
}

#[test]
fn a_restored_member_key_brings_a_new_device_in_as_the_same_member() {
    let mut rng = rand::rng();
    let (mut at_maya, maya, maya_dev, ana, ana_laptop) = circle();
    let before = at_maya.membership();
    // A copy that takes the news in as any other device would.
    let mut judge = at_maya.clone();
    judge.set_device(ana_laptop.id());
    // Ana's laptop is gone; on a new one she types her words back.
    let restored = MemberKey::from_words(&ana.to_words()).unwrap();
    let new_laptop = DeviceKey::generate();
    let cert = restored.certify(new_laptop.id());
    let (invite, secret) = at_maya
        .create_invite(maya.id(), InviteKind::Member, later(), 1, now(), &mut rng)
        .unwrap();
    // No name needed: she is in already.
    at_maya
        .redeem_invite(
            &Redemption {
                invite,
                secret: &secret,
                cert: &cert,
                profile: None,
            },
            now(),
        )
        .unwrap();
    let mut book = HeadBook::for_circle(&judge);
    book.learn(judge.id(), SignedHead::sign_all(&at_maya, &maya_dev).iter());
    let out = judge.apply_verified(&at_maya.save(), &mut book).unwrap();
    assert!(out.rejected.is_empty(), "{out:?}");
    assert_eq!(judge.membership(), at_maya.membership());
    let after = at_maya.membership();
    assert_eq!(after.members, before.members, "the same people");
    assert!(after.admitted.contains(&new_laptop.id()));
    assert_eq!(after.epoch, before.epoch);
    let view = at_maya.view();
    assert_eq!(view.name_of(&ana.id()), "Ana");
    assert_eq!(view.members[&ana.id()].devices.len(), 2);
    // Her new device writes as her.
    let mut at_new = at_maya.clone();
    at_new.set_device(new_laptop.id());
    at_new
        .checkin(ana.id(), Mood::Okay, "back", now(), &mut rng)
        .unwrap();
}

#[test]
fn a_new_device_of_a_member_lets_itself_in_and_everyone_takes_it() {
    let mut rng = rand::rng();
    let (mut at_maya, maya, maya_dev, ana, _) = circle();
    let (invite, secret) = at_maya
        .create_invite(maya.id(), InviteKind::Member, later(), 1, now(), &mut rng)
        .unwrap();
    // The welcome waited at a steward; Maya's device is off.
    let restored = MemberKey::from_words(&ana.to_words()).unwrap();
    let new_laptop = DeviceKey::generate();
    let cert = restored.certify(new_laptop.id());
    let mut copy = at_maya.clone();
    copy.set_writer(new_laptop.id(), 1);
    copy.redeem_self(
        &Redemption {
            invite,
            secret: &secret,
            cert: &cert,
            profile: None,
        },
        now(),
    )
    .unwrap();
    copy.checkin(ana.id(), Mood::Okay, "back", now(), &mut rng)
        .unwrap();
    let mut book = HeadBook::for_circle(&at_maya);
    book.learn(
        at_maya.id(),
        SignedHead::sign_all(&copy, &new_laptop).iter(),
    );
    book.learn(
        at_maya.id(),
        SignedHead::sign_all(&at_maya, &maya_dev).iter(),
    );
    let out = at_maya.apply_verified(&copy.save(), &mut book).unwrap();
    assert!(out.rejected.is_empty(), "{out:?}");
    assert!(at_maya.membership().admitted.contains(&new_laptop.id()));
    assert_eq!(at_maya.membership().members.len(), 2);
    assert!(at_maya.canonical_json().contains("back"));
}

#[test]
fn a_member_key_that_is_not_in_the_circle_needs_a_name_and_comes_in_new() {
    let mut rng = rand::rng();
    let (mut at_maya, maya, ..) = circle();
    let (invite, secret) = at_maya
        .create_invite(maya.id(), InviteKind::Member, later(), 1, now(), &mut rng)
        .unwrap();
    let stranger = MemberKey::generate();
    let device = DeviceKey::generate();
    let cert = stranger.certify(device.id());
    let r = Redemption {
        invite,
        secret: &secret,
        cert: &cert,
        profile: None,
    };
    let err = at_maya.redeem_invite(&r, now()).unwrap_err().to_string();
    assert!(err.contains("--as NAME"), "{err}");
}
