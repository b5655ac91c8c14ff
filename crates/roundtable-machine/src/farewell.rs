//! Telling a removed member (see `roundtable_core::farewell`): what this
//! device keeps of each removal it sees, what it hands a removed member's
//! device that asks, and, on a device refused as departed, asking for the
//! records that made it so and stopping serving a circle that removed it.

use std::time::Duration;

use roundtable_core::farewell::{Farewell, MAX_ASKED_HEADS};
use roundtable_core::wire::{FarewellReply, FarewellRequest};

use super::*;

/// A removed member's device is answered at most this often by one device,
/// and asks one device at most this often.
pub const FAREWELL_EVERY: Duration = Duration::from_secs(3600);
/// After a farewell that could not be carried (the peer was unreachable),
/// the device may ask that peer again this soon.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);
/// Room left in a message for the proofs beside the changes.
const ROOM_FOR_PROOFS: usize = 1024 * 1024;

/// What the machine keeps in memory of farewells given and asked for.
#[derive(Debug, Default)]
pub(crate) struct Farewells {
    /// When each removed device was last answered by this one.
    given: BTreeMap<DeviceId, Instant>,
    /// When this device may next ask a peer, per circle.
    next_ask: BTreeMap<(CircleId, DeviceId), Instant>,
}

impl Machine {
    /// Whether this device's member was removed from the circle by consent,
    /// as `membership` says.
    pub(crate) fn removed_here(&self, membership: &Membership) -> bool {
        membership.removed.contains(&self.mine(membership))
    }

    /// This device's member as `membership` knows them: the member whose
    /// id its member key is, or whom a recovery gave that key.
    pub(crate) fn mine(&self, membership: &Membership) -> MemberId {
        membership.acting_as(self.me.member.id())
    }

    /// Reads a circle's kept farewells.
    pub(crate) fn restore_farewells(&self, circle: CircleId) -> BTreeMap<MemberId, Farewell> {
        self.home
            .read_record(NodeRecord::Farewells(circle))
            .ok()
            .flatten()
            .and_then(|b| postcard::from_bytes::<Vec<Farewell>>(&b).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|f| (f.member, f))
            .collect()
    }

    /// Makes a farewell for every member the circle removed that this
    /// device has none for yet, from its copy as it stands, and keeps it.
    /// A copy in which something already builds on a removal makes none
    /// for it (something written after would go along): tried once a run.
    pub(crate) fn keep_farewells(&mut self, circle: CircleId) {
        let Some(me) = self.circles.get(&circle).map(|s| self.mine(&s.membership)) else {
            return;
        };
        let Some(served) = self.circles.get_mut(&circle) else {
            return;
        };
        // Someone welcomed back is told nothing of a removal that no
        // longer stands (a later one gets a farewell of its own).
        let kept = served.farewells.len();
        served
            .farewells
            .retain(|m, _| served.membership.removed.contains(m));
        served
            .farewell_tried
            .retain(|m| served.membership.removed.contains(m));
        let mut made = served.farewells.len() != kept;
        let due: Vec<MemberId> = served
            .membership
            .removed
            .iter()
            .filter(|m| **m != me && !served.farewells.contains_key(m))
            .filter(|m| !served.farewell_tried.contains(m))
            .copied()
            .collect();
        for member in due {
            served.farewell_tried.insert(member);
            let proofs = served.book.all();
            match Farewell::make(served.store.circle(), member, proofs, &self.me.device) {
                Some(f) => {
                    served.farewells.insert(member, f);
                    made = true;
                }
                None => debug!(
                    %circle,
                    "something here already builds on a removal; no farewell from this copy"
                ),
            }
        }
        if made {
            let all: Vec<&Farewell> = served.farewells.values().collect();
            if let Ok(bytes) = postcard::to_stdvec(&all)
                && let Err(e) =
                    self.home
                        .write_record(self.lock(), NodeRecord::Farewells(circle), &bytes)
            {
                warn!(%circle, "could not keep what to tell a removed member: {e}");
            }
        }
    }

    /// The devices that may ask this one for a farewell: of members a
    /// circle served here removed, and that this device has a farewell
    /// for; certified, and not revoked.
    pub(crate) fn farewell_devices(&mut self) -> BTreeSet<DeviceId> {
        let mut out = BTreeSet::new();
        for served in self.circles.values_mut() {
            if served.farewells.is_empty() {
                continue;
            }
            let view = served.read().view;
            for member in served.farewells.keys() {
                let Some(m) = view.members.get(member) else {
                    continue;
                };
                out.extend(m.devices.keys().copied().filter(|d| {
                    served.membership.certified.contains(d)
                        && !served.membership.revoked.contains(d)
                }));
            }
        }
        out
    }

    /// A device asked for its farewell: the changes up to its member's
    /// removal that it lacks, with their proofs; or why not.
    pub fn serve_farewell(
        &mut self,
        peer: DeviceId,
        request: FarewellRequest,
        now: Now,
    ) -> FarewellReply {
        let refused = |reason: &str| FarewellReply::Refused {
            reason: reason.to_owned(),
        };
        let circle = CircleId::from_bytes(request.circle);
        if !self.farewell_devices().contains(&peer) {
            return refused("this device has nothing to tell yours");
        }
        let Some(served) = self.circles.get_mut(&circle) else {
            return refused("this device has nothing to tell yours");
        };
        let view = served.read().view;
        let Some(farewell) = served
            .farewells
            .values()
            .find(|f| {
                view.members
                    .get(&f.member)
                    .is_some_and(|m| m.devices.contains_key(&peer))
            })
            .cloned()
        else {
            return refused("this device has nothing to tell yours about this circle");
        };
        if let Some(at) = self.farewells.given.get(&peer)
            && now.mono.saturating_duration_since(*at) < FAREWELL_EVERY
        {
            return refused("asked already within the hour");
        }
        let asked = &request.heads[..request.heads.len().min(MAX_ASKED_HEADS)];
        let (changes, heads) = match farewell.answer(served.store.circle(), asked) {
            Ok(answer) => answer,
            Err(e) => {
                warn!(%circle, "could not make a farewell: {e}");
                return refused("this device could not read its copy");
            }
        };
        if changes.len() > wire::MAX_MESSAGE - ROOM_FOR_PROOFS {
            return refused("more than one message holds");
        }
        self.farewells.given.insert(peer, now.mono);
        let who = view.name_of(&farewell.member);
        info!(%circle, "told a device of {who} that the circle removed them");
        FarewellReply::Changes { changes, heads }
    }

    /// A peer shut this device out as not admitted while this copy still
    /// has its member in: asks it, at most once an hour, what made it so.
    pub(crate) fn ask_farewell(&mut self, circle: CircleId, peer: DeviceId, now: Now) {
        let Some(served) = self.circles.get(&circle) else {
            return;
        };
        let me = self.mine(&served.membership);
        if !served.membership.members.contains(&me) {
            return;
        }
        let key = (circle, peer);
        if self
            .farewells
            .next_ask
            .get(&key)
            .is_some_and(|at| now.mono < *at)
        {
            return;
        }
        self.farewells
            .next_ask
            .insert(key, now.mono + FAREWELL_EVERY);
        let heads = served
            .store
            .circle()
            .heads()
            .iter()
            .take(MAX_ASKED_HEADS)
            .map(|h| h.0)
            .collect();
        let request = FarewellRequest {
            circle: *circle.as_bytes(),
            heads,
        };
        debug!(%circle, peer = %peer.fmt_short(), "refused as departed; asking why");
        self.outbox.push(Output::Farewell {
            circle,
            peer,
            request,
        });
    }

    /// What a peer answered this device's farewell request: `None` when it
    /// could not be asked (unreachable), so it may be asked again soon.
    /// Changes go through the same checks as any received.
    pub fn farewell_reply(
        &mut self,
        circle: CircleId,
        peer: DeviceId,
        reply: Option<FarewellReply>,
        now: Now,
        rng: &mut impl RngCore,
    ) {
        let (changes, heads) = match reply {
            None => {
                self.farewells
                    .next_ask
                    .insert((circle, peer), now.mono + RETRY_AFTER_FAILURE);
                return;
            }
            Some(FarewellReply::Refused { reason }) => {
                debug!(%circle, peer = %peer.fmt_short(), "no farewell: {reason}");
                return;
            }
            Some(FarewellReply::Changes { changes, heads }) => (changes, heads),
        };
        let Some(served) = self.circles.get_mut(&circle) else {
            return;
        };
        served.book.learn(circle, &heads);
        let before = served.store.circle().heads();
        let Served { store, book, .. } = served;
        let applied = match store
            .edit(|c| -> Result<_, StoreError> { Ok(c.apply_verified(&changes, book)?) })
        {
            Ok(applied) => applied,
            Err(e) => {
                debug!(%circle, peer = %peer.fmt_short(), "a farewell did not apply: {e}");
                return;
            }
        };
        self.note_refused(circle, peer, &applied);
        self.keep_book(circle);
        if self.circles[&circle].store.circle().heads() == before {
            return;
        }
        self.changed(circle, now);
        self.refresh_admitted(now, rng);
        self.settle_forks(circle, &applied, &before, now, rng);
    }

    /// This device's member was removed from the circle: it stops serving
    /// it to anyone (its peers are gone already, as the copy admits none
    /// of them to a device out), and leaves its topic. The copy is kept.
    pub(crate) fn unserve_removed(&mut self, circle: CircleId, now: Now) {
        let Some(served) = self.circles.get_mut(&circle) else {
            return;
        };
        // Should the circle welcome its member back, its devices come
        // with all they wrote meanwhile: start afresh with each.
        for p in served.peers.values_mut() {
            p.sync = PeerSync::fresh();
        }
        let name = served.store.circle().name();
        let reading = served.read();
        let notice = reading
            .membership
            .removal_notice(&reading.view, self.mine(&reading.membership))
            .unwrap_or_default();
        self.schedule
            .handle(schedule::Input::LetGo { circle }, now.mono);
        self.outbox.push(Output::Unfollow { circle });
        info!(%circle, "\"{name}\": {notice}");
    }
}
