//! `ov secrets gpg …` — GnuPG-encrypted `.secrets` files for direnv, key
//! import and export, the one-stop agent setup, and its doctor.

use crate::cli::outln;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use ov_checks::Summary;
use ov_gpg::keystore::Keystore;
use ov_gpg::{Gpg, GpgError, SecretKey, agent, fix};
use ov_plugin_api::Secret;
use ov_plugin_support::{shell_quote, with_lock, write_atomic};
use zeroize::Zeroizing;

use crate::cli::warn;
use crate::dotenv;
use crate::error::{EXIT_ERROR, OvError, Result};
use crate::prompt;

impl From<GpgError> for OvError {
    fn from(e: GpgError) -> Self {
        let mut o = OvError::new(e.message);
        o.hints = e.hints;
        o
    }
}

#[derive(Debug, Subcommand)]
pub enum GpgCommand {
    /// Decrypt and print to stdout
    Show(FileArgs),
    /// Decrypt .secrets as export KEY='value' for eval/direnv
    Env(FileArgs),
    /// Decrypt, open $EDITOR, re-encrypt
    Edit(EditArgs),
    /// Encrypt plaintext env file
    Encrypt(EncryptArgs),
    /// Decrypt to file or stdout
    Decrypt(DecryptArgs),
    /// Add or update KEY=VALUE
    Set(SetArgs),
    /// Remove a key from .secrets
    Unset(UnsetArgs),
    /// Re-encrypt with additional recipient
    AddRecipient(AddRecipientArgs),
    /// List GPG key IDs that can decrypt
    Recipients(FileArgs),
    /// Import GPG key from file, directory, or Secret Service
    ImportKey(ImportKeyArgs),
    /// Export GPG key to directory and/or KeePassXC
    ExportKey(ExportKeyArgs),
    /// Configure gpg-agent, import/generate key, store passphrase
    Setup(SetupArgs),
    /// Health check: GPG agent, keys, Secret Service, .secrets
    Doctor(FileArgs),
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// Path to encrypted file
    #[arg(short, long, default_value = ".secrets")]
    file: PathBuf,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    #[command(flatten)]
    f: FileArgs,
    /// GPG key ID, for a new file (repeatable; default: your own key)
    #[arg(short, long = "recipient", value_name = "KEY_ID")]
    recipient: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// GPG key ID (repeatable)
    #[arg(short, long = "recipient", value_name = "KEY_ID", required = true)]
    recipient: Vec<String>,
    /// Input file
    #[arg(short, long, default_value = ".env")]
    input: PathBuf,
    /// Output file
    #[arg(short, long, default_value = ".secrets")]
    output: PathBuf,
}

#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// Input file
    #[arg(short, long, default_value = ".secrets")]
    input: PathBuf,
    /// Output file (default: stdout)
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Variable name
    key: String,
    /// The value; better left out (it shows up in shell history and ps): then read from stdin
    value: Option<String>,
    #[command(flatten)]
    f: FileArgs,
    /// GPG key ID, for a new file (repeatable; default: your own key)
    #[arg(short, long = "recipient", value_name = "KEY_ID")]
    recipient: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UnsetArgs {
    /// Variable name
    key: String,
    #[command(flatten)]
    f: FileArgs,
}

#[derive(Debug, Args)]
pub struct AddRecipientArgs {
    /// The GPG key ID to add
    key_id: String,
    #[command(flatten)]
    f: FileArgs,
}

#[derive(Debug, Args)]
pub struct PassphraseArgs {
    /// The key's passphrase (ov hides it from ps once started; prefer --passphrase-file)
    #[arg(long, value_name = "VALUE")]
    passphrase: Option<String>,
    /// Read the passphrase from the first line of FILE (`-` for stdin)
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase")]
    passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportKeyArgs {
    /// A key file, or a directory with .asc/.gpg files and ownertrust.txt
    #[arg(required_unless_present = "from_keystore")]
    path: Option<PathBuf>,
    /// Import the keys stored as org.gnupg.Key in the Secret Service
    #[arg(long, conflicts_with = "path")]
    from_keystore: bool,
    /// Only this key (with --from-keystore)
    #[arg(long, value_name = "ID")]
    key_id: Option<String>,
    #[command(flatten)]
    pass: PassphraseArgs,
}

#[derive(Debug, Args)]
pub struct ExportKeyArgs {
    /// Directory for public.asc, secret.asc and ownertrust.txt
    #[arg(required_unless_present = "to_keystore")]
    path: Option<PathBuf>,
    /// Store the armored secret key in the Secret Service (org.gnupg.Key)
    #[arg(long)]
    to_keystore: bool,
    /// The key to export (default: the first secret key)
    #[arg(long, value_name = "ID")]
    key_id: Option<String>,
    #[command(flatten)]
    pass: PassphraseArgs,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Import key from file/directory before setup
    #[arg(long, value_name = "PATH")]
    import: Option<PathBuf>,
    /// Import key from the Secret Service before setup
    #[arg(long, conflicts_with = "import")]
    from_keystore: bool,
    /// Use specific existing key
    #[arg(long, value_name = "ID")]
    key_id: Option<String>,
    /// Skip passphrase storage in Secret Service
    #[arg(long)]
    skip_secret_service: bool,
    /// User ID for a generated key (default: $USER <$USER@hostname>)
    #[arg(long, value_name = "UID")]
    uid: Option<String>,
    #[command(flatten)]
    pass: PassphraseArgs,
}

pub fn run(cmd: GpgCommand) -> Result<i32> {
    if let GpgCommand::Doctor(a) = &cmd {
        return doctor(&a.file);
    }
    if let GpgCommand::Env(a) = &cmd
        && !a.file.exists()
    {
        // direnv: no .secrets, no variables, no error.
        return Ok(0);
    }
    let gpg = Gpg::find()?;
    match cmd {
        GpgCommand::Show(a) => show(&gpg, &a.file),
        GpgCommand::Env(a) => env(&gpg, &a.file),
        GpgCommand::Edit(a) => edit(&gpg, &a),
        GpgCommand::Encrypt(a) => encrypt(&gpg, &a),
        GpgCommand::Decrypt(a) => decrypt(&gpg, &a),
        GpgCommand::Set(a) => set(&gpg, a),
        GpgCommand::Unset(a) => unset(&gpg, &a),
        GpgCommand::AddRecipient(a) => add_recipient(&gpg, &a),
        GpgCommand::Recipients(a) => recipients(&gpg, &a.file),
        GpgCommand::ImportKey(a) => import_key(&gpg, &a),
        GpgCommand::ExportKey(a) => export_key(&gpg, &a),
        GpgCommand::Setup(a) => setup(&gpg, &a),
        GpgCommand::Doctor(_) => Ok(0),
    }
}

fn missing(file: &Path) -> OvError {
    OvError::new(format!("{} does not exist", file.display())).hint(format!(
        "ov secrets gpg encrypt -r <KEY_ID> -i .env -o {}",
        file.display()
    ))
}

fn decrypted(gpg: &Gpg, file: &Path) -> Result<Zeroizing<Vec<u8>>> {
    if !file.exists() {
        return Err(missing(file));
    }
    Ok(gpg.decrypt(file)?)
}

/// Decrypt and parse; parse errors name their lines.
fn load(gpg: &Gpg, file: &Path) -> Result<Vec<(String, Secret)>> {
    let plain = decrypted(gpg, file)?;
    parse(&plain, file)
}

fn parse(plain: &[u8], file: &Path) -> Result<Vec<(String, Secret)>> {
    let text = std::str::from_utf8(plain).map_err(|_| {
        OvError::new(format!("{} does not decrypt to UTF-8 text", file.display()))
            .hint(format!("ov secrets gpg edit -f {}", file.display()))
    })?;
    match dotenv::parse(text) {
        Ok(p) => {
            for w in &p.warnings {
                warn(&format!("{}: {w}", file.display()));
            }
            Ok(p.entries.into_iter().map(|e| (e.key, e.value)).collect())
        }
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            Err(OvError::new(format!(
                "{} is not a valid env file: {}",
                file.display(),
                lines.join("; ")
            ))
            .hint(format!("ov secrets gpg edit -f {}", file.display())))
        }
    }
}

fn show(gpg: &Gpg, file: &Path) -> Result<i32> {
    let plain = decrypted(gpg, file)?;
    crate::cli::out_bytes(&plain)?;
    Ok(0)
}

fn env(gpg: &Gpg, file: &Path) -> Result<i32> {
    let entries = load(gpg, file)?;
    let mut out = String::new();
    for (k, v) in &entries {
        out.push_str(&dotenv::export_line(k, v));
        out.push('\n');
    }
    let out = Zeroizing::new(out);
    crate::cli::out_bytes(out.as_bytes())?;
    Ok(0)
}

/// Refuse to replace a file its owner made read-only (root included: the
/// rename would succeed, but the mode says "do not change this").
fn check_writable(file: &Path) -> Result<()> {
    if let Ok(meta) = std::fs::metadata(file)
        && meta.permissions().readonly()
    {
        return Err(OvError::new(format!(
            "{} is read-only; nothing was changed",
            file.display()
        ))
        .hint(format!("chmod u+w {}", file.display())));
    }
    Ok(())
}

/// Encrypt `entries` to `recipients` and replace `file` atomically.
fn write_secrets(gpg: &Gpg, file: &Path, plaintext: &[u8], recipients: &[String]) -> Result<()> {
    check_writable(file)?;
    let cipher = gpg.encrypt(plaintext, recipients)?;
    with_lock(file, || -> Result<()> {
        write_atomic(file, &cipher, None)
            .map_err(|e| OvError::new(format!("cannot write {}: {e}", file.display())))
    })
}

/// The recipients of an existing file, or the ones given, or the user's
/// own first secret key.
fn recipients_for(gpg: &Gpg, file: &Path, given: &[String]) -> Result<Vec<String>> {
    if file.exists() {
        return Ok(gpg.recipients(file)?);
    }
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let key = gpg.pick_key(None).map_err(|e| {
        OvError::from(e).hint(format!(
            "ov secrets gpg set KEY VALUE -f {} -r <KEY_ID>",
            file.display()
        ))
    })?;
    Ok(vec![key.fingerprint])
}

/// `FILE.rejected`, or `FILE.rejected.N` for the first N not taken.
fn rejected_path(file: &Path) -> std::path::PathBuf {
    let base = format!("{}.rejected", file.display());
    std::iter::once(base.clone())
        .chain((1..).map(|n| format!("{base}.{n}")))
        .map(std::path::PathBuf::from)
        .find(|p| !p.exists())
        .unwrap_or_else(|| base.into())
}

/// Run the user's editor on `tmp`; an editor that fails leaves `file` alone.
fn run_editor(editor: &str, tmp: &Path, file: &Path) -> Result<()> {
    // Ctrl-C in the editor must not kill ov before it removes the
    // plaintext: ignore SIGINT and SIGQUIT while the editor runs (as git does).
    let status = {
        let _signals = IgnoreSignals::new();
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(tmp)
            .spawn()
            .map_err(|e| OvError::new(format!("cannot run the editor {editor}: {e}")))?;
        EDITOR_PID.store(
            i32::try_from(child.id()).unwrap_or(0),
            std::sync::atomic::Ordering::SeqCst,
        );
        // A signal that came before the pid was known goes to it now.
        let early = CAUGHT.load(std::sync::atomic::Ordering::SeqCst);
        if early != 0 {
            let _ = child.kill();
        }
        let status = loop {
            match child.wait() {
                Ok(s) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(OvError::new(format!("waiting for the editor: {e}"))),
            }
        };
        EDITOR_PID.store(0, std::sync::atomic::Ordering::SeqCst);
        status
    };
    if status.success() {
        return Ok(());
    }
    Err(OvError::new(format!(
        "the editor {editor} failed ({status}); {} is unchanged",
        file.display()
    ))
    .hint(format!(
        "EDITOR=nano ov secrets gpg edit -f {}",
        file.display()
    )))
}

/// The editor's pid while it runs, for the signal handler.
static EDITOR_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
/// The first terminating signal caught while `edit` holds plaintext.
static CAUGHT: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn caught(sig: nix::libc::c_int) {
    use std::sync::atomic::Ordering;
    let _ = CAUGHT.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    let pid = EDITOR_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe {
            nix::libc::kill(pid, sig);
        }
    }
}

/// While `edit` has plaintext on disk: SIGTERM, SIGHUP, SIGINT and SIGQUIT
/// do not kill ov at once; they end the editor, and ov removes the
/// plaintext, then dies of the same signal ([`PlaintextGuard::check`]).
struct PlaintextGuard(Vec<(Signal, SigAction)>);

impl PlaintextGuard {
    fn install() -> Self {
        CAUGHT.store(0, std::sync::atomic::Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::Handler(caught),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let mut saved = Vec::new();
        for sig in [
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGINT,
            Signal::SIGQUIT,
        ] {
            // SAFETY: the handler only touches atomics and calls kill.
            if let Ok(old) = unsafe { sigaction(sig, &action) } {
                saved.push((sig, old));
            }
        }
        PlaintextGuard(saved)
    }

    /// If a signal came: remove `dir` (the plaintext) and die of it.
    fn check(&self, dir: &mut Option<tempfile::TempDir>) {
        let sig = CAUGHT.load(std::sync::atomic::Ordering::SeqCst);
        if sig == 0 {
            return;
        }
        if let Some(d) = dir.take() {
            let _ = d.close();
        }
        if let Ok(s) = Signal::try_from(sig) {
            let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
            // SAFETY: restores the default action, then raises it.
            let _ = unsafe { sigaction(s, &dfl) };
            let _ = nix::sys::signal::raise(s);
        }
        std::process::exit(128 + sig);
    }
}

impl Drop for PlaintextGuard {
    fn drop(&mut self) {
        for (sig, old) in &self.0 {
            // SAFETY: restores the disposition saved in `install`.
            let _ = unsafe { sigaction(*sig, old) };
        }
    }
}

fn edit(gpg: &Gpg, a: &EditArgs) -> Result<i32> {
    let file = &a.f.file;
    check_writable(file)?;
    let (plain, recipients) = if file.exists() {
        let r = gpg.recipients(file)?;
        (decrypted(gpg, file)?, r)
    } else {
        (
            Zeroizing::new(Vec::new()),
            recipients_for(gpg, file, &a.recipient)?,
        )
    };
    // The plaintext lives in a 0700 directory on a memory filesystem
    // (never /tmp on disk), removed when `dir` drops on every path out,
    // and by `guard` when a signal comes.
    let guard = PlaintextGuard::install();
    let mut dir = Some(ov_gpg::private_dir()?);
    let tmp = dir
        .as_ref()
        .map(|d| d.path().join("secrets.env"))
        .unwrap_or_default();
    write_atomic(&tmp, &plain, Some(0o600))?;
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "vi".to_owned());
    let edited = loop {
        guard.check(&mut dir);
        let ran = run_editor(&editor, &tmp, file);
        guard.check(&mut dir);
        ran?;
        let edited = Zeroizing::new(std::fs::read(&tmp)?);
        if edited.as_slice() == plain.as_slice() {
            eprintln!("no changes; {} is unchanged", file.display());
            return Ok(0);
        }
        let Err(mut e) = parse(&edited, file) else {
            break edited;
        };
        // The edits are the user's work: never drop them. Offer the
        // editor again on a terminal; otherwise keep them, encrypted.
        if crate::prompt::stdin_is_tty() {
            eprintln!("ov: error: {}", e.message);
            if crate::prompt::ask_yes_no("Edit again?")? {
                continue;
            }
        }
        let kept = rejected_path(file);
        write_secrets(gpg, &kept, &edited, &recipients)?;
        e.message.push_str(&format!(
            "; {} is unchanged, and your edits are kept, encrypted, in {}",
            file.display(),
            kept.display()
        ));
        return Err(e.hint(format!(
            "ov secrets gpg edit -f {k} && mv {k} {f}   # fix them, then put them in place",
            k = shell_quote(&kept),
            f = shell_quote(file)
        )));
    };
    // The plaintext is in memory now; off the filesystem before encrypting.
    drop(dir.take());
    guard.check(&mut dir);
    write_secrets(gpg, file, &edited, &recipients)?;
    eprintln!(
        "{} re-encrypted to {}",
        file.display(),
        recipients.join(", ")
    );
    Ok(0)
}

/// SIGINT and SIGQUIT ignored until drop. The editor inherits them ignored,
/// as with git's editor launch; terminal editors handle those keys themselves.
struct IgnoreSignals(Vec<(Signal, SigAction)>);

impl IgnoreSignals {
    fn new() -> Self {
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        let mut saved = Vec::new();
        for sig in [Signal::SIGINT, Signal::SIGQUIT] {
            // SAFETY: ignoring a signal installs no handler code.
            if let Ok(old) = unsafe { sigaction(sig, &ignore) } {
                saved.push((sig, old));
            }
        }
        IgnoreSignals(saved)
    }
}

impl Drop for IgnoreSignals {
    fn drop(&mut self) {
        for (sig, old) in &self.0 {
            // SAFETY: restores the disposition saved in `new`.
            let _ = unsafe { sigaction(*sig, old) };
        }
    }
}

fn encrypt(gpg: &Gpg, a: &EncryptArgs) -> Result<i32> {
    let plain = Zeroizing::new(
        std::fs::read(&a.input)
            .map_err(|e| OvError::new(format!("cannot read {}: {e}", a.input.display())))?,
    );
    // The plaintext file is the user's own to fix, in their editor: the
    // `gpg edit` hint of an encrypted file does not apply to it.
    parse(&plain, &a.input).map_err(|mut e| {
        e.hints = vec![ov_plugin_support::edit_command(&a.input)];
        e
    })?;
    write_secrets(gpg, &a.output, &plain, &a.recipient)?;
    eprintln!(
        "encrypted {} to {} for {}",
        a.input.display(),
        a.output.display(),
        a.recipient.join(", ")
    );
    Ok(0)
}

fn decrypt(gpg: &Gpg, a: &DecryptArgs) -> Result<i32> {
    let plain = decrypted(gpg, &a.input)?;
    match &a.output {
        Some(out) => {
            write_atomic(out, &plain, Some(0o600))
                .map_err(|e| OvError::new(format!("cannot write {}: {e}", out.display())))?;
            eprintln!("decrypted {} to {}", a.input.display(), out.display());
        }
        None => std::io::stdout().write_all(&plain)?,
    }
    Ok(0)
}

fn set(gpg: &Gpg, a: SetArgs) -> Result<i32> {
    let file = &a.f.file;
    if !dotenv::valid_name(&a.key) {
        return Err(OvError::usage(format!(
            "{:?} is not a valid variable name (letters, digits and _, not starting with a digit)",
            a.key
        )));
    }
    check_writable(file)?;
    let from_argv = a.value.is_some();
    let value = match a.value {
        Some(v) => {
            crate::cmdline::hide(&v);
            Secret::new(v)
        }
        None => {
            if prompt::stdin_is_tty() {
                prompt::ask_hidden(&format!("{}: ", a.key))?
            } else {
                prompt::read_stdin_value()?
            }
        }
    };
    let recipients = recipients_for(gpg, file, &a.recipient)?;
    let mut doc = if file.exists() {
        document(gpg, file)?
    } else {
        dotenv::Document::default()
    };
    doc.set(&a.key, value.expose())
        .map_err(|why| unwritable(&a.key, file, why))?;
    let text = Zeroizing::new(doc.render());
    write_secrets(gpg, file, text.as_bytes(), &recipients)?;
    if from_argv {
        warn(
            "a value given on the command line was visible in ps until ov hid it, and stays in your shell history; leave it out to be prompted",
        );
    }
    eprintln!("set {} in {}", a.key, file.display());
    Ok(0)
}

/// A value no quoting writes so that every reader gets it back.
fn unwritable(key: &str, file: &Path, why: dotenv::Unwritable) -> OvError {
    let shown = file.display();
    let e = OvError::new(format!(
        "the value of {key} cannot be written to {shown} so that sh, bash, dash and direnv all read it back unchanged: {why}; {shown} is unchanged"
    ));
    let f = shell_quote(file);
    match why {
        dotenv::Unwritable::LineBreak => e
            .hint(format!(
                "base64 -w0 < FILE | ov secrets gpg set {key} -f {f}   # store it encoded, decode where it is used"
            ))
            .hint(format!(
                "ov secrets gpg edit -f {f}   # or write that line by hand, quoted for the readers you use"
            )),
        _ => e.hint(format!(
            "ov secrets gpg edit -f {f}   # write that line by hand, quoted for the readers you use"
        )),
    }
}

/// Decrypt `file` as a line-keeping document.
fn document(gpg: &Gpg, file: &Path) -> Result<dotenv::Document> {
    let plain = decrypted(gpg, file)?;
    parse(&plain, file)?;
    let text = std::str::from_utf8(&plain).unwrap_or_default();
    dotenv::Document::parse(text)
        .map_err(|_| OvError::new(format!("{} is not a valid env file", file.display())))
}

fn unset(gpg: &Gpg, a: &UnsetArgs) -> Result<i32> {
    let file = &a.f.file;
    check_writable(file)?;
    let recipients = recipients_for(gpg, file, &[])?;
    let mut doc = document(gpg, file)?;
    if !doc.unset(&a.key) {
        return Err(OvError::new(format!(
            "{} has no {}; nothing was changed",
            file.display(),
            a.key
        ))
        .hint(format!("ov secrets gpg show -f {}", file.display())));
    }
    let text = Zeroizing::new(doc.render());
    write_secrets(gpg, file, text.as_bytes(), &recipients)?;
    eprintln!("removed {} from {}", a.key, file.display());
    Ok(0)
}

fn add_recipient(gpg: &Gpg, a: &AddRecipientArgs) -> Result<i32> {
    let file = &a.f.file;
    check_writable(file)?;
    if !file.exists() {
        return Err(missing(file));
    }
    gpg.public_key(&a.key_id)?;
    let mut recipients = gpg.recipients(file)?;
    let plain = decrypted(gpg, file)?;
    recipients.push(a.key_id.clone());
    write_secrets(gpg, file, &plain, &recipients)?;
    eprintln!(
        "{} re-encrypted to {}",
        file.display(),
        recipients.join(", ")
    );
    Ok(0)
}

fn recipients(gpg: &Gpg, file: &Path) -> Result<i32> {
    if !file.exists() {
        return Err(missing(file));
    }
    // A file names the encryption subkey it was encrypted to; people name
    // the primary key (`-r`, `add-recipient`), so that comes first.
    for id in gpg.recipients(file)? {
        match gpg.public_key(&id) {
            Ok((fpr, uid)) => {
                let primary = &fpr[fpr.len().saturating_sub(id.len())..];
                if primary.eq_ignore_ascii_case(&id) {
                    outln!("{primary}  {uid}");
                } else {
                    outln!("{primary}  {uid}  (encryption subkey {id})");
                }
            }
            Err(_) => outln!("{id}  (no public key here)"),
        }
    }
    Ok(0)
}

/// `--passphrase` / `--passphrase-file`; the flag warns that argv is public.
fn passphrase(p: &PassphraseArgs) -> Result<Option<Secret>> {
    if let Some(v) = &p.passphrase {
        crate::cmdline::hide(v);
        warn(
            "--passphrase was visible to every user in ps until ov hid it, and stays in your shell history; prefer --passphrase-file FILE or --passphrase-file - (stdin)",
        );
        return Ok(Some(Secret::new(v.clone())));
    }
    match &p.passphrase_file {
        None => Ok(None),
        Some(f) if f.as_os_str() == "-" => Ok(Some(prompt::read_stdin_value()?)),
        Some(f) => {
            let text = Zeroizing::new(
                std::fs::read_to_string(f)
                    .map_err(|e| OvError::new(format!("cannot read {}: {e}", f.display())))?,
            );
            let line = text.lines().next().unwrap_or("").to_owned();
            Ok(Some(Secret::new(line)))
        }
    }
}

fn import_path(gpg: &Gpg, path: &Path, pass: Option<&Secret>) -> Result<usize> {
    let pass = pass.map(|p| p.expose().as_bytes());
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "asc" || e == "gpg"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(
                OvError::new(format!("{} holds no .asc or .gpg key file", path.display()))
                    .hint("ov secrets gpg export-key <DIR>   # on the machine that has the key"),
            );
        }
        for f in &files {
            gpg.import(f, pass)?;
            eprintln!("imported {}", f.display());
        }
        let trust = path.join("ownertrust.txt");
        if trust.is_file() {
            gpg.import_ownertrust(&trust)?;
            eprintln!("imported owner trust from {}", trust.display());
        }
        Ok(files.len())
    } else if path.is_file() {
        gpg.import(path, pass)?;
        eprintln!("imported {}", path.display());
        Ok(1)
    } else {
        Err(OvError::new(format!("{} does not exist", path.display())))
    }
}

fn import_keystore(gpg: &Gpg, key_id: Option<&str>, pass: Option<&Secret>) -> Result<usize> {
    let found = Keystore::new().keys(key_id, true)?;
    if found.is_empty() {
        return Err(OvError::new(format!(
            "no org.gnupg.Key{} in the Secret Service",
            key_id.map(|k| format!(" for {k}")).unwrap_or_default()
        ))
        .hint(format!(
            "{}   # on the machine that has the key",
            fix::BACKUP
        )));
    }
    let dir = ov_gpg::private_dir()?;
    for (id, uid, armored) in &found {
        let f = dir.path().join("key.asc");
        write_atomic(&f, armored, Some(0o600))?;
        gpg.import(&f, pass.map(|p| p.expose().as_bytes()))?;
        std::fs::remove_file(&f)?;
        eprintln!("imported {id} {uid} from the Secret Service");
    }
    Ok(found.len())
}

fn import_key(gpg: &Gpg, a: &ImportKeyArgs) -> Result<i32> {
    let pass = passphrase(&a.pass)?;
    if a.from_keystore {
        import_keystore(gpg, a.key_id.as_deref(), pass.as_ref())?;
    } else if let Some(p) = &a.path {
        import_path(gpg, p, pass.as_ref())?;
    }
    Ok(0)
}

fn export_key(gpg: &Gpg, a: &ExportKeyArgs) -> Result<i32> {
    let pass = passphrase(&a.pass)?;
    let key = gpg.pick_key(a.key_id.as_deref())?;
    let pbytes = pass.as_ref().map(|p| p.expose().as_bytes());
    let secret = gpg.export_secret(&key.fingerprint, pbytes)?;
    if let Some(dir) = &a.path {
        ov_plugin_support::create_dir_all_mode(dir, 0o700)?;
        write_atomic(
            &dir.join("public.asc"),
            &gpg.export_public(&key.fingerprint)?,
            Some(0o600),
        )?;
        write_atomic(&dir.join("secret.asc"), &secret, Some(0o600))?;
        write_atomic(
            &dir.join("ownertrust.txt"),
            &gpg.export_ownertrust()?,
            Some(0o600),
        )?;
        eprintln!(
            "exported {} to {} (public.asc, secret.asc, ownertrust.txt)",
            key.keyid,
            dir.display()
        );
    }
    if a.to_keystore {
        let ks = Keystore::new();
        ks.store_key(&key.keyid, &key.uid, &secret)?;
        eprintln!("stored {} in the Secret Service (org.gnupg.Key)", key.keyid);
        if let Some(p) = &pass {
            gpg.check_passphrase(&key.fingerprint, p.expose().as_bytes())?;
            for g in key.grips() {
                ks.store_passphrase(g, p.expose().as_bytes())?;
            }
            eprintln!("stored the passphrase for every keygrip (org.gnupg.Passphrase)");
        }
    }
    Ok(0)
}

fn default_uid() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| ov_plugin_support::user_name(nix::unistd::Uid::effective().as_raw()));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{user} <{user}@{host}>")
}

fn setup(gpg: &Gpg, a: &SetupArgs) -> Result<i32> {
    let step = |s: &str| eprintln!("==> {s}");
    step("tools");
    if gpg.connect_agent.is_none() || gpg.gpgconf.is_none() {
        return Err(OvError::new("gpg-connect-agent or gpgconf is missing").hint(fix::INSTALL));
    }
    let pinentry = agent::best_pinentry().ok_or_else(|| {
        OvError::new("no pinentry program is installed")
            .hint("sudo apt-get install pinentry-qt   # or pinentry-gnome3, pinentry-tty")
    })?;
    eprintln!(
        "  gpg {}, pinentry {}",
        gpg.gpg.display(),
        pinentry.display()
    );
    if which::which("secret-tool").is_err() {
        eprintln!("  secret-tool not found (optional; sudo apt-get install libsecret-tools)");
    }

    step("gpg-agent.conf");
    let home = agent::gnupg_home();
    ov_plugin_support::create_dir_all_mode(&home, 0o700)?;
    let conf = agent::conf_path();
    let old = std::fs::read_to_string(&conf).unwrap_or_default();
    match agent::merge_conf(&old, &pinentry) {
        None => eprintln!("  {} already set up", conf.display()),
        Some((text, changes)) => {
            if conf.exists() {
                let backup = conf.with_extension("conf.bak");
                std::fs::copy(&conf, &backup)?;
                eprintln!("  backed up the old file to {}", backup.display());
            }
            write_atomic(&conf, text.as_bytes(), Some(0o600))?;
            for c in changes {
                eprintln!("  {c}");
            }
        }
    }
    gpg.reload_agent()?;
    eprintln!("  gpg-agent reloaded");

    step("systemd sockets");
    if agent::user_manager_runs() {
        match agent::enable_sockets() {
            Ok(()) => eprintln!("  enabled {}", agent::SOCKETS.join(", ")),
            Err(e) => warn(&e.message),
        }
    } else {
        eprintln!("  skipped: no systemd user manager runs in this session");
    }

    step("key");
    let pass = passphrase(&a.pass)?;
    if let Some(p) = &a.import {
        import_path(gpg, p, pass.as_ref())?;
    }
    if a.from_keystore {
        import_keystore(gpg, a.key_id.as_deref(), pass.as_ref())?;
    }
    let have = gpg.secret_keys()?;
    let (key, pass): (SecretKey, Option<Secret>) = if let Some(id) = &a.key_id {
        (gpg.pick_key(Some(id))?, pass)
    } else if let Some(k) = have.into_iter().next() {
        (k, pass)
    } else {
        let pass = match pass {
            Some(p) => p,
            None if prompt::stdin_is_tty() => {
                prompt::ask_hidden_twice("Passphrase for the new GPG key: ")?
            }
            None => {
                return Err(OvError::new(
                    "no secret key to use, and no passphrase to generate one with (no terminal)",
                )
                .hint("ov secrets gpg setup --passphrase-file <FILE>")
                .hint("ov secrets gpg setup --import <path>"));
            }
        };
        let uid = a.uid.clone().unwrap_or_else(default_uid);
        let k = gpg.generate(&uid, pass.expose().as_bytes())?;
        eprintln!("  generated {} {}", k.keyid, k.uid);
        (k, Some(pass))
    };
    eprintln!("  using {} {}", key.keyid, key.uid);

    step("passphrase");
    let pass = match pass {
        Some(p) => Some(p),
        None if prompt::stdin_is_tty() => Some(prompt::ask_hidden(&format!(
            "Passphrase of {} (to cache and store it): ",
            key.keyid
        ))?),
        None => None,
    };
    match pass {
        None => {
            warn(
                "no passphrase given and no terminal: the passphrase is neither cached nor stored",
            );
            eprintln!("hint: ov secrets gpg setup --passphrase-file <FILE>");
        }
        Some(p) => {
            gpg.check_passphrase(&key.fingerprint, p.expose().as_bytes())
                .map_err(|e| OvError::from(e).hint("ov secrets gpg setup   # and type it again"))?;
            for g in key.grips() {
                gpg.preset(g, p.expose().as_bytes())?;
            }
            eprintln!("  cached in gpg-agent for every keygrip");
            if a.skip_secret_service {
                eprintln!("  Secret Service skipped (--skip-secret-service)");
            } else {
                let ks = Keystore::new();
                let stored = key
                    .grips()
                    .try_for_each(|g| ks.store_passphrase(g, p.expose().as_bytes()));
                match stored {
                    Ok(()) => eprintln!(
                        "  stored in the Secret Service as org.gnupg.Passphrase for {}",
                        key.grips().collect::<Vec<_>>().join(", ")
                    ),
                    // No session bus at all (a server, ssh): the rest of the
                    // set-up stands; only this step cannot be done here.
                    Err(e) if e.no_session_bus() => {
                        warn(&format!(
                            "the Secret Service step was skipped: {}; the passphrase is cached in gpg-agent only",
                            e.message
                        ));
                        eprintln!(
                            "hint: ov secrets gpg setup --skip-secret-service …   # on machines without a desktop keyring"
                        );
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    eprintln!(
        "done. Next: ov secrets gpg encrypt -r {} -i .env -o .secrets",
        key.keyid
    );
    Ok(0)
}

fn doctor(file: &Path) -> Result<i32> {
    let tasks = ov_gpg::checks::tasks(file.to_path_buf());
    let results = ov_checks::run(tasks, Duration::from_millis(10_000));
    crate::cli::print_report(&results)?;
    Ok(if Summary::of(&results).passed() {
        0
    } else {
        EXIT_ERROR
    })
}
