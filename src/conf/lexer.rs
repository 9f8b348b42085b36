//! The token level of nginx's configuration language, built on nom.
//!
//! A statement is a list of words ended by `;` or `{`; `}` closes a block.
//! Words are bare or quoted with `"` or `'`; a backslash escapes the next
//! byte (`\"`, `\'`, `\\` lose the backslash, `\t`, `\r`, `\n` become
//! control characters, any other pair is kept as written). `#` starts a
//! comment only where a word could start. `$` followed by `{` keeps the
//! braces in the word (nginx's `${var}` form). A quoted word must be
//! followed by white space, `;`, `{` or `)`.

use nom::branch::alt;
use nom::bytes::complete::{is_not, tag, take, take_till, take_while, take_while1};
use nom::combinator::recognize;
use nom::multi::{many0, many1};
use nom::sequence::pair;
use nom::{IResult, Parser};

/// nginx reads configuration through a buffer of this size; a token that
/// does not fit is refused.
pub const MAX_TOKEN: usize = 4096;

/// One word with the line it ended on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub line: usize,
}

/// What the statement reader returns, like nginx's `ngx_conf_read_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    /// Words ended by `;`.
    Simple { words: Vec<Word>, line: usize },
    /// Words ended by `{`.
    BlockStart { words: Vec<Word>, line: usize },
    /// `}`.
    BlockEnd { line: usize },
    /// End of input.
    Eof { line: usize },
}

/// A lexical error: the message and the line it is reported on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub text: String,
    pub line: usize,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn spaces(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(is_space).parse(i)
}

fn comment(i: &[u8]) -> IResult<&[u8], &[u8]> {
    recognize(pair(tag("#"), take_till(|c| c == b'\n'))).parse(i)
}

fn escape_pair(i: &[u8]) -> IResult<&[u8], &[u8]> {
    recognize(pair(tag("\\"), take(1usize))).parse(i)
}

/// The body of a quoted word up to (not including) the closing quote.
fn quoted_body(quote: &'static str) -> impl Fn(&[u8]) -> IResult<&[u8], &[u8]> {
    move |i| {
        let stop: &'static str = if quote == "\"" { "\\\"" } else { "\\'" };
        recognize(many0(alt((escape_pair, is_not(stop))))).parse(i)
    }
}

fn bare_word(i: &[u8]) -> IResult<&[u8], &[u8]> {
    let dollar = recognize(pair(tag("$"), take_while(|c| c == b'{')));
    let plain = take_while1(|c: u8| !is_space(c) && !matches!(c, b';' | b'{' | b'\\' | b'$'));
    recognize(many1(alt((escape_pair, dollar, plain)))).parse(i)
}

/// nginx's unescaping of a word's raw bytes.
fn unescape(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && i + 1 < raw.len() {
            match raw[i + 1] {
                b'"' | b'\'' | b'\\' => {
                    out.push(raw[i + 1]);
                    i += 2;
                    continue;
                }
                b't' => {
                    out.push(b'\t');
                    i += 2;
                    continue;
                }
                b'r' => {
                    out.push(b'\r');
                    i += 2;
                    continue;
                }
                b'n' => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn show_byte(c: u8) -> String {
    String::from_utf8_lossy(&[c]).into_owned()
}

/// Reads statements from one file's (or the command line's) bytes.
pub struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
    /// Input from `-g`: nginx words end-of-input errors differently.
    command_line: bool,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a [u8], command_line: bool) -> Lexer<'a> {
        Lexer {
            src,
            pos: 0,
            line: 1,
            command_line,
        }
    }

    /// The current line (where an error met now is reported).
    pub fn line(&self) -> usize {
        self.line
    }

    fn rest(&self) -> &'a [u8] {
        &self.src[self.pos..]
    }

    fn advance(&mut self, consumed: usize) {
        let end = self.pos + consumed;
        self.line += self.src[self.pos..end]
            .iter()
            .filter(|&&c| c == b'\n')
            .count();
        self.pos = end;
    }

    fn err<T>(&self, text: impl Into<String>) -> Result<T, LexError> {
        Err(LexError {
            text: text.into(),
            line: self.line,
        })
    }

    fn eof_error<T>(&self) -> Result<T, LexError> {
        if self.command_line {
            self.err("unexpected end of parameter, expecting \";\"")
        } else {
            self.err("unexpected end of file, expecting \";\" or \"}\"")
        }
    }

    fn too_long<T>(&mut self, start: usize, start_line: usize) -> Result<T, LexError> {
        let head = &self.src[start..(start + 10).min(self.src.len())];
        Err(LexError {
            text: format!(
                "too long parameter \"{}...\" started",
                String::from_utf8_lossy(head)
            ),
            line: start_line,
        })
    }

    /// Skip white space and comments.
    fn skip_blank(&mut self) -> Result<(), LexError> {
        loop {
            let rest = self.rest();
            if let Ok((left, _)) = spaces(rest) {
                self.advance(rest.len() - left.len());
                continue;
            }
            if let Ok((left, body)) = comment(rest) {
                if body.len() >= MAX_TOKEN && self.src.len() > self.pos + MAX_TOKEN {
                    let (start, line) = (self.pos, self.line);
                    return self.too_long(start, line);
                }
                self.advance(rest.len() - left.len());
                continue;
            }
            return Ok(());
        }
    }

    /// Read one quoted word; the cursor is on the opening quote.
    fn quoted(&mut self, quote: u8) -> Result<Word, LexError> {
        let start_line = self.line;
        self.advance(1);
        let body_start = self.pos;
        let rest = self.rest();
        let q: &'static str = if quote == b'"' { "\"" } else { "'" };
        let (left, body) = match quoted_body(q)(rest) {
            Ok(v) => v,
            Err(_) => (rest, &rest[..0]),
        };
        let more_after = |n: usize| self.src.len() > body_start + n;
        if body.len() >= MAX_TOKEN && more_after(MAX_TOKEN) {
            self.advance(body.len());
            return Err(LexError {
                text: format!(
                    "too long parameter, probably missing terminating \"{}\" character",
                    quote as char
                ),
                line: start_line,
            });
        }
        self.advance(body.len());
        if left.first() != Some(&quote) {
            // Unterminated (a trailing lone backslash included).
            self.advance(left.len());
            return self.eof_error();
        }
        if body.len() + 1 >= MAX_TOKEN && more_after(MAX_TOKEN) {
            return self.too_long(body_start, start_line);
        }
        self.advance(1);
        let word = Word {
            text: unescape(body),
            line: self.line,
        };
        match self.rest().first() {
            None => self.eof_error(),
            Some(&c) if is_space(c) || matches!(c, b';' | b'{' | b')') => Ok(word),
            Some(&c) => self.err(format!("unexpected \"{}\"", show_byte(c))),
        }
    }

    /// Read one bare word; the cursor is on its first byte.
    fn bare(&mut self) -> Result<Word, LexError> {
        let start = self.pos;
        let start_line = self.line;
        let rest = self.rest();
        let (left, raw) = match bare_word(rest) {
            Ok(v) => v,
            // Only a lone backslash at the very end of input gets here.
            Err(_) => (&rest[rest.len()..], rest),
        };
        if raw.len() >= MAX_TOKEN && self.src.len() > start + MAX_TOKEN {
            return self.too_long(start, start_line);
        }
        self.advance(raw.len());
        if left.is_empty() || left[0] == b'\\' {
            self.advance(left.len());
            return self.eof_error();
        }
        Ok(Word {
            text: unescape(raw),
            line: self.line,
        })
    }

    /// The next statement, as nginx's reader sees it.
    pub fn next_stmt(&mut self) -> Result<Stmt, LexError> {
        let mut words: Vec<Word> = Vec::new();
        loop {
            self.skip_blank()?;
            let Some(&c) = self.rest().first() else {
                if !words.is_empty() {
                    return self.eof_error();
                }
                return Ok(Stmt::Eof { line: self.line });
            };
            match c {
                b';' | b'{' => {
                    if words.is_empty() {
                        return self.err(format!("unexpected \"{}\"", c as char));
                    }
                    self.advance(1);
                    let line = self.line;
                    return Ok(if c == b';' {
                        Stmt::Simple { words, line }
                    } else {
                        Stmt::BlockStart { words, line }
                    });
                }
                b'}' => {
                    if !words.is_empty() {
                        return self.err("unexpected \"}\"");
                    }
                    self.advance(1);
                    return Ok(Stmt::BlockEnd { line: self.line });
                }
                b'"' | b'\'' => words.push(self.quoted(c)?),
                _ => words.push(self.bare()?),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(src: &str) -> Result<Vec<Stmt>, LexError> {
        let mut lx = Lexer::new(src.as_bytes(), false);
        let mut out = Vec::new();
        loop {
            let s = lx.next_stmt()?;
            let end = matches!(s, Stmt::Eof { .. });
            out.push(s);
            if end {
                return Ok(out);
            }
        }
    }

    fn texts(s: &Stmt) -> Vec<String> {
        match s {
            Stmt::Simple { words, .. } | Stmt::BlockStart { words, .. } => {
                words.iter().map(|w| w.text.clone()).collect()
            }
            _ => Vec::new(),
        }
    }

    fn err(src: &str) -> (String, usize) {
        let e = all(src).unwrap_err();
        (e.text, e.line)
    }

    #[test]
    fn words_and_statements() {
        let s = all("a b;\n c {\n}\n").unwrap();
        assert_eq!(texts(&s[0]), ["a", "b"]);
        assert!(matches!(s[1], Stmt::BlockStart { line: 2, .. }));
        assert!(matches!(s[2], Stmt::BlockEnd { line: 3 }));
        assert!(matches!(s[3], Stmt::Eof { line: 4 }));
    }

    #[test]
    fn quotes_and_escapes() {
        let s = all(r#"a "x y" 'p;q' "\"\\\t" b\ c "a\qb";"#).unwrap();
        assert_eq!(
            texts(&s[0]),
            ["a", "x y", "p;q", "\"\\\t", "b\\ c", "a\\qb"]
        );
        let s = all("a 'it''s';").unwrap_err();
        assert_eq!(s.text, "unexpected \"'\"");
    }

    #[test]
    fn special_bytes_inside_words() {
        let s = all("a b#c d}e 'q' \"r\";").unwrap();
        assert_eq!(texts(&s[0]), ["a", "b#c", "d}e", "q", "r"]);
        let s = all("set ${x}y;").unwrap();
        assert_eq!(texts(&s[0]), ["set", "${x}y"]);
    }

    #[test]
    fn comments() {
        let s = all("# c1\na; # c2\n#c3").unwrap();
        assert_eq!(texts(&s[0]), ["a"]);
        assert!(matches!(s[1], Stmt::Eof { line: 3 }));
    }

    #[test]
    fn line_of_statement_is_its_terminator() {
        let s = all("a\nb\n;").unwrap();
        assert!(matches!(s[0], Stmt::Simple { line: 3, .. }));
    }

    #[test]
    fn errors() {
        assert_eq!(err(";"), ("unexpected \";\"".into(), 1));
        assert_eq!(err("\n{"), ("unexpected \"{\"".into(), 2));
        assert_eq!(err("a }"), ("unexpected \"}\"".into(), 1));
        assert_eq!(
            err("a b\n"),
            ("unexpected end of file, expecting \";\" or \"}\"".into(), 2)
        );
        assert_eq!(
            err("a \"b\n\n"),
            ("unexpected end of file, expecting \";\" or \"}\"".into(), 3)
        );
        assert_eq!(err("a \"b\"c;"), ("unexpected \"c\"".into(), 1));
        assert_eq!(
            err("a b\\"),
            ("unexpected end of file, expecting \";\" or \"}\"".into(), 1)
        );
    }

    #[test]
    fn command_line_end() {
        let mut lx = Lexer::new(b"daemon off", true);
        assert_eq!(
            lx.next_stmt().unwrap_err().text,
            "unexpected end of parameter, expecting \";\""
        );
    }

    #[test]
    fn too_long() {
        let long = "x".repeat(5000);
        let e = all(&format!("a {long} b;")).unwrap_err();
        assert_eq!(e.text, "too long parameter \"xxxxxxxxxx...\" started");
        let e = all(&format!("a \"{long} b;")).unwrap_err();
        assert_eq!(
            e.text,
            "too long parameter, probably missing terminating \"\"\" character"
        );
        let ok = "y".repeat(4000);
        assert!(all(&format!("a {ok};")).is_ok());
    }

    #[test]
    fn quote_then_paren_starts_a_word() {
        let s = all("a \"b\")c;").unwrap();
        assert_eq!(texts(&s[0]), ["a", "b", ")c"]);
    }
}
