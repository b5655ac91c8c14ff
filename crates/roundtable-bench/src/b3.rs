//! B3 history: circles with years of realistic history (20 members:
//! check-ins, replies, moments, asks and offers, gatherings with answers and
//! dishes), laid out on disk as a device keeps them (snapshot + log). Disk
//! against Automerge's `save()`; opening against `Automerge::load`; the real
//! binary's `show --json` and an offline `checkin` as processes against
//! process start (`roundtable id`) plus `Automerge::load` (plus one fsynced
//! append for the edit); a web page's read through a running node right
//! after a change against Automerge applying that change; and what a live
//! page is sent after a change against the whole page.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Result;
use automerge::Automerge;
use roundtable_core::{Mood, Op, Timestamp};
use roundtable_node::Node;
use roundtable_store::Home;

use crate::Ctx;
use crate::setup::{dir_size, free_port, median, median_of, node_config, roundtable, timed_run};
use crate::table::{Goal, Row, bytes};

pub(crate) async fn run(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for ops in ctx.plan.histories.clone() {
        // The largest circle takes seconds a run: fewer repeats.
        let repeats = if ops >= 1_000_000 {
            ctx.plan.repeats.min(3)
        } else {
            ctx.plan.repeats
        };
        let h = ctx.history(ops)?;
        let (dir, id) = (h.dir.clone(), h.id);
        let label = format!("~{} ops", crate::setup::count(ops as usize));
        let size = format!("{} ops, {} changes, 20 members", h.ops, h.changes);
        let home = Home::new(&dir);
        let save = home.read_circle(id)?.save();

        let disk = dir_size(&dir.join("circles").join(id.to_string()));
        rows.push(
            Row::new("B3", format!("{label}: disk"))
                .bytes(disk, save.len() as u64)
                .goal(Goal::AtMost(1.1))
                .note(format!("snapshot + log vs save(); {size}")),
        );

        let (open, load) = {
            let lock = home.lock("bench")?;
            let (open, _) = median_of(repeats, || Ok(home.open_circle(&lock, id)?))?;
            let (load, _) = median_of(repeats, || Ok(Automerge::load(&save)?))?;
            (open, load)
        };
        rows.push(
            Row::new("B3", format!("{label}: open"))
                .times(open, load)
                .goal(Goal::AtMost(1.2))
                .note(format!(
                    "Home::open_circle vs Automerge::load of the same save(); median of {repeats}"
                )),
        );

        let id_run = |()| -> Result<Duration> {
            let mut c = roundtable(&dir)?;
            c.arg("id");
            timed_run(c)
        };
        let (start, _) = median_of(repeats, || id_run(()))?;
        let (show, _) = median_of(repeats, || {
            let mut c = roundtable(&dir)?;
            c.args(["show", "--json"]);
            timed_run(c)
        })?;
        rows.push(
            Row::new("B3", format!("{label}: show --json (process)"))
                .times(show, start + load)
                .goal(Goal::AtMost(1.5))
                .note(format!(
                    "anchor: `roundtable id` process ({}) + Automerge::load ({})",
                    crate::table::ms(start),
                    crate::table::ms(load)
                )),
        );

        let append = fsynced_append(&dir, repeats)?;
        let (checkin, _) = median_of(repeats, || {
            let mut c = roundtable(&dir)?;
            c.args(["checkin", "--mood", "okay", "a quiet week, thank you all"]);
            timed_run(c)
        })?;
        rows.push(
            Row::new("B3", format!("{label}: offline checkin (process)"))
                .times(checkin, start + load + append)
                .goal(Goal::AtMost(3.0))
                .note(format!(
                    "anchor: process start + Automerge::load + one fsynced append ({})",
                    crate::table::ms(append)
                )),
        );

        let node = Node::spawn(node_config(&dir, free_port()?)).await?;
        let handle = node.handle();
        let mut views = Vec::new();
        let mut first = None;
        // A page was open before the change: the node holds a reading.
        handle.read(id).await?;
        for i in 0..repeats.max(1) {
            // A page's first read after the circle changed: the node keeps
            // its reading until then, so each read follows a new check-in.
            let op = Op::Checkin {
                mood: Mood::Okay,
                note: format!("bench {i}"),
            };
            handle.perform(id, op, Timestamp::now()).await?;
            let t = Instant::now();
            let reading = handle.read(id).await?;
            let took = t.elapsed();
            first.get_or_insert(reading.view.checkins.len());
            views.push(took);
        }
        let live = crate::live::update(&handle, id, repeats.max(1)).await?;
        node.shutdown().await?;
        let apply = apply_one_change(&save, repeats.max(1))?;
        rows.push(
            Row::new("B3", format!("{label}: a page's read after a change"))
                .times(median(&views), apply)
                .goal(Goal::AtMost(2.0))
                .note(format!(
                    "NodeHandle::read right after a check-in (what a web page does: the node keeps the reading until the circle changes, then reads what changed) vs Automerge applying that change (load_incremental of a check-in's change); Automerge::load is {}; {} check-ins; save() is {}",
                    crate::table::ms(load),
                    first.unwrap_or(0),
                    bytes(save.len() as u64)
                )),
        );
        rows.push(
            Row::new("B3", format!("{label}: a live page's update after a change"))
                .bytes(live.parts, live.page)
                .goal(Goal::Below(1.0))
                .note(format!(
                    "the home page open in a browser, a check-in made: what the web app sends it (the live parts that changed, {} of {}; {}) vs the whole page, which the page fetched again before ({}); whole HTTP answers, medians of {}",
                    live.changed.0,
                    live.changed.1,
                    crate::table::ms(live.parts_took),
                    crate::table::ms(live.page_took),
                    repeats.max(1)
                )),
        );
    }
    Ok(rows)
}

/// The median time Automerge takes to apply one change of a check-in's
/// shape (a map with a mood, a note and a time, in the check-ins) to the
/// circle's document: what a device does with a change it is sent.
fn apply_one_change(save: &[u8], repeats: usize) -> Result<Duration> {
    use automerge::transaction::Transactable;
    use automerge::{ObjType, ROOT, ReadDoc};
    let mut doc = Automerge::load(save)?;
    let mut times = Vec::new();
    for i in 0..repeats {
        let mut writer = doc.fork();
        let mut tx = writer.transaction();
        let checkins = tx
            .get(ROOT, "checkins")?
            .map(|(_, id)| id)
            .ok_or_else(|| anyhow::anyhow!("no check-ins in the circle"))?;
        let e = tx.put_object(&checkins, format!("{i:032x}"), ObjType::Map)?;
        tx.put(&e, "mood", "okay")?;
        tx.put(&e, "note", format!("bench {i}"))?;
        tx.put(&e, "at", 1_795_464_000_000_i64)?;
        tx.commit();
        let change = writer
            .get_last_local_change()
            .ok_or_else(|| anyhow::anyhow!("no change made"))?
            .raw_bytes()
            .to_vec();
        let t = Instant::now();
        doc.load_incremental(&change)?;
        times.push(t.elapsed());
    }
    Ok(median(&times))
}

/// The median time to append one record of a check-in's size to a file
/// and fsync it, in the circle's directory.
fn fsynced_append(dir: &std::path::Path, repeats: usize) -> Result<Duration> {
    let path = dir.join("append-probe");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let record = vec![7u8; 200];
    let (d, _) = median_of(repeats.max(5), || {
        f.write_all(&record)?;
        f.sync_all()?;
        Ok(())
    })?;
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(d)
}
