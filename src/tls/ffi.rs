//! The OpenSSL calls the `openssl` crate does not offer, behind safe
//! wrappers. Everything `unsafe` in the TLS module lives here.
//!
//! Loading goes through the same OpenSSL calls nginx makes (`BIO_new_file`,
//! `PEM_read_bio_X509_AUX`, ...) so that the error queue, and therefore the
//! `(SSL: error:...)` part of a configuration error, reads exactly as
//! nginx's.

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslContextBuilder, SslRef};
use openssl::x509::{X509Crl, X509NameRef, X509Ref, X509};
use openssl_sys as sys;
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void, CStr, CString};
use std::ptr;

#[allow(non_camel_case_types)]
enum OSSL_STORE_CTX {}
#[allow(non_camel_case_types)]
enum OSSL_STORE_INFO {}
#[allow(non_camel_case_types)]
enum UI_METHOD {}
#[allow(non_camel_case_types)]
enum SSL_CONF_CTX {}

type TicketKeyCb = unsafe extern "C" fn(
    *mut sys::SSL,
    *mut u8,
    *mut u8,
    *mut sys::EVP_CIPHER_CTX,
    *mut sys::HMAC_CTX,
    c_int,
) -> c_int;

extern "C" {
    fn ERR_error_string_n(e: c_ulong, buf: *mut c_char, len: usize);
    fn ERR_peek_last_error() -> c_ulong;
    fn BIO_new_file(name: *const c_char, mode: *const c_char) -> *mut sys::BIO;
    fn PEM_read_bio_X509_AUX(
        bio: *mut sys::BIO,
        out: *mut *mut sys::X509,
        cb: sys::pem_password_cb,
        u: *mut c_void,
    ) -> *mut sys::X509;
    fn PEM_read_bio_Parameters(
        bio: *mut sys::BIO,
        out: *mut *mut sys::EVP_PKEY,
    ) -> *mut sys::EVP_PKEY;
    fn X509_STORE_add_crl(store: *mut sys::X509_STORE, crl: *mut sys::X509_CRL) -> c_int;
    fn X509_NAME_print_ex(
        out: *mut sys::BIO,
        name: *const sys::X509_NAME,
        indent: c_int,
        flags: c_ulong,
    ) -> c_int;
    fn i2a_ASN1_INTEGER(bio: *mut sys::BIO, a: *const sys::ASN1_INTEGER) -> c_int;

    fn ENGINE_by_id(id: *const c_char) -> *mut sys::ENGINE;
    fn ENGINE_init(e: *mut sys::ENGINE) -> c_int;
    fn ENGINE_finish(e: *mut sys::ENGINE) -> c_int;
    fn ENGINE_free(e: *mut sys::ENGINE) -> c_int;
    fn ENGINE_load_private_key(
        e: *mut sys::ENGINE,
        key_id: *const c_char,
        ui: *mut UI_METHOD,
        cb_data: *mut c_void,
    ) -> *mut sys::EVP_PKEY;

    fn OSSL_STORE_open(
        uri: *const c_char,
        ui: *const UI_METHOD,
        ui_data: *mut c_void,
        post: *const c_void,
        post_data: *mut c_void,
    ) -> *mut OSSL_STORE_CTX;
    fn OSSL_STORE_load(ctx: *mut OSSL_STORE_CTX) -> *mut OSSL_STORE_INFO;
    fn OSSL_STORE_eof(ctx: *mut OSSL_STORE_CTX) -> c_int;
    fn OSSL_STORE_close(ctx: *mut OSSL_STORE_CTX) -> c_int;
    fn OSSL_STORE_INFO_get_type(info: *const OSSL_STORE_INFO) -> c_int;
    fn OSSL_STORE_INFO_get1_PKEY(info: *const OSSL_STORE_INFO) -> *mut sys::EVP_PKEY;
    fn OSSL_STORE_INFO_free(info: *mut OSSL_STORE_INFO);
    fn UI_UTIL_wrap_read_pem_callback(cb: sys::pem_password_cb, rwflag: c_int) -> *mut UI_METHOD;
    fn UI_destroy_method(m: *mut UI_METHOD);

    fn SSL_CONF_CTX_new() -> *mut SSL_CONF_CTX;
    fn SSL_CONF_CTX_free(c: *mut SSL_CONF_CTX);
    fn SSL_CONF_CTX_set_flags(c: *mut SSL_CONF_CTX, flags: c_uint) -> c_uint;
    fn SSL_CONF_CTX_set_ssl_ctx(c: *mut SSL_CONF_CTX, ctx: *mut sys::SSL_CTX);
    fn SSL_CONF_cmd_value_type(c: *mut SSL_CONF_CTX, cmd: *const c_char) -> c_int;
    fn SSL_CONF_cmd(c: *mut SSL_CONF_CTX, cmd: *const c_char, value: *const c_char) -> c_int;
    fn SSL_CONF_CTX_finish(c: *mut SSL_CONF_CTX) -> c_int;

    fn SSL_CTX_set_timeout(ctx: *mut sys::SSL_CTX, t: c_long) -> c_long;
    fn SSL_CTX_get_timeout(ctx: *const sys::SSL_CTX) -> c_long;
    fn SSL_CTX_set_info_callback(
        ctx: *mut sys::SSL_CTX,
        cb: Option<unsafe extern "C" fn(*const sys::SSL, c_int, c_int)>,
    );
    fn SSL_get_session(ssl: *const sys::SSL) -> *mut sys::SSL_SESSION;
    fn SSL_SESSION_get_timeout(s: *const sys::SSL_SESSION) -> c_long;
    fn SSL_SESSION_set_time(s: *mut sys::SSL_SESSION, t: c_long) -> c_long;
    fn SSL_SESSION_set_timeout(s: *mut sys::SSL_SESSION, t: c_long) -> c_long;
    fn SSL_SESSION_set1_id_context(s: *mut sys::SSL_SESSION, ctx: *const u8, len: c_uint) -> c_int;
    fn SSL_get_options(ssl: *const sys::SSL) -> u64;
    fn SSL_has_pending(ssl: *const sys::SSL) -> c_int;
    fn SSL_set_quiet_shutdown(ssl: *mut sys::SSL, mode: c_int);
}

const BIO_CTRL_RESET: c_int = 1;
const BIO_CTRL_INFO: c_int = 3;
const ERR_LIB_PEM: c_int = 9;
const PEM_R_NO_START_LINE: c_int = 108;
const OSSL_STORE_INFO_PKEY: c_int = 4;
const SSL_CTRL_CHAIN: c_int = 88;
const SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB: c_int = 72;
const SSL_CONF_FLAG_FILE: c_uint = 0x2;
const SSL_CONF_FLAG_CLIENT: c_uint = 0x4;
const SSL_CONF_FLAG_SERVER: c_uint = 0x8;
const SSL_CONF_FLAG_SHOW_ERRORS: c_uint = 0x10;
const SSL_CONF_FLAG_CERTIFICATE: c_uint = 0x20;
const SSL_CONF_TYPE_FILE: c_int = 0x2;
const SSL_CONF_TYPE_DIR: c_int = 0x3;
const XN_FLAG_RFC2253: c_ulong = 0x0111_0317;
const SSL_CB_ACCEPT_LOOP: c_int = 0x2001;
const TLS1_3_VERSION: c_int = 0x0304;
const SSL_OP_NO_TICKET: u64 = 1 << 14;
/// Treat a peer closing without close_notify as end of file, not an error.
pub const SSL_OP_IGNORE_UNEXPECTED_EOF: u64 = 1 << 7;
/// Send exactly the configured chain, never one built from the trust store.
pub const SSL_MODE_NO_AUTO_CHAIN: std::ffi::c_long = 0x8;

fn err_lib(e: c_ulong) -> c_int {
    ((e >> 23) & 0xff) as c_int
}

fn err_reason(e: c_ulong) -> c_int {
    (e & 0x7f_ffff) as c_int
}

/// Overwrite secret bytes in a way the compiler keeps (a plain store before
/// a free may be optimised away).
pub fn wipe(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        // SAFETY: `b` is a live, exclusive reference.
        unsafe { ptr::write_volatile(b, 0) };
    }
}

/// `error:0A000086:SSL routines::certificate verify failed`, as
/// `ERR_error_string_n` writes it.
pub fn error_string(code: c_ulong) -> String {
    openssl_sys::init();
    let mut buf = [0 as c_char; 256];
    // SAFETY: the buffer is writable for its whole length and OpenSSL
    // always terminates what it writes within `len`.
    unsafe {
        ERR_error_string_n(code, buf.as_mut_ptr(), buf.len());
        CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
    }
}

fn last_error_is_no_start_line() -> bool {
    // SAFETY: reads the thread's error queue without changing it.
    let e = unsafe { ERR_peek_last_error() };
    err_lib(e) == ERR_LIB_PEM && err_reason(e) == PEM_R_NO_START_LINE
}

fn clear_errors() {
    // SAFETY: empties the thread's error queue; always valid.
    unsafe { sys::ERR_clear_error() }
}

/// Why a load failed: the name of the failing call, nginx-style, and the
/// error queue drained at that moment.
#[derive(Debug)]
pub struct LoadError {
    pub what: &'static str,
    pub queue: ErrorStack,
}

fn fail<T>(what: &'static str) -> Result<T, LoadError> {
    Err(LoadError {
        what,
        queue: ErrorStack::get(),
    })
}

/// An owned BIO, freed on drop.
struct Bio(*mut sys::BIO);

impl Drop for Bio {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a BIO constructor and is freed once.
        unsafe { sys::BIO_free_all(self.0) }
    }
}

/// Where PEM text comes from: a file, or inline `data:` text.
pub enum PemSource<'a> {
    File(&'a std::path::Path),
    Data(&'a [u8]),
}

fn open_bio<'a>(src: &PemSource<'a>) -> Result<(Bio, Option<&'a [u8]>), LoadError> {
    match src {
        PemSource::File(path) => {
            let Ok(name) = CString::new(path.as_os_str().as_encoded_bytes()) else {
                return fail("BIO_new_file() failed");
            };
            // SAFETY: both arguments are NUL-terminated strings.
            let b = unsafe { BIO_new_file(name.as_ptr(), c"r".as_ptr()) };
            if b.is_null() {
                return fail("BIO_new_file() failed");
            }
            Ok((Bio(b), None))
        }
        PemSource::Data(data) => {
            let len = c_int::try_from(data.len()).unwrap_or(c_int::MAX);
            // SAFETY: the memory BIO reads `data`, which outlives it (the
            // BIO is dropped before this function's caller returns).
            let b = unsafe { sys::BIO_new_mem_buf(data.as_ptr().cast(), len) };
            if b.is_null() {
                return fail("BIO_new_mem_buf() failed");
            }
            Ok((Bio(b), Some(data)))
        }
    }
}

/// A certificate file: the certificate itself (`PEM_read_bio_X509_AUX`)
/// followed by its chain, as nginx reads `ssl_certificate`.
pub fn read_cert_chain(src: &PemSource<'_>) -> Result<Vec<X509>, LoadError> {
    clear_errors();
    let (bio, _keep) = open_bio(src)?;
    // SAFETY: `bio` is a valid BIO; the result is owned by us.
    let first = unsafe { PEM_read_bio_X509_AUX(bio.0, ptr::null_mut(), None, ptr::null_mut()) };
    if first.is_null() {
        return fail("PEM_read_bio_X509_AUX() failed");
    }
    // SAFETY: a non-null X509 we own.
    let mut chain = vec![unsafe { X509::from_ptr(first) }];
    loop {
        // SAFETY: as above.
        let x = unsafe { sys::PEM_read_bio_X509(bio.0, ptr::null_mut(), None, ptr::null_mut()) };
        if x.is_null() {
            if last_error_is_no_start_line() {
                clear_errors();
                return Ok(chain);
            }
            return fail("PEM_read_bio_X509() failed");
        }
        // SAFETY: a non-null X509 we own.
        chain.push(unsafe { X509::from_ptr(x) });
    }
}

/// A CA file for `ssl_client_certificate`/`ssl_trusted_certificate`: every
/// certificate in it, at least one.
pub fn read_ca_certs(src: &PemSource<'_>) -> Result<Vec<X509>, LoadError> {
    clear_errors();
    let (bio, _keep) = open_bio(src)?;
    let mut list = Vec::new();
    loop {
        // SAFETY: `bio` is valid; the result is owned by us.
        let x = unsafe { PEM_read_bio_X509_AUX(bio.0, ptr::null_mut(), None, ptr::null_mut()) };
        if x.is_null() {
            if !list.is_empty() && last_error_is_no_start_line() {
                clear_errors();
                return Ok(list);
            }
            return fail("PEM_read_bio_X509_AUX() failed");
        }
        // SAFETY: a non-null X509 we own.
        list.push(unsafe { X509::from_ptr(x) });
    }
}

/// Every CRL of an `ssl_crl` file, at least one.
pub fn read_crls(src: &PemSource<'_>) -> Result<Vec<X509Crl>, LoadError> {
    clear_errors();
    let (bio, _keep) = open_bio(src)?;
    let mut list = Vec::new();
    loop {
        // SAFETY: `bio` is valid; the result is owned by us.
        let x =
            unsafe { sys::PEM_read_bio_X509_CRL(bio.0, ptr::null_mut(), None, ptr::null_mut()) };
        if x.is_null() {
            if !list.is_empty() && last_error_is_no_start_line() {
                clear_errors();
                return Ok(list);
            }
            return fail("PEM_read_bio_X509_CRL() failed");
        }
        // SAFETY: a non-null X509_CRL we own.
        list.push(unsafe { X509Crl::from_ptr(x) });
    }
}

/// What the pass-phrase callback sees: the phrase to offer (none = refuse,
/// so that OpenSSL never prompts on a terminal) and whether it was asked.
struct PassState<'a> {
    phrase: Option<&'a [u8]>,
    asked: Cell<bool>,
    /// The buffer size a too long pass phrase was cut to.
    truncated: Cell<Option<usize>>,
}

unsafe extern "C" fn pass_cb(
    buf: *mut c_char,
    size: c_int,
    rwflag: c_int,
    u: *mut c_void,
) -> c_int {
    if rwflag != 0 || u.is_null() || size <= 0 {
        return 0;
    }
    // SAFETY: `u` is the `PassState` handed to OpenSSL by the caller below,
    // alive for the duration of the read that calls us.
    let st = unsafe { &*(u as *const PassState<'_>) };
    st.asked.set(true);
    let Some(p) = st.phrase else { return 0 };
    let n = if p.len() > size as usize {
        st.truncated.set(Some(size as usize));
        size as usize
    } else {
        p.len()
    };
    // SAFETY: OpenSSL gives us `size` writable bytes at `buf`; n <= size.
    unsafe { ptr::copy_nonoverlapping(p.as_ptr(), buf.cast::<u8>(), n) };
    n as c_int
}

/// A PEM private key, trying each pass phrase in turn (none given: an
/// encrypted key fails instead of prompting). A pass phrase longer than
/// OpenSSL's buffer is cut; `truncated` then tells to what size (nginx
/// logs "password is truncated to N bytes").
pub fn read_private_key(
    src: &PemSource<'_>,
    phrases: &[Vec<u8>],
    truncated: &mut Option<usize>,
) -> Result<PKey<Private>, LoadError> {
    clear_errors();
    let (bio, _keep) = open_bio(src)?;
    let tries: Vec<Option<&[u8]>> = if phrases.is_empty() {
        vec![None]
    } else {
        phrases.iter().map(|p| Some(p.as_slice())).collect()
    };
    for (i, phrase) in tries.iter().enumerate() {
        let st = PassState {
            phrase: *phrase,
            asked: Cell::new(false),
            truncated: Cell::new(None),
        };
        // SAFETY: `bio` is valid, the callback matches `pem_password_cb`
        // and `st` outlives the call.
        let k = unsafe {
            sys::PEM_read_bio_PrivateKey(
                bio.0,
                ptr::null_mut(),
                Some(pass_cb),
                &st as *const PassState<'_> as *mut c_void,
            )
        };
        if st.truncated.get().is_some() {
            *truncated = st.truncated.get();
        }
        if !k.is_null() {
            // SAFETY: a non-null EVP_PKEY we own.
            return Ok(unsafe { PKey::from_ptr(k) });
        }
        if i + 1 < tries.len() {
            clear_errors();
            // SAFETY: rewinds a valid BIO (files seek to 0, memory BIOs
            // return to their start).
            unsafe { sys::BIO_ctrl(bio.0, BIO_CTRL_RESET, 0, ptr::null_mut()) };
        }
    }
    fail("PEM_read_bio_PrivateKey() failed")
}

/// `engine:name:id`: the key `id` from the OpenSSL engine `name`.
pub fn engine_private_key(engine: &str, key_id: &str) -> Result<PKey<Private>, LoadError> {
    clear_errors();
    let (Ok(e_name), Ok(k_id)) = (CString::new(engine), CString::new(key_id)) else {
        return fail("ENGINE_by_id() failed");
    };
    // SAFETY: a NUL-terminated id; a structural reference is returned.
    let e = unsafe { ENGINE_by_id(e_name.as_ptr()) };
    if e.is_null() {
        return fail("ENGINE_by_id() failed");
    }
    // SAFETY: `e` is a valid structural reference; a dynamically loaded
    // engine must be initialised before it can load keys (engines set up
    // by openssl.cnf already are; ENGINE_init just counts then).
    if unsafe { ENGINE_init(e) } != 1 {
        // SAFETY: releases the structural reference taken above.
        unsafe { ENGINE_free(e) };
        return fail("ENGINE_init() failed");
    }
    // SAFETY: `e` is initialised; no UI method: the key id carries any PIN.
    let k = unsafe { ENGINE_load_private_key(e, k_id.as_ptr(), ptr::null_mut(), ptr::null_mut()) };
    let result = if k.is_null() {
        fail("ENGINE_load_private_key() failed")
    } else {
        // SAFETY: a non-null EVP_PKEY we own (it holds its own engine
        // reference).
        Ok(unsafe { PKey::from_ptr(k) })
    };
    // SAFETY: drops the functional and structural references taken above.
    unsafe {
        ENGINE_finish(e);
        ENGINE_free(e);
    }
    result
}

/// `store:uri`: the first private key the OSSL_STORE `uri` yields. Unlike
/// nginx, which offers only the first pass phrase, every pass phrase is
/// tried in turn.
pub fn store_private_key(uri: &str, phrases: &[Vec<u8>]) -> Result<PKey<Private>, LoadError> {
    clear_errors();
    let Ok(c_uri) = CString::new(uri) else {
        return fail("OSSL_STORE_open() failed");
    };
    let tries: Vec<Option<&[u8]>> = if phrases.is_empty() {
        vec![None]
    } else {
        phrases.iter().map(|p| Some(p.as_slice())).collect()
    };
    let mut last = fail("OSSL_STORE_load() failed");
    for (i, phrase) in tries.iter().enumerate() {
        if i > 0 {
            clear_errors();
        }
        let st = PassState {
            phrase: *phrase,
            asked: Cell::new(false),
            truncated: Cell::new(None),
        };
        // SAFETY: wraps our PEM callback in a UI method owned by us.
        let method = unsafe { UI_UTIL_wrap_read_pem_callback(Some(pass_cb), 0) };
        // SAFETY: a NUL-terminated URI; `st` is the UI data our callback
        // expects and outlives the store.
        let store = unsafe {
            OSSL_STORE_open(
                c_uri.as_ptr(),
                method,
                &st as *const PassState<'_> as *mut c_void,
                ptr::null(),
                ptr::null_mut(),
            )
        };
        if store.is_null() {
            if !method.is_null() {
                // SAFETY: the method is ours and no longer used.
                unsafe { UI_destroy_method(method) };
            }
            return fail("OSSL_STORE_open() failed");
        }
        let mut key: *mut sys::EVP_PKEY = ptr::null_mut();
        // SAFETY: `store` is open; every info object is freed after use.
        unsafe {
            while key.is_null() && OSSL_STORE_eof(store) == 0 {
                let info = OSSL_STORE_load(store);
                if info.is_null() {
                    continue;
                }
                if OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY {
                    key = OSSL_STORE_INFO_get1_PKEY(info);
                }
                OSSL_STORE_INFO_free(info);
            }
            OSSL_STORE_close(store);
            if !method.is_null() {
                UI_destroy_method(method);
            }
        }
        if !key.is_null() {
            clear_errors();
            // SAFETY: a non-null EVP_PKEY we own.
            return Ok(unsafe { PKey::from_ptr(key) });
        }
        last = fail("OSSL_STORE_load() failed");
        if !st.asked.get() {
            // Not a matter of pass phrases: another one will not help.
            break;
        }
    }
    last
}

/// Replace the chain of the context's current certificate (nginx's
/// `SSL_CTX_set0_chain`; here the set1 form that takes its own references).
pub fn set_chain(ctx: &mut SslContextBuilder, chain: &[X509]) -> Result<(), ErrorStack> {
    let mut stack = openssl::stack::Stack::<X509>::new()?;
    for c in chain {
        stack.push(c.clone())?;
    }
    // SAFETY: SSL_CTX_set1_chain copies the stack and up-refs each
    // certificate; our stack is freed when dropped.
    let r = unsafe { sys::SSL_CTX_ctrl(ctx.as_ptr(), SSL_CTRL_CHAIN, 1, stack.as_ptr().cast()) };
    if r == 0 {
        return Err(ErrorStack::get());
    }
    Ok(())
}

/// `ssl_dhparam` the OpenSSL 3 way: `PEM_read_bio_Parameters` and
/// `SSL_CTX_set0_tmp_dh_pkey`. The error names the failing call.
pub fn set_dhparam(ctx: &mut SslContextBuilder, path: &std::path::Path) -> Result<(), LoadError> {
    clear_errors();
    let (bio, _) = open_bio(&PemSource::File(path))?;
    // SAFETY: `bio` is valid; the returned key is owned by us.
    let dh = unsafe { PEM_read_bio_Parameters(bio.0, ptr::null_mut()) };
    if dh.is_null() {
        return fail("PEM_read_bio_Parameters() failed");
    }
    // SAFETY: on success the context takes ownership of `dh`; on failure
    // (OpenSSL 3.0.1+) it stays ours and is freed here.
    if unsafe { sys::SSL_CTX_set0_tmp_dh_pkey(ctx.as_ptr(), dh) } != 1 {
        let e = fail("SSL_CTX_set0_tmp_dh_pkey() failed");
        // SAFETY: see above.
        unsafe { sys::EVP_PKEY_free(dh) };
        return e;
    }
    Ok(())
}

/// Add CRLs to the context's store (the crate cannot add CRLs).
pub fn add_crl(ctx: &mut SslContextBuilder, crl: &X509Crl) -> Result<(), ErrorStack> {
    // SAFETY: the store belongs to the live context; X509_STORE_add_crl
    // takes its own reference to the CRL.
    let r = unsafe { X509_STORE_add_crl(sys::SSL_CTX_get_cert_store(ctx.as_ptr()), crl.as_ptr()) };
    if r != 1 {
        return Err(ErrorStack::get());
    }
    Ok(())
}

/// The outcome of `ssl_conf_command`s.
pub enum ConfCmdError {
    /// `SSL_CONF_cmd("name", "value") failed` — index of the command.
    Cmd(usize, ErrorStack),
    Finish(ErrorStack),
    New(ErrorStack),
}

/// Apply `ssl_conf_command name value` pairs through SSL_CONF_CTX, with
/// nginx's flags; file and directory values are resolved with `full_name`.
pub fn conf_commands(
    ctx: &mut SslContextBuilder,
    cmds: &[(String, String)],
    full_name: &dyn Fn(&str) -> String,
) -> Result<(), ConfCmdError> {
    clear_errors();
    // SAFETY: creates a configuration context we free below.
    let cctx = unsafe { SSL_CONF_CTX_new() };
    if cctx.is_null() {
        return Err(ConfCmdError::New(ErrorStack::get()));
    }
    struct Guard(*mut SSL_CONF_CTX);
    impl Drop for Guard {
        fn drop(&mut self) {
            // SAFETY: freed once, after its last use.
            unsafe { SSL_CONF_CTX_free(self.0) }
        }
    }
    let guard = Guard(cctx);
    // SAFETY: `cctx` is valid and the SSL_CTX outlives it.
    unsafe {
        SSL_CONF_CTX_set_flags(
            cctx,
            SSL_CONF_FLAG_FILE
                | SSL_CONF_FLAG_SERVER
                | SSL_CONF_FLAG_CLIENT
                | SSL_CONF_FLAG_CERTIFICATE
                | SSL_CONF_FLAG_SHOW_ERRORS,
        );
        SSL_CONF_CTX_set_ssl_ctx(cctx, ctx.as_ptr());
    }
    for (i, (name, value)) in cmds.iter().enumerate() {
        let (Ok(k), Ok(v0)) = (CString::new(name.as_str()), CString::new(value.as_str())) else {
            return Err(ConfCmdError::Cmd(i, ErrorStack::get()));
        };
        // SAFETY: NUL-terminated name.
        let ty = unsafe { SSL_CONF_cmd_value_type(cctx, k.as_ptr()) };
        let v = if ty == SSL_CONF_TYPE_FILE || ty == SSL_CONF_TYPE_DIR {
            CString::new(full_name(value)).unwrap_or(v0)
        } else {
            v0
        };
        // SAFETY: NUL-terminated name and value.
        if unsafe { SSL_CONF_cmd(cctx, k.as_ptr(), v.as_ptr()) } <= 0 {
            return Err(ConfCmdError::Cmd(i, ErrorStack::get()));
        }
    }
    // SAFETY: `cctx` is valid.
    if unsafe { SSL_CONF_CTX_finish(cctx) } != 1 {
        return Err(ConfCmdError::Finish(ErrorStack::get()));
    }
    drop(guard);
    Ok(())
}

/// `SSL_CTX_set_timeout`: the lifetime of sessions (and tickets).
pub fn set_session_timeout(ctx: &mut SslContextBuilder, secs: u64) {
    let t = c_long::try_from(secs).unwrap_or(c_long::MAX);
    // SAFETY: a plain setter on a live context.
    unsafe { SSL_CTX_set_timeout(ctx.as_ptr(), t) };
}

/// Install the TLSv1.3 session-lifetime guard (see `tls13_session_timeout`).
pub fn set_info_callback(ctx: &mut SslContextBuilder) {
    // SAFETY: the callback has the signature OpenSSL expects and touches
    // only the connection it is called for.
    unsafe { SSL_CTX_set_info_callback(ctx.as_ptr(), Some(info_cb)) };
}

/// OpenSSL resets a TLSv1.3 session's creation time on every resumption
/// while keeping its timeout, so a session could live forever; as nginx
/// does, shorten the remaining lifetime (or invalidate an expired one) the
/// first time the accept loop runs with a session.
unsafe extern "C" fn info_cb(ssl: *const sys::SSL, where_: c_int, _ret: c_int) {
    if where_ & SSL_CB_ACCEPT_LOOP != SSL_CB_ACCEPT_LOOP {
        return;
    }
    // SAFETY: `ssl` is the live connection OpenSSL calls us for.
    unsafe {
        if sys::SSL_version(ssl) != TLS1_3_VERSION {
            return;
        }
        let idx = session_timeout_mark_index();
        if !sys::SSL_get_ex_data(ssl, idx).is_null() {
            return;
        }
        let sess = SSL_get_session(ssl);
        if sess.is_null() {
            return;
        }
        // Mark the connection as done: any non-null pointer will do.
        sys::SSL_set_ex_data(ssl as *mut sys::SSL, idx, ptr::dangling_mut::<c_void>());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as c_long)
            .unwrap_or(0);
        let created = sys::SSL_SESSION_get_time(sess) as c_long;
        let conf = SSL_CTX_get_timeout(sys::SSL_get_SSL_CTX(ssl));
        let timeout = SSL_SESSION_get_timeout(sess).min(conf);
        if now - created >= timeout {
            SSL_SESSION_set1_id_context(sess, c"".as_ptr().cast(), 0);
        } else {
            SSL_SESSION_set_time(sess, now);
            SSL_SESSION_set_timeout(sess, timeout - (now - created));
        }
    }
}

fn session_timeout_mark_index() -> c_int {
    static INDEX: std::sync::OnceLock<c_int> = std::sync::OnceLock::new();
    *INDEX.get_or_init(|| {
        // SAFETY: registers a plain ex_data slot without callbacks; the
        // crate has initialised the library before any context exists.
        unsafe {
            sys::CRYPTO_get_ex_new_index(
                sys::CRYPTO_EX_INDEX_SSL,
                0,
                ptr::null_mut(),
                None,
                None,
                None,
            )
        }
    })
}

/// Whether a connection has session tickets enabled (its options lack
/// SSL_OP_NO_TICKET).
pub fn tickets_enabled(ssl: &SslRef) -> bool {
    // SAFETY: reads the options of a live connection.
    unsafe { SSL_get_options(ssl.as_ptr()) & SSL_OP_NO_TICKET == 0 }
}

/// Whether OpenSSL holds received bytes not yet returned by a read
/// (decrypted data, or records read ahead from the socket).
pub fn has_pending(ssl: &SslRef) -> bool {
    // SAFETY: reads the state of a live connection.
    unsafe { SSL_has_pending(ssl.as_ptr()) == 1 }
}

/// Close without sending or waiting for close_notify (nginx's quiet
/// shutdown after errors and timeouts).
pub fn set_quiet_shutdown(ssl: &SslRef) {
    // SAFETY: a plain setter on a live connection (the crate's opaque
    // types allow mutation through shared references, as its own setters
    // on `SslRef` do).
    unsafe { SSL_set_quiet_shutdown(ssl.as_ptr(), 1) };
}

/// A name printed as RFC 2253 (`CN=client,O=Example`), as nginx's
/// `$ssl_client_s_dn`.
pub fn name_rfc2253(name: &X509NameRef) -> String {
    with_mem_bio(|bio| {
        // SAFETY: `bio` is a valid memory BIO and `name` a live name.
        unsafe { X509_NAME_print_ex(bio, name.as_ptr(), 0, XN_FLAG_RFC2253) >= 0 }
    })
}

/// The serial number as `i2a_ASN1_INTEGER` prints it (upper-case hex).
pub fn serial_hex(cert: &X509Ref) -> String {
    with_mem_bio(|bio| {
        // SAFETY: `bio` is a valid memory BIO; the serial belongs to the
        // live certificate.
        unsafe { i2a_ASN1_INTEGER(bio, sys::X509_get_serialNumber(cert.as_ptr())) >= 0 }
    })
}

fn with_mem_bio(write: impl FnOnce(*mut sys::BIO) -> bool) -> String {
    // SAFETY: creates a memory BIO we own (freed by `Bio`).
    let b = unsafe { sys::BIO_new(sys::BIO_s_mem()) };
    if b.is_null() {
        return String::new();
    }
    let bio = Bio(b);
    if !write(bio.0) {
        clear_errors();
        return String::new();
    }
    let mut data: *mut c_char = ptr::null_mut();
    // SAFETY: BIO_get_mem_data: points `data` at the BIO's contents and
    // returns their length; the bytes are copied before the BIO is freed.
    let len = unsafe {
        sys::BIO_ctrl(
            bio.0,
            BIO_CTRL_INFO,
            0,
            (&mut data as *mut *mut c_char).cast(),
        )
    };
    if data.is_null() || len <= 0 {
        return String::new();
    }
    // SAFETY: `len` bytes are readable at `data` (see above).
    let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len as usize) };
    String::from_utf8_lossy(bytes).into_owned()
}

/// One session ticket key as the callback uses it: a 16-byte name sent in
/// the ticket, an HMAC-SHA256 key and an AES-CBC key; a `wide` key (from
/// 80 bytes) has a 32-byte HMAC key and AES-256, a narrow one (48 bytes)
/// 16-byte keys and AES-128. Wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    pub name: [u8; 16],
    pub hmac: [u8; 32],
    pub aes: [u8; 32],
    pub wide: bool,
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        wipe(&mut self.hmac);
        wipe(&mut self.aes);
    }
}

impl KeyMaterial {
    fn key_len(&self) -> usize {
        if self.wide {
            32
        } else {
            16
        }
    }
}

/// Where the ticket key callback finds a context's keys.
pub trait TicketKeySource {
    /// The key that encrypts new tickets (`None`: refuse to issue one).
    fn encrypting(&self) -> Option<KeyMaterial>;
    /// The key with this name, if any, and whether it is the encrypting
    /// one (a ticket under an older key is renewed).
    fn find(&self, name: &[u8; 16]) -> Option<(KeyMaterial, bool)>;
}

/// Install the ticket key callback, reading the keys from the context's
/// ex_data slot `index`, which must hold a [`TicketKeysHandle`] set
/// through the crate's typed ex_data (see `tickets.rs`).
pub fn set_ticket_key_callback(ctx: &mut SslContextBuilder, index: c_int) {
    TICKET_INDEX.get_or_init(|| index);
    let cb: TicketKeyCb = ticket_cb;
    // SAFETY: the callback has the signature SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB
    // expects (the HMAC_CTX form, still supported by OpenSSL 3).
    unsafe {
        sys::SSL_CTX_callback_ctrl__fixed_rust(
            ctx.as_ptr(),
            SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB,
            Some(std::mem::transmute::<TicketKeyCb, unsafe extern "C" fn()>(
                cb,
            )),
        )
    };
}

static TICKET_INDEX: std::sync::OnceLock<c_int> = std::sync::OnceLock::new();

/// Where the ticket keys of a context are: a pointer to a value of this
/// type is stored in the context's ex_data slot by `tickets.rs`.
pub type TicketKeysHandle = std::sync::Arc<dyn TicketKeySource + Send + Sync>;

unsafe extern "C" fn ticket_cb(
    ssl: *mut sys::SSL,
    name: *mut u8,
    iv: *mut u8,
    ectx: *mut sys::EVP_CIPHER_CTX,
    hctx: *mut sys::HMAC_CTX,
    enc: c_int,
) -> c_int {
    let Some(&index) = TICKET_INDEX.get() else {
        return -1;
    };
    // SAFETY: OpenSSL calls us with a live connection; the slot holds a
    // `TicketKeysHandle` owned by the context (set through the crate's
    // typed ex_data, which stores a Box of it), alive as long as the
    // context. `name` is 16 bytes, `iv` is EVP_MAX_IV_LENGTH bytes.
    unsafe {
        let ctx = sys::SSL_get_SSL_CTX(ssl);
        let slot = sys::SSL_CTX_get_ex_data(ctx, index) as *const TicketKeysHandle;
        if slot.is_null() {
            return -1;
        }
        let keys = &*slot;
        let pick = |k: &KeyMaterial| {
            if k.wide {
                sys::EVP_aes_256_cbc()
            } else {
                sys::EVP_aes_128_cbc()
            }
        };
        if enc == 1 {
            let Some(k) = keys.encrypting() else {
                return -1;
            };
            let cipher = pick(&k);
            let ivlen = sys::EVP_CIPHER_get_iv_length(cipher);
            if sys::RAND_bytes(iv, ivlen) != 1 {
                return -1;
            }
            if sys::EVP_EncryptInit_ex(ectx, cipher, ptr::null_mut(), k.aes.as_ptr(), iv) != 1 {
                return -1;
            }
            if sys::HMAC_Init_ex(
                hctx,
                k.hmac.as_ptr().cast(),
                k.key_len() as c_int,
                sys::EVP_sha256(),
                ptr::null_mut(),
            ) != 1
            {
                return -1;
            }
            ptr::copy_nonoverlapping(k.name.as_ptr(), name, 16);
            1
        } else {
            let mut n = [0u8; 16];
            ptr::copy_nonoverlapping(name, n.as_mut_ptr(), 16);
            let Some((k, current)) = keys.find(&n) else {
                return 0;
            };
            if sys::HMAC_Init_ex(
                hctx,
                k.hmac.as_ptr().cast(),
                k.key_len() as c_int,
                sys::EVP_sha256(),
                ptr::null_mut(),
            ) != 1
            {
                return -1;
            }
            if sys::EVP_DecryptInit_ex(ectx, pick(&k), ptr::null_mut(), k.aes.as_ptr(), iv) != 1 {
                return -1;
            }
            // Renew the ticket under TLSv1.3 and when an older key was used.
            if sys::SSL_version(ssl) == TLS1_3_VERSION || !current {
                2
            } else {
                1
            }
        }
    }
}

/// The shared cache's lookup callback. The crate marks this unsafe because
/// a returned session must not belong to another context; ours are always
/// freshly decoded from DER, so they belong to none.
pub fn set_get_session_callback<F>(ctx: &mut SslContextBuilder, f: F)
where
    F: Fn(&[u8]) -> Option<openssl::ssl::SslSession> + 'static + Sync + Send,
{
    // SAFETY: see above: every session handed back is a new object.
    unsafe { ctx.set_get_session_callback(move |_ssl, id| f(id)) };
}

/// Drop a connection's session from the context's caches (builtin and,
/// through the remove callback, shared): nginx does this when a client
/// certificate is refused, so the session cannot be resumed.
pub fn remove_session(ssl: &SslRef) {
    if let Some(sess) = ssl.session() {
        // SAFETY: the session and the context are both live and the
        // session was made by this context.
        unsafe { ssl.ssl_context().remove_session(sess) };
    }
}

/// Test helper: offer a saved session on a client connection.
#[cfg(test)]
pub(crate) fn tests_set_session(ssl: &mut openssl::ssl::Ssl, s: &openssl::ssl::SslSession) {
    // SAFETY: the session came from a client context configured like the
    // one `ssl` was made from (the crate's only requirement).
    unsafe { ssl.set_session(s).unwrap() };
}

/// Test helper: how many CA names the context sends to clients.
#[cfg(test)]
pub(crate) fn tests_client_ca_count(ctx: &openssl::ssl::SslContextRef) -> usize {
    extern "C" {
        fn SSL_CTX_get_client_CA_list(ctx: *const sys::SSL_CTX) -> *mut sys::stack_st_X509_NAME;
    }
    // SAFETY: reads the list owned by the live context.
    unsafe {
        let l = SSL_CTX_get_client_CA_list(ctx.as_ptr());
        if l.is_null() {
            0
        } else {
            sys::OPENSSL_sk_num(l.cast()) as usize
        }
    }
}

/// Test helper: become `uid`/`gid` as a worker does after fork.
#[cfg(test)]
pub(crate) fn tests_drop_privileges(uid: u32, gid: u32) -> bool {
    // SAFETY: plain system calls on the calling process.
    unsafe {
        libc::setgroups(0, ptr::null()) == 0 && libc::setgid(gid) == 0 && libc::setuid(uid) == 0
    }
}

/// Test helper: bytes of heap in use (glibc).
#[cfg(test)]
pub(crate) fn tests_heap_in_use() -> usize {
    // SAFETY: a plain query of the allocator's statistics.
    unsafe { libc::mallinfo2().uordblks }
}

/// Test helper: make a named pipe.
#[cfg(test)]
pub(crate) fn tests_mkfifo(path: &CStr) -> c_int {
    // SAFETY: a NUL-terminated path.
    unsafe { libc::mkfifo(path.as_ptr(), 0o600) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_string_format() {
        // PEM routines, no start line
        let s = error_string(0x0480_006C);
        assert_eq!(s, "error:0480006C:PEM routines::no start line");
    }

    #[test]
    fn missing_file_names_bio_new_file() {
        let e = read_cert_chain(&PemSource::File(std::path::Path::new("/nonexistent/x.pem")))
            .unwrap_err();
        assert_eq!(e.what, "BIO_new_file() failed");
        assert!(!e.queue.errors().is_empty());
    }

    #[test]
    fn garbage_data_names_pem_call() {
        let e = read_cert_chain(&PemSource::Data(b"nothing here")).unwrap_err();
        assert_eq!(e.what, "PEM_read_bio_X509_AUX() failed");
        let e = read_crls(&PemSource::Data(b"")).err().unwrap();
        assert_eq!(e.what, "PEM_read_bio_X509_CRL() failed");
    }
}
