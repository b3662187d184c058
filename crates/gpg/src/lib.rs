//! GnuPG for ov: encrypted `.secrets` files, the gpg-agent configuration,
//! key import and export, the Secret Service entries pinentry reads, and the
//! doctor for the whole chain.
//!
//! Everything goes through the real `gpg`, `gpg-connect-agent` and `gpgconf`
//! found on `PATH`. Passphrases reach gpg on stdin (`--passphrase-fd 0`),
//! never in argv.

pub mod agent;
pub mod checks;
mod files;
mod keys;
pub mod keystore;
mod memory;

pub use keys::{SecretKey, SubKey, parse_secret_keys};
pub use memory::{memory_dir, on_memory_fs, private_dir};

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use zeroize::Zeroizing;

/// ov's one error type (see [`ov_plugin_api::Error`]).
pub use ov_plugin_api::Error;

/// The problems code acts on.
pub mod problem {
    /// The key's passphrase is not in gpg-agent and nobody can be asked.
    pub const NOT_CACHED: &str = "passphrase_not_cached";
    /// No session bus, so no Secret Service (a server, an ssh session).
    pub const NO_SESSION_BUS: &str = ov_secret_service::bus::NO_BUS;
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The fixes, in one place so errors and doctor findings say the same.
pub mod fix {
    /// Install GnuPG (with `sudo` unless ov runs as root).
    pub fn install() -> String {
        ov_plugin_support::as_root(
            "apt-get install -y gnupg   # or your distribution's GnuPG package",
        )
    }
    pub const SETUP: &str = "ov secrets gpg setup";
    pub const IMPORT_KEYSTORE: &str = "ov secrets gpg import-key --from-keystore";
    pub const AGENT: &str = "gpgconf --launch gpg-agent";
    pub const DOCTOR: &str = "ov secrets gpg doctor";
    pub const BACKUP: &str = "ov secrets gpg export-key --to-keystore";

    /// Bring the secret key `id` here: the directory `export-key` writes on
    /// a machine that has it, named after the key, imported as is.
    pub fn import_key(id: &str) -> String {
        let dir = format!("gpg-key-{}", id.trim_start_matches("0x"));
        format!(
            "ov secrets gpg import-key {dir}   # {dir} is what `ov secrets gpg export-key --key-id {id} {dir}` writes on a machine that has the key"
        )
    }

    /// The same from the key backup in the Secret Service.
    pub fn import_from_keystore(id: &str) -> String {
        format!("{IMPORT_KEYSTORE} --key-id {id}")
    }

    /// Fetch the public key of a recipient: by address (WKD, then the
    /// keyservers gpg is set up with) or by key id.
    pub fn fetch_public(id: &str) -> String {
        if id.contains('@') {
            format!("gpg --locate-external-keys {id}")
        } else {
            format!("gpg --recv-keys {id}")
        }
    }
}

/// Seconds gpg may take before ov gives up on it (a pinentry nobody answers).
pub const TIMEOUT_ENV: &str = "OV_GPG_TIMEOUT_MS";

fn timeout() -> Duration {
    let ms = std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .unwrap_or(120_000);
    Duration::from_millis(ms)
}

/// Can a pinentry reach the user? Without a controlling terminal and without
/// a display, a pinentry would fail or wait for nobody: ov then asks the
/// agent with `--pinentry-mode error`, which uses a cached passphrase or
/// fails at once.
pub fn can_prompt() -> bool {
    let display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    display || std::fs::File::open("/dev/tty").is_ok()
}

/// What a gpg run produced.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: Zeroizing<Vec<u8>>,
    /// gpg's messages, without the status lines.
    pub messages: String,
    /// `[GNUPG:] …` status lines, without the prefix.
    pub status: Vec<String>,
}

impl Run {
    pub fn has_status(&self, keyword: &str) -> bool {
        self.status
            .iter()
            .any(|s| s.split_whitespace().next() == Some(keyword))
    }
    pub fn status_args(&self, keyword: &str) -> Vec<Vec<String>> {
        self.status
            .iter()
            .filter(|s| s.split_whitespace().next() == Some(keyword))
            .map(|s| s.split_whitespace().skip(1).map(str::to_owned).collect())
            .collect()
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Where the GnuPG programs are.
#[derive(Debug, Clone)]
pub struct Gpg {
    pub gpg: PathBuf,
    pub connect_agent: Option<PathBuf>,
    pub gpgconf: Option<PathBuf>,
}

impl Gpg {
    /// Find `gpg` (required) and its helpers on PATH.
    pub fn find() -> Result<Gpg> {
        let gpg = which::which("gpg").map_err(|_| {
            Error::new("gpg is not installed (no `gpg` on PATH)").hint(fix::install())
        })?;
        Ok(Gpg {
            gpg,
            connect_agent: which::which("gpg-connect-agent").ok(),
            gpgconf: which::which("gpgconf").ok(),
        })
    }

    /// Run `program args…` with `input` on stdin, bounded by [`timeout`].
    pub fn exec(&self, program: &Path, args: &[&OsStr], input: Option<&[u8]>) -> Result<Run> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            Error::new(format!("cannot run {}: {e}", program.display())).hint(fix::install())
        })?;
        let stdin = child.stdin.take();
        let input = input.map(|i| Zeroizing::new(i.to_vec()));
        let writer = std::thread::spawn(move || {
            if let (Some(mut s), Some(i)) = (stdin, input) {
                let _ = s.write_all(&i);
            }
        });
        let mut out = child.stdout.take();
        let reader = std::thread::spawn(move || {
            let mut buf = Zeroizing::new(Vec::new());
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_end(&mut buf);
            }
            buf
        });
        let mut err = child.stderr.take();
        let err_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_end(&mut buf);
            }
            buf
        });
        // Wait on a thread so the caller can give up at the deadline
        // without polling (a poll interval would add to every gpg call).
        let limit = timeout();
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(limit) {
            Ok(status) => status?,
            Err(_) => {
                if let Ok(pid) = i32::try_from(pid) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                return Err(Error::new(format!(
                    "{} did not finish within {} s (a pinentry waiting for nobody?)",
                    program.display(),
                    limit.as_secs()
                ))
                .hint(fix::DOCTOR));
            }
        };
        let _ = writer.join();
        let stdout = reader.join().unwrap_or_default();
        let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
        let mut messages = String::new();
        let mut st = Vec::new();
        for line in stderr.lines() {
            match line.strip_prefix("[GNUPG:] ") {
                Some(s) => st.push(s.to_owned()),
                None => {
                    messages.push_str(line);
                    messages.push('\n');
                }
            }
        }
        Ok(Run {
            ok: status.success(),
            stdout,
            messages,
            status: st,
        })
    }

    /// `gpg --batch --status-fd 2 args…`.
    pub fn run(&self, args: &[&str], input: Option<&[u8]>) -> Result<Run> {
        let mut all: Vec<&OsStr> = ["--batch", "--no-tty", "--status-fd", "2"]
            .iter()
            .map(OsStr::new)
            .collect();
        all.extend(args.iter().map(OsStr::new));
        self.exec(&self.gpg, &all, input)
    }

    pub fn version(&self) -> Result<String> {
        let r = self.run(&["--version"], None)?;
        Ok(r.stdout_text().lines().next().unwrap_or("").to_owned())
    }

    /// The pinentry options for a run: loopback with a passphrase on stdin,
    /// `error` when nobody could answer a pinentry, the agent's own otherwise.
    fn pinentry_args(passphrase: bool) -> Vec<&'static str> {
        if passphrase {
            vec!["--pinentry-mode", "loopback", "--passphrase-fd", "0"]
        } else if can_prompt() {
            vec![]
        } else {
            vec!["--pinentry-mode", "error"]
        }
    }
}
