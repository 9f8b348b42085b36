//! IMAP settings.

use super::{args, auth_methods, size, Cmd, MAIL, SRV};

/// `imap_auth` names, in nginx's order.
pub const AUTH_NAMES: [&str; 4] = ["plain", "login", "cram-md5", "external"];

pub const COMMANDS: &[Cmd] = &[
    Cmd {
        name: "imap_client_buffer",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| size(&mut ev.srv().imap_client_buffer, d),
    },
    Cmd {
        name: "imap_capabilities",
        contexts: MAIL | SRV,
        args: args::MORE1,
        handler: |ev, d| {
            ev.srv().imap_capabilities.extend(d.args.iter().cloned());
            Ok(())
        },
    },
    Cmd {
        name: "imap_auth",
        contexts: MAIL | SRV,
        args: args::MORE1,
        handler: |ev, d| {
            let current = ev.srv().imap_auth.unwrap_or_default();
            let set = auth_methods(ev, d, &AUTH_NAMES, current)?;
            ev.srv().imap_auth = Some(set);
            Ok(())
        },
    },
];
