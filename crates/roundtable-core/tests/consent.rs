//! Removal by consent and single-use invites, as rules of the document.
//! How devices running them converge (proposals, consents, revocations
//! and key rotation across partitions and crashes) is the node's
//! simulation: `roundtable-machine/tests/simulation`.
#![allow(clippy::unwrap_used)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roundtable_core::{Circle, DeviceKey, MemberKey, Profile, ProposalState, Timestamp};

fn now(step: usize) -> Timestamp {
    Timestamp::from_millis(1_780_000_000_000 + step as i64 * 60_000)
}

#[test]
fn one_member_alone_cannot_remove_anyone() {
    let mut rng = StdRng::seed_from_u64(7);
    let keys: Vec<(MemberKey, DeviceKey)> = (0..4)
        .map(|_| {
            (
                MemberKey::from_seed(&rng.random()),
                DeviceKey::from_seed(&rng.random()),
            )
        })
        .collect();
    let mut circle = Circle::create(
        "Sim",
        "",
        &keys[0].0.certify(keys[0].1.id()),
        &Profile::named("m0"),
        now(0),
        &mut rng,
    )
    .unwrap();
    for (i, (m, d)) in keys.iter().enumerate().skip(1) {
        let cert = m.certify(d.id());
        let profile = Profile::named(format!("m{i}"));
        circle
            .add_member(&cert, &profile, Some(keys[0].0.id()), now(0))
            .unwrap();
    }
    circle.set_device(keys[1].1.id());
    // Two-person electorates aside, a proposer alone never carries it,
    // however many times they consent.
    let me = keys[1].0.id();
    let target = keys[2].0.id();
    let p = circle
        .propose_removal(me, target, "alone", now(1), &mut rng)
        .unwrap();
    assert!(circle.consent_removal(me, p, now(2)).is_err());
    let m = circle.membership();
    assert_eq!(m.proposals[&p].state, ProposalState::Open);
    assert!(m.members.contains(&target));
    assert_eq!(m.epoch, 0);
}

#[test]
fn concurrent_redemptions_of_a_single_use_invite_resolve_to_one() {
    use roundtable_core::{InviteKind, Redemption};

    let mut rng = StdRng::seed_from_u64(11);
    let maya = MemberKey::from_seed(&rng.random());
    let (laptop, phone) = (
        DeviceKey::from_seed(&rng.random()),
        DeviceKey::from_seed(&rng.random()),
    );
    let mut a = Circle::create(
        "Sim",
        "",
        &maya.certify(laptop.id()),
        &Profile::named("Maya"),
        now(0),
        &mut rng,
    )
    .unwrap();
    a.add_device(&maya.certify(phone.id()), now(0)).unwrap();
    let (invite, secret) = a
        .create_invite(maya.id(), InviteKind::Member, now(100), 1, now(1), &mut rng)
        .unwrap();
    // Two of Maya's devices each let someone in with the same ticket.
    let mut b = a.clone();
    b.set_device(phone.id());
    let (x, y) = (
        MemberKey::from_seed(&rng.random()),
        MemberKey::from_seed(&rng.random()),
    );
    let (xd, yd) = (
        DeviceKey::from_seed(&rng.random()),
        DeviceKey::from_seed(&rng.random()),
    );
    for (copy, who, dev, name) in [(&mut a, &x, &xd, "X"), (&mut b, &y, &yd, "Y")] {
        copy.redeem_invite(
            &Redemption {
                invite,
                secret: &secret,
                cert: &who.certify(dev.id()),
                profile: Some(&Profile::named(name)),
            },
            now(2),
        )
        .unwrap();
        assert!(copy.membership().is_member(who.id()));
    }
    a.merge(&mut b.clone()).unwrap();
    b.merge(&mut a.clone()).unwrap();
    let (ma, mb) = (a.membership(), b.membership());
    assert_eq!(ma, mb, "both copies agree");
    let in_x = ma.is_member(x.id());
    let in_y = ma.is_member(y.id());
    assert!(in_x ^ in_y, "exactly one of the two is in");
    let out = if in_x { yd.id() } else { xd.id() };
    assert!(!ma.admitted.contains(&out));
    assert!(ma.departed.contains(&out));
}

#[test]
fn a_proposal_that_could_never_pass_is_refused_with_the_reason() {
    let mut rng = StdRng::seed_from_u64(13);
    let (maya, sam) = (
        MemberKey::from_seed(&rng.random()),
        MemberKey::from_seed(&rng.random()),
    );
    let laptop = DeviceKey::from_seed(&rng.random());
    let mut circle = Circle::create(
        "Two of us",
        "",
        &maya.certify(laptop.id()),
        &Profile::named("Maya"),
        now(0),
        &mut rng,
    )
    .unwrap();
    circle
        .add_member(
            &sam.certify(DeviceKey::from_seed(&rng.random()).id()),
            &Profile::named("Sam"),
            Some(maya.id()),
            now(0),
        )
        .unwrap();
    // In a circle of two, the one proposing is the only other member: it
    // takes two, so it is refused before anything is written.
    let heads = circle.heads();
    let err = circle
        .propose_removal(maya.id(), sam.id(), "", now(1), &mut rng)
        .unwrap_err();
    assert!(
        err.to_string().contains("could never pass") && err.to_string().contains("only you"),
        "{err}"
    );
    assert_eq!(circle.heads(), heads, "nothing was written");
    assert!(circle.membership().proposals.is_empty());
    assert_eq!(
        roundtable_core::membership::cannot_pass(2),
        None,
        "three people: the two others can agree"
    );
}
