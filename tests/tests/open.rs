//! `roundtable open`, what a click on the launcher does, with the real
//! binary on loopback: with no node running it starts one that outlives it
//! and prints a link that lets a browser into the app; run again, it asks
//! the same node for a fresh link and never starts a second one.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use roundtable_tests::TestHome;

/// A free port of loopback, on both families where there is IPv6 (let go
/// at once).
fn free_port() -> u16 {
    for _ in 0..20 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let port = l.local_addr().expect("an address").port();
        if std::net::TcpListener::bind(("::1", port)).is_ok()
            || std::net::TcpListener::bind("[::1]:0").is_err()
        {
            return port;
        }
    }
    panic!("no free port");
}

/// The node `open` started, by the pid in the home's lock; stopped (and
/// killed if it lingers) when dropped.
struct Started {
    pid: u32,
}

/// The pid of the `roundtable up` that holds the home.
fn holder(home: &Path) -> u32 {
    let holder = std::fs::read_to_string(home.join("lock")).expect("the home is locked");
    assert!(holder.contains("(roundtable up)"), "{holder}");
    holder
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {holder:?}"))
}

impl Started {
    fn of(home: &Path) -> Self {
        Self { pid: holder(home) }
    }

    fn alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .is_ok_and(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
    }

    /// SIGTERM, then the node must be gone within 15 s.
    fn stop(self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.alive() {
            assert!(
                Instant::now() < deadline,
                "the node did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if self.alive() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
    }
}

/// One GET to `127.0.0.1:port` naming `host`; the status, head and body.
fn get(port: u16, host: &str, path: &str, cookie: Option<&str>) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a timeout");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: rt_session={c}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("writes");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// Follows a login link as a browser would: the page it answers sets the
/// session cookie; the app's first page then opens with it. Its body.
fn app_behind(link: &str) -> String {
    let rest = link
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not a link: {link}"));
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    let port: u16 = host
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    assert!(host.contains(".localhost:"), "{link}");
    let (status, head, _) = get(port, host, path, None);
    assert_eq!(status, 200, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("set-cookie").then_some(v)?;
            v.trim()
                .split(';')
                .next()?
                .strip_prefix("rt_session=")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no session cookie:\n{head}"));
    let (mut status, mut head, mut body) = get(port, host, "/", Some(&cookie));
    // The first page of a person in one circle is that circle's.
    if status == 303 {
        let to = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("location")
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("nowhere to go:\n{head}"));
        (status, head, body) = get(port, host, &to, Some(&cookie));
    }
    assert_eq!(status, 200, "{head}\n{body}");
    body
}

#[test]
fn open_starts_the_node_once_and_prints_a_link_that_serves_the_app() {
    let home = TestHome::new();
    home.run(&["circle", "create", "Tuesday Supper", "--as", "Maya"])
        .ok();
    let port = free_port();
    let web = format!("127.0.0.1:{port}");
    let open = ["open", "--print", "--web", &web, "--relay", "none"];

    let r = home.run(&open).ok();
    let node = Started::of(home.path());
    let link = r.stdout.trim().to_owned();
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    assert!(link.contains("/login?token="), "{link}");
    assert!(node.alive(), "the node stopped when `open` ended");
    let page = app_behind(&link);
    assert!(page.contains("Tuesday Supper"), "{page}");

    // Again: the same node answers with a fresh link; no second node.
    let r = home.run(&["open", "--json", "--web", &web]).ok();
    let v = r.json();
    assert_eq!(v["started"], false, "{v}");
    let again = v["web"].as_str().expect("a link").to_owned();
    assert_ne!(again, link);
    assert_eq!(holder(home.path()), node.pid);
    assert!(app_behind(&again).contains("Tuesday Supper"));
    // The link printed first was spent by its one use.
    node.stop();
    // With the node stopped, the home is free for any command.
    home.run(&["feed"]).ok();
}

#[test]
fn open_says_in_one_line_why_a_node_could_not_start() {
    let home = TestHome::new();
    // A port outside loopback is refused by the node `open` starts.
    let r = home
        .run(&[
            "open",
            "--print",
            "--web",
            "0.0.0.0:7777",
            "--relay",
            "none",
        ])
        .expect_code(1)
        .one_line_error();
    assert!(r.stderr.contains("node.log"), "{}", r.stderr);
    assert!(
        r.stderr.contains("this machine only"),
        "the node's own reason is told: {}",
        r.stderr
    );
}
