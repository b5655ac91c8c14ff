//! The command line: what people type, as clap sees it. Here are the
//! options every command takes and the list of commands; each command's
//! arguments and what it does live together in its group's module
//! (`commands/*.rs`, and `launcher.rs` for what a desktop does).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::commands::{
    self, Ctx, care, circles, gatherings, help, identity, node, people, reading, settle, setup,
    steward,
};
use crate::launcher;

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

/// The commands, each naming the module that holds its arguments and what
/// it does (its doc comment is its line in `roundtable --help`).
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run this device's node: keep your circles in sync with the others'
    Up(node::UpArgs),
    /// A fresh link to the web app: open it in a browser on this machine to use your circles there
    Web(node::WebArgs),
    /// Open Roundtable in the browser, starting this device's node first if it is not running
    Open(launcher::OpenArgs),
    /// Start this device's node when you log in, or stop doing so (a systemd user service)
    Autostart(launcher::AutostartArgs),
    /// The node's peers and circles, and what each peer still lacks
    Status(node::StatusArgs),
    /// Invite someone: prints a ticket to send them (your node must be running)
    Invite(people::InviteArgs),
    /// Join a circle with a ticket someone sent you
    Join(circles::JoinArgs),
    /// Add another device of yours: without a ticket, print one; with one, use it
    Pair(circles::PairArgs),
    /// Show this device's id and your member id (made on first use)
    Id(identity::IdArgs),
    /// Your recovery key: 24 words to write down, that bring you back if you lose every device
    #[command(subcommand)]
    Identity(identity::IdentityCommand),
    /// Come back as yourself on a new device, from your recovery key
    Recover(identity::RecoverArgs),
    /// Your devices: list them, or revoke a lost one from another of yours
    #[command(subcommand)]
    Device(people::DeviceCommand),
    /// Vouch that a request to be recognised on a new device really is the person's
    Vouch(people::VouchArgs),
    /// Refuse a request to become one of your devices: it is not you, or you found your device
    Refuse(people::RefuseArgs),
    /// Removal, and welcome back, by consent: nobody owns the table
    #[command(subcommand)]
    Remove(people::RemoveCommand),
    /// Create or list circles
    #[command(subcommand)]
    Circle(circles::CircleCommand),
    /// Stewards: always-on peers that keep a circle's changes sealed, so devices that are
    /// rarely awake together still meet
    #[command(subcommand)]
    Steward(steward::StewardCommand),
    /// Who is in the circle
    Members(people::MembersArgs),
    /// Say how you are doing: thriving, okay, heavy or struggling
    Checkin(care::CheckinArgs),
    /// Reply, in words, to a check-in, moment, ask or offer (the start of its id, as `feed` shows it)
    Reply(care::ReplyArgs),
    /// Share a moment: a milestone, or an ordinary Tuesday
    Moment(care::MomentArgs),
    /// Ask the circle for help: a meal, a ride, company
    Ask(help::AskArgs),
    /// Offer the circle something: a meal, a ride, company
    Offer(help::OfferArgs),
    /// Say you'll do it: answer an ask, or take up an offer
    Commit(help::CommitArgs),
    /// Close your ask or offer, with thanks
    Done(help::DoneArgs),
    /// Change the words of something you wrote: a check-in, moment, ask,
    /// offer, reply, commitment or dish
    Edit(care::EditArgs),
    /// Take back something you wrote; nobody sees it any more
    Withdraw(care::WithdrawArgs),
    /// Shared meals and other gatherings
    #[command(subcommand)]
    Gathering(gatherings::GatheringCommand),
    /// Say you are stepping back for a while; the circle will not count you as quiet
    Away(care::AwayArgs),
    /// Say you are back
    Back(care::BackArgs),
    /// Who has gone quiet, for them, and might like to hear from someone
    Quiet(reading::QuietArgs),
    /// Write the whole circle to a readable archive
    Export(reading::ExportArgs),
    /// Change what the circle knows about you
    Profile(care::ProfileArgs),
    /// The recent life of the circle
    Feed(reading::FeedArgs),
    /// The whole circle; with --json, canonical: identical state prints identical bytes
    Show(reading::ShowArgs),
    /// Double-ups: what edits made apart doubled (an ask taken by more
    /// people than it needs, a time changed on two devices, ...), and the
    /// choices that settle them
    Settle(settle::SettleArgs),
    /// Print a shell's completions for roundtable (bash, zsh, fish, elvish, powershell)
    Completions(setup::CompletionsArgs),
    /// Print roundtable's manual page (roff)
    Man(setup::ManArgs),
    /// Where your defaults live, and what they say
    Config(setup::ConfigArgs),
    /// Recover a damaged circle: keep the damaged files aside and keep every change that verifies
    Repair(circles::RepairArgs),
}

impl Cli {
    /// Runs the command typed.
    pub(crate) fn run(self) -> Result<()> {
        let Cli {
            mut global,
            command,
        } = self;
        // What needs no home: the program's own words, and the login service.
        let command = match command {
            Command::Completions(args) => return args.run(),
            Command::Man(args) => return args.run(),
            Command::Autostart(args) => return args.run(&global),
            command => command,
        };
        let (home, config, config_path) = commands::open_home(&mut global)?;
        // `open` finds the running node itself, or starts one.
        let command = match command {
            Command::Open(args) => return args.run(&home, &global),
            command => command,
        };
        let cx = &Ctx::new(home, global, config, config_path)?;
        match command {
            // Run above.
            Command::Completions(_)
            | Command::Man(_)
            | Command::Autostart(_)
            | Command::Open(_) => Ok(()),
            Command::Config(args) => args.run(cx),
            Command::Up(args) => args.run(cx),
            Command::Web(args) => args.run(cx),
            Command::Status(args) => args.run(cx),
            Command::Invite(args) => args.run(cx),
            Command::Join(args) => args.run(cx),
            Command::Pair(args) => args.run(cx),
            Command::Id(args) => args.run(cx),
            Command::Identity(command) => command.run(cx),
            Command::Recover(args) => args.run(cx),
            Command::Device(command) => command.run(cx),
            Command::Vouch(args) => args.run(cx),
            Command::Refuse(args) => args.run(cx),
            Command::Remove(command) => command.run(cx),
            Command::Circle(command) => command.run(cx),
            Command::Steward(command) => command.run(cx),
            Command::Members(args) => args.run(cx),
            Command::Checkin(args) => args.run(cx),
            Command::Reply(args) => args.run(cx),
            Command::Moment(args) => args.run(cx),
            Command::Ask(args) => args.run(cx),
            Command::Offer(args) => args.run(cx),
            Command::Commit(args) => args.run(cx),
            Command::Done(args) => args.run(cx),
            Command::Edit(args) => args.run(cx),
            Command::Withdraw(args) => args.run(cx),
            Command::Gathering(command) => command.run(cx),
            Command::Away(args) => args.run(cx),
            Command::Back(args) => args.run(cx),
            Command::Quiet(args) => args.run(cx),
            Command::Export(args) => args.run(cx),
            Command::Profile(args) => args.run(cx),
            Command::Feed(args) => args.run(cx),
            Command::Show(args) => args.run(cx),
            Command::Settle(args) => args.run(cx),
            Command::Repair(args) => args.run(cx),
        }
    }
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
