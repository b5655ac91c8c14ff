//! Upgrades keep the circle: a home written by an earlier release still
//! opens, and a home written by a later one is refused without a write.
//!
//! `tests/fixtures/home-v1/` is a home written by the release that first
//! stamped homes (format 1), through the real binary: three circles, a
//! removal carried by consent, the circle key moved on by it, a member
//! stepping back, and an invite still waiting. Its ids are in
//! `tests/fixtures/home-v1.json`. It is never regenerated for a later
//! release: every release must open it as it is. (To write it again for a
//! new format, as `home-v2`: `cargo test -p roundtable-tests --test upgrades
//! -- --ignored write_the_fixture_home`, with `FIXTURE_NAME=home-v2`.)

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use roundtable_tests::{TestHome, Up, join_by_hand, sync_by_hand};

/// When the fixture was written, and when its checks read it.
const WRITTEN: &str = "2026-12-01T12:00:00Z";
const READ: &str = "2026-12-02T12:00:00Z";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Files a home holds only while a program runs, never part of a fixture.
fn passing(name: &str) -> bool {
    matches!(
        name,
        "lock" | "control.sock" | "web-open.html" | "node.log" | "node.log.1"
    )
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a directory");
    for entry in std::fs::read_dir(from).expect("read a directory") {
        let entry = entry.expect("a directory entry");
        let name = entry.file_name();
        if passing(&name.to_string_lossy()) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if src.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy a file");
            // Key files are owner-only in a real home; git keeps no modes.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
}

/// A copy of the fixture home to work on (the fixture itself is never
/// touched), and its ids.
fn fixture_home() -> (TestHome, serde_json::Value) {
    let home = TestHome::new();
    copy_tree(&fixtures().join("home-v1"), home.path());
    let ids = std::fs::read_to_string(fixtures().join("home-v1.json")).expect("the fixture's ids");
    (
        home,
        serde_json::from_str(&ids).expect("the fixture's ids read"),
    )
}

fn read(home: &TestHome, args: &[&str]) -> serde_json::Value {
    home.run_at(READ, args).ok().json()
}

#[test]
fn the_home_of_the_first_stamped_release_opens_with_everything_it_held() {
    let (home, ids) = fixture_home();
    assert_eq!(
        std::fs::read_to_string(home.path().join("format")).expect("a stamp"),
        "roundtable-home-format 1\n"
    );
    assert_eq!(home.store().format().expect("the format reads"), 1);

    let id = read(&home, &["id", "--json"]);
    assert_eq!(id["device"], ids["device"], "{id}");
    assert_eq!(id["member"], ids["member"], "{id}");

    let circles = read(&home, &["circle", "list", "--json"]);
    let mut names: Vec<&str> = circles
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Allotment", "Street Pantry", "Tuesday Supper"]);

    // The removal carried, the key moved on with it, Maya is stepping back.
    let supper = ["--circle", "Tuesday Supper"];
    let removals = read(
        &home,
        &[&supper[..], &["remove", "list", "--json"]].concat(),
    );
    assert_eq!(removals["epoch"], 1, "{removals:#}");
    assert_eq!(removals["proposals"][0]["state"], "carried", "{removals:#}");
    let members = read(&home, &[&supper[..], &["members", "--json"]].concat());
    let row = |name: &str| {
        members
            .as_array()
            .expect("members")
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {members:#}"))
            .clone()
    };
    assert_eq!(row("Ada")["removed"], true);
    assert_eq!(row("Sam")["removed"], false);
    assert_eq!(row("Maya")["away"]["note"], "family stuff", "{members:#}");
    let supper_id: roundtable_core::CircleId = ids["circles"]["Tuesday Supper"]
        .as_str()
        .expect("an id")
        .parse()
        .expect("an id reads");
    let keys = home
        .store()
        .circle_keys(supper_id)
        .expect("the keys read")
        .expect("the circle's keys");
    assert_eq!(keys.epoch(), 1);

    let feed = read(&home, &[&supper[..], &["feed", "--json"]].concat());
    let notes: Vec<&str> = feed
        .as_array()
        .expect("a feed")
        .iter()
        .filter_map(|e| e["note"].as_str())
        .collect();
    assert!(notes.contains(&"long week"), "{feed:#}");
    assert!(notes.contains(&"made it through"), "{feed:#}");

    // The invite still waits.
    let invites = read(
        &home,
        &["--circle", "Allotment", "invite", "list", "--json"],
    );
    let open = invites
        .as_array()
        .expect("invites")
        .iter()
        .filter(|i| i["state"] == "open")
        .count();
    assert_eq!(open, 1, "{invites:#}");

    // The node reads the rest (a peer's sync state, where the circles
    // stand with stewards) and serves every circle.
    let up = Up::start(&home);
    let status = home.run(&["status", "--json"]).ok().json();
    assert_eq!(
        status["circles"].as_array().map(Vec::len),
        Some(3),
        "{status:#}"
    );
    up.stop();
    // And it still takes edits.
    home.run(&[
        "--circle",
        "Tuesday Supper",
        "checkin",
        "--mood",
        "okay",
        "after the upgrade",
    ])
    .ok();
}

#[test]
fn a_home_from_a_newer_release_is_refused_in_one_line_and_left_as_it_was() {
    let (home, _) = fixture_home();
    std::fs::write(home.path().join("format"), "roundtable-home-format 2\n").expect("stamp");
    let before = everything(home.path());
    let commands: &[&[&str]] = &[
        &["id"],
        &["show"],
        &["feed"],
        &["circle", "list"],
        &["checkin", "--mood", "okay", "hello"],
        &["circle", "create", "Book Club", "--as", "Maya"],
        &["repair"],
        &["up", "--relay", "none", "--no-mdns", "--no-web"],
        &["open", "--print", "--relay", "none", "--web", "127.0.0.1:1"],
        &["web"],
    ];
    for args in commands {
        let r = home.run(args).expect_code(1).one_line_error();
        assert!(
            r.stderr.contains("newer Roundtable") && r.stderr.contains("nothing was changed"),
            "{args:?}: {}",
            r.stderr
        );
        assert_eq!(
            everything(home.path()),
            before,
            "{args:?} wrote to the home"
        );
    }
}

/// Every path under the home (the lock file too) and its bytes.
fn everything(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read a directory")
            .map(|e| e.expect("an entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let rel = path.strip_prefix(root).expect("inside").to_path_buf();
            if path.is_dir() {
                out.push((rel, Vec::new()));
                walk(root, &path, out);
            } else {
                out.push((rel, std::fs::read(&path).expect("read a file")));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// Writes `tests/fixtures/home-v1/` (or `FIXTURE_NAME`) through the real
/// binary. Run once per home format; the result is committed.
#[test]
#[ignore = "writes the committed fixture; run by hand for a new home format"]
fn write_the_fixture_home() {
    let name = std::env::var("FIXTURE_NAME").unwrap_or_else(|_| "home-v1".to_owned());
    let (maya, sam, ada) = (TestHome::new(), TestHome::new(), TestHome::new());
    let at = |h: &TestHome, args: &[&str]| h.run_at(WRITTEN, args).ok();

    at(
        &maya,
        &[
            "circle",
            "create",
            "Tuesday Supper",
            "--as",
            "Maya",
            "--about",
            "supper on Tuesdays, and each other",
        ],
    );
    join_by_hand(&maya, &sam, "Sam");
    join_by_hand(&maya, &ada, "Ada");
    sync_by_hand(&[&maya, &sam, &ada]);
    at(&maya, &["checkin", "--mood", "heavy", "long week"]);
    at(&sam, &["checkin", "--mood", "okay", "made it through"]);
    at(&ada, &["moment", "first snow"]);
    sync_by_hand(&[&maya, &sam, &ada]);

    // A removal by consent: Maya proposes, Sam consents; it carries.
    at(
        &maya,
        &["remove", "propose", "Ada", "--reason", "we talked it over"],
    );
    let list = maya.run_at(WRITTEN, &["remove", "list", "--json"]).json();
    let proposal = list["proposals"][0]["id"].as_str().expect("a proposal")[..8].to_owned();
    sync_by_hand(&[&maya, &sam]);
    at(&sam, &["remove", "consent", &proposal]);
    sync_by_hand(&[&maya, &sam]);
    at(&maya, &["away", "--until", "2027-01-15", "family stuff"]);

    // Two more circles, one with an invite that waits.
    at(&maya, &["circle", "create", "Allotment", "--as", "Maya"]);
    at(
        &maya,
        &["--circle", "Allotment", "moment", "the leeks are in"],
    );
    at(
        &maya,
        &["circle", "create", "Street Pantry", "--as", "Maya"],
    );

    // The node moves the key on after the removal, and makes the invite.
    let up = Up::start(&maya);
    let deadline = Instant::now() + Duration::from_secs(30);
    let supper = maya
        .run(&["circle", "list", "--json"])
        .json()
        .as_array()
        .expect("circles")
        .iter()
        .find(|c| c["name"] == "Tuesday Supper")
        .and_then(|c| c["id"].as_str().map(str::to_owned))
        .expect("the supper's id");
    let supper_id: roundtable_core::CircleId = supper.parse().expect("an id");
    while maya
        .store()
        .circle_keys(supper_id)
        .ok()
        .flatten()
        .is_none_or(|k| k.epoch() < 1)
    {
        assert!(Instant::now() < deadline, "the key did not move on");
        std::thread::sleep(Duration::from_millis(100));
    }
    maya.run(&[
        "--circle",
        "Allotment",
        "invite",
        "--expires",
        "30d",
        "--uses",
        "2",
    ])
    .ok();
    up.stop();

    let id = maya.run(&["id", "--json"]).ok().json();
    let circles: serde_json::Map<String, serde_json::Value> = maya
        .run(&["circle", "list", "--json"])
        .ok()
        .json()
        .as_array()
        .expect("circles")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("a name").to_owned(),
                c["id"].clone(),
            )
        })
        .collect();
    let out = fixtures().join(&name);
    let _ = std::fs::remove_dir_all(&out);
    copy_tree(maya.path(), &out);
    let ids = serde_json::json!({
        "device": id["device"],
        "member": id["member"],
        "circles": circles,
    });
    std::fs::write(
        fixtures().join(format!("{name}.json")),
        serde_json::to_string_pretty(&ids).expect("json") + "\n",
    )
    .expect("write the ids");
}
