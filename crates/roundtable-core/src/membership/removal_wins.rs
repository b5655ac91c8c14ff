//! Removal wins: what a device let in while its revocation was on its way
//! does not stand.
//!
//! A stolen device can let an accomplice in (redeem an invite for them,
//! make an invite they use, pair a device) at the same time as its member
//! revokes it from another device. Each change alone is valid where it was
//! made, and a device that took in the admission before the revocation
//! would let the accomplice in. So once a revocation is known, every
//! admission *on the revoked device's authority* that the revocation does
//! not build on is void, wherever it arrived first:
//!
//! - an admission's *authority* is the device that wrote the record (a
//!   member's record, a device record), or, for a device that let itself
//!   in with an invite, the device that made the invite;
//! - an admission the revocation's change has in its history stands (the
//!   member saw it and revoked anyway: it was theirs);
//! - anyone and any device let in on the authority of a void admission's
//!   devices is void too, whenever: they were never rightly in.
//!
//! A void member is out with all their devices, and a void device is out;
//! each starts a new epoch, so the circle moves to a key they never get.
//! What they wrote meanwhile stays, as for any departed device, but a
//! void member's proposal or consent to remove someone counts for nothing.
//!
//! Whether one change is in another's history is Automerge's own record
//! (every change names the hashes it builds on), so every device holding
//! the same changes reaches the same answer. The answer never changes for
//! two given changes, so it is kept for the process (bounded), and one
//! walk back from a revocation answers for every admission it is asked of.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, OnceLock, PoisonError};

use automerge::{Automerge, ChangeHash, ObjId, ROOT};

use crate::doc::maps;
use crate::ids::{DeviceId, MemberId};
use crate::schema;
use crate::view::CircleView;
pub use crate::view::LetIn;

/// The device on whose authority `what` came in: the device that wrote its
/// record, or, where the device let itself in with an invite (it wrote its
/// own record), the device that made that invite. `None` for the founder
/// and for records that do not say who wrote them.
pub(crate) fn authority(view: &CircleView, what: LetIn) -> Option<DeviceId> {
    let (own_device, by) = match what {
        LetIn::Member(m) => {
            let rec = view.members.get(&m)?;
            let by = rec.by_device?;
            (rec.devices.contains_key(&by), by)
        }
        LetIn::Device(m, d) => {
            let by = view.members.get(&m)?.devices.get(&d)?.by_device?;
            (by == d, by)
        }
    };
    if !own_device {
        return Some(by);
    }
    view.invites
        .values()
        .filter(|inv| inv.redeemed.contains_key(&by))
        .find_map(|inv| inv.by_device)
}

/// Every admission the view holds.
fn admissions(view: &CircleView) -> impl Iterator<Item = LetIn> + '_ {
    view.members.iter().flat_map(|(m, rec)| {
        std::iter::once(LetIn::Member(*m)).chain(rec.devices.keys().map(|d| LetIn::Device(*m, *d)))
    })
}

/// People and devices void under the rule (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Void {
    /// Members whose admission is void.
    pub(crate) members: BTreeSet<MemberId>,
    /// Devices whose admission is void, those of void members included.
    pub(crate) devices: BTreeSet<DeviceId>,
}

impl Void {
    /// What is void in `view`, where `revoked` are the devices validly
    /// revoked.
    pub(crate) fn find(view: &CircleView, revoked: &BTreeSet<DeviceId>) -> Self {
        let mut out = Void::default();
        let unaware = |authority: DeviceId, what: LetIn| {
            revoked.contains(&authority)
                && view
                    .members
                    .values()
                    .filter_map(|m| m.devices.get(&authority)?.revoked.as_ref())
                    .any(|r| r.unaware_of.contains(&what))
        };
        let any = revoked.iter().any(|d| {
            view.members
                .values()
                .filter_map(|m| m.devices.get(d)?.revoked.as_ref())
                .any(|r| !r.unaware_of.is_empty())
        });
        if !any {
            return out;
        }
        loop {
            let mut changed = false;
            for what in admissions(view) {
                let (member, device) = match what {
                    LetIn::Member(m) => (Some(m), None),
                    LetIn::Device(_, d) => (None, Some(d)),
                };
                if member.is_some_and(|m| out.members.contains(&m))
                    || device.is_some_and(|d| out.devices.contains(&d))
                {
                    continue;
                }
                let Some(by) = authority(view, what) else {
                    continue;
                };
                if !(out.devices.contains(&by) || unaware(by, what)) {
                    continue;
                }
                changed = true;
                if let Some(m) = member {
                    out.members.insert(m);
                    out.devices.extend(
                        view.members
                            .get(&m)
                            .into_iter()
                            .flat_map(|r| r.devices.keys()),
                    );
                }
                out.devices.extend(device);
            }
            if !changed {
                return out;
            }
        }
    }
}

/// Fills in each revocation's `unaware_of` in a view just read from `doc`:
/// the admissions on the revoked device's authority that a revocation of
/// it does not have in its history.
pub(crate) fn note_unaware(view: &mut CircleView, doc: &Automerge) {
    let revoked: Vec<(MemberId, DeviceId)> = view
        .members
        .iter()
        .flat_map(|(m, rec)| {
            rec.devices
                .iter()
                .filter(|(_, d)| d.revoked.is_some())
                .map(move |(d, _)| (*m, *d))
        })
        .collect();
    if revoked.is_empty() {
        return;
    }
    let Some(members) = maps(doc, &ROOT, schema::MEMBERS).into_iter().next() else {
        return;
    };
    for (owner, device) in revoked {
        let let_in: Vec<LetIn> = admissions(view)
            .filter(|what| authority(view, *what) == Some(device))
            .collect();
        if let_in.is_empty() {
            continue;
        }
        // Revocations written by another device of the same member (the
        // only ones that count); several, where they were written at once.
        let owners_devices = &view.members[&owner].devices;
        let revocations: Vec<ChangeHash> = records(doc, &members, LetIn::Device(owner, device))
            .iter()
            .flat_map(|d| maps(doc, d, "revoked"))
            .filter(|r| match r {
                ObjId::Id(_, actor, _) => crate::actors::device_of(actor)
                    .is_some_and(|(by, _)| by != device && owners_devices.contains_key(&by)),
                ObjId::Root => false,
            })
            .filter_map(|r| doc.hash_for_opid(&r))
            .collect();
        let made: Vec<(LetIn, Vec<ChangeHash>)> = let_in
            .into_iter()
            .map(|what| {
                let hashes = records(doc, &members, what)
                    .iter()
                    .filter_map(|o| doc.hash_for_opid(o))
                    .collect();
                (what, hashes)
            })
            .collect();
        let all: Vec<ChangeHash> = made.iter().flat_map(|(_, h)| h.iter().copied()).collect();
        // One walk back from each revocation answers for every admission.
        let seen_by: Vec<HashSet<ChangeHash>> = revocations
            .iter()
            .map(|r| known_of(doc, *r, &all))
            .collect();
        let unaware: BTreeSet<LetIn> = made
            .into_iter()
            .filter(|(_, hashes)| {
                !hashes.is_empty()
                    && seen_by
                        .iter()
                        .any(|seen| hashes.iter().all(|h| !seen.contains(h)))
            })
            .map(|(what, _)| what)
            .collect();
        if let Some(r) = view
            .members
            .get_mut(&owner)
            .and_then(|m| m.devices.get_mut(&device))
            .and_then(|d| d.revoked.as_mut())
        {
            r.unaware_of = unaware;
        }
    }
}

/// The record objects of an admission (more than one where concurrent
/// edits made it twice).
fn records(doc: &Automerge, members: &ObjId, what: LetIn) -> Vec<ObjId> {
    match what {
        LetIn::Member(m) => maps(doc, members, &m.to_string()),
        LetIn::Device(m, d) => maps(doc, members, &m.to_string())
            .iter()
            .flat_map(|rec| maps(doc, rec, schema::DEVICES))
            .flat_map(|devices| maps(doc, &devices, &d.to_string()))
            .collect(),
    }
}

/// Which of `candidates` change `of` has in its history (or is).
///
/// One walk back from `of` answers for all of them, never past a change
/// whose operations all come before the oldest candidate's: Automerge
/// numbers operations so that a change's come after every operation it
/// builds on, so no candidate can be behind it. Answers are kept.
pub(crate) fn known_of(
    doc: &Automerge,
    of: ChangeHash,
    candidates: &[ChangeHash],
) -> HashSet<ChangeHash> {
    let mut found = HashSet::new();
    let mut asked: HashSet<ChangeHash> = HashSet::new();
    {
        let kept = known().lock().unwrap_or_else(PoisonError::into_inner);
        for c in candidates {
            match kept.get(&(of, *c)) {
                Some(true) => {
                    found.insert(*c);
                }
                Some(false) => {}
                None if *c == of => {
                    found.insert(*c);
                }
                None => {
                    asked.insert(*c);
                }
            }
        }
    }
    let oldest = asked
        .iter()
        .filter_map(|c| Some(doc.get_change_meta_by_hash(c)?.start_op))
        .min();
    let Some(oldest) = oldest else {
        return found;
    };
    let mut reached = HashSet::new();
    let mut seen = HashSet::new();
    let mut stack = vec![of];
    while let Some(h) = stack.pop() {
        if !seen.insert(h) {
            continue;
        }
        if asked.contains(&h) {
            reached.insert(h);
        }
        let Some(meta) = doc.get_change_meta_by_hash(&h) else {
            continue;
        };
        if meta.start_op <= oldest {
            continue;
        }
        stack.extend(meta.deps.iter().copied());
    }
    let mut kept = known().lock().unwrap_or_else(PoisonError::into_inner);
    if kept.len() + asked.len() > MAX_KNOWN {
        kept.clear();
    }
    for c in asked {
        kept.insert((of, c), reached.contains(&c));
    }
    found.extend(reached);
    found
}

/// Answers kept at most; past this the memory starts again.
const MAX_KNOWN: usize = 4_096;

fn known() -> &'static Mutex<HashMap<(ChangeHash, ChangeHash), bool>> {
    static KNOWN: OnceLock<Mutex<HashMap<(ChangeHash, ChangeHash), bool>>> = OnceLock::new();
    KNOWN.get_or_init(Default::default)
}
