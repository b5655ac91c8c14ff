//! The `roundtable` binary, offline, in temporary homes: the CLI contract.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;

use roundtable_tests::TestHome;

fn supper(home: &TestHome) {
    home.run(&["circle", "create", "Tuesday Supper", "--as", "Maya"])
        .ok();
}

#[test]
fn create_checkin_show_is_canonical() {
    let home = TestHome::new();
    supper(&home);
    home.run(&["checkin", "--mood", "heavy", "long week"]).ok();
    let first = home.run(&["show", "--json"]).ok();
    let second = home.run(&["show", "--json"]).ok();
    assert_eq!(
        first.stdout, second.stdout,
        "show --json must be byte-identical"
    );
    let v = first.json();
    assert_eq!(v["circle"]["name"], "Tuesday Supper");
    let members = v["members"].as_object().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members.values().next().unwrap()["name"], "Maya");
    let checkins = v["checkins"].as_object().unwrap();
    assert_eq!(checkins.len(), 1);
    let c = checkins.values().next().unwrap();
    assert_eq!(c["mood"], "heavy");
    assert_eq!(c["note"], "long week");
    assert_eq!(c["author"], *members.keys().next().unwrap());
}

#[test]
fn id_is_made_once_and_keys_are_private() {
    let home = TestHome::new();
    let a = home.run(&["id", "--json"]).ok().json();
    let b = home.run(&["id", "--json"]).ok().json();
    assert_eq!(a, b, "the identity is made on first use only");
    assert_eq!(a["device"].as_str().unwrap().len(), 64);
    assert_ne!(a["device"], a["member"]);
    for key in ["device.key", "member.key"] {
        let meta = std::fs::metadata(home.path().join("identity").join(key)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{key}");
    }
    let text = home.run(&["id"]).ok().stdout;
    assert!(text.contains(a["device"].as_str().unwrap()), "{text}");
}

#[test]
fn every_read_command_speaks_json() {
    let home = TestHome::new();
    supper(&home);
    home.run(&["checkin", "-m", "struggling", "rough", "day"])
        .ok();
    let feed = home.run(&["feed", "--json"]).ok().json();
    assert_eq!(feed[0]["kind"], "joined");
    assert_eq!(feed[1]["kind"], "checkin");
    assert_eq!(feed[1]["note"], "rough day");
    assert_eq!(feed[1]["author_name"], "Maya");
    let members = home.run(&["members", "--json"]).ok().json();
    assert_eq!(members[0]["name"], "Maya");
    let list = home.run(&["circle", "list", "--json"]).ok().json();
    assert_eq!(list[0]["name"], "Tuesday Supper");
    home.run(&["id", "--json"]).ok().json();
    // And in words for people: a struggling check-in with no reply asks for one.
    let text = home.run(&["feed"]).ok().stdout;
    assert!(text.contains("Maya is struggling"), "{text}");
    assert!(text.contains("could use a word"), "{text}");
}

#[test]
fn replies_and_profile_edits() {
    let home = TestHome::new();
    supper(&home);
    let id = home
        .run(&["checkin", "--mood", "okay", "--json"])
        .ok()
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    home.run(&["reply", &id[..5], "glad", "you're", "here"])
        .ok();
    home.run(&["profile", "--pronouns", "she/her", "--remember", "I garden"])
        .ok();
    let v = home.run(&["show", "--json"]).ok().json();
    let reply = v["checkins"][&id]["replies"].as_object().unwrap();
    assert_eq!(reply.values().next().unwrap()["text"], "glad you're here");
    let maya = v["members"].as_object().unwrap().values().next().unwrap();
    assert_eq!(maya["pronouns"], "she/her");
    assert_eq!(maya["remember"], "I garden");
    home.run(&["reply", "ffffffff", "hello"])
        .expect_code(2)
        .one_line_error();
    home.run(&["profile"]).expect_code(2).one_line_error();
}

#[test]
fn bad_input_is_one_line_exit_2_and_changes_nothing() {
    let home = TestHome::new();
    supper(&home);
    home.run(&["checkin", "--mood", "okay", "fine"]).ok();
    let before = home.snapshot_files();
    let r = home
        .run(&["checkin", "--mood", "ecstatic", "wow"])
        .expect_code(2)
        .one_line_error();
    assert!(
        r.stderr.contains("thriving, okay, heavy, struggling"),
        "{}",
        r.stderr
    );
    let r = home
        .run(&["--circle", "Book Club", "show"])
        .expect_code(2)
        .one_line_error();
    assert!(
        r.stderr.contains("Tuesday Supper"),
        "names the circles there are: {}",
        r.stderr
    );
    home.run(&["checkin", "--mood", "okay", &"x".repeat(5000)])
        .expect_code(2)
        .one_line_error();
    home.run(&["circle", "create", "  ", "--as", "Maya"])
        .expect_code(2)
        .one_line_error();
    home.run(&["no-such-command"]).expect_code(2);
    assert_eq!(
        before,
        home.snapshot_files(),
        "a refused command changed files"
    );
}

#[test]
fn no_circle_yet_says_how_to_start() {
    let home = TestHome::new();
    let r = home
        .run(&["checkin", "--mood", "okay"])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("circle create"), "{}", r.stderr);
    let r = home.run(&["show"]).expect_code(2).one_line_error();
    assert!(r.stderr.contains("circle create"), "{}", r.stderr);
    let r = home
        .run(&["circle", "create", "Supper"])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("--as"), "{}", r.stderr);
}

#[test]
fn circles_are_chosen_by_name_or_id_prefix() {
    let home = TestHome::new();
    supper(&home);
    let book = home
        .run(&["circle", "create", "Book Club", "--json"])
        .ok()
        .json();
    let book_id = book["circle"].as_str().unwrap().to_owned();
    // The second circle remembers the name used in the first.
    let r = home.run(&["show"]).expect_code(2).one_line_error();
    assert!(r.stderr.contains("--circle"), "{}", r.stderr);
    home.run(&["--circle", "book club", "checkin", "--mood", "thriving"])
        .ok();
    home.run(&["-c", &book_id[..6], "checkin", "--mood", "okay"])
        .ok();
    let v = home
        .run(&["--circle", "Book Club", "show", "--json"])
        .ok()
        .json();
    assert_eq!(v["checkins"].as_object().unwrap().len(), 2);
    assert_eq!(
        v["members"].as_object().unwrap().values().next().unwrap()["name"],
        "Maya"
    );
    let v = home
        .run(&["--circle", "Tuesday Supper", "show", "--json"])
        .ok()
        .json();
    assert_eq!(v["checkins"].as_object().unwrap().len(), 0);
}

#[test]
fn the_home_comes_from_the_environment_too() {
    let home = TestHome::new();
    let mut cmd = std::process::Command::new(roundtable_tests::roundtable_bin());
    cmd.env("ROUNDTABLE_HOME", home.path())
        .args(["circle", "create", "Supper", "--as", "Sam"]);
    roundtable_tests::run_bounded(cmd, std::time::Duration::from_secs(30)).ok();
    let v = home.run(&["show", "--json"]).ok().json();
    assert_eq!(v["circle"]["name"], "Supper");
}

#[test]
fn help_is_clear() {
    let home = TestHome::new();
    let r = home.run(&["--help"]).ok();
    for cmd in ["id", "circle", "checkin", "members", "feed", "show"] {
        assert!(r.stdout.contains(cmd), "--help lists {cmd}:\n{}", r.stdout);
    }
    let r = home.run(&["checkin", "--help"]).ok();
    assert!(
        r.stdout.contains("thriving, okay, heavy or struggling"),
        "{}",
        r.stdout
    );
}

#[test]
fn quiet_json_errors_json_export_and_closed_pipes() {
    let home = TestHome::new();
    supper(&home);
    // -q: nothing on success.
    let r = home.run(&["-q", "checkin", "--mood", "okay", "fine"]).ok();
    assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{r:?}");
    // Under --json an error is JSON on stderr too.
    let r = home
        .run(&["--json", "checkin", "--mood", "sideways"])
        .expect_code(2);
    let e: serde_json::Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(e["bad_input"], true);
    assert!(e["error"].as_str().unwrap().contains("sideways"), "{e}");
    // export --json writes JSON.
    let r = home.run(&["export", "--json"]).ok();
    assert!(
        r.json()["circle"]["name"] == "Tuesday Supper",
        "{}",
        r.stdout
    );
    // A reader that leaves early: no panic, no noise.
    for i in 0..30 {
        home.run(&["-q", "moment", &format!("line {i}")]).ok();
    }
    let mut child = home
        .command()
        .args(["feed", "-n", "1000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn completions_man_page_and_a_config_file_of_defaults() {
    let home = TestHome::new();
    let bash = home.run(&["completions", "bash"]).ok().stdout;
    assert!(
        bash.contains("roundtable") && bash.contains("checkin"),
        "{bash}"
    );
    let man = home.run(&["man"]).ok().stdout;
    assert!(man.contains(".TH") && man.contains("checkin"), "{man}");

    // The name in the config file is used when --as is not given, and the
    // circle it names is the one commands act on (any case).
    std::fs::write(home.config_path(), "name = \"Maya\"\n").unwrap();
    home.run(&["circle", "create", "Tuesday Supper"]).ok();
    home.run(&["circle", "create", "Book Club"]).ok();
    let members = home
        .run(&["members", "--json", "--circle", "book club"])
        .ok()
        .json();
    assert_eq!(members[0]["name"], "Maya");
    let r = home.run(&["feed"]).expect_code(2).one_line_error();
    assert!(r.stderr.contains("several circles"), "{}", r.stderr);
    std::fs::write(
        home.config_path(),
        "name = \"Maya\"\ncircle = \"BOOK CLUB\"\n",
    )
    .unwrap();
    home.run(&["moment", "we picked a book"]).ok();
    let book = home
        .run(&["show", "--json", "--circle", "Book Club"])
        .ok()
        .stdout;
    assert!(book.contains("we picked a book"));
    let shown = home.run(&["config", "--json"]).ok().json();
    assert_eq!(shown["circle"], "BOOK CLUB");
    // A config file that does not read is named, never ignored.
    std::fs::write(home.config_path(), "circel = \"x\"\n").unwrap();
    let r = home.run(&["feed"]).expect_code(2).one_line_error();
    assert!(r.stderr.contains("config.toml"), "{}", r.stderr);
}
