//! While you were away, from a real catch-up: Maya's node is off while
//! the others write fifty edits; when it is back and has caught up, her
//! home page opens with what happened, the replies to her first, and
//! putting it away puts it away.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use roundtable_core::{EntityId, Mood, Op, RequestKind, Timestamp};
use roundtable_tests::cluster::{Cluster, bounded};
use roundtable_web::{WebApp, access};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP/1.1 request: the status and the body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, String, String) {
    bounded("the web app answering", async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, head.to_owned(), body.to_owned())
    })
    .await
}

/// The "While you were away" card of a home page, if it has one.
fn card(page: &str) -> Option<&str> {
    let start = page.find("id=\"since\"")?;
    let end = page[start..].find("</section>")? + start;
    Some(&page[start..end])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_back_from_fifty_edits_opens_with_what_happened_replies_to_you_first() {
    let mut cluster = Cluster::spawn(3).await;
    let c = cluster.circle;
    let maya = cluster.handle(0);
    let mine: EntityId = bounded(
        "a check-in",
        maya.perform(
            c,
            Op::Checkin {
                mood: Mood::Heavy,
                note: "long week".into(),
            },
            Timestamp::now(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let key = mine.to_string();
    cluster
        .converge(|v| v["checkins"].get(&key).is_some())
        .await;
    // Maya's node has synced with both (so it knows where they are, for
    // when it is back); she looks, then her laptop is closed.
    cluster
        .status_until(0, |s| {
            let others = s.circles[0].devices.iter().filter(|d| d.name != "Maya");
            others.clone().count() == 2 && others.clone().all(|d| d.last_synced.is_some())
        })
        .await;
    bounded("looking", maya.mark_seen(c, Timestamp::now()))
        .await
        .unwrap();
    cluster.stop(0).await;

    // Fifty edits by the others: the circle's week, with two replies to her
    // among them, late.
    for i in 0..48 {
        let op = match i % 3 {
            0 => Op::Checkin {
                mood: Mood::Okay,
                note: format!("day {i}"),
            },
            1 => Op::Moment {
                text: format!("moment {i}"),
            },
            _ => Op::Request {
                kind: RequestKind::Offer,
                text: format!("offer {i}"),
                when: String::new(),
                hands: 1,
            },
        };
        cluster.perform(1 + i % 2, op).await;
    }
    for (i, words) in [(1, "here for you"), (2, "thinking of you")] {
        cluster
            .perform(
                i,
                Op::Reply {
                    to: mine,
                    text: words.into(),
                },
            )
            .await;
    }

    // Maya's node is back and catches up.
    cluster.restart(0).await;
    cluster
        .converge(|v| {
            v["checkins"][key.as_str()]["replies"]
                .as_object()
                .map(|r| r.len())
                == Some(2)
        })
        .await;
    let app = bounded(
        "the web app",
        WebApp::start(cluster.handle(0), SocketAddr::from(([127, 0, 0, 1], 0))),
    )
    .await
    .unwrap();
    let host = app.host().to_owned();
    let link = app.login_link(false);
    let login = link.split_once(host.as_str()).unwrap().1.to_owned();
    let (status, head, _) = request(app.addr(), "GET", &login, &[("Host", host.clone())], "").await;
    assert_eq!(status, 200);
    let session = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| {
            let (k, v) = v.trim().split(';').next()?.split_once('=')?;
            (k == access::COOKIE).then(|| v.to_owned())
        })
        .unwrap();
    let ours = vec![
        ("Host", host.clone()),
        ("Cookie", format!("{}={session}", access::COOKIE)),
    ];
    let (status, _, home) = request(app.addr(), "GET", &format!("/c/{c}"), &ours, "").await;
    assert_eq!(status, 200);
    let since = card(&home).unwrap_or_else(|| panic!("no account on the home page:\n{home}"));
    assert!(since.contains("While you were away"), "{since}");
    let replies = [
        since.find("Friend 1 replied to you: &quot;here for you&quot;"),
        since.find("Friend 2 replied to you: &quot;thinking of you&quot;"),
    ];
    let checked_in = since
        .find("checked in")
        .unwrap_or_else(|| panic!("{since}"));
    for r in replies {
        let r = r.unwrap_or_else(|| panic!("a reply is missing:\n{since}"));
        assert!(r < checked_in, "replies to Maya come first:\n{since}");
    }
    // The rest is a line for each friend's news, not fifty.
    for friend in [
        "Friend 1 checked in a few times",
        "Friend 2 checked in a few times",
    ] {
        assert!(since.contains(friend), "{since}");
    }
    assert_eq!(since.matches("<li").count(), 4, "{since}");

    // Putting it away puts it away.
    let form = home
        .split_once(&format!("name=\"{}\" value=\"", access::FORM_FIELD))
        .and_then(|(_, r)| r.split_once('"'))
        .map(|(t, _)| t.to_owned())
        .unwrap();
    let mut posting = ours.clone();
    posting.push(("Origin", format!("http://{host}")));
    let (status, _, _) = request(
        app.addr(),
        "POST",
        &format!("/c/{c}/seen"),
        &posting,
        &format!("{}={form}", access::FORM_FIELD),
    )
    .await;
    assert_eq!(status, 303);
    let (_, _, home) = request(app.addr(), "GET", &format!("/c/{c}"), &ours, "").await;
    assert!(card(&home).is_none(), "{home}");
    app.stop().await;
    cluster.shutdown().await;
}
