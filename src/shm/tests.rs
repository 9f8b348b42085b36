use super::testing::{fork, kill9, wait};
use super::*;

fn conf(zones: &[(&str, usize)]) -> Vec<ShmZone> {
    zones
        .iter()
        .map(|&(name, size)| ShmZone {
            name: name.to_string(),
            size,
        })
        .collect()
}

#[test]
fn zone_is_zeroed_and_sized_as_configured() {
    let z = Zone::create("SSL", 64 * 1024).unwrap();
    assert_eq!(z.name(), "SSL");
    assert_eq!(z.size(), 64 * 1024);
    assert_eq!(z.data_len(), 64 * 1024 - ZONE_HEADER);
    let g = z.lock().unwrap();
    assert!(!g.owner_died());
    assert!(g.data().iter().all(|&b| b == 0));
}

#[test]
fn bad_sizes_are_refused_with_nginx_words() {
    let e = Zone::create("x", 0).unwrap_err();
    assert_eq!(e.to_string(), "zero size shared memory zone \"x\"");
    assert!(e.is_emerg());
    let e = Zone::create("x", usize::MAX / 2).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("mmap(MAP_ANON|MAP_SHARED, {}) failed", usize::MAX / 2)
    );
    assert!(e.err.is_some());
    assert!(!e.is_emerg());
}

#[test]
fn children_see_the_same_memory() {
    let z = Zone::create("shared", 32 * 1024).unwrap();
    let child = z.clone();
    let pid = fork(move || {
        let mut g = child.lock().unwrap();
        g.data_mut()[..5].copy_from_slice(b"hello");
        0
    });
    assert_eq!(wait(pid), 0);
    assert_eq!(&z.lock().unwrap().data()[..5], b"hello");
}

#[test]
fn relocking_in_the_same_thread_is_an_error_not_a_deadlock() {
    let z = Zone::create("x", 32 * 1024).unwrap();
    let _g = z.lock().unwrap();
    let e = z.lock().err().unwrap();
    assert_eq!(e.raw_os_error(), Some(libc::EDEADLK));
}

#[test]
fn lock_excludes_other_processes() {
    // Each child increments a counter stored in two places without any
    // atomic operation; the two copies only agree if the lock excludes.
    let z = Zone::create("count", 32 * 1024).unwrap();
    let pids: Vec<i32> = (0..4)
        .map(|_| {
            let z = z.clone();
            fork(move || {
                for _ in 0..2000 {
                    let mut g = z.lock().unwrap();
                    let d = g.data_mut();
                    let a = u32::from_le_bytes(d[0..4].try_into().unwrap());
                    std::hint::black_box(&d);
                    d[0..4].copy_from_slice(&(a + 1).to_le_bytes());
                    let b = u32::from_le_bytes(d[4..8].try_into().unwrap());
                    d[4..8].copy_from_slice(&(b + 1).to_le_bytes());
                }
                0
            })
        })
        .collect();
    for pid in pids {
        assert_eq!(wait(pid), 0);
    }
    let g = z.lock().unwrap();
    let d = g.data();
    assert_eq!(u32::from_le_bytes(d[0..4].try_into().unwrap()), 8000);
    assert_eq!(u32::from_le_bytes(d[4..8].try_into().unwrap()), 8000);
}

#[test]
fn holder_killed_by_sigkill_does_not_wedge_the_lock() {
    let z = Zone::create("robust", 32 * 1024).unwrap();
    let child = z.clone();
    let pid = fork(move || {
        let mut g = child.lock().unwrap();
        g.data_mut()[0] = 1;
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    });
    // Wait until the child holds the lock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !z.locked_by(pid) {
        if std::time::Instant::now() > deadline {
            kill9(pid);
            panic!("child never locked");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    kill9(pid);
    assert_eq!(wait(pid), 128 + libc::SIGKILL);
    let set = ZoneSet {
        zones: vec![z.clone()],
    };
    assert_eq!(set.locked_by(pid).count(), 1);
    {
        let g = z.lock().unwrap();
        assert!(g.owner_died());
        assert_eq!(g.data()[0], 1);
    }
    // Recovered once; later lockers see a clean mutex again.
    assert!(!z.lock().unwrap().owner_died());
    assert!(!z.locked_by(pid));
}

#[test]
fn reconcile_keeps_same_name_and_size_and_recreates_others() {
    let first = ZoneSet::new()
        .reconcile(&conf(&[
            ("a", 32 * 1024),
            ("b", 32 * 1024),
            ("c", 32 * 1024),
        ]))
        .unwrap();
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|z| !z.was_kept()));
    first.get("a").unwrap().lock().unwrap().data_mut()[0] = 7;
    first.get("b").unwrap().lock().unwrap().data_mut()[0] = 8;

    // Reload: a unchanged, b resized, c gone, d new.
    let second = first
        .reconcile(&conf(&[
            ("a", 32 * 1024),
            ("b", 64 * 1024),
            ("d", 32 * 1024),
        ]))
        .unwrap();
    let a = second.get("a").unwrap();
    assert!(a.was_kept());
    assert!(a.same_memory(first.get("a").unwrap()));
    assert_eq!(a.lock().unwrap().data()[0], 7);
    let b = second.get("b").unwrap();
    assert!(!b.was_kept());
    assert_eq!(b.size(), 64 * 1024);
    assert_eq!(b.lock().unwrap().data()[0], 0);
    assert!(second.get("c").is_none());
    assert!(!second.get("d").unwrap().was_kept());

    // A failed reload leaves the running set alone.
    let err = second
        .reconcile(&conf(&[("a", 32 * 1024), ("huge", usize::MAX / 2)]))
        .unwrap_err();
    assert_eq!(err.zone, "huge");
    assert_eq!(second.get("a").unwrap().lock().unwrap().data()[0], 7);

    // Dropping the old set keeps the reused zone alive in the new one.
    drop(first);
    assert_eq!(second.get("a").unwrap().lock().unwrap().data()[0], 7);
}
