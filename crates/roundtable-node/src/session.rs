//! The protocols' sessions, each in a task of its own: sync as the opener
//! or the answerer, and join as the inviter or the joiner. Sessions move
//! bytes; every decision about a circle is the actor's, asked for by message.

use std::time::Duration;

use roundtable_core::wire::{self, JoinReply, JoinRequest, MAX_MESSAGE, SyncFrame, WelcomeCircle};
use roundtable_core::{CircleId, KeyOffer, SignedHead};
use roundtable_net::framing::{read_frame, write_frame};
use roundtable_net::{
    CircleTicket, Connection, Dialer, EndpointAddr, EndpointId, JOIN_ALPN, SYNC_ALPN,
    closed_as_not_admitted,
};
use roundtable_store::Identity;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use tracing::debug;

use crate::NodeError;

/// The longest wait for any one step of a session.
const STEP: Duration = Duration::from_secs(20);
/// A session that needs more rounds than this is not converging.
const MAX_ROUNDS: usize = 1_000;
/// The largest join request accepted (it holds a name and a certificate).
const MAX_JOIN_REQUEST: usize = 16 * 1024;
/// The largest frame read before the peer is admitted to a circle (a
/// Hello, a Ready or a Refused with its reason).
const MAX_OPENING: usize = 1024;

/// What a device receives when an invite lets it in.
#[derive(Debug)]
pub struct Welcome {
    /// The circles to keep.
    pub circles: Vec<WelcomeCircle>,
    /// For a paired device: its member's key.
    pub member_key: Option<[u8; 32]>,
}

/// What sessions (and the node's other tasks) ask of the actor, apart
/// from the public API the handle speaks ([`crate::handle::Request`]).
#[derive(Debug)]
pub(crate) enum SessionRequest {
    /// Returns the session's token, or why not.
    SyncAdmit {
        circle: CircleId,
        peer: EndpointId,
        reply: oneshot::Sender<Result<u64, SyncRefusal>>,
    },
    /// This side's next round: the signed heads it has not sent yet, and
    /// a sync message.
    SyncGenerate {
        session: SessionId,
        reply: oneshot::Sender<Result<Round, SyncRefusal>>,
    },
    SyncReceive {
        session: SessionId,
        heads: Vec<SignedHead>,
        msg: Option<Vec<u8>>,
        reply: oneshot::Sender<Result<(), SyncRefusal>>,
    },
    /// The key to hand a peer after the rounds, if it is still admitted.
    SyncKeyOut {
        session: SessionId,
        reply: oneshot::Sender<Option<KeyOffer>>,
    },
    /// A key a peer handed over.
    SyncKeyIn { session: SessionId, offer: KeyOffer },
    SyncEnd {
        session: SessionId,
        ok: bool,
        /// The peer closed us out as not admitted (it knows we departed).
        refused: bool,
    },
    JoinServe {
        request: JoinRequest,
        peer: EndpointId,
        reply: oneshot::Sender<roundtable_core::wire::JoinReply>,
    },
    /// Where a peer was reached, for the address book.
    Remember(EndpointAddr),
}

/// One sync session: with whom, for which circle, and the token the
/// schedule gave it. Only the session whose token is current for its
/// circle and peer is answered: one that lost a tie-break must not share
/// the other's sync state or mark its signed heads as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionId {
    pub(crate) circle: CircleId,
    pub(crate) peer: EndpointId,
    pub(crate) token: u64,
}

/// One side's round: the signed heads it has not sent yet, and a sync
/// message (or nothing to say).
pub(crate) type Round = (Vec<SignedHead>, Option<Vec<u8>>);

/// Why the actor will not go on with a sync session: said to the peer
/// when it opened the session, else the session ends with it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SyncRefusal {
    /// This node does not serve the circle.
    #[error("this device does not hold that circle")]
    UnknownCircle,
    /// The peer's device is not admitted to the circle.
    #[error("your device is not admitted to this circle")]
    NotAdmitted,
    /// A session with the peer is under way already.
    #[error("busy: a sync with you is already under way")]
    Busy,
    /// Another session with the peer took this one's place.
    #[error("another sync with you took this one's place")]
    Superseded,
    /// What the peer sent could not be applied or kept.
    #[error("what you sent does not apply: {0}")]
    DoesNotApply(#[from] roundtable_store::StoreError),
}

type Send = roundtable_net::framing::SendHalf;
type Recv = roundtable_net::framing::RecvHalf;

async fn step<T, E: std::fmt::Display>(
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, NodeError> {
    match timeout(STEP, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(NodeError::Protocol(format!("{what}: {e}"))),
        Err(_) => Err(NodeError::Protocol(format!("{what}: the peer went silent"))),
    }
}

async fn send_frame(send: &mut Send, frame: &SyncFrame) -> Result<(), NodeError> {
    step("sending", write_frame(send, &wire::encode(frame))).await
}

async fn recv_frame(recv: &mut Recv) -> Result<SyncFrame, NodeError> {
    recv_frame_of(recv, MAX_MESSAGE).await
}

async fn recv_frame_of(recv: &mut Recv, max: usize) -> Result<SyncFrame, NodeError> {
    let bytes = step("receiving", read_frame(recv, max))
        .await?
        .ok_or_else(|| NodeError::Protocol("the peer ended the session early".into()))?;
    wire::decode(&bytes).map_err(|e| NodeError::Protocol(e.to_string()))
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

/// Opens a sync session with `peer` for `circle`, and tells the actor how it ended.
pub(crate) async fn sync_as_opener(
    dialer: Dialer,
    actor: mpsc::Sender<SessionRequest>,
    circle: CircleId,
    peer: EndpointId,
    token: u64,
) {
    let session = SessionId {
        circle,
        peer,
        token,
    };
    let mut conn = None;
    let result = open_sync(&dialer, &actor, session, &mut conn).await;
    // A peer that closed us out as not admitted knows we departed.
    let refused = result.is_err() && conn.as_ref().is_some_and(closed_as_not_admitted);
    end(&actor, session, result, refused).await;
}

/// Tells the actor how a session ended.
async fn end(
    actor: &mpsc::Sender<SessionRequest>,
    session: SessionId,
    result: Result<(), NodeError>,
    refused: bool,
) {
    if let Err(e) = &result {
        let (peer, circle) = (session.peer.fmt_short(), session.circle);
        debug!(%peer, %circle, "sync did not complete: {e}");
    }
    let ok = result.is_ok();
    let _ = actor
        .send(SessionRequest::SyncEnd {
            session,
            ok,
            refused,
        })
        .await;
}

async fn open_sync(
    dialer: &Dialer,
    actor: &mpsc::Sender<SessionRequest>,
    session: SessionId,
    slot: &mut Option<Connection>,
) -> Result<(), NodeError> {
    let SessionId { circle, peer, .. } = session;
    let conn = step(
        "connecting",
        dialer.connect(EndpointAddr::from(peer), SYNC_ALPN),
    )
    .await?;
    *slot = Some(conn.clone());
    let (mut send, mut recv) = step("opening a stream", conn.open_bi()).await?;
    send_frame(
        &mut send,
        &SyncFrame::Hello {
            circle: *circle.as_bytes(),
        },
    )
    .await?;
    // The first round goes out with the Hello, without waiting for Ready:
    // the answerer reads it only once it has let us in, and drops it with
    // the stream when it does not.
    let first = opening_round(actor, session).await?;
    send_frame(&mut send, &first).await?;
    match recv_frame_of(&mut recv, MAX_OPENING).await? {
        SyncFrame::Ready => {}
        SyncFrame::Refused { reason } => return Err(NodeError::Refused(reason)),
        other => {
            return Err(NodeError::Protocol(format!(
                "expected Ready, got {}",
                frame_name(&other)
            )));
        }
    }
    rounds(actor, session, &mut send, &mut recv, Some(first)).await?;
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
    let result = answer_sync(&conn, &actor, peer, &mut admitted).await;
    match admitted {
        Some(session) => end(&actor, session, result, false).await,
        None => {
            if let Err(e) = result {
                debug!(peer = %peer.fmt_short(), "answering sync did not complete: {e}");
            }
        }
    }
}

async fn answer_sync(
    conn: &Connection,
    actor: &mpsc::Sender<SessionRequest>,
    peer: EndpointId,
    admitted: &mut Option<SessionId>,
) -> Result<(), NodeError> {
    let (mut send, mut recv) = step("accepting a stream", conn.accept_bi()).await?;
    let SyncFrame::Hello { circle } = recv_frame_of(&mut recv, MAX_OPENING).await? else {
        return Err(NodeError::Protocol(
            "a sync session must start with Hello".into(),
        ));
    };
    let circle = CircleId::from_bytes(circle);
    let admit = ask(actor, |reply| SessionRequest::SyncAdmit {
        circle,
        peer,
        reply,
    })
    .await?;
    let token = match admit {
        Ok(token) => token,
        Err(refusal) => {
            let reason = refusal.to_string();
            send_frame(&mut send, &SyncFrame::Refused { reason }).await?;
            let _ = send.finish();
            let _ = timeout(STEP, conn.closed()).await;
            return Ok(());
        }
    };
    let session = SessionId {
        circle,
        peer,
        token,
    };
    *admitted = Some(session);
    send_frame(&mut send, &SyncFrame::Ready).await?;
    rounds(actor, session, &mut send, &mut recv, None).await?;
    let _ = send.finish();
    let _ = timeout(STEP, conn.closed()).await;
    Ok(())
}

/// The opener's first round, made before the answerer has said Ready.
async fn opening_round(
    actor: &mpsc::Sender<SessionRequest>,
    session: SessionId,
) -> Result<SyncFrame, NodeError> {
    let (heads, msg) = generate(actor, session).await?;
    Ok(SyncFrame::Round { heads, msg })
}

/// This side's next round, from the actor.
async fn generate(
    actor: &mpsc::Sender<SessionRequest>,
    session: SessionId,
) -> Result<Round, NodeError> {
    ask(actor, |reply| SessionRequest::SyncGenerate {
        session,
        reply,
    })
    .await?
    .map_err(|refusal| NodeError::Protocol(refusal.to_string()))
}

/// Lockstep rounds: the opener speaks first (its first round, `sent`,
/// already went out with the Hello); a round in which neither side has
/// anything to say ends the session on both sides at once. Then each side
/// hands the other the circle key of its epoch, if its own copy of the
/// circle still admits the other (see `roundtable_core::keys`). Neither
/// waits for the other's key before sending its own, so the answerer's
/// rides right behind its last round and the keys cost no round trip.
async fn rounds(
    actor: &mpsc::Sender<SessionRequest>,
    session: SessionId,
    send: &mut Send,
    recv: &mut Recv,
    mut sent: Option<SyncFrame>,
) -> Result<(), NodeError> {
    let opener = sent.is_some();
    let mut settled = false;
    for _ in 0..MAX_ROUNDS {
        let (mine, theirs) = if opener {
            let said = match sent.take() {
                Some(SyncFrame::Round { msg, .. }) => msg.is_some(),
                _ => {
                    let (heads, mine) = generate(actor, session).await?;
                    let said = mine.is_some();
                    send_frame(send, &SyncFrame::Round { heads, msg: mine }).await?;
                    said
                }
            };
            let theirs = expect_round(recv_frame(recv).await?)?;
            let heard = theirs.1.is_some();
            receive(actor, session, theirs).await?;
            (said, heard)
        } else {
            let theirs = expect_round(recv_frame(recv).await?)?;
            let heard = theirs.1.is_some();
            receive(actor, session, theirs).await?;
            let (heads, mine) = generate(actor, session).await?;
            let said = mine.is_some();
            send_frame(send, &SyncFrame::Round { heads, msg: mine }).await?;
            (said, heard)
        };
        if !mine && !theirs {
            settled = true;
            break;
        }
    }
    if !settled {
        return Err(NodeError::Protocol("sync did not converge".into()));
    }
    let key_out = ask(actor, |reply| SessionRequest::SyncKeyOut { session, reply }).await?;
    send_frame(send, &SyncFrame::Keys(key_out)).await?;
    match recv_frame(recv).await? {
        SyncFrame::Keys(Some(offer)) => {
            let _ = actor
                .send(SessionRequest::SyncKeyIn { session, offer })
                .await;
            Ok(())
        }
        SyncFrame::Keys(None) => Ok(()),
        other => Err(NodeError::Protocol(format!(
            "expected keys, got {}",
            frame_name(&other)
        ))),
    }
}

fn frame_name(frame: &SyncFrame) -> &'static str {
    match frame {
        SyncFrame::Hello { .. } => "Hello",
        SyncFrame::Ready => "Ready",
        SyncFrame::Refused { .. } => "Refused",
        SyncFrame::Round { .. } => "Round",
        SyncFrame::Keys(_) => "Keys",
    }
}

fn expect_round(frame: SyncFrame) -> Result<Round, NodeError> {
    match frame {
        SyncFrame::Round { heads, msg } => Ok((heads, msg)),
        other => Err(NodeError::Protocol(format!(
            "expected a sync round, got {}",
            frame_name(&other)
        ))),
    }
}

async fn receive(
    actor: &mpsc::Sender<SessionRequest>,
    session: SessionId,
    (heads, msg): Round,
) -> Result<(), NodeError> {
    if heads.is_empty() && msg.is_none() {
        return Ok(());
    }
    ask(actor, |reply| SessionRequest::SyncReceive {
        session,
        heads,
        msg,
        reply,
    })
    .await?
    .map_err(|refusal| NodeError::Protocol(refusal.to_string()))
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
        .ok_or_else(|| NodeError::Protocol("no join request".into()))?;
    let reply = match wire::decode::<JoinRequest>(&bytes) {
        Ok(request) => {
            ask(actor, |reply| SessionRequest::JoinServe {
                request,
                peer,
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

/// Redeems a ticket at the inviting device and returns what it hands over.
/// Works with or without a node running here: it only needs a dialer.
pub async fn redeem_ticket(
    dialer: &Dialer,
    ticket: &CircleTicket,
    me: &Identity,
    name: Option<&str>,
) -> Result<Welcome, NodeError> {
    dialer.add_addr(ticket.inviter.clone());
    let conn = match timeout(STEP, dialer.connect(ticket.inviter.clone(), JOIN_ALPN)).await {
        Ok(Ok(c)) => c,
        _ => {
            return Err(NodeError::Protocol(format!(
                "could not reach the inviting device ({}); ask them to run `roundtable up` and try again",
                ticket.inviter.id.fmt_short()
            )));
        }
    };
    let request = JoinRequest {
        circle: *ticket.circle.as_bytes(),
        invite: *ticket.invite.as_bytes(),
        secret: *ticket.secret.as_bytes(),
        member: *me.member.id().as_bytes(),
        cert: me.cert.signature.to_vec(),
        name: name.map(str::to_owned),
    };
    let (mut send, mut recv) = step("opening a stream", conn.open_bi()).await?;
    step("sending", write_frame(&mut send, &wire::encode(&request))).await?;
    let _ = send.finish();
    let bytes = step("receiving", read_frame(&mut recv, MAX_MESSAGE))
        .await?
        .ok_or_else(|| NodeError::Protocol("the inviting device closed the connection".into()))?;
    conn.close(0u32.into(), b"thanks");
    match wire::decode::<JoinReply>(&bytes).map_err(|e| NodeError::Protocol(e.to_string()))? {
        JoinReply::Welcome {
            circles,
            member_key,
        } => Ok(Welcome {
            circles,
            member_key,
        }),
        JoinReply::Refused { reason } => Err(NodeError::Refused(reason)),
    }
}
