//! What every [`Blobs`] must do, written once for each implementation's
//! tests.

use std::sync::Barrier;

use roundtable_steward::blobs::{BlobError, Blobs, MAX_BLOB_LEN};

/// Keys that sort in an order that walking directories naively would get
/// wrong (`-` and `.` sort before `/`), with a blob that is also a prefix,
/// and each with its own size (one empty).
const KEYS: [(&str, usize); 10] = [
    ("a", 3),
    ("a-c", 0),
    ("a.x", 5),
    ("a/b", 7),
    ("a/b/c", 11),
    ("a/b/c-d", 1),
    ("a0", 13),
    ("b/c/d", 17),
    ("b/c/e", 19),
    ("z", 23),
];

fn bytes_of(key: &str, len: usize) -> Vec<u8> {
    key.bytes().cycle().take(len).collect()
}

fn listed(pairs: &[(&str, usize)]) -> Vec<(String, u64)> {
    pairs
        .iter()
        .map(|(k, n)| ((*k).to_owned(), *n as u64))
        .collect()
}

/// Runs every behaviour on `b`, whose namespace must start empty, and
/// leaves it empty.
pub(crate) fn behaves_as_blobs(b: &dyn Blobs) {
    refuses_bad_keys(b);
    a_missing_key_holds_nothing(b);
    puts_replace(b);
    creates_only_once(b);
    a_key_can_be_a_blob_and_a_prefix(b);
    lists_in_byte_order_with_sizes(b);
    pages_through_listings(b);
    deletes(b);
    takes_the_longest_key(b);
    refuses_oversized_writes(b);
    assert_eq!(b.list("", None, 100).unwrap(), [], "left empty");
}

fn is_bad_key<T: std::fmt::Debug>(result: Result<T, BlobError>) -> bool {
    matches!(result, Err(BlobError::BadKey(_)))
}

fn refuses_bad_keys(b: &dyn Blobs) {
    let long = format!("{}b", "a/".repeat(256));
    let bad = [
        "",
        "/",
        "/abs",
        "a/",
        "a//b",
        ".hidden",
        "a/.hidden",
        "..",
        "../escape",
        "a/../../etc/passwd",
        "Upper",
        "a b",
        "a\\b",
        "a:b",
        "é",
        "a\0b",
        long.as_str(),
    ];
    for key in bad {
        assert!(is_bad_key(b.create(key, b"x")), "create {key:?}");
        assert!(is_bad_key(b.put(key, b"x")), "put {key:?}");
        assert!(is_bad_key(b.get(key)), "get {key:?}");
        assert!(is_bad_key(b.delete(key)), "delete {key:?}");
        if !key.is_empty() {
            assert!(is_bad_key(b.list(key, None, 10)), "list {key:?}");
        }
        assert!(is_bad_key(b.list("", Some(key), 10)), "list after {key:?}");
    }
    assert_eq!(b.list("", None, 10).unwrap(), [], "nothing was written");
}

fn a_missing_key_holds_nothing(b: &dyn Blobs) {
    assert_eq!(b.get("missing").unwrap(), None);
    assert_eq!(b.get("missing/deep/key").unwrap(), None);
    b.delete("missing").unwrap();
    b.delete("missing/deep/key").unwrap();
    assert_eq!(b.list("missing", None, 10).unwrap(), []);
}

fn puts_replace(b: &dyn Blobs) {
    b.put("p/k", b"first").unwrap();
    assert_eq!(b.get("p/k").unwrap().unwrap(), b"first");
    b.put("p/k", b"second, longer").unwrap();
    assert_eq!(b.get("p/k").unwrap().unwrap(), b"second, longer");
    b.put("p/k", b"").unwrap();
    assert_eq!(b.get("p/k").unwrap().unwrap(), b"");
    let binary: Vec<u8> = (0..=255).collect();
    b.put("p/k", &binary).unwrap();
    assert_eq!(b.get("p/k").unwrap().unwrap(), binary);
    b.delete("p/k").unwrap();
}

fn creates_only_once(b: &dyn Blobs) {
    assert!(b.create("c/k", b"mine").unwrap());
    assert!(!b.create("c/k", b"theirs").unwrap());
    assert_eq!(b.get("c/k").unwrap().unwrap(), b"mine");
    b.put("c/k", b"replaced").unwrap();
    assert!(!b.create("c/k", b"theirs").unwrap());
    assert_eq!(b.get("c/k").unwrap().unwrap(), b"replaced");
    b.delete("c/k").unwrap();
    assert!(b.create("c/k", b"again").unwrap());
    assert_eq!(b.get("c/k").unwrap().unwrap(), b"again");
    b.delete("c/k").unwrap();
    assert!(b.create("c/empty", b"").unwrap());
    assert!(!b.create("c/empty", b"x").unwrap());
    assert_eq!(b.get("c/empty").unwrap().unwrap(), b"");
    b.delete("c/empty").unwrap();
}

fn a_key_can_be_a_blob_and_a_prefix(b: &dyn Blobs) {
    b.put("x", b"leaf").unwrap();
    b.put("x/y", b"below").unwrap();
    assert!(b.create("x/y/z", b"further").unwrap());
    assert_eq!(b.get("x").unwrap().unwrap(), b"leaf");
    assert_eq!(b.get("x/y").unwrap().unwrap(), b"below");
    assert_eq!(
        b.list("x", None, 10).unwrap(),
        listed(&[("x/y", 5), ("x/y/z", 7)])
    );
    b.delete("x").unwrap();
    assert_eq!(b.get("x").unwrap(), None);
    assert_eq!(b.get("x/y").unwrap().unwrap(), b"below");
    for key in ["x/y", "x/y/z"] {
        b.delete(key).unwrap();
    }
}

fn write_keys(b: &dyn Blobs) {
    // Out of order, so the listing's order is not the writing's.
    for (key, len) in KEYS.iter().rev() {
        b.put(key, &bytes_of(key, *len)).unwrap();
    }
}

fn delete_keys(b: &dyn Blobs) {
    for (key, _) in KEYS {
        b.delete(key).unwrap();
    }
}

fn lists_in_byte_order_with_sizes(b: &dyn Blobs) {
    write_keys(b);
    let all = b.list("", None, 100).unwrap();
    assert_eq!(all, listed(&KEYS));
    for (key, len) in &all {
        assert_eq!(b.get(key).unwrap().unwrap().len() as u64, *len, "{key}");
    }
    let under = |prefix: &str| b.list(prefix, None, 100).unwrap();
    // A prefix is whole segments: "a" lists "a/...", not "a" nor "a-c".
    assert_eq!(
        under("a"),
        listed(&[("a/b", 7), ("a/b/c", 11), ("a/b/c-d", 1)])
    );
    assert_eq!(under("a/b"), listed(&[("a/b/c", 11), ("a/b/c-d", 1)]));
    assert_eq!(under("a/b/c"), []);
    assert_eq!(under("b"), listed(&[("b/c/d", 17), ("b/c/e", 19)]));
    assert_eq!(under("b/c"), listed(&[("b/c/d", 17), ("b/c/e", 19)]));
    assert_eq!(under("a0"), []);
    assert_eq!(under("nothing/here"), []);
    delete_keys(b);
}

fn pages_through_listings(b: &dyn Blobs) {
    write_keys(b);
    for prefix in ["", "a", "a/b", "b", "b/c", "q"] {
        let all = b.list(prefix, None, 100).unwrap();
        for limit in [1, 2, 3, 100] {
            let mut pages = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = b.list(prefix, after.as_deref(), limit).unwrap();
                assert!(page.len() <= limit);
                let Some((last, _)) = page.last() else { break };
                after = Some(last.clone());
                pages.extend(page);
            }
            assert_eq!(pages, all, "{prefix:?} in pages of {limit}");
        }
    }
    let after = |prefix: &str, after: &str, limit: usize| -> Vec<String> {
        let page = b.list(prefix, Some(after), limit).unwrap();
        page.into_iter().map(|(k, _)| k).collect()
    };
    // `after` need not be a key that exists, nor under the prefix.
    assert_eq!(after("", "a/b/b", 3), ["a/b/c", "a/b/c-d", "a0"]);
    assert_eq!(after("", "a/c", 2), ["a0", "b/c/d"]);
    assert_eq!(after("", "a", 3), ["a-c", "a.x", "a/b"]);
    assert_eq!(after("", "a-c", 1), ["a.x"]);
    assert_eq!(after("", "z", 10), Vec::<String>::new());
    assert_eq!(after("b", "a", 10), ["b/c/d", "b/c/e"]);
    assert_eq!(after("b", "b/c/d", 10), ["b/c/e"]);
    assert_eq!(after("b", "c", 10), Vec::<String>::new());
    assert_eq!(after("a", "a/b", 10), ["a/b/c", "a/b/c-d"]);
    assert_eq!(b.list("", None, 0).unwrap(), []);
    delete_keys(b);
}

fn deletes(b: &dyn Blobs) {
    write_keys(b);
    for (key, _) in KEYS.iter().step_by(2) {
        b.delete(key).unwrap();
        assert_eq!(b.get(key).unwrap(), None, "{key}");
        b.delete(key).unwrap();
    }
    let left: Vec<(&str, usize)> = KEYS.iter().skip(1).step_by(2).copied().collect();
    assert_eq!(b.list("", None, 100).unwrap(), listed(&left));
    delete_keys(b);
    assert_eq!(b.list("", None, 100).unwrap(), []);
}

fn takes_the_longest_key(b: &dyn Blobs) {
    // 512 bytes, in segments short enough to be file names.
    let dirs: Vec<String> = std::iter::repeat_n("s".repeat(100), 5).collect();
    let key = format!("{}/{}", dirs.join("/"), "t".repeat(7));
    assert_eq!(key.len(), 512);
    assert!(b.create(&key, b"long").unwrap());
    assert_eq!(b.get(&key).unwrap().unwrap(), b"long");
    assert_eq!(b.list("", None, 10).unwrap(), [(key.clone(), 4)]);
    b.delete(&key).unwrap();
    assert_eq!(b.get(&key).unwrap(), None);
}

fn refuses_oversized_writes(b: &dyn Blobs) {
    let too_big = vec![0u8; usize::try_from(MAX_BLOB_LEN).unwrap() + 1];
    assert!(matches!(b.put("big", &too_big), Err(BlobError::Io(_))));
    assert!(matches!(b.create("big", &too_big), Err(BlobError::Io(_))));
    assert_eq!(b.get("big").unwrap(), None, "nothing was stored");
}

/// Each of `blobs` (instances over one namespace, as separate processes
/// would have) races two threads to create each of `rounds` keys: exactly
/// one create of each key wins, and the key holds what the winner wrote.
pub(crate) fn racing_creates(blobs: &[&dyn Blobs], rounds: usize) {
    let racers = blobs.len() * 2;
    for round in 0..rounds {
        let key = format!("race/{round}");
        let barrier = Barrier::new(racers);
        let results: Vec<(Vec<u8>, bool)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..racers)
                .map(|i| {
                    let (b, key, barrier) = (blobs[i % blobs.len()], &key, &barrier);
                    s.spawn(move || {
                        let mine = format!("racer {i}").into_bytes();
                        barrier.wait();
                        let won = b.create(key, &mine).unwrap();
                        (mine, won)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<&Vec<u8>> = results.iter().filter(|r| r.1).map(|r| &r.0).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for b in blobs {
            assert_eq!(b.get(&key).unwrap().as_ref(), Some(winners[0]));
        }
    }
    for round in 0..rounds {
        blobs[0].delete(&format!("race/{round}")).unwrap();
    }
}
