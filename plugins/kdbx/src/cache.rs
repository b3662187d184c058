//! The unlock cache in the kernel's user keyring, per database: the
//! password (`ov-kdbx:<path>`, filled by the engine's unlock chain) and
//! the derived key (`ov-kdbx-key:<path>`, filled here), both through
//! `ov_plugin_support::kernel_keyring`.
//!
//! A derived key opens one database as long as its key derivation salt
//! stays the same: the cached value is bound to a hash of the database's
//! KDF parameters (salt included) and of the key file, and every use is
//! checked by the header HMAC before anything is decrypted.

use std::path::Path;

use ov_plugin_api::{CheckReport, Context, Status};
pub use ov_plugin_support::kernel_keyring::{clear, load, store, time_left};
use zeroize::Zeroizing;

/// The engine's cache key for the password (`ov-<backend>:<target>`).
pub const PASSWORD_KEY: &str = "ov-kdbx";
pub const DERIVED_KEY: &str = "ov-kdbx-key";
/// The cached derived key's layout version, so a later layout is not misread.
const LAYOUT: u8 = 1;

/// The description of the cached password for a database.
pub fn password_description(db: &Path) -> String {
    format!("{PASSWORD_KEY}:{}", db.display())
}

/// The description of the cached derived key for a database.
pub fn derived_description(db: &Path) -> String {
    format!("{DERIVED_KEY}:{}", db.display())
}

/// Whether `secrets.kdbx_cache` allows caching (on unless set false).
pub fn enabled(ctx: &Context) -> bool {
    ctx.settings
        .get("secrets.kdbx_cache")
        .and_then(serde_json::Value::as_bool)
        != Some(false)
}

/// `secrets.kdbx_cache_timeout` in seconds.
pub fn ttl(ctx: &Context) -> u64 {
    ctx.settings
        .get("secrets.kdbx_cache_timeout")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(3600)
}

/// The derived key in a cached value, if it was cached with this binding
/// (a hash of the KDF parameters and the key file).
pub fn derived_key(bytes: &[u8], binding: &[u8; 32]) -> Option<crate::read::Key32> {
    let (&layout, rest) = bytes.split_first()?;
    if layout != LAYOUT || rest.len() != 64 || rest[..32] != binding[..] {
        return None;
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&rest[32..]);
    Some(key)
}

/// Cache the derived key of `db` with its binding.
pub fn store_derived(db: &Path, binding: &[u8; 32], key: &[u8; 32], ttl_secs: u64) {
    let mut bytes = Zeroizing::new(Vec::with_capacity(65));
    bytes.push(LAYOUT);
    bytes.extend_from_slice(binding);
    bytes.extend_from_slice(key);
    // A missing kernel keyring (some containers) only costs a derivation
    // next time; the doctor's kdbx.cache check reports it.
    let _ = store(&derived_description(db), &bytes, ttl_secs);
}

/// Forget the derived key of `db` (`ov secrets lock`); `true` when one was cached.
pub fn forget_derived(db: &Path) -> bool {
    clear(&derived_description(db))
}

/// The doctor's `kdbx.cache` line: what is cached for `db`, and for how long.
pub fn check(db: &Path, enabled: bool) -> CheckReport {
    let (id, title) = ("kdbx.cache", "KeePass password cache");
    if !enabled {
        return ov_plugin_support::report(
            id,
            title,
            Status::Ok,
            "off (secrets.kdbx_cache = false): every command asks or reads OV_KDBX_PASSWORD",
        );
    }
    let describe = |desc: &str, what: &str| {
        load(desc).map(|_| match time_left(desc) {
            Some(left) if left != "perm" => format!("{what} (expires in {left})"),
            _ => what.to_owned(),
        })
    };
    let cached: Vec<String> = [
        describe(&derived_description(db), "the derived key"),
        describe(&password_description(db), "the password"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let finding = if cached.is_empty() {
        format!(
            "nothing cached for {} (`ov secrets unlock` caches the key)",
            db.display()
        )
    } else {
        format!(
            "{} cached for {} in the user keyring",
            cached.join(" and "),
            db.display()
        )
    };
    ov_plugin_support::report(id, title, Status::Ok, finding)
}
