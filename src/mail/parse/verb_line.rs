//! The line parser shared by POP3 and SMTP: `VERB [SP args] CRLF`.
//!
//! Both protocols use the same machine in nginx; they differ only in the
//! verb table, the argument limit, and POP3's USER/PASS keeping spaces in
//! their argument. A bare LF also ends a line; a CR must be followed by LF.

use super::{is_alpha, Args, Invalid, Next, Span, Status};

/// A protocol's command set for [`VerbLineParser`].
pub trait LineCommand: Copy + PartialEq {
    /// The command for a verb made of ASCII letters, case-insensitive.
    fn from_verb(verb: &[u8]) -> Option<Self>;
    /// Whether spaces inside this command's argument belong to it.
    fn keeps_spaces(self) -> bool;
    /// Whether a complete line of this command leaves the parser reading
    /// a SASL response (the session confirms with [`Next::SaslResponse`]).
    fn starts_sasl(self) -> bool;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Verb,
    Invalid,
    SpacesBeforeArgument,
    Argument,
    AlmostDone,
}

/// Resumable line parser over a caller-owned buffer, for a command set `C`
/// with at most `N` arguments per line; see [`super`] for the flow.
#[derive(Debug, Clone)]
pub struct VerbLineParser<C, const N: usize> {
    state: State,
    pos: usize,
    verb_start: usize,
    arg_start: usize,
    command: Option<C>,
    /// The verb of the current line; `None` on SASL response lines.
    verb: Option<Span>,
    args: Args<N>,
}

impl<C: LineCommand, const N: usize> Default for VerbLineParser<C, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: LineCommand, const N: usize> VerbLineParser<C, N> {
    pub const fn new() -> Self {
        VerbLineParser {
            state: State::Start,
            pos: 0,
            verb_start: 0,
            arg_start: 0,
            command: None,
            verb: None,
            args: Args::new(),
        }
    }

    /// Parses from the current position to the end of `buf` (the filled
    /// part of the session buffer, whose total size is `capacity`).
    pub fn parse(&mut self, buf: &[u8], capacity: usize) -> Status<C> {
        let status = self.run(buf);
        if status == Status::Incomplete && buf.len() >= capacity {
            self.state = State::Start;
            return Status::Invalid(Invalid::TooLong);
        }
        status
    }

    fn run(&mut self, buf: &[u8]) -> Status<C> {
        let mut p = self.pos;
        while let Some(&ch) = buf.get(p) {
            match self.state {
                State::Start => {
                    self.verb_start = p;
                    self.state = State::Verb;
                    continue;
                }
                State::Verb => {
                    if matches!(ch, b' ' | b'\r' | b'\n') {
                        let Some(command) = C::from_verb(&buf[self.verb_start..p]) else {
                            return self.invalid(buf, p);
                        };
                        self.command = Some(command);
                        self.verb = Some(Span::new(self.verb_start, p));
                        match ch {
                            b' ' => self.state = State::SpacesBeforeArgument,
                            b'\r' => self.state = State::AlmostDone,
                            _ => return self.done(p),
                        }
                    } else if !is_alpha(ch) {
                        return self.invalid(buf, p);
                    }
                }
                State::Invalid => return self.invalid(buf, p),
                State::SpacesBeforeArgument => match ch {
                    b' ' => {}
                    b'\r' => self.state = State::AlmostDone,
                    b'\n' => return self.done(p),
                    _ if self.args.len < N => {
                        self.state = State::Argument;
                        self.arg_start = p;
                    }
                    _ => return self.invalid(buf, p),
                },
                State::Argument => match ch {
                    b' ' if self.command.is_some_and(C::keeps_spaces) => {}
                    b' ' | b'\r' | b'\n' => {
                        self.args.push(Span::new(self.arg_start, p));
                        match ch {
                            b' ' => self.state = State::SpacesBeforeArgument,
                            b'\r' => self.state = State::AlmostDone,
                            _ => return self.done(p),
                        }
                    }
                    _ => {}
                },
                State::AlmostDone => {
                    if ch == b'\n' {
                        return self.done(p);
                    }
                    return self.invalid(buf, p);
                }
            }
            p += 1;
        }
        self.pos = p;
        Status::Incomplete
    }

    fn done(&mut self, lf: usize) -> Status<C> {
        self.pos = lf + 1;
        self.state = if self.command.is_some_and(C::starts_sasl) {
            State::Argument
        } else {
            State::Start
        };
        match self.command {
            Some(command) => Status::Complete(command),
            // A line completes only after a verb was recognised.
            None => Status::Invalid(Invalid::Command),
        }
    }

    /// Skips the rest of a rejected line through its LF.
    fn invalid(&mut self, buf: &[u8], from: usize) -> Status<C> {
        self.state = State::Invalid;
        self.args.clear();
        self.verb = None;
        match buf[from..].iter().position(|&b| b == b'\n') {
            Some(offset) => {
                self.state = State::Start;
                self.pos = from + offset + 1;
                Status::Invalid(Invalid::Command)
            }
            None => {
                self.pos = buf.len();
                Status::Incomplete
            }
        }
    }

    /// Arguments of the last complete line (at most `N`).
    pub fn args(&self) -> &[Span] {
        self.args.as_slice()
    }

    /// The verb of the complete line, as the client wrote it; `None` for a
    /// SASL response line.
    pub fn verb(&self) -> Option<Span> {
        self.verb
    }

    /// From the verb through the end of the last argument, spaces between
    /// arguments included: what nginx passes on for SMTP's MAIL and RCPT
    /// (`Auth-SMTP-From` / `Auth-SMTP-To`). `None` without arguments.
    pub fn verb_through_last_arg(&self) -> Option<Span> {
        let last = self.args.as_slice().last()?;
        Some(Span::new(self.verb?.start, last.end))
    }

    /// How far the buffer has been consumed.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Ends the handling of a line; returns the new fill level of the
    /// buffer (0 when everything was consumed and the buffer rewound).
    pub fn finish(&mut self, filled: usize, next: Next) -> usize {
        self.args.clear();
        self.verb = None;
        self.state = match next {
            Next::SaslResponse => State::Argument,
            Next::Command | Next::Auth => State::Start,
        };
        let mut filled = filled;
        if self.pos >= filled {
            self.pos = 0;
            filled = 0;
        }
        if self.state == State::Argument {
            self.arg_start = self.pos;
        }
        filled
    }

    /// Forgets buffered input (STLS / STARTTLS: nothing read before TLS may be used);
    /// the caller sets its fill level to 0.
    pub fn discard_input(&mut self) {
        self.pos = 0;
        self.arg_start = 0;
        self.state = State::Start;
        self.args.clear();
        self.verb = None;
    }
}
