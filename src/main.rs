fn main() {
    // Writing into a closed pipe (`ov secrets list | head -1`) ends ov
    // quietly, as it does any Unix filter, instead of panicking.
    // SAFETY: restoring the default disposition installs no handler code.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    std::process::exit(ov::cli::main());
}
