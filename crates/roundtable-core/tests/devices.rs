//! Devices per member have a bound every device agrees on: a member who
//! certifies thousands of devices of their own (with real keys) is refused
//! by every other device at once, and nobody's copy grows with them.
#![allow(clippy::unwrap_used)]

use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, ROOT, ReadDoc, Value};
use roundtable_core::membership::{MAX_ACTIVE_DEVICES, MAX_DEVICE_RECORDS};
use roundtable_core::{
    Applied, ChangeHash, Circle, CoreError, DeviceKey, HeadBook, MemberKey, Profile, Rejection,
    SignedHead, Timestamp,
};

fn now() -> Timestamp {
    Timestamp::from_millis(1_795_464_000_000)
}

/// Maya founds a circle with Sam; Sam's copy is on his first device.
fn circle() -> (Circle, Circle, MemberKey, DeviceKey) {
    let mut rng = rand::rng();
    let (maya, maya_dev) = (MemberKey::generate(), DeviceKey::generate());
    let (sam, sam_dev) = (MemberKey::generate(), DeviceKey::generate());
    let mut c = Circle::create(
        "Supper",
        "",
        &maya.certify(maya_dev.id()),
        &Profile::named("Maya"),
        now(),
        &mut rng,
    )
    .unwrap();
    c.add_member(
        &sam.certify(sam_dev.id()),
        &Profile::named("Sam"),
        Some(maya.id()),
        now(),
    )
    .unwrap();
    let mut at_maya = c.clone();
    at_maya.set_device(maya_dev.id());
    let mut at_sam = c;
    at_sam.set_device(sam_dev.id());
    (at_maya, at_sam, sam, sam_dev)
}

/// Applies `from`'s changes since `before` as a node would, proven by
/// `signer`'s signed head.
fn receive(to: &mut Circle, from: &Circle, before: &[ChangeHash], signer: &DeviceKey) -> Applied {
    let mut book = HeadBook::for_circle(to);
    book.learn(to.id(), SignedHead::sign(from, signer).iter());
    to.apply_verified(&from.changes_since(before), &mut book)
        .unwrap()
}

/// Sam's devices map in `c`.
fn devices_of(c: &Circle, member: roundtable_core::MemberId) -> ObjId {
    let get = |obj: &ObjId, key: &str| match c.doc().get(obj, key).unwrap() {
        Some((Value::Object(_), id)) => id,
        other => panic!("nothing at {key}: {other:?}"),
    };
    let members = get(&ROOT, "members");
    let rec = get(&members, &member.to_string());
    get(&rec, "devices")
}

/// Writes `n` device records that `sam` really certified, by hand, in
/// changes of `per_change` records each (under the operations bound).
fn certify_by_hand(c: &mut Circle, sam: &MemberKey, n: usize, per_change: usize) {
    let devices = devices_of(c, sam.id());
    let mut left = n;
    while left > 0 {
        let k = left.min(per_change);
        let certs: Vec<_> = (0..k)
            .map(|_| sam.certify(DeviceKey::generate().id()))
            .collect();
        c.transact(now(), "add devices", |tx| {
            for cert in &certs {
                let d = tx.put_object(&devices, cert.device.to_string(), ObjType::Map)?;
                tx.put(&d, "cert", cert.signature_hex())?;
                tx.put(&d, "added_at", now().as_millis())?;
            }
            Ok(())
        })
        .unwrap();
        left -= k;
    }
}

#[test]
fn a_member_certifying_thousands_of_devices_is_refused_and_nobody_grows() {
    let (mut maya, mut sam_copy, sam, sam_dev) = circle();
    let small = maya.save().len();
    let before = sam_copy.heads();
    // A few devices of Sam's own, as a person pairs them: fine.
    certify_by_hand(&mut sam_copy, &sam, 3, 300);
    let out = receive(&mut maya, &sam_copy, &before, &sam_dev);
    assert!(out.rejected.is_empty(), "{out:?}");
    // Then three thousand, in changes of 300 (each under every size bound).
    let before = sam_copy.heads();
    certify_by_hand(&mut sam_copy, &sam, 3_000, 300);
    let out = receive(&mut maya, &sam_copy, &before, &sam_dev);
    assert_eq!(out.applied, 0, "{out:?}");
    assert_eq!(out.rejected.len(), 10);
    assert_eq!(out.rejected[0].1, Rejection::Outline);
    assert!(
        out.rejected[1..]
            .iter()
            .all(|r| r.1 == Rejection::BuildsOnRejected),
        "{out:?}"
    );
    // Maya's copy holds Sam's four devices and stays as small as it was.
    let view = maya.view();
    assert_eq!(view.members[&sam.id()].devices.len(), 4);
    let m = maya.membership();
    assert_eq!(m.certified.len(), 5);
    assert!(
        maya.save().len() < small + 4_096,
        "{} bytes",
        maya.save().len()
    );
}

#[test]
fn pairing_past_the_bound_is_refused_with_what_to_do() {
    let (mut maya, mut sam_copy, sam, sam_dev) = circle();
    let before = sam_copy.heads();
    let mut paired = Vec::new();
    for _ in 1..MAX_ACTIVE_DEVICES {
        let d = DeviceKey::generate();
        sam_copy.add_device(&sam.certify(d.id()), now()).unwrap();
        paired.push(d);
    }
    // The ninth is refused here, with words that say what to do...
    let err = sam_copy
        .add_device(&sam.certify(DeviceKey::generate().id()), now())
        .unwrap_err();
    assert!(matches!(err, CoreError::NotAllowed(_)), "{err}");
    assert!(err.to_string().contains("revoke one"), "{err}");
    let err = sam_copy
        .create_invite(
            sam.id(),
            roundtable_core::InviteKind::Device,
            now().plus_millis(60_000),
            1,
            now(),
            &mut rand::rng(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("revoke one"), "{err}");
    let out = receive(&mut maya, &sam_copy, &before, &sam_dev);
    assert!(out.rejected.is_empty(), "{out:?}");
    // ... and written by hand, refused by everyone else.
    let mut rogue = sam_copy.clone();
    let before = rogue.heads();
    certify_by_hand(&mut rogue, &sam, 1, 1);
    let out = receive(&mut maya, &rogue, &before, &sam_dev);
    assert_eq!(out.rejected.len(), 1, "{out:?}");
    assert_eq!(out.rejected[0].1, Rejection::Outline);
    // Revoking one makes room again.
    let before = sam_copy.heads();
    sam_copy
        .revoke_device(sam.id(), paired[0].id(), now())
        .unwrap();
    sam_copy
        .add_device(&sam.certify(DeviceKey::generate().id()), now())
        .unwrap();
    let out = receive(&mut maya, &sam_copy, &before, &sam_dev);
    assert!(out.rejected.is_empty(), "{out:?}");
    assert_eq!(
        maya.view().members[&sam.id()].devices.len(),
        MAX_ACTIVE_DEVICES + 1
    );
}

#[test]
fn records_merged_past_the_bound_count_alike_everywhere() {
    let (_, mut sam_copy, sam, _) = circle();
    let second = DeviceKey::generate();
    sam_copy
        .add_device(&sam.certify(second.id()), now())
        .unwrap();
    // Two of Sam's devices, apart, each pair and revoke devices up to the
    // bound of records; merged, they hold nearly twice as many.
    let fill = |mut c: Circle| {
        let mut live = Vec::new();
        while c.view().members[&sam.id()].devices.len() < MAX_DEVICE_RECORDS {
            if live.len() + 2 == MAX_ACTIVE_DEVICES {
                let d: DeviceKey = live.remove(0);
                c.revoke_device(sam.id(), d.id(), now()).unwrap();
            }
            let d = DeviceKey::generate();
            c.add_device(&sam.certify(d.id()), now()).unwrap();
            live.push(d);
        }
        let err = c
            .add_device(&sam.certify(DeviceKey::generate().id()), now())
            .unwrap_err();
        assert!(err.to_string().contains("ever"), "{err}");
        c
    };
    let mut a = fill(sam_copy.clone());
    sam_copy.set_device(second.id());
    let b = fill(sam_copy);
    let mut ab = a.clone();
    ab.merge(&mut b.clone()).unwrap();
    let mut ba = b.clone();
    ba.merge(&mut a).unwrap();
    let records = ab.view().members[&sam.id()].devices.len();
    assert_eq!(records, 2 * MAX_DEVICE_RECORDS - 2);
    let (m1, m2) = (ab.membership(), ba.membership());
    assert_eq!(m1, m2, "every copy counts the same records");
    let sams: Vec<_> = ab.view().members[&sam.id()]
        .devices
        .keys()
        .copied()
        .collect();
    // The first records by causal order count; every later one departed.
    let beyond = sams.iter().filter(|d| m1.departed.contains(d)).count();
    assert!(beyond >= records - MAX_DEVICE_RECORDS, "{beyond}");
    let admitted = sams.iter().filter(|d| m1.admitted.contains(d)).count();
    assert!(
        (1..=2 * MAX_ACTIVE_DEVICES).contains(&admitted),
        "{admitted}"
    );
}
