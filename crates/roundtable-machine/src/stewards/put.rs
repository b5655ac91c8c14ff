//! What a shelf lacks of this copy, put there: changes past its frontier,
//! a snapshot to fold it, the current key left on an earlier shelf.

use super::*;

impl Machine {
    /// Puts on the shelf what it lacks of this copy: a snapshot when the
    /// shelf knows nothing of it yet or has grown past twice the circle,
    /// else the changes past what it holds.
    pub(super) fn put_lacking(
        &mut self,
        session: StewardSession,
        rng: &mut impl RngCore,
    ) -> Vec<StewardRequest> {
        let circle = session.circle;
        let Some(locker) = self
            .usable_stewards(circle)
            .into_iter()
            .find(|r| r.id == session.steward)
            .map(|r| r.locker)
        else {
            return Vec::new();
        };
        let mark = self.mark_mut(session).cloned().unwrap_or_default();
        let floor = self.timing.steward_fold_floor;
        let served = self.circles.get_mut(&circle).expect("served");
        let link = served
            .stewards
            .links
            .get_mut(&session.steward)
            .expect("linked");
        let open = link.open.as_mut().expect("linked");
        if open.putting {
            open.put_again = true;
            return Vec::new();
        }
        let circle_ref = served.store.circle();
        let heads: Vec<[u8; 32]> = circle_ref.heads().iter().map(|h| h.0).collect();
        if heads.is_empty() {
            return Vec::new();
        }
        let frontier: Vec<ChangeHash> = mark.frontier.iter().map(|h| ChangeHash(*h)).collect();
        let size = served.store.snapshot_len().max(mark.snapshot);
        let grown = open.caught_up && open.shelf_bytes > (FOLD_FACTOR * size).max(floor);
        let (kind, item, supersede) = if frontier.is_empty() || grown {
            let mut proofs = served.book.all();
            proofs.extend(SignedHead::sign_all(circle_ref, &self.me.device));
            let item = ShelfItem::Snapshot {
                doc: circle_ref.save(),
                heads: proofs,
            };
            let below = open.caught_up.then_some(mark.after + 1);
            (ShelfKind::Snapshot, item, below)
        } else {
            let changes = circle_ref.changes_since(&frontier);
            if changes.is_empty() || sorted(&mark.frontier) == sorted(&heads) {
                // The shelf holds all of it: say so as this copy's heads.
                if let Some(mark) = self.mark_mut(session)
                    && mark.frontier != heads
                {
                    mark.frontier = heads;
                }
                return Vec::new();
            }
            let Some((devices, _)) = st::covered_by(&changes) else {
                return Vec::new();
            };
            let me = self.me.device.id();
            let mut proofs: Vec<SignedHead> = served
                .book
                .all()
                .into_iter()
                .filter(|h| {
                    let d = DeviceId::from_bytes(h.device);
                    d != me && devices.contains(&d)
                })
                .collect();
            if devices.contains(&me) {
                proofs.extend(SignedHead::sign_all(circle_ref, &self.me.device));
            }
            let item = ShelfItem::Changes {
                changes,
                heads: proofs,
            };
            (ShelfKind::Changes, item, None)
        };
        let bytes = open.key.seal(&locker, &item, rng);
        open.putting = true;
        open.expect.push_back(Expect::Stored { kind, heads });
        if kind == ShelfKind::Snapshot
            && let Some(mark) = self.mark_mut(session)
        {
            mark.snapshot = bytes.len() as u64;
        }
        vec![StewardRequest::Put {
            kind: kind as u8,
            bytes,
            supersede_below: supersede,
        }]
    }

    /// On a visited shelf: leaves the current key there, boxed to every
    /// device still in.
    pub(super) fn leave_keys(
        &mut self,
        session: StewardSession,
        rng: &mut impl RngCore,
    ) -> Vec<StewardRequest> {
        let circle = session.circle;
        let Some(locker) = self
            .usable_stewards(circle)
            .into_iter()
            .find(|r| r.id == session.steward)
            .map(|r| r.locker)
        else {
            return Vec::new();
        };
        let me = self.me.device.id();
        let served = self.circles.get_mut(&circle).expect("served");
        let Some(offer) = served.keys.offer() else {
            return Vec::new();
        };
        let boxes: Vec<st::KeyBox> = served
            .membership
            .admitted
            .iter()
            .filter(|d| **d != me)
            .filter_map(|d| st::box_key(&offer, &self.me.device, *d, rng))
            .collect();
        let item = ShelfItem::Keys {
            from: *me.as_bytes(),
            boxes,
        };
        let open = served
            .stewards
            .links
            .get_mut(&session.steward)
            .and_then(|l| l.open.as_mut())
            .expect("linked");
        let bytes = open.key.seal(&locker, &item, rng);
        open.putting = true;
        open.expect.push_back(Expect::Stored {
            kind: ShelfKind::Keys,
            heads: Vec::new(),
        });
        // Nothing is superseded: devices still on this shelf need what
        // lies there (the change that moved the epoch, first of all).
        vec![StewardRequest::Put {
            kind: ShelfKind::Keys as u8,
            bytes,
            supersede_below: None,
        }]
    }

    /// After a change here: the watched shelves get what they lack.
    pub(crate) fn push_to_stewards(&mut self, circle: CircleId, rng: &mut impl RngCore) {
        for (steward, requests) in self.push_if_watching(circle, rng) {
            let Some(token) = self
                .circles
                .get(&circle)
                .and_then(|s| s.stewards.links.get(&steward))
                .and_then(|l| l.open.as_ref())
                .map(|o| o.token)
            else {
                continue;
            };
            if !requests.is_empty() {
                self.outbox.push(Output::StewardSend {
                    session: StewardSession {
                        circle,
                        steward,
                        token,
                    },
                    requests,
                });
            }
        }
    }

    pub(super) fn push_if_watching(
        &mut self,
        circle: CircleId,
        rng: &mut impl RngCore,
    ) -> Vec<(EntityId, Vec<StewardRequest>)> {
        let Some(served) = self.circles.get(&circle) else {
            return Vec::new();
        };
        let watching: Vec<(EntityId, u64)> = served
            .stewards
            .links
            .iter()
            .filter_map(|(id, l)| {
                let o = l.open.as_ref()?;
                (o.watching && !o.visit).then_some((*id, o.token))
            })
            .collect();
        watching
            .into_iter()
            .map(|(steward, token)| {
                let session = StewardSession {
                    circle,
                    steward,
                    token,
                };
                (steward, self.put_lacking(session, rng))
            })
            .collect()
    }
}
