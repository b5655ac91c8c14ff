//! How this device stands: who it is in touch with, whether they are up to
//! date, when they last synced; the stewards that keep each circle; the
//! circle as a file; a new link.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use roundtable_core::{CircleId, Timestamp, export};

use super::Ctx;
use super::layout::{Place, page as layout};
use crate::app::{Failure, Ids, shown};
use crate::forms::{Button, Posted};
use crate::live;
use crate::{Shared, access};

pub(crate) async fn page(State(app): State<Shared>, ctx: Ctx) -> Result<Response, Failure> {
    let status = app.node.status().await.map_err(Failure::node)?;
    let now = Timestamp::now();
    let body = html! {
        h1 { "Status" }
        section #status data-live aria-labelledby="devices-title" { (live::part("status", html! {
            h2 #devices-title { "Devices" }
            @if status.circles.is_empty() { p { "You are in no circle yet." } }
            @for c in &status.circles {
                h3 { (c.name) }
                @if c.devices.is_empty() {
                    p { "No other devices yet. " a href={ "/c/" (c.id) "/invite" } { "Invite someone" } }
                }
                table {
                    caption.visually-hidden { "Devices of " (c.name) }
                    thead { tr { th scope="col" { "Whose" } th scope="col" { "Connected" } th scope="col" { "Has your changes" } th scope="col" { "Last synced" } } }
                    tbody {
                        @for d in &c.devices {
                            tr {
                                td { (d.name) @if !d.device_name.is_empty() { " — " (d.device_name) } }
                                td { @if d.connected { "yes" } @else { "no" } }
                                td { @if d.has_all_our_changes { "up to date" } @else if d.connected { "catching up" } @else { "not yet" } }
                                td { @match d.last_synced { Some(t) => { (super::ago(&app, t)) } None if d.has_all_our_changes => { "no need yet" } None => { "not yet" } } }
                            }
                        }
                    }
                }
                @for f in &c.forked {
                    p.problem role="status" {
                        (f.name) "'s device" @if !f.device_name.is_empty() { " (" (f.device_name) ")" }
                        " sent two different versions of the same edit. The circle kept one of them, the same on every device. "
                        "If " (f.name) " did not copy that device, it may be lost or in someone else's hands: they should sign it out of the circle from their other device."
                    }
                }
                @for o in &c.other_versions {
                    p.problem role="status" {
                        @if o.needs_update() {
                            (o.name) "'s device" @if !o.device_name.is_empty() { " (" (o.device_name) ")" }
                            " needs an update: it runs an older Roundtable, and the two cannot sync until it is updated."
                        } @else {
                            "This device needs an update: " (o.name) "'s device" @if !o.device_name.is_empty() { " (" (o.device_name) ")" }
                            " runs a newer Roundtable, and the two cannot sync until this one is updated."
                        }
                    }
                }
                (super::stewards::on_status(&app, c.id, &c.stewards))
                p { "Export: " a href={ "/c/" (c.id) "/export.md" } download { "as a readable document" } " · " a href={ "/c/" (c.id) "/export.json" } download { "as data (JSON)" } }
            }
        })) }
        section.card aria-labelledby="device-title" {
            h2 #device-title { "This device" }
            p.sub { "Checked " (super::ago(&app, now)) "." }
            details {
                summary { "Details, for whoever helps you with the computer" }
                p { "Device id: " code { (status.device) } }
                p { "Listening at: " (status.addrs.join(", ")) }
                p { "To open the circle in a browser again: " code { "roundtable web --open" } " in a terminal." }
            }
        }
        section.card aria-labelledby="link-title" {
            h2 #link-title { "Browsers signed in" }
            p { "Each link to this app works once, for 15 minutes, and only while Roundtable runs on this device. If another browser should not be signed in, sign it out: every other browser is signed out, and this one stays in." }
            form method="post" action="/new-link" aria-labelledby="link-title" {
                (ctx.token())
                button.quiet type="submit" { "Sign out every other browser" }
            }
        }
    };
    // The places of the (first) circle stay at hand.
    let circle = status.circles.first().map(|c| c.id);
    Ok(shown(
        layout(&app, &ctx, circle, Place::Status, "Status", body).await,
        &ctx.said,
    ))
}

pub(crate) async fn new_link(
    State(app): State<Shared>,
    _: Posted<Button>,
) -> Result<Response, Failure> {
    let session = app.access.sign_out_others();
    let mut res = crate::app::saved(
        "/status",
        "Every other browser is signed out. How to sign one in again is under Details below.",
    );
    if let Ok(v) = HeaderValue::from_str(&access::session_cookie(&session)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

async fn export(app: &Shared, c: CircleId, markdown: bool) -> Result<Response, Failure> {
    let reading = app.read(c).await?;
    let view = &*reading.view;
    let (body, kind, ext) = if markdown {
        (
            export::markdown(view, &app.tz),
            "text/markdown; charset=utf-8",
            "md",
        )
    } else {
        (view.to_canonical_json(), "application/json", "json")
    };
    let file: String = view
        .circle
        .name
        .chars()
        .map(|ch| if ch.is_alphanumeric() { ch } else { '-' })
        .collect();
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}.{ext}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

pub(crate) async fn export_markdown(
    State(app): State<Shared>,
    Ids(c): Ids<CircleId>,
) -> Result<Response, Failure> {
    export(&app, c, true).await
}

pub(crate) async fn export_json(
    State(app): State<Shared>,
    Ids(c): Ids<CircleId>,
) -> Result<Response, Failure> {
    export(&app, c, false).await
}
