//! Roundtable's local web app: the circle in a browser, for people who
//! never open a terminal.
//!
//! `roundtable up` starts a [`WebApp`] next to the node. It listens on a
//! loopback address only and lets in only the person at this machine: the
//! link `up` prints carries a secret (kept owner-only in the home) that
//! becomes an HttpOnly, SameSite=Strict cookie; every request must carry it,
//! name this app's own host (no DNS rebinding), and come from its own origin
//! (no other site, no CORS); every form carries a token derived from the
//! secret as well ([`access`]).
//!
//! Pages are rendered on the server from what the core says — names, the
//! quiet view, invite states, the consent rule in words — so the browser
//! re-implements no rule and tells the same truth as the CLI. They read the
//! circle through the node, never by opening the store. Edits go to the
//! node and are shown as saved only once it answered that they are durable.
//! A page stays live through server-sent events fed by the node's events
//! ([`live`]). Everything (styles, script, icons) is compiled into the
//! binary: the app works with no internet.

use std::net::SocketAddr;
use std::sync::Arc;

use roundtable_core::{DeviceId, MemberId};
use roundtable_node::NodeHandle;
use roundtable_store::Home;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod access;
mod app;
pub mod fuzzing;
mod live;
mod pages;

use app::Inner;

/// How many ports after the one asked for are tried when it is taken.
pub const PORTS_TRIED: u16 = 20;

/// Why the web app could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// Only this machine may reach the app.
    #[error(
        "the web app is only for this machine: give a loopback address such as 127.0.0.1:7777, not {0}"
    )]
    NotLoopback(SocketAddr),
    /// No port was free.
    #[error("could not listen on {addr} or the {PORTS_TRIED} ports after it: {source}")]
    Bind {
        /// Where it tried first.
        addr: SocketAddr,
        /// Why the last try failed.
        source: std::io::Error,
    },
    /// The home's secret could not be read or written.
    #[error(transparent)]
    Store(#[from] roundtable_store::StoreError),
    /// The node stopped.
    #[error(transparent)]
    Node(Box<roundtable_node::NodeError>),
}

/// The running web app.
#[derive(Debug)]
pub struct WebApp {
    addr: SocketAddr,
    asked: SocketAddr,
    home: Home,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl WebApp {
    /// Serves the app for `node` on `addr` (a loopback address; port 0
    /// picks any). When the port is taken, the next free one of the
    /// [`PORTS_TRIED`] after it is used; [`WebApp::moved`] says so.
    pub async fn start(node: NodeHandle, home: Home, addr: SocketAddr) -> Result<Self, WebError> {
        if !addr.ip().is_loopback() {
            return Err(WebError::NotLoopback(addr));
        }
        let listener = bind(addr).await?;
        let local = listener.local_addr().map_err(|source| WebError::Bind {
            addr,
            source: std::io::Error::other(source),
        })?;
        access::ensure_token(&home)?;
        let (device, member): (DeviceId, MemberId) = node
            .identity()
            .await
            .map_err(|e| WebError::Node(Box::new(e)))?;
        let (stop, mut stopped) = watch::channel(false);
        let app = Inner::shared(node, home.clone(), local, device, member, stopped.clone());
        let router = app.router();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::warn!("the web app stopped: {e}");
            }
        });
        Ok(Self {
            addr: local,
            asked: addr,
            home,
            stop,
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port asked for, when it was taken and another one is used.
    pub fn moved(&self) -> Option<u16> {
        (self.asked.port() != 0 && self.asked.port() != self.addr.port())
            .then_some(self.asked.port())
    }

    /// The link to open: it carries the secret that lets this browser in.
    pub fn login_url(&self) -> Result<String, roundtable_store::StoreError> {
        Ok(access::login_url(
            self.addr,
            &access::ensure_token(&self.home)?,
        ))
    }

    /// Stops serving: open pages are told to stop, requests under way end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.task).await;
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, WebError> {
    let ports = if addr.port() == 0 { 1 } else { PORTS_TRIED + 1 };
    let mut last = None;
    for i in 0..ports {
        let Some(port) = addr.port().checked_add(i) else {
            break;
        };
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(source) => return Err(WebError::Bind { addr, source }),
        }
    }
    Err(WebError::Bind {
        addr,
        source: last.unwrap_or_else(|| std::io::Error::other("no port left to try")),
    })
}

/// Shared by every request.
pub(crate) type Shared = Arc<app::Inner>;
