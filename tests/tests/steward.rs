//! A steward as people run it: the real binary, a steward process, and
//! members' nodes that are never up at the same time.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use roundtable_tests::{TestHome, Up, join_by_hand};

/// `roundtable steward run` of a home, on loopback. Killed when dropped.
struct StewardProcess(Child);

impl StewardProcess {
    fn start(home: &TestHome, port: u16) -> (Self, String) {
        let listen = format!("127.0.0.1:{port}");
        let _ = std::fs::remove_file(home.path().join("ticket"));
        let child = home
            .command()
            .args([
                "steward",
                "run",
                "--listen",
                &listen,
                "--relay",
                "none",
                "--no-mdns",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the steward starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !home.path().join("ticket").exists() {
            assert!(Instant::now() < deadline, "the steward did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let ticket = home.run(&["steward", "ticket", "--json"]).json()["ticket"]
            .as_str()
            .expect("a ticket")
            .to_owned();
        (Self(child), ticket)
    }

    fn kill9(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for StewardProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn show(home: &TestHome) -> serde_json::Value {
    home.run(&["show", "--json"]).ok().json()
}

fn notes(home: &TestHome) -> Vec<String> {
    roundtable_tests::notes(&show(home))
}

/// Runs `home`'s node until `done` holds of its circle (or fails after a
/// minute), then stops it.
fn turn(home: &TestHome, what: &str, done: impl Fn(&TestHome) -> bool) {
    let up = Up::start(home);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(home) {
        assert!(Instant::now() < deadline, "{what}: not within a minute");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Give its own edits a moment to reach the steward, then stop.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = home.run(&["steward", "list", "--json"]).ok().json();
        if status
            .as_array()
            .is_some_and(|a| a.iter().all(|s| s["connected"] == true))
        {
            break;
        }
        assert!(Instant::now() < deadline, "{what}: the steward was not reached");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    up.stop();
}

#[test]
fn three_people_never_up_together_meet_through_a_steward_that_cannot_read_them() {
    let (ana, ben, cara) = (TestHome::new(), TestHome::new(), TestHome::new());
    let box_home = TestHome::new();
    // A port of its own, so it comes back where its ticket says.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let (steward, ticket) = StewardProcess::start(&box_home, port);

    ana.run(&["circle", "create", "Tuesday Supper", "--as", "Ana"])
        .ok();
    join_by_hand(&ana, &ben, "Ben");
    join_by_hand(&ana, &cara, "Cara");
    // Ana adds the steward with no node running; Ben and Cara learn of
    // it from her copy (as their join brought it).
    ana.run(&["steward", "add", &ticket]).ok();
    let listed = ana.run(&["steward", "list", "--json"]).ok().json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    roundtable_tests::sync_by_hand(&[&ana, &ben, &cara]);

    ana.run(&["checkin", "--mood", "okay", "the soup is on for Tuesday"])
        .ok();
    turn(&ana, "Ana's turn", |_| true);
    turn(&ben, "Ben sees Ana's words", |h| {
        notes(h).contains(&"the soup is on for Tuesday".to_owned())
    });
    ben.run(&["checkin", "--mood", "heavy", "a long week, I'll bring bread"])
        .ok();
    turn(&ben, "Ben's turn", |_| true);
    // The steward is killed and comes back: nothing it acknowledged is lost.
    steward.kill9();
    let (steward, again) = StewardProcess::start(&box_home, port);
    assert_eq!(
        roundtable_net::StewardTicket::parse(&again).expect("a ticket").id(),
        roundtable_net::StewardTicket::parse(&ticket).expect("a ticket").id(),
        "the steward keeps its identity"
    );
    turn(&cara, "Cara sees both", |h| {
        let n = notes(h);
        n.contains(&"the soup is on for Tuesday".to_owned())
            && n.contains(&"a long week, I'll bring bread".to_owned())
    });
    turn(&ana, "Ana sees Ben's words", |h| {
        notes(h).contains(&"a long week, I'll bring bread".to_owned())
    });

    // Nothing on the steward's disk reads as the circle.
    let status = box_home.run(&["steward", "status", "--json"]).ok().json();
    assert_eq!(status["lockers"].as_array().map(Vec::len), Some(1), "{status}");
    let mut found = Vec::new();
    for entry in walk(box_home.path()) {
        let bytes = std::fs::read(&entry).expect("readable");
        for needle in ["soup", "Tuesday", "bread", "Ana", "Cara", "Supper"] {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(format!("{} holds {needle:?}", entry.display()));
            }
        }
    }
    assert!(found.is_empty(), "{found:?}");
    drop(steward);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("a directory").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_steward_refuses_bad_tickets_and_bad_words() {
    let home = TestHome::new();
    home.run(&["circle", "create", "Neighbours", "--as", "Lee"]).ok();
    let out = home.run(&["steward", "add", "not a ticket"]).one_line_error();
    assert!(out.stderr.contains("steward's ticket"), "{}", out.stderr);
    let out = home
        .run(&["steward", "ticket"])
        .expect_code(1);
    assert!(out.stderr.contains("steward run"), "{}", out.stderr);
}
