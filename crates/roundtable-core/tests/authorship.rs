//! Authorship and sealed envelopes: a change counts only when its device's
//! signature covers it, and gossip opens only for the circle's key holders.
#![allow(clippy::unwrap_used)]

use automerge::transaction::Transactable;
use roundtable_core::keys::{self, PAD_BUCKETS};
use roundtable_core::wire::Body;
use roundtable_core::{
    Circle, DeviceKey, EnvelopeError, EpochKey, HeadBook, Keyring, MemberKey, Mood, Profile,
    Rejection, ReplayFilter, SignedHead, Timestamp,
};

fn now() -> Timestamp {
    Timestamp::from_millis(1_795_464_000_000)
}

struct Dev {
    key: DeviceKey,
    member: MemberKey,
    circle: Circle,
}

/// Maya founds a circle with Sam and Ana; each gets a copy.
fn circle() -> (Dev, Dev, Dev) {
    let mut rng = rand::rng();
    let mk = |_| (MemberKey::generate(), DeviceKey::generate());
    let [(maya, mp), (sam, sp), (ana, ap)] = [0, 1, 2].map(mk);
    let mut c = Circle::create(
        "Supper",
        "",
        &maya.certify(mp.id()),
        &Profile::named("Maya"),
        now(),
        &mut rng,
    )
    .unwrap();
    c.add_member(
        &sam.certify(sp.id()),
        &Profile::named("Sam"),
        Some(maya.id()),
        now(),
    )
    .unwrap();
    c.add_member(
        &ana.certify(ap.id()),
        &Profile::named("Ana"),
        Some(maya.id()),
        now(),
    )
    .unwrap();
    let dev = |key: DeviceKey, member: MemberKey| {
        let mut copy = c.clone();
        copy.set_device(key.id());
        Dev {
            key,
            member,
            circle: copy,
        }
    };
    (dev(mp, maya), dev(sp, sam), dev(ap, ana))
}

fn book_of(devs: &[&Dev]) -> HeadBook {
    let mut book = HeadBook::new();
    for d in devs {
        book.learn(d.circle.id(), &SignedHead::sign(&d.circle, &d.key));
    }
    book
}

#[test]
fn honest_changes_apply_through_a_relaying_member() {
    let (maya, mut sam, mut ana) = circle();
    let before = sam.circle.heads();
    sam.circle
        .checkin(
            sam.member.id(),
            Mood::Heavy,
            "long week",
            now(),
            &mut rand::rng(),
        )
        .unwrap();
    // Ana gets Sam's change from Maya's node, with Sam's signed head relayed.
    let changes = sam.circle.changes_since(&before);
    let out = ana
        .circle
        .apply_verified(&changes, &mut book_of(&[&maya, &sam]))
        .unwrap();
    assert_eq!(out.applied, 1);
    assert!(out.rejected.is_empty());
    assert_eq!(ana.circle.heads(), sam.circle.heads());
}

#[test]
fn forged_author_change_is_rejected() {
    let (mut maya, sam, mut ana) = circle();
    // Maya's node writes a check-in as Sam, under Sam's device's actor id.
    let before = maya.circle.heads();
    maya.circle.set_device(sam.key.id());
    maya.circle
        .checkin(
            sam.member.id(),
            Mood::Struggling,
            "forged",
            now(),
            &mut rand::rng(),
        )
        .unwrap();
    let forged = maya.circle.changes_since(&before);
    // Every signed head there is, Maya's own included (she could sign only hers).
    let book = book_of(&[&maya, &sam]);
    let out = ana
        .circle
        .apply_verified(&forged, &mut book.clone())
        .unwrap();
    assert_eq!(out.applied, 0);
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].1, Rejection::Unproven);
    assert_eq!(
        ana.circle.heads(),
        before,
        "the forged change is not in Ana's copy"
    );
    assert!(ana.circle.view().checkins.is_empty());
}

#[test]
fn altered_change_under_a_real_head_is_rejected() {
    let (maya, mut sam, mut ana) = circle();
    let before = sam.circle.heads();
    sam.circle
        .checkin(sam.member.id(), Mood::Okay, "fine", now(), &mut rand::rng())
        .unwrap();
    let honest_book = book_of(&[&maya, &sam]);
    // A copy that diverges: same actor, same seq, different content.
    let mut fake = maya.circle.clone();
    fake.set_device(sam.key.id());
    fake.checkin(
        sam.member.id(),
        Mood::Struggling,
        "not what Sam said",
        now(),
        &mut rand::rng(),
    )
    .unwrap();
    let out = ana
        .circle
        .apply_verified(&fake.changes_since(&before), &mut honest_book.clone())
        .unwrap();
    assert_eq!(out.applied, 0);
    assert_eq!(out.rejected[0].1, Rejection::Unproven);
}

#[test]
fn a_change_rewriting_the_outline_is_rejected() {
    let (mut maya, _sam, mut ana) = circle();
    let before = maya.circle.heads();
    maya.circle
        .transact(now(), "vandal", |tx| {
            tx.put(automerge::ROOT, "circle", "gone")?;
            Ok(())
        })
        .unwrap();
    let bad = maya.circle.changes_since(&before);
    let out = ana
        .circle
        .apply_verified(&bad, &mut book_of(&[&maya]))
        .unwrap();
    assert_eq!(out.rejected[0].1, Rejection::Outline);
    // The circle still loads and reads.
    let reloaded = Circle::load(&ana.circle.save()).unwrap();
    assert_eq!(reloaded.name(), "Supper");
}

#[test]
fn a_revoked_device_cannot_go_on_writing() {
    let mut rng = rand::rng();
    let (mut maya, sam, mut ana) = circle();
    // Maya pairs a phone, the phone writes, then she revokes it from her laptop.
    let phone = DeviceKey::generate();
    maya.circle
        .add_device(&maya.member.certify(phone.id()), now())
        .unwrap();
    let mut lost = maya.circle.clone();
    lost.set_device(phone.id());
    lost.checkin(
        maya.member.id(),
        Mood::Okay,
        "from the phone",
        now(),
        &mut rng,
    )
    .unwrap();
    maya.circle.merge(&mut lost.clone()).unwrap();
    let phone_dev = Dev {
        key: phone,
        member: MemberKey::generate(),
        circle: lost.clone(),
    };
    maya.circle
        .revoke_device(maya.member.id(), phone_dev.key.id(), now())
        .unwrap();
    assert_eq!(maya.circle.membership().epoch, 1);
    // Ana syncs everything so far: accepted.
    let out = ana
        .circle
        .apply_verified(
            &maya.circle.save(),
            &mut book_of(&[&maya, &sam, &phone_dev]),
        )
        .unwrap();
    assert!(out.rejected.is_empty(), "{out:?}");
    // The thief writes on: refused, though the phone's signature is real.
    let mut thief = phone_dev;
    thief.circle.merge(&mut ana.circle.clone()).unwrap();
    let before = thief.circle.heads();
    thief
        .circle
        .checkin(
            maya.member.id(),
            Mood::Struggling,
            "stolen",
            now(),
            &mut rng,
        )
        .unwrap();
    let out = ana
        .circle
        .apply_verified(
            &thief.circle.changes_since(&before),
            &mut book_of(&[&thief]),
        )
        .unwrap();
    assert_eq!(out.rejected[0].1, Rejection::NotAdmitted);
    assert!(!ana.circle.membership().admitted.contains(&thief.key.id()));
}

#[test]
fn envelopes_open_only_with_the_key_and_say_why_not() {
    let (maya, sam, _) = circle();
    let id = maya.circle.id();
    let mut rng = rand::rng();
    let keys = Keyring::with(EpochKey::random(id, 0, &maya.key, &mut rng));
    let head = SignedHead::sign(&maya.circle, &maya.key).unwrap();
    let body = Body::Changes {
        changes: vec![1, 2, 3],
        head,
    };
    let sealed = keys::seal(id, &keys, &maya.key, &body, &mut rng).unwrap();
    let admitted = |d| d == maya.key.id() || d == sam.key.id();
    let (from, opened) = keys::open(&sealed, id, &keys, admitted).unwrap();
    assert_eq!((from, &opened), (maya.key.id(), &body));
    // No plaintext in the bytes on the wire.
    assert!(!sealed.windows(3).any(|w| w == [1, 2, 3]));

    let other = Keyring::with(EpochKey::random(id, 0, &sam.key, &mut rng));
    assert_eq!(
        keys::open(&sealed, id, &other, admitted),
        Err(EnvelopeError::Undecryptable)
    );
    let mut later = keys.clone();
    later.advance(id, 1, &sam.key, &mut rng);
    assert_eq!(
        keys::open(&sealed, id, &later, admitted),
        Err(EnvelopeError::OtherEpoch)
    );
    assert_eq!(
        keys::open(&sealed, id, &keys, |d| d == sam.key.id()),
        Err(EnvelopeError::NotAdmitted)
    );
    for i in [1, 20, sealed.len() / 2, sealed.len() - 1] {
        let mut t = sealed.clone();
        t[i] ^= 0x40;
        assert!(
            keys::open(&t, id, &keys, admitted).is_err(),
            "tampered byte {i} opened"
        );
    }
    assert_eq!(
        keys::open(&[], id, &keys, admitted),
        Err(EnvelopeError::Malformed)
    );

    let mut replay = ReplayFilter::default();
    assert!(!replay.is_replay(&sealed));
    assert!(replay.is_replay(&sealed));
}

#[test]
fn envelope_sizes_fall_in_a_few_buckets() {
    let (maya, _, _) = circle();
    let id = maya.circle.id();
    let mut rng = rand::rng();
    let keys = Keyring::with(EpochKey::random(id, 0, &maya.key, &mut rng));
    let head = SignedHead::sign(&maya.circle, &maya.key).unwrap();
    let mut sizes = std::collections::BTreeSet::new();
    for n in [0, 10, 200, 300, 900, 1300, 2000, 3300] {
        let body = Body::Changes {
            changes: vec![7; n],
            head: head.clone(),
        };
        let sealed = keys::seal(maya.circle.id(), &keys, &maya.key, &body, &mut rng).unwrap();
        assert!(sealed.len() <= 4096);
        sizes.insert(sealed.len());
    }
    assert_eq!(sizes.len(), PAD_BUCKETS.len(), "{sizes:?}");
    let too_big = Body::Changes {
        changes: vec![7; 4000],
        head,
    };
    assert!(keys::seal(maya.circle.id(), &keys, &maya.key, &too_big, &mut rng).is_none());
}

#[test]
fn keyrings_settle_on_the_smallest_devices_candidate() {
    let mut rng = rand::rng();
    let circle = roundtable_core::CircleId::random(&mut rng);
    let (a, b) = (DeviceKey::generate(), DeviceKey::generate());
    let start = EpochKey::random(circle, 0, &a, &mut rng);
    let (mut ka, mut kb) = (Keyring::with(start.clone()), Keyring::with(start));
    assert!(ka.advance(circle, 1, &a, &mut rng));
    assert!(kb.advance(circle, 1, &b, &mut rng));
    assert_ne!(ka.active(), kb.active());
    kb.accept(circle, &ka.offer().unwrap());
    ka.accept(circle, &kb.offer().unwrap());
    assert_eq!(ka.active(), kb.active());
    assert_eq!(
        ka.active().by,
        std::cmp::min(*a.id().as_bytes(), *b.id().as_bytes())
    );
    // Kept and read back, signature included.
    let back = Keyring::from_file_text(ka.to_file_text().as_bytes()).unwrap();
    assert_eq!(back.active(), ka.active());
    assert_eq!(back.offer(), ka.offer());
    assert!(Keyring::from_file_text(b"roundtable-circle-keys-3:1:zz").is_err());
    // The single secret of the first version reads as epoch 0's key.
    let old = format!("roundtable-circle-secret-1:{}\n", "07".repeat(32));
    let old = Keyring::from_file_text(old.as_bytes()).unwrap();
    assert_eq!((old.epoch(), *old.active().secret()), (0, [7; 32]));
    // A key for another epoch is not taken.
    let mut old = Keyring::with(EpochKey::random(circle, 0, &b, &mut rng));
    assert!(!old.accept(circle, &ka.offer().unwrap()));
    assert_eq!(old.epoch(), 0);
}

/// The removals collection's object in `c`.
fn removals(c: &Circle) -> automerge::ObjId {
    use automerge::ReadDoc;
    match c.doc().get(automerge::ROOT, "removals").unwrap().unwrap() {
        (automerge::Value::Object(_), id) => id,
        _ => panic!("no removals collection"),
    }
}

#[test]
fn a_proposal_with_a_narrowed_electorate_is_rejected() {
    let (mut maya, sam, mut ana) = circle();
    let before = maya.circle.heads();
    let mut honest = maya.circle.clone();
    // Maya's node writes a proposal to remove Sam that leaves Ana out of the vote.
    let coll = removals(&maya.circle);
    let (maya_id, sam_id) = (maya.member.id(), sam.member.id());
    maya.circle
        .transact(now(), "narrowed", |tx| {
            use automerge::ObjType;
            let p = tx.put_object(&coll, "00000000000000aa", ObjType::Map)?;
            tx.put(&p, "target", sam_id.to_string())?;
            tx.put(&p, "by", maya_id.to_string())?;
            let e = tx.put_object(&p, "electorate", ObjType::Map)?;
            tx.put(&e, maya_id.to_string(), true)?;
            tx.put_object(&p, "consents", ObjType::Map)?;
            Ok(())
        })
        .unwrap();
    let out = ana
        .circle
        .apply_verified(&maya.circle.changes_since(&before), &mut book_of(&[&maya]))
        .unwrap();
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].1, Rejection::Outline);
    // The honest way is accepted.
    honest
        .propose_removal(maya_id, sam_id, "", now(), &mut rand::rng())
        .unwrap();
    let out = ana
        .circle
        .apply_verified(
            &honest.changes_since(&before),
            &mut book_of(&[&Dev {
                key: maya.key,
                member: maya.member,
                circle: honest.clone(),
            }]),
        )
        .unwrap();
    assert!(out.rejected.is_empty(), "{out:?}");
}

#[test]
fn a_removed_member_cannot_undo_their_removal() {
    use automerge::ReadDoc;
    use automerge::transaction::Transactable;

    let mut rng = rand::rng();
    let (mut maya, mut sam, mut ana) = circle();
    let p = maya
        .circle
        .propose_removal(maya.member.id(), ana.member.id(), "", now(), &mut rng)
        .unwrap();
    sam.circle.merge(&mut maya.circle.clone()).unwrap();
    let before_sam = sam.circle.heads();
    sam.circle
        .consent_removal(sam.member.id(), p, now())
        .unwrap();
    let mut book = book_of(&[&maya, &sam]);
    ana.circle.merge(&mut maya.circle.clone()).unwrap();
    let out = ana
        .circle
        .apply_verified(&sam.circle.changes_since(&before_sam), &mut book)
        .unwrap();
    assert!(out.rejected.is_empty());
    // Ana's node deletes Sam's consent (it is about her, after all).
    let mut bad = ana.circle.clone();
    bad.set_device(ana.key.id());
    let before = bad.heads();
    let coll = removals(&bad);
    let (_, proposal) = bad.doc().get(&coll, p.to_string()).unwrap().unwrap();
    let (_, consents) = bad.doc().get(&proposal, "consents").unwrap().unwrap();
    bad.transact(now(), "erase", |tx| {
        tx.delete(&consents, sam.key.id().to_string())?;
        Ok(())
    })
    .unwrap();
    let mut judge = maya.circle.clone();
    judge.merge(&mut sam.circle.clone()).unwrap();
    let ana_dev = Dev {
        key: ana.key,
        member: ana.member,
        circle: bad.clone(),
    };
    let out = judge
        .apply_verified(&bad.changes_since(&before), &mut book_of(&[&ana_dev]))
        .unwrap();
    assert_eq!(out.rejected[0].1, Rejection::NotAdmitted);
    assert_eq!(
        judge.membership().proposals[&p].state,
        roundtable_core::ProposalState::Carried
    );
}

#[test]
fn a_consent_in_another_devices_name_is_rejected() {
    use automerge::ReadDoc;
    use automerge::transaction::Transactable;

    let (mut maya, sam, mut ana) = circle();
    let p = maya
        .circle
        .propose_removal(
            maya.member.id(),
            ana.member.id(),
            "",
            now(),
            &mut rand::rng(),
        )
        .unwrap();
    ana.circle.merge(&mut maya.circle.clone()).unwrap();
    // Ana's node (she is still in) writes Sam's consent, under her own device.
    let before = ana.circle.heads();
    let coll = removals(&ana.circle);
    let (_, proposal) = ana.circle.doc().get(&coll, p.to_string()).unwrap().unwrap();
    let (_, consents) = ana
        .circle
        .doc()
        .get(&proposal, "consents")
        .unwrap()
        .unwrap();
    let (sam_device, sam_member) = (sam.key.id(), sam.member.id());
    ana.circle
        .transact(now(), "forge", |tx| {
            let c = tx.put_object(&consents, sam_device.to_string(), automerge::ObjType::Map)?;
            tx.put(&c, "member", sam_member.to_string())?;
            Ok(())
        })
        .unwrap();
    let mut judge = maya.circle.clone();
    let out = judge
        .apply_verified(&ana.circle.changes_since(&before), &mut book_of(&[&ana]))
        .unwrap();
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].1, Rejection::Outline);
    assert_eq!(
        judge.membership().proposals[&p].state,
        roundtable_core::ProposalState::Open
    );
}

#[test]
fn undoing_a_revocation_is_rejected() {
    use automerge::ReadDoc;
    use automerge::transaction::Transactable;

    let (mut maya, mut sam, _) = circle();
    let phone = DeviceKey::generate();
    maya.circle
        .add_device(&maya.member.certify(phone.id()), now())
        .unwrap();
    maya.circle
        .revoke_device(maya.member.id(), phone.id(), now())
        .unwrap();
    sam.circle.merge(&mut maya.circle.clone()).unwrap();
    assert!(sam.circle.membership().revoked.contains(&phone.id()));
    // Sam's node (an admitted member) deletes the revocation.
    let before = sam.circle.heads();
    let (_, members) = sam
        .circle
        .doc()
        .get(automerge::ROOT, "members")
        .unwrap()
        .unwrap();
    let (_, m) = sam
        .circle
        .doc()
        .get(&members, maya.member.id().to_string())
        .unwrap()
        .unwrap();
    let (_, devices) = sam.circle.doc().get(&m, "devices").unwrap().unwrap();
    let (_, d) = sam
        .circle
        .doc()
        .get(&devices, phone.id().to_string())
        .unwrap()
        .unwrap();
    sam.circle
        .transact(now(), "undo", |tx| {
            tx.delete(&d, "revoked")?;
            Ok(())
        })
        .unwrap();
    assert!(!sam.circle.membership().revoked.contains(&phone.id()));
    let mut judge = maya.circle.clone();
    let out = judge
        .apply_verified(&sam.circle.changes_since(&before), &mut book_of(&[&sam]))
        .unwrap();
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].1, Rejection::Outline);
    assert!(judge.membership().revoked.contains(&phone.id()));
}

#[test]
fn only_the_same_members_device_can_revoke_a_device() {
    use automerge::ReadDoc;
    use automerge::transaction::Transactable;

    let (mut maya, mut sam, _) = circle();
    let phone = DeviceKey::generate();
    maya.circle
        .add_device(&maya.member.certify(phone.id()), now())
        .unwrap();
    sam.circle.merge(&mut maya.circle.clone()).unwrap();
    // Sam cannot revoke Maya's phone through the rules...
    let err = sam
        .circle
        .revoke_device(sam.member.id(), phone.id(), now())
        .unwrap_err();
    assert!(err.to_string().contains("not one of yours"), "{err}");
    // ...nor by writing the revocation by hand: it arrives, and counts for nothing.
    let before = sam.circle.heads();
    let (_, members) = sam
        .circle
        .doc()
        .get(automerge::ROOT, "members")
        .unwrap()
        .unwrap();
    let (_, m) = sam
        .circle
        .doc()
        .get(&members, maya.member.id().to_string())
        .unwrap()
        .unwrap();
    let (_, devices) = sam.circle.doc().get(&m, "devices").unwrap().unwrap();
    let (_, d) = sam
        .circle
        .doc()
        .get(&devices, phone.id().to_string())
        .unwrap()
        .unwrap();
    sam.circle
        .transact(now(), "not mine", |tx| {
            tx.put_object(&d, "revoked", automerge::ObjType::Map)?;
            Ok(())
        })
        .unwrap();
    let mut judge = maya.circle.clone();
    judge
        .apply_verified(&sam.circle.changes_since(&before), &mut book_of(&[&sam]))
        .unwrap();
    let m = judge.membership();
    assert!(m.admitted.contains(&phone.id()));
    assert!(m.revoked.is_empty());
    assert_eq!(m.epoch, 0);
}

#[test]
fn a_change_of_name_in_another_members_record_is_rejected() {
    use automerge::ReadDoc;

    let (maya, mut sam, ana) = circle();
    // Sam's own change of name is his to say, and everyone's to see.
    let before = sam.circle.heads();
    let edit = roundtable_core::ProfileEdit {
        name: Some("Lee".into()),
        ..Default::default()
    };
    sam.circle
        .edit_profile(sam.member.id(), &edit, now())
        .unwrap();
    let mut judge = maya.circle.clone();
    let out = judge
        .apply_verified(&sam.circle.changes_since(&before), &mut book_of(&[&sam]))
        .unwrap();
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    assert_eq!(
        judge.view().members[&sam.member.id()].renames.len(),
        1,
        "the rename reached Maya"
    );

    // Ana's device writes a change of name into Sam's record, and another
    // under his existing changes of name: both refused.
    for into_existing in [false, true] {
        let mut bad = if into_existing {
            judge.clone()
        } else {
            ana.circle.clone()
        };
        bad.set_device(ana.key.id());
        let before = bad.heads();
        let members = bad
            .doc()
            .get(automerge::ROOT, "members")
            .unwrap()
            .unwrap()
            .1;
        let record = bad
            .doc()
            .get(&members, sam.member.id().to_string())
            .unwrap()
            .unwrap()
            .1;
        bad.transact(now(), "forge", |tx| {
            let renames = match tx.get(&record, "renames")? {
                Some((_, id)) if into_existing => id,
                _ => tx.put_object(&record, "renames", automerge::ObjType::Map)?,
            };
            let r = tx.put_object(&renames, "forged", automerge::ObjType::Map)?;
            tx.put(&r, "from", "Maya")?;
            tx.put(&r, "to", "Sam")?;
            Ok(())
        })
        .unwrap();
        let mut judge = judge.clone();
        let ana_dev = Dev {
            key: ana.key.clone(),
            member: ana.member.clone(),
            circle: bad.clone(),
        };
        let out = judge
            .apply_verified(&bad.changes_since(&before), &mut book_of(&[&ana_dev]))
            .unwrap();
        assert!(!out.rejected.is_empty(), "into existing: {into_existing}");
        assert!(
            judge.view().members[&sam.member.id()]
                .renames
                .values()
                .all(|r| r.from == "Sam"),
            "into existing: {into_existing}"
        );
    }
}
