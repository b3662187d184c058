//! `ov-plugin-api`: the contract between `ov` and its backend plugins.
//!
//! A backend implements [`Backend`]. Linked into `ov` it answers the
//! protocol's [`Request`]s in process ([`client::Linked`]); built as a
//! `cdylib` with [`export_plugin!`] it is loaded at run time and gets the
//! same messages as JSON over one C-ABI entry point ([`ffi`]). Either way
//! the host calls it through one [`client::Client`]. This crate does no I/O
//! of its own.

mod backend;
pub mod client;
mod describe;
mod error;
pub mod ffi;
mod proto;
mod secret;

pub use backend::{Backend, dispatch, service_matches};
pub use describe::{Binding, CreateRequest, Created, SettingKind, SettingSpec, UnlockSpec};
pub use error::{BackendError, EXIT_ERROR, EXIT_USAGE, Error, ErrorClass, ErrorKind};
pub use proto::{
    AutoFix, Availability, CheckDecl, CheckReport, Context, Description, EntryList, EntryRef,
    PROTOCOL, ProtocolVersion, Request, Response, Status,
};
pub use secret::{Secret, SecretBytes};
pub use zeroize;

/// The largest value a backend is asked to store, and the most `ov` reads
/// for one from a pipe: 1 MiB.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
