//! The proxy stage's settings.

use super::{args, enumerated, flag, msec, size, Cmd, MAIL, SRV};
use crate::conf::model::ProxyProtocolVersion;

pub const COMMANDS: &[Cmd] = &[
    // nginx keeps `proxy on|off` for compatibility and never reads it.
    Cmd {
        name: "proxy",
        contexts: MAIL | SRV,
        args: args::FLAG,
        handler: |ev, d| flag(&mut ev.srv().proxy, d),
    },
    Cmd {
        name: "proxy_buffer",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| size(&mut ev.srv().proxy_buffer, d),
    },
    Cmd {
        name: "proxy_timeout",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| msec(&mut ev.srv().proxy_timeout, d),
    },
    Cmd {
        name: "proxy_pass_error_message",
        contexts: MAIL | SRV,
        args: args::FLAG,
        handler: |ev, d| flag(&mut ev.srv().proxy_pass_error_message, d),
    },
    Cmd {
        name: "xclient",
        contexts: MAIL | SRV,
        args: args::FLAG,
        handler: |ev, d| flag(&mut ev.srv().xclient, d),
    },
    Cmd {
        name: "proxy_smtp_auth",
        contexts: MAIL | SRV,
        args: args::FLAG,
        handler: |ev, d| flag(&mut ev.srv().proxy_smtp_auth, d),
    },
    Cmd {
        name: "proxy_protocol",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| {
            enumerated(
                &mut ev.srv().proxy_protocol,
                d,
                &[
                    ("off", ProxyProtocolVersion::Off),
                    ("on", ProxyProtocolVersion::V1),
                    ("v2", ProxyProtocolVersion::V2),
                ],
            )
        },
    },
];
