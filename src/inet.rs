//! nginx's readers of address text (`ngx_inet_addr`, `ngx_inet6_addr`,
//! `ngx_parse_addr`), used wherever nginx uses them: addresses in the
//! configuration (`listen`, `set_real_ip_from`, `auth_http`, `resolver`),
//! the `Auth-Server` header of auth_http and the addresses of a PROXY
//! protocol header for realip. They accept exactly what nginx accepts,
//! leniencies included, so a value is taken or refused as nginx would.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

    #[test]
    fn more_nginx_leniencies_and_refusals() {
        let v6 = |s: &str| inet6_addr(s.as_bytes());
        let std = |s: &str| Some(s.parse::<Ipv6Addr>().unwrap());
        assert_eq!(v6("1:2:3:4:5:6:1.2.3.4"), std("1:2:3:4:5:6:102:304"));
        assert_eq!(v6(":1::2"), std("1::2"));
        assert_eq!(v6("1::2:"), std("1::2:0"));
        assert_eq!(v6("::ffff:255.255.255.255"), None);
        assert_eq!(v6("fe80::1%eth0"), None);
        assert_eq!(inet_addr(b"1..2.3"), Some(Ipv4Addr::new(1, 0, 2, 3)));
        assert_eq!(parse_addr(b"10.0.0.1"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(parse_addr(b"::1"), Some("::1".parse().unwrap()));
        assert_eq!(parse_addr(b"localhost"), None);
    }
}
