fn main() {
    let out = std::env::var("OUT_DIR").unwrap();
    std::fs::write(format!("{out}/build_info.rs"), "pub const VERSION: &str = env!(\"CARGO_PKG_VERSION\");\n").unwrap();
}
