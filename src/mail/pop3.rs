//! The POP3 front end before login, as nginx's POP3 handler: greeting
//! (with the APOP salt when `apop` or `cram-md5` is enabled), CAPA,
//! USER/PASS, APOP, AUTH, STLS, NOOP and QUIT. Sans-io; see
//! [`super::front`].

use super::front::{
    continue_sasl, ensure_salt, refused, start_sasl, ClientBuffer, FrontConf, Notes, Sasl,
    SaslState, Shared, Step,
};
use super::parse::pop3::{Pop3Command, Pop3Parser, POP3_BUFFER_SIZE};
use super::parse::{Next, Status};
use crate::conf::StartTls;

const OK: &[u8] = b"+OK\r\n";
const INVALID: &[u8] = b"-ERR invalid command\r\n";
const PREFIX: &[u8] = b"+ ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    /// USER was accepted; PASS may follow.
    User,
    Sasl(SaslState),
}

#[derive(Debug)]
pub struct Pop3 {
    parser: Pop3Parser,
    pub input: ClientBuffer,
    state: State,
}

impl Default for Pop3 {
    fn default() -> Self {
        Self::new()
    }
}

impl Pop3 {
    pub fn new() -> Pop3 {
        Pop3 {
            parser: Pop3Parser::new(),
            input: ClientBuffer::new(POP3_BUFFER_SIZE),
            state: State::Start,
        }
    }

    /// `+OK POP3 ready`, with ` <salt>` when APOP or CRAM-MD5 is enabled.
    /// The greeting carries the APOP / CRAM-MD5 salt.
    pub fn greeting_has_salt(conf: &FrontConf) -> bool {
        conf.auth.apop || conf.auth.cram_md5
    }

    /// The greeting; `sh` (where the salt is kept) is only needed when
    /// [`Pop3::greeting_has_salt`].
    pub fn greeting(conf: &FrontConf, sh: &mut Shared, out: &mut Vec<u8>) {
        if Self::greeting_has_salt(conf) {
            ensure_salt(sh, &conf.server_name);
            out.extend_from_slice(b"+OK POP3 ready ");
            out.extend_from_slice(sh.salt.as_deref().unwrap_or_default());
        } else {
            out.extend_from_slice(b"+OK POP3 ready\r\n");
        }
    }

    /// Where the unparsed input starts (pipelined bytes after the login
    /// command go to the backend).
    pub fn pending_from(&self) -> usize {
        self.parser.pos().min(self.input.filled)
    }

    pub fn has_pending(&self) -> bool {
        self.parser.pos() < self.input.filled
    }

    pub fn step(
        &mut self,
        conf: &FrontConf,
        sh: &mut Shared,
        out: &mut Vec<u8>,
        notes: &mut dyn Notes,
    ) -> Step {
        let filled = self.input.filled;
        let status = self
            .parser
            .parse(&self.input.buf[..filled], self.input.capacity());
        let mut quit = false;
        let mut starttls = false;
        // `Some(next)` = reply already in `out`; `None` = invalid command.
        let handled: Option<Next> = match status {
            Status::Incomplete => return Step::NeedInput,
            // POP3 has no literals.
            Status::LiteralContinuation => None,
            Status::Invalid(kind) => {
                quit = refused(kind, &self.input.buf[..filled], conf, sh, notes);
                None
            }
            Status::Complete(command) => {
                let buf = &self.input.buf;
                let spans = self.parser.args();
                let mut args: [&[u8]; 3] = [b""; 3];
                for (a, s) in args.iter_mut().zip(spans) {
                    *a = s.of(buf);
                }
                let args = &args[..spans.len()];
                let only = conf.starttls == StartTls::Only && !sh.tls_active;
                match self.state {
                    State::Sasl(state) => {
                        let response = args.first().copied().unwrap_or_default();
                        match continue_sasl(state, response, sh, PREFIX, out, notes) {
                            Sasl::Continue(next) => {
                                self.state = State::Sasl(next);
                                Some(Next::SaslResponse)
                            }
                            Sasl::Done => return self.auth(),
                            Sasl::Invalid => None,
                        }
                    }
                    State::Start | State::User => {
                        let in_user = self.state == State::User;
                        match command {
                            Pop3Command::User if !in_user => {
                                if only || args.len() != 1 {
                                    None
                                } else {
                                    sh.creds.login.clear();
                                    sh.creds.login.extend_from_slice(args[0]);
                                    self.state = State::User;
                                    out.extend_from_slice(OK);
                                    Some(Next::Command)
                                }
                            }
                            Pop3Command::Pass if in_user => {
                                if args.len() != 1 {
                                    None
                                } else {
                                    sh.creds.passwd.clear();
                                    sh.creds.passwd.extend_from_slice(args[0]);
                                    sh.passwd_set = true;
                                    return self.auth();
                                }
                            }
                            Pop3Command::Capa => {
                                let caps = &conf.replies.pop3;
                                out.extend_from_slice(if in_user {
                                    &caps.plain
                                } else {
                                    caps.pick(conf.starttls, sh.tls_active)
                                });
                                Some(Next::Command)
                            }
                            Pop3Command::Apop if !in_user => {
                                if only || args.len() != 2 || !conf.auth.apop {
                                    None
                                } else {
                                    sh.creds.login.clear();
                                    sh.creds.login.extend_from_slice(args[0]);
                                    sh.creds.passwd.clear();
                                    sh.creds.passwd.extend_from_slice(args[1]);
                                    sh.passwd_set = true;
                                    sh.auth_method = super::front::AuthMethod::Apop;
                                    return self.auth();
                                }
                            }
                            Pop3Command::Auth if !in_user => {
                                if only {
                                    None
                                } else if args.is_empty() {
                                    out.extend_from_slice(&conf.replies.pop3_auth);
                                    Some(Next::Command)
                                } else {
                                    match start_sasl(args, conf, sh, PREFIX, out, notes) {
                                        Sasl::Continue(state) => {
                                            self.state = State::Sasl(state);
                                            Some(Next::SaslResponse)
                                        }
                                        Sasl::Done => return self.auth(),
                                        Sasl::Invalid => None,
                                    }
                                }
                            }
                            Pop3Command::Quit => {
                                quit = true;
                                out.extend_from_slice(OK);
                                Some(Next::Command)
                            }
                            Pop3Command::Noop => {
                                out.extend_from_slice(OK);
                                Some(Next::Command)
                            }
                            Pop3Command::Stls
                                if !in_user && !sh.tls_active && conf.starttls != StartTls::Off =>
                            {
                                starttls = true;
                                out.extend_from_slice(OK);
                                Some(Next::Command)
                            }
                            _ => None,
                        }
                    }
                }
            }
        };
        let next = match handled {
            Some(next) => next,
            None => {
                self.state = State::Start;
                out.extend_from_slice(INVALID);
                Next::Command
            }
        };
        if quit {
            return Step::Quit;
        }
        self.input.filled = self.parser.finish(self.input.filled, next);
        if starttls {
            self.parser.discard_input();
            self.input.filled = 0;
            return Step::StartTls;
        }
        Step::Reply
    }

    fn auth(&mut self) -> Step {
        self.state = State::Start;
        self.input.filled = self.parser.finish(self.input.filled, Next::Auth);
        Step::Auth
    }
}

#[cfg(test)]
mod tests {
    use super::super::front::test_support::{conf, Collect};
    use super::*;
    use crate::conf::AuthMethods;
    use crate::mail::test_support::server_conf;

    fn run(fc: &FrontConf, fe: &mut Pop3, sh: &mut Shared, input: &[u8]) -> (String, Step) {
        let mut out = Vec::new();
        let mut notes = Collect::default();
        let space = fe.input.space();
        let n = input.len().min(space.len());
        space[..n].copy_from_slice(&input[..n]);
        fe.input.received(n);
        loop {
            let step = fe.step(fc, sh, &mut out, &mut notes);
            match step {
                Step::Reply if fe.has_pending() => continue,
                Step::Reply | Step::NeedInput => {
                    return (String::from_utf8_lossy(&out).into_owned(), Step::NeedInput)
                }
                _ => return (String::from_utf8_lossy(&out).into_owned(), step),
            }
        }
    }

    fn methods() -> AuthMethods {
        AuthMethods {
            plain: true,
            login: true,
            ..AuthMethods::default()
        }
    }

    #[test]
    fn transcripts() {
        let server = server_conf("protocol pop3;");
        let fc = conf(&server, methods());
        let capa =
            "+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\nSASL PLAIN LOGIN\r\n.\r\n";
        let cases: &[(&[u8], String, Step)] = &[
            (b"NOOP\r\n", "+OK\r\n".into(), Step::NeedInput),
            (b"QUIT\r\n", "+OK\r\n".into(), Step::Quit),
            (b"CAPA\r\n", capa.into(), Step::NeedInput),
            (
                b"PASS x\r\n",
                "-ERR invalid command\r\n".into(),
                Step::NeedInput,
            ),
            (b"USER u\r\nPASS p\r\n", "+OK\r\n".into(), Step::Auth),
            (
                b"USER u\r\nUSER v\r\n",
                "+OK\r\n-ERR invalid command\r\n".into(),
                Step::NeedInput,
            ),
            (
                b"USER u\r\nCAPA\r\n",
                format!("+OK\r\n{capa}"),
                Step::NeedInput,
            ),
            (
                b"AUTH\r\n",
                "+OK methods supported:\r\nPLAIN\r\nLOGIN\r\n.\r\n".into(),
                Step::NeedInput,
            ),
            (b"AUTH PLAIN\r\nAHUAcA==\r\n", "+ \r\n".into(), Step::Auth),
            (
                b"AUTH LOGIN\r\ndQ==\r\ncA==\r\n",
                "+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n".into(),
                Step::Auth,
            ),
            (
                b"APOP u 0123\r\n",
                "-ERR invalid command\r\n".into(),
                Step::NeedInput,
            ),
            (
                b"STLS\r\n",
                "-ERR invalid command\r\n".into(),
                Step::NeedInput,
            ),
            (
                b"ZZZZ\r\n",
                "-ERR invalid command\r\n".into(),
                Step::NeedInput,
            ),
        ];
        for (input, expect, step) in cases {
            let mut fe = Pop3::new();
            let mut sh = Shared::default();
            let (got, s) = run(&fc, &mut fe, &mut sh, input);
            assert_eq!(
                (got.as_str(), s),
                (expect.as_str(), *step),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn apop_greeting_and_login() {
        let server = server_conf("protocol pop3; server_name pop.test;");
        let fc = conf(
            &server,
            AuthMethods {
                plain: true,
                login: true,
                apop: true,
                ..AuthMethods::default()
            },
        );
        let mut sh = Shared::default();
        let mut out = Vec::new();
        Pop3::greeting(&fc, &mut sh, &mut out);
        let g = String::from_utf8(out).unwrap();
        assert!(g.starts_with("+OK POP3 ready <"), "{g}");
        assert!(g.ends_with("@pop.test>\r\n"), "{g}");
        let mut fe = Pop3::new();
        let (out, step) = run(&fc, &mut fe, &mut sh, b"APOP user 0123456789\r\n");
        assert_eq!((out.as_str(), step), ("", Step::Auth));
        assert_eq!(sh.creds.login, b"user");
        assert_eq!(sh.creds.passwd, b"0123456789");
        assert_eq!(sh.auth_method, crate::mail::front::AuthMethod::Apop);
    }

    #[test]
    fn too_long_line_closes() {
        let server = server_conf("protocol pop3;");
        let fc = conf(&server, methods());
        let mut fe = Pop3::new();
        let mut sh = Shared::default();
        let (out, step) = run(&fc, &mut fe, &mut sh, &[b'A'; 200]);
        assert_eq!(
            (out.as_str(), step),
            ("-ERR invalid command\r\n", Step::Quit)
        );
    }
}
