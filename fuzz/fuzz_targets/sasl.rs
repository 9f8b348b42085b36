//! Fuzzes SASL decoding: mechanism selection over space-separated words,
//! every decoder on the same response, and base64 decoding against a plain
//! reimplementation of nginx's rules (which must agree exactly). Nothing may
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::mail::sasl::{
    auth_cram_md5, auth_external, auth_login_password, auth_login_username, auth_plain,
    cram_md5_challenge, decode_base64, make_salt, parse_mechanism, Credentials,
};

/// nginx's decoder, bit by bit: the alphabet up to the first '=', a length
/// of 1 modulo 4 rejected, leftover bits dropped.
fn reference_decode(src: &[u8]) -> Option<Vec<u8>> {
    fn value(b: u8) -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => u32::from(b - b'A'),
            b'a'..=b'z' => u32::from(b - b'a') + 26,
            b'0'..=b'9' => u32::from(b - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    }
    let end = src.iter().position(|&b| b == b'=').unwrap_or(src.len());
    let mut values = Vec::with_capacity(end);
    for &b in &src[..end] {
        values.push(value(b)?);
    }
    if values.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::new();
    for group in values.chunks(4) {
        let mut acc = 0u32;
        for (i, v) in group.iter().enumerate() {
            acc |= v << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..group.len()]);
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    assert_eq!(decode_base64(data), reference_decode(data));

    let words: Vec<&[u8]> = data.split(|&b| b == b' ').take(4).collect();
    let _ = parse_mechanism(&words);

    let mut creds = Credentials::default();
    let _ = auth_plain(data, &mut creds);
    let _ = auth_login_username(data, &mut creds);
    let _ = auth_login_password(data, &mut creds);
    let _ = auth_cram_md5(data, &mut creds);
    let _ = auth_external(data, &mut creds);

    let salt = make_salt(u32::from(data.first().copied().unwrap_or(0)), 0, data);
    let _ = cram_md5_challenge(b"334 ", &salt);
});
