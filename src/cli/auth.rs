//! `ov auth …` — machine keys.

use crate::cli::outln;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cli::{Engine, print_json};
use crate::error::{OvError, Result};
use crate::machine_key::{self as mk, DEFAULT_ENV, Registry};
use crate::paths::Paths;

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum AuthCommand {
    /// Write a fresh 32-byte machine key (mode 0600) and seal the app's secrets to it
    DeriveMachineKey(DeriveArgs),
    /// Manage machine-key registrations
    #[command(subcommand)]
    MachineKey(MachineKeyCommand),
}

#[derive(Debug, Args)]
pub struct AppArgs {
    /// The app whose secrets the key opens
    #[arg(long)]
    pub app: String,
    /// The app's environment
    #[arg(long, default_value = DEFAULT_ENV)]
    pub env: String,
}

#[derive(Debug, Args)]
pub struct DeriveArgs {
    /// Where to write the key file
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    #[command(flatten)]
    app: AppArgs,
    /// Replace an existing key file (rotation: the old key stops working)
    #[arg(long)]
    force: bool,
    /// Where the app's sealed bundle goes (default $XDG_DATA_HOME/ov/bundles/APP/ENV.age)
    #[arg(long, value_name = "PATH")]
    bundle: Option<PathBuf>,
    /// Seal the bundle even when the app/env holds no secrets yet
    #[arg(long)]
    allow_empty: bool,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum MachineKeyCommand {
    /// Show registered machine keys
    List(crate::cli::JsonArgs),
    /// Also let an existing key file open another app's secrets
    Add(AddArgs),
    /// Stop a key from opening an app's secrets (re-seals without it)
    Revoke(RevokeArgs),
    /// Re-seal an app's bundle from the store now (--all: every registered app)
    Seal(SealArgs),
    /// Print the age identity a key has for an app, for `age -d` in an emergency
    Identity(IdentityArgs),
}

#[derive(Debug, Args)]
pub struct SealArgs {
    /// The app whose bundle to re-seal
    #[arg(long, required_unless_present = "all", conflicts_with = "all")]
    app: Option<String>,
    /// The app's environment
    #[arg(long, default_value = DEFAULT_ENV, requires = "app")]
    env: String,
    /// Re-seal the bundle of every app/env a machine key is registered for
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The key file
    path: PathBuf,
    #[command(flatten)]
    app: AppArgs,
    /// Seal the bundle even when the app/env holds no secrets yet
    #[arg(long)]
    allow_empty: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    app: AppArgs,
    /// Only this key file (default: every key registered for the app)
    #[arg(long, value_name = "PATH")]
    key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// The key file
    #[arg(long, value_name = "PATH")]
    machine_key: PathBuf,
    #[command(flatten)]
    app: AppArgs,
}

pub fn run(cmd: AuthCommand) -> Result<i32> {
    // Commands that change registrations or bundles hold the registry lock.
    let locked = |f: &dyn Fn() -> Result<i32>| {
        let paths = Paths::from_env()?;
        Registry::locked(&paths, f)
    };
    match cmd {
        AuthCommand::DeriveMachineKey(a) => locked(&|| derive(&a)),
        AuthCommand::MachineKey(MachineKeyCommand::List(a)) => list(a.json),
        AuthCommand::MachineKey(MachineKeyCommand::Add(a)) => locked(&|| add(&a)),
        AuthCommand::MachineKey(MachineKeyCommand::Revoke(a)) => locked(&|| revoke(&a)),
        AuthCommand::MachineKey(MachineKeyCommand::Seal(a)) => locked(&|| seal(&a)),
        AuthCommand::MachineKey(MachineKeyCommand::Identity(a)) => identity(&a),
    }
}

fn report_sealed(paths: &Paths, app: &str, env: &str, sealed: &mk::Sealed) {
    super::notes(&sealed.notes);
    match &sealed.bundle {
        Some(b) => super::info(&format!("sealed {app}/{env} to {}", paths.tilde(b))),
        None => eprintln!("no machine key is registered for {app}/{env}; its bundle is removed"),
    }
}

fn derive(a: &DeriveArgs) -> Result<i32> {
    let (app, env) = (a.app.app.as_str(), a.app.env.as_str());
    mk::validate_app_env(app, env)?;
    let engine = Engine::load()?;
    let path = mk::absolute(&a.out);
    let mut registry = Registry::load(&engine.paths)?;
    if !a.allow_empty {
        refuse_empty(&engine, app, env, &|other| {
            let mut cmd = format!(
                "ov auth derive-machine-key --out {} --app {app} --env {other}",
                ov_plugin_support::shell_quote(&path)
            );
            if a.force {
                cmd.push_str(" --force");
            }
            if let Some(b) = &a.bundle {
                cmd.push_str(" --bundle ");
                cmd.push_str(&ov_plugin_support::shell_quote(&mk::absolute(b)));
            }
            cmd
        })?;
    }
    let key = super::key_in_memory(mk::create(&path, a.force, app, env)?);
    // Rotation: every app this path was registered for moves to the new key.
    let mut apps: Vec<(String, String)> = registry
        .keys
        .iter()
        .filter(|r| r.path == path)
        .map(|r| (r.app.clone(), r.env.clone()))
        .collect();
    registry.keys.retain(|r| r.path != path);
    if !apps.iter().any(|(x, y)| x == app && y == env) {
        apps.push((app.to_owned(), env.to_owned()));
    }
    if let Some(b) = &a.bundle {
        registry
            .bundles
            .insert(mk::service(app, env), mk::absolute(b));
    }
    for (x, y) in &apps {
        registry.register(&path, x, y, &key);
    }
    registry.save(&engine.paths)?;
    for (x, y) in &apps {
        let sealed = mk::seal(&engine.paths, &registry, &engine.store, x, y)?;
        report_sealed(&engine.paths, x, y, &sealed);
    }
    let shown = ov_plugin_support::shell_quote(&path);
    eprintln!(
        "⚠ Machine key written to {}\n\
         This file is as sensitive as the secrets of {}.\n\
         It grants decryption access to those secrets only.\n\
         - Keep it chmod 600, owned by the service account\n\
         - Never commit to version control\n\
         - Revoke with: ov auth machine-key revoke --app {app} --env {env} --key {shown}\n\
         - Rotate with: ov auth derive-machine-key --out {shown} --app {app} --env {env} --force",
        path.display(),
        apps.iter()
            .map(|(x, y)| format!("{x}/{y}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    Ok(0)
}

/// A bundle sealed from an app/env that holds nothing starts the service
/// with no secrets and not a word said: refuse, and name the envs of the
/// app that do hold secrets, each with `command(env)` to use instead.
fn refuse_empty(
    engine: &Engine,
    app: &str,
    env: &str,
    command: &dyn Fn(&str) -> String,
) -> Result<()> {
    let collected =
        mk::collect_complete(&engine.store, app, env, &format!("seal {app}/{env} now"))??;
    if !collected.secrets.is_empty() {
        return Ok(());
    }
    let others: Vec<String> = mk::envs_holding(&engine.store, app)?
        .into_iter()
        .filter(|e| e != env)
        .collect();
    let mut msg = format!(
        "{app}/{env} holds no secrets: its bundle would start the service with none, so nothing was written"
    );
    if !others.is_empty() {
        msg.push_str(&format!(
            "; {app}'s secrets are in {}",
            others
                .iter()
                .map(|e| format!("--env {e}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut err = OvError::new(msg);
    for other in &others {
        err = err.hint(command(other));
    }
    Err(err.hint(format!(
        "{} --allow-empty   # seal it empty anyway; setting a secret of {app}/{env} re-seals it",
        command(env)
    )))
}

fn add(a: &AddArgs) -> Result<i32> {
    let (app, env) = (a.app.app.as_str(), a.app.env.as_str());
    mk::validate_app_env(app, env)?;
    let engine = Engine::load()?;
    let path = mk::absolute(&a.path);
    let key = super::key_in_memory(mk::load(&path, app, env)?);
    if !a.allow_empty {
        refuse_empty(&engine, app, env, &|other| {
            format!(
                "ov auth machine-key add {} --app {app} --env {other}",
                ov_plugin_support::shell_quote(&path)
            )
        })?;
    }
    let mut registry = Registry::load(&engine.paths)?;
    registry.register(&path, app, env, &key);
    drop(key);
    registry.save(&engine.paths)?;
    let sealed = mk::seal(&engine.paths, &registry, &engine.store, app, env)?;
    report_sealed(&engine.paths, app, env, &sealed);
    Ok(0)
}

fn list(json: bool) -> Result<i32> {
    let paths = Paths::from_env()?;
    let registry = Registry::load(&paths)?;
    if json {
        #[derive(Serialize)]
        struct Row<'a> {
            path: &'a std::path::Path,
            app: &'a str,
            env: &'a str,
            bundle: PathBuf,
            recipient: &'a str,
        }
        let rows: Vec<Row> = registry
            .keys
            .iter()
            .map(|r| Row {
                path: &r.path,
                app: &r.app,
                env: &r.env,
                bundle: registry.bundle_path(&paths, &r.app, &r.env),
                recipient: &r.recipient,
            })
            .collect();
        print_json(&rows)?;
        return Ok(0);
    }
    if registry.keys.is_empty() {
        eprintln!("no machine keys are registered");
        eprintln!(
            "hint: ov auth derive-machine-key --out /etc/ov/myapp.key --app myapp --env production"
        );
        return Ok(0);
    }
    for r in &registry.keys {
        outln!(
            "{}/{}\t{}\t{}",
            r.app,
            r.env,
            r.path.display(),
            registry.bundle_path(&paths, &r.app, &r.env).display()
        );
    }
    Ok(0)
}

fn revoke(a: &RevokeArgs) -> Result<i32> {
    let (app, env) = (a.app.app.as_str(), a.app.env.as_str());
    mk::validate_app_env(app, env)?;
    let engine = Engine::load()?;
    let mut registry = Registry::load(&engine.paths)?;
    let key = a.key.as_deref().map(mk::absolute);
    let before = registry.keys.len();
    registry
        .keys
        .retain(|r| !(r.app == app && r.env == env && key.as_ref().is_none_or(|k| &r.path == k)));
    if registry.keys.len() == before {
        return Err(OvError::new(format!(
            "no machine key{} is registered for {app}/{env}",
            key.as_ref()
                .map(|k| format!(" {}", k.display()))
                .unwrap_or_default()
        ))
        .hint("ov auth machine-key list"));
    }
    registry.save(&engine.paths)?;
    let sealed = mk::seal(&engine.paths, &registry, &engine.store, app, env)?;
    eprintln!(
        "revoked {} registration(s) for {app}/{env}",
        before - registry.keys.len()
    );
    report_sealed(&engine.paths, app, env, &sealed);
    Ok(0)
}

fn seal(a: &SealArgs) -> Result<i32> {
    let Some(app) = a.app.as_deref().filter(|_| !a.all) else {
        return seal_all();
    };
    mk::validate_app_env(app, &a.env)?;
    let engine = Engine::load()?;
    let registry = Registry::load(&engine.paths)?;
    if registry.for_app(app, &a.env).next().is_none() {
        return Err(OvError::new(format!(
            "no machine key is registered for {}/{}",
            app, a.env
        ))
        .hint(format!(
            "ov auth derive-machine-key --out /etc/ov/{}.key --app {} --env {}",
            app, app, a.env
        )));
    }
    let sealed = mk::seal(&engine.paths, &registry, &engine.store, app, &a.env)?;
    report_sealed(&engine.paths, app, &a.env, &sealed);
    Ok(0)
}

/// Re-seal every registered app/env; one that cannot be sealed now does
/// not stop the others, and makes the exit status 1.
fn seal_all() -> Result<i32> {
    let engine = Engine::load()?;
    let registry = Registry::load(&engine.paths)?;
    let mut apps: Vec<(String, String)> = registry
        .keys
        .iter()
        .map(|r| (r.app.clone(), r.env.clone()))
        .collect();
    apps.sort();
    apps.dedup();
    if apps.is_empty() {
        eprintln!("no machine keys are registered; nothing to seal");
        return Ok(0);
    }
    let mut failed = 0;
    for (app, env) in &apps {
        match mk::seal(&engine.paths, &registry, &engine.store, app, env) {
            Ok(sealed) => report_sealed(&engine.paths, app, env, &sealed),
            Err(e) => {
                failed += 1;
                eprint!("{}", e.render());
            }
        }
    }
    if failed > 0 {
        return Err(OvError::new(format!(
            "{failed} of {} bundles could not be sealed (see above)",
            apps.len()
        ))
        .hint("ov auth machine-key seal --all   # again, once they can"));
    }
    Ok(0)
}

fn identity(a: &IdentityArgs) -> Result<i32> {
    mk::validate_app_env(&a.app.app, &a.app.env)?;
    let key = super::key_in_memory(mk::load(&a.machine_key, &a.app.app, &a.app.env)?);
    let id = key.identity(&a.app.app, &a.app.env);
    use age::secrecy::ExposeSecret;
    let text = id.to_string();
    outln!("{}", text.expose_secret());
    Ok(0)
}
