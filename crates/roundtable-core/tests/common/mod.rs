//! Shared fixtures for the core's tests: a circle with a few members, and
//! random edits of every kind the circle supports.

#![allow(clippy::unwrap_used)]
#![allow(dead_code, unreachable_pub, missing_docs)]

use rand::{Rng, RngCore};
use roundtable_core::{
    Answer, Circle, DeviceKey, EntityId, MemberKey, Mood, NewGathering, Profile, ProfileEdit,
    RequestKind, Timestamp,
};

pub const T0: i64 = 1_795_464_000_000;

/// Members 0..3 exist in the base circle; member 3 joins only through edits,
/// possibly on several copies at once.
pub struct Cast {
    pub members: Vec<MemberKey>,
}

impl Cast {
    pub fn new(seed: u8) -> Self {
        let members = (0..4u8)
            .map(|i| MemberKey::from_seed(&[seed.wrapping_mul(31).wrapping_add(i); 32]))
            .collect();
        Self { members }
    }

    /// A circle founded by member 0 with members 1 and 2.
    pub fn circle(&self) -> Circle {
        let founder_dev = DeviceKey::from_seed(&[200; 32]);
        let mut rng = rand::rng();
        let mut c = Circle::create(
            "Tuesday Supper",
            "soup and company",
            &self.members[0].certify(founder_dev.id()),
            &Profile::named("Maya"),
            Timestamp::from_millis(T0),
            &mut rng,
        )
        .unwrap();
        for (i, name) in [(1, "Sam"), (2, "Ada")] {
            let dev = DeviceKey::from_seed(&[201 + i as u8; 32]);
            c.add_member(
                &self.members[i].certify(dev.id()),
                &Profile::named(name),
                Some(self.members[0].id()),
                Timestamp::from_millis(T0 + i as i64),
            )
            .unwrap();
        }
        c
    }

    /// A copy of `base` as held by a new device of member `owner`.
    pub fn fork(&self, base: &Circle, copy: u8) -> Circle {
        let mut c = Circle::load(&base.save()).unwrap();
        let dev = DeviceKey::from_seed(&[100 + copy; 32]);
        c.set_device(dev.id());
        c
    }
}

/// One edit a person could make.
#[derive(Debug, Clone)]
pub enum Edit {
    Checkin {
        member: usize,
        mood: usize,
        note: u8,
    },
    Reply {
        member: usize,
        target: usize,
        text: u8,
    },
    Profile {
        member: usize,
        field: usize,
        value: u8,
    },
    CircleName(u8),
    CircleAbout(u8),
    Join {
        device: u8,
    },
    Moment {
        member: usize,
        text: u8,
    },
    Request {
        member: usize,
        offer: bool,
        text: u8,
    },
    Commit {
        member: usize,
        target: usize,
        text: u8,
    },
    Close {
        member: usize,
        target: usize,
        text: u8,
    },
    Gathering {
        member: usize,
        title: u8,
    },
    Rsvp {
        member: usize,
        target: usize,
        answer: usize,
    },
    Bring {
        member: usize,
        target: usize,
        dish: u8,
    },
    Came {
        member: usize,
        target: usize,
        who: usize,
    },
    Away {
        member: usize,
        until: bool,
    },
    Back {
        member: usize,
    },
}

impl Edit {
    pub fn random(rng: &mut impl Rng) -> Self {
        let m = rng.random_range(0..4);
        match rng.random_range(0..20) {
            10 => Edit::Moment {
                member: m,
                text: rng.random_range(0..3),
            },
            11 => Edit::Request {
                member: m,
                offer: rng.random_bool(0.3),
                text: rng.random_range(0..3),
            },
            12 => Edit::Commit {
                member: m,
                target: rng.random_range(0..4),
                text: rng.random_range(0..3),
            },
            13 => Edit::Close {
                member: m,
                target: rng.random_range(0..4),
                text: rng.random_range(0..3),
            },
            14 => Edit::Gathering {
                member: m,
                title: rng.random_range(0..3),
            },
            15 => Edit::Rsvp {
                member: m,
                target: rng.random_range(0..4),
                answer: rng.random_range(0..3),
            },
            16 => Edit::Bring {
                member: m,
                target: rng.random_range(0..4),
                dish: rng.random_range(0..3),
            },
            17 => Edit::Came {
                member: m,
                target: rng.random_range(0..4),
                who: rng.random_range(0..4),
            },
            18 => Edit::Away {
                member: m,
                until: rng.random_bool(0.5),
            },
            19 => Edit::Back { member: m },
            0..=3 => Edit::Checkin {
                member: rng.random_range(0..4),
                mood: rng.random_range(0..4),
                note: rng.random_range(0..4),
            },
            4..=5 => Edit::Reply {
                member: rng.random_range(0..4),
                target: rng.random_range(0..8),
                text: rng.random_range(0..4),
            },
            6..=7 => Edit::Profile {
                member: rng.random_range(0..4),
                field: rng.random_range(0..4),
                value: rng.random_range(0..3),
            },
            8 => {
                if rng.random_bool(0.5) {
                    Edit::CircleName(rng.random_range(0..3))
                } else {
                    Edit::CircleAbout(rng.random_range(0..3))
                }
            }
            _ => Edit::Join {
                device: rng.random_range(0..3),
            },
        }
    }

    /// Applies the edit the way the app would: edits the rules refuse (a
    /// non-member checking in, a reply to nothing) change nothing.
    /// Returns the entity created, if any.
    pub fn apply(
        &self,
        c: &mut Circle,
        cast: &Cast,
        now: i64,
        rng: &mut impl RngCore,
    ) -> Option<EntityId> {
        let now = Timestamp::from_millis(now);
        match *self {
            Edit::Checkin { member, mood, note } => c
                .checkin(
                    cast.members[member].id(),
                    Mood::ALL[mood],
                    &format!("note {note}"),
                    now,
                    rng,
                )
                .ok(),
            Edit::Reply {
                member,
                target,
                text,
            } => {
                let view = c.view();
                let targets: Vec<EntityId> = view
                    .checkins
                    .keys()
                    .chain(view.moments.keys())
                    .chain(view.requests.keys())
                    .copied()
                    .collect();
                let to = *targets.get(target % targets.len().max(1))?;
                c.reply(
                    to,
                    cast.members[member].id(),
                    &format!("reply {text}"),
                    now,
                    rng,
                )
                .ok()
            }
            Edit::Profile {
                member,
                field,
                value,
            } => {
                let v = Some(format!("value {value}"));
                let edit = match field {
                    0 => ProfileEdit {
                        name: v,
                        ..Default::default()
                    },
                    1 => ProfileEdit {
                        pronouns: v,
                        ..Default::default()
                    },
                    2 => ProfileEdit {
                        remember: v,
                        ..Default::default()
                    },
                    _ => ProfileEdit {
                        story: v,
                        ..Default::default()
                    },
                };
                c.edit_profile(cast.members[member].id(), &edit, now).ok();
                None
            }
            Edit::CircleName(v) => {
                c.edit_circle(Some(&format!("Supper {v}")), None, now)
                    .unwrap();
                None
            }
            Edit::CircleAbout(v) => {
                c.edit_circle(None, Some(&format!("about {v}")), now)
                    .unwrap();
                None
            }
            Edit::Join { device } => {
                let dev = DeviceKey::from_seed(&[150 + device; 32]);
                c.add_member(
                    &cast.members[3].certify(dev.id()),
                    &Profile::named(format!("Newcomer {device}")),
                    Some(cast.members[0].id()),
                    now,
                )
                .unwrap();
                None
            }
            Edit::Moment { member, text } => c
                .moment(
                    cast.members[member].id(),
                    &format!("moment {text}"),
                    now,
                    rng,
                )
                .ok(),
            Edit::Request {
                member,
                offer,
                text,
            } => {
                let kind = if offer {
                    RequestKind::Offer
                } else {
                    RequestKind::Ask
                };
                c.request(
                    kind,
                    cast.members[member].id(),
                    &format!("help {text}"),
                    "Tuesday",
                    now,
                    rng,
                )
                .ok()
            }
            Edit::Commit {
                member,
                target,
                text,
            } => {
                let to = pick(c.view().requests.keys(), target)?;
                c.commit_to(
                    to,
                    cast.members[member].id(),
                    &format!("I'll do {text}"),
                    now,
                    rng,
                )
                .ok()
            }
            Edit::Close {
                member,
                target,
                text,
            } => {
                let to = pick(c.view().requests.keys(), target)?;
                c.close_request(
                    to,
                    cast.members[member].id(),
                    &format!("thanks {text}"),
                    now,
                )
                .ok();
                None
            }
            Edit::Gathering { member, title } => {
                let g = NewGathering {
                    title: format!("Supper {title}"),
                    starts: "2026-12-01T19:00:00-05:00[America/New_York]"
                        .parse()
                        .unwrap(),
                    place: "Ada's kitchen".into(),
                    hosts: vec![],
                    one_of_each: false,
                };
                c.gathering(cast.members[member].id(), &g, now, rng).ok()
            }
            Edit::Rsvp {
                member,
                target,
                answer,
            } => {
                let to = pick(c.view().gatherings.keys(), target)?;
                let a = [Answer::Yes, Answer::No, Answer::Maybe][answer];
                c.rsvp(to, cast.members[member].id(), a, now).ok();
                None
            }
            Edit::Bring {
                member,
                target,
                dish,
            } => {
                let to = pick(c.view().gatherings.keys(), target)?;
                c.bring(
                    to,
                    cast.members[member].id(),
                    &format!("dish {dish}"),
                    "vegan",
                    now,
                    rng,
                )
                .ok()
            }
            Edit::Came {
                member,
                target,
                who,
            } => {
                let to = pick(c.view().gatherings.keys(), target)?;
                c.came(to, cast.members[who].id(), cast.members[member].id(), now)
                    .ok();
                None
            }
            Edit::Away { member, until } => {
                let until = until.then(|| now.plus_millis(7 * 86_400_000));
                c.step_back(cast.members[member].id(), until, "resting", now)
                    .ok();
                None
            }
            Edit::Back { member } => {
                c.come_back(cast.members[member].id(), now).ok();
                None
            }
        }
    }
}

fn pick<'a>(ids: impl Iterator<Item = &'a EntityId>, i: usize) -> Option<EntityId> {
    let ids: Vec<EntityId> = ids.copied().collect();
    ids.get(i % ids.len().max(1)).copied()
}
