//! Contexts built from configurations, and the TLS stream over real
//! loopback sockets against an `openssl` crate client.

use super::cache::memory::MemoryCache;
use super::testutil::*;
use super::*;
use crate::conf::{
    self, CertSource, KeySource, Level, Origin, Passwords, Protocol, SessionCache,
    SessionCacheMode, SslConf, SslProtocols, StartTls, VerifyClient,
};
use crate::event::{Io, IoStatus};
use mio::{Events, Interest, Poll, Token};
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    SslConnector, SslMethod, SslSession, SslSessionCacheMode, SslVerifyMode, SslVersion,
};
use openssl::x509::X509;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Pki {
    dir: TempDir,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    ca: std::path::PathBuf,
    ca_cert: X509,
    ca_key: PKey<Private>,
    leaf: X509,
    leaf_key: PKey<Private>,
}

fn pki() -> Pki {
    let dir = TempDir::new("pki");
    let ca_key = rsa_key();
    let ca_cert = cert("Test CA", &ca_key, None, true, 1);
    let leaf_key = rsa_key();
    let leaf = cert("mail.test", &leaf_key, Some((&ca_cert, &ca_key)), false, 2);
    let certf = dir.write(
        "server.pem",
        format!("{}{}", pem(&leaf), pem(&ca_cert)).as_bytes(),
    );
    let keyf = dir.write("server.key", key_pem(&leaf_key).as_bytes());
    let ca = dir.write("ca.pem", pem(&ca_cert).as_bytes());
    Pki {
        dir,
        cert: certf,
        key: keyf,
        ca,
        ca_cert,
        ca_key,
        leaf,
        leaf_key,
    }
}

fn base(p: &Pki) -> SslConf {
    SslConf {
        ssl_on: false,
        starttls: StartTls::Off,
        certificates: vec![CertSource::File(p.cert.clone())],
        certificate_keys: vec![KeySource::File(p.key.clone())],
        password_file: None,
        passwords: None,
        certificate_compression: false,
        dhparam: None,
        ecdh_curve: "auto".into(),
        protocols: SslProtocols {
            tlsv1_2: true,
            tlsv1_3: true,
            ..Default::default()
        },
        ciphers: "HIGH:!aNULL:!MD5".into(),
        prefer_server_ciphers: false,
        session_cache: SessionCache {
            mode: SessionCacheMode::None,
            builtin: None,
            shared: None,
        },
        session_tickets: true,
        session_ticket_keys: Vec::new(),
        session_timeout: Duration::from_secs(300),
        verify_client: VerifyClient::Off,
        verify_depth: 1,
        client_certificate: None,
        trusted_certificate: None,
        crl: None,
        conf_commands: Vec::new(),
        origin: Origin::default(),
    }
}

fn at() -> Origin {
    Origin {
        file: "/etc/postern/postern.conf".into(),
        line: 9,
    }
}

fn build_with(
    ssl: &SslConf,
    keys: Option<Arc<TicketKeys>>,
    shared: Option<Arc<dyn SessionCacheBackend>>,
) -> Result<(ServerTls, Vec<conf::ConfMessage>), conf::ConfMessage> {
    let lookup = move |_: &conf::ShmZone| shared.clone();
    let mut env = BuildEnv {
        default_ticket_keys: keys,
        shared_cache: &lookup,
        at: at(),
        conf_prefix: "/etc/postern".into(),
        warnings: Vec::new(),
    };
    let t = ServerTls::build(ssl, Protocol::Imap, &mut env)?;
    Ok((t, env.warnings))
}

fn build(ssl: &SslConf) -> Result<ServerTls, conf::ConfMessage> {
    build_with(ssl, None, None).map(|(t, _)| t)
}

fn err(ssl: &SslConf) -> String {
    let e = build(ssl).unwrap_err();
    assert_eq!(e.level, Level::Emerg);
    e.text
}

/// What the server side saw.
#[derive(Debug)]
struct Served {
    result: Result<(), TlsError>,
    reused: bool,
    alpn: Option<Vec<u8>>,
    facts: TlsFacts,
    cert_check: Option<CertCheck>,
    line: Vec<u8>,
    wakeups: usize,
}

/// Accept one connection on `listener` and drive it with mio: handshake,
/// greeting, read one line, shutdown.
fn serve(tls: &ServerTls, listener: &TcpListener, verify: VerifyClient) -> Served {
    let (sock, _) = listener.accept().unwrap();
    sock.set_nonblocking(true).unwrap();
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(8);
    let stream = crate::event::Stream::Tcp(mio::net::TcpStream::from_std(sock));
    let mut s = tls.accept(Socket::new(stream)).unwrap();
    poll.registry()
        .register(&mut s, Token(0), Interest::READABLE)
        .unwrap();
    let mut wakeups = 0;
    let mut wait = |s: &mut TlsStream<Socket>, poll: &mut Poll| {
        let interest = s.blocked_on().unwrap_or(Want::Read).interest();
        poll.registry().reregister(s, Token(0), interest).unwrap();
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert!(!events.is_empty(), "timed out waiting for {interest:?}");
        wakeups += 1;
    };
    let mut served = Served {
        result: Ok(()),
        reused: false,
        alpn: None,
        facts: TlsFacts::default(),
        cert_check: None,
        line: Vec::new(),
        wakeups: 0,
    };
    loop {
        match s.handshake() {
            Handshake::Done => break,
            Handshake::WantRead | Handshake::WantWrite => wait(&mut s, &mut poll),
            Handshake::Failed(e) => {
                served.result = Err(e);
                served.wakeups = wakeups;
                return served;
            }
        }
    }
    served.reused = s.session_reused();
    served.alpn = s.alpn().map(<[u8]>::to_vec);
    served.facts = s.facts(verify, true);
    served.cert_check = Some(s.check_client_cert(verify));
    let greeting = b"* OK IMAP4 ready\r\n";
    let mut off = 0;
    while off < greeting.len() {
        match s.write(&greeting[off..]).unwrap() {
            IoStatus::Done(n) => off += n,
            IoStatus::WouldBlock => wait(&mut s, &mut poll),
            IoStatus::Closed => panic!("closed"),
        }
    }
    let mut buf = [0u8; 256];
    while !served.line.ends_with(b"\n") {
        match s.read(&mut buf) {
            Ok(IoStatus::Done(n)) => served.line.extend_from_slice(&buf[..n]),
            Ok(IoStatus::WouldBlock) => wait(&mut s, &mut poll),
            Ok(IoStatus::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    while s.shutdown() != Shutdown::Done {
        wait(&mut s, &mut poll);
    }
    served.wakeups = wakeups;
    served
}

#[derive(Default)]
struct Client {
    max: Option<SslVersion>,
    alpn: Option<&'static [u8]>,
    cert: Option<(Vec<X509>, PKey<Private>)>,
    session: Option<SslSession>,
}

struct ClientResult {
    ok: bool,
    greeting: Vec<u8>,
    session: Option<SslSession>,
    reused: bool,
    error: String,
}

fn connect(addr: std::net::SocketAddr, c: Client) -> ClientResult {
    let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    b.set_max_proto_version(c.max).unwrap();
    if let Some(a) = c.alpn {
        b.set_alpn_protos(a).unwrap();
    }
    if let Some((chain, key)) = &c.cert {
        b.set_certificate(&chain[0]).unwrap();
        for x in &chain[1..] {
            b.add_extra_chain_cert(x.clone()).unwrap();
        }
        b.set_private_key(key).unwrap();
    }
    let latest: Arc<Mutex<Option<SslSession>>> = Arc::default();
    let l2 = Arc::clone(&latest);
    // Sessions go to the callback only: a session left in the client
    // context's cache is marked not resumable when that context is freed.
    b.set_session_cache_mode(SslSessionCacheMode::CLIENT | SslSessionCacheMode::NO_INTERNAL_STORE);
    b.set_new_session_callback(move |_, s| *l2.lock().unwrap() = Some(s));
    let conn = b.build();
    let mut cfg = conn.configure().unwrap();
    cfg.set_verify_hostname(false);
    let mut ssl = cfg.into_ssl("mail.test").unwrap();
    if let Some(s) = &c.session {
        super::ffi::tests_set_session(&mut ssl, s);
    }
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    match ssl.connect(tcp) {
        Ok(mut s) => {
            let mut greeting = vec![0u8; 64];
            let n = s.read(&mut greeting).unwrap_or(0);
            greeting.truncate(n);
            let _ = s.write_all(b"a LOGOUT\r\n");
            let reused = s.ssl().session_reused();
            let mut rest = [0u8; 16];
            let _ = s.read(&mut rest);
            // A clean shutdown: OpenSSL marks the sessions of a connection
            // dropped without one as not resumable.
            let _ = s.shutdown();
            let session = latest
                .lock()
                .unwrap()
                .take()
                .or_else(|| s.ssl().session().map(|x| x.to_owned()));
            ClientResult {
                ok: true,
                greeting,
                session,
                reused,
                error: String::new(),
            }
        }
        Err(e) => ClientResult {
            ok: false,
            greeting: Vec::new(),
            session: None,
            reused: false,
            error: e.to_string(),
        },
    }
}

/// One connection: server on a thread, client here.
fn exchange(tls: &Arc<ServerTls>, verify: VerifyClient, client: Client) -> (Served, ClientResult) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = Arc::clone(tls);
    let h = std::thread::spawn(move || serve(&t, &listener, verify));
    let c = connect(addr, client);
    (h.join().unwrap(), c)
}

#[test]
fn handshake_greeting_and_facts() {
    let p = pki();
    let tls = Arc::new(build(&base(&p)).unwrap());
    let (s, c) = exchange(&tls, VerifyClient::Off, Client::default());
    assert!(s.result.is_ok(), "{:?}", s.result);
    assert!(c.ok, "{}", c.error);
    assert_eq!(c.greeting, b"* OK IMAP4 ready\r\n");
    assert_eq!(s.line, b"a LOGOUT\r\n");
    assert_eq!(s.facts.protocol, "TLSv1.3");
    assert_eq!(s.facts.cipher, "TLS_AES_256_GCM_SHA384");
    assert_eq!(s.facts.verify, "");
    // A handful of wake-ups, not a spin.
    assert!(s.wakeups < 20, "{} wakeups", s.wakeups);
    let (s, _) = exchange(
        &tls,
        VerifyClient::Off,
        Client {
            max: Some(SslVersion::TLS1_2),
            ..Client::default()
        },
    );
    assert_eq!(s.facts.protocol, "TLSv1.2");
    assert_eq!(s.facts.cipher, "ECDHE-RSA-AES256-GCM-SHA384");
}

#[test]
fn alpn_accepts_own_protocol_rejects_others() {
    let p = pki();
    let tls = Arc::new(build(&base(&p)).unwrap());
    let (s, c) = exchange(
        &tls,
        VerifyClient::Off,
        Client {
            alpn: Some(b"\x08http/1.1\x04imap"),
            ..Client::default()
        },
    );
    assert!(c.ok);
    assert_eq!(s.alpn.as_deref(), Some(&b"imap"[..]));
    let (s, c) = exchange(
        &tls,
        VerifyClient::Off,
        Client {
            alpn: Some(b"\x04pop3"),
            ..Client::default()
        },
    );
    assert!(!c.ok);
    assert!(c.error.contains("no application protocol"), "{}", c.error);
    let e = s.result.unwrap_err();
    assert_eq!(e.level, Level::Info);
    assert!(
        e.text.starts_with(
            "SSL_do_handshake() failed (SSL: error:0A0000EB:SSL routines::no application protocol"
        ),
        "{}",
        e.text
    );
}

#[test]
fn plain_client_is_logged_as_nginx() {
    let p = pki();
    let tls = Arc::new(build(&base(&p)).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = Arc::clone(&tls);
    let h = std::thread::spawn(move || serve(&t, &listener, VerifyClient::Off));
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"a CAPABILITY\r\n").unwrap();
    let s = h.join().unwrap();
    let e = s.result.unwrap_err();
    assert_eq!(e.level, Level::Info);
    assert!(
        e.text.contains("http request") || e.text.contains("wrong version number"),
        "{}",
        e.text
    );
    // A peer that goes away mid-handshake.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = Arc::clone(&tls);
    let h = std::thread::spawn(move || serve(&t, &listener, VerifyClient::Off));
    drop(TcpStream::connect(addr).unwrap());
    let e = h.join().unwrap().result.unwrap_err();
    assert_eq!(e.text, "peer closed connection in SSL handshake");
    assert_eq!(e.level, Level::Info);
}

#[test]
fn key_sources_data_encrypted_store() {
    let p = pki();
    // data: values
    let mut ssl = base(&p);
    ssl.certificates = vec![CertSource::Data(pem(&p.leaf))];
    ssl.certificate_keys = vec![KeySource::Data(key_pem(&p.leaf_key))];
    build(&ssl).unwrap();

    // an encrypted key: the second pass phrase is right
    let enc = p
        .leaf_key
        .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"right")
        .unwrap();
    let encf = p.dir.write("enc.key", &enc);
    let mut ssl = base(&p);
    ssl.certificate_keys = vec![KeySource::File(encf.clone())];
    ssl.passwords = Some(Passwords(vec![b"wrong".to_vec(), b"right".to_vec()]));
    build(&ssl).unwrap();
    // no pass phrases: fails without prompting
    ssl.passwords = None;
    let e = err(&ssl);
    assert!(
        e.starts_with(&format!(
            "cannot load certificate key \"{}\": PEM_read_bio_PrivateKey() failed (SSL: error:",
            encf.display()
        )),
        "{e}"
    );
    // As stock nginx words it (t/mail_ssl_config.t): the queue of the
    // last try.
    ssl.passwords = Some(Passwords(vec![b"first".to_vec(), b"second".to_vec()]));
    assert_eq!(
        err(&ssl),
        format!(
            "cannot load certificate key \"{}\": PEM_read_bio_PrivateKey() failed (SSL: error:1C800064:Provider routines::bad decrypt error:11800074:PKCS12 routines::pkcs12 cipherfinal error:maybe wrong password error:1C800064:Provider routines::bad decrypt error:11800074:PKCS12 routines::pkcs12 cipherfinal error:maybe wrong password)",
            encf.display()
        )
    );

    // a pass phrase longer than OpenSSL's buffer is cut, and said so
    ssl.passwords = Some(Passwords(vec![vec![b'x'; 2000]]));
    let lookup = |_: &conf::ShmZone| None;
    let mut env = BuildEnv {
        default_ticket_keys: None,
        shared_cache: &lookup,
        at: at(),
        conf_prefix: "/".into(),
        warnings: Vec::new(),
    };
    assert!(ServerTls::build(&ssl, Protocol::Imap, &mut env).is_err());
    assert_eq!(env.warnings[0].text, "password is truncated to 1024 bytes");
    assert_eq!(env.warnings[0].level, Level::Error);

    // store: tries every pass phrase (nginx tries only the first)
    let mut ssl = base(&p);
    ssl.certificate_keys = vec![KeySource::Store(format!("file:{}", encf.display()))];
    ssl.passwords = Some(Passwords(vec![b"wrong".to_vec(), b"right".to_vec()]));
    build(&ssl).unwrap();
    ssl.passwords = Some(Passwords(vec![b"wrong".to_vec()]));
    let e = err(&ssl);
    assert!(
        e.starts_with(&format!(
            "cannot load certificate key \"store:file:{}\": OSSL_STORE_load() failed",
            encf.display()
        )),
        "{e}"
    );
    ssl.certificate_keys = vec![KeySource::Store(format!("file:{}", p.key.display()))];
    ssl.passwords = None;
    build(&ssl).unwrap();
}

#[test]
fn rsa_and_ecdsa_certificates() {
    let p = pki();
    let ek = ec_key();
    let ec = cert("mail.test", &ek, Some((&p.ca_cert, &p.ca_key)), false, 3);
    let mut ssl = base(&p);
    ssl.certificates.push(CertSource::Data(pem(&ec)));
    ssl.certificate_keys.push(KeySource::Data(key_pem(&ek)));
    ssl.protocols.tlsv1_3 = false;
    let tls = Arc::new(build(&ssl).unwrap());
    let (s, c) = exchange(&tls, VerifyClient::Off, Client::default());
    assert!(c.ok);
    assert_eq!(s.facts.cipher, "ECDHE-ECDSA-AES256-GCM-SHA384");
}

#[test]
fn configuration_errors_worded_as_nginx() {
    let p = pki();
    let mut ssl = base(&p);
    let missing = p.dir.path().join("missing.pem");
    ssl.certificates = vec![CertSource::File(missing.clone())];
    assert_eq!(
        err(&ssl),
        format!(
            "cannot load certificate \"{0}\": BIO_new_file() failed (SSL: error:80000002:system library::No such file or directory:calling fopen({0}, r) error:10000080:BIO routines::no such file)",
            missing.display()
        )
    );
    let mut ssl = base(&p);
    ssl.certificate_keys = vec![KeySource::Data(key_pem(&rsa_key()))];
    let e = err(&ssl);
    assert!(
        e.starts_with("SSL_CTX_use_PrivateKey(\"data:-----BEGIN PRIVATE KEY-----"),
        "{e}"
    );
    assert!(
        e.ends_with("failed (SSL: error:05800074:x509 certificate routines::key values mismatch)"),
        "{e}"
    );

    // As stock nginx prints it for the same value.
    let mut ssl = base(&p);
    ssl.certificate_keys = vec![KeySource::Data("xx".into())];
    assert_eq!(
        err(&ssl),
        "cannot load certificate key \"data:xx\": PEM_read_bio_PrivateKey() failed (SSL: error:1E08010C:DECODER routines::unsupported:No supported data to decode. Input type: PEM)"
    );
    let mut ssl = base(&p);
    ssl.ciphers = "FOO".into();
    assert_eq!(
        err(&ssl),
        "SSL_CTX_set_cipher_list(\"FOO\") failed (SSL: error:0A0000B9:SSL routines::no cipher match)"
    );
    let mut ssl = base(&p);
    ssl.ecdh_curve = "bogus".into();
    assert_eq!(
        err(&ssl),
        "SSL_CTX_set1_curves_list(\"bogus\") failed (SSL: error:0A080106:SSL routines::passed invalid argument:group 'bogus' cannot be set)"
    );
    let mut ssl = base(&p);
    ssl.dhparam = Some(p.dir.path().join("nodh.pem"));
    assert!(err(&ssl).starts_with(&format!(
        "BIO_new_file(\"{}\") failed (SSL:",
        p.dir.path().join("nodh.pem").display()
    )));
    ssl.dhparam = Some(p.cert.clone());
    assert!(err(&ssl).starts_with(&format!(
        "PEM_read_bio_Parameters(\"{}\") failed",
        p.cert.display()
    )));
    let mut ssl = base(&p);
    ssl.conf_commands = vec![("Foo".into(), "bar".into())];
    assert!(err(&ssl).starts_with("SSL_CONF_cmd(\"Foo\", \"bar\") failed (SSL:"));
    ssl.conf_commands = vec![("Protocol".into(), "-TLSv1.3".into())];
    build(&ssl).unwrap();
    let mut ssl = base(&p);
    ssl.verify_client = VerifyClient::On;
    ssl.client_certificate = Some(p.dir.path().join("noca.pem"));
    assert!(err(&ssl).starts_with(&format!(
        "cannot load certificate \"{}\": BIO_new_file() failed",
        p.dir.path().join("noca.pem").display()
    )));
    let mut ssl = base(&p);
    ssl.verify_client = VerifyClient::On;
    ssl.client_certificate = Some(p.ca.clone());
    ssl.crl = Some(p.ca.clone());
    assert!(err(&ssl).starts_with(&format!(
        "cannot load CRL \"{}\": PEM_read_bio_X509_CRL() failed",
        p.ca.display()
    )));
    let mut ssl = base(&p);
    ssl.certificate_keys = vec![KeySource::Engine {
        engine: "pkcs11".into(),
        key_id: String::new(),
    }];
    assert_eq!(
        err(&ssl),
        "cannot load certificate key \"engine:pkcs11\": invalid syntax"
    );
    let mut ssl = base(&p);
    ssl.certificate_compression = true;
    let (_, w) = build_with(&ssl, None, None).unwrap();
    assert_eq!(
        w[0].text,
        "\"ssl_certificate_compression\" is not supported on this platform, ignored"
    );
    assert_eq!(w[0].level, Level::Warn);
}

#[test]
fn protocol_and_cipher_settings() {
    let p = pki();
    let mut ssl = base(&p);
    ssl.protocols = SslProtocols {
        tlsv1_2: true,
        ..Default::default()
    };
    let tls = Arc::new(build(&ssl).unwrap());
    let (s, _) = exchange(&tls, VerifyClient::Off, Client::default());
    assert_eq!(s.facts.protocol, "TLSv1.2");
    ssl.ciphers = "AES128-SHA".into();
    ssl.prefer_server_ciphers = true;
    let tls = Arc::new(build(&ssl).unwrap());
    let (s, _) = exchange(&tls, VerifyClient::Off, Client::default());
    assert_eq!(s.facts.cipher, "AES128-SHA");
    let mut ssl = base(&p);
    ssl.protocols = SslProtocols {
        tlsv1_3: true,
        ..Default::default()
    };
    let tls = Arc::new(build(&ssl).unwrap());
    let (s, c) = exchange(
        &tls,
        VerifyClient::Off,
        Client {
            max: Some(SslVersion::TLS1_2),
            ..Client::default()
        },
    );
    assert!(!c.ok);
    let e = s.result.unwrap_err();
    assert!(e.text.contains("unsupported protocol"), "{}", e.text);
    assert_eq!(e.level, Level::Info);
}

fn client_chain(p: &Pki, cn: &str, serial: u32) -> (Vec<X509>, PKey<Private>) {
    let k = rsa_key();
    let c = cert(cn, &k, Some((&p.ca_cert, &p.ca_key)), false, serial);
    (vec![c], k)
}

#[test]
fn client_certificates_every_mode() {
    let p = pki();
    let mut ssl = base(&p);
    ssl.verify_client = VerifyClient::On;
    ssl.client_certificate = Some(p.ca.clone());
    let tls = Arc::new(build(&ssl).unwrap());
    // on + good certificate
    let (s, c) = exchange(
        &tls,
        VerifyClient::On,
        Client {
            cert: Some(client_chain(&p, "alice", 0x1234)),
            ..Client::default()
        },
    );
    assert!(c.ok);
    assert_eq!(s.cert_check, Some(CertCheck::Ok));
    assert_eq!(s.facts.verify, "SUCCESS");
    assert_eq!(s.facts.subject, "CN=alice,O=Postern Test");
    assert_eq!(s.facts.issuer, "CN=Test CA,O=Postern Test");
    assert_eq!(s.facts.serial, "1234");
    assert_eq!(s.facts.fingerprint.len(), 40);
    assert!(s
        .facts
        .cert_pem
        .starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert_eq!(CertCheck::Ok.reply(Protocol::Imap), None);
    // on + none
    let (s, _) = exchange(&tls, VerifyClient::On, Client::default());
    assert_eq!(
        s.cert_check.as_ref().unwrap().reply(Protocol::Smtp),
        Some(&b"421 4.7.1 No required SSL certificate\r\n"[..])
    );
    assert_eq!(
        s.cert_check,
        Some(CertCheck::Missing(
            "client sent no required SSL certificate".into()
        ))
    );
    assert_eq!(s.facts.verify, "NONE");
    // optional + none
    let (s, _) = exchange(&tls, VerifyClient::Optional, Client::default());
    assert_eq!(s.cert_check, Some(CertCheck::Ok));
    // a self-signed client certificate
    let sk = rsa_key();
    let selfc = cert("mallory", &sk, None, false, 9);
    let (s, _) = exchange(
        &tls,
        VerifyClient::Optional,
        Client {
            cert: Some((vec![selfc.clone()], sk.clone())),
            ..Client::default()
        },
    );
    assert_eq!(
        s.cert_check,
        Some(CertCheck::Invalid(
            "client SSL certificate verify error: (18:self-signed certificate)".into()
        ))
    );
    assert_eq!(s.facts.verify, "FAILED:self-signed certificate");
    assert_eq!(
        s.cert_check.as_ref().unwrap().reply(Protocol::Imap),
        Some(&b"* BYE SSL certificate error\r\n"[..])
    );
    // optional_no_ca accepts it
    let (s, _) = exchange(
        &tls,
        VerifyClient::OptionalNoCa,
        Client {
            cert: Some((vec![selfc], sk)),
            ..Client::default()
        },
    );
    assert_eq!(s.cert_check, Some(CertCheck::Ok));
}

#[test]
fn client_ca_names_sent_or_not() {
    let p = pki();
    let mut ssl = base(&p);
    ssl.verify_client = VerifyClient::Optional;
    ssl.client_certificate = Some(p.ca.clone());
    let tls = build(&ssl).unwrap();
    let sent = Ssl_names(&tls);
    assert_eq!(sent, 1);
    ssl.client_certificate = None;
    ssl.trusted_certificate = Some(p.ca.clone());
    let tls = build(&ssl).unwrap();
    assert_eq!(Ssl_names(&tls), 0);
}

#[allow(non_snake_case)]
fn Ssl_names(tls: &ServerTls) -> usize {
    super::ffi::tests_client_ca_count(tls.context())
}

#[test]
fn crl_and_depth() {
    let p = pki();
    // an intermediate CA between the root and the client
    let ik = rsa_key();
    let inter = cert("Intermediate", &ik, Some((&p.ca_cert, &p.ca_key)), true, 50);
    let ck = rsa_key();
    let leaf = cert("bob", &ck, Some((&inter, &ik)), false, 51);
    let mut ssl = base(&p);
    ssl.verify_client = VerifyClient::On;
    ssl.client_certificate = Some(p.ca.clone());
    ssl.verify_depth = 0;
    let tls = Arc::new(build(&ssl).unwrap());
    let client = || Client {
        cert: Some((vec![leaf.clone(), inter.clone()], ck.clone())),
        ..Client::default()
    };
    let (s, _) = exchange(&tls, VerifyClient::On, client());
    assert_eq!(
        s.cert_check,
        Some(CertCheck::Invalid(
            "client SSL certificate verify error: (20:unable to get local issuer certificate)"
                .into()
        ))
    );
    ssl.verify_depth = 1;
    let tls = Arc::new(build(&ssl).unwrap());
    let (s, _) = exchange(&tls, VerifyClient::On, client());
    assert_eq!(s.cert_check, Some(CertCheck::Ok));

    // A CRL from the root revoking a client certificate.
    let (chain, key) = client_chain(&p, "carol", 77);
    let crl = p.dir.path().join("crl.pem");
    let cnf = p.dir.write(
        "ca.cnf",
        format!(
            "[ca]\ndefault_ca=x\n[x]\ndatabase={0}/index.txt\ncrlnumber={0}/crlnumber\ndefault_md=sha256\ndefault_crl_days=2\n",
            p.dir.path().display()
        )
        .as_bytes(),
    );
    p.dir.write("index.txt", b"");
    p.dir.write("crlnumber", b"01\n");
    let carol = p.dir.write("carol.pem", pem(&chain[0]).as_bytes());
    let cakey = p.dir.write("ca.key", key_pem(&p.ca_key).as_bytes());
    let run = |args: &[&str]| {
        let st = std::process::Command::new("openssl")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "openssl {args:?}");
    };
    let (cnf_s, ca_s, key_s, carol_s, crl_s) = (
        cnf.display().to_string(),
        p.ca.display().to_string(),
        cakey.display().to_string(),
        carol.display().to_string(),
        crl.display().to_string(),
    );
    run(&[
        "ca", "-config", &cnf_s, "-cert", &ca_s, "-keyfile", &key_s, "-revoke", &carol_s,
    ]);
    run(&[
        "ca", "-config", &cnf_s, "-cert", &ca_s, "-keyfile", &key_s, "-gencrl", "-out", &crl_s,
    ]);
    let mut ssl = base(&p);
    ssl.verify_client = VerifyClient::On;
    ssl.client_certificate = Some(p.ca.clone());
    ssl.crl = Some(crl);
    let tls = Arc::new(build(&ssl).unwrap());
    let (s, _) = exchange(
        &tls,
        VerifyClient::On,
        Client {
            cert: Some((chain, key)),
            ..Client::default()
        },
    );
    assert_eq!(
        s.cert_check,
        Some(CertCheck::Invalid(
            "client SSL certificate verify error: (23:certificate revoked)".into()
        ))
    );
    let (s, _) = exchange(
        &tls,
        VerifyClient::On,
        Client {
            cert: Some(client_chain(&p, "dave", 78)),
            ..Client::default()
        },
    );
    assert_eq!(s.cert_check, Some(CertCheck::Ok));
}

/// Two connections to (possibly different) contexts; whether the second
/// resumed.
fn resumes(first: &Arc<ServerTls>, second: &Arc<ServerTls>, max: Option<SslVersion>) -> bool {
    let (s, c) = exchange(
        first,
        VerifyClient::Off,
        Client {
            max,
            ..Client::default()
        },
    );
    assert!(s.result.is_ok() && c.ok);
    assert!(!s.reused);
    let Some(session) = c.session else {
        return false;
    };

    let (s, c) = exchange(
        second,
        VerifyClient::Off,
        Client {
            max,
            session: Some(session),
            ..Client::default()
        },
    );
    assert_eq!(s.reused, c.reused);
    s.reused
}

#[test]
fn resumption_with_tickets_across_workers() {
    let p = pki();
    let ssl = base(&p);
    let keys = Arc::new(TicketKeys::generate().unwrap());
    // Two "workers": contexts built separately with the master's keys.
    let a = Arc::new(build_with(&ssl, Some(Arc::clone(&keys)), None).unwrap().0);
    let b = Arc::new(build_with(&ssl, Some(Arc::clone(&keys)), None).unwrap().0);
    assert!(resumes(&a, &b, None));
    assert!(resumes(&a, &b, Some(SslVersion::TLS1_2)));
    // Without shared keys, another context cannot decrypt the ticket.
    let c = Arc::new(build(&ssl).unwrap());
    assert!(!resumes(&a, &c, None));
    // Tickets off and no cache: no resumption at all.
    let mut off = base(&p);
    off.session_tickets = false;
    let d = Arc::new(build_with(&off, Some(keys), None).unwrap().0);
    assert!(!resumes(&d, &d, Some(SslVersion::TLS1_2)));
}

#[test]
fn ticket_key_files_rotation() {
    let p = pki();
    let k1 = p.dir.write("k1", &[1u8; 80]);
    let k2 = p.dir.write("k2", &[2u8; 48]);
    let mut ssl = base(&p);
    ssl.session_ticket_keys = vec![k1.clone()];
    let old = Arc::new(build(&ssl).unwrap());
    ssl.session_ticket_keys = vec![k2.clone(), k1.clone()];
    let rotated = Arc::new(build(&ssl).unwrap());
    ssl.session_ticket_keys = vec![k2];
    let new_only = Arc::new(build(&ssl).unwrap());
    assert!(resumes(&old, &rotated, None));
    assert!(resumes(&old, &rotated, Some(SslVersion::TLS1_2)));
    assert!(!resumes(&old, &new_only, Some(SslVersion::TLS1_2)));
    assert!(resumes(&rotated, &new_only, Some(SslVersion::TLS1_2)));
}

#[test]
fn builtin_and_shared_caches() {
    let p = pki();
    let mut ssl = base(&p);
    ssl.session_tickets = false;
    ssl.session_cache = SessionCache {
        mode: SessionCacheMode::Cache,
        builtin: Some(None),
        shared: None,
    };
    let builtin = Arc::new(build(&ssl).unwrap());
    assert!(resumes(&builtin, &builtin, Some(SslVersion::TLS1_2)));
    assert!(resumes(&builtin, &builtin, None));
    // "none" pretends: a session id is given but nothing is stored.
    ssl.session_cache.mode = SessionCacheMode::None;
    ssl.session_cache.builtin = None;
    let none = Arc::new(build(&ssl).unwrap());
    assert!(!resumes(&none, &none, Some(SslVersion::TLS1_2)));
    // shared only: two contexts (workers) over one backend.
    let mem = Arc::new(MemoryCache::default());
    ssl.session_cache = SessionCache {
        mode: SessionCacheMode::Cache,
        builtin: None,
        shared: Some(conf::ShmZone {
            name: "SSL".into(),
            size: 1 << 20,
        }),
    };
    let backend: Arc<dyn SessionCacheBackend> = mem.clone();
    let a = Arc::new(
        build_with(&ssl, None, Some(Arc::clone(&backend)))
            .unwrap()
            .0,
    );
    let b = Arc::new(build_with(&ssl, None, Some(backend)).unwrap().0);
    assert!(resumes(&a, &b, Some(SslVersion::TLS1_2)));
    assert!(resumes(&b, &a, None));
    assert!(*mem.stores.lock().unwrap() >= 2);
    // With tickets on, TLSv1.3 sessions travel in tickets and are not
    // stored in the shared cache (as nginx).
    let before = *mem.stores.lock().unwrap();
    ssl.session_tickets = true;
    let keys = Arc::new(TicketKeys::generate().unwrap());
    let backend: Arc<dyn SessionCacheBackend> = mem.clone();
    let c = Arc::new(build_with(&ssl, Some(keys), Some(backend)).unwrap().0);
    assert!(resumes(&c, &c, None));
    assert_eq!(*mem.stores.lock().unwrap(), before);
}

#[test]
fn refused_client_certificate_drops_session() {
    let p = pki();
    let mut ssl = base(&p);
    ssl.session_tickets = false;
    ssl.verify_client = VerifyClient::On;
    ssl.client_certificate = Some(p.ca.clone());
    let mem = Arc::new(MemoryCache::default());
    ssl.session_cache = SessionCache {
        mode: SessionCacheMode::Cache,
        builtin: None,
        shared: Some(conf::ShmZone {
            name: "SSL".into(),
            size: 1 << 20,
        }),
    };
    let backend: Arc<dyn SessionCacheBackend> = mem.clone();
    let tls = Arc::new(build_with(&ssl, None, Some(backend)).unwrap().0);
    let (s, _) = exchange(
        &tls,
        VerifyClient::On,
        Client {
            max: Some(SslVersion::TLS1_2),
            ..Client::default()
        },
    );
    assert!(matches!(s.cert_check, Some(CertCheck::Missing(_))));
    assert_eq!(*mem.removes.lock().unwrap(), 1);
    assert!(mem.map.lock().unwrap().is_empty());
}

#[test]
fn check_config_reports_first_error() {
    let p = pki();
    let dir = &p.dir;
    let conf_text = |key: &str| {
        format!(
            "events {{}}\nmail {{\n auth_http 127.0.0.1:9000/auth;\n server {{\n  listen 127.0.0.1:18993 ssl;\n  protocol imap;\n  ssl_certificate {};\n  ssl_certificate_key {key};\n  ssl_password_file pw;\n }}\n server {{\n  listen 127.0.0.1:18143;\n  protocol imap;\n }}\n}}\n",
            p.cert.display()
        )
    };
    let enc = p
        .leaf_key
        .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_128_cbc(), b"s3cret")
        .unwrap();
    let encf = dir.write("enc.key", &enc);
    // The password file is a named pipe written once: it is read once.
    let fifo = dir.path().join("pw");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe_mkfifo(&c), 0);
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, b"first\ns3cret\n").unwrap())
    };
    let cf = dir.write("p.conf", conf_text(&encf.display().to_string()).as_bytes());
    let mut opts = conf::default_options(dir.path());
    opts.conf_file = cf;
    let loaded = conf::load(&opts).unwrap();
    writer.join().unwrap();
    assert!(server_needs_tls(&loaded.config, 0));
    assert!(!server_needs_tls(&loaded.config, 1));
    assert_eq!(check_config(&loaded.config).unwrap(), Vec::new());
    let keys = Arc::new(TicketKeys::generate().unwrap());
    let (servers, _) = build_servers(&loaded.config, Some(keys), &|_| None).unwrap();
    assert!(servers[0].is_some() && servers[1].is_none());

    // Located messages name the closing brace of mail {}, as nginx's.
    let mut bad = loaded.config.clone();
    let short = dir.write("short.key", &[0u8; 47]);
    bad.mail.as_mut().unwrap().servers[0]
        .ssl
        .session_ticket_keys = vec![short.clone()];
    assert_eq!(
        check_config(&bad).unwrap_err().text,
        format!(
            "\"{}\" must be 48 or 80 bytes in {}:15",
            short.display(),
            dir.path().join("p.conf").display()
        )
    );
    let mut bad = loaded.config.clone();
    let missing = dir.path().join("nokey.pem");
    bad.mail.as_mut().unwrap().servers[0].ssl.certificate_keys =
        vec![KeySource::File(missing.clone())];
    let e = check_config(&bad).unwrap_err();
    assert!(
        e.text.starts_with(&format!(
            "cannot load certificate key \"{}\": BIO_new_file() failed (SSL: error:80000002:system library::No such file or directory:calling fopen({}, r)",
            missing.display(),
            missing.display()
        )),
        "{}",
        e.text
    );
}

fn unsafe_mkfifo(path: &std::ffi::CStr) -> i32 {
    super::ffi::tests_mkfifo(path)
}

/// A SoftHSM2 token in a temporary directory with the server key on it;
/// `None` (and the test is skipped with a note) when SoftHSM2 or the
/// PKCS#11 engine is not installed.
fn softhsm_token(p: &Pki) -> Option<String> {
    // The engine directory of the system OpenSSL (`ENGINESDIR: "..."`).
    let engines = std::process::Command::new("openssl")
        .args(["version", "-e"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split('"').nth(1).map(str::to_string))
        .unwrap_or_default();
    let have_util = std::process::Command::new("softhsm2-util")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_util || !Path::new(&engines).join("pkcs11.so").exists() {
        eprintln!("softhsm2-util or the pkcs11 engine is missing: engine test skipped");
        return None;
    }
    let tokens = p.dir.path().join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = p.dir.write(
        "softhsm2.conf",
        format!("directories.tokendir = {}\n", tokens.display()).as_bytes(),
    );
    // The engine reaches SoftHSM2 through p11-kit, which reads this.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let run = |args: &[&str]| {
        let out = std::process::Command::new("softhsm2-util")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "softhsm2-util {args:?}: {out:?}");
    };
    run(&[
        "--init-token",
        "--free",
        "--label",
        "postern",
        "--pin",
        "1234",
        "--so-pin",
        "5678",
    ]);
    let key = p.key.display().to_string();
    run(&[
        "--import", &key, "--token", "postern", "--label", "mailkey", "--id", "01", "--pin", "1234",
    ]);
    Some("pkcs11:token=postern;object=mailkey;type=private;pin-value=1234".to_string())
}

#[test]
fn engine_key_from_softhsm() {
    let p = pki();
    let Some(id) = softhsm_token(&p) else {
        return;
    };
    let mut ssl = base(&p);
    ssl.certificate_keys = vec![KeySource::Engine {
        engine: "pkcs11".into(),
        key_id: id.clone(),
    }];
    let tls = Arc::new(build(&ssl).unwrap());
    let (s, c) = exchange(&tls, VerifyClient::Off, Client::default());
    assert!(s.result.is_ok() && c.ok, "{:?} {}", s.result, c.error);
    assert_eq!(c.greeting, b"* OK IMAP4 ready\r\n");
    // TLSv1.2 signs with the token's key too.
    let (s, c) = exchange(
        &tls,
        VerifyClient::Off,
        Client {
            max: Some(SslVersion::TLS1_2),
            ..Client::default()
        },
    );
    assert!(s.result.is_ok() && c.ok);

    // A key id the token does not have, and an engine that does not exist.
    ssl.certificate_keys = vec![KeySource::Engine {
        engine: "pkcs11".into(),
        key_id: "pkcs11:token=postern;object=nokey;pin-value=1234".into(),
    }];
    assert!(err(&ssl).starts_with(
        "cannot load certificate key \"engine:pkcs11:pkcs11:token=postern;object=nokey;pin-value=1234\": ENGINE_load_private_key() failed"
    ));
    ssl.certificate_keys = vec![KeySource::Engine {
        engine: "noengine".into(),
        key_id: "x".into(),
    }];
    assert!(err(&ssl).starts_with(
        "cannot load certificate key \"engine:noengine:x\": ENGINE_by_id() failed (SSL:"
    ));

    // A worker that builds its contexts after fork, before it drops
    // privileges and resets its environment (only `env` variables stay, so
    // SOFTHSM2_CONF goes), keeps using the token: every PKCS#11 session is
    // opened by the process that signs. SoftHSM2 re-reads its token files
    // on each operation, so the token must be readable by the workers'
    // user.
    ssl.certificate_keys = vec![KeySource::Engine {
        engine: "pkcs11".into(),
        key_id: id,
    }];
    let ssl = Arc::new(ssl);
    // The token is the workers' (root reads it anyway).
    let st = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(p.dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let worker = || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let ssl = Arc::clone(&ssl);
        let pid = crate::shm::testing::fork(move || {
            let tls = build(&ssl).unwrap();
            std::env::remove_var("SOFTHSM2_CONF");
            if !super::ffi::tests_drop_privileges(65534, 65534) {
                return 3;
            }
            match serve(&tls, &listener, VerifyClient::Off).result {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("worker: {e:?}");
                    1
                }
            }
        });
        let c = connect(addr, Client::default());
        (c.ok, crate::shm::testing::wait(pid))
    };
    assert_eq!(worker(), (true, 0));
}

#[test]
fn shared_memory_cache_and_shared_ticket_keys() {
    use crate::tls::session_store::SessionStore;
    let p = pki();
    let zone = conf::ShmZone {
        name: "SSL".into(),
        size: 1 << 20,
    };
    // As the master does: map the zones, attach the stores.
    let zones = crate::shm::ZoneSet::new()
        .reconcile(std::slice::from_ref(&zone))
        .unwrap();
    let stores = SessionStores::attach(&zones).unwrap();
    let other = conf::ShmZone {
        name: "other".into(),
        size: 1 << 20,
    };
    assert!(stores.get(&other).is_none());
    let store = SessionStore::attach(zones.get("SSL").unwrap().clone()).unwrap();
    let mut ssl = base(&p);
    ssl.session_cache = SessionCache {
        mode: SessionCacheMode::Cache,
        builtin: None,
        shared: Some(zone.clone()),
    };
    // Tickets on, no key files: keys live in the zone, so two workers'
    // contexts (built without the master's keys) accept each other's
    // tickets.
    let a = Arc::new(build_with(&ssl, None, stores.get(&zone)).unwrap().0);
    let b = Arc::new(build_with(&ssl, None, stores.get(&zone)).unwrap().0);
    assert!(resumes(&a, &b, None));
    assert!(resumes(&b, &a, Some(SslVersion::TLS1_2)));
    // Tickets off: sessions themselves go to the zone.
    ssl.session_tickets = false;
    let c = Arc::new(build_with(&ssl, None, stores.get(&zone)).unwrap().0);
    let d = Arc::new(build_with(&ssl, None, stores.get(&zone)).unwrap().0);
    let before = store.stats().unwrap();
    assert!(resumes(&c, &d, Some(SslVersion::TLS1_2)));
    assert!(resumes(&d, &c, None));
    let after = store.stats().unwrap();
    assert!(after.stored >= before.stored + 2, "{before:?} {after:?}");
    assert!(after.hits >= before.hits + 2, "{before:?} {after:?}");
}

#[test]
fn sessions_expire_after_ssl_session_timeout() {
    let p = pki();
    let mut ssl = base(&p);
    ssl.session_timeout = Duration::from_secs(1);
    ssl.session_cache = SessionCache {
        mode: SessionCacheMode::Cache,
        builtin: Some(None),
        shared: None,
    };
    let keys = Arc::new(TicketKeys::generate().unwrap());
    let tls = Arc::new(build_with(&ssl, Some(keys), None).unwrap().0);
    for max in [None, Some(SslVersion::TLS1_2)] {
        let (s, c) = exchange(
            &tls,
            VerifyClient::Off,
            Client {
                max,
                ..Client::default()
            },
        );
        assert!(s.result.is_ok() && c.ok);
        std::thread::sleep(Duration::from_millis(2100));
        let (s, _) = exchange(
            &tls,
            VerifyClient::Off,
            Client {
                max,
                session: c.session,
                ..Client::default()
            },
        );
        assert!(!s.reused, "{max:?}");
    }
}

#[test]
fn tls13_resumption_does_not_extend_session_lifetime() {
    let p = pki();
    let mut ssl = base(&p);
    ssl.session_timeout = Duration::from_secs(3);
    let keys = Arc::new(TicketKeys::generate().unwrap());
    let tls = Arc::new(build_with(&ssl, Some(keys), None).unwrap().0);
    let (_, c) = exchange(&tls, VerifyClient::Off, Client::default());
    std::thread::sleep(Duration::from_millis(2100));
    let (s, c) = exchange(
        &tls,
        VerifyClient::Off,
        Client {
            session: c.session,
            ..Client::default()
        },
    );
    assert!(s.reused);
    // The ticket issued on resumption keeps the first session's deadline.
    std::thread::sleep(Duration::from_millis(2100));
    let (s, _) = exchange(
        &tls,
        VerifyClient::Off,
        Client {
            session: c.session,
            ..Client::default()
        },
    );
    assert!(!s.reused);
}

#[test]
fn shutdown_waits_for_close_notify_until_broken() {
    let p = pki();
    let tls = Arc::new(build(&base(&p)).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // A client that takes the greeting and then stays silent.
    let client = std::thread::spawn(move || {
        let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
        b.set_verify(SslVerifyMode::NONE);
        let tcp = TcpStream::connect(addr).unwrap();
        let mut s = b.build().connect("mail.test", tcp).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        n
    });
    let (sock, _) = listener.accept().unwrap();
    sock.set_nonblocking(true).unwrap();
    let stream = crate::event::Stream::Tcp(mio::net::TcpStream::from_std(sock));
    let mut s = tls.accept(Socket::new(stream)).unwrap();
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(4);
    poll.registry()
        .register(&mut s, Token(0), Interest::READABLE | Interest::WRITABLE)
        .unwrap();
    loop {
        match s.handshake() {
            Handshake::Done => break,
            Handshake::Failed(e) => panic!("{e:?}"),
            _ => poll
                .poll(&mut events, Some(Duration::from_secs(5)))
                .unwrap(),
        }
    }
    assert_eq!(s.write(b"* OK\r\n").unwrap(), IoStatus::Done(6));
    assert_eq!(s.shutdown(), Shutdown::WantRead);
    assert_eq!(s.blocked_on(), Some(Want::Read));
    // The peer does not answer: the session gives up after the timeout.
    s.set_broken();
    assert_eq!(s.shutdown(), Shutdown::Done);
    assert_eq!(client.join().unwrap(), 6);
}

#[test]
fn large_writes_to_a_slow_reader_wait_for_writability() {
    let p = pki();
    let tls = Arc::new(build(&base(&p)).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // More than loopback's largest send and receive buffers together
    // (tcp_wmem 4 MB + tcp_rmem 6 MB by default), so the writes must
    // block whatever the timing.
    const TOTAL: usize = 24 << 20;
    let client = std::thread::spawn(move || {
        let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
        b.set_verify(SslVerifyMode::NONE);
        let tcp = TcpStream::connect(addr).unwrap();
        let mut s = b.build().connect("mail.test", tcp).unwrap();
        // Let the server fill the socket first.
        std::thread::sleep(Duration::from_millis(200));
        let mut got = 0;
        let mut buf = vec![0u8; 65536];
        while got < TOTAL {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    assert!(buf[..n].iter().all(|&b| b == b'x'));
                    got += n;
                }
            }
        }
        got
    });
    let (sock, _) = listener.accept().unwrap();
    sock.set_nonblocking(true).unwrap();
    let stream = crate::event::Stream::Tcp(mio::net::TcpStream::from_std(sock));
    let mut s = tls.accept(Socket::new(stream)).unwrap();
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(4);
    poll.registry()
        .register(&mut s, Token(0), Interest::READABLE | Interest::WRITABLE)
        .unwrap();
    let mut waits = 0;
    loop {
        match s.handshake() {
            Handshake::Done => break,
            Handshake::Failed(e) => panic!("{e:?}"),
            _ => poll
                .poll(&mut events, Some(Duration::from_secs(5)))
                .unwrap(),
        }
    }
    // The buffer moves between retries: a new Vec each time, allocated
    // while the previous one is still alive.
    let mut sent = 0;
    let mut blocked = 0;
    let mut previous: Vec<u8> = Vec::new();
    while sent < TOTAL {
        let chunk = vec![b'x'; (TOTAL - sent).min(100_000)];
        assert_ne!(chunk.as_ptr(), previous.as_ptr());
        let r = s.write(&chunk).unwrap();
        previous = chunk;
        match r {
            IoStatus::Done(n) => sent += n,
            IoStatus::WouldBlock => {
                blocked += 1;
                assert_eq!(s.blocked_on(), Some(Want::Write));
                poll.poll(&mut events, Some(Duration::from_secs(5)))
                    .unwrap();
                assert!(!events.is_empty());
                waits += 1;
            }
            IoStatus::Closed => panic!("closed"),
        }
    }
    assert!(blocked > 0, "the socket never filled");
    assert!(waits < 2000, "{waits} wake-ups");
    assert_eq!(client.join().unwrap(), TOTAL);
}

/// Drive a client and a server handshake over a socket pair in one thread.
fn pair_handshake(
    tls: &ServerTls,
    connector: &SslConnector,
) -> (
    TlsStream<Socket>,
    openssl::ssl::SslStream<std::os::unix::net::UnixStream>,
) {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let stream = crate::event::Stream::Unix(mio::net::UnixStream::from_std(a));
    let mut server = tls.accept(Socket::new(stream)).unwrap();
    let ssl = connector
        .configure()
        .unwrap()
        .verify_hostname(false)
        .into_ssl("mail.test")
        .unwrap();
    let mut client = openssl::ssl::SslStream::new(ssl, b).unwrap();
    let mut client_done = false;
    let mut server_done = false;
    for _ in 0..100 {
        if !client_done {
            match client.connect() {
                Ok(()) => client_done = true,
                Err(e) if e.code() == openssl::ssl::ErrorCode::WANT_READ => {}
                Err(e) => panic!("{e}"),
            }
        }
        if !server_done {
            match server.handshake() {
                Handshake::Done => server_done = true,
                Handshake::Failed(e) => panic!("{e:?}"),
                _ => {}
            }
        }
        if client_done && server_done {
            return (server, client);
        }
    }
    panic!("handshake did not finish");
}

#[test]
fn idle_connections_stay_small() {
    let p = pki();
    let ssl = base(&p);
    let out = p.dir.path().join("per-connection");
    let out2 = out.clone();
    // Measured in a forked child: the only thread allocating there.
    let pid = crate::shm::testing::fork(move || {
        let tls = build(&ssl).unwrap();
        let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
        b.set_verify(SslVerifyMode::NONE);
        let connector = b.build();
        const N: usize = 200;
        // Warm up OpenSSL's lazily made tables.
        drop(pair_handshake(&tls, &connector));
        let before = super::ffi::tests_heap_in_use();
        let mut idle = Vec::with_capacity(N);
        for _ in 0..N {
            let (mut server, mut client) = pair_handshake(&tls, &connector);
            // The greeting goes out; then the connection waits for the
            // client, with nothing buffered.
            assert_eq!(
                server.write(b"* OK IMAP4 ready\r\n").unwrap(),
                IoStatus::Done(18)
            );
            let mut buf = [0u8; 64];
            assert_eq!(client.read(&mut buf).unwrap(), 18);
            let mut rbuf = [0u8; 16];
            assert_eq!(server.read(&mut rbuf).unwrap(), IoStatus::WouldBlock);
            drop(client);
            idle.push(server);
        }
        let per = (super::ffi::tests_heap_in_use() - before) / N;
        std::fs::write(&out2, per.to_string()).unwrap();
        drop(idle);
        0
    });
    assert_eq!(crate::shm::testing::wait(pid), 0);
    let per: usize = std::fs::read_to_string(&out).unwrap().parse().unwrap();
    eprintln!("heap per idle TLS connection: {per} bytes");
    // With OpenSSL 3.0 an SSL object alone takes about 9 KB and an idle
    // TLSv1.3 connection about 15.5 KB; holding the read and write buffers
    // (no SSL_MODE_RELEASE_BUFFERS) would take about 48 KB.
    assert!(per < 20 * 1024, "{per} bytes per idle connection");
}

#[test]
fn sessions_resume_across_worker_processes() {
    let p = pki();
    let zone = conf::ShmZone {
        name: "SSL".into(),
        size: 1 << 20,
    };
    // The master maps the zone and attaches the store before forking.
    let zones = crate::shm::ZoneSet::new()
        .reconcile(std::slice::from_ref(&zone))
        .unwrap();
    let stores = SessionStores::attach(&zones).unwrap();
    let mut ssl = base(&p);
    ssl.session_cache = SessionCache {
        mode: SessionCacheMode::Cache,
        builtin: None,
        shared: Some(zone.clone()),
    };
    for (tickets, max) in [
        (false, Some(SslVersion::TLS1_2)),
        (false, None),
        (true, None),
        (true, Some(SslVersion::TLS1_2)),
    ] {
        ssl.session_tickets = tickets;
        // A worker process: builds its context, serves one connection and
        // says whether it was resumed.
        let worker = |listener: TcpListener| {
            let ssl = ssl.clone();
            let shared = stores.get(&zone);
            crate::shm::testing::fork(move || {
                let tls = build_with(&ssl, None, shared).unwrap().0;
                let s = serve(&tls, &listener, VerifyClient::Off);
                match (s.result, s.reused) {
                    (Ok(()), false) => 10,
                    (Ok(()), true) => 11,
                    (Err(_), _) => 1,
                }
            })
        };
        let l1 = TcpListener::bind("127.0.0.1:0").unwrap();
        let a1 = l1.local_addr().unwrap();
        let w1 = worker(l1);
        let c = connect(
            a1,
            Client {
                max,
                ..Client::default()
            },
        );
        assert_eq!(crate::shm::testing::wait(w1), 10);
        let l2 = TcpListener::bind("127.0.0.1:0").unwrap();
        let a2 = l2.local_addr().unwrap();
        let w2 = worker(l2);
        let c2 = connect(
            a2,
            Client {
                max,
                session: c.session,
                ..Client::default()
            },
        );
        assert!(c2.reused, "tickets {tickets}, {max:?}");
        assert_eq!(crate::shm::testing::wait(w2), 11);
    }
}
