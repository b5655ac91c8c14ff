//! The circle as people live it: names nobody confuses, stepping back that
//! shows, and loops that close once.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Cast, T0};
use roundtable_core::feed::{Entry, timeline};
use roundtable_core::quiet::{QuietRule, quiet, quiet_for, stepping_back};
use roundtable_core::{
    CoreError, DeviceKey, MemberKey, Profile, RequestKind, Resolved, Timestamp, export,
};

const DAY: i64 = 86_400_000;

fn t(days: i64) -> Timestamp {
    Timestamp::from_millis(T0 + days * DAY)
}

#[test]
fn names_taken_apart_are_told_apart_but_nobody_is_ambiguous() {
    let cast = Cast::new(21);
    let base = cast.circle();
    let maya = cast.members[0].id();
    // Three people called Ana join on three copies, apart: one on a day of
    // her own, two on the same later day.
    let anas: Vec<MemberKey> = (0..3).map(|_| MemberKey::generate()).collect();
    let mut copies: Vec<_> = (0..3u8).map(|i| cast.fork(&base, i)).collect();
    for ((copy, ana), (day, name)) in
        copies
            .iter_mut()
            .zip(&anas)
            .zip([(2, "Ana"), (9, "ana"), (9, "ana")])
    {
        copy.add_member(
            &ana.certify(DeviceKey::generate().id()),
            &Profile::named(name),
            Some(maya),
            t(day),
        )
        .unwrap();
    }
    let mut c = copies.remove(0);
    for mut other in copies {
        c.merge(&mut other).unwrap();
    }
    let v = c.view();
    let shown: Vec<String> = anas.iter().map(|a| v.name_of(&a.id())).collect();
    assert!(shown[0].starts_with("Ana (joined "), "{shown:?}");
    // Joined on the same day: who joined first that day, never an id.
    assert!(shown[1].starts_with("ana (joined "), "{shown:?}");
    assert!(
        shown[1..].iter().any(|s| s.ends_with(", 1st)"))
            && shown[1..].iter().any(|s| s.ends_with(", 2nd)")),
        "{shown:?}"
    );
    for (a, s) in anas.iter().zip(&shown) {
        assert!(!s.contains(&a.id().to_string()[..4]), "{s}");
    }
    assert_ne!(shown[1], shown[2]);
    // Maya's name is hers alone: shown as it is.
    assert_eq!(v.name_of(&maya), "Maya");
    // A fourth Ana is refused, with the reason.
    let err = c
        .add_member(
            &MemberKey::generate().certify(DeviceKey::generate().id()),
            &Profile::named("ANA"),
            Some(maya),
            t(10),
        )
        .unwrap_err();
    assert!(matches!(err, CoreError::NotAllowed(_)), "{err}");
    assert!(err.to_string().contains("is already the name of "), "{err}");

    // Looking up "Ana" finds all three and says so; a shown name finds one.
    match v.find_member("ANA") {
        Resolved::Ambiguous(several) => assert_eq!(several.len(), 3),
        other => panic!("{other:?}"),
    }
    for (a, s) in anas.iter().zip(&shown) {
        assert_eq!(v.find_member(s), Resolved::One(a.id()));
        assert_eq!(
            v.find_member(&a.id().to_string()[..8]),
            Resolved::One(a.id())
        );
    }
    assert_eq!(v.find_member("maya"), Resolved::One(maya));
    assert_eq!(v.find_member("ab"), Resolved::TooShort);
    assert!(v.name_taken("ANA", Some(anas[0].id())));
    assert!(!v.name_taken("Maya", Some(maya)));
    // Every view speaks the same names: the quiet view among them.
    let q = quiet(&v, t(40), &QuietRule::default());
    let quiet_names: Vec<&str> = q.iter().map(|q| q.name.as_str()).collect();
    for s in &shown {
        assert!(quiet_names.contains(&s.as_str()), "{quiet_names:?}");
    }
}

#[test]
fn quiet_never_lists_the_person_asking_nor_anyone_removed() {
    let cast = Cast::new(22);
    let mut c = cast.circle();
    let [maya, sam, ada] = [0, 1, 2].map(|i| cast.members[i].id());
    let names = |q: Vec<roundtable_core::quiet::Quiet>| -> Vec<String> {
        let mut n: Vec<String> = q.into_iter().map(|q| q.name).collect();
        n.sort();
        n
    };
    // Nobody has said a word in 20 days: all three are quiet to the circle.
    assert_eq!(
        names(quiet(&c.view(), t(20), &QuietRule::default())).len(),
        3
    );
    assert_eq!(
        names(quiet_for(&c.view(), t(20), &QuietRule::default(), sam)),
        ["Ada", "Maya"]
    );
    // Ada is removed by consent: she is no one's quiet any more.
    let mut rng = rand::rng();
    let mut maya_copy = cast.fork(&c, 1);
    maya_copy.set_device(DeviceKey::from_seed(&[200; 32]).id());
    let p = maya_copy
        .propose_removal(maya, ada, "", t(20), &mut rng)
        .unwrap();
    c.merge(&mut maya_copy).unwrap();
    c.set_device(DeviceKey::from_seed(&[202; 32]).id());
    c.consent_removal(sam, p, t(20)).unwrap();
    assert!(c.membership().removed.contains(&ada));
    assert_eq!(
        names(quiet_for(&c.view(), t(21), &QuietRule::default(), maya)),
        ["Sam"]
    );
    // The feed and the archive say what happened.
    let v = c.view();
    let words: Vec<String> = timeline(&v)
        .iter()
        .filter_map(|e| match e {
            Entry::Proposal(id, _) => Some(c.membership().proposals[id].words(&v)),
            _ => None,
        })
        .collect();
    assert_eq!(words.len(), 1);
    assert!(
        words[0].starts_with("Ada left the circle by consent"),
        "{words:?}"
    );
    let md = export::markdown(&v, &jiff::tz::TimeZone::UTC);
    assert!(md.contains("Ada left the circle by consent"), "{md}");
}

#[test]
fn stepping_back_shows_and_coming_back_needs_having_left() {
    let cast = Cast::new(23);
    let mut c = cast.circle();
    let sam = cast.members[1].id();
    let err = c.come_back(sam, t(1)).unwrap_err();
    assert!(matches!(err, CoreError::NotAllowed(_)), "{err}");
    assert!(err.to_string().contains("not stepping back"));
    c.step_back(sam, Some(t(13)), "family stuff", t(2)).unwrap();
    let v = c.view();
    let away = stepping_back(&v, t(3), &jiff::tz::TimeZone::UTC);
    assert_eq!(away.len(), 1);
    assert!(
        away[0].reason.starts_with("Sam is stepping back until ")
            && away[0].reason.ends_with(": family stuff"),
        "{}",
        away[0].reason
    );
    assert!(
        quiet(&v, t(12), &QuietRule::default())
            .iter()
            .all(|q| q.member != sam)
    );
    assert!(
        timeline(&v)
            .iter()
            .any(|e| matches!(e, Entry::SteppingBack(m, _) if *m == sam))
    );
    let md = export::markdown(&v, &jiff::tz::TimeZone::UTC);
    assert!(md.contains("Sam is stepping back until"), "{md}");
    // After the date they gave, they are simply here again.
    assert!(stepping_back(&v, t(14), &jiff::tz::TimeZone::UTC).is_empty());
    c.come_back(sam, t(5)).unwrap();
    assert!(c.view().members[&sam].away.is_none());
}

#[test]
fn a_loop_closes_once_and_its_thanks_stay() {
    let cast = Cast::new(24);
    let mut c = cast.circle();
    let mut rng = rand::rng();
    let [maya, sam] = [0, 1].map(|i| cast.members[i].id());
    let ask = c
        .request(RequestKind::Ask, maya, "soup?", "Tuesday", t(1), &mut rng)
        .unwrap();
    c.commit_to(ask, sam, "I'll bring soup", t(1), &mut rng)
        .unwrap();
    c.close_request(ask, maya, "thank you Sam", t(2)).unwrap();
    let before = c.canonical_json();
    let err = c.close_request(ask, maya, "again", t(3)).unwrap_err();
    assert!(err.to_string().contains("thank you Sam"), "{err}");
    let err = c
        .commit_to(ask, sam, "more soup", t(3), &mut rng)
        .unwrap_err();
    assert!(err.to_string().contains("already done"), "{err}");
    assert_eq!(c.canonical_json(), before, "refusals change nothing");
    assert_eq!(
        c.view().requests[&ask].done.as_ref().unwrap().thanks,
        "thank you Sam"
    );
}

#[test]
fn a_device_names_itself_and_only_itself() {
    use roundtable_core::{HeadBook, Rejection, SignedHead};
    let cast = Cast::new(25);
    let base = cast.circle();
    // Sam's device (seed 202 in `Cast::circle`) names itself; Maya's device
    // tries to rename it.
    let sam_dev = DeviceKey::from_seed(&[202; 32]);
    let maya_dev = DeviceKey::from_seed(&[200; 32]);
    let mut sam = base.clone();
    sam.set_device(sam_dev.id());
    sam.name_device("Sam's laptop", t(1)).unwrap();
    let mut ada = base.clone();
    ada.set_device(DeviceKey::from_seed(&[203; 32]).id());
    let mut book = HeadBook::for_circle(&ada);
    book.learn(ada.id(), &SignedHead::sign(&sam, &sam_dev));
    book.learn(ada.id(), &SignedHead::sign(&base, &maya_dev));
    let out = ada
        .apply_verified(&sam.changes_since(&base.heads()), &mut book)
        .unwrap();
    assert!(out.rejected.is_empty(), "{out:?}");
    let sam_id = cast.members[1].id();
    assert_eq!(
        ada.view().members[&sam_id].devices[&sam_dev.id()].name,
        "Sam's laptop"
    );
    assert_eq!(
        ada.people().members[&sam_id].devices[&sam_dev.id()].name,
        "Sam's laptop"
    );
    // Maya's device writes a name into Sam's device record by hand.
    let mut maya = sam.clone();
    maya.set_device(maya_dev.id());
    let before = maya.heads();
    let Some((automerge::Value::Object(_), members)) =
        automerge::ReadDoc::get(maya.doc(), automerge::ROOT, "members").unwrap()
    else {
        panic!()
    };
    let rec = automerge::ReadDoc::get(maya.doc(), &members, sam_id.to_string())
        .unwrap()
        .unwrap()
        .1;
    let devices = automerge::ReadDoc::get(maya.doc(), &rec, "devices")
        .unwrap()
        .unwrap()
        .1;
    let d = automerge::ReadDoc::get(maya.doc(), &devices, sam_dev.id().to_string())
        .unwrap()
        .unwrap()
        .1;
    maya.transact(t(2), "rename", |tx| {
        use automerge::transaction::Transactable;
        tx.put(&d, "name", "stolen")?;
        Ok(())
    })
    .unwrap();
    book.learn(ada.id(), &SignedHead::sign(&maya, &maya_dev));
    let out = ada
        .apply_verified(&maya.changes_since(&before), &mut book)
        .unwrap();
    assert_eq!(out.rejected[0].1, Rejection::Outline);
    // A name is a name: not empty, not a paragraph.
    assert!(sam.name_device("  ", t(3)).is_err());
    assert!(sam.name_device(&"x".repeat(500), t(3)).is_err());
}

#[test]
fn what_you_wrote_you_can_change_or_take_back_and_nobody_else_can() {
    let cast = Cast::new(26);
    let mut c = cast.circle();
    let mut rng = rand::rng();
    let [maya, sam] = [0, 1].map(|i| cast.members[i].id());
    let checkin = c
        .checkin(
            sam,
            roundtable_core::Mood::Heavy,
            "rough week",
            t(1),
            &mut rng,
        )
        .unwrap();
    let reply = c
        .reply(checkin, maya, "here for you", t(1), &mut rng)
        .unwrap();
    let ask = c
        .request(
            RequestKind::Ask,
            sam,
            "a lift to the clinic",
            "Friday",
            t(1),
            &mut rng,
        )
        .unwrap();
    let commitment = c
        .commit_to(ask, maya, "I can drive", t(1), &mut rng)
        .unwrap();
    // Only the author changes or withdraws.
    for id in [checkin, ask] {
        let err = c.edit_entry(id, maya, "changed", t(2)).unwrap_err();
        assert!(err.to_string().contains("Sam's"), "{err}");
        assert!(c.withdraw_entry(id, maya, t(2)).is_err());
    }
    assert!(c.edit_entry(reply, sam, "x", t(2)).is_err());
    // Edits show everywhere.
    c.edit_entry(checkin, sam, "rough week, better now", t(2))
        .unwrap();
    c.edit_entry(commitment, maya, "I can drive, 9am", t(2))
        .unwrap();
    let v = c.view();
    assert_eq!(v.checkins[&checkin].note, "rough week, better now");
    assert_eq!(
        v.requests[&ask].commitments[&commitment].text,
        "I can drive, 9am"
    );
    // Withdrawn: no text of it anywhere a view reaches.
    c.withdraw_entry(reply, maya, t(3)).unwrap();
    c.withdraw_entry(ask, sam, t(3)).unwrap();
    let v = c.view();
    assert!(v.checkins[&checkin].replies.is_empty());
    assert!(!v.requests.contains_key(&ask));
    let shown = format!(
        "{}{}",
        v.to_canonical_json(),
        export::markdown(&v, &jiff::tz::TimeZone::UTC)
    );
    for gone in ["here for you", "a lift to the clinic", "I can drive"] {
        assert!(!shown.contains(gone), "{gone:?} is still shown");
    }
    assert!(
        timeline(&v)
            .iter()
            .all(|e| !matches!(e, Entry::Request(id, _) if *id == ask))
    );
    // Nothing more can be done with what was withdrawn.
    assert!(c.commit_to(ask, maya, "me too", t(4), &mut rng).is_err());
    assert!(c.edit_entry(ask, sam, "again", t(4)).is_err());
}

#[test]
fn leaving_is_said_once_and_moves_the_key_on() {
    let cast = Cast::new(27);
    let mut c = cast.circle();
    let mut rng = rand::rng();
    let [maya, sam, ada] = [0, 1, 2].map(|i| cast.members[i].id());
    let sam_dev = DeviceKey::from_seed(&[202; 32]).id();
    let epoch = c.membership().epoch;
    // A proposal about Ada, and Ada leaving of her own accord.
    let p = {
        let mut m = c.clone();
        m.set_device(DeviceKey::from_seed(&[200; 32]).id());
        let p = m.propose_removal(maya, ada, "", t(1), &mut rng).unwrap();
        c.merge(&mut m).unwrap();
        p
    };
    c.set_device(sam_dev);
    c.leave(sam, t(2)).unwrap();
    let m = c.membership();
    assert!(m.left.contains(&sam) && !m.members.contains(&sam));
    assert!(m.departed.contains(&sam_dev) && !m.admitted.contains(&sam_dev));
    assert_eq!(m.epoch, epoch + 1);
    assert!(c.leave(sam, t(3)).is_err(), "once is enough");
    assert!(
        c.checkin(sam, roundtable_core::Mood::Okay, "", t(3), &mut rng)
            .is_err()
    );
    let v = c.view();
    assert!(
        timeline(&v)
            .iter()
            .any(|e| matches!(e, Entry::Left(m, _) if *m == sam))
    );
    assert!(export::markdown(&v, &jiff::tz::TimeZone::UTC).contains("Sam left the circle"));
    assert!(
        quiet(&v, t(60), &QuietRule::default())
            .iter()
            .all(|q| q.member != sam)
    );
    // A proposal about someone who then leaves counts for nothing: the
    // epoch moves once for her, whatever arrives first.
    let mut ada_copy = c.clone();
    ada_copy.set_device(DeviceKey::from_seed(&[203; 32]).id());
    ada_copy.leave(ada, t(4)).unwrap();
    c.merge(&mut ada_copy).unwrap();
    let m = c.membership();
    assert_eq!(m.proposals[&p].state, roundtable_core::ProposalState::Void);
    assert_eq!(m.epoch, epoch + 2);
}

#[test]
fn an_answer_to_a_gathering_carries_a_word_and_can_be_taken_back() {
    let cast = Cast::new(28);
    let mut c = cast.circle();
    let mut rng = rand::rng();
    let [maya, sam] = [0, 1].map(|i| cast.members[i].id());
    let g = c
        .gathering(
            maya,
            &roundtable_core::NewGathering {
                title: "Soup".into(),
                starts: "2026-12-01T19:00[UTC]".parse().unwrap(),
                place: String::new(),
                hosts: vec![],
                one_of_each: false,
            },
            t(1),
            &mut rng,
        )
        .unwrap();
    c.rsvp_noted(g, sam, roundtable_core::Answer::Yes, "running late", t(1))
        .unwrap();
    assert_eq!(c.view().gatherings[&g].rsvps[&sam].note, "running late");
    c.rsvp_noted(g, sam, roundtable_core::Answer::Maybe, "", t(2))
        .unwrap();
    let r = c.view().gatherings[&g].rsvps[&sam].clone();
    assert_eq!(
        (r.answer, r.note.as_str()),
        (roundtable_core::Answer::Maybe, "")
    );
    c.withdraw_rsvp(g, sam, t(3)).unwrap();
    assert!(c.view().gatherings[&g].rsvps.is_empty());
    assert!(
        c.withdraw_rsvp(g, sam, t(4)).is_err(),
        "nothing left to take back"
    );
    // Answering again after taking it back counts.
    c.rsvp(g, sam, roundtable_core::Answer::Yes, t(5)).unwrap();
    assert_eq!(c.view().gatherings[&g].rsvps.len(), 1);
}

#[test]
fn names_are_compared_as_people_read_them() {
    use automerge::transaction::Transactable;
    use roundtable_core::people::{clean_name, look_alike};
    let cast = Cast::new(29);
    let mut c = cast.circle();
    let maya = cast.members[0].id();
    let sam = cast.members[1].id();
    // What the eye cannot see is not part of a name.
    assert_eq!(
        clean_name("  Ana\u{200b}\u{202e}\u{feff} \n\t Lee\u{ad} "),
        "Ana Lee"
    );
    assert_eq!(clean_name("Lee\u{1b}[2J"), "Lee[2J");
    assert_eq!(
        clean_name("👩\u{200d}👩\u{200d}👧 Zoë"),
        "👩\u{200d}👩\u{200d}👧 Zoë"
    );
    for (a, b) in [
        ("Alice", "Alice\u{200b}"),
        ("Alice", "\u{410}lice"),
        ("Alice", "AIice"),
        ("Alice", "alice"),
        ("Alice", "Ａｌｉｃｅ"),
    ] {
        assert!(look_alike(a, b), "{a:?} and {b:?}");
    }
    assert!(!look_alike("Alice", "Alicia"));
    assert!(!look_alike("Ana", "Ada"));

    // Someone joining as Maya with a Cyrillic "а" is refused, in words.
    let newcomer = MemberKey::generate();
    let err = c
        .add_member(
            &newcomer.certify(DeviceKey::generate().id()),
            &Profile::named("M\u{430}ya"),
            Some(maya),
            t(3),
        )
        .unwrap_err();
    assert!(matches!(err, CoreError::NotAllowed(_)), "{err}");
    assert!(
        err.to_string().contains("looks like the name of Maya"),
        "{err}"
    );
    // So is Sam renaming himself so, or to Maya in capitals; his own name
    // in another case is his.
    let rename = |name: &str| roundtable_core::ProfileEdit {
        name: Some(name.into()),
        ..Default::default()
    };
    let err = c
        .edit_profile(sam, &rename("MAYA\u{200b}"), t(3))
        .unwrap_err();
    assert!(
        err.to_string().contains("is already the name of Maya"),
        "{err}"
    );
    let err = c
        .edit_profile(sam, &rename("M\u{430}y\u{430}"), t(3))
        .unwrap_err();
    assert!(
        err.to_string().contains("looks like the name of Maya"),
        "{err}"
    );
    c.edit_profile(sam, &rename(" sam\u{200b} "), t(3)).unwrap();
    assert_eq!(c.view().members[&sam].name, "sam");

    // The same name with a zero-width space is the same name: two people
    // taking it on two copies at once are kept clean and told apart like
    // any shared name.
    let other = MemberKey::generate();
    let (mut here, mut there) = (cast.fork(&c, 1), cast.fork(&c, 2));
    for (copy, who, day) in [(&mut here, &newcomer, 3), (&mut there, &other, 5)] {
        copy.add_member(
            &who.certify(DeviceKey::generate().id()),
            &Profile::named("Robin\u{200b}"),
            Some(maya),
            t(day),
        )
        .unwrap();
    }
    here.merge(&mut there).unwrap();
    c.merge(&mut here).unwrap();
    let v = c.view();
    assert_eq!(v.members[&newcomer.id()].name, "Robin");
    assert!(v.name_of(&newcomer.id()).starts_with("Robin (joined "));
    assert!(v.name_of(&other.id()).starts_with("Robin (joined "));
    assert_ne!(v.name_of(&other.id()), v.name_of(&newcomer.id()));

    // A hostile copy writes a look-alike raw into its own record: every
    // view tells the two apart, and a lookup by name finds both.
    let ada = cast.members[2].id();
    let Some((automerge::Value::Object(_), members)) =
        automerge::ReadDoc::get(c.doc(), automerge::ROOT, "members").unwrap()
    else {
        panic!()
    };
    let rec = automerge::ReadDoc::get(c.doc(), &members, ada.to_string())
        .unwrap()
        .unwrap()
        .1;
    c.transact(t(4), "raw", |tx| {
        tx.put(&rec, "name", "S\u{430}m\u{202e}\u{1b}\u{200b}")?;
        Ok(())
    })
    .unwrap();
    let v = c.view();
    let (shown_sam, shown_ada) = (v.name_of(&sam), v.name_of(&ada));
    assert_ne!(shown_sam, shown_ada);
    assert!(shown_sam.starts_with("sam ("), "{shown_sam}");
    assert!(shown_ada.starts_with("S\u{430}m ("), "{shown_ada}");
    match v.find_member("Sam") {
        Resolved::Ambiguous(several) => {
            assert!(
                several.contains(&sam) && several.contains(&ada),
                "{several:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(v.find_member(&shown_ada), Resolved::One(ada));
}

#[test]
fn a_change_of_name_is_told_to_everyone() {
    let cast = Cast::new(33);
    let mut c = cast.circle();
    let sam = cast.members[1].id();
    let edit = |name: Option<&str>, pronouns: Option<&str>| roundtable_core::ProfileEdit {
        name: name.map(Into::into),
        pronouns: pronouns.map(Into::into),
        ..Default::default()
    };
    c.edit_profile(sam, &edit(Some("Lee"), None), t(1)).unwrap();
    // Other fields, or the same name again, tell nothing.
    c.edit_profile(sam, &edit(None, Some("he/him")), t(2))
        .unwrap();
    c.edit_profile(sam, &edit(Some("Lee"), None), t(3)).unwrap();
    c.edit_profile(sam, &edit(Some("Leo"), None), t(4)).unwrap();
    let v = c.view();
    let told: Vec<String> = timeline(&v)
        .iter()
        .filter_map(|e| match e {
            Entry::Renamed(m, r) => Some(v.rename_words(m, r)),
            _ => None,
        })
        .collect();
    assert_eq!(told, ["Sam now goes by Lee", "Lee now goes by Leo"]);
    // The archive says it too.
    let md = export::markdown(&v, &jiff::tz::TimeZone::UTC);
    assert!(md.contains("Lee now goes by Leo"), "{md}");
    // Taking someone's name back once they let it go is fine: Sam's old
    // name is free, and Ada may take it (and that is told too).
    let ada = cast.members[2].id();
    c.edit_profile(ada, &edit(Some("Sam"), None), t(5)).unwrap();
    let v = c.view();
    assert!(
        timeline(&v).iter().any(
            |e| matches!(e, Entry::Renamed(m, r) if *m == ada && v.rename_words(m, r) == "Ada now goes by Sam")
        )
    );
}
