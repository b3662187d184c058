//! Starting a command for the agent without copying the agent.
//!
//! `fork` copies the agent's page tables, and every page the agent or the
//! child then writes is copied again; on a busy agent that was most of the
//! cost of a request. Here the child shares the agent's memory until it
//! calls `execve` (`clone` with `CLONE_VM | CLONE_VFORK`, as `posix_spawn`
//! does) — and, unlike `posix_spawn`, it can still ask for `SIGTERM` when
//! its agent thread dies (`PR_SET_PDEATHSIG`), so a command never outlives
//! an agent that was killed.
//!
//! Everything the child needs is made before `clone`: the child only makes
//! system calls (no allocation, no lock, no panic) and writes its `errno`
//! to memory the agent reads once the child has gone past `execve`.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::libc;
use nix::unistd::Pid;
use ov_plugin_api::Secret;
use zeroize::Zeroizing;

/// The child's stack: it makes a handful of system calls, nothing deeper.
const CHILD_STACK: usize = 64 * 1024;

/// A command ready to start: every string already NUL-terminated.
pub struct Prepared {
    /// Where to look for the program, in order (its `PATH` search, done
    /// with the command's own `PATH`, not the agent's).
    candidates: Vec<CString>,
    argv: Vec<CString>,
    /// `NAME=value\0`, zeroed on drop: the secrets are among them.
    envp: Vec<Zeroizing<Vec<u8>>>,
    cwd: CString,
    stdio: [OwnedFd; 3],
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("argv", &self.argv)
            .field("cwd", &self.cwd)
            .finish_non_exhaustive()
    }
}

fn c_string(what: &str, s: &OsStr) -> std::io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("the command's {what} holds a NUL byte"),
        )
    })
}

fn env_entry(name: &[u8], value: &[u8]) -> std::io::Result<Zeroizing<Vec<u8>>> {
    if name.is_empty() || name.contains(&b'=') || name.contains(&0) || value.contains(&0) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "the environment variable {:?} cannot be passed (empty, or holds '=' or a NUL byte)",
                String::from_utf8_lossy(name)
            ),
        ));
    }
    let mut entry = Zeroizing::new(Vec::with_capacity(name.len() + value.len() + 2));
    entry.extend_from_slice(name);
    entry.push(b'=');
    entry.extend_from_slice(value);
    entry.push(0);
    Ok(entry)
}

fn above_stdio(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    if fd.as_raw_fd() < 3 {
        // Duplicated at 3 or above, close-on-exec.
        fd.try_clone()
    } else {
        Ok(fd)
    }
}

/// The paths `execvp` would try for `prog` with this `PATH`.
fn candidates(prog: &OsStr, path: Option<&OsStr>) -> std::io::Result<Vec<CString>> {
    if prog.as_bytes().contains(&b'/') {
        return Ok(vec![c_string("program", prog)?]);
    }
    // As execvp: no PATH at all searches the default directories.
    let path = path.unwrap_or(OsStr::new("/bin:/usr/bin"));
    std::env::split_paths(path)
        .map(|dir| {
            // An empty entry is the current directory.
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".").to_path_buf()
            } else {
                dir
            };
            c_string("program", dir.join(prog).as_os_str())
        })
        .collect()
}

impl Prepared {
    /// `argv` with the client's `environ`, the secrets set over it, run in
    /// `cwd` on the three descriptors the client passed.
    pub fn new(
        argv: &[OsString],
        environ: &[(OsString, OsString)],
        secrets: &[(String, Secret)],
        cwd: &Path,
        stdio: [OwnedFd; 3],
    ) -> std::io::Result<Prepared> {
        let prog = argv
            .first()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no command"))?;
        let mut envp = Vec::with_capacity(environ.len() + secrets.len());
        let mut path = None;
        for (k, v) in environ {
            // A secret of the same name replaces the client's variable.
            if secrets
                .iter()
                .any(|(name, _)| name.as_bytes() == k.as_bytes())
            {
                continue;
            }
            if k == "PATH" {
                path = Some(v.as_os_str());
            }
            envp.push(env_entry(k.as_bytes(), v.as_bytes())?);
        }
        for (k, v) in secrets {
            envp.push(env_entry(k.as_bytes(), v.expose().as_bytes())?);
        }
        Ok(Prepared {
            candidates: candidates(prog, path)?,
            argv: argv
                .iter()
                .map(|a| c_string("argument", a))
                .collect::<std::io::Result<_>>()?,
            envp,
            cwd: c_string("working directory", cwd.as_os_str())?,
            // An agent started with a standard descriptor closed can be
            // passed one as 0, 1 or 2; a copy (3 or above) keeps the
            // child's dup2 calls from overwriting each other.
            stdio: match stdio {
                [a, b, c] => [above_stdio(a)?, above_stdio(b)?, above_stdio(c)?],
            },
        })
    }

    /// Start the command in a process group of its own; its pid, or why
    /// it could not start (the `errno` of `chdir` or `execve`).
    pub fn spawn(self) -> std::io::Result<Pid> {
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> =
            self.envp.iter().map(|e| e.as_ptr().cast()).collect();
        envp.push(std::ptr::null());
        let fds = [
            self.stdio[0].as_raw_fd(),
            self.stdio[1].as_raw_fd(),
            self.stdio[2].as_raw_fd(),
        ];
        let failed = AtomicI32::new(0);
        let core = crate::harden::core_limit();
        let mut stack = vec![0u8; CHILD_STACK];
        let child = || -> isize {
            // SAFETY: the child shares the agent's memory and the agent's
            // thread waits (CLONE_VFORK) until it has exec'd or exited.
            // Only system calls run here, on data made before `clone`, and
            // the one write is to an atomic the agent reads afterwards.
            unsafe {
                let errno = || *libc::__errno_location();
                let fail = |e: i32| -> isize {
                    failed.store(if e == 0 { libc::EIO } else { e }, Ordering::SeqCst);
                    libc::_exit(127)
                };
                // Each is 3 or above (see `new`): no dup2 overwrites
                // another before it is copied.
                for (target, &fd) in (0..).zip(fds.iter()) {
                    if libc::dup2(fd, target) < 0 {
                        return fail(errno());
                    }
                }
                if libc::chdir(self.cwd.as_ptr()) < 0 {
                    return fail(errno());
                }
                // Not in the agent's process group: a Ctrl-C at the
                // agent's terminal is not the command's.
                if libc::setpgid(0, 0) < 0 {
                    return fail(errno());
                }
                // A handler of the agent's (Rust's runtime has them for
                // SIGSEGV and SIGBUS) must not run here, on the agent's
                // memory: each goes back to the default, as exec would do.
                // SIGPIPE, which the runtime ignores, does too; any other
                // ignored signal stays ignored, as it does for a command
                // `ov run` starts. The table is the child's own copy (no
                // CLONE_SIGHAND).
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                for sig in 1..libc::SIGRTMAX() {
                    let mut old: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                        && (sig == libc::SIGPIPE
                            || (old.sa_sigaction != libc::SIG_DFL
                                && old.sa_sigaction != libc::SIG_IGN))
                    {
                        libc::sigaction(sig, &dfl, std::ptr::null_mut());
                    }
                }
                // The agent's threads block the signals that stop it.
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                // The command may dump core as it would have without
                // the agent.
                if let Some(lim) = &core {
                    libc::setrlimit(libc::RLIMIT_CORE, lim);
                }
                // The command ends with its agent thread, never orphaned.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) < 0 {
                    return fail(errno());
                }
                // As execvp: a missing or unsearchable candidate goes on
                // to the next; a permission error is kept if none runs.
                let mut seen = libc::ENOENT;
                for path in &self.candidates {
                    libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                    match errno() {
                        libc::ENOENT | libc::ENOTDIR => {}
                        libc::EACCES => seen = libc::EACCES,
                        e => return fail(e),
                    }
                }
                fail(seen)
            }
        };
        // SAFETY: see above; the stack outlives the child's use of it,
        // since CLONE_VFORK returns only once the child has exec'd or
        // exited.
        let pid = unsafe {
            nix::sched::clone(
                Box::new(child),
                &mut stack,
                nix::sched::CloneFlags::CLONE_VM | nix::sched::CloneFlags::CLONE_VFORK,
                Some(libc::SIGCHLD),
            )
        }
        .map_err(std::io::Error::from)?;
        match failed.load(Ordering::SeqCst) {
            0 => Ok(pid),
            e => {
                // It exited with 127: reap it before saying why.
                while let Err(nix::errno::Errno::EINTR) = nix::sys::wait::waitpid(pid, None) {}
                Err(std::io::Error::from_raw_os_error(e))
            }
        }
    }
}

/// A descriptor for the process `pid` (Linux 5.3 and later). Race-free
/// for a child not yet reaped: its pid cannot be reused before then.
pub fn pidfd_open(pid: Pid) -> std::io::Result<OwnedFd> {
    // SAFETY: a plain system call; on success it returns a new descriptor
    // that nothing else owns.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(fd).map_err(|_| std::io::Error::other("bad descriptor"))?;
    // SAFETY: see above; close-on-exec is the default for pidfds.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Send `sig` to the process `pidfd` names; an error (it has ended) is
/// ignored.
pub fn pidfd_signal(pidfd: &OwnedFd, sig: nix::sys::signal::Signal) {
    // SAFETY: a plain system call on a descriptor we own, no siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
}
