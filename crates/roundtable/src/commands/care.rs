//! Care: check-ins, replies, moments, your profile, stepping away and back,
//! and changing or withdrawing what you wrote. Each turns the words typed
//! into a resolved edit and the words to say once it is done.

use super::*;

/// `roundtable checkin`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable checkin --mood heavy \"long week\"")]
pub(crate) struct CheckinArgs {
    /// thriving, okay, heavy or struggling
    #[arg(long, short = 'm')]
    mood: String,
    /// A few words, if you want to say more
    text: Vec<String>,
}

impl CheckinArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let mood: Mood = self.mood.parse()?;
        let note = self.text.join(" ");
        cx.perform_and_say((Op::Checkin { mood, note }, format!("Checked in: {mood}.")))
    }
}

/// `roundtable reply`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable reply 3fa2 \"you're not carrying this alone\"")]
pub(crate) struct ReplyArgs {
    /// The id, or the start of it
    to: String,
    /// What you want to say
    #[arg(required = true)]
    text: Vec<String>,
}

impl ReplyArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let view = &cx.view()?;
        let repliable = view
            .checkins
            .keys()
            .chain(view.moments.keys())
            .chain(view.requests.keys());
        let to = resolve_in(repliable, &self.to, "check-in, moment, ask or offer")?;
        let text = self.text.join(" ");
        let message = format!("Replied to {}.", what_it_is(view, to));
        cx.perform_and_say((Op::Reply { to, text }, message))
    }
}

/// `roundtable moment`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable moment \"first snow on the allotment\"")]
pub(crate) struct MomentArgs {
    /// What happened
    #[arg(required = true)]
    text: Vec<String>,
}

impl MomentArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        cx.perform_and_say((
            Op::Moment {
                text: self.text.join(" "),
            },
            "Shared with the circle.".into(),
        ))
    }
}

// What a member may change about how the circle knows them.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: roundtable profile --pronouns she/her --remember \"I don't eat fish\""
)]
pub(crate) struct ProfileArgs {
    /// The name the circle calls you
    #[arg(long)]
    name: Option<String>,
    /// Your pronouns
    #[arg(long)]
    pronouns: Option<String>,
    /// What you'd like the circle to remember about you
    #[arg(long)]
    remember: Option<String>,
    /// Your story, in your own words
    #[arg(long)]
    story: Option<String>,
}

impl ProfileArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let a = self;
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
        cx.perform_and_say((op, "Your profile is updated.".into()))
    }
}

/// `roundtable away`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable away --until 2026-12-24 \"family stuff\"")]
pub(crate) struct AwayArgs {
    /// Until when: "2026-12-24", "friday", "next week", "in 3 days"
    #[arg(long, value_name = "DATE")]
    until: Option<String>,
    /// A word for the circle, if you like
    note: Vec<String>,
}

impl AwayArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let until = self
            .until
            .as_deref()
            .map(|u| parse_date(u, cx.now))
            .transpose()?;
        cx.perform_and_say((
            Op::Away {
                until,
                note: self.note.join(" "),
            },
            "Take the time you need. The circle won't count you as quiet.".into(),
        ))
    }
}

/// `roundtable back`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable back")]
pub(crate) struct BackArgs;

impl BackArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        cx.perform_and_say((Op::Back, "Welcome back.".into()))
    }
}

/// `roundtable edit`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable edit 3fa2 \"long week, but the weekend was lovely\"")]
pub(crate) struct EditArgs {
    /// Its id, or the start of it (as `feed` shows it)
    id: String,
    /// The new words
    #[arg(required = true)]
    text: Vec<String>,
}

impl EditArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let ids = roundtable_core::entries::entry_ids(&cx.view()?);
        let id = resolve_in(ids.iter(), &self.id, "entry")?;
        cx.perform_and_say((
            Op::EditEntry {
                id,
                text: self.text.join(" "),
            },
            "Changed. Everyone sees the new words.".into(),
        ))
    }
}

/// `roundtable withdraw`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable withdraw 3fa2")]
pub(crate) struct WithdrawArgs {
    /// Its id, or the start of it (as `feed` shows it)
    id: String,
}

impl WithdrawArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let ids = roundtable_core::entries::entry_ids(&cx.view()?);
        let id = resolve_in(ids.iter(), &self.id, "entry")?;
        cx.perform_and_say((
            Op::WithdrawEntry { id },
            "Withdrawn. Nobody sees it any more.".into(),
        ))
    }
}
