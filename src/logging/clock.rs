//! Local time and host name for log lines: the only libc calls of the
//! logging module, each behind a safe function.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// A broken-down local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i32,
    /// 1..=12
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl LocalTime {
    /// The current local time (the process's `TZ`).
    pub fn now() -> LocalTime {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        LocalTime::from_unix(secs as libc::time_t)
    }

    /// Seconds since the epoch, converted with the C library's time zone
    /// rules (so `TZ` behaves exactly as for nginx).
    pub fn from_unix(secs: libc::time_t) -> LocalTime {
        // SAFETY: `tm` is a plain C struct for which all-zero bytes are a
        // valid value; localtime_r only writes into the struct we pass and
        // reads `secs` through a valid pointer. It is the reentrant variant,
        // so concurrent calls do not share a static buffer.
        let tm = unsafe {
            let mut tm: libc::tm = std::mem::zeroed();
            if libc::localtime_r(&secs, &mut tm).is_null() {
                return LocalTime {
                    year: 1970,
                    month: 1,
                    day: 1,
                    hour: 0,
                    minute: 0,
                    second: 0,
                };
            }
            tm
        };
        LocalTime {
            year: tm.tm_year + 1900,
            month: (tm.tm_mon + 1) as u32,
            day: tm.tm_mday as u32,
            hour: tm.tm_hour as u32,
            minute: tm.tm_min as u32,
            second: tm.tm_sec as u32,
        }
    }

    /// The error log form: `2024/03/09 07:05:01`.
    pub fn error_log_format(&self) -> String {
        format!(
            "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// The BSD syslog (RFC 3164) form: `Mar  9 07:05:01` (day padded with
    /// a space).
    pub fn syslog_format(&self) -> String {
        let month = MONTHS[(self.month.clamp(1, 12) - 1) as usize];
        format!(
            "{} {:2} {:02}:{:02}:{:02}",
            month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// The host name in lower case, as nginx keeps it for syslog headers.
pub fn hostname() -> &'static str {
    static HOSTNAME: OnceLock<String> = OnceLock::new();
    HOSTNAME.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the pointer and length describe `buf`, which outlives the
        // call; gethostname writes at most `len` bytes into it.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
        if rc != 0 {
            return "localhost".to_string();
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).to_lowercase()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let t = LocalTime {
            year: 2024,
            month: 3,
            day: 9,
            hour: 7,
            minute: 5,
            second: 1,
        };
        assert_eq!(t.error_log_format(), "2024/03/09 07:05:01");
        assert_eq!(t.syslog_format(), "Mar  9 07:05:01");
        let t = LocalTime { day: 19, ..t };
        assert_eq!(t.syslog_format(), "Mar 19 07:05:01");
    }

    #[test]
    fn hostname_is_lowercase_and_nonempty() {
        let h = hostname();
        assert!(!h.is_empty());
        assert_eq!(h, h.to_lowercase());
    }
}
