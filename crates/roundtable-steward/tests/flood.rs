//! Anyone who reaches a running steward (on loopback here) can open shelves
//! of their own and put there; a flood of empty or tiny items, or of more
//! items than a shelf holds, is refused in words, and the members of a
//! circle kept there are still served.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use roundtable_core::CircleId;
use roundtable_core::keys::EpochKey;
use roundtable_core::steward::{LockerId, ShelfKey, ShelfKind};
use roundtable_core::wire::{self, StewardReply, StewardRequest};
use roundtable_net::framing::{RecvHalf, SendHalf, read_frame, write_frame};
use roundtable_net::{Admitted, Connection, Incoming, Net, NetConfig, STEWARD_ALPN};
use roundtable_steward::keeper::ITEM_OVERHEAD;
use roundtable_steward::{Limits, Steward, StewardOptions};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Every wait in these tests is bounded by this.
const LIMIT: Duration = Duration::from_secs(60);

/// A device reaching the steward.
struct Client {
    net: Net,
    conn: Connection,
    _incoming: mpsc::Receiver<Incoming>,
}

impl Client {
    async fn to(steward: &Steward, seed: u8) -> Self {
        let (tx, rx) = mpsc::channel(1);
        let net = timeout(
            LIMIT,
            Net::bind([seed; 32], &NetConfig::loopback(), Admitted::default(), tx),
        )
        .await
        .expect("in time")
        .expect("binds");
        let conn = timeout(
            LIMIT,
            net.dialer()
                .connect(steward.ticket().addr.clone(), STEWARD_ALPN),
        )
        .await
        .expect("in time")
        .expect("connects");
        Self {
            net,
            conn,
            _incoming: rx,
        }
    }

    fn device(&self) -> [u8; 32] {
        *self.net.id().as_bytes()
    }

    /// A stream with the shelf of `shelf` open.
    async fn open(&self, steward: &Steward, shelf: &Shelf) -> Stream {
        let (send, recv) = timeout(LIMIT, self.conn.open_bi())
            .await
            .expect("in time")
            .expect("a stream");
        let mut s = Stream { send, recv };
        let reply = s
            .ask(&StewardRequest::Open {
                locker: shelf.locker.0,
                shelf: shelf.key.shelf(),
                proof: shelf
                    .key
                    .proof(&steward.ticket().id(), &shelf.locker, &self.device()),
            })
            .await;
        assert!(matches!(reply, StewardReply::Opened { .. }), "{reply:?}");
        s
    }

    async fn close(self) {
        self.conn.close(0u32.into(), b"done");
        timeout(LIMIT, self.net.shutdown()).await.expect("in time");
    }
}

struct Stream {
    send: SendHalf,
    recv: RecvHalf,
}

impl Stream {
    async fn ask(&mut self, request: &StewardRequest) -> StewardReply {
        timeout(LIMIT, async {
            write_frame(&mut self.send, &wire::encode(request))
                .await
                .expect("sends");
            let bytes = read_frame(&mut self.recv, 64 << 20)
                .await
                .expect("reads")
                .expect("an answer");
            wire::decode(&bytes).expect("decodes")
        })
        .await
        .expect("the steward answers in time")
    }

    async fn put(&mut self, bytes: Vec<u8>, below: Option<u64>) -> StewardReply {
        let kind = if below.is_some() {
            ShelfKind::Snapshot
        } else {
            ShelfKind::Changes
        };
        self.ask(&StewardRequest::Put {
            kind: kind as u8,
            bytes,
            supersede_below: below,
        })
        .await
    }

    async fn fetch(&mut self, after: u64) -> Vec<Vec<u8>> {
        match self
            .ask(&StewardRequest::Fetch {
                after,
                max_bytes: 1 << 20,
            })
            .await
        {
            StewardReply::Items { items, .. } => items.into_iter().map(|i| i.bytes).collect(),
            other => panic!("{other:?}"),
        }
    }
}

/// A circle key's shelf.
struct Shelf {
    locker: LockerId,
    key: ShelfKey,
}

fn shelf(seed: u8) -> Shelf {
    let circle = CircleId::from_bytes([seed; 16]);
    Shelf {
        locker: LockerId([seed; 16]),
        key: ShelfKey::of(circle, &EpochKey::new(0, [seed; 32], [seed; 32])),
    }
}

async fn start(home: &std::path::Path, limits: Limits) -> Steward {
    timeout(
        LIMIT,
        Steward::start(StewardOptions {
            home: home.to_owned(),
            net: NetConfig::loopback(),
            store: None,
            limits,
        }),
    )
    .await
    .expect("in time")
    .expect("the steward starts")
}

fn refusal(reply: &StewardReply) -> Option<&str> {
    match reply {
        StewardReply::Refused { reason } => Some(reason),
        _ => None,
    }
}

/// Two members of a circle meet through the steward after the flood: one
/// puts, the other fetches what was put; and a fold is let through.
async fn members_are_served(steward: &Steward, before: &[u8]) {
    let circle = shelf(1);
    let maya = Client::to(steward, 11).await;
    let sam = Client::to(steward, 12).await;
    let mut m = maya.open(steward, &circle).await;
    let mut s = sam.open(steward, &circle).await;
    let words = b"sealed words after the flood".to_vec();
    let reply = m.put(words.clone(), None).await;
    assert!(matches!(reply, StewardReply::Stored { .. }), "{reply:?}");
    assert_eq!(s.fetch(0).await, vec![before.to_vec(), words]);
    maya.close().await;
    sam.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_empty_and_tiny_items_is_refused_and_members_are_still_served() {
    let home = tempfile::tempdir().unwrap();
    // A shelf holds 200 one-byte items' worth; the items bound is not what
    // stops them.
    let limits = Limits {
        max_shelf_bytes: 200 * (ITEM_OVERHEAD + 1),
        ..Limits::default()
    };
    let steward = start(home.path(), limits).await;
    let before = b"sealed words before the flood".to_vec();
    {
        let maya = Client::to(&steward, 11).await;
        let mut m = maya.open(&steward, &shelf(1)).await;
        let reply = m.put(before.clone(), None).await;
        assert!(matches!(reply, StewardReply::Stored { .. }), "{reply:?}");
        maya.close().await;
    }

    let stranger = Client::to(&steward, 99).await;
    let mut x = stranger.open(&steward, &shelf(50)).await;
    for _ in 0..1_000 {
        let reply = x.put(Vec::new(), None).await;
        assert!(
            refusal(&reply).is_some_and(|r| r.contains("empty")),
            "{reply:?}"
        );
    }
    let mut kept = 0;
    let why = loop {
        let reply = x.put(vec![1], None).await;
        match refusal(&reply) {
            None => kept += 1,
            Some(r) => break r.to_owned(),
        }
        assert!(
            kept <= 200,
            "one-byte items were kept past the shelf's bytes"
        );
    };
    assert_eq!(kept, 200);
    assert!(why.contains("full"), "{why}");
    // Saying it supersedes, while dropping nothing, makes no room.
    let reply = x.put(vec![1], Some(0)).await;
    assert!(refusal(&reply).is_some(), "{reply:?}");
    let status = steward.status();
    let items: usize = status.lockers.iter().map(|l| l.items).sum();
    assert_eq!(items, 201, "the member's item and the stranger's 200");

    members_are_served(&steward, &before).await;
    stranger.close().await;
    timeout(LIMIT, steward.shutdown()).await.expect("in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_the_items_a_shelf_holds_is_refused_and_members_are_still_served() {
    let home = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_shelf_items: 300,
        ..Limits::default()
    };
    let steward = start(home.path(), limits).await;
    let before = b"sealed words before the flood".to_vec();
    {
        let maya = Client::to(&steward, 11).await;
        let mut m = maya.open(&steward, &shelf(1)).await;
        let reply = m.put(before.clone(), None).await;
        assert!(matches!(reply, StewardReply::Stored { .. }), "{reply:?}");
        maya.close().await;
    }

    let stranger = Client::to(&steward, 99).await;
    let mut x = stranger.open(&steward, &shelf(50)).await;
    let mut kept = 0u64;
    let why = loop {
        let reply = x.put(vec![2; 64], None).await;
        match refusal(&reply) {
            None => kept += 1,
            Some(r) => break r.to_owned(),
        }
        assert!(kept <= 300, "items were kept past the shelf's bound");
    };
    assert_eq!(kept, 300);
    assert!(why.contains("300 items"), "{why}");
    // More streams change nothing.
    let mut y = stranger.open(&steward, &shelf(50)).await;
    let reply = y.put(vec![2; 64], None).await;
    assert!(refusal(&reply).is_some(), "{reply:?}");
    // A fold is let through and makes room.
    let reply = x.put(vec![3; 64], Some(kept + 1)).await;
    assert!(matches!(reply, StewardReply::Stored { .. }), "{reply:?}");
    let reply = y.put(vec![2; 64], None).await;
    assert!(matches!(reply, StewardReply::Stored { .. }), "{reply:?}");

    members_are_served(&steward, &before).await;
    stranger.close().await;
    timeout(LIMIT, steward.shutdown()).await.expect("in time");
}
