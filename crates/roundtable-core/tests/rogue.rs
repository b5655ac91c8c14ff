//! A member misbehaving on purpose, in the core: every rule here is one
//! every device applies to every change or message it receives, so honest
//! copies refuse the same things and agree. (The same attacks against real
//! nodes are in `tests/tests/rogue.rs`.)
#![allow(clippy::unwrap_used)]

use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, ROOT, ReadDoc, Value};
use roundtable_core::{
    Circle, CircleId, CoreError, DeviceKey, EpochKey, HeadBook, InviteKind, KeyOffer, Keyring,
    MemberKey, Mood, Profile, ProposalState, Redemption, Rejection, SignedHead, Timestamp,
    UNKNOWN_INVITE,
};

fn now() -> Timestamp {
    Timestamp::from_millis(1_795_464_000_000)
}

fn later(ms: i64) -> Timestamp {
    now().plus_millis(ms)
}

const DAY: i64 = 24 * 60 * 60 * 1000;

struct Dev {
    key: DeviceKey,
    member: MemberKey,
    circle: Circle,
}

impl Dev {
    /// This device's signed head, for a book.
    fn head(&self) -> Option<SignedHead> {
        SignedHead::sign(&self.circle, &self.key)
    }

    /// Applies `from`'s changes since `before`, proven by the heads of
    /// `signers`, as a node would.
    fn receive(
        &mut self,
        from: &Circle,
        before: &[roundtable_core::ChangeHash],
        signers: &[&Dev],
    ) -> roundtable_core::Applied {
        let mut book = HeadBook::for_circle(&self.circle);
        let heads: Vec<SignedHead> = signers.iter().filter_map(|d| d.head()).collect();
        book.learn(self.circle.id(), &heads);
        self.circle
            .apply_verified(&from.changes_since(before), &mut book)
            .unwrap()
    }
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
    for (m, d, name) in [(&sam, &sp, "Sam"), (&ana, &ap, "Ana")] {
        c.add_member(
            &m.certify(d.id()),
            &Profile::named(name),
            Some(maya.id()),
            now(),
        )
        .unwrap();
    }
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

/// One way to rewrite a record, inside a transaction.
type Rewrite<'a> = Box<dyn Fn(&mut automerge::transaction::Transaction<'_>) + 'a>;

/// The map of invite `id` in `c`.
fn invite_obj(c: &Circle, id: roundtable_core::EntityId) -> ObjId {
    let Some((Value::Object(_), invites)) = c.doc().get(ROOT, "invites").unwrap() else {
        panic!("no invites collection")
    };
    match c.doc().get(&invites, id.to_string()).unwrap() {
        Some((Value::Object(_), obj)) => obj,
        _ => panic!("no such invite"),
    }
}

#[test]
fn a_device_invite_in_another_members_name_is_no_invite_anywhere() {
    let mut rng = rand::rng();
    let (mut maya, mut sam, mut ana) = circle();
    // Sam's device writes a device invite that names Maya as its maker,
    // hoping Maya's node pairs Sam's laptop as hers and hands over her key.
    let before = sam.circle.heads();
    let (invite, secret) = sam
        .circle
        .create_invite(
            maya.member.id(),
            InviteKind::Device,
            later(DAY),
            1,
            now(),
            &mut rng,
        )
        .unwrap();
    let sam_circle = sam.circle.clone();
    for honest in [&mut maya, &mut ana] {
        let out = honest.receive(&sam_circle, &before, &[&sam]);
        assert!(out.rejected.is_empty(), "the record itself is harmless");
        assert!(
            !honest.circle.view().invites.contains_key(&invite),
            "an invite written by another member's device is no invite"
        );
    }
    // Not even in Sam's own copy does it count.
    assert!(!sam.circle.view().invites.contains_key(&invite));
    let thief = DeviceKey::generate();
    let cert = maya.member.certify(thief.id());
    let err = maya
        .circle
        .redeem_invite(
            &Redemption {
                invite,
                secret: &secret,
                cert: &cert,
                profile: None,
            },
            now(),
        )
        .unwrap_err();
    assert_eq!(err.to_string(), UNKNOWN_INVITE);
    assert!(!maya.circle.membership().admitted.contains(&thief.id()));
}

#[test]
fn nobody_but_the_makers_member_changes_an_invite_and_only_to_revoke_it() {
    let mut rng = rand::rng();
    let (mut maya, mut sam, mut ana) = circle();
    let before = maya.circle.heads();
    let (invite, _) = maya
        .circle
        .create_invite(
            maya.member.id(),
            InviteKind::Member,
            later(DAY),
            1,
            now(),
            &mut rng,
        )
        .unwrap();
    let maya_circle = maya.circle.clone();
    for other in [&mut sam, &mut ana] {
        assert!(
            other
                .receive(&maya_circle, &before, &[&maya])
                .rejected
                .is_empty()
        );
    }
    let obj = invite_obj(&sam.circle, invite);
    let attempts: Vec<(&str, Rewrite<'_>)> = vec![
        (
            "extend its expiry",
            Box::new(|tx| {
                tx.put(&obj, "expires_at", later(1000 * DAY).as_millis())
                    .unwrap();
            }),
        ),
        (
            "give it more uses",
            Box::new(|tx| {
                tx.put(&obj, "uses", 1000_i64).unwrap();
            }),
        ),
        (
            "swap its secret",
            Box::new(|tx| {
                tx.put(&obj, "secret_hash", "00".repeat(32)).unwrap();
            }),
        ),
        (
            "un-revoke it",
            Box::new(|tx| {
                tx.put(&obj, "revoked", false).unwrap();
            }),
        ),
        (
            "delete a field",
            Box::new(|tx| {
                tx.delete(&obj, "by").unwrap();
            }),
        ),
        (
            "revoke it (not Sam's to revoke)",
            Box::new(|tx| {
                tx.put(&obj, "revoked", true).unwrap();
            }),
        ),
    ];
    for (what, attempt) in attempts {
        let mut rogue = sam.circle.clone();
        let before = rogue.heads();
        rogue
            .transact(now(), "rewrite", |tx| {
                attempt(tx);
                Ok(())
            })
            .unwrap();
        let rogue_dev = Dev {
            key: sam.key.clone(),
            member: sam.member.clone(),
            circle: rogue.clone(),
        };
        let out = ana.receive(&rogue, &before, &[&rogue_dev]);
        assert_eq!(
            out.rejected.iter().map(|r| r.1).collect::<Vec<_>>(),
            vec![Rejection::Outline],
            "Sam tried to {what}"
        );
    }
    // Deleting the invite from the collection is refused too.
    let mut rogue = sam.circle.clone();
    let before = rogue.heads();
    let Some((Value::Object(_), invites)) = rogue.doc().get(ROOT, "invites").unwrap() else {
        panic!()
    };
    rogue
        .transact(now(), "delete", |tx| {
            tx.delete(&invites, invite.to_string())?;
            Ok(())
        })
        .unwrap();
    let rogue_dev = Dev {
        key: sam.key.clone(),
        member: sam.member.clone(),
        circle: rogue.clone(),
    };
    assert_eq!(
        ana.receive(&rogue, &before, &[&rogue_dev]).rejected[0].1,
        Rejection::Outline
    );
    // Sam's own copy refuses to revoke another's invite in the first place.
    assert!(matches!(
        sam.circle
            .perform(
                &roundtable_core::Op::RevokeInvite { invite },
                sam.member.id(),
                now(),
                &mut rng
            )
            .unwrap_err(),
        CoreError::NotAllowed(_)
    ));
    // Maya revokes her own: accepted everywhere.
    let before = maya.circle.heads();
    maya.circle
        .revoke_invite(maya.member.id(), invite, now())
        .unwrap();
    let maya_circle = maya.circle.clone();
    let out = ana.receive(&maya_circle, &before, &[&maya]);
    assert!(out.rejected.is_empty(), "{out:?}");
    assert!(ana.circle.view().invites[&invite].revoked);
}

#[test]
fn the_head_book_holds_only_the_circles_devices_and_stays_small() {
    let (maya, sam, _) = circle();
    let id = maya.circle.id();
    let mut book = HeadBook::for_circle(&maya.circle);
    // A flood of validly signed heads from keys that are no device here.
    let flood: Vec<SignedHead> = (0..500)
        .map(|_| {
            let mut c = maya.circle.clone();
            let k = DeviceKey::generate();
            c.set_device(k.id());
            c.moment(maya.member.id(), "junk", now(), &mut rand::rng())
                .unwrap();
            SignedHead::sign(&c, &k).unwrap()
        })
        .collect();
    book.learn(id, &flood);
    assert!(
        book.len() <= HeadBook::STRANGERS,
        "{} heads kept",
        book.len()
    );
    // A real device's heads: many versions, few kept.
    let mut s = sam.circle.clone();
    let mut heads = Vec::new();
    for i in 0..50 {
        s.checkin(
            sam.member.id(),
            Mood::Okay,
            &format!("{i}"),
            now(),
            &mut rand::rng(),
        )
        .unwrap();
        heads.push(SignedHead::sign(&s, &sam.key).unwrap());
    }
    book.learn(id, &heads);
    assert!(book.len() <= HeadBook::STRANGERS + 4, "{}", book.len());
    // Kept and read back, a restored book holds only the circle's devices.
    let mut back = HeadBook::restore(&book.persist());
    back.know_devices(&maya.circle.membership().certified);
    assert!(back.len() <= 4, "{}", back.len());
    assert!(book.persist().len() < 8 * 1024);
}

#[test]
fn a_removed_member_cannot_come_back_with_a_ticket() {
    let mut rng = rand::rng();
    let (mut maya, mut sam, mut ana) = circle();
    // Sam makes an invite, then Maya and Ana remove Sam.
    let before = sam.circle.heads();
    let (sams_invite, sams_secret) = sam
        .circle
        .create_invite(
            sam.member.id(),
            InviteKind::Member,
            later(DAY),
            5,
            now(),
            &mut rng,
        )
        .unwrap();
    let sam_circle = sam.circle.clone();
    maya.receive(&sam_circle, &before, &[&sam]);
    let p = maya
        .circle
        .propose_removal(maya.member.id(), sam.member.id(), "", now(), &mut rng)
        .unwrap();
    ana.circle.merge(&mut maya.circle.clone()).unwrap();
    ana.circle
        .consent_removal(ana.member.id(), p, now())
        .unwrap();
    maya.circle.merge(&mut ana.circle.clone()).unwrap();
    assert_eq!(
        maya.circle.membership().proposals[&p].state,
        ProposalState::Carried
    );
    // Maya makes a fresh invite; Sam, removed, redeems it with his own identity.
    let (invite, secret) = maya
        .circle
        .create_invite(
            maya.member.id(),
            InviteKind::Member,
            later(DAY),
            5,
            now(),
            &mut rng,
        )
        .unwrap();
    let name = Profile::named("Sam again");
    let same_device = sam.member.certify(sam.key.id());
    let err = maya
        .circle
        .redeem_invite(
            &Redemption {
                invite,
                secret: &secret,
                cert: &same_device,
                profile: Some(&name),
            },
            now(),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("welcome you back by the same consent"),
        "{err}"
    );
    let new_device = DeviceKey::generate();
    let same_member = sam.member.certify(new_device.id());
    let err = maya
        .circle
        .redeem_invite(
            &Redemption {
                invite,
                secret: &secret,
                cert: &same_member,
                profile: Some(&name),
            },
            now(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("removed"), "{err}");
    // The invite Sam made before his removal no longer lets anyone in.
    let newcomer = MemberKey::generate();
    let newcomer_device = DeviceKey::generate();
    let err = maya
        .circle
        .redeem_invite(
            &Redemption {
                invite: sams_invite,
                secret: &sams_secret,
                cert: &newcomer.certify(newcomer_device.id()),
                profile: Some(&Profile::named("Lee")),
            },
            now(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("has left the circle"), "{err}");
    let m = maya.circle.membership();
    assert!(!m.admitted.contains(&sam.key.id()));
    assert!(!m.admitted.contains(&new_device.id()));
    assert!(!m.admitted.contains(&newcomer_device.id()));
}

#[test]
fn invites_expire_on_time_where_they_were_made_and_not_too_late() {
    let mut rng = rand::rng();
    let (mut maya, mut sam, _) = circle();
    let before = maya.circle.heads();
    let (invite, secret) = maya
        .circle
        .create_invite(
            maya.member.id(),
            InviteKind::Member,
            later(1_000),
            1,
            now(),
            &mut rng,
        )
        .unwrap();
    // At the device whose clock set the expiry: no tolerance.
    let err = maya.circle.check_invite(invite, &secret, later(2_000));
    assert!(err.unwrap_err().to_string().contains("expired"));
    // At another device: its clock may differ by a few minutes.
    let maya_circle = maya.circle.clone();
    sam.receive(&maya_circle, &before, &[&maya]);
    assert!(
        sam.circle
            .check_invite(invite, &secret, later(2_000))
            .is_ok()
    );
    assert!(
        sam.circle
            .check_invite(invite, &secret, later(60 * 60 * 1000))
            .is_err()
    );
    // Open for years: refused.
    let err = maya
        .circle
        .create_invite(
            maya.member.id(),
            InviteKind::Member,
            later(1_000_000 * DAY),
            1,
            now(),
            &mut rng,
        )
        .unwrap_err();
    assert!(err.to_string().contains("30 days"), "{err}");
}

/// A key offer signed by `maker` for `circle`.
fn offer(circle: CircleId, epoch: u64, maker: &DeviceKey) -> KeyOffer {
    let k = Keyring::with(EpochKey::random(circle, epoch, maker, &mut rand::rng()));
    k.offer().unwrap()
}

#[test]
fn a_key_counts_only_as_made_by_the_device_that_signed_it() {
    let mut rng = rand::rng();
    let circle = CircleId::random(&mut rng);
    let (me, rogue) = (DeviceKey::generate(), DeviceKey::generate());
    let mut ring = Keyring::with(EpochKey::random(circle, 1, &me, &mut rng));
    let mine = ring.active().clone();
    // The rogue offers its own key "by" the smallest device id there is.
    let mut forged = offer(circle, 1, &rogue);
    forged.by = [0; 32];
    assert!(!forged.verify(circle));
    assert!(!ring.accept(circle, &forged));
    // Or by a real device's id, with that device's signature of another key.
    let honest = offer(circle, 1, &DeviceKey::generate());
    let mut swapped = honest.clone();
    swapped.key = [7; 32];
    assert!(!ring.accept(circle, &swapped));
    // A key signed for another circle is not one for this circle.
    let elsewhere = offer(CircleId::random(&mut rng), 1, &rogue);
    assert!(!ring.accept(circle, &elsewhere));
    assert_eq!(ring.active(), &mine);
}

#[test]
fn a_device_offering_two_keys_for_one_epoch_is_settled_the_same_everywhere() {
    let mut rng = rand::rng();
    let circle = CircleId::random(&mut rng);
    let rogue = DeviceKey::generate();
    let (k1, k2) = (offer(circle, 1, &rogue), offer(circle, 1, &rogue));
    let (a, b) = (DeviceKey::generate(), DeviceKey::generate());
    let mut ra = Keyring::with(EpochKey::random(circle, 1, &a, &mut rng));
    let mut rb = Keyring::with(EpochKey::random(circle, 1, &b, &mut rng));
    // A hears k1 first, B hears k2 first; then each hears the other.
    ra.accept(circle, &k1);
    rb.accept(circle, &k2);
    ra.accept(circle, &k2);
    rb.accept(circle, &k1);
    let (oa, ob) = (ra.offer().unwrap(), rb.offer().unwrap());
    ra.accept(circle, &ob);
    rb.accept(circle, &oa);
    assert_eq!(ra.active(), rb.active());
    // However many keys one device signs, a keyring holds one of each maker.
    for _ in 0..100 {
        ra.accept(circle, &offer(circle, 1, &rogue));
    }
    assert!(ra.to_file_text().lines().count() <= 3);
}

#[test]
fn changes_larger_than_any_edit_are_refused() {
    let (maya, mut sam, mut ana) = circle();
    let _ = maya;
    // A check-in note of a megabyte, written around the local limit.
    let mut rogue = sam.circle.clone();
    let before = rogue.heads();
    let Some((Value::Object(_), checkins)) = rogue.doc().get(ROOT, "checkins").unwrap() else {
        panic!()
    };
    let sam_id = sam.member.id();
    rogue
        .transact(now(), "huge", |tx| {
            let c = tx.put_object(&checkins, "00000000000000aa", ObjType::Map)?;
            tx.put(&c, "author", sam_id.to_string())?;
            tx.put(&c, "mood", "okay")?;
            tx.put(&c, "note", "x".repeat(1024 * 1024))?;
            tx.put(&c, "at", now().as_millis())?;
            Ok(())
        })
        .unwrap();
    let rogue_dev = |c: &Circle| Dev {
        key: sam.key.clone(),
        member: sam.member.clone(),
        circle: c.clone(),
    };
    let out = ana.receive(&rogue, &before, &[&rogue_dev(&rogue)]);
    assert_eq!(out.rejected[0].1, Rejection::TooLarge);
    assert!(ana.circle.view().checkins.is_empty());
    // Thousands of small writes in one change.
    let mut rogue = sam.circle.clone();
    let before = rogue.heads();
    rogue
        .transact(now(), "many", |tx| {
            let c = tx.put_object(&checkins, "00000000000000bb", ObjType::Map)?;
            for i in 0..5_000 {
                tx.put(&c, format!("k{i}"), i)?;
            }
            Ok(())
        })
        .unwrap();
    let out = ana.receive(&rogue, &before, &[&rogue_dev(&rogue)]);
    assert_eq!(out.rejected[0].1, Rejection::TooLarge);
    // An honest edit at the limit passes.
    let before = sam.circle.heads();
    let long = "ü".repeat(roundtable_core::schema::limits::NOTE);
    sam.circle
        .checkin(sam.member.id(), Mood::Okay, &long, now(), &mut rand::rng())
        .unwrap();
    let honest = sam.circle.clone();
    let out = ana.receive(&honest, &before, &[&sam]);
    assert!(out.rejected.is_empty(), "{out:?}");
}

#[test]
fn nobody_writes_into_another_members_record() {
    let (mut maya, mut sam, mut ana) = circle();
    let maya_id = maya.member.id();
    let members = || {
        let Some((Value::Object(_), m)) = sam.circle.doc().get(ROOT, "members").unwrap() else {
            panic!()
        };
        let Some((Value::Object(_), rec)) = sam.circle.doc().get(&m, maya_id.to_string()).unwrap()
        else {
            panic!()
        };
        rec
    };
    let rec = members();
    let attempts: Vec<(&str, Rewrite<'_>)> = vec![
        (
            "rename Maya",
            Box::new(|tx| {
                tx.put(&rec, "name", "Mallory").unwrap();
            }),
        ),
        (
            "say Maya is stepping back",
            Box::new(|tx| {
                let a = tx.put_object(&rec, "away", ObjType::Map).unwrap();
                tx.put(&a, "note", "gone").unwrap();
            }),
        ),
        (
            "rewrite what the circle remembers of Maya",
            Box::new(|tx| {
                tx.put(&rec, "remember", "nothing").unwrap();
            }),
        ),
    ];
    for (what, attempt) in attempts {
        let mut rogue = sam.circle.clone();
        let before = rogue.heads();
        rogue
            .transact(now(), "rewrite", |tx| {
                attempt(tx);
                Ok(())
            })
            .unwrap();
        let rogue_dev = Dev {
            key: sam.key.clone(),
            member: sam.member.clone(),
            circle: rogue.clone(),
        };
        let out = ana.receive(&rogue, &before, &[&rogue_dev]);
        assert_eq!(
            out.rejected.iter().map(|r| r.1).collect::<Vec<_>>(),
            vec![Rejection::Outline],
            "Sam tried to {what}"
        );
    }
    assert_eq!(ana.circle.view().members[&maya_id].name, "Maya");
    // Maya's own edits of her record, and Sam's of his, are accepted.
    let before = maya.circle.heads();
    maya.circle
        .perform(
            &roundtable_core::Op::Profile {
                name: Some("Maya R".into()),
                pronouns: None,
                remember: Some("I bake".into()),
                story: None,
            },
            maya_id,
            now(),
            &mut rand::rng(),
        )
        .unwrap();
    maya.circle
        .step_back(maya_id, None, "a week off", now())
        .unwrap();
    maya.circle.come_back(maya_id, later(1)).unwrap();
    let maya_circle = maya.circle.clone();
    let out = ana.receive(&maya_circle, &before, &[&maya]);
    assert!(out.rejected.is_empty(), "{out:?}");
    assert_eq!(ana.circle.view().members[&maya_id].name, "Maya R");
    let before = sam.circle.heads();
    let sam_id = sam.member.id();
    sam.circle.step_back(sam_id, None, "exams", now()).unwrap();
    let sam_circle = sam.circle.clone();
    assert!(
        ana.receive(&sam_circle, &before, &[&sam])
            .rejected
            .is_empty()
    );
}

/// The object at `path` from the root of `c`.
fn at(c: &Circle, path: &[String]) -> ObjId {
    let mut obj = ROOT;
    for p in path {
        obj = match c.doc().get(&obj, p.as_str()).unwrap() {
            Some((Value::Object(_), id)) => id,
            other => panic!("nothing at {p}: {other:?}"),
        };
    }
    obj
}

#[test]
fn what_a_member_wrote_is_theirs_to_change() {
    let mut rng = rand::rng();
    let (mut maya, mut sam, mut ana) = circle();
    let maya_id = maya.member.id();
    // Maya checks in, asks, and RSVPs to a gathering; Sam and Ana get it.
    let before = maya.circle.heads();
    let checkin = maya
        .circle
        .checkin(maya_id, Mood::Heavy, "long week", now(), &mut rng)
        .unwrap();
    let reply = maya
        .circle
        .reply(checkin, maya_id, "thanks all", now(), &mut rng)
        .unwrap();
    let g = maya
        .circle
        .gathering(
            maya_id,
            &roundtable_core::NewGathering {
                title: "Soup".into(),
                starts: "2026-12-01T19:00[UTC]".parse().unwrap(),
                place: String::new(),
                hosts: vec![],
                one_of_each: false,
            },
            now(),
            &mut rng,
        )
        .unwrap();
    maya.circle
        .rsvp(g, maya_id, roundtable_core::Answer::Yes, now())
        .unwrap();
    let dish = maya
        .circle
        .bring(g, maya_id, "bread", "", now(), &mut rng)
        .unwrap();
    let maya_circle = maya.circle.clone();
    for other in [&mut sam, &mut ana] {
        assert!(
            other
                .receive(&maya_circle, &before, &[&maya])
                .rejected
                .is_empty()
        );
    }
    let s = |x: &dyn ToString| x.to_string();
    let entry = at(&sam.circle, &[s(&"checkins"), s(&checkin)]);
    let replies = at(&sam.circle, &[s(&"checkins"), s(&checkin), s(&"replies")]);
    let checkins = at(&sam.circle, &[s(&"checkins")]);
    let rsvps = at(&sam.circle, &[s(&"gatherings"), s(&g), s(&"rsvps")]);
    let dishes = at(&sam.circle, &[s(&"gatherings"), s(&g), s(&"dishes")]);
    let dish_obj = at(
        &sam.circle,
        &[s(&"gatherings"), s(&g), s(&"dishes"), s(&dish)],
    );
    let attempts: Vec<(&str, Rewrite<'_>)> = vec![
        (
            "edit Maya's check-in",
            Box::new(|tx| {
                tx.put(&entry, "note", "all is fine").unwrap();
            }),
        ),
        (
            "delete Maya's check-in",
            Box::new(|tx| {
                tx.delete(&checkins, checkin.to_string()).unwrap();
            }),
        ),
        (
            "delete Maya's reply",
            Box::new(|tx| {
                tx.delete(&replies, reply.to_string()).unwrap();
            }),
        ),
        (
            "answer for Maya",
            Box::new(|tx| {
                let r = tx
                    .put_object(&rsvps, maya_id.to_string(), ObjType::Map)
                    .unwrap();
                tx.put(&r, "answer", "no").unwrap();
            }),
        ),
        (
            "change Maya's dish",
            Box::new(|tx| {
                tx.put(&dish_obj, "dish", "nothing").unwrap();
            }),
        ),
        (
            "take Maya's dish away",
            Box::new(|tx| {
                tx.delete(&dishes, dish.to_string()).unwrap();
            }),
        ),
    ];
    for (what, attempt) in attempts {
        let mut rogue = sam.circle.clone();
        let before = rogue.heads();
        rogue
            .transact(now(), "rewrite", |tx| {
                attempt(tx);
                Ok(())
            })
            .unwrap();
        let rogue_dev = Dev {
            key: sam.key.clone(),
            member: sam.member.clone(),
            circle: rogue.clone(),
        };
        let out = ana.receive(&rogue, &before, &[&rogue_dev]);
        assert_eq!(
            out.rejected.iter().map(|r| r.1).collect::<Vec<_>>(),
            vec![Rejection::Outline],
            "Sam tried to {what}"
        );
    }
    // What others add beside Maya's entries is theirs: replies, RSVPs,
    // dishes, commitments.
    let sam_id = sam.member.id();
    let before = sam.circle.heads();
    sam.circle
        .reply(checkin, sam_id, "here for you", now(), &mut rng)
        .unwrap();
    sam.circle
        .rsvp(g, sam_id, roundtable_core::Answer::Maybe, now())
        .unwrap();
    sam.circle
        .rsvp(g, sam_id, roundtable_core::Answer::Yes, now())
        .unwrap();
    sam.circle
        .bring(g, sam_id, "soup", "", now(), &mut rng)
        .unwrap();
    let sam_circle = sam.circle.clone();
    let out = ana.receive(&sam_circle, &before, &[&sam]);
    assert!(out.rejected.is_empty(), "{out:?}");
    let view = ana.circle.view();
    assert_eq!(view.checkins[&checkin].note, "long week");
    assert_eq!(view.checkins[&checkin].replies.len(), 2);
    assert_eq!(view.gatherings[&g].rsvps.len(), 2);
    assert_eq!(view.gatherings[&g].dishes.len(), 2);
}

#[test]
fn a_leaving_cannot_be_taken_back() {
    let (_maya, mut sam, mut ana) = circle();
    let sam_id = sam.member.id();
    let before = sam.circle.heads();
    sam.circle.leave(sam_id, now()).unwrap();
    let sam_circle = sam.circle.clone();
    assert!(
        ana.receive(&sam_circle, &before, &[&sam])
            .rejected
            .is_empty()
    );
    assert!(ana.circle.membership().left.contains(&sam_id));
    // Sam's device deletes the record of leaving, to be back in.
    let mut rogue = sam.circle.clone();
    let before = rogue.heads();
    let rec = at(&rogue, &["members".to_owned(), sam_id.to_string()]);
    rogue
        .transact(later(1), "undo", |tx| {
            tx.delete(&rec, "left")?;
            Ok(())
        })
        .unwrap();
    let rogue_dev = Dev {
        key: sam.key.clone(),
        member: sam.member.clone(),
        circle: rogue.clone(),
    };
    let out = ana.receive(&rogue, &before, &[&rogue_dev]);
    assert!(!out.rejected.is_empty(), "{out:?}");
    assert!(ana.circle.membership().left.contains(&sam_id));
}

#[test]
fn a_change_made_up_in_anothers_name_cannot_hold_back_their_real_ones() {
    let (mut maya, sam, mut ana) = circle();
    // Sam makes up two changes in the name of Maya's device, and sends
    // only the second: it waits at Ana's for a history that never comes,
    // holding the sequence number Maya's next real change will take.
    let mut forged = sam.circle.clone();
    forged.set_device(maya.key.id());
    let checkin = |c: &mut Circle, note: &str| {
        c.perform(
            &roundtable_core::Op::Checkin {
                mood: roundtable_core::Mood::Okay,
                note: note.into(),
            },
            maya.member.id(),
            now(),
            &mut rand::rng(),
        )
        .unwrap();
    };
    checkin(&mut forged, "made up");
    let after_first = forged.heads();
    checkin(&mut forged, "made up too");
    let mut book = HeadBook::for_circle(&ana.circle);
    let out = ana
        .circle
        .apply_verified(&forged.changes_since(&after_first), &mut book)
        .unwrap();
    assert_eq!(out.applied, 0);
    assert!(!ana.circle.missing_deps().is_empty(), "it waits");
    // What Ana keeps or hands on never holds it.
    let kept = Circle::load(&ana.circle.save()).unwrap();
    assert!(kept.missing_deps().is_empty());
    // Maya's real changes, with those sequence numbers, still apply.
    for note in ["real", "real too"] {
        let before = maya.circle.heads();
        checkin(&mut maya.circle, note);
        let out = ana.receive(&maya.circle, &before, &[&maya]);
        assert_eq!(out.applied, 1, "{note}");
        assert!(ana.circle.has_change(&maya.circle.heads()[0]));
    }
}

#[test]
fn what_waits_for_missing_history_is_bounded() {
    let (_maya, sam, mut ana) = circle();
    let mut book = HeadBook::for_circle(&ana.circle);
    let mut most = 0;
    // Sam sends chain after chain of made-up changes, each missing its
    // first link: far more than a device holds back.
    for round in 0..200 {
        let mut forged = sam.circle.clone();
        forged.set_device(DeviceKey::generate().id());
        forged
            .transact(now(), "missing", |tx| {
                tx.put(ROOT, "x", round as i64).unwrap();
                Ok(())
            })
            .unwrap();
        let first = forged.heads();
        for i in 0..20 {
            forged
                .transact(now(), "chain", |tx| {
                    let noise: String = (0..25)
                        .map(|_| format!("{:032x}", rand::random::<u128>()))
                        .collect();
                    tx.put(ROOT, "y", format!("{round}-{i} {noise}")).unwrap();
                    Ok(())
                })
                .unwrap();
        }
        ana.circle
            .apply_verified(&forged.changes_since(&first), &mut book)
            .unwrap();
        // Automerge's own save keeps what waits: it never grows past the bound.
        let held = ana.circle.doc().save().len();
        assert!(
            held < (1 << 20) + (64 << 10),
            "round {round}: {held} bytes held"
        );
        most = most.max(held);
    }
    assert!(most > 512 << 10, "the test made it hold only {most} bytes");
}
