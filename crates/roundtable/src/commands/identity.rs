//! Your recovery key: `roundtable identity backup` shows the member key as
//! 24 words to write down, and `roundtable recover --words` takes it back
//! on a new device, whose tickets then bring it in as you.

use std::io::{BufRead, IsTerminal};

use anyhow::Result;
use roundtable_core::MemberKey;
use roundtable_core::identity::RECOVERY_WORDS;
use serde_json::json;
use zeroize::Zeroizing;

use crate::backend::Backend;
use crate::bad_input;
use crate::cli::Global;
use crate::commands::Ctx;
use crate::render;

/// Said once someone is in a circle: the recovery key is what brings them
/// back if they lose every device.
pub(crate) const BACKUP_HINT: &str = "If you lose this device, your recovery key brings you back: write it down with `roundtable identity backup`.";

/// `roundtable id`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable id --json")]
pub(crate) struct IdArgs;

impl IdArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let home = cx.backend.home();
        let (me, created) = match home.identity()? {
            Some(me) => (me, false),
            None => {
                let lock = home.lock("roundtable id")?;
                home.ensure_identity(&lock)?
            }
        };
        render::identity(&me, created, cx.global.json)
    }
}

/// What to do with your identity.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum IdentityCommand {
    /// Show your recovery key: 24 words that bring you back, as yourself, on a new device if
    /// you lose every one of yours
    #[command(
        after_help = "Example: roundtable identity backup\nWrite the words on paper, in order, and keep them away from this device. Anyone who has them can act as you."
    )]
    Backup,
}

/// How to recover.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable recover --words
Then ask someone in each of your circles for a ticket and `roundtable join TICKET`: it brings this device in as you.")]
pub(crate) struct RecoverArgs {
    /// Restore yourself from your recovery key: type its 24 words when asked (or pipe them in;
    /// they never go on the command line)
    #[arg(long, conflicts_with = "ticket")]
    words: bool,
    /// Without the words: a ticket to your circle, from someone in it; makes a request for the
    /// others to vouch for
    #[arg(value_name = "TICKET")]
    ticket: Option<String>,
    /// With a ticket: your name in the circle
    #[arg(long = "as", value_name = "NAME", requires = "ticket")]
    name: Option<String>,
}

impl IdentityCommand {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        match self {
            IdentityCommand::Backup => backup(&cx.backend, &cx.global),
        }
    }
}

fn backup(backend: &Backend, global: &Global) -> Result<()> {
    let me = backend.home().identity()?.ok_or_else(|| {
        bad_input(
            "this device has no identity yet: join or start a circle first, and then write down your recovery key",
        )
    })?;
    let words = me.member.to_words();
    if global.json {
        return render::json(&json!({
            "member": me.member.id().to_string(),
            "words": words.split(' ').collect::<Vec<_>>(),
        }));
    }
    say!("Your recovery key (member {}):", me.member.id().fmt_short());
    say!();
    let list: Vec<&str> = words.split(' ').collect();
    for (r, chunk) in list.chunks(4).enumerate() {
        let cells: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(c, w)| format!("{:>2} {w:<10}", r * 4 + c + 1))
            .collect();
        say!("  {}", cells.join(" ").trim_end());
    }
    say!();
    say!(
        "Write these {RECOVERY_WORDS} words on paper, in order, and keep them somewhere safe, away from this device."
    );
    say!(
        "If you lose every device of yours, `roundtable recover --words` on a new one brings you back as yourself."
    );
    say!(
        "Anyone who has them can act as you: never type them into a website or send them in a message."
    );
    Ok(())
}

impl RecoverArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        recover(&cx.backend, &cx.global, self)
    }
}

fn recover(backend: &Backend, global: &Global, args: RecoverArgs) -> Result<()> {
    if let Some(ticket) = &args.ticket {
        return request(backend, global, ticket, args.name.as_deref());
    }
    if !args.words {
        return Err(bad_input(
            "say how to recover: `roundtable recover --words` restores you from your recovery key's 24 words; without them, `roundtable recover TICKET --as NAME` asks your circle to vouch for you",
        ));
    }
    let home = backend.home();
    let lock = home.lock("roundtable recover")?;
    let text = read_words(global)?;
    let member = MemberKey::from_words(&text).map_err(|e| bad_input(e.to_string()))?;
    let (me, _) = home.ensure_identity(&lock)?;
    if me.member.id() != member.id() && !home.circle_ids()?.is_empty() {
        return Err(bad_input(
            "this device already holds circles as someone else; recover on a fresh device (or with another --home)",
        ));
    }
    let me = home.adopt_member_key(&lock, &member)?;
    if global.json {
        return render::json(&json!({
            "member": me.member.id().to_string(),
            "device": me.device.id().to_string(),
        }));
    }
    say!(
        "You are member {} again, on this device ({}).",
        me.member.id().fmt_short(),
        me.device.id().fmt_short()
    );
    say!(
        "Ask someone in each of your circles for a ticket (`roundtable invite`); `roundtable join TICKET` brings this device in as you."
    );
    say!(
        "Then revoke the devices you lost: `roundtable device list`, `roundtable device revoke ID`."
    );
    Ok(())
}

/// The recovery key's words, from the person at the terminal (asked for,
/// line by line until there are enough) or from whatever is piped in.
fn read_words(global: &Global) -> Result<Zeroizing<String>> {
    let stdin = std::io::stdin();
    let asking = stdin.is_terminal() && !global.json;
    if asking {
        say!(
            "Type your {RECOVERY_WORDS} words (in order; several lines are fine), then press Enter:"
        );
    }
    let mut text = Zeroizing::new(String::new());
    let mut line = Zeroizing::new(String::new());
    let mut lock = stdin.lock();
    loop {
        line.clear();
        if lock.read_line(&mut line)? == 0 {
            break;
        }
        text.push_str(&line);
        text.push(' ');
        let words = text
            .split_whitespace()
            .filter(|w| w.chars().any(char::is_alphabetic))
            .count();
        if words >= RECOVERY_WORDS {
            break;
        }
    }
    if text.trim().is_empty() {
        return Err(bad_input(
            "no words came in: type your recovery key's 24 words, or pipe them in",
        ));
    }
    Ok(text)
}

/// A request to be recognised on this device, for the people of the
/// ticket's circle to vouch for: this device's identity (made now on a
/// fresh one) signs it.
fn request(backend: &Backend, global: &Global, ticket: &str, name: Option<&str>) -> Result<()> {
    let ticket =
        roundtable_net::CircleTicket::parse(ticket).map_err(|e| bad_input(e.to_string()))?;
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Err(bad_input(
            "say who you are in the circle: `roundtable recover TICKET --as NAME`",
        ));
    };
    let home = backend.home();
    if home.circle_ids()?.contains(&ticket.circle) {
        return Err(bad_input(
            "this device holds that circle already: there is nothing to recover here",
        ));
    }
    let lock = home.lock("roundtable recover")?;
    let (me, _) = home.ensure_identity(&lock)?;
    let request = roundtable_net::RecoveryRequest::new(ticket.circle, name, me.cert.clone())
        .map_err(bad_input)?;
    let line = request.to_line();
    if global.json {
        return render::json(&json!({
            "request": line,
            "device": me.device.id().to_string(),
            "key": me.member.id().to_string(),
        }));
    }
    say!("Send this to people in your circle, the way you would send a ticket:");
    say!();
    say!("{line}");
    say!();
    say!(
        "Each who checks with you that it is really you (a call, or face to face) vouches with `roundtable vouch REQUEST`. When enough have, your old devices have the circle's wait to refuse it ({}, unless the circle set another); then this device is yours in the circle, and `roundtable join TICKET` (with a fresh ticket, if this one expired) brings the circle here.",
        roundtable_core::membership::wait_words(roundtable_core::membership::RECOVERY_WAIT_HOURS)
    );
    Ok(())
}
