// SKELETON: owned by the cli work. Build-time defaults, overridable like
// nginx's ./configure --prefix/--conf-path/--pid-path/--error-log-path
// through POSTERN_PREFIX, POSTERN_CONF_PATH, POSTERN_PID_PATH,
// POSTERN_ERROR_LOG_PATH, POSTERN_LOCK_PATH environment variables.
fn main() {
    let out = std::env::var("OUT_DIR").unwrap();
    let get = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let prefix = get("POSTERN_PREFIX", "/usr/local/postern");
    let s = format!(
        "pub const VERSION: &str = env!(\"CARGO_PKG_VERSION\");\n\
         pub const DEFAULT_PREFIX: &str = {:?};\n\
         pub const DEFAULT_CONF_PATH: &str = {:?};\n\
         pub const DEFAULT_PID_PATH: &str = {:?};\n\
         pub const DEFAULT_ERROR_LOG_PATH: &str = {:?};\n\
         pub const DEFAULT_LOCK_PATH: &str = {:?};\n",
        prefix,
        get("POSTERN_CONF_PATH", "conf/postern.conf"),
        get("POSTERN_PID_PATH", "logs/postern.pid"),
        get("POSTERN_ERROR_LOG_PATH", "logs/error.log"),
        get("POSTERN_LOCK_PATH", "logs/postern.lock"),
    );
    std::fs::write(format!("{out}/build_info.rs"), s).unwrap();
    for k in [
        "POSTERN_PREFIX",
        "POSTERN_CONF_PATH",
        "POSTERN_PID_PATH",
        "POSTERN_ERROR_LOG_PATH",
        "POSTERN_LOCK_PATH",
    ] {
        println!("cargo:rerun-if-env-changed={k}");
    }
}
