//! Real nodes in one process, on loopback, relay off: `Cluster::spawn(n)`.

use std::time::Duration;

use roundtable_core::{Circle, CircleId, InviteKind, Op, Timestamp};
use roundtable_node::{Node, NodeConfig, NodeHandle};
use tempfile::TempDir;

/// How long any one wait in a cluster test may take.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Nodes that share one circle, founded by node 0.
#[derive(Debug)]
pub struct Cluster {
    homes: Vec<TempDir>,
    nodes: Vec<Option<Node>>,
    /// The circle they share.
    pub circle: CircleId,
}

/// Runs `fut`, failing the test if it takes longer than [`PATIENCE`].
pub async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {PATIENCE:?}"))
}

impl Cluster {
    /// Starts `n` nodes; node 0 creates a circle and invites the others,
    /// who join by ticket over the join protocol.
    pub async fn spawn(n: usize) -> Self {
        let homes: Vec<TempDir> = (0..n)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let mut nodes = Vec::new();
        for h in &homes {
            nodes.push(Some(
                bounded(
                    "spawning a node",
                    Node::spawn(NodeConfig::loopback(h.path())),
                )
                .await
                .expect("node starts"),
            ));
        }
        let mut cluster = Self {
            homes,
            nodes,
            circle: CircleId::from_bytes([0; 16]),
        };
        let founder = cluster.handle(0);
        cluster.circle = bounded(
            "creating the circle",
            founder.create_circle("Tuesday Supper", "", "Maya", Timestamp::now()),
        )
        .await
        .expect("circle created");
        for i in 1..n {
            cluster.join(i, &format!("Friend {i}")).await;
        }
        cluster
    }

    /// Node `i` joins the circle with a fresh ticket from node 0.
    pub async fn join(&self, i: usize, name: &str) {
        let now = Timestamp::now();
        let ticket = bounded(
            "inviting",
            self.handle(0).invite(
                self.circle,
                InviteKind::Member,
                now.plus_millis(3_600_000),
                1,
                now,
            ),
        )
        .await
        .expect("invite");
        bounded("joining", self.handle(i).join(&ticket, Some(name)))
            .await
            .expect("join");
    }

    /// Pairs a new device with node `i`'s member: a node in a fresh home
    /// redeems a device ticket from node `i`. Returns the new node, its
    /// home, and the (now used) ticket.
    pub async fn pair(&self, i: usize) -> (Node, TempDir, roundtable_net::CircleTicket) {
        let home = tempfile::tempdir().expect("tempdir");
        let node = bounded("start", Node::spawn(NodeConfig::loopback(home.path())))
            .await
            .expect("node starts");
        let now = Timestamp::now();
        let ticket = bounded(
            "inviting a device",
            self.handle(i).invite(
                self.circle,
                InviteKind::Device,
                now.plus_millis(3_600_000),
                1,
                now,
            ),
        )
        .await
        .expect("device invite");
        bounded("pairing", node.handle().join(&ticket, None))
            .await
            .expect("pairing");
        (node, home, ticket)
    }

    /// Node `i`'s handle (it must be running).
    pub fn handle(&self, i: usize) -> NodeHandle {
        self.nodes[i].as_ref().expect("node is running").handle()
    }

    /// Node `i`'s home directory.
    pub fn home(&self, i: usize) -> &std::path::Path {
        self.homes[i].path()
    }

    /// Whether node `i` is running.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].is_some()
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// An edit on node `i`.
    pub async fn perform(&self, i: usize, op: Op) {
        bounded(
            "an edit",
            self.handle(i).perform(self.circle, op, Timestamp::now()),
        )
        .await
        .expect("edit accepted");
    }

    /// An edit on stopped node `i`, straight into its files, as the CLI
    /// makes one with no node running.
    pub fn perform_offline(&self, i: usize, op: Op) {
        assert!(self.nodes[i].is_none(), "node {i} must be stopped");
        let home = roundtable_store::Home::new(self.home(i));
        let lock = home.lock("test offline edit").expect("lock");
        let me = home.identity().expect("identity").expect("has identity");
        let mut store = home.open_circle(&lock, self.circle).expect("open");
        store
            .edit(|c| -> Result<_, roundtable_store::StoreError> {
                Ok(c.perform(&op, me.member.id(), Timestamp::now(), &mut rand::rng())?)
            })
            .expect("offline edit");
    }

    /// Node `i`'s canonical JSON of the circle (read from its files when stopped).
    pub async fn json(&self, i: usize) -> String {
        match &self.nodes[i] {
            Some(node) => {
                let doc = bounded("reading", node.handle().doc(self.circle))
                    .await
                    .expect("doc");
                Circle::load(&doc).expect("loads").canonical_json()
            }
            None => roundtable_store::Home::new(self.home(i))
                .read_circle(self.circle)
                .expect("read from disk")
                .canonical_json(),
        }
    }

    /// Waits until every running node prints the same JSON, and `check`
    /// holds for it.
    pub async fn converge(&self, check: impl Fn(&serde_json::Value) -> bool) -> String {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .collect();
        self.converge_among(&running, check).await
    }

    /// The circle keys node `i` keeps (read from its home).
    pub fn keys(&self, i: usize) -> roundtable_core::Keyring {
        roundtable_store::Home::new(self.home(i))
            .circle_keys(self.circle)
            .expect("keys read")
            .expect("keys kept")
    }

    /// Waits until `check` holds for node `i`'s status.
    pub async fn status_until(
        &self,
        i: usize,
        check: impl Fn(&roundtable_node::Status) -> bool,
    ) -> roundtable_node::Status {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let status = bounded("status", self.handle(i).status())
                .await
                .expect("status");
            if check(&status) {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {i}'s status never got there: {status:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until nodes `among` print the same JSON, and `check` holds for it.
    pub async fn converge_among(
        &self,
        among: &[usize],
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let mut all = Vec::new();
            for i in among {
                all.push(self.json(*i).await);
            }
            let same = all.windows(2).all(|w| w[0] == w[1]);
            if same && check(&serde_json::from_str(&all[0]).expect("json")) {
                return all.swap_remove(0);
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "the nodes did not converge within {PATIENCE:?}:\n{}",
                    all.join("\n----\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops node `i` in order.
    pub async fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            bounded("stopping a node", node.shutdown())
                .await
                .expect("clean shutdown");
        }
    }

    /// Starts node `i` again on its home.
    pub async fn restart(&mut self, i: usize) {
        let node = bounded(
            "restarting a node",
            Node::spawn(NodeConfig::loopback(self.homes[i].path())),
        )
        .await
        .expect("node restarts");
        self.nodes[i] = Some(node);
    }

    /// Stops every node.
    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }
}
