//! How fast another device's edits are taken in from gossip: a budget per
//! sending device, and what happens past it (delayed, never dropped).
//!
//! Each gossiped message with changes costs its sender one unit of a
//! budget that refills at [`PER_SECOND`] units a second, up to [`BURST`].
//! A message is the unit because the work it causes a receiver is per
//! message: opening it, one apply, one durable write, one "changed" told
//! to every reader, who reads the circle again. (A message is at most
//! 4 KiB, so its changes are few.) A person writes far slower than the
//! budget; a script of a member's own runs on their own device, which
//! does not limit itself, and the others take its edits in at this pace.
//!
//! Past the budget:
//!
//! 1. a message is **held**, in order, in a queue of at most [`HELD`] per
//!    sending device (every later message of that device goes behind it,
//!    so its changes are never taken out of order by this);
//! 2. on each tick, as the budget refills, the held messages it allows are
//!    applied together: one apply and one "changed" for them all;
//! 3. a message past a full queue is **left for sync**: not applied now,
//!    and no sync is asked for on its account. The sender is *behind*:
//!    the schedule's anti-entropy syncs (with it, and with every other
//!    device, which has the same changes) bring what it wrote, in a few
//!    rounds each; once its queue has drained, one sync with it is asked
//!    for, which brings the rest.
//!
//! Nothing is lost: sync brings every change a peer holds, whatever gossip
//! did with it. Only the sender's own changes wait; everyone else's go on
//! as they come. What was delayed and left for sync is counted per device
//! in [`crate::Status`].

use std::collections::VecDeque;

use roundtable_core::SignedHead;

use super::*;

/// Messages with changes a device may gossip per second, sustained,
/// before the others hold them back.
pub const PER_SECOND: u64 = 5;
/// Messages a device may gossip at once after a quiet while.
pub const BURST: u64 = 30;
/// Messages held per device past its budget, to be applied as it refills;
/// past that, they are left for sync.
pub const HELD: usize = 60;

/// Rounds of one sync session that may bring changes; past them, the
/// session ends (well) and the rest comes with the next. An honest catch-up
/// takes one or two.
pub const SESSION_ROUNDS: usize = 4;

/// One unit of the budget, in thousandths (the budget refills by the
/// millisecond).
const UNIT: u64 = 1_000;

/// What one sending device has left to spend, and what waits (`T`: a
/// message).
#[derive(Debug)]
pub(crate) struct Inflow<T> {
    /// Budget left, in thousandths of a message.
    budget: u64,
    /// When the budget was last refilled.
    at: Instant,
    /// Messages past the budget, oldest first.
    held: VecDeque<T>,
    /// A message went past the full queue since the last catch-up.
    behind: bool,
    /// Counted since start.
    counts: Delayed,
}

/// What a device's budget held back, since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delayed {
    /// Messages held back and applied later, as the budget refilled.
    pub held: u64,
    /// Messages past the held ones, left for sync to bring.
    pub left_for_sync: u64,
}

/// What became of a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict<T> {
    /// Within the budget: apply it now.
    Now(T),
    /// Held, to be applied as the budget refills.
    Held,
    /// Past the held ones: left for sync.
    LeftForSync,
}

impl<T> Inflow<T> {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            budget: BURST * UNIT,
            at: now,
            held: VecDeque::new(),
            behind: false,
            counts: Delayed::default(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let ms = now.saturating_duration_since(self.at).as_millis();
        let ms = u64::try_from(ms).unwrap_or(u64::MAX);
        self.budget = self
            .budget
            .saturating_add(ms.saturating_mul(PER_SECOND))
            .min(BURST * UNIT);
        self.at = self.at.max(now);
    }

    fn spend(&mut self) -> bool {
        if self.budget >= UNIT {
            self.budget -= UNIT;
            true
        } else {
            false
        }
    }

    /// A message arrived at `now`.
    pub(crate) fn arrive(&mut self, message: T, now: Instant) -> Verdict<T> {
        self.refill(now);
        if self.held.is_empty() && self.spend() {
            return Verdict::Now(message);
        }
        if self.held.len() < HELD {
            self.held.push_back(message);
            self.counts.held += 1;
            Verdict::Held
        } else {
            self.behind = true;
            self.counts.left_for_sync += 1;
            Verdict::LeftForSync
        }
    }

    /// The held messages the budget allows by `now`, oldest first; and
    /// whether the sender was behind and now has nothing held (time for
    /// one sync with it).
    pub(crate) fn release(&mut self, now: Instant) -> (Vec<T>, bool) {
        self.refill(now);
        let mut due = Vec::new();
        while !self.held.is_empty() && self.spend() {
            due.extend(self.held.pop_front());
        }
        let caught_up = self.held.is_empty() && std::mem::take(&mut self.behind);
        (due, caught_up)
    }

    /// Nothing held, and not behind: no tick needs to look at it.
    fn idle(&self) -> bool {
        self.held.is_empty() && !self.behind
    }
}

/// Every sending device's inflow, by circle and device.
pub(crate) type Inflows = BTreeMap<(CircleId, DeviceId), Inflow<(Vec<u8>, SignedHead)>>;

impl Machine {
    /// Whether a message `from` may be applied now: `Some` gives it back
    /// to apply; `None` means it was held or left for sync.
    pub(crate) fn within_rate(
        &mut self,
        circle: CircleId,
        from: DeviceId,
        body: Body,
        now: Now,
    ) -> Option<Body> {
        let Body::Changes { changes, head } = body else {
            // Heads only call for a sync, which runs one at a time anyway.
            return Some(body);
        };
        let inflow = self
            .inflows
            .entry((circle, from))
            .or_insert_with(|| Inflow::new(now.mono));
        match inflow.arrive((changes, head), now.mono) {
            Verdict::Now((changes, head)) => return Some(Body::Changes { changes, head }),
            Verdict::Held if inflow.counts.held == 1 => {
                info!(%circle, from = %from.fmt_short(), "a device writes faster than {PER_SECOND} edits a second: its edits are taken in at that pace");
            }
            Verdict::Held => {}
            Verdict::LeftForSync => {
                debug!(%circle, from = %from.fmt_short(), "past the held edits: left for sync to bring");
            }
        }
        None
    }

    /// Whether `from` wrote past its held queue and is to be caught up with
    /// by sync, not by a sync per message.
    pub(crate) fn behind(&self, circle: CircleId, from: DeviceId) -> bool {
        self.inflows
            .get(&(circle, from))
            .is_some_and(|inflow| inflow.behind)
    }

    /// Applies the held messages each device's budget allows by now, each
    /// device's together; a device that was behind and has nothing held
    /// any more is synced with once. Forgets the inflows of circles and
    /// devices no longer served.
    pub(crate) fn release_held(&mut self, now: Now, rng: &mut impl RngCore) {
        let circles = &self.circles;
        self.inflows.retain(|(circle, device), _| {
            circles
                .get(circle)
                .is_some_and(|s| s.membership.admitted.contains(device))
        });
        let waiting: Vec<(CircleId, DeviceId)> = self
            .inflows
            .iter()
            .filter(|(_, inflow)| !inflow.idle())
            .map(|(key, _)| *key)
            .collect();
        for (circle, from) in waiting {
            let Some(inflow) = self.inflows.get_mut(&(circle, from)) else {
                continue;
            };
            let (due, caught_up) = inflow.release(now.mono);
            if let Some((_, last)) = due.last() {
                let head = last.clone();
                // Each message's head proves its changes; the newest proves
                // all of them, but the earlier are learnt too.
                if let Some(served) = self.circles.get_mut(&circle) {
                    for (_, h) in &due {
                        served.book.learn(circle, [h]);
                    }
                }
                let changes = due.into_iter().flat_map(|(c, _)| c).collect();
                self.take_in(
                    circle,
                    from,
                    from,
                    Body::Changes { changes, head },
                    now,
                    rng,
                );
            }
            if caught_up {
                self.start_sync(circle, from, now, rng);
            }
        }
    }

    /// What each device's budget held back in a circle, since start.
    pub(crate) fn delayed(&self, circle: CircleId, device: DeviceId) -> Delayed {
        self.inflows
            .get(&(circle, device))
            .map(|inflow| inflow.counts)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Sends messages `range` at `at`; returns those to apply now.
    fn send(f: &mut Inflow<u64>, range: std::ops::Range<u64>, at: Instant) -> Vec<u64> {
        range
            .filter_map(|n| match f.arrive(n, at) {
                Verdict::Now(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_burst_goes_through_at_once_and_the_rest_is_held_in_order() {
        let t0 = Instant::now();
        let mut f = Inflow::new(t0);
        assert_eq!(send(&mut f, 0..BURST, t0), (0..BURST).collect::<Vec<_>>());
        assert_eq!(f.arrive(BURST, t0), Verdict::Held);
        // Nothing refilled yet: nothing to release.
        assert_eq!(f.release(t0), (vec![], false));
        // A fifth of a second brings one message at five a second.
        assert_eq!(f.release(t0 + ms(200)), (vec![BURST], false));
        assert_eq!(f.counts.held, 1);
        assert_eq!(f.counts.left_for_sync, 0);
    }

    #[test]
    fn held_messages_keep_their_place_ahead_of_later_ones() {
        let t0 = Instant::now();
        let mut f = Inflow::new(t0);
        send(&mut f, 0..BURST + 2, t0);
        // The budget has refilled by one, but two wait: the newcomer goes
        // behind them, not past them.
        assert_eq!(f.arrive(99, t0 + ms(200)), Verdict::Held);
        assert_eq!(f.release(t0 + ms(600)).0, [BURST, BURST + 1, 99]);
    }

    #[test]
    fn the_sustained_pace_is_per_second_and_the_budget_never_exceeds_the_burst() {
        let t0 = Instant::now();
        let mut f = Inflow::new(t0);
        // An hour of quiet refills no more than the burst.
        let t1 = t0 + Duration::from_secs(3_600);
        assert_eq!(send(&mut f, 0..1_000, t1).len() as u64, BURST);
        // Then, flooding at 300 a second for a minute, releasing every
        // half second: no more than the pace comes through.
        let mut through = 0;
        let mut n = 1_000;
        for tick in 1..=120u64 {
            let at = t1 + ms(500 * tick);
            through += send(&mut f, n..n + 150, at).len() as u64;
            n += 150;
            let (due, _) = f.release(at);
            assert!(due.len() as u64 <= PER_SECOND.div_ceil(2), "{due:?}");
            through += due.len() as u64;
        }
        assert_eq!(through, 60 * PER_SECOND);
    }

    #[test]
    fn past_the_held_queue_a_sender_is_left_for_sync_then_caught_up_with_once() {
        let t0 = Instant::now();
        let mut f = Inflow::new(t0);
        let sent = BURST + HELD as u64 + 10;
        let now = send(&mut f, 0..sent, t0);
        assert_eq!(now.len() as u64, BURST);
        assert_eq!(f.counts.held, HELD as u64);
        assert_eq!(f.counts.left_for_sync, 10);
        // Every message is either applied now, held, or counted as left for
        // sync: none vanishes unaccounted.
        assert_eq!(
            now.len() as u64 + f.counts.held + f.counts.left_for_sync,
            sent
        );
        // The held ones come out, in order, as the budget refills; once the
        // last is out, it is time for one sync with the sender.
        let mut released = Vec::new();
        let mut caught_up = 0;
        for tick in 1..=40u64 {
            let (due, sync) = f.release(t0 + ms(500 * tick));
            released.extend(due);
            caught_up += u32::from(sync);
        }
        assert_eq!(released, (BURST..BURST + HELD as u64).collect::<Vec<_>>());
        assert_eq!(caught_up, 1);
        assert!(f.idle());
    }
}
