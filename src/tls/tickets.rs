//! Session ticket keys: `ssl_session_ticket_key` files (48 or 80 bytes,
//! the first key encrypts, all keys decrypt) and the random default keys
//! the master makes once before forking, so that a ticket issued by one
//! worker is accepted by every other.

use super::cache::{now_secs, SessionCacheBackend, SharedTicketKey};
use super::ffi::{self, KeyMaterial, TicketKeySource, TicketKeysHandle};
use crate::conf::error::emerg_at;
use crate::conf::{ConfMessage, Level, Origin};
use openssl::error::ErrorStack;
use openssl::ssl::{SslContext, SslContextBuilder};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

/// One key from a key file or made at random.
#[derive(Clone, PartialEq, Eq)]
pub struct TicketKey(KeyMaterial);

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TicketKey({} bytes, name ",
            if self.0.wide { 80 } else { 48 }
        )?;
        for b in self.0.name {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

impl TicketKey {
    /// A key from the contents of a key file, laid out as nginx reads it:
    /// 48 bytes = name, AES-128 key, HMAC key; 80 bytes = name, HMAC key,
    /// AES-256 key.
    pub fn from_bytes(b: &[u8]) -> Option<TicketKey> {
        let mut k = KeyMaterial {
            name: [0; 16],
            hmac: [0; 32],
            aes: [0; 32],
            wide: b.len() == 80,
        };
        match b.len() {
            48 => {
                k.name.copy_from_slice(&b[..16]);
                k.aes[..16].copy_from_slice(&b[16..32]);
                k.hmac[..16].copy_from_slice(&b[32..48]);
            }
            80 => {
                k.name.copy_from_slice(&b[..16]);
                k.hmac.copy_from_slice(&b[16..48]);
                k.aes.copy_from_slice(&b[48..80]);
            }
            _ => return None,
        }
        Some(TicketKey(k))
    }

    pub fn name(&self) -> &[u8; 16] {
        &self.0.name
    }
}

/// An ordered set of ticket keys; the first encrypts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketKeys {
    keys: Vec<TicketKey>,
}

impl TicketKeys {
    /// One random AES-256 key, for servers without `ssl_session_ticket_key`.
    /// Call it in the master before forking and hand the same value to
    /// every worker's `ServerTls::build`.
    pub fn generate() -> Result<TicketKeys, ErrorStack> {
        let mut buf = [0u8; 80];
        openssl::rand::rand_bytes(&mut buf)?;
        let key = TicketKey::from_bytes(&buf).expect("80 bytes");
        ffi::wipe(&mut buf);
        Ok(TicketKeys { keys: vec![key] })
    }

    pub fn from_keys(keys: Vec<TicketKey>) -> Option<TicketKeys> {
        if keys.is_empty() {
            None
        } else {
            Some(TicketKeys { keys })
        }
    }

    /// Read `ssl_session_ticket_key` files in order, with nginx's messages
    /// (located at `at`).
    pub fn load(paths: &[impl AsRef<Path>], at: &Origin) -> Result<TicketKeys, ConfMessage> {
        let mut keys = Vec::new();
        for p in paths {
            let p = p.as_ref();
            let mut bytes = std::fs::read(p).map_err(|e| {
                emerg_at(
                    format!(
                        "open() \"{}\" failed{}",
                        p.display(),
                        crate::conf::sys::errno_suffix(e.raw_os_error().unwrap_or(0))
                    ),
                    at,
                )
            })?;
            let key = TicketKey::from_bytes(&bytes);
            ffi::wipe(&mut bytes);
            match key {
                Some(k) => keys.push(k),
                None => {
                    return Err(emerg_at(
                        format!("\"{}\" must be 48 or 80 bytes", p.display()),
                        at,
                    ))
                }
            }
        }
        TicketKeys::from_keys(keys).ok_or_else(|| ConfMessage {
            level: Level::Emerg,
            text: "no session ticket keys".to_string(),
        })
    }

    pub fn keys(&self) -> &[TicketKey] {
        &self.keys
    }
}

/// nginx's default keys with a shared session cache: kept in the shared
/// zone, rotated there, copied here and refreshed only when the current
/// key's lifetime must be extended or the previous key has expired.
pub(crate) struct SharedTicketKeys {
    backend: Arc<dyn SessionCacheBackend>,
    timeout: i64,
    local: Mutex<Option<[SharedTicketKey; 2]>>,
}

impl SharedTicketKeys {
    pub(crate) fn new(backend: Arc<dyn SessionCacheBackend>, timeout: u64) -> SharedTicketKeys {
        SharedTicketKeys {
            backend,
            timeout: i64::try_from(timeout).unwrap_or(i64::MAX),
            local: Mutex::new(None),
        }
    }

    fn with_keys<T>(&self, f: impl FnOnce(&[SharedTicketKey; 2]) -> Option<T>) -> Option<T> {
        let now = now_secs();
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = local
            .as_ref()
            .is_some_and(|k| k[0].expire >= now.saturating_add(self.timeout) && k[1].expire >= now);
        if !fresh {
            if let Some(k) = self.backend.sync_ticket_keys(now, self.timeout) {
                *local = Some(k);
            }
        }
        local.as_ref().and_then(f)
    }
}

impl TicketKeySource for SharedTicketKeys {
    fn encrypting(&self) -> Option<KeyMaterial> {
        self.with_keys(|k| Some(k[0].material.clone()))
    }

    fn find(&self, name: &[u8; 16]) -> Option<(KeyMaterial, bool)> {
        self.with_keys(|k| {
            k.iter()
                .position(|x| x.expire != 0 && &x.material.name == name)
                .map(|i| (k[i].material.clone(), i == 0))
        })
    }
}

/// Make `keys` the context's ticket keys.
pub(crate) fn install(
    keys: TicketKeysHandle,
    ctx: &mut SslContextBuilder,
) -> Result<(), ErrorStack> {
    let index = ticket_index()?;
    ctx.set_ex_data(index, keys);
    ffi::set_ticket_key_callback(ctx, index.as_raw());
    Ok(())
}

impl TicketKeySource for TicketKeys {
    fn encrypting(&self) -> Option<KeyMaterial> {
        self.keys.first().map(|k| k.0.clone())
    }

    fn find(&self, name: &[u8; 16]) -> Option<(KeyMaterial, bool)> {
        self.keys
            .iter()
            .position(|k| &k.0.name == name)
            .map(|i| (self.keys[i].0.clone(), i == 0))
    }
}

fn ticket_index() -> Result<openssl::ex_data::Index<SslContext, TicketKeysHandle>, ErrorStack> {
    static INDEX: OnceLock<openssl::ex_data::Index<SslContext, TicketKeysHandle>> = OnceLock::new();
    if let Some(i) = INDEX.get() {
        return Ok(*i);
    }
    let i = SslContext::new_ex_index::<TicketKeysHandle>()?;
    Ok(*INDEX.get_or_init(|| i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let b48: Vec<u8> = (0..48).collect();
        let k = TicketKey::from_bytes(&b48).unwrap().0.clone();
        assert_eq!(k.name[0], 0);
        assert!(!k.wide);
        assert_eq!(k.aes[..16], (16..32).collect::<Vec<u8>>());
        assert_eq!(k.hmac[..16], (32..48).collect::<Vec<u8>>());
        let b80: Vec<u8> = (0..80).collect();
        let k = TicketKey::from_bytes(&b80).unwrap().0.clone();
        assert!(k.wide);
        assert_eq!(k.hmac[..], (16..48).collect::<Vec<u8>>());
        assert_eq!(k.aes[..], (48..80).collect::<Vec<u8>>());
        assert!(TicketKey::from_bytes(&[0; 50]).is_none());
    }

    #[test]
    fn load_messages_and_order() {
        let dir = crate::tls::testutil::TempDir::new("tk");
        let a = dir.write("a.key", &[1u8; 80]);
        let b = dir.write("b.key", &[2u8; 48]);
        let bad = dir.write("bad.key", &[3u8; 50]);
        let at = Origin {
            file: "/x/p.conf".into(),
            line: 7,
        };
        let keys = TicketKeys::load(&[&a, &b], &at).unwrap();
        assert_eq!(keys.keys().len(), 2);
        assert_eq!(keys.encrypting().unwrap().name, [1u8; 16]);
        assert!(keys.find(&[2u8; 16]).is_some_and(|(_, cur)| !cur));
        assert!(keys.find(&[1u8; 16]).is_some_and(|(_, cur)| cur));
        assert!(keys.find(&[9u8; 16]).is_none());
        let e = TicketKeys::load(&[&a, &bad], &at).unwrap_err();
        assert_eq!(
            e.text,
            format!(
                "\"{}\" must be 48 or 80 bytes in /x/p.conf:7",
                bad.display()
            )
        );
        let missing = dir.path().join("none.key");
        let e = TicketKeys::load(&[&missing], &at).unwrap_err();
        assert_eq!(
            e.text,
            format!(
                "open() \"{}\" failed (2: No such file or directory) in /x/p.conf:7",
                missing.display()
            )
        );
    }

    #[test]
    fn generated_keys_differ() {
        let a = TicketKeys::generate().unwrap();
        let b = TicketKeys::generate().unwrap();
        assert_ne!(a.keys()[0].name(), b.keys()[0].name());
        assert!(a.keys()[0].0.wide);
    }
}
