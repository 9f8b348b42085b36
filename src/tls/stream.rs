//! A non-blocking server-side TLS stream over any byte stream (a mio
//! socket in the worker), implementing [`crate::event::Io`].
//!
//! Every call does what it can and returns; when OpenSSL needs the socket
//! to become readable or writable first, the call reports it
//! (`WouldBlock`, `Handshake::WantRead`/`WantWrite`) and [`TlsStream::blocked_on`]
//! says which, so the session registers that interest and waits: there is
//! no retry loop anywhere.
//!
//! With read-ahead, OpenSSL may hold decrypted data that no socket event
//! will announce: callers keep reading until `WouldBlock`, as every `Io`
//! user does.

use super::context::ServerTls;
use super::{ffi, ssl_error};
use crate::conf::sys::errno_suffix;
use crate::conf::{Level, VerifyClient};
use crate::event::{Io, IoStatus, Stream};
use mio::event::Source;
use mio::{Interest, Registry, Token};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::ssl::{ErrorCode, ShutdownResult, ShutdownState, Ssl, SslRef, SslStream};
use openssl::x509::X509VerifyResult;
use std::io::{self, Read, Write};

/// How long a closing connection waits for the peer's close_notify (as
/// nginx).
pub const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// What a blocked call waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Read,
    Write,
}

/// An error worth logging, with nginx's level and text (the session adds
/// its `, client: ...` context).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    pub level: Level,
    pub text: String,
}

/// The result of one handshake step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    Done,
    WantRead,
    WantWrite,
    Failed(TlsError),
}

/// The result of one shutdown step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shutdown {
    /// Finished (or abandoned after an error): the socket can be closed.
    Done,
    WantRead,
    WantWrite,
}

/// The verdict on the client certificate once the handshake is done
/// (nginx's ngx_mail_verify_cert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertCheck {
    Ok,
    /// Verification failed: send the protocol's certificate error reply
    /// and close. The text is logged at info.
    Invalid(String),
    /// `ssl_verify_client on` and no certificate: send the protocol's "no
    /// certificate" reply and close. The text is logged at info.
    Missing(String),
}

impl CertCheck {
    /// The reply that closes the session when the certificate is refused
    /// (nginx's per-protocol `cert_error` and `no_cert`); `None` for `Ok`.
    pub fn reply(&self, protocol: crate::conf::Protocol) -> Option<&'static [u8]> {
        use crate::conf::Protocol::{Imap, Pop3, Smtp};
        Some(match (self, protocol) {
            (CertCheck::Ok, _) => return None,
            (CertCheck::Invalid(_), Imap) => b"* BYE SSL certificate error\r\n",
            (CertCheck::Missing(_), Imap) => b"* BYE No required SSL certificate\r\n",
            (CertCheck::Invalid(_), Pop3) => b"-ERR SSL certificate error\r\n",
            (CertCheck::Missing(_), Pop3) => b"-ERR No required SSL certificate\r\n",
            (CertCheck::Invalid(_), Smtp) => b"421 4.7.1 SSL certificate error\r\n",
            (CertCheck::Missing(_), Smtp) => b"421 4.7.1 No required SSL certificate\r\n",
        })
    }
}

/// The connection facts auth_http reports (`Auth-SSL-*`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsFacts {
    /// `TLSv1.3` ...
    pub protocol: String,
    /// `TLS_AES_256_GCM_SHA384` ...
    pub cipher: String,
    /// `SUCCESS`, `FAILED:<reason>` or `NONE`.
    pub verify: String,
    /// RFC 2253 subject and issuer of the client certificate.
    pub subject: String,
    pub issuer: String,
    /// Upper-case hex serial number.
    pub serial: String,
    /// Lower-case hex SHA-1 of the certificate.
    pub fingerprint: String,
    /// The certificate as PEM (for `auth_http_pass_client_cert`).
    pub cert_pem: String,
}

/// A server-side TLS connection.
pub struct TlsStream<S> {
    inner: SslStream<S>,
    handshaked: bool,
    blocked: Option<Want>,
    /// The connection failed or timed out: shut down without close_notify.
    broken: bool,
    last_error: Option<TlsError>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for TlsStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("stream", self.inner.get_ref())
            .field("handshaked", &self.handshaked)
            .field("blocked", &self.blocked)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Start a server-side TLS connection over `stream`; drive it with
    /// [`TlsStream::handshake`].
    pub fn accept<S: Read + Write>(&self, stream: S) -> Result<TlsStream<S>, TlsError> {
        let alert = |e: ErrorStack| TlsError {
            level: Level::Alert,
            text: ssl_error("SSL_new() failed", &e),
        };
        let mut ssl = Ssl::new(self.context()).map_err(alert)?;
        ssl.set_accept_state();
        let inner = SslStream::new(ssl, stream).map_err(alert)?;
        Ok(TlsStream {
            inner,
            handshaked: false,
            blocked: None,
            broken: false,
            last_error: None,
        })
    }
}

/// nginx's choice of level for a failed TLS call on a mail connection:
/// network errors and client-side protocol errors are `info`, the rest
/// `crit`.
fn error_level(e: &openssl::ssl::Error) -> Level {
    match e.code() {
        ErrorCode::SYSCALL => match e.io_error().and_then(|io| io.raw_os_error()) {
            Some(
                libc::ECONNRESET
                | libc::EPIPE
                | libc::ENOTCONN
                | libc::ETIMEDOUT
                | libc::ECONNREFUSED
                | libc::ENETDOWN
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::EHOSTUNREACH,
            ) => Level::Info,
            _ => Level::Crit,
        },
        ErrorCode::SSL => {
            let reason = e
                .ssl_error()
                .and_then(|s| s.errors().last())
                .map(|x| x.reason_code())
                .unwrap_or(0);
            if CLIENT_REASONS.contains(&reason) || (1000..=1255).contains(&reason) {
                Level::Info
            } else {
                Level::Crit
            }
        }
        _ => Level::Crit,
    }
}

/// OpenSSL 3.0 reason codes nginx treats as the client's fault.
const CLIENT_REASONS: &[i32] = &[
    101, 103, 108, 110, 111, 112, 115, 118, 122, 129, 133, 137, 145, 146, 149, 150, 151, 152, 154,
    155, 156, 159, 160, 182, 183, 186, 187, 193, 198, 205, 213, 220, 226, 227, 234, 235, 244, 245,
    246, 252, 253, 256, 258, 266, 267, 270, 271, 281, 291, 292, 293, 298, 300, 306, 313, 335, 336,
    337, 338, 339, 345, 373, 376, 377, 396, 409, 443,
];

fn errno_of(e: &openssl::ssl::Error) -> i32 {
    e.io_error().and_then(|io| io.raw_os_error()).unwrap_or(0)
}

fn failure(e: &openssl::ssl::Error, what: &str) -> TlsError {
    let text = match e.ssl_error() {
        Some(stack) => ssl_error(what, stack),
        None => what.to_string(),
    };
    TlsError {
        level: error_level(e),
        text: format!("{text}{}", errno_suffix(errno_of(e))),
    }
}

fn is_eof(e: &openssl::ssl::Error) -> bool {
    e.code() == ErrorCode::ZERO_RETURN
        || (e.code() == ErrorCode::SYSCALL && e.ssl_error().is_none())
}

impl<S: Read + Write> TlsStream<S> {
    /// One handshake step.
    pub fn handshake(&mut self) -> Handshake {
        match self.inner.do_handshake() {
            Ok(()) => {
                self.handshaked = true;
                self.blocked = None;
                Handshake::Done
            }
            Err(e) if e.code() == ErrorCode::WANT_READ => {
                self.blocked = Some(Want::Read);
                Handshake::WantRead
            }
            Err(e) if e.code() == ErrorCode::WANT_WRITE => {
                self.blocked = Some(Want::Write);
                Handshake::WantWrite
            }
            Err(e) => {
                self.broken = true;
                if is_eof(&e) {
                    let level = match errno_of(&e) {
                        0
                        | libc::ECONNRESET
                        | libc::EPIPE
                        | libc::ENOTCONN
                        | libc::ETIMEDOUT
                        | libc::ECONNREFUSED
                        | libc::ENETDOWN
                        | libc::ENETUNREACH
                        | libc::EHOSTDOWN
                        | libc::EHOSTUNREACH => Level::Info,
                        _ => Level::Alert,
                    };
                    return Handshake::Failed(TlsError {
                        level,
                        text: format!(
                            "peer closed connection in SSL handshake{}",
                            errno_suffix(errno_of(&e))
                        ),
                    });
                }
                Handshake::Failed(failure(&e, "SSL_do_handshake() failed"))
            }
        }
    }

    /// Whether bytes already taken from the socket wait to be read: after
    /// the handshake (a client may send its first command together with
    /// its last handshake message) and after a read that filled the
    /// buffer, no socket event will announce them. Reading until
    /// `WouldBlock` never misses them; this tells a caller that stopped
    /// early.
    pub fn has_pending(&self) -> bool {
        ffi::has_pending(self.inner.ssl())
    }

    pub fn is_handshaked(&self) -> bool {
        self.handshaked
    }

    /// What the last blocked call waits for (`None` after a call that did
    /// not block).
    pub fn blocked_on(&self) -> Option<Want> {
        self.blocked
    }

    /// The error behind the last `Err` from `read`/`write`, worded and
    /// levelled as nginx logs it.
    pub fn take_error(&mut self) -> Option<TlsError> {
        self.last_error.take()
    }

    /// Mark the connection as failed (timeout, error): shutdown then sends
    /// no close_notify and waits for none.
    pub fn set_broken(&mut self) {
        self.broken = true;
    }

    /// One shutdown step (nginx's ngx_ssl_shutdown): after a completed
    /// handshake, send close_notify and wait for the peer's. While this
    /// returns `WantRead`/`WantWrite` the caller waits for the socket, at
    /// most [`SHUTDOWN_TIMEOUT`]; on timeout it calls [`set_broken`] and
    /// this once more, which then finishes at once.
    ///
    /// [`set_broken`]: TlsStream::set_broken
    pub fn shutdown(&mut self) -> Shutdown {
        if !self.handshaked {
            return Shutdown::Done;
        }
        if self.broken {
            // An error or a timeout: no close_notify either way.
            ffi::set_quiet_shutdown(self.inner.ssl());
            self.inner
                .set_shutdown(ShutdownState::SENT | ShutdownState::RECEIVED);
            return Shutdown::Done;
        }
        // The first call sends close_notify, a second one waits for the
        // peer's.
        for _ in 0..2 {
            match self.inner.shutdown() {
                Ok(ShutdownResult::Received) => return Shutdown::Done,
                Ok(ShutdownResult::Sent) => continue,
                Err(e) if e.code() == ErrorCode::WANT_READ => {
                    self.blocked = Some(Want::Read);
                    return Shutdown::WantRead;
                }
                Err(e) if e.code() == ErrorCode::WANT_WRITE => {
                    self.blocked = Some(Want::Write);
                    return Shutdown::WantWrite;
                }
                Err(e) => {
                    if !is_eof(&e) {
                        self.last_error = Some(failure(&e, "SSL_shutdown() failed"));
                    }
                    return Shutdown::Done;
                }
            }
        }
        Shutdown::Done
    }

    pub fn get_ref(&self) -> &S {
        self.inner.get_ref()
    }

    pub fn get_mut(&mut self) -> &mut S {
        self.inner.get_mut()
    }

    pub fn ssl(&self) -> &SslRef {
        self.inner.ssl()
    }

    /// The session was resumed (from a cache or a ticket).
    pub fn session_reused(&self) -> bool {
        self.inner.ssl().session_reused()
    }

    /// The ALPN protocol agreed on, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.inner.ssl().selected_alpn_protocol()
    }

    /// nginx's check of the client certificate after the handshake.
    pub fn check_client_cert(&self, verify: VerifyClient) -> CertCheck {
        let ssl = self.inner.ssl();
        if verify == VerifyClient::Off {
            return CertCheck::Ok;
        }
        let rc = ssl.verify_result();
        if rc != X509VerifyResult::OK
            && (verify != VerifyClient::OptionalNoCa || !optional_error(rc.as_raw()))
        {
            ffi::remove_session(ssl);
            return CertCheck::Invalid(format!(
                "client SSL certificate verify error: ({}:{})",
                rc.as_raw(),
                rc.error_string()
            ));
        }
        if verify == VerifyClient::On && ssl.peer_certificate().is_none() {
            ffi::remove_session(ssl);
            return CertCheck::Missing("client sent no required SSL certificate".to_string());
        }
        CertCheck::Ok
    }

    /// Protocol and cipher always; certificate details when `verify` is not
    /// off (as nginx's auth_http request), the PEM when `with_cert`.
    pub fn facts(&self, verify: VerifyClient, with_cert: bool) -> TlsFacts {
        let ssl = self.inner.ssl();
        let mut f = TlsFacts {
            protocol: ssl.version_str().to_string(),
            cipher: ssl
                .current_cipher()
                .map(|c| c.name().to_string())
                .unwrap_or_default(),
            ..TlsFacts::default()
        };
        if verify == VerifyClient::Off {
            return f;
        }
        let Some(cert) = ssl.peer_certificate() else {
            f.verify = "NONE".to_string();
            return f;
        };
        let rc = ssl.verify_result();
        f.verify = if rc == X509VerifyResult::OK {
            "SUCCESS".to_string()
        } else {
            format!("FAILED:{}", rc.error_string())
        };
        f.subject = ffi::name_rfc2253(cert.subject_name());
        f.issuer = ffi::name_rfc2253(cert.issuer_name());
        f.serial = ffi::serial_hex(&cert);
        f.fingerprint = cert
            .digest(MessageDigest::sha1())
            .map(|d| d.iter().map(|b| format!("{b:02x}")).collect())
            .unwrap_or_default();
        if with_cert {
            f.cert_pem = cert
                .to_pem()
                .map(|p| String::from_utf8_lossy(&p).into_owned())
                .unwrap_or_default();
        }
        f
    }
}

/// The verification errors `optional_no_ca` accepts (an unknown or
/// self-signed issuer).
fn optional_error(rc: i32) -> bool {
    matches!(rc, 18 | 19 | 20 | 27 | 21)
}

impl<S: Read + Write> Io for TlsStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<IoStatus> {
        if buf.is_empty() {
            return Ok(IoStatus::WouldBlock);
        }
        match self.inner.ssl_read(buf) {
            Ok(0) => Ok(IoStatus::Closed),
            Ok(n) => {
                self.blocked = None;
                Ok(IoStatus::Done(n))
            }
            Err(e) if e.code() == ErrorCode::WANT_READ => {
                self.blocked = Some(Want::Read);
                Ok(IoStatus::WouldBlock)
            }
            Err(e) if e.code() == ErrorCode::WANT_WRITE => {
                self.blocked = Some(Want::Write);
                Ok(IoStatus::WouldBlock)
            }
            Err(e) if is_eof(&e) => Ok(IoStatus::Closed),
            Err(e) => {
                self.broken = true;
                let err = failure(&e, "SSL_read() failed");
                let io = io::Error::other(err.text.clone());
                self.last_error = Some(err);
                Err(io)
            }
        }
    }

    /// After `WouldBlock`, call again with the same bytes (the buffer may
    /// have moved) once the socket is ready as [`TlsStream::blocked_on`]
    /// says.
    fn write(&mut self, buf: &[u8]) -> io::Result<IoStatus> {
        if buf.is_empty() {
            return Ok(IoStatus::WouldBlock);
        }
        match self.inner.ssl_write(buf) {
            Ok(n) => {
                self.blocked = None;
                Ok(IoStatus::Done(n))
            }
            Err(e) if e.code() == ErrorCode::WANT_WRITE => {
                self.blocked = Some(Want::Write);
                Ok(IoStatus::WouldBlock)
            }
            Err(e) if e.code() == ErrorCode::WANT_READ => {
                self.blocked = Some(Want::Read);
                Ok(IoStatus::WouldBlock)
            }
            Err(e) => {
                self.broken = true;
                let err = failure(&e, "SSL_write() failed");
                let io = io::Error::other(err.text.clone());
                self.last_error = Some(err);
                Err(io)
            }
        }
    }
}

/// An accepted socket as a TLS stream reads and writes it: the worker
/// wraps `event::Stream` in this and hands it to [`ServerTls::accept`].
#[derive(Debug)]
pub struct Socket {
    stream: Stream,
    /// Records written now are followed at once by more (`MSG_MORE`).
    more: bool,
}

impl Socket {
    pub fn new(stream: Stream) -> Socket {
        Socket {
            stream,
            more: false,
        }
    }

    /// Write the next records with `MSG_MORE` (see [`Io::write_more`]).
    pub fn set_more(&mut self, more: bool) {
        self.more = more;
    }

    /// The local address of the TCP connection.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.stream.local_addr()
    }

    /// Send what writes with `MSG_MORE` held back.
    pub fn push(&self) -> io::Result<()> {
        match &self.stream {
            Stream::Tcp(s) => crate::event::push_tcp(s),
            Stream::Unix(_) => Ok(()),
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.stream {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.stream {
            Stream::Tcp(s) if self.more => crate::event::send_more(s, buf),
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Socket {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.stream.register(r, t, i)
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.stream.reregister(r, t, i)
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        self.stream.deregister(r)
    }
}

/// A TLS stream registers its socket.
impl<S: Source + Read + Write> Source for TlsStream<S> {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.get_mut().register(r, t, i)
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.get_mut().reregister(r, t, i)
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        self.get_mut().deregister(r)
    }
}

impl Want {
    /// The interest to register to wait for this.
    pub fn interest(self) -> Interest {
        match self {
            Want::Read => Interest::READABLE,
            Want::Write => Interest::WRITABLE,
        }
    }
}
