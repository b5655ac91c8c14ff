//! The table every scenario adds rows to, and how values are printed.

use std::fmt::Write as _;
use std::time::Duration;

/// A goal from the issue, checked against a row's ratio.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Goal {
    /// The ratio must be at most this.
    AtMost(f64),
    /// The ratio must be below this.
    Below(f64),
    /// The Roundtable value itself must be at most this (no ratio goal).
    ValueAtMost(f64),
}

impl Goal {
    fn describe(self) -> String {
        match self {
            Goal::AtMost(x) => format!("≤ {x}×"),
            Goal::Below(x) => format!("< {x}×"),
            Goal::ValueAtMost(x) => format!("≤ {x}"),
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// Which scenario ("B1").
    pub(crate) id: &'static str,
    /// What is measured.
    pub(crate) what: String,
    /// Roundtable's value, printed.
    pub(crate) ours: String,
    /// The anchor's value, printed.
    pub(crate) anchor: String,
    /// Roundtable over anchor.
    pub(crate) ratio: Option<f64>,
    /// Roundtable's raw value, for goals on the value itself.
    pub(crate) raw: Option<f64>,
    /// The goal, if the issue sets one for this row.
    pub(crate) goal: Option<Goal>,
    /// Anything else worth knowing (counts, bytes, how it was measured).
    pub(crate) notes: String,
}

impl Row {
    /// A row comparing two values already printed.
    pub(crate) fn new(id: &'static str, what: impl Into<String>) -> Self {
        Self {
            id,
            what: what.into(),
            ours: String::new(),
            anchor: String::new(),
            ratio: None,
            raw: None,
            goal: None,
            notes: String::new(),
        }
    }

    /// Two durations.
    pub(crate) fn times(mut self, ours: Duration, anchor: Duration) -> Self {
        self.ours = ms(ours);
        self.anchor = ms(anchor);
        self.ratio = ratio(ours.as_secs_f64(), anchor.as_secs_f64());
        self.raw = Some(ours.as_secs_f64() * 1e3);
        self
    }

    /// Two byte counts.
    pub(crate) fn bytes(mut self, ours: u64, anchor: u64) -> Self {
        self.ours = bytes(ours);
        self.anchor = bytes(anchor);
        self.ratio = ratio(ours as f64, anchor as f64);
        self.raw = Some(ours as f64);
        self
    }

    /// Two counts.
    pub(crate) fn counts(mut self, ours: u64, anchor: u64) -> Self {
        self.ours = ours.to_string();
        self.anchor = anchor.to_string();
        self.ratio = ratio(ours as f64, anchor as f64);
        self.raw = Some(ours as f64);
        self
    }

    /// Values printed by the caller, with their numbers for the ratio.
    pub(crate) fn values(mut self, ours: (String, f64), anchor: (String, f64)) -> Self {
        self.ours = ours.0;
        self.anchor = anchor.0;
        self.ratio = ratio(ours.1, anchor.1);
        self.raw = Some(ours.1);
        self
    }

    /// The goal the issue sets.
    pub(crate) fn goal(mut self, goal: Goal) -> Self {
        self.goal = Some(goal);
        self
    }

    /// Notes.
    pub(crate) fn note(mut self, notes: impl Into<String>) -> Self {
        self.notes = notes.into();
        self
    }

    fn verdict(&self) -> String {
        let Some(goal) = self.goal else {
            return String::new();
        };
        let met = match goal {
            Goal::AtMost(x) => self.ratio.map(|r| r <= x),
            Goal::Below(x) => self.ratio.map(|r| r < x),
            Goal::ValueAtMost(x) => self.raw.map(|v| v <= x),
        };
        match met {
            Some(true) => format!("{}: met", goal.describe()),
            Some(false) => format!("{}: missed", goal.describe()),
            None => format!("{}: not measured", goal.describe()),
        }
    }
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

/// A duration in milliseconds, with as many decimals as it needs.
pub(crate) fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.1} µs", ms * 1e3)
    }
}

/// A byte count, in B, KB or MB (1 KB = 1,000 bytes).
pub(crate) fn bytes(n: u64) -> String {
    let f = n as f64;
    if f >= 1e6 {
        format!("{:.2} MB", f / 1e6)
    } else if f >= 1e4 {
        format!("{:.1} KB", f / 1e3)
    } else {
        format!("{n} B")
    }
}

fn ratio_text(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 100.0 => format!("{r:.0}×"),
        Some(r) if r >= 10.0 => format!("{r:.1}×"),
        Some(r) => format!("{r:.2}×"),
        None => "–".into(),
    }
}

const HEADERS: [&str; 7] = ["", "what", "Roundtable", "anchor", "ratio", "goal", "notes"];

fn cells(r: &Row) -> [String; 7] {
    [
        r.id.to_owned(),
        r.what.clone(),
        r.ours.clone(),
        r.anchor.clone(),
        ratio_text(r.ratio),
        r.verdict(),
        r.notes.clone(),
    ]
}

/// The rows as Markdown.
pub(crate) fn markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(HEADERS.len()));
    for r in rows {
        let c = cells(r).map(|s| s.replace('|', "\\|"));
        let _ = writeln!(out, "| {} |", c.join(" | "));
    }
    out
}

/// The rows as plain text for a terminal.
pub(crate) fn text(rows: &[Row]) -> String {
    let all: Vec<[String; 7]> = rows.iter().map(cells).collect();
    let mut width = [0usize; 7];
    for (i, h) in HEADERS.iter().enumerate() {
        width[i] = h.chars().count();
    }
    // Notes go last and are not padded.
    for c in &all {
        for i in 0..6 {
            width[i] = width[i].max(c[i].chars().count());
        }
    }
    let line = |c: &[String]| {
        let mut s = String::new();
        for (i, cell) in c.iter().enumerate() {
            if i < 6 {
                let pad = width[i].saturating_sub(cell.chars().count());
                let _ = write!(s, "{cell}{}  ", " ".repeat(pad));
            } else {
                s.push_str(cell);
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = String::new();
    let head: Vec<String> = HEADERS.iter().map(|h| (*h).to_owned()).collect();
    let _ = writeln!(out, "{}", line(&head));
    for c in &all {
        let _ = writeln!(out, "{}", line(c));
    }
    out
}
