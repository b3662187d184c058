//! ov's client for the Secret Service (org.freedesktop.secrets) on the
//! D-Bus session bus, shared by the keyring backend and `ov secrets gpg`.
//!
//! - [`bus`]: the connection, with the rule that no call may hang, and the
//!   mapping of D-Bus errors to [`ov_plugin_api::BackendError`];
//! - [`wire`]: the read path's own socket, on the calling thread;
//! - [`session`]: the encrypted session the read path opens;
//! - [`wait`]: waiting for a locked collection or a missing provider.

pub mod bus;
pub mod session;
pub mod wait;
pub mod wire;
