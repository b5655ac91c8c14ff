//! Double-ups, as the core finds them: a notice in words to the people
//! they concern, with a button for each edit that settles it. The home
//! shows every one that concerns the reader; an ask's or a gathering's
//! page shows those about it.

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use roundtable_core::double_ups::{self, DoubleUp};
use roundtable_core::{CircleId, CircleView, Timestamp};

use super::Ctx;
use crate::Shared;
use crate::app::{Failure, Ids, saved};
use crate::forms::{Line, Posted};
use crate::live;

/// The double-ups that concern the reader, those about `about` only when
/// given. A live part of the page: settled ones leave it without a reload.
pub(crate) fn notice(
    app: &Shared,
    ctx: &Ctx,
    view: &CircleView,
    me: roundtable_core::MemberId,
    c: CircleId,
    about: Option<&str>,
) -> Markup {
    let now = Timestamp::now();
    let mine: Vec<DoubleUp> = double_ups::find(view, now)
        .into_iter()
        .filter(|d| d.concerns(me) && about.is_none_or(|a| d.is_about(a)))
        .collect();
    html! {
        div #double-ups data-live { (live::part("double-ups", html! {
            @if !mine.is_empty() {
                section.card.double-ups aria-labelledby="double-ups-title" {
                    h2 #double-ups-title { "Doubled up while apart" }
                    ul.plain {
                        @for d in &mine {
                            li data-double-up=(d.id) {
                                p { (d.says(view, Some(me), now, &app.tz)) }
                                div.choices {
                                    @for (i, choice) in d.choices(me, now, &app.tz).iter().enumerate() {
                                        form method="post" action={ "/c/" (c) "/settle" } {
                                            (ctx.token())
                                            input type="hidden" name="id" value=(d.id);
                                            input type="hidden" name="n" value=(i + 1);
                                            input type="hidden" name="back" value=(about.unwrap_or(""));
                                            button type="submit" { (choice.label) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        })) }
    }
}

/// One of a double-up's choices: the double-up (`id`), the choice's place
/// among them (`n`, from 1), and the page it was taken on (`back`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Settle {
    id: Line,
    n: Line,
    back: Line,
}

/// Takes one of a double-up's choices: the edit the core offers for it,
/// found again from what the copy holds now.
pub(crate) async fn settle(
    State(app): State<Shared>,
    Ids(c): Ids<CircleId>,
    Posted { form, .. }: Posted<Settle>,
) -> Result<Response, Failure> {
    let reading = app.read(c).await?;
    let now = Timestamp::now();
    let me = app.me_in(&reading.membership);
    let back = match &*form.back {
        "" => format!("/c/{c}"),
        b => match b.parse::<roundtable_core::EntityId>() {
            Ok(id) if reading.view.gatherings.contains_key(&id) => format!("/c/{c}/g/{id}"),
            Ok(id) => format!("/c/{c}/e/{id}"),
            Err(_) => format!("/c/{c}"),
        },
    };
    let Some(d) = double_ups::find(&reading.view, now)
        .into_iter()
        .find(|d| d.id == *form.id && d.concerns(me))
    else {
        return Ok(saved(&back, "That is settled already."));
    };
    let choice = form
        .n
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| d.choices(me, now, &app.tz).into_iter().nth(i));
    let Some(choice) = choice else {
        return Ok(saved(
            &back,
            "That choice is no longer there; see what is left.",
        ));
    };
    Ok(match app.perform(c, choice.op).await {
        Ok(_) => saved(&back, &format!("Settled: {}.", choice.label.to_lowercase())),
        Err(message) => saved(&back, &message),
    })
}
