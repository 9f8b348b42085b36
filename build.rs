//! Bakes build facts into the binary (`src/build_info.rs` includes the
//! result): the version, the OpenSSL that openssl-sys found, the compiler,
//! and the compiled-in default paths.
//!
//! Default paths can be chosen at build time like nginx's
//! `./configure --prefix --conf-path --pid-path --error-log-path
//! --lock-path`, through the environment variables POSTERN_PREFIX,
//! POSTERN_CONF_PATH, POSTERN_PID_PATH, POSTERN_ERROR_LOG_PATH and
//! POSTERN_LOCK_PATH (the Makefile passes `make PREFIX=...` etc. on).
//! Relative paths are relative to the prefix, as in nginx;
//! POSTERN_ERROR_LOG_PATH=stderr makes stderr the default error log.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const PATH_VARS: [&str; 5] = [
    "POSTERN_PREFIX",
    "POSTERN_CONF_PATH",
    "POSTERN_PID_PATH",
    "POSTERN_ERROR_LOG_PATH",
    "POSTERN_LOCK_PATH",
];

fn setting(name: &str, default: &str) -> String {
    match env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => default.to_string(),
    }
}

/// The version number openssl-sys found (OPENSSL_VERSION_NUMBER), passed to
/// us through its `links = "openssl"` metadata.
fn openssl_version_number() -> Option<u64> {
    let hex = env::var("DEP_OPENSSL_VERSION_NUMBER").ok()?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Directories that may hold `openssl/opensslv.h`, most specific first.
fn include_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(v) = env::var("DEP_OPENSSL_INCLUDE") {
        dirs.extend(env::split_paths(&v));
    }
    if let Ok(out) = Command::new("pkg-config")
        .args(["--variable=includedir", "openssl"])
        .output()
    {
        if out.status.success() {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !dir.is_empty() {
                dirs.push(PathBuf::from(dir));
            }
        }
    }
    dirs.push(PathBuf::from("/usr/include"));
    dirs
}

/// OPENSSL_VERSION_TEXT from the headers openssl-sys compiled against,
/// e.g. `OpenSSL 3.0.19 27 Jan 2026`.
fn openssl_version_text_from_headers() -> Option<String> {
    for dir in include_dirs() {
        let header = dir.join("openssl").join("opensslv.h");
        let Ok(text) = fs::read_to_string(&header) else {
            continue;
        };
        println!("cargo:rerun-if-changed={}", header.display());
        for line in text.lines() {
            let l = line.trim_start_matches(['#', ' ', '\t']);
            if let Some(rest) = l.strip_prefix("define OPENSSL_VERSION_TEXT") {
                let rest = rest.trim();
                if let Some(q) = rest.strip_prefix('"') {
                    if let Some(end) = q.find('"') {
                        return Some(q[..end].to_string());
                    }
                }
            }
        }
    }
    None
}

fn openssl_version_text(number: Option<u64>) -> String {
    if let Some(text) = openssl_version_text_from_headers() {
        return text;
    }
    if let Some(n) = number {
        // OpenSSL 3 numbers: 0xMNN00PP0L
        let major = (n >> 28) & 0xf;
        let minor = (n >> 20) & 0xff;
        let patch = (n >> 4) & 0xff;
        return format!("OpenSSL {major}.{minor}.{patch}");
    }
    if let Ok(out) = Command::new("pkg-config")
        .args(["--modversion", "openssl"])
        .output()
    {
        if out.status.success() {
            return format!("OpenSSL {}", String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    "OpenSSL".to_string()
}

fn rustc_version() -> String {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "rustc".to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for k in PATH_VARS {
        println!("cargo:rerun-if-env-changed={k}");
    }
    println!("cargo:rerun-if-env-changed=DEP_OPENSSL_VERSION_NUMBER");
    println!("cargo:rerun-if-env-changed=DEP_OPENSSL_INCLUDE");

    let prefix = setting("POSTERN_PREFIX", "/usr/local/postern");
    let prefix = prefix.trim_end_matches('/').to_string();
    let prefix = if prefix.is_empty() {
        "/".to_string()
    } else {
        prefix
    };
    let conf_path = setting("POSTERN_CONF_PATH", "conf/postern.conf");
    let pid_path = setting("POSTERN_PID_PATH", "logs/postern.pid");
    let error_log_path = setting("POSTERN_ERROR_LOG_PATH", "logs/error.log");
    let lock_path = setting("POSTERN_LOCK_PATH", "logs/postern.lock");

    let ssl_number = openssl_version_number();
    let ssl_text = openssl_version_text(ssl_number);
    let rustc = rustc_version();
    let target = env::var("TARGET").unwrap_or_default();

    // The spelling of nginx's ./configure, so tools that parse `nginx -V`
    // find the paths and the mail modules.
    let configure = format!(
        " --prefix={prefix} --conf-path={conf_path} --error-log-path={error_log_path} \
         --pid-path={pid_path} --lock-path={lock_path} --with-mail --with-mail_ssl_module"
    );

    let s = format!(
        "/// The crate version (`postern/0.1.0`).\n\
         pub const VERSION: &str = env!(\"CARGO_PKG_VERSION\");\n\
         /// `--prefix`, without a trailing slash.\n\
         pub const DEFAULT_PREFIX: &str = {prefix:?};\n\
         /// `--conf-path`, relative to the prefix unless absolute.\n\
         pub const DEFAULT_CONF_PATH: &str = {conf_path:?};\n\
         pub const DEFAULT_PID_PATH: &str = {pid_path:?};\n\
         /// `--error-log-path`; \"stderr\" makes stderr the default.\n\
         pub const DEFAULT_ERROR_LOG_PATH: &str = {error_log_path:?};\n\
         pub const DEFAULT_LOCK_PATH: &str = {lock_path:?};\n\
         /// OPENSSL_VERSION_TEXT of the headers we were compiled against.\n\
         pub const OPENSSL_BUILT_WITH: &str = {ssl_text:?};\n\
         /// OPENSSL_VERSION_NUMBER found by openssl-sys (0 when unknown).\n\
         pub const OPENSSL_VERSION_NUMBER: u64 = {ssl_number};\n\
         /// `rustc --version` of the compiler that built us.\n\
         pub const RUSTC_VERSION: &str = {rustc:?};\n\
         /// The target triple.\n\
         pub const TARGET: &str = {target:?};\n\
         /// nginx's NGX_CONFIGURE: the configure arguments, with a leading space.\n\
         pub const CONFIGURE_ARGUMENTS: &str = {configure:?};\n",
        ssl_number = ssl_number.unwrap_or(0),
    );
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dest = out.join("build_info.rs");
    // Rewrite only when changed, so unchanged facts do not force rebuilds.
    if fs::read_to_string(&dest).ok().as_deref() != Some(s.as_str()) {
        fs::write(Path::new(&dest), s).expect("write build_info.rs");
    }
}
