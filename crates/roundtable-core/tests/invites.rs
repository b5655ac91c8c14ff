//! Invitations: checked before anything changes, recorded when redeemed.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Cast, T0};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use roundtable_core::{
    CoreError, DeviceKey, InviteKind, InviteSecret, MemberKey, Profile, Redemption, Timestamp,
};

const HOUR: i64 = 3_600_000;

fn t(h: i64) -> Timestamp {
    Timestamp::from_millis(T0 + h * HOUR)
}

#[test]
fn a_member_invite_admits_one_newcomer_until_it_expires() {
    let cast = Cast::new(9);
    let mut c = cast.circle();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let maya = cast.members[0].id();
    let (id, secret) = c
        .create_invite(maya, InviteKind::Member, t(24), 1, t(0), &mut rng)
        .unwrap();
    let before = c.canonical_json();

    let newcomer = MemberKey::generate();
    let phone = DeviceKey::generate();
    let cert = newcomer.certify(phone.id());
    let profile = Profile::named("Bea");
    let wrong = InviteSecret::random(&mut rng);
    let bad = Redemption {
        invite: id,
        secret: &wrong,
        cert: &cert,
        profile: Some(&profile),
    };
    assert!(matches!(
        c.redeem_invite(&bad, t(1)),
        Err(CoreError::NotAllowed(_))
    ));
    let late = Redemption {
        invite: id,
        secret: &secret,
        cert: &cert,
        profile: Some(&profile),
    };
    let err = c.redeem_invite(&late, t(25)).unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    assert_eq!(c.canonical_json(), before, "refusals change nothing");

    // Where the invite was made, its own clock set the expiry: no tolerance.
    let within = t(24).plus_millis(5 * 60 * 1000);
    assert!(c.redeem_invite(&late, within).is_err());
    // At another member's device, within the clock tolerance, it still works.
    c.set_device(DeviceKey::from_seed(&[202; 32]).id());
    let inv = c.redeem_invite(&late, within).unwrap();
    assert_eq!(inv.redeemed.len(), 1);
    let view = c.view();
    assert_eq!(view.members[&newcomer.id()].name, "Bea");
    assert_eq!(view.members[&newcomer.id()].invited_by, Some(maya));
    // A retry from the same device is harmless.
    c.redeem_invite(&late, t(2)).unwrap();
    // Anyone else finds it used up.
    let other = MemberKey::generate();
    let other_cert = other.certify(DeviceKey::generate().id());
    let again = Redemption {
        invite: id,
        secret: &secret,
        cert: &other_cert,
        profile: Some(&profile),
    };
    let err = c.redeem_invite(&again, t(2)).unwrap_err();
    assert!(err.to_string().contains("used up"), "{err}");
}

#[test]
fn a_device_invite_pairs_only_the_inviting_members_device() {
    let cast = Cast::new(10);
    let mut c = cast.circle();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let maya = &cast.members[0];
    let (id, secret) = c
        .create_invite(maya.id(), InviteKind::Device, t(1), 2, t(0), &mut rng)
        .unwrap();
    let stranger = MemberKey::generate().certify(DeviceKey::generate().id());
    let r = Redemption {
        invite: id,
        secret: &secret,
        cert: &stranger,
        profile: None,
    };
    assert!(matches!(
        c.redeem_invite(&r, t(0)),
        Err(CoreError::NotAllowed(_))
    ));
    let laptop = DeviceKey::generate();
    let cert = maya.certify(laptop.id());
    let r = Redemption {
        invite: id,
        secret: &secret,
        cert: &cert,
        profile: None,
    };
    c.redeem_invite(&r, t(0)).unwrap();
    assert!(
        c.view().members[&maya.id()]
            .devices
            .contains_key(&laptop.id())
    );
}

#[test]
fn invites_must_expire_in_the_future_and_have_uses() {
    let cast = Cast::new(11);
    let mut c = cast.circle();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let maya = cast.members[0].id();
    assert!(
        c.create_invite(maya, InviteKind::Member, t(0), 1, t(1), &mut rng)
            .is_err()
    );
    assert!(
        c.create_invite(maya, InviteKind::Member, t(5), 0, t(1), &mut rng)
            .is_err()
    );
    let outsider = MemberKey::generate().id();
    assert!(
        c.create_invite(outsider, InviteKind::Member, t(5), 1, t(1), &mut rng)
            .is_err()
    );
}
