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

/// What loading reports before it ends, in the order nginx prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress<'a> {
    /// A warning (for example the deprecated `ssl on;`).
    Warning(&'a ConfMessage),
    /// Every file was read and every block merged; the checks nginx makes
    /// once the whole configuration is known (events, affinity, ...) come
    /// next. `-t` prints "syntax is ok" here, as nginx does.
    SyntaxOk,
}

/// Read, parse, validate and merge the configuration, telling `progress`
/// about warnings and the end of parsing as they happen, so that a caller
/// prints them in nginx's order even when loading fails later.
pub fn load_with(
    opts: &LoadOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Config, ConfMessage> {
    let conf_prefix = conf_prefix(&opts.conf_file);
    let mut reader = parser::Reader::new(conf_prefix.clone());
    let mut ev = directives::Eval::new(opts.prefix.clone(), conf_prefix);
    let mut parsed = Ok(());
    if let Some(globals) = &opts.globals {
        let nodes = reader.parse_command_line(globals);
        parsed = ev.run(&nodes);
    }
    if parsed.is_ok() {
        let nodes = reader.read_file(&opts.conf_file, None);
        parsed = ev.run(&nodes);
    }
    for w in &ev.warnings {
        progress(Progress::Warning(w));
    }
    parsed?;
    progress(Progress::SyntaxOk);
    let parse_warnings = ev.warnings.len();
    let (config, warnings) = merge::finish(ev, reader.files, opts)?;
    for w in &warnings[parse_warnings..] {
        progress(Progress::Warning(w));
    }
    Ok(config)
}

/// Read, parse, validate and merge the configuration, collecting warnings.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfMessage> {
    let mut warnings = Vec::new();
    let config = load_with(opts, &mut |p| {
        if let Progress::Warning(w) = p {
            warnings.push(w.clone());
        }
    })?;
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
