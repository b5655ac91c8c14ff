//! The web app against a real node on loopback, spoken to over real HTTP:
//! who gets in, what a form does, and what a live page hears.

use std::net::SocketAddr;
use std::time::Duration;

use roundtable_core::{Mood, Op, Timestamp};
use roundtable_node::{Node, NodeConfig};
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
    node: Option<Node>,
    app: Option<WebApp>,
    /// This run's secret host.
    host: String,
    /// A signed-in browser's session cookie value.
    session: String,
    /// Its form token, as its pages carry it.
    form: String,
}

/// The path and query of a login link.
fn path_of(link: &str, host: &str) -> String {
    link.split_once(host).expect("the secret host").1.to_owned()
}

/// The value of a `Set-Cookie` named `name`.
fn set_cookie(a: &Answer, name: &str) -> Option<String> {
    a.header("set-cookie").into_iter().find_map(|c| {
        let first = c.split(';').next()?.trim().to_owned();
        let (k, v) = first.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

/// Signs a browser in with a fresh link: its session cookie value.
async fn sign_in(app: &WebApp) -> String {
    let link = app.login_link(false);
    let a = request(
        app.addr(),
        "GET",
        &path_of(&link, app.host()),
        &[("Host", app.host().to_owned())],
        "",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    set_cookie(&a, access::COOKIE).expect("a session cookie")
}

/// The form token a page of the app carries.
fn form_token_in(body: &str) -> String {
    let at = body
        .find(&format!("name=\"{}\" value=\"", access::FORM_FIELD))
        .expect("a form");
    let rest = &body[at..];
    let start = rest.find("value=\"").expect("a value") + 7;
    rest[start..start + 32].to_owned()
}

impl Setup {
    async fn new() -> Self {
        Self::in_home(tempfile::tempdir().expect("a temp dir")).await
    }

    /// The app of a node whose home is `dir` (made ready beforehand).
    async fn in_home(dir: tempfile::TempDir) -> Self {
        let node = timeout(LIMIT, Node::spawn(NodeConfig::loopback(dir.path())))
            .await
            .expect("in time")
            .expect("the node starts");
        let app = timeout(LIMIT, WebApp::start(node.handle(), local(0)))
            .await
            .expect("in time")
            .expect("the app starts");
        let host = app.host().to_owned();
        let session = sign_in(&app).await;
        let page = request(
            app.addr(),
            "GET",
            "/welcome",
            &[
                ("Host", host.clone()),
                ("Cookie", format!("{}={session}", access::COOKIE)),
            ],
            "",
        )
        .await;
        let form = form_token_in(&page.body);
        Self {
            _dir: dir,
            node: Some(node),
            app: Some(app),
            host,
            session,
            form,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.app.as_ref().expect("running").addr()
    }

    /// The headers a page of this app sends.
    fn ours(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Host", self.host.clone()),
            ("Cookie", format!("{}={}", access::COOKIE, self.session)),
        ]
    }

    fn posting(&self) -> Vec<(&'static str, String)> {
        let mut h = self.ours();
        h.push(("Origin", format!("http://{}", self.host)));
        h
    }

    fn form_token(&self) -> String {
        self.form.clone()
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
    let app = s.app.as_ref().expect("running");
    let host = ("Host", s.host.clone());
    // The app answers at a secret name of this run below `.localhost`.
    assert!(s.host.ends_with(&format!(".localhost:{}", addr.port())));

    // No cookie: refused, in words, with nothing of the circle.
    let a = request(addr, "GET", "/welcome", std::slice::from_ref(&host), "").await;
    assert_eq!(a.status, 401);
    assert!(a.body.contains("roundtable web --open"), "{}", a.body);

    // A wrong link: refused, no cookie set.
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

    // A fresh link: a host-only, strict, script-proof cookie, and on to
    // `/` by a page of the app (so the link leaves the address bar).
    let link = app.login_link(false);
    assert!(link.starts_with(&format!("http://{}/login?token=", s.host)));
    let path = path_of(&link, &s.host);
    // Even from a page elsewhere (a file, a terminal), a link lets in.
    let from_file = [host.clone(), ("Sec-Fetch-Site", "cross-site".into())];
    let a = request(addr, "GET", &path, &from_file, "").await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("url=/"), "{}", a.body);
    let cookie = a.header("set-cookie").join(";");
    let session = set_cookie(&a, access::COOKIE).expect("a session");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.to_ascii_lowercase().contains("domain"),
        "the cookie must be host-only: {cookie}"
    );
    assert!(!link.contains(&session), "the cookie is the link's secret");
    // A link works once.
    let a = request(addr, "GET", &path, std::slice::from_ref(&host), "").await;
    assert_eq!(a.status, 403);
    assert!(a.body.contains("works once"), "{}", a.body);
    assert!(a.header("set-cookie").is_empty());

    // With the cookie, the page; with the wrong Host (DNS rebinding,
    // loopback by number or as `localhost`, another run's name) or
    // another site's Origin, not.
    let a = request(addr, "GET", "/welcome", &s.ours(), "").await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("Start a circle"));
    assert!(
        a.body.contains("name=\"rt-run\""),
        "the page carries its run"
    );
    assert!(a.header("access-control-allow-origin").is_empty());
    assert!(!a.header("content-security-policy").is_empty());
    for other in [
        format!("evil.example:{}", addr.port()),
        addr.to_string(),
        format!("localhost:{}", addr.port()),
        format!("[::1]:{}", addr.port()),
        format!("another.localhost:{}", addr.port()),
    ] {
        let mut moved = s.ours();
        moved[0].1 = other.clone();
        let a = request(addr, "GET", "/welcome", &moved, "").await;
        assert_eq!(a.status, 421, "{other}");
        assert!(a.body.contains("roundtable web --open"), "{}", a.body);
    }
    let mut cross = s.ours();
    cross.push(("Origin", "http://evil.example".into()));
    assert_eq!(
        request(addr, "GET", "/welcome", &cross, "").await.status,
        403
    );
    let mut sibling = s.ours();
    sibling.push(("Origin", format!("http://127.0.0.1:{}", addr.port())));
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
    // A page's live read of itself, overtaking the browser on its way
    // there, leaves the word for the page.
    let mut live = h.clone();
    live.push(("X-Live", "1".to_owned()));
    let read = request(addr, "GET", &format!("/c/{c}"), &live, "").await;
    assert_eq!(read.status, 200);
    assert!(!read.body.contains("is started"), "{}", read.body);
    assert!(
        read.header("set-cookie").is_empty(),
        "{:?}",
        read.header("set-cookie")
    );
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
    for (path, words) in [
        (format!("/c/{c}/e/nonsense"), "no such entry"),
        (format!("/c/{c}/g/nonsense"), "no such gathering"),
        (
            format!("/c/{c}/removal/nonsense/consent"),
            "no such proposal",
        ),
        (format!("/c/{c}/devices/nonsense/revoke"), "no such device"),
        ("/c/nonsense/people".to_owned(), "no such circle"),
    ] {
        let a = request(addr, "GET", &path, &s.ours(), "").await;
        assert_eq!(a.status, 404, "{path}");
        assert!(a.body.contains(words), "{path}: {}", a.body);
    }
    s.stop().await;
}

#[tokio::test]
async fn a_typed_form_is_checked_for_its_token_first_and_a_field_left_out_is_refused_in_words() {
    let s = Setup::new().await;
    let addr = s.addr();
    let node = s.node.as_ref().expect("running").handle();
    let a = post(&s, "/create", &[("name", "Tuesday Supper"), ("as", "Maya")]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let c = node.circles().await.expect("answers")[0].0;
    let view = async || {
        let doc = node.doc(c).await.expect("answers");
        roundtable_core::Circle::load(&doc).expect("loads").view()
    };
    let checkin = format!("/c/{c}/checkin");

    // A bad token or none: refused before the form is read, nothing saved.
    for token in [Some("0123"), None] {
        let mut fields = vec![("mood", "heavy"), ("note", "forged")];
        if let Some(t) = token {
            fields.push(("_form", t));
        }
        let a = request(addr, "POST", &checkin, &s.posting(), &form(&fields)).await;
        assert_eq!(a.status, 403, "{token:?}: {}", a.body);
        assert!(a.body.contains("This form is out of date"), "{}", a.body);
    }
    // A form that is only a button is checked alike: "Put this away"
    // with no token leaves what arrived where it was.
    let seen = format!("/c/{c}/seen");
    let a = request(addr, "POST", &seen, &s.posting(), &form(&[("go", "1")])).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(node.seen(c).await.expect("answers").is_none());
    let a = post(&s, &seen, &[]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert!(node.seen(c).await.expect("answers").is_some());

    // A body that is not a form at all does not arrive whole.
    let a = request(addr, "POST", &checkin, &s.posting(), "").await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("did not arrive whole"), "{}", a.body);
    assert!(view().await.checkins.is_empty());

    // A field left out is an empty one: the page refuses it in words and
    // shows again what was typed, as it came.
    let a = post(&s, &checkin, &[("note", "  my typed words")]).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.body.contains("Choose how you are"), "{}", a.body);
    assert!(a.body.contains("  my typed words"), "{}", a.body);
    let a = post(
        &s,
        &format!("/c/{c}/gatherings"),
        &[("title", "Soup night")],
    )
    .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.body.contains("role=\"alert\""), "{}", a.body);
    assert!(a.body.contains("value=\"Soup night\""), "{}", a.body);
    let a = post(&s, &format!("/c/{c}/moment"), &[]).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.body.contains("role=\"alert\""), "{}", a.body);
    let v = view().await;
    assert!(v.checkins.is_empty() && v.gatherings.is_empty() && v.moments.is_empty());

    // What is saved is trimmed, its line breaks kept as one kind.
    let a = post(
        &s,
        &checkin,
        &[("mood", " okay "), ("note", "\r\n one\r\ntwo \r\n")],
    )
    .await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert!(
        view()
            .await
            .checkins
            .values()
            .any(|x| x.mood == Mood::Okay && x.note == "one\ntwo")
    );
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
    // A circle of one so far is not "offline": there is nobody to miss.
    assert!(seen.contains("Only you so far"), "{seen}");
    // Before anything else, the run's id, which the pages carry.
    let page = request(addr, "GET", "/welcome", &s.ours(), "").await;
    let run = page
        .body
        .split_once("name=\"rt-run\" content=\"")
        .and_then(|(_, r)| r.split_once('"'))
        .map(|(r, _)| r.to_owned())
        .expect("the page carries its run");
    let hello = seen.find(&format!("event: hello\ndata: {run}\n"));
    assert!(
        hello.is_some_and(|h| h < seen.find("event: net").unwrap_or(0)),
        "{seen}"
    );
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

/// A live read of a page (`app.js`, after a `changed`): JSON of its live
/// parts, each with what goes inside it.
async fn live_read(s: &Setup, path: &str, have: &str) -> (Answer, Vec<(String, String)>) {
    let mut headers = s.ours();
    headers.push(("X-Live", "1".into()));
    headers.push(("X-Live-Have", have.into()));
    let a = request(s.addr(), "GET", path, &headers, "").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.header("content-type")
            .iter()
            .any(|t| t.starts_with("application/json")),
        "{}",
        a.head
    );
    let json: serde_json::Value = serde_json::from_str(&a.body).expect("JSON");
    let parts = json["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .map(|p| {
            let id = p["id"].as_str().expect("an id").to_owned();
            (id, p["html"].as_str().expect("its html").to_owned())
        })
        .collect();
    (a, parts)
}

/// The digest a part's html carries.
fn digest_of(html: &str) -> String {
    html.rsplit_once("<template data-v=\"")
        .and_then(|(_, r)| r.split_once('"'))
        .map(|(v, _)| v.to_owned())
        .expect("a digest")
}

/// A live page gets back only the parts of it that changed, not the page:
/// nothing when nothing changed, and after a check-in the parts that show
/// it, far fewer bytes than the page.
#[tokio::test]
async fn a_live_read_brings_back_only_the_parts_that_changed() {
    let s = Setup::new().await;
    let node = s.node.as_ref().expect("running").handle();
    let c = node
        .create_circle("Supper", "", "Maya", Timestamp::now())
        .await
        .expect("made");
    let path = format!("/c/{c}");
    let page = get(&s, &path).await;
    // Holding nothing: every live part of the page, with the digest the
    // page itself was served with.
    let (_, all) = live_read(&s, &path, "").await;
    let ids: Vec<&str> = all.iter().map(|(id, _)| id.as_str()).collect();
    for id in ["proposals", "quiet", "coming", "open", "here", "life"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
        assert!(page.body.contains(&format!("id=\"{id}\"")), "{id}");
    }
    for (id, html) in &all {
        let v = digest_of(html);
        assert!(
            page.body.contains(&format!("<template data-v=\"{v}\">")),
            "the page carries {id}'s digest"
        );
    }
    // What the page holds: every part, and the parts inside them.
    let have = |parts: &[(String, String)]| -> String {
        parts
            .iter()
            .flat_map(|(id, html)| roundtable_web::parts_held(id, html).expect("digests"))
            .map(|(id, v)| format!("{id}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let holding = have(&all);
    // Holding them all, nothing changed: nothing comes back.
    let (_, none) = live_read(&s, &path, &holding).await;
    assert!(none.is_empty(), "{none:?}");
    // A check-in changes what shows it, and only that comes back.
    node.perform(
        c,
        Op::Checkin {
            mood: Mood::Okay,
            note: "the soup is on".into(),
        },
        Timestamp::now(),
    )
    .await
    .expect("performs");
    let (answer, changed) = live_read(&s, &path, &holding).await;
    let changed_ids: Vec<&str> = changed.iter().map(|(id, _)| id.as_str()).collect();
    assert!(changed_ids.contains(&"life"), "{changed_ids:?}");
    assert!(!changed_ids.contains(&"coming"), "{changed_ids:?}");
    assert!(changed.len() < all.len(), "{changed_ids:?}");
    let life = &changed.iter().find(|(id, _)| id == "life").expect("life").1;
    assert!(life.contains("the soup is on"), "{life}");
    assert!(
        life.contains("<template data-keep>"),
        "the items the page holds are kept, not sent: {life}"
    );
    assert!(
        answer.body.len() < page.body.len() / 2,
        "{} bytes for the parts, {} for the page",
        answer.body.len(),
        page.body.len()
    );
    // A part the page does not say it holds comes back whatever it holds.
    let (_, again) = live_read(&s, &path, "coming=0000").await;
    assert_eq!(again.len(), all.len(), "{again:?}");
    // A page without live parts, or a read without the live header, is
    // the page as it is.
    let plain = get(&s, &path).await;
    assert!(plain.body.starts_with("<!DOCTYPE html>"), "{}", plain.head);
    s.stop().await;
}

#[tokio::test]
async fn nothing_of_one_run_works_in_the_next_and_a_sign_out_lets_others_out() {
    let s = Setup::new().await;
    let dir = s._dir.path().to_owned();
    let (old_host, old_session) = (s.host.clone(), s.session.clone());
    let Setup {
        _dir, node, app, ..
    } = s;
    let app = app.expect("running");
    let port = app.addr().port();
    let unused = app.login_link(false);
    app.stop().await;
    let node = node.expect("running");
    // Again on the same port: the same host name (kept owner-only in the
    // home, so a browser's storage for the app carries over), and nothing
    // of the old run (its cookie, a link it made) lets anyone in.
    let app = WebApp::start(node.handle(), local(port))
        .await
        .expect("starts");
    assert_eq!(app.addr().port(), port);
    assert_eq!(app.host(), old_host);
    let kept_host = dir.join("web-host");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kept_host)
            .expect("kept")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only its owner reads the host name");
    }
    assert!(!dir.join("web-token").exists());
    let addr = app.addr();
    let with = |host: &str, session: &str| {
        vec![
            ("Host", host.to_owned()),
            ("Cookie", format!("{}={session}", access::COOKIE)),
            ("Origin", format!("http://{host}")),
        ]
    };
    let other = format!("{}.localhost:{port}", access::Access::fresh_label());
    let a = request(addr, "GET", "/status", &with(&other, &old_session), "").await;
    assert_eq!(a.status, 421);
    assert!(a.body.contains("restarted"), "{}", a.body);
    assert_eq!(
        request(addr, "GET", "/status", &with(app.host(), &old_session), "")
            .await
            .status,
        401
    );
    let a = request(
        addr,
        "GET",
        &path_of(&unused, &old_host),
        &[("Host", app.host().to_owned())],
        "",
    )
    .await;
    assert_eq!(a.status, 403);
    // Two browsers in; one signs the others out from its page, and keeps in.
    let (one, two) = (sign_in(&app).await, sign_in(&app).await);
    let page = request(addr, "GET", "/status", &with(app.host(), &one), "").await;
    assert_eq!(page.status, 200);
    let body = form(&[("_form", &form_token_in(&page.body))]);
    let a = request(addr, "POST", "/new-link", &with(app.host(), &one), &body).await;
    assert_eq!(a.status, 303);
    let kept = set_cookie(&a, access::COOKIE).expect("a new session");
    for gone in [&one, &two] {
        assert_eq!(
            request(addr, "GET", "/status", &with(app.host(), gone), "")
                .await
                .status,
            401
        );
    }
    assert_eq!(
        request(addr, "GET", "/status", &with(app.host(), &kept), "")
            .await
            .status,
        200
    );
    // A link asked for with `sign_out` lets every browser out.
    app.login_link(true);
    assert_eq!(
        request(addr, "GET", "/status", &with(app.host(), &kept), "")
            .await
            .status,
        401
    );
    app.stop().await;
    // A kept host name that does not read as one is made anew, and kept.
    std::fs::write(&kept_host, "Not A Label!\n").expect("written");
    let app = WebApp::start(node.handle(), local(port))
        .await
        .expect("starts");
    assert_ne!(app.host(), old_host);
    let label = app.host().split('.').next().expect("a label").to_owned();
    assert_eq!(
        std::fs::read_to_string(&kept_host)
            .expect("kept")
            .trim_end(),
        label
    );
    app.stop().await;
    timeout(LIMIT, node.shutdown())
        .await
        .expect("in time")
        .expect("stops");
    drop(_dir);
}

#[tokio::test]
async fn it_listens_on_this_machine_only_and_never_moves_to_another_port() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let node = Node::spawn(NodeConfig::loopback(dir.path()))
        .await
        .expect("starts");
    for outside in ["0.0.0.0:7777", "127.0.0.2:7777"] {
        let outside: SocketAddr = outside.parse().expect("an address");
        match WebApp::start(node.handle(), outside).await {
            Err(e @ WebError::NotLoopback(_)) => assert!(e.to_string().contains("127.0.0.1")),
            other => panic!("expected a refusal of {outside}, got {other:?}"),
        }
    }
    // A port taken by someone else: refused, naming who holds it.
    let taken = std::net::TcpListener::bind(local(0)).expect("binds");
    let port = taken.local_addr().expect("an address").port();
    match WebApp::start(node.handle(), local(port)).await {
        Err(e @ WebError::Taken { .. }) => {
            let words = e.to_string();
            assert!(words.contains(&port.to_string()), "{words}");
            assert!(words.contains("--web 127.0.0.1:PORT"), "{words}");
            if std::path::Path::new("/proc/net/tcp").exists() {
                assert!(words.contains("yours (user"), "{words}");
            }
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop(taken);
    // Taken on the other loopback only: refused too, since a browser may
    // try either for a `*.localhost` name.
    if let Ok(v6) = std::net::TcpListener::bind("[::1]:0") {
        let port = v6.local_addr().expect("an address").port();
        match WebApp::start(node.handle(), local(port)).await {
            Err(WebError::Taken { .. }) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    timeout(LIMIT, node.shutdown())
        .await
        .expect("in time")
        .expect("stops");
}

/// A page of the app, as this browser gets it.
async fn get(s: &Setup, path: &str) -> Answer {
    let a = request(s.addr(), "GET", path, &s.ours(), "").await;
    assert_eq!(a.status, 200, "{path}: {}", a.body);
    a
}

/// A form of the app, sent with its token.
async fn post(s: &Setup, path: &str, fields: &[(&str, &str)]) -> Answer {
    let token = s.form_token();
    let mut all = vec![("_form", token.as_str())];
    all.extend_from_slice(fields);
    request(s.addr(), "POST", path, &s.posting(), &form(&all)).await
}

/// The stewards the circle's own document records.
async fn recorded(
    node: &roundtable_node::NodeHandle,
    c: roundtable_core::CircleId,
) -> Vec<roundtable_core::steward::StewardRecord> {
    let doc = timeout(LIMIT, node.doc(c))
        .await
        .expect("in time")
        .expect("answers");
    roundtable_core::Circle::load(&doc)
        .expect("loads")
        .stewards()
}

#[tokio::test]
async fn a_steward_is_added_from_its_ticket_named_on_the_status_page_and_stopped_after_asking() {
    let s = Setup::new().await;
    let node = s.node.as_ref().expect("running").handle();
    let (_, maya) = node.identity().await.expect("answers");
    let c = node
        .create_circle("Supper", "", "Maya", Timestamp::now())
        .await
        .expect("made");
    let stewards = format!("/c/{c}/stewards");

    // No steward: the status page says what that means and where to add one.
    let page = get(&s, "/status").await;
    assert!(
        page.body
            .contains("without one, it syncs only while members' devices are awake together"),
        "{}",
        page.body
    );
    assert!(page.body.contains(&format!("href=\"{stewards}\"")));
    let invite = get(&s, &format!("/c/{c}/invite")).await;
    assert!(
        invite
            .body
            .contains("keep Roundtable running until they have joined"),
        "{}",
        invite.body
    );
    assert!(!invite.body.contains("steward"), "{}", invite.body);

    // What is not a steward's ticket is refused in words, with what was
    // typed, and nothing is recorded.
    let a = post(&s, &stewards, &[("ticket", "roundtablestewardnotreally")]).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.body.contains("role=\"alert\""), "{}", a.body);
    assert!(a.body.contains("damaged or incomplete"), "{}", a.body);
    assert!(a.body.contains("roundtablestewardnotreally"));
    let ticket = node
        .invite(
            c,
            roundtable_core::InviteKind::Member,
            Timestamp::now().plus_millis(3_600_000),
            1,
            Timestamp::now(),
        )
        .await
        .expect("an invite")
        .to_line();
    let a = post(&s, &stewards, &[("ticket", &ticket)]).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(
        a.body
            .contains("This is an invite to a circle, not a steward"),
        "{}",
        a.body
    );
    assert!(a.body.contains(&ticket), "what was typed is kept");
    assert!(recorded(&node, c).await.is_empty());

    // A real steward's ticket, wrapped as a chat app would: added, said so,
    // and named on the status page with who added it, then reached.
    let home = tempfile::tempdir().expect("a temp dir");
    let steward = timeout(
        LIMIT,
        roundtable_steward::Steward::start(roundtable_steward::StewardOptions {
            home: home.path().to_owned(),
            net: roundtable_net::NetConfig::loopback(),
            store: None,
            limits: roundtable_steward::Limits::default(),
        }),
    )
    .await
    .expect("in time")
    .expect("the steward starts");
    let line = steward.ticket().to_line();
    let wrapped = format!("  {}\r\n{}\n", &line[..40], &line[40..]);
    // A name past the circle's bound for names: refused in the core's
    // words, the form kept, nothing recorded.
    let long = "Pi ".repeat(40);
    let a = post(&s, &stewards, &[("ticket", &wrapped), ("name", &long)]).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.body.contains("steward's name"), "{}", a.body);
    assert!(a.body.contains(&long), "what was typed is kept");
    assert!(recorded(&node, c).await.is_empty());
    let a = post(
        &s,
        &stewards,
        &[("ticket", &wrapped), ("name", " Maya's Pi ")],
    )
    .await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.header("location"), std::slice::from_ref(&stewards));
    assert!(
        a.header("set-cookie")
            .iter()
            .any(|c| c.starts_with("rt_said=")),
        "the next page says it was saved"
    );
    let records = recorded(&node, c).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].ticket, line);
    assert_eq!(records[0].added_by, Some(maya));
    assert_eq!(records[0].name.as_deref(), Some("Maya's Pi"));
    // Called by its name, with who added it; its id only in the ticket.
    let named = "Kept by Maya's Pi (added by Maya)";
    let reached = timeout(LIMIT, async {
        loop {
            let page = get(&s, "/status").await;
            assert!(page.body.contains(named), "{}", page.body);
            if page.body.contains("connected now") {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the node reaches the steward in time");
    assert!(!reached.body.contains("No steward keeps"));
    // Nobody else is awake, but what is written reaches the steward.
    assert!(
        reached
            .body
            .contains("No other device of the circle is awake right now."),
        "{}",
        reached.body
    );
    assert!(
        reached
            .body
            .contains("steward, and reaches the others when their devices next run")
    );
    // The same steward twice: refused in the core's words.
    let a = post(&s, &stewards, &[("ticket", &line)]).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.body.contains("already uses that steward"), "{}", a.body);
    assert_eq!(recorded(&node, c).await.len(), 1);

    // With a steward, the invite page says an invite waits there, until
    // it expires, once the node has left it there; an invite made then
    // says so, and is left there.
    let invite = get(&s, &format!("/c/{c}/invite")).await;
    assert!(
        invite.body.contains(
            "where it waits until it expires: once it is there, they can join even while this device is off"
        ),
        "{}",
        invite.body
    );
    assert!(!invite.body.contains("keep Roundtable running"));
    let made = post(
        &s,
        &format!("/c/{c}/invite"),
        &[("lasts", "1d"), ("uses", "1")],
    )
    .await;
    // Post, then redirect to the page that shows the ticket (a refresh
    // makes no second invite).
    assert_eq!(made.status, 303, "{}", made.body);
    let to = made.header("location").pop().expect("a location");
    assert!(to.starts_with(&format!("/c/{c}/invite/")), "{to}");
    let made = get(&s, &to).await;
    assert!(
        made.body
            .contains("they can join even while this device is off, until it expires"),
        "{}",
        made.body
    );
    timeout(LIMIT, async {
        loop {
            let status = node.status().await.expect("answers");
            let waiting: usize = status.circles[0]
                .stewards
                .iter()
                .map(|s| s.invites_waiting)
                .sum();
            if waiting == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the invite is left with the steward in time");
    assert!(!get(&s, "/status").await.body.contains("not there yet"));

    // Stopping it asks first, in words, and does nothing yet.
    let id = records[0].id;
    let remove = format!("/c/{c}/stewards/{id}/remove");
    let a = post(&s, &remove, &[]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let a = get(&s, &remove).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body.contains(
            "The circle will stop using this steward. Anyone in the circle can add it again."
        ),
        "{}",
        a.body
    );
    assert!(a.body.contains("name=\"confirm\""));
    assert!(a.body.contains("Stop using Maya's Pi?"), "{}", a.body);
    assert!(recorded(&node, c).await[0].removed_by.is_none());
    // Confirmed: the circle no longer uses it, and records who stopped it.
    let a = post(&s, &remove, &[("confirm", "yes")]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(recorded(&node, c).await[0].removed_by, Some(maya));
    let page = get(&s, "/status").await;
    assert!(
        page.body.contains("No steward keeps this circle"),
        "{}",
        page.body
    );
    // It is still named, as no longer used and by whom.
    assert!(
        page.body.contains(
            "Maya's Pi (added by Maya) is no longer used: Maya stopped the circle using it"
        ),
        "{}",
        page.body
    );
    let invite = get(&s, &format!("/c/{c}/invite")).await;
    assert!(!invite.body.contains("steward"), "{}", invite.body);
    // Pasted where an invite goes, a steward's ticket is told apart.
    let a = post(&s, "/join", &[("ticket", &line), ("as", "Sam")]).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(
        a.body
            .contains("ticket, not an invite: it lets nobody into a circle"),
        "{}",
        a.body
    );
    // A steward the circle no longer uses cannot be stopped again.
    assert_eq!(post(&s, &remove, &[("confirm", "yes")]).await.status, 404);

    timeout(LIMIT, steward.shutdown()).await.expect("in time");
    s.stop().await;
}

/// A GET that is answered with a redirect: where to.
async fn redirected(s: &Setup, path: &str) -> String {
    let a = request(s.addr(), "GET", path, &s.ours(), "").await;
    assert_eq!(a.status, 303, "GET {path}: {}", a.body);
    a.header("location").pop().expect("a location")
}

#[tokio::test]
async fn every_form_address_shows_a_page_and_pages_are_never_kept_by_the_browser() {
    let s = Setup::new().await;
    let node = s.node.as_ref().expect("running").handle();
    let c = node
        .create_circle("Supper", "", "Maya", Timestamp::now())
        .await
        .expect("made");
    let e = node
        .perform(
            c,
            Op::Moment {
                text: "soup".into(),
            },
            Timestamp::now(),
        )
        .await
        .expect("saved")
        .expect("an id");
    for (form, page) in [
        ("/create".to_owned(), "/welcome".to_owned()),
        ("/join".to_owned(), "/welcome".to_owned()),
        ("/new-link".to_owned(), "/status".to_owned()),
        (format!("/c/{c}/checkin"), format!("/c/{c}")),
        (format!("/c/{c}/moment"), format!("/c/{c}")),
        (format!("/c/{c}/profile"), format!("/c/{c}/people")),
        (format!("/c/{c}/removal/welcome"), format!("/c/{c}/removal")),
        (format!("/c/{c}/e/{e}/reply"), format!("/c/{c}/e/{e}")),
    ] {
        assert_eq!(redirected(&s, &form).await, page, "{form}");
    }
    // The pages themselves: never stored, so Back shows them as they are.
    for path in ["/welcome".to_owned(), format!("/c/{c}"), "/status".into()] {
        let a = get(&s, &path).await;
        assert_eq!(a.header("cache-control"), ["no-store"], "{path}");
    }
    // A form field carries the node's own limit.
    let home = get(&s, &format!("/c/{c}")).await;
    let limit = roundtable_core::schema::limits::NOTE;
    assert!(
        home.body
            .contains(&format!("name=\"note\" rows=\"2\" data-max=\"{limit}\"")),
        "{}",
        home.body
    );
    // No word of the mood is ungrammatical.
    node.perform(
        c,
        Op::Checkin {
            mood: Mood::Struggling,
            note: String::new(),
        },
        Timestamp::now(),
    )
    .await
    .expect("saved");
    let home = get(&s, &format!("/c/{c}")).await;
    assert!(home.body.contains("is struggling"), "{}", home.body);
    assert!(!home.body.contains("is feeling struggling"));
    s.stop().await;
}

#[tokio::test]
async fn lasting_actions_are_asked_first_and_invites_are_posted_then_shown() {
    let s = Setup::new().await;
    let node = s.node.as_ref().expect("running").handle();
    let c = node
        .create_circle("Supper", "", "Maya", Timestamp::now())
        .await
        .expect("made");
    let e = node
        .perform(
            c,
            Op::Moment {
                text: "soup".into(),
            },
            Timestamp::now(),
        )
        .await
        .expect("saved")
        .expect("an id");
    // Taking back: the entry page links to a page that asks; only its
    // button does it.
    let entry = get(&s, &format!("/c/{c}/e/{e}")).await;
    assert!(
        entry
            .body
            .contains(&format!("href=\"/c/{c}/e/{e}/withdraw\"")),
        "{}",
        entry.body
    );
    assert!(!entry.body.contains("action=\"/c/{c}/e/{e}/withdraw\""));
    let ask = get(&s, &format!("/c/{c}/e/{e}/withdraw")).await;
    assert!(ask.body.contains("Take this back?"), "{}", ask.body);
    let read = |node: roundtable_node::NodeHandle| async move {
        let doc = node.doc(c).await.expect("answers");
        roundtable_core::Circle::load(&doc).expect("loads").view()
    };
    assert_eq!(read(node.clone()).await.moments.len(), 1);
    let a = post(&s, &format!("/c/{c}/e/{e}/withdraw"), &[]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert!(read(node.clone()).await.moments.is_empty());

    // An invite, with a label: posted, then shown at its own address,
    // again and again while it is open.
    let made = post(
        &s,
        &format!("/c/{c}/invite"),
        &[("lasts", "1d"), ("uses", "1"), ("label", "for Sam")],
    )
    .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let to = made.header("location").pop().expect("a location");
    let first = get(&s, &to).await;
    let again = get(&s, &to).await;
    let ticket = |body: &str| {
        body.split_once("id=\"made-ticket\"")
            .and_then(|(_, r)| r.split_once('>'))
            .and_then(|(_, r)| r.split_once('<'))
            .map(|(t, _)| t.to_owned())
            .expect("a ticket")
    };
    assert_eq!(ticket(&first.body), ticket(&again.body));
    let view = read(node.clone()).await;
    assert_eq!(view.invites.len(), 1);
    let (id, invite) = view.invites.iter().next().expect("one");
    assert_eq!(invite.label, "for Sam");
    let list = get(&s, &format!("/c/{c}/invite")).await;
    assert!(list.body.contains("for Sam"), "{}", list.body);
    // Revoking asks first.
    let ask = get(&s, &format!("/c/{c}/invite/{id}/revoke")).await;
    assert!(ask.body.contains("Revoke this invite?"), "{}", ask.body);
    assert!(!read(node.clone()).await.invites[id].revoked);
    let a = post(&s, &format!("/c/{c}/invite/{id}/revoke"), &[]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert!(read(node.clone()).await.invites[id].revoked);
    // Revoked: its ticket is not shown any more.
    let gone = request(s.addr(), "GET", &to, &s.ours(), "").await;
    assert_eq!(gone.status, 410, "{}", gone.body);
    // A label longer than a name is refused in words, with what was typed.
    let long = "l".repeat(roundtable_core::schema::limits::NAME + 1);
    let a = post(
        &s,
        &format!("/c/{c}/invite"),
        &[("lasts", "1d"), ("uses", "1"), ("label", &long)],
    )
    .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.body.contains(&long));
    s.stop().await;
}

/// A gathering's proposer changes its time and place from its page; an
/// empty change is refused in words and changes nothing.
#[tokio::test]
async fn a_gatherings_proposer_changes_its_time_and_place_from_its_page() {
    let s = Setup::new().await;
    let node = s.node.as_ref().expect("running").handle();
    let c = node
        .create_circle("Supper", "", "Maya", Timestamp::now())
        .await
        .expect("made");
    let starts = jiff::ZonedDateTime::now()
        .checked_add(jiff::Span::new().days(3))
        .expect("a date")
        .to_string();
    let g = node
        .perform(
            c,
            Op::Gathering {
                title: "Soup night".into(),
                starts: starts.clone(),
                place: "Maya's".into(),
                hosts: vec![],
                one_of_each: false,
            },
            Timestamp::now(),
        )
        .await
        .expect("proposed")
        .expect("an id");
    let page = get(&s, &format!("/c/{c}/g/{g}")).await;
    assert!(
        page.body.contains("Change the time or place"),
        "{}",
        page.body
    );
    let refused = post(
        &s,
        &format!("/c/{c}/g/{g}/edit"),
        &[("at", ""), ("place", "")],
    )
    .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused
            .body
            .contains("Say the new time, the new place, or both.")
    );
    let changed = post(
        &s,
        &format!("/c/{c}/g/{g}/edit"),
        &[("at", "2030-01-05 19:30"), ("place", "the hall")],
    )
    .await;
    assert_eq!(changed.status, 303, "{}", changed.body);
    let reading = node.read(c).await.expect("reads");
    let now = &reading.view.gatherings[&g];
    assert_eq!(now.place, "the hall");
    assert_ne!(now.starts, starts);
    assert!(
        now.starts.starts_with("2030-01-05T19:30:00"),
        "{}",
        now.starts
    );
    s.stop().await;
}

#[tokio::test]
async fn the_recovery_key_is_shown_only_when_asked_with_the_form_and_spells_the_member() {
    let s = Setup::new().await;
    let node = s.node.as_ref().expect("running").handle();
    let (_, maya) = node.identity().await.expect("answers");
    let c = node
        .create_circle("Supper", "", "Maya", Timestamp::now())
        .await
        .expect("made");
    let people = get(&s, &format!("/c/{c}/people")).await;
    assert!(people.body.contains(&format!("/c/{c}/recovery-key")));
    let page = get(&s, &format!("/c/{c}/recovery-key")).await;
    assert!(page.body.contains("Show my recovery key"), "{}", page.body);
    assert!(!page.body.contains("recovery-words"));
    // Without the form's token, nothing is shown.
    let bare = request(
        s.addr(),
        "POST",
        &format!("/c/{c}/recovery-key"),
        &s.posting(),
        "",
    )
    .await;
    assert_ne!(bare.status, 200);
    assert!(!bare.body.contains("recovery-words"));
    let shown = post(&s, &format!("/c/{c}/recovery-key"), &[]).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.header("cache-control"), ["no-store"]);
    let list = shown
        .body
        .split("id=\"recovery-words\"")
        .nth(1)
        .and_then(|rest| rest.split("</ol>").next())
        .expect("the words are listed");
    let words: Vec<&str> = list
        .split("<li>")
        .skip(1)
        .map(|w| w.split("</li>").next().unwrap_or_default())
        .collect();
    assert_eq!(words.len(), 24);
    let restored = roundtable_core::MemberKey::from_words(&words.join(" ")).expect("a key");
    assert_eq!(restored.id(), maya);
    s.stop().await;
}

/// The text of the `textarea` with this id in a page.
fn textarea(body: &str, id: &str) -> String {
    let start = body
        .split(&format!("id=\"{id}\""))
        .nth(1)
        .and_then(|rest| rest.split_once('>'))
        .map(|(_, rest)| rest)
        .expect("the textarea is there");
    start
        .split("</textarea>")
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_request_to_be_recognised_is_made_on_a_new_device_and_looked_at_before_a_vouch() {
    let maya = Setup::new().await;
    let laptop = Setup::new().await;
    let node = maya.node.as_ref().expect("running").handle();
    let c = node
        .create_circle("Supper", "", "Maya", Timestamp::now())
        .await
        .expect("made");
    let ticket = node
        .invite(
            c,
            roundtable_core::InviteKind::Member,
            Timestamp::from_millis(Timestamp::now().as_millis() + 3_600_000),
            1,
            Timestamp::now(),
        )
        .await
        .expect("a ticket")
        .to_line();

    // On the new device: the welcome page leads to the request.
    let welcome = get(&laptop, "/welcome").await;
    assert!(welcome.body.contains("href=\"/recover\""));
    let page = get(&laptop, "/recover").await;
    assert!(page.body.contains("Ask your circle to recognise you"));
    // A ticket that does not read, or no name: refused in words, what was
    // typed kept.
    let bad = post(
        &laptop,
        "/recover",
        &[("ticket", "roundtablexyz"), ("as", "Ana")],
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.body.contains("role=\"alert\""));
    assert!(bad.body.contains("roundtablexyz") && bad.body.contains("value=\"Ana\""));
    let nameless = post(&laptop, "/recover", &[("ticket", &ticket), ("as", " ")]).await;
    assert_eq!(nameless.status, 422);
    assert!(
        nameless
            .body
            .contains("Say the name the circle knows you by")
    );
    let made = post(&laptop, "/recover", &[("ticket", &ticket), ("as", "Ana B")]).await;
    assert_eq!(made.status, 303, "{}", made.body);
    let to = made.header("location").pop().expect("a location");
    assert_eq!(to, format!("/recover/{c}?as=Ana+B"));
    let shown = get(&laptop, &to).await;
    let line = textarea(&shown.body, "request");
    let request = roundtable_net::RecoveryRequest::parse(&line).expect("a request");
    let (device, _) = laptop
        .node
        .as_ref()
        .expect("running")
        .handle()
        .identity()
        .await
        .expect("answers");
    assert_eq!((request.circle, request.name.as_str()), (c, "Ana B"));
    assert_eq!(request.cert.device, device);
    // The request pasted back where a ticket goes, on either page: said
    // what it is, in words without commands.
    let again = post(&laptop, "/recover", &[("ticket", &line), ("as", "Ana B")]).await;
    assert!(
        again.body.contains("That is a request, not a ticket"),
        "{}",
        again.body
    );
    let join = post(&laptop, "/join", &[("ticket", &line), ("as", "Ana B")]).await;
    assert!(join.body.contains("paste it under People"), "{}", join.body);
    assert!(!join.body.contains("roundtable vouch"));
    // Maya's own device holds the circle: nothing to recover there.
    let held = post(&maya, "/recover", &[("ticket", &ticket), ("as", "Maya")]).await;
    assert_eq!(held.status, 422);
    assert!(held.body.contains("holds that circle already"));

    // Maya pastes it: who it is for and the rule, before anything happens.
    let people = get(&maya, &format!("/c/{c}/people")).await;
    assert!(people.body.contains("Vouch for someone on a new device"));
    let look = get(&maya, &format!("/c/{c}/vouch?request={}", encode(&line))).await;
    assert!(
        look.body.contains("A request to become Ana B's device"),
        "{}",
        look.body
    );
    assert!(
        look.body
            .contains(roundtable_core::membership::RECOVERY_RULE)
    );
    let damaged = get(
        &maya,
        &format!("/c/{c}/vouch?request={}", encode(&line[..line.len() - 4])),
    )
    .await;
    assert!(damaged.body.contains("role=\"alert\""), "{}", damaged.body);
    assert!(!damaged.body.contains("I checked with them myself"));
    // Nobody is chosen (Ana B is nobody here): refused in words, nothing
    // written.
    let heads = node.heads(c).await.expect("answers");
    let refused = post(
        &maya,
        &format!("/c/{c}/vouch"),
        &[("request", &line), ("target", "")],
    )
    .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("Choose who they are in the circle"));
    let me = node.identity().await.expect("answers").1.to_string();
    let alone = post(
        &maya,
        &format!("/c/{c}/vouch"),
        &[("request", &line), ("target", &me)],
    )
    .await;
    assert_eq!(alone.status, 422, "{}", alone.body);
    assert_eq!(node.heads(c).await.expect("answers"), heads);

    // The circle's wait: set from the people page, said with who set it.
    let odd = post(&maya, &format!("/c/{c}/recovery-wait"), &[("hours", "5")]).await;
    assert_eq!(odd.status, 422);
    assert!(
        odd.body.contains("between 24 and 336 hours"),
        "{}",
        odd.body
    );
    let set = post(&maya, &format!("/c/{c}/recovery-wait"), &[("hours", "72")]).await;
    assert_eq!(set.status, 303);
    let people = get(&maya, &format!("/c/{c}/people")).await;
    assert!(
        people.body.contains("3 days (set by Maya"),
        "{}",
        people.body
    );
    maya.stop().await;
    laptop.stop().await;
}

#[tokio::test]
async fn a_device_a_recovery_made_a_members_is_them_on_every_page() {
    use roundtable_core::{
        Circle, DeviceKey, EpochKey, Keyring, MemberKey, Profile, ProposalState,
    };
    let mut rng = rand::rng();
    let dir = tempfile::tempdir().expect("a temp dir");
    let home = roundtable_store::Home::new(dir.path());
    let lock = home.lock("test").expect("the lock");
    let (laptop, _) = home.ensure_identity(&lock).expect("an identity");
    // Ana lost every device; Maya and Sam vouched for this laptop, on its
    // own key, ten days ago, and the wait is long over.
    let hour =
        |h: i64| Timestamp::from_millis(Timestamp::now().as_millis() - (240 - h) * 3_600_000);
    let [maya, sam, ana] = [0; 3].map(|_| (MemberKey::generate(), DeviceKey::generate()));
    let mut c = Circle::create(
        "Supper",
        "",
        &maya.0.certify(maya.1.id()),
        &Profile::named("Maya"),
        hour(0),
        &mut rng,
    )
    .expect("made");
    c.set_device(maya.1.id());
    for (who, name) in [(&sam, "Sam"), (&ana, "Ana")] {
        c.add_member(
            &who.0.certify(who.1.id()),
            &Profile::named(name),
            Some(maya.0.id()),
            hour(0),
        )
        .expect("added");
    }
    let ana_id = ana.0.id();
    let p = c
        .vouch(maya.0.id(), ana_id, &laptop.cert, 24, "", hour(1), &mut rng)
        .expect("vouched");
    c.set_device(sam.1.id());
    c.vouch(sam.0.id(), ana_id, &laptop.cert, 24, "", hour(2), &mut rng)
        .expect("vouched");
    c.set_device(maya.1.id());
    c.complete_recovery(maya.0.id(), p, hour(30))
        .expect("carried through");
    let m = c.membership();
    assert_eq!(m.proposals[&p].state, ProposalState::Carried);
    assert_eq!(m.acting_as(laptop.member.id()), ana_id);
    let keys = Keyring::with(EpochKey::random(c.id(), m.epoch, &maya.1, &mut rng));
    home.create_circle(&lock, &c, &keys).expect("kept");
    drop(lock);
    let id = c.id();

    let s = Setup::in_home(dir).await;
    // The people page knows this device as Ana, and offers her forms.
    let people = get(&s, &format!("/c/{id}/people")).await;
    let tagged = people
        .body
        .split("<li>")
        .find(|li| li.contains("<span class=\"tag\">you</span>"))
        .expect("someone is you");
    assert!(tagged.contains("<strong>Ana</strong>"), "{tagged}");
    assert!(people.body.contains("About you"), "{}", people.body);
    assert!(people.body.contains("value=\"Ana\""));
    // So does the home: a check-in form, not the words for someone outside.
    let home_page = get(&s, &format!("/c/{id}")).await;
    assert!(
        home_page.body.contains("How are you?"),
        "{}",
        home_page.body
    );
    // A check-in from the web is Ana's.
    let sent = post(
        &s,
        &format!("/c/{id}/checkin"),
        &[("mood", "okay"), ("note", "new laptop")],
    )
    .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    let node = s.node.as_ref().expect("running").handle();
    let reading = node.read(id).await.expect("answers");
    assert!(
        reading
            .view
            .checkins
            .values()
            .any(|e| e.author == ana_id && e.note == "new laptop")
    );
    s.stop().await;
}
