//! The web app against a real node on loopback, spoken to over real HTTP:
//! who gets in, what a form does, and what a live page hears.

use std::net::SocketAddr;
use std::time::Duration;

use roundtable_core::{Mood, Op, Timestamp};
use roundtable_node::{Node, NodeConfig};
use roundtable_store::Home;
use roundtable_web::{WebApp, WebError, access};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Vec<String> {
        self.head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }
}

/// One HTTP/1.1 request with exactly these headers.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Answer {
    timeout(LIMIT, async {
        let mut s = TcpStream::connect(addr).await.expect("connects");
        let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        s.write_all(req.as_bytes()).await.expect("writes");
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.expect("reads");
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        Answer {
            status,
            head: head.to_owned(),
            body: body.to_owned(),
        }
    })
    .await
    .expect("the app answers in time")
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Setup {
    _dir: tempfile::TempDir,
    home: Home,
    node: Option<Node>,
    app: Option<WebApp>,
}

impl Setup {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let home = Home::new(dir.path());
        let node = timeout(LIMIT, Node::spawn(NodeConfig::loopback(dir.path())))
            .await
            .expect("in time")
            .expect("the node starts");
        let app = timeout(LIMIT, WebApp::start(node.handle(), home.clone(), local(0)))
            .await
            .expect("in time")
            .expect("the app starts");
        Self {
            _dir: dir,
            home,
            node: Some(node),
            app: Some(app),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.app.as_ref().expect("running").addr()
    }

    fn token(&self) -> String {
        self.home.web_token().expect("reads").expect("made")
    }

    /// The headers a page of this app sends.
    fn ours(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Host", self.addr().to_string()),
            (
                "Cookie",
                format!(
                    "{}={}",
                    access::COOKIE,
                    access::session_value(&self.token())
                ),
            ),
        ]
    }

    fn posting(&self) -> Vec<(&'static str, String)> {
        let mut h = self.ours();
        h.push(("Origin", format!("http://{}", self.addr())));
        h
    }

    fn form_token(&self) -> String {
        access::form_token(&self.token())
    }

    async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
        if let Some(node) = self.node.take() {
            timeout(LIMIT, node.shutdown())
                .await
                .expect("in time")
                .expect("stops");
        }
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test]
async fn only_the_person_at_this_machine_gets_in() {
    let s = Setup::new().await;
    let addr = s.addr();
    let host = ("Host", addr.to_string());

    // No cookie: refused, in words, with nothing of the circle.
    let a = request(addr, "GET", "/welcome", std::slice::from_ref(&host), "").await;
    assert_eq!(a.status, 401);
    assert!(a.body.contains("roundtable web"), "{}", a.body);

    // A wrong secret in the link: refused, no cookie set.
    let a = request(
        addr,
        "GET",
        "/login?token=nope",
        std::slice::from_ref(&host),
        "",
    )
    .await;
    assert_eq!(a.status, 403);
    assert!(a.header("set-cookie").is_empty());

    // The printed link: a strict, script-proof cookie, and the secret
    // leaves the address bar.
    let url = s
        .app
        .as_ref()
        .expect("running")
        .login_url()
        .expect("a link");
    let path = url
        .split_once(&addr.to_string())
        .expect("our address")
        .1
        .to_owned();
    let a = request(addr, "GET", &path, std::slice::from_ref(&host), "").await;
    assert_eq!(a.status, 303);
    assert_eq!(a.header("location"), ["/"]);
    let cookie = a.header("set-cookie").join(";");
    assert!(cookie.contains(&format!(
        "{}={}",
        access::COOKIE,
        access::session_value(&s.token())
    )));
    assert!(
        !cookie.contains(&s.token()),
        "the cookie is the link's secret"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // With the cookie, the page; with the wrong Host (DNS rebinding) or
    // another site's Origin, not.
    let a = request(addr, "GET", "/welcome", &s.ours(), "").await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("Start a circle"));
    assert!(a.header("access-control-allow-origin").is_empty());
    assert!(!a.header("content-security-policy").is_empty());
    let mut rebound = s.ours();
    rebound[0].1 = format!("evil.example:{}", addr.port());
    assert_eq!(
        request(addr, "GET", "/welcome", &rebound, "").await.status,
        421
    );
    let mut cross = s.ours();
    cross.push(("Origin", "http://evil.example".into()));
    assert_eq!(
        request(addr, "GET", "/welcome", &cross, "").await.status,
        403
    );
    let mut sibling = s.ours();
    sibling.push(("Origin", format!("http://127.0.0.1:{}", addr.port() + 1)));
    assert_eq!(
        request(addr, "GET", "/welcome", &sibling, "").await.status,
        403
    );
    let mut fetched = s.ours();
    fetched.push(("Sec-Fetch-Site", "cross-site".into()));
    assert_eq!(
        request(addr, "GET", "/welcome", &fetched, "").await.status,
        403
    );
    // `localhost` names this app too.
    let mut named = s.ours();
    named[0].1 = format!("localhost:{}", addr.port());
    assert_eq!(
        request(addr, "GET", "/welcome", &named, "").await.status,
        200
    );
    // No preflight, no other verbs.
    assert_eq!(
        request(addr, "OPTIONS", "/create", &s.ours(), "")
            .await
            .status,
        405
    );
    s.stop().await;
}

#[tokio::test]
async fn a_form_without_its_token_changes_nothing() {
    let s = Setup::new().await;
    let addr = s.addr();
    let body = form(&[("name", "Forged"), ("as", "Mallory")]);
    let a = request(addr, "POST", "/create", &s.posting(), &body).await;
    assert_eq!(a.status, 403);
    let body = form(&[("_form", "0123"), ("name", "Forged"), ("as", "Mallory")]);
    let a = request(addr, "POST", "/create", &s.posting(), &body).await;
    assert_eq!(a.status, 403);
    // From another origin, even with the right token.
    let mut cross = s.ours();
    cross.push(("Origin", "http://evil.example".into()));
    let body = form(&[
        ("_form", &s.form_token()),
        ("name", "Forged"),
        ("as", "Mallory"),
    ]);
    assert_eq!(
        request(addr, "POST", "/create", &cross, &body).await.status,
        403
    );
    let node = s.node.as_ref().expect("running").handle();
    assert!(node.circles().await.expect("answers").is_empty());
    s.stop().await;
}

#[tokio::test]
async fn forms_act_only_once_the_node_saved_them() {
    let s = Setup::new().await;
    let addr = s.addr();
    let node = s.node.as_ref().expect("running").handle();
    let body = form(&[
        ("_form", &s.form_token()),
        ("name", "Tuesday Supper"),
        ("as", "Maya"),
    ]);
    let a = request(addr, "POST", "/create", &s.posting(), &body).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let circles = node.circles().await.expect("answers");
    assert_eq!(circles.len(), 1);
    let c = circles[0].0;
    assert_eq!(a.header("location"), [format!("/c/{c}")]);
    // The page it leads to says so, once.
    let said = a
        .header("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("rt_said="))
        .expect("a word for the next page");
    let mut h = s.ours();
    h[1].1 = format!("{}; {}", h[1].1, said.split(';').next().unwrap_or(""));
    let page = request(addr, "GET", &format!("/c/{c}"), &h, "").await;
    assert!(page.body.contains("is started"), "{}", page.body);
    assert!(
        page.header("set-cookie")
            .iter()
            .any(|c| c.contains("Max-Age=0"))
    );

    // A check-in through the page is in the node's copy.
    let body = form(&[
        ("_form", &s.form_token()),
        ("mood", "heavy"),
        ("note", "long week"),
    ]);
    let a = request(
        addr,
        "POST",
        &format!("/c/{c}/checkin"),
        &s.posting(),
        &body,
    )
    .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let doc = node.doc(c).await.expect("answers");
    let view = roundtable_core::Circle::load(&doc).expect("loads").view();
    assert!(
        view.checkins
            .values()
            .any(|x| x.mood == Mood::Heavy && x.note == "long week")
    );

    // A form the core refuses comes back with its words and what was typed.
    let body = form(&[
        ("_form", &s.form_token()),
        ("mood", "fine"),
        ("note", "my typed words"),
    ]);
    let a = request(
        addr,
        "POST",
        &format!("/c/{c}/checkin"),
        &s.posting(),
        &body,
    )
    .await;
    assert_eq!(a.status, 422);
    assert!(a.body.contains("role=\"alert\""), "{}", a.body);
    assert!(a.body.contains("my typed words"));
    let body = form(&[
        ("_form", &s.form_token()),
        ("title", "Soup"),
        ("at", "someday soon"),
    ]);
    let a = request(
        addr,
        "POST",
        &format!("/c/{c}/gatherings"),
        &s.posting(),
        &body,
    )
    .await;
    assert_eq!(a.status, 422);
    assert!(a.body.contains("Could not read"), "{}", a.body);
    assert!(a.body.contains("someday soon"));
    // No stack traces, no raw JSON.
    assert!(!a.body.contains("panicked") && !a.body.contains("{\""));

    // An unknown circle or entry is a page in words.
    let a = request(addr, "GET", &format!("/c/{c}/e/nonsense"), &s.ours(), "").await;
    assert_eq!(a.status, 404);
    assert!(a.body.contains("no such entry"), "{}", a.body);
    s.stop().await;
}

#[tokio::test]
async fn a_live_page_hears_of_a_change() {
    let s = Setup::new().await;
    let addr = s.addr();
    let node = s.node.as_ref().expect("running").handle();
    let c = node
        .create_circle("Supper", "", "Maya", Timestamp::now())
        .await
        .expect("made");
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let mut req = "GET /events HTTP/1.1\r\n".to_owned();
    for (k, v) in s.ours() {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.expect("writes");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    // The first word is where the device stands.
    while !seen.contains("event: net") {
        let n = timeout(LIMIT, stream.read(&mut buf))
            .await
            .expect("in time")
            .expect("reads");
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    assert!(seen.contains("Offline"), "{seen}");
    node.perform(
        c,
        Op::Checkin {
            mood: Mood::Okay,
            note: "hi".into(),
        },
        Timestamp::now(),
    )
    .await
    .expect("performs");
    let expected = format!("event: changed\ndata: {c}");
    while !seen.contains(&expected) {
        let n = timeout(LIMIT, stream.read(&mut buf))
            .await
            .expect("in time")
            .expect("reads");
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // Stopping the app ends the stream instead of holding the node.
    s.stop().await;
    let end = timeout(LIMIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the event stream outlived the app");
}

/// A burst of changes (a sync bringing many, a device writing fast) is told
/// to a live page a few times, not once per change, and the last of them
/// is told too.
#[tokio::test]
async fn a_burst_of_changes_is_told_a_few_times_not_once_each() {
    let s = Setup::new().await;
    let addr = s.addr();
    let node = s.node.as_ref().expect("running").handle();
    let c = node
        .create_circle("Supper", "", "Maya", Timestamp::now())
        .await
        .expect("made");
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let mut req = "GET /events HTTP/1.1\r\n".to_owned();
    for (k, v) in s.ours() {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.expect("writes");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("event: net") {
        let n = timeout(LIMIT, stream.read(&mut buf))
            .await
            .expect("in time")
            .expect("reads");
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let started = std::time::Instant::now();
    let edits = 60;
    for k in 0..edits {
        let op = Op::Checkin {
            mood: Mood::Okay,
            note: format!("{k}"),
        };
        node.perform(c, op, Timestamp::now())
            .await
            .expect("performs");
    }
    let burst = started.elapsed();
    // Read until the stream has been quiet for a second: the last change
    // must have been told by then.
    let expected = format!("event: changed\ndata: {c}");
    loop {
        match timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Ok(Ok(n)) => {
                assert!(n > 0, "the stream ended: {seen}");
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            Ok(Err(e)) => panic!("reading the stream: {e}"),
            Err(_) => break,
        }
        assert!(started.elapsed() < LIMIT, "the stream never went quiet");
    }
    let told = seen.matches(&expected).count();
    // At once, then at most one every 250 ms, and one at the end.
    let most = 2 + (burst.as_millis() / 250) as usize;
    assert!(told >= 1, "the changes were never told: {seen}");
    assert!(
        told <= most.min(edits - 1),
        "{edits} changes in {burst:?} were told {told} times"
    );
    s.stop().await;
}

#[tokio::test]
async fn the_secret_survives_a_restart_and_a_new_link_lets_old_browsers_out() {
    let s = Setup::new().await;
    let old = s.token();
    let dir = s._dir.path().to_owned();
    let home = s.home.clone();
    let Setup {
        _dir, node, app, ..
    } = s;
    app.expect("running").stop().await;
    let node = node.expect("running");
    // Again on the same home: the same secret, kept owner-only.
    let app = WebApp::start(node.handle(), home.clone(), local(0))
        .await
        .expect("starts");
    assert_eq!(
        home.web_token().expect("reads").as_deref(),
        Some(old.as_str())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("web-token"))
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the secret is readable by others: {mode:o}"
        );
    }
    let addr = app.addr();
    let with = |token: &str| {
        vec![
            ("Host", addr.to_string()),
            (
                "Cookie",
                format!("{}={}", access::COOKIE, access::session_value(token)),
            ),
            ("Origin", format!("http://{addr}")),
        ]
    };
    assert_eq!(
        request(addr, "GET", "/status", &with(&old), "")
            .await
            .status,
        200
    );
    // A new link from the page: this browser gets the new cookie, the old
    // one stops working.
    let body = form(&[("_form", &access::form_token(&old))]);
    let a = request(addr, "POST", "/new-link", &with(&old), &body).await;
    assert_eq!(a.status, 303);
    let new = home.web_token().expect("reads").expect("made");
    assert_ne!(new, old);
    assert!(
        a.header("set-cookie")
            .iter()
            .any(|c| c.contains(&access::session_value(&new)))
    );
    assert_eq!(
        request(addr, "GET", "/status", &with(&old), "")
            .await
            .status,
        401
    );
    assert_eq!(
        request(addr, "GET", "/status", &with(&new), "")
            .await
            .status,
        200
    );
    app.stop().await;
    timeout(LIMIT, node.shutdown())
        .await
        .expect("in time")
        .expect("stops");
    drop(_dir);
}

#[tokio::test]
async fn it_listens_on_this_machine_only_and_moves_to_a_free_port() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let home = Home::new(dir.path());
    let node = Node::spawn(NodeConfig::loopback(dir.path()))
        .await
        .expect("starts");
    let outside = SocketAddr::from(([0, 0, 0, 0], 7777));
    match WebApp::start(node.handle(), home.clone(), outside).await {
        Err(e @ WebError::NotLoopback(_)) => assert!(e.to_string().contains("127.0.0.1")),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A port taken by someone else: the next free one, and it says so.
    let taken = std::net::TcpListener::bind(local(0)).expect("binds");
    let port = taken.local_addr().expect("an address").port();
    let app = WebApp::start(node.handle(), home, local(port))
        .await
        .expect("starts");
    assert_ne!(app.addr().port(), port);
    assert_eq!(app.moved(), Some(port));
    app.stop().await;
    timeout(LIMIT, node.shutdown())
        .await
        .expect("in time")
        .expect("stops");
}
