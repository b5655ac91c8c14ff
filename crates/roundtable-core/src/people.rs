//! How people are named and found: two members may share a name, but
//! nobody is ever ambiguous, and nobody passes for someone else.
//!
//! Every view names a member by [`CircleView::name_of`]: their own name,
//! and where someone else in the circle goes by a name that *looks the
//! same*, the day they joined ("Ana (joined 3 Dec)"), or when that is
//! shared too, the start of their member id. The day is the UTC date, so
//! every device names everyone alike. A lookup by name
//! ([`CircleView::find_member`]) that matches several says so, with all of
//! them, instead of failing.
//!
//! Names are compared as people read them, not as bytes: after Unicode
//! normalisation (NFKC), without invisible characters (zero-width spaces
//! and joiners, the byte-order mark, soft hyphens, bidi controls,
//! variation selectors: Unicode's default-ignorable code points), in any
//! case, and through the look-alike table of Unicode's confusables (the
//! UTS #39 skeleton), so "Alice", "alice", "Alice" with a zero-width space
//! and "Аlice" with a Cyrillic А are all one name to the eye. Two names
//! that are the same as read ("Ana" and "ana") are simply shared; a name
//! that only *looks* like another member's ("Аlice", "AIice") is refused
//! when someone takes it ([`CircleView::check_new_name`]), and told apart
//! like a shared one when a hostile copy wrote it anyway.
//!
//! A name is kept and shown cleaned ([`clean_name`]): no controls, no
//! invisible characters, one space between words.

use unicode_normalization::UnicodeNormalization;
use unicode_security::skeleton;

use crate::error::CoreError;
use crate::ids::{MemberId, Resolved, resolve_prefix};
use crate::time::Timestamp;
use crate::view::CircleView;

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
        let twins: Vec<Timestamp> = self
            .members
            .iter()
            .filter(|(id, other)| *id != member && same_name(&other.name, &name))
            .map(|(_, other)| other.joined_at)
            .collect();
        if twins.is_empty() {
            return name;
        }
        let day = day_month(m.joined_at);
        if twins.iter().all(|t| day_month(*t) != day) {
            format!("{name} (joined {day})")
        } else {
            format!("{name} ({})", &member.to_string()[..6])
        }
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
    /// ([`clean_name`]). A name that only looks like another member's
    /// ("Аlice" with a Cyrillic А next to "Alice") is refused: the others
    /// could not tell them apart. The very same name as read ("ana" next to
    /// "Ana") is someone's own to share, and views tell the two apart.
    pub fn check_new_name(
        &self,
        name: &str,
        member: Option<MemberId>,
    ) -> Result<String, CoreError> {
        let cleaned = clean_name(name);
        let lookalike = self.members.iter().find(|(id, m)| {
            Some(**id) != member
                && look_alike(&m.name, &cleaned)
                && as_read(&m.name) != as_read(&cleaned)
        });
        if let Some((id, _)) = lookalike {
            return Err(CoreError::NotAllowed(format!(
                "the name \"{}\" looks like {}'s, who is already in the circle, and the others could not tell you apart; choose another name",
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
