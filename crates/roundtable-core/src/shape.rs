//! What a change may do to the records membership rests on.
//!
//! Automerge lets any writer put, overwrite or delete anything. For most of a
//! circle that is what people want (anyone may fix a typo in a gathering's
//! place). For the records that decide who is in, it is not: a member could
//! delete someone's consent, overwrite a device's certificate, un-revoke a
//! device or shrink a proposal's electorate. So a received change is refused
//! (see [`crate::authorship`]) when it:
//!
//! - writes at the document's root (only the circle's first change does);
//! - overwrites or deletes anything in the members collection, a member's
//!   devices, a device record, an invite's redemptions, or the removals
//!   collection and everything in it (these records only ever grow);
//! - writes into a member's record (their profile, devices, changes of
//!   name, stepping back, leaving) from a device that is not theirs,
//!   undoes a leaving, or changes what another member wrote (a check-in,
//!   moment, ask or offer, reply, commitment, dish or RSVP: only its
//!   author's devices edit or withdraw it);
//!   (A device record another member's device adds is theirs to write
//!   when the same change records that device redeeming an invite: a
//!   member's ticket bringing in a new device of someone already in.)
//! - writes a member's stints other than one new record at a time, keyed
//!   by the stint it is about as the change's own history holds it: a
//!   leaving (`leaves/<s>`, their own device, while in, for a stint after
//!   the first) or a return (`returns/<s>`, by any member's device, for
//!   someone who left, in the same change as the redemption that names
//!   them); both only grow;
//! - replaces a member's devices map, writes a device record other than to
//!   revoke it from another device (or, the device itself, to name it), or
//!   writes a proposal other than to withdraw it;
//! - writes a consent, or a refusal of a recovery, for another device
//!   than its own;
//! - carries a recovery through other than once, by a device of a member
//!   who could vouch for it, where its own history holds it vouched for
//!   and refused by nobody, at a time past its wait, adding in the same
//!   change the new device to its member's record, certified by the new
//!   key (the one device record someone else's device may add but for a
//!   redemption);
//! - makes a proposal whose electorate is not exactly the members, other
//!   than the one concerned, that the change's own history holds, or that
//!   is not about the stint its history holds: a removal of someone in,
//!   in the stint they are in; a welcome of someone removed, about the
//!   stint the removal ended; a recovery of someone in, naming a key
//!   nobody in the circle holds or held and a device new to it;
//! - overwrites or deletes an invite, or changes one in any way but to
//!   revoke it, or does so from a device not of the member who made it
//!   (so nobody can un-revoke, extend or re-key someone else's invite);
//! - adds a device record that leaves its member, in the circle as the
//!   change's own history holds it, with more than
//!   [`MAX_DEVICE_RECORDS`] device records or more than
//!   [`MAX_ACTIVE_DEVICES`] devices not revoked (so a member cannot certify
//!   thousands of devices into everyone's copy);
//! - replaces or deletes the circle's stewards collection
//!   (`circle.stewards`), makes a second one where its history holds one,
//!   or overwrites or deletes a steward record in it (records only ever
//!   grow);
//! - adds a steward record that does not read as one, or in another name
//!   than its writer's member (`by`), or that leaves the circle, as the
//!   change's own history holds it, with more than [`MAX_STEWARDS`]
//!   stewards in use or [`MAX_STEWARD_RECORDS`] records;
//! - writes into a steward record other than to remove it: `removed_by`
//!   (the writer's own member) with `removed_at`, once, where the change's
//!   history holds no removal of it. So who added a steward, its ticket and
//!   who stopped the circle using it stay as written, and a removal is
//!   never undone.
//!
//! The first change of a circle, and objects a change creates itself, are
//! free: the rules guard what others made. (A device letting itself in with
//! an invite is held to far less: its change may write only its redemption
//! and its own record, see [`crate::invite`].)
//!
//! Every change, the first included, also keeps to the sizes a local edit
//! keeps to ([`too_large`]): no text longer than its field allows, no more
//! operations than an edit makes, so a member cannot bloat everyone's copy.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use automerge::legacy::{Key, ObjectId, OpId, OpType};
use automerge::{ActorId, Automerge, Change, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};

use crate::actors::device_of;
use crate::doc::{children, maps};
use crate::ids::{DeviceId, EntityId, MemberId};
use crate::membership::{MAX_ACTIVE_DEVICES, MAX_DEVICE_RECORDS, Membership, ProposalKind};
use crate::schema::{self, limits};
use crate::steward::records::{
    MAX_STEWARD_RECORDS, MAX_STEWARDS, STEWARDS, count_stewards, record_of,
};
use crate::view::CircleView;

mod judge;

/// The guarded objects of a document, by the ids changes name them with.
#[derive(Debug, Default)]
pub(crate) struct Shape {
    members: Option<ObjectId>,
    member_objs: HashSet<ObjectId>,
    /// A member's record and what is in it (devices, stepping back,
    /// leaving): only that member's devices write there.
    member_of: HashMap<ObjectId, Option<MemberId>>,
    devices_maps: HashSet<ObjectId>,
    /// Each device record, and the device it is of.
    device_objs: HashMap<ObjectId, DeviceId>,
    redeemed_maps: HashSet<ObjectId>,
    removals: Option<ObjectId>,
    proposals: HashSet<ObjectId>,
    /// Each proposal's id, and the device a recovery names (hex).
    proposal_ids: HashMap<ObjectId, (EntityId, Option<String>)>,
    consents_maps: HashSet<ObjectId>,
    /// A recovery's refusals, by the refusing device.
    refused_maps: HashSet<ObjectId>,
    invites: Option<ObjectId>,
    /// Each invite, and the member whose device made it (`None` when its
    /// maker is no certified device: nobody may change it).
    invite_objs: HashMap<ObjectId, Option<MemberId>>,
    /// The member of each certified device.
    owner: HashMap<DeviceId, MemberId>,
    /// Each member's returns (`returns`) and leavings after coming back
    /// (`leaves`), by stint: maps, and the member whose they are.
    stint_maps: HashMap<ObjectId, (MemberId, &'static str)>,
    /// Objects nobody writes into once made: electorates, consents,
    /// withdrawals, revocations, redemptions.
    sealed: HashSet<ObjectId>,
    /// The circle record (`circle`): only its stewards collection is
    /// guarded there.
    circle_infos: HashSet<ObjectId>,
    /// Each stewards collection (`circle.stewards`).
    steward_maps: HashSet<ObjectId>,
    /// Each steward record.
    steward_objs: HashSet<ObjectId>,
}

pub(crate) fn legacy(id: &ObjId) -> ObjectId {
    match id {
        ObjId::Root => ObjectId::Root,
        ObjId::Id(ctr, actor, _) => ObjectId::Id(OpId(*ctr, actor.clone())),
    }
}

impl Shape {
    /// The member whose device made changes as `actor` (in any session).
    fn owner_of(&self, actor: &ActorId) -> Option<&MemberId> {
        self.owner.get(&device_of(actor)?.0)
    }

    /// Reads the guarded objects of `doc`, whose membership collections
    /// read as `view`.
    pub(crate) fn read(doc: &Automerge, view: &CircleView) -> Self {
        let mut s = Shape::default();
        for (member, m) in &view.members {
            for device in m.devices.keys() {
                s.owner.insert(*device, *member);
            }
        }
        if let Some(members) = maps(doc, &ROOT, schema::MEMBERS).into_iter().next() {
            for key in doc.keys(&members) {
                let member = key.parse::<MemberId>().ok();
                for m in maps(doc, &members, &key) {
                    let mut owned = vec![legacy(&m)];
                    for devices in maps(doc, &m, schema::DEVICES) {
                        for dkey in doc.keys(&devices) {
                            let device = dkey.parse::<DeviceId>().ok();
                            for d in maps(doc, &devices, &dkey) {
                                s.sealed.extend(maps(doc, &d, "revoked").iter().map(legacy));
                                if let Some(device) = device {
                                    s.device_objs.insert(legacy(&d), device);
                                }
                                owned.push(legacy(&d));
                            }
                        }
                        s.devices_maps.insert(legacy(&devices));
                        owned.push(legacy(&devices));
                    }
                    owned.extend(maps(doc, &m, "away").iter().map(legacy));
                    for renames in maps(doc, &m, schema::RENAMES) {
                        owned.extend(children(doc, &renames).iter().map(legacy));
                        owned.push(legacy(&renames));
                    }
                    s.sealed.extend(maps(doc, &m, "left").iter().map(legacy));
                    for name in [schema::LEAVES, schema::RETURNS] {
                        for by_stint in maps(doc, &m, name) {
                            s.sealed.extend(children(doc, &by_stint).iter().map(legacy));
                            if let Some(member) = member {
                                s.stint_maps.insert(legacy(&by_stint), (member, name));
                            }
                            if name == schema::LEAVES {
                                owned.push(legacy(&by_stint));
                            }
                        }
                    }
                    s.member_objs.insert(legacy(&m));
                    for o in owned {
                        s.member_of.insert(o, member);
                    }
                }
            }
            s.members = Some(legacy(&members));
        }
        if let Some(invites) = maps(doc, &ROOT, schema::INVITES).into_iter().next() {
            for inv in children(doc, &invites) {
                for redeemed in maps(doc, &inv, "redeemed") {
                    s.sealed.extend(children(doc, &redeemed).iter().map(legacy));
                    s.redeemed_maps.insert(legacy(&redeemed));
                }
                let maker = match &inv {
                    ObjId::Id(_, actor, _) => s.owner_of(actor).copied(),
                    ObjId::Root => None,
                };
                s.invite_objs.insert(legacy(&inv), maker);
            }
            s.invites = Some(legacy(&invites));
        }
        if let Some(removals) = maps(doc, &ROOT, schema::REMOVALS).into_iter().next() {
            let proposals = doc
                .keys(&removals)
                .flat_map(|k| {
                    maps(doc, &removals, &k)
                        .into_iter()
                        .map(move |p| (k.clone(), p))
                })
                .collect::<Vec<_>>();
            for (key, p) in proposals {
                for e in maps(doc, &p, "electorate") {
                    s.sealed.insert(legacy(&e));
                }
                for w in maps(doc, &p, "withdrawn")
                    .iter()
                    .chain(&maps(doc, &p, "completed"))
                {
                    s.sealed.insert(legacy(w));
                }
                for c in maps(doc, &p, "consents") {
                    s.sealed.extend(children(doc, &c).iter().map(legacy));
                    s.consents_maps.insert(legacy(&c));
                }
                for r in maps(doc, &p, "refused") {
                    s.sealed.extend(children(doc, &r).iter().map(legacy));
                    s.refused_maps.insert(legacy(&r));
                }
                if let Ok(id) = key.parse::<EntityId>() {
                    let device = match doc.get(&p, "device") {
                        Ok(Some((Value::Scalar(v), _))) => v.as_str().map(str::to_owned),
                        _ => None,
                    };
                    s.proposal_ids.insert(legacy(&p), (id, device));
                }
                s.proposals.insert(legacy(&p));
            }
            s.removals = Some(legacy(&removals));
        }
        for info in maps(doc, &ROOT, schema::CIRCLE) {
            for stewards in maps(doc, &info, STEWARDS) {
                s.steward_objs
                    .extend(children(doc, &stewards).iter().map(legacy));
                s.steward_maps.insert(legacy(&stewards));
            }
            s.circle_infos.insert(legacy(&info));
        }
        s
    }
}

/// The legacy object id as the document names it (the actor's index is
/// looked up when it does not match).
fn obj_id(obj: &ObjectId) -> ObjId {
    match obj {
        ObjectId::Root => ROOT,
        ObjectId::Id(OpId(ctr, actor)) => ObjId::Id(*ctr, actor.clone(), usize::MAX),
    }
}

/// Whether `obj[key]` holds anything in the history `c` builds on.
fn holds_before(doc: &Automerge, c: &Change, obj: &ObjectId, key: &str) -> bool {
    doc.get_all_at(obj_id(obj), key, c.deps())
        .map_or(true, |v| !v.is_empty())
}

/// The key of the steward record `op` adds to a stewards collection, if
/// it adds one: a new map under a record id, replacing nothing.
fn new_steward(op: &automerge::legacy::Op) -> Option<String> {
    let Key::Map(key) = &op.key else {
        return None;
    };
    let adds = matches!(op.action, OpType::Make(ObjType::Map)) && op.pred.is_empty();
    (adds && key.parse::<EntityId>().is_ok()).then(|| key.to_string())
}

/// Whether the steward record `rec`, made by a change of `ops` under
/// `key`, reads as a steward record added in `writer`'s name.
fn steward_as_written(
    rec: &ObjectId,
    key: &str,
    ops: &[automerge::legacy::Op],
    writer: Option<&MemberId>,
) -> bool {
    let Some(writer) = writer else {
        return false;
    };
    let Ok(id) = key.parse::<EntityId>() else {
        return false;
    };
    let mut fields: HashMap<&str, ScalarValue> = HashMap::new();
    for op in ops.iter().filter(|op| op.obj == *rec) {
        let Key::Map(k) = &op.key else {
            return false;
        };
        match &op.action {
            OpType::Put(v) => {
                fields.insert(k.as_str(), v.clone());
            }
            _ => return false,
        }
    }
    record_of(id, |k| fields.get(k).cloned())
        .is_some_and(|r| r.added_by.as_ref() == Some(writer) && r.removed_by.is_none())
}

/// Whether `op`, writing into the existing steward record `rec`, is part
/// of a removal in the writer's own name: `removed_by` (the writer's
/// member) and `removed_at` (a time), both in this change, replacing
/// nothing, where the change's own history holds no removal yet.
fn removes_steward(
    op: &automerge::legacy::Op,
    rec: &ObjectId,
    ops: &[automerge::legacy::Op],
    writer: Option<&MemberId>,
    doc: &Automerge,
    c: &Change,
) -> bool {
    let Some(writer) = writer else {
        return false;
    };
    let Key::Map(key) = &op.key else {
        return false;
    };
    if !op.pred.is_empty() || holds_before(doc, c, rec, "removed_by") {
        return false;
    }
    let names_writer = |op: &automerge::legacy::Op| matches!(&op.action, OpType::Put(ScalarValue::Str(s)) if s.as_str() == writer.to_string());
    let writes = |k: &str| {
        ops.iter()
            .filter(|o| o.obj == *rec && matches!(&o.key, Key::Map(x) if x == k))
            .count()
    };
    // One removal, of both fields, in this change.
    if writes("removed_by") != 1 || writes("removed_at") != 1 {
        return false;
    }
    match key.as_str() {
        "removed_by" => names_writer(op),
        "removed_at" => matches!(op.action, OpType::Put(ScalarValue::Int(_))),
        _ => false,
    }
}

/// Whether the circle as `c` leaves it, its own history only, holds at
/// most [`MAX_STEWARDS`] stewards in use and [`MAX_STEWARD_RECORDS`]
/// records: every device that judges `c` judges it alike.
fn stewards_within_bound(doc: &Automerge, c: &Change) -> bool {
    let count = count_stewards(doc, Some(&[c.hash()]));
    count.in_use <= MAX_STEWARDS && count.records <= MAX_STEWARD_RECORDS
}

impl Shape {
    /// Whether what a change writes at `member`'s leavings or returns
    /// (`name`) by stint is one new record, for the stint it must be as
    /// the change's own history holds it: a leaving for the stint they are
    /// in (after coming back: the first stint ends with `left`); a return
    /// for the stint after the one they left, in a change that records a
    /// redemption of a ticket for them.
    #[allow(clippy::too_many_arguments)]
    fn by_stint_as_written(
        &self,
        member: MemberId,
        name: &str,
        ops: &[automerge::legacy::Op],
        start: u64,
        actor: &ActorId,
        doc: &Automerge,
        c: &Change,
    ) -> bool {
        let Some(record) = self
            .member_of
            .iter()
            .find(|(o, m)| **m == Some(member) && self.member_objs.contains(*o))
            .map(|(o, _)| o.clone())
        else {
            return false;
        };
        let existing: Vec<&ObjectId> = self
            .stint_maps
            .iter()
            .filter(|(_, v)| **v == (member, name))
            .map(|(o, _)| o)
            .collect();
        // The map of records by stint: the one there, or one made here.
        let mut by_stint: Vec<ObjectId> = existing.into_iter().cloned().collect();
        let there = by_stint.len();
        let mut keys = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let Key::Map(key) = &op.key else { continue };
            let fresh = op.pred.is_empty() && matches!(op.action, OpType::Make(ObjType::Map));
            if op.obj == record && key == name {
                if !fresh {
                    return false;
                }
                by_stint.push(ObjectId::Id(OpId(start + i as u64, actor.clone())));
            }
        }
        for op in ops {
            let Key::Map(key) = &op.key else { continue };
            if let Some(at) = by_stint.iter().position(|o| *o == op.obj) {
                let fresh = op.pred.is_empty() && matches!(op.action, OpType::Make(ObjType::Map));
                if !fresh || (at < there && holds_before(doc, c, &op.obj, key)) {
                    return false;
                }
                keys.push(key.as_str());
            }
        }
        let Ok(then) = doc.fork_at(c.deps()) else {
            return false;
        };
        let membership = Membership::read(&then);
        let stint = membership.stint_of(member);
        let expected = if name == schema::LEAVES {
            if !membership.members.contains(&member) || stint == 0 {
                return false;
            }
            stint
        } else {
            let named = self.redemptions_named(ops, start, actor);
            if !membership.left.contains(&member) || !named.contains(&member) {
                return false;
            }
            stint + 1
        };
        keys == [expected.to_string().as_str()]
    }

    /// Whether the change `c` carries the recovery `proposal` through as
    /// it may: in its own history the recovery carried and was neither
    /// refused nor carried through yet, and its writer could vouch; and
    /// in the circle it leaves, the completion counts (its time past the
    /// wait) and the new device is its member's, certified by the new key.
    fn completion_as_written(
        &self,
        proposal: &ObjectId,
        c: &Change,
        doc: &Automerge,
        actor: &ActorId,
    ) -> bool {
        let Some((id, _)) = self.proposal_ids.get(proposal) else {
            return false;
        };
        let Ok(then) = doc.fork_at(c.deps()) else {
            return false;
        };
        let before = Membership::read(&then);
        let Some(p) = before.proposals.get(id) else {
            return false;
        };
        let Some(r) = &p.recovery else {
            return false;
        };
        let may = p.state == crate::membership::ProposalState::Carried
            && r.completed.is_none()
            && r.refused_by.is_empty()
            && self
                .owner_of(actor)
                .is_some_and(|w| p.electorate.contains(w));
        if !may {
            return false;
        }
        let Ok(now) = doc.fork_at(&[c.hash()]) else {
            return false;
        };
        let after = Membership::read(&now);
        after
            .proposals
            .get(id)
            .and_then(|p| p.recovery.as_ref())
            .is_some_and(|r| r.completed.is_some())
            && after.admitted.contains(&r.device)
    }

    /// The members named by the redemptions `ops` record.
    fn redemptions_named(
        &self,
        ops: &[automerge::legacy::Op],
        start: u64,
        actor: &ActorId,
    ) -> BTreeSet<MemberId> {
        let made: HashSet<ObjectId> = ops
            .iter()
            .enumerate()
            .filter(|(_, op)| {
                matches!(op.action, OpType::Make(ObjType::Map))
                    && self.redeemed_maps.contains(&op.obj)
            })
            .map(|(i, _)| ObjectId::Id(OpId(start + i as u64, actor.clone())))
            .collect();
        ops.iter()
            .filter(|op| made.contains(&op.obj) && matches!(&op.key, Key::Map(k) if k == "member"))
            .filter_map(|op| match &op.action {
                OpType::Put(ScalarValue::Str(m)) => m.parse().ok(),
                _ => None,
            })
            .collect()
    }

    /// The members whose device records `ops` may add to: a new member
    /// record, or a new map in a member's devices.
    /// Devices these operations record as redeeming an invite: a member's
    /// ticket redeemed at another member's device for someone already in
    /// (who restored their member key) adds a device to their record.
    fn redeemed_in<'a>(&self, ops: &'a [automerge::legacy::Op]) -> HashSet<&'a str> {
        ops.iter()
            .filter(|op| {
                matches!(op.action, OpType::Make(ObjType::Map))
                    && op.pred.is_empty()
                    && self.redeemed_maps.contains(&op.obj)
            })
            .filter_map(|op| match &op.key {
                Key::Map(k) => Some(k.as_str()),
                Key::Seq(_) => None,
            })
            .collect()
    }

    fn adds_devices_to(&self, ops: &[automerge::legacy::Op]) -> BTreeSet<MemberId> {
        ops.iter()
            .filter(|op| matches!(op.action, OpType::Make(ObjType::Map)))
            .filter_map(|op| {
                if self.members.as_ref() == Some(&op.obj) {
                    match &op.key {
                        Key::Map(k) => k.parse().ok(),
                        Key::Seq(_) => None,
                    }
                } else if self.devices_maps.contains(&op.obj) {
                    self.member_of.get(&op.obj).copied().flatten()
                } else {
                    None
                }
            })
            .collect()
    }
}

/// Whether each of `members` has at most [`MAX_DEVICE_RECORDS`] device
/// records and [`MAX_ACTIVE_DEVICES`] devices not revoked (by another of
/// their devices, as [`Membership`] counts revocations) in the circle as
/// `c` leaves it, its own history only: every device that judges `c`
/// judges it alike, whatever else it holds.
fn devices_within_bound(doc: &Automerge, c: &Change, members: &BTreeSet<MemberId>) -> bool {
    let heads = [c.hash()];
    let maps_at = |obj: &ObjId, key: &str| -> Vec<ObjId> {
        doc.get_all_at(obj, key, &heads)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(v, id)| matches!(v, Value::Object(ObjType::Map)).then_some(id))
            .collect()
    };
    let collections = maps_at(&ROOT, schema::MEMBERS);
    for member in members {
        // Every record, by device (hex, as keyed), in every copy of the
        // member's record that concurrent writes left.
        let mut records: BTreeMap<String, Vec<ObjId>> = BTreeMap::new();
        for collection in &collections {
            for m in maps_at(collection, &member.to_string()) {
                for devices in maps_at(&m, schema::DEVICES) {
                    for key in doc.keys_at(&devices, &heads) {
                        let found = maps_at(&devices, &key);
                        records.entry(key).or_default().extend(found);
                    }
                }
            }
        }
        if records.len() > MAX_DEVICE_RECORDS {
            return false;
        }
        let revoked = records
            .iter()
            .filter(|(device, objs)| {
                objs.iter().any(|d| {
                    maps_at(d, "revoked").iter().any(|r| match r {
                        ObjId::Id(_, by, _) => {
                            let by = by.to_hex_string();
                            by != **device && records.contains_key(&by)
                        }
                        ObjId::Root => false,
                    })
                })
            })
            .count();
        if records.len() - revoked > MAX_ACTIVE_DEVICES {
            return false;
        }
    }
    true
}

/// What kind of written thing an object is, by where it sits.
enum Written {
    /// A check-in, moment, ask or offer, or a reply, commitment, dish or
    /// RSVP: its author's alone.
    Entry,
    /// A gathering's RSVPs, keyed by member.
    RsvpsOf,
    /// A collection of entries (check-ins, replies, dishes, ...).
    Collection,
}

/// The device (actor) that made an object.
fn creator(obj: &ObjectId) -> Option<&ActorId> {
    match obj {
        ObjectId::Id(OpId(_, actor)) => Some(actor),
        ObjectId::Root => None,
    }
}

/// Whether `obj` is something a member wrote, found by its path from the
/// root (only for objects a change writes into, so only a few per change).
fn authored(doc: &Automerge, obj: &ObjectId) -> Option<Written> {
    let ObjectId::Id(OpId(ctr, actor)) = obj else {
        return None;
    };
    // The actor's index is looked up when it does not match.
    let id = ObjId::Id(*ctr, actor.clone(), usize::MAX);
    let path: Vec<String> = doc
        .parents(&id)
        .ok()?
        .path()
        .into_iter()
        .map(|(_, prop)| match prop {
            automerge::Prop::Map(k) => k,
            automerge::Prop::Seq(i) => i.to_string(),
        })
        .collect();
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let entries = [schema::CHECKINS, schema::MOMENTS, schema::REQUESTS];
    match path.as_slice() {
        [c] if entries.contains(c) => Some(Written::Collection),
        [c, _, schema::REPLIES | "commitments"] if entries.contains(c) => Some(Written::Collection),
        [schema::GATHERINGS, _, "dishes"] => Some(Written::Collection),
        [c, _] if entries.contains(c) => Some(Written::Entry),
        [c, _, schema::REPLIES | "commitments", _] if entries.contains(c) => Some(Written::Entry),
        [schema::GATHERINGS, _, "dishes" | "rsvps", _] => Some(Written::Entry),
        [schema::GATHERINGS, _, "rsvps"] => Some(Written::RsvpsOf),
        _ => None,
    }
}

/// Whether the proposal made by op `ctr` of `c` names as its electorate
/// exactly the members, but the one concerned, of the circle as `c` saw
/// it, and is about the stint the one concerned is in there: one they are
/// in, to remove them; one that ended by a removal, to welcome them back.
fn honest_proposal(c: &Change, actor: &ActorId, ctr: u64, doc: &Automerge) -> bool {
    let view = CircleView::read_membership(doc);
    let Some(p) = view.removals.values().find(|r| {
        r.order == ctr
            && r.by_device
                .is_some_and(|d| device_of(actor).is_some_and(|(by, _)| by == d))
    }) else {
        // A map in the removals collection that does not read as a proposal
        // is no proposal; it decides nothing.
        return true;
    };
    let Ok(then) = doc.fork_at(c.deps()) else {
        return false;
    };
    let membership = Membership::read(&then);
    let target_is = match p.kind {
        ProposalKind::Remove | ProposalKind::Recover => &membership.members,
        ProposalKind::Welcome => &membership.removed,
    };
    if !target_is.contains(&p.target) || p.stint != membership.stint_of(p.target) {
        return false;
    }
    // A recovery names a key nobody in the circle holds or held, and a
    // device new to it.
    if p.kind == ProposalKind::Recover {
        let (Some(key), Some(device)) = (p.key, p.device) else {
            return false;
        };
        let key = MemberId::from_bytes(key);
        let then_view = CircleView::read_membership(&then);
        if then_view.members.contains_key(&key)
            || membership.keys.values().any(|k| *k == key)
            || membership.certified.contains(&device)
        {
            return false;
        }
    }
    let expected: BTreeSet<MemberId> = membership
        .members
        .into_iter()
        .filter(|m| *m != p.target)
        .collect();
    let written: BTreeSet<MemberId> = p
        .electorate
        .iter()
        .filter(|(_, v)| **v)
        .map(|(m, _)| *m)
        .collect();
    written == expected
}

/// The most operations one change may hold: far more than any edit makes
/// (a new circle, the largest, makes a few dozen).
pub(crate) const MAX_OPS: usize = 1_000;
/// The longest map key: ids and field names are far shorter.
const MAX_KEY: usize = 128;
/// The longest change message or extra data: edits write a few words.
const MAX_NOTE_BYTES: usize = 1_024;

/// The most characters a text at `key` may hold, as local edits allow.
fn text_limit(key: &str) -> usize {
    match key {
        "name" | "title" | "dish" | "dietary" | "when" | "label" | "from" | "to" => limits::NAME,
        "pronouns" => limits::PRONOUNS,
        "story" | "about" => limits::STORY,
        _ => limits::NOTE,
    }
}

/// Whether `c` (whose operations are `ops`) is larger than any edit may
/// be: too many operations, a text longer than its field allows, a long
/// key, bytes, or a long message.
pub(crate) fn too_large(c: &Change, ops: &[automerge::legacy::Op]) -> bool {
    if c.len() > MAX_OPS
        || c.message().is_some_and(|m| m.len() > MAX_NOTE_BYTES)
        || c.extra_bytes().len() > MAX_NOTE_BYTES
    {
        return true;
    }
    ops.iter().any(|op| {
        let key = match &op.key {
            Key::Map(k) => k.as_str(),
            Key::Seq(_) => "",
        };
        if key.len() > MAX_KEY {
            return true;
        }
        match &op.action {
            OpType::Put(ScalarValue::Str(text)) => text.chars().count() > text_limit(key),
            OpType::Put(ScalarValue::Bytes(b)) => b.len() > MAX_NOTE_BYTES,
            OpType::Put(ScalarValue::Unknown { bytes, .. }) => bytes.len() > MAX_NOTE_BYTES,
            OpType::MarkBegin(_) | OpType::MarkEnd(_) => true,
            _ => false,
        }
    })
}
