//! The auth_http client, sans-io: the request bytes to send and a parser
//! for the response, as nginx 1.31.5's mail auth_http module.
//!
//! The session does the I/O and the timing:
//!
//! 1. Build the request with [`AuthRequest::write_to`] into a buffer it
//!    keeps, connect to [`AuthHttpConf::peer`] (the first address), write
//!    it, all within `auth_http_timeout` (on expiry log
//!    [`timed_out_message`] at `error` with errno ETIMEDOUT and reply the
//!    protocol's internal error). If [`AuthRequest::clears_password`], the
//!    session forgets its password now.
//! 2. Read into [`AuthHttpResponse::spare`] and [`AuthHttpResponse::feed`]
//!    the count (0 at end of file) until [`Progress::Complete`] or an
//!    [`AuthHttpError`] (log it, internal error reply, close).
//! 3. Apply [`AuthHttpResponse::user_override`] / `pass_override` to the
//!    session's credentials, then act on [`AuthHttpResponse::outcome`].
//!
//! The client is not read while auth_http is asked or during a wait.
//!
//! nginx quirks kept (see the items for details): AUTH LOGIN is sent as
//! `Auth-Method: plain`; the salt is sent only for APOP / CRAM-MD5 and
//! the client's digest is then dropped, so auth_http must return
//! `Auth-Pass`; the status code of the response is ignored; a response
//! without a status line is read as headers; an empty SMTP error text
//! means success; `Auth-User` / `Auth-Pass` apply even to a failure.
//!
//! One nginx defect is not kept: after `Auth-Status: WAIT` with no
//! `Auth-Wait`, nginx keeps its "waiting" flag and re-asks auth_http after
//! every later answer, even a successful one, until it sends an error
//! text. Here WAIT applies to the response that carries it only.

mod addr;
mod request;
mod response;

pub use request::{escape, AuthMethod, AuthRequest, ProxyProtocolAddrs, SslInfo};
pub use response::{
    AuthHttpError, AuthHttpResponse, Outcome, Progress, Rejection, RESPONSE_BUFFER_SIZE,
};

use crate::conf::model::{AuthHttpConf, AuthHttpPeer};

/// The auth_http peer's name as nginx logs it: `127.0.0.1:9000`,
/// `[::1]:9000` (the first resolved address) or `unix:/path`.
pub fn peer_name(conf: &AuthHttpConf) -> String {
    match &conf.peer {
        AuthHttpPeer::Inet(addrs) => match addrs.first() {
            Some(std::net::SocketAddr::V4(a)) => format!("{}:{}", a.ip(), a.port()),
            Some(std::net::SocketAddr::V6(a)) => format!("[{}]:{}", a.ip(), a.port()),
            None => String::new(),
        },
        AuthHttpPeer::Unix(path) => format!("unix:{}", path.display()),
    }
}

/// The error-log text when auth_http does not answer within
/// `auth_http_timeout` (nginx adds the ETIMEDOUT errno text after it).
pub fn timed_out_message(peer: &str) -> String {
    format!("auth http server {peer} timed out")
}

#[cfg(test)]
mod tests;
