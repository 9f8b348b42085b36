//! SMTP command parser (nginx's `smtp` front end).
//!
//! A line is `VERB [SP args] CRLF` (a bare LF also ends a line). The verb is
//! one of HELO, EHLO, QUIT, AUTH, NOOP, MAIL, RSET, RCPT, VRFY, EXPN, HELP or
//! STARTTLS, case-insensitive; anything else rejects the line (the session
//! answers `500 5.5.1 Invalid command`). Note that `MAIL FROM:<a>` has the
//! argument `FROM:<a>`, and that VRFY, EXPN and HELP parse but nginx then
//! answers them as invalid. At most eleven space-separated arguments.
//!
//! After a complete AUTH line the parser can read a SASL response
//! ([`Next::SaslResponse`](super::Next::SaslResponse)). The buffer is
//! `smtp_client_buffer`. "Invalid pipelining" (input before a delayed
//! greeting) is decided by the session, not here.

use super::verb_line::{LineCommand, VerbLineParser};

/// Maximum number of arguments nginx accepts on an SMTP line.
pub const SMTP_MAX_ARGS: usize = 11;

/// SMTP commands nginx recognises before login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpCommand {
    Helo,
    Ehlo,
    Quit,
    Auth,
    Noop,
    Mail,
    Rset,
    Rcpt,
    Vrfy,
    Expn,
    Help,
    StartTls,
}

impl LineCommand for SmtpCommand {
    fn from_verb(verb: &[u8]) -> Option<SmtpCommand> {
        const VERBS: [(&[u8], SmtpCommand); 12] = [
            (b"HELO", SmtpCommand::Helo),
            (b"EHLO", SmtpCommand::Ehlo),
            (b"QUIT", SmtpCommand::Quit),
            (b"AUTH", SmtpCommand::Auth),
            (b"NOOP", SmtpCommand::Noop),
            (b"MAIL", SmtpCommand::Mail),
            (b"RSET", SmtpCommand::Rset),
            (b"RCPT", SmtpCommand::Rcpt),
            (b"VRFY", SmtpCommand::Vrfy),
            (b"EXPN", SmtpCommand::Expn),
            (b"HELP", SmtpCommand::Help),
            (b"STARTTLS", SmtpCommand::StartTls),
        ];
        VERBS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(verb))
            .map(|&(_, command)| command)
    }

    fn keeps_spaces(self) -> bool {
        false
    }

    fn starts_sasl(self) -> bool {
        self == SmtpCommand::Auth
    }
}

/// Resumable SMTP line parser; see the [module docs](self) and [`super`]
/// for the flow.
pub type SmtpParser = VerbLineParser<SmtpCommand, SMTP_MAX_ARGS>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse::test_support::chunks;
    use crate::mail::parse::{Invalid, Next, Status};

    #[derive(Debug, PartialEq, Eq)]
    struct Event {
        status: Status<SmtpCommand>,
        args: Vec<Vec<u8>>,
        line: Option<Vec<u8>>,
    }

    /// Drives the parser like nginx's SMTP handler over `input` delivered in
    /// `chunk`-byte reads into a `capacity`-byte buffer. AUTH with only a
    /// mechanism continues SASL for one response (two for LOGIN).
    fn drive(input: &[u8], chunk: usize, capacity: usize) -> Vec<Event> {
        let mut parser = SmtpParser::new();
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
                let line = parser.verb_through_last_arg().map(|s| s.of(&buf).to_vec());
                let next = match status {
                    Status::Complete(SmtpCommand::Auth) if sasl_steps > 0 => {
                        sasl_steps -= 1;
                        if sasl_steps > 0 {
                            Next::SaslResponse
                        } else {
                            Next::Auth
                        }
                    }
                    Status::Complete(SmtpCommand::Auth) if args.len() == 1 => {
                        sasl_steps = if args[0].eq_ignore_ascii_case(b"LOGIN") {
                            2
                        } else {
                            1
                        };
                        Next::SaslResponse
                    }
                    _ => {
                        sasl_steps = 0;
                        Next::Command
                    }
                };
                events.push(Event { status, args, line });
                if let Status::Invalid(kind) = status {
                    if kind.closes() {
                        return events;
                    }
                }
                filled = parser.finish(filled, next);
            }
        }
        events
    }

    fn ok(cmd: SmtpCommand, args: &[&str]) -> Event {
        Event {
            status: Status::Complete(cmd),
            args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
            line: None,
        }
    }

    fn ok_line(cmd: SmtpCommand, args: &[&str], line: &str) -> Event {
        Event {
            line: Some(line.as_bytes().to_vec()),
            ..ok(cmd, args)
        }
    }

    fn bad() -> Event {
        Event {
            status: Status::Invalid(Invalid::Command),
            args: vec![],
            line: None,
        }
    }

    #[test]
    fn table() {
        use SmtpCommand::*;
        let cases: Vec<(&[u8], Vec<Event>)> = vec![
            (
                b"EHLO x.example\r\n",
                vec![ok_line(Ehlo, &["x.example"], "EHLO x.example")],
            ),
            (b"helo x\n", vec![ok_line(Helo, &["x"], "helo x")]),
            (b"HELO\r\n", vec![ok(Helo, &[])]),
            (
                b"HELO a b\r\n",
                vec![ok_line(Helo, &["a", "b"], "HELO a b")],
            ),
            (b"QUIT\r\n", vec![ok(Quit, &[])]),
            (b"NOOP x\r\n", vec![ok_line(Noop, &["x"], "NOOP x")]),
            (b"RSET\r\n", vec![ok(Rset, &[])]),
            (b"VRFY u\r\n", vec![ok_line(Vrfy, &["u"], "VRFY u")]),
            (b"EXPN l\r\n", vec![ok_line(Expn, &["l"], "EXPN l")]),
            (b"HELP\r\n", vec![ok(Help, &[])]),
            (b"starttls\r\n", vec![ok(StartTls, &[])]),
            (
                b"MAIL FROM:<a@b>  SIZE=10 \r\n",
                vec![ok_line(
                    Mail,
                    &["FROM:<a@b>", "SIZE=10"],
                    "MAIL FROM:<a@b>  SIZE=10",
                )],
            ),
            (
                b"RCPT   TO:<c@d>\r\n",
                vec![ok_line(Rcpt, &["TO:<c@d>"], "RCPT   TO:<c@d>")],
            ),
            (
                b"MAIL 1 2 3 4 5 6 7 8 9 10 11\r\n",
                vec![ok_line(
                    Mail,
                    &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"],
                    "MAIL 1 2 3 4 5 6 7 8 9 10 11",
                )],
            ),
            (b"MAIL 1 2 3 4 5 6 7 8 9 10 11 12\r\n", vec![bad()]),
            (b"DATA\r\n", vec![bad()]),
            (b"STARTTLSX\r\n", vec![bad()]),
            (b"STARTTL\r\n", vec![bad()]),
            (b"EHL0 x\r\n", vec![bad()]),
            (b"\r\n", vec![bad()]),
            (b" EHLO x\r\n", vec![bad()]),
            (b"EHLO x\ry\r\nNOOP\r\n", vec![bad(), ok(Noop, &[])]),
            (
                b"NOOP\r\nZZZZ\r\nQUIT\r\n",
                vec![ok(Noop, &[]), bad(), ok(Quit, &[])],
            ),
            (
                b"AUTH LOGIN\r\ndXNlcg==\r\ncGFzcw==\r\n",
                vec![
                    ok_line(Auth, &["LOGIN"], "AUTH LOGIN"),
                    ok(Auth, &["dXNlcg=="]),
                    ok(Auth, &["cGFzcw=="]),
                ],
            ),
            (
                b"AUTH PLAIN AGEAYg==\r\nNOOP\r\n",
                vec![
                    ok_line(Auth, &["PLAIN", "AGEAYg=="], "AUTH PLAIN AGEAYg=="),
                    ok(Noop, &[]),
                ],
            ),
            (
                b"AUTH CRAM-MD5\r\n  dXNlciBkaWdlc3Q= \r\n",
                vec![
                    ok_line(Auth, &["CRAM-MD5"], "AUTH CRAM-MD5"),
                    ok(Auth, &["", "dXNlciBkaWdlc3Q="]),
                ],
            ),
        ];
        for (input, expected) in cases {
            for chunk in [1, 2, 3, 7, input.len()] {
                let got: Vec<Event> = drive(input, chunk, 512)
                    .into_iter()
                    .map(|mut e| {
                        // `line` is only compared where the case spells it.
                        if !matches!(e.status, Status::Complete(_)) {
                            e.line = None;
                        }
                        e
                    })
                    .collect();
                assert_eq!(got.len(), expected.len(), "{:?}", got);
                let got: Vec<Event> = got
                    .into_iter()
                    .zip(expected.iter())
                    .map(|(mut g, e)| {
                        if e.line.is_none() {
                            g.line = None;
                        }
                        g
                    })
                    .collect();
                assert_eq!(
                    got,
                    expected,
                    "input {:?} chunk {chunk}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn too_long() {
        let mut line = b"MAIL FROM:<".to_vec();
        line.extend(std::iter::repeat_n(b'x', 600));
        for chunk in [1, 100, 1000] {
            let events = drive(&line, chunk, 512);
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].status, Status::Invalid(Invalid::TooLong));
        }
    }
}
