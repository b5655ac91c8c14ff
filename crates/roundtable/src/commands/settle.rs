//! Double-ups, as the core finds them: said in words to the people they
//! concern, and settled by one of the choices it offers (an ordinary
//! edit).

use roundtable_core::double_ups::{self, DoubleUp};
use serde_json::json;

use super::*;

/// `roundtable settle [ID [N]]`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  roundtable settle            what needs you, with numbered choices\n  roundtable settle 3fa2 1     take choice 1 of double-up 3fa2"
)]
pub(crate) struct SettleArgs {
    /// The double-up's id, or the start of it
    id: Option<String>,
    /// The number of the choice to take
    choice: Option<usize>,
}

impl SettleArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        settle(&cx.backend, &cx.global, self.id, self.choice, cx.now)
    }
}

fn settle(
    backend: &Backend,
    global: &Global,
    id: Option<String>,
    choice: Option<usize>,
    now: Timestamp,
) -> Result<()> {
    let view = read(backend, global)?.view();
    let Some(me) = backend.home().identity()?.map(|i| i.member.id()) else {
        return Err(no_circle_yet());
    };
    let tz = TimeZone::system();
    let mine: Vec<DoubleUp> = double_ups::find(&view, now)
        .into_iter()
        .filter(|d| d.concerns(me))
        .collect();
    let Some(id) = id else {
        if global.json {
            let all: Vec<_> = mine
                .iter()
                .map(|d| d.to_json(&view, me, now, &tz))
                .collect();
            return render::json(&json!(all));
        }
        if mine.is_empty() {
            say!("Nothing doubled up that concerns you.");
        }
        for d in &mine {
            say_one(&view, d, me, now, &tz);
        }
        return Ok(());
    };
    let d = match resolve_prefix(&id, mine.iter().map(|d| d.id.clone())) {
        Resolved::One(found) => mine.iter().find(|d| d.id == found),
        Resolved::Ambiguous(_) => {
            return Err(bad_input(format!(
                "several double-ups have ids starting with \"{id}\"; type more of the id"
            )));
        }
        Resolved::TooShort => {
            return Err(bad_input(format!(
                "\"{id}\" is too short to find the double-up by: type at least {MIN_PREFIX} characters of its id"
            )));
        }
        Resolved::None => None,
    };
    let Some(d) = d else {
        return Err(bad_input(format!(
            "nothing doubled up that concerns you has an id starting with \"{id}\": it may be settled already; `roundtable settle` lists what is left"
        )));
    };
    let choices = d.choices(me, now, &tz);
    let Some(n) = choice else {
        if global.json {
            return render::json(&d.to_json(&view, me, now, &tz));
        }
        say_one(&view, d, me, now, &tz);
        return Ok(());
    };
    let Some(c) = n.checked_sub(1).and_then(|i| choices.get(i)) else {
        return Err(bad_input(format!(
            "double-up {} has {} choice{} for you, not {n}; `roundtable settle {}` lists them",
            d.id,
            choices.len(),
            if choices.len() == 1 { "" } else { "s" },
            d.id
        )));
    };
    let message = format!("Settled: {}.", c.label.to_lowercase());
    perform_and_say(backend, global, (c.op.clone(), message), now)
}

/// What the feed opens with: the double-ups that concern `me`, in words,
/// with how to settle each.
pub(super) fn heads_up(view: &CircleView, me: MemberId, now: Timestamp) {
    let tz = TimeZone::system();
    let mine: Vec<DoubleUp> = double_ups::find(view, now)
        .into_iter()
        .filter(|d| d.concerns(me))
        .collect();
    for d in &mine {
        say_one(view, d, me, now, &tz);
    }
    if !mine.is_empty() {
        say!();
    }
}

fn say_one(view: &CircleView, d: &DoubleUp, me: MemberId, now: Timestamp, tz: &TimeZone) {
    say!("{}", d.says(view, Some(me), now, tz));
    for (i, c) in d.choices(me, now, tz).iter().enumerate() {
        say!("  {}: roundtable settle {} {}", c.label, d.id, i + 1);
    }
}
