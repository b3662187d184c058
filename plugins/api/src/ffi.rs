//! The C ABI a plugin library exports: one entry symbol returning a
//! [`PluginDecl`]. Everything else is JSON messages through `call`.
//!
//! The entry symbol is named after the crate (`ov_plugin_entry_<crate>`), so
//! several plugin crates can be linked into one binary without clashing. The
//! host finds it by its prefix among the library's exported symbols, so a
//! renamed library still loads.
//!
//! Two versions guard the boundary: [`ABI_VERSION`] for the C layout here,
//! read before anything else, and [`crate::PROTOCOL`] for the messages,
//! exchanged by the first request ([`crate::Request::Hello`]).

use std::panic::{AssertUnwindSafe, catch_unwind};

use zeroize::Zeroize;

use crate::{Backend, BackendError, ErrorKind, Request, Response, dispatch};

/// Bumped on any change to [`PluginDecl`] or the calling convention of its
/// functions; message changes bump [`crate::PROTOCOL`] instead.
pub const ABI_VERSION: u32 = 1;

/// Prefix of the entry symbol; the crate name follows.
pub const ENTRY_PREFIX: &str = "ov_plugin_entry_";

/// Request bytes in, response bytes out. The returned buffer belongs to the
/// plugin and must be handed back to `free`.
pub type CallFn =
    unsafe extern "C" fn(req: *const u8, req_len: usize, out_len: *mut usize) -> *mut u8;
pub type FreeFn = unsafe extern "C" fn(ptr: *mut u8, len: usize);
pub type EntryFn = unsafe extern "C" fn() -> *const PluginDecl;

/// What the entry symbol returns. `abi_version` stays the first field in
/// every version, so a host can read it before trusting the rest.
#[repr(C)]
#[derive(Debug)]
pub struct PluginDecl {
    pub abi_version: u32,
    pub call: CallFn,
    pub free: FreeFn,
}

/// The entry symbol a library of this file stem (`libov_plugin_config`) has
/// when it keeps the name it was built with: the host tries it first.
pub fn entry_symbol_for_stem(stem: &str) -> String {
    let crate_name = stem.strip_prefix("lib").unwrap_or(stem);
    format!("{ENTRY_PREFIX}{crate_name}")
}

/// Encode a response; never fails (falls back to an internal error).
pub fn encode_response(response: &Response) -> Vec<u8> {
    serde_json::to_vec(response).unwrap_or_else(|e| {
        let fallback = Response::Error(BackendError::of(
            ErrorKind::Internal,
            format!("plugin could not encode its answer: {e}"),
        ));
        serde_json::to_vec(&fallback).unwrap_or_default()
    })
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".to_owned())
}

/// Decode a request, dispatch it, encode the answer; a panic in the backend
/// becomes an `internal` error instead of unwinding into the host.
pub fn handle_bytes(backend: &dyn Backend, request: &[u8]) -> Vec<u8> {
    let response = catch_unwind(AssertUnwindSafe(|| {
        match serde_json::from_slice::<Request>(request) {
            Ok(req) => dispatch(backend, req),
            Err(e) => Response::Error(BackendError::of(
                ErrorKind::Unsupported,
                format!("plugin could not read the request: {e}"),
            )),
        }
    }))
    .unwrap_or_else(|payload| {
        Response::Error(BackendError::of(
            ErrorKind::Internal,
            format!("plugin panicked: {}", panic_message(payload.as_ref())),
        ))
    });
    encode_response(&response)
}

/// The body of a plugin's exported `call`.
///
/// # Safety
/// `req` must point to `req_len` readable bytes and `out_len` must be writable.
pub unsafe fn ffi_call(
    backend: &dyn Backend,
    req: *const u8,
    req_len: usize,
    out_len: *mut usize,
) -> *mut u8 {
    // SAFETY: the caller promises `req_len` readable bytes at `req`.
    let request = if req.is_null() {
        &[][..]
    } else {
        unsafe { std::slice::from_raw_parts(req, req_len) }
    };
    let bytes = handle_bytes(backend, request).into_boxed_slice();
    // SAFETY: the caller promises `out_len` is writable.
    unsafe { *out_len = bytes.len() };
    Box::into_raw(bytes).cast::<u8>()
}

/// The body of a plugin's exported `free`: wipe and release a response.
///
/// # Safety
/// `ptr`/`len` must come from one earlier [`ffi_call`] of the same library.
pub unsafe extern "C" fn ffi_free(ptr: *mut u8, len: usize) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: `ptr` and `len` describe a boxed slice leaked by `ffi_call`.
    let mut bytes = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) };
    bytes.zeroize();
}

/// Make a backend crate loadable as a `cdylib`. Give it an expression that
/// builds the backend; it runs once, on the first request.
///
/// ```text
/// ov_plugin_api::export_plugin!(ConfigBackend::default());
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($make:expr) => {
        #[doc(hidden)]
        pub mod __ov_plugin_export {
            use super::*;

            fn backend() -> &'static dyn $crate::Backend {
                static BACKEND: ::std::sync::OnceLock<::std::boxed::Box<dyn $crate::Backend>> =
                    ::std::sync::OnceLock::new();
                BACKEND
                    .get_or_init(|| ::std::boxed::Box::new($make))
                    .as_ref()
            }

            unsafe extern "C" fn call(
                req: *const u8,
                req_len: usize,
                out_len: *mut usize,
            ) -> *mut u8 {
                // SAFETY: the host passes a valid buffer and out pointer.
                unsafe { $crate::ffi::ffi_call(backend(), req, req_len, out_len) }
            }

            static DECL: $crate::ffi::PluginDecl = $crate::ffi::PluginDecl {
                abi_version: $crate::ffi::ABI_VERSION,
                call,
                free: $crate::ffi::ffi_free,
            };

            #[unsafe(export_name = concat!("ov_plugin_entry_", env!("CARGO_CRATE_NAME")))]
            pub extern "C" fn entry() -> *const $crate::ffi::PluginDecl {
                &DECL
            }
        }
    };
}
