//! `auth_http` and its companions.

use super::{arg, args, fail, flag, msec, Cmd, Eval, MAIL, SRV};
use crate::conf::model::AuthHttpPeer;
use crate::conf::parser::Directive;
use crate::conf::url::{parse_url, UrlAddr, UrlOptions};
use crate::conf::ConfMessage;

pub const COMMANDS: &[Cmd] = &[
    Cmd {
        name: "auth_http",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: auth_http,
    },
    Cmd {
        name: "auth_http_timeout",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| msec(&mut ev.srv().auth_timeout, d),
    },
    Cmd {
        name: "auth_http_header",
        contexts: MAIL | SRV,
        args: args::TAKE2,
        handler: header,
    },
    Cmd {
        name: "auth_http_pass_client_cert",
        contexts: MAIL | SRV,
        args: args::FLAG,
        handler: |ev, d| flag(&mut ev.srv().auth_pass_client_cert, d),
    },
];

/// `http://host[:port][/uri]`, `host[:port][/uri]` or `unix:/path[:uri]`;
/// the host is resolved now, as nginx does.
fn auth_http(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let v = arg(d, 0);
    let url = v.strip_prefix("http://").unwrap_or(v);
    let u = parse_url(
        url,
        UrlOptions {
            uri_part: true,
            default_port: 80,
            ..Default::default()
        },
    )
    .map_err(|e| fail(d, format!("{e} in auth_http \"{url}\"")))?;
    let uri = if u.uri.is_empty() {
        "/".to_string()
    } else {
        u.uri.clone()
    };
    let (peer, host) = if u.unix {
        let path = match u.addrs.into_iter().next().map(|a| a.addr) {
            Some(UrlAddr::Unix(p)) => p,
            _ => Default::default(),
        };
        (AuthHttpPeer::Unix(path), "localhost".to_string())
    } else {
        let addrs = u
            .addrs
            .into_iter()
            .filter_map(|a| match a.addr {
                UrlAddr::Inet(sa) => Some(sa),
                UrlAddr::Unix(_) => None,
            })
            .collect();
        (AuthHttpPeer::Inet(addrs), u.host)
    };
    ev.srv().auth_peer = Some((peer, host, uri));
    Ok(())
}

fn header(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    ev.srv()
        .auth_headers
        .get_or_insert_with(Vec::new)
        .push((arg(d, 0).to_string(), arg(d, 1).to_string()));
    Ok(())
}
