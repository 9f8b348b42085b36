//! One mail session over the event loop: the only mail file that touches
//! sockets. A [`Session`] owns the client stream and a [`Stage`] enum;
//! each stage owns its own data and the session moves from one to the
//! next by value:
//!
//! `ProxyProtocol` (on `listen … proxy_protocol`: the header, then
//! `set_real_ip_from`) → `Resolving` (SMTP with `resolver`: the client's
//! host name, before the greeting) → `Commands` (greeting and the
//! protocol's front end; `SmtpDelay` first with `smtp_greeting_delay`) →
//! `AuthHttp` (→ `AuthSleep` on Auth-Wait) → `Backend` (connect and log
//! in) → `Relay` → closed.
//!
//! Sources registered with the loop: 0 the client, 1 auth_http, 2 the
//! backend, 3 the resolver's sockets (all on one index). `timeout` bounds
//! everything before proxying (the PROXY header and the backend login
//! included), `resolver_timeout` each step of the host name lookup,
//! `auth_http_timeout` the auth_http exchange, `proxy_timeout` the relay
//! (re-armed by client activity, as nginx does).
//!
//! After realip the client address is the header's everywhere: the log
//! context (`client:`), Client-IP, the resolver, XCLIENT ADDR and the
//! PROXY header to the backend; the `connected` line, written at accept,
//! keeps the peer's. As in nginx, no mail session counts as idle on a
//! graceful shutdown: each one finishes or is closed by
//! `worker_shutdown_timeout`.
//!
//! Replies to the client are written in one piece with TCP_NODELAY on; a
//! reply the socket cannot take at once is kept and flushed when the
//! socket becomes writable, and the next command is only handled then.

use super::auth_http::{
    self, AuthHttpResponse, AuthRequest, Outcome as AuthOutcome, Progress, ProxyProtocolAddrs,
    SslInfo,
};
use super::bufpool::{self, PoolBuf};
use super::caps::Replies;
use super::front::{internal_server_error, AuthMethod, FrontConf, Notes, Shared, Step};
use super::imap::Imap;
use super::pop3::Pop3;
use super::proxy_protocol::{self, Endpoint, Parse, ProxyHeader, WriteError};
use super::realip;
use super::relay::{Outcome as RelayOutcome, Pipe, Relay, Side};
use super::resolver::{HostLookup, Outcome as HostOutcome, SharedCache};
use super::smtp::{self, Smtp};
use super::upstream::{Login, LoginConf, LoginError, LoginStep};
use crate::conf::{AuthHttpPeer, Level, Protocol, ProxyProtocolVersion, ServerConf, StartTls};
use crate::event::{Ctx, Handler, Io, IoStatus, Next, Peer, Readiness, Stream, TimerId};
use crate::logging::{Extra, Log};
use crate::tls::{
    CertCheck, Handshake, ServerTls, Shutdown, Socket, TlsError, TlsStream, Want, SHUTDOWN_TIMEOUT,
};
use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SRC_CLIENT: usize = 0;
const SRC_AUTH: usize = 1;
const SRC_BACKEND: usize = 2;
const SRC_RESOLVER: usize = 3;

/// Everything a session needs from its server and listening socket,
/// shared by all sessions that came in on the same `listen`.
#[derive(Debug)]
pub struct ServerCtx {
    pub conf: ServerConf,
    pub front: FrontConf,
    pub log: Arc<Log>,
    /// The `listen` address as nginx prints it (`server:` in logs).
    pub addr_text: String,
    /// The auth_http peer as logged.
    pub auth_peer: String,
    /// `listen … proxy_protocol`: a PROXY protocol header comes first.
    pub proxy_protocol: bool,
    /// The server's TLS context (for `listen … ssl`, `ssl on` or
    /// `starttls`).
    pub tls: Option<ServerTls>,
    /// `listen … ssl` or `ssl on`: the session starts with a handshake.
    pub implicit_tls: bool,
    /// The worker's cache of host lookups for the server's `resolver`
    /// (servers with the same resolver may share one: see
    /// [`ServerCtx::share_host_cache`]).
    pub host_cache: Option<SharedCache>,
}

impl ServerCtx {
    pub fn new(conf: &ServerConf, log: Arc<Log>, addr_text: &str) -> ServerCtx {
        let auth = match conf.protocol {
            Protocol::Imap => conf.imap.auth,
            Protocol::Pop3 => conf.pop3.auth,
            Protocol::Smtp => conf.smtp.auth,
        };
        ServerCtx {
            front: FrontConf {
                replies: Arc::new(Replies::new(conf)),
                server_name: conf.server_name.clone(),
                max_errors: conf.max_errors,
                // Until a TLS context is set (`set_tls`), STARTTLS / STLS
                // are answered as nginx does without TLS.
                starttls: StartTls::Off,
                auth,
                smtp_greeting_delay: !conf.smtp.greeting_delay.is_zero(),
            },
            auth_peer: auth_http::peer_name(&conf.auth_http),
            conf: conf.clone(),
            log,
            addr_text: addr_text.to_string(),
            proxy_protocol: false,
            tls: None,
            implicit_tls: false,
            host_cache: conf.resolver.as_ref().map(super::resolver::new_cache),
        }
    }

    /// Use the cache of `other` when both servers have the same resolver.
    pub fn share_host_cache(&mut self, other: &ServerCtx) {
        if self.conf.resolver.is_some() && self.conf.resolver == other.conf.resolver {
            self.host_cache.clone_from(&other.host_cache);
        }
    }

    /// Serve TLS with `tls`: implicit TLS when `implicit` (`listen … ssl`
    /// or `ssl on`), and STARTTLS / STLS as the server's `starttls` says.
    pub fn set_tls(&mut self, tls: ServerTls, implicit: bool) {
        self.front.starttls = self.conf.ssl.starttls;
        self.implicit_tls = implicit || self.conf.ssl.ssl_on;
        self.tls = Some(tls);
    }
}

/// The client's byte stream: plain, or TLS over the same socket (the
/// socket keeps its registration when TLS starts).
#[derive(Debug)]
pub enum ClientStream {
    Plain(Stream),
    Tls(Box<TlsClient>),
    /// Only while the plain stream moves into a TLS one.
    Detached,
}

/// A TLS client stream and what its last blocked read and write wait for:
/// with TLS a read may need the socket writable and a write readable.
#[derive(Debug)]
pub struct TlsClient {
    stream: TlsStream<Socket>,
    read_wants: Want,
    write_wants: Want,
}

impl TlsClient {
    fn write(&mut self, buf: &[u8]) -> io::Result<IoStatus> {
        let r = self.stream.write(buf);
        self.write_wants = match r {
            Ok(IoStatus::WouldBlock) => self.stream.blocked_on().unwrap_or(Want::Write),
            _ => Want::Write,
        };
        r
    }
}

fn detached() -> io::Error {
    io::Error::from_raw_os_error(libc::EBADF)
}

impl ClientStream {
    /// The local address of the client's TCP connection.
    fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            ClientStream::Plain(s) => s.local_addr(),
            ClientStream::Tls(t) => t.stream.get_ref().local_addr(),
            ClientStream::Detached => None,
        }
    }

    /// Look at the waiting bytes without taking them (the PROXY header).
    fn peek(&self, buf: &mut [u8]) -> io::Result<IoStatus> {
        match self {
            ClientStream::Plain(s) => s.peek(buf),
            ClientStream::Tls(_) | ClientStream::Detached => Err(detached()),
        }
    }

    fn tls(&self) -> Option<&TlsStream<Socket>> {
        match self {
            ClientStream::Tls(t) => Some(&t.stream),
            _ => None,
        }
    }

    fn tls_mut(&mut self) -> Option<&mut TlsStream<Socket>> {
        match self {
            ClientStream::Tls(t) => Some(&mut t.stream),
            _ => None,
        }
    }

    /// What a read waits for once it would block.
    fn read_wants(&self) -> Want {
        match self {
            ClientStream::Tls(t) => t.read_wants,
            _ => Want::Read,
        }
    }

    /// What a write waits for once it would block.
    fn write_wants(&self) -> Want {
        match self {
            ClientStream::Tls(t) => t.write_wants,
            _ => Want::Write,
        }
    }

    /// Socket readiness (`readable`, `writable`) as the reads and writes
    /// of this stream see it: a TLS read blocked on writing is woken by
    /// writability, and the other way round.
    fn progress(&self, readable: bool, writable: bool) -> (bool, bool) {
        let ready = |w: Want| match w {
            Want::Read => readable,
            Want::Write => writable,
        };
        (ready(self.read_wants()), ready(self.write_wants()))
    }

    /// The error behind the last failed TLS read or write, as nginx words
    /// and levels it.
    fn take_tls_error(&mut self) -> Option<TlsError> {
        self.tls_mut().and_then(TlsStream::take_error)
    }
}

impl Io for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<IoStatus> {
        match self {
            ClientStream::Plain(s) => s.read(buf),
            ClientStream::Tls(t) => {
                let r = t.stream.read(buf);
                t.read_wants = match r {
                    Ok(IoStatus::WouldBlock) => t.stream.blocked_on().unwrap_or(Want::Read),
                    _ => Want::Read,
                };
                r
            }
            ClientStream::Detached => Err(detached()),
        }
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<IoStatus> {
        match self {
            ClientStream::Plain(s) => s.write(buf),
            ClientStream::Tls(t) => t.write(buf),
            ClientStream::Detached => Err(detached()),
        }
    }
    fn write_more(&mut self, buf: &[u8]) -> io::Result<IoStatus> {
        match self {
            ClientStream::Plain(s) => s.write_more(buf),
            ClientStream::Tls(t) => {
                // The record OpenSSL writes for these bytes may wait for
                // the next one in a partly filled segment.
                t.stream.get_mut().set_more(true);
                let r = t.write(buf);
                t.stream.get_mut().set_more(false);
                r
            }
            ClientStream::Detached => Err(detached()),
        }
    }
    fn push(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.push(),
            ClientStream::Tls(t) => t.stream.get_ref().push(),
            ClientStream::Detached => Err(detached()),
        }
    }
}

impl Source for ClientStream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.register(r, t, i),
            ClientStream::Tls(s) => s.stream.register(r, t, i),
            ClientStream::Detached => Err(detached()),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.reregister(r, t, i),
            ClientStream::Tls(s) => s.stream.reregister(r, t, i),
            ClientStream::Detached => Err(detached()),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.deregister(r),
            ClientStream::Tls(s) => s.stream.deregister(r),
            ClientStream::Detached => Ok(()),
        }
    }
}

/// A TCP or UNIX-domain socket to auth_http.
#[derive(Debug)]
enum PeerSock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl PeerSock {
    fn io(&mut self) -> &mut dyn IoSource {
        match self {
            PeerSock::Tcp(s) => s,
            PeerSock::Unix(s) => s,
        }
    }
}

/// A socket the session reads and writes and registers.
trait IoSource: Source {
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<IoStatus>;
    fn write_some(&mut self, buf: &[u8]) -> io::Result<IoStatus>;
}

fn status(r: io::Result<usize>) -> io::Result<IoStatus> {
    match r {
        Ok(0) => Ok(IoStatus::Closed),
        Ok(n) => Ok(IoStatus::Done(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(IoStatus::WouldBlock),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(IoStatus::WouldBlock),
        Err(e) => Err(e),
    }
}

impl IoSource for TcpStream {
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<IoStatus> {
        status(io::Read::read(self, buf))
    }
    fn write_some(&mut self, buf: &[u8]) -> io::Result<IoStatus> {
        status(io::Write::write(self, buf))
    }
}

impl IoSource for UnixStream {
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<IoStatus> {
        status(io::Read::read(self, buf))
    }
    fn write_some(&mut self, buf: &[u8]) -> io::Result<IoStatus> {
        status(io::Write::write(self, buf))
    }
}

/// The backend socket as the relay sees it.
struct BackendIo<'a>(&'a mut TcpStream);

impl Io for BackendIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<IoStatus> {
        self.0.read_some(buf)
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<IoStatus> {
        self.0.write_some(buf)
    }
    fn write_more(&mut self, buf: &[u8]) -> io::Result<IoStatus> {
        status(crate::event::send_more(self.0, buf))
    }
    fn push(&mut self) -> io::Result<()> {
        crate::event::push_tcp(self.0)
    }
}

/// The protocol front end (boxed: the stages move it around, and it is
/// gone once the session relays).
#[derive(Debug)]
enum Front {
    Imap(Box<Imap>),
    Pop3(Box<Pop3>),
    Smtp(Box<Smtp>),
}

impl Front {
    fn input(&mut self) -> &mut super::front::ClientBuffer {
        match self {
            Front::Imap(f) => &mut f.input,
            Front::Pop3(f) => &mut f.input,
            Front::Smtp(f) => &mut f.input,
        }
    }
    fn step(
        &mut self,
        conf: &FrontConf,
        sh: &mut Shared,
        out: &mut Vec<u8>,
        notes: &mut dyn Notes,
    ) -> Step {
        match self {
            Front::Imap(f) => f.step(conf, sh, out, notes),
            Front::Pop3(f) => f.step(conf, sh, out, notes),
            Front::Smtp(f) => f.step(conf, sh, out, notes),
        }
    }
    /// The client buffer with the unparsed bytes in `pos..filled`, for the
    /// relay's client-to-backend direction.
    fn into_pipe(self) -> Pipe {
        let (input, pos) = match self {
            Front::Imap(f) => {
                let pos = f.pending_from();
                (f.input, pos)
            }
            Front::Pop3(f) => {
                let pos = f.pending_from();
                (f.input, pos)
            }
            Front::Smtp(f) => {
                let pos = f.pending_from();
                (f.input, pos)
            }
        };
        let filled = input.filled;
        Pipe::new(input.buf, pos.min(filled), filled)
    }
}

/// Reading the PROXY protocol header: each readiness peeks at what has
/// arrived (up to nginx's 4096 bytes) and judges it whole; only the header
/// is taken from the socket, the rest is the protocol's. Every peek sees
/// all that has arrived, so the buffer goes back to the pool in between.
struct ProxyProtocolStage {
    front: Front,
    buf: PoolBuf,
}

/// The addresses of a PROXY protocol header, for auth_http's
/// `Proxy-Protocol-*` headers (nginx's `c->proxy_protocol`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProxyInfo {
    src_addr: Vec<u8>,
    src_port: u16,
    dst_addr: Vec<u8>,
    dst_port: u16,
}

impl ProxyInfo {
    fn new(h: &ProxyHeader<'_>) -> ProxyInfo {
        let text = |a: &proxy_protocol::Address<'_>| {
            let mut v = Vec::new();
            // Writing into a Vec cannot fail.
            let _ = a.write_text(&mut v);
            v
        };
        ProxyInfo {
            src_addr: text(&h.src_addr),
            src_port: h.src_port,
            dst_addr: text(&h.dst_addr),
            dst_port: h.dst_port,
        }
    }
}

/// The client's host name lookup before the SMTP greeting.
struct ResolveStage {
    front: Front,
    lookup: HostLookup,
}

struct AuthStage {
    front: Front,
    sock: PeerSock,
    request: Vec<u8>,
    written: usize,
    response: AuthHttpResponse,
}

/// What happens when an Auth-Wait delay is over.
enum AfterSleep {
    /// `Auth-Status: WAIT`: ask auth_http again.
    Reask,
    /// An error with Auth-Wait: send it and let the client retry.
    Reply(Vec<u8>),
}

struct BackendStage {
    front: Front,
    sock: TcpStream,
    login: Login,
    /// The backend-to-client buffer (`proxy_buffer`).
    buf: PoolBuf,
    filled: usize,
    /// PROXY protocol header still to send.
    header: Option<Vec<u8>>,
    readable: bool,
    writable: bool,
}

struct RelayStage {
    sock: TcpStream,
    relay: Relay,
}

/// A TLS handshake: implicit TLS before the greeting, or after STARTTLS /
/// STLS (then the protocol goes on without a greeting).
struct HandshakeStage {
    front: Front,
    starttls: bool,
}

enum Stage {
    ProxyProtocol(Box<ProxyProtocolStage>),
    /// The STARTTLS / STLS reply is being sent; the handshake follows.
    StartTls(Front),
    Handshake(Box<HandshakeStage>),
    Resolving(Box<ResolveStage>),
    /// `smtp_greeting_delay`: any input now is a pipelining violation.
    SmtpDelay(Front),
    Commands(Front),
    AuthHttp(Box<AuthStage>),
    AuthSleep(Front, AfterSleep),
    Backend(Box<BackendStage>),
    Relay(Box<RelayStage>),
    /// Sending TLS close_notify and waiting for the client's.
    ShuttingDown,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// `timeout` (client before proxying, and the backend login).
    Client,
    GreetingDelay,
    AuthHttp,
    AuthSleep,
    Backend,
    Proxy,
    /// The lookup's next deadline (a resend or `resolver_timeout`).
    Resolver,
    /// The TLS shutdown (`SHUTDOWN_TIMEOUT`).
    Shutdown,
}

impl Timer {
    fn tag(self) -> u32 {
        self as u32
    }
    fn from_tag(tag: u32) -> Option<Timer> {
        [
            Timer::Client,
            Timer::GreetingDelay,
            Timer::AuthHttp,
            Timer::AuthSleep,
            Timer::Backend,
            Timer::Proxy,
            Timer::Resolver,
            Timer::Shutdown,
        ]
        .into_iter()
        .find(|t| t.tag() == tag)
    }
}

pub struct Session {
    srv: Arc<ServerCtx>,
    number: u64,
    debug: bool,
    client: ClientStream,
    client_readable: bool,
    client_writable: bool,
    /// The client shut down its side (seen while reading the PROXY header).
    client_read_closed: bool,
    /// The client: the peer, or the PROXY header's source after realip.
    peer: Peer,
    /// The PROXY protocol header's addresses, when one came with them.
    proxy_info: Option<Box<ProxyInfo>>,
    /// The client address as logged and sent (`127.0.0.1`, `::1`, `unix:`).
    client_addr: String,
    client_ipv6: bool,
    /// Client host for Client-Host / XCLIENT NAME (SMTP): nginx's
    /// `s->host`, set when the session starts its protocol.
    client_host: Vec<u8>,
    /// The local socket address for a PROXY protocol header to the
    /// backend (the client's is `peer`), when the acceptor already asked
    /// for it.
    local_sock: Option<SocketAddr>,
    /// What the front end gathers for the login; boxed on the first
    /// command (or an APOP greeting) so that idle connections do not
    /// carry it.
    sh: Option<Box<Shared>>,
    login_attempt: u64,
    out: Vec<u8>,
    out_pos: usize,
    quit: bool,
    action: &'static str,
    upstream: Option<String>,
    timer: Option<(TimerId, Timer)>,
    stage: Stage,
}

/// The front end's gatherings, or an empty set before the first command.
fn shared(sh: &Option<Box<Shared>>) -> &Shared {
    static NONE: Shared = Shared::EMPTY;
    sh.as_deref().unwrap_or(&NONE)
}

/// Box the gatherings on first use; `client` says whether TLS is already
/// on (implicit TLS sets it before any command).
fn shared_mut<'a>(sh: &'a mut Option<Box<Shared>>, client: &ClientStream) -> &'a mut Shared {
    sh.get_or_insert_with(|| {
        #[cfg(test)]
        tests::SHARED_BOXED.with(|n| n.set(n.get() + 1));
        Box::new(Shared {
            tls_active: matches!(client, ClientStream::Tls(_)),
            ..Shared::default()
        })
    })
}

/// The `while …, client: …, server: …, login: "…", upstream: …` suffix.
struct Context<'a> {
    action: Option<&'a str>,
    client: &'a str,
    server: &'a str,
    login: &'a [u8],
    upstream: Option<&'a str>,
}

impl fmt::Display for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(a) = self.action {
            write!(f, " while {a}")?;
        }
        write!(f, ", client: {}, server: {}", self.client, self.server)?;
        if !self.login.is_empty() {
            write!(f, ", login: \"{}\"", String::from_utf8_lossy(self.login))?;
        }
        if let Some(u) = self.upstream {
            write!(f, ", upstream: {u}")?;
        }
        Ok(())
    }
}

/// Info lines from a front end, with the session's context.
struct SessionNotes<'a> {
    log: &'a Log,
    number: u64,
    debug: bool,
    ctx: Context<'a>,
}

impl Notes for SessionNotes<'_> {
    fn info(&mut self, msg: fmt::Arguments<'_>) {
        let extra = Extra {
            debug_forced: self.debug,
            err: None,
            context: Some(&self.ctx),
        };
        self.log
            .write_extra(Level::Info, Some(self.number), &extra, msg);
    }
    fn info_enabled(&self) -> bool {
        self.debug || self.log.enabled(Level::Info)
    }
}

fn timed_out() -> io::Error {
    io::Error::from_raw_os_error(libc::ETIMEDOUT)
}

/// nginx's level for a socket error of a connection whose errors are
/// logged at `base` (`info` for the client, `error` for peers).
fn error_level(err: &io::Error, base: Level) -> Level {
    match err.raw_os_error() {
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
        )
        | None => base,
        _ => Level::Alert,
    }
}

impl Session {
    /// A new session for an accepted connection; logs nothing (the
    /// acceptor logs the "connected" line) and starts with the PROXY
    /// protocol header or the protocol.
    pub fn start(
        srv: Arc<ServerCtx>,
        stream: Stream,
        peer: &Peer,
        local: Option<SocketAddr>,
        ctx: &mut Ctx<'_>,
    ) -> Option<Session> {
        if let Stream::Tcp(s) = &stream {
            let _ = s.set_nodelay(true);
        }
        let conf = &srv.conf;
        let front = match conf.protocol {
            Protocol::Imap => Front::Imap(Box::new(Imap::new(conf.imap.client_buffer))),
            Protocol::Pop3 => Front::Pop3(Box::default()),
            Protocol::Smtp => Front::Smtp(Box::new(Smtp::new(conf.smtp.client_buffer))),
        };
        let mut s = Session {
            number: ctx.number,
            debug: ctx.debug,
            client: ClientStream::Plain(stream),
            client_readable: true,
            client_writable: true,
            client_read_closed: false,
            peer: Peer::Unix,
            proxy_info: None,
            client_addr: String::new(),
            client_ipv6: false,
            client_host: Vec::new(),
            local_sock: local,
            sh: None,
            login_attempt: 0,
            out: Vec::new(),
            out_pos: 0,
            quit: false,
            action: "sending client greeting line",
            upstream: None,
            timer: None,
            stage: Stage::Closed,
            srv,
        };
        s.set_client(peer.clone());
        if let Err(e) = ctx.register_source(
            &mut s.client,
            SRC_CLIENT,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            s.log(Level::Alert, Some(&e), format_args!("epoll_ctl() failed"));
            return None;
        }
        if s.srv.proxy_protocol {
            s.action = "reading PROXY protocol";
            let t = s.srv.conf.timeout;
            s.set_timer(ctx, t, Timer::Client);
            s.stage = Stage::ProxyProtocol(Box::new(ProxyProtocolStage {
                front,
                buf: PoolBuf::new(proxy_protocol::MAX_HEADER),
            }));
        } else {
            s.stage = s.after_accept(ctx, front);
        }
        match s.drive(ctx) {
            Next::Continue => Some(s),
            Next::Close => None,
        }
    }

    /// The client is `peer` from now on (at accept, or by realip).
    fn set_client(&mut self, peer: Peer) {
        (self.client_addr, self.client_ipv6) = match &peer {
            Peer::Inet(a) => (a.ip().to_string(), a.is_ipv6()),
            Peer::Unix => ("unix:".to_string(), false),
        };
        self.peer = peer;
    }

    /// nginx's `init_session` of the protocol: SMTP looks up the client's
    /// name first when a resolver is configured; the others greet at once.
    fn init_session(&mut self, ctx: &mut Ctx<'_>, front: Front) -> Stage {
        self.action = "sending client greeting line";
        let srv = self.srv.clone();
        let conf = &srv.conf;
        if conf.protocol != Protocol::Smtp {
            return self.greeting(ctx, front);
        }
        let (resolver, cache, ip) = match (&conf.resolver, &srv.host_cache, &self.peer) {
            (None, _, _) | (_, None, _) => {
                self.client_host = smtp::HOST_UNAVAILABLE.to_vec();
                return self.greeting(ctx, front);
            }
            // A UNIX-domain client has no address to look up.
            (Some(_), Some(_), Peer::Unix) => {
                self.client_host = smtp::HOST_TEMPUNAVAIL.to_vec();
                return self.greeting(ctx, front);
            }
            (Some(r), Some(c), Peer::Inet(a)) => (r, c.clone(), a.ip()),
        };
        self.action = super::resolver::ACTION_ADDRESS;
        let now = Instant::now();
        let (lookup, outcome) =
            match HostLookup::start(resolver, cache, conf.resolver_timeout, ip, now) {
                Ok(started) => started,
                Err(e) => {
                    self.log(
                        Level::Alert,
                        None,
                        format_args!("could not start resolving: {e}"),
                    );
                    return Stage::Closed;
                }
            };
        self.resolver_step(ctx, Box::new(ResolveStage { front, lookup }), outcome)
    }

    /// After the lookup started or moved: write its log lines, then greet
    /// with the result, or watch its sockets and its next deadline.
    fn resolver_step(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut r: Box<ResolveStage>,
        outcome: Option<HostOutcome>,
    ) -> Stage {
        for line in r.lookup.take_log() {
            self.action = line.action;
            self.log(line.level, None, format_args!("{}", line.text));
        }
        self.action = r.lookup.action();
        if let Some(outcome) = outcome {
            self.cancel_timer(ctx);
            self.client_host = outcome.host_text().as_bytes().to_vec();
            // Dropping the lookup closes its sockets, which leaves epoll.
            let ResolveStage { front, lookup } = *r;
            drop(lookup);
            return self.greeting(ctx, front);
        }
        let registrar = (ctx.registry, ctx.source_token(SRC_RESOLVER));
        if let Err(e) = r.lookup.apply_interest(&registrar) {
            self.log(Level::Alert, Some(&e), format_args!("epoll_ctl() failed"));
            return Stage::Closed;
        }
        let now = Instant::now();
        if let Some(at) = r.lookup.next_deadline(now) {
            // Round up so the timer does not fire just before the deadline.
            let wait = at.saturating_duration_since(now) + Duration::from_millis(1);
            self.set_timer(ctx, wait, Timer::Resolver);
        }
        Stage::Resolving(r)
    }

    /// The greeting (or the SMTP greeting delay) and the client timeout.
    fn greeting(&mut self, ctx: &mut Ctx<'_>, front: Front) -> Stage {
        let srv = self.srv.clone();
        match front {
            Front::Smtp(f) if srv.front.smtp_greeting_delay => {
                self.set_timer(ctx, srv.conf.smtp.greeting_delay, Timer::GreetingDelay);
                self.action = "in delay pipelining state";
                Stage::SmtpDelay(Front::Smtp(f))
            }
            front => {
                self.greet(&front);
                self.set_timer(ctx, srv.conf.timeout, Timer::Client);
                Stage::Commands(front)
            }
        }
    }

    /// Peek at the PROXY protocol header; once it is whole, take it off the
    /// socket, apply realip and start the protocol.
    fn proxy_protocol(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut pp: Box<ProxyProtocolStage>,
    ) -> (Stage, bool) {
        if !self.client_readable && !self.client_read_closed {
            return (Stage::ProxyProtocol(pp), false);
        }
        let n = match self.client.peek(pp.buf.get()) {
            Ok(IoStatus::Done(n)) => n,
            Ok(IoStatus::Closed) => 0,
            Ok(IoStatus::WouldBlock) => {
                self.client_readable = false;
                if !self.client_read_closed {
                    return (Stage::ProxyProtocol(pp), false);
                }
                0
            }
            Err(e) => {
                let level = error_level(&e, Level::Info);
                self.log(level, Some(&e), format_args!("recv() failed"));
                return (Stage::Closed, false);
            }
        };
        // Nothing more will come after a close: judge what is there.
        let last = n == 0 || self.client_read_closed;
        let verdict = {
            let got = &pp.buf[..n];
            let parsed = if last {
                proxy_protocol::parse_final(got)
            } else {
                proxy_protocol::parse(got)
            };
            match parsed {
                Parse::Incomplete => None,
                Parse::Invalid(e) => {
                    if e.is_logged() {
                        self.log(Level::Error, None, format_args!("{e}"));
                    }
                    return (Stage::Closed, false);
                }
                Parse::Done { header, consumed } => {
                    let real = header.as_ref().and_then(|h| {
                        realip::real_client(&self.srv.conf.set_real_ip_from, &self.peer, h)
                    });
                    Some((header.as_ref().map(ProxyInfo::new), real, consumed))
                }
            }
        };
        let Some((info, real, consumed)) = verdict else {
            // Edge-triggered: nothing new until more bytes arrive.
            self.client_readable = false;
            return (Stage::ProxyProtocol(pp), false);
        };
        // Take exactly the header; the protocol reads what follows.
        match self.client.read(&mut pp.buf.get()[..consumed]) {
            Ok(IoStatus::Done(got)) if got == consumed => {}
            _ => return (Stage::Closed, false),
        }
        self.proxy_info = info.map(Box::new);
        if let Some(addr) = real {
            self.set_client(Peer::Inet(addr));
        }
        self.cancel_timer(ctx);
        let ProxyProtocolStage { front, .. } = *pp;
        (self.after_accept(ctx, front), true)
    }

    /// After the accept (and the PROXY header): implicit TLS first, or the
    /// protocol at once.
    fn after_accept(&mut self, ctx: &mut Ctx<'_>, front: Front) -> Stage {
        if self.srv.implicit_tls {
            self.start_handshake(ctx, front, false)
        } else {
            self.init_session(ctx, front)
        }
    }

    /// Turn the plain client stream into a TLS one and start the
    /// handshake, bounded by `timeout`.
    fn start_handshake(&mut self, ctx: &mut Ctx<'_>, front: Front, starttls: bool) -> Stage {
        self.action = if starttls {
            "in starttls state"
        } else {
            "SSL handshaking"
        };
        let srv = self.srv.clone();
        let Some(tls) = &srv.tls else {
            return Stage::Closed;
        };
        let ClientStream::Plain(stream) =
            std::mem::replace(&mut self.client, ClientStream::Detached)
        else {
            return Stage::Closed;
        };
        match tls.accept(Socket::new(stream)) {
            Ok(stream) => {
                self.client = ClientStream::Tls(Box::new(TlsClient {
                    stream,
                    read_wants: Want::Read,
                    write_wants: Want::Write,
                }));
            }
            Err(e) => {
                self.log(e.level, None, format_args!("{}", e.text));
                return Stage::Closed;
            }
        }
        self.set_timer(ctx, srv.conf.timeout, Timer::Client);
        Stage::Handshake(Box::new(HandshakeStage { front, starttls }))
    }

    /// One handshake step when the socket is ready for it; once done, the
    /// client certificate check, then the greeting (implicit TLS) or the
    /// commands (STARTTLS).
    fn handshake(&mut self, ctx: &mut Ctx<'_>, hs: Box<HandshakeStage>) -> (Stage, bool) {
        let srv = self.srv.clone();
        let (readable, writable) = (self.client_readable, self.client_writable);
        let Some(tls) = self.client.tls_mut() else {
            return (Stage::Closed, false);
        };
        let ready = match tls.blocked_on() {
            Some(Want::Read) => readable,
            Some(Want::Write) => writable,
            None => true,
        };
        if !ready {
            return (Stage::Handshake(hs), false);
        }
        let check = match tls.handshake() {
            Handshake::WantRead => {
                self.client_readable = false;
                return (Stage::Handshake(hs), false);
            }
            Handshake::WantWrite => {
                self.client_writable = false;
                return (Stage::Handshake(hs), false);
            }
            Handshake::Failed(e) => {
                self.log(e.level, None, format_args!("{}", e.text));
                return (Stage::Closed, false);
            }
            Handshake::Done => tls.check_client_cert(srv.conf.ssl.verify_client),
        };
        self.cancel_timer(ctx);
        if let Some(reply) = check.reply(srv.conf.protocol) {
            if let CertCheck::Invalid(text) | CertCheck::Missing(text) = &check {
                self.log(Level::Info, None, format_args!("{text}"));
            }
            self.out.extend_from_slice(reply);
            self.quit = true;
            return (Stage::Closed, true);
        }
        if let Some(sh) = self.sh.as_deref_mut() {
            sh.tls_active = true;
        }
        // The client may have sent its first command with its last
        // handshake message: no socket event will tell, so read at once.
        self.client_readable = true;
        let HandshakeStage { front, starttls } = *hs;
        if starttls {
            self.action = "in auth state";
            self.set_timer(ctx, srv.conf.timeout, Timer::Client);
            (Stage::Commands(front), true)
        } else {
            (self.init_session(ctx, front), true)
        }
    }

    fn greet(&mut self, front: &Front) {
        let srv = self.srv.clone();
        match front {
            Front::Imap(_) => Imap::greeting(&mut self.out),
            Front::Pop3(_) if Pop3::greeting_has_salt(&srv.front) => Pop3::greeting(
                &srv.front,
                shared_mut(&mut self.sh, &self.client),
                &mut self.out,
            ),
            Front::Pop3(_) => Pop3::greeting(&srv.front, &mut Shared::default(), &mut self.out),
            Front::Smtp(_) => Smtp::greeting(&srv.front, &mut self.out),
        }
    }

    fn context(&self, with_action: bool) -> Context<'_> {
        Context {
            action: if with_action && !self.action.is_empty() {
                Some(self.action)
            } else {
                None
            },
            client: &self.client_addr,
            server: &self.srv.addr_text,
            login: &shared(&self.sh).creds.login,
            upstream: self.upstream.as_deref(),
        }
    }

    fn log_full(
        &self,
        level: Level,
        err: Option<&io::Error>,
        with_action: bool,
        msg: fmt::Arguments<'_>,
    ) {
        let ctx = self.context(with_action);
        let extra = Extra {
            debug_forced: self.debug,
            err,
            context: Some(&ctx),
        };
        self.srv
            .log
            .write_extra(level, Some(self.number), &extra, msg);
    }

    fn log(&self, level: Level, err: Option<&io::Error>, msg: fmt::Arguments<'_>) {
        self.log_full(level, err, true, msg)
    }

    fn set_timer(&mut self, ctx: &mut Ctx<'_>, after: Duration, which: Timer) {
        self.cancel_timer(ctx);
        let id = ctx.add_timer(after, which.tag());
        self.timer = Some((id, which));
    }

    fn cancel_timer(&mut self, ctx: &mut Ctx<'_>) {
        if let Some((id, _)) = self.timer.take() {
            ctx.cancel_timer(id);
        }
    }

    /// Queue the protocol's internal error reply and close after it.
    fn internal_error(&mut self) {
        self.out
            .extend_from_slice(internal_server_error(self.srv.conf.protocol));
        self.quit = true;
    }

    /// Write what is queued for the client. `Ok(true)` when all is out.
    fn flush(&mut self) -> Result<bool, ()> {
        while self.out_pos < self.out.len() {
            if !self.client_can_write() {
                return Ok(false);
            }
            match self.client.write(&self.out[self.out_pos..]) {
                Ok(IoStatus::Done(n)) => self.out_pos += n,
                Ok(IoStatus::WouldBlock) => {
                    self.client_blocked(self.client.write_wants());
                    return Ok(false);
                }
                Ok(IoStatus::Closed) => return Err(()),
                Err(e) => {
                    self.log_client_error(&e, "send() failed");
                    return Err(());
                }
            }
        }
        self.out.clear();
        self.out_pos = 0;
        Ok(true)
    }

    /// Whether a client read may make progress now.
    fn client_can_read(&self) -> bool {
        self.client
            .progress(self.client_readable, self.client_writable)
            .0
    }

    /// Whether a client write may make progress now.
    fn client_can_write(&self) -> bool {
        self.client
            .progress(self.client_readable, self.client_writable)
            .1
    }

    /// A client read or write would block until the socket is ready for
    /// `want`.
    fn client_blocked(&mut self, want: Want) {
        match want {
            Want::Read => self.client_readable = false,
            Want::Write => self.client_writable = false,
        }
    }

    /// Log a failed client read or write: a TLS stream's own error text
    /// (`SSL_read() failed ...`), or the socket call's.
    fn log_client_error(&mut self, e: &io::Error, call: &str) {
        match self.client.take_tls_error() {
            Some(TlsError { level, text }) => self.log(level, None, format_args!("{text}")),
            None => {
                let level = error_level(e, Level::Info);
                self.log(level, Some(e), format_args!("{call}"));
            }
        }
    }

    /// The session is over: TLS clients get a shutdown first.
    fn finish(&mut self, ctx: &mut Ctx<'_>) -> Next {
        match self.client.tls() {
            Some(t) if t.is_handshaked() => {}
            _ => return Next::Close,
        }
        self.cancel_timer(ctx);
        self.release_peers(ctx);
        self.stage = Stage::ShuttingDown;
        self.shutdown_step(ctx)
    }

    /// One TLS shutdown step when the socket is ready for it, bounded by
    /// `SHUTDOWN_TIMEOUT`.
    fn shutdown_step(&mut self, ctx: &mut Ctx<'_>) -> Next {
        let (readable, writable) = (self.client_readable, self.client_writable);
        let Some(tls) = self.client.tls_mut() else {
            return Next::Close;
        };
        let ready = match tls.blocked_on() {
            Some(Want::Read) => readable,
            Some(Want::Write) => writable,
            None => true,
        };
        if !ready {
            return Next::Continue;
        }
        let want = match tls.shutdown() {
            Shutdown::Done => {
                if let Some(e) = tls.take_error() {
                    self.log(e.level, None, format_args!("{}", e.text));
                }
                return Next::Close;
            }
            Shutdown::WantRead => Want::Read,
            Shutdown::WantWrite => Want::Write,
        };
        self.client_blocked(want);
        if self.timer.is_none() {
            self.set_timer(ctx, SHUTDOWN_TIMEOUT, Timer::Shutdown);
        }
        Next::Continue
    }

    /// A timeout or an error ends the session: no TLS close_notify then.
    fn broken(&mut self) -> Next {
        if let Some(t) = self.client.tls_mut() {
            t.set_broken();
        }
        Next::Close
    }

    /// Move the session forward as far as it goes.
    fn drive(&mut self, ctx: &mut Ctx<'_>) -> Next {
        if matches!(self.stage, Stage::ShuttingDown) {
            return self.shutdown_step(ctx);
        }
        loop {
            match self.flush() {
                Err(()) => return self.broken(),
                Ok(false) => return Next::Continue,
                Ok(true) => {}
            }
            if self.quit {
                return self.finish(ctx);
            }
            if self.out.capacity() == 0 {
                self.out = bufpool::with(|p| p.take_reply());
            }
            let stage = std::mem::replace(&mut self.stage, Stage::Closed);
            let (stage, progressed) = match stage {
                Stage::ProxyProtocol(pp) => self.proxy_protocol(ctx, pp),
                Stage::StartTls(front) => (self.start_handshake(ctx, front, true), true),
                Stage::Handshake(hs) => self.handshake(ctx, hs),
                Stage::Resolving(r) => (Stage::Resolving(r), false),
                Stage::SmtpDelay(front) => self.smtp_delay(front),
                Stage::Commands(front) => self.commands(ctx, front),
                Stage::AuthHttp(auth) => self.auth_http(ctx, auth),
                Stage::AuthSleep(front, after) => (Stage::AuthSleep(front, after), false),
                Stage::Backend(b) => self.backend(ctx, b),
                Stage::Relay(r) => self.relay(ctx, r),
                Stage::ShuttingDown | Stage::Closed => (Stage::Closed, false),
            };
            self.stage = stage;
            if matches!(self.stage, Stage::Closed) {
                // Flush a last reply if one is queued, then close.
                self.quit = true;
                if self.out.is_empty() {
                    return self.finish(ctx);
                }
                continue;
            }
            if !progressed && self.out.is_empty() {
                self.release_idle_buffers();
                return Next::Continue;
            }
        }
    }

    /// The session waits for its peers with nothing to send: give the
    /// reply vector back to the pool, and the client buffer if it holds
    /// no bytes (the relay gives its buffers back itself).
    fn release_idle_buffers(&mut self) {
        if self.out.capacity() != 0 {
            bufpool::give_reply(std::mem::take(&mut self.out));
        }
        match &mut self.stage {
            Stage::ProxyProtocol(pp) => {
                pp.buf.release();
                pp.front.input().release_if_empty();
            }
            Stage::StartTls(front)
            | Stage::SmtpDelay(front)
            | Stage::Commands(front)
            | Stage::AuthSleep(front, _) => front.input().release_if_empty(),
            Stage::Handshake(hs) => hs.front.input().release_if_empty(),
            Stage::Resolving(r) => r.front.input().release_if_empty(),
            Stage::AuthHttp(a) => a.front.input().release_if_empty(),
            Stage::Backend(b) => b.front.input().release_if_empty(),
            Stage::Relay(_) | Stage::ShuttingDown | Stage::Closed => {}
        }
    }

    /// Read once from the client into the front end's buffer. `Err` when
    /// the session must close.
    fn read_client(&mut self, front: &mut Front) -> Result<bool, ()> {
        if !self.client_can_read() {
            return Ok(false);
        }
        let space = front.input().space();
        if space.is_empty() {
            return Ok(false);
        }
        match self.client.read(space) {
            Ok(IoStatus::Done(n)) => {
                front.input().received(n);
                Ok(true)
            }
            Ok(IoStatus::WouldBlock) => {
                self.client_blocked(self.client.read_wants());
                Ok(false)
            }
            Ok(IoStatus::Closed) => Err(()),
            Err(e) => {
                self.log_client_error(&e, "recv() failed");
                Err(())
            }
        }
    }

    fn smtp_delay(&mut self, mut front: Front) -> (Stage, bool) {
        match self.read_client(&mut front) {
            Err(()) => (Stage::Closed, false),
            Ok(false) => (Stage::SmtpDelay(front), false),
            Ok(true) => {
                if let Front::Smtp(f) = &mut front {
                    let srv = self.srv.clone();
                    let mut out = std::mem::take(&mut self.out);
                    let mut notes = SessionNotes {
                        log: &srv.log,
                        number: self.number,
                        debug: self.debug,
                        ctx: self.context(true),
                    };
                    f.reject_pipelining(&mut out, &mut notes);
                    self.out = out;
                }
                self.quit = true;
                (Stage::SmtpDelay(front), true)
            }
        }
    }

    fn commands(&mut self, ctx: &mut Ctx<'_>, mut front: Front) -> (Stage, bool) {
        self.action = "in auth state";
        let srv = self.srv.clone();
        loop {
            if self.read_client(&mut front).is_err() {
                return (Stage::Closed, false);
            }
            let step = if front.input().filled == 0 {
                // Nothing to parse: no need to box the gatherings yet.
                Step::NeedInput
            } else {
                let ctxt = Context {
                    action: Some(self.action),
                    client: &self.client_addr,
                    server: &srv.addr_text,
                    login: &[],
                    upstream: None,
                };
                // The login is not known to the log until after the
                // command (nginx logs the parse errors before storing it).
                let login = shared(&self.sh).creds.login.clone();
                let mut notes = SessionNotes {
                    log: &srv.log,
                    number: self.number,
                    debug: self.debug,
                    ctx: Context {
                        login: &login,
                        ..ctxt
                    },
                };
                front.step(
                    &srv.front,
                    shared_mut(&mut self.sh, &self.client),
                    &mut self.out,
                    &mut notes,
                )
            };
            match step {
                Step::NeedInput => {
                    if self.client_can_read() {
                        continue;
                    }
                    return (Stage::Commands(front), false);
                }
                Step::Reply => return (Stage::Commands(front), true),
                Step::StartTls if srv.tls.is_some() => {
                    self.cancel_timer(ctx);
                    return (Stage::StartTls(front), true);
                }
                Step::StartTls => return (Stage::Commands(front), true),
                Step::Quit => {
                    self.quit = true;
                    return (Stage::Commands(front), true);
                }
                Step::Auth => {
                    self.login_attempt += 1;
                    return (self.start_auth(ctx, front), true);
                }
            }
        }
    }

    /// Ask auth_http (again, after WAIT, without counting an attempt).
    fn start_auth(&mut self, ctx: &mut Ctx<'_>, front: Front) -> Stage {
        self.cancel_timer(ctx);
        self.action = "in http auth state";
        let srv = self.srv.clone();
        let conf = &srv.conf;
        let sh = shared(&self.sh);
        let method = match sh.auth_method {
            AuthMethod::Plain => auth_http::AuthMethod::Plain,
            AuthMethod::Apop => auth_http::AuthMethod::Apop,
            AuthMethod::CramMd5 => auth_http::AuthMethod::CramMd5,
            AuthMethod::External => auth_http::AuthMethod::External,
            AuthMethod::None => auth_http::AuthMethod::None,
        };
        let salt = sh.salt.clone().unwrap_or_default();
        let facts = self
            .client
            .tls()
            .map(|t| t.facts(conf.ssl.verify_client, conf.auth_http.pass_client_cert));
        let req = AuthRequest {
            protocol: conf.protocol,
            method,
            login: &sh.creds.login,
            passwd: &sh.creds.passwd,
            salt: &salt,
            login_attempt: self.login_attempt,
            client_addr: self.client_addr.as_bytes(),
            client_host: &self.client_host,
            smtp_helo: &sh.smtp_helo,
            smtp_from: &sh.smtp_from,
            smtp_to: &sh.smtp_to,
            proxy_protocol: self.proxy_info.as_ref().map(|p| ProxyProtocolAddrs {
                src_addr: &p.src_addr,
                src_port: p.src_port,
                dst_addr: &p.dst_addr,
                dst_port: p.dst_port,
            }),
            ssl: facts.as_ref().map(|f| SslInfo {
                protocol: f.protocol.as_bytes(),
                cipher: f.cipher.as_bytes(),
                verify: f.verify.as_bytes(),
                subject: f.subject.as_bytes(),
                issuer: f.issuer.as_bytes(),
                serial: f.serial.as_bytes(),
                fingerprint: f.fingerprint.as_bytes(),
                raw_cert: f.cert_pem.as_bytes(),
            }),
        };
        let mut request = Vec::new();
        req.write_to(&conf.auth_http, &mut request);
        if req.clears_password() {
            let sh = shared_mut(&mut self.sh, &self.client);
            sh.creds.passwd.clear();
            sh.passwd_set = false;
        }
        let sock = match &conf.auth_http.peer {
            AuthHttpPeer::Inet(addrs) => match addrs.first() {
                Some(a) => TcpStream::connect(*a).map(PeerSock::Tcp),
                None => Err(io::Error::from_raw_os_error(libc::EADDRNOTAVAIL)),
            },
            AuthHttpPeer::Unix(path) => UnixStream::connect(path).map(PeerSock::Unix),
        };
        let mut sock = match sock {
            Ok(s) => s,
            Err(e) => {
                let level = error_level(&e, Level::Error);
                self.log(level, Some(&e), format_args!("connect() failed"));
                self.internal_error();
                return Stage::Commands(front);
            }
        };
        if let Err(e) =
            ctx.register_source(sock.io(), SRC_AUTH, Interest::READABLE | Interest::WRITABLE)
        {
            self.log(Level::Alert, Some(&e), format_args!("epoll_ctl() failed"));
            self.internal_error();
            return Stage::Commands(front);
        }
        self.set_timer(ctx, conf.auth_http.timeout, Timer::AuthHttp);
        Stage::AuthHttp(Box::new(AuthStage {
            front,
            sock,
            request,
            written: 0,
            response: AuthHttpResponse::new(),
        }))
    }

    fn auth_http(&mut self, ctx: &mut Ctx<'_>, mut a: Box<AuthStage>) -> (Stage, bool) {
        // Send the request.
        while a.written < a.request.len() {
            match a.sock.io().write_some(&a.request[a.written..]) {
                Ok(IoStatus::Done(n)) => a.written += n,
                Ok(IoStatus::WouldBlock) => return (Stage::AuthHttp(a), false),
                Ok(IoStatus::Closed) => {
                    self.internal_error();
                    return (Stage::Commands(a.front), true);
                }
                Err(e) => {
                    let level = error_level(&e, Level::Error);
                    self.log(level, Some(&e), format_args!("send() failed"));
                    self.internal_error();
                    return (Stage::Commands(a.front), true);
                }
            }
        }
        // Read the answer.
        let progress = loop {
            let spare = a.response.spare();
            if spare.is_empty() {
                break a.response.feed(0);
            }
            let n = match a.sock.io().read_some(spare) {
                Ok(IoStatus::Done(n)) => n,
                Ok(IoStatus::WouldBlock) => return (Stage::AuthHttp(a), false),
                Ok(IoStatus::Closed) => 0,
                Err(e) => {
                    let level = error_level(&e, Level::Error);
                    self.log(level, Some(&e), format_args!("recv() failed"));
                    self.internal_error();
                    return (Stage::Commands(a.front), true);
                }
            };
            match a.response.feed(n) {
                Ok(Progress::NeedMore) if n > 0 => continue,
                other => break other,
            }
        };
        let _ = ctx.deregister(a.sock.io());
        self.cancel_timer(ctx);
        if let Err(e) = progress {
            self.log(
                Level::Error,
                None,
                format_args!("{}", e.log_message(&self.srv.auth_peer)),
            );
            self.internal_error();
            return (Stage::Commands(a.front), true);
        }
        if let Some(user) = a.response.user_override() {
            shared_mut(&mut self.sh, &self.client).creds.login = user.to_vec();
        }
        if let Some(pass) = a.response.pass_override() {
            let sh = shared_mut(&mut self.sh, &self.client);
            sh.creds.passwd = pass.to_vec();
            sh.passwd_set = true;
        }
        let outcome = a.response.outcome(
            self.srv.conf.protocol,
            &shared(&self.sh).tag,
            shared(&self.sh).passwd_set,
        );
        match outcome {
            Err(e) => {
                let msg = e.log_message(&self.srv.auth_peer);
                self.log(Level::Error, None, format_args!("{msg}"));
                self.internal_error();
                (Stage::Commands(a.front), true)
            }
            Ok(AuthOutcome::Proxy { peer, name }) => {
                self.upstream = Some(name);
                (self.start_backend(ctx, a.front, peer), true)
            }
            Ok(AuthOutcome::Reject(r)) => {
                self.log(
                    Level::Info,
                    None,
                    format_args!(
                        "client login failed: \"{}\"",
                        String::from_utf8_lossy(r.message)
                    ),
                );
                match r.delay {
                    None => {
                        self.out.extend_from_slice(&r.reply);
                        self.quit = true;
                        (Stage::Commands(a.front), true)
                    }
                    Some(d) => {
                        let reply = r.reply.clone();
                        self.set_timer(ctx, d, Timer::AuthSleep);
                        (Stage::AuthSleep(a.front, AfterSleep::Reply(reply)), false)
                    }
                }
            }
            Ok(AuthOutcome::Wait { delay: None }) => (self.start_auth(ctx, a.front), true),
            Ok(AuthOutcome::Wait { delay: Some(d) }) => {
                self.set_timer(ctx, d, Timer::AuthSleep);
                (Stage::AuthSleep(a.front, AfterSleep::Reask), false)
            }
        }
    }

    fn start_backend(&mut self, ctx: &mut Ctx<'_>, front: Front, peer: SocketAddr) -> Stage {
        self.action = "connecting to upstream";
        let srv = self.srv.clone();
        let conf = &srv.conf;
        let mut sock = match TcpStream::connect(peer) {
            Ok(s) => s,
            Err(e) => {
                let level = error_level(&e, Level::Error);
                self.log(level, Some(&e), format_args!("connect() failed"));
                self.internal_error();
                return Stage::Commands(front);
            }
        };
        let _ = sock.set_nodelay(true);
        if let Err(e) = ctx.register_source(
            &mut sock,
            SRC_BACKEND,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.log(Level::Alert, Some(&e), format_args!("epoll_ctl() failed"));
            self.internal_error();
            return Stage::Commands(front);
        }
        self.set_timer(ctx, conf.timeout, Timer::Backend);
        let header = match self.proxy_protocol_header() {
            Ok(h) => h,
            Err(e) => {
                self.log(Level::Alert, None, format_args!("{e}"));
                self.internal_error();
                return Stage::Commands(front);
            }
        };
        let login = Login::new(LoginConf {
            protocol: conf.protocol,
            server_name: conf.server_name.clone(),
            xclient: conf.proxy.xclient,
            smtp_auth: conf.proxy.smtp_auth,
            pass_error_message: conf.proxy.pass_error_message,
            client_addr: self.client_addr.clone(),
            client_ipv6: self.client_ipv6,
            client_host: self.client_host.clone(),
        });
        Stage::Backend(Box::new(BackendStage {
            front,
            sock,
            login,
            buf: PoolBuf::new(conf.proxy.buffer_size),
            filled: 0,
            header,
            readable: true,
            writable: true,
        }))
    }

    /// The PROXY protocol header for the backend (`proxy_protocol on|v2`).
    fn proxy_protocol_header(&self) -> Result<Option<Vec<u8>>, WriteError> {
        let endpoint = |a: Option<SocketAddr>| match a {
            Some(a) => Endpoint::Inet(a),
            None => Endpoint::Unix(b""),
        };
        let client = endpoint(match self.peer {
            Peer::Inet(a) => Some(a),
            Peer::Unix => None,
        });
        if self.srv.conf.proxy.proxy_protocol == ProxyProtocolVersion::Off {
            return Ok(None);
        }
        // The acceptor knows the local address only for a socket shared by
        // several listens; ask the socket otherwise.
        let local = endpoint(self.local_sock.or_else(|| self.client.local_addr()));
        let mut buf = [0u8; proxy_protocol::MAX_HEADER];
        let n = match self.srv.conf.proxy.proxy_protocol {
            ProxyProtocolVersion::Off => return Ok(None),
            ProxyProtocolVersion::V1 => proxy_protocol::write_v1(client, local, &mut buf)?,
            ProxyProtocolVersion::V2 => proxy_protocol::write_v2(client, local, None, &mut buf)?,
        };
        Ok(Some(buf[..n].to_vec()))
    }

    fn backend(&mut self, ctx: &mut Ctx<'_>, mut b: Box<BackendStage>) -> (Stage, bool) {
        if let Some(header) = b.header.take() {
            self.action = "sending PROXY protocol header to upstream";
            match b.sock.write_some(&header) {
                Ok(IoStatus::WouldBlock) => {
                    b.header = Some(header);
                    return (Stage::Backend(b), false);
                }
                Ok(IoStatus::Done(n)) if n == header.len() => {}
                Ok(_) => {
                    self.log(
                        Level::Error,
                        None,
                        format_args!("could not send PROXY protocol header at once"),
                    );
                    self.internal_error();
                    return (Stage::Closed, true);
                }
                Err(e) => {
                    let level = error_level(&e, Level::Error);
                    self.log(level, Some(&e), format_args!("send() failed"));
                    self.internal_error();
                    return (Stage::Closed, true);
                }
            }
        }
        loop {
            if !b.readable {
                return (Stage::Backend(b), false);
            }
            self.action = "reading response from upstream";
            let filled = b.filled;
            match b.sock.read_some(&mut b.buf.get()[filled..]) {
                Ok(IoStatus::Done(n)) => b.filled += n,
                Ok(IoStatus::WouldBlock) => {
                    b.readable = false;
                    return (Stage::Backend(b), false);
                }
                Ok(IoStatus::Closed) => {
                    self.internal_error();
                    return (Stage::Closed, true);
                }
                Err(e) => {
                    let level = error_level(&e, Level::Error);
                    self.log(level, Some(&e), format_args!("recv() failed"));
                    self.internal_error();
                    return (Stage::Closed, true);
                }
            }
            let mut line = Vec::new();
            let filled = b.filled;
            match b
                .login
                .on_input(&mut b.buf, filled, shared(&self.sh), &mut line)
            {
                LoginStep::Again => continue,
                LoginStep::Send { action } => {
                    self.action = action;
                    match b.sock.write_some(&line) {
                        Ok(IoStatus::Done(n)) if n == line.len() => {}
                        Ok(_) => {
                            self.internal_error();
                            return (Stage::Closed, true);
                        }
                        Err(e) => {
                            let level = error_level(&e, Level::Error);
                            self.log(level, Some(&e), format_args!("send() failed"));
                            self.internal_error();
                            return (Stage::Closed, true);
                        }
                    }
                    b.filled = 0;
                }
                LoginStep::LoggedIn { buffer_len } => {
                    return (self.start_relay(ctx, *b, buffer_len), true);
                }
                LoginStep::Failed(err) => {
                    match err {
                        LoginError::TooLong(text) => self.log(
                            Level::Error,
                            None,
                            format_args!("upstream sent too long response line: \"{text}\""),
                        ),
                        LoginError::Invalid(text) => self.log(
                            Level::Error,
                            None,
                            format_args!("upstream sent invalid response: \"{text}\""),
                        ),
                        LoginError::InvalidPassed { line, reply } => {
                            self.log(
                                Level::Info,
                                None,
                                format_args!("upstream sent invalid response: \"{line}\""),
                            );
                            self.out.extend_from_slice(&reply);
                            self.quit = true;
                            return (Stage::Closed, true);
                        }
                        LoginError::NoPassword => {
                            self.log(Level::Error, None, format_args!("no password available"))
                        }
                    }
                    self.internal_error();
                    return (Stage::Closed, true);
                }
            }
        }
    }

    fn start_relay(&mut self, ctx: &mut Ctx<'_>, b: BackendStage, buffer_len: usize) -> Stage {
        self.action = "";
        self.log_full(Level::Info, None, false, format_args!("client logged in"));
        self.action = "proxying";
        self.set_timer(ctx, self.srv.conf.proxy.timeout, Timer::Proxy);
        let up = b.front.into_pipe();
        let down = Pipe::new(b.buf, 0, buffer_len);
        let mut relay = Relay::new(up, down);
        relay.client.readable = true;
        relay.client.writable = self.client_can_write();
        relay.backend.readable = b.readable;
        relay.backend.writable = b.writable;
        Stage::Relay(Box::new(RelayStage {
            sock: b.sock,
            relay,
        }))
    }

    fn relay(&mut self, _ctx: &mut Ctx<'_>, mut r: Box<RelayStage>) -> (Stage, bool) {
        let mut read_errors = Vec::new();
        let outcome = {
            let RelayStage { sock, relay } = &mut *r;
            relay.run(&mut self.client, &mut BackendIo(sock), &mut |e| {
                read_errors.push(e)
            })
        };
        for (side, e) in read_errors {
            match side {
                Side::Client => {
                    self.action = "proxying and reading from client";
                    self.log_client_error(&e, "recv() failed");
                }
                Side::Backend => {
                    self.action = "proxying and reading from upstream";
                    self.log(
                        error_level(&e, Level::Error),
                        Some(&e),
                        format_args!("recv() failed"),
                    );
                }
            }
            self.action = "proxying";
        }
        match outcome {
            RelayOutcome::Continue => (Stage::Relay(r), false),
            RelayOutcome::Done => {
                self.log_full(
                    Level::Info,
                    None,
                    false,
                    format_args!("proxied session done"),
                );
                (Stage::Closed, false)
            }
            RelayOutcome::WriteFailed(side, e) => {
                match side {
                    Side::Client => {
                        self.action = "proxying and sending to client";
                        self.log_client_error(&e, "send() failed");
                    }
                    Side::Backend => {
                        self.action = "proxying and sending to upstream";
                        self.log(
                            error_level(&e, Level::Error),
                            Some(&e),
                            format_args!("send() failed"),
                        );
                    }
                }
                (Stage::Closed, false)
            }
        }
    }
}

impl Handler for Session {
    fn ready(&mut self, ctx: &mut Ctx<'_>, ev: Readiness) -> Next {
        let readable = ev.readable || ev.closed;
        let writable = ev.writable || ev.closed;
        match ev.source {
            SRC_CLIENT => {
                self.client_readable |= readable;
                self.client_writable |= writable;
                self.client_read_closed |= ev.read_closed;
                if let Stage::Relay(r) = &mut self.stage {
                    let (can_read, can_write) = self.client.progress(readable, writable);
                    r.relay.client.readable |= can_read;
                    r.relay.client.writable |= can_write;
                    // Client activity re-arms proxy_timeout, as in nginx.
                    let t = self.srv.conf.proxy.timeout;
                    self.set_timer(ctx, t, Timer::Proxy);
                }
            }
            SRC_RESOLVER => {
                if let Stage::Resolving(mut r) = std::mem::replace(&mut self.stage, Stage::Closed) {
                    let outcome = r.lookup.on_ready(Instant::now());
                    self.stage = self.resolver_step(ctx, r, outcome);
                }
            }
            SRC_BACKEND => match &mut self.stage {
                Stage::Relay(r) => {
                    r.relay.backend.readable |= readable;
                    r.relay.backend.writable |= writable;
                }
                Stage::Backend(b) => {
                    b.readable |= readable;
                    b.writable |= writable;
                }
                _ => {}
            },
            _ => {}
        }
        self.drive(ctx)
    }

    fn timeout(&mut self, ctx: &mut Ctx<'_>, tag: u32) -> Next {
        let Some(which) = Timer::from_tag(tag) else {
            return Next::Continue;
        };
        match self.timer {
            Some((_, t)) if t == which => self.timer = None,
            _ => return Next::Continue,
        }
        let err = timed_out();
        match which {
            // A handshake that times out is closed without a word, as
            // nginx does.
            Timer::Client if matches!(self.stage, Stage::Handshake(_)) => self.broken(),
            Timer::Client => {
                if !matches!(self.stage, Stage::ProxyProtocol(_)) {
                    self.action = "in auth state";
                }
                self.log(Level::Info, Some(&err), format_args!("client timed out"));
                self.broken()
            }
            Timer::GreetingDelay => {
                let stage = std::mem::replace(&mut self.stage, Stage::Closed);
                if let Stage::SmtpDelay(front) = stage {
                    self.greet(&front);
                    self.stage = Stage::Commands(front);
                    let t = self.srv.conf.timeout;
                    self.set_timer(ctx, t, Timer::Client);
                }
                self.drive(ctx)
            }
            Timer::AuthHttp => {
                let peer = self.srv.auth_peer.clone();
                self.log(
                    Level::Error,
                    Some(&err),
                    format_args!("{}", auth_http::timed_out_message(&peer)),
                );
                if let Stage::AuthHttp(a) = std::mem::replace(&mut self.stage, Stage::Closed) {
                    let mut a = *a;
                    let _ = ctx.deregister(a.sock.io());
                }
                self.internal_error();
                self.drive(ctx)
            }
            Timer::AuthSleep => {
                let stage = std::mem::replace(&mut self.stage, Stage::Closed);
                if let Stage::AuthSleep(front, after) = stage {
                    match after {
                        AfterSleep::Reask => self.stage = self.start_auth(ctx, front),
                        AfterSleep::Reply(reply) => {
                            self.out.extend_from_slice(&reply);
                            shared_mut(&mut self.sh, &self.client).auth_method = AuthMethod::Plain;
                            self.action = "in auth state";
                            let t = self.srv.conf.timeout;
                            self.set_timer(ctx, t, Timer::Client);
                            self.stage = Stage::Commands(front);
                        }
                    }
                }
                self.drive(ctx)
            }
            Timer::Backend => {
                self.log(Level::Info, Some(&err), format_args!("upstream timed out"));
                self.stage = Stage::Closed;
                self.internal_error();
                self.drive(ctx)
            }
            Timer::Proxy => {
                self.action = "proxying";
                self.log(Level::Info, Some(&err), format_args!("client timed out"));
                self.broken()
            }
            Timer::Shutdown => {
                if let Some(t) = self.client.tls_mut() {
                    t.set_broken();
                    t.shutdown();
                }
                Next::Close
            }
            Timer::Resolver => {
                if let Stage::Resolving(mut r) = std::mem::replace(&mut self.stage, Stage::Closed) {
                    let outcome = r.lookup.on_timeout(Instant::now());
                    self.stage = self.resolver_step(ctx, r, outcome);
                }
                self.drive(ctx)
            }
        }
    }

    /// nginx's mail module never marks a connection idle: a graceful
    /// shutdown lets every session go on (before login too) until it ends
    /// or `worker_shutdown_timeout` closes it.
    fn is_idle(&self) -> bool {
        false
    }

    fn shutdown_timeout(&mut self, _ctx: &mut Ctx<'_>) {
        // Only the relay says why (nginx's proxy handler looks at the
        // close flag the shutdown timer sets; the earlier stages do not).
        if matches!(self.stage, Stage::Relay(_)) {
            self.action = "proxying";
            self.log(Level::Info, None, format_args!("shutdown timeout"));
        }
    }

    fn close(&mut self, ctx: &mut Ctx<'_>) {
        let _ = ctx.deregister(&mut self.client);
        self.release_peers(ctx);
        self.stage = Stage::Closed;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.out.capacity() != 0 {
            bufpool::give_reply(std::mem::take(&mut self.out));
        }
    }
}

impl Session {
    /// Leave the loop with the auth_http and backend sockets.
    fn release_peers(&mut self, ctx: &mut Ctx<'_>) {
        match &mut self.stage {
            Stage::AuthHttp(a) => {
                let _ = ctx.deregister(a.sock.io());
            }
            Stage::Backend(b) => {
                let _ = ctx.deregister(&mut b.sock);
            }
            Stage::Relay(r) => {
                let _ = ctx.deregister(&mut r.sock);
            }
            _ => {}
        }
        self.stage = Stage::Closed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Accepted, Acceptor, Command, Control, EventLoop, ListenSock, Listening};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::fd::RawFd;

    struct TestAcceptor(Arc<ServerCtx>);

    impl Acceptor for TestAcceptor {
        fn accept(&mut self, conn: Accepted, ctx: &mut Ctx<'_>) -> Option<Box<dyn Handler>> {
            let s = Session::start(self.0.clone(), conn.stream, &conn.peer, None, ctx)?;
            Some(Box::new(s))
        }
    }

    /// Stops the loop when the test thread writes to the pipe.
    struct Stop(std::os::unix::net::UnixStream);

    impl Control for Stop {
        fn fds(&self) -> Vec<RawFd> {
            use std::os::fd::AsRawFd;
            vec![self.0.as_raw_fd()]
        }
        fn poll(&mut self) -> Vec<Command> {
            vec![Command::Terminate]
        }
    }

    fn listener() -> (std::net::TcpListener, u16) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        (l, port)
    }

    /// IMAP over loopback: greeting, pipelined LOGIN with a literal,
    /// auth_http, backend login and relay of the pipelined command.
    #[test]
    fn imap_session_over_loopback() {
        let (auth_l, auth_port) = listener();
        let (backend_l, backend_port) = listener();
        let srv_conf = crate::mail::test_support::config(&format!(
            "auth_http 127.0.0.1:{auth_port}/a; server {{ listen 127.0.0.1:1; protocol imap; }}"
        ))
        .mail
        .unwrap()
        .servers
        .remove(0);
        let srv = Arc::new(ServerCtx::new(&srv_conf, Arc::new(Log::stderr()), "test"));
        let auth = std::thread::spawn(move || {
            let (mut c, _) = auth_l.accept().unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = c.read(&mut b).unwrap();
                req.extend_from_slice(&b[..n]);
            }
            write!(
                c,
                "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: {backend_port}\r\n\r\n"
            )
            .unwrap();
            String::from_utf8(req).unwrap()
        });
        let backend = std::thread::spawn(move || {
            let (c, _) = backend_l.accept().unwrap();
            let mut w = c.try_clone().unwrap();
            let mut r = BufReader::new(c);
            w.write_all(b"* OK backend\r\n").unwrap();
            let mut got = Vec::new();
            for reply in ["+ u\r\n", "+ p\r\n", "t1 OK in\r\n", "t2 OK noop\r\n"] {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                got.push(line);
                w.write_all(reply.as_bytes()).unwrap();
            }
            got
        });
        let (l, port) = listener();
        l.set_nonblocking(true).unwrap();
        let mut lp = EventLoop::new(
            vec![Listening {
                sock: ListenSock::Tcp(mio::net::TcpListener::from_std(l)),
                addr_text: "test".into(),
                id: 0,
            }],
            Box::new(TestAcceptor(srv)),
            crate::event::Settings {
                worker_connections: 16,
                multi_accept: false,
                timer_resolution: None,
                shutdown_timeout: None,
                debug_connection: Vec::new(),
                reserved: 0,
            },
            Box::new(|| 1),
        )
        .unwrap();
        let (stop_a, stop_b) = std::os::unix::net::UnixStream::pair().unwrap();
        let client = std::thread::spawn(move || {
            let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut w = c.try_clone().unwrap();
            let mut r = BufReader::new(c);
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, "* OK IMAP4 ready\r\n");
            w.write_all(b"t1 LOGIN {4}\r\n").unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, "+ OK\r\n");
            w.write_all(b"user secret\r\nt2 NOOP\r\n").unwrap();
            let mut lines = Vec::new();
            for _ in 0..2 {
                line.clear();
                r.read_line(&mut line).unwrap();
                lines.push(line.clone());
            }
            let mut stop = stop_a;
            stop.write_all(b"x").unwrap();
            lines
        });
        lp.run(&mut Stop(stop_b)).unwrap();
        assert_eq!(
            client.join().unwrap(),
            vec!["t1 OK in\r\n", "t2 OK noop\r\n"]
        );
        let req = auth.join().unwrap();
        assert!(
            req.contains("Auth-User: user\r\nAuth-Pass: secret\r\n"),
            "{req}"
        );
        assert!(req.contains("Auth-Login-Attempt: 1\r\n"), "{req}");
        assert_eq!(
            backend.join().unwrap(),
            vec![
                "t1 LOGIN {4}\r\n",
                "user {6}\r\n",
                "secret\r\n",
                "t2 NOOP\r\n"
            ]
        );
    }

    /// A server from the text of its `server {}` block (with `listen`
    /// given here) and a memory log to read the lines from.
    fn server(mail: &str, server: &str, proxy_protocol: bool) -> Arc<ServerCtx> {
        let conf = crate::mail::test_support::config(&format!(
            "{mail} server {{ listen 127.0.0.1:1; {server} }}"
        ))
        .mail
        .unwrap()
        .servers
        .remove(0);
        let log = Log::builtin(&crate::conf::LogTarget::Memory(1 << 16), Level::Info);
        let mut srv = ServerCtx::new(&conf, Arc::new(log), "127.0.0.1:1");
        srv.proxy_protocol = proxy_protocol;
        Arc::new(srv)
    }

    fn log_text(srv: &ServerCtx) -> String {
        String::from_utf8_lossy(&srv.log.memory_contents().concat()).into_owned()
    }

    /// One auth_http exchange: returns the request, answers `reply`.
    fn auth_once(l: std::net::TcpListener, reply: &'static str) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = c.read(&mut b).unwrap();
                assert!(n > 0);
                req.extend_from_slice(&b[..n]);
            }
            c.write_all(reply.as_bytes()).unwrap();
            String::from_utf8(req).unwrap()
        })
    }

    const AUTH_BAD: &str = "HTTP/1.0 200 OK\r\nAuth-Status: Bad login\r\n\r\n";

    /// Runs the loop with one server until `client` (given the port)
    /// returns.
    fn serve<T: Send + 'static>(
        srv: Arc<ServerCtx>,
        client: impl FnOnce(u16) -> T + Send + 'static,
    ) -> T {
        let (l, port) = listener();
        l.set_nonblocking(true).unwrap();
        let mut lp = EventLoop::new(
            vec![Listening {
                sock: ListenSock::Tcp(mio::net::TcpListener::from_std(l)),
                addr_text: "test".into(),
                id: 0,
            }],
            Box::new(TestAcceptor(srv)),
            crate::event::Settings {
                worker_connections: 16,
                multi_accept: false,
                timer_resolution: None,
                shutdown_timeout: None,
                debug_connection: Vec::new(),
                reserved: 0,
            },
            Box::new(|| 1),
        )
        .unwrap();
        let (stop_a, stop_b) = std::os::unix::net::UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let r = client(port);
            let mut stop = stop_a;
            stop.write_all(b"x").unwrap();
            r
        });
        lp.run(&mut Stop(stop_b)).unwrap();
        t.join().unwrap()
    }

    fn connect(port: u16) -> (std::net::TcpStream, BufReader<std::net::TcpStream>) {
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (c.try_clone().unwrap(), BufReader::new(c))
    }

    fn line(r: &mut BufReader<std::net::TcpStream>) -> String {
        let mut l = String::new();
        let _ = r.read_line(&mut l);
        l
    }

    /// A v1 header split over two writes, with a command right after it;
    /// realip takes the header's source for Client-IP and the log, and
    /// auth_http gets the Proxy-Protocol-* headers.
    #[test]
    fn proxy_protocol_v1_with_realip() {
        let (auth_l, auth_port) = listener();
        let srv = server(
            &format!("auth_http 127.0.0.1:{auth_port}/a;"),
            "protocol pop3; set_real_ip_from 127.0.0.0/8;",
            true,
        );
        let auth = auth_once(auth_l, AUTH_BAD);
        let got = serve(srv.clone(), |port| {
            let (mut w, mut r) = connect(port);
            w.write_all(b"PROXY TCP4 192.0.2.1 198.51.100.2 40")
                .unwrap();
            std::thread::sleep(Duration::from_millis(50));
            w.write_all(b"000 110\r\nUSER u\r\n").unwrap();
            let mut got = vec![line(&mut r), line(&mut r)];
            w.write_all(b"PASS p\r\n").unwrap();
            got.push(line(&mut r));
            got
        });
        assert_eq!(got, ["+OK POP3 ready\r\n", "+OK\r\n", "-ERR Bad login\r\n"]);
        let req = auth.join().unwrap();
        assert!(req.contains("Client-IP: 192.0.2.1\r\n"), "{req}");
        assert!(
            req.contains(
                "Proxy-Protocol-Addr: 192.0.2.1\r\nProxy-Protocol-Port: 40000\r\n\
                 Proxy-Protocol-Server-Addr: 198.51.100.2\r\nProxy-Protocol-Server-Port: 110\r\n"
            ),
            "{req}"
        );
        let log = log_text(&srv);
        assert!(
            log.contains("client login failed: \"Bad login\" while in http auth state, client: 192.0.2.1, server: 127.0.0.1:1, login: \"u\""),
            "{log}"
        );
    }

    /// A v2 header from a peer outside `set_real_ip_from`: the peer stays
    /// the client, the header's addresses still go to auth_http.
    #[test]
    fn proxy_protocol_v2_untrusted_peer() {
        let (auth_l, auth_port) = listener();
        let srv = server(
            &format!("auth_http 127.0.0.1:{auth_port}/a;"),
            "protocol imap; set_real_ip_from 10.0.0.0/8;",
            true,
        );
        let auth = auth_once(auth_l, AUTH_BAD);
        let mut header = [0u8; proxy_protocol::MAX_HEADER];
        let n = proxy_protocol::write_v2(
            Endpoint::Inet("203.0.113.7:50000".parse().unwrap()),
            Endpoint::Inet("198.51.100.3:143".parse().unwrap()),
            None,
            &mut header,
        )
        .unwrap();
        let header = header[..n].to_vec();
        let got = serve(srv, move |port| {
            let (mut w, mut r) = connect(port);
            w.write_all(&header).unwrap();
            w.write_all(b"a LOGIN u p\r\n").unwrap();
            vec![line(&mut r), line(&mut r)]
        });
        assert_eq!(got[0], "* OK IMAP4 ready\r\n");
        let req = auth.join().unwrap();
        assert!(req.contains("Client-IP: 127.0.0.1\r\n"), "{req}");
        assert!(
            req.contains("Proxy-Protocol-Addr: 203.0.113.7\r\nProxy-Protocol-Port: 50000\r\n"),
            "{req}"
        );
    }

    /// Broken headers close without a greeting and are logged as nginx
    /// does; a client closing in the middle of a header gets nginx's
    /// verdict on what it sent; a silent one times out.
    #[test]
    fn proxy_protocol_errors() {
        let srv = server(
            "auth_http 127.0.0.1:9/a;",
            "protocol smtp; timeout 300ms;",
            true,
        );
        let got = serve(srv.clone(), |port| {
            let mut got = Vec::new();
            let (mut w, mut r) = connect(port);
            w.write_all(b"PROXY FOO bar\r\nEHLO x\r\n").unwrap();
            got.push(line(&mut r));
            let (mut w, mut r) = connect(port);
            w.write_all(b"PROXY TCP4 1.2.3.4").unwrap();
            w.shutdown(std::net::Shutdown::Write).unwrap();
            got.push(line(&mut r));
            let (_w, mut r) = connect(port);
            got.push(line(&mut r));
            got
        });
        assert_eq!(got, ["", "", ""]);
        let log = log_text(&srv);
        assert!(
            log.contains("[error] ")
                && log.contains(
                    "broken header: \"PROXY FOO bar\" while reading PROXY protocol, client: 127.0.0.1, server: 127.0.0.1:1\n"
                ),
            "{log}"
        );
        assert!(
            log.contains("broken header: \"PROXY TCP4 1.2.3.4\" while reading PROXY protocol"),
            "{log}"
        );
        assert!(
            log.contains("client timed out (110: Connection timed out) while reading PROXY protocol, client: 127.0.0.1"),
            "{log}"
        );
    }

    /// SMTP with a resolver: the greeting waits for the PTR and forward
    /// lookups, whose name goes to auth_http as Client-Host.
    #[test]
    fn smtp_resolver_found_and_not_found() {
        use crate::mail::resolver::tests::{Reply, Responder, T_A, T_PTR};
        let dns = Responder::start(
            "127.0.0.1:0",
            vec![
                ("1.0.0.127.in-addr.arpa", T_PTR, Reply::Ptr("client.test")),
                (
                    "client.test",
                    T_A,
                    Reply::A(vec!["127.0.0.1".parse().unwrap()]),
                ),
            ],
        )
        .unwrap();
        let (auth_l, auth_port) = listener();
        let mail = format!(
            "auth_http 127.0.0.1:{auth_port}/a; resolver {} ipv6=off;",
            dns.addr
        );
        let srv = server(&mail, "protocol smtp; smtp_auth plain;", false);
        let auth = auth_once(auth_l, AUTH_BAD);
        let got = serve(srv.clone(), |port| {
            let (mut w, mut r) = connect(port);
            let greeting = line(&mut r);
            // AUTH PLAIN \0u\0p
            w.write_all(b"EHLO x\r\nAUTH PLAIN AHUAcA==\r\n").unwrap();
            let mut rest = String::new();
            while !rest.ends_with("535 5.7.8 Bad login\r\n") && !rest.ends_with("\r\n\r\n") {
                let l = line(&mut r);
                if l.is_empty() {
                    break;
                }
                rest.push_str(&l);
            }
            (greeting, rest)
        });
        assert!(got.0.starts_with("220 "), "{got:?}");
        let req = auth.join().unwrap();
        assert!(req.contains("Client-Host: client.test\r\n"), "{req}");

        // A PTR the DNS server does not know: [UNAVAILABLE] and the log
        // line with the resolver's action.
        let dns = Responder::start("127.0.0.1:0", vec![]).unwrap();
        let (auth_l, auth_port) = listener();
        let mail = format!("auth_http 127.0.0.1:{auth_port}/a; resolver {};", dns.addr);
        let srv = server(&mail, "protocol smtp; smtp_auth plain;", false);
        let auth = auth_once(auth_l, AUTH_BAD);
        let greeting = serve(srv.clone(), |port| {
            let (mut w, mut r) = connect(port);
            let greeting = line(&mut r);
            w.write_all(b"AUTH PLAIN AHUAcA==\r\n").unwrap();
            line(&mut r);
            greeting
        });
        assert!(greeting.starts_with("220 "), "{greeting}");
        let req = auth.join().unwrap();
        assert!(req.contains("Client-Host: [UNAVAILABLE]\r\n"), "{req}");
        let log = log_text(&srv);
        assert!(
            log.contains("[error] ")
                && log.contains("127.0.0.1 could not be resolved (3: Host not found) while in resolving client address, client: 127.0.0.1, server: 127.0.0.1:1\n"),
            "{log}"
        );
    }

    /// A DNS server that never answers: the greeting comes after
    /// `resolver_timeout` with [TEMPUNAVAIL].
    #[test]
    fn smtp_resolver_timeout() {
        use crate::mail::resolver::tests::{Reply, Responder, T_PTR};
        let dns = Responder::start(
            "127.0.0.1:0",
            vec![("1.0.0.127.in-addr.arpa", T_PTR, Reply::Silent)],
        )
        .unwrap();
        let (auth_l, auth_port) = listener();
        let mail = format!(
            "auth_http 127.0.0.1:{auth_port}/a; resolver {}; resolver_timeout 300ms;",
            dns.addr
        );
        let srv = server(&mail, "protocol smtp; smtp_auth plain;", false);
        let auth = auth_once(auth_l, AUTH_BAD);
        let (greeting, waited) = serve(srv.clone(), |port| {
            let started = Instant::now();
            let (mut w, mut r) = connect(port);
            let greeting = line(&mut r);
            let waited = started.elapsed();
            w.write_all(b"AUTH PLAIN AHUAcA==\r\n").unwrap();
            line(&mut r);
            (greeting, waited)
        });
        assert!(greeting.starts_with("220 "), "{greeting}");
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        let req = auth.join().unwrap();
        assert!(req.contains("Client-Host: [TEMPUNAVAIL]\r\n"), "{req}");
        let log = log_text(&srv);
        assert!(
            log.contains("127.0.0.1 could not be resolved (110: Operation timed out) while in resolving client address"),
            "{log}"
        );
    }

    /// A server with TLS: a fresh certificate (and a CA for client
    /// certificates) written beside the configuration.
    fn tls_server(mail: &str, server: &str, implicit: bool) -> Arc<ServerCtx> {
        use crate::tls::testutil::{cert, key_pem, pem, rsa_key, TempDir};
        let dir = TempDir::new("session");
        let key = rsa_key();
        let crt = cert("mail.test", &key, None, false, 1);
        let ca_key = rsa_key();
        let ca = cert("Test CA", &ca_key, None, true, 2);
        let crt_path = dir.write("server.pem", pem(&crt).as_bytes());
        let key_path = dir.write("server.key", key_pem(&key).as_bytes());
        let ca_path = dir.write("ca.pem", pem(&ca).as_bytes());
        let config = crate::mail::test_support::config(&format!(
            "{mail} server {{ listen 127.0.0.1:1{}; {server} \
             ssl_certificate {}; ssl_certificate_key {}; ssl_client_certificate {}; }}",
            if implicit { " ssl" } else { "" },
            crt_path.display(),
            key_path.display(),
            ca_path.display()
        ));
        let (mut tls, _) = crate::tls::build_servers(&config, None, &|_| None).unwrap();
        let conf = config.mail.unwrap().servers.remove(0);
        let log = Log::builtin(&crate::conf::LogTarget::Memory(1 << 16), Level::Info);
        let mut srv = ServerCtx::new(&conf, Arc::new(log), "127.0.0.1:1");
        srv.set_tls(tls.remove(0).unwrap(), implicit);
        Arc::new(srv)
    }

    type TlsClient = openssl::ssl::SslStream<std::net::TcpStream>;

    /// A TLS client over `tcp` that does not check the server.
    fn tls_connect(tcp: std::net::TcpStream) -> TlsClient {
        let mut b = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).unwrap();
        b.set_verify(openssl::ssl::SslVerifyMode::NONE);
        b.build().connect("mail.test", tcp).unwrap()
    }

    fn tls_line(s: &mut TlsClient) -> String {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\n") {
            match s.read(&mut b) {
                Ok(1) => line.push(b[0]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&line).into_owned()
    }

    /// Implicit TLS: a command written right after the handshake, before
    /// the greeting was read, is answered at once; the capabilities are
    /// those of a TLS session.
    #[test]
    fn implicit_tls_answers_a_command_sent_with_the_handshake() {
        let srv = tls_server(
            "auth_http 127.0.0.1:9/a;",
            "protocol imap; starttls on;",
            true,
        );
        let got = serve(srv.clone(), |port| {
            let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut s = tls_connect(tcp);
            s.write_all(b"a CAPABILITY\r\n").unwrap();
            let started = Instant::now();
            let got = vec![tls_line(&mut s), tls_line(&mut s), tls_line(&mut s)];
            (got, started.elapsed())
        });
        let (lines, waited) = got;
        assert_eq!(lines[0], "* OK IMAP4 ready\r\n");
        assert!(lines[1].starts_with("* CAPABILITY IMAP4"), "{lines:?}");
        assert!(!lines[1].contains("STARTTLS"), "{lines:?}");
        assert_eq!(lines[2], "a OK completed\r\n");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }

    /// `starttls only`: LOGINDISABLED and a refused LOGIN before TLS,
    /// plaintext pipelined after STARTTLS dropped, then TLS on the same
    /// connection and auth_http told about it.
    #[test]
    fn imap_starttls_only() {
        let (auth_l, auth_port) = listener();
        let srv = tls_server(
            &format!("auth_http 127.0.0.1:{auth_port}/a;"),
            "protocol imap; starttls only;",
            false,
        );
        let auth = auth_once(auth_l, AUTH_BAD);
        let (plain, secure) = serve(srv, |port| {
            let (mut w, mut r) = connect(port);
            let mut plain = vec![line(&mut r)];
            w.write_all(b"a CAPABILITY\r\n").unwrap();
            plain.push(line(&mut r));
            plain.push(line(&mut r));
            w.write_all(b"b LOGIN u p\r\n").unwrap();
            plain.push(line(&mut r));
            w.write_all(b"c STARTTLS\r\nd NOOP\r\n").unwrap();
            plain.push(line(&mut r));
            let tcp = r.into_inner();
            let mut s = tls_connect(tcp);
            s.write_all(b"e CAPABILITY\r\n").unwrap();
            let mut secure = vec![tls_line(&mut s), tls_line(&mut s)];
            s.write_all(b"f LOGIN u p\r\n").unwrap();
            secure.push(tls_line(&mut s));
            (plain, secure)
        });
        assert_eq!(plain[0], "* OK IMAP4 ready\r\n");
        assert!(
            plain[1].ends_with(" STARTTLS LOGINDISABLED\r\n"),
            "{plain:?}"
        );
        assert_eq!(plain[2], "a OK completed\r\n");
        assert_eq!(plain[3], "b BAD invalid command\r\n");
        assert!(plain[4].starts_with("c OK "), "{plain:?}");
        assert!(!secure[0].contains("STARTTLS"), "{secure:?}");
        // The pipelined NOOP was not answered.
        assert_eq!(secure[1], "e OK completed\r\n");
        assert_eq!(secure[2], "f NO Bad login\r\n");
        let req = auth.join().unwrap();
        assert!(
            req.contains("Auth-SSL: on\r\nAuth-SSL-Protocol: TLSv1.3\r\nAuth-SSL-Cipher: "),
            "{req}"
        );
        assert!(!req.contains("Auth-SSL-Verify"), "{req}");
    }

    /// `ssl_verify_client on` without a client certificate: the protocol's
    /// refusal and nginx's log line; a client that never starts the
    /// handshake is closed after `timeout` without a word.
    #[test]
    fn client_certificate_required_and_handshake_timeout() {
        let srv = tls_server(
            "auth_http 127.0.0.1:9/a;",
            "protocol pop3; ssl_verify_client on; timeout 300ms;",
            true,
        );
        let (refusal, silent) = serve(srv.clone(), |port| {
            let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut s = tls_connect(tcp);
            let refusal = tls_line(&mut s);
            let (_w, mut r) = connect(port);
            (refusal, line(&mut r))
        });
        assert_eq!(refusal, "-ERR No required SSL certificate\r\n");
        assert_eq!(silent, "");
        let log = log_text(&srv);
        assert!(
            log.contains(
                "client sent no required SSL certificate while SSL handshaking, client: 127.0.0.1, server: 127.0.0.1:1\n"
            ),
            "{log}"
        );
        assert!(!log.contains("timed out"), "{log}");
    }

    /// The relay between a TLS client and a plain backend moves a large
    /// volume both ways at once (reads and writes blocking on each other's
    /// direction), then closes with a TLS shutdown.
    #[test]
    fn tls_client_relayed_to_plain_backend() {
        const SIZE: usize = 4 << 20;
        let (auth_l, auth_port) = listener();
        let (backend_l, backend_port) = listener();
        let srv = tls_server(
            &format!("auth_http 127.0.0.1:{auth_port}/a;"),
            "protocol pop3;",
            true,
        );
        let reply: &'static str = Box::leak(
            format!(
                "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: {backend_port}\r\n\r\n"
            )
            .into_boxed_str(),
        );
        let auth = auth_once(auth_l, reply);
        let backend = std::thread::spawn(move || {
            let (c, _) = backend_l.accept().unwrap();
            let mut w = c.try_clone().unwrap();
            let mut r = BufReader::new(c);
            w.write_all(b"+OK backend\r\n").unwrap();
            for reply in ["+OK\r\n", "+OK in\r\n"] {
                line(&mut r);
                w.write_all(reply.as_bytes()).unwrap();
            }
            let writer = std::thread::spawn(move || {
                w.write_all(&vec![b'b'; SIZE]).unwrap();
                w
            });
            let mut got = 0;
            let mut b = vec![0u8; 65536];
            while got < SIZE {
                let n = r.read(&mut b).unwrap();
                assert!(n > 0 && b[..n].iter().all(|&x| x == b'c'));
                got += n;
            }
            drop(writer.join().unwrap());
            got
        });
        let got = serve(srv.clone(), |port| {
            let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut s = tls_connect(tcp);
            tls_line(&mut s);
            s.write_all(b"USER u\r\nPASS p\r\n").unwrap();
            tls_line(&mut s);
            assert_eq!(tls_line(&mut s), "+OK in\r\n");
            // One thread cannot write and read a TLS stream at once with
            // blocking sockets: interleave in small steps.
            let chunk = vec![b'c'; 16384];
            let (mut sent, mut got) = (0, 0);
            let mut b = vec![0u8; 65536];
            s.get_ref().set_nonblocking(true).unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while (sent < SIZE || got < SIZE) && Instant::now() < deadline {
                if sent < SIZE {
                    match s.ssl_write(&chunk[..chunk.len().min(SIZE - sent)]) {
                        Ok(n) => sent += n,
                        Err(e)
                            if e.code() == openssl::ssl::ErrorCode::WANT_WRITE
                                || e.code() == openssl::ssl::ErrorCode::WANT_READ => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                match s.ssl_read(&mut b) {
                    Ok(n) => {
                        assert!(n > 0 && b[..n].iter().all(|&x| x == b'b'));
                        got += n;
                    }
                    Err(e)
                        if e.code() == openssl::ssl::ErrorCode::WANT_READ
                            || e.code() == openssl::ssl::ErrorCode::WANT_WRITE =>
                    {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            s.get_ref().set_nonblocking(false).unwrap();
            // The backend closes: the proxy ends with close_notify.
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
            (sent, got, s.get_shutdown())
        });
        assert_eq!((got.0, got.1), (SIZE, SIZE));
        assert!(
            got.2.contains(openssl::ssl::ShutdownState::RECEIVED),
            "{:?}",
            got.2
        );
        assert_eq!(backend.join().unwrap(), SIZE);
        auth.join().unwrap();
        assert!(log_text(&srv).contains("proxied session done"));
    }

    thread_local! {
        /// How many sessions boxed their login gatherings on this thread.
        pub(super) static SHARED_BOXED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// Reports, in the loop's thread, the pooled buffers in use (POP3
    /// client buffers, `proxy_buffer`s, reply vectors) and the boxed login
    /// gatherings each time the test thread writes `?` to the pipe; stops
    /// the loop on `q`.
    struct Probe(
        std::os::unix::net::UnixStream,
        std::sync::mpsc::Sender<(usize, usize, usize, usize)>,
    );

    impl Control for Probe {
        fn fds(&self) -> Vec<RawFd> {
            use std::os::fd::AsRawFd;
            vec![self.0.as_raw_fd()]
        }
        fn poll(&mut self) -> Vec<Command> {
            let mut b = [0u8; 1];
            match self.0.read(&mut b) {
                Ok(1) if b[0] == b'?' => {
                    let counts = bufpool::with(|p| {
                        (
                            p.in_use(crate::mail::parse::pop3::POP3_BUFFER_SIZE),
                            p.in_use(4096),
                            p.replies_in_use(),
                            SHARED_BOXED.with(|n| n.get()),
                        )
                    });
                    let _ = self.1.send(counts);
                    Vec::new()
                }
                _ => vec![Command::Terminate],
            }
        }
    }

    /// Every idle connection carries a session: rarely used data is boxed
    /// (the front end, the stages, PROXY protocol addresses, the login
    /// gatherings) to keep it small.
    #[test]
    fn session_stays_compact() {
        assert!(std::mem::size_of::<Stage>() <= 48);
        // (debug builds lay it out a few bytes larger than release)
        assert!(
            std::mem::size_of::<Session>() <= 328,
            "{}",
            std::mem::size_of::<Session>()
        );
    }

    /// An idle session holds no pooled buffer, before login and while
    /// proxying, and buffers in use go back as soon as data has moved; the
    /// login gatherings are not boxed until a command comes.
    #[test]
    fn idle_sessions_hold_no_buffers() {
        let (auth_l, auth_port) = listener();
        let (backend_l, backend_port) = listener();
        let srv = server(
            &format!("auth_http 127.0.0.1:{auth_port}/a;"),
            "protocol pop3;",
            false,
        );
        let reply: &'static str = Box::leak(
            format!(
                "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: {backend_port}\r\n\r\n"
            )
            .into_boxed_str(),
        );
        let auth = auth_once(auth_l, reply);
        let backend = std::thread::spawn(move || {
            let (c, _) = backend_l.accept().unwrap();
            let mut w = c.try_clone().unwrap();
            let mut r = BufReader::new(c);
            w.write_all(b"+OK backend\r\n").unwrap();
            for reply in ["+OK u\r\n", "+OK p\r\n", "+OK noop\r\n"] {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                w.write_all(reply.as_bytes()).unwrap();
            }
            let mut rest = Vec::new();
            let _ = r.read_to_end(&mut rest);
        });
        let (l, port) = listener();
        l.set_nonblocking(true).unwrap();
        let mut lp = EventLoop::new(
            vec![Listening {
                sock: ListenSock::Tcp(mio::net::TcpListener::from_std(l)),
                addr_text: "test".into(),
                id: 0,
            }],
            Box::new(TestAcceptor(srv)),
            crate::event::Settings {
                worker_connections: 16,
                multi_accept: false,
                timer_resolution: None,
                shutdown_timeout: None,
                debug_connection: Vec::new(),
                reserved: 0,
            },
            Box::new(|| 1),
        )
        .unwrap();
        let (probe_a, probe_b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let client = std::thread::spawn(move || {
            let mut probe = probe_a;
            let mut ask = || {
                probe.write_all(b"?").unwrap();
                rx.recv().unwrap()
            };
            let (mut w, mut r) = connect(port);
            let mut seen = Vec::new();
            assert!(line(&mut r).starts_with("+OK"));
            seen.push(ask());
            w.write_all(b"USER u\r\n").unwrap();
            assert!(line(&mut r).starts_with("+OK"));
            seen.push(ask());
            w.write_all(b"PASS p\r\n").unwrap();
            assert_eq!(line(&mut r), "+OK p\r\n");
            seen.push(ask());
            w.write_all(b"NOOP\r\n").unwrap();
            assert_eq!(line(&mut r), "+OK noop\r\n");
            seen.push(ask());
            drop(w);
            probe.write_all(b"q").unwrap();
            seen
        });
        lp.run(&mut Probe(probe_b, tx)).unwrap();
        let seen = client.join().unwrap();
        // No pooled buffer is held between commands; the login gatherings
        // are boxed with the first command, not while the client is idle
        // after the greeting.
        assert_eq!(
            seen,
            vec![(0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 0, 1), (0, 0, 0, 1)]
        );
        auth.join().unwrap();
        backend.join().unwrap();
    }

    /// Quits the loop gracefully when the test thread writes to the pipe.
    struct Quit(std::os::unix::net::UnixStream);

    impl Control for Quit {
        fn fds(&self) -> Vec<RawFd> {
            use std::os::fd::AsRawFd;
            vec![self.0.as_raw_fd()]
        }
        fn poll(&mut self) -> Vec<Command> {
            let mut b = [0u8; 8];
            let _ = self.0.read(&mut b);
            vec![Command::Quit]
        }
    }

    /// A graceful shutdown leaves a session before login and a relayed one
    /// open; `worker_shutdown_timeout` closes both, the relayed one with
    /// nginx's `shutdown timeout` line.
    #[test]
    fn graceful_shutdown_waits_then_times_out() {
        let (auth_l, auth_port) = listener();
        let (backend_l, backend_port) = listener();
        let srv = server(
            &format!("auth_http 127.0.0.1:{auth_port}/a;"),
            "protocol pop3;",
            false,
        );
        let reply: &'static str = Box::leak(
            format!(
                "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: {backend_port}\r\n\r\n"
            )
            .into_boxed_str(),
        );
        let auth = auth_once(auth_l, reply);
        let backend = std::thread::spawn(move || {
            let (c, _) = backend_l.accept().unwrap();
            let mut w = c.try_clone().unwrap();
            let mut r = BufReader::new(c);
            w.write_all(b"+OK backend\r\n").unwrap();
            for reply in ["+OK\r\n", "+OK in\r\n"] {
                line(&mut r);
                w.write_all(reply.as_bytes()).unwrap();
            }
            let noop = line(&mut r);
            // Held open until the proxy closes it.
            let eof = line(&mut r);
            (noop, eof)
        });
        let (l, port) = listener();
        l.set_nonblocking(true).unwrap();
        let mut lp = EventLoop::new(
            vec![Listening {
                sock: ListenSock::Tcp(mio::net::TcpListener::from_std(l)),
                addr_text: "test".into(),
                id: 0,
            }],
            Box::new(TestAcceptor(srv.clone())),
            crate::event::Settings {
                worker_connections: 16,
                multi_accept: false,
                timer_resolution: None,
                shutdown_timeout: Some(Duration::from_millis(300)),
                debug_connection: Vec::new(),
                reserved: 0,
            },
            Box::new(|| 1),
        )
        .unwrap();
        let (quit_a, quit_b) = std::os::unix::net::UnixStream::pair().unwrap();
        quit_b.set_nonblocking(true).unwrap();
        let client = std::thread::spawn(move || {
            let (mut w, mut r) = connect(port);
            line(&mut r);
            w.write_all(b"USER u\r\nPASS p\r\n").unwrap();
            line(&mut r);
            let logged_in = line(&mut r);
            let (_w2, mut r2) = connect(port);
            let greeting = line(&mut r2);
            let mut q = quit_a;
            q.write_all(b"q").unwrap();
            std::thread::sleep(Duration::from_millis(100));
            // Both still served after the QUIT.
            w.write_all(b"NOOP\r\n").unwrap();
            let started = Instant::now();
            let eof = (line(&mut r), line(&mut r2));
            (logged_in, greeting, eof, started.elapsed())
        });
        let exit = lp.run(&mut Quit(quit_b)).unwrap();
        let (logged_in, greeting, eof, waited) = client.join().unwrap();
        assert_eq!(exit, crate::event::Exit::Drained);
        assert_eq!(logged_in, "+OK in\r\n");
        assert_eq!(greeting, "+OK POP3 ready\r\n");
        assert_eq!(eof, (String::new(), String::new()));
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert_eq!(
            backend.join().unwrap(),
            ("NOOP\r\n".to_string(), String::new())
        );
        auth.join().unwrap();
        let log = log_text(&srv);
        assert!(
            log.contains(
                "shutdown timeout while proxying, client: 127.0.0.1, server: 127.0.0.1:1, login: \"u\", upstream: 127.0.0.1:"
            ),
            "{log}"
        );
    }
}
