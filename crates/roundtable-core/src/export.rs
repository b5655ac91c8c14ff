//! A readable archive of a whole circle, for keeping if the software is gone.
//!
//! The archive is plain text a person can trust, read as it is or through
//! any Markdown renderer: everything a member wrote passes through
//! [`escape`], so no raw HTML gets through (`<`, `>` and `&` are written
//! as entities), no escape byte or other control (they show as pictures,
//! see [`crate::plain`]), and no Markdown of theirs acts: a member's text
//! cannot make a heading, a link, an image, emphasis, a list item or a
//! quote, nor start a line of its own that passes for another entry (its
//! further lines are indented under its own item).

use std::fmt::Write as _;

use jiff::tz::TimeZone;

use std::collections::BTreeMap;

use crate::feed::{Entry, timeline};
use crate::ids::{EntityId, MemberId};
use crate::time::Timestamp;
use crate::view::{CircleView, Gathering, Member, Reply, Request, RequestKind};

/// The whole circle as Markdown: who is in it, and everything that was said
/// and done, in order, with every reply. Times are shown in `tz`.
pub fn markdown(view: &CircleView, tz: &TimeZone) -> String {
    let a = Archive {
        view,
        tz,
        membership: crate::membership::Membership::from_view(view),
    };
    let mut out = String::new();
    a.heading(&mut out);
    a.members(&mut out);
    let _ = writeln!(out, "## Life of the circle\n");
    for e in timeline(view) {
        a.entry(&mut out, e);
    }
    out
}

/// What the archive is written from: the circle, and the zone its times
/// are shown in.
struct Archive<'a> {
    view: &'a CircleView,
    tz: &'a TimeZone,
    membership: crate::membership::Membership,
}

impl Archive<'_> {
    fn when(&self, t: Timestamp) -> String {
        t.to_jiff()
            .to_zoned_datetime(self.tz.clone())
            .strftime("%Y-%m-%d %H:%M")
            .to_string()
    }

    fn name(&self, m: &MemberId) -> String {
        line(&self.view.name_of(m))
    }

    /// The circle's name, what it is about, and when it began.
    fn heading(&self, w: &mut String) {
        let c = &self.view.circle;
        let _ = writeln!(w, "# {}\n", line(&c.name));
        if !c.about.is_empty() {
            let _ = writeln!(w, "{}\n", escape(&c.about, ""));
        }
        let _ = writeln!(
            w,
            "Begun {}. Circle id `{}`.\n",
            self.when(c.created_at),
            c.id
        );
    }

    /// Everyone in the circle, in the order they came, as they describe
    /// themselves.
    fn members(&self, w: &mut String) {
        let _ = writeln!(w, "## Members\n");
        let mut people: Vec<_> = self.view.members.iter().collect();
        people.sort_by_key(|(id, m)| (m.order, **id));
        for (id, m) in people {
            self.member(w, id, m);
        }
    }

    fn member(&self, w: &mut String, id: &MemberId, m: &Member) {
        let pronouns = if m.pronouns.is_empty() {
            String::new()
        } else {
            format!(" ({})", line(&m.pronouns))
        };
        let _ = writeln!(w, "### {}{pronouns}\n", self.name(id));
        let _ = writeln!(w, "- joined {}", self.when(m.joined_at));
        if let Some(i) = m.invited_by {
            let _ = writeln!(w, "- invited by {}", self.name(&i));
        }
        let _ = writeln!(w, "- member id `{id}`");
        if let Some(a) = &m.away {
            let until = a
                .until
                .map(|u| format!(" until {}", self.when(u)))
                .unwrap_or_default();
            let _ = writeln!(
                w,
                "- stepping back since {}{until}: {}",
                self.when(a.since),
                escape(&a.note, "  ")
            );
        }
        if !m.remember.is_empty() {
            let _ = writeln!(
                w,
                "\n**What I'd like you to remember about me:** {}",
                escape(&m.remember, "")
            );
        }
        if !m.story.is_empty() {
            let _ = writeln!(w, "\n**My story:** {}", escape(&m.story, ""));
        }
        let _ = writeln!(w);
    }

    /// One line of the circle's life, with what hangs under it.
    fn entry(&self, w: &mut String, e: Entry<'_>) {
        let (view, when) = (self.view, |t| self.when(t));
        match e {
            Entry::Joined(id, m) => {
                let _ = writeln!(
                    w,
                    "- {} — {} joined the circle",
                    when(m.joined_at),
                    self.name(&id)
                );
            }
            Entry::Checkin(_, c) => {
                let note = if c.note.is_empty() {
                    String::new()
                } else {
                    format!(": {}", escape(&c.note, "  "))
                };
                let _ = writeln!(
                    w,
                    "- {} — {} checked in, feeling {}{note}",
                    when(c.at),
                    self.name(&c.author),
                    c.mood
                );
                self.replies(w, &c.replies);
            }
            Entry::Moment(_, m) => {
                let _ = writeln!(
                    w,
                    "- {} — {} shared a moment: {}",
                    when(m.at),
                    self.name(&m.author),
                    escape(&m.text, "  ")
                );
                self.replies(w, &m.replies);
            }
            Entry::Request(_, r) => self.request(w, r),
            Entry::Gathering(_, g) => self.gathering(w, g),
            Entry::Left(m, l) => {
                let _ = writeln!(w, "- {} — {} left the circle", when(l.at), self.name(&m));
            }
            Entry::Renamed(m, r) => {
                let words = view.rename_words(&m, r);
                let _ = writeln!(w, "- {} — {}", when(r.at), escape(&words, "  "));
            }
            Entry::SteppingBack(m, a) => {
                let words = crate::quiet::away_words(view, &m, a, self.tz);
                let _ = writeln!(w, "- {} — {}", when(a.since), escape(&words, "  "));
            }
            Entry::Proposal(id, _) => {
                if let Some(p) = self.membership.proposals.get(&id) {
                    let _ = writeln!(w, "- {} — {}", when(p.at), escape(&p.words(view), "  "));
                }
            }
        }
    }

    /// The replies under an entry, oldest first.
    fn replies(&self, w: &mut String, rs: &BTreeMap<EntityId, Reply>) {
        let mut rs: Vec<_> = rs.iter().collect();
        rs.sort_by_key(|(id, r)| (r.order, **id));
        for (_, r) in rs {
            let _ = writeln!(
                w,
                "  - {} replied ({}): {}",
                self.name(&r.author),
                self.when(r.at),
                escape(&r.text, "    ")
            );
        }
    }

    /// A request or an offer, who said they would, its replies, and its
    /// thanks once done.
    fn request(&self, w: &mut String, r: &Request) {
        let verb = match r.kind {
            RequestKind::Ask => "asked",
            RequestKind::Offer => "offered",
        };
        let wh = if r.when.is_empty() {
            String::new()
        } else {
            format!(" ({})", line(&r.when))
        };
        let _ = writeln!(
            w,
            "- {} — {} {verb}: {}{wh}",
            self.when(r.at),
            self.name(&r.author),
            escape(&r.text, "  ")
        );
        let mut cs: Vec<_> = r.commitments.iter().collect();
        cs.sort_by_key(|(id, c)| (c.order, **id));
        for (_, c) in cs {
            let _ = writeln!(
                w,
                "  - {} ({}): {}",
                self.name(&c.author),
                self.when(c.at),
                escape(&c.text, "    ")
            );
        }
        self.replies(w, &r.replies);
        if let Some(d) = &r.done {
            let thanks = if d.thanks.is_empty() {
                String::new()
            } else {
                format!(" — {}", escape(&d.thanks, "    "))
            };
            let _ = writeln!(w, "  - done {}{thanks}", self.when(d.at));
        }
    }

    /// A gathering: who proposed it, when and where, its hosts, who is
    /// coming, what they bring, and who came.
    fn gathering(&self, w: &mut String, g: &Gathering) {
        let place = if g.place.is_empty() {
            String::new()
        } else {
            format!(" at {}", line(&g.place))
        };
        // As people say it, with its year: "Thu 3 Dec 2026, 19:00".
        let starts = crate::dates::starts_words(g, Timestamp::from_millis(0), self.tz);
        let _ = writeln!(
            w,
            "- {} — {} proposed **{}**, {}{place}",
            self.when(g.at),
            self.name(&g.author),
            line(&g.title),
            line(&starts)
        );
        let hosts: Vec<String> = g.hosts.keys().map(|m| self.name(m)).collect();
        let _ = writeln!(w, "  - hosted by {}", hosts.join(", "));
        for (m, r) in &g.rsvps {
            let note = if r.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", line(&r.note))
            };
            let _ = writeln!(w, "  - {}: {}{note}", self.name(m), r.answer.as_str());
        }
        for d in g.dishes.values() {
            let diet = if d.dietary.is_empty() {
                String::new()
            } else {
                format!(" ({})", line(&d.dietary))
            };
            let _ = writeln!(
                w,
                "  - {} brings {}{diet}",
                self.name(&d.author),
                line(&d.dish)
            );
        }
        if !g.came.is_empty() {
            let came: Vec<String> = g.came.keys().map(|m| self.name(m)).collect();
            let _ = writeln!(w, "  - came: {}", came.join(", "));
        }
    }
}

/// Text a member wrote, as Markdown that shows it exactly as written and
/// does nothing else. Controls show as pictures; `<`, `>` and `&` become
/// entities; every character Markdown acts on (`\\`, `` ` ``, `*`, `_`,
/// `[`, `]`, `#`, `|`, `~`) is escaped, and so is whatever would start a
/// list item, a quote or an underline at the start of a line. A line break
/// stays one (a hard break), and the next line is indented by `indent`, so
/// that it stays inside the item it belongs to; blank lines and the white
/// space that starts or ends a line go.
pub fn escape(text: &str, indent: &str) -> String {
    let text = crate::plain::visible(text);
    let mut out = String::with_capacity(text.len() + 8);
    let lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    for (i, l) in lines.enumerate() {
        if i > 0 {
            out.push_str("\\\n");
            out.push_str(indent);
        }
        escape_line(l, &mut out);
    }
    out
}

/// Text that belongs on one line (a name, a title, a place), escaped as
/// [`escape`] does, its line breaks shown as `␤`.
fn line(text: &str) -> String {
    escape(&crate::plain::one_line(text), "")
}

fn escape_line(l: &str, out: &mut String) {
    // What starts a list item, a quote or a setext underline.
    let digits = l.chars().take_while(char::is_ascii_digit).count();
    let mut chars = l.chars().enumerate().peekable();
    if let Some(&(_, first @ ('-' | '+' | '='))) = chars.peek() {
        out.push('\\');
        out.push(first);
        chars.next();
    }
    for (i, c) in chars {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '.' | ')' if digits > 0 && i == digits => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn a_members_words_stay_words() {
        assert_eq!(escape("soup on Tuesday", "  "), "soup on Tuesday");
        assert_eq!(
            escape("<script>alert(1)</script> & co", ""),
            "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"
        );
        assert_eq!(
            escape("[x](http://e.vil) **b** `c`", ""),
            "\\[x\\](http://e.vil) \\*\\*b\\*\\* \\`c\\`"
        );
        assert_eq!(
            escape(
                "fine\n- 2026-12-01 10:00 — Ana checked in\n# Big\n1. one\n> quote",
                "  "
            ),
            "fine\\\n  \\- 2026-12-01 10:00 — Ana checked in\\\n  \\# Big\\\n  1\\. one\\\n  &gt; quote"
        );
        assert_eq!(escape("a\u{1b}[2Jb\u{202e}", ""), "a␛\\[2Jb‹U+202E›");
        assert_eq!(escape("   indented code\n\n\n", ""), "indented code");
    }
}
