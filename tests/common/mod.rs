//! The hermetic test environment every integration test goes through: a
//! temporary HOME and XDG tree, a cleared environment, and a builder for
//! `ov` commands that reads like the user's session.

#![allow(dead_code)]

pub mod openbao;
pub mod secret_service;
pub mod systemd;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use tempfile::TempDir;

pub struct TestEnv {
    tmp: TempDir,
    extra_env: Vec<(String, String)>,
}

/// Where cargo put the `ov` binary; the plugin libraries sit beside it.
pub fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ov"))
        .parent()
        .expect("binary has a directory")
        .to_path_buf()
}

/// `command` with `sudo` in front unless the tests run as root, as ov
/// prints a fix that needs root.
pub fn as_root(command: &str) -> String {
    if nix::unistd::Uid::effective().is_root() {
        command.to_owned()
    } else {
        format!("sudo {command}")
    }
}

/// A plugin library built by `cargo build --workspace`.
pub fn plugin_lib(crate_name: &str) -> PathBuf {
    let p = target_dir().join(format!("lib{crate_name}.so"));
    assert!(
        p.exists(),
        "{} is missing: build the plugins first with `cargo build --workspace` (./scripts/test does)",
        p.display()
    );
    p
}

impl TestEnv {
    pub fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("ov-test.")
            .tempdir()
            .expect("temp dir");
        for d in ["home", "config", "data", "run", "etc", "plugins"] {
            fs::create_dir_all(tmp.path().join(d)).expect("mkdir");
        }
        fs::set_permissions(tmp.path().join("run"), fs::Permissions::from_mode(0o700))
            .expect("chmod");
        TestEnv {
            tmp,
            extra_env: Vec::new(),
        }
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }

    pub fn config_dir(&self) -> PathBuf {
        self.root().join("config/ov")
    }

    pub fn user_config(&self) -> PathBuf {
        self.config_dir().join("config.toml")
    }

    pub fn system_config(&self) -> PathBuf {
        self.root().join("etc/config.toml")
    }

    pub fn credentials(&self) -> PathBuf {
        self.config_dir().join("credentials.toml")
    }

    /// A directory `OV_PLUGIN_PATH` points at for this environment.
    pub fn plugin_dir(&self) -> PathBuf {
        self.root().join("plugins")
    }

    /// Copy a plugin library built by cargo into this environment's plugin
    /// directory as `file_name`, and put that directory on `OV_PLUGIN_PATH`.
    pub fn install_plugin(&mut self, crate_name: &str, file_name: &str) -> PathBuf {
        let dest = self.plugin_dir().join(file_name);
        fs::copy(plugin_lib(crate_name), &dest).expect("copy plugin");
        let dir = self.plugin_dir().display().to_string();
        self.set_env("OV_PLUGIN_PATH", dir);
        dest
    }

    /// Stop setting a variable this environment set before.
    pub fn unset_env(&mut self, key: &str) {
        self.extra_env.retain(|(k, _)| k != key);
    }

    /// Set a variable for every later command of this environment.
    pub fn set_env(&mut self, key: &str, value: impl AsRef<str>) {
        self.extra_env
            .push((key.to_owned(), value.as_ref().to_owned()));
    }

    /// `ov ARGS…` with nothing from the developer's session leaking in.
    pub fn ov(&self, args: &[&str]) -> Command {
        Command::from_std(self.command(args))
    }

    /// The same as a plain process, for tests that spawn many at once.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ov"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.root().join("config"))
            .env("XDG_DATA_HOME", self.root().join("data"))
            .env("XDG_RUNTIME_DIR", self.root().join("run"))
            .env("OV_SYSCONFDIR", self.root().join("etc"))
            .env(
                "OV_SYSTEM_PLUGIN_DIR",
                self.root().join("no-system-plugins"),
            )
            .env("LANG", "C.UTF-8")
            .args(args)
            .current_dir(self.root());
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Run and return the output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.ov(args).output().expect("run ov")
    }

    /// Run with `stdin` as standard input.
    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        self.ov(args).write_stdin(stdin).output().expect("run ov")
    }

    /// Run, insist on success, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ov {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Replace this environment's temp paths so output can be snapshotted.
    pub fn normalize(&self, text: &str) -> String {
        text.replace(&self.root().display().to_string(), "[TMP]")
    }

    /// Exit status, stdout and stderr in one block, for snapshots.
    pub fn transcript(&self, out: &Output) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            out.status
                .code()
                .map_or_else(|| "signal".to_owned(), |c| c.to_string()),
            self.normalize(&String::from_utf8_lossy(&out.stdout)),
            self.normalize(&String::from_utf8_lossy(&out.stderr)),
        )
    }

    /// `WRAPPER… ov ARGS…` (`setsid -w`, `timeout 20`) with this
    /// environment's variables and directory, stdin from /dev/null.
    pub fn command_under(&self, wrapper: &[&str], args: &[&str]) -> std::process::Command {
        let inner = self.command(args);
        let (prog, rest) = wrapper.split_first().expect("a wrapper program");
        let mut cmd = std::process::Command::new(prog);
        cmd.args(rest)
            .arg(inner.get_program())
            .args(inner.get_args())
            .env_clear();
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        cmd.current_dir(self.root())
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// `ov ARGS…` in a fresh session keyring that does not link the user
    /// keyring, as under ssh, `su` or systemd, with no terminal.
    pub fn in_fresh_keyring_session(&self, args: &[&str]) -> std::process::Command {
        self.command_under(&["keyctl", "session", "-"], args)
    }

    /// One check of an `ov … doctor … --json` report, by id: the whole
    /// report entry, or `null` when the report has no such check.
    pub fn check_in(report: &str, id: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(report).expect("doctor --json");
        v["checks"]
            .as_array()
            .expect("checks is a list")
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap_or_default()
    }

    /// Run a line ov printed (a `hint:`) exactly as printed, through
    /// `sh -c`, in this environment, with this `ov` first on PATH.
    pub fn paste(&self, line: &str) -> Output {
        self.paste_in(line, self.root(), "")
    }

    /// [`TestEnv::paste`] from directory `dir`, with `stdin` as input.
    pub fn paste_in(&self, line: &str, dir: &Path, stdin: &str) -> Output {
        let cmd = self.command(&[]);
        let path = format!(
            "{}:{}",
            target_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut sh = std::process::Command::new("sh");
        sh.arg("-c").arg(line).env_clear();
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                sh.env(k, v);
            }
        }
        sh.env("PATH", path)
            .current_dir(dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = sh.spawn().expect("run sh");
        {
            use std::io::Write;
            let mut input = child.stdin.take().expect("stdin");
            input.write_all(stdin.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("wait sh")
    }

    pub fn write(&self, path: &Path, text: &str, mode: u32) {
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, text).expect("write");
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

/// An environment whose config backend holds `dotenv` as myapp/production.
pub fn with_app(dotenv: &str) -> TestEnv {
    let env = TestEnv::new();
    env.ok(&["settings", "set", "secret_backend", "config"]);
    let file = env.root().join(".env");
    env.write(&file, dotenv, 0o600);
    let p = file.display().to_string();
    env.ok(&[
        "secrets",
        "import",
        &p,
        "--app",
        "myapp",
        "--env",
        "production",
    ]);
    env
}

/// [`with_app`], sealed for a machine key at `m.key`.
pub fn with_machine_key(dotenv: &str) -> (TestEnv, PathBuf) {
    let env = with_app(dotenv);
    let key = env.root().join("m.key");
    let k = key.display().to_string();
    env.ok(&[
        "auth",
        "derive-machine-key",
        "--out",
        &k,
        "--app",
        "myapp",
        "--env",
        "production",
    ]);
    (env, key)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `hint:` lines of an error, without the prefix.
pub fn hints(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter_map(|l| l.strip_prefix("hint: "))
        .map(str::to_owned)
        .collect()
}

/// The one hint that starts with `prefix`.
pub fn hint_starting(out: &Output, prefix: &str) -> String {
    let found: Vec<String> = hints(out)
        .into_iter()
        .filter(|h| h.starts_with(prefix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one hint starting {prefix:?} in:\n{}",
        stderr(out)
    );
    found[0].clone()
}

pub fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

/// Run an expect script with `$ov` set to the binary and this environment's
/// variables, and return what the terminal showed.
pub fn expect(env: &TestEnv, script: &str) -> std::process::Output {
    let cmd = env.command(&[]);
    let mut expect = std::process::Command::new("expect");
    // A prompt that never comes, or an early exit, fails the script
    // instead of letting it run on.
    let guard = "expect_after timeout { puts \"expect: timed out\"; exit 98 } \
                 eof { puts \"expect: ov exited early\"; exit 97 }";
    let script: String = script
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("spawn ") {
                format!("{l}\n{guard}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    expect.arg("-c").arg(format!(
        "set timeout 10\nset ov {{{}}}\n{script}",
        env!("CARGO_BIN_EXE_ov")
    ));
    // Same hermetic environment as every ov command of this TestEnv.
    expect.env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            expect.env(k, v);
        }
    }
    expect.current_dir(env.root());
    expect.output().unwrap_or_else(|e| {
        panic!("cannot run expect ({e}); ./scripts/test installs it (Debian package: expect)")
    })
}

/// Paste `line` at a terminal, as a user would a fix the doctor printed:
/// `sh -c line` on a pseudo-terminal with this environment, `ov` on PATH,
/// and the expect `dialogue` answering its prompts. Returns what the
/// terminal showed; the status is the command's.
pub fn paste_on_tty(env: &TestEnv, line: &str, dialogue: &str) -> std::process::Output {
    assert!(
        !line.contains(['{', '}']),
        "a fix with braces needs other quoting: {line}"
    );
    let path = format!(
        "{}:{}",
        target_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    expect(
        env,
        &format!(
            "set timeout 60\nset env(PATH) {{{path}}}\nspawn sh -c {{{line}}}\n{dialogue}\nexpect eof\ncatch wait result\nexit [lindex $result 3]\n"
        ),
    )
}

/// Snapshot into the workspace's `snapshots/` folder.
#[macro_export]
macro_rules! snap {
    ($name:expr, $value:expr) => {
        insta::with_settings!({
            snapshot_path => "../snapshots",
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

/// A pipe whose buffer is already full. A child given its write end as
/// stderr blocks on its first message, so a test can look at the running
/// process; dropping the read end lets it go on (to EPIPE).
pub fn full_pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let (r, w) = nix::unistd::pipe().expect("pipe");
    fcntl(&w, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("O_NONBLOCK");
    // Big writes first, then single bytes: a write of up to PIPE_BUF bytes
    // is all or nothing, so only the last bytes fill the final gap.
    for chunk in [&[b'.'; 4096][..], &b"."[..]] {
        loop {
            match nix::unistd::write(&w, chunk) {
                Ok(_) => {}
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(e) => panic!("filling the pipe: {e}"),
            }
        }
    }
    fcntl(&w, FcntlArg::F_SETFL(OFlag::empty())).expect("blocking again");
    (r, w)
}

/// Run `args` with stderr on a full pipe and return what `ps` shows as its
/// command line once ov is blocked writing its first message (a warning
/// printed after it has read, and hidden, its secret arguments). The
/// process is killed before returning.
pub fn cmdline_while_blocked(env: &TestEnv, args: &[&str]) -> String {
    let (reader, writer) = full_pipe();
    let mut child = env
        .command(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(writer))
        .spawn()
        .expect("spawn ov");
    let pid = child.id();
    // Blocked in write(2) on the pipe: the kernel says so in wchan
    // (`pipe_write`, or `anon_pipe_write` on newer kernels).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let wchan = format!("/proc/{pid}/wchan");
    while !std::fs::read_to_string(&wchan)
        .unwrap_or_default()
        .ends_with("pipe_write")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "ov never blocked on its stderr (wchan {:?})",
            std::fs::read_to_string(&wchan)
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    let _ = child.kill();
    let _ = child.wait();
    drop(reader);
    String::from_utf8_lossy(&cmdline).replace('\0', " ")
}

/// The soft and hard limits in the "Max core file size" line of a
/// /proc/PID/limits.
pub fn core_limits(limits: &str) -> Vec<String> {
    limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap_or_else(|| panic!("no core limit in {limits}"))
        .split_whitespace()
        .skip(4)
        .take(2)
        .map(str::to_owned)
        .collect()
}

/// A wrapper for [`TestEnv::command_under`]: the command as nobody, with
/// no supplementary groups.
pub const AS_NOBODY: [&str; 6] = [
    "setpriv",
    "--reuid",
    "65534",
    "--regid",
    "65534",
    "--clear-groups",
];
