//! `roundtable`: the command-line face of Roundtable.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input.
//! Errors are one line on stderr that says what to do.

/// Prints one line for a person, like `println!`, through the one way out
/// to the terminal ([`render::out`]), which shows text from the circle as
/// words and never as control codes.
macro_rules! say {
    () => {
        $crate::render::out::line("")
    };
    ($($arg:tt)*) => {
        $crate::render::out::line(&format!($($arg)*))
    };
}

mod backend;
mod cli;
mod commands;
mod config;
mod launcher;
mod network;
mod render;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

/// An error in what the person typed or gave us: exit code 2.
#[derive(Debug)]
pub(crate) struct BadInput(pub(crate) String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Shorthand for a bad-input error.
pub(crate) fn bad_input(msg: impl Into<String>) -> anyhow::Error {
    BadInput(msg.into()).into()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Output piped into `head` ends quietly, as any Unix tool does; only
    // the node keeps running when nobody reads what it prints.
    if !matches!(cli.command, cli::Command::Up(_)) {
        sigpipe::reset();
    }
    init_tracing(cli.global.verbose, cli.global.quiet);
    render::set_quiet(cli.global.quiet);
    let json = cli.global.json;
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = exit_code(&err);
            // One line, whatever the chain of causes.
            let line = format!("{err:#}").replace('\n', " ");
            if json {
                render::out::error_raw(
                    &serde_json::json!({ "error": line, "bad_input": code == 2 }).to_string(),
                );
            } else {
                render::out::error(&format!("error: {line}"));
            }
            ExitCode::from(code)
        }
    }
}

/// 2 when the input was at fault, 1 otherwise.
fn exit_code(err: &anyhow::Error) -> u8 {
    use roundtable_core::CoreError;
    for cause in err.chain() {
        if cause.is::<BadInput>() {
            return 2;
        }
        if let Some(core) = cause.downcast_ref::<CoreError>() {
            return if core.is_bad_input() { 2 } else { 1 };
        }
    }
    1
}

fn init_tracing(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let ours = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    // The network stack below us reports unreachable relays, DNS and
    // multicast, and refused strangers, at warning level and again and again
    // when offline; that is expected and not the person's to fix. It speaks
    // from -vv on.
    let stack = if verbose >= 2 { ours } else { "error" };
    let default = [
        "iroh",
        "iroh_relay",
        "iroh_gossip",
        "iroh_dns",
        "iroh_mdns_address_lookup",
        "noq",
        "noq_proto",
        "noq_udp",
    ]
    .iter()
    .fold(ours.to_owned(), |acc, t| format!("{acc},{t}={stack}"));
    // mDNS with no multicast route fails on every probe, at error level, and
    // the relay transport reports its channel closing when the node stops.
    let noisy = if verbose >= 2 { ours } else { "off" };
    let default =
        format!("{default},swarm_discovery={noisy},iroh::socket::transports::relay={noisy}");
    let filter =
        EnvFilter::try_from_env("ROUNDTABLE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
}
