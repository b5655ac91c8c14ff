//! One check-in, moment, ask or offer, with its replies: reply in words,
//! take something on, close with thanks, change or take back your own.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use roundtable_core::feed::Entry;
use roundtable_core::quiet::away_words;
use roundtable_core::schema::limits;
use roundtable_core::view::{Reply, Request};
use roundtable_core::{
    CircleId, CircleView, EntityId, MemberId, Membership, Mood, Op, RequestKind, Timestamp, dates,
};

use super::layout::{Place, page as layout};
use super::{Ctx, ago, name, problem, who, words};
use crate::Shared;
use crate::app::{Failed, Failure, Ids, answer, shown};
use crate::forms::{Button, Line, Posted, Text, Typed};
use crate::live;

/// One line of the circle's life, as the home lists it.
pub(crate) fn feed_item(
    app: &Shared,
    view: &CircleView,
    membership: &Membership,
    c: CircleId,
    e: &Entry<'_>,
) -> Markup {
    let now = Timestamp::now();
    let link = |id: &EntityId| format!("/c/{c}/e/{id}");
    // A live part of its own: a change elsewhere in the feed sends the
    // page only the items it has not got (see `live::parts_only`).
    let part = format!("life-{}-{}", e.id(), e.order());
    html! {
        li.item.(e.kind()) id=(part) data-live { (live::part(&part, html! {
            @match e {
                Entry::Joined(id, m) => {
                    p { (name(view, id)) " joined the circle"
                        @if let Some(by) = m.invited_by { ", invited by " (name(view, &by)) }
                        " · " (ago(app, m.joined_at)) }
                }
                Entry::Left(id, l) => { p { (name(view, id)) " left the circle · " (ago(app, l.at)) } }
                Entry::Renamed(id, r) => { p { (view.rename_words(id, r)) " · " (ago(app, r.at)) } }
                Entry::SteppingBack(id, a) => { p { (away_words(view, id, a, &app.tz)) " · " (ago(app, a.since)) } }
                Entry::Proposal(id, p) => {
                    @if let Some(words) = membership.proposals.get(id).map(|p| p.words(view)) {
                        p { (words) " · " (ago(app, p.at)) " · " a href={ "/c/" (c) "/removal" } { "see the proposal" } }
                    }
                }
                Entry::Checkin(id, ci) => {
                    p.head { (who(view, &ci.author)) " " span.mood.(ci.mood.as_str()) { (ci.mood.in_words()) } " · " (ago(app, ci.at)) }
                    @if !ci.note.is_empty() { blockquote { (words(&ci.note)) } }
                    (replies(app, view, &ci.replies))
                    @if ci.mood == Mood::Struggling && ci.replies.is_empty() {
                        p.nudge { (name(view, &ci.author)) " could use a word." }
                    }
                    p.act { a href=(link(id)) aria-label={ "Reply to " (name(view, &ci.author)) } { "Reply" } }
                }
                Entry::Moment(id, m) => {
                    p.head { (who(view, &m.author)) " shared a moment · " (ago(app, m.at)) }
                    blockquote { (words(&m.text)) }
                    (replies(app, view, &m.replies))
                    p.act { a href=(link(id)) aria-label={ "Reply to " (name(view, &m.author)) "'s moment" } { "Reply" } }
                }
                Entry::Request(id, r) => {
                    (request_summary(app, view, r))
                    p.act {
                        @if r.done.is_some() {
                            a href=(link(id)) aria-label={ "See how it went: " (name(view, &r.author)) "'s " (r.kind.as_str()) } { "See how it went" }
                        } @else {
                            @let act = if r.kind == RequestKind::Ask { "Reply or help" } else { "Reply or take it up" };
                            a href=(link(id)) aria-label={ (act) ": " (name(view, &r.author)) "'s " (r.kind.as_str()) } { (act) }
                        }
                    }
                }
                Entry::Gathering(id, g) => {
                    p.head { (who(view, &g.author)) " proposed " a href={ "/c/" (c) "/g/" (id) } { (g.title) } " · " (dates::starts_words(g, now, &app.tz)) }
                    @if !g.place.is_empty() { p.sub { "at " (g.place) } }
                }
            }
        })) }
    }
}

fn request_summary(app: &Shared, view: &CircleView, r: &Request) -> Markup {
    let mut cs: Vec<_> = r.commitments.iter().collect();
    cs.sort_by_key(|(cid, c)| (c.order, **cid));
    html! {
        p.head { (who(view, &r.author)) " " (r.kind.verb()) ": " (r.text)
            @if !r.when.is_empty() { " (" (r.when) ")" }
            " · " (ago(app, r.at)) }
        @if !cs.is_empty() {
            ul.replies {
                @for (_, c) in cs { li { strong { (name(view, &c.author)) } " will: " (c.text) } }
            }
        }
        (replies(app, view, &r.replies))
        @match &r.done {
            Some(d) if d.thanks.is_empty() => { p.done { "Done." } }
            Some(d) => { p.done { "Done: " (d.thanks) } }
            None => {}
        }
    }
}

/// Replies, oldest first, in words (never counted).
pub(crate) fn replies(
    app: &Shared,
    view: &CircleView,
    replies: &BTreeMap<EntityId, Reply>,
) -> Markup {
    let mut rs: Vec<_> = replies.iter().collect();
    rs.sort_by_key(|(rid, r)| (r.order, **rid));
    html! {
        @if !rs.is_empty() {
            ul.replies {
                @for (_, r) in rs {
                    li { strong { (name(view, &r.author)) } ": " (words(&r.text)) " · " (ago(app, r.at)) }
                }
            }
        }
    }
}

enum Found<'a> {
    Checkin(&'a roundtable_core::view::Checkin),
    Moment(&'a roundtable_core::view::Moment),
    Request(&'a Request),
}

impl Found<'_> {
    fn author(&self) -> MemberId {
        match self {
            Found::Checkin(x) => x.author,
            Found::Moment(x) => x.author,
            Found::Request(x) => x.author,
        }
    }

    fn text(&self) -> &str {
        match self {
            Found::Checkin(x) => &x.note,
            Found::Moment(x) => &x.text,
            Found::Request(x) => &x.text,
        }
    }
}

fn find(view: &CircleView, e: EntityId) -> Option<Found<'_>> {
    view.checkins
        .get(&e)
        .map(Found::Checkin)
        .or_else(|| view.moments.get(&e).map(Found::Moment))
        .or_else(|| view.requests.get(&e).map(Found::Request))
}

pub(crate) async fn page(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids((c, e)): Ids<(CircleId, EntityId)>,
) -> Result<Response, Failure> {
    Ok(shown(render(&app, &ctx, c, e, None).await?, &ctx.said))
}

async fn render(
    app: &Shared,
    ctx: &Ctx,
    c: CircleId,
    e: EntityId,
    failed: Option<&Failed>,
) -> Result<Markup, Failure> {
    let reading = app.read(c).await?;
    let view = &*reading.view;
    let found = find(view, e).ok_or_else(|| Failure::not_found("entry"))?;
    let me = app.me_in(&reading.membership);
    let mine = found.author() == me;
    let v = |form, field| Failed::value(failed, form, field);
    let here = format!("/c/{c}/e/{e}");
    let (title, main) = match &found {
        Found::Checkin(ci) => (
            format!("{} {}", name(view, &ci.author), ci.mood.in_words()),
            html! {
                p.head { " · " (ago(app, ci.at)) }
                @if !ci.note.is_empty() { blockquote { (words(&ci.note)) } }
                (replies(app, view, &ci.replies))
            },
        ),
        Found::Moment(m) => (
            format!("{} shared a moment", name(view, &m.author)),
            html! {
                blockquote { (words(&m.text)) }
                (replies(app, view, &m.replies))
            },
        ),
        Found::Request(r) => (
            format!("{} {}", name(view, &r.author), r.kind.verb()),
            request_summary(app, view, r),
        ),
    };
    let request = match &found {
        Found::Request(r) => Some(*r),
        _ => None,
    };
    let body = html! {
        p.back { a href={ "/c/" (c) } { "← Back to the circle" } }
        article.entry {
            h1 { (title) }
            (super::double_ups::notice(app, ctx, view, me, c, Some(&e.to_string())))
            div #entry data-live { (live::part("entry", main)) }
        }
        section.card aria-labelledby="reply-title" {
            h2 #reply-title { "Reply" }
            form method="post" action={ (here) "/reply" } aria-labelledby="reply-title" {
                (ctx.token())
                (problem(failed, "reply"))
                label for="reply-words" { "Your reply" }
                textarea #reply-words name="text" rows="3" required data-max=(limits::NOTE) autocomplete="off" { (v("reply", "text")) }
                button type="submit" { "Reply" }
            }
        }
        @if let Some(r) = request.filter(|r| r.done.is_none()) {
            @if !mine {
                section.card aria-labelledby="commit-title" {
                    h2 #commit-title { @if r.kind == RequestKind::Ask { "Can you help?" } @else { "Take it up" } }
                    form method="post" action={ (here) "/commit" } aria-labelledby="commit-title" {
                        (ctx.token())
                        (problem(failed, "commit"))
                        label for="commit-words" { "What you'll do" }
                        input #commit-words name="text" required data-max=(limits::NOTE) autocomplete="off" placeholder="I'll bring soup on Tuesday" value=(v("commit", "text"));
                        button type="submit" { "I'll do it" }
                    }
                }
            } @else {
                section.card aria-labelledby="done-title" {
                    h2 #done-title { "Close it, with thanks" }
                    form method="post" action={ (here) "/done" } aria-labelledby="done-title" {
                        (ctx.token())
                        (problem(failed, "done"))
                        label for="thanks-words" { "Thanks (optional)" }
                        input #thanks-words name="thanks" data-max=(limits::NOTE) autocomplete="off" placeholder="Thank you, Sam — the soup was perfect" value=(v("done", "thanks"));
                        button type="submit" { "Mark done" }
                    }
                }
            }
        }
        @if mine {
            section.card aria-labelledby="edit-title" {
                h2 #edit-title { "Your words" }
                form method="post" action={ (here) "/edit" } aria-labelledby="edit-title" {
                    (ctx.token())
                    (problem(failed, "edit"))
                    label for="edit-words" { "Change what you wrote" }
                    textarea #edit-words name="text" rows="2" data-max=(limits::NOTE) autocomplete="off" {
                        @if failed.is_some_and(|f| f.form == "edit") { (v("edit", "text")) } @else { (found.text()) }
                    }
                    button type="submit" { "Save the change" }
                }
                (problem(failed, "withdraw"))
                p.act { a href={ (here) "/withdraw" } { "Take it back…" } }
            }
        }
    };
    Ok(layout(app, ctx, Some(c), Place::Home, &title, body).await)
}

/// Taking something back, asked first: what it is, what taking it back
/// means, and the one button that does it.
pub(crate) async fn confirm_withdraw(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids((c, e)): Ids<(CircleId, EntityId)>,
) -> Result<Response, Failure> {
    let reading = app.read(c).await?;
    let view = &*reading.view;
    let found = find(view, e).ok_or_else(|| Failure::not_found("entry"))?;
    let here = format!("/c/{c}/e/{e}");
    let body = html! {
        p.back { a href=(here) { "← Back" } }
        h1 { "Take this back?" }
        section.card aria-labelledby="confirm-title" {
            h2 #confirm-title { "What you wrote" }
            @if found.text().is_empty() { p { "(no words)" } } @else { blockquote { (words(found.text())) } }
            p { "Taken back, it no longer shows on the circle's pages, on any device. This cannot be undone." }
            form method="post" action={ (here) "/withdraw" } aria-labelledby="confirm-title" {
                (ctx.token())
                button type="submit" { "Take it back" }
            }
            p { a href=(here) { "Keep it" } }
        }
    };
    Ok(shown(
        layout(&app, &ctx, Some(c), Place::Home, "Take this back?", body).await,
        &ctx.said,
    ))
}

async fn act(
    app: &Shared,
    ctx: &Ctx,
    (c, e): (CircleId, EntityId),
    typed: Typed,
    form_name: &'static str,
    (op, words): (Op, &str),
) -> Result<Response, Failure> {
    let to = if form_name == "withdraw" {
        format!("/c/{c}")
    } else {
        format!("/c/{c}/e/{e}")
    };
    let outcome = app.perform(c, op).await.map(|_| (to, words.to_owned()));
    answer(outcome, form_name, typed, async |f| {
        render(app, ctx, c, e, Some(f)).await
    })
    .await
}

/// Words with line breaks kept: a reply, or an entry's words changed.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Words {
    text: Text,
}

/// What you will do for an ask, in one line.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Commit {
    text: Line,
}

/// Closing an ask: a word of thanks.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Done {
    thanks: Line,
}

pub(crate) async fn reply(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(ids): Ids<(CircleId, EntityId)>,
    Posted { form, typed }: Posted<Words>,
) -> Result<Response, Failure> {
    let op = Op::Reply {
        to: ids.1,
        text: form.text.0,
    };
    let words = "Your reply is with the circle.";
    act(&app, &ctx, ids, typed, "reply", (op, words)).await
}

pub(crate) async fn commit(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(ids): Ids<(CircleId, EntityId)>,
    Posted { form, typed }: Posted<Commit>,
) -> Result<Response, Failure> {
    let op = Op::Commit {
        to: ids.1,
        text: form.text.0,
    };
    let words = "Thank you. The circle knows you'll do it.";
    act(&app, &ctx, ids, typed, "commit", (op, words)).await
}

pub(crate) async fn done(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(ids): Ids<(CircleId, EntityId)>,
    Posted { form, typed }: Posted<Done>,
) -> Result<Response, Failure> {
    let op = Op::Close {
        request: ids.1,
        thanks: form.thanks.0,
    };
    let words = "Marked done. Thank you for closing the loop.";
    act(&app, &ctx, ids, typed, "done", (op, words)).await
}

pub(crate) async fn edit(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(ids): Ids<(CircleId, EntityId)>,
    Posted { form, typed }: Posted<Words>,
) -> Result<Response, Failure> {
    let op = Op::EditEntry {
        id: ids.1,
        text: form.text.0,
    };
    act(
        &app,
        &ctx,
        ids,
        typed,
        "edit",
        (op, "Your words are changed."),
    )
    .await
}

pub(crate) async fn withdraw(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(ids): Ids<(CircleId, EntityId)>,
    Posted { typed, .. }: Posted<Button>,
) -> Result<Response, Failure> {
    let op = Op::WithdrawEntry { id: ids.1 };
    act(&app, &ctx, ids, typed, "withdraw", (op, "Taken back.")).await
}
