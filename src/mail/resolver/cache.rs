//! A worker's cache of successful lookups for one `resolver`, as nginx's
//! resolver keeps them: the name of an address (PTR) and the addresses of
//! a name (A/AAAA), each valid for `valid=` when set, else for the
//! answer's TTL. An entry nobody has used for 30 seconds is dropped even
//! if still valid, and failures (NXDOMAIN, SERVFAIL, timeouts) are never
//! kept: the next session asks again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// nginx's resolver `expire`: how long an unused entry stays.
const UNUSED_EXPIRY: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Entry<T> {
    value: T,
    /// Answers after this are asked again.
    valid_until: Instant,
    /// Dropped after this unless used again.
    unused_until: Instant,
}

impl<T: Clone> Entry<T> {
    fn get(&mut self, now: Instant) -> Option<T> {
        if now > self.valid_until {
            return None;
        }
        self.unused_until = now + UNUSED_EXPIRY;
        Some(self.value.clone())
    }
}

#[derive(Debug, Default)]
pub struct HostCache {
    /// `valid=` of the resolver: overrides the TTLs.
    valid: Option<Duration>,
    names_of: HashMap<IpAddr, Entry<String>>,
    /// Keyed by the lower-case name.
    addrs_of: HashMap<String, Entry<Vec<IpAddr>>>,
    /// When expired entries are next swept out.
    next_sweep: Option<Instant>,
}

impl HostCache {
    pub fn new(valid: Option<Duration>) -> HostCache {
        HostCache {
            valid,
            ..HostCache::default()
        }
    }

    /// The name a PTR query for `addr` gave, while valid.
    pub fn name_of(&mut self, addr: IpAddr, now: Instant) -> Option<String> {
        self.names_of.get_mut(&addr)?.get(now)
    }

    /// The addresses the A/AAAA queries for `name` gave, while valid.
    pub fn addrs_of(&mut self, name: &str, now: Instant) -> Option<Vec<IpAddr>> {
        self.addrs_of.get_mut(&name.to_ascii_lowercase())?.get(now)
    }

    pub fn put_name(&mut self, addr: IpAddr, name: String, ttl: u32, now: Instant) {
        let entry = self.entry(name, ttl, now);
        self.names_of.insert(addr, entry);
    }

    pub fn put_addrs(&mut self, name: &str, addrs: Vec<IpAddr>, ttl: u32, now: Instant) {
        let entry = self.entry(addrs, ttl, now);
        self.addrs_of.insert(name.to_ascii_lowercase(), entry);
    }

    pub fn len(&self) -> usize {
        self.names_of.len() + self.addrs_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entry<T>(&mut self, value: T, ttl: u32, now: Instant) -> Entry<T> {
        self.sweep(now);
        let valid = self.valid.unwrap_or(Duration::from_secs(u64::from(ttl)));
        Entry {
            value,
            valid_until: now + valid,
            unused_until: now + UNUSED_EXPIRY,
        }
    }

    /// Drop the entries unused for too long (at most every 30 s: the
    /// cache only grows with new answers, so sweeping on insert bounds it).
    fn sweep(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|at| now < at) {
            return;
        }
        self.next_sweep = Some(now + UNUSED_EXPIRY);
        self.names_of.retain(|_, e| now <= e.unused_until);
        self.addrs_of.retain(|_, e| now <= e.unused_until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn answers_live_for_their_ttl() {
        let t0 = Instant::now();
        let mut c = HostCache::new(None);
        c.put_name(ip("127.0.0.1"), "mail.example.test".into(), 60, t0);
        c.put_addrs("Mail.Example.Test", vec![ip("127.0.0.1")], 10, t0);
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(
            c.name_of(ip("127.0.0.1"), at(25)).as_deref(),
            Some("mail.example.test")
        );
        assert_eq!(
            c.addrs_of("mail.example.test", at(10)),
            Some(vec![ip("127.0.0.1")])
        );
        assert_eq!(c.addrs_of("mail.example.test", at(11)), None);
        assert_eq!(
            c.name_of(ip("127.0.0.1"), at(50)).as_deref(),
            Some("mail.example.test")
        );
        assert_eq!(c.name_of(ip("127.0.0.1"), at(61)), None);
        assert_eq!(c.name_of(ip("127.0.0.2"), at(1)), None);
    }

    #[test]
    fn valid_overrides_the_ttl() {
        let t0 = Instant::now();
        let mut c = HostCache::new(Some(Duration::from_secs(5)));
        c.put_name(ip("::1"), "six.example.test".into(), 3600, t0);
        assert!(c.name_of(ip("::1"), t0 + Duration::from_secs(5)).is_some());
        assert!(c.name_of(ip("::1"), t0 + Duration::from_secs(6)).is_none());
        // a TTL of 0 is not worth keeping past this instant
        let mut c = HostCache::new(None);
        c.put_name(ip("::1"), "six.example.test".into(), 0, t0);
        assert!(c
            .name_of(ip("::1"), t0 + Duration::from_millis(1))
            .is_none());
    }

    #[test]
    fn unused_entries_go_after_30s() {
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let mut c = HostCache::new(None);
        c.put_name(ip("10.0.0.1"), "a.test".into(), 3600, t0);
        c.put_name(ip("10.0.0.2"), "b.test".into(), 3600, t0);
        // used at 20 s: kept until 50 s
        assert!(c.name_of(ip("10.0.0.2"), at(20)).is_some());
        c.put_name(ip("10.0.0.3"), "c.test".into(), 3600, at(31));
        assert_eq!(c.len(), 2, "10.0.0.1 was unused for 31 s");
        assert!(c.name_of(ip("10.0.0.2"), at(40)).is_some());
        c.put_name(ip("10.0.0.4"), "d.test".into(), 3600, at(65));
        assert_eq!(c.len(), 2, "10.0.0.2 (used at 40 s) and the new one");
        assert!(c.name_of(ip("10.0.0.3"), at(65)).is_none());
    }
}
