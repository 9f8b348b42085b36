//! Fuzzes the auth_http response parser: the input is fed whole and in
//! pieces cut by its first byte, then end of file; both must agree, and
//! every outcome and log message must be computable. The request builder
//! runs on the same bytes as credentials. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::conf::model::{AuthHttpConf, AuthHttpPeer, Protocol};
use postern::mail::auth_http::{
    AuthHttpError, AuthHttpResponse, AuthMethod, AuthRequest, Progress, SslInfo,
};
use std::time::Duration;

fn run(data: &[u8], piece: usize) -> (Result<Progress, AuthHttpError<'static>>, AuthHttpResponse) {
    let mut r = AuthHttpResponse::new();
    let mut result = Ok(Progress::NeedMore);
    for chunk in data.chunks(piece.max(1)) {
        if result != Ok(Progress::NeedMore) {
            break;
        }
        let spare = r.spare();
        let n = chunk.len().min(spare.len());
        spare[..n].copy_from_slice(&chunk[..n]);
        result = r.feed(n);
    }
    if result == Ok(Progress::NeedMore) {
        result = r.feed(0);
    }
    (result, r)
}

fuzz_target!(|data: &[u8]| {
    let piece = usize::from(data.first().copied().unwrap_or(1) % 17) + 1;
    let (whole, w) = run(data, data.len());
    let (split, s) = run(data, piece);
    assert_eq!(whole, split);
    assert_eq!(w.user_override(), s.user_override());
    assert_eq!(w.pass_override(), s.pass_override());
    for protocol in [Protocol::Imap, Protocol::Pop3, Protocol::Smtp] {
        for has_password in [false, true] {
            let a = w.outcome(protocol, b"a1 ", has_password);
            assert_eq!(a, s.outcome(protocol, b"a1 ", has_password));
            if let Err(e) = a {
                let _ = e.log_message("127.0.0.1:9000");
            }
        }
    }

    let conf = AuthHttpConf {
        peer: AuthHttpPeer::Inet(vec!["127.0.0.1:9000".parse().unwrap()]),
        host_header: "localhost".into(),
        uri: "/auth".into(),
        timeout: Duration::from_secs(60),
        headers: vec![("X-Key".into(), "v".into())],
        pass_client_cert: true,
    };
    let req = AuthRequest {
        protocol: Protocol::Pop3,
        method: AuthMethod::CramMd5,
        login: data,
        passwd: data,
        salt: data,
        login_attempt: 1,
        client_addr: b"127.0.0.1",
        client_host: b"",
        smtp_helo: b"",
        smtp_from: b"",
        smtp_to: b"",
        proxy_protocol: None,
        ssl: Some(SslInfo {
            raw_cert: data,
            ..SslInfo::default()
        }),
    };
    let mut out = Vec::new();
    req.write_to(&conf, &mut out);
    // Escaped fields never carry a line break into the request: the only
    // ones are the builder's own twelve and the salt's (sent as is).
    let breaks = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count();
    if !data.is_empty() {
        assert_eq!(breaks(&out), 12 + breaks(data));
    }
});
