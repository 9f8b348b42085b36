//! `set_real_ip_from`: the client address from a PROXY protocol header, as
//! nginx 1.31.5's mail realip module decides it.
//!
//! nginx replaces the connection's address only when all hold:
//! * `set_real_ip_from` is configured for the server;
//! * the connection carried a header with addresses (not `PROXY UNKNOWN`,
//!   not a skipped v2 header);
//! * the peer matches one of the networks, by nginx's `ngx_cidr_match`:
//!   an IPv4-mapped IPv6 peer is matched as IPv4 (so only IPv4 entries can
//!   match it), `unix:` matches any UNIX-domain peer;
//! * the header's source address parses as nginx parses addresses (first
//!   as IPv4, then as IPv6). v1 text is parsed as written, whatever TCP4 or
//!   TCP6 said; a v2 address is printed and parsed back, as nginx does, so
//!   `255.255.255.255` (nginx's "no address" value) never replaces the
//!   peer, in either form.
//!
//! Otherwise the peer stands, silently. The port is the header's source
//! port.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::conf::model::Cidr;
use crate::event::Peer;

use super::proxy_protocol::{Address, IpText, ProxyHeader};

/// The address the connection should take on (`Some`) or `None` to keep
/// the peer's. `set_real_ip_from` empty means the directive is absent.
pub fn real_client(
    set_real_ip_from: &[Cidr],
    peer: &Peer,
    header: &ProxyHeader<'_>,
) -> Option<SocketAddr> {
    if set_real_ip_from.is_empty() || !cidr_match(peer, set_real_ip_from) {
        return None;
    }
    let ip = match header.src_addr {
        Address::Text(text) => parse_addr(text)?,
        Address::Ip(ip) => parse_addr(IpText::new(ip).as_str().as_bytes())?,
    };
    Some(SocketAddr::new(ip, header.src_port))
}

/// nginx's `ngx_cidr_match` for one peer against a list.
pub fn cidr_match(peer: &Peer, cidrs: &[Cidr]) -> bool {
    let ip = match peer {
        Peer::Unix => return cidrs.iter().any(|c| matches!(c, Cidr::Unix)),
        Peer::Inet(a) => match a.ip() {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        },
    };
    cidrs.iter().any(|c| match (c, ip) {
        (Cidr::V4 { addr, prefix }, IpAddr::V4(ip)) => {
            let mask = mask32(*prefix);
            u32::from(ip) & mask == u32::from(*addr) & mask
        }
        (Cidr::V6 { addr, prefix }, IpAddr::V6(ip)) => {
            let mask = mask128(*prefix);
            u128::from(ip) & mask == u128::from(*addr) & mask
        }
        _ => false,
    })
}

fn mask32(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p if p >= 32 => u32::MAX,
        p => u32::MAX << (32 - p),
    }
}

fn mask128(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p if p >= 128 => u128::MAX,
        p => u128::MAX << (128 - p),
    }
}

/// nginx's `ngx_parse_addr`: IPv4 by [`inet_addr`], else IPv6 by
/// [`inet6_addr`].
pub fn parse_addr(text: &[u8]) -> Option<IpAddr> {
    if let Some(v4) = inet_addr(text) {
        return Some(IpAddr::V4(v4));
    }
    inet6_addr(text).map(IpAddr::V6)
}

/// nginx's `ngx_inet_addr`: digits and exactly three dots, each octet at
/// most 255. Empty octets count as 0 (`1..2.3` is `1.0.2.3`), leading zeros
/// are fine, and `255.255.255.255` is refused (it is nginx's error value).
pub fn inet_addr(text: &[u8]) -> Option<Ipv4Addr> {
    let mut addr: u32 = 0;
    let mut octet: u32 = 0;
    let mut dots = 0;
    for &c in text {
        match c {
            b'0'..=b'9' => {
                octet = octet * 10 + u32::from(c - b'0');
                if octet > 255 {
                    return None;
                }
            }
            b'.' => {
                // Shifting out high bits on a fourth dot is harmless: the
                // count below rejects it.
                addr = (addr << 8).wrapping_add(octet);
                octet = 0;
                dots += 1;
            }
            _ => return None,
        }
    }
    if dots != 3 {
        return None;
    }
    let addr = (addr << 8) + octet;
    (addr != u32::MAX).then(|| Ipv4Addr::from(addr))
}

/// nginx's `ngx_inet6_addr`: up to eight groups of 1–4 hex digits, one
/// `::`, an embedded dotted quad as the last 32 bits. Quirks kept: a single
/// leading `:` is skipped (`:1:2:3:4:5:6:7:8` is accepted), the dotted
/// quad follows [`inet_addr`] rules.
pub fn inet6_addr(text: &[u8]) -> Option<Ipv6Addr> {
    let mut p = text;
    if p.is_empty() {
        return None;
    }
    let mut out = [0u8; 16];
    let mut at = 0usize;
    let mut zero: Option<usize> = None;
    // Start of the current group, for an embedded dotted quad.
    let mut group: Option<&[u8]> = None;
    let mut nibbles = 0;
    let mut word: u32 = 0;
    let mut n = 8;

    if p[0] == b':' {
        p = &p[1..];
    }
    let mut i = 0;
    while i < p.len() {
        let c = p[i];
        i += 1;
        if c == b':' {
            if nibbles > 0 {
                group = Some(&p[i..]);
                out[at] = (word >> 8) as u8;
                out[at + 1] = word as u8;
                at += 2;
                n -= 1;
                if n > 0 {
                    nibbles = 0;
                    word = 0;
                    continue;
                }
            } else if zero.is_none() {
                group = Some(&p[i..]);
                zero = Some(at);
                continue;
            }
            return None;
        }
        if c == b'.' && nibbles > 0 {
            let rest = group?;
            if n < 2 {
                return None;
            }
            let v4 = u32::from(inet_addr(rest)?);
            out[at] = (v4 >> 24) as u8;
            out[at + 1] = (v4 >> 16) as u8;
            at += 2;
            n -= 1;
            word = v4 & 0xffff;
            break;
        }
        nibbles += 1;
        if nibbles > 4 {
            return None;
        }
        word = word * 16 + u32::from(hex_value(c)?);
    }
    if nibbles == 0 && zero.is_none() {
        return None;
    }
    out[at] = (word >> 8) as u8;
    out[at + 1] = word as u8;
    at += 2;
    n -= 1;
    match (n, zero) {
        (0, None) => Some(Ipv6Addr::from(out)),
        (0, Some(_)) | (_, None) => None,
        (n, Some(z)) => {
            // Move the groups after `::` to the end, zeros in between.
            let shift = n * 2;
            out.copy_within(z..at, z + shift);
            out[z..z + shift].fill(0);
            Some(Ipv6Addr::from(out))
        }
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        _ => match c | 0x20 {
            l @ b'a'..=b'f' => Some(l - b'a' + 10),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::proxy_protocol::{parse, Parse, Version};

    fn v4(s: &str, prefix: u8) -> Cidr {
        Cidr::V4 {
            addr: s.parse().unwrap(),
            prefix,
        }
    }

    fn v6(s: &str, prefix: u8) -> Cidr {
        Cidr::V6 {
            addr: s.parse().unwrap(),
            prefix,
        }
    }

    fn peer(s: &str) -> Peer {
        Peer::Inet(s.parse().unwrap())
    }

    fn text_header(src: &str, port: u16) -> ProxyHeader<'_> {
        ProxyHeader {
            version: Version::V1,
            src_addr: Address::Text(src.as_bytes()),
            dst_addr: Address::Text(b"10.0.0.1"),
            src_port: port,
            dst_port: 143,
            tlvs: &[],
        }
    }

    fn ip_header(src: &str, port: u16) -> ProxyHeader<'static> {
        ProxyHeader {
            version: Version::V2,
            src_addr: Address::Ip(src.parse().unwrap()),
            dst_addr: Address::Ip("10.0.0.1".parse().unwrap()),
            src_port: port,
            dst_port: 143,
            tlvs: &[],
        }
    }

    fn sa(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn trusted_peer_takes_header_address() {
        let from = [v4("10.0.0.0", 8), v6("2001:db8::", 32), Cidr::Unix];
        let h = text_header("192.0.2.7", 1234);
        assert_eq!(
            real_client(&from, &peer("10.1.2.3:5000"), &h),
            sa("192.0.2.7:1234")
        );
        assert_eq!(
            real_client(&from, &peer("[2001:db8::9]:1"), &h),
            sa("192.0.2.7:1234")
        );
        assert_eq!(real_client(&from, &Peer::Unix, &h), sa("192.0.2.7:1234"));
        // Not trusted.
        assert_eq!(real_client(&from, &peer("11.0.0.1:5000"), &h), None);
        assert_eq!(real_client(&from, &peer("[2001:db9::1]:1"), &h), None);
        assert_eq!(real_client(&[v4("0.0.0.0", 0)], &Peer::Unix, &h), None);
        // No set_real_ip_from at all.
        assert_eq!(real_client(&[], &peer("10.1.2.3:5000"), &h), None);
    }

    #[test]
    fn mapped_peer_matches_as_ipv4() {
        let h = text_header("192.0.2.7", 1);
        let p = peer("[::ffff:10.1.2.3]:5000");
        assert_eq!(real_client(&[v4("10.0.0.0", 8)], &p, &h), sa("192.0.2.7:1"));
        assert_eq!(real_client(&[v6("::ffff:0:0", 96)], &p, &h), None);
        assert_eq!(real_client(&[v6("::", 0)], &p, &h), None);
        assert_eq!(
            real_client(&[v6("::", 0)], &peer("[::1]:1"), &h),
            sa("192.0.2.7:1")
        );
        // `all` is IPv4 0.0.0.0/0 in nginx.
        assert_eq!(real_client(&[v4("0.0.0.0", 0)], &p, &h), sa("192.0.2.7:1"));
    }

    #[test]
    fn cidr_prefixes() {
        let p = peer("192.168.1.129:1");
        assert!(cidr_match(&p, &[v4("192.168.1.128", 25)]));
        assert!(!cidr_match(&p, &[v4("192.168.1.0", 25)]));
        assert!(cidr_match(&p, &[v4("192.168.1.129", 32)]));
        assert!(!cidr_match(&p, &[v4("192.168.1.128", 32)]));
        assert!(cidr_match(&peer("[fe80::1:2]:1"), &[v6("fe80::", 64)]));
        assert!(!cidr_match(&peer("[fe81::1:2]:1"), &[v6("fe80::", 64)]));
        assert!(cidr_match(&peer("[::1]:1"), &[v6("::1", 128)]));
    }

    #[test]
    fn header_address_parsing() {
        let from = [v4("127.0.0.0", 8)];
        let p = peer("127.0.0.1:9");
        for (src, want) in [
            ("1.2.3.4", sa("1.2.3.4:7")),
            // Text is parsed as written, whatever the line's family.
            ("2001:db8::5", sa("[2001:db8::5]:7")),
            ("::ffff:1.2.3.4", sa("[::ffff:1.2.3.4]:7")),
            ("001.02.3.4", sa("1.2.3.4:7")),
            ("1..2.3", sa("1.0.2.3:7")),
            ("", None),
            ("abc", None),
            ("1.2.3", None),
            ("255.255.255.255", None),
            ("::ffff:255.255.255.255", None),
        ] {
            assert_eq!(real_client(&from, &p, &text_header(src, 7)), want, "{src}");
        }
        for (src, want) in [
            ("1.2.3.4", sa("1.2.3.4:7")),
            ("::1.2.3.4", sa("[::1.2.3.4]:7")),
            ("2001:db8::5", sa("[2001:db8::5]:7")),
            ("255.255.255.255", None),
            ("::ffff:255.255.255.255", None),
        ] {
            assert_eq!(real_client(&from, &p, &ip_header(src, 7)), want, "{src}");
        }
    }

    #[test]
    fn from_parsed_headers() {
        let from = [Cidr::Unix];
        let line = b"PROXY TCP4 203.0.113.9 10.0.0.1 40000 993\r\n";
        let Parse::Done {
            header: Some(h), ..
        } = parse(line)
        else {
            panic!("parse")
        };
        assert_eq!(real_client(&from, &Peer::Unix, &h), sa("203.0.113.9:40000"));
    }

    #[test]
    fn inet_addr_as_nginx() {
        for (text, want) in [
            ("0.0.0.0", Some([0, 0, 0, 0])),
            ("1.2.3.4", Some([1, 2, 3, 4])),
            ("255.255.255.254", Some([255, 255, 255, 254])),
            ("...", Some([0, 0, 0, 0])),
            (".1.2.3", Some([0, 1, 2, 3])),
            ("1.2.3.", Some([1, 2, 3, 0])),
            ("0001.0.0.00000000009", Some([1, 0, 0, 9])),
            ("255.255.255.255", None),
            ("256.1.1.1", None),
            ("1.2.3.4.5", None),
            ("1.2.3", None),
            ("1.2.3.4 ", None),
            ("", None),
            ("a.b.c.d", None),
        ] {
            assert_eq!(
                inet_addr(text.as_bytes()),
                want.map(Ipv4Addr::from),
                "{text}"
            );
        }
    }

    #[test]
    fn inet6_addr_as_nginx() {
        for ok in [
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "fe80::1:2",
            "ABCD:ef01::9",
            "::ffff:1.2.3.4",
            "::1.2.3.4",
            "1:2:3:4:5:6:1.2.3.4",
            "1::6:1.2.3.4",
            "0:0:0:0:0:0:0:0",
            "1:0:0:2::3",
        ] {
            assert_eq!(inet6_addr(ok.as_bytes()), Some(ok.parse().unwrap()), "{ok}");
        }
        // nginx skips one leading colon.
        assert_eq!(
            inet6_addr(b":1:2:3:4:5:6:7:8"),
            Some("1:2:3:4:5:6:7:8".parse().unwrap())
        );
        assert_eq!(inet6_addr(b":1::"), Some("1::".parse().unwrap()));
        for bad in [
            "",
            ":",
            "1",
            "1:",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7::",
            "::1:2:3:4:5:6:7:8",
            "1::2::3",
            ":::",
            "12345::",
            "::g",
            "1.2.3.4",
            "1:2:3:4:5:6:7:1.2.3.4",
            "::1.2.3",
            "::1.2.3.4:5",
            "::ffff:256.1.1.1",
            "::a.1.2.3",
            "[::1]",
        ] {
            assert_eq!(inet6_addr(bad.as_bytes()), None, "{bad}");
        }
    }
}
