//! The keeper's own tests, over storage in memory.

use super::*;
use roundtable_core::keys::EpochKey;
use roundtable_core::steward::ShelfKey;
use roundtable_core::{CircleId, DeviceKey};

/// Storage in memory, for the keeper's own tests (the real ones are
/// tested in `blobs`).
#[derive(Default)]
struct Mem(Mutex<BTreeMap<String, Vec<u8>>>);

impl Blobs for Mem {
    fn create(&self, key: &str, bytes: &[u8]) -> Result<bool, BlobError> {
        let mut m = lock(&self.0);
        if m.contains_key(key) {
            return Ok(false);
        }
        m.insert(key.into(), bytes.into());
        Ok(true)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError> {
        lock(&self.0).insert(key.into(), bytes.into());
        Ok(())
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
        Ok(lock(&self.0).get(key).cloned())
    }
    fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, BlobError> {
        let p = format!("{prefix}/");
        Ok(lock(&self.0)
            .iter()
            .filter(|(k, _)| k.starts_with(&p) && after.is_none_or(|a| k.as_str() > a))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.len() as u64))
            .collect())
    }
    fn delete(&self, key: &str) -> Result<(), BlobError> {
        lock(&self.0).remove(key);
        Ok(())
    }
}

const STEWARD: [u8; 32] = [42; 32];

fn shelf_key(seed: u8) -> (LockerId, ShelfKey) {
    let circle = CircleId::from_bytes([seed; 16]);
    let dev = DeviceKey::from_seed(&[seed; 32]);
    let key = EpochKey::new(0, *dev.id().as_bytes(), [seed; 32]);
    (LockerId([seed; 16]), ShelfKey::of(circle, &key))
}

fn open(k: &Keeper<Arc<Mem>>, device: [u8; 32], seed: u8) -> Session {
    let (locker, key) = shelf_key(seed);
    let mut s = Session::new(device);
    let h = k
        .handle(
            &mut s,
            StewardRequest::Open {
                locker: locker.0,
                shelf: key.shelf(),
                proof: key.proof(&STEWARD, &locker, &device),
            },
            0,
        )
        .expect("opens");
    assert!(matches!(h.reply, StewardReply::Opened { .. }), "{h:?}");
    s
}

fn put(
    k: &Keeper<Arc<Mem>>,
    s: &mut Session,
    kind: ShelfKind,
    n: usize,
    below: Option<u64>,
) -> u64 {
    match k
        .handle(
            s,
            StewardRequest::Put {
                kind: kind as u8,
                bytes: vec![7; n],
                supersede_below: below,
            },
            0,
        )
        .expect("puts")
        .reply
    {
        StewardReply::Stored { seq, .. } => seq,
        other => panic!("{other:?}"),
    }
}

fn fetch(k: &Keeper<Arc<Mem>>, s: &mut Session, after: u64) -> (Vec<u64>, u64, bool) {
    match k
        .handle(
            s,
            StewardRequest::Fetch {
                after,
                max_bytes: 100,
            },
            0,
        )
        .expect("fetches")
        .reply
    {
        StewardReply::Items { items, upto, more } => {
            (items.iter().map(|i| i.seq).collect(), upto, more)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_shelf_opens_only_with_its_proof_and_serves_what_others_put() {
    let mem = Arc::new(Mem::default());
    let k = Keeper::open(mem.clone(), STEWARD, Limits::default()).expect("opens");
    let (locker, key) = shelf_key(1);
    let (_, other_key) = shelf_key(2);
    let mut s = Session::new([1; 32]);
    // A proof made for another device, or with another key, is refused.
    for proof in [
        key.proof(&STEWARD, &locker, &[9; 32]),
        other_key.proof(&STEWARD, &locker, &[1; 32]),
        key.proof(&[0; 32], &locker, &[1; 32]),
    ] {
        let h = k
            .handle(
                &mut s,
                StewardRequest::Open {
                    locker: locker.0,
                    shelf: key.shelf(),
                    proof,
                },
                0,
            )
            .expect("answers");
        assert!(matches!(h.reply, StewardReply::Refused { .. }));
    }
    let h = k
        .handle(
            &mut s,
            StewardRequest::Fetch {
                after: 0,
                max_bytes: 10,
            },
            0,
        )
        .expect("answers");
    assert!(matches!(h.reply, StewardReply::Refused { .. }));

    let mut a = open(&k, [1; 32], 1);
    let mut b = open(&k, [2; 32], 1);
    let s1 = put(&k, &mut a, ShelfKind::Changes, 60, None);
    let s2 = put(&k, &mut a, ShelfKind::Changes, 60, None);
    let s3 = put(&k, &mut b, ShelfKind::Changes, 60, None);
    assert_eq!((s1, s2, s3), (1, 2, 3));
    // What a device put itself is not sent back to it.
    assert_eq!(fetch(&k, &mut a, 0), (vec![3], 3, false));
    // At most about max_bytes at a time, one item always.
    assert_eq!(fetch(&k, &mut b, 0), (vec![1], 1, true));
    assert_eq!(fetch(&k, &mut b, 1), (vec![2], 3, false));
    // Another shelf of the same locker holds nothing of this one.
    let mut c = open(&k, [3; 32], 2);
    assert_eq!(fetch(&k, &mut c, 0), (vec![], 0, false));

    // A snapshot supersedes what lay below it, but no key items.
    let kk = put(&k, &mut b, ShelfKind::Keys, 10, None);
    let snap = put(&k, &mut a, ShelfKind::Snapshot, 80, Some(kk + 1));
    assert_eq!(fetch(&k, &mut b, 0), (vec![kk, snap], snap, false));
    let status = k.status();
    assert_eq!(status.bytes, 90);
    // Read again from storage, the keeper knows the same.
    let again = Keeper::open(mem, STEWARD, Limits::default()).expect("opens");
    assert_eq!(again.status(), status);
    let mut b2 = open(&again, [2; 32], 1);
    assert_eq!(put(&again, &mut b2, ShelfKind::Changes, 5, None), snap + 1);
}

#[test]
fn a_welcome_waits_for_its_ticket_until_forgotten_or_expired() {
    let mem = Arc::new(Mem::default());
    let k = Keeper::open(mem.clone(), STEWARD, Limits::default()).expect("opens");
    let slot_token = [5u8; 32];
    let slot = roundtable_core::steward::slot_of_token(&slot_token);
    let mut stranger = Session::new([8; 32]);
    let leave = |expires_at| StewardRequest::Leave {
        slot,
        bytes: vec![1, 2, 3],
        expires_at,
    };
    // Only a device with a shelf open leaves one.
    let h = k.handle(&mut stranger, leave(1_000), 0).expect("answers");
    assert!(matches!(h.reply, StewardReply::Refused { .. }));
    let mut a = open(&k, [1; 32], 1);
    let h = k.handle(&mut a, leave(1_000), 0).expect("answers");
    assert_eq!(h.reply, StewardReply::Left);
    assert_eq!(k.welcome_size(&slot), 3, "what a take of it reads");
    assert_eq!(k.welcome_size(&[0; 32]), 0);
    // Anyone with the slot's name takes it; it outlives a restart.
    let k = Keeper::open(mem, STEWARD, Limits::default()).expect("opens again");
    let h = k
        .handle(&mut stranger, StewardRequest::Take { slot }, 10)
        .expect("answers");
    assert_eq!(
        h.reply,
        StewardReply::Welcome {
            bytes: vec![1, 2, 3]
        }
    );
    // The name does not forget it; the token does.
    k.handle(&mut stranger, StewardRequest::Forget { token: slot }, 10)
        .expect("answers");
    let h = k
        .handle(&mut stranger, StewardRequest::Take { slot }, 10)
        .expect("answers");
    assert!(matches!(h.reply, StewardReply::Welcome { .. }));
    k.handle(
        &mut stranger,
        StewardRequest::Forget { token: slot_token },
        10,
    )
    .expect("answers");
    let h = k
        .handle(&mut stranger, StewardRequest::Take { slot }, 10)
        .expect("answers");
    assert!(matches!(h.reply, StewardReply::Refused { .. }));
    // One left again expires with its invite.
    let mut a = open(&k, [1; 32], 1);
    k.handle(&mut a, leave(1_000), 20).expect("answers");
    let h = k
        .handle(&mut stranger, StewardRequest::Take { slot }, 1_000)
        .expect("answers");
    assert!(matches!(h.reply, StewardReply::Refused { .. }));
    assert_eq!(k.status().bytes, 0);
}

#[test]
fn limits_hold_against_anyone() {
    let mem = Arc::new(Mem::default());
    // A shelf holds two items of 100 bytes, not three.
    let limits = Limits {
        max_item: 100,
        max_shelf_bytes: 2 * (100 + ITEM_OVERHEAD) + 50,
        max_lockers: 1,
        ..Limits::default()
    };
    let k = Keeper::open(mem, STEWARD, limits).expect("opens");
    let mut a = open(&k, [1; 32], 1);
    let refused = |h: Handled| matches!(h.reply, StewardReply::Refused { .. });
    let big = StewardRequest::Put {
        kind: 0,
        bytes: vec![0; 101],
        supersede_below: None,
    };
    assert!(refused(k.handle(&mut a, big, 0).expect("answers")));
    put(&k, &mut a, ShelfKind::Changes, 100, None);
    put(&k, &mut a, ShelfKind::Changes, 100, None);
    let over = StewardRequest::Put {
        kind: 0,
        bytes: vec![0; 100],
        supersede_below: None,
    };
    assert!(refused(k.handle(&mut a, over, 0).expect("answers")));
    // Folding in makes room.
    put(&k, &mut a, ShelfKind::Snapshot, 100, Some(3));
    assert_eq!(k.status().bytes, 100);
    let bad_kind = StewardRequest::Put {
        kind: 9,
        bytes: vec![],
        supersede_below: None,
    };
    assert!(refused(k.handle(&mut a, bad_kind, 0).expect("answers")));
    // A second circle does not fit a steward that keeps one.
    let (locker, key) = shelf_key(5);
    let mut s = Session::new([5; 32]);
    let h = k
        .handle(
            &mut s,
            StewardRequest::Open {
                locker: locker.0,
                shelf: key.shelf(),
                proof: key.proof(&STEWARD, &locker, &[5; 32]),
            },
            0,
        )
        .expect("answers");
    assert!(refused(h));
}

#[test]
fn tiny_and_empty_items_cost_their_overhead_and_a_shelf_holds_so_many() {
    let mem = Arc::new(Mem::default());
    let limits = Limits {
        max_shelf_bytes: 10 * (1 + ITEM_OVERHEAD),
        max_shelf_items: 20,
        max_total_items: 30,
        ..Limits::default()
    };
    let k = Keeper::open(mem.clone(), STEWARD, limits).expect("opens");
    let refusal = |h: Handled| match h.reply {
        StewardReply::Refused { reason } => reason,
        other => panic!("not refused: {other:?}"),
    };
    let one = |n: usize, below: Option<u64>| StewardRequest::Put {
        kind: ShelfKind::Changes as u8,
        bytes: vec![1; n],
        supersede_below: below,
    };
    let mut a = open(&k, [1; 32], 1);
    // Nothing sealed is empty.
    let why = refusal(k.handle(&mut a, one(0, None), 0).expect("answers"));
    assert!(why.contains("empty"), "{why}");
    // One-byte items are not free: ten fill the shelf's bytes.
    for _ in 0..10 {
        put(&k, &mut a, ShelfKind::Changes, 1, None);
    }
    let why = refusal(k.handle(&mut a, one(1, None), 0).expect("answers"));
    assert!(why.contains("full"), "{why}");
    // A put that says it supersedes but drops nothing makes no room.
    let why = refusal(k.handle(&mut a, one(1, Some(0)), 0).expect("answers"));
    assert!(why.contains("full"), "{why}");
    // A fold does.
    let snap = put(&k, &mut a, ShelfKind::Snapshot, 1, Some(11));
    assert_eq!(k.status().lockers[0].items, 1);

    // Items per shelf are bounded even where bytes are not.
    let k = Keeper::open(
        Arc::new(Mem::default()),
        STEWARD,
        Limits {
            max_shelf_items: 20,
            max_total_items: 30,
            ..Limits::default()
        },
    )
    .expect("opens");
    let mut a = open(&k, [1; 32], 1);
    for _ in 0..20 {
        put(&k, &mut a, ShelfKind::Changes, 1, None);
    }
    let why = refusal(k.handle(&mut a, one(1, None), 0).expect("answers"));
    assert!(why.contains("20 items"), "{why}");
    // Another shelf takes what is left in all, no more.
    let mut b = open(&k, [2; 32], 2);
    for _ in 0..10 {
        put(&k, &mut b, ShelfKind::Changes, 1, None);
    }
    let why = refusal(k.handle(&mut b, one(1, None), 0).expect("answers"));
    assert!(why.contains("steward is full"), "{why}");
    // Folding makes room on the shelf and in all, and the count is read
    // again from storage alike.
    let snap2 = put(&k, &mut a, ShelfKind::Snapshot, 1, Some(21));
    assert!(snap2 > snap);
    put(&k, &mut b, ShelfKind::Changes, 1, None);
    let status = k.status();
    let again = Keeper::open(k.blobs.clone(), STEWARD, k.limits).expect("opens");
    assert_eq!(again.status(), status);
    assert_eq!(lock(&again.index).total_items, 12);
}

#[test]
fn a_fetch_hands_out_at_most_its_bound_whatever_it_asks() {
    let k = Keeper::open(Arc::new(Mem::default()), STEWARD, Limits::default()).expect("opens");
    let mut a = open(&k, [1; 32], 1);
    let mut b = open(&k, [2; 32], 1);
    let item = 1024 * 1024;
    for _ in 0..8 {
        put(&k, &mut a, ShelfKind::Changes, item, None);
    }
    let h = k
        .handle(
            &mut b,
            StewardRequest::Fetch {
                after: 0,
                max_bytes: u32::MAX,
            },
            0,
        )
        .expect("fetches");
    match h.reply {
        StewardReply::Items { items, more, .. } => {
            assert_eq!(items.len(), MAX_FETCH_BYTES as usize / item);
            assert!(more);
        }
        other => panic!("{other:?}"),
    }
}

/// Opens, for `device` at `now`, the shelf of key `key` of circle 1 (one
/// locker).
fn open_key(k: &Keeper<Arc<Mem>>, device: [u8; 32], key: u8, now: i64) -> Result<Session, String> {
    let circle = CircleId::from_bytes([1; 16]);
    let by = *DeviceKey::from_seed(&[1; 32]).id().as_bytes();
    let key = ShelfKey::of(circle, &EpochKey::new(u64::from(key), by, [key; 32]));
    let locker = LockerId([1; 16]);
    let mut s = Session::new(device);
    let request = StewardRequest::Open {
        locker: locker.0,
        shelf: key.shelf(),
        proof: key.proof(&STEWARD, &locker, &device),
    };
    match k.handle(&mut s, request, now).expect("answers").reply {
        StewardReply::Opened { .. } => Ok(s),
        StewardReply::Refused { reason } => Err(reason),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_circle_that_moves_on_many_keys_is_kept_and_its_oldest_quiet_shelf_retires() {
    let mem = Arc::new(Mem::default());
    let limits = Limits {
        max_shelves: 2,
        ..Limits::default()
    };
    let quiet = shelves::QUIET;
    let k = Keeper::open(mem.clone(), STEWARD, limits).expect("opens");
    let mut first = open_key(&k, [1; 32], 1, 0).expect("opens");
    put(&k, &mut first, ShelfKind::Snapshot, 1000, None);
    let mut second = open_key(&k, [1; 32], 2, 0).expect("opens");
    put(&k, &mut second, ShelfKind::Snapshot, 2000, None);
    // Both in use: a third is refused, and nothing goes.
    let why = open_key(&k, [2; 32], 3, 10).expect_err("all in use");
    assert!(why.contains("add the steward again"), "{why}");
    assert_eq!(k.status().bytes, 3000);
    // A month on, the second is still opened; the first is not.
    open_key(&k, [1; 32], 2, quiet).expect("opens");
    let mut third = open_key(&k, [2; 32], 3, quiet + 10).expect("a third key's shelf opens");
    put(&k, &mut third, ShelfKind::Snapshot, 500, None);
    // The first shelf went with what lay on it, from storage too.
    assert_eq!(k.status().bytes, 2500);
    assert_eq!(k.status().lockers[0].shelves, 2);
    assert!(!lock(&mem.0).values().any(|b| b.len() == 1000));
    // A session still on it puts nothing more there, and it is not
    // opened again: the device asleep on it is told why.
    let late = StewardRequest::Put {
        kind: ShelfKind::Changes as u8,
        bytes: vec![1; 10],
        supersede_below: None,
    };
    let reply = k.handle(&mut first, late, 0).expect("answers").reply;
    assert!(
        matches!(&reply, StewardReply::Refused { reason } if reason == shelves::RETIRED),
        "{reply:?}"
    );
    assert_eq!(
        open_key(&k, [3; 32], 1, quiet + 20).expect_err("retired"),
        shelves::RETIRED
    );
    // All of it holds across a restart: the order, the times and what
    // was retired.
    drop(k);
    let k = Keeper::open(mem.clone(), STEWARD, limits).expect("opens again");
    assert_eq!(k.status().bytes, 2500);
    assert!(open_key(&k, [3; 32], 1, quiet + 30).is_err());
    assert!(
        open_key(&k, [3; 32], 4, quiet + 30).is_err(),
        "2 and 3 in use"
    );
    open_key(&k, [3; 32], 4, 2 * quiet + 100).expect("a fourth key's shelf opens");
    // The second shelf was the oldest quiet one.
    assert_eq!(k.status().bytes, 500);
    assert!(open_key(&k, [3; 32], 2, 2 * quiet + 200).is_err());
}
