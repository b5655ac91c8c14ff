//! A rogue member against real nodes: a peer built from the crates that
//! holds a real member's keys and misbehaves on purpose. Each test plays
//! one attack of the threat model and shows the honest nodes refuse it,
//! count it, and stay well: bounded files, sync and joins still working.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc, Value};
use roundtable_core::wire::{self, JoinReply, SyncFrame};
use roundtable_core::{
    Circle, DeviceKey, EntityId, InviteKind, InviteSecret, Mood, Op, SignedHead, Timestamp,
    UNKNOWN_INVITE,
};
use roundtable_net::framing::write_frame;
use roundtable_net::{Admitted, CircleTicket, EndpointId, Net, NetConfig};
use roundtable_node::{NodeError, Status};
use roundtable_store::{Home, Identity};
use roundtable_tests::{Cluster, Rogue, bounded, notes};

fn checkin(note: &str) -> Op {
    Op::Checkin {
        mood: Mood::Okay,
        note: note.into(),
    }
}

/// Node `i`'s endpoint id.
async fn id_of(cluster: &Cluster, i: usize) -> EndpointId {
    cluster.handle(i).addr().await.unwrap().id
}

/// An honest edit on `from` reaches `to`: the circle still works.
async fn still_in_sync(cluster: &Cluster, from: usize, among: &[usize], note: &str) {
    cluster.perform(from, checkin(note)).await;
    cluster
        .converge_among(among, |v| notes(v).contains(&note.to_owned()))
        .await;
}

/// A device of someone who is not in the circle, with a dialer.
async fn outsider(cluster: &Cluster) -> (Identity, Net, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    let h = Home::new(home.path());
    let lock = h.lock("test").unwrap();
    let (me, _) = h.ensure_identity(&lock).unwrap();
    drop(lock);
    identity_net(cluster, me, home).await
}

async fn identity_net(
    cluster: &Cluster,
    me: Identity,
    home: tempfile::TempDir,
) -> (Identity, Net, tempfile::TempDir) {
    let (tx, _rx) = tokio::sync::mpsc::channel(4);
    let net = Net::bind(
        *me.device.to_seed(),
        &NetConfig::loopback(),
        Admitted::default(),
        tx,
    )
    .await
    .unwrap();
    net.dialer()
        .add_addr(cluster.handle(0).addr().await.unwrap());
    (me, net, home)
}

/// A ticket for invite `invite` of node 0, as a rogue would write it.
async fn ticket(
    cluster: &Cluster,
    circle: roundtable_core::CircleId,
    invite: EntityId,
    secret: InviteSecret,
    kind: InviteKind,
) -> CircleTicket {
    CircleTicket {
        circle,
        inviter: cluster.handle(0).addr().await.unwrap(),
        invite,
        secret,
        kind,
        expires_at: Timestamp::now().plus_millis(3_600_000),
        uses: 1,
        stewards: Vec::new(),
        sig: [0; 64],
    }
}

/// Waits until node `i` holds every change in `heads`.
async fn holds(cluster: &Cluster, i: usize, heads: &[roundtable_core::ChangeHash]) {
    bounded("the change to arrive", async {
        loop {
            let doc = cluster.handle(i).doc(cluster.circle).await.unwrap();
            let c = Circle::load(&doc).unwrap();
            if heads.iter().all(|h| c.has_change(h)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_pair_a_device_as_another_member() {
    let mut cluster = Cluster::spawn(3).await;
    let (maya_device, maya) = cluster.handle(0).identity().await.unwrap();
    // Sam's device writes a device invite in Maya's name, and syncs it.
    cluster.stop(1).await;
    let mut rogue = Rogue::take_over(&cluster, 1).await;
    let (invite, secret) = rogue
        .circle
        .create_invite(
            maya,
            InviteKind::Device,
            Timestamp::now().plus_millis(3_600_000),
            1,
            Timestamp::now(),
            &mut rand::rng(),
        )
        .unwrap();
    let forged = rogue.circle.heads();
    rogue
        .sync(id_of(&cluster, 0).await, Vec::new(), None)
        .await
        .unwrap();
    holds(&cluster, 0, &forged).await;
    // A thief's laptop asks Maya's node to pair it with that invite.
    let (thief, net, _home) = outsider(&cluster).await;
    let t = ticket(&cluster, cluster.circle, invite, secret, InviteKind::Device).await;
    let answer = bounded(
        "redeeming",
        roundtable_node::redeem_ticket(&net.dialer(), &t, &thief, None),
    )
    .await;
    match answer {
        Err(NodeError::Refused(reason)) => assert_eq!(reason, UNKNOWN_INVITE),
        other => panic!("the pairing was served: {other:?}"),
    }
    let doc = cluster.handle(0).doc(cluster.circle).await.unwrap();
    let m = Circle::load(&doc).unwrap().membership();
    assert!(!m.admitted.contains(&thief.device.id()));
    assert!(m.admitted.contains(&maya_device));
    still_in_sync(&cluster, 2, &[0, 2], "after the forged invite").await;
    net.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_signed_heads_is_bounded_and_the_circle_goes_on() {
    let mut cluster = Cluster::spawn(3).await;
    cluster.stop(1).await;
    let mut rogue = Rogue::take_over(&cluster, 1).await;
    let circle = cluster.circle;
    // Thousands of heads that verify: from keys of no device here, and
    // of its own device with every sequence number.
    let mut flood: Vec<SignedHead> = (0..3_000u64)
        .map(|i| SignedHead::new(circle, &DeviceKey::generate(), i, [i as u8; 32]))
        .collect();
    flood.extend((0..2_000u64).map(|i| {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&i.to_le_bytes());
        SignedHead::new(circle, &rogue.me.device, 1_000 + i, h)
    }));
    for _ in 0..3 {
        rogue
            .sync(id_of(&cluster, 0).await, flood.clone(), None)
            .await
            .unwrap();
    }
    // Maya's book stays small, on disk and across a restart.
    let heads_file = cluster.home(0).join(format!("heads/{circle}"));
    let size = std::fs::metadata(&heads_file).map(|m| m.len()).unwrap_or(0);
    assert!(size < 8 * 1024, "the heads file grew to {size} bytes");
    cluster.restart(1).await;
    still_in_sync(&cluster, 2, &[0, 1, 2], "after the flood").await;
    // A newcomer still joins.
    let home = tempfile::tempdir().unwrap();
    let newcomer = bounded(
        "a newcomer starts",
        roundtable_node::Node::spawn(roundtable_node::NodeConfig::loopback(home.path())),
    )
    .await
    .unwrap();
    let now = Timestamp::now();
    let t = cluster
        .handle(0)
        .invite(
            circle,
            InviteKind::Member,
            now.plus_millis(3_600_000),
            1,
            now,
        )
        .await
        .unwrap();
    bounded("joining", newcomer.handle().join(&t, Some("Bea")))
        .await
        .unwrap();
    newcomer.shutdown().await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_offers_in_another_devices_name_are_refused() {
    let mut cluster = Cluster::spawn(3).await;
    let before = cluster.keys(0).active().clone();
    let (node2, _) = cluster.handle(2).identity().await.unwrap();
    cluster.stop(1).await;
    let mut rogue = Rogue::take_over(&cluster, 1).await;
    let maya = id_of(&cluster, 0).await;
    let epoch = rogue.keys.epoch();
    // A key the rogue made, claimed as made by the smallest id, or by node 2.
    let mut own = roundtable_core::Keyring::with(roundtable_core::EpochKey::random(
        cluster.circle,
        epoch,
        &rogue.me.device,
        &mut rand::rng(),
    ))
    .offer()
    .unwrap();
    for by in [[0u8; 32], *node2.as_bytes()] {
        own.by = by;
        let theirs = rogue.sync(maya, Vec::new(), Some(own.clone())).await;
        assert!(theirs.unwrap().is_some(), "a member still gets the key");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cluster.keys(0).active(), &before);
    still_in_sync(&cluster, 2, &[0, 2], "same key").await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_changes_from_a_member_are_refused_and_counted() {
    let mut cluster = Cluster::spawn(3).await;
    cluster.stop(1).await;
    let mut rogue = Rogue::take_over(&cluster, 1).await;
    let Some((Value::Object(_), checkins)) = rogue.circle.doc().get(ROOT, "checkins").unwrap()
    else {
        panic!("no check-ins")
    };
    let member = rogue.me.member.id();
    rogue
        .circle
        .transact(Timestamp::now(), "huge", |tx| {
            let c = tx.put_object(&checkins, "00000000000000aa", ObjType::Map)?;
            tx.put(&c, "author", member.to_string())?;
            tx.put(&c, "mood", "okay")?;
            tx.put(&c, "note", "x".repeat(4 * 1024 * 1024))?;
            tx.put(&c, "at", Timestamp::now().as_millis())?;
            Ok(())
        })
        .unwrap();
    let _ = rogue.sync(id_of(&cluster, 0).await, Vec::new(), None).await;
    let too_large = roundtable_core::Rejection::TooLarge.to_string();
    cluster
        .status_until(0, |s: &Status| {
            s.refused.get(&too_large).is_some_and(|n| *n >= 1)
        })
        .await;
    assert!(!cluster.json(0).await.contains("xxxxxxxx"));
    still_in_sync(&cluster, 2, &[0, 2], "after the huge change").await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_storms_are_refused_and_honest_sync_goes_on() {
    let mut cluster = Cluster::spawn(3).await;
    cluster.stop(1).await;
    let rogue = Rogue::take_over(&cluster, 1).await;
    let maya = id_of(&cluster, 0).await;
    // Many connections that open a stream and say nothing, held open.
    let mut held = Vec::new();
    for _ in 0..24 {
        // Half a length prefix: the node waits for the rest. (Past the
        // limit, the node closes the connection before it is used.)
        if let Some((conn, mut send, recv)) = rogue.try_open_sync(maya).await
            && send.write_all(&[1, 0]).await.is_ok()
        {
            held.push((conn, send, recv));
        }
    }
    let storm = "too many sync sessions at once";
    cluster
        .status_until(0, |s: &Status| {
            s.dropped.get(storm).is_some_and(|n| *n >= 1)
        })
        .await;

    // Two sessions of one peer at once: the second is refused as busy.
    let hello = wire::encode(&SyncFrame::Hello {
        circle: *cluster.circle.as_bytes(),
    });
    drop(held);
    // A Hello announcing a 2 GiB frame: refused before any allocation.
    // (The node may still be closing the storm's connections: retry.)
    let mut lying = None;
    for _ in 0..50 {
        if let Some((c, mut send, r)) = rogue.try_open_sync(maya).await
            && send.write_all(&0x7fff_ffffu32.to_le_bytes()).await.is_ok()
        {
            lying = Some((c, send, r));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_c, _s, mut lying_recv) = lying.expect("a connection is served again");
    let closed = bounded(
        "the lying session to end",
        roundtable_net::framing::read_frame(&mut lying_recv, 4096),
    )
    .await;
    assert!(!matches!(closed, Ok(Some(_))), "{closed:?}");
    // (Maya's node may be opening a session of its own to the rogue's
    // device: until one of ours is let in, try again.)
    let mut admitted = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Some((conn, mut send, mut recv)) = rogue.try_open_sync(maya).await else {
            continue;
        };
        write_frame(&mut send, &hello).await.unwrap();
        let answer = bounded(
            "an answer",
            roundtable_net::framing::read_frame(&mut recv, 4096),
        )
        .await;
        if let Ok(Some(bytes)) = answer
            && wire::decode::<SyncFrame>(&bytes).unwrap() == SyncFrame::Ready
        {
            admitted = Some((conn, send, recv));
            break;
        }
    }
    let first = admitted.expect("one session is let in");
    let mut second = None;
    for _ in 0..50 {
        if let Some((_conn, mut send, mut recv)) = rogue.try_open_sync(maya).await
            && write_frame(&mut send, &hello).await.is_ok()
            && let Ok(Some(bytes)) = bounded(
                "an answer",
                roundtable_net::framing::read_frame(&mut recv, 4096),
            )
            .await
        {
            second = Some(wire::decode::<SyncFrame>(&bytes).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = second.expect("a second session is answered");
    assert!(
        matches!(&second, SyncFrame::Refused { reason } if reason.contains("busy")),
        "{second:?}"
    );
    drop(first);
    still_in_sync(&cluster, 2, &[0, 2], "through the storm").await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_gets_nothing_from_a_ticket() {
    let mut cluster = Cluster::spawn(4).await;
    let json = cluster.json(0).await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let target: roundtable_core::MemberId = v["members"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, m)| m["name"] == "Friend 3")
        .unwrap()
        .0
        .parse()
        .unwrap();
    let proposal = cluster
        .handle(0)
        .perform(
            cluster.circle,
            Op::ProposeRemoval {
                target,
                reason: String::new(),
            },
            Timestamp::now(),
        )
        .await
        .unwrap()
        .unwrap();
    cluster
        .converge(|v| v["removals"].as_object().is_some_and(|r| !r.is_empty()))
        .await;
    cluster.perform(1, Op::Consent { proposal }).await;
    cluster.stop(3).await;
    cluster
        .status_until(0, |s: &Status| s.circles[0].epoch == 1)
        .await;
    // The removed member redeems a fresh ticket, from their own device and
    // from a new device of theirs.
    let removed = Home::new(cluster.home(3)).identity().unwrap().unwrap();
    let now = Timestamp::now();
    let t = cluster
        .handle(0)
        .invite(
            cluster.circle,
            InviteKind::Member,
            now.plus_millis(3_600_000),
            5,
            now,
        )
        .await
        .unwrap();
    let new_device = DeviceKey::generate();
    let second = Identity {
        cert: removed.member.certify(new_device.id()),
        member: removed.member.clone(),
        device: new_device,
    };
    for me in [removed, second] {
        let (me, net, _home) = identity_net(&cluster, me, tempfile::tempdir().unwrap()).await;
        let answer = bounded(
            "redeeming",
            roundtable_node::redeem_ticket(&net.dialer(), &t, &me, Some("Back again")),
        )
        .await;
        match answer {
            Err(NodeError::Refused(reason)) => {
                assert!(
                    reason.contains("removed") || reason.contains("left the circle"),
                    "{reason}"
                )
            }
            other => panic!("a removed member was let back in: {other:?}"),
        }
        let doc = cluster.handle(0).doc(cluster.circle).await.unwrap();
        assert!(
            !Circle::load(&doc)
                .unwrap()
                .membership()
                .admitted
                .contains(&me.device.id())
        );
        net.shutdown().await;
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_for_a_new_member_never_brings_a_member_key() {
    let mut cluster = Cluster::spawn(2).await;
    cluster.stop(1).await;
    let mut rogue = Rogue::take_over(&cluster, 1).await;
    // The rogue hands out a member ticket of its own making...
    let t = CircleTicket {
        circle: cluster.circle,
        inviter: rogue.net.addr(),
        invite: EntityId::random(&mut rand::rng()),
        secret: InviteSecret::random(&mut rand::rng()),
        kind: InviteKind::Member,
        expires_at: Timestamp::now().plus_millis(3_600_000),
        uses: 1,
        stewards: Vec::new(),
        sig: [0; 64],
    };
    let home = tempfile::tempdir().unwrap();
    let newcomer = bounded(
        "a newcomer starts",
        roundtable_node::Node::spawn(roundtable_node::NodeConfig::loopback(home.path())),
    )
    .await
    .unwrap();
    let (_, own_member) = newcomer.handle().identity().await.unwrap();
    let join = newcomer.handle();
    let joining = tokio::spawn(async move { join.join(&t, Some("Bea")).await });
    // ...and answers with its member key, to make the newcomer its puppet.
    let welcome = rogue.welcome_circle();
    let seed = *rogue.me.member.to_seed();
    rogue
        .serve_join(|_| JoinReply::Welcome {
            circles: vec![welcome],
            member_key: Some(seed),
        })
        .await;
    let result = bounded("the join", joining).await.unwrap();
    match result {
        Err(NodeError::Refused(reason)) => assert!(reason.contains("member key"), "{reason}"),
        other => panic!("the member key was taken: {other:?}"),
    }
    let (_, member) = newcomer.handle().identity().await.unwrap();
    assert_eq!(member, own_member);
    assert!(newcomer.handle().circles().await.unwrap().is_empty());
    newcomer.shutdown().await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_refusals_do_not_tell_which_circles_a_device_holds() {
    let cluster = Cluster::spawn(1).await;
    let (me, net, _home) = outsider(&cluster).await;
    let mut reasons = Vec::new();
    for circle in [
        roundtable_core::CircleId::random(&mut rand::rng()),
        cluster.circle,
    ] {
        let t = ticket(
            &cluster,
            circle,
            EntityId::random(&mut rand::rng()),
            InviteSecret::random(&mut rand::rng()),
            InviteKind::Member,
        )
        .await;
        match bounded(
            "redeeming",
            roundtable_node::redeem_ticket(&net.dialer(), &t, &me, Some("Eve")),
        )
        .await
        {
            Err(NodeError::Refused(reason)) => reasons.push(reason),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(reasons, [UNKNOWN_INVITE, UNKNOWN_INVITE]);
    net.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_control_request_is_refused_and_the_node_goes_on() {
    let cluster = Cluster::spawn(1).await;
    let socket = cluster.home(0).join(roundtable_node::control::SOCKET);
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let chunk = vec![b'a'; 64 * 1024];
        // The node stops reading after its limit; it may close mid-write.
        for _ in 0..64 {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    });
    let answer = bounded("the answer", answer).await.unwrap();
    assert!(answer.contains("longer than"), "{answer:?}");
    bounded("status", cluster.handle(0).status()).await.unwrap();
    cluster.shutdown().await;
}

/// Maya's `roundtable up` (the real binary) against Sam's device turned
/// rogue: a forged pairing, a head flood, an oversized change and a session
/// storm, one after the other; then Sam's own node runs again and the
/// circle syncs as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_binary_refuses_a_rogue_member_and_goes_on() {
    use roundtable_tests::{TestHome, Up};
    let (maya, sam) = (TestHome::new(), TestHome::new());
    maya.run(&["circle", "create", "Tuesday Supper", "--as", "Maya"])
        .ok();
    let maya_up = Up::start(&maya);
    let sam_up = Up::start(&sam);
    let ticket = maya.run(&["invite"]).ok().stdout.trim().to_owned();
    sam.run(&["join", &ticket, "--as", "Sam"]).ok();
    sam_up.stop();
    let status = maya.run(&["status", "--json"]).json();
    let maya_device: EndpointId = status["device"].as_str().unwrap().parse().unwrap();
    let circle: roundtable_core::CircleId = status["circles"][0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let maya_member: roundtable_core::MemberId =
        status["member"].as_str().unwrap().parse().unwrap();
    let mut addr = roundtable_net::EndpointAddr::new(maya_device);
    for a in status["addrs"].as_array().unwrap() {
        addr = addr.with_ip_addr(a.as_str().unwrap().parse().unwrap());
    }
    let mut rogue = Rogue::from_home(sam.path(), circle, vec![addr.clone()]).await;

    // A device invite in Maya's name, then a thief asks to be paired by it.
    let (invite, secret) = rogue
        .circle
        .create_invite(
            maya_member,
            InviteKind::Device,
            Timestamp::now().plus_millis(3_600_000),
            1,
            Timestamp::now(),
            &mut rand::rng(),
        )
        .unwrap();
    rogue.sync(maya_device, Vec::new(), None).await.unwrap();
    let thief_home = tempfile::tempdir().unwrap();
    let h = Home::new(thief_home.path());
    let (thief, _) = h.ensure_identity(&h.lock("test").unwrap()).unwrap();
    let (tx, _rx) = tokio::sync::mpsc::channel(4);
    let net = Net::bind(
        *thief.device.to_seed(),
        &NetConfig::loopback(),
        Admitted::default(),
        tx,
    )
    .await
    .unwrap();
    net.dialer().add_addr(addr.clone());
    let t = CircleTicket {
        circle,
        inviter: addr.clone(),
        invite,
        secret,
        kind: InviteKind::Device,
        expires_at: Timestamp::now().plus_millis(3_600_000),
        uses: 1,
        stewards: Vec::new(),
        sig: [0; 64],
    };
    let answer = bounded(
        "redeeming",
        roundtable_node::redeem_ticket(&net.dialer(), &t, &thief, None),
    )
    .await;
    assert!(
        matches!(&answer, Err(NodeError::Refused(r)) if r == UNKNOWN_INVITE),
        "{answer:?}"
    );
    net.shutdown().await;

    // Thousands of signed heads, three times over.
    let flood: Vec<SignedHead> = (0..3_000u64)
        .map(|i| SignedHead::new(circle, &DeviceKey::generate(), i, [i as u8; 32]))
        .collect();
    for _ in 0..3 {
        rogue.sync(maya_device, flood.clone(), None).await.unwrap();
    }
    let size = std::fs::metadata(maya.path().join(format!("heads/{circle}")))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(size < 8 * 1024, "Maya's heads file grew to {size} bytes");

    // A check-in of four megabytes.
    let Some((Value::Object(_), checkins)) = rogue.circle.doc().get(ROOT, "checkins").unwrap()
    else {
        panic!("no check-ins")
    };
    let member = rogue.me.member.id();
    rogue
        .circle
        .transact(Timestamp::now(), "huge", |tx| {
            let c = tx.put_object(&checkins, "00000000000000aa", ObjType::Map)?;
            tx.put(&c, "author", member.to_string())?;
            tx.put(&c, "mood", "okay")?;
            tx.put(&c, "note", "x".repeat(4 * 1024 * 1024))?;
            Ok(())
        })
        .unwrap();
    let _ = rogue.sync(maya_device, Vec::new(), None).await;

    // A storm of sessions that never say hello.
    let mut held = Vec::new();
    for _ in 0..24 {
        if let Some((conn, mut send, recv)) = rogue.try_open_sync(maya_device).await
            && send.write_all(&[1, 0]).await.is_ok()
        {
            held.push((conn, send, recv));
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s = maya.run(&["status", "--json"]).json();
        let refused = s["refused"][roundtable_core::Rejection::TooLarge.to_string()].as_u64();
        let storm = s["dropped"]["too many sync sessions at once"].as_u64();
        if refused >= Some(1) && storm >= Some(1) {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status["running"], true);
    drop(held);
    drop(rogue);

    // Sam's own node again: the circle syncs, without the rogue's junk.
    // Sam's device first learns what was written in its name while it was
    // away (as a device coming back does): a change of its own made before
    // that would take a sequence number the rogue already used, and
    // Automerge keeps one change per device and number.
    let started = Timestamp::now();
    let sam_up = Up::start(&sam);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = sam.run(&["status", "--json"]).json();
        let synced_since = s["circles"][0]["devices"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["name"] == "Maya")
            .filter_map(|d| serde_json::from_value::<Timestamp>(d["last_synced"].clone()).ok())
            .any(|t| t >= started);
        if synced_since {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Sam never synced with Maya: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sam.run(&["checkin", "--mood", "okay", "back to normal"])
        .ok();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let show = maya.run(&["show", "--json"]).ok().stdout;
        if show.contains("back to normal") {
            assert!(!show.contains("xxxxxxxx"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Sam's check-in never reached Maya"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let maya_show = maya.run(&["members", "--json"]).ok().stdout;
    assert!(!maya_show.contains(&thief.device.id().to_string()));
    sam_up.stop();
    maya_up.stop();
}
