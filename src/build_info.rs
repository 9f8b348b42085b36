//! Facts about this build, written by `build.rs`: the version, the OpenSSL
//! found by openssl-sys, the compiler, and the compiled-in default paths.
include!(concat!(env!("OUT_DIR"), "/build_info.rs"));
