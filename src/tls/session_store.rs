//! The shared TLS session cache (`ssl_session_cache shared:NAME:SIZE`): a
//! table of serialized sessions inside a shared-memory zone, used by every
//! worker, so a session made in one worker resumes in any other.
//!
//! It knows nothing of OpenSSL: the TLS code serializes a session with
//! `i2d_SSL_SESSION` outside the lock, calls [`SessionStore::store`] from its
//! new-session callback, [`SessionStore::fetch`] from its get-session
//! callback (then `d2i_SSL_SESSION` outside the lock) and
//! [`SessionStore::remove`] from its remove-session callback. Time is passed
//! in as unix seconds, so there is no clock in here.
//!
//! Behaviour follows nginx's shared cache:
//! - sessions whose DER is larger than [`MAX_SESSION_SIZE`] are not cached,
//!   nor are session ids longer than 32 bytes;
//! - each insert first drops up to two expired sessions from the old end;
//! - when the zone is full, the oldest sessions (by insertion, as nginx's
//!   expire queue: a resumption does not refresh a session) are evicted
//!   until the new one fits (so nginx's `could not allocate new session`
//!   cannot happen: a zone always holds at least the largest session);
//! - a lookup of an expired session removes it;
//! - the zone also holds the three session ticket keys nginx shares between
//!   workers when no `ssl_session_ticket_key` is configured
//!   ([`SessionStore::sync_ticket_keys`]).
//!
//! Sessions are keyed by id and by the session-id context of the server
//! that made them (servers may share one zone; OpenSSL refuses a session
//! from another context anyway). The context is kept as a 64-bit
//! fingerprint: a false match needs both a 64-bit collision and the same
//! random session id, and OpenSSL would still reject the session.
//!
//! Memory layout. nginx gets "about 4000 sessions per megabyte" from one
//! small allocation per session; with a slab allocator per-session overhead
//! on 64-bit is well above that. Here the data area is a ring buffer of
//! variable-length records (a log-structured allocator): records are
//! appended at the head and reclaimed from the tail, which is exactly the
//! oldest-first eviction order, so there is no fragmentation and no
//! per-block waste. A session of 200 bytes with a 32-byte id takes 256
//! bytes plus a 4-byte hash bucket: 1 MB holds about 4030 of them. Removing
//! a session in the middle (explicit remove, replacement, expired lookup)
//! unlinks it and marks it dead; its bytes come back when the tail passes.
//!
//! ```text
//! zone data: | header | buckets: u32 × n | ring of records ............ |
//! record:    | der_len u16 | flags u8 | id_len u8 | next u32 |
//!            | expires i64 | ctx fingerprint u64 | id | der | pad to 4 |
//! ```
//! `next` chains records of one hash bucket (ring offset + 1; 0 ends). A
//! padding record (flag PAD, its length in `der_len`) fills the end of the
//! ring when the next record does not fit there.
//!
//! Crash safety: every change sets a dirty mark in the header first and
//! clears it last. A worker killed while holding the lock leaves the mark
//! set; the next locker (which gets the robust mutex back) finds it and
//! empties the cache, which costs only full handshakes, never a corrupted
//! session or a wedged lock.

use std::io;

use crate::shm::{Guard, Zone};

/// nginx's `NGX_SSL_MAX_SESSION_SIZE`: larger sessions are not cached.
pub const MAX_SESSION_SIZE: usize = 8192;
/// Longest session id cached (SSLv3/TLS ids are 1 to 32 bytes).
pub const MAX_ID_LEN: usize = 32;

const MAGIC: u64 = 0x5053_544e_5353_4331; // "PSTNSSC1"

// Header fields (offsets into the zone's data area).
const H_MAGIC: usize = 0;
const H_DATA_LEN: usize = 8;
const H_DIRTY: usize = 16;
const H_BUCKETS: usize = 20;
const H_RING_OFF: usize = 24;
const H_RING_CAP: usize = 28;
const H_HEAD: usize = 32;
const H_TAIL: usize = 36;
const H_USED: usize = 40;
const H_COUNT: usize = 44;
const H_STATS: usize = 48;
const N_STATS: usize = 8;
const H_TICKET_KEYS: usize = H_STATS + 8 * N_STATS;
const TICKET_KEY_LEN: usize = 16 + 32 + 32 + 8;
const HEADER_LEN: usize = H_TICKET_KEYS + 3 * TICKET_KEY_LEN;

// Counters, in the order of `H_STATS`.
const S_STORED: usize = 0;
const S_HITS: usize = 1;
const S_MISSES: usize = 2;
const S_EXPIRED: usize = 3;
const S_EVICTED: usize = 4;
const S_REMOVED: usize = 5;
const S_REPAIRS: usize = 6;
const S_NOT_CACHED: usize = 7;

// Record fields (offsets from the record start).
const R_DER_LEN: usize = 0;
const R_FLAGS: usize = 2;
const R_ID_LEN: usize = 3;
const R_NEXT: usize = 4;
const R_EXPIRES: usize = 8;
const R_CTX: usize = 16;
const R_ID: usize = 24;
const RECORD_HEADER: usize = R_ID;

const F_DEAD: u8 = 0;
const F_LIVE: u8 = 1;
const F_PAD: u8 = 2;

/// Average footprint assumed when sizing the hash index: a 256-byte record
/// (32-byte id, ~200-byte DER) plus its bucket.
const BUCKET_PER_BYTES: usize = 260;

const MAX_RECORD: usize = round4(RECORD_HEADER + MAX_ID_LEN + MAX_SESSION_SIZE);

const fn round4(n: usize) -> usize {
    (n + 3) & !3
}

/// What [`SessionStore::store`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored,
    /// DER larger than [`MAX_SESSION_SIZE`], or an empty or over-long id:
    /// silently not cached, as nginx.
    NotCached,
}

/// Counters kept in the zone (shared by all workers, kept across reloads
/// with the zone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Sessions currently cached.
    pub sessions: u64,
    pub stored: u64,
    pub hits: u64,
    pub misses: u64,
    /// Removed because their time was up (on insert or on lookup).
    pub expired: u64,
    /// Removed unexpired to make room.
    pub evicted: u64,
    /// Removed on request.
    pub removed: u64,
    /// Times the cache was emptied after a holder died mid-update.
    pub repairs: u64,
    /// Refused as too large (or with a bad id).
    pub not_cached: u64,
    /// Bytes of the record ring in use and in total.
    pub used_bytes: u64,
    pub capacity_bytes: u64,
}

/// A session ticket key shared by all workers (nginx's random keys when
/// `ssl_session_ticket_key` is not set and a shared cache is): 80 bytes
/// of key material, and the time until which it is needed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TicketKey {
    pub name: [u8; 16],
    pub hmac_key: [u8; 32],
    pub aes_key: [u8; 32],
    /// Unix seconds; 0 means "not initialised".
    pub expire: i64,
}

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("TicketKey")
            .field("expire", &self.expire)
            .finish_non_exhaustive()
    }
}

impl TicketKey {
    const EMPTY: TicketKey = TicketKey {
        name: [0; 16],
        hmac_key: [0; 32],
        aes_key: [0; 32],
        expire: 0,
    };

    fn from_random(buf: &[u8; 80], expire: i64) -> TicketKey {
        let mut k = TicketKey {
            expire,
            ..TicketKey::EMPTY
        };
        k.name.copy_from_slice(&buf[..16]);
        k.hmac_key.copy_from_slice(&buf[16..48]);
        k.aes_key.copy_from_slice(&buf[48..80]);
        k
    }
}

/// A handle on the session cache in one zone; cheap to clone, usable in
/// the master and in every worker forked after [`SessionStore::attach`].
#[derive(Debug, Clone)]
pub struct SessionStore {
    zone: Zone,
}

impl SessionStore {
    /// Use `zone` as a session cache, laying it out if it is new (or held
    /// something else). A zone kept across a reload keeps its sessions.
    pub fn attach(zone: Zone) -> io::Result<SessionStore> {
        if Geometry::for_data_len(zone.data_len()).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "shared memory zone \"{}\" is too small for a session cache",
                    zone.name()
                ),
            ));
        }
        let store = SessionStore { zone };
        store.locked(|_| ())?;
        Ok(store)
    }

    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// Cache the DER `der` of the session `id` made under the session-id
    /// context `ctx`, valid until `expires` (unix seconds). A session with
    /// the same id and context is replaced.
    pub fn store(
        &self,
        id: &[u8],
        ctx: &[u8],
        der: &[u8],
        expires: i64,
        now: i64,
    ) -> io::Result<StoreOutcome> {
        self.locked(|c| {
            if id.is_empty() || id.len() > MAX_ID_LEN || der.len() > MAX_SESSION_SIZE {
                c.bump(S_NOT_CACHED);
                return StoreOutcome::NotCached;
            }
            c.begin();
            c.expire(now);
            let ctx = fingerprint(ctx);
            if let Some(found) = c.find(id, ctx) {
                c.unlink(found);
            }
            // Fits: attach made sure the ring holds the largest record.
            let need = round4(RECORD_HEADER + id.len() + der.len());
            let off = c.allocate(need, now);
            c.write_record(off, id, ctx, der, expires);
            c.bump(S_STORED);
            c.commit();
            StoreOutcome::Stored
        })
    }

    /// The DER of the session `id` under `ctx` if cached and not expired at
    /// `now`. An expired session found is removed.
    pub fn fetch(&self, id: &[u8], ctx: &[u8], now: i64) -> io::Result<Option<Vec<u8>>> {
        self.locked(|c| {
            let Some(found) = c.find(id, fingerprint(ctx)) else {
                c.bump(S_MISSES);
                return None;
            };
            let r = found.off;
            if c.rec_i64(r, R_EXPIRES) > now {
                c.bump(S_HITS);
                let start = r + RECORD_HEADER + c.rec_u8(r, R_ID_LEN) as usize;
                let len = c.rec_u16(r, R_DER_LEN) as usize;
                return Some(c.ring()[start..start + len].to_vec());
            }
            c.begin();
            c.unlink(found);
            c.bump(S_EXPIRED);
            c.bump(S_MISSES);
            c.commit();
            None
        })
    }

    /// Forget the session `id` under `ctx`; true if it was cached.
    pub fn remove(&self, id: &[u8], ctx: &[u8]) -> io::Result<bool> {
        self.locked(|c| {
            let Some(found) = c.find(id, fingerprint(ctx)) else {
                return false;
            };
            c.begin();
            c.unlink(found);
            c.bump(S_REMOVED);
            c.commit();
            true
        })
    }

    pub fn stats(&self) -> io::Result<Stats> {
        self.locked(|c| {
            let s = |i| c.get_u64(H_STATS + 8 * i);
            Stats {
                sessions: c.get_u32(H_COUNT) as u64,
                stored: s(S_STORED),
                hits: s(S_HITS),
                misses: s(S_MISSES),
                expired: s(S_EXPIRED),
                evicted: s(S_EVICTED),
                removed: s(S_REMOVED),
                repairs: s(S_REPAIRS),
                not_cached: s(S_NOT_CACHED),
                used_bytes: c.get_u32(H_USED) as u64,
                capacity_bytes: c.g.ring_cap as u64,
            }
        })
    }

    /// nginx's rotation of the shared ticket keys, done under the zone's
    /// lock: the first caller makes the current key (and a next key equal to
    /// it); when the previous key is no longer needed (`expire < now`) the
    /// current becomes previous, the next becomes current and a fresh next
    /// key is made; the current key's expiry is pushed to `now + timeout`.
    /// Returns `[current, previous]` for the worker's SSL_CTX.
    ///
    /// `fill_random` must fill its buffer with 80 random bytes
    /// (`RAND_bytes`) and return false if it could not; then nothing
    /// changes and `None` is returned (nginx logs `RAND_bytes() failed`).
    ///
    /// A worker need not call this when its own copy has
    /// `current.expire >= now + timeout && previous.expire >= now`.
    pub fn sync_ticket_keys(
        &self,
        now: i64,
        timeout: i64,
        mut fill_random: impl FnMut(&mut [u8; 80]) -> bool,
    ) -> io::Result<Option<[TicketKey; 2]>> {
        self.locked(|c| {
            let expire = now.saturating_add(timeout);
            let mut keys = [0, 1, 2].map(|i| c.ticket_key(i));
            let mut buf = [0u8; 80];
            if keys[0].expire == 0 {
                if !fill_random(&mut buf) {
                    return None;
                }
                keys[0] = TicketKey::from_random(&buf, expire);
                keys[2] = keys[0];
            }
            if keys[1].expire < now {
                if !fill_random(&mut buf) {
                    return None;
                }
                keys[1] = keys[0];
                keys[0] = keys[2];
                keys[2] = TicketKey::from_random(&buf, 0);
            }
            buf.fill(0);
            if expire > keys[0].expire {
                keys[0].expire = expire;
            }
            c.begin();
            for (i, k) in keys.iter().enumerate() {
                c.put_ticket_key(i, k);
            }
            c.commit();
            Some([keys[0], keys[1]])
        })
    }

    /// Run `f` on the cache with the zone locked, after repairing or laying
    /// out the cache if needed.
    fn locked<T>(&self, f: impl FnOnce(&mut Cache) -> T) -> io::Result<T> {
        let mut guard = self.zone.lock()?;
        let mut cache = Cache::open(&mut guard);
        Ok(f(&mut cache))
    }

    /// Take the lock, mark the cache mid-update and never return: the
    /// state a worker killed in the middle of a store leaves behind.
    #[cfg(test)]
    fn hang_mid_update(&self) -> ! {
        let mut guard = self.zone.lock().expect("lock");
        let mut c = Cache::open(&mut guard);
        c.begin();
        // Scribble over the index as a half-done update might.
        let b = c.g.buckets_off;
        c.d[b..b + 4].copy_from_slice(&0x00ab_cdefu32.to_le_bytes());
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

/// Where things are in a data area of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    buckets_off: usize,
    n_buckets: usize,
    ring_off: usize,
    ring_cap: usize,
}

impl Geometry {
    fn for_data_len(data_len: usize) -> Option<Geometry> {
        let n_buckets = (data_len / BUCKET_PER_BYTES).max(1);
        let ring_off = round4(HEADER_LEN + 4 * n_buckets);
        let ring_cap = data_len.checked_sub(ring_off)? & !3;
        // Ring offsets are stored in u32 (plus one); the largest session
        // must fit an empty ring.
        if ring_cap < MAX_RECORD || ring_cap >= u32::MAX as usize {
            return None;
        }
        Some(Geometry {
            buckets_off: HEADER_LEN,
            n_buckets,
            ring_off,
            ring_cap,
        })
    }
}

/// A record found by [`Cache::find`], with the link that points at it.
#[derive(Debug, Clone, Copy)]
struct Found {
    off: usize,
    /// Offset of the previous record in the chain, or None if the bucket
    /// itself points at this one.
    prev: Option<usize>,
    bucket: usize,
}

/// The cache's view of a locked data area.
struct Cache<'a> {
    d: &'a mut [u8],
    g: Geometry,
}

impl<'a> Cache<'a> {
    fn open(guard: &'a mut Guard<'_>) -> Cache<'a> {
        let d = guard.data_mut();
        let g = Geometry::for_data_len(d.len()).expect("checked by attach");
        let mut c = Cache { d, g };
        let laid_out = c.get_u64(H_MAGIC) == MAGIC
            && c.get_u64(H_DATA_LEN) == c.d.len() as u64
            && c.get_u32(H_BUCKETS) as usize == g.n_buckets
            && c.get_u32(H_RING_OFF) as usize == g.ring_off
            && c.get_u32(H_RING_CAP) as usize == g.ring_cap;
        if !laid_out {
            c.d[..HEADER_LEN].fill(0);
            c.put_u64(H_MAGIC, MAGIC);
            c.put_u64(H_DATA_LEN, c.d.len() as u64);
            c.put_u32(H_BUCKETS, g.n_buckets as u32);
            c.put_u32(H_RING_OFF, g.ring_off as u32);
            c.put_u32(H_RING_CAP, g.ring_cap as u32);
            c.reset();
        } else if c.get_u32(H_DIRTY) != 0 {
            // A holder died mid-update (the robust mutex told the locker, and
            // the mark says the data was being changed): start empty.
            c.reset();
            c.bump(S_REPAIRS);
        }
        c
    }

    /// Empty the cache (sessions and ticket keys), keeping the counters.
    fn reset(&mut self) {
        let b = self.g.buckets_off;
        self.d[b..b + 4 * self.g.n_buckets].fill(0);
        // Sessions are secrets: leave none behind, even unreachable.
        self.ring_mut().fill(0);
        for f in [H_HEAD, H_TAIL, H_USED, H_COUNT] {
            self.put_u32(f, 0);
        }
        self.d[H_TICKET_KEYS..HEADER_LEN].fill(0);
        self.put_u32(H_DIRTY, 0);
    }

    fn begin(&mut self) {
        self.put_u32(H_DIRTY, 1);
    }

    fn commit(&mut self) {
        self.put_u32(H_DIRTY, 0);
    }

    // --- plain fields ---------------------------------------------------

    fn get_u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.d[at..at + 4].try_into().expect("4 bytes"))
    }
    fn put_u32(&mut self, at: usize, v: u32) {
        self.d[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn get_u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.d[at..at + 8].try_into().expect("8 bytes"))
    }
    fn put_u64(&mut self, at: usize, v: u64) {
        self.d[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn get_i64(&self, at: usize) -> i64 {
        self.get_u64(at) as i64
    }
    fn put_i64(&mut self, at: usize, v: i64) {
        self.put_u64(at, v as u64);
    }
    fn bump(&mut self, stat: usize) {
        let at = H_STATS + 8 * stat;
        self.put_u64(at, self.get_u64(at).wrapping_add(1));
    }

    fn ticket_key(&self, i: usize) -> TicketKey {
        let at = H_TICKET_KEYS + i * TICKET_KEY_LEN;
        let mut k = TicketKey::EMPTY;
        k.name.copy_from_slice(&self.d[at..at + 16]);
        k.hmac_key.copy_from_slice(&self.d[at + 16..at + 48]);
        k.aes_key.copy_from_slice(&self.d[at + 48..at + 80]);
        k.expire = self.get_i64(at + 80);
        k
    }

    fn put_ticket_key(&mut self, i: usize, k: &TicketKey) {
        let at = H_TICKET_KEYS + i * TICKET_KEY_LEN;
        self.d[at..at + 16].copy_from_slice(&k.name);
        self.d[at + 16..at + 48].copy_from_slice(&k.hmac_key);
        self.d[at + 48..at + 80].copy_from_slice(&k.aes_key);
        self.put_i64(at + 80, k.expire);
    }

    // --- hash index -----------------------------------------------------

    fn bucket_at(&self, bucket: usize) -> usize {
        self.g.buckets_off + 4 * bucket
    }

    fn bucket_of(&self, id: &[u8], ctx: u64) -> usize {
        let h = fnv1a(fnv1a(FNV_OFFSET, &ctx.to_le_bytes()), id);
        (h % self.g.n_buckets as u64) as usize
    }

    fn find(&self, id: &[u8], ctx: u64) -> Option<Found> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return None;
        }
        let bucket = self.bucket_of(id, ctx);
        let mut prev = None;
        let mut link = self.get_u32(self.bucket_at(bucket));
        while link != 0 {
            let r = link as usize - 1;
            let id_len = self.rec_u8(r, R_ID_LEN) as usize;
            if self.rec_u64(r, R_CTX) == ctx && self.ring()[r + R_ID..r + R_ID + id_len] == *id {
                return Some(Found {
                    off: r,
                    prev,
                    bucket,
                });
            }
            prev = Some(r);
            link = self.rec_u32(r, R_NEXT);
        }
        None
    }

    /// Take a live record out of the index and mark it dead; its bytes are
    /// reclaimed when the ring's tail passes it.
    fn unlink(&mut self, f: Found) {
        let next = self.rec_u32(f.off, R_NEXT);
        match f.prev {
            Some(p) => self.put_rec_u32(p, R_NEXT, next),
            None => {
                let at = self.bucket_at(f.bucket);
                self.put_u32(at, next);
            }
        }
        self.ring_mut()[f.off + R_FLAGS] = F_DEAD;
        // Sessions are secrets: wipe the DER of a dropped one at once.
        let start = f.off + RECORD_HEADER;
        let len = self.rec_u8(f.off, R_ID_LEN) as usize + self.rec_u16(f.off, R_DER_LEN) as usize;
        self.ring_mut()[start..start + len].fill(0);
        self.put_u32(H_COUNT, self.get_u32(H_COUNT) - 1);
    }

    // --- ring of records ------------------------------------------------

    fn ring(&self) -> &[u8] {
        &self.d[self.g.ring_off..self.g.ring_off + self.g.ring_cap]
    }
    fn ring_mut(&mut self) -> &mut [u8] {
        let (o, n) = (self.g.ring_off, self.g.ring_cap);
        &mut self.d[o..o + n]
    }
    fn rec_u8(&self, r: usize, f: usize) -> u8 {
        self.ring()[r + f]
    }
    fn rec_u16(&self, r: usize, f: usize) -> u16 {
        u16::from_le_bytes(self.ring()[r + f..r + f + 2].try_into().expect("2 bytes"))
    }
    fn rec_u32(&self, r: usize, f: usize) -> u32 {
        self.get_u32(self.g.ring_off + r + f)
    }
    fn put_rec_u32(&mut self, r: usize, f: usize, v: u32) {
        self.put_u32(self.g.ring_off + r + f, v);
    }
    fn rec_u64(&self, r: usize, f: usize) -> u64 {
        self.get_u64(self.g.ring_off + r + f)
    }
    fn rec_i64(&self, r: usize, f: usize) -> i64 {
        self.rec_u64(r, f) as i64
    }

    /// Bytes the record at `r` takes in the ring.
    fn record_len(&self, r: usize) -> usize {
        let der_len = self.rec_u16(r, R_DER_LEN) as usize;
        if self.rec_u8(r, R_FLAGS) == F_PAD {
            der_len
        } else {
            round4(RECORD_HEADER + self.rec_u8(r, R_ID_LEN) as usize + der_len)
        }
    }

    /// Drop the oldest record (live, dead or padding), counting a live one
    /// as expired or evicted.
    fn pop_tail(&mut self, now: i64) {
        let tail = self.get_u32(H_TAIL) as usize;
        let len = self.record_len(tail);
        if self.rec_u8(tail, R_FLAGS) == F_LIVE {
            let id_len = self.rec_u8(tail, R_ID_LEN) as usize;
            let id = self.ring()[tail + R_ID..tail + R_ID + id_len].to_vec();
            let found = self.find(&id, self.rec_u64(tail, R_CTX));
            let found = found
                .filter(|f| f.off == tail)
                .expect("live record is indexed");
            let expired = self.rec_i64(tail, R_EXPIRES) <= now;
            self.unlink(found);
            self.bump(if expired { S_EXPIRED } else { S_EVICTED });
        }
        let used = self.get_u32(H_USED) as usize - len;
        let mut tail = tail + len;
        if tail == self.g.ring_cap {
            tail = 0;
        }
        self.put_u32(H_USED, used as u32);
        self.put_u32(H_TAIL, tail as u32);
        if used == 0 {
            self.put_u32(H_HEAD, 0);
            self.put_u32(H_TAIL, 0);
        }
    }

    /// Skip dead and padding records at the tail so that it points at the
    /// oldest live session (or the ring is empty).
    fn skip_dead_tail(&mut self, now: i64) {
        while self.get_u32(H_USED) != 0 {
            let tail = self.get_u32(H_TAIL) as usize;
            if self.rec_u8(tail, R_FLAGS) == F_LIVE {
                break;
            }
            self.pop_tail(now);
        }
    }

    /// nginx's expiry on insert: drop the oldest session if expired, and
    /// the next one too if it is also expired.
    fn expire(&mut self, now: i64) {
        for _ in 0..2 {
            self.skip_dead_tail(now);
            if self.get_u32(H_USED) == 0 {
                return;
            }
            let tail = self.get_u32(H_TAIL) as usize;
            if self.rec_i64(tail, R_EXPIRES) > now {
                return;
            }
            self.pop_tail(now);
        }
    }

    /// Make room for `need` contiguous bytes (a multiple of 4, at most the
    /// ring's size) at the head, evicting the oldest records as needed.
    fn allocate(&mut self, need: usize, now: i64) -> usize {
        let cap = self.g.ring_cap;
        loop {
            let used = self.get_u32(H_USED) as usize;
            let head = self.get_u32(H_HEAD) as usize;
            let tail = self.get_u32(H_TAIL) as usize;
            if used == 0 {
                self.put_u32(H_HEAD, 0);
                self.put_u32(H_TAIL, 0);
                return 0;
            }
            if head > tail {
                // Free space is [head, cap) and [0, tail).
                if cap - head >= need {
                    return head;
                }
                let pad = cap - head;
                let ring = self.ring_mut();
                ring[head + R_DER_LEN..head + R_DER_LEN + 2]
                    .copy_from_slice(&(pad as u16).to_le_bytes());
                ring[head + R_FLAGS] = F_PAD;
                self.put_u32(H_USED, (used + pad) as u32);
                self.put_u32(H_HEAD, 0);
            } else if tail - head >= need {
                // Free space is [head, tail) (none if full: head == tail).
                return head;
            } else {
                self.pop_tail(now);
            }
        }
    }

    fn write_record(&mut self, r: usize, id: &[u8], ctx: u64, der: &[u8], expires: i64) {
        let len = round4(RECORD_HEADER + id.len() + der.len());
        let bucket = self.bucket_of(id, ctx);
        let next = self.get_u32(self.bucket_at(bucket));
        let ring = self.ring_mut();
        let rec = &mut ring[r..r + len];
        rec[R_DER_LEN..R_DER_LEN + 2].copy_from_slice(&(der.len() as u16).to_le_bytes());
        rec[R_FLAGS] = F_LIVE;
        rec[R_ID_LEN] = id.len() as u8;
        rec[R_NEXT..R_NEXT + 4].copy_from_slice(&next.to_le_bytes());
        rec[R_EXPIRES..R_EXPIRES + 8].copy_from_slice(&expires.to_le_bytes());
        rec[R_CTX..R_CTX + 8].copy_from_slice(&ctx.to_le_bytes());
        rec[R_ID..R_ID + id.len()].copy_from_slice(id);
        rec[R_ID + id.len()..R_ID + id.len() + der.len()].copy_from_slice(der);
        rec[R_ID + id.len() + der.len()..].fill(0);
        let at = self.bucket_at(bucket);
        self.put_u32(at, r as u32 + 1);
        let mut head = r + len;
        if head == self.g.ring_cap {
            head = 0;
        }
        self.put_u32(H_HEAD, head as u32);
        self.put_u32(H_USED, self.get_u32(H_USED) + len as u32);
        self.put_u32(H_COUNT, self.get_u32(H_COUNT) + 1);
    }
}

#[cfg(test)]
impl SessionStore {
    /// Walk the ring from tail to head and the index, checking that they
    /// agree; returns the number of live sessions.
    fn check_invariants(&self) -> usize {
        self.locked(|c| {
            let cap = c.g.ring_cap;
            let used = c.get_u32(H_USED) as usize;
            let (head, tail) = (c.get_u32(H_HEAD) as usize, c.get_u32(H_TAIL) as usize);
            assert!(used <= cap && head < cap && tail < cap);
            let (mut at, mut walked, mut live) = (tail, 0, 0);
            while walked < used {
                let len = c.record_len(at);
                assert!(
                    len >= 4 && len % 4 == 0 && at + len <= cap,
                    "record at {at}"
                );
                if c.rec_u8(at, R_FLAGS) == F_LIVE {
                    let id_len = c.rec_u8(at, R_ID_LEN) as usize;
                    let id = c.ring()[at + R_ID..at + R_ID + id_len].to_vec();
                    let f = c.find(&id, c.rec_u64(at, R_CTX)).expect("indexed");
                    assert_eq!(f.off, at);
                    live += 1;
                }
                walked += len;
                at = (at + len) % cap;
            }
            assert_eq!(walked, used);
            assert_eq!(at, if used == 0 { tail } else { head });
            let mut indexed = 0;
            for b in 0..c.g.n_buckets {
                let mut link = c.get_u32(c.bucket_at(b));
                while link != 0 {
                    assert_eq!(c.rec_u8(link as usize - 1, R_FLAGS), F_LIVE);
                    indexed += 1;
                    link = c.rec_u32(link as usize - 1, R_NEXT);
                }
            }
            assert_eq!(indexed, live);
            assert_eq!(c.get_u32(H_COUNT) as usize, live);
            assert_eq!(c.get_u32(H_DIRTY), 0);
            live
        })
        .expect("lock")
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The 64-bit fingerprint a session-id context is stored as.
fn fingerprint(ctx: &[u8]) -> u64 {
    fnv1a(fnv1a(FNV_OFFSET, &(ctx.len() as u64).to_le_bytes()), ctx)
}

#[cfg(test)]
mod tests;
