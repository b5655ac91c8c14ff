//! How a node ends: by `shutdown`, or by being dropped, and what it tells
//! those still following it.

use std::time::Duration;

use roundtable_core::Timestamp;
use roundtable_node::control::{ControlClient, socket_path};
use roundtable_node::{Node, NodeConfig, NodeError};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);

async fn start(home: &std::path::Path) -> Node {
    timeout(LIMIT, Node::spawn(NodeConfig::loopback(home)))
        .await
        .expect("starts in time")
        .expect("starts")
}

/// Dropping the node without `shutdown` stops it: its handles say so, the
/// control socket goes, and the home's lock is free for the next node.
#[tokio::test]
async fn dropping_the_node_stops_it_and_frees_the_home() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let node = start(dir.path()).await;
    let handle = node.handle();
    let circle = handle
        .create_circle("Supper", "", "Maya", Timestamp::now())
        .await
        .expect("made");
    drop(node);
    timeout(LIMIT, async {
        while !matches!(handle.status().await, Err(NodeError::Closed)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the handle says the node stopped");
    assert!(
        !socket_path(dir.path()).exists(),
        "the control socket outlived the node"
    );
    // The lock is released once the stopped node is gone.
    let again = timeout(LIMIT, async {
        loop {
            match Node::spawn(NodeConfig::loopback(dir.path())).await {
                Ok(node) => return node,
                Err(NodeError::Store(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => panic!("the second node failed: {e}"),
            }
        }
    })
    .await
    .expect("the home is free again");
    let circles = again.handle().circles().await.expect("answers");
    assert_eq!(
        circles.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [circle]
    );
    timeout(LIMIT, again.shutdown())
        .await
        .expect("in time")
        .expect("stops");
}

/// Someone following the node's events over the control socket (`up`'s
/// followers, `--follow`) sees the stream end when the node stops, rather
/// than waiting on a node that is gone.
#[tokio::test]
async fn followers_are_told_when_the_node_stops() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let node = start(dir.path()).await;
    let client = ControlClient::connect(dir.path()).expect("the control socket answers");
    let (heard, hearing) = std::sync::mpsc::channel();
    let follower = tokio::task::spawn_blocking(move || {
        client.follow(|_| {
            let _ = heard.send(());
            true
        })
    });
    // Edit until the follower hears about it, so it surely follows.
    let handle = node.handle();
    timeout(LIMIT, async {
        loop {
            handle
                .create_circle("Supper", "", "Maya", Timestamp::now())
                .await
                .expect("made");
            tokio::time::sleep(Duration::from_millis(50)).await;
            if hearing.try_recv().is_ok() {
                break;
            }
        }
    })
    .await
    .expect("the follower hears events");
    timeout(LIMIT, node.shutdown())
        .await
        .expect("in time")
        .expect("stops");
    timeout(LIMIT, follower)
        .await
        .expect("the follower's stream ended")
        .expect("the follower did not panic")
        .expect("the stream ended cleanly");
}

/// A running node folds a circle's grown log into its snapshot between
/// messages, not on the path of the write that made it due.
#[tokio::test]
async fn a_running_node_folds_a_grown_log_in() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let node = start(dir.path()).await;
    let handle = node.handle();
    let circle = handle
        .create_circle("Supper", "", "Maya", Timestamp::now())
        .await
        .expect("made");
    let log = dir
        .path()
        .join("circles")
        .join(circle.to_string())
        .join("log");
    let size = || std::fs::metadata(&log).map_or(0, |m| m.len());
    let mut most = 0;
    for i in 0..600 {
        let op = roundtable_core::Op::Checkin {
            mood: roundtable_core::Mood::Okay,
            note: format!("day {i}: a few words about how it went"),
        };
        timeout(LIMIT, handle.perform(circle, op, Timestamp::now()))
            .await
            .expect("in time")
            .expect("performs");
        most = most.max(size());
    }
    assert!(most > 64 << 10, "the log never grew: {most} B");
    timeout(LIMIT, async {
        while size() > 64 << 10 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the log was folded into the snapshot");
    timeout(LIMIT, node.shutdown())
        .await
        .expect("in time")
        .expect("stops");
}

/// Where a peer was reached is kept for the next run: a node that synced
/// with another has it in its address book once it stops, without having
/// rewritten the book after every session.
#[tokio::test]
async fn where_a_peer_was_reached_is_kept_when_the_node_stops() {
    let (a_dir, b_dir) = (
        tempfile::tempdir().expect("a temp dir"),
        tempfile::tempdir().expect("a temp dir"),
    );
    let (a, b) = (start(a_dir.path()).await, start(b_dir.path()).await);
    let circle = a
        .handle()
        .create_circle("Supper", "", "Maya", Timestamp::now())
        .await
        .expect("made");
    let expires = Timestamp::from_millis(Timestamp::now().as_millis() + 3_600_000);
    let ticket = a
        .handle()
        .invite(
            circle,
            roundtable_core::InviteKind::Member,
            expires,
            1,
            Timestamp::now(),
        )
        .await
        .expect("a ticket");
    timeout(LIMIT, b.handle().join(&ticket, Some("Sam")))
        .await
        .expect("in time")
        .expect("joins");
    let (b_device, _) = b.handle().identity().await.expect("answers");
    // A session between the two goes through.
    timeout(LIMIT, async {
        loop {
            let status = a.handle().status().await.expect("answers");
            if status.circles[0]
                .devices
                .iter()
                .any(|d| d.device == b_device && d.last_synced.is_some())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a session went through");
    timeout(LIMIT, a.shutdown())
        .await
        .expect("stops in time")
        .expect("stops");
    let book = std::fs::read(a_dir.path().join("addresses.json")).expect("an address book");
    let book: Vec<roundtable_net::EndpointAddr> = serde_json::from_slice(&book).expect("reads");
    assert!(
        book.iter().any(|a| a.id.as_bytes() == b_device.as_bytes()),
        "{book:?}"
    );
    timeout(LIMIT, b.shutdown())
        .await
        .expect("stops in time")
        .expect("stops");
}
