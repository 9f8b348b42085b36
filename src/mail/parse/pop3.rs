//! POP3 command parser (nginx's `pop3` front end).
//!
//! A line is `VERB [SP args] CRLF` (a bare LF also ends a line). The verb is
//! exactly four letters, case-insensitive; any other verb, or a non-letter in
//! it, rejects the line. Arguments are separated by runs of spaces; at most
//! three are accepted. USER and PASS are special: once their argument has
//! started, spaces belong to it, so `USER a b` has the one argument `a b`
//! (leading spaces are still skipped, trailing ones kept).
//!
//! After a complete AUTH line the parser expects a SASL response: the session
//! says so with [`Next::SaslResponse`], and the next line's first word is the
//! first argument. POP3's buffer is a fixed 128 bytes in nginx
//! ([`POP3_BUFFER_SIZE`]).

use super::{is_alpha, Args, Invalid, Next, Span, Status};

/// nginx's fixed POP3 client buffer size.
pub const POP3_BUFFER_SIZE: usize = 128;

/// Maximum number of arguments nginx accepts on a POP3 line.
pub const POP3_MAX_ARGS: usize = 3;

/// POP3 commands nginx recognises before login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pop3Command {
    User,
    Pass,
    Apop,
    Quit,
    Capa,
    Auth,
    Noop,
    Stls,
}

impl Pop3Command {
    fn from_verb(verb: &[u8]) -> Option<Pop3Command> {
        let verb: [u8; 4] = verb.try_into().ok()?;
        Some(match &verb.map(|b| b.to_ascii_uppercase()) {
            b"USER" => Pop3Command::User,
            b"PASS" => Pop3Command::Pass,
            b"APOP" => Pop3Command::Apop,
            b"QUIT" => Pop3Command::Quit,
            b"CAPA" => Pop3Command::Capa,
            b"AUTH" => Pop3Command::Auth,
            b"NOOP" => Pop3Command::Noop,
            b"STLS" => Pop3Command::Stls,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Verb,
    Invalid,
    SpacesBeforeArgument,
    Argument,
    AlmostDone,
}

/// Resumable POP3 line parser; see the [module docs](super) for the flow.
#[derive(Debug, Clone)]
pub struct Pop3Parser {
    state: State,
    pos: usize,
    verb_start: usize,
    arg_start: usize,
    command: Option<Pop3Command>,
    verb: Span,
    args: Args<POP3_MAX_ARGS>,
}

impl Default for Pop3Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Pop3Parser {
    pub const fn new() -> Pop3Parser {
        Pop3Parser {
            state: State::Start,
            pos: 0,
            verb_start: 0,
            arg_start: 0,
            command: None,
            verb: Span::new(0, 0),
            args: Args::new(),
        }
    }

    /// Parses from the current position to the end of `buf` (the filled
    /// part of the session buffer, whose total size is `capacity`).
    pub fn parse(&mut self, buf: &[u8], capacity: usize) -> Status<Pop3Command> {
        let status = self.run(buf);
        if status == Status::Incomplete && buf.len() >= capacity {
            self.state = State::Start;
            return Status::Invalid(Invalid::TooLong);
        }
        status
    }

    fn run(&mut self, buf: &[u8]) -> Status<Pop3Command> {
        let mut p = self.pos;
        while let Some(&ch) = buf.get(p) {
            match self.state {
                State::Start => {
                    self.verb_start = p;
                    self.state = State::Verb;
                    continue;
                }
                State::Verb => {
                    if matches!(ch, b' ' | b'\r' | b'\n') {
                        let Some(command) = Pop3Command::from_verb(&buf[self.verb_start..p])
                        else {
                            return self.invalid(buf, p);
                        };
                        self.command = Some(command);
                        self.verb = Span::new(self.verb_start, p);
                        match ch {
                            b' ' => self.state = State::SpacesBeforeArgument,
                            b'\r' => self.state = State::AlmostDone,
                            _ => return self.done(p),
                        }
                    } else if !is_alpha(ch) {
                        return self.invalid(buf, p);
                    }
                }
                State::Invalid => return self.invalid(buf, p),
                State::SpacesBeforeArgument => match ch {
                    b' ' => {}
                    b'\r' => self.state = State::AlmostDone,
                    b'\n' => return self.done(p),
                    _ if self.args.len < POP3_MAX_ARGS => {
                        self.state = State::Argument;
                        self.arg_start = p;
                    }
                    _ => return self.invalid(buf, p),
                },
                State::Argument => match ch {
                    b' ' if matches!(self.command, Some(Pop3Command::User | Pop3Command::Pass)) => {
                    }
                    b' ' | b'\r' | b'\n' => {
                        self.args.push(Span::new(self.arg_start, p));
                        match ch {
                            b' ' => self.state = State::SpacesBeforeArgument,
                            b'\r' => self.state = State::AlmostDone,
                            _ => return self.done(p),
                        }
                    }
                    _ => {}
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

    fn done(&mut self, lf: usize) -> Status<Pop3Command> {
        self.pos = lf + 1;
        self.state = if self.command == Some(Pop3Command::Auth) {
            State::Argument
        } else {
            State::Start
        };
        match self.command {
            Some(command) => Status::Complete(command),
            // A line completes only after a verb was recognised.
            None => Status::Invalid(Invalid::Command),
        }
    }

    /// Skips the rest of a rejected line through its LF.
    fn invalid(&mut self, buf: &[u8], from: usize) -> Status<Pop3Command> {
        self.state = State::Invalid;
        self.args.clear();
        match buf[from..].iter().position(|&b| b == b'\n') {
            Some(offset) => {
                self.state = State::Start;
                self.pos = from + offset + 1;
                Status::Invalid(Invalid::Command)
            }
            None => {
                self.pos = buf.len();
                Status::Incomplete
            }
        }
    }

    /// Arguments of the last complete line (at most [`POP3_MAX_ARGS`]).
    pub fn args(&self) -> &[Span] {
        self.args.as_slice()
    }

    /// The verb of the last complete command line, as the client wrote it.
    pub fn verb(&self) -> Span {
        self.verb
    }

    /// How far the buffer has been consumed.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Ends the handling of a line; returns the new fill level of the
    /// buffer (0 when everything was consumed and the buffer rewound).
    pub fn finish(&mut self, filled: usize, next: Next) -> usize {
        self.args.clear();
        self.state = match next {
            Next::SaslResponse => State::Argument,
            Next::Command | Next::Auth => State::Start,
        };
        let mut filled = filled;
        if self.pos >= filled {
            self.pos = 0;
            filled = 0;
        }
        if self.state == State::Argument {
            self.arg_start = self.pos;
        }
        filled
    }

    /// Forgets buffered input (STLS: nothing read before TLS may be used);
    /// the caller sets its fill level to 0.
    pub fn discard_input(&mut self) {
        self.pos = 0;
        self.arg_start = 0;
        self.state = State::Start;
        self.args.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse::test_support::chunks;

    type Event = (Status<Pop3Command>, Vec<Vec<u8>>);

    /// Drives the parser like nginx's POP3 handler over `input` delivered in
    /// `chunk`-byte reads into a `capacity`-byte buffer. AUTH with an
    /// argument other than a complete initial response continues SASL.
    fn drive(input: &[u8], chunk: usize, capacity: usize) -> Vec<Event> {
        let mut parser = Pop3Parser::new();
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
                let status = parser.parse(&buf[..filled], capacity);
                if status == Status::Incomplete {
                    if data.is_empty() {
                        break;
                    }
                    continue;
                }
                let args: Vec<Vec<u8>> =
                    parser.args().iter().map(|s| s.of(&buf).to_vec()).collect();
                let next = match status {
                    Status::Complete(Pop3Command::Auth) if sasl_steps > 0 => {
                        sasl_steps -= 1;
                        if sasl_steps > 0 {
                            Next::SaslResponse
                        } else {
                            Next::Auth
                        }
                    }
                    Status::Complete(Pop3Command::Auth) if args.len() == 1 => {
                        sasl_steps = if args[0].eq_ignore_ascii_case(b"LOGIN") {
                            2
                        } else {
                            1
                        };
                        Next::SaslResponse
                    }
                    _ => Next::Command,
                };
                events.push((status, args));
                if let Status::Invalid(kind) = status {
                    sasl_steps = 0;
                    if kind.closes() {
                        return events;
                    }
                }
                filled = parser.finish(filled, next);
            }
        }
        events
    }

    fn ok(cmd: Pop3Command, args: &[&str]) -> Event {
        (
            Status::Complete(cmd),
            args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        )
    }

    fn bad() -> Event {
        (Status::Invalid(Invalid::Command), vec![])
    }

    #[test]
    fn table() {
        use Pop3Command::*;
        let cases: Vec<(&[u8], Vec<Event>)> = vec![
            (b"USER bob\r\n", vec![ok(User, &["bob"])]),
            (b"user bob\n", vec![ok(User, &["bob"])]),
            (b"USER   a b  c \r\n", vec![ok(User, &["a b  c "])]),
            (b"PASS  secret word\r\n", vec![ok(Pass, &["secret word"])]),
            (b"USER\r\n", vec![ok(User, &[])]),
            (b"USER \r\n", vec![ok(User, &[])]),
            (b"APOP bob 0123\r\n", vec![ok(Apop, &["bob", "0123"])]),
            (b"APOP  a  b  c\r\n", vec![ok(Apop, &["a", "b", "c"])]),
            (b"APOP a b c d\r\n", vec![bad()]),
            (b"APOP a b c \r\n", vec![ok(Apop, &["a", "b", "c"])]),
            (b"QUIT\r\n", vec![ok(Quit, &[])]),
            (b"CaPa\r\n", vec![ok(Capa, &[])]),
            (b"NOOP\r\n", vec![ok(Noop, &[])]),
            (b"STLS\r\n", vec![ok(Stls, &[])]),
            (b"AUTH\r\n", vec![ok(Auth, &[])]),
            (b"LIST\r\n", vec![bad()]),
            (b"USERS bob\r\n", vec![bad()]),
            (b"US3R bob\r\n", vec![bad()]),
            (b"\r\n", vec![bad()]),
            (b" USER bob\r\n", vec![bad()]),
            (b"USER bob\r\r\n", vec![bad()]),
            (b"USER bob\rx\nNOOP\r\n", vec![bad(), ok(Noop, &[])]),
            (b"NOOP\rQUIT\r\n", vec![bad()]),
            (b"\x00\xff\n", vec![bad()]),
            (
                b"NOOP\r\nFOO\r\nQUIT\r\n",
                vec![ok(Noop, &[]), bad(), ok(Quit, &[])],
            ),
            // SASL: the response line is split at spaces, verb rules off.
            (
                b"AUTH PLAIN\r\nAGJvYgBwdw==\r\nNOOP\r\n",
                vec![
                    ok(Auth, &["PLAIN"]),
                    ok(Auth, &["AGJvYgBwdw=="]),
                    ok(Noop, &[]),
                ],
            ),
            (
                b"AUTH LOGIN\r\nYm9i x\r\n\r\nQUIT\r\n",
                vec![
                    ok(Auth, &["LOGIN"]),
                    ok(Auth, &["Ym9i", "x"]),
                    ok(Auth, &[""]),
                    ok(Quit, &[]),
                ],
            ),
            (
                b"AUTH PLAIN\r\na b c d\r\nNOOP\r\n",
                vec![ok(Auth, &["PLAIN"]), bad(), ok(Noop, &[])],
            ),
        ];
        for (input, expected) in cases {
            for chunk in [1, 2, 3, 7, input.len()] {
                assert_eq!(
                    drive(input, chunk, POP3_BUFFER_SIZE),
                    expected,
                    "input {:?} chunk {chunk}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn too_long() {
        let mut line = b"USER ".to_vec();
        line.extend(std::iter::repeat(b'x').take(200));
        for chunk in [1, 5, 300] {
            let events = drive(&line, chunk, POP3_BUFFER_SIZE);
            assert_eq!(events, vec![(Status::Invalid(Invalid::TooLong), vec![])]);
        }
        // An invalid line is skipped without freeing space: it too fills up.
        let mut line = b"XXXX ".to_vec();
        line.extend(std::iter::repeat(b'x').take(200));
        let events = drive(&line, 10, POP3_BUFFER_SIZE);
        assert_eq!(events, vec![(Status::Invalid(Invalid::TooLong), vec![])]);
    }

    #[test]
    fn exact_fit_is_not_too_long() {
        let mut line = b"USER ".to_vec();
        line.extend(std::iter::repeat(b'x').take(POP3_BUFFER_SIZE - 7));
        line.extend(b"\r\n");
        assert_eq!(line.len(), POP3_BUFFER_SIZE);
        let events = drive(&line, 1, POP3_BUFFER_SIZE);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, Status::Complete(Pop3Command::User));
    }

    #[test]
    fn pipelined_lines_keep_buffer_until_consumed() {
        let mut parser = Pop3Parser::new();
        let buf = b"NOOP\r\nQUIT\r\nCA";
        assert_eq!(
            parser.parse(buf, 128),
            Status::Complete(Pop3Command::Noop)
        );
        assert_eq!(parser.pos(), 6);
        assert_eq!(parser.finish(buf.len(), Next::Command), buf.len());
        assert_eq!(
            parser.parse(buf, 128),
            Status::Complete(Pop3Command::Quit)
        );
        assert_eq!(parser.verb().of(buf), b"QUIT");
        assert_eq!(parser.finish(buf.len(), Next::Command), buf.len());
        assert_eq!(parser.parse(buf, 128), Status::Incomplete);
        assert_eq!(parser.pos(), buf.len());
    }

    #[test]
    fn rewinds_when_consumed() {
        let mut parser = Pop3Parser::new();
        let buf = b"NOOP\r\n";
        assert_eq!(parser.parse(buf, 128), Status::Complete(Pop3Command::Noop));
        assert_eq!(parser.finish(buf.len(), Next::Command), 0);
        assert_eq!(parser.pos(), 0);
        let buf = b"AUTH PLAIN\r\n";
        assert_eq!(parser.parse(buf, 128), Status::Complete(Pop3Command::Auth));
        assert_eq!(parser.finish(buf.len(), Next::SaslResponse), 0);
        let buf = b"dGVzdA== \r\n";
        assert_eq!(parser.parse(buf, 128), Status::Complete(Pop3Command::Auth));
        assert_eq!(parser.args().len(), 1);
        assert_eq!(parser.args()[0].of(buf), b"dGVzdA==");
    }

    #[test]
    fn discard_input_restarts() {
        let mut parser = Pop3Parser::new();
        assert_eq!(parser.parse(b"NOO", 128), Status::Incomplete);
        parser.discard_input();
        assert_eq!(parser.parse(b"QUIT\r\n", 128), Status::Complete(Pop3Command::Quit));
    }
}
