//! Files that hold secrets: the rules, the fix, and opening them safely.

use super::*;

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
            FileProblem::Owner { path, expected, .. } => as_root(&format!(
                "chown {} {}",
                user_name(*expected),
                shell_quote(path)
            )),
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
