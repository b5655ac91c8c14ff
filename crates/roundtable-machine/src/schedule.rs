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
mod tests {
    use super::*;

    type S = Schedule<u8, u8>;

    const TIMING: Timing = Timing {
        anti_entropy: Duration::from_secs(10),
        max_backoff: Duration::from_secs(20),
        steward_reread: Duration::from_secs(3600),
        steward_fold_floor: STEWARD_FOLD_FLOOR,
    };

    fn met(s: &mut S, peer: u8, now: Instant) {
        s.handle(
            Input::Met {
                circle: 1,
                peer,
                first: TIMING.anti_entropy,
            },
            now,
        );
    }

    fn opened(out: &[Output<u8, u8>]) -> Vec<(u8, u64)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Open { peer, token, .. } => Some((*peer, *token)),
                _ => None,
            })
            .collect()
    }

    fn end(s: &mut S, peer: u8, token: u64, ok: bool, now: Instant) -> Vec<Output<u8, u8>> {
        s.handle(
            Input::Ended {
                circle: 1,
                peer,
                token,
                ok,
            },
            now,
        )
    }

    #[test]
    fn a_peer_met_is_synced_at_the_next_tick_and_then_every_interval() {
        let t0 = Instant::now();
        let mut s = S::new(TIMING);
        met(&mut s, 7, t0);
        let first = opened(&s.handle(Input::Tick, t0));
        assert_eq!(first.len(), 1);
        // While it runs, ticks open nothing more.
        assert!(opened(&s.handle(Input::Tick, t0 + TIMING.anti_entropy * 10)).is_empty());
        end(&mut s, 7, first[0].1, true, t0);
        assert!(opened(&s.handle(Input::Tick, t0 + Duration::from_secs(9))).is_empty());
        assert_eq!(
            opened(&s.handle(Input::Tick, t0 + TIMING.anti_entropy)).len(),
            1
        );
    }

    /// Syncs peer 7 once per outcome in turn, each at the earliest tick
    /// that opens a session; returns the waits between them, in seconds.
    fn waits(s: &mut S, t0: Instant, outcomes: &[bool]) -> Vec<u64> {
        let mut now = t0;
        let mut waits = Vec::new();
        for ok in outcomes {
            let (_, token) = opened(&s.handle(Input::Tick, now))[0];
            end(s, 7, token, *ok, now);
            let mut wait = Duration::ZERO;
            while opened(&s.clone().handle(Input::Tick, now + wait)).is_empty() {
                wait += Duration::from_secs(1);
            }
            waits.push(wait.as_secs());
            now += wait;
        }
        waits
    }

    #[test]
    fn failures_back_off_doubling_up_to_the_most_and_success_resets() {
        let t0 = Instant::now();
        let mut s = S::new(TIMING);
        met(&mut s, 7, t0);
        assert_eq!(
            waits(&mut s, t0, &[false; 4]),
            [20, 20, 20, 20],
            "10 s doubled is past the 20 s most"
        );
        let mut s = S::new(Timing {
            anti_entropy: Duration::from_secs(1),
            max_backoff: Duration::from_secs(20),
            steward_reread: Duration::from_secs(3600),
            steward_fold_floor: STEWARD_FOLD_FLOOR,
        });
        s.handle(
            Input::Met {
                circle: 1,
                peer: 7,
                first: Duration::from_secs(1),
            },
            t0,
        );
        assert_eq!(
            waits(&mut s, t0, &[false, false, false, false, false, true]),
            [2, 4, 8, 16, 20, 1]
        );
    }

    #[test]
    fn a_sync_wanted_while_one_runs_runs_right_after_it_if_it_went_well() {
        let t0 = Instant::now();
        let mut s = S::new(TIMING);
        met(&mut s, 7, t0);
        let want = Input::Wanted { circle: 1, peer: 7 };
        let (_, token) = opened(&s.handle(want.clone(), t0))[0];
        assert!(opened(&s.handle(want.clone(), t0)).is_empty());
        assert_eq!(
            end(&mut s, 7, token, true, t0),
            [Output::Closed {
                circle: 1,
                peer: 7,
                ok: true,
                again: true
            }]
        );
        // Once: the flag is spent.
        let (_, token) = opened(&s.handle(want.clone(), t0))[0];
        assert_eq!(
            end(&mut s, 7, token, true, t0),
            [Output::Closed {
                circle: 1,
                peer: 7,
                ok: true,
                again: false
            }]
        );
        // A failing peer waits for its backoff instead.
        let (_, token) = opened(&s.handle(want.clone(), t0))[0];
        s.handle(want, t0);
        assert_eq!(
            end(&mut s, 7, token, false, t0),
            [Output::Closed {
                circle: 1,
                peer: 7,
                ok: false,
                again: false
            }]
        );
    }

    #[test]
    fn of_two_sessions_opened_at_once_the_smaller_ids_goes_on_and_the_other_ends_silently() {
        let t0 = Instant::now();
        // This device's id is the smaller: the peer's session is refused.
        let mut s = S::new(TIMING);
        met(&mut s, 7, t0);
        let (_, ours) = opened(&s.handle(Input::Wanted { circle: 1, peer: 7 }, t0))[0];
        let asked = Input::Asked {
            circle: 1,
            peer: 7,
            theirs_first: false,
        };
        assert_eq!(s.handle(asked, t0), [Output::Busy { circle: 1, peer: 7 }]);
        assert_eq!(end(&mut s, 7, ours, true, t0).len(), 1);
        // The peer's id is the smaller: theirs replaces ours, whose end is
        // not recorded.
        let (_, ours) = opened(&s.handle(Input::Wanted { circle: 1, peer: 7 }, t0))[0];
        let asked = Input::Asked {
            circle: 1,
            peer: 7,
            theirs_first: true,
        };
        let [Output::Admit { token: theirs, .. }] = s.handle(asked, t0)[..] else {
            panic!("the peer's session goes on");
        };
        // Only the peer's session is current: ours, still running until its
        // peer refuses it, must not be answered.
        assert_eq!(s.current(1, 7), Some(theirs));
        assert_ne!(s.current(1, 7), Some(ours));
        assert!(end(&mut s, 7, ours, false, t0).is_empty());
        // A second session the peer opens while theirs runs is refused.
        let again = Input::Asked {
            circle: 1,
            peer: 7,
            theirs_first: true,
        };
        assert_eq!(s.handle(again, t0), [Output::Busy { circle: 1, peer: 7 }]);
        assert_eq!(end(&mut s, 7, theirs, true, t0).len(), 1);
        assert!(!s.syncing(1));
    }

    #[test]
    fn an_open_the_peer_never_answered_stands_aside_for_the_peers_own() {
        let t0 = Instant::now();
        let mut s = S::new(TIMING);
        met(&mut s, 7, t0);
        // Ours went to where the peer was before it restarted; the peer,
        // back, asks. Were it the same moment, the tie-break would refuse it.
        let (_, ours) = opened(&s.handle(Input::Wanted { circle: 1, peer: 7 }, t0))[0];
        let asked = Input::Asked {
            circle: 1,
            peer: 7,
            theirs_first: false,
        };
        assert_eq!(
            s.handle(asked.clone(), t0 + UNANSWERED / 2),
            [Output::Busy { circle: 1, peer: 7 }]
        );
        let [Output::Admit { token: theirs, .. }] = s.handle(asked, t0 + UNANSWERED)[..] else {
            panic!("the peer's session goes on");
        };
        assert_eq!(s.current(1, 7), Some(theirs));
        // Ours ends when its dial gives up, and changes nothing.
        assert!(end(&mut s, 7, ours, false, t0 + UNANSWERED * 4).is_empty());
        assert_eq!(end(&mut s, 7, theirs, true, t0 + UNANSWERED * 4).len(), 1);
        assert!(!s.syncing(1));
    }

    #[test]
    fn a_change_brings_a_backed_off_peer_within_the_interval() {
        let t0 = Instant::now();
        let mut s = S::new(TIMING);
        met(&mut s, 7, t0);
        let (_, token) = opened(&s.handle(Input::Tick, t0))[0];
        end(&mut s, 7, token, false, t0);
        let (_, token) = opened(&s.handle(Input::Tick, t0 + TIMING.max_backoff))[0];
        end(&mut s, 7, token, false, t0 + TIMING.max_backoff);
        let t1 = t0 + TIMING.max_backoff;
        s.handle(Input::Changed { circle: 1 }, t1);
        assert_eq!(
            opened(&s.handle(Input::Tick, t1 + TIMING.anti_entropy)).len(),
            1
        );
    }

    #[test]
    fn departed_peers_and_let_go_circles_are_not_synced() {
        let t0 = Instant::now();
        let mut s = S::new(TIMING);
        met(&mut s, 7, t0);
        met(&mut s, 8, t0);
        s.handle(Input::Gone { circle: 1, peer: 7 }, t0);
        assert_eq!(opened(&s.handle(Input::Tick, t0)), [(8, 1)]);
        assert!(s.syncing(1));
        s.handle(Input::LetGo { circle: 1 }, t0);
        assert!(!s.syncing(1));
        assert!(
            s.handle(Input::Wanted { circle: 1, peer: 8 }, t0)
                .is_empty()
        );
        assert!(
            s.handle(Input::Tick, t0 + TIMING.max_backoff * 10)
                .is_empty()
        );
    }

    #[test]
    fn a_peer_that_departs_mid_session_is_met_afresh_when_it_comes_back() {
        let t0 = Instant::now();
        let mut s = S::new(TIMING);
        met(&mut s, 7, t0);
        let [(7, token)] = opened(&s.handle(Input::Tick, t0))[..] else {
            panic!("one session opens");
        };
        // Departed mid-session: the session's end is never heard of.
        s.handle(Input::Gone { circle: 1, peer: 7 }, t0);
        assert!(!s.syncing(1));
        // Welcomed back, it is synced with at once.
        met(&mut s, 7, t0);
        let [(7, again)] = opened(&s.handle(Input::Tick, t0))[..] else {
            panic!("one session opens again");
        };
        assert_ne!(again, token);
        // The old session's end, should it come, changes nothing.
        let late = Input::Ended {
            circle: 1,
            peer: 7,
            token,
            ok: false,
        };
        assert!(s.handle(late, t0).is_empty());
        assert_eq!(s.current(1, 7), Some(again));
    }

    fn meets(out: &[Output<u8, u8>]) -> Vec<(Vec<u8>, usize)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Meet {
                    candidates,
                    missing,
                    ..
                } => Some((candidates.clone(), *missing)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_circle_short_of_neighbours_asks_for_more_at_doubling_waits() {
        let t0 = Instant::now();
        let mut s = S::new(TIMING);
        for peer in 1..=5 {
            met(&mut s, peer, t0);
        }
        s.handle(Input::NeighbourUp { circle: 1, peer: 1 }, t0);
        // The count is first looked at on a tick; the first ask comes
        // two seconds later, then after 2, 4, 8 ... up to 60 s.
        assert!(meets(&s.handle(Input::Tick, t0)).is_empty());
        let mut asked = Vec::new();
        for secs in 1..=200 {
            let out = s.handle(Input::Tick, t0 + Duration::from_secs(secs));
            for (candidates, missing) in meets(&out) {
                assert_eq!(candidates, [2, 3, 4, 5], "not the neighbour it has");
                assert_eq!(missing, 2);
                asked.push(secs);
            }
        }
        assert_eq!(asked, [2, 4, 8, 16, 32, 64, 124, 184]);
        // Enough neighbours: no more asking, and the waits start over.
        s.handle(Input::NeighbourUp { circle: 1, peer: 2 }, t0);
        s.handle(Input::NeighbourUp { circle: 1, peer: 3 }, t0);
        let t1 = t0 + Duration::from_secs(300);
        assert!(meets(&s.handle(Input::Tick, t1)).is_empty());
        s.handle(Input::NeighbourDown { circle: 1, peer: 3 }, t1);
        assert!(meets(&s.handle(Input::Tick, t1 + Duration::from_secs(1))).is_empty());
        assert_eq!(
            meets(&s.handle(Input::Tick, t1 + Duration::from_secs(2))),
            [(vec![3, 4, 5], 1)]
        );
    }

    #[test]
    fn a_small_circle_wants_as_many_neighbours_as_it_has_devices() {
        let t0 = Instant::now();
        let mut s = S::new(TIMING);
        met(&mut s, 9, t0);
        s.handle(Input::Tick, t0);
        assert_eq!(
            meets(&s.handle(Input::Tick, t0 + Duration::from_secs(2))),
            [(vec![9], 1)]
        );
        s.handle(Input::NeighbourUp { circle: 1, peer: 9 }, t0);
        assert!(meets(&s.handle(Input::Tick, t0 + Duration::from_secs(100))).is_empty());
        // A new topic starts with none.
        s.handle(Input::Followed { circle: 1 }, t0);
        assert_eq!(s.neighbours(1).count(), 0);
    }

    /// Whatever happens, in any order: never two sessions with one peer, a
    /// token is never reused, and every session opened or admitted is
    /// closed at most once (or dropped, when its peer departs).
    #[test]
    fn one_session_per_peer_whatever_happens() {
        use proptest::prelude::*;
        let input =
            (0u8..7, 0u8..3, any::<bool>(), 0u64..40).prop_map(
                |(kind, peer, flag, n)| match kind {
                    0 => Input::Met {
                        circle: 1,
                        peer,
                        first: Duration::from_secs(1),
                    },
                    1 => Input::Gone { circle: 1, peer },
                    2 => Input::Wanted { circle: 1, peer },
                    3 => Input::Asked {
                        circle: 1,
                        peer,
                        theirs_first: flag,
                    },
                    4 => Input::Changed { circle: 1 },
                    5 => Input::Ended {
                        circle: 1,
                        peer,
                        token: n,
                        ok: flag,
                    },
                    _ => Input::Tick,
                },
            );
        proptest!(|(steps in proptest::collection::vec((input, 0u64..30), 1..200))| {
            let t0 = Instant::now();
            let mut now = t0;
            let mut s = S::new(TIMING);
            let mut current: BTreeMap<u8, u64> = BTreeMap::new();
            let mut seen = std::collections::BTreeSet::new();
            for (input, secs) in steps {
                now += Duration::from_secs(secs);
                // A peer that departs takes its session with it, unclosed.
                if let Input::Gone { peer, .. } = &input {
                    current.remove(peer);
                }
                for o in s.handle(input, now) {
                    match o {
                        Output::Open { peer, token, .. } => {
                            prop_assert!(!current.contains_key(&peer), "two sessions with {peer}");
                            prop_assert!(seen.insert(token), "token {token} reused");
                            current.insert(peer, token);
                        }
                        Output::Admit { peer, token, .. } => {
                            prop_assert!(seen.insert(token), "token {token} reused");
                            // Replacing ours is the one case of an admit while one runs.
                            current.insert(peer, token);
                        }
                        Output::Busy { peer, .. } => {
                            prop_assert!(current.contains_key(&peer), "busy with no session");
                        }
                        Output::Closed { peer, .. } => {
                            prop_assert!(current.remove(&peer).is_some(), "closed twice");
                        }
                        Output::Meet { .. } => {}
                    }
                }
                let running: Vec<u8> = s.sessions().map(|(_, p, _)| p).collect();
                prop_assert_eq!(running, current.keys().copied().collect::<Vec<_>>());
            }
        });
    }
}
