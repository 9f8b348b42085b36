//! Statements to a tree of directives, with `include` expanded.
//!
//! nginx evaluates directives while it reads them, so an error found late
//! in a file is only reported if nothing before it failed. The tree keeps
//! that order: reading stops at the first lexical or include error, which
//! is stored as an [`Node::Error`] at the place it happened, and the
//! evaluator reports it only when it gets there.

use super::error::{emerg, emerg_at, COMMAND_LINE};
use super::lexer::{Lexer, Stmt};
use super::model::{ConfFile, Origin};
use super::{sys, ConfMessage};
use std::path::{Path, PathBuf};

/// One directive: its name, arguments, where its `;` or `{` was, and its
/// block when it opened one.
#[derive(Debug, Clone, PartialEq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub origin: Origin,
    pub block: Option<Vec<Node>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Directive(Directive),
    /// The contents of the files an `include` named, in glob order.
    Include(Vec<Node>),
    /// Reading stopped here.
    Error(ConfMessage),
}

/// How deep includes may nest before we call it a loop (nginx would run
/// out of file descriptors instead).
const MAX_INCLUDE_DEPTH: usize = 64;

/// Reads the main file, its includes and the `-g` directives.
pub struct Reader {
    /// Directory of the main file: relative includes start here.
    pub conf_prefix: PathBuf,
    /// Every file read, in order, once each (for `-T`).
    pub files: Vec<ConfFile>,
    /// When false, `include` is refused (for parsing untrusted text).
    pub allow_include: bool,
    depth: usize,
}

enum Kind {
    File,
    Block,
    CommandLine,
}

impl Reader {
    pub fn new(conf_prefix: PathBuf) -> Reader {
        Reader {
            conf_prefix,
            files: Vec::new(),
            allow_include: true,
            depth: 0,
        }
    }

    /// Read a file; `at` is where it was named (`None` for the main file,
    /// whose open error nginx reports without a location).
    pub fn read_file(&mut self, path: &Path, at: Option<&Origin>) -> Vec<Node> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                let text = format!(
                    "open() \"{}\" failed{}",
                    path.display(),
                    sys::errno_suffix(e.raw_os_error().unwrap_or(0))
                );
                return vec![Node::Error(match at {
                    Some(o) => emerg_at(text, o),
                    None => emerg(text),
                })];
            }
        };
        if !self.files.iter().any(|f| f.path == path) {
            self.files.push(ConfFile {
                path: path.to_path_buf(),
                contents: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        self.parse_bytes(&bytes, path)
    }

    /// Parse text as the contents of `file` (used for files and fuzzing).
    pub fn parse_bytes(&mut self, bytes: &[u8], file: &Path) -> Vec<Node> {
        let mut lx = Lexer::new(bytes, false);
        let mut nodes = Vec::new();
        self.parse_level(&mut lx, file, Kind::File, &mut nodes);
        nodes
    }

    /// Parse `-g` directives.
    pub fn parse_command_line(&mut self, text: &str) -> Vec<Node> {
        let mut lx = Lexer::new(text.as_bytes(), true);
        let mut nodes = Vec::new();
        self.parse_level(
            &mut lx,
            Path::new(COMMAND_LINE),
            Kind::CommandLine,
            &mut nodes,
        );
        nodes
    }

    /// Parse statements into `out` until the end of this level; returns
    /// false when reading stopped on an error (already pushed to `out`).
    fn parse_level(
        &mut self,
        lx: &mut Lexer<'_>,
        file: &Path,
        kind: Kind,
        out: &mut Vec<Node>,
    ) -> bool {
        let cmdline = matches!(kind, Kind::CommandLine);
        let origin = |line: usize| Origin {
            file: file.to_path_buf(),
            line: if cmdline { 0 } else { line },
        };
        loop {
            let stmt = match lx.next_stmt() {
                Ok(s) => s,
                Err(e) => {
                    out.push(Node::Error(emerg_at(e.text, &origin(e.line))));
                    return false;
                }
            };
            match stmt {
                Stmt::BlockEnd { line } => {
                    if matches!(kind, Kind::Block) {
                        return true;
                    }
                    out.push(Node::Error(emerg_at("unexpected \"}\"", &origin(line))));
                    return false;
                }
                Stmt::Eof { line } => {
                    if matches!(kind, Kind::Block) {
                        out.push(Node::Error(emerg_at(
                            "unexpected end of file, expecting \"}\"",
                            &origin(line),
                        )));
                        return false;
                    }
                    return true;
                }
                Stmt::BlockStart { words, line } => {
                    if cmdline {
                        out.push(Node::Error(emerg_at(
                            "block directives are not supported in -g option",
                            &origin(line),
                        )));
                        return false;
                    }
                    let mut words = words.into_iter().map(|w| w.text);
                    let name = words.next().unwrap_or_default();
                    let mut block = Vec::new();
                    let ok = self.parse_level(lx, file, Kind::Block, &mut block);
                    out.push(Node::Directive(Directive {
                        name,
                        args: words.collect(),
                        origin: origin(line),
                        block: Some(block),
                    }));
                    if !ok {
                        return false;
                    }
                }
                Stmt::Simple { words, line } => {
                    let mut words = words.into_iter().map(|w| w.text);
                    let name = words.next().unwrap_or_default();
                    let args: Vec<String> = words.collect();
                    let here = origin(line);
                    if name == "include" && args.len() == 1 && self.allow_include {
                        let nodes = self.include(&args[0], &here);
                        let failed = matches!(last_error(&nodes), Some(true));
                        out.push(Node::Include(nodes));
                        if failed {
                            return false;
                        }
                        continue;
                    }
                    out.push(Node::Directive(Directive {
                        name,
                        args,
                        origin: here,
                        block: None,
                    }));
                }
            }
        }
    }

    fn include(&mut self, name: &str, at: &Origin) -> Vec<Node> {
        let path = full_name(&self.conf_prefix, name);
        if self.depth >= MAX_INCLUDE_DEPTH {
            return vec![Node::Error(emerg_at(
                format!("too deep nesting of \"include\" of \"{}\"", path.display()),
                at,
            ))];
        }
        self.depth += 1;
        let mut nodes = Vec::new();
        let text = path.to_string_lossy().into_owned();
        if !text.contains(['*', '?', '[']) {
            nodes = self.read_file(&path, Some(at));
        } else {
            match sys::glob(&text) {
                Ok(list) => {
                    for f in list {
                        let mut sub = self.read_file(Path::new(&f), Some(at));
                        let failed = matches!(last_error(&sub), Some(true));
                        nodes.append(&mut sub);
                        if failed {
                            break;
                        }
                    }
                }
                Err(e) => nodes.push(Node::Error(emerg_at(
                    format!(
                        "glob() \"{}\" failed{}",
                        text,
                        sys::errno_suffix(e.raw_os_error().unwrap_or(0))
                    ),
                    at,
                ))),
            }
        }
        self.depth -= 1;
        nodes
    }
}

/// Whether a node list ends in an error (reading stopped inside it).
fn last_error(nodes: &[Node]) -> Option<bool> {
    match nodes.last()? {
        Node::Error(_) => Some(true),
        Node::Include(sub) => last_error(sub),
        Node::Directive(d) => d.block.as_deref().and_then(last_error),
    }
}

/// nginx's `ngx_conf_full_name`: absolute paths stay, relative ones are
/// joined to the prefix (which ends with '/' or is empty).
pub fn full_name(prefix: &Path, name: &str) -> PathBuf {
    if name.starts_with('/') {
        PathBuf::from(name)
    } else {
        let mut s = prefix.to_string_lossy().into_owned();
        if !s.is_empty() && !s.ends_with('/') {
            s.push('/');
        }
        s.push_str(name);
        PathBuf::from(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<Node> {
        Reader::new(PathBuf::from("/nonexistent/"))
            .parse_bytes(text.as_bytes(), Path::new("/t.conf"))
    }

    fn first_error(nodes: &[Node]) -> Option<String> {
        for n in nodes {
            match n {
                Node::Error(m) => return Some(m.text.clone()),
                Node::Include(sub) => {
                    if let Some(e) = first_error(sub) {
                        return Some(e);
                    }
                }
                Node::Directive(d) => {
                    if let Some(e) = d.block.as_deref().and_then(first_error) {
                        return Some(e);
                    }
                }
            }
        }
        None
    }

    #[test]
    fn tree() {
        let nodes = parse("a 1;\nb {\n c 2;\n}\n");
        assert_eq!(nodes.len(), 2);
        let Node::Directive(b) = &nodes[1] else {
            panic!()
        };
        assert_eq!(b.name, "b");
        assert_eq!(b.origin.line, 2);
        let Node::Directive(c) = &b.block.as_ref().unwrap()[0] else {
            panic!()
        };
        assert_eq!(
            (c.name.as_str(), c.args[0].as_str(), c.origin.line),
            ("c", "2", 3)
        );
    }

    #[test]
    fn block_errors() {
        assert_eq!(
            first_error(&parse("a {\n b;\n")).unwrap(),
            "unexpected end of file, expecting \"}\" in /t.conf:3"
        );
        assert_eq!(
            first_error(&parse("a;\n}\n")).unwrap(),
            "unexpected \"}\" in /t.conf:2"
        );
    }

    #[test]
    fn command_line() {
        let mut r = Reader::new(PathBuf::from("/x/"));
        let nodes = r.parse_command_line("daemon off; a {");
        assert_eq!(
            first_error(&nodes).unwrap(),
            "block directives are not supported in -g option in command line"
        );
    }

    #[test]
    fn includes_with_globs() {
        let dir = std::env::temp_dir().join(format!("postern-inc-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("d")).unwrap();
        std::fs::write(dir.join("d/2.conf"), "two;\n").unwrap();
        std::fs::write(dir.join("d/1.conf"), "one;\n").unwrap();
        std::fs::write(
            dir.join("main.conf"),
            "include d/*.conf;\ninclude missing.conf;\n",
        )
        .unwrap();
        let mut r = Reader::new(dir.clone());
        let nodes = r.read_file(&dir.join("main.conf"), None);
        let Node::Include(inc) = &nodes[0] else {
            panic!()
        };
        let names: Vec<_> = inc
            .iter()
            .map(|n| match n {
                Node::Directive(d) => d.name.clone(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(names, ["one", "two"]);
        assert_eq!(
            first_error(&nodes).unwrap(),
            format!(
                "open() \"{}/missing.conf\" failed (2: No such file or directory) in {}/main.conf:2",
                dir.display(),
                dir.display()
            )
        );
        assert_eq!(r.files.len(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn full_names() {
        assert_eq!(full_name(Path::new("/p/"), "a"), PathBuf::from("/p/a"));
        assert_eq!(full_name(Path::new("/p"), "a"), PathBuf::from("/p/a"));
        assert_eq!(full_name(Path::new("/p"), "/a"), PathBuf::from("/a"));
    }
}
