//! Logging in to the backend, as nginx's mail proxy module: POP3
//! USER/PASS, IMAP LOGIN with literals, SMTP EHLO/HELO, XCLIENT, AUTH
//! PLAIN (`proxy_smtp_auth`) and the MAIL/RCPT replay of `smtp_auth none`.
//! Sans-io: the session reads backend bytes into the relay's
//! backend-to-client buffer and calls [`Login::on_input`]; the machine
//! checks the response, writes the next command to `out`, and in the end
//! says what the client gets (the backend's last reply, or `235 2.0.0 OK`).

use super::front::{AuthMethod, Shared};
use crate::conf::Protocol;

/// What the login needs besides the session's [`Shared`] data.
#[derive(Debug, Clone)]
pub struct LoginConf {
    pub protocol: Protocol,
    pub server_name: String,
    pub xclient: bool,
    pub smtp_auth: bool,
    pub pass_error_message: bool,
    /// The client address as logged (`127.0.0.1`), for XCLIENT ADDR.
    pub client_addr: String,
    pub client_ipv6: bool,
    /// Client host name for XCLIENT NAME (`[UNAVAILABLE]` without a
    /// resolver).
    pub client_host: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pop3Start,
    Pop3User,
    Pop3Pass,
    ImapStart,
    ImapLogin,
    ImapUser,
    ImapPasswd,
    SmtpStart,
    SmtpHelo,
    SmtpHeloXclient,
    SmtpHeloFrom,
    SmtpHeloAuth,
    SmtpXclient,
    SmtpXclientFrom,
    SmtpXclientHelo,
    SmtpXclientAuth,
    SmtpAuthPlain,
    SmtpFrom,
    SmtpTo,
}

/// What to do after backend input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStep {
    /// Need more of the response.
    Again,
    /// Send `out` (one command line) to the backend; the response buffer
    /// is to be emptied. `action` is the log action for it.
    Send { action: &'static str },
    /// Logged in: relay from now on. `buffer_len` bytes of the response
    /// buffer (rewritten in place when needed) go to the client first.
    LoggedIn { buffer_len: usize },
    /// Failed; see [`LoginError`].
    Failed(LoginError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// `upstream sent too long response line: "…"` (error); internal
    /// server error to the client.
    TooLong(String),
    /// `upstream sent invalid response: "…"` at error level, internal
    /// server error to the client (`proxy_pass_error_message off`).
    Invalid(String),
    /// `proxy_pass_error_message on`: the same text logged at info, and
    /// the backend's response (`reply`) goes to the client before closing.
    InvalidPassed { line: String, reply: Vec<u8> },
    /// `no password available` (error): proxy_smtp_auth without one.
    NoPassword,
}

const SMTP_AUTH_OK: &[u8] = b"235 2.0.0 OK\r\n";

#[derive(Debug)]
pub struct Login {
    conf: LoginConf,
    state: State,
}

/// Result of checking a response in the buffer.
enum Check {
    Again,
    Ok,
    /// Not the expected reply; the offset where the checked line starts.
    Invalid(usize),
}

impl Login {
    pub fn new(conf: LoginConf) -> Login {
        let state = match conf.protocol {
            Protocol::Pop3 => State::Pop3Start,
            Protocol::Imap => State::ImapStart,
            Protocol::Smtp => State::SmtpStart,
        };
        Login { conf, state }
    }

    /// Check the response in `whole[..filled]` (`whole` is the response
    /// buffer) and decide the next step; the next command line, if any,
    /// is appended to `out`.
    pub fn on_input(
        &mut self,
        whole: &mut [u8],
        filled: usize,
        sh: &Shared,
        out: &mut Vec<u8>,
    ) -> LoginStep {
        let capacity = whole.len();
        let last = filled.min(capacity);
        if last < 4 {
            return LoginStep::Again;
        }
        if whole[last - 2] != b'\r' || whole[last - 1] != b'\n' {
            if last >= capacity {
                // nginx prints up to the last byte, which it overwrites.
                let text = nul_terminated(&whole[..last - 1]);
                return LoginStep::Failed(LoginError::TooLong(text));
            }
            return LoginStep::Again;
        }
        let buf = &mut whole[..last];
        match self.check(buf, sh) {
            Check::Again => LoginStep::Again,
            Check::Invalid(p) => {
                if !self.conf.pass_error_message {
                    let text = nul_terminated(&buf[p..last - 2]);
                    LoginStep::Failed(LoginError::Invalid(text))
                } else {
                    LoginStep::Failed(LoginError::InvalidPassed {
                        line: String::from_utf8_lossy(&buf[p..last - 2]).into_owned(),
                        reply: buf.to_vec(),
                    })
                }
            }
            Check::Ok => self.next(whole, last, sh, out),
        }
    }

    fn check(&self, b: &[u8], sh: &Shared) -> Check {
        let last = b.len();
        match self.conf.protocol {
            Protocol::Pop3 => {
                if b.starts_with(b"+OK") {
                    return Check::Ok;
                }
                Check::Invalid(0)
            }
            Protocol::Imap => match self.state {
                State::ImapStart => {
                    if b.starts_with(b"* OK") {
                        return Check::Ok;
                    }
                    Check::Invalid(0)
                }
                State::ImapLogin | State::ImapUser => {
                    if b[0] == b'+' {
                        return Check::Ok;
                    }
                    Check::Invalid(0)
                }
                _ => {
                    let mut p = 0;
                    // One untagged line (a CAPABILITY response) may come
                    // before the tagged one.
                    if b.starts_with(b"* ") {
                        p = 2;
                        while p < last - 1 {
                            if b[p] == b'\r' && b[p + 1] == b'\n' {
                                p += 2;
                                break;
                            }
                            p += 1;
                        }
                        if last - p < 4 {
                            return Check::Again;
                        }
                    }
                    let tag = &sh.tag;
                    if b[p..].starts_with(tag) {
                        // Past the tag, as nginx: a tagged NO is logged
                        // without its tag.
                        p += tag.len();
                        if b[p..].starts_with(b"OK") {
                            return Check::Ok;
                        }
                    }
                    Check::Invalid(p)
                }
            },
            Protocol::Smtp => {
                if b[3] == b'-' {
                    // A multiline reply: wait for its last line.
                    let mut m = last as isize - 7;
                    while m > 0 {
                        let i = m as usize;
                        if b[i] == b'\r' && b[i + 1] == b'\n' {
                            break;
                        }
                        m -= 1;
                    }
                    if m <= 0 || b[m as usize + 5] == b'-' {
                        return Check::Again;
                    }
                }
                let code = &b[..3];
                let ok = match self.state {
                    State::SmtpStart => code == b"220",
                    State::SmtpHelo
                    | State::SmtpHeloXclient
                    | State::SmtpHeloFrom
                    | State::SmtpHeloAuth
                    | State::SmtpFrom => code == b"250",
                    State::SmtpXclient
                    | State::SmtpXclientFrom
                    | State::SmtpXclientHelo
                    | State::SmtpXclientAuth => code == b"220" || code == b"250",
                    State::SmtpAuthPlain => code == b"235",
                    _ => true,
                };
                if ok {
                    Check::Ok
                } else {
                    Check::Invalid(0)
                }
            }
        }
    }

    fn next(&mut self, buf: &mut [u8], filled: usize, sh: &Shared, out: &mut Vec<u8>) -> LoginStep {
        let c = &self.conf;
        let none = sh.auth_method == AuthMethod::None;
        let (action, next) = match self.state {
            State::Pop3Start => {
                line(out, &[b"USER ", &sh.creds.login]);
                ("sending user name to upstream", State::Pop3User)
            }
            State::Pop3User => {
                line(out, &[b"PASS ", &sh.creds.passwd]);
                ("sending password to upstream", State::Pop3Pass)
            }
            State::ImapStart => {
                let n = sh.creds.login.len().to_string();
                line(out, &[&sh.tag, b"LOGIN {", n.as_bytes(), b"}"]);
                ("sending LOGIN command to upstream", State::ImapLogin)
            }
            State::ImapLogin => {
                let n = sh.creds.passwd.len().to_string();
                line(out, &[&sh.creds.login, b" {", n.as_bytes(), b"}"]);
                ("sending user name to upstream", State::ImapUser)
            }
            State::ImapUser => {
                line(out, &[&sh.creds.passwd]);
                ("sending password to upstream", State::ImapPasswd)
            }
            State::SmtpStart => {
                let verb: &[u8] = if sh.esmtp || c.xclient {
                    b"EHLO "
                } else {
                    b"HELO "
                };
                line(out, &[verb, c.server_name.as_bytes()]);
                let next = if c.xclient {
                    State::SmtpHeloXclient
                } else if none {
                    State::SmtpHeloFrom
                } else if c.smtp_auth {
                    State::SmtpHeloAuth
                } else {
                    State::SmtpHelo
                };
                ("sending HELO/EHLO to upstream", next)
            }
            State::SmtpHeloXclient => {
                out.extend_from_slice(b"XCLIENT ADDR=");
                if c.client_ipv6 {
                    out.extend_from_slice(b"IPV6:");
                }
                out.extend_from_slice(c.client_addr.as_bytes());
                if !sh.creds.login.is_empty() && !c.smtp_auth {
                    out.extend_from_slice(b" LOGIN=");
                    xtext(&sh.creds.login, out);
                }
                out.extend_from_slice(b" NAME=");
                out.extend_from_slice(&c.client_host);
                out.extend_from_slice(b"\r\n");
                let next = if !sh.smtp_helo.is_empty() {
                    State::SmtpXclientHelo
                } else if none {
                    State::SmtpXclientFrom
                } else if c.smtp_auth {
                    State::SmtpXclientAuth
                } else {
                    State::SmtpXclient
                };
                ("sending XCLIENT to upstream", next)
            }
            State::SmtpXclientHelo => {
                let verb: &[u8] = if sh.esmtp { b"EHLO " } else { b"HELO " };
                line(out, &[verb, &sh.smtp_helo]);
                let next = if none {
                    State::SmtpHeloFrom
                } else if c.smtp_auth {
                    State::SmtpHeloAuth
                } else {
                    State::SmtpHelo
                };
                ("sending client HELO/EHLO to upstream", next)
            }
            State::SmtpHeloAuth | State::SmtpXclientAuth => {
                if !sh.passwd_set {
                    return LoginStep::Failed(LoginError::NoPassword);
                }
                let mut plain =
                    Vec::with_capacity(2 + sh.creds.login.len() + sh.creds.passwd.len());
                plain.push(0);
                plain.extend_from_slice(&sh.creds.login);
                plain.push(0);
                plain.extend_from_slice(&sh.creds.passwd);
                let encoded = super::sasl::encode_base64(&plain);
                line(out, &[b"AUTH PLAIN ", encoded.as_bytes()]);
                ("sending AUTH to upstream", State::SmtpAuthPlain)
            }
            State::SmtpHeloFrom | State::SmtpXclientFrom => {
                line(out, &[&sh.smtp_from]);
                ("sending MAIL FROM to upstream", State::SmtpFrom)
            }
            State::SmtpFrom => {
                line(out, &[&sh.smtp_to]);
                ("sending RCPT TO to upstream", State::SmtpTo)
            }
            State::Pop3Pass | State::ImapPasswd => {
                return LoginStep::LoggedIn { buffer_len: filled }
            }
            State::SmtpHelo | State::SmtpXclient | State::SmtpAuthPlain | State::SmtpTo => {
                if none {
                    return LoginStep::LoggedIn { buffer_len: filled };
                }
                let n = SMTP_AUTH_OK.len().min(buf.len());
                buf[..n].copy_from_slice(&SMTP_AUTH_OK[..n]);
                return LoginStep::LoggedIn { buffer_len: n };
            }
        };
        self.state = next;
        LoginStep::Send { action }
    }
}

/// `parts` then CRLF.
fn line(out: &mut Vec<u8>, parts: &[&[u8]]) {
    for p in parts {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(b"\r\n");
}

/// What nginx's `%s` prints of a buffer: up to the first NUL.
fn nul_terminated(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// RFC 1891 xtext as nginx writes it: `+XX` for controls, space, `+`, `=`
/// and bytes from 0x7f.
pub fn xtext(src: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in src {
        if b <= 0x20 || b == b'+' || b == b'=' || b >= 0x7f {
            out.push(b'+');
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(protocol: Protocol) -> LoginConf {
        LoginConf {
            protocol,
            server_name: "proxy.test".into(),
            xclient: true,
            smtp_auth: false,
            pass_error_message: false,
            client_addr: "127.0.0.1".into(),
            client_ipv6: false,
            client_host: b"[UNAVAILABLE]".to_vec(),
        }
    }

    fn shared(login: &str, pass: &str) -> Shared {
        let mut sh = Shared {
            passwd_set: true,
            ..Shared::default()
        };
        sh.creds.login = login.into();
        sh.creds.passwd = pass.into();
        sh
    }

    /// Runs a transcript: each backend response and the line expected
    /// back ("" = logged in, with the client getting the given reply).
    fn transcript(conf: LoginConf, sh: &Shared, steps: &[(&str, &str)]) -> LoginStep {
        let mut login = Login::new(conf);
        let mut last = LoginStep::Again;
        for (i, (resp, expect)) in steps.iter().enumerate() {
            let mut buf = vec![0u8; 4096];
            buf[..resp.len()].copy_from_slice(resp.as_bytes());
            let mut out = Vec::new();
            last = login.on_input(&mut buf, resp.len(), sh, &mut out);
            match &last {
                LoginStep::Send { .. } => {
                    assert_eq!(String::from_utf8_lossy(&out), *expect, "step {i}")
                }
                LoginStep::LoggedIn { buffer_len } => {
                    assert_eq!(String::from_utf8_lossy(&buf[..*buffer_len]), *expect)
                }
                _ => return last,
            }
        }
        last
    }

    #[test]
    fn pop3() {
        let sh = shared("u", "p");
        let r = transcript(
            conf(Protocol::Pop3),
            &sh,
            &[
                ("+OK hi\r\n", "USER u\r\n"),
                ("+OK\r\n", "PASS p\r\n"),
                ("+OK logged in\r\n", "+OK logged in\r\n"),
            ],
        );
        assert!(matches!(r, LoginStep::LoggedIn { .. }));
        let r = transcript(conf(Protocol::Pop3), &sh, &[("-ERR no\r\n", "")]);
        assert_eq!(r, LoginStep::Failed(LoginError::Invalid("-ERR no".into())));
        let mut c = conf(Protocol::Pop3);
        c.pass_error_message = true;
        let r = transcript(c, &sh, &[("+OK\r\n", "USER u\r\n"), ("-ERR bad\r\n", "")]);
        assert_eq!(
            r,
            LoginStep::Failed(LoginError::InvalidPassed {
                line: "-ERR bad".into(),
                reply: b"-ERR bad\r\n".to_vec()
            })
        );
    }

    #[test]
    fn imap_tagged_no_is_logged_without_the_tag() {
        let mut sh = shared("user", "secret");
        sh.tag = b"r1 ".to_vec();
        let mut c = conf(Protocol::Imap);
        c.pass_error_message = true;
        let mut login = Login::new(c);
        let mut out = Vec::new();
        for (input, _) in [("* OK ready\r\n", ""), ("+ go\r\n", ""), ("+ go\r\n", "")] {
            let mut b = input.as_bytes().to_vec();
            let n = b.len();
            b.resize(256, 0);
            assert!(matches!(
                login.on_input(&mut b, n, &sh, &mut out),
                LoginStep::Send { .. }
            ));
        }
        let reply = b"* CAPABILITY X\r\nr1 NO [AUTHENTICATIONFAILED] no\r\n";
        let mut b = reply.to_vec();
        let n = b.len();
        b.resize(256, 0);
        assert_eq!(
            login.on_input(&mut b, n, &sh, &mut out),
            LoginStep::Failed(LoginError::InvalidPassed {
                line: "NO [AUTHENTICATIONFAILED] no".into(),
                reply: reply.to_vec(),
            })
        );
    }

    #[test]
    fn imap_with_untagged_capability() {
        let mut sh = shared("user", "secret");
        sh.tag = b"a1 ".to_vec();
        let r = transcript(
            conf(Protocol::Imap),
            &sh,
            &[
                ("* OK ready\r\n", "a1 LOGIN {4}\r\n"),
                ("+ go\r\n", "user {6}\r\n"),
                ("+ go\r\n", "secret\r\n"),
                (
                    "* CAPABILITY IMAP4rev1\r\na1 OK done\r\n",
                    "* CAPABILITY IMAP4rev1\r\na1 OK done\r\n",
                ),
            ],
        );
        assert!(matches!(r, LoginStep::LoggedIn { .. }));
        let mut login = Login::new(conf(Protocol::Imap));
        let mut out = Vec::new();
        assert_eq!(
            login.on_input(&mut b"* O".to_vec(), 3, &sh, &mut out),
            LoginStep::Again
        );
        assert_eq!(
            login.on_input(&mut b"* OK partial".to_vec(), 12, &sh, &mut out),
            LoginStep::Failed(LoginError::TooLong("* OK partia".into()))
        );
    }

    #[test]
    fn smtp_xclient_and_auth_none() {
        let mut sh = shared("us er+", "");
        sh.smtp_helo = b"client.example".to_vec();
        sh.esmtp = true;
        let r = transcript(
            conf(Protocol::Smtp),
            &sh,
            &[
                ("220 mx ESMTP\r\n", "EHLO proxy.test\r\n"),
                (
                    "250-mx\r\n250 XCLIENT ADDR NAME\r\n",
                    "XCLIENT ADDR=127.0.0.1 LOGIN=us+20er+2B NAME=[UNAVAILABLE]\r\n",
                ),
                ("220 mx ok\r\n", "EHLO client.example\r\n"),
                ("250 ok\r\n", "235 2.0.0 OK\r\n"),
            ],
        );
        assert!(matches!(r, LoginStep::LoggedIn { .. }));

        let sh = Shared {
            auth_method: AuthMethod::None,
            smtp_from: b"MAIL FROM:<a>".to_vec(),
            smtp_to: b"RCPT TO:<b>".to_vec(),
            ..Shared::default()
        };
        let mut c = conf(Protocol::Smtp);
        c.xclient = false;
        let r = transcript(
            c,
            &sh,
            &[
                ("220 mx\r\n", "HELO proxy.test\r\n"),
                ("250 mx\r\n", "MAIL FROM:<a>\r\n"),
                ("250 ok\r\n", "RCPT TO:<b>\r\n"),
                ("550 no such user\r\n", "550 no such user\r\n"),
            ],
        );
        assert!(matches!(r, LoginStep::LoggedIn { .. }));
    }

    fn feed(login: &mut Login, resp: &[u8], sh: &Shared, out: &mut Vec<u8>) -> LoginStep {
        let mut buf = vec![0u8; 4096];
        buf[..resp.len()].copy_from_slice(resp);
        login.on_input(&mut buf, resp.len(), sh, out)
    }

    #[test]
    fn smtp_proxy_auth_and_multiline_wait() {
        let sh = shared("u", "p");
        let mut c = conf(Protocol::Smtp);
        c.xclient = false;
        c.smtp_auth = true;
        let mut login = Login::new(c);
        let mut out = Vec::new();
        assert!(matches!(
            feed(&mut login, b"220 hi\r\n", &sh, &mut out),
            LoginStep::Send { .. }
        ));
        assert_eq!(out, b"HELO proxy.test\r\n");
        out.clear();
        assert_eq!(
            feed(&mut login, b"250-mx\r\n250-SIZE\r\n", &sh, &mut out),
            LoginStep::Again
        );
        assert!(matches!(
            feed(&mut login, b"250-mx\r\n250 SIZE\r\n", &sh, &mut out),
            LoginStep::Send { .. }
        ));
        assert_eq!(out, b"AUTH PLAIN AHUAcA==\r\n");
        out.clear();
        assert_eq!(
            feed(&mut login, b"535 no\r\n", &sh, &mut out),
            LoginStep::Failed(LoginError::Invalid("535 no".into()))
        );
    }

    #[test]
    fn xtext_escapes() {
        let mut out = Vec::new();
        xtext(b"a b+c=d\x7f\xc3", &mut out);
        assert_eq!(out, b"a+20b+2Bc+3Dd+7F+C3");
    }
}
