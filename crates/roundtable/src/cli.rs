//! The command line: what people type, as clap sees it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands::care::ProfileArgs;
use crate::commands::circles::CircleCommand;
use crate::commands::gatherings::GatheringCommand;
use crate::commands::identity::{IdentityCommand, RecoverArgs};
use crate::commands::people::{DeviceCommand, InviteCommand, RemoveCommand};
use crate::commands::steward::StewardCommand;

/// Roundtable: a home for a small circle of people who look after each other.
///
/// Each member's device keeps the whole circle; nothing lives on a server.
/// Start with `roundtable circle create "Tuesday Supper" --as Maya`.
#[derive(Debug, Parser)]
#[command(
    name = "roundtable",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct Global {
    /// Where this device keeps its circles and keys [default: the platform's data directory]
    #[arg(long, global = true, env = "ROUNDTABLE_HOME", value_name = "DIR")]
    pub(crate) home: Option<PathBuf>,

    /// Which circle: its name (any case) or the start of its id (needed only when you are in
    /// several) [default: `circle` in the config file, see `roundtable config`]
    #[arg(long, short = 'c', global = true, value_name = "CIRCLE")]
    pub(crate) circle: Option<String>,

    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Say more about what is happening (repeat for more)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub(crate) verbose: u8,

    /// Say only what went wrong
    #[arg(long, short = 'q', global = true)]
    pub(crate) quiet: bool,

    /// The time to act at instead of the clock, RFC 3339 (for scripts that import history, and tests)
    #[arg(
        long,
        global = true,
        env = "ROUNDTABLE_NOW",
        hide = true,
        value_name = "TIME"
    )]
    pub(crate) now: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run this device's node: keep your circles in sync with the others'
    #[command(
        after_help = "Example: roundtable up --relay none\nStop it with Ctrl-C. While it runs, every other command talks to it."
    )]
    Up {
        /// Where to listen, e.g. 0.0.0.0:7000 (repeat for several) [default: all interfaces, any port]
        #[arg(long, value_name = "ADDR")]
        listen: Vec<std::net::SocketAddr>,
        /// Relays: default, none (direct and local network only), or the URL of your own relay
        #[arg(long, default_value = "default", value_name = "default|none|URL")]
        relay: String,
        /// Do not look for other devices on the local network
        #[arg(long)]
        no_mdns: bool,
        /// Where to serve the web app: 127.0.0.1:PORT or [::1]:PORT (a port another program holds is refused)
        #[arg(long, default_value = "127.0.0.1:7777", value_name = "ADDR")]
        web: std::net::SocketAddr,
        /// Do not serve the web app
        #[arg(long, conflicts_with = "web")]
        no_web: bool,
        /// Do not open the web app in a browser
        #[arg(long)]
        no_browser: bool,
    },
    /// A fresh link to the web app: open it in a browser on this machine to use your circles there
    #[command(after_help = "Example: roundtable web --open
The running node (`roundtable up`) serves the app and makes the link; it works once, within 15 minutes. `--new-link` also signs every browser out.")]
    Web {
        /// Open it in the browser
        #[arg(long)]
        open: bool,
        /// Sign every browser out first, then make the link
        #[arg(long)]
        new_link: bool,
    },
    /// Open Roundtable in the browser, starting this device's node first if it is not running
    #[command(after_help = "Example: roundtable open --print
What a click on the Roundtable launcher does. A node it starts keeps running after it ends (through the systemd user unit where there is one, else on its own, its errors kept in HOME/node.log); `roundtable autostart on` starts it at login.")]
    Open {
        /// Print the link instead of opening a browser
        #[arg(long)]
        print: bool,
        /// Where a node it starts serves the web app: 127.0.0.1:PORT or [::1]:PORT
        #[arg(long, default_value = "127.0.0.1:7777", value_name = "ADDR")]
        web: std::net::SocketAddr,
        /// Relays of a node it starts: default, none, or the URL of your own relay
        #[arg(long, default_value = "default", value_name = "default|none|URL")]
        relay: String,
    },
    /// Start this device's node when you log in, or stop doing so (a systemd user service)
    #[command(after_help = "Example: roundtable autostart on
Needs the roundtable.service user unit, which Roundtable's package installs, and a systemd user session.")]
    Autostart {
        /// on or off
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// The node's peers and circles, and what each peer still lacks
    #[command(after_help = "Example: roundtable status --json")]
    Status,
    /// Invite someone: prints a ticket to send them (your node must be running)
    #[command(
        after_help = "Example: roundtable invite --expires 7d --uses 3 --qr\nThey join with: roundtable join TICKET --as THEIR_NAME\n`roundtable invite list` shows your circle's invites; `roundtable invite revoke ID` stops one of yours.",
        args_conflicts_with_subcommands = true
    )]
    Invite {
        #[command(subcommand)]
        action: Option<InviteCommand>,
        /// How long the ticket works, e.g. 30m, 24h, 7d (at most 30d); a week unless you say
        #[arg(long, default_value = "7d")]
        expires: String,
        /// How many people can use it
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Also draw the ticket as a QR code
        #[arg(long)]
        qr: bool,
    },
    /// Join a circle with a ticket someone sent you
    #[command(after_help = "Example: roundtable join roundtable... --as Sam")]
    Join {
        /// The ticket (one line starting with "roundtable"; line breaks in it are fine)
        ticket: String,
        /// What the circle should call you
        #[arg(long = "as", value_name = "NAME")]
        display_name: Option<String>,
        /// What to call this device [default: this computer's name]
        #[arg(long, value_name = "NAME")]
        device_name: Option<String>,
        /// Relays, when no node runs here: default, none, or a URL [default: the ticket's relay]
        #[arg(long, value_name = "default|none|URL")]
        relay: Option<String>,
    },
    /// Add another device of yours: without a ticket, print one; with one, use it
    #[command(
        after_help = "Example: on your laptop, roundtable pair --qr; on your phone, roundtable pair TICKET --name \"Ana's phone\""
    )]
    Pair {
        /// A ticket from `roundtable pair` on your other device
        ticket: Option<String>,
        /// Also draw the ticket as a QR code
        #[arg(long)]
        qr: bool,
        /// What to call this device, when pairing it [default: this computer's name]
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Relays, when no node runs here: default, none, or a URL [default: the ticket's relay]
        #[arg(long, value_name = "default|none|URL")]
        relay: Option<String>,
    },
    /// Show this device's id and your member id (made on first use)
    #[command(after_help = "Example: roundtable id --json")]
    Id,
    /// Your recovery key: 24 words to write down, that bring you back if you lose every device
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Come back as yourself on a new device, from your recovery key
    #[command(after_help = "Example: roundtable recover --words
Then ask someone in each of your circles for a ticket and `roundtable join TICKET`: it brings this device in as you.")]
    Recover(RecoverArgs),
    /// Your devices: list them, or revoke a lost one from another of yours
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Vouch that a request to be recognised on a new device really is the person's
    #[command(
        after_help = "Example: roundtable vouch roundtablerecover... --reason \"she rang me\"\nVouch only once you have checked with them yourself, by voice or face to face. The new device becomes theirs when a majority of the other members vouch, never fewer than two people, and their own devices have had the circle's wait to refuse it (`roundtable circle recovery-wait`); then their old devices are let go."
    )]
    Vouch {
        /// The request they sent you (a line starting with roundtablerecover)
        request: String,
        /// Who they are in the circle [default: the name in the request]
        #[arg(long = "for", value_name = "MEMBER")]
        member: Option<String>,
        /// How you checked it is them
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Refuse a request to become one of your devices: it is not you, or you found your device
    #[command(
        after_help = "Example: roundtable refuse 3fa9\n`roundtable remove list` shows the requests; any device of yours can refuse one until its wait is over."
    )]
    Refuse {
        /// The request's id (or its start), as `roundtable remove list` shows it
        request: String,
    },
    /// Removal, and welcome back, by consent: nobody owns the table
    #[command(
        subcommand,
        after_help = "Example: roundtable remove propose Lee --reason \"...\"\nA removal carries when a majority of the other members consent, and never with fewer than two people; so does a welcome back (`roundtable remove welcome-back Lee`)."
    )]
    Remove(RemoveCommand),
    /// Create or list circles
    #[command(subcommand)]
    Circle(CircleCommand),
    /// Stewards: always-on peers that keep a circle's changes sealed, so devices that are
    /// rarely awake together still meet
    #[command(
        subcommand,
        after_help = "On a member's device: roundtable steward add TICKET [--name NAME] | list | remove NAME\nOn the always-on box: roundtable --home DIR steward run | ticket | status"
    )]
    Steward(StewardCommand),
    /// Who is in the circle
    #[command(after_help = "Example: roundtable members --json")]
    Members,
    /// Say how you are doing: thriving, okay, heavy or struggling
    #[command(after_help = "Example: roundtable checkin --mood heavy \"long week\"")]
    Checkin {
        /// thriving, okay, heavy or struggling
        #[arg(long, short = 'm')]
        mood: String,
        /// A few words, if you want to say more
        text: Vec<String>,
    },
    /// Reply, in words, to a check-in, moment, ask or offer (the start of its id, as `feed` shows it)
    #[command(after_help = "Example: roundtable reply 3fa2 \"you're not carrying this alone\"")]
    Reply {
        /// The id, or the start of it
        to: String,
        /// What you want to say
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Share a moment: a milestone, or an ordinary Tuesday
    #[command(after_help = "Example: roundtable moment \"first snow on the allotment\"")]
    Moment {
        /// What happened
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Ask the circle for help: a meal, a ride, company
    #[command(
        after_help = "Example: roundtable ask \"could someone walk Biscuit?\" --when \"Thursday morning\""
    )]
    Ask {
        /// What would help
        #[arg(required = true)]
        text: Vec<String>,
        /// When, in your words
        #[arg(long, default_value = "")]
        when: String,
        /// How many people it needs; more taking it up is a double-up
        #[arg(long, default_value_t = 1, value_name = "N")]
        hands: u32,
    },
    /// Offer the circle something: a meal, a ride, company
    #[command(
        after_help = "Example: roundtable offer \"a lift to the station\" --when \"weekday mornings\""
    )]
    Offer {
        /// What you can give
        #[arg(required = true)]
        text: Vec<String>,
        /// When, in your words
        #[arg(long, default_value = "")]
        when: String,
    },
    /// Say you'll do it: answer an ask, or take up an offer
    #[command(after_help = "Example: roundtable commit 3fa2 \"I'll bring soup Tuesday\"")]
    Commit {
        /// The ask's or offer's id, or the start of it
        to: String,
        /// What you will do
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Close your ask or offer, with thanks
    #[command(after_help = "Example: roundtable done 3fa2 \"thank you Sam, the soup was perfect\"")]
    Done {
        /// The ask's or offer's id, or the start of it
        id: String,
        /// Your thanks
        thanks: Vec<String>,
    },
    /// Change the words of something you wrote: a check-in, moment, ask,
    /// offer, reply, commitment or dish
    #[command(
        after_help = "Example: roundtable edit 3fa2 \"long week, but the weekend was lovely\""
    )]
    Edit {
        /// Its id, or the start of it (as `feed` shows it)
        id: String,
        /// The new words
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Take back something you wrote; nobody sees it any more
    #[command(after_help = "Example: roundtable withdraw 3fa2")]
    Withdraw {
        /// Its id, or the start of it (as `feed` shows it)
        id: String,
    },
    /// Shared meals and other gatherings
    #[command(subcommand)]
    Gathering(GatheringCommand),
    /// Say you are stepping back for a while; the circle will not count you as quiet
    #[command(after_help = "Example: roundtable away --until 2026-12-24 \"family stuff\"")]
    Away {
        /// Until when: "2026-12-24", "friday", "next week", "in 3 days"
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        /// A word for the circle, if you like
        note: Vec<String>,
    },
    /// Say you are back
    #[command(after_help = "Example: roundtable back")]
    Back,
    /// Who has gone quiet, for them, and might like to hear from someone
    #[command(after_help = "Example: roundtable quiet")]
    Quiet,
    /// Write the whole circle to a readable archive
    #[command(after_help = "Example: roundtable export --out tuesday-supper.md")]
    Export {
        /// markdown or json
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "json"])]
        format: String,
        /// Write to this file instead of printing
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Change what the circle knows about you
    #[command(
        after_help = "Example: roundtable profile --pronouns she/her --remember \"I don't eat fish\""
    )]
    Profile(ProfileArgs),
    /// The recent life of the circle
    #[command(after_help = "Example: roundtable feed -n 50")]
    Feed {
        /// How many entries to show
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
        /// What arrived since you last looked on this device, in words
        /// (what concerns you first); it then counts as seen
        #[arg(long)]
        since_last: bool,
    },
    /// The whole circle; with --json, canonical: identical state prints identical bytes
    #[command(after_help = "Example: roundtable show --json")]
    Show,
    /// Double-ups: what edits made apart doubled (an ask taken by more
    /// people than it needs, a time changed on two devices, ...), and the
    /// choices that settle them
    #[command(
        after_help = "Examples:\n  roundtable settle            what needs you, with numbered choices\n  roundtable settle 3fa2 1     take choice 1 of double-up 3fa2"
    )]
    Settle {
        /// The double-up's id, or the start of it
        id: Option<String>,
        /// The number of the choice to take
        choice: Option<usize>,
    },
    /// Print a shell's completions for roundtable (bash, zsh, fish, elvish, powershell)
    #[command(
        after_help = "Example: roundtable completions bash > ~/.local/share/bash-completion/completions/roundtable"
    )]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print roundtable's manual page (roff)
    #[command(after_help = "Example: roundtable man | man -l -")]
    Man,
    /// Where your defaults live, and what they say
    #[command(
        after_help = "Example: roundtable config\nThe file may say: circle = \"Tuesday Supper\" and name = \"Maya\""
    )]
    Config,
    /// Recover a damaged circle: keep the damaged files aside and keep every change that verifies
    #[command(after_help = "Example: roundtable repair --circle \"Tuesday Supper\"")]
    Repair,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command a person runs shows an example in its --help.
    #[test]
    fn every_command_has_an_example() {
        fn walk(cmd: &clap::Command, path: String, missing: &mut Vec<String>) {
            let leafish = cmd.get_subcommands().next().is_none()
                || cmd.is_args_conflicts_with_subcommands_set();
            let help = cmd
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            if leafish && !path.is_empty() && !help.contains("Example") {
                missing.push(path.clone());
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(sub, format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), String::new(), &mut missing);
        assert!(
            missing.is_empty(),
            "no example in --help of:{}",
            missing.join(",")
        );
    }
}
