//! B1 edit → visible: real nodes in one circle on loopback, an edit by
//! rotating authors, timed from the edit until the last node applied it;
//! next to bare iroh-gossip carrying the same bytes over as many endpoints.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use bytes::Bytes;
use n0_future::StreamExt as _;
use roundtable_core::keys::seal;
use roundtable_core::wire::Body;
use roundtable_core::{Mood, Op, SignedHead, Timestamp};
use roundtable_node::Event;
use tokio::sync::broadcast::error::RecvError;

use crate::Ctx;
use crate::setup::{Cast, Nodes, bare_endpoint, bare_gossip, found, quantile};
use crate::table::{Goal, Row};

/// An edit not applied within this long was not carried by gossip (it came,
/// if at all, by a later sync).
const GOSSIP_WINDOW: Duration = Duration::from_secs(1);
/// An edit not applied within this long is lost.
const LOST: Duration = Duration::from_secs(30);
/// Bare gossip has no later sync: a message not here by now never comes.
const ANCHOR_LOST: Duration = Duration::from_secs(5);

/// Latencies and how many missed the gossip window.
struct Run {
    lat: Vec<Duration>,
    missed: usize,
    /// Which of the timed edits missed it (ours only), counted from 1.
    which: Vec<usize>,
    /// What the last node dropped or refused of what gossip brought, by reason.
    dropped: String,
}

impl Run {
    fn p(&self, q: f64) -> Duration {
        quantile(&self.lat, q)
    }
}

const NOTE: &str = "long week but the soup on tuesday helped, thank you all";

pub(crate) async fn run(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let size = envelope_size()?;
    for (n, edits) in ctx.plan.b1.clone() {
        eprintln!("  {n} nodes: joining ...");
        let dir = ctx.scratch(&format!("b1-{n}"))?;
        let ours = roundtable(&dir, n, edits).await?;
        eprintln!("  {n} nodes: bare gossip ...");
        let anchor = gossip(n, edits, size).await?;
        let what = |p: &str| format!("edit → visible on the last of {n} nodes, {p}");
        rows.push(
            Row::new("B1", what("p50"))
                .times(ours.p(0.5), anchor.p(0.5))
                .goal(Goal::AtMost(1.5))
                .note(format!(
                    "{edits} edits by rotating authors; missed (not applied within {} s): {} ours{}, {} bare gossip; gossip payload {size} B (the sealed envelope); the last node dropped or refused: {}",
                    GOSSIP_WINDOW.as_secs(),
                    ours.missed,
                    if ours.which.is_empty() {
                        String::new()
                    } else {
                        let which: Vec<String> = ours.which.iter().map(usize::to_string).collect();
                        format!(" (edit {})", which.join(", "))
                    },
                    anchor.missed,
                    ours.dropped,
                )),
        );
        rows.push(Row::new("B1", what("p99")).times(ours.p(0.99), anchor.p(0.99)));
        rows.push(Row::new("B1", what("max")).times(ours.p(1.0), anchor.p(1.0)));
        rows.push(
            Row::new("B1", format!("missed edits, {n} nodes"))
                .counts(ours.missed as u64, anchor.missed as u64)
                .goal(Goal::ValueAtMost(0.0))
                .note("edits the last node did not apply within the gossip window"),
        );
    }
    Ok(rows)
}

/// The size of the sealed envelope one check-in travels in.
fn envelope_size() -> Result<usize> {
    let cast = Cast::new(2);
    let now = Timestamp::now();
    let mut c = found(&cast, now)?;
    c.set_device(cast.devices[0].id());
    let keys = roundtable_core::Keyring::with(roundtable_core::EpochKey::random(
        c.id(),
        0,
        &cast.devices[0],
        &mut rand::rng(),
    ));
    let before = c.heads();
    c.perform(
        &Op::Checkin {
            mood: Mood::Heavy,
            note: NOTE.into(),
        },
        cast.members[0].id(),
        now,
        &mut rand::rng(),
    )?;
    let head = SignedHead::sign(&c, &cast.devices[0]).ok_or_else(|| anyhow!("no head"))?;
    let body = Body::Changes {
        changes: c.changes_since(&before),
        head,
    };
    let sealed = seal(c.id(), &keys, &cast.devices[0], &body, &mut rand::rng())
        .ok_or_else(|| anyhow!("does not seal"))?;
    Ok(sealed.len())
}

async fn roundtable(dir: &std::path::Path, n: usize, edits: usize) -> Result<Run> {
    let nodes = Nodes::spawn(dir, n).await?;
    let circle = nodes.circle;
    let last = nodes.handle(n - 1)?;
    let mut events = last.subscribe();
    let authors: Vec<_> = (0..n - 1).map(|i| nodes.handle(i)).collect::<Result<_>>()?;
    // Warm up: every node hears an edit of node 0 before timing starts.
    let warm = 5;
    let mut lat = Vec::new();
    let mut missed = 0;
    let mut which = Vec::new();
    for i in 0..warm + edits {
        // Forget what came before this edit.
        loop {
            match events.try_recv() {
                Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::TryRecvError::Empty) => break,
                Err(tokio::sync::broadcast::error::TryRecvError::Closed) => {
                    return Err(anyhow!("the last node stopped"));
                }
            }
        }
        let author = &authors[i % authors.len()];
        let op = Op::Checkin {
            mood: Mood::Heavy,
            note: NOTE.into(),
        };
        let t = Instant::now();
        author.perform(circle, op, Timestamp::now()).await?;
        let took = loop {
            let left = LOST.saturating_sub(t.elapsed());
            match tokio::time::timeout(left, events.recv()).await {
                Ok(Ok(Event::Changed { .. })) | Ok(Err(RecvError::Lagged(_))) => {
                    break t.elapsed();
                }
                Ok(Ok(_)) => continue,
                Ok(Err(RecvError::Closed)) => return Err(anyhow!("the last node stopped")),
                Err(_) => return Err(anyhow!("edit {i} never reached the last node")),
            }
        };
        if i >= warm {
            if took > GOSSIP_WINDOW {
                missed += 1;
                which.push(i - warm + 1);
            }
            lat.push(took);
        }
        if i > warm && (i - warm) % 200 == 0 {
            eprintln!(
                "  {n} nodes: {} edits, p50 so far {:?}",
                i - warm,
                quantile(&lat, 0.5)
            );
        }
    }
    let status = last.status().await?;
    let dropped = status
        .dropped
        .iter()
        .chain(&status.refused)
        .map(|(why, n)| format!("{n} {why}"))
        .collect::<Vec<_>>();
    let dropped = if dropped.is_empty() {
        "nothing".to_owned()
    } else {
        dropped.join(", ")
    };
    nodes.shutdown().await?;
    Ok(Run {
        lat,
        missed,
        which,
        dropped,
    })
}

async fn gossip(n: usize, edits: usize, size: usize) -> Result<Run> {
    let mut eps = Vec::new();
    let mut gossips = Vec::new();
    let mut routers = Vec::new();
    for _ in 0..n {
        let ep = bare_endpoint().await?;
        let (g, router) = bare_gossip(&ep);
        routers.push(router);
        eps.push(ep);
        gossips.push(g);
    }
    let topic = iroh_gossip::TopicId::from_bytes(rand::random());
    // Everyone knows node 0's address and bootstraps from it, as nodes
    // that joined by one ticket would.
    let addr0 = eps[0].addr();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for (i, g) in gossips.iter().enumerate() {
        let boot = if i == 0 {
            Vec::new()
        } else {
            if let Ok(lookup) = eps[i].address_lookup() {
                let mem = iroh::address_lookup::memory::MemoryLookup::new();
                mem.add_endpoint_info(addr0.clone());
                lookup.add(mem);
            }
            vec![eps[0].id()]
        };
        let (s, r) = g.subscribe(topic, boot).await?.split();
        senders.push(s);
        receivers.push(r);
    }
    for r in receivers.iter_mut().skip(1) {
        tokio::time::timeout(Duration::from_secs(30), r.joined())
            .await
            .map_err(|_| anyhow!("bare gossip did not join"))??;
    }
    let mut last = receivers.pop().ok_or_else(|| anyhow!("no nodes"))?;
    // Let the swarm settle as the nodes' warm-up does.
    let warm = 5;
    let mut lat = Vec::new();
    let mut missed = 0;
    for i in 0..warm + edits {
        let mut payload = vec![0u8; size];
        rand::Rng::fill(&mut rand::rng(), &mut payload[..]);
        let sender = &senders[i % (n - 1)];
        let t = Instant::now();
        sender.broadcast(Bytes::from(payload)).await?;
        let took = loop {
            let left = ANCHOR_LOST.saturating_sub(t.elapsed());
            match tokio::time::timeout(left, last.next()).await {
                Ok(Some(Ok(iroh_gossip::api::Event::Received(_)))) => break Some(t.elapsed()),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => return Err(e.into()),
                Ok(None) => return Err(anyhow!("bare gossip stopped")),
                Err(_) => break None,
            }
        };
        if i >= warm {
            match took {
                Some(took) => {
                    if took > GOSSIP_WINDOW {
                        missed += 1;
                    }
                    lat.push(took);
                }
                // Bare gossip has no sync to bring a lost message later.
                None => missed += 1,
            }
        }
    }
    for r in routers {
        r.shutdown().await?;
    }
    Ok(Run {
        lat,
        missed,
        which: Vec::new(),
        dropped: String::new(),
    })
}
