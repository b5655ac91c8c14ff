//! What each command does, one module per group of commands, each holding
//! its commands' arguments and their runs; here, what they share. Edits
//! open the store as their only writer, commit, and return only once the
//! change is durable; reads never write.

use std::path::PathBuf;

use anyhow::{Context, Result};
use jiff::tz::TimeZone;
use roundtable_core::{
    Answer, Circle, CircleId, CircleView, EntityId, InviteKind, MIN_PREFIX, MemberId, Mood, Op,
    Profile, RequestKind, Resolved, Timestamp, dates, export, resolve_prefix,
};
use roundtable_store::{Home, Identity};

use crate::backend::Backend;
use crate::cli::Global;
use crate::config::Config;
use crate::render;
use crate::{bad_input, network};

pub(crate) mod care;
pub(crate) mod circles;
pub(crate) mod gatherings;
pub(crate) mod help;
pub(crate) mod identity;
pub(crate) mod node;
pub(crate) mod people;
pub(crate) mod reading;
pub(crate) mod settle;
pub(crate) mod setup;
mod since;
pub(crate) mod steward;
mod when;

use when::{now, parse_date, parse_when};

/// This device's home, as `--home` or the platform names it, and the
/// person's defaults; the config file's circle becomes `--circle`'s
/// default. A home a newer release wrote is refused before anything here
/// reads or writes it.
pub(crate) fn open_home(global: &mut Global) -> Result<(Home, Config, Option<PathBuf>)> {
    let config_path = crate::config::path(global.home.as_deref());
    let config = crate::config::load(config_path.as_deref())?;
    if global.circle.is_none() {
        global.circle = config.circle.clone();
    }
    let home = Home::new(home_dir(global)?);
    home.check_format()?;
    Ok((home, config, config_path))
}

/// What a command that works on this device's circles is given: where it
/// reads and writes, the options, the time it acts at and the person's
/// defaults.
pub(crate) struct Ctx {
    pub(crate) backend: Backend,
    pub(crate) global: Global,
    pub(crate) now: Timestamp,
    pub(crate) config: Config,
    pub(crate) config_path: Option<PathBuf>,
}

impl Ctx {
    pub(crate) fn new(
        home: Home,
        global: Global,
        config: Config,
        config_path: Option<PathBuf>,
    ) -> Result<Self> {
        let backend = Backend::new(home);
        let now = now(&global)?;
        Ok(Ctx {
            backend,
            global,
            now,
            config,
            config_path,
        })
    }

    /// The name given, or the one the config file says.
    pub(crate) fn default_name(&self, given: Option<String>) -> Option<String> {
        given.or_else(|| self.config.name.clone())
    }

    /// The chosen circle as it stands.
    pub(crate) fn view(&self) -> Result<CircleView> {
        Ok(read(&self.backend, &self.global)?.view())
    }

    /// Performs one edit of the chosen circle and says it.
    pub(crate) fn perform_and_say(&self, edit: (Op, String)) -> Result<()> {
        perform_and_say(&self.backend, &self.global, edit, self.now)
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
