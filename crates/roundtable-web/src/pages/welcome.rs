//! The first page: start a circle, or join one with a ticket (pasted, or
//! scanned where the browser can read a QR code).

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use roundtable_core::invite::CLOCK_TOLERANCE_MS;
use roundtable_core::schema::limits;
use roundtable_core::{InviteKind, Op, Timestamp, dates};
use roundtable_net::{CircleTicket, TicketError};

use super::layout::{Place, page as layout};
use super::{Ctx, problem};
use crate::Shared;
use crate::app::{Failed, Failure, again, plain, saved, shown};
use crate::forms::{Line, Posted, Text};

/// `/`: the first circle, or the welcome when there is none.
pub(crate) async fn root(State(app): State<Shared>) -> Result<Response, Failure> {
    let circles = app.node.circles().await.map_err(Failure::node)?;
    Ok(match circles.first() {
        Some((id, _)) => Redirect::to(&format!("/c/{id}")).into_response(),
        None => Redirect::to("/welcome").into_response(),
    })
}

pub(crate) async fn page(State(app): State<Shared>, ctx: Ctx) -> Response {
    shown(render(&app, &ctx, None).await, &ctx.said)
}

async fn render(app: &Shared, ctx: &Ctx, failed: Option<&Failed>) -> maud::Markup {
    let v = |form, field| Failed::value(failed, form, field);
    let first = app
        .node
        .circles()
        .await
        .map(|c| c.is_empty())
        .unwrap_or(true);
    let body = html! {
        h1 { @if first { "Welcome to Roundtable" } @else { "Start or join another circle" } }
        p.lead {
            "A home for a small circle of people who look after each other. "
            "It lives on your devices and your friends' devices — nobody else's."
        }
        div.two {
            section.card aria-labelledby="start-title" {
                h2 #start-title { "Start a circle" }
                form method="post" action="/create" aria-labelledby="start-title" {
                    (ctx.token())
                    (problem(failed, "create"))
                    label for="circle-name" { "Circle name" }
                    input #circle-name name="name" required maxlength=(limits::NAME) data-max=(limits::NAME) autocomplete="off" placeholder="Tuesday Supper" value=(v("create", "name"));
                    label for="create-you" { "Your name" }
                    input #create-you name="as" required maxlength=(limits::NAME) data-max=(limits::NAME) autocomplete="name" value=(v("create", "as"));
                    label for="circle-about" { "What the circle is for (optional)" }
                    textarea #circle-about name="about" rows="2" data-max=(limits::STORY) autocomplete="off" { (v("create", "about")) }
                    button type="submit" { "Start the circle" }
                }
            }
            section.card aria-labelledby="join-title" {
                h2 #join-title { "Join with a ticket" }
                p.hint { "A friend in the circle makes a ticket on their device (Invite), and sends it to you. To add another device of your own, make one under People → Pair a device." }
                form method="post" action="/join" aria-labelledby="join-title" {
                    (ctx.token())
                    (problem(failed, "join"))
                    label for="ticket" { "Ticket" }
                    textarea #ticket name="ticket" required rows="4" spellcheck="false" autocomplete="off" placeholder="roundtable…" { (v("join", "ticket")) }
                    button.secondary type="button" hidden data-scan="ticket" { "Scan a QR code" }
                    video.scanner hidden muted playsinline aria-label="Camera, looking for a QR code" {}
                    label for="join-you" { "Your name" }
                    input #join-you name="as" maxlength=(limits::NAME) data-max=(limits::NAME) autocomplete="name" aria-describedby="join-you-hint" value=(v("join", "as"));
                    p.hint #join-you-hint { "How the circle will know you. Leave it empty when pairing a device of your own." }
                    label for="device-name" { "This device's name (optional)" }
                    input #device-name name="device" maxlength=(limits::NAME) data-max=(limits::NAME) autocomplete="off" placeholder=(host_name()) value=(v("join", "device"));
                    button type="submit" { "Join" }
                }
            }
        }
        p.sub { "Lost every device you used for a circle? " a href="/recover" { "Ask your circle to recognise you on this one" } "." }
    };
    layout(app, ctx, None, Place::Elsewhere, "Welcome", body).await
}

/// Starting a circle: its name, what you are called in it, what it is for.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Create {
    name: Line,
    #[serde(rename = "as")]
    who: Line,
    about: Text,
}

pub(crate) async fn create(
    State(app): State<Shared>,
    ctx: Ctx,
    Posted { form, typed }: Posted<Create>,
) -> Response {
    let Create { name, who, about } = form;
    if who.is_empty() {
        let f = Failed::new("create", "Say what the circle should call you.", typed);
        return again(render(&app, &ctx, Some(&f)).await);
    }
    match app
        .node
        .create_circle(&name, &about, &who, Timestamp::now())
        .await
    {
        Ok(id) => {
            name_device(&app, id, None).await;
            saved(
                &format!("/c/{id}"),
                &format!(
                    "\"{}\" is started, and you are {who} here. Invite the others when you are ready.",
                    name.trim()
                ),
            )
        }
        Err(e) => {
            let f = Failed::new("create", plain(&e), typed);
            again(render(&app, &ctx, Some(&f)).await)
        }
    }
}

/// Joining with a ticket: what you are called (for an invite to the
/// circle) and what this device is called.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Join {
    ticket: Line,
    #[serde(rename = "as")]
    who: Line,
    device: Line,
}

pub(crate) async fn join(
    State(app): State<Shared>,
    ctx: Ctx,
    Posted { form, typed }: Posted<Join>,
) -> Response {
    let outcome = redeem(&app, form).await;
    match outcome {
        Ok((first, words)) => saved(&format!("/c/{first}"), &words),
        Err(message) => {
            let f = Failed::new("join", message, typed);
            again(render(&app, &ctx, Some(&f)).await)
        }
    }
}

async fn redeem(app: &Shared, form: Join) -> Result<(roundtable_core::CircleId, String), String> {
    let ticket = CircleTicket::parse(&form.ticket).map_err(|e| match e {
        TicketError::StewardNotInvite => "This is a steward's ticket, not an invite: it lets nobody into a circle. Once you are in one, add the steward from the Status page.".to_owned(),
        TicketError::RecoveryNotInvite => "This is someone's request to be recognised on a new device, not an invite. Once you have checked with them yourself, paste it under People, in \"Vouch for someone on a new device\".".to_owned(),
        e => format!(
            "That ticket does not read ({e}). Copy it again, whole, from the message it came in."
        ),
    })?;
    let now = Timestamp::now();
    if now.as_millis() > ticket.expires_at.as_millis() + CLOCK_TOLERANCE_MS {
        return Err(format!(
            "This ticket expired {}. Ask for a new one.",
            dates::words(ticket.expires_at, now, &app.tz)
        ));
    }
    let who = form.who;
    let name = match ticket.kind {
        InviteKind::Member if who.is_empty() => {
            return Err("Say what the circle should call you.".into());
        }
        InviteKind::Member => Some(&*who),
        InviteKind::Device => None,
    };
    let circles = app.node.join(&ticket, name).await.map_err(|e| plain(&e))?;
    let Some(first) = circles.first().copied() else {
        return Err("The other device handed over no circle.".into());
    };
    let device = form.device.0;
    for id in &circles {
        name_device(app, *id, Some(device.clone()).filter(|d| !d.is_empty())).await;
    }
    let names: Vec<String> = app
        .node
        .circles()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|(id, _)| circles.contains(id))
        .map(|(_, n)| n)
        .collect();
    let words = match ticket.kind {
        InviteKind::Member => format!("You're in: {}. Welcome.", names.join(", ")),
        InviteKind::Device => format!(
            "This device is paired. Your circles here: {}.",
            names.join(", ")
        ),
    };
    Ok((first, words))
}

/// Names this device in a circle (its host name unless the person gave
/// one), as `roundtable join` does.
async fn name_device(app: &Shared, circle: roundtable_core::CircleId, name: Option<String>) {
    let name = name.unwrap_or_else(host_name);
    if let Err(e) = app.perform(circle, Op::NameDevice { name }).await {
        tracing::debug!("could not name this device: {e}");
    }
}

fn host_name() -> String {
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
