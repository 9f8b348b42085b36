//! Addresses as nginx's `ngx_parse_url` and `ngx_ptocidr` read them:
//! `unix:/path`, `[v6]:port`, `host:port`, `port`, `*:port`, port ranges
//! for `listen`, an optional URI for `auth_http`.

use super::model::Cidr;
use super::sys;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

/// How a directive wants its address read.
#[derive(Debug, Clone, Copy, Default)]
pub struct UrlOptions {
    /// `listen`: a lone number is a port; port ranges; no URI.
    pub listen: bool,
    /// A trailing `/uri` is allowed (`auth_http`).
    pub uri_part: bool,
    /// Port used when none is written.
    pub default_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlAddr {
    Inet(SocketAddr),
    Unix(PathBuf),
}

/// One resolved address and its text as nginx prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedAddr {
    pub addr: UrlAddr,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The host part as written (with brackets for IPv6), empty for unix.
    pub host: String,
    pub port: u16,
    pub uri: String,
    pub unix: bool,
    /// All addresses (several for a host name or a port range).
    pub addrs: Vec<NamedAddr>,
}

/// nginx's `ngx_atoi` on a slice: digits only.
fn atoi(s: &str) -> Option<i64> {
    super::units::parse_number(s)
}

/// nginx's dotted-quad reader (`ngx_inet_addr`), leniencies included.
pub fn inet_addr(s: &str) -> Option<Ipv4Addr> {
    crate::inet::inet_addr(s.as_bytes())
}

fn sock_name(sa: &SocketAddr) -> String {
    match sa {
        SocketAddr::V4(v4) => format!("{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

fn add_addrs(out: &mut Vec<NamedAddr>, ip: IpAddr, port: u16, last_port: u16) {
    let last = if last_port == 0 { port } else { last_port };
    for p in port..=last {
        let sa = SocketAddr::new(ip, p);
        out.push(NamedAddr {
            name: sock_name(&sa),
            addr: UrlAddr::Inet(sa),
        });
    }
}

/// Port part: `n` or (for listen) `n-m`.
fn parse_port(text: &str, listen: bool) -> Result<(u16, u16), &'static str> {
    let (first, last) = match (listen, text.find('-')) {
        (true, Some(dash)) => {
            let n = atoi(&text[dash + 1..]).unwrap_or(-1);
            if !(1..=65535).contains(&n) {
                return Err("invalid port");
            }
            (&text[..dash], n as u16)
        }
        _ => (text, 0),
    };
    let n = atoi(first).unwrap_or(-1);
    if !(1..=65535).contains(&n) {
        return Err("invalid port");
    }
    if last != 0 && n as u16 > last {
        return Err("invalid port range");
    }
    Ok((n as u16, last))
}

/// Read an address as `ngx_parse_url` does; the error is nginx's `u.err`.
pub fn parse_url(text: &str, opts: UrlOptions) -> Result<Url, &'static str> {
    if text.len() >= 5 && text[..5].eq_ignore_ascii_case("unix:") {
        return parse_unix(text, opts);
    }
    if text.starts_with('[') {
        return parse_inet6(text, opts);
    }
    parse_inet(text, opts)
}

fn parse_unix(text: &str, opts: UrlOptions) -> Result<Url, &'static str> {
    let mut path = &text[5..];
    let mut uri = String::new();
    if opts.uri_part {
        if let Some(colon) = path.find(':') {
            uri = path[colon + 1..].to_string();
            path = &path[..colon];
        }
    }
    if path.is_empty() {
        return Err("no path in the unix domain socket");
    }
    // sun_path holds 108 bytes including the terminating NUL.
    if path.len() + 1 > 108 {
        return Err("too long path in the unix domain socket");
    }
    Ok(Url {
        host: path.to_string(),
        port: 0,
        uri,
        unix: true,
        addrs: vec![NamedAddr {
            addr: UrlAddr::Unix(PathBuf::from(path)),
            name: format!("unix:{path}"),
        }],
    })
}

fn parse_inet(text: &str, opts: UrlOptions) -> Result<Url, &'static str> {
    let mut last = text.len();
    let mut port_at = text.find(':');
    let mut uri_at = text.find('/');
    if let Some(args) = text.find('?') {
        if uri_at.is_none_or(|u| args < u) {
            uri_at = Some(args);
        }
    }
    let mut uri = String::new();
    if let Some(u) = uri_at {
        if opts.listen || !opts.uri_part {
            return Err("invalid host");
        }
        uri = text[u..].to_string();
        last = u;
        if port_at.is_some_and(|p| u < p) {
            port_at = None;
        }
    }
    let (port, last_port, host_end);
    if let Some(p) = port_at {
        let (a, b) = parse_port(&text[p + 1..last], opts.listen)?;
        port = a;
        last_port = b;
        host_end = p;
    } else {
        if uri_at.is_none() && opts.listen {
            // A lone value is tried as a port (or port range).
            let mut err = None;
            let mut lp = 0u16;
            let mut len = last;
            let mut lone = true;
            if let Some(dash) = text[..last].find('-') {
                match atoi(&text[dash + 1..last]) {
                    None => lone = false,
                    Some(n) if !(1..=65535).contains(&n) => {
                        err = Some("invalid port");
                        len = dash;
                    }
                    Some(n) => {
                        lp = n as u16;
                        len = dash;
                    }
                }
            }
            if lone {
                if let Some(n) = atoi(&text[..len]) {
                    if let Some(e) = err {
                        return Err(e);
                    }
                    if !(1..=65535).contains(&n) {
                        return Err("invalid port");
                    }
                    if lp != 0 && n as u16 > lp {
                        return Err("invalid port range");
                    }
                    let mut addrs = Vec::new();
                    add_addrs(&mut addrs, IpAddr::V4(Ipv4Addr::UNSPECIFIED), n as u16, lp);
                    return Ok(Url {
                        host: String::new(),
                        port: n as u16,
                        uri,
                        unix: false,
                        addrs,
                    });
                }
            }
        }
        port = opts.default_port;
        last_port = 0;
        host_end = last;
    }
    let host = &text[..host_end];
    if host.is_empty() {
        return Err("no host");
    }
    let mut addrs = Vec::new();
    if opts.listen && host == "*" {
        add_addrs(
            &mut addrs,
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port,
            last_port,
        );
    } else if let Some(ip) = inet_addr(host) {
        add_addrs(&mut addrs, IpAddr::V4(ip), port, last_port);
    } else {
        let ips = sys::resolve_host(host).ok_or("host not found")?;
        for ip in ips {
            add_addrs(&mut addrs, ip, port, last_port);
        }
    }
    Ok(Url {
        host: host.to_string(),
        port,
        uri,
        unix: false,
        addrs,
    })
}

fn parse_inet6(text: &str, opts: UrlOptions) -> Result<Url, &'static str> {
    let close = text.find(']').ok_or("invalid host")?;
    let mut last = text.len();
    let mut uri = String::new();
    if let Some(u) = text[close + 1..].find('/').map(|u| u + close + 1) {
        if opts.listen || !opts.uri_part {
            return Err("invalid host");
        }
        uri = text[u..].to_string();
        last = u;
    }
    let rest = &text[close + 1..last];
    let (port, last_port) = if rest.is_empty() {
        (opts.default_port, 0)
    } else {
        let Some(p) = rest.strip_prefix(':') else {
            return Err("invalid host");
        };
        parse_port(p, opts.listen)?
    };
    let inner = &text[1..close];
    if inner.is_empty() {
        return Err("no host");
    }
    let ip = crate::inet::inet6_addr(inner.as_bytes()).ok_or("invalid IPv6 address")?;
    let mut addrs = Vec::new();
    add_addrs(&mut addrs, IpAddr::V6(ip), port, last_port);
    Ok(Url {
        host: text[..=close].to_string(),
        port,
        uri,
        unix: false,
        addrs,
    })
}

/// nginx's `ngx_ptocidr`: `addr[/bits]`. `Ok((cidr, true))` when the
/// address had host bits set (nginx warns they are meaningless and
/// clears them).
pub fn parse_cidr(text: &str) -> Option<(Cidr, bool)> {
    let (addr, bits) = match text.find('/') {
        Some(slash) => (&text[..slash], Some(&text[slash + 1..])),
        None => (text, None),
    };
    if let Some(v4) = inet_addr(addr) {
        let prefix = match bits {
            None => 32,
            Some(b) => {
                let n = atoi(b)?;
                if n > 32 {
                    return None;
                }
                n as u8
            }
        };
        let mask: u32 = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        let raw = u32::from(v4);
        let masked = raw & mask;
        return Some((
            Cidr::V4 {
                addr: Ipv4Addr::from(masked),
                prefix,
            },
            masked != raw,
        ));
    }
    let v6 = crate::inet::inet6_addr(addr.as_bytes())?;
    let prefix = match bits {
        None => 128,
        Some(b) => {
            let n = atoi(b)?;
            if n > 128 {
                return None;
            }
            n as u8
        }
    };
    let mask: u128 = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    let raw = u128::from(v6);
    let masked = raw & mask;
    Some((
        Cidr::V6 {
            addr: Ipv6Addr::from(masked),
            prefix,
        },
        masked != raw,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(s: &str) -> Result<Vec<String>, &'static str> {
        parse_url(
            s,
            UrlOptions {
                listen: true,
                ..Default::default()
            },
        )
        .map(|u| u.addrs.into_iter().map(|a| a.name).collect())
    }

    #[test]
    fn listen_forms() {
        assert_eq!(listen("143").unwrap(), ["0.0.0.0:143"]);
        assert_eq!(listen("*:110").unwrap(), ["0.0.0.0:110"]);
        assert_eq!(listen("127.0.0.1:25").unwrap(), ["127.0.0.1:25"]);
        // nginx's 127.0.0.1, not a host name to look up
        assert_eq!(listen("127.0..1:25").unwrap(), ["127.0.0.1:25"]);
        assert_eq!(listen("[::]:993").unwrap(), ["[::]:993"]);
        assert_eq!(listen("[::1]:993").unwrap(), ["[::1]:993"]);
        assert_eq!(listen("unix:/tmp/s").unwrap(), ["unix:/tmp/s"]);
        assert_eq!(
            listen("8000-8002").unwrap(),
            ["0.0.0.0:8000", "0.0.0.0:8001", "0.0.0.0:8002"]
        );
        assert_eq!(
            listen("127.0.0.1:10-11").unwrap(),
            ["127.0.0.1:10", "127.0.0.1:11"]
        );
        assert!(listen("localhost:25")
            .unwrap()
            .contains(&"127.0.0.1:25".to_string()));
    }

    #[test]
    fn listen_errors() {
        assert_eq!(listen("0"), Err("invalid port"));
        assert_eq!(listen("70000"), Err("invalid port"));
        assert_eq!(listen("1.2.3.4:0"), Err("invalid port"));
        assert_eq!(listen("1.2.3.4:x"), Err("invalid port"));
        assert_eq!(listen("20-10"), Err("invalid port range"));
        assert_eq!(listen("1.2.3.4:20-10"), Err("invalid port range"));
        assert_eq!(listen("1.2.3.4/x"), Err("invalid host"));
        assert_eq!(listen("[::1"), Err("invalid host"));
        assert_eq!(listen("[::1]x"), Err("invalid host"));
        assert_eq!(listen("[zz]:1"), Err("invalid IPv6 address"));
        assert_eq!(listen("unix:"), Err("no path in the unix domain socket"));
        assert_eq!(listen(":25"), Err("no host"));
        assert_eq!(listen("no-such-host.invalid:25"), Err("host not found"));
    }

    #[test]
    fn auth_http_forms() {
        let o = UrlOptions {
            uri_part: true,
            default_port: 80,
            ..Default::default()
        };
        let u = parse_url("127.0.0.1:9000/auth?x=1", o).unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.uri.as_str()),
            ("127.0.0.1", 9000, "/auth?x=1")
        );
        let u = parse_url("127.0.0.1", o).unwrap();
        assert_eq!((u.port, u.uri.as_str()), (80, ""));
        let u = parse_url("unix:/run/a.sock:/auth", o).unwrap();
        assert!(u.unix);
        assert_eq!(u.uri, "/auth");
    }

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("10.0.0.0/8"),
            Some((
                Cidr::V4 {
                    addr: Ipv4Addr::new(10, 0, 0, 0),
                    prefix: 8
                },
                false
            ))
        );
        assert!(parse_cidr("10.0.0.1/8").unwrap().1);
        assert_eq!(parse_cidr("10.0.0.1/33"), None);
        assert_eq!(
            parse_cidr("::1").unwrap().0,
            Cidr::V6 {
                addr: Ipv6Addr::LOCALHOST,
                prefix: 128
            }
        );
        assert_eq!(parse_cidr("host"), None);
        assert_eq!(inet_addr("1.2.3"), None);
        assert_eq!(inet_addr("1.2.3.256"), None);
        // nginx's leniencies, as its ngx_inet_addr / ngx_inet6_addr
        assert_eq!(inet_addr("127.0..1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(
            parse_cidr("10..0.0/8").unwrap().0,
            Cidr::V4 {
                addr: Ipv4Addr::new(10, 0, 0, 0),
                prefix: 8
            }
        );
        assert_eq!(
            parse_cidr(":1:2:3:4:5:6:7:8").unwrap().0,
            Cidr::V6 {
                addr: Ipv6Addr::new(1, 2, 3, 4, 5, 6, 7, 8),
                prefix: 128
            }
        );
    }
}
