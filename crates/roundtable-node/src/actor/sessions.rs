//! Sessions: letting peers' connections in (within bounds), opening the
//! sync sessions the machine asks for, passing their frames to it, serving
//! joins, and the address book of where each device was last reached.

use roundtable_net::EndpointAddr;
use roundtable_store::NodeRecord;
use tracing::{debug, warn};

use super::*;
use crate::session;

/// Where devices were last reached: read once at start, kept in memory,
/// written back when it changed (at most once every [`Self::EVERY`], and
/// when the node stops).
#[derive(Debug, Default)]
pub(super) struct AddressBook {
    pub(super) known: BTreeMap<EndpointId, EndpointAddr>,
    dirty: bool,
    written: Option<Instant>,
}

impl AddressBook {
    /// How often the book goes to disk at most.
    const EVERY: Duration = Duration::from_secs(30);
}

/// Sync sessions one peer may have open with us at once, counted from the
/// connection on (before its Hello is read).
const MAX_ANSWERING_PER_PEER: usize = 8;
/// Sync sessions peers may have open with us at once, in all.
const MAX_ANSWERING: usize = 256;
/// Join requests served at once.
const MAX_JOINING: usize = 16;

impl Actor {
    /// Starts serving a connection a peer opened, unless that peer (or
    /// everyone) already has as many open as we serve at once: then the
    /// connection is closed at once, before anything is read from it.
    pub(super) fn accept(&mut self, conn: Incoming) {
        let tx = self.sessions_tx.clone();
        match conn {
            Incoming::Sync(conn) => {
                let peer = conn.remote_id();
                let open = self.answering_per_peer.entry(peer).or_default();
                if *open >= MAX_ANSWERING_PER_PEER || self.answering.len() >= MAX_ANSWERING {
                    let n = self.machine.note_dropped("too many sync sessions at once");
                    debug!(peer = %peer.fmt_short(), count = n, "refused a sync session: too many open");
                    conn.close(1u32.into(), b"busy");
                    return;
                }
                *open += 1;
                self.answering.spawn(
                    async move {
                        session::sync_as_answerer(conn, tx).await;
                        peer
                    }
                    .instrument(self.span.clone()),
                );
            }
            Incoming::Join(conn) => {
                if self.joining.len() >= MAX_JOINING {
                    let n = self.machine.note_dropped("too many joins at once");
                    debug!(count = n, "refused a join: too many at once");
                    conn.close(1u32.into(), b"busy");
                    return;
                }
                self.joining
                    .spawn(session::serve_join(conn, tx).instrument(self.span.clone()));
            }
            // Served within the joins' bound: both come from devices not
            // (or no longer) admitted.
            Incoming::Farewell(conn) => {
                if self.joining.len() >= MAX_JOINING {
                    let n = self.machine.note_dropped("too many farewells at once");
                    debug!(count = n, "refused a farewell: too many at once");
                    conn.close(1u32.into(), b"busy");
                    return;
                }
                self.joining
                    .spawn(session::serve_farewell(conn, tx).instrument(self.span.clone()));
            }
        }
    }

    /// Opens the sync session the machine asked for.
    pub(super) fn open_session(
        &mut self,
        session: roundtable_machine::SessionId,
        frames: Vec<roundtable_core::wire::SyncFrame>,
    ) {
        let dialer = self.dialer.clone();
        let tx = self.sessions_tx.clone();
        self.tasks.spawn(
            session::sync_as_opener(dialer, tx, session, frames).instrument(self.span.clone()),
        );
    }

    /// Asks a peer for this device's farewell, as the machine said.
    pub(super) fn ask_farewell(
        &mut self,
        circle: roundtable_core::CircleId,
        peer: DeviceId,
        request: roundtable_core::wire::FarewellRequest,
    ) {
        let dialer = self.dialer.clone();
        let tx = self.sessions_tx.clone();
        self.tasks.spawn(
            session::ask_farewell(dialer, tx, circle, peer, request).instrument(self.span.clone()),
        );
    }

    /// Hands the machine what a session brought, and the session its answer.
    pub(super) fn handle_session(&mut self, req: SessionRequest) {
        let machine = &mut self.machine;
        match req {
            SessionRequest::Hello { peer, hello, reply } => {
                let _ = reply.send(machine.answer(peer, hello, now()));
            }
            SessionRequest::Frame {
                session,
                frame,
                reply,
            } => {
                let _ = reply.send(machine.frame(session, frame, now(), &mut rng()));
            }
            SessionRequest::Broken { session, refused } => {
                machine.broken(session, refused, now(), &mut rng())
            }
            SessionRequest::Speaks { peer, version } => machine.peer_speaks(peer, version),
            SessionRequest::JoinServe {
                request,
                peer,
                reply,
            } => {
                let _ = reply.send(machine.serve_join(request, peer, now(), &mut rng()));
            }
            SessionRequest::FarewellServe {
                peer,
                request,
                reply,
            } => {
                let _ = reply.send(machine.serve_farewell(peer, request, now()));
            }
            SessionRequest::FarewellHeard {
                circle,
                peer,
                reply,
            } => machine.farewell_reply(circle, peer, reply, now(), &mut rng()),
            SessionRequest::Remember(addr) => self.save_address(addr),
            SessionRequest::StewardReply { session, reply } => {
                let next = machine.steward_reply(session, reply, now(), &mut rng());
                self.steward_send(session, next);
            }
            SessionRequest::StewardBroken { session, why } => {
                self.stewards.remove(&session);
                machine.steward_broken(session, why, now());
            }
        }
    }

    /// Opens the steward session the machine asked for.
    pub(super) fn open_steward(
        &mut self,
        session: roundtable_machine::StewardSession,
        ticket: String,
        steward: DeviceId,
        first: Vec<roundtable_core::wire::StewardRequest>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.stewards.insert(session, tx);
        let dialer = self.dialer.clone();
        let actor = self.sessions_tx.clone();
        self.tasks.spawn(
            crate::steward::run(dialer, actor, session, ticket, steward, first, rx)
                .instrument(self.span.clone()),
        );
    }

    /// Sends on a steward session what the machine says.
    pub(super) fn steward_send(
        &mut self,
        session: roundtable_machine::StewardSession,
        requests: Vec<roundtable_core::wire::StewardRequest>,
    ) {
        if requests.is_empty() {
            return;
        }
        if let Some(tx) = self.stewards.get(&session)
            && tx.send(requests).is_err()
        {
            self.stewards.remove(&session);
        }
    }

    // --- the address book: where devices were last reached ---

    pub(super) fn load_addresses(&mut self) {
        let Some(bytes) = self.machine.read_record(NodeRecord::AddressBook) else {
            return;
        };
        let Ok(addrs) = serde_json::from_slice::<Vec<EndpointAddr>>(&bytes) else {
            warn!("the address book does not read; starting without it");
            return;
        };
        for a in addrs {
            self.dialer.add_addr(a.clone());
            self.addresses.known.insert(a.id, a);
        }
    }

    /// Notes where a device was reached (after a session with it went
    /// through); the book goes to disk later, with whatever else changed.
    pub(super) fn save_address(&mut self, addr: EndpointAddr) {
        if self.addresses.known.get(&addr.id) != Some(&addr) {
            self.addresses.known.insert(addr.id, addr);
            self.addresses.dirty = true;
        }
    }

    /// Writes the address book when it changed, at most once every
    /// [`AddressBook::EVERY`] (or now, when the node stops): a session's
    /// end never waits on the disk for it.
    pub(super) fn keep_addresses(&mut self, now: bool) {
        let book = &mut self.addresses;
        let due = book
            .written
            .is_none_or(|at| at.elapsed() >= AddressBook::EVERY);
        if !book.dirty || !(now || due) {
            return;
        }
        book.dirty = false;
        book.written = Some(Instant::now());
        let all: Vec<&EndpointAddr> = book.known.values().collect();
        if let Ok(bytes) = serde_json::to_vec_pretty(&all)
            && let Err(e) = self.machine.write_record(NodeRecord::AddressBook, &bytes)
        {
            debug!("could not save the address book: {e}");
        }
    }

    /// Asks the endpoint where `peer` was reached, and keeps it in the
    /// address book so the next run can dial it before anyone else speaks.
    pub(super) fn remember_addr(&mut self, peer: DeviceId) {
        let Some(peer) = endpoint_of(peer) else {
            return;
        };
        let dialer = self.dialer.clone();
        let tx = self.sessions_tx.clone();
        self.tasks.spawn(
            async move {
                if let Some(addr) = dialer.known_addr(peer).await {
                    let _ = tx.send(SessionRequest::Remember(addr)).await;
                }
            }
            .instrument(self.span.clone()),
        );
    }
}
