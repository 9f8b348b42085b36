//! The mail TLS settings (nginx's mail ssl module), plus the `ssl on`
//! directive that nginx removed in 1.25.1 but old configurations still use.

use super::{
    arg, args, conf_path, enumerated, fail, flag, num, rv, sec, string, Builtin, Cmd, Eval, MAIL,
    SRV,
};
use crate::conf::model::{
    CertSource, KeySource, Passwords, ShmZone, SslProtocols, StartTls, VerifyClient,
};
use crate::conf::parser::Directive;
use crate::conf::{units, ConfMessage};

/// The smallest shared session cache nginx accepts: eight pages.
const MIN_SHARED_CACHE: usize = 8 * 4096;

pub const COMMANDS: &[Cmd] = &[
    Cmd {
        name: "ssl",
        contexts: MAIL | SRV,
        args: args::FLAG,
        handler: ssl_on,
    },
    Cmd {
        name: "starttls",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: starttls,
    },
    Cmd {
        name: "ssl_certificate",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: certificate,
    },
    Cmd {
        name: "ssl_certificate_key",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: certificate_key,
    },
    Cmd {
        name: "ssl_password_file",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: password_file,
    },
    Cmd {
        name: "ssl_certificate_compression",
        contexts: MAIL | SRV,
        args: args::FLAG,
        handler: |ev, d| flag(&mut ev.srv().certificate_compression, d),
    },
    Cmd {
        name: "ssl_dhparam",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| file(ev, d, |s| &mut s.dhparam),
    },
    Cmd {
        name: "ssl_ecdh_curve",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| string(&mut ev.srv().ecdh_curve, d),
    },
    Cmd {
        name: "ssl_protocols",
        contexts: MAIL | SRV,
        args: args::MORE1,
        handler: protocols,
    },
    Cmd {
        name: "ssl_ciphers",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| string(&mut ev.srv().ciphers, d),
    },
    Cmd {
        name: "ssl_prefer_server_ciphers",
        contexts: MAIL | SRV,
        args: args::FLAG,
        handler: |ev, d| flag(&mut ev.srv().prefer_server_ciphers, d),
    },
    Cmd {
        name: "ssl_session_cache",
        contexts: MAIL | SRV,
        args: args::TAKE12,
        handler: session_cache,
    },
    Cmd {
        name: "ssl_session_tickets",
        contexts: MAIL | SRV,
        args: args::FLAG,
        handler: |ev, d| flag(&mut ev.srv().session_tickets, d),
    },
    Cmd {
        name: "ssl_session_ticket_key",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: ticket_key,
    },
    Cmd {
        name: "ssl_session_timeout",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| sec(&mut ev.srv().session_timeout, d),
    },
    Cmd {
        name: "ssl_verify_client",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: verify_client,
    },
    Cmd {
        name: "ssl_verify_depth",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| num(&mut ev.srv().verify_depth, d),
    },
    Cmd {
        name: "ssl_client_certificate",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| file(ev, d, |s| &mut s.client_certificate),
    },
    Cmd {
        name: "ssl_trusted_certificate",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| file(ev, d, |s| &mut s.trusted_certificate),
    },
    Cmd {
        name: "ssl_crl",
        contexts: MAIL | SRV,
        args: args::TAKE1,
        handler: |ev, d| file(ev, d, |s| &mut s.crl),
    },
    Cmd {
        name: "ssl_conf_command",
        contexts: MAIL | SRV,
        args: args::TAKE2,
        handler: conf_command,
    },
];

fn file(
    ev: &mut Eval,
    d: &Directive,
    slot: fn(&mut super::SrvBuild) -> &mut Option<std::path::PathBuf>,
) -> Result<(), ConfMessage> {
    let mut value = slot(ev.srv()).take();
    let r = conf_path(ev, &mut value, d);
    *slot(ev.srv()) = value;
    r
}

/// `ssl on|off` as nginx 1.15–1.24 read it: deprecated, conflicts with
/// `starttls`.
fn ssl_on(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let mut value = ev.srv().ssl_on;
    flag(&mut value, d)?;
    ev.warn(
        "the \"ssl\" directive is deprecated, use the \"listen ... ssl\" directive instead",
        d,
    );
    let srv = ev.srv();
    srv.ssl_on = value;
    if value == Some(true) && srv.starttls.is_some_and(|s| s != StartTls::Off) {
        return Err(fail(d, "\"starttls\" directive conflicts with \"ssl on\""));
    }
    if !srv.ssl_listen {
        srv.ssl_origin = Some(d.origin.clone());
    }
    Ok(())
}

fn starttls(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let srv = ev.srv();
    enumerated(
        &mut srv.starttls,
        d,
        &[
            ("off", StartTls::Off),
            ("on", StartTls::On),
            ("only", StartTls::Only),
        ],
    )?;
    if srv.ssl_on == Some(true) && srv.starttls.is_some_and(|s| s != StartTls::Off) {
        return Err(fail(d, "\"ssl\" directive conflicts with \"starttls\""));
    }
    if !srv.ssl_listen {
        srv.ssl_origin = Some(d.origin.clone());
    }
    Ok(())
}

fn certificate(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let v = arg(d, 0);
    let src = match v.strip_prefix("data:") {
        Some(pem) => CertSource::Data(pem.to_string()),
        None => CertSource::File(ev.conf_prefixed(v)),
    };
    let srv = ev.srv();
    srv.certificates.get_or_insert_with(Vec::new).push(src);
    srv.certificate_names.push(v.to_string());
    Ok(())
}

fn certificate_key(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let v = arg(d, 0);
    let src = if let Some(pem) = v.strip_prefix("data:") {
        KeySource::Data(pem.to_string())
    } else if let Some(rest) = v.strip_prefix("engine:") {
        match rest.find(':') {
            Some(colon) => KeySource::Engine {
                engine: rest[..colon].to_string(),
                key_id: rest[colon + 1..].to_string(),
            },
            None => KeySource::Engine {
                engine: rest.to_string(),
                key_id: String::new(),
            },
        }
    } else if let Some(uri) = v.strip_prefix("store:") {
        KeySource::Store(uri.to_string())
    } else {
        KeySource::File(ev.conf_prefixed(v))
    };
    ev.srv()
        .certificate_keys
        .get_or_insert_with(Vec::new)
        .push(src);
    Ok(())
}

/// nginx reads the pass phrases while loading; so do we, once, and keep
/// them (a named pipe can be read only once).
fn password_file(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    if ev.srv().password_file.is_some() {
        return Err(rv(d, "is duplicate"));
    }
    let path = ev.conf_prefixed(arg(d, 0));
    let bytes = std::fs::read(&path).map_err(|e| {
        fail(
            d,
            format!(
                "open() \"{}\" failed{}",
                path.display(),
                crate::conf::sys::errno_suffix(e.raw_os_error().unwrap_or(0))
            ),
        )
    })?;
    let list = split_passwords(&bytes)
        .ok_or_else(|| fail(d, format!("too long line in \"{}\"", path.display())))?;
    let srv = ev.srv();
    srv.password_file = Some(path);
    srv.passwords = Some(Passwords(list));
    Ok(())
}

/// nginx's reading of a password file: one pass phrase a line, a trailing
/// CR dropped, empty lines skipped, a line of 4096 bytes or more refused;
/// a file without any pass phrase yields one empty pass phrase.
fn split_passwords(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    const LINE_MAX: usize = 4096;
    let mut list = Vec::new();
    for line in bytes.split(|&b| b == b'\n') {
        if line.len() >= LINE_MAX {
            return None;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.is_empty() {
            list.push(line.to_vec());
        }
    }
    if list.is_empty() {
        list.push(Vec::new());
    }
    Some(list)
}

const PROTOCOL_NAMES: [&str; 6] = ["SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];

fn protocols(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let current = ev.srv().protocols.unwrap_or_default();
    let set = super::bitmask(
        ev,
        d,
        &PROTOCOL_NAMES,
        current,
        |p: &mut SslProtocols, i| {
            let bit = match i {
                0 => &mut p.sslv2,
                1 => &mut p.sslv3,
                2 => &mut p.tlsv1,
                3 => &mut p.tlsv1_1,
                4 => &mut p.tlsv1_2,
                _ => &mut p.tlsv1_3,
            };
            !std::mem::replace(bit, true)
        },
    )?;
    ev.srv().protocols = Some(set);
    Ok(())
}

fn session_cache(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let mut builtin = ev.srv().session_cache;
    let mut shm = None;
    for v in &d.args {
        let invalid = || fail(d, format!("invalid session cache \"{v}\""));
        match v.as_str() {
            "off" => builtin = Some(Builtin::Off),
            "none" => builtin = Some(Builtin::None),
            "builtin" => builtin = Some(Builtin::Default),
            _ => {
                if let Some(n) = v.strip_prefix("builtin:").filter(|n| !n.is_empty()) {
                    let n = units::parse_number(n)
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(invalid)?;
                    builtin = Some(Builtin::Size(n));
                } else if let Some(spec) = v.strip_prefix("shared:").filter(|s| !s.is_empty()) {
                    let colon = spec.find(':').filter(|&c| c > 0).ok_or_else(invalid)?;
                    let size = units::parse_size(&spec[colon + 1..]).ok_or_else(invalid)?;
                    if size < MIN_SHARED_CACHE {
                        return Err(fail(d, format!("session cache \"{v}\" is too small")));
                    }
                    shm = Some(add_zone(ev, d, &spec[..colon], size)?);
                } else {
                    return Err(invalid());
                }
            }
        }
    }
    let srv = ev.srv();
    if let Some(z) = shm {
        srv.shm_zone = Some(z);
    }
    if srv.shm_zone.is_some() && builtin.is_none() {
        builtin = Some(Builtin::NoBuiltin);
    }
    srv.session_cache = builtin;
    Ok(())
}

/// Declare a shared zone; the same name must keep the same size.
fn add_zone(ev: &mut Eval, d: &Directive, name: &str, size: usize) -> Result<ShmZone, ConfMessage> {
    let mail = ev.mail.get_or_insert_with(Default::default);
    if let Some(z) = mail.shm_zones.iter().find(|z| z.name == name) {
        if z.size != size {
            return Err(fail(
                d,
                format!(
                    "the size {size} of shared memory zone \"{name}\" conflicts with already declared size {}",
                    z.size
                ),
            ));
        }
        return Ok(z.clone());
    }
    let z = ShmZone {
        name: name.to_string(),
        size,
    };
    mail.shm_zones.push(z.clone());
    Ok(z)
}

fn ticket_key(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let path = ev.conf_prefixed(arg(d, 0));
    ev.srv()
        .session_ticket_keys
        .get_or_insert_with(Vec::new)
        .push(path);
    Ok(())
}

fn verify_client(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    enumerated(
        &mut ev.srv().verify_client,
        d,
        &[
            ("off", VerifyClient::Off),
            ("on", VerifyClient::On),
            ("optional", VerifyClient::Optional),
            ("optional_no_ca", VerifyClient::OptionalNoCa),
        ],
    )
}

fn conf_command(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    ev.srv()
        .conf_commands
        .get_or_insert_with(Vec::new)
        .push((arg(d, 0).to_string(), arg(d, 1).to_string()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_passwords;

    #[test]
    fn password_lines() {
        let v = split_passwords(b"one\r\n\ntwo\nthree").unwrap();
        assert_eq!(v, vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
        assert_eq!(split_passwords(b"\n\n").unwrap(), vec![Vec::<u8>::new()]);
        assert!(split_passwords(&[b'x'; 4096]).is_none());
    }
}
