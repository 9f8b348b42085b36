//! The worker's pool of I/O buffers, so that an idle session holds none.
//!
//! A session takes a fixed-size buffer ([`PoolBuf`]) when it reads and
//! gives it back once the buffer is empty and the socket would block: the
//! client command buffer while waiting for the next command, each relay
//! direction while idle. Buffers go back to a free list and are handed out
//! again, so the steady state allocates nothing; the pool grows to the
//! peak of buffers in use at once and drops free buffers beyond that of
//! the buffers in use (and a small reserve), so a burst does not pin its
//! memory for ever.
//!
//! A worker is one thread, so the pool is a thread-local (each test
//! thread gets its own).

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// Free buffers kept whatever the load.
const MIN_FREE: usize = 16;

/// Reply buffers larger than this are not kept (a long reply, such as a
/// big capability list, should not stay with every session).
const MAX_REPLY_CAPACITY: usize = 4096;

/// Capacity of a reply buffer when the pool has none free.
pub const REPLY_CAPACITY: usize = 512;

/// Buffers of one size.
#[derive(Debug, Default)]
struct Class {
    size: usize,
    free: Vec<Box<[u8]>>,
    in_use: usize,
}

/// Free buffers by size (a worker sees few sizes: client buffers and
/// `proxy_buffer`), and reply vectors.
#[derive(Debug, Default)]
pub struct Pool {
    classes: Vec<Class>,
    replies: Vec<Vec<u8>>,
    replies_in_use: usize,
}

impl Pool {
    fn class(&mut self, size: usize) -> &mut Class {
        let i = match self.classes.iter().position(|c| c.size == size) {
            Some(i) => i,
            None => {
                self.classes.push(Class {
                    size,
                    ..Class::default()
                });
                self.classes.len() - 1
            }
        };
        &mut self.classes[i]
    }

    /// A buffer of `size` bytes (contents unspecified).
    pub fn take(&mut self, size: usize) -> Box<[u8]> {
        let class = self.class(size);
        class.in_use += 1;
        class
            .free
            .pop()
            .unwrap_or_else(|| vec![0u8; size].into_boxed_slice())
    }

    /// Give back a buffer from [`Pool::take`].
    pub fn give(&mut self, buf: Box<[u8]>) {
        let class = self.class(buf.len());
        class.in_use = class.in_use.saturating_sub(1);
        if class.free.len() < class.in_use.max(MIN_FREE) {
            class.free.push(buf);
        }
    }

    /// An empty vector for replies.
    pub fn take_reply(&mut self) -> Vec<u8> {
        self.replies_in_use += 1;
        self.replies
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(REPLY_CAPACITY))
    }

    /// Give back a reply vector (emptied here).
    pub fn give_reply(&mut self, mut v: Vec<u8>) {
        self.replies_in_use = self.replies_in_use.saturating_sub(1);
        if v.capacity() == 0 || v.capacity() > MAX_REPLY_CAPACITY {
            return;
        }
        if self.replies.len() < self.replies_in_use.max(MIN_FREE) {
            v.clear();
            self.replies.push(v);
        }
    }

    /// Free buffers of `size` bytes (for tests and diagnostics).
    pub fn free_count(&self, size: usize) -> usize {
        self.classes
            .iter()
            .find(|c| c.size == size)
            .map_or(0, |c| c.free.len())
    }

    /// Reply vectors handed out and not given back.
    pub fn replies_in_use(&self) -> usize {
        self.replies_in_use
    }

    /// Buffers of `size` bytes handed out and not given back.
    pub fn in_use(&self, size: usize) -> usize {
        self.classes
            .iter()
            .find(|c| c.size == size)
            .map_or(0, |c| c.in_use)
    }
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// Run `f` on this worker's pool.
pub fn with<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
    POOL.with(|p| f(&mut p.borrow_mut()))
}

/// Give back a reply vector to this worker's pool.
pub fn give_reply(v: Vec<u8>) {
    // During thread teardown the pool may be gone: the vector is dropped.
    let _ = POOL.try_with(|p| p.borrow_mut().give_reply(v));
}

/// A fixed-size buffer that holds memory only while it is in use: it
/// reads as empty when not held, [`PoolBuf::get`] takes a buffer from the
/// pool and [`PoolBuf::release`] gives it back.
#[derive(Debug)]
pub struct PoolBuf {
    buf: Option<Box<[u8]>>,
    size: usize,
}

impl PoolBuf {
    /// A buffer of `size` bytes (at least one), not yet taken.
    pub fn new(size: usize) -> PoolBuf {
        PoolBuf {
            buf: None,
            size: size.max(1),
        }
    }

    /// The whole buffer, taken from the pool if not held.
    pub fn get(&mut self) -> &mut [u8] {
        let size = self.size;
        self.buf.get_or_insert_with(|| with(|p| p.take(size)))
    }

    /// Give the buffer back to the pool (its contents are lost).
    pub fn release(&mut self) {
        if let Some(b) = self.buf.take() {
            let _ = POOL.try_with(|p| p.borrow_mut().give(b));
        }
    }

    pub fn is_held(&self) -> bool {
        self.buf.is_some()
    }

    /// The size of the buffer when held.
    pub fn capacity(&self) -> usize {
        self.size
    }
}

impl Deref for PoolBuf {
    type Target = [u8];
    /// The held buffer, or nothing.
    fn deref(&self) -> &[u8] {
        self.buf.as_deref().unwrap_or_default()
    }
}

impl DerefMut for PoolBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.buf {
            Some(b) => b,
            None => &mut [],
        }
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_not_reallocated() {
        let mut pool = Pool::default();
        let a = pool.take(4096);
        let ptr = a.as_ptr();
        pool.give(a);
        let b = pool.take(4096);
        assert_eq!(b.as_ptr(), ptr);
        assert_eq!(b.len(), 4096);
        assert_eq!(pool.in_use(4096), 1);
        let c = pool.take(1024);
        assert_eq!(c.len(), 1024);
        pool.give(b);
        pool.give(c);
        assert_eq!(pool.free_count(4096), 1);
        assert_eq!(pool.free_count(1024), 1);
        assert_eq!(pool.in_use(4096), 0);
    }

    #[test]
    fn grows_to_the_peak_and_trims_beyond_the_buffers_in_use() {
        let mut pool = Pool::default();
        let taken: Vec<_> = (0..100).map(|_| pool.take(64)).collect();
        assert_eq!(pool.in_use(64), 100);
        let mut taken = taken.into_iter();
        // Half come back: all are kept (as many free as in use).
        for b in taken.by_ref().take(50) {
            pool.give(b);
        }
        assert_eq!(pool.free_count(64), 50);
        // Taking 50 again reuses them all.
        let again: Vec<_> = (0..50).map(|_| pool.take(64)).collect();
        assert_eq!(pool.free_count(64), 0);
        for b in again.into_iter().chain(taken) {
            pool.give(b);
        }
        // Everything is back: only the reserve is kept.
        assert_eq!(pool.in_use(64), 0);
        assert!(pool.free_count(64) <= 50);
        assert!(pool.free_count(64) >= MIN_FREE);
    }

    #[test]
    fn reply_vectors_come_back_empty_and_big_ones_are_dropped() {
        let mut pool = Pool::default();
        let mut v = pool.take_reply();
        assert!(v.capacity() >= REPLY_CAPACITY);
        v.extend_from_slice(b"+OK\r\n");
        let ptr = v.as_ptr();
        pool.give_reply(v);
        let v = pool.take_reply();
        assert!(v.is_empty());
        assert_eq!(v.as_ptr(), ptr);
        let mut big = pool.take_reply();
        big.resize(MAX_REPLY_CAPACITY + 1, 0);
        pool.give_reply(big);
        pool.give_reply(v);
        assert_eq!(pool.replies.len(), 1);
    }

    #[test]
    fn pool_buf_holds_memory_only_while_taken() {
        let mut b = PoolBuf::new(256);
        assert!(!b.is_held());
        assert!(b.is_empty());
        b.get()[0] = 7;
        assert!(b.is_held());
        assert_eq!(b.len(), 256);
        assert_eq!(b[0], 7);
        let before = with(|p| p.free_count(256));
        b.release();
        assert!(!b.is_held());
        assert_eq!(with(|p| p.free_count(256)), before + 1);
        b.get();
        drop(b);
        assert_eq!(with(|p| p.free_count(256)), before + 1);
        assert_eq!(with(|p| p.in_use(256)), 0);
    }
}
