//! Removing someone, and welcoming someone removed back, by consent:
//! propose, consent, withdraw, with the rule in words. Nobody removes
//! anyone alone, nor brings them back alone.

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use roundtable_core::membership::{RECOVERY_RULE, REMOVAL_RULE, WELCOME_RULE};
use roundtable_core::schema::limits;
use roundtable_core::{CircleId, EntityId, MemberId, Op, Proposal, ProposalKind, ProposalState};

use super::layout::{Place, page as layout};
use super::{Ctx, ago, name, problem};
use crate::Shared;
use crate::app::{Failed, Failure, Ids, answer, shown};
use crate::forms::{Button, Line, Posted, Text, Typed};
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
    let membership = &*reading.membership;
    let me = app.me_in(membership);
    let v = |field| Failed::value(failed, "propose", field);
    let mut others: Vec<_> = view
        .members
        .iter()
        .filter(|(id, _)| membership.members.contains(id) && **id != me)
        .collect();
    others.sort_by_key(|(id, m)| (m.order, **id));
    let w = |field| Failed::value(failed, "welcome", field);
    let mut removed: Vec<_> = view
        .members
        .iter()
        .filter(|(id, _)| membership.removed.contains(id))
        .collect();
    removed.sort_by_key(|(id, m)| (m.order, **id));
    let mut proposals: Vec<_> = membership.proposals.values().collect();
    proposals.sort_by_key(|p| {
        (
            p.state != ProposalState::Open,
            std::cmp::Reverse(p.at),
            p.id,
        )
    });
    let body = html! {
        h1 { "Removing someone" }
        p.lead { (REMOVAL_RULE) }
        section #proposals data-live aria-labelledby="proposals-title" { (live::part("proposals", html! {
            h2 #proposals-title { "Proposals" }
            @if proposals.is_empty() { p { "None." } }
            ul.cards {
                @for p in &proposals {
                    li {
                        p { (p.words(view)) " · " (ago(app, p.at)) }
                        @if !p.reason.is_empty() { blockquote { (p.reason) } }
                        @let consented: Vec<String> = p.consents.iter().map(|m| name(view, m)).collect();
                        p.sub { "It needs " (p.needed) " of the " (p.electorate.len()) " asked."
                            @if !consented.is_empty() { " Agreed so far: " (consented.join(", ")) "." } }
                        @if p.state == ProposalState::Open {
                            @if p.by == me {
                                form method="post" action={ "/c/" (c) "/removal/" (p.id) "/withdraw" } {
                                    (ctx.token())
                                    button.quiet type="submit" { "Withdraw my proposal" }
                                }
                            } @else if p.electorate.contains(&me) && !p.consents.contains(&me) {
                                p.act { a href={ "/c/" (c) "/removal/" (p.id) "/consent" } { "Consider agreeing that " (name(view, &p.target)) " " (should_be(p)) "…" } }
                            }
                        }
                    }
                }
            }
        })) }
        @let never = roundtable_core::membership::cannot_pass(membership.members.len().saturating_sub(1));
        @if let (true, Some(why)) = (membership.is_member(me), &never) {
            section.card aria-labelledby="propose-title" {
                h2 #propose-title { "Propose a removal" }
                p { (crate::app::sentence(why)) }
            }
        } @else if membership.is_member(me) && !others.is_empty() {
            section.card aria-labelledby="propose-title" {
                h2 #propose-title { "Propose a removal" }
                p.hint { "Only when someone's presence harms the circle. The others are asked; it happens only if enough of them agree." }
                form method="post" action={ "/c/" (c) "/removal" } aria-labelledby="propose-title" {
                    (ctx.token())
                    (problem(failed, "propose"))
                    label for="target" { "Who" }
                    select #target name="target" required {
                        option value="" { "Choose…" }
                        @for (id, _) in &others {
                            option value=(id) selected[v("target") == id.to_string()] { (name(view, id)) }
                        }
                    }
                    label for="reason" { "Why, in words" }
                    textarea #reason name="reason" rows="2" required data-max=(limits::NOTE) autocomplete="off" { (v("reason")) }
                    button type="submit" { "Propose" }
                }
            }
        }
        @if membership.is_member(me) && !removed.is_empty() {
            section.card aria-labelledby="welcome-title" {
                h2 #welcome-title { "Welcome someone back" }
                p { (WELCOME_RULE) }
                @if let Some(why) = roundtable_core::membership::cannot_pass(membership.members.len()) {
                    p { (crate::app::sentence(&why)) }
                } @else {
                    form method="post" action={ "/c/" (c) "/removal/welcome" } aria-labelledby="welcome-title" {
                        (ctx.token())
                        (problem(failed, "welcome"))
                        label for="welcome-target" { "Who" }
                        select #welcome-target name="target" required {
                            option value="" { "Choose…" }
                            @for (id, _) in &removed {
                                option value=(id) selected[w("target") == id.to_string()] { (name(view, id)) }
                            }
                        }
                        label for="welcome-reason" { "Why, in words" }
                        textarea #welcome-reason name="reason" rows="2" required data-max=(limits::NOTE) autocomplete="off" { (w("reason")) }
                        button type="submit" { "Propose welcoming them back" }
                    }
                }
            }
        }
    };
    Ok(layout(app, ctx, Some(c), Place::People, "Removing someone", body).await)
}

/// "should be removed", "should be welcomed back".
fn should_be(p: &Proposal) -> &'static str {
    match p.kind {
        ProposalKind::Remove => "should be removed",
        ProposalKind::Welcome => "should be welcomed back",
        ProposalKind::Recover => "is recognised on a new device",
    }
}

/// Consenting to a removal, asked first: the proposal, the rule (how many
/// must agree, and how many have), and the one button that consents.
pub(crate) async fn confirm_consent(
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
        .ok_or_else(|| Failure::not_found("proposal"))?;
    let target = name(view, &p.target);
    let consented: Vec<String> = p.consents.iter().map(|m| name(view, m)).collect();
    let can = p.state == ProposalState::Open
        && p.electorate.contains(&app.me_in(&reading.membership))
        && !p.consents.contains(&app.me_in(&reading.membership));
    let back = format!("/c/{c}/removal");
    let (rule, outcome, title) = match p.kind {
        ProposalKind::Remove => (REMOVAL_RULE, "leaves the circle", "Agree to a removal?"),
        ProposalKind::Welcome => (
            WELCOME_RULE,
            "comes back to the circle as themselves",
            "Agree to a welcome back?",
        ),
        ProposalKind::Recover => (
            RECOVERY_RULE,
            "is recognised on the new device once their own devices have had the wait to refuse it",
            "Vouch for a new device?",
        ),
    };
    let body = html! {
        p.back { a href=(back) { "← Back to the proposals" } }
        h1 { "Agree that " (target) " " (should_be(p)) "?" }
        section.card aria-labelledby="confirm-title" {
            h2 #confirm-title { "The proposal" }
            p { (p.words(view)) " · " (ago(&app, p.at)) }
            @if !p.reason.is_empty() { blockquote { (p.reason) } }
            h2 { "The rule" }
            p { (rule) }
            p { "Here that is " strong { (p.needed) " of the " (p.electorate.len()) " asked" } ". "
                @if consented.is_empty() { "Nobody has agreed yet." } @else { "Agreed so far (" (consented.len()) "): " (consented.join(", ")) "." } }
            @if can {
                p { "If enough agree, " (target) " " (outcome) ". Your consent cannot be taken back once given." }
                form method="post" action={ "/c/" (c) "/removal/" (p.id) "/consent" } aria-labelledby="confirm-title" {
                    (ctx.token())
                    button type="submit" { "I agree " (target) " " (should_be(p)) }
                }
                p { a href=(back) { "Not now" } }
            } @else {
                p { "There is nothing for you to agree to here now." }
            }
        }
    };
    Ok(shown(
        layout(&app, &ctx, Some(c), Place::People, title, body).await,
        &ctx.said,
    ))
}

async fn act(
    app: &Shared,
    ctx: &Ctx,
    c: CircleId,
    typed: Typed,
    op: Result<(Op, &str), String>,
    form_name: &'static str,
) -> Result<Response, Failure> {
    let outcome = match op {
        Ok((op, words)) => app
            .perform(c, op)
            .await
            .map(|_| (format!("/c/{c}/removal"), words.to_owned())),
        Err(e) => Err(e),
    };
    answer(outcome, form_name, typed, async |f| {
        render(app, ctx, c, Some(f)).await
    })
    .await
}

/// Whom a proposal is about, and why.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Propose {
    target: Line,
    reason: Text,
}

pub(crate) async fn propose(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
    Posted { form, typed }: Posted<Propose>,
) -> Result<Response, Failure> {
    let op = match form.target.parse::<MemberId>() {
        Ok(target) => Ok((
            Op::ProposeRemoval {
                target,
                reason: form.reason.0,
            },
            "Your proposal is with the others. It happens only if enough of them agree.",
        )),
        Err(_) => Err("Choose who.".to_owned()),
    };
    act(&app, &ctx, c, typed, op, "propose").await
}

pub(crate) async fn welcome(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
    Posted { form, typed }: Posted<Propose>,
) -> Result<Response, Failure> {
    let op = match form.target.parse::<MemberId>() {
        Ok(target) => Ok((
            Op::ProposeWelcome {
                target,
                reason: form.reason.0,
            },
            "Your proposal is with the others. They are welcomed back only if enough of them agree.",
        )),
        Err(_) => Err("Choose who.".to_owned()),
    };
    act(&app, &ctx, c, typed, op, "welcome").await
}

pub(crate) async fn consent(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids((c, proposal)): Ids<(CircleId, EntityId)>,
    Posted { typed, .. }: Posted<Button>,
) -> Result<Response, Failure> {
    act(
        &app,
        &ctx,
        c,
        typed,
        Ok((Op::Consent { proposal }, "Your consent is counted.")),
        "propose",
    )
    .await
}

pub(crate) async fn withdraw(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids((c, proposal)): Ids<(CircleId, EntityId)>,
    Posted { typed, .. }: Posted<Button>,
) -> Result<Response, Failure> {
    act(
        &app,
        &ctx,
        c,
        typed,
        Ok((Op::Withdraw { proposal }, "Your proposal is withdrawn.")),
        "propose",
    )
    .await
}
