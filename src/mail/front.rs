//! What the three protocol front ends share: the session data gathered
//! before login (nginx's session fields), the result of one step, the
//! client buffer, and the SASL exchange common to AUTH / AUTHENTICATE.
//!
//! A front end is sans-io: the session reads client bytes into
//! [`ClientBuffer::space`], reports them with [`ClientBuffer::received`],
//! and calls the protocol's `step`, which appends at most one reply to
//! `out` and says what to do next. Like nginx, the next pipelined command
//! is handled only once the reply has been written (the session calls
//! `step` again then).

use super::bufpool::PoolBuf;
use super::caps::Replies;
use super::parse::{Invalid, TooLongCommand, TOO_MANY_INVALID_COMMANDS};
use super::sasl::{self, Credentials, Mechanism, SaslError};
use crate::conf::{AuthMethods, StartTls};
use std::fmt;
use std::sync::Arc;

/// What the session does after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Read more from the client (nothing to send).
    NeedInput,
    /// Send `out`, then step again (more input may be buffered).
    Reply,
    /// Send `out`, then close.
    Quit,
    /// Credentials are complete: ask auth_http (nothing to send).
    Auth,
    /// Send `out`, then start TLS on the client stream and step again
    /// (buffered input was discarded, as RFC 3207 requires).
    StartTls,
}

/// The method reported to auth_http as `Auth-Method` (nginx reports AUTH
/// LOGIN as `plain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMethod {
    #[default]
    Plain,
    Apop,
    CramMd5,
    External,
    None,
}

impl AuthMethod {
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Plain => "plain",
            AuthMethod::Apop => "apop",
            AuthMethod::CramMd5 => "cram-md5",
            AuthMethod::External => "external",
            AuthMethod::None => "none",
        }
    }
}

/// Session data gathered by the front end and used by auth_http and the
/// backend login.
#[derive(Debug, Clone)]
pub struct Shared {
    pub creds: Credentials,
    /// A password was given (by the client or by auth_http's Auth-Pass);
    /// an empty one counts, as in nginx, but EXTERNAL gives none.
    pub passwd_set: bool,
    /// APOP / CRAM-MD5 salt with its CRLF, once made.
    pub salt: Option<Vec<u8>>,
    pub auth_method: AuthMethod,
    /// IMAP: the tag of the login command with its space (may be empty).
    pub tag: Vec<u8>,
    /// SMTP: HELO/EHLO argument, MAIL and RCPT lines (`smtp_auth none`).
    pub smtp_helo: Vec<u8>,
    pub smtp_from: Vec<u8>,
    pub smtp_to: Vec<u8>,
    /// SMTP: the client said EHLO.
    pub esmtp: bool,
    /// Invalid commands so far (checked against `max_errors`).
    pub errors: u32,
    /// TLS is active on the client stream.
    pub tls_active: bool,
}

impl Shared {
    /// Nothing gathered yet (what a session reads before its first command).
    pub const EMPTY: Shared = Shared {
        creds: Credentials {
            login: Vec::new(),
            passwd: Vec::new(),
        },
        passwd_set: false,
        salt: None,
        auth_method: AuthMethod::Plain,
        tag: Vec::new(),
        smtp_helo: Vec::new(),
        smtp_from: Vec::new(),
        smtp_to: Vec::new(),
        esmtp: false,
        errors: 0,
        tls_active: false,
    };
}

impl Default for Shared {
    fn default() -> Shared {
        Shared::EMPTY
    }
}

/// Settings a front end needs, shared by every session of a server.
#[derive(Debug, Clone)]
pub struct FrontConf {
    pub replies: Arc<Replies>,
    pub server_name: String,
    pub max_errors: u32,
    /// `starttls` as far as this session can honour it (off while TLS is
    /// not available on the listening socket's server).
    pub starttls: StartTls,
    pub auth: AuthMethods,
    /// `smtp_greeting_delay` is set.
    pub smtp_greeting_delay: bool,
}

/// `info` lines a front end wants logged (the session adds the context).
pub trait Notes {
    fn info(&mut self, msg: fmt::Arguments<'_>);
    /// Whether info lines are written at all (nginx skips building some).
    fn info_enabled(&self) -> bool;
}

/// nginx's bookkeeping for a command the parser refused, the same in every
/// protocol: a too-long command is logged, an invalid one counts towards
/// `max_errors` (logged when reached); whether the session must close.
pub fn refused(
    kind: Invalid,
    input: &[u8],
    conf: &FrontConf,
    sh: &mut Shared,
    notes: &mut dyn Notes,
) -> bool {
    let mut close = kind.closes();
    if kind == Invalid::TooLong {
        notes.info(format_args!("{}", TooLongCommand(input)));
    }
    if kind.counts_as_error() {
        sh.errors += 1;
        if sh.errors >= conf.max_errors {
            notes.info(format_args!("{TOO_MANY_INVALID_COMMANDS}"));
            close = true;
        }
    }
    close
}

/// The client buffer and its fill level. The buffer comes from the
/// worker's pool when the session reads and goes back once it is empty
/// ([`ClientBuffer::release_if_empty`]), so a session waiting for its next
/// command holds none.
#[derive(Debug)]
pub struct ClientBuffer {
    pub buf: PoolBuf,
    pub filled: usize,
}

impl ClientBuffer {
    pub fn new(size: usize) -> ClientBuffer {
        ClientBuffer {
            buf: PoolBuf::new(size),
            filled: 0,
        }
    }
    /// Room for the next read (empty when the buffer is full).
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.buf.get()[self.filled..]
    }
    pub fn received(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.buf.capacity());
    }
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
    /// Give the buffer back to the pool when it holds no bytes.
    pub fn release_if_empty(&mut self) {
        if self.filled == 0 {
            self.buf.release();
        }
    }
}

/// A SASL exchange in progress after AUTH / AUTHENTICATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslState {
    LoginUsername,
    LoginPassword,
    Plain,
    CramMd5,
    External,
}

/// The result of starting or continuing SASL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sasl {
    /// A challenge was written; the next line is a response.
    Continue(SaslState),
    /// Credentials are complete.
    Done,
    /// Answer as an invalid command (already logged if needed).
    Invalid,
}

pub const USERNAME_CHALLENGE: &[u8] = b"VXNlcm5hbWU6";
pub const PASSWORD_CHALLENGE: &[u8] = b"UGFzc3dvcmQ6";

fn challenge(out: &mut Vec<u8>, prefix: &[u8], text: &[u8]) {
    out.extend_from_slice(prefix);
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

fn logged(r: Result<(), SaslError>, notes: &mut dyn Notes) -> bool {
    match r {
        Ok(()) => true,
        Err(e) => {
            notes.info(format_args!("{}", e.log_message()));
            false
        }
    }
}

/// Make the APOP / CRAM-MD5 salt once per session.
pub fn ensure_salt(sh: &mut Shared, server_name: &str) {
    if sh.salt.is_none() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        sh.salt = Some(sasl::make_salt(
            sasl::salt_random(),
            now,
            server_name.as_bytes(),
        ));
    }
}

/// AUTH / AUTHENTICATE with its arguments: picks the mechanism, checks
/// that CRAM-MD5 / EXTERNAL are enabled, writes the challenge (with
/// `prefix`, `+ ` or `334 `) or decodes an initial response.
pub fn start_sasl(
    args: &[&[u8]],
    conf: &FrontConf,
    sh: &mut Shared,
    prefix: &[u8],
    out: &mut Vec<u8>,
    notes: &mut dyn Notes,
) -> Sasl {
    let Some(mech) = sasl::parse_mechanism(args) else {
        return Sasl::Invalid;
    };
    match mech {
        Mechanism::Login => {
            challenge(out, prefix, USERNAME_CHALLENGE);
            Sasl::Continue(SaslState::LoginUsername)
        }
        Mechanism::LoginUsername(user) => {
            if logged(sasl::auth_login_username(user, &mut sh.creds), notes) {
                challenge(out, prefix, PASSWORD_CHALLENGE);
                Sasl::Continue(SaslState::LoginPassword)
            } else {
                Sasl::Invalid
            }
        }
        Mechanism::Plain => {
            challenge(out, prefix, b"");
            Sasl::Continue(SaslState::Plain)
        }
        Mechanism::PlainInitial(initial) => {
            if logged(sasl::auth_plain(initial, &mut sh.creds), notes) {
                sh.passwd_set = true;
                Sasl::Done
            } else {
                Sasl::Invalid
            }
        }
        Mechanism::CramMd5 => {
            if !conf.auth.cram_md5 {
                return Sasl::Invalid;
            }
            ensure_salt(sh, &conf.server_name);
            let salt = sh.salt.as_deref().unwrap_or_default();
            out.extend_from_slice(&sasl::cram_md5_challenge(prefix, salt));
            Sasl::Continue(SaslState::CramMd5)
        }
        Mechanism::External => {
            if !conf.auth.external {
                return Sasl::Invalid;
            }
            challenge(out, prefix, USERNAME_CHALLENGE);
            Sasl::Continue(SaslState::External)
        }
        Mechanism::ExternalInitial(initial) => {
            if !conf.auth.external {
                return Sasl::Invalid;
            }
            if logged(sasl::auth_external(initial, &mut sh.creds), notes) {
                sh.auth_method = AuthMethod::External;
                Sasl::Done
            } else {
                Sasl::Invalid
            }
        }
    }
}

/// One SASL response line (its first word is `response`).
pub fn continue_sasl(
    state: SaslState,
    response: &[u8],
    sh: &mut Shared,
    prefix: &[u8],
    out: &mut Vec<u8>,
    notes: &mut dyn Notes,
) -> Sasl {
    match state {
        SaslState::LoginUsername => {
            if logged(sasl::auth_login_username(response, &mut sh.creds), notes) {
                challenge(out, prefix, PASSWORD_CHALLENGE);
                Sasl::Continue(SaslState::LoginPassword)
            } else {
                Sasl::Invalid
            }
        }
        SaslState::LoginPassword => {
            if logged(sasl::auth_login_password(response, &mut sh.creds), notes) {
                sh.passwd_set = true;
                Sasl::Done
            } else {
                Sasl::Invalid
            }
        }
        SaslState::Plain => {
            if logged(sasl::auth_plain(response, &mut sh.creds), notes) {
                sh.passwd_set = true;
                Sasl::Done
            } else {
                Sasl::Invalid
            }
        }
        SaslState::CramMd5 => {
            if logged(sasl::auth_cram_md5(response, &mut sh.creds), notes) {
                sh.auth_method = AuthMethod::CramMd5;
                sh.passwd_set = true;
                Sasl::Done
            } else {
                Sasl::Invalid
            }
        }
        SaslState::External => {
            if logged(sasl::auth_external(response, &mut sh.creds), notes) {
                sh.auth_method = AuthMethod::External;
                Sasl::Done
            } else {
                Sasl::Invalid
            }
        }
    }
}

/// The protocol's reply for an internal error (then the session closes).
pub fn internal_server_error(protocol: crate::conf::Protocol) -> &'static [u8] {
    match protocol {
        crate::conf::Protocol::Imap => b"* BAD internal server error\r\n",
        crate::conf::Protocol::Pop3 => b"-ERR internal server error\r\n",
        crate::conf::Protocol::Smtp => b"451 4.3.2 Internal server error\r\n",
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// Collects info lines.
    #[derive(Default)]
    pub struct Collect(pub Vec<String>);

    impl Notes for Collect {
        fn info(&mut self, msg: fmt::Arguments<'_>) {
            self.0.push(msg.to_string());
        }
        fn info_enabled(&self) -> bool {
            true
        }
    }

    pub fn conf(server: &crate::conf::ServerConf, auth: AuthMethods) -> FrontConf {
        FrontConf {
            replies: Arc::new(Replies::new(server)),
            server_name: server.server_name.clone(),
            max_errors: server.max_errors,
            starttls: StartTls::Off,
            auth,
            smtp_greeting_delay: false,
        }
    }
}
