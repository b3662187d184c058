//! The kdbx password cache in the kernel's user keyring: one `user` key
//! per database, `ov-kdbx-password:<absolute path>`, so one database's
//! password is never offered to another (and parallel test environments
//! never see each other's). The keyring calls and the derived-key cache
//! beside it live in the kdbx backend (`ov_plugin_kdbx::cache`).

use std::path::Path;

use ov_plugin_api::Secret;
use ov_plugin_kdbx::cache;

/// The key description for a database.
pub fn description(db: &Path) -> String {
    cache::password_description(db)
}

/// The cached password, if any.
pub fn load(desc: &str) -> Option<Secret> {
    let bytes = cache::load(desc)?;
    std::str::from_utf8(&bytes).ok().map(Secret::from)
}

/// Cache a password for `ttl_secs` seconds, replacing an older one.
pub fn store(desc: &str, password: &Secret, ttl_secs: u64) -> Result<(), String> {
    cache::store(desc, password.expose().as_bytes(), ttl_secs)
}

/// Remove the cached password; `true` when there was one.
pub fn clear(desc: &str) -> bool {
    cache::clear(desc)
}
