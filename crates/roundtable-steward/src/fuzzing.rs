//! Checks run by the `steward_requests` fuzz target and by the replay of
//! its kept inputs (`tests/tests/fuzz_regressions.rs`). Not part of the API.
#![doc(hidden)]

use std::sync::Arc;

use roundtable_core::wire::{self, StewardReply, StewardRequest};
use roundtable_store::fault::SimFs;

use crate::blobs::FsBlobs;
use crate::keeper::{Keeper, Limits, Session};

/// A stream of requests from anyone, member or not: each is decoded as a
/// steward decodes a frame (a `u16` length, then the bytes, here) and
/// answered; nothing panics, and what is kept stays within the limits.
pub fn steward_requests(data: &[u8]) {
    let limits = Limits {
        max_item: 4096,
        max_shelf_bytes: 16 * 1024,
        max_total_bytes: 64 * 1024,
        max_lockers: 4,
        max_shelves: 4,
        max_key_items: 4,
        max_seen: 4,
        item_overhead: 64,
        max_shelf_items: 16,
        max_total_items: 48,
    };
    let blobs = FsBlobs::open(Arc::new(SimFs::new()), "/steward/blobs").expect("opens");
    let keeper = Keeper::open(blobs, [9; 32], limits).expect("opens");
    let mut session = Session::new([1; 32]);
    let mut rest = data;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_le_bytes(*len)).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        rest = tail;
        let Ok(request) = wire::decode::<StewardRequest>(frame) else {
            continue;
        };
        let handled = keeper
            .handle(&mut session, request, 1_000)
            .expect("memory does not fail");
        if let StewardReply::Refused { reason } = &handled.reply {
            assert!(!reason.is_empty());
        }
        let status = keeper.status();
        assert!(
            status.bytes <= limits.max_total_bytes,
            "the steward kept more than it may"
        );
        let items: usize = status.lockers.iter().map(|l| l.items).sum();
        assert!(
            items <= limits.max_total_items,
            "the steward kept more items than it may"
        );
    }
}
