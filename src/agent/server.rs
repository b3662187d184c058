//! The agent process: one listening socket, a thread per connection (a
//! bounded number of them), each connection one signed request.

use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use ov_plugin_api::Secret;

use super::location::{self, Location};
use super::protocol::{
    self, Answer, AuthKey, FrameError, NonceStore, PASSED_FDS, Request, RunRequest, StatusInfo,
};
use crate::error::{Kind, OvError, Result};
use crate::machine_key::{self as mk, MachineKey};
use crate::paths::Paths;

/// At most this many connections are served at once; more wait in the
/// listen queue until a slot is free.
pub const MAX_CONNECTIONS: usize = 128;

/// Where the secrets of a run request come from.
#[derive(Debug)]
pub enum Source {
    /// Sealed bundles, opened with the machine key.
    Bundles { key: MachineKey, paths: Paths },
    /// The user's store, as `ov run` without a machine key reads it.
    Store,
}

#[derive(Debug)]
pub struct Config {
    pub key: AuthKey,
    pub source: Source,
    pub app: Option<String>,
    pub env: Option<String>,
    pub location: Location,
    /// Uids besides the agent's own that may connect.
    pub allowed_uids: Vec<u32>,
    /// A whole request frame must arrive within this.
    pub read_timeout: Duration,
    /// Stop after this long without a request (interactive agents).
    pub idle_timeout: Option<Duration>,
    /// The session token to write beside the socket (interactive agents).
    pub token: Option<zeroize::Zeroizing<Vec<u8>>>,
}

/// A request to the store thread: app, env, and where to send the secrets.
type StoreJob = (String, String, mpsc::Sender<Result<Vec<(String, Secret)>>>);

#[derive(Debug)]
struct Agent {
    config: Config,
    /// The thread that owns the unlocked store (interactive agents).
    store: Option<Mutex<mpsc::Sender<StoreJob>>>,
    started: Instant,
    served: AtomicU64,
    nonces: Mutex<NonceStore>,
    stopping: AtomicBool,
    /// Written to on stop: wakes the accept loop even when the socket
    /// file is gone.
    wake: OwnedFd,
    active: Mutex<usize>,
    slot_freed: Condvar,
    last_request: Mutex<Instant>,
    /// Each app/env's opened bundle, with the identity of the file it was
    /// read from.
    bundles: Mutex<BundleCache>,
    /// `OV_AGENT_NO_PIDFD` set: wait for commands as on a kernel without
    /// process descriptors (a thread per run reads the client's frames).
    no_pidfd: bool,
}

type BundleCache = std::collections::HashMap<(String, String), ([u64; 7], Vec<(String, Secret)>)>;

/// Held while a connection is served; frees its slot however it ends.
struct Slot<'a>(&'a Agent);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut n = self.0.active.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        self.0.slot_freed.notify_all();
    }
}

/// Bind the socket and serve until SIGTERM (or the idle timeout); then
/// finish the requests in flight, remove the socket and files, return 0.
pub fn serve(config: Config) -> Result<i32> {
    crate::harden::at_start();
    let loc = config.location.clone();
    let lock = take_lock(&loc)?;
    // Unlocked before the socket exists (a client never waits on a
    // prompt) and before the stop signals are blocked (Ctrl-C at the
    // prompt still ends ov).
    let store = match config.source {
        Source::Store => Some(open_store(true)?),
        Source::Bundles { .. } => None,
    };
    let listener = bind(&loc, !config.allowed_uids.is_empty())?;
    listener.set_nonblocking(true)?;
    let (wake_r, wake_w) =
        nix::unistd::pipe().map_err(|e| OvError::new(format!("cannot make a pipe: {e}")))?;
    write_files(&config)?;
    // Every thread inherits this mask; one thread takes the signals.
    let stop_signals = stop_signals();
    stop_signals
        .thread_block()
        .map_err(|e| OvError::new(format!("cannot block signals: {e}")))?;
    // After the mask, so the store's thread has the signals blocked too.
    let store = store.map(|s| Mutex::new(store_thread(s)));
    let agent = Arc::new(Agent {
        config,
        store,
        started: Instant::now(),
        served: AtomicU64::new(0),
        nonces: Mutex::new(NonceStore::default()),
        stopping: AtomicBool::new(false),
        wake: wake_w,
        active: Mutex::new(0),
        slot_freed: Condvar::new(),
        last_request: Mutex::new(Instant::now()),
        bundles: Mutex::new(BundleCache::new()),
        no_pidfd: std::env::var_os("OV_AGENT_NO_PIDFD").is_some_and(|v| !v.is_empty()),
    });
    {
        let agent = Arc::clone(&agent);
        std::thread::spawn(move || {
            if stop_signals.wait().is_ok() {
                agent.stop();
            }
        });
    }
    if let Some(idle) = agent.config.idle_timeout {
        let agent = Arc::clone(&agent);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let last = *agent.last_request.lock().unwrap_or_else(|e| e.into_inner());
                let busy = *agent.active.lock().unwrap_or_else(|e| e.into_inner()) > 0;
                if !busy && last.elapsed() >= idle {
                    eprintln!("ov agent: idle for {}s, stopping", idle.as_secs());
                    agent.stop();
                    return;
                }
            }
        });
    }
    eprintln!(
        "ov agent: listening on {} (pid {})",
        loc.socket.display(),
        std::process::id()
    );
    super::notify::send(&format!(
        "READY=1\nSTATUS=listening on {}",
        loc.socket.display()
    ));
    std::thread::scope(|scope| {
        loop {
            {
                let mut n = agent.active.lock().unwrap_or_else(|e| e.into_inner());
                while *n >= MAX_CONNECTIONS {
                    n = agent.slot_freed.wait(n).unwrap_or_else(|e| e.into_inner());
                }
            }
            let mut fds = [
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(wake_r.as_fd(), PollFlags::POLLIN),
            ];
            let _ = nix::poll::poll(&mut fds, PollTimeout::NONE);
            if agent.stopping.load(Ordering::SeqCst) {
                break;
            }
            let Ok((conn, _)) = listener.accept() else {
                continue;
            };
            if conn.set_nonblocking(false).is_err() {
                continue;
            }
            *agent.active.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            let agent = &*agent;
            scope.spawn(move || {
                let _slot = Slot(agent);
                agent.serve_connection(&conn);
            });
        }
        super::notify::send("STOPPING=1");
        // New clients find no socket; those in flight finish.
        let _ = std::fs::remove_file(&loc.socket);
    });
    for f in [loc.pid_file.clone(), loc.token_file()] {
        let _ = std::fs::remove_file(f);
    }
    drop(lock);
    eprintln!("ov agent: stopped");
    Ok(0)
}

fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set
}

/// The socket's lock, or the error that another agent holds it.
fn take_lock(loc: &Location) -> Result<nix::fcntl::Flock<std::fs::File>> {
    location::check_dir(&loc.socket, true)?;
    let path = loc.lock_file();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| OvError::new(format!("cannot open {}: {e}", path.display())))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        if e == nix::errno::Errno::EWOULDBLOCK {
            already_running(loc)
        } else {
            OvError::new(format!("cannot lock {}: {e}", path.display()))
        }
    })
}

pub fn already_running(loc: &Location) -> OvError {
    let pid = loc.pid().map(|p| format!(" (pid {p})")).unwrap_or_default();
    let sock = ov_plugin_support::shell_quote(&loc.socket);
    OvError::new(format!(
        "an agent is already running at {}{pid}",
        loc.socket.display()
    ))
    .kind(Kind::Environment)
    .hint(format!("ov agent status --socket {sock}"))
    .hint(format!(
        "ov agent stop --socket {sock}   # to start a new one"
    ))
}

/// The user's store, opened and unlocked through the usual chain (a
/// prompt only where there is a terminal, and only when `prompt`).
pub fn open_store(prompt: bool) -> Result<crate::store::Store> {
    let paths = Paths::from_env()?;
    let host = crate::host::Host::load(&Paths::plugin_search_path());
    let specs = crate::settings::Specs::of_host(&host);
    let settings = crate::settings::Settings::load(&paths, &specs)?;
    let mut store = crate::store::Store::new(&paths, &settings, host);
    if !prompt {
        store.never_prompt();
    }
    // Each backend that takes a secret gets it now, through the chain, and
    // its unlocker keeps it in memory: not the backend's own cache of what
    // it derived, which `ov secrets lock` or a timeout would clear.
    for b in store.chain() {
        if let Some(u) = store.unlocker(&b.desc.name)
            && b.backend.probe(store.context()).is_available()
        {
            u.run(store.context(), |c| b.backend.list(c, None))?;
        }
    }
    Ok(store)
}

/// A thread that owns the unlocked store (it is not shared between
/// threads) for the agent's life: its unlockers keep the secret in memory,
/// so every request is served without asking again.
fn store_thread(mut store: crate::store::Store) -> mpsc::Sender<StoreJob> {
    let (tx, rx) = mpsc::channel::<StoreJob>();
    std::thread::spawn(move || {
        // Later requests never stop at a prompt on the agent's terminal.
        store.never_prompt();
        for (app, env, reply) in rx {
            let _ = reply.send(mk::collect(&store, &app, &env).map(|c| {
                // The agent's stderr is its log.
                for n in &c.notes {
                    eprintln!("ov agent: note: {n}");
                }
                c.secrets
            }));
        }
    });
    tx
}

/// Bind the socket 0600 (0666 when other uids are allowed: their peer
/// credentials are checked instead), replacing a stale one.
fn bind(loc: &Location, others: bool) -> Result<UnixListener> {
    let sock = &loc.socket;
    if let Ok(meta) = std::fs::symlink_metadata(sock) {
        if !meta.file_type().is_socket() {
            return Err(OvError::new(format!(
                "{} exists and is not a socket; not replacing it",
                sock.display()
            ))
            .hint(format!("ls -l {}", ov_plugin_support::shell_quote(sock))));
        }
        if UnixStream::connect(sock).is_ok() {
            return Err(already_running(loc));
        }
        // A dead agent's socket: we hold the lock, so nobody serves it.
        let _ = std::fs::remove_file(sock);
    }
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(sock);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(|e| {
        OvError::new(format!("cannot listen on {}: {e}", sock.display())).kind(Kind::Environment)
    })?;
    if others {
        std::fs::set_permissions(sock, std::fs::Permissions::from_mode(0o666))?;
    }
    Ok(listener)
}

fn write_files(config: &Config) -> Result<()> {
    let loc = &config.location;
    let pid = format!("{}\n", std::process::id());
    ov_plugin_support::write_atomic(&loc.pid_file, pid.as_bytes(), Some(0o644))
        .map_err(|e| OvError::new(format!("cannot write {}: {e}", loc.pid_file.display())))?;
    if let Some(token) = &config.token {
        let path = loc.token_file();
        ov_plugin_support::write_atomic(&path, token, Some(0o600))
            .map_err(|e| OvError::new(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

impl Agent {
    fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = nix::unistd::write(&self.wake, b"x");
    }

    fn answer(&self, conn: &UnixStream, re: &str, answer: Answer) {
        let _ = protocol::write_frame(
            conn,
            &protocol::seal_answer(&self.config.key, re, answer),
            &[],
        );
    }

    fn error(&self, conn: &UnixStream, re: &str, e: &OvError) {
        self.answer(
            conn,
            re,
            Answer::Error {
                message: e.message.clone(),
                hints: e.hints.clone(),
                exit_code: e.exit_code,
            },
        );
    }

    fn serve_connection(&self, conn: &UnixStream) {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        let uid =
            match nix::sys::socket::getsockopt(conn, nix::sys::socket::sockopt::PeerCredentials) {
                Ok(c) => c.uid(),
                Err(_) => return,
            };
        let me = nix::unistd::Uid::effective().as_raw();
        if uid != me && !self.config.allowed_uids.contains(&uid) {
            eprintln!("ov agent: refused a client of uid {uid}");
            self.error(
                conn,
                "",
                &OvError::new(format!(
                    "the agent refuses clients of uid {uid}: it serves uid {me} only"
                ))
                .hint(format!(
                    "ov agent start --allow-uid {uid} ...   # as uid {me}, to let uid {uid} in"
                )),
            );
            return;
        }
        let mut fds = Vec::new();
        let deadline = Instant::now() + self.config.read_timeout;
        let payload = match protocol::read_frame(conn, Some(deadline), &mut fds) {
            Ok(p) => p,
            Err(FrameError::Closed) => return,
            Err(e) => {
                eprintln!("ov agent: dropped a connection: {e}");
                self.error(
                    conn,
                    "",
                    &OvError::new(format!("the agent dropped the request: {e}")),
                );
                return;
            }
        };
        let (request, nonce) = match protocol::open_request(
            &self.config.key,
            &payload,
            protocol::now_ms(),
            &self.nonces,
        ) {
            Ok(r) => r,
            Err(refusal) => {
                eprintln!("ov agent: refused a request: {}", refusal.message());
                self.error(
                    conn,
                    "",
                    &OvError::new(refusal.message()).hint(refusal.hint()),
                );
                return;
            }
        };
        self.served.fetch_add(1, Ordering::Relaxed);
        *self.last_request.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        match request {
            Request::Ping => self.answer(
                conn,
                &nonce,
                Answer::Pong {
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                },
            ),
            Request::Status => self.answer(conn, &nonce, Answer::Status(self.status())),
            Request::Run(run) => match self.run(conn, run, fds) {
                Ok(answer) => self.answer(conn, &nonce, answer),
                Err(e) => self.error(conn, &nonce, &e),
            },
            Request::Signal { .. } | Request::Unknown => self.error(
                conn,
                &nonce,
                &OvError::new(format!(
                    "the agent (ov {}) does not know this request",
                    env!("CARGO_PKG_VERSION")
                ))
                .hint("ov --version; ov agent status   # use the same ov for both"),
            ),
        }
    }

    fn status(&self) -> StatusInfo {
        StatusInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            requests_served: self.served.load(Ordering::Relaxed),
            mode: match self.config.source {
                Source::Bundles { .. } => "machine-key",
                Source::Store => "interactive",
            }
            .to_owned(),
            app: self.config.app.clone(),
            env: self.config.env.clone(),
        }
    }

    /// The app/env's bundle, opened again only when its file changed
    /// (another inode, size or time): a request then costs a `stat`, not
    /// a decryption.
    fn bundle(
        &self,
        key: &MachineKey,
        paths: &Paths,
        app: &str,
        env: &str,
    ) -> Result<Vec<(String, Secret)>> {
        use std::os::unix::fs::MetadataExt;
        let path = mk::default_bundle_path(paths, app, env);
        // Taken before the file is read: if it is replaced in between, the
        // next request sees another identity and reads it again.
        let id = std::fs::metadata(&path).ok().map(|m| {
            [
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime() as u64,
                m.mtime_nsec() as u64,
                m.ctime() as u64,
                m.ctime_nsec() as u64,
            ]
        });
        let slot = (app.to_owned(), env.to_owned());
        if let Some(id) = id {
            let cache = self.bundles.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((seen, secrets)) = cache.get(&slot)
                && *seen == id
            {
                return Ok(secrets.clone());
            }
        }
        let secrets = mk::open(&path, key, app, env)?;
        let mut cache = self.bundles.lock().unwrap_or_else(|e| e.into_inner());
        match id {
            Some(id) => {
                cache.insert(slot, (id, secrets.clone()));
            }
            None => {
                cache.remove(&slot);
            }
        }
        Ok(secrets)
    }

    /// The secrets a run request names, read here: they go into the
    /// command's environment and never onto the socket.
    fn secrets(&self, req: &RunRequest, app: &str, env: &str) -> Result<Vec<(String, Secret)>> {
        let selection = crate::run::parse_selection(Some(&req.names), req.all, app, env)?;
        let all = match &self.config.source {
            Source::Bundles { key, paths } => self.bundle(key, paths, app, env)?,
            Source::Store => {
                let (tx, rx) = mpsc::channel();
                let sent = self.store.as_ref().is_some_and(|s| {
                    s.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .send((app.to_owned(), env.to_owned(), tx))
                        .is_ok()
                });
                let answer = sent.then(|| rx.recv().ok()).flatten();
                answer.ok_or_else(|| {
                    OvError::new("the agent's store is gone")
                        .kind(Kind::Internal)
                        .hint("ov agent stop; ov agent start")
                })??
            }
        };
        let picked = crate::run::select(all, &selection, app, env, &|name| {
            vec![format!("ov secrets set --app {app} --env {env} {name}")]
        })?;
        let usable = mk::usable(&mk::service(app, env), picked);
        for n in &usable.notes {
            eprintln!("ov agent: note: {n}");
        }
        Ok(usable.secrets)
    }

    fn run(&self, conn: &UnixStream, req: RunRequest, fds: Vec<OwnedFd>) -> Result<Answer> {
        let app = req
            .app
            .clone()
            .or_else(|| self.config.app.clone())
            .ok_or_else(|| {
                OvError::usage(
                    "the agent has no default app: say which app's secrets the command gets",
                )
                .hint("ov run --agent --app myapp --env production --all -- CMD")
            })?;
        let env = req
            .env
            .clone()
            .or_else(|| self.config.env.clone())
            .unwrap_or_else(|| mk::DEFAULT_ENV.to_owned());
        mk::validate_app_env(&app, &env)?;
        let mut fds = fds.into_iter();
        let (Some(stdin), Some(stdout), Some(stderr)) = (fds.next(), fds.next(), fds.next()) else {
            return Err(OvError::new(format!(
                "a run request must pass {PASSED_FDS} descriptors (stdin, stdout, stderr)"
            )));
        };
        let secrets = self.secrets(&req, &app, &env)?;
        if req.argv.is_empty() {
            return Err(OvError::usage("no command to run"));
        }
        let started = super::spawn::Prepared::new(
            &req.argv,
            &req.environ,
            &secrets,
            &req.cwd,
            [stdin, stdout, stderr],
        )
        .and_then(super::spawn::Prepared::spawn);
        drop(secrets);
        let pid = started.map_err(|e| {
            let path = req.environ.iter().find(|(k, _)| k == "PATH");
            crate::run::spawn_error_on(
                &req.argv,
                &e,
                &|p| format!("ov run --agent ... -- {}", p.to_string_lossy()),
                path.map(|(_, v)| v.as_os_str()),
                &req.cwd,
            )
        })?;
        let pidfd = (!self.no_pidfd)
            .then(|| super::spawn::pidfd_open(pid).ok())
            .flatten();
        let result = match pidfd {
            Some(pidfd) => self.wait_polling(conn, pid, &pidfd),
            // A kernel before 5.3: a thread reads the client's frames.
            None => self.wait_threaded(conn, pid),
        };
        use nix::sys::wait::WaitStatus;
        match result.map_err(|e| OvError::new(format!("waiting for the command: {e}")))? {
            WaitStatus::Exited(_, code) => Ok(Answer::Exit {
                code: Some(code),
                signal: None,
            }),
            WaitStatus::Signaled(_, sig, _) => Ok(Answer::Exit {
                code: None,
                signal: Some(sig as i32),
            }),
            other => Err(
                OvError::new(format!("the command's end could not be read: {other:?}"))
                    .kind(Kind::Internal),
            ),
        }
    }

    /// Wait for the command in this one thread, passing on the signals
    /// the client sends: the process descriptor becomes readable when the
    /// command ends, and signals go through it, so they can only reach
    /// this command, never a process that got its pid later.
    fn wait_polling(
        &self,
        conn: &UnixStream,
        pid: nix::unistd::Pid,
        pidfd: &OwnedFd,
    ) -> nix::Result<nix::sys::wait::WaitStatus> {
        let mut client = true;
        loop {
            let mut fds = vec![PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            if client {
                fds.push(PollFd::new(conn.as_fd(), PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e),
                Ok(_) => {}
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            if ready(&fds[0]) {
                break;
            }
            if client && fds.get(1).is_some_and(ready) {
                match self.signal_frame(conn, Some(Instant::now() + self.config.read_timeout)) {
                    Ok(Some(sig)) => super::spawn::pidfd_signal(pidfd, sig),
                    Ok(None) => {}
                    Err(()) => {
                        // The client is gone mid-run: so is its command.
                        super::spawn::pidfd_signal(pidfd, Signal::SIGTERM);
                        client = false;
                    }
                }
            }
        }
        reap(pid)
    }

    /// [`Agent::wait_polling`] where there are no process descriptors: a
    /// second thread reads the client's frames, and signals the pid only
    /// while the command is unreaped.
    fn wait_threaded(
        &self,
        conn: &UnixStream,
        pid: nix::unistd::Pid,
    ) -> nix::Result<nix::sys::wait::WaitStatus> {
        let live = Arc::new(Mutex::new(Some(pid)));
        let reader = conn.try_clone().ok();
        std::thread::scope(|scope| {
            if let Some(c) = &reader {
                let live = Arc::clone(&live);
                scope.spawn(move || self.forward_signals(c, &live));
            }
            while let Err(nix::errno::Errno::EINTR) = nix::sys::wait::waitid(
                nix::sys::wait::Id::Pid(pid),
                nix::sys::wait::WaitPidFlag::WEXITED | nix::sys::wait::WaitPidFlag::WNOWAIT,
            ) {}
            live.lock().unwrap_or_else(|e| e.into_inner()).take();
            let status = reap(pid);
            // Ends the signal reader.
            let _ = conn.shutdown(std::net::Shutdown::Read);
            status
        })
    }

    /// The next frame from a client whose command runs: the signal it
    /// asks to pass on (`None` for a frame that is not a valid signal
    /// request), or `Err` when the client is gone.
    fn signal_frame(
        &self,
        conn: &UnixStream,
        deadline: Option<Instant>,
    ) -> Result<Option<Signal>, ()> {
        let mut fds = Vec::new();
        let payload = protocol::read_frame(conn, deadline, &mut fds).map_err(|_| ())?;
        Ok(
            match protocol::open_request(
                &self.config.key,
                &payload,
                protocol::now_ms(),
                &self.nonces,
            ) {
                Ok((Request::Signal { signal }, _)) => Signal::try_from(signal).ok(),
                _ => None,
            },
        )
    }

    /// Pass each signal frame to the command; a client gone mid-run gets
    /// its command a SIGTERM.
    fn forward_signals(&self, conn: &UnixStream, live: &Mutex<Option<nix::unistd::Pid>>) {
        loop {
            let next = self.signal_frame(conn, None);
            let Some(pid) = *live.lock().unwrap_or_else(|e| e.into_inner()) else {
                return;
            };
            match next {
                Ok(Some(sig)) => {
                    let _ = nix::sys::signal::kill(pid, sig);
                }
                Ok(None) => {}
                Err(()) => {
                    let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
                    return;
                }
            }
        }
    }
}

/// Reap the command and say how it ended.
fn reap(pid: nix::unistd::Pid) -> nix::Result<nix::sys::wait::WaitStatus> {
    loop {
        match nix::sys::wait::waitpid(pid, None) {
            Err(nix::errno::Errno::EINTR) => {}
            other => return other,
        }
    }
}
