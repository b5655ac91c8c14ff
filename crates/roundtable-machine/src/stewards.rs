//! Stewards: the path through an always-on peer that keeps the circle's
//! changes sealed (see `roundtable_core::steward`).
//!
//! For each steward the circle records, this device keeps one session
//! open on the shelf of its current circle key: it opens it with the key's
//! proof, fetches what lies there after what it had, applies it as it
//! would a peer's changes (proven, or refused), puts there what the shelf
//! lacks of its own copy, folds the shelf into a snapshot once it has
//! grown past twice the circle's size, and then watches: others' items
//! arrive as they are put, and its own edits go up as they are made.
//!
//! When its key changes (an epoch moved, or the candidates settled on
//! another), the shelves of the keys it held before are visited once:
//! what lies there is fetched and applied, and the new key is left there
//! boxed to every device still in. That supersedes nothing: devices still
//! on that shelf need what lies there (the change that moved the epoch,
//! first of all). A device asleep through the change finds its box on the
//! shelf it knows, and moves on.
//!
//! A steward that answers with less than it had (its newest number lower
//! than one seen) is marked stale, and everything is put there again. One
//! that hands over an item that does not open is marked stale too, and the
//! cursor stays before that item for [`DOUBTS`] visits, so an item altered
//! for a while comes intact once the steward is honest. And every shelf is
//! read whole again after [`Timing::steward_reread`], so an item the
//! cursor moved past (replayed in its place, or withheld) comes again: a
//! steward that lies for a while delays, and loses nobody anything.

use std::collections::VecDeque;
use std::time::Duration;

use roundtable_core::steward::{self as st, ShelfItem, ShelfKey, ShelfKind};
use roundtable_core::wire::{ShelfEntry, StewardReply, StewardRequest};

use super::*;

mod kept;
mod put;
mod status;
mod take;
mod welcomes;

use kept::{Check, Kept, Mark};
pub use status::StewardStatus;
use welcomes::PendingWelcome;

/// How much a fetch asks for at once.
const FETCH_BYTES: u32 = 4 * 1024 * 1024;
/// A shelf is folded into a snapshot once it holds more than this many
/// times the circle's size (and at least [`Timing::steward_fold_floor`]).
const FOLD_FACTOR: u64 = 2;
/// The longest wait between tries at an unreachable steward.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The first wait after a failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// A watched stream quiet this long is asked something, so it stays up.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// Keys of earlier shelves kept to visit, at most.
const MAX_VISITS: usize = 16;
/// Visits on which the cursor stays before an item that does not open,
/// before it is passed (a member could have put bytes that never open).
const DOUBTS: u8 = 3;

/// One session with one steward about one circle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StewardSession {
    /// Which circle.
    pub circle: CircleId,
    /// Which steward (its record in the circle).
    pub steward: EntityId,
    /// Which session (a fresh one each time).
    pub token: u64,
}

/// A key as kept to visit its shelf later.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct KeptKey {
    epoch: u64,
    by: [u8; 32],
    key: [u8; 32],
}

impl KeptKey {
    fn of(k: &EpochKey) -> Self {
        Self {
            epoch: k.epoch,
            by: k.by,
            key: *k.secret(),
        }
    }

    fn shelf_key(&self, circle: CircleId) -> ShelfKey {
        ShelfKey::of(circle, &EpochKey::new(self.epoch, self.by, self.key))
    }
}

impl Drop for KeptKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

/// What a reply is expected next.
#[derive(Debug)]
enum Expect {
    Opened,
    Items,
    Stored {
        kind: ShelfKind,
        heads: Vec<[u8; 32]>,
    },
    Watching,
    /// A welcome left (or forgotten) at this steward.
    Left {
        slot: [u8; 32],
        forgot: bool,
    },
}

#[derive(Debug)]
struct Open {
    token: u64,
    shelf: [u8; 32],
    key: ShelfKey,
    /// A visit to an earlier key's shelf.
    visit: bool,
    expect: VecDeque<Expect>,
    watching: bool,
    /// A put is under way; another is due after it.
    putting: bool,
    put_again: bool,
    shelf_bytes: u64,
    /// All of the shelf was fetched.
    caught_up: bool,
    /// Where this session's fetching goes on from (the cursor kept may
    /// stay behind, before an item that did not open).
    read_to: u64,
    /// The number the kept cursor stays before during this session.
    hold: Option<u64>,
    /// When this device last asked something (a watched stream that says
    /// nothing for long is closed by the transport).
    asked: Instant,
}

#[derive(Debug, Default)]
struct Link {
    open: Option<Open>,
    next_try: Option<Instant>,
    backoff: Option<Duration>,
    error: Option<String>,
    stale: Option<String>,
    /// `stale` tells of an item that did not open.
    doubted: bool,
}

/// The stewards of one served circle, as this device deals with them.
#[derive(Default)]
pub(crate) struct Stewards {
    kept: Kept,
    dirty: bool,
    links: BTreeMap<EntityId, Link>,
}

impl Stewards {
    pub(crate) fn restore(bytes: Option<Vec<u8>>) -> Self {
        Self {
            kept: bytes.and_then(|b| Kept::read(&b)).unwrap_or_default(),
            dirty: false,
            links: BTreeMap::new(),
        }
    }
}

impl Machine {
    fn next_steward_token(&mut self) -> u64 {
        self.steward_tokens += 1;
        self.steward_tokens
    }

    /// The stewards a circle uses now whose records this build can use.
    fn usable_stewards(&self, circle: CircleId) -> Vec<st::StewardRecord> {
        self.circles
            .get(&circle)
            .filter(|s| !self.removed_here(&s.membership))
            .map(|s| {
                s.store
                    .circle()
                    .stewards()
                    .into_iter()
                    .filter(|r| r.removed_by.is_none())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// At each tick: notices a key change, closes sessions of stewards no
    /// longer used, and opens those that are due.
    pub(crate) fn tick_stewards(&mut self, now: Now, rng: &mut impl RngCore) {
        let ids: Vec<CircleId> = self.circles.keys().copied().collect();
        for circle in ids {
            self.notice_key(circle, rng);
            let records = self.usable_stewards(circle);
            let used: BTreeSet<EntityId> = records.iter().map(|r| r.id).collect();
            let served = self.circles.get_mut(&circle).expect("listed");
            let dropped: Vec<EntityId> = served
                .stewards
                .links
                .keys()
                .filter(|id| !used.contains(id))
                .copied()
                .collect();
            for id in dropped {
                if let Some(open) = served.stewards.links.remove(&id).and_then(|l| l.open) {
                    self.outbox.push(Output::StewardClose {
                        session: StewardSession {
                            circle,
                            steward: id,
                            token: open.token,
                        },
                    });
                }
            }
            let served = self.circles.get_mut(&circle).expect("listed");
            let before = served.stewards.kept.welcomes.len();
            let wall = now.wall.as_millis();
            served
                .stewards
                .kept
                .welcomes
                .retain(|p| p.expires_at > wall);
            if served.stewards.kept.welcomes.len() != before {
                served.stewards.dirty = true;
            }
            for record in records {
                self.maybe_open(circle, &record, now);
            }
            let served = self.circles.get_mut(&circle).expect("listed");
            for (id, link) in &mut served.stewards.links {
                if let Some(o) = link.open.as_mut()
                    && o.watching
                    && now.mono.duration_since(o.asked) >= KEEP_ALIVE
                {
                    o.asked = now.mono;
                    o.expect.push_back(Expect::Watching);
                    self.outbox.push(Output::StewardSend {
                        session: StewardSession {
                            circle,
                            steward: *id,
                            token: o.token,
                        },
                        requests: vec![StewardRequest::Watch],
                    });
                }
            }
            self.save_stewards(circle);
        }
    }

    /// The active key changed since it was last looked at: the shelf of
    /// the one before is to be visited, and sessions on it end.
    fn notice_key(&mut self, circle: CircleId, rng: &mut impl RngCore) {
        let served = self.circles.get_mut(&circle).expect("served");
        let active = KeptKey::of(served.keys.active());
        let s = &mut served.stewards;
        if s.kept.active.as_ref() == Some(&active) {
            return;
        }
        let before = s.kept.active.replace(active.clone());
        let changed = before.is_some();
        s.dirty = true;
        // Every other key held, and the one before: others may still be
        // on their shelves.
        let others = served
            .keys
            .candidates()
            .iter()
            .map(KeptKey::of)
            .filter(|k| *k != active)
            .chain(before);
        for k in others {
            if !s.kept.visits.iter().any(|(v, _)| *v == k) {
                s.kept.visits.push((k, BTreeSet::new()));
            }
        }
        let excess = s.kept.visits.len().saturating_sub(MAX_VISITS);
        s.kept.visits.drain(..excess);
        let shelf = active.shelf_key(circle).shelf();
        for (id, link) in &mut s.links {
            if link
                .open
                .as_ref()
                .is_some_and(|o| !o.visit && o.shelf != shelf)
            {
                let open = link.open.take().expect("checked");
                link.next_try = None;
                self.outbox.push(Output::StewardClose {
                    session: StewardSession {
                        circle,
                        steward: *id,
                        token: open.token,
                    },
                });
            }
        }
        if changed {
            self.reseal_welcomes(circle, rng);
        }
    }

    fn maybe_open(&mut self, circle: CircleId, record: &st::StewardRecord, now: Now) {
        let token = self.next_steward_token();
        let device = *self.me.device.id().as_bytes();
        let served = self.circles.get_mut(&circle).expect("served");
        let s = &mut served.stewards;
        let link = s.links.entry(record.id).or_default();
        if link.open.is_some() || link.next_try.is_some_and(|t| t > now.mono) {
            return;
        }
        // Earlier shelves first, then this key's.
        let visit = s
            .kept
            .visits
            .iter()
            .find(|(_, at)| !at.contains(&record.id))
            .map(|(k, _)| k.shelf_key(circle));
        let (key, visit) = match visit {
            Some(k) => (k, true),
            None => (ShelfKey::of(circle, served.keys.active()), false),
        };
        let shelf = key.shelf();
        let steward = *record.steward.as_bytes();
        let proof = key.proof(&steward, &record.locker, &device);
        link.open = Some(Open {
            token,
            shelf,
            key,
            visit,
            expect: VecDeque::from([Expect::Opened]),
            watching: false,
            putting: false,
            put_again: false,
            shelf_bytes: 0,
            caught_up: false,
            read_to: 0,
            hold: None,
            asked: now.mono,
        });
        debug!(%circle, steward = %record.steward.fmt_short(), visit, "opening a steward's shelf");
        self.outbox.push(Output::StewardOpen {
            session: StewardSession {
                circle,
                steward: record.id,
                token,
            },
            ticket: record.ticket.clone(),
            steward: record.steward,
            requests: vec![StewardRequest::Open {
                locker: record.locker.0,
                shelf,
                proof,
            }],
        });
    }

    fn link_mut(&mut self, session: StewardSession) -> Option<&mut Link> {
        let link = self
            .circles
            .get_mut(&session.circle)?
            .stewards
            .links
            .get_mut(&session.steward)?;
        link.open
            .as_ref()
            .is_some_and(|o| o.token == session.token)
            .then_some(link)
    }

    /// What is kept of the circle's stewards, and the shelf `session` is
    /// open on; marked to be written.
    fn kept_for(&mut self, session: StewardSession) -> Option<(&mut Kept, [u8; 32])> {
        let stewards = &mut self.circles.get_mut(&session.circle)?.stewards;
        let shelf = stewards.links.get(&session.steward)?.open.as_ref()?.shelf;
        stewards.dirty = true;
        Some((&mut stewards.kept, shelf))
    }

    fn check_mut(&mut self, session: StewardSession) -> Option<&mut Check> {
        let (kept, shelf) = self.kept_for(session)?;
        let by_shelf = kept.checks.entry(session.steward).or_default();
        Some(by_shelf.entry(shelf).or_default())
    }

    fn mark_mut(&mut self, session: StewardSession) -> Option<&mut Mark> {
        let (kept, shelf) = self.kept_for(session)?;
        let by_shelf = kept.marks.entry(session.steward).or_default();
        Some(by_shelf.entry(shelf).or_default())
    }

    /// A steward answered (or something arrived on a watched shelf):
    /// returns what to send it next.
    pub fn steward_reply(
        &mut self,
        session: StewardSession,
        reply: StewardReply,
        now: Now,
        rng: &mut impl RngCore,
    ) -> Vec<StewardRequest> {
        if self.link_mut(session).is_none() {
            return Vec::new();
        }
        match reply {
            StewardReply::Arrived(entry) => {
                // Numbers passed over unseen (put through another process
                // of the steward, or this device's own) are asked for.
                let from = self.unread_below(session, entry.seq.saturating_sub(1));
                self.take_entries(session, vec![entry], None, now, rng);
                let mut out: Vec<StewardRequest> = self
                    .push_if_watching(session.circle, rng)
                    .into_iter()
                    .flat_map(|(id, r)| (id == session.steward).then_some(r))
                    .flatten()
                    .collect();
                if let Some(from) = from {
                    out.extend(self.fetch(session, from));
                }
                out
            }
            StewardReply::Refused { reason } => {
                self.end_steward(session, Some(format!("the steward refused: {reason}")), now);
                Vec::new()
            }
            reply => {
                let link = self.link_mut(session).expect("checked");
                let open = link.open.as_mut().expect("checked");
                let Some(expect) = open.expect.pop_front() else {
                    self.end_steward(
                        session,
                        Some("the steward answered out of turn".into()),
                        now,
                    );
                    return Vec::new();
                };
                self.answered(session, expect, reply, now, rng)
            }
        }
    }

    fn answered(
        &mut self,
        session: StewardSession,
        expect: Expect,
        reply: StewardReply,
        now: Now,
        rng: &mut impl RngCore,
    ) -> Vec<StewardRequest> {
        match (expect, reply) {
            (Expect::Opened, StewardReply::Opened { last, bytes }) => {
                self.opened(session, last, bytes, now)
            }
            (Expect::Items, StewardReply::Items { items, upto, more }) => {
                self.took_items(session, items, upto, more, now, rng)
            }
            (Expect::Stored { kind, heads }, StewardReply::Stored { seq, bytes }) => {
                self.stored(session, kind, heads, seq, bytes, now, rng)
            }
            (Expect::Watching, StewardReply::Opened { last, .. }) => self.watching(session, last),
            (Expect::Left { slot, forgot }, StewardReply::Left) => {
                self.left_welcome(session, slot, forgot)
            }
            (_, other) => {
                debug!(?other, "a steward answered out of turn");
                self.end_steward(
                    session,
                    Some("the steward answered out of turn".into()),
                    now,
                );
                Vec::new()
            }
        }
    }

    /// The shelf is open: how much it holds, and where to read from.
    fn opened(
        &mut self,
        session: StewardSession,
        last: u64,
        bytes: u64,
        now: Now,
    ) -> Vec<StewardRequest> {
        let served = self.circles.get_mut(&session.circle).expect("linked");
        served
            .stewards
            .kept
            .reached
            .insert(session.steward, now.wall.as_millis());
        let link = served
            .stewards
            .links
            .get_mut(&session.steward)
            .expect("linked");
        link.error = None;
        link.backoff = None;
        let open = link.open.as_mut().expect("linked");
        open.shelf_bytes = bytes;
        let visit = open.visit;
        let mark = self.mark_mut(session).expect("linked");
        if last < mark.highest {
            // It holds less than it once showed: put everything
            // there again.
            let stale = format!(
                "it showed {} items before and only {last} now",
                mark.highest
            );
            *mark = Mark::default();
            if !visit {
                warn!(circle = %session.circle, "a steward kept less than before: {stale}");
                self.link_mut(session).expect("linked").stale = Some(stale);
            }
        }
        let after = self.mark_mut(session).expect("linked").after;
        // Now and then the whole shelf again (see the module's docs).
        let every = i64::try_from(self.timing.steward_reread.as_millis()).unwrap_or(i64::MAX);
        let wall = now.wall.as_millis();
        let check = self.check_mut(session).expect("linked");
        let from = if visit || wall.saturating_sub(check.read_whole) < every {
            after
        } else {
            0
        };
        if from == 0 {
            check.read_whole = wall;
        }
        self.fetch(session, from)
    }

    /// Items read from the shelf: the next page, or once caught up, what
    /// to put there or the key a visit leaves.
    fn took_items(
        &mut self,
        session: StewardSession,
        items: Vec<ShelfEntry>,
        upto: u64,
        more: bool,
        now: Now,
        rng: &mut impl RngCore,
    ) -> Vec<StewardRequest> {
        self.take_entries(session, items, Some(upto), now, rng);
        if more {
            let next = self
                .link_mut(session)
                .and_then(|l| l.open.as_ref())
                .expect("linked")
                .read_to;
            return self.fetch(session, next);
        }
        let open = self
            .link_mut(session)
            .and_then(|l| l.open.as_mut())
            .expect("linked");
        open.caught_up = true;
        if open.visit {
            self.leave_keys(session, rng)
        } else {
            let mut out = self.put_lacking(session, rng);
            let open = self
                .link_mut(session)
                .and_then(|l| l.open.as_mut())
                .expect("linked");
            open.expect.push_back(Expect::Watching);
            out.push(StewardRequest::Watch);
            out
        }
    }

    /// What was put on the shelf is kept there.
    #[allow(clippy::too_many_arguments)]
    fn stored(
        &mut self,
        session: StewardSession,
        kind: ShelfKind,
        heads: Vec<[u8; 32]>,
        seq: u64,
        bytes: u64,
        now: Now,
        rng: &mut impl RngCore,
    ) -> Vec<StewardRequest> {
        let mark = self.mark_mut(session).expect("linked");
        mark.highest = mark.highest.max(seq);
        if seq == mark.after + 1 {
            mark.after = seq;
        }
        if kind != ShelfKind::Keys {
            mark.frontier = heads;
        }
        let open = self
            .link_mut(session)
            .and_then(|l| l.open.as_mut())
            .expect("linked");
        open.shelf_bytes = bytes;
        open.putting = false;
        // Its own item, next in line: nothing to fetch there.
        if seq == open.read_to + 1 {
            open.read_to = seq;
        }
        if open.visit {
            // Visited: the key is left there.
            let served = self.circles.get_mut(&session.circle).expect("linked");
            let shelf = served.stewards.links[&session.steward]
                .open
                .as_ref()
                .expect("linked")
                .shelf;
            let circle = session.circle;
            for (k, at) in &mut served.stewards.kept.visits {
                if k.shelf_key(circle).shelf() == shelf {
                    at.insert(session.steward);
                }
            }
            served.stewards.dirty = true;
            self.end_steward(session, None, now);
            return Vec::new();
        }
        if std::mem::take(&mut open.put_again) {
            return self.put_lacking(session, rng);
        }
        Vec::new()
    }

    /// The steward watches the shelf for us (first time, or a keep-alive).
    fn watching(&mut self, session: StewardSession, last: u64) -> Vec<StewardRequest> {
        let open = self
            .link_mut(session)
            .and_then(|l| l.open.as_mut())
            .expect("linked");
        let first = !std::mem::replace(&mut open.watching, true);
        if first {
            info!(circle = %session.circle, "a steward keeps this circle and tells of what arrives");
        }
        let mut out = self.welcomes_for(session);
        // At a keep-alive: the shelf holds what was never sent
        // here (another process of the steward kept it).
        if !first && let Some(from) = self.unread_below(session, last) {
            out.extend(self.fetch(session, from));
        }
        out
    }

    /// A welcome left at the steward (or forgotten there).
    fn left_welcome(
        &mut self,
        session: StewardSession,
        slot: [u8; 32],
        forgot: bool,
    ) -> Vec<StewardRequest> {
        let served = self.circles.get_mut(&session.circle).expect("linked");
        served.stewards.dirty = true;
        let pending = &mut served.stewards.kept.welcomes;
        if let Some(p) = pending.iter_mut().find(|p| p.slot == slot) {
            if forgot {
                p.left.remove(&session.steward);
                p.outdated.remove(&session.steward);
            } else {
                p.left.insert(session.steward);
            }
        }
        pending.retain(|p| !(p.revoked && p.left.is_empty() && p.outdated.is_empty()));
        Vec::new()
    }

    /// Where to fetch from when a watched shelf holds numbers up to
    /// `upto` this session has not read (none while a fetch is under way).
    fn unread_below(&mut self, session: StewardSession, upto: u64) -> Option<u64> {
        let open = self.link_mut(session).and_then(|l| l.open.as_ref())?;
        let fetching = open.expect.iter().any(|e| matches!(e, Expect::Items));
        (open.watching && !fetching && upto > open.read_to).then_some(open.read_to)
    }

    fn fetch(&mut self, session: StewardSession, after: u64) -> Vec<StewardRequest> {
        let open = self
            .link_mut(session)
            .and_then(|l| l.open.as_mut())
            .expect("linked");
        open.expect.push_back(Expect::Items);
        open.read_to = after;
        vec![StewardRequest::Fetch {
            after,
            max_bytes: FETCH_BYTES,
        }]
    }

    /// A steward session broke (unreachable, connection lost, silent).
    pub fn steward_broken(&mut self, session: StewardSession, why: String, now: Now) {
        if self.link_mut(session).is_some() {
            self.end_steward(session, Some(why), now);
        }
    }

    fn end_steward(&mut self, session: StewardSession, error: Option<String>, now: Now) {
        let Some(link) = self.link_mut(session) else {
            return;
        };
        link.open = None;
        match error {
            None => {
                link.next_try = None;
                link.backoff = None;
            }
            Some(why) => {
                let wait = link
                    .backoff
                    .map_or(FIRST_BACKOFF, |b| (b * 2).min(MAX_BACKOFF));
                debug!(circle = %session.circle, "a steward session ended: {why}");
                link.backoff = Some(wait);
                link.next_try = Some(now.mono + wait);
                link.error = Some(why);
            }
        }
        self.outbox.push(Output::StewardClose { session });
    }

    /// Keeps where this device stands with a circle's stewards, if that
    /// changed.
    pub(crate) fn save_stewards(&mut self, circle: CircleId) {
        let Some(served) = self.circles.get_mut(&circle) else {
            return;
        };
        if !std::mem::take(&mut served.stewards.dirty) {
            return;
        }
        let bytes = postcard::to_stdvec(&served.stewards.kept).unwrap_or_default();
        if let Err(e) = self
            .home
            .write_record(self.lock(), NodeRecord::Stewards(circle), &bytes)
        {
            debug!(%circle, "could not keep where this device stands with the stewards: {e}");
        }
    }
}

fn sorted(v: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let mut v = v.to_vec();
    v.sort();
    v
}
