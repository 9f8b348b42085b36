//! Fuzzes the POP3 command parser as the session drives it: input split
//! into reads of a fuzzed size, a fuzzed buffer size, SASL continuation
//! after AUTH. It must never panic, and every position it reports must lie
//! inside the filled buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::mail::parse::pop3::{Pop3Command, Pop3Parser};
use postern::mail::parse::{Next, Status};

fuzz_target!(|data: &[u8]| {
    let Some((&params, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(params & 0x0f) + 1;
    let capacity = 16 << (params >> 6);
    let mut parser = Pop3Parser::new();
    let mut buf = vec![0u8; capacity];
    let mut filled = 0;
    for piece in input.chunks(chunk) {
        let mut piece = piece;
        while !piece.is_empty() || parser.pos() < filled {
            let n = piece.len().min(capacity - filled);
            buf[filled..filled + n].copy_from_slice(&piece[..n]);
            filled += n;
            piece = &piece[n..];
            let status = parser.parse(&buf[..filled], capacity);
            assert!(parser.pos() <= filled);
            for span in parser.args() {
                assert!(span.start <= span.end && span.end <= filled);
            }
            if let Some(line) = parser.verb_through_last_arg() {
                assert!(line.start <= line.end && line.end <= filled);
            }
            let next = match status {
                Status::Incomplete => {
                    if piece.is_empty() {
                        break;
                    }
                    continue;
                }
                Status::Invalid(kind) if kind.closes() => return,
                Status::Complete(Pop3Command::Auth) if parser.args().len() == 1 => {
                    Next::SaslResponse
                }
                _ => Next::Command,
            };
            filled = parser.finish(filled, next);
            assert!(filled <= capacity);
        }
    }
});
