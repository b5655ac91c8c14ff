//! The stewards that keep a circle: how each stands, in words (the one
//! place the app words it), adding one from its ticket, and stopping the
//! circle using one, once the person confirmed.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use jiff::tz::TimeZone;
use maud::{Markup, html};
use roundtable_core::schema::limits;
use roundtable_core::{CircleId, DeviceId, EntityId, Op, Timestamp, dates};
use roundtable_net::{CircleTicket, StewardTicket, TicketError};
use roundtable_node::StewardStatus;

use super::layout::{Place, page as layout};
use super::{Ctx, problem};
use crate::Shared;
use crate::app::{Failed, Failure, Ids, answer, sentence, shown};
use crate::forms::{Posted, Text, ticked};
use crate::live;

/// What stopping a steward means, said before it is done.
pub(crate) const STOP_WORDS: &str =
    "The circle will stop using this steward. Anyone in the circle can add it again.";

/// How a steward stands, in words: "Kept by Maya's Pi (added by Maya):
/// last reached 5 min ago." A steward that kept less than it had before
/// is a warning, with what to do.
pub(crate) fn standing(s: &StewardStatus, now: Timestamp, tz: &TimeZone) -> Markup {
    let who = s.who();
    if let Some(by) = &s.removed_by {
        return html! {
            p.hint {
                (who) " is no longer used: " (by) " stopped the circle using it. Anyone in the circle can add it again."
            }
        };
    }
    if let Some(stale) = &s.stale {
        return html! {
            p.problem role="status" {
                "Kept by " (who) ", but it kept less than it had before (" (stale) "). "
                "This device gives it everything again; tell its operator, who may have lost what it kept or put back an old copy."
            }
        };
    }
    html! {
        p {
            "Kept by " (who) ": "
            @if s.connected {
                "connected now."
            } @else if let Some(t) = s.last_reached {
                "last reached "
                time datetime=(t.to_jiff().to_string()) title=(dates::words(t, now, tz)) { (dates::ago(t, now, tz)) }
                "."
            } @else if let Some(e) = &s.error {
                "not reached yet: " (e) @if !e.ends_with('.') { "." }
            } @else {
                "not reached yet."
            }
            @match s.invites_waiting {
                0 => {}
                1 => { " An invite made here is not there yet: your node leaves it there once it reaches the steward." }
                n => { " " (n) " invites made here are not there yet: your node leaves them there once it reaches the steward." }
            }
        }
    }
}

/// The stewards of a circle on the status page, or what it means to have
/// none.
pub(crate) fn on_status(app: &Shared, c: CircleId, stewards: &[StewardStatus]) -> Markup {
    let now = Timestamp::now();
    html! {
        @if stewards.iter().all(|s| s.removed_by.is_some()) {
            @for s in stewards { (standing(s, now, &app.tz)) }
            p {
                "No steward keeps this circle: without one, it syncs only while members' devices are awake together. "
                a href={ "/c/" (c) "/stewards" } { "Add a steward" }
                " with the ticket whoever runs one gives you."
            }
        } @else {
            @for s in stewards { (standing(s, now, &app.tz)) }
            p { a href={ "/c/" (c) "/stewards" } { "Add a steward, or stop using one" } }
        }
    }
}

pub(crate) async fn page(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
) -> Result<Response, Failure> {
    Ok(shown(render(&app, &ctx, c, None, None).await?, &ctx.said))
}

/// The stewards a circle uses now, as the node says they stand.
pub(crate) async fn of(app: &Shared, c: CircleId) -> Result<Vec<StewardStatus>, Failure> {
    let status = app.node.status().await.map_err(Failure::node)?;
    Ok(status
        .circles
        .into_iter()
        .find(|s| s.id == c)
        .map(|s| s.stewards)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.removed_by.is_none())
        .collect())
}

async fn render(
    app: &Shared,
    ctx: &Ctx,
    c: CircleId,
    stopping: Option<&StewardStatus>,
    failed: Option<&Failed>,
) -> Result<Markup, Failure> {
    // Unknown circles are refused in words.
    app.read(c).await?;
    let stewards = of(app, c).await?;
    let now = Timestamp::now();
    let body = html! {
        h1 { "Stewards" }
        p.lead {
            "A steward is a computer that stays on (a member's Raspberry Pi, a rented server, a community centre's box). "
            "It keeps the circle's changes sealed, so people whose devices are never awake at the same time still get each other's news. "
            "It cannot read them."
        }
        @if let Some(s) = stopping {
            section.card #stop aria-labelledby="stop-title" {
                h2 #stop-title { "Stop using " (s.name) "?" }
                p { (STOP_WORDS) }
                (problem(failed, "stop"))
                form method="post" action={ "/c/" (c) "/stewards/" (s.id) "/remove" } aria-labelledby="stop-title" {
                    (ctx.token())
                    input type="hidden" name="confirm" value="yes";
                    button type="submit" { "Stop using it" }
                }
                p { a href={ "/c/" (c) "/stewards" } { "Keep it" } }
            }
        }
        section #stewards data-live aria-labelledby="stewards-title" { (live::part("stewards", html! {
            h2 #stewards-title { "Who keeps this circle" }
            @if stewards.is_empty() {
                p { "No steward keeps this circle: without one, it syncs only while members' devices are awake together." }
            }
            ul.cards {
                @for s in &stewards {
                    li {
                        (standing(s, now, &app.tz))
                        @if stopping.is_none_or(|x| x.id != s.id) {
                            p.act { a href={ "/c/" (c) "/stewards/" (s.id) "/remove" } aria-label={ "Stop using " (s.name) } { "Stop using it…" } }
                        }
                    }
                }
            }
            p.sub { "Anyone in the circle can add a steward or stop using one; everyone sees who added each." }
        })) }
        section.card aria-labelledby="add-title" {
            h2 #add-title { "Add a steward" }
            p.hint {
                "Whoever runs the steward gives you its ticket: one line starting with \"roundtablesteward\". "
                "It is not an invite, and it lets nobody into the circle."
            }
            form method="post" action={ "/c/" (c) "/stewards" } aria-labelledby="add-title" {
                (ctx.token())
                (problem(failed, "add"))
                label for="steward-ticket" { "The steward's ticket" }
                textarea #steward-ticket name="ticket" required rows="3" spellcheck="false" autocomplete="off" placeholder="roundtablesteward…" { (Failed::value(failed, "add", "ticket")) }
                label for="steward-name" { "What to call it (optional)" }
                input #steward-name name="name" maxlength=(limits::NAME) autocomplete="off" placeholder="Maya's Pi" value=(Failed::value(failed, "add", "name"));
                button type="submit" { "Add the steward" }
            }
        }
    };
    Ok(layout(app, ctx, Some(c), Place::Status, "Stewards", body).await)
}

/// What to tell someone whose pasted text is no steward's ticket.
fn refusal(text: &str, e: &TicketError) -> String {
    match (e, CircleTicket::parse(text)) {
        (TicketError::NotASteward, Ok(_) | Err(TicketError::Damaged(_))) => {
            "This is an invite to a circle, not a steward's ticket. A steward's ticket starts with \"roundtablesteward\" and comes from whoever runs the steward.".into()
        }
        _ => sentence(&e.to_string()),
    }
}

/// A steward's ticket, as pasted, and a name for it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Add {
    ticket: Text,
    name: Text,
}

pub(crate) async fn add(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
    Posted { form, typed }: Posted<Add>,
) -> Result<Response, Failure> {
    let text = form.ticket.0;
    let outcome = if text.is_empty() {
        Err("Paste the steward's ticket: one line starting with \"roundtablesteward\".".into())
    } else {
        match StewardTicket::parse(&text) {
            Ok(ticket) => {
                let steward = DeviceId::from_bytes(ticket.id());
                let name = form.name.0;
                let op = Op::AddSteward {
                    ticket: ticket.to_line(),
                    steward,
                    name: (!name.trim().is_empty()).then_some(name),
                };
                app.perform(c, op).await
            }
            Err(e) => Err(refusal(&text, &e)),
        }
    };
    let called = match &outcome {
        Ok(Some(id)) => of(&app, c)
            .await?
            .into_iter()
            .find(|s| s.id == *id)
            .map(|s| s.name),
        _ => None,
    }
    .unwrap_or_else(|| "the steward".into());
    let outcome = outcome.map(|_| {
        (
            format!("/c/{c}/stewards"),
            format!(
                "The circle is kept by {called} from now on; your node reaches it whenever it runs."
            ),
        )
    });
    answer(outcome, "add", typed, async |f| {
        render(&app, &ctx, c, None, Some(f)).await
    })
    .await
}

/// Stopping the circle using a steward, asked first: a page that says what
/// it means, with the one button that does it.
pub(crate) async fn confirm_remove(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids((c, id)): Ids<(CircleId, EntityId)>,
) -> Result<Response, Failure> {
    let Some(steward) = of(&app, c).await?.into_iter().find(|s| s.id == id) else {
        return Err(Failure::not_found("steward"));
    };
    Ok(shown(
        render(&app, &ctx, c, Some(&steward), None).await?,
        &ctx.said,
    ))
}

/// The one button of the page that asks before a steward is stopped.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Confirm {
    #[serde(deserialize_with = "ticked")]
    confirm: bool,
}

/// Stopping the circle using a steward: done only with `confirm` (from the
/// page that asks); without it, on to that page.
pub(crate) async fn remove(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids((c, id)): Ids<(CircleId, EntityId)>,
    Posted { form, typed }: Posted<Confirm>,
) -> Result<Response, Failure> {
    let Some(steward) = of(&app, c).await?.into_iter().find(|s| s.id == id) else {
        return Err(Failure::not_found("steward"));
    };
    if !form.confirm {
        return Ok(
            axum::response::Redirect::to(&format!("/c/{c}/stewards/{id}/remove")).into_response(),
        );
    }
    let outcome = app.perform(c, Op::RemoveSteward { id }).await.map(|_| {
        (
            format!("/c/{c}/stewards"),
            format!(
                "The circle no longer uses steward {}. Anyone in the circle can add it again with its ticket.",
                steward.steward.fmt_short()
            ),
        )
    });
    answer(outcome, "stop", typed, async |f| {
        render(&app, &ctx, c, Some(&steward), Some(f)).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steward() -> StewardStatus {
        StewardStatus {
            id: EntityId::from_bytes([1; 8]),
            steward: DeviceId::from_bytes([0x3f; 32]),
            ticket: "roundtablesteward…".into(),
            name: "Maya's steward".into(),
            named: false,
            added_by: "Maya".into(),
            removed_by: None,
            up_to_date: false,
            last_reached: None,
            connected: false,
            error: None,
            stale: None,
            invites_waiting: 0,
        }
    }

    fn said(s: &StewardStatus, now: Timestamp) -> String {
        standing(s, now, &TimeZone::UTC).into_string()
    }

    #[test]
    fn a_steward_is_told_in_the_words_the_node_gives() {
        let now = Timestamp::from_millis(1_795_464_000_000);
        let mut s = steward();
        let words = said(&s, now);
        assert!(
            words.contains("Kept by Maya's steward: not reached yet."),
            "{words}"
        );
        s.error = Some("could not reach it".into());
        assert!(said(&s, now).contains("not reached yet: could not reach it."));
        s.last_reached = Some(Timestamp::from_millis(now.as_millis() - 5 * 60_000));
        let words = said(&s, now);
        assert!(words.contains("last reached <time"), "{words}");
        assert!(words.contains(">5 min ago</time>."), "{words}");
        s.connected = true;
        assert!(said(&s, now).contains("Kept by Maya's steward: connected now."));
        s.invites_waiting = 2;
        assert!(said(&s, now).contains("connected now. 2 invites made here are not there yet"));
        s.invites_waiting = 0;
        // Kept less than before: a warning, with what to do, whatever else.
        s.stale = Some("it showed 12 items before and only 3 now".into());
        let words = said(&s, now);
        assert!(words.contains("class=\"problem\""), "{words}");
        assert!(words.contains("it showed 12 items before and only 3 now"));
        assert!(words.contains("tell its operator"), "{words}");
        // Given a name: called by it, with who added it; named by nobody
        // known, called by its id.
        let mut s = steward();
        s.name = "Maya's Pi".into();
        s.named = true;
        assert!(said(&s, now).contains("Kept by Maya's Pi (added by Maya): not reached yet."));
        s.added_by.clear();
        assert!(!said(&s, now).contains("added by"));
        s.name.clear();
        let short = DeviceId::from_bytes([0x3f; 32]).fmt_short();
        assert!(said(&s, now).contains(&format!("Kept by steward {short}: ")));
    }

    #[test]
    fn an_invite_pasted_for_a_steward_is_told_apart() {
        let words = refusal("roundtableabc", &TicketError::NotASteward);
        assert!(words.starts_with("This is an invite"), "{words}");
        let words = refusal("hello", &TicketError::NotASteward);
        assert!(
            words.starts_with("This is not a steward's ticket"),
            "{words}"
        );
        let damaged = TicketError::Damaged("checksum mismatch".into());
        let words = refusal("roundtablestewardabc", &damaged);
        assert!(words.contains("damaged or incomplete"), "{words}");
    }
}
