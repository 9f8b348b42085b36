//! Facts about this build, written by `build.rs`.
include!(concat!(env!("OUT_DIR"), "/build_info.rs"));
