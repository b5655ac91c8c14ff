//! The local control API: JSON lines over a Unix socket in the home.
//!
//! The socket is `HOME/control.sock`, readable and writable by its owner
//! only. A client writes one request line, an [`api::RequestLine`]
//! (`{"v": 1, "req": ...}`), and reads one answer line, an
//! [`api::AnswerLine`] (`{"ok": answer}` or `{"error": {"message",
//! "kind"}}`); an `events` request instead streams one
//! [`Event`](crate::Event) per line until the client hangs up. Both are
//! the serde forms of the node's one API ([`crate::api`]), served by
//! [`NodeHandle::call`]; `docs/PROTOCOL.md` shows every line. The CLI uses
//! [`ControlClient`]; anything that can open a Unix socket can do the same.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use roundtable_core::{CircleId, EntityId, InviteKind, Op, Timestamp};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::{UnixListener, UnixStream as TokioUnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{Instrument, debug};

use crate::api::{
    Answer, AnswerLine, CircleSummary, ControlError, ErrorKind, Request, RequestLine, VERSION,
};
use crate::{Event, NodeHandle, Status};

/// The socket's file name in the home.
pub const SOCKET: &str = "control.sock";

/// The longest request line the node reads (a request carries at most a
/// few texts within the circle's limits).
pub const MAX_REQUEST: usize = 1024 * 1024;

/// Where a home's control socket is.
pub fn socket_path(home: &Path) -> PathBuf {
    home.join(SOCKET)
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
    let request = match read_request(&line) {
        Ok(r) => r,
        Err(e) => {
            say(&mut write, Err(e)).await;
            return;
        }
    };
    if let Request::Events = request {
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
    let answer = node.call(request).await.map_err(ControlError::from);
    say(&mut write, answer).await;
}

/// What a request line asks, or why it is refused: too long, not a line
/// of this version, not a request.
fn read_request(line: &[u8]) -> Result<Request, ControlError> {
    if line.len() > MAX_REQUEST {
        return Err(ControlError::new(
            ErrorKind::BadInput,
            format!("the request is longer than the {MAX_REQUEST} bytes a request may be"),
        ));
    }
    let not_understood = |e: serde_json::Error| {
        ControlError::new(
            ErrorKind::BadInput,
            format!("the node did not understand the request ({e})"),
        )
    };
    /// The version a line names, read before anything else in it.
    #[derive(Deserialize)]
    struct Versioned {
        v: Option<u32>,
    }
    let Versioned { v } = serde_json::from_slice(line).map_err(not_understood)?;
    match v {
        Some(VERSION) => {}
        Some(v) => {
            return Err(ControlError::new(
                ErrorKind::Version,
                format!(
                    "the request speaks version {v} of the control socket and this node version {VERSION}: use the roundtable of the same release as the running node"
                ),
            ));
        }
        None => {
            return Err(ControlError::new(
                ErrorKind::Version,
                format!(
                    "the request names no version (\"v\") and this node speaks version {VERSION} of the control socket"
                ),
            ));
        }
    }
    serde_json::from_slice(line).map_err(not_understood)
}

/// Writes one answer line.
async fn say(write: &mut (impl AsyncWriteExt + Unpin), answer: Result<Answer, ControlError>) {
    let line = serde_json::to_string(&AnswerLine::from(answer)).unwrap_or_default();
    let _ = write.write_all(format!("{line}\n").as_bytes()).await;
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

    /// Sends one request and returns the node's answer.
    pub fn call(&self, request: &Request) -> Result<Answer, ControlError> {
        let broken = |e: std::io::Error| {
            ControlError::new(
                ErrorKind::Closed,
                format!(
                    "lost contact with the running node ({e}); is `roundtable up` still running?"
                ),
            )
        };
        let mut stream = UnixStream::connect(&self.path).map_err(broken)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .map_err(broken)?;
        let line = serde_json::to_string(&RequestLine::new(request.clone())).unwrap_or_default();
        stream
            .write_all(format!("{line}\n").as_bytes())
            .map_err(broken)?;
        let mut response = String::new();
        BufReader::new(stream)
            .read_line(&mut response)
            .map_err(broken)?;
        let line: AnswerLine = serde_json::from_str(&response).map_err(|e| {
            ControlError::new(
                ErrorKind::Failed,
                format!("the node's answer did not read ({e})"),
            )
        })?;
        line.into()
    }

    /// Asks, and takes the answer `pick` expects.
    fn ask<T>(
        &self,
        request: Request,
        pick: impl FnOnce(Answer) -> Option<T>,
    ) -> Result<T, ControlError> {
        let answer = self.call(&request)?;
        let name = answer.name();
        pick(answer).ok_or_else(|| {
            ControlError::new(
                ErrorKind::Failed,
                format!("the node answered with {name}, not what was asked for"),
            )
        })
    }

    /// The circles served.
    pub fn circles(&self) -> Result<Vec<CircleSummary>, ControlError> {
        self.ask(Request::Circles, |a| match a {
            Answer::Circles(c) => Some(c),
            _ => None,
        })
    }

    /// A circle's whole document, saved.
    pub fn doc(&self, circle: CircleId) -> Result<Vec<u8>, ControlError> {
        self.ask(Request::Doc { circle }, |a| match a {
            Answer::Doc(d) => Some(d),
            _ => None,
        })
    }

    /// Performs an edit; returns once it is durable.
    pub fn perform(
        &self,
        circle: CircleId,
        op: Op,
        now: Timestamp,
    ) -> Result<Option<EntityId>, ControlError> {
        self.ask(Request::Perform { circle, op, now }, |a| match a {
            Answer::Performed(id) => Some(id),
            _ => None,
        })
    }

    /// Starts a new circle.
    pub fn create(
        &self,
        name: &str,
        about: &str,
        display_name: &str,
        now: Timestamp,
    ) -> Result<CircleId, ControlError> {
        let request = Request::Create {
            name: name.to_owned(),
            about: about.to_owned(),
            display_name: display_name.to_owned(),
            now,
        };
        self.ask(request, |a| match a {
            Answer::Created(id) => Some(id),
            _ => None,
        })
    }

    /// Makes an invite; returns its ticket's line.
    pub fn invite(
        &self,
        circle: CircleId,
        kind: InviteKind,
        expires_at: Timestamp,
        uses: u32,
        now: Timestamp,
    ) -> Result<String, ControlError> {
        let request = Request::Invite {
            circle,
            kind,
            expires_at,
            uses,
            label: String::new(),
            now,
        };
        self.ask(request, |a| match a {
            Answer::Invited(ticket) => Some(ticket),
            _ => None,
        })
    }

    /// Redeems a ticket; returns the circles served now.
    pub fn join(&self, ticket: &str, name: Option<&str>) -> Result<Vec<CircleId>, ControlError> {
        let request = Request::Join {
            ticket: ticket.to_owned(),
            name: name.map(str::to_owned),
        };
        self.ask(request, |a| match a {
            Answer::Joined(ids) => Some(ids),
            _ => None,
        })
    }

    /// How the node stands.
    pub fn status(&self) -> Result<Status, ControlError> {
        self.ask(Request::Status, |a| match a {
            Answer::Status(s) => Some(s),
            _ => None,
        })
    }

    /// A fresh one-time login link for the web app.
    pub fn web_link(&self, sign_out: bool) -> Result<String, ControlError> {
        self.ask(Request::WebLink { sign_out }, |a| match a {
            Answer::WebLink(link) => Some(link),
            _ => None,
        })
    }

    /// Notes that this device's person looked at a circle at `now`.
    pub fn seen(&self, circle: CircleId, now: Timestamp) -> Result<(), ControlError> {
        self.ask(Request::Seen { circle, now }, |a| match a {
            Answer::Done => Some(()),
            _ => None,
        })
    }

    /// Follows the node's events, calling `f` for each until it returns
    /// false or the node stops. A line that is no event this client knows
    /// (one a newer node added) is passed over.
    pub fn follow(&self, mut f: impl FnMut(&Event) -> bool) -> Result<(), ControlError> {
        let broken = |e: std::io::Error| {
            ControlError::new(
                ErrorKind::Closed,
                format!("lost contact with the running node ({e})"),
            )
        };
        let mut stream = UnixStream::connect(&self.path).map_err(broken)?;
        let line = serde_json::to_string(&RequestLine::new(Request::Events)).unwrap_or_default();
        stream
            .write_all(format!("{line}\n").as_bytes())
            .map_err(broken)?;
        for line in BufReader::new(stream).lines() {
            let line = line.map_err(broken)?;
            let Ok(event) = serde_json::from_str::<Event>(&line) else {
                continue;
            };
            if !f(&event) {
                break;
            }
        }
        Ok(())
    }
}
