//! `ov secrets delete S K [--from B]`

use clap::Args;

use crate::cli::{Engine, warn};
use crate::env_backend::variable_name;
use crate::error::{OvError, Result};
use crate::store::Deleted;

use super::*;

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    entry: EntryArgs,
    /// Delete only this backend's copy (a plaintext one left behind, say)
    #[arg(long, value_name = "BACKEND")]
    from: Option<String>,
}

/// Backend names for a sentence: `keyring`, `keyring, kdbx`.
fn names_of(backends: &[(String, String)]) -> String {
    backends
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn delete(engine: &Engine, a: &DeleteArgs) -> Result<i32> {
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
    crate::cli::info(&format!(
        "deleted {} {} from {}",
        entry.service,
        entry.key,
        removed.join(", ")
    ));
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
    crate::cli::info(&format!(
        "deleted {} {} from {from}",
        entry.service, entry.key
    ));
    // Say what answers now, so nobody mistakes this for deleting the secret.
    crate::cli::notes(&[match engine.store.get(&entry)? {
        Ok((_, source)) => format!(
            "{} {} is still stored in {}",
            entry.service, entry.key, source.backend
        ),
        Err(_) => format!("no backend holds {} {} any more", entry.service, entry.key),
    }]);
    resealed(engine, &entry.service)?;
    Ok(0)
}
