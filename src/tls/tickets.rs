//! Session ticket keys: `ssl_session_ticket_key` files (48 or 80 bytes,
//! the first key encrypts, all keys decrypt) and the random default keys
//! the master makes once before forking, so that a ticket issued by one
//! worker is accepted by every other.

use super::ffi::{self, TicketKeyRef, TicketKeySource, TicketKeysHandle};
use crate::conf::error::emerg_at;
use crate::conf::{ConfMessage, Level, Origin};
use openssl::error::ErrorStack;
use openssl::ssl::{SslContext, SslContextBuilder};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// One key: a 16-byte name sent in the ticket, an HMAC-SHA256 key and an
/// AES-CBC key (AES-128 for 48-byte files, AES-256 for 80-byte ones).
#[derive(Clone, PartialEq, Eq)]
pub struct TicketKey {
    name: [u8; 16],
    hmac: Vec<u8>,
    aes: Vec<u8>,
}

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TicketKey({} bytes, name ",
            16 + self.hmac.len() + self.aes.len()
        )?;
        for b in self.name {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

impl Drop for TicketKey {
    fn drop(&mut self) {
        // Keys should not linger in freed memory.
        ffi::wipe(&mut self.hmac);
        ffi::wipe(&mut self.aes);
    }
}

impl TicketKey {
    /// A key from the contents of a key file, laid out as nginx reads it:
    /// 48 bytes = name, AES-128 key, HMAC key; 80 bytes = name, HMAC key,
    /// AES-256 key.
    pub fn from_bytes(b: &[u8]) -> Option<TicketKey> {
        let mut name = [0u8; 16];
        match b.len() {
            48 => {
                name.copy_from_slice(&b[..16]);
                Some(TicketKey {
                    name,
                    aes: b[16..32].to_vec(),
                    hmac: b[32..48].to_vec(),
                })
            }
            80 => {
                name.copy_from_slice(&b[..16]);
                Some(TicketKey {
                    name,
                    hmac: b[16..48].to_vec(),
                    aes: b[48..80].to_vec(),
                })
            }
            _ => None,
        }
    }

    pub fn name(&self) -> &[u8; 16] {
        &self.name
    }

    fn as_ref(&self) -> TicketKeyRef<'_> {
        TicketKeyRef {
            name: &self.name,
            hmac: &self.hmac,
            aes: &self.aes,
        }
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

    /// Make these keys the context's ticket keys.
    pub(crate) fn install(self: Arc<Self>, ctx: &mut SslContextBuilder) -> Result<(), ErrorStack> {
        let index = ticket_index()?;
        let handle: TicketKeysHandle = self;
        ctx.set_ex_data(index, handle);
        ffi::set_ticket_key_callback(ctx, index.as_raw());
        Ok(())
    }
}

impl TicketKeySource for TicketKeys {
    fn encrypting(&self) -> TicketKeyRef<'_> {
        self.keys[0].as_ref()
    }

    fn find(&self, name: &[u8; 16]) -> Option<(TicketKeyRef<'_>, bool)> {
        self.keys
            .iter()
            .position(|k| &k.name == name)
            .map(|i| (self.keys[i].as_ref(), i == 0))
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
        let k = TicketKey::from_bytes(&b48).unwrap();
        assert_eq!(k.name[0], 0);
        assert_eq!(k.aes, (16..32).collect::<Vec<u8>>());
        assert_eq!(k.hmac, (32..48).collect::<Vec<u8>>());
        let b80: Vec<u8> = (0..80).collect();
        let k = TicketKey::from_bytes(&b80).unwrap();
        assert_eq!(k.hmac, (16..48).collect::<Vec<u8>>());
        assert_eq!(k.aes, (48..80).collect::<Vec<u8>>());
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
        assert_eq!(keys.encrypting().name, &[1u8; 16]);
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
        assert_ne!(a.keys()[0].name, b.keys()[0].name);
        assert_eq!(a.keys()[0].aes.len(), 32);
    }
}
