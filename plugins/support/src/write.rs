//! Writing: locks, atomic replacement, private directories.

use super::*;

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
