//! `ov manifest get` and `ov manifest set`.

use clap::Args;

use crate::cli::Engine;
use crate::cli::secrets::set::value_to_store;
use crate::cli::secrets::{print_value, report_written, resealed};
use crate::error::{OvError, Result};
use crate::manifest::resolve::{self, get_or_generate};
use crate::manifest::{Kind, Manifest};

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The secret, as the manifest names it
    #[arg(add = crate::cli::complete::manifest_secret())]
    name: String,
    /// For an htpasswd secret: the plaintext password, not the user:hash line
    #[arg(long)]
    password: bool,
}

pub(super) fn get(engine: &Engine, m: &Manifest, a: &GetArgs) -> Result<i32> {
    let d = m.get(&a.name)?;
    if a.password && !matches!(d.kind, Kind::Htpasswd(_)) {
        return Err(OvError::usage(format!(
            "{} is of type {}; only htpasswd secrets have a separate password",
            d.name, d.kind
        ))
        .hint(format!("ov manifest get {}", d.name)));
    }
    let (value, written) = get_or_generate(&engine.paths, &engine.store, d)?;
    if let Some(w) = &written {
        report_written(engine, &d.entry, w);
        resealed(engine, &d.entry.service)?;
    }
    if !a.password {
        print_value(&value)?;
        return Ok(0);
    }
    let entry = d
        .password_entry()
        .ok_or_else(|| OvError::new("no password entry"))?;
    match engine.store.get(&entry)? {
        Ok((pw, _)) => print_value(&pw)?,
        Err(_) => {
            return Err(OvError::new(format!(
                "the password behind {} is not stored (the line was set without it)",
                d.name
            ))
            .hint(format!(
                "ov manifest set {}   # type the password; ov makes the line from it",
                d.name
            )));
        }
    }
    Ok(0)
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The secret, as the manifest names it
    #[arg(add = crate::cli::complete::manifest_secret())]
    name: String,
    /// The value (for htpasswd: the password); better left out, it shows up in shell history and ps
    value: Option<String>,
}

pub(super) fn set(engine: &Engine, m: &Manifest, a: SetArgs) -> Result<i32> {
    let d = m.get(&a.name)?;
    let what = if matches!(d.kind, Kind::Htpasswd(_)) {
        "Password"
    } else {
        "Value"
    };
    let value = value_to_store(a.value, &format!("{what} for {}: ", d.name))?;
    let written = resolve::set(&engine.store, d, &value)?;
    report_written(engine, &d.entry, &written);
    resealed(engine, &d.entry.service)?;
    Ok(0)
}
