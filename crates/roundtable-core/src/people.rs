//! How people are named and found: two members may share a name, but
//! nobody is ever ambiguous.
//!
//! Every view names a member by [`CircleView::name_of`]: their own name,
//! and where someone else in the circle goes by the same name (any case),
//! the day they joined ("Ana (joined 3 Dec)"), or when that is shared too,
//! the start of their member id. The day is the UTC date, so every device
//! names everyone alike. A lookup by name ([`CircleView::find_member`])
//! that matches several says so, with all of them, instead of failing.

use crate::ids::{MemberId, Resolved, resolve_prefix};
use crate::time::Timestamp;
use crate::view::CircleView;

fn same_name(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// "3 Dec", the UTC day of `t`.
pub(crate) fn day_month(t: Timestamp) -> String {
    let date = jiff::Timestamp::from_millisecond(t.as_millis())
        .unwrap_or_default()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    format!("{} {}", date.day(), date.strftime("%b"))
}

impl CircleView {
    /// A member's name as every view shows it (see the module docs), or
    /// "someone (id)" for who is not (or no longer) in this copy.
    pub fn name_of(&self, member: &MemberId) -> String {
        let Some(m) = self.members.get(member) else {
            return format!("someone ({})", member.fmt_short());
        };
        let twins: Vec<Timestamp> = self
            .members
            .iter()
            .filter(|(id, other)| *id != member && same_name(&other.name, &m.name))
            .map(|(_, other)| other.joined_at)
            .collect();
        if twins.is_empty() {
            return m.name.clone();
        }
        let day = day_month(m.joined_at);
        if twins.iter().all(|t| day_month(*t) != day) {
            format!("{} (joined {day})", m.name)
        } else {
            format!("{} ({})", m.name, &member.to_string()[..6])
        }
    }

    /// Whether someone other than `member` goes by `name` here.
    pub fn name_taken(&self, name: &str, member: Option<MemberId>) -> bool {
        self.members
            .iter()
            .any(|(id, m)| Some(*id) != member && same_name(&m.name, name))
    }

    /// Finds a member by what someone typed: a name as the views show it,
    /// a name (any case; several when several share it), or the start of a
    /// member id.
    pub fn find_member(&self, who: &str) -> Resolved<MemberId> {
        let who = who.trim();
        let shown: Vec<MemberId> = self
            .members
            .keys()
            .filter(|id| same_name(&self.name_of(id), who))
            .copied()
            .collect();
        if let [one] = shown.as_slice() {
            return Resolved::One(*one);
        }
        let named: Vec<MemberId> = self
            .members
            .iter()
            .filter(|(_, m)| same_name(&m.name, who))
            .map(|(id, _)| *id)
            .collect();
        match named.len() {
            0 => resolve_prefix(who, self.members.keys().copied()),
            1 => Resolved::One(named[0]),
            _ => Resolved::Ambiguous(named),
        }
    }
}
