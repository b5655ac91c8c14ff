//! B2 catch-up: two nodes that synced, then edited apart while stopped;
//! both start and are timed until they hold the same heads. Next to
//! Automerge's stock sync loop over a bare iroh connection on loopback, and
//! the floor: the changes each side lacks, bundled.
//!
//! Roundtable's bytes and rounds are those of its sync protocol (the
//! frames of `roundtable-node`'s session: Hello, Ready, lockstep rounds of
//! signed heads and an Automerge sync message, and the circle keys; the
//! opener's first round goes out with its Hello and each side's keys right
//! behind its last round, so only the rounds wait for the peer),
//! replayed in this process with the same core calls the node's actor makes,
//! from the same documents, head books and sync states the nodes start
//! with. Gossip's own traffic and QUIC's framing are not counted, on either
//! side.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use automerge::{Automerge, ChangeHash};
use roundtable_core::wire::{self, SyncFrame};
use roundtable_core::{Circle, CircleId, HeadBook, Keyring, PeerSync, SignedHead};
use roundtable_store::Home;

use crate::Ctx;
use crate::setup::{
    Nodes, Regime, Traffic, bare_endpoint, offline_edits, state_after, stock_client, stock_server,
    wait_in_sync,
};
use crate::table::{Goal, Row, bytes};

/// What one catch-up measured.
pub(crate) struct Outcome {
    /// The second node's start → same heads on both.
    pub(crate) ours: Duration,
    /// Roundtable's protocol: A's side (A opened the session).
    pub(crate) ours_traffic: Traffic,
    /// The stock loop: from dialling to in sync.
    pub(crate) stock: Duration,
    /// The stock loop: the dialling side's traffic (B dials A).
    pub(crate) stock_traffic: Traffic,
    /// The floor: bytes of the changes B lacks (A → B) and A lacks
    /// (B → A), as `save_after` gives them.
    pub(crate) floor: (u64, u64),
    /// The same bundled in Automerge's document form.
    pub(crate) compact: (u64, u64),
    /// A's document when both started.
    pub(crate) a_doc: Automerge,
}

pub(crate) async fn run(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, regime) in ctx.plan.b2.clone().into_iter().enumerate() {
        let name = regime.name();
        eprintln!("  {name} ...");
        let dir = ctx.scratch(&format!("b2-{i}"))?;
        let o = catch_up(&dir, regime).await?;
        let (ta, tb) = (o.ours_traffic.sent, o.ours_traffic.received);
        let (sa, sb) = (o.stock_traffic.received, o.stock_traffic.sent);
        let floor = o.floor.0 + o.floor.1;
        rows.push(
            Row::new("B2", format!("catch-up {name}: time"))
                .times(o.ours, o.stock)
                .goal(Goal::AtMost(2.0))
                .note("ours: the second node's start (open + bind) → same heads on both; anchor: Automerge's stock sync loop on a bare iroh connection, dial → in sync"),
        );
        rows.push(
            Row::new("B2", format!("catch-up {name}: bytes vs floor"))
                .bytes(ta + tb, floor)
                .goal(Goal::AtMost(1.5))
                .note(format!(
                    "ours A→B {}, B→A {}; stock sync A→B {}, B→A {} ({:.2}× floor); floor (save_after of what each lacks) A→B {}, B→A {}; the same in Automerge's document form {}",
                    bytes(ta),
                    bytes(tb),
                    bytes(sa),
                    bytes(sb),
                    (sa + sb) as f64 / floor.max(1) as f64,
                    bytes(o.floor.0),
                    bytes(o.floor.1),
                    bytes(o.compact.0 + o.compact.1),
                )),
        );
        rows.push(
            Row::new("B2", format!("catch-up {name}: round trips"))
                .counts(o.ours_traffic.rounds, o.stock_traffic.rounds)
                .goal(Goal::ValueAtMost(3.0))
                .note(format!(
                    "ours: {} sync rounds (the Hello rides with the first, the keys right behind the last, waited for by nobody); anchor: stock sync rounds",
                    o.ours_traffic.rounds
                )),
        );
    }
    Ok(rows)
}

/// Two nodes that synced, then A makes `on_a` edits and B `on_b` while
/// both are stopped; both start.
pub(crate) async fn catch_up(dir: &std::path::Path, r: Regime) -> Result<Outcome> {
    let mut nodes = Nodes::spawn(dir, 2).await?;
    let circle = nodes.circle;
    nodes.stop(0).await?;
    nodes.stop(1).await?;
    let (ha, hb) = (nodes.homes[0].clone(), nodes.homes[1].clone());
    if r.shared > 0 {
        offline_edits(&ha, circle, r.shared, 1)?;
        let a = Home::new(&ha).read_circle(circle)?;
        let home_b = Home::new(&hb);
        let lock = home_b.lock("bench")?;
        let mut store = home_b.open_circle(&lock, circle)?;
        let missing = a.changes_since(&store.circle().heads());
        store.apply(&missing)?;
    }
    // They sync once, so each keeps what it shared with the other.
    nodes.start(0).await?;
    let mut ea = nodes.handle(0)?.subscribe();
    nodes.start(1).await?;
    let mut eb = nodes.handle(1)?.subscribe();
    synced_once(&mut ea, &mut eb).await?;
    nodes.stop(0).await?;
    nodes.stop(1).await?;
    let shared = Home::new(&ha).read_circle(circle)?.heads();

    if r.on_a > 0 {
        offline_edits(&ha, circle, r.on_a, 2)?;
    }
    if r.on_b > 0 {
        offline_edits(&hb, circle, r.on_b, 3)?;
    }
    let a = Home::new(&ha).read_circle(circle)?;
    let b = Home::new(&hb).read_circle(circle)?;
    // The floor: the changes each side lacks, as save_after() gives them;
    // and, for reference, bundled in Automerge's compact document form
    // (save() of the copy, less save() of it at the shared heads).
    let floor = (
        a.changes_since(&shared).len() as u64,
        b.changes_since(&shared).len() as u64,
    );
    let bundled = |c: &Circle| -> Result<u64> {
        let at = c.doc().fork_at(&shared)?;
        Ok((c.save().len() as u64).saturating_sub(at.save().len() as u64))
    };
    let compact = (bundled(&a)?, bundled(&b)?);
    let ours_traffic = replay(&ha, &hb, circle, &shared)?;

    nodes.start(0).await?;
    let mut ea = nodes.handle(0)?.subscribe();
    // The second node starts syncing as soon as it is up, so the clock
    // starts before it does: its start is part of the time.
    let t = Instant::now();
    nodes.start(1).await?;
    let mut eb = nodes.handle(1)?.subscribe();
    let (na, nb) = (nodes.handle(0)?, nodes.handle(1)?);
    let done = wait_in_sync((&na, &mut ea), (&nb, &mut eb), circle).await?;
    let ours = done.duration_since(t);
    nodes.shutdown().await?;

    let (a_doc, b_doc) = (a.doc().clone(), b.doc().clone());
    let mut server = stock_server(a_doc.clone(), state_after(&shared)).await?;
    let client = bare_endpoint().await?;
    let mut doc = b_doc.clone();
    let mut state = state_after(&shared);
    let (stock, stock_traffic) = stock_client(&client, &mut server, &mut doc, &mut state).await?;
    if doc.get_heads() != server.doc.lock().await.0.get_heads() {
        return Err(anyhow!("the stock sync loop did not converge"));
    }
    client.close().await;
    server.router.shutdown().await?;
    Ok(Outcome {
        ours,
        ours_traffic,
        stock,
        stock_traffic,
        floor,
        compact,
        a_doc,
    })
}

/// Waits until a sync session has ended well on both nodes.
async fn synced_once(
    a: &mut tokio::sync::broadcast::Receiver<roundtable_node::Event>,
    b: &mut tokio::sync::broadcast::Receiver<roundtable_node::Event>,
) -> Result<()> {
    async fn wait(rx: &mut tokio::sync::broadcast::Receiver<roundtable_node::Event>) -> Result<()> {
        loop {
            match rx.recv().await {
                Ok(roundtable_node::Event::Synced { ok: true, .. }) => return Ok(()),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => return Err(anyhow!("{e}")),
            }
        }
    }
    crate::setup::bounded("a first sync", async { tokio::try_join!(wait(a), wait(b)) }).await??;
    Ok(())
}

/// Roundtable's sync session between the two homes as they are on disk,
/// A opening: every frame the node's session sends, with the core calls
/// its actor makes. Returns A's side.
fn replay(
    ha: &std::path::Path,
    hb: &std::path::Path,
    circle: CircleId,
    shared: &[ChangeHash],
) -> Result<Traffic> {
    struct Side {
        circle: Circle,
        book: HeadBook,
        peer: PeerSync,
        key: roundtable_core::DeviceKey,
        keys: Keyring,
    }
    let side = |dir: &std::path::Path| -> Result<Side> {
        let home = Home::new(dir);
        let circle_doc = home.read_circle(circle)?;
        let mut book = home
            .read_record(roundtable_store::NodeRecord::HeadBook(circle))?
            .map(|b| HeadBook::restore(&b))
            .unwrap_or_default();
        book.know_devices(&circle_doc.membership().certified);
        let me = home.identity()?.ok_or_else(|| anyhow!("no identity"))?;
        let mut peer = PeerSync::restore(&state_after(shared).encode());
        peer.new_session();
        Ok(Side {
            circle: circle_doc,
            book,
            peer,
            key: me.device,
            keys: home
                .circle_keys(circle)?
                .ok_or_else(|| anyhow!("no keys"))?,
        })
    };
    let (mut a, mut b) = (side(ha)?, side(hb)?);
    let size = |f: &SyncFrame| 4 + wire::encode(f).len() as u64;
    let mut t = Traffic {
        sent: size(&SyncFrame::Hello {
            circle: *circle.as_bytes(),
        }),
        received: size(&SyncFrame::Ready),
        rounds: 0,
    };
    let generate = |s: &mut Side, first: bool| {
        let mut heads = Vec::new();
        if first {
            heads = s.book.all();
            heads.extend(SignedHead::sign(&s.circle, &s.key));
        }
        let msg = s.circle.sync_generate(&mut s.peer);
        SyncFrame::Round { heads, msg }
    };
    let receive = |s: &mut Side, f: &SyncFrame| -> Result<()> {
        if let SyncFrame::Round { heads, msg } = f {
            s.book.learn(circle, heads);
            if let Some(m) = msg {
                s.circle
                    .sync_receive_verified(&mut s.peer, m, &mut s.book)?;
            }
        }
        Ok(())
    };
    let said = |f: &SyncFrame| matches!(f, SyncFrame::Round { msg: Some(_), .. });
    for round in 0..1000 {
        let first = round == 0;
        let fa = generate(&mut a, first);
        t.sent += size(&fa);
        receive(&mut b, &fa)?;
        let fb = generate(&mut b, first);
        t.received += size(&fb);
        receive(&mut a, &fb)?;
        t.rounds += 1;
        if !said(&fa) && !said(&fb) {
            break;
        }
    }
    if a.circle.heads() != b.circle.heads() {
        return Err(anyhow!("the replayed session did not converge"));
    }
    t.sent += size(&SyncFrame::Keys(a.keys.offer()));
    t.received += size(&SyncFrame::Keys(b.keys.offer()));
    Ok(t)
}
