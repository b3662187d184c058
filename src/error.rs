//! The error type at the CLI edge is the one error type of ov (see
//! [`ov_plugin_api::Error`]): a kind, a message, the commands that fix it,
//! the error it was caused by, and how the process should exit. It is
//! printed in one place, `cli::main`.

pub use ov_plugin_api::{EXIT_ERROR, EXIT_USAGE, ErrorClass, ErrorKind as Kind};

/// The name the engine uses for [`ov_plugin_api::Error`].
pub type OvError = ov_plugin_api::Error;

pub type Result<T, E = OvError> = std::result::Result<T, E>;
