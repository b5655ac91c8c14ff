//! Inviting someone and pairing a device: a ticket to copy and a QR code
//! to scan, the invites made so far, and revoking one.

use axum::extract::State;
use axum::response::Response;
use data_encoding::BASE64;
use maud::{Markup, html};
use roundtable_core::schema::limits;
use roundtable_core::view::{Invite, InviteState};
use roundtable_core::{CircleId, EntityId, InviteKind, Op, Timestamp, dates};

use super::layout::{Place, page as layout};
use super::{Ctx, name, problem};
use crate::Shared;
use crate::app::{Failed, Failure, Ids, Kept, answer, plain, shown};
use crate::forms::{Button, Line, Posted};
use crate::live;

const HOUR_MS: i64 = 3_600_000;

/// How long an invite may stay open, as offered on the page.
const LASTS: [(&str, &str, i64); 4] = [
    ("1d", "a day", 24 * HOUR_MS),
    ("3d", "three days", 72 * HOUR_MS),
    ("7d", "a week", 7 * 24 * HOUR_MS),
    ("30d", "thirty days", 30 * 24 * HOUR_MS),
];

pub(crate) async fn page(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
) -> Result<Response, Failure> {
    Ok(shown(render(&app, &ctx, c, None, None).await?, &ctx.said))
}

/// The QR code of a ticket, as an image.
fn qr(ticket: &str) -> Markup {
    match qrcode::QrCode::new(ticket.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(240, 240)
                .quiet_zone(true)
                .build();
            html! { img.qr src={ "data:image/svg+xml;base64," (BASE64.encode(svg.as_bytes())) } alt="QR code of the ticket, to scan with the other device"; }
        }
        Err(_) => {
            html! { p.hint { "This ticket is too long for a QR code; copy the text instead." } }
        }
    }
}

fn show_ticket(app: &Shared, made: &Kept) -> Markup {
    let now = Timestamp::now();
    let how = match (made.kind, made.waits) {
        (InviteKind::Member, false) => {
            "Send it to them however you like (a message, a letter). They open Roundtable, choose \"Join with a ticket\", paste it or scan the code, and say their name."
        }
        (InviteKind::Member, true) => {
            "Send it to them however you like (a message, a letter). They open Roundtable, choose \"Join with a ticket\", paste it or scan the code, and say their name. Your node also leaves the invite with the circle's steward: once it is there, they can join even while this device is off, until it expires."
        }
        (InviteKind::Device, false) => {
            "On your other device, start Roundtable, choose \"Join with a ticket\", and paste this or scan the code. Keep this device running until it is done."
        }
        (InviteKind::Device, true) => {
            "On your other device, start Roundtable, choose \"Join with a ticket\", and paste this or scan the code. Your node also leaves it with the circle's steward: once it is there, your other device can join even while this one is off, until the ticket expires."
        }
    };
    html! {
        section.card.ticket aria-labelledby="ticket-title" {
            h2 #ticket-title { @if made.kind == InviteKind::Member { "Your invite" } @else { "Your pairing ticket" } }
            p { (how) }
            label for="made-ticket" { "Ticket" }
            textarea #made-ticket readonly rows="4" spellcheck="false" { (made.ticket) }
            button.secondary type="button" data-copy="made-ticket" { "Copy the ticket" }
            (qr(&made.ticket))
            p.sub { "Works until " (dates::words(made.expires_at, now, &app.tz)) ", for "
                (made.uses) @if made.uses == 1 { " person" } @else { " people" } "." }
        }
    }
}

/// Who hands the circle to someone invited, in words: this device, and
/// where the circle has a steward, the steward too, once the node left the
/// invite there (sealed), until it expires.
fn handing_over(kept_by_steward: bool) -> &'static str {
    if kept_by_steward {
        "An invite is a ticket that lets someone join from their own device. Your node also leaves it, sealed, with the circle's steward, where it waits until it expires: once it is there, they can join even while this device is off."
    } else {
        "An invite is a ticket that lets someone join from their own device. Only this device can hand the circle over, so keep Roundtable running until they have joined."
    }
}

async fn render(
    app: &Shared,
    ctx: &Ctx,
    c: CircleId,
    made: Option<&Kept>,
    failed: Option<&Failed>,
) -> Result<Markup, Failure> {
    let reading = app.read(c).await?;
    let view = &*reading.view;
    let now = Timestamp::now();
    let v = |field| Failed::value(failed, "invite", field);
    let lasts = match v("lasts") {
        "" => "7d",
        l => l,
    };
    let uses = match v("uses") {
        "" => "1",
        u => u,
    };
    let mut list: Vec<_> = view
        .invites
        .iter()
        .filter(|(_, i)| i.kind == InviteKind::Member)
        .collect();
    list.sort_by_key(|(id, i)| (std::cmp::Reverse(i.at), **id));
    let kept = !super::stewards::of(app, c).await?.is_empty();
    let body = html! {
        h1 { "Invite someone" }
        @if let Some(m) = made { (show_ticket(app, m)) }
        section.card aria-labelledby="invite-title" {
            h2 #invite-title { "Make an invite" }
            p.hint { (handing_over(kept)) }
            form method="post" action={ "/c/" (c) "/invite" } aria-labelledby="invite-title" {
                (ctx.token())
                (problem(failed, "invite"))
                label for="lasts" { "Works for" }
                select #lasts name="lasts" {
                    @for (value, words, _) in LASTS { option value=(value) selected[value == lasts] { (words) } }
                }
                label for="uses" { "How many people may use it" }
                input #uses name="uses" type="number" min="1" max="50" required value=(uses);
                label for="invite-label" { "A label, to tell it apart (optional)" }
                input #invite-label name="label" maxlength=(limits::NAME) autocomplete="off" placeholder="for Sam" value=(v("label"));
                button type="submit" { "Make an invite" }
            }
        }
        section #invites data-live aria-labelledby="invites-title" { (live::part("invites", html! {
            h2 #invites-title { "Invites so far" }
            @if list.is_empty() { p { "None yet." } }
            ul.cards {
                @for (id, i) in &list {
                    @let state = i.state(now);
                    li {
                        @if i.label.is_empty() { strong { "By " (name(view, &i.by)) } } @else { strong { (i.label) } " · by " (name(view, &i.by)) }
                        " · " (state.as_str())
                        p.sub { (i.redeemed.len()) " of " (i.uses) " used · "
                            @if state == InviteState::Expired { "expired " } @else { "works until " }
                            (dates::words(i.expires_at, now, &app.tz)) }
                        @if !i.redeemed.is_empty() {
                            @let who: Vec<String> = i.redeemed.values().map(|r| name(view, &r.member)).collect();
                            p.sub { "Joined with it: " (who.join(", ")) }
                        }
                        @if state == InviteState::Open && i.by == app.me_in(&reading.membership) {
                            @let which = which(app, i, now);
                            p.act {
                                @if kept_ticket(app, **id).is_some() {
                                    a href={ "/c/" (c) "/invite/" (id) } aria-label={ "Show the ticket of the invite " (which) } { "Show the ticket" }
                                    " · "
                                }
                                a href={ "/c/" (c) "/invite/" (id) "/revoke" } aria-label={ "Revoke the invite " (which) } { "Revoke…" }
                            }
                        }
                    }
                }
            }
        })) }
    };
    Ok(layout(app, ctx, Some(c), Place::Invite, "Invite", body).await)
}

/// An invite: how long it works, how many may use it, and a label to
/// know it by.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct NewInvite {
    lasts: Line,
    uses: Line,
    label: Line,
}

pub(crate) async fn make(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
    Posted { form, typed }: Posted<NewInvite>,
) -> Result<Response, Failure> {
    let lasts = LASTS
        .iter()
        .find(|(v, _, _)| form.lasts == *v)
        .map(|(_, _, ms)| *ms);
    let uses: Option<u32> = form.uses.parse().ok().filter(|u| (1..=50).contains(u));
    let label = form.label.0;
    let outcome = match (lasts, uses) {
        (Some(ms), Some(uses)) => mint(&app, c, InviteKind::Member, ms, uses, &label).await,
        (None, _) => Err("Choose how long the invite works.".into()),
        (_, None) => Err("Say how many people may use it: 1 to 50.".into()),
    };
    let outcome = outcome.map(|id| {
        (
            format!("/c/{c}/invite/{id}"),
            "Your invite is made. Its ticket is below, and stays at hand here while the invite is open.".to_owned(),
        )
    });
    answer(outcome, "invite", typed, async |f| {
        render(&app, &ctx, c, None, Some(f)).await
    })
    .await
}

/// Makes an invite, keeps its ticket in this run's memory, and returns its
/// id.
async fn mint(
    app: &Shared,
    c: CircleId,
    kind: InviteKind,
    lasts_ms: i64,
    uses: u32,
    label: &str,
) -> Result<EntityId, String> {
    let now = Timestamp::now();
    let expires_at = now.plus_millis(lasts_ms);
    let ticket = app
        .node
        .invite_labelled(c, kind, expires_at, uses, label, now)
        .await
        .map_err(|e| plain(&e))?;
    let id = ticket.invite;
    let kept = Kept {
        circle: c,
        ticket: ticket.to_line(),
        kind,
        expires_at,
        uses,
        waits: !ticket.stewards.is_empty(),
    };
    let mut tickets = app.tickets.lock().unwrap_or_else(|e| e.into_inner());
    // Tickets of invites that can no longer be used are let go.
    let now_ms = now.as_millis();
    tickets.retain(|_, k| k.expires_at.as_millis() > now_ms);
    tickets.insert(id, kept);
    Ok(id)
}

/// The ticket of invite `id`, where this device made it in this run.
/// How an invite is told apart in words: its label, or when it was made.
fn which(app: &Shared, invite: &Invite, now: Timestamp) -> String {
    if invite.label.is_empty() {
        format!("made {}", dates::words(invite.at, now, &app.tz))
    } else {
        format!("\"{}\"", invite.label)
    }
}

fn kept_ticket(app: &Shared, id: EntityId) -> Option<Kept> {
    let tickets = app.tickets.lock().unwrap_or_else(|e| e.into_inner());
    tickets.get(&id).cloned()
}

/// The ticket of an invite of circle `c`, while it can still be used:
/// kept here, and open in the circle.
async fn open_ticket(app: &Shared, c: CircleId, id: EntityId) -> Result<Kept, Failure> {
    let reading = app.read(c).await?;
    let invite = reading
        .view
        .invites
        .get(&id)
        .ok_or_else(|| Failure::not_found("invite"))?;
    if invite.state(Timestamp::now()) != InviteState::Open {
        return Err(Failure::new(
            axum::http::StatusCode::GONE,
            format!(
                "This invite is {} now, so its ticket is no longer shown.",
                invite.state(Timestamp::now()).as_str()
            ),
        ));
    }
    match kept_ticket(app, id).filter(|k| k.circle == c) {
        Some(k) => Ok(k),
        None => Err(Failure::new(
            axum::http::StatusCode::NOT_FOUND,
            "Its ticket is not kept here: a ticket is kept only on the device that made it, while Roundtable runs. Make a new invite if you need one.",
        )),
    }
}

/// `/c/{c}/invite/{i}`: the invite page with that invite's ticket shown
/// again.
pub(crate) async fn made(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids((c, id)): Ids<(CircleId, EntityId)>,
) -> Result<Response, Failure> {
    let k = open_ticket(&app, c, id).await?;
    Ok(shown(
        render(&app, &ctx, c, Some(&k), None).await?,
        &ctx.said,
    ))
}

/// `/c/{c}/pair/{i}`: the pairing page with that ticket shown again.
pub(crate) async fn paired(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids((c, id)): Ids<(CircleId, EntityId)>,
) -> Result<Response, Failure> {
    let k = open_ticket(&app, c, id).await?;
    Ok(shown(
        render_pair(&app, &ctx, c, Some(&k), None).await,
        &ctx.said,
    ))
}

/// Revoking an invite, asked first.
pub(crate) async fn confirm_revoke(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids((c, id)): Ids<(CircleId, EntityId)>,
) -> Result<Response, Failure> {
    let reading = app.read(c).await?;
    let view = &*reading.view;
    let invite = view
        .invites
        .get(&id)
        .ok_or_else(|| Failure::not_found("invite"))?;
    let now = Timestamp::now();
    let which = which(&app, invite, now);
    let body = html! {
        p.back { a href={ "/c/" (c) "/invite" } { "← Back to the invites" } }
        h1 { "Revoke this invite?" }
        section.card aria-labelledby="confirm-title" {
            h2 #confirm-title { "The invite " (which) }
            p { (invite.redeemed.len()) " of " (invite.uses) " used · works until " (dates::words(invite.expires_at, now, &app.tz)) "." }
            p { "Once revoked, its ticket no longer works for anyone, on any device. Whoever already joined with it stays in the circle. This cannot be undone: to invite someone again, make a new invite." }
            form method="post" action={ "/c/" (c) "/invite/" (id) "/revoke" } aria-labelledby="confirm-title" {
                (ctx.token())
                button type="submit" { "Revoke the invite" }
            }
            p { a href={ "/c/" (c) "/invite" } { "Keep it" } }
        }
    };
    Ok(shown(
        layout(
            &app,
            &ctx,
            Some(c),
            Place::Invite,
            "Revoke this invite?",
            body,
        )
        .await,
        &ctx.said,
    ))
}

pub(crate) async fn revoke(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids((c, invite)): Ids<(CircleId, EntityId)>,
    Posted { typed, .. }: Posted<Button>,
) -> Result<Response, Failure> {
    let outcome = app.perform(c, Op::RevokeInvite { invite }).await.map(|_| {
        app.tickets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&invite);
        (
            format!("/c/{c}/invite"),
            "The invite is revoked; its ticket no longer works.".to_owned(),
        )
    });
    answer(outcome, "invite", typed, async |f| {
        render(&app, &ctx, c, None, Some(f)).await
    })
    .await
}

pub(crate) async fn pair_page(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
) -> Result<Response, Failure> {
    Ok(shown(
        render_pair(&app, &ctx, c, None, None).await,
        &ctx.said,
    ))
}

async fn render_pair(
    app: &Shared,
    ctx: &Ctx,
    c: CircleId,
    made: Option<&Kept>,
    failed: Option<&Failed>,
) -> Markup {
    let body = html! {
        h1 { "Pair a device" }
        p.lead { "Use the circle from your phone or another computer too. It becomes yours: same name, same circle." }
        @if let Some(m) = made { (show_ticket(app, m)) }
        section.card aria-labelledby="pair-title" {
            h2 #pair-title { "On this device" }
            p { "Make a pairing ticket. It works once, for an hour." }
            form method="post" action={ "/c/" (c) "/pair" } aria-labelledby="pair-title" {
                (ctx.token())
                (problem(failed, "pair"))
                button type="submit" { "Make a pairing ticket" }
            }
        }
        section.card {
            h2 { "On the other device" }
            p { "Start Roundtable there, choose " a href="/welcome" { "Join with a ticket" } ", and paste the ticket or scan its code. Leave \"Your name\" empty: your name comes with it." }
        }
    };
    layout(app, ctx, Some(c), Place::People, "Pair a device", body).await
}

pub(crate) async fn pair(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
    Posted { typed, .. }: Posted<Button>,
) -> Result<Response, Failure> {
    let outcome = mint(&app, c, InviteKind::Device, HOUR_MS, 1, "")
        .await
        .map(|id| {
            (
                format!("/c/{c}/pair/{id}"),
                "Your pairing ticket is made. It is below while it works.".to_owned(),
            )
        });
    answer(outcome, "pair", typed, async |f| {
        Ok(render_pair(&app, &ctx, c, None, Some(f)).await)
    })
    .await
}
