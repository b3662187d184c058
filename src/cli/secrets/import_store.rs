//! `ov secrets import [--from B] [--move]` (backend to backend) and
//! `ov secrets import --file BACKUP` (restore an export). The rule for what
//! is imported, kept or replaced is the engine's (`crate::import`); this
//! file prints it.

use crate::cli::outln;
use zeroize::Zeroizing;

use super::{ImportArgs, resealed};
use crate::cli::{Engine, warn};
use crate::error::{EXIT_ERROR, OvError, Result};
use crate::import::{Importer, Options, Outcome, backup_entries, parse_backup};

/// Counts for the summary line and the exit status.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) done: usize,
    pub(crate) total: usize,
    pub(crate) differs: usize,
    pub(crate) failed: usize,
}

impl Tally {
    pub(crate) fn add(&mut self, outcome: &Outcome) {
        self.total += 1;
        match outcome {
            o if o.counts() => self.done += 1,
            Outcome::Differs => self.differs += 1,
            _ => self.failed += 1,
        }
    }

    /// The exit status once the summary is printed: values that differ are
    /// an error naming `--force`, failures exit 1.
    pub(crate) fn finish(&self, retry: &str) -> Result<i32> {
        if self.differs > 0 {
            return Err(OvError::new(format!(
                "{} entr{} already stored with a different value; kept the stored value{}",
                self.differs,
                if self.differs == 1 { "y is" } else { "ies are" },
                if self.differs == 1 { "" } else { "s" },
            ))
            .hint(format!(
                "{retry} --dry-run --force   # lists what would be replaced"
            ))
            .hint(format!("{retry} --force")));
        }
        Ok(if self.failed > 0 { EXIT_ERROR } else { 0 })
    }
}

/// Say what the first write of an import said (plaintext, format notices)
/// once for the whole import, not per entry.
pub(crate) fn report_first_write(imp: &Importer<'_>) {
    if let Some(w) = &imp.first_write {
        crate::cli::notes(&w.notices);
        if w.plaintext {
            warn(&format!("{} stores values in plaintext", w.backend));
        }
    }
}

fn options(a: &ImportArgs) -> Options {
    Options {
        dry_run: a.dry_run,
        force: a.force,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "y" } else { "ies" }
}

/// `ov secrets import [--from B] [--move]`.
pub(crate) fn from_backends(engine: &Engine, a: &ImportArgs) -> Result<i32> {
    let store = &engine.store;
    let target = store.write_target()?;
    let sources = crate::import::sources(store, target, a.from.as_deref(), a.move_)?;
    if sources.is_empty() {
        eprintln!(
            "nothing to import: writes go to {} and no other backend can list its entries",
            target.desc.name
        );
        return Ok(0);
    }
    let dry = a.dry_run;
    let mut imp = Importer::new(store, target, options(a));
    let mut tally = Tally::default();
    for src in &sources {
        let entries = match store.list_in(src) {
            Ok(e) => e,
            Err(e) => {
                outln!(
                    "✗ {:<30} {} → {}  {}",
                    "(all)",
                    src.desc.name,
                    target.desc.name,
                    e.message
                );
                tally.failed += 1;
                continue;
            }
        };
        for entry in entries {
            let line = |mark: &str, what: &str| -> Result<()> {
                outln!(
                    "{mark} {:<30} {} → {}  {what}",
                    entry.to_string(),
                    src.desc.name,
                    target.desc.name
                );
                Ok(())
            };
            let value = match store.get_from(src, &entry) {
                Ok(Some(v)) => v,
                Ok(None) => {
                    line("✗", "vanished while importing")?;
                    tally.add(&Outcome::Failed(String::new()));
                    continue;
                }
                Err(e) => {
                    line("✗", &e.message)?;
                    tally.add(&Outcome::Failed(String::new()));
                    continue;
                }
            };
            let mut outcome = imp.put(&entry, &value)?;
            let mut what = outcome.describe(dry);
            if a.move_ && outcome.counts() {
                let src_name = &src.desc.name;
                if dry {
                    what.push_str(&format!("; then would delete it from {src_name}"));
                } else {
                    match imp.take_from(src, &entry, &value)? {
                        Ok(()) => what.push_str(&format!("; deleted from {src_name}")),
                        Err(why) => {
                            outcome = Outcome::Failed(why);
                            what = outcome.describe(dry);
                        }
                    }
                }
            }
            line(outcome.mark(dry), &what)?;
            tally.add(&outcome);
        }
    }
    if a.move_ && !dry {
        // What the sources hold now: a moved service is no longer theirs,
        // and must not block a later export while they are unreachable.
        for src in &sources {
            let _ = store.list_in(src);
        }
    }
    wrap_up(engine, &imp, &tally, dry, &target.desc.name)?;
    let mut retry = "ov secrets import".to_owned();
    if let Some(f) = &a.from {
        retry.push_str(&format!(" --from {f}"));
    }
    if a.move_ {
        retry.push_str(" --move");
    }
    tally.finish(&retry)
}

/// `ov secrets import --file BACKUP`: an export back into the store.
pub(crate) fn restore(engine: &Engine, a: &ImportArgs, file: &std::path::Path) -> Result<i32> {
    let quoted = ov_plugin_support::shell_quote(file);
    let text = Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
        OvError::new(format!("cannot read {}: {e}", file.display())).hint(format!("ls -l {quoted}"))
    })?);
    let backup = parse_backup(&text, &file.display().to_string())?;
    let target = engine.store.write_target()?;
    let dry = a.dry_run;
    let mut imp = Importer::new(&engine.store, target, options(a));
    let mut tally = Tally::default();
    for (entry, value) in backup_entries(&backup) {
        let (label, outcome) = match entry {
            Ok(entry) => (entry.to_string(), imp.put(&entry, value)?),
            Err(why) => (String::from("(name)"), Outcome::Failed(why)),
        };
        outln!(
            "{} {label:<30} {}",
            outcome.mark(dry),
            outcome.describe(dry)
        );
        tally.add(&outcome);
    }
    wrap_up(engine, &imp, &tally, dry, &target.desc.name)?;
    tally.finish(&format!("ov secrets import --file {quoted}"))
}

/// The end of every import: the first write's notices, the re-seals, and
/// the count.
fn wrap_up(
    engine: &Engine,
    imp: &Importer<'_>,
    tally: &Tally,
    dry: bool,
    target: &str,
) -> Result<()> {
    report_first_write(imp);
    for service in &imp.touched {
        resealed(engine, service)?;
    }
    outln!(
        "{} {}/{} entr{} into {}",
        if dry { "Would import" } else { "Imported" },
        tally.done,
        tally.total,
        plural(tally.total),
        target
    );
    Ok(())
}
