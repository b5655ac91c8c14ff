//! The person's own defaults: which circle commands act on when they do not
//! say, and the name they go by. A TOML file wherever `ROUNDTABLE_CONFIG`
//! points; else, for a home given with `--home` or `ROUNDTABLE_HOME`,
//! `config.toml` in that home (each home is a device of its own, with its
//! own defaults); else in the platform's config directory (on Linux
//! `~/.config/roundtable/config.toml`):
//!
//! ```toml
//! circle = "Tuesday Supper"   # a circle's name (any case) or the start of its id
//! name = "Maya"               # what new circles call you, unless --as says otherwise
//! ```

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Deserialize;

use crate::bad_input;

/// What the config file may say.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// The circle to act on when `--circle` is not given.
    pub(crate) circle: Option<String>,
    /// The name to go by when `--as` is not given.
    pub(crate) name: Option<String>,
}

/// Where the config file is looked for, for a home given as `home`.
pub(crate) fn path(home: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ROUNDTABLE_CONFIG") {
        return Some(PathBuf::from(p));
    }
    if let Some(home) = home {
        return Some(home.join("config.toml"));
    }
    directories::ProjectDirs::from("", "", "roundtable").map(|d| d.config_dir().join("config.toml"))
}

/// Reads the config file; none at all is no defaults. A file that does not
/// read is an error naming it, so a typo is never silently ignored.
pub(crate) fn load(path: Option<&Path>) -> Result<Config> {
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(e) => return Err(bad_input(format!("could not read {}: {e}", path.display()))),
    };
    toml::from_str(&text).map_err(|e| {
        let why = e.message().to_owned();
        bad_input(format!(
            "{} does not read: {why}; it may set circle = \"NAME\" and name = \"YOUR NAME\"",
            path.display()
        ))
    })
}
