//! Small secrets in the kernel's user keyring, with a timeout: the engine
//! caches unlock secrets here (`ov-<backend>:<target>`), and a backend may
//! cache what it derives from one (the kdbx backend's derived key).
//!
//! Keys live in the user keyring (`@u`). Their permissions grant the owning
//! *user* read access, not only the possessor, because ssh logins, `su` and
//! systemd units start with a session keyring that does not link `@u`:
//! there the key is found but not possessed, and possessor-only permissions
//! would refuse the read.

use linux_keyutils::{KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission};
use zeroize::Zeroizing;

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
