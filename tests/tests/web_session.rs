//! The web session belongs to the node alone: real `roundtable up`
//! processes, a real program of another user of the machine (the
//! `squatter`, run as `nobody` when the tests run as root), real sockets.
//!
//! - A program that takes the app's port while the node restarts receives
//!   the cookie an open tab sends, and it works against nothing; `up`
//!   refuses the taken port, naming who holds it; `roundtable web` prints
//!   no link while no node runs.
//! - No secret is ever in a command line: the browser is opened on an
//!   owner-only file that forwards to a one-time link.
//! - A flood of half-sent requests neither keeps the owner out of the app
//!   nor uses up the node's files.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use roundtable_tests::{TestHome, run_bounded};

const LIMIT: Duration = Duration::from_secs(30);

/// A free port of loopback, on both families (let go at once).
fn free_port() -> u16 {
    for _ in 0..20 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let port = l.local_addr().expect("an address").port();
        if std::net::TcpListener::bind(("::1", port)).is_ok() || !has_ipv6() {
            return port;
        }
    }
    panic!("no free port");
}

fn has_ipv6() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// Lines a child prints, read on a thread.
fn lines_of(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running `roundtable up` with its web app.
struct Up {
    child: Child,
    /// The one-time link it printed.
    link: String,
    /// Its secret host, `<label>.localhost:PORT`.
    host: String,
    port: u16,
}

impl Up {
    fn start(home: &TestHome, port: u16, env: &[(&str, &str)], browser: bool) -> Self {
        let mut cmd = home.command();
        cmd.args([
            "--json",
            "up",
            "--listen",
            "127.0.0.1:0",
            "--relay",
            "none",
            "--no-mdns",
            "--web",
            &format!("127.0.0.1:{port}"),
        ]);
        if !browser {
            cmd.arg("--no-browser");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("roundtable up starts");
        let lines = lines_of(child.stdout.take().expect("piped"));
        let deadline = Instant::now() + LIMIT;
        let mut text = String::new();
        let info: serde_json::Value = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .expect("roundtable up prints its JSON in time");
            text.push_str(&line);
            text.push('\n');
            if let Ok(v) = serde_json::from_str(&text) {
                break v;
            }
        };
        // Keep reading, so the node never blocks on a full pipe.
        std::thread::spawn(move || while lines.recv().is_ok() {});
        let link = info["web"].as_str().expect("a link").to_owned();
        let host = link
            .strip_prefix("http://")
            .and_then(|l| l.split_once('/'))
            .map(|(h, _)| h.to_owned())
            .expect("a host");
        assert!(
            host.ends_with(&format!(".localhost:{port}")),
            "{link} is not at a secret name of port {port}"
        );
        let up = Self {
            child,
            link,
            host,
            port,
        };
        let deadline = Instant::now() + LIMIT;
        while home.run(&["status", "--json"]).json()["running"] != true {
            assert!(Instant::now() < deadline, "the node does not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        up
    }

    fn path_of(&self, link: &str) -> String {
        link.split_once(&self.host)
            .expect("this run's host")
            .1
            .to_owned()
    }

    /// SIGTERM; the node must exit cleanly.
    fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("the node's status") {
                assert!(status.success(), "the node exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "the node did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn cookie(&self) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            if !k.eq_ignore_ascii_case("set-cookie") {
                return None;
            }
            let first = v.trim().split(';').next()?;
            first.strip_prefix("rt_session=").map(str::to_owned)
        })
    }
}

/// One request to `127.0.0.1:port`, naming `host`, with `session` as the
/// cookie if given.
fn http(port: u16, method: &str, host: &str, path: &str, session: Option<&str>) -> Answer {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("a timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(c) = session {
        req.push_str(&format!("Cookie: rt_session={c}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!(
            "Origin: http://{host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n"
        ));
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
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// Whether these tests run as root, so the squatter can be another user.
fn root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
    })
}

/// The squatter: another user's program (as `nobody` when run as root).
struct Squatter {
    child: Child,
    lines: mpsc::Receiver<String>,
    port: u16,
}

impl Squatter {
    fn start(port: u16) -> Self {
        let bin = env!("CARGO_BIN_EXE_squatter");
        let mut cmd = if root() {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
                bin,
            ]);
            c
        } else {
            Command::new(bin)
        };
        let mut child = cmd
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the squatter starts");
        let lines = lines_of(child.stdout.take().expect("piped"));
        let first = lines
            .recv_timeout(LIMIT)
            .expect("the squatter listens in time");
        let port = first
            .strip_prefix("LISTENING ")
            .and_then(|p| p.parse().ok())
            .expect("its port");
        Self { child, lines, port }
    }

    /// The request heads it received so far.
    fn received(&self) -> Vec<String> {
        let mut got = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(300)) {
            if let Some(r) = l.strip_prefix("REQUEST ") {
                got.push(r.to_owned());
            }
        }
        got
    }
}

impl Drop for Squatter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The words a port's holder is named with.
fn holder_words() -> &'static str {
    if root() {
        "another user, nobody (uid 65534)"
    } else {
        "another program of yours"
    }
}

#[test]
fn a_program_that_takes_the_port_during_a_restart_gets_nothing_that_works() {
    let home = TestHome::new();
    home.run(&["circle", "create", "Tuesday Supper", "--as", "Maya"])
        .ok();
    let port = free_port();
    let first = Up::start(&home, port, &[], false);
    let a = http(port, "GET", &first.host, &first.path_of(&first.link), None);
    assert_eq!(a.status, 200, "{}", a.body);
    let session = a.cookie().expect("signed in");
    assert_eq!(
        http(port, "GET", &first.host, "/status", Some(&session)).status,
        200
    );
    let old_host = first.host.clone();
    // A link of the first run, never used.
    let web = home.run(&["web"]).ok();
    let unused = web.stdout.lines().next().expect("a link").trim().to_owned();
    let unused = first.path_of(&unused);
    let circle = home.run(&["circle", "list", "--json"]).json()[0]["id"]
        .as_str()
        .expect("a circle")
        .to_owned();
    first.stop();

    // While no node runs, `roundtable web` prints no link at all.
    let web = home.run(&["web"]).expect_code(1);
    assert!(!web.stdout.contains("http"), "{}", web.stdout);
    assert!(web.stderr.contains("roundtable up"), "{}", web.stderr);

    // Another user takes the port; the open tab reconnects to it and hands
    // over its cookie, as a browser would (it is the same host and port).
    let squatter = Squatter::start(port);
    assert_eq!(squatter.port, port);
    let a = http(port, "GET", &old_host, "/events", Some(&session));
    assert_eq!(a.status, 200);
    let got = squatter.received();
    assert!(
        got.iter().any(|r| r.contains(&session)),
        "the squatter did not get the cookie: {got:?}"
    );

    // `up` refuses the taken port, naming who holds it, and moves nowhere.
    let mut cmd = home.command();
    cmd.args([
        "up",
        "--listen",
        "127.0.0.1:0",
        "--relay",
        "none",
        "--no-mdns",
        "--no-browser",
        "--web",
        &format!("127.0.0.1:{port}"),
    ]);
    let refused = run_bounded(cmd, LIMIT).expect_code(1).one_line_error();
    assert!(
        refused.stderr.contains(holder_words()),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains(&port.to_string())
            && refused.stderr.contains("--web 127.0.0.1:PORT"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stdout.contains("http"), "{}", refused.stdout);
    drop(squatter);

    // The node again, on its port, at the name kept in its home: nothing
    // the squatter got works there, nor at another name, for a page or a
    // pairing ticket.
    let second = Up::start(&home, port, &[], false);
    assert_eq!(second.host, old_host);
    let other = format!("{}.localhost:{port}", "q".repeat(32));
    for host in [&other, &second.host] {
        for (method, path) in [
            ("GET", "/status".to_owned()),
            ("GET", format!("/c/{circle}/pair")),
            ("POST", format!("/c/{circle}/pair")),
        ] {
            let a = http(port, method, host, &path, Some(&session));
            assert!(
                a.status == 401 || a.status == 421,
                "{method} {path} at {host}: {} {}",
                a.status,
                a.body
            );
            assert!(a.body.contains("roundtable web --open"), "{}", a.body);
        }
    }
    // Nor does the first run's link.
    let a = http(port, "GET", &second.host, &unused, None);
    assert_eq!(a.status, 403);
    // The owner gets in again with a fresh link from the running node.
    let web = home.run(&["web"]).ok();
    let link = web.stdout.lines().next().expect("a link").trim().to_owned();
    let a = http(port, "GET", &second.host, &second.path_of(&link), None);
    assert_eq!(a.status, 200, "{}", a.body);
    let fresh = a.cookie().expect("signed in");
    assert_eq!(
        http(port, "GET", &second.host, "/status", Some(&fresh)).status,
        200
    );
    // A link works once; `--new-link` signs every browser out.
    assert_eq!(
        http(port, "GET", &second.host, &second.path_of(&link), None).status,
        403
    );
    home.run(&["web", "--new-link"]).ok();
    assert_eq!(
        http(port, "GET", &second.host, "/status", Some(&fresh)).status,
        401
    );
    second.stop();
}

/// Every process's command line on this machine.
fn all_command_lines() -> Vec<String> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .collect()
        })
        .unwrap_or_default()
}

/// The opener file's link, after checking it is the owner's alone.
fn link_in_opener(home: &Path) -> String {
    let path = home.join("web-open.html");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("the opener exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "others may read the opener: {mode:o}");
    }
    let page = std::fs::read_to_string(&path).expect("reads");
    page.split_once("url=")
        .and_then(|(_, r)| r.split_once('"'))
        .map(|(l, _)| l.to_owned())
        .expect("a link in the opener")
}

#[test]
fn no_secret_is_ever_in_a_command_line() {
    let home = TestHome::new();
    home.run(&["circle", "create", "Tuesday Supper", "--as", "Maya"])
        .ok();
    // A browser opener that writes down what it was given.
    let bin = tempfile::tempdir().expect("a temp dir");
    let record = bin.path().join("opened");
    let opener = bin.path().join("xdg-open");
    std::fs::write(
        &opener,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\n",
            record.display()
        ),
    )
    .expect("writes");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755))
            .expect("executable");
    }
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [("PATH", path.as_str()), ("DISPLAY", ":99")];
    let port = free_port();
    let up = Up::start(&home, port, &env, true);
    let label = up.host.split('.').next().expect("a label").to_owned();
    let deadline = Instant::now() + LIMIT;
    let opened = loop {
        if let Ok(s) = std::fs::read_to_string(&record)
            && !s.is_empty()
        {
            break s;
        }
        assert!(Instant::now() < deadline, "no browser was opened");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The browser was given a file, and no secret.
    assert!(
        opened.trim().starts_with("file://") && opened.contains("web-open.html"),
        "{opened}"
    );
    let file_link = link_in_opener(home.path());
    assert!(file_link.starts_with(&format!("http://{}/login?token=", up.host)));
    // `roundtable web --open` too.
    let mut cmd = home.command();
    cmd.args(["web", "--open"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let printed = run_bounded(cmd, LIMIT).ok().stdout;
    let deadline = Instant::now() + LIMIT;
    let opened = loop {
        let s = std::fs::read_to_string(&record).unwrap_or_default();
        if s.lines().count() >= 2 {
            break s;
        }
        assert!(Instant::now() < deadline, "no browser was opened");
        std::thread::sleep(Duration::from_millis(50));
    };
    let second_link = link_in_opener(home.path());
    let printed = printed.lines().next().unwrap_or("").to_owned();
    let tokens: Vec<String> = [&up.link, &file_link, &second_link, &printed]
        .iter()
        .filter_map(|l| l.split_once("token=").map(|(_, t)| t.trim().to_owned()))
        .collect();
    assert_eq!(tokens.len(), 4);
    for secret in tokens.iter().chain([&label]) {
        assert!(!opened.contains(secret.as_str()), "{opened}");
        for line in all_command_lines() {
            assert!(!line.contains(secret.as_str()), "a secret in: {line}");
        }
    }
    // Each is a link of its own, and the ones through the file let in.
    for link in [&file_link, &second_link] {
        let a = http(port, "GET", &up.host, &up.path_of(link), None);
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(a.cookie().is_some());
    }
    up.stop();
}

#[test]
fn a_flood_of_half_sent_requests_leaves_the_owner_in() {
    let home = TestHome::new();
    home.run(&["circle", "create", "Tuesday Supper", "--as", "Maya"])
        .ok();
    let port = free_port();
    // The node with few files to spare: without a bound on connections,
    // the flood below would use them all up.
    const FILES: &str = "160";
    const FLOOD: usize = 200;
    let prlimit = Command::new("prlimit").arg("--version").output();
    assert!(
        prlimit.is_ok_and(|o| o.status.success()),
        "this test needs prlimit (util-linux)"
    );
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={FILES}:{FILES}"))
        .arg("--")
        .arg(roundtable_tests::roundtable_bin())
        .env("ROUNDTABLE_CONFIG", home.config_path())
        .arg("--home")
        .arg(home.path())
        .args([
            "--json",
            "up",
            "--listen",
            "127.0.0.1:0",
            "--relay",
            "none",
            "--no-mdns",
            "--no-browser",
            "--web",
            &format!("127.0.0.1:{port}"),
        ]);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starts");
    let lines = lines_of(child.stdout.take().expect("piped"));
    let mut text = String::new();
    let info: serde_json::Value = loop {
        let line = lines.recv_timeout(LIMIT).expect("the node's JSON in time");
        text.push_str(&line);
        text.push('\n');
        if let Ok(v) = serde_json::from_str(&text) {
            break v;
        }
    };
    std::thread::spawn(move || while lines.recv().is_ok() {});
    let mut up = Up {
        child,
        link: info["web"].as_str().expect("a link").to_owned(),
        host: String::new(),
        port,
    };
    up.host = up
        .link
        .strip_prefix("http://")
        .and_then(|l| l.split_once('/'))
        .map(|(h, _)| h.to_owned())
        .expect("a host");
    let a = http(up.port, "GET", &up.host, &up.path_of(&up.link), None);
    let session = a.cookie().expect("signed in");

    // Many requests that never finish their head.
    let flood: Vec<TcpStream> = (0..FLOOD)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connects");
            s.write_all(
                format!("GET /status HTTP/1.1\r\nHost: {}\r\nX-Slow: ", up.host).as_bytes(),
            )
            .expect("writes");
            s
        })
        .collect();
    // The owner's check-in through the CLI works (the node has files).
    home.run(&["checkin", "--mood", "okay", "still here"]).ok();
    // And the owner's browser gets its page, while the flood is still held.
    let a = http(port, "GET", &up.host, "/status", Some(&session));
    assert_eq!(a.status, 200, "{}", a.body);
    // A half-sent request is let go by the app, not held for ever.
    let mut first = flood.into_iter().next().expect("one");
    first
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("a timeout");
    let mut buf = [0u8; 1024];
    loop {
        match first.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the half-sent request was held: {e}"),
        }
    }
    up.stop();
}
