//! Arbitrary bytes through the configuration lexer and parser: any input
//! must give a directive count or an nginx-style error, never a panic.
//!
//! Run with `cargo fuzz run conf_parse` from this directory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match postern::conf::parse_tree(data) {
        Ok(_) => {}
        Err(e) => assert!(
            e.text.contains(" in fuzz.conf:"),
            "unlocated error: {}",
            e.text
        ),
    }
    // The value syntaxes are fed the same bytes, as directive arguments.
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = postern::conf::units::parse_size(s);
        let _ = postern::conf::units::parse_offset(s);
        let _ = postern::conf::units::parse_time(s, false);
        let _ = postern::conf::units::parse_time(s, true);
        let _ = postern::conf::url::parse_cidr(s);
    }
});
