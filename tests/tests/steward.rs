//! A steward as people run it: the real binary, a steward process, and
//! members' nodes that are never up at the same time.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use roundtable_tests::{TestHome, Up};

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
        assert!(
            Instant::now() < deadline,
            "{what}: the steward was not reached"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    up.stop();
}

/// Runs `home`'s node until the invite it makes has reached the steward;
/// returns the ticket.
fn invite_turn(home: &TestHome, uses: &str) -> String {
    let up = Up::start(home);
    wait_connected(home, "the inviter");
    let out = home.run(&["invite", "--uses", uses, "--json"]).ok().json();
    let ticket = out["ticket"].as_str().expect("a ticket").to_owned();
    wait_invites_left(home);
    up.stop();
    ticket
}

/// Runs `home`'s node until a pairing ticket it makes has reached the
/// steward; returns the ticket.
fn pair_turn(home: &TestHome) -> String {
    let up = Up::start(home);
    wait_connected(home, "the inviter");
    let out = home.run(&["pair", "--json"]).ok().json();
    let ticket = out["ticket"].as_str().expect("a ticket").to_owned();
    wait_invites_left(home);
    up.stop();
    ticket
}

fn wait_connected(home: &TestHome, who: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = home.run(&["steward", "list", "--json"]).ok().json();
        if status
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(|s| s["connected"] == true))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{who}: the steward was not reached: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let (steward, steward_ticket) = StewardProcess::start(&box_home, port);

    // Ana starts a circle and has it kept by the steward, with no node up.
    ana.run(&["circle", "create", "Tuesday Supper", "--as", "Ana"])
        .ok();
    ana.run(&["steward", "add", &steward_ticket]).ok();
    let listed = ana.run(&["steward", "list", "--json"]).ok().json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    ana.run(&["checkin", "--mood", "okay", "the soup is on for Tuesday"])
        .ok();
    // Her turn: one ticket for two people; then her laptop closes.
    let ticket = invite_turn(&ana, "2");

    // Ben joins while every member's device is off: from the steward.
    let out = ben.run(&["join", &ticket, "--as", "Ben"]).ok();
    assert!(out.stdout.contains("Tuesday Supper"), "{}", out.stdout);
    assert!(
        notes(&ben).contains(&"the soup is on for Tuesday".to_owned()),
        "Ben holds the circle as it was"
    );
    ben.run(&[
        "checkin",
        "--mood",
        "heavy",
        "a long week, I'll bring bread",
    ])
    .ok();
    turn(&ben, "Ben's turn", |_| true);

    // The steward is killed and comes back: nothing it acknowledged is lost.
    steward.kill9();
    let (steward, again) = StewardProcess::start(&box_home, port);
    assert_eq!(
        roundtable_net::StewardTicket::parse(&again)
            .expect("a ticket")
            .id(),
        roundtable_net::StewardTicket::parse(&steward_ticket)
            .expect("a ticket")
            .id(),
        "the steward keeps its identity"
    );

    // Cara joins with the same ticket, from the steward too, and sees Ben's words on her turn.
    cara.run(&["join", &ticket, "--as", "Cara"]).ok();
    cara.run(&["moment", "first supper with you all"]).ok();
    turn(&cara, "Cara sees Ben", |h| {
        notes(h).contains(&"a long week, I'll bring bread".to_owned())
    });
    turn(&ana, "Ana sees both", |h| {
        let n = notes(h);
        n.contains(&"a long week, I'll bring bread".to_owned())
            && show(h).to_string().contains("first supper with you all")
    });
    turn(&ben, "Ben sees Cara", |h| {
        show(h).to_string().contains("first supper with you all")
    });
    let members = ben.run(&["members", "--json"]).ok().stdout;
    for name in ["Ana", "Ben", "Cara"] {
        assert!(members.contains(name), "{members}");
    }

    // A single-use ticket: the first joiner takes it, the second is refused
    // by the steward in words.
    let once = invite_turn(&ana, "1");
    let (dan, eve) = (TestHome::new(), TestHome::new());
    dan.run(&["join", &once, "--as", "Dan"]).ok();
    let refused = eve.run(&["join", &once, "--as", "Eve"]).one_line_error();
    assert!(
        refused.stderr.contains("no invite waits"),
        "{}",
        refused.stderr
    );
    assert!(eve.store().circle_ids().expect("readable").is_empty());

    // Ana pairs her phone while her laptop is off: the pairing waits at
    // the steward too, with her member key sealed to its ticket.
    let pairing = pair_turn(&ana);
    let phone = TestHome::new();
    phone.run(&["pair", &pairing]).ok();
    let ana_id = ana.run(&["id", "--json"]).ok().json();
    let phone_id = phone.run(&["id", "--json"]).ok().json();
    assert_eq!(
        ana_id["member"], phone_id["member"],
        "the phone speaks for Ana"
    );
    assert!(notes(&phone).contains(&"the soup is on for Tuesday".to_owned()));
    phone.run(&["moment", "written on Ana's phone"]).ok();
    turn(&phone, "the phone's turn", |_| true);
    turn(&ben, "Ben sees what Ana's phone wrote", |h| {
        show(h).to_string().contains("written on Ana's phone")
    });

    // Nothing on the steward's disk reads as the circle.
    let status = box_home.run(&["steward", "status", "--json"]).ok().json();
    assert_eq!(
        status["lockers"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );
    let mut found = Vec::new();
    for entry in walk(box_home.path()) {
        let bytes = std::fs::read(&entry).expect("readable");
        for needle in [
            "soup",
            "Tuesday",
            "bread",
            "Ana",
            "Cara",
            "Supper",
            "first supper",
        ] {
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
    home.run(&["circle", "create", "Neighbours", "--as", "Lee"])
        .ok();
    let out = home
        .run(&["steward", "add", "not a ticket"])
        .one_line_error();
    assert!(out.stderr.contains("steward's ticket"), "{}", out.stderr);
    let out = home.run(&["steward", "ticket"]).expect_code(1);
    assert!(out.stderr.contains("steward run"), "{}", out.stderr);
}

#[test]
fn members_name_list_and_stop_stewards_in_words() {
    let home = TestHome::new();
    home.run(&["circle", "create", "Neighbours", "--as", "Lee"])
        .ok();
    home.run(&["circle", "create", "Book club", "--as", "Lee"])
        .ok();
    let (pi_home, spare_home) = (TestHome::new(), TestHome::new());
    let free = || {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free port")
            .port()
    };
    let (pi, pi_ticket) = StewardProcess::start(&pi_home, free());
    let (spare, spare_ticket) = StewardProcess::start(&spare_home, free());
    // Plain `steward ticket` ends with the ticket, the line to copy.
    let out = pi_home.run(&["steward", "ticket"]).ok();
    assert_eq!(out.stdout.lines().last(), Some(pi_ticket.as_str()));
    pi.kill9();
    spare.kill9();

    let neighbours = ["--circle", "neighbours"];
    let run = |args: &[&str]| home.run(&[&neighbours[..], args].concat());
    // A name past the circle's bound: one line, nothing recorded.
    let long = "Pi ".repeat(40);
    let out = run(&["steward", "add", &pi_ticket, "--name", &long]).one_line_error();
    assert!(out.stderr.contains("steward's name"), "{}", out.stderr);
    let out = run(&["steward", "add", &pi_ticket, "--name", "Lee's Pi"]).ok();
    assert!(out.stdout.contains("kept by Lee's Pi"), "{}", out.stdout);
    run(&["steward", "add", &spare_ticket]).ok();
    // Each circle has its own: the book club has none.
    let other = home
        .run(&["--circle", "book club", "steward", "list", "--json"])
        .ok()
        .json();
    assert_eq!(other.as_array().map(Vec::len), Some(0), "{other}");
    let listed = run(&["steward", "list", "--json"]).ok().json();
    let names: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| s["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["Lee's Pi", "Lee's steward"], "{listed}");
    let out = run(&["steward", "list"]).ok();
    assert!(
        out.stdout
            .contains("Lee's Pi  added by Lee  reached when your node runs"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Lee's steward  added by Lee"),
        "{}",
        out.stdout
    );

    // Stopping one, by the start of its id: it stays listed, with who.
    let id = listed[0]["id"].as_str().expect("an id").to_owned();
    run(&["steward", "remove", &id[..6]]).ok();
    let out = run(&["steward", "list"]).ok();
    assert!(
        out.stdout
            .contains("Lee's Pi  added by Lee  no longer used: Lee stopped the circle using it"),
        "{}",
        out.stdout
    );
    let listed = run(&["steward", "list", "--json"]).ok().json();
    assert!(listed[0]["removed_by"].is_string(), "{listed}");
    assert!(listed[1]["removed_by"].is_null(), "{listed}");
    // Stopped already, or never there: refused in words.
    let out = run(&["steward", "remove", &id[..6]]).one_line_error();
    assert!(out.stderr.contains("steward"), "{}", out.stderr);
    // Added again, it is a record of its own.
    run(&["steward", "add", &pi_ticket, "--name", "Lee's Pi"]).ok();
    let listed = run(&["steward", "list", "--json"]).ok().json();
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
    // Two called alike: the name alone does not say which.
    let third_home = TestHome::new();
    let (third, third_ticket) = StewardProcess::start(&third_home, free());
    third.kill9();
    run(&["steward", "add", &third_ticket]).ok();
    let out = run(&["steward", "remove", "lee's steward"]).one_line_error();
    assert!(
        out.stderr.contains("more than one steward is called"),
        "{}",
        out.stderr
    );
    run(&["steward", "remove", "Lee's Pi"]).ok();
    let listed = run(&["steward", "list", "--json"]).ok().json();
    let in_use = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter(|s| s["removed_by"].is_null())
        .count();
    assert_eq!(in_use, 2, "{listed}");
}

#[test]
fn an_invite_waiting_at_the_steward_lets_the_joiner_in_after_the_key_changed() {
    let (ana, phone, fay) = (TestHome::new(), TestHome::new(), TestHome::new());
    let box_home = TestHome::new();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let (steward, steward_ticket) = StewardProcess::start(&box_home, port);
    ana.run(&["circle", "create", "Allotment", "--as", "Ana"])
        .ok();
    ana.run(&["steward", "add", &steward_ticket, "--name", "Ana's Pi"])
        .ok();
    let pairing = pair_turn(&ana);
    phone.run(&["pair", &pairing]).ok();
    let phone_id = phone.run(&["id", "--json"]).ok().json()["device"]
        .as_str()
        .expect("a device id")
        .to_owned();
    turn(&phone, "the phone's turn", |_| true);

    // Ana's turn: an invite left at the steward; then, while the steward
    // is down, her phone is lost and revoked, so the circle's key changes
    // while the invite waits, and the change that moved it reaches the
    // steward only on the new key's shelf.
    let up = Up::start(&ana);
    wait_connected(&ana, "Ana");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ana
        .run(&["device", "list", "--json"])
        .ok()
        .stdout
        .contains(&phone_id)
    {
        assert!(
            Instant::now() < deadline,
            "Ana's copy never heard of her phone"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ticket = ana.run(&["invite", "--uses", "1", "--json"]).ok().json()["ticket"]
        .as_str()
        .expect("a ticket")
        .to_owned();
    wait_invites_left(&ana);
    steward.kill9();
    ana.run(&["device", "revoke", &phone_id[..12]]).ok();
    let (_steward, _) = StewardProcess::start(&box_home, port);
    // Under the new key, her copy and her invite both at the steward.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = ana.run(&["status", "--json"]).ok().json();
        let c = &status["circles"][0];
        let st = &c["stewards"][0];
        if c["epoch"].as_u64() == Some(1)
            && st["up_to_date"] == true
            && st["invites_waiting"].as_u64() == Some(0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "not at the steward: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    up.stop();

    // Fay joins while every device is off: she comes in under the key
    // the circle uses now, so what she writes reaches Ana.
    fay.run(&["join", &ticket, "--as", "Fay"]).ok();
    fay.run(&["moment", "planted the beans"]).ok();
    turn(&fay, "Fay's turn", |_| true);
    turn(&ana, "Ana sees Fay", |h| {
        show(h).to_string().contains("planted the beans")
    });
    let members = ana.run(&["members", "--json"]).ok().stdout;
    assert!(members.contains("Fay"), "{members}");
}

/// Waits until every invite or pairing `home` made is left at its
/// steward.
fn wait_invites_left(home: &TestHome) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = home.run(&["status", "--json"]).ok().json();
        if list["circles"][0]["stewards"][0]["invites_waiting"].as_u64() == Some(0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the invite or pairing did not reach the steward: {list}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
