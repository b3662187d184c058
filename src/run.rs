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
    crate::harden::give_back_core_limit(&mut c);
    Ok(c)
}

/// Exit statuses for a command that cannot be started, as `env`, `nohup`
/// and POSIX shells use them, so a supervisor tells "no such program"
/// from the program's own failure.
pub const EXIT_NOT_FOUND: i32 = 127;
pub const EXIT_NOT_EXECUTABLE: i32 = 126;

/// The file `prog` names: itself when it has a `/`, else the first match
/// on PATH (the one `execvp` found and could not run).
fn locate(prog: &Path, path: Option<&std::ffi::OsStr>, base: &Path) -> Option<PathBuf> {
    if prog.as_os_str().as_encoded_bytes().contains(&b'/') {
        return Some(prog.to_path_buf());
    }
    std::env::split_paths(path?)
        .map(|d| d.join(prog))
        .find(|p| base.join(p).exists())
}

/// How `ov run` was called, as a shell command line with another program:
/// for the hint that says how to start the file the user meant.
pub type Relaunch<'a> = &'a dyn Fn(&std::ffi::OsStr) -> String;

/// Why `cmd` could not be started, with the exit status 126 or 127 a
/// shell would give.
pub fn spawn_error(cmd: &[OsString], e: &std::io::Error, relaunch: Relaunch) -> OvError {
    spawn_error_on(
        cmd,
        e,
        relaunch,
        std::env::var_os("PATH").as_deref(),
        Path::new("."),
    )
}

/// [`spawn_error`] for a command that was looked up on `path` and started
/// in `base`, not on ov's own `PATH` and directory (the agent starts
/// commands on its client's): relative paths are looked at from `base`.
pub fn spawn_error_on(
    cmd: &[OsString],
    e: &std::io::Error,
    relaunch: Relaunch,
    path: Option<&std::ffi::OsStr>,
    base: &Path,
) -> OvError {
    use std::os::unix::fs::PermissionsExt;
    let prog = Path::new(
        cmd.first()
            .map_or(std::ffi::OsStr::new(""), |p| p.as_os_str()),
    );
    let shown = prog.display();
    let quoted = ov_plugin_support::shell_quote(prog);
    let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
    let found = locate(prog, path, base);
    let mut err = match (errno, &found) {
        (nix::errno::Errno::ENOENT, _) | (_, None) => {
            let mut err = if prog.components().count() > 1 || prog.is_absolute() {
                OvError::new(format!("cannot run {shown}: no such file"))
            } else {
                OvError::new(format!("cannot run {shown}: command not found on PATH"))
            };
            err.exit_code = EXIT_NOT_FOUND;
            if prog.components().count() == 1 && !prog.is_absolute() && base.join(prog).is_file() {
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
                        .find(|a| base.join(a).is_dir() && !a.as_os_str().is_empty())
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
            let mut err = if base.join(file).is_dir() {
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
            } else if std::fs::metadata(base.join(file))
                .is_ok_and(|m| m.permissions().mode() & 0o111 == 0)
            {
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
    // First of all: a signal from here on is held for the command, so
    // none can end ov between creating the files and removing them.
    hold_signals()?;
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
    let status = spawn_and_wait(c, cmd, relaunch, |_| Vec::new())?;
    drop(dir);
    Ok(exit_like(status))
}

/// Pass every [`FORWARDED`] signal to the command once it runs, instead
/// of dying of it.
fn hold_signals() -> Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in FORWARDED {
        // SAFETY: the handler only touches atomics and calls kill.
        unsafe { sigaction(sig, &action) }.map_err(|e| OvError::new(format!("sigaction: {e}")))?;
    }
    Ok(())
}

/// Start `c`, hand the child to `attach` (which may take its pipes and
/// return threads that drain them), forward held signals to it, and wait
/// for it and then for those threads.
fn spawn_and_wait(
    mut c: Command,
    cmd: &[OsString],
    relaunch: Relaunch,
    attach: impl FnOnce(&mut std::process::Child) -> Vec<std::thread::JoinHandle<()>>,
) -> Result<std::process::ExitStatus> {
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
    let drains = attach(&mut child);
    let status = loop {
        match child.wait() {
            Ok(s) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(OvError::new(format!("waiting for the command: {e}"))),
        }
    };
    for d in drains {
        let _ = d.join();
    }
    Ok(status)
}

/// The command's exit status as ov's: its code, or for a command killed
/// by a signal, ov killed by the same signal (so a supervisor sees it),
/// else 128 + the signal.
fn exit_like(status: std::process::ExitStatus) -> i32 {
    match status.code() {
        Some(code) => code,
        None => die_by_signal(status.signal().unwrap_or(nix::libc::SIGTERM)),
    }
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

/// Run a tool ov drives (podman, systemd-creds) to its end, `input`'s
/// bytes on its stdin (a value never goes in argv), its stdout and
/// stderr collected. `input` names what is passed, for the error.
pub fn tool_output(
    command: &mut Command,
    tool: &str,
    input: Option<(&str, &[u8])>,
) -> Result<std::process::Output> {
    use std::process::Stdio;
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| OvError::new(format!("cannot run {tool}: {e}")))?;
    if let (Some((what, data)), Some(mut pipe)) = (input, child.stdin.take()) {
        std::io::Write::write_all(&mut pipe, data)
            .map_err(|e| OvError::new(format!("cannot pass {what} to {tool}: {e}")))?;
    }
    child
        .wait_with_output()
        .map_err(|e| OvError::new(format!("waiting for {tool}: {e}")))
}

/// The text that replaces a secret in a masked command's output.
pub const CONCEALED: &str = "<concealed by ov>";

/// Values shorter than this are not masked: a secret of one to three
/// bytes would turn every such run of bytes in the output into the mask.
pub const MIN_MASKED_LEN: usize = 4;

/// Run the command with the secrets in its environment and its stdout and
/// stderr passed through ov, every value (of [`MIN_MASKED_LEN`] bytes or
/// more) replaced by [`CONCEALED`], also where a value is split across
/// two reads. Signals are forwarded; the exit status is the command's.
pub fn run_masked(
    cmd: &[OsString],
    secrets: &[(String, Secret)],
    relaunch: Relaunch,
) -> Result<i32> {
    use std::process::Stdio;
    hold_signals()?;
    let masker = std::sync::Arc::new(Masker::new(secrets.iter().map(|(_, v)| v.expose()))?);
    let mut c = command(cmd)?;
    for (k, v) in secrets {
        c.env(k, v.expose());
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let status = spawn_and_wait(c, cmd, relaunch, |child| {
        let mut drains = Vec::new();
        let outs: [(Option<Box<dyn std::io::Read + Send>>, i32); 2] = [
            (
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
                nix::libc::STDOUT_FILENO,
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
                nix::libc::STDERR_FILENO,
            ),
        ];
        for (pipe, fd) in outs {
            let Some(pipe) = pipe else { continue };
            let masker = masker.clone();
            drains.push(std::thread::spawn(move || {
                // Written as it comes, unbuffered: a prompt without a
                // newline shows at once.
                let _ = masker.copy(pipe, &mut Unbuffered(fd));
            }));
        }
        drains
    })?;
    Ok(exit_like(status))
}

/// Writes straight to a descriptor ov does not own (stdout, stderr).
struct Unbuffered(i32);

impl std::io::Write for Unbuffered {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // SAFETY: the descriptor is one of ov's standard ones, open for
        // the life of the process; borrowed for this call only.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.0) };
        nix::unistd::write(fd, buf).map_err(std::io::Error::from)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Replaces secrets in a byte stream. A value split across two reads is
/// still found: only a tail that could be the start of a value is held
/// back until the next read (or the end), so other output is not delayed.
/// Where one value contains another, the longer one is masked whole.
pub struct Masker {
    finder: Option<aho_corasick::AhoCorasick>,
    values: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Masker({} values)", self.values.len())
    }
}

impl Drop for Masker {
    fn drop(&mut self) {
        for v in &mut self.values {
            zeroize::Zeroize::zeroize(v);
        }
    }
}

impl Masker {
    pub fn new<'a>(values: impl Iterator<Item = &'a str>) -> Result<Masker> {
        let values: Vec<Vec<u8>> = values
            .filter(|v| v.len() >= MIN_MASKED_LEN)
            .map(|v| v.as_bytes().to_vec())
            .collect();
        let finder = if values.is_empty() {
            None
        } else {
            Some(
                aho_corasick::AhoCorasick::builder()
                    .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                    .build(&values)
                    .map_err(|e| OvError::new(format!("cannot prepare the output mask: {e}")))?,
            )
        };
        Ok(Masker { finder, values })
    }

    /// Copy `input` to `out`, masked, until the end of `input`.
    pub fn copy(
        &self,
        mut input: impl std::io::Read,
        out: &mut impl std::io::Write,
    ) -> std::io::Result<()> {
        let mut buf = zeroize::Zeroizing::new(Vec::new());
        let mut chunk = zeroize::Zeroizing::new(vec![0u8; 16 * 1024]);
        loop {
            let n = match input.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            buf.extend_from_slice(&chunk[..n]);
            self.feed(&mut buf, n == 0, out)?;
            if n == 0 {
                return Ok(());
            }
        }
    }

    /// Write what of `buf` is settled, masked, and keep the rest in it.
    /// At `end`, everything is settled.
    pub fn feed(
        &self,
        buf: &mut Vec<u8>,
        end: bool,
        out: &mut impl std::io::Write,
    ) -> std::io::Result<()> {
        let Some(finder) = &self.finder else {
            out.write_all(buf)?;
            buf.clear();
            return Ok(());
        };
        let safe = if end {
            buf.len()
        } else {
            buf.len() - self.held_tail(buf)
        };
        let (mut done, mut limit) = (0, safe);
        for m in finder.find_iter(buf.as_slice()) {
            if m.end() > safe {
                // It reaches into the held tail, where a longer value may
                // yet begin: nothing of it is written until that is known.
                limit = limit.min(m.start());
                break;
            }
            out.write_all(&buf[done..m.start()])?;
            out.write_all(CONCEALED.as_bytes())?;
            done = m.end();
        }
        let upto = limit.max(done);
        out.write_all(&buf[done..upto])?;
        buf.drain(..upto);
        Ok(())
    }

    /// The length of the longest end of `buf` that begins some value
    /// (and is not all of it).
    fn held_tail(&self, buf: &[u8]) -> usize {
        self.values
            .iter()
            .filter_map(|v| {
                (1..v.len().min(buf.len() + 1))
                    .rev()
                    .find(|&k| buf.ends_with(&v[..k]))
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod mask_tests {
    use super::*;

    fn masked(values: &[&str], pieces: &[&[u8]]) -> String {
        let m = Masker::new(values.iter().copied()).unwrap();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for p in pieces {
            buf.extend_from_slice(p);
            m.feed(&mut buf, false, &mut out).unwrap();
        }
        m.feed(&mut buf, true, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_value_is_masked_at_every_split_point() {
        let text = b"start hunter22 middle hunter22end";
        for i in 0..=text.len() {
            for j in i..=text.len() {
                let got = masked(&["hunter22"], &[&text[..i], &text[i..j], &text[j..]]);
                assert_eq!(
                    got, "start <concealed by ov> middle <concealed by ov>end",
                    "split at {i}, {j}"
                );
            }
        }
    }

    #[test]
    fn the_longer_of_two_overlapping_values_is_masked_whole() {
        let text = b"x abcdefgh y abcd z";
        for i in 0..=text.len() {
            let got = masked(&["abcd", "abcdefgh"], &[&text[..i], &text[i..]]);
            assert_eq!(
                got, "x <concealed by ov> y <concealed by ov> z",
                "split at {i}"
            );
        }
    }

    #[test]
    fn only_a_possible_start_of_a_value_is_held_back() {
        let m = Masker::new(["secret-value"].into_iter()).unwrap();
        let mut out = Vec::new();
        let mut buf = b"Password? ".to_vec();
        m.feed(&mut buf, false, &mut out).unwrap();
        assert_eq!(out, b"Password? ", "a prompt is not delayed");
        let mut buf = b"almost secr".to_vec();
        out.clear();
        m.feed(&mut buf, false, &mut out).unwrap();
        assert_eq!(out, b"almost ");
        assert_eq!(buf, b"secr");
    }

    #[test]
    fn a_value_ending_where_another_may_begin_is_not_written_early() {
        let text = b"1 wxyz 2";
        for i in 0..=text.len() {
            let got = masked(&["wxyz", "yzab"], &[&text[..i], &text[i..]]);
            assert_eq!(got, "1 <concealed by ov> 2", "split at {i}");
        }
    }

    #[test]
    fn short_values_are_not_masked() {
        assert_eq!(masked(&["abc"], &[b"abc abcd"]), "abc abcd");
    }
}
