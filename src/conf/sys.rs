//! The few system facts the configuration needs at load time, behind a
//! safe interface: glob(3) for `include`, user and group lookups for
//! `user`, the effective uid, the host name and the number of online CPUs.

use std::ffi::{CStr, CString};
use std::io;

/// Expand a glob pattern as glob(3) does (sorted, hidden files only when
/// the pattern says so). No match is an empty list, as nginx's `include`
/// treats it.
pub fn glob(pattern: &str) -> io::Result<Vec<String>> {
    let c_pattern =
        CString::new(pattern).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: glob_t is a plain C struct for which all-zero is the documented
    // initial state; glob() fills it and globfree() releases what it filled.
    let mut g: libc::glob_t = unsafe { std::mem::zeroed() };
    // SAFETY: the pattern is a valid NUL-terminated string and g is owned.
    let rc = unsafe { libc::glob(c_pattern.as_ptr(), 0, None, &mut g) };
    let result = match rc {
        0 => {
            let mut out = Vec::with_capacity(g.gl_pathc);
            for i in 0..g.gl_pathc {
                // SAFETY: glob() returned gl_pathc valid C strings in gl_pathv.
                let p = unsafe { CStr::from_ptr(*g.gl_pathv.add(i)) };
                out.push(p.to_string_lossy().into_owned());
            }
            Ok(out)
        }
        libc::GLOB_NOMATCH => Ok(Vec::new()),
        _ => Err(io::Error::last_os_error()),
    };
    // SAFETY: g was initialised by glob() (or is all-zero, which globfree accepts).
    unsafe { libc::globfree(&mut g) };
    result
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid() has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn set_errno(v: i32) {
    // SAFETY: __errno_location() returns this thread's errno slot.
    unsafe { *libc::__errno_location() = v };
}

/// Why a lookup failed: the errno nginx prints (0 when the name simply
/// does not exist).
pub type LookupError = i32;

/// Look a user up by name: its uid.
pub fn user_id(name: &str) -> Result<u32, LookupError> {
    let c = CString::new(name).map_err(|_| 0)?;
    set_errno(0);
    // SAFETY: c is a valid C string; the returned pointer is only read
    // before any other passwd call on this thread.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: pw is non-null and points to a valid passwd entry.
    Ok(unsafe { (*pw).pw_uid })
}

/// Look a group up by name: its gid.
pub fn group_id(name: &str) -> Result<u32, LookupError> {
    let c = CString::new(name).map_err(|_| 0)?;
    set_errno(0);
    // SAFETY: as for getpwnam above.
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    if gr.is_null() {
        return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: gr is non-null and points to a valid group entry.
    Ok(unsafe { (*gr).gr_gid })
}

/// The host name, lower-cased as nginx keeps it.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase()
}

/// The number of online CPUs (nginx's `ngx_ncpu`), at least 1.
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n < 1 {
        1
    } else {
        n as usize
    }
}

/// nginx's errno suffix: ` (2: No such file or directory)`; empty for 0.
pub fn errno_suffix(code: i32) -> String {
    if code == 0 {
        return String::new();
    }
    let text = io::Error::from_raw_os_error(code).to_string();
    let text = text
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&text)
        .to_string();
    format!(" ({code}: {text})")
}

/// A host name resolved as nginx's `ngx_inet_resolve_host` does (IPv4 and
/// IPv6 addresses, in the resolver's order, without duplicates).
pub fn resolve_host(host: &str) -> Option<Vec<std::net::IpAddr>> {
    use std::net::ToSocketAddrs;
    let addrs = (host, 0u16).to_socket_addrs().ok()?;
    let mut out: Vec<std::net::IpAddr> = Vec::new();
    for a in addrs {
        if !out.contains(&a.ip()) {
            out.push(a.ip());
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text() {
        assert_eq!(errno_suffix(2), " (2: No such file or directory)");
        assert_eq!(errno_suffix(0), "");
    }

    #[test]
    fn glob_sorts_and_tolerates_no_match() {
        let dir = std::env::temp_dir().join(format!("postern-glob-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for n in ["b.conf", "a.conf", ".hidden.conf", "c.txt"] {
            std::fs::write(dir.join(n), "").unwrap();
        }
        let got = glob(&format!("{}/*.conf", dir.display())).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|p| p.rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(names, ["a.conf", "b.conf"]);
        assert!(glob(&format!("{}/*.none", dir.display()))
            .unwrap()
            .is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lookups() {
        assert_eq!(user_id("root"), Ok(0));
        assert_eq!(group_id("root"), Ok(0));
        assert!(user_id("no-such-user-postern").is_err());
        assert!(online_cpus() >= 1);
    }
}
