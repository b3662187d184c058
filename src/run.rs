//! `ov run`: start a command with an app's secrets in its environment (or
//! as files), never in argv.

use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

use ov_plugin_api::Secret;

use crate::dotenv;
use crate::error::{OvError, Result};

/// Which secrets go to the command.
#[derive(Debug)]
pub enum Selection {
    All,
    Names(Vec<String>),
}

/// Check the names given to `--secrets` before anything is read.
pub fn parse_selection(
    names: Option<&[String]>,
    all: bool,
    app: &str,
    env: &str,
) -> Result<Selection> {
    if all {
        return Ok(Selection::All);
    }
    let Some(names) = names else {
        return Err(OvError::usage(
            "say which secrets the command gets: --secrets NAME,… or --all",
        )
        .hint(format!(
            "ov secrets list --app {app} --env {env}   # the names there are"
        )));
    };
    let names: Vec<String> = names
        .iter()
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Err(
            OvError::usage("--secrets is empty: name at least one secret").hint(format!(
                "ov secrets list --app {app} --env {env}   # the names there are"
            )),
        );
    }
    for n in &names {
        if !dotenv::valid_name(n) {
            return Err(OvError::usage(format!(
                "'{n}' is not a valid environment variable name (letters, digits and '_', not starting with a digit)"
            ))
            .hint(format!("ov secrets list --app {app} --env {env}   # the names there are")));
        }
    }
    Ok(Selection::Names(names))
}

/// Pick the selected secrets; a named one that is missing is an error.
pub fn select(
    available: Vec<(String, Secret)>,
    selection: &Selection,
    app: &str,
    env: &str,
    missing_hint: &dyn Fn(&str) -> Vec<String>,
) -> Result<Vec<(String, Secret)>> {
    match selection {
        Selection::All => Ok(available),
        Selection::Names(names) => {
            let mut out = Vec::with_capacity(names.len());
            let mut missing = Vec::new();
            for n in names {
                match available.iter().find(|(k, _)| k == n) {
                    Some((_, v)) => out.push((n.clone(), v.clone())),
                    None => missing.push(n.as_str()),
                }
            }
            if let Some(first) = missing.first() {
                let mut e = OvError::new(format!(
                    "{} not in {app}/{env}: {}",
                    if missing.len() == 1 {
                        "secret is"
                    } else {
                        "secrets are"
                    },
                    missing.join(", ")
                ));
                for h in missing_hint(first) {
                    e = e.hint(h);
                }
                return Err(e);
            }
            Ok(out)
        }
    }
}

fn command(cmd: &[OsString]) -> Result<Command> {
    let (prog, args) = cmd.split_first().ok_or_else(|| {
        OvError::usage("no command to run").hint("ov run --app myapp --all -- ./server")
    })?;
    let mut c = Command::new(prog);
    c.args(args);
    Ok(c)
}

/// Exit statuses for a command that cannot be started, as `env`, `nohup`
/// and POSIX shells use them, so a supervisor tells "no such program"
/// from the program's own failure.
pub const EXIT_NOT_FOUND: i32 = 127;
pub const EXIT_NOT_EXECUTABLE: i32 = 126;

/// The file `prog` names: itself when it has a `/`, else the first match
/// on PATH (the one `execvp` found and could not run).
fn locate(prog: &Path) -> Option<PathBuf> {
    if prog.as_os_str().as_encoded_bytes().contains(&b'/') {
        return Some(prog.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.exists())
}

/// How `ov run` was called, as a shell command line with another program:
/// for the hint that says how to start the file the user meant.
pub type Relaunch<'a> = &'a dyn Fn(&std::ffi::OsStr) -> String;

/// Why `cmd` could not be started, with the exit status 126 or 127 a
/// shell would give.
pub fn spawn_error(cmd: &[OsString], e: &std::io::Error, relaunch: Relaunch) -> OvError {
    use std::os::unix::fs::PermissionsExt;
    let prog = Path::new(
        cmd.first()
            .map_or(std::ffi::OsStr::new(""), |p| p.as_os_str()),
    );
    let shown = prog.display();
    let quoted = ov_plugin_support::shell_quote(prog);
    let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
    let found = locate(prog);
    let mut err = match (errno, &found) {
        (nix::errno::Errno::ENOENT, _) | (_, None) => {
            let mut err = if prog.components().count() > 1 || prog.is_absolute() {
                OvError::new(format!("cannot run {shown}: no such file"))
            } else {
                OvError::new(format!("cannot run {shown}: command not found on PATH"))
            };
            err.exit_code = EXIT_NOT_FOUND;
            if prog.components().count() == 1 && !prog.is_absolute() && prog.is_file() {
                // As a shell does: a bare name is looked up on PATH only.
                let here = Path::new(".").join(prog);
                err = err.hint(format!(
                    "{}   # the file in the current directory: give its path",
                    relaunch(here.as_os_str())
                ));
            } else if let Some(dir) = prog
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .and_then(|d| {
                    d.ancestors()
                        .find(|a| a.is_dir() && !a.as_os_str().is_empty())
                })
            {
                err = err.hint(format!(
                    "ls -l {}   # what is there",
                    ov_plugin_support::shell_quote(dir)
                ));
            } else {
                err = err.hint(format!(
                    "command -v {quoted} || echo \"{quoted} is not on PATH: install it, or give its full path\""
                ));
            }
            err
        }
        (_, Some(file)) => {
            let file_q = ov_plugin_support::shell_quote(file);
            let mut err = if file.is_dir() {
                OvError::new(format!(
                    "cannot run {shown}: {} is a directory",
                    file.display()
                ))
            } else if errno == nix::errno::Errno::ENOEXEC {
                OvError::new(format!(
                    "cannot run {shown}: {} is not a program this system can run (a script needs a #! line)",
                    file.display()
                ))
                .hint(format!("head -n 1 {file_q}   # a script starts with #!/bin/sh or the like"))
            } else if std::fs::metadata(file).is_ok_and(|m| m.permissions().mode() & 0o111 == 0) {
                OvError::new(format!(
                    "cannot run {shown}: {} is not executable",
                    file.display()
                ))
                .hint(format!("chmod +x {file_q}"))
            } else {
                OvError::new(format!("cannot run {shown}: {e}"))
            };
            err.exit_code = EXIT_NOT_EXECUTABLE;
            err
        }
    };
    if err.hints.is_empty() {
        err = err.hint(format!("ls -l {quoted}"));
    }
    err
}

/// Replace ov with the command, the secrets in its environment. Returns
/// only on failure.
pub fn exec_with_env(
    cmd: &[OsString],
    secrets: &[(String, Secret)],
    relaunch: Relaunch,
) -> Result<i32> {
    let mut c = command(cmd)?;
    for (k, v) in secrets {
        c.env(k, v.expose());
    }
    let e = c.exec();
    Err(spawn_error(cmd, &e, relaunch))
}

static CHILD: AtomicI32 = AtomicI32::new(0);

/// A signal that arrived before the child's pid was known.
static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: nix::libc::c_int) {
    let mut pid = CHILD.load(Ordering::SeqCst);
    if pid <= 0 {
        // The child may be running already (its first output can reach
        // whoever sends the signal before `spawn` returns here): keep the
        // signal for the spawner, then look again in case it has just
        // taken the pid and found nothing pending.
        PENDING.store(sig, Ordering::SeqCst);
        pid = CHILD.load(Ordering::SeqCst);
        if pid <= 0 || PENDING.swap(0, Ordering::SeqCst) == 0 {
            return;
        }
    }
    // SAFETY: kill is async-signal-safe.
    unsafe {
        nix::libc::kill(pid, sig);
    }
}

/// A private 0700 directory on tmpfs, removed on drop.
struct SecretsDir(PathBuf);

impl Drop for SecretsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmpfs_base(runtime_dir: Option<&Path>) -> PathBuf {
    runtime_dir
        .filter(|d| d.is_dir())
        .map_or_else(|| PathBuf::from("/dev/shm"), Path::to_path_buf)
}

/// Every signal that asks a process to end or tells it something, which
/// `ov run --secrets-dir` passes to the command instead of dying with the
/// files left behind.
pub const FORWARDED: [nix::sys::signal::Signal; 7] = {
    use nix::sys::signal::Signal::*;
    [SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH]
};

/// Write one secret as `NAME` inside the directory open at `dir`: relative
/// to the directory's descriptor, never through a symlink, never over an
/// existing file, so a name cannot put a file anywhere else.
fn write_secret_file(dir: &std::os::fd::OwnedFd, name: &str, value: &Secret) -> Result<()> {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::Mode;
    if !dotenv::valid_name(name) {
        return Err(OvError::new(format!(
            "{name:?} is not an environment variable name; no file was written for it"
        )));
    }
    let fd = openat(
        dir,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| OvError::new(format!("cannot create the file for {name}: {e}")))?;
    let mut f = std::fs::File::from(fd);
    std::io::Write::write_all(&mut f, value.expose().as_bytes())
        .map_err(|e| OvError::new(format!("cannot write the file for {name}: {e}")))
}

/// Write each secret as a 0600 file in a fresh 0700 directory, set
/// `NAME_FILE` for the child, wait for it while forwarding [`FORWARDED`]
/// signals, remove the directory on every way out (the command's exit, a
/// signal to ov, an error, a panic), and return the command's status.
pub fn run_with_files(
    cmd: &[OsString],
    secrets: Vec<(String, Secret)>,
    runtime_dir: Option<&Path>,
    relaunch: Relaunch,
) -> Result<i32> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
    // First of all: a signal from here on is held for the command, so
    // none can end ov between creating the files and removing them.
    let action = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in FORWARDED {
        // SAFETY: the handler only touches atomics and calls kill.
        unsafe { sigaction(sig, &action) }.map_err(|e| OvError::new(format!("sigaction: {e}")))?;
    }
    let base = tmpfs_base(runtime_dir);
    let name = format!(
        "ov-run.{}.{}",
        std::process::id(),
        crate::store::random_hex(8)?.expose()
    );
    let path = base.join(name);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&path)
        .map_err(|e| {
            OvError::new(format!(
                "cannot create a secrets directory in {}: {e}",
                base.display()
            ))
            .hint("export XDG_RUNTIME_DIR=/run/user/$(id -u)   # a private tmpfs")
        })?;
    let dir = SecretsDir(path);
    let dir_fd = nix::fcntl::open(
        &dir.0,
        nix::fcntl::OFlag::O_RDONLY
            | nix::fcntl::OFlag::O_DIRECTORY
            | nix::fcntl::OFlag::O_NOFOLLOW
            | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| OvError::new(format!("cannot open {}: {e}", dir.0.display())))?;
    let mut c = command(cmd)?;
    for (k, v) in &secrets {
        write_secret_file(&dir_fd, k, v)?;
        c.env(format!("{k}_FILE"), dir.0.join(k));
    }
    drop(dir_fd);
    // The values are in the files now; none stay in ov's memory while it waits.
    drop(secrets);
    // Not blocked around the spawn: the child would inherit the mask.
    let mut child = c.spawn().map_err(|e| spawn_error(cmd, &e, relaunch))?;
    let pid = i32::try_from(child.id()).unwrap_or(0);
    CHILD.store(pid, Ordering::SeqCst);
    // A signal that came before the handler knew the pid waits in PENDING.
    let sig = PENDING.swap(0, Ordering::SeqCst);
    if sig != 0 {
        // SAFETY: plain kill of the child ov just started.
        unsafe {
            nix::libc::kill(pid, sig);
        }
    }
    let status = loop {
        match child.wait() {
            Ok(s) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(OvError::new(format!("waiting for the command: {e}"))),
        }
    };
    drop(dir);
    if let Some(code) = status.code() {
        return Ok(code);
    }
    // Killed by a signal: die the same way, so a supervisor sees it.
    Ok(die_by_signal(status.signal().unwrap_or(nix::libc::SIGTERM)))
}

/// End ov by `sig`, as the command it ran ended, so a supervisor sees the
/// same; returns the shell's `128 + sig` if the signal does not end it.
pub fn die_by_signal(sig: i32) -> i32 {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    if let Ok(s) = Signal::try_from(sig) {
        // SAFETY: restoring the default disposition installs no handler.
        let _ = unsafe {
            sigaction(
                s,
                &SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty()),
            )
        };
        let mut only = SigSet::empty();
        only.add(s);
        let _ = only.thread_unblock();
        let _ = nix::sys::signal::raise(s);
    }
    128 + sig
}
