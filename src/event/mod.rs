//! Each worker's mio event loop. SKELETON: owned by the process work.
