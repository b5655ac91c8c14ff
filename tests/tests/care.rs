//! The circle's care from the CLI alone: three members, a fixed clock.

#![allow(clippy::unwrap_used)]

use roundtable_tests::{TestHome, join_by_hand, sync_by_hand};

/// Noon UTC on day `d` of November 2026 (day 0 is 1 November).
fn day(d: u32) -> String {
    let date = jiff_date(d);
    format!("{date}T12:00:00Z")
}

fn jiff_date(d: u32) -> String {
    // November has 30 days; the tests stay within November and December.
    if d < 30 {
        format!("2026-11-{:02}", d + 1)
    } else {
        format!("2026-12-{:02}", d - 29)
    }
}

struct Circle {
    maya: TestHome,
    sam: TestHome,
    ada: TestHome,
}

fn circle() -> Circle {
    let c = Circle {
        maya: TestHome::new(),
        sam: TestHome::new(),
        ada: TestHome::new(),
    };
    c.maya
        .run_at(
            &day(0),
            &["circle", "create", "Tuesday Supper", "--as", "Maya"],
        )
        .ok();
    join_by_hand(&c.maya, &c.sam, "Sam");
    join_by_hand(&c.maya, &c.ada, "Ada");
    sync_by_hand(&[&c.maya, &c.sam, &c.ada]);
    c
}

fn id_of(run: roundtable_tests::Run) -> String {
    run.ok().json()["id"].as_str().unwrap().to_owned()
}

#[test]
fn quiet_names_exactly_who_a_fixed_clock_expects() {
    let c = circle();
    for d in [0, 4, 8, 12, 16, 20] {
        c.sam.run_at(&day(d), &["checkin", "--mood", "okay"]).ok();
    }
    c.ada
        .run_at(&day(1), &["checkin", "--mood", "heavy", "new here"])
        .ok();
    for d in 0..31 {
        c.maya
            .run_at(&day(d), &["checkin", "--mood", "thriving"])
            .ok();
    }
    sync_by_hand(&[&c.maya, &c.sam, &c.ada]);
    let q = c.maya.run_at(&day(31), &["quiet", "--json"]).ok().json();
    let names: Vec<&str> = q
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Ada", "Sam"], "{q:#}");
    let sam = &q.as_array().unwrap()[1];
    assert_eq!(
        sam["reason"],
        "Sam usually shows up every 4 days; it has been 11 days"
    );
    assert_eq!(sam["days_silent"], 11);
    let text = c.maya.run_at(&day(31), &["quiet"]).ok().stdout;
    assert!(text.contains("Maybe reach out to Ada or Sam"), "{text}");
    // Ada, asking, is never listed to herself.
    let q = c.ada.run_at(&day(31), &["quiet", "--json"]).ok().json();
    let names: Vec<&str> = q
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Sam"], "{q:#}");

    // Sam steps back; he is left be.
    c.sam
        .run_at(&day(21), &["away", "--until", &jiff_date(45), "exams"])
        .ok();
    sync_by_hand(&[&c.maya, &c.sam]);
    let q = c.maya.run_at(&day(31), &["quiet", "--json"]).ok().json();
    let names: Vec<&str> = q
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Ada"]);
    let text = c.maya.run_at(&day(31), &["quiet"]).ok().stdout;
    assert!(
        text.contains("Leaving be: Sam is stepping back until") && text.contains(": exams."),
        "{text}"
    );
    let members = c.maya.run_at(&day(31), &["members", "--json"]).ok().json();
    let sam = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "Sam")
        .unwrap();
    assert_eq!(sam["away"]["note"], "exams", "{members:#}");
    let feed = c.maya.run_at(&day(31), &["feed"]).ok().stdout;
    assert!(feed.contains("Sam is stepping back until"), "{feed}");
    c.sam.run_at(&day(32), &["back"]).ok();
    // Back when not away: said kindly, nothing written.
    let r = c
        .sam
        .run_at(&day(33), &["back"])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("not stepping back"), "{}", r.stderr);
}

#[test]
fn every_kind_of_care_from_the_cli() {
    let c = circle();
    let (maya, sam, ada) = (&c.maya, &c.sam, &c.ada);
    let checkin = id_of(maya.run_at(
        &day(2),
        &["checkin", "-m", "struggling", "rough week", "--json"],
    ));
    sync_by_hand(&[maya, sam, ada]);
    sam.run_at(
        &day(2),
        &["reply", &checkin[..6], "you're not carrying this alone"],
    )
    .ok();

    let ask = id_of(maya.run_at(
        &day(2),
        &[
            "ask", "soup", "this", "week?", "--when", "Tuesday", "--json",
        ],
    ));
    let offer = id_of(ada.run_at(&day(2), &["offer", "a ride to the clinic", "--json"]));
    sync_by_hand(&[maya, sam, ada]);
    // Two members commit at once, on their own devices: both are kept.
    sam.run_at(&day(3), &["commit", &ask[..6], "I'll bring soup Tuesday"])
        .ok();
    ada.run_at(&day(3), &["commit", &ask[..6], "I'll bring bread"])
        .ok();
    maya.run_at(&day(3), &["commit", &offer[..6], "yes please, Friday"])
        .ok();
    sync_by_hand(&[maya, sam, ada]);
    let r = sam
        .run_at(&day(4), &["done", &ask[..6]])
        .expect_code(2)
        .one_line_error();
    assert!(
        r.stderr.contains("only the person who posted it"),
        "{}",
        r.stderr
    );
    maya.run_at(&day(4), &["done", &ask[..6], "thank", "you", "both"])
        .ok();

    let g = id_of(maya.run_at(
        &day(4),
        &[
            "gathering",
            "new",
            "Soup night",
            "--at",
            "2026-11-24 19:00",
            "--tz",
            "Europe/Lisbon",
            "--place",
            "Maya's kitchen",
            "--host",
            "Ada",
            "--host",
            "Maya",
            "--json",
        ],
    ));
    sync_by_hand(&[maya, sam, ada]);
    sam.run_at(&day(5), &["gathering", "rsvp", &g[..6], "yes"])
        .ok();
    ada.run_at(&day(5), &["gathering", "rsvp", &g[..6], "maybe"])
        .ok();
    sam.run_at(
        &day(5),
        &[
            "gathering",
            "bring",
            &g[..6],
            "lentil soup",
            "--dietary",
            "vegan",
        ],
    )
    .ok();
    let moment = id_of(ada.run_at(&day(6), &["moment", "first tomatoes of the year", "--json"]));
    sync_by_hand(&[maya, sam, ada]);
    maya.run_at(&day(6), &["reply", &moment[..6], "so proud of you"])
        .ok();
    maya.run_at(&day(24), &["gathering", "came", &g[..6], "Sam", "Maya"])
        .ok();
    maya.run_at(&day(6), &["profile", "--story", "I moved here in spring"])
        .ok();

    let up = maya
        .run_at(&day(6), &["gathering", "upcoming", "--json"])
        .ok()
        .json();
    assert_eq!(up[0]["title"], "Soup night");
    assert_eq!(up[0]["starts"], "2026-11-24T19:00:00+00:00[Europe/Lisbon]");
    let text = maya.run_at(&day(6), &["gathering", "upcoming"]).ok().stdout;
    assert!(text.contains("Sam brings lentil soup (vegan)"), "{text}");
    assert!(text.contains("coming: Sam"), "{text}");
    let past = maya
        .run_at(&day(40), &["gathering", "upcoming", "--json"])
        .ok()
        .json();
    assert_eq!(
        past.as_array().unwrap().len(),
        0,
        "a past gathering is not upcoming"
    );

    sync_by_hand(&[maya, sam, ada]);
    let feed = ada
        .run_at(&day(7), &["feed", "--json", "-n", "100"])
        .ok()
        .json();
    let kinds: Vec<&str> = feed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in ["joined", "checkin", "ask", "offer", "gathering", "moment"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    let ask_entry = feed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == ask.as_str())
        .unwrap();
    assert_eq!(
        ask_entry["commitments"].as_object().unwrap().len(),
        2,
        "{ask_entry:#}"
    );
    assert_eq!(ask_entry["done"]["thanks"], "thank you both");
    let text = ada.run_at(&day(7), &["feed", "-n", "100"]).ok().stdout;
    assert!(!text.contains(" likes"), "no counts of anything: {text}");

    let md = ada
        .run_at(&day(7), &["export", "--format", "markdown"])
        .ok()
        .stdout;
    for needle in [
        "rough week",
        "you're not carrying this alone",
        "soup this week?",
        "I'll bring soup Tuesday",
        "I'll bring bread",
        "thank you both",
        "Soup night",
        "lentil soup (vegan)",
        "first tomatoes of the year",
        "so proud of you",
        "came: ",
        "I moved here in spring",
    ] {
        assert!(
            md.contains(needle),
            "{needle:?} missing from the archive:\n{md}"
        );
    }
    let out = ada.path().join("archive.json");
    ada.run(&["export", "--format", "json", "--out", out.to_str().unwrap()])
        .ok();
    let archived: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    // The archive is the circle as `show --json` prints it, less what the
    // core finds in it (double-ups, none here).
    let mut shown = ada.run(&["show", "--json"]).ok().json();
    assert_eq!(shown["double_ups"], serde_json::json!([]));
    shown.as_object_mut().unwrap().remove("double_ups");
    assert_eq!(archived, shown);

    // All three devices hold the same circle.
    let shows: Vec<String> = [maya, sam, ada]
        .iter()
        .map(|h| h.run(&["show", "--json"]).ok().stdout)
        .collect();
    assert_eq!(shows[0], shows[1]);
    assert_eq!(shows[1], shows[2]);
}

#[test]
fn care_commands_refuse_bad_input() {
    let c = circle();
    let m = &c.maya;
    let before = m.snapshot_files();
    m.run(&["gathering", "new", "x", "--at", "next tuesday"])
        .expect_code(2)
        .one_line_error();
    m.run_at(
        &day(10),
        &[
            "gathering",
            "new",
            "x",
            "--at",
            "2026-12-01 19:00",
            "--tz",
            "Mars/Olympus",
        ],
    )
    .expect_code(2)
    .one_line_error();
    m.run_at(
        &day(10),
        &[
            "gathering",
            "new",
            "x",
            "--at",
            "2026-12-01 19:00",
            "--host",
            "Nobody",
        ],
    )
    .expect_code(2)
    .one_line_error();
    m.run(&["gathering", "rsvp", "abcdef", "yes"])
        .expect_code(2)
        .one_line_error();
    m.run(&["gathering", "rsvp", "abcdef", "perhaps"])
        .expect_code(2);
    m.run(&["away", "--until", "someday"])
        .expect_code(2)
        .one_line_error();
    m.run_at(&day(10), &["away", "--until", "2026-11-02"])
        .expect_code(2)
        .one_line_error();
    m.run(&["commit", "abcdef", "soup"])
        .expect_code(2)
        .one_line_error();
    m.run(&["export", "--format", "pdf"]).expect_code(2);
    m.run_at("yesterday", &["show"])
        .expect_code(2)
        .one_line_error();
    assert_eq!(before, m.snapshot_files());
}

#[test]
fn change_take_back_and_close_once_from_the_cli() {
    let c = circle();
    let (maya, sam) = (&c.maya, &c.sam);
    let checkin = id_of(sam.run_at(&day(2), &["checkin", "-m", "heavy", "rough week", "--json"]));
    sam.run_at(&day(2), &["edit", &checkin[..6], "rough week, better now"])
        .ok();
    let feed = sam.run_at(&day(2), &["feed"]).ok().stdout;
    assert!(feed.contains("\"rough week, better now\""), "{feed}");
    sync_by_hand(&[maya, sam]);
    // Not Maya's to change.
    let r = maya
        .run_at(&day(2), &["edit", &checkin[..6], "fine"])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("Sam's"), "{}", r.stderr);
    // Too short an id to find anything by.
    let r = maya
        .run_at(&day(2), &["reply", &checkin[..2], "hi"])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("at least 4"), "{}", r.stderr);
    let replied = maya
        .run_at(&day(2), &["reply", &checkin[..6], "here for you"])
        .ok()
        .stdout;
    assert!(
        replied.contains("Replied to Sam's check-in of "),
        "{replied}"
    );
    sam.run_at(&day(3), &["withdraw", &checkin[..6]]).ok();
    sync_by_hand(&[maya, sam]);
    for home in [maya, sam] {
        let shown = format!(
            "{}{}",
            home.run_at(&day(3), &["feed"]).ok().stdout,
            home.run_at(&day(3), &["show", "--json"]).ok().stdout
        );
        assert!(!shown.contains("rough week"), "{shown}");
        assert!(!shown.contains("here for you"), "{shown}");
    }
    // A loop closes once; its thanks stay.
    let ask = id_of(maya.run_at(&day(4), &["ask", "soup?", "--json"]));
    sync_by_hand(&[maya, sam]);
    sam.run_at(&day(4), &["commit", &ask[..6], "I'll bring soup"])
        .ok();
    sync_by_hand(&[maya, sam]);
    maya.run_at(&day(5), &["done", &ask[..6], "thank you Sam"])
        .ok();
    let r = maya
        .run_at(&day(5), &["done", &ask[..6], "again"])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("thank you Sam"), "{}", r.stderr);
    sync_by_hand(&[maya, sam]);
    let r = sam
        .run_at(&day(5), &["commit", &ask[..6], "more soup"])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("already done"), "{}", r.stderr);
}

#[test]
fn a_second_dish_says_whether_it_replaces_the_first_and_a_second_circle_of_one_name_asks() {
    let c = circle();
    let maya = &c.maya;
    let g = id_of(maya.run_at(
        &day(2),
        &[
            "gathering",
            "new",
            "Soup night",
            "--at",
            "2026-11-20 19:00",
            "--tz",
            "UTC",
            "--json",
        ],
    ));
    let said = |args: &[&str]| maya.run_at(&day(3), args).ok().stdout;
    assert!(said(&["gathering", "bring", &g[..6], "bread"]).contains("You're bringing bread."));
    let out = said(&["gathering", "bring", &g[..6], "soup", "--instead"]);
    assert!(out.contains("soup instead of bread"), "{out}");
    let out = said(&["gathering", "bring", &g[..6], "cake"]);
    assert!(out.contains("cake as well as soup"), "{out}");
    let show = maya.run_at(&day(3), &["show", "--json"]).ok().json();
    let mut dishes: Vec<&str> = show["gatherings"][&g]["dishes"]
        .as_object()
        .unwrap()
        .values()
        .map(|d| d["dish"].as_str().unwrap())
        .collect();
    dishes.sort();
    assert_eq!(dishes, ["cake", "soup"]);

    let r = maya
        .run_at(&day(3), &["circle", "create", "tuesday supper"])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("--again"), "{}", r.stderr);
    maya.run_at(&day(3), &["circle", "create", "Tuesday Supper", "--again"])
        .ok();
    assert_eq!(
        maya.run(&["circle", "list", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn dates_as_people_type_and_read_them() {
    let c = circle();
    let m = &c.maya;
    // Day 2 is Tuesday 3 November 2026; "thursday 7pm" is the 5th.
    let g = id_of(m.run_at(
        &day(2),
        &[
            "gathering",
            "new",
            "Soup night",
            "--at",
            "thursday 7pm",
            "--tz",
            "UTC",
            "--json",
        ],
    ));
    let show = m.run_at(&day(2), &["show", "--json"]).ok().json();
    assert_eq!(
        show["gatherings"][&g]["starts"],
        "2026-11-05T19:00:00+00:00[UTC]"
    );
    let text = m.run_at(&day(2), &["gathering", "upcoming"]).ok().stdout;
    assert!(!text.contains("2026-11-05T"), "no raw times: {text}");
    // In the past: asks for --past.
    let r = m
        .run_at(
            &day(2),
            &[
                "gathering",
                "new",
                "Old",
                "--at",
                "2026-11-01 19:00",
                "--tz",
                "UTC",
            ],
        )
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("--past"), "{}", r.stderr);
    m.run_at(
        &day(2),
        &[
            "gathering",
            "new",
            "Old",
            "--at",
            "2026-11-01 19:00",
            "--tz",
            "UTC",
            "--past",
        ],
    )
    .ok();
    // Stepping back "in 3 days" and "next week".
    m.run_at(&day(2), &["away", "--until", "in 3 days", "a short trip"])
        .ok();
    let members = m.run_at(&day(2), &["members", "--json"]).ok().json();
    let until = members[0]["away"]["until"].as_str().unwrap().to_owned();
    assert!(until.starts_with("2026-11-06"), "{until}");
    m.run_at(&day(2), &["back"]).ok();
    m.run_at(&day(2), &["away", "--until", "next week"]).ok();
}

#[test]
fn an_rsvp_with_a_word_and_taken_back() {
    let c = circle();
    let m = &c.maya;
    let g = id_of(m.run_at(
        &day(2),
        &[
            "gathering",
            "new",
            "Soup",
            "--at",
            "thursday 7pm",
            "--tz",
            "UTC",
            "--json",
        ],
    ));
    m.run_at(
        &day(2),
        &[
            "gathering",
            "rsvp",
            &g[..6],
            "yes",
            "--note",
            "running late",
        ],
    )
    .ok();
    let text = m.run_at(&day(2), &["gathering", "upcoming"]).ok().stdout;
    assert!(text.contains("Maya (\"running late\")"), "{text}");
    m.run_at(&day(2), &["gathering", "rsvp", &g[..6], "--undo"])
        .ok();
    let show = m.run_at(&day(2), &["show", "--json"]).ok().json();
    assert!(
        show["gatherings"][&g]["rsvps"]
            .as_object()
            .unwrap()
            .is_empty()
    );
    let r = m
        .run_at(&day(2), &["gathering", "rsvp", &g[..6], "--undo"])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("nothing to take back"), "{}", r.stderr);
}

/// Two people take up one ask while apart: once their copies meet, both
/// hear of it in the same words from `feed` and `settle`, `show --json`
/// lists it alike everywhere, and one stepping aside settles it on every
/// copy.
#[test]
fn an_ask_taken_twice_apart_is_said_and_settled_from_the_cli() {
    let c = circle();
    let ask = id_of(c.sam.run_at(
        &day(1),
        &[
            "--json",
            "ask",
            "a lift to the clinic",
            "--when",
            "Thursday",
        ],
    ));
    sync_by_hand(&[&c.maya, &c.sam, &c.ada]);
    c.maya
        .run_at(&day(2), &["commit", &ask[..8], "I'll drive"])
        .ok();
    c.ada
        .run_at(&day(2), &["commit", &ask[..8], "I can take him"])
        .ok();
    let none = c.maya.run_at(&day(2), &["settle"]).ok().stdout;
    assert!(none.contains("Nothing doubled up"), "{none}");
    sync_by_hand(&[&c.maya, &c.sam, &c.ada]);

    let mine = c.maya.run_at(&day(2), &["--json", "settle"]).ok().json();
    let list = mine.as_array().unwrap();
    assert_eq!(list.len(), 1, "{mine:#}");
    let d = &list[0];
    assert_eq!(d["kind"], "taken_by_more");
    assert_eq!(d["about"], ask.as_str());
    assert_eq!(
        d["says"],
        "You and Ada both took up Sam's ask \"a lift to the clinic\", which needs one person. One of you can step aside, or Sam can say all are welcome."
    );
    assert_eq!(d["choices"][0]["label"], "Step aside");
    let id = d["id"].as_str().unwrap().to_owned();
    let feed = c.ada.run_at(&day(2), &["feed"]).ok().stdout;
    assert!(
        feed.starts_with("You and Maya both took up Sam's ask")
            && feed.contains(&format!("Step aside: roundtable settle {id} 1")),
        "{feed}"
    );
    let sams = c.sam.run_at(&day(2), &["feed"]).ok().stdout;
    assert!(sams.contains("If both are welcome, say so"), "{sams}");
    assert!(
        sams.contains(&format!("Both are welcome: roundtable settle {id} 1")),
        "{sams}"
    );
    let shows: Vec<serde_json::Value> = [&c.maya, &c.sam, &c.ada]
        .iter()
        .map(|h| h.run_at(&day(2), &["show", "--json"]).ok().json())
        .collect();
    assert_eq!(shows[0]["double_ups"], shows[1]["double_ups"]);
    assert_eq!(shows[1]["double_ups"], shows[2]["double_ups"]);
    assert_eq!(shows[0]["double_ups"][0]["id"], id.as_str());
    assert_eq!(
        shows[0]["double_ups"][0]["says"],
        "Ada and Maya both took up Sam's ask \"a lift to the clinic\", which needs one person."
    );

    // What does not fit is refused in one line, and nothing changes.
    let before = c.maya.snapshot_files();
    c.maya
        .run_at(&day(2), &["settle", &id, "7"])
        .expect_code(2)
        .one_line_error();
    c.maya
        .run_at(&day(2), &["settle", "ffffffff", "1"])
        .expect_code(2)
        .one_line_error();
    c.sam
        .run_at(&day(2), &["ask", "x", "--hands", "0"])
        .expect_code(2)
        .one_line_error();
    assert_eq!(before, c.maya.snapshot_files());

    // Maya steps aside; once the copies meet, it is settled everywhere.
    let out = c
        .maya
        .run_at(&day(2), &["settle", &id[..6], "1"])
        .ok()
        .stdout;
    assert!(out.contains("Settled: step aside."), "{out}");
    sync_by_hand(&[&c.maya, &c.sam, &c.ada]);
    for h in [&c.maya, &c.sam, &c.ada] {
        let show = h.run_at(&day(2), &["show", "--json"]).ok().json();
        assert_eq!(show["double_ups"], serde_json::json!([]));
        let commitments = &show["requests"][ask.as_str()]["commitments"];
        assert_eq!(commitments.as_object().unwrap().len(), 1, "{commitments:#}");
    }
    let gone = c.ada.run_at(&day(2), &["settle", &id, "1"]);
    let gone = gone.expect_code(2).one_line_error();
    assert!(gone.stderr.contains("settled already"), "{}", gone.stderr);
}

/// `feed --since-last`: the first look only marks where you are; then what
/// others wrote since is told in words, what concerns you first, and it
/// counts as seen.
#[test]
fn feed_since_last_tells_what_arrived_what_concerns_you_first() {
    let c = circle();
    let first = c
        .maya
        .run_at(&day(2), &["feed", "--since-last"])
        .ok()
        .stdout;
    assert!(first.contains("From now on"), "{first}");
    let mine = id_of(c.maya.run_at(
        &day(2),
        &["--json", "checkin", "--mood", "heavy", "long week"],
    ));
    sync_by_hand(&[&c.maya, &c.sam, &c.ada]);
    c.ada
        .run_at(&day(3), &["checkin", "--mood", "struggling", "rough"])
        .ok();
    c.sam.run_at(&day(3), &["moment", "first snow"]).ok();
    c.sam
        .run_at(&day(4), &["reply", &mine[..8], "here for you"])
        .ok();
    sync_by_hand(&[&c.maya, &c.sam, &c.ada]);
    let told = c
        .maya
        .run_at(&day(5), &["feed", "--since-last"])
        .ok()
        .stdout;
    let lines: Vec<&str> = told.lines().collect();
    assert_eq!(lines.len(), 4, "{told}");
    assert_eq!(lines[0], "While you were away (since Tue 3 Nov):");
    // What concerns her first; the others' news after, in the order the
    // circle's history gives (the same on every device).
    assert_eq!(lines[1], "  Sam replied to you: \"here for you\"");
    let mut news = lines[2..].to_vec();
    news.sort_unstable();
    assert_eq!(
        news,
        vec![
            "  Ada checked in, and is struggling",
            "  Sam shared a moment: \"first snow\""
        ]
    );
    let again = c
        .maya
        .run_at(&day(5), &["feed", "--since-last"])
        .ok()
        .stdout;
    assert!(
        again.starts_with("Nothing new from the others since you last looked"),
        "{again}"
    );
    // Seen is this device's own: nothing of it reaches the others.
    let shows: Vec<String> = [&c.maya, &c.sam]
        .iter()
        .map(|h| h.run_at(&day(5), &["show", "--json"]).ok().stdout)
        .collect();
    assert_eq!(shows[0], shows[1]);
    let json = c
        .sam
        .run_at(&day(5), &["--json", "feed", "--since-last"])
        .ok()
        .json();
    assert_eq!(json["account"], serde_json::Value::Null);
}

/// `gathering edit`: its proposer moves it, and the others see it; a
/// member who neither proposed nor hosts it is told who can, and nothing
/// changes.
#[test]
fn a_gathering_is_moved_by_its_proposer_and_by_nobody_else() {
    let c = circle();
    let g = id_of(c.maya.run_at(
        &day(2),
        &[
            "--json",
            "gathering",
            "new",
            "Soup night",
            "--at",
            "2026-12-01 19:00",
            "--tz",
            "Europe/Lisbon",
            "--place",
            "Maya's",
        ],
    ));
    sync_by_hand(&[&c.maya, &c.sam, &c.ada]);
    let before = c.sam.snapshot_files();
    let refused = c
        .sam
        .run_at(
            &day(3),
            &["gathering", "edit", &g[..8], "--place", "the hall"],
        )
        .expect_code(2)
        .one_line_error();
    assert!(
        refused
            .stderr
            .contains("proposed this gathering or hosts it"),
        "{}",
        refused.stderr
    );
    c.maya
        .run_at(&day(3), &["gathering", "edit", &g[..8]])
        .expect_code(2)
        .one_line_error();
    assert_eq!(before, c.sam.snapshot_files());
    c.maya
        .run_at(
            &day(3),
            &[
                "gathering",
                "edit",
                &g[..8],
                "--at",
                "2026-12-02 18:30",
                "--place",
                "the hall",
            ],
        )
        .ok();
    sync_by_hand(&[&c.maya, &c.sam, &c.ada]);
    let show = c.sam.run_at(&day(3), &["show", "--json"]).ok().json();
    let moved = &show["gatherings"][g.as_str()];
    assert_eq!(moved["starts"], "2026-12-02T18:30:00+00:00[Europe/Lisbon]");
    assert_eq!(moved["place"], "the hall");
}
