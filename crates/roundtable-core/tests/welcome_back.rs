//! Welcome back: someone who left comes back with a member's ticket, and
//! someone removed by consent is welcomed back by the same consent. Either
//! way they come back as themselves, the circle moves to a new key, and
//! what happened before stays in the record.
#![allow(clippy::unwrap_used)]

use automerge::ReadDoc;
use automerge::transaction::Transactable;
use roundtable_core::{
    Circle, DeviceKey, EntityId, HeadBook, InviteKind, MemberId, MemberKey, Mood, Profile,
    ProposalKind, ProposalState, Redemption, Rejection, SignedHead, Timestamp,
};

fn at(hours: i64) -> Timestamp {
    Timestamp::from_millis(1_795_464_000_000 + hours * 3_600_000)
}

/// A member's one device and the copy of the circle it holds.
struct Dev {
    member: MemberKey,
    key: DeviceKey,
    circle: Circle,
    /// Every device of the circle, whose signed heads prove their changes.
    everyone: Vec<DeviceKey>,
}

impl Dev {
    fn id(&self) -> MemberId {
        self.member.id()
    }

    /// Takes in everything `from` holds, proven by the signed heads of
    /// the devices that wrote it, as a node would after a sync.
    fn hear(&mut self, from: &Dev) -> roundtable_core::Applied {
        let mut book = HeadBook::for_circle(&self.circle);
        for key in &self.everyone {
            book.learn(
                self.circle.id(),
                SignedHead::sign_all(&from.circle, key).iter(),
            );
        }
        self.circle
            .apply_verified(&from.circle.save(), &mut book)
            .unwrap()
    }
}

/// Maya, Sam, Ana and Lee, all holding the same copy.
fn circle() -> [Dev; 4] {
    let mut rng = rand::rng();
    let members = [0; 4].map(|_| MemberKey::generate());
    let devices = [0; 4].map(|_| DeviceKey::generate());
    let mut c = Circle::create(
        "Supper",
        "",
        &members[0].certify(devices[0].id()),
        &Profile::named("Maya"),
        at(0),
        &mut rng,
    )
    .unwrap();
    c.set_device(devices[0].id());
    for (i, name) in [(1, "Sam"), (2, "Ana"), (3, "Lee")] {
        c.add_member(
            &members[i].certify(devices[i].id()),
            &Profile::named(name),
            Some(members[0].id()),
            at(0),
        )
        .unwrap();
    }
    let mut i = 0;
    [(); 4].map(|()| {
        let (member, key) = (members[i].clone(), devices[i].clone());
        i += 1;
        let mut copy = c.clone();
        copy.set_device(key.id());
        Dev {
            member,
            key,
            circle: copy,
            everyone: devices.to_vec(),
        }
    })
}

/// Everyone hears from everyone, twice round, so all copies are alike.
fn all_hear(devs: &mut [Dev; 4]) {
    for _ in 0..2 {
        for i in 0..4 {
            for j in 0..4 {
                if i != j {
                    let (a, b) = if i < j {
                        let (l, r) = devs.split_at_mut(j);
                        (&mut l[i], &r[0])
                    } else {
                        let (l, r) = devs.split_at_mut(i);
                        (&mut r[0], &l[j])
                    };
                    let out = a.hear(b);
                    assert!(out.rejected.is_empty(), "{out:?}");
                }
            }
        }
    }
}

/// `host` takes `guest`'s ticket for `guest`'s own device (a member
/// invite made on `host`), as a node does when someone joins.
fn ticket_at(host: &mut Dev, guest: &Dev) -> Result<(), roundtable_core::CoreError> {
    let mut rng = rand::rng();
    let (invite, secret) = host
        .circle
        .create_invite(host.id(), InviteKind::Member, at(48), 1, at(1), &mut rng)
        .unwrap();
    let cert = guest.member.certify(guest.key.id());
    host.circle
        .redeem_invite(
            &Redemption {
                invite,
                secret: &secret,
                cert: &cert,
                profile: None,
            },
            at(2),
        )
        .map(|_| ())
}

fn checkin(dev: &mut Dev, note: &str) -> Result<EntityId, roundtable_core::CoreError> {
    let mut rng = rand::rng();
    let me = dev.id();
    dev.circle.checkin(me, Mood::Okay, note, at(3), &mut rng)
}

#[test]
fn someone_who_left_comes_back_with_a_ticket_as_themselves() {
    let [mut maya, mut sam, mut ana, mut lee] = circle();
    checkin(&mut lee, "before I go").unwrap();
    let lee_id = lee.id();
    lee.circle.leave(lee_id, at(1)).unwrap();
    for d in [&mut maya, &mut sam, &mut ana] {
        d.hear(&lee);
    }
    assert!(maya.circle.membership().left.contains(&lee_id));
    assert_eq!(maya.circle.membership().epoch, 1);

    // Maya's device takes a ticket Lee brings from his old laptop.
    ticket_at(&mut maya, &lee).unwrap();
    let m = maya.circle.membership();
    assert!(m.is_member(lee_id), "{m:?}");
    assert!(!m.left.contains(&lee_id));
    assert!(m.admitted.contains(&lee.key.id()));
    assert!(!m.departed.contains(&lee.key.id()));
    assert_eq!(m.epoch, 2, "one for leaving, one for coming back");
    assert_eq!(m.stint_of(lee_id), 1);
    let back = &m.returns[&lee_id];
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].by, [maya.id()].into());
    assert_eq!(back[0].proposal, None);
    // As themselves: the same name, the same record, what they wrote.
    let view = maya.circle.view();
    assert_eq!(view.name_of(&lee_id), "Lee");
    assert!(view.checkins.values().any(|c| c.note == "before I go"));
    assert!(view.members[&lee_id].left.is_some(), "the leaving stays");

    // Every copy judges the return alike.
    let out = ana.hear(&maya);
    assert!(out.rejected.is_empty(), "{out:?}");
    assert_eq!(ana.circle.membership(), m);

    // Back on his old device, Lee writes again, and it counts.
    lee.hear(&maya);
    assert!(lee.circle.membership().is_member(lee_id));
    checkin(&mut lee, "glad to be back").unwrap();
    let out = sam.hear(&lee);
    assert!(out.rejected.is_empty(), "{out:?}");

    // He may leave again, and come back again.
    lee.circle.leave(lee_id, at(4)).unwrap();
    sam.hear(&lee);
    let m = sam.circle.membership();
    assert!(m.left.contains(&lee_id));
    assert_eq!(m.epoch, 3);
    assert!(sam.circle.view().members[&lee_id].leaves.contains_key(&1));
    ticket_at(&mut sam, &lee).unwrap();
    let m = sam.circle.membership();
    assert!(m.is_member(lee_id));
    assert_eq!((m.epoch, m.stint_of(lee_id)), (4, 2));
    assert_eq!(m.returns[&lee_id][1].by, [sam.id()].into());
    let out = ana.hear(&sam);
    assert!(out.rejected.is_empty(), "{out:?}");
    assert_eq!(ana.circle.membership(), m);
}

#[test]
fn what_a_device_wrote_while_its_member_was_out_never_counts() {
    let [mut maya, _sam, mut ana, mut lee] = circle();
    let lee_id = lee.id();
    lee.circle.leave(lee_id, at(1)).unwrap();
    maya.hear(&lee);
    // Out, Lee's device writes anyway, by hand.
    let checkins = lee.circle.doc().get(automerge::ROOT, "checkins").unwrap();
    let (_, checkins) = checkins.unwrap();
    lee.circle
        .transact(at(2), "while out", |tx| {
            let c = tx.put_object(&checkins, "written-while-out", automerge::ObjType::Map)?;
            tx.put(&c, "note", "sneaky")?;
            Ok(())
        })
        .unwrap();
    // Then Maya lets him back in; his device hears and writes again.
    ticket_at(&mut maya, &lee).unwrap();
    lee.hear(&maya);
    assert!(lee.circle.membership().is_member(lee_id));
    // Ana hears it all in one go: what was written while out is refused,
    // though the device was in before and after.
    ana.hear(&maya);
    let out = ana.hear(&lee);
    assert_eq!(out.rejected.len(), 1, "{out:?}");
    assert_eq!(out.rejected[0].1, Rejection::NotAdmitted);
    assert!(
        !ana.circle
            .view()
            .checkins
            .values()
            .any(|c| c.note == "sneaky")
    );
    assert!(ana.circle.membership().is_member(lee_id));
}

/// Maya proposes `kind` about Lee and Sam consents: a majority of three.
fn carried(maya: &mut Dev, sam: &mut Dev, kind: ProposalKind, lee: MemberId) -> EntityId {
    let mut rng = rand::rng();
    let id = match kind {
        ProposalKind::Remove => {
            maya.circle
                .propose_removal(maya.id(), lee, "it hurt people", at(1), &mut rng)
        }
        ProposalKind::Welcome => {
            maya.circle
                .propose_welcome(maya.id(), lee, "we talked it through", at(5), &mut rng)
        }
        ProposalKind::Recover => panic!("a recovery names a device: see recovery.rs"),
    }
    .unwrap();
    sam.hear(maya);
    let state = sam.circle.consent_removal(sam.id(), id, at(6)).unwrap();
    assert_eq!(state, ProposalState::Carried);
    maya.hear(sam);
    id
}

#[test]
fn someone_removed_is_welcomed_back_by_the_same_consent() {
    let [mut maya, mut sam, mut ana, mut lee] = circle();
    let lee_id = lee.id();
    let removal = carried(&mut maya, &mut sam, ProposalKind::Remove, lee_id);
    assert!(maya.circle.membership().removed.contains(&lee_id));

    // A ticket cannot bring them back; the refusal says what can.
    let err = ticket_at(&mut maya, &lee).unwrap_err().to_string();
    assert!(
        err.contains("welcome you back by the same consent"),
        "{err}"
    );
    // One member alone cannot: the welcome takes a majority of the others.
    let mut rng = rand::rng();
    let alone = maya
        .circle
        .propose_welcome(maya.id(), lee_id, "", at(4), &mut rng)
        .unwrap();
    assert_eq!(
        maya.circle.membership().proposals[&alone].state,
        ProposalState::Open
    );
    maya.circle
        .withdraw_removal(maya.id(), alone, at(4))
        .unwrap();
    sam.hear(&maya);

    let welcome = carried(&mut maya, &mut sam, ProposalKind::Welcome, lee_id);
    let m = maya.circle.membership();
    assert!(m.is_member(lee_id));
    assert!(m.admitted.contains(&lee.key.id()));
    assert_eq!(m.epoch, 2, "one for the removal, one for the welcome");
    assert_eq!(
        m.proposals[&removal].state,
        ProposalState::Carried,
        "the removal stays"
    );
    assert_eq!(m.proposals[&welcome].state, ProposalState::Carried);
    assert_eq!(m.returns[&lee_id][0].by, [maya.id(), sam.id()].into());
    assert_eq!(m.returns[&lee_id][0].proposal, Some(welcome));
    assert!(
        m.proposals[&welcome]
            .words(&maya.circle.view())
            .starts_with("Lee was welcomed back by consent")
    );
    assert_eq!(m.removal_notice(&maya.circle.view(), lee_id), None);

    // Ana and Lee's own device agree, and Lee writes again.
    let out = ana.hear(&maya);
    assert!(out.rejected.is_empty(), "{out:?}");
    assert_eq!(ana.circle.membership(), m);
    lee.hear(&maya);
    checkin(&mut lee, "thank you").unwrap();
    let out = ana.hear(&lee);
    assert!(out.rejected.is_empty(), "{out:?}");

    // A removal from before counts for nothing now; a new one is about
    // the new stint, and takes the consent it always did.
    let again = carried(&mut maya, &mut sam, ProposalKind::Remove, lee_id);
    let m = maya.circle.membership();
    assert!(m.removed.contains(&lee_id));
    assert_eq!(m.proposals[&again].stint, 1);
    assert_eq!(m.epoch, 3);
}

#[test]
fn a_welcome_is_only_for_someone_removed_and_a_ticket_only_for_someone_who_left() {
    let [mut maya, mut sam, _ana, mut lee] = circle();
    let lee_id = lee.id();
    let mut rng = rand::rng();
    let err = maya
        .circle
        .propose_welcome(maya.id(), lee_id, "", at(1), &mut rng)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not removed"), "{err}");
    lee.circle.leave(lee_id, at(1)).unwrap();
    maya.hear(&lee);
    let err = maya
        .circle
        .propose_welcome(maya.id(), lee_id, "", at(1), &mut rng)
        .unwrap_err()
        .to_string();
    assert!(err.contains("need only a ticket"), "{err}");
    // A removal proposed before Lee left counts for nothing, then or after
    // he is back.
    let [mut maya, mut sam2, _, mut lee2] = circle();
    let lee_id = lee2.id();
    let old = maya
        .circle
        .propose_removal(maya.id(), lee_id, "", at(1), &mut rng)
        .unwrap();
    lee2.circle.leave(lee_id, at(1)).unwrap();
    maya.hear(&lee2);
    ticket_at(&mut maya, &lee2).unwrap();
    sam2.hear(&maya);
    assert_eq!(
        sam2.circle.membership().proposals[&old].state,
        ProposalState::Void
    );
    assert!(sam2.circle.consent_removal(sam2.id(), old, at(3)).is_err());
    assert!(sam2.circle.membership().is_member(lee_id));
    let _ = &mut sam;
}

/// The changes `dev` made since `before`, proven by its heads, as Ana
/// would take them in.
fn judged_at(ana: &mut Dev, dev: &Dev) -> roundtable_core::Applied {
    ana.hear(dev)
}

#[test]
fn a_return_or_a_leaving_by_stint_is_checked_on_arrival() {
    let [mut maya, mut sam, mut ana, mut lee] = circle();
    let lee_id = lee.id();
    // Sam writes a return for Lee, who never left, with no ticket.
    let record = member_record(&sam.circle, lee_id);
    sam.circle
        .transact(at(1), "forged return", |tx| {
            let r = tx.put_object(&record, "returns", automerge::ObjType::Map)?;
            let one = tx.put_object(&r, "1", automerge::ObjType::Map)?;
            tx.put(&one, "invite", "0".repeat(32))?;
            Ok(())
        })
        .unwrap();
    let out = judged_at(&mut ana, &sam);
    assert_eq!(out.rejected.len(), 1, "{out:?}");
    assert_eq!(out.rejected[0].1, Rejection::Outline);

    // Lee leaves; a return for a stint other than the next is refused,
    // even alongside a real ticket.
    lee.circle.leave(lee_id, at(1)).unwrap();
    maya.hear(&lee);
    let mut rng = rand::rng();
    let (invite, secret) = maya
        .circle
        .create_invite(maya.id(), InviteKind::Member, at(48), 1, at(1), &mut rng)
        .unwrap();
    let mut forger = Dev {
        member: maya.member.clone(),
        key: maya.key.clone(),
        circle: maya.circle.clone(),
        everyone: maya.everyone.clone(),
    };
    let record = member_record(&forger.circle, lee_id);
    let cert = lee.member.certify(lee.key.id());
    forger
        .circle
        .transact(at(2), "return for a later stint", |tx| {
            let invites = tx.get(automerge::ROOT, "invites")?.unwrap().1;
            let inv = tx.get(&invites, invite.to_string())?.unwrap().1;
            let redeemed = tx.get(&inv, "redeemed")?.unwrap().1;
            let r = tx.put_object(&redeemed, cert.device.to_string(), automerge::ObjType::Map)?;
            tx.put(&r, "member", lee_id.to_string())?;
            let returns = tx.put_object(&record, "returns", automerge::ObjType::Map)?;
            for stint in ["1", "2"] {
                let one = tx.put_object(&returns, stint, automerge::ObjType::Map)?;
                tx.put(&one, "invite", invite.to_string())?;
            }
            Ok(())
        })
        .unwrap();
    ana.hear(&lee);
    let out = judged_at(&mut ana, &forger);
    assert_eq!(out.rejected.len(), 1, "{out:?}");
    assert_eq!(out.rejected[0].1, Rejection::Outline);
    let _ = secret;
    // The honest ticket lands, and Lee, back, cannot write a leaving for
    // a stint he is not in.
    ticket_at(&mut maya, &lee).unwrap();
    lee.hear(&maya);
    let record = member_record(&lee.circle, lee_id);
    lee.circle
        .transact(at(3), "leaving ahead", |tx| {
            let l = tx.put_object(&record, "leaves", automerge::ObjType::Map)?;
            tx.put_object(&l, "2", automerge::ObjType::Map)?;
            Ok(())
        })
        .unwrap();
    ana.hear(&maya);
    let out = judged_at(&mut ana, &lee);
    assert_eq!(out.rejected.len(), 1, "{out:?}");
    assert_eq!(out.rejected[0].1, Rejection::Outline);
    assert!(ana.circle.membership().is_member(lee_id));
    let _ = &mut sam;
}

#[test]
fn two_tickets_taken_at_once_bring_someone_back_once() {
    let [mut maya, mut sam, mut ana, mut lee] = circle();
    let lee_id = lee.id();
    lee.circle.leave(lee_id, at(1)).unwrap();
    for d in [&mut maya, &mut sam, &mut ana] {
        d.hear(&lee);
    }
    ticket_at(&mut maya, &lee).unwrap();
    ticket_at(&mut sam, &lee).unwrap();
    ana.hear(&maya);
    let out = ana.hear(&sam);
    assert!(out.rejected.is_empty(), "{out:?}");
    let m = ana.circle.membership();
    assert!(m.is_member(lee_id));
    assert_eq!((m.epoch, m.stint_of(lee_id)), (2, 1));
    maya.hear(&sam);
    assert_eq!(maya.circle.membership(), m);
}

#[test]
fn a_welcome_and_a_ticket_for_one_stint_count_once() {
    let [mut maya, mut sam, mut ana, mut lee] = circle();
    let lee_id = lee.id();
    // Lee leaves as the others remove him: leaving wins, as ever.
    let removal = carried(&mut maya, &mut sam, ProposalKind::Remove, lee_id);
    lee.circle.leave(lee_id, at(1)).unwrap();
    let welcome = carried(&mut maya, &mut sam, ProposalKind::Welcome, lee_id);
    ana.hear(&lee);
    ticket_at(&mut ana, &lee).unwrap();
    let mut devs = [maya, sam, ana, lee];
    all_hear(&mut devs);
    let m = devs[0].circle.membership();
    for d in &devs[1..] {
        assert_eq!(d.circle.membership(), m);
    }
    assert!(m.is_member(lee_id));
    assert_eq!((m.epoch, m.stint_of(lee_id)), (2, 1));
    assert_eq!(m.proposals[&removal].state, ProposalState::Void);
    assert_eq!(m.proposals[&welcome].state, ProposalState::Void);
    assert_eq!(m.returns[&lee_id][0].proposal, None);
}

fn member_record(c: &Circle, member: MemberId) -> automerge::ObjId {
    let members = c.doc().get(automerge::ROOT, "members").unwrap().unwrap().1;
    c.doc()
        .get(&members, member.to_string())
        .unwrap()
        .unwrap()
        .1
}
