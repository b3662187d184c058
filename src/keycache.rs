//! The unlock-secret cache in the kernel's user keyring.
//!
//! One `user` key per backend and target, `ov-<backend>:<target>` (for a
//! KeePass database, `ov-kdbx:<absolute path>`), so one database's password
//! is never offered to another (and parallel test environments never see
//! each other's). The keyring calls are `ov_plugin_support::kernel_keyring`,
//! which a backend may use too for what it derives from the secret.

use ov_plugin_api::Secret;
use ov_plugin_support::kernel_keyring;

/// The key description for `backend`'s secret that opens `target`.
pub fn description(backend: &str, target: &str) -> String {
    format!("ov-{backend}:{target}")
}

/// The cached secret, if any.
pub fn load(desc: &str) -> Option<Secret> {
    let bytes = kernel_keyring::load(desc)?;
    std::str::from_utf8(&bytes).ok().map(Secret::from)
}

/// Cache a secret for `ttl_secs` seconds, replacing an older one.
pub fn store(desc: &str, secret: &Secret, ttl_secs: u64) -> Result<(), String> {
    kernel_keyring::store(desc, secret.expose().as_bytes(), ttl_secs)
}

/// Remove the cached secret; `true` when there was one.
pub fn clear(desc: &str) -> bool {
    kernel_keyring::clear(desc)
}

/// The time until the cached key expires, as the kernel shows it (`59m`,
/// `1h`, `perm` for never).
pub fn time_left(desc: &str) -> Option<String> {
    kernel_keyring::time_left(desc)
}
