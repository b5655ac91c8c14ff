//! The anchors' parts: bare iroh endpoints, and Automerge's stock sync loop
//! over a bare QUIC stream.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use automerge::sync::{Message, State, SyncDoc};
use automerge::{Automerge, ChangeHash};
use iroh::address_lookup::memory::MemoryLookup;
use iroh::endpoint::{Connection, presets};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh::{Endpoint, RelayMode, SecretKey};
use rand::RngCore;
use roundtable_net::framing::{read_frame, write_frame};

/// A bare iroh endpoint on loopback, relay off.
pub(crate) async fn bare_endpoint() -> Result<Endpoint> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    bare_endpoint_with(secret).await
}

/// A bare iroh endpoint on loopback, relay off, with this secret key.
pub(crate) async fn bare_endpoint_with(secret: [u8; 32]) -> Result<Endpoint> {
    let ep = Endpoint::builder(presets::Minimal)
        .secret_key(SecretKey::from_bytes(&secret))
        .clear_ip_transports()
        .bind_addr(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)))?
        .relay_mode(RelayMode::Disabled)
        .address_lookup(MemoryLookup::new())
        .bind()
        .await?;
    Ok(ep)
}

/// The ALPN of the stock sync anchor.
pub(crate) const STOCK_ALPN: &[u8] = b"bench/automerge-sync/0";

/// Bytes and rounds of one side of a sync exchange.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Traffic {
    /// Bytes this side sent (frames and their length prefixes).
    pub(crate) sent: u64,
    /// Bytes it received.
    pub(crate) received: u64,
    /// Rounds: one message each way.
    pub(crate) rounds: u64,
}

/// Automerge's stock sync loop over one stream, in lockstep rounds: each
/// side generates a message (or says it has none) and takes in the
/// other's, until a round in which neither has anything to say.
pub(crate) async fn stock_sync<S, R>(
    doc: &mut Automerge,
    state: &mut State,
    send: &mut S,
    recv: &mut R,
    opener: bool,
) -> Result<Traffic>
where
    S: tokio::io::AsyncWrite + Unpin,
    R: tokio::io::AsyncRead + Unpin,
{
    let mut t = Traffic::default();
    let frame_of = |msg: &Option<Vec<u8>>| -> Vec<u8> {
        match msg {
            Some(m) => [&[1u8][..], m].concat(),
            None => vec![0],
        }
    };
    loop {
        // The opener speaks first; the answerer answers what it heard, in
        // the same round (as Roundtable's sessions do).
        let (said, heard) = if opener {
            let mine = doc.generate_sync_message(state).map(Message::encode);
            let frame = frame_of(&mine);
            write_frame(send, &frame).await?;
            t.sent += 4 + frame.len() as u64;
            let theirs = read_frame(recv, usize::MAX)
                .await?
                .ok_or_else(|| anyhow!("stream ended"))?;
            t.received += 4 + theirs.len() as u64;
            let heard = theirs.first() == Some(&1);
            if heard {
                doc.receive_sync_message(state, Message::decode(&theirs[1..])?)?;
            }
            (mine.is_some(), heard)
        } else {
            let theirs = read_frame(recv, usize::MAX)
                .await?
                .ok_or_else(|| anyhow!("stream ended"))?;
            t.received += 4 + theirs.len() as u64;
            let heard = theirs.first() == Some(&1);
            if heard {
                doc.receive_sync_message(state, Message::decode(&theirs[1..])?)?;
            }
            let mine = doc.generate_sync_message(state).map(Message::encode);
            let frame = frame_of(&mine);
            write_frame(send, &frame).await?;
            t.sent += 4 + frame.len() as u64;
            (mine.is_some(), heard)
        };
        t.rounds += 1;
        if !said && !heard {
            return Ok(t);
        }
    }
}

/// A server for the stock sync anchor: answers one session per connection
/// with its document.
#[derive(Debug, Clone)]
pub(crate) struct StockServer {
    doc: std::sync::Arc<tokio::sync::Mutex<(Automerge, State)>>,
    done: tokio::sync::mpsc::Sender<Result<Traffic, String>>,
}

impl ProtocolHandler for StockServer {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let result = async {
            let (mut send, mut recv) = conn.accept_bi().await?;
            let mut guard = self.doc.lock().await;
            let (doc, state) = &mut *guard;
            let t = stock_sync(doc, state, &mut send, &mut recv, false).await?;
            send.finish()?;
            conn.closed().await;
            anyhow::Ok(t)
        }
        .await
        .map_err(|e| e.to_string());
        let _ = self.done.send(result).await;
        Ok(())
    }
}

/// A running stock sync server.
pub(crate) struct Stock {
    /// Its router (and endpoint).
    pub(crate) router: Router,
    /// Sessions as they end.
    pub(crate) done: tokio::sync::mpsc::Receiver<Result<Traffic, String>>,
    /// Its document after the sessions.
    pub(crate) doc: std::sync::Arc<tokio::sync::Mutex<(Automerge, State)>>,
}

/// Starts a stock sync server holding `doc`, with `state` for its peer.
pub(crate) async fn stock_server(doc: Automerge, state: State) -> Result<Stock> {
    let ep = bare_endpoint().await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let shared = std::sync::Arc::new(tokio::sync::Mutex::new((doc, state)));
    let router = Router::builder(ep)
        .accept(
            STOCK_ALPN,
            StockServer {
                doc: shared.clone(),
                done: tx,
            },
        )
        .spawn();
    Ok(Stock {
        router,
        done: rx,
        doc: shared,
    })
}

/// One stock sync session from a client endpoint to `server`: the client
/// side's traffic, and the time from dialling to in sync (both sides done).
pub(crate) async fn stock_client(
    ep: &Endpoint,
    server: &mut Stock,
    doc: &mut Automerge,
    state: &mut State,
) -> Result<(Duration, Traffic)> {
    let t = Instant::now();
    let conn = ep
        .connect(server.router.endpoint().addr(), STOCK_ALPN)
        .await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    let traffic = stock_sync(doc, state, &mut send, &mut recv, true).await?;
    let took = t.elapsed();
    send.finish()?;
    conn.close(0u32.into(), b"done");
    server
        .done
        .recv()
        .await
        .ok_or_else(|| anyhow!("server gone"))?
        .map_err(|e| anyhow!("server side: {e}"))?;
    Ok((took, traffic))
}

/// A sync state that knows the peer had `shared` at the last sync, as a
/// state persisted after a session would.
pub(crate) fn state_after(shared: &[ChangeHash]) -> State {
    let mut s = State::new();
    let mut heads = shared.to_vec();
    heads.sort();
    s.shared_heads = heads;
    s
}

/// iroh-gossip on a bare endpoint, with Roundtable's message cap, served by
/// a router of its own (keep the router: dropping it stops serving).
pub(crate) fn bare_gossip(ep: &Endpoint) -> (iroh_gossip::Gossip, Router) {
    let gossip = iroh_gossip::Gossip::builder()
        .max_message_size(roundtable_net::GOSSIP_MAX_MESSAGE)
        .spawn(ep.clone());
    let router = Router::builder(ep.clone())
        .accept(iroh_gossip::ALPN, gossip.clone())
        .spawn();
    (gossip, router)
}
