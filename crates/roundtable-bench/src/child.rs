//! Measurements that need a process of their own (memory, idle CPU): the
//! bench runs itself with `--child MODE ARGS...`, and the child prints one
//! line of numbers. One mode only builds a history home, for profiling.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use automerge::Automerge;
use roundtable_store::Home;

use crate::setup::{bare_endpoint, bare_gossip, rss};

/// Runs a child mode.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let me = std::process::id();
    match args.first().map(String::as_str) {
        // Automerge's own: load a saved document. Prints RSS before and after.
        Some("load") => {
            let path = args.get(1).ok_or_else(|| anyhow!("load FILE"))?;
            let bytes = std::fs::read(path)?;
            let before = rss(me)?;
            let doc = Automerge::load(&bytes)?;
            drop(bytes);
            let after = rss(me)?;
            println!("{before} {after} {}", doc.get_heads().len());
            Ok(())
        }
        // Ours: open the circle as a node does. Prints RSS before and after.
        Some("open") => {
            let home = args.get(1).ok_or_else(|| anyhow!("open HOME CIRCLE"))?;
            let id = args
                .get(2)
                .ok_or_else(|| anyhow!("open HOME CIRCLE"))?
                .parse()?;
            let home = Home::new(Path::new(home));
            let lock = home.lock("bench child")?;
            let before = rss(me)?;
            let store = home.open_circle(&lock, id)?;
            let after = rss(me)?;
            println!("{before} {after} {}", store.circle().heads().len());
            Ok(())
        }
        // A bare iroh endpoint with gossip, in one topic (random unless
        // given), reading what arrives: the anchor of a node. Prints
        // "ready ID PORT".
        Some("endpoint") => {
            let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3600);
            let topic = match args.get(2) {
                Some(h) => crate::b5::unhex32(h)?,
                None => rand::random(),
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let ep = bare_endpoint().await?;
                let (gossip, router) = bare_gossip(&ep);
                let (_sender, mut receiver) = gossip
                    .subscribe(iroh_gossip::TopicId::from_bytes(topic), Vec::new())
                    .await?
                    .split();
                let reader = tokio::spawn(async move {
                    use n0_future::StreamExt as _;
                    let mut n = 0u64;
                    while let Some(Ok(ev)) = receiver.next().await {
                        if let iroh_gossip::api::Event::Received(m) = ev {
                            n += m.content.len() as u64;
                        }
                    }
                    n
                });
                let id: String = ep
                    .id()
                    .as_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let port = ep.bound_sockets().first().map_or(0, |a| a.port());
                println!("ready {id} {port}");
                tokio::time::sleep(Duration::from_secs(secs)).await;
                reader.abort();
                router.shutdown().await?;
                anyhow::Ok(())
            })
        }
        // A home with a circle of about OPS operations of history, kept in
        // DIR, to profile a command against (`--child history DIR OPS`).
        Some("history") => {
            let dir = args.get(1).ok_or_else(|| anyhow!("history DIR OPS"))?;
            let ops: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
            let h = crate::setup::build_history(Path::new(dir), ops, 50, ops)?;
            println!("{} ops, {} changes, circle {}", h.ops, h.changes, h.id);
            Ok(())
        }
        // A steward on loopback with its home in DIR (`--child steward
        // DIR`). Prints "ready TICKET", then serves until killed.
        Some("steward") => {
            let dir = args.get(1).ok_or_else(|| anyhow!("steward DIR"))?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let steward =
                    roundtable_steward::Steward::start(roundtable_steward::StewardOptions {
                        home: Path::new(dir).to_path_buf(),
                        net: roundtable_net::NetConfig::loopback(),
                        store: None,
                        limits: roundtable_steward::Limits::default(),
                    })
                    .await?;
                println!("ready {}", steward.ticket().to_line());
                std::future::pending::<()>().await;
                anyhow::Ok(())
            })
        }
        other => bail!("unknown child mode {other:?}"),
    }
}

/// Runs this binary as a child with `args`; its one line of output.
pub(crate) fn spawn_child(args: &[&str]) -> Result<String> {
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .arg("--child")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!(
            "child {:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A child that runs until dropped (killed).
pub(crate) struct LiveChild {
    child: std::process::Child,
    info: String,
}

impl LiveChild {
    /// Starts `--child args...` and waits for its first line ("ready").
    pub(crate) fn start(args: &[&str]) -> Result<Self> {
        use std::io::BufRead as _;
        let exe = std::env::current_exe()?;
        let mut child = std::process::Command::new(exe)
            .arg("--child")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let Some(info) = line.trim().strip_prefix("ready") else {
            let _ = child.kill();
            bail!("child {args:?} did not start: {line:?}");
        };
        let info = info.trim().to_owned();
        Ok(Self { child, info })
    }

    /// What it said after "ready".
    pub(crate) fn info(&self) -> &str {
        &self.info
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LiveChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
