//! The number readers nginx applies to `Auth-Port` and `Auth-Wait`; the
//! `Auth-Server` address is read by [`crate::inet::parse_addr`].

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

    #[test]
    fn port_and_numbers() {
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
