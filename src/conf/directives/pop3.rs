//! POP3 settings.

use super::{args, auth_methods, Cmd, MAIL, SRV};

/// `pop3_auth` names, in nginx's order (`plain` is USER/PASS).
pub const AUTH_NAMES: [&str; 4] = ["plain", "apop", "cram-md5", "external"];

pub const COMMANDS: &[Cmd] = &[
    Cmd {
        name: "pop3_capabilities",
        contexts: MAIL | SRV,
        args: args::MORE1,
        handler: |ev, d| {
            ev.srv().pop3_capabilities.extend(d.args.iter().cloned());
            Ok(())
        },
    },
    Cmd {
        name: "pop3_auth",
        contexts: MAIL | SRV,
        args: args::MORE1,
        handler: |ev, d| {
            let current = ev.srv().pop3_auth.unwrap_or_default();
            let set = auth_methods(ev, d, &AUTH_NAMES, current)?;
            ev.srv().pop3_auth = Some(set);
            Ok(())
        },
    },
];
