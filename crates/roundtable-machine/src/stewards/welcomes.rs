//! Invites that wait: a welcome for each ticket this device makes where
//! the circle has stewards, left at each of them (and forgotten there when
//! the invite is revoked) until it expires.

use super::*;

/// A welcome to leave at the stewards for a ticket this device made.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct PendingWelcome {
    pub(super) invite: EntityId,
    pub(super) slot: [u8; 32],
    pub(super) forget: [u8; 32],
    pub(super) bytes: Vec<u8>,
    pub(super) expires_at: i64,
    /// The stewards it was left at.
    pub(super) left: BTreeSet<EntityId>,
    /// Revoked: to be forgotten at each steward it was left at.
    pub(super) revoked: bool,
}

impl Machine {
    /// Keeps a welcome for a ticket this device just made, to leave at
    /// every steward of the circle (at once where one is watched).
    pub(crate) fn keep_welcome(
        &mut self,
        circle: CircleId,
        invite: EntityId,
        secret: &roundtable_core::InviteSecret,
        kind: roundtable_core::InviteKind,
        expires_at: Timestamp,
        rng: &mut impl RngCore,
    ) {
        if self.usable_stewards(circle).is_empty() {
            return;
        }
        let Ok(heads) = self.signed_heads(circle) else {
            return;
        };
        let member_key =
            (kind == roundtable_core::InviteKind::Device).then(|| *self.me.member.to_seed());
        let served = self.circles.get_mut(&circle).expect("served");
        let Some(key) = served.keys.offer() else {
            return;
        };
        let welcome = st::WaitingWelcome {
            circle: roundtable_core::wire::WelcomeCircle {
                doc: served.store.circle().save(),
                key,
                heads,
            },
            member_key,
        };
        let slot = st::WelcomeSlot::of(circle, secret);
        served.stewards.kept.welcomes.push(PendingWelcome {
            invite,
            slot: slot.name(),
            forget: slot.forget_token(),
            bytes: slot.seal(&welcome, rng),
            expires_at: expires_at.as_millis(),
            left: BTreeSet::new(),
            revoked: false,
        });
        served.stewards.dirty = true;
        self.send_welcomes(circle);
    }

    /// An invite of this device was revoked: its welcomes are forgotten
    /// at every steward they were left at.
    pub(crate) fn forget_welcome(&mut self, circle: CircleId, invite: EntityId) {
        let Some(served) = self.circles.get_mut(&circle) else {
            return;
        };
        for p in &mut served.stewards.kept.welcomes {
            if p.invite == invite {
                p.revoked = true;
                served.stewards.dirty = true;
            }
        }
        self.send_welcomes(circle);
    }

    fn send_welcomes(&mut self, circle: CircleId) {
        let Some(served) = self.circles.get(&circle) else {
            return;
        };
        let watching: Vec<(EntityId, u64)> = served
            .stewards
            .links
            .iter()
            .filter_map(|(id, l)| {
                let o = l.open.as_ref()?;
                (o.watching && !o.visit).then_some((*id, o.token))
            })
            .collect();
        for (steward, token) in watching {
            let session = StewardSession {
                circle,
                steward,
                token,
            };
            let requests = self.welcomes_for(session);
            if !requests.is_empty() {
                self.outbox.push(Output::StewardSend { session, requests });
            }
        }
    }

    /// The welcomes to leave at (or forget from) a watched steward.
    pub(super) fn welcomes_for(&mut self, session: StewardSession) -> Vec<StewardRequest> {
        let Some(served) = self.circles.get_mut(&session.circle) else {
            return Vec::new();
        };
        let now_ms = served.stewards.kept.reached.get(&session.steward).copied();
        let Some(open) = served
            .stewards
            .links
            .get_mut(&session.steward)
            .and_then(|l| l.open.as_mut())
        else {
            return Vec::new();
        };
        let in_flight: BTreeSet<[u8; 32]> = open
            .expect
            .iter()
            .filter_map(|e| match e {
                Expect::Left { slot, .. } => Some(*slot),
                _ => None,
            })
            .collect();
        let mut out = Vec::new();
        for p in &served.stewards.kept.welcomes {
            if in_flight.contains(&p.slot) || now_ms.is_some_and(|t| p.expires_at <= t) {
                continue;
            }
            let here = p.left.contains(&session.steward);
            if p.revoked && here {
                open.expect.push_back(Expect::Left {
                    slot: p.slot,
                    forgot: true,
                });
                out.push(StewardRequest::Forget { token: p.forget });
            } else if !p.revoked && !here {
                open.expect.push_back(Expect::Left {
                    slot: p.slot,
                    forgot: false,
                });
                out.push(StewardRequest::Leave {
                    slot: p.slot,
                    bytes: p.bytes.clone(),
                    expires_at: p.expires_at,
                });
            }
        }
        out
    }
}
