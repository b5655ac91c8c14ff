//! A locker's shelves over years: one per circle key, in the order they
//! were first opened. A circle changes its key at every removal, so a
//! locker that would hold more than [`Limits::max_shelves`] retires its
//! oldest shelf that no device has opened for [`QUIET`] (what lies there
//! is on the newer shelves too: each device that moved on put its whole
//! copy on the next). Only a device asleep that long and through that
//! many key changes needed it; it is told so when it comes, and catches up
//! from a member directly. A shelf in use is never retired: where every
//! shelf was opened lately (someone opening shelves of their own in the
//! circle's locker), a new one is refused instead.
//!
//! The order is kept in `shelves/<locker>` with when each shelf was last
//! opened (written when a shelf comes or goes, and at most daily else) and
//! the shelves retired (the newest [`MAX_RETIRED`]), so a retired shelf
//! is not opened again.
//!
//! [`Limits::max_shelves`]: super::Limits::max_shelves

use roundtable_core::steward::LockerId;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{Keeper, Locker, ShelfRef, item_key, lock};
use crate::blobs::{BlobError, Blobs};

/// Retired shelves remembered per locker.
const MAX_RETIRED: usize = 256;

/// A shelf not opened for this long may retire (ms).
pub(super) const QUIET: i64 = 30 * 24 * 60 * 60 * 1000;

/// How stale the kept times of opening may grow before they are written.
const ORDER_WRITE_EVERY: i64 = 24 * 60 * 60 * 1000;

/// What a device asleep on a retired shelf is told.
pub(super) const RETIRED: &str = "this steward no longer keeps the circle's key this device holds (the circle moved on many keys since); open Roundtable while another member's device is open to catch up";

/// What a new shelf is told when none may retire.
const ALL_IN_USE: &str = "this circle has opened as many keys at this steward as it keeps, all in use this month; add the steward again to start afresh";

/// A shelf a locker holds, and when a device last opened it (ms since
/// the epoch; 0 when not known).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct Held {
    pub(super) shelf: [u8; 32],
    pub(super) opened: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ShelfOrder {
    held: Vec<Held>,
    retired: Vec<[u8; 32]>,
}

fn order_key(locker: &LockerId) -> String {
    format!("shelves/{}", locker.to_hex())
}

/// What opening a shelf does to its locker.
pub(super) enum Admit {
    /// It holds it already; `write`: the times of opening are due to be
    /// written.
    Held { write: bool },
    /// Taken on (the order is to be written), and the shelf named
    /// retired, if any, to be emptied.
    New(Option<[u8; 32]>),
}

impl Locker {
    /// Whether it holds `shelf` (a retired one it does not).
    pub(super) fn holds(&self, shelf: &[u8; 32]) -> bool {
        self.shelves.iter().any(|h| h.shelf == *shelf)
    }

    /// A shelf found in storage.
    pub(super) fn found(&mut self, shelf: [u8; 32]) {
        if !self.holds(&shelf) {
            self.shelves.push(Held { shelf, opened: 0 });
        }
    }

    /// `shelf` is opened at `now`: takes it on (retiring the oldest quiet
    /// one past `max`), or refuses it.
    pub(super) fn admit(
        &mut self,
        shelf: [u8; 32],
        max: usize,
        now: i64,
    ) -> Result<Admit, &'static str> {
        if let Some(h) = self.shelves.iter_mut().find(|h| h.shelf == shelf) {
            h.opened = h.opened.max(now);
            return Ok(Admit::Held {
                write: now - self.order_written > ORDER_WRITE_EVERY,
            });
        }
        if self.retired.contains(&shelf) {
            return Err(RETIRED);
        }
        let mut retired = None;
        if self.shelves.len() >= max.max(1) {
            let Some(i) = self.shelves.iter().position(|h| now - h.opened > QUIET) else {
                return Err(ALL_IN_USE);
            };
            let old = self.shelves.remove(i).shelf;
            self.retired.push(old);
            let excess = self.retired.len().saturating_sub(MAX_RETIRED);
            self.retired.drain(..excess);
            retired = Some(old);
        }
        self.shelves.push(Held { shelf, opened: now });
        Ok(Admit::New(retired))
    }
}

impl<B: Blobs> Keeper<B> {
    /// Reads a locker's kept order of shelves. Shelves found in storage
    /// but not in it come first, as shelves not opened lately.
    pub(super) fn read_order(&self, locker: &LockerId, l: &mut Locker) -> Result<(), BlobError> {
        let kept = match self.blobs.get(&order_key(locker))? {
            Some(bytes) => postcard::from_bytes::<ShelfOrder>(&bytes).unwrap_or_default(),
            None => ShelfOrder::default(),
        };
        let mut shelves: Vec<Held> = l
            .shelves
            .iter()
            .filter(|h| !kept.held.iter().any(|k| k.shelf == h.shelf))
            .copied()
            .collect();
        shelves.extend(kept.held);
        shelves.retain(|h| !kept.retired.contains(&h.shelf));
        l.shelves = shelves;
        l.retired = kept.retired;
        Ok(())
    }

    /// Writes a locker's order as it stands.
    pub(super) fn write_order(&self, locker: &LockerId, now: i64) -> Result<(), BlobError> {
        let bytes = {
            let mut index = lock(&self.index);
            let Some(l) = index.lockers.get_mut(locker) else {
                return Ok(());
            };
            l.order_written = now;
            postcard::to_stdvec(&ShelfOrder {
                held: l.shelves.clone(),
                retired: l.retired.clone(),
            })
            .expect("encodes")
        };
        self.blobs.put(&order_key(locker), &bytes)
    }

    /// Empties a retired shelf: its items go, and a put under way on it
    /// finishes first (and goes with them).
    pub(super) fn empty_retired(&self, shelf: ShelfRef) -> Result<(), BlobError> {
        let Some(s) = lock(&self.index).shelves.remove(&shelf) else {
            return Ok(());
        };
        let mut s = lock(&s);
        let items = std::mem::take(&mut s.items);
        for (seq, meta) in &items {
            self.blobs.delete(&item_key(&shelf, *seq, meta))?;
        }
        let bytes = std::mem::take(&mut s.bytes);
        let mut index = lock(&self.index);
        index.total_bytes = index.total_bytes.saturating_sub(bytes);
        index.total_items = index.total_items.saturating_sub(items.len());
        info!(
            locker = %shelf.0.to_hex(),
            items = items.len(),
            bytes,
            "a quiet shelf of a locker that moved on many keys retired"
        );
        Ok(())
    }

    /// Whether a locker holds a shelf now (a retired one it does not).
    pub(super) fn holds(&self, shelf: &ShelfRef) -> bool {
        lock(&self.index)
            .lockers
            .get(&shelf.0)
            .is_some_and(|l| l.holds(&shelf.1))
    }
}
