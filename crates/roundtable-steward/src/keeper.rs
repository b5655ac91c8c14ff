//! What a steward decides, with no network of its own: which shelf a
//! session may open, what it is handed, what is kept and what dropped.
//! Everything it keeps goes through [`Blobs`], so it runs the same on a
//! disk, in object storage, and on the simulation's crash-testing files.
//!
//! A steward keeps, per circle, a *locker*; per circle key, a *shelf* in
//! it; on a shelf, numbered sealed items (see `roundtable_core::steward`).
//! It opens a shelf to a device only on a proof made with the shelf's key
//! for this steward, this locker and that device's connection, and it
//! never holds anything that opens an item.
//!
//! Layout: `lockers/<locker>/<shelf>/<seq:016x>-<kind>-<device>` for each
//! item (the name alone says what [`Keeper`] needs to know about it, so a
//! shelf is indexed by listing it), `seen/<locker>` for the devices
//! seen there lately, and `shelves/<locker>` for the order of its shelves
//! (see `shelves`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use roundtable_core::steward::{LockerId, ShelfKind, verify_proof};
use roundtable_core::wire::{ShelfEntry, StewardReply, StewardRequest};
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::blobs::{BlobError, Blobs};

mod load;
mod shared;
mod shelves;
mod welcomes;

use shelves::{Admit, Held};
use welcomes::welcome_key;

/// How much a steward takes on.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest sealed item (a snapshot of a large circle).
    pub max_item: usize,
    /// The most a shelf holds.
    pub max_shelf_bytes: u64,
    /// The most all shelves together hold.
    pub max_total_bytes: u64,
    /// The most lockers (circles) kept.
    pub max_lockers: usize,
    /// The most shelves (circle keys) a locker holds.
    pub max_shelves: usize,
    /// The most key items a shelf holds (the oldest go first).
    pub max_key_items: usize,
    /// The most devices remembered per locker.
    pub max_seen: usize,
    /// What each item and each waiting welcome costs against the byte
    /// bounds beyond its own bytes (a file or object of its own, and an
    /// entry in the index), so that many tiny items are not free.
    pub item_overhead: u64,
    /// The most items a shelf holds. Devices fold a shelf into a snapshot
    /// once it holds twice the circle, so an honest shelf stays far below.
    pub max_shelf_items: usize,
    /// The most items all shelves hold together (the index keeps about
    /// 110 bytes of memory per item).
    pub max_total_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_item: 48 * 1024 * 1024,
            max_shelf_bytes: 512 * 1024 * 1024,
            max_total_bytes: 20 * 1024 * 1024 * 1024,
            max_lockers: 10_000,
            max_shelves: 64,
            max_key_items: 64,
            max_seen: 256,
            item_overhead: ITEM_OVERHEAD,
            max_shelf_items: 100_000,
            max_total_items: 1_000_000,
        }
    }
}

/// What an item costs against the byte bounds beyond its bytes: about a
/// file's block on a disk.
pub const ITEM_OVERHEAD: u64 = 4096;

/// The most a fetch hands out at once beyond its first item, whatever it
/// asks for (devices ask 4 MiB).
pub const MAX_FETCH_BYTES: u32 = 4 * 1024 * 1024;

/// One item as the index knows it.
#[derive(Debug, Clone, Copy)]
struct Meta {
    kind: ShelfKind,
    size: u64,
    by: [u8; 32],
}

/// The index of one shelf.
#[derive(Debug, Default)]
struct Shelf {
    items: BTreeMap<u64, Meta>,
    bytes: u64,
}

impl Shelf {
    fn last(&self) -> u64 {
        self.items.keys().next_back().copied().unwrap_or(0)
    }

    /// What it holds against the byte bounds: its bytes, and the overhead
    /// of each item.
    fn charged(&self, overhead: u64) -> u64 {
        self.bytes + self.items.len() as u64 * overhead
    }

    /// The items a put of `kind`, numbered `seq` and superseding below
    /// `below`, drops: what lies below it but key items, and the oldest key
    /// items past `max_keys`.
    fn dropped_by(
        &self,
        kind: ShelfKind,
        seq: u64,
        below: Option<u64>,
        max_keys: usize,
    ) -> Vec<(u64, Meta)> {
        let mut dropped: Vec<(u64, Meta)> = Vec::new();
        if let Some(below) = below {
            dropped.extend(
                self.items
                    .range(..below.min(seq))
                    .filter(|(_, m)| m.kind != ShelfKind::Keys)
                    .map(|(k, m)| (*k, *m)),
            );
        }
        if kind == ShelfKind::Keys {
            let keys: Vec<(u64, Meta)> = self
                .items
                .iter()
                .filter(|(_, m)| m.kind == ShelfKind::Keys)
                .map(|(k, m)| (*k, *m))
                .collect();
            // With the one being put.
            let excess = (keys.len() + 1).saturating_sub(max_keys);
            dropped.extend(keys.into_iter().take(excess));
        }
        dropped
    }
}

/// A shelf, by locker and name.
type ShelfRef = (LockerId, [u8; 32]);

#[derive(Debug, Default)]
struct Locker {
    /// Its shelves, in the order they were first opened (see `shelves`).
    shelves: Vec<Held>,
    /// Shelves retired, newest last.
    retired: Vec<[u8; 32]>,
    /// When the order of shelves was last written (ms since the epoch).
    order_written: i64,
    /// Devices seen, with when (ms since the epoch).
    seen: BTreeMap<[u8; 32], i64>,
    /// When `seen` was last written, per device.
    seen_written: BTreeMap<[u8; 32], i64>,
}

#[derive(Debug, Default)]
struct Index {
    lockers: HashMap<LockerId, Locker>,
    shelves: HashMap<ShelfRef, Arc<Mutex<Shelf>>>,
    /// Welcomes waiting, by slot.
    welcomes: HashMap<[u8; 32], Waiting>,
    total_bytes: u64,
    /// Items on all shelves.
    total_items: usize,
}

impl Index {
    /// What all shelves and welcomes hold against the byte bound.
    fn charged(&self, overhead: u64) -> u64 {
        self.total_bytes + (self.total_items + self.welcomes.len()) as u64 * overhead
    }
}

/// A welcome waiting for someone holding a ticket.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    locker: LockerId,
    expires_at: i64,
    size: u64,
}

/// One device's stream, as the keeper sees it.
#[derive(Debug)]
pub struct Session {
    device: [u8; 32],
    open: Option<ShelfRef>,
    watching: bool,
}

impl Session {
    /// A stream from `device` (as its connection proved).
    pub fn new(device: [u8; 32]) -> Self {
        Self {
            device,
            open: None,
            watching: false,
        }
    }

    /// The shelf it opened, once it did.
    pub fn shelf(&self) -> Option<ShelfRef> {
        self.open
    }

    /// Whether it asked to be told what arrives.
    pub fn watching(&self) -> bool {
        self.watching
    }

    /// The device.
    pub fn device(&self) -> [u8; 32] {
        self.device
    }
}

/// What a request led to: the answer, and an item others watching the
/// shelf should be sent.
#[derive(Debug)]
pub struct Handled {
    /// The answer.
    pub reply: StewardReply,
    /// Kept just now, for the shelf's watchers other than its device.
    pub arrived: Option<(ShelfRef, [u8; 32], ShelfEntry)>,
}

impl Handled {
    fn reply(reply: StewardReply) -> Self {
        Self {
            reply,
            arrived: None,
        }
    }

    fn refused(reason: impl Into<String>) -> Self {
        Self::reply(StewardReply::Refused {
            reason: reason.into(),
        })
    }
}

/// What `roundtable steward status` shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeeperStatus {
    /// The steward's id (hex).
    pub id: String,
    /// Each circle kept.
    pub lockers: Vec<LockerStatus>,
    /// Bytes kept in all.
    pub bytes: u64,
}

/// One circle kept, in [`KeeperStatus`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockerStatus {
    /// The locker (hex; the steward never learns the circle).
    pub locker: String,
    /// Its shelves holding anything (one per circle key it was used with).
    pub shelves: usize,
    /// Sealed items kept.
    pub items: usize,
    /// Bytes kept.
    pub bytes: u64,
    /// Devices seen, with when (ms since 1970), newest first.
    pub devices: Vec<(String, i64)>,
}

/// A steward's decisions over its storage.
pub struct Keeper<B> {
    blobs: B,
    id: [u8; 32],
    limits: Limits,
    index: Mutex<Index>,
}

impl<B> std::fmt::Debug for Keeper<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keeper")
            .field("id", &hex(&self.id[..6]))
            .finish_non_exhaustive()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn item_key(shelf: &ShelfRef, seq: u64, meta: &Meta) -> String {
    format!(
        "lockers/{}/{}/{seq:016x}-{}-{}",
        shelf.0.to_hex(),
        hex(&shelf.1),
        meta.kind.as_str(),
        hex(&meta.by)
    )
}

/// Reads an item's key: (locker, shelf, seq, kind, by).
fn parse_item_key(key: &str) -> Option<(ShelfRef, u64, ShelfKind, [u8; 32])> {
    let mut parts = key.split('/');
    if parts.next()? != "lockers" {
        return None;
    }
    let locker = LockerId::from_hex(parts.next()?)?;
    let shelf = unhex32(parts.next()?)?;
    let name = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let mut fields = name.split('-');
    let seq = u64::from_str_radix(fields.next()?, 16).ok()?;
    let kind = ShelfKind::from_word(fields.next()?)?;
    let by = unhex32(fields.next()?)?;
    fields
        .next()
        .is_none()
        .then_some(((locker, shelf), seq, kind, by))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the index leaves it as consistent as any
    // single step does; keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<B: Blobs> Keeper<B> {
    /// The steward's id.
    pub fn id(&self) -> [u8; 32] {
        self.id
    }

    /// Answers one request of a session.
    pub fn handle(
        &self,
        session: &mut Session,
        request: StewardRequest,
        now_ms: i64,
    ) -> Result<Handled, BlobError> {
        match request {
            StewardRequest::Open {
                locker,
                shelf,
                proof,
            } => self.open_shelf(session, LockerId(locker), shelf, &proof, now_ms),
            StewardRequest::Fetch { after, max_bytes } => {
                let Some(shelf) = session.open else {
                    return Ok(Handled::refused("open a shelf first"));
                };
                self.fetch(shelf, session.device, after, max_bytes)
            }
            StewardRequest::Put {
                kind,
                bytes,
                supersede_below,
            } => {
                let Some(shelf) = session.open else {
                    return Ok(Handled::refused("open a shelf first"));
                };
                let Some(kind) = ShelfKind::from_u8(kind) else {
                    return Ok(Handled::refused("not a kind of item this steward keeps"));
                };
                self.catch_up(shelf, false)?;
                self.put(shelf, session.device, kind, bytes, supersede_below)
            }
            StewardRequest::Leave {
                slot,
                bytes,
                expires_at,
            } => {
                let Some((locker, _)) = session.open else {
                    return Ok(Handled::refused("open a shelf first"));
                };
                self.leave(locker, slot, bytes, expires_at, now_ms)
            }
            StewardRequest::Take { slot } => self.take(slot, now_ms),
            StewardRequest::Forget { token } => {
                let slot = roundtable_core::steward::slot_of_token(&token);
                self.find_welcome(&slot)?;
                let gone = lock(&self.index).welcomes.remove(&slot);
                if let Some(w) = gone {
                    self.blobs.delete(&welcome_key(&slot, &w))?;
                    let mut index = lock(&self.index);
                    index.total_bytes = index.total_bytes.saturating_sub(w.size);
                }
                Ok(Handled::reply(StewardReply::Left))
            }
            StewardRequest::Watch => {
                let Some(shelf) = session.open else {
                    return Ok(Handled::refused("open a shelf first"));
                };
                session.watching = true;
                self.catch_up(shelf, false)?;
                let s = self.shelf(&shelf);
                let s = lock(&s);
                Ok(Handled::reply(StewardReply::Opened {
                    last: s.last(),
                    bytes: s.bytes,
                }))
            }
        }
    }

    /// About how many bytes of items a fetch of `session` would hand out
    /// (from the index, before reading any; where storage is shared, the
    /// index first catches up with what other processes put).
    pub fn fetch_size(&self, session: &Session, after: u64, max_bytes: u32) -> u64 {
        let Some(shelf) = session.open else {
            return 0;
        };
        if let Err(e) = self.catch_up(shelf, false) {
            debug!("could not catch up with shared storage: {e}");
        }
        let max = u64::from(max_bytes.min(MAX_FETCH_BYTES));
        let s = self.shelf(&shelf);
        let s = lock(&s);
        let (mut taken, mut any) = (0u64, false);
        for m in s.items.range(after.saturating_add(1)..).map(|(_, m)| m) {
            if m.by == session.device && m.kind != ShelfKind::Keys {
                continue;
            }
            if any && taken + m.size > max {
                break;
            }
            taken += m.size;
            any = true;
        }
        taken
    }

    /// A shelf's index (an empty one where it holds nothing).
    fn shelf(&self, shelf: &ShelfRef) -> Arc<Mutex<Shelf>> {
        lock(&self.index)
            .shelves
            .get(shelf)
            .cloned()
            .unwrap_or_default()
    }

    fn open_shelf(
        &self,
        session: &mut Session,
        locker: LockerId,
        shelf: [u8; 32],
        proof: &[u8],
        now_ms: i64,
    ) -> Result<Handled, BlobError> {
        if session.open.is_some() {
            return Ok(Handled::refused("this stream has a shelf open already"));
        }
        if !verify_proof(&self.id, &locker, &shelf, &session.device, proof) {
            return Ok(Handled::refused(
                "that proof does not open this shelf (is this device still in the circle?)",
            ));
        }
        let (admitted, seen_write) = {
            let mut index = lock(&self.index);
            let lockers = index.lockers.len();
            let locker_entry = match index.lockers.get_mut(&locker) {
                Some(l) => l,
                None if lockers >= self.limits.max_lockers => {
                    return Ok(Handled::refused(
                        "this steward keeps as many circles as it can; ask its operator for room",
                    ));
                }
                None => index.lockers.entry(locker).or_default(),
            };
            let admitted = match locker_entry.admit(shelf, self.limits.max_shelves, now_ms) {
                Err(why) => return Ok(Handled::refused(why)),
                Ok(a) => a,
            };
            locker_entry.seen.insert(session.device, now_ms);
            let stale = locker_entry
                .seen_written
                .get(&session.device)
                .is_none_or(|t| now_ms - t > 10 * 60 * 1000);
            if stale {
                while locker_entry.seen.len() > self.limits.max_seen {
                    let oldest = locker_entry
                        .seen
                        .iter()
                        .min_by_key(|(d, t)| (**t, **d))
                        .map(|(d, _)| *d);
                    if let Some(d) = oldest {
                        locker_entry.seen.remove(&d);
                    }
                }
                locker_entry.seen_written = locker_entry.seen.clone();
                let seen = postcard::to_stdvec(
                    &locker_entry
                        .seen
                        .iter()
                        .map(|(d, t)| (*d, *t))
                        .collect::<Vec<_>>(),
                );
                (admitted, Some(seen))
            } else {
                (admitted, None)
            }
        };
        if let Some(Ok(bytes)) = seen_write {
            self.blobs.put(&seen_key(&locker), &bytes)?;
        }
        let (write_order, retire) = match admitted {
            Admit::Held { write } => (write, None),
            Admit::New(retired) => (true, retired),
        };
        if write_order {
            self.write_order(&locker, now_ms)?;
        }
        if let Some(retired) = retire {
            self.empty_retired((locker, retired))?;
        }
        session.open = Some((locker, shelf));
        let s = lock(&self.index)
            .shelves
            .entry((locker, shelf))
            .or_default()
            .clone();
        self.catch_up((locker, shelf), true)?;
        let s = lock(&s);
        Ok(Handled::reply(StewardReply::Opened {
            last: s.last(),
            bytes: s.bytes,
        }))
    }

    fn fetch(
        &self,
        shelf: ShelfRef,
        device: [u8; 32],
        after: u64,
        max_bytes: u32,
    ) -> Result<Handled, BlobError> {
        let wanted: Vec<(u64, Meta)> = {
            let s = self.shelf(&shelf);
            let s = lock(&s);
            s.items
                .range(after.saturating_add(1)..)
                .map(|(k, m)| (*k, *m))
                .collect()
        };
        let max_bytes = max_bytes.min(MAX_FETCH_BYTES);
        let mut items = Vec::new();
        let mut upto = after;
        let mut taken = 0u64;
        let mut more = false;
        for (seq, meta) in wanted {
            if meta.by == device && meta.kind != ShelfKind::Keys {
                upto = seq;
                continue;
            }
            if !items.is_empty() && taken + meta.size > u64::from(max_bytes) {
                more = true;
                break;
            }
            // Dropped meanwhile by a snapshot: skip it.
            let Some(bytes) = self.blobs.get(&item_key(&shelf, seq, &meta))? else {
                upto = seq;
                continue;
            };
            taken += bytes.len() as u64;
            items.push(ShelfEntry {
                seq,
                kind: meta.kind as u8,
                bytes,
            });
            upto = seq;
        }
        Ok(Handled::reply(StewardReply::Items { items, upto, more }))
    }

    fn put(
        &self,
        shelf: ShelfRef,
        device: [u8; 32],
        kind: ShelfKind,
        bytes: Vec<u8>,
        supersede_below: Option<u64>,
    ) -> Result<Handled, BlobError> {
        if bytes.len() > self.limits.max_item {
            return Ok(Handled::refused(format!(
                "an item of {} bytes is larger than this steward keeps ({} at most)",
                bytes.len(),
                self.limits.max_item
            )));
        }
        if bytes.is_empty() {
            return Ok(Handled::refused("an empty item: nothing sealed is empty"));
        }
        let size = bytes.len() as u64;
        let overhead = self.limits.item_overhead;
        let s = self.shelf(&shelf);
        // One put at a time per shelf: numbers are handed out in order.
        let mut s = lock(&s);
        if !self.holds(&shelf) {
            return Ok(Handled::refused(shelves::RETIRED));
        }
        // What the shelf would hold with this item, once what it
        // supersedes is dropped: a fold makes room, a put superseding
        // nothing does not.
        let planned = s.dropped_by(
            kind,
            s.last() + 1,
            supersede_below,
            self.limits.max_key_items,
        );
        let freed_items = planned.len();
        let freed_bytes: u64 = planned.iter().map(|(_, m)| m.size).sum();
        let freed_charged = freed_bytes + freed_items as u64 * overhead;
        let cost = size + overhead;
        {
            let index = lock(&self.index);
            let total_after = (index.charged(overhead) + cost).saturating_sub(freed_charged);
            let items_after = (index.total_items + 1).saturating_sub(freed_items);
            if total_after > self.limits.max_total_bytes
                || items_after > self.limits.max_total_items
            {
                return Ok(Handled::refused(
                    "this steward is full; ask its operator for room",
                ));
            }
        }
        if (s.charged(overhead) + cost).saturating_sub(freed_charged) > self.limits.max_shelf_bytes
        {
            return Ok(Handled::refused(
                "this circle's room at the steward is full until a member's device folds it into a snapshot",
            ));
        }
        if (s.items.len() + 1).saturating_sub(freed_items) > self.limits.max_shelf_items {
            return Ok(Handled::refused(format!(
                "this circle's shelf at the steward holds {} items, as many as it may, until a member's device folds it into a snapshot",
                s.items.len()
            )));
        }
        let meta = Meta {
            kind,
            size,
            by: device,
        };
        let mut seq = s.last() + 1;
        // Another process over the same storage may have taken a number.
        let mut tries = 0;
        while !self.blobs.create(&item_key(&shelf, seq, &meta), &bytes)? {
            tries += 1;
            if tries > 16 {
                return Err(BlobError::Io(
                    "could not find a free number for an item".into(),
                ));
            }
            seq += 1;
        }
        let dropped = s.dropped_by(kind, seq, supersede_below, self.limits.max_key_items);
        s.items.insert(seq, meta);
        s.bytes += size;
        let mut freed = 0u64;
        for (k, m) in &dropped {
            self.blobs.delete(&item_key(&shelf, *k, m))?;
            s.items.remove(k);
            s.bytes -= m.size;
            freed += m.size;
        }
        let shelf_bytes = s.bytes;
        drop(s);
        {
            let mut index = lock(&self.index);
            index.total_bytes = (index.total_bytes + size).saturating_sub(freed);
            index.total_items = (index.total_items + 1).saturating_sub(dropped.len());
        }
        if !dropped.is_empty() {
            debug!(items = dropped.len(), freed, "superseded items dropped");
        }
        Ok(Handled {
            reply: StewardReply::Stored {
                seq,
                bytes: shelf_bytes,
            },
            arrived: Some((
                shelf,
                device,
                ShelfEntry {
                    seq,
                    kind: kind as u8,
                    bytes,
                },
            )),
        })
    }

    /// What is kept, for `steward status`.
    pub fn status(&self) -> KeeperStatus {
        let index = lock(&self.index);
        let mut lockers: Vec<LockerStatus> = index
            .lockers
            .iter()
            .map(|(id, l)| {
                let (mut shelves, mut items, mut bytes) = (0, 0, 0);
                for held in &l.shelves {
                    if let Some(s) = index.shelves.get(&(*id, held.shelf)) {
                        let s = lock(s);
                        shelves += usize::from(!s.items.is_empty());
                        items += s.items.len();
                        bytes += s.bytes;
                    }
                }
                let mut devices: Vec<(String, i64)> =
                    l.seen.iter().map(|(d, t)| (hex(d), *t)).collect();
                devices.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                LockerStatus {
                    locker: id.to_hex(),
                    shelves,
                    items,
                    bytes,
                    devices,
                }
            })
            .collect();
        lockers.sort_by(|a, b| a.locker.cmp(&b.locker));
        KeeperStatus {
            id: hex(&self.id),
            lockers,
            bytes: index.total_bytes,
        }
    }
}

fn seen_key(locker: &LockerId) -> String {
    format!("seen/{}", locker.to_hex())
}

#[cfg(test)]
mod tests;
