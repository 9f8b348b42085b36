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

use std::net::{IpAddr, SocketAddr};

use crate::conf::model::Cidr;
use crate::event::Peer;

use super::proxy_protocol::{Address, IpText, ProxyHeader};
use crate::inet;

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
        Address::Text(text) => inet::parse_addr(text)?,
        Address::Ip(ip) => inet::parse_addr(IpText::new(ip).as_str().as_bytes())?,
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
}
