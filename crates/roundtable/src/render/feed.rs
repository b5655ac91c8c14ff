//! The circle's life as the feed shows it, in words or JSON.

use super::*;

/// The recent life of the circle, oldest first, newest at the bottom where
/// the eye lands in a terminal. Ordered causally (what someone saw before they
/// wrote comes first), never by whose clock is ahead.
pub(crate) fn feed(view: &CircleView, limit: usize, now: Timestamp, as_json: bool) -> Result<()> {
    let all = timeline(view);
    let items = &all[all.len().saturating_sub(limit)..];
    if as_json {
        let out: Vec<_> = items.iter().map(|e| entry_json(view, e)).collect();
        return json(&serde_json::Value::Array(out));
    }
    if items.iter().all(|e| matches!(e, Entry::Joined(..))) && items.len() <= 1 {
        say!("Nothing here yet. Say how you are: roundtable checkin --mood okay \"a few words\"");
        return Ok(());
    }
    for e in items {
        entry_text(view, e, now);
    }
    Ok(())
}

fn entry_json(view: &CircleView, e: &Entry<'_>) -> serde_json::Value {
    let (v, author) = match e {
        Entry::Joined(id, m) => (serde_json::to_value(m), Some(*id)),
        Entry::Checkin(_, c) => (serde_json::to_value(c), Some(c.author)),
        Entry::Moment(_, m) => (serde_json::to_value(m), Some(m.author)),
        Entry::Request(_, r) => (serde_json::to_value(r), Some(r.author)),
        Entry::Gathering(_, gathering) => (serde_json::to_value(gathering), Some(gathering.author)),
        Entry::SteppingBack(id, a) => (serde_json::to_value(a), Some(*id)),
        Entry::Left(id, l) => (serde_json::to_value(l), Some(*id)),
        Entry::Renamed(id, r) => {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("words".into(), view.rename_words(id, r).into());
            }
            (Ok(v), Some(*id))
        }
        Entry::Proposal(id, p) => {
            let words = roundtable_core::Membership::from_view(view)
                .proposals
                .get(id)
                .map(|p| p.words(view));
            let mut v = serde_json::to_value(p).unwrap_or_default();
            if let (Some(o), Some(w)) = (v.as_object_mut(), words) {
                o.insert("words".into(), json!(w));
            }
            (Ok(v), Some(p.by))
        }
    };
    let mut v = v.unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("kind".into(), json!(e.kind()));
        obj.insert("id".into(), json!(e.id()));
        if let Some(a) = author {
            obj.insert("author_name".into(), json!(view.name_of(&a)));
        }
        for key in ["replies", "commitments"] {
            if let Some(map) = obj.get_mut(key).and_then(|m| m.as_object_mut()) {
                for r in map.values_mut() {
                    let name = r["author"]
                        .as_str()
                        .and_then(|a| a.parse().ok())
                        .map(|a| view.name_of(&a));
                    if let (Some(o), Some(n)) = (r.as_object_mut(), name) {
                        o.insert("author_name".into(), json!(n));
                    }
                }
            }
        }
    }
    v
}

fn entry_text(view: &CircleView, e: &Entry<'_>, now: Timestamp) {
    match e {
        Entry::Joined(id, m) => {
            let by = m
                .invited_by
                .map(|i| format!(", invited by {}", view.name_of(&i)))
                .unwrap_or_default();
            say!(
                "{} joined the circle{by} · {}",
                view.name_of(id),
                ago(m.joined_at, now)
            );
        }
        Entry::Left(id, l) => {
            say!("{} left the circle · {}", view.name_of(id), ago(l.at, now));
        }
        Entry::Renamed(id, r) => {
            say!("{} · {}", view.rename_words(id, r), ago(r.at, now));
        }
        Entry::SteppingBack(id, a) => {
            say!(
                "{} · {}",
                roundtable_core::quiet::away_words(view, id, a, &TimeZone::system()),
                ago(a.since, now)
            );
        }
        Entry::Proposal(id, p) => {
            if let Some(words) = roundtable_core::Membership::from_view(view)
                .proposals
                .get(id)
                .map(|p| p.words(view))
            {
                say!("{words} · {}  [{}]", ago(p.at, now), short(id));
            }
        }
        Entry::Checkin(id, c) => {
            let who = view.name_of(&c.author);
            say!(
                "{who} {} · {}  [{}]",
                c.mood.in_words(),
                ago(c.at, now),
                short(id)
            );
            if !c.note.is_empty() {
                say!("  \"{}\"", c.note);
            }
            reply_lines(view, &c.replies, now);
            if c.mood == Mood::Struggling && c.replies.is_empty() {
                say!(
                    "    {who} could use a word. Reply: roundtable reply {} \"...\"",
                    short(id)
                );
            }
        }
        Entry::Moment(id, m) => {
            say!(
                "{} shared a moment · {}  [{}]",
                view.name_of(&m.author),
                ago(m.at, now),
                short(id)
            );
            say!("  {}", m.text);
            reply_lines(view, &m.replies, now);
        }
        Entry::Request(id, r) => {
            let verb = r.kind.verb();
            let when = if r.when.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.when)
            };
            say!(
                "{} {verb}: {}{when} · {}  [{}]",
                view.name_of(&r.author),
                r.text,
                ago(r.at, now),
                short(id)
            );
            let mut cs: Vec<_> = r.commitments.iter().collect();
            cs.sort_by_key(|(cid, c)| (c.order, **cid));
            for (_, c) in cs {
                say!("    {}: {}", view.name_of(&c.author), c.text);
            }
            reply_lines(view, &r.replies, now);
            match &r.done {
                Some(d) if d.thanks.is_empty() => say!("    done"),
                Some(d) => say!("    done: {}", d.thanks),
                None if r.kind == RequestKind::Ask && r.commitments.is_empty() => {
                    say!(
                        "    Can you help? roundtable commit {} \"I'll ...\"",
                        short(id)
                    );
                }
                None => {}
            }
        }
        Entry::Gathering(id, gathering) => {
            say!(
                "{} proposed {} · {}  [{}]",
                view.name_of(&gathering.author),
                gathering.title,
                starts(gathering),
                short(id)
            );
            if !gathering.place.is_empty() {
                say!("  at {}", gathering.place);
            }
            if !gathering.came.is_empty() {
                let came: Vec<String> = gathering.came.keys().map(|m| view.name_of(m)).collect();
                say!("  came: {}", came.join(", "));
            }
        }
    }
    say!();
}

fn reply_lines(view: &CircleView, replies: &BTreeMap<EntityId, Reply>, now: Timestamp) {
    let mut rs: Vec<_> = replies.iter().collect();
    rs.sort_by_key(|(rid, r)| (r.order, **rid));
    for (id, r) in rs {
        say!(
            "    {}: {} · {}  [{}]",
            view.name_of(&r.author),
            r.text,
            ago(r.at, now),
            short(id)
        );
    }
}
