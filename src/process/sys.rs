//! The operating-system calls the process module needs and std does not
//! offer: signals, fork, privileges, resource limits, CPU affinity, a
//! counter shared between processes and a few descriptor flags.
//!
//! Every `unsafe` block of the process module lives here, each with its
//! reason; the rest of the crate sees only safe functions.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

// ---------------------------------------------------------------------------
// signals: the handler only sets bits and writes one byte to a pipe

/// Signals the master and workers listen to, with nginx's names.
pub const HANDLED_SIGNALS: [(libc::c_int, &str); 10] = [
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGWINCH, "SIGWINCH"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGIO, "SIGIO"),
    (libc::SIGCHLD, "SIGCHLD"),
];

pub fn signal_name(signo: i32) -> &'static str {
    HANDLED_SIGNALS
        .iter()
        .find(|(s, _)| *s == signo)
        .map(|(_, n)| *n)
        .unwrap_or("")
}

/// Bit n set = signal n arrived and was not yet taken.
static PENDING: AtomicU64 = AtomicU64::new(0);
/// The pid that sent each signal last (0 = the kernel or unknown).
static SENDERS: [AtomicI32; 65] = [const { AtomicI32::new(0) }; 65];
/// Write end of the self-pipe, -1 before `install_signal_handlers`.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signo: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // Only async-signal-safe work: atomics, errno save/restore, write(2).
    let saved = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let sender = if info.is_null() {
        0
    } else {
        // SAFETY: the kernel passes a valid siginfo_t with SA_SIGINFO.
        unsafe { (*info).si_pid() }
    };
    if (0..65).contains(&signo) {
        SENDERS[signo as usize].store(sender, Ordering::SeqCst);
        PENDING.fetch_or(1u64 << signo, Ordering::SeqCst);
    }
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = signo as u8;
        // SAFETY: write(2) is async-signal-safe; a full pipe (EAGAIN) is
        // fine because the reader drains it and checks PENDING anyway.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    // SAFETY: restoring errno so the interrupted code sees its own value.
    unsafe { *libc::__errno_location() = saved };
}

/// The read end of the self-pipe: readable whenever a signal arrived.
pub struct SignalPipe {
    read: RawFd,
    write: RawFd,
}

impl SignalPipe {
    pub fn fd(&self) -> RawFd {
        self.read
    }

    /// Empty the pipe (the signals themselves are taken with
    /// `take_signals`).
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reading into a local buffer of the given length.
            let n = unsafe { libc::read(self.read, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
        }
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        let _ = WAKE_FD.compare_exchange(self.write, -1, Ordering::SeqCst, Ordering::SeqCst);
        // SAFETY: both descriptors are owned by this value.
        unsafe {
            libc::close(self.read);
            libc::close(self.write);
        }
    }
}

fn pipe_nonblocking() -> io::Result<(RawFd, RawFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
    Ok((fds[0], fds[1]))
}

/// Install the handler for every signal in `HANDLED_SIGNALS`, ignore
/// SIGPIPE and SIGSYS as nginx does, and return a fresh self-pipe. Called
/// again in a forked child so that it gets a pipe of its own.
pub fn install_signal_handlers() -> io::Result<SignalPipe> {
    let (read, write) = pipe_nonblocking()?;
    let old = WAKE_FD.swap(write, Ordering::SeqCst);
    let _ = old; // the parent's pipe stays owned by its SignalPipe value
    PENDING.store(0, Ordering::SeqCst);
    for (signo, name) in HANDLED_SIGNALS {
        // SAFETY: a zeroed sigaction is a valid starting point; the handler
        // has the SA_SIGINFO signature and only does async-signal-safe work.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                on_signal;
            sa.sa_sigaction = handler as libc::sighandler_t;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(signo, &sa, std::ptr::null_mut()) == -1 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(
                    e.kind(),
                    format!("sigaction({name}) failed:{e}"),
                ));
            }
        }
    }
    for signo in [libc::SIGPIPE, libc::SIGSYS] {
        // SAFETY: setting a signal to SIG_IGN has no memory effects.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = libc::SIG_IGN;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(signo, &sa, std::ptr::null_mut());
        }
    }
    unblock_all_signals();
    Ok(SignalPipe { read, write })
}

/// Take the signals that arrived since the last call, with their senders,
/// in signal-number order.
pub fn take_signals() -> Vec<(i32, i32)> {
    let bits = PENDING.swap(0, Ordering::SeqCst);
    (1..64)
        .filter(|n| bits & (1u64 << n) != 0)
        .map(|n| (n as i32, SENDERS[n].load(Ordering::SeqCst)))
        .collect()
}

fn unblock_all_signals() {
    // SAFETY: an empty set built by sigemptyset, passed by pointer.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Wait until `fd` is readable or the timeout passes (`None` = forever).
pub fn wait_readable(fd: RawFd, timeout: Option<Duration>) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    if n == -1 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(true);
        }
        return Err(e);
    }
    Ok(n > 0)
}

pub fn kill(pid: i32, signo: i32) -> io::Result<()> {
    // SAFETY: kill(2) has no memory effects.
    cvt(unsafe { libc::kill(pid, signo) }).map(drop)
}

// ---------------------------------------------------------------------------
// processes

pub enum Forked {
    Child,
    Parent(i32),
}

/// fork(2). The caller must only be single-threaded (the master is).
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the master never starts threads, so the child is a faithful
    // copy; it continues in plain Rust code.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        p => Ok(Forked::Parent(p)),
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal { signo: i32, core: bool },
}

/// Reap one exited child without blocking.
pub fn reap_child() -> io::Result<Option<(i32, ExitStatus)>> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into a local.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        p => {
            let st = if libc::WIFSIGNALED(status) {
                ExitStatus::Signal {
                    signo: libc::WTERMSIG(status),
                    core: libc::WCOREDUMP(status),
                }
            } else {
                ExitStatus::Code(libc::WEXITSTATUS(status))
            };
            Ok(Some((p, st)))
        }
    }
}

pub fn getpid() -> i32 {
    std::process::id() as i32
}

pub fn getppid() -> i32 {
    // SAFETY: no arguments, no memory effects.
    unsafe { libc::getppid() }
}

pub fn geteuid() -> u32 {
    // SAFETY: no arguments, no memory effects.
    unsafe { libc::geteuid() }
}

/// Detach like nginx's daemon(): the parent exits 0, the child starts a
/// new session, clears its umask and points stdin/stdout at /dev/null
/// (stderr is kept so late start-up errors still reach the terminal).
pub fn daemonize() -> Result<(), String> {
    match fork().map_err(|e| format!("fork() failed{}", crate::logging::errno_suffix(&e)))? {
        Forked::Parent(_) => std::process::exit(0),
        Forked::Child => {}
    }
    // SAFETY: setsid/umask have no memory effects.
    if unsafe { libc::setsid() } == -1 {
        let e = io::Error::last_os_error();
        return Err(format!(
            "setsid() failed{}",
            crate::logging::errno_suffix(&e)
        ));
    }
    // SAFETY: as above.
    unsafe { libc::umask(0) };
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| {
            format!(
                "open(\"/dev/null\") failed{}",
                crate::logging::errno_suffix(&e)
            )
        })?;
    use std::os::fd::AsRawFd;
    for (target, name) in [(0, "STDIN"), (1, "STDOUT")] {
        // SAFETY: dup2 onto a standard descriptor; `null` stays open.
        if unsafe { libc::dup2(null.as_raw_fd(), target) } == -1 {
            let e = io::Error::last_os_error();
            return Err(format!(
                "dup2({name}) failed{}",
                crate::logging::errno_suffix(&e)
            ));
        }
    }
    Ok(())
}

/// Point stderr at a file descriptor (nginx's ngx_log_redirect_stderr).
pub fn redirect_stderr(fd: RawFd) -> io::Result<()> {
    // SAFETY: dup2 onto descriptor 2.
    cvt(unsafe { libc::dup2(fd, 2) }).map(drop)
}

// ---------------------------------------------------------------------------
// privileges and limits

pub fn setgid(gid: u32) -> io::Result<()> {
    // SAFETY: no memory effects.
    cvt(unsafe { libc::setgid(gid) }).map(drop)
}

pub fn setuid(uid: u32) -> io::Result<()> {
    // SAFETY: no memory effects.
    cvt(unsafe { libc::setuid(uid) }).map(drop)
}

pub fn initgroups(user: &str, gid: u32) -> io::Result<()> {
    let name = CString::new(user).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid NUL-terminated name.
    cvt(unsafe { libc::initgroups(name.as_ptr(), gid) }).map(drop)
}

#[derive(Debug, Clone, Copy)]
pub enum Resource {
    NoFile,
    Core,
}

impl Resource {
    fn raw(self) -> libc::__rlimit_resource_t {
        match self {
            Resource::NoFile => libc::RLIMIT_NOFILE,
            Resource::Core => libc::RLIMIT_CORE,
        }
    }
}

/// (soft, hard); `u64::MAX` is RLIM_INFINITY.
pub fn getrlimit(res: Resource) -> io::Result<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills a local struct.
    cvt(unsafe { libc::getrlimit(res.raw(), &mut r) })?;
    Ok((r.rlim_cur, r.rlim_max))
}

pub fn setrlimit(res: Resource, value: u64) -> io::Result<()> {
    let r = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads a local struct.
    cvt(unsafe { libc::setrlimit(res.raw(), &r) }).map(drop)
}

pub fn setpriority(prio: i32) -> io::Result<()> {
    // SAFETY: no memory effects; who = 0 is the calling process.
    cvt(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, prio) }).map(drop)
}

/// Allow core dumps after setuid(), as nginx does.
pub fn set_dumpable() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    cvt(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) }).map(drop)
}

/// Bind the calling process to the given CPUs.
pub fn set_affinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET bounds-checks
    // against the set size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            if c < libc::CPU_SETSIZE as usize {
                libc::CPU_SET(c, &mut set);
            }
        }
        cvt(libc::sched_setaffinity(
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        ))
        .map(drop)
    }
}

/// The CPUs this process may run on, in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills a local zeroed set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == -1 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// `uname -s`, `-r`, `-v` for the start-up "OS:" notice.
pub fn uname() -> Option<(String, String, String)> {
    // SAFETY: uname fills a local struct with NUL-terminated strings.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) == -1 {
            return None;
        }
        let s = |f: &[libc::c_char]| {
            std::ffi::CStr::from_ptr(f.as_ptr())
                .to_string_lossy()
                .into_owned()
        };
        Some((s(&u.sysname), s(&u.release), s(&u.version)))
    }
}

// ---------------------------------------------------------------------------
// descriptors

/// Set or clear FD_CLOEXEC (listening sockets must survive exec for a
/// binary upgrade).
pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl with integer arguments on a descriptor we own.
    unsafe {
        let flags = cvt(libc::fcntl(fd, libc::F_GETFD))?;
        let flags = if on {
            flags | libc::FD_CLOEXEC
        } else {
            flags & !libc::FD_CLOEXEC
        };
        cvt(libc::fcntl(fd, libc::F_SETFD, flags)).map(drop)
    }
}

/// Whether `fd` is an open descriptor.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only queries.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

// ---------------------------------------------------------------------------
// a counter shared by the master and every worker (nginx's connection
// counter lives in shared memory so numbers are unique across workers)

pub struct SharedCounter {
    ptr: *const AtomicU64,
}

// SAFETY: the pointee is an atomic in a mapping that lives as long as the
// value; atomics are safe to share.
unsafe impl Send for SharedCounter {}
// SAFETY: as above.
unsafe impl Sync for SharedCounter {}

impl SharedCounter {
    /// A counter starting at 1, in an anonymous shared mapping that forked
    /// children share.
    pub fn new() -> io::Result<SharedCounter> {
        // SAFETY: a fresh anonymous mapping of one page, zero-filled;
        // AtomicU64 has the layout of u64 and a page is 8-byte aligned.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            let ptr = p as *const AtomicU64;
            (*ptr).store(1, Ordering::SeqCst);
            Ok(SharedCounter { ptr })
        }
    }

    /// Take the next number.
    pub fn next(&self) -> u64 {
        // SAFETY: ptr points into our live mapping.
        unsafe { (*self.ptr).fetch_add(1, Ordering::SeqCst) }
    }
}

impl Drop for SharedCounter {
    fn drop(&mut self) {
        // SAFETY: unmapping the page mapped in `new`; no references remain.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, 4096) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_reaches_pipe_with_sender() {
        let pipe = install_signal_handlers().unwrap();
        take_signals();
        kill(getpid(), libc::SIGWINCH).unwrap();
        assert!(wait_readable(pipe.fd(), Some(Duration::from_secs(2))).unwrap());
        pipe.drain();
        let got = take_signals();
        assert!(got.contains(&(libc::SIGWINCH, getpid())), "{got:?}");
        assert!(take_signals().is_empty());
        assert_eq!(signal_name(libc::SIGQUIT), "SIGQUIT");
    }

    #[test]
    fn shared_counter_counts_across_fork() {
        let c = SharedCounter::new().unwrap();
        assert_eq!(c.next(), 1);
        match fork().unwrap() {
            Forked::Child => {
                c.next();
                // SAFETY: leave the test child without running test harness
                // teardown.
                unsafe { libc::_exit(0) };
            }
            Forked::Parent(pid) => {
                let mut st = 0;
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(pid, &mut st, 0) };
                assert_eq!(c.next(), 3);
            }
        }
    }

    #[test]
    fn cloexec_toggles() {
        let f = std::fs::File::open("/dev/null").unwrap();
        use std::os::fd::AsRawFd;
        set_cloexec(f.as_raw_fd(), false).unwrap();
        // SAFETY: query only.
        let fl = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(fl & libc::FD_CLOEXEC, 0);
        assert!(fd_is_open(f.as_raw_fd()));
        assert!(!allowed_cpus().is_empty());
        assert!(getrlimit(Resource::NoFile).unwrap().0 > 0);
    }
}
