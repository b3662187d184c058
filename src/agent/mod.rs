//! `ov agent`: a local daemon that holds the key once and runs commands
//! with secrets for clients that prove they hold it too.
//!
//! No secret value ever crosses the socket: a client sends the command
//! line, its environment and secret names, with its stdin, stdout and
//! stderr passed alongside (SCM_RIGHTS); the agent reads the secrets,
//! starts the command on those descriptors, passes on the signals the
//! client forwards, and answers with how the command ended.

pub mod client;
pub mod install;
pub mod location;
mod notify;
pub mod protocol;
pub mod server;
mod spawn;

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use client::Client;
use location::Location;
use protocol::{Answer, Request, RunRequest, StatusInfo};

use crate::error::{Kind, OvError, Result};

/// What `ov run --agent` asks for.
#[derive(Debug)]
pub struct RunWith<'a> {
    pub socket: Option<PathBuf>,
    pub machine_key: Option<&'a Path>,
    pub app: Option<String>,
    pub env: Option<String>,
    pub all: bool,
    pub names: Vec<String>,
    pub argv: Vec<OsString>,
}

/// Run a command through the agent and return its exit status (or end ov
/// by the signal that ended it).
pub fn run(req: RunWith<'_>) -> Result<i32> {
    // Blocked from the start, so they wait for the signalfd below (ov
    // runs no other thread that could take them).
    let mut forwarded = nix::sys::signal::SigSet::empty();
    for s in crate::run::FORWARDED {
        forwarded.add(s);
    }
    forwarded
        .thread_block()
        .map_err(|e| OvError::new(format!("cannot block signals: {e}")))?;
    let paths = crate::paths::Paths::from_env()?;
    let loc = Location::new(location::for_client(&paths, req.socket)?, None);
    let key = match req.machine_key {
        // Loaded with the app and env the hints of spec 001's errors name.
        Some(path) => protocol::AuthKey::from_machine_key(&crate::machine_key::load(
            path,
            req.app.as_deref().unwrap_or("APP"),
            req.env
                .as_deref()
                .unwrap_or(crate::machine_key::DEFAULT_ENV),
        )?),
        None => client::key_for(&loc, None)?,
    };
    let client = Client::connect(&loc.socket, key)?;
    let cwd = std::env::current_dir()
        .map_err(|e| OvError::new(format!("cannot read the current directory: {e}")))?;
    let request = Request::Run(RunRequest {
        app: req.app,
        env: req.env,
        all: req.all,
        names: req.names,
        argv: req.argv,
        cwd,
        environ: std::env::vars_os().collect(),
    });
    let fds = [
        std::io::stdin().as_raw_fd(),
        std::io::stdout().as_raw_fd(),
        std::io::stderr().as_raw_fd(),
    ];
    let nonce = client.send(request, &fds)?;
    forward_until_answer(&client, &forwarded)?;
    match client.answer(&nonce, None)? {
        Answer::Exit {
            code: Some(code), ..
        } => Ok(code),
        Answer::Exit {
            signal: Some(sig), ..
        } => Ok(crate::run::die_by_signal(sig)),
        other => Err(unexpected(&other)),
    }
}

/// While the command runs: each signal ov gets goes to the agent as a
/// signed frame, until the answer (or the agent's hang-up) can be read.
/// One thread: the signals wait in a signalfd beside the socket.
fn forward_until_answer(client: &Client, signals: &nix::sys::signal::SigSet) -> Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    use std::os::fd::AsFd;
    let fd = SignalFd::with_flags(signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| OvError::new(format!("cannot make a signalfd: {e}")))?;
    loop {
        let mut fds = [
            PollFd::new(client.socket().as_fd(), PollFlags::POLLIN),
            PollFd::new(fd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(OvError::new(format!("cannot wait for the agent: {e}"))),
        }
        while let Ok(Some(info)) = fd.read_signal() {
            let frame = protocol::seal_request(
                client.key(),
                Request::Signal {
                    signal: info.ssi_signo as i32,
                },
            );
            // An agent that went away says so on the socket.
            let _ =
                frame.and_then(|(frame, _)| protocol::write_frame(client.socket(), &frame, &[]));
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            return Ok(());
        }
    }
}

fn unexpected(a: &Answer) -> OvError {
    OvError::new(format!(
        "the agent gave an answer this ov does not expect: {a:?}"
    ))
    .kind(Kind::Internal)
    .hint("ov --version; ov agent status   # use the same ov for both")
}

/// What `ov agent status` found.
#[derive(Debug, serde::Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    Running {
        socket: PathBuf,
        #[serde(flatten)]
        info: StatusInfo,
    },
    /// The pid file names a live agent, but the socket gives no answer.
    NotAnswering {
        socket: PathBuf,
        pid: i32,
        why: String,
    },
    Stopped {
        socket: PathBuf,
    },
}

/// Ask the agent; fall back to its pid file when the socket does not answer.
pub fn status(
    socket: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    machine_key: Option<&Path>,
) -> Result<State> {
    let paths = crate::paths::Paths::from_env()?;
    let loc = Location::new(location::for_client(&paths, socket)?, pid_file);
    client::reachable(&loc.socket)?;
    // A key file that fails spec 001's rules is the user's to fix, not a
    // reason to guess from the pid file.
    let key = match machine_key {
        Some(_) => Ok(client::key_for(&loc, machine_key)?),
        None => client::key_for(&loc, None),
    };
    let asked = key
        .and_then(|key| Client::connect(&loc.socket, key))
        .and_then(|c| c.ask(Request::Status));
    let why = match asked {
        Ok(Answer::Status(info)) => {
            return Ok(State::Running {
                socket: loc.socket,
                info,
            });
        }
        Ok(other) => return Err(unexpected(&other)),
        Err(e) => e.message,
    };
    match loc.pid().filter(|&p| alive(p)) {
        Some(pid) if loc.locked() => Ok(State::NotAnswering {
            socket: loc.socket,
            pid,
            why,
        }),
        _ => Ok(State::Stopped { socket: loc.socket }),
    }
}

fn alive(pid: i32) -> bool {
    pid > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Send SIGTERM to the agent at the socket; it finishes what is in flight.
pub fn stop(socket: Option<PathBuf>, pid_file: Option<PathBuf>) -> Result<i32> {
    let paths = crate::paths::Paths::from_env()?;
    let loc = Location::new(location::for_client(&paths, socket)?, pid_file);
    let pid = loc.pid().filter(|&p| alive(p));
    match pid {
        Some(pid) if loc.locked() => {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            )
            .map_err(|e| {
                OvError::new(format!("cannot stop the agent (pid {pid}): {}", e.desc()))
                    .kind(Kind::Environment)
                    .hint(format!("sudo kill {pid}"))
            })?;
            Ok(pid)
        }
        _ => Err(client::no_agent(
            &loc.socket,
            if loc.locked() {
                "its pid file names no live process"
            } else {
                "no agent holds its lock"
            },
        )),
    }
}

/// Wait until the agent at `loc` answers a signed ping, or `child` (the
/// daemon just started) exits, whichever comes first.
pub fn wait_ready(
    loc: &Location,
    machine_key: Option<&Path>,
    child: &mut std::process::Child,
    within: Duration,
) -> Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let pong = client::key_for(loc, machine_key)
            .and_then(|key| Client::connect(&loc.socket, key))
            .and_then(|c| c.ask(Request::Ping));
        if let Ok(Answer::Pong { .. }) = pong {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            return Err(OvError::new(format!(
                "the agent did not answer on {} within {}s",
                loc.socket.display(),
                within.as_secs()
            ))
            .kind(Kind::Environment)
            .hint(format!(
                "cat {}   # what the agent said",
                ov_plugin_support::shell_quote(&loc.log_file())
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
