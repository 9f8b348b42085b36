//! Request bytes (several captured from stock nginx with a recording
//! auth_http responder) and every response case.

use super::*;
use crate::conf::model::{AuthHttpConf, AuthHttpPeer, Protocol};
use std::path::PathBuf;
use std::time::Duration;

fn conf() -> AuthHttpConf {
    AuthHttpConf {
        peer: AuthHttpPeer::Inet(vec!["127.0.0.1:18080".parse().unwrap()]),
        host_header: "127.0.0.1".into(),
        uri: "/auth/path?x=1".into(),
        timeout: Duration::from_secs(60),
        headers: vec![
            ("X-Test".into(), "some value".into()),
            ("X-Two".into(), "two".into()),
        ],
        pass_client_cert: false,
    }
}

fn base(protocol: Protocol, method: AuthMethod) -> AuthRequest<'static> {
    AuthRequest {
        protocol,
        method,
        login: b"",
        passwd: b"",
        salt: b"",
        login_attempt: 1,
        client_addr: b"127.0.0.1",
        client_host: b"",
        smtp_helo: b"",
        smtp_from: b"",
        smtp_to: b"",
        proxy_protocol: None,
        ssl: None,
    }
}

fn build(req: &AuthRequest, conf: &AuthHttpConf) -> String {
    let mut out = Vec::new();
    req.write_to(conf, &mut out);
    String::from_utf8(out).unwrap()
}

const TAIL: &str = "X-Test: some value\r\nX-Two: two\r\n\r\n";

#[test]
fn request_pop3_user_pass_escaped_as_nginx() {
    let req = AuthRequest {
        login: b"us er%\x01",
        passwd: b"p a%ss",
        ..base(Protocol::Pop3, AuthMethod::Plain)
    };
    assert_eq!(
        build(&req, &conf()),
        format!(
            "GET /auth/path?x=1 HTTP/1.0\r\nHost: 127.0.0.1\r\nAuth-Method: plain\r\n\
             Auth-User: us%20er%25%01\r\nAuth-Pass: p%20a%25ss\r\nAuth-Protocol: pop3\r\n\
             Auth-Login-Attempt: 1\r\nClient-IP: 127.0.0.1\r\n{TAIL}"
        )
    );
    assert!(!req.clears_password());
}

#[test]
fn request_imap_login_method_is_plain() {
    let req = AuthRequest {
        login: b"u\tx",
        passwd: b"pw",
        ..base(Protocol::Imap, AuthMethod::Login)
    };
    assert_eq!(
        build(&req, &conf()),
        format!(
            "GET /auth/path?x=1 HTTP/1.0\r\nHost: 127.0.0.1\r\nAuth-Method: plain\r\n\
             Auth-User: u%09x\r\nAuth-Pass: pw\r\nAuth-Protocol: imap\r\n\
             Auth-Login-Attempt: 1\r\nClient-IP: 127.0.0.1\r\n{TAIL}"
        )
    );
}

#[test]
fn request_imap_quote_is_not_escaped() {
    let req = AuthRequest {
        login: b"u s",
        passwd: b"p\"w",
        ..base(Protocol::Imap, AuthMethod::Plain)
    };
    assert!(build(&req, &conf()).contains("Auth-User: u%20s\r\nAuth-Pass: p\"w\r\n"));
}

#[test]
fn request_external_has_empty_pass() {
    let req = AuthRequest {
        login: b"ext",
        ..base(Protocol::Imap, AuthMethod::External)
    };
    assert_eq!(
        build(&req, &conf()),
        format!(
            "GET /auth/path?x=1 HTTP/1.0\r\nHost: 127.0.0.1\r\nAuth-Method: external\r\n\
             Auth-User: ext\r\nAuth-Pass: \r\nAuth-Protocol: imap\r\n\
             Auth-Login-Attempt: 1\r\nClient-IP: 127.0.0.1\r\n{TAIL}"
        )
    );
}

#[test]
fn request_apop_and_cram_md5_send_the_salt() {
    for (method, name) in [
        (AuthMethod::Apop, "apop"),
        (AuthMethod::CramMd5, "cram-md5"),
    ] {
        let req = AuthRequest {
            login: b"bob",
            passwd: b"0123456789abcdef0123456789abcdef",
            salt: b"<192640254.1795243277@mx.example>\r\n",
            ..base(Protocol::Pop3, method)
        };
        assert_eq!(
            build(&req, &conf()),
            format!(
                "GET /auth/path?x=1 HTTP/1.0\r\nHost: 127.0.0.1\r\nAuth-Method: {name}\r\n\
                 Auth-User: bob\r\nAuth-Pass: 0123456789abcdef0123456789abcdef\r\n\
                 Auth-Salt: <192640254.1795243277@mx.example>\r\nAuth-Protocol: pop3\r\n\
                 Auth-Login-Attempt: 1\r\nClient-IP: 127.0.0.1\r\n{TAIL}"
            )
        );
        assert!(req.clears_password());
    }
}

#[test]
fn request_salt_only_for_digest_methods() {
    let req = AuthRequest {
        login: b"bob",
        passwd: b"pw",
        salt: b"<1.2@x>\r\n",
        ..base(Protocol::Pop3, AuthMethod::Plain)
    };
    assert!(!build(&req, &conf()).contains("Auth-Salt"));
    assert!(!req.clears_password());
    let req = AuthRequest {
        salt: b"",
        ..base(Protocol::Smtp, AuthMethod::CramMd5)
    };
    assert!(!build(&req, &conf()).contains("Auth-Salt"));
    assert!(!req.clears_password());
}

#[test]
fn request_smtp_none_with_proxy_protocol() {
    let req = AuthRequest {
        client_host: b"[UNAVAILABLE]",
        smtp_helo: b"h",
        smtp_from: b"MAIL FROM:<>",
        smtp_to: b"RCPT TO:<x@y>",
        proxy_protocol: Some(ProxyProtocolAddrs {
            src_addr: b"192.0.2.1",
            src_port: 5555,
            dst_addr: b"198.51.100.2",
            dst_port: 25,
        }),
        ..base(Protocol::Smtp, AuthMethod::None)
    };
    assert_eq!(
        build(&req, &conf()),
        format!(
            "GET /auth/path?x=1 HTTP/1.0\r\nHost: 127.0.0.1\r\nAuth-Method: none\r\n\
             Auth-User: \r\nAuth-Pass: \r\nAuth-Protocol: smtp\r\nAuth-Login-Attempt: 1\r\n\
             Client-IP: 127.0.0.1\r\nClient-Host: [UNAVAILABLE]\r\n\
             Proxy-Protocol-Addr: 192.0.2.1\r\nProxy-Protocol-Port: 5555\r\n\
             Proxy-Protocol-Server-Addr: 198.51.100.2\r\nProxy-Protocol-Server-Port: 25\r\n\
             Auth-SMTP-Helo: h\r\nAuth-SMTP-From: MAIL FROM:<>\r\n\
             Auth-SMTP-To: RCPT TO:<x@y>\r\n{TAIL}"
        )
    );
}

#[test]
fn request_smtp_lines_only_for_method_none() {
    let req = AuthRequest {
        login: b"u",
        passwd: b"p",
        smtp_helo: b"h",
        smtp_from: b"MAIL FROM:<a@b>",
        ..base(Protocol::Smtp, AuthMethod::Plain)
    };
    let text = build(&req, &conf());
    assert!(!text.contains("Auth-SMTP"));
    assert!(!text.contains("Client-Host"));
}

#[test]
fn request_ssl_fields_and_cert() {
    let ssl = SslInfo {
        protocol: b"TLSv1.3",
        cipher: b"TLS_AES_256_GCM_SHA384",
        verify: b"SUCCESS",
        subject: b"CN=client,O=Example Org",
        issuer: b"CN=ca",
        serial: b"01AB",
        fingerprint: b"abcdef",
        raw_cert: b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    };
    let req = AuthRequest {
        login: b"u",
        passwd: b"p",
        client_host: b"client.example",
        ssl: Some(ssl),
        ..base(Protocol::Imap, AuthMethod::Plain)
    };
    let ssl_lines = "Auth-SSL: on\r\nAuth-SSL-Protocol: TLSv1.3\r\n\
                     Auth-SSL-Cipher: TLS_AES_256_GCM_SHA384\r\nAuth-SSL-Verify: SUCCESS\r\n\
                     Auth-SSL-Subject: CN=client,O=Example Org\r\nAuth-SSL-Issuer: CN=ca\r\n\
                     Auth-SSL-Serial: 01AB\r\nAuth-SSL-Fingerprint: abcdef\r\n";
    let head = "GET /auth/path?x=1 HTTP/1.0\r\nHost: 127.0.0.1\r\nAuth-Method: plain\r\n\
                Auth-User: u\r\nAuth-Pass: p\r\nAuth-Protocol: imap\r\nAuth-Login-Attempt: 1\r\n\
                Client-IP: 127.0.0.1\r\nClient-Host: client.example\r\n";
    assert_eq!(build(&req, &conf()), format!("{head}{ssl_lines}{TAIL}"));

    let mut with_cert = conf();
    with_cert.pass_client_cert = true;
    assert_eq!(
        build(&req, &with_cert),
        format!(
            "{head}{ssl_lines}Auth-SSL-Cert: -----BEGIN%20CERTIFICATE-----%0AMIIB%0A\
             -----END%20CERTIFICATE-----%0A\r\n{TAIL}"
        )
    );

    // Without client verification only the first two fields exist.
    let req = AuthRequest {
        ssl: Some(SslInfo {
            protocol: b"TLSv1.2",
            cipher: b"ECDHE-RSA-AES128-GCM-SHA256",
            ..SslInfo::default()
        }),
        ..req
    };
    assert_eq!(
        build(&req, &with_cert),
        format!(
            "{head}Auth-SSL: on\r\nAuth-SSL-Protocol: TLSv1.2\r\n\
             Auth-SSL-Cipher: ECDHE-RSA-AES128-GCM-SHA256\r\n{TAIL}"
        )
    );
}

#[test]
fn request_without_extra_headers_and_unix_host() {
    let conf = AuthHttpConf {
        peer: AuthHttpPeer::Unix(PathBuf::from("/run/auth.sock")),
        host_header: "localhost".into(),
        uri: "/".into(),
        headers: Vec::new(),
        ..conf()
    };
    let req = AuthRequest {
        login_attempt: 3,
        client_addr: b"::1",
        ..base(Protocol::Pop3, AuthMethod::Plain)
    };
    assert_eq!(
        build(&req, &conf),
        "GET / HTTP/1.0\r\nHost: localhost\r\nAuth-Method: plain\r\nAuth-User: \r\n\
         Auth-Pass: \r\nAuth-Protocol: pop3\r\nAuth-Login-Attempt: 3\r\nClient-IP: ::1\r\n\r\n"
    );
    assert_eq!(peer_name(&conf), "unix:/run/auth.sock");
}

#[test]
fn escape_table() {
    for b in 0u8..=255 {
        let mut out = Vec::new();
        escape(&[b], &mut out);
        if b <= 0x20 || b == b'%' {
            assert_eq!(out, format!("%{b:02X}").into_bytes(), "byte {b:#x}");
        } else {
            assert_eq!(out, [b], "byte {b:#x}");
        }
    }
}

#[test]
fn peer_names() {
    assert_eq!(peer_name(&conf()), "127.0.0.1:18080");
    let v6 = AuthHttpConf {
        peer: AuthHttpPeer::Inet(vec!["[::1]:9000".parse().unwrap()]),
        ..conf()
    };
    assert_eq!(peer_name(&v6), "[::1]:9000");
    assert_eq!(
        timed_out_message("127.0.0.1:18080"),
        "auth http server 127.0.0.1:18080 timed out"
    );
}

// ---------------------------------------------------------------------------
// Responses

/// Feeds the whole response at once, then end of file if it is incomplete.
fn parse(data: &[u8]) -> (AuthHttpResponse, Result<Progress, AuthHttpError<'static>>) {
    let mut r = AuthHttpResponse::new();
    let (mut result, taken) = r.push(data);
    if result == Ok(Progress::NeedMore) && taken == data.len() {
        result = r.feed(0);
    }
    (r, result)
}

fn complete(data: &str) -> AuthHttpResponse {
    let (r, result) = parse(data.as_bytes());
    assert_eq!(result, Ok(Progress::Complete), "{data:?}");
    r
}

const OK: &str =
    "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 143\r\n";

fn proxy(peer: &str, name: &str) -> Outcome<'static> {
    Outcome::Proxy {
        peer: peer.parse().unwrap(),
        name: name.into(),
    }
}

#[test]
fn response_ok() {
    let r = complete(&format!("{OK}Auth-Pass: secret\r\n\r\n"));
    assert_eq!(
        r.outcome(Protocol::Imap, b"a ", false),
        Ok(proxy("127.0.0.1:143", "127.0.0.1:143"))
    );
    assert_eq!(r.pass_override(), Some(&b"secret"[..]));
    assert_eq!(r.user_override(), None);
}

#[test]
fn response_ok_ipv6_and_port_text_kept_in_name() {
    let r = complete("HTTP/1.1 200 OK\nAuth-Status: OK\nAuth-Server: ::1\nAuth-Port: 0110\n\n");
    assert_eq!(
        r.outcome(Protocol::Pop3, b"", true),
        Ok(proxy("[::1]:110", "::1:0110"))
    );
}

#[test]
fn response_without_status_header_is_success() {
    let r = complete("HTTP/1.0 200 OK\r\nAuth-Server: 10.0.0.1\r\nAuth-Port: 25\r\n\r\n");
    assert_eq!(
        r.outcome(Protocol::Smtp, b"", false),
        Ok(proxy("10.0.0.1:25", "10.0.0.1:25"))
    );
}

#[test]
fn response_header_names_case_insensitive_values_trimmed() {
    let r = complete(
        "HTTP/1.0 200 OK\r\nauth-status:OK\r\nAUTH-SERVER:   127.0.0.2  \r\n\
         auth-port: 993\r\nAuth-User:  new user \r\nX-Other: whatever: here\r\n\
         Auth-Pass: a\tb \r\n\r\n",
    );
    assert_eq!(
        r.outcome(Protocol::Imap, b"a ", true),
        Ok(proxy("127.0.0.2:993", "127.0.0.2:993"))
    );
    assert_eq!(r.user_override(), Some(&b"new user"[..]));
    assert_eq!(r.pass_override(), Some(&b"a\tb"[..]));
}

#[test]
fn response_status_ok_is_case_sensitive() {
    let r = complete("HTTP/1.0 200 OK\r\nAuth-Status: ok\r\n\r\n");
    let Ok(Outcome::Reject(rej)) = r.outcome(Protocol::Pop3, b"", true) else {
        panic!("not a rejection");
    };
    assert_eq!(rej.reply, b"-ERR ok\r\n");
}

#[test]
fn response_error_texts_per_protocol() {
    let r = complete("HTTP/1.0 200 OK\r\nAuth-Status: Bad  pass  \r\nAuth-Wait: 0\r\n\r\n");
    let reject = |protocol, tag: &[u8]| match r.outcome(protocol, tag, true) {
        Ok(Outcome::Reject(rej)) => {
            assert_eq!(rej.message, b"Bad  pass");
            assert_eq!(rej.delay, None);
            rej.reply
        }
        other => panic!("{other:?}"),
    };
    // Replies as stock nginx sent them.
    assert_eq!(reject(Protocol::Pop3, b"a1 "), b"-ERR Bad  pass\r\n");
    assert_eq!(reject(Protocol::Imap, b"a1 "), b"a1 NO Bad  pass\r\n");
    assert_eq!(reject(Protocol::Smtp, b"a1 "), b"535 5.7.0 Bad  pass\r\n");
}

#[test]
fn response_smtp_error_code_and_wait() {
    let r = complete(
        "HTTP/1.0 200 OK\r\nAuth-Status: Temporary failure\r\nAuth-Error-Code: 451 4.3.0\r\n\
         Auth-Wait: 3\r\n\r\n",
    );
    let expected = Rejection {
        reply: b"451 4.3.0 Temporary failure\r\n".to_vec(),
        message: b"Temporary failure",
        delay: Some(Duration::from_secs(3)),
    };
    assert_eq!(
        r.outcome(Protocol::Smtp, b"", false),
        Ok(Outcome::Reject(expected))
    );
    // The code is for SMTP only.
    let Ok(Outcome::Reject(rej)) = r.outcome(Protocol::Pop3, b"", false) else {
        panic!();
    };
    assert_eq!(rej.reply, b"-ERR Temporary failure\r\n");
    // An empty code means the default.
    let r = complete("HTTP/1.0 200 OK\r\nAuth-Status: no\r\nAuth-Error-Code:\r\n\r\n");
    let Ok(Outcome::Reject(rej)) = r.outcome(Protocol::Smtp, b"", false) else {
        panic!();
    };
    assert_eq!(rej.reply, b"535 5.7.0 no\r\n");
}

#[test]
fn response_empty_error_text() {
    let r = complete(&format!("{OK}Auth-Status:\r\n\r\n"));
    let Ok(Outcome::Reject(rej)) = r.outcome(Protocol::Pop3, b"", true) else {
        panic!();
    };
    assert_eq!(rej.reply, b"-ERR \r\n");
    let Ok(Outcome::Reject(rej)) = r.outcome(Protocol::Imap, b"t ", true) else {
        panic!();
    };
    assert_eq!(rej.reply, b"t NO \r\n");
    // SMTP takes an empty error text for success.
    assert_eq!(
        r.outcome(Protocol::Smtp, b"", false),
        Ok(proxy("127.0.0.1:143", "127.0.0.1:143"))
    );
}

#[test]
fn response_later_ok_does_not_undo_error() {
    let r = complete(
        "HTTP/1.0 200 OK\r\nAuth-Status: first\r\nAuth-Status: second\r\nAuth-Status: OK\r\n\r\n",
    );
    let Ok(Outcome::Reject(rej)) = r.outcome(Protocol::Pop3, b"", true) else {
        panic!();
    };
    assert_eq!(rej.reply, b"-ERR second\r\n");
}

#[test]
fn response_auth_wait_values() {
    for (wait, expected) in [
        ("5", Some(5)),
        ("0", None),
        ("x", None),
        ("-1", None),
        ("", None),
        ("99999999999999999999", None),
    ] {
        let r = complete(&format!(
            "HTTP/1.0 200 OK\r\nAuth-Status: no\r\nAuth-Wait: {wait}\r\n\r\n"
        ));
        let Ok(Outcome::Reject(rej)) = r.outcome(Protocol::Pop3, b"", true) else {
            panic!();
        };
        assert_eq!(rej.delay, expected.map(Duration::from_secs), "{wait:?}");
    }
    // An invalid value keeps an earlier valid one; a later one replaces it.
    let r = complete("HTTP/1.0 200 OK\r\nAuth-Status: no\r\nAuth-Wait: 2\r\nAuth-Wait: z\r\n\r\n");
    let Ok(Outcome::Reject(rej)) = r.outcome(Protocol::Pop3, b"", true) else {
        panic!();
    };
    assert_eq!(rej.delay, Some(Duration::from_secs(2)));
    let r = complete("HTTP/1.0 200 OK\r\nAuth-Status: no\r\nAuth-Wait: 2\r\nAuth-Wait: 0\r\n\r\n");
    let Ok(Outcome::Reject(rej)) = r.outcome(Protocol::Pop3, b"", true) else {
        panic!();
    };
    assert_eq!(rej.delay, None);
}

#[test]
fn response_wait() {
    let r = complete("HTTP/1.0 200 OK\r\nAuth-Status: WAIT\r\nAuth-Wait: 1\r\n\r\n");
    assert_eq!(
        r.outcome(Protocol::Imap, b"a ", true),
        Ok(Outcome::Wait {
            delay: Some(Duration::from_secs(1))
        })
    );
    let r = complete(&format!("{OK}Auth-Status: WAIT\r\n\r\n"));
    assert_eq!(
        r.outcome(Protocol::Imap, b"a ", true),
        Ok(Outcome::Wait { delay: None })
    );
    // An error text wins over WAIT.
    let r = complete("HTTP/1.0 200 OK\r\nAuth-Status: WAIT\r\nAuth-Status: no\r\n\r\n");
    assert!(matches!(
        r.outcome(Protocol::Imap, b"a ", true),
        Ok(Outcome::Reject(_))
    ));
}

#[test]
fn response_missing_server_or_port() {
    for text in [
        "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\n\r\n",
        "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Port: 143\r\n\r\n",
        "HTTP/1.0 200 OK\r\nAuth-Server:\r\nAuth-Port: 143\r\n\r\n",
        "HTTP/1.0 200 OK\r\n\r\n",
    ] {
        let r = complete(text);
        let err = r.outcome(Protocol::Smtp, b"", true).unwrap_err();
        assert_eq!(err, AuthHttpError::NoServerOrPort);
        assert_eq!(
            err.log_message("127.0.0.1:18080"),
            "auth http server 127.0.0.1:18080 did not send server or port"
        );
    }
}

#[test]
fn response_missing_password() {
    let r = complete(&format!("{OK}\r\n"));
    for protocol in [Protocol::Imap, Protocol::Pop3] {
        let err = r.outcome(protocol, b"a ", false).unwrap_err();
        assert_eq!(err, AuthHttpError::NoPassword);
        assert_eq!(
            err.log_message("p:1"),
            "auth http server p:1 did not send password"
        );
        assert!(r.outcome(protocol, b"a ", true).is_ok());
    }
    assert!(r.outcome(Protocol::Smtp, b"", false).is_ok());
    // An empty Auth-Pass counts as sent.
    let r = complete(&format!("{OK}Auth-Pass:\r\n\r\n"));
    assert!(r.outcome(Protocol::Pop3, b"", false).is_ok());
    assert_eq!(r.pass_override(), Some(&b""[..]));
}

#[test]
fn response_invalid_server_address() {
    for server in [
        "localhost",
        "mail.example.com",
        "[::1]",
        "255.255.255.255",
        "1.2.3",
    ] {
        let r = complete(&format!(
            "HTTP/1.0 200 OK\r\nAuth-Server: {server}\r\nAuth-Port: 1\r\nAuth-Pass: p\r\n\r\n"
        ));
        let err = r.outcome(Protocol::Pop3, b"", false).unwrap_err();
        assert_eq!(err, AuthHttpError::InvalidServerAddress(server.as_bytes()));
        assert_eq!(
            err.log_message("127.0.0.1:18080"),
            format!("auth http server 127.0.0.1:18080 sent invalid server address:\"{server}\"")
        );
    }
}

#[test]
fn response_invalid_server_port() {
    for port in ["0", "65536", "x", "-1", "1 2"] {
        let r = complete(&format!(
            "HTTP/1.0 200 OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: {port}\r\n\r\n"
        ));
        let err = r.outcome(Protocol::Smtp, b"", false).unwrap_err();
        assert_eq!(err, AuthHttpError::InvalidServerPort(port.as_bytes()));
        assert_eq!(
            err.log_message("127.0.0.1:18080"),
            format!("auth http server 127.0.0.1:18080 sent invalid server port:\"{port}\"")
        );
    }
    // The address is checked first.
    let r = complete("HTTP/1.0 200 OK\r\nAuth-Server: name\r\nAuth-Port: 0\r\n\r\n");
    assert!(matches!(
        r.outcome(Protocol::Smtp, b"", false),
        Err(AuthHttpError::InvalidServerAddress(_))
    ));
}

#[test]
fn response_status_code_ignored() {
    let r = complete("HTTP/1.0 500 Internal Server Error\r\nAuth-Status: fivehundred\r\n\r\n");
    let Ok(Outcome::Reject(rej)) = r.outcome(Protocol::Pop3, b"", true) else {
        panic!();
    };
    assert_eq!(rej.reply, b"-ERR fivehundred\r\n");
}

#[test]
fn response_without_status_line_read_as_headers() {
    let r = complete("Auth-Status: nostatusline\r\n\r\n");
    let Ok(Outcome::Reject(rej)) = r.outcome(Protocol::Pop3, b"", true) else {
        panic!();
    };
    assert_eq!(rej.reply, b"-ERR nostatusline\r\n");
    // "HTTX/…" is then a header name with '/' in it.
    let (_, result) = parse(b"HTTX/1.0 200 OK\r\nAuth-Status: x\r\n\r\n");
    assert_eq!(result, Err(AuthHttpError::InvalidHeader));
    // "HTTP:" mismatches at ':', so "HTTP: v" is read as a header.
    let r = complete("HTTP: v\r\nAuth-Status: y\r\n\r\n");
    assert!(matches!(
        r.outcome(Protocol::Pop3, b"", true),
        Ok(Outcome::Reject(_))
    ));
}

#[test]
fn response_bad_status_line_end() {
    let (_, result) = parse(b"HTTP/1.0 200 OK\rXAuth-Status: OK\r\n\r\n");
    assert_eq!(result, Err(AuthHttpError::InvalidResponse));
    assert_eq!(
        AuthHttpError::InvalidResponse.log_message("127.0.0.1:18080"),
        "auth http server 127.0.0.1:18080 sent invalid response"
    );
}

#[test]
fn response_invalid_headers() {
    for text in [
        "HTTP/1.0 200 OK\r\nAuth Status: OK\r\n\r\n",
        "HTTP/1.0 200 OK\r\n-Auth: x\r\n\r\n",
        "HTTP/1.0 200 OK\r\n Auth-Status: OK\r\n\r\n",
        "HTTP/1.0 200 OK\r\nAuth_Status: OK\r\n\r\n",
        "HTTP/1.0 200 OK\r\nAuth-Status: OK\rX\n\r\n",
        "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n\rX",
        "HTTP/1.0 200 OK\r\nAé: x\r\n\r\n",
    ] {
        let (_, result) = parse(text.as_bytes());
        assert_eq!(result, Err(AuthHttpError::InvalidHeader), "{text:?}");
    }
    assert_eq!(
        AuthHttpError::InvalidHeader.log_message("127.0.0.1:18080"),
        "auth http server 127.0.0.1:18080 sent invalid header in response"
    );
}

#[test]
fn response_header_without_colon_is_empty() {
    let r = complete(&format!("{OK}Auth-Pass\r\n\r\n"));
    assert_eq!(r.pass_override(), Some(&b""[..]));
}

#[test]
fn response_overrides_apply_before_an_error() {
    let (r, result) =
        parse(b"HTTP/1.0 200 OK\r\nAuth-User: newu\r\nAuth-Pass: np\r\nbad header\r\n\r\n");
    assert_eq!(result, Err(AuthHttpError::InvalidHeader));
    assert_eq!(r.user_override(), Some(&b"newu"[..]));
    assert_eq!(r.pass_override(), Some(&b"np"[..]));
}

#[test]
fn response_closed_early() {
    for text in [
        "",
        "HTTP/1.0 200",
        "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n",
        "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n\r",
    ] {
        let (_, result) = parse(text.as_bytes());
        assert_eq!(result, Err(AuthHttpError::Closed), "{text:?}");
    }
    assert_eq!(
        AuthHttpError::Closed.log_message("x:1"),
        "auth http server x:1 prematurely closed connection"
    );
}

#[test]
fn response_too_big() {
    let mut text = String::from("HTTP/1.0 200 OK\r\nX-Pad: ");
    text.push_str(&"a".repeat(2000));
    text.push_str("\r\n\r\n");
    let (mut r, result) = parse(text.as_bytes());
    assert_eq!(result, Err(AuthHttpError::TooBig));
    assert!(r.spare().is_empty());
    assert_eq!(r.feed(10), Err(AuthHttpError::TooBig));

    // A head of exactly the buffer size fits.
    let head = "HTTP/1.0 200 OK\r\nAuth-Status: no\r\nX-Pad: ";
    let pad = RESPONSE_BUFFER_SIZE - head.len() - 4;
    let text = format!("{head}{}\r\n\r\n", "b".repeat(pad));
    assert_eq!(text.len(), RESPONSE_BUFFER_SIZE);
    let r = complete(&text);
    assert!(matches!(
        r.outcome(Protocol::Pop3, b"", true),
        Ok(Outcome::Reject(_))
    ));
    // One byte more does not.
    let text = format!("{head}{}\r\n\r\n", "b".repeat(pad + 1));
    assert_eq!(parse(text.as_bytes()).1, Err(AuthHttpError::TooBig));
}

#[test]
fn response_body_after_head_ignored() {
    let mut r = AuthHttpResponse::new();
    let (result, taken) = r.push(format!("{OK}Auth-Pass: p\r\n\r\nbody bytes").as_bytes());
    assert_eq!(result, Ok(Progress::Complete));
    assert!(taken > 0);
    assert!(r.spare().is_empty());
    assert_eq!(r.push(b"more"), (Ok(Progress::Complete), 0));
    assert_eq!(r.feed(0), Ok(Progress::Complete));
    assert!(r.outcome(Protocol::Pop3, b"", true).is_ok());
}

/// Every response above, split at every byte boundary and fed one byte at
/// a time, gives the same result as fed whole.
#[test]
fn response_split_everywhere() {
    let cases: &[&[u8]] = &[
        b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 143\r\nAuth-User:  u v \r\nAuth-Pass: p\r\n\r\n",
        b"HTTP/1.1 200 OK\nAuth-Status: Bad  pass  \nAuth-Wait: 2\nAuth-Error-Code: 451 4.3.0\n\n",
        b"Auth-Status: WAIT\r\n\r\n",
        b"HTTX/1.0 200 OK\r\n\r\n",
        b"HTT",
        b"HTTP/1.0 200 OK\rX",
        b"HTTP/1.0 200 OK\r\nAuth-Server: localhost\r\nAuth-Port: 1\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nAuth-Status\r\nAuth-Pass\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nA: b\r\n\rX",
    ];
    for &case in cases {
        let (whole, whole_result) = parse(case);
        let whole_outcome = whole_result
            .ok()
            .map(|_| whole.outcome(Protocol::Smtp, b"t ", false));
        for split in 0..=case.len() {
            let mut r = AuthHttpResponse::new();
            let mut result = Ok(Progress::NeedMore);
            for piece in [&case[..split], &case[split..]] {
                if result == Ok(Progress::NeedMore) && !piece.is_empty() {
                    result = r.push(piece).0;
                }
            }
            if result == Ok(Progress::NeedMore) {
                result = r.feed(0);
            }
            assert_eq!(result, whole_result, "{case:?} split at {split}");
            if result.is_ok() {
                assert_eq!(
                    Some(r.outcome(Protocol::Smtp, b"t ", false)),
                    whole_outcome,
                    "{case:?} split at {split}"
                );
            }
            assert_eq!(r.user_override(), whole.user_override());
            assert_eq!(r.pass_override(), whole.pass_override());
        }
        let mut r = AuthHttpResponse::new();
        let mut result = Ok(Progress::NeedMore);
        for &b in case {
            if result != Ok(Progress::NeedMore) {
                break;
            }
            result = r.push(&[b]).0;
        }
        if result == Ok(Progress::NeedMore) {
            result = r.feed(0);
        }
        assert_eq!(result, whole_result, "{case:?} byte by byte");
    }
}

#[test]
fn outcome_before_complete_is_an_error() {
    let r = AuthHttpResponse::new();
    assert_eq!(
        r.outcome(Protocol::Pop3, b"", true),
        Err(AuthHttpError::Closed)
    );
    let (r, _) = parse(b"HTTP/1.0 200 OK\r\nbad header\r\n");
    assert_eq!(
        r.outcome(Protocol::Pop3, b"", true),
        Err(AuthHttpError::InvalidHeader)
    );
}
