//! The PROXY protocol (v1 text and v2 binary), as nginx 1.31.5 reads it on
//! `listen … proxy_protocol` and writes it to backends with
//! `proxy_protocol on|v2`.
//!
//! Sans-io: [`parse`] takes the bytes received so far and never allocates
//! (the header borrows the buffer); the writers fill a caller's buffer.
//!
//! # Reading: what nginx does and what we do
//!
//! nginx peeks once at up to [`MAX_HEADER`] (4096) bytes, judges exactly
//! what that one peek returned, then consumes only the header; the bytes
//! after it stay in the socket for the mail protocol. A header split over
//! two TCP segments is therefore rejected by nginx if the first segment
//! arrives alone. Postern is incremental instead: [`parse`] answers
//! [`Parse::Incomplete`] while the bytes so far could still become a valid
//! header (or a different nginx error) and fewer than [`MAX_HEADER`] bytes
//! are buffered; every other answer is the one nginx gives for the same
//! bytes, with the same log text. When the client closes (or on the
//! timeout, where nginx logs `client timed out` instead) the session may call
//! [`parse_final`], which is nginx's one-shot verdict and never incomplete.
//!
//! nginx quirks reproduced:
//! * v1 lines are not limited to 107 bytes on reading: any length up to the
//!   4096-byte peek is accepted (leading zeros in ports, `PROXY UNKNOWN…`
//!   followed by anything up to the first CRLF).
//! * `PROXY UNKNOWN` needs no space after it (`PROXY UNKNOWNxyz\r\n` is
//!   fine) and only CR LF ends it; a lone LF does not.
//! * v1 addresses are any run (even empty) of hex digits, `:` and `.`;
//!   they are kept as text and not checked to be addresses, and TCP4/TCP6
//!   is not checked against them.
//! * The source port is scanned up to the next space, the destination port
//!   up to the next CR, over any bytes; then it must be 1+ digits ≤ 65535.
//! * v2 `header is too large` is logged whenever fewer bytes than the
//!   header's length field announces were received.
//! * v2: any command other than PROXY (LOCAL, or an undefined one), any
//!   transport other than STREAM and any family other than INET/INET6
//!   (UNSPEC, UNIX, undefined) are accepted and skipped with no addresses.
//! * v2 INET/INET6 with a length too short for the addresses closes the
//!   connection without a log line ([`Error::ShortAddresses`]).
//! * v2 TLVs are not checked on reading; they are kept raw.
//!
//! Stock nginx 1.22.1 (checked) differs from the 1.31.5 source followed
//! here: it peeks only 107 bytes (a longer v1 line is a broken header) and
//! logs the whole peeked buffer, CR LF and all, where 1.31.5 stops the text
//! at the first CR or LF. It agrees on everything else tested: UNKNOWN
//! skipping, `1..2.3`-style addresses, silent close on short v2 addresses,
//! `header is too large`, `unknown PROXY protocol version: 1`, and a header
//! split over two segments being rejected (`broken header: "PROXY TCP4"`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The most bytes nginx looks at for an incoming header, and the size of
/// its buffer for an outgoing one.
pub const MAX_HEADER: usize = 4096;

/// The smallest buffer the v1 writer accepts (nginx's check).
pub const V1_MAX_HEADER: usize = 107;

/// The smallest buffer the v2 writer accepts (nginx's check): the fixed
/// header and two IPv6 addresses with ports.
pub const V2_MAX_HEADER: usize = 52;

/// The v2 signature, the first 12 bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Length of the v2 fixed part: signature, version/command,
/// family/transport, length.
const V2_FIXED: usize = 16;

/// Which version of the protocol a header came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// An address of a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address<'a> {
    /// v1: the text of the line, verbatim (only hex digits, `:` and `.`,
    /// possibly empty, not necessarily an address).
    Text(&'a [u8]),
    /// v2: the binary address.
    Ip(IpAddr),
}

impl Address<'_> {
    /// Writes the address as nginx keeps it (and sends it to auth_http as
    /// `Proxy-Protocol-Addr`): v1 verbatim, v2 as nginx prints addresses.
    pub fn write_text(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        match self {
            Address::Text(t) => out.write_all(t),
            Address::Ip(ip) => out.write_all(IpText::new(*ip).as_str().as_bytes()),
        }
    }
}

/// The text is ASCII in both variants, so Display is exact.
impl fmt::Display for Address<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Only hex digits, ':' and '.' get into a v1 address.
            Address::Text(t) => f.write_str(std::str::from_utf8(t).map_err(|_| fmt::Error)?),
            Address::Ip(ip) => f.write_str(IpText::new(*ip).as_str()),
        }
    }
}

/// The addresses a header carries (nginx's `c->proxy_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader<'a> {
    pub version: Version,
    pub src_addr: Address<'a>,
    pub dst_addr: Address<'a>,
    pub src_port: u16,
    pub dst_port: u16,
    /// v2: the raw TLVs after the addresses, unchecked (empty for v1).
    pub tlvs: &'a [u8],
}

/// Why a header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<'a> {
    /// Not a header (v1 rules): the bytes up to the first CR or LF, raw.
    Broken(&'a [u8]),
    /// A v2 signature with a version other than 2.
    UnknownVersion(u8),
    /// A v2 header longer than what was received.
    TooLarge,
    /// A v2 PROXY/STREAM INET or INET6 header whose length cannot hold the
    /// addresses; nginx closes without logging.
    ShortAddresses,
}

impl Error<'_> {
    /// Whether nginx writes an error log line (at `error` level, with the
    /// usual `while reading PROXY protocol, client: …` suffix) before
    /// closing. The text is this value's `Display`.
    pub fn is_logged(&self) -> bool {
        !matches!(self, Error::ShortAddresses)
    }
}

/// nginx's log texts. For [`Error::Broken`] nginx writes the bytes raw; a
/// `fmt` sink can only take UTF-8, so invalid UTF-8 is written as U+FFFD
/// (use the slice itself where raw bytes can be logged).
impl fmt::Display for Error<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Broken(text) => {
                f.write_str("broken header: \"")?;
                write_lossy(f, text)?;
                f.write_str("\"")
            }
            Error::UnknownVersion(v) => write!(f, "unknown PROXY protocol version: {v}"),
            Error::TooLarge => f.write_str("header is too large"),
            Error::ShortAddresses => f.write_str("PROXY protocol v2 addresses truncated"),
        }
    }
}

fn write_lossy(f: &mut fmt::Formatter<'_>, mut bytes: &[u8]) -> fmt::Result {
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => return f.write_str(s),
            Err(e) => {
                let good = e.valid_up_to();
                // Checked by from_utf8 just above.
                f.write_str(std::str::from_utf8(&bytes[..good]).map_err(|_| fmt::Error)?)?;
                f.write_str("\u{fffd}")?;
                let skip = e.error_len().unwrap_or(bytes.len() - good);
                bytes = &bytes[good + skip..];
            }
        }
    }
}

/// The result of [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse<'a> {
    /// Receive more and call again with everything received so far.
    Incomplete,
    /// A header of `consumed` bytes; the bytes after it belong to the mail
    /// protocol. `header` is `None` for `PROXY UNKNOWN` and for v2 headers
    /// nginx skips (LOCAL, non-STREAM, non-INET families): then the
    /// connection's own addresses stand.
    Done {
        header: Option<ProxyHeader<'a>>,
        consumed: usize,
    },
    /// Close the connection (logging the error if [`Error::is_logged`]).
    Invalid(Error<'a>),
}

/// Parses a header from the start of `buf`, everything received so far.
/// Only the first [`MAX_HEADER`] bytes are looked at, as nginx does.
/// Feeding any split of the same bytes gives the same final answer.
pub fn parse(buf: &[u8]) -> Parse<'_> {
    let buf = &buf[..buf.len().min(MAX_HEADER)];
    match scan(buf) {
        Scan::Done(header, consumed) => Parse::Done { header, consumed },
        Scan::Invalid(e) => Parse::Invalid(e),
        Scan::NeedMore if buf.len() < MAX_HEADER => Parse::Incomplete,
        Scan::NeedMore => Parse::Invalid(final_error(buf)),
    }
}

/// nginx's verdict on exactly these bytes, as if they were all one peek
/// returned (e.g. when the client has closed): never incomplete.
pub fn parse_final(buf: &[u8]) -> Parse<'_> {
    match parse(buf) {
        Parse::Incomplete => Parse::Invalid(final_error(buf)),
        other => other,
    }
}

/// The error nginx gives for bytes that end before a header does.
fn final_error(buf: &[u8]) -> Error<'_> {
    let buf = &buf[..buf.len().min(MAX_HEADER)];
    if buf.len() >= V2_FIXED && buf.starts_with(&V2_SIGNATURE) {
        // Only a short v2 body needs more bytes once the fixed part is in.
        return Error::TooLarge;
    }
    broken(buf)
}

fn broken(buf: &[u8]) -> Error<'_> {
    let end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len());
    Error::Broken(&buf[..end])
}

/// What the bytes so far say, before the size bound is applied.
enum Scan<'a> {
    Done(Option<ProxyHeader<'a>>, usize),
    /// Whatever follows, nginx rejects these bytes with this error.
    Invalid(Error<'a>),
    /// nginx would reject these bytes, but more could change the verdict.
    NeedMore,
}

/// True when `buf` is a proper or full prefix of `word` (or `word` a prefix
/// of `buf` when `buf` is longer: the caller checks lengths).
fn prefix_of(buf: &[u8], word: &[u8]) -> bool {
    let n = buf.len().min(word.len());
    buf[..n] == word[..n]
}

fn scan(buf: &[u8]) -> Scan<'_> {
    if buf.len() >= V2_FIXED && buf.starts_with(&V2_SIGNATURE) {
        return scan_v2(buf);
    }
    if buf.len() < V2_FIXED && prefix_of(buf, &V2_SIGNATURE) {
        return Scan::NeedMore;
    }
    scan_v1(buf)
}

fn scan_v1(buf: &[u8]) -> Scan<'_> {
    let invalid = || Scan::Invalid(broken(buf));
    if !prefix_of(buf, b"PROXY ") {
        return invalid();
    }
    // nginx wants at least 8 bytes before looking further.
    if buf.len() < 8 {
        return Scan::NeedMore;
    }
    let rest = &buf[6..];
    if rest.len() >= 7 && rest.starts_with(b"UNKNOWN") {
        // Skip to the first CR LF after the keyword.
        let from = 6 + 7;
        return match buf[from..].windows(2).position(|w| w == b"\r\n") {
            Some(i) => Scan::Done(None, from + i + 2),
            None => Scan::NeedMore,
        };
    }
    if rest.len() < 7 && prefix_of(rest, b"UNKNOWN") {
        return Scan::NeedMore;
    }
    if rest.len() < 5 {
        return if prefix_of(rest, b"TCP4 ") || prefix_of(rest, b"TCP6 ") {
            Scan::NeedMore
        } else {
            invalid()
        };
    }
    if &rest[..3] != b"TCP" || (rest[3] != b'4' && rest[3] != b'6') || rest[4] != b' ' {
        return invalid();
    }

    let mut pos = 11;
    let mut addrs = [(0, 0); 2];
    for addr in &mut addrs {
        let start = pos;
        loop {
            let Some(&ch) = buf.get(pos) else {
                return Scan::NeedMore;
            };
            pos += 1;
            if ch == b' ' {
                break;
            }
            if !(ch == b':' || ch == b'.' || ch.is_ascii_hexdigit()) {
                return invalid();
            }
        }
        *addr = (start, pos - 1);
    }

    let mut ports = [0u16; 2];
    for (port, sep) in ports.iter_mut().zip([b' ', b'\r']) {
        let start = pos;
        let mut value: u32 = 0;
        loop {
            let Some(&ch) = buf.get(pos) else {
                return Scan::NeedMore;
            };
            pos += 1;
            if ch == sep {
                break;
            }
            // Any byte is scanned over; only digits make a valid port, so
            // the verdict is already known.
            if !ch.is_ascii_digit() {
                return invalid();
            }
            value = value * 10 + u32::from(ch - b'0');
            if value > 65535 {
                return invalid();
            }
        }
        if pos - 1 == start {
            return invalid();
        }
        // value <= 65535 was checked digit by digit.
        *port = value as u16;
    }

    match buf.get(pos) {
        None => return Scan::NeedMore,
        Some(b'\n') => pos += 1,
        Some(_) => return invalid(),
    }

    Scan::Done(
        Some(ProxyHeader {
            version: Version::V1,
            src_addr: Address::Text(&buf[addrs[0].0..addrs[0].1]),
            dst_addr: Address::Text(&buf[addrs[1].0..addrs[1].1]),
            src_port: ports[0],
            dst_port: ports[1],
            tlvs: &[],
        }),
        pos,
    )
}

fn scan_v2(buf: &[u8]) -> Scan<'_> {
    let version = buf[12] >> 4;
    if version != 2 {
        return Scan::Invalid(Error::UnknownVersion(version));
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let end = V2_FIXED + len;
    if buf.len() < end {
        return if end <= MAX_HEADER {
            Scan::NeedMore
        } else {
            Scan::Invalid(Error::TooLarge)
        };
    }
    let command = buf[12] & 0x0f;
    let family = buf[13] >> 4;
    let transport = buf[13] & 0x0f;
    // Only PROXY over STREAM is read; anything else is skipped.
    if command != 1 || transport != 1 {
        return Scan::Done(None, end);
    }
    let body = &buf[V2_FIXED..end];
    let (src, dst, ports_at) = match family {
        1 => {
            if body.len() < 12 {
                return Scan::Invalid(Error::ShortAddresses);
            }
            let a = |i: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    body[i],
                    body[i + 1],
                    body[i + 2],
                    body[i + 3],
                ))
            };
            (a(0), a(4), 8)
        }
        2 => {
            if body.len() < 36 {
                return Scan::Invalid(Error::ShortAddresses);
            }
            let a = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&body[i..i + 16]);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            (a(0), a(16), 32)
        }
        _ => return Scan::Done(None, end),
    };
    Scan::Done(
        Some(ProxyHeader {
            version: Version::V2,
            src_addr: Address::Ip(src),
            dst_addr: Address::Ip(dst),
            src_port: u16::from_be_bytes([body[ports_at], body[ports_at + 1]]),
            dst_port: u16::from_be_bytes([body[ports_at + 2], body[ports_at + 3]]),
            tlvs: &body[ports_at + 4..],
        }),
        end,
    )
}

// ---------------------------------------------------------------------------
// Address text as nginx prints it

/// An IP address as nginx prints it (no port, no brackets), on the stack.
/// IPv6 differs from Rust's `Display`: `::a.b.c.d` forms for
/// IPv4-compatible addresses and nginx's choice of the zero run.
#[derive(Clone, Copy)]
pub struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    pub fn new(ip: IpAddr) -> IpText {
        let mut t = IpText {
            buf: [0; 48],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                t.dotted(&o);
            }
            IpAddr::V6(v6) => t.inet6(&v6.octets()),
        }
        t
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits, hex letters, ':' and '.' are ever written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn decimal(&mut self, v: u8) {
        if v >= 100 {
            self.push(b'0' + v / 100);
        }
        if v >= 10 {
            self.push(b'0' + v / 10 % 10);
        }
        self.push(b'0' + v % 10);
    }

    fn dotted(&mut self, o: &[u8]) {
        for (i, &v) in o.iter().enumerate() {
            if i > 0 {
                self.push(b'.');
            }
            self.decimal(v);
        }
    }

    fn hex16(&mut self, w: u16) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut started = false;
        for shift in [12, 8, 4, 0] {
            let d = (w >> shift) & 0xf;
            if d != 0 || started || shift == 0 {
                started = true;
                self.push(HEX[usize::from(d)]);
            }
        }
    }

    /// nginx's rules: the first longest run (two words or more) of zero
    /// words becomes `::`; an address starting with such a run prints its
    /// last four bytes dotted for `::ffff:0:0/96`, for six zero words, and
    /// for seven unless the last word is `0x0001` or has a zero high byte.
    fn inet6(&mut self, p: &[u8; 16]) {
        let mut zero = usize::MAX;
        let mut last = usize::MAX;
        let mut max = 1;
        let mut n = 0;
        for i in (0..16).step_by(2) {
            if p[i] != 0 || p[i + 1] != 0 {
                if max < n {
                    zero = last;
                    max = n;
                }
                n = 0;
                continue;
            }
            if n == 0 {
                last = i;
            }
            n += 1;
        }
        if max < n {
            zero = last;
            max = n;
        }

        let mut end = 16;
        if zero == 0 {
            if (max == 5 && p[10] == 0xff && p[11] == 0xff)
                || max == 6
                || (max == 7 && p[14] != 0 && p[15] != 1)
            {
                end = 12;
            }
            self.push(b':');
        }
        let mut i = 0;
        while i < end {
            if i == zero {
                self.push(b':');
                i += max * 2;
                continue;
            }
            self.hex16(u16::from_be_bytes([p[i], p[i + 1]]));
            if i < 14 {
                self.push(b':');
            }
            i += 2;
        }
        if end == 12 {
            self.dotted(&p[12..16]);
        }
    }
}

impl fmt::Display for IpText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for IpText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpText({:?})", self.as_str())
    }
}

// ---------------------------------------------------------------------------
// Writing headers to backends

/// One end of the client connection, for the writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    Inet(SocketAddr),
    /// A UNIX-domain socket and its path (empty for an unnamed peer).
    Unix(&'a [u8]),
}

/// Why a header could not be written; `Display` is nginx's `alert` text.
/// nginx then answers the client with the protocol's internal error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// `too small buffer for PROXY protocol` (v1).
    V1Buffer,
    /// `too small buffer for PROXY protocol v2`.
    V2Buffer,
    /// `too small buffer for PROXY protocol v2 TLV`.
    V2Tlv,
    /// `too small buffer for PROXY protocol v2 SSL TLV`.
    V2SslTlv,
    /// `too small buffer for PROXY protocol v2 CRC32c TLV`.
    V2Crc32c,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteError::V1Buffer => "too small buffer for PROXY protocol",
            WriteError::V2Buffer => "too small buffer for PROXY protocol v2",
            WriteError::V2Tlv => "too small buffer for PROXY protocol v2 TLV",
            WriteError::V2SslTlv => "too small buffer for PROXY protocol v2 SSL TLV",
            WriteError::V2Crc32c => "too small buffer for PROXY protocol v2 CRC32c TLV",
        })
    }
}

impl std::error::Error for WriteError {}

/// A cursor over the caller's buffer.
struct Out<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Out<'_> {
    fn room(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn put(&mut self, bytes: &[u8], err: WriteError) -> Result<(), WriteError> {
        if self.room() < bytes.len() {
            return Err(err);
        }
        self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
        Ok(())
    }

    fn put_decimal(&mut self, v: u16, err: WriteError) -> Result<(), WriteError> {
        let mut digits = [0u8; 5];
        let mut n = 0;
        let mut v = v;
        loop {
            digits[4 - n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.put(&digits[5 - n..], err)
    }
}

/// Writes nginx's v1 line for a backend: `PROXY TCP4|TCP6 <client>
/// <local> <client port> <local port>\r\n`, or `PROXY UNKNOWN\r\n` when
/// the client is on a UNIX-domain socket. The family is the client's (after
/// realip), whatever the local address is; a UNIX-domain local address is
/// printed `unix:<path>` with port 0, as nginx does. Returns the length.
///
/// `out` must hold at least [`V1_MAX_HEADER`] bytes (nginx's check) and the
/// whole line ([`MAX_HEADER`] always does).
pub fn write_v1(
    client: Endpoint<'_>,
    local: Endpoint<'_>,
    out: &mut [u8],
) -> Result<usize, WriteError> {
    const E: WriteError = WriteError::V1Buffer;
    if out.len() < V1_MAX_HEADER {
        return Err(E);
    }
    let mut o = Out { buf: out, pos: 0 };
    let client = match client {
        Endpoint::Inet(a) => a,
        Endpoint::Unix(_) => {
            o.put(b"PROXY UNKNOWN\r\n", E)?;
            return Ok(o.pos);
        }
    };
    o.put(
        if client.is_ipv4() {
            b"PROXY TCP4 "
        } else {
            b"PROXY TCP6 "
        },
        E,
    )?;
    o.put(IpText::new(client.ip()).as_str().as_bytes(), E)?;
    o.put(b" ", E)?;
    let local_port = match local {
        Endpoint::Inet(a) => {
            o.put(IpText::new(a.ip()).as_str().as_bytes(), E)?;
            a.port()
        }
        Endpoint::Unix(path) => {
            o.put(b"unix:", E)?;
            o.put(path, E)?;
            0
        }
    };
    o.put(b" ", E)?;
    o.put_decimal(client.port(), E)?;
    o.put(b" ", E)?;
    o.put_decimal(local_port, E)?;
    o.put(b"\r\n", E)?;
    Ok(o.pos)
}

/// The TLS facts nginx adds to a v2 header when the client connection is
/// TLS. Each value is written only when present, in nginx's order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsTlvs<'a> {
    /// SNI host name (`PP2_TYPE_AUTHORITY`, 0x02).
    pub authority: Option<&'a [u8]>,
    /// Negotiated ALPN protocol (`PP2_TYPE_ALPN`, 0x01).
    pub alpn: Option<&'a [u8]>,
    /// `client` bits of the SSL TLV: [`CLIENT_SSL`] always, plus
    /// [`CLIENT_CERT_SESS`] when the client sent a certificate (in this or
    /// the resumed session) and [`CLIENT_CERT_CONN`] when not resumed.
    pub client: u8,
    /// `verify` of the SSL TLV: the certificate verification result
    /// (`X509_V_ERR_…`, with OCSP failures as "revoked"), 1 without a client
    /// certificate.
    pub verify: u32,
    /// Sub-TLV 0x21: protocol version name (`TLSv1.3`).
    pub version: Option<&'a [u8]>,
    /// Sub-TLV 0x22: client certificate subject CN, UTF-8.
    pub cn: Option<&'a [u8]>,
    /// Sub-TLV 0x23: cipher name.
    pub cipher: Option<&'a [u8]>,
    /// Sub-TLV 0x24: signature algorithm of the server certificate.
    pub sig_alg: Option<&'a [u8]>,
    /// Sub-TLV 0x25: server key algorithm and bits (`RSA2048`, `EC256`).
    pub key_alg: Option<&'a [u8]>,
}

pub const CLIENT_SSL: u8 = 0x01;
pub const CLIENT_CERT_CONN: u8 = 0x02;
pub const CLIENT_CERT_SESS: u8 = 0x04;

const TLV_ALPN: u8 = 0x01;
const TLV_AUTHORITY: u8 = 0x02;
const TLV_CRC32C: u8 = 0x03;
const TLV_SSL: u8 = 0x20;

/// Writes nginx's v2 header for a backend and returns its length.
///
/// * Both ends INET: family INET. Either end INET6: family INET6, an INET
///   end written as `::ffff:a.b.c.d` — unless both are IPv4-mapped IPv6,
///   which is written as INET.
/// * Either end on a UNIX-domain socket: command LOCAL, family and
///   transport UNSPEC, no addresses.
/// * Then, on a TLS client connection, the authority and ALPN TLVs and the
///   SSL TLV with its sub-TLVs; always last a CRC32c TLV over the whole
///   header.
///
/// `out` must hold at least [`V2_MAX_HEADER`] bytes and the whole header;
/// a [`MAX_HEADER`] buffer is what nginx uses.
pub fn write_v2(
    client: Endpoint<'_>,
    local: Endpoint<'_>,
    tls: Option<&TlsTlvs<'_>>,
    out: &mut [u8],
) -> Result<usize, WriteError> {
    if out.len() < V2_MAX_HEADER {
        return Err(WriteError::V2Buffer);
    }
    let mut o = Out { buf: out, pos: 0 };
    o.put(&V2_SIGNATURE, WriteError::V2Buffer)?;

    match (client, local) {
        (Endpoint::Inet(src), Endpoint::Inet(dst)) => {
            let mapped = |a: &SocketAddr| match a.ip() {
                IpAddr::V6(v6) => v6.to_ipv4_mapped(),
                IpAddr::V4(_) => None,
            };
            let v4 = match (src.ip(), dst.ip(), mapped(&src), mapped(&dst)) {
                (IpAddr::V4(s), IpAddr::V4(d), _, _) => Some((s, d)),
                (_, _, Some(s), Some(d)) => Some((s, d)),
                _ => None,
            };
            // Version 2, PROXY; STREAM transport.
            match v4 {
                Some((s, d)) => {
                    o.put(&[0x21, 0x11, 0, 0], WriteError::V2Buffer)?;
                    o.put(&s.octets(), WriteError::V2Buffer)?;
                    o.put(&d.octets(), WriteError::V2Buffer)?;
                }
                None => {
                    let v6 = |a: &SocketAddr| match a.ip() {
                        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                        IpAddr::V6(v6) => v6.octets(),
                    };
                    o.put(&[0x21, 0x21, 0, 0], WriteError::V2Buffer)?;
                    o.put(&v6(&src), WriteError::V2Buffer)?;
                    o.put(&v6(&dst), WriteError::V2Buffer)?;
                }
            }
            o.put(&src.port().to_be_bytes(), WriteError::V2Buffer)?;
            o.put(&dst.port().to_be_bytes(), WriteError::V2Buffer)?;
        }
        // Version 2, LOCAL; UNSPEC family and transport.
        _ => o.put(&[0x20, 0x00, 0, 0], WriteError::V2Buffer)?,
    }

    if let Some(tls) = tls {
        for (kind, value) in [(TLV_AUTHORITY, tls.authority), (TLV_ALPN, tls.alpn)] {
            if let Some(v) = value {
                put_tlv(&mut o, kind, v)?;
            }
        }
        // nginx writes the SSL TLV only when `client` is non-zero, which it
        // always is on a TLS connection.
        if tls.client != 0 {
            if o.room() < 3 + 5 {
                return Err(WriteError::V2SslTlv);
            }
            let start = o.pos;
            o.put(&[TLV_SSL, 0, 0, tls.client], WriteError::V2SslTlv)?;
            o.put(&tls.verify.to_be_bytes(), WriteError::V2SslTlv)?;
            let subs = [
                (0x21, tls.version),
                (0x22, tls.cn),
                (0x23, tls.cipher),
                (0x24, tls.sig_alg),
                (0x25, tls.key_alg),
            ];
            for (kind, value) in subs {
                if let Some(v) = value {
                    put_tlv(&mut o, kind, v)?;
                }
            }
            let len = ((o.pos - start - 3) as u16).to_be_bytes();
            o.buf[start + 1..start + 3].copy_from_slice(&len);
        }
    }

    if o.room() < 3 + 4 {
        return Err(WriteError::V2Crc32c);
    }
    // The length covers everything after the fixed part, CRC32c TLV
    // included; the checksum is over the whole header with its value zeroed.
    let total = o.pos + 7;
    let len = ((total - V2_FIXED) as u16).to_be_bytes();
    o.buf[14..16].copy_from_slice(&len);
    o.put(&[TLV_CRC32C, 0, 4, 0, 0, 0, 0], WriteError::V2Crc32c)?;
    let crc = crc32c(&o.buf[..total]).to_be_bytes();
    o.buf[total - 4..total].copy_from_slice(&crc);
    Ok(total)
}

fn put_tlv(o: &mut Out<'_>, kind: u8, value: &[u8]) -> Result<(), WriteError> {
    // nginx truncates the length to 16 bits; values here are far shorter
    // than the 4096-byte buffer, so a longer one cannot fit anyway.
    if o.room() < 3 + value.len() || value.len() > usize::from(u16::MAX) {
        return Err(WriteError::V2Tlv);
    }
    let len = (value.len() as u16).to_be_bytes();
    o.put(&[kind, len[0], len[1]], WriteError::V2Tlv)?;
    o.put(value, WriteError::V2Tlv)
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32C of `bytes`, as in the PROXY protocol v2 `PP2_TYPE_CRC32C` TLV.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc = CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc ^ 0xffff_ffff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(buf: &[u8]) -> (Option<ProxyHeader<'_>>, usize) {
        match parse(buf) {
            Parse::Done { header, consumed } => (header, consumed),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn text(a: Address<'_>) -> String {
        a.to_string()
    }

    /// Feeds every prefix: proper prefixes of a header are incomplete, and
    /// the first answer that is not is the answer for the whole input.
    fn check_prefixes(buf: &[u8]) {
        let full = parse(buf);
        for k in 0..buf.len() {
            let got = parse(&buf[..k]);
            match (got, full) {
                (Parse::Incomplete, _) => {
                    assert!(
                        matches!(parse_final(&buf[..k]), Parse::Invalid(_)),
                        "prefix {k} of {buf:?}"
                    );
                }
                (Parse::Done { .. }, _) => {
                    assert_eq!(got, full, "prefix {k} of {buf:?}");
                    return;
                }
                (Parse::Invalid(a), Parse::Invalid(b)) => {
                    assert_eq!(
                        std::mem::discriminant(&a),
                        std::mem::discriminant(&b),
                        "prefix {k} of {buf:?}"
                    );
                    return;
                }
                (Parse::Invalid(e), _) => panic!("prefix {k} of {buf:?}: {e}"),
            }
        }
    }

    #[test]
    fn v1_valid() {
        let cases: &[(&str, &str, &str, u16, u16, &str)] = &[
            (
                "PROXY TCP4 192.0.2.1 10.0.0.1 5555 143\r\n",
                "192.0.2.1",
                "10.0.0.1",
                5555,
                143,
                "",
            ),
            (
                "PROXY TCP6 ::1 fe80::1 0 65535\r\nA1 NOOP\r\n",
                "::1",
                "fe80::1",
                0,
                65535,
                "A1 NOOP\r\n",
            ),
            // Family and addresses are not checked against each other.
            (
                "PROXY TCP4 ::1 1.2.3.4 1 2\r\nX",
                "::1",
                "1.2.3.4",
                1,
                2,
                "X",
            ),
            // Empty and non-address "addresses" of the allowed characters.
            ("PROXY TCP4   1 2\r\n", "", "", 1, 2, ""),
            ("PROXY TCP6 ...: aBcD 1 2\r\n", "...:", "aBcD", 1, 2, ""),
            // Leading zeros in ports.
            (
                "PROXY TCP4 1.1.1.1 2.2.2.2 0000000000000080 00 \r\n",
                "",
                "",
                0,
                0,
                "bad",
            ),
        ];
        for &(input, src, dst, sport, dport, rest) in &cases[..5] {
            let (h, consumed) = done(input.as_bytes());
            let h = h.expect("addresses");
            assert_eq!(h.version, Version::V1);
            assert_eq!(text(h.src_addr), src);
            assert_eq!(text(h.dst_addr), dst);
            assert_eq!((h.src_port, h.dst_port), (sport, dport));
            assert!(h.tlvs.is_empty());
            assert_eq!(&input[consumed..], rest);
            check_prefixes(input.as_bytes());
        }
        // A trailing space before CR is part of the port: invalid.
        assert!(matches!(
            parse(cases[5].0.as_bytes()),
            Parse::Invalid(Error::Broken(_))
        ));
        let (h, _) = done(b"PROXY TCP4 1.1.1.1 2.2.2.2 0000000000000080 00\r\n");
        let h = h.unwrap();
        assert_eq!((h.src_port, h.dst_port), (80, 0));
    }

    #[test]
    fn v1_unknown() {
        for (input, consumed) in [
            (&b"PROXY UNKNOWN\r\n"[..], 15),
            (b"PROXY UNKNOWN\r\nA1 LOGIN\r\n", 15),
            (b"PROXY UNKNOWN TCP4 1.2.3.4 5.6.7.8 1 2\r\nx", 40),
            // No space needed; a lone LF or CR does not end it.
            (b"PROXY UNKNOWNxyz\nfoo\rbar\r\n", 26),
        ] {
            assert_eq!(done(input), (None, consumed), "{input:?}");
            check_prefixes(input);
        }
    }

    #[test]
    fn v1_longer_than_107_bytes_is_read() {
        let mut line = b"PROXY TCP6 ".to_vec();
        line.extend_from_slice(&[b'a'; 300]);
        line.extend_from_slice(b" ::2 1 2\r\n");
        let (h, consumed) = done(&line);
        assert_eq!(consumed, line.len());
        assert_eq!(text(h.unwrap().src_addr).len(), 300);
    }

    #[test]
    fn v1_invalid() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"GET / HTTP/1.0\r\n\r\n", b"GET / HTTP/1.0"),
            (b"A1 CAPABILITY\r\n", b"A1 CAPABILITY"),
            (
                b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
                b"proxy TCP4 1.2.3.4 5.6.7.8 1 2",
            ),
            (
                b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
                b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2",
            ),
            (
                b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
                b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2",
            ),
            (
                b"PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n",
                b"PROXY TCP4\t1.2.3.4 5.6.7.8 1 2",
            ),
            (b"PROXY UDP4 1.2.3.4\r\n", b"PROXY UDP4 1.2.3.4"),
            (b"PROXY \r\n\r\n", b"PROXY "),
            (
                b"PROXY TCP4 1.2.3.g 5.6.7.8 1 2\r\n",
                b"PROXY TCP4 1.2.3.g 5.6.7.8 1 2",
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8\r\n",
                b"PROXY TCP4 1.2.3.4 5.6.7.8",
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 1\r\n",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 1",
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536",
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 8x 1\r\n",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 8x 1",
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 1\r\n",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 1",
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8  1\r\n",
                b"PROXY TCP4 1.2.3.4 5.6.7.8  1",
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 ",
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\n",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2",
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2",
            ),
            // The source port is scanned up to a space, across the line end.
            (
                b"PROXY TCP4 1.1.1.1 2.2.2.2 1\r\nA001 X\r\n",
                b"PROXY TCP4 1.1.1.1 2.2.2.2 1",
            ),
            // Raw bytes are kept for the log line.
            (b"\x00\xff\x16\x03\x01", b"\x00\xff\x16\x03\x01"),
        ];
        for &(input, logged) in cases {
            assert_eq!(
                parse(input),
                Parse::Invalid(Error::Broken(logged)),
                "{input:?}"
            );
            check_prefixes(input);
        }
        assert_eq!(
            Error::Broken(b"GET / HTTP/1.0").to_string(),
            "broken header: \"GET / HTTP/1.0\""
        );
        assert_eq!(
            Error::Broken(b"a\xffb").to_string(),
            "broken header: \"a\u{fffd}b\""
        );
        assert!(Error::Broken(b"").is_logged());
    }

    #[test]
    fn incomplete_and_final() {
        for input in [
            &b""[..],
            b"P",
            b"PROXY",
            b"PROXY ",
            b"PROXY T",
            b"PROXY TCP4",
            b"PROXY UNKNOW",
            b"PROXY UNKNOWN",
            b"PROXY UNKNOWN foo\r",
            b"PROXY TCP4 1.2.3.4",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 ",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 11",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 11 22",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 11 22\r",
        ] {
            assert_eq!(parse(input), Parse::Incomplete, "{input:?}");
            let logged = input.split(|&b| b == b'\r').next().unwrap();
            assert_eq!(parse_final(input), Parse::Invalid(Error::Broken(logged)));
        }
        // Partial v2: nginx's one-shot read sees no signature.
        for k in 0..16 {
            let mut h = V2_SIGNATURE.to_vec();
            h.extend_from_slice(&[0x21, 0x11, 0, 12]);
            assert_eq!(parse(&h[..k]), Parse::Incomplete);
            assert_eq!(parse_final(&h[..k]), Parse::Invalid(Error::Broken(b"")));
        }
        // Done is final either way.
        let line = b"PROXY UNKNOWN\r\n";
        assert_eq!(parse_final(line), parse(line));
    }

    #[test]
    fn max_header_bound() {
        // An UNKNOWN line is waited for up to 4096 bytes, then rejected with
        // the 4096 bytes nginx would have peeked.
        let mut line = b"PROXY UNKNOWN".to_vec();
        line.resize(MAX_HEADER - 2, b'a');
        line.push(b'\r');
        assert_eq!(parse(&line), Parse::Incomplete);
        line.push(b'\n');
        assert_eq!(done(&line), (None, MAX_HEADER));
        line.pop();
        line.push(b'a');
        line.extend_from_slice(b"\r\n");
        match parse(&line) {
            Parse::Invalid(Error::Broken(t)) => assert_eq!(t.len(), MAX_HEADER - 2),
            other => panic!("{other:?}"),
        }
        // More bytes than 4096 at once: only the first 4096 count.
        let mut big = b"PROXY UNKNOWN".to_vec();
        big.resize(5000, b'b');
        big.extend_from_slice(b"\r\n");
        match parse(&big) {
            Parse::Invalid(Error::Broken(t)) => assert_eq!(t.len(), MAX_HEADER),
            other => panic!("{other:?}"),
        }
    }

    fn v2(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(ver_cmd);
        h.push(fam);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn v2_inet() {
        let mut body = vec![192, 0, 2, 1, 10, 0, 0, 1, 0x15, 0xb3, 0, 143];
        body.extend_from_slice(&[0x01, 0, 4, b'i', b'm', b'a', b'p']);
        let mut input = v2(0x21, 0x11, &body);
        let len = input.len();
        input.extend_from_slice(b"A1 NOOP\r\n");
        let (h, consumed) = done(&input);
        let h = h.unwrap();
        assert_eq!(consumed, len);
        assert_eq!(h.version, Version::V2);
        assert_eq!(text(h.src_addr), "192.0.2.1");
        assert_eq!(text(h.dst_addr), "10.0.0.1");
        assert_eq!((h.src_port, h.dst_port), (5555, 143));
        assert_eq!(h.tlvs, &[0x01, 0, 4, b'i', b'm', b'a', b'p']);
        check_prefixes(&input);
    }

    #[test]
    fn v2_inet6() {
        let mut body = Vec::new();
        body.extend_from_slice(&"::ffff:1.2.3.4".parse::<Ipv6Addr>().unwrap().octets());
        body.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        body.extend_from_slice(&[0, 1, 0xff, 0xff]);
        let input = v2(0x21, 0x21, &body);
        let (h, consumed) = done(&input);
        let h = h.unwrap();
        assert_eq!(consumed, input.len());
        assert_eq!(text(h.src_addr), "::ffff:1.2.3.4");
        assert_eq!(text(h.dst_addr), "2001:db8::1");
        assert_eq!((h.src_port, h.dst_port), (1, 65535));
        assert!(h.tlvs.is_empty());
        check_prefixes(&input);
    }

    #[test]
    fn v2_skipped() {
        let inet = [1u8, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2];
        for (vc, ft, body) in [
            (0x20, 0x11, &inet[..]), // LOCAL
            (0x20, 0x00, &[][..]),   // LOCAL, UNSPEC, empty
            (0x22, 0x11, &inet[..]), // undefined command
            (0x2f, 0x11, &inet[..]),
            (0x21, 0x12, &inet[..]),       // DGRAM
            (0x21, 0x10, &inet[..]),       // UNSPEC transport
            (0x21, 0x01, &inet[..]),       // UNSPEC family
            (0x21, 0x31, &[0u8; 216][..]), // UNIX
            (0x21, 0x41, &[][..]),         // undefined family
        ] {
            let input = v2(vc, ft, body);
            assert_eq!(done(&input), (None, input.len()), "{vc:x} {ft:x}");
            check_prefixes(&input);
        }
    }

    #[test]
    fn v2_invalid() {
        assert_eq!(
            parse(&v2(0x21, 0x11, &[0; 11])),
            Parse::Invalid(Error::ShortAddresses)
        );
        assert_eq!(
            parse(&v2(0x21, 0x21, &[0; 35])),
            Parse::Invalid(Error::ShortAddresses)
        );
        assert!(!Error::ShortAddresses.is_logged());
        // Exactly the addresses is enough.
        assert!(matches!(
            parse(&v2(0x21, 0x21, &[0; 36])),
            Parse::Done { .. }
        ));
        for vc in [0x11, 0x01, 0x31, 0xf1] {
            assert_eq!(
                parse(&v2(vc, 0x11, &[0; 12])),
                Parse::Invalid(Error::UnknownVersion(vc >> 4))
            );
        }
        assert_eq!(
            Error::UnknownVersion(1).to_string(),
            "unknown PROXY protocol version: 1"
        );
        // A length that cannot fit in 4096 bytes is refused at once.
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0x0f, 0xf1]); // 4081
        assert_eq!(parse(&h), Parse::Invalid(Error::TooLarge));
        assert_eq!(Error::TooLarge.to_string(), "header is too large");
        // One that fits is waited for.
        h[15] = 0xf0; // 4080
        assert_eq!(parse(&h), Parse::Incomplete);
        assert_eq!(parse_final(&h), Parse::Invalid(Error::TooLarge));
        h.resize(MAX_HEADER - 1, 0);
        assert_eq!(parse(&h), Parse::Incomplete);
        h.push(0);
        assert!(matches!(
            parse(&h),
            Parse::Done {
                consumed: MAX_HEADER,
                ..
            }
        ));
    }

    #[test]
    fn ip_text_as_nginx() {
        for (ip, want) in [
            ("0.0.0.0", "0.0.0.0"),
            ("255.255.255.255", "255.255.255.255"),
            ("10.20.3.100", "10.20.3.100"),
            ("::", "::"),
            ("::1", "::1"),
            ("1::", "1::"),
            ("::2", "::2"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("::1.2.3.4", "::1.2.3.4"),
            ("::0.0.2.3", "::0.0.2.3"),
            ("::0.0.0.2", "::2"),
            ("::ffff:0.0.0.1", "::ffff:0.0.0.1"),
            ("::1:0:0:0", "::1:0:0:0"),
            ("fe80::1", "fe80::1"),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
            ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
            (
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
            ("0:0:0:0:0:1:0:0", "::1:0:0"),
            ("abcd:ef01::", "abcd:ef01::"),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::new(ip).as_str(), want, "{ip}");
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn v1_line(client: Endpoint<'_>, local: Endpoint<'_>) -> String {
        let mut buf = [0u8; MAX_HEADER];
        let n = write_v1(client, local, &mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn write_v1_as_nginx() {
        use Endpoint::{Inet, Unix};
        let cases = [
            (
                Inet(sa("192.0.2.1:5555")),
                Inet(sa("10.0.0.1:143")),
                "PROXY TCP4 192.0.2.1 10.0.0.1 5555 143\r\n",
            ),
            (
                Inet(sa("[2001:db8::1]:0")),
                Inet(sa("[::1]:65535")),
                "PROXY TCP6 2001:db8::1 ::1 0 65535\r\n",
            ),
            (
                Inet(sa("[::ffff:127.0.0.1]:40000")),
                Inet(sa("[::ffff:127.0.0.1]:25")),
                "PROXY TCP6 ::ffff:127.0.0.1 ::ffff:127.0.0.1 40000 25\r\n",
            ),
            // After realip the families may differ; the client's decides.
            (
                Inet(sa("[::1]:1")),
                Inet(sa("127.0.0.1:2")),
                "PROXY TCP6 ::1 127.0.0.1 1 2\r\n",
            ),
            (
                Inet(sa("1.2.3.4:1")),
                Unix(b"/run/mail.sock"),
                "PROXY TCP4 1.2.3.4 unix:/run/mail.sock 1 0\r\n",
            ),
            (Unix(b""), Unix(b"/run/mail.sock"), "PROXY UNKNOWN\r\n"),
            (Unix(b""), Inet(sa("127.0.0.1:2")), "PROXY UNKNOWN\r\n"),
        ];
        for (client, local, want) in cases {
            let got = v1_line(client, local);
            assert_eq!(got, want);
            // What we write, we read back, except a UNIX-domain local
            // address: nginx writes a line it would not read itself.
            if matches!(local, Unix(_)) && matches!(client, Inet(_)) {
                assert!(matches!(parse(got.as_bytes()), Parse::Invalid(_)));
                continue;
            }
            let (h, n) = done(got.as_bytes());
            assert_eq!(n, got.len());
            if let (Some(h), Inet(c)) = (h, client) {
                assert_eq!(text(h.src_addr), IpText::new(c.ip()).as_str());
                assert_eq!(h.src_port, c.port());
            }
        }
        let longest = v1_line(
            Inet(sa("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")),
            Inet(sa("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")),
        );
        assert!(longest.len() <= V1_MAX_HEADER, "{}", longest.len());
        let mut small = [0u8; V1_MAX_HEADER - 1];
        assert_eq!(
            write_v1(Unix(b""), Unix(b""), &mut small),
            Err(WriteError::V1Buffer)
        );
        assert_eq!(
            WriteError::V1Buffer.to_string(),
            "too small buffer for PROXY protocol"
        );
        // A long UNIX-domain path that does not fit is refused, not cut.
        let path = [b'p'; 200];
        let mut buf = [0u8; 150];
        assert_eq!(
            write_v1(Inet(sa("1.2.3.4:1")), Unix(&path), &mut buf),
            Err(WriteError::V1Buffer)
        );
    }

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    fn v2_bytes(client: Endpoint<'_>, local: Endpoint<'_>, tls: Option<&TlsTlvs<'_>>) -> Vec<u8> {
        let mut buf = [0u8; MAX_HEADER];
        let n = write_v2(client, local, tls, &mut buf).unwrap();
        let out = buf[..n].to_vec();
        // The length field and the checksum hold.
        assert_eq!(usize::from(u16::from_be_bytes([out[14], out[15]])), n - 16);
        assert_eq!(&out[n - 7..n - 4], &[0x03, 0, 4]);
        let mut zeroed = out.clone();
        zeroed[n - 4..].fill(0);
        assert_eq!(crc32c(&zeroed).to_be_bytes(), out[n - 4..]);
        out
    }

    #[test]
    fn write_v2_inet() {
        use Endpoint::Inet;
        let out = v2_bytes(Inet(sa("192.0.2.1:5555")), Inet(sa("10.0.0.1:143")), None);
        let mut want = V2_SIGNATURE.to_vec();
        want.extend_from_slice(&[0x21, 0x11, 0, 19]);
        want.extend_from_slice(&[192, 0, 2, 1, 10, 0, 0, 1, 0x15, 0xb3, 0, 143]);
        want.extend_from_slice(&[0x03, 0, 4]);
        let crc = crc32c(&[&want[..], &[0, 0, 0, 0]].concat());
        want.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(out, want);
        let (h, n) = done(&out);
        let h = h.unwrap();
        assert_eq!(n, out.len());
        assert_eq!(text(h.src_addr), "192.0.2.1");
        assert_eq!((h.src_port, h.dst_port), (5555, 143));
        assert_eq!(h.tlvs, &out[28..]);

        // Both IPv4-mapped: written as INET.
        let mapped = v2_bytes(
            Inet(sa("[::ffff:192.0.2.1]:5555")),
            Inet(sa("[::ffff:10.0.0.1]:143")),
            None,
        );
        assert_eq!(mapped, out);
    }

    #[test]
    fn write_v2_inet6() {
        use Endpoint::Inet;
        let out = v2_bytes(Inet(sa("1.2.3.4:1")), Inet(sa("[2001:db8::1]:2")), None);
        assert_eq!(&out[12..16], &[0x21, 0x21, 0, 43]);
        assert_eq!(
            &out[16..32],
            &"::ffff:1.2.3.4".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(
            &out[32..48],
            &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(&out[48..52], &[0, 1, 0, 2]);
        let (h, _) = done(&out);
        let h = h.unwrap();
        assert_eq!(text(h.src_addr), "::ffff:1.2.3.4");
        // One mapped, one native IPv6: stays INET6, mapped kept.
        let out = v2_bytes(Inet(sa("[::ffff:1.2.3.4]:1")), Inet(sa("[::1]:2")), None);
        assert_eq!(&out[12..14], &[0x21, 0x21]);
        assert_eq!(
            &out[16..32],
            &"::ffff:1.2.3.4".parse::<Ipv6Addr>().unwrap().octets()
        );
    }

    #[test]
    fn write_v2_unix_is_local() {
        use Endpoint::{Inet, Unix};
        for (c, l) in [
            (Unix(&b""[..]), Unix(&b"/s"[..])),
            (Inet(sa("1.2.3.4:1")), Unix(b"/s")),
            (Unix(b""), Inet(sa("1.2.3.4:1"))),
        ] {
            let out = v2_bytes(c, l, None);
            assert_eq!(&out[12..16], &[0x20, 0x00, 0, 7]);
            assert_eq!(out.len(), 23);
            assert_eq!(done(&out), (None, 23));
        }
    }

    #[test]
    fn write_v2_tls() {
        use Endpoint::Inet;
        let tls = TlsTlvs {
            authority: Some(b"mail.example.com"),
            alpn: Some(b"imap"),
            client: CLIENT_SSL | CLIENT_CERT_CONN | CLIENT_CERT_SESS,
            verify: 0,
            version: Some(b"TLSv1.3"),
            cn: None,
            cipher: Some(b"TLS_AES_256_GCM_SHA384"),
            sig_alg: Some(b"sha256WithRSAEncryption"),
            key_alg: Some(b"RSA2048"),
        };
        let out = v2_bytes(Inet(sa("1.2.3.4:1")), Inet(sa("5.6.7.8:2")), Some(&tls));
        let mut tlvs = Vec::new();
        tlvs.extend_from_slice(&[0x02, 0, 16]);
        tlvs.extend_from_slice(b"mail.example.com");
        tlvs.extend_from_slice(&[0x01, 0, 4]);
        tlvs.extend_from_slice(b"imap");
        let mut subs = vec![0x07, 0, 0, 0, 0];
        for (t, v) in [
            (0x21u8, &b"TLSv1.3"[..]),
            (0x23, b"TLS_AES_256_GCM_SHA384"),
            (0x24, b"sha256WithRSAEncryption"),
            (0x25, b"RSA2048"),
        ] {
            subs.push(t);
            subs.extend_from_slice(&(v.len() as u16).to_be_bytes());
            subs.extend_from_slice(v);
        }
        tlvs.push(0x20);
        tlvs.extend_from_slice(&(subs.len() as u16).to_be_bytes());
        tlvs.extend_from_slice(&subs);
        assert_eq!(&out[28..out.len() - 7], &tlvs[..]);
        let (h, _) = done(&out);
        assert_eq!(h.unwrap().tlvs, &out[28..]);
    }

    #[test]
    fn write_v2_buffer_errors() {
        use Endpoint::Inet;
        let (c, l) = (Inet(sa("1.2.3.4:1")), Inet(sa("5.6.7.8:2")));
        let mut buf = [0u8; 64];
        assert_eq!(
            write_v2(c, l, None, &mut buf[..51]),
            Err(WriteError::V2Buffer)
        );
        assert_eq!(write_v2(c, l, None, &mut buf[..52]), Ok(35));
        let (c6, l6) = (Inet(sa("[::1]:1")), Inet(sa("[::2]:2")));
        assert_eq!(
            write_v2(c6, l6, None, &mut buf[..58]),
            Err(WriteError::V2Crc32c)
        );
        assert_eq!(write_v2(c6, l6, None, &mut buf[..59]), Ok(59));
        let tls = TlsTlvs {
            authority: Some(&[b'a'; 100]),
            client: CLIENT_SSL,
            verify: 1,
            ..TlsTlvs::default()
        };
        let mut big = [0u8; 200];
        assert_eq!(
            write_v2(c, l, Some(&tls), &mut big[..100]),
            Err(WriteError::V2Tlv)
        );
        let tls = TlsTlvs {
            client: CLIENT_SSL,
            verify: 1,
            ..TlsTlvs::default()
        };
        assert_eq!(
            write_v2(c, l, Some(&tls), &mut big[..30]),
            Err(WriteError::V2Buffer)
        );
        assert_eq!(
            write_v2(c6, l6, Some(&tls), &mut big[..59]),
            Err(WriteError::V2SslTlv)
        );
        assert_eq!(
            write_v2(c6, l6, Some(&tls), &mut big[..60]),
            Err(WriteError::V2Crc32c)
        );
        assert_eq!(write_v2(c6, l6, Some(&tls), &mut big[..67]), Ok(67));
        assert_eq!(
            WriteError::V2Crc32c.to_string(),
            "too small buffer for PROXY protocol v2 CRC32c TLV"
        );
    }
}
