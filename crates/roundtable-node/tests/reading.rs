//! A circle's reading is kept by the node until the circle changes.

use std::sync::Arc;
use std::time::Duration;

use roundtable_core::{Mood, Op, Timestamp};
use roundtable_node::{Node, NodeConfig};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_reading_is_read_again_only_when_the_circle_changed() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let node = timeout(LIMIT, Node::spawn(NodeConfig::loopback(dir.path())))
        .await
        .expect("in time")
        .expect("starts");
    let h = node.handle();
    let c = h
        .create_circle("Supper", "", "Maya", Timestamp::now())
        .await
        .expect("made");
    let first = h.read(c).await.expect("reads");
    let again = h.read(c).await.expect("reads");
    assert!(
        Arc::ptr_eq(&first.view, &again.view),
        "read twice though nothing changed"
    );
    assert!(
        first
            .membership
            .is_member(first.view.circle.created_by.expect("a founder"))
    );
    h.perform(
        c,
        Op::Checkin {
            mood: Mood::Okay,
            note: "hello".into(),
        },
        Timestamp::now(),
    )
    .await
    .expect("performs");
    let after = h.read(c).await.expect("reads");
    assert!(!Arc::ptr_eq(&first.view, &after.view));
    assert_eq!(after.view.checkins.len(), 1);
    assert!(after.view.checkins.values().any(|x| x.note == "hello"));
    timeout(LIMIT, node.shutdown())
        .await
        .expect("in time")
        .expect("stops");
}
