//! A circle: one Automerge document and the edits people make to it.
//!
//! Every edit is one Automerge change made through [`Circle::transact`], by the
//! device set with [`Circle::set_device`]. Edits check what the circle's rules
//! say (the author is a member, the mood is one of four words, text is not
//! absurdly long) before anything is written; a refused edit changes nothing.

use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{Automerge, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use rand::RngCore;

use crate::doc::{Maker, authored, child_map, collection, guarded, is_clash};
use crate::error::CoreError;
use crate::identity::DeviceCert;
use crate::ids::{CircleId, DeviceId, EntityId, MemberId};
use crate::mood::Mood;
use crate::schema::{self, SCHEMA_VERSION, limits};
use crate::standing::{Kept, Standing};
use crate::text::{checked, checked_name};
use crate::time::Timestamp;
use crate::view::CircleView;

mod clashes;
mod devices;
mod entries;
mod invites;
mod members;
mod proposals;
mod recovery;
mod stewards;
mod sync;
mod verified;
pub use crate::actors::{actor, device_of, next_session, session_actor};
pub use crate::people::{Profile, ProfileEdit};
use members::{check_profile, put_member};

/// The collections whose entries can be replied to, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Repliable {
    /// A check-in.
    Checkin,
    /// A moment.
    Moment,
    /// An ask or an offer.
    Request,
}

impl Repliable {
    /// Every repliable collection.
    pub const ALL: [Repliable; 3] = [Repliable::Checkin, Repliable::Moment, Repliable::Request];

    pub(crate) const fn collection(self) -> &'static str {
        match self {
            Repliable::Checkin => schema::CHECKINS,
            Repliable::Moment => schema::MOMENTS,
            Repliable::Request => schema::REQUESTS,
        }
    }

    /// The word people use for it.
    pub const fn noun(self) -> &'static str {
        match self {
            Repliable::Checkin => "check-in",
            Repliable::Moment => "moment",
            Repliable::Request => "ask or offer",
        }
    }
}

/// One circle's document.
#[derive(Debug, Clone)]
pub struct Circle {
    doc: Automerge,
    /// Who is in, as last read, with the heads it holds for.
    kept: Kept,
    /// Bytes received since Automerge began holding changes back for
    /// missing history (see [`Circle::drop_waiting`]).
    pub(crate) waiting: usize,
    /// This device's newest changes, as last found (see
    /// `Circle::newest_of_device`); copies share it, keyed by the heads it
    /// was found at, which hold the same history in every copy.
    pub(crate) own_newest: std::sync::Arc<std::sync::Mutex<Option<OwnNewest>>>,
}

impl Circle {
    /// Starts a new circle, with its founder as the first member.
    ///
    /// The first change holds every collection of the schema, so devices that
    /// receive the document later never create them again (see [`crate::schema`]).
    pub fn create(
        name: &str,
        about: &str,
        founder: &DeviceCert,
        profile: &Profile,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<Self, CoreError> {
        founder.verify()?;
        let name = checked_name("circle name", name)?;
        let about = checked("circle's about", about, limits::STORY, false)?;
        check_profile(profile)?;
        let id = CircleId::random(rng);
        let mut doc = Automerge::new().with_actor(actor(founder.device));
        let mut tx = doc.transaction();
        tx.put(ROOT, schema::SCHEMA, SCHEMA_VERSION)?;
        let info = tx.put_object(ROOT, schema::CIRCLE, ObjType::Map)?;
        tx.put(&info, "id", id.to_string())?;
        tx.put(&info, "name", name.as_str())?;
        tx.put(&info, "about", about)?;
        tx.put(&info, "created_at", now.as_millis())?;
        tx.put(&info, "created_by", founder.member.to_string())?;
        for c in schema::COLLECTIONS {
            tx.put_object(ROOT, c, ObjType::Map)?;
        }
        put_member(&mut tx, founder, profile, None, now)?;
        tx.commit_with(commit_options(now, "create circle"));
        Ok(Self::wrap(doc))
    }

    /// Wraps a document, checking that it is a circle.
    pub fn from_doc(doc: Automerge) -> Result<Self, CoreError> {
        let circle = Self::wrap(doc);
        circle.info_obj()?;
        circle.read_id()?;
        Ok(circle)
    }

    fn wrap(doc: Automerge) -> Self {
        Self {
            waiting: 0,
            doc,
            kept: Kept::default(),
            own_newest: Default::default(),
        }
    }

    /// Who is in as the document says now, read again only when it moved.
    pub(crate) fn standing(&self) -> std::sync::Arc<Standing> {
        self.kept.now(&self.doc)
    }

    /// The circle's people and its record as the document says now: the
    /// view with only its members, invites, removals and circle filled
    /// in. Kept with who is in and read again only when one of those
    /// moved, so naming someone costs no read of the circle's history.
    pub fn people(&self) -> std::sync::Arc<CircleView> {
        self.standing().view.clone()
    }

    /// Loads a saved document. Damaged or hostile bytes give an error, never a panic.
    pub fn load(bytes: &[u8]) -> Result<Self, CoreError> {
        let doc = guarded(|| Automerge::load(bytes))?;
        Self::from_doc(doc)
    }

    /// Applies changes (or a saved document) received from elsewhere; returns
    /// how many operations were new. Changes whose history is missing are
    /// held back by Automerge until it arrives (see [`Self::missing_deps`]).
    pub fn apply(&mut self, bytes: &[u8]) -> Result<usize, CoreError> {
        self.apply_seeing_clash(bytes).0
    }

    /// Like [`Self::apply`], and says whether it failed on a clash with a
    /// change held back for missing history (the same device and sequence
    /// number; see [`Self::drop_waiting`]).
    pub(crate) fn apply_seeing_clash(&mut self, bytes: &[u8]) -> (Result<usize, CoreError>, bool) {
        let doc = &mut self.doc;
        let mut clash = false;
        let new = guarded(|| {
            doc.load_incremental(bytes)
                .inspect_err(|e| clash = is_clash(e))
        });
        self.know_own_actor();
        (new, clash)
    }

    /// Merges everything another copy of this circle has.
    pub fn merge(&mut self, other: &mut Circle) -> Result<(), CoreError> {
        let merged = self.doc.merge(&mut other.doc);
        self.know_own_actor();
        merged?;
        Ok(())
    }

    /// After changes arrived from elsewhere: if some were this device's own
    /// (restored from a peer), Automerge learns that its actor has history,
    /// so [`Circle::last_change_of`] needs no walk. A lookup, not a walk.
    pub(crate) fn know_own_actor(&mut self) {
        let actor = self.doc.get_actor().clone();
        self.doc.set_actor(actor);
    }

    /// Hashes of changes we know are needed but have not got.
    pub fn missing_deps(&self) -> Vec<ChangeHash> {
        self.doc.get_missing_deps(&[])
    }

    /// The whole document, compressed. Changes still waiting for their
    /// history are left out: nothing checked them yet (see
    /// [`Self::drop_waiting`]), so they are neither kept nor handed on.
    pub fn save(&self) -> Vec<u8> {
        self.doc.save_with_options(automerge::SaveOptions {
            deflate: true,
            retain_orphans: false,
        })
    }

    /// Forgets the changes Automerge holds back until their history
    /// arrives. Nobody vouched for them yet, and one of them can hold a
    /// device's next sequence number so that the device's real change
    /// never applies (a member can send a change in another device's name
    /// that depends on a change that does not exist). Sync brings them
    /// again, with their history, if they are real. Rebuilds the document
    /// from its changes: called only when they are in the way (a clash) or
    /// too many.
    pub(crate) fn drop_waiting(&mut self) -> Result<(), CoreError> {
        let actor = self.doc.get_actor().clone();
        let heads = self.doc.get_heads();
        let doc = &self.doc;
        let mut fresh = guarded(|| doc.fork_at(&heads))?;
        fresh.set_actor(actor);
        self.doc = fresh;
        self.waiting = 0;
        self.know_own_actor();
        Ok(())
    }

    /// Puts `doc` in place of this copy's document (rebuilt without some
    /// changes, see [`crate::equivocation`]).
    pub(crate) fn replace_doc(&mut self, doc: Automerge) {
        self.doc = doc;
        self.waiting = 0;
        self.kept = Kept::default();
        self.know_own_actor();
    }

    /// The changes made since `heads`, for the log or a peer.
    pub fn changes_since(&self, heads: &[ChangeHash]) -> Vec<u8> {
        self.doc.save_after(heads)
    }

    /// The current heads of the change graph.
    pub fn heads(&self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// Whether this copy holds the change with this hash.
    pub fn has_change(&self, hash: &ChangeHash) -> bool {
        self.doc.get_change_by_hash(hash).is_some()
    }

    /// The underlying document.
    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    /// The underlying document, for protocols (e.g. sync) that drive it directly.
    pub fn doc_mut(&mut self) -> &mut Automerge {
        &mut self.doc
    }

    /// Makes later edits come from `device`, under the actor that is the
    /// device id itself (session 0). Nodes and the command line write
    /// through [`Circle::set_writer`] instead, with a session of their own.
    pub fn set_device(&mut self, device: DeviceId) {
        self.doc.set_actor(actor(device));
    }

    /// Makes later edits come from `device` in writing session `session`:
    /// an Automerge actor of its own (see [`session_actor`]), so a device
    /// never numbers two different changes alike, even when its home was
    /// copied or restored from an older backup.
    pub fn set_writer(&mut self, device: DeviceId, session: u64) {
        self.doc.set_actor(session_actor(device, session));
    }

    /// This circle's id.
    pub fn id(&self) -> CircleId {
        // `from_doc` checked it; a concurrent edit cannot change it because nothing writes it again.
        self.read_id().unwrap_or(CircleId::from_bytes([0; 16]))
    }

    /// This circle's name as it stands now.
    pub fn name(&self) -> String {
        self.info_obj()
            .ok()
            .and_then(|o| self.get_str(&o, "name"))
            .unwrap_or_default()
    }

    /// The schema version written in the document.
    pub fn schema_version(&self) -> u64 {
        match self.doc.get(ROOT, schema::SCHEMA) {
            Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Uint(v) => *v,
                ScalarValue::Int(v) => u64::try_from(*v).unwrap_or(0),
                _ => 0,
            },
            _ => 0,
        }
    }

    /// Everything in the circle, as plain data.
    pub fn view(&self) -> CircleView {
        CircleView::read(&self.doc)
    }

    /// Only the named collections of the view, for an edit that checks
    /// something in them without reading the whole circle.
    pub(crate) fn view_of(&self, collections: &[&str]) -> CircleView {
        CircleView::read_collections(&self.doc, collections)
    }

    /// The canonical JSON form: sorted keys, stable order, so two devices that
    /// hold the same changes print identical bytes.
    pub fn canonical_json(&self) -> String {
        self.view().to_canonical_json()
    }

    /// Whether `member` belongs to this circle now (joined, not removed).
    pub fn is_member(&self, member: MemberId) -> bool {
        self.require_member(member).is_ok()
    }

    /// The members who are in this circle now.
    pub fn member_ids(&self) -> Vec<MemberId> {
        self.standing().view.members.keys().copied().collect()
    }

    /// Which collection holds the repliable entry `id`, if any.
    pub fn find_repliable(&self, id: EntityId) -> Option<Repliable> {
        Repliable::ALL
            .into_iter()
            .find(|r| self.entity(r.collection(), &id.to_string()).is_some())
    }

    /// Runs `f` as one change. Refuses if the document is from a newer schema;
    /// if `f` fails, nothing is written. Returns `f`'s value.
    pub fn transact<T>(
        &mut self,
        now: Timestamp,
        message: &str,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        let found = self.schema_version();
        if found > SCHEMA_VERSION {
            return Err(CoreError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let before = self.doc.get_heads();
        let mut tx = self.doc.transaction();
        match f(&mut tx) {
            Ok(v) => {
                let (hash, _) = tx.commit_with(commit_options(now, message));
                // Who is in still holds unless the edit wrote where it rests.
                if let Some(change) = hash.and_then(|h| self.doc.get_change_by_hash(&h))
                    && self.kept.holds_at(&before)
                {
                    self.kept.carry_over(&self.doc, &before, &[change]);
                }
                Ok(v)
            }
            Err(e) => {
                tx.rollback();
                Err(e)
            }
        }
    }

    /// Renames the circle or changes what it is about.
    pub fn edit_circle(
        &mut self,
        name: Option<&str>,
        about: Option<&str>,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        let name = name.map(|n| checked_name("circle name", n)).transpose()?;
        let about = about
            .map(|a| checked("circle's about", a, limits::STORY, false))
            .transpose()?;
        let info = self.info_obj()?;
        self.transact(now, "edit circle", |tx| {
            if let Some(n) = &name {
                tx.put(&info, "name", n.as_str())?;
            }
            if let Some(a) = about {
                tx.put(&info, "about", a)?;
            }
            Ok(())
        })
    }

    /// Records how `author` is doing.
    pub fn checkin(
        &mut self,
        author: MemberId,
        mood: Mood,
        note: &str,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<EntityId, CoreError> {
        self.require_member(author)?;
        let note = checked("note", note, limits::NOTE, false)?;
        let id = EntityId::random(rng);
        self.transact(now, "check in", |tx| {
            let checkins = collection(tx, schema::CHECKINS)?;
            let obj = authored(tx, &checkins, id, Maker::Author(author), now)?;
            tx.put(&obj, "mood", mood.as_str())?;
            tx.put(&obj, "note", note)?;
            tx.put_object(&obj, schema::REPLIES, ObjType::Map)?;
            Ok(id)
        })
    }

    /// Replies, in words, to a check-in, a moment, an ask or an offer.
    pub fn reply(
        &mut self,
        to: EntityId,
        author: MemberId,
        text: &str,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<EntityId, CoreError> {
        self.require_member(author)?;
        let text = checked("reply", text, limits::NOTE, true)?;
        let kind = self.find_repliable(to).ok_or(CoreError::NoSuchEntity {
            kind: "check-in, moment, ask or offer",
            id: to,
        })?;
        let target =
            self.entity(kind.collection(), &to.to_string())
                .ok_or(CoreError::NoSuchEntity {
                    kind: kind.noun(),
                    id: to,
                })?;
        let id = EntityId::random(rng);
        self.transact(now, "reply", |tx| {
            let replies = child_map(tx, &target, schema::REPLIES)?;
            let obj = authored(tx, &replies, id, Maker::Author(author), now)?;
            tx.put(&obj, "text", text)?;
            Ok(id)
        })
    }

    /// The map object of a member, or an error saying they are not here.
    pub(crate) fn require_member(&self, member: MemberId) -> Result<ObjId, CoreError> {
        let obj = self
            .entity(schema::MEMBERS, &member.to_string())
            .ok_or_else(|| CoreError::NotAMember(format!("member {}", member.fmt_short())))?;
        let standing = self.standing();
        let membership = &standing.membership;
        if membership.removed.contains(&member) {
            // Only the member themself acts in their name: tell them kindly.
            let notice = membership.removal_notice(&self.view(), member);
            return Err(CoreError::Removed(notice.unwrap_or_default()));
        }
        if membership.left.contains(&member) {
            return Err(CoreError::NotAMember(format!(
                "member {} (left the circle)",
                member.fmt_short()
            )));
        }
        Ok(obj)
    }

    /// The winning map object at `collection[key]`, if there is one.
    pub(crate) fn entity(&self, collection: &str, key: &str) -> Option<ObjId> {
        let (Value::Object(ObjType::Map), coll) = self.doc.get(ROOT, collection).ok()?? else {
            return None;
        };
        match self.doc.get(&coll, key).ok()?? {
            (Value::Object(ObjType::Map), obj) => Some(obj),
            _ => None,
        }
    }

    /// The map object of an entity, or an error naming what is missing.
    pub(crate) fn require_entity(
        &self,
        collection: &str,
        id: EntityId,
        kind: &'static str,
    ) -> Result<ObjId, CoreError> {
        self.entity(collection, &id.to_string())
            .ok_or(CoreError::NoSuchEntity { kind, id })
    }

    pub(crate) fn info_obj(&self) -> Result<ObjId, CoreError> {
        match self.doc.get(ROOT, schema::CIRCLE) {
            Ok(Some((Value::Object(ObjType::Map), obj))) => Ok(obj),
            _ => Err(CoreError::NotACircle("it has no circle record".into())),
        }
    }

    fn read_id(&self) -> Result<CircleId, CoreError> {
        let info = self.info_obj()?;
        self.get_str(&info, "id")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| CoreError::NotACircle("its circle id is missing or damaged".into()))
    }

    pub(crate) fn get_str(&self, obj: &ObjId, key: &str) -> Option<String> {
        match self.doc.get(obj, key).ok()?? {
            (Value::Scalar(s), _) => match s.as_ref() {
                ScalarValue::Str(s) => Some(s.to_string()),
                _ => None,
            },
            _ => None,
        }
    }
}

/// What [`Circle::newest_of_device`] found, and at which heads.
#[derive(Debug, Clone)]
pub(crate) struct OwnNewest {
    device: DeviceId,
    heads: Vec<ChangeHash>,
    newest: Vec<ChangeHash>,
}

fn commit_options(now: Timestamp, message: &str) -> CommitOptions {
    CommitOptions::default()
        .with_message(message)
        .with_time(now.as_millis().div_euclid(1000))
}

/// A device's name as it will be kept, or why it cannot be.
pub fn check_device_name(name: &str) -> Result<String, CoreError> {
    checked_name("device name", name)
}
