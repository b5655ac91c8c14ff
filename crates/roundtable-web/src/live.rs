//! Keeping open pages live: the node's events as server-sent events.
//!
//! - `hello` (data: this run's id), first: the page checks it is the id it
//!   carries, so a tab that reconnects to anything else (another run, or a
//!   program that took the port while the node restarted) sends nothing.
//! - `changed` (data: the circle's id): something in it changed, here or
//!   on another device; the page fetches itself again and swaps the parts
//!   marked `data-live`.
//! - `net` (data: JSON `{"online": bool, "words": "..."}`): whether this
//!   device is in touch with the others and up to date, in words.
//!
//! The stream ends when the app stops, so a browser never holds the node
//! open.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event as Sse, KeepAlive, Sse as Stream};
use roundtable_node::Event;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::Shared;
use crate::pages::layout::net_words;

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
        loop {
            let event = tokio::select! {
                _ = stopping.wait_for(|s| *s) => return,
                _ = tx.closed() => return,
                e = node_events.recv() => e,
            };
            let out = match event {
                Ok(Event::Changed { circle }) => {
                    Some(Sse::default().event("changed").data(circle.to_string()))
                }
                Ok(Event::PeerUp { .. } | Event::PeerDown { .. } | Event::Synced { .. }) => {
                    net(&app).await
                }
                Ok(_) => None,
                // Missed some: say everything may have changed.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Some(Sse::default().event("changed").data("*"))
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if let Some(e) = out
                && tx.send(Ok(e)).await.is_err()
            {
                return;
            }
        }
    });
    Stream::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
