//! Convergence is proven, not hoped: copies of a circle edited apart, with
//! the same fields edited concurrently, merged in any order, print the same
//! canonical JSON — and lose nothing anyone created.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::{Cast, Edit, T0};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use roundtable_core::{Circle, EntityId, Membership};

#[derive(Debug, Clone)]
enum Step {
    Edit { copy: usize, edit: EditSeed },
    Merge { into: usize, from: usize },
}

/// An edit drawn from a seed, so proptest can shrink schedules.
#[derive(Debug, Clone, Copy)]
struct EditSeed(u64);

fn step(copies: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..copies, any::<u64>()).prop_map(|(copy, s)| Step::Edit { copy, edit: EditSeed(s) }),
        1 => (0..copies, 0..copies).prop_map(|(into, from)| Step::Merge { into, from }),
    ]
}

fn schedule() -> impl Strategy<Value = (usize, Vec<Step>, Vec<usize>)> {
    (2usize..=5).prop_flat_map(|n| {
        (
            Just(n),
            prop::collection::vec(step(n), 1..40),
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
        )
    })
}

fn run(copies: usize, steps: &[Step], final_order: &[usize]) -> Result<(), TestCaseError> {
    let cast = Cast::new(1);
    let base = cast.circle();
    let mut circles: Vec<Circle> = (0..copies).map(|i| cast.fork(&base, i as u8)).collect();
    let mut created: BTreeSet<EntityId> = BTreeSet::new();
    for (t, s) in steps.iter().enumerate() {
        match s {
            Step::Edit { copy, edit } => {
                let mut rng = ChaCha8Rng::seed_from_u64(edit.0);
                let e = Edit::random(&mut rng);
                if let Some(id) = e.apply(&mut circles[*copy], &cast, T0 + t as i64, &mut rng) {
                    created.insert(id);
                }
            }
            Step::Merge { into, from } if into != from => {
                let mut other = circles[*from].clone();
                circles[*into].merge(&mut other).unwrap();
            }
            Step::Merge { .. } => {}
        }
        // The membership each copy keeps between edits is the one the
        // document says now.
        for (i, c) in circles.iter().enumerate() {
            prop_assert_eq!(
                c.membership(),
                Membership::read(c.doc()),
                "copy {} after step {}",
                i,
                t
            );
        }
    }
    // Everyone hears from everyone, in the generated order.
    let mut hub = circles[final_order[0]].clone();
    for &i in final_order {
        hub.merge(&mut circles[i].clone()).unwrap();
    }
    for &i in final_order.iter().rev() {
        circles[i].merge(&mut hub.clone()).unwrap();
    }
    let first = circles[0].canonical_json();
    for (i, c) in circles.iter().enumerate() {
        prop_assert_eq!(&c.canonical_json(), &first, "copy {} differs", i);
        let reloaded = Circle::load(&c.save()).unwrap();
        prop_assert_eq!(
            &reloaded.canonical_json(),
            &first,
            "copy {} changed on reload",
            i
        );
    }
    let view = circles[0].view();
    for id in &created {
        let found = view.checkins.contains_key(id)
            || view.moments.contains_key(id)
            || view.requests.contains_key(id)
            || view.gatherings.contains_key(id)
            || view.checkins.values().any(|c| c.replies.contains_key(id))
            || view.moments.values().any(|m| m.replies.contains_key(id))
            || view
                .requests
                .values()
                .any(|r| r.replies.contains_key(id) || r.commitments.contains_key(id))
            || view.gatherings.values().any(|g| g.dishes.contains_key(id));
        prop_assert!(found, "entity {} was lost in the merge", id);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn forked_copies_converge_to_identical_json((copies, steps, order) in schedule()) {
        run(copies, &steps, &order)?;
    }
}

/// Two copies edit the very same field at once, and a newcomer joins on both:
/// each copy may pick either value, but all pick the same one, and both
/// devices of the newcomer survive the merge.
#[test]
fn same_field_edited_concurrently() {
    let cast = Cast::new(2);
    let base = cast.circle();
    let mut a = cast.fork(&base, 0);
    let mut b = cast.fork(&base, 1);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    Edit::CircleName(1).apply(&mut a, &cast, T0, &mut rng);
    Edit::CircleName(2).apply(&mut b, &cast, T0, &mut rng);
    Edit::Join { device: 0 }.apply(&mut a, &cast, T0, &mut rng);
    Edit::Join { device: 1 }.apply(&mut b, &cast, T0, &mut rng);
    let (mut a2, mut b2) = (a.clone(), b.clone());
    a.merge(&mut b2).unwrap();
    b.merge(&mut a2).unwrap();
    assert_eq!(a.canonical_json(), b.canonical_json());
    assert!(["Supper 1", "Supper 2"].contains(&a.name().as_str()));
    let newcomer = &a.view().members[&cast.members[3].id()];
    assert_eq!(
        newcomer.devices.len(),
        2,
        "concurrent joins of one member keep both devices: {newcomer:?}"
    );
}
