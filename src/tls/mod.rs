//! TLS on the system OpenSSL; `session_store` is the shared session cache.

pub mod session_store;
