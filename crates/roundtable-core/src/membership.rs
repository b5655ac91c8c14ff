//! Who is in the circle now: members, removal by consent, revoked devices,
//! and the epoch they add up to.
//!
//! Everything here is a pure function of the document, so every device that
//! holds the same changes reaches the same answer, whatever order they
//! arrived in.
//!
//! **Removal by consent; nobody owns the table.** Any member may propose to
//! remove another. The proposal records its *electorate*: the members other
//! than the one concerned, as the proposer saw the circle. It carries when
//! a majority of the electorate consents, and never with fewer than two
//! people: `needed = max(2, ⌊n/2⌋ + 1)`. The proposer's consent is implied.
//! So in a circle of two nobody can be removed, and no single member can
//! ever remove anyone. A consent counts only when written by a device of
//! the member it names, and only for members of the electorate. The
//! proposer may withdraw a proposal that has not carried; a consent
//! written concurrently with a withdrawal that completes the count still
//! carries it, so a removal, once carried anywhere, stays carried
//! everywhere.
//!
//! Every rule here only ever adds: more changes can carry a proposal or
//! revoke a device, never undo either, so devices that have seen more never
//! disagree with the past of devices that have seen less. The records they
//! rest on only grow, and a proposal's electorate is exactly the other
//! members its proposer's copy held: a change that breaks either is refused
//! on arrival (see [`crate::shape`]).
//!
//! **Revoked devices.** Another device of the same member may revoke a
//! device (a lost phone). Two devices revoking each other at once are both
//! revoked: the rule never depends on which news arrived first.
//!
//! **Leaving.** A member may leave of their own accord (only their own
//! device writes it, and nobody undoes it): they are out, their devices
//! with them. A proposal about someone who left counts for nothing.
//!
//! **Coming back: stints.** A member's time in the circle is a run of
//! *stints*, numbered from 0. A stint ends when they leave (`left` for
//! stint 0, `leaves/<s>` after) or when a removal proposal *about that
//! stint* carries; leaving wins over a removal of the same stint. The
//! next stint begins when someone who left redeems a member's ticket
//! (the redeeming device records `returns/<s>` in the same change), or
//! when a *welcome* proposal about the removed stint carries, by the same
//! consent a removal needs. Every record is keyed by the stint it is
//! about, so a removal proposed before someone came back never carries
//! against their next stint, and devices that saw the stints in any order
//! agree. Their old devices come back with them (see `walk_stints`).
//!
//! **Recovery.** Someone who lost every device is vouched for by the
//! others, by the rule a removal carries by, and once their own devices
//! have had a wait to refuse it, a new device on a new member key is
//! theirs and the devices of their old key depart (see `recovery`).
//!
//! **Epochs.** Each carried removal, each revocation, each leaving, each
//! return, each recovery carried through (and each of those refused
//! after) and each admission void under "removal wins" starts a new
//! epoch: `epoch = stints ended (carried removals + leavings) + stints
//! begun again (returns) + recoveries carried through + those refused
//! after + revoked devices + void members + void devices of members still
//! in`. The circle key, and the
//! gossip topic derived from it, belong to an epoch (see [`crate::keys`]).
//!
//! **Invites used at once.** Two devices may let people in with the same
//! invite at the same time, and so may joiners who let themselves in on
//! copies of their own (see [`crate::invite`]), or one of each. Only its
//! first `uses` redemptions count, in causal order (then by device id),
//! whoever wrote them; someone who came in only beyond that is not in, and
//! every device ends up agreeing on who that is. A self-redemption is
//! refused on arrival when its own history holds the invite used up or
//! revoked; one made beside others is judged here like any redemption.
//!
//! **Devices per member.** A member has at most [`MAX_ACTIVE_DEVICES`]
//! devices not revoked, and at most [`MAX_DEVICE_RECORDS`] device records
//! ever, revoked ones included: a change that takes a member past either,
//! as its own history holds them, is refused on arrival (see
//! [`crate::shape`]), and a device refuses to pair past them. Pairings made
//! at once on several devices may still merge past the active bound; the
//! record bound holds whatever merges: of a member's records, the first
//! [`MAX_DEVICE_RECORDS`] count, in causal order (then by device id), and a
//! device beyond them has departed, for good (records only grow, so a
//! device once beyond stays beyond). So no member's devices can make every
//! copy of the circle large or slow.
//!
//! **Removal wins.** What a revoked device let in beside its revocation
//! (people, devices, anyone who came in with an invite it made) on changes
//! the revocation does not build on is void once the revocation is known,
//! with whatever they let in in turn: they are out, each starting a new
//! epoch, and their word counts in no proposal (see `removal_wins`). This
//! is the one place where more news can take someone out who was in
//! without a new record about them: they were never rightly in.
//!
//! **Departed devices.** A revoked device, every device of a removed
//! member, and a device beyond its member's records bound has *departed*. Its changes made before it departed (by causal
//! order: the change does not build on its departure) stay part of the
//! circle, so devices that took them in while the news travelled agree with
//! those that did not; changes that build on its departure are refused
//! (see [`crate::authorship`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{DeviceId, EntityId, MemberId};
use crate::schema;
use crate::time::Timestamp;
use crate::view::{CircleView, InviteKind, RemovalRecord, Returned};

mod proposals;
mod recovery;
pub(crate) mod removal_wins;
mod words;
pub use proposals::{REMOVAL_RULE, WELCOME_RULE, cannot_pass, needed};
pub use recovery::{
    MAX_RECOVERY_WAIT_HOURS, MIN_RECOVERY_WAIT_HOURS, RECOVERY_RULE, RECOVERY_WAIT_HOURS, Recovery,
    wait_words,
};
pub use removal_wins::LetIn;
use removal_wins::Void;
pub(crate) use removal_wins::known_of;

pub use crate::view::ProposalKind;

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProposalState {
    /// Waiting for consents.
    Open,
    /// Enough consents: the member is removed.
    Carried,
    /// The proposer took it back.
    Withdrawn,
    /// It does not count (its electorate left someone out, or the member
    /// concerned had already left).
    Void,
    /// A recovery one of the member's own devices refused: whoever asked
    /// was not them, or they found their device again.
    Refused,
}

impl ProposalState {
    /// The word printed.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProposalState::Open => "open",
            ProposalState::Carried => "carried",
            ProposalState::Withdrawn => "withdrawn",
            ProposalState::Void => "void",
            ProposalState::Refused => "refused",
        }
    }
}

/// A proposal as the rules read it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Proposal {
    /// Its id.
    pub id: EntityId,
    /// To remove them, or to welcome them back.
    pub kind: ProposalKind,
    /// Whom it would remove (or welcome back).
    pub target: MemberId,
    /// Which of their stints in the circle it is about (0 for the first).
    pub stint: u64,
    /// Who proposed it.
    pub by: MemberId,
    /// In the proposer's words.
    pub reason: String,
    /// When (display only).
    pub at: Timestamp,
    /// Members whose consent counts.
    pub electorate: BTreeSet<MemberId>,
    /// Members who consented (the proposer included).
    pub consents: BTreeSet<MemberId>,
    /// How many consents it takes.
    pub needed: usize,
    /// Where it stands.
    pub state: ProposalState,
    /// For a recovery: the new device and key, the wait, and where it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
}

/// The circle's membership as the document says it is now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// The current epoch.
    pub epoch: u64,
    /// Members who are in the circle (not removed).
    pub members: BTreeSet<MemberId>,
    /// Members removed by consent, and not welcomed back since.
    pub removed: BTreeSet<MemberId>,
    /// Members who left of their own accord, and have not come back.
    pub left: BTreeSet<MemberId>,
    /// Devices that may connect and write: certified devices of current
    /// members, not revoked.
    pub admitted: BTreeSet<DeviceId>,
    /// Devices revoked by their member.
    pub revoked: BTreeSet<DeviceId>,
    /// Every device certified by its member, whether still in or departed.
    pub certified: BTreeSet<DeviceId>,
    /// Devices that departed: revoked, or of a removed member.
    pub departed: BTreeSet<DeviceId>,
    /// Every proposal, by id.
    pub proposals: BTreeMap<EntityId, Proposal>,
    /// Each time someone who was out came back, by member, in order.
    pub returns: BTreeMap<MemberId, Vec<Return>>,
    /// The stint each member who came back is in (see
    /// [`Membership::stint_of`]); absent for a first stint.
    pub stints: BTreeMap<MemberId, u64>,
    /// The member key each member whose circle recovered them holds now
    /// (see [`Membership::key_of`]); absent for the key they joined with.
    pub keys: BTreeMap<MemberId, MemberId>,
    /// Members a recovery was carried through for, even one refused
    /// after: their devices' changes are judged one by one.
    pub recovered: BTreeSet<MemberId>,
}

/// "Welcomed back by Sam": someone who was out came back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Return {
    /// The stint it started (1 for the first time back).
    pub stint: u64,
    /// Who welcomed them back: the member whose device took their ticket,
    /// or the members who consented.
    pub by: BTreeSet<MemberId>,
    /// The welcome that carried, when it was by consent.
    pub proposal: Option<EntityId>,
    /// When (display only): the ticket taken, or the last consent.
    pub at: Timestamp,
}

impl Membership {
    /// Reads the membership out of a document.
    pub fn read(doc: &automerge::Automerge) -> Self {
        Self::from_view(&CircleView::read_membership(doc))
    }

    /// Works the membership out of a view, rule by rule (see the module
    /// docs): the devices each member may have, revocations, removal wins,
    /// invites used at once, leaving, proposals, and who is in after all.
    pub fn from_view(view: &CircleView) -> Self {
        let mut out = Membership::default();
        let owners: BTreeMap<DeviceId, MemberId> = view
            .members
            .iter()
            .flat_map(|(m, mm)| mm.devices.keys().map(move |d| (*d, *m)))
            .collect();
        out.certified = owners.keys().copied().collect();
        let beyond_bound = beyond_records_bound(view);
        out.departed.extend(beyond_bound.iter().copied());
        out.count_revocations(view, &owners);

        // Removal wins: what a revoked device let in beside its revocation
        // is void, and so is whatever that let in (see `removal_wins`).
        let void = Void::find(view, &out.revoked);
        out.epoch += void.members.len() as u64;
        out.epoch += void
            .devices
            .iter()
            .filter(|d| owners.get(d).is_none_or(|m| !void.members.contains(m)))
            .count() as u64;
        out.departed.extend(void.devices.iter().copied());

        let turned_away = TurnedAway::find(view);
        for m in &turned_away.members {
            if let Some(mm) = view.members.get(m) {
                out.departed.extend(mm.devices.keys().copied());
            }
        }
        out.departed.extend(turned_away.devices.iter().copied());

        out.walk_stints(view, &owners, &void.members, &turned_away);
        for member in out.left.iter().chain(&out.removed) {
            if let Some(m) = view.members.get(member) {
                out.departed.extend(m.devices.keys().copied());
            }
        }
        // A recovery carried through lets go the devices its member's
        // earlier key certified.
        out.judge_recoveries(view, &owners);
        for (member, m) in &view.members {
            let key = out.key_of(*member);
            out.departed.extend(
                m.devices
                    .iter()
                    .filter(|(_, d)| d.key.map_or(*member, MemberId::from_bytes) != key)
                    .map(|(id, _)| *id),
            );
        }

        for (member, m) in &view.members {
            if out.removed.contains(member)
                || out.left.contains(member)
                || turned_away.members.contains(member)
                || void.members.contains(member)
            {
                continue;
            }
            out.members.insert(*member);
            // Revoked, void, turned away, beyond the bound, or certified by
            // a key the member no longer holds: departed, all of them.
            out.admitted.extend(
                m.devices
                    .keys()
                    .filter(|d| !out.departed.contains(d))
                    .copied(),
            );
        }
        out
    }

    /// Revocations: one counts when another device of the same member
    /// wrote it. Two devices revoking each other at once both end up
    /// revoked, so the answer never depends on which arrived first.
    fn count_revocations(&mut self, view: &CircleView, owners: &BTreeMap<DeviceId, MemberId>) {
        for (member, m) in &view.members {
            for (device, d) in &m.devices {
                let valid = d
                    .revoked
                    .as_ref()
                    .and_then(|r| r.by_device)
                    .is_some_and(|by| by != *device && owners.get(&by) == Some(member));
                if valid {
                    self.revoked.insert(*device);
                    self.departed.insert(*device);
                    self.epoch += 1;
                }
            }
        }
    }

    /// Each member's stints, from the first: a stint ends when they leave
    /// (their own word for that stint) or when a removal about that stint
    /// carries, and the next starts when a member's ticket brings them
    /// back or a welcome about the stint that ended carries. Each end and
    /// each start moves the epoch. Proposals are judged by what they are
    /// about: a removal counts for nothing when its stint ended by leaving,
    /// and of those that carried for one stint the first in causal order
    /// counts and those after it do not; so it is with welcomes, and a
    /// ticket that brought someone back makes every welcome for that stint
    /// count for nothing. A proposal about a stint never reached counts for
    /// nothing either.
    fn walk_stints(
        &mut self,
        view: &CircleView,
        owners: &BTreeMap<DeviceId, MemberId>,
        void: &BTreeSet<MemberId>,
        turned_away: &TurnedAway,
    ) {
        let mut records: Vec<(&EntityId, &RemovalRecord)> = view.removals.iter().collect();
        records.sort_by_key(|(id, r)| (r.order, **id));
        let mut about: BTreeMap<(MemberId, ProposalKind, u64), Vec<EntityId>> = BTreeMap::new();
        for (id, r) in records {
            let p = tally(view, owners, void, *id, r);
            // A recovery ends no stint and begins none (see `recovery`).
            if p.kind != ProposalKind::Recover {
                about
                    .entry((p.target, p.kind, p.stint))
                    .or_default()
                    .push(*id);
            }
            self.proposals.insert(*id, p);
        }
        for (member, m) in &view.members {
            // Someone never rightly in cannot leave; a removal still counts.
            let may_leave = !turned_away.members.contains(member) && !void.contains(member);
            let mut stint = 0;
            loop {
                let left = if stint == 0 {
                    m.left.is_some()
                } else {
                    m.leaves.contains_key(&stint)
                };
                let left = left && may_leave;
                let removals = about.remove(&(*member, ProposalKind::Remove, stint));
                let removed = self.first_carried(removals.unwrap_or_default(), left);
                if !left && removed.is_none() {
                    break;
                }
                self.epoch += 1;
                let welcomes = about.remove(&(*member, ProposalKind::Welcome, stint));
                let next = stint + 1;
                let by_ticket = m
                    .returns
                    .get(&next)
                    .and_then(|r| ticket_return(view, turned_away, *member, next, r));
                let welcomed =
                    self.first_carried(welcomes.unwrap_or_default(), by_ticket.is_some());
                let back = by_ticket.or_else(|| {
                    let p = &self.proposals[&welcomed?];
                    Some(Return {
                        stint: next,
                        by: p.consents.clone(),
                        proposal: Some(p.id),
                        at: last_consent(view, p),
                    })
                });
                let Some(back) = back else {
                    if left {
                        self.left.insert(*member);
                    } else {
                        self.removed.insert(*member);
                    }
                    break;
                };
                self.epoch += 1;
                self.returns.entry(*member).or_default().push(back);
                stint = next;
            }
            if stint > 0 {
                self.stints.insert(*member, stint);
            }
        }
        // What is left is about a stint never reached (or an ill-formed one).
        for ids in about.into_values() {
            for id in ids {
                if let Some(p) = self.proposals.get_mut(&id) {
                    p.state = ProposalState::Void;
                }
            }
        }
    }

    /// Of proposals about one stint, in causal order: the first that
    /// carried, unless `moot` (its stint ended, or began, another way),
    /// when none counts. Those after it count for nothing.
    fn first_carried(&mut self, ids: Vec<EntityId>, moot: bool) -> Option<EntityId> {
        let mut first = None;
        for id in ids {
            let Some(p) = self.proposals.get_mut(&id) else {
                continue;
            };
            if moot || first.is_some() {
                p.state = ProposalState::Void;
            } else if p.state == ProposalState::Carried {
                first = Some(id);
            }
        }
        first
    }

    /// The stint `member` is in: 0 for the first, one more each time they
    /// came back.
    pub fn stint_of(&self, member: MemberId) -> u64 {
        self.stints.get(&member).copied().unwrap_or(0)
    }

    /// Whether `member` is in the circle now.
    pub fn is_member(&self, member: MemberId) -> bool {
        self.members.contains(&member)
    }

    /// The member key whose certificates make `member`'s devices now: the
    /// one they joined with (their id), or the one the last recovery
    /// carried through gave them.
    pub fn key_of(&self, member: MemberId) -> MemberId {
        self.keys.get(&member).copied().unwrap_or(member)
    }

    /// The member who holds `key` now: the member whose id it is, unless
    /// a recovery gave them another since, or the member a recovery gave
    /// it to.
    pub fn member_by_key(&self, key: MemberId) -> Option<MemberId> {
        let known = |m: &MemberId| {
            self.members.contains(m) || self.removed.contains(m) || self.left.contains(m)
        };
        self.keys
            .iter()
            .find(|(_, k)| **k == key)
            .map(|(m, _)| *m)
            .or_else(|| (known(&key) && !self.keys.contains_key(&key)).then_some(key))
    }

    /// The member a device holding member key `key` acts as: whom a
    /// recovery gave that key, else the member whose id it is.
    pub fn acting_as(&self, key: MemberId) -> MemberId {
        self.member_by_key(key).unwrap_or(key)
    }
}

/// The changes that wrote a record that may take `member` out or bring
/// them back, or take `device` out: their leavings and returns, the
/// proposals about them with their consents, withdrawals, refusals and
/// completions, and the device's revocation. Whether a change of the device was made while it
/// was admitted depends only on which of these it builds on (see
/// [`crate::authorship`]).
pub(crate) fn turns_of(
    doc: &automerge::Automerge,
    member: MemberId,
    device: DeviceId,
) -> Vec<automerge::ChangeHash> {
    use crate::doc::{children, maps};
    use automerge::{ROOT, ReadDoc};
    let mut objs = Vec::new();
    for members in maps(doc, &ROOT, schema::MEMBERS) {
        for rec in maps(doc, &members, &member.to_string()) {
            objs.extend(maps(doc, &rec, "left"));
            for name in [schema::LEAVES, schema::RETURNS] {
                for by_stint in maps(doc, &rec, name) {
                    objs.extend(children(doc, &by_stint));
                }
            }
            for devices in maps(doc, &rec, schema::DEVICES) {
                for d in maps(doc, &devices, &device.to_string()) {
                    objs.extend(maps(doc, &d, "revoked"));
                }
            }
        }
    }
    let target = member.to_string();
    for removals in maps(doc, &ROOT, schema::REMOVALS) {
        for p in children(doc, &removals) {
            let about = doc
                .get(&p, "target")
                .ok()
                .flatten()
                .is_some_and(|(v, _)| v.as_str() == Some(target.as_str()));
            if !about {
                continue;
            }
            objs.extend(maps(doc, &p, "withdrawn"));
            objs.extend(maps(doc, &p, "completed"));
            for name in ["consents", "refused"] {
                for said in maps(doc, &p, name) {
                    objs.extend(children(doc, &said));
                }
            }
            objs.push(p);
        }
    }
    objs.iter().filter_map(|o| doc.hash_for_opid(o)).collect()
}

/// Devices per member: of records merged past the bound, the first count
/// in causal order (then by device id); the rest departed, for good.
fn beyond_records_bound(view: &CircleView) -> BTreeSet<DeviceId> {
    let mut beyond = BTreeSet::new();
    for m in view.members.values() {
        if m.devices.len() <= MAX_DEVICE_RECORDS {
            continue;
        }
        let mut records: Vec<(u64, DeviceId)> =
            m.devices.iter().map(|(d, dd)| (dd.order, *d)).collect();
        records.sort();
        beyond.extend(records.into_iter().skip(MAX_DEVICE_RECORDS).map(|(_, d)| d));
    }
    beyond
}

/// Who came in only beyond an invite's uses.
#[derive(Debug, Default)]
struct TurnedAway {
    members: BTreeSet<MemberId>,
    devices: BTreeSet<DeviceId>,
    /// Redemptions among their invite's uses: (invite, member).
    counted: BTreeSet<(EntityId, MemberId)>,
}

impl TurnedAway {
    /// Invites: two devices may let people in with the same invite at once.
    /// Only its first `uses` redemptions count, in causal order then by
    /// device id; whoever came in only beyond that is not in (what they
    /// wrote meanwhile stays, as for a departed device).
    fn find(view: &CircleView) -> Self {
        let mut counted = BTreeSet::new();
        let mut beyond = BTreeSet::new();
        let mut out = TurnedAway::default();
        for (id, inv) in &view.invites {
            let mut all: Vec<(u64, DeviceId, MemberId)> = inv
                .redeemed
                .iter()
                .map(|(d, r)| (r.order, *d, r.member))
                .collect();
            all.sort();
            for (i, (_, device, member)) in all.into_iter().enumerate() {
                let entry = (device, member, inv.kind);
                if i < inv.uses as usize {
                    counted.insert(entry);
                    out.counted.insert((*id, member));
                } else {
                    beyond.insert(entry);
                }
            }
        }
        for (device, member, kind) in &beyond {
            let also_counted = |k: InviteKind| {
                counted.iter().any(|(d, m, kk)| {
                    *kk == k && (*d == *device || (k == InviteKind::Member && m == member))
                })
            };
            // The founder came in by founding the circle, not by a ticket.
            let founder = view
                .members
                .get(member)
                .is_some_and(|m| m.invited_by.is_none());
            if *kind == InviteKind::Member && !also_counted(InviteKind::Member) && !founder {
                out.members.insert(*member);
            }
            if !counted.iter().any(|(d, _, _)| d == device) {
                out.devices.insert(*device);
            }
        }
        out
    }
}

/// The most devices a member may have that are not revoked.
pub const MAX_ACTIVE_DEVICES: usize = 8;
/// The most device records a member may ever have, revoked ones included.
pub const MAX_DEVICE_RECORDS: usize = 32;

/// A proposal as its record and its consents stand: void when ill-formed,
/// carried when enough consented; what its stint makes of it is
/// [`Membership::walk_stints`]'s to say.
fn tally(
    view: &CircleView,
    device_owner: &BTreeMap<DeviceId, MemberId>,
    void: &BTreeSet<MemberId>,
    id: EntityId,
    r: &RemovalRecord,
) -> Proposal {
    let electorate: BTreeSet<MemberId> = r
        .electorate
        .iter()
        .filter(|(_, v)| **v)
        .map(|(m, _)| *m)
        .collect();
    let by_device_ok = r
        .by_device
        .is_some_and(|d| device_owner.get(&d) == Some(&r.by))
        && !void.contains(&r.by);
    let well_formed = by_device_ok
        && r.by != r.target
        && electorate.contains(&r.by)
        && !electorate.contains(&r.target)
        && electorate.iter().all(|m| view.members.contains_key(m))
        && view.members.contains_key(&r.target);
    let mut consents = BTreeSet::new();
    if by_device_ok {
        consents.insert(r.by);
    }
    for (device, c) in &r.consents {
        if c.by_device == Some(*device)
            && device_owner.get(device) == Some(&c.member)
            && electorate.contains(&c.member)
            && !void.contains(&c.member)
        {
            consents.insert(c.member);
        }
    }
    let withdrawn = r
        .withdrawn
        .as_ref()
        .and_then(|w| w.by_device)
        .is_some_and(|d| device_owner.get(&d) == Some(&r.by));
    let well_formed = well_formed && (r.kind != ProposalKind::Recover || recovery::well_formed(r));
    let needed = needed(electorate.len());
    let state = if !well_formed {
        ProposalState::Void
    } else if consents.len() >= needed {
        ProposalState::Carried
    } else if withdrawn {
        ProposalState::Withdrawn
    } else {
        ProposalState::Open
    };
    Proposal {
        id,
        kind: r.kind,
        target: r.target,
        stint: r.stint,
        by: r.by,
        reason: r.reason.clone(),
        at: r.at,
        electorate,
        consents,
        needed,
        state,
        recovery: None,
    }
}

/// A return by ticket, when it counts: the ticket's invite is a member's,
/// and a redemption of it for `member` is among its uses.
fn ticket_return(
    view: &CircleView,
    turned_away: &TurnedAway,
    member: MemberId,
    stint: u64,
    r: &Returned,
) -> Option<Return> {
    let inv = view.invites.get(&r.invite)?;
    if inv.kind != InviteKind::Member || !turned_away.counted.contains(&(r.invite, member)) {
        return None;
    }
    Some(Return {
        stint,
        by: BTreeSet::from([inv.by]),
        proposal: None,
        at: r.at,
    })
}

/// When a proposal carried, for display: the time of the last consent it
/// counted (the proposer's is the proposal's own).
fn last_consent(view: &CircleView, p: &Proposal) -> Timestamp {
    let record = view.removals.get(&p.id);
    p.consents
        .iter()
        .filter_map(|m| {
            if *m == p.by {
                return Some(p.at);
            }
            record?
                .consents
                .values()
                .filter(|c| c.member == *m)
                .map(|c| c.at)
                .min()
        })
        .max()
        .unwrap_or(p.at)
}
