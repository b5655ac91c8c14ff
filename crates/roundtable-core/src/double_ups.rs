//! Double-ups: edits that merged as Automerge merges them, and that
//! collide for people. Two members take up an ask that needs one; a
//! gathering's time is changed on two devices that had not met; a member
//! answers a gathering one way on their phone and another on their
//! laptop; two people bring the same dish to a potluck that asked for one
//! of each; an entry or a profile field edited on two devices before they
//! met.
//!
//! [`find`] is a function of the circle's view alone, so every device
//! holding the same changes finds the same double-ups, whatever order they
//! arrived in. Each is said in words to the people it concerns
//! ([`DoubleUp::says`]), with the edits that settle it
//! ([`DoubleUp::choices`]): ordinary edits (step aside, keep this time,
//! both are welcome) that merge like any other. Once one lands, the
//! double-up is no longer there to find, on any device that has it.
//!
//! Nothing here counts or ranks anyone: a double-up names the people it
//! concerns and what they could do, nothing more.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::tz::TimeZone;
use serde_json::{Value as Json, json};

use crate::entries::EntryKind;

mod words;

use crate::ids::{DeviceId, EntityId, MemberId};
use crate::op::Op;
use crate::time::Timestamp;
use crate::view::{Also, Answer, CircleView, Gathering, RequestKind};
use words::{Reader, answers_words, changed_words, dish_words, short, starts_words, taken_words};

/// A collision in meaning that a merge left.
#[derive(Debug, Clone, PartialEq)]
pub struct DoubleUp {
    /// A short id, the same on every device, for settling it by name
    /// (`roundtable settle ID`).
    pub id: String,
    /// Causal position of what it is about, to order double-ups.
    pub order: u64,
    /// Whom it concerns: who can settle it, and who is told.
    pub people: BTreeSet<MemberId>,
    what: What,
}

/// What collided.
#[derive(Debug, Clone, PartialEq)]
enum What {
    /// An ask taken up by more people than it needs.
    TakenByMore {
        request: EntityId,
        asker: MemberId,
        text: String,
        hands: u32,
        /// Each taker with their newest commitment.
        takers: Vec<(MemberId, EntityId)>,
    },
    /// A field given different values on devices that had not met.
    Changed {
        target: Target,
        field: &'static str,
        /// Each distinct value, the one that stands first, with the
        /// members who wrote it.
        values: Vec<(String, BTreeSet<MemberId>)>,
    },
    /// A member's answers to a gathering, from devices that had not met.
    Answers {
        gathering: EntityId,
        title: String,
        member: MemberId,
        /// Each distinct answer (the one that stands first), with its note.
        answers: Vec<(Answer, String)>,
    },
    /// The same dish brought twice to a potluck that asked for one of each.
    DishTwice {
        gathering: EntityId,
        title: String,
        dish: String,
        /// Each bringer with their dish.
        bringers: Vec<(MemberId, EntityId)>,
    },
}

/// What a changed field belongs to.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Gathering {
        id: EntityId,
        title: String,
        starts_field: bool,
    },
    Entry {
        id: EntityId,
        kind: EntryKind,
        author: MemberId,
    },
    Profile(MemberId),
}

/// One edit that settles a double-up, for the person who may make it.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// What the button or the command says: "Step aside", "Keep Thu 10
    /// Dec, 19:00".
    pub label: String,
    /// The edit.
    pub op: Op,
}

/// Every double-up in `view`, in causal order. Gatherings count while they
/// are still to come (see [`CircleView::upcoming`]); asks until they are
/// done.
pub fn find(view: &CircleView, now: Timestamp) -> Vec<DoubleUp> {
    let owners = owners(view);
    let by = |d: &Option<DeviceId>| d.as_ref().and_then(|d| owners.get(d)).copied();
    // Words of an entry edited on two devices before they met: its
    // author's to choose.
    let entry = |kind, author, also: &Also, order, id: EntityId| {
        changed(
            Target::Entry { id, kind, author },
            also,
            &by,
            order,
            BTreeSet::from([author]),
        )
    };
    let replies = |replies: &BTreeMap<EntityId, crate::view::Reply>| {
        replies
            .iter()
            .flat_map(|(rid, r)| entry(EntryKind::Reply, r.author, &r.also, r.order, *rid))
            .collect::<Vec<_>>()
    };
    let mut out = Vec::new();
    for (id, r) in &view.requests {
        if r.kind == RequestKind::Ask && r.done.is_none() {
            let mut newest: BTreeMap<MemberId, (u64, EntityId)> = BTreeMap::new();
            for (cid, c) in &r.commitments {
                let e = newest.entry(c.author).or_insert((c.order, *cid));
                if (c.order, *cid) > *e {
                    *e = (c.order, *cid);
                }
            }
            if newest.len() > r.hands as usize {
                let takers: Vec<(MemberId, EntityId)> =
                    newest.into_iter().map(|(m, (_, c))| (m, c)).collect();
                let mut people: BTreeSet<MemberId> = takers.iter().map(|(m, _)| *m).collect();
                people.insert(r.author);
                out.push(DoubleUp::new(
                    format!("taken:{id}"),
                    r.order,
                    people,
                    What::TakenByMore {
                        request: *id,
                        asker: r.author,
                        text: r.text.clone(),
                        hands: r.hands,
                        takers,
                    },
                ));
            }
        }
        out.extend(entry(EntryKind::Request, r.author, &r.also, r.order, *id));
        for (cid, c) in &r.commitments {
            out.extend(entry(
                EntryKind::Commitment,
                c.author,
                &c.also,
                c.order,
                *cid,
            ));
        }
        out.extend(replies(&r.replies));
    }
    for (id, c) in &view.checkins {
        out.extend(entry(EntryKind::Checkin, c.author, &c.also, c.order, *id));
        out.extend(replies(&c.replies));
    }
    for (id, m) in &view.moments {
        out.extend(entry(EntryKind::Moment, m.author, &m.also, m.order, *id));
        out.extend(replies(&m.replies));
    }
    for (id, g) in view.upcoming(now) {
        gathering(*id, g, &by, &mut out);
    }
    for (id, m) in &view.members {
        if m.left.is_none() {
            out.extend(changed(
                Target::Profile(*id),
                &m.also,
                &by,
                m.order,
                BTreeSet::from([*id]),
            ));
        }
    }
    out.retain(|d| !d.people.is_empty());
    out.sort_by(|a, b| (a.order, &a.id).cmp(&(b.order, &b.id)));
    out
}

/// The double-ups of one gathering.
fn gathering(
    id: EntityId,
    g: &Gathering,
    by: &impl Fn(&Option<DeviceId>) -> Option<MemberId>,
    out: &mut Vec<DoubleUp>,
) {
    let mut organisers: BTreeSet<MemberId> = g
        .hosts
        .iter()
        .filter(|(_, h)| **h)
        .map(|(m, _)| *m)
        .collect();
    organisers.insert(g.author);
    for field in ["title", "starts", "place"] {
        let one: Also = g
            .also
            .get(field)
            .map(|v| BTreeMap::from([(field.to_owned(), v.clone())]))
            .unwrap_or_default();
        out.extend(changed(
            Target::Gathering {
                id,
                title: g.title.clone(),
                starts_field: field == "starts",
            },
            &one,
            by,
            g.order,
            organisers.clone(),
        ));
    }
    for (member, rsvp) in &g.rsvps {
        let mut answers: Vec<(Answer, String)> = Vec::new();
        for v in &rsvp.versions {
            if !answers.iter().any(|(a, _)| *a == v.value.answer) {
                answers.push((v.value.answer, v.value.note.clone()));
            }
        }
        if answers.len() > 1 {
            out.push(DoubleUp::new(
                format!("answers:{id}:{member}"),
                g.order,
                BTreeSet::from([*member]),
                What::Answers {
                    gathering: id,
                    title: g.title.clone(),
                    member: *member,
                    answers,
                },
            ));
        }
    }
    if g.one_of_each {
        let mut same: BTreeMap<String, Vec<(MemberId, EntityId, String)>> = BTreeMap::new();
        for (did, d) in &g.dishes {
            same.entry(dish_key(&d.dish))
                .or_default()
                .push((d.author, *did, d.dish.clone()));
        }
        for (key, dishes) in same {
            if dishes.len() > 1 {
                out.push(DoubleUp::new(
                    format!("dish:{id}:{key}"),
                    g.order,
                    dishes.iter().map(|(m, _, _)| *m).collect(),
                    What::DishTwice {
                        gathering: id,
                        title: g.title.clone(),
                        dish: dishes[0].2.clone(),
                        bringers: dishes.iter().map(|(m, d, _)| (*m, *d)).collect(),
                    },
                ));
            }
        }
    }
}

/// The same dish, however it is typed: "Bread", " bread ", "BREAD".
fn dish_key(dish: &str) -> String {
    dish.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Fields of `target` that hold different values from devices that had
/// not met; each is a double-up for `people`.
fn changed(
    target: Target,
    also: &Also,
    by: &impl Fn(&Option<DeviceId>) -> Option<MemberId>,
    order: u64,
    people: BTreeSet<MemberId>,
) -> Vec<DoubleUp> {
    let mut out = Vec::new();
    for field in fields(&target) {
        let Some(versions) = also.get(*field) else {
            continue;
        };
        let mut values: Vec<(String, BTreeSet<MemberId>)> = Vec::new();
        for v in versions {
            let Some(text) = v.value.as_str() else {
                continue;
            };
            let who = by(&v.by);
            match values.iter_mut().find(|(t, _)| t == text) {
                Some((_, w)) => w.extend(who),
                None => values.push((text.to_owned(), who.into_iter().collect())),
            }
        }
        if values.len() < 2 {
            continue;
        }
        let key = match &target {
            Target::Gathering { id, .. } | Target::Entry { id, .. } => {
                format!("changed:{id}:{field}")
            }
            Target::Profile(m) => format!("changed:{m}:{field}"),
        };
        let mut people = people.clone();
        if matches!(target, Target::Gathering { .. }) {
            people.extend(values.iter().flat_map(|(_, w)| w.iter().copied()));
        }
        out.push(DoubleUp::new(
            key,
            order,
            people,
            What::Changed {
                target: target.clone(),
                field,
                values,
            },
        ));
    }
    out
}

/// The fields whose two values are a double-up: the ones people read.
fn fields(target: &Target) -> &'static [&'static str] {
    match target {
        Target::Gathering {
            starts_field: true, ..
        } => &["starts"],
        Target::Gathering { .. } => &["title", "place"],
        Target::Entry { kind, .. } => match kind {
            EntryKind::Checkin => &["note"],
            EntryKind::Dish => &["dish"],
            _ => &["text"],
        },
        Target::Profile(_) => &["name", "pronouns", "remember", "story"],
    }
}

/// Which member each device is of.
fn owners(view: &CircleView) -> HashMap<DeviceId, MemberId> {
    view.members
        .iter()
        .flat_map(|(m, rec)| rec.devices.keys().map(move |d| (*d, *m)))
        .collect()
}

impl DoubleUp {
    fn new(key: String, order: u64, people: BTreeSet<MemberId>, what: What) -> Self {
        let hash = blake3::hash(key.as_bytes());
        Self {
            id: hash.to_hex()[..10].to_owned(),
            order,
            people,
            what,
        }
    }

    /// Whether it concerns `member`.
    pub fn concerns(&self, member: MemberId) -> bool {
        self.people.contains(&member)
    }

    /// What it is, as printed in JSON: `taken_by_more`, `changed`,
    /// `answers`, `dish_twice`.
    pub fn kind(&self) -> &'static str {
        match self.what {
            What::TakenByMore { .. } => "taken_by_more",
            What::Changed { .. } => "changed",
            What::Answers { .. } => "answers",
            What::DishTwice { .. } => "dish_twice",
        }
    }

    /// The ask, gathering, entry or member it is about.
    pub fn about(&self) -> String {
        match &self.what {
            What::TakenByMore { request, .. } => request.to_string(),
            What::Changed { target, .. } => match target {
                Target::Gathering { id, .. } | Target::Entry { id, .. } => id.to_string(),
                Target::Profile(m) => m.to_string(),
            },
            What::Answers { gathering, .. } | What::DishTwice { gathering, .. } => {
                gathering.to_string()
            }
        }
    }

    /// Whether it is about `id` (an ask, a gathering, an entry, or
    /// something under them).
    pub fn is_about(&self, id: &str) -> bool {
        self.about() == id
    }

    /// It in words, for `me` (or for anyone, as `show --json` says it),
    /// with times in `tz`.
    pub fn says(
        &self,
        view: &CircleView,
        me: Option<MemberId>,
        now: Timestamp,
        tz: &TimeZone,
    ) -> String {
        let r = Reader { view, me };
        match &self.what {
            What::TakenByMore {
                asker,
                text,
                hands,
                takers,
                ..
            } => taken_words(r, asker, text, *hands, takers),
            What::Changed {
                target,
                field,
                values,
            } => changed_words(r, target, field, values, now, tz),
            What::Answers {
                title,
                member,
                answers,
                ..
            } => answers_words(r, title, member, answers),
            What::DishTwice {
                title,
                dish,
                bringers,
                ..
            } => dish_words(r, title, dish, bringers),
        }
    }

    /// The edits that settle it which `me` may make.
    pub fn choices(&self, me: MemberId, now: Timestamp, tz: &TimeZone) -> Vec<Choice> {
        if !self.concerns(me) {
            return Vec::new();
        }
        match &self.what {
            What::TakenByMore {
                request,
                asker,
                takers,
                ..
            } => taken_choices(me, *request, *asker, takers),
            What::Changed {
                target,
                field,
                values,
            } => values
                .iter()
                .map(|(v, _)| keep_value(target, field, v, now, tz))
                .collect(),
            What::Answers {
                gathering,
                member,
                answers,
                ..
            } if *member == me => answers
                .iter()
                .map(|(a, note)| Choice {
                    label: format!("Keep \"{}\"", a.as_str()),
                    op: Op::Rsvp {
                        gathering: *gathering,
                        answer: *a,
                        note: note.clone(),
                    },
                })
                .collect(),
            What::Answers { .. } => Vec::new(),
            What::DishTwice { bringers, .. } => bringers
                .iter()
                .filter(|(m, _)| *m == me)
                .map(|(_, d)| Choice {
                    label: "Step aside".into(),
                    op: Op::WithdrawEntry { id: *d },
                })
                .collect(),
        }
    }

    /// As `roundtable settle --json` prints it, for `me`: with its words
    /// and the choices `me` has.
    pub fn to_json(&self, view: &CircleView, me: MemberId, now: Timestamp, tz: &TimeZone) -> Json {
        json!({
            "id": self.id,
            "kind": self.kind(),
            "about": self.about(),
            "people": self.people.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "says": self.says(view, Some(me), now, tz),
            "choices": self.choices(me, now, tz).into_iter().enumerate().map(|(i, c)| json!({
                "n": i + 1,
                "label": c.label,
                "op": c.op,
            })).collect::<Vec<_>>(),
        })
    }
}

/// An ask taken up by more than it needs: each of `me`'s takings can step
/// aside, and the asker can welcome them all.
fn taken_choices(
    me: MemberId,
    request: EntityId,
    asker: MemberId,
    takers: &[(MemberId, EntityId)],
) -> Vec<Choice> {
    let mut out: Vec<Choice> = takers
        .iter()
        .filter(|(m, _)| *m == me)
        .map(|(_, c)| Choice {
            label: "Step aside".into(),
            op: Op::WithdrawEntry { id: *c },
        })
        .collect();
    if asker == me {
        let n = u32::try_from(takers.len()).unwrap_or(u32::MAX);
        out.push(Choice {
            label: if n == 2 {
                "Both are welcome".into()
            } else {
                "All are welcome".into()
            },
            op: Op::Hands {
                request,
                hands: n.min(crate::schema::limits::HANDS),
            },
        });
    }
    out
}

/// The edit that keeps `v` as `target`'s `field`.
fn keep_value(target: &Target, field: &str, v: &str, now: Timestamp, tz: &TimeZone) -> Choice {
    let set = |f: &str| (field == f).then(|| v.to_owned());
    let quoted = format!("Keep \"{}\"", short(v));
    let (label, op) = match target {
        Target::Gathering { id, .. } => {
            let label = if field == "starts" {
                format!("Keep {}", starts_words(v, now, tz))
            } else {
                quoted
            };
            let op = Op::EditGathering {
                gathering: *id,
                title: set("title"),
                starts: set("starts"),
                place: set("place"),
            };
            (label, op)
        }
        Target::Entry { id, .. } => (
            quoted,
            Op::EditEntry {
                id: *id,
                text: v.to_owned(),
            },
        ),
        Target::Profile(_) => (
            quoted,
            Op::Profile {
                name: set("name"),
                pronouns: set("pronouns"),
                remember: set("remember"),
                story: set("story"),
            },
        ),
    };
    Choice { label, op }
}

impl DoubleUp {
    /// As `show --json` prints it: the same for everyone, so identical
    /// copies print identical bytes.
    pub fn to_shared_json(&self, view: &CircleView, now: Timestamp, tz: &TimeZone) -> Json {
        json!({
            "id": self.id,
            "kind": self.kind(),
            "about": self.about(),
            "people": self.people.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "says": self.says(view, None, now, tz),
        })
    }
}
