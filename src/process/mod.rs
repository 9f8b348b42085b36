//! Master and worker processes. SKELETON: owned by the process work.

use crate::conf::{LoadOptions, Loaded};

/// Run the master (or the single process with `master_process off`) until
/// it stops; returns the exit status.
pub fn run(opts: &LoadOptions, loaded: Loaded) -> i32 {
    let _ = (opts, loaded);
    todo!()
}

/// `-s stop|quit|reopen|reload`: signal the process named in the pid file
/// of the configuration; returns the exit status.
pub fn send_signal(loaded: &Loaded, signal: &str) -> i32 {
    let _ = (loaded, signal);
    todo!()
}
