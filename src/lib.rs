//! Postern: a drop-in replacement for the nginx mail proxy.
//!
//! The modules follow the path of a session: `cli` reads the command line,
//! `conf` turns the configuration into typed structs, `process` runs the
//! master and its workers, `event` is each worker's mio loop, and `logging`
//! writes nginx-style error logs. Dependencies point one way:
//! `cli → process → event → logging`, with `conf` a leaf that knows no
//! sockets.

pub mod build_info;
pub mod cli;
pub mod conf;
pub mod event;
pub mod inet;
pub mod logging;
pub mod mail;
pub mod process;
pub mod shm;
pub mod tls;
