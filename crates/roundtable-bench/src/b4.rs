//! B4 memory: the resident set (VmRSS) of a real `roundtable up` holding 1
//! and several circles, against a bare iroh endpoint with gossip; and a
//! large circle opened as the node opens it, against Automerge loading the
//! same document, each in a process of its own.

use std::time::Duration;

use anyhow::{Result, anyhow};
use roundtable_core::{EpochKey, Keyring, Timestamp};
use roundtable_store::Home;

use crate::Ctx;
use crate::child::{LiveChild, spawn_child};
use crate::setup::{Cast, UpProcess, found, rss, write_identity};
use crate::table::{Row, bytes};

/// How long a process settles before its memory is read.
const SETTLE: Duration = Duration::from_secs(2);

pub(crate) async fn run(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let bare = {
        let c = LiveChild::start(&["endpoint"])?;
        tokio::time::sleep(SETTLE).await;
        rss(c.pid())?
    };
    for n in [1, ctx.plan.b4_circles] {
        let dir = ctx.scratch(&format!("b4-{n}"))?;
        small_circles(&dir, n)?;
        let up = UpProcess::start(&dir, None)?;
        tokio::time::sleep(SETTLE).await;
        let ours = rss(up.pid())?;
        drop(up);
        rows.push(
            Row::new("B4", format!("idle node, {n} circle{}: RSS", if n == 1 { "" } else { "s" }))
                .bytes(ours, bare)
                .note("`roundtable up` (20-member circles, no web app) vs a bare iroh endpoint with gossip, idle"),
        );
    }

    let ops = *ctx
        .plan
        .histories
        .last()
        .ok_or_else(|| anyhow!("no history size"))?;
    let h = ctx.history(ops)?;
    let (dir, id) = (h.dir.clone(), h.id);
    let save_file = dir.join("save.automerge");
    std::fs::write(&save_file, Home::new(&dir).read_circle(id)?.save())?;
    let delta = |out: String| -> Result<u64> {
        let v: Vec<u64> = out
            .split_whitespace()
            .take(2)
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        Ok(v.get(1)
            .copied()
            .unwrap_or(0)
            .saturating_sub(v.first().copied().unwrap_or(0)))
    };
    let dir_s = dir.to_string_lossy().into_owned();
    let ours = delta(spawn_child(&["open", &dir_s, &id.to_string()])?)?;
    let theirs = delta(spawn_child(&["load", &save_file.to_string_lossy()])?)?;
    std::fs::remove_file(&save_file)?;
    let label = crate::setup::count(ops as usize);
    rows.push(
        Row::new("B4", format!("~{label}-op circle loaded: RSS growth"))
            .bytes(ours, theirs)
            .note("Home::open_circle vs Automerge::load of its save(), each in a fresh process (RSS after − before)"),
    );
    let up = UpProcess::start(&dir, None)?;
    tokio::time::sleep(SETTLE).await;
    let node = rss(up.pid())?;
    drop(up);
    rows.push(
        Row::new(
            "B4",
            format!("idle node holding the ~{label}-op circle: RSS"),
        )
        .bytes(node, bare + theirs)
        .note(format!(
            "anchor: bare endpoint ({}) + Automerge's growth loading the document ({})",
            bytes(bare),
            bytes(theirs)
        )),
    );
    Ok(rows)
}

/// A home whose member is in `n` circles of 20 members.
fn small_circles(dir: &std::path::Path, n: usize) -> Result<()> {
    let cast = Cast::new(20);
    write_identity(dir, &cast.members[0], &cast.devices[0])?;
    let home = Home::new(dir);
    let lock = home.lock("bench")?;
    for _ in 0..n {
        let mut c = found(&cast, Timestamp::now())?;
        c.set_device(cast.devices[0].id());
        let keys = Keyring::with(EpochKey::random(
            c.id(),
            0,
            &cast.devices[0],
            &mut rand::rng(),
        ));
        home.create_circle(&lock, &c, &keys)?;
    }
    Ok(())
}
