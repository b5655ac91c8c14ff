//! Stewards: running one (`steward run`, `ticket`, `status` on the
//! steward's own home), and a circle's use of them (`add`, `list`,
//! `remove` on a member's device).

use roundtable_net::StewardTicket;
use roundtable_steward::server::{self, StewardOptions};
use roundtable_steward::{KeeperStatus, Limits, Steward};
use serde_json::json;

use super::*;

#[derive(Debug, clap::Subcommand)]
#[command(
    after_help = "On a member's device: roundtable steward add TICKET [--name NAME] | list | remove NAME\nOn the always-on box: roundtable --home DIR steward run | ticket | status"
)]
pub(crate) enum StewardCommand {
    /// Run a steward here (in the foreground, for systemd or a container):
    /// it keeps circles' changes sealed for devices that are rarely awake
    /// together, and cannot read them
    #[command(
        after_help = "Example: roundtable --home /var/lib/roundtable-steward steward run --listen 0.0.0.0:7100 --relay none\nHand its ticket (`roundtable steward ticket`) to a member: they add it with `roundtable steward add TICKET`."
    )]
    Run {
        /// Where to listen, e.g. 0.0.0.0:7100 (repeat for several) [default: all interfaces, any port]
        #[arg(long, value_name = "ADDR")]
        listen: Vec<std::net::SocketAddr>,
        /// Relays: default, none (direct and local network only), or the URL of your own relay
        #[arg(long, default_value = "default", value_name = "default|none|URL")]
        relay: String,
        /// Do not announce it on the local network
        #[arg(long)]
        no_mdns: bool,
        /// Keep what it holds in S3-compatible object storage instead of its home
        /// (credentials and endpoint from the usual AWS_* variables)
        #[arg(long, value_name = "s3://BUCKET/PREFIX")]
        store: Option<String>,
    },
    /// The steward's ticket, to hand to a member of each circle it keeps
    #[command(after_help = "Example: roundtable --home /var/lib/roundtable-steward steward ticket")]
    Ticket,
    /// What a steward's home keeps: circles, bytes, devices seen
    #[command(
        after_help = "Example: roundtable --home /var/lib/roundtable-steward steward status --json"
    )]
    Status {
        /// Where it keeps what it holds, if not in its home
        #[arg(long, value_name = "s3://BUCKET/PREFIX")]
        store: Option<String>,
    },
    /// Have the circle kept by a steward too, from its ticket (your node need not run)
    #[command(
        after_help = "Example: roundtable steward add roundtablesteward... --name \"Maya's Pi\""
    )]
    Add {
        /// The steward's ticket, from its operator
        ticket: String,
        /// What to call it, for everyone in the circle (e.g. "Maya's Pi")
        /// [default: after you, "Maya's steward"]
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// The stewards that keep the circle, and when this device last reached each
    #[command(after_help = "Example: roundtable steward list --json")]
    List,
    /// Stop the circle using a steward (anyone in the circle may; everyone sees who did)
    #[command(after_help = "Example: roundtable steward remove \"Maya's Pi\"")]
    Remove {
        /// What the circle calls it ("Maya's Pi"), or the start of its id, as
        /// `roundtable steward list` shows them
        id: String,
    },
}

impl StewardCommand {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let (backend, global, now) = (&cx.backend, &cx.global, cx.now);
        let home = backend.home().root().to_path_buf();
        match self {
            StewardCommand::Run {
                listen,
                relay,
                no_mdns,
                store,
            } => run_steward(global, home, listen, &relay, no_mdns, store),
            StewardCommand::Ticket => {
                let ticket = server::ticket_of(&home).map_err(|e| anyhow::anyhow!(e))?;
                if global.json {
                    render::json(&json!({ "ticket": ticket }))
                } else {
                    say!("Hand this ticket to a member of each circle this steward should keep;");
                    say!("they add it with `roundtable steward add TICKET`:");
                    render::out::raw(&format!("{ticket}\n"));
                    Ok(())
                }
            }
            StewardCommand::Status { store } => {
                let status =
                    server::status_of(&home, store.as_deref()).map_err(|e| anyhow::anyhow!(e))?;
                keeper_status(&status, now, global.json)
            }
            StewardCommand::Add { ticket, name } => {
                let parsed = StewardTicket::parse(&ticket).map_err(|e| bad_input(e.to_string()))?;
                let steward = roundtable_core::DeviceId::from_bytes(parsed.id());
                let called = match &name {
                    Some(n) if !n.trim().is_empty() => n.trim().to_owned(),
                    _ => "the steward".to_owned(),
                };
                let edit = (
                    Op::AddSteward {
                        ticket: parsed.to_line(),
                        steward,
                        name,
                    },
                    format!(
                        "The circle is kept by {called} from now on; your node reaches it whenever it runs."
                    ),
                );
                perform_and_say(backend, global, edit, now)
            }
            StewardCommand::List => list(backend, global, now),
            StewardCommand::Remove { id } => remove(backend, global, &id, now),
        }
    }
}

/// Stops the circle using a steward, found by what it is called or the
/// start of its id.
fn remove(backend: &Backend, global: &Global, id: &str, now: Timestamp) -> Result<()> {
    let circle = read(backend, global)?;
    let view = circle.view();
    let in_use: Vec<_> = circle
        .stewards()
        .into_iter()
        .filter(|s| s.removed_by.is_none())
        .collect();
    if in_use.is_empty() {
        return Err(bad_input(
            "this circle uses no steward now; `roundtable steward list` shows those it used",
        ));
    }
    // By what people call it, or by the start of its id.
    let called: Vec<&roundtable_core::steward::StewardRecord> = in_use
        .iter()
        .filter(|s| {
            s.called(|m| view.name_of(m))
                .eq_ignore_ascii_case(id.trim())
        })
        .collect();
    let (id, called) = match called[..] {
        [one] => (one.id, one.called(|m| view.name_of(m))),
        [_, _, ..] => {
            return Err(bad_input(format!(
                "more than one steward is called \"{}\": give the start of its id, as `roundtable steward list` shows it",
                id.trim()
            )));
        }
        [] => {
            let one = match resolve_prefix(id, in_use.iter().map(|s| s.id)) {
                Resolved::One(found) => in_use.iter().find(|s| s.id == found),
                Resolved::Ambiguous(_) => {
                    return Err(bad_input(format!(
                        "\"{id}\" could be more than one steward: type more of its id, as `roundtable steward list` shows it"
                    )));
                }
                Resolved::TooShort => {
                    return Err(bad_input(format!(
                        "\"{id}\" is too short to find the steward by: type its name or at least {MIN_PREFIX} characters of its id"
                    )));
                }
                Resolved::None => None,
            };
            let Some(one) = one else {
                return Err(bad_input(format!(
                    "this circle uses no steward called \"{id}\" or with an id starting so; `roundtable steward list` shows them"
                )));
            };
            (one.id, one.called(|m| view.name_of(m)))
        }
    };
    let edit = (
        Op::RemoveSteward { id },
        format!("The circle no longer uses {called}; anyone in it can add it again."),
    );
    perform_and_say(backend, global, edit, now)
}

fn run_steward(
    global: &Global,
    home: PathBuf,
    listen: Vec<std::net::SocketAddr>,
    relay: &str,
    no_mdns: bool,
    store: Option<String>,
) -> Result<()> {
    let mut net = roundtable_net::NetConfig::default();
    if !listen.is_empty() {
        net.listen = listen;
    }
    net.relay = crate::network::relay_choice(relay)?;
    net.mdns = !no_mdns;
    if let Some(url) = &store
        && !url.starts_with("s3://")
    {
        return Err(bad_input(format!(
            "--store takes s3://BUCKET/PREFIX; got \"{url}\" (leave it out to keep everything in the steward's home)"
        )));
    }
    let options = StewardOptions {
        home,
        net,
        store,
        limits: Limits::default(),
    };
    crate::network::runtime()?.block_on(async {
        let steward = Steward::start(options)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let ticket = steward.ticket().to_line();
        if global.json {
            render::json(&json!({
                "steward": hex(&steward.ticket().id()),
                "ticket": ticket,
                "listening": steward.bound_sockets().iter().map(ToString::to_string).collect::<Vec<_>>(),
            }))?;
        } else {
            say!("The steward is running. It keeps sealed changes only; it cannot read any circle.");
            say!(
                "  listening  {}",
                steward
                    .bound_sockets()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            say!("  ticket     {ticket}");
            say!("Press Ctrl-C to stop.");
        }
        use std::io::Write;
        let _ = render::out::stdout().flush();
        crate::network::wait_for_stop().await;
        steward.shutdown().await;
        if !global.json {
            say!("The steward stopped.");
        }
        Ok(())
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn keeper_status(status: &KeeperStatus, now: Timestamp, json: bool) -> Result<()> {
    if json {
        return render::json(&serde_json::to_value(status)?);
    }
    say!("Steward {}", &status.id[..12]);
    say!(
        "  keeps {} circle(s), {} in all (sealed: it cannot read them)",
        status.lockers.len(),
        render::bytes(status.bytes)
    );
    for l in &status.lockers {
        let newest = l.devices.first().map(|(_, t)| *t);
        say!(
            "  circle {}…  {} item(s), {}, {} device(s) seen{}",
            &l.locker[..8],
            l.items,
            render::bytes(l.bytes),
            l.devices.len(),
            newest
                .map(|t| format!(", last {}", render::ago(Timestamp::from_millis(t), now)))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn list(backend: &Backend, global: &Global, now: Timestamp) -> Result<()> {
    let circle = read(backend, global)?;
    let view = circle.view();
    let records = circle.stewards();
    // How each stands, where the node runs and knows.
    let standing: Vec<roundtable_machine::StewardStatus> = backend
        .node()
        .and_then(|client| client.status().ok())
        .and_then(|s| s.circles.into_iter().find(|c| c.id == circle.id()))
        .map(|c| c.stewards)
        .unwrap_or_default();
    if global.json {
        let out: Vec<_> = records
            .iter()
            .map(|r| {
                let s = standing.iter().find(|s| s.id == r.id);
                json!({
                    "id": r.id,
                    "name": r.called(|m| view.name_of(m)),
                    "steward": r.steward,
                    "ticket": r.ticket,
                    "added_by": r.added_by,
                    "added_at": r.added_at,
                    "removed_by": r.removed_by,
                    "last_reached": s.and_then(|s| s.last_reached),
                    "connected": s.is_some_and(|s| s.connected),
                    "error": s.and_then(|s| s.error.clone()),
                    "stale": s.and_then(|s| s.stale.clone()),
                })
            })
            .collect();
        return render::json(&json!(out));
    }
    if records.iter().all(|r| r.removed_by.is_some()) {
        say!(
            "No steward keeps this circle: it syncs only while members' devices are awake together."
        );
        say!(
            "Add one with `roundtable steward add TICKET` (its operator runs `roundtable steward ticket`)."
        );
        return Ok(());
    }
    for r in &records {
        let by = r.added_by.map(|m| view.name_of(&m)).unwrap_or_default();
        let called = r.called(|m| view.name_of(m));
        let s = standing.iter().find(|s| s.id == r.id);
        if let Some(gone) = r.removed_by {
            say!(
                "{}  {called}  added by {by}  no longer used: {} stopped the circle using it",
                r.id.fmt_short(),
                view.name_of(&gone)
            );
            continue;
        }
        let how = match s {
            Some(s) => render::steward_how(s, now),
            None if backend.node().is_none() => "reached when your node runs".to_owned(),
            None => "not reached yet".to_owned(),
        };
        say!("{}  {called}  added by {by}  {how}", r.id.fmt_short());
    }
    Ok(())
}
