//! `ov run` — start a command with an app's secrets.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

use crate::cli::{Engine, outln};
use crate::error::{OvError, Result};
use crate::machine_key::{self as mk, DEFAULT_ENV};
use crate::paths::Paths;
use crate::refs;
use crate::run;
use ov_plugin_api::Secret;

#[derive(Debug, Args)]
#[command(arg_required_else_help = true)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(true).args(["app", "env_files", "agent"])))]
pub struct RunArgs {
    /// The app whose secrets the command gets (with --agent: default the agent's)
    #[arg(long, add = crate::cli::complete::app())]
    app: Option<String>,
    /// The app's environment
    #[arg(long, default_value = DEFAULT_ENV, add = crate::cli::complete::env())]
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
    /// A dotenv file whose values are literals or references (ov://SERVICE/KEY); repeatable, later files win
    #[arg(long = "env-file", value_name = "FILE")]
    env_files: Vec<PathBuf>,
    /// Print each variable and where its value comes from (never the value), and run nothing
    #[arg(long)]
    dry_run: bool,
    /// Replace every secret in the command's output with <concealed by ov>
    #[arg(long, conflicts_with = "secrets_dir")]
    mask: bool,
    /// Ask the running `ov agent` to start the command (no secret crosses its socket)
    #[arg(long, conflicts_with_all = ["bundle", "secrets_dir", "env_files", "mask", "dry_run"])]
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
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let mut engine = None;
    let mut vars: Vec<Var> = Vec::new();
    if let Some(app) = a.app.as_deref() {
        let (secrets, origin) = app_secrets(&a, app, &mut engine)?;
        vars.extend(secrets.into_iter().map(|(name, value)| Var {
            name,
            value,
            origin: origin.clone(),
        }));
    } else if a.secrets.is_some() || a.all || a.machine_key.is_some() {
        return Err(with_app(
            OvError::usage(
                "--secrets, --all and --machine-key choose an app's secrets: give --app too",
            ),
            &a.env,
            "ov run --app APP --env ENV --all --env-file FILE -- …",
        ));
    }
    overlay(
        &mut vars,
        env_file_vars(&a.env_files, &mut engine, "the command was not started")?,
    );
    if a.dry_run {
        for v in &vars {
            outln!("{}\t{}", v.name, v.origin);
        }
        return Ok(0);
    }
    let secrets: Vec<(String, Secret)> = vars.into_iter().map(|v| (v.name, v.value)).collect();
    let relaunch = |prog: &std::ffi::OsStr| command_line(&a, &a.env, Some(prog));
    if a.secrets_dir {
        run::run_with_files(&a.command, secrets, runtime_dir.as_deref(), &relaunch)
    } else if a.mask {
        let short: Vec<String> = secrets
            .iter()
            .filter(|(_, v)| !v.expose().is_empty() && v.expose().len() < run::MIN_MASKED_LEN)
            .map(|(k, _)| {
                format!(
                    "{k} is not masked: its value is under {} bytes, and masking it would garble the output",
                    run::MIN_MASKED_LEN
                )
            })
            .collect();
        super::notes(&short);
        run::run_masked(&a.command, &secrets, &relaunch)
    } else {
        run::exec_with_env(&a.command, &secrets, &relaunch)
    }
}

/// Add `later` to `vars`, each replacing a variable of the same name.
pub(super) fn overlay(vars: &mut Vec<Var>, later: impl IntoIterator<Item = Var>) {
    for v in later {
        vars.retain(|old| old.name != v.name);
        vars.push(v);
    }
}

/// One variable the command gets, and where its value comes from.
pub(super) struct Var {
    pub(super) name: String,
    pub(super) value: Secret,
    pub(super) origin: String,
}

/// The secrets of `app` the command gets (from its bundle with
/// `--machine-key`, else from the store), and where they come from.
fn app_secrets(
    a: &RunArgs,
    app: &str,
    engine: &mut Option<Engine>,
) -> Result<(Vec<(String, Secret)>, String)> {
    mk::validate_app_env(app, &a.env)?;
    let selection = run::parse_selection(a.secrets.as_deref(), a.all, app, &a.env)?;
    let env = a.env.as_str();
    let mut origin = format!("{app}/{env} in the store");
    let secrets = if let Some(key_path) = &a.machine_key {
        // The service path: only the key file and the bundle are read.
        let key = super::key_in_memory(mk::load(key_path, app, env).map_err(|mut e| {
            // A new key must seal the bundle this command reads.
            if let Some(b) = &a.bundle {
                for h in e
                    .hints
                    .iter_mut()
                    .filter(|h| h.starts_with("ov auth derive-machine-key"))
                {
                    h.push_str(&format!(" --bundle {}", ov_plugin_support::shell_quote(b)));
                }
            }
            e
        })?);
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
            return Err(with_other_envs(err, a, &others).hint(format!(
                "{}   # as the user who owns the secrets",
                mk::seal_command(app, env)
            )));
        }
        origin = format!("{app}/{env} in {}", bundle.display());
        let all = mk::open(&bundle, &key, app, env)?;
        drop(key);
        if all.is_empty() && matches!(selection, run::Selection::All) {
            let err = OvError::new(format!(
                "the bundle {} holds no secrets of {app}/{env}, so the command was not started{}",
                bundle.display(),
                did_you_mean(&others)
            ));
            return Err(with_other_envs(err, a, &others).hint(format!(
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
        let engine = engine.insert(Engine::load()?);
        let got = match &selection {
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
        super::notes(&got.notes);
        let all = got.secrets;
        if all.is_empty() && matches!(selection, run::Selection::All) {
            let others: Vec<String> = mk::envs_holding(&engine.store, app)?
                .into_iter()
                .filter(|e| e != env)
                .collect();
            let err = OvError::new(format!(
                "{app}/{env} holds no secrets, so the command was not started{}",
                did_you_mean(&others)
            ));
            return Err(with_other_envs(err, a, &others)
                .hint("ov secrets list   # every app/env with secrets"));
        }
        run::select(all, &selection, app, env, &|name| {
            vec![format!("ov secrets set --app {app} --env {env} {name}")]
        })?
    };
    // A bundle sealed before names were checked may hold one another tool
    // stored (`PATH=/tmp/evil:`, `../x`): it is left out, with a note.
    let usable = mk::usable(&mk::service(app, env), secrets);
    super::notes(&usable.notes);
    Ok((usable.secrets, origin))
}

/// One env file, read and parsed, every bad line named with its number;
/// its warnings (a key set twice) are said as notes.
pub(super) fn read_env_file(file: &std::path::Path) -> Result<crate::dotenv::Parsed> {
    let shown = file.display();
    let bytes = ov_plugin_support::read_regular(file).map_err(|e| {
        OvError::new(format!("cannot read {shown}: {e}"))
            .hint(format!("ls -l {}", ov_plugin_support::shell_quote(file)))
    })?;
    let text =
        String::from_utf8(bytes).map_err(|_| OvError::new(format!("{shown} is not UTF-8 text")))?;
    let parsed = crate::dotenv::parse(&text).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("{shown}:{e}")).collect();
        OvError::new(format!("cannot read {shown}:\n  {}", lines.join("\n  ")))
            .hint(ov_plugin_support::edit_command(file))
    })?;
    super::notes(&parsed.warnings);
    Ok(parsed)
}

/// The variables of env files, in order, a later file's winning: literals
/// as written, references resolved through the store. Every reference
/// that does not resolve, in any of the files, is named with its file and
/// line, and the error says that nothing was done (`doing`).
pub(super) fn env_file_vars(
    files: &[PathBuf],
    engine: &mut Option<Engine>,
    doing: &str,
) -> Result<Vec<Var>> {
    // Every file is read and every reference parsed before the store is
    // opened (once, and only if a reference needs it).
    let mut written = Vec::new();
    for file in files {
        for entry in read_env_file(file)?.entries {
            let at = format!("{}:{}", file.display(), entry.line);
            let reference = refs::looks_like(entry.value.expose())
                .then(|| refs::parse(entry.value.expose()))
                .transpose()
                .map_err(|e| e.context(format!("{at} {}: bad reference", entry.key)))?;
            written.push((at, entry, reference));
        }
    }
    let resolver = if written.iter().any(|(_, _, r)| r.is_some()) {
        let engine = match engine {
            Some(e) => e,
            None => engine.insert(Engine::load()?),
        };
        Some(refs::Resolver::new(&engine.store, &engine.paths))
    } else {
        None
    };
    let mut vars: Vec<Var> = Vec::new();
    let mut misses = Vec::new();
    for (at, entry, reference) in written {
        let var = match (reference, &resolver) {
            (Some(reference), Some(resolver)) => match resolver.resolve(&reference)? {
                Ok((value, origin)) => Var {
                    name: entry.key,
                    origin: format!("{reference} from {origin}"),
                    value,
                },
                Err(u) => {
                    misses.push((format!("{at} {}", entry.key), u));
                    continue;
                }
            },
            _ => Var {
                name: entry.key,
                origin: format!("{at} (literal)"),
                value: entry.value,
            },
        };
        overlay(&mut vars, [var]);
    }
    if !misses.is_empty() {
        return Err(refs::unresolved_error(&misses, doing));
    }
    Ok(vars)
}

/// The variables of the project's manifest (`path`, else the one found
/// from the current directory): each declared secret by its name, a
/// required one generated on first use. An optional one with no value is
/// left out with a note; any other miss is named, and nothing is done.
pub(super) fn manifest_vars(
    path: Option<&std::path::Path>,
    engine: &mut Option<Engine>,
    doing: &str,
) -> Result<Vec<Var>> {
    let manifest = crate::manifest::load(path)?;
    let engine = match engine {
        Some(e) => e,
        None => engine.insert(Engine::load()?),
    };
    let resolver = refs::Resolver::new(&engine.store, &engine.paths);
    let mut vars = Vec::new();
    let mut misses = Vec::new();
    for decl in &manifest.secrets {
        let reference = refs::Reference::Manifest(decl.name.clone());
        match resolver.resolve(&reference)? {
            Ok((value, origin)) => vars.push(Var {
                name: decl.name.clone(),
                value,
                origin: origin.to_string(),
            }),
            Err(_) if !decl.required => super::notes(&[format!(
                "{} left out: it is optional and has no value",
                decl.name
            )]),
            Err(u) => misses.push((
                format!("{}:{} {}", manifest.path.display(), decl.line, decl.name),
                u,
            )),
        }
    }
    if !misses.is_empty() {
        return Err(refs::unresolved_error(&misses, doing));
    }
    Ok(vars)
}

/// `ov run --agent`: the agent reads the secrets and starts the command; a
/// machine key given here only signs the request.
fn run_via_agent(a: RunArgs) -> Result<i32> {
    let shown_app = a.app.as_deref().unwrap_or("APP");
    if a.app.is_none() && a.env != DEFAULT_ENV {
        return Err(with_app(
            OvError::usage("--env needs --app: without both the agent's own are used"),
            &a.env,
            &format!("ov run --agent --app APP --env {} -- …", a.env),
        ));
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

/// The hints for a forgotten `--app`: the command line as typed with
/// `--app A` after `run`, for each app that has `env` here (a bundle or a
/// registered key); `template` where none does, or the line is not text.
fn with_app(e: OvError, env: &str, template: &str) -> OvError {
    const MOST: usize = 3;
    let apps = Paths::from_env()
        .map(|p| mk::apps_with(&p, env))
        .unwrap_or_default();
    let typed: Option<Vec<String>> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string().ok())
        .collect();
    let at = typed
        .as_ref()
        .and_then(|t| t.iter().position(|a| a == "run"));
    let (Some(typed), Some(at), false) = (typed, at, apps.is_empty()) else {
        return e.hint(template);
    };
    let q = |s: &str| ov_plugin_support::shell_quote(std::path::Path::new(s));
    let mut e = e;
    for app in apps.iter().take(MOST) {
        let mut words = vec!["ov".to_owned()];
        words.extend(typed[..=at].iter().map(|w| q(w)));
        words.extend(["--app".to_owned(), q(app)]);
        words.extend(typed[at + 1..].iter().map(|w| q(w)));
        e = e.hint(words.join(" "));
    }
    if apps.len() > MOST {
        e = e.hint(format!(
            "ov auth machine-key list   # {} more apps",
            apps.len() - MOST
        ));
    }
    e
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
    let mut line = "ov run".to_owned();
    if let Some(app) = &a.app {
        line.push_str(&format!(" --app {app} --env {env}"));
    }
    if let Some(k) = &a.machine_key {
        line.push_str(&format!(" --machine-key {}", q(k.as_os_str())));
    }
    if let Some(b) = &a.bundle {
        line.push_str(&format!(" --bundle {}", q(b.as_os_str())));
    }
    match &a.secrets {
        Some(names) => line.push_str(&format!(" --secrets {}", names.join(","))),
        None if a.app.is_some() => line.push_str(" --all"),
        None => {}
    }
    for f in &a.env_files {
        line.push_str(&format!(" --env-file {}", q(f.as_os_str())));
    }
    if a.secrets_dir {
        line.push_str(" --secrets-dir");
    }
    if a.mask {
        line.push_str(" --mask");
    }
    line.push_str(" --");
    for (i, arg) in a.command.iter().enumerate() {
        line.push(' ');
        line.push_str(&q(if i == 0 { prog.unwrap_or(arg) } else { arg }));
    }
    line
}
