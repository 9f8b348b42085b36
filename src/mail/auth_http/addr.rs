//! The address readers nginx applies to `Auth-Server` and `Auth-Port`.
//!
//! They accept exactly what nginx accepts, leniencies included: an IPv4
//! octet may be empty (`1..2.3` is 1.0.2.3), 255.255.255.255 is refused
//! (it is the C library's error value), an IPv6 address may start with a
//! lone `:` (`:1::2`) and has no brackets or zone. A host name is refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// nginx's IPv4 reader; `None` also for 255.255.255.255.
pub(super) fn inet_addr(text: &[u8]) -> Option<u32> {
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
    let addr = (addr << 8).wrapping_add(octet);
    (addr != u32::MAX).then_some(addr)
}

/// nginx's IPv6 reader.
pub(super) fn inet6_addr(text: &[u8]) -> Option<[u8; 16]> {
    let (&first, _) = text.split_first()?;
    let mut out = [0u8; 16];
    let mut at = 0usize;
    let mut zero: Option<usize> = None;
    let mut after_colon: Option<usize> = None;
    let mut nibbles = 0u32;
    let mut word: u32 = 0;
    let mut groups_left = 8usize;
    let mut i = usize::from(first == b':');

    while i < text.len() {
        let c = text[i];
        i += 1;
        if c == b':' {
            if nibbles > 0 {
                after_colon = Some(i);
                out[at] = (word >> 8) as u8;
                out[at + 1] = word as u8;
                at += 2;
                groups_left -= 1;
                if groups_left > 0 {
                    nibbles = 0;
                    word = 0;
                    continue;
                }
            } else if zero.is_none() {
                after_colon = Some(i);
                zero = Some(at);
                continue;
            }
            return None;
        }
        if c == b'.' && nibbles > 0 {
            let start = after_colon?;
            if groups_left < 2 {
                return None;
            }
            word = inet_addr(&text[start..])?;
            out[at] = (word >> 24) as u8;
            out[at + 1] = (word >> 16) as u8;
            at += 2;
            groups_left -= 1;
            break;
        }
        nibbles += 1;
        if nibbles > 4 {
            return None;
        }
        let value = match c {
            b'0'..=b'9' => c - b'0',
            _ => match c | 0x20 {
                l @ b'a'..=b'f' => l - b'a' + 10,
                _ => return None,
            },
        };
        word = word * 16 + u32::from(value);
    }

    if nibbles == 0 && zero.is_none() {
        return None;
    }
    out[at] = (word >> 8) as u8;
    out[at + 1] = word as u8;
    at += 2;
    groups_left -= 1;

    match (groups_left, zero) {
        (0, None) => Some(out),
        (0, Some(_)) | (_, None) => None,
        (left, Some(z)) => {
            let gap = left * 2;
            out.copy_within(z..at, z + gap);
            out[z..z + gap].fill(0);
            Some(out)
        }
    }
}

/// `Auth-Server`: an IPv4 address, else an IPv6 address.
pub(super) fn parse_server(text: &[u8]) -> Option<IpAddr> {
    if let Some(v4) = inet_addr(text) {
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    inet6_addr(text).map(|v6| IpAddr::V6(Ipv6Addr::from(v6)))
}

/// nginx's `ngx_atoi`: digits only, not empty, no overflow.
pub(super) fn atoi(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &c in text {
        if !c.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    // nginx's limit is its signed integer's maximum.
    (value <= i64::MAX as u64).then_some(value)
}

/// `Auth-Port`: 1 to 65535.
pub(super) fn parse_port(text: &[u8]) -> Option<u16> {
    atoi(text)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|&p| p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> Option<Ipv6Addr> {
        inet6_addr(s.as_bytes()).map(Ipv6Addr::from)
    }

    #[test]
    fn ipv4_as_nginx() {
        assert_eq!(inet_addr(b"127.0.0.1"), Some(0x7f00_0001));
        assert_eq!(inet_addr(b"1..2.3"), Some(0x0100_0203));
        assert_eq!(inet_addr(b"..."), Some(0));
        assert_eq!(inet_addr(b"255.255.255.255"), None);
        assert_eq!(inet_addr(b"255.255.255.254"), Some(0xffff_fffe));
        assert_eq!(inet_addr(b"256.0.0.1"), None);
        assert_eq!(inet_addr(b"1.2.3"), None);
        assert_eq!(inet_addr(b"1.2.3.4."), None);
        assert_eq!(inet_addr(b"1.2.3.4 "), None);
        assert_eq!(inet_addr(b""), None);
        assert_eq!(inet_addr(b"localhost"), None);
    }

    #[test]
    fn ipv6_as_nginx() {
        let std = |s: &str| Some(s.parse::<Ipv6Addr>().unwrap());
        assert_eq!(v6("::1"), std("::1"));
        assert_eq!(v6("::"), std("::"));
        assert_eq!(v6("1::"), std("1::"));
        assert_eq!(v6("fe80::1:2"), std("fe80::1:2"));
        assert_eq!(v6("1:2:3:4:5:6:7:8"), std("1:2:3:4:5:6:7:8"));
        assert_eq!(v6("::ffff:1.2.3.4"), std("::ffff:1.2.3.4"));
        assert_eq!(v6("1:2:3:4:5:6:1.2.3.4"), std("1:2:3:4:5:6:102:304"));
        assert_eq!(v6("ABCD::Ef"), std("abcd::ef"));
        // nginx's leniencies.
        assert_eq!(v6(":1::2"), std("1::2"));
        assert_eq!(v6("1::2:"), std("1::2:0"));
        // And its refusals.
        assert_eq!(v6("[::1]"), None);
        assert_eq!(v6("1:2:3:4:5:6:7:8:9"), None);
        assert_eq!(v6("1::2::3"), None);
        assert_eq!(v6("12345::"), None);
        assert_eq!(v6("1:2:3:4:5:6:7:1.2.3.4"), None);
        assert_eq!(v6("::ffff:255.255.255.255"), None);
        assert_eq!(v6("1:2"), None);
        assert_eq!(v6(""), None);
        assert_eq!(v6(":"), None);
        assert_eq!(v6("fe80::1%eth0"), None);
        assert_eq!(v6("g::"), None);
    }

    #[test]
    fn server_and_port() {
        assert_eq!(parse_server(b"10.0.0.1"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(parse_server(b"::1"), Some("::1".parse().unwrap()));
        assert_eq!(parse_server(b"localhost"), None);
        assert_eq!(parse_server(b"mail.example.com"), None);
        assert_eq!(parse_port(b"143"), Some(143));
        assert_eq!(parse_port(b"0143"), Some(143));
        assert_eq!(parse_port(b"65535"), Some(65535));
        assert_eq!(parse_port(b"65536"), None);
        assert_eq!(parse_port(b"0"), None);
        assert_eq!(parse_port(b"-1"), None);
        assert_eq!(parse_port(b"+1"), None);
        assert_eq!(parse_port(b"99999999999999999999999"), None);
        assert_eq!(atoi(b"9223372036854775807"), Some(i64::MAX as u64));
        assert_eq!(atoi(b"9223372036854775808"), None);
    }
}
