//! Gatherings: proposing one, answering, saying what you will bring,
//! recording who came, and what is still to come.

use serde_json::json;

use super::*;

// What can be done about gatherings.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum GatheringCommand {
    /// Propose a gathering
    #[command(
        after_help = "Example: roundtable gathering new \"Soup night\" --at \"2026-12-01 19:00\" --place \"Maya's kitchen\""
    )]
    New {
        /// What it is
        title: String,
        /// When it starts: "tuesday 7pm", "2026-12-01 19:00", "8 Dec 6pm" (in --tz)
        #[arg(long, value_name = "WHEN")]
        at: String,
        /// The time zone it happens in [default: this computer's]
        #[arg(long, value_name = "ZONE")]
        tz: Option<String>,
        /// Where
        #[arg(long, default_value = "")]
        place: String,
        /// Who hosts (a name or member id; repeat for several) [default: you]
        #[arg(long = "host", value_name = "MEMBER")]
        hosts: Vec<String>,
        /// Record a gathering that already happened
        #[arg(long)]
        past: bool,
        /// The potluck asks for one of each dish: the same dish twice is
        /// a double-up
        #[arg(long)]
        one_of_each: bool,
    },
    /// Change a gathering's title, time or place (its proposer or hosts)
    #[command(after_help = "Example: roundtable gathering edit 3fa2 --at \"thursday 7pm\"")]
    Edit {
        /// The gathering's id, or the start of it
        id: String,
        /// A new title
        #[arg(long)]
        title: Option<String>,
        /// A new start: "thursday 7pm", "2026-12-01 19:00" (in --tz)
        #[arg(long, value_name = "WHEN")]
        at: Option<String>,
        /// The time zone of --at [default: the gathering's]
        #[arg(long, value_name = "ZONE")]
        tz: Option<String>,
        /// A new place
        #[arg(long)]
        place: Option<String>,
    },
    /// Gatherings still to come, soonest first
    #[command(after_help = "Example: roundtable gathering upcoming")]
    Upcoming,
    /// Say whether you are coming: yes, no or maybe
    #[command(after_help = "Example: roundtable gathering rsvp 3fa2 yes")]
    Rsvp {
        /// The gathering's id, or the start of it
        id: String,
        /// yes, no or maybe
        #[arg(value_parser = ["yes", "no", "maybe"], required_unless_present = "undo")]
        answer: Option<String>,
        /// A word with it ("running late"); answering again replaces it
        #[arg(long, default_value = "")]
        note: String,
        /// Take your answer back
        #[arg(long, conflicts_with = "answer")]
        undo: bool,
    },
    /// Potluck: say what you will bring
    #[command(after_help = "Example: roundtable gathering bring 3fa2 lentil soup --dietary vegan")]
    Bring {
        /// The gathering's id, or the start of it
        id: String,
        /// What you will bring
        #[arg(required = true)]
        dish: Vec<String>,
        /// Dietary notes (vegan, has nuts, ...)
        #[arg(long, default_value = "")]
        dietary: String,
        /// Instead of what you said you would bring (else you bring both)
        #[arg(long)]
        instead: bool,
    },
    /// Record who came [default: you]
    #[command(after_help = "Example: roundtable gathering came 3fa2 Maya Sam")]
    Came {
        /// The gathering's id, or the start of it
        id: String,
        /// Who came (names or member ids)
        members: Vec<String>,
    },
}

impl GatheringCommand {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        if let GatheringCommand::Upcoming = self {
            return upcoming(&cx.view()?, cx.now, cx.global.json);
        }
        cx.perform_and_say(to_op(&cx.backend, &cx.global, self, cx.now)?)
    }
}

/// Turns a gathering command into a resolved edit and the words to say.
fn to_op(
    backend: &Backend,
    global: &Global,
    command: GatheringCommand,
    now: Timestamp,
) -> Result<(Op, String)> {
    let view = || -> Result<CircleView> { Ok(read(backend, global)?.view()) };
    Ok(match command {
        GatheringCommand::Upcoming => {
            return Err(anyhow::anyhow!("listing gatherings makes no edit"));
        }
        GatheringCommand::New {
            title,
            at,
            tz,
            place,
            hosts,
            past,
            one_of_each,
        } => {
            let starts = parse_when(&at, tz.as_deref(), now, past)?.to_string();
            let v = view()?;
            let hosts = hosts
                .iter()
                .map(|h| resolve_member(&v, h))
                .collect::<Result<Vec<_>>>()?;
            let message = format!("\"{title}\" is on the table.");
            (
                Op::Gathering {
                    title,
                    starts,
                    place,
                    hosts,
                    one_of_each,
                },
                message,
            )
        }
        GatheringCommand::Edit {
            id,
            title,
            at,
            tz,
            place,
        } => edit(&view()?, &id, title, at.as_deref(), tz, place, now)?,
        GatheringCommand::Rsvp {
            id,
            answer,
            note,
            undo,
        } => {
            let gathering = resolve_in(view()?.gatherings.keys(), &id, "gathering")?;
            if undo {
                return Ok((
                    Op::WithdrawRsvp { gathering },
                    "Your answer is taken back.".into(),
                ));
            }
            let answer = match answer.as_deref() {
                Some("yes") => Answer::Yes,
                Some("no") => Answer::No,
                _ => Answer::Maybe,
            };
            (
                Op::Rsvp {
                    gathering,
                    answer,
                    note,
                },
                format!("You said {}.", answer.as_str()),
            )
        }
        GatheringCommand::Bring {
            id,
            dish,
            dietary,
            instead,
        } => bring(backend, global, &id, dish, dietary, instead)?,
        GatheringCommand::Came { id, members } => {
            let v = view()?;
            let gathering = resolve_in(v.gatherings.keys(), &id, "gathering")?;
            let who = members
                .iter()
                .map(|m| resolve_member(&v, m))
                .collect::<Result<Vec<_>>>()?;
            (Op::Came { gathering, who }, "Noted who came.".into())
        }
    })
}

/// A gathering's new title, time or place.
fn edit(
    v: &CircleView,
    id: &str,
    title: Option<String>,
    at: Option<&str>,
    tz: Option<String>,
    place: Option<String>,
    now: Timestamp,
) -> Result<(Op, String)> {
    let gathering = resolve_in(v.gatherings.keys(), id, "gathering")?;
    let tz = tz.or_else(|| {
        v.gatherings
            .get(&gathering)
            .and_then(|g| g.starts_zoned())
            .and_then(|z| z.time_zone().iana_name().map(str::to_owned))
    });
    let starts = at
        .map(|at| parse_when(at, tz.as_deref(), now, false))
        .transpose()?
        .map(|z| z.to_string());
    if title.is_none() && starts.is_none() && place.is_none() {
        return Err(bad_input(
            "say what to change: --title, --at or --place".to_owned(),
        ));
    }
    let message = format!(
        "\"{}\" is changed; everyone will see it.",
        v.gatherings
            .get(&gathering)
            .map_or("", |g| g.title.as_str())
    );
    Ok((
        Op::EditGathering {
            gathering,
            title,
            starts,
            place,
        },
        message,
    ))
}

/// What you will bring, said against what you said before.
fn bring(
    backend: &Backend,
    global: &Global,
    id: &str,
    dish: Vec<String>,
    dietary: String,
    instead: bool,
) -> Result<(Op, String)> {
    let circle = read(backend, global)?;
    let gathering = resolve_in(circle.view().gatherings.keys(), id, "gathering")?;
    let dish = dish.join(" ");
    let before: Vec<String> = match backend.home().identity()? {
        Some(me) => circle
            .dishes_of(gathering, me.member.id())
            .into_iter()
            .map(|(_, d)| d)
            .collect(),
        None => Vec::new(),
    };
    let message = match (before.is_empty(), instead) {
        (true, _) => format!("You're bringing {dish}."),
        (false, true) => format!(
            "You're bringing {dish} instead of {}.",
            before.join(" and ")
        ),
        (false, false) => format!(
            "You're bringing {dish} as well as {}. (To bring it instead, add --instead.)",
            before.join(" and ")
        ),
    };
    Ok((
        Op::Bring {
            gathering,
            dish,
            dietary,
            instead,
        },
        message,
    ))
}

// --- how it looks ---

pub(super) fn upcoming(view: &CircleView, now: Timestamp, as_json: bool) -> Result<()> {
    let items = view.upcoming(now);
    if as_json {
        let out: Vec<_> = items
            .iter()
            .map(|(id, gathering)| {
                let mut v = serde_json::to_value(gathering).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("id".into(), json!(id.to_string()));
                }
                v
            })
            .collect();
        return render::json(&serde_json::Value::Array(out));
    }
    if items.is_empty() {
        say!(
            "Nothing on the calendar. Propose one: roundtable gathering new TITLE --at \"2026-12-01 19:00\""
        );
        return Ok(());
    }
    for (id, gathering) in items {
        say!("{}  [{}]", gathering.title, render::short(id));
        say!(
            "  {}{}",
            render::starts(gathering),
            if gathering.place.is_empty() {
                String::new()
            } else {
                format!(", at {}", gathering.place)
            }
        );
        let hosts: Vec<String> = gathering.hosts.keys().map(|h| view.name_of(h)).collect();
        say!("  hosted by {}", hosts.join(" and "));
        for answer in [Answer::Yes, Answer::Maybe, Answer::No] {
            let who: Vec<String> = gathering
                .rsvps
                .iter()
                .filter(|(_, r)| r.answer == answer)
                .map(|(m, r)| {
                    if r.note.is_empty() {
                        view.name_of(m)
                    } else {
                        format!("{} (\"{}\")", view.name_of(m), r.note)
                    }
                })
                .collect();
            if !who.is_empty() {
                let label = match answer {
                    Answer::Yes => "coming",
                    Answer::Maybe => "maybe",
                    Answer::No => "can't make it",
                };
                say!("  {label}: {}", who.join(", "));
            }
        }
        for (did, d) in &gathering.dishes {
            let diet = if d.dietary.is_empty() {
                String::new()
            } else {
                format!(" ({})", d.dietary)
            };
            say!(
                "  {} brings {}{diet}  [{}]",
                view.name_of(&d.author),
                d.dish,
                render::short(did)
            );
        }
        say!();
    }
    Ok(())
}
