//! IMAP command parser (nginx's `imap` front end).
//!
//! A line is `tag SP command [SP args] CRLF` (a bare LF also ends a line):
//!
//! * The tag is up to 32 characters of `A-Z a-z 0-9 - . _`; it may be empty
//!   (a line starting with a space). [`ImapParser::tag`] includes the one
//!   space that ends it, ready to prefix a reply; without a tag the reply
//!   uses `* `.
//! * The command is NOOP, LOGIN, LOGOUT, STARTTLS, CAPABILITY or
//!   AUTHENTICATE, case-insensitive.
//! * At most three arguments: atoms (any bytes but space, CR and LF),
//!   quoted strings with backslash escapes (unescaped in place in the
//!   buffer, which is why `parse` takes `&mut [u8]`), or literals `{n}` /
//!   `{n+}`. For `{n}` the parser stops with
//!   [`Status::LiteralContinuation`]: send `+ OK\r\n`. A literal must be
//!   followed by a space or the end of the line.
//!
//! nginx quirks kept on purpose:
//! * A quoted string is also ended by CR or LF, and then the "quoted" mode
//!   leaks into the following lines until a closing quote or an invalid line
//!   resets it: after `a LOGIN "x` CRLF, `b LOGIN u p` has the single
//!   argument `u p`.
//! * After a closing quote no space is needed: `"a""b"` is two arguments.
//! * `{0}` and `{}` literals still take one byte; any number of CRs may
//!   precede the LF after `}`.
//! * An invalid line whose last characters before CRLF are `+}` closes the
//!   connection ([`Invalid::NonSyncLiteral`]), but only when its LF is at
//!   offset 5 or more of the buffer.
//! * During an AUTHENTICATE exchange the tag and buffer are kept (the buffer
//!   is not rewound), so long SASL exchanges can fill a small
//!   `imap_client_buffer`.

use super::{is_alpha, Args, Invalid, Next, Span, Status};

/// Maximum number of arguments nginx accepts on an IMAP line.
pub const IMAP_MAX_ARGS: usize = 3;

/// Longest tag, in characters, not counting the space after it.
pub const IMAP_MAX_TAG: usize = 32;

/// The continuation reply for a synchronizing literal.
pub const IMAP_LITERAL_CONTINUATION: &[u8] = b"+ OK\r\n";

/// IMAP commands nginx recognises before login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapCommand {
    Noop,
    Login,
    Logout,
    StartTls,
    Capability,
    Authenticate,
}

impl ImapCommand {
    fn from_verb(verb: &[u8]) -> Option<ImapCommand> {
        const VERBS: [(&[u8], ImapCommand); 6] = [
            (b"NOOP", ImapCommand::Noop),
            (b"LOGIN", ImapCommand::Login),
            (b"LOGOUT", ImapCommand::Logout),
            (b"STARTTLS", ImapCommand::StartTls),
            (b"CAPABILITY", ImapCommand::Capability),
            (b"AUTHENTICATE", ImapCommand::Authenticate),
        ];
        VERBS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(verb))
            .map(|&(_, command)| command)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Tag,
    Invalid,
    SpacesBeforeCommand,
    Verb,
    SpacesBeforeArgument,
    Argument,
    Backslash,
    Literal,
    NoSyncLiteralArgument,
    StartLiteralArgument,
    LiteralArgument,
    EndLiteralArgument,
    AlmostDone,
}

/// The largest literal length before nginx rejects further digits.
const LITERAL_LEN_LIMIT: usize = isize::MAX as usize / 10;

/// Resumable IMAP line parser; see the [module docs](self) and
/// [`super`] for the flow.
#[derive(Debug, Clone)]
pub struct ImapParser {
    state: State,
    pos: usize,
    tag_start: usize,
    tag: Option<Span>,
    verb_start: usize,
    /// The command word of the current line; `None` on SASL response lines.
    verb: Option<Span>,
    command: Option<ImapCommand>,
    arg_start: usize,
    quoted: bool,
    backslash: bool,
    no_sync_literal: bool,
    literal_len: usize,
    args: Args<IMAP_MAX_ARGS>,
}

impl Default for ImapParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ImapParser {
    pub const fn new() -> ImapParser {
        ImapParser {
            state: State::Start,
            pos: 0,
            tag_start: 0,
            tag: None,
            verb_start: 0,
            verb: None,
            command: None,
            arg_start: 0,
            quoted: false,
            backslash: false,
            no_sync_literal: false,
            literal_len: 0,
            args: Args::new(),
        }
    }

    /// Parses from the current position to the end of `buf` (the filled
    /// part of the session buffer, whose total size is `capacity`). Quoted
    /// arguments with escapes are unescaped in place.
    pub fn parse(&mut self, buf: &mut [u8], capacity: usize) -> Status<ImapCommand> {
        let status = self.run(buf);
        if status == Status::Incomplete && buf.len() >= capacity {
            self.state = State::Start;
            return Status::Invalid(Invalid::TooLong);
        }
        status
    }

    fn run(&mut self, buf: &mut [u8]) -> Status<ImapCommand> {
        let mut p = self.pos;
        while let Some(&ch) = buf.get(p) {
            match self.state {
                State::Start => {
                    self.tag_start = p;
                    self.state = State::Tag;
                    continue;
                }
                State::Tag => match ch {
                    b' ' => {
                        self.tag = Some(Span::new(self.tag_start, p + 1));
                        self.state = State::SpacesBeforeCommand;
                    }
                    b'\r' | b'\n' => return self.invalid(buf, p),
                    _ => {
                        let allowed =
                            ch.is_ascii_alphanumeric() || matches!(ch, b'-' | b'.' | b'_');
                        if !allowed || p - self.tag_start >= IMAP_MAX_TAG {
                            return self.invalid(buf, p);
                        }
                    }
                },
                State::Invalid => return self.invalid(buf, p),
                State::SpacesBeforeCommand => match ch {
                    b' ' => {}
                    b'\r' | b'\n' => return self.invalid(buf, p),
                    _ => {
                        self.verb_start = p;
                        self.state = State::Verb;
                    }
                },
                State::Verb => {
                    if matches!(ch, b' ' | b'\r' | b'\n') {
                        let Some(command) = ImapCommand::from_verb(&buf[self.verb_start..p]) else {
                            return self.invalid(buf, p);
                        };
                        self.command = Some(command);
                        self.verb = Some(Span::new(self.verb_start, p));
                        match ch {
                            b' ' => self.state = State::SpacesBeforeArgument,
                            b'\r' => self.state = State::AlmostDone,
                            _ => return self.done(p),
                        }
                    } else if !is_alpha(ch) {
                        return self.invalid(buf, p);
                    }
                }
                State::SpacesBeforeArgument => match ch {
                    b' ' => {}
                    b'\r' => self.state = State::AlmostDone,
                    b'\n' => return self.done(p),
                    _ if self.args.len >= IMAP_MAX_ARGS => return self.invalid(buf, p),
                    b'"' => {
                        self.quoted = true;
                        self.arg_start = p + 1;
                        self.state = State::Argument;
                    }
                    b'{' => self.state = State::Literal,
                    _ => {
                        self.arg_start = p;
                        self.state = State::Argument;
                    }
                },
                State::Argument => match ch {
                    b' ' if self.quoted => {}
                    b'"' if !self.quoted => {}
                    b'"' | b' ' | b'\r' | b'\n' => {
                        if ch == b'"' {
                            self.quoted = false;
                        }
                        let end = if self.backslash {
                            self.backslash = false;
                            unescape_in_place(buf, self.arg_start, p)
                        } else {
                            p
                        };
                        self.args.push(Span::new(self.arg_start, end));
                        match ch {
                            b'\r' => self.state = State::AlmostDone,
                            b'\n' => return self.done(p),
                            _ => self.state = State::SpacesBeforeArgument,
                        }
                    }
                    b'\\' if self.quoted => {
                        self.backslash = true;
                        self.state = State::Backslash;
                    }
                    _ => {}
                },
                State::Backslash => match ch {
                    b'\r' | b'\n' => return self.invalid(buf, p),
                    _ => self.state = State::Argument,
                },
                State::Literal => {
                    if self.literal_len > LITERAL_LEN_LIMIT {
                        return self.invalid(buf, p);
                    }
                    match ch {
                        b'0'..=b'9' => {
                            self.literal_len = self.literal_len * 10 + usize::from(ch - b'0');
                        }
                        b'}' => self.state = State::StartLiteralArgument,
                        b'+' => self.state = State::NoSyncLiteralArgument,
                        _ => return self.invalid(buf, p),
                    }
                }
                State::NoSyncLiteralArgument => {
                    if ch != b'}' {
                        return self.invalid(buf, p);
                    }
                    self.no_sync_literal = true;
                    self.state = State::StartLiteralArgument;
                }
                State::StartLiteralArgument => match ch {
                    b'\r' => {}
                    b'\n' => {
                        self.arg_start = p + 1;
                        self.state = State::LiteralArgument;
                        if !self.no_sync_literal {
                            self.pos = p + 1;
                            return Status::LiteralContinuation;
                        }
                        self.no_sync_literal = false;
                    }
                    _ => return self.invalid(buf, p),
                },
                State::LiteralArgument => {
                    // Counting down as nginx does: a zero length still
                    // takes one byte.
                    if self.literal_len > 1 {
                        self.literal_len -= 1;
                    } else {
                        self.literal_len = 0;
                        self.args.push(Span::new(self.arg_start, p + 1));
                        self.state = State::EndLiteralArgument;
                    }
                }
                State::EndLiteralArgument => match ch {
                    b' ' => self.state = State::SpacesBeforeArgument,
                    b'\r' => self.state = State::AlmostDone,
                    b'\n' => return self.done(p),
                    _ => return self.invalid(buf, p),
                },
                State::AlmostDone => {
                    if ch == b'\n' {
                        return self.done(p);
                    }
                    return self.invalid(buf, p);
                }
            }
            p += 1;
        }
        self.pos = p;
        Status::Incomplete
    }

    fn done(&mut self, lf: usize) -> Status<ImapCommand> {
        self.pos = lf + 1;
        self.state = if self.command == Some(ImapCommand::Authenticate) {
            State::Argument
        } else {
            State::Start
        };
        match self.command {
            Some(command) => Status::Complete(command),
            // A line completes only after a command was recognised.
            None => Status::Invalid(Invalid::Command),
        }
    }

    /// Skips the rest of a rejected line through its LF.
    fn invalid(&mut self, buf: &[u8], from: usize) -> Status<ImapCommand> {
        self.state = State::Invalid;
        self.quoted = false;
        self.backslash = false;
        self.no_sync_literal = false;
        self.literal_len = 0;
        self.args.clear();
        self.verb = None;
        let Some(offset) = buf[from..].iter().position(|&b| b == b'\n') else {
            self.pos = buf.len();
            return Status::Incomplete;
        };
        let lf = from + offset;
        self.state = State::Start;
        self.pos = lf + 1;
        // nginx measures from the buffer start, not the line start.
        if lf > b"{1+}".len() {
            let mut q = lf - 1;
            if buf[q] == b'\r' {
                q -= 1;
            }
            if buf[q] == b'}' && buf[q - 1] == b'+' {
                return Status::Invalid(Invalid::NonSyncLiteral);
            }
        }
        Status::Invalid(Invalid::Command)
    }

    /// The tag of the current line including the space after it, if one
    /// was read; `None` means replies use `* `. Kept through an
    /// AUTHENTICATE exchange and after [`Next::Auth`].
    pub fn tag(&self) -> Option<Span> {
        self.tag
    }

    /// Arguments of the last complete line (at most [`IMAP_MAX_ARGS`]),
    /// quoted ones without quotes and escapes, literals verbatim.
    pub fn args(&self) -> &[Span] {
        self.args.as_slice()
    }

    /// The command word of the complete line as the client wrote it;
    /// `None` for a SASL response line.
    pub fn verb(&self) -> Option<Span> {
        self.verb
    }

    /// How far the buffer has been consumed.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Ends the handling of a line; returns the new fill level of the
    /// buffer. Unlike POP3 and SMTP, the buffer is not rewound while a SASL
    /// exchange goes on, so the tag stays valid.
    pub fn finish(&mut self, filled: usize, next: Next) -> usize {
        self.args.clear();
        self.verb = None;
        if next == Next::SaslResponse {
            self.state = State::Argument;
            self.arg_start = self.pos;
            return filled;
        }
        self.state = State::Start;
        if next == Next::Command {
            self.tag = None;
        }
        if self.pos >= filled {
            self.pos = 0;
            return 0;
        }
        filled
    }

    /// Forgets buffered input (STARTTLS: nothing read before TLS may be
    /// used); the caller sets its fill level to 0. Like nginx, the quoting
    /// mode of the parser is kept.
    pub fn discard_input(&mut self) {
        self.pos = 0;
        self.arg_start = 0;
        self.state = State::Start;
        self.tag = None;
        self.args.clear();
        self.verb = None;
    }
}

/// Removes backslash escapes from `buf[start..end]` in place; returns the
/// new end. Every backslash is followed by the byte it escapes.
fn unescape_in_place(buf: &mut [u8], start: usize, end: usize) -> usize {
    let mut dst = start;
    let mut src = start;
    while src < end {
        if buf[src] == b'\\' && src + 1 < end {
            src += 1;
        }
        buf[dst] = buf[src];
        dst += 1;
        src += 1;
    }
    dst
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse::test_support::chunks;

    #[derive(Debug, PartialEq, Eq)]
    struct Event {
        status: Status<ImapCommand>,
        tag: Option<String>,
        args: Vec<Vec<u8>>,
    }

    /// Drives the parser like nginx's IMAP handler over `input` delivered in
    /// `chunk`-byte reads into a `capacity`-byte buffer. AUTHENTICATE with
    /// just a mechanism continues SASL (two responses for LOGIN, one for the
    /// others).
    fn drive(input: &[u8], chunk: usize, capacity: usize) -> Vec<Event> {
        let mut parser = ImapParser::new();
        let mut buf = vec![0u8; capacity];
        let mut filled = 0;
        let mut fed = 0;
        let mut events = Vec::new();
        let mut sasl_steps = 0;
        for end in chunks(input, chunk) {
            let mut data = &input[fed..end];
            fed = end;
            while !data.is_empty() || parser.pos() < filled {
                let n = data.len().min(capacity - filled);
                buf[filled..filled + n].copy_from_slice(&data[..n]);
                filled += n;
                data = &data[n..];
                let status = parser.parse(&mut buf[..filled], capacity);
                if status == Status::Incomplete {
                    if data.is_empty() {
                        break;
                    }
                    continue;
                }
                let args: Vec<Vec<u8>> =
                    parser.args().iter().map(|s| s.of(&buf).to_vec()).collect();
                let tag = parser
                    .tag()
                    .map(|t| String::from_utf8_lossy(t.of(&buf)).into_owned());
                let next = match status {
                    Status::LiteralContinuation => None,
                    Status::Complete(ImapCommand::Authenticate) if sasl_steps > 0 => {
                        sasl_steps -= 1;
                        Some(if sasl_steps > 0 {
                            Next::SaslResponse
                        } else {
                            Next::Auth
                        })
                    }
                    Status::Complete(ImapCommand::Authenticate) if args.len() == 1 => {
                        sasl_steps = if args[0].eq_ignore_ascii_case(b"LOGIN") {
                            2
                        } else {
                            1
                        };
                        Some(Next::SaslResponse)
                    }
                    _ => {
                        sasl_steps = 0;
                        Some(Next::Command)
                    }
                };
                events.push(Event { status, tag, args });
                if let Status::Invalid(kind) = status {
                    if kind.closes() {
                        return events;
                    }
                }
                if let Some(next) = next {
                    filled = parser.finish(filled, next);
                }
            }
        }
        events
    }

    fn ev(status: Status<ImapCommand>, tag: Option<&str>, args: &[&[u8]]) -> Event {
        Event {
            status,
            tag: tag.map(str::to_owned),
            args: args.iter().map(|a| a.to_vec()).collect(),
        }
    }

    fn ok(cmd: ImapCommand, tag: &str, args: &[&[u8]]) -> Event {
        ev(Status::Complete(cmd), Some(tag), args)
    }

    fn bad(tag: Option<&str>) -> Event {
        ev(Status::Invalid(Invalid::Command), tag, &[])
    }

    const NEXT: Status<ImapCommand> = Status::LiteralContinuation;

    #[test]
    fn table() {
        use ImapCommand::*;
        let long_tag = "a".repeat(32);
        let long_tag_line = format!("{long_tag} NOOP\r\n");
        let too_long_tag_line = format!("{long_tag}a NOOP\r\n");
        let long_tag_sp = format!("{long_tag} ");
        let cases: Vec<(&[u8], Vec<Event>)> = vec![
            (b"a NOOP\r\n", vec![ok(Noop, "a ", &[])]),
            (b"a1.-_Z noop\n", vec![ok(Noop, "a1.-_Z ", &[])]),
            (b" NOOP\r\n", vec![ok(Noop, " ", &[])]),
            (b"a   CAPABILITY\r\n", vec![ok(Capability, "a ", &[])]),
            (b"a logout\r\n", vec![ok(Logout, "a ", &[])]),
            (b"a StartTLS\r\n", vec![ok(StartTls, "a ", &[])]),
            (long_tag_line.as_bytes(), vec![ok(Noop, &long_tag_sp, &[])]),
            (too_long_tag_line.as_bytes(), vec![bad(None)]),
            (b"a*b NOOP\r\n", vec![bad(None)]),
            (b"NOOP\r\n", vec![bad(None)]),
            (b"\r\n", vec![bad(None)]),
            (b"a \r\n", vec![bad(Some("a "))]),
            (b"a SELECT x\r\n", vec![bad(Some("a "))]),
            (b"a NO0P\r\n", vec![bad(Some("a "))]),
            (b"a NOOP\rx\n", vec![bad(Some("a "))]),
            (b"a LOGIN u p\r\n", vec![ok(Login, "a ", &[b"u", b"p"])]),
            (
                b"a LOGIN  u   p  \r\n",
                vec![ok(Login, "a ", &[b"u", b"p"])],
            ),
            (
                b"a LOGIN u p q\r\n",
                vec![ok(Login, "a ", &[b"u", b"p", b"q"])],
            ),
            (b"a LOGIN u p q r\r\n", vec![bad(Some("a "))]),
            (b"a LOGIN u p q \"r\"\r\n", vec![bad(Some("a "))]),
            (b"a LOGIN u p q {1}\r\n", vec![bad(Some("a "))]),
            (
                b"a LOGIN \"u s\" \"p\\\"w\\\\\"\r\n",
                vec![ok(Login, "a ", &[b"u s", b"p\"w\\"])],
            ),
            (b"a LOGIN \"\" \"\"\r\n", vec![ok(Login, "a ", &[b"", b""])]),
            (
                b"a LOGIN \"a\"\"b\"\r\n",
                vec![ok(Login, "a ", &[b"a", b"b"])],
            ),
            (b"a LOGIN \"a\"b\r\n", vec![ok(Login, "a ", &[b"a", b"b"])]),
            (
                b"a LOGIN u\"x p\r\n",
                vec![ok(Login, "a ", &[b"u\"x", b"p"])],
            ),
            (
                b"a LOGIN u\\x p\r\n",
                vec![ok(Login, "a ", &[b"u\\x", b"p"])],
            ),
            (b"a LOGIN \"u\\\r\n", vec![bad(Some("a "))]),
            (
                b"a LOGIN {3}\r\nbob {2}\r\npw\r\n",
                vec![
                    ev(NEXT, Some("a "), &[]),
                    ev(NEXT, Some("a "), &[b"bob"]),
                    ok(Login, "a ", &[b"bob", b"pw"]),
                ],
            ),
            (
                b"a LOGIN {3+}\r\nbob {2+}\r\np\nw\r\n",
                vec![bad(Some("a "))],
            ),
            (
                b"a LOGIN {3+}\r\r\r\nbob \"pw\"\r\n",
                vec![ok(Login, "a ", &[b"bob", b"pw"])],
            ),
            (
                b"a LOGIN {0}\r\nx y\r\n",
                vec![ev(NEXT, Some("a "), &[]), ok(Login, "a ", &[b"x", b"y"])],
            ),
            (
                b"a LOGIN {}\r\nxy\r\n",
                vec![ev(NEXT, Some("a "), &[]), bad(Some("a "))],
            ),
            (
                b"a LOGIN {1}\r\nxy\r\n",
                vec![ev(NEXT, Some("a "), &[]), bad(Some("a "))],
            ),
            (b"a LOGIN {1}x\r\n", vec![bad(Some("a "))]),
            (b"a LOGIN {1x}\r\n", vec![bad(Some("a "))]),
            (b"a LOGIN {1+x}\r\n", vec![bad(Some("a "))]),
            (b"a LOGIN {-1}\r\n", vec![bad(Some("a "))]),
            (b"a LOGIN {99999999999999999999}\r\n", vec![bad(Some("a "))]),
            // The overflow guard runs before every byte, '}' included.
            (
                b"a LOGIN {922337203685477580}\r\n",
                vec![ev(NEXT, Some("a "), &[])],
            ),
            (b"a LOGIN {922337203685477581}\r\n", vec![bad(Some("a "))]),
            // Invalid lines ending in a non-synchronizing literal close.
            (
                b"a FOO {5+}\r\n",
                vec![ev(
                    Status::Invalid(Invalid::NonSyncLiteral),
                    Some("a "),
                    &[],
                )],
            ),
            (
                b"a FOO +}\n",
                vec![ev(
                    Status::Invalid(Invalid::NonSyncLiteral),
                    Some("a "),
                    &[],
                )],
            ),
            (b"a+}\r\n", vec![bad(None)]),
            (b"+}\r\n", vec![bad(None)]),
            // Quoted mode ended by CR leaks into later lines.
            (
                b"a LOGIN \"u\r\nb LOGIN u p\r\nc LOGIN \"u\" p\r\nd LOGIN u p\r\n",
                vec![
                    ok(Login, "a ", &[b"u"]),
                    ok(Login, "b ", &[b"u p"]),
                    ok(Login, "c ", &[b"u", b"p"]),
                    ok(Login, "d ", &[b"u", b"p"]),
                ],
            ),
            (
                b"a LOGIN \"u\r\nb FOO\r\nc LOGIN u p\r\n",
                vec![
                    ok(Login, "a ", &[b"u"]),
                    bad(Some("b ")),
                    ok(Login, "c ", &[b"u", b"p"]),
                ],
            ),
            // SASL exchanges keep the tag.
            (
                b"t1 AUTHENTICATE PLAIN\r\nAGEAYg==\r\nt2 NOOP\r\n",
                vec![
                    ok(Authenticate, "t1 ", &[b"PLAIN"]),
                    ok(Authenticate, "t1 ", &[b"AGEAYg=="]),
                    ok(Noop, "t2 ", &[]),
                ],
            ),
            (
                b"t AUTHENTICATE LOGIN\r\ndQ== x\r\n\"cA==\"\r\nu NOOP\r\n",
                vec![
                    ok(Authenticate, "t ", &[b"LOGIN"]),
                    ok(Authenticate, "t ", &[b"dQ==", b"x"]),
                    ok(Authenticate, "t ", &[b"\"cA==\""]),
                    ok(Noop, "u ", &[]),
                ],
            ),
            (
                b"t AUTHENTICATE PLAIN\r\na b c d\r\nu NOOP\r\n",
                vec![
                    ok(Authenticate, "t ", &[b"PLAIN"]),
                    bad(Some("t ")),
                    ok(Noop, "u ", &[]),
                ],
            ),
            (
                b"t AUTHENTICATE PLAIN AGEAYg==\r\n",
                vec![ok(Authenticate, "t ", &[b"PLAIN", b"AGEAYg=="])],
            ),
        ];
        for (input, expected) in cases {
            for chunk in [1, 2, 3, 7, input.len()] {
                assert_eq!(
                    drive(input, chunk, 1024),
                    expected,
                    "input {:?} chunk {chunk}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn non_sync_literal_detection_depends_on_buffer_offset() {
        let input = b"a NOOP\r\n+}\r\n";
        let noop = ok(ImapCommand::Noop, "a ", &[]);
        // Pipelined in one read, the invalid line sits at offset 8.
        assert_eq!(
            drive(input, input.len(), 1024),
            vec![
                noop,
                ev(Status::Invalid(Invalid::NonSyncLiteral), None, &[])
            ]
        );
        // Read separately, the buffer was rewound and it sits at offset 0.
        let noop = ok(ImapCommand::Noop, "a ", &[]);
        assert_eq!(drive(input, 8, 1024), vec![noop, bad(None)]);
    }

    #[test]
    fn too_long() {
        let mut line = b"a LOGIN ".to_vec();
        line.extend(std::iter::repeat_n(b'x', 100));
        for chunk in [1, 9, 200] {
            assert_eq!(
                drive(&line, chunk, 64),
                vec![ev(Status::Invalid(Invalid::TooLong), Some("a "), &[])]
            );
        }
        // A literal larger than the buffer.
        let events = drive(
            b"a LOGIN {100}\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            4,
            64,
        );
        assert_eq!(
            events,
            vec![
                ev(NEXT, Some("a "), &[]),
                ev(Status::Invalid(Invalid::TooLong), Some("a "), &[])
            ]
        );
        // SASL exchanges do not rewind the buffer.
        let input = b"t AUTHENTICATE LOGIN\r\ndXNlcm5hbWVsb25n\r\ncGFzc3dvcmRsb25n\r\n";
        let events = drive(input, 100, 48);
        assert_eq!(events.len(), 3);
        assert_eq!(events[2].status, Status::Invalid(Invalid::TooLong));
    }

    #[test]
    fn rewinds_only_outside_sasl() {
        let mut parser = ImapParser::new();
        let mut buf = *b"a AUTHENTICATE PLAIN\r\n";
        let n = buf.len();
        assert_eq!(
            parser.parse(&mut buf, 1024),
            Status::Complete(ImapCommand::Authenticate)
        );
        assert_eq!(parser.finish(n, Next::SaslResponse), n);
        assert_eq!(parser.pos(), n);
        assert_eq!(parser.tag().unwrap().of(&buf), b"a ");
        assert_eq!(parser.finish(n, Next::Auth), 0);
        assert_eq!(parser.tag().unwrap().of(&buf), b"a ");
        assert_eq!(parser.finish(0, Next::Command), 0);
        assert_eq!(parser.tag(), None);
    }

    #[test]
    fn discard_input_restarts() {
        let mut parser = ImapParser::new();
        assert_eq!(parser.parse(&mut b"a NO".to_vec(), 64), Status::Incomplete);
        parser.discard_input();
        assert_eq!(
            parser.parse(&mut b"b NOOP\r\n".to_vec(), 64),
            Status::Complete(ImapCommand::Noop)
        );
    }

    #[test]
    fn unescape() {
        let mut b = *b"a\\\\b\\\"c";
        let end = unescape_in_place(&mut b, 0, 7);
        assert_eq!(&b[..end], b"a\\b\"c");
    }
}
