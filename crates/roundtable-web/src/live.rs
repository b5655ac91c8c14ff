//! Keeping open pages live: the node's events as server-sent events.
//!
//! - `hello` (data: this run's id), first: the page checks it is the id it
//!   carries, so a tab that reconnects to anything else (another run, or a
//!   program that took the port while the node restarted) sends nothing.
//! - `changed` (data: the circle's id): something in it changed, here or
//!   on another device; the page reads itself again and swaps the parts
//!   marked `data-live` that changed (see [`parts_only`]: only those come
//!   back, not the page). A stream tells of changes at once, then at most
//!   once every [`CHANGED_EVERY`]: changes that come closer together (a
//!   sync that brings many, a device writing fast) are told once each
//!   circle, at the end of the wait, so a page is fetched a few times a
//!   second at most, not once per change.
//! - `net` (data: JSON `{"online": bool, "words": "..."}`): whether this
//!   device is in touch with the others and up to date, in words.
//!
//! The stream ends when the app stops, so a browser never holds the node
//! open.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::sse::{Event as Sse, KeepAlive, Sse as Stream};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use roundtable_node::Event;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use crate::Shared;
use crate::pages::layout::net_words;

/// The header `app.js` marks its live reads of a page with.
pub(crate) const LIVE: &str = "x-live";

/// The header a live read says which parts it holds in: `id=digest`,
/// separated by spaces, the digests the parts carried when served.
pub(crate) const HAVE: &str = "x-live-have";

/// At most this many parts of a live read's [`HAVE`] are looked at.
pub(crate) const MOST_PARTS: usize = 256;

/// A live part as served: its id and what goes inside it.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Part {
    pub(crate) id: String,
    pub(crate) html: String,
}

tokio::task_local! {
    /// The live parts a page rendered, gathered while a live read of it
    /// renders ([`parts_only`]).
    static PARTS: Arc<Mutex<Vec<(Part, String)>>>;
}

/// What goes inside the element `#id data-live` of a page: `inner`, and
/// its digest in a `template` (inert, never shown), which the page sends
/// back with its live reads so only parts that changed come back.
pub(crate) fn part(id: &str, inner: Markup) -> Markup {
    let digest = blake3::hash(inner.0.as_bytes()).to_hex()[..16].to_owned();
    let out = html! { (inner) template data-v=(digest) {} };
    let _ = PARTS.try_with(|parts| {
        if let Ok(mut parts) = parts.lock() {
            let html = out.0.clone();
            parts.push((
                Part {
                    id: id.to_owned(),
                    html,
                },
                digest,
            ));
        }
    });
    out
}

/// A page's live read (a GET with [`LIVE`]) is answered with the parts
/// that changed, as JSON (`{"parts": [{"id", "html"}]}`), instead of the
/// whole page: the page says which it holds ([`HAVE`]). A page without
/// live parts, and anything but a page, is answered as it is.
pub(crate) async fn parts_only(req: Request, next: Next) -> Response {
    if req.method() != Method::GET || !req.headers().contains_key(LIVE) {
        return next.run(req).await;
    }
    let have = holding(
        req.headers()
            .get(HAVE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let gathered = Arc::new(Mutex::new(Vec::new()));
    let page = PARTS.scope(gathered.clone(), next.run(req)).await;
    let parts = gathered.lock().map(|mut p| std::mem::take(&mut *p));
    let parts = match parts {
        Ok(parts) if page.status().is_success() && !parts.is_empty() => parts,
        _ => return page,
    };
    let changed = changed_parts(parts, &have);
    let json = serde_json::json!({ "parts": changed }).to_string();
    let mut out = ([(header::CONTENT_TYPE, "application/json")], json).into_response();
    for (k, v) in page.headers() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().append(k.clone(), v.clone());
        }
    }
    out
}

/// What a live read says it holds ([`HAVE`]): `id=digest` pairs, at most
/// [`MOST_PARTS`] of them; anything else in it is passed over.
pub(crate) fn holding(have: &str) -> HashMap<String, String> {
    have.split_ascii_whitespace()
        .take(MOST_PARTS)
        .filter_map(|p| p.split_once('='))
        .map(|(id, v)| (id.to_owned(), v.to_owned()))
        .collect()
}

/// The parts `render` renders, as a live read gathers them.
pub(crate) fn rendered(render: impl FnOnce() -> Markup) -> Vec<(Part, String)> {
    let gathered = Arc::new(Mutex::new(Vec::new()));
    PARTS.sync_scope(gathered.clone(), render);
    std::mem::take(&mut *gathered.lock().unwrap_or_else(PoisonError::into_inner))
}

/// A feed (an outer part) with an item (a part inside it) for each of
/// `items`, for tests and the fuzz target.
pub(crate) fn sample_feed(items: &[&str]) -> Markup {
    part(
        "life",
        html! { ol { @for (k, i) in items.iter().enumerate() {
            @let id = format!("item-{k}");
            li id=(id) data-live { (part(&id, html! { (i) })) }
        } } },
    )
}

/// What stands in a part sent for a part inside it that the page holds
/// already: `app.js` puts the one it holds back in its place.
const KEEP: &str = "<template data-keep></template>";

/// The parts of a page that differ from what it holds (`have`: id →
/// digest), each sent once: a part inside another that is sent goes with
/// it, and inside a part sent, the parts the page holds as they are (a
/// feed's items, say) are sent as [`KEEP`].
pub(crate) fn changed_parts(
    parts: Vec<(Part, String)>,
    have: &HashMap<String, String>,
) -> Vec<Part> {
    let (mut kept, changed): (Vec<_>, Vec<_>) = parts
        .into_iter()
        .partition(|(p, digest)| have.get(&p.id) == Some(digest));
    // The largest first, so a kept part inside a kept part goes with it.
    kept.sort_by_key(|(p, _)| std::cmp::Reverse(p.html.len()));
    let inside = |p: &Part, q: &Part| q.html.len() > p.html.len() && q.html.contains(&p.html);
    let top: Vec<bool> = changed
        .iter()
        .map(|(p, _)| !changed.iter().any(|(q, _)| inside(p, q)))
        .collect();
    changed
        .into_iter()
        .zip(top)
        .filter(|(_, top)| *top)
        .map(|((mut p, _), _)| {
            for (k, _) in &kept {
                if let Some(at) = p.html.find(&k.html) {
                    p.html.replace_range(at..at + k.html.len(), KEEP);
                }
            }
            p
        })
        .collect()
}

/// The digests a page holds once it holds part `id` with content `html`
/// (as a live read sends it): `(id, digest)` for the part and for every
/// part inside it, as `app.js` would read them off the page. A part opens
/// with `id="ID" data-live>` and its content ends with its digest's
/// `template`; parts nest, so a stack pairs them, and a part sent as
/// [`KEEP`] keeps the digest held before. Neither mark can come from what
/// a person wrote: `<` and `"` are escaped in it. For programs that read
/// the app as a page does (tests, benchmarks).
pub fn parts_held(id: &str, html: &str) -> Option<Vec<(String, String)>> {
    const OPEN: &str = "\" data-live>";
    const DIGEST: &str = "<template data-v=\"";
    let mut open = vec![id.to_owned()];
    let mut held = Vec::new();
    let mut at = 0;
    loop {
        let next_open = html[at..].find(OPEN).map(|i| at + i);
        let next_digest = html[at..].find(DIGEST).map(|i| at + i);
        match (next_open, next_digest) {
            (Some(o), d) if d.is_none_or(|d| o < d) => {
                let start = html[..o].rfind("id=\"")? + 4;
                at = o + OPEN.len();
                if !html[at..].starts_with(KEEP) {
                    open.push(html[start..o].to_owned());
                }
            }
            (_, Some(d)) => {
                at = d + DIGEST.len();
                let (v, _) = html[at..].split_once('"')?;
                held.push((open.pop()?, v.to_owned()));
            }
            _ => return open.is_empty().then_some(held),
        }
    }
}

/// The shortest time between two `changed` events of a stream.
pub(crate) const CHANGED_EVERY: Duration = Duration::from_millis(250);

/// When to tell a page that circles changed: the first change at once,
/// then those that come within [`CHANGED_EVERY`] together, at its end.
#[derive(Debug, Default)]
pub(crate) struct Coalesce {
    /// Circles changed and not yet told ("*": any).
    pending: BTreeSet<String>,
    /// No `changed` before this.
    quiet_until: Option<Instant>,
}

impl Coalesce {
    /// A circle changed at `now`: the circles to tell of now, if any.
    pub(crate) fn changed(&mut self, circle: String, now: Instant) -> Vec<String> {
        self.pending.insert(circle);
        if self.quiet_until.is_some_and(|t| now < t) {
            return Vec::new();
        }
        self.flush(now)
    }

    /// When the held changes are due, if any are held.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.quiet_until.filter(|_| !self.pending.is_empty())
    }

    /// The circles to tell of at `now`, which starts a new wait.
    pub(crate) fn flush(&mut self, now: Instant) -> Vec<String> {
        self.quiet_until = Some(now + CHANGED_EVERY);
        let all = std::mem::take(&mut self.pending);
        if all.contains("*") {
            return vec!["*".to_owned()];
        }
        all.into_iter().collect()
    }
}

fn changed(circles: Vec<String>) -> Vec<Sse> {
    circles
        .into_iter()
        .map(|c| Sse::default().event("changed").data(c))
        .collect()
}

async fn net(app: &Shared) -> Option<Sse> {
    let status = app.node.status().await.ok()?;
    let (online, words) = net_words(&status);
    let data = serde_json::json!({ "online": online, "words": words });
    Some(Sse::default().event("net").data(data.to_string()))
}

pub(crate) async fn events(State(app): State<Shared>) -> impl IntoResponse {
    let (tx, rx) = mpsc::channel::<Result<Sse, Infallible>>(16);
    let mut node_events = app.node.subscribe();
    let mut stopping = app.stopping.clone();
    tokio::spawn(async move {
        let hello = Sse::default().event("hello").data(app.access.run());
        if tx.send(Ok(hello)).await.is_err() {
            return;
        }
        if let Some(e) = net(&app).await
            && tx.send(Ok(e)).await.is_err()
        {
            return;
        }
        let mut coalesce = Coalesce::default();
        loop {
            let due = coalesce.due();
            let event = tokio::select! {
                _ = stopping.wait_for(|s| *s) => return,
                _ = tx.closed() => return,
                () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    None
                }
                e = node_events.recv() => Some(e),
            };
            let out = match event {
                None => changed(coalesce.flush(Instant::now())),
                Some(Ok(Event::Changed { circle })) => {
                    changed(coalesce.changed(circle.to_string(), Instant::now()))
                }
                Some(Ok(Event::PeerUp { .. } | Event::PeerDown { .. } | Event::Synced { .. })) => {
                    net(&app).await.into_iter().collect()
                }
                Some(Ok(_)) => Vec::new(),
                // Missed some: say everything may have changed.
                Some(Err(broadcast::error::RecvError::Lagged(_))) => {
                    changed(coalesce.changed("*".to_owned(), Instant::now()))
                }
                Some(Err(broadcast::error::RecvError::Closed)) => return,
            };
            for e in out {
                if tx.send(Ok(e)).await.is_err() {
                    return;
                }
            }
        }
    });
    Stream::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A feed (an outer part) with two items (parts inside it), rendered
    /// as a page renders them: the parts in the order they render.
    fn feed(items: &[&str]) -> Vec<(Part, String)> {
        rendered(|| sample_feed(items))
    }

    fn holding(parts: &[(Part, String)]) -> HashMap<String, String> {
        parts
            .iter()
            .map(|(p, d)| (p.id.clone(), d.clone()))
            .collect()
    }

    #[test]
    fn only_what_changed_is_sent_and_what_the_page_holds_inside_it_is_kept() {
        let before = feed(&["soup", "bread"]);
        let have = holding(&before);
        // Holding nothing: the feed, once, with its items inside.
        let all = changed_parts(feed(&["soup", "bread"]), &HashMap::new());
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].id, "life");
        assert!(all[0].html.contains("soup") && all[0].html.contains("bread"));
        // Holding all of it as it is: nothing.
        assert!(changed_parts(feed(&["soup", "bread"]), &have).is_empty());
        // One item changed: the feed, with the unchanged item kept.
        let sent = changed_parts(feed(&["soup", "cake"]), &have);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(sent[0].html.contains("cake"), "{}", sent[0].html);
        assert!(!sent[0].html.contains("soup"), "{}", sent[0].html);
        assert!(
            sent[0]
                .html
                .contains(&format!("id=\"item-0\" data-live>{KEEP}</li>")),
            "{}",
            sent[0].html
        );
        // What a page reads off these: every part's digest, but a kept
        // part's, which it holds already.
        let mut read: Vec<_> = parts_held("life", &all[0].html).expect("marks pair up");
        read.sort();
        let mut served: Vec<_> = have.clone().into_iter().collect();
        served.sort();
        assert_eq!(read, served);
        let after: HashMap<_, _> = parts_held("life", &sent[0].html)
            .expect("marks pair up")
            .into_iter()
            .collect();
        assert_eq!(after.len(), 2, "{after:?}");
        assert!(!after.contains_key("item-0"));
        assert_ne!(after["item-1"], have["item-1"]);
        assert_eq!(parts_held("life", "<li id=\"x\" data-live>"), None);
        // A part held with another digest is sent, by itself.
        let mut wrong = have.clone();
        wrong.insert("item-0".into(), "0000".into());
        let sent = changed_parts(feed(&["soup", "bread"]), &wrong);
        let ids: Vec<&str> = sent.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["item-0"]);
        // Outside a live read nothing is gathered, and the part is the same.
        let page = part("life", html! { "x" });
        assert!(page.0.starts_with("x<template data-v=\""), "{}", page.0);
    }

    #[test]
    fn changes_close_together_are_told_once_at_the_end_of_the_wait() {
        let t0 = Instant::now();
        let mut c = Coalesce::default();
        assert_eq!(c.changed("a".into(), t0), ["a"], "the first at once");
        assert_eq!(c.due(), None);
        // A flood of changes within the wait: none told now.
        for k in 0..300u32 {
            let at = t0 + Duration::from_micros(u64::from(k) * 800);
            assert!(
                c.changed(if k % 2 == 0 { "a" } else { "b" }.into(), at)
                    .is_empty()
            );
        }
        assert_eq!(c.due(), Some(t0 + CHANGED_EVERY));
        assert_eq!(c.flush(t0 + CHANGED_EVERY), ["a", "b"]);
        assert_eq!(c.due(), None);
        // Within the next wait again: held; "*" covers every circle.
        let t1 = t0 + CHANGED_EVERY + Duration::from_millis(10);
        assert!(c.changed("a".into(), t1).is_empty());
        assert!(c.changed("*".into(), t1).is_empty());
        assert_eq!(c.flush(t0 + CHANGED_EVERY * 2), ["*"]);
        // After a quiet wait, at once again.
        assert_eq!(c.changed("b".into(), t0 + CHANGED_EVERY * 4), ["b"]);
    }
}
