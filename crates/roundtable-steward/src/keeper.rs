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
//! shelf is indexed by listing it), and `seen/<locker>` for the devices
//! seen there lately.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use roundtable_core::steward::{LockerId, ShelfKind, verify_proof};
use roundtable_core::wire::{ShelfEntry, StewardReply, StewardRequest};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::blobs::{BlobError, Blobs};

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
        }
    }
}

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
}

/// A shelf, by locker and name.
type ShelfRef = (LockerId, [u8; 32]);

#[derive(Debug, Default)]
struct Locker {
    shelves: BTreeSet<[u8; 32]>,
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
}

/// A welcome waiting for someone holding a ticket.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    locker: LockerId,
    expires_at: i64,
    size: u64,
}

fn welcome_key(slot: &[u8; 32], w: &Waiting) -> String {
    format!(
        "welcomes/{}-{:016x}-{}",
        hex(slot),
        w.expires_at.max(0),
        w.locker.to_hex()
    )
}

fn parse_welcome_key(key: &str) -> Option<([u8; 32], i64, LockerId)> {
    let name = key.strip_prefix("welcomes/")?;
    let mut f = name.split('-');
    let slot = unhex32(f.next()?)?;
    let expires = i64::from_str_radix(f.next()?, 16).ok()?;
    let locker = LockerId::from_hex(f.next()?)?;
    f.next().is_none().then_some((slot, expires, locker))
}

/// Welcomes one circle may leave waiting at once.
const MAX_WELCOMES: usize = 64;

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
        let mut after: Option<String> = None;
        loop {
            let page = keeper.blobs.list("lockers", after.as_deref(), LIST_PAGE)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            for (key, size) in &page {
                let Some((shelf, seq, kind, by)) = parse_item_key(key) else {
                    debug!(key, "not an item of a shelf; left alone");
                    continue;
                };
                index
                    .lockers
                    .entry(shelf.0)
                    .or_default()
                    .shelves
                    .insert(shelf.1);
                let s = index.shelves.entry(shelf).or_default();
                let mut s = lock(s);
                s.items.insert(
                    seq,
                    Meta {
                        kind,
                        size: *size,
                        by,
                    },
                );
                s.bytes += size;
                index.total_bytes += size;
            }
            if page.len() < LIST_PAGE {
                break;
            }
        }
        let mut after: Option<String> = None;
        loop {
            let page = keeper.blobs.list("seen", after.as_deref(), LIST_PAGE)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            for (key, _) in &page {
                if let Some(locker) = key.strip_prefix("seen/").and_then(LockerId::from_hex) {
                    index.lockers.entry(locker).or_default();
                }
            }
            if page.len() < LIST_PAGE {
                break;
            }
        }
        let mut after: Option<String> = None;
        loop {
            let page = keeper.blobs.list("welcomes", after.as_deref(), LIST_PAGE)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            for (key, size) in &page {
                if let Some((slot, expires_at, locker)) = parse_welcome_key(key) {
                    index.welcomes.insert(
                        slot,
                        Waiting {
                            locker,
                            expires_at,
                            size: *size,
                        },
                    );
                    index.total_bytes += size;
                }
            }
            if page.len() < LIST_PAGE {
                break;
            }
        }
        for (locker, l) in index.lockers.iter_mut() {
            if let Some(bytes) = keeper.blobs.get(&seen_key(locker))?
                && let Ok(seen) = postcard::from_bytes::<Vec<([u8; 32], i64)>>(&bytes)
            {
                l.seen_written = seen.iter().copied().collect();
                l.seen = l.seen_written.clone();
            }
        }
        info!(
            lockers = index.lockers.len(),
            bytes = index.total_bytes,
            "steward's keeping read"
        );
        *lock(&keeper.index) = index;
        Ok(keeper)
    }

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
                let s = self.shelf(&shelf);
                let s = lock(&s);
                Ok(Handled::reply(StewardReply::Opened {
                    last: s.last(),
                    bytes: s.bytes,
                }))
            }
        }
    }

    fn shelf(&self, shelf: &ShelfRef) -> Arc<Mutex<Shelf>> {
        lock(&self.index).shelves.entry(*shelf).or_default().clone()
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
        let seen_write = {
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
            if !locker_entry.shelves.contains(&shelf) {
                if locker_entry.shelves.len() >= self.limits.max_shelves {
                    return Ok(Handled::refused(
                        "this circle has used too many keys at this steward; add the steward again",
                    ));
                }
                locker_entry.shelves.insert(shelf);
            }
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
                Some(postcard::to_stdvec(
                    &locker_entry
                        .seen
                        .iter()
                        .map(|(d, t)| (*d, *t))
                        .collect::<Vec<_>>(),
                ))
            } else {
                None
            }
        };
        if let Some(Ok(bytes)) = seen_write {
            self.blobs.put(&seen_key(&locker), &bytes)?;
        }
        session.open = Some((locker, shelf));
        let s = self.shelf(&(locker, shelf));
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
        let size = bytes.len() as u64;
        let s = self.shelf(&shelf);
        // One put at a time per shelf: numbers are handed out in order.
        let mut s = lock(&s);
        {
            let index = lock(&self.index);
            if index.total_bytes + size > self.limits.max_total_bytes {
                return Ok(Handled::refused(
                    "this steward is full; ask its operator for room",
                ));
            }
        }
        if s.bytes + size > self.limits.max_shelf_bytes && supersede_below.is_none() {
            return Ok(Handled::refused(
                "this circle's room at the steward is full until a member's device folds it into a snapshot",
            ));
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
        s.items.insert(seq, meta);
        s.bytes += size;
        let mut freed = 0u64;
        let mut dropped = Vec::new();
        if let Some(below) = supersede_below {
            dropped.extend(
                s.items
                    .range(..below.min(seq))
                    .filter(|(_, m)| m.kind != ShelfKind::Keys)
                    .map(|(k, m)| (*k, *m)),
            );
        }
        if kind == ShelfKind::Keys {
            let keys: Vec<(u64, Meta)> = s
                .items
                .iter()
                .filter(|(_, m)| m.kind == ShelfKind::Keys)
                .map(|(k, m)| (*k, *m))
                .collect();
            let excess = keys.len().saturating_sub(self.limits.max_key_items);
            dropped.extend(keys.into_iter().take(excess));
        }
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

    fn leave(
        &self,
        locker: LockerId,
        slot: [u8; 32],
        bytes: Vec<u8>,
        expires_at: i64,
        now_ms: i64,
    ) -> Result<Handled, BlobError> {
        self.sweep(now_ms)?;
        if bytes.len() > self.limits.max_item {
            return Ok(Handled::refused(
                "that welcome is larger than this steward keeps",
            ));
        }
        if expires_at <= now_ms {
            return Ok(Handled::refused("that invite has expired already"));
        }
        let w = Waiting {
            locker,
            expires_at,
            size: bytes.len() as u64,
        };
        {
            let index = lock(&self.index);
            if index.welcomes.contains_key(&slot) {
                return Ok(Handled::reply(StewardReply::Left));
            }
            let here = index
                .welcomes
                .values()
                .filter(|x| x.locker == locker)
                .count();
            if here >= MAX_WELCOMES {
                return Ok(Handled::refused(
                    "this circle has as many invites waiting at this steward as it may; revoke some or wait for them to expire",
                ));
            }
            if index.total_bytes + w.size > self.limits.max_total_bytes {
                return Ok(Handled::refused(
                    "this steward is full; ask its operator for room",
                ));
            }
        }
        if self.blobs.create(&welcome_key(&slot, &w), &bytes)? {
            let mut index = lock(&self.index);
            index.welcomes.insert(slot, w);
            index.total_bytes += w.size;
        }
        Ok(Handled::reply(StewardReply::Left))
    }

    fn take(&self, slot: [u8; 32], now_ms: i64) -> Result<Handled, BlobError> {
        self.sweep(now_ms)?;
        let found = lock(&self.index).welcomes.get(&slot).copied();
        let bytes = match found {
            Some(w) => self.blobs.get(&welcome_key(&slot, &w))?,
            None => None,
        };
        Ok(match bytes {
            Some(bytes) => Handled::reply(StewardReply::Welcome { bytes }),
            None => Handled::refused(
                "no invite waits at the circle's steward for this ticket: it was used, it expired, or it never reached the steward; ask for a new one",
            ),
        })
    }

    /// Drops the welcomes whose invites have expired.
    fn sweep(&self, now_ms: i64) -> Result<(), BlobError> {
        let expired: Vec<([u8; 32], Waiting)> = lock(&self.index)
            .welcomes
            .iter()
            .filter(|(_, w)| w.expires_at <= now_ms)
            .map(|(s, w)| (*s, *w))
            .collect();
        for (slot, w) in expired {
            self.blobs.delete(&welcome_key(&slot, &w))?;
            let mut index = lock(&self.index);
            index.welcomes.remove(&slot);
            index.total_bytes = index.total_bytes.saturating_sub(w.size);
        }
        Ok(())
    }

    /// What is kept, for `steward status`.
    pub fn status(&self) -> KeeperStatus {
        let index = lock(&self.index);
        let mut lockers: Vec<LockerStatus> = index
            .lockers
            .iter()
            .map(|(id, l)| {
                let (mut shelves, mut items, mut bytes) = (0, 0, 0);
                for shelf in &l.shelves {
                    if let Some(s) = index.shelves.get(&(*id, *shelf)) {
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
mod tests {
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

    impl Blobs for Arc<Mem> {
        fn create(&self, key: &str, bytes: &[u8]) -> Result<bool, BlobError> {
            self.as_ref().create(key, bytes)
        }
        fn put(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError> {
            self.as_ref().put(key, bytes)
        }
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
            self.as_ref().get(key)
        }
        fn list(
            &self,
            prefix: &str,
            after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<(String, u64)>, BlobError> {
            self.as_ref().list(prefix, after, limit)
        }
        fn delete(&self, key: &str) -> Result<(), BlobError> {
            self.as_ref().delete(key)
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
        let limits = Limits {
            max_item: 100,
            max_shelf_bytes: 250,
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
}
