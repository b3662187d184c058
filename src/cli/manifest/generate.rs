//! `ov manifest generate` and `ov manifest rotate`.

use clap::Args;

use crate::cli::{Engine, outln};
use crate::error::{EXIT_ERROR, OvError, Result};
use crate::manifest::resolve::{self, Status, status};
use crate::manifest::{Kind, Manifest, backup};

use super::{Tag, confirm, progress, report_writes, say, tagged};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Only these secrets (optional ones are generated only when named)
    #[arg(value_name = "NAME", add = crate::cli::complete::manifest_secret())]
    names: Vec<String>,
    /// Replace values that are already set (a backup is made first)
    #[arg(long)]
    force: bool,
}

pub(super) fn generate(engine: &Engine, m: &Manifest, a: &GenerateArgs) -> Result<i32> {
    let decls = m.select(&a.names)?;
    say(Tag::Info, "Generating secrets...")?;
    outln!();
    if a.force {
        backed_up(engine, m, "before-generate")?;
    }
    let (mut generated, mut skipped, mut errors) = (0, 0, 0);
    let mut writes = Vec::new();
    let mut services = Vec::new();
    let bar = progress(decls.len());
    // One lock across the run, the one `get` takes: a value is never
    // generated twice, by this run and a `get` at the same time.
    ov_plugin_support::with_lock(&engine.paths.ensure_lock(), || -> Result<()> {
        for d in &decls {
            bar.set_message(d.name.clone());
            let line = if !d.kind.generated() {
                skipped += 1;
                tagged(
                    Tag::Skip,
                    &format!("{}: Manual configuration required", d.name),
                )
            } else {
                let (st, _) = status(&engine.store, d)?;
                let named = a.names.contains(&d.name);
                if let Status::Unknown(why, _) = &st {
                    errors += 1;
                    let line = tagged(Tag::Error, &format!("{}: {why}", d.name));
                    bar.suspend(|| -> Result<()> {
                        outln!("{line}");
                        Ok(())
                    })?;
                    bar.inc(1);
                    continue;
                }
                let unset = matches!(st, Status::Missing | Status::Placeholder);
                if !a.force && !unset {
                    skipped += 1;
                    tagged(Tag::Skip, &format!("{}: Already set", d.name))
                } else if !d.required && !named && unset {
                    skipped += 1;
                    tagged(
                        Tag::Skip,
                        &format!(
                            "{}: Optional, not generated (ov manifest generate {} makes one)",
                            d.name, d.name
                        ),
                    )
                } else {
                    match resolve::generate(&engine.store, d) {
                        Ok((_, w)) => {
                            generated += 1;
                            writes.push(w);
                            services.push(d.entry.service.clone());
                            tagged(Tag::Success, &format!("{}: Generated successfully", d.name))
                        }
                        Err(e) => {
                            errors += 1;
                            tagged(Tag::Error, &format!("{}: {}", d.name, e.message))
                        }
                    }
                }
            };
            bar.suspend(|| -> Result<()> {
                outln!("{line}");
                Ok(())
            })?;
            bar.inc(1);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    report_writes(engine, &writes, &services)?;
    outln!();
    outln!("Summary: {generated} generated, {skipped} skipped, {errors} errors");
    if errors > 0 {
        say(Tag::Error, "Some secrets could not be generated")?;
        return Ok(EXIT_ERROR);
    }
    say(Tag::Success, "Secrets generation complete!")?;
    Ok(0)
}

/// Back up the manifest's values, saying where to.
fn backed_up(engine: &Engine, m: &Manifest, suffix: &str) -> Result<()> {
    let made = backup::backup(&engine.paths, &engine.store, m, Some(suffix))?;
    say(
        Tag::Success,
        &format!("Secrets backed up to: {}", engine.paths.tilde(&made.path)),
    )?;
    if let Some(key) = made.new_key {
        super::saved::new_key_warning(engine, &key);
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The secret to give a new value
    #[arg(add = crate::cli::complete::manifest_secret())]
    name: String,
    /// Do not ask (needed when there is no terminal)
    #[arg(long)]
    yes: bool,
}

pub(super) fn rotate(engine: &Engine, m: &Manifest, a: &RotateArgs) -> Result<i32> {
    let d = m.get(&a.name)?;
    if d.kind == Kind::Skip {
        return Err(OvError::usage(format!(
            "{} is set by hand (type skip); ov cannot make a new value for it",
            d.name
        ))
        .hint(format!(
            "ov manifest set {}   # once the service that issues it made a new one",
            d.name
        )));
    }
    say(Tag::Warning, &format!("Rotating secret: {}", d.name))?;
    say(
        Tag::Warning,
        "This will generate a new value and replace the stored one",
    )?;
    confirm(
        a.yes,
        "Continue?",
        &format!("ov manifest rotate {} --yes", d.name),
    )?;
    outln!();
    say(Tag::Info, "Backing up old value...")?;
    backed_up(engine, m, &format!("before-rotate-{}", d.name))?;
    let (_, w) = ov_plugin_support::with_lock(&engine.paths.ensure_lock(), || {
        resolve::generate(&engine.store, d)
    })?;
    report_writes(engine, &[w], std::slice::from_ref(&d.entry.service))?;
    say(Tag::Success, &format!("{}: Generated successfully", d.name))?;
    say(Tag::Success, "Secret rotated successfully")?;
    // Every secret stored under the same entry changed too.
    let mut stacks: Vec<String> = Vec::new();
    for s in m
        .secrets
        .iter()
        .filter(|o| o.entry == d.entry)
        .flat_map(|o| &o.stacks)
    {
        if !stacks.contains(s) {
            stacks.push(s.clone());
        }
    }
    if stacks.is_empty() {
        return Ok(0);
    }
    say(Tag::Warning, "Remember to restart affected services!")?;
    outln!();
    say(Tag::Info, "This secret is used by:")?;
    for s in &stacks {
        outln!("  - {s}");
    }
    outln!();
    say(Tag::Info, "Restart them with:")?;
    outln!("  {}", m.restart_command(&stacks));
    Ok(0)
}
