//! The Roundtable node's decisions, as a state machine.
//!
//! A [`Machine`] is one device's node with the network and the clock taken
//! out: it holds the circles this device serves (their stores, keys, head
//! books and memberships), what it shares with each peer, and the
//! [`schedule`] of syncs. Every input is a method call that carries the
//! time ([`Now`]) and, where a key or nonce is made, the randomness:
//!
//! | Input | Method |
//! |---|---|
//! | a local command | [`Machine::perform`], [`Machine::create`], [`Machine::invite`], [`Machine::welcome`], reads |
//! | gossip received | [`Machine::gossip`] |
//! | a gossip neighbour up or down, or gossip lagging | [`Machine::neighbour_up`], [`Machine::neighbour_down`], [`Machine::lagged`] |
//! | a peer opens a sync session | [`Machine::answer`] |
//! | a session frame | [`Machine::frame`] |
//! | a session broke (connection lost, peer silent) | [`Machine::broken`] |
//! | a peer speaks another wire version (it said so, or we told it) | [`Machine::peer_speaks`] |
//! | a join request | [`Machine::serve_join`] |
//! | time passed | [`Machine::tick`] |
//!
//! What it decides comes back two ways: the answer to the call (a reply,
//! the frames a session sends next), and [`Output`]s queued for whoever
//! runs the machine ([`Machine::drain`]): gossip this, follow that topic,
//! admit these devices, open a session, tell followers. The node's actor
//! carries them out with iroh; the simulation (`tests/simulation`) carries
//! them out over a simulated network, with the same code deciding.
//!
//! Storage is the one effect carried out inside, through the store's
//! file layer ([`roundtable_store::Fs`]): an edit is acknowledged only
//! once it is durable, so the write happens before the call returns. The
//! node runs it on the disk; the simulation on
//! [`SimFs`](roundtable_store::fault::SimFs), where a restart loses what
//! was not synced.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use roundtable_core::keys::Sealed;
use roundtable_core::since::Seen;
use roundtable_core::wire::{self, Body, JoinReply, JoinRequest, SyncFrame, WelcomeCircle};
use roundtable_core::{
    ChangeHash, Circle, CircleId, CircleView, CoreError, DeviceCert, DeviceId, EntityId,
    EnvelopeError, EpochKey, HeadBook, InviteKind, InviteSecret, KeyOffer, Keyring, MemberId,
    MemberKey, Membership, Op, PeerSync, Profile, ReplayFilter, SignedHead, Timestamp,
};
use roundtable_store::{CircleStore, Home, Identity, NodeRecord, StoreError, WriteLock};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

/// The head books are written at most this often, and at shutdown (see
/// `Machine::keep_book`).
const BOOKS_EVERY: Duration = Duration::from_secs(5);

mod circles;
mod envelopes;
mod farewell;
mod io;
mod join;
pub mod rate;
pub mod schedule;
mod session;
mod status;
pub use status::{CircleStatus, DeviceStatus, ForkedDevice, OtherVersion, Status};
mod stewards;
mod sync;

pub use farewell::FAREWELL_EVERY;
pub use io::{Error, Event, Now, Output};
pub use join::{Terms, Ticketed, Welcome, join_request};
pub use rate::Delayed;
use schedule::Schedule;
pub use schedule::{STEWARD_FOLD_FLOOR, Timing};
pub use session::{MAX_OPENING, SessionError, SessionId, Step, SyncRefusal};
pub use stewards::{StewardSession, StewardStatus};

/// A circle as it reads now: what pages and views show, computed once
/// per change of the circle and shared until the next one.
#[derive(Debug, Clone)]
pub struct Reading {
    /// Everything in the circle, as the core reads it.
    pub view: Arc<CircleView>,
    /// Who is in.
    pub membership: Arc<Membership>,
}

/// Where a person last looked at a circle (see [`Machine::seen`]).
#[derive(Debug, Clone)]
pub struct Looked {
    /// When.
    pub at: Timestamp,
    /// The circle as it stood then.
    pub before: Arc<CircleView>,
}

/// What is kept about a peer between runs.
#[derive(Serialize, Deserialize)]
struct PeerRecord {
    state: Vec<u8>,
    last_synced: Option<i64>,
}

/// What a circle keeps of one peer: what the two share, and the session
/// under way. When to sync with it is the [`Schedule`]'s to say.
struct Peer {
    sync: PeerSync,
    last_synced: Option<Timestamp>,
    /// This session's changes applied from the peer, and bytes sent to it.
    session_in: usize,
    session_out: usize,
    /// At this session's start the peer had everything we had.
    level: bool,
    /// Signed heads (by change hash) this session has sent the peer.
    heads_sent: BTreeSet<[u8; 32]>,
    /// Where the session under way stands.
    session: Option<session::SyncSession>,
}

impl Peer {
    fn new(sync: PeerSync, last_synced: Option<Timestamp>) -> Self {
        Self {
            sync,
            last_synced,
            session_in: 0,
            session_out: 0,
            level: false,
            heads_sent: BTreeSet::new(),
            session: None,
        }
    }
}

/// One circle this device serves.
struct Served {
    store: CircleStore,
    /// The circle keys of the current epoch.
    keys: Keyring,
    /// Proofs of who wrote what (see `roundtable_core::authorship`).
    book: HeadBook,
    /// Who is in, as the circle says now.
    membership: Membership,
    replays: ReplayFilter,
    peers: BTreeMap<DeviceId, Peer>,
    /// The last reading and the heads it was read at.
    reading: Option<(Vec<ChangeHash>, Reading)>,
    /// The circle where this device's person last looked, and those heads.
    seen: Option<(Vec<ChangeHash>, Arc<CircleView>)>,
    /// Folding the log in failed at the last try.
    compact_failing: bool,
    /// Whether carrying a recovery through failed (said once, not every
    /// tick, until it works).
    recovery_failing: bool,
    /// Devices found to have signed two different changes under one
    /// number, and which the circle kept (one entry per device).
    forked: BTreeMap<DeviceId, roundtable_core::equivocation::Equivocation>,
    /// Its stewards, as this device deals with them.
    stewards: stewards::Stewards,
    /// Changed since its stewards were last given what they lack.
    steward_due: bool,
    /// What to tell the devices of each member the circle removed.
    farewells: BTreeMap<MemberId, roundtable_core::farewell::Farewell>,
    /// Removed members a farewell was tried for this run.
    farewell_tried: BTreeSet<MemberId>,
}

impl Served {
    /// The circle as it reads now; read again only when it changed, and
    /// then only what changed (see `CircleView::read_after`).
    fn read(&mut self) -> Reading {
        let heads = self.store.circle().heads();
        if let Some((at, reading)) = &self.reading
            && *at == heads
        {
            return reading.clone();
        }
        let circle = self.store.circle();
        let view = match self.reading.take() {
            Some((at, before)) => {
                // Pages let go of a reading once drawn: the view is taken,
                // not copied, unless one still holds it.
                let prev = Arc::try_unwrap(before.view).unwrap_or_else(|v| (*v).clone());
                CircleView::read_after(prev, circle.doc(), &at)
            }
            None => circle.view(),
        };
        let reading = Reading {
            view: Arc::new(view),
            membership: Arc::new(circle.membership()),
        };
        self.reading = Some((heads, reading.clone()));
        reading
    }
}

/// One device's node, with every decision and no network or clock.
pub struct Machine {
    home: Home,
    lock: Option<WriteLock>,
    me: Identity,
    timing: Timing,
    circles: BTreeMap<CircleId, Served>,
    /// Circles whose files could not be opened, and why.
    unopened: BTreeMap<CircleId, String>,
    /// Circles whose head book changed since it was last written.
    unsaved_books: BTreeSet<CircleId>,
    /// When the head books were last written (see [`BOOKS_EVERY`]).
    books_saved: Option<Instant>,
    /// When to sync with whom: the sessions under way, and when each
    /// peer is due.
    schedule: Schedule<CircleId, DeviceId>,
    /// Gossip messages dropped, by reason.
    dropped: BTreeMap<String, u64>,
    /// Received changes refused, by reason.
    refused: BTreeMap<String, u64>,
    /// Devices whose last session failed on the wire version, and the
    /// version each speaks (until a session with it reads again).
    other_versions: BTreeMap<DeviceId, u8>,
    /// What each device's gossip may bring, and what waits past that.
    inflows: rate::Inflows,
    /// The last steward session's number.
    steward_tokens: u64,
    /// Farewells given and asked for.
    farewells: farewell::Farewells,
    outbox: Vec<Output>,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("device", &self.me.device.id())
            .field("circles", &self.circles.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Machine {
    /// Opens the home this process holds the lock of: its identity (made
    /// beforehand: keys are not made here) and every circle kept in it. A
    /// circle whose files do not open is listed as such, not served.
    pub fn open(
        home: Home,
        mut lock: WriteLock,
        timing: Timing,
        now: Now,
        rng: &mut impl RngCore,
    ) -> Result<Self, Error> {
        // This run writes in a session of its own (see
        // `roundtable_core::circle::session_actor`).
        lock.set_session(rng.next_u64());
        let me = home.identity()?.ok_or(StoreError::NoIdentity)?;
        let ids = home.circle_ids()?;
        let mut machine = Self {
            home,
            lock: Some(lock),
            me,
            timing,
            circles: BTreeMap::new(),
            unopened: BTreeMap::new(),
            unsaved_books: BTreeSet::new(),
            books_saved: None,
            schedule: Schedule::new(timing),
            dropped: BTreeMap::new(),
            refused: BTreeMap::new(),
            other_versions: BTreeMap::new(),
            inflows: rate::Inflows::new(),
            steward_tokens: 0,
            farewells: farewell::Farewells::default(),
            outbox: Vec::new(),
        };
        for id in ids {
            if let Err(e) = machine.open_circle(id, now, rng) {
                warn!(circle = %id, "not serving this circle: {e}");
                machine.unopened.insert(id, e.to_string());
            }
        }
        machine.refresh_admitted(now, rng);
        Ok(machine)
    }

    /// What the machine asks to be done, oldest first.
    pub fn drain(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outbox)
    }

    /// Who this device is.
    pub fn identity(&self) -> &Identity {
        &self.me
    }

    /// The home it keeps its circles in.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// One of the home's named records, if it was written and reads.
    pub fn read_record(&self, record: NodeRecord) -> Option<Vec<u8>> {
        self.home.read_record(record).ok().flatten()
    }

    /// Where this device's person last looked at `circle`, with the
    /// circle as it stood then; `None` before their first look (or when
    /// this copy no longer holds that point: the next look sets it again).
    /// The old circle is read once per look, not per page.
    pub fn seen(&mut self, circle: CircleId) -> Result<Option<Looked>, Error> {
        let bytes = self.read_record(NodeRecord::Seen(circle));
        let served = self
            .circles
            .get_mut(&circle)
            .ok_or_else(|| Error::UnknownCircle(circle))?;
        let Some(seen) = bytes.as_deref().and_then(Seen::from_bytes) else {
            return Ok(None);
        };
        if let Some((heads, before)) = &served.seen
            && *heads == seen.heads
        {
            return Ok(Some(Looked {
                at: seen.at,
                before: before.clone(),
            }));
        }
        let Ok(before) = served.store.circle().view_at(&seen.heads) else {
            return Ok(None);
        };
        let before = Arc::new(before);
        served.seen = Some((seen.heads, before.clone()));
        Ok(Some(Looked {
            at: seen.at,
            before,
        }))
    }

    /// This device's person looked at `circle` now: what arrived so far is
    /// no longer news to them.
    pub fn mark_seen(&mut self, circle: CircleId, at: Timestamp) -> Result<(), Error> {
        let seen = Seen::now(self.served(circle)?.store.circle(), at);
        self.write_record(NodeRecord::Seen(circle), &seen.to_bytes())?;
        Ok(())
    }

    /// Writes one of the home's named records, durably.
    pub fn write_record(&self, record: NodeRecord, bytes: &[u8]) -> Result<(), StoreError> {
        self.home.write_record(self.lock(), record, bytes)
    }

    fn lock(&self) -> &WriteLock {
        self.lock
            .as_ref()
            .expect("the writer's lock is held until the machine closes")
    }

    fn emit(&mut self, event: Event) {
        self.outbox.push(Output::Event(event));
    }

    /// Why a circle is not served here.
    fn unknown(&self, circle: CircleId) -> Error {
        match self.unopened.get(&circle) {
            Some(reason) => Error::Unopened {
                circle,
                reason: reason.clone(),
            },
            None => Error::UnknownCircle(circle),
        }
    }

    fn served(&self, circle: CircleId) -> Result<&Served, Error> {
        self.circles
            .get(&circle)
            .ok_or_else(|| self.unknown(circle))
    }

    /// Counts a message dropped for `reason` (shown by `status`); returns
    /// how many so far.
    pub fn note_dropped(&mut self, reason: impl ToString) -> u64 {
        count(&mut self.dropped, reason)
    }

    // --- reads ---

    /// The circles served, by id and name (a damaged one as such).
    pub fn circles(&self) -> Vec<(CircleId, String)> {
        self.circles
            .iter()
            .map(|(id, s)| (*id, s.store.circle().name()))
            .chain(self.unopened.keys().map(|id| (*id, "(damaged)".to_owned())))
            .collect()
    }

    /// A circle as it reads now (read again only when it changed).
    pub fn read(&mut self, circle: CircleId) -> Result<Reading, Error> {
        match self.circles.get_mut(&circle) {
            Some(s) => Ok(s.read()),
            None => Err(self.unknown(circle)),
        }
    }

    /// A circle's document as it stands.
    pub fn circle(&self, circle: CircleId) -> Result<&Circle, Error> {
        Ok(self.served(circle)?.store.circle())
    }

    /// Every proof of authorship this device holds for a circle, its own
    /// newest included: what it would hand a peer.
    pub fn signed_heads(&self, circle: CircleId) -> Result<Vec<SignedHead>, Error> {
        let served = self.served(circle)?;
        let mut heads = served.book.all();
        heads.extend(SignedHead::sign_all(served.store.circle(), &self.me.device));
        Ok(heads)
    }

    /// The epoch a circle's key here is of.
    pub fn epoch(&self, circle: CircleId) -> Result<u64, Error> {
        Ok(self.served(circle)?.keys.epoch())
    }

    // --- local commands ---

    /// A circle changed here: followers are told, and its peers are due for
    /// anti-entropy within the usual interval (sooner than a failed
    /// peer's backoff would say).
    fn changed(&mut self, circle: CircleId, now: Now) {
        self.emit(Event::Changed { circle });
        if let Some(s) = self.circles.get_mut(&circle) {
            s.steward_due = true;
        }
        self.schedule
            .handle(schedule::Input::Changed { circle }, now.mono);
    }

    /// Edits a circle durably, then tells the circle what changed.
    fn edit_announced<T, R: RngCore>(
        &mut self,
        circle: CircleId,
        now: Now,
        rng: &mut R,
        f: impl FnOnce(&mut Circle, &mut R) -> Result<T, CoreError>,
    ) -> Result<T, Error> {
        if !self.circles.contains_key(&circle) {
            return Err(self.unknown(circle));
        }
        let served = self.circles.get_mut(&circle).expect("checked above");
        let before = served.store.circle().heads();
        let out = served
            .store
            .edit(|c| -> Result<_, Error> { Ok(f(c, rng)?) })?;
        self.announce(circle, &before, now, rng);
        Ok(out)
    }

    /// Does what a member asked, in their name, once it is durable.
    pub fn perform(
        &mut self,
        circle: CircleId,
        op: &Op,
        at: Timestamp,
        now: Now,
        rng: &mut impl RngCore,
    ) -> Result<Option<EntityId>, Error> {
        let member = match self.circles.get(&circle) {
            Some(s) => self.mine(&s.membership),
            None => self.me.member.id(),
        };
        let out = self.edit_announced(circle, now, rng, |c, rng| c.perform(op, member, at, rng))?;
        if let Op::RevokeInvite { invite } = op {
            self.forget_welcome(circle, *invite);
        }
        if let Op::Leave { forget: true } = op {
            self.home.mark_forget(self.lock(), circle)?;
        }
        Ok(out)
    }

    /// Starts a circle with this device's member as its first.
    pub fn create(
        &mut self,
        name: &str,
        about: &str,
        display_name: &str,
        at: Timestamp,
        now: Now,
        rng: &mut impl RngCore,
    ) -> Result<CircleId, Error> {
        let circle = Circle::create(
            name,
            about,
            &self.me.cert,
            &Profile::named(display_name),
            at,
            rng,
        )?;
        let id = circle.id();
        let keys = Keyring::with(EpochKey::random(id, 0, &self.me.device, rng));
        let store = self.home.create_circle(self.lock(), &circle, &keys)?;
        self.serve(id, store, keys, now);
        self.changed(id, now);
        Ok(id)
    }

    /// Makes an invite (or a device pairing) in this member's name: its id
    /// and the secret a ticket carries.
    pub fn invite(
        &mut self,
        circle: CircleId,
        terms: Terms,
        at: Timestamp,
        now: Now,
        rng: &mut impl RngCore,
    ) -> Result<(EntityId, InviteSecret), Error> {
        self.invite_labelled(circle, terms, "", at, now, rng)
    }

    /// Makes an invite as [`Machine::invite`] does, with the label its
    /// maker gives it ("for Sam"; empty: none).
    pub fn invite_labelled(
        &mut self,
        circle: CircleId,
        terms: Terms,
        label: &str,
        at: Timestamp,
        now: Now,
        rng: &mut impl RngCore,
    ) -> Result<(EntityId, InviteSecret), Error> {
        let member = self.me.member.id();
        let Terms {
            kind,
            expires_at,
            uses,
        } = terms;
        let (invite, secret) = self.edit_announced(circle, now, rng, |c, rng| {
            c.create_labelled_invite(member, kind, expires_at, uses, label, at, rng)
        })?;
        // Where the circle has stewards, the invite waits there too.
        self.keep_welcome(circle, invite, &secret, kind, expires_at, rng);
        Ok((invite, secret))
    }

    /// Time passed: applies the held edits the senders' budgets now allow,
    /// syncs with the peers due, asks for gossip neighbours where a circle
    /// is short of them, writes the head books that changed, and folds in
    /// the logs that are due.
    pub fn tick(&mut self, now: Now, rng: &mut impl RngCore) {
        self.release_held(now, rng);
        let outputs = self.schedule.handle(schedule::Input::Tick, now.mono);
        self.carry_out(outputs, rng);
        self.tick_stewards(now, rng);
        let due: Vec<CircleId> = self
            .circles
            .iter_mut()
            .filter_map(|(id, s)| std::mem::take(&mut s.steward_due).then_some(*id))
            .collect();
        for circle in due {
            self.push_to_stewards(circle, rng);
        }
        self.complete_recoveries(now, rng);
        if !self.unsaved_books.is_empty()
            && self
                .books_saved
                .is_none_or(|at| now.mono.saturating_duration_since(at) >= BOOKS_EVERY)
        {
            self.books_saved = Some(now.mono);
            self.save_books();
        }
        self.compact_due();
    }

    /// Carries through every recovery whose wait is over by this device's
    /// clock, in the circles where its member could vouch for it: whoever
    /// is awake then does it, so the person waits for nobody's laptop.
    fn complete_recoveries(&mut self, now: Now, rng: &mut impl RngCore) {
        let due: Vec<(CircleId, EntityId)> = self
            .circles
            .iter()
            .flat_map(|(id, s)| {
                s.store
                    .circle()
                    .recoveries_due(self.mine(&s.membership), now.wall)
                    .into_iter()
                    .map(move |p| (*id, p))
            })
            .collect();
        for (circle, proposal) in due {
            let op = Op::CompleteRecovery { proposal };
            let done = self.perform(circle, &op, now.wall, now, rng);
            let Some(served) = self.circles.get_mut(&circle) else {
                continue;
            };
            match done {
                Ok(_) => {
                    served.recovery_failing = false;
                    info!(circle = %circle, "a recovery vouched for is carried through: the new device is its member's");
                }
                Err(e) if served.recovery_failing => {
                    debug!(circle = %circle, "still cannot carry a recovery through: {e}");
                }
                Err(e) => {
                    served.recovery_failing = true;
                    warn!(circle = %circle, "could not carry a recovery through, will keep trying: {e}");
                }
            }
        }
    }

    /// Stops: keeps what every session under way shared so far and the
    /// head books, and lets go of the home's lock.
    pub fn close(&mut self) {
        let running: Vec<(CircleId, DeviceId)> =
            self.schedule.sessions().map(|(c, p, _)| (c, p)).collect();
        for (circle, peer) in running {
            self.keep_peer(circle, peer);
        }
        self.save_books();
        self.circles.clear();
        self.lock = None;
    }
}

fn count(map: &mut BTreeMap<String, u64>, reason: impl ToString) -> u64 {
    let n = map.entry(reason.to_string()).or_default();
    *n += 1;
    *n
}
