//! What every `ov` process does first, because it may come to hold a
//! master password, a machine key or secret values: no core file of it,
//! and no reading of its memory by other processes of the same user.
//!
//! Non-dumpable (`PR_SET_DUMPABLE` 0) stops ptrace and `/proc/PID/mem` by
//! same-user processes and, normally, core files. It is not enough where
//! `fs.suid_dumpable` is 2 (as systemd-coredump sets it): the kernel then
//! still hands the dump to the core handler. A soft `RLIMIT_CORE` of 0
//! stops that too (the handler honours it). The hard limit stays.
//!
//! `execve` makes a program dumpable again, but limits are inherited: the
//! commands `ov` runs for the user (`ov run`, the agent's commands, and
//! `ov` itself started again) get the old soft limit back with
//! [`give_back_core_limit`] or [`core_limit`]. Helpers that handle the same
//! secrets (gpg, podman, an editor on a decrypted file) keep the 0.

use std::sync::OnceLock;

use nix::libc;

/// The soft and hard core-file limits before [`at_start`].
static CORE_LIMIT: OnceLock<libc::rlimit> = OnceLock::new();

/// Called by the `ov` binary before anything else (and by the agent,
/// which library users may start).
pub fn at_start() {
    let _ = nix::sys::prctl::set_dumpable(false);
    // SAFETY: plain system calls on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_CORE, &mut lim) == 0 && CORE_LIMIT.set(lim).is_ok() {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: lim.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
        }
    }
}

/// The core-file limit this process had before [`at_start`], if it ran.
pub fn core_limit() -> Option<libc::rlimit> {
    CORE_LIMIT.get().copied()
}

/// Give the command the core-file limit `ov` was started with, just
/// before it execs.
pub fn give_back_core_limit(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    if let Some(lim) = core_limit() {
        // SAFETY: setrlimit is async-signal-safe and touches only a copy
        // moved into the closure.
        unsafe {
            cmd.pre_exec(move || {
                libc::setrlimit(libc::RLIMIT_CORE, &lim);
                Ok(())
            });
        }
    }
}
