//! How things look: plain text for people, JSON for scripts.

use anyhow::Result;
use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use roundtable_core::feed::{Entry, timeline};
use roundtable_core::quiet::{Quiet, SteppingBack};
use roundtable_core::view::{CircleView, Gathering, Reply};
use roundtable_core::{EntityId, Mood, RequestKind, Timestamp, dates};
use roundtable_store::Identity;
use serde_json::json;

mod feed;
pub(crate) mod out;

pub(crate) use feed::feed;

/// Prints a JSON value, keys sorted, with a final newline.
pub(crate) fn json(value: &serde_json::Value) -> Result<()> {
    let v = roundtable_core::view::canonicalize(value.clone());
    out::raw(&format!("{}\n", serde_json::to_string_pretty(&v)?));
    Ok(())
}

/// The confirmation of an edit.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `-q`: say nothing when things go well.
pub(crate) fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `-q` asked for silence on success.
pub(crate) fn silent() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

pub(crate) fn done(as_json: bool, message: &str, id: Option<EntityId>) -> Result<()> {
    if as_json {
        return json(&json!({ "ok": true, "id": id.map(|i| i.to_string()) }));
    }
    if !silent() {
        // Its id, for `edit`, `withdraw`, `reply` and the like.
        match id {
            Some(id) => say!("{message} (id {})", id.fmt_short()),
            None => say!("{message}"),
        }
    }
    Ok(())
}

/// Where the config file is, and what it sets.
pub(crate) fn config(
    path: Option<std::path::PathBuf>,
    c: &crate::config::Config,
    as_json: bool,
) -> Result<()> {
    let shown = path.as_ref().map(|p| p.display().to_string());
    if as_json {
        return json(&json!({ "path": shown, "circle": c.circle, "name": c.name }));
    }
    match &shown {
        Some(p) => say!("Your defaults live in {p}"),
        None => say!("This system has no config directory; set ROUNDTABLE_CONFIG to a file."),
    }
    match &c.circle {
        Some(circle) => {
            say!("  circle = \"{circle}\"   (commands act on it unless --circle says otherwise)")
        }
        None => say!("  circle: not set (add: circle = \"NAME\")"),
    }
    match &c.name {
        Some(name) => {
            say!("  name = \"{name}\"   (new circles call you this unless --as says otherwise)")
        }
        None => say!("  name: not set (add: name = \"YOUR NAME\")"),
    }
    Ok(())
}

pub(crate) fn identity(me: &Identity, created: bool, as_json: bool) -> Result<()> {
    if as_json {
        return json(&json!({
            "device": me.device.id().to_string(),
            "member": me.member.id().to_string(),
        }));
    }
    if created {
        say!("Made a new identity for this device.");
    }
    say!("device  {}", me.device.id());
    say!("member  {}", me.member.id());
    Ok(())
}

pub(crate) fn members(view: &CircleView, as_json: bool) -> Result<()> {
    let membership = roundtable_core::Membership::from_view(view);
    let mut people: Vec<_> = view.members.iter().collect();
    people.sort_by_key(|(id, m)| (m.order, **id));
    if as_json {
        let items: Vec<_> = people
            .iter()
            .map(|(id, m)| {
                json!({
                    "id": id.to_string(),
                    "name": m.name,
                    "shown_as": view.name_of(id),
                    "pronouns": m.pronouns,
                    "remember": m.remember,
                    "story": m.story,
                    "joined_at": m.joined_at,
                    "invited_by": m.invited_by.map(|i| i.to_string()),
                    "devices": m.devices.keys().map(|d| d.to_string()).collect::<Vec<_>>(),
                    "removed": membership.removed.contains(id),
                    "left": membership.left.contains(id),
                    "welcomed_back": membership.returns.get(id),
                    "away": m.away,
                })
            })
            .collect();
        return json(&serde_json::Value::Array(items));
    }
    say!("{}", view.circle.name);
    for (id, m) in people {
        let pronouns = if m.pronouns.is_empty() {
            String::new()
        } else {
            format!(" ({})", m.pronouns)
        };
        let invited = m
            .invited_by
            .map(|i| format!(", invited by {}", view.name_of(&i)))
            .unwrap_or_default();
        say!(
            "  {}{pronouns}  · joined {}{invited}  [{}]",
            view.name_of(id),
            day(m.joined_at),
            id.fmt_short()
        );
        if !m.remember.is_empty() {
            say!("      remember: {}", m.remember);
        }
        if let Some(a) = &m.away {
            say!(
                "      {}",
                roundtable_core::quiet::away_words(view, id, a, &TimeZone::system())
            );
        }
        if membership.removed.contains(id) {
            say!("      removed from the circle by consent");
        }
        if membership.left.contains(id) {
            say!("      left the circle");
        } else if let Some(back) = membership.back_words(view, *id) {
            say!("      {back}");
        }
        for p in membership
            .proposals
            .values()
            .filter(|p| p.target == *id && p.state == roundtable_core::ProposalState::Open)
        {
            let what = match p.kind {
                roundtable_core::ProposalKind::Remove => "removing them",
                roundtable_core::ProposalKind::Welcome => "welcoming them back",
                roundtable_core::ProposalKind::Recover => "recognising a new device as theirs",
            };
            say!(
                "      {} proposed {what} ({} of {} consents; `roundtable remove list`)",
                view.name_of(&p.by),
                p.consents.len(),
                p.needed
            );
        }
    }
    Ok(())
}

pub(crate) fn quiet(quiet: &[Quiet], away: &[SteppingBack], as_json: bool) -> Result<()> {
    if as_json {
        return json(&serde_json::to_value(quiet)?);
    }
    if quiet.is_empty() {
        say!("No one has gone quiet. Everyone has been heard from within their usual rhythm.");
    } else {
        for q in quiet {
            say!("{}.", q.reason);
        }
        say!();
        let names: Vec<&str> = quiet.iter().map(|q| q.name.as_str()).collect();
        say!(
            "Maybe reach out to {}. A word is enough.",
            names.join(" or ")
        );
    }
    if !away.is_empty() {
        say!();
        for a in away {
            say!("Leaving be: {}.", a.reason);
        }
    }
    Ok(())
}

pub(crate) fn show(view: &CircleView, now: Timestamp, as_json: bool) -> Result<()> {
    if as_json {
        // The view, with the double-ups the core finds in it, in words
        // that are the same for everyone.
        let tz = TimeZone::system();
        let mut v = serde_json::to_value(view)?;
        if let Some(o) = v.as_object_mut() {
            let found = roundtable_core::double_ups::find(view, now);
            o.insert(
                "double_ups".into(),
                found
                    .iter()
                    .map(|d| d.to_shared_json(view, now, &tz))
                    .collect(),
            );
        }
        return json(&v);
    }
    say!("{}  ({})", view.circle.name, view.circle.id);
    if !view.circle.about.is_empty() {
        say!("{}", view.circle.about);
    }
    say!("Begun {}", day(view.circle.created_at));
    say!();
    members(view, false)?;
    say!();
    feed(view, usize::MAX, Timestamp::now(), false)
}

pub(crate) fn short(id: &EntityId) -> String {
    id.to_string()[..6].to_owned()
}

/// "Tue 8 Dec", in this computer's time zone.
pub(crate) fn local_day(t: Timestamp) -> String {
    t.to_jiff()
        .to_zoned_datetime(jiff::tz::TimeZone::system())
        .strftime("%a %-d %b")
        .to_string()
}

/// "Tue 8 Dec" in this computer's time zone (with the year when not this year's).
pub(crate) fn day(t: Timestamp) -> String {
    dates::day_words(t, Timestamp::now(), &TimeZone::system())
}

/// "just now", "5 min ago", "3 h ago", "yesterday", "4 days ago", or a date.
/// A size as people read it: 812 bytes, 4.2 KB, 31 MB.
pub(crate) fn bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} bytes"),
        1_000..1_000_000 => format!("{:.1} KB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.1} GB", n as f64 / 1e9),
    }
}

pub(crate) fn ago(t: Timestamp, now: Timestamp) -> String {
    dates::ago(t, now, &TimeZone::system())
}

pub(crate) fn status(s: &roundtable_node::Status) {
    say!("This device  {}", s.device);
    say!("Listening    {}", s.addrs.join(", "));
    if s.circles.is_empty() {
        say!("No circles yet.");
    }
    for c in &s.circles {
        say!();
        say!("{}  ({})", c.name, c.id.fmt_short());
        if let Some(notice) = &c.removed {
            say!("  {notice}");
            continue;
        }
        if c.devices.is_empty() {
            say!("  no other devices yet: invite someone with `roundtable invite`");
        }
        for d in &c.devices {
            let state = match (d.connected, d.has_all_our_changes) {
                (true, true) => "connected, up to date",
                (true, false) => "connected, catching up",
                (false, true) => "not connected, up to date",
                (false, false) => "not connected, still lacks some of our changes",
            };
            let synced = d
                .last_synced
                .map(|t| format!("last synced {}", ago(t, Timestamp::now())))
                .unwrap_or_else(|| "never synced".into());
            let device = if d.device_name.is_empty() {
                d.device.fmt_short()
            } else {
                format!("{}, {}", d.device_name, d.device.fmt_short())
            };
            say!("  {} ({device})  {state}; {synced}", d.name);
            let delayed = d.delayed;
            if delayed.held + delayed.left_for_sync > 0 {
                say!(
                    "    wrote faster than {} edits a second: {} of its edits waited here, {} more came by sync",
                    roundtable_node::EDITS_PER_SECOND,
                    delayed.held,
                    delayed.left_for_sync
                );
            }
        }
        for f in &c.forked {
            let device = if f.device_name.is_empty() {
                f.device.fmt_short()
            } else {
                format!("{}, {}", f.device_name, f.device.fmt_short())
            };
            say!(
                "  ! {} ({device}) made two different edits under one number: the circle kept one. \
                 Unless they copied that device while it ran, it may be stolen or tampered with: \
                 they should revoke it (`roundtable device revoke`)",
                f.name
            );
        }
        for o in &c.other_versions {
            if o.needs_update() {
                say!(
                    "  ! {}'s device needs an update: it runs an older Roundtable (wire version {}), and the two cannot sync until it is updated",
                    o.name,
                    o.speaks
                );
            } else {
                say!(
                    "  ! this device needs an update: {}'s device runs a newer Roundtable (wire version {}), and the two cannot sync until this one is updated",
                    o.name,
                    o.speaks
                );
            }
        }
        for st in &c.stewards {
            say!("  {}", steward_words(st, Timestamp::now()));
        }
    }
}

/// How a steward stands, in words: "kept by Maya's Pi (added by Maya):
/// connected now".
pub(crate) fn steward_words(s: &roundtable_machine::StewardStatus, now: Timestamp) -> String {
    if let Some(by) = &s.removed_by {
        return format!(
            "{} is no longer used: {by} stopped the circle using it",
            s.who()
        );
    }
    format!("kept by {}: {}", s.who(), steward_how(s, now))
}

/// How a steward in use stands, in words: "last reached 5 min ago".
pub(crate) fn steward_how(s: &roundtable_machine::StewardStatus, now: Timestamp) -> String {
    match (&s.stale, s.connected, s.last_reached, &s.error) {
        (Some(stale), ..) => format!("kept less than it had before ({stale}): tell its operator"),
        (None, true, ..) => "connected now".to_owned(),
        (None, false, Some(t), _) => format!("last reached {}", ago(t, now)),
        (None, false, None, Some(e)) => format!("not reached yet: {e}"),
        (None, false, None, None) => "not reached yet".to_owned(),
    }
}

/// Draws a ticket as a QR code in the terminal.
pub(crate) fn qr(text: &str) -> Result<()> {
    let code = qrcode::QrCode::new(text.as_bytes())?;
    let image = code
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .build();
    out::block(&format!("{image}\n"));
    Ok(())
}

/// A gathering's start in this computer's time: "Tue 1 Dec, 19:00", and
/// where it happens in another zone, its own time there too.
pub(crate) fn starts(gathering: &Gathering) -> String {
    dates::starts_words(gathering, Timestamp::now(), &TimeZone::system())
}
