//! What a desktop does with Roundtable: `open` (a click on the launcher)
//! and `autostart on|off` (the node at login, through the systemd user
//! unit `roundtable.service` that the Debian package installs).
//!
//! `open` never starts a second node on a home: it asks the running node
//! first, and a node it starts takes the home's writer lock like any `up`,
//! so of two started at once one stops and the other is used.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use roundtable_node::control::ControlClient;
use roundtable_store::Home;
use serde_json::json;

use crate::backend::Backend;
use crate::cli::Global;
use crate::{bad_input, network, render};

/// The user unit the package installs.
pub(crate) const UNIT: &str = "roundtable.service";

/// Where a node that `open` starts by itself writes what goes wrong.
pub(crate) const LOG: &str = "node.log";

/// A log this long is set aside (as `node.log.1`) before the next start.
const LOG_LIMIT: u64 = 1 << 20;

/// How long a node may take to answer after it was started.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// `roundtable open`, and how it starts a node when none runs.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable open --print
What a click on the Roundtable launcher does. A node it starts keeps running after it ends (through the systemd user unit where there is one, else on its own, its errors kept in HOME/node.log); `roundtable autostart on` starts it at login.")]
pub(crate) struct OpenArgs {
    /// Print the link instead of opening a browser
    #[arg(long)]
    print: bool,
    /// Where a node it starts serves the web app: 127.0.0.1:PORT or [::1]:PORT
    #[arg(long, default_value = "127.0.0.1:7777", value_name = "ADDR")]
    web: std::net::SocketAddr,
    /// Relays of a node it starts: default, none, or the URL of your own relay
    #[arg(long, default_value = "default", value_name = "default|none|URL")]
    relay: String,
}

impl OpenArgs {
    pub(crate) fn run(self, home: &Home, global: &Global) -> Result<()> {
        open(home, global, &self)
    }
}

/// `roundtable open`: the app's link from this home's node, started first
/// if it is not running, then opened in the browser (or printed).
fn open(home: &Home, global: &Global, args: &OpenArgs) -> Result<()> {
    network::relay_choice(&args.relay)?;
    let (client, started) = match ControlClient::connect(home.root()) {
        Some(client) => (client, false),
        None => (start_node(home, global, args)?, true),
    };
    // A node just started answers on its socket a moment before its web
    // app is up: ask again until it is, within the same patience.
    let deadline = Instant::now() + START_PATIENCE;
    let link = loop {
        match client.web_link(false).map_err(Backend::failed) {
            Ok(link) => break link,
            Err(_) if started && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    };
    let print = args.print || global.json;
    if !print {
        match network::open_in_browser(home.root(), &link) {
            Ok(()) => {
                if !render::silent() {
                    say!("Roundtable is open in your browser.");
                }
                return Ok(());
            }
            Err(e) => {
                tracing::info!("could not open a browser: {e:#}");
                if !render::silent() {
                    say!(
                        "No browser could be opened here; open this link in one on this computer:"
                    );
                }
            }
        }
    }
    if global.json {
        return render::json(&json!({"web": link, "started": started}));
    }
    say!("{link}");
    Ok(())
}

/// Starts this home's node: through the user unit for the default home
/// where a systemd user session has it, else as a process of its own
/// whose errors go to `HOME/node.log`. Returns once the node answers.
fn start_node(home: &Home, global: &Global, args: &OpenArgs) -> Result<ControlClient> {
    let mut child = None;
    if global.home.is_none() && user_unit_installed() {
        let out = systemctl(&["start", UNIT])?;
        if !out.status.success() {
            return Err(anyhow::anyhow!(
                "could not start {UNIT}: {}",
                first_line(&out.stderr)
            ));
        }
    } else {
        child = Some(spawn_detached(home.root(), args)?);
    }
    let deadline = Instant::now() + START_PATIENCE;
    loop {
        if let Some(client) = ControlClient::connect(home.root()) {
            return Ok(client);
        }
        if let Some(c) = child.as_mut()
            && let Some(status) = c.try_wait().context("could not watch the node")?
            && !someone_starts(home.root())
        {
            let why = last_line(&home.root().join(LOG)).unwrap_or_else(|| status.to_string());
            return Err(anyhow::anyhow!(
                "the node stopped as it started: {why} (more in {})",
                home.root().join(LOG).display()
            ));
        }
        if Instant::now() > deadline {
            return Err(anyhow::anyhow!(
                "the node did not answer within {} s; see {}",
                START_PATIENCE.as_secs(),
                home.root().join(LOG).display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether another `roundtable up` holds the home (one started at the same
/// moment won the lock): then it is the node to wait for.
fn someone_starts(home: &Path) -> bool {
    std::fs::read_to_string(home.join(roundtable_store::LOCK_FILE))
        .is_ok_and(|holder| holder.contains("(roundtable up)"))
        && roundtable_store::HomeLock::shared(home).is_err()
}

/// `roundtable --home HOME up --no-browser` in a process group of its own,
/// so closing the terminal or the launcher does not stop it. What it says
/// for a person (the link among it) is dropped; its errors are kept in the
/// home, which only its owner can read.
fn spawn_detached(home: &Path, args: &OpenArgs) -> Result<std::process::Child> {
    std::fs::create_dir_all(home)
        .with_context(|| format!("could not create the home {}", home.display()))?;
    let log = home.join(LOG);
    if std::fs::metadata(&log).is_ok_and(|m| m.len() > LOG_LIMIT) {
        let _ = std::fs::rename(&log, home.join(format!("{LOG}.1")));
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&log)
        .with_context(|| format!("could not write {}", log.display()))?;
    let exe = std::env::current_exe().context("could not find this program")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--home")
        .arg(home)
        .args(["up", "--no-browser", "--web"])
        .arg(args.web.to_string())
        .args(["--relay", &args.relay])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn().context("could not start the node")
}

/// `roundtable autostart on|off`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable autostart on
Needs the roundtable.service user unit, which Roundtable's package installs, and a systemd user session.")]
pub(crate) struct AutostartArgs {
    /// on or off
    #[arg(value_parser = ["on", "off"])]
    state: String,
}

impl AutostartArgs {
    pub(crate) fn run(self, global: &Global) -> Result<()> {
        autostart(global, self.state == "on")
    }
}

/// `roundtable autostart on|off`: the node starts at login, or no longer.
fn autostart(global: &Global, on: bool) -> Result<()> {
    if global.home.is_some() {
        return Err(bad_input(
            "autostart runs the node of your usual home; it takes no --home (nor ROUNDTABLE_HOME)",
        ));
    }
    let session = systemctl(&["show-environment"]).ok();
    if !session.is_some_and(|o| o.status.success()) {
        return Err(anyhow::anyhow!(
            "autostart needs a systemd user session (`systemctl --user`), and none answers here; start the node with `roundtable open` or `roundtable up` instead"
        ));
    }
    if !user_unit_installed() {
        return Err(anyhow::anyhow!(
            "the user unit {UNIT} is not installed (it comes with Roundtable's package); start the node with `roundtable up` instead"
        ));
    }
    let out = systemctl(&[if on { "enable" } else { "disable" }, UNIT])?;
    if !out.status.success() {
        return Err(anyhow::anyhow!(
            "systemctl --user could not {} {UNIT}: {}",
            if on { "enable" } else { "disable" },
            first_line(&out.stderr)
        ));
    }
    if global.json {
        return render::json(&json!({"autostart": on}));
    }
    if on {
        say!("Roundtable will start when you log in (`roundtable autostart off` stops that).");
        say!("`roundtable open` starts it now and opens your circle.");
    } else {
        say!("Roundtable no longer starts when you log in; a running node keeps running.");
    }
    Ok(())
}

/// Whether a systemd user session answers and knows [`UNIT`].
fn user_unit_installed() -> bool {
    systemctl(&["cat", UNIT]).is_ok_and(|o| o.status.success())
}

/// `systemctl --user ARGS`, its output kept.
fn systemctl(args: &[&str]) -> Result<std::process::Output> {
    Command::new("systemctl")
        .arg("--user")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("systemctl could not be run")
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no reason given")
        .trim()
        .to_owned()
}

fn last_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().rev().find(|l| !l.trim().is_empty()).map(|l| {
        let l = l.trim();
        l.strip_prefix("error: ").unwrap_or(l).to_owned()
    })
}
