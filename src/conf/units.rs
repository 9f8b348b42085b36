//! nginx's value syntaxes: numbers, sizes, offsets and times.
//!
//! Each parser returns `None` exactly where nginx's parser fails, so that
//! callers can produce nginx's message for the directive at hand.

use std::time::Duration;

/// Largest value of nginx's signed integer type on 64-bit platforms.
const MAX_INT: i64 = i64::MAX;

/// A non-negative decimal number (nginx's `ngx_atoi`): digits only, no sign,
/// not empty, no overflow.
pub fn parse_number(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value: i64 = 0;
    for b in s.bytes() {
        value = value.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    Some(value)
}

fn parse_scaled(s: &str, units: &[(u8, i64)]) -> Option<i64> {
    let bytes = s.as_bytes();
    let last = *bytes.last()?;
    let (digits, scale) = match units.iter().find(|(u, _)| last.eq_ignore_ascii_case(u)) {
        Some(&(_, scale)) => (&s[..s.len() - 1], scale),
        None => (s, 1),
    };
    let value = parse_number(digits)?;
    if value > MAX_INT / scale {
        return None;
    }
    Some(value * scale)
}

/// A size in bytes with an optional `k` or `m` suffix (`ngx_parse_size`).
pub fn parse_size(s: &str) -> Option<usize> {
    parse_scaled(s, &[(b'k', 1024), (b'm', 1024 * 1024)]).and_then(|v| usize::try_from(v).ok())
}

/// A file offset with an optional `k`, `m` or `g` suffix
/// (`ngx_parse_offset`).
pub fn parse_offset(s: &str) -> Option<u64> {
    parse_scaled(
        s,
        &[
            (b'k', 1024),
            (b'm', 1024 * 1024),
            (b'g', 1024 * 1024 * 1024),
        ],
    )
    .and_then(|v| u64::try_from(v).ok())
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Start,
    Year,
    Month,
    Week,
    Day,
    Hour,
    Min,
    Sec,
    Msec,
    Last,
}

/// nginx's `ngx_parse_time`: `1h 30m`, `500ms`, `2d`, `15` (seconds).
/// With `is_sec` the result is in seconds and `y`/`M` are allowed but `ms`
/// is not; otherwise it is in milliseconds and `y`/`M` are refused.
pub fn parse_time(s: &str, is_sec: bool) -> Option<i64> {
    let p = s.as_bytes();
    let mut i = 0;
    let mut valid = false;
    let mut value: i64 = 0;
    let mut total: i64 = 0;
    let mut step = if is_sec { Step::Start } else { Step::Month };
    let cutoff = MAX_INT / 10;
    let cutlim = MAX_INT % 10;
    while i < p.len() {
        let c = p[i];
        if c.is_ascii_digit() {
            let d = i64::from(c - b'0');
            if value >= cutoff && (value > cutoff || d > cutlim) {
                return None;
            }
            value = value * 10 + d;
            valid = true;
            i += 1;
            continue;
        }
        i += 1;
        let (next, mut max, mut scale): (Step, i64, i64) = match c {
            b'y' => {
                if step > Step::Start {
                    return None;
                }
                (Step::Year, MAX_INT / 31_536_000, 31_536_000)
            }
            b'M' => {
                if step >= Step::Month {
                    return None;
                }
                (Step::Month, MAX_INT / 2_592_000, 2_592_000)
            }
            b'w' => {
                if step >= Step::Week {
                    return None;
                }
                (Step::Week, MAX_INT / 604_800, 604_800)
            }
            b'd' => {
                if step >= Step::Day {
                    return None;
                }
                (Step::Day, MAX_INT / 86_400, 86_400)
            }
            b'h' => {
                if step >= Step::Hour {
                    return None;
                }
                (Step::Hour, MAX_INT / 3600, 3600)
            }
            b'm' if i < p.len() && p[i] == b's' => {
                if is_sec || step >= Step::Msec {
                    return None;
                }
                i += 1;
                (Step::Msec, MAX_INT, 1)
            }
            b'm' => {
                if step >= Step::Min {
                    return None;
                }
                (Step::Min, MAX_INT / 60, 60)
            }
            b's' => {
                if step >= Step::Sec {
                    return None;
                }
                (Step::Sec, MAX_INT, 1)
            }
            b' ' => {
                if step >= Step::Sec {
                    return None;
                }
                (Step::Last, MAX_INT, 1)
            }
            _ => return None,
        };
        step = next;
        if step != Step::Msec && !is_sec {
            scale *= 1000;
            max /= 1000;
        }
        if value > max {
            return None;
        }
        value *= scale;
        if total > MAX_INT - value {
            return None;
        }
        total += value;
        value = 0;
        while i < p.len() && p[i] == b' ' {
            i += 1;
        }
    }
    if !valid {
        return None;
    }
    if !is_sec {
        if value > MAX_INT / 1000 {
            return None;
        }
        value *= 1000;
    }
    if total > MAX_INT - value {
        return None;
    }
    Some(total + value)
}

/// A time in milliseconds (`ngx_conf_set_msec_slot`).
pub fn parse_msec(s: &str) -> Option<Duration> {
    parse_time(s, false).map(|ms| Duration::from_millis(ms as u64))
}

/// A time in seconds (`ngx_conf_set_sec_slot`).
pub fn parse_sec(s: &str) -> Option<Duration> {
    parse_time(s, true).map(|sec| Duration::from_secs(sec as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("512"), Some(512));
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("-1"), None);
        assert_eq!(parse_number("+1"), None);
        assert_eq!(parse_number("1k"), None);
        assert_eq!(parse_number("99999999999999999999"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("4k"), Some(4096));
        assert_eq!(parse_size("4K"), Some(4096));
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1g"), None, "sizes know no g");
        assert_eq!(parse_size("k"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("1.5k"), None);
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("1g"), Some(1 << 30));
        assert_eq!(parse_offset("2G"), Some(2 << 30));
        assert_eq!(parse_offset("7"), Some(7));
        assert_eq!(parse_offset("1t"), None);
    }

    #[test]
    fn times_msec() {
        assert_eq!(parse_time("60s", false), Some(60_000));
        assert_eq!(parse_time("60", false), Some(60_000));
        assert_eq!(parse_time("500ms", false), Some(500));
        assert_eq!(parse_time("1h 30m", false), Some(5_400_000));
        assert_eq!(parse_time("1h30m", false), Some(5_400_000));
        assert_eq!(parse_time("1d", false), Some(86_400_000));
        assert_eq!(parse_time("1w", false), Some(604_800_000));
        assert_eq!(parse_time("1M", false), None, "no months in msec times");
        assert_eq!(parse_time("1y", false), None, "no years in msec times");
        assert_eq!(parse_time("30m 1h", false), None, "units must descend");
        assert_eq!(parse_time("1s 1s", false), None);
        assert_eq!(parse_time("", false), None);
        assert_eq!(parse_time("s", false), None);
        assert_eq!(parse_time("1x", false), None);
        assert_eq!(parse_time("1s 500ms", false), Some(1500));
    }

    #[test]
    fn times_sec() {
        assert_eq!(parse_time("5m", true), Some(300));
        assert_eq!(parse_time("1y", true), Some(31_536_000));
        assert_eq!(parse_time("1M", true), Some(2_592_000));
        assert_eq!(parse_time("10ms", true), None);
        assert_eq!(
            parse_time("1y 1M 1w 1d 1h 1m 1s", true),
            Some(31_536_000 + 2_592_000 + 604_800 + 86_400 + 3600 + 61)
        );
    }
}
