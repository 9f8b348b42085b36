//! A worker process: set up as nginx does (environment, limits,
//! privileges, CPU affinity), then run the event loop until told to stop.

use super::listen::{Listener, SocketSpec};
use super::sys::{self, Resource, SignalPipe};
use super::{env, log, title, Cycle};
use crate::conf::{ConfMessage, Config, CpuAffinity, Level, Listen, ListenAddr};
use crate::event::{self, Accepted, Acceptor, Command, Control, Ctx, EventLoop, Handler};
use crate::logging::{errno_suffix, ConfigLogs};
use crate::mail::session::{ServerCtx, Session};
use crate::tls::{self, ServerTls};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

/// Commands on the master → worker channel, one byte each.
pub const CMD_QUIT: u8 = b'Q';
pub const CMD_TERMINATE: u8 = b'T';
pub const CMD_REOPEN: u8 = b'R';

/// Serves accepted connections as mail sessions: logs the connection
/// exactly as nginx's mail module does on accept, then starts a session
/// with the server of the `listen` it came in on.
pub struct MailAcceptor {
    listens: Vec<Listen>,
    specs: Vec<SocketSpec>,
    /// One per `listen` (same index), shared by its sessions.
    servers: Vec<Arc<ServerCtx>>,
}

impl MailAcceptor {
    /// `tls` holds each server's TLS context (`None` without TLS), in the
    /// order of the configuration's servers.
    pub fn new(
        config: &Config,
        specs: Vec<SocketSpec>,
        logs: Arc<ConfigLogs>,
        tls: &[Option<ServerTls>],
    ) -> MailAcceptor {
        let listens: Vec<Listen> = config
            .mail
            .as_ref()
            .map(|m| m.listens.clone())
            .unwrap_or_default();
        let mut servers: Vec<Arc<ServerCtx>> = Vec::new();
        for l in &listens {
            let Some(conf) = config.mail.as_ref().and_then(|m| m.servers.get(l.server)) else {
                continue;
            };
            let log = logs.servers.get(l.server).unwrap_or(&logs.main).clone();
            let mut srv = ServerCtx::new(conf, log, &l.addr_text);
            srv.proxy_protocol = l.proxy_protocol;
            if let Some(Some(t)) = tls.get(l.server) {
                srv.set_tls(t.clone(), l.ssl);
            }
            // One host cache per resolver in the worker, as nginx has one
            // per `resolver` directive.
            for earlier in &servers {
                srv.share_host_cache(earlier);
            }
            servers.push(Arc::new(srv));
        }
        MailAcceptor {
            listens,
            specs,
            servers,
        }
    }
}

impl Acceptor for MailAcceptor {
    fn accept(&mut self, conn: Accepted, ctx: &mut Ctx<'_>) -> Option<Box<dyn Handler>> {
        let spec = self.specs.get(conn.listening)?;
        let mut local = None;
        let entry = spec.entry_for(&self.listens, || {
            local = conn.stream.local_addr();
            local
        });
        let listen = self.listens.get(entry)?;
        let srv = self.servers.get(entry)?.clone();
        srv.log.write_conn(
            Level::Debug,
            None,
            ctx.debug,
            format_args!(
                "*{} accept: {} fd:{}",
                ctx.number,
                conn.peer,
                conn.stream.as_raw_fd()
            ),
        );
        srv.log.write_conn(
            Level::Info,
            None,
            ctx.debug,
            format_args!(
                "*{} client {} connected to {}",
                ctx.number, conn.peer, listen.addr_text
            ),
        );
        let session = Session::start(srv, conn.stream, &conn.peer, local, ctx)?;
        Some(Box::new(session))
    }
}

/// What serves accepted connections for a cycle: the one place the mail
/// sessions plug in (`specs[i]` describes the loop's listening socket
/// `i`; `SocketSpec::entry_for` finds the `listen` and so the server).
/// Builds the servers' TLS contexts, so it runs in the process that serves
/// them, before privileges are dropped and the environment is reset (keys
/// on a PKCS#11 token are opened by the process that uses them).
pub(crate) fn acceptor(
    cycle: &Cycle,
    specs: Vec<SocketSpec>,
) -> Result<Box<dyn Acceptor>, ConfMessage> {
    let (tls, _warnings) = tls::build_servers(&cycle.config, super::ticket_keys(), &|z| {
        cycle.tls_stores.get(z)
    })?;
    Ok(Box::new(MailAcceptor::new(
        &cycle.config,
        specs,
        cycle.logs.clone(),
        &tls,
    )))
}

/// Turn the process's listening sockets into the loop's.
pub fn to_listening(listeners: Vec<(SocketSpec, OwnedFd)>) -> Vec<event::Listening> {
    listeners
        .into_iter()
        .enumerate()
        .map(|(id, (spec, fd))| {
            let sock = match spec.addr {
                ListenAddr::Inet(_) => event::ListenSock::Tcp(mio::net::TcpListener::from_std(
                    std::net::TcpListener::from(fd),
                )),
                ListenAddr::Unix(_) => event::ListenSock::Unix(mio::net::UnixListener::from_std(
                    std::os::unix::net::UnixListener::from(fd),
                )),
            };
            event::Listening {
                sock,
                addr_text: spec.addr_text,
                id,
            }
        })
        .collect()
}

/// Duplicate the descriptors (the single process keeps its own copies to
/// reuse on reload while the loop owns the others).
pub fn dup_listeners(listeners: &[Listener]) -> Vec<(SocketSpec, OwnedFd)> {
    listeners
        .iter()
        .filter_map(|l| Some((l.spec.clone(), l.fd.try_clone().ok()?)))
        .collect()
}

pub fn settings(config: &Config, reserved: usize) -> event::Settings {
    event::Settings {
        worker_connections: config.events.worker_connections,
        multi_accept: config.events.multi_accept,
        timer_resolution: config.main.timer_resolution,
        shutdown_timeout: config.main.worker_shutdown_timeout,
        debug_connection: config.events.debug_connection.clone(),
        reserved,
    }
}

/// What a worker does with a signal sent to it directly.
pub struct WorkerControl {
    pub pipe: SignalPipe,
    pub channel: Option<UnixStream>,
    pub logs: Arc<ConfigLogs>,
    pub daemonized: bool,
}

impl Control for WorkerControl {
    fn fds(&self) -> Vec<RawFd> {
        let mut v = vec![self.pipe.fd()];
        if let Some(c) = &self.channel {
            v.push(c.as_raw_fd());
        }
        v
    }

    fn poll(&mut self) -> Vec<Command> {
        let mut out = Vec::new();
        self.pipe.drain();
        for (signo, sender) in sys::take_signals() {
            let action = match signo {
                libc::SIGQUIT => {
                    out.push(Command::Quit);
                    ", shutting down"
                }
                libc::SIGWINCH if self.daemonized => {
                    out.push(Command::Quit);
                    ", shutting down"
                }
                libc::SIGTERM | libc::SIGINT => {
                    out.push(Command::Terminate);
                    ", exiting"
                }
                libc::SIGUSR1 => {
                    self.reopen_pending();
                    ", reopening logs"
                }
                libc::SIGHUP | libc::SIGUSR2 | libc::SIGIO => ", ignoring",
                _ => "",
            };
            log_signal(signo, sender, action);
        }
        let mut reopen = false;
        if let Some(ch) = &mut self.channel {
            let mut buf = [0u8; 64];
            loop {
                match ch.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        for &b in &buf[..n] {
                            match b {
                                CMD_QUIT => out.push(Command::Quit),
                                CMD_TERMINATE => out.push(Command::Terminate),
                                CMD_REOPEN => reopen = true,
                                _ => {}
                            }
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        if reopen {
            self.reopen_pending();
        }
        for c in &out {
            if let Command::Quit = c {
                log!(Level::Notice, "gracefully shutting down");
                title::set("worker process is shutting down");
            }
        }
        out
    }
}

impl WorkerControl {
    fn reopen_pending(&self) {
        log!(Level::Notice, "reopening logs");
        self.logs.reopen();
    }
}

pub fn log_signal(signo: i32, sender: i32, action: &str) {
    let name = sys::signal_name(signo);
    if sender != 0 {
        log!(
            Level::Notice,
            "signal {signo} ({name}) received from {sender}{action}"
        );
    } else {
        log!(Level::Notice, "signal {signo} ({name}) received{action}");
    }
}

/// The CPUs worker `n` is bound to, if `worker_cpu_affinity` says so.
pub fn cpus_for(aff: &CpuAffinity, n: usize, allowed: &[usize]) -> Option<Vec<usize>> {
    match aff {
        CpuAffinity::None => None,
        CpuAffinity::Masks(masks) => {
            let mask = masks.get(n).or(masks.last())?;
            Some(
                mask.iter()
                    .enumerate()
                    .filter(|(_, on)| **on)
                    .map(|(c, _)| c)
                    .collect(),
            )
        }
        CpuAffinity::Auto { mask } => {
            let candidates: Vec<usize> = match mask {
                Some(m) => m
                    .iter()
                    .enumerate()
                    .filter(|(_, on)| **on)
                    .map(|(c, _)| c)
                    .collect(),
                None => allowed.to_vec(),
            };
            if candidates.is_empty() {
                return None;
            }
            Some(vec![candidates[n % candidates.len()]])
        }
    }
}

/// nginx's worker process init for worker number `n`. Fatal errors exit
/// with 2.
pub fn init_process(config: &Config, n: usize) {
    let main = &config.main;
    env::apply(&env::compute(&main.env, &env::current()));
    if main.worker_priority != 0 {
        if let Err(e) = sys::setpriority(main.worker_priority) {
            log!(
                Level::Alert,
                "setpriority({}) failed{}",
                main.worker_priority,
                errno_suffix(&e)
            );
        }
    }
    if let Some(n) = main.worker_rlimit_nofile {
        if let Err(e) = sys::setrlimit(Resource::NoFile, n) {
            log!(
                Level::Alert,
                "setrlimit(RLIMIT_NOFILE, {n}) failed{}",
                errno_suffix(&e)
            );
        }
    }
    if let Some(n) = main.worker_rlimit_core {
        if let Err(e) = sys::setrlimit(Resource::Core, n) {
            log!(
                Level::Alert,
                "setrlimit(RLIMIT_CORE, {n}) failed{}",
                errno_suffix(&e)
            );
        }
    }
    if sys::geteuid() == 0 {
        if let Some(user) = &main.user {
            if let Err(e) = sys::setgid(user.gid) {
                log!(
                    Level::Emerg,
                    "setgid({}) failed{}",
                    user.gid,
                    errno_suffix(&e)
                );
                std::process::exit(2);
            }
            if let Err(e) = sys::initgroups(&user.name, user.gid) {
                log!(
                    Level::Emerg,
                    "initgroups({}, {}) failed{}",
                    user.name,
                    user.gid,
                    errno_suffix(&e)
                );
            }
            if let Err(e) = sys::setuid(user.uid) {
                log!(
                    Level::Emerg,
                    "setuid({}) failed{}",
                    user.uid,
                    errno_suffix(&e)
                );
                std::process::exit(2);
            }
        }
    }
    if let Some(cpus) = cpus_for(&main.worker_cpu_affinity, n, &sys::allowed_cpus()) {
        for c in &cpus {
            log!(Level::Notice, "sched_setaffinity(): using cpu #{c}");
        }
        if let Err(e) = sys::set_affinity(&cpus) {
            log!(
                Level::Alert,
                "sched_setaffinity() failed{}",
                errno_suffix(&e)
            );
        }
    }
    if let Err(e) = sys::set_dumpable() {
        log!(
            Level::Alert,
            "prctl(PR_SET_DUMPABLE) failed{}",
            errno_suffix(&e)
        );
    }
    if let Some(dir) = &main.working_directory {
        if let Err(e) = std::env::set_current_dir(dir) {
            log!(
                Level::Alert,
                "chdir(\"{}\") failed{}",
                dir.display(),
                errno_suffix(&e)
            );
            std::process::exit(2);
        }
    }
}

/// The body of a forked worker; never returns.
pub fn worker_main(
    cycle: &Cycle,
    listeners: Vec<Listener>,
    n: usize,
    channel: UnixStream,
    daemonized: bool,
    pipe: SignalPipe,
) -> ! {
    let specs: Vec<SocketSpec> = listeners.iter().map(|l| l.spec.clone()).collect();
    let acceptor = match acceptor(cycle, specs) {
        Ok(a) => a,
        Err(msg) => {
            log!(msg.level, "{}", msg.text);
            std::process::exit(2);
        }
    };
    init_process(&cycle.config, n);
    title::set("worker process");
    let _ = channel.set_nonblocking(true);
    let listening = to_listening(listeners.into_iter().map(|l| (l.spec, l.fd)).collect());
    let counter = cycle.counter.clone();
    let mut lp = match EventLoop::new(
        listening,
        acceptor,
        settings(&cycle.config, 1),
        Box::new(move || counter.next()),
    ) {
        Ok(lp) => lp,
        Err(e) => {
            log!(Level::Emerg, "epoll_create() failed{}", errno_suffix(&e));
            std::process::exit(2);
        }
    };
    let mut control = WorkerControl {
        pipe,
        channel: Some(channel),
        logs: cycle.logs.clone(),
        daemonized,
    };
    if let Err(e) = lp.run(&mut control) {
        log!(Level::Alert, "event loop failed{}", errno_suffix(&e));
    }
    log!(Level::Notice, "exiting");
    log!(Level::Notice, "exit");
    std::process::exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_choice() {
        assert_eq!(cpus_for(&CpuAffinity::None, 0, &[0, 1]), None);
        let masks = CpuAffinity::Masks(vec![vec![true, false], vec![false, true]]);
        assert_eq!(cpus_for(&masks, 0, &[]), Some(vec![0]));
        assert_eq!(cpus_for(&masks, 1, &[]), Some(vec![1]));
        assert_eq!(cpus_for(&masks, 5, &[]), Some(vec![1]));
        let auto = CpuAffinity::Auto { mask: None };
        assert_eq!(cpus_for(&auto, 3, &[0, 2, 4]), Some(vec![0]));
        let auto_mask = CpuAffinity::Auto {
            mask: Some(vec![false, true, true]),
        };
        assert_eq!(cpus_for(&auto_mask, 1, &[]), Some(vec![2]));
    }
}
