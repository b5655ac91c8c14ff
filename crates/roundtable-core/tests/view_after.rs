//! Reading a circle again after a change (`CircleView::read_after`) gives
//! exactly what a whole read gives: over random lives on two copies that
//! meet now and then (so edits made apart conflict), with withdrawals and
//! edits, and with a member's own tool writing what no honest device would
//! (wrong types, scalars where entries go, deletions, a collection made
//! again, deep writes).
#![allow(clippy::unwrap_used)]

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roundtable_core::{
    Answer, ChangeHash, Circle, CircleView, DeviceKey, EntityId, MemberKey, Mood, Op, Profile,
    RequestKind, Timestamp,
};

/// A copy, and its view as of the heads it was last read at.
struct Replica {
    circle: Circle,
    member: roundtable_core::MemberId,
    read: (CircleView, Vec<ChangeHash>),
}

impl Replica {
    /// Reads again both ways; they must agree.
    fn check(&mut self, what: &str) {
        let (prev, before) = std::mem::take(&mut self.read);
        let after = CircleView::read_after(prev, self.circle.doc(), &before);
        let whole = CircleView::read(self.circle.doc());
        assert_eq!(after, whole, "after {what}");
        self.read = (whole, self.circle.heads());
    }
}

fn ids(view: &CircleView) -> Vec<EntityId> {
    view.checkins
        .keys()
        .chain(view.moments.keys())
        .chain(view.requests.keys())
        .chain(view.gatherings.keys())
        .copied()
        .collect()
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> Option<T> {
    (!items.is_empty()).then(|| items[rng.random_range(0..items.len())])
}

/// An honest edit of `copy`'s member.
fn honest(rng: &mut StdRng, copy: &mut Replica, at: Timestamp) -> String {
    let view = copy.circle.view();
    let all = ids(&view);
    let gatherings: Vec<EntityId> = view.gatherings.keys().copied().collect();
    let requests: Vec<EntityId> = view.requests.keys().copied().collect();
    let mine: Vec<EntityId> = view
        .checkins
        .iter()
        .filter(|(_, c)| c.author == copy.member)
        .map(|(id, _)| *id)
        .chain(
            view.moments
                .iter()
                .filter(|(_, m)| m.author == copy.member)
                .map(|(id, _)| *id),
        )
        .collect();
    let n = rng.random_range(0..100);
    let op = match n {
        0..25 => Op::Checkin {
            mood: Mood::Okay,
            note: format!("note {n}"),
        },
        25..40 => match pick(rng, &all) {
            Some(to) => Op::Reply {
                to,
                text: format!("reply {n}"),
            },
            None => Op::Moment {
                text: "first".into(),
            },
        },
        40..48 => Op::Moment {
            text: format!("moment {n}"),
        },
        48..55 => Op::Request {
            kind: RequestKind::Ask,
            text: format!("ask {n}"),
            when: String::new(),
            hands: 2,
        },
        55..62 => match pick(rng, &requests) {
            Some(to) => Op::Commit {
                to,
                text: "I can".into(),
            },
            None => Op::Checkin {
                mood: Mood::Heavy,
                note: String::new(),
            },
        },
        62..67 => Op::Gathering {
            title: format!("supper {n}"),
            starts: "2026-12-24T19:00:00+00:00[UTC]".into(),
            place: String::new(),
            hosts: vec![],
            one_of_each: false,
        },
        67..75 => match pick(rng, &gatherings) {
            Some(gathering) => Op::Rsvp {
                gathering,
                answer: Answer::Yes,
                note: String::new(),
            },
            None => Op::Moment {
                text: "none".into(),
            },
        },
        75..82 => match pick(rng, &gatherings) {
            Some(gathering) => Op::Bring {
                gathering,
                dish: format!("soup {n}"),
                dietary: String::new(),
                instead: false,
            },
            None => Op::Moment {
                text: "none".into(),
            },
        },
        82..90 => match pick(rng, &mine) {
            Some(id) => Op::EditEntry {
                id,
                text: format!("edited {n}"),
            },
            None => Op::Moment {
                text: "none".into(),
            },
        },
        90..95 => match pick(rng, &mine) {
            Some(id) => Op::WithdrawEntry { id },
            None => Op::Moment {
                text: "none".into(),
            },
        },
        95..98 => Op::Profile {
            name: None,
            pronouns: None,
            remember: Some(format!("remember {n}")),
            story: None,
        },
        _ => match view.members.get(&copy.member).and_then(|m| m.away.as_ref()) {
            Some(_) => Op::Back,
            None => Op::Away {
                until: None,
                note: "a while".into(),
            },
        },
    };
    let _ = copy.circle.perform(&op, copy.member, at, rng);
    format!("{op:?}")
}

/// A write no honest device makes, straight into the document.
fn hostile(rng: &mut StdRng, copy: &mut Replica, at: Timestamp) -> String {
    let doc = copy.circle.doc();
    let collections = ["checkins", "moments", "requests", "gatherings"];
    let coll_name = collections[rng.random_range(0..collections.len())];
    let Some((_, coll)) = doc.get(ROOT, coll_name).unwrap() else {
        return "nothing".into();
    };
    let keys: Vec<String> = doc.keys(&coll).collect();
    let key = pick_str(rng, &keys);
    let kind = rng.random_range(0..8);
    if kind == 7 {
        // Into membership's part: a member's record.
        let Some((_, members)) = doc.get(ROOT, "members").unwrap() else {
            return "nothing".into();
        };
        let keys: Vec<String> = doc.keys(&members).collect();
        let Some(key) = pick_str(rng, &keys) else {
            return "nothing".into();
        };
        let Some((_, record)) = doc.get(&members, key.as_str()).unwrap() else {
            return "nothing".into();
        };
        copy.circle
            .transact(at, "hostile", |tx| {
                tx.put(&record, "remember", 5_u64)?;
                let devices = tx.put_object(&record, "devices", ObjType::Map)?;
                tx.put(&devices, "00", "not a device")?;
                Ok(())
            })
            .ok();
        return "hostile into a member's record".into();
    }
    let entry = key
        .as_ref()
        .and_then(|k| doc.get(&coll, k.as_str()).unwrap())
        .filter(|(v, _)| v.is_object())
        .map(|(_, id)| id);
    copy.circle
        .transact(at, "hostile", |tx| {
            match (kind, &key, &entry) {
                (0, _, Some(e)) => tx.put(e, "note", 5_u64)?,
                (1, Some(k), _) => tx.put(&coll, k.as_str(), "a scalar where an entry goes")?,
                (2, Some(k), _) => tx.delete(&coll, k.as_str())?,
                (3, _, _) => {
                    let again = tx.put_object(ROOT, coll_name, ObjType::Map)?;
                    tx.put(&again, "00112233445566778899aabbccddeeff", "x")?;
                }
                (4, _, Some(e)) => {
                    let replies = tx.put_object(e, "replies", ObjType::Map)?;
                    let r =
                        tx.put_object(&replies, "ffeeddccbbaa99887766554433221100", ObjType::Map)?;
                    tx.put(&r, "text", "deep")?;
                    tx.put(&r, "withdrawn", true)?;
                }
                (5, _, Some(e)) => tx.put(e, "withdrawn", true)?,
                _ => {
                    let e =
                        tx.put_object(&coll, "0123456789abcdef0123456789abcdef", ObjType::Map)?;
                    tx.put(&e, "text", "made by hand")?;
                }
            }
            Ok(())
        })
        .ok();
    format!("hostile {kind} in {coll_name}")
}

fn pick_str(rng: &mut StdRng, items: &[String]) -> Option<String> {
    (!items.is_empty()).then(|| items[rng.random_range(0..items.len())].clone())
}

fn life(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut std_rng = rand::rng();
    let (maya, sam) = (MemberKey::generate(), MemberKey::generate());
    let (da, db) = (DeviceKey::generate(), DeviceKey::generate());
    let t0 = Timestamp::from_millis(1_795_464_000_000);
    let mut a = Circle::create(
        "Supper",
        "",
        &maya.certify(da.id()),
        &Profile::named("Maya"),
        t0,
        &mut std_rng,
    )
    .unwrap();
    a.set_device(da.id());
    a.add_member(
        &sam.certify(db.id()),
        &Profile::named("Sam"),
        Some(maya.id()),
        t0,
    )
    .unwrap();
    let mut b = a.clone();
    b.set_device(db.id());
    let fresh = |c: &Circle| (CircleView::read(c.doc()), c.heads());
    let mut copies = [
        Replica {
            read: fresh(&a),
            circle: a,
            member: maya.id(),
        },
        Replica {
            read: fresh(&b),
            circle: b,
            member: sam.id(),
        },
    ];
    for step in 0..150 {
        let at = Timestamp::from_millis(t0.as_millis() + step * 60_000);
        let i = rng.random_range(0..2);
        let what = match rng.random_range(0..20) {
            0..2 => {
                // They meet: one takes in all the other has.
                let mut other = copies[1 - i].circle.doc().clone();
                copies[i].circle.doc_mut().merge(&mut other).unwrap();
                "a merge".to_owned()
            }
            2..4 => hostile(&mut rng, &mut copies[i], at),
            _ => honest(&mut rng, &mut copies[i], at),
        };
        // Read now and then, so several changes come between reads.
        if rng.random_bool(0.6) {
            copies[i].check(&format!("seed {seed} step {step}: {what}"));
        }
    }
    for c in &mut copies {
        c.check(&format!("seed {seed}: the end"));
    }
}

#[test]
fn a_view_of_another_document_keeps_nothing() {
    let mut rng = rand::rng();
    let make = |name: &str, rng: &mut rand::rngs::ThreadRng| {
        let (m, d) = (MemberKey::generate(), DeviceKey::generate());
        let mut c = Circle::create(
            name,
            "",
            &m.certify(d.id()),
            &Profile::named("Maya"),
            Timestamp::from_millis(1_795_464_000_000),
            rng,
        )
        .unwrap();
        c.set_device(d.id());
        c.perform(
            &Op::Moment { text: name.into() },
            m.id(),
            Timestamp::from_millis(1_795_464_000_000),
            rng,
        )
        .unwrap();
        c
    };
    let (one, other) = (make("one", &mut rng), make("other", &mut rng));
    let after = CircleView::read_after(CircleView::read(one.doc()), other.doc(), &one.heads());
    assert_eq!(after, CircleView::read(other.doc()));
}

#[test]
fn a_read_after_a_change_is_a_whole_read() {
    for seed in 0..40 {
        life(seed);
    }
}
