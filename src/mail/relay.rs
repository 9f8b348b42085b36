//! The relay after login, as nginx's mail proxy handler: one fixed buffer
//! per direction (the client buffer towards the backend, `proxy_buffer`
//! towards the client), readiness-driven, with backpressure: a side is
//! read only while its buffer has room, so a peer that cannot take more
//! stops the reading of the other side.
//!
//! A direction holds its buffer only while bytes wait in it or its source
//! is being read: once it is empty and the source would block, the buffer
//! goes back to the worker's pool (an idle proxied session holds none).
//!
//! The session ends when a side has reached end of file and everything it
//! sent was delivered, or when both sides are at end of file (nginx does
//! not half-close). A read error counts as end of file (and is logged); a
//! write error ends the session at once.

use super::bufpool::PoolBuf;
use crate::event::{Io, IoStatus};
use std::io;

/// One direction: bytes read from a source wait in `buf[pos..last]`.
#[derive(Debug)]
pub struct Pipe {
    buf: PoolBuf,
    pos: usize,
    last: usize,
    /// The source reached end of file (or failed).
    pub eof: bool,
    /// The destination may hold back a partial segment written with
    /// `write_more`: push it when the burst ends.
    corked: bool,
}

impl Pipe {
    pub fn new(buf: PoolBuf, pos: usize, last: usize) -> Pipe {
        Pipe {
            buf,
            pos,
            last,
            eof: false,
            corked: false,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.pos == self.last
    }
    /// Whether the direction holds a buffer now.
    pub fn holds_buffer(&self) -> bool {
        self.buf.is_held()
    }
}

/// Readiness of one socket as the relay tracks it (edge-triggered: a
/// flag stays set until an operation reports would-block).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
}

/// Which side an I/O problem happened on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Backend,
}

/// What the session logs and does after a relay run.
#[derive(Debug)]
pub enum Outcome {
    /// Keep going.
    Continue,
    /// `proxied session done`.
    Done,
    /// A write failed: close without the "done" line (the error is
    /// logged as `send() failed`).
    WriteFailed(Side, io::Error),
}

/// A read error to log (`recv() failed`), then treated as end of file.
pub type ReadError = (Side, io::Error);

#[derive(Debug)]
pub struct Relay {
    /// Client to backend.
    pub up: Pipe,
    /// Backend to client.
    pub down: Pipe,
    pub client: Ready,
    pub backend: Ready,
}

/// Move bytes from `src` to `dst` through `pipe` until nothing more can
/// move: nginx's loop (write what is buffered, read while there is room).
fn pump(
    pipe: &mut Pipe,
    src: &mut dyn Io,
    src_ready: &mut Ready,
    dst: &mut dyn Io,
    dst_ready: &mut Ready,
) -> Result<Option<io::Error>, io::Error> {
    let mut read_error = None;
    loop {
        if pipe.pos < pipe.last && dst_ready.writable {
            // A full buffer from a source still readable means a bulk
            // transfer: let the kernel fill whole segments. Anything else
            // (a reply, the end of a burst) goes out at once.
            let more = pipe.last == pipe.buf.capacity() && src_ready.readable && !pipe.eof;
            let data = &pipe.buf[pipe.pos..pipe.last];
            let written = if more {
                // Even a write that blocks may have sent part of a TLS
                // record this way.
                pipe.corked = true;
                dst.write_more(data)?
            } else {
                dst.write(data)?
            };
            match written {
                IoStatus::Done(n) => {
                    // A plain write pushes what earlier ones held back.
                    if !more {
                        pipe.corked = false;
                    }
                    pipe.pos += n;
                    if pipe.pos == pipe.last {
                        pipe.pos = 0;
                        pipe.last = 0;
                    }
                }
                IoStatus::WouldBlock => dst_ready.writable = false,
                IoStatus::Closed => {
                    return Err(io::Error::from_raw_os_error(libc::EPIPE));
                }
            }
        }
        if pipe.last < pipe.buf.capacity() && src_ready.readable && !pipe.eof {
            match src.read(&mut pipe.buf.get()[pipe.last..]) {
                Ok(IoStatus::Done(n)) => {
                    pipe.last += n;
                    continue;
                }
                Ok(IoStatus::WouldBlock) => src_ready.readable = false,
                Ok(IoStatus::Closed) => pipe.eof = true,
                Err(e) => {
                    pipe.eof = true;
                    read_error = Some(e);
                }
            }
        } else if pipe.pos < pipe.last && dst_ready.writable {
            // The buffer is full (or the source is done) and the peer can
            // still take more.
            continue;
        }
        if pipe.is_empty() {
            // Nothing to move until the source is readable again.
            pipe.pos = 0;
            pipe.last = 0;
            pipe.buf.release();
            if pipe.corked {
                pipe.corked = false;
                dst.push()?;
            }
        }
        return Ok(read_error);
    }
}

impl Relay {
    /// `up` holds client bytes already read (pipelined after login),
    /// `down` the backend's last login reply for the client.
    pub fn new(up: Pipe, down: Pipe) -> Relay {
        Relay {
            up,
            down,
            client: Ready {
                readable: true,
                writable: true,
            },
            backend: Ready {
                readable: true,
                writable: true,
            },
        }
    }

    /// Run both directions; read errors are reported through `on_read_error`.
    pub fn run(
        &mut self,
        client: &mut dyn Io,
        backend: &mut dyn Io,
        on_read_error: &mut dyn FnMut(ReadError),
    ) -> Outcome {
        match pump(
            &mut self.up,
            client,
            &mut self.client,
            backend,
            &mut self.backend,
        ) {
            Ok(Some(e)) => on_read_error((Side::Client, e)),
            Ok(None) => {}
            Err(e) => return Outcome::WriteFailed(Side::Backend, e),
        }
        match pump(
            &mut self.down,
            backend,
            &mut self.backend,
            client,
            &mut self.client,
        ) {
            Ok(Some(e)) => on_read_error((Side::Backend, e)),
            Ok(None) => {}
            Err(e) => return Outcome::WriteFailed(Side::Client, e),
        }
        if (self.up.eof && self.up.is_empty())
            || (self.down.eof && self.down.is_empty())
            || (self.up.eof && self.down.eof)
        {
            return Outcome::Done;
        }
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A scripted stream: reads come from `input` chunks (then
    /// would-block, or end of file when `closed`), writes accept at most
    /// `room` bytes before blocking.
    #[derive(Default)]
    struct Fake {
        input: VecDeque<Vec<u8>>,
        closed: bool,
        written: Vec<u8>,
        room: usize,
        fail_write: bool,
        /// Writes and pushes in order: `more N`, `plain N`, `push`.
        ops: Vec<String>,
    }

    impl Io for Fake {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<IoStatus> {
            match self.input.front_mut() {
                Some(chunk) => {
                    let n = chunk.len().min(buf.len());
                    buf[..n].copy_from_slice(&chunk[..n]);
                    chunk.drain(..n);
                    if chunk.is_empty() {
                        self.input.pop_front();
                    }
                    Ok(IoStatus::Done(n))
                }
                None if self.closed => Ok(IoStatus::Closed),
                None => Ok(IoStatus::WouldBlock),
            }
        }
        fn write(&mut self, buf: &[u8]) -> io::Result<IoStatus> {
            if self.fail_write {
                return Err(io::Error::from_raw_os_error(libc::EPIPE));
            }
            let n = buf.len().min(self.room);
            if n == 0 {
                return Ok(IoStatus::WouldBlock);
            }
            self.room -= n;
            self.written.extend_from_slice(&buf[..n]);
            self.ops.push(format!("plain {n}"));
            Ok(IoStatus::Done(n))
        }
        fn write_more(&mut self, buf: &[u8]) -> io::Result<IoStatus> {
            let r = self.write(buf);
            if let Some(op) = self.ops.last_mut() {
                *op = op.replace("plain", "more");
            }
            r
        }
        fn push(&mut self) -> io::Result<()> {
            self.ops.push("push".into());
            Ok(())
        }
    }

    fn relay(size: usize, greeting: &[u8]) -> Relay {
        let mut down = PoolBuf::new(size);
        down.get()[..greeting.len()].copy_from_slice(greeting);
        Relay::new(
            Pipe::new(PoolBuf::new(size), 0, 0),
            Pipe::new(down, 0, greeting.len()),
        )
    }

    #[test]
    fn idle_directions_hold_no_buffer() {
        let mut r = relay(64, b"+OK hi\r\n");
        let mut client = Fake {
            input: VecDeque::from(vec![b"NOOP\r\n".to_vec()]),
            room: 1000,
            ..Fake::default()
        };
        let mut backend = Fake {
            room: 1000,
            ..Fake::default()
        };
        let o = r.run(&mut client, &mut backend, &mut |_| {});
        assert!(matches!(o, Outcome::Continue));
        assert_eq!(client.written, b"+OK hi\r\n");
        assert_eq!(backend.written, b"NOOP\r\n");
        assert!(!r.up.holds_buffer());
        assert!(!r.down.holds_buffer());
        // A direction whose peer cannot take the bytes keeps them.
        backend.input.push_back(b"+OK\r\n".to_vec());
        client.room = 2;
        r.backend.readable = true;
        let o = r.run(&mut client, &mut backend, &mut |_| {});
        assert!(matches!(o, Outcome::Continue));
        assert!(r.down.holds_buffer());
        assert!(!r.up.holds_buffer());
        client.room = 100;
        r.client.writable = true;
        r.run(&mut client, &mut backend, &mut |_| {});
        assert_eq!(client.written, b"+OK hi\r\n+OK\r\n");
        assert!(!r.down.holds_buffer());
    }

    #[test]
    fn steady_relaying_reuses_pooled_buffers() {
        let mut r = relay(32, b"");
        let mut client = Fake {
            room: 1 << 20,
            ..Fake::default()
        };
        let mut backend = Fake {
            room: 1 << 20,
            ..Fake::default()
        };
        let mut seen = None;
        for i in 0..100 {
            client
                .input
                .push_back(format!("a{i} NOOP\r\n").into_bytes());
            r.client.readable = true;
            r.run(&mut client, &mut backend, &mut |_| {});
            assert!(!r.up.holds_buffer());
            // The same buffer goes round: the free list neither grows nor
            // shrinks.
            let free = crate::mail::bufpool::with(|p| p.free_count(32));
            assert_eq!(*seen.get_or_insert(free), free);
        }
    }

    #[test]
    fn forwards_both_ways_and_finishes_on_eof() {
        let mut r = relay(8, b"+OK hi\r\n");
        let mut client = Fake {
            input: VecDeque::from(vec![b"LIST\r\nRETR 1\r\n".to_vec()]),
            room: 1000,
            ..Fake::default()
        };
        let mut backend = Fake {
            input: VecDeque::from(vec![b"+OK 1 message\r\n".to_vec()]),
            room: 1000,
            ..Fake::default()
        };
        let mut errs = Vec::new();
        let o = r.run(&mut client, &mut backend, &mut |e| errs.push(e));
        assert!(matches!(o, Outcome::Continue));
        assert_eq!(backend.written, b"LIST\r\nRETR 1\r\n");
        assert_eq!(client.written, b"+OK hi\r\n+OK 1 message\r\n");
        backend.closed = true;
        r.backend.readable = true;
        let o = r.run(&mut client, &mut backend, &mut |e| errs.push(e));
        assert!(matches!(o, Outcome::Done));
        assert!(errs.is_empty());
    }

    #[test]
    fn backpressure_stops_reading_until_peer_drains() {
        let mut r = relay(4, b"");
        let mut client = Fake {
            input: VecDeque::from(vec![b"0123456789".to_vec()]),
            room: 1000,
            ..Fake::default()
        };
        let mut backend = Fake {
            room: 3,
            ..Fake::default()
        };
        let o = r.run(&mut client, &mut backend, &mut |_| {});
        assert!(matches!(o, Outcome::Continue));
        // 3 bytes went through; the 4-byte buffer still holds one and is
        // not compacted, so the rest stays in the client.
        assert_eq!(backend.written, b"012");
        assert!(!r.backend.writable);
        assert_eq!(client.input.iter().map(|c| c.len()).sum::<usize>(), 6);
        backend.room = 100;
        r.backend.writable = true;
        let o = r.run(&mut client, &mut backend, &mut |_| {});
        assert!(matches!(o, Outcome::Continue));
        assert_eq!(backend.written, b"0123456789");
    }

    #[test]
    fn client_eof_waits_for_its_data_to_drain() {
        let mut r = relay(16, b"");
        let mut client = Fake {
            input: VecDeque::from(vec![b"QUIT\r\n".to_vec()]),
            closed: true,
            room: 1000,
            ..Fake::default()
        };
        let mut backend = Fake::default();
        let o = r.run(&mut client, &mut backend, &mut |_| {});
        assert!(matches!(o, Outcome::Continue));
        backend.room = 100;
        r.backend.writable = true;
        let o = r.run(&mut client, &mut backend, &mut |_| {});
        assert!(matches!(o, Outcome::Done));
        assert_eq!(backend.written, b"QUIT\r\n");
    }

    /// Full buffers from a source that still has data are written with
    /// `write_more` (whole segments); the end of the burst goes out at
    /// once: a short last read is a plain write, a burst that ends on a
    /// full buffer is pushed.
    #[test]
    fn bulk_is_corked_until_the_burst_ends() {
        let backend_with = |chunks: &[&[u8]], closed: bool| Fake {
            input: chunks.iter().map(|c| c.to_vec()).collect(),
            closed,
            ..Fake::default()
        };
        let client = || Fake {
            room: 1000,
            ..Fake::default()
        };
        for (chunks, closed, ops) in [
            (
                &[&b"aaaaaaaa"[..], b"bbbbbbbb"][..],
                false,
                &["more 8", "more 8", "push"][..],
            ),
            (&[&b"aaaaaaaa"[..], b"bbb"], false, &["more 8", "plain 3"]),
            (&[&b"aaaaaaaa"[..]], true, &["more 8", "push"]),
            (&[&b"+OK\r\n"[..]], false, &["plain 5"]),
        ] {
            let mut r = relay(8, b"");
            let (mut c, mut b) = (client(), backend_with(chunks, closed));
            r.run(&mut c, &mut b, &mut |_| {});
            assert_eq!(c.ops, ops, "{chunks:?}");
            assert_eq!(c.written, chunks.concat());
        }
        // A partial write keeps the rest; nothing is pushed while bytes
        // still wait for the peer, and the plain write of the tail
        // flushes.
        let mut r = relay(8, b"");
        let mut b = backend_with(&[b"aaaaaaaa", b"bb"], false);
        let mut c = Fake {
            room: 5,
            ..Fake::default()
        };
        r.run(&mut c, &mut b, &mut |_| {});
        assert_eq!(c.ops, ["more 5"]);
        c.room = 100;
        r.client.writable = true;
        r.run(&mut c, &mut b, &mut |_| {});
        assert_eq!(c.ops, ["more 5", "more 3", "plain 2"]);
        assert_eq!(c.written, b"aaaaaaaabb");
    }

    #[test]
    fn write_error_ends_at_once() {
        let mut r = relay(16, b"x");
        let mut client = Fake {
            fail_write: true,
            ..Fake::default()
        };
        let mut backend = Fake::default();
        let o = r.run(&mut client, &mut backend, &mut |_| {});
        assert!(matches!(o, Outcome::WriteFailed(Side::Client, _)));
    }
}
