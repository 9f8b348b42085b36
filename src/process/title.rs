//! Process titles as nginx shows them in `ps`: `postern: master process
//! /usr/sbin/postern -c ...`, `postern: worker process`.
//!
//! Linux shows the memory that held argv as the command line, so the
//! title is written over argv (and over the environment strings that
//! follow it, after copying them elsewhere), as nginx does. glibc hands
//! argc/argv to `.init_array` functions, which is how we learn where argv
//! lives. All the `unsafe` of this is in this file.

use std::ffi::{c_char, c_int, CStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Mutex;

static ARGC: AtomicUsize = AtomicUsize::new(0);
static ARGV: AtomicPtr<*mut c_char> = AtomicPtr::new(std::ptr::null_mut());

extern "C" {
    static mut environ: *mut *mut c_char;
}

/// End of the contiguous argv + environment strings, measured before
/// anything (unsetenv) could reorder the environment array.
static AREA_END: AtomicUsize = AtomicUsize::new(0);

extern "C" fn capture_args(argc: c_int, argv: *mut *mut c_char, envp: *mut *mut c_char) {
    ARGC.store(argc.max(0) as usize, Ordering::SeqCst);
    ARGV.store(argv, Ordering::SeqCst);
    if argv.is_null() || argc <= 0 {
        return;
    }
    // SAFETY: the kernel's argv/envp arrays of NUL-terminated strings,
    // only read.
    unsafe {
        let first = *argv;
        if first.is_null() {
            return;
        }
        let mut end = first as usize;
        for i in 0..argc as usize {
            let p = *argv.add(i);
            if p as usize == end {
                end += CStr::from_ptr(p).to_bytes().len() + 1;
            }
        }
        if !envp.is_null() {
            let mut i = 0;
            while !(*envp.add(i)).is_null() {
                let p = *envp.add(i);
                if p as usize == end {
                    end += CStr::from_ptr(p).to_bytes().len() + 1;
                }
                i += 1;
            }
        }
        AREA_END.store(end, Ordering::SeqCst);
    }
}

// SAFETY (of the attribute's effect): glibc calls every `.init_array`
// entry before main with (argc, argv, envp), as std itself relies on.
#[used]
#[link_section = ".init_array.00099"]
static CAPTURE_ARGS: extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) = capture_args;

/// The writable area [start, start+len) behind argv, once prepared.
static AREA: Mutex<Option<(usize, usize)>> = Mutex::new(None);

/// The command line as it was before any title was set (std's
/// `env::args` reads the same memory and must not be used afterwards).
pub fn original_args() -> Vec<OsString> {
    static SNAPSHOT: Mutex<Option<Vec<OsString>>> = Mutex::new(None);
    let mut snap = SNAPSHOT.lock().unwrap_or_else(|e| e.into_inner());
    snap.get_or_insert_with(|| std::env::args_os().collect())
        .clone()
}

/// Move the environment strings that lie in the argv area to the heap and
/// return the area.
fn prepare() -> Option<(usize, usize)> {
    let argv = ARGV.load(Ordering::SeqCst);
    let end = AREA_END.load(Ordering::SeqCst);
    if argv.is_null() || end == 0 {
        return None;
    }
    // SAFETY: argv[0] is the start of the area measured at start-up;
    // environ is the NULL-terminated environment array. Entries pointing
    // into the area are repointed to leaked copies so the area may be
    // overwritten. The master is single-threaded.
    unsafe {
        let start = *argv as usize;
        let env = environ;
        if !env.is_null() {
            let mut i = 0;
            while !(*env.add(i)).is_null() {
                let p = *env.add(i);
                if (start..end).contains(&(p as usize)) {
                    let copy = Box::leak(CStr::from_ptr(p).to_owned().into_boxed_c_str());
                    *env.add(i) = copy.as_ptr() as *mut c_char;
                }
                i += 1;
            }
        }
        Some((start, end - start))
    }
}

/// Show `postern: <title>` as this process's command line.
pub fn set(title: &str) {
    // Keep a copy of the real arguments before they are overwritten.
    let _ = original_args();
    let mut area = AREA.lock().unwrap_or_else(|e| e.into_inner());
    if area.is_none() {
        *area = prepare();
    }
    let Some((start, len)) = *area else {
        return;
    };
    let text = format!("postern: {title}");
    let n = text.len().min(len.saturating_sub(1));
    // SAFETY: [start, start+len) is the argv/environment string area that
    // `prepare` measured and of which nothing else holds pointers any
    // more (environ was repointed; std's args are not read after
    // `original_args`). argv[1] is cleared so ps shows one string.
    unsafe {
        let dst = start as *mut u8;
        std::ptr::copy_nonoverlapping(text.as_ptr(), dst, n);
        std::ptr::write_bytes(dst.add(n), 0, len - n);
        let argv = ARGV.load(Ordering::SeqCst);
        if ARGC.load(Ordering::SeqCst) > 1 {
            *argv.add(1) = std::ptr::null_mut();
        }
    }
}

/// The master's title: `master process` and the original command line.
pub fn master_title() -> String {
    let args: Vec<String> = original_args()
        .into_iter()
        .map(|a| String::from_utf8_lossy(&a.into_vec()).into_owned())
        .collect();
    format!("master process {}", args.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::sys::{self, Forked};

    #[test]
    fn title_shows_in_proc_cmdline() {
        let args = original_args();
        assert!(!args.is_empty());
        assert!(master_title().starts_with("master process "));
        let home = std::env::var_os("PATH");
        let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
        match sys::fork().unwrap() {
            Forked::Child => {
                set("worker process");
                // The environment still reads correctly after the move.
                let ok = std::env::var_os("PATH") == home;
                use std::io::Write;
                let _ = (&w).write_all(if ok { b"y" } else { b"n" });
                std::thread::sleep(std::time::Duration::from_millis(300));
                // SAFETY: leave the forked test child at once.
                unsafe { libc::_exit(0) };
            }
            Forked::Parent(pid) => {
                use std::io::Read;
                let mut b = [0u8; 1];
                (&r).read_exact(&mut b).unwrap();
                assert_eq!(&b, b"y");
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
                let shown = cmd.split(|&c| c == 0).next().unwrap();
                assert_eq!(shown, b"postern: worker process");
                let mut st = 0;
                // SAFETY: reaping our own child.
                unsafe { libc::waitpid(pid, &mut st, 0) };
            }
        }
    }
}
