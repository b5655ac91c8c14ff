//! Welcomes that wait: a member's device leaves one sealed to a ticket's
//! secret, anyone holding the ticket takes it, its token forgets it, and
//! it goes when its invite expires.

use roundtable_core::steward::LockerId;
use roundtable_core::wire::StewardReply;

use super::{Handled, Keeper, Waiting, hex, lock, unhex32};
use crate::blobs::{BlobError, Blobs};

/// Welcomes one circle may leave waiting at once.
pub(super) const MAX_WELCOMES: usize = 64;

/// Where the keys of the welcomes at `slot` start (every one sorts
/// after it).
pub(super) fn welcome_key_prefix(slot: &[u8; 32]) -> String {
    format!("welcomes/{}", hex(slot))
}

pub(super) fn welcome_key(slot: &[u8; 32], w: &Waiting) -> String {
    format!(
        "welcomes/{}-{:016x}-{}",
        hex(slot),
        w.expires_at.max(0),
        w.locker.to_hex()
    )
}

pub(super) fn parse_welcome_key(key: &str) -> Option<([u8; 32], i64, LockerId)> {
    let name = key.strip_prefix("welcomes/")?;
    let mut f = name.split('-');
    let slot = unhex32(f.next()?)?;
    let expires = i64::from_str_radix(f.next()?, 16).ok()?;
    let locker = LockerId::from_hex(f.next()?)?;
    f.next().is_none().then_some((slot, expires, locker))
}

impl<B: Blobs> Keeper<B> {
    pub(super) fn leave(
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
        if bytes.is_empty() {
            return Ok(Handled::refused(
                "an empty welcome: nothing sealed is empty",
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
            let cost = w.size + self.limits.item_overhead;
            if index.charged(self.limits.item_overhead) + cost > self.limits.max_total_bytes {
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

    /// The size of the welcome waiting at `slot` (0 if none): what a take
    /// of it reads.
    /// (Where storage is shared, a welcome another process left is
    /// looked for first.)
    pub fn welcome_size(&self, slot: &[u8; 32]) -> u64 {
        match self.find_welcome(slot) {
            Ok(w) => w.map_or(0, |w| w.size),
            Err(e) => {
                tracing::debug!("could not look for a welcome: {e}");
                0
            }
        }
    }

    pub(super) fn take(&self, slot: [u8; 32], now_ms: i64) -> Result<Handled, BlobError> {
        self.sweep(now_ms)?;
        let found = self.find_welcome(&slot)?;
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
    pub(super) fn sweep(&self, now_ms: i64) -> Result<(), BlobError> {
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
}
