//! B8 a change made while everyone else sleeps: a node writes a few
//! edits, its steward keeps them, and it goes to sleep; the other node
//! wakes and is timed until it holds the same heads, through the steward
//! alone. Anchor: B6's direct case in the same run (the writer stays up,
//! the other wakes and syncs with it). Also: the bytes the steward keeps
//! for those edits next to the changes themselves, and what it keeps for
//! a whole circle next to a sealed `save()` of it, at the plan's history
//! sizes, before and after a run of small edits.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use roundtable_core::{CircleId, DeviceId, Mood, Op, Timestamp};
use roundtable_node::{Node, NodeHandle};
use roundtable_steward::{Limits, Steward, StewardOptions};

use crate::Ctx;
use crate::setup::{Nodes, PATIENCE, bounded, median, node_circle, node_config, wait_in_sync};
use crate::table::{Goal, Row};

async fn start_steward(dir: &std::path::Path) -> Result<Steward> {
    Ok(Steward::start(StewardOptions {
        home: dir.join("steward"),
        net: roundtable_net::NetConfig::loopback(),
        store: None,
        limits: Limits::default(),
    })
    .await?)
}

fn add_steward_op(steward: &Steward) -> Op {
    Op::AddSteward {
        ticket: steward.ticket().to_line(),
        steward: DeviceId::from_bytes(steward.ticket().id()),
        name: None,
    }
}

/// Waits until the node's steward holds everything it holds.
async fn kept_at_steward(h: &NodeHandle, circle: CircleId) -> Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = h.status().await?;
        let level = status
            .circles
            .iter()
            .find(|c| c.id == circle)
            .is_some_and(|c| {
                !c.stewards.is_empty() && c.stewards.iter().all(|s| s.up_to_date && s.connected)
            });
        if level {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the steward was not brought up to date within {PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the node holds `heads`.
async fn holds(
    h: &NodeHandle,
    circle: CircleId,
    heads: &[roundtable_core::ChangeHash],
) -> Result<Instant> {
    let mut events = h.subscribe();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut mine = node_circle(h, circle).await?.heads();
        mine.sort();
        if mine == heads {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("the waking node did not catch up through the steward within {PATIENCE:?}");
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
    }
}

async fn write(h: &NodeHandle, circle: CircleId, edits: usize, run: usize) -> Result<()> {
    for i in 0..edits {
        h.perform(
            circle,
            Op::Checkin {
                mood: Mood::Okay,
                note: format!("run {run}: the soup for Tuesday, note {i}"),
            },
            Timestamp::now(),
        )
        .await?;
    }
    Ok(())
}

pub(crate) async fn run(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let dir = ctx.scratch("b8")?;
    let (runs, edits) = (ctx.plan.b6_runs, ctx.plan.b6_edits);
    let steward = start_steward(&dir).await?;
    let mut nodes = Nodes::spawn(&dir, 2).await?;
    let circle = nodes.circle;
    nodes
        .handle(0)?
        .perform(circle, add_steward_op(&steward), Timestamp::now())
        .await?;
    kept_at_steward(&nodes.handle(0)?, circle).await?;
    kept_at_steward(&nodes.handle(1)?, circle).await?;

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut put, mut floor) = (0u64, 0u64);
    for run in 0..runs {
        // The anchor: B6's direct case, the writer up.
        nodes.stop(1).await?;
        let a = nodes.handle(0)?;
        write(&a, circle, edits, run).await?;
        let mut ea = a.subscribe();
        let t = Instant::now();
        nodes.start(1).await?;
        let b = nodes.handle(1)?;
        let mut eb = b.subscribe();
        let done = wait_in_sync((&a, &mut ea), (&b, &mut eb), circle).await?;
        theirs.push(done.duration_since(t));
        kept_at_steward(&a, circle).await?;
        kept_at_steward(&b, circle).await?;

        // Ours: the writer sleeps before the other wakes.
        nodes.stop(1).await?;
        let before = node_circle(&a, circle).await?.heads();
        let kept_before = steward.status().bytes;
        write(&a, circle, edits, run + 1_000).await?;
        kept_at_steward(&a, circle).await?;
        let doc = node_circle(&a, circle).await?;
        floor += doc.changes_since(&before).len() as u64;
        put += steward.status().bytes.saturating_sub(kept_before);
        let mut heads = doc.heads();
        heads.sort();
        nodes.stop(0).await?;
        let t = Instant::now();
        nodes.start(1).await?;
        let done = holds(&nodes.handle(1)?, circle, &heads).await?;
        ours.push(done.duration_since(t));
        nodes.start(0).await?;
        kept_at_steward(&nodes.handle(0)?, circle).await?;
        kept_at_steward(&nodes.handle(1)?, circle).await?;
    }
    nodes.shutdown().await?;
    steward.shutdown().await;
    if ours.is_empty() {
        return Err(anyhow!("no runs"));
    }
    let mut rows = vec![
        Row::new(
            "B8",
            format!("wake → in sync through the steward, {edits} edits, the writer asleep"),
        )
        .times(median(&ours), median(&theirs))
        .goal(Goal::AtMost(2.0))
        .note(format!(
            "median of {runs}; anchor: B6's direct case in the same run (the writer up)"
        )),
        Row::new(
            "B8",
            "bytes the steward keeps for those edits / the changes",
        )
        .values(
            (format!("{put} B"), put as f64),
            (format!("{floor} B"), floor as f64),
        )
        .goal(Goal::AtMost(1.5))
        .note("sealed items with their proofs, next to Automerge's own bytes for the same changes"),
    ];
    for ops in ctx.plan.histories.clone() {
        rows.extend(kept_for_history(ctx, ops).await?);
    }
    rows.extend(many_circles(ctx).await?);
    Ok(rows)
}

/// A steward process holding many small circles: its memory, and its CPU
/// while nobody asks anything. Anchor: a bare iroh endpoint with gossip,
/// idle, in a process of its own.
async fn many_circles(ctx: &mut Ctx) -> Result<Vec<Row>> {
    use roundtable_core::keys::EpochKey;
    use roundtable_core::steward::{LockerId, ShelfItem, ShelfKey, ShelfKind};
    use roundtable_core::wire::{self, StewardReply, StewardRequest};
    use roundtable_net::framing::{read_frame, write_frame};

    let circles = if ctx.plan.quick { 20 } else { 1_000 };
    let dir = ctx.scratch("b8-many")?;
    let child = crate::child::LiveChild::start(&["steward", &dir.to_string_lossy()])?;
    let line = child.info().to_owned();
    let ticket = roundtable_net::StewardTicket::parse(&line)?;
    let client = crate::setup::bare_endpoint().await?;
    let conn = client
        .connect(ticket.addr.clone(), roundtable_net::STEWARD_ALPN)
        .await?;
    let device = *client.id().as_bytes();
    let mut rng = rand::rng();
    for i in 0..circles {
        let circle = CircleId::from_bytes(rand::random());
        let key = ShelfKey::of(circle, &EpochKey::new(0, [1; 32], rand::random()));
        let locker = LockerId(rand::random());
        let (mut send, mut recv) = conn.open_bi().await?;
        let item = ShelfItem::Changes {
            changes: vec![7; 400],
            heads: Vec::new(),
        };
        for request in [
            StewardRequest::Open {
                locker: locker.0,
                shelf: key.shelf(),
                proof: key.proof(&ticket.id(), &locker, &device),
            },
            StewardRequest::Put {
                kind: ShelfKind::Changes as u8,
                bytes: key.seal(&locker, &item, &mut rng),
                supersede_below: None,
            },
        ] {
            write_frame(&mut send, &wire::encode(&request)).await?;
            let bytes = read_frame(&mut recv, 1 << 20)
                .await?
                .ok_or_else(|| anyhow!("the steward closed a stream"))?;
            if let StewardReply::Refused { reason } = wire::decode::<StewardReply>(&bytes)? {
                bail!("circle {i}: the steward refused: {reason}");
            }
        }
        let _ = send.finish();
    }
    conn.close(0u32.into(), b"done");
    client.close().await;
    let bare = crate::child::LiveChild::start(&["endpoint"])?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (ours_rss, bare_rss) = (
        crate::setup::rss(child.pid())?,
        crate::setup::rss(bare.pid())?,
    );
    let (before, bare_before) = (
        crate::setup::cpu_of(child.pid())?,
        crate::setup::cpu_of(bare.pid())?,
    );
    let t = Instant::now();
    tokio::time::sleep(ctx.plan.idle).await;
    let window = t.elapsed().as_secs_f64();
    let pct = (crate::setup::cpu_of(child.pid())? - before).as_secs_f64() / window * 100.0;
    let bare_pct = (crate::setup::cpu_of(bare.pid())? - bare_before).as_secs_f64() / window * 100.0;
    drop(bare);
    drop(child);
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
    Ok(vec![
        Row::new("B8", format!("steward RSS holding {circles} small circles"))
            .values((mb(ours_rss), ours_rss as f64 / 1e6), (mb(bare_rss), bare_rss as f64 / 1e6))
            .goal(Goal::ValueAtMost(100.0))
            .note("a steward process after each circle put one item; anchor: a bare iroh endpoint with gossip (goal: at most 100 MB)"),
        Row::new("B8", format!("steward idle CPU holding {circles} small circles"))
            .values((format!("{pct:.2}%"), pct), (format!("{bare_pct:.2}%"), bare_pct))
            .goal(Goal::ValueAtMost(0.5))
            .note(format!(
                "utime+stime over {window:.0} s with nobody connected, % of one core; anchor: a bare iroh endpoint with gossip"
            )),
    ])
}

/// What a steward keeps for a circle of `ops` operations, next to a sealed
/// `save()` of it: once a member brings it up to date, and after a run of
/// small edits (folded into a snapshot once it grows past twice the circle).
async fn kept_for_history(ctx: &mut Ctx, ops: u64) -> Result<Vec<Row>> {
    let source = ctx.history(ops)?.dir.clone();
    let circle = ctx.history(ops)?.id;
    let dir = ctx.scratch(&format!("b8-{ops}"))?;
    let home = dir.join("member");
    copy_dir(&source, &home)?;
    let steward = start_steward(&dir).await?;
    let port = crate::setup::free_port()?;
    let node = bounded("starting a node", Node::spawn(node_config(&home, port))).await??;
    let h = node.handle();
    h.perform(circle, add_steward_op(&steward), Timestamp::now())
        .await?;
    kept_at_steward(&h, circle).await?;
    let save = node_circle(&h, circle).await?.save().len() as u64;
    let first = steward.status().bytes;
    let more = if ctx.plan.quick { 20 } else { 2_000 };
    for i in 0..more {
        h.perform(
            circle,
            Op::Moment {
                text: format!("a small moment, number {i}"),
            },
            Timestamp::now(),
        )
        .await?;
    }
    kept_at_steward(&h, circle).await?;
    let save_after = node_circle(&h, circle).await?.save().len() as u64;
    let after = steward.status().bytes;
    bounded("stopping a node", node.shutdown()).await??;
    steward.shutdown().await;
    let kb = |b: u64| format!("{:.0} KB", b as f64 / 1e3);
    Ok(vec![
        Row::new("B8", format!("steward keeps / save(), {ops} ops"))
            .values((kb(first), first as f64), (kb(save), save as f64))
            .goal(Goal::AtMost(2.0))
            .note("a member's first visit: one sealed snapshot"),
        Row::new(
            "B8",
            format!("steward keeps / save(), {ops} ops + {more} edits"),
        )
        .values(
            (kb(after), after as f64),
            (kb(save_after), save_after as f64),
        )
        .goal(Goal::AtMost(2.0))
        .note("each edit put as it is made; the shelf folded once past twice the circle"),
    ])
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type()?.is_dir() {
            copy_dir(&src, &dst)?;
        } else if e.file_name() != "lock" && e.file_name() != "control.sock" {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}
