//! Judging one change against the shape: each operation on its own, then
//! what its operations made or wrote together (a recovery carried through,
//! a stint ended or begun, stewards named, proposals made).

use std::collections::{BTreeSet, HashSet};

use automerge::legacy::{Key, ObjectId, Op, OpId, OpType};
use automerge::{ActorId, Automerge, Change, ObjType, ScalarValue};

use super::{
    Shape, Written, authored, creator, devices_within_bound, holds_before, honest_proposal,
    new_steward, removes_steward, steward_as_written, stewards_within_bound,
};
use crate::actors::device_of;
use crate::ids::{DeviceId, MemberId};
use crate::schema;
use crate::steward::records::STEWARDS;

impl Shape {
    /// Whether `c` (whose operations are `ops`) breaks a rule (see the
    /// module docs). `doc` holds `c` and everything it builds on.
    pub(crate) fn breaks(
        &self,
        c: &Change,
        ops: &[Op],
        doc: &Automerge,
        had_history: bool,
    ) -> bool {
        if c.deps().is_empty() {
            return had_history;
        }
        let added_devices = self.adds_devices_to(ops);
        if !added_devices.is_empty() && !devices_within_bound(doc, c, &added_devices) {
            return true;
        }
        let mut judging = Judging::new(self, c, doc, ops);
        ops.iter()
            .enumerate()
            .any(|(i, op)| judging.op_breaks(i, op))
            || judging.whole_breaks()
    }
}

/// One change as it is judged: who wrote it, and what its operations made
/// or wrote that is checked once all of them are seen.
struct Judging<'a> {
    shape: &'a Shape,
    c: &'a Change,
    doc: &'a Automerge,
    ops: &'a [Op],
    actor: &'a ActorId,
    /// The counter of the change's first operation.
    start: u64,
    /// The member whose device wrote the change, if any.
    writer: Option<&'a MemberId>,
    writing_device: Option<DeviceId>,
    /// Devices this change records as redeeming an invite.
    redeemed_here: HashSet<&'a str>,
    /// Recoveries this change carries through, and the devices they add.
    completions: Vec<&'a ObjectId>,
    completed_here: HashSet<&'a str>,
    /// Proposals this change makes, by their operations' counters.
    new_proposals: Vec<u64>,
    /// Members whose leavings or returns by stint this change writes.
    stints_written: BTreeSet<(MemberId, &'static str)>,
    /// Stewards collections and records this change makes.
    new_steward_maps: HashSet<ObjectId>,
    new_stewards: Vec<(ObjectId, String)>,
}

impl<'a> Judging<'a> {
    fn new(shape: &'a Shape, c: &'a Change, doc: &'a Automerge, ops: &'a [Op]) -> Self {
        let actor = c.actor_id();
        let completions: Vec<&ObjectId> = ops
            .iter()
            .filter(|op| {
                shape.proposals.contains(&op.obj)
                    && matches!(&op.key, Key::Map(k) if k == "completed")
                    && matches!(op.action, OpType::Make(ObjType::Map))
            })
            .map(|op| &op.obj)
            .collect();
        let completed_here = completions
            .iter()
            .filter_map(|obj| shape.proposal_ids.get(*obj)?.1.as_deref())
            .collect();
        Judging {
            shape,
            c,
            doc,
            ops,
            actor,
            start: c.start_op().get(),
            writer: shape.owner_of(actor),
            writing_device: device_of(actor).map(|(d, _)| d),
            redeemed_here: shape.redeemed_in(ops),
            completions,
            completed_here,
            new_proposals: Vec::new(),
            stints_written: BTreeSet::new(),
            new_steward_maps: HashSet::new(),
            new_stewards: Vec::new(),
        }
    }

    /// Whether `obj` is an object this change made.
    fn made_here(&self, obj: &ObjectId) -> bool {
        match obj {
            ObjectId::Id(OpId(ctr, a)) => a == self.actor && *ctr >= self.start,
            ObjectId::Root => false,
        }
    }

    /// Whether the `i`th operation breaks a rule on its own. What it makes
    /// that is judged with the rest is noted for [`Judging::whole_breaks`].
    fn op_breaks(&mut self, i: usize, op: &Op) -> bool {
        let obj = &op.obj;
        if *obj == ObjectId::Root {
            return true;
        }
        let made = ObjectId::Id(OpId(self.start + i as u64, self.actor.clone()));
        if self.new_steward_maps.contains(obj) {
            // A record in a stewards collection this change makes.
            return match new_steward(op) {
                Some(key) => {
                    self.new_stewards.push((made, key));
                    false
                }
                None => true,
            };
        }
        if self.made_here(obj) {
            return false;
        }
        let key = match &op.key {
            Key::Map(k) => k.as_str(),
            Key::Seq(_) => "",
        };
        let by_stint = self.by_stint(obj, key);
        if let Some(written) = by_stint {
            self.stints_written.insert(written);
        }
        self.shape.sealed.contains(obj)
            || self.someone_elses(op, key, by_stint)
            || self.breaks_guard(i, op, key, made)
    }

    /// The member and the stint record (`leaves` or `returns`) an
    /// operation writes, if it writes one. A return is written by the
    /// device that took the ticket, a leaving by the member's own: both
    /// are checked in [`Judging::whole_breaks`].
    fn by_stint(&self, obj: &ObjectId, key: &str) -> Option<(MemberId, &'static str)> {
        let shape = self.shape;
        if shape.member_objs.contains(obj) && (key == schema::LEAVES || key == schema::RETURNS) {
            shape.member_of.get(obj).copied().flatten().map(|m| {
                let name = if key == schema::LEAVES {
                    schema::LEAVES
                } else {
                    schema::RETURNS
                };
                (m, name)
            })
        } else {
            shape.stint_maps.get(obj).copied()
        }
    }

    /// Whether the operation writes into what is someone else's: another
    /// member's record, or an entry (or its replies, RSVPs, dishes) by
    /// someone else.
    fn someone_elses(&self, op: &Op, key: &str, by_stint: Option<(MemberId, &str)>) -> bool {
        let (shape, obj, writer) = (self.shape, &op.obj, self.writer);
        let rewrites = !op.pred.is_empty() || matches!(op.action, OpType::Delete);
        let redeemed_device = shape.devices_maps.contains(obj)
            && matches!(op.action, OpType::Make(ObjType::Map))
            && !rewrites
            && (self.redeemed_here.contains(key) || self.completed_here.contains(key));
        match shape.member_of.get(obj) {
            Some(_) if redeemed_device => false,
            Some(_) if by_stint.is_some_and(|(_, name)| name == schema::RETURNS) => false,
            Some(m) => m.is_none() || writer != m.as_ref(),
            None => match authored(self.doc, obj) {
                // What someone wrote: only its author's devices change it.
                Some(Written::Entry) => {
                    writer.is_none() || writer != creator(obj).and_then(|a| shape.owner_of(a))
                }
                // An RSVP is given in one's own name.
                Some(Written::RsvpsOf) => writer.is_none_or(|w| key != w.to_string()),
                // Replacing or deleting an entry is its author's to do.
                Some(Written::Collection) => op
                    .pred
                    .iter()
                    .any(|p| writer.is_none() || shape.owner_of(&p.1) != writer),
                None => false,
            },
        }
    }

    /// Whether the operation breaks the rule of the guarded object it
    /// writes into (the circle's record, stewards, a member's record, a
    /// device, a proposal, consents, an invite, a guarded collection).
    fn breaks_guard(&mut self, i: usize, op: &Op, key: &str, made: ObjectId) -> bool {
        let (shape, obj, doc, c) = (self.shape, &op.obj, self.doc, self.c);
        let rewrites = !op.pred.is_empty() || matches!(op.action, OpType::Delete);
        let makes_map = matches!(op.action, OpType::Make(ObjType::Map));
        let guarded_collection = shape.members.as_ref() == Some(obj)
            || shape.removals.as_ref() == Some(obj)
            || shape.invites.as_ref() == Some(obj)
            || shape.devices_maps.contains(obj)
            || shape.redeemed_maps.contains(obj)
            || shape.consents_maps.contains(obj)
            || shape.refused_maps.contains(obj);
        if shape.circle_infos.contains(obj) {
            if key != STEWARDS {
                false
            } else if makes_map && !rewrites && !holds_before(doc, c, obj, key) {
                self.new_steward_maps.insert(made);
                false
            } else {
                true
            }
        } else if shape.steward_maps.contains(obj) {
            match new_steward(op) {
                Some(key) if !holds_before(doc, c, obj, &key) => {
                    self.new_stewards.push((made, key));
                    false
                }
                _ => true,
            }
        } else if shape.steward_objs.contains(obj) {
            !removes_steward(op, obj, self.ops, self.writer, doc, c)
        } else if shape.member_objs.contains(obj) {
            // Leaving is said once and never taken back.
            let once = ["left", schema::LEAVES, schema::RETURNS].contains(&key);
            key == schema::DEVICES || (once && (rewrites || !makes_map))
        } else if let Some(device) = shape.device_objs.get(obj) {
            // Another device of the member revokes it; a device writing
            // its own revocation (which nothing counts) would otherwise
            // hold the key against the real one.
            let own = self.writing_device.as_ref() == Some(device);
            let revokes = key == "revoked" && makes_map && !rewrites && !own;
            let names_itself =
                key == "name" && own && matches!(op.action, OpType::Put(ScalarValue::Str(_)));
            !(revokes || names_itself)
        } else if shape.proposals.contains(obj) {
            // Withdrawn by its proposer, or a recovery carried through
            // (checked in `whole_breaks`): once each.
            rewrites
                || !((key == "withdrawn" || key == "completed") && makes_map)
                || holds_before(doc, c, obj, key)
        } else if shape.consents_maps.contains(obj) || shape.refused_maps.contains(obj) {
            rewrites || !makes_map || self.writing_device.is_none_or(|d| key != d.to_string())
        } else if let Some(maker) = shape.invite_objs.get(obj) {
            let revokes =
                key == "revoked" && matches!(op.action, OpType::Put(ScalarValue::Boolean(true)));
            let same_member = maker.is_some() && self.writer == maker.as_ref();
            !(revokes && same_member)
        } else if guarded_collection {
            if shape.removals.as_ref() == Some(obj) && makes_map && !rewrites {
                self.new_proposals.push(self.start + i as u64);
            }
            rewrites
        } else {
            false
        }
    }

    /// Whether what the change's operations made or wrote, taken together,
    /// breaks a rule: more than one recovery carried through or one not as
    /// written, a stint record not as written, stewards named dishonestly
    /// or over their bound, or a proposal with the wrong electorate.
    fn whole_breaks(&self) -> bool {
        let (shape, doc, c, actor) = (self.shape, self.doc, self.c, self.actor);
        if self.completions.len() > 1
            || self
                .completions
                .iter()
                .any(|p| !shape.completion_as_written(p, c, doc, actor))
        {
            return true;
        }
        for &(member, name) in &self.stints_written {
            if !shape.by_stint_as_written(member, name, self.ops, self.start, actor, doc, c) {
                return true;
            }
        }
        if !self.new_stewards.is_empty() {
            let honest = self
                .new_stewards
                .iter()
                .all(|(rec, key)| steward_as_written(rec, key, self.ops, self.writer));
            if !honest || !stewards_within_bound(doc, c) {
                return true;
            }
        }
        self.new_proposals
            .iter()
            .any(|&ctr| !honest_proposal(c, actor, ctr, doc))
    }
}
