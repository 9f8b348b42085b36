//! `error_log` (main, mail and server levels) and its targets: files,
//! `stderr`, `memory:size` and `syslog:...`.

use super::{arg, args, fail, Cmd, Eval, MAIN};
use crate::conf::model::{ErrorLog, Level, LogTarget, SyslogServer, SyslogTarget};
use crate::conf::parser::Directive;
use crate::conf::url::{parse_url, UrlAddr, UrlOptions};
use crate::conf::{units, ConfMessage};

pub const COMMANDS: &[Cmd] = &[Cmd {
    name: "error_log",
    contexts: MAIN,
    args: args::MORE1,
    handler: |ev, d| {
        let log = parse(ev, d)?;
        ev.core.error_log.push(log);
        Ok(())
    },
}];

const LEVELS: [(&str, Level); 8] = [
    ("emerg", Level::Emerg),
    ("alert", Level::Alert),
    ("crit", Level::Crit),
    ("error", Level::Error),
    ("warn", Level::Warn),
    ("notice", Level::Notice),
    ("info", Level::Info),
    ("debug", Level::Debug),
];

/// nginx's debug sub-levels; Postern logs them all as `debug`.
const DEBUG_LEVELS: [&str; 7] = [
    "debug_core",
    "debug_alloc",
    "debug_mutex",
    "debug_event",
    "debug_http",
    "debug_mail",
    "debug_stream",
];

const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "intern", "lpr", "news", "uucp", "clock", "authpriv",
    "ftp", "ntp", "audit", "alert", "cron", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug",
];

/// nginx's longest error message, part of the minimum `memory:` size.
const MAX_ERROR_STR: usize = 2048;

/// Read one `error_log target [level...]`.
pub fn parse(ev: &mut Eval, d: &Directive) -> Result<ErrorLog, ConfMessage> {
    let v = arg(d, 0);
    let target = if v == "stderr" {
        LogTarget::Stderr
    } else if let Some(size) = v.strip_prefix("memory:") {
        // Room for the header line and one message, as nginx requires.
        let needed = 11 + d.origin.file.as_os_str().len() + 20 + 20 + MAX_ERROR_STR;
        match units::parse_size(size) {
            Some(n) if n >= needed => LogTarget::Memory(n),
            _ => return Err(fail(d, format!("invalid buffer size \"{size}\""))),
        }
    } else if let Some(rest) = v.strip_prefix("syslog:") {
        LogTarget::Syslog(syslog(d, rest)?)
    } else {
        LogTarget::File(ev.prefixed(v))
    };
    let level = levels(d)?;
    Ok(ErrorLog { target, level })
}

fn levels(d: &Directive) -> Result<Level, ConfMessage> {
    if d.args.len() == 1 {
        return Ok(Level::Error);
    }
    let mut level: Option<Level> = None;
    let mut debug_bits = false;
    for v in &d.args[1..] {
        if let Some(&(_, l)) = LEVELS.iter().find(|(n, _)| n == v) {
            if level.is_some() || debug_bits {
                return Err(fail(d, format!("duplicate log level \"{v}\"")));
            }
            level = Some(l);
            continue;
        }
        if DEBUG_LEVELS.contains(&v.as_str()) {
            if level.is_some_and(|l| l != Level::Debug) {
                return Err(fail(d, format!("invalid log level \"{v}\"")));
            }
            debug_bits = true;
            continue;
        }
        return Err(fail(d, format!("invalid log level \"{v}\"")));
    }
    Ok(if debug_bits {
        Level::Debug
    } else {
        level.unwrap_or(Level::Error)
    })
}

fn syslog(d: &Directive, params: &str) -> Result<SyslogTarget, ConfMessage> {
    let mut server: Option<SyslogServer> = None;
    let mut facility: Option<u8> = None;
    let mut severity: Option<u8> = None;
    let mut tag: Option<String> = None;
    let mut nohostname = false;
    for p in params.split(',') {
        if let Some(url) = p.strip_prefix("server=") {
            if server.is_some() {
                return Err(fail(d, "duplicate syslog \"server\""));
            }
            let u = parse_url(
                url,
                UrlOptions {
                    default_port: 514,
                    ..Default::default()
                },
            )
            .map_err(|e| fail(d, format!("{e} in syslog server \"{url}\"")))?;
            server = u.addrs.into_iter().next().map(|a| match a.addr {
                UrlAddr::Inet(sa) => SyslogServer::Udp(sa),
                UrlAddr::Unix(p) => SyslogServer::Unix(p),
            });
        } else if let Some(f) = p.strip_prefix("facility=") {
            if facility.is_some() {
                return Err(fail(d, "duplicate syslog \"facility\""));
            }
            let i = FACILITIES
                .iter()
                .position(|n| *n == f)
                .ok_or_else(|| fail(d, format!("unknown syslog facility \"{f}\"")))?;
            facility = Some(i as u8);
        } else if let Some(s) = p.strip_prefix("severity=") {
            if severity.is_some() {
                return Err(fail(d, "duplicate syslog \"severity\""));
            }
            let i = SEVERITIES
                .iter()
                .position(|n| *n == s)
                .ok_or_else(|| fail(d, format!("unknown syslog severity \"{s}\"")))?;
            severity = Some(i as u8);
        } else if let Some(t) = p.strip_prefix("tag=") {
            if tag.is_some() {
                return Err(fail(d, "duplicate syslog \"tag\""));
            }
            if t.len() > 32 {
                return Err(fail(d, "syslog tag length exceeds 32"));
            }
            if !t.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
                return Err(fail(
                    d,
                    "syslog \"tag\" only allows alphanumeric characters and underscore",
                ));
            }
            tag = Some(t.to_string());
        } else if p == "nohostname" {
            nohostname = true;
        } else {
            return Err(fail(d, format!("unknown syslog parameter \"{p}\"")));
        }
    }
    let server = server.ok_or_else(|| fail(d, "no syslog server specified"))?;
    Ok(SyslogTarget {
        server,
        facility: facility.unwrap_or(23),
        severity: severity.unwrap_or(6),
        tag: tag.unwrap_or_else(|| "postern".to_string()),
        nohostname,
    })
}
