//! The keeper: a thread of its own that owns the [`Machine`], and with it
//! the home's files. Everything the machine does (its rules, Automerge,
//! every fsync) runs here, one job at a time in the order the actor hands
//! them over, so the actor's loop only moves bytes and never waits on the
//! disk. A job answers whoever asked from here (an edit's reply is sent
//! once the machine's write returned, so it is still durable first); what
//! the machine then asks to be done goes back to the actor as one batch,
//! carried out in order.
//!
//! The queue of jobs is bounded: when the keeper is behind, the actor waits
//! to hand over the next one, and gossip and sessions wait on the actor as
//! they did when it did the work itself. Batches come back on an unbounded
//! channel, so the keeper never waits on the actor (a job makes a bounded
//! number of outputs, and at most a queue's worth of jobs are in flight).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use roundtable_core::{DeviceId, MemberId};
use roundtable_machine::{Machine, Now, Output, Timing};
use roundtable_net::{Dialer, EndpointAddr, EndpointId};
use roundtable_store::{Home, NodeRecord, WriteLock};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, warn};

use crate::NodeError;

/// Jobs waiting for the keeper at most.
const QUEUE: usize = 64;

/// What the keeper's thread holds.
pub(super) struct Kept {
    pub(super) machine: Machine,
    /// Where devices were last reached.
    pub(super) addresses: AddressBook,
    pub(super) dialer: Dialer,
    /// Outputs a job adds ahead of the machine's own.
    pub(super) extra: Vec<Output>,
}

/// A piece of work for the keeper.
type Job = Box<dyn FnOnce(&mut Kept) + Send>;

/// What one job asked to be done, and who this device is after it (a
/// pairing makes it another member's device while the node runs).
pub(super) struct Batch {
    pub(super) outputs: Vec<Output>,
    pub(super) me: (DeviceId, MemberId),
}

/// The actor's side of the keeper.
pub(super) struct Keeper {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Keeper {
    /// Starts the thread, which opens the home's circles; returns once they
    /// are open, with the channel its batches come on. The first batch is
    /// what opening asked for.
    pub(super) async fn start(
        home: Home,
        lock: WriteLock,
        timing: Timing,
        now: Now,
        dialer: Dialer,
        span: tracing::Span,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Batch>), NodeError> {
        let (jobs, mut queue) = mpsc::channel::<Job>(QUEUE);
        let (batches, from_keeper) = mpsc::unbounded_channel();
        let (opened, is_open) = oneshot::channel();
        let run = move || {
            let _in = span.enter();
            let machine = match Machine::open(home, lock, timing, now, &mut rand::rng()) {
                Ok(machine) => machine,
                Err(e) => {
                    let _ = opened.send(Err(NodeError::from(e)));
                    return;
                }
            };
            let mut kept = Kept {
                machine,
                addresses: AddressBook::default(),
                dialer,
                extra: Vec::new(),
            };
            kept.load_addresses();
            let _ = opened.send(Ok(()));
            let mut me = None;
            kept.hand_over(&batches, &mut me);
            while let Some(job) = queue.blocking_recv() {
                job(&mut kept);
                kept.hand_over(&batches, &mut me);
            }
        };
        let thread = std::thread::Builder::new()
            .name("roundtable-keeper".into())
            .spawn(run)
            .map_err(|e| NodeError::Crashed(format!("could not start the keeper thread: {e}")))?;
        match is_open.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(NodeError::Crashed(
                    "the keeper thread failed at start".into(),
                ));
            }
        }
        let keeper = Self {
            jobs: Some(jobs),
            thread: Some(thread),
        };
        Ok((keeper, from_keeper))
    }

    /// Hands the keeper a job; waits only while its queue is full.
    pub(super) async fn submit(&self, job: impl FnOnce(&mut Kept) + Send + 'static) {
        if let Some(jobs) = &self.jobs
            && jobs.send(Box::new(job)).await.is_err()
        {
            debug!("the keeper has stopped; a job was dropped");
        }
    }

    /// Lets the keeper finish the jobs handed over so far, and waits for
    /// its thread to end (the machine dropped, the home's lock released).
    pub(super) async fn stop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            match tokio::task::spawn_blocking(move || thread.join()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => error!("the keeper thread panicked"),
                Err(e) => error!("could not wait for the keeper thread: {e}"),
            }
        }
    }
}

impl Kept {
    /// Sends the actor what the last job asked for, and who this device is
    /// now when that changed; nothing when there is nothing to say.
    fn hand_over(
        &mut self,
        to: &mpsc::UnboundedSender<Batch>,
        last: &mut Option<(DeviceId, MemberId)>,
    ) {
        let mut outputs = std::mem::take(&mut self.extra);
        outputs.extend(self.machine.drain());
        let id = self.machine.identity();
        let me = (id.device.id(), id.member.id());
        if outputs.is_empty() && *last == Some(me) {
            return;
        }
        *last = Some(me);
        let _ = to.send(Batch { outputs, me });
    }

    // --- the address book: where devices were last reached ---

    fn load_addresses(&mut self) {
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
}

/// Where devices were last reached: read once at start, kept in memory,
/// written back when it changed (at most once every [`Self::EVERY`], and
/// when the node stops).
#[derive(Debug, Default)]
pub(super) struct AddressBook {
    known: BTreeMap<EndpointId, EndpointAddr>,
    dirty: bool,
    written: Option<Instant>,
}

impl AddressBook {
    /// How often the book goes to disk at most.
    const EVERY: Duration = Duration::from_secs(30);
}
