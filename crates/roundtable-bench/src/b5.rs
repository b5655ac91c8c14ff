//! B5 CPU: what one remote change costs a real node on circles of growing
//! history, and what a node holding each costs when nothing happens.
//!
//! Per change: a real `roundtable up` holds the circle; the bench joins the
//! circle's gossip topic as another member's device (its real key, so the
//! node admits it) and sends sealed envelopes of that member's check-ins,
//! one after another. The node opens each envelope, verifies the signed
//! head and the change, applies it and makes it durable. Its CPU time
//! (utime + stime) over the whole run, less its idle rate, divided by the
//! changes, all of which must be in its files afterwards. Anchor: the same
//! envelopes received by a bare iroh endpoint with gossip in a process of
//! its own (the same accounting), plus Automerge's `load_incremental` of the
//! same change bytes into the same document and one ed25519 verify, timed
//! as this thread's CPU.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use automerge::Automerge;
use bytes::Bytes;
use roundtable_core::keys::seal;
use roundtable_core::wire::Body;
use roundtable_core::{ChangeHash, Mood, Op, SignedHead, Timestamp};
use roundtable_net::{EndpointAddr, EndpointId, TransportAddr};
use roundtable_store::Home;

use crate::Ctx;
use crate::child::LiveChild;
use crate::setup::{
    HistoryHome, UpProcess, bare_gossip, count, cpu_of, free_port, median, thread_cpu,
};
use crate::table::{Goal, Row, ms};

/// What one history's run measured, per change.
struct PerChange {
    ours: Duration,
    bare: Duration,
    raw: Duration,
}

pub(crate) async fn run(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut growth: Vec<(u64, Duration, Duration)> = Vec::new();
    let n = ctx.plan.b5_changes;
    for ops in ctx.plan.histories.clone() {
        let h = ctx.history(ops)?;
        let label = count(ops as usize);
        eprintln!("  ~{label} ops: {n} remote changes ...");
        let p = per_change(h, n).await?;
        let anchor = p.bare + p.raw;
        rows.push(
            Row::new("B5", format!("remote change on ~{label} ops: CPU"))
                .times(p.ours, anchor)
                .goal(Goal::AtMost(1.5))
                .note(format!(
                    "{n} gossiped check-ins into a real `roundtable up`, its CPU per change; anchor: bare endpoint receiving the same envelopes ({}) + load_incremental + one ed25519 verify ({}, median)",
                    ms(p.bare),
                    ms(p.raw)
                )),
        );
        growth.push((ops, p.ours, anchor));
    }
    if let (Some(first), Some(last)) = (growth.first(), growth.last())
        && growth.len() > 1
    {
        let g = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-12);
        let (ours, raw) = (g(last.1, first.1), g(last.2, first.2));
        rows.push(
            Row::new(
                "B5",
                format!(
                    "growth of CPU per change, ~{} → ~{} ops",
                    count(first.0 as usize),
                    count(last.0 as usize)
                ),
            )
            .values((format!("{ours:.2}×"), ours), (format!("{raw:.2}×"), raw))
            .goal(Goal::ValueAtMost(2.0))
            .note("the goal is on Roundtable's own growth"),
        );
    }

    // Idle: every history's node and the bare endpoint at once, same window.
    let idle = ctx.plan.idle;
    let mut ups = Vec::new();
    for ops in ctx.plan.histories.clone() {
        let dir = ctx.history(ops)?.dir.clone();
        ups.push((ops, UpProcess::start(&dir, None)?));
    }
    let bare = LiveChild::start(&["endpoint"])?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before: Vec<Duration> = ups
        .iter()
        .map(|(_, u)| cpu_of(u.pid()))
        .collect::<Result<_>>()?;
    let bare_before = cpu_of(bare.pid())?;
    let t = Instant::now();
    tokio::time::sleep(idle).await;
    let window = t.elapsed().as_secs_f64();
    let bare_pct = (cpu_of(bare.pid())? - bare_before).as_secs_f64() / window * 100.0;
    for ((ops, u), b) in ups.iter().zip(before) {
        let pct = (cpu_of(u.pid())? - b).as_secs_f64() / window * 100.0;
        rows.push(
            Row::new("B5", format!("idle CPU, node holding ~{} ops", count(*ops as usize)))
                .values((format!("{pct:.2}%"), pct), (format!("{bare_pct:.2}%"), bare_pct))
                .goal(Goal::ValueAtMost(0.5))
                .note(format!(
                    "`roundtable up` utime+stime over {window:.0} s idle (no peer online), % of one core; anchor: bare iroh endpoint with gossip"
                )),
        );
    }
    drop(ups);
    drop(bare);
    Ok(rows)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads 32 bytes of hex.
pub(crate) fn unhex32(s: &str) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        bail!("expected 64 hex digits");
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)?;
    }
    Ok(out)
}

/// CPU a process used since `since` (when it had used `from`), less what
/// it uses idle, once it has gone quiet.
async fn busy_cpu(pid: u32, idle_rate: f64, from: Duration, since: Instant) -> Result<Duration> {
    // Wait until it has nothing more to do: its CPU time stops moving.
    let mut last = cpu_of(pid)?;
    let mut still = 0;
    let give_up = Instant::now() + crate::setup::PATIENCE;
    while still < 3 {
        if Instant::now() > give_up {
            bail!("the process never went quiet");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = cpu_of(pid)?;
        if now <= last + Duration::from_millis(10) {
            still += 1;
        } else {
            still = 0;
        }
        last = now;
    }
    let used = last.saturating_sub(from).as_secs_f64();
    let idle = idle_rate * since.elapsed().as_secs_f64();
    Ok(Duration::from_secs_f64((used - idle).max(0.0)))
}

/// The idle CPU rate (seconds a second) of a process, over `d`.
async fn idle_rate(pid: u32, d: Duration) -> Result<f64> {
    let a = cpu_of(pid)?;
    let t = Instant::now();
    tokio::time::sleep(d).await;
    Ok((cpu_of(pid)? - a).as_secs_f64() / t.elapsed().as_secs_f64())
}

async fn per_change(h: &HistoryHome, n: usize) -> Result<PerChange> {
    let id = h.id;
    let home = Home::new(&h.dir);
    // Another member's device makes the changes, on its own copy.
    let who = 5;
    let (device, member) = (&h.cast.devices[who], &h.cast.members[who]);
    let mut sender = home.read_circle(id)?;
    let save = sender.save();
    sender.set_device(device.id());
    let mut rng = rand::rng();
    let mut envelopes = Vec::new();
    let mut plain = Vec::new();
    for i in 0..n {
        let before = sender.heads();
        sender.perform(
            &Op::Checkin {
                mood: Mood::Okay,
                note: format!("back from the hospital, day {i}, thank you for the soup"),
            },
            member.id(),
            Timestamp::now(),
            &mut rng,
        )?;
        let changes = sender.changes_since(&before);
        let head = SignedHead::sign(&sender, device).ok_or_else(|| anyhow!("no head"))?;
        let body = Body::Changes {
            changes: changes.clone(),
            head: head.clone(),
        };
        envelopes
            .push(seal(id, &h.keys, device, &body, &mut rng).ok_or_else(|| anyhow!("too big"))?);
        plain.push((changes, head));
    }
    let last: ChangeHash = *sender.heads().first().ok_or_else(|| anyhow!("no heads"))?;
    drop(sender);

    // The anchor's Automerge part, in this thread.
    let mut doc = Automerge::load(&save)?;
    let mut raw = Vec::new();
    for (changes, head) in &plain {
        let c0 = thread_cpu();
        if !head.verify(id) {
            bail!("a head does not verify");
        }
        doc.load_incremental(changes)?;
        raw.push(thread_cpu() - c0);
    }
    drop(doc);

    // The node, and a bare endpoint, both listening.
    let port = free_port()?;
    let up = UpProcess::start(&h.dir, Some(port))?;
    let bare_topic: [u8; 32] = rand::random();
    let bare = LiveChild::start(&["endpoint", "3600", &hex(&bare_topic)])?;
    let mut it = bare.info().split_whitespace();
    let bare_id = EndpointId::from_bytes(&unhex32(it.next().unwrap_or_default())?)?;
    let bare_port: u16 = it.next().unwrap_or_default().parse()?;

    // This bench speaks as member 5's device.
    let ep = crate::setup::bare_endpoint_with(*device.to_seed()).await?;
    let mem = iroh::address_lookup::memory::MemoryLookup::new();
    let node_id = EndpointId::from_bytes(h.cast.devices[0].id().as_bytes())?;
    let local = |p: u16| TransportAddr::Ip(std::net::SocketAddr::from(([127, 0, 0, 1], p)));
    mem.add_endpoint_info(EndpointAddr::from_parts(node_id, [local(port)]));
    mem.add_endpoint_info(EndpointAddr::from_parts(bare_id, [local(bare_port)]));
    ep.address_lookup()?.add(mem);
    let (gossip, router) = bare_gossip(&ep);
    let topic = roundtable_net::topic_for(h.keys.active().secret(), id.as_bytes());
    let (to_node, mut node_rx) = gossip.subscribe(topic, vec![node_id]).await?.split();
    let (to_bare, mut bare_rx) = gossip
        .subscribe(iroh_gossip::TopicId::from_bytes(bare_topic), vec![bare_id])
        .await?
        .split();
    for rx in [&mut node_rx, &mut bare_rx] {
        tokio::time::timeout(Duration::from_secs(30), rx.joined())
            .await
            .map_err(|_| anyhow!("could not join a gossip topic"))??;
    }
    // Let the node's attempt to sync with this device come and go.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (node_idle, bare_idle) = (
        idle_rate(up.pid(), Duration::from_secs(2)).await?,
        idle_rate(bare.pid(), Duration::from_millis(100)).await?,
    );
    let (node0, bare0) = (cpu_of(up.pid())?, cpu_of(bare.pid())?);
    let t = Instant::now();
    for e in &envelopes {
        let b = Bytes::from(e.clone());
        to_node.broadcast(b.clone()).await?;
        to_bare.broadcast(b).await?;
        // One at a time, at a pace the node takes another device's gossip
        // in at.
        tokio::time::sleep(crate::setup::PACE).await;
    }
    let ours = busy_cpu(up.pid(), node_idle, node0, t).await?;
    let bare_used = busy_cpu(bare.pid(), bare_idle, bare0, t).await?;
    drop(to_node);
    drop(to_bare);
    router.shutdown().await?;
    drop(up);
    drop(bare);
    if !home.read_circle(id)?.has_change(&last) {
        bail!("the node did not apply every gossiped change");
    }
    let per = |d: Duration| d / n.max(1) as u32;
    Ok(PerChange {
        ours: per(ours),
        bare: per(bare_used),
        raw: median(&raw),
    })
}
