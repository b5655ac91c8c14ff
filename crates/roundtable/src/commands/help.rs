//! Asking for and offering help: an ask or an offer, taking one on, and
//! closing the loop with thanks.

use super::*;

/// `roundtable ask`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: roundtable ask \"could someone walk Biscuit?\" --when \"Thursday morning\""
)]
pub(crate) struct AskArgs {
    /// What would help
    #[arg(required = true)]
    text: Vec<String>,
    /// When, in your words
    #[arg(long, default_value = "")]
    when: String,
    /// How many people it needs; more taking it up is a double-up
    #[arg(long, default_value_t = 1, value_name = "N")]
    hands: u32,
}

impl AskArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        cx.perform_and_say(request(RequestKind::Ask, self.text, self.when, self.hands))
    }
}

/// `roundtable offer`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: roundtable offer \"a lift to the station\" --when \"weekday mornings\""
)]
pub(crate) struct OfferArgs {
    /// What you can give
    #[arg(required = true)]
    text: Vec<String>,
    /// When, in your words
    #[arg(long, default_value = "")]
    when: String,
}

impl OfferArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        cx.perform_and_say(request(RequestKind::Offer, self.text, self.when, 1))
    }
}

fn request(kind: RequestKind, text: Vec<String>, when: String, hands: u32) -> (Op, String) {
    let message = match kind {
        RequestKind::Ask => "Your ask is with the circle. Asking is wisdom.",
        RequestKind::Offer => "Your offer is with the circle.",
    };
    (
        Op::Request {
            kind,
            text: text.join(" "),
            when,
            hands,
        },
        message.into(),
    )
}

/// `roundtable commit`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable commit 3fa2 \"I'll bring soup Tuesday\"")]
pub(crate) struct CommitArgs {
    /// The ask's or offer's id, or the start of it
    to: String,
    /// What you will do
    #[arg(required = true)]
    text: Vec<String>,
}

impl CommitArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let view = &cx.view()?;
        let to = resolve_in(view.requests.keys(), &self.to, "ask or offer")?;
        let text = self.text.join(" ");
        let message = format!(
            "Thank you. You took on {}; the circle knows you'll do it.",
            what_it_is(view, to)
        );
        cx.perform_and_say((Op::Commit { to, text }, message))
    }
}

/// `roundtable done`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable done 3fa2 \"thank you Sam, the soup was perfect\"")]
pub(crate) struct DoneArgs {
    /// The ask's or offer's id, or the start of it
    id: String,
    /// Your thanks
    thanks: Vec<String>,
}

impl DoneArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let view = &cx.view()?;
        let request = resolve_in(view.requests.keys(), &self.id, "ask or offer")?;
        let thanks = self.thanks.join(" ");
        let message = format!(
            "Marked {} done. Thank you for closing the loop.",
            what_it_is(view, request)
        );
        cx.perform_and_say((Op::Close { request, thanks }, message))
    }
}
