//! The node's loop never waits on the disk, and an edit is still
//! acknowledged only once it is durable: a file layer whose fsyncs wait at
//! a gate holds an edit on its way to the disk while the node goes on
//! answering.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use roundtable_core::{Circle, Mood, Op, Timestamp};
use roundtable_node::{Node, NodeConfig};
use roundtable_store::{Fs, Home, OsFs};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);

/// The real file system, whose fsyncs wait while the gate is shut.
#[derive(Debug, Default)]
struct Gated {
    shut: Mutex<bool>,
    opened: Condvar,
    /// fsyncs waiting at the gate now.
    waiting: AtomicUsize,
}

impl Gated {
    fn shut(&self) {
        *self.shut.lock().expect("the gate") = true;
    }

    fn open(&self) {
        *self.shut.lock().expect("the gate") = false;
        self.opened.notify_all();
    }

    fn pass(&self) {
        let mut shut = self.shut.lock().expect("the gate");
        if *shut {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            while *shut {
                shut = self.opened.wait(shut).expect("the gate");
            }
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Opens the gate when dropped, so a failing test ends instead of leaving
/// a thread waiting at it forever.
struct OpenOnDrop(Arc<Gated>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

impl Fs for Gated {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        OsFs.read(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        OsFs.exists(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        OsFs.list_dir(path)
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        OsFs.file_len(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        OsFs.create_dir_all(path)
    }
    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        OsFs.write_new(path, bytes)
    }
    fn append(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        OsFs.append(path, bytes)
    }
    fn sync_file(&self, path: &Path) -> io::Result<()> {
        self.pass();
        OsFs.sync_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        OsFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        OsFs.remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.pass();
        OsFs.sync_dir(path)
    }
}

/// Two worker threads, so a loop that did block on the disk would hold one
/// and the test's timeout would still fire on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_answers_while_an_edit_waits_on_the_disk() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let gate = Arc::new(Gated::default());
    let mut config = NodeConfig::loopback(dir.path());
    config.control_socket = false;
    config.fs = Some(gate.clone());
    let node = timeout(LIMIT, Node::spawn(config))
        .await
        .expect("starts in time")
        .expect("starts");
    let handle = node.handle();
    let circle = timeout(
        LIMIT,
        handle.create_circle("Supper", "", "Maya", Timestamp::now()),
    )
    .await
    .expect("in time")
    .expect("made");

    gate.shut();
    let _open_at_the_end = OpenOnDrop(gate.clone());
    let edit = tokio::spawn({
        let handle = handle.clone();
        async move {
            let op = Op::Checkin {
                mood: Mood::Okay,
                note: "kept before it is said".into(),
            };
            handle.perform(circle, op, Timestamp::now()).await
        }
    });
    timeout(LIMIT, async {
        while gate.waiting.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the edit reaches the disk");

    // The disk holds the edit; the node's loop still answers.
    let addr = timeout(Duration::from_secs(5), handle.addr())
        .await
        .expect("the node answered while the disk was busy")
        .expect("its address");
    let (device, _) = handle.me();
    assert_eq!(addr.id.as_bytes(), device.as_bytes());
    assert!(
        !edit.is_finished(),
        "the edit was acknowledged before its fsync"
    );

    gate.open();
    let id = timeout(LIMIT, edit)
        .await
        .expect("acknowledged once durable")
        .expect("the task ran")
        .expect("the edit was kept")
        .expect("a check-in has an id");
    timeout(LIMIT, node.shutdown())
        .await
        .expect("stops in time")
        .expect("stops");

    // It is on disk, read by someone else.
    let home = Home::new(dir.path());
    let kept: Circle = home.read_circle(circle).expect("reads");
    let view = kept.view();
    assert!(
        view.checkins
            .get(&id)
            .is_some_and(|c| c.note == "kept before it is said"),
        "the acknowledged check-in is in the files"
    );
}
