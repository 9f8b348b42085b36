//! Fuzzes the POP3 command parser as the session drives it (the shared
//! driver in fuzz/common/verb_line.rs says how).
#![no_main]

#[path = "../common/verb_line.rs"]
mod verb_line;

use libfuzzer_sys::fuzz_target;
use postern::mail::parse::pop3::{Pop3Command, POP3_MAX_ARGS};

fuzz_target!(|data: &[u8]| {
    verb_line::drive::<Pop3Command, POP3_MAX_ARGS>(data, |c| c == Pop3Command::Auth);
});
