//! Recovery: someone who lost every device is vouched for by the circle.
//! A new device, on a new member key, becomes theirs once enough others
//! vouch and their own devices have had the wait to refuse it; then their
//! old devices are let go and the circle moves to a new key.
#![allow(clippy::unwrap_used)]

use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc};
use roundtable_core::membership::{RECOVERY_WAIT_HOURS, Recovery};
use roundtable_core::{
    Circle, DeviceCert, DeviceKey, EntityId, HeadBook, InviteKind, MemberId, MemberKey, Mood,
    Profile, ProposalState, Redemption, Rejection, SignedHead, Timestamp,
};

fn at(hours: i64) -> Timestamp {
    Timestamp::from_millis(1_795_464_000_000 + hours * 3_600_000)
}

/// A device, the member key it holds, and the copy of the circle it holds.
struct Dev {
    member: MemberKey,
    key: DeviceKey,
    circle: Circle,
}

/// Every device key there is in these tests, whose signed heads prove
/// their changes.
struct World {
    keys: Vec<DeviceKey>,
}

impl World {
    /// `to` takes in everything `from` holds, as a node would after a sync.
    fn hear(&self, to: &mut Dev, from: &Dev) -> roundtable_core::Applied {
        let mut book = HeadBook::for_circle(&to.circle);
        for key in &self.keys {
            book.learn(
                to.circle.id(),
                SignedHead::sign_all(&from.circle, key).iter(),
            );
        }
        to.circle
            .apply_verified(&from.circle.save(), &mut book)
            .unwrap()
    }

    /// Like [`Self::hear`], and nothing may be refused.
    fn hears(&self, to: &mut Dev, from: &Dev) {
        let out = self.hear(to, from);
        assert!(out.rejected.is_empty(), "{out:?}");
    }
}

/// Maya, Sam, Lee and Ana, all holding the same copy; and Ana's new
/// laptop, on a key of its own, holding nothing of the circle.
fn circle() -> (World, [Dev; 4], (MemberKey, DeviceKey)) {
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
    for (i, name) in [(1, "Sam"), (2, "Lee"), (3, "Ana")] {
        c.add_member(
            &members[i].certify(devices[i].id()),
            &Profile::named(name),
            Some(members[0].id()),
            at(0),
        )
        .unwrap();
    }
    let laptop = (MemberKey::generate(), DeviceKey::generate());
    let mut keys = devices.to_vec();
    keys.push(laptop.1.clone());
    let mut i = 0;
    let devs = [(); 4].map(|()| {
        let (member, key) = (members[i].clone(), devices[i].clone());
        i += 1;
        let mut circle = c.clone();
        circle.set_device(key.id());
        Dev {
            member,
            key,
            circle,
        }
    });
    (World { keys }, devs, laptop)
}

fn id(d: &Dev) -> MemberId {
    d.member.id()
}

fn recovery(c: &Circle, p: EntityId) -> (ProposalState, Recovery) {
    let m = c.membership();
    let p = &m.proposals[&p];
    (p.state, p.recovery.clone().unwrap())
}

/// Maya vouches for the laptop as Ana's at hour 10 and Sam at hour 11:
/// enough of three. Everyone hears.
fn vouched(w: &World, devs: &mut [Dev; 4], cert: &DeviceCert) -> EntityId {
    let mut rng = rand::rng();
    let [maya, sam, lee, ana] = devs;
    let p = maya
        .circle
        .propose_recovery(
            id(maya),
            id(ana),
            cert,
            RECOVERY_WAIT_HOURS,
            "she rang me from her sister's",
            at(10),
            &mut rng,
        )
        .unwrap();
    w.hears(sam, maya);
    assert_eq!(
        sam.circle.consent_removal(id(sam), p, at(11)).unwrap(),
        ProposalState::Carried
    );
    for d in [&mut *maya, &mut *lee, &mut *ana] {
        w.hears(d, sam);
    }
    p
}

#[test]
fn a_lost_identity_is_vouched_for_and_becomes_theirs_after_the_wait() {
    let mut rng = rand::rng();
    let (w, mut devs, (new_key, laptop)) = circle();
    let cert = new_key.certify(laptop.id());
    let ana_id = id(&devs[3]);
    let old_device = devs[3].key.id();
    let epoch = devs[0].circle.membership().epoch;

    // One vouch is not enough, and says so.
    let first = devs[0]
        .circle
        .propose_recovery(
            id(&devs[0]),
            ana_id,
            &cert,
            RECOVERY_WAIT_HOURS,
            "",
            at(10),
            &mut rng,
        )
        .unwrap();
    let m = devs[0].circle.membership();
    let view = devs[0].circle.view();
    assert_eq!(m.proposals[&first].state, ProposalState::Open);
    assert_eq!(
        m.proposals[&first].words(&view),
        "a request to become Ana's device: vouched for by Maya; one more needed"
    );
    let [maya, sam, lee, ana] = &mut devs;
    w.hears(sam, maya);
    sam.circle.consent_removal(id(sam), first, at(11)).unwrap();
    for d in [&mut *maya, &mut *lee, &mut *ana] {
        w.hears(d, sam);
    }
    let (state, r) = recovery(&lee.circle, first);
    assert_eq!(state, ProposalState::Carried);
    assert_eq!(r.until(), Some(at(11 + 48)));
    assert!(
        lee.circle.membership().proposals[&first]
            .words(&lee.circle.view())
            .contains("Ana's own devices can refuse it until"),
    );

    // Not before the wait is over, by anyone.
    assert!(lee.circle.recoveries_due(id(lee), at(58)).is_empty());
    assert!(
        lee.circle
            .complete_recovery(id(lee), first, at(58))
            .is_err()
    );
    // Nor by Ana's own (old) device, whoever holds it.
    assert!(ana.circle.complete_recovery(ana_id, first, at(60)).is_err());
    assert_eq!(lee.circle.recoveries_due(id(lee), at(59)), [first]);
    lee.circle
        .complete_recovery(id(lee), first, at(60))
        .unwrap();
    for d in [&mut *maya, &mut *sam] {
        w.hears(d, lee);
    }

    // The laptop is Ana's; her old device has departed; a new epoch.
    for d in [&*maya, &*sam, &*lee] {
        let m = d.circle.membership();
        assert_eq!(m.key_of(ana_id), new_key.id());
        assert_eq!(m.member_by_key(new_key.id()), Some(ana_id));
        assert!(m.admitted.contains(&laptop.id()));
        assert!(!m.admitted.contains(&old_device));
        assert!(m.departed.contains(&old_device));
        assert!(m.is_member(ana_id));
        assert_eq!(m.epoch, epoch + 1);
        assert_eq!(recovery(&d.circle, first).1.completed, Some(at(60)));
    }

    // A member's ticket, taken at Maya's, brings the laptop the circle
    // and uses nothing up; one for another device of the new key adds it
    // to Ana's record.
    let (invite, secret) = maya
        .circle
        .create_invite(id(maya), InviteKind::Member, at(100), 1, at(60), &mut rng)
        .unwrap();
    let heads = maya.circle.heads();
    let ticket = |cert| Redemption {
        invite,
        secret: &secret,
        cert,
        profile: None,
    };
    maya.circle.redeem_invite(&ticket(&cert), at(61)).unwrap();
    assert_eq!(maya.circle.heads(), heads);
    // So does the same ticket on a copy a steward handed the laptop while
    // no member's device is on: it is in already, nothing is written.
    let mut handed = maya.circle.clone();
    handed.set_device(laptop.id());
    handed.redeem_self(&ticket(&cert), at(61)).unwrap();
    assert_eq!(handed.heads(), heads);
    let tablet = DeviceKey::generate();
    let tablet_cert = new_key.certify(tablet.id());
    let mut host = Dev {
        member: maya.member.clone(),
        key: maya.key.clone(),
        circle: maya.circle.clone(),
    };
    host.circle
        .redeem_invite(&ticket(&tablet_cert), at(61))
        .unwrap();
    let m = host.circle.membership();
    assert!(m.admitted.contains(&tablet.id()));
    assert!(
        host.circle.view().members[&ana_id]
            .devices
            .contains_key(&tablet.id())
    );

    // The laptop writes as Ana: her name, her history.
    let mut copy = lee.circle.clone();
    copy.set_device(laptop.id());
    let mut back = Dev {
        member: new_key.clone(),
        key: laptop.clone(),
        circle: copy,
    };
    back.circle
        .checkin(ana_id, Mood::Okay, "new laptop, same me", at(61), &mut rng)
        .unwrap();
    w.hears(maya, &back);
    let view = maya.circle.view();
    assert!(
        view.checkins
            .values()
            .any(|c| c.author == ana_id && c.note == "new laptop, same me")
    );
    assert_eq!(view.name_of(&ana_id), "Ana");

    // Her old device, in a thief's hands, writes nothing more that counts.
    w.hears(ana, lee);
    let before = maya.circle.view().checkins.len();
    let wrote = ana
        .circle
        .checkin(ana_id, Mood::Struggling, "it's really me", at(62), &mut rng);
    if wrote.is_ok() {
        let out = w.hear(maya, ana);
        assert_eq!(out.rejected.len(), 1, "{out:?}");
    }
    assert_eq!(maya.circle.view().checkins.len(), before);

    // The new key pairs her next device; the old key no longer can.
    let phone = DeviceKey::generate();
    back.circle
        .add_device(&new_key.certify(phone.id()), at(63))
        .unwrap();
    let stale = ana.member.certify(DeviceKey::generate().id());
    assert!(maya.circle.add_device(&stale, at(63)).is_err());
    let mut w2 = World {
        keys: w.keys.clone(),
    };
    w2.keys.push(phone.clone());
    w2.hears(maya, &back);
    assert!(maya.circle.membership().admitted.contains(&phone.id()));
    let record = &maya.circle.view().members[&ana_id].devices[&phone.id()];
    assert_eq!(record.key, Some(*new_key.id().as_bytes()));
}

#[test]
fn the_members_own_device_refuses_in_the_wait() {
    let (w, mut devs, (new_key, laptop)) = circle();
    let cert = new_key.certify(laptop.id());
    let p = vouched(&w, &mut devs, &cert);
    let [maya, sam, lee, ana] = &mut devs;
    let ana_id = id(ana);

    // Someone else's word for Ana counts for nothing: Sam cannot refuse,
    // and a refusal he writes in her device's name is refused on arrival.
    assert!(sam.circle.refuse_recovery(id(sam), p, at(12)).is_err());
    let mut forger = Dev {
        member: sam.member.clone(),
        key: sam.key.clone(),
        circle: sam.circle.clone(),
    };
    let obj = proposal_obj(&forger.circle, p);
    let ana_device = ana.key.id();
    forger
        .circle
        .transact(at(12), "refusal in her name", |tx| {
            let refused = tx.get(&obj, "refused")?.unwrap().1;
            let r = tx.put_object(&refused, ana_device.to_string(), ObjType::Map)?;
            tx.put(&r, "at", at(12).as_millis())?;
            Ok(())
        })
        .unwrap();
    let out = w.hear(lee, &forger);
    assert_eq!(out.rejected.len(), 1, "{out:?}");
    assert_eq!(out.rejected[0].1, Rejection::Outline);

    // Ana's own device refuses: it never becomes hers.
    ana.circle.refuse_recovery(ana_id, p, at(20)).unwrap();
    assert!(ana.circle.refuse_recovery(ana_id, p, at(21)).is_err());
    for d in [&mut *maya, &mut *sam, &mut *lee] {
        w.hears(d, ana);
    }
    let (state, r) = recovery(&lee.circle, p);
    assert_eq!(state, ProposalState::Refused);
    assert_eq!(r.refused_by.len(), 1);
    assert!(lee.circle.recoveries_due(id(lee), at(100)).is_empty());
    assert!(lee.circle.complete_recovery(id(lee), p, at(100)).is_err());
    assert_eq!(
        lee.circle.membership().proposals[&p].words(&lee.circle.view()),
        "a device of Ana's refused the request to become theirs"
    );
    let m = lee.circle.membership();
    assert!(m.admitted.contains(&ana.key.id()));
    assert!(!m.admitted.contains(&laptop.id()));
    assert_eq!(m.key_of(ana_id), ana_id);
}

#[test]
fn a_refusal_beside_the_completion_wins_on_every_copy() {
    let (w, mut devs, (new_key, laptop)) = circle();
    let cert = new_key.certify(laptop.id());
    let p = vouched(&w, &mut devs, &cert);
    let epoch = devs[0].circle.membership().epoch;
    let [maya, sam, lee, ana] = &mut devs;
    let ana_id = id(ana);
    // Lee carries it through while Ana's phone, not having heard,
    // refuses.
    lee.circle.complete_recovery(id(lee), p, at(60)).unwrap();
    ana.circle.refuse_recovery(ana_id, p, at(60)).unwrap();
    // Maya hears the completion first, Sam the refusal first.
    w.hears(maya, lee);
    assert!(maya.circle.membership().admitted.contains(&laptop.id()));
    w.hears(maya, ana);
    w.hears(sam, ana);
    w.hears(sam, lee);
    for d in [&*maya, &*sam] {
        let m = d.circle.membership();
        assert_eq!(m.proposals[&p].state, ProposalState::Refused);
        assert!(!m.admitted.contains(&laptop.id()));
        assert!(m.admitted.contains(&ana.key.id()));
        assert_eq!(m.key_of(ana_id), ana_id);
        assert_eq!(m.epoch, epoch + 2, "let go, then back: two new keys");
    }
    assert_eq!(
        maya.circle.canonical_json(),
        sam.circle.canonical_json(),
        "the same, whichever came first"
    );
}

#[test]
fn a_completion_too_soon_or_by_someone_who_cannot_vouch_is_refused_on_arrival() {
    let (w, mut devs, (new_key, laptop)) = circle();
    let cert = new_key.certify(laptop.id());
    let p = vouched(&w, &mut devs, &cert);
    let [maya, _, lee, ana] = &mut devs;
    let ana_id = id(ana);
    let forge = |dev: &Dev, when: Timestamp, with_device: bool| {
        let mut forger = Dev {
            member: dev.member.clone(),
            key: dev.key.clone(),
            circle: dev.circle.clone(),
        };
        let obj = proposal_obj(&forger.circle, p);
        let record = member_record(&forger.circle, ana_id);
        let sig = cert.signature_hex();
        let key = hex(new_key.id().as_bytes());
        forger
            .circle
            .transact(when, "complete recovery", |tx| {
                let done = tx.put_object(&obj, "completed", ObjType::Map)?;
                tx.put(&done, "at", when.as_millis())?;
                if with_device {
                    let devices = tx.get(&record, "devices")?.unwrap().1;
                    let d = tx.put_object(&devices, laptop.id().to_string(), ObjType::Map)?;
                    tx.put(&d, "cert", sig.as_str())?;
                    tx.put(&d, "key", key.as_str())?;
                }
                Ok(())
            })
            .unwrap();
        forger
    };
    // Before the wait is over, by the times written.
    let early = forge(lee, at(30), true);
    let out = w.hear(maya, &early);
    assert_eq!(out.rejected.len(), 1, "{out:?}");
    assert_eq!(out.rejected[0].1, Rejection::Outline);
    // By Ana's own (old) device, which could not vouch.
    let own = forge(ana, at(60), true);
    assert_eq!(w.hear(maya, &own).rejected.len(), 1);
    // Without the new device's record.
    let bare = forge(lee, at(60), false);
    assert_eq!(w.hear(maya, &bare).rejected.len(), 1);
    // As it may be: taken in.
    let honest = forge(lee, at(60), true);
    w.hears(maya, &honest);
    assert!(maya.circle.membership().admitted.contains(&laptop.id()));
}

#[test]
fn a_request_names_a_new_key_and_a_device_new_to_the_circle() {
    let mut rng = rand::rng();
    let (w, mut devs, (new_key, laptop)) = circle();
    let [maya, sam, lee, ana] = &mut devs;
    let (maya_id, ana_id) = (id(maya), id(ana));
    let electorate = [maya_id, id(sam), id(lee)];
    // A device already in, a member's own key, a wait out of bounds, or
    // oneself: each refused in words.
    let theirs = sam.member.certify(DeviceKey::generate().id());
    let old = new_key.certify(ana.key.id());
    let good = new_key.certify(laptop.id());
    for (cert, wait, target) in [
        (&theirs, 48, ana_id),
        (&old, 48, ana_id),
        (&good, 2, ana_id),
        (&good, 48, maya_id),
    ] {
        let e = maya
            .circle
            .propose_recovery(maya_id, target, cert, wait, "", at(10), &mut rng)
            .unwrap_err();
        assert!(!e.to_string().is_empty());
    }
    // A proposal written by hand naming a member's own key as the new one
    // is refused on arrival.
    let mut forger = Dev {
        member: maya.member.clone(),
        key: maya.key.clone(),
        circle: maya.circle.clone(),
    };
    let sam_key = sam.member.clone();
    let device = DeviceKey::generate();
    let stolen = sam_key.certify(device.id());
    forger
        .circle
        .transact(at(10), "vouch for a recovery", |tx| {
            let removals = tx.get(automerge::ROOT, "removals")?.unwrap().1;
            let p = tx.put_object(&removals, "00112233aabbccdd", ObjType::Map)?;
            tx.put(&p, "kind", "recover")?;
            tx.put(&p, "target", ana_id.to_string())?;
            tx.put(&p, "by", maya_id.to_string())?;
            tx.put(&p, "key", hex(sam_key.id().as_bytes()))?;
            tx.put(&p, "device", device.id().to_string())?;
            tx.put(&p, "cert", stolen.signature_hex())?;
            tx.put(&p, "wait_hours", 48_u64)?;
            let e = tx.put_object(&p, "electorate", ObjType::Map)?;
            for m in electorate {
                tx.put(&e, m.to_string(), true)?;
            }
            Ok(())
        })
        .unwrap();
    let out = w.hear(sam, &forger);
    assert_eq!(out.rejected.len(), 1, "{out:?}");
    // The honest request is taken; a second vouch for the same device is
    // a consent, not a second proposal.
    let p = maya
        .circle
        .propose_recovery(maya_id, ana_id, &good, 48, "", at(10), &mut rng)
        .unwrap();
    assert!(
        maya.circle
            .propose_recovery(maya_id, ana_id, &good, 48, "", at(10), &mut rng)
            .unwrap_err()
            .to_string()
            .contains(&p.to_string())
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn proposal_obj(c: &Circle, p: EntityId) -> automerge::ObjId {
    let removals = c.doc().get(automerge::ROOT, "removals").unwrap().unwrap().1;
    c.doc().get(&removals, p.to_string()).unwrap().unwrap().1
}

fn member_record(c: &Circle, member: MemberId) -> automerge::ObjId {
    let members = c.doc().get(automerge::ROOT, "members").unwrap().unwrap().1;
    c.doc()
        .get(&members, member.to_string())
        .unwrap()
        .unwrap()
        .1
}

#[test]
fn vouches_made_apart_count_together() {
    let mut rng = rand::rng();
    let (w, mut devs, (new_key, laptop)) = circle();
    let cert = new_key.certify(laptop.id());
    let [maya, sam, lee, ana] = &mut devs;
    let ana_id = id(ana);
    // Maya and Sam each vouch on their own copy, neither having heard of
    // the other's.
    let mine = maya
        .circle
        .vouch(id(maya), ana_id, &cert, 48, "she rang me", at(10), &mut rng)
        .unwrap();
    let theirs = sam
        .circle
        .vouch(
            id(sam),
            ana_id,
            &cert,
            48,
            "we met for coffee",
            at(12),
            &mut rng,
        )
        .unwrap();
    assert_ne!(mine, theirs);
    w.hears(lee, sam);
    w.hears(lee, maya);
    w.hears(maya, sam);
    let m = lee.circle.membership();
    let (first, other) = if m.proposals[&mine].state == ProposalState::Void {
        (theirs, mine)
    } else {
        (mine, theirs)
    };
    assert_eq!(m.proposals[&first].state, ProposalState::Carried);
    assert_eq!(m.proposals[&first].consents.len(), 2);
    assert_eq!(
        m.proposals[&other].recovery.as_ref().unwrap().joined,
        Some(first)
    );
    assert_eq!(
        m.proposals[&first].recovery.as_ref().unwrap().until(),
        Some(at(12 + 48)),
        "enough vouched once the second did"
    );
    assert_eq!(maya.circle.canonical_json(), lee.circle.canonical_json());
    // A refusal of either is a refusal of the one recovery.
    w.hears(ana, lee);
    ana.circle.refuse_recovery(ana_id, other, at(20)).unwrap();
    w.hears(lee, ana);
    assert_eq!(
        lee.circle.membership().proposals[&first].state,
        ProposalState::Refused
    );
}

#[test]
fn the_circles_wait_is_what_a_vouch_writes() {
    let mut rng = rand::rng();
    let (w, mut devs, (new_key, laptop)) = circle();
    let cert = new_key.certify(laptop.id());
    let [maya, sam, _lee, ana] = &mut devs;
    assert_eq!(maya.circle.recovery_wait_hours(), RECOVERY_WAIT_HOURS);
    assert!(
        maya.circle
            .view()
            .recovery_wait_words()
            .starts_with("48 hours")
    );
    // Out of bounds: refused, nothing written.
    let heads = sam.circle.doc().get_heads();
    for hours in [0, 23, 337] {
        assert!(sam.circle.set_recovery_wait(id(sam), hours, at(1)).is_err());
    }
    assert_eq!(sam.circle.doc().get_heads(), heads);
    // Sam sets a week; Maya hears, and her vouch, made through an op as
    // the node makes it, writes the circle's wait on the proposal.
    sam.circle
        .perform(
            &roundtable_core::Op::RecoveryWait { hours: 7 * 24 },
            id(sam),
            at(2),
            &mut rng,
        )
        .unwrap();
    w.hears(maya, sam);
    assert_eq!(maya.circle.recovery_wait_hours(), 7 * 24);
    let words = maya.circle.view().recovery_wait_words();
    assert!(
        words.contains("1 week") && words.contains("set by Sam"),
        "{words}"
    );
    let vouch = roundtable_core::Op::Vouch {
        target: id(ana),
        key: cert.member,
        device: cert.device,
        cert: cert.signature_hex(),
        reason: "she rang me".into(),
    };
    let p = maya
        .circle
        .perform(&vouch, id(maya), at(10), &mut rng)
        .unwrap()
        .unwrap();
    assert_eq!(recovery(&maya.circle, p).1.wait_hours, 7 * 24);
    // A later change of the setting leaves a vouched request's wait be.
    maya.circle.set_recovery_wait(id(maya), 24, at(11)).unwrap();
    assert_eq!(recovery(&maya.circle, p).1.wait_hours, 7 * 24);
    assert_eq!(maya.circle.recovery_wait_hours(), 24);
    // A member's own tool writing an hour: every copy reads the shortest
    // wait.
    let info = maya
        .circle
        .doc()
        .get(automerge::ROOT, "circle")
        .unwrap()
        .unwrap()
        .1;
    maya.circle
        .transact(at(12), "recovery wait", |tx| {
            let w = tx.put_object(&info, "recovery_wait", ObjType::Map)?;
            tx.put(&w, "hours", 1_u64)?;
            Ok(())
        })
        .unwrap();
    w.hears(sam, maya);
    assert_eq!(sam.circle.recovery_wait_hours(), 24);
    // Someone who is not a member sets nothing.
    let stranger = MemberKey::generate().id();
    assert!(ana.circle.set_recovery_wait(stranger, 72, at(3)).is_err());
}
