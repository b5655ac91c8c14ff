//! The real binary as separate processes: two homes, `roundtable up` on
//! both, invite → join → edits on each side → identical `show --json`; an
//! offline edit merges when the node comes back; SIGTERM stops in order.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use roundtable_tests::{TestHome, Up, notes};

fn wait_identical(homes: &[&TestHome], check: impl Fn(&serde_json::Value) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shows: Vec<String> = homes
            .iter()
            .map(|h| h.run(&["show", "--json"]).ok().stdout)
            .collect();
        if shows.windows(2).all(|w| w[0] == w[1])
            && check(&serde_json::from_str(&shows[0]).unwrap())
        {
            return shows[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the homes did not converge:\n{}",
            shows.join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_homes_invite_join_edit_and_converge() {
    let (maya, sam) = (TestHome::new(), TestHome::new());
    maya.run(&["circle", "create", "Tuesday Supper", "--as", "Maya"])
        .ok();
    // Inviting needs the node: without it, a clear error.
    let r = maya.run(&["invite"]).expect_code(1).one_line_error();
    assert!(r.stderr.contains("roundtable up"), "{}", r.stderr);

    let maya_up = Up::start(&maya);
    let sam_up = Up::start(&sam);
    let ticket = maya
        .run(&["invite", "--expires", "1h"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    sam.run(&["join", &ticket, "--as", "Sam"]).ok();
    // A used-up ticket is refused with one line, exit 2.
    let other = TestHome::new();
    let r = other
        .run(&["join", &ticket, "--as", "Eve"])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("used up"), "{}", r.stderr);

    maya.run(&["checkin", "--mood", "heavy", "long week"]).ok();
    sam.run(&["checkin", "--mood", "okay", "here if you need me"])
        .ok();
    wait_identical(&[&maya, &sam], |v| {
        notes(v) == ["here if you need me", "long week"]
    });
    let status = maya.run(&["status", "--json"]).ok().json();
    assert_eq!(
        status["circles"][0]["devices"].as_array().unwrap().len(),
        1,
        "{status:#}"
    );

    // Sam goes offline, writes anyway; it merges when his node is back.
    sam_up.stop();
    sam.run(&["checkin", "--mood", "thriving", "written offline"])
        .ok();
    let sam_up = Up::start(&sam);
    wait_identical(&[&maya, &sam], |v| notes(v).len() == 3);
    maya_up.stop();
    sam_up.stop();
    assert!(
        !maya.path().join("control.sock").exists(),
        "the socket is removed on shutdown"
    );
}

#[test]
fn bad_tickets_are_one_line_errors() {
    let home = TestHome::new();
    for (ticket, words) in [
        ("hello", "not a Roundtable ticket"),
        ("roundtableaaaa", "damaged or incomplete"),
        ("roundtable", "damaged or incomplete"),
    ] {
        let r = home
            .run(&["join", ticket, "--as", "Eve"])
            .expect_code(2)
            .one_line_error();
        assert!(r.stderr.contains(words), "{ticket}: {}", r.stderr);
    }
    assert!(
        !home.path().join("circles").exists(),
        "a bad ticket changed nothing"
    );
}

#[test]
fn expired_used_up_revoked_and_tampered_tickets_are_refused() {
    use roundtable_net::CircleTicket;

    let maya = TestHome::new();
    maya.run(&["circle", "create", "Tuesday Supper", "--as", "Maya"])
        .ok();
    let maya_up = Up::start(&maya);
    let ticket = |args: &[&str]| maya.run(args).ok().stdout.trim().to_owned();
    let refused = |t: &str, words: &str| {
        let eve = TestHome::new();
        let r = eve
            .run(&["join", t, "--as", "Eve"])
            .expect_code(2)
            .one_line_error();
        assert!(r.stderr.contains(words), "{words}: {}", r.stderr);
        assert!(
            !eve.path().join("circles").exists(),
            "a refused ticket changed nothing"
        );
    };

    // Expired: made long ago (the node takes the invite's time from the
    // command), for one day.
    let old = maya
        .run_at("2026-01-01T10:00:00Z", &["invite", "--expires", "24h"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    refused(&old, "expired");

    // Used up: one use, used.
    let once = ticket(&["invite", "--expires", "1h"]);
    let sam = TestHome::new();
    sam.run(&["join", &once, "--as", "Sam"]).ok();
    refused(&once, "used up");

    // Revoked.
    let withdrawn = ticket(&["invite", "--expires", "1h"]);
    let invites = maya.run(&["invite", "list", "--json"]).ok().json();
    let open: Vec<&serde_json::Value> = invites
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["state"] == "open")
        .collect();
    assert_eq!(open.len(), 1, "{invites:#}");
    let id = open[0]["id"].as_str().unwrap();
    maya.run(&["invite", "revoke", &id[..8]]).ok();
    refused(&withdrawn, "revoked");

    // Tampered: a longer expiry, with the checksum made good again.
    let fresh = ticket(&["invite", "--expires", "1h"]);
    let mut t = CircleTicket::parse(&fresh).unwrap();
    t.expires_at = t.expires_at.plus_millis(30 * 86_400_000);
    refused(&t.to_line(), "altered");

    // The circle key is never in a ticket, and its file is private.
    let id = maya.run(&["circle", "list", "--json"]).ok().json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_file = maya.path().join("secrets").join(&id);
    let text = std::fs::read_to_string(&key_file).unwrap();
    let key_hex = text.trim().rsplit(':').next().unwrap().to_owned();
    let key: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&key_hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    for line in [&old, &once, &withdrawn, &fresh] {
        let t = CircleTicket::parse(line).unwrap();
        let bytes = iroh_tickets::Ticket::encode_bytes(&t);
        assert!(!bytes.windows(32).any(|w| w == key.as_slice()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    maya_up.stop();
}

#[test]
fn names_nobody_confuses_and_devices_with_names() {
    let (first, second) = (TestHome::new(), TestHome::new());
    first
        .run(&["circle", "create", "Tuesday Supper", "--as", "Ana"])
        .ok();
    // The founder's device is named after the computer.
    let devices = first.run(&["device", "list", "--json"]).ok().json();
    assert!(
        !devices[0]["name"].as_str().unwrap().is_empty(),
        "{devices:#}"
    );
    first
        .run(&["checkin", "--mood", "okay", "hello from Ana"])
        .ok();
    let first_up = Up::start(&first);
    let second_up = Up::start(&second);
    let ticket = first.run(&["invite"]).ok().stdout.trim().to_owned();
    // Wrapped by a chat app: still one ticket.
    let wrapped: String = ticket
        .as_bytes()
        .chunks(60)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    // "ana" is Ana's name already: refused, with the reason, and the
    // ticket still works.
    let refused = second
        .run(&["join", &wrapped, "--as", "ana"])
        .expect_code(2)
        .one_line_error();
    assert!(
        refused.stderr.contains("is already the name of Ana"),
        "{}",
        refused.stderr
    );
    let joined = second
        .run(&[
            "join",
            &wrapped,
            "--as",
            "Ana Lee",
            "--device-name",
            "Ana's phone",
        ])
        .ok();
    assert!(
        joined.stdout.contains("Received \"Tuesday Supper\""),
        "{}",
        joined.stdout
    );
    // The whole history is there at once.
    let feed = second.run(&["feed"]).ok().stdout;
    assert!(feed.contains("hello from Ana"), "{feed}");
    let mine = second.run(&["device", "list", "--json"]).ok().json();
    assert_eq!(mine[0]["name"], "Ana's phone", "{mine:#}");
    wait_identical(&[&first, &second], |v| {
        v["members"].as_object().is_some_and(|m| m.len() == 2)
            && serde_json::to_string(v).unwrap().contains("Ana's phone")
    });
    // Two people whose names start alike: each goes by their own.
    let members = first.run(&["members"]).ok().stdout;
    assert!(members.contains("\n  Ana  · joined "), "{members}");
    assert!(members.contains("\n  Ana Lee  · joined "), "{members}");
    // Status names the other device.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = first.run(&["status"]).ok().stdout;
        if s.contains("Ana's phone") {
            assert!(!s.contains("away"), "{s}");
            break;
        }
        assert!(Instant::now() < deadline, "{s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    second_up.stop();
    first_up.stop();
}

#[test]
fn up_keeps_running_when_nobody_reads_its_output() {
    let home = TestHome::new();
    home.run(&["circle", "create", "Tuesday Supper", "--as", "Maya"])
        .ok();
    let mut child = home
        .command()
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--relay",
            "none",
            "--no-mdns",
            "--web",
            "127.0.0.1:0",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The terminal is closed before the node says anything.
    drop(child.stdout.take());
    let deadline = Instant::now() + Duration::from_secs(20);
    while home.run(&["status", "--json"]).json()["running"] != true {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the node stopped: {:?}",
            child.wait_with_output()
        );
        assert!(Instant::now() < deadline, "the node does not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
    home.run(&["checkin", "--mood", "okay", "still here"]).ok();
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn up_v_tells_the_nodes_own_story() {
    let (maya, sam) = (TestHome::new(), TestHome::new());
    maya.run(&["circle", "create", "Tuesday Supper", "--as", "Maya"])
        .ok();
    let log_path = maya.path().join("up.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = maya
        .command()
        .args([
            "-v",
            "up",
            "--listen",
            "127.0.0.1:0",
            "--relay",
            "none",
            "--no-mdns",
            "--web",
            "127.0.0.1:0",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while maya.run(&["status", "--json"]).json()["running"] != true {
        assert!(Instant::now() < deadline, "the node does not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sam_up = Up::start(&sam);
    let ticket = maya.run(&["invite"]).ok().stdout.trim().to_owned();
    sam.run(&["join", &ticket, "--as", "Sam", "--device-name", "laptop"])
        .ok();
    sam.run(&["checkin", "--mood", "okay", "hello"]).ok();
    let deadline = Instant::now() + Duration::from_secs(60);
    let story = loop {
        let story = std::fs::read_to_string(&log_path).unwrap();
        if story.contains("synced with Sam (laptop)") && story.contains("is connected") {
            break story;
        }
        assert!(Instant::now() < deadline, "{story}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(story.contains("let a device in"), "{story}");
    // The node's own words, not the network library's.
    assert!(
        story
            .lines()
            .all(|l| !l.contains("iroh") && !l.contains("noq")),
        "{story}"
    );
    sam_up.stop();
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn leaving_a_circle_from_the_command_line() {
    let (maya, sam, ada) = (TestHome::new(), TestHome::new(), TestHome::new());
    maya.run(&["circle", "create", "Book Club", "--as", "Maya"])
        .ok();
    let ups = [Up::start(&maya), Up::start(&sam), Up::start(&ada)];
    for (home, name) in [(&sam, "Sam"), (&ada, "Ada")] {
        let ticket = maya.run(&["invite"]).ok().stdout.trim().to_owned();
        home.run(&["join", &ticket, "--as", name]).ok();
    }
    wait_identical(&[&maya, &sam, &ada], |v| {
        v["members"].as_object().is_some_and(|m| m.len() == 3)
    });
    let said = sam.run(&["circle", "leave", "--forget"]).ok().stdout;
    assert!(said.contains("You left \"Book Club\""), "{said}");
    // The others see it, and move to a new key without Sam.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let members = maya.run(&["members", "--json"]).ok().json();
        let sam_left = members
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "Sam" && m["left"] == true);
        let epoch = maya.run(&["status", "--json"]).json()["circles"][0]["epoch"].as_u64();
        if sam_left && epoch == Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "{members:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let feed = maya.run(&["feed"]).ok().stdout;
    assert!(feed.contains("Sam left the circle"), "{feed}");
    // Sam's device stops serving it, and forgets its copy, as asked.
    let deadline = Instant::now() + Duration::from_secs(60);
    while sam
        .path()
        .join("circles")
        .read_dir()
        .unwrap()
        .next()
        .is_some()
    {
        assert!(Instant::now() < deadline, "Sam's copy is still there");
        std::thread::sleep(Duration::from_millis(200));
    }
    let circles = sam.run(&["circle", "list", "--json"]).ok().json();
    assert_eq!(circles.as_array().unwrap().len(), 0, "{circles:#}");
    // Maya and Ada go on.
    ada.run(&["checkin", "--mood", "okay", "still reading"])
        .ok();
    wait_identical(&[&maya, &ada], |v| {
        serde_json::to_string(v).unwrap().contains("still reading")
    });
    for up in ups {
        up.stop();
    }
}

/// Sam writes his recovery key down, loses his laptop, restores the key on
/// a new one, and comes back in with Maya's ticket as himself: one Sam,
/// his name and his check-in kept, writing again, the lost laptop revoked.
#[test]
fn a_recovery_key_brings_a_member_back_on_a_new_device() {
    let (maya, sam) = (TestHome::new(), TestHome::new());
    let made = maya
        .run(&["circle", "create", "Tuesday Supper", "--as", "Maya"])
        .ok();
    assert!(
        made.stdout.contains("roundtable identity backup"),
        "starting a circle says how to keep the recovery key:\n{}",
        made.stdout
    );
    let maya_up = Up::start(&maya);
    let sam_up = Up::start(&sam);
    let ticket = maya.run(&["invite"]).ok().stdout.trim().to_owned();
    let joined = sam.run(&["join", &ticket, "--as", "Sam"]).ok();
    assert!(joined.stdout.contains("roundtable identity backup"));
    sam.run(&["checkin", "--mood", "okay", "from the old laptop"])
        .ok();
    let sam_id = sam.run(&["id", "--json"]).ok().json();
    let backup = sam.run(&["identity", "backup"]).ok().stdout;
    assert!(backup.contains("Write these 24 words on paper"), "{backup}");
    let words: Vec<String> = sam.run(&["identity", "backup", "--json"]).ok().json()["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(words.len(), 24);
    wait_identical(&[&maya, &sam], |v| notes(v) == ["from the old laptop"]);
    sam_up.stop();
    drop(sam);

    let new_laptop = TestHome::new();
    // Miscopied (a word no list holds: two words swapped keep the
    // checksum one time in 256): one line, nothing kept.
    let mut wrong = words.clone();
    wrong[7].push('q');
    let r = new_laptop
        .run_with_input(&["recover", "--words"], &wrong.join(" "))
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("recovery key"), "{}", r.stderr);
    assert!(
        !new_laptop.path().join("identity").exists(),
        "a refused recovery keeps nothing"
    );
    // Typed back in two lines.
    let typed = format!("{}\n{}\n", words[..12].join(" "), words[12..].join(" "));
    new_laptop
        .run_with_input(&["recover", "--words"], &typed)
        .ok();
    let id = new_laptop.run(&["id", "--json"]).ok().json();
    assert_eq!(id["member"], sam_id["member"]);
    assert_ne!(id["device"], sam_id["device"]);

    let up = Up::start(&new_laptop);
    let ticket = maya.run(&["invite"]).ok().stdout.trim().to_owned();
    new_laptop.run(&["join", &ticket]).ok();
    new_laptop
        .run(&["checkin", "--mood", "thriving", "back on a new laptop"])
        .ok();
    wait_identical(&[&maya, &new_laptop], |v| notes(v).len() == 2);
    let members = maya.run(&["members", "--json"]).ok().json();
    let sams: Vec<&serde_json::Value> = members
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["id"] == sam_id["member"])
        .collect();
    assert_eq!(sams.len(), 1);
    assert_eq!(sams[0]["name"], "Sam");
    assert_eq!(sams[0]["devices"].as_array().unwrap().len(), 2);
    let old = sam_id["device"].as_str().unwrap();
    new_laptop.run(&["device", "revoke", &old[..12]]).ok();
    wait_identical(&[&maya, &new_laptop], |v| {
        v["members"][sam_id["member"].as_str().unwrap()]["devices"][old]["revoked"].is_object()
    });
    up.stop();
    maya_up.stop();
}

/// The epoch `home`'s node reports for its one circle.
fn epoch_of(home: &TestHome) -> Option<u64> {
    home.run(&["status", "--json"]).json()["circles"][0]["epoch"].as_u64()
}

/// Waits, at most a minute, until `check` holds of `home`'s members.
fn until_members(home: &TestHome, what: &str, check: impl Fn(&[serde_json::Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let members = home.run(&["members", "--json"]).ok().json();
        if check(members.as_array().unwrap()) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {members:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn row<'a>(members: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    members.iter().find(|m| m["name"] == name).unwrap()
}

/// Sam leaves, then comes back with Maya's ticket on the same laptop, as
/// himself; Lee is removed by consent, then welcomed back by the same
/// consent, and his node, never told to do anything, is in again.
#[test]
fn coming_back_after_leaving_and_after_a_removal() {
    let homes = [0; 4].map(|_| TestHome::new());
    let [maya, sam, ada, lee] = &homes;
    maya.run(&["circle", "create", "Book Club", "--as", "Maya"])
        .ok();
    let ups: Vec<Up> = homes.iter().map(Up::start).collect();
    for (home, name) in [(sam, "Sam"), (ada, "Ada"), (lee, "Lee")] {
        let ticket = maya.run(&["invite"]).ok().stdout.trim().to_owned();
        home.run(&["join", &ticket, "--as", name]).ok();
    }
    wait_identical(&[maya, sam, ada, lee], |v| {
        v["members"].as_object().is_some_and(|m| m.len() == 4)
    });
    sam.run(&["checkin", "--mood", "okay", "before a hard month"])
        .ok();
    sam.run(&["circle", "leave"]).ok();
    until_members(maya, "Sam left", |m| row(m, "Sam")["left"] == true);

    // Back with a ticket, from the home he left from: no name needed.
    let ticket = maya.run(&["invite"]).ok().stdout.trim().to_owned();
    let said = sam.run(&["join", &ticket]).ok().stdout;
    assert!(said.contains("Book Club"), "{said}");
    until_members(maya, "Sam is back", |m| {
        row(m, "Sam")["left"] == false && row(m, "Sam")["welcomed_back"][0]["stint"] == 1
    });
    let people = maya.run(&["members"]).ok().stdout;
    assert!(people.contains("welcomed back by Maya"), "{people}");
    sam.run(&["checkin", "--mood", "thriving", "glad to be back"])
        .ok();
    let all = wait_identical(&[maya, sam, ada, lee], |v| {
        serde_json::to_string(v)
            .unwrap()
            .contains("glad to be back")
    });
    assert!(all.contains("before a hard month"));
    assert_eq!(epoch_of(sam), Some(2));

    // Lee is removed: Maya proposes, Ada agrees.
    maya.run(&["remove", "propose", "Lee", "--reason", "it hurt people"])
        .ok();
    let id = |home: &TestHome, kind: &str| {
        let list = home.run(&["remove", "list", "--json"]).ok().json();
        list["proposals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["kind"] == kind && p["state"] == "open")
            .map(|p| p["id"].as_str().unwrap()[..8].to_owned())
    };
    let removal = id(maya, "remove").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ada.run(&["remove", "consent", &removal]).code != 0 {
        assert!(Instant::now() < deadline, "the proposal never reached Ada");
        std::thread::sleep(Duration::from_millis(200));
    }
    until_members(maya, "Lee removed", |m| row(m, "Lee")["removed"] == true);
    let r = maya
        .run(&["remove", "welcome-back", "Sam"])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("not removed"), "{}", r.stderr);

    // Welcomed back: Maya proposes, Sam agrees.
    maya.run(&[
        "remove",
        "welcome-back",
        "Lee",
        "--reason",
        "we talked it through",
    ])
    .ok();
    let welcome = id(maya, "welcome").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while sam.run(&["remove", "consent", &welcome]).code != 0 {
        assert!(Instant::now() < deadline, "the welcome never reached Sam");
        std::thread::sleep(Duration::from_millis(200));
    }
    until_members(maya, "Lee welcomed back", |m| {
        row(m, "Lee")["removed"] == false
    });
    let people = maya.run(&["members"]).ok().stdout;
    assert!(
        people.contains("welcomed back by consent of Maya and Sam"),
        "{people}"
    );
    // Lee's node hears of it by itself, and Lee writes again.
    until_members(lee, "Lee's own copy has him back", |m| {
        row(m, "Lee")["removed"] == false
    });
    lee.run(&["checkin", "--mood", "okay", "thank you all"])
        .ok();
    wait_identical(&[maya, sam, ada, lee], |v| {
        serde_json::to_string(v).unwrap().contains("thank you all")
    });
    assert_eq!(epoch_of(lee), Some(4));
    for up in ups {
        up.stop();
    }
}

/// The state of the recovery `remove list --json` shows at `home`, if any.
fn recovery_state(home: &TestHome) -> Option<(String, String)> {
    let list = home.run(&["remove", "list", "--json"]).ok().json();
    list["proposals"]
        .as_array()?
        .iter()
        .find(|p| p["kind"] == "recover" && p["state"] != "void")
        .map(|p| {
            (
                p["id"].as_str().unwrap()[..8].to_owned(),
                p["state"].as_str().unwrap().to_owned(),
            )
        })
}

#[test]
fn a_lost_laptop_is_vouched_for_from_the_command_line() {
    let homes = [0; 3].map(|_| TestHome::new());
    let [maya, sam, ana] = &homes;
    maya.run(&["circle", "create", "Book Club", "--as", "Maya"])
        .ok();
    let ups: Vec<Up> = homes.iter().map(Up::start).collect();
    for (home, name) in [(sam, "Sam"), (ana, "Ana")] {
        let ticket = maya.run(&["invite"]).ok().stdout.trim().to_owned();
        home.run(&["join", &ticket, "--as", name]).ok();
    }
    wait_identical(&[maya, sam, ana], |v| {
        v["members"].as_object().is_some_and(|m| m.len() == 3)
    });
    // Sam sets the circle's wait; Maya's device learns it.
    let r = sam
        .run(&["circle", "recovery-wait", "2h"])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("24"), "{}", r.stderr);
    sam.run(&["circle", "recovery-wait", "3d"]).ok();
    let deadline = Instant::now() + Duration::from_secs(60);
    while maya.run(&["circle", "recovery-wait", "--json"]).ok().json()["hours"] != 72 {
        assert!(Instant::now() < deadline, "the wait never reached Maya");
        std::thread::sleep(Duration::from_millis(200));
    }
    let said = maya.run(&["circle", "recovery-wait"]).ok().stdout;
    assert!(said.contains("3 days (set by Sam"), "{said}");

    // Ana's new laptop asks, with a ticket Maya sent her.
    let laptop = TestHome::new();
    let ticket = maya.run(&["invite"]).ok().stdout.trim().to_owned();
    let r = laptop
        .run(&["recover", &ticket])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("--as NAME"), "{}", r.stderr);
    let asked = laptop.run(&["recover", &ticket, "--as", "Ana"]).ok().stdout;
    assert!(asked.contains("roundtable vouch REQUEST"), "{asked}");
    let request = laptop
        .run(&["recover", &ticket, "--as", "Ana", "--json"])
        .ok()
        .json()["request"]
        .as_str()
        .unwrap()
        .to_owned();
    // Pasted where a ticket goes, it says what it is.
    let r = sam.run(&["join", &request]).expect_code(2).one_line_error();
    assert!(r.stderr.contains("roundtable vouch"), "{}", r.stderr);

    // Maya and Sam vouch, each on their own device: one recovery.
    let said = maya
        .run(&["vouch", &request, "--reason", "she rang me"])
        .ok()
        .stdout;
    assert!(said.contains("one more needed"), "{said}");
    sam.run(&["vouch", &request]).ok();
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = loop {
        match recovery_state(ana) {
            Some((id, state)) if state == "carried" => break id,
            _ => {
                assert!(Instant::now() < deadline, "the vouches never reached Ana");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    let members = ana.run(&["remove", "list"]).ok().stdout;
    assert!(members.contains("recognise on a new device"), "{members}");

    // Ana still has her old device after all: she refuses, and everyone
    // sees it.
    let r = sam.run(&["refuse", &id]).expect_code(2).one_line_error();
    assert!(r.stderr.contains("own devices"), "{}", r.stderr);
    ana.run(&["refuse", &id]).ok();
    let deadline = Instant::now() + Duration::from_secs(60);
    while recovery_state(maya).is_none_or(|(_, state)| state != "refused") {
        assert!(Instant::now() < deadline, "the refusal never reached Maya");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(ups);
}
