//! Fuzzes the reader of answer TTLs in raw DNS responses (the PTR answers
//! the resolver caches): any bytes, for any record type, must give a TTL
//! or `None` without panicking, and a TTL never has its top bit set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::mail::resolver::ttl::min_answer_ttl;

fuzz_target!(|data: &[u8]| {
    for rtype in [1u16, 12, 28] {
        if let Some(ttl) = min_answer_ttl(data, rtype) {
            assert!(ttl <= i32::MAX as u32);
        }
    }
});
