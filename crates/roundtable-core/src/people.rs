//! How people are named and found: two members may share a name, but
//! nobody is ever ambiguous, and nobody passes for someone else.
//!
//! Every view names a member by [`CircleView::name_of`]: their own name,
//! and where someone else in the circle goes by a name that *looks the
//! same*, the day they joined ("Ana (joined 3 Dec)"), or when that is
//! shared too, the day and who joined first ("Ana (joined 3 Dec, 2nd)"):
//! never an id, which nobody reads. The day is the UTC date, so
//! every device names everyone alike. A lookup by name
//! ([`CircleView::find_member`]) that matches several says so, with all of
//! them, instead of failing. Nobody takes a name someone else goes by
//! ([`CircleView::check_new_name`]); only two people naming themselves
//! alike at once, apart, come to share one.
//!
//! Names are compared as people read them, not as bytes: after Unicode
//! normalisation (NFKC), without invisible characters (zero-width spaces
//! and joiners, the byte-order mark, soft hyphens, bidi controls,
//! variation selectors: Unicode's default-ignorable code points), in any
//! case, and through the look-alike table of Unicode's confusables (the
//! UTS #39 skeleton), so "Alice", "alice", "Alice" with a zero-width space
//! and "Аlice" with a Cyrillic А are all one name to the eye. A name that
//! is or looks like another member's ("ana", "Аlice", "AIice") is refused
//! when someone takes it, on joining or renaming
//! ([`CircleView::check_new_name`]), and told apart like a shared one when
//! two took it at once or a hostile copy wrote it anyway. Every change of
//! name is said to everyone ("Lee now goes by Maya", see
//! [`crate::feed::Entry::Renamed`]).
//!
//! A name is kept and shown cleaned ([`clean_name`]): no controls, no
//! invisible characters, one space between words.

use unicode_normalization::UnicodeNormalization;
use unicode_security::skeleton;

use crate::error::CoreError;
use crate::ids::{MemberId, Resolved, resolve_prefix};
use crate::time::Timestamp;
use crate::view::CircleView;

/// A member's own words about themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// The name the circle calls them by.
    pub name: String,
    /// Pronouns, if they want to share them.
    pub pronouns: String,
    /// "What I'd like you to remember about me."
    pub remember: String,
    /// An unfinished story of their own.
    pub story: String,
}

impl Profile {
    /// A profile with only a name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// A change to some fields of a profile; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileEdit {
    /// New name.
    pub name: Option<String>,
    /// New pronouns.
    pub pronouns: Option<String>,
    /// New "what I'd like you to remember about me".
    pub remember: Option<String>,
    /// New story.
    pub story: Option<String>,
}

/// Whether `c` is invisible: a default-ignorable code point, which the
/// UTS #39 skeleton drops (zero-width space, joiners, BOM, soft hyphen,
/// bidi controls, variation selectors, tags, fillers).
fn invisible(c: char) -> bool {
    let mut buf = [0; 4];
    skeleton(c.encode_utf8(&mut buf)).next().is_none()
}

/// A name as it is kept and shown: white space of any kind made one space
/// between words, controls (see [`crate::plain::is_control`]) and invisible
/// characters removed, except a joiner or variation selector right after
/// a non-ASCII character, where it shapes a script or an emoji ("👩‍👩‍👧").
pub fn clean_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut space = false;
    let mut last: Option<char> = None;
    for c in name.chars() {
        if c.is_whitespace() {
            space = last.is_some();
            continue;
        }
        let shaping = matches!(c, '\u{200c}' | '\u{200d}' | '\u{fe00}'..='\u{fe0f}')
            && !space
            && last.is_some_and(|l| !l.is_ascii());
        if crate::plain::is_control(c) || (invisible(c) && !shaping) {
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
        last = Some(c);
    }
    out
}

/// How a name reads: cleaned, normalised (NFKC), without invisible
/// characters, in lower case.
fn as_read(name: &str) -> String {
    clean_name(name)
        .nfkc()
        .filter(|c| !invisible(*c))
        .collect::<String>()
        .to_lowercase()
}

/// How a name looks: its look-alike skeletons (UTS #39) as written and in
/// lower case, so that "AIice" (a capital i) and "Аlice" (a Cyrillic А)
/// both look like "Alice".
fn looks(name: &str) -> [String; 2] {
    let normal: String = clean_name(name).nfkc().collect();
    [
        skeleton(&normal).collect(),
        skeleton(&normal.to_lowercase()).collect(),
    ]
}

/// Whether two names look the same to a person (see the module docs).
pub fn look_alike(a: &str, b: &str) -> bool {
    let ([a1, a2], [b1, b2]) = (looks(a), looks(b));
    a1 == b1 || a2 == b2 || as_read(a) == as_read(b)
}

fn same_name(a: &str, b: &str) -> bool {
    look_alike(a, b)
}

/// "joined 3 Dec".
fn joined_words(t: Timestamp) -> String {
    format!("joined {}", day_month(t))
}

/// "1st", "2nd", "3rd", "4th", ... "11th", "21st".
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
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
        let name = clean_name(&m.name);
        let twins: Vec<(Timestamp, MemberId)> = self
            .members
            .iter()
            .filter(|(id, other)| *id != member && same_name(&other.name, &name))
            .map(|(id, other)| (other.joined_at, *id))
            .collect();
        if twins.is_empty() {
            return name;
        }
        let day = day_month(m.joined_at);
        let same_day: Vec<&(Timestamp, MemberId)> =
            twins.iter().filter(|(t, _)| day_month(*t) == day).collect();
        if same_day.is_empty() {
            return format!("{name} ({})", joined_words(m.joined_at));
        }
        // Joined the same day too: by who joined first that day (and, for
        // the same instant, by id, which is never shown).
        let before = same_day
            .iter()
            .filter(|(t, id)| (*t, *id) < (m.joined_at, *member))
            .count();
        format!(
            "{name} ({}, {})",
            joined_words(m.joined_at),
            ordinal(before + 1)
        )
    }

    /// A person's mark, which stays with them whatever name they take: a
    /// hue (0 to 359, from their member id) and the first letter of the
    /// name they joined with.
    pub fn mark_of(&self, member: &MemberId) -> (String, u16) {
        let b = member.as_bytes();
        let hue = u16::from_le_bytes([b[0], b[1]]) % 360;
        let first = self.members.get(member).map(|m| {
            m.renames
                .values()
                .min_by_key(|r| (r.order, r.at))
                .map_or(m.name.as_str(), |r| r.from.as_str())
        });
        let initial = first
            .and_then(|n| clean_name(n).chars().next())
            .map_or_else(|| "?".to_owned(), |c| c.to_uppercase().collect());
        (initial, hue)
    }

    /// "Lee now goes by Maya": a change of name as everyone reads it (the
    /// new name told apart as [`CircleView::name_of`] does while it is
    /// still theirs).
    pub fn rename_words(&self, member: &MemberId, r: &crate::view::Rename) -> String {
        let from = crate::plain::one_line(&clean_name(&r.from)).into_owned();
        let current = self.members.get(member).map(|m| clean_name(&m.name));
        let to = if current.as_deref() == Some(clean_name(&r.to).as_str()) {
            self.name_of(member)
        } else {
            crate::plain::one_line(&clean_name(&r.to)).into_owned()
        };
        format!("{from} now goes by {to}")
    }

    /// Whether someone other than `member` goes by `name` here, or by a
    /// name that looks the same.
    pub fn name_taken(&self, name: &str, member: Option<MemberId>) -> bool {
        self.members
            .iter()
            .any(|(id, m)| Some(*id) != member && same_name(&m.name, name))
    }

    /// Checks a name `member` (or someone joining, `None`'s member id
    /// unknown) takes for themselves, and returns it as it will be kept
    /// ([`clean_name`]). A name another member goes by, or one that only
    /// looks like theirs ("ana" or "Аna" with a Cyrillic А next to "Ana"),
    /// is refused: nobody can pass for someone else. (Two people who took
    /// one name at once, apart, are told apart by every view.)
    pub fn check_new_name(
        &self,
        name: &str,
        member: Option<MemberId>,
    ) -> Result<String, CoreError> {
        let cleaned = clean_name(name);
        let taken = self
            .members
            .iter()
            .find(|(id, m)| Some(**id) != member && look_alike(&m.name, &cleaned));
        if let Some((id, m)) = taken {
            let how = if as_read(&m.name) == as_read(&cleaned) {
                "is already the name of"
            } else {
                "looks like the name of"
            };
            return Err(CoreError::NotAllowed(format!(
                "\"{}\" {how} {}, who is in the circle, and the others could not tell you apart; choose another name (a surname's initial, a nickname)",
                crate::plain::one_line(&cleaned),
                self.name_of(id)
            )));
        }
        Ok(cleaned)
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
