//! Someone lost every device: on a new one they ask to be recognised (a
//! request they send as they would a ticket); members who checked with
//! them vouch for it; their own devices, if one turns up, can refuse it in
//! the circle's wait. The rules are the core's
//! (`roundtable_core::membership`); these pages say them and act.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::{Markup, html};
use roundtable_core::ids::Resolved;
use roundtable_core::membership::{RECOVERY_RULE, Recovery, wait_words};
use roundtable_core::schema::limits;
use roundtable_core::{CircleId, CircleView, EntityId, Membership, Op, Proposal, ProposalState};
use roundtable_net::{CircleTicket, RecoveryRequest, TicketError};

use super::layout::{Place, page as layout};
use super::{Ctx, ago, name, problem};
use crate::Shared;
use crate::app::{Failed, Failure, Ids, again, answer, plain, saved, shown};
use crate::forms::{Button, Line, Posted, Text};
use crate::live;

/// The waits a circle may choose, in hours, as the page offers them.
const WAITS: [u64; 6] = [24, 48, 72, 7 * 24, 10 * 24, 14 * 24];

/// `/recover`: on a new device, ask a circle to recognise you.
pub(crate) async fn ask_page(State(app): State<Shared>, ctx: Ctx) -> Response {
    shown(ask_render(&app, &ctx, None).await, &ctx.said)
}

async fn ask_render(app: &Shared, ctx: &Ctx, failed: Option<&Failed>) -> Markup {
    let v = |field| Failed::value(failed, "recover", field);
    let body = html! {
        p.back { a href="/welcome" { "← Back" } }
        h1 { "Lost your devices?" }
        p.lead { "If you lost every device you used for a circle, the people in it can recognise you on this one. Nobody can do it alone, and your old devices, if one turns up, can still say no." }
        section.card aria-labelledby="recover-title" {
            h2 #recover-title { "Ask your circle to recognise you" }
            p.hint { "Ask someone in the circle for a ticket (Invite), the way you would to join. Then say the name the circle knows you by." }
            form method="post" action="/recover" aria-labelledby="recover-title" {
                (ctx.token())
                (problem(failed, "recover"))
                label for="recover-ticket" { "Ticket" }
                textarea #recover-ticket name="ticket" required rows="4" spellcheck="false" autocomplete="off" placeholder="roundtable…" { (v("ticket")) }
                label for="recover-as" { "Your name in the circle" }
                input #recover-as name="as" required maxlength=(limits::NAME) data-max=(limits::NAME) autocomplete="name" value=(v("as"));
                button type="submit" { "Make my request" }
            }
        }
        section.card aria-labelledby="words-title" {
            h2 #words-title { "If you wrote down your recovery key" }
            p { "Your 24 words bring you back at once, without asking anyone: in a terminal on this device, run " code { "roundtable recover --words" } ", then join with a ticket as usual." }
        }
    };
    layout(app, ctx, None, Place::Elsewhere, "Lost your devices?", body).await
}

/// Makes the request for this device, and shows it.
/// Asking to be recognised on this device: the circle's ticket, and who
/// you are in it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Ask {
    ticket: Line,
    #[serde(rename = "as")]
    who: Line,
}

pub(crate) async fn ask(
    State(app): State<Shared>,
    ctx: Ctx,
    Posted { form, typed }: Posted<Ask>,
) -> Response {
    match request_for(&app, &form.ticket, &form.who).await {
        Ok(request) => saved(
            &format!(
                "/recover/{}?as={}",
                request.circle,
                form_urlencoded::byte_serialize(request.name.as_bytes()).collect::<String>()
            ),
            "Your request is ready. Send it to people in your circle.",
        ),
        Err(message) => {
            let f = Failed::new("recover", message, typed);
            again(ask_render(&app, &ctx, Some(&f)).await)
        }
    }
}

/// This device's request to be recognised as `who` in the ticket's circle.
async fn request_for(app: &Shared, ticket: &str, who: &str) -> Result<RecoveryRequest, String> {
    let ticket = CircleTicket::parse(ticket).map_err(|e| match e {
        TicketError::RecoveryNotInvite => {
            "That is a request, not a ticket. Ask someone in the circle for a ticket (Invite) and paste that here.".to_owned()
        }
        e => crate::app::sentence(&e.to_string()),
    })?;
    this_devices(app, ticket.circle, who).await
}

/// This device's request to be recognised as `who` in `circle` (one it
/// does not hold).
async fn this_devices(
    app: &Shared,
    circle: CircleId,
    who: &str,
) -> Result<RecoveryRequest, String> {
    let circles = app.node.circles().await.map_err(|e| plain(&e))?;
    if circles.iter().any(|(id, _)| *id == circle) {
        return Err(
            "This device holds that circle already: there is nothing to recover here.".into(),
        );
    }
    let cert = app.node.certificate().await.map_err(|e| plain(&e))?;
    RecoveryRequest::new(circle, who, cert).map_err(|e| crate::app::sentence(&e))
}

/// `/recover/{c}?as=NAME`: this device's request, to copy and send.
pub(crate) async fn request_page(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Failure> {
    let who = q.get("as").map(String::as_str).unwrap_or("");
    let made = this_devices(&app, c, who).await;
    let body = html! {
        p.back { a href="/recover" { "← Back" } }
        h1 { "Your request" }
        @match &made {
            Ok(request) => {
                section.card aria-labelledby="request-title" {
                    h2 #request-title { "Send this to people in your circle" }
                    p { "It asks that this device be " strong { (request.name) } "'s in the circle. Send it the way you would send a ticket; it holds no secret." }
                    label for="request" { "Request" }
                    textarea #request readonly rows="5" spellcheck="false" { (request.to_line()) }
                    button.secondary type="button" data-copy="request" { "Copy" }
                }
                section.card aria-labelledby="next-title" {
                    h2 #next-title { "What happens next" }
                    ol {
                        li { "Each person who checks with you that it is really you — a call, or face to face — vouches for it on their device." }
                        li { "When enough have, your old devices have the circle's wait (" (wait_words(roundtable_core::membership::RECOVERY_WAIT_HOURS)) " unless it chose another) to say no, in case this is not you." }
                        li { "Then this device is yours in the circle. Join with a ticket (on the first page) to bring the circle here; you come back as yourself, with all you wrote." }
                    }
                }
            }
            Err(why) => {
                p.problem role="alert" { (why) }
                p { a href="/recover" { "Make a request" } }
            }
        }
    };
    Ok(shown(
        layout(&app, &ctx, None, Place::Elsewhere, "Your request", body).await,
        &ctx.said,
    ))
}

/// The people page's part about recoveries: requests under way (with
/// what this member may do about each), a request to vouch for, and the
/// circle's wait.
pub(crate) fn section(
    app: &Shared,
    ctx: &Ctx,
    c: CircleId,
    view: &CircleView,
    membership: &Membership,
    failed: Option<&Failed>,
) -> Markup {
    let me = app.me_in(membership);
    let mut under_way: Vec<(&Proposal, &Recovery)> = membership
        .proposals
        .values()
        .filter_map(|p| Some((p, p.recovery.as_ref()?)))
        .filter(|(p, r)| showing(p, r))
        .collect();
    under_way.sort_by_key(|(p, _)| (std::cmp::Reverse(p.at), p.id));
    let wait = view.recovery_wait_hours();
    html! {
        section.card #recoveries data-live aria-labelledby="recoveries-title" { (live::part("recoveries", html! {
            h2 #recoveries-title { "If someone lost their devices" }
            @if under_way.is_empty() {
                p.hint { "Someone who lost every device can ask, from a new one, to be recognised. " (RECOVERY_RULE) }
            } @else {
                ul.cards {
                    @for (p, r) in &under_way {
                        li {
                            p { (crate::app::sentence(&p.words(view))) " · " (ago(app, p.at)) }
                            @if !p.reason.is_empty() { blockquote { (p.reason) } }
                            @if can_vouch(p, me) {
                                p.act { a href={ "/c/" (c) "/removal/" (p.id) "/consent" } { "Vouch that this is " (name(view, &p.target)) "…" } }
                            }
                            @if can_refuse(p, r, me, app.device) {
                                p.act { a href={ "/c/" (c) "/recovery/" (p.id) "/refuse" } { "This is not me: refuse…" } }
                            }
                        }
                    }
                }
            }
        })) }
        @if membership.is_member(me) {
            section.card aria-labelledby="vouch-title" {
                h2 #vouch-title { "Vouch for someone on a new device" }
                p.hint { "Paste the request they sent you. You see who it is for, and the rule, before anything happens." }
                form method="get" action={ "/c/" (c) "/vouch" } aria-labelledby="vouch-title" {
                    label for="vouch-request" { "Request" }
                    textarea #vouch-request name="request" required rows="3" spellcheck="false" autocomplete="off" placeholder="roundtablerecover…" {}
                    button type="submit" { "Look at the request" }
                }
            }
            section.card aria-labelledby="wait-title" {
                h2 #wait-title { "The wait to refuse" }
                p { "Once enough have vouched, the person's own devices may refuse for " (view.recovery_wait_words()) ". Anyone in the circle can change it; everyone sees who did." }
                form method="post" action={ "/c/" (c) "/recovery-wait" } aria-labelledby="wait-title" {
                    (ctx.token())
                    (problem(failed, "wait"))
                    label for="wait-hours" { "How long" }
                    select #wait-hours name="hours" {
                        @for h in WAITS {
                            option value=(h) selected[h == wait] { (wait_words(h)) }
                        }
                    }
                    button.secondary type="submit" { "Set the wait" }
                }
            }
        }
    }
}

/// A recovery the page lists: being vouched for, in its wait, or ended
/// in the last fortnight.
fn showing(p: &Proposal, r: &Recovery) -> bool {
    const FORTNIGHT_MS: i64 = 14 * 24 * 3_600_000;
    let recent = |t: roundtable_core::Timestamp| {
        roundtable_core::Timestamp::now().as_millis() - t.as_millis() < FORTNIGHT_MS
    };
    match p.state {
        ProposalState::Open => true,
        ProposalState::Carried => r.completed.is_none_or(recent),
        ProposalState::Refused => recent(p.at),
        ProposalState::Withdrawn | ProposalState::Void => false,
    }
}

fn can_vouch(p: &Proposal, me: roundtable_core::MemberId) -> bool {
    p.state == ProposalState::Open && p.electorate.contains(&me) && !p.consents.contains(&me)
}

fn can_refuse(
    p: &Proposal,
    r: &Recovery,
    me: roundtable_core::MemberId,
    device: roundtable_core::DeviceId,
) -> bool {
    p.target == me
        && r.completed.is_none()
        && matches!(p.state, ProposalState::Open | ProposalState::Carried)
        && !r.refused_by.contains(&device)
}

/// `/c/{c}/vouch?request=…`: who a pasted request is for, the rule, and
/// the one button that vouches.
pub(crate) async fn confirm_vouch(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Failure> {
    let pasted = q.get("request").map(String::as_str).unwrap_or("");
    Ok(shown(
        vouch_render(&app, &ctx, c, pasted, None).await?,
        &ctx.said,
    ))
}

async fn vouch_render(
    app: &Shared,
    ctx: &Ctx,
    c: CircleId,
    pasted: &str,
    failed: Option<&Failed>,
) -> Result<Markup, Failure> {
    let reading = app.read(c).await?;
    let view = &*reading.view;
    let membership = &*reading.membership;
    let back = format!("/c/{c}/people");
    let read = RecoveryRequest::parse(pasted)
        .map_err(|e| crate::app::sentence(&e.to_string()))
        .and_then(|r| {
            if r.circle == c {
                Ok(r)
            } else {
                Err("This request is for another circle: it is for someone in that circle to vouch.".into())
            }
        });
    let me = app.me_in(membership);
    let body = html! {
        p.back { a href=(back) { "← Back to People" } }
        h1 { "Vouch for someone on a new device?" }
        @match &read {
            Err(why) => {
                section.card aria-labelledby="vouch-title" {
                    h2 #vouch-title { "Vouch for someone on a new device" }
                    p.problem role="alert" { (why) }
                    form method="get" action={ "/c/" (c) "/vouch" } aria-labelledby="vouch-title" {
                        label for="vouch-request" { "Request" }
                        textarea #vouch-request name="request" required rows="3" spellcheck="false" autocomplete="off" { (pasted) }
                        button type="submit" { "Look at the request" }
                    }
                }
            }
            Ok(request) => {
                @let chosen = Failed::value(failed, "vouch", "target");
                @let found = match view.find_member(&request.name) { Resolved::One(id) => Some(id), _ => None };
                @let others: Vec<_> = {
                    let mut o: Vec<_> = view.members.iter().filter(|(id, _)| membership.is_member(**id) && **id != me).collect();
                    o.sort_by_key(|(id, m)| (m.order, **id));
                    o
                };
                @let already = membership.proposals.values().find(|p| p.state == ProposalState::Open && p.recovery.as_ref().is_some_and(|r| r.device == request.cert.device));
                section.card aria-labelledby="vouch-title" {
                    h2 #vouch-title { "A request to become " (request.name) "'s device" }
                    p { "Whoever sent it says they are " strong { (request.name) } " and asks that their new device (" code { (request.cert.device.fmt_short()) } ") be theirs in the circle." }
                    @if let Some(p) = already { p { (crate::app::sentence(&p.words(view))) "." } }
                    h2 { "The rule" }
                    p { (RECOVERY_RULE) }
                    p { "Their own devices may refuse it for " (view.recovery_wait_words()) " once enough have vouched." }
                    @if !membership.is_member(me) {
                        p { "Only members of the circle vouch." }
                    } @else {
                        form method="post" action={ "/c/" (c) "/vouch" } aria-labelledby="vouch-title" {
                            (ctx.token())
                            (problem(failed, "vouch"))
                            input type="hidden" name="request" value=(request.to_line());
                            label for="vouch-target" { "Who they are in the circle" }
                            select #vouch-target name="target" required {
                                option value="" { "Choose…" }
                                @for (id, _) in &others {
                                    @let pick = if chosen.is_empty() { found == Some(**id) } else { chosen == id.to_string() };
                                    option value=(id) selected[pick] { (name(view, id)) }
                                }
                            }
                            label for="vouch-reason" { "How you checked it is them" }
                            textarea #vouch-reason name="reason" rows="2" data-max=(limits::NOTE) autocomplete="off" placeholder="she rang me" { (Failed::value(failed, "vouch", "reason")) }
                            button type="submit" { "I checked with them myself: vouch" }
                        }
                        p { a href=(back) { "Not now" } }
                    }
                }
            }
        }
    };
    Ok(layout(app, ctx, Some(c), Place::People, "Vouch for someone?", body).await)
}

/// Vouching: the request as pasted, who it is in the circle, and why you
/// are sure.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Vouch {
    request: Line,
    target: Line,
    reason: Text,
}

/// Vouches for the request as the chosen member's.
pub(crate) async fn vouch(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
    Posted { form, typed }: Posted<Vouch>,
) -> Result<Response, Failure> {
    let pasted = form.request.0;
    let op = match (
        RecoveryRequest::parse(&pasted),
        form.target.parse::<roundtable_core::MemberId>(),
    ) {
        (Err(e), _) => Err(crate::app::sentence(&e.to_string())),
        (Ok(r), _) if r.circle != c => Err("This request is for another circle.".to_owned()),
        (Ok(_), Err(_)) => Err("Choose who they are in the circle.".to_owned()),
        (Ok(r), Ok(target)) => Ok(Op::Vouch {
            target,
            key: r.cert.member,
            device: r.cert.device,
            cert: r.cert.signature_hex(),
            reason: form.reason.0,
        }),
    };
    let outcome = match op {
        Ok(op) => app.perform(c, op).await,
        Err(e) => Err(e),
    };
    let outcome = match outcome {
        Ok(id) => {
            let after = app.read(c).await?;
            let words = id
                .and_then(|id| after.membership.proposals.get(&id))
                .map(|p| p.words(&after.view))
                .unwrap_or_default();
            Ok((
                format!("/c/{c}/people"),
                format!("You vouched. Now: {words}."),
            ))
        }
        Err(e) => Err(e),
    };
    answer(outcome, "vouch", typed, async |f| {
        vouch_render(&app, &ctx, c, &pasted, Some(f)).await
    })
    .await
}

/// Refusing a request to become one of your devices, asked first.
pub(crate) async fn confirm_refuse(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids((c, id)): Ids<(CircleId, EntityId)>,
) -> Result<Response, Failure> {
    let reading = app.read(c).await?;
    let view = &*reading.view;
    let p = reading
        .membership
        .proposals
        .get(&id)
        .filter(|p| p.recovery.is_some())
        .ok_or_else(|| Failure::not_found("request"))?;
    let r = p.recovery.as_ref().expect("a recovery");
    let back = format!("/c/{c}/people");
    let body = html! {
        p.back { a href=(back) { "← Back to People" } }
        h1 { "Refuse this request?" }
        section.card aria-labelledby="confirm-title" {
            h2 #confirm-title { "A request to become your device" }
            p { (crate::app::sentence(&p.words(view))) "." }
            @if !p.reason.is_empty() { blockquote { (p.reason) } }
            @if can_refuse(p, r, app.me_in(&reading.membership), app.device) {
                p { "If it is not you asking — or you have your device back — refuse it. The new device will not become yours, and everyone in the circle sees that one of your devices refused." }
                form method="post" action={ "/c/" (c) "/recovery/" (p.id) "/refuse" } aria-labelledby="confirm-title" {
                    (ctx.token())
                    button type="submit" { "Refuse: this is not me" }
                }
                p { a href=(back) { "Not now" } }
            } @else {
                p { "There is nothing for this device to refuse here now." }
            }
        }
    };
    Ok(shown(
        layout(
            &app,
            &ctx,
            Some(c),
            Place::People,
            "Refuse a request?",
            body,
        )
        .await,
        &ctx.said,
    ))
}

/// Refuses it, from this device.
pub(crate) async fn refuse(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids((c, proposal)): Ids<(CircleId, EntityId)>,
    Posted { typed, .. }: Posted<Button>,
) -> Result<Response, Failure> {
    let outcome = app
        .perform(c, Op::RefuseRecovery { proposal })
        .await
        .map(|_| {
            (
                format!("/c/{c}/people"),
                "Refused: that device will not become yours, and everyone sees one of your devices refused it.".to_owned(),
            )
        });
    answer(outcome, "refuse", typed, async |f| {
        super::people::render(&app, &ctx, c, Some(f)).await
    })
    .await
}

/// The circle's wait, in hours.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Wait {
    hours: Line,
}

/// Sets the circle's wait.
pub(crate) async fn set_wait(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
    Posted { form, typed }: Posted<Wait>,
) -> Result<Response, Failure> {
    let outcome = match form.hours.parse::<u64>() {
        Ok(hours) => app
            .perform(c, Op::RecoveryWait { hours })
            .await
            .map(|_| {
                (
                    format!("/c/{c}/people"),
                    format!(
                        "From now on, someone's own devices may refuse a request to become theirs for {}.",
                        wait_words(hours)
                    ),
                )
            }),
        Err(_) => Err("Choose how long.".to_owned()),
    };
    answer(outcome, "wait", typed, async |f| {
        super::people::render(&app, &ctx, c, Some(f)).await
    })
    .await
}
