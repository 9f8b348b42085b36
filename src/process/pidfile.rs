//! The pid file: written by the master, read by `-s signal`.

use crate::logging::errno_suffix;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Write `pid\n`, truncating what was there. The error is nginx's message.
pub fn write(path: &Path, pid: i32) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .mode(0o644)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| format!("open() \"{}\" failed{}", path.display(), errno_suffix(&e)))?;
    f.write_all(format!("{pid}\n").as_bytes()).map_err(|e| {
        format!(
            "write() to \"{}\" failed{}",
            path.display(),
            errno_suffix(&e)
        )
    })
}

pub fn delete(path: &Path) -> Result<(), String> {
    std::fs::remove_file(path)
        .map_err(|e| format!("unlink() \"{}\" failed{}", path.display(), errno_suffix(&e)))
}

/// The `.oldbin` name a pid file gets during a binary upgrade.
pub fn oldbin(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".oldbin");
    PathBuf::from(s)
}

/// Read a pid as nginx does: at most 21 bytes, trailing CR/LF stripped,
/// then only digits.
pub fn read(path: &Path) -> Result<i32, String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .map_err(|e| format!("open() \"{}\" failed{}", path.display(), errno_suffix(&e)))?;
    let mut buf = [0u8; 21];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => {
                return Err(format!(
                    "read() \"{}\" failed{}",
                    path.display(),
                    errno_suffix(&e)
                ))
            }
        }
    }
    parse(&buf[..n]).ok_or_else(|| {
        let end = buf[..n]
            .iter()
            .rposition(|&b| b != b'\r' && b != b'\n')
            .map_or(0, |p| p + 1);
        format!(
            "invalid PID number \"{}\" in \"{}\"",
            String::from_utf8_lossy(&buf[..end]),
            path.display()
        )
    })
}

fn parse(bytes: &[u8]) -> Option<i32> {
    let end = bytes
        .iter()
        .rposition(|&b| b != b'\r' && b != b'\n')
        .map_or(0, |p| p + 1);
    let digits = &bytes[..end];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_like_nginx() {
        assert_eq!(parse(b"1234\n"), Some(1234));
        assert_eq!(parse(b"1234\r\n\n"), Some(1234));
        assert_eq!(parse(b"12 34\n"), None);
        assert_eq!(parse(b"\n"), None);
        assert_eq!(parse(b"-5\n"), None);
        assert_eq!(parse(b"99999999999\n"), None);
    }

    #[test]
    fn write_read_delete() {
        let p = std::env::temp_dir().join(format!("postern-pid-{}", std::process::id()));
        write(&p, 4321).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "4321\n");
        assert_eq!(read(&p).unwrap(), 4321);
        std::fs::write(&p, "abc\n").unwrap();
        assert_eq!(
            read(&p).unwrap_err(),
            format!("invalid PID number \"abc\" in \"{}\"", p.display())
        );
        delete(&p).unwrap();
        assert_eq!(
            read(&p).unwrap_err(),
            format!(
                "open() \"{}\" failed (2: No such file or directory)",
                p.display()
            )
        );
        assert_eq!(
            oldbin(Path::new("/run/p.pid")),
            Path::new("/run/p.pid.oldbin")
        );
    }
}
