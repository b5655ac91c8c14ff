//! A redemption the joining device wrote itself, as every device judges it
//! on arrival (the rule is in the module docs of [`crate::invite`]).
//!
//! The change is read twice: first its operations alone (which maps it
//! makes where, and what it puts in them), then the circle as the change
//! found it, its own history and nothing else, so every device that
//! receives it reaches the same answer whatever else it holds.

use std::collections::{HashMap, HashSet};

use automerge::legacy::{Key, ObjectId, OpId, OpType};
use automerge::{Automerge, Change, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use ed25519_dalek::{Signature, VerifyingKey};

use super::redeem_message;
use crate::actors::device_of;
use crate::identity::{DeviceCert, decode_hex_exact};
use crate::ids::{CircleId, DeviceId, MemberId};
use crate::membership::Membership;
use crate::schema;
use crate::shape::legacy;
use crate::view::{CircleView, Invite, InviteKind};

/// The most operations a self-redemption may hold (it makes about fifteen).
const MAX_OPS: usize = 32;

/// What a map the change makes is, by where it makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Part {
    /// The redemption, in the invite's redemptions.
    Redemption,
    /// The new member's record.
    Member,
    /// The new member's devices.
    Devices,
    /// The device's record.
    Device,
}

impl Part {
    /// The fields a part may hold, as the writers write them.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Part::Redemption => &["member", "at", "kind", "proof"],
            Part::Member => &[
                "name",
                "pronouns",
                "remember",
                "story",
                "joined_at",
                "invited_by",
            ],
            Part::Devices => &[],
            Part::Device => &["cert", "added_at"],
        }
    }
}

/// A map made by the change: where, under which key, and its id.
#[derive(Debug)]
struct Made {
    parent: ObjectId,
    key: String,
    id: ObjectId,
}

/// What the change writes, read from its operations alone.
#[derive(Debug)]
struct Ops {
    /// Maps made in objects that were there before the change.
    outer: Vec<Made>,
    /// Maps made in maps the change made, in the order made.
    inner: Vec<Made>,
    /// Values put into maps the change made: (map, key, value).
    puts: Vec<(ObjectId, String, ScalarValue)>,
}

impl Ops {
    /// Reads the operations of `c`: only maps made and plain values put,
    /// each at a key of its own, nothing overwritten or deleted, and
    /// exactly two maps made where something was before. `None` when the
    /// change does anything else.
    fn read(c: &Change) -> Option<Self> {
        if c.len() > MAX_OPS || c.deps().is_empty() {
            return None;
        }
        let actor = c.actor_id();
        let start = c.start_op().get();
        let mut made: HashSet<ObjectId> = HashSet::new();
        let mut keys: HashSet<(ObjectId, String)> = HashSet::new();
        let mut ops = Ops {
            outer: Vec::new(),
            inner: Vec::new(),
            puts: Vec::new(),
        };
        for (i, op) in c.decode().operations.into_iter().enumerate() {
            let Key::Map(key) = op.key else { return None };
            let key = key.to_string();
            if !op.pred.is_empty() || op.insert || !keys.insert((op.obj.clone(), key.clone())) {
                return None;
            }
            let here = made.contains(&op.obj);
            match op.action {
                OpType::Make(ObjType::Map) => {
                    let id = ObjectId::Id(OpId(start + i as u64, actor.clone()));
                    made.insert(id.clone());
                    let m = Made {
                        parent: op.obj,
                        key,
                        id,
                    };
                    if here {
                        ops.inner.push(m);
                    } else {
                        ops.outer.push(m);
                    }
                }
                OpType::Put(
                    v @ (ScalarValue::Str(_)
                    | ScalarValue::Int(_)
                    | ScalarValue::Uint(_)
                    | ScalarValue::Null),
                ) if here => ops.puts.push((op.obj, key, v)),
                _ => return None,
            }
        }
        (ops.outer.len() == 2).then_some(ops)
    }
}

/// Whether `c`, whose device was not admitted in the circle it builds on,
/// is a valid self-redemption of an invite of `circle`: the joining
/// device's own redemption, proven with the invite's redeem key, and its
/// own record, and nothing else (see the module docs of [`crate::invite`]).
/// `doc` holds `c` and its history; only that history is read.
pub(crate) fn lets_itself_in(doc: &Automerge, c: &Change, circle: CircleId) -> bool {
    let Some((device, _)) = device_of(c.actor_id()) else {
        return false;
    };
    let Some(ops) = Ops::read(c) else {
        return false;
    };
    let Ok(before) = doc.fork_at(c.deps()) else {
        return false;
    };
    holds(&ops, &before, device, circle).is_some()
}

/// The winning map at `obj[key]` in `doc`, where the writers write.
fn map_at(doc: &Automerge, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
        _ => None,
    }
}

/// Whether what `ops` write is a valid self-redemption by `device` in the
/// circle as `before` (the change's own history) holds it; `None` if not.
fn holds(ops: &Ops, before: &Automerge, device: DeviceId, circle: CircleId) -> Option<()> {
    let view = CircleView::read_membership(before);
    let membership = Membership::from_view(&view);
    // Never in before: not certified, not departed.
    if membership.certified.contains(&device) || membership.departed.contains(&device) {
        return None;
    }
    let device_key = device.to_string();
    let invites = map_at(before, &ROOT, schema::INVITES)?;
    let members = map_at(before, &ROOT, schema::MEMBERS)?;

    // The redemption: a map keyed by the device in an invite's redemptions
    // (of an invite that counts: made by a device of the member it names).
    let redeemed_of = |made: &Made| {
        view.invites.iter().find(|(id, _)| {
            map_at(before, &invites, &id.to_string())
                .and_then(|inv| map_at(before, &inv, "redeemed"))
                .is_some_and(|r| legacy(&r) == made.parent)
        })
    };
    let [a, b] = [&ops.outer[0], &ops.outer[1]];
    let (redemption, record, (invite, inv)) = match (redeemed_of(a), redeemed_of(b)) {
        (Some(i), None) => (a, b, i),
        (None, Some(i)) => (b, a, i),
        _ => return None,
    };
    if redemption.key != device_key {
        return None;
    }
    let key = open_invite(inv, &membership, device)?;

    // The record: a new member with this device, or this device of the
    // invite's maker.
    let mut parts: HashMap<ObjectId, Part> = HashMap::new();
    parts.insert(redemption.id.clone(), Part::Redemption);
    // A member's ticket also brings in a new device of someone in the
    // circle (who restored their member key): then it writes a device
    // record in their devices map, as a device ticket does.
    let adds_device = inv.kind == InviteKind::Device || record.parent != legacy(&members);
    let member = match inv.kind {
        InviteKind::Member if adds_device => {
            let member = membership.members.iter().copied().find(|m| {
                map_at(before, &members, &m.to_string())
                    .and_then(|theirs| map_at(before, &theirs, schema::DEVICES))
                    .is_some_and(|devices| legacy(&devices) == record.parent)
            })?;
            if record.key != device_key {
                return None;
            }
            parts.insert(record.id.clone(), Part::Device);
            member
        }
        InviteKind::Member => {
            if record.parent != legacy(&members) {
                return None;
            }
            let member: MemberId = record.key.parse().ok()?;
            if record.key != member.to_string() {
                return None;
            }
            // New to this history: never in, so never removed, never left.
            let known = before.get_all(&members, record.key.as_str()).ok()?;
            if !known.is_empty() || view.members.contains_key(&member) {
                return None;
            }
            parts.insert(record.id.clone(), Part::Member);
            member
        }
        InviteKind::Device => {
            let member = inv.by;
            if !membership.members.contains(&member) || record.key != device_key {
                return None;
            }
            let theirs = map_at(before, &members, &member.to_string())?;
            let devices = map_at(before, &theirs, schema::DEVICES)?;
            if record.parent != legacy(&devices) {
                return None;
            }
            parts.insert(record.id.clone(), Part::Device);
            member
        }
    };
    let parts = all_parts(ops, parts, &device_key, adds_device)?;
    let values = part_values(ops, &parts)?;
    let text = |part: Part, key: &str| match values.get(&(part, key)) {
        Some(ScalarValue::Str(s)) => Some(s.to_string()),
        _ => None,
    };
    if !adds_device {
        text(Part::Member, "name")?;
    }
    let named: MemberId = text(Part::Redemption, "member")?.parse().ok()?;
    if named != member || text(Part::Redemption, "kind")? != inv.kind.as_str() {
        return None;
    }
    DeviceCert::from_parts(member, device, &text(Part::Device, "cert")?).ok()?;
    let proof = decode_hex_exact::<64>(&text(Part::Redemption, "proof")?)?;
    let message = redeem_message(circle, *invite, device, member, inv.kind);
    key.verify_strict(&message, &Signature::from_bytes(&proof))
        .ok()
}

/// Every part `ops` make, given the redemption and the record found
/// (`parts`): their inner maps (a new member's devices and this device's
/// record in them) added, if each is where it belongs and nothing is
/// missing or more.
fn all_parts(
    ops: &Ops,
    mut parts: HashMap<ObjectId, Part>,
    device_key: &str,
    adds_device: bool,
) -> Option<HashMap<ObjectId, Part>> {
    for m in &ops.inner {
        let part = match (parts.get(&m.parent), m.key.as_str()) {
            (Some(Part::Member), schema::DEVICES) => Part::Devices,
            (Some(Part::Devices), k) if k == device_key => Part::Device,
            _ => return None,
        };
        parts.insert(m.id.clone(), part);
    }
    let wanted: &[Part] = if adds_device {
        &[Part::Redemption, Part::Device]
    } else {
        &[Part::Redemption, Part::Member, Part::Devices, Part::Device]
    };
    let found: HashSet<Part> = parts.values().copied().collect();
    let complete = found.len() == wanted.len() && wanted.iter().all(|p| found.contains(p));
    complete.then_some(parts)
}

/// What the parts hold, by part and field, if each holds only its own
/// fields.
fn part_values<'a>(
    ops: &'a Ops,
    parts: &HashMap<ObjectId, Part>,
) -> Option<HashMap<(Part, &'a str), &'a ScalarValue>> {
    let mut values = HashMap::new();
    for (obj, key, value) in &ops.puts {
        let part = *parts.get(obj)?;
        if !part.fields().contains(&key.as_str()) {
            return None;
        }
        values.insert((part, key.as_str()), value);
    }
    Some(values)
}

/// The redeem key of `inv` when it may still let `device` in, in the
/// circle whose membership is `membership`: it has a redeem key, its
/// maker's device is admitted, and it is neither revoked nor used up, nor
/// redeemed by this device already.
fn open_invite(inv: &Invite, membership: &Membership, device: DeviceId) -> Option<VerifyingKey> {
    let maker_in = inv
        .by_device
        .is_some_and(|d| membership.admitted.contains(&d));
    let used_up = inv.redeemed.len() >= inv.uses as usize;
    if !maker_in || inv.revoked || used_up || inv.redeemed.contains_key(&device) {
        return None;
    }
    VerifyingKey::from_bytes(&inv.redeem_key?).ok()
}
