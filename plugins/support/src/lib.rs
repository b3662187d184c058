//! File helpers shared by the engine and the backends.
//!
//! - [`check_private_file`]: the one place that decides whether a file that
//!   holds secrets is safe to read, and the one place that words the fix, so
//!   an error and a doctor finding about the same file say the same thing.
//! - [`with_lock`] and [`write_atomic`]: writers take an exclusive lock on a
//!   lock file ([`lock_path`]: beside the file in ov's own directories,
//!   under the user's runtime directory for any other file), write a temp file in the same directory, fsync it and
//!   rename it over the target, so a reader sees the old or the new content
//!   and concurrent writers never lose each other's changes.

pub mod kernel_keyring;

mod private;
mod write;

pub use private::*;
pub use write::*;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Gid, Uid, User, fchown};
use ov_plugin_api::{AutoFix, CheckReport, Status};
use sha2::{Digest, Sha256};

/// The user's name, or the number when there is no passwd entry.
pub fn user_name(uid: u32) -> String {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

fn user_label(uid: u32) -> String {
    format!("{} (uid {uid})", user_name(uid))
}

/// `command` as the user would type it to run it as root: with `sudo` in
/// front, unless ov already runs as root (where `sudo` may not even be
/// installed, and the fix would fail when pasted).
pub fn as_root(command: &str) -> String {
    if Uid::effective().is_root() {
        command.to_owned()
    } else {
        format!("sudo {command}")
    }
}

/// Quote a path for a POSIX shell when it needs it.
pub fn shell_quote(path: &Path) -> String {
    let s = path.to_string_lossy();
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%=".contains(&b));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The file is not there: not found, or a path component is not a directory.
pub fn is_missing(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// A check report with no fix and no prerequisites.
pub fn report(id: &str, title: &str, status: Status, finding: impl Into<String>) -> CheckReport {
    CheckReport {
        id: id.to_owned(),
        title: title.to_owned(),
        status,
        finding: finding.into(),
        fix: None,
        auto_fix: None,
        depends_on: Vec::new(),
    }
}

/// `r` with the command that fixes what it found.
pub fn with_fix(mut r: CheckReport, fix: impl Into<String>) -> CheckReport {
    r.fix = Some(fix.into());
    r
}

/// `cannot parse FILE:LINE: reason` for a TOML syntax error.
pub fn toml_error_message(path: &Path, text: &str, err: &toml_edit::TomlError) -> String {
    let at = err
        .span()
        .map(|s| {
            format!(
                ":{}",
                text[..s.start.min(text.len())].matches('\n').count() + 1
            )
        })
        .unwrap_or_default();
    format!(
        "cannot parse {}{at}: {}",
        path.display(),
        err.message().trim()
    )
}

/// The command that opens a file for the user to repair by hand.
pub fn edit_command(path: &Path) -> String {
    format!("${{EDITOR:-vi}} {}", shell_quote(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_sets_mode_and_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/creds.toml");
        write_atomic(&p, b"a = 1\n", Some(0o600)).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "a = 1\n");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(check_private_file(&p).unwrap(), Ok(true));
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn existing_mode_is_kept_when_not_given() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        fs::write(&p, "x").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&p, b"y", None).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o640);
    }

    #[test]
    fn open_mode_is_a_problem_with_a_chmod_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c");
        fs::write(&p, "x").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let problem = check_private_file(&p).unwrap().unwrap_err();
        assert!(
            problem.message().contains("mode 0644"),
            "{}",
            problem.message()
        );
        assert_eq!(problem.fix(), format!("chmod 600 {}", p.display()));
        assert_eq!(problem.safe_chmod(), Some((p.clone(), 0o600)));
    }

    #[test]
    fn missing_file_is_not_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            check_private_file(&dir.path().join("nope")).unwrap(),
            Ok(false)
        );
    }

    #[test]
    fn shell_quote_quotes_only_when_needed() {
        assert_eq!(shell_quote(Path::new("/a/b.toml")), "/a/b.toml");
        assert_eq!(shell_quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    }

    #[test]
    fn the_lock_holder_removes_temp_files_of_dead_writers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("db.kdbx");
        fs::write(&p, "x").unwrap();
        let stale = dir.path().join(".db.kdbx.Ab12Cd.tmp");
        let unrelated = dir.path().join(".other.kdbx.Ab12Cd.tmp");
        fs::write(&stale, "half").unwrap();
        fs::write(&unrelated, "keep").unwrap();
        with_lock(&p, || -> io::Result<()> { Ok(()) }).unwrap();
        assert!(!stale.exists());
        assert!(unrelated.exists());
    }

    #[test]
    fn lock_serialises_writers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("counter");
        fs::write(&p, "0").unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || {
                    with_lock(&p, || -> io::Result<()> {
                        let n: u32 = fs::read_to_string(&p)?.parse().unwrap();
                        write_atomic(&p, (n + 1).to_string().as_bytes(), None)
                    })
                    .unwrap()
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(fs::read_to_string(&p).unwrap(), "8");
    }
}
