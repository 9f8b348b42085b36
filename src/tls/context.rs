//! One SSL_CTX per server, built from its `ssl_*` settings in nginx's
//! order and with nginx's configuration-time messages.

use super::cache::{self, SessionCacheBackend};
use super::ffi::TicketKeysHandle;
use super::ffi::{self, ConfCmdError, LoadError, PemSource};
use super::ssl_error;
use super::tickets::{self, SharedTicketKeys, TicketKeys};
use crate::conf::error::emerg_at;
use crate::conf::{
    CertSource, ConfMessage, KeySource, Level, Origin, Protocol, SessionCacheMode, ShmZone,
    SslConf, VerifyClient,
};
use openssl::error::ErrorStack;
use openssl::hash::{Hasher, MessageDigest};
use openssl::ssl::{
    select_next_proto, AlpnError, SslContext, SslContextBuilder, SslMethod, SslMode, SslOptions,
    SslSessionCacheMode, SslVerifyMode,
};
use openssl::stack::Stack;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509Name, X509};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The session-id context nginx's mail module starts from.
const SESSION_ID_CONTEXT: &[u8] = b"MAIL";

/// What building a context needs besides the server's settings.
pub struct BuildEnv<'a> {
    /// The random ticket keys the master made before forking (for servers
    /// without `ssl_session_ticket_key`); `None` leaves OpenSSL's own
    /// per-context keys (fine for `-t`).
    pub default_ticket_keys: Option<Arc<TicketKeys>>,
    /// The shared session cache of a `shared:name:size` zone, when the
    /// zone exists (in `-t` it does not, and no callbacks are installed).
    pub shared_cache: &'a dyn Fn(&ShmZone) -> Option<Arc<dyn SessionCacheBackend>>,
    /// Where nginx's located merge-time messages point.
    pub at: Origin,
    /// The directory relative `ssl_conf_command` file names are read from.
    pub conf_prefix: PathBuf,
    /// Warnings met while building, worded as nginx.
    pub warnings: Vec<ConfMessage>,
}

impl BuildEnv<'_> {
    /// An environment for checking a configuration: no shared caches, no
    /// default ticket keys.
    pub fn check(at: Origin, conf_prefix: PathBuf) -> BuildEnv<'static> {
        BuildEnv {
            default_ticket_keys: None,
            shared_cache: &|_| None,
            at,
            conf_prefix,
            warnings: Vec::new(),
        }
    }
}

/// A server's TLS context and the settings connections need. Cloning is
/// cheap (the context is reference-counted).
#[derive(Clone)]
pub struct ServerTls {
    ctx: SslContext,
    verify: VerifyClient,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("verify", &self.verify)
            .finish()
    }
}

fn emerg(text: String) -> ConfMessage {
    ConfMessage {
        level: Level::Emerg,
        text,
    }
}

fn stack_emerg(text: impl AsRef<str>, e: &ErrorStack) -> ConfMessage {
    emerg(ssl_error(text.as_ref(), e))
}

fn load_emerg(prefix: String, e: &LoadError) -> ConfMessage {
    emerg(ssl_error(&format!("{prefix}: {}", e.what), &e.queue))
}

fn cert_name(src: &CertSource) -> String {
    match src {
        CertSource::File(p) => p.display().to_string(),
        CertSource::Data(d) => format!("data:{d}"),
    }
}

fn key_name(src: &KeySource) -> String {
    match src {
        KeySource::File(p) => p.display().to_string(),
        KeySource::Data(d) => format!("data:{d}"),
        // The model cannot tell `engine:e` from `engine:e:`; both are
        // reported as the first (nginx: invalid syntax).
        KeySource::Engine { engine, key_id } if key_id.is_empty() => format!("engine:{engine}"),
        KeySource::Engine { engine, key_id } => format!("engine:{engine}:{key_id}"),
        KeySource::Store(uri) => format!("store:{uri}"),
    }
}

impl ServerTls {
    /// Build the context of one server that uses TLS (`listen ... ssl`,
    /// `ssl on` or `starttls`), as nginx's mail ssl merge does.
    pub fn build(
        ssl: &SslConf,
        protocol: Protocol,
        env: &mut BuildEnv<'_>,
    ) -> Result<ServerTls, ConfMessage> {
        let mut ctx = SslContextBuilder::new(SslMethod::tls())
            .map_err(|e| stack_emerg("SSL_CTX_new() failed", &e))?;
        set_protocols(&mut ctx, ssl);
        set_alpn(&mut ctx, protocol);

        ctx.set_cipher_list(&ssl.ciphers).map_err(|e| {
            stack_emerg(
                format!("SSL_CTX_set_cipher_list(\"{}\") failed", ssl.ciphers),
                &e,
            )
        })?;
        if ssl.prefer_server_ciphers {
            ctx.set_options(SslOptions::CIPHER_SERVER_PREFERENCE);
        }

        let certs = set_certificates(&mut ctx, ssl, env)?;

        if ssl.certificate_compression {
            // OpenSSL 3.0 cannot compress certificates (3.2 can); nginx
            // says so and goes on.
            env.warnings.push(ConfMessage {
                level: Level::Warn,
                text: "\"ssl_certificate_compression\" is not supported on this platform, ignored"
                    .to_string(),
            });
        }

        let mut ca_names = Vec::new();
        if ssl.verify_client != VerifyClient::Off {
            ca_names = set_verify(&mut ctx, ssl)?;
        }

        if let Some(dh) = &ssl.dhparam {
            ffi::set_dhparam(&mut ctx, dh).map_err(|e| {
                let what = e.what.replacen("()", &format!("(\"{}\")", dh.display()), 1);
                emerg(ssl_error(&what, &e.queue))
            })?;
        }

        if ssl.ecdh_curve != "auto" {
            ctx.set_groups_list(&ssl.ecdh_curve).map_err(|e| {
                stack_emerg(
                    format!("SSL_CTX_set1_curves_list(\"{}\") failed", ssl.ecdh_curve),
                    &e,
                )
            })?;
        }

        let shared = set_session_cache(&mut ctx, ssl, &certs, &ca_names, env)?;

        if !ssl.session_tickets {
            ctx.set_options(SslOptions::NO_TICKET);
        }
        set_ticket_keys(&mut ctx, ssl, shared, env)?;

        if !ssl.conf_commands.is_empty() {
            let prefix = env.conf_prefix.clone();
            let full = move |v: &str| {
                let p = Path::new(v);
                if p.is_absolute() {
                    v.to_string()
                } else {
                    prefix.join(p).display().to_string()
                }
            };
            ffi::conf_commands(&mut ctx, &ssl.conf_commands, &full).map_err(|e| match e {
                ConfCmdError::Cmd(i, q) => {
                    let (k, v) = &ssl.conf_commands[i];
                    stack_emerg(format!("SSL_CONF_cmd(\"{k}\", \"{v}\") failed"), &q)
                }
                ConfCmdError::Finish(q) => stack_emerg("SSL_CONF_finish() failed", &q),
                ConfCmdError::New(q) => stack_emerg("SSL_CONF_CTX_new() failed", &q),
            })?;
        }

        Ok(ServerTls {
            ctx: ctx.build(),
            verify: ssl.verify_client,
        })
    }

    pub fn context(&self) -> &SslContext {
        &self.ctx
    }

    pub fn verify_client(&self) -> VerifyClient {
        self.verify
    }
}

/// nginx's ngx_ssl_create: bug-compatibility options, protocol switches,
/// no compression or client renegotiation, small idle buffers.
fn set_protocols(ctx: &mut SslContextBuilder, ssl: &SslConf) {
    ctx.set_options(SslOptions::DONT_INSERT_EMPTY_FRAGMENTS | SslOptions::SINGLE_DH_USE);
    ctx.clear_options(
        SslOptions::NO_SSLV2
            | SslOptions::NO_SSLV3
            | SslOptions::NO_TLSV1
            | SslOptions::NO_TLSV1_1
            | SslOptions::NO_TLSV1_2
            | SslOptions::NO_TLSV1_3,
    );
    let p = &ssl.protocols;
    for (on, opt) in [
        (p.sslv2, SslOptions::NO_SSLV2),
        (p.sslv3, SslOptions::NO_SSLV3),
        (p.tlsv1, SslOptions::NO_TLSV1),
        (p.tlsv1_1, SslOptions::NO_TLSV1_1),
        (p.tlsv1_2, SslOptions::NO_TLSV1_2),
        (p.tlsv1_3, SslOptions::NO_TLSV1_3),
    ] {
        if !on {
            ctx.set_options(opt);
        }
    }
    // Bounds are left wide open: the switches above decide. Setting these
    // cannot fail for these values.
    let _ = ctx.set_min_proto_version(None);
    let _ = ctx.set_max_proto_version(None);
    ctx.set_options(
        SslOptions::NO_COMPRESSION
            | SslOptions::NO_RENEGOTIATION
            | SslOptions::from_bits_retain(ffi::SSL_OP_IGNORE_UNEXPECTED_EOF),
    );
    // A write that would block is retried with the same bytes, but the
    // caller's buffer may have moved (a Vec grows) in between.
    ctx.set_mode(
        SslMode::RELEASE_BUFFERS
            | SslMode::ACCEPT_MOVING_WRITE_BUFFER
            | SslMode::from_bits_retain(ffi::SSL_MODE_NO_AUTO_CHAIN),
    );
    ctx.set_read_ahead(true);
    ffi::set_info_callback(ctx);
}

/// ALPN: only the server's own protocol; anything else is a fatal alert.
fn set_alpn(ctx: &mut SslContextBuilder, protocol: Protocol) {
    let wire: &'static [u8] = match protocol {
        Protocol::Imap => b"\x04imap",
        Protocol::Pop3 => b"\x04pop3",
        Protocol::Smtp => b"\x04smtp",
    };
    ctx.set_alpn_select_callback(move |_, client| {
        select_next_proto(wire, client).ok_or(AlpnError::ALERT_FATAL)
    });
}

/// Every certificate with its chain and key; returns the leaf
/// certificates (for the session-id context).
fn set_certificates(
    ctx: &mut SslContextBuilder,
    ssl: &SslConf,
    env: &mut BuildEnv<'_>,
) -> Result<Vec<X509>, ConfMessage> {
    let phrases: &[Vec<u8>] = ssl
        .passwords
        .as_ref()
        .map(|p| p.0.as_slice())
        .unwrap_or(&[]);
    let mut leaves = Vec::new();
    for (cert, key) in ssl.certificates.iter().zip(&ssl.certificate_keys) {
        let name = cert_name(cert);
        let src = match cert {
            CertSource::File(p) => PemSource::File(p),
            CertSource::Data(d) => PemSource::Data(d.as_bytes()),
        };
        let mut chain = ffi::read_cert_chain(&src)
            .map_err(|e| load_emerg(format!("cannot load certificate \"{name}\""), &e))?;
        let leaf = chain.remove(0);
        ctx.set_certificate(&leaf)
            .map_err(|e| stack_emerg(format!("SSL_CTX_use_certificate(\"{name}\") failed"), &e))?;
        ffi::set_chain(ctx, &chain)
            .map_err(|e| stack_emerg(format!("SSL_CTX_set0_chain(\"{name}\") failed"), &e))?;
        leaves.push(leaf);

        let kname = key_name(key);
        let kerr =
            |e: LoadError| load_emerg(format!("cannot load certificate key \"{kname}\""), &e);
        let pkey = match key {
            KeySource::File(p) => load_pem_key(&PemSource::File(p), phrases, env).map_err(kerr)?,
            KeySource::Data(d) => {
                load_pem_key(&PemSource::Data(d.as_bytes()), phrases, env).map_err(kerr)?
            }
            KeySource::Engine { engine, key_id } => {
                if key_id.is_empty() {
                    return Err(emerg(format!(
                        "cannot load certificate key \"{kname}\": invalid syntax"
                    )));
                }
                ffi::engine_private_key(engine, key_id).map_err(kerr)?
            }
            KeySource::Store(uri) => ffi::store_private_key(uri, phrases).map_err(kerr)?,
        };
        ctx.set_private_key(&pkey)
            .map_err(|e| stack_emerg(format!("SSL_CTX_use_PrivateKey(\"{kname}\") failed"), &e))?;
    }
    Ok(leaves)
}

fn load_pem_key(
    src: &PemSource<'_>,
    phrases: &[Vec<u8>],
    env: &mut BuildEnv<'_>,
) -> Result<openssl::pkey::PKey<openssl::pkey::Private>, LoadError> {
    let mut truncated = None;
    let key = ffi::read_private_key(src, phrases, &mut truncated);
    if let Some(n) = truncated {
        env.warnings.push(ConfMessage {
            level: Level::Error,
            text: format!("password is truncated to {n} bytes"),
        });
    }
    key
}

/// `ssl_verify_client` with its CA files and CRLs; returns the names of the
/// CAs sent to clients.
fn set_verify(ctx: &mut SslContextBuilder, ssl: &SslConf) -> Result<Vec<X509Name>, ConfMessage> {
    // Verification never aborts the handshake: the result is checked once
    // the handshake is done (and reported to auth_http), as nginx does.
    ctx.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
    ctx.set_verify_depth(ssl.verify_depth);
    let mut names: Vec<X509Name> = Vec::new();
    if let Some(path) = &ssl.client_certificate {
        let certs = load_cas(path)?;
        for c in certs {
            let subject = c.subject_name().to_owned().map_err(|e| {
                stack_emerg(
                    format!("X509_get_subject_name(\"{}\") failed", path.display()),
                    &e,
                )
            })?;
            add_ca(ctx, c, path)?;
            let der = subject.to_der().unwrap_or_default();
            if !names.iter().any(|n| n.to_der().unwrap_or_default() == der) {
                names.push(subject);
            }
        }
        let mut list = Stack::new().map_err(|e| stack_emerg("sk_X509_NAME_new() failed", &e))?;
        for n in &names {
            let copy = n
                .as_ref()
                .to_owned()
                .map_err(|e| stack_emerg("X509_NAME_dup() failed", &e))?;
            list.push(copy)
                .map_err(|e| stack_emerg("sk_X509_NAME_push() failed", &e))?;
        }
        ctx.set_client_ca_list(list);
    }
    if let Some(path) = &ssl.trusted_certificate {
        for c in load_cas(path)? {
            add_ca(ctx, c, path)?;
        }
    }
    if let Some(path) = &ssl.crl {
        let crls = ffi::read_crls(&PemSource::File(path))
            .map_err(|e| load_emerg(format!("cannot load CRL \"{}\"", path.display()), &e))?;
        for crl in &crls {
            ffi::add_crl(ctx, crl).map_err(|e| {
                stack_emerg(
                    format!("X509_STORE_add_crl(\"{}\") failed", path.display()),
                    &e,
                )
            })?;
        }
        ctx.cert_store_mut()
            .set_flags(X509VerifyFlags::CRL_CHECK | X509VerifyFlags::CRL_CHECK_ALL)
            .map_err(|e| stack_emerg("X509_STORE_set_flags() failed", &e))?;
    }
    Ok(names)
}

fn load_cas(path: &Path) -> Result<Vec<X509>, ConfMessage> {
    ffi::read_ca_certs(&PemSource::File(path)).map_err(|e| {
        load_emerg(
            format!("cannot load certificate \"{}\"", path.display()),
            &e,
        )
    })
}

fn add_ca(ctx: &mut SslContextBuilder, cert: X509, path: &Path) -> Result<(), ConfMessage> {
    ctx.cert_store_mut().add_cert(cert).map_err(|e| {
        stack_emerg(
            format!("X509_STORE_add_cert(\"{}\") failed", path.display()),
            &e,
        )
    })
}

/// nginx's session-id context: SHA-1 over "MAIL", the SHA-1 of each server
/// certificate and the SHA-1 of each CA name sent to clients.
fn session_id_context(certs: &[X509], ca_names: &[X509Name]) -> Result<Vec<u8>, ErrorStack> {
    let mut h = Hasher::new(MessageDigest::sha1())?;
    h.update(SESSION_ID_CONTEXT)?;
    for c in certs {
        h.update(&c.digest(MessageDigest::sha1())?)?;
    }
    for n in ca_names {
        // X509_NAME_digest hashes the name's DER encoding.
        h.update(&openssl::hash::hash(MessageDigest::sha1(), &n.to_der()?)?)?;
    }
    Ok(h.finish()?.to_vec())
}

/// nginx's ngx_ssl_session_cache: `off` forbids reuse, `none` pretends,
/// `builtin` is OpenSSL's per-process cache, `shared` goes to the backend.
fn set_session_cache(
    ctx: &mut SslContextBuilder,
    ssl: &SslConf,
    certs: &[X509],
    ca_names: &[X509Name],
    env: &mut BuildEnv<'_>,
) -> Result<Option<Arc<dyn SessionCacheBackend>>, ConfMessage> {
    let timeout = ssl.session_timeout.as_secs();
    ffi::set_session_timeout(ctx, timeout);
    let sid = session_id_context(certs, ca_names)
        .map_err(|e| stack_emerg("EVP_DigestInit_ex() failed", &e))?;
    ctx.set_session_id_context(&sid)
        .map_err(|e| stack_emerg("SSL_CTX_set_session_id_context() failed", &e))?;
    let sc = &ssl.session_cache;
    let mut shared = None;
    match sc.mode {
        SessionCacheMode::Off => {
            ctx.set_session_cache_mode(SslSessionCacheMode::OFF);
        }
        SessionCacheMode::None => {
            ctx.set_session_cache_mode(
                SslSessionCacheMode::SERVER
                    | SslSessionCacheMode::NO_AUTO_CLEAR
                    | SslSessionCacheMode::NO_INTERNAL_STORE,
            );
            ctx.set_session_cache_size(1);
        }
        SessionCacheMode::Cache => {
            let mut mode = SslSessionCacheMode::SERVER;
            if sc.shared.is_some() && sc.builtin.is_none() {
                mode |= SslSessionCacheMode::NO_INTERNAL;
            }
            ctx.set_session_cache_mode(mode);
            if let Some(Some(size)) = sc.builtin {
                ctx.set_session_cache_size(i32::try_from(size).unwrap_or(i32::MAX));
            }
            if let Some(zone) = &sc.shared {
                if let Some(backend) = (env.shared_cache)(zone) {
                    cache::install(ctx, Arc::clone(&backend), &sid, timeout);
                    shared = Some(backend);
                }
            }
        }
    }
    Ok(shared)
}

/// nginx's choice of ticket keys: the key files; else, with a shared
/// cache, keys kept and rotated in the shared zone; else (our addition,
/// since workers build their own contexts) the master's random keys.
fn set_ticket_keys(
    ctx: &mut SslContextBuilder,
    ssl: &SslConf,
    shared: Option<Arc<dyn SessionCacheBackend>>,
    env: &mut BuildEnv<'_>,
) -> Result<(), ConfMessage> {
    let keys: TicketKeysHandle = if !ssl.session_ticket_keys.is_empty() {
        Arc::new(TicketKeys::load(&ssl.session_ticket_keys, &env.at)?)
    } else if let Some(backend) = shared.filter(|b| b.keeps_ticket_keys()) {
        Arc::new(SharedTicketKeys::new(
            backend,
            ssl.session_timeout.as_secs(),
        ))
    } else if let Some(k) = &env.default_ticket_keys {
        k.clone()
    } else {
        return Ok(());
    };
    tickets::install(keys, ctx)
        .map_err(|e| emerg_at(ssl_error("SSL_CTX_set_ex_data() failed", &e), &env.at))
}
