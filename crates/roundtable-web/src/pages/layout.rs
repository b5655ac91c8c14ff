//! The frame around every page: the circle, its places, and whether this
//! device is in touch with the others.

use maud::{DOCTYPE, Markup, html};
use roundtable_core::CircleId;
use roundtable_node::Status;

use super::Ctx;
use crate::Shared;

/// The places of a circle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Home,
    Help,
    Gatherings,
    People,
    Invite,
    Status,
    Elsewhere,
}

const PLACES: [(Place, &str, &str); 5] = [
    (Place::Home, "", "Home"),
    (Place::Help, "/help", "Asks & offers"),
    (Place::Gatherings, "/gatherings", "Gatherings"),
    (Place::People, "/people", "People"),
    (Place::Invite, "/invite", "Invite"),
];

/// Whether this device is in touch, in words.
pub(crate) fn net_words(status: &Status) -> (bool, String) {
    let mut names: Vec<String> = Vec::new();
    let mut behind = false;
    for c in &status.circles {
        for d in c.devices.iter().filter(|d| d.connected) {
            // People by their names: a device's name (often the computer's
            // host name) is for the status page.
            let who = d.name.clone();
            if !names.contains(&who) {
                names.push(who);
            }
            behind |= !d.has_all_our_changes;
        }
    }
    // Nobody else is awake, but a steward takes what is written here.
    let kept: Vec<&str> = status
        .circles
        .iter()
        .filter(|c| {
            c.stewards
                .iter()
                .any(|s| s.connected && s.removed_by.is_none())
        })
        .map(|c| c.name.as_str())
        .collect();
    if names.is_empty() && !kept.is_empty() {
        let whose = if kept.len() == status.circles.len() {
            "the circle's steward".to_owned()
        } else {
            format!("the steward of {}", kept.join(", "))
        };
        return (
            true,
            format!(
                "No other device of the circle is awake right now. What you write also goes to {whose}, and reaches the others when their devices next run."
            ),
        );
    }
    // A circle of one so far: there is nobody to be out of touch with.
    if names.is_empty()
        && status
            .circles
            .iter()
            .all(|c| c.devices.is_empty() && c.stewards.is_empty())
    {
        return (
            true,
            "Only you so far. What you write is kept on this device, and shared with the others once they join.".into(),
        );
    }
    if names.is_empty() {
        return (
            false,
            "Offline: no other device of the circle is reachable right now. What you write is kept here and shared when one is.".into(),
        );
    }
    let state = if behind { "catching up" } else { "up to date" };
    (
        true,
        format!("In touch with {}; {state}.", names.join(", ")),
    )
}

/// A whole page.
pub(crate) async fn page(
    app: &Shared,
    ctx: &Ctx,
    circle: Option<CircleId>,
    place: Place,
    title: &str,
    body: Markup,
) -> Markup {
    let circles = app.node.circles().await.unwrap_or_default();
    let status = app.node.status().await.ok();
    let net = status.as_ref().map(net_words);
    // A circle that removed this member says so first, in the core's words.
    let removed = circle.and_then(|c| {
        let s = status.as_ref()?.circles.iter().find(|s| s.id == c)?;
        s.removed.clone()
    });
    let this = circle.and_then(|c| circles.iter().find(|(id, _)| *id == c));
    let heading = this.map(|(_, n)| n.as_str()).unwrap_or("Roundtable");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="rt-run" content=(app.access.run());
                title { (title) " · " (heading) }
                link rel="stylesheet" href="/assets/app.css";
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                script src="/assets/app.js" defer {}
            }
            // A removed member's pages offer no form to write (the core
            // refuses their writes anyway, in the same words).
            body.removed-member[removed.is_some()] data-circle=[circle.map(|c| c.to_string())] {
                a.skip href="#main" { "Skip to the page" }
                header.top {
                    div.bar {
                        a.brand href="/" { img src="/assets/icon.svg" alt="" width="28" height="28"; span { "Roundtable" } }
                        @if circles.len() > 1 {
                            nav.circles aria-label="Your circles" {
                                @for (id, name) in &circles {
                                    a href={ "/c/" (id) } aria-current=[(Some(*id) == circle).then_some("page")] { (name) }
                                }
                            }
                        }
                    }
                    @if let Some((id, name)) = this {
                        p.circle-name { (name) }
                        nav.places aria-label="Places in the circle" {
                            @for (p, path, label) in PLACES {
                                a href={ "/c/" (id) (path) } aria-current=[(p == place).then_some("page")] { (label) }
                            }
                            a href="/status" aria-current=[(place == Place::Status).then_some("page")] { "Status" }
                        }
                    }
                    @match &net {
                        _ if removed.is_some() => {}
                        Some((online, words)) => {
                            p #net .net.(if *online { "online" } else { "offline" }) role="status" aria-live="polite" { (words) }
                        }
                        None => {
                            p #net .net.offline role="status" aria-live="polite" { "Your node is not answering. Is Roundtable still running?" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    @if let Some(notice) = &removed {
                        p.removed role="status" { (notice) }
                    }
                    @if let Some(s) = &ctx.said.0 {
                        p.saved role="status" { (s) }
                    }
                    (body)
                }
                footer {
                    p { "Your circle lives on your devices and your friends' devices; there is no server." }
                    @if !circles.is_empty() { p { a href="/welcome" { "Start or join another circle" } } }
                }
            }
        }
    }
}

/// A small page that needs nothing else: refusals and failures.
pub(crate) fn bare(title: &str, words: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href="/assets/app.css";
            }
            body {
                main #main {
                    h1 { (title) }
                    p { (words) }
                    p { a href="/" { "Back to your circle" } }
                }
            }
        }
    }
}
