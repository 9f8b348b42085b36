//! SMTP settings.

use super::{args, auth_methods, msec, size, Cmd, MAIL, SRV};

/// `smtp_auth` names, in nginx's order.
pub const AUTH_NAMES: [&str; 5] = ["plain", "login", "cram-md5", "external", "none"];

pub const COMMANDS: &[Cmd] = &[
    Cmd {
        name: "smtp_client_buffer",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| size(&mut ev.srv().smtp_client_buffer, d),
    },
    Cmd {
        name: "smtp_greeting_delay",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| msec(&mut ev.srv().smtp_greeting_delay, d),
    },
    Cmd {
        name: "smtp_capabilities",
        contexts: MAIL | SRV,
        args: args::MORE1,
        handler: |ev, d| {
            ev.srv().smtp_capabilities.extend(d.args.iter().cloned());
            Ok(())
        },
    },
    Cmd {
        name: "smtp_auth",
        contexts: MAIL | SRV,
        args: args::MORE1,
        handler: |ev, d| {
            let current = ev.srv().smtp_auth.unwrap_or_default();
            let set = auth_methods(ev, d, &AUTH_NAMES, current)?;
            ev.srv().smtp_auth = Some(set);
            Ok(())
        },
    },
];
