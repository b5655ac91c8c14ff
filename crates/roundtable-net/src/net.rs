//! The endpoint, the router and gossip of one device.

use iroh::address_lookup::memory::MemoryLookup;
use iroh::endpoint::{Connection, QuicTransportConfig, VarInt, presets};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh::{Endpoint, EndpointAddr, EndpointId, RelayConfig, RelayMap, RelayMode, SecretKey};
use iroh_gossip::Gossip;
use iroh_mdns_address_lookup::MdnsAddressLookup;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::admission::{AdmissionHook, Admitted};
use crate::config::{NetConfig, RelayChoice};
use crate::farewell::{FAREWELL_ALPN, ForwardFarewell};
use crate::{GOSSIP_ALPN, GOSSIP_MAX_MESSAGE, JOIN_ALPN, STEWARD_ALPN, SYNC_ALPN};

/// A connection accepted on one of our own protocols, for the node to serve.
#[derive(Debug)]
pub enum Incoming {
    /// A peer wants to sync a circle (already admitted).
    Sync(Connection),
    /// A device wants to redeem an invite (not admitted yet: check the invite first).
    Join(Connection),
    /// A device of a removed member asks for its farewell (let in for that only).
    Farewell(Connection),
}

/// What went wrong in the network layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The endpoint could not start.
    #[error("could not start networking: {0}")]
    Bind(String),
    /// A listen address was not usable.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        reason: String,
    },
    /// A peer could not be reached.
    #[error("could not reach {peer}: {reason}")]
    Connect {
        /// Short id of the peer.
        peer: String,
        /// Why.
        reason: String,
    },
}

/// Hands accepted connections to the node.
#[derive(Debug, Clone)]
struct Forward {
    join: bool,
    tx: mpsc::Sender<Incoming>,
}

impl ProtocolHandler for Forward {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let incoming = if self.join {
            Incoming::Join(conn)
        } else {
            Incoming::Sync(conn)
        };
        // The node keeps the connection alive for as long as it serves it.
        if self.tx.send(incoming).await.is_err() {
            debug!("node is shutting down; dropping a connection");
        }
        Ok(())
    }
}

/// An endpoint with the device's (or steward's) key, listening where the
/// configuration says, with the relay it names and mDNS if asked.
async fn endpoint(
    secret: [u8; 32],
    config: &NetConfig,
    hooks: Option<AdmissionHook>,
    transport: Option<QuicTransportConfig>,
) -> Result<(Endpoint, MemoryLookup), NetError> {
    let memory = MemoryLookup::new();
    let mut builder = Endpoint::builder(presets::Minimal)
        .secret_key(SecretKey::from_bytes(&secret))
        .clear_ip_transports();
    for addr in &config.listen {
        builder = builder.bind_addr(*addr).map_err(|e| NetError::Listen {
            addr: *addr,
            reason: e.to_string(),
        })?;
    }
    let relay = match &config.relay {
        RelayChoice::Disabled => RelayMode::Disabled,
        RelayChoice::Default => RelayMode::Default,
        // No QUIC address discovery: a circle's own relay needs only its URL.
        RelayChoice::Custom(url) => {
            RelayMode::Custom(RelayMap::from(RelayConfig::new(url.clone(), None)))
        }
    };
    let mut builder = builder.relay_mode(relay).address_lookup(memory.clone());
    if let Some(hooks) = hooks {
        builder = builder.hooks(hooks);
    }
    if let Some(transport) = transport {
        builder = builder.transport_config(transport);
    }
    let endpoint = builder
        .bind()
        .await
        .map_err(|e| NetError::Bind(e.to_string()))?;
    if config.mdns {
        match MdnsAddressLookup::builder().build(endpoint.id()) {
            Ok(mdns) => match endpoint.address_lookup() {
                Ok(lookups) => lookups.add(mdns),
                Err(e) => warn!("local network discovery is off: {e}"),
            },
            Err(e) => warn!("local network discovery is off: {e}"),
        }
    }
    Ok((endpoint, memory))
}

/// One device on the network.
#[derive(Debug)]
pub struct Net {
    dialer: Dialer,
    router: Router,
    gossip: Gossip,
    admitted: Admitted,
}

/// The part of [`Net`] that dials out; cheap to clone into tasks.
#[derive(Debug, Clone)]
pub struct Dialer {
    endpoint: Endpoint,
    memory: MemoryLookup,
    gossip: Gossip,
}

impl Dialer {
    /// Remembers where a device can be reached (from a ticket, a peer, ...).
    pub fn add_addr(&self, addr: EndpointAddr) {
        if !addr.is_empty() {
            self.memory.add_endpoint_info(addr);
        }
    }

    /// Where a device was last reachable, as far as this endpoint knows.
    pub async fn known_addr(&self, id: EndpointId) -> Option<EndpointAddr> {
        let info = self.endpoint.remote_info(id).await?;
        let addr = EndpointAddr::from_parts(id, info.addrs().map(|a| a.addr().clone()));
        (!addr.is_empty()).then_some(addr)
    }

    /// Connects to a device for gossip and hands the connection to gossip,
    /// which then sends what it holds for that device over it.
    ///
    /// Gossip dials by itself too, but a device it once failed to dial it
    /// never dials again (iroh-gossip 0.101 keeps what it meant to send
    /// waiting for a connection), so a neighbour lost that way is found
    /// again only through a connection made here.
    pub async fn connect_gossip(&self, peer: EndpointId) -> Result<(), NetError> {
        let conn = self.connect(EndpointAddr::from(peer), GOSSIP_ALPN).await?;
        self.gossip
            .handle_connection(conn)
            .await
            .map_err(|e| NetError::Connect {
                peer: peer.fmt_short().to_string(),
                reason: e.to_string(),
            })
    }

    /// Opens a connection to a device for one of our protocols.
    pub async fn connect(
        &self,
        addr: impl Into<EndpointAddr>,
        alpn: &[u8],
    ) -> Result<Connection, NetError> {
        let addr = addr.into();
        let peer = addr.id.fmt_short().to_string();
        self.endpoint
            .connect(addr, alpn)
            .await
            .map_err(|e| NetError::Connect {
                peer,
                reason: e.to_string(),
            })
    }
}

impl Net {
    /// Starts the endpoint with the device's secret key. Returns once it is
    /// listening; never waits for relays or DNS.
    pub async fn bind(
        secret: [u8; 32],
        config: &NetConfig,
        admitted: Admitted,
        incoming: mpsc::Sender<Incoming>,
    ) -> Result<Self, NetError> {
        let (endpoint, memory) = endpoint(
            secret,
            config,
            Some(AdmissionHook {
                admitted: admitted.clone(),
            }),
            None,
        )
        .await?;
        let gossip = Gossip::builder()
            .max_message_size(GOSSIP_MAX_MESSAGE)
            .spawn(endpoint.clone());
        let router = Router::builder(endpoint.clone())
            .accept(GOSSIP_ALPN, gossip.clone())
            .accept(
                SYNC_ALPN,
                Forward {
                    join: false,
                    tx: incoming.clone(),
                },
            )
            .accept(
                JOIN_ALPN,
                Forward {
                    join: true,
                    tx: incoming.clone(),
                },
            )
            .accept(FAREWELL_ALPN, ForwardFarewell(incoming))
            .spawn();
        Ok(Self {
            dialer: Dialer {
                endpoint,
                memory,
                gossip: gossip.clone(),
            },
            router,
            gossip,
            admitted,
        })
    }

    /// This device's id on the network (its device id).
    pub fn id(&self) -> EndpointId {
        self.dialer.endpoint.id()
    }

    /// How others can reach this device: its id and direct addresses (and relay).
    pub fn addr(&self) -> EndpointAddr {
        self.dialer.endpoint.addr()
    }

    /// The local UDP sockets, with their ports.
    pub fn bound_sockets(&self) -> Vec<std::net::SocketAddr> {
        self.dialer.endpoint.bound_sockets()
    }

    /// The devices admitted to connect.
    pub fn admitted(&self) -> &Admitted {
        &self.admitted
    }

    /// Gossip, for subscribing to circles' topics.
    pub fn gossip(&self) -> &Gossip {
        &self.gossip
    }

    /// A handle that dials out, for tasks.
    pub fn dialer(&self) -> Dialer {
        self.dialer.clone()
    }

    /// Shuts down in order: protocol handlers (gossip leaves its topics),
    /// then the endpoint closes its connections. Bounded: see
    /// [`close_within`].
    pub async fn shutdown(self) {
        close_within(&self.router, &self.dialer.endpoint).await;
    }
}

/// How long closing in order may take: the protocol handlers' goodbyes
/// and the peers' confirmations that they heard of the close. iroh puts a
/// silent peer's wait at about 3 s on its own.
const CLOSE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(4);

/// Shuts `router` down in order, but not for longer than
/// [`CLOSE_PATIENCE`]: a peer that never confirms (gone, or reached at an
/// address that leads nowhere now) or a busy handler must not keep a node
/// from stopping. Past that, the endpoint closes at once and such peers
/// learn of it by their own timeout. What matters is kept before this.
async fn close_within(router: &Router, endpoint: &Endpoint) {
    match tokio::time::timeout(CLOSE_PATIENCE, router.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!("network shutdown: {e}"),
        Err(_) => {
            debug!("closing in order is taking long; closing at once");
            let _ = tokio::time::timeout(CLOSE_PATIENCE / 4, endpoint.close()).await;
        }
    }
}

/// The most bytes one connection may have a steward hold for it in QUIC's
/// buffers, each way (received and not yet read, sent and not yet
/// acknowledged). A steward serves at most 256 connections, so these hold
/// at most 128 MiB in all however its peers behave; a connection still
/// moves 256 KiB per round trip (2.5 MiB/s at 100 ms).
const STEWARD_CONNECTION_WINDOW: u32 = 256 * 1024;

/// iroh's transport settings, with a steward's windows.
fn steward_transport() -> QuicTransportConfig {
    QuicTransportConfig::builder()
        .receive_window(VarInt::from_u32(STEWARD_CONNECTION_WINDOW))
        .stream_receive_window(VarInt::from_u32(STEWARD_CONNECTION_WINDOW))
        .send_window(u64::from(STEWARD_CONNECTION_WINDOW))
        .build()
}

/// A steward on the network: it serves only the steward protocol, to
/// anyone (whether a device may open a shelf is the steward's to check).
#[derive(Debug)]
pub struct StewardNet {
    endpoint: Endpoint,
    router: Router,
}

/// Hands steward connections over.
#[derive(Debug, Clone)]
struct ForwardSteward(mpsc::Sender<Connection>);

impl ProtocolHandler for ForwardSteward {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        if self.0.send(conn).await.is_err() {
            debug!("steward is shutting down; dropping a connection");
        }
        Ok(())
    }
}

impl StewardNet {
    /// Starts the steward's endpoint with its secret key; connections on
    /// the steward protocol go to `incoming`.
    pub async fn bind(
        secret: [u8; 32],
        config: &NetConfig,
        incoming: mpsc::Sender<Connection>,
    ) -> Result<Self, NetError> {
        let (endpoint, _memory) = endpoint(secret, config, None, Some(steward_transport())).await?;
        let router = Router::builder(endpoint.clone())
            .accept(STEWARD_ALPN, ForwardSteward(incoming))
            .spawn();
        Ok(Self { endpoint, router })
    }

    /// The steward's id.
    pub fn id(&self) -> EndpointId {
        self.endpoint.id()
    }

    /// How devices reach it.
    pub fn addr(&self) -> EndpointAddr {
        self.endpoint.addr()
    }

    /// The local UDP sockets, with their ports.
    pub fn bound_sockets(&self) -> Vec<std::net::SocketAddr> {
        self.endpoint.bound_sockets()
    }

    /// Waits, at most `patience`, until the steward is connected to its
    /// home relay (so its ticket names it); whether it is.
    pub async fn online_within(&self, patience: std::time::Duration) -> bool {
        tokio::time::timeout(patience, self.endpoint.online())
            .await
            .is_ok()
    }

    /// Closes every connection and stops (bounded: see [`close_within`]).
    pub async fn shutdown(self) {
        close_within(&self.router, &self.endpoint).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::timeout;

    use super::*;

    /// A peer writing to a steward that reads nothing gets only the
    /// steward's window into its buffers, not QUIC's default.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_steward_buffers_at_most_its_window_for_a_connection() {
        let limit = Duration::from_secs(30);
        let (tx, mut unserved) = mpsc::channel(4);
        let steward = timeout(limit, StewardNet::bind([3; 32], &NetConfig::loopback(), tx))
            .await
            .expect("in time")
            .expect("binds");
        let (itx, _irx) = mpsc::channel(1);
        let client = timeout(
            limit,
            Net::bind([4; 32], &NetConfig::loopback(), Admitted::default(), itx),
        )
        .await
        .expect("in time")
        .expect("binds");
        let conn = timeout(limit, client.dialer().connect(steward.addr(), STEWARD_ALPN))
            .await
            .expect("in time")
            .expect("connects");
        // The steward holds the connection and never reads from it.
        let held = timeout(limit, unserved.recv()).await.expect("in time");
        let (mut send, _recv) = timeout(limit, conn.open_bi())
            .await
            .expect("in time")
            .expect("a stream");
        let chunk = vec![7u8; 16 * 1024];
        let mut written = 0usize;
        while written < 8 * 1024 * 1024 {
            match timeout(Duration::from_millis(500), send.write_all(&chunk)).await {
                Ok(Ok(())) => written += chunk.len(),
                Ok(Err(e)) => panic!("the stream broke: {e}"),
                Err(_) => break,
            }
        }
        assert!(written > 0, "nothing went through");
        assert!(
            written <= STEWARD_CONNECTION_WINDOW as usize + chunk.len(),
            "{written} bytes were taken by a steward that reads nothing"
        );
        drop(held);
        conn.close(0u32.into(), b"done");
        timeout(limit, client.shutdown()).await.expect("in time");
        timeout(limit, steward.shutdown()).await.expect("in time");
    }
}
