//! `ov secrets gpg edit`: decrypt into `$EDITOR`, re-encrypt, and keep the
//! plaintext off disk and out of reach of signals.

use std::path::Path;

use clap::Args;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use ov_gpg::Gpg;
use ov_plugin_support::{shell_quote, write_atomic};
use zeroize::Zeroizing;

use super::{FileArgs, check_writable, decrypted, parse, recipients_for, write_secrets};
use crate::error::{OvError, Result};

#[derive(Debug, Args)]
pub struct EditArgs {
    #[command(flatten)]
    f: FileArgs,
    /// GPG key ID, for a new file (repeatable; default: your own key)
    #[arg(short, long = "recipient", value_name = "KEY_ID")]
    recipient: Vec<String>,
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

pub(super) fn edit(gpg: &Gpg, a: &EditArgs) -> Result<i32> {
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
        let Err(e) = parse(&edited, file) else {
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
        let e = e.context(format!(
            "{} is unchanged, and your edits are kept, encrypted, in {}",
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
