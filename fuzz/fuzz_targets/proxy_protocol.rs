//! Fuzzes the PROXY protocol reader and writers. Nothing may panic, and:
//! a header is never longer than its input; any split of the input gives the
//! same final answer as the whole; `parse_final` never waits; what the
//! writers produce for fuzzed addresses is read back with those addresses.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use postern::conf::model::Cidr;
use postern::event::Peer;
use postern::mail::proxy_protocol::{
    parse, parse_final, write_v1, write_v2, Endpoint, Parse, TlsTlvs, MAX_HEADER,
};
use postern::mail::realip::real_client;

fn addr(bytes: &[u8], v6: bool) -> SocketAddr {
    let mut b = [0u8; 18];
    let n = bytes.len().min(18);
    b[..n].copy_from_slice(&bytes[..n]);
    let port = u16::from_be_bytes([b[16], b[17]]);
    let ip = if v6 {
        let mut o = [0u8; 16];
        o.copy_from_slice(&b[..16]);
        IpAddr::V6(Ipv6Addr::from(o))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    };
    SocketAddr::new(ip, port)
}

fuzz_target!(|data: &[u8]| {
    let whole = parse(data);
    match whole {
        Parse::Done { consumed, .. } => assert!(consumed <= data.len().min(MAX_HEADER)),
        Parse::Incomplete => assert!(data.len() < MAX_HEADER),
        Parse::Invalid(e) => {
            let _ = e.to_string();
        }
    }
    assert!(!matches!(parse_final(data), Parse::Incomplete));

    // The first answer over growing prefixes agrees with the whole input.
    let split = usize::from(data.first().copied().unwrap_or(0)) % (data.len() + 1);
    match (parse(&data[..split]), whole) {
        (Parse::Incomplete, _) => {}
        (Parse::Done { .. }, w) => assert_eq!(parse(&data[..split]), w),
        (Parse::Invalid(a), Parse::Invalid(b)) => {
            assert_eq!(std::mem::discriminant(&a), std::mem::discriminant(&b))
        }
        (a, b) => panic!("prefix {split}: {a:?} vs {b:?}"),
    }

    if let Parse::Done {
        header: Some(h), ..
    } = whole
    {
        let from = [
            Cidr::Unix,
            Cidr::V4 {
                addr: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
            },
        ];
        let _ = h.src_addr.to_string();
        let _ = real_client(&from, &Peer::Unix, &h);
        let _ = real_client(&from, &Peer::Inet(addr(data, false)), &h);
    }

    // Writers on addresses taken from the input.
    let v6 = data.first().is_some_and(|b| b & 1 != 0);
    let client = addr(data, v6);
    let local = addr(
        data.get(18..).unwrap_or(&[]),
        data.first().is_some_and(|b| b & 2 != 0),
    );
    let mut buf = [0u8; MAX_HEADER];
    let n = write_v1(Endpoint::Inet(client), Endpoint::Inet(local), &mut buf).unwrap();
    match parse(&buf[..n]) {
        Parse::Done {
            header: Some(h),
            consumed,
        } => {
            assert_eq!(consumed, n);
            assert_eq!((h.src_port, h.dst_port), (client.port(), local.port()));
        }
        other => panic!("v1 {other:?}"),
    }
    let tls = TlsTlvs {
        authority: data.get(36..40),
        alpn: data.get(40..42),
        client: 1,
        verify: 1,
        cn: data.get(42..data.len().min(1000)),
        ..TlsTlvs::default()
    };
    let tls = data.first().is_some_and(|b| b & 4 != 0).then_some(&tls);
    let n = write_v2(Endpoint::Inet(client), Endpoint::Inet(local), tls, &mut buf).unwrap();
    match parse(&buf[..n]) {
        Parse::Done {
            header: Some(h),
            consumed,
        } => {
            assert_eq!(consumed, n);
            assert_eq!((h.src_port, h.dst_port), (client.port(), local.port()));
        }
        other => panic!("v2 {other:?}"),
    }
    for limit in [0, 51, 52, 60, 107] {
        let _ = write_v2(
            Endpoint::Inet(client),
            Endpoint::Unix(b"/s"),
            tls,
            &mut buf[..limit],
        );
        let _ = write_v1(
            Endpoint::Inet(client),
            Endpoint::Unix(data),
            &mut buf[..limit],
        );
    }
});
