//! A double-up in words, one function per kind, for whoever reads it
//! ("you" is them), and the small helpers sentences share.

use std::collections::BTreeSet;

use jiff::tz::TimeZone;

use super::Target;
use crate::ids::{EntityId, MemberId};
use crate::time::Timestamp;
use crate::view::{Answer, CircleView};

/// Who reads a double-up's words: "you" is them.
#[derive(Clone, Copy)]
pub(super) struct Reader<'a> {
    pub(super) view: &'a CircleView,
    pub(super) me: Option<MemberId>,
}

impl Reader<'_> {
    fn is_me(&self, m: &MemberId) -> bool {
        Some(*m) == self.me
    }

    /// "you", or the name the circle tells them apart by.
    fn name(&self, m: &MemberId) -> String {
        if self.is_me(m) {
            "you".to_owned()
        } else {
            self.view.name_of(m)
        }
    }
}

/// An ask taken up by more people than it needs, in words.
pub(super) fn taken_words(
    r: Reader<'_>,
    asker: &MemberId,
    text: &str,
    hands: u32,
    takers: &[(MemberId, EntityId)],
) -> String {
    let who: Vec<MemberId> = takers.iter().map(|(m, _)| *m).collect();
    let all = if who.len() == 2 { "both" } else { "all" };
    let whose = if r.is_me(asker) {
        "your ask".to_owned()
    } else {
        format!("{}'s ask", r.view.name_of(asker))
    };
    let needs = match hands {
        1 => "one person".to_owned(),
        n => format!("{n} people"),
    };
    let extra = who.len() - hands as usize;
    let aside = if extra == 1 {
        "One of you can step aside".to_owned()
    } else {
        format!("{extra} of you can step aside")
    };
    let then = if who.iter().any(|m| r.is_me(m)) {
        if r.is_me(asker) {
            format!(" {aside}.")
        } else {
            format!(
                " {aside}, or {} can say all are welcome.",
                r.view.name_of(asker)
            )
        }
    } else if r.is_me(asker) {
        let are = if who.len() == 2 {
            "both are"
        } else {
            "all are"
        };
        format!(" If {are} welcome, say so; else one of them can step aside.")
    } else {
        String::new()
    };
    capital(&format!(
        "{} {all} took up {whose} \"{}\", which needs {needs}.{then}",
        names(&who, &|m| r.name(m)),
        short(text),
    ))
}

/// A field given different values apart, in words.
pub(super) fn changed_words(
    r: Reader<'_>,
    target: &Target,
    field: &str,
    values: &[(String, BTreeSet<MemberId>)],
    now: Timestamp,
    tz: &TimeZone,
) -> String {
    let shown = |v: &str| match target {
        Target::Gathering {
            starts_field: true, ..
        } => starts_words(v, now, tz),
        _ => format!("\"{}\"", short(v)),
    };
    let options: Vec<String> = values
        .iter()
        .map(|(v, who)| {
            let who: Vec<MemberId> = who.iter().copied().collect();
            if who.is_empty() || matches!(target, Target::Profile(_) | Target::Entry { .. }) {
                shown(v)
            } else {
                format!("{} ({})", shown(v), names(&who, &|m| r.name(m)))
            }
        })
        .collect();
    let whose = |m: &MemberId, what: &str| {
        if r.is_me(m) {
            format!("Your {what}")
        } else {
            format!("{}'s {what}", r.view.name_of(m))
        }
    };
    let (thing, devices) = match target {
        Target::Gathering { title, .. } => (
            format!("The {} of \"{}\"", field_words(field), short(title)),
            "on devices that had not met",
        ),
        Target::Entry { kind, author, .. } => {
            (whose(author, kind.noun()), "on two devices before they met")
        }
        Target::Profile(m) => (
            whose(m, field_words(field)),
            "on two devices before they met",
        ),
    };
    format!(
        "{thing} was changed {devices}: {}. Keep one.",
        or_list(&options)
    )
}

/// One member's answers that differ across their devices, in words.
pub(super) fn answers_words(
    r: Reader<'_>,
    title: &str,
    member: &MemberId,
    answers: &[(Answer, String)],
) -> String {
    let words: Vec<String> = answers.iter().map(|(a, _)| a.as_str().to_owned()).collect();
    let who = if r.is_me(member) {
        "You".to_owned()
    } else {
        r.view.name_of(member)
    };
    format!(
        "{who} answered \"{}\" differently on devices that had not met: {}. Which stands?",
        short(title),
        or_list(&words)
    )
}

/// The same dish twice at a one-of-each potluck, in words.
pub(super) fn dish_words(
    r: Reader<'_>,
    title: &str,
    dish: &str,
    bringers: &[(MemberId, EntityId)],
) -> String {
    let who: Vec<MemberId> = bringers
        .iter()
        .map(|(m, _)| *m)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let dish = short(dish);
    let title = short(title);
    match who.as_slice() {
        [one] if r.is_me(one) => format!(
            "You said twice you'd bring \"{dish}\" to \"{title}\", which asks for one of each. Take one back."
        ),
        [one] => format!(
            "{} said twice they'd bring \"{dish}\" to \"{title}\", which asks for one of each.",
            r.view.name_of(one)
        ),
        _ => {
            let then = if who.iter().any(|m| r.is_me(m)) {
                " One of you can bring something else."
            } else {
                ""
            };
            format!(
                "{} are {} bringing \"{dish}\" to \"{title}\", which asks for one of each.{then}",
                capital(&names(&who, &|m| r.name(m))),
                if who.len() == 2 { "both" } else { "all" }
            )
        }
    }
}

/// A field's name in words.
pub(super) fn field_words(field: &str) -> &str {
    match field {
        "starts" => "time",
        "remember" => "\"what I'd like you to remember\"",
        other => other,
    }
}

/// A start as people read it, or the text as written when it does not
/// parse.
pub(super) fn starts_words(v: &str, now: Timestamp, tz: &TimeZone) -> String {
    match v.parse::<jiff::ZonedDateTime>() {
        Ok(z) => crate::dates::words(
            Timestamp::from_millis(z.timestamp().as_millisecond()),
            now,
            tz,
        ),
        Err(_) => format!("\"{}\"", short(v)),
    }
}

/// At most a line of someone's words.
pub(super) fn short(text: &str) -> String {
    crate::plain::quoted(text, 60)
}

/// "Maya and Sam", "you, Lee and Sam": the reader first, the others by
/// name, so every device says it in the same order.
pub(super) fn names(who: &[MemberId], name: &impl Fn(&MemberId) -> String) -> String {
    let mut all: Vec<String> = who.iter().map(name).collect();
    all.sort_by_key(|n| (n != "you", n.to_lowercase()));
    match all.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// "a or b", "a, b or c".
pub(super) fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// The first letter as a capital.
pub(super) fn capital(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
