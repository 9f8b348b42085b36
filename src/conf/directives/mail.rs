//! `mail {}`, `server {}` and the mail core directives: `listen`,
//! `protocol`, `timeout`, `server_name`, `error_log`, `resolver`,
//! `resolver_timeout`, `max_errors`.

use super::{
    arg, args, fail, msec, num, rv, string, Cmd, Eval, MailBuild, SrvBuild, MAIL, MAIN, SRV,
};
use crate::conf::error::emerg;
use crate::conf::model::{KeepAlive, Listen, ListenAddr, Protocol, Resolver};
use crate::conf::parser::Directive;
use crate::conf::url::{parse_url, UrlAddr, UrlOptions};
use crate::conf::{units, ConfMessage};
use std::net::SocketAddr;

/// nginx's listen backlog on Linux.
pub const LISTEN_BACKLOG: i32 = 511;

pub const BLOCK_COMMANDS: &[Cmd] = &[Cmd {
    name: "mail",
    contexts: MAIN,
    args: args::BLOCK | args::NOARGS,
    handler: mail,
}];

pub const COMMANDS: &[Cmd] = &[
    Cmd {
        name: "server",
        contexts: MAIL,
        args: args::BLOCK | args::NOARGS,
        handler: server,
    },
    Cmd {
        name: "listen",
        contexts: SRV,
        args: args::MORE1,
        handler: listen,
    },
    Cmd {
        name: "protocol",
        contexts: SRV,
        args: args::TAKE1,
        handler: protocol,
    },
    Cmd {
        name: "timeout",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| msec(&mut ev.srv().timeout, d),
    },
    Cmd {
        name: "server_name",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| string(&mut ev.srv().server_name, d),
    },
    Cmd {
        name: "error_log",
        contexts: MAIL | SRV,
        args: args::MORE1,
        handler: error_log,
    },
    Cmd {
        name: "resolver",
        contexts: MAIL | SRV,
        args: args::MORE1,
        handler: resolver,
    },
    Cmd {
        name: "resolver_timeout",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| msec(&mut ev.srv().resolver_timeout, d),
    },
    Cmd {
        name: "max_errors",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| num(&mut ev.srv().max_errors, d),
    },
];

/// Which protocol a well-known port implies.
pub fn protocol_for_port(port: u16) -> Option<Protocol> {
    match port {
        143 | 993 => Some(Protocol::Imap),
        110 | 995 => Some(Protocol::Pop3),
        25 | 465 | 587 => Some(Protocol::Smtp),
        _ => None,
    }
}

fn mail(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    if ev.mail.is_some() {
        return Err(rv(d, "is duplicate"));
    }
    ev.modules_used = true;
    ev.mail = Some(MailBuild::default());
    ev.block(d, MAIL)?;
    let hostname = ev.hostname.clone();
    let conf_prefix = ev.conf_prefix.clone();
    let mail = ev.mail.as_mut().map(std::mem::take).unwrap_or_default();
    let merged = crate::conf::merge::mail(mail, &hostname, &conf_prefix)?;
    ev.mail_conf = Some(merged);
    Ok(())
}

fn server(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let mail = ev.mail.get_or_insert_with(MailBuild::default);
    mail.servers.push(SrvBuild {
        origin: d.origin.clone(),
        ..Default::default()
    });
    mail.current = Some(mail.servers.len() - 1);
    let r = ev.block(d, SRV);
    let srv = ev.srv().clone();
    if let Some(m) = ev.mail.as_mut() {
        m.current = None;
    }
    r?;
    if !srv.listen {
        return Err(emerg(format!(
            "no \"listen\" is defined for server in {}:{}",
            srv.origin.file.display(),
            srv.origin.line
        )));
    }
    Ok(())
}

fn same_addr(a: &ListenAddr, b: &ListenAddr) -> bool {
    a == b
}

fn is_wildcard(sa: &SocketAddr) -> bool {
    sa.ip().is_unspecified()
}

/// `so_keepalive=on|off|[idle]:[intvl]:[cnt]`.
fn keepalive(d: &Directive, v: &str) -> Result<KeepAlive, ConfMessage> {
    match v {
        "on" => return Ok(KeepAlive::On),
        "off" => return Ok(KeepAlive::Off),
        _ => {}
    }
    let invalid = || fail(d, format!("invalid so_keepalive value: \"{v}\""));
    let mut parts = v.splitn(3, ':');
    let idle_s = parts.next().unwrap_or("");
    let intvl_s = parts.next().unwrap_or("");
    let cnt_s = parts.next().unwrap_or("");
    let time = |s: &str| -> Result<u32, ConfMessage> {
        if s.is_empty() {
            return Ok(0);
        }
        units::parse_time(s, true)
            .and_then(|t| u32::try_from(t).ok())
            .ok_or_else(invalid)
    };
    let idle = time(idle_s)?;
    let intvl = time(intvl_s)?;
    let cnt = if cnt_s.is_empty() {
        0
    } else {
        units::parse_number(cnt_s)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(invalid)?
    };
    if idle == 0 && intvl == 0 && cnt == 0 {
        return Err(invalid());
    }
    let opt = |n: u32| if n == 0 { None } else { Some(n) };
    Ok(KeepAlive::Tuned {
        idle: opt(idle),
        intvl: opt(intvl),
        cnt: opt(cnt),
    })
}

fn listen(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let text = arg(d, 0);
    ev.srv().listen = true;
    let url = parse_url(
        text,
        UrlOptions {
            listen: true,
            ..Default::default()
        },
    )
    .map_err(|e| fail(d, format!("{e} in \"{text}\" of the \"listen\" directive")))?;
    let mut proto = Listen {
        addr: ListenAddr::Unix(Default::default()),
        addr_text: String::new(),
        server: ev.mail.as_ref().and_then(|m| m.current).unwrap_or(0),
        bind: false,
        wildcard: false,
        ssl: false,
        proxy_protocol: false,
        backlog: LISTEN_BACKLOG,
        rcvbuf: None,
        sndbuf: None,
        ipv6only: true,
        so_keepalive: KeepAlive::Default,
        multipath: false,
        origin: d.origin.clone(),
    };
    if ev.srv().protocol.is_none() {
        ev.srv().protocol = protocol_for_port(url.port);
    }
    for p in &d.args[1..] {
        let p = p.as_str();
        if p == "bind" {
            proto.bind = true;
        } else if let Some(v) = p.strip_prefix("backlog=") {
            proto.bind = true;
            match units::parse_number(v).and_then(|n| i32::try_from(n).ok()) {
                Some(n) if n != 0 => proto.backlog = n,
                _ => return Err(fail(d, format!("invalid backlog \"{p}\""))),
            }
        } else if let Some(v) = p.strip_prefix("rcvbuf=") {
            proto.bind = true;
            let n = units::parse_size(v).and_then(|n| i32::try_from(n).ok());
            proto.rcvbuf = Some(n.ok_or_else(|| fail(d, format!("invalid rcvbuf \"{p}\"")))?);
        } else if let Some(v) = p.strip_prefix("sndbuf=") {
            proto.bind = true;
            let n = units::parse_size(v).and_then(|n| i32::try_from(n).ok());
            proto.sndbuf = Some(n.ok_or_else(|| fail(d, format!("invalid sndbuf \"{p}\"")))?);
        } else if let Some(v) = p.strip_prefix("ipv6only=o") {
            proto.ipv6only = match v {
                "n" => true,
                "ff" => false,
                _ => return Err(fail(d, format!("invalid ipv6only flags \"{}\"", &p[9..]))),
            };
            proto.bind = true;
        } else if p == "multipath" {
            proto.multipath = true;
            proto.bind = true;
        } else if p == "ssl" {
            let srv = ev.srv();
            srv.ssl_listen = true;
            srv.ssl_origin = Some(d.origin.clone());
            proto.ssl = true;
        } else if let Some(v) = p.strip_prefix("so_keepalive=") {
            proto.so_keepalive = keepalive(d, v)?;
            proto.bind = true;
        } else if p == "proxy_protocol" {
            proto.proxy_protocol = true;
        } else {
            return Err(fail(d, format!("invalid parameter \"{p}\"")));
        }
    }
    let mail = ev.mail.get_or_insert_with(MailBuild::default);
    let mut seen: Vec<ListenAddr> = Vec::new();
    for a in url.addrs {
        let addr = match a.addr {
            UrlAddr::Inet(sa) => ListenAddr::Inet(sa),
            UrlAddr::Unix(p) => ListenAddr::Unix(p),
        };
        if seen.iter().any(|s| same_addr(s, &addr)) {
            continue;
        }
        seen.push(addr.clone());
        if mail.listens.iter().any(|l| same_addr(&l.addr, &addr)) {
            return Err(fail(
                d,
                format!("duplicate \"{}\" address and port pair", a.name),
            ));
        }
        let mut l = proto.clone();
        l.wildcard = matches!(&addr, ListenAddr::Inet(sa) if is_wildcard(sa));
        l.addr = addr;
        l.addr_text = a.name;
        mail.listens.push(l);
    }
    Ok(())
}

fn protocol(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let v = arg(d, 0);
    let p = match v {
        "imap" => Protocol::Imap,
        "pop3" => Protocol::Pop3,
        "smtp" => Protocol::Smtp,
        _ => return Err(fail(d, format!("unknown protocol \"{v}\""))),
    };
    ev.srv().protocol = Some(p);
    Ok(())
}

fn error_log(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let log = super::log::parse(ev, d)?;
    ev.srv().error_log.get_or_insert_with(Vec::new).push(log);
    Ok(())
}

fn resolver(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    if ev.srv().resolver.is_some() {
        return Err(rv(d, "is duplicate"));
    }
    if arg(d, 0) == "off" {
        ev.srv().resolver = Some(None);
        return Ok(());
    }
    let mut r = Resolver {
        servers: Vec::new(),
        valid: None,
        ipv4: true,
        ipv6: true,
    };
    for v in &d.args {
        let invalid = || fail(d, format!("invalid parameter: {v}"));
        if let Some(t) = v.strip_prefix("valid=") {
            r.valid = Some(units::parse_sec(t).ok_or_else(invalid)?);
            continue;
        }
        if let Some(f) = v.strip_prefix("ipv4=") {
            r.ipv4 = match f {
                "on" => true,
                "off" => false,
                _ => return Err(invalid()),
            };
            continue;
        }
        if let Some(f) = v.strip_prefix("ipv6=") {
            r.ipv6 = match f {
                "on" => true,
                "off" => false,
                _ => return Err(invalid()),
            };
            continue;
        }
        let u = parse_url(
            v,
            UrlOptions {
                default_port: 53,
                ..Default::default()
            },
        )
        .map_err(|e| fail(d, format!("{e} in resolver \"{v}\"")))?;
        for a in u.addrs {
            match a.addr {
                UrlAddr::Inet(sa) => r.servers.push(sa),
                UrlAddr::Unix(_) => {
                    return Err(fail(
                        d,
                        format!("unix domain sockets are not supported in resolver \"{v}\""),
                    ))
                }
            }
        }
    }
    if !r.ipv4 && !r.ipv6 {
        return Err(fail(d, "\"ipv4\" and \"ipv6\" cannot both be \"off\""));
    }
    if r.servers.is_empty() {
        return Err(fail(d, "no name servers defined"));
    }
    ev.srv().resolver = Some(Some(r));
    Ok(())
}
