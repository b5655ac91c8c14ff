//! The protocols' sessions, each in a task of its own: sync as the opener
//! or the answerer, and join as the inviter or the joiner. Sessions only
//! move bytes, within their size limits and timeouts: what to send next
//! is the machine's to say (see `roundtable_machine`), asked for through
//! the actor.

use std::time::Duration;

use roundtable_core::DeviceId;
use roundtable_core::wire::{
    self, FarewellReply, FarewellRequest, JoinReply, JoinRequest, MAX_MESSAGE, SyncFrame,
};
use roundtable_machine::{MAX_OPENING, SessionError, SessionId, Step, Welcome};
use roundtable_net::framing::{read_frame, write_frame};
use roundtable_net::{
    CircleTicket, Connection, Dialer, EndpointAddr, EndpointId, FAREWELL_ALPN, JOIN_ALPN,
    SYNC_ALPN, close_naming_version, closed_as_not_admitted, closed_naming_version,
};
use roundtable_store::Identity;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use tracing::debug;

use crate::{NodeError, ProtocolError};

/// The longest wait for any one step of a session.
const STEP: Duration = Duration::from_secs(20);
/// The largest join request accepted (it holds a name and a certificate).
const MAX_JOIN_REQUEST: usize = 16 * 1024;

/// What sessions (and the node's other tasks) ask of the actor, apart
/// from the public API the handle speaks ([`crate::handle::Request`]).
/// Each is one input of the machine.
#[derive(Debug)]
pub(crate) enum SessionRequest {
    /// A peer opened a sync session with this frame: the session, if it
    /// is let in, and what to send.
    Hello {
        peer: DeviceId,
        hello: SyncFrame,
        reply: oneshot::Sender<(Option<SessionId>, Step)>,
    },
    /// The session this device opened reached its peer: its first
    /// frames.
    Connected {
        session: SessionId,
        reply: oneshot::Sender<Step>,
    },
    /// The peer of a session sent a frame: what to send back.
    Frame {
        session: SessionId,
        frame: SyncFrame,
        reply: oneshot::Sender<Step>,
    },
    /// The session broke before the machine ended it.
    Broken {
        session: SessionId,
        /// The peer closed us out as not admitted (it knows we departed).
        refused: bool,
    },
    JoinServe {
        request: JoinRequest,
        peer: DeviceId,
        reply: oneshot::Sender<JoinReply>,
    },
    /// A removed member's device asks for its farewell.
    FarewellServe {
        peer: DeviceId,
        request: FarewellRequest,
        reply: oneshot::Sender<FarewellReply>,
    },
    /// What a peer answered this device's farewell request (`None`: it
    /// could not be had).
    FarewellHeard {
        circle: roundtable_core::CircleId,
        peer: DeviceId,
        reply: Option<FarewellReply>,
    },
    /// Where a peer was reached, for the address book.
    Remember(EndpointAddr),
    /// A steward answered, or something arrived on a watched shelf.
    StewardReply {
        session: roundtable_machine::StewardSession,
        reply: roundtable_core::wire::StewardReply,
    },
    /// A sync with a peer failed on the wire version: it speaks `version`.
    Speaks { peer: DeviceId, version: u8 },
    /// A steward session broke.
    StewardBroken {
        session: roundtable_machine::StewardSession,
        why: String,
    },
}

type Send = roundtable_net::framing::SendHalf;
type Recv = roundtable_net::framing::RecvHalf;

async fn step<T, E: std::fmt::Display>(
    what: &'static str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, NodeError> {
    match timeout(STEP, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ProtocolError::Step {
            step: what,
            why: e.to_string(),
        }
        .into()),
        Err(_) => Err(ProtocolError::Silent { step: what }.into()),
    }
}

async fn send_frame(send: &mut Send, frame: &SyncFrame) -> Result<(), NodeError> {
    step("sending", write_frame(send, &wire::encode(frame))).await
}

async fn recv_frame_of(recv: &mut Recv, max: usize) -> Result<SyncFrame, NodeError> {
    let bytes = step("receiving", read_frame(recv, max))
        .await?
        .ok_or_else(|| {
            NodeError::Protocol(ProtocolError::EndedEarly(
                "the peer ended the session early",
            ))
        })?;
    wire::decode(&bytes).map_err(|e| NodeError::Protocol(e.into()))
}

async fn ask<T>(
    actor: &mpsc::Sender<SessionRequest>,
    make: impl FnOnce(oneshot::Sender<T>) -> SessionRequest,
) -> Result<T, NodeError> {
    let (reply, rx) = oneshot::channel();
    actor
        .send(make(reply))
        .await
        .map_err(|_| NodeError::Closed)?;
    rx.await.map_err(|_| NodeError::Closed)
}

/// Opens the sync session the machine asked for, sends its first frames,
/// and carries the rest of it.
pub(crate) async fn sync_as_opener(
    dialer: Dialer,
    actor: mpsc::Sender<SessionRequest>,
    session: SessionId,
) {
    let mut conn = None;
    if let Err(e) = open_sync(&dialer, &actor, session, &mut conn).await {
        // A peer that closed us out as not admitted knows we departed.
        let refused = conn.as_ref().is_some_and(closed_as_not_admitted);
        // A peer that does not speak our wire version said which it speaks.
        if let Some(version) = conn.as_ref().and_then(closed_naming_version) {
            tell_speaks(&actor, session.peer, version).await;
        }
        broken(&actor, session, e, refused).await;
    }
}

/// Tells the actor that `peer` speaks another wire version.
async fn tell_speaks(actor: &mpsc::Sender<SessionRequest>, peer: DeviceId, version: u8) {
    debug!(peer = %peer.fmt_short(), version, "the peer speaks another wire version");
    let _ = actor.send(SessionRequest::Speaks { peer, version }).await;
}

/// Tells the actor a session broke (if the machine had not ended it
/// already, it ends it now as failed).
async fn broken(
    actor: &mpsc::Sender<SessionRequest>,
    session: SessionId,
    e: NodeError,
    refused: bool,
) {
    let (peer, circle) = (session.peer.fmt_short(), session.circle);
    debug!(%peer, %circle, "sync did not complete: {e}");
    let _ = actor
        .send(SessionRequest::Broken { session, refused })
        .await;
}

async fn open_sync(
    dialer: &Dialer,
    actor: &mpsc::Sender<SessionRequest>,
    session: SessionId,
    slot: &mut Option<Connection>,
) -> Result<(), NodeError> {
    let peer = EndpointId::from_bytes(session.peer.as_bytes())
        .map_err(|e| NodeError::Protocol(ProtocolError::NotADevice(e.to_string())))?;
    let conn = step(
        "connecting",
        dialer.connect(EndpointAddr::from(peer), SYNC_ALPN),
    )
    .await?;
    *slot = Some(conn.clone());
    let (mut send, mut recv) = step("opening a stream", conn.open_bi()).await?;
    // The first round goes out with the Hello, without waiting for Ready:
    // the answerer reads it only once it has let us in, and drops it with
    // the stream when it does not.
    let first = ask(actor, |reply| SessionRequest::Connected { session, reply }).await?;
    for frame in &first.send {
        send_frame(&mut send, frame).await?;
    }
    ended(first.end)?;
    carry(actor, session, &mut send, &mut recv, MAX_OPENING).await?;
    let _ = send.finish();
    // Wait for the answerer to finish too, then close.
    let _ = timeout(STEP, read_frame(&mut recv, 16)).await;
    conn.close(0u32.into(), b"synced");
    Ok(())
}

/// Answers a sync session a peer opened.
pub(crate) async fn sync_as_answerer(conn: Connection, actor: mpsc::Sender<SessionRequest>) {
    let peer = conn.remote_id();
    let mut admitted = None;
    if let Err(e) = answer_sync(&conn, &actor, &mut admitted).await {
        match admitted {
            Some(session) => broken(&actor, session, e, false).await,
            None => debug!(peer = %peer.fmt_short(), "answering sync did not complete: {e}"),
        }
    }
}

async fn answer_sync(
    conn: &Connection,
    actor: &mpsc::Sender<SessionRequest>,
    admitted: &mut Option<SessionId>,
) -> Result<(), NodeError> {
    let peer = DeviceId::from_bytes(*conn.remote_id().as_bytes());
    let (mut send, mut recv) = step("accepting a stream", conn.accept_bi()).await?;
    let bytes = step("receiving", read_frame(&mut recv, MAX_OPENING))
        .await?
        .ok_or_else(|| {
            NodeError::Protocol(ProtocolError::EndedEarly(
                "the peer ended the session early",
            ))
        })?;
    let hello = match wire::decode::<SyncFrame>(&bytes) {
        Ok(hello) => hello,
        // Another version: the peer is told ours, and status says which
        // of the two needs an update.
        Err(wire::WireError::Version { found }) => {
            close_naming_version(conn);
            tell_speaks(actor, peer, found).await;
            return Err(ProtocolError::Version(found.into()).into());
        }
        Err(e) => return Err(ProtocolError::Wire(e).into()),
    };
    let (session, first) = ask(actor, |reply| SessionRequest::Hello { peer, hello, reply }).await?;
    *admitted = session;
    for frame in &first.send {
        send_frame(&mut send, frame).await?;
    }
    if let (Some(session), None) = (session, &first.end) {
        carry(actor, session, &mut send, &mut recv, MAX_MESSAGE).await?;
    }
    let _ = send.finish();
    let _ = timeout(STEP, conn.closed()).await;
    Ok(())
}

/// Carries a session: each frame the peer sends goes to the machine, and
/// what it says goes back, until it says the session is over. The first
/// frame read may be at most `first_max` bytes (before the answerer has let
/// this device in, only a short Ready or Refused).
async fn carry(
    actor: &mpsc::Sender<SessionRequest>,
    session: SessionId,
    send: &mut Send,
    recv: &mut Recv,
    first_max: usize,
) -> Result<(), NodeError> {
    let mut max = first_max;
    loop {
        let frame = recv_frame_of(recv, max).await?;
        max = MAX_MESSAGE;
        let step = ask(actor, |reply| SessionRequest::Frame {
            session,
            frame,
            reply,
        })
        .await?;
        for frame in &step.send {
            send_frame(send, frame).await?;
        }
        if step.end.is_some() {
            return ended(step.end);
        }
    }
}

/// How a step of the machine's ends the session: `Ok` also while it goes on.
fn ended(end: Option<Result<(), SessionError>>) -> Result<(), NodeError> {
    match end {
        None | Some(Ok(())) => Ok(()),
        Some(Err(SessionError::Refused(reason))) => Err(NodeError::Refused(reason)),
        Some(Err(why)) => Err(ProtocolError::Session(why).into()),
    }
}

/// Serves a device redeeming an invite.
pub(crate) async fn serve_join(conn: Connection, actor: mpsc::Sender<SessionRequest>) {
    let peer = conn.remote_id();
    if let Err(e) = answer_join(&conn, &actor, peer).await {
        debug!(peer = %peer.fmt_short(), "join did not complete: {e}");
    }
}

async fn answer_join(
    conn: &Connection,
    actor: &mpsc::Sender<SessionRequest>,
    peer: EndpointId,
) -> Result<(), NodeError> {
    let (mut send, mut recv) = step("accepting a stream", conn.accept_bi()).await?;
    let bytes = step("receiving", read_frame(&mut recv, MAX_JOIN_REQUEST))
        .await?
        .ok_or_else(|| NodeError::Protocol(ProtocolError::EndedEarly("no join request")))?;
    let reply = match wire::decode::<JoinRequest>(&bytes) {
        Ok(request) => {
            ask(actor, |reply| SessionRequest::JoinServe {
                request,
                peer: DeviceId::from_bytes(*peer.as_bytes()),
                reply,
            })
            .await?
        }
        Err(e) => JoinReply::Refused {
            reason: format!("the join request could not be read ({e}); update Roundtable"),
        },
    };
    step("sending", write_frame(&mut send, &wire::encode(&reply))).await?;
    let _ = send.finish();
    let _ = timeout(STEP, conn.closed()).await;
    Ok(())
}

/// Answers a removed member's device asking for its farewell: one request
/// (at most [`roundtable_core::farewell::MAX_REQUEST`] bytes, refused
/// before allocating beyond), one answer.
pub(crate) async fn serve_farewell(conn: Connection, actor: mpsc::Sender<SessionRequest>) {
    let peer = conn.remote_id();
    if let Err(e) = answer_farewell(&conn, &actor, peer).await {
        debug!(peer = %peer.fmt_short(), "farewell did not complete: {e}");
    }
}

async fn answer_farewell(
    conn: &Connection,
    actor: &mpsc::Sender<SessionRequest>,
    peer: EndpointId,
) -> Result<(), NodeError> {
    let (mut send, mut recv) = step("accepting a stream", conn.accept_bi()).await?;
    let max = roundtable_core::farewell::MAX_REQUEST;
    let bytes = step("receiving", read_frame(&mut recv, max))
        .await?
        .ok_or_else(|| NodeError::Protocol(ProtocolError::EndedEarly("no farewell request")))?;
    let reply = match wire::decode::<FarewellRequest>(&bytes) {
        Ok(request) => {
            ask(actor, |reply| SessionRequest::FarewellServe {
                peer: DeviceId::from_bytes(*peer.as_bytes()),
                request,
                reply,
            })
            .await?
        }
        Err(e) => FarewellReply::Refused {
            reason: format!("the request could not be read ({e})"),
        },
    };
    step("sending", write_frame(&mut send, &wire::encode(&reply))).await?;
    let _ = send.finish();
    let _ = timeout(STEP, conn.closed()).await;
    Ok(())
}

/// Asks `peer` for this device's farewell from `circle`, and hands the
/// answer to the actor (`None` when it could not be had).
pub(crate) async fn ask_farewell(
    dialer: Dialer,
    actor: mpsc::Sender<SessionRequest>,
    circle: roundtable_core::CircleId,
    peer: DeviceId,
    request: FarewellRequest,
) {
    let reply = match farewell_of(&dialer, peer, &request).await {
        Ok(reply) => Some(reply),
        Err(e) => {
            debug!(peer = %peer.fmt_short(), "no farewell: {e}");
            None
        }
    };
    let _ = actor
        .send(SessionRequest::FarewellHeard {
            circle,
            peer,
            reply,
        })
        .await;
}

async fn farewell_of(
    dialer: &Dialer,
    peer: DeviceId,
    request: &FarewellRequest,
) -> Result<FarewellReply, NodeError> {
    let id = EndpointId::from_bytes(peer.as_bytes())
        .map_err(|e| NodeError::Protocol(ProtocolError::NotADevice(e.to_string())))?;
    let conn = step(
        "connecting",
        dialer.connect(EndpointAddr::from(id), FAREWELL_ALPN),
    )
    .await?;
    let (mut send, mut recv) = step("opening a stream", conn.open_bi()).await?;
    step("sending", write_frame(&mut send, &wire::encode(request))).await?;
    let _ = send.finish();
    let bytes = step("receiving", read_frame(&mut recv, MAX_MESSAGE))
        .await?
        .ok_or_else(|| NodeError::Protocol(ProtocolError::EndedEarly("the peer said nothing")))?;
    conn.close(0u32.into(), b"thanks");
    wire::decode::<FarewellReply>(&bytes).map_err(|e| NodeError::Protocol(e.into()))
}

/// Redeems a ticket at the inviting device and returns what it hands over.
/// Works with or without a node running here: it only needs a dialer.
pub async fn redeem_ticket(
    dialer: &Dialer,
    ticket: &CircleTicket,
    me: &Identity,
    name: Option<&str>,
) -> Result<Welcome, NodeError> {
    dialer.add_addr(ticket.inviter.clone());
    // Where the invite also waits at a steward, an inviting device that
    // does not answer soon is most likely off.
    let patience = if ticket.stewards.is_empty() {
        STEP
    } else {
        Duration::from_secs(5)
    };
    let conn = match timeout(patience, dialer.connect(ticket.inviter.clone(), JOIN_ALPN)).await {
        Ok(Ok(c)) => c,
        _ => {
            return Err(NodeError::Unreachable(format!(
                "could not reach the inviting device ({}); ask them to run `roundtable up` and try again",
                ticket.inviter.id.fmt_short()
            )));
        }
    };
    let request =
        roundtable_machine::join_request(me, ticket.circle, ticket.invite, &ticket.secret, name);
    let (mut send, mut recv) = step("opening a stream", conn.open_bi()).await?;
    step("sending", write_frame(&mut send, &wire::encode(&request))).await?;
    let _ = send.finish();
    let bytes = step("receiving", read_frame(&mut recv, MAX_MESSAGE))
        .await?
        .ok_or_else(|| {
            NodeError::Protocol(ProtocolError::EndedEarly(
                "the inviting device closed the connection",
            ))
        })?;
    conn.close(0u32.into(), b"thanks");
    let reply = wire::decode::<JoinReply>(&bytes).map_err(|e| NodeError::Protocol(e.into()))?;
    Ok(Welcome::from_reply(reply)?)
}
