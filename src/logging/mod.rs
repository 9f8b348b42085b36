//! nginx-style error logs.
//!
//! A [`Log`] is a list of sinks (files, stderr, syslog, memory rings), each
//! with its own level. A message is formatted once into nginx's line
//! `YYYY/MM/DD HH:MM:SS [level] pid#tid: *conn message` (at most 2047 bytes
//! plus the newline, as nginx's NGX_MAX_ERROR_STR) and written to every
//! sink whose level admits it.
//!
//! While the configuration is read and the master starts, nginx also echoes
//! emerg..warn messages to the terminal as `nginx: [level] message`, unless
//! a sink already wrote the line to stderr; we do the same with `postern:`.
//! The process code turns that off with [`set_use_stderr`] once the master
//! has written its pid file (where nginx clears `ngx_use_stderr`).
//!
//! `debug_connection`: code handling a connection whose client matches an
//! `events { debug_connection ... }` entry calls [`Log::write_conn`] (or
//! [`emit_conn`]) with `debug_forced = true`; the message then reaches
//! every sink whatever its level, as nginx's NGX_LOG_DEBUG_CONNECTION does.
//!
//! The `log` crate's macros (`log::debug!` in library code) reach the
//! process-wide log installed with [`install`]: Error→error, Warn→warn,
//! Info→info, Debug and Trace→debug.

mod clock;
mod sink;

pub use clock::{hostname, LocalTime};
pub use sink::syslog_packet;

use crate::conf::{Config, ErrorLog, Level, LogTarget};
use sink::{MemoryRing, SharedFile, SinkKind, SyslogPeer};
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// nginx's NGX_MAX_ERROR_STR: a log line including its newline.
pub const MAX_LINE: usize = 2048;

/// The name printed before `[level]` on the terminal.
const PROGRAM: &str = "postern";

static USE_STDERR: AtomicBool = AtomicBool::new(true);

/// Whether emerg..warn messages are also echoed to stderr as
/// `postern: [level] message` (nginx's `ngx_use_stderr`). On at start;
/// the master turns it off after writing its pid file, so workers and a
/// daemonized master never write to the terminal.
pub fn set_use_stderr(on: bool) {
    USE_STDERR.store(on, Ordering::Relaxed);
}

pub fn use_stderr() -> bool {
    USE_STDERR.load(Ordering::Relaxed)
}

#[derive(Debug, Clone)]
struct Sink {
    level: Level,
    kind: SinkKind,
}

/// A set of open error log sinks, each with its own level.
#[derive(Debug, Clone)]
pub struct Log {
    /// Most verbose first, like nginx's sorted list.
    sinks: Vec<Sink>,
    /// The most verbose level of any sink (or the built-in log's level
    /// when there is no sink): messages above it are dropped at once.
    level: Level,
}

/// Optional parts of one message beyond level, connection and text.
#[derive(Default, Clone, Copy)]
pub struct Extra<'a> {
    /// The client is listed in `debug_connection`: write to every sink.
    pub debug_forced: bool,
    /// An OS error appended as ` (13: Permission denied)`.
    pub err: Option<&'a io::Error>,
    /// The context appended after the message and errno, as nginx's log
    /// handler (for mail sessions ` while ..., client: ..., server: ...`);
    /// like nginx, not added to debug messages.
    pub context: Option<&'a dyn fmt::Display>,
}

/// A writer into a byte buffer that silently stops at a limit, as nginx's
/// bounded printf does.
struct Bounded {
    buf: Vec<u8>,
    limit: usize,
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.limit.saturating_sub(self.buf.len());
        let take = s.len().min(room);
        self.buf.extend_from_slice(&s.as_bytes()[..take]);
        Ok(())
    }
}

/// One formatted line and where the message part starts (for the stderr
/// echo, which drops the time, level and pid).
struct Line {
    bytes: Vec<u8>,
    msg_start: usize,
}

fn format_line(
    time: &str,
    pid: u32,
    level: Level,
    conn: Option<u64>,
    args: fmt::Arguments<'_>,
    extra: &Extra<'_>,
) -> Line {
    let mut w = Bounded {
        buf: Vec::with_capacity(128),
        limit: MAX_LINE,
    };
    // tid is 0: nginx on Linux without threads prints 0.
    let _ = write!(w, "{time} [{}] {pid}#0: ", level.name());
    if let Some(c) = conn {
        let _ = write!(w, "*{c} ");
    }
    let msg_start = w.buf.len();
    let _ = w.write_fmt(args);
    if let Some(err) = extra.err {
        // Leave room for the error code as nginx does: cut the message and
        // mark the cut with "...".
        if w.buf.len() > MAX_LINE - 50 {
            w.buf.truncate(MAX_LINE - 50);
            w.buf.extend_from_slice(b"...");
        }
        let _ = w.write_str(&errno_suffix(err));
    }
    if level != Level::Debug {
        if let Some(ctx) = extra.context {
            let _ = write!(w, "{ctx}");
        }
    }
    w.buf.truncate(MAX_LINE - 1);
    w.buf.push(b'\n');
    Line {
        bytes: w.buf,
        msg_start,
    }
}

impl Log {
    /// The log used before the configuration is read when no log file is
    /// wanted: no sinks, so emerg..warn messages reach the terminal only
    /// as `postern: [level] msg` lines (while [`use_stderr`] is on).
    pub fn stderr() -> Log {
        Log {
            sinks: Vec::new(),
            level: Level::Notice,
        }
    }

    /// nginx's built-in log (ngx_log_init): the `-e` target or the default
    /// error log, at `level` (notice; info while testing the config). A file
    /// that cannot be opened is reported on stderr as nginx does
    /// (`postern: [alert] could not open error log file: open() ...`) and
    /// replaced by stderr.
    pub fn builtin(target: &LogTarget, level: Level) -> Log {
        let kind = match target {
            LogTarget::File(path) => match SharedFile::open(path) {
                Ok(f) => SinkKind::File(Arc::new(f)),
                Err(text) => {
                    stderr_message(format_args!(
                        "[alert] could not open error log file: {text}"
                    ));
                    SinkKind::Stderr
                }
            },
            LogTarget::Stderr => SinkKind::Stderr,
            LogTarget::Syslog(t) => SinkKind::Syslog(Arc::new(SyslogPeer::new(t.clone()))),
            LogTarget::Memory(size) => SinkKind::Memory(Arc::new(MemoryRing::new(*size))),
        };
        Log {
            sinks: vec![Sink { level, kind }],
            level,
        }
    }

    /// Open every target (files are created/appended, syslog sockets made).
    /// The error names the failing target as nginx does
    /// (`open() "/x/error.log" failed (13: Permission denied)`).
    pub fn open(targets: &[ErrorLog]) -> Result<Log, String> {
        Log::open_shared(targets, &mut HashMap::new())
    }

    fn open_shared(
        targets: &[ErrorLog],
        files: &mut HashMap<PathBuf, Arc<SharedFile>>,
    ) -> Result<Log, String> {
        let mut sinks = Vec::with_capacity(targets.len());
        for t in targets {
            let kind = match &t.target {
                LogTarget::File(path) => {
                    let f = match files.get(path) {
                        Some(f) => f.clone(),
                        None => {
                            let f = Arc::new(SharedFile::open(path)?);
                            files.insert(path.clone(), f.clone());
                            f
                        }
                    };
                    SinkKind::File(f)
                }
                LogTarget::Stderr => SinkKind::Stderr,
                LogTarget::Syslog(s) => SinkKind::Syslog(Arc::new(SyslogPeer::new(s.clone()))),
                LogTarget::Memory(size) => SinkKind::Memory(Arc::new(MemoryRing::new(*size))),
            };
            sinks.push(Sink {
                level: t.level,
                kind,
            });
        }
        // Stable: sinks of equal level keep their configured order.
        sinks.sort_by_key(|s| std::cmp::Reverse(s.level));
        let level = sinks.first().map(|s| s.level).unwrap_or(Level::Notice);
        Ok(Log { sinks, level })
    }

    /// Whether any sink would write a message of this level.
    pub fn enabled(&self, level: Level) -> bool {
        level <= self.level
    }

    /// The most verbose level any sink writes.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Write one message: `YYYY/MM/DD HH:MM:SS [level] pid#tid: *conn msg`.
    pub fn write(&self, level: Level, conn: Option<u64>, args: fmt::Arguments<'_>) {
        self.write_extra(level, conn, &Extra::default(), args)
    }

    /// Write a message of a connection; with `debug_forced` (the client is
    /// listed in `debug_connection`) every sink writes it whatever its level.
    pub fn write_conn(
        &self,
        level: Level,
        conn: Option<u64>,
        debug_forced: bool,
        args: fmt::Arguments<'_>,
    ) {
        let extra = Extra {
            debug_forced,
            ..Extra::default()
        };
        self.write_extra(level, conn, &extra, args)
    }

    /// The general form: errno and context suffixes, forced debug.
    pub fn write_extra(
        &self,
        level: Level,
        conn: Option<u64>,
        extra: &Extra<'_>,
        args: fmt::Arguments<'_>,
    ) {
        if !extra.debug_forced && !self.enabled(level) {
            return;
        }
        let time = LocalTime::now().error_log_format();
        let line = format_line(&time, std::process::id(), level, conn, args, extra);
        let mut wrote_stderr = false;
        let mut syslog_errors = Vec::new();
        for sink in &self.sinks {
            if sink.level < level && !extra.debug_forced {
                break;
            }
            match &sink.kind {
                SinkKind::File(f) => f.write(&line.bytes),
                SinkKind::Stderr => {
                    let _ = io::stderr().write_all(&line.bytes);
                    wrote_stderr = true;
                }
                SinkKind::Memory(m) => m.write(&line.bytes),
                SinkKind::Syslog(peer) => {
                    if peer.begin() {
                        let severity = (level as u8).saturating_sub(1);
                        if let Some(err) = peer.send(severity, &line.bytes) {
                            syslog_errors.push((peer.clone(), err));
                        } else {
                            peer.end();
                        }
                    }
                }
            }
        }
        // Report a failed syslog peer through this same log while the peer
        // is still marked busy, so the alert does not loop back into it.
        for (peer, err) in syslog_errors {
            self.write(Level::Alert, None, format_args!("{err}"));
            peer.end();
        }
        if use_stderr() && level <= Level::Warn && !wrote_stderr {
            let mut out = format!("{PROGRAM}: [{}] ", level.name()).into_bytes();
            out.extend_from_slice(&line.bytes[line.msg_start..]);
            let _ = io::stderr().write_all(&out);
        }
    }

    /// Reopen file sinks (USR1).
    pub fn reopen(&self) -> io::Result<()> {
        let mut first_err = None;
        for sink in &self.sinks {
            if let SinkKind::File(f) = &sink.kind {
                if let Err(e) = f.reopen(None) {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            None => Ok(()),
            Some(text) => Err(io::Error::other(text)),
        }
    }

    /// nginx's ngx_log_redirect_stderr: unless the first file-like sink is
    /// stderr itself, point fd 2 at that sink's file, so that messages from
    /// libraries (and panics) land in the error log once the terminal is
    /// gone. Does nothing for logs without file sinks.
    pub fn redirect_stderr(&self) -> io::Result<()> {
        for sink in &self.sinks {
            match &sink.kind {
                SinkKind::Stderr => return Ok(()),
                SinkKind::File(f) => return dup_onto_stderr(f.raw_fd()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Paths of the file sinks (for tests and the `-T` style diagnostics).
    pub fn file_paths(&self) -> Vec<PathBuf> {
        self.sinks
            .iter()
            .filter_map(|s| match &s.kind {
                SinkKind::File(f) => Some(f.path.clone()),
                _ => None,
            })
            .collect()
    }

    /// The contents of every `memory:` sink, oldest bytes first (what a
    /// debugger would read from nginx's buffer).
    pub fn memory_contents(&self) -> Vec<Vec<u8>> {
        self.sinks
            .iter()
            .filter_map(|s| match &s.kind {
                SinkKind::Memory(m) => Some(m.contents()),
                _ => None,
            })
            .collect()
    }
}

fn dup_onto_stderr(fd: i32) -> io::Result<()> {
    // SAFETY: dup2 only manipulates the descriptor table; `fd` is an open
    // file owned by a live SharedFile, and fd 2 is replaced atomically.
    let rc = unsafe { libc::dup2(fd, libc::STDERR_FILENO) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// nginx's ngx_log_stderr: `postern: message` on stderr, unconditionally
/// (used for `-t` results and command line errors).
pub fn stderr_message(args: fmt::Arguments<'_>) {
    let mut w = Bounded {
        buf: Vec::with_capacity(128),
        limit: MAX_LINE,
    };
    let _ = write!(w, "{PROGRAM}: ");
    let _ = w.write_fmt(args);
    w.buf.truncate(MAX_LINE - 1);
    w.buf.push(b'\n');
    let _ = io::stderr().write_all(&w.buf);
}

static CURRENT: RwLock<Option<Arc<Log>>> = RwLock::new(None);

fn fallback() -> Arc<Log> {
    static FALLBACK: OnceLock<Arc<Log>> = OnceLock::new();
    FALLBACK.get_or_init(|| Arc::new(Log::stderr())).clone()
}

/// Make `log` the process-wide log used by `emit` and the macros of the
/// `log` crate.
pub fn install(log: Arc<Log>) {
    let filter = to_log_filter(log.level());
    *CURRENT.write().unwrap_or_else(|e| e.into_inner()) = Some(log);
    static BRIDGE_SET: OnceLock<()> = OnceLock::new();
    BRIDGE_SET.get_or_init(|| {
        // Fails only when another logger was set first (not in postern).
        let _ = log::set_logger(&BRIDGE);
    });
    log::set_max_level(filter);
}

/// The process-wide log (a stderr-only log until [`install`] is called).
pub fn current() -> Arc<Log> {
    CURRENT
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(fallback)
}

/// Write to the process-wide log.
pub fn emit(level: Level, conn: Option<u64>, args: fmt::Arguments<'_>) {
    current().write(level, conn, args)
}

/// Write a connection's message to the process-wide log, forcing it to
/// every sink when the client is listed in `debug_connection`.
pub fn emit_conn(level: Level, conn: Option<u64>, debug_forced: bool, args: fmt::Arguments<'_>) {
    current().write_conn(level, conn, debug_forced, args)
}

/// Write with an OS error appended: `... (13: Permission denied)`.
pub fn emit_err(level: Level, conn: Option<u64>, err: &io::Error, args: fmt::Arguments<'_>) {
    let extra = Extra {
        err: Some(err),
        ..Extra::default()
    };
    current().write_extra(level, conn, &extra, args)
}

/// nginx's errno suffix: ` (13: Permission denied)`.
pub fn errno_suffix(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => {
            // std words OS errors as "<strerror> (os error N)"; keep the
            // strerror text.
            let full = err.to_string();
            let text = full
                .strip_suffix(&format!(" (os error {code})"))
                .unwrap_or(&full);
            format!(" ({code}: {text})")
        }
        None => format!(" (0: {err})"),
    }
}

fn to_log_filter(level: Level) -> log::LevelFilter {
    match level {
        Level::Stderr | Level::Emerg | Level::Alert | Level::Crit | Level::Error => {
            log::LevelFilter::Error
        }
        Level::Warn => log::LevelFilter::Warn,
        Level::Notice | Level::Info => log::LevelFilter::Info,
        Level::Debug => log::LevelFilter::Trace,
    }
}

fn from_log_level(level: log::Level) -> Level {
    match level {
        log::Level::Error => Level::Error,
        log::Level::Warn => Level::Warn,
        log::Level::Info => Level::Info,
        log::Level::Debug | log::Level::Trace => Level::Debug,
    }
}

/// Routes the `log` crate's records to the process-wide log.
struct Bridge;

static BRIDGE: Bridge = Bridge;

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        current().enabled(from_log_level(metadata.level()))
    }

    fn log(&self, record: &log::Record<'_>) {
        current().write(from_log_level(record.level()), None, *record.args())
    }

    fn flush(&self) {}
}

/// Every log of one configuration: the main context's and each mail
/// server's (a server without its own `error_log` shares its parent's).
/// Files named twice are opened once, as nginx does.
pub struct ConfigLogs {
    pub main: Arc<Log>,
    /// Indexed like `MailConf::servers`.
    pub servers: Vec<Arc<Log>>,
    /// Every distinct open file, for reopening each once.
    files: Vec<Arc<SharedFile>>,
}

impl ConfigLogs {
    pub fn open(config: &Config) -> Result<ConfigLogs, String> {
        let mut files = HashMap::new();
        let main = Arc::new(Log::open_shared(&config.main.error_log, &mut files)?);
        let mut servers = Vec::new();
        if let Some(mail) = &config.mail {
            for server in &mail.servers {
                servers.push(match &server.error_log {
                    None => main.clone(),
                    Some(targets) => Arc::new(Log::open_shared(targets, &mut files)?),
                });
            }
        }
        let mut files: Vec<(PathBuf, Arc<SharedFile>)> = files.into_iter().collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(ConfigLogs {
            main,
            servers,
            files: files.into_iter().map(|(_, f)| f).collect(),
        })
    }

    /// Reopen every file sink (USR1); failures are logged at alert to the
    /// main log as nginx does, and the old file stays in use.
    pub fn reopen(&self) {
        self.reopen_owned(None)
    }

    /// Reopen every file sink, giving new files to `owner` (the master does
    /// this for the workers' `user`, as nginx's master does).
    pub fn reopen_owned(&self, owner: Option<u32>) {
        for f in &self.files {
            if let Err(text) = f.reopen(owner) {
                self.main.write(Level::Alert, None, format_args!("{text}"));
            }
        }
    }

    /// The distinct file paths opened, sorted.
    pub fn file_paths(&self) -> Vec<&Path> {
        self.files.iter().map(|f| f.path.as_path()).collect()
    }
}

#[cfg(test)]
mod tests;
