//! `ov secrets import FILE --app A --env E` — a `.env` file into an app's
//! secrets, through the one `.env` parser.

use zeroize::Zeroizing;

use crate::cli::Engine;
use crate::cli::secrets::{ImportArgs, resealed};
use crate::cli::warn;
use crate::dotenv;
use crate::error::{EXIT_ERROR, OvError, Result};
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
                println!("✗ {e}");
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
    let total = parsed.entries.len();
    let (mut done, mut failed) = (0usize, 0usize);
    for e in &parsed.entries {
        let entry = validate_entry(&service, &e.key)?;
        if a.dry_run {
            println!("✓ {:<30} would import (line {})", e.key, e.line);
            done += 1;
            continue;
        }
        match engine.store.set(&entry, &e.value) {
            Ok(_) => {
                println!("✓ {}", e.key);
                done += 1;
            }
            Err(err) => {
                println!("✗ {:<30} {}", e.key, err.message);
                failed += 1;
            }
        }
    }
    if a.dry_run {
        println!("Would import {done}/{total} secret(s) into {app}/{env}");
        println!(
            "Nothing was stored. To import: ov secrets import {} --app {app} --env {env}",
            ov_plugin_support::shell_quote(file)
        );
        return Ok(0);
    }
    if done > 0 {
        resealed(engine, &service)?;
    }
    println!("Imported {done}/{total} secret(s) into {app}/{env}");
    let names: Vec<&str> = parsed.entries.iter().map(|e| e.key.as_str()).collect();
    let key = format!("/etc/ov/{app}.key");
    println!(
        "\nNext steps (docs/run.md walks through each):\n\
         1. Verify:   ov secrets list --app {app} --env {env}   # expect {total} name(s)\n\
         2. Key:      ov auth derive-machine-key --out {key} --app {app} --env {env}\n\
         3. Cut over: ov run --app {app} --env {env} --machine-key {key} --secrets {} -- /path/to/server\n\
         4. Reboot-test the service, then retire the file: mv {f} {f}.bak",
        names.join(","),
        f = ov_plugin_support::shell_quote(file),
    );
    if failed > 0 {
        return Ok(EXIT_ERROR);
    }
    Ok(0)
}
