//! The main context (nginx's core module): processes, users, limits,
//! paths, `env`, `load_module`, and the refusal of `http {}`/`stream {}`.

use super::{arg, args, fail, flag, msec, num, rv, string, Cmd, Eval, EVENTS, MAIL, MAIN, SRV};
use crate::conf::model::{CpuAffinity, EnvVar, User};
use crate::conf::parser::Directive;
use crate::conf::{sys, units, ConfMessage};

/// glibc's `CPU_SETSIZE`: how many CPUs a mask may name.
const CPU_SETSIZE: usize = 1024;

pub const COMMANDS: &[Cmd] = &[
    Cmd {
        name: "daemon",
        contexts: MAIN,
        args: args::FLAG,
        handler: |ev, d| flag(&mut ev.core.daemon, d),
    },
    Cmd {
        name: "master_process",
        contexts: MAIN,
        args: args::FLAG,
        handler: |ev, d| flag(&mut ev.core.master_process, d),
    },
    Cmd {
        name: "timer_resolution",
        contexts: MAIN,
        args: args::TAKE1,
        handler: |ev, d| msec(&mut ev.core.timer_resolution, d),
    },
    Cmd {
        name: "pid",
        contexts: MAIN,
        args: args::TAKE1,
        handler: |ev, d| string(&mut ev.core.pid, d),
    },
    Cmd {
        name: "lock_file",
        contexts: MAIN,
        args: args::TAKE1,
        handler: |ev, d| string(&mut ev.core.lock_file, d),
    },
    Cmd {
        name: "worker_processes",
        contexts: MAIN,
        args: args::TAKE1,
        handler: worker_processes,
    },
    Cmd {
        name: "user",
        contexts: MAIN,
        args: args::TAKE12,
        handler: user,
    },
    Cmd {
        name: "worker_priority",
        contexts: MAIN,
        args: args::TAKE1,
        handler: worker_priority,
    },
    Cmd {
        name: "worker_cpu_affinity",
        contexts: MAIN,
        args: args::MORE1,
        handler: worker_cpu_affinity,
    },
    Cmd {
        name: "worker_rlimit_nofile",
        contexts: MAIN,
        args: args::TAKE1,
        handler: |ev, d| num(&mut ev.core.worker_rlimit_nofile, d),
    },
    Cmd {
        name: "worker_rlimit_core",
        contexts: MAIN,
        args: args::TAKE1,
        handler: worker_rlimit_core,
    },
    Cmd {
        name: "worker_shutdown_timeout",
        contexts: MAIN,
        args: args::TAKE1,
        handler: |ev, d| msec(&mut ev.core.worker_shutdown_timeout, d),
    },
    Cmd {
        name: "working_directory",
        contexts: MAIN,
        args: args::TAKE1,
        handler: |ev, d| string(&mut ev.core.working_directory, d),
    },
    Cmd {
        name: "env",
        contexts: MAIN,
        args: args::TAKE1,
        handler: env,
    },
    Cmd {
        name: "load_module",
        contexts: MAIN,
        args: args::TAKE1,
        handler: load_module,
    },
    Cmd {
        name: "include",
        contexts: MAIN | EVENTS | MAIL | SRV,
        args: args::TAKE1,
        handler: include_refused,
    },
    Cmd {
        name: "http",
        contexts: MAIN,
        args: args::ANY | args::BLOCK,
        handler: not_mail,
    },
    Cmd {
        name: "stream",
        contexts: MAIN,
        args: args::ANY | args::BLOCK,
        handler: not_mail,
    },
];

fn worker_processes(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    if ev.core.worker_processes.is_some() {
        return Err(rv(d, "is duplicate"));
    }
    let v = arg(d, 0);
    let n = if v == "auto" {
        ev.ncpu
    } else {
        units::parse_number(v)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| rv(d, "invalid value"))?
    };
    ev.core.worker_processes = Some(n);
    Ok(())
}

/// `user name [group]`: looked up now, as nginx does; meaningless (and
/// ignored with a warning) unless the master runs as root.
fn user(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    if ev.core.user_seen {
        return Err(rv(d, "is duplicate"));
    }
    if ev.euid != 0 {
        ev.warn(
            "the \"user\" directive makes sense only if the master process runs with super-user privileges, ignored",
            d,
        );
        return Ok(());
    }
    ev.core.user_seen = true;
    let name = arg(d, 0).to_string();
    let uid = sys::user_id(&name).map_err(|e| {
        fail(
            d,
            format!("getpwnam(\"{name}\") failed{}", sys::errno_suffix(e)),
        )
    })?;
    let group = if d.args.len() == 2 {
        arg(d, 1).to_string()
    } else {
        name.clone()
    };
    let gid = sys::group_id(&group).map_err(|e| {
        fail(
            d,
            format!("getgrnam(\"{group}\") failed{}", sys::errno_suffix(e)),
        )
    })?;
    ev.core.user = Some(User {
        name,
        uid,
        group,
        gid,
    });
    Ok(())
}

/// `worker_priority [-+]n`; like nginx, only a non-zero earlier value
/// makes a repeat a duplicate, and the kernel clamps the range.
fn worker_priority(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    if ev.core.worker_priority.is_some_and(|p| p != 0) {
        return Err(rv(d, "is duplicate"));
    }
    let v = arg(d, 0);
    let (minus, digits) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let n = units::parse_number(digits)
        .and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| rv(d, "invalid number"))?;
    ev.core.worker_priority = Some(if minus { -n } else { n });
    Ok(())
}

/// One mask, written with CPU 0 rightmost; spaces are ignored.
fn cpu_mask(d: &Directive, text: &str) -> Result<Vec<bool>, ConfMessage> {
    if text.len() > CPU_SETSIZE {
        return Err(fail(
            d,
            format!("\"worker_cpu_affinity\" supports up to {CPU_SETSIZE} CPUs only"),
        ));
    }
    let mut mask = Vec::new();
    for c in text.bytes().rev() {
        match c {
            b' ' => {}
            b'0' => mask.push(false),
            b'1' => mask.push(true),
            _ => {
                return Err(fail(
                    d,
                    format!(
                        "invalid character \"{}\" in \"worker_cpu_affinity\"",
                        c as char
                    ),
                ))
            }
        }
    }
    Ok(mask)
}

fn worker_cpu_affinity(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    if ev.core.worker_cpu_affinity.is_some() {
        return Err(rv(d, "is duplicate"));
    }
    ev.core.affinity_masks = d.args.len();
    if arg(d, 0) == "auto" {
        if d.args.len() > 2 {
            return Err(fail(
                d,
                "invalid number of arguments in \"worker_cpu_affinity\" directive",
            ));
        }
        let mask = match d.args.get(1) {
            Some(m) => Some(cpu_mask(d, m)?),
            None => None,
        };
        ev.core.worker_cpu_affinity = Some(CpuAffinity::Auto { mask });
        return Ok(());
    }
    let masks = d
        .args
        .iter()
        .map(|m| cpu_mask(d, m))
        .collect::<Result<Vec<_>, _>>()?;
    ev.core.worker_cpu_affinity = Some(CpuAffinity::Masks(masks));
    Ok(())
}

fn worker_rlimit_core(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    if ev.core.worker_rlimit_core.is_some() {
        return Err(rv(d, "is duplicate"));
    }
    ev.core.worker_rlimit_core =
        Some(units::parse_offset(arg(d, 0)).ok_or_else(|| rv(d, "invalid value"))?);
    Ok(())
}

fn env(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let v = arg(d, 0);
    let var = match v.find('=') {
        Some(eq) => EnvVar {
            name: v[..eq].to_string(),
            value: Some(v[eq + 1..].to_string()),
        },
        None => EnvVar {
            name: v.to_string(),
            value: None,
        },
    };
    ev.core.env.push(var);
    Ok(())
}

/// The mail module is built in, so loading nginx's is accepted and does
/// nothing; Postern cannot load any other nginx module, and says so:
/// `load_module "/x/ngx_http_foo_module.so" is not supported: postern has
/// the mail modules built in and loads no other modules`.
fn load_module(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    if ev.modules_used {
        return Err(rv(d, "is specified too late"));
    }
    let file = ev.prefixed(arg(d, 0));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name == "ngx_mail_module.so" {
        return Ok(());
    }
    Err(fail(
        d,
        format!(
            "load_module \"{}\" is not supported: postern has the mail modules built in and loads no other modules",
            file.display()
        ),
    ))
}

/// Reached only when the reader was told not to follow includes (parsing
/// untrusted text, as the fuzz target does).
fn include_refused(_ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    Err(rv(d, "is not allowed in this configuration text"))
}

/// `http {}` and `stream {}`: Postern is a mail proxy only. The message is
/// `"http" directive is not supported: postern serves mail only`.
fn not_mail(_ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    Err(rv(d, "is not supported: postern serves mail only"))
}
