//! `ov run` — start a command with an app's secrets.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

use crate::cli::Engine;
use crate::error::Result;
use crate::machine_key::{self as mk, DEFAULT_ENV};
use crate::paths::Paths;
use crate::run;

#[derive(Debug, Args)]
#[command(arg_required_else_help = true)]
pub struct RunArgs {
    /// The app whose secrets the command gets
    #[arg(long)]
    app: String,
    /// The app's environment
    #[arg(long, default_value = DEFAULT_ENV)]
    env: String,
    /// Read the app's sealed bundle with this key file, not the store (no TTY, D-Bus or agent needed)
    #[arg(long, value_name = "PATH")]
    machine_key: Option<PathBuf>,
    /// The sealed bundle (default $XDG_DATA_HOME/ov/bundles/APP/ENV.age)
    #[arg(long, value_name = "PATH", requires = "machine_key")]
    bundle: Option<PathBuf>,
    /// The secrets the command gets, comma-separated
    #[arg(
        long,
        value_name = "A,B",
        value_delimiter = ',',
        conflicts_with = "all"
    )]
    secrets: Option<Vec<String>>,
    /// Give the command every secret of the app
    #[arg(long)]
    all: bool,
    /// Deliver secrets as 0600 files in a private tmpfs directory, with NAME_FILE=path in the environment
    #[arg(long)]
    secrets_dir: bool,
    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

pub fn run(a: RunArgs) -> Result<i32> {
    mk::validate_app_env(&a.app, &a.env)?;
    let selection = run::parse_selection(a.secrets.as_deref(), a.all, &a.app, &a.env)?;
    let (app, env) = (a.app.as_str(), a.env.as_str());
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let secrets = if let Some(key_path) = &a.machine_key {
        // The service path: only the key file and the bundle are read.
        let key = mk::load(key_path, app, env)?;
        let bundle = match &a.bundle {
            Some(b) => b.clone(),
            None => mk::default_bundle_path(&Paths::from_env()?, app, env),
        };
        let all = mk::open(&bundle, &key, app, env)?;
        drop(key);
        run::select(all, &selection, app, env, &|name| {
            vec![
                format!(
                    "ov secrets set --app {app} --env {env} {name}   # as the owner of the secrets"
                ),
                mk::seal_command(app, env),
            ]
        })?
    } else {
        let engine = Engine::load()?;
        let all = match &selection {
            // --all means every secret: not the ones that happened to be
            // readable while the keyring was down or locked.
            run::Selection::All => mk::collect_complete(
                &engine.store,
                app,
                env,
                &format!("give the command every secret of {app}/{env}"),
            )?
            .map_err(|e| {
                e.hint(format!(
                    "ov run --app {app} --env {env} --secrets NAME,… -- …   # or name the secrets it needs"
                ))
            })?,
            run::Selection::Names(_) => mk::collect(&engine.store, app, env)?,
        };
        run::select(all, &selection, app, env, &|name| {
            vec![format!("ov secrets set --app {app} --env {env} {name}")]
        })?
    };
    // Another tool may have stored an entry under a name that is no
    // variable name (`PATH=/tmp/evil:`, `../x`): as an environment entry it
    // would override another variable, as a file land outside the
    // directory. It is left out, with a note.
    let secrets: Vec<_> = secrets
        .into_iter()
        .filter(|(name, _)| {
            let ok = crate::dotenv::valid_name(name);
            if !ok {
                eprintln!(
                    "ov: note: left out {app}/{env} entry {:?}: not an environment variable name (letters, digits and '_'); rename it where it is stored",
                    name.escape_debug().to_string()
                );
            }
            ok
        })
        .collect();
    if a.secrets_dir {
        run::run_with_files(&a.command, secrets, runtime_dir.as_deref())
    } else {
        run::exec_with_env(&a.command, &secrets)
    }
}
