//! The configuration: nginx's language parsed once into typed structs.
//!
//! `lexer` turns bytes into statements, `parser` builds the directive tree
//! and follows `include`, `directives` holds one table per nginx module and
//! evaluates the tree in nginx's order, and `merge` applies defaults and
//! the `mail {}` → `server {}` inheritance. `units` and `url` read nginx's
//! value syntaxes; `sys` holds the few system calls loading needs.

pub mod directives;
pub mod error;
pub mod lexer;
pub mod merge;
pub mod model;
pub mod parser;
pub mod sys;
pub mod units;
pub mod url;

pub use model::*;

use crate::build_info;
use std::path::{Path, PathBuf};

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

/// The directory relative includes and TLS files are read from: the main
/// file's directory (nginx's "conf prefix").
fn conf_prefix(conf_file: &Path) -> PathBuf {
    conf_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Read, parse, validate and merge the configuration.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfMessage> {
    let conf_prefix = conf_prefix(&opts.conf_file);
    let mut reader = parser::Reader::new(conf_prefix.clone());
    let mut ev = directives::Eval::new(opts.prefix.clone(), conf_prefix);
    if let Some(globals) = &opts.globals {
        let nodes = reader.parse_command_line(globals);
        ev.run(&nodes)?;
    }
    let nodes = reader.read_file(&opts.conf_file, None);
    ev.run(&nodes)?;
    let (config, warnings) = merge::finish(ev, reader.files, opts)?;
    Ok(Loaded { config, warnings })
}

/// Lex and parse configuration text without evaluating it or reading any
/// file (`include` is kept as a plain directive): the number of
/// directives, or the first syntax error. Used by the fuzz target.
pub fn parse_tree(text: &[u8]) -> Result<usize, ConfMessage> {
    let mut reader = parser::Reader::new(PathBuf::from("/"));
    reader.allow_include = false;
    let nodes = reader.parse_bytes(text, Path::new("fuzz.conf"));
    count(&nodes)
}

fn count(nodes: &[parser::Node]) -> Result<usize, ConfMessage> {
    let mut n = 0;
    for node in nodes {
        n += match node {
            parser::Node::Error(e) => return Err(e.clone()),
            parser::Node::Include(sub) => count(sub)?,
            parser::Node::Directive(d) => {
                1 + d.block.as_deref().map(count).transpose()?.unwrap_or(0)
            }
        };
    }
    Ok(n)
}

/// The default options for a prefix: the build-time paths under it.
pub fn default_options(prefix: &Path) -> LoadOptions {
    LoadOptions {
        prefix: prefix.to_path_buf(),
        conf_file: parser::full_name(prefix, build_info::DEFAULT_CONF_PATH),
        globals: None,
        default_error_log: LogTarget::File(parser::full_name(
            prefix,
            build_info::DEFAULT_ERROR_LOG_PATH,
        )),
    }
}

#[cfg(test)]
mod tests;
