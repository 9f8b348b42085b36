//! The places a log line can go: files, stderr, syslog, a memory ring.

use crate::conf::{SyslogServer, SyslogTarget};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::clock;

/// One open log file, shared by every sink that names the same path
/// (nginx opens each path once per configuration).
#[derive(Debug)]
pub struct SharedFile {
    pub path: PathBuf,
    file: RwLock<File>,
}

/// nginx's NGX_FILE_DEFAULT_ACCESS.
const FILE_MODE: u32 = 0o644;

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
}

/// nginx's wording for a failed open: `open() "/x" failed (13: ...)`.
pub fn open_error_text(path: &Path, err: &io::Error) -> String {
    format!(
        "open() \"{}\" failed{}",
        path.display(),
        super::errno_suffix(err)
    )
}

impl SharedFile {
    pub fn open(path: &Path) -> Result<SharedFile, String> {
        let file = open_append(path).map_err(|e| open_error_text(path, &e))?;
        Ok(SharedFile {
            path: path.to_path_buf(),
            file: RwLock::new(file),
        })
    }

    pub fn write(&self, bytes: &[u8]) {
        let file = self.file.read().unwrap_or_else(|e| e.into_inner());
        // A log line that cannot be written has nowhere else to go; nginx
        // ignores the result of this write too.
        let _ = (&*file).write_all(bytes);
    }

    /// Open the path anew (after it was renamed away) and switch to the new
    /// file; with `owner`, hand the new file to that user as nginx's master
    /// does for its workers.
    pub fn reopen(&self, owner: Option<u32>) -> Result<(), String> {
        let file = open_append(&self.path).map_err(|e| open_error_text(&self.path, &e))?;
        if let Some(uid) = owner {
            std::os::unix::fs::fchown(&file, Some(uid), None).map_err(|e| {
                format!(
                    "chown(\"{}\", {}) failed{}",
                    self.path.display(),
                    uid,
                    super::errno_suffix(&e)
                )
            })?;
        }
        *self.file.write().unwrap_or_else(|e| e.into_inner()) = file;
        Ok(())
    }

    pub fn raw_fd(&self) -> i32 {
        self.file
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_raw_fd()
    }
}

/// A cyclic in-memory buffer (`error_log memory:size`): a header line,
/// then a ring that wraps around and overwrites the oldest bytes.
#[derive(Debug)]
pub struct MemoryRing {
    inner: Mutex<RingState>,
}

#[derive(Debug)]
struct RingState {
    buf: Vec<u8>,
    /// Where the ring starts (after the header).
    start: usize,
    /// Bytes written to the ring so far.
    written: usize,
}

impl MemoryRing {
    pub fn new(size: usize) -> MemoryRing {
        let header = format!("MEMLOG {size}\n").into_bytes();
        let total = size.max(header.len() + 1);
        let mut buf = vec![b' '; total];
        buf[..header.len()].copy_from_slice(&header);
        MemoryRing {
            inner: Mutex::new(RingState {
                buf,
                start: header.len(),
                written: 0,
            }),
        }
    }

    pub fn write(&self, bytes: &[u8]) {
        let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let ring_len = st.buf.len() - st.start;
        // Only the last ring_len bytes of an oversized line can survive.
        let bytes = if bytes.len() > ring_len {
            let skip = bytes.len() - ring_len;
            st.written += skip;
            &bytes[skip..]
        } else {
            bytes
        };
        let start = st.start;
        let pos = st.written % ring_len;
        let first = (ring_len - pos).min(bytes.len());
        st.buf[start + pos..start + pos + first].copy_from_slice(&bytes[..first]);
        let rest = bytes.len() - first;
        st.buf[start..start + rest].copy_from_slice(&bytes[first..]);
        st.written += bytes.len();
    }

    /// The whole buffer as it lies in memory (header, then the ring).
    #[cfg(test)]
    pub fn raw(&self) -> Vec<u8> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .buf
            .clone()
    }

    /// The ring's contents oldest first (what survived the wrap-around).
    pub fn contents(&self) -> Vec<u8> {
        let st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let ring = &st.buf[st.start..];
        if st.written <= ring.len() {
            return ring[..st.written].to_vec();
        }
        let pos = st.written % ring.len();
        let mut out = ring[pos..].to_vec();
        out.extend_from_slice(&ring[..pos]);
        out
    }
}

/// A syslog peer: a connected datagram socket made on first use, dropped
/// after a send error and made again for the next message.
#[derive(Debug)]
pub struct SyslogPeer {
    pub target: SyslogTarget,
    socket: Mutex<Option<SyslogSocket>>,
    /// Set while a message is being sent, so an error about this peer
    /// logged through the same log does not loop back into it.
    busy: AtomicBool,
}

#[derive(Debug)]
enum SyslogSocket {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

/// The longest syslog tag nginx accepts (RFC 3164).
const MAX_TAG: usize = 32;

/// The BSD syslog packet nginx sends: `<PRI>Mmm dd HH:MM:SS host tag: line`
/// (no host with `nohostname`), where PRI is facility * 8 + the message's
/// severity (nginx derives the severity from the message level, so the
/// `severity=` parameter does not apply to error logs).
pub fn syslog_packet(
    target: &SyslogTarget,
    severity: u8,
    time: &str,
    host: &str,
    line: &[u8],
) -> Vec<u8> {
    let pri = u32::from(target.facility) * 8 + u32::from(severity);
    let mut out = if target.nohostname {
        format!("<{pri}>{time} {}: ", target.tag)
    } else {
        format!("<{pri}>{time} {host} {}: ", target.tag)
    }
    .into_bytes();
    let head_len = out.len();
    let max = super::MAX_LINE + "<255>Jan 01 00:00:00 ".len() + 255 + 1 + MAX_TAG + 2;
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let room = max.saturating_sub(head_len);
    out.extend_from_slice(&line[..line.len().min(room)]);
    out
}

impl SyslogPeer {
    pub fn new(target: SyslogTarget) -> SyslogPeer {
        SyslogPeer {
            target,
            socket: Mutex::new(None),
            busy: AtomicBool::new(false),
        }
    }

    pub fn server_text(&self) -> String {
        match &self.target.server {
            SyslogServer::Udp(a) => a.to_string(),
            SyslogServer::Unix(p) => format!("unix:{}", p.display()),
        }
    }

    fn connect(&self) -> Result<SyslogSocket, String> {
        match &self.target.server {
            SyslogServer::Udp(addr) => {
                let local: SocketAddr = if addr.is_ipv4() {
                    "0.0.0.0:0".parse().expect("valid address")
                } else {
                    "[::]:0".parse().expect("valid address")
                };
                let sock = UdpSocket::bind(local)
                    .map_err(|e| format!("socket() failed{}", super::errno_suffix(&e)))?;
                sock.connect(addr)
                    .map_err(|e| format!("connect() failed{}", super::errno_suffix(&e)))?;
                sock.set_nonblocking(true)
                    .map_err(|e| format!("ioctl(FIONBIO) failed{}", super::errno_suffix(&e)))?;
                Ok(SyslogSocket::Udp(sock))
            }
            SyslogServer::Unix(path) => {
                let sock = UnixDatagram::unbound()
                    .map_err(|e| format!("socket() failed{}", super::errno_suffix(&e)))?;
                sock.set_nonblocking(true)
                    .map_err(|e| format!("ioctl(FIONBIO) failed{}", super::errno_suffix(&e)))?;
                sock.connect(path)
                    .map_err(|e| format!("connect() failed{}", super::errno_suffix(&e)))?;
                Ok(SyslogSocket::Unix(sock))
            }
        }
    }

    /// Claim the peer for one message; false when it is already sending
    /// (an error about it is being logged through the same log).
    pub fn begin(&self) -> bool {
        !self.busy.swap(true, Ordering::Acquire)
    }

    pub fn end(&self) {
        self.busy.store(false, Ordering::Release);
    }

    /// Send one log line (between `begin` and `end`); an error comes back
    /// as text for an alert (`... while logging to syslog, server: ...`).
    pub fn send(&self, severity: u8, line: &[u8]) -> Option<String> {
        let now = clock::LocalTime::now();
        let packet = syslog_packet(
            &self.target,
            severity,
            &now.syslog_format(),
            clock::hostname(),
            line,
        );
        let result = {
            let mut sock = self.socket.lock().unwrap_or_else(|e| e.into_inner());
            let r = match sock.take() {
                Some(s) => Ok(s),
                None => self.connect(),
            };
            match r {
                Err(e) => Some(e),
                Ok(s) => {
                    let sent = match &s {
                        SyslogSocket::Udp(u) => u.send(&packet),
                        SyslogSocket::Unix(u) => u.send(&packet),
                    };
                    match sent {
                        Ok(_) => {
                            *sock = Some(s);
                            None
                        }
                        // Dropping the socket closes it; the next message
                        // connects again.
                        Err(e) => Some(format!("send() failed{}", super::errno_suffix(&e))),
                    }
                }
            }
        };
        result.map(|e| {
            format!(
                "{e} while logging to syslog, server: {}",
                self.server_text()
            )
        })
    }
}

/// Where one sink writes.
#[derive(Debug, Clone)]
pub enum SinkKind {
    File(Arc<SharedFile>),
    Stderr,
    Syslog(Arc<SyslogPeer>),
    Memory(Arc<MemoryRing>),
}
