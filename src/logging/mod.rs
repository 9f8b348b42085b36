//! nginx-style error logs. SKELETON: owned by the logging work.

use crate::conf::{Config, ErrorLog, Level};
use std::fmt;
use std::io;
use std::sync::Arc;

/// A set of open error log sinks, each with its own level.
pub struct Log {}

impl Log {
    /// The log used before the configuration is read: `postern: [level] msg`
    /// lines on stderr.
    pub fn stderr() -> Log {
        todo!()
    }
    /// Open every target (files are created/appended, syslog sockets made).
    /// The error names the failing target as nginx does
    /// (`open() "/x/error.log" failed (13: Permission denied)`).
    pub fn open(targets: &[ErrorLog]) -> Result<Log, String> {
        let _ = targets;
        todo!()
    }
    /// Whether any sink would write a message of this level.
    pub fn enabled(&self, level: Level) -> bool {
        let _ = level;
        todo!()
    }
    /// Write one message: `YYYY/MM/DD HH:MM:SS [level] pid#tid: *conn msg`.
    pub fn write(&self, level: Level, conn: Option<u64>, args: fmt::Arguments<'_>) {
        let _ = (level, conn, args);
        todo!()
    }
    /// Reopen file sinks (USR1).
    pub fn reopen(&self) -> io::Result<()> {
        todo!()
    }
}

/// Make `log` the process-wide log used by `emit` and the macros.
pub fn install(log: Arc<Log>) {
    let _ = log;
    todo!()
}

/// The process-wide log.
pub fn current() -> Arc<Log> {
    todo!()
}

/// Write to the process-wide log.
pub fn emit(level: Level, conn: Option<u64>, args: fmt::Arguments<'_>) {
    current().write(level, conn, args)
}

/// nginx's errno suffix: ` (13: Permission denied)`.
pub fn errno_suffix(err: &io::Error) -> String {
    let _ = err;
    todo!()
}

/// Every log of one configuration: the main context's and each mail
/// server's (a server without its own `error_log` shares its parent's).
/// Files named twice are opened once, as nginx does.
pub struct ConfigLogs {
    pub main: Arc<Log>,
    /// Indexed like `MailConf::servers`.
    pub servers: Vec<Arc<Log>>,
}

impl ConfigLogs {
    pub fn open(config: &Config) -> Result<ConfigLogs, String> {
        let _ = config;
        todo!()
    }
    /// Reopen every file sink (USR1).
    pub fn reopen(&self) {
        todo!()
    }
}
