//! Raw socket calls for listening sockets: socket(2) with a chosen
//! protocol (MPTCP), options std does not expose, bind/listen on raw
//! addresses, and getsockopt for tests and inherited sockets.
//!
//! All `unsafe` for sockets is here; callers get `OwnedFd`s and
//! `io::Result`s.

use std::ffi::OsStr;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub const IPPROTO_MPTCP: i32 = 262;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A socket address in the kernel's layout.
pub struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    pub fn inet(addr: &SocketAddr) -> RawAddr {
        // SAFETY: sockaddr_storage is large and aligned enough for both
        // sockaddr_in and sockaddr_in6; zeroed is a valid bit pattern.
        unsafe {
            let mut storage: libc::sockaddr_storage = zeroed();
            let len = match addr {
                SocketAddr::V4(a) => {
                    let sin = &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in);
                    sin.sin_family = libc::AF_INET as libc::sa_family_t;
                    sin.sin_port = a.port().to_be();
                    sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                    size_of::<libc::sockaddr_in>()
                }
                SocketAddr::V6(a) => {
                    let sin6 = &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6);
                    sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                    sin6.sin6_port = a.port().to_be();
                    sin6.sin6_addr.s6_addr = a.ip().octets();
                    sin6.sin6_flowinfo = a.flowinfo();
                    sin6.sin6_scope_id = a.scope_id();
                    size_of::<libc::sockaddr_in6>()
                }
            };
            RawAddr {
                storage,
                len: len as libc::socklen_t,
            }
        }
    }

    pub fn unix(path: &Path) -> io::Result<RawAddr> {
        // SAFETY: as above, sockaddr_un fits in sockaddr_storage.
        unsafe {
            let mut storage: libc::sockaddr_storage = zeroed();
            let sun = &mut *(&mut storage as *mut _ as *mut libc::sockaddr_un);
            sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
            let bytes = path.as_os_str().as_bytes();
            if bytes.len() >= sun.sun_path.len() {
                return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
            }
            for (d, s) in sun.sun_path.iter_mut().zip(bytes) {
                *d = *s as libc::c_char;
            }
            let len = size_of::<libc::sa_family_t>() + bytes.len() + 1;
            Ok(RawAddr {
                storage,
                len: len as libc::socklen_t,
            })
        }
    }

    pub fn family(&self) -> i32 {
        self.storage.ss_family as i32
    }
}

/// socket(2), close-on-exec set.
pub fn socket(family: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) returns a new descriptor that we take ownership of.
    let fd =
        cvt(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, protocol) })?;
    // SAFETY: fd is a fresh, owned descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn bind(fd: &OwnedFd, addr: &RawAddr) -> io::Result<()> {
    // SAFETY: the address pointer and length describe `addr.storage`.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr.storage as *const _ as *const libc::sockaddr,
            addr.len,
        )
    })
    .map(drop)
}

pub fn listen(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: no memory effects.
    cvt(unsafe { libc::listen(fd, backlog) }).map(drop)
}

pub fn set_int_opt(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a local int and its size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const i32 as *const libc::c_void,
            size_of::<i32>() as libc::socklen_t,
        )
    })
    .map(drop)
}

#[cfg(test)]
pub fn get_int_opt(fd: RawFd, level: i32, name: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = size_of::<i32>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into a local int.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            &mut value as *mut i32 as *mut libc::c_void,
            &mut len,
        )
    })?;
    Ok(value)
}

pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl with integer arguments.
    unsafe {
        let fl = cvt(libc::fcntl(fd, libc::F_GETFL))?;
        cvt(libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK)).map(drop)
    }
}

/// The local address of a socket, for inherited descriptors.
pub enum LocalAddr {
    Inet(SocketAddr),
    Unix(std::path::PathBuf),
    Other,
}

pub fn local_addr(fd: RawFd) -> io::Result<LocalAddr> {
    // SAFETY: getsockname writes at most `len` bytes into the storage;
    // the family field tells which view of it is valid.
    unsafe {
        let mut storage: libc::sockaddr_storage = zeroed();
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        cvt(libc::getsockname(
            fd,
            &mut storage as *mut _ as *mut libc::sockaddr,
            &mut len,
        ))?;
        Ok(match storage.ss_family as i32 {
            libc::AF_INET => {
                let sin = &*(&storage as *const _ as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                LocalAddr::Inet(SocketAddr::new(ip.into(), u16::from_be(sin.sin_port)))
            }
            libc::AF_INET6 => {
                let sin6 = &*(&storage as *const _ as *const libc::sockaddr_in6);
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                LocalAddr::Inet(SocketAddr::new(ip.into(), u16::from_be(sin6.sin6_port)))
            }
            libc::AF_UNIX => {
                let sun = &*(&storage as *const _ as *const libc::sockaddr_un);
                let bytes: Vec<u8> = sun
                    .sun_path
                    .iter()
                    .take_while(|&&c| c != 0)
                    .map(|&c| c as u8)
                    .collect();
                LocalAddr::Unix(Path::new(OsStr::from_bytes(&bytes)).to_path_buf())
            }
            _ => LocalAddr::Other,
        })
    }
}

/// Take ownership of a descriptor number passed in the environment.
pub fn adopt_fd(fd: RawFd) -> Option<OwnedFd> {
    if !crate::process::sys::fd_is_open(fd) {
        return None;
    }
    // SAFETY: the descriptor is open and was handed to this process by
    // the old master; nothing else in this process owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
