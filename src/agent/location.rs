//! Where an agent listens and keeps its files, and which of those places
//! can be trusted.
//!
//! Beside the socket `S` live `S.lock` (held for the agent's life: one
//! agent per socket), `S.pid`, and for an interactive agent `S.token`, the
//! session token clients sign with. The daemon's log is `S.log`.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Kind, OvError, Result};
use crate::paths::Paths;

/// `ov-agent/ov-agent.sock` under `$XDG_RUNTIME_DIR`.
pub const DIR_NAME: &str = "ov-agent";
pub const SOCKET_NAME: &str = "ov-agent.sock";
/// The rendezvous file in `/etc/ov`: one line, the socket's path.
pub const RENDEZVOUS_NAME: &str = "agent.socket";

/// The socket and the files beside it.
#[derive(Debug, Clone)]
pub struct Location {
    pub socket: PathBuf,
    pub pid_file: PathBuf,
}

fn beside(socket: &Path, ext: &str) -> PathBuf {
    let mut s = socket.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

impl Location {
    pub fn new(socket: PathBuf, pid_file: Option<PathBuf>) -> Location {
        let socket = crate::machine_key::absolute(&socket);
        let pid_file = pid_file.unwrap_or_else(|| beside(&socket, "pid"));
        Location { socket, pid_file }
    }

    pub fn lock_file(&self) -> PathBuf {
        beside(&self.socket, "lock")
    }

    pub fn token_file(&self) -> PathBuf {
        beside(&self.socket, "token")
    }

    pub fn log_file(&self) -> PathBuf {
        beside(&self.socket, "log")
    }

    /// The pid in the pid file, if it holds one.
    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether an agent holds this socket's lock now.
    pub fn locked(&self) -> bool {
        let Ok(f) = std::fs::File::open(self.lock_file()) else {
            return false;
        };
        match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(_held) => false,
            Err((_, e)) => e == nix::errno::Errno::EWOULDBLOCK,
        }
    }
}

/// The default socket: `$XDG_RUNTIME_DIR/ov-agent/ov-agent.sock`.
pub fn default_socket(paths: &Paths) -> Option<PathBuf> {
    paths
        .runtime_dir
        .as_ref()
        .map(|d| d.join(DIR_NAME).join(SOCKET_NAME))
}

pub fn rendezvous_file(paths: &Paths) -> PathBuf {
    paths.system_config_dir.join(RENDEZVOUS_NAME)
}

/// The socket a server starts on: `--socket`, else the default.
pub fn for_server(paths: &Paths, socket: Option<PathBuf>) -> Result<PathBuf> {
    socket.or_else(|| default_socket(paths)).ok_or_else(|| {
        OvError::new("cannot choose the agent's socket: XDG_RUNTIME_DIR is not set")
            .kind(Kind::Environment)
            .hint("ov agent start --socket /run/user/$(id -u)/ov-agent/ov-agent.sock ...")
    })
}

/// The socket a client talks to: `--socket`; else the default one when it
/// exists; else the one the rendezvous file names (trusted only when root
/// owns it and nobody else can write it); else the default.
pub fn for_client(paths: &Paths, socket: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(s) = socket {
        return Ok(s);
    }
    let default = default_socket(paths);
    if let Some(d) = default.as_ref().filter(|d| d.exists()) {
        return Ok(d.clone());
    }
    let rv = rendezvous_file(paths);
    if std::fs::symlink_metadata(&rv).is_ok() {
        return read_rendezvous(&rv);
    }
    default.ok_or_else(|| {
        OvError::new(format!(
            "cannot find the agent's socket: XDG_RUNTIME_DIR is not set and {} does not exist",
            rv.display()
        ))
        .kind(Kind::Environment)
        .hint("ov agent status --socket PATH   # name the socket")
    })
}

/// What is wrong with a rendezvous file, if anything: a file another user
/// could write may point clients at a socket of theirs.
pub fn rendezvous_problem(path: &Path) -> Option<(String, String)> {
    let q = ov_plugin_support::shell_quote(path);
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            return Some((
                format!("cannot read {}: {e}", path.display()),
                String::new(),
            ));
        }
    };
    let fix = format!(
        "{} && {}",
        ov_plugin_support::as_root(&format!("chown root:root {q}")),
        ov_plugin_support::as_root(&format!("chmod 644 {q}"))
    );
    if !meta.file_type().is_file() {
        return Some((
            format!("{} is not a regular file", path.display()),
            ov_plugin_support::as_root(&format!(
                "rm {q}   # then ov agent install writes it again"
            )),
        ));
    }
    if meta.uid() != 0 {
        return Some((
            format!(
                "refusing to trust {}: it is owned by uid {}, not root",
                path.display(),
                meta.uid()
            ),
            fix,
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Some((
            format!(
                "refusing to trust {}: its mode {:04o} lets others change it",
                path.display(),
                meta.mode() & 0o7777
            ),
            fix,
        ));
    }
    None
}

/// The socket a trusted rendezvous file names.
pub fn read_rendezvous(path: &Path) -> Result<PathBuf> {
    if let Some((msg, fix)) = rendezvous_problem(path) {
        let mut e = OvError::new(msg).kind(Kind::Environment);
        if !fix.is_empty() {
            e = e.hint(fix);
        }
        return Err(e);
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| OvError::new(format!("cannot read {}: {e}", path.display())))?;
    let socket = PathBuf::from(text.trim());
    if !socket.is_absolute() {
        return Err(OvError::new(format!(
            "{} does not hold an absolute socket path",
            path.display()
        ))
        .kind(Kind::Environment)
        .hint(ov_plugin_support::as_root(&format!(
            "rm {}   # clients then use the default socket; ov agent install writes it again",
            ov_plugin_support::shell_quote(path)
        ))));
    }
    Ok(socket)
}

/// Who listens on `socket` (`SO_PEERCRED` of a connection that sends
/// nothing).
pub fn listener(socket: &Path) -> Option<nix::sys::socket::UnixCredentials> {
    let stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
    nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials).ok()
}

/// The machine key file the agent listening on `socket` was started with,
/// read from its command line (the listener's pid by `SO_PEERCRED`), so a
/// hint can name the file instead of a placeholder. `None` for an
/// interactive agent, or where the path cannot be told.
pub fn started_with_key(socket: &Path) -> Option<PathBuf> {
    key_of(&listener(socket)?)
}

/// [`started_with_key`] for the agent `peer` is.
pub fn key_of(peer: &nix::sys::socket::UnixCredentials) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    // Another user's process may say what it likes on its command line:
    // only ours, root's, or (for root) any agent's.
    let me = nix::unistd::Uid::effective().as_raw();
    if me != 0 && peer.uid() != me && peer.uid() != 0 {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", peer.pid())).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    if !args.windows(2).any(|w| w == [&b"agent"[..], &b"start"[..]]) {
        return None;
    }
    let value = args
        .iter()
        .enumerate()
        .find_map(|(i, a)| {
            if *a == b"--machine-key" {
                args.get(i + 1).copied()
            } else {
                a.strip_prefix(b"--machine-key=")
            }
        })
        .filter(|v| !v.is_empty())?;
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(value));
    if path.is_absolute() {
        return Some(path);
    }
    // A foreground agent started with a relative path: from its cwd,
    // which only its own user (or root) may read.
    std::fs::read_link(format!("/proc/{}/cwd", peer.pid()))
        .ok()
        .map(|cwd| cwd.join(path))
}

/// Refuse a socket directory that others could swap the socket in: one
/// that is world-writable without the sticky bit, or owned by another
/// user than us or root. With `create`, a missing one is made 0700.
pub fn check_dir(socket: &Path, create: bool) -> Result<()> {
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("/"));
    let q = ov_plugin_support::shell_quote(dir);
    if create && std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                OvError::new(format!("cannot create {}: {e}", dir.display()))
                    .kind(Kind::Environment)
                    .hint(format!("mkdir -p -m 700 {q}"))
            })?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| {
        OvError::new(format!(
            "cannot use {} for the agent's socket: {e}",
            dir.display()
        ))
        .hint(format!("mkdir -p -m 700 {q}"))
    })?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Err(OvError::new(format!(
            "refusing the socket directory {}: it is world-writable without the sticky bit, so anyone could replace the socket",
            dir.display()
        ))
        .kind(Kind::Environment)
        .hint(format!("chmod o-w {q}   # or: chmod +t {q}"))
        .hint("ov agent start --socket \"$XDG_RUNTIME_DIR/ov-agent/ov-agent.sock\" ...   # a private directory"));
    }
    let me = nix::unistd::Uid::effective().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(OvError::new(format!(
            "refusing the socket directory {}: it is owned by uid {}, not by you (uid {me}) or root",
            dir.display(),
            meta.uid()
        ))
        .kind(Kind::Environment)
        .hint(format!("mkdir -p -m 700 \"$XDG_RUNTIME_DIR/ov-agent\"   # and pass --socket there; or: sudo chown {me} {q}")));
    }
    Ok(())
}

/// With `--allow-uid`, other users must be able to reach the socket: every
/// directory above it must let them through (the execute bit for others).
pub fn check_reachable_by_others(socket: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for dir in socket.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        if meta.permissions().mode() & 0o001 == 0 {
            let q = ov_plugin_support::shell_quote(dir);
            return Err(OvError::usage(format!(
                "--allow-uid: other users cannot reach {}: {} (mode {:04o}) does not let them through",
                socket.display(),
                dir.display(),
                meta.permissions().mode() & 0o7777
            ))
            .hint(format!("chmod o+x {q}   # if others may pass through it"))
            .hint("ov agent start --socket /run/ov-agent-shared/ov-agent.sock --allow-uid UID ...   # a socket in a directory they can reach"));
        }
    }
    Ok(())
}
