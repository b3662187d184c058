//! The unlock-secret cache in the kernel's user keyring.
//!
//! One `user` key per backend and target, `ov-<backend>:<target>` (for a
//! KeePass database, `ov-kdbx:<absolute path>`), so one database's password
//! is never offered to another (and parallel test environments never see
//! each other's). The key lives in the user keyring (`@u`) with a timeout.
//! Its permissions grant the owning *user* read access, not only the
//! possessor, because ssh logins, `su` and systemd units start with a
//! session keyring that does not link `@u`: there the key is found but not
//! possessed, and possessor-only permissions would refuse the read.

use linux_keyutils::{KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission};
use ov_plugin_api::Secret;
use zeroize::Zeroizing;

/// The key description for `backend`'s secret that opens `target`.
pub fn description(backend: &str, target: &str) -> String {
    format!("ov-{backend}:{target}")
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

/// The cached password, if any.
pub fn load(desc: &str) -> Option<Secret> {
    let key = user_keyring().ok()?.search(desc).ok()?;
    let bytes = Zeroizing::new(key.read_to_vec().ok()?);
    std::str::from_utf8(&bytes).ok().map(Secret::from)
}

/// Cache a password for `ttl_secs` seconds, replacing an older one.
pub fn store(desc: &str, password: &Secret, ttl_secs: u64) -> Result<(), String> {
    let ring = user_keyring()?;
    let key = ring
        .add_key(desc, password.expose().as_bytes())
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

/// Remove the cached password; `true` when there was one.
pub fn clear(desc: &str) -> bool {
    let Ok(ring) = user_keyring() else {
        return false;
    };
    match ring.search(desc) {
        Ok(key) => key.invalidate().is_ok() || ring.unlink_key(key).is_ok(),
        Err(_) => false,
    }
}

/// The time until the cached key expires, as the kernel shows it (`59m`,
/// `1h`, `perm` for never), read from `/proc/keys`: id, flags, usage,
/// then the expiry (the column after it is the permission mask).
pub fn time_left(desc: &str) -> Option<String> {
    let key = user_keyring().ok()?.search(desc).ok()?;
    let id = format!("{:08x}", key.get_id().0);
    let keys = std::fs::read_to_string("/proc/keys").ok()?;
    keys.lines()
        .find(|l| l.starts_with(&id))
        .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
}
