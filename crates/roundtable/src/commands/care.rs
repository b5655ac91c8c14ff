//! Care: check-ins, replies, moments, your profile, stepping away and back,
//! and changing or withdrawing what you wrote. Each turns the words typed
//! into a resolved edit and the words to say once it is done.

use super::*;

// What a member may change about how the circle knows them.
#[derive(Debug, clap::Args)]
pub(crate) struct ProfileArgs {
    /// The name the circle calls you
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Your pronouns
    #[arg(long)]
    pub(crate) pronouns: Option<String>,
    /// What you'd like the circle to remember about you
    #[arg(long)]
    pub(crate) remember: Option<String>,
    /// Your story, in your own words
    #[arg(long)]
    pub(crate) story: Option<String>,
}

pub(super) fn checkin(mood: &str, text: Vec<String>) -> Result<(Op, String)> {
    let mood: Mood = mood.parse()?;
    let note = text.join(" ");
    Ok((Op::Checkin { mood, note }, format!("Checked in: {mood}.")))
}

pub(super) fn reply(view: &CircleView, to: &str, text: Vec<String>) -> Result<(Op, String)> {
    let repliable = view
        .checkins
        .keys()
        .chain(view.moments.keys())
        .chain(view.requests.keys());
    let to = resolve_in(repliable, to, "check-in, moment, ask or offer")?;
    let text = text.join(" ");
    let message = format!("Replied to {}.", what_it_is(view, to));
    Ok((Op::Reply { to, text }, message))
}

pub(super) fn profile(a: ProfileArgs) -> Result<(Op, String)> {
    if a.name.is_none() && a.pronouns.is_none() && a.remember.is_none() && a.story.is_none() {
        return Err(bad_input(
            "nothing to change: give --name, --pronouns, --remember or --story",
        ));
    }
    let op = Op::Profile {
        name: a.name,
        pronouns: a.pronouns,
        remember: a.remember,
        story: a.story,
    };
    Ok((op, "Your profile is updated.".into()))
}

pub(super) fn moment(text: Vec<String>) -> (Op, String) {
    (
        Op::Moment {
            text: text.join(" "),
        },
        "Shared with the circle.".into(),
    )
}

pub(super) fn away(until: Option<&str>, note: Vec<String>, now: Timestamp) -> Result<(Op, String)> {
    let until = until.map(|u| parse_date(u, now)).transpose()?;
    Ok((
        Op::Away {
            until,
            note: note.join(" "),
        },
        "Take the time you need. The circle won't count you as quiet.".into(),
    ))
}

pub(super) fn back() -> (Op, String) {
    (Op::Back, "Welcome back.".into())
}

pub(super) fn edit_entry(view: &CircleView, id: &str, text: Vec<String>) -> Result<(Op, String)> {
    let ids = roundtable_core::entries::entry_ids(view);
    let id = resolve_in(ids.iter(), id, "entry")?;
    Ok((
        Op::EditEntry {
            id,
            text: text.join(" "),
        },
        "Changed. Everyone sees the new words.".into(),
    ))
}

pub(super) fn withdraw_entry(view: &CircleView, id: &str) -> Result<(Op, String)> {
    let ids = roundtable_core::entries::entry_ids(view);
    let id = resolve_in(ids.iter(), id, "entry")?;
    Ok((
        Op::WithdrawEntry { id },
        "Withdrawn. Nobody sees it any more.".into(),
    ))
}
