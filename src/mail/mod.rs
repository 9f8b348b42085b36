//! Mail protocol front ends (IMAP, POP3, SMTP) before login.
//!
//! Everything here is sans-io: bytes in, results out, no sockets and no
//! clock. `parse` holds the resumable command parsers and `sasl` decodes
//! the SASL exchanges (PLAIN, LOGIN, CRAM-MD5, EXTERNAL) and builds the
//! APOP / CRAM-MD5 salt.
//!
//! Both follow nginx 1.31.5's mail module byte for byte, quirks included;
//! the quirks are listed in the docs of the item that reproduces them.

pub mod auth_http;
pub mod parse;
pub mod proxy_protocol;
pub mod realip;
pub mod resolver;
pub mod sasl;
