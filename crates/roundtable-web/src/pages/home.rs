//! A circle's home: how you are, who has gone quiet, what is coming up,
//! who needs a hand, and the circle's recent life.

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use roundtable_core::feed::{Entry, timeline};
use roundtable_core::quiet::{QuietRule, quiet_for, stepping_back};
use roundtable_core::schema::limits;
use roundtable_core::since::About;
use roundtable_core::{CircleId, CircleView, Membership, Mood, Op, Timestamp, dates};

use super::entry::feed_item;
use super::layout::{Place, page as layout};
use super::{Ctx, name, problem};
use crate::Shared;
use crate::app::{Failed, Failure, Ids, answer, saved, shown};
use crate::forms::{Button, Line, Posted, Text, Typed};
use crate::live;

/// How much of the circle's life the home shows.
const RECENT: usize = 30;

pub(crate) async fn page(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
) -> Result<Response, Failure> {
    Ok(shown(render(&app, &ctx, c, None).await?, &ctx.said))
}

async fn render(
    app: &Shared,
    ctx: &Ctx,
    c: CircleId,
    failed: Option<&Failed>,
) -> Result<Markup, Failure> {
    let reading = app.read(c).await?;
    let view = &*reading.view;
    let membership = &*reading.membership;
    let now = Timestamp::now();
    let v = |form, field| Failed::value(failed, form, field);
    let chosen = v("checkin", "mood");
    let me = app.me_in(membership);
    let quiet = quiet_for(view, now, &QuietRule::default(), me);
    let away = stepping_back(view, now, &app.tz);
    let me_in = membership.is_member(me);
    let since = if me_in {
        app.since(c, view, me).await?
    } else {
        None
    };
    let body = html! {
        h1 { (view.circle.name) }
        @if !view.circle.about.is_empty() { p.lead { (view.circle.about) } }
        @if me_in {
            section.card aria-labelledby="checkin-title" {
                h2 #checkin-title { "How are you?" }
                form method="post" action={ "/c/" (c) "/checkin" } aria-labelledby="checkin-title" {
                    (ctx.token())
                    (problem(failed, "checkin"))
                    fieldset.moods {
                        legend { "Right now I'm…" }
                        @for m in Mood::ALL {
                            label.mood {
                                input type="radio" name="mood" value=(m.as_str()) required checked[chosen == m.as_str()];
                                span { (m.as_str()) }
                            }
                        }
                    }
                    label for="checkin-words" { "In your words (optional)" }
                    textarea #checkin-words name="note" rows="2" data-max=(limits::NOTE) autocomplete="off" { (v("checkin", "note")) }
                    button type="submit" { "Check in" }
                }
            }
        }
        @if let Some(a) = &since { (since_card(ctx, c, a)) }
        div #proposals data-live { (live::part("proposals", proposals(view, membership, c))) }
        @if me_in { (super::double_ups::notice(app, ctx, view, me, c, None)) }
        div.columns {
            div {
                section #quiet data-live aria-labelledby="quiet-title" { (live::part("quiet", html! {
                    h2 #quiet-title { "Gone quiet" }
                    @if quiet.is_empty() {
                        p { "No one has gone quiet. Everyone has been heard from within their usual rhythm." }
                    } @else {
                        ul.plain {
                            @for q in &quiet { li { (q.reason) "." } }
                        }
                        p.hint { "Maybe reach out. A word is enough." }
                    }
                    @if !away.is_empty() {
                        h3 { "Stepping back" }
                        ul.plain { @for a in &away { li { (a.reason) } } }
                    }
                })) }
                section #coming data-live aria-labelledby="coming-title" { (live::part("coming", html! {
                    h2 #coming-title { "Coming up" }
                    @let upcoming = view.upcoming(now);
                    @if upcoming.is_empty() {
                        p { "Nothing on the calendar. " a href={ "/c/" (c) "/gatherings" } { "Propose a gathering" } }
                    } @else {
                        ul.plain {
                            @for (id, g) in upcoming.iter().take(3) {
                                li { a href={ "/c/" (c) "/g/" (id) } { (g.title) } " — " (dates::starts_words(g, now, &app.tz)) }
                            }
                        }
                    }
                })) }
                section #open data-live aria-labelledby="open-title" { (live::part("open", html! {
                    h2 #open-title { "Asks & offers" }
                    @let open: Vec<_> = open_requests(view);
                    @if open.is_empty() {
                        p { "Nothing open. " a href={ "/c/" (c) "/help" } { "Ask for a hand, or offer one" } }
                    } @else {
                        ul.plain {
                            @for (id, r) in open.iter().take(5) {
                                li { a href={ "/c/" (c) "/e/" (id) } { (name(view, &r.author)) " " (r.kind.verb()) ": " (r.text) } }
                            }
                        }
                    }
                })) }
                section #here data-live aria-labelledby="here-title" { (live::part("here", html! {
                    h2 #here-title { "Who is here" }
                    (who_is_here(view, membership))
                })) }
            }
            div {
                section #life data-live aria-labelledby="life-title" { (live::part("life", html! {
                    h2 #life-title { "Recent" }
                    (recent(app, view, membership, c))
                })) }
                @if me_in {
                    section.card aria-labelledby="moment-title" {
                        h2 #moment-title { "Share a moment" }
                        form method="post" action={ "/c/" (c) "/moment" } aria-labelledby="moment-title" {
                            (ctx.token())
                            (problem(failed, "moment"))
                            label for="moment-words" { "What happened" }
                            textarea #moment-words name="text" rows="2" required data-max=(limits::NOTE) autocomplete="off" { (v("moment", "text")) }
                            button type="submit" { "Share" }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(app, ctx, Some(c), Place::Home, "Home", body).await)
}

/// What arrived since the reader last looked, in the core's words, with a
/// button to put it away.
fn since_card(ctx: &Ctx, c: CircleId, a: &roundtable_core::since::Account) -> Markup {
    html! {
        section.card.since #since aria-labelledby="since-title" {
            h2 #since-title { (a.heading()) }
            ul.plain {
                @for line in &a.lines {
                    li.yours[line.yours] {
                        @match line.about {
                            Some(About::Entry(id)) => a href={ "/c/" (c) "/e/" (id) } { (line.text) },
                            Some(About::Gathering(id)) => a href={ "/c/" (c) "/g/" (id) } { (line.text) },
                            None => (line.text),
                        }
                    }
                }
            }
            @if a.more { p.hint { "And more below, in Recent." } }
            form method="post" action={ "/c/" (c) "/seen" } {
                (ctx.token())
                button type="submit" { "Put this away" }
            }
        }
    }
}

pub(crate) async fn seen(
    State(app): State<Shared>,
    Ids(c): Ids<CircleId>,
    _: Posted<Button>,
) -> Result<Response, Failure> {
    app.mark_seen(c).await?;
    Ok(saved(
        &format!("/c/{c}"),
        "Put away. What arrives from now on will show here.",
    ))
}

/// Open proposals to remove someone, welcome them back or recognise
/// them on a new device, and recoveries in their wait to refuse, on every
/// member's home (the one concerned included): nobody learns of one by
/// chance.
fn proposals(view: &CircleView, membership: &Membership, c: CircleId) -> Markup {
    use roundtable_core::ProposalState;
    let open: Vec<_> = membership
        .proposals
        .values()
        .filter(|p| match (&p.recovery, p.state) {
            (_, ProposalState::Open) => true,
            (Some(r), ProposalState::Carried) => r.completed.is_none() && r.refused_by.is_empty(),
            _ => false,
        })
        .collect();
    html! {
        @if !open.is_empty() {
            section.card.proposals aria-labelledby="proposals-title" {
                h2 #proposals-title { "Waiting for the circle" }
                ul.plain {
                    @for p in open {
                        li { (crate::app::sentence(&p.words(view))) " "
                            @if p.recovery.is_some() {
                                a href={ "/c/" (c) "/people#recoveries" } { "See the request" }
                            } @else {
                                a href={ "/c/" (c) "/removal" } { "See the proposal" }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn open_requests(
    view: &CircleView,
) -> Vec<(&roundtable_core::EntityId, &roundtable_core::view::Request)> {
    let mut open: Vec<_> = view
        .requests
        .iter()
        .filter(|(_, r)| r.done.is_none())
        .collect();
    open.sort_by_key(|(id, r)| (std::cmp::Reverse(r.order), **id));
    open
}

fn who_is_here(view: &CircleView, membership: &Membership) -> Markup {
    let mut people: Vec<_> = view
        .members
        .iter()
        .filter(|(id, _)| membership.members.contains(id))
        .collect();
    people.sort_by_key(|(id, m)| (m.order, **id));
    html! {
        ul.people {
            @for (id, m) in people {
                li {
                    span.name { (name(view, id)) }
                    @if !m.pronouns.is_empty() { " " span.pronouns { "(" (m.pronouns) ")" } }
                    @if m.away.is_some() { " " span.tag { "stepping back" } }
                }
            }
        }
    }
}

fn recent(app: &Shared, view: &CircleView, membership: &Membership, c: CircleId) -> Markup {
    let all = timeline(view);
    let only_joins = all.iter().all(|e| matches!(e, Entry::Joined(..)));
    html! {
        @if only_joins && all.len() <= 1 {
            p { "Nothing here yet. Say how you are above." }
        }
        ol.feed reversed {
            @for e in all.iter().rev().take(RECENT) {
                (feed_item(app, view, membership, c, e))
            }
        }
    }
}

/// The check-in form: how you are, and a word with it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct CheckIn {
    mood: Line,
    note: Text,
}

pub(crate) async fn checkin(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
    Posted { form, typed }: Posted<CheckIn>,
) -> Result<Response, Failure> {
    let mood: Result<Mood, _> = form.mood.parse();
    let outcome = match mood {
        Ok(mood) => app
            .perform(
                c,
                Op::Checkin {
                    mood,
                    note: form.note.0,
                },
            )
            .await
            .map(|_| format!("Checked in: {mood}.")),
        Err(_) => Err("Choose how you are: thriving, okay, heavy or struggling.".into()),
    };
    done(&app, &ctx, c, "checkin", outcome, typed).await
}

/// A moment shared with the circle.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Moment {
    text: Text,
}

pub(crate) async fn moment(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
    Posted { form, typed }: Posted<Moment>,
) -> Result<Response, Failure> {
    let outcome = app
        .perform(c, Op::Moment { text: form.text.0 })
        .await
        .map(|_| "Shared with the circle.".to_owned());
    done(&app, &ctx, c, "moment", outcome, typed).await
}

async fn done(
    app: &Shared,
    ctx: &Ctx,
    c: CircleId,
    form_name: &'static str,
    outcome: Result<String, String>,
    typed: Typed,
) -> Result<Response, Failure> {
    let outcome = outcome.map(|words| (format!("/c/{c}"), words));
    answer(outcome, form_name, typed, async |f| {
        render(app, ctx, c, Some(f)).await
    })
    .await
}
