//! Recovery: a person who lost every device is recognised by the circle.
//!
//! On a new device they make a new member key and ask to be known by it
//! ("It's Ana, I lost my laptop"). Members who checked with them out of
//! band vouch: the first vouch is a proposal of kind
//! [`ProposalKind::Recover`] that names the member, the new key, the new
//! device and the key's certificate of it; the others consent to it. It
//! carries by the rule a removal carries by. Then the member's own
//! devices have a while to refuse it: the circle's wait as the first vouch
//! found it ([`RECOVERY_WAIT_HOURS`] until a member sets another, between
//! [`MIN_RECOVERY_WAIT_HOURS`] and [`MAX_RECOVERY_WAIT_HOURS`]), written
//! on the proposal so a later change of the setting leaves it be. A thief
//! with a vouching friend cannot take over someone whose phone is only in
//! a drawer: a member's own tool may write another wait on a vouch, or set
//! the circle's, but never below the shortest, which every copy holds.
//! Once the wait is over, a device of a member who could vouch carries it
//! through: one change records it done and adds the new device to the
//! member's record, certified by the new key.
//!
//! From then on the member's devices are those the new key certified: the
//! ones their old key certified have departed (a thief's among them), and
//! the circle moves to a new epoch. They are the same member, with their
//! name and everything they wrote and were given.
//!
//! **Time.** The wait is the one rule wall-clock time decides, and it is
//! kept on the times written: a completion counts only when its time is
//! past the wait from the time of the vouch that carried it, and a device
//! carries a recovery through only when its own clock says so. Members
//! who lie about the time together can shorten the wait; they are
//! already enough to vouch.
//!
//! **Refusal wins.** A refusal counts when a device of the member that
//! their earlier key certified wrote it, and the device was admitted then
//! (every change is judged so, see [`crate::authorship`]). A refused
//! recovery never counts, even one already carried through on copies that
//! had not heard of the refusal (it was made beside the completion, not
//! after: once a device knows of the completion it has departed and writes
//! nothing more): the new device departs again, the old ones are back, and
//! the circle moves to one more epoch.

use std::collections::{BTreeMap, BTreeSet};

use super::{Membership, ProposalKind, ProposalState, last_consent};
use crate::identity::DeviceCert;
use crate::ids::{DeviceId, EntityId, MemberId};
use crate::time::Timestamp;
use crate::view::{CircleView, RemovalRecord};

/// How long a member's devices may refuse a recovery once it carried,
/// until a member sets the circle's wait.
pub const RECOVERY_WAIT_HOURS: u64 = 48;
/// The shortest wait a recovery may have.
pub const MIN_RECOVERY_WAIT_HOURS: u64 = 24;
/// The longest wait a recovery may have.
pub const MAX_RECOVERY_WAIT_HOURS: u64 = 14 * 24;

const HOUR_MS: i64 = 3_600_000;

/// The rule for recovering someone, in words, as every view states it
/// before anyone vouches.
pub const RECOVERY_RULE: &str = "Vouch only for someone you have checked with yourself, by voice or face to face. A new device becomes a member's when a majority of the others vouch for it, and never fewer than two people; then the member's own devices have a while to refuse it. Once it is theirs, their old devices are let go and the circle moves to a new key.";

/// A recovery as the rules read it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recovery {
    /// The member key the person holds now.
    pub key: MemberId,
    /// Their new device.
    pub device: DeviceId,
    /// How long the member's devices may refuse it once enough vouched.
    pub wait_hours: u64,
    /// When enough had vouched (the last vouch counted), once they had.
    pub vouched_at: Option<Timestamp>,
    /// The member's devices that refused it.
    pub refused_by: BTreeSet<DeviceId>,
    /// When it was carried through: the new device is theirs.
    pub completed: Option<Timestamp>,
    /// For vouches made apart from the first for the same device: the
    /// recovery they count with.
    pub joined: Option<EntityId>,
}

impl Recovery {
    /// Until when the member's devices may refuse it; `None` until enough
    /// vouched.
    pub fn until(&self) -> Option<Timestamp> {
        let wait = i64::try_from(self.wait_hours).unwrap_or(i64::MAX);
        self.vouched_at
            .map(|t| t.plus_millis(wait.saturating_mul(HOUR_MS)))
    }

    /// Whether the wait is over at `now`.
    pub fn waited(&self, now: Timestamp) -> bool {
        self.until().is_some_and(|until| now >= until)
    }
}

impl CircleView {
    /// How long a member's own devices may refuse a recovery in this
    /// circle: what a member set, held within bounds, else
    /// [`RECOVERY_WAIT_HOURS`].
    pub fn recovery_wait_hours(&self) -> u64 {
        self.circle
            .recovery_wait
            .as_ref()
            .map_or(RECOVERY_WAIT_HOURS, |w| {
                w.hours
                    .clamp(MIN_RECOVERY_WAIT_HOURS, MAX_RECOVERY_WAIT_HOURS)
            })
    }

    /// The circle's wait for recoveries, in words: how long, and who set
    /// it when, unless it was never changed.
    pub fn recovery_wait_words(&self) -> String {
        let hours = self.recovery_wait_hours();
        let long = wait_words(hours);
        let Some(set) = &self.circle.recovery_wait else {
            return long;
        };
        let by = set.by_device.and_then(|d| {
            self.members
                .iter()
                .find(|(_, m)| m.devices.contains_key(&d))
                .map(|(id, _)| self.name_of(id))
        });
        match by {
            Some(by) => format!("{long} (set by {by}, {})", crate::people::day_month(set.at)),
            None => long,
        }
    }
}

/// A wait in words: "48 hours", "3 days", "2 weeks".
pub fn wait_words(hours: u64) -> String {
    match hours {
        h if h % (7 * 24) == 0 => plural(h / (7 * 24), "week"),
        h if h % 24 == 0 && h > 48 => plural(h / 24, "day"),
        h => plural(h, "hour"),
    }
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Whether a recovery's record holds what one needs: a key other than
/// the member's id, a device, the key's certificate of it, a wait within
/// bounds.
pub(super) fn well_formed(r: &RemovalRecord) -> bool {
    let (Some(key), Some(device)) = (r.key, r.device) else {
        return false;
    };
    let key = MemberId::from_bytes(key);
    key != r.target
        && (MIN_RECOVERY_WAIT_HOURS..=MAX_RECOVERY_WAIT_HOURS).contains(&r.wait_hours)
        && DeviceCert::from_parts(key, device, &r.cert).is_ok()
}

impl Membership {
    /// Recoveries, in causal order: what each counts for (see the module
    /// docs). One carried through, and not refused, gives its member its
    /// key; each carried through moves the epoch, and each of those
    /// refused moves it once more.
    pub(super) fn judge_recoveries(
        &mut self,
        view: &CircleView,
        owners: &BTreeMap<DeviceId, MemberId>,
    ) {
        let mut ids: Vec<(u64, EntityId)> = self
            .proposals
            .values()
            .filter(|p| p.kind == ProposalKind::Recover && p.state != ProposalState::Void)
            .filter_map(|p| Some((view.removals.get(&p.id)?.order, p.id)))
            .collect();
        ids.sort_unstable();
        // Vouches for one device as one member's, made on copies apart,
        // are one recovery: the first in causal order, with the others'
        // vouches, refusals and completions.
        let mut order: Vec<(MemberId, MemberId, DeviceId, u64)> = Vec::new();
        let mut groups: BTreeMap<(MemberId, MemberId, DeviceId, u64), Vec<EntityId>> =
            BTreeMap::new();
        for (_, id) in ids {
            let (Some(r), Some(p)) = (view.removals.get(&id), self.proposals.get(&id)) else {
                continue;
            };
            let (Some(key), Some(device)) = (r.key, r.device) else {
                continue;
            };
            let about = (p.target, MemberId::from_bytes(key), device, p.stint);
            if !groups.contains_key(&about) {
                order.push(about);
            }
            groups.entry(about).or_default().push(id);
        }
        for about in order {
            let group = groups.remove(&about).unwrap_or_default();
            self.judge_recovery(view, owners, about, &group);
        }
    }

    /// One recovery: `group[0]` and the vouches for the same device made
    /// apart from it.
    fn judge_recovery(
        &mut self,
        view: &CircleView,
        owners: &BTreeMap<DeviceId, MemberId>,
        (target, key, device, stint): (MemberId, MemberId, DeviceId, u64),
        group: &[EntityId],
    ) {
        let Some(first) = group.first().and_then(|id| self.proposals.get(id)).cloned() else {
            return;
        };
        let records: Vec<&RemovalRecord> = group
            .iter()
            .filter_map(|id| view.removals.get(id))
            .collect();
        // Each member's earliest vouch, in any of them, if they could vouch.
        let mut vouched: BTreeMap<MemberId, Timestamp> = BTreeMap::new();
        for id in group {
            let Some(p) = self.proposals.get(id) else {
                continue;
            };
            for m in p.consents.iter().filter(|m| first.electorate.contains(m)) {
                let at = if *m == p.by {
                    p.at
                } else {
                    last_consent(view, &single(p, *m))
                };
                let e = vouched.entry(*m).or_insert(at);
                *e = (*e).min(at);
            }
        }
        let consents: BTreeSet<MemberId> = vouched.keys().copied().collect();
        let mut times: Vec<Timestamp> = vouched.into_values().collect();
        times.sort_unstable();
        let enough = consents.len() >= first.needed;
        let vouched_at = enough.then(|| times[first.needed.max(1) - 1]);
        let old_device = |d: &DeviceId| {
            *d != device
                && owners.get(d) == Some(&target)
                && view
                    .members
                    .get(&target)
                    .and_then(|m| m.devices.get(d))
                    .is_some_and(|rec| rec.key.map_or(target, MemberId::from_bytes) != key)
        };
        let refused_by: BTreeSet<DeviceId> = records
            .iter()
            .flat_map(|r| &r.refused)
            .filter(|(d, s)| s.by_device == Some(**d) && old_device(d))
            .map(|(d, _)| *d)
            .collect();
        let wait_hours = records
            .first()
            .map_or(RECOVERY_WAIT_HOURS, |r| r.wait_hours);
        let mut recovery = Recovery {
            key,
            device,
            wait_hours,
            vouched_at,
            refused_by,
            completed: None,
            joined: None,
        };
        recovery.completed = records
            .iter()
            .filter_map(|r| r.completed.as_ref())
            .filter(|c| {
                c.by_device
                    .and_then(|d| owners.get(&d))
                    .is_some_and(|m| first.electorate.contains(m))
                    && recovery.waited(c.at)
            })
            .map(|c| c.at)
            .min();
        let open = if enough {
            ProposalState::Carried
        } else if first.state == ProposalState::Withdrawn {
            ProposalState::Withdrawn
        } else {
            ProposalState::Open
        };
        let state = if recovery.completed.is_some() {
            self.epoch += 1;
            self.recovered.insert(target);
            if recovery.refused_by.is_empty() {
                self.keys.insert(target, key);
                open
            } else {
                // Let go again, once the refusal is known.
                self.epoch += 1;
                ProposalState::Refused
            }
        } else if !recovery.refused_by.is_empty() {
            ProposalState::Refused
        } else if self.removed.contains(&target)
            || self.left.contains(&target)
            || stint != self.stint_of(target)
        {
            // Its member's stint ended first.
            ProposalState::Void
        } else {
            open
        };
        for (i, id) in group.iter().enumerate() {
            let Some(p) = self.proposals.get_mut(id) else {
                continue;
            };
            if i == 0 {
                p.state = state;
                p.consents = consents.clone();
                p.recovery = Some(recovery.clone());
            } else {
                p.state = ProposalState::Void;
                p.recovery = Some(Recovery {
                    joined: Some(first.id),
                    ..recovery.clone()
                });
            }
        }
    }
}

/// `p` as if `member` alone had consented (to read when they did).
fn single(p: &super::Proposal, member: MemberId) -> super::Proposal {
    super::Proposal {
        consents: BTreeSet::from([member]),
        ..p.clone()
    }
}

/// What a recovery proposal says, in words (see
/// [`super::Proposal::words`]).
pub(super) fn words(p: &super::Proposal, r: &Recovery, view: &CircleView) -> String {
    let (by, target) = (view.name_of(&p.by), view.name_of(&p.target));
    let reason = if p.reason.is_empty() {
        String::new()
    } else {
        format!(": {}", p.reason)
    };
    let day = |t: Timestamp| crate::people::day_month(t);
    match p.state {
        ProposalState::Refused => {
            format!("a device of {target}'s refused the request to become theirs")
        }
        ProposalState::Carried => match (r.completed, r.until()) {
            (Some(at), _) => format!(
                "{target} is back on a new device, vouched for by {} of {} ({})",
                p.consents.len(),
                p.electorate.len(),
                day(at)
            ),
            (None, Some(until)) => format!(
                "a request to become {target}'s device: vouched for by {} of {}; {target}'s own devices can refuse it until {}",
                p.consents.len(),
                p.electorate.len(),
                day(until)
            ),
            (None, None) => String::new(),
        },
        ProposalState::Open => {
            let mut names: Vec<String> = p.consents.iter().map(|m| view.name_of(m)).collect();
            names.sort();
            let more = p.needed.saturating_sub(p.consents.len());
            let more = if more == 1 {
                "one more needed".to_owned()
            } else {
                format!("{more} more needed")
            };
            format!(
                "a request to become {target}'s device{reason}: vouched for by {}; {more}",
                names.join(", ")
            )
        }
        ProposalState::Withdrawn => {
            format!("{by} withdrew the request to become {target}'s device")
        }
        ProposalState::Void => match r.joined {
            Some(first) => {
                format!("{by}'s vouch for {target}'s new device counts with the request {first}")
            }
            None => format!("a request to become {target}'s device did not count"),
        },
    }
}
