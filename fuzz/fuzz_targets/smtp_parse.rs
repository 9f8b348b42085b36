//! Fuzzes the SMTP command parser as the session drives it (the shared
//! driver in fuzz/common/verb_line.rs says how).
#![no_main]

#[path = "../common/verb_line.rs"]
mod verb_line;

use libfuzzer_sys::fuzz_target;
use postern::mail::parse::smtp::{SmtpCommand, SMTP_MAX_ARGS};

fuzz_target!(|data: &[u8]| {
    verb_line::drive::<SmtpCommand, SMTP_MAX_ARGS>(data, |c| c == SmtpCommand::Auth);
});
