//! `ssl_session_cache shared:name:size`: the OpenSSL session callbacks,
//! wired to a store every worker shares (the shared-memory session store
//! implements [`SessionCacheBackend`]).

use super::ffi::{self, KeyMaterial};
use super::session_store::SessionStore;
use openssl::ssl::{SslContextBuilder, SslSession, SslVersion};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// nginx does not cache sessions larger than this (NGX_SSL_MAX_SESSION_SIZE).
pub const MAX_SESSION_SIZE: usize = 4096;

/// Session ids longer than this are not cached (as nginx).
pub const MAX_SESSION_ID: usize = 32;

/// A session store shared by all workers. Sessions are keyed by id and by
/// the session-id context of the server that made them. Implementations
/// do their own locking; every call is short and never blocks on the
/// network.
pub trait SessionCacheBackend: Send + Sync {
    /// Keep the DER-encoded `session` until `expire` (unix seconds),
    /// evicting the oldest sessions if full.
    fn store(&self, id: &[u8], ctx: &[u8], session: &[u8], expire: i64, now: i64);
    /// The session if cached and not expired at `now` (an expired one is
    /// dropped on the way).
    fn fetch(&self, id: &[u8], ctx: &[u8], now: i64) -> Option<Vec<u8>>;
    /// Forget a session.
    fn remove(&self, id: &[u8], ctx: &[u8]);
    /// The session ticket keys every worker shares when no
    /// `ssl_session_ticket_key` is configured: `[current, previous]`,
    /// rotated as nginx does (a key lives at least `timeout` seconds past
    /// the last ticket it encrypted). `None` if the store keeps no keys.
    fn sync_ticket_keys(&self, _now: i64, _timeout: i64) -> Option<[SharedTicketKey; 2]> {
        None
    }
    /// Whether the store keeps ticket keys (else contexts use the
    /// master's keys).
    fn keeps_ticket_keys(&self) -> bool {
        false
    }
}

/// A ticket key kept in the shared zone, with the time (unix seconds)
/// until which it is needed.
#[derive(Clone)]
pub struct SharedTicketKey {
    pub material: KeyMaterial,
    pub expire: i64,
}

impl SessionCacheBackend for SessionStore {
    fn store(&self, id: &[u8], ctx: &[u8], session: &[u8], expire: i64, now: i64) {
        if let Err(e) = SessionStore::store(self, id, ctx, session, expire, now) {
            log::error!("session cache \"{}\": {e}", self.zone().name());
        }
    }
    fn fetch(&self, id: &[u8], ctx: &[u8], now: i64) -> Option<Vec<u8>> {
        SessionStore::fetch(self, id, ctx, now).unwrap_or_else(|e| {
            log::error!("session cache \"{}\": {e}", self.zone().name());
            None
        })
    }
    fn remove(&self, id: &[u8], ctx: &[u8]) {
        if let Err(e) = SessionStore::remove(self, id, ctx) {
            log::error!("session cache \"{}\": {e}", self.zone().name());
        }
    }
    fn keeps_ticket_keys(&self) -> bool {
        true
    }
    fn sync_ticket_keys(&self, now: i64, timeout: i64) -> Option<[SharedTicketKey; 2]> {
        let keys = SessionStore::sync_ticket_keys(self, now, timeout, |buf| {
            openssl::rand::rand_bytes(buf).is_ok()
        });
        match keys {
            Ok(Some(k)) => Some(k.map(|k| SharedTicketKey {
                material: KeyMaterial {
                    name: k.name,
                    hmac: k.hmac_key,
                    aes: k.aes_key,
                    wide: true,
                },
                expire: k.expire,
            })),
            Ok(None) => {
                log::error!("RAND_bytes() failed");
                None
            }
            Err(e) => {
                log::error!("session cache \"{}\": {e}", self.zone().name());
                None
            }
        }
    }
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Install the new/get/remove callbacks on a context with the session-id
/// context `sid` whose sessions live `timeout` seconds.
pub(crate) fn install(
    ctx: &mut SslContextBuilder,
    backend: Arc<dyn SessionCacheBackend>,
    sid: &[u8],
    timeout: u64,
) {
    let timeout = i64::try_from(timeout).unwrap_or(i64::MAX);
    let store = Arc::clone(&backend);
    let sid_new = sid.to_vec();
    ctx.set_new_session_callback(move |ssl, session| {
        // TLSv1.3 sessions are announced even when they travel in tickets;
        // as nginx, only cache them when tickets are off.
        if ssl.version2() == Some(SslVersion::TLS1_3) && ffi::tickets_enabled(ssl) {
            return;
        }
        let id = session.id();
        if id.len() > MAX_SESSION_ID {
            return;
        }
        let Ok(der) = session.to_der() else { return };
        if der.len() > MAX_SESSION_SIZE {
            return;
        }
        let now = now_secs();
        store.store(id, &sid_new, &der, now.saturating_add(timeout), now);
    });
    let fetch = Arc::clone(&backend);
    let sid_get = sid.to_vec();
    ffi::set_get_session_callback(ctx, move |id| {
        let der = fetch.fetch(id, &sid_get, now_secs())?;
        SslSession::from_der(&der).ok()
    });
    let sid_remove = sid.to_vec();
    ctx.set_remove_session_callback(move |_ctx, session| backend.remove(session.id(), &sid_remove));
}

#[cfg(test)]
pub(crate) mod memory {
    //! An in-process backend for tests.
    use super::SessionCacheBackend;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A session's DER and its expiry.
    type Entry = (Vec<u8>, i64);

    #[derive(Default)]
    pub struct MemoryCache {
        pub map: Mutex<HashMap<Vec<u8>, Entry>>,
        pub stores: Mutex<usize>,
        pub removes: Mutex<usize>,
    }

    impl SessionCacheBackend for MemoryCache {
        fn store(&self, id: &[u8], _ctx: &[u8], session: &[u8], expire: i64, _now: i64) {
            *self.stores.lock().unwrap() += 1;
            self.map
                .lock()
                .unwrap()
                .insert(id.to_vec(), (session.to_vec(), expire));
        }
        fn fetch(&self, id: &[u8], _ctx: &[u8], now: i64) -> Option<Vec<u8>> {
            let mut m = self.map.lock().unwrap();
            match m.get(id) {
                Some((s, exp)) if *exp > now => Some(s.clone()),
                Some(_) => {
                    m.remove(id);
                    None
                }
                None => None,
            }
        }
        fn remove(&self, id: &[u8], _ctx: &[u8]) {
            *self.removes.lock().unwrap() += 1;
            self.map.lock().unwrap().remove(id);
        }
    }
}
