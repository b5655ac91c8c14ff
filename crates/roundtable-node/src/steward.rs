//! A session with a steward, in a task of its own: it reaches the steward
//! where its ticket says (and only the steward the circle named), sends
//! what the machine says, and hands every answer back to it. Like the
//! other sessions, it only moves bytes.

use std::time::Duration;

use roundtable_core::DeviceId;
use roundtable_core::wire::{self, MAX_MESSAGE, StewardReply, StewardRequest};
use roundtable_machine::StewardSession;
use roundtable_net::framing::{read_frame, write_frame};
use roundtable_net::{Dialer, STEWARD_ALPN, StewardTicket};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::session::SessionRequest;

/// The longest wait to reach a steward.
const CONNECT: Duration = Duration::from_secs(20);

/// Carries one steward session until the machine closes it or it breaks.
pub(crate) async fn run(
    dialer: Dialer,
    actor: mpsc::Sender<SessionRequest>,
    session: StewardSession,
    ticket: String,
    steward: DeviceId,
    first: Vec<StewardRequest>,
    mut requests: mpsc::UnboundedReceiver<Vec<StewardRequest>>,
) {
    let why = match carry(
        &dialer,
        &actor,
        session,
        &ticket,
        steward,
        first,
        &mut requests,
    )
    .await
    {
        Ok(()) => return,
        Err(why) => why,
    };
    let _ = actor
        .send(SessionRequest::StewardBroken { session, why })
        .await;
}

async fn carry(
    dialer: &Dialer,
    actor: &mpsc::Sender<SessionRequest>,
    session: StewardSession,
    ticket: &str,
    steward: DeviceId,
    first: Vec<StewardRequest>,
    requests: &mut mpsc::UnboundedReceiver<Vec<StewardRequest>>,
) -> Result<(), String> {
    let ticket = StewardTicket::parse(ticket).map_err(|e| e.to_string())?;
    if ticket.id() != *steward.as_bytes() {
        return Err("the circle's record of this steward names another steward than its ticket; add it again".into());
    }
    dialer.add_addr(ticket.addr.clone());
    let conn = match timeout(CONNECT, dialer.connect(ticket.addr.clone(), STEWARD_ALPN)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(format!("could not reach the steward: {e}")),
        Err(_) => return Err("could not reach the steward in time".into()),
    };
    let (mut send, mut recv) = timeout(CONNECT, conn.open_bi())
        .await
        .map_err(|_| "the steward did not open a stream in time".to_owned())?
        .map_err(|e| format!("could not open a stream to the steward: {e}"))?;
    let reading = async {
        loop {
            let bytes = match read_frame(&mut recv, MAX_MESSAGE).await {
                Ok(Some(b)) => b,
                Ok(None) => return Err("the steward ended the session".to_owned()),
                Err(e) => return Err(e.to_string()),
            };
            let reply: StewardReply = wire::decode(&bytes)
                .map_err(|e| format!("the steward sent what does not read: {e}"))?;
            actor
                .send(SessionRequest::StewardReply { session, reply })
                .await
                .map_err(|_| "the node is stopping".to_owned())?;
        }
    };
    let writing = async {
        for r in &first {
            write_frame(&mut send, &wire::encode(r))
                .await
                .map_err(|e| e.to_string())?;
        }
        while let Some(batch) = requests.recv().await {
            for r in &batch {
                write_frame(&mut send, &wire::encode(r))
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        // The machine closed the session.
        Ok::<(), String>(())
    };
    let out = tokio::select! {
        r = reading => r,
        w = writing => w,
    };
    let _ = send.finish();
    conn.close(0u32.into(), b"done");
    out
}

/// Takes the welcome waiting for `ticket` at one of the stewards it
/// names, and opens it with the ticket's secret.
pub(crate) async fn take_welcome(
    dialer: &Dialer,
    ticket: &roundtable_net::CircleTicket,
) -> Result<roundtable_core::steward::WaitingWelcome, crate::NodeError> {
    let slot = roundtable_core::steward::WelcomeSlot::of(ticket.circle, &ticket.secret);
    let mut why = Vec::new();
    for addr in &ticket.stewards {
        match ask_steward(dialer, addr, StewardRequest::Take { slot: slot.name() }).await {
            Ok(StewardReply::Welcome { bytes }) => match slot.open(&bytes) {
                Ok(w) => return Ok(w),
                Err(e) => why.push(format!("what the steward handed over {e}")),
            },
            Ok(StewardReply::Refused { reason }) => {
                return Err(crate::NodeError::Refused(reason));
            }
            Ok(_) => why.push("the steward answered out of turn".into()),
            Err(e) => why.push(e),
        }
    }
    Err(crate::NodeError::Unreachable(format!(
        "could not reach the inviting device ({}) nor the circle's steward ({}); try again later",
        ticket.inviter.id.fmt_short(),
        why.join("; ")
    )))
}

/// Tells the ticket's stewards to forget its welcome (best effort).
pub(crate) async fn forget_welcome(dialer: &Dialer, ticket: &roundtable_net::CircleTicket) {
    let token =
        roundtable_core::steward::WelcomeSlot::of(ticket.circle, &ticket.secret).forget_token();
    for addr in &ticket.stewards {
        if let Err(e) = ask_steward(dialer, addr, StewardRequest::Forget { token }).await {
            tracing::debug!("could not tell a steward to forget a used invite: {e}");
        }
    }
}

/// One request to a steward, on a connection of its own.
async fn ask_steward(
    dialer: &Dialer,
    addr: &roundtable_net::EndpointAddr,
    request: StewardRequest,
) -> Result<StewardReply, String> {
    dialer.add_addr(addr.clone());
    let conn = match timeout(CONNECT, dialer.connect(addr.clone(), STEWARD_ALPN)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(format!("could not reach the steward: {e}")),
        Err(_) => return Err("could not reach the steward in time".into()),
    };
    let out = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        write_frame(&mut send, &wire::encode(&request))
            .await
            .map_err(|e| e.to_string())?;
        let bytes = read_frame(&mut recv, MAX_MESSAGE)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the steward closed the stream".to_owned())?;
        let _ = send.finish();
        wire::decode::<StewardReply>(&bytes).map_err(|e| e.to_string())
    };
    let out = timeout(CONNECT, out)
        .await
        .unwrap_or_else(|_| Err("the steward went silent".into()));
    conn.close(0u32.into(), b"done");
    out
}
