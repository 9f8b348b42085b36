//! `ssl_session_cache shared:name:size`: the OpenSSL session callbacks,
//! wired to a store every worker shares (the shared-memory session store
//! implements [`SessionCacheBackend`]).

use super::ffi;
use openssl::ssl::{SslContextBuilder, SslSession, SslVersion};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// nginx does not cache sessions larger than this (NGX_SSL_MAX_SESSION_SIZE).
pub const MAX_SESSION_SIZE: usize = 4096;

/// Session ids longer than this are not cached (as nginx).
pub const MAX_SESSION_ID: usize = 32;

/// A session store shared by all workers. Implementations do their own
/// locking; every call is short and never blocks on the network.
pub trait SessionCacheBackend: Send + Sync {
    /// Keep the DER-encoded `session` under `id` until `expire` (seconds
    /// since the epoch), evicting the oldest sessions if full.
    fn store(&self, id: &[u8], session: &[u8], expire: u64);
    /// The session stored under `id` if it has not expired at `now`
    /// (an expired one is dropped on the way).
    fn fetch(&self, id: &[u8], now: u64) -> Option<Vec<u8>>;
    /// Forget the session stored under `id`.
    fn remove(&self, id: &[u8]);
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Install the new/get/remove callbacks on a context whose sessions live
/// `timeout` seconds.
pub(crate) fn install(ctx: &mut SslContextBuilder, backend: Arc<dyn SessionCacheBackend>, timeout: u64) {
    let store = Arc::clone(&backend);
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
        store.store(id, &der, now_secs() + timeout);
    });
    let fetch = Arc::clone(&backend);
    ffi::set_get_session_callback(ctx, move |id| {
        let der = fetch.fetch(id, now_secs())?;
        SslSession::from_der(&der).ok()
    });
    ctx.set_remove_session_callback(move |_ctx, session| backend.remove(session.id()));
}

#[cfg(test)]
pub(crate) mod memory {
    //! An in-process backend for tests.
    use super::SessionCacheBackend;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct MemoryCache {
        pub map: Mutex<HashMap<Vec<u8>, (Vec<u8>, u64)>>,
        pub stores: Mutex<usize>,
        pub removes: Mutex<usize>,
    }

    impl SessionCacheBackend for MemoryCache {
        fn store(&self, id: &[u8], session: &[u8], expire: u64) {
            *self.stores.lock().unwrap() += 1;
            self.map
                .lock()
                .unwrap()
                .insert(id.to_vec(), (session.to_vec(), expire));
        }
        fn fetch(&self, id: &[u8], now: u64) -> Option<Vec<u8>> {
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
        fn remove(&self, id: &[u8]) {
            *self.removes.lock().unwrap() += 1;
            self.map.lock().unwrap().remove(id);
        }
    }
}
