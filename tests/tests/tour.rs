//! The README's tour, as written: every command of its `sh` block run in
//! order against real nodes (separate processes on loopback), with the
//! placeholders a person fills in filled in the same way, from what the
//! commands before printed: `TICKET` from `invite` (and `pair`), `ID` from
//! the entry the command before made.
//!
//! Maya runs the tour on her laptop; the `join` line runs on Sam's device,
//! and the follow-up the last line names (`roundtable pair TICKET --name
//! ...`) on Maya's phone. `roundtable up &` runs as a background process
//! kept on loopback (`--listen 127.0.0.1:0 --relay none --no-mdns --web
//! 127.0.0.1:0 --no-browser`: a test sends traffic nowhere else).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use roundtable_tests::{Run, TestHome, run_bounded};

/// One line of the tour: the command's words and its comment.
#[derive(Debug)]
struct Line {
    words: Vec<String>,
    comment: String,
}

/// The lines of the first `sh` block after "## A tour".
fn tour(readme: &str) -> Vec<Line> {
    let start = readme.find("## A tour").expect("the README has a tour");
    let block = &readme[start..];
    let open = block.find("```sh\n").expect("the tour has an sh block") + "```sh\n".len();
    let close = block[open..].find("```").expect("the sh block ends") + open;
    block[open..close]
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (command, comment) = split_comment(l);
            let words = shlex::split(command)
                .unwrap_or_else(|| panic!("the tour's line does not parse as shell: {l}"));
            Line {
                words,
                comment: comment.to_owned(),
            }
        })
        .collect()
}

/// A line's command and its comment: the first `#` outside quotes.
fn split_comment(line: &str) -> (&str, &str) {
    let mut quoted = None;
    for (i, c) in line.char_indices() {
        match (quoted, c) {
            (None, '"' | '\'') => quoted = Some(c),
            (Some(q), c) if c == q => quoted = None,
            (None, '#') => return (&line[..i], line[i + 1..].trim()),
            _ => {}
        }
    }
    (line, "")
}

/// The ticket `invite` or `pair` printed: the line that parses as one.
fn ticket_in(out: &str) -> String {
    out.lines()
        .map(str::trim)
        .find(|l| l.starts_with("roundtable") && !l.contains(' '))
        .unwrap_or_else(|| panic!("no ticket in:\n{out}"))
        .to_owned()
}

/// The id a command printed for what it made: "... (id 3fa2c1)".
fn id_in(out: &str) -> Option<String> {
    let at = out.find("(id ")? + "(id ".len();
    let end = out[at..].find(')')? + at;
    Some(out[at..end].to_owned())
}

/// `roundtable up`, as the tour starts it, kept on loopback.
struct Node(Child);

impl Node {
    fn start(home: &TestHome, args: &[String]) -> Self {
        let child = home
            .command()
            .args(args)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--relay",
                "none",
                "--no-mdns",
                "--web",
                "127.0.0.1:0",
                "--no-browser",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("roundtable up starts");
        let node = Self(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while home.run(&["status", "--json"]).json()["running"] != true {
            assert!(Instant::now() < deadline, "the node does not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(home: &TestHome, args: &[String]) -> Run {
    let mut cmd = home.command();
    cmd.args(args);
    let r = run_bounded(cmd, Duration::from_secs(90));
    assert_eq!(
        r.code,
        0,
        "`roundtable {}` failed ({}):\n{}{}",
        args.join(" "),
        r.code,
        r.stdout,
        r.stderr
    );
    r
}

#[test]
fn the_readme_tour_works_as_written() {
    let readme = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .join("README.md"),
    )
    .unwrap();
    let lines = tour(&readme);
    assert!(lines.len() >= 10, "the tour is short: {lines:?}");

    let (laptop, sam, phone) = (TestHome::new(), TestHome::new(), TestHome::new());
    let mut node = None;
    let mut ticket = String::new();
    let mut pair_ticket = String::new();
    let mut last_id: Option<String> = None;
    for line in &lines {
        assert_eq!(line.words[0], "roundtable", "{line:?}");
        let mut args: Vec<String> = line.words[1..].to_vec();
        let background = args.last().is_some_and(|a| a == "&");
        if background {
            args.pop();
        }
        for a in &mut args {
            match a.as_str() {
                "TICKET" => *a = ticket.clone(),
                "ID" => {
                    *a = last_id
                        .clone()
                        .unwrap_or_else(|| panic!("no id printed before {line:?}"))
                }
                _ => {}
            }
        }
        if args[0] == "up" {
            assert!(background, "the tour runs the node in the background");
            node = Some(Node::start(&laptop, &args));
            continue;
        }
        let home = if args[0] == "join" { &sam } else { &laptop };
        let r = run(home, &args);
        match args[0].as_str() {
            "invite" => ticket = ticket_in(&r.stdout),
            "pair" => pair_ticket = ticket_in(&r.stdout),
            _ => {}
        }
        if let Some(id) = id_in(&r.stdout) {
            last_id = Some(id);
        }
    }
    assert!(node.is_some(), "the tour starts the node");

    // The last line's comment says how the other device takes the pairing.
    let follow = lines.last().unwrap();
    let at = follow
        .comment
        .find("`roundtable pair TICKET")
        .expect("the tour says how to pair the other device");
    let command = &follow.comment[at + 1..];
    let command = &command[..command.find('`').unwrap()];
    let mut args = shlex::split(command).unwrap()[1..].to_vec();
    for a in &mut args {
        if a == "TICKET" {
            *a = pair_ticket.clone();
        }
    }
    run(&phone, &args);

    // What the tour did is there, in everyone's words.
    let feed = run(&laptop, &["feed".to_owned()]).stdout;
    for words in [
        "Sam joined the circle",
        "long week, better now",
        "soup this week?",
        "Soup night",
        "stepping back",
    ] {
        assert!(
            feed.contains(words),
            "{words:?} is not in the feed:\n{feed}"
        );
    }
    assert!(
        !feed.contains("\"long week\""),
        "the edit did not take:\n{feed}"
    );
    let sams = run(&sam, &["members".to_owned()]).stdout;
    assert!(
        sams.contains("Maya") && sams.contains("Sam"),
        "Sam's copy: {sams}"
    );
    let devices = run(&phone, &["device".to_owned(), "list".to_owned()]).stdout;
    assert!(devices.contains("Maya's phone"), "{devices}");
    assert!(!devices.contains("unnamed"), "{devices}");
}
