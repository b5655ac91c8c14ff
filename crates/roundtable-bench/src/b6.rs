//! B6 start → in sync: a node that was down while its peer made a few edits
//! starts, and is timed until both hold the same heads. Anchor: binding a
//! bare iroh endpoint, connecting and running Automerge's stock sync loop
//! with the same documents.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use roundtable_core::{Mood, Op, Timestamp};
use roundtable_store::Home;

use crate::Ctx;
use crate::setup::{
    Nodes, Traffic, bare_endpoint, median, node_circle, state_after, stock_client, stock_server,
    wait_in_sync,
};
use crate::table::{Goal, Row};

pub(crate) async fn run(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let dir = ctx.scratch("b6")?;
    let (runs, edits) = (ctx.plan.b6_runs, ctx.plan.b6_edits);
    let mut nodes = Nodes::spawn(&dir, 2).await?;
    let circle = nodes.circle;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut rounds = Traffic::default();
    for _ in 0..runs {
        nodes.stop(1).await?;
        let a = nodes.handle(0)?;
        for i in 0..edits {
            a.perform(
                circle,
                Op::Checkin {
                    mood: Mood::Thriving,
                    note: format!("soup night {i} was lovely"),
                },
                Timestamp::now(),
            )
            .await?;
        }
        let a_doc = node_circle(&a, circle).await?.doc().clone();
        let b_doc = Home::new(&nodes.homes[1])
            .read_circle(circle)?
            .doc()
            .clone();

        // The anchor first, from the same documents.
        let shared = b_doc.get_heads();
        let mut server = stock_server(a_doc, state_after(&shared)).await?;
        let t = Instant::now();
        let client = bare_endpoint().await?;
        let mut doc = b_doc;
        let mut state = state_after(&shared);
        let (_, traffic) = stock_client(&client, &mut server, &mut doc, &mut state).await?;
        theirs.push(t.elapsed());
        rounds = traffic;
        client.close().await;
        server.router.shutdown().await?;

        let mut ea = a.subscribe();
        let t = Instant::now();
        nodes.start(1).await?;
        let b = nodes.handle(1)?;
        let mut eb = b.subscribe();
        let done = wait_in_sync((&a, &mut ea), (&b, &mut eb), circle).await?;
        ours.push(done.duration_since(t));
    }
    nodes.shutdown().await?;
    if ours.is_empty() {
        return Err(anyhow!("no runs"));
    }
    Ok(vec![
        Row::new("B6", format!("start → in sync, {edits} edits behind"))
            .times(median(&ours), median(&theirs))
            .goal(Goal::AtMost(2.0))
            .note(format!(
                "median of {runs}; ours: Node::spawn → same heads as the peer; anchor: bind a bare endpoint + connect + stock sync ({} rounds); ours ranged {}–{}",
                rounds.rounds,
                crate::table::ms(ours.iter().min().copied().unwrap_or(Duration::ZERO)),
                crate::table::ms(ours.iter().max().copied().unwrap_or(Duration::ZERO)),
            )),
    ])
}
