//! Commands of the network: up, status, invite, join, pair.

use std::time::Duration;

use anyhow::{Context, Result};
use roundtable_core::invite::CLOCK_TOLERANCE_MS;
use roundtable_core::{CircleId, InviteKind, Timestamp};
use roundtable_net::{CircleTicket, RelayChoice};
use roundtable_node::{Node, NodeConfig, NodeError};
use roundtable_web::WebApp;
use serde_json::json;

use crate::backend::Backend;
use crate::cli::Global;
use crate::{bad_input, render};

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("could not start the async runtime")
}

fn node_error(e: NodeError) -> anyhow::Error {
    match e {
        NodeError::Refused(reason) => bad_input(reason),
        NodeError::Store(roundtable_store::StoreError::Lock(l)) => anyhow::anyhow!(l),
        other => anyhow::anyhow!(other),
    }
}

pub(crate) fn relay_choice(relay: &str) -> Result<RelayChoice> {
    Ok(match relay {
        "default" => RelayChoice::Default,
        "none" => RelayChoice::Disabled,
        url => RelayChoice::Custom(url.parse().map_err(|_| {
            bad_input(format!(
                "--relay takes default, none, or a relay URL like https://relay.example.org; got \"{url}\""
            ))
        })?),
    })
}

/// `roundtable up`: runs the node until Ctrl-C or SIGTERM.
/// Whether and where `up` serves the web app.
pub(crate) struct WebChoice {
    /// Where, or no web app.
    pub(crate) addr: Option<std::net::SocketAddr>,
    /// Open it in a browser, on a desktop session.
    pub(crate) browser: bool,
}

pub(crate) fn up(
    backend: &Backend,
    global: &Global,
    listen: Vec<std::net::SocketAddr>,
    relay: &str,
    no_mdns: bool,
    web: WebChoice,
) -> Result<()> {
    if let Some(addr) = web.addr
        && addr.ip() != std::net::Ipv4Addr::LOCALHOST
        && addr.ip() != std::net::Ipv6Addr::LOCALHOST
    {
        return Err(bad_input(format!(
            "--web is for this machine only: give 127.0.0.1:PORT (or [::1]:PORT), such as 127.0.0.1:7777, not {addr}"
        )));
    }
    if backend.node().is_some() {
        return Err(anyhow::anyhow!(
            "a node is already running on this home; `roundtable status` shows it"
        ));
    }
    let mut config = NodeConfig::new(backend.home().root());
    if !listen.is_empty() {
        config.net.listen = listen;
    }
    config.net.relay = relay_choice(relay)?;
    config.net.mdns = !no_mdns;
    runtime()?.block_on(async {
        let node = Node::spawn(config).await.map_err(node_error)?;
        let h = node.handle();
        let status = h.status().await.map_err(node_error)?;
        let app = match web.addr {
            Some(addr) => {
                match WebApp::start(h.clone(), addr).await {
                    Ok(app) => Some(app),
                    Err(e) => {
                        let _ = node.shutdown().await;
                        return Err(anyhow::anyhow!(e));
                    }
                }
            }
            None => None,
        };
        forget_old_web_files(backend.home().root());
        let link = app.as_ref().map(|app| app.login_link(false));
        if global.json {
            render::json(&json!({
                "device": status.device,
                "member": status.member,
                "listening": status.addrs,
                "circles": status.circles.iter().map(|c| json!({"id": c.id, "name": c.name})).collect::<Vec<_>>(),
                "web": link,
            }))?;
        } else {
            say!("Roundtable is up.");
            say!("  device     {}", status.device);
            say!("  listening  {}", status.addrs.join(", "));
            for c in &status.circles {
                say!("  serving    {} ({})", c.name, c.id.fmt_short());
            }
            if let Some(link) = &link {
                say!("Open your circle in a browser on this computer (the link works once, within 15 minutes;");
                say!("`roundtable web --open` makes a fresh one while the node runs):");
                say!("  {link}");
            } else if status.circles.is_empty() {
                say!("You are in no circle yet. Start one:  roundtable circle create NAME --as YOUR_NAME");
                say!("or join one with a ticket:           roundtable join TICKET --as YOUR_NAME");
            }
            say!("Press Ctrl-C to stop.");
        }
        use std::io::Write;
        let _ = render::out::stdout().flush();
        if let Some(app) = &app
            && web.browser
            && desktop_session()
            && let Err(e) = open_in_browser(backend.home().root(), &app.login_link(false))
        {
            tracing::info!("could not open a browser: {e}");
        }
        wait_for_stop().await;
        if !global.json {
            say!("Stopping...");
        }
        if let Some(app) = app {
            app.stop().await;
        }
        // Stopping in order closes connections gracefully; on a busy
        // machine that can take a few seconds.
        match tokio::time::timeout(Duration::from_secs(10), node.shutdown()).await {
            Ok(r) => r.map_err(node_error),
            Err(_) => Err(anyhow::anyhow!("the node did not stop within 10 s")),
        }
    })
}

/// Whether someone sits at a screen here, who a browser could open for.
fn desktop_session() -> bool {
    if cfg!(any(target_os = "macos", target_os = "windows")) {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// `roundtable web`: a fresh link, from the running node, that lets a
/// browser on this machine in. Without a running node there is no link:
/// one printed from memory could be answered by whoever holds the port now.
pub(crate) fn web(backend: &Backend, global: &Global, open_it: bool, new_link: bool) -> Result<()> {
    let Some(client) = backend.node() else {
        return Err(anyhow::anyhow!(
            "your node is not running, so there is no link to open: start it with `roundtable up`; it opens your circle in the browser and prints a link"
        ));
    };
    let link = client.web_link(new_link).map_err(Backend::failed)?;
    if open_it {
        open_in_browser(backend.home().root(), &link)
            .context("could not open a browser; open the link by hand")?;
    }
    if global.json {
        return render::json(&json!({"web": link, "running": true}));
    }
    say!("{link}");
    if !render::silent() {
        say!("It works once, within 15 minutes, while this run of the node lasts.");
        if new_link {
            say!("Every browser that was signed in is signed out.");
        }
    }
    Ok(())
}

/// The page a browser is opened on: it sends the browser on to the login
/// link. The link goes through this owner-only file, never a command
/// line, which every user of the machine can read in `/proc`.
pub(crate) const OPENER: &str = "web-open.html";

/// Opens `link` in the person's browser through [`OPENER`] in the home.
pub(crate) fn open_in_browser(home: &std::path::Path, link: &str) -> Result<()> {
    use std::io::Write;
    let path = home.join(OPENER);
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta http-equiv=\"refresh\" content=\"0; url={link}\">\n<title>Roundtable</title></head>\n<body><p><a href=\"{link}\">Open your circle</a></p></body></html>\n"
    );
    // A new file each time, created owner-only: nobody else may read it,
    // nor have put something in its place.
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("could not replace {}", path.display()));
        }
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("could not write {}", path.display()))?;
    file.write_all(page.as_bytes())?;
    file.sync_all()?;
    open::that_detached(url_of_file(&path)?).context("no browser could be started")?;
    Ok(())
}

/// `file:///...` for a path.
fn url_of_file(path: &std::path::Path) -> Result<String> {
    let path = std::path::absolute(path)?;
    url::Url::from_file_path(&path)
        .map(String::from)
        .map_err(|()| anyhow::anyhow!("{} is not a path a browser can open", path.display()))
}

/// Files of an earlier design (a lasting secret and the last address), of
/// no use any more: a lasting secret is one more thing to leak.
fn forget_old_web_files(home: &std::path::Path) {
    for name in ["web-token", "web-address"] {
        let _ = std::fs::remove_file(home.join(name));
    }
}

pub(crate) async fn wait_for_stop() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub(crate) fn status(backend: &Backend, global: &Global) -> Result<()> {
    let Some(client) = backend.node() else {
        if global.json {
            return render::json(&json!({"running": false}));
        }
        say!("The node is not running; start it with `roundtable up` to sync with the others.");
        return Ok(());
    };
    let status = client.status().map_err(Backend::failed)?;
    if global.json {
        let mut v = serde_json::to_value(&status)?;
        v["running"] = json!(true);
        return render::json(&v);
    }
    render::status(&status);
    Ok(())
}

/// Parses "30m", "24h", "7d", "2w".
pub(crate) fn parse_expiry(s: &str) -> Result<i64> {
    let span: jiff::Span = s.trim().parse().map_err(|_| {
        bad_input(format!(
            "could not read \"{s}\" as a duration; write it like 30m, 24h or 7d"
        ))
    })?;
    let d = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|_| {
            bad_input(format!(
                "\"{s}\" is not a duration I can use; write it like 24h or 7d"
            ))
        })?;
    let ms = d.as_millis();
    if ms <= 0 {
        return Err(bad_input(
            "a ticket must last a while: give a duration like 24h",
        ));
    }
    Ok(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn need_node(backend: &Backend, what: &str) -> Result<()> {
    if backend.node().is_none() {
        return Err(anyhow::anyhow!(
            "{what} needs your node running, so the other device can reach it: start `roundtable up` in another terminal, then try again"
        ));
    }
    Ok(())
}

/// What an invitation is for and how long it lasts.
pub(crate) struct Invitation<'a> {
    pub(crate) kind: InviteKind,
    pub(crate) expires: &'a str,
    pub(crate) uses: u32,
    pub(crate) qr: bool,
}

pub(crate) fn invite(
    backend: &Backend,
    global: &Global,
    circle: CircleId,
    args: Invitation<'_>,
    now: Timestamp,
) -> Result<()> {
    let Invitation {
        kind,
        expires,
        uses,
        qr,
    } = args;
    let expires_ms = parse_expiry(expires)?;
    if uses == 0 {
        return Err(bad_input("--uses must be at least 1"));
    }
    need_node(backend, "inviting")?;
    let client = backend.node().context("node")?;
    let ticket = client
        .invite(circle, kind, now.plus_millis(expires_ms), uses, now)
        .map_err(Backend::failed)?;
    if global.json {
        return render::json(&json!({"ticket": ticket, "expires_at": now.plus_millis(expires_ms)}));
    }
    say!("{ticket}");
    if qr {
        render::qr(&ticket)?;
    }
    let how = match kind {
        InviteKind::Member => "They join with: roundtable join TICKET --as THEIR_NAME",
        InviteKind::Device => "On your other device: roundtable pair TICKET",
    };
    let until = roundtable_core::dates::words(
        now.plus_millis(expires_ms),
        now,
        &jiff::tz::TimeZone::system(),
    );
    let times = match uses {
        1 => "once".to_owned(),
        2 => "twice".to_owned(),
        n => format!("{n} times"),
    };
    // Stdout keeps to the ticket (scripts read it); the person is told on
    // the terminal how long it works and what the friend does with it.
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        render::out::note(&format!("Works {times}, until {until}. {how}"));
    }
    Ok(())
}

/// `join` and `pair TICKET`: redeem a ticket, through the running node or a
/// short-lived one.
pub(crate) fn join(
    backend: &Backend,
    global: &Global,
    line: &str,
    name: Option<&str>,
    relay: Option<&str>,
    now: Timestamp,
) -> Result<Vec<CircleId>> {
    let ticket = CircleTicket::parse(line).map_err(|e| bad_input(e.to_string()))?;
    if now.as_millis() > ticket.expires_at.as_millis() + CLOCK_TOLERANCE_MS {
        return Err(bad_input(format!(
            "this ticket expired {}; ask for a new one",
            roundtable_core::dates::words(ticket.expires_at, now, &jiff::tz::TimeZone::system())
        )));
    }
    // Someone who restored their member key needs no name: they are in
    // already (the inviting device says so if they are not).
    let restored = backend.home().identity()?.is_some();
    if ticket.kind == InviteKind::Member && name.is_none() && !restored {
        return Err(bad_input(
            "say what the circle should call you: add --as YOUR_NAME",
        ));
    }
    if ticket.kind == InviteKind::Device && name.is_some() {
        return Err(bad_input(
            "this ticket pairs a device; use `roundtable pair TICKET` (your name comes with it)",
        ));
    }
    // Without a node here, a short-lived one reaches the inviter the way
    // `up` would: the ticket's direct addresses, its relay (or --relay),
    // and this network by mDNS.
    let relay = match relay {
        Some(r) => relay_choice(r)?,
        None => match ticket.inviter.relay_urls().next() {
            Some(url) => RelayChoice::Custom(url.clone()),
            None => RelayChoice::Disabled,
        },
    };
    // Progress goes with the other words for the person, on stdout; stderr
    // keeps to the one line of an error.
    let progress = !global.json && !render::silent();
    if progress {
        say_how_reaching(backend, &ticket, &relay);
    }
    let circles: Vec<CircleId> = match backend.node() {
        Some(client) => client.join(line.trim(), name).map_err(Backend::failed)?,
        None => runtime()?.block_on(async {
            let mut config = NodeConfig::new(backend.home().root());
            config.net.relay = relay;
            config.net.mdns = true;
            config.control_socket = false;
            let node = Node::spawn(config).await.map_err(node_error)?;
            let result = node.handle().join(&ticket, name).await;
            let _ = node.shutdown().await;
            result.map_err(node_error)
        })?,
    };
    let home = backend.home();
    let names: Vec<String> = circles
        .iter()
        .map(|id| {
            match Backend::new(roundtable_store::Home::new(home.root())).read_circle(*id) {
                Ok(c) => {
                    if progress {
                        let view = c.view();
                        say!(
                            "Received \"{}\": {} changes, {} members, {} entries in its life so far.",
                            c.name(),
                            c.doc().get_changes(&[]).len(),
                            roundtable_core::Membership::from_view(&view).members.len(),
                            roundtable_core::feed::timeline(&view).len()
                        );
                    }
                    c.name()
                }
                Err(_) => id.fmt_short(),
            }
        })
        .collect();
    if global.json {
        render::json(&json!({"circles": circles}))?;
        return Ok(circles);
    }
    if let Some(name) = name {
        say_if_name_taken(home, &circles, name);
    }
    if render::silent() {
        return Ok(circles);
    }
    match ticket.kind {
        InviteKind::Member => {
            say!("You're in: {}. Welcome.", names.join(", "));
            say!("{}", crate::commands::identity::BACKUP_HINT);
        }
        InviteKind::Device => say!(
            "This device is paired. Your circles here: {}.",
            names.join(", ")
        ),
    }
    if backend.node().is_none() {
        say!("Start your node to stay in sync: roundtable up");
    }
    Ok(circles)
}

/// How a joining device tries to reach the one that invited it.
fn say_how_reaching(backend: &Backend, ticket: &CircleTicket, relay: &RelayChoice) {
    let mut ways: Vec<String> = Vec::new();
    let direct: Vec<String> = ticket.inviter.ip_addrs().map(|a| a.to_string()).collect();
    if !direct.is_empty() {
        ways.push(format!("directly at {}", direct.join(", ")));
    }
    match (relay, backend.node().is_some()) {
        (_, true) => ways.push("through this device's running node".into()),
        (RelayChoice::Custom(url), false) => ways.push(format!("through the relay {url}")),
        (RelayChoice::Default, false) => ways.push("through the public relays".into()),
        (RelayChoice::Disabled, false) => {}
    }
    // The short-lived node looks on this network too; a running
    // node looks wherever it was told to.
    if backend.node().is_none() {
        ways.push("on this network".into());
    }
    say!(
        "Reaching the inviting device ({}) {}...",
        ticket.inviter.id.fmt_short(),
        ways.join(", ")
    );
}

/// Tells a person who just joined where someone else goes by their name,
/// and how the others will see them there.
fn say_if_name_taken(home: &roundtable_store::Home, circles: &[CircleId], name: &str) {
    let Ok(Some(me)) = home.identity() else {
        return;
    };
    for id in circles {
        let Ok(c) = Backend::new(roundtable_store::Home::new(home.root())).read_circle(*id) else {
            continue;
        };
        let view = c.view();
        if view.name_taken(name, Some(me.member.id())) {
            say!(
                "Someone in \"{}\" is called {} too; the others will see you as \"{}\". To choose another name: roundtable profile --name NEW_NAME",
                view.circle.name,
                name.trim(),
                view.name_of(&me.member.id())
            );
        }
    }
}
