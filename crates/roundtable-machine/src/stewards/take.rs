//! What a steward hands out: opened, applied as a peer's changes, keys
//! boxed to this device taken, and the shelf's frontier moved on.

use super::*;

impl Machine {
    /// Opens and applies what a steward handed out, each as a peer's
    /// changes would be (proven, or refused and counted); keys boxed to
    /// this device are taken as a sync's would be.
    pub(super) fn take_entries(
        &mut self,
        session: StewardSession,
        entries: Vec<ShelfEntry>,
        upto: Option<u64>,
        now: Now,
        rng: &mut impl RngCore,
    ) {
        let circle = session.circle;
        let mut changed = false;
        let Some(locker) = self
            .usable_stewards(circle)
            .into_iter()
            .find(|r| r.id == session.steward)
            .map(|r| r.locker)
        else {
            return;
        };
        for entry in entries {
            let Some(open) = self.link_mut(session).and_then(|l| l.open.as_ref()) else {
                return;
            };
            let item = ShelfKind::from_u8(entry.kind)
                .ok_or(st::ShelfError::Malformed)
                .and_then(|kind| open.key.open(&locker, kind, &entry.bytes));
            let seq = entry.seq;
            match item {
                Ok(item) => {
                    self.trusted_again(session, seq);
                    if self.take_item(session, item, now, rng) {
                        // Who is in, and the epoch, as of this item: a
                        // key left further along is for the epoch it
                        // brings.
                        self.refresh_admitted(now, rng);
                        changed = true;
                    }
                }
                Err(e) => {
                    let n = count(&mut self.dropped, format!("steward item {e}"));
                    debug!(%circle, seq, count = n, "dropped an item a steward handed out: {e}");
                    self.doubt(session, seq);
                }
            }
            if let Some(open) = self.link_mut(session).and_then(|l| l.open.as_mut()) {
                open.read_to = open.read_to.max(seq);
            }
            if let Some(mark) = self.mark_mut(session) {
                mark.highest = mark.highest.max(seq);
                if upto.is_some() || seq == mark.after + 1 {
                    mark.after = mark.after.max(seq);
                }
            }
        }
        if let Some(upto) = upto {
            if let Some(open) = self.link_mut(session).and_then(|l| l.open.as_mut()) {
                open.read_to = open.read_to.max(upto);
            }
            if let Some(mark) = self.mark_mut(session) {
                mark.after = mark.after.max(upto);
                mark.highest = mark.highest.max(upto);
            }
        }
        // The kept cursor stays before an item in doubt, so the next visit
        // asks for it again.
        let hold = self
            .link_mut(session)
            .and_then(|l| l.open.as_ref())
            .and_then(|o| o.hold);
        if let Some(hold) = hold
            && let Some(mark) = self.mark_mut(session)
        {
            mark.after = mark.after.min(hold.saturating_sub(1));
        }
        if changed {
            self.keep_book(circle);
            self.changed(circle, now);
        }
    }

    /// Item `seq` did not open: the steward altered it, or someone put
    /// bytes there that never open. The person is told, and the cursor
    /// stays before it for [`DOUBTS`] visits (the first such item of a
    /// session only); then it is passed.
    fn doubt(&mut self, session: StewardSession, seq: u64) {
        let holding = self
            .link_mut(session)
            .and_then(|l| l.open.as_ref())
            .is_some_and(|o| o.hold.is_some());
        let Some(check) = self.check_mut(session) else {
            return;
        };
        let tries = match check.doubt {
            Some((s, n)) if s == seq => n.saturating_add(1),
            // Already holding before another item this session.
            _ if holding => return,
            _ => 1,
        };
        let (hold, stale) = if tries > DOUBTS {
            check.doubt = None;
            (
                None,
                format!(
                    "it handed over an item that never opened (number {seq}); what it held there comes by other paths"
                ),
            )
        } else {
            check.doubt = Some((seq, tries));
            (
                Some(seq),
                format!(
                    "it handed over an item that does not open (number {seq}); it is asked for again on the next visit"
                ),
            )
        };
        warn!(circle = %session.circle, "a steward: {stale}");
        let link = self.link_mut(session).expect("linked");
        link.stale = Some(stale);
        link.doubted = true;
        if let Some(open) = link.open.as_mut()
            && open.hold.is_none()
        {
            open.hold = hold;
        }
    }

    /// Item `seq` opened: if it was the one in doubt, the doubt is over.
    fn trusted_again(&mut self, session: StewardSession, seq: u64) {
        let Some(check) = self.check_mut(session) else {
            return;
        };
        if check.doubt.is_none_or(|(s, _)| s != seq) {
            return;
        }
        check.doubt = None;
        if let Some(link) = self.link_mut(session)
            && std::mem::take(&mut link.doubted)
        {
            link.stale = None;
        }
    }

    /// Applies one opened item; whether the circle changed.
    fn take_item(
        &mut self,
        session: StewardSession,
        item: ShelfItem,
        now: Now,
        rng: &mut impl RngCore,
    ) -> bool {
        let circle = session.circle;
        let snapshot = matches!(item, ShelfItem::Snapshot { .. });
        let served = self.circles.get_mut(&circle).expect("served");
        match item {
            ShelfItem::Changes {
                changes: bytes,
                heads,
            }
            | ShelfItem::Snapshot { doc: bytes, heads } => {
                let before = served.store.circle().heads();
                served.book.learn(circle, &heads);
                let Served { store, book, .. } = served;
                let applied = store
                    .edit(|c| -> Result<_, StoreError> { Ok(c.apply_verified(&bytes, book)?) });
                match applied {
                    Ok(applied) => {
                        let changed = store.circle().heads() != before;
                        let from = heads
                            .first()
                            .map(|h| DeviceId::from_bytes(h.device))
                            .unwrap_or(self.me.device.id());
                        self.note_refused(circle, from, &applied);
                        if snapshot {
                            self.covered_by_snapshot(session, &bytes);
                        } else {
                            self.cover(session, &bytes, &before);
                        }
                        self.settle_forks(circle, &applied, &before, now, rng);
                        changed
                    }
                    Err(e) => {
                        let n = count(&mut self.dropped, "steward item does not apply");
                        debug!(%circle, count = n, "changes from a steward did not apply: {e}");
                        false
                    }
                }
            }
            ShelfItem::Keys { from, boxes } => {
                let admitted = &served.membership.admitted;
                if !admitted.contains(&DeviceId::from_bytes(from)) {
                    return false;
                }
                let mine = *self.me.device.id().as_bytes();
                let Some(offer) = boxes
                    .iter()
                    .filter(|b| b.to == mine)
                    .find_map(|b| st::open_key_box(b, &from, &self.me.device))
                else {
                    return false;
                };
                if !admitted.contains(&DeviceId::from_bytes(offer.by))
                    || !served.keys.accept(circle, &offer)
                {
                    return false;
                }
                let keys = served.keys.clone();
                if let Err(e) = self.home.save_circle_keys(self.lock(), circle, &keys) {
                    warn!(%circle, "could not keep the circle key: {e}");
                }
                info!(%circle, epoch = keys.epoch(), "took the circle's key left at a steward");
                self.follow(circle, now);
                false
            }
        }
    }

    /// A snapshot taken from a steward supersedes what lay below it on
    /// the shelf, so what the shelf surely holds is that snapshot (and
    /// what comes after it): the mark of the shelf is set to its heads,
    /// and this device puts past them what it holds and the snapshot
    /// lacks. So a change a fold dropped without holding it (its folder
    /// was handed something else in its place) is put there again by
    /// whoever holds it.
    fn covered_by_snapshot(&mut self, session: StewardSession, bytes: &[u8]) {
        let Some((_, heads)) = st::covered_by(bytes) else {
            return;
        };
        let Some(served) = self.circles.get(&session.circle) else {
            return;
        };
        let circle_ref = served.store.circle();
        let mut frontier: Vec<[u8; 32]> = heads
            .iter()
            .filter(|h| circle_ref.has_change(h))
            .map(|h| h.0)
            .collect();
        frontier.sort();
        if let Some(mark) = self.mark_mut(session) {
            mark.frontier = frontier;
        }
    }

    /// What was just taken from a steward is on its shelf: the mark of
    /// that shelf moves on with it, so it is not put back there (other
    /// stewards' shelves still get it: this device relays between them).
    fn cover(&mut self, session: StewardSession, bytes: &[u8], before: &[ChangeHash]) {
        let Some((_, heads)) = st::covered_by(bytes) else {
            return;
        };
        let Some(served) = self.circles.get_mut(&session.circle) else {
            return;
        };
        let now_heads: Vec<[u8; 32]> = served.store.circle().heads().iter().map(|h| h.0).collect();
        let before: Vec<[u8; 32]> = before.iter().map(|h| h.0).collect();
        let Some(shelf) = served
            .stewards
            .links
            .get(&session.steward)
            .and_then(|l| l.open.as_ref())
            .map(|o| o.shelf)
        else {
            return;
        };
        let circle_ref = served.store.circle();
        let Some(mark) = served
            .stewards
            .kept
            .marks
            .get_mut(&session.steward)
            .and_then(|m| m.get_mut(&shelf))
        else {
            return;
        };
        if sorted(&mark.frontier) == sorted(&before) {
            // Level before: level after.
            mark.frontier = now_heads;
        } else {
            mark.frontier.extend(heads.iter().map(|h| h.0));
            mark.frontier
                .retain(|h| circle_ref.has_change(&ChangeHash(*h)));
            mark.frontier.sort();
            mark.frontier.dedup();
            // Reaching everything this copy holds: say it as its heads.
            let reach: Vec<ChangeHash> = mark.frontier.iter().map(|h| ChangeHash(*h)).collect();
            if circle_ref.changes_since(&reach).is_empty() {
                mark.frontier = now_heads;
            }
        }
        served.stewards.dirty = true;
    }
}
