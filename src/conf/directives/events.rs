//! `events {}`: connections per worker and accept behaviour.

use super::{arg, args, fail, flag, msec, rv, Cmd, Eval, EVENTS, MAIN};
use crate::conf::model::Cidr;
use crate::conf::parser::Directive;
use crate::conf::url::parse_cidr;
use crate::conf::{sys, units, ConfMessage};

pub const COMMANDS: &[Cmd] = &[
    Cmd {
        name: "events",
        contexts: MAIN,
        args: args::BLOCK | args::NOARGS,
        handler: events,
    },
    Cmd {
        name: "worker_connections",
        contexts: EVENTS,
        args: args::TAKE1,
        handler: worker_connections,
    },
    Cmd {
        name: "use",
        contexts: EVENTS,
        args: args::TAKE1,
        handler: use_method,
    },
    Cmd {
        name: "multi_accept",
        contexts: EVENTS,
        args: args::FLAG,
        handler: |ev, d| flag(&mut ev.events_mut().multi_accept, d),
    },
    Cmd {
        name: "accept_mutex",
        contexts: EVENTS,
        args: args::FLAG,
        handler: |ev, d| flag(&mut ev.events_mut().accept_mutex, d),
    },
    Cmd {
        name: "accept_mutex_delay",
        contexts: EVENTS,
        args: args::TAKE1,
        handler: |ev, d| msec(&mut ev.events_mut().accept_mutex_delay, d),
    },
    Cmd {
        name: "debug_connection",
        contexts: EVENTS,
        args: args::TAKE1,
        handler: debug_connection,
    },
];

fn events(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    if ev.events.is_some() {
        return Err(rv(d, "is duplicate"));
    }
    ev.modules_used = true;
    ev.events_mut();
    ev.block(d, EVENTS)
}

fn worker_connections(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let e = ev.events_mut();
    if e.worker_connections.is_some() {
        return Err(rv(d, "is duplicate"));
    }
    let v = arg(d, 0);
    let n = units::parse_number(v)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| fail(d, format!("invalid number \"{v}\"")))?;
    e.worker_connections = Some(n);
    Ok(())
}

/// Only epoll exists in Postern; other methods get nginx's answer for a
/// method that was not built in.
fn use_method(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let e = ev.events_mut();
    if e.use_method.is_some() {
        return Err(rv(d, "is duplicate"));
    }
    let v = arg(d, 0);
    if v != "epoll" {
        return Err(fail(d, format!("invalid event type \"{v}\"")));
    }
    e.use_method = Some(v.to_string());
    Ok(())
}

fn debug_connection(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let mut found = networks(ev, d)?;
    ev.events_mut().debug_connection.append(&mut found);
    Ok(())
}

/// The argument of `debug_connection` or `set_real_ip_from`: an address,
/// a network, a host name (all its addresses) or `unix:`.
pub fn networks(ev: &mut Eval, d: &Directive) -> Result<Vec<Cidr>, ConfMessage> {
    let v = arg(d, 0);
    if v == "unix:" {
        return Ok(vec![Cidr::Unix]);
    }
    if let Some((c, low_bits)) = parse_cidr(v) {
        if low_bits {
            ev.warn(format!("low address bits of {v} are meaningless"), d);
        }
        return Ok(vec![c]);
    }
    let ips = sys::resolve_host(v)
        .ok_or_else(|| fail(d, format!("host not found in {} \"{v}\"", d.name)))?;
    Ok(ips.into_iter().map(host_cidr).collect())
}

/// A single address as a network of one.
pub fn host_cidr(ip: std::net::IpAddr) -> Cidr {
    match ip {
        std::net::IpAddr::V4(addr) => Cidr::V4 { addr, prefix: 32 },
        std::net::IpAddr::V6(addr) => Cidr::V6 { addr, prefix: 128 },
    }
}
