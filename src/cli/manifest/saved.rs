//! Values kept outside the store: `backup`, `backups`, `restore`,
//! `export`, `import`.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::cli::{Engine, outln, warn};
use crate::error::{EXIT_ERROR, Result};
use crate::manifest::backup::{self, Change};
use crate::manifest::{Kind, Manifest};
use crate::manifest::{resolve, transfer};

use super::{Tag, confirm, progress, report_writes, say, tagged};

/// The first backup made the key: say where it is and what it is for.
pub(super) fn new_key_warning(engine: &Engine, key: &Path) {
    warn(&format!(
        "made a new backup key at {}; keep a copy off this machine: without it no backup opens",
        engine.paths.tilde(key)
    ));
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Added to the timestamp in the backup's name, e.g. before-upgrade
    suffix: Option<String>,
}

pub(super) fn backup(engine: &Engine, m: &Manifest, a: &BackupArgs) -> Result<i32> {
    let made = backup::backup(&engine.paths, &engine.store, m, a.suffix.as_deref())?;
    say(
        Tag::Success,
        &format!(
            "Secrets backed up to: {} ({} value{})",
            engine.paths.tilde(&made.path),
            made.entries,
            if made.entries == 1 { "" } else { "s" }
        ),
    )?;
    if let Some(key) = made.new_key {
        new_key_warning(engine, &key);
    }
    Ok(0)
}

pub(super) fn backups(engine: &Engine, m: &Manifest) -> Result<i32> {
    let list = backup::list(&engine.paths, &m.service)?;
    if list.is_empty() {
        eprintln!(
            "no backups of {} yet in {}",
            m.service,
            engine.paths.tilde(&backup::dir(&engine.paths, &m.service))
        );
        eprintln!("hint: ov manifest backup");
        return Ok(0);
    }
    for b in list {
        let when: chrono::DateTime<chrono::Utc> = b.modified.into();
        outln!("{}  {}", b.name, when.format("%Y-%m-%d %H:%M:%S UTC"));
    }
    Ok(0)
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A backup's name as `ov manifest backups` lists it, or its path
    backup: String,
    /// Do not ask (needed when there is no terminal)
    #[arg(long)]
    yes: bool,
}

/// The manifest's name for an entry, else `service/key`.
fn name_of(m: &Manifest, entry: &ov_plugin_api::EntryRef) -> String {
    m.secrets
        .iter()
        .find_map(|d| {
            if &d.entry == entry {
                Some(d.name.clone())
            } else if d.password_entry().as_ref() == Some(entry) {
                Some(format!("{} (password)", d.name))
            } else {
                None
            }
        })
        .unwrap_or_else(|| entry.to_string())
}

pub(super) fn restore(engine: &Engine, m: &Manifest, a: &RestoreArgs) -> Result<i32> {
    let path = backup::find(&engine.paths, &m.service, &a.backup)?;
    let snap = backup::open(&engine.paths, &path, &m.service)?;
    let plan = backup::plan(&engine.store, &snap)?;
    say(
        Tag::Info,
        &format!(
            "Backup {} of {}, made {}:",
            engine.paths.tilde(&path),
            snap.service,
            snap.created
        ),
    )?;
    let mut changes = 0;
    for (saved, change) in &plan {
        let what = match change {
            Change::Unchanged => "unchanged",
            Change::Changed => "will be restored (the stored value differs)",
            Change::Added => "will be restored (not stored now)",
        };
        if *change != Change::Unchanged {
            changes += 1;
        }
        outln!("  {}: {what}", name_of(m, &saved.entry()));
    }
    // Secrets that have a value now and none in the backup stay as they are.
    for d in &m.secrets {
        let in_backup = snap.entries.iter().any(|s| s.entry() == d.entry);
        if !in_backup && matches!(resolve::current(&engine.store, d), Ok(Some(_))) {
            outln!("  {}: kept (not in the backup)", d.name);
        }
    }
    if changes == 0 {
        say(
            Tag::Success,
            "Nothing to restore: the store holds what the backup holds",
        )?;
        return Ok(0);
    }
    confirm(
        a.yes,
        &format!(
            "Restore {changes} value{}?",
            if changes == 1 { "" } else { "s" }
        ),
        &format!(
            "ov manifest restore {} --yes",
            ov_plugin_support::shell_quote(Path::new(&a.backup))
        ),
    )?;
    // What is replaced is kept too.
    let made = backup::backup(&engine.paths, &engine.store, m, Some("before-restore"))?;
    say(
        Tag::Success,
        &format!("Secrets backed up to: {}", engine.paths.tilde(&made.path)),
    )?;
    let mut writes = Vec::new();
    let mut services = Vec::new();
    for (saved, change) in &plan {
        if *change == Change::Unchanged {
            continue;
        }
        let entry = saved.entry();
        writes.push(engine.store.set(&entry, &saved.value)?);
        services.push(entry.service.clone());
    }
    report_writes(engine, &writes, &services)?;
    say(
        Tag::Success,
        &format!(
            "Restored {changes} value{}",
            if changes == 1 { "" } else { "s" }
        ),
    )?;
    Ok(0)
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The JSON file to write
    file: PathBuf,
    /// Include every value in plaintext (the file is made 0600)
    #[arg(long)]
    with_values: bool,
    /// Replace FILE if it exists
    #[arg(long)]
    force: bool,
}

pub(super) fn export(engine: &Engine, m: &Manifest, a: &ExportArgs) -> Result<i32> {
    let e = transfer::export(&engine.store, m, a.with_values)?;
    transfer::write(&a.file, &e, a.with_values, a.force)?;
    if a.with_values {
        let n = e.secrets.values().filter(|s| s.value.is_some()).count();
        warn(&format!(
            "{} holds {n} secret value{} of {} IN PLAINTEXT (mode 0600): never commit it, share it only encrypted, delete it once it served",
            a.file.display(),
            if n == 1 { "" } else { "s" },
            m.service
        ));
    }
    say(
        Tag::Success,
        &format!(
            "Exported {} secrets to {}{}",
            e.secrets.len(),
            a.file.display(),
            if a.with_values {
                " with their values"
            } else {
                " (metadata only)"
            }
        ),
    )?;
    Ok(0)
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A file `ov manifest export` wrote, with or without values
    file: PathBuf,
    /// Show what would be stored, and store nothing
    #[arg(long)]
    dry_run: bool,
}

pub(super) fn import(engine: &Engine, m: &Manifest, a: &ImportArgs) -> Result<i32> {
    let file = transfer::read(&a.file)?;
    if file.service != m.service {
        crate::cli::notes(&[format!(
            "{} was exported from {}; its values go to this manifest's secrets of the same names",
            a.file.display(),
            file.service
        )]);
    }
    let (mut imported, mut skipped, mut errors) = (0, 0, 0);
    let mut writes = Vec::new();
    let mut services = Vec::new();
    let bar = progress(file.secrets.len());
    for (name, x) in &file.secrets {
        bar.inc(1);
        let Some(d) = m.secrets.iter().find(|d| &d.name == name) else {
            skipped += 1;
            bar.suspend(|| {
                say(
                    Tag::Warning,
                    &format!("{name}: not in the manifest, skipped"),
                )
            })?;
            continue;
        };
        let Some(value) = &x.value else {
            skipped += 1;
            bar.suspend(|| say(Tag::Skip, &format!("{name}: no value in the file")))?;
            continue;
        };
        if let Some(why) = d.kind.check(value.expose()) {
            errors += 1;
            bar.suspend(|| say(Tag::Error, &format!("{name}: the value is {why}")))?;
            continue;
        }
        let now = resolve::current(&engine.store, d)?;
        let mut pairs = vec![(d.entry.clone(), value)];
        if let (Kind::Htpasswd(_), Some(pw), Some(e)) = (&d.kind, &x.password, d.password_entry()) {
            pairs.push((e, pw));
        }
        if now.as_ref().is_some_and(|v| v.expose() == value.expose()) {
            skipped += 1;
            bar.suspend(|| say(Tag::Skip, &format!("{name}: unchanged")))?;
            continue;
        }
        let line = if a.dry_run {
            tagged(
                Tag::Info,
                &format!(
                    "{name}: would be {}",
                    if now.is_some() { "replaced" } else { "stored" }
                ),
            )
        } else {
            for (entry, v) in &pairs {
                writes.push(engine.store.set(entry, v)?);
                services.push(entry.service.clone());
            }
            tagged(Tag::Success, &format!("{name}: Imported"))
        };
        imported += 1;
        bar.suspend(|| -> Result<()> {
            outln!("{line}");
            Ok(())
        })?;
    }
    bar.finish_and_clear();
    report_writes(engine, &writes, &services)?;
    outln!();
    let verb = if a.dry_run { "to import" } else { "imported" };
    outln!("Summary: {imported} {verb}, {skipped} skipped, {errors} errors");
    if a.dry_run {
        eprintln!("dry run: nothing was stored");
    }
    Ok(if errors > 0 { EXIT_ERROR } else { 0 })
}
