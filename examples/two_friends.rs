//! Two friends, two nodes, one process: Maya starts a circle and invites Sam;
//! Sam joins by ticket; they drift apart (Sam's node goes down), both write,
//! and when Sam is back their circles merge.
//!
//! Run it with `cargo run -p roundtable-examples --example two_friends`.
//! Everything stays on this machine's loopback; no server, no internet.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use roundtable_core::{Circle, InviteKind, Mood, Op, Timestamp};
use roundtable_node::{Node, NodeConfig, NodeHandle};

async fn show(node: &NodeHandle, circle: roundtable_core::CircleId) -> Result<Circle> {
    Ok(Circle::load(&node.doc(circle).await?)?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let (maya_home, sam_home) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let maya = Node::spawn(NodeConfig::loopback(maya_home.path())).await?;
    let sam = Node::spawn(NodeConfig::loopback(sam_home.path())).await?;

    // Maya starts the circle and invites Sam with a one-line ticket.
    let now = Timestamp::now();
    let circle = maya
        .handle()
        .create_circle("Tuesday Supper", "soup and company", "Maya", now)
        .await?;
    let ticket = maya
        .handle()
        .invite(
            circle,
            InviteKind::Member,
            now.plus_millis(3_600_000),
            1,
            now,
        )
        .await?;
    println!("Maya's ticket for Sam:\n  {}\n", ticket.to_line());
    sam.handle().join(&ticket, Some("Sam")).await?;
    println!("Sam joined.");

    // Sam's laptop goes to sleep; both keep writing.
    sam.shutdown().await?;
    let checkin = |mood, note: &str| Op::Checkin {
        mood,
        note: note.into(),
    };
    maya.handle()
        .perform(
            circle,
            checkin(Mood::Heavy, "long week, could use soup"),
            Timestamp::now(),
        )
        .await?;
    {
        // Offline, Sam writes straight into his own copy, as the CLI does.
        let home = roundtable_store::Home::new(sam_home.path());
        let lock = home.lock("two_friends example")?;
        let me = home.identity()?.context("Sam has an identity")?;
        let mut store = home.open_circle(&lock, circle)?;
        store.edit(|c| -> Result<_, roundtable_store::StoreError> {
            Ok(c.perform(
                &checkin(Mood::Okay, "on the train, thinking of you all"),
                me.member.id(),
                Timestamp::now(),
                &mut rand::rng(),
            )?)
        })?;
    }

    // Sam is back: his node catches up with Maya's, and hers with his.
    let sam = Node::spawn(NodeConfig::loopback(sam_home.path())).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (a, b) = (
            show(&maya.handle(), circle).await?,
            show(&sam.handle(), circle).await?,
        );
        if a.canonical_json() == b.canonical_json() && a.view().checkins.len() == 2 {
            println!("Merged. Both devices now hold:\n");
            print!(
                "{}",
                roundtable_core::export::markdown(&a.view(), &jiff::tz::TimeZone::UTC)
            );
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the two nodes did not converge");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sam.shutdown().await?;
    maya.shutdown().await?;
    Ok(())
}
