//! `ov secrets import FILE --app A --env E` — a `.env` file into an app's
//! secrets, through the one `.env` parser.

use crate::cli::outln;
use zeroize::Zeroizing;

use super::import_store::{Tally, report_first_write};
use super::{ImportArgs, resealed};
use crate::cli::Engine;
use crate::cli::warn;
use crate::dotenv;
use crate::error::{OvError, Result};
use crate::import::{Importer, Options, Outcome};
use crate::store::validate_entry;

pub fn run(engine: &Engine, a: &ImportArgs) -> Result<i32> {
    let (Some(app), env) = (a.app.app.as_deref(), a.app.env.as_str()) else {
        return Err(OvError::usage("importing a .env file needs --app")
            .hint("ov secrets import .env --app myapp --env production"));
    };
    let service = a.app.service()?.unwrap_or_default();
    let Some(file) = &a.file else {
        return Err(OvError::usage("--app needs the .env FILE to import")
            .hint(format!("ov secrets import .env --app {app} --env {env}")));
    };
    let text = Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
        OvError::new(format!("cannot read {}: {e}", file.display()))
            .hint(format!("ls -l {}", ov_plugin_support::shell_quote(file)))
    })?);
    let parsed = match dotenv::parse(&text) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors {
                outln!("✗ {e}");
            }
            let fix = format!(
                "fix those lines in {}, then: ov secrets import {} --app {app} --env {env} --dry-run",
                file.display(),
                ov_plugin_support::shell_quote(file)
            );
            return Err(OvError::new(format!(
                "{} has {} line(s) ov cannot parse; nothing was imported",
                file.display(),
                errors.len()
            ))
            .hint(fix));
        }
    };
    for w in &parsed.warnings {
        warn(w);
    }
    let target = engine.store.write_target()?;
    let dry = a.dry_run;
    let mut imp = Importer::new(
        &engine.store,
        target,
        Options {
            dry_run: dry,
            force: a.force,
        },
    );
    let mut tally = Tally::default();
    for e in &parsed.entries {
        let entry = validate_entry(&service, &e.key)?;
        let outcome = imp.put(&entry, &e.value)?;
        match (&outcome, dry) {
            (Outcome::Imported, false) => outln!("✓ {}", e.key),
            _ => outln!(
                "{} {:<30} {} (line {})",
                outcome.mark(dry),
                e.key,
                outcome.describe(dry),
                e.line
            ),
        }
        tally.add(&outcome);
    }
    report_first_write(&imp);
    let total = tally.total;
    let done = tally.done;
    let retry = format!(
        "ov secrets import {} --app {app} --env {env}",
        ov_plugin_support::shell_quote(file)
    );
    if dry {
        outln!("Would import {done}/{total} secret(s) into {app}/{env}");
        outln!("Nothing was stored. To import: {retry}");
        return tally.finish(&retry);
    }
    if !imp.touched.is_empty() {
        resealed(engine, &service)?;
    }
    outln!("Imported {done}/{total} secret(s) into {app}/{env}");
    let names: Vec<&str> = parsed.entries.iter().map(|e| e.key.as_str()).collect();
    let key = format!("/etc/ov/{app}.key");
    outln!(
        "\nNext steps (docs/run.md walks through each):\n\
         1. Verify:   ov secrets list --app {app} --env {env}   # expect {total} name(s)\n\
         2. Key:      ov auth derive-machine-key --out {key} --app {app} --env {env}\n\
         3. Cut over: ov run --app {app} --env {env} --machine-key {key} --secrets {} -- /path/to/server\n\
         4. Reboot-test the service, then retire the file: mv {f} {f}.bak",
        names.join(","),
        f = ov_plugin_support::shell_quote(file),
    );
    tally.finish(&retry)
}
