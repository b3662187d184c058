//! `ov secrets …` — the store commands, one module each. This one holds
//! the command tree, the flags several share, and what their output has in
//! common (a value, a miss, a write).

mod delete;
mod ensure;
mod export;
mod forget;
mod get;
mod import_env;
mod import_store;
mod init;
mod list;
mod path;
pub(crate) mod set;
mod which;

use clap::{Args, Subcommand};
use ov_plugin_api::{EntryRef, Secret};
use zeroize::Zeroizing;

use crate::cli::{Engine, warn};
use crate::env_backend::variable_name;
use crate::error::{OvError, Result};
use crate::store::{Miss, Written, validate_entry};

use delete::DeleteArgs;
use export::ExportArgs;
use forget::ForgetArgs;
use get::GetArgs;
use init::InitArgs;
use list::ListArgs;
use path::PathArgs;
use set::SetArgs;
use which::WhichArgs;

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum SecretsCommand {
    /// Create a KeePass database (default ~/.config/ov/secrets.kdbx) and record it in the settings
    Init(InitArgs),
    /// Ask for the KeePass password once and cache it in the kernel keyring
    Unlock,
    /// Forget the cached KeePass password
    Lock,
    /// List entries as service/key, optionally under one service
    List(ListArgs),
    /// Print a secret's value
    Get(GetArgs),
    /// Store a secret; without VALUE, prompt on a terminal or read all of stdin (less one final newline)
    Set(SetArgs),
    /// Remove a secret from every writable backend that holds it (or, with --from, from one)
    #[command(alias = "rm")]
    Delete(DeleteArgs),
    /// Print a secret, generating and storing a 64-hex-character token first if it is missing
    Ensure(EntryArgs),
    /// Say which source answers for a secret, without printing it
    Which(WhichArgs),
    /// Copy entries into the backend that receives writes: from the other backends, a .env file (--app) or a backup (--file)
    Import(ImportArgs),
    /// Print every entry as service -> key -> value (plaintext!)
    Export(ExportArgs),
    /// Print the KeePass database path (configured or default)
    Path(PathArgs),
    /// Forget which services a backend held, once it is gone for good
    /// (sealing, run --all and export refuse while it cannot be reached)
    Forget(ForgetArgs),
    /// GPG-encrypted .secrets files for direnv, keys and gpg-agent setup
    #[command(subcommand)]
    Gpg(crate::cli::secrets_gpg::GpgCommand),
}

#[derive(Debug, Args)]
pub struct EntryArgs {
    /// Service, e.g. ov/vnc or myapp/prod
    #[arg(add = crate::cli::complete::service())]
    service: String,
    /// Key within the service
    #[arg(add = crate::cli::complete::key())]
    key: String,
}

// `--app A --env E`: the secrets of an app, at service `A/E`. (A plain
// comment: with deferred subcommands, a doc comment here would become the
// about text of every command that flattens it.)
#[derive(Debug, Args)]
pub struct AppFlags {
    /// The app's secrets (service APP/ENV), by environment variable name
    #[arg(long, add = crate::cli::complete::app())]
    pub(crate) app: Option<String>,
    /// The app's environment
    #[arg(long, requires = "app", default_value = crate::machine_key::DEFAULT_ENV, add = crate::cli::complete::env())]
    pub(crate) env: String,
}

impl AppFlags {
    /// The service `app/env`, when `--app` was given.
    pub(crate) fn service(&self) -> Result<Option<String>> {
        let Some(app) = &self.app else {
            return Ok(None);
        };
        crate::machine_key::validate_app_env(app, &self.env)?;
        Ok(Some(crate::machine_key::service(app, &self.env)))
    }
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A .env file to import into an app's secrets (with --app and --env)
    #[arg(requires = "app", conflicts_with_all = ["from", "backup", "move_"])]
    pub(crate) file: Option<std::path::PathBuf>,
    /// Restore a backup `ov secrets export` wrote (YAML or JSON)
    #[arg(long = "file", value_name = "BACKUP", conflicts_with_all = ["from", "app", "move_"])]
    pub(crate) backup: Option<std::path::PathBuf>,
    /// Show what the import would do, entry by entry, and write nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Replace stored values that differ from the imported ones (each is listed)
    #[arg(long)]
    pub(crate) force: bool,
    /// Only import from this backend
    #[arg(long, value_name = "BACKEND", add = crate::cli::complete::backend())]
    pub(crate) from: Option<String>,
    /// Delete each entry from the backend it came from, once its copy reads back the same
    #[arg(long = "move")]
    pub(crate) move_: bool,
    #[command(flatten)]
    pub(crate) app: AppFlags,
}

pub fn run(cmd: SecretsCommand) -> Result<i32> {
    // Needs no store: skip loading the backend plugins (direnv runs it on every cd).
    let cmd = match cmd {
        SecretsCommand::Gpg(c) => return crate::cli::secrets_gpg::run(c),
        other => other,
    };
    let engine = Engine::load()?;
    match cmd {
        SecretsCommand::Init(a) => init::init(&engine, a),
        SecretsCommand::Unlock => init::unlock(&engine),
        SecretsCommand::Lock => init::lock(&engine),
        SecretsCommand::List(a) => list::list(&engine, a),
        SecretsCommand::Get(a) => get::get(&engine, &a),
        SecretsCommand::Set(a) => set::set(&engine, a),
        SecretsCommand::Delete(a) => delete::delete(&engine, &a),
        SecretsCommand::Ensure(a) => ensure::ensure(&engine, &a),
        SecretsCommand::Which(a) => which::which(&engine, &a),
        SecretsCommand::Import(a) if a.file.is_some() || a.app.app.is_some() => {
            import_env::run(&engine, &a)
        }
        SecretsCommand::Import(a) => match &a.backup {
            Some(file) => import_store::restore(&engine, &a, file),
            None => import_store::from_backends(&engine, &a),
        },
        SecretsCommand::Export(a) => export::export(&engine, &a),
        SecretsCommand::Path(a) => path::path(&engine, &a),
        SecretsCommand::Forget(a) => forget::forget(&engine, &a),
        SecretsCommand::Gpg(_) => unreachable!("dispatched above"),
    }
}

fn entry_of(a: &EntryArgs) -> Result<EntryRef> {
    validate_entry(&a.service, &a.key)
}

/// Print a value and a newline, and nothing else.
pub(crate) fn print_value(value: &Secret) -> Result<()> {
    let mut line = Zeroizing::new(String::with_capacity(value.len() + 1));
    line.push_str(value.expose());
    line.push('\n');
    print_raw(line.as_bytes())
}

/// Write `bytes` to stdout as they are.
fn print_raw(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| OvError::new(format!("cannot write the value to standard output: {e}")))
}

/// The error for a secret no backend holds, or none could be asked for:
/// a locked backend says what is locked and how to unlock it, and one
/// whose service is not up yet says it was not searched.
fn not_found(entry: &EntryRef, miss: &Miss) -> OvError {
    let mut msg = format!("no secret {} {}", entry.service, entry.key);
    let why = miss.reasons();
    if !why.is_empty() {
        msg.push_str(&format!(" ({})", why.join("; ")));
    }
    let mut e = OvError::new(msg);
    let mut hints: Vec<String> = Vec::new();
    for (_, waited) in &miss.waited {
        hints.extend(waited.hints.iter().cloned());
    }
    for (name, locked) in &miss.locked {
        hints.extend(locked.hints.iter().cloned());
        if miss.waitable.contains(name) {
            hints.push(format!(
                "ov secrets get {} {} --wait-unlock   # then unlock the {name}; ov reads it at once",
                entry.service, entry.key
            ));
        }
    }
    for (_, silent) in miss.unresponsive() {
        hints.extend(silent.hints.iter().cloned());
    }
    for (name, starting) in miss.starting() {
        hints.extend(starting.hints.iter().cloned());
        hints.push(format!(
            "ov secrets get {} {} --wait-unlock   # waits for the {name} to come up",
            entry.service, entry.key
        ));
    }
    hints.dedup();
    for h in hints {
        e = e.hint(h);
    }
    e.hint(format!("ov secrets set {} {}", entry.service, entry.key))
        .hint(format!(
            "export {}=…   # for this shell only",
            variable_name(entry)
        ))
}

pub(crate) fn report_written(engine: &Engine, entry: &EntryRef, w: &Written) {
    super::notes(&w.notices);
    if w.plaintext {
        warn(&format!(
            "{} is stored in plaintext{}; an encrypted backend keeps it safer",
            entry,
            w.location
                .as_deref()
                .map(|l| format!(" in {}", engine.paths.tilde(std::path::Path::new(l))))
                .unwrap_or_default()
        ));
        eprintln!("hint: {}", move_to_encrypted(engine, &w.backend));
    }
    super::info(&format!(
        "stored {} {} in {}",
        entry.service, entry.key, w.backend
    ));
}

/// The command line that moves what `plaintext` holds into an encrypted
/// backend: the one there is, or a KeePass database `ov secrets init` makes.
pub(crate) fn move_to_encrypted(engine: &Engine, plaintext: &str) -> String {
    let encrypted = engine.store.encrypted_home();
    let mut steps = Vec::new();
    match encrypted {
        // Writes went past it, so secret_backend names the plaintext one.
        Some(name) => steps.push(format!("ov settings set secret_backend {name}")),
        None => {
            steps.push("ov secrets init".to_owned());
            if engine.store.forced().is_some() {
                steps.push("ov settings set secret_backend auto".to_owned());
            }
        }
    }
    steps.push(format!("ov secrets import --from {plaintext} --move"));
    format!(
        "{}   # move them to an encrypted backend",
        steps.join(" && ")
    )
}

/// Re-seal the bundle of an app/env service after a change, and say so.
pub(crate) fn resealed(engine: &Engine, service: &str) -> Result<()> {
    if let Some(sealed) = crate::machine_key::after_change(&engine.paths, &engine.store, service)? {
        super::notes(&sealed.notes);
        if let Some(bundle) = &sealed.bundle {
            super::info(&format!(
                "sealed {service} to {}",
                engine.paths.tilde(bundle)
            ));
        }
    }
    Ok(())
}
