//! Gatherings: propose one, answer, bring a dish, and note who came.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use roundtable_core::schema::limits;
use roundtable_core::view::Gathering;
use roundtable_core::{
    Answer, CircleId, CircleView, EntityId, MemberId, Membership, Op, Timestamp, dates,
};

use super::layout::{Place, page as layout};
use super::{Ctx, name, problem};
use crate::Shared;
use crate::app::{Failed, Failure, Ids, answer, shown};
use crate::forms::{Line, Posted, Typed, ticked};
use crate::live;

pub(crate) async fn list(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
) -> Result<Response, Failure> {
    Ok(shown(render_list(&app, &ctx, c, None).await?, &ctx.said))
}

fn summary(app: &Shared, view: &CircleView, c: CircleId, id: &EntityId, g: &Gathering) -> Markup {
    let now = Timestamp::now();
    let coming: Vec<String> = g
        .rsvps
        .iter()
        .filter(|(_, r)| r.answer == Answer::Yes)
        .map(|(m, _)| name(view, m))
        .collect();
    html! {
        li {
            a href={ "/c/" (c) "/g/" (id) } { strong { (g.title) } }
            p.sub { (dates::starts_words(g, now, &app.tz)) @if !g.place.is_empty() { ", at " (g.place) } }
            @if !coming.is_empty() { p.sub { "Coming: " (coming.join(", ")) } }
        }
    }
}

async fn render_list(
    app: &Shared,
    ctx: &Ctx,
    c: CircleId,
    failed: Option<&Failed>,
) -> Result<Markup, Failure> {
    let reading = app.read(c).await?;
    let view = &*reading.view;
    let now = Timestamp::now();
    let v = |field| Failed::value(failed, "propose", field);
    let upcoming = view.upcoming(now);
    let past = view.past_gatherings(now);
    let body = html! {
        h1 { "Gatherings" }
        section #upcoming data-live aria-labelledby="upcoming-title" { (live::part("upcoming", html! {
            h2 #upcoming-title { "Coming up" }
            @if upcoming.is_empty() { p { "Nothing on the calendar yet." } }
            ul.cards { @for (id, g) in &upcoming { (summary(app, view, c, id, g)) } }
        })) }
        section.card aria-labelledby="propose-title" {
            h2 #propose-title { "Propose a gathering" }
            form method="post" action={ "/c/" (c) "/gatherings" } aria-labelledby="propose-title" {
                (ctx.token())
                (problem(failed, "propose"))
                label for="g-title" { "What" }
                input #g-title name="title" required maxlength=(limits::NAME) data-max=(limits::NAME) autocomplete="off" placeholder="Soup night" value=(v("title"));
                label for="g-when" { "When" }
                input #g-when name="at" required maxlength=(limits::NAME) autocomplete="off" aria-describedby="g-when-hint" placeholder="thursday 7pm" value=(v("at"));
                p.hint #g-when-hint { "As you would say it: \"thursday 7pm\", \"8 Dec 19:30\", \"2026-12-24 18:00\". Your time zone: " (app.tz.iana_name().unwrap_or("this computer's")) "." }
                label for="g-where" { "Where (optional)" }
                input #g-where name="place" data-max=(limits::NOTE) autocomplete="off" placeholder="Maya's kitchen" value=(v("place"));
                label.check { input type="checkbox" name="one_of_each" value="yes" checked[v("one_of_each") == "yes"]; " Potluck: one of each dish" }
                label.check { input type="checkbox" name="past" value="yes" checked[v("past") == "yes"]; " It already happened (to record it)" }
                button type="submit" { "Propose" }
            }
        }
        @if !past.is_empty() {
            section #past data-live aria-labelledby="past-title" { (live::part("past", html! {
                h2 #past-title { "Past" }
                ul.cards { @for (id, g) in past.iter().take(20) { (summary(app, view, c, id, g)) } }
            })) }
        }
    };
    Ok(layout(app, ctx, Some(c), Place::Gatherings, "Gatherings", body).await)
}

/// Proposing a gathering: what, when (as a person says it), where, and
/// whether it is a potluck of one of each dish or a record of one past.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Propose {
    title: Line,
    at: Line,
    place: Line,
    #[serde(deserialize_with = "ticked")]
    one_of_each: bool,
    #[serde(deserialize_with = "ticked")]
    past: bool,
}

pub(crate) async fn propose(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
    Posted { form, typed }: Posted<Propose>,
) -> Result<Response, Failure> {
    let now = Timestamp::now();
    let title = form.title.0;
    let starts = match dates::gathering_start(&form.at, &app.tz, now) {
        Ok(z) if z.timestamp().as_millisecond() < now.as_millis() && !form.past => Err(format!(
            "{} is in the past. To record a gathering that already happened, tick \"It already happened\".",
            dates::words(
                Timestamp::from_millis(z.timestamp().as_millisecond()),
                now,
                &app.tz
            )
        )),
        Ok(z) => Ok(z.to_string()),
        Err(e) => Err(crate::app::sentence(&e.to_string())),
    };
    let outcome = match starts {
        Ok(starts) => {
            let op = Op::Gathering {
                title: title.clone(),
                starts,
                place: form.place.0,
                hosts: Vec::new(),
                one_of_each: form.one_of_each,
            };
            app.perform(c, op).await
        }
        Err(e) => Err(e),
    };
    let outcome = outcome.map(|id| {
        let to = match id {
            Some(id) => format!("/c/{c}/g/{id}"),
            None => format!("/c/{c}/gatherings"),
        };
        (to, format!("\"{title}\" is on the table."))
    });
    answer(outcome, "propose", typed, async |f| {
        render_list(&app, &ctx, c, Some(f)).await
    })
    .await
}

pub(crate) async fn page(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids((c, g)): Ids<(CircleId, EntityId)>,
) -> Result<Response, Failure> {
    Ok(shown(render(&app, &ctx, c, g, None).await?, &ctx.said))
}

async fn render(
    app: &Shared,
    ctx: &Ctx,
    c: CircleId,
    id: EntityId,
    failed: Option<&Failed>,
) -> Result<Markup, Failure> {
    let reading = app.read(c).await?;
    let view = &*reading.view;
    let membership: &Membership = &reading.membership;
    let g = view
        .gatherings
        .get(&id)
        .ok_or_else(|| Failure::not_found("gathering"))?;
    let now = Timestamp::now();
    let here = format!("/c/{c}/g/{id}");
    let me = app.me_in(membership);
    let mine = g.rsvps.get(&me);
    let my_dishes = view.dishes_of(id, me);
    let began = g
        .starts_at()
        .is_some_and(|t| t.as_millis() <= now.as_millis());
    let v = |form, field| Failed::value(failed, form, field);
    let chosen = match v("rsvp", "answer") {
        "" => mine.map(|r| r.answer.as_str()).unwrap_or(""),
        a => a,
    };
    let body = html! {
        p.back { a href={ "/c/" (c) "/gatherings" } { "← All gatherings" } }
        h1 { (g.title) }
        (super::double_ups::notice(app, ctx, view, me, c, Some(&id.to_string())))
        (live_part(app, view, g, now))
        section.card aria-labelledby="rsvp-title" {
            h2 #rsvp-title { "Your answer" }
            form method="post" action={ (here) "/rsvp" } aria-labelledby="rsvp-title" {
                (ctx.token())
                (problem(failed, "rsvp"))
                fieldset.choice {
                    legend { "Are you coming?" }
                    label { input type="radio" name="answer" value="yes" required checked[chosen == "yes"]; " Yes" }
                    label { input type="radio" name="answer" value="maybe" checked[chosen == "maybe"]; " Maybe" }
                    label { input type="radio" name="answer" value="no" checked[chosen == "no"]; " No" }
                }
                label for="rsvp-note" { "A word with it (optional)" }
                input #rsvp-note name="note" data-max=(limits::NOTE) autocomplete="off" placeholder="might be late" value=(if failed.is_some() { v("rsvp", "note") } else { mine.map(|r| r.note.as_str()).unwrap_or("") });
                button type="submit" { "Answer" }
            }
            @if mine.is_some() {
                form method="post" action={ (here) "/rsvp" } {
                    (ctx.token())
                    input type="hidden" name="answer" value="undo";
                    button.quiet type="submit" { "Take back my answer" }
                }
            }
        }
        @if g.author == me || g.hosts.get(&me).copied().unwrap_or(false) {
            section.card aria-labelledby="change-title" {
                h2 #change-title { "Change the time or place" }
                form method="post" action={ (here) "/edit" } aria-labelledby="change-title" {
                    (ctx.token())
                    (problem(failed, "change"))
                    label for="change-when" { "New time (optional)" }
                    input #change-when name="at" maxlength=(limits::NAME) autocomplete="off" placeholder="thursday 7pm" value=(v("change", "at"));
                    label for="change-where" { "New place (optional)" }
                    input #change-where name="place" data-max=(limits::NOTE) autocomplete="off" value=(v("change", "place"));
                    button type="submit" { "Change it" }
                }
            }
        }
        section.card aria-labelledby="bring-title" {
            h2 #bring-title { "Bring something" }
            form method="post" action={ (here) "/bring" } aria-labelledby="bring-title" {
                (ctx.token())
                (problem(failed, "bring"))
                label for="dish" { "Dish" }
                input #dish name="dish" required maxlength=(limits::NAME) data-max=(limits::NAME) autocomplete="off" placeholder="lentil soup" value=(v("bring", "dish"));
                label for="dietary" { "Dietary notes (optional)" }
                input #dietary name="dietary" maxlength=(limits::NAME) data-max=(limits::NAME) autocomplete="off" placeholder="vegan, no nuts" value=(v("bring", "dietary"));
                @if !my_dishes.is_empty() {
                    @let before: Vec<&str> = my_dishes.iter().map(|(_, d)| d.as_str()).collect();
                    label.check { input type="checkbox" name="instead" value="yes" checked[v("bring", "instead") == "yes"]; " Instead of " (before.join(" and ")) }
                }
                button type="submit" { "Bring it" }
            }
        }
        @if began { (came_form(ctx, &here, view, membership, g, me, failed)) }
    };
    Ok(layout(app, ctx, Some(c), Place::Gatherings, &g.title, body).await)
}

/// What changes while the page is open: when and where, who answered
/// what, the dishes, and who came.
fn live_part(app: &Shared, view: &CircleView, g: &Gathering, now: Timestamp) -> Markup {
    let hosts: Vec<String> = g.hosts.keys().map(|h| name(view, h)).collect();
    html! {
        div #gathering data-live { (live::part("gathering", html! {
            p.lead { (dates::starts_words(g, now, &app.tz)) @if !g.place.is_empty() { ", at " (g.place) } }
            p { "Hosted by " (hosts.join(" and ")) "." }
            h2 { "Who's coming" }
            @let groups = [(Answer::Yes, "Coming"), (Answer::Maybe, "Maybe"), (Answer::No, "Can't make it")];
            @if g.rsvps.is_empty() { p { "No answers yet." } }
            @for (answer, label) in groups {
                @let who: Vec<_> = g.rsvps.iter().filter(|(_, r)| r.answer == answer).collect();
                @if !who.is_empty() {
                    p { strong { (label) ": " }
                        @for (i, (m, r)) in who.iter().enumerate() {
                            @if i > 0 { ", " }
                            (name(view, m)) @if !r.note.is_empty() { " (“" (r.note) "”)" }
                        }
                    }
                }
            }
            h2 { "Potluck" }
            @if g.dishes.is_empty() { p { "No dishes yet." } }
            ul.plain {
                @for d in g.dishes.values() {
                    li { (name(view, &d.author)) " brings " strong { (d.dish) } @if !d.dietary.is_empty() { " (" (d.dietary) ")" } }
                }
            }
            @if !g.came.is_empty() {
                h2 { "Who came" }
                @let came: Vec<String> = g.came.keys().map(|m| name(view, m)).collect();
                p { (came.join(", ")) }
            }
        })) }
    }
}

/// Once it began: tick who was there.
fn came_form(
    ctx: &Ctx,
    here: &str,
    view: &CircleView,
    membership: &Membership,
    g: &Gathering,
    me: MemberId,
    failed: Option<&Failed>,
) -> Markup {
    let mut members: Vec<_> = view
        .members
        .iter()
        .filter(|(m, _)| membership.members.contains(m))
        .collect();
    members.sort_by_key(|(m, x)| (x.order, **m));
    html! {
        section.card aria-labelledby="came-title" {
            h2 #came-title { "Who came" }
            form method="post" action={ (here) "/came" } aria-labelledby="came-title" {
                (ctx.token())
                (problem(failed, "came"))
                fieldset.choice {
                    legend { "Tick who was there" }
                    @for (m, _) in &members {
                        label { input type="checkbox" name={ "m-" (m) } value="yes" checked[g.came.contains_key(m) || (**m == me && g.came.is_empty())]; " " (name(view, m)) }
                    }
                }
                button type="submit" { "Note who came" }
            }
        }
    }
}

async fn act(
    app: &Shared,
    ctx: &Ctx,
    (c, g): (CircleId, EntityId),
    typed: Typed,
    form_name: &'static str,
    made: Result<(Op, String), String>,
) -> Result<Response, Failure> {
    let outcome = match made {
        Ok((op, words)) => app
            .perform(c, op)
            .await
            .map(|_| (format!("/c/{c}/g/{g}"), words)),
        Err(e) => Err(e),
    };
    answer(outcome, form_name, typed, async |f| {
        render(app, ctx, c, g, Some(f)).await
    })
    .await
}

/// A new time or place for a gathering, or both.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Change {
    at: Line,
    place: Line,
}

/// Its proposer or a host changes its time or place; the others see it,
/// and a change made apart from another is a double-up to settle.
pub(crate) async fn edit(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(ids): Ids<(CircleId, EntityId)>,
    Posted { form, typed }: Posted<Change>,
) -> Result<Response, Failure> {
    let made = change(ids.1, form, &app.tz);
    act(&app, &ctx, ids, typed, "change", made).await
}

fn change(
    gathering: EntityId,
    form: Change,
    tz: &jiff::tz::TimeZone,
) -> Result<(Op, String), String> {
    let now = Timestamp::now();
    let starts = match form.at.0 {
        at if at.is_empty() => None,
        at => Some(
            dates::gathering_start(&at, tz, now)
                .map_err(|e| crate::app::sentence(&e.to_string()))?
                .to_string(),
        ),
    };
    let place = Some(form.place.0).filter(|p| !p.is_empty());
    if starts.is_none() && place.is_none() {
        return Err("Say the new time, the new place, or both.".into());
    }
    Ok((
        Op::EditGathering {
            gathering,
            title: None,
            starts,
            place,
        },
        "Changed. Everyone will see it.".into(),
    ))
}

/// An answer (`yes`, `maybe`, `no`, or `undo` to take it back), with a
/// word.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Rsvp {
    answer: Line,
    note: Line,
}

pub(crate) async fn rsvp(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(ids): Ids<(CircleId, EntityId)>,
    Posted { form, typed }: Posted<Rsvp>,
) -> Result<Response, Failure> {
    let gathering = ids.1;
    let answer = match &*form.answer {
        "undo" => Ok(None),
        "yes" => Ok(Some(Answer::Yes)),
        "no" => Ok(Some(Answer::No)),
        "maybe" => Ok(Some(Answer::Maybe)),
        _ => Err("Choose yes, maybe or no.".to_owned()),
    };
    let made = answer.map(|answer| match answer {
        None => (
            Op::WithdrawRsvp { gathering },
            "Your answer is taken back.".into(),
        ),
        Some(answer) => {
            let words = match answer {
                Answer::Yes => "You're coming. See you there.",
                Answer::Maybe => "You said maybe.",
                Answer::No => "You said you can't make it. You'll be missed.",
            };
            let note = form.note.0;
            (
                Op::Rsvp {
                    gathering,
                    answer,
                    note,
                },
                words.into(),
            )
        }
    });
    act(&app, &ctx, ids, typed, "rsvp", made).await
}

/// A dish to bring, its dietary notes, and whether it replaces what you
/// said you would bring before.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Bring {
    dish: Line,
    dietary: Line,
    #[serde(deserialize_with = "ticked")]
    instead: bool,
}

pub(crate) async fn bring(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(ids): Ids<(CircleId, EntityId)>,
    Posted { form, typed }: Posted<Bring>,
) -> Result<Response, Failure> {
    let dish = form.dish.0;
    let words = format!("You're bringing {dish}.");
    let op = Op::Bring {
        gathering: ids.1,
        dish,
        dietary: form.dietary.0,
        instead: form.instead,
    };
    act(&app, &ctx, ids, typed, "bring", Ok((op, words))).await
}

/// Who came: a tick box per member, `m-<member>` sent as `yes`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(from = "HashMap<String, String>")]
pub(crate) struct Came {
    who: Vec<MemberId>,
}

impl From<HashMap<String, String>> for Came {
    fn from(fields: HashMap<String, String>) -> Self {
        let who = fields
            .iter()
            .filter(|(_, v)| v.as_str() == "yes")
            .filter_map(|(k, _)| k.strip_prefix("m-")?.parse().ok())
            .collect();
        Came { who }
    }
}

pub(crate) async fn came(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(ids): Ids<(CircleId, EntityId)>,
    Posted { form, typed }: Posted<Came>,
) -> Result<Response, Failure> {
    let made = if form.who.is_empty() {
        Err("Tick at least one person who came.".into())
    } else {
        let op = Op::Came {
            gathering: ids.1,
            who: form.who,
        };
        Ok((op, "Noted who came.".into()))
    };
    act(&app, &ctx, ids, typed, "came", made).await
}
