//! The typed configuration: what a parsed and merged `postern.conf` means.
//!
//! Everything runtime code needs is here, already validated and with the
//! `mail {}` → `server {}` inheritance resolved, so no code outside `conf/`
//! ever looks at directive strings. Durations are `Duration`, sizes are bytes,
//! paths are resolved against the prefix (or the config directory) the way
//! nginx resolves them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A whole configuration, as loaded from one main file plus its includes.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub main: MainConf,
    pub events: EventsConf,
    /// `None` when the file has no `mail {}` block (nginx accepts that; the
    /// master then runs workers that listen on nothing).
    pub mail: Option<MailConf>,
    /// Every file that was read, in order, with its contents (for `-T`).
    pub files: Vec<ConfFile>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConfFile {
    pub path: PathBuf,
    pub contents: String,
}

/// Where a directive was written; kept for messages that must name it later
/// (for example errors found while opening listening sockets).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

// ---------------------------------------------------------------------------
// main and events contexts

#[derive(Debug, Clone, PartialEq)]
pub struct MainConf {
    /// `daemon`, default on.
    pub daemon: bool,
    /// `master_process`, default on.
    pub master_process: bool,
    /// `worker_processes`; `auto` is resolved to the number of online CPUs
    /// at load time. Default 1.
    pub worker_processes: usize,
    /// `pid`, default `<prefix>/logs/postern.pid` (build-time configurable).
    /// Always `Some` after loading: nginx has no `pid off` (it would name a
    /// file "off").
    pub pid: Option<PathBuf>,
    /// `lock_file` (accepted for compatibility; Postern does not need an
    /// accept mutex lock file but keeps the path for the shared-memory lock).
    pub lock_file: PathBuf,
    /// `error_log` at main level; when none is configured the build-time
    /// default error log file at `Level::Error`.
    pub error_log: Vec<ErrorLog>,
    /// `user name [group]`, only applied when the master runs as root.
    pub user: Option<User>,
    /// `worker_rlimit_nofile`.
    pub worker_rlimit_nofile: Option<u64>,
    /// `worker_rlimit_core` (bytes).
    pub worker_rlimit_core: Option<u64>,
    /// `working_directory`.
    pub working_directory: Option<PathBuf>,
    /// `worker_priority`, -20..=20, default 0.
    pub worker_priority: i32,
    /// `worker_cpu_affinity`.
    pub worker_cpu_affinity: CpuAffinity,
    /// `worker_shutdown_timeout`; `None` = wait for sessions forever.
    pub worker_shutdown_timeout: Option<Duration>,
    /// `timer_resolution`; `None` = exact timers.
    pub timer_resolution: Option<Duration>,
    /// `env` directives in order: `NAME` keeps an inherited variable,
    /// `NAME=value` sets one. `TZ` is always kept, as in nginx.
    pub env: Vec<EnvVar>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub group: String,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuAffinity {
    None,
    /// `auto [mask]`: worker n bound to the n-th allowed CPU.
    Auto {
        mask: Option<Vec<bool>>,
    },
    /// One mask per worker (the last one repeats), CPU 0 first.
    Masks(Vec<Vec<bool>>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventsConf {
    /// `worker_connections`, default 512.
    pub worker_connections: usize,
    /// `multi_accept`, default off.
    pub multi_accept: bool,
    /// `accept_mutex`, default off (accepted; the kernel balances accepts).
    pub accept_mutex: bool,
    /// `accept_mutex_delay`, default 500ms.
    pub accept_mutex_delay: Duration,
    /// `debug_connection` addresses/networks.
    pub debug_connection: Vec<Cidr>,
    /// `use` — only `epoll` is available; stored for `-T` fidelity.
    pub use_method: Option<String>,
}

/// An address or network, as in `debug_connection` and `set_real_ip_from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cidr {
    V4 {
        addr: std::net::Ipv4Addr,
        prefix: u8,
    },
    V6 {
        addr: std::net::Ipv6Addr,
        prefix: u8,
    },
    /// `unix:` — matches connections over UNIX-domain sockets.
    Unix,
}

// ---------------------------------------------------------------------------
// logging

/// One `error_log` target with its level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLog {
    pub target: LogTarget,
    pub level: Level,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    File(PathBuf),
    Stderr,
    Syslog(SyslogTarget),
    /// `memory:size` — a cyclic in-memory buffer (inspected with a debugger,
    /// as in nginx).
    Memory(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    /// `server=` (UDP, default port 514) or `unix:/path` (datagram socket).
    pub server: SyslogServer,
    /// `facility=`, default local7 (23).
    pub facility: u8,
    /// `severity=`, default info (6): the severity written for every message
    /// (nginx maps message levels; see log module).
    pub severity: u8,
    /// `tag=`, default "postern" ... nginx's default tag is "nginx"; we use
    /// the binary's name.
    pub tag: String,
    /// `nohostname`.
    pub nohostname: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogServer {
    Udp(SocketAddr),
    Unix(PathBuf),
}

/// nginx's levels, most severe first. `Stderr` is nginx's level 0 used for
/// messages that must always be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Stderr = 0,
    Emerg = 1,
    Alert = 2,
    Crit = 3,
    Error = 4,
    Warn = 5,
    Notice = 6,
    Info = 7,
    Debug = 8,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Stderr => "",
            Level::Emerg => "emerg",
            Level::Alert => "alert",
            Level::Crit => "crit",
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

// ---------------------------------------------------------------------------
// mail

#[derive(Debug, Clone, PartialEq)]
pub struct MailConf {
    /// Every `server {}` in order, fully merged.
    pub servers: Vec<ServerConf>,
    /// Every `listen`, in order of appearance; each names its server.
    pub listens: Vec<Listen>,
    /// `ssl_session_cache shared:name:size` zones in use, deduplicated by
    /// name (the shared-memory module creates them in the master).
    pub shm_zones: Vec<ShmZone>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShmZone {
    pub name: String,
    pub size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Imap,
    Pop3,
    Smtp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
            Protocol::Smtp => "smtp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Inet(SocketAddr),
    Unix(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub addr: ListenAddr,
    /// The text as nginx prints it (`127.0.0.1:8143`, `[::1]:110`,
    /// `unix:/tmp/s`), used in log messages.
    pub addr_text: String,
    /// Index into `MailConf::servers`.
    pub server: usize,
    /// `bind`, or implied by any socket option below.
    pub bind: bool,
    /// The address is a wildcard (`*:port`, `[::]:port`, `port`).
    pub wildcard: bool,
    pub ssl: bool,
    pub proxy_protocol: bool,
    /// default 511 (nginx's NGX_LISTEN_BACKLOG on Linux).
    pub backlog: i32,
    pub rcvbuf: Option<i32>,
    pub sndbuf: Option<i32>,
    /// `ipv6only`, default on; meaningful for `[::]` only.
    pub ipv6only: bool,
    pub so_keepalive: KeepAlive,
    /// `multipath` (MPTCP).
    pub multipath: bool,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepAlive {
    /// Not set: leave the system default.
    Default,
    On,
    Off,
    /// `[idle]:[intvl]:[cnt]`, each part optional (seconds, seconds, count).
    Tuned {
        idle: Option<u32>,
        intvl: Option<u32>,
        cnt: Option<u32>,
    },
}

/// One `server {}` with everything merged from `mail {}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConf {
    pub origin: Origin,
    pub protocol: Protocol,
    /// `timeout`, default 60s.
    pub timeout: Duration,
    /// `server_name`, default the host name.
    pub server_name: String,
    /// `error_log` of the server (or inherited from mail, or the main logs
    /// when neither sets one: `None` = use the main logs).
    pub error_log: Option<Vec<ErrorLog>>,
    pub resolver: Option<Resolver>,
    /// `resolver_timeout`, default 30s.
    pub resolver_timeout: Duration,
    /// `max_errors`, default 5.
    pub max_errors: u32,
    pub ssl: SslConf,
    pub auth_http: AuthHttpConf,
    pub proxy: ProxyConf,
    pub imap: ImapConf,
    pub pop3: Pop3Conf,
    pub smtp: SmtpConf,
    /// `set_real_ip_from`.
    pub set_real_ip_from: Vec<Cidr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolver {
    pub servers: Vec<SocketAddr>,
    pub valid: Option<Duration>,
    pub ipv4: bool,
    pub ipv6: bool,
}

// ---------------------------------------------------------------------------
// ssl

#[derive(Debug, Clone, PartialEq)]
pub struct SslConf {
    /// `ssl on` (deprecated): every listen of this server is implicit TLS.
    pub ssl_on: bool,
    pub starttls: StartTls,
    pub certificates: Vec<CertSource>,
    pub certificate_keys: Vec<KeySource>,
    pub password_file: Option<PathBuf>,
    /// The pass phrases of `ssl_password_file`, read once while loading
    /// (a named pipe can be read only once).
    pub passwords: Option<Passwords>,
    pub certificate_compression: bool,
    pub dhparam: Option<PathBuf>,
    /// `ssl_ecdh_curve`, default "auto".
    pub ecdh_curve: String,
    /// `ssl_protocols` as a set, default TLSv1.2 TLSv1.3.
    pub protocols: SslProtocols,
    /// `ssl_ciphers`, default "HIGH:!aNULL:!MD5".
    pub ciphers: String,
    pub prefer_server_ciphers: bool,
    pub session_cache: SessionCache,
    pub session_tickets: bool,
    pub session_ticket_keys: Vec<PathBuf>,
    /// `ssl_session_timeout`, default 5m.
    pub session_timeout: Duration,
    pub verify_client: VerifyClient,
    /// `ssl_verify_depth`, default 1.
    pub verify_depth: u32,
    pub client_certificate: Option<PathBuf>,
    pub trusted_certificate: Option<PathBuf>,
    pub crl: Option<PathBuf>,
    /// `ssl_conf_command name value`, in order.
    pub conf_commands: Vec<(String, String)>,
    /// Where the first ssl directive that needs a certificate was written,
    /// for nginx's `no "ssl_certificate" is defined ...` style messages.
    pub origin: Origin,
}

/// Pass phrases for encrypted keys, tried in turn; never printed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Passwords(pub Vec<Vec<u8>>);

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Passwords({} hidden)", self.0.len())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTls {
    Off,
    On,
    Only,
}

/// A certificate value: a file path (resolved) or inline `data:` PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    File(PathBuf),
    Data(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    Data(String),
    /// `engine:name:id`
    Engine {
        engine: String,
        key_id: String,
    },
    /// `store:uri`
    Store(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SslProtocols {
    pub sslv2: bool,
    pub sslv3: bool,
    pub tlsv1: bool,
    pub tlsv1_1: bool,
    pub tlsv1_2: bool,
    pub tlsv1_3: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCache {
    /// `off`: tell clients sessions are not reused; `none` (default):
    /// pretend to cache (nginx's default).
    pub mode: SessionCacheMode,
    /// `builtin[:size]`: OpenSSL's per-process cache; `Some(None)` means
    /// OpenSSL's default size.
    pub builtin: Option<Option<usize>>,
    /// `shared:name:size` zone name.
    pub shared: Option<ShmZone>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCacheMode {
    Off,
    None,
    /// builtin and/or shared are set.
    Cache,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyClient {
    Off,
    On,
    Optional,
    OptionalNoCa,
}

// ---------------------------------------------------------------------------
// auth_http, proxy, protocols

#[derive(Debug, Clone, PartialEq)]
pub struct AuthHttpConf {
    /// `auth_http` peer; required (a server without it fails to load).
    pub peer: AuthHttpPeer,
    /// `Host` header value: the host as written, without the port (as
    /// nginx sends it), or "localhost" for unix sockets.
    pub host_header: String,
    /// Request URI, default "/".
    pub uri: String,
    /// `auth_http_timeout`, default 60s.
    pub timeout: Duration,
    /// `auth_http_header name value`, in order (inherited as a whole).
    pub headers: Vec<(String, String)>,
    /// `auth_http_pass_client_cert`, default off.
    pub pass_client_cert: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthHttpPeer {
    /// Resolved at load time, as nginx does (first address is used).
    Inet(Vec<SocketAddr>),
    Unix(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConf {
    /// `proxy_buffer`, default one page (4k).
    pub buffer_size: usize,
    /// `proxy_timeout`, default 24h.
    pub timeout: Duration,
    /// `proxy_pass_error_message`, default off.
    pub pass_error_message: bool,
    /// `xclient`, default on.
    pub xclient: bool,
    /// `proxy_smtp_auth`, default off.
    pub smtp_auth: bool,
    /// `proxy_protocol off|on|v2`.
    pub proxy_protocol: ProxyProtocolVersion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocolVersion {
    Off,
    V1,
    V2,
}

/// Authentication methods as a set (nginx's bit mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthMethods {
    pub plain: bool,
    pub login: bool,
    pub apop: bool,
    pub cram_md5: bool,
    pub external: bool,
    /// SMTP only: `none`.
    pub none: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImapConf {
    /// `imap_client_buffer`, default one page (4k).
    pub client_buffer: usize,
    /// `imap_capabilities`, default IMAP4 IMAP4rev1 UIDPLUS.
    pub capabilities: Vec<String>,
    /// `imap_auth`, default plain.
    pub auth: AuthMethods,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pop3Conf {
    /// `pop3_capabilities`, default TOP USER UIDL.
    pub capabilities: Vec<String>,
    /// `pop3_auth`, default plain (USER/PASS).
    pub auth: AuthMethods,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SmtpConf {
    /// `smtp_client_buffer`, default one page (4k).
    pub client_buffer: usize,
    /// `smtp_greeting_delay`, default 0.
    pub greeting_delay: Duration,
    /// `smtp_capabilities`, default none.
    pub capabilities: Vec<String>,
    /// `smtp_auth`, default plain login.
    pub auth: AuthMethods,
}
