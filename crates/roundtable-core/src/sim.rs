//! A deterministic, seeded simulation of many peers in one thread.
//!
//! Protocol code that follows the sans-IO shape (it reacts to messages and
//! timer ticks and says what to send, never sending itself) can be run here
//! under a virtual clock with a network that delays, reorders, duplicates,
//! drops and partitions messages — all decided by one seed. The same seed
//! always gives the same run, so a failing seed is a regression test.
//!
//! ```
//! use roundtable_core::sim::{Ctx, NetConfig, Sim, SimNode};
//!
//! /// Each node keeps the largest number it has heard and gossips it on ticks.
//! #[derive(Default)]
//! struct Max(u64);
//! impl SimNode for Max {
//!     type Msg = u64;
//!     fn on_message(&mut self, _from: usize, msg: u64, _ctx: &mut Ctx<'_, u64>) {
//!         self.0 = self.0.max(msg);
//!     }
//!     fn on_tick(&mut self, ctx: &mut Ctx<'_, u64>) {
//!         ctx.broadcast(self.0);
//!     }
//! }
//!
//! let mut sim = Sim::new(7, (0..4).map(|_| Max::default()).collect(), NetConfig::lossy());
//! sim.act(2, |node, _ctx| node.0 = 42);
//! sim.settle(100, |nodes| nodes.iter().all(|n| n.0 == 42)).expect("settles");
//! ```

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::time::Timestamp;

/// A peer in the simulation.
pub trait SimNode {
    /// What peers send each other.
    type Msg: Clone;

    /// A message from peer `from` arrived.
    fn on_message(&mut self, from: usize, msg: Self::Msg, ctx: &mut Ctx<'_, Self::Msg>);

    /// A periodic timer fired (anti-entropy, retries, ...).
    fn on_tick(&mut self, ctx: &mut Ctx<'_, Self::Msg>);
}

/// What a node may use while it handles an event: the time, randomness, and
/// an outbox.
#[derive(Debug)]
pub struct Ctx<'a, M> {
    /// This node's index.
    pub me: usize,
    /// Number of nodes in the simulation.
    pub nodes: usize,
    /// The virtual clock.
    pub now: Timestamp,
    /// Randomness derived from the simulation's seed.
    pub rng: &'a mut ChaCha8Rng,
    outbox: &'a mut Vec<(usize, M)>,
}

impl<M: Clone> Ctx<'_, M> {
    /// Sends `msg` to node `to`.
    pub fn send(&mut self, to: usize, msg: M) {
        self.outbox.push((to, msg));
    }

    /// Sends `msg` to every other node.
    pub fn broadcast(&mut self, msg: M) {
        for to in (0..self.nodes).filter(|&n| n != self.me) {
            self.outbox.push((to, msg.clone()));
        }
    }
}

/// How unreliable the simulated network is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetConfig {
    /// Chance that a message is lost.
    pub drop: f64,
    /// Chance that a message is delivered twice.
    pub duplicate: f64,
    /// Each message is delayed by a uniform time up to this.
    pub max_delay_ms: i64,
    /// Time between timer ticks of each node.
    pub tick_ms: i64,
}

impl NetConfig {
    /// Every message arrives once, in a random order.
    pub fn reliable() -> Self {
        Self {
            drop: 0.0,
            duplicate: 0.0,
            max_delay_ms: 50,
            tick_ms: 1_000,
        }
    }

    /// Messages are lost, duplicated and reordered.
    pub fn lossy() -> Self {
        Self {
            drop: 0.2,
            duplicate: 0.1,
            max_delay_ms: 200,
            tick_ms: 1_000,
        }
    }
}

impl Default for NetConfig {
    fn default() -> Self {
        Self::reliable()
    }
}

/// What happened in a run, for assertions and failure messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages delivered (duplicates counted each time).
    pub delivered: u64,
    /// Messages lost to the drop rate.
    pub dropped: u64,
    /// Messages lost because a partition stood between the peers.
    pub cut: u64,
    /// Timer rounds run.
    pub ticks: u64,
}

/// The simulation did not reach the state the caller waited for.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the simulation (seed {seed}) did not settle within {rounds} tick rounds: {stats:?}")]
pub struct DidNotSettle {
    /// The seed, to replay the run.
    pub seed: u64,
    /// How many rounds were tried.
    pub rounds: usize,
    /// What happened.
    pub stats: SimStats,
}

/// A network of simulated nodes under one seed.
#[derive(Debug)]
pub struct Sim<N: SimNode> {
    seed: u64,
    nodes: Vec<N>,
    rng: ChaCha8Rng,
    now: Timestamp,
    config: NetConfig,
    /// Messages in flight by (delivery time, sequence number) -> (from, to, msg).
    in_flight: BTreeMap<(Timestamp, u64), (usize, usize, N::Msg)>,
    next_seq: u64,
    /// Which side of a partition each node is on; equal numbers can talk.
    side: Vec<usize>,
    stats: SimStats,
}

impl<N: SimNode> Sim<N> {
    /// A simulation of `nodes`, seeded with `seed`.
    pub fn new(seed: u64, nodes: Vec<N>, config: NetConfig) -> Self {
        let side = vec![0; nodes.len()];
        Self {
            seed,
            nodes,
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: Timestamp::from_millis(1_700_000_000_000),
            config,
            in_flight: BTreeMap::new(),
            next_seq: 0,
            side,
            stats: SimStats::default(),
        }
    }

    /// The seed of this run.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The virtual clock.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The simulation's randomness, e.g. to choose the next action.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// The nodes.
    pub fn nodes(&self) -> &[N] {
        &self.nodes
    }

    /// One node.
    pub fn node(&self, i: usize) -> &N {
        &self.nodes[i]
    }

    /// What happened so far.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Messages still in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Lets node `i` act on its own (a person's edit, a restart, ...); what it
    /// sends goes onto the network.
    pub fn act<T>(&mut self, i: usize, f: impl FnOnce(&mut N, &mut Ctx<'_, N::Msg>) -> T) -> T {
        let mut outbox = Vec::new();
        let mut ctx = Ctx {
            me: i,
            nodes: self.nodes.len(),
            now: self.now,
            rng: &mut self.rng,
            outbox: &mut outbox,
        };
        let out = f(&mut self.nodes[i], &mut ctx);
        self.enqueue(i, outbox);
        out
    }

    /// Splits the network: nodes in different groups cannot reach each other.
    /// Nodes not named are put in a group of their own.
    pub fn partition(&mut self, groups: &[Vec<usize>]) {
        let lone = groups.len();
        for (i, s) in self.side.iter_mut().enumerate() {
            *s = groups
                .iter()
                .position(|g| g.contains(&i))
                .unwrap_or(lone + i);
        }
    }

    /// Joins every partition again.
    pub fn heal(&mut self) {
        self.side.iter_mut().for_each(|s| *s = 0);
    }

    /// Delivers the next message in flight, moving the clock to its delivery
    /// time. Returns false when nothing is in flight.
    pub fn step(&mut self) -> bool {
        let Some(((at, _), (from, to, msg))) = self.in_flight.pop_first() else {
            return false;
        };
        self.now = self.now.max(at);
        if self.side[from] != self.side[to] {
            self.stats.cut += 1;
            return true;
        }
        self.stats.delivered += 1;
        self.act(to, |node, ctx| node.on_message(from, msg, ctx));
        true
    }

    /// Delivers messages until none is in flight (or `max` were delivered).
    pub fn deliver_all(&mut self, max: usize) {
        for _ in 0..max {
            if !self.step() {
                break;
            }
        }
    }

    /// Advances the clock by one tick interval and fires every node's timer,
    /// in a random order.
    pub fn tick(&mut self) {
        self.now = self.now.plus_millis(self.config.tick_ms);
        self.stats.ticks += 1;
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        for i in (1..order.len()).rev() {
            let j = self.rng.random_range(0..=i);
            order.swap(i, j);
        }
        for i in order {
            self.act(i, |node, ctx| node.on_tick(ctx));
        }
    }

    /// Runs tick rounds (each followed by delivering what is in flight) until
    /// `done` holds for the nodes, for at most `rounds` rounds.
    pub fn settle(
        &mut self,
        rounds: usize,
        done: impl Fn(&[N]) -> bool,
    ) -> Result<usize, DidNotSettle> {
        for round in 0..rounds {
            if done(&self.nodes) {
                return Ok(round);
            }
            self.tick();
            self.deliver_all(100_000);
        }
        if done(&self.nodes) {
            return Ok(rounds);
        }
        Err(DidNotSettle {
            seed: self.seed,
            rounds,
            stats: self.stats,
        })
    }

    fn enqueue(&mut self, from: usize, outbox: Vec<(usize, N::Msg)>) {
        for (to, msg) in outbox {
            self.stats.sent += 1;
            if self.rng.random_bool(self.config.drop) {
                self.stats.dropped += 1;
                continue;
            }
            let copies = if self.rng.random_bool(self.config.duplicate) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = self.rng.random_range(0..=self.config.max_delay_ms.max(0));
                let at = self.now.plus_millis(delay);
                self.in_flight
                    .insert((at, self.next_seq), (from, to, msg.clone()));
                self.next_seq += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Clone)]
    struct Max(u64);

    impl SimNode for Max {
        type Msg = u64;
        fn on_message(&mut self, _from: usize, msg: u64, _ctx: &mut Ctx<'_, u64>) {
            self.0 = self.0.max(msg);
        }
        fn on_tick(&mut self, ctx: &mut Ctx<'_, u64>) {
            ctx.broadcast(self.0);
        }
    }

    fn run(seed: u64) -> (Vec<u64>, SimStats) {
        let mut sim = Sim::new(seed, vec![Max::default(); 5], NetConfig::lossy());
        sim.partition(&[vec![0, 1], vec![2, 3, 4]]);
        sim.act(0, |n, _| n.0 = 10);
        sim.act(3, |n, _| n.0 = 7);
        sim.settle(5, |_| false).unwrap_err();
        let split: Vec<u64> = sim.nodes().iter().map(|n| n.0).collect();
        assert_eq!(split, vec![10, 10, 7, 7, 7], "a partition holds");
        sim.heal();
        sim.settle(200, |n| n.iter().all(|m| m.0 == 10)).unwrap();
        (sim.nodes().iter().map(|n| n.0).collect(), sim.stats())
    }

    #[test]
    fn same_seed_same_run_and_partitions_hold() {
        let (a, sa) = run(3);
        let (b, sb) = run(3);
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        assert!(sa.dropped > 0 && sa.cut > 0, "{sa:?}");
        let (_, sc) = run(4);
        assert_ne!(sa, sc, "another seed takes another path");
    }
}
