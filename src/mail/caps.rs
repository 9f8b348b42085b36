//! Replies that depend only on the configuration, built once per server
//! when the acceptor is made (as nginx builds them at config merge): the
//! SMTP greeting and HELO line, and the CAPABILITY / CAPA / EHLO lists in
//! their plain, STARTTLS and "STARTTLS only" variants.

use crate::conf::{AuthMethods, ServerConf, StartTls};

/// The three variants of a capability list; which one a client sees
/// depends on `starttls` and on whether TLS is active yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilitySet {
    pub plain: Vec<u8>,
    pub starttls: Vec<u8>,
    pub starttls_only: Vec<u8>,
}

impl CapabilitySet {
    /// The list for a session: with TLS active (or `starttls off`) the
    /// plain one.
    pub fn pick(&self, starttls: StartTls, tls_active: bool) -> &[u8] {
        match (tls_active, starttls) {
            (false, StartTls::On) => &self.starttls,
            (false, StartTls::Only) => &self.starttls_only,
            _ => &self.plain,
        }
    }
}

/// Mechanism names in nginx's bit order (PLAIN, LOGIN, APOP, CRAM-MD5,
/// EXTERNAL); `None` where the protocol has no name for the method.
fn enabled_names<'a>(
    m: &AuthMethods,
    names: [Option<&'a str>; 5],
) -> impl Iterator<Item = &'a str> {
    let on = [m.plain, m.login, m.apop, m.cram_md5, m.external];
    names
        .into_iter()
        .zip(on)
        .filter_map(|(name, on)| if on { name } else { None })
}

/// IMAP `* CAPABILITY ...` lines.
pub fn imap(capabilities: &[String], auth: &AuthMethods) -> CapabilitySet {
    let mut base = b"* CAPABILITY".to_vec();
    for c in capabilities {
        base.push(b' ');
        base.extend_from_slice(c.as_bytes());
    }
    let before_auth = base.len();
    let names = [
        Some("AUTH=PLAIN"),
        Some("AUTH=LOGIN"),
        None,
        Some("AUTH=CRAM-MD5"),
        Some("AUTH=EXTERNAL"),
    ];
    for name in enabled_names(auth, names) {
        base.push(b' ');
        base.extend_from_slice(name.as_bytes());
    }
    let mut plain = base.clone();
    plain.extend_from_slice(b"\r\n");
    let mut starttls = base;
    starttls.extend_from_slice(b" STARTTLS\r\n");
    let mut starttls_only = plain[..before_auth].to_vec();
    starttls_only.extend_from_slice(b" STARTTLS LOGINDISABLED\r\n");
    CapabilitySet {
        plain,
        starttls,
        starttls_only,
    }
}

/// POP3 CAPA replies, and the AUTH method list.
pub fn pop3(capabilities: &[String], auth: &AuthMethods) -> (CapabilitySet, Vec<u8>) {
    let names = [
        Some("PLAIN"),
        Some("LOGIN"),
        None,
        Some("CRAM-MD5"),
        Some("EXTERNAL"),
    ];
    let mut plain = b"+OK Capability list follows\r\n".to_vec();
    for c in capabilities {
        plain.extend_from_slice(c.as_bytes());
        plain.extend_from_slice(b"\r\n");
    }
    plain.extend_from_slice(b"SASL");
    for name in enabled_names(auth, names) {
        plain.push(b' ');
        plain.extend_from_slice(name.as_bytes());
    }
    plain.extend_from_slice(b"\r\n");
    let mut starttls = plain.clone();
    starttls.extend_from_slice(b"STLS\r\n.\r\n");
    plain.extend_from_slice(b".\r\n");

    let mut starttls_only = b"+OK Capability list follows\r\n".to_vec();
    for c in capabilities {
        if c.eq_ignore_ascii_case("USER") {
            continue;
        }
        starttls_only.extend_from_slice(c.as_bytes());
        starttls_only.extend_from_slice(b"\r\n");
    }
    starttls_only.extend_from_slice(b"STLS\r\n.\r\n");

    let mut methods = b"+OK methods supported:\r\n".to_vec();
    for name in enabled_names(auth, names) {
        methods.extend_from_slice(name.as_bytes());
        methods.extend_from_slice(b"\r\n");
    }
    methods.extend_from_slice(b".\r\n");
    (
        CapabilitySet {
            plain,
            starttls,
            starttls_only,
        },
        methods,
    )
}

/// SMTP EHLO replies: `250-name`, one `250-cap` per capability, then
/// `250 AUTH ...` when any mechanism is enabled; the last line uses a
/// space. The STARTTLS variants insert `250 STARTTLS` as the last line
/// (before AUTH is dropped, for "only").
pub fn smtp(server_name: &str, capabilities: &[String], auth: &AuthMethods) -> CapabilitySet {
    let mut lines: Vec<Vec<u8>> = vec![server_name.as_bytes().to_vec()];
    for c in capabilities {
        lines.push(c.as_bytes().to_vec());
    }
    let without_auth = lines.len();
    let names = [
        Some("PLAIN"),
        Some("LOGIN"),
        None,
        Some("CRAM-MD5"),
        Some("EXTERNAL"),
    ];
    let mut auth_line = b"AUTH".to_vec();
    let mut any = false;
    for name in enabled_names(auth, names) {
        auth_line.push(b' ');
        auth_line.extend_from_slice(name.as_bytes());
        any = true;
    }
    if any {
        lines.push(auth_line);
    }
    let join = |lines: &[Vec<u8>]| {
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            out.extend_from_slice(if i + 1 == lines.len() {
                b"250 "
            } else {
                b"250-"
            });
            out.extend_from_slice(l);
            out.extend_from_slice(b"\r\n");
        }
        out
    };
    let plain = join(&lines);
    let mut with_tls = lines.clone();
    with_tls.push(b"STARTTLS".to_vec());
    let starttls = join(&with_tls);
    let mut only = lines[..without_auth].to_vec();
    only.push(b"STARTTLS".to_vec());
    let starttls_only = join(&only);
    CapabilitySet {
        plain,
        starttls,
        starttls_only,
    }
}

/// Everything precomputed for one server's front end.
#[derive(Debug, Clone)]
pub struct Replies {
    pub imap: CapabilitySet,
    pub pop3: CapabilitySet,
    pub pop3_auth: Vec<u8>,
    pub smtp: CapabilitySet,
    /// `220 <server_name> ESMTP ready`
    pub smtp_greeting: Vec<u8>,
    /// `250 <server_name>` (HELO)
    pub smtp_helo: Vec<u8>,
}

impl Replies {
    pub fn new(conf: &ServerConf) -> Replies {
        let (pop3, pop3_auth) = pop3(&conf.pop3.capabilities, &conf.pop3.auth);
        Replies {
            imap: imap(&conf.imap.capabilities, &conf.imap.auth),
            pop3,
            pop3_auth,
            smtp: smtp(&conf.server_name, &conf.smtp.capabilities, &conf.smtp.auth),
            smtp_greeting: format!("220 {} ESMTP ready\r\n", conf.server_name).into_bytes(),
            smtp_helo: format!("250 {}\r\n", conf.server_name).into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn methods(plain: bool, login: bool, cram: bool, ext: bool) -> AuthMethods {
        AuthMethods {
            plain,
            login,
            apop: true,
            cram_md5: cram,
            external: ext,
            none: false,
        }
    }

    fn s(v: &[u8]) -> &str {
        std::str::from_utf8(v).unwrap()
    }

    #[test]
    fn imap_variants() {
        let c = imap(
            &caps(&["IMAP4", "IMAP4rev1", "UIDPLUS"]),
            &methods(true, true, false, false),
        );
        assert_eq!(
            s(&c.plain),
            "* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN AUTH=LOGIN\r\n"
        );
        assert_eq!(
            s(&c.starttls),
            "* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN AUTH=LOGIN STARTTLS\r\n"
        );
        assert_eq!(
            s(&c.starttls_only),
            "* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS STARTTLS LOGINDISABLED\r\n"
        );
        assert_eq!(c.pick(StartTls::On, true), &c.plain[..]);
    }

    #[test]
    fn pop3_variants() {
        let (c, m) = pop3(
            &caps(&["TOP", "USER", "UIDL"]),
            &methods(true, true, true, false),
        );
        assert_eq!(
            s(&c.plain),
            "+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\nSASL PLAIN LOGIN CRAM-MD5\r\n.\r\n"
        );
        assert_eq!(
            s(&c.starttls),
            "+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\nSASL PLAIN LOGIN CRAM-MD5\r\nSTLS\r\n.\r\n"
        );
        assert_eq!(
            s(&c.starttls_only),
            "+OK Capability list follows\r\nTOP\r\nUIDL\r\nSTLS\r\n.\r\n"
        );
        assert_eq!(
            s(&m),
            "+OK methods supported:\r\nPLAIN\r\nLOGIN\r\nCRAM-MD5\r\n.\r\n"
        );
    }

    #[test]
    fn smtp_variants() {
        let c = smtp(
            "mx",
            &caps(&["SIZE 100", "PIPELINING"]),
            &methods(true, true, false, false),
        );
        assert_eq!(
            s(&c.plain),
            "250-mx\r\n250-SIZE 100\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n"
        );
        assert_eq!(
            s(&c.starttls),
            "250-mx\r\n250-SIZE 100\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"
        );
        assert_eq!(
            s(&c.starttls_only),
            "250-mx\r\n250-SIZE 100\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
        );
        let none = smtp("mx", &[], &AuthMethods::default());
        assert_eq!(s(&none.plain), "250 mx\r\n");
        assert_eq!(s(&none.starttls), "250-mx\r\n250 STARTTLS\r\n");
        assert_eq!(s(&none.starttls_only), "250-mx\r\n250 STARTTLS\r\n");
    }
}
