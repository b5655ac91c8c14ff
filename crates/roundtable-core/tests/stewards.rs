//! Who added or stopped a steward stays as written: a member's device
//! writing around the steward records (`circle.stewards`) is refused by
//! every honest copy, and honest additions and removals, made at once on
//! several copies, still merge.
#![allow(clippy::unwrap_used)]

use automerge::transaction::{Transactable, Transaction};
use automerge::{ObjId, ObjType, ROOT, ReadDoc, Value};
use roundtable_core::steward::{LockerId, MAX_STEWARD_RECORDS, MAX_STEWARDS};
use roundtable_core::{
    Applied, ChangeHash, Circle, DeviceId, DeviceKey, EntityId, HeadBook, MemberId, MemberKey,
    Mood, Profile, Rejection, SignedHead, Timestamp,
};

fn now() -> Timestamp {
    Timestamp::from_millis(1_795_464_000_000)
}

struct Dev {
    key: DeviceKey,
    member: MemberKey,
    circle: Circle,
}

impl Dev {
    fn id(&self) -> MemberId {
        self.member.id()
    }

    fn head(&self) -> Option<SignedHead> {
        SignedHead::sign(&self.circle, &self.key)
    }

    /// Applies `from`'s changes since `before`, proven by the heads of
    /// `signers`, as a node would.
    fn receive(&mut self, from: &Circle, before: &[ChangeHash], signers: &[&Dev]) -> Applied {
        let mut book = HeadBook::for_circle(&self.circle);
        let heads: Vec<SignedHead> = signers.iter().filter_map(|d| d.head()).collect();
        book.learn(self.circle.id(), &heads);
        self.circle
            .apply_verified(&from.changes_since(before), &mut book)
            .unwrap()
    }

    /// Takes in everything `from` holds, which must all be accepted.
    fn take_all(&mut self, from: &Dev) {
        let out = self.receive(&from.circle, &[], &[from]);
        assert!(out.rejected.is_empty(), "{out:?}");
    }

    fn add(&mut self, n: u32) -> EntityId {
        let me = self.id();
        self.circle
            .add_steward(me, &ticket(n), None, steward_id(n), now(), &mut rand::rng())
            .unwrap()
            .0
    }
}

fn ticket(n: u32) -> String {
    format!("roundtablesteward{n:04}")
}

fn steward_id(n: u32) -> DeviceId {
    let mut seed = [7u8; 32];
    seed[..4].copy_from_slice(&n.to_le_bytes());
    DeviceKey::from_seed(&seed).id()
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

fn map_at(c: &Circle, obj: &ObjId, key: &str) -> ObjId {
    match c.doc().get(obj, key).unwrap() {
        Some((Value::Object(ObjType::Map), o)) => o,
        other => panic!("no map at {key}: {other:?}"),
    }
}

/// The circle record, its stewards collection, and the record `id`.
fn objs(c: &Circle, id: EntityId) -> (ObjId, ObjId, ObjId) {
    let info = map_at(c, &ROOT, "circle");
    let stewards = map_at(c, &info, "stewards");
    let rec = map_at(c, &stewards, &id.to_string());
    (info, stewards, rec)
}

/// Writes a whole steward record as a device would, in `by`'s name, with
/// no check of the circle's own.
fn write_record(tx: &mut Transaction<'_>, stewards: &ObjId, by: MemberId, n: u32) -> EntityId {
    let id = EntityId::random(&mut rand::rng());
    let rec = tx
        .put_object(stewards, id.to_string(), ObjType::Map)
        .unwrap();
    tx.put(&rec, "ticket", ticket(n)).unwrap();
    tx.put(&rec, "steward", steward_id(n).to_string()).unwrap();
    tx.put(&rec, "locker", LockerId([n as u8; 16]).to_hex())
        .unwrap();
    tx.put(&rec, "by", by.to_string()).unwrap();
    tx.put(&rec, "at", now().as_millis()).unwrap();
    id
}

/// One edit a hostile device tries.
type Attempt<'a> = Box<dyn Fn(&mut Transaction<'_>) + 'a>;

/// Each of `attempts`, written on a copy of `rogue`'s circle in one change,
/// is refused by a copy of `honest` as breaking the circle's outline, and
/// leaves what it reads of the stewards as it was.
fn each_refused(rogue: &Dev, honest: &Dev, attempts: Vec<(&str, Attempt<'_>)>) {
    let before_view = honest.circle.stewards();
    for (what, attempt) in attempts {
        let mut judge = Dev {
            key: honest.key.clone(),
            member: honest.member.clone(),
            circle: honest.circle.clone(),
        };
        let mut copy = rogue.circle.clone();
        let before = copy.heads();
        copy.transact(now(), "rewrite", |tx| {
            attempt(tx);
            Ok(())
        })
        .unwrap();
        assert_ne!(copy.heads(), before, "{what}: the attempt wrote something");
        let hostile = Dev {
            key: rogue.key.clone(),
            member: rogue.member.clone(),
            circle: copy.clone(),
        };
        let out = judge.receive(&copy, &before, &[&hostile]);
        assert_eq!(
            out.rejected.iter().map(|r| r.1).collect::<Vec<_>>(),
            vec![Rejection::Outline],
            "{what}"
        );
        assert_eq!(judge.circle.stewards(), before_view, "{what}");
    }
}

#[test]
fn who_added_a_steward_and_its_ticket_stay_as_written() {
    let (mut maya, mut sam, mut ana) = circle();
    let id = maya.add(1);
    sam.take_all(&maya);
    ana.take_all(&maya);
    let (info, stewards, rec) = objs(&sam.circle, id);
    let sam_id = sam.id();
    let maya_id = maya.id();
    let attempts: Vec<(&str, Attempt<'_>)> = vec![
        (
            "say Sam added it",
            Box::new(|tx| tx.put(&rec, "by", sam_id.to_string()).unwrap()),
        ),
        (
            "say nobody added it",
            Box::new(|tx| tx.delete(&rec, "by").unwrap()),
        ),
        (
            "change its ticket",
            Box::new(|tx| tx.put(&rec, "ticket", ticket(9)).unwrap()),
        ),
        (
            "change its steward",
            Box::new(|tx| tx.put(&rec, "steward", steward_id(9).to_string()).unwrap()),
        ),
        (
            "change its locker",
            Box::new(|tx| tx.put(&rec, "locker", LockerId([9; 16]).to_hex()).unwrap()),
        ),
        (
            "write something else into it",
            Box::new(|tx| tx.put(&rec, "note", "mine now").unwrap()),
        ),
        (
            "delete the record",
            Box::new(|tx| tx.delete(&stewards, id.to_string()).unwrap()),
        ),
        (
            "replace the record",
            Box::new(|tx| {
                let r = tx
                    .put_object(&stewards, id.to_string(), ObjType::Map)
                    .unwrap();
                tx.put(&r, "ticket", ticket(9)).unwrap();
            }),
        ),
        (
            "replace the stewards collection",
            Box::new(|tx| {
                tx.put_object(&info, "stewards", ObjType::Map).unwrap();
            }),
        ),
        (
            "delete the stewards collection",
            Box::new(|tx| tx.delete(&info, "stewards").unwrap()),
        ),
        (
            "add a steward in Maya's name",
            Box::new(|tx| {
                write_record(tx, &stewards, maya_id, 2);
            }),
        ),
        (
            "add a record that is no steward",
            Box::new(|tx| {
                let r = tx
                    .put_object(
                        &stewards,
                        EntityId::random(&mut rand::rng()).to_string(),
                        ObjType::Map,
                    )
                    .unwrap();
                tx.put(&r, "by", sam_id.to_string()).unwrap();
            }),
        ),
        (
            "stop it in Maya's name",
            Box::new(|tx| {
                tx.put(&rec, "removed_by", maya_id.to_string()).unwrap();
                tx.put(&rec, "removed_at", now().as_millis()).unwrap();
            }),
        ),
        (
            "stop it in nobody's name",
            Box::new(|tx| {
                tx.put(&rec, "removed_at", now().as_millis()).unwrap();
            }),
        ),
    ];
    each_refused(&sam, &ana, attempts);
    let mine = ana.circle.stewards();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].added_by, Some(maya_id));
    assert_eq!(mine[0].ticket, ticket(1));
    assert_eq!(mine[0].removed_by, None);

    // Sam adds one and stops Maya's, each in his own name: both taken in.
    let before = sam.circle.heads();
    let his = sam.add(2);
    sam.circle.remove_steward(sam_id, id, now()).unwrap();
    let out = ana.receive(&sam.circle.clone(), &before, &[&sam]);
    assert!(out.rejected.is_empty(), "{out:?}");
    let seen = ana.circle.stewards();
    assert_eq!(seen.len(), 2);
    let by_id = |i: EntityId| seen.iter().find(|s| s.id == i).unwrap().clone();
    assert_eq!(by_id(id).removed_by, Some(sam_id));
    assert_eq!(by_id(his).added_by, Some(sam_id));
}

#[test]
fn a_removal_is_never_undone_nor_rewritten() {
    let (mut maya, mut sam, mut ana) = circle();
    let id = maya.add(1);
    maya.circle.remove_steward(maya.id(), id, now()).unwrap();
    sam.take_all(&maya);
    ana.take_all(&maya);
    let (_, _, rec) = objs(&sam.circle, id);
    let sam_id = sam.id();
    let attempts: Vec<(&str, Attempt<'_>)> = vec![
        (
            "take the removal back",
            Box::new(|tx| tx.delete(&rec, "removed_by").unwrap()),
        ),
        (
            "say Sam stopped it",
            Box::new(|tx| {
                tx.put(&rec, "removed_by", sam_id.to_string()).unwrap();
                tx.put(&rec, "removed_at", now().as_millis()).unwrap();
            }),
        ),
        (
            "change when it was stopped",
            Box::new(|tx| tx.put(&rec, "removed_at", 0i64).unwrap()),
        ),
    ];
    each_refused(&sam, &ana, attempts);
    assert_eq!(ana.circle.stewards()[0].removed_by, Some(maya.id()));
}

/// A record the honest device wrote itself, without it ever coming back
/// from anyone, is guarded as well.
#[test]
fn a_record_written_here_is_guarded_here() {
    let (_maya, mut sam, mut ana) = circle();
    let id = ana.add(1);
    sam.take_all(&ana);
    let (_, stewards, rec) = objs(&sam.circle, id);
    let sam_id = sam.id();
    let attempts: Vec<(&str, Attempt<'_>)> = vec![
        (
            "say Sam added it",
            Box::new(|tx| tx.put(&rec, "by", sam_id.to_string()).unwrap()),
        ),
        (
            "delete the record",
            Box::new(|tx| tx.delete(&stewards, id.to_string()).unwrap()),
        ),
    ];
    each_refused(&sam, &ana, attempts);
}

#[test]
fn additions_and_removals_made_at_once_merge_everywhere() {
    let (mut maya, mut sam, mut ana) = circle();
    // Maya and Ana each add the circle's first steward at once: each makes
    // the stewards collection.
    let m1 = maya.add(1);
    let a1 = ana.add(2);
    let out = maya.receive(&ana.circle.clone(), &[], &[&ana]);
    assert!(out.rejected.is_empty(), "{out:?}");
    let out = ana.receive(&maya.circle.clone(), &[], &[&maya]);
    assert!(out.rejected.is_empty(), "{out:?}");
    let out = sam.receive(&maya.circle.clone(), &[], &[&maya, &ana]);
    assert!(out.rejected.is_empty(), "{out:?}");
    assert_eq!(ana.circle.stewards().len(), 2);
    // Then Sam and Ana both stop Maya's at once, and Maya adds another.
    let (sb, ab, mb) = (sam.circle.heads(), ana.circle.heads(), maya.circle.heads());
    sam.circle.remove_steward(sam.id(), m1, now()).unwrap();
    ana.circle.remove_steward(ana.id(), m1, now()).unwrap();
    let m2 = maya.add(3);
    let copy = |d: &Dev| Dev {
        key: d.key.clone(),
        member: d.member.clone(),
        circle: d.circle.clone(),
    };
    let (s, a, m) = (copy(&sam), copy(&ana), copy(&maya));
    for (me, from, before) in [
        (&mut maya, &s, &sb),
        (&mut sam, &a, &ab),
        (&mut ana, &m, &mb),
    ] {
        let out = me.receive(&from.circle, before, &[from]);
        assert!(out.rejected.is_empty(), "{out:?}");
    }
    for (me, from, before) in [
        (&mut maya, &a, &ab),
        (&mut sam, &m, &mb),
        (&mut ana, &s, &sb),
    ] {
        let out = me.receive(&from.circle, before, &[from]);
        assert!(out.rejected.is_empty(), "{out:?}");
    }
    let seen = maya.circle.stewards();
    assert_eq!(seen, sam.circle.stewards());
    assert_eq!(seen, ana.circle.stewards());
    assert_eq!(seen.len(), 3);
    let of = |i: EntityId| seen.iter().find(|s| s.id == i).unwrap().clone();
    assert!(
        of(m1)
            .removed_by
            .is_some_and(|b| b == sam.id() || b == ana.id())
    );
    assert_eq!(of(a1).removed_by, None);
    assert_eq!(of(m2).removed_by, None);
}

#[test]
fn stewards_past_the_bounds_are_refused_on_receipt() {
    let (_maya, mut sam, mut ana) = circle();
    let sam_id = sam.id();
    // Sixteen in use: the seventeenth is refused here, in words ...
    let before = sam.circle.heads();
    let mut in_use: Vec<EntityId> = (0..MAX_STEWARDS as u32).map(|n| sam.add(n)).collect();
    let err = sam
        .circle
        .add_steward(
            sam_id,
            &ticket(99),
            None,
            steward_id(99),
            now(),
            &mut rand::rng(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("at most 16"), "{err}");
    let out = ana.receive(&sam.circle.clone(), &before, &[&sam]);
    assert!(out.rejected.is_empty(), "{out:?}");
    // ... and written anyway, it is refused by everyone else.
    let over = |sam: &Dev, ana: &mut Dev, n: u32| {
        let mut copy = sam.circle.clone();
        let before = copy.heads();
        let stewards = objs(&copy, in_use_any(&copy)).1;
        copy.transact(now(), "one more", |tx| {
            write_record(tx, &stewards, sam_id, n);
            Ok(())
        })
        .unwrap();
        let hostile = Dev {
            key: sam.key.clone(),
            member: sam.member.clone(),
            circle: copy.clone(),
        };
        ana.receive(&copy, &before, &[&hostile])
    };
    let out = over(&sam, &mut ana, 99);
    assert_eq!(
        out.rejected.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![Rejection::Outline]
    );
    assert_eq!(ana.circle.stewards().len(), MAX_STEWARDS);

    // Stopping one makes room: the limit counts stewards in use.
    let before = sam.circle.heads();
    sam.circle
        .remove_steward(sam_id, in_use.remove(0), now())
        .unwrap();
    in_use.push(sam.add(100));
    let out = ana.receive(&sam.circle.clone(), &before, &[&sam]);
    assert!(out.rejected.is_empty(), "{out:?}");

    // Records are never deleted, so they are bounded in all: past
    // MAX_STEWARD_RECORDS, adding is refused here and on receipt.
    let before = sam.circle.heads();
    let mut n = 200;
    while ana_count(&sam.circle) < MAX_STEWARD_RECORDS {
        let id = in_use.remove(0);
        sam.circle.remove_steward(sam_id, id, now()).unwrap();
        in_use.push(sam.add(n));
        n += 1;
    }
    let err = sam
        .circle
        .remove_steward(sam_id, in_use[0], now())
        .and_then(|()| {
            sam.circle.add_steward(
                sam_id,
                &ticket(999),
                None,
                steward_id(999),
                now(),
                &mut rand::rng(),
            )
        })
        .unwrap_err();
    assert!(err.to_string().contains("128"), "{err}");
    let out = ana.receive(&sam.circle.clone(), &before, &[&sam]);
    assert!(out.rejected.is_empty(), "{out:?}");
    let out = over(&sam, &mut ana, 998);
    assert_eq!(
        out.rejected.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![Rejection::Outline]
    );
    assert_eq!(ana_count(&ana.circle), MAX_STEWARD_RECORDS);
}

fn ana_count(c: &Circle) -> usize {
    c.stewards().len()
}

fn in_use_any(c: &Circle) -> EntityId {
    c.stewards()[0].id
}

#[test]
fn a_stewards_name_is_kept_as_names_are_and_never_rewritten() {
    let (mut maya, mut sam, _) = circle();
    let me = maya.id();
    // Trimmed and cleaned as names are; past the bound, refused in words.
    let long = "Pi ".repeat(40);
    let err = maya
        .circle
        .add_steward(
            me,
            &ticket(1),
            Some(&long),
            steward_id(1),
            now(),
            &mut rand::rng(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("steward's name"), "{err}");
    let (id, _) = maya
        .circle
        .add_steward(
            me,
            &ticket(1),
            Some("  Maya's Pi "),
            steward_id(1),
            now(),
            &mut rand::rng(),
        )
        .unwrap();
    // Without one, it is called after who added it.
    let (other, _) = maya
        .circle
        .add_steward(me, &ticket(2), None, steward_id(2), now(), &mut rand::rng())
        .unwrap();
    sam.take_all(&maya);
    let view = sam.circle.view();
    let called = |id: EntityId| {
        let r = sam
            .circle
            .stewards()
            .into_iter()
            .find(|r| r.id == id)
            .unwrap();
        r.called(|m| view.name_of(m))
    };
    assert_eq!(called(id), "Maya's Pi");
    assert_eq!(called(other), "Maya's steward");

    // A rogue copy renaming it, or adding one under a name no name may
    // be, is refused by every honest copy.
    let (_, stewards, rec) = objs(&sam.circle, id);
    let maya_id = maya.id();
    let attempts: Vec<(&str, Attempt<'_>)> = vec![
        (
            "rename it",
            Box::new(|tx| tx.put(&rec, "name", "Sam's Pi").unwrap()),
        ),
        (
            "add one named with a control character",
            Box::new(|tx| {
                let id = write_record(tx, &stewards, maya_id, 4);
                let rec = match tx.get(&stewards, id.to_string()).unwrap() {
                    Some((_, o)) => o,
                    None => unreachable!("just written"),
                };
                tx.put(&rec, "name", "Pi\u{202e}").unwrap();
            }),
        ),
    ];
    each_refused(&maya, &sam, attempts);

    // One named past the bound is refused too (by the bound on texts,
    // before the outline is read).
    let mut copy = maya.circle.clone();
    let before = copy.heads();
    copy.transact(now(), "long name", |tx| {
        let id = write_record(tx, &stewards, maya_id, 3);
        let rec = match tx.get(&stewards, id.to_string()).unwrap() {
            Some((_, o)) => o,
            None => unreachable!("just written"),
        };
        tx.put(&rec, "name", "x".repeat(200)).unwrap();
        Ok(())
    })
    .unwrap();
    let rogue = Dev {
        key: maya.key.clone(),
        member: maya.member.clone(),
        circle: copy.clone(),
    };
    let kept = sam.circle.stewards();
    let out = sam.receive(&copy, &before, &[&rogue]);
    assert_eq!(out.rejected.len(), 1, "{out:?}");
    assert_eq!(sam.circle.stewards(), kept);
}

/// A steward record and a rewrite of it by another member, arriving in one
/// batch: the rewrite is judged with the record guarded. Who is in, kept
/// from before the batch, is carried over changes that wrote nowhere it
/// rests, and a change under the circle record (where steward records
/// are) is not such a change.
#[test]
fn a_record_and_a_rewrite_of_it_arriving_together_are_judged_apart() {
    let (mut maya, mut sam, mut ana) = circle();
    // Maya's copy judges a check-in of Sam's: it has read who is in, and
    // the guarded objects, and keeps them for these heads.
    let start = sam.circle.heads();
    let sam_id = sam.id();
    sam.circle
        .checkin(sam_id, Mood::Okay, "soup tonight", now(), &mut rand::rng())
        .unwrap();
    let out = maya.receive(&sam.circle, &start, &[&sam]);
    assert!(out.rejected.is_empty(), "{out:?}");
    let before = maya.circle.heads();
    let id = ana.add(1);
    sam.take_all(&ana);
    let (_, _, rec) = objs(&sam.circle, id);
    sam.circle
        .transact(now(), "rewrite", |tx| {
            tx.put(&rec, "by", sam_id.to_string()).unwrap();
            Ok(())
        })
        .unwrap();
    let out = maya.receive(&sam.circle, &before, &[&ana, &sam]);
    assert_eq!(
        out.rejected.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![Rejection::Outline],
        "{out:?}"
    );
    let kept = maya.circle.stewards();
    let record = kept.iter().find(|r| r.id == id).expect("Ana's record");
    assert_eq!(record.added_by, Some(ana.id()));
}
