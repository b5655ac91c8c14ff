//! Reading the circle: its recent life, the whole of it, who has gone
//! quiet, and an archive of it. Reads never write (but `feed
//! --since-last`, which marks what it told as seen).

use roundtable_core::quiet::{QuietRule, quiet, quiet_for, stepping_back};

use super::*;

/// `roundtable feed`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable feed -n 50")]
pub(crate) struct FeedArgs {
    /// How many entries to show
    #[arg(long, short = 'n', default_value_t = 20)]
    limit: usize,
    /// What arrived since you last looked on this device, in words
    /// (what concerns you first); it then counts as seen
    #[arg(long)]
    since_last: bool,
}

impl FeedArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let (backend, global, now) = (&cx.backend, &cx.global, cx.now);
        if self.since_last {
            return since::since_last(backend, global, now);
        }
        let view = cx.view()?;
        let me = backend.home().identity()?.map(|i| i.member.id());
        if !global.json
            && let Some(me) = me
        {
            settle::heads_up(&view, me, now);
        }
        render::feed(&view, self.limit, now, global.json)
    }
}

/// `roundtable show`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable show --json")]
pub(crate) struct ShowArgs;

impl ShowArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        render::show(&cx.view()?, cx.now, cx.global.json)
    }
}

/// `roundtable quiet`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable quiet")]
pub(crate) struct QuietArgs;

impl QuietArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let now = cx.now;
        let view = cx.view()?;
        let me = cx.backend.home().identity()?.map(|i| i.member.id());
        let quiet = match me {
            Some(me) => quiet_for(&view, now, &QuietRule::default(), me),
            None => quiet(&view, now, &QuietRule::default()),
        };
        render::quiet(
            &quiet,
            &stepping_back(&view, now, &TimeZone::system()),
            cx.global.json,
        )
    }
}

/// `roundtable export`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable export --out tuesday-supper.md")]
pub(crate) struct ExportArgs {
    /// markdown or json
    #[arg(long, default_value = "markdown", value_parser = ["markdown", "json"])]
    format: String,
    /// Write to this file instead of printing
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

impl ExportArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let global = &cx.global;
        let view = cx.view()?;
        // `--json` asks for JSON whatever --format says.
        let format = if global.json {
            "json"
        } else {
            self.format.as_str()
        };
        let text = match format {
            "json" => view.to_canonical_json(),
            _ => export::markdown(&view, &TimeZone::system()),
        };
        match self.out {
            Some(path) => {
                std::fs::write(&path, text)
                    .with_context(|| format!("could not write {}", path.display()))?;
                render::done(global.json, &format!("Wrote {}.", path.display()), None)
            }
            None if format == "json" => {
                render::out::raw(&text);
                Ok(())
            }
            None => {
                render::out::block(&text);
                Ok(())
            }
        }
    }
}
