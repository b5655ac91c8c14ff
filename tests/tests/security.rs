//! The promises of `docs/THREAT_MODEL.md` that need real nodes: forged
//! authorship, removal by consent, device revocation, and keys reaching a
//! device that was away during a rotation. Each test is named for the
//! promise it checks.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use roundtable_core::keys;
use roundtable_core::wire::Body;
use roundtable_core::{Circle, EntityId, Mood, Op, SignedHead, Timestamp};
use roundtable_net::{Admitted, Net, NetConfig, topic_for};
use roundtable_tests::{Cluster, bounded, notes};

fn checkin(note: &str) -> Op {
    Op::Checkin {
        mood: Mood::Okay,
        note: note.into(),
    }
}

fn member_named(json: &str, name: &str) -> roundtable_core::MemberId {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let (id, _) = v["members"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, m)| m["name"] == name)
        .unwrap();
    id.parse().unwrap()
}

/// The one proposal in a circle's JSON.
fn the_proposal(json: &str) -> EntityId {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let removals = v["removals"].as_object().unwrap();
    assert_eq!(removals.len(), 1, "{removals:?}");
    removals.keys().next().unwrap().parse().unwrap()
}

/// Waits until nodes `a` and `b` keep the same circle key.
async fn same_key(cluster: &Cluster, a: usize, b: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while cluster.keys(a).active() != cluster.keys(b).active() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nodes {a} and {b} never settled on one key"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits a little and checks that `node` still lacks `note`.
async fn never_gets(cluster: &Cluster, node: usize, note: &str) {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let json = cluster.json(node).await;
    assert!(!json.contains(note), "node {node} got {note:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_author_change_is_rejected_everywhere() {
    let mut cluster = Cluster::spawn(3).await;
    cluster.perform(1, checkin("hello")).await;
    cluster.converge(|v| notes(v) == ["hello"]).await;
    let victim = member_named(&cluster.json(0).await, "Maya");
    let (victim_device, _) = cluster.handle(0).identity().await.unwrap();
    // Node 1's member turns rogue: their own (admitted) device key, the
    // circle key, and a hand-made change under Maya's device as author.
    cluster.stop(1).await;
    let home = roundtable_store::Home::new(cluster.home(1));
    let me = home.identity().unwrap().unwrap();
    let ring = home.circle_keys(cluster.circle).unwrap().unwrap();
    let mut copy = home.read_circle(cluster.circle).unwrap();
    copy.set_device(me.device.id());
    let own_head = SignedHead::sign(&copy, &me.device).unwrap();
    let before = copy.heads();
    copy.set_device(victim_device);
    copy.checkin(
        victim,
        Mood::Struggling,
        "forged in Maya's name",
        Timestamp::now(),
        &mut rand::rng(),
    )
    .unwrap();
    let body = Body::Changes {
        changes: copy.changes_since(&before),
        head: own_head,
    };
    let sealed = keys::seal(cluster.circle, &ring, &me.device, &body, &mut rand::rng()).unwrap();

    let mut addrs = Vec::new();
    for i in [0, 2] {
        addrs.push(cluster.handle(i).addr().await.unwrap());
    }
    // Its own side lets it dial the members (they admit it: it is a member).
    let (tx, _rx) = tokio::sync::mpsc::channel(4);
    let admitted = Admitted::default();
    admitted.set(addrs.iter().map(|a| a.id));
    let rogue = Net::bind(*me.device.to_seed(), &NetConfig::loopback(), admitted, tx)
        .await
        .unwrap();
    let mut peers = Vec::new();
    for addr in addrs {
        rogue.dialer().add_addr(addr.clone());
        peers.push(addr.id);
    }
    let topic = topic_for(ring.active().secret(), cluster.circle.as_bytes());
    let (sender, _receiver) = rogue
        .gossip()
        .subscribe(topic, peers)
        .await
        .unwrap()
        .split();
    // Keep sending until both honest nodes have seen it and refused it.
    let refused = |s: &roundtable_node::Status| {
        s.refused
            .get(&roundtable_core::Rejection::Unproven.to_string())
            .is_some_and(|n| *n >= 1)
    };
    let send = async {
        loop {
            // Each copy is sealed afresh, so none is a mere replay.
            let fresh =
                keys::seal(cluster.circle, &ring, &me.device, &body, &mut rand::rng()).unwrap();
            let _ = sender.broadcast(fresh.into()).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let _ = sender.broadcast(sealed.into()).await;
    tokio::select! {
        _ = send => unreachable!(),
        _ = async {
            cluster.status_until(0, refused).await;
            cluster.status_until(2, refused).await;
        } => {}
    }
    for i in [0, 2] {
        let json = cluster.json(i).await;
        assert!(!json.contains("forged"), "node {i} took the forged change");
    }
    rogue.shutdown().await;
    cluster.restart(1).await;
    cluster.perform(1, checkin("honest again")).await;
    let json = cluster
        .converge(|v| notes(v) == ["hello", "honest again"])
        .await;
    assert!(!json.contains("forged"));
    bounded("shutdown", cluster.shutdown()).await;
}

/// Removal by consent: the member concerned sees the proposal; when a
/// majority of the others consent, a new epoch starts; the removed member's
/// device is refused and reads nothing written after; a device that was away
/// during the rotation gets the new key when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_member_is_refused_and_cannot_read_after_rotation() {
    let mut cluster = Cluster::spawn(4).await;
    let json = cluster
        .converge(|v| v["members"].as_object().unwrap().len() == 4)
        .await;
    let target = member_named(&json, "Friend 3");
    let before_keys = cluster.keys(0);
    cluster.stop(2).await;

    cluster
        .perform(
            0,
            Op::ProposeRemoval {
                target,
                reason: "we agreed".into(),
            },
        )
        .await;
    // The member concerned sees the proposal.
    let json = cluster
        .converge_among(&[0, 1, 3], |v| {
            v["removals"].as_object().unwrap().len() == 1
        })
        .await;
    let proposal = the_proposal(&json);
    // One member alone cannot carry it: still epoch 0, still four.
    cluster.status_until(0, |s| s.circles[0].epoch == 0).await;
    cluster.perform(1, Op::Consent { proposal }).await;

    // Nodes 0 and 1 move to epoch 1 and settle on one new key.
    for i in [0, 1] {
        cluster.status_until(i, |s| s.circles[0].epoch == 1).await;
    }
    same_key(&cluster, 0, 1).await;
    assert_ne!(cluster.keys(0).active(), before_keys.active());

    // Written after the removal: the removed member never reads it.
    cluster.perform(0, checkin("after the removal")).await;
    cluster
        .converge_among(&[0, 1], |v| {
            notes(v).contains(&"after the removal".to_owned())
        })
        .await;
    never_gets(&cluster, 3, "after the removal").await;
    assert_ne!(cluster.keys(3).active(), cluster.keys(0).active());
    // What they write reaches nobody; once their device has heard of the
    // removal (a peer hands it the records), it writes nothing more and
    // says why, in the core's words.
    let wrote = bounded(
        "an edit",
        cluster
            .handle(3)
            .perform(cluster.circle, checkin("still here?"), Timestamp::now()),
    )
    .await;
    if let Err(e) = &wrote {
        assert!(e.to_string().contains("no longer in"), "{e}");
    }
    never_gets(&cluster, 0, "still here?").await;
    never_gets(&cluster, 1, "still here?").await;
    cluster
        .status_until(3, |s| s.circles[0].removed.is_some())
        .await;
    let refused = bounded(
        "an edit",
        cluster
            .handle(3)
            .perform(cluster.circle, checkin("and now?"), Timestamp::now()),
    )
    .await;
    assert!(
        refused.is_err_and(|e| e.to_string().contains("no longer in")),
        "a removed member's device that knows it still writes"
    );

    // Node 2 was away for all of it; back, it catches up and gets the key.
    cluster.restart(2).await;
    cluster
        .converge_among(&[0, 1, 2], |v| {
            notes(v).contains(&"after the removal".to_owned())
        })
        .await;
    cluster.status_until(2, |s| s.circles[0].epoch == 1).await;
    same_key(&cluster, 2, 0).await;
    // Nothing was deleted from the removed member's own device.
    let json = cluster.json(3).await;
    if wrote.is_ok() {
        assert!(json.contains("still here?"));
    }
    assert!(json.contains("we agreed"), "the removal's records are kept");
    bounded("shutdown", cluster.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_device_is_refused_and_cannot_read_after_rotation() {
    let cluster = Cluster::spawn(2).await;
    cluster
        .converge(|v| v["members"].as_object().unwrap().len() == 2)
        .await;
    // Maya pairs a phone.
    let (phone, phone_home, _) = cluster.pair(0).await;
    let (phone_device, _) = phone.handle().identity().await.unwrap();
    phone
        .handle()
        .perform(cluster.circle, checkin("from the phone"), Timestamp::now())
        .await
        .unwrap();
    cluster.converge(|v| notes(v) == ["from the phone"]).await;

    // The phone is lost: Maya revokes it from her laptop (node 0).
    cluster
        .perform(
            0,
            Op::RevokeDevice {
                device: phone_device,
            },
        )
        .await;
    for i in [0, 1] {
        cluster.status_until(i, |s| s.circles[0].epoch == 1).await;
    }
    same_key(&cluster, 0, 1).await;
    cluster.perform(1, checkin("after the revocation")).await;
    cluster
        .converge(|v| notes(v).contains(&"after the revocation".to_owned()))
        .await;
    // The phone reads nothing after, and what it writes is refused.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let doc = phone.handle().doc(cluster.circle).await.unwrap();
    let json = Circle::load(&doc).unwrap().canonical_json();
    assert!(!json.contains("after the revocation"));
    let phone_keys = roundtable_store::Home::new(phone_home.path())
        .circle_keys(cluster.circle)
        .unwrap()
        .unwrap();
    assert_ne!(phone_keys.active(), cluster.keys(0).active());
    let _ = phone
        .handle()
        .perform(cluster.circle, checkin("thief was here"), Timestamp::now())
        .await;
    never_gets(&cluster, 0, "thief was here").await;
    never_gets(&cluster, 1, "thief was here").await;
    // Its connections are refused at the handshake.
    let status = phone.handle().status().await.unwrap();
    assert!(
        status.circles[0].connected.is_empty(),
        "the revoked phone still has neighbours: {status:#?}"
    );
    phone.shutdown().await.unwrap();
    bounded("shutdown", cluster.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_alone_cannot_remove_anyone() {
    let cluster = Cluster::spawn(3).await;
    let json = cluster
        .converge(|v| v["members"].as_object().unwrap().len() == 3)
        .await;
    let other = member_named(&json, "Friend 1");
    cluster
        .perform(
            0,
            Op::ProposeRemoval {
                target: other,
                reason: String::new(),
            },
        )
        .await;
    let json = cluster
        .converge(|v| v["removals"].as_object().unwrap().len() == 1)
        .await;
    let proposal = the_proposal(&json);
    // Consenting again as the proposer is refused, and the one concerned
    // cannot consent: the proposer alone carries nothing.
    let err = cluster
        .handle(0)
        .perform(cluster.circle, Op::Consent { proposal }, Timestamp::now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already consented"), "{err}");
    let err = cluster
        .handle(1)
        .perform(cluster.circle, Op::Consent { proposal }, Timestamp::now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("about you"), "{err}");
    for i in [0, 1, 2] {
        let s = cluster.handle(i).status().await.unwrap();
        assert_eq!(s.circles[0].epoch, 0);
    }
    bounded("shutdown", cluster.shutdown()).await;
}
