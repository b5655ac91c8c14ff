//! This device's circles: starting, listing, leaving and repairing one,
//! and naming the device in them.

use roundtable_store::Repaired;
use serde_json::json;

use super::*;

// What can be done with this device's circles.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum CircleCommand {
    /// Start a new circle, with you as its first member
    #[command(after_help = "Example: roundtable circle create \"Tuesday Supper\" --as Maya")]
    Create {
        /// What the circle is called
        name: String,
        /// What the circle should call you [default: the name you use in your other circles]
        #[arg(long = "as", value_name = "NAME")]
        display_name: Option<String>,
        /// A line about what the circle is for
        #[arg(long, value_name = "TEXT")]
        about: Option<String>,
        /// Start it even though you are in a circle of that name already
        #[arg(long)]
        again: bool,
    },
    /// The circles this device is in
    #[command(after_help = "Example: roundtable circle list --json")]
    List,
    /// Leave a circle for good: the others see you left and move to a new
    /// key; your devices stop serving it once one of them knows
    #[command(after_help = "Example: roundtable circle leave --circle \"Book Club\" --forget")]
    Leave {
        /// Also forget this device's copy, once the others know you left
        #[arg(long)]
        forget: bool,
    },
    /// How long a member's own devices may refuse a recovery: show it, or
    /// set it for everyone in the circle
    #[command(after_help = "Example: roundtable circle recovery-wait 3d
When enough members vouch for someone's new device (`roundtable vouch`), that person's own devices have this long to refuse it. Between 24h and 14d; 48h until someone sets another. Everyone sees who set it, and a request already vouched for keeps the wait it began with.")]
    RecoveryWait {
        /// The new wait, e.g. 48h, 3d, 1w [default: show it]
        wait: Option<String>,
    },
}

impl CircleCommand {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let (backend, global, now) = (&cx.backend, &cx.global, cx.now);
        match self {
            CircleCommand::Create {
                name,
                display_name,
                about,
                again,
            } => {
                let display_name = cx.default_name(display_name);
                if !again {
                    let same = backend.circle_ids()?.into_iter().find(|id| {
                        backend
                            .read_circle(*id)
                            .is_ok_and(|c| c.name().trim().eq_ignore_ascii_case(name.trim()))
                    });
                    if let Some(id) = same {
                        return Err(bad_input(format!(
                            "you are in a circle called \"{}\" already ({}); to start another of that name, add --again",
                            name.trim(),
                            id.fmt_short()
                        )));
                    }
                }
                create(backend, global, &name, display_name, about, now)
            }
            CircleCommand::List => list(backend, global),
            CircleCommand::Leave { forget } => leave(backend, global, forget, now),
            CircleCommand::RecoveryWait { wait } => {
                recovery_wait(backend, global, wait.as_deref(), now)
            }
        }
    }
}

/// `roundtable join`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable join roundtable... --as Sam")]
pub(crate) struct JoinArgs {
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
}

impl JoinArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let (backend, global, now) = (&cx.backend, &cx.global, cx.now);
        if let Some(n) = &self.device_name {
            roundtable_core::circle::check_device_name(n)?;
        }
        let display_name = cx.default_name(self.display_name);
        let circles = network::join(
            backend,
            global,
            &self.ticket,
            display_name.as_deref(),
            self.relay.as_deref(),
            now,
        )?;
        name_this_device(backend, &circles, self.device_name, now)
    }
}

/// `roundtable pair`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: on your laptop, roundtable pair --qr; on your phone, roundtable pair TICKET --name \"Ana's phone\""
)]
pub(crate) struct PairArgs {
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
}

impl PairArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let (backend, global, now) = (&cx.backend, &cx.global, cx.now);
        let Some(t) = self.ticket else {
            let circle = select(backend, global)?;
            let args = network::Invitation {
                kind: InviteKind::Device,
                expires: "1h",
                uses: 1,
                qr: self.qr,
            };
            return network::invite(backend, global, circle, args, now);
        };
        if let Some(n) = &self.name {
            roundtable_core::circle::check_device_name(n)?;
        }
        let circles = network::join(backend, global, &t, None, self.relay.as_deref(), now)?;
        name_this_device(backend, &circles, self.name, now)
    }
}

/// `roundtable repair`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable repair --circle \"Tuesday Supper\"")]
pub(crate) struct RepairArgs;

impl RepairArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        repair(&cx.backend, &cx.global)
    }
}

fn create(
    backend: &Backend,
    global: &Global,
    name: &str,
    display_name: Option<String>,
    about: Option<String>,
    now: Timestamp,
) -> Result<()> {
    let about = about.unwrap_or_default();
    let (id, member, display_name) = match backend.node() {
        Some(client) => {
            let me = backend
                .home()
                .identity()?
                .ok_or_else(|| anyhow::anyhow!("the node has no identity"))?;
            let display_name = display_name
                .or_else(|| known_name(backend, &me))
                .ok_or_else(|| {
                    bad_input("say what the circle should call you: add --as YOUR_NAME")
                })?;
            let id = client
                .create(name, &about, display_name.trim(), now)
                .map_err(Backend::failed)?;
            (id, me.member.id(), display_name)
        }
        None => {
            let home = backend.home();
            let lock = home.lock("roundtable circle create")?;
            let (me, _) = home.ensure_identity(&lock)?;
            let display_name = display_name
                .or_else(|| known_name(backend, &me))
                .ok_or_else(|| {
                    bad_input("say what the circle should call you: add --as YOUR_NAME")
                })?;
            let circle = Circle::create(
                name,
                &about,
                &me.cert,
                &Profile::named(display_name.trim()),
                now,
                &mut rand::rng(),
            )?;
            let keys = roundtable_core::Keyring::with(roundtable_core::EpochKey::random(
                circle.id(),
                0,
                &me.device,
                &mut rand::rng(),
            ));
            home.create_circle(&lock, &circle, &keys)?;
            (circle.id(), me.member.id(), display_name)
        }
    };
    if global.json {
        return render::json(&serde_json::json!({
            "circle": id.to_string(),
            "name": name.trim(),
            "member": member.to_string(),
        }));
    }
    name_this_device(backend, &[id], None, now)?;
    if render::silent() {
        return Ok(());
    }
    say!(
        "Created the circle \"{}\" ({}). You are {} here.",
        name.trim(),
        id.fmt_short(),
        display_name.trim()
    );
    say!("Say how you are: roundtable checkin --mood okay \"a few words\"");
    say!("{}", super::identity::BACKUP_HINT);
    Ok(())
}

/// `circle leave`: this member leaves the chosen circle for good.
fn leave(backend: &Backend, global: &Global, forget: bool, now: Timestamp) -> Result<()> {
    let Some(me) = backend.home().identity()? else {
        return Err(no_circle_yet());
    };
    let id = select(backend, global)?;
    let name = backend.read_circle(id)?.name();
    let op = Op::Leave { forget };
    backend.perform(id, &op, now, |home, lock| {
        let mut store = home.open_circle(lock, id)?;
        let out = store.edit(|c| -> Result<_, roundtable_store::StoreError> {
            Ok(c.perform(&op, me.member.id(), now, &mut rand::rng())?)
        })?;
        if forget {
            home.mark_forget(lock, id)?;
        }
        Ok(out)
    })?;
    let copy = if forget {
        "then it forgets its copy"
    } else {
        "your copy stays on this device"
    };
    render::done(
        global.json,
        &format!(
            "You left \"{name}\". The others will know when this device next syncs with one of them (`roundtable up`); from then on it no longer serves the circle, and {copy}."
        ),
        None,
    )
}

/// Shows the circle's wait for recoveries, or sets it.
fn recovery_wait(
    backend: &Backend,
    global: &Global,
    wait: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    let Some(wait) = wait else {
        let view = read(backend, global)?.view();
        if global.json {
            return render::json(&json!({ "hours": view.recovery_wait_hours() }));
        }
        say!(
            "A member's own devices may refuse a request to become theirs for {}.",
            view.recovery_wait_words()
        );
        return Ok(());
    };
    const HOUR_MS: i64 = 3_600_000;
    let ms = crate::network::parse_expiry(wait)?;
    if ms % HOUR_MS != 0 {
        return Err(bad_input(format!(
            "\"{wait}\" is not a whole number of hours; write it like 48h, 3d or 1w"
        )));
    }
    let hours = u64::try_from(ms / HOUR_MS).unwrap_or(u64::MAX);
    let words = roundtable_core::membership::wait_words(hours);
    perform_and_say(
        backend,
        global,
        (
            Op::RecoveryWait { hours },
            format!(
                "From now on, a member's own devices may refuse a request to become theirs for {words}."
            ),
        ),
        now,
    )
}

/// What this computer is called, for naming its device.
pub(super) fn host_name() -> String {
    let host = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_owned();
    if host.is_empty() {
        "this device".into()
    } else {
        host
    }
}

/// Names this device in `circles` (`name`, or this computer's name). A
/// device that cannot be named keeps working unnamed; only a name that is
/// not allowed is an error.
pub(super) fn name_this_device(
    backend: &Backend,
    circles: &[CircleId],
    name: Option<String>,
    now: Timestamp,
) -> Result<()> {
    let explicit = name.is_some();
    let name = name.unwrap_or_else(host_name);
    let op = Op::NameDevice { name };
    let Some(me) = backend.home().identity()? else {
        return Ok(());
    };
    for id in circles {
        let result = backend.perform(*id, &op, now, |home, lock| {
            let mut store = home.open_circle(lock, *id)?;
            store.edit(|c| Ok(c.perform(&op, me.member.id(), now, &mut rand::rng())?))
        });
        if let Err(e) = result
            && explicit
        {
            return Err(e);
        }
    }
    Ok(())
}

/// The name this person uses in the circles they are already in.
fn known_name(backend: &Backend, me: &Identity) -> Option<String> {
    let member = me.member.id();
    backend
        .circle_ids()
        .ok()?
        .into_iter()
        .filter_map(|id| backend.read_circle(id).ok())
        .filter_map(|c| {
            c.view()
                .members
                .get(&member)
                .map(|m| (m.joined_at, m.name.clone()))
        })
        .max()
        .map(|(_, name)| name)
}

fn list(backend: &Backend, global: &Global) -> Result<()> {
    let mut rows = Vec::new();
    for id in backend.circle_ids()? {
        rows.push((id, backend.read_circle(id).map_err(|e| format!("{e:#}"))));
    }
    let me = backend
        .home()
        .identity()
        .ok()
        .flatten()
        .map(|i| i.member.id());
    circle_list(&rows, me, global.json)
}

fn repair(backend: &Backend, global: &Global) -> Result<()> {
    if backend.node().is_some() {
        return Err(anyhow::anyhow!(
            "the node is running and holds the circles open; stop `roundtable up` first, then repair"
        ));
    }
    let home = backend.home();
    let lock = home.lock("roundtable repair")?;
    let id = select(backend, global)?;
    let report = home.repair_circle(&lock, id)?;
    repaired(id, &report, global.json)
}

// --- how it looks ---

fn circle_list(
    rows: &[(CircleId, Result<Circle, String>)],
    me: Option<roundtable_core::MemberId>,
    as_json: bool,
) -> Result<()> {
    // What a member the circle removed is told, the same everywhere.
    let removed = |c: &Circle, v: &roundtable_core::CircleView| {
        me.and_then(|me| c.membership().removal_notice(v, me))
    };
    if as_json {
        let items: Vec<_> = rows
            .iter()
            .map(|(id, c)| match c {
                Ok(c) => {
                    let v = c.view();
                    let mut row = json!({
                        "id": id.to_string(),
                        "name": v.circle.name,
                        "members": roundtable_core::Membership::from_view(&v)
                            .members
                            .iter()
                            .map(|m| v.name_of(m))
                            .collect::<Vec<_>>(),
                    });
                    if let Some(notice) = removed(c, &v) {
                        row["removed"] = json!(notice);
                    }
                    row
                }
                Err(e) => json!({ "id": id.to_string(), "error": e }),
            })
            .collect();
        return render::json(&serde_json::Value::Array(items));
    }
    if rows.is_empty() {
        say!("You are in no circle yet. Start one: roundtable circle create NAME --as YOUR_NAME");
    }
    for (id, c) in rows {
        match c {
            Ok(c) => {
                let v = c.view();
                let current = roundtable_core::Membership::from_view(&v).members;
                let names: Vec<String> = current.iter().map(|m| v.name_of(m)).collect();
                say!(
                    "{}  {}  ({})",
                    id.fmt_short(),
                    v.circle.name,
                    names.join(", ")
                );
                if let Some(notice) = removed(c, &v) {
                    say!("      {notice}");
                }
            }
            Err(e) => say!("{}  cannot be read: {e}", id.fmt_short()),
        }
    }
    Ok(())
}

fn repaired(id: CircleId, r: &Repaired, as_json: bool) -> Result<()> {
    if as_json {
        return render::json(&json!({
            "circle": id.to_string(),
            "set_aside": r.set_aside.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "changes_kept": r.changes_kept,
            "changes_missing": r.changes_missing,
        }));
    }
    if r.set_aside.is_empty() {
        say!("Nothing needed repair.");
        return Ok(());
    }
    for p in &r.set_aside {
        say!("Kept the damaged file aside: {}", p.display());
    }
    say!(
        "Recovered every change that verifies ({} kept).",
        r.changes_kept
    );
    if r.changes_missing > 0 {
        say!(
            "{} changes could not be recovered here; other members' devices may still have them and will send them when you sync.",
            r.changes_missing
        );
    }
    Ok(())
}
