//! Words, not control codes: what members typed reaches another member's
//! terminal, and their Markdown archive, as text that does nothing.
//! The real binary, in temporary homes.

#![allow(clippy::unwrap_used)]

use automerge::transaction::Transactable;
use automerge::{ROOT, ReadDoc, Value};
use roundtable_core::Timestamp;
use roundtable_store::StoreError;
use roundtable_tests::{TestHome, join_by_hand, sync_by_hand};

/// A name a hostile member writes straight into the document: a window
/// title, a screen clear, a bidi override.
const HOSTILE_NAME: &str = "Lee\u{1b}]0;owned\u{7}\u{1b}[2J\u{202e}eel";

/// A check-in with every trick a terminal falls for, and a second line that
/// would pass for another member's check-in.
fn hostile_note() -> String {
    [
        "fine\u{1b}[2J",
        "\u{1b}]0;new title\u{7}",
        "\u{1b}]8;;http://evil.example/\u{1b}\\click me\u{1b}]8;;\u{1b}\\",
        "\r\u{1b}[2KMaya is feeling thriving",
        "\u{8}\u{8}\u{9b}31m\u{202e}dlrow\u{2066}",
        "<script>alert(1)</script> [x](http://evil.example/) **bold**",
        "\nMaya is feeling thriving · just now  [abcdef]",
        "\n- 2026-12-01 10:00 — Maya checked in, feeling thriving",
        "\n# A heading",
    ]
    .concat()
}

/// Whether `text` holds anything that acts on a terminal: a C0 control
/// other than the line break, DEL, a C1 control, or a bidi control.
fn acts(text: &str) -> Option<char> {
    text.chars().find(|c| {
        (c.is_control() && *c != '\n')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

/// Maya's home, with Lee in her circle under a hostile name, and Lee's
/// hostile check-in and reply.
fn circle_with_a_hostile_member() -> (TestHome, TestHome) {
    let maya = TestHome::new();
    maya.run(&["circle", "create", "Supper", "--as", "Maya"])
        .ok();
    let lee = TestHome::new();
    join_by_hand(&maya, &lee, "Lee");
    // Lee's own record, written raw: no local check cleans it.
    let store = lee.store();
    {
        let lock = store.lock("hostile name").unwrap();
        let id = store.circle_ids().unwrap()[0];
        let me = store.identity().unwrap().unwrap().member.id();
        let mut circle = store.open_circle(&lock, id).unwrap();
        circle
            .edit(|c| -> Result<(), StoreError> {
                let Some((Value::Object(_), members)) = c.doc().get(ROOT, "members").unwrap()
                else {
                    panic!("no members")
                };
                let Some((Value::Object(_), rec)) = c.doc().get(&members, me.to_string()).unwrap()
                else {
                    panic!("no record")
                };
                Ok(c.transact(Timestamp::now(), "name", |tx| {
                    tx.put(&rec, "name", HOSTILE_NAME)?;
                    Ok(())
                })?)
            })
            .unwrap();
    }
    let note = hostile_note();
    lee.run(&["checkin", "--mood", "okay", &note]).ok();
    let feed = lee.run(&["feed", "--json"]).ok().json();
    let id = feed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "checkin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    lee.run(&["reply", &id[..8], "\u{1b}[1A\u{1b}[2KMaya: nobody cares"])
        .ok();
    lee.run(&["moment", "\u{1b}]0;moment title\u{7}a good day"])
        .ok();
    sync_by_hand(&[&maya, &lee]);
    (maya, lee)
}

#[test]
fn feed_show_and_export_print_words_not_control_codes() {
    let (maya, _lee) = circle_with_a_hostile_member();
    for args in [
        &["feed"][..],
        &["show"],
        &["members"],
        &["export"],
        &["export", "--format", "markdown"],
    ] {
        let out = maya.run(args).ok().stdout;
        assert_eq!(acts(&out), None, "`{}` printed a control:\n{out}", args[0]);
        // Nobody's words start a line of their own: a second line of the
        // check-in cannot pass for Maya's.
        assert!(
            !out.lines()
                .any(|l| l.starts_with("Maya is feeling thriving")),
            "`{}`:\n{out}",
            args[0]
        );
    }
    let feed = maya.run(&["feed"]).ok().stdout;
    // The controls are there to see, as pictures.
    for shown in [
        "fine␛[2J",
        "␛]0;new title␇",
        "␛]8;;http://evil.example/",
        "␍␛[2K",
        "‹U+202E›dlrow",
    ] {
        assert!(feed.contains(shown), "{shown:?} missing:\n{feed}");
    }
    // The name is cleaned for display: no control in it, and Lee is Lee.
    assert!(feed.contains("Lee]0;owned[2Jeel is doing okay"), "{feed}");
    assert!(feed.contains("│ Maya is feeling thriving"), "{feed}");
    assert!(feed.contains("␛[1A␛[2KMaya: nobody cares"), "{feed}");

    // The archive: no HTML, no Markdown of Lee's acts.
    let md = maya.run(&["export"]).ok().stdout;
    assert!(!md.contains("<script>"), "{md}");
    assert!(md.contains("&lt;script&gt;"), "{md}");
    assert!(md.contains("\\[x\\](http://evil.example/)"), "{md}");
    assert!(md.contains("\\*\\*bold\\*\\*"), "{md}");
    assert!(
        !md.lines()
            .any(|l| l.trim_start().starts_with("- 2026-12-01 10:00 — Maya")),
        "{md}"
    );
    assert!(!md.lines().any(|l| l.starts_with("# A heading")), "{md}");
    // A file export is the same text.
    let path = maya.path().join("archive.md");
    maya.run(&["export", "--out", path.to_str().unwrap()]).ok();
    let file = std::fs::read_to_string(&path).unwrap();
    assert_eq!(acts(&file), None, "{file}");

    // JSON keeps the data as it is, escaped by JSON itself.
    let json = maya.run(&["show", "--json"]).ok();
    assert!(!json.stdout.contains('\u{1b}'), "{}", json.stdout);
    let names: Vec<String> = json.json()["members"]
        .as_object()
        .unwrap()
        .values()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.iter().any(|n| n == HOSTILE_NAME), "{names:?}");
}

#[test]
fn a_name_that_looks_like_anothers_is_refused_in_words() {
    let maya = TestHome::new();
    maya.run(&["circle", "create", "Supper", "--as", "Maya"])
        .ok();
    let lee = TestHome::new();
    join_by_hand(&maya, &lee, "Lee");
    // A Cyrillic "а" in "Maya".
    let err = lee
        .run(&["profile", "--name", "M\u{430}ya"])
        .expect_code(2)
        .one_line_error()
        .stderr;
    assert!(err.contains("looks like the name of Maya"), "{err}");
    // Invisible characters and controls never reach the document.
    lee.run(&["profile", "--name", "Lee\u{200b}\u{1b}[2J Ann"])
        .ok();
    let names: Vec<String> = lee
        .run(&["members", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.contains(&"Lee[2J Ann".to_owned()), "{names:?}");
}
