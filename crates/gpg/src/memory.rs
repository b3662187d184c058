//! Where plaintext may touch a filesystem: memory filesystems only.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Is `dir` on a filesystem kept in memory (tmpfs, ramfs), so that what is
/// written there never reaches a disk?
pub fn on_memory_fs(dir: &Path) -> bool {
    use nix::sys::statfs::{FsType, TMPFS_MAGIC, statfs};
    // linux/magic.h; nix names no constant for ramfs.
    const RAMFS_MAGIC: FsType = FsType(0x8584_58f6);
    statfs(dir).is_ok_and(|s| {
        let t = s.filesystem_type();
        t == TMPFS_MAGIC || t == RAMFS_MAGIC
    })
}

/// Where plaintext may be written: `$XDG_RUNTIME_DIR` when it is a
/// directory on a memory filesystem, else `/dev/shm` when that is one.
pub fn memory_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/dev/shm")])
        .find(|p| p.is_dir() && on_memory_fs(p))
}

/// A directory only the user can enter, for plaintext that must touch a
/// filesystem: on `$XDG_RUNTIME_DIR` or `/dev/shm`, memory filesystems,
/// never on a disk (`/tmp` usually is one). Removed on drop.
pub fn private_dir() -> Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let base = memory_dir().ok_or_else(|| {
        Error::new(
            "no memory filesystem for the plaintext: $XDG_RUNTIME_DIR is not set or not a tmpfs, and /dev/shm is not one either",
        )
        .hint("export XDG_RUNTIME_DIR=/run/user/$(id -u)   # the tmpfs systemd-logind makes for you")
    })?;
    let dir = tempfile::Builder::new()
        .prefix("ov-gpg.")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(&base)
        .map_err(|e| {
            Error::new(format!(
                "cannot create a private directory in {}: {e}",
                base.display()
            ))
        })?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}
