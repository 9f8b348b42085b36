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
    assert_eq!(error_of("daemon off;\n"), "no \"events\" section in configuration");
    assert_eq!(error_of(&mail("server { listen 8143; }")), "unknown mail protocol for server in D/n.conf:4");
}
