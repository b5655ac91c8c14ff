//! A device on another wire version is not refused in silence: the node
//! that cannot read it closes the connection naming the version it
//! speaks, and its status (the CLI's and the web app's) says whose device
//! needs an update.

use std::time::Duration;

use roundtable_core::wire::{self, SyncFrame, WIRE_VERSION};
use roundtable_net::closed_naming_version;
use roundtable_net::framing::write_frame;
use roundtable_tests::{Cluster, Rogue, bounded};
use roundtable_web::{WebApp, access};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One GET to the app naming its secret host; the head and the body.
async fn get(app: &WebApp, path: &str, cookie: Option<&str>) -> (String, String) {
    bounded("the app answers", async {
        let mut s = TcpStream::connect(app.addr()).await.expect("connects");
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            app.host()
        );
        if let Some(c) = cookie {
            req.push_str(&format!("Cookie: {}={c}\r\n", access::COOKIE));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.expect("writes");
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.expect("reads");
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (head.to_owned(), body.to_owned())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_on_an_older_wire_version_is_told_and_named_on_the_status_page() {
    let mut cluster = Cluster::spawn(2).await;
    let maya = cluster.handle(0).addr().await.expect("an address").id;
    cluster.stop(1).await;
    // Friend 1's device, as a release that speaks the version before ours.
    let rogue = Rogue::take_over(&cluster, 1).await;
    let mut hello = wire::encode(&SyncFrame::Hello {
        circle: *cluster.circle.as_bytes(),
    });
    hello[0] = WIRE_VERSION - 1;
    // (Maya's node may be opening a session to that device just then:
    // until a connection of ours is answered, try again.)
    let mut told = None;
    for _ in 0..50 {
        if let Some((conn, mut send, _recv)) = rogue.try_open_sync(maya).await
            && write_frame(&mut send, &hello).await.is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
            if let Some(v) = closed_naming_version(&conn) {
                told = Some(v);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(told, Some(WIRE_VERSION), "the older device is told ours");

    let status = cluster
        .status_until(0, |s| {
            s.circles
                .first()
                .is_some_and(|c| !c.other_versions.is_empty())
        })
        .await;
    let other = &status.circles[0].other_versions[0];
    assert_eq!(other.name, "Friend 1");
    assert_eq!(other.speaks, WIRE_VERSION - 1);
    assert!(other.needs_update());

    // The web app's status page says it in words.
    let app = WebApp::start(
        cluster.handle(0),
        "127.0.0.1:0".parse().expect("an address"),
    )
    .await
    .expect("the app starts");
    let link = app.login_link(false);
    let path = link.split_once(app.host()).expect("the host").1.to_owned();
    let (head, _) = get(&app, &path, None).await;
    let cookie = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| {
            v.trim()
                .split(';')
                .next()?
                .strip_prefix(&format!("{}=", access::COOKIE))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no session:\n{head}"));
    let (head, page) = get(&app, "/status", Some(&cookie)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        page.contains("Friend 1&#39;s device needs an update")
            || page.contains("Friend 1's device needs an update"),
        "{page}"
    );
    app.stop().await;
    cluster.shutdown().await;
}
