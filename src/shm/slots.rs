//! A fixed-size slot allocator for a region of a zone (for instance the
//! data area of a [`Guard`](super::Guard)): what a later per-key counter
//! table (limits, metrics) needs. Works on offsets in a byte slice, so it
//! needs no `unsafe` and its state is plain bytes in shared memory.
//!
//! nginx carves its zones with a general slab allocator; every user of our
//! zones so far allocates one kind of object, for which an array of
//! equal slots sized when the zone is laid out is simpler and wastes
//! nothing. (The session cache, whose entries vary in length, uses its own
//! ring of records instead; see `tls::session_store`.)
//!
//! ```text
//! | magic u32 | slot_size u32 | slots u32 | free_head u32 | in_use u32 |
//! | bitmap: one bit per slot, set = allocated | slot 0 | slot 1 | ... |
//! ```
//! Free slots are chained through their first four bytes (index + 1;
//! 0 ends the chain).

const MAGIC: u32 = 0x534c_4f54; // "SLOT"
const H_MAGIC: usize = 0;
const H_SLOT_SIZE: usize = 4;
const H_SLOTS: usize = 8;
const H_FREE: usize = 12;
const H_IN_USE: usize = 16;
const HEADER: usize = 20;

/// Slots laid out in a byte region.
pub struct SlotPool<'a> {
    region: &'a mut [u8],
    slot_size: usize,
    slots: usize,
    slots_off: usize,
}

impl<'a> SlotPool<'a> {
    /// Lay out `region` as empty slots of `slot_size` bytes (at least 4),
    /// as many as fit. None if not even one fits.
    pub fn format(region: &'a mut [u8], slot_size: usize) -> Option<SlotPool<'a>> {
        let slot_size = slot_size.max(4);
        // n slots need HEADER + ceil(n / 8) + n * slot_size bytes.
        let avail = region.len().checked_sub(HEADER)?;
        let mut slots = (avail * 8) / (8 * slot_size + 1);
        while slots > 0 && HEADER + slots.div_ceil(8) + slots * slot_size > region.len() {
            slots -= 1;
        }
        if slots == 0 || slots >= u32::MAX as usize {
            return None;
        }
        let mut pool = SlotPool {
            region,
            slot_size,
            slots,
            slots_off: HEADER + slots.div_ceil(8),
        };
        pool.region[..pool.slots_off].fill(0);
        pool.put(H_MAGIC, MAGIC);
        pool.put(H_SLOT_SIZE, slot_size as u32);
        pool.put(H_SLOTS, slots as u32);
        pool.put(H_IN_USE, 0);
        // Chain every slot, lowest index first.
        for i in 0..slots {
            let next = if i + 1 < slots { i as u32 + 2 } else { 0 };
            let at = pool.slot_off(i);
            pool.put(at, next);
        }
        pool.put(H_FREE, 1);
        Some(pool)
    }

    /// Use a region laid out earlier by [`SlotPool::format`] with the same
    /// slot size (for instance in a zone kept across a reload). None if it
    /// holds something else.
    pub fn open(region: &'a mut [u8], slot_size: usize) -> Option<SlotPool<'a>> {
        let slot_size = slot_size.max(4);
        let get = |at: usize| {
            region
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4")))
        };
        if get(H_MAGIC)? != MAGIC || get(H_SLOT_SIZE)? as usize != slot_size {
            return None;
        }
        let slots = get(H_SLOTS)? as usize;
        let slots_off = HEADER + slots.div_ceil(8);
        if slots == 0 || slots_off + slots * slot_size > region.len() {
            return None;
        }
        Some(SlotPool {
            region,
            slot_size,
            slots,
            slots_off,
        })
    }

    pub fn capacity(&self) -> usize {
        self.slots
    }

    pub fn in_use(&self) -> usize {
        self.get(H_IN_USE) as usize
    }

    /// Take a free slot (its bytes zeroed); None when all are in use.
    pub fn alloc(&mut self) -> Option<usize> {
        let head = self.get(H_FREE);
        if head == 0 {
            return None;
        }
        let i = head as usize - 1;
        let next = self.get(self.slot_off(i));
        self.put(H_FREE, next);
        self.set_bit(i, true);
        self.put(H_IN_USE, self.get(H_IN_USE) + 1);
        self.slot_mut(i).fill(0);
        Some(i)
    }

    /// Give slot `i` back; false (and nothing done) if it was not
    /// allocated.
    pub fn free(&mut self, i: usize) -> bool {
        if !self.is_allocated(i) {
            return false;
        }
        self.set_bit(i, false);
        let head = self.get(H_FREE);
        let at = self.slot_off(i);
        self.region[at..at + self.slot_size].fill(0);
        self.put(at, head);
        self.put(H_FREE, i as u32 + 1);
        self.put(H_IN_USE, self.get(H_IN_USE) - 1);
        true
    }

    pub fn is_allocated(&self, i: usize) -> bool {
        i < self.slots && self.region[HEADER + i / 8] & (1 << (i % 8)) != 0
    }

    /// The bytes of slot `i`. Panics if `i` is out of range.
    pub fn slot(&self, i: usize) -> &[u8] {
        assert!(i < self.slots, "slot {i} out of range");
        let at = self.slot_off(i);
        &self.region[at..at + self.slot_size]
    }

    /// The bytes of slot `i`, writable. Panics if `i` is out of range.
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        assert!(i < self.slots, "slot {i} out of range");
        let at = self.slot_off(i);
        &mut self.region[at..at + self.slot_size]
    }

    fn slot_off(&self, i: usize) -> usize {
        self.slots_off + i * self.slot_size
    }

    fn set_bit(&mut self, i: usize, on: bool) {
        let byte = &mut self.region[HEADER + i / 8];
        if on {
            *byte |= 1 << (i % 8);
        } else {
            *byte &= !(1 << (i % 8));
        }
    }

    fn get(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.region[at..at + 4].try_into().expect("4 bytes"))
    }

    fn put(&mut self, at: usize, v: u32) {
        self.region[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_region_and_reuses_freed_slots() {
        let mut mem = vec![0u8; 1000];
        let mut p = SlotPool::format(&mut mem, 48).unwrap();
        // 20 + ceil(n/8) + 48n <= 1000 → n = 20.
        assert_eq!(p.capacity(), 20);
        let got: Vec<usize> = std::iter::from_fn(|| p.alloc()).collect();
        assert_eq!(got, (0..20).collect::<Vec<_>>());
        assert_eq!(p.in_use(), 20);
        p.slot_mut(3).copy_from_slice(&[9; 48]);
        assert!(p.free(7));
        assert!(!p.free(7), "double free refused");
        assert!(!p.free(99));
        assert_eq!(p.alloc(), Some(7));
        assert!(p.slot(7).iter().all(|&b| b == 0));
        assert_eq!(p.alloc(), None);
        assert_eq!(p.slot(3), &[9; 48]);
    }

    #[test]
    fn reopens_a_laid_out_region_and_refuses_others() {
        let mut mem = vec![0u8; 4096];
        {
            let mut p = SlotPool::format(&mut mem, 16).unwrap();
            let i = p.alloc().unwrap();
            p.slot_mut(i)[0] = 42;
        }
        let p = SlotPool::open(&mut mem, 16).unwrap();
        assert_eq!(p.in_use(), 1);
        assert_eq!(p.slot(0)[0], 42);
        assert!(SlotPool::open(&mut mem, 32).is_none());
        assert!(SlotPool::open(&mut [0u8; 64], 16).is_none());
        assert!(SlotPool::format(&mut [0u8; 23], 4).is_none());
        assert_eq!(SlotPool::format(&mut [0u8; 25], 4).unwrap().capacity(), 1);
    }

    #[test]
    fn works_inside_a_zone_shared_with_a_child() {
        let zone = super::super::Zone::create("slots", 32 * 1024).unwrap();
        {
            let mut g = zone.lock().unwrap();
            SlotPool::format(g.data_mut(), 64).unwrap();
        }
        let child = zone.clone();
        let pid = super::super::testing::fork(move || {
            let mut g = child.lock().unwrap();
            let mut p = SlotPool::open(g.data_mut(), 64).unwrap();
            let i = p.alloc().unwrap();
            p.slot_mut(i)[..2].copy_from_slice(b"ok");
            0
        });
        assert_eq!(super::super::testing::wait(pid), 0);
        let mut g = zone.lock().unwrap();
        let p = SlotPool::open(g.data_mut(), 64).unwrap();
        assert_eq!(p.in_use(), 1);
        assert_eq!(&p.slot(0)[..2], b"ok");
    }
}
