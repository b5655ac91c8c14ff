//! Keeping open pages live: the node's events as server-sent events.
//!
//! - `hello` (data: this run's id), first: the page checks it is the id it
//!   carries, so a tab that reconnects to anything else (another run, or a
//!   program that took the port while the node restarted) sends nothing.
//! - `changed` (data: the circle's id): something in it changed, here or
//!   on another device; the page fetches itself again and swaps the parts
//!   marked `data-live`. A stream tells of changes at once, then at most
//!   once every [`CHANGED_EVERY`]: changes that come closer together (a
//!   sync that brings many, a device writing fast) are told once each
//!   circle, at the end of the wait, so a page is fetched a few times a
//!   second at most, not once per change.
//! - `net` (data: JSON `{"online": bool, "words": "..."}`): whether this
//!   device is in touch with the others and up to date, in words.
//!
//! The stream ends when the app stops, so a browser never holds the node
//! open.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event as Sse, KeepAlive, Sse as Stream};
use roundtable_node::Event;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use crate::Shared;
use crate::pages::layout::net_words;

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
