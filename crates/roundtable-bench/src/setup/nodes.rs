//! Roundtable nodes on loopback: configured as a person's device, joined
//! into one circle, started and stopped, and waited on until in sync.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use roundtable_core::{Circle, CircleId, InviteKind, Timestamp};
use roundtable_node::{Event, Node, NodeConfig, NodeHandle};
use tokio::sync::broadcast;

/// A free UDP port on loopback.
pub(crate) fn free_port() -> Result<u16> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
    Ok(s.local_addr()?.port())
}

/// A node on loopback, no relay, no mDNS, at a fixed port (so peers find it
/// again after a restart), with a person's device's timings (anti-entropy
/// every 10 s, backoff up to 20 s), not the quicker ones tests use.
pub(crate) fn node_config(home: &Path, port: u16) -> NodeConfig {
    let mut c = NodeConfig::new(home);
    c.net = roundtable_net::NetConfig::loopback();
    c.net.listen = vec![SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))];
    c
}

/// How long any wait for nodes may take before the scenario fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(180);

/// Runs `fut`, failing if it takes longer than `PATIENCE`.
pub(crate) async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .map_err(|_| anyhow!("{what} took longer than {PATIENCE:?}"))
}

/// Real nodes in this process, each in its own home, sharing one circle.
#[derive(Debug)]
pub(crate) struct Nodes {
    /// Their homes.
    pub(crate) homes: Vec<PathBuf>,
    ports: Vec<u16>,
    nodes: Vec<Option<Node>>,
    /// The circle.
    pub(crate) circle: CircleId,
}

impl Nodes {
    /// `n` nodes under `dir`; node 0 founds the circle and invites the
    /// others, who join by ticket.
    pub(crate) async fn spawn(dir: &Path, n: usize) -> Result<Self> {
        let mut homes = Vec::new();
        let mut ports = Vec::new();
        let mut nodes = Vec::new();
        for i in 0..n {
            let home = dir.join(format!("node{i}"));
            let port = free_port()?;
            nodes.push(Some(
                bounded("starting a node", Node::spawn(node_config(&home, port))).await??,
            ));
            homes.push(home);
            ports.push(port);
        }
        let mut me = Self {
            homes,
            ports,
            nodes,
            circle: CircleId::from_bytes([0; 16]),
        };
        me.circle = bounded(
            "founding the circle",
            me.handle(0)?
                .create_circle("Tuesday Supper", "", "Maya", Timestamp::now()),
        )
        .await??;
        for i in 1..n {
            let now = Timestamp::now();
            let ticket = me
                .handle(0)?
                .invite(
                    me.circle,
                    InviteKind::Member,
                    now.plus_millis(3_600_000),
                    1,
                    now,
                )
                .await?;
            bounded(
                "joining",
                me.handle(i)?.join(&ticket, Some(&format!("Friend {i}"))),
            )
            .await??;
        }
        Ok(me)
    }

    /// Node `i`'s handle.
    pub(crate) fn handle(&self, i: usize) -> Result<NodeHandle> {
        Ok(self
            .nodes
            .get(i)
            .and_then(Option::as_ref)
            .ok_or_else(|| anyhow!("node {i} is not running"))?
            .handle())
    }

    /// Stops node `i` in order.
    pub(crate) async fn stop(&mut self, i: usize) -> Result<()> {
        if let Some(node) = self.nodes[i].take() {
            bounded("stopping a node", node.shutdown()).await??;
        }
        Ok(())
    }

    /// Starts node `i` again, at its old port.
    pub(crate) async fn start(&mut self, i: usize) -> Result<()> {
        let node = bounded(
            "starting a node",
            Node::spawn(node_config(&self.homes[i], self.ports[i])),
        )
        .await??;
        self.nodes[i] = Some(node);
        Ok(())
    }

    /// Stops every node.
    pub(crate) async fn shutdown(mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            self.stop(i).await?;
        }
        Ok(())
    }
}

/// A node's copy of a circle.
pub(crate) async fn node_circle(h: &NodeHandle, circle: CircleId) -> Result<Circle> {
    Ok(Circle::load(&h.doc(circle).await?)?)
}

/// Waits until `a` and `b` hold the same heads, checking after each sync
/// session either ends (and every two seconds). Returns when the session
/// that made them equal ended. Subscribe before the nodes can sync.
pub(crate) async fn wait_in_sync(
    a: (&NodeHandle, &mut broadcast::Receiver<Event>),
    b: (&NodeHandle, &mut broadcast::Receiver<Event>),
    circle: CircleId,
) -> Result<Instant> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if Instant::now() > deadline {
            bail!("the nodes did not get in sync within {PATIENCE:?}");
        }
        let ev = tokio::select! {
            e = a.1.recv() => e,
            e = b.1.recv() => e,
            () = tokio::time::sleep(Duration::from_secs(2)) => Err(broadcast::error::RecvError::Lagged(0)),
        };
        let at = Instant::now();
        let check = match ev {
            Ok(Event::Synced { ok, .. }) => ok,
            Ok(_) => false,
            Err(broadcast::error::RecvError::Lagged(_)) => true,
            Err(broadcast::error::RecvError::Closed) => bail!("a node stopped"),
        };
        if check {
            let ha = a.0.heads(circle).await?;
            let hb = b.0.heads(circle).await?;
            if ha == hb {
                return Ok(at);
            }
        }
    }
}
