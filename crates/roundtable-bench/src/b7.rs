//! B7 versus samod (the Rust automerge-repo): a peer catching up on the
//! same document of K edits. samod: two repos with storage on disk, over its
//! length-delimited framing on a loopback TCP connection, the dialling repo
//! finding the document; bytes counted on the accepting side's socket.
//! Roundtable: B2's catch-up with K edits, all of history, in this run.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use automerge::Automerge;
use futures::FutureExt as _;
use samod::{BackoffConfig, DialError, Dialer, Repo, Transport, Url};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::Ctx;
use crate::setup::{Regime, count};
use crate::table::{Goal, Row, bytes};

pub(crate) async fn run(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let k = ctx.plan.b7_edits;
    let dir = ctx.scratch("b7")?;
    eprintln!("  Roundtable, {} edits ...", count(k));
    let ours = crate::b2::catch_up(
        &dir.join("roundtable"),
        Regime {
            shared: 0,
            on_a: k,
            on_b: 0,
        },
    )
    .await?;
    eprintln!("  samod ...");
    let (took, sent, received) = samod_catch_up(&dir.join("samod"), ours.a_doc.clone()).await?;
    let ours_bytes = ours.ours_traffic.sent + ours.ours_traffic.received;
    Ok(vec![
        Row::new(
            "B7",
            format!("catch-up of {} edits vs samod: time", count(k)),
        )
        .times(ours.ours, took)
        .goal(Goal::Below(1.0))
        .note(
            "ours: B2's catch-up (the second node's start → same heads); samod: dial → document found → same heads",
        ),
        Row::new(
            "B7",
            format!("catch-up of {} edits vs samod: bytes", count(k)),
        )
        .bytes(ours_bytes, sent + received)
        .goal(Goal::Below(1.0))
        .note(format!(
            "ours A→B {}, B→A {} (protocol frames); samod A→B {}, B→A {} (TCP payload)",
            bytes(ours.ours_traffic.sent),
            bytes(ours.ours_traffic.received),
            bytes(sent),
            bytes(received)
        )),
    ])
}

/// Two samod repos on disk; A holds `doc`, B dials A and finds it. Returns
/// the time from dialling to the same heads, and A's bytes sent and received.
async fn samod_catch_up(dir: &std::path::Path, doc: Automerge) -> Result<(Duration, u64, u64)> {
    let storage = |name: &str| samod::storage::TokioFilesystemStorage::new(dir.join(name));
    let alice = Repo::build_tokio().with_storage(storage("a")).load().await;
    let bob = Repo::build_tokio().with_storage(storage("b")).load().await;
    let want = doc.get_heads();
    let handle = alice
        .create(doc)
        .await
        .map_err(|_| anyhow!("samod stopped"))?;
    let id = handle.document_id().clone();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let acceptor = alice
        .make_acceptor(Url::parse(&format!("tcp://127.0.0.1:{port}"))?)
        .map_err(|_| anyhow!("samod stopped"))?;
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let (s2, r2) = (sent.clone(), received.clone());
    let server = tokio::spawn(async move {
        while let Ok((io, _)) = listener.accept().await {
            let io = Counting {
                inner: io,
                read: r2.clone(),
                written: s2.clone(),
            };
            if acceptor.accept(Transport::from_tokio_io(io)).is_err() {
                break;
            }
        }
    });

    let t = Instant::now();
    let dialer = bob
        .dial(BackoffConfig::default(), Arc::new(Tcp { port }))
        .map_err(|_| anyhow!("samod stopped"))?;
    dialer
        .established()
        .await
        .map_err(|e| anyhow!("samod did not connect: {e:?}"))?;
    let found = tokio::time::timeout(crate::setup::PATIENCE, bob.find(id))
        .await
        .map_err(|_| anyhow!("samod did not find the document in time"))?
        .map_err(|_| anyhow!("samod stopped"))?
        .ok_or_else(|| anyhow!("samod says the document is unavailable"))?;
    loop {
        let heads = found.with_document(|d| d.get_heads());
        if heads == want {
            break;
        }
        if t.elapsed() > crate::setup::PATIENCE {
            return Err(anyhow!("samod did not catch up"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = t.elapsed();
    server.abort();
    bob.stop().await;
    alice.stop().await;
    Ok((
        took,
        sent.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed),
    ))
}

/// Dials A over TCP, as samod's own `TcpDialer` does.
struct Tcp {
    port: u16,
}

impl Dialer for Tcp {
    type Error = std::convert::Infallible;

    fn url(&self) -> Url {
        Url::parse(&format!("tcp://127.0.0.1:{}", self.port))
            .unwrap_or_else(|_| Url::parse("tcp://127.0.0.1").expect("a fixed URL parses"))
    }

    fn connect(
        &self,
    ) -> futures::future::BoxFuture<'static, Result<Transport, DialError<Self::Error>>> {
        let port = self.port;
        async move {
            let io = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(DialError::transient)?;
            Ok(Transport::from_tokio_io(io))
        }
        .boxed()
    }
}

/// A stream that counts what passes through it.
struct Counting<S> {
    inner: S,
    read: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
