//! Asks and offers: ask for a hand (asking is wisdom), offer one, and see
//! what is open and what was done.

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use roundtable_core::schema::limits;
use roundtable_core::{CircleId, Op, RequestKind};

use super::layout::{Place, page as layout};
use super::{Ctx, name, problem};
use crate::Shared;
use crate::app::{Failed, Failure, Ids, answer, shown};
use crate::forms::{Line, Posted};
use crate::live;

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
    let v = |field| Failed::value(failed, "share", field);
    let kind = v("kind");
    let mut all: Vec<_> = view.requests.iter().collect();
    all.sort_by_key(|(id, r)| (std::cmp::Reverse(r.order), **id));
    let (open, closed): (Vec<_>, Vec<_>) = all.into_iter().partition(|(_, r)| r.done.is_none());
    let body = html! {
        h1 { "Asks & offers" }
        section.card aria-labelledby="share-title" {
            h2 #share-title { "Ask for a hand, or offer one" }
            form method="post" action={ "/c/" (c) "/help" } aria-labelledby="share-title" {
                (ctx.token())
                (problem(failed, "share"))
                fieldset.choice {
                    legend { "This is" }
                    label { input type="radio" name="kind" value="ask" required checked[kind != "offer"]; " an ask" }
                    label { input type="radio" name="kind" value="offer" checked[kind == "offer"]; " an offer" }
                }
                label for="share-what" { "What" }
                input #share-what name="text" required data-max=(limits::NOTE) autocomplete="off" placeholder="A lift to the clinic" value=(v("text"));
                label for="share-when" { "When (optional)" }
                input #share-when name="when" maxlength=(limits::NAME) data-max=(limits::NAME) autocomplete="off" placeholder="Tuesday morning" value=(v("when"));
                label for="share-hands" { "How many people it takes (for asks)" }
                input #share-hands name="hands" type="number" min="1" max=(limits::HANDS) inputmode="numeric" value=(match v("hands") { "" => "1", h => h });
                button type="submit" { "Share" }
            }
        }
        section #requests data-live aria-labelledby="open-title" { (live::part("requests", html! {
            h2 #open-title { "Open" }
            @if open.is_empty() { p { "Nothing open right now." } }
            ul.cards {
                @for (id, r) in &open {
                    li {
                        a href={ "/c/" (c) "/e/" (id) } { strong { (name(view, &r.author)) } " " (r.kind.verb()) ": " (r.text) }
                        @if !r.when.is_empty() { " (" (r.when) ")" }
                        @if !r.commitments.is_empty() {
                            @let who: Vec<String> = r.commitments.values().map(|x| name(view, &x.author)).collect();
                            p.sub { (who.join(", ")) " will help." }
                        } @else if r.kind == RequestKind::Ask {
                            p.sub { "No one has taken this on yet." }
                        }
                    }
                }
            }
            @if !closed.is_empty() {
                h2 { "Done" }
                ul.cards {
                    @for (id, r) in closed.iter().take(20) {
                        li {
                            a href={ "/c/" (c) "/e/" (id) } { (name(view, &r.author)) " " (r.kind.verb()) ": " (r.text) }
                            @if let Some(d) = &r.done { @if !d.thanks.is_empty() { p.sub { "Thanks: " (d.thanks) } } }
                        }
                    }
                }
            }
        })) }
    };
    Ok(layout(app, ctx, Some(c), Place::Help, "Asks & offers", body).await)
}

/// An ask or an offer: what, when, and how many hands.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Share {
    kind: Line,
    text: Line,
    when: Line,
    hands: Line,
}

pub(crate) async fn share(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
    Posted { form, typed }: Posted<Share>,
) -> Result<Response, Failure> {
    let kind = if form.kind == "offer" {
        RequestKind::Offer
    } else {
        RequestKind::Ask
    };
    let hands = match &*form.hands {
        "" => Ok(1),
        n => n
            .parse::<u32>()
            .map_err(|_| format!("\"{n}\" is not a number of people: say 1, 2, 3 ...")),
    };
    let op = hands.map(|hands| Op::Request {
        kind,
        text: form.text.0,
        when: form.when.0,
        hands,
    });
    let outcome = match op {
        Ok(op) => app.perform(c, op).await,
        Err(e) => Err(e),
    };
    let words = match kind {
        RequestKind::Ask => "Your ask is with the circle. Asking is wisdom.",
        RequestKind::Offer => "Your offer is with the circle.",
    };
    let outcome = outcome.map(|_| (format!("/c/{c}/help"), words.to_owned()));
    answer(outcome, "share", typed, async |f| {
        render(&app, &ctx, c, Some(f)).await
    })
    .await
}
