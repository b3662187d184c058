//! Hiding secret values given on the command line from other users' `ps`.
//!
//! `ov secrets set S K VALUE` and `--passphrase VALUE` are part of the
//! interface, and any user can read another's `/proc/PID/cmdline` for as
//! long as the process runs (`ov secrets gpg setup` generates a key for
//! seconds). Only the binary can reach the kernel's copy of its arguments,
//! so it registers the function that overwrites them; the library calls
//! [`hide`] as soon as it knows which value is secret.

use std::sync::OnceLock;

static HIDER: OnceLock<fn(&[u8])> = OnceLock::new();

/// Called once by the `ov` binary at start-up.
pub fn set_hider(hider: fn(&[u8])) {
    let _ = HIDER.set(hider);
}

/// Overwrite every argument equal to `value`, and the value part of every
/// `--flag=value`, in the process's visible command line. Nothing happens
/// where no hider was registered (a library user, a test harness).
pub fn hide(value: &str) {
    if let Some(hider) = HIDER.get()
        && !value.is_empty()
    {
        hider(value.as_bytes());
    }
}
