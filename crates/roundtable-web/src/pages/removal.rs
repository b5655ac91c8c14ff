//! Removing someone, by consent: propose, consent, withdraw, with the rule
//! in words. Nobody removes anyone alone.

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use roundtable_core::membership::REMOVAL_RULE;
use roundtable_core::{CircleId, EntityId, MemberId, Op, ProposalState};

use super::layout::{Place, page as layout};
use super::{Ctx, ago, name, problem};
use crate::Shared;
use crate::app::{Failed, Failure, Posted, again, parse_id, saved, shown};

pub(crate) async fn page(
    State(app): State<Shared>,
    ctx: Ctx,
    Path(c): Path<String>,
) -> Result<Response, Failure> {
    let c = parse_id(&c, "circle")?;
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
    let v = |field| Failed::value(failed, "propose", field);
    let mut others: Vec<_> = view
        .members
        .iter()
        .filter(|(id, _)| membership.members.contains(id) && **id != app.member())
        .collect();
    others.sort_by_key(|(id, m)| (m.order, **id));
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
        section #proposals data-live aria-labelledby="proposals-title" {
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
                            @if p.by == app.member() {
                                form method="post" action={ "/c/" (c) "/removal/" (p.id) "/withdraw" } {
                                    (ctx.token())
                                    button.quiet type="submit" { "Withdraw my proposal" }
                                }
                            } @else if p.electorate.contains(&app.member()) && !p.consents.contains(&app.member()) {
                                form method="post" action={ "/c/" (c) "/removal/" (p.id) "/consent" } {
                                    (ctx.token())
                                    button type="submit" { "I agree " (name(view, &p.target)) " should be removed" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @let never = roundtable_core::membership::cannot_pass(membership.members.len().saturating_sub(1));
        @if let (true, Some(why)) = (membership.is_member(app.member()), &never) {
            section.card aria-labelledby="propose-title" {
                h2 #propose-title { "Propose a removal" }
                p { (crate::app::sentence(why)) }
            }
        } @else if membership.is_member(app.member()) && !others.is_empty() {
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
                    textarea #reason name="reason" rows="2" required maxlength="1000" { (v("reason")) }
                    button type="submit" { "Propose" }
                }
            }
        }
    };
    Ok(layout(app, ctx, Some(c), Place::People, "Removing someone", body).await)
}

async fn act(
    app: &Shared,
    ctx: &Ctx,
    c: String,
    form: Posted,
    op: Result<(Op, &str), String>,
) -> Result<Response, Failure> {
    let c: CircleId = parse_id(&c, "circle")?;
    let outcome = match op {
        Ok((op, words)) => app.perform(c, op).await.map(|_| words.to_owned()),
        Err(e) => Err(e),
    };
    Ok(match outcome {
        Ok(words) => saved(&format!("/c/{c}/removal"), &words),
        Err(message) => {
            let f = Failed::new("propose", message, form);
            again(render(app, ctx, c, Some(&f)).await?)
        }
    })
}

pub(crate) async fn propose(
    State(app): State<Shared>,
    ctx: Ctx,
    Path(c): Path<String>,
    form: Posted,
) -> Result<Response, Failure> {
    let op = match form.get("target").parse::<MemberId>() {
        Ok(target) => Ok((
            Op::ProposeRemoval {
                target,
                reason: form.text("reason"),
            },
            "Your proposal is with the others. It happens only if enough of them agree.",
        )),
        Err(_) => Err("Choose who.".to_owned()),
    };
    act(&app, &ctx, c, form, op).await
}

pub(crate) async fn consent(
    State(app): State<Shared>,
    ctx: Ctx,
    Path((c, p)): Path<(String, String)>,
    form: Posted,
) -> Result<Response, Failure> {
    let proposal: EntityId = parse_id(&p, "proposal")?;
    act(
        &app,
        &ctx,
        c,
        form,
        Ok((Op::Consent { proposal }, "Your consent is counted.")),
    )
    .await
}

pub(crate) async fn withdraw(
    State(app): State<Shared>,
    ctx: Ctx,
    Path((c, p)): Path<(String, String)>,
    form: Posted,
) -> Result<Response, Failure> {
    let proposal: EntityId = parse_id(&p, "proposal")?;
    act(
        &app,
        &ctx,
        c,
        form,
        Ok((Op::Withdraw { proposal }, "Your proposal is withdrawn.")),
    )
    .await
}
