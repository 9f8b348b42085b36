//! The driver shared by the POP3 and SMTP fuzz targets (both protocols use
//! one verb-line parser): input split into reads of a fuzzed size, a fuzzed
//! buffer size, SASL continuation after a one-argument AUTH. It must never
//! panic, and every position the parser reports must lie inside the filled
//! buffer.

use postern::mail::parse::verb_line::{LineCommand, VerbLineParser};
use postern::mail::parse::{Next, Status};

pub fn drive<C: LineCommand, const N: usize>(data: &[u8], is_auth: fn(C) -> bool) {
    let Some((&params, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(params & 0x0f) + 1;
    let capacity = 16 << (params >> 6);
    let mut parser = VerbLineParser::<C, N>::new();
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
                Status::Complete(c) if is_auth(c) && parser.args().len() == 1 => Next::SaslResponse,
                _ => Next::Command,
            };
            filled = parser.finish(filled, next);
            assert!(filled <= capacity);
        }
    }
}
