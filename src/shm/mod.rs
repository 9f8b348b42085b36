//! Shared-memory zones: named blocks of memory the master maps before it
//! forks the workers, so that every worker sees the same bytes.
//!
//! Life of a zone, as nginx does it:
//! - At startup the master calls [`ZoneSet::reconcile`] on an empty set with
//!   the zones of the configuration (`conf::MailConf::shm_zones`); each zone
//!   becomes an anonymous `MAP_SHARED` mapping of the configured size.
//! - Workers are forked afterwards and inherit the mappings at the same
//!   addresses; they never create zones.
//! - On reload the master reconciles the running set with the new
//!   configuration: a zone whose name and size are unchanged is kept (same
//!   memory, same contents: sessions survive the reload), a zone whose size
//!   changed is created anew and starts empty, a zone no longer configured
//!   is unmapped in the master once the old set is dropped (old workers keep
//!   their own inherited mapping until they exit). If creating any zone
//!   fails, the reload fails and the running set is left untouched.
//!
//! Every zone carries a process-shared robust mutex ([`Zone::lock`]): if a
//! worker dies while holding it, the next locker gets the lock together
//! with [`Guard::owner_died`] so that it can check and repair the data (the
//! users of a zone keep a "dirty" mark for that purpose).
//!
//! Inside a zone, [`slots::SlotPool`] lays out equal-sized slots for users
//! that need them.
//!
//! Layout of a zone: the mutex, the pid of the current holder (for the
//! master's "was locked by" alert), then the data area that users such as
//! `tls::session_store` carve up themselves.

pub mod slots;
mod sys;

#[cfg(test)]
pub(crate) use sys::testing;

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::conf::model::ShmZone;

pub use sys::Acquired;

/// Offset of the holder's pid (an atomic i32) in the zone.
const HOLDER_OFFSET: usize = sys::MUTEX_SPACE;
/// Bytes at the start of a zone used by the zone itself.
pub const ZONE_HEADER: usize = 128;

/// One named shared-memory zone. Cloning is cheap and shares the mapping,
/// which is unmapped (in this process) when the last clone is dropped.
#[derive(Clone)]
pub struct Zone {
    inner: Arc<Inner>,
    kept: bool,
}

struct Inner {
    name: String,
    map: sys::Mapping,
    mutex: sys::RawMutex,
}

impl Zone {
    /// Map a new zone of `size` bytes (the whole zone, header included).
    pub fn create(name: &str, size: usize) -> Result<Zone, ShmError> {
        let fail = |what: ShmFailure, err| ShmError {
            zone: name.to_string(),
            size,
            what,
            err,
        };
        if size == 0 {
            return Err(fail(ShmFailure::ZeroSize, None));
        }
        if size <= ZONE_HEADER {
            return Err(fail(ShmFailure::TooSmall, None));
        }
        let map = sys::Mapping::new(size).map_err(|e| fail(ShmFailure::Mmap, Some(e)))?;
        let mutex = sys::RawMutex::init(&map).map_err(|e| fail(ShmFailure::Mutex, Some(e)))?;
        Ok(Zone {
            inner: Arc::new(Inner {
                name: name.to_string(),
                map,
                mutex,
            }),
            kept: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Size of the whole zone as configured.
    pub fn size(&self) -> usize {
        self.inner.map.len()
    }

    /// Size of the data area a [`Guard`] exposes.
    pub fn data_len(&self) -> usize {
        self.size() - ZONE_HEADER
    }

    /// True if this zone came unchanged from the previous set (its
    /// contents are those the old workers left), false if it was created
    /// by the reconcile that produced its set.
    pub fn was_kept(&self) -> bool {
        self.kept
    }

    /// True if both handles share the same memory.
    pub fn same_memory(&self, other: &Zone) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Take the zone's lock, blocking. Relocking from the thread that holds
    /// it is an error (`EDEADLK`) rather than a deadlock.
    pub fn lock(&self) -> io::Result<Guard<'_>> {
        let acquired = self.inner.mutex.lock()?;
        self.holder().store(sys::getpid(), Ordering::Release);
        // SAFETY: we hold the zone's mutex until the guard drops, and the
        // guard is the only way to reach the data area, so this slice is
        // exclusive for its lifetime. The range is inside the mapping
        // (`create` guarantees size > ZONE_HEADER).
        let data = unsafe { sys::slice_mut(&self.inner.map, ZONE_HEADER, self.data_len()) };
        Ok(Guard {
            zone: self,
            data,
            acquired,
            _not_send: PhantomData,
        })
    }

    /// True if the process `pid` held this zone's lock when last seen, as
    /// the master checks after reaping a worker that exited abnormally
    /// (nginx then logs `shared memory zone "NAME" was locked by PID` at
    /// alert level). The lock itself needs no help: the next locker
    /// recovers it.
    pub fn locked_by(&self, pid: i32) -> bool {
        pid != 0 && self.holder().load(Ordering::Acquire) == pid
    }

    fn holder(&self) -> &std::sync::atomic::AtomicI32 {
        sys::atomic_i32(&self.inner.map, HOLDER_OFFSET)
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Zone")
            .field("name", &self.inner.name)
            .field("size", &self.size())
            .field("kept", &self.kept)
            .finish()
    }
}

/// Exclusive access to a zone's data area while the lock is held.
pub struct Guard<'a> {
    zone: &'a Zone,
    data: &'a mut [u8],
    acquired: Acquired,
    /// A pthread mutex must be unlocked by the thread that locked it.
    _not_send: PhantomData<*const ()>,
}

impl Guard<'_> {
    /// The previous holder died while holding the lock: the data may be
    /// half-updated and must be checked or reset by the caller.
    pub fn owner_died(&self) -> bool {
        self.acquired == Acquired::OwnerDied
    }

    pub fn data(&self) -> &[u8] {
        self.data
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        self.data
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.zone.holder().store(0, Ordering::Release);
        self.zone.inner.mutex.unlock();
    }
}

/// The zones of one configuration, owned by the master.
#[derive(Debug, Default, Clone)]
pub struct ZoneSet {
    zones: Vec<Zone>,
}

impl ZoneSet {
    pub fn new() -> ZoneSet {
        ZoneSet::default()
    }

    /// The set for a (new) configuration: zones with the same name and size
    /// as in `self` are kept, others are created. `self` is not changed, so
    /// a failure leaves the running set as it was; dropping `self` after
    /// switching to the result unmaps the zones that were not kept.
    pub fn reconcile(&self, wanted: &[ShmZone]) -> Result<ZoneSet, ShmError> {
        let mut zones: Vec<Zone> = Vec::with_capacity(wanted.len());
        for w in wanted {
            if zones.iter().any(|z| z.name() == w.name) {
                continue;
            }
            let zone = match self.get(&w.name).filter(|z| z.size() == w.size) {
                Some(old) => Zone {
                    inner: old.inner.clone(),
                    kept: true,
                },
                None => Zone::create(&w.name, w.size)?,
            };
            zones.push(zone);
        }
        Ok(ZoneSet { zones })
    }

    pub fn get(&self, name: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.name() == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Zone> {
        self.zones.iter()
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// Zones whose lock the dead process `pid` held (see [`Zone::locked_by`]).
    pub fn locked_by(&self, pid: i32) -> impl Iterator<Item = &Zone> {
        self.zones.iter().filter(move |z| z.locked_by(pid))
    }
}

/// What failed when creating a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShmFailure {
    ZeroSize,
    TooSmall,
    Mmap,
    Mutex,
}

/// A zone could not be created; the configuration (or reload) fails.
#[derive(Debug)]
pub struct ShmError {
    pub zone: String,
    pub size: usize,
    pub what: ShmFailure,
    /// The system error, for the log line's errno suffix.
    pub err: Option<io::Error>,
}

impl ShmError {
    /// nginx logs `zero size` at emerg and the system call failures at
    /// alert.
    pub fn is_emerg(&self) -> bool {
        matches!(self.what, ShmFailure::ZeroSize | ShmFailure::TooSmall)
    }
}

/// The message without the errno suffix (the logger adds it from `err`).
impl fmt::Display for ShmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.what {
            ShmFailure::ZeroSize => write!(f, "zero size shared memory zone \"{}\"", self.zone),
            ShmFailure::TooSmall => write!(f, "too small shared memory zone \"{}\"", self.zone),
            ShmFailure::Mmap => write!(f, "mmap(MAP_ANON|MAP_SHARED, {}) failed", self.size),
            ShmFailure::Mutex => write!(
                f,
                "pthread_mutex_init() for shared memory zone \"{}\" failed",
                self.zone
            ),
        }
    }
}

impl std::error::Error for ShmError {}

#[cfg(test)]
mod tests;
