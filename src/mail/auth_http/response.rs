//! The auth_http response: read incrementally into one fixed buffer,
//! then turned into what the session does next.

use super::addr;
use crate::conf::model::Protocol;
use std::net::SocketAddr;
use std::time::Duration;

/// nginx reads the whole response head into a buffer of this size; a head
/// that does not fit is an error.
pub const RESPONSE_BUFFER_SIZE: usize = 1024;

/// The SMTP reply code used when auth_http sends no `Auth-Error-Code`.
const SMTP_DEFAULT_ERROR_CODE: &[u8] = b"535 5.7.0";

/// Where [`AuthHttpResponse::feed`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Read more into [`AuthHttpResponse::spare`].
    NeedMore,
    /// The head is complete: close the connection to auth_http and call
    /// [`AuthHttpResponse::outcome`]. Anything after the head is ignored.
    Complete,
}

/// Why auth_http's answer cannot be used. The session logs
/// [`log_message`](Self::log_message) at `error` level (the
/// `while in http auth state, …` suffix is added by the session) and
/// sends the protocol's internal-server-error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthHttpError<'r> {
    /// A line starting with `HTTP/` did not end in CRLF or LF.
    InvalidResponse,
    /// A header line is malformed.
    InvalidHeader,
    /// The connection was closed before the end of the head. nginx logs
    /// nothing here; Postern logs a line.
    Closed,
    /// The head does not fit in [`RESPONSE_BUFFER_SIZE`] bytes. nginx logs
    /// nothing here; Postern logs a line.
    TooBig,
    /// Success, but `Auth-Server` or `Auth-Port` is missing or empty.
    NoServerOrPort,
    /// Success for IMAP or POP3 without `Auth-Pass` while the session has
    /// no password (APOP, CRAM-MD5, EXTERNAL).
    NoPassword,
    /// `Auth-Server` is not an IP address (host names included).
    InvalidServerAddress(&'r [u8]),
    /// `Auth-Port` is not a number from 1 to 65535.
    InvalidServerPort(&'r [u8]),
}

impl AuthHttpError<'_> {
    /// The error-log text; `peer` is the auth_http peer's name
    /// ([`super::peer_name`]).
    pub fn log_message(&self, peer: &str) -> String {
        match self {
            AuthHttpError::InvalidResponse => {
                format!("auth http server {peer} sent invalid response")
            }
            AuthHttpError::InvalidHeader => {
                format!("auth http server {peer} sent invalid header in response")
            }
            AuthHttpError::Closed => {
                format!("auth http server {peer} prematurely closed connection")
            }
            AuthHttpError::TooBig => format!("auth http server {peer} sent too big response"),
            AuthHttpError::NoServerOrPort => {
                format!("auth http server {peer} did not send server or port")
            }
            AuthHttpError::NoPassword => {
                format!("auth http server {peer} did not send password")
            }
            AuthHttpError::InvalidServerAddress(text) => format!(
                "auth http server {peer} sent invalid server address:\"{}\"",
                String::from_utf8_lossy(text)
            ),
            AuthHttpError::InvalidServerPort(text) => format!(
                "auth http server {peer} sent invalid server port:\"{}\"",
                String::from_utf8_lossy(text)
            ),
        }
    }
}

/// What the session does once the head is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<'r> {
    /// `Auth-Status: OK` (or none) with a usable server: connect to `peer`
    /// and log in with the (possibly overridden) credentials. `name` is
    /// the `Auth-Server` and `Auth-Port` texts as sent, joined by `:`,
    /// for the log's `upstream:` field.
    Proxy { peer: SocketAddr, name: String },
    /// `Auth-Status` carried an error text.
    Reject(Rejection<'r>),
    /// `Auth-Status: WAIT`: ask auth_http again after `delay` (`None`: at
    /// once) with the same `Auth-Login-Attempt`; the client is not read
    /// meanwhile.
    Wait { delay: Option<Duration> },
}

/// A failed login as auth_http words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection<'r> {
    /// The reply for the client, CRLF included: POP3 `-ERR <text>`, IMAP
    /// `<tag>NO <text>`, SMTP `<Auth-Error-Code or 535 5.7.0> <text>`.
    pub reply: Vec<u8>,
    /// The `Auth-Status` text, for the `client login failed: "<text>"`
    /// line the session logs at `info` level at once.
    pub message: &'r [u8],
    /// `None` (no positive `Auth-Wait`): send `reply` and close. `Some(d)`:
    /// wait `d` without reading the client, then send `reply` and go back
    /// to the protocol's command loop (the client may try again).
    pub delay: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusState {
    Start,
    H,
    Ht,
    Htt,
    Http,
    Skip,
    AlmostDone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderState {
    Start,
    Name,
    SpaceBeforeValue,
    Value,
    SpaceAfterValue,
    AlmostDone,
    HeadAlmostDone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    StatusLine(StatusState),
    Headers(HeaderState),
    Complete,
    Failed(AuthHttpError<'static>),
}

/// A byte range of the response buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Range {
    start: usize,
    end: usize,
}

/// One header line found by the line parser.
enum Line {
    Header,
    EndOfHead,
}

/// The auth_http response head, parsed as it arrives, as nginx parses it:
///
/// - The status line is skipped whatever its code (`HTTP/1.0 500` works
///   like 200); only its end of line is checked. A response that does not
///   start with `HTTP/` is read as headers from its first byte.
/// - Header names are letters, digits and `-` (the first not `-`), matched
///   without regard to case; a line without `:` is a header with an empty
///   value. Values lose leading and trailing spaces (not tabs). Lines end
///   in CRLF or LF. Unknown headers are ignored; a repeated header's last
///   value wins.
/// - `Auth-Status: OK` and `WAIT` are case-sensitive; any other value is
///   an error text, and a later `OK` does not undo it.
/// - `Auth-Wait` that is not a number is ignored.
pub struct AuthHttpResponse {
    buf: [u8; RESPONSE_BUFFER_SIZE],
    len: usize,
    pos: usize,
    stage: Stage,
    name: Range,
    value: Range,
    error_text: Option<Range>,
    wait: bool,
    server: Range,
    port: Range,
    user: Option<Range>,
    pass: Option<Range>,
    error_code: Range,
    wait_secs: u64,
}

impl Default for AuthHttpResponse {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for AuthHttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthHttpResponse")
            .field("len", &self.len)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

impl AuthHttpResponse {
    pub fn new() -> Self {
        AuthHttpResponse {
            buf: [0; RESPONSE_BUFFER_SIZE],
            len: 0,
            pos: 0,
            stage: Stage::StatusLine(StatusState::Start),
            name: Range::default(),
            value: Range::default(),
            error_text: None,
            wait: false,
            server: Range::default(),
            port: Range::default(),
            user: None,
            pass: None,
            error_code: Range::default(),
            wait_secs: 0,
        }
    }

    /// The free part of the buffer to read into; empty once the head is
    /// complete or has failed.
    pub fn spare(&mut self) -> &mut [u8] {
        match self.stage {
            Stage::Complete | Stage::Failed(_) => &mut [],
            _ => &mut self.buf[self.len..],
        }
    }

    /// Takes `n` more bytes just read into [`spare`](Self::spare); `n == 0`
    /// means auth_http closed the connection. Once an error or `Complete`
    /// is returned, later calls return it again.
    pub fn feed(&mut self, n: usize) -> Result<Progress, AuthHttpError<'static>> {
        match self.stage {
            Stage::Complete => return Ok(Progress::Complete),
            Stage::Failed(e) => return Err(e),
            _ => {}
        }
        let n = n.min(RESPONSE_BUFFER_SIZE - self.len);
        if n == 0 {
            return self.fail(AuthHttpError::Closed);
        }
        self.len += n;
        let result = self.run();
        if result == Ok(Progress::NeedMore) && self.len == RESPONSE_BUFFER_SIZE {
            return self.fail(AuthHttpError::TooBig);
        }
        result
    }

    /// Copies as much of `data` as fits into the buffer and feeds it; a
    /// convenience over [`spare`](Self::spare) + [`feed`](Self::feed).
    /// Returns the progress and how many bytes were taken.
    pub fn push(&mut self, data: &[u8]) -> (Result<Progress, AuthHttpError<'static>>, usize) {
        let spare = self.spare();
        let n = data.len().min(spare.len());
        spare[..n].copy_from_slice(&data[..n]);
        if n == 0 && !data.is_empty() {
            // Complete or failed: report it, take nothing.
            let result = match self.stage {
                Stage::Failed(e) => Err(e),
                _ => Ok(Progress::Complete),
            };
            return (result, 0);
        }
        (self.feed(n), n)
    }

    /// `Auth-User` seen so far: the login the session uses from now on
    /// (for the backend, later auth_http requests and the log's `login:`),
    /// whatever the outcome, as nginx does. Apply it before logging.
    pub fn user_override(&self) -> Option<&[u8]> {
        self.user.map(|r| self.bytes(r))
    }

    /// `Auth-Pass` seen so far: the password the session uses from now on,
    /// whatever the outcome.
    pub fn pass_override(&self) -> Option<&[u8]> {
        self.pass.map(|r| self.bytes(r))
    }

    /// What to do after [`Progress::Complete`].
    ///
    /// `imap_tag` is the tag of the IMAP command being answered *with* its
    /// trailing space (ignored for POP3 and SMTP). `session_has_password`
    /// says whether the session holds a password before this response (no
    /// for APOP / CRAM-MD5, see [`super::AuthRequest::clears_password`],
    /// and for EXTERNAL unless an earlier attempt left one).
    ///
    /// The order of checks is nginx's: an error text, then WAIT, then the
    /// server and port, the password (IMAP and POP3 only), the address,
    /// the port.
    ///
    /// Called before [`Progress::Complete`], it returns the error the head
    /// failed with, or [`AuthHttpError::Closed`] while it is unfinished.
    pub fn outcome(
        &self,
        protocol: Protocol,
        imap_tag: &[u8],
        session_has_password: bool,
    ) -> Result<Outcome<'_>, AuthHttpError<'_>> {
        match self.stage {
            Stage::Complete => {}
            Stage::Failed(e) => return Err(e),
            _ => return Err(AuthHttpError::Closed),
        }

        if let Some(text) = self.error_text {
            let message = self.bytes(text);
            let reply = match protocol {
                Protocol::Pop3 => Some(join(&[b"-ERR ", message, b"\r\n"])),
                Protocol::Imap => Some(join(&[imap_tag, b"NO ", message, b"\r\n"])),
                // nginx takes an empty SMTP error text for no error at all.
                Protocol::Smtp if message.is_empty() => None,
                Protocol::Smtp => {
                    let code = match self.bytes(self.error_code) {
                        b"" => SMTP_DEFAULT_ERROR_CODE,
                        code => code,
                    };
                    Some(join(&[code, b" ", message, b"\r\n"]))
                }
            };
            if let Some(reply) = reply {
                return Ok(Outcome::Reject(Rejection {
                    reply,
                    message,
                    delay: self.delay(),
                }));
            }
        }

        if self.wait {
            return Ok(Outcome::Wait {
                delay: self.delay(),
            });
        }

        if self.server.start == self.server.end || self.port.start == self.port.end {
            return Err(AuthHttpError::NoServerOrPort);
        }
        if protocol != Protocol::Smtp && !session_has_password && self.pass.is_none() {
            return Err(AuthHttpError::NoPassword);
        }
        let server = self.bytes(self.server);
        let ip =
            crate::inet::parse_addr(server).ok_or(AuthHttpError::InvalidServerAddress(server))?;
        let port_text = self.bytes(self.port);
        let port =
            addr::parse_port(port_text).ok_or(AuthHttpError::InvalidServerPort(port_text))?;
        let mut name = String::with_capacity(server.len() + 1 + port_text.len());
        name.push_str(&String::from_utf8_lossy(server));
        name.push(':');
        name.push_str(&String::from_utf8_lossy(port_text));
        Ok(Outcome::Proxy {
            peer: SocketAddr::new(ip, port),
            name,
        })
    }

    fn delay(&self) -> Option<Duration> {
        (self.wait_secs > 0).then(|| Duration::from_secs(self.wait_secs))
    }

    fn bytes(&self, r: Range) -> &[u8] {
        &self.buf[r.start..r.end]
    }

    fn fail(&mut self, e: AuthHttpError<'static>) -> Result<Progress, AuthHttpError<'static>> {
        self.stage = Stage::Failed(e);
        Err(e)
    }

    fn run(&mut self) -> Result<Progress, AuthHttpError<'static>> {
        if let Stage::StatusLine(state) = self.stage {
            match self.skip_status_line(state) {
                Ok(true) => self.stage = Stage::Headers(HeaderState::Start),
                Ok(false) => return Ok(Progress::NeedMore),
                Err(e) => return self.fail(e),
            }
        }
        loop {
            match self.header_line() {
                Ok(Some(Line::Header)) => self.take_header(),
                Ok(Some(Line::EndOfHead)) => {
                    self.stage = Stage::Complete;
                    return Ok(Progress::Complete);
                }
                Ok(None) => return Ok(Progress::NeedMore),
                Err(e) => return self.fail(e),
            }
        }
    }

    /// Skips a status line; `Ok(true)` when headers start at `self.pos`.
    fn skip_status_line(&mut self, mut state: StatusState) -> Result<bool, AuthHttpError<'static>> {
        while self.pos < self.len {
            let ch = self.buf[self.pos];
            self.pos += 1;
            let expected = match state {
                StatusState::Start => Some((b'H', StatusState::H)),
                StatusState::H => Some((b'T', StatusState::Ht)),
                StatusState::Ht => Some((b'T', StatusState::Htt)),
                StatusState::Htt => Some((b'P', StatusState::Http)),
                StatusState::Http => Some((b'/', StatusState::Skip)),
                StatusState::Skip => match ch {
                    b'\r' => {
                        state = StatusState::AlmostDone;
                        continue;
                    }
                    b'\n' => return Ok(true),
                    _ => continue,
                },
                StatusState::AlmostDone => {
                    return if ch == b'\n' {
                        Ok(true)
                    } else {
                        Err(AuthHttpError::InvalidResponse)
                    };
                }
            };
            if let Some((want, next)) = expected {
                if ch == want {
                    state = next;
                } else {
                    // No status line: the response is read as headers from
                    // its first byte.
                    self.pos = 0;
                    return Ok(true);
                }
            }
        }
        self.stage = Stage::StatusLine(state);
        Ok(false)
    }

    /// Parses one header line from `self.pos`; `Ok(None)` needs more bytes.
    fn header_line(&mut self) -> Result<Option<Line>, AuthHttpError<'static>> {
        let Stage::Headers(mut state) = self.stage else {
            return Ok(None);
        };
        let invalid = Err(AuthHttpError::InvalidHeader);
        while self.pos < self.len {
            let p = self.pos;
            let ch = self.buf[p];
            self.pos += 1;
            let lower = ch | 0x20;
            let name_char = lower.is_ascii_lowercase() || ch.is_ascii_digit();
            match state {
                HeaderState::Start => match ch {
                    b'\r' => state = HeaderState::HeadAlmostDone,
                    b'\n' => return self.line_done(Line::EndOfHead),
                    _ if name_char => {
                        self.name.start = p;
                        state = HeaderState::Name;
                    }
                    _ => return invalid,
                },
                HeaderState::Name => match ch {
                    _ if name_char || ch == b'-' => {}
                    b':' => {
                        self.name.end = p;
                        state = HeaderState::SpaceBeforeValue;
                    }
                    b'\r' | b'\n' => {
                        self.name.end = p;
                        self.value = Range { start: p, end: p };
                        if ch == b'\n' {
                            return self.line_done(Line::Header);
                        }
                        state = HeaderState::AlmostDone;
                    }
                    _ => return invalid,
                },
                HeaderState::SpaceBeforeValue => match ch {
                    b' ' => {}
                    b'\r' | b'\n' => {
                        self.value = Range { start: p, end: p };
                        if ch == b'\n' {
                            return self.line_done(Line::Header);
                        }
                        state = HeaderState::AlmostDone;
                    }
                    _ => {
                        self.value.start = p;
                        state = HeaderState::Value;
                    }
                },
                HeaderState::Value => match ch {
                    b' ' => {
                        self.value.end = p;
                        state = HeaderState::SpaceAfterValue;
                    }
                    b'\r' => {
                        self.value.end = p;
                        state = HeaderState::AlmostDone;
                    }
                    b'\n' => {
                        self.value.end = p;
                        return self.line_done(Line::Header);
                    }
                    _ => {}
                },
                HeaderState::SpaceAfterValue => match ch {
                    b' ' => {}
                    b'\r' => state = HeaderState::AlmostDone,
                    b'\n' => return self.line_done(Line::Header),
                    _ => state = HeaderState::Value,
                },
                HeaderState::AlmostDone => match ch {
                    b'\n' => return self.line_done(Line::Header),
                    _ => return invalid,
                },
                HeaderState::HeadAlmostDone => match ch {
                    b'\n' => return self.line_done(Line::EndOfHead),
                    _ => return invalid,
                },
            }
        }
        self.stage = Stage::Headers(state);
        Ok(None)
    }

    fn line_done(&mut self, line: Line) -> Result<Option<Line>, AuthHttpError<'static>> {
        self.stage = Stage::Headers(HeaderState::Start);
        Ok(Some(line))
    }

    /// Records the header just parsed if it is one auth_http may send.
    fn take_header(&mut self) {
        let value = self.value;
        let name = self.bytes(self.name);
        let Some(field) = FIELDS
            .iter()
            .find(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
            .map(|&(_, f)| f)
        else {
            return;
        };
        match field {
            Field::Status => match self.bytes(value) {
                b"OK" => {}
                b"WAIT" => self.wait = true,
                _ => self.error_text = Some(value),
            },
            Field::Server => self.server = value,
            Field::Port => self.port = value,
            Field::User => self.user = Some(value),
            Field::Pass => self.pass = Some(value),
            Field::Wait => {
                if let Some(secs) = addr::atoi(self.bytes(value)) {
                    self.wait_secs = secs;
                }
            }
            Field::ErrorCode => self.error_code = value,
        }
    }
}

/// The response headers auth_http may send.
#[derive(Debug, Clone, Copy)]
enum Field {
    Status,
    Server,
    Port,
    User,
    Pass,
    Wait,
    ErrorCode,
}

const FIELDS: [(&str, Field); 7] = [
    ("Auth-Status", Field::Status),
    ("Auth-Server", Field::Server),
    ("Auth-Port", Field::Port),
    ("Auth-User", Field::User),
    ("Auth-Pass", Field::Pass),
    ("Auth-Wait", Field::Wait),
    ("Auth-Error-Code", Field::ErrorCode),
];

fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}
