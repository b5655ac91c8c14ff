//! The schedule's own tests: who is synced with, when, and what ends a session.

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
        (0u8..7, 0u8..3, any::<bool>(), 0u64..40).prop_map(|(kind, peer, flag, n)| match kind {
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
        });
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
