//! Removal wins: a stolen device that lets someone in while its member
//! revokes it from another device never makes them a member for good. Once
//! the revocation is known, whatever order the news came in, they are out,
//! with whatever they let in, and the circle is on a new epoch.
#![allow(clippy::unwrap_used)]

use automerge::transaction::Transactable;
use automerge::{ObjId, ReadDoc};
use proptest::prelude::*;
use roundtable_core::{
    Circle, DeviceKey, HeadBook, InviteKind, InviteSecret, MemberKey, Membership, Mood, Profile,
    Redemption, Rejection, SignedHead, Timestamp,
};

fn now() -> Timestamp {
    Timestamp::from_millis(1_795_464_000_000)
}

fn later() -> Timestamp {
    Timestamp::from_millis(now().as_millis() + 24 * 3_600_000)
}

/// A device and the copy of the circle it holds.
struct Dev {
    key: DeviceKey,
    circle: Circle,
}

/// Maya (laptop and phone), Sam and Ana, all holding the same copy.
struct World {
    maya: MemberKey,
    sam_id: roundtable_core::MemberId,
    laptop: Dev,
    phone: Dev,
    sam: Dev,
    ana: Dev,
}

fn world() -> World {
    let mut rng = rand::rng();
    let (maya, sam, ana) = (
        MemberKey::generate(),
        MemberKey::generate(),
        MemberKey::generate(),
    );
    let [laptop, phone, sam_dev, ana_dev] = [0; 4].map(|_| DeviceKey::generate());
    let mut c = Circle::create(
        "Supper",
        "",
        &maya.certify(laptop.id()),
        &Profile::named("Maya"),
        now(),
        &mut rng,
    )
    .unwrap();
    c.set_device(laptop.id());
    for (m, d, name) in [(&sam, &sam_dev, "Sam"), (&ana, &ana_dev, "Ana")] {
        c.add_member(
            &m.certify(d.id()),
            &Profile::named(name),
            Some(maya.id()),
            now(),
        )
        .unwrap();
    }
    c.add_device(&maya.certify(phone.id()), now()).unwrap();
    let dev = |key: DeviceKey| {
        let mut circle = c.clone();
        circle.set_device(key.id());
        Dev { key, circle }
    };
    World {
        maya,
        sam_id: sam.id(),
        laptop: dev(laptop),
        phone: dev(phone),
        sam: dev(sam_dev),
        ana: dev(ana_dev),
    }
}

/// Hands everything `from` holds to `to`, as a node would after a sync:
/// proven by the signed heads of `signers` as `from` holds them.
fn deliver(to: &mut Circle, from: &Circle, signers: &[&DeviceKey]) -> roundtable_core::Applied {
    let mut book = HeadBook::for_circle(to);
    for key in signers {
        book.learn(to.id(), SignedHead::sign_all(from, key).iter());
    }
    to.apply_verified(&from.save(), &mut book).unwrap()
}

/// Someone new: a member key, a device, and a certificate.
fn stranger() -> (MemberKey, DeviceKey) {
    (MemberKey::generate(), DeviceKey::generate())
}

/// The thief, on Maya's phone, makes an invite and lets `who` in at the
/// phone; returns the phone's copy.
fn let_in_at_phone(phone: &mut Circle, maya: &MemberKey, who: &(MemberKey, DeviceKey)) {
    let mut rng = rand::rng();
    let (invite, secret) = phone
        .create_invite(maya.id(), InviteKind::Member, later(), 1, now(), &mut rng)
        .unwrap();
    let cert = who.0.certify(who.1.id());
    phone
        .redeem_invite(
            &Redemption {
                invite,
                secret: &secret,
                cert: &cert,
                profile: Some(&Profile::named("Xan")),
            },
            now(),
        )
        .unwrap();
}

/// `who` lets themselves in with `invite` on a copy of `from`; returns it.
fn let_self_in(
    from: &Circle,
    invite: roundtable_core::EntityId,
    secret: &InviteSecret,
    who: &(MemberKey, DeviceKey),
    name: &str,
) -> Circle {
    let mut copy = from.clone();
    copy.set_writer(who.1.id(), 1);
    let cert = who.0.certify(who.1.id());
    copy.redeem_self(
        &Redemption {
            invite,
            secret,
            cert: &cert,
            profile: Some(&Profile::named(name)),
        },
        now(),
    )
    .unwrap();
    copy
}

#[test]
fn someone_let_in_beside_the_revocation_is_out_whichever_news_came_first() {
    let mut w = world();
    let xan = stranger();
    let_in_at_phone(&mut w.phone.circle, &w.maya, &xan);
    w.laptop
        .circle
        .revoke_device(w.maya.id(), w.phone.key.id(), now())
        .unwrap();

    // Ana hears from the phone first: Xan is in, for now.
    let out = deliver(&mut w.ana.circle, &w.phone.circle, &[&w.phone.key]);
    assert!(out.rejected.is_empty(), "{out:?}");
    assert!(w.ana.circle.membership().is_member(xan.0.id()));
    assert_eq!(w.ana.circle.membership().epoch, 0);
    // Then the revocation arrives: Xan is out, and the key moves on twice
    // (the phone, then Xan).
    let out = deliver(&mut w.ana.circle, &w.laptop.circle, &[&w.laptop.key]);
    assert!(out.rejected.is_empty(), "{out:?}");
    let at_ana = w.ana.circle.membership();
    assert!(!at_ana.is_member(xan.0.id()));
    assert!(!at_ana.admitted.contains(&xan.1.id()));
    assert!(at_ana.departed.contains(&xan.1.id()));
    assert!(at_ana.revoked.contains(&w.phone.key.id()));
    assert_eq!(at_ana.epoch, 2);

    // Sam hears the other way round and agrees on everything.
    deliver(&mut w.sam.circle, &w.laptop.circle, &[&w.laptop.key]);
    let out = deliver(&mut w.sam.circle, &w.phone.circle, &[&w.phone.key]);
    assert!(out.rejected.is_empty(), "{out:?}");
    assert_eq!(w.sam.circle.membership(), at_ana);
    assert_eq!(w.sam.circle.heads(), w.ana.circle.heads());
}

#[test]
fn what_the_member_saw_before_revoking_stands() {
    let mut w = world();
    let zoe = stranger();
    let_in_at_phone(&mut w.phone.circle, &w.maya, &zoe);
    // Maya's laptop hears of Zoe, then revokes the phone anyway.
    deliver(&mut w.laptop.circle, &w.phone.circle, &[&w.phone.key]);
    w.laptop
        .circle
        .revoke_device(w.maya.id(), w.phone.key.id(), now())
        .unwrap();
    deliver(
        &mut w.ana.circle,
        &w.laptop.circle,
        &[&w.laptop.key, &w.phone.key],
    );
    let m = w.ana.circle.membership();
    assert!(m.is_member(zoe.0.id()));
    assert!(m.admitted.contains(&zoe.1.id()));
    assert_eq!(m.epoch, 1);
}

#[test]
fn an_invite_made_beside_the_revocation_lets_nobody_in_for_good() {
    let mut w = world();
    let mut rng = rand::rng();
    let (invite, secret) = w
        .phone
        .circle
        .create_invite(w.maya.id(), InviteKind::Member, later(), 2, now(), &mut rng)
        .unwrap();
    // The accomplice lets themselves in with it, then invites a friend,
    // who lets themselves in too; all before anyone hears of the revocation.
    let xan = stranger();
    let at_xan = let_self_in(&w.phone.circle, invite, &secret, &xan, "Xan");
    let mut at_xan = at_xan;
    let (second, second_secret) = at_xan
        .create_invite(xan.0.id(), InviteKind::Member, later(), 1, now(), &mut rng)
        .unwrap();
    let yul = stranger();
    let at_yul = let_self_in(&at_xan, second, &second_secret, &yul, "Yul");
    // Meanwhile Maya pairs nothing and revokes the phone.
    w.laptop
        .circle
        .revoke_device(w.maya.id(), w.phone.key.id(), now())
        .unwrap();

    let signers = [&w.phone.key, &xan.1, &yul.1];
    let out = deliver(&mut w.ana.circle, &at_yul, &signers);
    assert!(out.rejected.is_empty(), "{out:?}");
    assert!(w.ana.circle.membership().is_member(yul.0.id()));
    deliver(&mut w.ana.circle, &w.laptop.circle, &[&w.laptop.key]);
    let m = w.ana.circle.membership();
    for who in [&xan, &yul] {
        assert!(!m.is_member(who.0.id()));
        assert!(m.departed.contains(&who.1.id()));
    }
    // The phone, Xan, Yul.
    assert_eq!(m.epoch, 3);
    assert_eq!(m.members.len(), 3);

    // What Xan writes once he has heard is refused, like any departed device.
    let mut xan_later = at_xan.clone();
    deliver(
        &mut xan_later,
        &w.ana.circle,
        &[&w.laptop.key, &xan.1, &yul.1],
    );
    let before = xan_later.heads();
    xan_later
        .checkin(xan.0.id(), Mood::Okay, "still here", now(), &mut rng)
        .unwrap();
    let mut book = HeadBook::for_circle(&w.ana.circle);
    book.learn(
        w.ana.circle.id(),
        SignedHead::sign_all(&xan_later, &xan.1).iter(),
    );
    let out = w
        .ana
        .circle
        .apply_verified(&xan_later.changes_since(&before), &mut book)
        .unwrap();
    assert_eq!(out.rejected[0].1, Rejection::NotAdmitted);
}

#[test]
fn a_device_paired_beside_the_revocation_is_out() {
    let mut w = world();
    let spare = DeviceKey::generate();
    w.phone
        .circle
        .add_device(&w.maya.certify(spare.id()), now())
        .unwrap();
    w.laptop
        .circle
        .revoke_device(w.maya.id(), w.phone.key.id(), now())
        .unwrap();
    deliver(&mut w.sam.circle, &w.phone.circle, &[&w.phone.key]);
    assert!(w.sam.circle.membership().admitted.contains(&spare.id()));
    deliver(&mut w.sam.circle, &w.laptop.circle, &[&w.laptop.key]);
    let m = w.sam.circle.membership();
    assert!(!m.admitted.contains(&spare.id()));
    assert!(m.departed.contains(&spare.id()));
    assert!(m.is_member(w.maya.id()), "Maya herself stays");
    assert!(m.admitted.contains(&w.laptop.key.id()));
    assert_eq!(m.epoch, 2);
}

#[test]
fn a_consent_from_someone_let_in_beside_the_revocation_counts_for_nothing() {
    let mut w = world();
    let mut rng = rand::rng();
    let xan = stranger();
    let_in_at_phone(&mut w.phone.circle, &w.maya, &xan);
    // Xan, now in on the phone's copy, proposes to remove Sam, and the
    // thief consents from the phone: two of three, carried.
    let mut at_xan = w.phone.circle.clone();
    at_xan.set_writer(xan.1.id(), 1);
    let proposal = at_xan
        .propose_removal(xan.0.id(), w.sam_id, "", now(), &mut rng)
        .unwrap();
    let mut phone = w.phone.circle.clone();
    phone.merge(&mut at_xan.clone()).unwrap();
    phone.consent_removal(w.maya.id(), proposal, now()).unwrap();
    deliver(&mut w.ana.circle, &phone, &[&w.phone.key, &xan.1]);
    let m = w.ana.circle.membership();
    assert_eq!(m.proposals[&proposal].electorate.len(), 3, "Maya, Ana, Xan");
    assert!(m.removed.contains(&w.sam_id), "carried while Xan counts");
    w.laptop
        .circle
        .revoke_device(w.maya.id(), w.phone.key.id(), now())
        .unwrap();
    deliver(&mut w.ana.circle, &w.laptop.circle, &[&w.laptop.key]);
    let m = w.ana.circle.membership();
    assert!(
        m.is_member(w.sam_id),
        "Sam is back in once Xan's word is void"
    );
    assert_ne!(
        m.proposals[&proposal].state,
        roundtable_core::ProposalState::Carried
    );
}

/// The members map, a member's record, its devices map and a device record.
fn device_record(
    c: &Circle,
    member: roundtable_core::MemberId,
    device: roundtable_core::DeviceId,
) -> ObjId {
    let get = |obj: &ObjId, key: &str| c.doc().get(obj, key).unwrap().unwrap().1;
    let members = get(&automerge::ROOT, "members");
    let rec = get(&members, &member.to_string());
    let devices = get(&rec, "devices");
    get(&devices, &device.to_string())
}

#[test]
fn a_device_cannot_write_its_own_revocation_to_hold_off_the_real_one() {
    let mut w = world();
    // The thief writes a revocation of the phone on the phone, which no
    // rule counts but which would take the place of the real one.
    let before = w.phone.circle.heads();
    let d = device_record(&w.phone.circle, w.maya.id(), w.phone.key.id());
    w.phone
        .circle
        .transact(now(), "self", |tx| {
            tx.put_object(&d, "revoked", automerge::ObjType::Map)?;
            Ok(())
        })
        .unwrap();
    let mut book = HeadBook::for_circle(&w.ana.circle);
    book.learn(
        w.ana.circle.id(),
        SignedHead::sign_all(&w.phone.circle, &w.phone.key).iter(),
    );
    let out = w
        .ana
        .circle
        .apply_verified(&w.phone.circle.changes_since(&before), &mut book)
        .unwrap();
    assert_eq!(out.rejected[0].1, Rejection::Outline);
    // The real revocation still lands.
    w.laptop
        .circle
        .revoke_device(w.maya.id(), w.phone.key.id(), now())
        .unwrap();
    let out = deliver(&mut w.ana.circle, &w.laptop.circle, &[&w.laptop.key]);
    assert!(out.rejected.is_empty(), "{out:?}");
    assert!(
        w.ana
            .circle
            .membership()
            .revoked
            .contains(&w.phone.key.id())
    );
}

/// The thief's changes and the revocation, handed to Ana, Sam and the
/// laptop in every order and in pieces: everyone ends in the same place,
/// the accomplice out.
fn arrivals() -> impl Strategy<Value = Vec<(usize, usize)>> {
    proptest::collection::vec((0..3usize, 0..3usize), 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn every_order_of_news_ends_with_the_accomplice_out(steps in arrivals()) {
        let mut w = world();
        let xan = stranger();
        let_in_at_phone(&mut w.phone.circle, &w.maya, &xan);
        w.laptop.circle.revoke_device(w.maya.id(), w.phone.key.id(), now()).unwrap();
        let keys = [&w.phone.key, &w.laptop.key, &xan.1];
        let mut copies = [w.ana.circle.clone(), w.sam.circle.clone(), w.laptop.circle.clone()];
        let sources = [w.phone.circle.clone(), w.laptop.circle.clone()];
        for (to, from) in steps {
            let from = if from < 2 { sources[from].clone() } else { copies[(to + 1) % 3].clone() };
            deliver(&mut copies[to], &from, &keys);
        }
        for c in &mut copies {
            for s in &sources {
                deliver(c, s, &keys);
            }
        }
        let m: Vec<Membership> = copies.iter().map(Circle::membership).collect();
        prop_assert_eq!(&m[0], &m[1]);
        prop_assert_eq!(&m[1], &m[2]);
        prop_assert!(!m[0].is_member(xan.0.id()));
        prop_assert_eq!(m[0].epoch, 2);
    }
}
