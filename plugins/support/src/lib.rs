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

/// Why a file that should be private to its owner is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileProblem {
    /// Group or others may read or write it.
    Mode { path: PathBuf, mode: u32 },
    /// Someone else owns it.
    Owner {
        path: PathBuf,
        owner: u32,
        expected: u32,
    },
    /// A directory, socket, device …
    NotRegular { path: PathBuf },
}

impl FileProblem {
    pub fn path(&self) -> &Path {
        match self {
            FileProblem::Mode { path, .. }
            | FileProblem::Owner { path, .. }
            | FileProblem::NotRegular { path } => path,
        }
    }

    /// What is wrong, in one sentence.
    pub fn message(&self) -> String {
        match self {
            FileProblem::Mode { path, mode } => format!(
                "{} has mode {:04o}; it holds secrets and must be readable by its owner only (0600)",
                path.display(),
                mode & 0o7777
            ),
            FileProblem::Owner {
                path,
                owner,
                expected,
            } => format!(
                "{} is owned by {} but ov runs as {}; refusing to trust it",
                path.display(),
                user_label(*owner),
                user_label(*expected)
            ),
            FileProblem::NotRegular { path } => format!("{} is not a regular file", path.display()),
        }
    }

    /// The exact command that fixes it.
    pub fn fix(&self) -> String {
        match self {
            FileProblem::Mode { path, .. } => format!("chmod 600 {}", shell_quote(path)),
            FileProblem::Owner { path, expected, .. } => {
                format!("sudo chown {} {}", user_name(*expected), shell_quote(path))
            }
            FileProblem::NotRegular { path } => {
                format!(
                    "mv {0} {0}.bak  # then let ov create a fresh file",
                    shell_quote(path)
                )
            }
        }
    }

    /// The mode to set when `ov doctor --fix` may repair it by itself.
    pub fn safe_chmod(&self) -> Option<(PathBuf, u32)> {
        match self {
            FileProblem::Mode { path, .. } => Some((path.clone(), 0o600)),
            _ => None,
        }
    }
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

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

/// Check a file that holds secrets: a regular file, owned by the effective
/// user, mode 0600 or stricter. `Ok(false)` when it does not exist.
pub fn check_private_file(path: &Path) -> io::Result<Result<bool, FileProblem>> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if is_missing(&e) => return Ok(Ok(false)),
        Err(e) => return Err(e),
    };
    Ok(private_metadata_problem(path, &meta).map_or(Ok(true), Err))
}

/// The same rules as [`check_private_file`], for metadata already at hand
/// (from an open file descriptor, say).
pub fn private_metadata_problem(path: &Path, meta: &fs::Metadata) -> Option<FileProblem> {
    let path = path.to_path_buf();
    let expected = Uid::effective().as_raw();
    if !meta.is_file() {
        Some(FileProblem::NotRegular { path })
    } else if meta.uid() != expected {
        Some(FileProblem::Owner {
            path,
            owner: meta.uid(),
            expected,
        })
    } else if meta.mode() & 0o077 != 0 {
        Some(FileProblem::Mode {
            path,
            mode: meta.mode(),
        })
    } else {
        None
    }
}

/// Open `path` for reading only if it is a regular file. A FIFO, socket or
/// device is refused instead of waited on: the open does not block
/// (`O_NONBLOCK`), and the type is checked on the open descriptor, so
/// nothing can be swapped in between.
pub fn open_regular(path: &Path, extra_flags: i32) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC | extra_flags)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    use std::os::unix::fs::FileTypeExt;
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is {what}, not a regular file", path.display()),
    ))
}

/// All of a regular file ([`open_regular`]).
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    open_regular(path, 0)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// An io::Error with the path and the operation in its message.
pub fn io_context(op: &str, path: &Path, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("cannot {op} {}: {err}", path.display()))
}

/// A file that holds secrets: missing is fine, otherwise owner-only 0600.
pub fn private_file_report(id: &str, title: &str, path: &Path) -> CheckReport {
    match check_private_file(path) {
        Ok(Ok(false)) => report(
            id,
            title,
            Status::Ok,
            format!("{} does not exist", path.display()),
        ),
        Ok(Ok(true)) => report(
            id,
            title,
            Status::Ok,
            format!("{} is private to its owner", path.display()),
        ),
        Ok(Err(problem)) => {
            let mut r = report(id, title, Status::Fail, problem.message());
            r.fix = Some(problem.fix());
            r.auto_fix = problem
                .safe_chmod()
                .map(|(path, mode)| AutoFix::Chmod { path, mode });
            r
        }
        Err(e) => report(
            id,
            title,
            Status::Fail,
            format!("cannot inspect {}: {e}", path.display()),
        ),
    }
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

/// Create `dir` (and parents) if missing; new directories get `mode`.
pub fn create_dir_all_mode(dir: &Path, mode: u32) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| io_context("create directory", dir, e))
}

/// A directory variable counts only when it holds an absolute path.
fn xdg(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// ov's own directories, where a lock file may sit beside the file it
/// guards: `$XDG_CONFIG_HOME/ov`, `$XDG_DATA_HOME/ov`, `$XDG_STATE_HOME/ov`
/// (with their defaults under `$HOME`) and `/etc/ov` (`OV_SYSCONFDIR`).
fn own_dirs() -> Vec<PathBuf> {
    let home = xdg("HOME");
    let under_home = |var: &str, default: &str| {
        xdg(var)
            .or_else(|| home.as_ref().map(|h| h.join(default)))
            .map(|d| d.join("ov"))
    };
    [
        under_home("XDG_CONFIG_HOME", ".config"),
        under_home("XDG_DATA_HOME", ".local/share"),
        under_home("XDG_STATE_HOME", ".local/state"),
        Some(xdg("OV_SYSCONFDIR").unwrap_or_else(|| PathBuf::from("/etc/ov"))),
    ]
    .into_iter()
    .flatten()
    .map(|d| fs::canonicalize(&d).unwrap_or(d))
    .collect()
}

/// Where locks for files outside ov's own directories live: the user's
/// runtime directory (`$XDG_RUNTIME_DIR`, else `/run/user/UID` when it is
/// the user's), else `~/.cache/ov/locks`. Never the file's own directory,
/// where a lock file would be committed with a project.
fn lock_dir() -> Option<PathBuf> {
    let uid = Uid::effective().as_raw();
    let runtime = xdg("XDG_RUNTIME_DIR").or_else(|| {
        let run = PathBuf::from(format!("/run/user/{uid}"));
        fs::metadata(&run)
            .is_ok_and(|m| m.is_dir() && m.uid() == uid)
            .then_some(run)
    });
    match runtime {
        Some(r) => Some(r.join("ov").join("locks")),
        None => xdg("XDG_CACHE_HOME")
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|c| c.join("ov").join("locks")),
    }
}

/// The lock file that guards `path`. In ov's own directories it is
/// `.<name>.lock` beside the file; for any other file (a project's
/// `.secrets`, a KeePass database in a synced folder) it is
/// `<name>.<hash of the full path>.lock` in ov's lock directory under the
/// user's runtime directory, so nothing appears beside the user's file.
pub fn lock_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ov".to_owned());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // The same file reached by another spelling, or through a symlink,
    // takes the same lock.
    let (dir, name) = match fs::canonicalize(path) {
        Ok(real) if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) => (
            real.parent().map(Path::to_path_buf).unwrap_or(dir),
            real.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(name),
        ),
        _ => (fs::canonicalize(&dir).unwrap_or(dir), name),
    };
    if own_dirs().contains(&dir) {
        return dir.join(format!(".{name}.lock"));
    }
    let Some(locks) = lock_dir() else {
        return dir.join(format!(".{name}.lock"));
    };
    let digest = Sha256::digest(dir.join(&name).as_os_str().as_bytes());
    let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    // Shown in `ls`: which file the lock guards, then which copy of that name.
    let name: String = name
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .take(64)
        .collect();
    locks.join(format!("{}.{short}.lock", name.trim_start_matches('.')))
}

/// Run `f` while holding an exclusive lock on `path`'s lock file. The lock
/// is released when `f` returns, or by the kernel if the process dies.
pub fn with_lock<T, E: From<io::Error>>(
    path: &Path,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let lock = lock_path(path);
    if let Some(dir) = lock.parent() {
        create_dir_all_mode(dir, 0o700)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock)
        .map_err(|e| io_context("open lock file", &lock, e))?;
    let guard = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| io_context("lock", &lock, io::Error::from(errno)))?;
    remove_stale_temps(&write_target(path).unwrap_or_else(|_| path.to_path_buf()));
    let result = f();
    drop(guard);
    result
}

/// Every writer holds the lock while its temp file exists, so a temp file
/// found by the lock holder belongs to a writer that died (SIGKILL, power
/// loss) before its rename: remove it.
fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return;
    };
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix) && n.ends_with(".tmp") {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// The file a write to `path` replaces. A symlink is written through to
/// its target, so the link the user made keeps pointing at the new
/// content; the target must be a regular file owned by the user. Anything
/// else that is not a regular file (a directory, a FIFO, a link to nothing)
/// is refused rather than replaced.
pub fn write_target(path: &Path) -> io::Result<PathBuf> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if is_missing(&e) => return Ok(path.to_path_buf()),
        Err(e) => return Err(io_context("inspect", path, e)),
    };
    let refuse = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: {why}; ov does not replace it", path.display()),
        )
    };
    if meta.is_file() {
        return Ok(path.to_path_buf());
    }
    if !meta.file_type().is_symlink() {
        return Err(refuse("not a regular file".into()));
    }
    let target = match fs::canonicalize(path) {
        Ok(t) => t,
        Err(e) if is_missing(&e) => {
            let to = fs::read_link(path).unwrap_or_default();
            return Err(refuse(format!(
                "a symlink to {}, which does not exist",
                to.display()
            )));
        }
        Err(e) => return Err(io_context("resolve the symlink", path, e)),
    };
    let tmeta = fs::metadata(&target).map_err(|e| io_context("inspect", &target, e))?;
    if !tmeta.is_file() {
        return Err(refuse(format!(
            "a symlink to {}, which is not a regular file",
            target.display()
        )));
    }
    let uid = Uid::effective().as_raw();
    if tmeta.uid() != uid {
        return Err(refuse(format!(
            "a symlink to {}, which {} owns, not {}",
            target.display(),
            user_name(tmeta.uid()),
            user_name(uid)
        )));
    }
    Ok(target)
}

/// Replace `path` with `contents` atomically: temp file in the same
/// directory, fsync, rename, fsync the directory. An existing file keeps its
/// owner; its mode becomes `mode` (or stays as it was when `mode` is `None`,
/// with 0600 for a new file). A symlink is written through ([`write_target`]).
pub fn write_atomic(path: &Path, contents: &[u8], mode: Option<u32>) -> io::Result<()> {
    let target = write_target(path)?;
    let path = target.as_path();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_dir_all_mode(&dir, 0o700)?;
    let existing = fs::metadata(path).ok();
    let mode = mode
        .or_else(|| existing.as_ref().map(|m| m.mode() & 0o7777))
        .unwrap_or(0o600);

    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(
            ".{}.",
            path.file_name().unwrap_or_default().to_string_lossy()
        ))
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(&dir)
        .map_err(|e| io_context("create a temporary file in", &dir, e))?;
    // The umask may have narrowed the mode we asked for; set it exactly.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| io_context("set permissions on", tmp.path(), e))?;
    if let Some(meta) = &existing
        && (meta.uid() != Uid::effective().as_raw() || meta.gid() != Gid::effective().as_raw())
    {
        // Only root can give a file away; for others this keeps the
        // group when allowed and is otherwise a no-op failure we ignore.
        let _ = fchown(
            tmp.as_file(),
            Some(Uid::from_raw(meta.uid())),
            Some(Gid::from_raw(meta.gid())),
        );
    }
    tmp.write_all(contents)
        .map_err(|e| io_context("write", tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| io_context("sync", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| io_context("replace", path, e.error))?;
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Whether two paths name one file: through symlinks and `..` when both
/// exist, else by their absolute spelling.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => std::path::absolute(a).ok() == std::path::absolute(b).ok(),
    }
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
