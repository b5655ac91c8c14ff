//! A readable archive of a whole circle, for keeping if the software is gone.

use std::fmt::Write as _;

use jiff::tz::TimeZone;

use crate::feed::{Entry, timeline};
use crate::time::Timestamp;
use crate::view::{CircleView, Reply};

/// The whole circle as Markdown: who is in it, and everything that was said
/// and done, in order, with every reply. Times are shown in `tz`.
pub fn markdown(view: &CircleView, tz: &TimeZone) -> String {
    let when = |t: Timestamp| {
        t.to_jiff()
            .to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%d %H:%M")
            .to_string()
    };
    let name = |m: &crate::ids::MemberId| view.name_of(m);
    let membership = crate::membership::Membership::from_view(view);
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# {}\n", view.circle.name);
    if !view.circle.about.is_empty() {
        let _ = writeln!(w, "{}\n", view.circle.about);
    }
    let _ = writeln!(
        w,
        "Begun {}. Circle id `{}`.\n",
        when(view.circle.created_at),
        view.circle.id
    );

    let _ = writeln!(w, "## Members\n");
    let mut people: Vec<_> = view.members.iter().collect();
    people.sort_by_key(|(id, m)| (m.order, **id));
    for (id, m) in people {
        let pronouns = if m.pronouns.is_empty() {
            String::new()
        } else {
            format!(" ({})", m.pronouns)
        };
        let _ = writeln!(w, "### {}{pronouns}\n", m.name);
        let _ = writeln!(w, "- joined {}", when(m.joined_at));
        if let Some(i) = m.invited_by {
            let _ = writeln!(w, "- invited by {}", name(&i));
        }
        let _ = writeln!(w, "- member id `{id}`");
        if let Some(a) = &m.away {
            let until = a
                .until
                .map(|u| format!(" until {}", when(u)))
                .unwrap_or_default();
            let _ = writeln!(
                w,
                "- stepping back since {}{until}: {}",
                when(a.since),
                a.note
            );
        }
        if !m.remember.is_empty() {
            let _ = writeln!(
                w,
                "\n**What I'd like you to remember about me:** {}",
                m.remember
            );
        }
        if !m.story.is_empty() {
            let _ = writeln!(w, "\n**My story:** {}", m.story);
        }
        let _ = writeln!(w);
    }

    let _ = writeln!(w, "## Life of the circle\n");
    let replies = |w: &mut String, rs: &std::collections::BTreeMap<_, Reply>| {
        let mut rs: Vec<_> = rs.iter().collect();
        rs.sort_by_key(|(id, r)| (r.order, **id));
        for (_, r) in rs {
            let _ = writeln!(
                w,
                "  - {} replied ({}): {}",
                name(&r.author),
                when(r.at),
                r.text
            );
        }
    };
    for e in timeline(view) {
        match e {
            Entry::Joined(id, m) => {
                let _ = writeln!(
                    w,
                    "- {} — {} joined the circle",
                    when(m.joined_at),
                    name(&id)
                );
            }
            Entry::Checkin(_, c) => {
                let note = if c.note.is_empty() {
                    String::new()
                } else {
                    format!(": {}", c.note)
                };
                let _ = writeln!(
                    w,
                    "- {} — {} checked in, feeling {}{note}",
                    when(c.at),
                    name(&c.author),
                    c.mood
                );
                replies(w, &c.replies);
            }
            Entry::Moment(_, m) => {
                let _ = writeln!(
                    w,
                    "- {} — {} shared a moment: {}",
                    when(m.at),
                    name(&m.author),
                    m.text
                );
                replies(w, &m.replies);
            }
            Entry::Request(_, r) => {
                let verb = match r.kind {
                    crate::view::RequestKind::Ask => "asked",
                    crate::view::RequestKind::Offer => "offered",
                };
                let wh = if r.when.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.when)
                };
                let _ = writeln!(
                    w,
                    "- {} — {} {verb}: {}{wh}",
                    when(r.at),
                    name(&r.author),
                    r.text
                );
                let mut cs: Vec<_> = r.commitments.iter().collect();
                cs.sort_by_key(|(id, c)| (c.order, **id));
                for (_, c) in cs {
                    let _ = writeln!(w, "  - {} ({}): {}", name(&c.author), when(c.at), c.text);
                }
                replies(w, &r.replies);
                if let Some(d) = &r.done {
                    let thanks = if d.thanks.is_empty() {
                        String::new()
                    } else {
                        format!(" — {}", d.thanks)
                    };
                    let _ = writeln!(w, "  - done {}{thanks}", when(d.at));
                }
            }
            Entry::Gathering(_, g) => {
                let place = if g.place.is_empty() {
                    String::new()
                } else {
                    format!(" at {}", g.place)
                };
                let _ = writeln!(
                    w,
                    "- {} — {} proposed **{}**, {}{place}",
                    when(g.at),
                    name(&g.author),
                    g.title,
                    g.starts
                );
                let hosts: Vec<String> = g.hosts.keys().map(&name).collect();
                let _ = writeln!(w, "  - hosted by {}", hosts.join(", "));
                for (m, r) in &g.rsvps {
                    let note = if r.note.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", r.note)
                    };
                    let _ = writeln!(w, "  - {}: {}{note}", name(m), r.answer.as_str());
                }
                for d in g.dishes.values() {
                    let diet = if d.dietary.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", d.dietary)
                    };
                    let _ = writeln!(w, "  - {} brings {}{diet}", name(&d.author), d.dish);
                }
                if !g.came.is_empty() {
                    let came: Vec<String> = g.came.keys().map(&name).collect();
                    let _ = writeln!(w, "  - came: {}", came.join(", "));
                }
            }
            Entry::Left(m, l) => {
                let _ = writeln!(w, "- {} — {} left the circle", when(l.at), name(&m));
            }
            Entry::SteppingBack(m, a) => {
                let words = crate::quiet::away_words(view, &m, a, tz);
                let _ = writeln!(w, "- {} — {words}", when(a.since));
            }
            Entry::Proposal(id, _) => {
                if let Some(p) = membership.proposals.get(&id) {
                    let _ = writeln!(w, "- {} — {}", when(p.at), p.words(view));
                }
            }
        }
    }
    out
}
