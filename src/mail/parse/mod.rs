//! Resumable command parsers for IMAP, POP3 and SMTP.
//!
//! # Buffer model
//!
//! A session owns one fixed buffer per client connection (`imap_client_buffer`,
//! `smtp_client_buffer`, or 128 bytes for POP3) and a fill level `filled`.
//! After each read it appends to `buf[filled..]` and calls the protocol
//! parser's `parse(&buf[..filled], buf.len())`. The parser keeps its own read
//! position and state, so input may arrive in any split, down to one byte at
//! a time; it stores argument positions as [`Span`]s into the buffer in a
//! fixed array and never allocates.
//!
//! `parse` returns a [`Status`]:
//!
//! * [`Status::Incomplete`]: read more. The buffer is not compacted while a
//!   command is incomplete (nor while an invalid line is being skipped), so a
//!   line longer than the buffer ends in [`Invalid::TooLong`].
//! * [`Status::Complete`]: a whole line; its arguments are in `args()`.
//! * [`Status::Invalid`]: the line was rejected and skipped through its LF.
//! * [`Status::LiteralContinuation`] (IMAP only): a synchronizing literal
//!   `{n}` was announced; send `+ OK\r\n` and keep reading, *without* calling
//!   `finish`.
//!
//! After acting on a `Complete` or `Invalid` line (building and queueing the
//! reply) the session calls `finish(filled, next)` with the [`Next`] step. It
//! clears the arguments and, when the whole buffer has been consumed, rewinds
//! the buffer: it returns the new fill level (0 after a rewind). Spans of the
//! finished line must not be used after `finish`.
//!
//! When `pos() < filled` after a line, more pipelined input is already in the
//! buffer: the session must parse again once its reply has been written
//! (nginx's "blocked" read handler), even if the socket is not readable.
//!
//! A line that does not fit stays [`Status::Incomplete`] until the buffer is
//! full; then `parse` reports [`Invalid::TooLong`]. nginx logs it at `info`
//! (see [`TooLongCommand`]), sends the protocol's invalid-command reply and
//! closes the connection; it is not counted towards `max_errors`.
//!
//! The quirks documented in each parser were checked against stock nginx
//! 1.22.1, whose parsers equal 1.31.5's except for two later IMAP fixes
//! reproduced here from the 1.31.5 source: a literal must be followed by a
//! space or the end of the line, and literal lengths of 922337203685477581
//! and more are rejected.

pub mod imap;
pub mod pop3;
pub mod smtp;
pub mod verb_line;

use std::fmt;

/// A byte range of the session's buffer; positions stay valid until the
/// parser's `finish` rewinds the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub const fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The bytes of this span in `buf`.
    ///
    /// # Panics
    /// If the span lies outside `buf`, i.e. `buf` is not the buffer the
    /// parser ran over.
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start..self.end]
    }

    pub const fn len(&self) -> usize {
        self.end - self.start
    }

    pub const fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// One parse step's result; `C` is the protocol's command enum.
///
/// Mirrors nginx's return codes: `NGX_AGAIN`, `NGX_OK`,
/// `NGX_MAIL_PARSE_INVALID_COMMAND` (plus the "too long command" case that
/// nginx's reader folds into it) and `NGX_IMAP_NEXT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<C> {
    /// More input is needed (`NGX_AGAIN`).
    Incomplete,
    /// A complete command line (`NGX_OK`).
    Complete(C),
    /// The line is rejected (`NGX_MAIL_PARSE_INVALID_COMMAND`).
    Invalid(Invalid),
    /// IMAP only: a synchronizing literal was announced and the client
    /// waits for `+ OK\r\n` before sending it (`NGX_IMAP_NEXT`).
    LiteralContinuation,
}

/// Why a line was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// A malformed command; counts towards `max_errors`.
    Command,
    /// IMAP only: a malformed command whose line ended in a
    /// non-synchronizing literal `{n+}`. The client will send the literal
    /// without waiting, so nginx answers and then closes the connection.
    /// Counts towards `max_errors`.
    NonSyncLiteral,
    /// The buffer is full and holds no complete line: nginx logs
    /// [`TooLongCommand`], answers as for an invalid command and closes.
    /// Not counted towards `max_errors`.
    TooLong,
}

impl Invalid {
    /// Whether nginx closes the connection after sending the reply.
    pub const fn closes(self) -> bool {
        !matches!(self, Invalid::Command)
    }

    /// Whether this rejection increments the session's error counter
    /// (checked against `max_errors`, which logs
    /// "client sent too many invalid commands" and closes).
    pub const fn counts_as_error(self) -> bool {
        !matches!(self, Invalid::TooLong)
    }
}

/// What the session does after a `Complete` or `Invalid` line; passed to
/// the parser's `finish`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Parse the next line as a new command. Use this after any reply,
    /// including every invalid one.
    Command,
    /// The next line is a SASL response (after an AUTH / AUTHENTICATE
    /// challenge such as `334 ` or `+ VXNlcm5hbWU6`): the whole line up to
    /// the first space is the first argument.
    SaslResponse,
    /// Credentials are complete and the session goes to auth_http. Like
    /// `Command`, except that IMAP keeps the tag for the final reply.
    Auth,
}

/// The `info` log line for [`Invalid::TooLong`]: nginx prints the whole
/// buffer from its start, raw.
///
/// Bytes that are not UTF-8 are shown as U+FFFD since log lines are text.
#[derive(Debug, Clone, Copy)]
pub struct TooLongCommand<'a>(pub &'a [u8]);

impl fmt::Display for TooLongCommand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client sent too long command \"{}\"",
            String::from_utf8_lossy(self.0)
        )
    }
}

/// The "too many invalid commands" log line (`info`).
pub const TOO_MANY_INVALID_COMMANDS: &str = "client sent too many invalid commands";

/// ASCII letter test used by all three parsers for command verbs.
const fn is_alpha(ch: u8) -> bool {
    ch.is_ascii_alphabetic()
}

/// Fixed-capacity argument list; the capacity is the protocol's limit.
#[derive(Debug, Clone, Copy)]
struct Args<const N: usize> {
    spans: [Span; N],
    len: usize,
}

impl<const N: usize> Args<N> {
    const fn new() -> Self {
        Args {
            spans: [Span::new(0, 0); N],
            len: 0,
        }
    }

    fn as_slice(&self) -> &[Span] {
        &self.spans[..self.len]
    }

    /// Appends; callers check the limit before starting an argument, so a
    /// full list is a parser bug. It is ignored rather than panicking on
    /// network input.
    fn push(&mut self, span: Span) {
        if let Some(slot) = self.spans.get_mut(self.len) {
            *slot = span;
            self.len += 1;
        }
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    /// End offsets of successive `chunk`-byte reads of `input`.
    pub fn chunks(input: &[u8], chunk: usize) -> impl Iterator<Item = usize> + '_ {
        let chunk = chunk.max(1);
        (1..=input.len().div_ceil(chunk)).map(move |i| (i * chunk).min(input.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_access() {
        let buf = b"hello world";
        let s = Span::new(6, 11);
        assert_eq!(s.of(buf), b"world");
        assert_eq!(s.len(), 5);
        assert!(!s.is_empty());
        assert!(Span::new(3, 3).is_empty());
    }

    #[test]
    fn invalid_kinds() {
        assert!(!Invalid::Command.closes());
        assert!(Invalid::Command.counts_as_error());
        assert!(Invalid::NonSyncLiteral.closes());
        assert!(Invalid::NonSyncLiteral.counts_as_error());
        assert!(Invalid::TooLong.closes());
        assert!(!Invalid::TooLong.counts_as_error());
    }

    #[test]
    fn too_long_message() {
        assert_eq!(
            TooLongCommand(b"a LOGIN x").to_string(),
            "client sent too long command \"a LOGIN x\""
        );
    }

    #[test]
    fn args_ignore_overflow() {
        let mut a = Args::<2>::new();
        a.push(Span::new(0, 1));
        a.push(Span::new(1, 2));
        a.push(Span::new(2, 3));
        assert_eq!(a.as_slice().len(), 2);
        a.clear();
        assert!(a.as_slice().is_empty());
    }

    #[test]
    fn chunk_ends() {
        let v: Vec<usize> = test_support::chunks(b"abcde", 2).collect();
        assert_eq!(v, vec![2, 4, 5]);
    }
}
