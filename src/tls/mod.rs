//! TLS on the system OpenSSL: one context per server built from the
//! `ssl_*` settings (`context`), a non-blocking TLS stream implementing
//! `event::Io` (`stream`), session ticket keys (`tickets`), the shared
//! session cache hooks (`cache`) and its shared-memory store
//! (`session_store`). The few OpenSSL calls the `openssl` crate lacks are
//! in `ffi`, the only place with `unsafe`.
//!
//! What the rest of Postern calls:
//! - the master, before forking: [`TicketKeys::generate`] once, shared by
//!   every worker so that tickets work across workers;
//! - `-t` and start-up: [`check_config`], which builds every context and
//!   reports certificate and key errors as nginx does;
//! - the master, once the cycle's shared-memory zones exist:
//!   [`SessionStores::attach`] (lays out new session caches);
//! - each worker: [`build_servers`] with `&|z| stores.get(z)` (after fork,
//!   before dropping privileges and resetting the environment, so that
//!   keys on a PKCS#11 token are opened by the process that uses them),
//!   then per connection [`ServerTls::accept`] over a [`Socket`] and the
//!   [`TlsStream`] step functions.
//!
//! A session uses a connection as nginx's mail module does:
//! - implicit TLS (`listen ... ssl`, `ssl on`): accept, then call
//!   [`TlsStream::handshake`] on each readiness event (action "SSL
//!   handshaking", bounded by `timeout`) until `Done`; `WantRead` /
//!   `WantWrite` mean "wait for that" ([`Want::interest`]); `Failed` is
//!   logged with its level and text and the connection closed;
//! - STARTTLS / STLS: flush the plain reply, drop any pipelined plain
//!   input, then the same (action "in starttls state"), and no greeting;
//! - after `Done`: [`TlsStream::check_client_cert`] with the server's
//!   `ssl_verify_client`; a refusal is logged at info and answered with
//!   [`CertCheck::reply`], then the session closes; then read at once
//!   (the client may have sent its first command with the handshake);
//! - auth_http: [`TlsStream::facts`] fills the `Auth-SSL-*` headers;
//! - reads and writes through `event::Io`; a write that returned
//!   `WouldBlock` is retried with the same bytes; errors are logged with
//!   the level and text of [`TlsStream::take_error`];
//! - closing: [`TlsStream::shutdown`] until `Done`, at most
//!   [`SHUTDOWN_TIMEOUT`] (after a timeout or an error call
//!   [`TlsStream::set_broken`] first: no close_notify then).

pub mod cache;
pub mod context;
pub mod ffi;
pub mod session_store;
pub mod stream;
pub mod tickets;

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;

pub use cache::SessionCacheBackend;
pub use context::{BuildEnv, ServerTls};
pub use stream::{
    CertCheck, Handshake, Shutdown, Socket, TlsError, TlsFacts, TlsStream, Want, SHUTDOWN_TIMEOUT,
};
pub use tickets::{TicketKey, TicketKeys};

use crate::conf::{ConfMessage, Config, Origin, ShmZone, StartTls};
use openssl::error::ErrorStack;
use std::path::PathBuf;
use std::sync::Arc;

/// nginx's `ngx_ssl_error` text: the message, then the drained OpenSSL
/// error queue as ` (SSL: error:...:reason:data error:...)`.
pub fn ssl_error(text: &str, queue: &ErrorStack) -> String {
    let mut s = text.to_string();
    if queue.errors().is_empty() {
        return s;
    }
    s.push_str(" (SSL:");
    for e in queue.errors() {
        s.push(' ');
        s.push_str(&ffi::error_string(e.code()));
        if let Some(data) = e.data().filter(|d| !d.is_empty()) {
            s.push(':');
            s.push_str(data);
        }
    }
    s.push(')');
    s
}

/// Whether a server needs a TLS context: some `listen ... ssl` of it,
/// `ssl on`, or `starttls on|only`.
pub fn server_needs_tls(config: &Config, index: usize) -> bool {
    let Some(mail) = &config.mail else {
        return false;
    };
    let srv = &mail.servers[index];
    srv.ssl.ssl_on
        || srv.ssl.starttls != StartTls::Off
        || mail.listens.iter().any(|l| l.server == index && l.ssl)
}

fn conf_prefix(config: &Config) -> PathBuf {
    config
        .files
        .first()
        .and_then(|f| f.path.parent())
        .map(|p| p.to_path_buf())
        .unwrap_or_default()
}

/// Where nginx's located messages from building contexts point: nginx
/// builds them while merging, once the whole `mail {}` block is read, so
/// they name the line of its closing brace.
fn mail_block_end(config: &Config) -> Option<Origin> {
    use crate::conf::lexer::{Lexer, Stmt};
    for file in &config.files {
        let mut lexer = Lexer::new(file.contents.as_bytes(), false);
        let mut depth = 0usize;
        let mut in_mail = false;
        loop {
            match lexer.next_stmt() {
                Ok(Stmt::BlockStart { words, .. }) => {
                    if depth == 0 && words.first().is_some_and(|w| w.text == "mail") {
                        in_mail = true;
                    }
                    depth += 1;
                }
                Ok(Stmt::BlockEnd { line }) => {
                    depth = depth.saturating_sub(1);
                    if in_mail && depth == 0 {
                        return Some(Origin {
                            file: file.path.clone(),
                            line,
                        });
                    }
                }
                Ok(Stmt::Simple { .. }) => {}
                Ok(Stmt::Eof { .. }) | Err(_) => break,
            }
        }
    }
    None
}

/// The contexts of every server (`None` for servers without TLS), in the
/// order of `MailConf::servers`, and the warnings met.
pub type Servers = (Vec<Option<ServerTls>>, Vec<ConfMessage>);

/// Build every server's context, as a worker does.
pub fn build_servers(
    config: &Config,
    ticket_keys: Option<Arc<TicketKeys>>,
    shared_cache: &dyn Fn(&ShmZone) -> Option<Arc<dyn SessionCacheBackend>>,
) -> Result<Servers, ConfMessage> {
    let Some(mail) = &config.mail else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut out = Vec::with_capacity(mail.servers.len());
    let mut warnings = Vec::new();
    let end = mail_block_end(config);
    for (i, srv) in mail.servers.iter().enumerate() {
        if !server_needs_tls(config, i) {
            out.push(None);
            continue;
        }
        let mut env = BuildEnv {
            default_ticket_keys: ticket_keys.clone(),
            shared_cache,
            at: end.clone().unwrap_or_else(|| srv.origin.clone()),
            conf_prefix: conf_prefix(config),
            warnings: Vec::new(),
        };
        let tls = ServerTls::build(&srv.ssl, srv.protocol, &mut env)?;
        warnings.append(&mut env.warnings);
        out.push(Some(tls));
    }
    Ok((out, warnings))
}

/// The shared session caches of a configuration, one per zone, attached
/// (laid out if new) in the master once its zones are mapped, and
/// inherited by the workers it forks.
#[derive(Clone, Default)]
pub struct SessionStores(Vec<(String, Arc<dyn SessionCacheBackend>)>);

impl SessionStores {
    /// Attach a session store to every zone of `zones`.
    pub fn attach(zones: &crate::shm::ZoneSet) -> Result<SessionStores, ConfMessage> {
        let mut list = Vec::new();
        for zone in zones.iter() {
            let store =
                session_store::SessionStore::attach(zone.clone()).map_err(|e| ConfMessage {
                    level: crate::conf::Level::Emerg,
                    text: e.to_string(),
                })?;
            list.push((
                zone.name().to_string(),
                Arc::new(store) as Arc<dyn SessionCacheBackend>,
            ));
        }
        Ok(SessionStores(list))
    }

    /// The cache of a `shared:name:size` zone (for [`build_servers`]).
    pub fn get(&self, zone: &ShmZone) -> Option<Arc<dyn SessionCacheBackend>> {
        self.0
            .iter()
            .find(|(n, _)| *n == zone.name)
            .map(|(_, s)| Arc::clone(s))
    }
}

/// Build every server's context to check the configuration (`-t` and
/// start-up): the warnings to print, or the first error, worded as nginx.
pub fn check_config(config: &Config) -> Result<Vec<ConfMessage>, ConfMessage> {
    build_servers(config, None, &|_| None).map(|(_, w)| w)
}
