//! Several steward processes over one bucket. Each indexes what it finds
//! when it starts and what passes through it; what another process puts,
//! drops or leaves it reads from storage when a device asks: a shelf is
//! listed whole when it is opened, and past its newest known item before
//! a fetch and at each `Watch` (so a watching device hears of others'
//! items at its keep-alive); a welcome this process does not know is
//! looked for by its slot. On a disk of its own, one process is all there
//! is, and none of this runs.

use std::collections::BTreeMap;

use tracing::debug;

use super::welcomes::{parse_welcome_key, welcome_key_prefix};
use super::{Keeper, Meta, ShelfRef, Waiting, item_key, lock, parse_item_key};
use crate::blobs::{BlobError, Blobs};

impl<B: Blobs> Keeper<B> {
    /// Reads again what storage holds of `shelf`: all of it when `whole`
    /// (items others dropped go from the index too), else the items past
    /// the newest this process knows.
    pub(super) fn catch_up(&self, shelf: ShelfRef, whole: bool) -> Result<(), BlobError> {
        if !self.blobs.shared() {
            return Ok(());
        }
        let Some(s) = lock(&self.index).shelves.get(&shelf).cloned() else {
            return Ok(());
        };
        let mut s = lock(&s);
        let prefix = format!("lockers/{}/{}", shelf.0.to_hex(), super::hex(&shelf.1));
        let after = match (whole, s.items.iter().next_back()) {
            (false, Some((seq, meta))) => Some(item_key(&shelf, *seq, meta)),
            _ => None,
        };
        let mut found: BTreeMap<u64, Meta> = BTreeMap::new();
        self.list_all(&prefix, after, |key, size| {
            if let Some((at, seq, kind, by)) = parse_item_key(key)
                && at == shelf
            {
                found.insert(seq, Meta { kind, size, by });
            }
        })?;
        let (items_before, bytes_before) = (s.items.len(), s.bytes);
        if whole {
            s.items = found;
        } else {
            s.items.extend(found);
        }
        s.bytes = s.items.values().map(|m| m.size).sum();
        let (items_after, bytes_after) = (s.items.len(), s.bytes);
        if (items_before, bytes_before) != (items_after, bytes_after) {
            debug!(
                items = items_after as i64 - items_before as i64,
                "a shelf caught up with what other processes keep"
            );
        }
        let mut index = lock(&self.index);
        index.total_items = (index.total_items + items_after).saturating_sub(items_before);
        index.total_bytes = (index.total_bytes + bytes_after).saturating_sub(bytes_before);
        Ok(())
    }

    /// A welcome waiting at `slot` that another process may have left:
    /// looked for in storage, and indexed when found.
    pub(super) fn find_welcome(&self, slot: &[u8; 32]) -> Result<Option<Waiting>, BlobError> {
        if let Some(w) = lock(&self.index).welcomes.get(slot) {
            return Ok(Some(*w));
        }
        if !self.blobs.shared() {
            return Ok(None);
        }
        // Its key starts with its slot: the first key past that prefix.
        let start = welcome_key_prefix(slot);
        let page = self.blobs.list("welcomes", Some(&start), 1)?;
        let Some((key, size)) = page.first() else {
            return Ok(None);
        };
        let Some((found, expires_at, locker)) = parse_welcome_key(key) else {
            return Ok(None);
        };
        if found != *slot {
            return Ok(None);
        }
        let w = Waiting {
            locker,
            expires_at,
            size: *size,
        };
        let mut index = lock(&self.index);
        if index.welcomes.insert(*slot, w).is_none() {
            index.total_bytes += size;
        }
        Ok(Some(w))
    }
}
