//! Reading what a steward keeps when it starts: every item's name (never
//! its bytes), the welcomes waiting, the devices seen and the order of
//! each locker's shelves.

use std::sync::Mutex;

use roundtable_core::steward::LockerId;
use tracing::{debug, info};

use super::welcomes::parse_welcome_key;
use super::{Index, Keeper, Limits, Meta, Waiting, lock, parse_item_key, seen_key};
use crate::blobs::{BlobError, Blobs};

const LIST_PAGE: usize = 1000;

impl<B: Blobs> Keeper<B> {
    /// A keeper with the steward's id over `blobs`: reads what is kept
    /// (every item's name, never its bytes).
    pub fn open(blobs: B, id: [u8; 32], limits: Limits) -> Result<Self, BlobError> {
        let keeper = Self {
            blobs,
            id,
            limits,
            index: Mutex::new(Index::default()),
        };
        let mut index = Index::default();
        keeper.list_all("lockers", None, |key, size| {
            let Some((shelf, seq, kind, by)) = parse_item_key(key) else {
                debug!(key, "not an item of a shelf; left alone");
                return;
            };
            index.lockers.entry(shelf.0).or_default().found(shelf.1);
            let s = index.shelves.entry(shelf).or_default();
            let mut s = lock(s);
            s.items.insert(seq, Meta { kind, size, by });
            s.bytes += size;
            index.total_bytes += size;
            index.total_items += 1;
        })?;
        keeper.list_all("seen", None, |key, _| {
            if let Some(locker) = key.strip_prefix("seen/").and_then(LockerId::from_hex) {
                index.lockers.entry(locker).or_default();
            }
        })?;
        keeper.list_all("welcomes", None, |key, size| {
            if let Some((slot, expires_at, locker)) = parse_welcome_key(key) {
                index.welcomes.insert(
                    slot,
                    Waiting {
                        locker,
                        expires_at,
                        size,
                    },
                );
                index.total_bytes += size;
            }
        })?;
        for (locker, l) in index.lockers.iter_mut() {
            if let Some(bytes) = keeper.blobs.get(&seen_key(locker))?
                && let Ok(seen) = postcard::from_bytes::<Vec<([u8; 32], i64)>>(&bytes)
            {
                l.seen_written = seen.iter().copied().collect();
                l.seen = l.seen_written.clone();
            }
            keeper.read_order(locker, l)?;
        }
        info!(
            lockers = index.lockers.len(),
            bytes = index.total_bytes,
            "steward's keeping read"
        );
        // A shelf retired while its items were being deleted: finish.
        let unfinished: Vec<_> = index
            .shelves
            .keys()
            .filter(|(locker, shelf)| index.lockers.get(locker).is_some_and(|l| !l.holds(shelf)))
            .copied()
            .collect();
        *lock(&keeper.index) = index;
        for shelf in unfinished {
            keeper.empty_retired(shelf)?;
        }
        Ok(keeper)
    }

    /// Calls `each` with every key under `prefix` (past `after`, if
    /// given) and its size, a page at a time.
    pub(super) fn list_all(
        &self,
        prefix: &str,
        mut after: Option<String>,
        mut each: impl FnMut(&str, u64),
    ) -> Result<(), BlobError> {
        loop {
            let page = self.blobs.list(prefix, after.as_deref(), LIST_PAGE)?;
            for (key, size) in &page {
                each(key, *size);
            }
            match page.last() {
                Some((last, _)) if page.len() == LIST_PAGE => after = Some(last.clone()),
                _ => return Ok(()),
            }
        }
    }
}
