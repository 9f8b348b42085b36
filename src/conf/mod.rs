//! The configuration: nginx's language parsed once into typed structs.
//! SKELETON: owned by the conf work; `load` is the only entry point.

pub mod model;

pub use model::*;

use std::path::PathBuf;

/// How to find and read the configuration (from the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// `-p prefix` or the build-time default prefix (ends without '/').
    pub prefix: PathBuf,
    /// `-c file` or the build-time default, already made absolute against
    /// the prefix when relative.
    pub conf_file: PathBuf,
    /// `-g "directives"`, parsed as if written at the top of the main file
    /// (nginx's "command line" pseudo file).
    pub globals: Option<String>,
    /// The error log used when the main context sets none: `-e file|stderr`
    /// or the build-time default error log path.
    pub default_error_log: LogTarget,
}

/// A message produced while loading: errors and warnings, worded and
/// located as nginx words them, without the `postern: [level] ` prefix
/// (for example `unknown directive "x" in /etc/postern/postern.conf:12`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfMessage {
    pub level: Level,
    pub text: String,
}

impl std::fmt::Display for ConfMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A successfully loaded configuration and the warnings met on the way
/// (for example the deprecated `ssl on;`), to be logged by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<ConfMessage>,
}

/// Read, parse, validate and merge the configuration.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfMessage> {
    let _ = opts;
    todo!("conf::load")
}
