//! What a removed member is told, and the farewell that tells them: the
//! records of their removal, checked by their own copy, and nothing
//! written after it.
#![allow(clippy::unwrap_used)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roundtable_core::farewell::Farewell;
use roundtable_core::{
    Circle, CoreError, DeviceKey, HeadBook, MemberKey, Mood, Profile, SignedHead, Timestamp,
};

fn at(day: i64) -> Timestamp {
    // 1 Dec 2026, 12:00 UTC, plus `day` days.
    Timestamp::from_millis(1_796_126_400_000 + day * 86_400_000)
}

struct Three {
    circle: Circle,
    keys: Vec<(MemberKey, DeviceKey)>,
    rng: StdRng,
}

/// Maya, Sam and Lee in "Tuesday Supper", one copy written by each
/// device in turn.
fn three() -> Three {
    let mut rng = StdRng::seed_from_u64(21);
    let keys: Vec<(MemberKey, DeviceKey)> = (0..3)
        .map(|_| {
            (
                MemberKey::from_seed(&rng.random()),
                DeviceKey::from_seed(&rng.random()),
            )
        })
        .collect();
    let mut circle = Circle::create(
        "Tuesday Supper",
        "",
        &keys[0].0.certify(keys[0].1.id()),
        &Profile::named("Maya"),
        at(0),
        &mut rng,
    )
    .unwrap();
    for (i, name) in [(1, "Sam"), (2, "Lee")] {
        let cert = keys[i].0.certify(keys[i].1.id());
        circle
            .add_member(&cert, &Profile::named(name), Some(keys[0].0.id()), at(0))
            .unwrap();
    }
    Three { circle, keys, rng }
}

impl Three {
    fn write_as(&mut self, i: usize) {
        self.circle.set_device(self.keys[i].1.id());
    }

    fn proofs(&self) -> Vec<SignedHead> {
        self.keys
            .iter()
            .flat_map(|(_, d)| SignedHead::sign_all(&self.circle, d))
            .collect()
    }

    /// Maya proposes removing Lee on day 1; Sam consents on day 2.
    fn remove_lee(&mut self) {
        let (maya, lee, sam) = (
            self.keys[0].0.id(),
            self.keys[2].0.id(),
            self.keys[1].0.id(),
        );
        self.write_as(0);
        let p = self
            .circle
            .propose_removal(maya, lee, "", at(1), &mut self.rng)
            .unwrap();
        self.write_as(1);
        self.circle.consent_removal(sam, p, at(2)).unwrap();
    }
}

#[test]
fn the_removed_member_is_told_kindly_and_cannot_write() {
    let mut t = three();
    let lee = t.keys[2].0.id();
    assert_eq!(
        t.circle.membership().removal_notice(&t.circle.view(), lee),
        None
    );
    t.remove_lee();
    let notice = t
        .circle
        .membership()
        .removal_notice(&t.circle.view(), lee)
        .unwrap();
    assert_eq!(
        notice,
        "You are no longer in Tuesday Supper: Maya and Sam agreed to remove you on 3 Dec. \
         Your copy is kept; you can read it but not write."
    );
    t.write_as(2);
    let err = t
        .circle
        .checkin(lee, Mood::Okay, "still here", at(3), &mut t.rng)
        .unwrap_err();
    assert!(matches!(err, CoreError::Removed(_)), "{err:?}");
    assert_eq!(err.to_string(), notice);
    assert!(err.is_bad_input());
}

#[test]
fn a_farewell_brings_the_removal_and_nothing_after() {
    let mut t = three();
    let (maya, lee) = (t.keys[0].0.id(), t.keys[2].0.id());
    // Lee's copy stops before the proposal.
    let mut lees = Circle::load(&t.circle.save()).unwrap();
    lees.set_device(t.keys[2].1.id());
    t.write_as(0);
    t.circle
        .checkin(maya, Mood::Heavy, "before", at(1), &mut t.rng)
        .unwrap();
    t.remove_lee();
    // Sam's device first sees the removal here.
    let farewell = Farewell::make(&t.circle, lee, t.proofs(), &t.keys[1].1).unwrap();
    // Written after the removal.
    t.write_as(0);
    t.circle
        .checkin(maya, Mood::Okay, "after the removal", at(4), &mut t.rng)
        .unwrap();
    // Once something builds on the removal, no farewell is made from this copy.
    assert_eq!(
        Farewell::make(&t.circle, lee, t.proofs(), &t.keys[1].1),
        None
    );

    let theirs: Vec<[u8; 32]> = lees.heads().iter().map(|h| h.0).collect();
    let (changes, heads) = farewell.answer(&t.circle, &theirs).unwrap();
    let mut book = HeadBook::for_circle(&lees);
    book.learn(lees.id(), &heads);
    let applied = lees.apply_verified(&changes, &mut book).unwrap();
    assert!(applied.applied > 0);
    let json = lees.canonical_json();
    assert!(json.contains("before"), "{json}");
    assert!(!json.contains("after the removal"), "{json}");
    assert!(lees.membership().removed.contains(&lee));
    assert!(
        lees.membership()
            .removal_notice(&lees.view(), lee)
            .unwrap()
            .starts_with("You are no longer in Tuesday Supper")
    );
}

#[test]
fn a_removal_made_up_by_one_member_is_not_believed() {
    let mut t = three();
    let (maya, lee) = (t.keys[0].0.id(), t.keys[2].0.id());
    let mut lees = Circle::load(&t.circle.save()).unwrap();
    lees.set_device(t.keys[2].1.id());
    // Maya alone proposes, and writes Sam's consent herself.
    t.write_as(0);
    let p = t
        .circle
        .propose_removal(maya, lee, "", at(1), &mut t.rng)
        .unwrap();
    let sam = t.keys[1].0.id();
    // A consent in Sam's name from her own device counts for nothing
    // (whether or not her copy even lets her write it)...
    let _ = t.circle.consent_removal(sam, p, at(2));
    assert!(t.circle.membership().members.contains(&lee));
    // ...so there is no farewell.
    assert_eq!(
        Farewell::make(&t.circle, lee, t.proofs(), &t.keys[0].1),
        None
    );
    // Handed to Lee as it is, with Maya's proof, it removes nobody.
    let theirs: Vec<[u8; 32]> = lees.heads().iter().map(|h| h.0).collect();
    let fake = Farewell {
        member: lee,
        heads: t.circle.heads().iter().map(|h| h.0).collect(),
        proofs: t.proofs(),
    };
    let (changes, heads) = fake.answer(&t.circle, &theirs).unwrap();
    let mut book = HeadBook::for_circle(&lees);
    book.learn(lees.id(), &heads);
    lees.apply_verified(&changes, &mut book).unwrap();
    assert!(lees.membership().members.contains(&lee));
    assert_eq!(lees.membership().removal_notice(&lees.view(), lee), None);
}
