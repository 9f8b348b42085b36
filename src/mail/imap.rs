//! The IMAP front end before login, as nginx's IMAP handler: greeting,
//! CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN (quoted strings, literals)
//! and AUTHENTICATE. Sans-io; see [`super::front`].
//!
//! Replies are `[text][tag]OK completed` or `[tag]BAD invalid command`,
//! with `* ` as the tag when the line had none. nginx quirk kept: an
//! invalid response to the AUTHENTICATE LOGIN username challenge gets a
//! bare `BAD invalid command` with no tag at all.

use super::front::{
    continue_sasl, refused, start_sasl, ClientBuffer, FrontConf, Notes, Sasl, SaslState, Shared,
    Step,
};
use super::parse::imap::{ImapCommand, ImapParser, IMAP_LITERAL_CONTINUATION};
use super::parse::{Next, Status};
use crate::conf::StartTls;

pub const GREETING: &[u8] = b"* OK IMAP4 ready\r\n";
const OK: &[u8] = b"OK completed\r\n";
const BAD: &[u8] = b"BAD invalid command\r\n";
const BYE: &[u8] = b"* BYE\r\n";
const PREFIX: &[u8] = b"+ ";

#[derive(Debug)]
pub struct Imap {
    parser: ImapParser,
    pub input: ClientBuffer,
    sasl: Option<SaslState>,
}

/// How the reply of one line is framed.
enum Reply {
    /// `[text][tag]OK completed`
    Ok,
    /// `[tag]BAD invalid command`
    Bad,
    /// Untagged `BAD invalid command` (the LOGIN username quirk).
    BareBad,
    /// `out` already holds the whole reply (challenges, `+ OK`).
    Raw,
}

impl Imap {
    pub fn new(buffer_size: usize) -> Imap {
        Imap {
            parser: ImapParser::new(),
            input: ClientBuffer::new(buffer_size),
            sasl: None,
        }
    }

    pub fn greeting(out: &mut Vec<u8>) {
        out.extend_from_slice(GREETING);
    }

    /// Whether buffered input remains to be parsed.
    /// Where the unparsed input starts (pipelined bytes after the login
    /// command go to the backend).
    pub fn pending_from(&self) -> usize {
        self.parser.pos().min(self.input.filled)
    }

    pub fn has_pending(&self) -> bool {
        self.parser.pos() < self.input.filled
    }

    /// Forget the buffered input (STARTTLS).
    fn discard_input(&mut self) {
        self.parser.discard_input();
        self.input.filled = 0;
    }

    /// Handle what is buffered: at most one reply.
    pub fn step(
        &mut self,
        conf: &FrontConf,
        sh: &mut Shared,
        out: &mut Vec<u8>,
        notes: &mut dyn Notes,
    ) -> Step {
        let capacity = self.input.capacity();
        let filled = self.input.filled;
        let status = self.parser.parse(&mut self.input.buf[..filled], capacity);
        let mut quit = false;
        let mut text: &[u8] = b"";
        let mut starttls = false;
        let reply = match status {
            Status::Incomplete => return Step::NeedInput,
            Status::LiteralContinuation => {
                out.extend_from_slice(IMAP_LITERAL_CONTINUATION);
                return Step::Reply;
            }
            Status::Invalid(kind) => {
                quit = refused(kind, &self.input.buf[..filled], conf, sh, notes);
                self.sasl = None;
                Reply::Bad
            }
            Status::Complete(command) => match self.sasl.take() {
                Some(state) => {
                    let response = self
                        .parser
                        .args()
                        .first()
                        .map(|s| s.of(&self.input.buf))
                        .unwrap_or_default();
                    match continue_sasl(state, response, sh, PREFIX, out, notes) {
                        Sasl::Continue(next) => {
                            self.sasl = Some(next);
                            Reply::Raw
                        }
                        Sasl::Done => return self.auth(sh),
                        Sasl::Invalid if state == SaslState::LoginUsername => Reply::BareBad,
                        Sasl::Invalid => Reply::Bad,
                    }
                }
                None => match command {
                    ImapCommand::Login => {
                        let args = self.parser.args();
                        if self.starttls_only(conf, sh) || args.len() != 2 || args[0].is_empty() {
                            Reply::Bad
                        } else {
                            let buf = &self.input.buf;
                            sh.creds.login.clear();
                            sh.creds.login.extend_from_slice(args[0].of(buf));
                            sh.creds.passwd.clear();
                            sh.creds.passwd.extend_from_slice(args[1].of(buf));
                            sh.passwd_set = true;
                            return self.auth(sh);
                        }
                    }
                    ImapCommand::Authenticate => {
                        if self.starttls_only(conf, sh) {
                            Reply::Bad
                        } else {
                            let buf = &self.input.buf;
                            let spans = self.parser.args();
                            let mut args: [&[u8]; 3] = [b""; 3];
                            for (a, s) in args.iter_mut().zip(spans) {
                                *a = s.of(buf);
                            }
                            let args = &args[..spans.len()];
                            match start_sasl(args, conf, sh, PREFIX, out, notes) {
                                Sasl::Continue(state) => {
                                    self.sasl = Some(state);
                                    Reply::Raw
                                }
                                Sasl::Done => return self.auth(sh),
                                Sasl::Invalid => Reply::Bad,
                            }
                        }
                    }
                    ImapCommand::Capability => {
                        text = conf.replies.imap.pick(conf.starttls, sh.tls_active);
                        Reply::Ok
                    }
                    ImapCommand::Logout => {
                        quit = true;
                        text = BYE;
                        Reply::Ok
                    }
                    ImapCommand::Noop => Reply::Ok,
                    ImapCommand::StartTls => {
                        if !sh.tls_active && conf.starttls != StartTls::Off {
                            starttls = true;
                            Reply::Ok
                        } else {
                            Reply::Bad
                        }
                    }
                },
            },
        };
        let tag = self.parser.tag().map(|t| t.of(&self.input.buf));
        let tag = match tag {
            Some(t) if !t.is_empty() => t,
            _ => b"* ",
        };
        let next = match reply {
            Reply::Ok => {
                out.extend_from_slice(text);
                out.extend_from_slice(tag);
                out.extend_from_slice(OK);
                Next::Command
            }
            Reply::Bad => {
                out.extend_from_slice(tag);
                out.extend_from_slice(BAD);
                Next::Command
            }
            Reply::BareBad => {
                out.extend_from_slice(BAD);
                Next::Command
            }
            Reply::Raw => Next::SaslResponse,
        };
        if quit {
            return Step::Quit;
        }
        self.input.filled = self.parser.finish(self.input.filled, next);
        if starttls {
            self.discard_input();
            return Step::StartTls;
        }
        Step::Reply
    }

    fn starttls_only(&self, conf: &FrontConf, sh: &Shared) -> bool {
        conf.starttls == StartTls::Only && !sh.tls_active
    }

    /// Credentials complete: keep the tag for auth_http's error reply and
    /// the backend LOGIN.
    fn auth(&mut self, sh: &mut Shared) -> Step {
        sh.tag.clear();
        if let Some(t) = self.parser.tag() {
            sh.tag.extend_from_slice(t.of(&self.input.buf));
        }
        self.sasl = None;
        self.input.filled = self.parser.finish(self.input.filled, Next::Auth);
        Step::Auth
    }

    /// After a failed login that lets the client retry (Auth-Wait): back
    /// to the command state.
    pub fn reset_after_auth(&mut self) {
        self.sasl = None;
    }
}

#[cfg(test)]
mod tests {
    use super::super::front::test_support::{conf, Collect};
    use super::*;
    use crate::conf::AuthMethods;
    use crate::mail::test_support::server_conf;

    /// Feeds `input` and collects everything written until the front end
    /// needs input, quits or asks for auth.
    fn run(fc: &FrontConf, fe: &mut Imap, sh: &mut Shared, input: &[u8]) -> (String, Step) {
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

    fn plain_login() -> AuthMethods {
        AuthMethods {
            plain: true,
            login: true,
            ..AuthMethods::default()
        }
    }

    #[test]
    fn transcripts() {
        let server = server_conf("protocol imap;");
        let fc = conf(&server, plain_login());
        let cases: &[(&[u8], &str, Step)] = &[
            (b"a NOOP\r\n", "a OK completed\r\n", Step::NeedInput),
            (
                b"a CAPABILITY\r\n",
                "* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN\r\na OK completed\r\n",
                Step::NeedInput,
            ),
            (b"a LOGOUT\r\n", "* BYE\r\na OK completed\r\n", Step::Quit),
            (b"a FOO\r\n", "a BAD invalid command\r\n", Step::NeedInput),
            (
                b"a STARTTLS\r\n",
                "a BAD invalid command\r\n",
                Step::NeedInput,
            ),
            (b"\r\n", "* BAD invalid command\r\n", Step::NeedInput),
            (
                b"a LOGIN u\r\n",
                "a BAD invalid command\r\n",
                Step::NeedInput,
            ),
            (b"a LOGIN u p\r\n", "", Step::Auth),
            (b"a LOGIN {1}\r\n", "+ OK\r\n", Step::NeedInput),
            (b"a LOGIN {1+}\r\nu p\r\n", "", Step::Auth),
            (b"a AUTHENTICATE PLAIN\r\n", "+ \r\n", Step::NeedInput),
            (
                b"a AUTHENTICATE LOGIN\r\n",
                "+ VXNlcm5hbWU6\r\n",
                Step::NeedInput,
            ),
            (
                b"a AUTHENTICATE LOGIN dQ==\r\n",
                "+ UGFzc3dvcmQ6\r\n",
                Step::NeedInput,
            ),
            (
                b"a AUTHENTICATE LOGIN !\r\n",
                "a BAD invalid command\r\n",
                Step::NeedInput,
            ),
            (
                b"a AUTHENTICATE LOGIN\r\n!\r\n",
                "+ VXNlcm5hbWU6\r\nBAD invalid command\r\n",
                Step::NeedInput,
            ),
            (b"a AUTHENTICATE PLAIN AHUAcA==\r\n", "", Step::Auth),
            (
                b"a AUTHENTICATE PLAIN\r\nAHUAcA==\r\n",
                "+ \r\n",
                Step::Auth,
            ),
            (
                b"a AUTHENTICATE CRAM-MD5\r\n",
                "a BAD invalid command\r\n",
                Step::NeedInput,
            ),
            (
                b"a AUTHENTICATE EXTERNAL\r\n",
                "a BAD invalid command\r\n",
                Step::NeedInput,
            ),
            (
                b"a NOOP\r\nb NOOP\r\n",
                "a OK completed\r\nb OK completed\r\n",
                Step::NeedInput,
            ),
        ];
        for (input, expect, step) in cases {
            let mut fe = Imap::new(4096);
            let mut sh = Shared::default();
            let (got, s) = run(&fc, &mut fe, &mut sh, input);
            assert_eq!(
                (got.as_str(), s),
                (*expect, *step),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn login_credentials_and_tag() {
        let server = server_conf("protocol imap;");
        let fc = conf(&server, plain_login());
        let mut fe = Imap::new(4096);
        let mut sh = Shared::default();
        let (out, step) = run(&fc, &mut fe, &mut sh, b"t1 LOGIN \"us er\" {2}\r\n");
        assert_eq!((out.as_str(), step), ("+ OK\r\n", Step::NeedInput));
        let (out, step) = run(&fc, &mut fe, &mut sh, b"pw\r\n");
        assert_eq!((out.as_str(), step), ("", Step::Auth));
        assert_eq!(sh.creds.login, b"us er");
        assert_eq!(sh.creds.passwd, b"pw");
        assert_eq!(sh.tag, b"t1 ");
    }

    #[test]
    fn max_errors_and_too_long() {
        let server = server_conf("protocol imap; max_errors 2;");
        let fc = conf(&server, plain_login());
        let mut fe = Imap::new(4096);
        let mut sh = Shared::default();
        let (out, step) = run(&fc, &mut fe, &mut sh, b"a X\r\nb Y\r\nc NOOP\r\n");
        assert_eq!(
            (out.as_str(), step),
            (
                "a BAD invalid command\r\nb BAD invalid command\r\n",
                Step::Quit
            )
        );
        let mut fe = Imap::new(16);
        let mut sh = Shared::default();
        let mut out = Vec::new();
        let mut notes = Collect::default();
        fe.input.space().copy_from_slice(b"a LOGIN aaaaaaaa");
        fe.input.received(16);
        assert_eq!(fe.step(&fc, &mut sh, &mut out, &mut notes), Step::Quit);
        assert_eq!(out, b"a BAD invalid command\r\n");
        assert_eq!(
            notes.0,
            vec!["client sent too long command \"a LOGIN aaaaaaaa\"".to_string()]
        );
    }

    #[test]
    fn cram_md5_and_starttls_variants() {
        let server = server_conf("protocol imap; server_name mx.test;");
        let mut fc = conf(
            &server,
            AuthMethods {
                plain: true,
                cram_md5: true,
                external: true,
                ..AuthMethods::default()
            },
        );
        let mut fe = Imap::new(4096);
        let mut sh = Shared::default();
        let (out, _) = run(&fc, &mut fe, &mut sh, b"a AUTHENTICATE CRAM-MD5\r\n");
        assert!(out.starts_with("+ "), "{out}");
        let salt = sh.salt.clone().unwrap();
        assert!(salt.ends_with(b"@mx.test>\r\n"));
        let resp = crate::mail::sasl::encode_base64(b"user 0123456789abcdef0123456789abcdef");
        let (out, step) = run(&fc, &mut fe, &mut sh, format!("{resp}\r\n").as_bytes());
        assert_eq!((out.as_str(), step), ("", Step::Auth));
        assert_eq!(sh.auth_method, crate::mail::front::AuthMethod::CramMd5);

        fc.starttls = StartTls::Only;
        let mut fe = Imap::new(4096);
        let mut sh = Shared::default();
        let (out, _) = run(&fc, &mut fe, &mut sh, b"a LOGIN u p\r\nb CAPABILITY\r\n");
        assert_eq!(
            out,
            "a BAD invalid command\r\n* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS STARTTLS LOGINDISABLED\r\nb OK completed\r\n"
        );
        let (out, step) = run(&fc, &mut fe, &mut sh, b"c STARTTLS\r\nd NOOP\r\n");
        assert_eq!((out.as_str(), step), ("c OK completed\r\n", Step::StartTls));
        assert!(!fe.has_pending());
    }
}
