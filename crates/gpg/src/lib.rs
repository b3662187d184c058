//! GnuPG for ov: encrypted `.secrets` files, the gpg-agent configuration,
//! key import and export, the Secret Service entries pinentry reads, and the
//! doctor for the whole chain.
//!
//! Everything goes through the real `gpg`, `gpg-connect-agent` and `gpgconf`
//! found on `PATH`. Passphrases reach gpg on stdin (`--passphrase-fd 0`),
//! never in argv.

pub mod agent;
pub mod checks;
pub mod keystore;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use zeroize::Zeroizing;

/// A failure with the commands that fix it, for the CLI to print.
#[derive(Debug, Clone)]
pub struct GpgError {
    pub message: String,
    pub hints: Vec<String>,
}

impl GpgError {
    pub fn new(message: impl Into<String>) -> Self {
        GpgError {
            message: message.into(),
            hints: Vec::new(),
        }
    }
    /// The Secret Service error of a machine with no session bus at all (a
    /// server, an ssh session), where starting a provider cannot work.
    pub fn no_session_bus(&self) -> bool {
        self.hints
            .iter()
            .any(|h| h == ov_secret_service::bus::NO_BUS_FIX)
    }

    pub fn hint(mut self, h: impl Into<String>) -> Self {
        self.hints.push(h.into());
        self
    }
}

impl std::fmt::Display for GpgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GpgError {}

impl From<std::io::Error> for GpgError {
    fn from(e: std::io::Error) -> Self {
        GpgError::new(e.to_string())
    }
}

pub type Result<T, E = GpgError> = std::result::Result<T, E>;

/// The fixes, in one place so errors and doctor findings say the same.
pub mod fix {
    pub const INSTALL: &str = "sudo apt-get install gnupg   # or your distribution's GnuPG package";
    pub const SETUP: &str = "ov secrets gpg setup";
    pub const IMPORT: &str = "ov secrets gpg import-key <path>";
    pub const IMPORT_KEYSTORE: &str = "ov secrets gpg import-key --from-keystore";
    pub const AGENT: &str = "gpgconf --launch gpg-agent";
    pub const DOCTOR: &str = "ov secrets gpg doctor";
    pub const BACKUP: &str = "ov secrets gpg export-key --to-keystore";
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

/// One secret key as `--list-secret-keys --with-colons` shows it.
#[derive(Debug, Clone, Default)]
pub struct SecretKey {
    pub keyid: String,
    pub fingerprint: String,
    pub uid: String,
    /// Primary key first, then subkeys.
    pub subkeys: Vec<SubKey>,
}

#[derive(Debug, Clone, Default)]
pub struct SubKey {
    pub keyid: String,
    pub fingerprint: String,
    pub keygrip: String,
    /// Capability letters (`e` encrypt, `s` sign, `c` certify).
    pub caps: String,
}

impl SecretKey {
    pub fn grips(&self) -> impl Iterator<Item = &str> {
        self.subkeys.iter().map(|s| s.keygrip.as_str())
    }
    pub fn encryption_grips(&self) -> impl Iterator<Item = &str> {
        self.subkeys
            .iter()
            .filter(|s| s.caps.contains('e'))
            .map(|s| s.keygrip.as_str())
    }
    /// Does `id` (key id, fingerprint, or a suffix) name this key or a subkey?
    pub fn matches(&self, id: &str) -> bool {
        let id = id.trim_start_matches("0x").to_ascii_uppercase();
        if id.len() < 8 {
            return false;
        }
        self.subkeys
            .iter()
            .any(|s| s.fingerprint.ends_with(&id) || s.keyid.ends_with(&id))
    }
}

impl Gpg {
    /// Find `gpg` (required) and its helpers on PATH.
    pub fn find() -> Result<Gpg> {
        let gpg = which::which("gpg").map_err(|_| {
            GpgError::new("gpg is not installed (no `gpg` on PATH)").hint(fix::INSTALL)
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
            GpgError::new(format!("cannot run {}: {e}", program.display())).hint(fix::INSTALL)
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
                return Err(GpgError::new(format!(
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

    /// Decrypt `file`; the errors say which `ov secrets gpg` command fixes
    /// them. With nobody to answer a pinentry (no terminal, no display) and
    /// the passphrase not cached in the agent, the passphrase stored in the
    /// Secret Service for the file's keygrip is handed to gpg on a pipe
    /// (`--pinentry-mode loopback --passphrase-fd 0`); with none stored the
    /// decryption fails at once, as before.
    pub fn decrypt(&self, file: &Path) -> Result<Zeroizing<Vec<u8>>> {
        if can_prompt() {
            return self.decrypt_with(file, true);
        }
        let path = file.to_string_lossy();
        let r = self.run(
            &[
                "--yes",
                "--pinentry-mode",
                "error",
                "--decrypt",
                "--",
                &path,
            ],
            None,
        )?;
        if r.ok {
            return Ok(r.stdout);
        }
        let first = self.diagnose(file, &r);
        if !needs_pinentry(&r) {
            return Err(first);
        }
        let enc_to: Vec<String> = r
            .status_args("ENC_TO")
            .into_iter()
            .filter_map(|a| a.first().map(|k| k.to_ascii_uppercase()))
            .collect();
        let keys = self.secret_keys().unwrap_or_default();
        let grips: Vec<&str> = keys
            .iter()
            .flat_map(|k| k.subkeys.iter())
            .filter(|s| enc_to.contains(&s.keyid.to_ascii_uppercase()))
            .map(|s| s.keygrip.as_str())
            .collect();
        let ks = keystore::Keystore::new();
        for grip in grips {
            let pass = match ks.passphrase(grip) {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                // No Secret Service here (cron, a bare ssh session): the
                // first error says what to do.
                Err(_) => break,
            };
            let r = self.run(
                &[
                    "--yes",
                    "--pinentry-mode",
                    "loopback",
                    "--passphrase-fd",
                    "0",
                    "--decrypt",
                    "--",
                    &path,
                ],
                Some(&pass),
            )?;
            if r.ok {
                return Ok(r.stdout);
            }
            if r.has_status("BAD_PASSPHRASE") || r.messages.contains("Bad passphrase") {
                return Err(GpgError::new(format!(
                    "decrypting {} failed: the passphrase stored in the Secret Service for keygrip {grip} does not open the key",
                    file.display()
                ))
                .hint(format!("{}   # stores the right passphrase", fix::SETUP))
                .hint(fix::DOCTOR));
            }
            return Err(self.diagnose(file, &r));
        }
        Err(first)
    }

    /// Decrypt; with `ask` false the agent may only use a cached passphrase.
    pub fn decrypt_with(&self, file: &Path, ask: bool) -> Result<Zeroizing<Vec<u8>>> {
        let path = file.to_string_lossy();
        // No --quiet: it also hides the `ERROR pkdecrypt_failed` status
        // line the diagnosis reads.
        let mut args = vec!["--yes"];
        if !ask {
            args.extend(["--pinentry-mode", "error"]);
        }
        args.extend(["--decrypt", "--", &path]);
        let r = self.run(&args, None)?;
        if r.ok {
            return Ok(r.stdout);
        }
        Err(self.diagnose(file, &r))
    }

    /// Turn a failed decryption into a message and its fixes.
    pub fn diagnose(&self, file: &Path, r: &Run) -> GpgError {
        let name = file.display();
        if r.has_status("NODATA") || r.messages.contains("no valid OpenPGP data") {
            return GpgError::new(format!(
                "decrypting {name} failed: it is not an OpenPGP file"
            ))
            .hint(format!(
                "ov secrets gpg encrypt -r <KEY_ID> -i .env -o {name}   # encrypt a plaintext .env"
            ));
        }
        let enc_to: Vec<String> = r
            .status_args("ENC_TO")
            .into_iter()
            .filter_map(|a| a.first().cloned())
            .collect();
        let no_seckey: Vec<String> = r
            .status_args("NO_SECKEY")
            .into_iter()
            .filter_map(|a| a.first().cloned())
            .collect();
        if !no_seckey.is_empty() && no_seckey.len() >= enc_to.len() {
            return GpgError::new(format!(
                "decrypting {name} failed: gpg: No secret key — it is encrypted to {}, and this keyring holds none of them",
                no_seckey.join(", ")
            ))
            .hint(fix::IMPORT)
            .hint(fix::IMPORT_KEYSTORE)
            .hint(format!(
                "ov secrets gpg add-recipient <YOUR_KEY_ID> -f {name}   # run by someone who can decrypt it"
            ));
        }
        let text = &r.messages;
        if needs_pinentry(r) {
            let mut e = GpgError::new(format!(
                "decrypting {name} failed: the key's passphrase is not cached in gpg-agent and no pinentry can ask for it{}",
                if can_prompt() { "" } else { " (no terminal)" }
            ));
            e = e
                .hint(format!(
                    "ov secrets gpg show -f {name}   # on a terminal, to enter the passphrase once"
                ))
                .hint(format!(
                    "{}   # stores the passphrase where pinentry finds it",
                    fix::SETUP
                ));
            return e;
        }
        if r.has_status("BAD_PASSPHRASE") {
            return GpgError::new(format!("decrypting {name} failed: bad passphrase"))
                .hint(fix::DOCTOR);
        }
        if text.contains("connection to agent") || text.contains("can't connect to the agent") {
            return GpgError::new(format!(
                "decrypting {name} failed: gpg-agent is not running"
            ))
            .hint(fix::AGENT)
            .hint(fix::SETUP);
        }
        let detail = text
            .trim()
            .lines()
            .last()
            .unwrap_or("gpg failed")
            .to_owned();
        GpgError::new(format!("decrypting {name} failed: {detail}")).hint(fix::DOCTOR)
    }

    /// The key ids a file is encrypted to (long ids, as gpg prints them).
    pub fn recipients(&self, file: &Path) -> Result<Vec<String>> {
        let path = file.to_string_lossy();
        let r = self.run(
            &[
                "--list-only",
                "--pinentry-mode",
                "cancel",
                "--decrypt",
                "--",
                &path,
            ],
            None,
        )?;
        if r.has_status("NODATA") || r.messages.contains("no valid OpenPGP data") {
            return Err(self.diagnose(file, &r));
        }
        let mut ids = Vec::new();
        for a in r.status_args("ENC_TO") {
            if let Some(id) = a.first()
                && !ids.contains(id)
            {
                ids.push(id.clone());
            }
        }
        if ids.is_empty() {
            return Err(GpgError::new(format!(
                "{} names no recipient (symmetric encryption or hidden recipients); ov cannot re-encrypt it to the same people",
                file.display()
            ))
            .hint(format!(
                "ov secrets gpg decrypt -i {0} | ov secrets gpg encrypt -r <KEY_ID> -i /dev/stdin -o {0}",
                file.display()
            )));
        }
        Ok(ids)
    }

    /// Encrypt `plaintext` to `recipients`. Unknown recipients are an error
    /// that names them.
    pub fn encrypt(&self, plaintext: &[u8], recipients: &[String]) -> Result<Vec<u8>> {
        if recipients.is_empty() {
            return Err(
                GpgError::new("no recipient given").hint("ov secrets gpg encrypt -r <KEY_ID>")
            );
        }
        for r in recipients {
            self.public_key(r)?;
        }
        // The user named these keys: they are trusted for this file whatever
        // their web-of-trust validity (`gpg --batch` would otherwise refuse
        // an unsigned colleague's key).
        let mut args = vec!["--yes", "--trust-model", "always", "--encrypt"];
        for r in recipients {
            args.push("--recipient");
            args.push(r);
        }
        args.extend(["--output", "-"]);
        let r = self.run(&args, Some(plaintext))?;
        if !r.ok {
            let detail = r.messages.trim().lines().last().unwrap_or("").to_owned();
            return Err(GpgError::new(format!("gpg could not encrypt: {detail}")).hint(fix::DOCTOR));
        }
        Ok(r.stdout.to_vec())
    }

    /// The public key `id` names: its fingerprint and first user id.
    pub fn public_key(&self, id: &str) -> Result<(String, String)> {
        let r = self.run(&["--with-colons", "--list-keys", "--", id], None)?;
        let text = r.stdout_text();
        let fpr = text
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .map(str::to_owned);
        let uid = text
            .lines()
            .find(|l| l.starts_with("uid:"))
            .and_then(|l| l.split(':').nth(9))
            .unwrap_or("")
            .to_owned();
        match (r.ok, fpr) {
            (true, Some(f)) => Ok((f, unescape_colons(&uid))),
            _ => Err(GpgError::new(format!(
                "unknown recipient {id}: no public key for it in the keyring"
            ))
            .hint(format!("gpg --import <{id}'s public key file>"))
            .hint(fix::IMPORT)),
        }
    }

    /// Secret keys in the keyring.
    pub fn secret_keys(&self) -> Result<Vec<SecretKey>> {
        let r = self.run(
            &["--with-colons", "--with-keygrip", "--list-secret-keys"],
            None,
        )?;
        if !r.ok && !r.messages.trim().is_empty() && r.stdout.is_empty() {
            return Err(GpgError::new(format!(
                "gpg cannot list the secret keys: {}",
                r.messages.trim()
            ))
            .hint(fix::DOCTOR));
        }
        Ok(parse_secret_keys(&r.stdout_text()))
    }

    /// The secret key `id` names, or the only/first one when `id` is None.
    pub fn pick_key(&self, id: Option<&str>) -> Result<SecretKey> {
        let keys = self.secret_keys()?;
        match id {
            Some(id) => keys.into_iter().find(|k| k.matches(id)).ok_or_else(|| {
                GpgError::new(format!("no secret key {id} in the keyring"))
                    .hint(fix::IMPORT)
                    .hint("gpg --list-secret-keys   # the keys there are")
            }),
            None => keys.into_iter().next().ok_or_else(|| {
                GpgError::new("no secret key in the keyring")
                    .hint(fix::SETUP)
                    .hint(fix::IMPORT)
            }),
        }
    }

    /// Import keys from `file`; with a passphrase, through loopback pinentry.
    pub fn import(&self, file: &Path, passphrase: Option<&[u8]>) -> Result<String> {
        let path = file.to_string_lossy();
        let mut args = Self::pinentry_args(passphrase.is_some());
        args.extend(["--import", "--", &path]);
        let r = self.run(&args, passphrase)?;
        if !r.ok && !r.has_status("IMPORT_OK") {
            return Err(GpgError::new(format!(
                "importing {} failed: {}",
                file.display(),
                r.messages.trim()
            ))
            .hint(fix::DOCTOR));
        }
        Ok(r.messages)
    }

    pub fn import_ownertrust(&self, file: &Path) -> Result<()> {
        let path = file.to_string_lossy();
        let r = self.run(&["--import-ownertrust", "--", &path], None)?;
        if !r.ok {
            return Err(GpgError::new(format!(
                "importing the owner trust from {} failed: {}",
                file.display(),
                r.messages.trim()
            )));
        }
        Ok(())
    }

    pub fn export_public(&self, fpr: &str) -> Result<Vec<u8>> {
        let r = self.run(&["--armor", "--export", "--", fpr], None)?;
        if !r.ok || r.stdout.is_empty() {
            return Err(GpgError::new(format!(
                "exporting the public key {fpr} failed: {}",
                r.messages.trim()
            )));
        }
        Ok(r.stdout.to_vec())
    }

    pub fn export_secret(
        &self,
        fpr: &str,
        passphrase: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let mut args = Self::pinentry_args(passphrase.is_some());
        args.extend(["--armor", "--export-secret-keys", "--", fpr]);
        let r = self.run(&args, passphrase)?;
        if !r.ok || r.stdout.is_empty() {
            return Err(GpgError::new(format!(
                "exporting the secret key {fpr} failed: {}",
                r.messages.trim()
            ))
            .hint("ov secrets gpg export-key --passphrase-file <FILE>   # or on a terminal, to enter the passphrase")
            .hint(fix::DOCTOR));
        }
        Ok(r.stdout)
    }

    pub fn export_ownertrust(&self) -> Result<Vec<u8>> {
        let r = self.run(&["--export-ownertrust"], None)?;
        Ok(r.stdout.to_vec())
    }

    /// Check a passphrase against a key by signing nothing with it.
    pub fn check_passphrase(&self, fpr: &str, passphrase: &[u8]) -> Result<()> {
        let r = self.run(
            &[
                "--pinentry-mode",
                "loopback",
                "--passphrase-fd",
                "0",
                "--local-user",
                fpr,
                "--output",
                "/dev/null",
                "--yes",
                "--sign",
                "/dev/null",
            ],
            Some(passphrase),
        )?;
        if r.ok {
            Ok(())
        } else if r.has_status("BAD_PASSPHRASE") || r.messages.contains("Bad passphrase") {
            Err(GpgError::new(format!(
                "the passphrase is wrong for key {fpr}"
            )))
        } else {
            Err(GpgError::new(format!(
                "cannot check the passphrase of {fpr}: {}",
                r.messages.trim()
            )))
        }
    }

    /// Generate a key (default algorithms, no expiry) protected by `passphrase`.
    pub fn generate(&self, uid: &str, passphrase: &[u8]) -> Result<SecretKey> {
        let r = self.run(
            &[
                "--pinentry-mode",
                "loopback",
                "--passphrase-fd",
                "0",
                "--quick-gen-key",
                uid,
                "default",
                "default",
                "never",
            ],
            Some(passphrase),
        )?;
        if !r.ok {
            return Err(GpgError::new(format!(
                "generating a key for {uid} failed: {}",
                r.messages.trim()
            )));
        }
        let fpr = r
            .status_args("KEY_CREATED")
            .first()
            .and_then(|a| a.get(1).cloned())
            .unwrap_or_default();
        self.pick_key(Some(&fpr))
    }
}

/// Did gpg fail for want of a pinentry (passphrase not cached, nobody to
/// ask, or the asking timed out or was cancelled)?
fn needs_pinentry(r: &Run) -> bool {
    let text = &r.messages;
    r.has_status("PINENTRY_LAUNCHED") && text.contains("Timeout")
        || text.contains("No pinentry")
        || text.contains("Operation cancelled")
        || text.contains("Inappropriate ioctl")
        || r.status_args("ERROR").iter().any(|a| {
            // gpg-error codes: 85 no pinentry, 99 cancelled, 62 timeout.
            a.get(1)
                .and_then(|c| c.parse::<u32>().ok())
                .is_some_and(|c| matches!(c & 0xffff, 85 | 99 | 62))
        })
}

/// `\x3a` and friends in colon listings.
fn unescape_colons(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\\x") {
        out.push_str(&rest[..i]);
        let hex = rest
            .get(i + 2..i + 4)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push_str("\\x");
                rest = &rest[i + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn parse_secret_keys(text: &str) -> Vec<SecretKey> {
    let mut keys: Vec<SecretKey> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        let field = |i: usize| f.get(i).copied().unwrap_or("").to_owned();
        match f.first().copied() {
            Some("sec") => keys.push(SecretKey {
                keyid: field(4),
                subkeys: vec![SubKey {
                    keyid: field(4),
                    caps: field(11),
                    ..SubKey::default()
                }],
                ..SecretKey::default()
            }),
            Some("ssb") => {
                if let Some(k) = keys.last_mut() {
                    k.subkeys.push(SubKey {
                        keyid: field(4),
                        caps: field(11),
                        ..SubKey::default()
                    });
                }
            }
            Some("fpr") => {
                if let Some(k) = keys.last_mut() {
                    let fpr = field(9);
                    if k.fingerprint.is_empty() {
                        k.fingerprint = fpr.clone();
                    }
                    if let Some(s) = k.subkeys.last_mut()
                        && s.fingerprint.is_empty()
                    {
                        s.fingerprint = fpr;
                    }
                }
            }
            Some("grp") => {
                if let Some(s) = keys.last_mut().and_then(|k| k.subkeys.last_mut())
                    && s.keygrip.is_empty()
                {
                    s.keygrip = field(9);
                }
            }
            Some("uid") => {
                if let Some(k) = keys.last_mut()
                    && k.uid.is_empty()
                {
                    k.uid = unescape_colons(&field(9));
                }
            }
            _ => {}
        }
    }
    keys
}

/// Is `dir` on a filesystem kept in memory (tmpfs, ramfs), so that what is
/// written there never reaches a disk?
pub fn on_memory_fs(dir: &Path) -> bool {
    use nix::sys::statfs::{FsType, TMPFS_MAGIC, statfs};
    // linux/magic.h; nix names no constant for ramfs.
    const RAMFS_MAGIC: FsType = FsType(0x8584_58f6);
    statfs(dir).is_ok_and(|s| {
        let t = s.filesystem_type();
        t == TMPFS_MAGIC || t == RAMFS_MAGIC
    })
}

/// Where plaintext may be written: `$XDG_RUNTIME_DIR` when it is a
/// directory on a memory filesystem, else `/dev/shm` when that is one.
pub fn memory_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/dev/shm")])
        .find(|p| p.is_dir() && on_memory_fs(p))
}

/// A directory only the user can enter, for plaintext that must touch a
/// filesystem: on `$XDG_RUNTIME_DIR` or `/dev/shm`, memory filesystems,
/// never on a disk (`/tmp` usually is one). Removed on drop.
pub fn private_dir() -> Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let base = memory_dir().ok_or_else(|| {
        GpgError::new(
            "no memory filesystem for the plaintext: $XDG_RUNTIME_DIR is not set or not a tmpfs, and /dev/shm is not one either",
        )
        .hint("export XDG_RUNTIME_DIR=/run/user/$(id -u)   # the tmpfs systemd-logind makes for you")
    })?;
    let dir = tempfile::Builder::new()
        .prefix("ov-gpg.")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(&base)
        .map_err(|e| {
            GpgError::new(format!(
                "cannot create a private directory in {}: {e}",
                base.display()
            ))
        })?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colon_listing_parses() {
        let text = "sec:u:255:22:AAAABBBBCCCCDDDD:1:::::scESC:::+:::ed25519:::0:\n\
fpr:::::::::1111AAAABBBBCCCCDDDD:\n\
grp:::::::::GRIPONE:\n\
uid:u::::1::X::Test \\x3a T <t@example.com>::::::::::0:\n\
ssb:u:255:18:EEEEFFFF00001111:1::::::e:::+:::cv25519::\n\
fpr:::::::::2222EEEEFFFF00001111:\n\
grp:::::::::GRIPTWO:\n";
        let keys = parse_secret_keys(text);
        assert_eq!(keys.len(), 1);
        let k = &keys[0];
        assert_eq!(k.fingerprint, "1111AAAABBBBCCCCDDDD");
        assert_eq!(k.uid, "Test : T <t@example.com>");
        assert_eq!(k.grips().collect::<Vec<_>>(), ["GRIPONE", "GRIPTWO"]);
        assert_eq!(k.encryption_grips().collect::<Vec<_>>(), ["GRIPTWO"]);
        assert!(k.matches("EEEEFFFF00001111"));
        assert!(k.matches("0xccccdddd"));
        assert!(!k.matches("DDDD"));
    }
}
