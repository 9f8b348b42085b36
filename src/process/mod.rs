//! Master and worker processes, as nginx runs them.
//!
//! `run` opens the listening sockets, writes the pid file and either runs
//! the master (which forks workers and turns signals into actions) or,
//! with `master_process off`, a single process that serves connections
//! itself. `send_signal` is `-s stop|quit|reopen|reload`.
//!
//! Only `sys` and `sock` contain `unsafe`; see their module notes.

mod env;
pub mod listen;
mod master;
mod pidfile;
mod sock;
pub mod sys;
mod title;
mod worker;

use crate::conf::{self, Config, Level, LoadOptions, Loaded};
use crate::logging::{self, errno_suffix, ConfigLogs};
use crate::shm::ZoneSet;
use crate::tls;
use listen::Listener;
use std::sync::{Arc, OnceLock};

/// Write one message to the process-wide log.
macro_rules! log {
    ($level:expr, $($arg:tt)*) => {
        $crate::logging::emit($level, None, format_args!($($arg)*))
    };
}
pub(crate) use log;

/// What one configuration generation owns: the config, its logs, its
/// listening sockets and the connection counter its workers share.
pub(crate) struct Cycle {
    pub config: Config,
    pub logs: Arc<ConfigLogs>,
    pub listeners: Vec<Listener>,
    pub counter: Arc<sys::SharedCounter>,
    /// Shared-memory zones (TLS session caches), mapped before the workers
    /// are forked and kept across reloads when name and size are unchanged.
    pub zones: ZoneSet,
    /// The TLS session caches laid out in `zones`.
    pub tls_stores: tls::SessionStores,
}

/// The default session ticket keys, made once by the master and shared by
/// every worker and every configuration it loads, so that tickets resume
/// whatever worker accepts the connection.
static TICKET_KEYS: OnceLock<Arc<tls::TicketKeys>> = OnceLock::new();

/// The default ticket keys (`None` until the first cycle made them).
pub(crate) fn ticket_keys() -> Option<Arc<tls::TicketKeys>> {
    TICKET_KEYS.get().cloned()
}

/// Build every server's TLS context once to check them, as nginx does
/// while reading the configuration; warnings are logged.
fn check_tls(config: &Config) -> bool {
    match tls::check_config(config) {
        Ok(warnings) => {
            for w in warnings {
                log!(w.level, "{}", w.text);
            }
            true
        }
        Err(msg) => {
            log!(msg.level, "{}", msg.text);
            false
        }
    }
}

/// nginx refuses a configuration whose `worker_connections` cannot even
/// hold its listening sockets plus the master channel. Also useful for
/// `-t`.
pub fn check_config(config: &Config) -> Result<(), String> {
    let n = config
        .mail
        .as_ref()
        .map_or(0, |m| listen::group(&m.listens).len());
    let conns = config.events.worker_connections;
    if conns < n + 1 {
        return Err(format!(
            "{conns} worker_connections are not enough for {n} listening sockets"
        ));
    }
    Ok(())
}

/// `-t`: everything a start would check beyond the syntax: the
/// `worker_connections` count and every listening socket (nginx binds them
/// while testing). Errors are logged; false = the test failed.
/// Re-read the configuration for a reload, logging its warnings as they
/// come and its error, if any, as nginx does; the old configuration stays
/// in use when this gives `None`.
fn load_logged(opts: &LoadOptions) -> Option<Config> {
    let loaded = conf::load_with(opts, &mut |progress| {
        if let conf::Progress::Warning(w) = progress {
            log!(w.level, "{}", w.text);
        }
    });
    match loaded {
        Ok(config) => Some(config),
        Err(msg) => {
            log!(msg.level, "{}", msg.text);
            None
        }
    }
}

pub fn test_config(config: &Config) -> bool {
    if let Err(msg) = check_config(config) {
        log!(Level::Emerg, "{msg}");
        return false;
    }
    let specs = config
        .mail
        .as_ref()
        .map(|m| listen::group(&m.listens))
        .unwrap_or_default();
    let mut sink = |level: Level, msg: String| log!(level, "{msg}");
    listen::test_open(&specs, &mut sink).is_ok()
}

/// Build a new cycle from a loaded configuration, taking over matching
/// sockets from `old` (a previous cycle's, or inherited ones). On failure
/// everything is logged and `old` is left as it was.
/// Set up a cycle for `config`, reusing the listening sockets in `old` and
/// the shared-memory zones of `old_zones` where they are unchanged; on
/// failure everything is logged and the running cycle stays as it was.
pub(crate) fn init_cycle(
    config: Config,
    old: &mut Vec<Listener>,
    old_zones: &ZoneSet,
) -> Option<Cycle> {
    if !check_tls(&config) {
        return None;
    }
    if let Err(msg) = check_config(&config) {
        log!(Level::Emerg, "{msg}");
        return None;
    }
    if TICKET_KEYS.get().is_none() {
        match tls::TicketKeys::generate() {
            Ok(k) => {
                let _ = TICKET_KEYS.set(Arc::new(k));
            }
            Err(e) => {
                log!(
                    Level::Emerg,
                    "{}",
                    tls::ssl_error("RAND_bytes() failed", &e)
                );
                return None;
            }
        }
    }
    let logs = match ConfigLogs::open(&config) {
        Ok(l) => Arc::new(l),
        Err(msg) => {
            log!(Level::Emerg, "{msg}");
            return None;
        }
    };
    let specs = config
        .mail
        .as_ref()
        .map(|m| listen::group(&m.listens))
        .unwrap_or_default();
    let wanted = config.mail.as_ref().map_or(&[][..], |m| &m.shm_zones[..]);
    let zones = match old_zones.reconcile(wanted) {
        Ok(z) => z,
        Err(e) => {
            let level = if e.is_emerg() {
                Level::Emerg
            } else {
                Level::Alert
            };
            let errno = e.err.as_ref().map(errno_suffix).unwrap_or_default();
            log!(level, "{e}{errno}");
            return None;
        }
    };
    let tls_stores = match tls::SessionStores::attach(&zones) {
        Ok(s) => s,
        Err(msg) => {
            log!(msg.level, "{}", msg.text);
            return None;
        }
    };
    let mut sink = |level: Level, msg: String| log!(level, "{msg}");
    let listeners = listen::open_all(&specs, old, &mut sink).ok()?;
    let counter = match sys::SharedCounter::new() {
        Ok(c) => Arc::new(c),
        Err(e) => {
            log!(
                Level::Emerg,
                "mmap(MAP_ANON|MAP_SHARED, 4096) failed{}",
                errno_suffix(&e)
            );
            return None;
        }
    };
    Some(Cycle {
        config,
        logs,
        listeners,
        counter,
        zones,
        tls_stores,
    })
}

/// nginx's start-up notices (after the event method line).
fn os_status() {
    log!(Level::Notice, "postern/{}", crate::build_info::VERSION);
    if let Some((sys, rel, _)) = sys::uname() {
        log!(Level::Notice, "OS: {sys} {rel}");
    }
    if let Ok((cur, max)) = sys::getrlimit(sys::Resource::NoFile) {
        let show = |v: u64| {
            if v == libc::RLIM_INFINITY {
                "-1".to_string()
            } else {
                v.to_string()
            }
        };
        log!(
            Level::Notice,
            "getrlimit(RLIMIT_NOFILE): {}:{}",
            show(cur),
            show(max)
        );
    }
}

/// Warn when worker_connections exceeds what a worker may open.
fn check_rlimit(config: &Config) {
    if let Ok((cur, _)) = sys::getrlimit(sys::Resource::NoFile) {
        let conns = config.events.worker_connections as u64;
        let nofile = config.main.worker_rlimit_nofile;
        if conns > cur && nofile.is_none_or(|n| conns > n) {
            log!(
                Level::Warn,
                "{conns} worker_connections exceed open file resource limit: {}",
                nofile.unwrap_or(cur)
            );
        }
    }
}

/// Listening sockets handed over by an old master (binary upgrade).
fn inherited_listeners() -> (bool, Vec<Listener>) {
    for var in listen::INHERIT_VARS {
        let Ok(value) = std::env::var(var) else {
            continue;
        };
        log!(Level::Notice, "using inherited sockets from \"{value}\"");
        let (fds, err) = listen::parse_inherited(var, &value);
        if let Some(msg) = err {
            log!(Level::Emerg, "{msg}");
        }
        let mut sink = |level: Level, msg: String| log!(level, "{msg}");
        let got = listen::adopt_inherited(&fds, &mut sink);
        // Our children must not think they inherited sockets too.
        std::env::remove_var(var);
        return (true, got);
    }
    (false, Vec::new())
}

/// Run the master (or the single process with `master_process off`) until
/// it stops; returns the exit status.
pub fn run(opts: &LoadOptions, loaded: Loaded) -> i32 {
    let config = loaded.config;
    let (inherited, mut old) = inherited_listeners();
    let Some(cycle) = init_cycle(config, &mut old, &ZoneSet::new()) else {
        return 1;
    };
    let mut sink = |level: Level, msg: String| log!(level, "{msg}");
    listen::close_unused(old, listen::Unlink::Never, &mut sink);
    logging::install(cycle.logs.main.clone());
    log!(Level::Notice, "using the \"epoll\" event method");
    check_rlimit(&cycle.config);
    os_status();

    let mut parent = sys::getppid();
    let pipe = match sys::install_signal_handlers() {
        Ok(p) => p,
        Err(e) => {
            log!(Level::Emerg, "{e}");
            return 1;
        }
    };
    let mut daemonized = inherited;
    if !inherited && cycle.config.main.daemon {
        // After detaching, the parent of record is the process that forked
        // us (nginx's ngx_parent), which exits at once.
        parent = sys::getpid();
        if let Err(msg) = sys::daemonize() {
            log!(Level::Emerg, "{msg}");
            return 1;
        }
        daemonized = true;
    }
    if let Some(path) = &cycle.config.main.pid {
        if let Err(msg) = pidfile::write(path, sys::getpid()) {
            log!(Level::Emerg, "{msg}");
            return 1;
        }
    }
    // From here on the terminal may be gone: stderr goes to the error log
    // and messages are no longer echoed (nginx's ngx_use_stderr = 0).
    if let Err(e) = cycle.logs.main.redirect_stderr() {
        log!(Level::Emerg, "dup2(STDERR) failed{}", errno_suffix(&e));
        return 1;
    }
    logging::set_use_stderr(false);
    if cycle.config.main.master_process {
        master::Master::new(opts.clone(), cycle, pipe, daemonized, parent).run()
    } else {
        master::single_process(opts.clone(), cycle, pipe, daemonized)
    }
}

/// `-s stop|quit|reopen|reload`: signal the process named in the pid file
/// of the configuration; returns the exit status.
pub fn send_signal(loaded: &Loaded, signal: &str) -> i32 {
    let signo = match signal {
        "stop" => libc::SIGTERM,
        "quit" => libc::SIGQUIT,
        "reopen" => libc::SIGUSR1,
        "reload" => libc::SIGHUP,
        _ => return 1,
    };
    // Like nginx's signaller, which stops loading before opening the
    // configured logs: messages go to the start-up (-e or default) log.
    log!(Level::Notice, "signal process started");
    let Some(path) = &loaded.config.main.pid else {
        log!(
            Level::Error,
            "open() \"\" failed (2: No such file or directory)"
        );
        return 1;
    };
    let pid = match pidfile::read(path) {
        Ok(p) => p,
        Err(msg) => {
            log!(Level::Error, "{msg}");
            return 1;
        }
    };
    match sys::kill(pid, signo) {
        Ok(()) => 0,
        Err(e) => {
            log!(
                Level::Alert,
                "kill({pid}, {signo}) failed{}",
                errno_suffix(&e)
            );
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::{CpuAffinity, EventsConf, MailConf, MainConf};
    use std::time::Duration;

    fn config(conns: usize, listens: &[&str]) -> Config {
        Config {
            main: MainConf {
                daemon: false,
                master_process: true,
                worker_processes: 1,
                pid: None,
                lock_file: "/tmp/x".into(),
                error_log: Vec::new(),
                user: None,
                worker_rlimit_nofile: None,
                worker_rlimit_core: None,
                working_directory: None,
                worker_priority: 0,
                worker_cpu_affinity: CpuAffinity::None,
                worker_shutdown_timeout: None,
                timer_resolution: None,
                env: Vec::new(),
            },
            events: EventsConf {
                worker_connections: conns,
                multi_accept: false,
                accept_mutex: false,
                accept_mutex_delay: Duration::from_millis(500),
                debug_connection: Vec::new(),
                use_method: None,
            },
            mail: Some(MailConf {
                servers: Vec::new(),
                listens: listens
                    .iter()
                    .map(|l| listen::tests::listen(l, 0))
                    .collect(),
                shm_zones: Vec::new(),
            }),
            files: Vec::new(),
        }
    }

    #[test]
    fn worker_connections_must_hold_listeners_and_channel() {
        let c = config(2, &["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(
            check_config(&c).unwrap_err(),
            "2 worker_connections are not enough for 2 listening sockets"
        );
        assert!(check_config(&config(3, &["127.0.0.1:1", "127.0.0.1:2"])).is_ok());
        // Addresses a wildcard covers share its socket.
        assert!(check_config(&config(2, &["127.0.0.1:1", "0.0.0.0:1"])).is_ok());
    }
}
