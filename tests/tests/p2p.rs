//! Real nodes in one process on loopback: live gossip, catch-up sync,
//! partitions, big changes, and an outsider who gets nothing.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use roundtable_core::{Circle, Mood, Op, Timestamp};
use roundtable_tests::{Cluster, Rogue, bounded, notes};

fn checkin(note: &str) -> Op {
    Op::Checkin {
        mood: Mood::Okay,
        note: note.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_on_one_of_five_reaches_all() {
    let cluster = Cluster::spawn(5).await;
    cluster
        .converge(|v| v["members"].as_object().unwrap().len() == 5)
        .await;
    cluster.perform(3, checkin("hello from three")).await;
    let json = cluster.converge(|v| notes(v) == ["hello from three"]).await;
    assert!(json.contains("Friend 3"));
    cluster.shutdown().await;
}

/// Every device joined through one inviter, most of them before the others
/// knew they were in or where they were. Gossip left to itself keeps them
/// hanging on the inviter (five neighbours at most) or on nobody; each
/// device finds neighbours of its own, so the live path goes on without the
/// inviter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_that_joined_through_one_inviter_find_neighbours_of_their_own() {
    let n = 7;
    let mut cluster = Cluster::spawn(n).await;
    let inviter = cluster.handle(0).identity().await.unwrap().0;
    for i in 1..n {
        cluster
            .status_until(i, |s| s.circles[0].connected.iter().any(|d| *d != inviter))
            .await;
    }
    cluster.stop(0).await;
    let note = "without Maya";
    cluster.perform(1, checkin(note)).await;
    let others: Vec<usize> = (1..n).collect();
    cluster
        .converge_among(&others, |v| notes(v).contains(&note.to_owned()))
        .await;
    cluster.shutdown().await;
}

/// A change that reaches a node while it is in a sync session goes out in
/// that session with the signed head that proves it: the heads a session
/// sends are not only those known when it began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_arrives_during_a_session_goes_out_with_its_proof() {
    let mut cluster = Cluster::spawn(3).await;
    cluster
        .converge(|v| v["members"].as_object().unwrap().len() == 3)
        .await;
    cluster.stop(2).await;
    // Node 2's device, syncing by hand so it can take its time.
    let mut slow = Rogue::take_over(&cluster, 2).await;
    let zero = cluster.handle(0).addr().await.unwrap().id;
    let note = "while you were syncing";
    let applied = slow
        .sync_pausing(zero, async {
            // Node 1 edits; node 0 has it by gossip before the session goes on.
            cluster.perform(1, checkin(note)).await;
            cluster
                .converge_among(&[0], |v| notes(v).contains(&note.to_owned()))
                .await;
        })
        .await
        .unwrap();
    assert!(
        applied.rejected.is_empty(),
        "node 0 sent changes without their proof: {:?}",
        applied.rejected
    );
    let json: serde_json::Value = serde_json::from_str(&slow.circle.canonical_json()).unwrap();
    assert!(notes(&json).contains(&note.to_owned()), "{json}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_was_down_catches_up_on_a_thousand_edits() {
    let mut cluster = Cluster::spawn(3).await;
    cluster
        .converge(|v| v["members"].as_object().unwrap().len() == 3)
        .await;
    cluster.stop(2).await;
    for i in 0..1000 {
        cluster.perform(i % 2, checkin(&format!("edit {i}"))).await;
    }
    cluster.restart(2).await;
    let json = cluster
        .converge(|v| v["checkins"].as_object().unwrap().len() == 1000)
        .await;
    assert_eq!(json, cluster.json(2).await);
    // The returning node kept its sync state: a second restart has nothing to fetch.
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_that_edit_the_same_records_heal_to_one_circle() {
    let mut cluster = Cluster::spawn(4).await;
    let base = cluster
        .converge(|v| v["members"].as_object().unwrap().len() == 4)
        .await;
    let base: serde_json::Value = serde_json::from_str(&base).unwrap();
    let members: Vec<_> = base["members"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.parse().unwrap())
        .collect();
    let starts = "2026-12-01T19:00:00+00:00[Europe/London]".to_owned();
    cluster
        .perform(
            0,
            Op::Gathering {
                title: "Soup night".into(),
                starts,
                place: "Maya's".into(),
                hosts: vec![],
                one_of_each: false,
            },
        )
        .await;
    let v = cluster
        .converge(|v| v["gatherings"].as_object().unwrap().len() == 1)
        .await;
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    let g = v["gatherings"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .parse()
        .unwrap();

    // Nodes 2 and 3 go off on their own, and both sides write the very same
    // records: who came (one key per member) and the same RSVP answers.
    cluster.stop(2).await;
    cluster.stop(3).await;
    let came = Op::Came {
        gathering: g,
        who: members.clone(),
    };
    cluster.perform(0, came.clone()).await;
    cluster.perform(1, checkin("side A")).await;
    cluster.perform_offline(2, came.clone());
    cluster.perform_offline(3, checkin("side B"));
    cluster.perform_offline(
        2,
        Op::Rsvp {
            gathering: g,
            answer: roundtable_core::Answer::Maybe,
            note: String::new(),
        },
    );
    cluster
        .perform(
            1,
            Op::Rsvp {
                gathering: g,
                answer: roundtable_core::Answer::Yes,
                note: "running late".into(),
            },
        )
        .await;

    cluster.restart(2).await;
    cluster.restart(3).await;
    let json = cluster.converge(|v| notes(v) == ["side A", "side B"]).await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["gatherings"][g.to_string()]["came"]
            .as_object()
            .unwrap()
            .len(),
        4
    );
    for i in 0..cluster.len() {
        assert_eq!(cluster.json(i).await, json, "node {i}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_bigger_than_the_gossip_cap_still_arrives_everywhere() {
    let cluster = Cluster::spawn(3).await;
    cluster
        .converge(|v| v["members"].as_object().unwrap().len() == 3)
        .await;
    let story: String = (0..15_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    assert!(story.len() > roundtable_net::GOSSIP_MAX_MESSAGE);
    cluster
        .perform(
            1,
            Op::Profile {
                name: None,
                pronouns: None,
                remember: None,
                story: Some(story.clone()),
            },
        )
        .await;
    cluster
        .converge(|v| {
            v["members"]
                .as_object()
                .unwrap()
                .values()
                .any(|m| m["story"] == story.as_str())
        })
        .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsider_with_topic_and_address_gets_no_plaintext_and_no_write() {
    use roundtable_core::keys;
    use roundtable_core::wire::Body;
    use roundtable_net::{Admitted, GossipEvent, Net, NetConfig, SYNC_ALPN, topic_for};

    let cluster = Cluster::spawn(2).await;
    cluster
        .converge(|v| v["members"].as_object().unwrap().len() == 2)
        .await;
    let before = cluster.json(0).await;

    // The outsider knows the circle's key (so the topic) and member 0's address.
    let home = roundtable_store::Home::new(cluster.home(0));
    let ring = home.circle_keys(cluster.circle).unwrap().unwrap();
    let secret = *ring.active().secret();
    let member_addr = cluster.handle(0).addr().await.unwrap();
    let (tx, _rx) = tokio::sync::mpsc::channel(4);
    // (Its own side lets it dial the member; the member's side must refuse.)
    let lets_out = Admitted::default();
    lets_out.set([member_addr.id]);
    let outsider = Net::bind([99; 32], &NetConfig::loopback(), lets_out, tx)
        .await
        .unwrap();
    outsider.dialer().add_addr(member_addr.clone());
    let topic = topic_for(&secret, cluster.circle.as_bytes());
    let (sender, mut receiver) = outsider
        .gossip()
        .subscribe(topic, vec![member_addr.id])
        .await
        .unwrap()
        .split();

    // Its sync connection is refused at the handshake.
    let refused = outsider
        .dialer()
        .connect(member_addr.clone(), SYNC_ALPN)
        .await;
    if let Ok(conn) = refused {
        let streams = tokio::time::timeout(Duration::from_secs(5), conn.open_bi()).await;
        let stream_ok = matches!(streams, Ok(Ok(_)));
        let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
        assert!(
            closed.is_ok() || !stream_ok,
            "an outsider's connection stays closed"
        );
    }

    // It forges a check-in and gossips it.
    let doc = cluster.handle(0).doc(cluster.circle).await.unwrap();
    let mut copy = Circle::load(&doc).unwrap();
    copy.set_device(roundtable_core::DeviceKey::from_seed(&[99; 32]).id());
    let heads = copy.heads();
    let member = copy.member_ids()[0];
    copy.checkin(
        member,
        Mood::Thriving,
        "forged",
        Timestamp::now(),
        &mut rand::rng(),
    )
    .unwrap();
    let outsider_key = roundtable_core::DeviceKey::from_seed(&[99; 32]);
    let body = Body::Changes {
        changes: copy.changes_since(&heads),
        head: roundtable_core::SignedHead::sign(&copy, &outsider_key).unwrap(),
    };
    let sealed = keys::seal(
        cluster.circle,
        &ring,
        &outsider_key,
        &body,
        &mut rand::rng(),
    )
    .unwrap();
    let _ = sender.broadcast(sealed.into()).await;
    // Members keep editing; the outsider hears none of it.
    cluster.perform(1, checkin("members only")).await;
    let heard = tokio::time::timeout(Duration::from_secs(3), async {
        use n0_future::StreamExt;
        while let Some(Ok(ev)) = receiver.next().await {
            if let GossipEvent::Received(_) = ev {
                return true;
            }
        }
        false
    })
    .await;
    assert!(!matches!(heard, Ok(true)), "the outsider received gossip");
    let json = cluster.converge(|v| notes(v) == ["members only"]).await;
    assert!(!json.contains("forged"), "a forged edit got in");
    assert_ne!(before, json);
    outsider.shutdown().await;
    bounded("shutdown", cluster.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_adds_another_device_of_the_same_member() {
    use roundtable_node::{Node, NodeConfig};

    let cluster = Cluster::spawn(2).await;
    let (maya_device, maya) = cluster.handle(0).identity().await.unwrap();
    let (laptop, _laptop_home, ticket) = cluster.pair(0).await;
    let (laptop_device, laptop_member) = laptop.handle().identity().await.unwrap();
    assert_eq!(
        laptop_member, maya,
        "the paired device speaks for the same member"
    );
    assert_ne!(laptop_device, maya_device);
    // The laptop edits as Maya, and everyone sees both of her devices.
    laptop
        .handle()
        .perform(cluster.circle, checkin("from my laptop"), Timestamp::now())
        .await
        .unwrap();
    let json = cluster.converge(|v| notes(v) == ["from my laptop"]).await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let devices = v["members"][maya.to_string()]["devices"]
        .as_object()
        .unwrap();
    assert!(
        devices.contains_key(&laptop_device.to_string()),
        "{devices:?}"
    );
    assert_eq!(devices.len(), 2);
    // A device ticket cannot be used by someone else's device.
    let stranger_home = tempfile::tempdir().unwrap();
    let stranger = bounded(
        "start",
        Node::spawn(NodeConfig::loopback(stranger_home.path())),
    )
    .await
    .unwrap();
    let err = stranger.handle().join(&ticket, None).await.unwrap_err();
    assert!(
        err.to_string().contains("used up") || err.to_string().contains("member who made it"),
        "{err}"
    );
    laptop.shutdown().await.unwrap();
    stranger.shutdown().await.unwrap();
    cluster.shutdown().await;
}
