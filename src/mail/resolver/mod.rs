//! The client host name lookup of the SMTP front end (`resolver`,
//! `resolver_timeout`), as nginx's mail module does it before the greeting:
//!
//! 1. a PTR query for the client address (`in-addr.arpa` / `ip6.arpa`);
//! 2. the name must hold only letters, digits, `-` and `.` (RFC 1034 3.5),
//!    else the host is `[TEMPUNAVAIL]`;
//! 3. A (`ipv4=on`) and AAAA (`ipv6=on`) queries for that name; the client
//!    address must be among the answers, else `[UNAVAILABLE]`.
//!
//! NXDOMAIN or an empty answer gives `[UNAVAILABLE]`, any other DNS error
//! (SERVFAIL, REFUSED, NOTIMP) or no usable answer within
//! `resolver_timeout` gives `[TEMPUNAVAIL]`. Each of the two steps gets its
//! own `resolver_timeout`, as nginx starts a new resolver context for the
//! forward lookup.
//!
//! DNS itself is c-ares (the system `libc-ares`, see
//! `vendor-notes/c-ares.md`): it builds and parses messages, matches ids,
//! retries and rotates over the configured servers, and falls back to TCP
//! on truncated answers. We give it the servers of the `resolver`
//! directive only, never `/etc/resolv.conf` or `/etc/hosts`.
//!
//! A [`HostLookup`] owns one c-ares channel (none when answered wholly
//! from the cache) and its sockets, but no event loop and no log: the
//! session registers the sockets the lookup asks for
//! ([`HostLookup::apply_interest`] or [`HostLookup::take_fd_changes`]), calls
//! [`HostLookup::on_ready`] on readiness and [`HostLookup::on_timeout`] at
//! [`HostLookup::next_deadline`], writes the [`LogLine`]s it hands out with
//! its own connection context, and drops the lookup when it has an
//! [`Outcome`]. Dropping closes the sockets (which also removes them from
//! epoll).
//!
//! Successful answers are cached per worker and `resolver` as nginx does
//! ([`cache::HostCache`]): a client seen again within the TTL (or
//! `valid=`) is greeted without a query.
//!
//! Differences from nginx, all invisible to a client:
//! - servers whose `resolver` directives are the same share one cache
//!   (nginx shares it only where one directive is inherited).
//! - nginx resends a query every 5 s; c-ares starts with the same 5 s and
//!   doubles the wait on each round over the servers.
//! - An answer nginx would throw away (FORMERR, malformed, an rcode above
//!   5, a PTR name with bytes c-ares refuses) makes both wait for the
//!   timeout, giving `[TEMPUNAVAIL]` with `(110: Operation timed out)`;
//!   for a PTR name with such bytes (other than `_`, `/`, `*`, which reach
//!   our own check) nginx logs `resolved to invalid host name` instead.
//! - nginx's resolver-wide messages (`DNS error (…)`, `unexpected DNS
//!   response …`) have no counterpart: c-ares does not report them.

pub mod cache;
pub mod ttl;

use crate::conf::{Level, Resolver};
use c_ares::{AAAAResults, AResults, Channel, Error as AresError, Flags, Options, PTRResults};
use cache::HostCache;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// nginx's resolver resends an unanswered query after this long.
const RESEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts per server c-ares makes before it gives up on its own; with
/// its doubling waits this outlasts any usual `resolver_timeout`, which is
/// what ends a lookup.
const TRIES_PER_SERVER: u32 = 4;

/// The error code nginx logs for a lookup that timed out (its
/// NGX_RESOLVE_TIMEDOUT is the system's ETIMEDOUT).
const TIMED_OUT: i32 = libc::ETIMEDOUT;

/// The `log->action` while the PTR query runs (nginx: "while in resolving
/// client address").
pub const ACTION_ADDRESS: &str = "in resolving client address";
/// The `log->action` while the forward (A/AAAA) queries run.
pub const ACTION_HOSTNAME: &str = "in resolving client hostname";

/// Host text for a client whose name cannot be found (or `resolver off`).
pub const UNAVAILABLE: &str = "[UNAVAILABLE]";
/// Host text for a lookup that failed for now (or a UNIX-domain client).
pub const TEMPUNAVAIL: &str = "[TEMPUNAVAIL]";

/// The result of a lookup, nginx's `s->host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The PTR name, confirmed by its A/AAAA records.
    Found(String),
    /// NXDOMAIN, no record, or a name whose addresses do not include the
    /// client: `[UNAVAILABLE]`.
    NotFound,
    /// Timeout, SERVFAIL and other DNS errors, an invalid PTR name:
    /// `[TEMPUNAVAIL]`.
    TempFail,
}

impl Outcome {
    /// The text nginx uses in the SMTP flow, `Client-Host` and XCLIENT NAME.
    pub fn host_text(&self) -> &str {
        match self {
            Outcome::Found(name) => name,
            Outcome::NotFound => UNAVAILABLE,
            Outcome::TempFail => TEMPUNAVAIL,
        }
    }
}

/// A message for the session's error log: the session adds its connection
/// context (`while <action>, client: …, server: …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    pub action: &'static str,
    pub text: String,
}

/// A change in the sockets the lookup wants watched, in the order c-ares
/// made them (a socket may close and its number be reused at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdChange {
    /// Watch `fd` for these events (new, or new interest for a watched one).
    Watch {
        fd: RawFd,
        readable: bool,
        writable: bool,
    },
    /// `fd` is about to be closed: stop watching it.
    Forget { fd: RawFd },
}

/// Where a lookup registers its sockets: a registry and the token their
/// readiness should come back with (a session passes
/// `(ctx.registry, ctx.source_token(index))` so that all of them arrive as
/// one source of its connection).
pub trait FdRegistrar {
    fn register_fd(&self, fd: RawFd, interest: Interest) -> io::Result<()>;
    fn reregister_fd(&self, fd: RawFd, interest: Interest) -> io::Result<()>;
    fn deregister_fd(&self, fd: RawFd) -> io::Result<()>;
}

impl FdRegistrar for (&Registry, Token) {
    fn register_fd(&self, fd: RawFd, interest: Interest) -> io::Result<()> {
        self.0.register(&mut SourceFd(&fd), self.1, interest)
    }
    fn reregister_fd(&self, fd: RawFd, interest: Interest) -> io::Result<()> {
        self.0.reregister(&mut SourceFd(&fd), self.1, interest)
    }
    fn deregister_fd(&self, fd: RawFd) -> io::Result<()> {
        self.0.deregister(&mut SourceFd(&fd))
    }
}

/// What one query came back with, as nginx classes it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer<T> {
    Records(T),
    /// NOERROR without records of the type (nginx: no answers).
    Empty,
    /// An rcode nginx acts on: 2 SERVFAIL, 3 NXDOMAIN, 4 NOTIMP, 5 REFUSED.
    Rcode(i32),
    /// Nothing nginx would accept (no answer, FORMERR, malformed, transport
    /// failure): wait for the timeout.
    Unusable,
}

fn classify<T>(result: Result<T, AresError>) -> Answer<T> {
    match result {
        Ok(records) => Answer::Records(records),
        Err(AresError::ENODATA) => Answer::Empty,
        Err(AresError::ENOTFOUND) => Answer::Rcode(3),
        Err(AresError::ESERVFAIL) => Answer::Rcode(2),
        Err(AresError::ENOTIMP) => Answer::Rcode(4),
        Err(AresError::EREFUSED) => Answer::Rcode(5),
        Err(_) => Answer::Unusable,
    }
}

/// Addresses with their TTLs, as an A or AAAA answer gave them.
type Addrs = Vec<(IpAddr, u32)>;

/// What the c-ares callbacks leave for the lookup to pick up.
#[derive(Default)]
struct Shared {
    fd_changes: Vec<FdChange>,
    /// The PTR name, with the answer's TTL when it could be read.
    ptr: Option<Answer<(String, Option<u32>)>>,
    a: Option<Answer<Addrs>>,
    aaaa: Option<Answer<Addrs>>,
}

fn lock<T>(shared: &Mutex<T>) -> MutexGuard<'_, T> {
    // A callback cannot panic while holding the lock (c-ares aborts on a
    // panic in a callback), and the cache's methods do not panic, so a
    // poisoned lock still holds sound data.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A worker's cache for one `resolver`, shared by its sessions.
pub type SharedCache = Arc<Mutex<HostCache>>;

/// A new, empty cache for `resolver`.
pub fn new_cache(resolver: &Resolver) -> SharedCache {
    Arc::new(Mutex::new(HostCache::new(resolver.valid)))
}

/// The query type of PTR records.
const T_PTR: u16 = 12;
/// The Internet class.
const C_IN: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Address,
    /// The PTR name being confirmed; whether A / AAAA were asked.
    Hostname {
        name: String,
        want_a: bool,
        want_aaaa: bool,
    },
    Done,
}

/// One client's host name lookup. See the module docs for the protocol.
pub struct HostLookup {
    /// None for a lookup answered wholly from the cache.
    channel: Option<Channel>,
    shared: Arc<Mutex<Shared>>,
    client: IpAddr,
    ipv4: bool,
    ipv6: bool,
    timeout: Duration,
    stage: Stage,
    /// The end of the current step (`resolver_timeout` from its start).
    deadline: Instant,
    /// Sockets registered through [`HostLookup::apply_interest`].
    registered: BTreeMap<RawFd, Interest>,
    log: Vec<LogLine>,
    cache: SharedCache,
}

impl HostLookup {
    /// Start the lookup of `client` on the servers of `resolver`, with
    /// the worker's `cache` for it; `timeout` is `resolver_timeout` and
    /// bounds each of the two steps. The outcome comes at once when the
    /// cache holds both answers.
    pub fn start(
        resolver: &Resolver,
        cache: SharedCache,
        timeout: Duration,
        client: IpAddr,
        now: Instant,
    ) -> io::Result<(HostLookup, Option<Outcome>)> {
        if resolver.servers.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no name servers defined",
            ));
        }
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (cached_name, addrs_cached) = {
            let mut c = lock(&cache);
            let name = c.name_of(client, now);
            let addrs = name.as_ref().is_some_and(|n| c.addrs_of(n, now).is_some());
            (name, addrs)
        };
        // A client whose name and addresses are both cached needs no
        // channel (c-ares's set-up reads files and the random source).
        let mut channel = if addrs_cached {
            None
        } else {
            Some(new_channel(&shared, resolver)?)
        };
        // With the PTR name alone cached, only the forward queries go out.
        if let (None, Some(channel)) = (&cached_name, channel.as_mut()) {
            let ptr_result = Arc::clone(&shared);
            channel.query(
                &reverse_name(client),
                C_IN,
                T_PTR,
                move |result: Result<&[u8], _>| {
                    let answer = classify(result.and_then(|msg| {
                        let name = PTRResults::parse_from(msg)?.hostname().to_owned();
                        Ok((name, ttl::min_answer_ttl(msg, T_PTR)))
                    }));
                    lock(&ptr_result).ptr = Some(answer);
                },
            );
        }
        let mut lookup = HostLookup::new(channel, shared, resolver, cache, timeout, client, now);
        let outcome = cached_name.and_then(|name| lookup.address_resolved(name, now));
        Ok((lookup, outcome))
    }

    fn new(
        channel: Option<Channel>,
        shared: Arc<Mutex<Shared>>,
        resolver: &Resolver,
        cache: SharedCache,
        timeout: Duration,
        client: IpAddr,
        now: Instant,
    ) -> HostLookup {
        HostLookup {
            channel,
            shared,
            client,
            ipv4: resolver.ipv4,
            ipv6: resolver.ipv6,
            timeout,
            stage: Stage::Address,
            deadline: now + timeout,
            registered: BTreeMap::new(),
            log: Vec::new(),
            cache,
        }
    }

    /// The client address being looked up.
    pub fn client(&self) -> IpAddr {
        self.client
    }

    /// nginx's `log->action` for the step under way, for the session's own
    /// messages while the lookup runs.
    pub fn action(&self) -> &'static str {
        match self.stage {
            Stage::Address => ACTION_ADDRESS,
            _ => ACTION_HOSTNAME,
        }
    }

    /// Socket changes since the last call, in order. Use this or
    /// [`HostLookup::apply_interest`], not both.
    pub fn take_fd_changes(&mut self) -> Vec<FdChange> {
        std::mem::take(&mut lock(&self.shared).fd_changes)
    }

    /// Bring the registrations in `registrar` up to date with the sockets
    /// c-ares uses. Call after [`HostLookup::start`] and after every
    /// [`HostLookup::on_ready`] / [`HostLookup::on_timeout`]. A socket that
    /// is already closed when we forget it has left epoll with its close,
    /// so that error is ignored.
    pub fn apply_interest(&mut self, registrar: &dyn FdRegistrar) -> io::Result<()> {
        for change in self.take_fd_changes() {
            match change {
                FdChange::Watch {
                    fd,
                    readable,
                    writable,
                } => {
                    let interest = match (readable, writable) {
                        (true, true) => Interest::READABLE | Interest::WRITABLE,
                        (false, true) => Interest::WRITABLE,
                        _ => Interest::READABLE,
                    };
                    if self.registered.contains_key(&fd) {
                        registrar.reregister_fd(fd, interest)?;
                    } else {
                        registrar.register_fd(fd, interest)?;
                    }
                    self.registered.insert(fd, interest);
                }
                FdChange::Forget { fd } => {
                    if self.registered.remove(&fd).is_some() {
                        let _ = registrar.deregister_fd(fd);
                    }
                }
            }
        }
        Ok(())
    }

    /// The sockets registered through [`HostLookup::apply_interest`].
    pub fn watched(&self) -> impl Iterator<Item = (RawFd, Interest)> + '_ {
        self.registered.iter().map(|(fd, i)| (*fd, *i))
    }

    /// Messages for the error log since the last call.
    pub fn take_log(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.log)
    }

    /// When to call [`HostLookup::on_timeout`]: the earlier of the step's
    /// `resolver_timeout` and c-ares's next resend. `None` once done.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        if self.stage == Stage::Done {
            return None;
        }
        let step_left = self.deadline.saturating_duration_since(now);
        let wait = self
            .channel
            .as_ref()
            .and_then(|c| c.timeout(Some(step_left)))
            .unwrap_or(step_left);
        Some(now + wait.min(step_left))
    }

    /// Readiness on any of the lookup's sockets (the session's sockets
    /// share one token, so which one is not needed; a spurious call is
    /// harmless). Returns the outcome once the lookup is over.
    pub fn on_ready(&mut self, now: Instant) -> Option<Outcome> {
        if self.stage == Stage::Done {
            return None;
        }
        // Readiness is edge-triggered: let c-ares read each socket until it
        // is drained (it reads a TCP answer's length and body separately).
        let fds: Vec<(RawFd, bool, bool)> = self.current_interest();
        for (fd, readable, writable) in fds {
            self.process_fd(readable.then_some(fd), writable.then_some(fd));
            let mut rounds = 0;
            while readable && rounds < 64 && pending_bytes(fd) > 0 && self.wants_read(fd) {
                self.process_fd(Some(fd), None);
                rounds += 1;
            }
        }
        self.advance(now)
    }

    /// The deadline from [`HostLookup::next_deadline`] has come.
    pub fn on_timeout(&mut self, now: Instant) -> Option<Outcome> {
        if self.stage == Stage::Done {
            return None;
        }
        // Let c-ares resend what is due.
        self.process_fd(None, None);
        if let Some(outcome) = self.advance(now) {
            return Some(outcome);
        }
        if now >= self.deadline {
            return Some(self.fail_step(TIMED_OUT));
        }
        None
    }

    fn process_fd(&mut self, read: Option<RawFd>, write: Option<RawFd>) {
        if let Some(channel) = self.channel.as_mut() {
            channel.process_fd(read, write);
        }
    }

    /// The sockets c-ares wants watched now, with their interest, from the
    /// changes not yet taken and those applied.
    fn current_interest(&self) -> Vec<(RawFd, bool, bool)> {
        let mut now: BTreeMap<RawFd, (bool, bool)> = self
            .registered
            .iter()
            .map(|(fd, i)| (*fd, (i.is_readable(), i.is_writable())))
            .collect();
        for change in &lock(&self.shared).fd_changes {
            match *change {
                FdChange::Watch {
                    fd,
                    readable,
                    writable,
                } => {
                    now.insert(fd, (readable, writable));
                }
                FdChange::Forget { fd } => {
                    now.remove(&fd);
                }
            }
        }
        now.into_iter().map(|(fd, (r, w))| (fd, r, w)).collect()
    }

    fn wants_read(&self, fd: RawFd) -> bool {
        self.current_interest()
            .iter()
            .any(|&(f, readable, _)| f == fd && readable)
    }

    /// Move on with whatever answers have arrived.
    fn advance(&mut self, now: Instant) -> Option<Outcome> {
        match self.stage.clone() {
            Stage::Address => {
                let answer = lock(&self.shared).ptr.take()?;
                match answer {
                    Answer::Records((name, ttl)) => {
                        if let Some(ttl) = ttl {
                            lock(&self.cache).put_name(self.client, name.clone(), ttl, now);
                        }
                        self.address_resolved(name, now)
                    }
                    Answer::Empty => Some(self.fail_step(3)),
                    Answer::Rcode(code) => Some(self.fail_step(code)),
                    Answer::Unusable => None,
                }
            }
            Stage::Hostname {
                name,
                want_a,
                want_aaaa,
            } => {
                let (a, aaaa) = {
                    let shared = lock(&self.shared);
                    (shared.a.clone(), shared.aaaa.clone())
                };
                let a = if want_a { a? } else { Answer::Empty };
                let aaaa = if want_aaaa { aaaa? } else { Answer::Empty };
                self.hostname_resolved(&name, a, aaaa, Some(now))
            }
            Stage::Done => None,
        }
    }

    fn address_resolved(&mut self, name: String, now: Instant) -> Option<Outcome> {
        if !valid_host_name(&name) {
            self.log.push(LogLine {
                level: Level::Error,
                action: ACTION_ADDRESS,
                text: format!("{} resolved to invalid host name \"{}\"", self.client, name),
            });
            return Some(self.finish(Outcome::TempFail));
        }
        self.log.push(LogLine {
            level: Level::Debug,
            action: ACTION_HOSTNAME,
            text: format!("address resolved: {name}"),
        });
        let (want_a, want_aaaa) = (self.ipv4, self.ipv6);
        let cached = lock(&self.cache).addrs_of(&name, now);
        if let Some(addrs) = cached {
            self.stage = Stage::Hostname {
                name: name.clone(),
                want_a,
                want_aaaa,
            };
            let addrs = addrs.into_iter().map(|a| (a, 0)).collect();
            return self.hostname_resolved(&name, Answer::Records(addrs), Answer::Empty, None);
        }
        let Some(channel) = self.channel.as_mut() else {
            // Only a lookup answered wholly from the cache has no channel,
            // and it never gets here.
            return Some(self.fail_step(TIMED_OUT));
        };
        if want_a {
            let shared = Arc::clone(&self.shared);
            channel.query_a(&name, move |result: Result<AResults, _>| {
                let answer = classify(result.map(|r| {
                    r.iter()
                        .map(|a| (IpAddr::V4(a.ipv4()), ttl_of(a.ttl())))
                        .collect::<Vec<_>>()
                }));
                lock(&shared).a = Some(answer);
            });
        }
        if want_aaaa {
            let shared = Arc::clone(&self.shared);
            channel.query_aaaa(&name, move |result: Result<AAAAResults, _>| {
                let answer = classify(result.map(|r| {
                    r.iter()
                        .map(|a| (IpAddr::V6(a.ipv6()), ttl_of(a.ttl())))
                        .collect::<Vec<_>>()
                }));
                lock(&shared).aaaa = Some(answer);
            });
        }
        self.stage = Stage::Hostname {
            name,
            want_a,
            want_aaaa,
        };
        self.deadline = now + self.timeout;
        // Answers can only come from a later event.
        None
    }

    /// Both forward answers are in (or were not asked for); combine them
    /// as nginx does: any DNS error wins, then no addresses at all is
    /// NXDOMAIN, else the client must be among the addresses. Answers
    /// that came from DNS at `fresh` are cached.
    fn hostname_resolved(
        &mut self,
        name: &str,
        a: Answer<Addrs>,
        aaaa: Answer<Addrs>,
        fresh: Option<Instant>,
    ) -> Option<Outcome> {
        // A family nginx got no usable answer for keeps it waiting until
        // the timeout, whatever the other one said.
        if a == Answer::Unusable || aaaa == Answer::Unusable {
            return None;
        }
        let mut addrs = Vec::new();
        for answer in [a, aaaa] {
            match answer {
                Answer::Records(list) => addrs.extend(list),
                Answer::Rcode(code) => return Some(self.fail_step(code)),
                Answer::Empty | Answer::Unusable => {}
            }
        }
        if addrs.is_empty() {
            return Some(self.fail_step(3));
        }
        if let Some(now) = fresh {
            let ttl = addrs.iter().map(|&(_, ttl)| ttl).min().unwrap_or(0);
            let list = addrs.iter().map(|&(addr, _)| addr).collect();
            lock(&self.cache).put_addrs(name, list, ttl, now);
        }
        let addrs: Vec<IpAddr> = addrs.into_iter().map(|(addr, _)| addr).collect();
        for addr in &addrs {
            self.log.push(LogLine {
                level: Level::Debug,
                action: ACTION_HOSTNAME,
                text: format!("name was resolved to {addr}"),
            });
        }
        let outcome = if addrs.contains(&self.client) {
            Outcome::Found(name.to_owned())
        } else {
            Outcome::NotFound
        };
        Some(self.finish(outcome))
    }

    /// The current step failed with nginx's `code`: log it as nginx does
    /// and give `[UNAVAILABLE]` for NXDOMAIN, `[TEMPUNAVAIL]` otherwise.
    fn fail_step(&mut self, code: i32) -> Outcome {
        let (action, subject) = match &self.stage {
            Stage::Hostname { name, .. } => (ACTION_HOSTNAME, format!("\"{name}\"")),
            _ => (ACTION_ADDRESS, self.client.to_string()),
        };
        self.log.push(LogLine {
            level: Level::Error,
            action,
            text: format!(
                "{subject} could not be resolved ({code}: {})",
                resolver_strerror(code)
            ),
        });
        self.finish(if code == 3 {
            Outcome::NotFound
        } else {
            Outcome::TempFail
        })
    }

    fn finish(&mut self, outcome: Outcome) -> Outcome {
        self.stage = Stage::Done;
        // Queries still out (the other family, resends) are of no use now.
        if let Some(channel) = self.channel.as_mut() {
            channel.cancel();
        }
        outcome
    }
}

/// A c-ares channel on the servers of `resolver` only, reporting its
/// socket changes into `shared`.
fn new_channel(shared: &Arc<Mutex<Shared>>, resolver: &Resolver) -> io::Result<Channel> {
    let mut options = Options::new();
    let sockets = Arc::clone(shared);
    options
        .set_flags(Flags::NOCHECKRESP | Flags::NOSEARCH)
        .set_timeout(RESEND_TIMEOUT)
        .set_tries(TRIES_PER_SERVER)
        .set_rotate()
        .set_socket_state_callback(move |fd, readable, writable| {
            let change = if readable || writable {
                FdChange::Watch {
                    fd,
                    readable,
                    writable,
                }
            } else {
                FdChange::Forget { fd }
            };
            lock(&sockets).fd_changes.push(change);
        });
    // Never read the system's resolver configuration: the servers come
    // from the `resolver` directive alone.
    options
        .set_resolvconf_path("/dev/null")
        .and_then(|o| o.set_lookups("b"))
        .map_err(ares_io_error)?;
    let mut channel = Channel::with_options(options).map_err(ares_io_error)?;
    let servers: Vec<String> = resolver.servers.iter().map(server_text).collect();
    channel.set_servers(&servers).map_err(ares_io_error)?;
    Ok(channel)
}

/// A TTL as c-ares gives it (signed); nginx counts a negative one as 0.
fn ttl_of(ttl: i32) -> u32 {
    u32::try_from(ttl).unwrap_or(0)
}

/// nginx's texts for resolver error codes.
pub fn resolver_strerror(code: i32) -> &'static str {
    match code {
        1 => "Format error",
        2 => "Server failure",
        3 => "Host not found",
        4 => "Unimplemented",
        5 => "Operation refused",
        TIMED_OUT => "Operation timed out",
        _ => "Unknown error",
    }
}

/// nginx's check of a PTR name before it is used: letters, digits, `-`
/// and `.` only (RFC 1034 section 3.5), not empty.
pub fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The PTR query name of an address: `4.3.2.1.in-addr.arpa`, or 32
/// reversed nibbles and `ip6.arpa`.
pub fn reverse_name(addr: IpAddr) -> String {
    let mut name = String::with_capacity(72);
    match addr {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let _ = write!(name, "{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0]);
        }
        IpAddr::V6(v6) => {
            for byte in v6.octets().iter().rev() {
                let _ = write!(name, "{:x}.{:x}.", byte & 0xf, byte >> 4);
            }
            name.push_str("ip6.arpa");
        }
    }
    name
}

/// A server as c-ares's `host:port` list wants it (`[v6]:port`).
fn server_text(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => format!("{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

fn ares_io_error(err: AresError) -> io::Error {
    io::Error::other(format!("c-ares: {err}"))
}

/// Bytes waiting on a socket (FIONREAD), 0 on error.
fn pending_bytes(fd: RawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which points
    // to a live local; on a bad descriptor the call fails and writes nothing.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    if rc == 0 {
        usize::try_from(n).unwrap_or(0)
    } else {
        0
    }
}

#[cfg(test)]
pub(crate) mod tests;
