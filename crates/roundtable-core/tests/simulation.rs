//! Many devices of one circle under the deterministic simulator: random
//! edits, lost and reordered messages, partitions that heal. Every seed must
//! end with identical canonical JSON on every device.

#![allow(clippy::unwrap_used)]

mod common;

use automerge::{ChangeHash, ReadDoc};
use common::{Cast, Edit, T0};
use rand::Rng;
use roundtable_core::Circle;
use roundtable_core::sim::{Ctx, NetConfig, Sim, SimNode};

#[derive(Clone)]
enum Msg {
    /// "These are my heads."
    Heads(Vec<ChangeHash>),
    /// Changes the receiver may lack.
    Changes(Vec<u8>),
}

struct Device {
    circle: Circle,
}

impl SimNode for Device {
    type Msg = Msg;

    fn on_message(&mut self, from: usize, msg: Msg, ctx: &mut Ctx<'_, Msg>) {
        match msg {
            Msg::Heads(theirs) => {
                let ours = self.circle.heads();
                if theirs == ours {
                    return;
                }
                // Send what they may lack: everything after the heads of theirs that we know.
                let known: Vec<ChangeHash> = theirs
                    .iter()
                    .copied()
                    .filter(|h| self.circle.doc().get_change_by_hash(h).is_some())
                    .collect();
                let changes = self.circle.changes_since(&known);
                if !changes.is_empty() {
                    ctx.send(from, Msg::Changes(changes));
                }
                if known.len() < theirs.len() {
                    // They have something we lack: tell them where we stand.
                    ctx.send(from, Msg::Heads(ours));
                }
            }
            Msg::Changes(bytes) => {
                self.circle
                    .apply(&bytes)
                    .expect("changes from a peer apply");
            }
        }
    }

    fn on_tick(&mut self, ctx: &mut Ctx<'_, Msg>) {
        ctx.broadcast(Msg::Heads(self.circle.heads()));
    }
}

fn converged(nodes: &[Device]) -> bool {
    let first = nodes[0].circle.heads();
    nodes
        .iter()
        .all(|n| n.circle.heads() == first && n.circle.missing_deps().is_empty())
}

fn run(seed: u64) -> usize {
    let cast = Cast::new(seed as u8);
    let base = cast.circle();
    let n = 2 + (seed % 4) as usize;
    let devices = (0..n)
        .map(|i| Device {
            circle: cast.fork(&base, i as u8),
        })
        .collect();
    let mut sim = Sim::new(seed, devices, NetConfig::lossy());
    let mut edits = 0;
    for round in 0..12 {
        if sim.rng().random_bool(0.3) {
            let cut = sim.rng().random_range(1..n);
            sim.partition(&[(0..cut).collect(), (cut..n).collect()]);
        } else if sim.rng().random_bool(0.5) {
            sim.heal();
        }
        for _ in 0..sim.rng().random_range(0..4) {
            let who = sim.rng().random_range(0..n);
            let now = T0 + round * 1000;
            sim.act(who, |d, ctx| {
                let edit = Edit::random(ctx.rng);
                edit.apply(&mut d.circle, &cast, now, ctx.rng);
                ctx.broadcast(Msg::Heads(d.circle.heads()));
            });
            edits += 1;
        }
        sim.tick();
        sim.deliver_all(10_000);
    }
    sim.heal();
    sim.settle(200, converged).unwrap_or_else(|e| panic!("{e}"));
    let json = sim.node(0).circle.canonical_json();
    for (i, d) in sim.nodes().iter().enumerate() {
        assert_eq!(
            d.circle.canonical_json(),
            json,
            "seed {seed}: device {i} differs"
        );
    }
    edits
}

#[test]
fn random_schedules_converge() {
    let seeds = 200;
    let edits: usize = (0..seeds).map(run).sum();
    println!("{seeds} seeded schedules, {edits} edits, all converged");
}

/// Seeds that once failed are kept here and replayed forever.
#[test]
fn regression_seeds() {
    for seed in [0, 1, 42] {
        run(seed);
    }
}
