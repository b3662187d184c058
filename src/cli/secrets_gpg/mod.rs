//! `ov secrets gpg …` — GnuPG-encrypted `.secrets` files for direnv, key
//! import and export, the one-stop agent setup, and its doctor. One module
//! per subcommand; this one holds the command enum and what several of them
//! share (reading, parsing and writing the encrypted file, the passphrase
//! options).

mod add_recipient;
mod decrypt;
mod doctor;
mod edit;
mod encrypt;
mod env;
mod export_key;
mod import_key;
mod recipients;
mod set;
mod setup;
mod show;
mod unset;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use ov_gpg::Gpg;
use ov_plugin_api::Secret;
use ov_plugin_support::{with_lock, write_atomic};
use zeroize::Zeroizing;

use crate::cli::warn;
use crate::dotenv;
use crate::error::{OvError, Result};
use crate::prompt;

use add_recipient::AddRecipientArgs;
use decrypt::DecryptArgs;
use edit::EditArgs;
use encrypt::EncryptArgs;
use export_key::ExportKeyArgs;
use import_key::ImportKeyArgs;
use set::SetArgs;
use setup::SetupArgs;
use unset::UnsetArgs;

#[derive(Debug, Subcommand)]
#[command(defer = true)]
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
    Recipients(JsonFileArgs),
    /// Import GPG key from file, directory, or Secret Service
    ImportKey(ImportKeyArgs),
    /// Export GPG key to directory and/or KeePassXC
    ExportKey(ExportKeyArgs),
    /// Configure gpg-agent, import/generate key, store passphrase
    Setup(SetupArgs),
    /// Health check: GPG agent, keys, Secret Service, .secrets
    Doctor(JsonFileArgs),
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// Path to encrypted file
    #[arg(short, long, default_value = ".secrets")]
    file: PathBuf,
}

#[derive(Debug, Args)]
pub struct JsonFileArgs {
    /// Path to encrypted file
    #[arg(short, long, default_value = ".secrets")]
    file: PathBuf,
    /// Print JSON for scripts
    #[arg(long)]
    json: bool,
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

pub fn run(cmd: GpgCommand) -> Result<i32> {
    if let GpgCommand::Doctor(a) = &cmd {
        return doctor::doctor(&a.file, a.json);
    }
    if let GpgCommand::Env(a) = &cmd
        && !a.file.exists()
    {
        // direnv: no .secrets, no variables, no error.
        return Ok(0);
    }
    let gpg = Gpg::find()?;
    match cmd {
        GpgCommand::Show(a) => show::show(&gpg, &a.file),
        GpgCommand::Env(a) => env::env(&gpg, &a.file),
        GpgCommand::Edit(a) => edit::edit(&gpg, &a),
        GpgCommand::Encrypt(a) => encrypt::encrypt(&gpg, &a),
        GpgCommand::Decrypt(a) => decrypt::decrypt(&gpg, &a),
        GpgCommand::Set(a) => set::set(&gpg, a),
        GpgCommand::Unset(a) => unset::unset(&gpg, &a),
        GpgCommand::AddRecipient(a) => add_recipient::add_recipient(&gpg, &a),
        GpgCommand::Recipients(a) => recipients::recipients(&gpg, &a.file, a.json),
        GpgCommand::ImportKey(a) => import_key::import_key(&gpg, &a),
        GpgCommand::ExportKey(a) => export_key::export_key(&gpg, &a),
        GpgCommand::Setup(a) => setup::setup(&gpg, &a),
        GpgCommand::Doctor(_) => Ok(0),
    }
}

fn missing(gpg: &Gpg, file: &Path) -> OvError {
    OvError::new(format!("{} does not exist", file.display())).hint(gpg.to_own_key(|id| {
        format!(
            "ov secrets gpg encrypt -r {id} -i .env -o {}",
            file.display()
        )
    }))
}

fn decrypted(gpg: &Gpg, file: &Path) -> Result<Zeroizing<Vec<u8>>> {
    if !file.exists() {
        return Err(missing(gpg, file));
    }
    gpg.decrypt(file)
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
        return gpg.recipients(file);
    }
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let key = gpg.pick_key(None)?;
    Ok(vec![key.fingerprint])
}

/// Decrypt `file` as a line-keeping document.
fn document(gpg: &Gpg, file: &Path) -> Result<dotenv::Document> {
    let plain = decrypted(gpg, file)?;
    parse(&plain, file)?;
    let text = std::str::from_utf8(&plain).unwrap_or_default();
    dotenv::Document::parse(text)
        .map_err(|_| OvError::new(format!("{} is not a valid env file", file.display())))
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
