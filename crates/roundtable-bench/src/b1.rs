//! B1 edit → visible: real nodes in one circle on loopback, an edit by
//! rotating authors, timed from the edit until the last node applied it;
//! next to bare iroh-gossip carrying the same bytes over as many endpoints,
//! and next to the floor: bare gossip plus what any design must do between
//! an edit and its being seen (see [`Floor`]).

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use bytes::Bytes;
use n0_future::StreamExt as _;
use roundtable_core::keys::{open, seal};
use roundtable_core::wire::Body;
use roundtable_core::{CircleId, DeviceKey, EpochKey, Keyring, Mood, Op, SignedHead, Timestamp};
use roundtable_node::Event;
use tokio::sync::broadcast::error::RecvError;

use crate::Ctx;
use crate::setup::{Cast, Nodes, PACE, bare_endpoint, bare_gossip, found, quantile};
use crate::table::{Goal, Row, ms};

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
    let sample = Sample::new()?;
    let size = sample.sealed.len();
    let floor = Floor::measure(&sample, &ctx.scratch("b1-floor")?)?;
    for (n, edits) in ctx.plan.b1.clone() {
        eprintln!("  {n} nodes: joining ...");
        let dir = ctx.scratch(&format!("b1-{n}"))?;
        let ours = roundtable(&dir, n, edits).await?;
        eprintln!("  {n} nodes: bare gossip ...");
        let anchor = gossip(n, edits, size).await?;
        let what = |p: &str| format!("edit → visible on the last of {n} nodes, {p}");
        let floor_p50 = anchor.p(0.5) + floor.total();
        rows.push(
            Row::new("B1", what("p50, against the floor"))
                .times(ours.p(0.5), floor_p50)
                .goal(Goal::AtMost(if n <= 3 { 1.5 } else { 2.0 }))
                .note(format!(
                    "the floor: bare gossip's p50 ({}) + {}",
                    ms(anchor.p(0.5)),
                    floor.words()
                )),
        );
        rows.push(
            Row::new("B1", what("p50"))
                .times(ours.p(0.5), anchor.p(0.5))
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

/// One check-in as it travels: the circle before it, the change, the
/// author's signed head, and the sealed envelope.
struct Sample {
    circle: CircleId,
    before: automerge::Automerge,
    changes: Vec<u8>,
    head: SignedHead,
    keys: Keyring,
    device: DeviceKey,
    body: Body,
    sealed: Vec<u8>,
}

impl Sample {
    fn new() -> Result<Self> {
        let cast = Cast::new(2);
        let now = Timestamp::now();
        let mut c = found(&cast, now)?;
        let device = cast.devices[0].clone();
        c.set_device(device.id());
        let keys = Keyring::with(EpochKey::random(c.id(), 0, &device, &mut rand::rng()));
        let before = c.doc().clone();
        let heads = c.heads();
        c.perform(
            &Op::Checkin {
                mood: Mood::Heavy,
                note: NOTE.into(),
            },
            cast.members[0].id(),
            now,
            &mut rand::rng(),
        )?;
        let head = SignedHead::sign(&c, &device).ok_or_else(|| anyhow!("no head"))?;
        let changes = c.changes_since(&heads);
        let body = Body::Changes {
            changes: changes.clone(),
            head: head.clone(),
        };
        let sealed = seal(c.id(), &keys, &device, &body, &mut rand::rng())
            .ok_or_else(|| anyhow!("does not seal"))?;
        Ok(Self {
            circle: c.id(),
            before,
            changes,
            head,
            keys,
            device,
            body,
            sealed,
        })
    }
}

/// What no design can skip between an edit and its being seen, beyond
/// carrying the bytes: the author's fsync before anyone is told (an edit
/// is acknowledged only once durable), sealing the envelope, and at the
/// other end opening it (its signature checked), one ed25519 verify (the
/// author's signed head) and Automerge applying the change. Each is the
/// median of [`FLOOR_REPS`], measured in the same run as the nodes.
struct Floor {
    fsync: Duration,
    seal: Duration,
    open: Duration,
    verify: Duration,
    apply: Duration,
}

const FLOOR_REPS: usize = 200;

impl Floor {
    fn measure(s: &Sample, dir: &std::path::Path) -> Result<Self> {
        use std::io::Write as _;
        let median = |mut f: Box<dyn FnMut() -> Result<Duration> + '_>| -> Result<Duration> {
            let mut all = Vec::with_capacity(FLOOR_REPS);
            for _ in 0..FLOOR_REPS {
                all.push(f()?);
            }
            Ok(quantile(&all, 0.5))
        };
        let mut file = std::fs::File::create(dir.join("appended"))?;
        let fsync = median(Box::new(|| {
            let t = Instant::now();
            file.write_all(&s.changes)?;
            file.sync_data()?;
            Ok(t.elapsed())
        }))?;
        let seal = median(Box::new(|| {
            let t = Instant::now();
            let sealed = seal(s.circle, &s.keys, &s.device, &s.body, &mut rand::rng());
            let took = t.elapsed();
            sealed.ok_or_else(|| anyhow!("does not seal"))?;
            Ok(took)
        }))?;
        let open = median(Box::new(|| {
            let t = Instant::now();
            let opened = open(&s.sealed, s.circle, &s.keys, |_| true);
            let took = t.elapsed();
            opened.map_err(|e| anyhow!("does not open: {e}"))?;
            Ok(took)
        }))?;
        let verify = median(Box::new(|| {
            let t = Instant::now();
            let ok = s.head.verify(s.circle);
            let took = t.elapsed();
            anyhow::ensure!(ok, "the head does not verify");
            Ok(took)
        }))?;
        let apply = median(Box::new(|| {
            let mut doc = s.before.clone();
            let t = Instant::now();
            doc.load_incremental(&s.changes)?;
            Ok(t.elapsed())
        }))?;
        Ok(Self {
            fsync,
            seal,
            open,
            verify,
            apply,
        })
    }

    fn total(&self) -> Duration {
        self.fsync + self.seal + self.open + self.verify + self.apply
    }

    fn words(&self) -> String {
        format!(
            "the author's fsync {} + seal {} + open {} + one ed25519 verify {} + Automerge's apply {} (medians of {FLOOR_REPS})",
            ms(self.fsync),
            ms(self.seal),
            ms(self.open),
            ms(self.verify),
            ms(self.apply),
        )
    }
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
    // Each author edits at a pace the others take its gossip in at.
    let mut next_edit = vec![Instant::now(); authors.len()];
    for i in 0..warm + edits {
        let a = i % authors.len();
        tokio::time::sleep_until(next_edit[a].into()).await;
        next_edit[a] = Instant::now() + PACE;
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
        let op = Op::Checkin {
            mood: Mood::Heavy,
            note: NOTE.into(),
        };
        let t = Instant::now();
        let id = authors[a]
            .perform(circle, op, Timestamp::now())
            .await?
            .ok_or_else(|| anyhow!("a check-in makes an entry"))?;
        let took = loop {
            let left = LOST.saturating_sub(t.elapsed());
            match tokio::time::timeout(left, events.recv()).await {
                Ok(Ok(Event::Changed { .. })) | Ok(Err(RecvError::Lagged(_))) => {
                    let took = t.elapsed();
                    // Only this edit counts, not one that came late.
                    if last.read(circle).await?.view.checkins.contains_key(&id) {
                        break took;
                    }
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
    // At the same pace as the nodes' authors.
    let mut next_send = vec![Instant::now(); n - 1];
    for i in 0..warm + edits {
        let mut payload = vec![0u8; size];
        rand::Rng::fill(&mut rand::rng(), &mut payload[..]);
        let a = i % (n - 1);
        tokio::time::sleep_until(next_send[a].into()).await;
        next_send[a] = Instant::now() + PACE;
        let sender = &senders[a];
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
