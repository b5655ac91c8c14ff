//! When to sync, and with whom: the node's sync decisions as a state
//! machine with no socket, file or clock of its own.
//!
//! The [`Machine`](crate::Machine) feeds it what happened ([`Input`]: a peer met or gone,
//! something that calls for a sync, a peer's session asking in, a session's
//! end, time passing) with the time it happened, and carries out what it
//! says ([`Output`]: open a session, let one in or refuse it, record one's
//! end). It decides:
//!
//! - **one session per circle and peer**: a sync asked for while one runs is
//!   not dropped but runs again right after it (only if it went well: a
//!   failing peer waits for its backoff);
//! - **which of two sessions opened at once goes on**: the one opened by
//!   the smaller device id, on both sides alike;
//! - **anti-entropy and backoff**: a peer is synced again one interval
//!   after a session that went well, and after one that failed, after a
//!   wait that doubles from a second up to the most; a change here brings
//!   every peer of the circle within the interval again;
//! - **a session's end counts only for the session that is current**: one
//!   that lost the tie-break ends without a word;
//! - **gossip neighbours of one's own**: with fewer than three (or than
//!   the circle's other devices, if fewer), a few more devices are asked in,
//!   two seconds after the count fell and then at doubling waits up to a
//!   minute. Gossip's own repair cannot be left to: a device it once failed
//!   to dial it never dials again (iroh-gossip 0.101), so in a circle joined
//!   through one inviter most devices would hang on the inviter, or on
//!   nobody, and their edits would travel only by sync.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Gossip neighbours a device looks for in each circle (fewer when fewer
/// devices are in). Gossip keeps up to five.
const NEIGHBOURS: usize = 3;
/// The first wait before asking for more neighbours, doubled at each try
/// that does not bring enough, up to [`MEND_AT_MOST`].
const MEND_FIRST: Duration = Duration::from_secs(2);
const MEND_AT_MOST: Duration = Duration::from_secs(60);

/// Which side of a session this device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This device opened it.
    Opener,
    /// The peer opened it.
    Answerer,
}

/// How often peers are synced.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A peer is synced again this long after a session that went well.
    pub anti_entropy: Duration,
    /// The longest wait after sessions that failed.
    pub max_backoff: Duration,
    /// A steward's shelf is read again from its start this long after it
    /// was last read whole: an item the steward once replayed, altered or
    /// withheld, and the cursor moved past, comes again once it answers
    /// honestly.
    pub steward_reread: Duration,
    /// A steward's shelf smaller than this is never folded into a
    /// snapshot (past it, once it holds twice the circle).
    pub steward_fold_floor: u64,
}

/// Below this, a steward's shelf is never folded: what a node uses.
pub const STEWARD_FOLD_FLOOR: u64 = 64 * 1024;

/// What happened, as the machine tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input<C, P> {
    /// A peer to sync with in a circle: due at the next tick, its
    /// backoff starting from `first`.
    Met { circle: C, peer: P, first: Duration },
    /// A peer no longer to sync with in a circle (it departed): a
    /// session with it under way is over (no end of it is heard of).
    Gone { circle: C, peer: P },
    /// A circle no longer served: its peers and sessions are forgotten.
    LetGo { circle: C },
    /// Something calls for a sync with the peer now: it came up, it has
    /// heads this copy lacks, gossip lagged, or a key is to be handed over.
    Wanted { circle: C, peer: P },
    /// The peer opened a session. `theirs_first`: the peer's device id is
    /// the smaller, so of two sessions opened at once, the peer's goes on.
    Asked {
        circle: C,
        peer: P,
        theirs_first: bool,
    },
    /// The circle changed here: its peers are due within the interval.
    Changed { circle: C },
    /// A session ended, well (`ok`) or not.
    Ended {
        circle: C,
        peer: P,
        token: u64,
        ok: bool,
    },
    /// Gossip connected the peer as a neighbour in the circle.
    NeighbourUp { circle: C, peer: P },
    /// Gossip lost the peer as a neighbour in the circle.
    NeighbourDown { circle: C, peer: P },
    /// The circle's gossip topic was joined afresh: no neighbours yet.
    Followed { circle: C },
    /// Time passed: peers due for anti-entropy are synced, and circles
    /// short of gossip neighbours ask for more.
    Tick,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output<C, P> {
    /// Open a session with the peer; it is known by `token`.
    Open { circle: C, peer: P, token: u64 },
    /// Let the peer's session in; it is known by `token`.
    Admit { circle: C, peer: P, token: u64 },
    /// Refuse the peer's session: one with it is under way.
    Busy { circle: C, peer: P },
    /// Ask `missing` of `candidates` (the circle's devices that are not
    /// neighbours, in no particular order) to become gossip neighbours.
    Meet {
        circle: C,
        candidates: Vec<P>,
        missing: usize,
    },
    /// The current session with the peer ended, well (`ok`) or not;
    /// `again`: something called for a sync while it ran (ask again with
    /// [`Input::Wanted`] unless there is reason not to).
    Closed {
        circle: C,
        peer: P,
        ok: bool,
        again: bool,
    },
}

#[derive(Debug, Clone)]
struct Plan {
    backoff: Duration,
    next: Instant,
    again: bool,
}

/// When a circle next asks for neighbours, and the wait after that.
#[derive(Debug, Clone)]
struct Mend {
    at: Instant,
    every: Duration,
}

impl Mend {
    fn after(now: Instant) -> Self {
        Self {
            at: now + MEND_FIRST,
            every: MEND_FIRST,
        }
    }
}

/// How long an open of this device's may wait for its peer before the
/// peer's own open of a session, arriving meanwhile, goes first whatever
/// the tie-break says.
const UNANSWERED: Duration = Duration::from_secs(5);

/// The sync decisions of one node (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct Schedule<C, P> {
    timing: Timing,
    plans: BTreeMap<(C, P), Plan>,
    /// Each session under way: its token, this device's role, and when
    /// it began.
    running: BTreeMap<(C, P), (u64, Role, Instant)>,
    next_token: u64,
    neighbours: BTreeMap<C, BTreeSet<P>>,
    mending: BTreeMap<C, Mend>,
}

impl<C: Ord + Copy, P: Ord + Copy> Schedule<C, P> {
    /// No peers yet.
    pub(crate) fn new(timing: Timing) -> Self {
        Self {
            timing,
            plans: BTreeMap::new(),
            running: BTreeMap::new(),
            next_token: 0,
            neighbours: BTreeMap::new(),
            mending: BTreeMap::new(),
        }
    }

    /// Takes in what happened at `now`; returns what to do, in order.
    pub(crate) fn handle(&mut self, input: Input<C, P>, now: Instant) -> Vec<Output<C, P>> {
        let mut out = Vec::new();
        match input {
            Input::Met {
                circle,
                peer,
                first,
            } => {
                self.plans.entry((circle, peer)).or_insert(Plan {
                    backoff: first,
                    next: now,
                    again: false,
                });
            }
            Input::Gone { circle, peer } => {
                self.plans.remove(&(circle, peer));
                self.running.remove(&(circle, peer));
            }
            Input::LetGo { circle } => {
                self.plans.retain(|(c, _), _| *c != circle);
                self.running.retain(|(c, _), _| *c != circle);
                self.neighbours.remove(&circle);
                self.mending.remove(&circle);
            }
            Input::NeighbourUp { circle, peer } => {
                self.neighbours.entry(circle).or_default().insert(peer);
            }
            Input::NeighbourDown { circle, peer } => {
                if let Some(n) = self.neighbours.get_mut(&circle) {
                    n.remove(&peer);
                }
            }
            Input::Followed { circle } => {
                self.neighbours.remove(&circle);
            }
            Input::Wanted { circle, peer } => {
                let key = (circle, peer);
                let Some(plan) = self.plans.get_mut(&key) else {
                    return out;
                };
                if self.running.contains_key(&key) {
                    // What called for it may have come after the running
                    // session exchanged what it covers.
                    plan.again = true;
                } else {
                    out.push(self.open(key, now));
                }
            }
            Input::Asked {
                circle,
                peer,
                theirs_first,
            } => {
                self.asked((circle, peer), theirs_first, now, &mut out);
            }
            Input::Changed { circle } => {
                let interval = self.timing.anti_entropy;
                for (_, plan) in self.plans.range_mut(..).filter(|((c, _), _)| *c == circle) {
                    plan.backoff = plan.backoff.min(interval);
                    plan.next = plan.next.min(now + interval);
                }
            }
            Input::Ended {
                circle,
                peer,
                token,
                ok,
            } => {
                self.ended((circle, peer), token, ok, now, &mut out);
            }
            Input::Tick => {
                self.due(now, &mut out);
            }
        }
        out
    }

    /// A peer asks for a session: let it in, or say we are busy.
    fn asked(
        &mut self,
        key: (C, P),
        theirs_first: bool,
        now: Instant,
        out: &mut Vec<Output<C, P>>,
    ) {
        let (circle, peer) = key;
        let busy = match self.running.get(&key) {
            Some((_, Role::Answerer, _)) => true,
            // A peer asks only when it has no session with this
            // device: an open of ours it has not answered for
            // this long never reached it (it went to where the
            // peer was before it restarted, say), so it stands
            // aside for the peer's, which plainly does.
            Some((_, Role::Opener, since)) => {
                !theirs_first && now.saturating_duration_since(*since) < UNANSWERED
            }
            None => false,
        };
        if busy {
            out.push(Output::Busy { circle, peer });
        } else {
            let token = self.token();
            self.running.insert(key, (token, Role::Answerer, now));
            out.push(Output::Admit {
                circle,
                peer,
                token,
            });
        }
    }

    /// A session ended: when to try that peer again.
    fn ended(
        &mut self,
        key: (C, P),
        token: u64,
        ok: bool,
        now: Instant,
        out: &mut Vec<Output<C, P>>,
    ) {
        let (circle, peer) = key;
        if self.running.get(&key).map(|(t, ..)| *t) != Some(token) {
            // A session that lost the tie-break: nothing to record.
            return;
        }
        self.running.remove(&key);
        let Timing {
            anti_entropy,
            max_backoff,
            ..
        } = self.timing;
        let again = match self.plans.get_mut(&key) {
            Some(plan) => {
                plan.backoff = if ok {
                    anti_entropy
                } else {
                    (plan.backoff * 2).clamp(Duration::from_secs(1), max_backoff)
                };
                plan.next = now + plan.backoff;
                std::mem::take(&mut plan.again) && ok
            }
            None => false,
        };
        out.push(Output::Closed {
            circle,
            peer,
            ok,
            again,
        });
    }

    /// Opens the sessions due now, and looks for missing neighbours.
    fn due(&mut self, now: Instant, out: &mut Vec<Output<C, P>>) {
        let due: Vec<(C, P)> = self
            .plans
            .iter()
            .filter(|(key, plan)| plan.next <= now && !self.running.contains_key(key))
            .map(|(key, _)| *key)
            .collect();
        for key in due {
            if let Some(plan) = self.plans.get_mut(&key) {
                // Until this attempt ends, not again.
                plan.next = now + self.timing.max_backoff * 4;
            }
            out.push(self.open(key, now));
        }
        self.mend(now, out);
    }

    /// Asks for neighbours where a circle has fewer than it looks for.
    fn mend(&mut self, now: Instant, out: &mut Vec<Output<C, P>>) {
        let circles: BTreeSet<C> = self.plans.keys().map(|(c, _)| *c).collect();
        self.mending.retain(|c, _| circles.contains(c));
        for circle in circles {
            let devices: Vec<P> = self
                .plans
                .keys()
                .filter(|(c, _)| *c == circle)
                .map(|(_, p)| *p)
                .collect();
            let neighbours = self.neighbours.get(&circle);
            let have = neighbours.map_or(0, BTreeSet::len);
            let want = devices.len().min(NEIGHBOURS);
            let mend = self
                .mending
                .entry(circle)
                .or_insert_with(|| Mend::after(now));
            if have >= want {
                *mend = Mend::after(now);
                continue;
            }
            if now < mend.at {
                continue;
            }
            mend.at = now + mend.every;
            mend.every = (mend.every * 2).min(MEND_AT_MOST);
            let candidates = devices
                .into_iter()
                .filter(|p| !neighbours.is_some_and(|n| n.contains(p)))
                .collect();
            out.push(Output::Meet {
                circle,
                candidates,
                missing: want - have,
            });
        }
    }

    /// The circle's gossip neighbours now.
    pub(crate) fn neighbours(&self, circle: C) -> impl Iterator<Item = P> + '_ {
        self.neighbours.get(&circle).into_iter().flatten().copied()
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn open(&mut self, (circle, peer): (C, P), now: Instant) -> Output<C, P> {
        let token = self.token();
        self.running
            .insert((circle, peer), (token, Role::Opener, now));
        Output::Open {
            circle,
            peer,
            token,
        }
    }

    /// The token of the session under way with `peer` in `circle`.
    pub(crate) fn current(&self, circle: C, peer: P) -> Option<u64> {
        self.running.get(&(circle, peer)).map(|(token, ..)| *token)
    }

    /// Whether a session of `circle` is under way.
    pub(crate) fn syncing(&self, circle: C) -> bool {
        self.running.keys().any(|(c, _)| *c == circle)
    }

    /// The sessions under way: circle, peer and this device's role.
    pub(crate) fn sessions(&self) -> impl Iterator<Item = (C, P, Role)> + '_ {
        self.running
            .iter()
            .map(|((c, p), (_, role, _))| (*c, *p, *role))
    }
}

#[cfg(test)]
mod tests;
