use super::*;
use crate::conf::model::ShmZone;
use crate::shm::testing::{fork, kill9, wait};
use crate::shm::ZoneSet;

const CTX: &[u8] = b"server-one-context-hash-20b";
const MB: usize = 1024 * 1024;

fn store_of(size: usize) -> SessionStore {
    SessionStore::attach(Zone::create("SSL", size).unwrap()).unwrap()
}

fn id(n: u32) -> [u8; 32] {
    let mut id = [0x5a; 32];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id
}

fn der(n: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(n) as u8)
        .collect()
}

#[test]
fn stores_and_fetches_by_id_and_context() {
    let s = store_of(64 * 1024);
    assert_eq!(
        s.store(&id(1), CTX, &der(1, 200), 100, 0).unwrap(),
        StoreOutcome::Stored
    );
    assert_eq!(s.fetch(&id(1), CTX, 50).unwrap(), Some(der(1, 200)));
    // Another server's context does not see it, nor does another id.
    assert_eq!(s.fetch(&id(1), b"other", 50).unwrap(), None);
    assert_eq!(s.fetch(&id(2), CTX, 50).unwrap(), None);
    assert_eq!(s.fetch(&id(1)[..16], CTX, 50).unwrap(), None);
    // Same id and context: the new session replaces the old one.
    s.store(&id(1), CTX, &der(9, 150), 100, 1).unwrap();
    assert_eq!(s.fetch(&id(1), CTX, 50).unwrap(), Some(der(9, 150)));
    let st = s.stats().unwrap();
    assert_eq!((st.sessions, st.stored, st.hits, st.misses), (1, 2, 2, 3));
    assert!(s.remove(&id(1), CTX).unwrap());
    assert!(!s.remove(&id(1), CTX).unwrap());
    assert_eq!(s.fetch(&id(1), CTX, 50).unwrap(), None);
    assert_eq!(s.stats().unwrap().removed, 1);
    assert_eq!(s.check_invariants(), 0);
}

#[test]
fn expired_sessions_are_not_returned_and_are_dropped() {
    let s = store_of(64 * 1024);
    s.store(&id(1), CTX, &der(1, 100), 10, 0).unwrap();
    assert!(s.fetch(&id(1), CTX, 9).unwrap().is_some());
    // Expiry is exclusive, as nginx (`expire > now`).
    assert_eq!(s.fetch(&id(1), CTX, 10).unwrap(), None);
    assert_eq!(s.stats().unwrap().sessions, 0);
    assert_eq!(s.stats().unwrap().expired, 1);

    // Each insert drops up to two expired sessions from the old end.
    for n in 0..5 {
        s.store(&id(n), CTX, &der(n, 100), 20, 0).unwrap();
    }
    s.store(&id(100), CTX, &der(100, 100), 1000, 30).unwrap();
    assert_eq!(s.stats().unwrap().sessions, 4);
    assert_eq!(s.fetch(&id(0), CTX, 0).unwrap(), None);
    assert_eq!(s.fetch(&id(1), CTX, 0).unwrap(), None);
    assert!(s.fetch(&id(2), CTX, 0).unwrap().is_some());
    // An unexpired oldest session stops the expiry.
    s.store(&id(101), CTX, &der(101, 100), 1000, 5).unwrap();
    assert!(s.fetch(&id(2), CTX, 0).unwrap().is_some());
    assert_eq!(s.check_invariants(), 5);
}

#[test]
fn oversized_sessions_and_bad_ids_are_not_cached() {
    let s = store_of(64 * 1024);
    let big = vec![7u8; MAX_SESSION_SIZE + 1];
    assert_eq!(
        s.store(&id(1), CTX, &big, 100, 0).unwrap(),
        StoreOutcome::NotCached
    );
    assert_eq!(
        s.store(&[1u8; 33], CTX, b"x", 100, 0).unwrap(),
        StoreOutcome::NotCached
    );
    assert_eq!(
        s.store(&[], CTX, b"x", 100, 0).unwrap(),
        StoreOutcome::NotCached
    );
    let max = vec![7u8; MAX_SESSION_SIZE];
    assert_eq!(
        s.store(&id(2), CTX, &max, 100, 0).unwrap(),
        StoreOutcome::Stored
    );
    assert_eq!(s.fetch(&id(2), CTX, 0).unwrap(), Some(max));
    assert_eq!(s.stats().unwrap().not_cached, 3);
    assert_eq!(s.check_invariants(), 1);
}

#[test]
fn full_cache_evicts_oldest_first() {
    let s = store_of(64 * 1024);
    let mut n = 0;
    while s.stats().unwrap().evicted == 0 {
        s.store(&id(n), CTX, &der(n, 200), 1000, 0).unwrap();
        n += 1;
    }
    // Exactly the oldest one went; a lookup does not refresh (nginx's queue
    // is by insertion), so fetching #1 does not save it from being next.
    assert_eq!(s.fetch(&id(0), CTX, 0).unwrap(), None);
    assert!(s.fetch(&id(1), CTX, 0).unwrap().is_some());
    s.store(&id(n), CTX, &der(n, 200), 1000, 0).unwrap();
    assert_eq!(s.fetch(&id(1), CTX, 0).unwrap(), None);
    assert!(s.fetch(&id(2), CTX, 0).unwrap().is_some());
    assert_eq!(s.fetch(&id(n), CTX, 0).unwrap(), Some(der(n, 200)));
    assert_eq!(s.stats().unwrap().evicted, 2);
    assert_eq!(s.check_invariants() as u32, n - 1);
}

#[test]
fn one_megabyte_holds_about_4000_sessions() {
    let s = store_of(MB);
    for n in 0..6000 {
        s.store(&id(n), CTX, &der(n, 200), 1000, 0).unwrap();
    }
    let held = s.check_invariants();
    assert!((4000..4100).contains(&held), "held {held}");
    // The newest `held` are the ones kept.
    assert!(s.fetch(&id(6000 - held as u32), CTX, 0).unwrap().is_some());
    assert!(s.fetch(&id(5999 - held as u32), CTX, 0).unwrap().is_none());
}

#[test]
fn churn_with_mixed_sizes_keeps_the_structure_consistent() {
    // A small zone wraps many times, with padding records and holes.
    let s = store_of(40 * 1024);
    let mut seed = 0x1234_5678u32;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let mut latest: std::collections::HashMap<u32, Vec<u8>> = Default::default();
    for step in 0..5000i64 {
        let key = rand() % 300;
        match rand() % 10 {
            0..=5 => {
                let len = [40, 150, 200, 260, 1500, 5000][(rand() % 6) as usize];
                let d = der(rand(), len);
                s.store(&id(key), CTX, &d, step + 50, step).unwrap();
                latest.insert(key, d);
            }
            6 => {
                s.remove(&id(key), CTX).unwrap();
                latest.remove(&key);
            }
            _ => {
                if let Some(got) = s.fetch(&id(key), CTX, step).unwrap() {
                    assert_eq!(Some(&got), latest.get(&key), "step {step}");
                }
            }
        }
        if step % 97 == 0 {
            s.check_invariants();
        }
    }
    s.check_invariants();
}

#[test]
fn workers_share_sessions_across_fork() {
    let s = store_of(MB);
    let pids: Vec<i32> = (0..4u32)
        .map(|w| {
            let s = s.clone();
            fork(move || {
                for i in 0..400u32 {
                    let n = w * 1000 + i;
                    s.store(&id(n), CTX, &der(n, 180), 1000, 0).unwrap();
                    // Read back a session another worker may have written.
                    let other = ((w + 1) % 4) * 1000 + i / 2;
                    if let Some(got) = s.fetch(&id(other), CTX, 0).unwrap() {
                        if got != der(other, 180) {
                            return 1;
                        }
                    }
                    if s.fetch(&id(n), CTX, 0).unwrap() != Some(der(n, 180)) {
                        return 2;
                    }
                }
                0
            })
        })
        .collect();
    for pid in pids {
        assert_eq!(wait(pid), 0);
    }
    for w in 0..4 {
        for i in 0..400 {
            let n = w * 1000 + i;
            assert_eq!(s.fetch(&id(n), CTX, 0).unwrap(), Some(der(n, 180)));
        }
    }
    assert_eq!(s.check_invariants(), 1600);
}

#[test]
fn worker_killed_mid_update_leaves_a_usable_cache() {
    let s = store_of(MB);
    for n in 0..10 {
        s.store(&id(n), CTX, &der(n, 200), 1000, 0).unwrap();
    }
    let child = s.clone();
    let pid = fork(move || child.hang_mid_update());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !s.zone().locked_by(pid) {
        if std::time::Instant::now() > deadline {
            kill9(pid);
            panic!("child never locked");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    kill9(pid);
    assert_eq!(wait(pid), 128 + libc::SIGKILL);
    // The next user gets the lock back, sees the half-done update and starts
    // from an empty cache, which then works normally.
    assert_eq!(s.fetch(&id(1), CTX, 0).unwrap(), None);
    assert_eq!(s.stats().unwrap().repairs, 1);
    assert_eq!(s.check_invariants(), 0);
    s.store(&id(1), CTX, &der(1, 200), 1000, 0).unwrap();
    assert_eq!(s.fetch(&id(1), CTX, 0).unwrap(), Some(der(1, 200)));
    assert_eq!(s.stats().unwrap().repairs, 1);
}

#[test]
fn sessions_survive_a_reload_that_keeps_the_zone() {
    let conf = |size| {
        vec![ShmZone {
            name: "SSL".to_string(),
            size,
        }]
    };
    let first = ZoneSet::new().reconcile(&conf(MB)).unwrap();
    let s = SessionStore::attach(first.get("SSL").unwrap().clone()).unwrap();
    s.store(&id(1), CTX, &der(1, 200), 1000, 0).unwrap();

    let second = first.reconcile(&conf(MB)).unwrap();
    drop(first);
    let s2 = SessionStore::attach(second.get("SSL").unwrap().clone()).unwrap();
    assert_eq!(s2.fetch(&id(1), CTX, 0).unwrap(), Some(der(1, 200)));

    // A new size is a new, empty zone.
    let third = second.reconcile(&conf(2 * MB)).unwrap();
    let s3 = SessionStore::attach(third.get("SSL").unwrap().clone()).unwrap();
    assert_eq!(s3.fetch(&id(1), CTX, 0).unwrap(), None);
    assert_eq!(
        s3.stats().unwrap().capacity_bytes as usize,
        s3.zone().data_len() - s3_overhead(&s3)
    );
}

fn s3_overhead(s: &SessionStore) -> usize {
    let g = Geometry::for_data_len(s.zone().data_len()).unwrap();
    s.zone().data_len() - g.ring_cap
}

#[test]
fn too_small_zone_is_refused() {
    let e = SessionStore::attach(Zone::create("tiny", 8 * 1024).unwrap()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "shared memory zone \"tiny\" is too small for a session cache"
    );
}

#[test]
fn ticket_keys_are_made_once_and_rotated_as_nginx() {
    let s = store_of(64 * 1024);
    let mut fills = 0u8;
    let mut fill = |b: &mut [u8; 80]| {
        fills += 1;
        b.fill(fills);
        true
    };
    // First use: current key made, previous is the (expired) empty one, so
    // it rotates at once: previous = current, current = next (= current).
    let [cur, prev] = s.sync_ticket_keys(1000, 300, &mut fill).unwrap().unwrap();
    assert_eq!(cur.name, [1; 16]);
    assert_eq!(prev.name, [1; 16]);
    assert_eq!(cur.expire, 1300);
    // Another worker later: same keys, expiry pushed forward.
    let [cur2, prev2] = s.sync_ticket_keys(1100, 300, &mut fill).unwrap().unwrap();
    assert_eq!((cur2.name, prev2.name), (cur.name, prev.name));
    assert_eq!(cur2.expire, 1400);
    // Once the previous key is no longer needed, the prepared next key
    // becomes current and the old current becomes previous.
    let [cur3, prev3] = s.sync_ticket_keys(1301, 300, &mut fill).unwrap().unwrap();
    assert_eq!(cur3.name, [2; 16]);
    assert_eq!(prev3.name, [1; 16]);
    assert_eq!(cur3.expire, 1601);
    // A failing random source changes nothing.
    assert!(s.sync_ticket_keys(2000, 300, |_| false).unwrap().is_none());
    let [cur4, _] = s.sync_ticket_keys(1302, 300, &mut fill).unwrap().unwrap();
    assert_eq!(cur4.name, [2; 16]);
    assert!(!format!("{cur4:?}").contains("hmac"));
}
