//! While you were away: what arrived since a person last looked, told in
//! words, what concerns them first.
//!
//! Each device remembers, for itself, where its person last looked: the
//! circle's heads then, and when ([`Seen`]). It is kept beside the circle,
//! never in it, so nobody else ever learns it. What arrived since is the
//! difference between the circle read at those heads and as it stands,
//! whatever order the changes came in and by whatever path (a sync, a
//! steward): [`account`] compares the two views, once per look.
//!
//! The account is words, short, and nothing in it counts or ranks anyone.

use std::collections::BTreeMap;

use automerge::{ChangeHash, ReadDoc};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::circle::Circle;
use crate::dates;
use crate::error::CoreError;
use crate::ids::{EntityId, MemberId};
use crate::mood::Mood;
use crate::time::Timestamp;
use crate::view::{CircleView, Reply, RequestKind};

/// The most lines an account says; the feed has the rest.
pub const MAX_LINES: usize = 12;

/// Where this device's person last looked at a circle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// The circle's heads then.
    pub heads: Vec<ChangeHash>,
    /// When (display only).
    pub at: Timestamp,
}

impl Seen {
    /// Looking now at `circle`.
    pub fn now(circle: &Circle, at: Timestamp) -> Self {
        Self {
            heads: circle.heads(),
            at,
        }
    }

    /// As kept in its file.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads its file; anything else is no mark at all (the next look
    /// sets one).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > 64 * 1024 {
            return None;
        }
        let seen: Seen = serde_json::from_slice(bytes).ok()?;
        (seen.heads.len() <= 1024).then_some(seen)
    }
}

impl Circle {
    /// The circle as it stood at `heads`, if this copy holds all of them
    /// (a copy repaired since may not).
    pub fn view_at(&self, heads: &[ChangeHash]) -> Result<CircleView, CoreError> {
        if heads
            .iter()
            .any(|h| self.doc().get_change_by_hash(h).is_none())
        {
            return Err(CoreError::Invalid(
                "this copy no longer holds where you last looked".into(),
            ));
        }
        Ok(CircleView::read(&self.doc().fork_at(heads)?))
    }
}

/// One thing that happened, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    /// What happened.
    pub text: String,
    /// Whether it concerns the reader: a reply to them, help with their
    /// ask, a change to a gathering they answered or host.
    pub yours: bool,
    /// What it is about, to open it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub about: Option<About>,
}

/// What a line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum About {
    /// A check-in, moment, ask or offer.
    Entry(EntityId),
    /// A gathering.
    Gathering(EntityId),
}

/// What happened while the reader was away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// "since Friday 27 Nov".
    pub since: String,
    /// What happened, what concerns the reader first, at most
    /// [`MAX_LINES`].
    pub lines: Vec<Line>,
    /// Whether there was more than the lines say.
    pub more: bool,
}

impl Account {
    /// The heading: "While you were away (since Fri 27 Nov)".
    pub fn heading(&self) -> String {
        format!("While you were away ({})", self.since)
    }
}

/// What arrived between `before` (the circle where `me` last looked, at
/// `seen`) and `after`, told to `me`; `None` when nothing did that
/// someone else wrote.
pub fn account(
    before: &CircleView,
    after: &CircleView,
    me: MemberId,
    seen: Timestamp,
    now: Timestamp,
    tz: &TimeZone,
) -> Option<Account> {
    let mut t = Telling {
        before,
        after,
        me,
        now,
        tz,
        yours: Vec::new(),
        others: Vec::new(),
    };
    t.replies_and_help();
    t.gatherings();
    t.asks();
    t.comings_and_goings();
    t.news();
    let Telling {
        mut yours,
        mut others,
        ..
    } = t;
    if yours.is_empty() && others.is_empty() {
        return None;
    }
    yours.sort_by_key(|(o, _)| *o);
    others.sort_by_key(|(o, _)| *o);
    let all: Vec<Line> = yours
        .into_iter()
        .map(|(_, l)| l)
        .chain(others.into_iter().map(|(_, l)| l))
        .collect();
    let more = all.len() > MAX_LINES;
    Some(Account {
        since: format!("since {}", dates::day_words(seen, now, tz)),
        lines: all.into_iter().take(MAX_LINES).collect(),
        more,
    })
}

/// An account being told: the two circles, the reader, and the lines so
/// far, each with its kind and causal position to order by.
struct Telling<'a> {
    before: &'a CircleView,
    after: &'a CircleView,
    me: MemberId,
    now: Timestamp,
    tz: &'a TimeZone,
    /// What concerns the reader, by kind (replies to them, help with what
    /// they asked, gatherings of theirs) and then in causal order.
    yours: Vec<((u8, u64), Line)>,
    /// Everything else, by kind (asks, who came and went, news) and then
    /// in causal order.
    others: Vec<((u8, u64), Line)>,
}

impl Telling<'_> {
    /// What concerns the reader of what they wrote: replies to it, and help
    /// with their asks and offers.
    fn replies_and_help(&mut self) {
        let (before, after, me) = (self.before, self.after, self.me);
        let name = |m: &MemberId| after.name_of(m);
        // Replies to what I wrote.
        let replies = |parent: EntityId,
                       old: Option<&BTreeMap<EntityId, Reply>>,
                       new: &BTreeMap<EntityId, Reply>| {
            new.iter()
                .filter(|(rid, r)| r.author != me && old.is_none_or(|o| !o.contains_key(rid)))
                .map(|(_, r)| {
                    (
                        (0, r.order),
                        line(
                            format!("{} replied to you: \"{}\"", name(&r.author), short(&r.text)),
                            Some(About::Entry(parent)),
                            true,
                        ),
                    )
                })
                .collect::<Vec<_>>()
        };
        for (id, c) in after.checkins.iter().filter(|(_, c)| c.author == me) {
            self.yours.extend(replies(
                *id,
                before.checkins.get(id).map(|c| &c.replies),
                &c.replies,
            ));
        }
        for (id, m) in after.moments.iter().filter(|(_, m)| m.author == me) {
            self.yours.extend(replies(
                *id,
                before.moments.get(id).map(|m| &m.replies),
                &m.replies,
            ));
        }
        for (id, r) in after.requests.iter().filter(|(_, r)| r.author == me) {
            self.yours.extend(replies(
                *id,
                before.requests.get(id).map(|r| &r.replies),
                &r.replies,
            ));
            let old = before.requests.get(id);
            for (cid, c) in &r.commitments {
                if c.author != me && old.is_none_or(|o| !o.commitments.contains_key(cid)) {
                    let what = match r.kind {
                        RequestKind::Ask => "will help with your ask",
                        RequestKind::Offer => "takes up your offer",
                    };
                    self.yours.push((
                        (1, c.order),
                        line(
                            format!(
                                "{} {what} \"{}\": \"{}\"",
                                name(&c.author),
                                short(&r.text),
                                short(&c.text)
                            ),
                            Some(About::Entry(*id)),
                            true,
                        ),
                    ));
                }
            }
        }
    }

    /// Gatherings: new ones, and changes to those the reader answered or
    /// hosts (theirs).
    fn gatherings(&mut self) {
        let (before, after, me, now, tz) = (self.before, self.after, self.me, self.now, self.tz);
        let name = |m: &MemberId| after.name_of(m);
        // Gatherings: new ones, and changes to those I answered or host.
        for (id, g) in &after.gatherings {
            if g.author == me {
                continue;
            }
            let when = dates::starts_words(g, now, tz);
            let Some(old) = before.gatherings.get(id) else {
                self.others.push((
                    (0, g.order),
                    line(
                        format!(
                            "{} proposed \"{}\" for {when}",
                            name(&g.author),
                            short(&g.title)
                        ),
                        Some(About::Gathering(*id)),
                        false,
                    ),
                ));
                continue;
            };
            let mine = g.rsvps.contains_key(&me) || g.hosts.get(&me).copied().unwrap_or(false);
            let mut changed = Vec::new();
            if old.starts != g.starts {
                changed.push(format!("moved to {when}"));
            }
            if old.place != g.place && !g.place.is_empty() {
                changed.push(format!("is now at {}", short(&g.place)));
            }
            if !changed.is_empty() {
                let text = format!("\"{}\" {}", short(&g.title), changed.join(" and "));
                let l = line(text, Some(About::Gathering(*id)), mine);
                if mine {
                    self.yours.push(((2, g.order), l))
                } else {
                    self.others.push(((0, g.order), l))
                }
            }
        }
    }

    /// Asks of others one by one, and what became of those the reader
    /// took up (theirs).
    fn asks(&mut self) {
        let (before, after, me) = (self.before, self.after, self.me);
        let name = |m: &MemberId| after.name_of(m);
        // Asks and offers of others: new asks one by one (someone needs a
        // hand), and what became of those the reader took up.
        for (id, r) in after.requests.iter().filter(|(_, r)| r.author != me) {
            let old = before.requests.get(id);
            let took_up = r.commitments.values().any(|c| c.author == me);
            if took_up {
                if r.done.is_some() && old.is_some_and(|o| o.done.is_none()) {
                    self.yours.push((
                        (1, r.order),
                        line(
                            format!(
                                "{}'s {} \"{}\", which you took up, is done",
                                name(&r.author),
                                r.kind.as_str(),
                                short(&r.text)
                            ),
                            Some(About::Entry(*id)),
                            true,
                        ),
                    ));
                }
                for (rid, reply) in &r.replies {
                    if reply.author != me && old.is_none_or(|o| !o.replies.contains_key(rid)) {
                        self.yours.push((
                            (1, reply.order),
                            line(
                                format!(
                                    "{} replied about \"{}\", which you took up: \"{}\"",
                                    name(&reply.author),
                                    short(&r.text),
                                    short(&reply.text)
                                ),
                                Some(About::Entry(*id)),
                                true,
                            ),
                        ));
                    }
                }
            }
            if old.is_none() && r.kind == RequestKind::Ask && r.done.is_none() {
                self.others.push((
                    (0, r.order),
                    line(
                        format!(
                            "{} asked for a hand: \"{}\"",
                            name(&r.author),
                            short(&r.text)
                        ),
                        Some(About::Entry(*id)),
                        false,
                    ),
                ));
            }
        }
    }

    /// Who joined, stepped back or left.
    fn comings_and_goings(&mut self) {
        let (before, after, me, now, tz) = (self.before, self.after, self.me, self.now, self.tz);
        let name = |m: &MemberId| after.name_of(m);
        // Who joined, stepped back or left.
        for (id, m) in &after.members {
            if *id == me {
                continue;
            }
            let old = before.members.get(id);
            if old.is_none() {
                self.others.push((
                    (1, m.order),
                    line(format!("{} joined the circle", name(id)), None, false),
                ));
            }
            if let Some(away) = &m.away
                && old.is_none_or(|o| o.away.as_ref().map(|a| a.since) != Some(away.since))
            {
                let until = away
                    .until
                    .map(|u| format!(" until {}", dates::day_words(u, now, tz)))
                    .unwrap_or_default();
                self.others.push((
                    (1, away.order),
                    line(format!("{} is stepping back{until}", name(id)), None, false),
                ));
            }
            if let Some(left) = &m.left
                && old.is_some_and(|o| o.left.is_none())
            {
                self.others.push((
                    (1, left.order),
                    line(format!("{} left the circle", name(id)), None, false),
                ));
            }
        }
    }

    /// Everyone else's news, a line each.
    fn news(&mut self) {
        let (before, after, me) = (self.before, self.after, self.me);
        let name = |m: &MemberId| after.name_of(m);
        // Everyone else's news, a line each: how they are (in their words
        // where they struggle), moments and offers.
        let mut news: BTreeMap<MemberId, News> = BTreeMap::new();
        for (id, c) in after
            .checkins
            .iter()
            .filter(|(id, c)| c.author != me && !before.checkins.contains_key(id))
        {
            let n = news.entry(c.author).or_default();
            n.checkins += 1;
            n.see(c.order, *id);
            if matches!(c.mood, Mood::Heavy | Mood::Struggling) {
                n.hard = Some(c.mood);
            }
        }
        for (id, m) in after
            .moments
            .iter()
            .filter(|(id, m)| m.author != me && !before.moments.contains_key(id))
        {
            let n = news.entry(m.author).or_default();
            n.moments.push((m.order, short(&m.text)));
            n.see(m.order, *id);
        }
        for (id, r) in after.requests.iter().filter(|(id, r)| {
            r.author != me && r.kind == RequestKind::Offer && !before.requests.contains_key(id)
        }) {
            let n = news.entry(r.author).or_default();
            n.offers.push((r.order, short(&r.text)));
            n.see(r.order, *id);
        }
        for (m, n) in news {
            self.others.push((
                (2, n.order),
                line(n.words(&name(&m)), n.about.map(About::Entry), false),
            ));
        }
    }
}

/// A line of an account.
fn line(text: String, about: Option<About>, yours: bool) -> Line {
    Line { text, yours, about }
}

/// One person's news since the reader last looked.
#[derive(Default)]
struct News {
    checkins: usize,
    hard: Option<Mood>,
    moments: Vec<(u64, String)>,
    offers: Vec<(u64, String)>,
    /// The newest of it, to order by and to open.
    order: u64,
    about: Option<EntityId>,
}

impl News {
    fn see(&mut self, order: u64, id: EntityId) {
        if self.about.is_none() || order >= self.order {
            self.order = order;
            self.about = Some(id);
        }
    }

    /// "Sam checked in twice, and is struggling; shared a moment: "first
    /// snow"; offered "a lift" and more".
    fn words(&self, name: &str) -> String {
        let mut parts = Vec::new();
        if self.checkins > 0 {
            let times = match self.checkins {
                1 => "",
                2 => " twice",
                _ => " a few times",
            };
            parts.push(match self.hard {
                Some(mood) => format!("checked in{times}, and {}", mood.in_words()),
                None => format!("checked in{times}"),
            });
        }
        // The newest of them, in their words.
        let some = |what: &str, items: &[(u64, String)]| {
            let (_, newest) = items.iter().max()?;
            Some(if items.len() == 1 {
                format!("{what} \"{newest}\"")
            } else {
                format!("{what} \"{newest}\" and more")
            })
        };
        parts.extend(some(
            if self.moments.len() == 1 {
                "shared a moment:"
            } else {
                "shared moments, among them"
            },
            &self.moments,
        ));
        parts.extend(some("offered", &self.offers));
        format!("{name} {}", parts.join("; "))
    }
}

/// At most a line of someone's words.
fn short(text: &str) -> String {
    crate::plain::quoted(text, 80)
}
