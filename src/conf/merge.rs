//! From what was read to the typed configuration: defaults, `mail {}` →
//! `server {}` inheritance and the checks nginx makes once a block or the
//! whole file is read.
//!
//! nginx merges module by module (core, ssl, pop3, imap, smtp, auth_http,
//! proxy, realip), each over every server in turn, so when two servers
//! are broken the message is the one of the first module that fails.

use super::directives::{Builtin, CoreBuild, Eval, EventsBuild, MailBuild, SrvBuild};
use super::error::emerg;
use super::model::*;
use super::{build_info, ConfMessage, LoadOptions};
use std::path::Path;
use std::time::Duration;

/// One memory page: nginx's default for the protocol buffers.
pub const PAGE_SIZE: usize = 4096;

fn pick<T: Clone>(own: &Option<T>, parent: &Option<T>, default: T) -> T {
    own.clone().or_else(|| parent.clone()).unwrap_or(default)
}

fn list(own: &[String], parent: &[String], default: &[&str]) -> Vec<String> {
    if !own.is_empty() {
        own.to_vec()
    } else if !parent.is_empty() {
        parent.to_vec()
    } else {
        default.iter().map(|s| s.to_string()).collect()
    }
}

fn at(origin: &Origin) -> String {
    format!("{}:{}", origin.file.display(), origin.line)
}

/// The TLS part of one server, with nginx's checks for servers that need
/// a certificate.
fn ssl(s: &SrvBuild, p: &SrvBuild) -> Result<SslConf, ConfMessage> {
    let ssl_on = pick(&s.ssl_on, &p.ssl_on, false);
    let starttls = pick(&s.starttls, &p.starttls, StartTls::Off);
    let certificates = s.certificates.clone().or_else(|| p.certificates.clone());
    let names = if s.certificates.is_some() {
        &s.certificate_names
    } else {
        &p.certificate_names
    };
    let keys = s
        .certificate_keys
        .clone()
        .or_else(|| p.certificate_keys.clone());
    let verify_client = pick(&s.verify_client, &p.verify_client, VerifyClient::Off);
    let client_certificate = s
        .client_certificate
        .clone()
        .or_else(|| p.client_certificate.clone());
    let trusted_certificate = s
        .trusted_certificate
        .clone()
        .or_else(|| p.trusted_certificate.clone());
    let origin = s
        .ssl_origin
        .clone()
        .or_else(|| p.ssl_origin.clone())
        .unwrap_or_default();
    let mode = if s.ssl_listen {
        Some("listen ... ssl")
    } else if ssl_on {
        Some("ssl")
    } else if starttls != StartTls::Off {
        Some("starttls")
    } else {
        None
    };
    if let Some(mode) = mode {
        let Some(certs) = &certificates else {
            return Err(emerg(format!(
                "no \"ssl_certificate\" is defined for the \"{mode}\" directive in {}",
                at(&origin)
            )));
        };
        let Some(k) = &keys else {
            return Err(emerg(format!(
                "no \"ssl_certificate_key\" is defined for the \"{mode}\" directive in {}",
                at(&origin)
            )));
        };
        if k.len() < certs.len() {
            return Err(emerg(format!(
                "no \"ssl_certificate_key\" is defined for certificate \"{}\" and the \"{mode}\" directive in {}",
                names.last().map(String::as_str).unwrap_or(""),
                at(&origin)
            )));
        }
        if verify_client != VerifyClient::Off
            && verify_client != VerifyClient::OptionalNoCa
            && client_certificate.is_none()
            && trusted_certificate.is_none()
        {
            return Err(emerg(
                "no ssl_client_certificate or ssl_trusted_certificate for ssl_verify_client",
            ));
        }
    }
    let builtin = pick(&s.session_cache, &p.session_cache, Builtin::None);
    let shared = s.shm_zone.clone().or_else(|| p.shm_zone.clone());
    let session_cache = match builtin {
        Builtin::Off => SessionCache {
            mode: SessionCacheMode::Off,
            builtin: None,
            shared: None,
        },
        Builtin::None => SessionCache {
            mode: SessionCacheMode::None,
            builtin: None,
            shared: None,
        },
        Builtin::NoBuiltin => SessionCache {
            mode: SessionCacheMode::Cache,
            builtin: None,
            shared,
        },
        Builtin::Default => SessionCache {
            mode: SessionCacheMode::Cache,
            builtin: Some(None),
            shared,
        },
        Builtin::Size(n) => SessionCache {
            mode: SessionCacheMode::Cache,
            builtin: Some(Some(n)),
            shared,
        },
    };
    Ok(SslConf {
        ssl_on,
        starttls,
        certificates: certificates.unwrap_or_default(),
        certificate_keys: keys.unwrap_or_default(),
        password_file: s.password_file.clone().or_else(|| p.password_file.clone()),
        passwords: s.passwords.clone().or_else(|| p.passwords.clone()),
        certificate_compression: pick(
            &s.certificate_compression,
            &p.certificate_compression,
            false,
        ),
        dhparam: s.dhparam.clone().or_else(|| p.dhparam.clone()),
        ecdh_curve: pick(&s.ecdh_curve, &p.ecdh_curve, "auto".to_string()),
        protocols: pick(
            &s.protocols,
            &p.protocols,
            SslProtocols {
                tlsv1_2: true,
                tlsv1_3: true,
                ..Default::default()
            },
        ),
        ciphers: pick(&s.ciphers, &p.ciphers, "HIGH:!aNULL:!MD5".to_string()),
        prefer_server_ciphers: pick(&s.prefer_server_ciphers, &p.prefer_server_ciphers, false),
        session_cache,
        session_tickets: pick(&s.session_tickets, &p.session_tickets, true),
        session_ticket_keys: pick(&s.session_ticket_keys, &p.session_ticket_keys, Vec::new()),
        session_timeout: pick(
            &s.session_timeout,
            &p.session_timeout,
            Duration::from_secs(300),
        ),
        verify_client,
        verify_depth: pick(&s.verify_depth, &p.verify_depth, 1),
        client_certificate,
        trusted_certificate,
        crl: s.crl.clone().or_else(|| p.crl.clone()),
        conf_commands: pick(&s.conf_commands, &p.conf_commands, Vec::new()),
        origin,
    })
}

fn auth_http(s: &SrvBuild, p: &SrvBuild) -> Result<AuthHttpConf, ConfMessage> {
    let Some((peer, host_header, uri)) = s.auth_peer.clone().or_else(|| p.auth_peer.clone()) else {
        return Err(emerg(format!(
            "no \"auth_http\" is defined for server in {}",
            at(&s.origin)
        )));
    };
    Ok(AuthHttpConf {
        peer,
        host_header,
        uri,
        timeout: pick(&s.auth_timeout, &p.auth_timeout, Duration::from_secs(60)),
        headers: pick(&s.auth_headers, &p.auth_headers, Vec::new()),
        pass_client_cert: pick(&s.auth_pass_client_cert, &p.auth_pass_client_cert, false),
    })
}

fn auth(
    own: &Option<AuthMethods>,
    parent: &Option<AuthMethods>,
    default: AuthMethods,
) -> AuthMethods {
    pick(own, parent, default)
}

/// Merge every server of a `mail {}` block, module by module.
pub fn mail(m: MailBuild, hostname: &str, _conf_prefix: &Path) -> Result<MailConf, ConfMessage> {
    let p = &m.main;
    // core
    let mut protocols = Vec::new();
    for s in &m.servers {
        let Some(proto) = s.protocol else {
            return Err(emerg(format!(
                "unknown mail protocol for server in {}",
                at(&s.origin)
            )));
        };
        protocols.push(proto);
    }
    // ssl
    let mut ssls = Vec::new();
    for s in &m.servers {
        ssls.push(ssl(s, p)?);
    }
    // auth_http (pop3, imap and smtp cannot fail)
    let mut auths = Vec::new();
    for s in &m.servers {
        auths.push(auth_http(s, p)?);
    }
    let mut servers = Vec::new();
    for ((s, protocol), (ssl, auth_http)) in m
        .servers
        .iter()
        .zip(protocols)
        .zip(ssls.into_iter().zip(auths))
    {
        let server_name = pick(&s.server_name, &p.server_name, String::new());
        let mut pop3_auth = auth(
            &s.pop3_auth,
            &p.pop3_auth,
            AuthMethods {
                plain: true,
                ..Default::default()
            },
        );
        if pop3_auth.plain {
            // USER/PASS comes with SASL PLAIN and LOGIN, as in nginx.
            pop3_auth.login = true;
        }
        servers.push(ServerConf {
            origin: s.origin.clone(),
            protocol,
            timeout: pick(&s.timeout, &p.timeout, Duration::from_secs(60)),
            server_name: if server_name.is_empty() {
                hostname.to_string()
            } else {
                server_name
            },
            error_log: s.error_log.clone().or_else(|| p.error_log.clone()),
            resolver: pick(&s.resolver, &p.resolver, None),
            resolver_timeout: pick(
                &s.resolver_timeout,
                &p.resolver_timeout,
                Duration::from_secs(30),
            ),
            max_errors: pick(&s.max_errors, &p.max_errors, 5),
            ssl,
            auth_http,
            proxy: ProxyConf {
                buffer_size: pick(&s.proxy_buffer, &p.proxy_buffer, PAGE_SIZE),
                timeout: pick(
                    &s.proxy_timeout,
                    &p.proxy_timeout,
                    Duration::from_secs(24 * 3600),
                ),
                pass_error_message: pick(
                    &s.proxy_pass_error_message,
                    &p.proxy_pass_error_message,
                    false,
                ),
                xclient: pick(&s.xclient, &p.xclient, true),
                smtp_auth: pick(&s.proxy_smtp_auth, &p.proxy_smtp_auth, false),
                proxy_protocol: pick(
                    &s.proxy_protocol,
                    &p.proxy_protocol,
                    ProxyProtocolVersion::Off,
                ),
            },
            imap: ImapConf {
                client_buffer: pick(&s.imap_client_buffer, &p.imap_client_buffer, PAGE_SIZE),
                capabilities: list(
                    &s.imap_capabilities,
                    &p.imap_capabilities,
                    &["IMAP4", "IMAP4rev1", "UIDPLUS"],
                ),
                auth: auth(
                    &s.imap_auth,
                    &p.imap_auth,
                    AuthMethods {
                        plain: true,
                        ..Default::default()
                    },
                ),
            },
            pop3: Pop3Conf {
                capabilities: list(
                    &s.pop3_capabilities,
                    &p.pop3_capabilities,
                    &["TOP", "USER", "UIDL"],
                ),
                auth: pop3_auth,
            },
            smtp: SmtpConf {
                client_buffer: pick(&s.smtp_client_buffer, &p.smtp_client_buffer, PAGE_SIZE),
                greeting_delay: pick(
                    &s.smtp_greeting_delay,
                    &p.smtp_greeting_delay,
                    Duration::ZERO,
                ),
                capabilities: list(&s.smtp_capabilities, &p.smtp_capabilities, &[]),
                auth: auth(
                    &s.smtp_auth,
                    &p.smtp_auth,
                    AuthMethods {
                        plain: true,
                        login: true,
                        ..Default::default()
                    },
                ),
            },
            set_real_ip_from: pick(&s.set_real_ip_from, &p.set_real_ip_from, Vec::new()),
        });
    }
    Ok(MailConf {
        servers,
        listens: m.listens,
        shm_zones: m.shm_zones,
    })
}

/// nginx's default user and group for a root master: `nobody`, and the
/// group `nobody` where it exists, `nogroup` otherwise (as its configure
/// script decides).
fn default_user() -> Result<User, ConfMessage> {
    let uid = super::sys::user_id("nobody").map_err(|e| {
        emerg(format!(
            "getpwnam(\"nobody\") failed{}",
            super::sys::errno_suffix(e)
        ))
    })?;
    let group = if super::sys::group_id("nobody").is_ok() {
        "nobody"
    } else {
        "nogroup"
    };
    let gid = super::sys::group_id(group).map_err(|e| {
        emerg(format!(
            "getgrnam(\"{group}\") failed{}",
            super::sys::errno_suffix(e)
        ))
    })?;
    Ok(User {
        name: "nobody".to_string(),
        uid,
        group: group.to_string(),
        gid,
    })
}

fn main_conf(
    ev: &Eval,
    c: &CoreBuild,
    opts: &LoadOptions,
    warnings: &mut Vec<ConfMessage>,
) -> Result<MainConf, ConfMessage> {
    let worker_processes = c.worker_processes.unwrap_or(1);
    let affinity = c.worker_cpu_affinity.clone().unwrap_or(CpuAffinity::None);
    if matches!(affinity, CpuAffinity::Masks(_))
        && c.affinity_masks != 1
        && c.affinity_masks != worker_processes
    {
        warnings.push(ConfMessage {
            level: Level::Warn,
            text: "the number of \"worker_processes\" is not equal to the number of \"worker_cpu_affinity\" masks, \
                   using last mask for remaining worker processes"
                .to_string(),
        });
    }
    let pid = ev.prefixed(c.pid.as_deref().unwrap_or(build_info::DEFAULT_PID_PATH));
    let user = match &c.user {
        Some(u) => Some(u.clone()),
        None if ev.euid == 0 => Some(default_user()?),
        None => None,
    };
    let lock_file = ev.prefixed(
        c.lock_file
            .as_deref()
            .unwrap_or(build_info::DEFAULT_LOCK_PATH),
    );
    let error_log = if c.error_log.is_empty() {
        vec![ErrorLog {
            target: opts.default_error_log.clone(),
            level: Level::Error,
        }]
    } else {
        c.error_log.clone()
    };
    let nonzero = |d: Option<Duration>| d.filter(|d| !d.is_zero());
    Ok(MainConf {
        daemon: c.daemon.unwrap_or(true),
        master_process: c.master_process.unwrap_or(true),
        worker_processes,
        pid: Some(pid),
        lock_file,
        error_log,
        user,
        worker_rlimit_nofile: c.worker_rlimit_nofile,
        worker_rlimit_core: c.worker_rlimit_core,
        working_directory: c.working_directory.as_ref().map(Into::into),
        worker_priority: c.worker_priority.unwrap_or(0),
        worker_cpu_affinity: affinity,
        worker_shutdown_timeout: nonzero(c.worker_shutdown_timeout),
        timer_resolution: nonzero(c.timer_resolution),
        env: c.env.clone(),
    })
}

fn events_conf(e: &EventsBuild) -> EventsConf {
    EventsConf {
        worker_connections: e.worker_connections.unwrap_or(512),
        multi_accept: e.multi_accept.unwrap_or(false),
        accept_mutex: e.accept_mutex.unwrap_or(false),
        accept_mutex_delay: e.accept_mutex_delay.unwrap_or(Duration::from_millis(500)),
        debug_connection: e.debug_connection.clone(),
        use_method: e.use_method.clone(),
    }
}

/// The checks nginx makes once everything is read, and the result.
pub fn finish(
    ev: Eval,
    files: Vec<ConfFile>,
    opts: &LoadOptions,
) -> Result<(Config, Vec<ConfMessage>), ConfMessage> {
    let mut warnings = ev.warnings.clone();
    let main = main_conf(&ev, &ev.core, opts, &mut warnings)?;
    let Some(events) = &ev.events else {
        return Err(emerg("no \"events\" section in configuration"));
    };
    let events = events_conf(events);
    Ok((
        Config {
            main,
            events,
            mail: ev.mail_conf,
            files,
        },
        warnings,
    ))
}
