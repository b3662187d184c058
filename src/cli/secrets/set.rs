//! `ov secrets set S K [VALUE]` and `--app A --env E NAME`

use clap::Args;

use ov_plugin_api::{EntryRef, Secret};

use crate::cli::{Engine, warn};
use crate::error::{OvError, Result};
use crate::prompt;
use crate::store::{random_hex, validate_entry, validate_value};

use super::*;

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Service, e.g. ov/vnc or myapp/prod (with --app: the secret's NAME)
    #[arg(add = crate::cli::complete::service())]
    service: String,
    /// Key within the service (with --app: the VALUE)
    #[arg(add = crate::cli::complete::key())]
    key: Option<String>,
    /// The value; better left out (it shows up in shell history and ps)
    value: Option<String>,
    #[command(flatten)]
    app: AppFlags,
    /// Generate 16 random bytes as 32 hex characters, store and print them
    #[arg(long, conflicts_with = "value")]
    generate: bool,
    /// Write to this backend, not the one secret_backend or the chain picks (see ov plugins list)
    #[arg(long, value_name = "BACKEND", add = crate::cli::complete::backend())]
    backend: Option<String>,
}

pub(super) fn set(engine: &Engine, a: SetArgs) -> Result<i32> {
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
    } else {
        value_to_store(
            given,
            &format!("Value for {} {}: ", entry.service, entry.key),
        )?
    };
    validate_value(&value)?;
    let written = match &a.backend {
        Some(name) => engine.store.set_on(name, &entry, &value)?,
        None => engine.store.set(&entry, &value)?,
    };
    report_written(engine, &entry, &written);
    resealed(engine, &entry.service)?;
    if a.generate {
        print_value(&value)?;
    }
    Ok(0)
}

/// The value a `set` stores: VALUE from the command line (hidden from
/// ps, with a warning), else asked twice on a terminal, else all of stdin.
pub(crate) fn value_to_store(given: Option<String>, prompt_text: &str) -> Result<Secret> {
    if let Some(v) = given {
        crate::cmdline::hide(&v);
        if !crate::cli::quiet() {
            warn(
                "a value given on the command line was visible in ps until ov hid it, and stays in your shell history; leave it out to be prompted",
            );
        }
        Ok(Secret::new(v))
    } else if prompt::stdin_is_tty() {
        prompt::ask_hidden_twice(prompt_text)
    } else {
        prompt::read_stdin_value()
    }
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
