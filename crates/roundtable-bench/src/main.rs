//! Roundtable's benchmarks (issue #13): each scenario runs next to its
//! anchor in the same run, and the table reports Roundtable over anchor.
//!
//! ```text
//! roundtable-bench --all --markdown      every scenario, full sizes
//! roundtable-bench --quick               tiny sizes: checks the harness, not the speed
//! roundtable-bench --only B1,B3          some scenarios (full sizes unless --quick)
//! roundtable-bench --only B3,B4,B5 --histories 1000000
//!                                         histories of other sizes
//! roundtable-bench --only B2 --regimes 90000:10000:0
//!                                         catch-ups of other sizes
//! ```

mod b1;
mod b2;
mod b3;
mod b4;
mod b5;
mod b6;
mod b7;
mod b8;
mod child;
mod live;
mod setup;
mod table;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Parser;

use crate::setup::{HistoryHome, Plan};
use crate::table::Row;

/// Runs Roundtable's benchmarks next to their anchors and prints the table.
#[derive(Debug, Parser)]
#[command(name = "roundtable-bench")]
struct Args {
    /// Every scenario at full sizes.
    #[arg(long, conflicts_with = "quick")]
    all: bool,
    /// Tiny sizes: checks that every scenario runs, not how fast.
    #[arg(long)]
    quick: bool,
    /// Only these scenarios, e.g. B1,B3.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Print the table as Markdown.
    #[arg(long)]
    markdown: bool,
    /// Sizes of the histories B3, B4 and B5 read, in operations, instead
    /// of the plan's (e.g. 1000000: too slow to build for `--all`).
    #[arg(long, value_delimiter = ',')]
    histories: Vec<u64>,
    /// B2's regimes instead of the plan's, each SHARED:ON_A:ON_B edits
    /// (e.g. 90000:10000:0, too slow to set up for `--all`).
    #[arg(long, value_delimiter = ',', value_parser = parse_regime)]
    regimes: Vec<setup::Regime>,
    /// Internal: a measurement that runs in a process of its own.
    #[arg(long, hide = true, num_args = 1.., allow_hyphen_values = true)]
    child: Vec<String>,
}

/// What every scenario shares: the plan, a scratch directory and the
/// histories built so far.
pub(crate) struct Ctx {
    /// Sizes.
    pub(crate) plan: Plan,
    /// Scratch space, removed at the end.
    pub(crate) dir: tempfile::TempDir,
    histories: BTreeMap<u64, HistoryHome>,
}

impl Ctx {
    /// A home with a circle of about `ops` operations of history, built
    /// once per run.
    pub(crate) fn history(&mut self, ops: u64) -> Result<&HistoryHome> {
        if !self.histories.contains_key(&ops) {
            let dir = self.dir.path().join(format!("history-{ops}"));
            eprintln!("  building a circle of ~{ops} operations ...");
            let h = setup::build_history(&dir, ops, 50, ops)?;
            eprintln!(
                "  built {} ops, {} changes in {:.1} s",
                h.ops,
                h.changes,
                h.built_in.as_secs_f64()
            );
            self.histories.insert(ops, h);
        }
        self.histories
            .get(&ops)
            .ok_or_else(|| anyhow::anyhow!("history {ops} missing"))
    }

    /// A fresh directory for one scenario.
    pub(crate) fn scratch(&self, name: &str) -> Result<PathBuf> {
        let d = self.dir.path().join(name);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }
}

const SCENARIOS: [&str; 8] = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8"];

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or_else(String::new, |kb| {
            format!(", {:.0} GiB RAM", kb as f64 / 1048576.0)
        });
    format!("{cores} cores, {cpu}{mem}")
}

/// `SHARED:ON_A:ON_B`, as `--regimes` takes it.
fn parse_regime(s: &str) -> Result<setup::Regime, String> {
    let n: Vec<usize> = s
        .split(':')
        .map(|p| {
            p.trim()
                .parse()
                .map_err(|_| format!("\"{p}\" is not a number of edits"))
        })
        .collect::<Result<_, _>>()?;
    match n[..] {
        [shared, on_a, on_b] => Ok(setup::Regime { shared, on_a, on_b }),
        _ => Err(format!(
            "\"{s}\": write SHARED:ON_A:ON_B, e.g. 90000:10000:0"
        )),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    // Quiet unless asked: `RUST_LOG=roundtable_node=debug` shows what the
    // nodes under test decide, on stderr, without touching the table.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    if !args.child.is_empty() {
        return child::run(&args.child);
    }
    let mut plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if !args.histories.is_empty() {
        plan.histories = args.histories.clone();
    }
    if !args.regimes.is_empty() {
        plan.b2 = args.regimes.clone();
    }
    let only: Vec<String> = args.only.iter().map(|s| s.trim().to_uppercase()).collect();
    for s in &only {
        if !SCENARIOS.contains(&s.as_str()) {
            bail!("unknown scenario {s}; known: {}", SCENARIOS.join(", "));
        }
    }
    if !args.all && !args.quick && only.is_empty() {
        bail!("say --all, --quick or --only B1,B2,...");
    }
    let chosen: Vec<&str> = SCENARIOS
        .iter()
        .copied()
        .filter(|s| only.is_empty() || only.iter().any(|o| o == s))
        .collect();

    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let profile = if cfg!(debug_assertions) {
        "dev (unoptimised: numbers mean nothing)"
    } else {
        "release"
    };
    let header = format!(
        "Roundtable benchmarks\nmachine: {}\ndate: {}\ncommand: {command}\nprofile: {profile}\nsizes: {}\n",
        machine(),
        jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC"),
        if plan.quick { "quick" } else { "full" },
    );
    eprint!("{header}");

    let mut ctx = Ctx {
        plan,
        dir: tempfile::Builder::new()
            .prefix("roundtable-bench")
            .tempdir()?,
        histories: BTreeMap::new(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut failed = Vec::new();
    for s in chosen {
        eprintln!("== {s}");
        let t = Instant::now();
        let result = match s {
            "B1" => runtime.block_on(b1::run(&mut ctx)),
            "B2" => runtime.block_on(b2::run(&mut ctx)),
            "B3" => runtime.block_on(b3::run(&mut ctx)),
            "B4" => runtime.block_on(b4::run(&mut ctx)),
            "B5" => runtime.block_on(b5::run(&mut ctx)),
            "B6" => runtime.block_on(b6::run(&mut ctx)),
            "B7" => runtime.block_on(b7::run(&mut ctx)),
            _ => runtime.block_on(b8::run(&mut ctx)),
        };
        match result {
            Ok(r) => {
                eprintln!("   {s} done in {:.1} s", t.elapsed().as_secs_f64());
                eprint!("{}", table::text(&r));
                rows.extend(r);
            }
            Err(e) => {
                eprintln!("   {s} could not complete: {e:#}");
                failed.push(format!("{s}: {e:#}"));
            }
        }
    }
    let wall = started.elapsed();
    println!("{header}wall time: {:.0} s\n", wall.as_secs_f64());
    if args.markdown {
        print!("{}", table::markdown(&rows));
    } else {
        print!("{}", table::text(&rows));
    }
    drop(runtime);
    if !failed.is_empty() {
        bail!("scenarios that could not complete:\n{}", failed.join("\n"));
    }
    Ok(())
}
