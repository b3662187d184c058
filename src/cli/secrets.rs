//! `ov secrets …` — the store commands.

use crate::cli::{out, outln};
use std::collections::BTreeMap;

use clap::{Args, Subcommand, ValueEnum};
use ov_plugin_api::{EntryRef, Secret};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::cli::{Engine, print_json, warn};
use crate::env_backend::variable_name;
use crate::error::{EXIT_ERROR, OvError, Result};
use crate::prompt;
use crate::store::{Deleted, Miss, Written, random_hex, validate_entry, validate_value};

#[derive(Debug, Subcommand)]
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
pub struct InitArgs {
    /// Where to create the database
    path: Option<std::path::PathBuf>,
    /// Replace an existing database (its secrets are lost)
    #[arg(long)]
    force: bool,
    /// Also lock the database with this key file (created with 32 random bytes if missing)
    #[arg(long, value_name = "FILE")]
    key_file: Option<std::path::PathBuf>,
    /// Use the key file alone, with no password
    #[arg(long, requires = "key_file")]
    no_password: bool,
    /// Make the new database the active one even though the current one
    /// holds entries (they stay in the old file, no longer read)
    #[arg(long)]
    switch: bool,
}

#[derive(Debug, Args)]
pub struct EntryArgs {
    /// Service, e.g. ov/vnc or myapp/prod
    service: String,
    /// Key within the service
    key: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    entry: EntryArgs,
    /// Delete only this backend's copy (a plaintext one left behind, say)
    #[arg(long, value_name = "BACKEND")]
    from: Option<String>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    entry: EntryArgs,
    /// Print the stored bytes exactly, with no newline added: for values
    /// that are not UTF-8 text, or to write a key file (`> key.bin`)
    #[arg(long)]
    raw: bool,
    /// If the keyring is locked or its provider is not running yet, wait
    /// until someone unlocks or starts it
    #[arg(long)]
    wait_unlock: bool,
    /// How long --wait-unlock waits, in seconds
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 300,
        requires = "wait_unlock"
    )]
    wait_timeout: u64,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only entries of this service or below it
    #[arg(conflicts_with = "app")]
    service: Option<String>,
    #[command(flatten)]
    app: AppFlags,
    /// Print JSON for scripts
    #[arg(long)]
    json: bool,
    /// Fail (exit 1, nothing listed) when part of the store could not be
    /// seen, such as a locked keyring collection
    #[arg(long)]
    strict: bool,
}

/// `--app A --env E`: the secrets of an app, at service `A/E`.
#[derive(Debug, Args)]
pub struct AppFlags {
    /// The app's secrets (service APP/ENV), by environment variable name
    #[arg(long)]
    pub(crate) app: Option<String>,
    /// The app's environment
    #[arg(long, requires = "app", default_value = crate::machine_key::DEFAULT_ENV)]
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
pub struct SetArgs {
    /// Service, e.g. ov/vnc or myapp/prod (with --app: the secret's NAME)
    service: String,
    /// Key within the service (with --app: the VALUE)
    key: Option<String>,
    /// The value; better left out (it shows up in shell history and ps)
    value: Option<String>,
    #[command(flatten)]
    app: AppFlags,
    /// Generate 16 random bytes as 32 hex characters, store and print them
    #[arg(long, conflicts_with = "value")]
    generate: bool,
}

#[derive(Debug, Args)]
pub struct WhichArgs {
    #[command(flatten)]
    entry: EntryArgs,
    /// Print JSON for scripts
    #[arg(long)]
    json: bool,
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
    #[arg(long, value_name = "BACKEND")]
    pub(crate) from: Option<String>,
    /// Delete each entry from the backend it came from, once its copy reads back the same
    #[arg(long = "move")]
    pub(crate) move_: bool,
    #[command(flatten)]
    pub(crate) app: AppFlags,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    format: Format,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The backend, as `ov secrets path --all` names it
    backend: String,
}

#[derive(Debug, Args)]
pub struct PathArgs {
    /// Print every backend's location instead
    #[arg(long)]
    all: bool,
}

pub fn run(cmd: SecretsCommand) -> Result<i32> {
    // Needs no store: skip loading the backend plugins (direnv runs it on every cd).
    let cmd = match cmd {
        SecretsCommand::Gpg(c) => return crate::cli::secrets_gpg::run(c),
        other => other,
    };
    let engine = Engine::load()?;
    match cmd {
        SecretsCommand::Init(a) => {
            let req = crate::lifecycle::Init {
                location: a.path,
                force: a.force,
                key_file: a.key_file,
                no_password: a.no_password,
                switch: a.switch,
            };
            for line in crate::lifecycle::init(&engine.paths, &engine.specs, &engine.store, req)? {
                eprintln!("{line}");
            }
            Ok(0)
        }
        SecretsCommand::Unlock => {
            eprintln!("{}", crate::lifecycle::unlock(&engine.store)?);
            Ok(0)
        }
        SecretsCommand::Lock => {
            for line in crate::lifecycle::lock(&engine.store) {
                eprintln!("{line}");
            }
            Ok(0)
        }
        SecretsCommand::List(a) => list(&engine, a),
        SecretsCommand::Get(a) => get(&engine, &a),
        SecretsCommand::Set(a) => set(&engine, a),
        SecretsCommand::Delete(a) => delete(&engine, &a),
        SecretsCommand::Ensure(a) => ensure(&engine, &a),
        SecretsCommand::Which(a) => which(&engine, &a),
        SecretsCommand::Import(a) if a.file.is_some() || a.app.app.is_some() => {
            crate::cli::import_env::run(&engine, &a)
        }
        SecretsCommand::Import(a) => match &a.backup {
            Some(file) => crate::cli::import_store::restore(&engine, &a, file),
            None => crate::cli::import_store::from_backends(&engine, &a),
        },
        SecretsCommand::Export(a) => export(&engine, &a),
        SecretsCommand::Path(a) => path(&engine, &a),
        SecretsCommand::Forget(a) => forget(&engine, &a),
        SecretsCommand::Gpg(_) => unreachable!("dispatched above"),
    }
}

fn entry_of(a: &EntryArgs) -> Result<EntryRef> {
    validate_entry(&a.service, &a.key)
}

/// Print a value and a newline, and nothing else.
fn print_value(value: &Secret) -> Result<()> {
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
    let why: Vec<String> = miss
        .locked
        .iter()
        .chain(&miss.waited)
        .map(|(_, e)| e.message.clone())
        .chain(
            miss.starting()
                .map(|(name, e)| format!("{name} not searched: {}", e.message)),
        )
        .chain(
            miss.unresponsive()
                .map(|(name, e)| format!("{name} did not answer: {}", e.message)),
        )
        .collect();
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

fn report_written(engine: &Engine, entry: &EntryRef, w: &Written) {
    for n in &w.notices {
        eprintln!("ov: note: {n}");
    }
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
    eprintln!("stored {} {} in {}", entry.service, entry.key, w.backend);
}

/// The command line that moves what `plaintext` holds into an encrypted
/// backend: the one there is, or a KeePass database `ov secrets init` makes.
fn move_to_encrypted(engine: &Engine, plaintext: &str) -> String {
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
    if let Some(bundle) = crate::machine_key::after_change(&engine.paths, &engine.store, service)? {
        eprintln!("sealed {service} to {}", engine.paths.tilde(&bundle));
    }
    Ok(())
}

fn list(engine: &Engine, a: ListArgs) -> Result<i32> {
    let app_service = a.app.service()?;
    let service = app_service.as_deref().or(a.service.as_deref());
    let mut entries = if a.strict {
        engine
            .store
            .listing(service)?
            .complete("list every entry (--strict)")?
    } else {
        engine.store.list(service)?
    };
    if let Some(svc) = &app_service {
        // Exactly the app's secrets, by name.
        entries.retain(|e, _| &e.service == svc);
        if !a.json {
            for e in entries.keys() {
                outln!("{}", e.key);
            }
            return Ok(0);
        }
    }
    if a.json {
        #[derive(Serialize)]
        struct Row<'a> {
            service: &'a str,
            key: &'a str,
            source: &'a str,
        }
        let rows: Vec<Row> = entries
            .iter()
            .map(|(e, src)| Row {
                service: &e.service,
                key: &e.key,
                source: src,
            })
            .collect();
        print_json(&rows)?;
    } else {
        for e in entries.keys() {
            outln!("{e}");
        }
    }
    Ok(0)
}

fn get(engine: &Engine, a: &GetArgs) -> Result<i32> {
    let entry = entry_of(&a.entry)?;
    let found = if a.raw {
        engine
            .store
            .get_bytes(&entry)?
            .map(|(bytes, _)| print_raw(bytes.expose()))
    } else {
        engine
            .store
            .get(&entry)?
            .map(|(value, _)| print_value(&value))
    };
    let miss = match found {
        Ok(printed) => {
            printed?;
            return Ok(0);
        }
        Err(miss) => miss,
    };
    if a.wait_unlock {
        return wait_and_get(engine, a, &entry, miss);
    }
    Err(not_found(&entry, &miss))
}

/// `get --wait-unlock` after a miss: wait on each backend that can wait
/// (locked ones first, then ones whose service is not up yet, such as a
/// keyring provider that is starting), and print the value once one has it.
fn wait_and_get(engine: &Engine, a: &GetArgs, entry: &EntryRef, mut miss: Miss) -> Result<i32> {
    let wait = engine.store.waits_for(&miss);
    if !wait.locked.is_empty() {
        eprintln!(
            "waiting up to {} s for {} to be unlocked…",
            a.wait_timeout,
            wait.locked.join(", ")
        );
    }
    for (name, why) in &wait.starting {
        eprintln!(
            "waiting up to {} s for {name} to come up ({why})…",
            a.wait_timeout
        );
    }
    let ms = a.wait_timeout.saturating_mul(1000);
    match engine
        .store
        .get_waiting(entry, &wait, ms, a.raw, &mut miss)?
    {
        Some(bytes) if a.raw => print_raw(bytes.expose())?,
        Some(bytes) => match std::str::from_utf8(bytes.expose()) {
            Ok(text) => print_value(&Secret::from(text))?,
            Err(_) => print_raw(bytes.expose())?,
        },
        None => return Err(not_found(entry, &miss)),
    }
    Ok(0)
}

fn set(engine: &Engine, a: SetArgs) -> Result<i32> {
    let (entry, given) = if let Some(svc) = a.app.service()? {
        if a.value.is_some() {
            return Err(OvError::usage(
                "with --app, give NAME and optionally VALUE, not a service",
            )
            .hint("ov secrets set --app myapp --env production DATABASE_URL"));
        }
        if !crate::dotenv::valid_name(&a.service) {
            return Err(OvError::usage(format!(
                "'{}' is not a valid environment variable name (letters, digits and '_', not starting with a digit)",
                a.service
            ))
            .hint(format!(
                "ov secrets set --app {} --env {} {}",
                a.app.app.as_deref().unwrap_or_default(),
                a.app.env,
                a.service.to_ascii_uppercase().replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            )));
        }
        (validate_entry(&svc, &a.service)?, a.key)
    } else {
        let Some(key) = &a.key else {
            return Err(OvError::usage("give a service and a key")
                .hint("ov secrets set ov/vnc password")
                .hint("ov secrets set --app myapp --env production DATABASE_URL"));
        };
        let entry = validate_entry(&a.service, key)?;
        app_name_check(engine, &entry)?;
        (entry, a.value)
    };
    if a.generate && given.is_some() {
        return Err(OvError::usage("--generate and a VALUE exclude each other"));
    }
    let value = if a.generate {
        random_hex(16)?
    } else if let Some(v) = given {
        crate::cmdline::hide(&v);
        warn(
            "a value given on the command line was visible in ps until ov hid it, and stays in your shell history; leave it out to be prompted",
        );
        Secret::new(v)
    } else if prompt::stdin_is_tty() {
        prompt::ask_hidden_twice(&format!("Value for {} {}: ", entry.service, entry.key))?
    } else {
        prompt::read_stdin_value()?
    };
    validate_value(&value)?;
    let written = engine.store.set(&entry, &value)?;
    report_written(engine, &entry, &written);
    resealed(engine, &entry.service)?;
    if a.generate {
        print_value(&value)?;
    }
    Ok(0)
}

/// An app's secrets (a service `APP/ENV` with machine keys registered)
/// become environment variables: written as `set SERVICE KEY`, the key
/// must be a variable name just as with `--app`.
fn app_name_check(engine: &Engine, entry: &EntryRef) -> Result<()> {
    let Some((app, env)) = entry.service.split_once('/') else {
        return Ok(());
    };
    if crate::dotenv::valid_name(&entry.key) || env.contains('/') {
        return Ok(());
    }
    let registry = crate::machine_key::Registry::load(&engine.paths)?;
    if registry.for_app(app, env).next().is_none() {
        return Ok(());
    }
    Err(OvError::usage(format!(
        "{} holds the secrets of app {app} ({env}), which become environment variables; {:?} is not a variable name (letters, digits and '_', not starting with a digit)",
        entry.service,
        entry.key.escape_debug().to_string()
    ))
    .hint(format!(
        "ov secrets set --app {app} --env {env} {}",
        entry
            .key
            .to_ascii_uppercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    )))
}

/// Backend names for a sentence: `keyring`, `keyring, kdbx`.
fn names_of(backends: &[(String, String)]) -> String {
    backends
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn delete(engine: &Engine, a: &DeleteArgs) -> Result<i32> {
    if let Some(from) = &a.from {
        return delete_from(engine, &a.entry, from);
    }
    let entry = entry_of(&a.entry)?;
    let Deleted {
        removed,
        not_searched,
    } = engine.store.delete(&entry)?;
    let var = variable_name(&entry);
    let in_env = std::env::var_os(&var).is_some_and(|v| !v.is_empty());
    let not_searched_why: Vec<String> = not_searched
        .iter()
        .map(|(name, why)| format!("{name} not searched: {why}"))
        .collect();
    if removed.is_empty() {
        let mut msg = format!("no stored secret {} {}", entry.service, entry.key);
        if !not_searched.is_empty() {
            msg.push_str(&format!(" ({})", not_searched_why.join("; ")));
        }
        let mut e = OvError::new(msg);
        for (name, _) in &not_searched {
            e = e.hint(format!("ov doctor {name}   # how to start it"));
        }
        if !not_searched.is_empty() {
            e = e.hint(format!(
                "ov secrets delete {} {}   # again, once the {} is up",
                entry.service,
                entry.key,
                names_of(&not_searched)
            ));
        }
        e = e.hint(format!("ov secrets list {}", entry.service));
        if in_env {
            e = e.hint(format!(
                "unset {var}   # the value you see comes from the environment"
            ));
        }
        return Err(e);
    }
    eprintln!(
        "deleted {} {} from {}",
        entry.service,
        entry.key,
        removed.join(", ")
    );
    if !not_searched.is_empty() {
        // The copy there would answer the next read once it is up.
        warn(&format!(
            "{}; a copy there is not deleted: run `ov secrets delete {} {}` again once it is up",
            not_searched_why.join("; "),
            entry.service,
            entry.key
        ));
    }
    resealed(engine, &entry.service)?;
    if in_env {
        warn(&format!(
            "{var} is still set in the environment and answers reads"
        ));
    }
    Ok(0)
}

/// `ov secrets delete S K --from B`: only that backend's copy.
fn delete_from(engine: &Engine, a: &EntryArgs, from: &str) -> Result<i32> {
    let entry = entry_of(a)?;
    if !engine.store.delete_in(from, &entry)? {
        return Err(
            OvError::new(format!("{from} holds no {} {}", entry.service, entry.key))
                .hint(format!("ov secrets which {} {}", entry.service, entry.key)),
        );
    }
    eprintln!("deleted {} {} from {from}", entry.service, entry.key);
    // Say what answers now, so nobody mistakes this for deleting the secret.
    match engine.store.get(&entry)? {
        Ok((_, source)) => eprintln!(
            "ov: note: {} {} is still stored in {}",
            entry.service, entry.key, source.backend
        ),
        Err(_) => eprintln!(
            "ov: note: no backend holds {} {} any more",
            entry.service, entry.key
        ),
    }
    resealed(engine, &entry.service)?;
    Ok(0)
}

fn ensure(engine: &Engine, a: &EntryArgs) -> Result<i32> {
    let entry = entry_of(a)?;
    // One lock across read-check-write: concurrent callers all print the
    // value the first one stored.
    let lock = engine.paths.ensure_lock();
    let (value, written) = ov_plugin_support::with_lock(&lock, || -> Result<_> {
        if let Ok((value, _)) = engine.store.get(&entry)? {
            return Ok((value, None));
        }
        let value = random_hex(32)?;
        let written = engine.store.set(&entry, &value)?;
        Ok((value, Some(written)))
    })?;
    if let Some(w) = written {
        report_written(engine, &entry, &w);
        resealed(engine, &entry.service)?;
    }
    print_value(&value)?;
    Ok(0)
}

fn which(engine: &Engine, a: &WhichArgs) -> Result<i32> {
    let entry = entry_of(&a.entry)?;
    match engine.store.get(&entry)? {
        Ok((_, mut source)) => {
            engine.store.locate(&mut source);
            if a.json {
                print_json(&source)?;
            } else {
                match &source.location {
                    Some(loc) => outln!("{}\t{loc}", source.backend),
                    None => outln!("{}", source.backend),
                }
            }
            Ok(0)
        }
        Err(miss) => {
            if a.json {
                #[derive(Serialize)]
                struct NotFound<'a> {
                    backend: Option<&'a str>,
                    locked: Vec<&'a str>,
                    unavailable: Vec<&'a str>,
                }
                print_json(&NotFound {
                    backend: None,
                    locked: miss.locked.iter().map(|(n, _)| n.as_str()).collect(),
                    unavailable: miss.unavailable.iter().map(|(n, _)| n.as_str()).collect(),
                })?;
                return Ok(EXIT_ERROR);
            }
            let searched: Vec<String> = engine
                .store
                .chain()
                .iter()
                .map(|b| match b.desc.name.as_str() {
                    "env" => format!("env (${})", variable_name(&entry)),
                    n if miss.unavailable.iter().any(|(u, _)| u == n) => {
                        format!("{n} (unavailable)")
                    }
                    n => n.to_owned(),
                })
                .collect();
            let mut e = not_found(&entry, &miss);
            e.message
                .push_str(&format!("; searched {}", searched.join(", ")));
            Err(e)
        }
    }
}

fn export(engine: &Engine, a: &ExportArgs) -> Result<i32> {
    // An export is a backup: one that leaves out a locked collection and
    // still exits 0 is found out only at restore time.
    let entries = engine
        .store
        .listing(None)?
        .complete("export every entry")
        .map_err(|e| e.hint("ov secrets export   # again, once it is readable"))?;
    let mut tree: BTreeMap<String, BTreeMap<String, Secret>> = BTreeMap::new();
    for (entry, source) in &entries {
        if let Some(v) = engine.store.get_in(source, entry)? {
            tree.entry(entry.service.clone())
                .or_default()
                .insert(entry.key.clone(), v);
        }
    }
    warn("the export below holds your secrets in plaintext; keep it out of shared places");
    let nested: BTreeMap<&str, BTreeMap<&str, &str>> = tree
        .iter()
        .map(|(s, keys)| {
            (
                s.as_str(),
                keys.iter().map(|(k, v)| (k.as_str(), v.expose())).collect(),
            )
        })
        .collect();
    let mut out = Zeroizing::new(String::new());
    match a.format {
        Format::Json => {
            let text = Zeroizing::new(
                serde_json::to_string_pretty(&nested)
                    .map_err(|e| OvError::new(format!("cannot encode JSON: {e}")))?,
            );
            out.push_str(&text);
            out.push('\n');
        }
        Format::Yaml => {
            out.push_str(&Zeroizing::new(crate::import::backup_yaml(&nested)?));
        }
    }
    out!("{}", out.as_str());
    Ok(0)
}

fn forget(engine: &Engine, a: &ForgetArgs) -> Result<i32> {
    let held = crate::held::Held::new(&engine.paths.data_dir);
    if held.forget(&a.backend) {
        eprintln!(
            "forgot which services {} held; sealing, run --all and export no longer wait for it",
            a.backend
        );
    } else {
        eprintln!(
            "ov has no record of entries in {}",
            a.backend.escape_debug()
        );
    }
    Ok(0)
}

fn path(engine: &Engine, a: &PathArgs) -> Result<i32> {
    if a.all {
        for (name, state) in engine.store.locations() {
            let loc = match state {
                ov_plugin_api::Availability::Available { location } => {
                    location.unwrap_or_else(|| "-".into())
                }
                ov_plugin_api::Availability::Locked { reason } => format!("locked: {reason}"),
                ov_plugin_api::Availability::Unavailable { reason, .. } => {
                    format!("unavailable: {reason}")
                }
            };
            outln!("{name}\t{loc}");
        }
        return Ok(0);
    }
    outln!("{}", engine.store.store_path()?);
    Ok(0)
}
