//! Machine keys and the per-app sealed bundles they open.
//!
//! A machine key is a file of exactly 32 random bytes. It never encrypts
//! anything itself: for each app/env it is registered for, HKDF-SHA256
//! derives an X25519 age identity from it and the app/env name, so one key
//! file opens exactly the bundles sealed to the identities of the apps it
//! was registered for. The registry keeps only the public age recipient, so
//! re-sealing after a change needs the user's store but never the key file.
//!
//! A bundle is an age file (X25519 recipients) whose plaintext is a `.env`
//! text in the format of [`crate::dotenv`], so an administrator can open
//! one by hand with `age -d` and the identity `ov auth machine-key identity`
//! prints.

mod bundle;
mod key_file;
mod registry;

use std::path::{Path, PathBuf};

use crate::error::{OvError, Result};

pub use bundle::{
    Collected, Sealed, after_change, apps_with, collect, collect_complete, envs_holding,
    envs_with_bundles, open, seal, usable,
};
pub use key_file::{KeyProblem, MachineKey, check, chown_command, create, load};
pub use registry::{Registration, Registry, default_bundle_path, now};

/// The exact size of a machine key file.
pub const KEY_LEN: usize = 32;
/// Bundles larger than this are refused unread.
const MAX_BUNDLE_BYTES: u64 = 64 * 1024 * 1024;
const HKDF_SALT: &[u8] = b"ov machine key v1";
/// The first line of every bundle's plaintext.
const BUNDLE_MAGIC: &str = "# ov bundle ";
/// The env an app's secrets live in when `--env` is left out.
pub const DEFAULT_ENV: &str = "default";

/// App and env names go into a service name (`app/env`), a file path and
/// the HKDF info string, so they are kept to one plain path segment.
pub fn validate_app_env(app: &str, env: &str) -> Result<()> {
    for (what, v) in [("app", app), ("env", env)] {
        let ok = !v.is_empty()
            && v.len() <= 64
            && !v.starts_with('.')
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !ok {
            return Err(OvError::usage(format!(
                "'{v}' is not a valid {what} name: use 1-64 letters, digits, '.', '_' or '-', not starting with '.'"
            ))
            .hint("ov secrets list --app myapp --env production"));
        }
    }
    Ok(())
}

/// The store service holding an app's secrets.
pub fn service(app: &str, env: &str) -> String {
    format!("{app}/{env}")
}

/// The command that writes (or rotates) a key file.
pub fn derive_command(path: &Path, app: &str, env: &str) -> String {
    format!(
        "ov auth derive-machine-key --out {} --app {app} --env {env} --force",
        ov_plugin_support::shell_quote(path)
    )
}

/// The command that re-seals an app's bundle.
pub fn seal_command(app: &str, env: &str) -> String {
    format!("ov auth machine-key seal --app {app} --env {env}")
}

/// Absolute form of a user-given path, without resolving symlinks (the
/// run-time check must see a symlink to refuse it).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
