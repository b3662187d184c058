//! Whether a plugin library may be loaded: loading runs its initialisers
//! inside ov, with the user's secrets in reach, so a library anyone else
//! could have written or replaced is refused before it is opened.
//!
//! The rules are the ones sshd applies to its files: the library and every
//! directory above it up to `/` belong to root or to the user, and none is
//! writable by group or others. A world-writable directory with the sticky
//! bit (`/tmp`) is allowed on the way only when the next step below it is
//! the user's own: others cannot rename or remove what is not theirs there.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::unistd::Uid;
use ov_plugin_support::{shell_quote, user_name};

/// Why a library is not trusted, and the command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    pub reason: String,
    pub fix: String,
}

const STICKY: u32 = 0o1000;

fn owner_ok(uid: u32, me: u32) -> bool {
    uid == 0 || uid == me
}

/// Check `file` (a plugin library) and every directory above it, after
/// resolving symlinks; `via` is the directory it was found through, whose
/// own chain is checked too (a link there could be re-pointed by whoever
/// can write that directory).
pub fn check_plugin(file: &Path, via: Option<&Path>) -> Result<(), Untrusted> {
    let me = Uid::effective().as_raw();
    let real = std::fs::canonicalize(file).map_err(|e| Untrusted {
        reason: format!("cannot resolve {}: {e}", file.display()),
        fix: format!("ls -l {}", shell_quote(file)),
    })?;
    let meta = std::fs::metadata(&real).map_err(|e| Untrusted {
        reason: format!("cannot inspect {}: {e}", real.display()),
        fix: format!("ls -l {}", shell_quote(&real)),
    })?;
    if !meta.is_file() {
        return Err(Untrusted {
            reason: format!("{} is not a regular file", real.display()),
            fix: format!("rm {}", shell_quote(file)),
        });
    }
    if !owner_ok(meta.uid(), me) {
        return Err(Untrusted {
            reason: format!(
                "{} belongs to {}, not to root or {}",
                real.display(),
                user_name(meta.uid()),
                user_name(me)
            ),
            fix: format!(
                "rm {}   # or, if you trust it: {}",
                shell_quote(file),
                ov_plugin_support::as_root(&format!("chown root: {}", shell_quote(&real)))
            ),
        });
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(Untrusted {
            reason: format!(
                "{} is writable by {} (mode {:o})",
                real.display(),
                who_writes(meta.permissions().mode()),
                meta.permissions().mode() & 0o7777
            ),
            fix: format!("chmod go-w {}", shell_quote(&real)),
        });
    }
    let mine = meta.uid() == me;
    if let Some(dir) = real.parent() {
        check_dirs(dir, mine, me)?;
    }
    if let Some(dir) = via
        && let Ok(dir) = std::fs::canonicalize(dir)
    {
        // The directory named in the search path decides what is loaded.
        check_dirs(&dir, mine, me)?;
    }
    Ok(())
}

fn who_writes(mode: u32) -> &'static str {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "its group and everyone",
        (true, false) => "its group",
        _ => "everyone",
    }
}

/// `first` (resolved) and every directory above it up to `/`.
fn check_dirs(first: &Path, child_is_mine: bool, me: u32) -> Result<(), Untrusted> {
    let mut below_is_mine = child_is_mine;
    for dir in first.ancestors() {
        let meta = std::fs::metadata(dir).map_err(|e| Untrusted {
            reason: format!("cannot inspect {}: {e}", dir.display()),
            fix: format!("ls -ld {}", shell_quote(dir)),
        })?;
        let mode = meta.permissions().mode();
        if !owner_ok(meta.uid(), me) {
            return Err(Untrusted {
                reason: format!(
                    "{} belongs to {}, who could replace the plugin in it",
                    dir.display(),
                    user_name(meta.uid())
                ),
                fix: format!(
                    "move the plugin to a directory of yours or root's, such as {}",
                    crate::paths::SYSTEM_PLUGIN_DIR
                ),
            });
        }
        let open = mode & 0o022 != 0;
        let sticky_world = mode & STICKY != 0 && mode & 0o002 != 0;
        if open && !(sticky_world && below_is_mine) {
            return Err(Untrusted {
                reason: format!(
                    "{} is writable by {} (mode {:o}), who could replace the plugin in it",
                    dir.display(),
                    who_writes(mode),
                    mode & 0o7777
                ),
                fix: format!("chmod go-w {}", shell_quote(dir)),
            });
        }
        below_is_mine = meta.uid() == me;
    }
    Ok(())
}
