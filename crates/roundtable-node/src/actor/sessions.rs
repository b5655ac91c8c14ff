//! Sessions: letting peers' connections in (within bounds), opening the
//! sync sessions the machine asks for, passing their frames to it, serving
//! joins, and noting where each device was reached.

use tracing::debug;

use super::*;
use crate::session;

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
    pub(super) async fn accept(&mut self, conn: Incoming) {
        let tx = self.sessions_tx.clone();
        match conn {
            Incoming::Sync(conn) => {
                let peer = conn.remote_id();
                let open = self.answering_per_peer.entry(peer).or_default();
                if *open >= MAX_ANSWERING_PER_PEER || self.answering.len() >= MAX_ANSWERING {
                    conn.close(1u32.into(), b"busy");
                    debug!(peer = %peer.fmt_short(), "refused a sync session: too many open");
                    self.note_dropped("too many sync sessions at once").await;
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
                    conn.close(1u32.into(), b"busy");
                    debug!("refused a join: too many at once");
                    self.note_dropped("too many joins at once").await;
                    return;
                }
                self.joining
                    .spawn(session::serve_join(conn, tx).instrument(self.span.clone()));
            }
            // Served within the joins' bound: both come from devices not
            // (or no longer) admitted.
            Incoming::Farewell(conn) => {
                if self.joining.len() >= MAX_JOINING {
                    conn.close(1u32.into(), b"busy");
                    debug!("refused a farewell: too many at once");
                    self.note_dropped("too many farewells at once").await;
                    return;
                }
                self.joining
                    .spawn(session::serve_farewell(conn, tx).instrument(self.span.clone()));
            }
        }
    }

    /// Opens the sync session the machine asked for.
    pub(super) fn open_session(&mut self, session: roundtable_machine::SessionId) {
        let dialer = self.dialer.clone();
        let tx = self.sessions_tx.clone();
        self.tasks
            .spawn(session::sync_as_opener(dialer, tx, session).instrument(self.span.clone()));
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

    /// Counts a connection refused for being one too many.
    async fn note_dropped(&self, reason: &'static str) {
        self.keeper
            .submit(move |k| {
                k.machine.note_dropped(reason);
            })
            .await;
    }

    /// Hands the machine what a session brought; the keeper gives the
    /// session its answer.
    pub(super) async fn handle_session(&mut self, req: SessionRequest) {
        if let SessionRequest::StewardBroken { session, .. } = &req {
            self.stewards.remove(session);
        }
        let at = now();
        self.keeper.submit(move |k| k.session(req, at)).await;
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

impl Kept {
    /// What a session brought, for the machine; its answer, for the session.
    fn session(&mut self, req: SessionRequest, at: Now) {
        let machine = &mut self.machine;
        match req {
            SessionRequest::Hello { peer, hello, reply } => {
                let _ = reply.send(machine.answer(peer, hello, at));
            }
            SessionRequest::Connected { session, reply } => {
                let _ = reply.send(machine.connected(session));
            }
            SessionRequest::Frame {
                session,
                frame,
                reply,
            } => {
                let _ = reply.send(machine.frame(session, frame, at, &mut rng()));
            }
            SessionRequest::Broken { session, refused } => {
                machine.broken(session, refused, at, &mut rng())
            }
            SessionRequest::Speaks { peer, version } => machine.peer_speaks(peer, version),
            SessionRequest::JoinServe {
                request,
                peer,
                reply,
            } => {
                let _ = reply.send(machine.serve_join(request, peer, at, &mut rng()));
            }
            SessionRequest::FarewellServe {
                peer,
                request,
                reply,
            } => {
                let _ = reply.send(machine.serve_farewell(peer, request, at));
            }
            SessionRequest::FarewellHeard {
                circle,
                peer,
                reply,
            } => machine.farewell_reply(circle, peer, reply, at, &mut rng()),
            SessionRequest::Remember(addr) => self.save_address(addr),
            SessionRequest::StewardReply { session, reply } => {
                let requests = machine.steward_reply(session, reply, at, &mut rng());
                self.extra.push(Output::StewardSend { session, requests });
            }
            SessionRequest::StewardBroken { session, why } => {
                machine.steward_broken(session, why, at)
            }
        }
    }
}
