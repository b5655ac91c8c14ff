//! What each command does. Edits open the store as its only writer, commit,
//! and return only once the change is durable; reads never write.

use std::path::PathBuf;

use anyhow::{Context, Result};
use jiff::tz::TimeZone;
use roundtable_core::quiet::{QuietRule, quiet, quiet_for, stepping_back};
use roundtable_core::{
    Answer, Circle, CircleId, CircleView, EntityId, InviteKind, MIN_PREFIX, MemberId, Mood, Op,
    Profile, RequestKind, Resolved, Timestamp, dates, export, resolve_prefix,
};
use roundtable_node::control::ControlRequest;
use roundtable_store::{Home, Identity};

use crate::backend::Backend;
use crate::cli::{Cli, Command, Global};
use crate::render;
use crate::{bad_input, network};

pub(crate) mod care;
pub(crate) mod circles;
pub(crate) mod gatherings;
mod help;
pub(crate) mod identity;
pub(crate) mod people;
mod settle;
mod since;
pub(crate) mod steward;
mod when;

use circles::CircleCommand;

use circles::{create, leave, list, name_this_device, recovery_wait, repair};
use when::{now, parse_date, parse_when};

pub(crate) fn run(mut cli: Cli) -> Result<()> {
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "roundtable", &mut render::out::stdout());
            return Ok(());
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut render::out::stdout())?;
            return Ok(());
        }
        Command::Autostart { ref state } => {
            return crate::launcher::autostart(&cli.global, state == "on");
        }
        _ => {}
    }
    let config_path = crate::config::path(cli.global.home.as_deref());
    let config = crate::config::load(config_path.as_deref())?;
    if cli.global.circle.is_none() {
        cli.global.circle = config.circle.clone();
    }
    let home = Home::new(home_dir(&cli.global)?);
    // A home a newer release wrote is refused before anything here reads
    // or writes it.
    home.check_format()?;
    if let Command::Open {
        print,
        web,
        ref relay,
    } = cli.command
    {
        let args = crate::launcher::OpenArgs {
            print,
            web,
            relay: relay.clone(),
        };
        return crate::launcher::open(&home, &cli.global, &args);
    }
    let backend = &Backend::new(home);
    let global = &cli.global;
    let now = now(global)?;
    let default_name = |given: Option<String>| given.or_else(|| config.name.clone());
    let view = || -> Result<CircleView> { Ok(read(backend, global)?.view()) };
    match cli.command {
        Command::Completions { .. }
        | Command::Man
        | Command::Autostart { .. }
        | Command::Open { .. } => Ok(()),
        Command::Config => render::config(config_path, &config, global.json),
        Command::Up {
            listen,
            relay,
            no_mdns,
            web,
            no_web,
            no_browser,
        } => {
            let web = network::WebChoice {
                addr: (!no_web).then_some(web),
                browser: !no_browser,
            };
            network::up(backend, global, listen, &relay, no_mdns, web)
        }
        Command::Web { open, new_link } => network::web(backend, global, open, new_link),
        Command::Status => network::status(backend, global),
        Command::Invite {
            action: Some(action),
            ..
        } => people::invite(backend, global, action, now),
        Command::Identity(command) => identity::identity(backend, global, command),
        Command::Recover(args) => identity::recover(backend, global, args),
        Command::Device(command) => people::device(backend, global, command, now),
        Command::Remove(command) => people::remove(backend, global, command, now),
        Command::Vouch {
            request,
            member,
            reason,
        } => {
            let args = people::VouchArgs {
                request: &request,
                member: member.as_deref(),
                reason: reason.unwrap_or_default(),
            };
            people::vouch(backend, global, args, now)
        }
        Command::Refuse { request } => people::refuse(backend, global, &request, now),
        Command::Invite {
            action: None,
            expires,
            uses,
            qr,
        } => {
            let circle = select(backend, global)?;
            let args = network::InviteArgs {
                kind: InviteKind::Member,
                expires: &expires,
                uses,
                qr,
            };
            network::invite(backend, global, circle, args, now)
        }
        Command::Join {
            ticket,
            display_name,
            device_name,
            relay,
        } => {
            if let Some(n) = &device_name {
                roundtable_core::circle::check_device_name(n)?;
            }
            let display_name = default_name(display_name);
            let circles = network::join(
                backend,
                global,
                &ticket,
                display_name.as_deref(),
                relay.as_deref(),
                now,
            )?;
            name_this_device(backend, &circles, device_name, now)
        }
        Command::Pair {
            ticket: Some(t),
            name,
            relay,
            ..
        } => {
            if let Some(n) = &name {
                roundtable_core::circle::check_device_name(n)?;
            }
            let circles = network::join(backend, global, &t, None, relay.as_deref(), now)?;
            name_this_device(backend, &circles, name, now)
        }
        Command::Pair {
            ticket: None, qr, ..
        } => {
            let circle = select(backend, global)?;
            let args = network::InviteArgs {
                kind: InviteKind::Device,
                expires: "1h",
                uses: 1,
                qr,
            };
            network::invite(backend, global, circle, args, now)
        }
        Command::Id => id(backend.home(), global),
        Command::Circle(CircleCommand::Create {
            name,
            display_name,
            about,
            again,
        }) => {
            let display_name = default_name(display_name);
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
        Command::Circle(CircleCommand::List) => list(backend, global),
        Command::Circle(CircleCommand::Leave { forget }) => leave(backend, global, forget, now),
        Command::Circle(CircleCommand::RecoveryWait { wait }) => {
            recovery_wait(backend, global, wait.as_deref(), now)
        }
        Command::Members => render::members(&read(backend, global)?.view(), global.json),
        Command::Feed {
            since_last: true, ..
        } => since::since_last(backend, global, now),
        Command::Feed { limit, .. } => {
            let view = read(backend, global)?.view();
            let me = backend.home().identity()?.map(|i| i.member.id());
            if !global.json
                && let Some(me) = me
            {
                settle::heads_up(&view, me, now);
            }
            render::feed(&view, limit, now, global.json)
        }
        Command::Show => render::show(&read(backend, global)?.view(), now, global.json),
        Command::Settle { id, choice } => settle::run(backend, global, id, choice, now),
        Command::Quiet => {
            let view = read(backend, global)?.view();
            let me = backend.home().identity()?.map(|i| i.member.id());
            let quiet = match me {
                Some(me) => quiet_for(&view, now, &QuietRule::default(), me),
                None => quiet(&view, now, &QuietRule::default()),
            };
            render::quiet(
                &quiet,
                &stepping_back(&view, now, &TimeZone::system()),
                global.json,
            )
        }
        Command::Gathering(command) => gatherings::run(backend, global, command, now),
        Command::Export { format, out } => {
            let view = read(backend, global)?.view();
            // `--json` asks for JSON whatever --format says.
            let format = if global.json { "json" } else { format.as_str() };
            let text = match format {
                "json" => view.to_canonical_json(),
                _ => export::markdown(&view, &TimeZone::system()),
            };
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("could not write {}", path.display()))?;
                    render::done(global.json, &format!("Wrote {}.", path.display()), None)
                }
                None if format == "json" => {
                    render::out::raw(&text);
                    Ok(())
                }
                None => {
                    render::out::block(&text);
                    Ok(())
                }
            }
        }
        Command::Repair => repair(backend, global),
        Command::Steward(command) => steward::run(backend, global, command, now),
        // Edits: prefixes and names are resolved against the circle as it stands.
        Command::Checkin { mood, text } => {
            perform_and_say(backend, global, care::checkin(&mood, text)?, now)
        }
        Command::Reply { to, text } => {
            let edit = care::reply(&view()?, &to, text)?;
            perform_and_say(backend, global, edit, now)
        }
        Command::Profile(args) => perform_and_say(backend, global, care::profile(args)?, now),
        Command::Moment { text } => perform_and_say(backend, global, care::moment(text), now),
        Command::Away { until, note } => {
            let edit = care::away(until.as_deref(), note, now)?;
            perform_and_say(backend, global, edit, now)
        }
        Command::Back => perform_and_say(backend, global, care::back(), now),
        Command::Edit { id, text } => {
            let edit = care::edit_entry(&view()?, &id, text)?;
            perform_and_say(backend, global, edit, now)
        }
        Command::Withdraw { id } => {
            let edit = care::withdraw_entry(&view()?, &id)?;
            perform_and_say(backend, global, edit, now)
        }
        Command::Ask { text, when, hands } => {
            let edit = help::request(RequestKind::Ask, text, when, hands);
            perform_and_say(backend, global, edit, now)
        }
        Command::Offer { text, when } => {
            let edit = help::request(RequestKind::Offer, text, when, 1);
            perform_and_say(backend, global, edit, now)
        }
        Command::Commit { to, text } => {
            let edit = help::commit(&view()?, &to, text)?;
            perform_and_say(backend, global, edit, now)
        }
        Command::Done { id, thanks } => {
            let edit = help::done(&view()?, &id, thanks)?;
            perform_and_say(backend, global, edit, now)
        }
    }
}

/// Performs one edit (a resolved [`Op`] and the words to say once it is
/// done) and says it.
fn perform_and_say(
    backend: &Backend,
    global: &Global,
    (op, message): (Op, String),
    now: Timestamp,
) -> Result<()> {
    let id = perform(backend, global, &op, now)?;
    render::done(global.json, &message, id)
}

fn home_dir(global: &Global) -> Result<PathBuf> {
    if let Some(h) = &global.home {
        return Ok(h.clone());
    }
    directories::ProjectDirs::from("", "", "roundtable")
        .map(|d| d.data_dir().to_path_buf())
        .context("could not find a data directory for this user; pass --home DIR")
}

fn id(home: &Home, global: &Global) -> Result<()> {
    let (me, created) = match home.identity()? {
        Some(me) => (me, false),
        None => {
            let lock = home.lock("roundtable id")?;
            home.ensure_identity(&lock)?
        }
    };
    render::identity(&me, created, global.json)
}

/// Opens the chosen circle for reading, without taking the writer's lock.
fn read(backend: &Backend, global: &Global) -> Result<Circle> {
    let _shared = backend.read_lock()?;
    let id = select(backend, global)?;
    backend.read_circle(id)
}

/// Performs one edit of the chosen circle; returns once the change is
/// durable on disk (written by the running node, or here as the home's only
/// writer).
fn perform(
    backend: &Backend,
    global: &Global,
    op: &Op,
    now: Timestamp,
) -> Result<Option<EntityId>> {
    let Some(me) = backend.home().identity()? else {
        return Err(no_circle_yet());
    };
    let id = select(backend, global)?;
    backend.perform(id, op, now, |home, lock| {
        let mut store = home.open_circle(lock, id)?;
        // A member key a recovery gave its member acts in their name.
        let key = me.member.id();
        let member = store.circle().membership().acting_as(key);
        if !store.circle().is_member(member) {
            let circle = store.circle();
            // A removed member is told as everywhere, in the core's words.
            if let Some(notice) = circle.membership().removal_notice(&circle.view(), member) {
                return Err(bad_input(notice));
            }
            let why = "you are not a member of \"{}\"; ask a member for an invitation";
            return Err(bad_input(why.replace("{}", &circle.name())));
        }
        store.edit(|c| Ok(c.perform(op, member, now, &mut rand::rng())?))
    })
}

fn no_circle_yet() -> anyhow::Error {
    bad_input(
        "you are in no circle yet: start one with `roundtable circle create NAME --as YOUR_NAME`",
    )
}

/// Picks the circle named by `--circle` (a name or an id prefix), or the only one.
fn select(backend: &Backend, global: &Global) -> Result<CircleId> {
    let ids = backend.circle_ids()?;
    let names = || -> Vec<(CircleId, String)> {
        ids.iter()
            .map(|id| {
                let name = backend
                    .read_circle(*id)
                    .map(|c| c.name())
                    .unwrap_or_else(|_| "(damaged)".into());
                (*id, name)
            })
            .collect()
    };
    let listing = |named: &[(CircleId, String)]| {
        named
            .iter()
            .map(|(id, n)| format!("\"{n}\" ({})", id.fmt_short()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &global.circle {
        None => match ids.len() {
            0 => Err(no_circle_yet()),
            1 => Ok(ids[0]),
            _ => Err(bad_input(format!(
                "you are in several circles; say which with --circle NAME: {}",
                listing(&names())
            ))),
        },
        Some(wanted) => {
            let named = names();
            let by_name: Vec<CircleId> = named
                .iter()
                .filter(|(_, n)| n.eq_ignore_ascii_case(wanted.trim()))
                .map(|(id, _)| *id)
                .collect();
            if by_name.len() == 1 {
                return Ok(by_name[0]);
            }
            match resolve_prefix(wanted, ids.iter().copied()) {
                Resolved::One(id) => Ok(id),
                Resolved::Ambiguous(_) => Err(bad_input(format!(
                    "\"{wanted}\" matches several circles; type more of the id: {}",
                    listing(&named)
                ))),
                Resolved::None | Resolved::TooShort if by_name.len() > 1 => {
                    Err(bad_input(format!(
                        "several circles are called \"{wanted}\"; use the start of the id: {}",
                        listing(&named)
                    )))
                }
                Resolved::None | Resolved::TooShort if named.is_empty() => Err(no_circle_yet()),
                Resolved::None | Resolved::TooShort => Err(bad_input(format!(
                    "no circle called \"{wanted}\"; yours are: {}",
                    listing(&named)
                ))),
            }
        }
    }
}

/// Finds an entry by the start of its id among `ids`.
fn resolve_in<'a>(
    ids: impl Iterator<Item = &'a EntityId>,
    prefix: &str,
    noun: &str,
) -> Result<EntityId> {
    match resolve_prefix(prefix, ids.copied()) {
        Resolved::One(id) => Ok(id),
        Resolved::None => Err(bad_input(format!(
            "this device's copy has no {noun} with an id starting with \"{prefix}\"; `roundtable feed` shows the ids (if someone has just posted it, it arrives when your node next syncs with theirs: see `roundtable status`)"
        ))),
        Resolved::Ambiguous(_) => Err(bad_input(format!(
            "several entries have ids starting with \"{prefix}\"; type more of the id"
        ))),
        Resolved::TooShort => Err(bad_input(format!(
            "\"{prefix}\" is too short to find the {noun} by: type at least {MIN_PREFIX} characters of its id"
        ))),
    }
}

/// Finds a member by name (any case, as `members` shows it) or the start
/// of their member id.
fn resolve_member(view: &CircleView, who: &str) -> Result<MemberId> {
    match view.find_member(who) {
        Resolved::One(id) => Ok(id),
        Resolved::Ambiguous(several) => {
            let listing: Vec<String> = several
                .iter()
                .map(|id| format!("{} [{}]", view.name_of(id), id.fmt_short()))
                .collect();
            Err(bad_input(format!(
                "{} people here are called \"{}\": {}; say which with the start of their id",
                several.len(),
                who.trim(),
                listing.join(", ")
            )))
        }
        Resolved::TooShort => Err(bad_input(format!(
            "no one here is called \"{who}\", and an id needs at least {MIN_PREFIX} characters; `roundtable members` lists who is here"
        ))),
        Resolved::None => Err(bad_input(format!(
            "no one in this circle is called \"{who}\"; `roundtable members` lists who is here"
        ))),
    }
}

/// What an entry is, for a confirmation: "Lee's check-in of Tue 8 Dec".
fn what_it_is(view: &CircleView, id: EntityId) -> String {
    let (author, what, at) = if let Some(c) = view.checkins.get(&id) {
        (c.author, "check-in", c.at)
    } else if let Some(m) = view.moments.get(&id) {
        (m.author, "moment", m.at)
    } else if let Some(r) = view.requests.get(&id) {
        (r.author, r.kind.as_str(), r.at)
    } else {
        return "it".into();
    };
    format!(
        "{}'s {what} of {}",
        view.name_of(&author),
        render::local_day(at)
    )
}
