//! Roundtable itself: where your defaults live, a shell's completions and
//! the manual page.

use clap::CommandFactory;

use super::*;
use crate::cli::Cli;

/// `roundtable config`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: roundtable config\nThe file may say: circle = \"Tuesday Supper\" and name = \"Maya\""
)]
pub(crate) struct ConfigArgs;

impl ConfigArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        render::config(cx.config_path.clone(), &cx.config, cx.global.json)
    }
}

/// `roundtable completions SHELL`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: roundtable completions bash > ~/.local/share/bash-completion/completions/roundtable"
)]
pub(crate) struct CompletionsArgs {
    /// The shell
    shell: clap_complete::Shell,
}

impl CompletionsArgs {
    pub(crate) fn run(self) -> Result<()> {
        let mut cmd = Cli::command();
        clap_complete::generate(
            self.shell,
            &mut cmd,
            "roundtable",
            &mut render::out::stdout(),
        );
        Ok(())
    }
}

/// `roundtable man`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable man | man -l -")]
pub(crate) struct ManArgs;

impl ManArgs {
    pub(crate) fn run(self) -> Result<()> {
        clap_mangen::Man::new(Cli::command()).render(&mut render::out::stdout())?;
        Ok(())
    }
}
