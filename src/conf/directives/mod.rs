//! Directive tables and the evaluator that walks the parsed tree.
//!
//! Each module lists its directives as [`Cmd`]s: name, contexts where it
//! may appear, argument-count rule and handler, mirroring nginx's command
//! tables, so that the generic checks (unknown directive, not allowed here,
//! wrong number of arguments, missing `;` or `{`) come out worded and
//! ordered as nginx's.

pub mod auth_http;
pub mod core;
pub mod events;
pub mod imap;
pub mod log;
pub mod mail;
pub mod pop3;
pub mod proxy;
pub mod realip;
pub mod smtp;
pub mod ssl;

use super::error::{emerg_at, warn_at};
use super::model::*;
use super::parser::{Directive, Node};
use super::units;
use super::ConfMessage;
use std::path::PathBuf;
use std::time::Duration;

/// Contexts, as a bit set.
pub const MAIN: u8 = 1;
pub const EVENTS: u8 = 2;
pub const MAIL: u8 = 4;
pub const SRV: u8 = 8;

/// Argument-count rules (nginx's `NGX_CONF_NOARGS`, `TAKE1`…, `FLAG`,
/// `1MORE`, `2MORE`, `ANY`, and `BLOCK`). Counts exclude the name.
pub mod args {
    pub const NOARGS: u32 = 1;
    pub const TAKE1: u32 = 1 << 1;
    pub const TAKE2: u32 = 1 << 2;
    pub const TAKE12: u32 = TAKE1 | TAKE2;
    pub const BLOCK: u32 = 1 << 8;
    pub const FLAG: u32 = 1 << 9;
    pub const ANY: u32 = 1 << 10;
    pub const MORE1: u32 = 1 << 11;
    pub const MORE2: u32 = 1 << 12;
}

/// nginx's limit on arguments for fixed-count directives.
const MAX_ARGS: usize = 8;

pub type Handler = fn(&mut Eval, &Directive) -> Result<(), ConfMessage>;

/// One directive of a module's table.
pub struct Cmd {
    pub name: &'static str,
    pub contexts: u8,
    pub args: u32,
    pub handler: Handler,
}

/// Whether `n` arguments satisfy the rule.
fn args_ok(rule: u32, n: usize) -> bool {
    if rule & args::ANY != 0 {
        return true;
    }
    if rule & args::FLAG != 0 {
        return n == 1;
    }
    if rule & args::MORE1 != 0 {
        return n >= 1;
    }
    if rule & args::MORE2 != 0 {
        return n >= 2;
    }
    if n >= MAX_ARGS {
        return false;
    }
    rule & (1 << n) != 0
}

/// Every module's table, in nginx's module order.
fn tables() -> [&'static [Cmd]; 12] {
    [
        core::COMMANDS,
        log::COMMANDS,
        events::COMMANDS,
        mail::BLOCK_COMMANDS,
        mail::COMMANDS,
        ssl::COMMANDS,
        pop3::COMMANDS,
        imap::COMMANDS,
        smtp::COMMANDS,
        auth_http::COMMANDS,
        proxy::COMMANDS,
        realip::COMMANDS,
    ]
}

/// Every directive name Postern knows (for documentation and tests).
pub fn known_names() -> Vec<&'static str> {
    tables()
        .iter()
        .flat_map(|t| t.iter().map(|c| c.name))
        .collect()
}

/// Settings of `main` while they are being read (`None` = not set).
#[derive(Debug, Default)]
pub struct CoreBuild {
    pub daemon: Option<bool>,
    pub master_process: Option<bool>,
    pub timer_resolution: Option<Duration>,
    pub pid: Option<String>,
    pub lock_file: Option<String>,
    pub worker_processes: Option<usize>,
    pub user: Option<User>,
    pub user_seen: bool,
    pub worker_priority: Option<i32>,
    pub worker_cpu_affinity: Option<CpuAffinity>,
    pub affinity_masks: usize,
    pub worker_rlimit_nofile: Option<u64>,
    pub worker_rlimit_core: Option<u64>,
    pub worker_shutdown_timeout: Option<Duration>,
    pub working_directory: Option<String>,
    pub env: Vec<EnvVar>,
    pub error_log: Vec<ErrorLog>,
    pub debug_points: Option<String>,
}

#[derive(Debug, Default)]
pub struct EventsBuild {
    pub worker_connections: Option<usize>,
    pub use_method: Option<String>,
    pub multi_accept: Option<bool>,
    pub accept_mutex: Option<bool>,
    pub accept_mutex_delay: Option<Duration>,
    pub debug_connection: Vec<Cidr>,
}

/// `ssl_session_cache`'s per-process part, as nginx keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Off,
    None,
    NoBuiltin,
    Default,
    Size(usize),
}

/// One server's (or the `mail {}` level's) settings while being read.
#[derive(Debug, Default, Clone)]
pub struct SrvBuild {
    pub origin: Origin,
    pub listen: bool,
    pub protocol: Option<Protocol>,
    pub timeout: Option<Duration>,
    pub server_name: Option<String>,
    pub error_log: Option<Vec<ErrorLog>>,
    pub resolver: Option<Option<Resolver>>,
    pub resolver_timeout: Option<Duration>,
    pub max_errors: Option<u32>,
    // ssl
    pub ssl_on: Option<bool>,
    pub ssl_listen: bool,
    pub ssl_origin: Option<Origin>,
    pub starttls: Option<StartTls>,
    pub certificates: Option<Vec<CertSource>>,
    pub certificate_names: Vec<String>,
    pub certificate_keys: Option<Vec<KeySource>>,
    pub password_file: Option<PathBuf>,
    pub passwords: Option<crate::conf::model::Passwords>,
    pub certificate_compression: Option<bool>,
    pub dhparam: Option<PathBuf>,
    pub ecdh_curve: Option<String>,
    pub protocols: Option<SslProtocols>,
    pub ciphers: Option<String>,
    pub prefer_server_ciphers: Option<bool>,
    pub session_cache: Option<Builtin>,
    pub shm_zone: Option<ShmZone>,
    pub session_tickets: Option<bool>,
    pub session_ticket_keys: Option<Vec<PathBuf>>,
    pub session_timeout: Option<Duration>,
    pub verify_client: Option<VerifyClient>,
    pub verify_depth: Option<u32>,
    pub client_certificate: Option<PathBuf>,
    pub trusted_certificate: Option<PathBuf>,
    pub crl: Option<PathBuf>,
    pub conf_commands: Option<Vec<(String, String)>>,
    // auth_http
    pub auth_peer: Option<(AuthHttpPeer, String, String)>,
    pub auth_timeout: Option<Duration>,
    pub auth_headers: Option<Vec<(String, String)>>,
    pub auth_pass_client_cert: Option<bool>,
    // proxy
    pub proxy: Option<bool>,
    pub proxy_buffer: Option<usize>,
    pub proxy_timeout: Option<Duration>,
    pub proxy_pass_error_message: Option<bool>,
    pub xclient: Option<bool>,
    pub proxy_smtp_auth: Option<bool>,
    pub proxy_protocol: Option<ProxyProtocolVersion>,
    // protocols
    pub imap_client_buffer: Option<usize>,
    pub imap_capabilities: Vec<String>,
    pub imap_auth: Option<AuthMethods>,
    pub pop3_capabilities: Vec<String>,
    pub pop3_auth: Option<AuthMethods>,
    pub smtp_client_buffer: Option<usize>,
    pub smtp_greeting_delay: Option<Duration>,
    pub smtp_capabilities: Vec<String>,
    pub smtp_auth: Option<AuthMethods>,
    // realip
    pub set_real_ip_from: Option<Vec<Cidr>>,
}

#[derive(Debug, Default)]
pub struct MailBuild {
    pub main: SrvBuild,
    pub servers: Vec<SrvBuild>,
    pub listens: Vec<Listen>,
    pub shm_zones: Vec<ShmZone>,
    /// Index of the server being read, `None` at the `mail {}` level.
    pub current: Option<usize>,
}

/// The evaluator: the context being read and everything set so far.
pub struct Eval {
    /// `-p` prefix: pid, lock file, error logs and modules are relative to it.
    pub prefix: PathBuf,
    /// Directory of the main file: includes and TLS files are relative to it.
    pub conf_prefix: PathBuf,
    pub ctx: u8,
    pub core: CoreBuild,
    pub events: Option<EventsBuild>,
    pub mail: Option<MailBuild>,
    /// The merged `mail {}` once its block is read.
    pub mail_conf: Option<MailConf>,
    pub warnings: Vec<ConfMessage>,
    /// Set once a block that fixes the module list was read; `load_module`
    /// is refused afterwards, as in nginx.
    pub modules_used: bool,
    pub euid: u32,
    pub hostname: String,
    pub ncpu: usize,
}

impl Eval {
    pub fn new(prefix: PathBuf, conf_prefix: PathBuf) -> Eval {
        Eval {
            prefix,
            conf_prefix,
            ctx: MAIN,
            core: CoreBuild::default(),
            events: None,
            mail: None,
            mail_conf: None,
            warnings: Vec::new(),
            modules_used: false,
            euid: super::sys::euid(),
            hostname: super::sys::hostname(),
            ncpu: super::sys::online_cpus(),
        }
    }

    /// Walk a list of nodes in the current context.
    pub fn run(&mut self, nodes: &[Node]) -> Result<(), ConfMessage> {
        for node in nodes {
            match node {
                Node::Error(e) => return Err(e.clone()),
                Node::Include(sub) => self.run(sub)?,
                Node::Directive(d) => self.directive(d)?,
            }
        }
        Ok(())
    }

    fn directive(&mut self, d: &Directive) -> Result<(), ConfMessage> {
        let mut found = false;
        for table in tables() {
            for cmd in table.iter().filter(|c| c.name == d.name) {
                found = true;
                if cmd.contexts & self.ctx == 0 {
                    continue;
                }
                let is_block = cmd.args & args::BLOCK != 0;
                if !is_block && d.block.is_some() {
                    return Err(emerg_at(
                        format!("directive \"{}\" is not terminated by \";\"", d.name),
                        &d.origin,
                    ));
                }
                if is_block && d.block.is_none() {
                    return Err(emerg_at(
                        format!("directive \"{}\" has no opening \"{{\"", d.name),
                        &d.origin,
                    ));
                }
                if !args_ok(cmd.args & !args::BLOCK, d.args.len()) {
                    return Err(emerg_at(
                        format!("invalid number of arguments in \"{}\" directive", d.name),
                        &d.origin,
                    ));
                }
                return (cmd.handler)(self, d);
            }
        }
        if found {
            Err(emerg_at(
                format!("\"{}\" directive is not allowed here", d.name),
                &d.origin,
            ))
        } else {
            Err(emerg_at(
                format!("unknown directive \"{}\"", d.name),
                &d.origin,
            ))
        }
    }

    /// Run a block's contents in another context.
    pub fn block(&mut self, d: &Directive, ctx: u8) -> Result<(), ConfMessage> {
        let saved = self.ctx;
        self.ctx = ctx;
        let r = self.run(d.block.as_deref().unwrap_or(&[]));
        self.ctx = saved;
        r
    }

    pub fn events_mut(&mut self) -> &mut EventsBuild {
        self.events.get_or_insert_with(EventsBuild::default)
    }

    /// The server (or `mail {}` level) being read.
    pub fn srv(&mut self) -> &mut SrvBuild {
        let mail = self.mail.get_or_insert_with(MailBuild::default);
        match mail.current {
            Some(i) => &mut mail.servers[i],
            None => &mut mail.main,
        }
    }

    pub fn warn(&mut self, text: impl AsRef<str>, d: &Directive) {
        self.warnings.push(warn_at(text, &d.origin));
    }

    /// A path relative to the `-p` prefix.
    pub fn prefixed(&self, name: &str) -> PathBuf {
        super::parser::full_name(&self.prefix, name)
    }

    /// A path relative to the main file's directory.
    pub fn conf_prefixed(&self, name: &str) -> PathBuf {
        super::parser::full_name(&self.conf_prefix, name)
    }
}

// ---------------------------------------------------------------------------
// Helpers shared by the modules: nginx's generic "slot" handlers.

/// `invalid ...` and similar messages at the directive.
pub fn fail(d: &Directive, text: impl AsRef<str>) -> ConfMessage {
    emerg_at(text, &d.origin)
}

/// A handler's short answer, printed as `"name" directive <rv>`.
pub fn rv(d: &Directive, text: &str) -> ConfMessage {
    emerg_at(format!("\"{}\" directive {}", d.name, text), &d.origin)
}

pub fn arg(d: &Directive, i: usize) -> &str {
    d.args.get(i).map(String::as_str).unwrap_or("")
}

fn dup<T>(slot: &Option<T>, d: &Directive) -> Result<(), ConfMessage> {
    if slot.is_some() {
        Err(rv(d, "is duplicate"))
    } else {
        Ok(())
    }
}

/// `on`/`off` (case-insensitive).
pub fn flag(slot: &mut Option<bool>, d: &Directive) -> Result<(), ConfMessage> {
    dup(slot, d)?;
    let v = arg(d, 0);
    *slot = Some(if v.eq_ignore_ascii_case("on") {
        true
    } else if v.eq_ignore_ascii_case("off") {
        false
    } else {
        return Err(fail(
            d,
            format!(
                "invalid value \"{}\" in \"{}\" directive, it must be \"on\" or \"off\"",
                v, d.name
            ),
        ));
    });
    Ok(())
}

pub fn msec(slot: &mut Option<Duration>, d: &Directive) -> Result<(), ConfMessage> {
    dup(slot, d)?;
    *slot = Some(units::parse_msec(arg(d, 0)).ok_or_else(|| rv(d, "invalid value"))?);
    Ok(())
}

pub fn sec(slot: &mut Option<Duration>, d: &Directive) -> Result<(), ConfMessage> {
    dup(slot, d)?;
    *slot = Some(units::parse_sec(arg(d, 0)).ok_or_else(|| rv(d, "invalid value"))?);
    Ok(())
}

pub fn size(slot: &mut Option<usize>, d: &Directive) -> Result<(), ConfMessage> {
    dup(slot, d)?;
    *slot = Some(units::parse_size(arg(d, 0)).ok_or_else(|| rv(d, "invalid value"))?);
    Ok(())
}

pub fn num<T: TryFrom<i64>>(slot: &mut Option<T>, d: &Directive) -> Result<(), ConfMessage> {
    dup(slot, d)?;
    let n = units::parse_number(arg(d, 0)).ok_or_else(|| rv(d, "invalid number"))?;
    *slot = Some(T::try_from(n).map_err(|_| rv(d, "invalid number"))?);
    Ok(())
}

pub fn string(slot: &mut Option<String>, d: &Directive) -> Result<(), ConfMessage> {
    dup(slot, d)?;
    *slot = Some(arg(d, 0).to_string());
    Ok(())
}

/// A file relative to the main file's directory (`ngx_conf_full_name`
/// with the conf prefix), stored once.
pub fn conf_path(ev: &Eval, slot: &mut Option<PathBuf>, d: &Directive) -> Result<(), ConfMessage> {
    dup(slot, d)?;
    *slot = Some(ev.conf_prefixed(arg(d, 0)));
    Ok(())
}

/// One value of a fixed list (`ngx_conf_set_enum_slot`), case-insensitive.
pub fn enumerated<T: Copy>(
    slot: &mut Option<T>,
    d: &Directive,
    values: &[(&str, T)],
) -> Result<(), ConfMessage> {
    dup(slot, d)?;
    let v = arg(d, 0);
    match values.iter().find(|(name, _)| name.eq_ignore_ascii_case(v)) {
        Some(&(_, t)) => {
            *slot = Some(t);
            Ok(())
        }
        None => Err(fail(d, format!("invalid value \"{v}\""))),
    }
}

/// Names into a bit set (`ngx_conf_set_bitmask_slot`): every argument must
/// be known; a repeated name is a warning.
pub fn bitmask<T: Copy>(
    ev: &mut Eval,
    d: &Directive,
    names: &[&str],
    mut current: T,
    set: impl Fn(&mut T, usize) -> bool,
) -> Result<T, ConfMessage> {
    for v in &d.args {
        match names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            Some(i) => {
                if !set(&mut current, i) {
                    ev.warn(format!("duplicate value \"{v}\""), d);
                }
            }
            None => return Err(fail(d, format!("invalid value \"{v}\""))),
        }
    }
    Ok(current)
}

/// An `*_auth` directive: names into an [`AuthMethods`] set, in the order
/// of the module's `names` table.
pub fn auth_methods(
    ev: &mut Eval,
    d: &Directive,
    names: &[&str],
    current: AuthMethods,
) -> Result<AuthMethods, ConfMessage> {
    bitmask(ev, d, names, current, |m: &mut AuthMethods, i| {
        let bit = match names[i] {
            "plain" => &mut m.plain,
            "login" => &mut m.login,
            "apop" => &mut m.apop,
            "cram-md5" => &mut m.cram_md5,
            "external" => &mut m.external,
            _ => &mut m.none,
        };
        !std::mem::replace(bit, true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arg_rules() {
        assert!(args_ok(args::NOARGS, 0));
        assert!(!args_ok(args::NOARGS, 1));
        assert!(args_ok(args::TAKE12, 2));
        assert!(!args_ok(args::TAKE12, 3));
        assert!(args_ok(args::FLAG, 1));
        assert!(!args_ok(args::FLAG, 2));
        assert!(args_ok(args::MORE1, 9));
        assert!(!args_ok(args::MORE1, 0));
        assert!(!args_ok(args::MORE2, 1));
        assert!(args_ok(args::ANY, 0));
    }

    #[test]
    fn names_are_unique_per_module() {
        for t in tables() {
            let mut names: Vec<_> = t.iter().map(|c| c.name).collect();
            names.sort_unstable();
            let n = names.len();
            names.dedup();
            assert_eq!(n, names.len());
        }
        assert!(known_names().contains(&"listen"));
    }
}
