//! `ov agent start|stop|status|install`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::agent::{self, State, install, location, location::Location, server};
use crate::cli::outln;
use crate::error::{OvError, Result};
use crate::machine_key::{self as mk, DEFAULT_ENV};
use crate::paths::Paths;

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum AgentCommand {
    /// Start the agent (a daemon, unless --foreground)
    Start(StartArgs),
    /// Stop the agent: SIGTERM; requests in flight finish first
    Stop(WhereArgs),
    /// Show whether the agent runs: uptime, version, requests served
    Status(StatusArgs),
    /// Write a systemd unit for the agent and the rendezvous file /etc/ov/agent.socket
    Install(InstallArgs),
}

#[derive(Debug, Args)]
pub struct WhereArgs {
    /// The agent's socket (default $XDG_RUNTIME_DIR/ov-agent/ov-agent.sock)
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The agent's pid file (default: the socket's path with .pid)
    #[arg(long, value_name = "PATH")]
    pid_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Sign requests with a key derived from this machine key, and open the sealed bundles with it
    #[arg(long, value_name = "PATH")]
    machine_key: Option<PathBuf>,
    /// The app run requests get secrets of when they name none
    #[arg(long)]
    app: Option<String>,
    /// The env run requests get secrets of when they name none
    #[arg(long)]
    env: Option<String>,
    #[command(flatten)]
    place: WhereArgs,
    /// Stay in the foreground (for a systemd unit; READY=1 goes to $NOTIFY_SOCKET)
    #[arg(long)]
    foreground: bool,
    /// Also serve clients of this uid (repeatable); the socket is then 0666
    #[arg(long, value_name = "UID")]
    allow_uid: Vec<u32>,
    /// Stop after this long without a request (interactive agents; 0 never)
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// A client must send its whole request within this
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration, hide = true)]
    read_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    place: WhereArgs,
    /// The machine key the agent was started with
    #[arg(long, value_name = "PATH")]
    machine_key: Option<PathBuf>,
    /// Print JSON for scripts
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The machine key file the agent loads (0600, owned by --user)
    #[arg(long, value_name = "PATH")]
    machine_key: PathBuf,
    /// The app the agent serves (written into ExecStart)
    #[arg(long)]
    app: String,
    /// The app's env (written into ExecStart)
    #[arg(long)]
    env: String,
    /// The account the agent runs as (never root)
    #[arg(long)]
    user: String,
    /// The systemd unit's name
    #[arg(long, default_value = install::DEFAULT_UNIT)]
    unit_name: String,
    /// Also run systemctl daemon-reload and systemctl enable --now
    #[arg(long)]
    enable: bool,
    /// Print the unit and the rendezvous file instead of writing them
    #[arg(long)]
    dry_run: bool,
}

/// `90`, `90s`, `15m`, `2h`.
fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration such as 90s, 15m or 2h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "ms" => return Ok(Duration::from_millis(n)),
        _ => return Err(format!("'{s}' is not a duration such as 90s, 15m or 2h")),
    };
    Ok(Duration::from_secs(secs))
}

pub fn run(cmd: AgentCommand) -> Result<i32> {
    match cmd {
        AgentCommand::Start(a) => start(a),
        AgentCommand::Stop(w) => {
            let pid = agent::stop(w.socket, w.pid_file)?;
            outln!("ov agent: stopping (pid {pid}); requests in flight finish first");
            Ok(0)
        }
        AgentCommand::Status(a) => status(a),
        AgentCommand::Install(a) => install_unit(a),
    }
}

fn start(a: StartArgs) -> Result<i32> {
    let paths = Paths::from_env()?;
    let socket = location::for_server(&paths, a.place.socket.clone())?;
    let loc = Location::new(socket, a.place.pid_file.clone());
    for (what, v) in [("app", &a.app), ("env", &a.env)] {
        if let Some(v) = v {
            mk::validate_app_env(
                if what == "app" { v } else { "app" },
                if what == "env" { v } else { DEFAULT_ENV },
            )?;
        }
    }
    let hint_app = a.app.as_deref().unwrap_or("APP");
    let hint_env = a.env.as_deref().unwrap_or(DEFAULT_ENV);
    // The key is checked here, so its errors reach the terminal.
    let key = match &a.machine_key {
        Some(p) => Some(mk::load(p, hint_app, hint_env)?),
        None => None,
    };
    location::check_dir(&loc.socket, true)?;
    if !a.allow_uid.is_empty() {
        location::check_reachable_by_others(&loc.socket)?;
    }
    if loc.locked() {
        return Err(server::already_running(&loc));
    }
    if !a.foreground {
        if key.is_none() {
            // Ask for the store's secret here, at the terminal; the daemon
            // finds it in the kernel-keyring cache, once, and keeps it.
            drop(server::open_store(true)?);
        }
        return daemonize(&a, &loc);
    }
    let (auth, source, token) = match key {
        Some(key) => (
            agent::protocol::AuthKey::from_machine_key(&key),
            server::Source::Bundles { key, paths },
            None,
        ),
        None => {
            let mut token = zeroize::Zeroizing::new(vec![0u8; 32]);
            getrandom::fill(&mut token[..]).map_err(|e| {
                OvError::new(format!("the system random number generator failed: {e}"))
            })?;
            (
                agent::protocol::AuthKey::from_token(&token),
                server::Source::Store,
                Some(token),
            )
        }
    };
    let interactive = token.is_some();
    server::serve(server::Config {
        key: auth,
        source,
        app: a.app,
        env: a.env,
        location: loc,
        allowed_uids: a.allow_uid,
        read_timeout: a.read_timeout,
        idle_timeout: (interactive && !a.idle_timeout.is_zero()).then_some(a.idle_timeout),
        token,
    })
}

/// Start `ov agent start --foreground …` in a new session, its output in
/// the log beside the socket, and return once it answers a signed ping.
fn daemonize(a: &StartArgs, loc: &Location) -> Result<i32> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()
        .map_err(|e| OvError::new(format!("cannot find the ov program: {e}")))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["agent", "start", "--foreground", "--socket"])
        .arg(&loc.socket)
        .arg("--pid-file")
        .arg(&loc.pid_file);
    let key = a.machine_key.as_ref().map(|k| mk::absolute(k));
    if let Some(k) = &key {
        cmd.arg("--machine-key").arg(k);
    }
    for (flag, v) in [("--app", &a.app), ("--env", &a.env)] {
        if let Some(v) = v {
            cmd.arg(flag).arg(v);
        }
    }
    for uid in &a.allow_uid {
        cmd.arg("--allow-uid").arg(uid.to_string());
    }
    cmd.arg("--idle-timeout")
        .arg(format!("{}ms", a.idle_timeout.as_millis()))
        .arg("--read-timeout")
        .arg(format!("{}ms", a.read_timeout.as_millis()));
    let log_path = loc.log_file();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| OvError::new(format!("cannot write {}: {e}", log_path.display())))?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .current_dir("/")
        // The daemon is nobody's service process: a unit that ran this
        // `ov agent start` gets no READY=1 from it.
        .env_remove("NOTIFY_SOCKET");
    // The daemon records the limit it starts with as the one its commands
    // get: the user's, not the 0 this process runs with.
    crate::harden::give_back_core_limit(&mut cmd);
    // SAFETY: setsid, close_range and fcntl are async-signal-safe;
    // nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            // A descriptor the caller left open (the pipe of `$(ov agent
            // start)`, say) would stay open as long as the daemon runs,
            // and whoever reads it would wait that long. Marked
            // close-on-exec, not closed: the pipe std reports a failed
            // exec through must stay writable until then.
            const CLOSE_RANGE_CLOEXEC: u32 = 4;
            let rc = nix::libc::syscall(
                nix::libc::SYS_close_range,
                3u32,
                u32::MAX,
                CLOSE_RANGE_CLOEXEC,
            );
            if rc != 0 {
                for fd in 3..1024 {
                    nix::libc::fcntl(fd, nix::libc::F_SETFD, nix::libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| OvError::new(format!("cannot start the agent: {e}")))?;
    match agent::wait_ready(loc, key.as_deref(), &mut child, Duration::from_secs(10))? {
        None => {
            outln!(
                "ov agent: started (pid {}) on {}",
                child.id(),
                loc.socket.display()
            );
            Ok(0)
        }
        Some(status) => {
            // It said why on its stderr: the log.
            let said = std::fs::read_to_string(&log_path).unwrap_or_default();
            eprint!("{said}");
            Ok(status.code().unwrap_or(1).max(1))
        }
    }
}

fn status(a: StatusArgs) -> Result<i32> {
    let state = agent::status(a.place.socket, a.place.pid_file, a.machine_key.as_deref())?;
    let code = match &state {
        State::Running { .. } => 0,
        State::NotAnswering { .. } => 1,
        // As `systemctl status` and LSB init scripts: 3 is "not running".
        State::Stopped { .. } => 3,
    };
    if a.json {
        crate::cli::print_json(&state)?;
        return Ok(code);
    }
    match state {
        State::Running { socket, info } => {
            outln!("ov agent: running");
            outln!("  pid:             {}", info.pid);
            outln!("  version:         {}", info.version);
            outln!("  uptime:          {}s", info.uptime_secs);
            outln!("  requests served: {}", info.requests_served);
            outln!("  mode:            {}", info.mode);
            if let Some(app) = &info.app {
                outln!(
                    "  app:             {app}/{}",
                    info.env.as_deref().unwrap_or(DEFAULT_ENV)
                );
            }
            outln!("  socket:          {}", socket.display());
        }
        State::NotAnswering { socket, pid, why } => {
            outln!(
                "ov agent: running (pid {pid}) but not answering on {}: {why}",
                socket.display()
            );
        }
        State::Stopped { socket } => {
            outln!("ov agent: stopped (no agent at {})", socket.display());
        }
    }
    Ok(code)
}

fn install_unit(a: InstallArgs) -> Result<i32> {
    let paths = Paths::from_env()?;
    let plan = install::plan(
        &paths,
        &install::Request {
            machine_key: &a.machine_key,
            app: &a.app,
            env: &a.env,
            user: &a.user,
            unit_name: &a.unit_name,
            enable: a.enable,
        },
    )?;
    if a.dry_run {
        outln!("# {}", plan.unit_path.display());
        crate::cli::out!("{}", plan.unit);
        outln!("# {}", plan.rendezvous_path.display());
        crate::cli::out!("{}", plan.rendezvous);
        return Ok(0);
    }
    if a.enable {
        install::systemd_runs(&plan)?;
    }
    install::apply(&plan)?;
    outln!("wrote {}", plan.unit_path.display());
    outln!("wrote {}", plan.rendezvous_path.display());
    if a.enable {
        install::enable(&plan)?;
        outln!(
            "enabled and started {}: the agent listens on {}",
            plan.unit_name,
            plan.rendezvous.trim_end()
        );
    } else {
        outln!(
            "next: {} && {}",
            ov_plugin_support::as_root("systemctl daemon-reload"),
            ov_plugin_support::as_root(&format!("systemctl enable --now {}", plan.unit_name))
        );
    }
    Ok(0)
}
