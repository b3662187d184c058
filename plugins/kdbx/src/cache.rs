//! The unlock cache in the kernel's user keyring: per database, the
//! password (`ov-kdbx-password:<path>`, filled by the engine's unlock
//! chain) and the derived key (`ov-kdbx-key:<path>`, filled here).
//!
//! Keys live in the user keyring (`@u`) with a timeout. Their permissions
//! grant the owning *user* read access, not only the possessor, because ssh
//! logins, `su` and systemd units start with a session keyring that does
//! not link `@u`: there the key is found but not possessed, and
//! possessor-only permissions would refuse the read.
//!
//! A derived key opens one database as long as its key derivation salt
//! stays the same: the cached value is bound to a hash of the database's
//! KDF parameters (salt included) and of the key file, and every use is
//! checked by the header HMAC before anything is decrypted.

use std::path::Path;

use linux_keyutils::{KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission};
use ov_plugin_api::{CheckReport, Context, Status};
use zeroize::Zeroizing;

pub const PASSWORD_KEY: &str = "ov-kdbx-password";
pub const DERIVED_KEY: &str = "ov-kdbx-key";
/// Set true in the context by the engine's unlock chain when the password
/// it hands over is one it caches (typed at the prompt, or from the cache):
/// only then is the key derived from it cached too. A password from
/// `OV_KDBX_PASSWORD` leaves nothing behind, as before.
pub const CACHE_HINT: &str = "ov.kdbx_cache_derived_key";
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

/// The user keyring, linked into this process's keyring first: in a session
/// that does not link `@u`, that link is what makes keys in `@u` possessed,
/// so this process may set their permissions and timeout.
fn user_keyring() -> Result<KeyRing, String> {
    let unavailable = |e| format!("the kernel user keyring is not available: {e:?}");
    let process =
        KeyRing::from_special_id(KeyRingIdentifier::Process, true).map_err(unavailable)?;
    // Best effort: reads still work through the user permissions below.
    let _ = process.link_keyring_id(KeyRingIdentifier::User);
    KeyRing::from_special_id(KeyRingIdentifier::User, true).map_err(unavailable)
}

/// The bytes of a cached key, if any.
pub fn load(desc: &str) -> Option<Zeroizing<Vec<u8>>> {
    let key = user_keyring().ok()?.search(desc).ok()?;
    key.read_to_vec().ok().map(Zeroizing::new)
}

/// Cache `bytes` for `ttl_secs` seconds, replacing an older value.
pub fn store(desc: &str, bytes: &[u8], ttl_secs: u64) -> Result<(), String> {
    let ring = user_keyring()?;
    let key = ring
        .add_key(desc, bytes)
        .map_err(|e| format!("cannot add {desc} to the user keyring: {e:?}"))?;
    let perms = KeyPermissionsBuilder::builder()
        .posessor(Permission::ALL)
        .user(
            Permission::VIEW
                | Permission::READ
                | Permission::WRITE
                | Permission::SEARCH
                | Permission::SETATTR,
        )
        .build();
    key.set_perms(perms)
        .map_err(|e| format!("cannot set permissions on {desc}: {e:?}"))?;
    // The kernel keeps the timeout in 32 bits; a larger number would wrap.
    let ttl = u32::try_from(ttl_secs).unwrap_or(u32::MAX);
    key.set_timeout(usize::try_from(ttl).unwrap_or(usize::MAX))
        .map_err(|e| format!("cannot set the timeout on {desc}: {e:?}"))?;
    Ok(())
}

/// Remove a cached key; `true` when there was one.
pub fn clear(desc: &str) -> bool {
    let Ok(ring) = user_keyring() else {
        return false;
    };
    match ring.search(desc) {
        Ok(key) => key.invalidate().is_ok() || ring.unlink_key(key).is_ok(),
        Err(_) => false,
    }
}

/// Time until a cached key expires, as `/proc/keys` shows it (`59m`,
/// `1h`, `perm`…); `None` when there is no such key.
pub fn time_left(desc: &str) -> Option<String> {
    let key = user_keyring().ok()?.search(desc).ok()?;
    let id = format!("{:08x}", key.get_id().0);
    let keys = std::fs::read_to_string("/proc/keys").ok()?;
    // Columns: id, flags, usage, timeout, permissions, uid, gid, type, description.
    keys.lines()
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))
        .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
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
