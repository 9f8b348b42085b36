//! Timers ordered by deadline. Adding, cancelling and finding the next
//! expiry are O(log n); nothing is scanned per tick.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Who a timer belongs to: a connection slot, or the loop itself.
pub type Owner = usize;

/// A handle to cancel a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId {
    deadline: Instant,
    seq: u64,
}

#[derive(Debug, Default)]
pub struct Timers {
    entries: BTreeMap<TimerId, (Owner, u32)>,
    seq: u64,
}

impl Timers {
    pub fn new() -> Timers {
        Timers::default()
    }

    /// Fire `tag` for `owner` at `deadline`.
    pub fn add_at(&mut self, deadline: Instant, owner: Owner, tag: u32) -> TimerId {
        self.seq += 1;
        let id = TimerId {
            deadline,
            seq: self.seq,
        };
        self.entries.insert(id, (owner, tag));
        id
    }

    pub fn add(&mut self, after: Duration, owner: Owner, tag: u32) -> TimerId {
        self.add_at(Instant::now() + after, owner, tag)
    }

    /// Cancel a timer; cancelling one that already fired is harmless.
    pub fn cancel(&mut self, id: TimerId) {
        self.entries.remove(&id);
    }

    /// Drop every timer of an owner (when its connection closes). Linear,
    /// but only on close, never per tick.
    pub fn cancel_owner(&mut self, owner: Owner) {
        self.entries.retain(|_, (o, _)| *o != owner);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries.keys().next().map(|id| id.deadline)
    }

    /// How long the loop may sleep: until the next deadline, rounded up to
    /// `resolution` when `timer_resolution` is set (nginx then only looks
    /// at the clock every `resolution`), `None` = no timers.
    pub fn poll_timeout(&self, now: Instant, resolution: Option<Duration>) -> Option<Duration> {
        let d = self.next_deadline()?.saturating_duration_since(now);
        Some(match resolution {
            Some(r) if !r.is_zero() && !d.is_zero() => {
                let steps = d.as_nanos().div_ceil(r.as_nanos());
                r * steps as u32
            }
            _ => d,
        })
    }

    /// Remove and return the next timer due at `now`, if any.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(Owner, u32)> {
        let (&id, _) = self.entries.iter().next()?;
        if id.deadline > now {
            return None;
        }
        self.entries.remove(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_deadline_order_and_cancels() {
        let mut t = Timers::new();
        let base = Instant::now();
        let a = t.add_at(base + Duration::from_millis(30), 1, 10);
        t.add_at(base + Duration::from_millis(10), 2, 20);
        t.add_at(base + Duration::from_millis(10), 3, 30);
        t.add_at(base + Duration::from_millis(50), 4, 40);
        t.cancel(a);
        assert_eq!(t.next_deadline(), Some(base + Duration::from_millis(10)));
        assert_eq!(t.pop_expired(base), None);
        let now = base + Duration::from_millis(40);
        assert_eq!(t.pop_expired(now), Some((2, 20)));
        assert_eq!(t.pop_expired(now), Some((3, 30)));
        assert_eq!(t.pop_expired(now), None);
        assert_eq!(t.len(), 1);
        t.cancel_owner(4);
        assert!(t.is_empty());
    }

    #[test]
    fn timeout_honours_resolution() {
        let mut t = Timers::new();
        let base = Instant::now();
        assert_eq!(t.poll_timeout(base, None), None);
        t.add_at(base + Duration::from_millis(130), 1, 0);
        assert_eq!(t.poll_timeout(base, None), Some(Duration::from_millis(130)));
        assert_eq!(
            t.poll_timeout(base, Some(Duration::from_millis(100))),
            Some(Duration::from_millis(200))
        );
        // Overdue timers fire at once.
        assert_eq!(
            t.poll_timeout(
                base + Duration::from_secs(1),
                Some(Duration::from_millis(100))
            ),
            Some(Duration::ZERO)
        );
    }
}
