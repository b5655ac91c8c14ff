//! The head book: the signed heads a device keeps of each device of a
//! circle, by writing session, bounded whatever peers send.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{ChangeHash, CircleId, DeviceId, Rejection, SignedHead};

/// A device's writing session: where a head has its place in the book.
type Slot = ([u8; 32], u64);

impl SignedHead {
    /// Where the head has its place in the book.
    fn slot(&self) -> Slot {
        (self.device, self.session)
    }
}

/// The heads of one writing session in a [`HeadBook`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    /// The newest head whose change this copy holds: it covers every
    /// change of the session here, and is what this copy hands on.
    held: Option<SignedHead>,
    /// Heads whose changes are on their way, newest last.
    pending: Vec<SignedHead>,
    /// When the session was last learned of (a counter, not a clock).
    learned: u64,
}

impl Session {
    fn heads(&self) -> impl Iterator<Item = &SignedHead> {
        self.held.iter().chain(&self.pending)
    }
}

/// The signed heads known of each device in one circle: for each of its
/// writing sessions, the newest whose change this copy holds (it covers
/// every change of that session here), and a few whose changes are still
/// on their way.
///
/// A head covers the changes of every session of its device that it
/// reaches: the device held them when it signed. So once a device writes
/// again, its new session's head vouches for its older sessions too.
///
/// The book is bounded, whatever peers send: it keeps heads only for the
/// circle's certified devices ([`HeadBook::know_devices`]), of at most
/// [`HeadBook::SESSIONS`] sessions each, and `1 + PENDING` heads per
/// session, plus a few heads of devices not (yet) certified here, whose
/// certificates may be on their way in the same session. Past that, a
/// device's session whose changes this copy does not hold goes first,
/// then the one learned of longest ago: so a device that floods the book
/// with heads of its own (a device that signed two changes under one
/// number, say) cannot push out the proof of what this copy holds and
/// hands on. A head is verified only once it has a place in the book, so
/// a flood of heads costs a lookup each, not a signature check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadBook {
    sessions: BTreeMap<Slot, Session>,
    clock: u64,
    /// Heads of devices not certified here (yet), oldest first; not kept
    /// across restarts (peers send heads again at every session).
    #[serde(skip)]
    strangers: Vec<SignedHead>,
    /// The circle's certified devices (departed ones included: their
    /// history still needs its proof).
    #[serde(skip)]
    devices: BTreeSet<[u8; 32]>,
}

impl HeadBook {
    /// Heads kept per session while their changes are on their way.
    const PENDING: usize = 3;
    /// Sessions kept per device. A device's newest session covers the
    /// ones before it, except where a restored home wrote beside what it
    /// wrote before (two branches until it writes again).
    pub const SESSIONS: usize = 8;
    /// Heads kept of devices not certified here.
    pub const STRANGERS: usize = 16;

    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a kept book; damaged bytes give an empty one (peers send heads
    /// again at every session). Call [`HeadBook::know_devices`] before use.
    pub fn restore(bytes: &[u8]) -> Self {
        postcard::from_bytes(bytes).unwrap_or_default()
    }

    /// The bytes to keep.
    pub fn persist(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Tells the book which devices the circle certifies: heads of others
    /// are dropped, heads of strangers now certified are taken in.
    pub fn know_devices(&mut self, devices: &BTreeSet<DeviceId>) {
        self.devices = devices.iter().map(|d| *d.as_bytes()).collect();
        let known = &self.devices;
        self.sessions.retain(|(d, _), _| known.contains(d));
        let strangers = std::mem::take(&mut self.strangers);
        for h in strangers {
            if self.devices.contains(&h.device) {
                self.place(h);
            } else {
                self.strangers.push(h);
            }
        }
    }

    /// Takes in heads that verify and are not known yet; returns how many
    /// were taken. Heads that do not verify are ignored.
    pub fn learn<'a>(
        &mut self,
        circle: CircleId,
        heads: impl IntoIterator<Item = &'a SignedHead>,
    ) -> usize {
        let mut taken = 0;
        // An honest peer sends at most as many of one device as a book
        // keeps; signatures beyond that are not even checked.
        let mut tried: HashMap<[u8; 32], usize> = HashMap::new();
        let mut strangers_tried = 0;
        for h in heads {
            let known_device = self.devices.contains(&h.device);
            let tries = if known_device {
                let n = tried.entry(h.device).or_default();
                *n += 1;
                *n
            } else {
                strangers_tried += 1;
                strangers_tried
            };
            let limit = if known_device {
                (1 + Self::PENDING) * Self::SESSIONS
            } else {
                Self::STRANGERS
            };
            if tries > limit {
                continue;
            }
            // A head older than the one held is still taken: where a
            // device signed two changes under one number, the other
            // branch's proof is needed until its change is decided.
            let fresh = if known_device {
                self.sessions
                    .get(&h.slot())
                    .is_none_or(|s| !s.heads().any(|k| k.hash == h.hash))
            } else {
                !self.strangers.iter().any(|k| k.hash == h.hash)
            };
            if !fresh || !h.verify(circle) {
                continue;
            }
            if known_device {
                self.place(h.clone());
            } else {
                self.strangers.push(h.clone());
                if self.strangers.len() > Self::STRANGERS {
                    self.strangers.remove(0);
                }
            }
            taken += 1;
        }
        taken
    }

    fn place(&mut self, h: SignedHead) {
        let slot = h.slot();
        self.clock += 1;
        let session = self.sessions.entry(slot).or_default();
        session.learned = self.clock;
        if session.heads().any(|k| k.hash == h.hash) {
            return;
        }
        // Learned last, last: the one learned first goes when full.
        session.pending.push(h);
        if session.pending.len() > Self::PENDING {
            session.pending.remove(0);
        }
        // Sessions of the device whose changes this copy does not hold are
        // bounded; a held one is kept (it is the proof this copy hands on)
        // until its change is refused, so these are bounded by what this
        // copy holds of the device.
        let unheld: Vec<(u64, Slot)> = self
            .sessions
            .iter()
            .filter(|((d, _), x)| *d == slot.0 && x.held.is_none())
            .map(|(s, x)| (x.learned, *s))
            .collect();
        if unheld.len() > Self::SESSIONS
            && let Some((_, out)) = unheld.iter().min()
        {
            self.sessions.remove(out);
        }
    }

    /// Lets go of heads of changes that were refused for good (they build
    /// on a change the circle refused, or lost to another under the same
    /// number): they prove nothing this copy will take, and would only
    /// crowd out heads that do.
    pub fn forget_refused(&mut self, refused: &[(ChangeHash, Rejection)]) {
        let gone: HashSet<[u8; 32]> = refused
            .iter()
            .filter(|(_, why)| matches!(why, Rejection::Equivocation | Rejection::BuildsOnRejected))
            .map(|(h, _)| h.0)
            .collect();
        if gone.is_empty() {
            return;
        }
        for s in self.sessions.values_mut() {
            s.pending.retain(|k| !gone.contains(&k.hash));
            if s.held.as_ref().is_some_and(|k| gone.contains(&k.hash)) {
                s.held = None;
            }
        }
        self.sessions
            .retain(|_, s| s.held.is_some() || !s.pending.is_empty());
    }

    /// Marks, in each session, the newest head whose change is held
    /// (`has`), and lets go of heads behind it. Heads of changes not held
    /// stay pending (under two changes of one number, the other's proof
    /// is still needed until its change arrives or is refused).
    pub(crate) fn settle_by(&mut self, has: impl Fn(&ChangeHash) -> bool) {
        let holds = |k: &SignedHead| has(&ChangeHash(k.hash));
        for s in self.sessions.values_mut() {
            // A session's changes held here form one chain, so of the
            // heads whose change is here, the highest numbered covers the
            // others. (The one held before may have gone: two changes
            // under one number, and the circle kept the other.)
            s.held = s
                .held
                .take()
                .into_iter()
                .chain(s.pending.iter().cloned())
                .filter(|k| holds(k))
                .max_by_key(|k| k.seq);
            s.pending.retain(|k| !holds(k));
        }
    }

    /// Every head known, to hand to a peer.
    pub fn all(&self) -> Vec<SignedHead> {
        self.sessions
            .values()
            .flat_map(Session::heads)
            .chain(&self.strangers)
            .cloned()
            .collect()
    }

    /// How many heads the book holds.
    pub fn len(&self) -> usize {
        self.sessions
            .values()
            .map(|s| s.heads().count())
            .sum::<usize>()
            + self.strangers.len()
    }

    /// Whether the book holds no head.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every head of `device`, of every session.
    pub(crate) fn heads_of(&self, device: &DeviceId) -> impl Iterator<Item = ChangeHash> + '_ {
        let device = *device.as_bytes();
        self.sessions
            .range((device, 0)..=(device, u64::MAX))
            .flat_map(|(_, s)| s.heads())
            .chain(self.strangers.iter().filter(move |h| h.device == device))
            .map(|h| ChangeHash(h.hash))
    }
}
