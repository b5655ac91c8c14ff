//! The quiet view: noticing absence.
//!
//! A member is *quiet* when their silence is long for them: the time since
//! their last sign of life (a check-in, reply, moment, ask, offer,
//! commitment, RSVP, dish, or being at a gathering) against their own usual
//! rhythm. Someone who checks in daily is missed after a few days; someone
//! who writes once a month is not. People who said they are stepping back
//! are left be.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ids::MemberId;
use crate::membership::Membership;
use crate::time::Timestamp;
use crate::view::CircleView;

const DAY_MS: i64 = 86_400_000;

/// How long a silence must be before the circle is nudged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuietRule {
    /// Quiet when the silence is longer than this many times their usual gap.
    pub factor: f64,
    /// Never quiet before this many days, however regular someone is.
    pub floor_days: f64,
    /// For newcomers (fewer signs of life than `min_history`): quiet after this many days.
    pub newcomer_days: f64,
    /// Signs of life needed before someone has a rhythm of their own.
    pub min_history: usize,
}

impl Default for QuietRule {
    fn default() -> Self {
        Self {
            factor: 2.0,
            floor_days: 4.0,
            newcomer_days: 10.0,
            min_history: 3,
        }
    }
}

/// A member the circle may want to reach out to, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quiet {
    /// Who.
    pub member: MemberId,
    /// Their name.
    pub name: String,
    /// Their last sign of life; none if they have not been heard from since joining.
    pub last_seen: Option<Timestamp>,
    /// Whole days since then (or since joining).
    pub days_silent: i64,
    /// Their usual gap between signs of life, in days, when they have a rhythm.
    pub usual_gap_days: Option<f64>,
    /// In plain words.
    pub reason: String,
}

/// Every moment each member showed up, from the circle's contents.
pub fn signs_of_life(view: &CircleView) -> BTreeMap<MemberId, Vec<Timestamp>> {
    let mut signs: BTreeMap<MemberId, Vec<Timestamp>> = BTreeMap::new();
    let mut add = |m: MemberId, t: Timestamp| signs.entry(m).or_default().push(t);
    for c in view.checkins.values() {
        add(c.author, c.at);
        c.replies.values().for_each(|r| add(r.author, r.at));
    }
    for m in view.moments.values() {
        add(m.author, m.at);
        m.replies.values().for_each(|r| add(r.author, r.at));
    }
    for r in view.requests.values() {
        add(r.author, r.at);
        r.commitments.values().for_each(|c| add(c.author, c.at));
        r.replies.values().for_each(|x| add(x.author, x.at));
        if let Some(d) = &r.done {
            add(r.author, d.at);
        }
    }
    for g in view.gatherings.values() {
        add(g.author, g.at);
        g.rsvps.iter().for_each(|(m, r)| add(*m, r.at));
        g.dishes.values().for_each(|d| add(d.author, d.at));
        // Being there is a sign of life, dated by when the gathering began.
        let began = g
            .starts_zoned()
            .map(|z| Timestamp::from_millis(z.timestamp().as_millisecond()));
        for (m, c) in &g.came {
            add(*m, began.unwrap_or(c.at));
        }
    }
    for s in signs.values_mut() {
        s.sort();
    }
    signs
}

/// Someone the quiet view leaves be, and why, in words.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SteppingBack {
    /// Who.
    pub member: MemberId,
    /// Their name, as the views show it.
    pub name: String,
    /// Until when, if they said.
    pub until: Option<Timestamp>,
    /// What they said.
    pub note: String,
    /// "Lee is stepping back until 12 Dec: family stuff".
    pub reason: String,
}

/// `member`'s stepping back, while it lasts at `now`.
fn away_at<'a>(
    view: &'a CircleView,
    member: &MemberId,
    now: Timestamp,
) -> Option<&'a crate::view::Away> {
    let a = view.members.get(member)?.away.as_ref()?;
    a.until.is_none_or(|u| u > now).then_some(a)
}

/// "Lee is stepping back until Sat 12 Dec: family stuff", the day in `tz`
/// (the reader's).
pub fn away_words(
    view: &CircleView,
    member: &MemberId,
    away: &crate::view::Away,
    tz: &jiff::tz::TimeZone,
) -> String {
    let mut words = format!("{} is stepping back", view.name_of(member));
    if let Some(u) = away.until {
        let day = u.to_jiff().to_zoned_datetime(tz.clone());
        words.push_str(&format!(" until {}", day.strftime("%a %-d %b")));
    }
    if !away.note.is_empty() {
        words.push_str(&format!(": {}", away.note));
    }
    words
}

/// The members stepping back at `now`, whom the quiet view leaves be, in
/// words for a reader in `tz`.
pub fn stepping_back(
    view: &CircleView,
    now: Timestamp,
    tz: &jiff::tz::TimeZone,
) -> Vec<SteppingBack> {
    let in_now = Membership::from_view(view).members;
    view.members
        .keys()
        .filter(|id| in_now.contains(id))
        .filter_map(|id| {
            let a = away_at(view, id, now)?;
            Some(SteppingBack {
                member: *id,
                name: view.name_of(id),
                until: a.until,
                note: a.note.clone(),
                reason: away_words(view, id, a, tz),
            })
        })
        .collect()
}

/// The members who are quiet at `now`, longest silence (for them) first,
/// as `asking` sees them: never themselves.
pub fn quiet_for(
    view: &CircleView,
    now: Timestamp,
    rule: &QuietRule,
    asking: MemberId,
) -> Vec<Quiet> {
    let mut out = quiet(view, now, rule);
    out.retain(|q| q.member != asking);
    out
}

/// The members who are quiet at `now`, longest silence (for them) first.
/// Members no longer in the circle (removed, left), and those stepping
/// back, are not.
pub fn quiet(view: &CircleView, now: Timestamp, rule: &QuietRule) -> Vec<Quiet> {
    let signs = signs_of_life(view);
    let in_now = Membership::from_view(view).members;
    let mut out: Vec<(f64, Quiet)> = Vec::new();
    for (id, member) in &view.members {
        if !in_now.contains(id) || away_at(view, id, now).is_some() {
            continue;
        }
        let times = signs.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let last = times.last().copied();
        // A sign of life "in the future" (a clock running ahead) counts as now.
        let since = last.unwrap_or(member.joined_at).min(now);
        let silent_days = (now.as_millis() - since.as_millis()) as f64 / DAY_MS as f64;
        let usual = usual_gap_days(times, rule);
        let threshold = match usual {
            Some(gap) => (gap * rule.factor).max(rule.floor_days),
            None => rule.newcomer_days,
        };
        if silent_days <= threshold {
            continue;
        }
        let days = silent_days.floor() as i64;
        let name = view.name_of(id);
        let reason = match (usual, last) {
            (Some(gap), _) => format!(
                "{name} usually shows up every {}; it has been {days} days",
                days_phrase(gap)
            ),
            (None, Some(_)) => {
                format!("{name} is still new here and has not been heard from in {days} days")
            }
            (None, None) => {
                format!("{name} joined {days} days ago and has not been heard from yet")
            }
        };
        out.push((
            silent_days / threshold,
            Quiet {
                member: *id,
                name,
                last_seen: last,
                days_silent: days,
                usual_gap_days: usual.map(|g| (g * 10.0).round() / 10.0),
                reason,
            },
        ));
    }
    out.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
    out.into_iter().map(|(_, q)| q).collect()
}

/// The median gap between consecutive signs of life, in days, once there
/// are enough of them to speak of a rhythm.
fn usual_gap_days(times: &[Timestamp], rule: &QuietRule) -> Option<f64> {
    if times.len() < rule.min_history.max(2) {
        return None;
    }
    let mut gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1].as_millis() - w[0].as_millis()) as f64 / DAY_MS as f64)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let mid = gaps.len() / 2;
    Some(if gaps.len().is_multiple_of(2) {
        (gaps[mid - 1] + gaps[mid]) / 2.0
    } else {
        gaps[mid]
    })
}

fn days_phrase(gap: f64) -> String {
    let d = gap.round().max(1.0) as i64;
    if d == 1 {
        "day".into()
    } else {
        format!("{d} days")
    }
}
