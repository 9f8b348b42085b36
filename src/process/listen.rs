//! Listening sockets: which sockets the `listen` directives need (nginx's
//! grouping: one wildcard socket per port unless `bind`), opening them with
//! every option, reusing them across reloads and binary upgrades.

use crate::conf::{KeepAlive, Level, Listen, ListenAddr};
use crate::logging::errno_suffix;
use crate::process::sock::{self, LocalAddr, RawAddr};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// One socket to open, with the `listen` entries it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    pub addr: ListenAddr,
    pub addr_text: String,
    pub backlog: i32,
    pub rcvbuf: Option<i32>,
    pub sndbuf: Option<i32>,
    pub ipv6only: bool,
    pub so_keepalive: KeepAlive,
    pub multipath: bool,
    /// Indices into `MailConf::listens` served by this socket; a wildcard
    /// socket serves the unbound addresses of its port, itself last.
    pub entries: Vec<usize>,
}

/// An open listening socket.
#[derive(Debug)]
pub struct Listener {
    pub spec: SocketSpec,
    pub fd: OwnedFd,
    /// Handed over by an old master (binary upgrade).
    pub inherited: bool,
}

/// A port as nginx groups addresses: family plus port number (UNIX-domain
/// addresses all share one "port").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortKey {
    V4(u16),
    V6(u16),
    Unix,
}

fn port_key(addr: &ListenAddr) -> PortKey {
    match addr {
        ListenAddr::Inet(SocketAddr::V4(a)) => PortKey::V4(a.port()),
        ListenAddr::Inet(SocketAddr::V6(a)) => PortKey::V6(a.port()),
        ListenAddr::Unix(_) => PortKey::Unix,
    }
}

/// Decide which sockets to open for the `listen` directives, in nginx's
/// order: ports in order of first appearance; within a port, `bind`
/// addresses first, the wildcard last.
pub fn group(listens: &[Listen]) -> Vec<SocketSpec> {
    let mut ports: Vec<(PortKey, Vec<usize>)> = Vec::new();
    for (i, l) in listens.iter().enumerate() {
        let key = port_key(&l.addr);
        match ports.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(i),
            None => ports.push((key, vec![i])),
        }
    }
    let mut out = Vec::new();
    for (_, mut addrs) in ports {
        // Stable: wildcard last, explicitly bound addresses first.
        addrs.sort_by_key(|&i| (listens[i].wildcard, !listens[i].bind));
        let bind_wildcard = listens[*addrs.last().expect("non-empty port")].wildcard;
        let mut skipped = Vec::new();
        for &i in &addrs {
            let l = &listens[i];
            let is_last_wildcard = bind_wildcard && l.wildcard && i == *addrs.last().unwrap();
            if bind_wildcard && !l.bind && !is_last_wildcard {
                skipped.push(i);
                continue;
            }
            let mut entries = if is_last_wildcard {
                std::mem::take(&mut skipped)
            } else {
                Vec::new()
            };
            entries.push(i);
            out.push(SocketSpec {
                addr: l.addr.clone(),
                addr_text: l.addr_text.clone(),
                backlog: l.backlog,
                rcvbuf: l.rcvbuf,
                sndbuf: l.sndbuf,
                ipv6only: l.ipv6only,
                so_keepalive: l.so_keepalive.clone(),
                multipath: l.multipath,
                entries,
            });
        }
    }
    out
}

impl SocketSpec {
    /// The `listen` entry a connection accepted on this socket belongs to,
    /// chosen by the connection's local address as nginx does.
    /// The `listen` entry a connection on this socket belongs to; `local`
    /// gives the connection's local address, asked only when several
    /// entries share the socket (a wildcard one and specific addresses).
    pub fn entry_for(
        &self,
        listens: &[Listen],
        local: impl FnOnce() -> Option<SocketAddr>,
    ) -> usize {
        if self.entries.len() > 1 {
            if let Some(local) = local() {
                for &i in &self.entries {
                    if let ListenAddr::Inet(a) = &listens[i].addr {
                        if !listens[i].wildcard && a.ip() == local.ip() {
                            return i;
                        }
                    }
                }
            }
        }
        *self
            .entries
            .last()
            .expect("a socket serves at least one entry")
    }
}

/// Opening failed; the reasons were logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFailed;

/// Where log messages of socket handling go (the master's log; a
/// collector in tests).
pub type LogFn<'a> = &'a mut dyn FnMut(Level, String);

/// Open (or take over from `old`) every socket in `specs`. Sockets in
/// `old` whose address matches are reused as they are — same descriptor,
/// so no connection is refused during a reload; what remains in `old` is
/// what the new configuration no longer uses. Binding retries as nginx
/// does: five tries, 500ms apart, while the address is in use.
pub fn open_all(
    specs: &[SocketSpec],
    old: &mut Vec<Listener>,
    log: LogFn<'_>,
) -> Result<Vec<Listener>, OpenFailed> {
    let mut slots: Vec<Option<(OwnedFd, bool)>> = Vec::with_capacity(specs.len());
    for spec in specs {
        let pos = old.iter().position(|o| o.spec.addr == spec.addr);
        slots.push(pos.map(|p| {
            let o = old.remove(p);
            (o.fd, o.inherited)
        }));
    }
    let mut failed = false;
    for tries in (0..5).rev() {
        failed = false;
        for (spec, slot) in specs.iter().zip(slots.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            match open_one(spec, false, log)? {
                Some(fd) => *slot = Some((fd, false)),
                None => failed = true,
            }
        }
        if !failed {
            break;
        }
        if tries > 0 {
            log(Level::Notice, "try again to bind() after 500ms".into());
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    if failed {
        log(Level::Emerg, "still could not bind()".into());
        // Give reused sockets back so the old configuration keeps them.
        for (spec, slot) in specs.iter().zip(slots) {
            if let Some((fd, inherited)) = slot {
                old.push(Listener {
                    spec: spec.clone(),
                    fd,
                    inherited,
                });
            }
        }
        return Err(OpenFailed);
    }
    let listeners: Vec<Listener> = specs
        .iter()
        .zip(slots)
        .map(|(spec, slot)| {
            let (fd, inherited) = slot.expect("opened");
            Listener {
                spec: spec.clone(),
                fd,
                inherited,
            }
        })
        .collect();
    for l in &listeners {
        configure(l, log);
    }
    Ok(listeners)
}

/// Open one socket. `Ok(None)` = address in use (retry later); `Err` =
/// fatal, already logged. With `test` (`-t`), an address in use is not
/// an error at all (the running server has it) and is not logged.
fn open_one(spec: &SocketSpec, test: bool, log: LogFn<'_>) -> Result<Option<OwnedFd>, OpenFailed> {
    let text = &spec.addr_text;
    let raw = match &spec.addr {
        ListenAddr::Inet(a) => RawAddr::inet(a),
        ListenAddr::Unix(p) => RawAddr::unix(p).map_err(|e| {
            log(
                Level::Emerg,
                format!("socket() {text} failed{}", errno_suffix(&e)),
            );
            OpenFailed
        })?,
    };
    let protocol = if spec.multipath {
        sock::IPPROTO_MPTCP
    } else {
        0
    };
    let fd = sock::socket(raw.family(), protocol).map_err(|e| {
        log(
            Level::Emerg,
            format!("socket() {text} failed{}", errno_suffix(&e)),
        );
        OpenFailed
    })?;
    let raw_fd = fd.as_raw_fd();
    if raw.family() != libc::AF_UNIX {
        sock::set_int_opt(raw_fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).map_err(|e| {
            log(
                Level::Emerg,
                format!("setsockopt(SO_REUSEADDR) {text} failed{}", errno_suffix(&e)),
            );
            OpenFailed
        })?;
    }
    if raw.family() == libc::AF_INET6 {
        if let Err(e) = sock::set_int_opt(
            raw_fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            spec.ipv6only as i32,
        ) {
            log(
                Level::Emerg,
                format!(
                    "setsockopt(IPV6_V6ONLY) {text} failed{}, ignored",
                    errno_suffix(&e)
                ),
            );
        }
    }
    sock::set_nonblocking(raw_fd).map_err(|e| {
        log(
            Level::Emerg,
            format!("ioctl(FIONBIO) {text} failed{}", errno_suffix(&e)),
        );
        OpenFailed
    })?;
    if let Err(e) = sock::bind(&fd, &raw) {
        let in_use = e.raw_os_error() == Some(libc::EADDRINUSE);
        if !(in_use && test) {
            log(
                Level::Emerg,
                format!("bind() to {text} failed{}", errno_suffix(&e)),
            );
        }
        return if e.raw_os_error() == Some(libc::EADDRINUSE) {
            Ok(None)
        } else {
            Err(OpenFailed)
        };
    }
    if let ListenAddr::Unix(path) = &spec.addr {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)) {
            log(
                Level::Emerg,
                format!("chmod() \"{}\" failed{}", path.display(), errno_suffix(&e)),
            );
        }
    }
    if let Err(e) = sock::listen(raw_fd, spec.backlog) {
        let in_use = e.raw_os_error() == Some(libc::EADDRINUSE);
        if in_use && test {
            return Ok(None);
        }
        log(
            Level::Emerg,
            format!(
                "listen() to {text}, backlog {} failed{}",
                spec.backlog,
                errno_suffix(&e)
            ),
        );
        return if e.raw_os_error() == Some(libc::EADDRINUSE) {
            Ok(None)
        } else {
            Err(OpenFailed)
        };
    }
    Ok(Some(fd))
}

/// `-t`: open every socket once to find errors a start would meet
/// (permission denied, address not available), as nginx's test does; an
/// address in use is fine. Sockets are closed again and UNIX-domain
/// socket files removed.
pub fn test_open(specs: &[SocketSpec], log: LogFn<'_>) -> Result<(), OpenFailed> {
    for spec in specs {
        if let Some(fd) = open_one(spec, true, log)? {
            drop(fd);
            if let ListenAddr::Unix(p) = &spec.addr {
                if let Err(e) = std::fs::remove_file(p) {
                    log(
                        Level::Emerg,
                        format!("unlink() {} failed{}", p.display(), errno_suffix(&e)),
                    );
                }
            }
        }
    }
    Ok(())
}

/// Apply the per-socket options (nginx's configure step, done for new and
/// reused sockets alike).
fn configure(l: &Listener, log: LogFn<'_>) {
    let fd = l.fd.as_raw_fd();
    let text = &l.spec.addr_text;
    let mut set = |level: i32, name: i32, label: &str, value: i32, show_value: bool| {
        if let Err(e) = sock::set_int_opt(fd, level, name, value) {
            let what = if show_value {
                format!("{label}, {value}")
            } else {
                label.to_string()
            };
            log(
                Level::Alert,
                format!(
                    "setsockopt({what}) {text} failed{}, ignored",
                    errno_suffix(&e)
                ),
            );
        }
    };
    if let Some(v) = l.spec.rcvbuf {
        set(libc::SOL_SOCKET, libc::SO_RCVBUF, "SO_RCVBUF", v, true);
    }
    if let Some(v) = l.spec.sndbuf {
        set(libc::SOL_SOCKET, libc::SO_SNDBUF, "SO_SNDBUF", v, true);
    }
    if matches!(l.spec.addr, ListenAddr::Unix(_)) {
        return;
    }
    match &l.spec.so_keepalive {
        KeepAlive::Default => {}
        KeepAlive::On => set(
            libc::SOL_SOCKET,
            libc::SO_KEEPALIVE,
            "SO_KEEPALIVE",
            1,
            true,
        ),
        KeepAlive::Off => set(
            libc::SOL_SOCKET,
            libc::SO_KEEPALIVE,
            "SO_KEEPALIVE",
            0,
            true,
        ),
        KeepAlive::Tuned { idle, intvl, cnt } => {
            set(
                libc::SOL_SOCKET,
                libc::SO_KEEPALIVE,
                "SO_KEEPALIVE",
                1,
                true,
            );
            if let Some(v) = idle {
                set(
                    libc::IPPROTO_TCP,
                    libc::TCP_KEEPIDLE,
                    "TCP_KEEPIDLE",
                    *v as i32,
                    true,
                );
            }
            if let Some(v) = intvl {
                set(
                    libc::IPPROTO_TCP,
                    libc::TCP_KEEPINTVL,
                    "TCP_KEEPINTVL",
                    *v as i32,
                    true,
                );
            }
            if let Some(v) = cnt {
                set(
                    libc::IPPROTO_TCP,
                    libc::TCP_KEEPCNT,
                    "TCP_KEEPCNT",
                    *v as i32,
                    true,
                );
            }
        }
    }
}

/// What happens to UNIX-domain socket files when their sockets close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlink {
    /// Leave them (sockets inherited but not configured any more).
    Never,
    /// A reload dropped the socket: nginx warns `deleting socket ...`.
    OnReload,
    /// The master stops listening; inherited sockets stay while the old
    /// master that made them is still running (`keep_inherited`).
    OnClose { keep_inherited: bool },
}

/// Close sockets and remove UNIX-domain socket files as `unlink` says.
pub fn close_unused(old: Vec<Listener>, unlink: Unlink, log: LogFn<'_>) {
    for l in old {
        let path = match &l.spec.addr {
            ListenAddr::Unix(p) => Some(p.clone()),
            _ => None,
        };
        let remove = match unlink {
            Unlink::Never => false,
            Unlink::OnReload => {
                if let Some(p) = &path {
                    log(Level::Warn, format!("deleting socket {}", p.display()));
                }
                true
            }
            Unlink::OnClose { keep_inherited } => !(l.inherited && keep_inherited),
        };
        drop(l);
        if let (Some(p), true) = (path, remove) {
            if let Err(e) = std::fs::remove_file(&p) {
                log(
                    Level::Emerg,
                    format!("unlink() {} failed{}", p.display(), errno_suffix(&e)),
                );
            }
        }
    }
}

/// The environment variables that carry listening sockets across a binary
/// upgrade: ours first, nginx's accepted too.
pub const INHERIT_VARS: [&str; 2] = ["POSTERN", "NGINX"];

/// Parse `fd;fd;...` (nginx also accepts ':' separators). Returns the
/// descriptors and an error message for a bad number (nginx's wording).
pub fn parse_inherited(var: &str, value: &str) -> (Vec<RawFd>, Option<String>) {
    let mut fds = Vec::new();
    let mut rest = value;
    while let Some(pos) = rest.find([':', ';']) {
        match rest[..pos].parse::<RawFd>() {
            Ok(fd) if fd >= 0 => fds.push(fd),
            _ => {
                return (
                    fds,
                    Some(format!(
                        "invalid socket number \"{rest}\" in {var} environment variable, \
                         ignoring the rest of the variable"
                    )),
                )
            }
        }
        rest = &rest[pos + 1..];
    }
    if !rest.is_empty() {
        return (
            fds,
            Some(format!(
                "invalid socket number \"{rest}\" in {var} environment variable, ignoring"
            )),
        );
    }
    (fds, None)
}

/// Adopt inherited descriptors as listeners, learning their addresses
/// from the kernel; they are matched against the configuration like the
/// sockets of a previous configuration.
pub fn adopt_inherited(fds: &[RawFd], log: LogFn<'_>) -> Vec<Listener> {
    let mut out = Vec::new();
    for &fd in fds {
        let Some(owned) = sock::adopt_fd(fd) else {
            continue;
        };
        let addr = match sock::local_addr(fd) {
            Ok(LocalAddr::Inet(a)) => ListenAddr::Inet(a),
            Ok(LocalAddr::Unix(p)) => ListenAddr::Unix(p),
            Ok(LocalAddr::Other) => {
                log(
                    Level::Crit,
                    format!("the inherited socket #{fd} has an unsupported protocol family"),
                );
                continue;
            }
            Err(e) => {
                log(
                    Level::Crit,
                    format!(
                        "getsockname() of the inherited socket #{fd} failed{}",
                        errno_suffix(&e)
                    ),
                );
                continue;
            }
        };
        let _ = crate::process::sys::set_cloexec(fd, true);
        out.push(Listener {
            spec: SocketSpec {
                addr_text: String::new(),
                addr,
                backlog: 511,
                rcvbuf: None,
                sndbuf: None,
                ipv6only: true,
                so_keepalive: KeepAlive::Default,
                multipath: false,
                entries: Vec::new(),
            },
            fd: owned,
            inherited: true,
        });
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::conf::Origin;

    pub fn listen(text: &str, server: usize) -> Listen {
        let (addr, wildcard) = if let Some(p) = text.strip_prefix("unix:") {
            (ListenAddr::Unix(p.into()), false)
        } else {
            let a: SocketAddr = text.parse().unwrap();
            (ListenAddr::Inet(a), a.ip().is_unspecified())
        };
        Listen {
            addr,
            addr_text: text.to_string(),
            server,
            bind: false,
            wildcard,
            ssl: false,
            proxy_protocol: false,
            backlog: 511,
            rcvbuf: None,
            sndbuf: None,
            ipv6only: true,
            so_keepalive: KeepAlive::Default,
            multipath: false,
            origin: Origin::default(),
        }
    }

    fn texts(specs: &[SocketSpec]) -> Vec<(&str, Vec<usize>)> {
        specs
            .iter()
            .map(|s| (s.addr_text.as_str(), s.entries.clone()))
            .collect()
    }

    #[test]
    fn wildcard_takes_unbound_addresses_of_its_port() {
        let mut l = vec![
            listen("127.0.0.1:143", 0),
            listen("0.0.0.0:143", 1),
            listen("127.0.0.2:143", 2),
            listen("127.0.0.1:110", 3),
            listen("[::]:143", 4),
        ];
        l[2].bind = true;
        let g = group(&l);
        assert_eq!(
            texts(&g),
            vec![
                ("127.0.0.2:143", vec![2]),
                ("0.0.0.0:143", vec![0, 1]),
                ("127.0.0.1:110", vec![3]),
                ("[::]:143", vec![4]),
            ]
        );
        let local: SocketAddr = "127.0.0.1:143".parse().unwrap();
        assert_eq!(g[1].entry_for(&l, || Some(local)), 0);
        let other: SocketAddr = "127.0.0.9:143".parse().unwrap();
        assert_eq!(g[1].entry_for(&l, || Some(other)), 1);
        // a socket of one entry never asks
        assert_eq!(g[0].entry_for(&l, || panic!("asked")), g[0].entries[0]);
    }

    #[test]
    fn without_wildcard_each_address_has_its_socket() {
        let l = vec![
            listen("127.0.0.1:25", 0),
            listen("127.0.0.2:25", 0),
            listen("unix:/tmp/a", 1),
            listen("unix:/tmp/b", 1),
        ];
        let g = group(&l);
        assert_eq!(g.len(), 4);
        assert!(g.iter().all(|s| s.entries.len() == 1));
    }

    fn collect() -> (Vec<(Level, String)>, impl FnMut(Level, String)) {
        (Vec::new(), |_, _| {})
    }

    #[test]
    fn opens_with_options_and_reuses_on_reload() {
        let mut l = vec![listen("127.0.0.1:0", 0)];
        // Port 0 would give a new port each time; bind once to learn one.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        l[0] = listen(&format!("127.0.0.1:{port}"), 0);
        l[0].rcvbuf = Some(65536);
        l[0].sndbuf = Some(32768);
        l[0].so_keepalive = KeepAlive::Tuned {
            idle: Some(30),
            intvl: None,
            cnt: Some(4),
        };
        let specs = group(&l);
        let (_, mut sink) = collect();
        let mut old = Vec::new();
        let opened = open_all(&specs, &mut old, &mut sink).unwrap();
        let fd = opened[0].fd.as_raw_fd();
        let get = |lvl, name| sock::get_int_opt(fd, lvl, name).unwrap();
        assert_eq!(get(libc::SOL_SOCKET, libc::SO_REUSEADDR), 1);
        assert_eq!(get(libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 30);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPCNT), 4);
        assert_eq!(get(libc::SOL_SOCKET, libc::SO_ACCEPTCONN), 1);
        // Linux doubles the requested buffer sizes.
        assert_eq!(get(libc::SOL_SOCKET, libc::SO_RCVBUF), 131072);
        assert_eq!(get(libc::SOL_SOCKET, libc::SO_SNDBUF), 65536);

        // A reload with the same address keeps the descriptor.
        let mut old = opened;
        let again = open_all(&specs, &mut old, &mut sink).unwrap();
        assert!(old.is_empty());
        assert_eq!(again[0].fd.as_raw_fd(), fd);

        // A second, independent open of the same address is refused.
        let mut logs = Vec::new();
        let mut none = Vec::new();
        let spec1 = vec![specs[0].clone()];
        let mut logf = |lv: Level, m: String| logs.push((lv, m));
        // Only one try would be nicer; the retry loop takes ~2s here.
        assert!(open_all(&spec1, &mut none, &mut logf).is_err());
        assert!(logs[0]
            .1
            .starts_with(&format!("bind() to 127.0.0.1:{port} failed (98: ")));
        assert_eq!(logs.last().unwrap().1, "still could not bind()");
    }

    #[test]
    fn ipv6_wildcard_and_unix_sockets() {
        let dir = std::env::temp_dir().join(format!("postern-ls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let mut l = vec![listen(&format!("unix:{}", path.display()), 0)];
        l.push(listen("[::]:0", 0));
        l[1].ipv6only = false;
        let (_, mut sink) = collect();
        let mut old = Vec::new();
        let specs = group(&l);
        let opened = match open_all(&specs, &mut old, &mut sink) {
            Ok(o) => o,
            // No IPv6 in this environment: check the UNIX socket alone.
            Err(OpenFailed) => open_all(&specs[..1], &mut old, &mut sink).unwrap(),
        };
        assert!(path.exists());
        if opened.len() == 2 {
            let v6 = sock::get_int_opt(
                opened[1].fd.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
            );
            assert_eq!(v6.unwrap(), 0);
        }
        match sock::local_addr(opened[0].fd.as_raw_fd()).unwrap() {
            LocalAddr::Unix(p) => assert_eq!(p, path),
            _ => panic!("not a unix socket"),
        }
        close_unused(
            opened,
            Unlink::OnClose {
                keep_inherited: false,
            },
            &mut sink,
        );
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn test_mode_ignores_address_in_use_and_reports_other_errors() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut logs = Vec::new();
        let mut logf = |lv: Level, m: String| logs.push((lv, m));
        let specs = group(&[listen(&busy.local_addr().unwrap().to_string(), 0)]);
        assert_eq!(test_open(&specs, &mut logf), Ok(()));
        // An address this host does not have.
        let specs = group(&[listen("192.0.2.1:25", 0)]);
        assert_eq!(test_open(&specs, &mut logf), Err(OpenFailed));
        assert_eq!(logs.len(), 1);
        assert_eq!(
            logs[0].1,
            "bind() to 192.0.2.1:25 failed (99: Cannot assign requested address)"
        );
    }

    #[test]
    fn inherited_variable_parsing() {
        assert_eq!(parse_inherited("POSTERN", "3;4;"), (vec![3, 4], None));
        assert_eq!(parse_inherited("NGINX", "5:6;"), (vec![5, 6], None));
        let (fds, err) = parse_inherited("POSTERN", "3;x;5;");
        assert_eq!(fds, vec![3]);
        assert_eq!(
            err.unwrap(),
            "invalid socket number \"x;5;\" in POSTERN environment variable, \
             ignoring the rest of the variable"
        );
        let (fds, err) = parse_inherited("POSTERN", "3;7");
        assert_eq!(fds, vec![3]);
        assert_eq!(
            err.unwrap(),
            "invalid socket number \"7\" in POSTERN environment variable, ignoring"
        );
    }

    #[test]
    fn inherited_sockets_are_matched_by_address() {
        let tl = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tl.local_addr().unwrap();
        use std::os::fd::IntoRawFd;
        let fd = tl.into_raw_fd();
        let (_, mut sink) = collect();
        let mut old = adopt_inherited(&[fd], &mut sink);
        assert_eq!(old.len(), 1);
        let specs = group(&[listen(&addr.to_string(), 0)]);
        let got = open_all(&specs, &mut old, &mut sink).unwrap();
        assert_eq!(got[0].fd.as_raw_fd(), fd);
    }
}
