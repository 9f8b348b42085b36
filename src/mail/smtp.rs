//! The SMTP front end before login, as nginx's SMTP handler: HELO/EHLO
//! with the configured capability list, AUTH, MAIL/RCPT for `smtp_auth
//! none`, RSET, NOOP, QUIT, STARTTLS, and the "invalid pipelining"
//! rejection of clients that talk before a delayed greeting. Sans-io; see
//! [`super::front`]. The greeting itself (and the resolver step before
//! it) is sequenced by the session.
//!
//! nginx quirk kept: logging a rejected command replaces CR and LF by `_`
//! in the whole client buffer, in place, so pipelined commands after it
//! lose their line ends.

use super::front::{
    continue_sasl, refused, start_sasl, AuthMethod, ClientBuffer, FrontConf, Notes, Sasl,
    SaslState, Shared, Step,
};
use super::parse::smtp::{SmtpCommand, SmtpParser, SMTP_MAX_ARGS};
use super::parse::{Next, Status};
use crate::conf::StartTls;

const OK: &[u8] = b"250 2.0.0 OK\r\n";
const BYE: &[u8] = b"221 2.0.0 Bye\r\n";
const START_TLS: &[u8] = b"220 2.0.0 Start TLS\r\n";
const INVALID_COMMAND: &[u8] = b"500 5.5.1 Invalid command\r\n";
pub const INVALID_PIPELINING: &[u8] = b"503 5.5.0 Improper use of SMTP command pipelining\r\n";
const INVALID_ARGUMENT: &[u8] = b"501 5.5.4 Invalid argument\r\n";
const AUTH_REQUIRED: &[u8] = b"530 5.7.1 Authentication required\r\n";
const BAD_SEQUENCE: &[u8] = b"503 5.5.1 Bad sequence of commands\r\n";
const PREFIX: &[u8] = b"334 ";

/// The client host name as the SMTP module keeps it: `[UNAVAILABLE]`
/// without a resolver, `[TEMPUNAVAIL]` on a temporary failure or a UNIX
/// socket.
pub const HOST_UNAVAILABLE: &[u8] = b"[UNAVAILABLE]";
pub const HOST_TEMPUNAVAIL: &[u8] = b"[TEMPUNAVAIL]";

#[derive(Debug)]
pub struct Smtp {
    parser: SmtpParser,
    pub input: ClientBuffer,
    sasl: Option<SaslState>,
}

/// Log `fmt` with the whole buffer, CR and LF replaced by `_` in place.
fn log_rejected(buf: &mut [u8], notes: &mut dyn Notes, before_greeting: bool) {
    if !notes.info_enabled() {
        return;
    }
    for b in buf.iter_mut() {
        if *b == b'\r' || *b == b'\n' {
            *b = b'_';
        }
    }
    let text = String::from_utf8_lossy(buf);
    if before_greeting {
        notes.info(format_args!(
            "client was rejected before greeting: \"{text}\""
        ));
    } else {
        notes.info(format_args!("client was rejected: \"{text}\""));
    }
}

impl Smtp {
    pub fn new(buffer_size: usize) -> Smtp {
        Smtp {
            parser: SmtpParser::new(),
            input: ClientBuffer::new(buffer_size),
            sasl: None,
        }
    }

    pub fn greeting(conf: &FrontConf, out: &mut Vec<u8>) {
        out.extend_from_slice(&conf.replies.smtp_greeting);
    }

    /// Where the unparsed input starts (pipelined bytes after the login
    /// command go to the backend).
    pub fn pending_from(&self) -> usize {
        self.parser.pos().min(self.input.filled)
    }

    pub fn has_pending(&self) -> bool {
        self.parser.pos() < self.input.filled
    }

    /// The client wrote before the delayed greeting: log what it sent and
    /// answer with the pipelining error (the session then closes).
    pub fn reject_pipelining(&mut self, out: &mut Vec<u8>, notes: &mut dyn Notes) {
        let filled = self.input.filled;
        log_rejected(&mut self.input.buf[..filled], notes, true);
        self.input.filled = 0;
        out.extend_from_slice(INVALID_PIPELINING);
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
        let handled: Option<Next> = match status {
            Status::Incomplete => return Step::NeedInput,
            Status::LiteralContinuation => None,
            Status::Invalid(kind) => {
                quit = refused(kind, &self.input.buf[..filled], conf, sh, notes);
                None
            }
            Status::Complete(command) => {
                let spans = self.parser.args();
                let mut args: [&[u8]; SMTP_MAX_ARGS] = [b""; SMTP_MAX_ARGS];
                let buf = &self.input.buf;
                for (a, s) in args.iter_mut().zip(spans) {
                    *a = s.of(buf);
                }
                let args = &args[..spans.len()];
                let only = conf.starttls == StartTls::Only && !sh.tls_active;
                if let Some(state) = self.sasl.take() {
                    let response = args.first().copied().unwrap_or_default();
                    match continue_sasl(state, response, sh, PREFIX, out, notes) {
                        Sasl::Continue(next) => {
                            self.sasl = Some(next);
                            Some(Next::SaslResponse)
                        }
                        Sasl::Done => return self.auth(),
                        Sasl::Invalid => None,
                    }
                } else {
                    match command {
                        SmtpCommand::Helo | SmtpCommand::Ehlo => {
                            if args.len() != 1 {
                                out.extend_from_slice(INVALID_ARGUMENT);
                            } else {
                                sh.smtp_helo.clear();
                                sh.smtp_helo.extend_from_slice(args[0]);
                                sh.smtp_from.clear();
                                sh.smtp_to.clear();
                                if command == SmtpCommand::Helo {
                                    out.extend_from_slice(&conf.replies.smtp_helo);
                                } else {
                                    sh.esmtp = true;
                                    out.extend_from_slice(
                                        conf.replies.smtp.pick(conf.starttls, sh.tls_active),
                                    );
                                }
                            }
                            Some(Next::Command)
                        }
                        SmtpCommand::Auth => {
                            if only {
                                None
                            } else if args.is_empty() {
                                out.extend_from_slice(INVALID_ARGUMENT);
                                Some(Next::Command)
                            } else {
                                match start_sasl(args, conf, sh, PREFIX, out, notes) {
                                    Sasl::Continue(state) => {
                                        self.sasl = Some(state);
                                        Some(Next::SaslResponse)
                                    }
                                    Sasl::Done => return self.auth(),
                                    Sasl::Invalid => None,
                                }
                            }
                        }
                        SmtpCommand::Quit => {
                            quit = true;
                            out.extend_from_slice(BYE);
                            Some(Next::Command)
                        }
                        SmtpCommand::Mail => {
                            if !conf.auth.none {
                                let filled = self.input.filled;
                                log_rejected(&mut self.input.buf[..filled], notes, false);
                                out.extend_from_slice(AUTH_REQUIRED);
                            } else if !sh.smtp_from.is_empty() {
                                out.extend_from_slice(BAD_SEQUENCE);
                            } else if let Some(line) = self.parser.verb_through_last_arg() {
                                sh.smtp_from.clear();
                                sh.smtp_from.extend_from_slice(line.of(&self.input.buf));
                                sh.creds.login.clear();
                                sh.creds.passwd.clear();
                                sh.passwd_set = false;
                                out.extend_from_slice(OK);
                            } else {
                                out.extend_from_slice(INVALID_ARGUMENT);
                            }
                            Some(Next::Command)
                        }
                        SmtpCommand::Rcpt => {
                            if sh.smtp_from.is_empty() {
                                out.extend_from_slice(BAD_SEQUENCE);
                            } else if let Some(line) = self.parser.verb_through_last_arg() {
                                sh.smtp_to.clear();
                                sh.smtp_to.extend_from_slice(line.of(&self.input.buf));
                                sh.auth_method = AuthMethod::None;
                                return self.auth();
                            } else {
                                out.extend_from_slice(INVALID_ARGUMENT);
                            }
                            Some(Next::Command)
                        }
                        SmtpCommand::Rset => {
                            sh.smtp_from.clear();
                            sh.smtp_to.clear();
                            out.extend_from_slice(OK);
                            Some(Next::Command)
                        }
                        SmtpCommand::Noop => {
                            out.extend_from_slice(OK);
                            Some(Next::Command)
                        }
                        SmtpCommand::StartTls
                            if !sh.tls_active && conf.starttls != StartTls::Off =>
                        {
                            sh.smtp_helo.clear();
                            sh.smtp_from.clear();
                            sh.smtp_to.clear();
                            starttls = true;
                            out.extend_from_slice(START_TLS);
                            Some(Next::Command)
                        }
                        _ => None,
                    }
                }
            }
        };
        let next = match handled {
            Some(next) => next,
            None => {
                self.sasl = None;
                out.extend_from_slice(INVALID_COMMAND);
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
        self.sasl = None;
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

    fn run(
        fc: &FrontConf,
        fe: &mut Smtp,
        sh: &mut Shared,
        input: &[u8],
    ) -> (String, Step, Vec<String>) {
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
                    return (
                        String::from_utf8_lossy(&out).into_owned(),
                        Step::NeedInput,
                        notes.0,
                    )
                }
                _ => return (String::from_utf8_lossy(&out).into_owned(), step, notes.0),
            }
        }
    }

    fn methods(none: bool) -> AuthMethods {
        AuthMethods {
            plain: true,
            login: true,
            none,
            ..AuthMethods::default()
        }
    }

    #[test]
    fn transcripts() {
        let server = server_conf("protocol smtp; server_name mx;");
        let fc = conf(&server, methods(false));
        let cases: &[(&[u8], &str, Step)] = &[
            (b"HELO h\r\n", "250 mx\r\n", Step::NeedInput),
            (
                b"EHLO h\r\n",
                "250-mx\r\n250 AUTH PLAIN LOGIN\r\n",
                Step::NeedInput,
            ),
            (
                b"EHLO\r\n",
                "501 5.5.4 Invalid argument\r\n",
                Step::NeedInput,
            ),
            (b"NOOP\r\n", "250 2.0.0 OK\r\n", Step::NeedInput),
            (b"RSET\r\n", "250 2.0.0 OK\r\n", Step::NeedInput),
            (b"QUIT\r\n", "221 2.0.0 Bye\r\n", Step::Quit),
            (
                b"VRFY x\r\n",
                "500 5.5.1 Invalid command\r\n",
                Step::NeedInput,
            ),
            (
                b"STARTTLS\r\n",
                "500 5.5.1 Invalid command\r\n",
                Step::NeedInput,
            ),
            (
                b"AUTH\r\n",
                "501 5.5.4 Invalid argument\r\n",
                Step::NeedInput,
            ),
            (b"AUTH PLAIN\r\n", "334 \r\n", Step::NeedInput),
            (b"AUTH PLAIN AHUAcA==\r\n", "", Step::Auth),
            (
                b"AUTH LOGIN\r\ndQ==\r\ncA==\r\n",
                "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n",
                Step::Auth,
            ),
            (
                b"MAIL FROM:<a>\r\n",
                "530 5.7.1 Authentication required\r\n",
                Step::NeedInput,
            ),
            (
                b"RCPT TO:<a>\r\n",
                "503 5.5.1 Bad sequence of commands\r\n",
                Step::NeedInput,
            ),
        ];
        for (input, expect, step) in cases {
            let mut fe = Smtp::new(4096);
            let mut sh = Shared::default();
            let (got, s, _) = run(&fc, &mut fe, &mut sh, input);
            assert_eq!(
                (got.as_str(), s),
                (*expect, *step),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn auth_none_collects_envelope() {
        let server = server_conf("protocol smtp; server_name mx;");
        let fc = conf(&server, methods(true));
        let mut fe = Smtp::new(4096);
        let mut sh = Shared::default();
        let (out, step, _) = run(
            &fc,
            &mut fe,
            &mut sh,
            b"EHLO client\r\nMAIL FROM:<a@b>  SIZE=10\r\nMAIL FROM:<c>\r\nRCPT TO:<d@e>\r\n",
        );
        assert_eq!(
            out,
            "250-mx\r\n250 AUTH PLAIN LOGIN\r\n250 2.0.0 OK\r\n503 5.5.1 Bad sequence of commands\r\n"
        );
        assert_eq!(step, Step::Auth);
        assert_eq!(sh.smtp_helo, b"client");
        assert_eq!(sh.smtp_from, b"MAIL FROM:<a@b>  SIZE=10");
        assert_eq!(sh.smtp_to, b"RCPT TO:<d@e>");
        assert_eq!(sh.auth_method, AuthMethod::None);
        assert!(sh.esmtp);
    }

    #[test]
    fn rejected_mail_log_mangles_buffer() {
        let server = server_conf("protocol smtp; server_name mx;");
        let fc = conf(&server, methods(false));
        let mut fe = Smtp::new(4096);
        let mut sh = Shared::default();
        let (out, step, notes) = run(&fc, &mut fe, &mut sh, b"MAIL FROM:<a>\r\nNOOP\r\n");
        assert_eq!(out, "530 5.7.1 Authentication required\r\n");
        assert_eq!(step, Step::NeedInput);
        assert_eq!(
            notes,
            vec!["client was rejected: \"MAIL FROM:<a>__NOOP__\"".to_string()]
        );
    }

    #[test]
    fn pipelining_before_greeting() {
        let server = server_conf("protocol smtp; server_name mx;");
        let fc = conf(&server, methods(false));
        let mut fe = Smtp::new(4096);
        fe.input.space()[..6].copy_from_slice(b"EHLO\r\n");
        fe.input.received(6);
        let mut out = Vec::new();
        let mut notes = Collect::default();
        fe.reject_pipelining(&mut out, &mut notes);
        assert_eq!(out, INVALID_PIPELINING);
        assert_eq!(
            notes.0,
            vec!["client was rejected before greeting: \"EHLO__\"".to_string()]
        );
        let _ = fc;
    }
}
