//! Edits as data: what a person asked for, fully resolved (ids, not
//! prefixes or names), ready to be carried to whichever process owns the
//! circle — the CLI itself when no node runs, or the node through its
//! control API.

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::care::{GatheringEdit, NewGathering};
use crate::circle::{Circle, ProfileEdit};
use crate::error::CoreError;
use crate::ids::{DeviceId, EntityId, MemberId};
use crate::mood::Mood;
use crate::time::Timestamp;
use crate::view::{Answer, RequestKind};

/// One edit by the member acting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Op {
    /// "How I am doing."
    Checkin {
        /// One of four words.
        mood: Mood,
        /// What they want to say.
        note: String,
    },
    /// A reply, in words.
    Reply {
        /// A check-in, moment, ask or offer.
        to: EntityId,
        /// What they said.
        text: String,
    },
    /// Their own profile.
    Profile {
        /// New name.
        name: Option<String>,
        /// New pronouns.
        pronouns: Option<String>,
        /// New "what I'd like you to remember about me".
        remember: Option<String>,
        /// New story.
        story: Option<String>,
    },
    /// A moment.
    Moment {
        /// What happened.
        text: String,
    },
    /// An ask or an offer.
    Request {
        /// Which.
        kind: RequestKind,
        /// What.
        text: String,
        /// When, in their words.
        when: String,
        /// How many people an ask needs.
        #[serde(default = "one")]
        hands: u32,
    },
    /// How many people one's own ask needs.
    Hands {
        /// The ask.
        request: EntityId,
        /// How many.
        hands: u32,
    },
    /// "I'll do it."
    Commit {
        /// The ask or offer.
        to: EntityId,
        /// What they will do.
        text: String,
    },
    /// Close one's own ask or offer, with thanks.
    Close {
        /// The ask or offer.
        request: EntityId,
        /// Thanks.
        thanks: String,
    },
    /// Propose a gathering.
    Gathering {
        /// What.
        title: String,
        /// When, RFC 9557 with its zone.
        starts: String,
        /// Where.
        place: String,
        /// Who hosts (empty: the proposer).
        hosts: Vec<MemberId>,
        /// Whether the potluck asks for one of each dish.
        #[serde(default)]
        one_of_each: bool,
    },
    /// Changes a gathering's title, time or place.
    EditGathering {
        /// The gathering.
        gathering: EntityId,
        /// A new title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// A new start, RFC 9557 with its zone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        starts: Option<String>,
        /// A new place.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        place: Option<String>,
    },
    /// Yes, no or maybe.
    Rsvp {
        /// The gathering.
        gathering: EntityId,
        /// The answer.
        answer: Answer,
        /// A word with it.
        #[serde(default)]
        note: String,
    },
    /// Takes back one's answer to a gathering.
    WithdrawRsvp {
        /// The gathering.
        gathering: EntityId,
    },
    /// Potluck.
    Bring {
        /// The gathering.
        gathering: EntityId,
        /// What.
        dish: String,
        /// Dietary notes.
        dietary: String,
        /// Instead of what the actor brings already (else as well).
        #[serde(default)]
        instead: bool,
    },
    /// Who came (the actor, when empty).
    Came {
        /// The gathering.
        gathering: EntityId,
        /// Who came.
        who: Vec<MemberId>,
    },
    /// Stepping back for a while.
    Away {
        /// Until when.
        until: Option<Timestamp>,
        /// A word for the circle.
        note: String,
    },
    /// Back again.
    Back,
    /// Leaves the circle for good.
    Leave {
        /// Also forget this device's copy, once the others know.
        #[serde(default)]
        forget: bool,
    },
    /// Changes the words of something the actor wrote.
    EditEntry {
        /// The check-in, moment, ask, offer, reply, commitment or dish.
        id: EntityId,
        /// The new words.
        text: String,
    },
    /// Takes back something the actor wrote.
    WithdrawEntry {
        /// The check-in, moment, ask, offer, reply, commitment or dish.
        id: EntityId,
    },
    /// Names the device acting.
    NameDevice {
        /// "Ana's phone".
        name: String,
    },
    /// Withdraws an invite so its ticket stops working.
    RevokeInvite {
        /// The invite.
        invite: EntityId,
    },
    /// Revokes another device of the member acting (a lost one).
    RevokeDevice {
        /// The device.
        device: DeviceId,
    },
    /// Proposes to remove a member.
    ProposeRemoval {
        /// Whom.
        target: MemberId,
        /// Why, in words.
        reason: String,
    },
    /// Proposes to welcome back a member the circle removed.
    ProposeWelcome {
        /// Whom.
        target: MemberId,
        /// Why, in words.
        reason: String,
    },
    /// Consents to a proposal (to remove a member, or welcome one back).
    Consent {
        /// The proposal.
        proposal: EntityId,
    },
    /// Withdraws one's own proposal.
    Withdraw {
        /// The proposal.
        proposal: EntityId,
    },
    /// Vouches that a new device, certified by the new member key its
    /// person made, is `target`'s: the first vouch proposes the recovery,
    /// later ones consent to it.
    Vouch {
        /// Whose it would be.
        target: MemberId,
        /// The new member key.
        key: MemberId,
        /// The new device.
        device: DeviceId,
        /// The new key's signature over the device (hex).
        cert: String,
        /// How the one vouching checked, in words.
        #[serde(default)]
        reason: String,
    },
    /// Sets how long a member's own devices may refuse a recovery, for
    /// recoveries vouched for from now on.
    RecoveryWait {
        /// Hours, between 24 and 336.
        hours: u64,
    },
    /// Refuses a request to become a device of the member acting.
    RefuseRecovery {
        /// The recovery.
        proposal: EntityId,
    },
    /// Carries a recovery through once its wait is over.
    CompleteRecovery {
        /// The recovery.
        proposal: EntityId,
    },
    /// Has the circle kept by a steward too (its ticket).
    AddSteward {
        /// The steward's ticket.
        ticket: String,
        /// Its id, as the ticket says.
        steward: DeviceId,
        /// What to call it ("Maya's Pi"); without one, it is called after
        /// who added it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Stops the circle using a steward.
    RemoveSteward {
        /// Its record in the circle.
        id: EntityId,
    },
}

impl Op {
    /// A short name for logs and lock holders, e.g. `checkin`.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Checkin { .. } => "checkin",
            Op::Reply { .. } => "reply",
            Op::Profile { .. } => "profile",
            Op::Moment { .. } => "moment",
            Op::Request {
                kind: RequestKind::Ask,
                ..
            } => "ask",
            Op::Request { .. } => "offer",
            Op::Hands { .. } => "hands",
            Op::Commit { .. } => "commit",
            Op::Close { .. } => "done",
            Op::Gathering { .. } => "gathering",
            Op::EditGathering { .. } => "gathering edit",
            Op::Rsvp { .. } => "rsvp",
            Op::WithdrawRsvp { .. } => "rsvp withdraw",
            Op::Bring { .. } => "bring",
            Op::Came { .. } => "came",
            Op::Away { .. } => "away",
            Op::Back => "back",
            Op::Leave { .. } => "circle leave",
            Op::NameDevice { .. } => "device name",
            Op::EditEntry { .. } => "edit",
            Op::WithdrawEntry { .. } => "withdraw",
            Op::RevokeInvite { .. } => "invite revoke",
            Op::RevokeDevice { .. } => "device revoke",
            Op::ProposeRemoval { .. } => "remove propose",
            Op::ProposeWelcome { .. } => "remove welcome-back",
            Op::Consent { .. } => "remove consent",
            Op::Withdraw { .. } => "remove withdraw",
            Op::Vouch { .. } => "vouch",
            Op::RecoveryWait { .. } => "recovery wait",
            Op::RefuseRecovery { .. } => "refuse",
            Op::CompleteRecovery { .. } => "recovery complete",
            Op::AddSteward { .. } => "steward add",
            Op::RemoveSteward { .. } => "steward remove",
        }
    }
}

impl Circle {
    /// Performs `op` as `me`. Returns the id of what it created, if anything.
    pub fn perform(
        &mut self,
        op: &Op,
        me: MemberId,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<Option<EntityId>, CoreError> {
        // Every op is named here, so a new one is sent somewhere on purpose.
        match op {
            Op::Gathering { .. }
            | Op::EditGathering { .. }
            | Op::Rsvp { .. }
            | Op::WithdrawRsvp { .. }
            | Op::Bring { .. }
            | Op::Came { .. } => self.perform_gathering(op, me, now, rng),
            Op::Leave { .. }
            | Op::NameDevice { .. }
            | Op::RevokeInvite { .. }
            | Op::RevokeDevice { .. }
            | Op::ProposeRemoval { .. }
            | Op::ProposeWelcome { .. }
            | Op::Consent { .. }
            | Op::Withdraw { .. }
            | Op::Vouch { .. }
            | Op::RecoveryWait { .. }
            | Op::RefuseRecovery { .. }
            | Op::CompleteRecovery { .. }
            | Op::AddSteward { .. }
            | Op::RemoveSteward { .. } => self.perform_membership(op, me, now, rng),
            Op::Checkin { .. }
            | Op::Reply { .. }
            | Op::Profile { .. }
            | Op::Moment { .. }
            | Op::Request { .. }
            | Op::Hands { .. }
            | Op::Commit { .. }
            | Op::Close { .. }
            | Op::Away { .. }
            | Op::EditEntry { .. }
            | Op::WithdrawEntry { .. }
            | Op::Back => self.perform_care(op, me, now, rng),
        }
    }

    /// What members say and do for each other: check-ins, moments, asks
    /// and offers, replies, profiles, stepping back, editing and
    /// withdrawing what they wrote.
    fn perform_care(
        &mut self,
        op: &Op,
        me: MemberId,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<Option<EntityId>, CoreError> {
        Ok(match op {
            Op::Checkin { mood, note } => Some(self.checkin(me, *mood, note, now, rng)?),
            Op::Reply { to, text } => Some(self.reply(*to, me, text, now, rng)?),
            Op::Profile {
                name,
                pronouns,
                remember,
                story,
            } => {
                let edit = ProfileEdit {
                    name: name.clone(),
                    pronouns: pronouns.clone(),
                    remember: remember.clone(),
                    story: story.clone(),
                };
                self.edit_profile(me, &edit, now)?;
                None
            }
            Op::Moment { text } => Some(self.moment(me, text, now, rng)?),
            Op::Request {
                kind,
                text,
                when,
                hands,
            } => Some(self.request_for(*kind, me, text, when, *hands, now, rng)?),
            Op::Hands { request, hands } => {
                self.set_hands(*request, me, *hands, now)?;
                None
            }
            Op::Commit { to, text } => Some(self.commit_to(*to, me, text, now, rng)?),
            Op::Close { request, thanks } => {
                self.close_request(*request, me, thanks, now)?;
                None
            }
            Op::Away { until, note } => {
                self.step_back(me, *until, note, now)?;
                None
            }
            Op::Back => {
                self.come_back(me, now)?;
                None
            }
            Op::EditEntry { id, text } => {
                self.edit_entry(*id, me, text, now)?;
                None
            }
            Op::WithdrawEntry { id } => {
                self.withdraw_entry(*id, me, now)?;
                None
            }
            other => unreachable!("{} is not a care op", other.name()),
        })
    }

    /// Gatherings: proposing and editing them, RSVPs, dishes, and who came.
    fn perform_gathering(
        &mut self,
        op: &Op,
        me: MemberId,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<Option<EntityId>, CoreError> {
        Ok(match op {
            Op::Gathering {
                title,
                starts,
                place,
                hosts,
                one_of_each,
            } => {
                let g = NewGathering {
                    title: title.clone(),
                    starts: zoned(starts)?,
                    place: place.clone(),
                    hosts: hosts.clone(),
                    one_of_each: *one_of_each,
                };
                Some(self.gathering(me, &g, now, rng)?)
            }
            Op::EditGathering {
                gathering,
                title,
                starts,
                place,
            } => {
                let edit = GatheringEdit {
                    title: title.clone(),
                    starts: starts.as_deref().map(zoned).transpose()?,
                    place: place.clone(),
                };
                self.edit_gathering(*gathering, me, &edit, now)?;
                None
            }
            Op::Rsvp {
                gathering,
                answer,
                note,
            } => {
                self.rsvp_noted(*gathering, me, *answer, note, now)?;
                None
            }
            Op::WithdrawRsvp { gathering } => {
                self.withdraw_rsvp(*gathering, me, now)?;
                None
            }
            Op::Bring {
                gathering,
                dish,
                dietary,
                instead,
            } => {
                if *instead {
                    self.withdraw_dishes(*gathering, me, now)?;
                }
                Some(self.bring(*gathering, me, dish, dietary, now, rng)?)
            }
            Op::Came { gathering, who } => {
                let who = if who.is_empty() {
                    vec![me]
                } else {
                    who.clone()
                };
                // Check everyone first, so the edit is all or nothing.
                for m in &who {
                    self.require_member(*m)?;
                }
                for m in who {
                    self.came(*gathering, m, me, now)?;
                }
                None
            }
            other => unreachable!("{} is not a gathering op", other.name()),
        })
    }

    /// Who is in and how: leaving, devices, invites, removals and welcomes by consent, recoveries, and stewards.
    fn perform_membership(
        &mut self,
        op: &Op,
        me: MemberId,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<Option<EntityId>, CoreError> {
        Ok(match op {
            Op::Leave { .. } => {
                self.leave(me, now)?;
                None
            }
            Op::NameDevice { name } => {
                self.name_device(name, now)?;
                None
            }
            Op::RevokeInvite { invite } => {
                self.revoke_invite(me, *invite, now)?;
                None
            }
            Op::RevokeDevice { device } => {
                self.revoke_device(me, *device, now)?;
                None
            }
            Op::ProposeRemoval { target, reason } => {
                Some(self.propose_removal(me, *target, reason, now, rng)?)
            }
            Op::ProposeWelcome { target, reason } => {
                Some(self.propose_welcome(me, *target, reason, now, rng)?)
            }
            Op::Consent { proposal } => {
                self.consent_removal(me, *proposal, now)?;
                None
            }
            Op::Withdraw { proposal } => {
                self.withdraw_removal(me, *proposal, now)?;
                None
            }
            Op::Vouch {
                target,
                key,
                device,
                cert,
                reason,
            } => {
                let cert = crate::DeviceCert::from_parts(*key, *device, cert)?;
                let wait = self.recovery_wait_hours();
                Some(self.vouch(me, *target, &cert, wait, reason, now, rng)?)
            }
            Op::RecoveryWait { hours } => {
                self.set_recovery_wait(me, *hours, now)?;
                None
            }
            Op::RefuseRecovery { proposal } => {
                self.refuse_recovery(me, *proposal, now)?;
                None
            }
            Op::CompleteRecovery { proposal } => {
                self.complete_recovery(me, *proposal, now)?;
                None
            }
            Op::AddSteward {
                ticket,
                steward,
                name,
            } => Some(
                self.add_steward(me, ticket, name.as_deref(), *steward, now, rng)?
                    .0,
            ),
            Op::RemoveSteward { id } => {
                self.remove_steward(me, *id, now)?;
                None
            }
            other => unreachable!("{} is not a membership op", other.name()),
        })
    }
}

/// One, the hands an ask needs unless it says.
fn one() -> u32 {
    1
}

/// A start as written in an op: RFC 9557, with its zone.
fn zoned(starts: &str) -> Result<jiff::ZonedDateTime, CoreError> {
    starts
        .parse()
        .map_err(|_| CoreError::Invalid(format!("{starts:?} is not a time with a time zone")))
}
