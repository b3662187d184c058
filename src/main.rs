fn main() {
    // Before any secret is read: no core file, no same-user ptrace.
    ov::harden::at_start();
    // Writing into a closed pipe (`ov secrets list | head -1`) ends ov
    // quietly, as it does any Unix filter, instead of panicking.
    // SAFETY: restoring the default disposition installs no handler code.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    ov::cmdline::set_hider(argv::hide_value);
    std::process::exit(ov::cli::main());
}

/// The process's own command line, as `ps` and `/proc/PID/cmdline` show
/// it: glibc hands every `.init_array` function `argc` and `argv`, which
/// point at the arguments where the kernel put them.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod argv {
    use std::ffi::{CStr, c_char, c_int};
    use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

    static ARGC: AtomicUsize = AtomicUsize::new(0);
    static ARGV: AtomicPtr<*mut c_char> = AtomicPtr::new(std::ptr::null_mut());

    extern "C" fn capture(argc: c_int, argv: *mut *mut c_char, _envp: *mut *mut c_char) {
        ARGC.store(usize::try_from(argc).unwrap_or(0), Ordering::Relaxed);
        ARGV.store(argv, Ordering::Relaxed);
    }

    #[used]
    #[unsafe(link_section = ".init_array")]
    static CAPTURE: extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) = capture;

    /// Overwrite with `x` every argument equal to `value`, and the part
    /// after `=` of any `--flag=value`, in the kernel's copy of the command
    /// line. ov has parsed its arguments by then; `ps` shows the `x`s.
    pub fn hide_value(value: &[u8]) {
        let argv = ARGV.load(Ordering::Relaxed);
        if argv.is_null() {
            return;
        }
        for i in 1..ARGC.load(Ordering::Relaxed) {
            // SAFETY: argv holds argc pointers to NUL-terminated strings,
            // which live (writable) for the whole life of the process; the
            // borrow of each ends before it is written.
            unsafe {
                let p = *argv.add(i);
                if p.is_null() {
                    return;
                }
                let arg = CStr::from_ptr(p).to_bytes();
                let len = arg.len();
                let from = if arg == value {
                    0
                } else if arg.starts_with(b"--")
                    && let Some(eq) = arg.iter().position(|&b| b == b'=')
                    && &arg[eq + 1..] == value
                {
                    eq + 1
                } else {
                    continue;
                };
                std::ptr::write_bytes(p.add(from), b'x', len - from);
            }
        }
    }
}
