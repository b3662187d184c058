//! `ov run` — start a command with an app's secrets.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

use crate::cli::Engine;
use crate::error::{OvError, Result};
use crate::machine_key::{self as mk, DEFAULT_ENV};
use crate::paths::Paths;
use crate::run;

#[derive(Debug, Args)]
#[command(arg_required_else_help = true)]
pub struct RunArgs {
    /// The app whose secrets the command gets (with --agent: default the agent's)
    #[arg(long, required_unless_present = "agent")]
    app: Option<String>,
    /// The app's environment
    #[arg(long, default_value = DEFAULT_ENV)]
    env: String,
    /// Read the app's sealed bundle with this key file, not the store (no TTY, D-Bus or agent needed); with --agent, sign the request with it
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
    /// Ask the running `ov agent` to start the command (no secret crosses its socket)
    #[arg(long, conflicts_with_all = ["bundle", "secrets_dir"])]
    agent: bool,
    /// The agent's socket (with --agent)
    #[arg(long, value_name = "PATH", requires = "agent")]
    socket: Option<PathBuf>,
    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

pub fn run(a: RunArgs) -> Result<i32> {
    if a.agent {
        return run_via_agent(a);
    }
    let Some(app) = a.app.as_deref() else {
        return Err(OvError::usage(
            "say whose secrets the command gets: --app APP",
        ));
    };
    mk::validate_app_env(app, &a.env)?;
    let selection = run::parse_selection(a.secrets.as_deref(), a.all, app, &a.env)?;
    let env = a.env.as_str();
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let secrets = if let Some(key_path) = &a.machine_key {
        // The service path: only the key file and the bundle are read.
        let key = mk::load(key_path, app, env)?;
        let paths = Paths::from_env()?;
        let bundle = match &a.bundle {
            Some(b) => b.clone(),
            None => mk::default_bundle_path(&paths, app, env),
        };
        // Another env's bundle is the likely meaning of a missing or empty
        // one; with --bundle the user said which file they meant.
        let others = if a.bundle.is_some() {
            Vec::new()
        } else {
            mk::envs_with_bundles(&paths, app, env)
        };
        if matches!(std::fs::symlink_metadata(&bundle), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
        {
            let err = OvError::new(format!(
                "there is no bundle for {app}/{env}: {} does not exist{}",
                bundle.display(),
                did_you_mean(&others)
            ));
            return Err(with_other_envs(err, &a, &others).hint(format!(
                "{}   # as the user who owns the secrets",
                mk::seal_command(app, env)
            )));
        }
        let all = mk::open(&bundle, &key, app, env)?;
        drop(key);
        if all.is_empty() && matches!(selection, run::Selection::All) {
            let err = OvError::new(format!(
                "the bundle {} holds no secrets of {app}/{env}, so the command was not started{}",
                bundle.display(),
                did_you_mean(&others)
            ));
            return Err(with_other_envs(err, &a, &others).hint(format!(
                "ov secrets list --app {app} --env {env}   # as the user who owns the secrets: what {app}/{env} holds"
            )));
        }
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
        if all.is_empty() && matches!(selection, run::Selection::All) {
            let others: Vec<String> = mk::envs_holding(&engine.store, app)?
                .into_iter()
                .filter(|e| e != env)
                .collect();
            let err = OvError::new(format!(
                "{app}/{env} holds no secrets, so the command was not started{}",
                did_you_mean(&others)
            ));
            return Err(with_other_envs(err, &a, &others)
                .hint("ov secrets list   # every app/env with secrets"));
        }
        run::select(all, &selection, app, env, &|name| {
            vec![format!("ov secrets set --app {app} --env {env} {name}")]
        })?
    };
    // A bundle sealed before names were checked may hold one another tool
    // stored (`PATH=/tmp/evil:`, `../x`): it is left out, with a note.
    let service = mk::service(app, env);
    let secrets: Vec<_> = secrets
        .into_iter()
        .filter(|(name, _)| mk::usable_name(&service, name))
        .collect();
    let relaunch = |prog: &std::ffi::OsStr| command_line(&a, env, Some(prog));
    if a.secrets_dir {
        run::run_with_files(&a.command, secrets, runtime_dir.as_deref(), &relaunch)
    } else {
        run::exec_with_env(&a.command, &secrets, &relaunch)
    }
}

/// `ov run --agent`: the agent reads the secrets and starts the command; a
/// machine key given here only signs the request.
fn run_via_agent(a: RunArgs) -> Result<i32> {
    let shown_app = a.app.as_deref().unwrap_or("APP");
    if a.app.is_none() && a.env != DEFAULT_ENV {
        return Err(
            OvError::usage("--env needs --app: without both the agent's own are used")
                .hint(format!("ov run --agent --app APP --env {} ...", a.env)),
        );
    }
    mk::validate_app_env(shown_app, &a.env)?;
    let selection = run::parse_selection(a.secrets.as_deref(), a.all, shown_app, &a.env)?;
    let (all, names) = match selection {
        run::Selection::All => (true, Vec::new()),
        run::Selection::Names(n) => (false, n),
    };
    let env = a.app.is_some().then(|| a.env.clone());
    crate::agent::run(crate::agent::RunWith {
        socket: a.socket.clone(),
        machine_key: a.machine_key.as_deref(),
        app: a.app.clone(),
        env,
        all,
        names,
        argv: a.command,
    })
}

/// `; did you mean --env production?` when exactly one other env is there.
fn did_you_mean(others: &[String]) -> String {
    match others {
        [] => String::new(),
        [one] => format!("; did you mean --env {one}?"),
        many => format!("; other envs there are: {}", many.join(", ")),
    }
}

/// A hint per other env: this same `ov run` command line with that env.
fn with_other_envs(mut err: OvError, a: &RunArgs, others: &[String]) -> OvError {
    for other in others {
        err = err.hint(command_line(a, other, None));
    }
    err
}

/// The `ov run` command line `a` stands for, with `env` (and `prog` for
/// the program when given), quoted for a shell.
fn command_line(a: &RunArgs, env: &str, prog: Option<&std::ffi::OsStr>) -> String {
    let q = |s: &std::ffi::OsStr| ov_plugin_support::shell_quote(std::path::Path::new(s));
    let mut line = format!(
        "ov run --app {} --env {env}",
        a.app.as_deref().unwrap_or_default()
    );
    if let Some(k) = &a.machine_key {
        line.push_str(&format!(" --machine-key {}", q(k.as_os_str())));
    }
    if let Some(b) = &a.bundle {
        line.push_str(&format!(" --bundle {}", q(b.as_os_str())));
    }
    match &a.secrets {
        Some(names) => line.push_str(&format!(" --secrets {}", names.join(","))),
        None => line.push_str(" --all"),
    }
    if a.secrets_dir {
        line.push_str(" --secrets-dir");
    }
    line.push_str(" --");
    for (i, arg) in a.command.iter().enumerate() {
        line.push(' ');
        line.push_str(&q(if i == 0 { prog.unwrap_or(arg) } else { arg }));
    }
    line
}
