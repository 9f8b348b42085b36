//! SASL for the mail front ends: AUTH / AUTHENTICATE mechanism selection,
//! PLAIN, LOGIN, CRAM-MD5 and EXTERNAL decoding, and the APOP / CRAM-MD5
//! salt, all as nginx 1.31.5 does them.
//!
//! The decoders update a session's [`Credentials`] exactly as nginx updates
//! its login and password, including on some failures (see
//! [`auth_cram_md5`]). On failure they return a [`SaslError`] whose
//! [`log_message`](SaslError::log_message) the session logs at `info`
//! before answering as for an invalid command.
//!
//! Base64 follows nginx's decoder: only `A-Z a-z 0-9 + /` up to the first
//! `=`, anything after the first `=` ignored, padding optional, a length of
//! 1 modulo 4 rejected. The bytes themselves are decoded by OpenSSL.

use openssl::base64;

/// Login and password gathered before auth_http (nginx's `s->login` and
/// `s->passwd`). Kept for the whole session: nginx does not clear them
/// between attempts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub login: Vec<u8>,
    pub passwd: Vec<u8>,
}

impl Credentials {
    fn set_login(&mut self, login: &[u8]) {
        self.login.clear();
        self.login.extend_from_slice(login);
    }

    fn set_passwd(&mut self, passwd: &[u8]) {
        self.passwd.clear();
        self.passwd.extend_from_slice(passwd);
    }
}

/// A mechanism request from `AUTH` (POP3, SMTP) or `AUTHENTICATE` (IMAP),
/// with its initial response when one was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism<'a> {
    /// `LOGIN`: ask for the username (`VXNlcm5hbWU6`).
    Login,
    /// `LOGIN <base64 username>`: decode with [`auth_login_username`], then
    /// ask for the password (`UGFzc3dvcmQ6`).
    LoginUsername(&'a [u8]),
    /// `PLAIN`: send an empty challenge.
    Plain,
    /// `PLAIN <base64>`: decode with [`auth_plain`].
    PlainInitial(&'a [u8]),
    /// `CRAM-MD5`: rejected unless enabled; else send the salt challenge
    /// ([`cram_md5_challenge`]).
    CramMd5,
    /// `EXTERNAL`: rejected unless enabled; else ask for the username.
    External,
    /// `EXTERNAL <base64>`: rejected unless enabled; decode with
    /// [`auth_external`].
    ExternalInitial(&'a [u8]),
}

/// Picks the mechanism from the arguments of AUTH / AUTHENTICATE; `None`
/// means an invalid command. The caller first rejects the command when
/// `starttls only` applies and TLS is not yet active, and handles POP3's
/// and SMTP's argument-less AUTH itself.
///
/// As in nginx, PLAIN and LOGIN are accepted whatever `*_auth` enables
/// (the setting only shapes the capability lists); CRAM-MD5 and EXTERNAL
/// must be checked by the caller.
pub fn parse_mechanism<'a>(args: &[&'a [u8]]) -> Option<Mechanism<'a>> {
    let (&name, rest) = args.split_first()?;
    if name.eq_ignore_ascii_case(b"LOGIN") {
        return match rest {
            [] => Some(Mechanism::Login),
            [user] => Some(Mechanism::LoginUsername(user)),
            _ => None,
        };
    }
    if name.eq_ignore_ascii_case(b"PLAIN") {
        return match rest {
            [] => Some(Mechanism::Plain),
            [initial] => Some(Mechanism::PlainInitial(initial)),
            _ => None,
        };
    }
    if name.eq_ignore_ascii_case(b"CRAM-MD5") {
        return rest.is_empty().then_some(Mechanism::CramMd5);
    }
    if name.eq_ignore_ascii_case(b"EXTERNAL") {
        return match rest {
            [] => Some(Mechanism::External),
            [initial] => Some(Mechanism::ExternalInitial(initial)),
            _ => None,
        };
    }
    None
}

/// Why a SASL response was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslError {
    PlainBase64,
    PlainLogin,
    PlainPassword,
    LoginBase64,
    CramMd5Base64,
    CramMd5Hash,
    ExternalBase64,
}

impl SaslError {
    /// nginx's `info` log line for this failure.
    pub const fn log_message(self) -> &'static str {
        match self {
            SaslError::PlainBase64 => "client sent invalid base64 encoding in AUTH PLAIN command",
            SaslError::PlainLogin => "client sent invalid login in AUTH PLAIN command",
            SaslError::PlainPassword => "client sent invalid password in AUTH PLAIN command",
            SaslError::LoginBase64 => "client sent invalid base64 encoding in AUTH LOGIN command",
            SaslError::CramMd5Base64 => {
                "client sent invalid base64 encoding in AUTH CRAM-MD5 command"
            }
            SaslError::CramMd5Hash => "client sent invalid CRAM-MD5 hash in AUTH CRAM-MD5 command",
            SaslError::ExternalBase64 => {
                "client sent invalid base64 encoding in AUTH EXTERNAL command"
            }
        }
    }
}

impl std::fmt::Display for SaslError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.log_message())
    }
}

impl std::error::Error for SaslError {}

/// The base64 alphabet nginx's decoder accepts.
const fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Decodes base64 the way nginx does (see the module docs); `None` when
/// nginx would reject the input.
pub fn decode_base64(src: &[u8]) -> Option<Vec<u8>> {
    let data = match src.iter().position(|&b| b == b'=') {
        Some(eq) => &src[..eq],
        None => src,
    };
    if !data.iter().copied().all(is_base64) || data.len() % 4 == 1 {
        return None;
    }
    if data.is_empty() {
        return Some(Vec::new());
    }
    // OpenSSL wants whole quantums: pad what nginx accepts unpadded.
    let mut padded = String::with_capacity(data.len() + 3);
    padded.extend(data.iter().map(|&b| char::from(b)));
    while padded.len() % 4 != 0 {
        padded.push('=');
    }
    base64::decode_block(&padded).ok()
}

/// Encodes base64 with padding (challenges).
pub fn encode_base64(src: &[u8]) -> String {
    base64::encode_block(src)
}

/// Decodes an AUTH PLAIN response: `authzid NUL login NUL password`. The
/// authorization identity is skipped unchecked; the password may contain
/// further NULs. On success the login and password are replaced.
pub fn auth_plain(response: &[u8], creds: &mut Credentials) -> Result<(), SaslError> {
    let plain = decode_base64(response).ok_or(SaslError::PlainBase64)?;
    let after_authzid = match plain.iter().position(|&b| b == 0) {
        Some(nul) if nul + 1 < plain.len() => nul + 1,
        _ => return Err(SaslError::PlainLogin),
    };
    let rest = &plain[after_authzid..];
    let nul = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(SaslError::PlainPassword)?;
    creds.set_login(&rest[..nul]);
    creds.set_passwd(&rest[nul + 1..]);
    Ok(())
}

/// Decodes the AUTH LOGIN username step; replaces the login.
pub fn auth_login_username(response: &[u8], creds: &mut Credentials) -> Result<(), SaslError> {
    let login = decode_base64(response).ok_or(SaslError::LoginBase64)?;
    creds.login = login;
    Ok(())
}

/// Decodes the AUTH LOGIN password step; replaces the password.
pub fn auth_login_password(response: &[u8], creds: &mut Credentials) -> Result<(), SaslError> {
    let passwd = decode_base64(response).ok_or(SaslError::LoginBase64)?;
    creds.passwd = passwd;
    Ok(())
}

/// Length of a CRAM-MD5 digest in hex.
pub const CRAM_MD5_DIGEST_LEN: usize = 32;

/// Decodes a CRAM-MD5 response `user SP hexdigest`; on success the login is
/// the user and the password the 32-character digest (not checked for hex),
/// to be sent to auth_http with the salt.
///
/// nginx quirks kept: the login is replaced by the decoded response (cut at
/// the first space) even when the digest is then rejected, and a response
/// without a space keeps the previous password, so a 32-byte password left
/// from an earlier attempt passes the length check.
pub fn auth_cram_md5(response: &[u8], creds: &mut Credentials) -> Result<(), SaslError> {
    let decoded = decode_base64(response).ok_or(SaslError::CramMd5Base64)?;
    match decoded.iter().position(|&b| b == b' ') {
        Some(space) => {
            creds.set_login(&decoded[..space]);
            creds.set_passwd(&decoded[space + 1..]);
        }
        None => creds.login = decoded,
    }
    if creds.passwd.len() != CRAM_MD5_DIGEST_LEN {
        return Err(SaslError::CramMd5Hash);
    }
    Ok(())
}

/// Decodes an AUTH EXTERNAL response: the (possibly empty) authorization
/// identity becomes the login. The certificate itself is checked by TLS
/// and reported to auth_http; nginx does not compare the two.
pub fn auth_external(response: &[u8], creds: &mut Credentials) -> Result<(), SaslError> {
    let login = decode_base64(response).ok_or(SaslError::ExternalBase64)?;
    creds.login = login;
    Ok(())
}

/// The APOP / CRAM-MD5 salt `<random.time@server_name>` followed by CRLF,
/// as nginx builds it (the CRLF is part of the salt: POP3 appends it to the
/// greeting, and auth_http gets it in `Auth-Salt`).
///
/// `random` is a non-negative 31-bit number (nginx uses `random()`, see
/// [`salt_random`]), `unix_time` the current time in seconds.
pub fn make_salt(random: u32, unix_time: i64, server_name: &[u8]) -> Vec<u8> {
    let mut salt = Vec::with_capacity(server_name.len() + 36);
    salt.extend_from_slice(format!("<{random}.{unix_time}@").as_bytes());
    salt.extend_from_slice(server_name);
    salt.extend_from_slice(b">\r\n");
    salt
}

/// A random number in nginx's `random()` range (0 to 2^31 - 1) for
/// [`make_salt`], from OpenSSL's generator.
pub fn salt_random() -> u32 {
    let mut bytes = [0u8; 4];
    // rand_bytes only fails when the generator cannot be seeded; the salt
    // is not secret, so fall back to zero rather than failing the session.
    if openssl::rand::rand_bytes(&mut bytes).is_err() {
        return 0;
    }
    u32::from_ne_bytes(bytes) & 0x7fff_ffff
}

/// The CRAM-MD5 challenge line: `prefix` (`"+ "` for IMAP and POP3,
/// `"334 "` for SMTP), the salt without its CRLF in base64, then CRLF.
pub fn cram_md5_challenge(prefix: &[u8], salt: &[u8]) -> Vec<u8> {
    let bare = salt.strip_suffix(b"\r\n").unwrap_or(salt);
    let encoded = encode_base64(bare);
    let mut line = Vec::with_capacity(prefix.len() + encoded.len() + 2);
    line.extend_from_slice(prefix);
    line.extend_from_slice(encoded.as_bytes());
    line.extend_from_slice(b"\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> Vec<u8> {
        encode_base64(s).into_bytes()
    }

    #[test]
    fn base64_like_nginx() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"", Some(b"")),
            (b"=", Some(b"")),
            (b"==garbage!", Some(b"")),
            (b"dGVzdA==", Some(b"test")),
            (b"dGVzdA", Some(b"test")),
            (b"dGVzdA=", Some(b"test")),
            (b"dGVzdA==!!", Some(b"test")),
            (b"dGVzdA==dGVzdA==", Some(b"test")),
            (b"dGVzdDE=", Some(b"test1")),
            (b"dGVzdDE", Some(b"test1")),
            (b"dGVzdDEy", Some(b"test12")),
            (b"QR==", Some(b"A")),
            (b"+/+/", Some(b"\xfb\xff\xbf")),
            (b"dGVzd", None),
            (b"d", None),
            (b"dGVz dA==", None),
            (b" dGVzdA==", None),
            (b"dGVzdA== ", Some(b"test")),
            (b"dGVz\r\n", None),
            (b"dGVz-A==", None),
            (b"dGVz_A==", None),
            (b"*", None),
            (b"\xff", None),
        ];
        for &(input, expected) in cases {
            assert_eq!(
                decode_base64(input).as_deref(),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn mechanisms() {
        use Mechanism::*;
        let cases: &[(&[&[u8]], Option<Mechanism>)] = &[
            (&[], None),
            (&[b"LOGIN"], Some(Login)),
            (&[b"login", b"dQ=="], Some(LoginUsername(b"dQ=="))),
            (&[b"LOGIN", b"a", b"b"], None),
            (&[b"Plain"], Some(Plain)),
            (&[b"PLAIN", b"x"], Some(PlainInitial(b"x"))),
            (&[b"PLAIN", b"x", b"y"], None),
            (&[b"cram-md5"], Some(CramMd5)),
            (&[b"CRAM-MD5", b"x"], None),
            (&[b"EXTERNAL"], Some(External)),
            (&[b"external", b"="], Some(ExternalInitial(b"="))),
            (&[b"EXTERNAL", b"a", b"b"], None),
            (&[b"GSSAPI"], None),
            (&[b"XOAUTH2", b"x"], None),
            (&[b""], None),
        ];
        for (args, expected) in cases {
            assert_eq!(parse_mechanism(args), *expected, "{args:?}");
        }
    }

    #[test]
    fn plain() {
        type Expected = Result<(&'static [u8], &'static [u8]), SaslError>;
        let cases: &[(&[u8], Expected)] = &[
            (b"\0bob\0pw", Ok((b"bob", b"pw"))),
            (b"admin\0bob\0pw", Ok((b"bob", b"pw"))),
            (b"\0bob\0p\0w", Ok((b"bob", b"p\0w"))),
            (b"\0\0", Ok((b"", b""))),
            (b"\0bob\0", Ok((b"bob", b""))),
            (b"bob", Err(SaslError::PlainLogin)),
            (b"bob\0", Err(SaslError::PlainLogin)),
            (b"", Err(SaslError::PlainLogin)),
            (b"\0bob", Err(SaslError::PlainPassword)),
            (b"a\0bob", Err(SaslError::PlainPassword)),
        ];
        for &(raw, expected) in cases {
            let mut creds = Credentials {
                login: b"old".to_vec(),
                passwd: b"oldpw".to_vec(),
            };
            let got = auth_plain(&b64(raw), &mut creds);
            match expected {
                Ok((login, passwd)) => {
                    assert_eq!(got, Ok(()), "{raw:?}");
                    assert_eq!(creds.login, login);
                    assert_eq!(creds.passwd, passwd);
                }
                Err(e) => {
                    assert_eq!(got, Err(e), "{raw:?}");
                    assert_eq!(creds.login, b"old");
                    assert_eq!(creds.passwd, b"oldpw");
                }
            }
        }
        let mut creds = Credentials::default();
        assert_eq!(auth_plain(b"*", &mut creds), Err(SaslError::PlainBase64));
        assert_eq!(
            SaslError::PlainBase64.to_string(),
            "client sent invalid base64 encoding in AUTH PLAIN command"
        );
    }

    #[test]
    fn login_steps() {
        let mut creds = Credentials::default();
        assert_eq!(auth_login_username(b"Ym9i", &mut creds), Ok(()));
        assert_eq!(auth_login_password(b"cHc=", &mut creds), Ok(()));
        assert_eq!(creds.login, b"bob");
        assert_eq!(creds.passwd, b"pw");
        assert_eq!(
            auth_login_username(b"Ym9", &mut creds),
            Ok(()),
            "unpadded input decodes"
        );
        assert_eq!(creds.login, b"bo");
        assert_eq!(
            auth_login_password(b"a", &mut creds),
            Err(SaslError::LoginBase64)
        );
        assert_eq!(creds.passwd, b"pw", "kept on failure");
        assert_eq!(
            auth_login_username(b"!", &mut creds),
            Err(SaslError::LoginBase64)
        );
        assert_eq!(creds.login, b"bo");
        assert_eq!(
            SaslError::LoginBase64.log_message(),
            "client sent invalid base64 encoding in AUTH LOGIN command"
        );
    }

    #[test]
    fn cram_md5() {
        let digest = b"0123456789abcdef0123456789abcdef";
        let mut response = b"bob ".to_vec();
        response.extend_from_slice(digest);
        let mut creds = Credentials::default();
        assert_eq!(auth_cram_md5(&b64(&response), &mut creds), Ok(()));
        assert_eq!(creds.login, b"bob");
        assert_eq!(creds.passwd, digest);

        // Split at the first space; the digest is not checked for hex.
        let mut creds = Credentials::default();
        let odd_digest = format!("b {}", "c".repeat(30));
        let odd = format!("a {odd_digest}");
        assert_eq!(auth_cram_md5(&b64(odd.as_bytes()), &mut creds), Ok(()));
        assert_eq!(creds.login, b"a");
        assert_eq!(creds.passwd, odd_digest.as_bytes());

        // Wrong length: the login is still replaced.
        let mut creds = Credentials::default();
        assert_eq!(
            auth_cram_md5(&b64(b"eve short"), &mut creds),
            Err(SaslError::CramMd5Hash)
        );
        assert_eq!(creds.login, b"eve");
        assert_eq!(creds.passwd, b"short");

        // No space: the previous password is kept, and passes when it is
        // 32 bytes long.
        let mut creds = Credentials {
            login: b"old".to_vec(),
            passwd: digest.to_vec(),
        };
        assert_eq!(auth_cram_md5(&b64(b"mallory"), &mut creds), Ok(()));
        assert_eq!(creds.login, b"mallory");
        assert_eq!(creds.passwd, digest);
        let mut creds = Credentials::default();
        assert_eq!(
            auth_cram_md5(&b64(b"mallory"), &mut creds),
            Err(SaslError::CramMd5Hash)
        );
        assert_eq!(creds.login, b"mallory");

        let mut creds = Credentials::default();
        assert_eq!(
            auth_cram_md5(b"*", &mut creds),
            Err(SaslError::CramMd5Base64)
        );
        assert_eq!(
            SaslError::CramMd5Hash.log_message(),
            "client sent invalid CRAM-MD5 hash in AUTH CRAM-MD5 command"
        );
        assert_eq!(
            SaslError::CramMd5Base64.log_message(),
            "client sent invalid base64 encoding in AUTH CRAM-MD5 command"
        );
    }

    #[test]
    fn external() {
        let mut creds = Credentials::default();
        assert_eq!(auth_external(b"Ym9i", &mut creds), Ok(()));
        assert_eq!(creds.login, b"bob");
        assert_eq!(auth_external(b"=", &mut creds), Ok(()));
        assert_eq!(creds.login, b"");
        assert_eq!(
            auth_external(b"Y", &mut creds),
            Err(SaslError::ExternalBase64)
        );
        assert_eq!(
            SaslError::ExternalBase64.log_message(),
            "client sent invalid base64 encoding in AUTH EXTERNAL command"
        );
        assert_eq!(
            SaslError::PlainLogin.log_message(),
            "client sent invalid login in AUTH PLAIN command"
        );
        assert_eq!(
            SaslError::PlainPassword.log_message(),
            "client sent invalid password in AUTH PLAIN command"
        );
    }

    #[test]
    fn salt_and_challenge() {
        let salt = make_salt(1804289383, 1700000000, b"mail.example.com");
        assert_eq!(salt, b"<1804289383.1700000000@mail.example.com>\r\n");
        let challenge = cram_md5_challenge(b"+ ", &salt);
        let expected = format!(
            "+ {}\r\n",
            encode_base64(b"<1804289383.1700000000@mail.example.com>")
        );
        assert_eq!(challenge, expected.as_bytes());
        assert!(
            challenge.starts_with(b"+ PDE4MDQyODkzODMuMTcwMDAwMDAwMEBtYWlsLmV4YW1wbGUuY29tPg==")
        );
        let smtp = cram_md5_challenge(b"334 ", &make_salt(0, 0, b""));
        assert_eq!(smtp, b"334 PDAuMEA+\r\n");
        for _ in 0..64 {
            assert!(salt_random() < 0x8000_0000);
        }
    }
}
