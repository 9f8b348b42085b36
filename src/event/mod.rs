//! Each worker's mio event loop: listening sockets, a slab of connections,
//! timers, and graceful-shutdown draining.
//!
//! The loop knows nothing of mail: an [`Acceptor`] turns each accepted
//! socket into a [`Handler`], and the loop only delivers readiness and
//! timer expiries to handlers through a [`Ctx`]. Process control (signals,
//! the master's channel) comes in through a [`Control`].

pub mod timer;

pub use timer::{TimerId, Timers};

use crate::conf::{Cidr, Level};
use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Registry, Token};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// The result of a read or write on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoStatus {
    /// This many bytes were transferred (never 0).
    Done(usize),
    WouldBlock,
    /// The peer closed (read returned 0) or the socket failed.
    Closed,
}

/// Byte streams as sessions see them; a TLS stream implements this over a
/// plain one.
pub trait Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<IoStatus>;
    fn write(&mut self, buf: &[u8]) -> io::Result<IoStatus>;
    /// A write followed at once by more: a TCP socket may hold back a
    /// partly filled segment (`MSG_MORE`) until the next plain write or
    /// [`Io::push`], so a bulk transfer goes out in full segments even
    /// with TCP_NODELAY on.
    fn write_more(&mut self, buf: &[u8]) -> io::Result<IoStatus> {
        self.write(buf)
    }
    /// Send whatever [`Io::write_more`] left held back.
    fn push(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `send(MSG_MORE)` on a TCP socket (mio has no flags on writes).
pub fn send_more(sock: &impl std::os::fd::AsRawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live slice of `buf.len()` bytes that send() only
    // reads; the descriptor belongs to `sock`, borrowed for the whole call.
    let n = unsafe {
        libc::send(
            sock.as_raw_fd(),
            buf.as_ptr().cast::<libc::c_void>(),
            buf.len(),
            libc::MSG_MORE | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // send() returned a length no larger than buf.len().
    Ok(n as usize)
}

/// Send what `send_more` held back: setting TCP_NODELAY (again) makes
/// Linux push the pending frames at once.
pub fn push_tcp(sock: &TcpStream) -> io::Result<()> {
    sock.set_nodelay(true)
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

/// An accepted client socket.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Io for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<IoStatus> {
        status(match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        })
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<IoStatus> {
        status(match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        })
    }
    fn write_more(&mut self, buf: &[u8]) -> io::Result<IoStatus> {
        match self {
            Stream::Tcp(s) => status(send_more(s, buf)),
            Stream::Unix(_) => self.write(buf),
        }
    }
    fn push(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => push_tcp(s),
            Stream::Unix(_) => Ok(()),
        }
    }
}

impl std::os::fd::AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl Stream {
    /// The local address of a TCP connection (getsockname, so only asked
    /// for when needed, as nginx does).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Stream::Tcp(s) => s.local_addr().ok(),
            Stream::Unix(_) => None,
        }
    }

    /// Look at the bytes waiting on the socket without taking them
    /// (`recv(MSG_PEEK)`), as nginx reads a PROXY protocol header: what
    /// follows the header stays queued for the protocol (or TLS) after it.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<IoStatus> {
        use std::os::fd::AsRawFd;
        let fd = self.as_raw_fd();
        // SAFETY: `buf` is a live, writable slice of `buf.len()` bytes and
        // recv() writes at most that many; `fd` belongs to `self`, which is
        // borrowed for the whole call, so it stays open.
        let n = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr().cast::<libc::c_void>(),
                buf.len(),
                libc::MSG_PEEK,
            )
        };
        if n < 0 {
            return status(Err(io::Error::last_os_error()));
        }
        // recv() returned a length no larger than buf.len().
        status(Ok(n as usize))
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(r, t, i),
            Stream::Unix(s) => s.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(r, t, i),
            Stream::Unix(s) => s.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(r),
            Stream::Unix(s) => s.deregister(r),
        }
    }
}

/// A client address as logged: `127.0.0.1:5555`, `[::1]:5555`, `unix:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    Inet(SocketAddr),
    Unix,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Inet(a) => write!(f, "{a}"),
            Peer::Unix => f.write_str("unix:"),
        }
    }
}

/// A listening socket of the loop.
#[derive(Debug)]
pub enum ListenSock {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl ListenSock {
    fn source(&mut self) -> &mut dyn Source {
        match self {
            ListenSock::Tcp(l) => l,
            ListenSock::Unix(l) => l,
        }
    }

    fn accept(&mut self) -> io::Result<(Stream, Peer)> {
        match self {
            ListenSock::Tcp(l) => {
                let (s, peer) = l.accept()?;
                Ok((Stream::Tcp(s), Peer::Inet(peer)))
            }
            ListenSock::Unix(l) => {
                let (s, _) = l.accept()?;
                Ok((Stream::Unix(s), Peer::Unix))
            }
        }
    }
}

/// A listening socket with what the loop needs to know about it.
#[derive(Debug)]
pub struct Listening {
    pub sock: ListenSock,
    /// As nginx prints it (`127.0.0.1:143`), for messages about the socket.
    pub addr_text: String,
    /// Opaque to the loop; handed back to the acceptor (an index into the
    /// process's socket table).
    pub id: usize,
}

/// A freshly accepted connection, before a handler exists for it.
#[derive(Debug)]
pub struct Accepted {
    pub stream: Stream,
    pub peer: Peer,
    /// `Listening::id` of the socket it came in on.
    pub listening: usize,
}

/// What a handler wants after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    Close,
}

/// Readiness delivered to a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// Which of the connection's sources is ready: the index given to
    /// [`Ctx::register_source`] (0 for [`Ctx::register`]).
    pub source: usize,
    pub readable: bool,
    pub writable: bool,
    /// Hang-up or error reported by the kernel.
    pub closed: bool,
    /// The peer shut down its sending side (or the socket hung up): data
    /// still queued can be read, but no more will come.
    pub read_closed: bool,
}

/// What a handler may use while handling an event.
pub struct Ctx<'a> {
    token: usize,
    pub registry: &'a Registry,
    pub timers: &'a mut Timers,
    /// nginx's connection number (`*N` in logs).
    pub number: u64,
    /// The client matched `debug_connection`.
    pub debug: bool,
}

/// How many sources one connection may register (client, auth_http,
/// backend, resolver sockets ...): the low bits of each token.
pub const MAX_SOURCES: usize = 8;
const SOURCE_BITS: u32 = MAX_SOURCES.trailing_zeros();

fn source_token(slot: usize, source: usize) -> Token {
    debug_assert!(source < MAX_SOURCES);
    Token(slot << SOURCE_BITS | (source & (MAX_SOURCES - 1)))
}

impl Ctx<'_> {
    /// Register the connection's main source (index 0).
    pub fn register(&self, src: &mut dyn Source, interest: Interest) -> io::Result<()> {
        self.register_source(src, 0, interest)
    }
    pub fn reregister(&self, src: &mut dyn Source, interest: Interest) -> io::Result<()> {
        self.reregister_source(src, 0, interest)
    }
    /// Register another source of this connection; its readiness comes
    /// back with `Readiness::source == index` (below [`MAX_SOURCES`]).
    pub fn register_source(
        &self,
        src: &mut dyn Source,
        index: usize,
        interest: Interest,
    ) -> io::Result<()> {
        src.register(self.registry, source_token(self.token, index), interest)
    }
    pub fn reregister_source(
        &self,
        src: &mut dyn Source,
        index: usize,
        interest: Interest,
    ) -> io::Result<()> {
        src.reregister(self.registry, source_token(self.token, index), interest)
    }
    /// The token a source of this connection is registered with, for
    /// registrations made directly on [`Ctx::registry`] (several raw
    /// descriptors sharing one index, as the resolver's sockets do).
    pub fn source_token(&self, index: usize) -> Token {
        source_token(self.token, index)
    }
    /// Stop watching a source (before dropping it).
    pub fn deregister(&self, src: &mut dyn Source) -> io::Result<()> {
        src.deregister(self.registry)
    }
    /// Start a timer for this connection; `tag` comes back in `timeout`.
    pub fn add_timer(&mut self, after: Duration, tag: u32) -> TimerId {
        self.timers.add(after, self.token, tag)
    }
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.timers.cancel(id)
    }
}

/// One connection's state machine (a mail session's stage enum, later).
pub trait Handler {
    fn ready(&mut self, ctx: &mut Ctx<'_>, ev: Readiness) -> Next;
    fn timeout(&mut self, ctx: &mut Ctx<'_>, tag: u32) -> Next;
    /// Whether the connection may be closed at once on graceful shutdown
    /// (nginx's idle connections, e.g. waiting for a client command).
    fn is_idle(&self) -> bool {
        false
    }
    /// `worker_shutdown_timeout` has expired during a graceful shutdown:
    /// the connection is closed right after this (log why, if needed).
    fn shutdown_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let _ = ctx;
    }
    /// Called before the loop drops the handler (deregister, final log).
    fn close(&mut self, ctx: &mut Ctx<'_>) {
        let _ = ctx;
    }
}

/// Turns accepted sockets into handlers.
pub trait Acceptor {
    /// `None` = the connection is already finished (closed).
    fn accept(&mut self, conn: Accepted, ctx: &mut Ctx<'_>) -> Option<Box<dyn Handler>>;
}

/// Commands from the process side.
pub enum Command {
    /// Graceful shutdown: stop accepting, close idle connections, let the
    /// rest finish (nginx's QUIT).
    Quit,
    /// Fast shutdown (TERM/INT).
    Terminate,
    /// Replace the listening sockets and the acceptor (reload in a single
    /// process): connections in flight keep their handlers.
    Replace {
        listening: Vec<Listening>,
        acceptor: Box<dyn Acceptor>,
        settings: Settings,
    },
}

/// The process side of the loop: descriptors to watch and what they mean.
pub trait Control {
    fn fds(&self) -> Vec<RawFd>;
    /// Called when any control descriptor is readable; drains it and
    /// returns commands (reopen is handled inside).
    fn poll(&mut self) -> Vec<Command>;
}

/// The `events {}` and related settings the loop honours.
#[derive(Debug, Clone)]
pub struct Settings {
    pub worker_connections: usize,
    pub multi_accept: bool,
    pub timer_resolution: Option<Duration>,
    pub shutdown_timeout: Option<Duration>,
    pub debug_connection: Vec<Cidr>,
    /// Connections the process itself uses (the master channel), counted
    /// against `worker_connections` as nginx does.
    pub reserved: usize,
}

/// Whether a peer matches a `debug_connection` entry.
pub fn debug_match(rules: &[Cidr], peer: &Peer) -> bool {
    rules.iter().any(|r| match (r, peer) {
        (Cidr::Unix, Peer::Unix) => true,
        (Cidr::V4 { addr, prefix }, Peer::Inet(a)) => match a.ip() {
            IpAddr::V4(ip) => prefix_eq(&addr.octets(), &ip.octets(), *prefix),
            IpAddr::V6(ip) => ip
                .to_ipv4_mapped()
                .is_some_and(|ip| prefix_eq(&addr.octets(), &ip.octets(), *prefix)),
        },
        (Cidr::V6 { addr, prefix }, Peer::Inet(a)) => match a.ip() {
            IpAddr::V6(ip) => prefix_eq(&addr.octets(), &ip.octets(), *prefix),
            IpAddr::V4(_) => false,
        },
        _ => false,
    })
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let mut bits = prefix as usize;
    for (x, y) in a.iter().zip(b) {
        if bits == 0 {
            return true;
        }
        let mask: u8 = if bits >= 8 { 0xff } else { !(0xffu8 >> bits) };
        if x & mask != y & mask {
            return false;
        }
        bits = bits.saturating_sub(8);
    }
    true
}

struct Slot {
    handler: Box<dyn Handler>,
    number: u64,
    debug: bool,
}

/// The loop-owned timer for `worker_shutdown_timeout`.
const LOOP_OWNER: usize = usize::MAX;
/// Token space: connections use 0.. (slot << SOURCE_BITS | source),
/// listeners and control fds the top.
const LISTEN_BASE: usize = usize::MAX / 2;
const CONTROL_BASE: usize = usize::MAX / 2 + (1 << 20);

/// Control descriptors are registered through this thin source.
struct FdSource(RawFd);

impl Source for FdSource {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        mio::unix::SourceFd(&self.0).register(r, t, i)
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        mio::unix::SourceFd(&self.0).reregister(r, t, i)
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        mio::unix::SourceFd(&self.0).deregister(r)
    }
}

pub struct EventLoop {
    poll: Poll,
    listening: Vec<Listening>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    active: usize,
    timers: Timers,
    settings: Settings,
    acceptor: Box<dyn Acceptor>,
    next_number: Box<dyn Fn() -> u64>,
    /// Listeners that may still have connections queued (multi_accept off
    /// takes one per turn; mio is edge-triggered, so we come back).
    pending_accept: Vec<usize>,
    exiting: bool,
}

/// Why `EventLoop::run` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Graceful shutdown finished: no connections left.
    Drained,
    /// Terminate command.
    Terminated,
}

impl EventLoop {
    pub fn new(
        listening: Vec<Listening>,
        acceptor: Box<dyn Acceptor>,
        settings: Settings,
        next_number: Box<dyn Fn() -> u64>,
    ) -> io::Result<EventLoop> {
        let poll = Poll::new()?;
        let mut lp = EventLoop {
            poll,
            listening: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            active: 0,
            timers: Timers::new(),
            settings,
            acceptor,
            next_number,
            pending_accept: Vec::new(),
            exiting: false,
        };
        lp.set_listening(listening)?;
        Ok(lp)
    }

    fn set_listening(&mut self, listening: Vec<Listening>) -> io::Result<()> {
        for mut l in std::mem::take(&mut self.listening) {
            let _ = l.sock.source().deregister(self.poll.registry());
        }
        self.pending_accept.clear();
        self.listening = listening;
        for (i, l) in self.listening.iter_mut().enumerate() {
            l.sock.source().register(
                self.poll.registry(),
                Token(LISTEN_BASE + i),
                Interest::READABLE,
            )?;
            // Connections may already be queued from before we registered.
            self.pending_accept.push(i);
        }
        Ok(())
    }

    /// Connections open now (for tests and shutdown).
    pub fn active(&self) -> usize {
        self.active
    }

    /// How many client connections fit: nginx counts every listening
    /// socket and the channel against `worker_connections`.
    fn capacity(&self) -> usize {
        self.settings
            .worker_connections
            .saturating_sub(self.listening.len() + self.settings.reserved)
    }

    /// Run until a terminate command or the end of a graceful shutdown.
    pub fn run(&mut self, control: &mut dyn Control) -> io::Result<Exit> {
        let control_fds = control.fds();
        for (i, fd) in control_fds.iter().enumerate() {
            FdSource(*fd).register(
                self.poll.registry(),
                Token(CONTROL_BASE + i),
                Interest::READABLE,
            )?;
        }
        let mut events = Events::with_capacity(512);
        loop {
            if self.exiting && self.active == 0 {
                return Ok(Exit::Drained);
            }
            let now = Instant::now();
            let mut timeout = self
                .timers
                .poll_timeout(now, self.settings.timer_resolution);
            if !self.pending_accept.is_empty() {
                timeout = Some(Duration::ZERO);
            }
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    crate::logging::emit(
                        Level::Alert,
                        None,
                        format_args!("epoll_wait() failed{}", crate::logging::errno_suffix(&e)),
                    );
                }
                continue;
            }
            let mut control_ready = false;
            let mut accept_ready: Vec<usize> = std::mem::take(&mut self.pending_accept);
            for ev in events.iter() {
                let t = ev.token().0;
                if t >= CONTROL_BASE {
                    control_ready = true;
                } else if t >= LISTEN_BASE {
                    let i = t - LISTEN_BASE;
                    if !accept_ready.contains(&i) {
                        accept_ready.push(i);
                    }
                } else {
                    let r = Readiness {
                        source: t & (MAX_SOURCES - 1),
                        readable: ev.is_readable() || ev.is_read_closed(),
                        writable: ev.is_writable() || ev.is_write_closed(),
                        closed: ev.is_error(),
                        read_closed: ev.is_read_closed(),
                    };
                    self.dispatch(t >> SOURCE_BITS, |h, ctx| h.ready(ctx, r));
                }
            }
            if !self.exiting {
                for i in accept_ready {
                    self.accept_on(i);
                }
            }
            let now = Instant::now();
            while let Some((owner, tag)) = self.timers.pop_expired(now) {
                if owner == LOOP_OWNER {
                    self.shutdown_timeout();
                } else {
                    self.dispatch(owner, |h, ctx| h.timeout(ctx, tag));
                }
            }
            if control_ready {
                for cmd in control.poll() {
                    match cmd {
                        Command::Terminate => {
                            self.close_all();
                            return Ok(Exit::Terminated);
                        }
                        Command::Quit => self.begin_shutdown(),
                        Command::Replace {
                            listening,
                            acceptor,
                            settings,
                        } => {
                            self.acceptor = acceptor;
                            self.settings = settings;
                            if !self.exiting {
                                self.set_listening(listening)?;
                            }
                        }
                    }
                }
            }
        }
    }

    fn begin_shutdown(&mut self) {
        if self.exiting {
            return;
        }
        self.exiting = true;
        if let Some(t) = self.settings.shutdown_timeout {
            self.timers.add(t, LOOP_OWNER, 0);
        }
        // Stop accepting: the sockets close here (the master keeps its own).
        for mut l in std::mem::take(&mut self.listening) {
            let _ = l.sock.source().deregister(self.poll.registry());
        }
        self.pending_accept.clear();
        let idle: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().filter(|s| s.handler.is_idle()).map(|_| i))
            .collect();
        for i in idle {
            self.close_slot(i);
        }
    }

    fn shutdown_timeout(&mut self) {
        for i in 0..self.slots.len() {
            self.dispatch(i, |h, ctx| {
                h.shutdown_timeout(ctx);
                Next::Close
            });
        }
    }

    fn close_all(&mut self) {
        for i in 0..self.slots.len() {
            if self.slots[i].is_some() {
                self.close_slot(i);
            }
        }
    }

    fn dispatch(&mut self, token: usize, f: impl FnOnce(&mut dyn Handler, &mut Ctx<'_>) -> Next) {
        let Some(slot) = self.slots.get_mut(token).and_then(|s| s.as_mut()) else {
            return;
        };
        let mut ctx = Ctx {
            token,
            registry: self.poll.registry(),
            timers: &mut self.timers,
            number: slot.number,
            debug: slot.debug,
        };
        if f(slot.handler.as_mut(), &mut ctx) == Next::Close {
            self.close_slot(token);
        }
    }

    fn close_slot(&mut self, token: usize) {
        if let Some(mut slot) = self.slots[token].take() {
            let mut ctx = Ctx {
                token,
                registry: self.poll.registry(),
                timers: &mut self.timers,
                number: slot.number,
                debug: slot.debug,
            };
            slot.handler.close(&mut ctx);
            self.timers.cancel_owner(token);
            self.free.push(token);
            self.active -= 1;
        }
    }

    fn accept_on(&mut self, i: usize) {
        let capacity = self.capacity();
        loop {
            let Some(l) = self.listening.get_mut(i) else {
                return;
            };
            let (stream, peer) = match l.sock.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let code = e.raw_os_error().unwrap_or(0);
                    let level = match code {
                        libc::ECONNABORTED => Level::Error,
                        libc::EMFILE | libc::ENFILE => Level::Crit,
                        _ => Level::Alert,
                    };
                    crate::logging::emit(
                        level,
                        None,
                        format_args!("accept4() failed{}", crate::logging::errno_suffix(&e)),
                    );
                    if code == libc::ECONNABORTED {
                        continue;
                    }
                    // Out of descriptors: try again on a later turn rather
                    // than spinning now.
                    return;
                }
            };
            let listening = l.id;
            if self.active >= capacity {
                crate::logging::emit(
                    Level::Alert,
                    None,
                    format_args!(
                        "{} worker_connections are not enough",
                        self.settings.worker_connections
                    ),
                );
                drop(stream);
            } else {
                let token = self.free.pop().unwrap_or_else(|| {
                    self.slots.push(None);
                    self.slots.len() - 1
                });
                let number = (self.next_number)();
                let debug = debug_match(&self.settings.debug_connection, &peer);
                let mut ctx = Ctx {
                    token,
                    registry: self.poll.registry(),
                    timers: &mut self.timers,
                    number,
                    debug,
                };
                let accepted = Accepted {
                    stream,
                    peer,
                    listening,
                };
                match self.acceptor.accept(accepted, &mut ctx) {
                    Some(handler) => {
                        self.slots[token] = Some(Slot {
                            handler,
                            number,
                            debug,
                        });
                        self.active += 1;
                    }
                    None => {
                        self.timers.cancel_owner(token);
                        self.free.push(token);
                    }
                }
            }
            if !self.settings.multi_accept {
                // One per turn, as nginx without multi_accept; come back
                // next turn for the rest of the queue.
                self.pending_accept.push(i);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn debug_connection_matching() {
        let rules = vec![
            Cidr::V4 {
                addr: "192.168.1.0".parse().unwrap(),
                prefix: 24,
            },
            Cidr::V6 {
                addr: "::1".parse().unwrap(),
                prefix: 128,
            },
        ];
        let p = |s: &str| Peer::Inet(s.parse().unwrap());
        assert!(debug_match(&rules, &p("192.168.1.77:1")));
        assert!(!debug_match(&rules, &p("192.168.2.1:1")));
        assert!(debug_match(&rules, &p("[::1]:5")));
        assert!(!debug_match(&rules, &Peer::Unix));
        assert!(debug_match(&[Cidr::Unix], &Peer::Unix));
        assert!(prefix_eq(&[10, 1, 2, 3], &[10, 9, 9, 9], 8));
        assert!(!prefix_eq(&[10, 1, 2, 3], &[10, 129, 9, 9], 9));
        assert!(prefix_eq(&[10, 1, 2, 3], &[10, 9, 9, 9], 9));
    }

    /// Echoes one line then asks to close; idle until it has read.
    struct Echo {
        stream: Stream,
        got: bool,
        timer: Option<TimerId>,
    }

    impl Handler for Echo {
        fn ready(&mut self, ctx: &mut Ctx<'_>, _ev: Readiness) -> Next {
            let mut buf = [0u8; 64];
            loop {
                match self.stream.read(&mut buf).unwrap_or(IoStatus::Closed) {
                    IoStatus::Done(n) => {
                        self.got = true;
                        if let Some(t) = self.timer.take() {
                            ctx.cancel_timer(t);
                        }
                        let _ = self.stream.write(&buf[..n]);
                    }
                    IoStatus::WouldBlock => return Next::Continue,
                    IoStatus::Closed => return Next::Close,
                }
            }
        }
        fn timeout(&mut self, _ctx: &mut Ctx<'_>, _tag: u32) -> Next {
            let _ = self.stream.write(b"timeout\n");
            Next::Close
        }
        fn is_idle(&self) -> bool {
            !self.got
        }
    }

    struct EchoAcceptor {
        accepted: Rc<Cell<usize>>,
    }

    impl Acceptor for EchoAcceptor {
        fn accept(&mut self, mut conn: Accepted, ctx: &mut Ctx<'_>) -> Option<Box<dyn Handler>> {
            self.accepted.set(self.accepted.get() + 1);
            ctx.register(&mut conn.stream, Interest::READABLE).unwrap();
            let timer = Some(ctx.add_timer(Duration::from_millis(200), 1));
            Some(Box::new(Echo {
                stream: conn.stream,
                got: false,
                timer,
            }))
        }
    }

    /// Control over a pipe: each byte is a command (q = quit, t = terminate).
    struct PipeControl(std::os::unix::net::UnixStream);

    impl Control for PipeControl {
        fn fds(&self) -> Vec<RawFd> {
            use std::os::fd::AsRawFd;
            vec![self.0.as_raw_fd()]
        }
        fn poll(&mut self) -> Vec<Command> {
            let mut b = [0u8; 16];
            let mut out = Vec::new();
            if let Ok(n) = std::io::Read::read(&mut self.0, &mut b) {
                for c in &b[..n] {
                    out.push(if *c == b'q' {
                        Command::Quit
                    } else {
                        Command::Terminate
                    });
                }
            }
            out
        }
    }

    fn settings(conns: usize) -> Settings {
        Settings {
            worker_connections: conns,
            multi_accept: false,
            timer_resolution: None,
            shutdown_timeout: Some(Duration::from_secs(5)),
            debug_connection: Vec::new(),
            reserved: 1,
        }
    }

    #[test]
    fn accepts_serves_times_out_and_drains() {
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_l.set_nonblocking(true).unwrap();
        let addr = std_l.local_addr().unwrap();
        let listening = vec![Listening {
            sock: ListenSock::Tcp(TcpListener::from_std(std_l)),
            addr_text: addr.to_string(),
            id: 0,
        }];
        let accepted = Rc::new(Cell::new(0));
        let counter = Rc::new(Cell::new(0u64));
        let c2 = counter.clone();
        let mut lp = EventLoop::new(
            listening,
            Box::new(EchoAcceptor {
                accepted: accepted.clone(),
            }),
            settings(16),
            Box::new(move || {
                c2.set(c2.get() + 1);
                c2.get()
            }),
        )
        .unwrap();
        let (ctl_a, ctl_b) = std::os::unix::net::UnixStream::pair().unwrap();
        ctl_b.set_nonblocking(true).unwrap();
        let mut control = PipeControl(ctl_b);

        let client = std::thread::spawn(move || {
            use std::io::{BufRead, BufReader};
            // One client talks, then stays to be drained on quit.
            let mut talker = std::net::TcpStream::connect(addr).unwrap();
            talker.write_all(b"hello\n").unwrap();
            let mut r = BufReader::new(talker.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, "hello\n");
            // A silent one gets the timer.
            let silent = std::net::TcpStream::connect(addr).unwrap();
            let mut r2 = BufReader::new(silent);
            let mut l2 = String::new();
            r2.read_line(&mut l2).unwrap();
            assert_eq!(l2, "timeout\n");
            // Quit: talker is busy (not idle) and must be left open until
            // it closes itself.
            let mut a = ctl_a;
            a.write_all(b"q").unwrap();
            std::thread::sleep(Duration::from_millis(100));
            talker.write_all(b"still\n").unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, "still\n");
            drop(r);
            drop(talker);
        });
        let exit = lp.run(&mut control).unwrap();
        client.join().unwrap();
        assert_eq!(exit, Exit::Drained);
        assert_eq!(accepted.get(), 2);
        assert_eq!(counter.get(), 2);
        assert_eq!(lp.active(), 0);
    }

    /// Never finishes by itself: only the shutdown timer ends it.
    struct Stubborn {
        _stream: Stream,
        closed: Rc<Cell<bool>>,
        told: Rc<Cell<bool>>,
    }

    impl Handler for Stubborn {
        fn ready(&mut self, _ctx: &mut Ctx<'_>, _ev: Readiness) -> Next {
            Next::Continue
        }
        fn timeout(&mut self, _ctx: &mut Ctx<'_>, _tag: u32) -> Next {
            Next::Continue
        }
        fn shutdown_timeout(&mut self, _ctx: &mut Ctx<'_>) {
            // Told before it is closed.
            assert!(!self.closed.get());
            self.told.set(true);
        }
        fn close(&mut self, _ctx: &mut Ctx<'_>) {
            self.closed.set(true);
        }
    }

    struct StubbornAcceptor(Rc<Cell<bool>>, Rc<Cell<bool>>);

    impl Acceptor for StubbornAcceptor {
        fn accept(&mut self, mut conn: Accepted, ctx: &mut Ctx<'_>) -> Option<Box<dyn Handler>> {
            ctx.register(&mut conn.stream, Interest::READABLE).unwrap();
            Some(Box::new(Stubborn {
                _stream: conn.stream,
                closed: self.0.clone(),
                told: self.1.clone(),
            }))
        }
    }

    #[test]
    fn shutdown_timeout_closes_busy_connections_and_limit_applies() {
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_l.set_nonblocking(true).unwrap();
        let addr = std_l.local_addr().unwrap();
        let closed = Rc::new(Cell::new(false));
        let told = Rc::new(Cell::new(false));
        let mut s = settings(3);
        s.shutdown_timeout = Some(Duration::from_millis(150));
        s.multi_accept = true;
        let mut lp = EventLoop::new(
            vec![Listening {
                sock: ListenSock::Tcp(TcpListener::from_std(std_l)),
                addr_text: addr.to_string(),
                id: 0,
            }],
            Box::new(StubbornAcceptor(closed.clone(), told.clone())),
            s,
            Box::new(|| 1),
        )
        .unwrap();
        // 3 connections - 1 listener - 1 channel = room for one client.
        assert_eq!(lp.capacity(), 1);
        let (ctl_a, ctl_b) = std::os::unix::net::UnixStream::pair().unwrap();
        ctl_b.set_nonblocking(true).unwrap();
        let mut control = PipeControl(ctl_b);
        let client = std::thread::spawn(move || {
            let _keep = std::net::TcpStream::connect(addr).unwrap();
            // The second one is over the limit and is closed at once.
            let mut over = std::net::TcpStream::connect(addr).unwrap();
            let mut b = [0u8; 1];
            assert_eq!(std::io::Read::read(&mut over, &mut b).unwrap_or(0), 0);
            let mut a = ctl_a;
            a.write_all(b"q").unwrap();
            std::thread::sleep(Duration::from_millis(600));
        });
        let started = Instant::now();
        assert_eq!(lp.run(&mut control).unwrap(), Exit::Drained);
        assert!(closed.get());
        assert!(told.get());
        assert!(started.elapsed() >= Duration::from_millis(150));
        client.join().unwrap();
    }
}
