//! The operating-system calls behind shared-memory zones: an anonymous
//! shared mapping and a robust, process-shared pthread mutex.
//!
//! This is the only file of `shm` with `unsafe`; everything above it works
//! on the safe types defined here.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::AtomicI32;

/// An anonymous `MAP_SHARED` mapping. Made before `fork`, it is the same
/// memory in the parent and every child; it is unmapped when dropped (a
/// child that inherited it keeps its own copy of the mapping).
#[derive(Debug)]
pub struct Mapping {
    addr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory not tied to a thread; all access to
// its contents goes through `RawMutex` (and atomics), which synchronise
// threads as well as processes.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` hands out no unsynchronised access.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Map `len` zero-filled bytes shared with future children.
    pub fn new(len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: a fresh anonymous mapping at an address the kernel picks;
        // no existing memory is affected. The result is checked below.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let addr = NonNull::new(addr.cast::<u8>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(Mapping { addr, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Start of the mapping (page-aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.addr.as_ptr()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `addr`/`len` are exactly what mmap returned, and no
        // reference into the mapping outlives `self` (guards borrow the
        // zone that owns the mapping). An error here can only be a bad
        // argument, which cannot happen; there is nothing useful to do.
        unsafe {
            libc::munmap(self.addr.as_ptr().cast(), self.len);
        }
    }
}

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The previous holder released it normally.
    Clean,
    /// The previous holder died while holding it; the mutex has been made
    /// consistent again, but the data it protects may be half-updated.
    OwnerDied,
}

/// A `pthread_mutex_t` living inside a [`Mapping`], initialised
/// `PTHREAD_PROCESS_SHARED` + `PTHREAD_MUTEX_ROBUST` +
/// `PTHREAD_MUTEX_ERRORCHECK`: it works across processes, survives its
/// holder dying (the next locker gets `EOWNERDEAD`), and relocking from the
/// same thread is an error rather than a silent deadlock.
pub struct RawMutex {
    ptr: *mut libc::pthread_mutex_t,
}

/// Bytes reserved for the mutex at the start of a zone (glibc's is 40 on
/// 64-bit Linux; checked at compile time).
pub const MUTEX_SPACE: usize = 64;
const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= MUTEX_SPACE);
const _: () = assert!(std::mem::align_of::<libc::pthread_mutex_t>() <= 8);

impl RawMutex {
    /// Initialise a mutex in the first [`MUTEX_SPACE`] bytes of a fresh
    /// mapping. Must be done once, before any child is forked.
    pub fn init(map: &Mapping) -> io::Result<RawMutex> {
        assert!(map.len() >= MUTEX_SPACE);
        let ptr = map.as_ptr().cast::<libc::pthread_mutex_t>();
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is initialised by pthread_mutexattr_init before
        // any other use and destroyed at the end; `ptr` is page-aligned,
        // large enough (asserted above), and nobody else uses the memory
        // yet since the mapping was just created.
        unsafe {
            check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
            let attr = attr.as_mut_ptr();
            let set = check(libc::pthread_mutexattr_setpshared(
                attr,
                libc::PTHREAD_PROCESS_SHARED,
            ))
            .and_then(|_| {
                check(libc::pthread_mutexattr_setrobust(
                    attr,
                    libc::PTHREAD_MUTEX_ROBUST,
                ))
            })
            .and_then(|_| {
                check(libc::pthread_mutexattr_settype(
                    attr,
                    libc::PTHREAD_MUTEX_ERRORCHECK,
                ))
            })
            .and_then(|_| check(libc::pthread_mutex_init(ptr, attr)));
            libc::pthread_mutexattr_destroy(attr);
            set?;
        }
        Ok(RawMutex { ptr })
    }

    /// Block until the mutex is ours.
    ///
    /// Safe to call only while the mapping holding the mutex is alive,
    /// which `shm::Zone` guarantees by owning both.
    pub fn lock(&self) -> io::Result<Acquired> {
        // SAFETY: `ptr` points at a mutex initialised by `init` inside a
        // mapping that outlives `self` (the zone owns both).
        let rc = unsafe { libc::pthread_mutex_lock(self.ptr) };
        match rc {
            0 => Ok(Acquired::Clean),
            libc::EOWNERDEAD => {
                // SAFETY: we hold the mutex (EOWNERDEAD means the lock was
                // acquired); marking it consistent is the documented way to
                // keep using it. Repairing the data is the caller's job.
                check(unsafe { libc::pthread_mutex_consistent(self.ptr) })?;
                Ok(Acquired::OwnerDied)
            }
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    /// Release the mutex taken by [`RawMutex::lock`].
    pub fn unlock(&self) {
        // SAFETY: called only by a guard created after a successful lock in
        // this thread. An error (EPERM) would mean that invariant broke.
        let rc = unsafe { libc::pthread_mutex_unlock(self.ptr) };
        debug_assert_eq!(rc, 0, "pthread_mutex_unlock");
    }
}

impl std::fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawMutex")
    }
}

// SAFETY: a process-shared pthread mutex is designed to be used from any
// thread of any process.
unsafe impl Send for RawMutex {}
// SAFETY: as above.
unsafe impl Sync for RawMutex {}

fn check(rc: libc::c_int) -> io::Result<()> {
    match rc {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// View `len` bytes at `offset` of the mapping as a mutable slice.
///
/// # Safety
/// The caller must hold the zone's mutex for the whole life of the slice
/// and must not create a second overlapping slice; `offset + len` must be
/// within the mapping.
pub unsafe fn slice_mut<'a>(map: &Mapping, offset: usize, len: usize) -> &'a mut [u8] {
    assert!(offset.checked_add(len).is_some_and(|end| end <= map.len()));
    // SAFETY: in bounds (asserted); exclusivity is the caller's contract.
    unsafe { std::slice::from_raw_parts_mut(map.as_ptr().add(offset), len) }
}

/// The atomic `i32` stored at `offset` of the mapping (4-byte aligned).
pub fn atomic_i32(map: &Mapping, offset: usize) -> &AtomicI32 {
    assert!(offset % 4 == 0 && offset + 4 <= map.len());
    // SAFETY: in bounds and aligned (asserted; the mapping is
    // page-aligned). The memory is only ever accessed atomically through
    // this function, and lives as long as `map`, to which the reference is
    // tied.
    unsafe { &*map.as_ptr().add(offset).cast::<AtomicI32>() }
}

/// The calling process's id.
pub fn getpid() -> i32 {
    std::process::id() as i32
}

/// Fork and kill helpers for the tests of `shm` and its users.
#[cfg(test)]
pub mod testing {
    /// Run `child` in a forked process which exits with its return value
    /// (via `_exit`, so the test harness's state is never unwound there).
    pub fn fork(child: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child only runs `child` and `_exit`s; glibc makes
        // malloc usable after fork in multithreaded parents.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
            // SAFETY: terminates the child without running the parent's
            // atexit handlers or destructors.
            unsafe { libc::_exit(code) };
        }
        pid
    }

    /// Wait for `pid` and return its exit code, or 128 + signal.
    pub fn wait(pid: i32) -> i32 {
        let mut status = 0;
        // SAFETY: plain syscall on our own child; `status` is a valid out
        // pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(rc, pid, "waitpid");
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        }
    }

    pub fn kill9(pid: i32) {
        // SAFETY: plain syscall on our own child.
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill");
    }
}
