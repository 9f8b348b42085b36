//! The mail proxy: IMAP, POP3 and SMTP sessions.
//!
//! Everything but [`session`] is sans-io: bytes in, results out, no
//! sockets and no clock. `parse` holds the resumable command parsers,
//! `sasl` decodes the SASL exchanges (PLAIN, LOGIN, CRAM-MD5, EXTERNAL)
//! and builds the APOP / CRAM-MD5 salt, `caps` precomputes the
//! configuration-dependent replies, `imap` / `pop3` / `smtp` are the
//! front ends before login (sharing `front`), `upstream` logs in to the
//! backend and `relay` moves bytes afterwards. `session` sequences the
//! stages of one client connection over the event loop.
//!
//! All follow nginx 1.31.5's mail module byte for byte, quirks included;
//! the quirks are listed in the docs of the item that reproduces them.

pub mod auth_http;
pub mod bufpool;
pub mod caps;
pub mod front;
pub mod imap;
pub mod parse;
pub mod pop3;
pub mod proxy_protocol;
pub mod realip;
pub mod relay;
pub mod resolver;
pub mod sasl;
pub mod session;
pub mod smtp;
pub mod upstream;

#[cfg(test)]
pub(crate) mod test_support {
    use crate::conf::{self, ServerConf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static SEQ: AtomicUsize = AtomicUsize::new(0);

    /// A whole configuration from the text of one `mail {}` block.
    pub fn config(mail: &str) -> conf::Config {
        let dir = std::env::temp_dir().join(format!(
            "postern-mail-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.conf");
        std::fs::write(&file, format!("events {{}}\nmail {{\n{mail}\n}}\n")).unwrap();
        let opts = conf::LoadOptions {
            prefix: dir.clone(),
            conf_file: file,
            globals: None,
            default_error_log: conf::LogTarget::Stderr,
        };
        let loaded = conf::load(&opts);
        std::fs::remove_dir_all(&dir).unwrap();
        match loaded {
            Ok(l) => l.config,
            Err(e) => panic!("{e:?}"),
        }
    }

    /// The one server of `server { listen …; <text> }`.
    pub fn server_conf(text: &str) -> ServerConf {
        let c = config(&format!(
            "auth_http 127.0.0.1:9/auth; server {{ listen 127.0.0.1:1; {text} }}"
        ));
        c.mail.unwrap().servers.remove(0)
    }
}
