//! A member's device turned rogue: the real keys and copy of a cluster
//! node, speaking the wire protocols by hand so it can say what an honest
//! node never would.

use roundtable_core::wire::{self, JoinReply, JoinRequest, SyncFrame, WelcomeCircle};
use roundtable_core::{Applied, Circle, HeadBook, KeyOffer, Keyring, PeerSync, SignedHead};
use roundtable_net::framing::{read_frame, write_frame};
use roundtable_net::{
    Admitted, Connection, EndpointAddr, EndpointId, Incoming, JOIN_ALPN, Net, NetConfig, SYNC_ALPN,
};
use roundtable_store::{Home, Identity};
use tokio::sync::mpsc;

use crate::cluster::{Cluster, bounded};

/// The largest frame the rogue reads back (it is a test, not a node).
const MAX: usize = 64 * 1024 * 1024;

/// A member's device that misbehaves on purpose.
pub struct Rogue {
    /// Its identity: the real device and member keys of the node it was.
    pub me: Identity,
    /// The circle keys that node kept.
    pub keys: Keyring,
    /// The signed heads that node kept.
    pub book: HeadBook,
    /// Its copy of the circle, writing as its own device.
    pub circle: Circle,
    /// Its endpoint.
    pub net: Net,
    /// Join requests others send it. (Sync sessions others open to it are
    /// closed at once: it speaks only when it chooses.)
    pub joins: mpsc::Receiver<roundtable_net::Connection>,
    _refuser: tokio::task::JoinHandle<()>,
}

impl Rogue {
    /// Takes over stopped node `i`: its keys, its copy, and an endpoint of
    /// its own that can reach every running node of the cluster.
    pub async fn take_over(cluster: &Cluster, i: usize) -> Self {
        let mut addrs = Vec::new();
        for j in (0..cluster.len()).filter(|j| *j != i && cluster.is_running(*j)) {
            addrs.push(cluster.handle(j).addr().await.expect("addr"));
        }
        Self::from_home(cluster.home(i), cluster.circle, addrs).await
    }

    /// Takes over the device of `home` (whose node must be stopped) in
    /// `circle`, able to reach `addrs`.
    pub async fn from_home(
        home: &std::path::Path,
        circle_id: roundtable_core::CircleId,
        addrs: Vec<EndpointAddr>,
    ) -> Self {
        let home = Home::new(home);
        let me = home.identity().expect("identity").expect("has identity");
        let keys = home.circle_keys(circle_id).expect("keys").expect("kept");
        let mut circle = home.read_circle(circle_id).expect("its copy");
        circle.set_device(me.device.id());
        let mut book = home
            .read_record(roundtable_store::NodeRecord::HeadBook(circle_id))
            .expect("heads")
            .map(|b| HeadBook::restore(&b))
            .unwrap_or_default();
        book.know_devices(&circle.membership().certified);
        let (tx, mut incoming) = mpsc::channel(64);
        let admitted = Admitted::default();
        admitted.set(addrs.iter().map(|a| a.id));
        let net = bounded(
            "binding the rogue",
            Net::bind(*me.device.to_seed(), &NetConfig::loopback(), admitted, tx),
        )
        .await
        .expect("bind");
        for a in addrs {
            net.dialer().add_addr(a);
        }
        let (joins_tx, joins) = mpsc::channel(8);
        let refuser = tokio::spawn(async move {
            while let Some(conn) = incoming.recv().await {
                match conn {
                    Incoming::Sync(conn) | Incoming::Farewell(conn) => {
                        conn.close(1u32.into(), b"no")
                    }
                    Incoming::Join(conn) => {
                        let _ = joins_tx.send(conn).await;
                    }
                }
            }
        });
        Self {
            me,
            keys,
            book,
            circle,
            net,
            joins,
            _refuser: refuser,
        }
    }

    /// Every head it knows, its own newest included.
    pub fn heads(&self) -> Vec<SignedHead> {
        let mut heads = self.book.all();
        heads.extend(SignedHead::sign(&self.circle, &self.me.device));
        heads
    }

    /// Opens a raw sync connection and stream to `peer`, or `None` when the
    /// peer closes it first.
    pub async fn try_open_sync(
        &self,
        peer: EndpointId,
    ) -> Option<(
        Connection,
        roundtable_net::framing::SendHalf,
        roundtable_net::framing::RecvHalf,
    )> {
        let dialer = self.net.dialer();
        let dial = dialer.connect(EndpointAddr::from(peer), SYNC_ALPN);
        let conn = bounded("connecting", dial).await.ok()?;
        let (send, recv) = bounded("opening a stream", conn.open_bi()).await.ok()?;
        Some((conn, send, recv))
    }

    /// Opens a raw sync connection and stream to `peer`.
    pub async fn open_sync(
        &self,
        peer: EndpointId,
    ) -> (
        Connection,
        roundtable_net::framing::SendHalf,
        roundtable_net::framing::RecvHalf,
    ) {
        let conn = bounded(
            "connecting",
            self.net
                .dialer()
                .connect(EndpointAddr::from(peer), SYNC_ALPN),
        )
        .await
        .expect("connects");
        let (send, recv) = bounded("opening a stream", conn.open_bi())
            .await
            .expect("stream");
        (conn, send, recv)
    }

    /// A whole sync session with `peer` as the opener: `extra` heads in
    /// the first round beside its real ones, its copy's real sync
    /// messages, then `keys` as its key frame. Returns the peer's key, or
    /// how the session failed.
    pub async fn sync(
        &mut self,
        peer: EndpointId,
        extra: Vec<SignedHead>,
        keys: Option<KeyOffer>,
    ) -> Result<Option<KeyOffer>, String> {
        let mut no_pause = None::<std::future::Ready<()>>;
        self.session_when_free(peer, extra, keys, &mut no_pause)
            .await
            .map(|(theirs, _)| theirs)
    }

    /// An honest session with `peer` as the opener that takes its time:
    /// after the peer's first round it waits for `between` before going
    /// on. Returns what it applied of the peer's changes, each checked
    /// against the signed heads the peer sent, as any node checks them.
    pub async fn sync_pausing(
        &mut self,
        peer: EndpointId,
        between: impl Future<Output = ()>,
    ) -> Result<Applied, String> {
        self.session_when_free(peer, Vec::new(), None, &mut Some(between))
            .await
            .map(|(_, applied)| applied)
    }

    /// A session, again while the peer says it is busy: it may be opening
    /// one to this device at the same moment (the rogue closes it).
    async fn session_when_free(
        &mut self,
        peer: EndpointId,
        extra: Vec<SignedHead>,
        keys: Option<KeyOffer>,
        between: &mut Option<impl Future<Output = ()>>,
    ) -> Result<(Option<KeyOffer>, Applied), String> {
        let mut result = Err(String::new());
        for _ in 0..50 {
            result = self
                .session(peer, extra.clone(), keys.clone(), between)
                .await;
            match &result {
                Err(e) if e.contains("busy") => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                _ => break,
            }
        }
        result
    }

    /// One session as the opener: `extra` heads in the first round beside
    /// its real ones, `between` (when there) awaited once the peer's first
    /// round is in, its copy's real sync messages, then `keys` as its key
    /// frame.
    async fn session(
        &mut self,
        peer: EndpointId,
        extra: Vec<SignedHead>,
        keys: Option<KeyOffer>,
        between: &mut Option<impl Future<Output = ()>>,
    ) -> Result<(Option<KeyOffer>, Applied), String> {
        let (conn, mut send, mut recv) = self.open_sync(peer).await;
        let circle = *self.circle.id().as_bytes();
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let out = async {
            write_frame(&mut send, &wire::encode(&SyncFrame::Hello { circle }))
                .await
                .map_err(|e| err(&e))?;
            match recv_frame(&mut recv).await? {
                SyncFrame::Ready => {}
                other => return Err(format!("not ready: {other:?}")),
            }
            let mut sync = PeerSync::fresh();
            let mut heads: Vec<SignedHead> = self.heads();
            heads.extend(extra);
            let mut applied = Applied::default();
            for _ in 0..1_000 {
                let mine = self.circle.sync_generate(&mut sync);
                let said = mine.is_some();
                let round = SyncFrame::Round {
                    heads: std::mem::take(&mut heads),
                    msg: mine,
                };
                write_frame(&mut send, &wire::encode(&round))
                    .await
                    .map_err(|e| err(&e))?;
                let SyncFrame::Round { heads: proofs, msg } = recv_frame(&mut recv).await? else {
                    return Err("expected a round".into());
                };
                if let Some(between) = between.take() {
                    between.await;
                }
                let heard = msg.is_some();
                self.book.learn(self.circle.id(), &proofs);
                if let Some(m) = msg {
                    let round = self
                        .circle
                        .sync_receive_verified(&mut sync, &m, &mut self.book)
                        .map_err(|e| err(&e))?;
                    applied.applied += round.applied;
                    applied.rejected.extend(round.rejected);
                }
                if !said && !heard {
                    break;
                }
            }
            write_frame(&mut send, &wire::encode(&SyncFrame::Keys(keys)))
                .await
                .map_err(|e| err(&e))?;
            match recv_frame(&mut recv).await? {
                SyncFrame::Keys(theirs) => Ok((theirs, applied)),
                other => Err(format!("expected keys, got {other:?}")),
            }
        };
        let result = bounded("a rogue sync session", out).await;
        let _ = send.finish();
        conn.close(0u32.into(), b"done");
        result
    }

    /// Answers the next join request that reaches it with `reply`, and
    /// returns the request.
    pub async fn serve_join(
        &mut self,
        reply: impl FnOnce(&JoinRequest) -> JoinReply,
    ) -> JoinRequest {
        let conn = bounded("a join request", self.joins.recv())
            .await
            .expect("a connection");
        let (mut send, mut recv) = bounded("accepting", conn.accept_bi())
            .await
            .expect("stream");
        let bytes = bounded("reading", read_frame(&mut recv, 16 * 1024))
            .await
            .expect("frame")
            .expect("not empty");
        let request: JoinRequest = wire::decode(&bytes).expect("a join request");
        let answer = reply(&request);
        write_frame(&mut send, &wire::encode(&answer))
            .await
            .expect("reply sent");
        let _ = send.finish();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn.closed()).await;
        request
    }

    /// Its copy as an honest welcome would hand it over.
    pub fn welcome_circle(&self) -> WelcomeCircle {
        WelcomeCircle {
            doc: self.circle.save(),
            key: self.keys.offer().expect("a signed key"),
            heads: self.heads(),
        }
    }

    /// Opens a raw join connection to `peer`.
    pub async fn open_join(&self, peer: EndpointId) -> Connection {
        bounded(
            "connecting to join",
            self.net
                .dialer()
                .connect(EndpointAddr::from(peer), JOIN_ALPN),
        )
        .await
        .expect("connects")
    }
}

async fn recv_frame(recv: &mut roundtable_net::framing::RecvHalf) -> Result<SyncFrame, String> {
    let bytes = read_frame(recv, MAX)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the peer ended the session")?;
    wire::decode(&bytes).map_err(|e| e.to_string())
}
