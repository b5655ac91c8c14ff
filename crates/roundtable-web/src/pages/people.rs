//! The people of the circle, what to remember about each, your own
//! profile, your devices, and stepping back for a while.

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use roundtable_core::quiet::away_words;
use roundtable_core::schema::limits;
use roundtable_core::{CircleId, DeviceId, Op, Timestamp, dates};

use super::layout::{Place, page as layout};
use super::{Ctx, name, problem, who, words};
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

pub(crate) async fn render(
    app: &Shared,
    ctx: &Ctx,
    c: CircleId,
    failed: Option<&Failed>,
) -> Result<Markup, Failure> {
    let reading = app.read(c).await?;
    let view = &*reading.view;
    let membership = &*reading.membership;
    let now = Timestamp::now();
    let mut people: Vec<_> = view
        .members
        .iter()
        .filter(|(id, _)| membership.members.contains(id))
        .collect();
    people.sort_by_key(|(id, m)| (m.order, **id));
    let my_id = app.me_in(membership);
    let me = view.members.get(&my_id);
    let field = |form: &str, name: &str, current: &str| -> String {
        if failed.is_some_and(|f| f.form == form) {
            Failed::value(failed, form, name).to_owned()
        } else {
            current.to_owned()
        }
    };
    let body = html! {
        h1 { "People" }
        section #people data-live aria-labelledby="people-title" { (live::part("people", html! {
            h2 #people-title { "Who is in the circle" }
            ul.cards {
                @for (id, m) in &people {
                    li {
                        (who(view, id))
                        @if !m.pronouns.is_empty() { " (" (m.pronouns) ")" }
                        @if **id == my_id { " " span.tag { "you" } }
                        p.sub { "Joined " (dates::day_words(m.joined_at, now, &app.tz))
                            @if let Some(by) = m.invited_by { ", invited by " (name(view, &by)) } }
                        @if let Some(back) = membership.back_words(view, **id) { p.sub.back-again { (crate::app::sentence(&back)) } }
                        @if let Some(a) = &m.away { p.sub { (away_words(view, id, a, &app.tz)) } }
                        @if !m.remember.is_empty() { p { "Remember: " (words(&m.remember)) } }
                        @if !m.story.is_empty() { p { (words(&m.story)) } }
                    }
                }
            }
        })) }
        @if let Some(me) = me.filter(|_| membership.is_member(my_id)) {
            section.card aria-labelledby="profile-title" {
                h2 #profile-title { "About you" }
                form method="post" action={ "/c/" (c) "/profile" } aria-labelledby="profile-title" {
                    (ctx.token())
                    (problem(failed, "profile"))
                    label for="p-name" { "Your name" }
                    input #p-name name="name" required maxlength=(limits::NAME) data-max=(limits::NAME) autocomplete="off" value=(field("profile", "name", &me.name));
                    label for="p-pronouns" { "Pronouns (optional)" }
                    input #p-pronouns name="pronouns" maxlength=(limits::PRONOUNS) data-max=(limits::PRONOUNS) autocomplete="off" value=(field("profile", "pronouns", &me.pronouns));
                    label for="p-remember" { "What the circle should remember about you" }
                    textarea #p-remember name="remember" rows="2" data-max=(limits::NOTE) autocomplete="off" placeholder="vegetarian; my sister's name is Ines" { (field("profile", "remember", &me.remember)) }
                    label for="p-story" { "A little about you (optional)" }
                    textarea #p-story name="story" rows="3" data-max=(limits::STORY) autocomplete="off" { (field("profile", "story", &me.story)) }
                    button type="submit" { "Save" }
                }
            }
            section.card aria-labelledby="away-title" {
                h2 #away-title { "Stepping back" }
                @if let Some(a) = &me.away {
                    p { (away_words(view, &my_id, a, &app.tz)) }
                    form method="post" action={ "/c/" (c) "/back" } {
                        (ctx.token())
                        (problem(failed, "back"))
                        button type="submit" { "I'm back" }
                    }
                } @else {
                    p.hint { "Take a break without worrying anyone: while you step back, the circle won't count you as quiet." }
                    form method="post" action={ "/c/" (c) "/away" } aria-labelledby="away-title" {
                        (ctx.token())
                        (problem(failed, "away"))
                        label for="away-until" { "Until (optional)" }
                        input #away-until name="until" maxlength=(limits::NAME) autocomplete="off" placeholder="next week, 24 Dec" value=(Failed::value(failed, "away", "until"));
                        label for="away-note" { "A word for the circle (optional)" }
                        input #away-note name="note" data-max=(limits::NOTE) autocomplete="off" placeholder="family stuff" value=(Failed::value(failed, "away", "note"));
                        button type="submit" { "Step back" }
                    }
                }
            }
            section.card aria-labelledby="devices-title" {
                h2 #devices-title { "Your devices" }
                ul.plain {
                    @for (d, info) in &me.devices {
                        li {
                            (device_name(&info.name))
                            @if *d == app.device { " " span.tag { "this one" } }
                            @if membership.revoked.contains(d) { " " span.tag { "revoked" } }
                            @else if *d != app.device {
                                " · " a href={ "/c/" (c) "/devices/" (d) "/revoke" } aria-label={ "Revoke " (device_name(&info.name)) ", if it is lost" } { "Revoke if lost…" }
                            }
                        }
                    }
                }
                (problem(failed, "revoke"))
                p { a href={ "/c/" (c) "/pair" } { "Pair another device" } }
                p { a href={ "/c/" (c) "/recovery-key" } { "Your recovery key, in case you lose them all" } }
            }
            (super::recovery::section(app, ctx, c, view, membership, failed))
            section.card aria-labelledby="removal-title" {
                h2 #removal-title { "If someone harms the circle" }
                p { (roundtable_core::membership::REMOVAL_RULE) " " a href={ "/c/" (c) "/removal" } { "Proposals to remove someone" } }
            }
        }
    };
    Ok(layout(app, ctx, Some(c), Place::People, "People", body).await)
}

/// Your recovery key: what it is and how to keep it.
pub(crate) async fn recovery_key(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
) -> Result<Response, Failure> {
    Ok(shown(recovery_page(&app, &ctx, c, None).await, &ctx.said))
}

/// Your recovery key's words, shown when asked for (the page is never
/// kept: every page of the app is sent `no-store`).
pub(crate) async fn show_recovery_key(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
    _: Posted<Button>,
) -> Result<Response, Failure> {
    let words = app.node.recovery_words().await.map_err(Failure::node)?;
    Ok(shown(
        recovery_page(&app, &ctx, c, Some(&words)).await,
        &ctx.said,
    ))
}

async fn recovery_page(app: &Shared, ctx: &Ctx, c: CircleId, words: Option<&str>) -> Markup {
    let body = html! {
        p.back { a href={ "/c/" (c) "/people" } { "← Back to People" } }
        h1 { "Your recovery key" }
        section.card aria-labelledby="key-title" {
            h2 #key-title { "If you lose every device of yours" }
            p { "Your recovery key is 24 words. With them, a new device of yours comes back as you: your name, what you wrote, your place in every circle. Nobody else can do that for you, so write them down." }
            @if let Some(words) = words {
                ol.words #recovery-words {
                    @for w in words.split(' ') { li { (w) } }
                }
                p { "Write them on paper, in order, and keep it somewhere safe, away from this device. On a new device, run " code { "roundtable recover --words" } ", then join with a ticket from anyone in the circle." }
                p.hint { "Anyone who has these words can act as you: never type them into a website or send them in a message. This page is not kept; leave it when you are done." }
            } @else {
                p.hint { "Show them only where nobody can look over your shoulder." }
                form method="post" action={ "/c/" (c) "/recovery-key" } aria-labelledby="key-title" {
                    (ctx.token())
                    button type="submit" { "Show my recovery key" }
                }
            }
        }
    };
    layout(app, ctx, Some(c), Place::People, "Your recovery key", body).await
}

/// A device's name, or words for one that has none.
fn device_name(name: &str) -> &str {
    if name.is_empty() {
        "a device without a name"
    } else {
        name
    }
}

/// Revoking a device of one's own (a lost one), asked first.
pub(crate) async fn confirm_revoke(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids((c, d)): Ids<(CircleId, DeviceId)>,
) -> Result<Response, Failure> {
    let reading = app.read(c).await?;
    let view = &*reading.view;
    let info = view
        .members
        .get(&app.me_in(&reading.membership))
        .and_then(|m| m.devices.get(&d))
        .ok_or_else(|| Failure::not_found("device of yours"))?;
    let revoked = reading.membership.revoked.contains(&d);
    let back = format!("/c/{c}/people");
    let body = html! {
        p.back { a href=(back) { "← Back to People" } }
        h1 { "Revoke " (device_name(&info.name)) "?" }
        section.card aria-labelledby="confirm-title" {
            h2 #confirm-title { "If this device is lost or in someone else's hands" }
            @if revoked {
                p { "This device is revoked already." }
            } @else if d == app.device {
                p { "This is the device you are using now: revoke it from another of your devices." }
            } @else {
                p { "Once revoked, it can no longer take part in the circle as you. Your other devices stay as they are. This cannot be undone: to use it again, pair it again." }
                form method="post" action={ "/c/" (c) "/devices/" (d) "/revoke" } aria-labelledby="confirm-title" {
                    (ctx.token())
                    button type="submit" { "Revoke " (device_name(&info.name)) }
                }
                p { a href=(back) { "Keep it" } }
            }
        }
    };
    Ok(shown(
        layout(&app, &ctx, Some(c), Place::People, "Revoke a device?", body).await,
        &ctx.said,
    ))
}

/// Revokes a device of this member.
pub(crate) async fn revoke(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids((c, device)): Ids<(CircleId, DeviceId)>,
    Posted { typed, .. }: Posted<Button>,
) -> Result<Response, Failure> {
    let made = Ok((
        Op::RevokeDevice { device },
        "The device is revoked: it can no longer write in the circle as you.".into(),
    ));
    act(&app, &ctx, c, typed, "revoke", made).await
}

async fn act(
    app: &Shared,
    ctx: &Ctx,
    c: CircleId,
    typed: Typed,
    form_name: &'static str,
    made: Result<(Op, String), String>,
) -> Result<Response, Failure> {
    let outcome = match made {
        Ok((op, words)) => app
            .perform(c, op)
            .await
            .map(|_| (format!("/c/{c}/people"), words)),
        Err(e) => Err(e),
    };
    answer(outcome, form_name, typed, async |f| {
        render(app, ctx, c, Some(f)).await
    })
    .await
}

/// Your profile: name, pronouns, what to remember about you, your story.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Profile {
    name: Line,
    pronouns: Line,
    remember: Text,
    story: Text,
}

pub(crate) async fn profile(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
    Posted { form, typed }: Posted<Profile>,
) -> Result<Response, Failure> {
    let op = Op::Profile {
        name: Some(form.name.0),
        pronouns: Some(form.pronouns.0),
        remember: Some(form.remember.0),
        story: Some(form.story.0),
    };
    let made = Ok((op, "Your profile is updated.".into()));
    act(&app, &ctx, c, typed, "profile", made).await
}

/// Stepping back: until when (as a person says a day), and a word.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Away {
    until: Line,
    note: Line,
}

pub(crate) async fn away(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
    Posted { form, typed }: Posted<Away>,
) -> Result<Response, Failure> {
    let until = match form.until.0 {
        u if u.is_empty() => Ok(None),
        u => dates::day_start(&u, &app.tz, Timestamp::now())
            .map(Some)
            .map_err(|e| crate::app::sentence(&e.to_string())),
    };
    let made = until.map(|until| {
        (
            Op::Away {
                until,
                note: form.note.0,
            },
            "Take the time you need. The circle won't count you as quiet.".into(),
        )
    });
    act(&app, &ctx, c, typed, "away", made).await
}

pub(crate) async fn back(
    State(app): State<Shared>,
    ctx: Ctx,
    Ids(c): Ids<CircleId>,
    Posted { typed, .. }: Posted<Button>,
) -> Result<Response, Failure> {
    let made = Ok((Op::Back, "Welcome back.".into()));
    act(&app, &ctx, c, typed, "back", made).await
}
