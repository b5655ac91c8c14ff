//! The circle's care: moments, asks and offers, gatherings and potluck,
//! stepping back. Each edit is one change under the rules of [`Circle`].

use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc};
use rand::RngCore;

use crate::circle::Circle;
use crate::doc::{Maker, authored, child_map, collection};
use crate::error::CoreError;
use crate::ids::{EntityId, MemberId};
use crate::schema::{self, limits};
use crate::text::checked;
use crate::time::Timestamp;
use crate::view::{Answer, RequestKind};

/// A gathering to propose.
#[derive(Debug, Clone)]
pub struct NewGathering {
    /// What it is ("Soup night").
    pub title: String,
    /// When it starts, in the time zone where it happens.
    pub starts: jiff::ZonedDateTime,
    /// Where.
    pub place: String,
    /// Who hosts; the proposer when empty.
    pub hosts: Vec<MemberId>,
    /// Whether the potluck asks for one of each dish.
    pub one_of_each: bool,
}

/// What a gathering's proposer or host changes: each field given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatheringEdit {
    /// A new title.
    pub title: Option<String>,
    /// A new start, with its time zone.
    pub starts: Option<jiff::ZonedDateTime>,
    /// A new place.
    pub place: Option<String>,
}

impl Circle {
    /// Shares a moment: a milestone or an ordinary day.
    pub fn moment(
        &mut self,
        author: MemberId,
        text: &str,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<EntityId, CoreError> {
        self.require_member(author)?;
        let text = checked("moment", text, limits::NOTE, true)?;
        let id = EntityId::random(rng);
        self.transact(now, "share a moment", |tx| {
            let moments = collection(tx, schema::MOMENTS)?;
            let obj = authored(tx, &moments, id, Maker::Author(author), now)?;
            tx.put(&obj, "text", text)?;
            tx.put_object(&obj, schema::REPLIES, ObjType::Map)?;
            Ok(id)
        })
    }

    /// Asks for help, or offers it.
    pub fn request(
        &mut self,
        kind: RequestKind,
        author: MemberId,
        text: &str,
        when: &str,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<EntityId, CoreError> {
        self.request_for(kind, author, text, when, 1, now, rng)
    }

    /// Asks for help that needs `hands` people (or offers it: an offer
    /// has no such number).
    #[allow(clippy::too_many_arguments)]
    pub fn request_for(
        &mut self,
        kind: RequestKind,
        author: MemberId,
        text: &str,
        when: &str,
        hands: u32,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<EntityId, CoreError> {
        self.require_member(author)?;
        let text = checked(kind.as_str(), text, limits::NOTE, true)?;
        let when = checked("when", when, limits::NAME, false)?;
        check_hands(hands)?;
        let id = EntityId::random(rng);
        self.transact(now, kind.as_str(), |tx| {
            let requests = collection(tx, schema::REQUESTS)?;
            let obj = authored(tx, &requests, id, Maker::Author(author), now)?;
            tx.put(&obj, "kind", kind.as_str())?;
            if kind == RequestKind::Ask && hands != 1 {
                tx.put(&obj, "hands", u64::from(hands))?;
            }
            tx.put(&obj, "text", text)?;
            tx.put(&obj, "when", when)?;
            tx.put_object(&obj, "commitments", ObjType::Map)?;
            tx.put_object(&obj, schema::REPLIES, ObjType::Map)?;
            Ok(id)
        })
    }

    /// "I'll bring soup Tuesday": commits to an ask (or takes up an offer).
    /// Several people committing at once are all kept.
    pub fn commit_to(
        &mut self,
        request: EntityId,
        author: MemberId,
        text: &str,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<EntityId, CoreError> {
        self.require_member(author)?;
        let text = checked("commitment", text, limits::NOTE, true)?;
        let obj = self.require_entity(schema::REQUESTS, request, "ask or offer")?;
        let view = self.view_of(&[schema::MEMBERS, schema::REQUESTS]);
        let Some(r) = view.requests.get(&request) else {
            return Err(CoreError::NoSuchEntity {
                kind: "ask or offer",
                id: request,
            });
        };
        if r.done.is_some() {
            return Err(CoreError::NotAllowed(format!(
                "{}'s {} is already done, so there is nothing left to take on; thank you all the same",
                view.name_of(&r.author),
                r.kind.as_str()
            )));
        }
        let id = EntityId::random(rng);
        self.transact(now, "commit", |tx| {
            let commitments = child_map(tx, &obj, "commitments")?;
            let c = authored(tx, &commitments, id, Maker::Author(author), now)?;
            tx.put(&c, "text", text)?;
            Ok(id)
        })
    }

    /// Says how many people one's own ask needs: "both are welcome"
    /// settles an ask more people took up than it said.
    pub fn set_hands(
        &mut self,
        request: EntityId,
        author: MemberId,
        hands: u32,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        self.require_member(author)?;
        check_hands(hands)?;
        let obj = self.require_entity(schema::REQUESTS, request, "ask or offer")?;
        let view = self.view_of(&[schema::REQUESTS]);
        let Some(r) = view.requests.get(&request) else {
            return Err(CoreError::NoSuchEntity {
                kind: "ask or offer",
                id: request,
            });
        };
        if r.author != author {
            return Err(CoreError::NotAllowed(
                "only the person who asked can say how many people it needs".into(),
            ));
        }
        if r.kind != RequestKind::Ask {
            return Err(CoreError::NotAllowed(
                "an offer has no number of people; whoever takes it up is welcome".into(),
            ));
        }
        self.transact(now, "hands", |tx| {
            tx.put(&obj, "hands", u64::from(hands))?;
            Ok(())
        })
    }

    /// Closes an ask or offer with thanks. Only its author can.
    pub fn close_request(
        &mut self,
        request: EntityId,
        author: MemberId,
        thanks: &str,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        self.require_member(author)?;
        let thanks = checked("thanks", thanks, limits::NOTE, false)?;
        let obj = self.require_entity(schema::REQUESTS, request, "ask or offer")?;
        if self.get_str(&obj, "author") != Some(author.to_string()) {
            return Err(CoreError::NotAllowed(
                "only the person who posted it can mark it done; say thanks with a reply instead"
                    .into(),
            ));
        }
        if let Some(done) = self
            .view_of(&[schema::REQUESTS])
            .requests
            .get(&request)
            .and_then(|r| r.done.clone())
        {
            let thanks = if done.thanks.is_empty() {
                String::new()
            } else {
                format!(" (with thanks: \"{}\")", done.thanks)
            };
            return Err(CoreError::NotAllowed(format!(
                "this is already done{thanks}; to add more, reply to it"
            )));
        }
        self.transact(now, "done", |tx| {
            let done = tx.put_object(&obj, "done", ObjType::Map)?;
            tx.put(&done, "at", now.as_millis())?;
            tx.put(&done, "thanks", thanks)?;
            Ok(())
        })
    }

    /// Proposes a gathering.
    pub fn gathering(
        &mut self,
        author: MemberId,
        g: &NewGathering,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<EntityId, CoreError> {
        self.require_member(author)?;
        let title = checked("title", &g.title, limits::NAME, true)?;
        let place = checked("place", &g.place, limits::NOTE, false)?;
        let hosts = if g.hosts.is_empty() {
            vec![author]
        } else {
            g.hosts.clone()
        };
        for h in &hosts {
            self.require_member(*h)?;
        }
        let starts = g.starts.to_string();
        let id = EntityId::random(rng);
        self.transact(now, "propose a gathering", |tx| {
            let gatherings = collection(tx, schema::GATHERINGS)?;
            let obj = authored(tx, &gatherings, id, Maker::Author(author), now)?;
            tx.put(&obj, "title", title)?;
            tx.put(&obj, "starts", starts.as_str())?;
            tx.put(&obj, "place", place)?;
            let host_map = tx.put_object(&obj, "hosts", ObjType::Map)?;
            for h in &hosts {
                tx.put(&host_map, h.to_string(), true)?;
            }
            if g.one_of_each {
                tx.put(&obj, "one_of_each", true)?;
            }
            for m in ["rsvps", "dishes", "came"] {
                tx.put_object(&obj, m, ObjType::Map)?;
            }
            Ok(id)
        })
    }

    /// Changes a gathering's title, time or place. Its proposer and its
    /// hosts may. Two such changes on devices that had not met are a
    /// double-up until one of them keeps one (see [`crate::double_ups`]).
    pub fn edit_gathering(
        &mut self,
        gathering: EntityId,
        member: MemberId,
        edit: &GatheringEdit,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        self.require_member(member)?;
        let obj = self.require_entity(schema::GATHERINGS, gathering, "gathering")?;
        let view = self.view_of(&[schema::GATHERINGS]);
        let Some(g) = view.gatherings.get(&gathering) else {
            return Err(CoreError::NoSuchEntity {
                kind: "gathering",
                id: gathering,
            });
        };
        if g.author != member && !g.hosts.get(&member).copied().unwrap_or(false) {
            return Err(CoreError::NotAllowed(
                "only whoever proposed this gathering or hosts it can change it; reply to suggest a change"
                    .into(),
            ));
        }
        let title = edit
            .title
            .as_deref()
            .map(|t| checked("title", t, limits::NAME, true))
            .transpose()?;
        let place = edit
            .place
            .as_deref()
            .map(|p| checked("place", p, limits::NOTE, false))
            .transpose()?;
        let starts = edit.starts.as_ref().map(ToString::to_string);
        if title.is_none() && place.is_none() && starts.is_none() {
            return Err(CoreError::Invalid(
                "say what to change: a title, a time or a place".into(),
            ));
        }
        self.transact(now, "edit gathering", |tx| {
            for (field, value) in [
                ("title", title),
                ("starts", starts.as_deref()),
                ("place", place),
            ] {
                if let Some(v) = value {
                    tx.put(&obj, field, v)?;
                }
            }
            Ok(())
        })
    }

    /// A member's yes, no or maybe. Their latest answer stands.
    pub fn rsvp(
        &mut self,
        gathering: EntityId,
        member: MemberId,
        answer: Answer,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        self.rsvp_noted(gathering, member, answer, "", now)
    }

    /// A member's yes, no or maybe, with a note ("running late"). Their
    /// latest answer and note stand.
    pub fn rsvp_noted(
        &mut self,
        gathering: EntityId,
        member: MemberId,
        answer: Answer,
        note: &str,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        self.require_member(member)?;
        let note = checked("note", note, limits::NOTE, false)?;
        let obj = self.require_entity(schema::GATHERINGS, gathering, "gathering")?;
        self.transact(now, "rsvp", |tx| {
            let rsvps = child_map(tx, &obj, "rsvps")?;
            let r = tx.put_object(&rsvps, member.to_string(), ObjType::Map)?;
            tx.put(&r, "answer", answer.as_str())?;
            tx.put(&r, "at", now.as_millis())?;
            if !note.is_empty() {
                tx.put(&r, "note", note)?;
            }
            Ok(())
        })
    }

    /// Takes back `member`'s answer to a gathering, note and all.
    pub fn withdraw_rsvp(
        &mut self,
        gathering: EntityId,
        member: MemberId,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        self.require_member(member)?;
        let obj = self.require_entity(schema::GATHERINGS, gathering, "gathering")?;
        if !self
            .view_of(&[schema::GATHERINGS])
            .gatherings
            .get(&gathering)
            .is_some_and(|g| g.rsvps.contains_key(&member))
        {
            return Err(CoreError::NotAllowed(
                "you have not answered this gathering, so there is nothing to take back".into(),
            ));
        }
        self.transact(now, "withdraw rsvp", |tx| {
            let rsvps = child_map(tx, &obj, "rsvps")?;
            let r = child_map(tx, &rsvps, &member.to_string())?;
            tx.put(&r, "note", "")?;
            tx.put(&r, crate::view::WITHDRAWN, now.as_millis())?;
            Ok(())
        })
    }

    /// Potluck: "I'll bring ...", with dietary notes.
    pub fn bring(
        &mut self,
        gathering: EntityId,
        member: MemberId,
        dish: &str,
        dietary: &str,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<EntityId, CoreError> {
        self.require_member(member)?;
        let dish = checked("dish", dish, limits::NAME, true)?;
        let dietary = checked("dietary note", dietary, limits::NAME, false)?;
        let obj = self.require_entity(schema::GATHERINGS, gathering, "gathering")?;
        let id = EntityId::random(rng);
        self.transact(now, "bring", |tx| {
            let dishes = child_map(tx, &obj, "dishes")?;
            let d = authored(tx, &dishes, id, Maker::Author(member), now)?;
            tx.put(&d, "dish", dish)?;
            tx.put(&d, "dietary", dietary)?;
            Ok(id)
        })
    }

    /// Records that `who` came to a gathering.
    pub fn came(
        &mut self,
        gathering: EntityId,
        who: MemberId,
        marked_by: MemberId,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        self.require_member(marked_by)?;
        self.require_member(who)?;
        let obj = self.require_entity(schema::GATHERINGS, gathering, "gathering")?;
        self.transact(now, "came", |tx| {
            let came = child_map(tx, &obj, "came")?;
            let c = tx.put_object(&came, who.to_string(), ObjType::Map)?;
            tx.put(&c, "marked_by", marked_by.to_string())?;
            tx.put(&c, "at", now.as_millis())?;
            Ok(())
        })
    }

    /// "I'm stepping back for a while": the quiet view leaves them be.
    pub fn step_back(
        &mut self,
        member: MemberId,
        until: Option<Timestamp>,
        note: &str,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        let obj = self.require_member(member)?;
        let note = checked("note", note, limits::NOTE, false)?;
        if until.is_some_and(|u| u <= now) {
            return Err(CoreError::Invalid(
                "the date you are away until has already passed".into(),
            ));
        }
        self.transact(now, "step back", |tx| {
            let away = tx.put_object(&obj, "away", ObjType::Map)?;
            tx.put(&away, "since", now.as_millis())?;
            if let Some(u) = until {
                tx.put(&away, "until", u.as_millis())?;
            }
            tx.put(&away, "note", note)?;
            Ok(())
        })
    }

    /// Leaves the circle: `member` is out from then on, their devices with
    /// them, and the others move to a new key. It cannot be undone; coming
    /// back takes an invitation and a new identity.
    pub fn leave(&mut self, member: MemberId, now: Timestamp) -> Result<(), CoreError> {
        let obj = self.require_member(member)?;
        // The first stint ends with `left`; one after coming back, with
        // its number in `leaves`.
        let stint = self.standing().membership.stint_of(member);
        self.transact(now, "leave", |tx| {
            let left = if stint == 0 {
                tx.put_object(&obj, "left", ObjType::Map)?
            } else {
                let leaves = crate::doc::child_map(tx, &obj, crate::schema::LEAVES)?;
                tx.put_object(&leaves, stint.to_string(), ObjType::Map)?
            };
            tx.put(&left, "at", now.as_millis())?;
            Ok(())
        })
    }

    /// Back again.
    pub fn come_back(&mut self, member: MemberId, now: Timestamp) -> Result<(), CoreError> {
        let obj = self.require_member(member)?;
        if self
            .standing()
            .view
            .members
            .get(&member)
            .is_none_or(|m| m.away.is_none())
        {
            return Err(CoreError::NotAllowed(
                "you are not stepping back, so there is nothing to come back from; glad you're here"
                    .into(),
            ));
        }
        self.transact(now, "back", |tx| {
            if tx.get(&obj, "away")?.is_some() {
                tx.delete(&obj, "away")?;
            }
            Ok(())
        })
    }
}

/// An ask needs from 1 to [`limits::HANDS`] people.
fn check_hands(hands: u32) -> Result<(), CoreError> {
    if (1..=limits::HANDS).contains(&hands) {
        Ok(())
    } else {
        Err(CoreError::Invalid(format!(
            "an ask needs from 1 to {} people, not {hands}",
            limits::HANDS
        )))
    }
}
