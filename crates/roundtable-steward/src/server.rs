//! The steward as a running service: its home, its endpoint, and a task
//! per stream that hands requests to the [`Keeper`] and its answers back,
//! and tells watching streams what others put.
//!
//! ```text
//! HOME/
//!   lock          the running steward's lock
//!   steward.key   0600; the steward's identity (its ticket's id)
//!   ticket        the ticket of the last run (`roundtable steward ticket`)
//!   blobs/        what it keeps, unless `--store s3://...` keeps it elsewhere
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::timeout;

use roundtable_core::DeviceKey;
use roundtable_core::wire::{self, StewardReply, StewardRequest};
use roundtable_net::framing::write_frame;
use roundtable_net::{Connection, NetConfig, StewardNet, StewardTicket};
use roundtable_store::{Home, OsFs, WriteLock};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, warn};

use crate::blobs::{BlobError, Blobs, FsBlobs, S3Blobs};
use crate::keeper::{Handled, Keeper, KeeperStatus, Limits, Session};

const KEY_FILE: &str = "steward.key";
const TICKET_FILE: &str = "ticket";
const BLOBS_DIR: &str = "blobs";
/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 256;
/// Streams one connection may have open at once.
const MAX_STREAMS: usize = 8;
/// The largest request read (an item and its frame).
const MAX_REQUEST: usize = 48 * 1024 * 1024 + 1024;
/// The most bytes of requests held at once, all streams together: a
/// frame's bytes are counted from before its body is read until its
/// request was answered and, for an item put, every watcher of the shelf
/// was sent it. A frame waits for room (and its stream's idle time runs
/// meanwhile). With the index (about 110 bytes per item, at most
/// [`Limits::max_total_items`] of them) and the process itself, this keeps a
/// steward well under the 512 MiB its system unit allows.
pub const MAX_IN_FLIGHT: usize = 128 * 1024 * 1024;
const _: () = assert!(MAX_REQUEST <= MAX_IN_FLIGHT);
/// A stream quiet this long is closed.
const IDLE: Duration = Duration::from_secs(60);
/// Arrivals a watching stream may lag behind before it is closed (it then
/// comes back and fetches).
const WATCH_BACKLOG: usize = 256;

/// What went wrong running a steward.
#[derive(Debug, thiserror::Error)]
pub enum StewardError {
    /// The home's files.
    #[error(transparent)]
    Store(#[from] roundtable_store::StoreError),
    /// The storage of what it keeps.
    #[error(transparent)]
    Blobs(#[from] BlobError),
    /// The network.
    #[error(transparent)]
    Net(#[from] roundtable_net::NetError),
    /// Something else, in words.
    #[error("{0}")]
    Other(String),
}

/// How to run a steward.
#[derive(Debug, Clone)]
pub struct StewardOptions {
    /// Its home.
    pub home: PathBuf,
    /// Where it listens, its relay, mDNS.
    pub net: NetConfig,
    /// `s3://bucket/prefix` to keep items in object storage; none for the
    /// home's `blobs/`.
    pub store: Option<String>,
    /// How much it takes on.
    pub limits: Limits,
}

/// The steward's identity, made on first use.
fn steward_key(home: &Path, _lock: &WriteLock) -> Result<DeviceKey, StewardError> {
    let path = home.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => DeviceKey::from_file_text(&bytes).map_err(|e| {
            StewardError::Other(format!(
                "{} does not read as a steward's key ({e}); restore it from a backup or move it away to make a new steward",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = DeviceKey::generate();
            roundtable_store::write_durably(&OsFs, &path, key.to_file_text().as_bytes())?;
            info!(steward = %key.id().fmt_short(), "made this steward's identity");
            Ok(key)
        }
        Err(e) => Err(StewardError::Other(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// The storage a steward keeps its items in.
pub fn open_blobs(home: &Path, store: Option<&str>) -> Result<Box<dyn Blobs>, StewardError> {
    Ok(match store {
        None => Box::new(FsBlobs::open(OsFs, home.join(BLOBS_DIR))?),
        Some(url) => Box::new(S3Blobs::from_url(url)?),
    })
}

/// The ticket of a steward's last run, as `roundtable steward ticket`
/// prints it.
pub fn ticket_of(home: &Path) -> Result<String, StewardError> {
    match std::fs::read_to_string(home.join(TICKET_FILE)) {
        Ok(t) => Ok(t.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StewardError::Other(format!(
            "{} is not a steward's home yet: run `roundtable --home {} steward run` once",
            home.display(),
            home.display()
        ))),
        Err(e) => Err(StewardError::Other(format!(
            "cannot read the steward's ticket: {e}"
        ))),
    }
}

/// What a steward's home keeps, read without running it.
pub fn status_of(home: &Path, store: Option<&str>) -> Result<KeeperStatus, StewardError> {
    let key = std::fs::read(home.join(KEY_FILE))
        .ok()
        .and_then(|b| DeviceKey::from_file_text(&b).ok())
        .ok_or_else(|| {
            StewardError::Other(format!(
                "{} is not a steward's home: run `roundtable --home {} steward run` first",
                home.display(),
                home.display()
            ))
        })?;
    let keeper = Keeper::open(
        open_blobs(home, store)?,
        *key.id().as_bytes(),
        Limits::default(),
    )?;
    Ok(keeper.status())
}

/// An item put, for the shelf's watchers: its answer, encoded once for
/// all of them, with the room its request held.
struct Arrived {
    by: [u8; 32],
    frame: Vec<u8>,
    _held: OwnedSemaphorePermit,
}

type Arrival = Arc<Arrived>;
type Watchers =
    Mutex<HashMap<(roundtable_core::steward::LockerId, [u8; 32]), broadcast::Sender<Arrival>>>;

struct Shared {
    keeper: Keeper<Box<dyn Blobs>>,
    watchers: Watchers,
    /// Bytes of requests in flight, [`MAX_IN_FLIGHT`] in all.
    in_flight: Arc<Semaphore>,
}

/// A running steward.
pub struct Steward {
    net: StewardNet,
    shared: Arc<Shared>,
    ticket: StewardTicket,
    task: tokio::task::JoinHandle<()>,
    _lock: WriteLock,
}

impl std::fmt::Debug for Steward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steward")
            .field("id", &self.net.id())
            .finish_non_exhaustive()
    }
}

impl Steward {
    /// Starts a steward: takes its home's lock, makes its identity on
    /// first use, reads what it keeps, listens, and writes its ticket.
    pub async fn start(options: StewardOptions) -> Result<Self, StewardError> {
        let lock = Home::new(&options.home).lock("roundtable steward run")?;
        let key = steward_key(&options.home, &lock)?;
        let blobs = open_blobs(&options.home, options.store.as_deref())?;
        let keeper = tokio::task::spawn_blocking({
            let id = *key.id().as_bytes();
            let limits = options.limits;
            move || Keeper::open(blobs, id, limits)
        })
        .await
        .map_err(|e| StewardError::Other(e.to_string()))??;
        let (tx, mut incoming) = mpsc::channel::<Connection>(64);
        let net = StewardNet::bind(*key.to_seed(), &options.net, tx).await?;
        // A relay of the circle's own is named in the ticket, so devices
        // with no direct path find the steward through it. (The public
        // relays are not waited for: they may be out of reach.)
        if matches!(options.net.relay, roundtable_net::RelayChoice::Custom(_))
            && !net.online_within(Duration::from_secs(10)).await
        {
            warn!("the relay is not reachable yet; the ticket names direct addresses only");
        }
        let ticket = StewardTicket { addr: net.addr() };
        roundtable_store::write_durably(
            &OsFs,
            &options.home.join(TICKET_FILE),
            format!("{}\n", ticket.to_line()).as_bytes(),
        )?;
        let shared = Arc::new(Shared {
            keeper,
            watchers: Mutex::new(HashMap::new()),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        });
        let kept = shared.clone();
        let span = tracing::info_span!("steward", id = %key.id().fmt_short());
        let task = tokio::spawn(
            async move {
                let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
                let mut conns = JoinSet::new();
                loop {
                    tokio::select! {
                        conn = incoming.recv() => {
                            let Some(conn) = conn else { break };
                            let Ok(permit) = limit.clone().try_acquire_owned() else {
                                debug!("refused a connection: too many at once");
                                conn.close(1u32.into(), b"busy");
                                continue;
                            };
                            let shared = shared.clone();
                            conns.spawn(async move {
                                serve_connection(conn, shared).await;
                                drop(permit);
                            }.in_current_span());
                        }
                        Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    }
                }
                conns.shutdown().await;
            }
            .instrument(span),
        );
        info!(ticket = %ticket.to_line(), "steward running");
        Ok(Self {
            net,
            shared: kept,
            ticket,
            task,
            _lock: lock,
        })
    }

    /// Its ticket (what members paste into `roundtable steward add`).
    pub fn ticket(&self) -> &StewardTicket {
        &self.ticket
    }

    /// The local UDP sockets, with their ports.
    pub fn bound_sockets(&self) -> Vec<std::net::SocketAddr> {
        self.net.bound_sockets()
    }

    /// What it keeps now.
    pub fn status(&self) -> KeeperStatus {
        self.shared.keeper.status()
    }

    /// Stops: closes every connection; what it acknowledged is on disk.
    pub async fn shutdown(self) {
        self.net.shutdown().await;
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn serve_connection(conn: Connection, shared: Arc<Shared>) {
    let device = *conn.remote_id().as_bytes();
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            s = conn.accept_bi() => {
                let Ok((send, recv)) = s else { break };
                if streams.len() >= MAX_STREAMS {
                    debug!("refused a stream: too many on one connection");
                    continue;
                }
                streams.spawn(serve_stream(device, send, recv, shared.clone()).in_current_span());
            }
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    }
    streams.shutdown().await;
}

async fn serve_stream(
    device: [u8; 32],
    mut send: roundtable_net::framing::SendHalf,
    recv: roundtable_net::framing::RecvHalf,
    shared: Arc<Shared>,
) {
    let (reader, mut frames) = read_frames(recv, shared.in_flight.clone());
    let mut session = Session::new(device);
    let mut opened = None;
    let mut watch: Option<broadcast::Receiver<Arrival>> = None;
    loop {
        let next = async {
            match watch.as_mut() {
                Some(w) => Some(w.recv().await),
                None => std::future::pending().await,
            }
        };
        // What is sent, and the room it holds until it is sent.
        let (out, _room): (Vec<u8>, Option<OwnedSemaphorePermit>) = tokio::select! {
            frame = tokio::time::timeout(IDLE, frames.recv()) => {
                let Framed { bytes, held } = match frame {
                    Ok(Some(Ok(b))) => b,
                    Ok(Some(Err(e))) => {
                        debug!("a stream broke: {e}");
                        break;
                    }
                    Ok(None) | Err(_) => break,
                };
                let request = match wire::decode::<StewardRequest>(&bytes) {
                    Ok(r) => r,
                    Err(e) => {
                        let refused = StewardReply::Refused {
                            reason: format!("that request does not read ({e}); update Roundtable"),
                        };
                        let _ = timeout(IDLE, write_frame(&mut send, &wire::encode(&refused))).await;
                        break;
                    }
                };
                // The request holds what the frame held.
                drop(bytes);
                let Some(room) = room_for(&shared, &session, &request).await else {
                    break;
                };
                let shared2 = shared.clone();
                let now_ms = roundtable_core::Timestamp::now().as_millis();
                let handled = tokio::task::spawn_blocking(move || {
                    let out = shared2.keeper.handle(&mut session, request, now_ms);
                    (session, out)
                })
                .await;
                let Ok((back, out)) = handled else { break };
                session = back;
                opened = session.shelf();
                let reply = answered(&shared, &session, out, held, &mut watch);
                (wire::encode(&reply), room)
            }
            arrival = next => {
                match arrival {
                    Some(Ok(a)) if a.by != device => {
                        // Written from the one encoding every watcher shares.
                        let sent = timeout(IDLE, write_frame(&mut send, &a.frame)).await;
                        if !matches!(sent, Ok(Ok(()))) {
                            break;
                        }
                        continue;
                    }
                    Some(Ok(_)) => continue,
                    // Fell behind: the device comes back and fetches.
                    _ => break,
                }
            }
        };
        // A peer that does not read what it is sent is let go, with what
        // it held up.
        if !matches!(
            timeout(IDLE, write_frame(&mut send, &out)).await,
            Ok(Ok(()))
        ) {
            break;
        }
    }
    let _ = send.finish();
    reader.abort();
    drop(watch);
    if let Some(shelf) = opened {
        let mut w = lock(&shared.watchers);
        if w.get(&shelf).is_some_and(|tx| tx.receiver_count() == 0) {
            w.remove(&shelf);
        }
    }
}

/// Reads a stream's frames in a task of their own, so a frame half read
/// is never lost to an arrival told meanwhile.
fn read_frames(
    mut recv: roundtable_net::framing::RecvHalf,
    budget: Arc<Semaphore>,
) -> (
    tokio::task::JoinHandle<()>,
    mpsc::Receiver<Result<Framed, String>>,
) {
    let (frames_tx, frames) = mpsc::channel::<Result<Framed, String>>(1);
    let reader = tokio::spawn(async move {
        loop {
            let r = match read_within(&mut recv, MAX_REQUEST, &budget).await {
                Ok(Some(b)) => Ok(b),
                Ok(None) => return,
                Err(e) => Err(e),
            };
            let stop = r.is_err();
            if frames_tx.send(r).await.is_err() || stop {
                return;
            }
        }
    });
    (reader, frames)
}

/// The room what a fetch or a take reads, and its answer, take: twice
/// what is read (none for other requests); `None` when it did not come
/// in time.
async fn room_for(
    shared: &Shared,
    session: &Session,
    request: &StewardRequest,
) -> Option<Option<OwnedSemaphorePermit>> {
    let reads = match request {
        StewardRequest::Fetch { after, max_bytes } => {
            shared.keeper.fetch_size(session, *after, *max_bytes)
        }
        StewardRequest::Take { slot } => shared.keeper.welcome_size(slot),
        _ => 0,
    };
    if reads == 0 {
        return Some(None);
    }
    let wanted = u32::try_from((2 * reads).min(MAX_IN_FLIGHT as u64)).unwrap_or(u32::MAX);
    let asked = shared.in_flight.clone().acquire_many_owned(wanted);
    match timeout(IDLE, asked).await {
        Ok(Ok(p)) => Some(Some(p)),
        _ => None,
    }
}

/// The reply to a request the keeper handled: an item put is told to
/// those watching its shelf, and a session that now watches starts
/// hearing of arrivals.
fn answered(
    shared: &Shared,
    session: &Session,
    out: Result<Handled, BlobError>,
    held: OwnedSemaphorePermit,
    watch: &mut Option<broadcast::Receiver<Arrival>>,
) -> StewardReply {
    let h = match out {
        Ok(h) => h,
        Err(e) => {
            warn!("storage failed: {e}");
            return StewardReply::Refused {
                reason: "the steward could not keep that just now; try again later".into(),
            };
        }
    };
    if let Some((shelf, by, entry)) = h.arrived {
        let tx = lock(&shared.watchers).get(&shelf).cloned();
        if let Some(tx) = tx {
            let frame = wire::encode(&StewardReply::Arrived(entry));
            let _ = tx.send(Arc::new(Arrived {
                by,
                frame,
                _held: held,
            }));
        }
    }
    if session.watching()
        && watch.is_none()
        && let Some(shelf) = session.shelf()
    {
        let mut w = lock(&shared.watchers);
        let tx = w
            .entry(shelf)
            .or_insert_with(|| broadcast::channel(WATCH_BACKLOG).0);
        *watch = Some(tx.subscribe());
    }
    h.reply
}

/// A request's bytes, with the room they take in [`MAX_IN_FLIGHT`].
struct Framed {
    bytes: Vec<u8>,
    held: OwnedSemaphorePermit,
}

/// Reads one frame of at most `max` bytes (a `u32` length, little endian,
/// then the bytes), taking its length's worth of `budget` before reading
/// its body and holding it as long as the bytes are; `Ok(None)` at a
/// clean end of the stream.
async fn read_within<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    budget: &Arc<Semaphore>,
) -> Result<Option<Framed>, String> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let len = u32::from_le_bytes(len);
    if len as usize > max {
        return Err(format!(
            "the peer sent a frame of {len} bytes, more than the {max} accepted"
        ));
    }
    let held = budget
        .clone()
        .acquire_many_owned(len)
        .await
        .map_err(|_| "the steward is stopping".to_owned())?;
    let mut bytes = Vec::with_capacity(len as usize);
    r.take(u64::from(len))
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| e.to_string())?;
    if bytes.len() < len as usize {
        return Err("the stream ended inside a frame".into());
    }
    Ok(Some(Framed { bytes, held }))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Vec<u8> {
        let mut f = u32::try_from(n).expect("small").to_le_bytes().to_vec();
        f.extend(std::iter::repeat_n(7u8, n));
        f
    }

    /// Frames read on many streams at once hold at most the budget: a
    /// frame waits, body unread, until what others hold is let go; a frame
    /// longer than allowed is refused before anything is held.
    #[tokio::test]
    async fn requests_in_flight_hold_at_most_the_budget() {
        let budget = Arc::new(Semaphore::new(1000));
        let limit = Duration::from_secs(5);
        let (a, mut b) = (frame(600), frame(600));
        let first = tokio::time::timeout(limit, read_within(&mut a.as_slice(), 1000, &budget))
            .await
            .expect("in time")
            .expect("reads")
            .expect("a frame");
        assert_eq!(first.bytes.len(), 600);
        assert_eq!(budget.available_permits(), 400);
        // The second waits while the first is held ...
        let (mut tx, mut rx) = tokio::io::duplex(64);
        let reading = tokio::spawn({
            let budget = budget.clone();
            async move { read_within(&mut rx, 1000, &budget).await }
        });
        use tokio::io::AsyncWriteExt;
        tx.write_all(&b[..4]).await.expect("writes");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!reading.is_finished());
        // ... and its body is not read meanwhile: the pipe stays full.
        let body = b.split_off(4);
        let mut written = 0;
        while written < body.len() {
            match tokio::time::timeout(Duration::from_millis(100), tx.write(&body[written..])).await
            {
                Ok(Ok(n)) => written += n,
                _ => break,
            }
        }
        assert!(
            written < body.len(),
            "the body was read before there was room for it"
        );
        // Let the first go: the second is read, then let go too.
        drop(first);
        tx.write_all(&body[written..]).await.expect("writes");
        let second = tokio::time::timeout(limit, reading)
            .await
            .expect("in time")
            .expect("joins")
            .expect("reads")
            .expect("a frame");
        assert_eq!(second.bytes.len(), 600);
        assert_eq!(budget.available_permits(), 400);
        drop(second);
        assert_eq!(budget.available_permits(), 1000);
        // Too long: refused, nothing held.
        let long = frame(1001);
        assert!(
            tokio::time::timeout(limit, read_within(&mut long.as_slice(), 1000, &budget))
                .await
                .expect("in time")
                .is_err()
        );
        assert_eq!(budget.available_permits(), 1000);
    }
}
