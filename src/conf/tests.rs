//! Whole-configuration tests: typical files load into the expected
//! structs, and broken ones give nginx's exact message.

use super::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A private directory holding `n.conf` with `text`.
fn setup(text: &str) -> (PathBuf, LoadOptions) {
    let dir = std::env::temp_dir().join(format!(
        "postern-conf-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let text = text.replace("D/", &format!("{}/", dir.display()));
    std::fs::write(dir.join("n.conf"), text).unwrap();
    let opts = LoadOptions {
        prefix: dir.clone(),
        conf_file: dir.join("n.conf"),
        globals: None,
        default_error_log: LogTarget::Stderr,
    };
    (dir, opts)
}

fn load_text(text: &str) -> Result<Loaded, ConfMessage> {
    let (dir, opts) = setup(text);
    let r = load(&opts);
    std::fs::remove_dir_all(&dir).unwrap();
    r
}

/// Replace the temp dir in messages by `D` so expectations stay readable.
fn error_of(text: &str) -> String {
    let (dir, opts) = setup(text);
    let r = load(&opts);
    std::fs::remove_dir_all(&dir).unwrap();
    match r {
        Ok(_) => "loaded".to_string(),
        Err(e) => e.text.replace(&dir.display().to_string(), "D"),
    }
}

const BASE: &str = "events {}\n";

fn mail(body: &str) -> String {
    format!("{BASE}mail {{\n auth_http 127.0.0.1:9000/auth;\n{body}\n}}\n")
}

#[test]
fn typical_config() {
    let text = "\
worker_processes 2;
error_log stderr info;
events { worker_connections 100; }
mail {
    server_name mail.example.com;
    auth_http 127.0.0.1:9000/auth;
    imap_capabilities IMAP4rev1 IDLE;
    server { listen 127.0.0.1:8143; protocol imap; }
    server { listen 110; }
    server { listen [::1]:8025 bind; protocol smtp; smtp_auth login plain cram-md5; timeout 5s; }
}
";
    let l = load_text(text).unwrap();
    let c = l.config;
    assert_eq!(c.main.worker_processes, 2);
    assert_eq!(
        c.main.error_log,
        [ErrorLog {
            target: LogTarget::Stderr,
            level: Level::Info
        }]
    );
    assert_eq!(c.events.worker_connections, 100);
    let m = c.mail.unwrap();
    assert_eq!(m.servers.len(), 3);
    assert_eq!(m.servers[0].protocol, Protocol::Imap);
    assert_eq!(m.servers[1].protocol, Protocol::Pop3);
    assert_eq!(m.servers[2].protocol, Protocol::Smtp);
    assert_eq!(m.servers[0].imap.capabilities, ["IMAP4rev1", "IDLE"]);
    assert_eq!(m.servers[0].server_name, "mail.example.com");
    assert_eq!(m.servers[2].timeout, std::time::Duration::from_secs(5));
    assert_eq!(m.servers[0].timeout, std::time::Duration::from_secs(60));
    assert!(m.servers[2].smtp.auth.cram_md5);
    assert_eq!(m.listens.len(), 3);
    assert_eq!(m.listens[0].addr_text, "127.0.0.1:8143");
    assert_eq!(m.listens[1].addr_text, "0.0.0.0:110");
    assert!(m.listens[1].wildcard);
    assert_eq!(m.listens[2].addr_text, "[::1]:8025");
    assert!(m.listens[2].bind);
    assert_eq!(m.listens[2].server, 2);
    assert_eq!(m.servers[0].auth_http.uri, "/auth");
    assert_eq!(m.servers[0].auth_http.host_header, "127.0.0.1");
    assert_eq!(c.files.len(), 1);
}

#[test]
fn minimal_errors() {
    assert_eq!(
        error_of("daemon off;\n"),
        "no \"events\" section in configuration"
    );
    assert_eq!(
        error_of(&mail("server { listen 8143; }")),
        "unknown mail protocol for server in D/n.conf:4"
    );
}

/// The first lines of every broken config, as used with stock nginx.
const HEADER: &str =
    "load_module /usr/lib/nginx/modules/ngx_mail_module.so;\npid D/n.pid;\nerror_log D/e.log;\n";

/// Broken configurations and nginx's message for each (`D` is the
/// config's directory). Taken from `nginx -t` (1.22.1 with the mail
/// module), except where 1.31.5's source words it differently
/// (`listen` parameters, `proxy_protocol`, `resolver ipv4=/ipv6=`), where
/// a check needs the TLS layer first, and for `http {}`, which Postern
/// refuses. The flag marks cases that only mean something as root.
const BROKEN: &[(&str, bool, &str, &str)] = &[
    ("unknown_directive", false, "foo bar;\nevents {}\n", "unknown directive \"foo\" in D/n.conf:4"),
    ("not_allowed", false, "events {}\nlisten 80;\n", "\"listen\" directive is not allowed here in D/n.conf:5"),
    ("nargs", false, "events {}\ndaemon;\n", "invalid number of arguments in \"daemon\" directive in D/n.conf:5"),
    ("flag_value", false, "daemon maybe;\nevents {}\n", "invalid value \"maybe\" in \"daemon\" directive, it must be \"on\" or \"off\" in D/n.conf:4"),
    ("dup_flag", false, "daemon on;\ndaemon off;\nevents {}\n", "\"daemon\" directive is duplicate in D/n.conf:5"),
    ("unexpected_brace", false, "events {}\n}\n", "unexpected \"}\" in D/n.conf:5"),
    ("unexpected_semicolon", false, "events {}\n;\n", "unexpected \";\" in D/n.conf:5"),
    ("unexpected_open", false, "events {}\n{\n", "unexpected \"{\" in D/n.conf:5"),
    ("eof_in_stmt", false, "events {}\ndaemon on", "unexpected end of file, expecting \";\" or \"}\" in D/n.conf:5"),
    ("eof_in_block", false, "events {\n", "unexpected end of file, expecting \"}\" in D/n.conf:5"),
    ("not_terminated", false, "daemon on {\n}\nevents {}\n", "directive \"daemon\" is not terminated by \";\" in D/n.conf:4"),
    ("no_opening", false, "events;\n", "directive \"events\" has no opening \"{\" in D/n.conf:4"),
    ("no_events", false, "daemon on;\n", "no \"events\" section in configuration"),
    ("events_dup", false, "events {}\nevents {}\n", "\"events\" directive is duplicate in D/n.conf:5"),
    ("quote_junk", false, "events {}\ndaemon \"on\"x;\n", "unexpected \"x\" in D/n.conf:5"),
    ("worker_processes_bad", false, "worker_processes x;\nevents {}\n", "\"worker_processes\" directive invalid value in D/n.conf:4"),
    ("worker_connections_bad", false, "events { worker_connections x; }\n", "invalid number \"x\" in D/n.conf:4"),
    ("use_bad", false, "events { use kqueue; }\n", "invalid event type \"kqueue\" in D/n.conf:4"),
    ("timer_bad", false, "timer_resolution 1x;\nevents {}\n", "\"timer_resolution\" directive invalid value in D/n.conf:4"),
    ("rlimit_core_bad", false, "worker_rlimit_core 1t;\nevents {}\n", "\"worker_rlimit_core\" directive invalid value in D/n.conf:4"),
    ("rlimit_nofile_bad", false, "worker_rlimit_nofile -1;\nevents {}\n", "\"worker_rlimit_nofile\" directive invalid number in D/n.conf:4"),
    ("priority_bad", false, "worker_priority abc;\nevents {}\n", "\"worker_priority\" directive invalid number in D/n.conf:4"),
    ("affinity_bad", false, "worker_cpu_affinity 0102;\nevents {}\n", "invalid character \"2\" in \"worker_cpu_affinity\" in D/n.conf:4"),
    ("affinity_auto_args", false, "worker_cpu_affinity auto 01 10;\nevents {}\n", "invalid number of arguments in \"worker_cpu_affinity\" directive in D/n.conf:4"),
    ("errlog_level", false, "error_log D/e2.log foo;\nevents {}\n", "invalid log level \"foo\" in D/n.conf:4"),
    ("errlog_dup_level", false, "error_log D/e2.log warn error;\nevents {}\n", "duplicate log level \"error\" in D/n.conf:4"),
    ("syslog_noserver", false, "error_log syslog:facility=local1;\nevents {}\n", "no syslog server specified in D/n.conf:4"),
    ("syslog_facility", false, "error_log syslog:server=127.0.0.1,facility=foo;\nevents {}\n", "unknown syslog facility \"foo\" in D/n.conf:4"),
    ("syslog_param", false, "error_log syslog:server=127.0.0.1,foo=1,bar;\nevents {}\n", "unknown syslog parameter \"foo=1\" in D/n.conf:4"),
    ("syslog_tag", false, "error_log syslog:server=127.0.0.1,tag=a-b;\nevents {}\n", "syslog \"tag\" only allows alphanumeric characters and underscore in D/n.conf:4"),
    ("http_block", false, "events {}\nhttp {\n}\n", "\"http\" directive is not supported: postern serves mail only in D/n.conf:5"),
    ("mail_dup", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver { listen 8143; protocol imap; }\n}\nmail {}\n", "\"mail\" directive is duplicate in D/n.conf:9"),
    ("no_listen", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nprotocol imap;\n}\n}\n", "no \"listen\" is defined for server in D/n.conf:7"),
    ("unknown_proto", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143;\n}\n}\n", "unknown mail protocol for server in D/n.conf:7"),
    ("bad_proto", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143;\nprotocol nntp;\n}\n}\n", "unknown protocol \"nntp\" in D/n.conf:9"),
    ("no_auth_http", false, "events {}\nmail {\nserver {\nlisten 8143;\nprotocol imap;\n}\n}\n", "no \"auth_http\" is defined for server in D/n.conf:6"),
    ("dup_listen", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver { listen 127.0.0.1:8143; protocol imap; }\nserver { listen 127.0.0.1:8143; protocol imap; }\n}\n", "duplicate \"127.0.0.1:8143\" address and port pair in D/n.conf:8"),
    ("listen_bad_port", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 127.0.0.1:0;\nprotocol imap;\n}\n}\n", "invalid port in \"127.0.0.1:0\" of the \"listen\" directive in D/n.conf:8"),
    ("listen_bad_param", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143 foo;\nprotocol imap;\n}\n}\n", "invalid parameter \"foo\" in D/n.conf:8"),
    ("listen_backlog", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143 backlog=x;\nprotocol imap;\n}\n}\n", "invalid backlog \"backlog=x\" in D/n.conf:8"),
    ("listen_rcvbuf", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143 rcvbuf=x;\nprotocol imap;\n}\n}\n", "invalid rcvbuf \"rcvbuf=x\" in D/n.conf:8"),
    ("listen_sndbuf", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143 sndbuf=1g;\nprotocol imap;\n}\n}\n", "invalid sndbuf \"sndbuf=1g\" in D/n.conf:8"),
    ("listen_ipv6only", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten [::]:8143 ipv6only=ox;\nprotocol imap;\n}\n}\n", "invalid ipv6only flags \"ox\" in D/n.conf:8"),
    ("listen_keepalive", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143 so_keepalive=x;\nprotocol imap;\n}\n}\n", "invalid so_keepalive value: \"x\" in D/n.conf:8"),
    ("listen_keepalive0", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143 so_keepalive=::;\nprotocol imap;\n}\n}\n", "invalid so_keepalive value: \"::\" in D/n.conf:8"),
    ("listen_range", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8145-8143;\nprotocol imap;\n}\n}\n", "invalid port range in \"8145-8143\" of the \"listen\" directive in D/n.conf:8"),
    ("listen_host", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten no-such-host.invalid:8143;\nprotocol imap;\n}\n}\n", "host not found in \"no-such-host.invalid:8143\" of the \"listen\" directive in D/n.conf:8"),
    ("listen_v6", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten [zz]:8143;\nprotocol imap;\n}\n}\n", "invalid IPv6 address in \"[zz]:8143\" of the \"listen\" directive in D/n.conf:8"),
    ("listen_uri", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 127.0.0.1/x;\nprotocol imap;\n}\n}\n", "invalid host in \"127.0.0.1/x\" of the \"listen\" directive in D/n.conf:8"),
    ("listen_ssl_nocert", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8993 ssl;\nprotocol imap;\n}\n}\n", "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive in D/n.conf:8"),
    ("starttls_nocert", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143;\nprotocol imap;\nstarttls on;\n}\n}\n", "no \"ssl_certificate\" is defined for the \"starttls\" directive in D/n.conf:10"),
    ("starttls_nokey", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143;\nprotocol imap;\nstarttls on;\nssl_certificate a.pem;\n}\n}\n", "no \"ssl_certificate_key\" is defined for the \"starttls\" directive in D/n.conf:10"),
    ("starttls_value", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143;\nprotocol imap;\nstarttls maybe;\n}\n}\n", "invalid value \"maybe\" in D/n.conf:10"),
    ("verify_value", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143;\nprotocol imap;\nssl_verify_client sometimes;\n}\n}\n", "invalid value \"sometimes\" in D/n.conf:10"),
    ("ssl_protocols_bad", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143;\nprotocol imap;\nssl_protocols TLSv9;\n}\n}\n", "invalid value \"TLSv9\" in D/n.conf:10"),
    ("session_cache_bad", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143;\nprotocol imap;\nssl_session_cache shared:x;\n}\n}\n", "invalid session cache \"shared:x\" in D/n.conf:10"),
    ("session_cache_small", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143;\nprotocol imap;\nssl_session_cache shared:x:1k;\n}\n}\n", "session cache \"shared:x:1k\" is too small in D/n.conf:10"),
    ("session_cache_builtin", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143;\nprotocol imap;\nssl_session_cache builtin:x;\n}\n}\n", "invalid session cache \"builtin:x\" in D/n.conf:10"),
    ("session_cache_conflict", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nssl_session_cache shared:SSL:1m;\nserver { listen 8143; protocol imap; ssl_session_cache shared:SSL:2m; }\n}\n", "the size 2097152 of shared memory zone \"SSL\" conflicts with already declared size 1048576 in D/n.conf:8"),
    ("session_timeout_bad", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143;\nprotocol imap;\nssl_session_timeout 10ms;\n}\n}\n", "\"ssl_session_timeout\" directive invalid value in D/n.conf:10"),
    ("auth_http_host", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver { listen 8143; protocol imap; auth_http no-such-host.invalid/auth; }\n}\n", "host not found in auth_http \"no-such-host.invalid/auth\" in D/n.conf:7"),
    ("auth_http_port", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver { listen 8143; protocol imap; auth_http http://127.0.0.1:x/auth; }\n}\n", "invalid port in auth_http \"127.0.0.1:x/auth\" in D/n.conf:7"),
    ("imap_auth_bad", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143;\nprotocol imap;\nimap_auth plain apop;\n}\n}\n", "invalid value \"apop\" in D/n.conf:10"),
    ("pop3_auth_bad", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8110;\nprotocol pop3;\npop3_auth login;\n}\n}\n", "invalid value \"login\" in D/n.conf:10"),
    ("smtp_auth_bad", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8025;\nprotocol smtp;\nsmtp_auth apop;\n}\n}\n", "invalid value \"apop\" in D/n.conf:10"),
    ("proxy_protocol_bad", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8025;\nprotocol smtp;\nproxy_protocol v3;\n}\n}\n", "invalid value \"v3\" in D/n.conf:10"),
    ("proxy_buffer_bad", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8025;\nprotocol smtp;\nproxy_buffer 1x;\n}\n}\n", "\"proxy_buffer\" directive invalid value in D/n.conf:10"),
    ("timeout_bad", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8025;\nprotocol smtp;\ntimeout 1M;\n}\n}\n", "\"timeout\" directive invalid value in D/n.conf:10"),
    ("max_errors_bad", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8025;\nprotocol smtp;\nmax_errors x;\n}\n}\n", "\"max_errors\" directive invalid number in D/n.conf:10"),
    ("timeout_dup", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8025;\nprotocol smtp;\ntimeout 1s;\ntimeout 2s;\n}\n}\n", "\"timeout\" directive is duplicate in D/n.conf:11"),
    ("resolver_bad", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8025;\nprotocol smtp;\nresolver 127.0.0.1 valid=x;\n}\n}\n", "invalid parameter: valid=x in D/n.conf:10"),
    ("resolver_both_off", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8025;\nprotocol smtp;\nresolver 127.0.0.1 ipv4=off ipv6=off;\n}\n}\n", "\"ipv4\" and \"ipv6\" cannot both be \"off\" in D/n.conf:10"),
    ("resolver_dup", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8025;\nprotocol smtp;\nresolver off;\nresolver off;\n}\n}\n", "\"resolver\" directive is duplicate in D/n.conf:11"),
    ("realip_bad", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8025;\nprotocol smtp;\nset_real_ip_from no-such-host.invalid;\n}\n}\n", "host not found in set_real_ip_from \"no-such-host.invalid\" in D/n.conf:10"),
    ("listen_in_mail", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nlisten 8143;\n}\n", "\"listen\" directive is not allowed here in D/n.conf:7"),
    ("server_in_server", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143;\nprotocol imap;\nserver {}\n}\n}\n", "\"server\" directive is not allowed here in D/n.conf:10"),
    ("user_bad", true, "user no-such-user-x;\nevents {}\n", "getpwnam(\"no-such-user-x\") failed in D/n.conf:4"),
    ("group_bad", true, "user root no-such-group-x;\nevents {}\n", "getgrnam(\"no-such-group-x\") failed in D/n.conf:4"),
    ("include_missing", false, "include D/missing.conf;\nevents {}\n", "open() \"D/missing.conf\" failed (2: No such file or directory) in D/n.conf:4"),
    ("include_nargs", false, "include a b;\nevents {}\n", "invalid number of arguments in \"include\" directive in D/n.conf:4"),
    ("load_module_late", false, "events {}\nload_module /usr/lib/nginx/modules/ngx_mail_module.so;\n", "\"load_module\" directive is specified too late in D/n.conf:5"),
    ("verify_no_ca", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8993 ssl;\nprotocol imap;\nssl_certificate D/a.pem;\nssl_certificate_key D/a.pem;\nssl_verify_client on;\n}\n}\n", "no ssl_client_certificate or ssl_trusted_certificate for ssl_verify_client"),
    ("keys_fewer", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8993 ssl;\nprotocol imap;\nssl_certificate a.pem;\nssl_certificate b.pem;\nssl_certificate_key a.key;\n}\n}\n", "no \"ssl_certificate_key\" is defined for certificate \"b.pem\" and the \"listen ... ssl\" directive in D/n.conf:8"),
    ("debug_conn_bad", false, "events { debug_connection no-such-host.invalid; }\n", "host not found in debug_connection \"no-such-host.invalid\" in D/n.conf:4"),
    ("memory_small", false, "error_log memory:1k;\nevents {}\n", "invalid buffer size \"1k\" in D/n.conf:4"),
    ("msec_year", false, "worker_shutdown_timeout 1y;\nevents {}\n", "\"worker_shutdown_timeout\" directive invalid value in D/n.conf:4"),
    ("ssl_starttls_conflict", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143;\nprotocol imap;\nssl on;\nstarttls on;\n}\n}\n", "\"ssl\" directive conflicts with \"starttls\" in D/n.conf:11"),
    ("sq_unterminated", false, "events {}\ndaemon 'on;\n", "unexpected end of file, expecting \";\" or \"}\" in D/n.conf:6"),
    ("rbrace_in_args", false, "events {}\ndaemon on }\n", "unexpected \"}\" in D/n.conf:5"),
    ("block_in_stmt_eof", false, "events {\nworker_connections 10;\n", "unexpected end of file, expecting \"}\" in D/n.conf:6"),
    ("capabilities_nargs", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143;\nprotocol imap;\nimap_capabilities;\n}\n}\n", "invalid number of arguments in \"imap_capabilities\" directive in D/n.conf:10"),
    ("auth_http_header_nargs", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143;\nprotocol imap;\nauth_http_header X;\n}\n}\n", "invalid number of arguments in \"auth_http_header\" directive in D/n.conf:10"),
    ("worker_priority_dup", false, "worker_priority 1;\nworker_priority 2;\nevents {}\n", "\"worker_priority\" directive is duplicate in D/n.conf:5"),
    ("env_ok_then_bad", false, "env A=b;\nenv;\nevents {}\n", "invalid number of arguments in \"env\" directive in D/n.conf:5"),
    ("listen_unix_empty", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten unix:;\nprotocol imap;\n}\n}\n", "no path in the unix domain socket in \"unix:\" of the \"listen\" directive in D/n.conf:8"),
    ("dup_listen_unix", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver { listen unix:D/s; protocol imap; }\nserver { listen unix:D/s; protocol imap; }\n}\n", "duplicate \"unix:D/s\" address and port pair in D/n.conf:8"),
    ("mail_server_nargs", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver x {}\n}\n", "invalid number of arguments in \"server\" directive in D/n.conf:7"),
    ("password_file_missing", false, "events {}\nmail {\n auth_http 127.0.0.1:9000/auth;\nserver {\nlisten 8143;\nprotocol imap;\nssl_password_file D/nopw;\n}\n}\n", "open() \"D/nopw\" failed (2: No such file or directory) in D/n.conf:10"),

];

#[test]
fn broken_configs_give_nginx_messages() {
    let root = sys::euid() == 0;
    let mut failures = Vec::new();
    for (name, needs_root, body, expected) in BROKEN {
        if *needs_root && !root {
            continue;
        }
        let got = error_of(&format!("{HEADER}{body}"));
        if got != *expected {
            failures.push(format!(
                "{name}:\n  expected: {expected}\n  got:      {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parse_tree_survives_every_prefix_and_odd_bytes() {
    let sample = "mail {\n server { listen \"127.0.0.1:25\" 'x\\'y' ${a}; # c\n }\n}\n\\ \"\\\" ';\0\u{fffd}\n";
    for end in 0..=sample.len() {
        if sample.is_char_boundary(end) {
            let _ = parse_tree(&sample.as_bytes()[..end]);
        }
    }
    for odd in [
        &b"\xff\xfe;"[..],
        b"\"",
        b"'",
        b"\\",
        b"{{{{",
        b"}}}}",
        b"a {",
        b"$",
        b"${",
        b"a\"b\";",
    ] {
        let _ = parse_tree(odd);
    }
    assert_eq!(parse_tree(b"a; b { c; d { e; } }").unwrap(), 5);
    let long = format!("a {};", "x".repeat(10_000));
    assert!(parse_tree(long.as_bytes())
        .unwrap_err()
        .text
        .starts_with("too long parameter"));
}

fn error_with_globals(text: &str, globals: &str) -> String {
    let (dir, mut opts) = setup(text);
    opts.globals = Some(globals.to_string());
    let r = load(&opts);
    std::fs::remove_dir_all(&dir).unwrap();
    match r {
        Ok(l) => format!("loaded daemon={}", l.config.main.daemon),
        Err(e) => e.text.replace(&dir.display().to_string(), "D"),
    }
}

#[test]
fn command_line_globals() {
    let file = format!("{HEADER}daemon on;\nevents {{}}\n");
    let cases = [
        (
            "daemon off",
            "unexpected end of parameter, expecting \";\" in command line",
        ),
        (
            "daemon off;",
            "\"daemon\" directive is duplicate in D/n.conf:4",
        ),
        ("foo;", "unknown directive \"foo\" in command line"),
        (
            "events {}",
            "block directives are not supported in -g option in command line",
        ),
        ("daemon off; ;", "unexpected \";\" in command line"),
        (
            "listen 1;",
            "\"listen\" directive is not allowed here in command line",
        ),
        (
            "daemon 'x;",
            "unexpected end of parameter, expecting \";\" in command line",
        ),
    ];
    for (g, expected) in cases {
        assert_eq!(error_with_globals(&file, g), expected, "-g {g:?}");
    }
    assert_eq!(
        error_with_globals(&format!("{HEADER}events {{}}\n"), "daemon off;"),
        "loaded daemon=false"
    );
}

#[test]
fn defaults() {
    let l = load_text(&format!("{BASE}mail {{ auth_http unix:/run/auth.sock:/a; server {{ listen 8025; protocol smtp; }} }}\n"))
        .unwrap();
    let c = &l.config;
    assert!(c.main.daemon && c.main.master_process);
    assert_eq!(c.main.worker_processes, 1);
    assert_eq!(c.main.worker_priority, 0);
    assert_eq!(
        c.main.error_log,
        [ErrorLog {
            target: LogTarget::Stderr,
            level: Level::Error
        }]
    );
    assert!(c
        .main
        .pid
        .as_ref()
        .unwrap()
        .ends_with(build_info::DEFAULT_PID_PATH));
    assert_eq!(c.events.worker_connections, 512);
    assert_eq!(
        c.events.accept_mutex_delay,
        std::time::Duration::from_millis(500)
    );
    let s = &c.mail.as_ref().unwrap().servers[0];
    assert_eq!(s.timeout, std::time::Duration::from_secs(60));
    assert_eq!(s.resolver_timeout, std::time::Duration::from_secs(30));
    assert_eq!(s.max_errors, 5);
    assert_eq!(s.server_name, sys::hostname());
    assert_eq!(s.resolver, None);
    assert_eq!(s.error_log, None);
    assert_eq!(s.ssl.starttls, StartTls::Off);
    assert_eq!(
        s.ssl.protocols,
        SslProtocols {
            tlsv1_2: true,
            tlsv1_3: true,
            ..Default::default()
        }
    );
    assert_eq!(s.ssl.ciphers, "HIGH:!aNULL:!MD5");
    assert_eq!(s.ssl.ecdh_curve, "auto");
    assert_eq!(s.ssl.session_cache.mode, SessionCacheMode::None);
    assert!(s.ssl.session_tickets);
    assert_eq!(s.ssl.session_timeout, std::time::Duration::from_secs(300));
    assert_eq!(s.ssl.verify_depth, 1);
    assert_eq!(
        s.auth_http.peer,
        AuthHttpPeer::Unix(PathBuf::from("/run/auth.sock"))
    );
    assert_eq!(s.auth_http.host_header, "localhost");
    assert_eq!(s.auth_http.uri, "/a");
    assert_eq!(s.auth_http.timeout, std::time::Duration::from_secs(60));
    assert_eq!(s.proxy.buffer_size, 4096);
    assert_eq!(s.proxy.timeout, std::time::Duration::from_secs(86_400));
    assert!(s.proxy.xclient && !s.proxy.smtp_auth && !s.proxy.pass_error_message);
    assert_eq!(s.proxy.proxy_protocol, ProxyProtocolVersion::Off);
    assert_eq!(s.imap.capabilities, ["IMAP4", "IMAP4rev1", "UIDPLUS"]);
    assert_eq!(
        s.imap.auth,
        AuthMethods {
            plain: true,
            ..Default::default()
        }
    );
    assert_eq!(s.pop3.capabilities, ["TOP", "USER", "UIDL"]);
    assert_eq!(
        s.pop3.auth,
        AuthMethods {
            plain: true,
            login: true,
            ..Default::default()
        }
    );
    assert!(s.smtp.capabilities.is_empty());
    assert_eq!(
        s.smtp.auth,
        AuthMethods {
            plain: true,
            login: true,
            ..Default::default()
        }
    );
    assert_eq!(s.smtp.greeting_delay, std::time::Duration::ZERO);
    assert_eq!(s.imap.client_buffer, 4096);
    let l = &c.mail.as_ref().unwrap().listens[0];
    assert_eq!(
        (l.backlog, l.ipv6only, l.bind, l.ssl),
        (511, true, false, false)
    );
    assert_eq!(l.so_keepalive, KeepAlive::Default);
}

#[test]
fn inheritance() {
    let text = format!(
        "{BASE}mail {{
 auth_http 127.0.0.1:9000;
 auth_http_header X-A 1;
 timeout 10s;
 imap_capabilities A B;
 smtp_auth none;
 error_log stderr warn;
 ssl_certificate c.pem;
 ssl_certificate_key c.key;
 ssl_session_cache shared:SSL:1m;
 resolver 127.0.0.1 valid=30s;
 set_real_ip_from 10.0.0.0/8;
 server {{ listen 8143; protocol imap; }}
 server {{ listen 8144; protocol imap; timeout 20s; imap_capabilities C; auth_http_header X-B 2;
          ssl_session_cache builtin:1000; error_log stderr info; resolver off; }}
 server {{ listen 8025; protocol smtp; auth_http unix:/s; }}
}}
"
    );
    let (dir, opts) = setup(&text);
    let c = load(&opts).unwrap().config;
    let m = c.mail.unwrap();
    let (a, b, s) = (&m.servers[0], &m.servers[1], &m.servers[2]);
    assert_eq!(a.timeout, std::time::Duration::from_secs(10));
    assert_eq!(b.timeout, std::time::Duration::from_secs(20));
    assert_eq!(a.imap.capabilities, ["A", "B"]);
    assert_eq!(
        b.imap.capabilities,
        ["C"],
        "capabilities are inherited as a whole"
    );
    assert_eq!(a.auth_http.headers, [("X-A".to_string(), "1".to_string())]);
    assert_eq!(b.auth_http.headers, [("X-B".to_string(), "2".to_string())]);
    assert_eq!(s.auth_http.peer, AuthHttpPeer::Unix(PathBuf::from("/s")));
    assert_eq!(s.auth_http.headers.len(), 1);
    assert_eq!(
        s.smtp.auth,
        AuthMethods {
            none: true,
            ..Default::default()
        }
    );
    assert_eq!(a.error_log.as_ref().unwrap()[0].level, Level::Warn);
    assert_eq!(b.error_log.as_ref().unwrap()[0].level, Level::Info);
    assert_eq!(a.ssl.certificates, [CertSource::File(dir.join("c.pem"))]);
    assert_eq!(a.ssl.certificate_keys, [KeySource::File(dir.join("c.key"))]);
    let zone = ShmZone {
        name: "SSL".into(),
        size: 1 << 20,
    };
    assert_eq!(
        a.ssl.session_cache,
        SessionCache {
            mode: SessionCacheMode::Cache,
            builtin: None,
            shared: Some(zone.clone())
        }
    );
    assert_eq!(
        b.ssl.session_cache,
        SessionCache {
            mode: SessionCacheMode::Cache,
            builtin: Some(Some(1000)),
            shared: Some(zone.clone())
        }
    );
    assert_eq!(m.shm_zones, [zone]);
    assert_eq!(
        a.resolver.as_ref().unwrap().valid,
        Some(std::time::Duration::from_secs(30))
    );
    assert_eq!(b.resolver, None);
    assert_eq!(s.set_real_ip_from.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn old_configurations_load() {
    let text = format!(
        "{BASE}mail {{
 auth_http 127.0.0.1:9000/auth;
 ssl_protocols SSLv3 TLSv1;
 ssl_session_cache builtin:1000 shared:SSL:10m;
 server {{ listen 993; ssl on; ssl_certificate c.pem; ssl_certificate_key c.key; }}
}}
"
    );
    let l = load_text(&text).unwrap();
    assert_eq!(
        l.warnings,
        [ConfMessage {
            level: Level::Warn,
            text: l.warnings[0].text.clone()
        }]
    );
    assert!(l.warnings[0].text.starts_with(
        "the \"ssl\" directive is deprecated, use the \"listen ... ssl\" directive instead in "
    ));
    let s = &l.config.mail.unwrap().servers[0];
    assert!(s.ssl.ssl_on);
    assert_eq!(s.protocol, Protocol::Imap);
    assert!(s.ssl.protocols.sslv3 && s.ssl.protocols.tlsv1 && !s.ssl.protocols.tlsv1_2);
    assert_eq!(s.ssl.session_cache.builtin, Some(Some(1000)));
    assert_eq!(
        error_of(&mail("server { listen 993; ssl on; }")),
        "no \"ssl_certificate\" is defined for the \"ssl\" directive in D/n.conf:4"
    );
}

#[test]
fn protocol_detection_by_port() {
    for (port, proto) in [
        (143, Protocol::Imap),
        (993, Protocol::Imap),
        (110, Protocol::Pop3),
        (995, Protocol::Pop3),
    ] {
        assert_eq!(directives::mail::protocol_for_port(port), Some(proto));
    }
    for port in [25, 465, 587] {
        assert_eq!(
            directives::mail::protocol_for_port(port),
            Some(Protocol::Smtp)
        );
    }
    assert_eq!(directives::mail::protocol_for_port(8143), None);
    // An explicit protocol wins over the port, and the first listen decides.
    let c = load_text(&mail("server { protocol smtp; listen 110; }\nserver { listen 127.0.0.1:995; listen 127.0.0.1:25; }"))
        .unwrap()
        .config;
    let m = c.mail.unwrap();
    assert_eq!(m.servers[0].protocol, Protocol::Smtp);
    assert_eq!(m.servers[1].protocol, Protocol::Pop3);
}

#[test]
fn listen_parameters() {
    let c = load_text(&mail(
        "server { protocol imap; listen [::]:8143 ipv6only=off backlog=10 rcvbuf=8k sndbuf=1m so_keepalive=30m::10 ssl proxy_protocol multipath;
          ssl_certificate a; ssl_certificate_key a; listen unix:/tmp/p.sock; listen 127.0.0.1:9000-9001; }",
    ))
    .unwrap()
    .config;
    let ls = c.mail.unwrap().listens;
    assert_eq!(ls.len(), 4);
    let l = &ls[0];
    assert_eq!(l.addr_text, "[::]:8143");
    assert!(l.wildcard && !l.ipv6only && l.bind && l.ssl && l.proxy_protocol && l.multipath);
    assert_eq!(
        (l.backlog, l.rcvbuf, l.sndbuf),
        (10, Some(8192), Some(1 << 20))
    );
    assert_eq!(
        l.so_keepalive,
        KeepAlive::Tuned {
            idle: Some(1800),
            intvl: None,
            cnt: Some(10)
        }
    );
    assert_eq!(ls[1].addr, ListenAddr::Unix(PathBuf::from("/tmp/p.sock")));
    assert_eq!(ls[1].addr_text, "unix:/tmp/p.sock");
    assert_eq!(ls[2].addr_text, "127.0.0.1:9000");
    assert_eq!(ls[3].addr_text, "127.0.0.1:9001");
}

#[test]
fn includes_relative_to_the_main_file_and_files_for_dump() {
    let (dir, opts) = setup(&format!("{BASE}include conf.d/*.conf;\n"));
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::write(
        dir.join("conf.d/b.conf"),
        "mail { auth_http 127.0.0.1:1; server { listen 8143; protocol imap; } }\n",
    )
    .unwrap();
    std::fs::write(dir.join("conf.d/a.conf"), "worker_processes 3;\n").unwrap();
    let c = load(&opts).unwrap().config;
    assert_eq!(c.main.worker_processes, 3);
    let names: Vec<_> = c
        .files
        .iter()
        .map(|f| f.path.strip_prefix(&dir).unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["n.conf", "conf.d/a.conf", "conf.d/b.conf"]);
    assert!(c.files[2].contents.contains("listen 8143"));
    std::fs::write(dir.join("conf.d/b.conf"), "mail {\n").unwrap();
    let e = load(&opts).unwrap_err().text;
    assert_eq!(
        e,
        format!(
            "unexpected end of file, expecting \"}}\" in {}/conf.d/b.conf:2",
            dir.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn main_file_errors_have_no_location() {
    let (dir, mut opts) = setup("");
    opts.conf_file = dir.join("missing.conf");
    assert_eq!(
        load(&opts).unwrap_err().text,
        format!(
            "open() \"{}/missing.conf\" failed (2: No such file or directory)",
            dir.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn main_context_values() {
    let c = load_text(&format!(
        "worker_processes auto;\nworker_priority -5;\nworker_cpu_affinity auto 1010;\nenv A=b;\nenv TZ;\n\
         worker_shutdown_timeout \"1h 30m\";\nworker_rlimit_core 1g;\nworker_rlimit_nofile 4096;\npid run/p.pid;\n\
         error_log syslog:server=127.0.0.1:5140,facility=mail,severity=warn,tag=pt,nohostname notice;\n\
         load_module modules/ngx_mail_module.so;\n{BASE}"
    ))
    .unwrap()
    .config;
    assert_eq!(c.main.worker_processes, sys::online_cpus());
    assert_eq!(c.main.worker_priority, -5);
    assert_eq!(
        c.main.worker_cpu_affinity,
        CpuAffinity::Auto {
            mask: Some(vec![false, true, false, true])
        }
    );
    assert_eq!(
        c.main.env[0],
        EnvVar {
            name: "A".into(),
            value: Some("b".into())
        }
    );
    assert_eq!(
        c.main.env[1],
        EnvVar {
            name: "TZ".into(),
            value: None
        }
    );
    assert_eq!(
        c.main.worker_shutdown_timeout,
        Some(std::time::Duration::from_secs(5400))
    );
    assert_eq!(c.main.worker_rlimit_core, Some(1 << 30));
    assert_eq!(c.main.worker_rlimit_nofile, Some(4096));
    assert!(c.main.pid.as_ref().unwrap().ends_with("run/p.pid"));
    assert_eq!(
        c.main.error_log[0],
        ErrorLog {
            target: LogTarget::Syslog(SyslogTarget {
                server: SyslogServer::Udp("127.0.0.1:5140".parse().unwrap()),
                facility: 2,
                severity: 4,
                tag: "pt".into(),
                nohostname: true
            }),
            level: Level::Notice
        }
    );
    assert!(error_of(&format!(
        "load_module modules/ngx_http_x_module.so;\n{BASE}"
    ))
    .starts_with("load_module \""));
}
