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
//! says so with [`Next::SaslResponse`](super::Next::SaslResponse), and the next line's first word is the
//! first argument. POP3's buffer is a fixed 128 bytes in nginx
//! ([`POP3_BUFFER_SIZE`]).

use super::verb_line::{LineCommand, VerbLineParser};

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

impl LineCommand for Pop3Command {
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

    fn keeps_spaces(self) -> bool {
        matches!(self, Pop3Command::User | Pop3Command::Pass)
    }

    fn starts_sasl(self) -> bool {
        self == Pop3Command::Auth
    }
}

/// Resumable POP3 line parser; see the [module docs](self) and [`super`]
/// for the flow.
pub type Pop3Parser = VerbLineParser<Pop3Command, POP3_MAX_ARGS>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse::test_support::chunks;
    use crate::mail::parse::{Invalid, Next, Status};

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
        line.extend(std::iter::repeat_n(b'x', 200));
        for chunk in [1, 5, 300] {
            let events = drive(&line, chunk, POP3_BUFFER_SIZE);
            assert_eq!(events, vec![(Status::Invalid(Invalid::TooLong), vec![])]);
        }
        // An invalid line is skipped without freeing space: it too fills up.
        let mut line = b"ZZZZ ".to_vec();
        line.extend(std::iter::repeat_n(b'x', 200));
        let events = drive(&line, 10, POP3_BUFFER_SIZE);
        assert_eq!(events, vec![(Status::Invalid(Invalid::TooLong), vec![])]);
    }

    #[test]
    fn exact_fit_is_not_too_long() {
        let mut line = b"USER ".to_vec();
        line.extend(std::iter::repeat_n(b'x', POP3_BUFFER_SIZE - 7));
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
        assert_eq!(parser.parse(buf, 128), Status::Complete(Pop3Command::Noop));
        assert_eq!(parser.pos(), 6);
        assert_eq!(parser.finish(buf.len(), Next::Command), buf.len());
        assert_eq!(parser.parse(buf, 128), Status::Complete(Pop3Command::Quit));
        assert_eq!(parser.verb().unwrap().of(buf), b"QUIT");
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
        assert_eq!(
            parser.parse(b"QUIT\r\n", 128),
            Status::Complete(Pop3Command::Quit)
        );
    }
}
