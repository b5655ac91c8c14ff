//! The local control API: JSON lines over a Unix socket in the home.
//!
//! The socket is `HOME/control.sock`, readable and writable by its owner
//! only. A client writes one request line and reads one response line
//! (`{"ok": ...}` or `{"error": "...", "bad_input": true|false}`); an
//! `events` request instead streams one [`Event`](crate::Event) per line
//! until the client hangs up. The CLI uses [`ControlClient`]; anything that
//! can open a Unix socket can do the same.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use data_encoding::BASE64;
use roundtable_core::{CircleId, InviteKind, Op, Timestamp};
use roundtable_net::CircleTicket;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::{UnixListener, UnixStream as TokioUnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{Instrument, debug};

use crate::{NodeError, NodeHandle};

/// The socket's file name in the home.
pub const SOCKET: &str = "control.sock";

/// The longest request line the node reads (a request carries at most a
/// few texts within the circle's limits).
pub const MAX_REQUEST: usize = 1024 * 1024;

/// Where a home's control socket is.
pub fn socket_path(home: &Path) -> PathBuf {
    home.join(SOCKET)
}

/// One request to the node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "req", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ControlRequest {
    /// The circles served: `[{"id", "name"}]`.
    Circles,
    /// A circle's document: `{"doc": base64}`.
    Doc {
        /// Which circle.
        circle: CircleId,
    },
    /// An edit as this device's member: `{"id": entity id or null}`.
    Perform {
        /// Which circle.
        circle: CircleId,
        /// The edit.
        op: Op,
        /// When.
        now: Timestamp,
    },
    /// A new circle: `{"circle": id}`.
    Create {
        /// Its name.
        name: String,
        /// What it is about.
        about: String,
        /// What it calls its founder.
        display_name: String,
        /// When.
        now: Timestamp,
    },
    /// An invite: `{"ticket": line}`.
    Invite {
        /// Which circle.
        circle: CircleId,
        /// For a member or a device.
        kind: InviteKind,
        /// When it stops working.
        expires_at: Timestamp,
        /// How many times it can be used.
        uses: u32,
        /// When.
        now: Timestamp,
    },
    /// Redeem a ticket: `{"circles": [id]}`.
    Join {
        /// The ticket line.
        ticket: String,
        /// The name to join as (new members).
        name: Option<String>,
    },
    /// [`Status`](crate::Status).
    Status,
    /// `{"device", "member"}`.
    Identity,
    /// A stream of events, one per line.
    Events,
    /// A fresh one-time login link for the web app: `{"web": link}`. With
    /// `sign_out`, every browser signed in so far is signed out first.
    WebLink {
        /// Sign every browser out first.
        #[serde(default)]
        sign_out: bool,
    },
    /// This device's person looked at a circle now: `{"ok": true}`.
    Seen {
        /// Which circle.
        circle: CircleId,
        /// When.
        now: Timestamp,
    },
}

/// An error from the node, as the client sees it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    /// What went wrong, in words for the person.
    pub message: String,
    /// Whether the request itself was at fault (exit code 2).
    pub bad_input: bool,
}

fn is_bad_input(e: &NodeError) -> bool {
    match e {
        NodeError::Core(c) | NodeError::Store(roundtable_store::StoreError::Refused(c)) => {
            c.is_bad_input()
        }
        NodeError::UnknownCircle(_) | NodeError::Refused(_) => true,
        _ => false,
    }
}

/// The control socket while it is served. Dropping it stops taking
/// connections and tells every client still connected to stop: a follower
/// of events sees the stream end, a request under way is answered.
pub(crate) struct ControlServer {
    _accept: AbortOnDropHandle<()>,
    stop: CancellationToken,
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts serving the control socket of `home`. Any socket file already
/// there is stale (this node holds the home's writer lock), so it is replaced.
pub(crate) fn serve(
    home: &Path,
    node: NodeHandle,
    span: &tracing::Span,
) -> std::io::Result<ControlServer> {
    let path = socket_path(home);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let stop = CancellationToken::new();
    let clients = stop.clone();
    let client_span = span.clone();
    let accept = tokio::spawn(
        async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(
                            serve_one(stream, node.clone(), clients.clone())
                                .instrument(client_span.clone()),
                        );
                    }
                    Err(e) => {
                        debug!("control socket: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
        .instrument(span.clone()),
    );
    Ok(ControlServer {
        _accept: AbortOnDropHandle::new(accept),
        stop,
    })
}

async fn serve_one(stream: TokioUnixStream, node: NodeHandle, stop: CancellationToken) {
    let (read, mut write) = stream.into_split();
    // One request line, read no further than the longest request can be.
    let mut line = Vec::new();
    let mut reader = TokioBufReader::new(read).take(MAX_REQUEST as u64 + 1);
    if reader.read_until(b'\n', &mut line).await.is_err() || line.is_empty() {
        return;
    }
    if line.len() > MAX_REQUEST {
        let err = json!({"error": format!("the request is longer than the {MAX_REQUEST} bytes a request may be"), "bad_input": true});
        let _ = write.write_all(format!("{err}\n").as_bytes()).await;
        return;
    }
    let request: ControlRequest = match serde_json::from_slice(&line) {
        Ok(r) => r,
        Err(e) => {
            let err = json!({"error": format!("the node did not understand the request ({e})"), "bad_input": true});
            let _ = write.write_all(format!("{err}\n").as_bytes()).await;
            return;
        }
    };
    if let ControlRequest::Events = request {
        let mut events = node.subscribe();
        // Until the node stops: then the stream ends.
        while let Some(Ok(ev)) = stop.run_until_cancelled(events.recv()).await {
            let line = serde_json::to_string(&ev).unwrap_or_default();
            if write
                .write_all(format!("{line}\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
        return;
    }
    let response = match answer(&node, request).await {
        Ok(v) => json!({ "ok": v }),
        Err(e) => json!({ "error": e.to_string(), "bad_input": is_bad_input(&e) }),
    };
    let _ = write.write_all(format!("{response}\n").as_bytes()).await;
}

async fn answer(node: &NodeHandle, request: ControlRequest) -> Result<Value, NodeError> {
    Ok(match request {
        ControlRequest::Circles => {
            let list: Vec<Value> = node
                .circles()
                .await?
                .into_iter()
                .map(|(id, name)| json!({"id": id, "name": name}))
                .collect();
            Value::Array(list)
        }
        ControlRequest::Doc { circle } => json!({"doc": BASE64.encode(&node.doc(circle).await?)}),
        ControlRequest::Seen { circle, now } => {
            node.mark_seen(circle, now).await?;
            json!({"ok": true})
        }
        ControlRequest::Perform { circle, op, now } => {
            json!({"id": node.perform(circle, op, now).await?})
        }
        ControlRequest::Create {
            name,
            about,
            display_name,
            now,
        } => json!({"circle": node.create_circle(&name, &about, &display_name, now).await?}),
        ControlRequest::Invite {
            circle,
            kind,
            expires_at,
            uses,
            now,
        } => {
            let ticket = node.invite(circle, kind, expires_at, uses, now).await?;
            json!({"ticket": ticket.to_line()})
        }
        ControlRequest::Join { ticket, name } => {
            let ticket =
                CircleTicket::parse(&ticket).map_err(|e| NodeError::Refused(e.to_string()))?;
            json!({"circles": node.join(&ticket, name.as_deref()).await?})
        }
        ControlRequest::Status => serde_json::to_value(node.status().await?).unwrap_or_default(),
        ControlRequest::Identity => {
            let (device, member) = node.identity().await?;
            json!({"device": device, "member": member})
        }
        ControlRequest::Events => Value::Null,
        ControlRequest::WebLink { sign_out } => match node.web_login_link(sign_out) {
            Some(link) => json!({ "web": link }),
            None => {
                return Err(NodeError::Refused(
                    "this node serves no web app (it was started with --no-web); restart it with `roundtable up` to use your circles in a browser".into(),
                ));
            }
        },
    })
}

/// A connection to a running node's control socket, for the CLI.
#[derive(Debug)]
pub struct ControlClient {
    path: PathBuf,
}

impl ControlClient {
    /// The node running on `home`, if one answers.
    pub fn connect(home: &Path) -> Option<Self> {
        let path = socket_path(home);
        UnixStream::connect(&path).ok()?;
        Some(Self { path })
    }

    /// Sends one request and returns the `ok` value.
    pub fn call(&self, request: &ControlRequest) -> Result<Value, ControlError> {
        let broken = |e: std::io::Error| ControlError {
            message: format!(
                "lost contact with the running node ({e}); is `roundtable up` still running?"
            ),
            bad_input: false,
        };
        let mut stream = UnixStream::connect(&self.path).map_err(broken)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .map_err(broken)?;
        let line = serde_json::to_string(request).unwrap_or_default();
        stream
            .write_all(format!("{line}\n").as_bytes())
            .map_err(broken)?;
        let mut response = String::new();
        BufReader::new(stream)
            .read_line(&mut response)
            .map_err(broken)?;
        let value: Value = serde_json::from_str(&response).map_err(|e| ControlError {
            message: format!("the node's answer did not read ({e})"),
            bad_input: false,
        })?;
        if let Some(ok) = value.get("ok") {
            return Ok(ok.clone());
        }
        Err(ControlError {
            message: value["error"]
                .as_str()
                .unwrap_or("the node failed")
                .to_owned(),
            bad_input: value["bad_input"].as_bool().unwrap_or(false),
        })
    }

    /// Follows the node's events, calling `f` for each line until it returns false.
    pub fn follow(&self, mut f: impl FnMut(&Value) -> bool) -> Result<(), ControlError> {
        let broken = |e: std::io::Error| ControlError {
            message: format!("lost contact with the running node ({e})"),
            bad_input: false,
        };
        let mut stream = UnixStream::connect(&self.path).map_err(broken)?;
        let line = serde_json::to_string(&ControlRequest::Events).unwrap_or_default();
        stream
            .write_all(format!("{line}\n").as_bytes())
            .map_err(broken)?;
        for line in BufReader::new(stream).lines() {
            let line = line.map_err(broken)?;
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if !f(&v) {
                break;
            }
        }
        Ok(())
    }
}
