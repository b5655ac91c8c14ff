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
use crate::render;

/// Said once someone is in a circle: the recovery key is what brings them
/// back if they lose every device.
pub(crate) const BACKUP_HINT: &str = "If you lose this device, your recovery key brings you back: write it down with `roundtable identity backup`.";

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
pub(crate) struct RecoverArgs {
    /// Restore yourself from your recovery key: type its 24 words when asked (or pipe them in;
    /// they never go on the command line)
    #[arg(long)]
    pub(crate) words: bool,
}

pub(crate) fn identity(backend: &Backend, global: &Global, command: IdentityCommand) -> Result<()> {
    match command {
        IdentityCommand::Backup => backup(backend, global),
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

pub(crate) fn recover(backend: &Backend, global: &Global, args: RecoverArgs) -> Result<()> {
    if !args.words {
        return Err(bad_input(
            "say how to recover: `roundtable recover --words` restores you from your recovery key's 24 words",
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
