//! Roundtable's local web app: the circle in a browser, for people who
//! never open a terminal.
//!
//! `roundtable up` starts a [`WebApp`] next to the node. It listens on
//! loopback only, on the port asked for (never another one silently: a
//! port someone else holds is refused, naming who), on both `127.0.0.1` and
//! `::1` so nobody else can answer the browser on the other. It lets in
//! only the person at this machine, through this run of the node: the app
//! answers at a secret host name of this run (`<label>.localhost`), one-time
//! login links made by the running node turn into a host-only, HttpOnly,
//! SameSite=Strict session cookie held in the node's memory; every request
//! must carry it, name the secret host, and come from its own origin (no
//! other site, no CORS); every form carries a token derived from the
//! session as well ([`access`]). It holds at most [`MAX_CONNECTIONS`]
//! connections and gives each [`HEADER_TIME`] to send a request's head.
//!
//! Pages are rendered on the server from what the core says — names, the
//! quiet view, invite states, the consent rule in words — so the browser
//! re-implements no rule and tells the same truth as the CLI. They read the
//! circle through the node, never by opening the store. Edits go to the
//! node and are shown as saved only once it answered that they are durable.
//! A page stays live through server-sent events fed by the node's events
//! ([`live`]). Everything (styles, script, icons) is compiled into the
//! binary: the app works with no internet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use roundtable_node::NodeHandle;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

pub mod access;
mod app;
mod forms;
pub mod fuzzing;
mod live;
mod pages;
mod port;

use access::Access;
use app::Inner;

pub use live::parts_held;
pub use port::Holder;

/// The most connections the app holds at once; more wait in the system's
/// queue until one ends (so a flood of them cannot use up the node's files).
pub const MAX_CONNECTIONS: usize = 64;

/// How long a connection has to send a request's head, and the longest an
/// idle connection is kept between requests.
pub const HEADER_TIME: Duration = Duration::from_secs(10);

/// Why the web app could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// Only this machine may reach the app, at the address browsers give
    /// `*.localhost` names.
    #[error("the web app is only for this machine: give 127.0.0.1:PORT (or [::1]:PORT), not {0}")]
    NotLoopback(SocketAddr),
    /// The port is held by another program.
    #[error(
        "the web app's port {port} is taken by {holder}; Roundtable does not move to another port by itself: choose a free one with --web 127.0.0.1:PORT, or start without the web app with --no-web"
    )]
    Taken {
        /// The port asked for.
        port: u16,
        /// Who holds it, as far as this machine says.
        holder: Holder,
    },
    /// Listening failed for another reason.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The node stopped.
    #[error(transparent)]
    Node(Box<roundtable_node::NodeError>),
}

/// The running web app.
#[derive(Debug)]
pub struct WebApp {
    addr: SocketAddr,
    access: Arc<Access>,
    node: NodeHandle,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl WebApp {
    /// Serves the app for `node` on `addr`: `127.0.0.1` or `::1`, and the
    /// same port of the other one where this machine has it (port 0 picks
    /// a free one). A port another program holds is refused
    /// ([`WebError::Taken`]), never swapped for another.
    pub async fn start(node: NodeHandle, addr: SocketAddr) -> Result<Self, WebError> {
        if addr.ip() != IpAddr::V4(Ipv4Addr::LOCALHOST)
            && addr.ip() != IpAddr::V6(Ipv6Addr::LOCALHOST)
        {
            return Err(WebError::NotLoopback(addr));
        }
        let listeners = bind(addr).await?;
        let local = listeners[0]
            .local_addr()
            .map_err(|source| WebError::Bind { addr, source })?;
        let (device, _) = node
            .identity()
            .await
            .map_err(|e| WebError::Node(Box::new(e)))?;
        let label = node
            .web_host(Access::fresh_label())
            .await
            .map_err(|e| WebError::Node(Box::new(e)))?;
        let access = Arc::new(Access::new(&label, local.port()));
        let (stop, stopped) = watch::channel(false);
        let app = Inner::shared(node.clone(), access.clone(), device, stopped.clone());
        let router = app.router();
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let tasks = listeners
            .into_iter()
            .map(|l| tokio::spawn(serve(l, router.clone(), permits.clone(), stopped.clone())))
            .collect();
        node.set_web_links(Some(access.clone()));
        Ok(Self {
            addr: local,
            access,
            node,
            stop,
            tasks,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `Host` this run answers to: `<secret label>.localhost:PORT`.
    pub fn host(&self) -> &str {
        self.access.host()
    }

    /// A fresh link that lets one browser in, once, within
    /// [`access::LINK_LIFE`]; with `sign_out`, every browser signed in so
    /// far is let out first.
    pub fn login_link(&self, sign_out: bool) -> String {
        self.access.login_link(sign_out)
    }

    /// Stops serving: open pages are told to stop, requests under way end.
    pub async fn stop(self) {
        self.node.set_web_links(None);
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// Takes the loopback port asked for, on both families where this machine
/// has them: a browser may try either for a `*.localhost` name.
async fn bind(addr: SocketAddr) -> Result<Vec<TcpListener>, WebError> {
    // With port 0, the port picked on the first may be taken on the other;
    // then another is picked.
    let tries = if addr.port() == 0 { 8 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let first = listen(addr).await?;
        let port = first
            .local_addr()
            .map_err(|source| WebError::Bind { addr, source })?
            .port();
        let other_ip = match addr.ip() {
            IpAddr::V4(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        match listen(SocketAddr::new(other_ip, port)).await {
            Ok(second) => return Ok(vec![first, second]),
            Err(WebError::Bind { source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::Unsupported
                ) || source.raw_os_error() == Some(97) =>
            {
                // This machine has no such loopback: nobody can listen there.
                tracing::debug!("the web app listens on {addr} only: {source}");
                return Ok(vec![first]);
            }
            Err(e @ WebError::Taken { .. }) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(WebError::Bind {
        addr,
        source: std::io::Error::other("no free port"),
    }))
}

async fn listen(addr: SocketAddr) -> Result<TcpListener, WebError> {
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(WebError::Taken {
            port: addr.port(),
            holder: port::holder(addr.port()),
        }),
        Err(source) => Err(WebError::Bind { addr, source }),
    }
}

/// Serves one listener: each connection takes one of the shared permits
/// (none free: the next waits in the system's queue, unaccepted), has
/// [`HEADER_TIME`] for each request's head, and ends when the app stops.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    permits: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stopping(&mut stopped) => return,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::debug!("the web app could not take a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopping(&mut stopped) => return,
        };
        let service = TowerToHyperService::new(router.clone());
        let mut stop = stopped.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIME)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!("a web connection ended: {e}");
                    }
                }
                _ = stopping(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
}

/// Until the app stops.
async fn stopping(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Shared by every request.
pub(crate) type Shared = Arc<app::Inner>;
