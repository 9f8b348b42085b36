//! The HTTP/1.0 request sent to the `auth_http` service.

use crate::conf::model::{AuthHttpConf, Protocol};

/// How the client authenticated, as far as auth_http is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// IMAP LOGIN, POP3 USER/PASS, SASL PLAIN.
    Plain,
    /// SASL LOGIN. nginx reports it as `plain` (both carry a clear-text
    /// password), so `Auth-Method: plain` is sent.
    Login,
    /// POP3 APOP: the password is the digest, the salt goes along.
    Apop,
    /// SASL CRAM-MD5: the password is the digest, the salt goes along.
    CramMd5,
    /// SASL EXTERNAL: a login and no password.
    External,
    /// SMTP `smtp_auth none`: no login; HELO, MAIL FROM and RCPT TO go along.
    None,
}

impl AuthMethod {
    /// The `Auth-Method` header value.
    pub fn header_value(self) -> &'static str {
        match self {
            AuthMethod::Plain | AuthMethod::Login => "plain",
            AuthMethod::Apop => "apop",
            AuthMethod::CramMd5 => "cram-md5",
            AuthMethod::External => "external",
            AuthMethod::None => "none",
        }
    }
}

/// Addresses from the client's PROXY protocol header (only when one was
/// received), as text and port numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProxyProtocolAddrs<'a> {
    pub src_addr: &'a [u8],
    pub src_port: u16,
    pub dst_addr: &'a [u8],
    pub dst_port: u16,
}

/// TLS facts about the client connection (only when it is TLS). Empty
/// fields are left out of the request, as nginx does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SslInfo<'a> {
    /// `TLSv1.3` etc.
    pub protocol: &'a [u8],
    /// OpenSSL's cipher name.
    pub cipher: &'a [u8],
    /// The next five are filled only when `ssl_verify_client` is not off:
    /// `SUCCESS`, `FAILED:reason` or `NONE`.
    pub verify: &'a [u8],
    /// Subject DN (RFC 2253), sent as is.
    pub subject: &'a [u8],
    /// Issuer DN (RFC 2253), sent as is.
    pub issuer: &'a [u8],
    /// Serial number in hex.
    pub serial: &'a [u8],
    /// SHA-1 fingerprint in hex.
    pub fingerprint: &'a [u8],
    /// The client certificate in PEM, raw; sent (escaped) only with
    /// `auth_http_pass_client_cert on`.
    pub raw_cert: &'a [u8],
}

/// What the session knows when it asks auth_http. All fields are the
/// session's bytes as they are; escaping is done here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthRequest<'a> {
    pub protocol: Protocol,
    pub method: AuthMethod,
    /// The login as the client gave it (empty for `smtp_auth none`).
    pub login: &'a [u8],
    /// The password, or the APOP / CRAM-MD5 digest (empty when none).
    pub passwd: &'a [u8],
    /// The APOP / CRAM-MD5 salt as the session keeps it, *with* its
    /// trailing CRLF (`<n.t@name>\r\n`); sent only for APOP and CRAM-MD5.
    pub salt: &'a [u8],
    /// Counts logins in this session, 1 for the first (nginx increments it
    /// before each auth_http round started by a client command, not on a
    /// WAIT re-ask).
    pub login_attempt: u64,
    /// The client address text (after realip), `Client-IP`.
    pub client_addr: &'a [u8],
    /// `Client-Host`, left out when empty. SMTP sessions pass the resolved
    /// name or nginx's `[UNAVAILABLE]` / `[TEMPUNAVAIL]` marks (which SMTP
    /// sets even without a resolver); IMAP / POP3 pass it only when a
    /// resolver found a name.
    pub client_host: &'a [u8],
    /// `Auth-SMTP-Helo`: the HELO / EHLO argument (method `None` only).
    pub smtp_helo: &'a [u8],
    /// `Auth-SMTP-From`: the whole MAIL command from the verb through its
    /// last argument (`MAIL FROM:<a@b> SIZE=10`), as nginx keeps it.
    pub smtp_from: &'a [u8],
    /// `Auth-SMTP-To`: the whole last RCPT command (`RCPT TO:<c@d>`).
    pub smtp_to: &'a [u8],
    pub proxy_protocol: Option<ProxyProtocolAddrs<'a>>,
    pub ssl: Option<SslInfo<'a>>,
}

impl AuthRequest<'_> {
    /// Whether nginx forgets the client's password once this request is
    /// built: for APOP and CRAM-MD5 with a salt the "password" is a digest
    /// that cannot log in to a backend, so the session must then treat its
    /// password as absent (auth_http has to send `Auth-Pass`, see
    /// [`super::AuthHttpResponse::outcome`]).
    pub fn clears_password(&self) -> bool {
        matches!(self.method, AuthMethod::Apop | AuthMethod::CramMd5) && !self.salt.is_empty()
    }

    /// Writes the whole request to `out` (cleared first), byte for byte as
    /// nginx builds it.
    ///
    /// Login, password and client certificate are escaped ([`escape`]);
    /// the salt, addresses, host and the SMTP lines are sent as they are
    /// (they cannot hold CR or LF).
    pub fn write_to(&self, conf: &AuthHttpConf, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.size_hint(conf));

        push_all(out, &[b"GET ", conf.uri.as_bytes(), b" HTTP/1.0\r\n"]);
        header(out, b"Host: ", conf.host_header.as_bytes());
        header(out, b"Auth-Method: ", self.method.header_value().as_bytes());
        out.extend_from_slice(b"Auth-User: ");
        escape(self.login, out);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(b"Auth-Pass: ");
        escape(self.passwd, out);
        out.extend_from_slice(b"\r\n");

        if self.clears_password() {
            // The salt already ends in CRLF.
            push_all(out, &[b"Auth-Salt: ", self.salt]);
        }

        header(out, b"Auth-Protocol: ", self.protocol.name().as_bytes());
        header(
            out,
            b"Auth-Login-Attempt: ",
            self.login_attempt.to_string().as_bytes(),
        );
        header(out, b"Client-IP: ", self.client_addr);
        if !self.client_host.is_empty() {
            header(out, b"Client-Host: ", self.client_host);
        }

        if let Some(pp) = &self.proxy_protocol {
            header(out, b"Proxy-Protocol-Addr: ", pp.src_addr);
            header(
                out,
                b"Proxy-Protocol-Port: ",
                pp.src_port.to_string().as_bytes(),
            );
            header(out, b"Proxy-Protocol-Server-Addr: ", pp.dst_addr);
            header(
                out,
                b"Proxy-Protocol-Server-Port: ",
                pp.dst_port.to_string().as_bytes(),
            );
        }

        if self.method == AuthMethod::None {
            header(out, b"Auth-SMTP-Helo: ", self.smtp_helo);
            header(out, b"Auth-SMTP-From: ", self.smtp_from);
            header(out, b"Auth-SMTP-To: ", self.smtp_to);
        }

        if let Some(ssl) = &self.ssl {
            out.extend_from_slice(b"Auth-SSL: on\r\n");
            let fields: [(&[u8], &[u8]); 7] = [
                (b"Auth-SSL-Protocol: ", ssl.protocol),
                (b"Auth-SSL-Cipher: ", ssl.cipher),
                (b"Auth-SSL-Verify: ", ssl.verify),
                (b"Auth-SSL-Subject: ", ssl.subject),
                (b"Auth-SSL-Issuer: ", ssl.issuer),
                (b"Auth-SSL-Serial: ", ssl.serial),
                (b"Auth-SSL-Fingerprint: ", ssl.fingerprint),
            ];
            for (name, value) in fields {
                if !value.is_empty() {
                    header(out, name, value);
                }
            }
            if conf.pass_client_cert && !ssl.raw_cert.is_empty() {
                out.extend_from_slice(b"Auth-SSL-Cert: ");
                escape(ssl.raw_cert, out);
                out.extend_from_slice(b"\r\n");
            }
        }

        for (name, value) in &conf.headers {
            push_all(out, &[name.as_bytes(), b": ", value.as_bytes(), b"\r\n"]);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// An upper bound of the request size, so that `write_to` allocates once.
    fn size_hint(&self, conf: &AuthHttpConf) -> usize {
        let ssl = self.ssl.map_or(0, |s| {
            s.protocol.len()
                + s.cipher.len()
                + s.verify.len()
                + s.subject.len()
                + s.issuer.len()
                + s.serial.len()
                + s.fingerprint.len()
                + 3 * s.raw_cert.len()
                + 256
        });
        let pp = self
            .proxy_protocol
            .map_or(0, |p| p.src_addr.len() + p.dst_addr.len() + 128);
        let extra: usize = conf
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum();
        512 + conf.uri.len()
            + conf.host_header.len()
            + 3 * (self.login.len() + self.passwd.len())
            + self.salt.len()
            + self.client_addr.len()
            + self.client_host.len()
            + self.smtp_helo.len()
            + self.smtp_from.len()
            + self.smtp_to.len()
            + ssl
            + pp
            + extra
    }
}

fn push_all(out: &mut Vec<u8>, parts: &[&[u8]]) {
    for part in parts {
        out.extend_from_slice(part);
    }
}

fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    push_all(out, &[name, value, b"\r\n"]);
}

/// Appends `text` to `out` with nginx's escaping for auth_http values:
/// control bytes (0x00-0x1f), space and `%` become `%XX` (upper-case hex);
/// everything else, bytes 0x7f-0xff included, is copied.
pub fn escape(text: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text {
        if b <= b' ' || b == b'%' {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        } else {
            out.push(b);
        }
    }
}
