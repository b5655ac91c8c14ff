//! `--relay URL`: nodes use a circle's own relay, here one the test starts
//! in process on loopback (plain HTTP, so no certificate is involved).

#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use iroh_relay::server::{RelayConfig, Server, ServerConfig};
use roundtable_core::{InviteKind, Mood, Op, Timestamp};
use roundtable_net::RelayChoice;
use roundtable_node::{Node, NodeConfig, NodeHandle};
use roundtable_tests::bounded;

async fn relay_of(node: &NodeHandle) -> Option<String> {
    let addr = node.addr().await.unwrap();
    addr.relay_urls().next().map(|u| u.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_use_the_circles_own_relay() {
    let mut config = ServerConfig::default();
    config.relay = Some(RelayConfig::new((Ipv4Addr::LOCALHOST, 0)));
    let server = Server::spawn(config).await.unwrap();
    let url = format!("http://{}", server.http_addr().unwrap());

    let homes = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut nodes = Vec::new();
    for h in &homes {
        let mut c = NodeConfig::loopback(h.path());
        c.net.relay = RelayChoice::Custom(url.parse().unwrap());
        nodes.push(bounded("start", Node::spawn(c)).await.unwrap());
    }
    let (maya, sam) = (nodes[0].handle(), nodes[1].handle());
    // Each node takes the relay as its home relay: its address now names it.
    for n in [&maya, &sam] {
        bounded("connecting to the relay", async {
            while relay_of(n).await.is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            relay_of(n).await.unwrap().starts_with(&url),
            "{:?}",
            relay_of(n).await
        );
    }
    let now = Timestamp::now();
    let circle = maya
        .create_circle("Relay Supper", "", "Maya", now)
        .await
        .unwrap();
    let ticket = maya
        .invite(
            circle,
            InviteKind::Member,
            now.plus_millis(3_600_000),
            1,
            now,
        )
        .await
        .unwrap();
    assert!(
        ticket.inviter.relay_urls().next().is_some(),
        "the ticket names the relay"
    );
    bounded("joining", sam.join(&ticket, Some("Sam")))
        .await
        .unwrap();
    sam.perform(
        circle,
        Op::Checkin {
            mood: Mood::Okay,
            note: "via our relay".into(),
        },
        now,
    )
    .await
    .unwrap();
    bounded("converging", async {
        loop {
            let doc = maya.doc(circle).await.unwrap();
            if roundtable_core::Circle::load(&doc)
                .unwrap()
                .canonical_json()
                .contains("via our relay")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    for n in nodes {
        n.shutdown().await.unwrap();
    }
    server.shutdown().await.unwrap();
}

/// A friend whose device cannot reach the inviter directly (here: a ticket
/// that names no direct address at all) joins with no node running, the
/// way a node would: through the relay the ticket names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_with_no_node_goes_through_the_tickets_relay() {
    let mut config = ServerConfig::default();
    config.relay = Some(RelayConfig::new((Ipv4Addr::LOCALHOST, 0)));
    let server = Server::spawn(config).await.unwrap();
    let url = format!("http://{}", server.http_addr().unwrap());
    let home = tempfile::tempdir().unwrap();
    let mut c = NodeConfig::loopback(home.path());
    c.net.relay = RelayChoice::Custom(url.parse().unwrap());
    let node = bounded("start", Node::spawn(c)).await.unwrap();
    let maya = node.handle();
    bounded("connecting to the relay", async {
        while relay_of(&maya).await.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let now = Timestamp::now();
    let circle = maya
        .create_circle("Relay Supper", "", "Maya", now)
        .await
        .unwrap();
    let mut ticket = maya
        .invite(
            circle,
            InviteKind::Member,
            now.plus_millis(3_600_000),
            1,
            now,
        )
        .await
        .unwrap();
    // Only the relay: as if Maya sat behind a router the friend cannot pass.
    let relay_url = ticket.inviter.relay_urls().next().unwrap().clone();
    ticket.inviter = roundtable_net::EndpointAddr::new(ticket.inviter.id).with_relay_url(relay_url);
    let line = ticket.to_line();
    let sam = roundtable_tests::TestHome::new();
    let joined = tokio::task::spawn_blocking(move || {
        let r = sam.run(&["join", &line, "--as", "Sam"]);
        (r, sam)
    });
    let (r, sam) = bounded("joining through the relay", joined).await.unwrap();
    let r = r.ok();
    assert!(r.stdout.contains("through the relay"), "{}", r.stdout);
    assert!(r.stdout.contains("You're in: Relay Supper"), "{}", r.stdout);
    let members = sam.run(&["members", "--json"]).ok().json();
    assert_eq!(members.as_array().unwrap().len(), 2);
    node.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}
