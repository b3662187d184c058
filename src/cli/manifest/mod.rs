//! `ov manifest …` (`ov m`): a project's secrets, as `ov-secrets.toml`
//! declares them. This module holds the command tree and what the
//! commands' output has in common: the tagged lines, the summary, the
//! progress bar.

mod generate;
mod saved;
mod status;
mod values;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::cli::{Engine, JsonArgs, color_stdout, outln};
use crate::error::{OvError, Result};
use crate::manifest;
use crate::store::Written;

#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// The manifest to use (default: ov-secrets.toml in the current directory or the nearest one above)
    #[arg(long, global = true, value_name = "PATH")]
    manifest: Option<PathBuf>,
    #[command(subcommand)]
    command: ManifestCommand,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
enum ManifestCommand {
    /// Generate the secrets that have no value (with --force, the set ones too, after a backup)
    Generate(generate::GenerateArgs),
    /// Check every secret: valid, missing, placeholder, invalid or manual; exit 1 when a required one is missing, a placeholder or invalid
    Validate(JsonArgs),
    /// The secrets grouped by stack, with status and type (never values)
    List(status::ListArgs),
    /// Print a secret's value, generating a required one on first use
    Get(values::GetArgs),
    /// Store a secret's value, checked against its type; without VALUE, prompt on a terminal or read stdin
    Set(values::SetArgs),
    /// Give a secret a new value, after a backup, and say which stacks to restart
    Rotate(generate::RotateArgs),
    /// Save an encrypted snapshot of the manifest's values
    Backup(saved::BackupArgs),
    /// List the backups of this manifest's service, newest first
    Backups,
    /// Put back the values a backup holds, after showing what changes
    Restore(saved::RestoreArgs),
    /// Write the manifest's secrets to a JSON file: metadata, or with --with-values everything
    Export(saved::ExportArgs),
    /// Store the values an export holds (or show what would change with --dry-run)
    Import(saved::ImportArgs),
}

pub fn run(args: ManifestArgs) -> Result<i32> {
    let m = manifest::load(args.manifest.as_deref())?;
    let engine = Engine::load()?;
    match args.command {
        ManifestCommand::Generate(a) => generate::generate(&engine, &m, &a),
        ManifestCommand::Validate(a) => status::validate(&engine, &m, a.json),
        ManifestCommand::List(a) => status::list(&engine, &m, &a),
        ManifestCommand::Get(a) => values::get(&engine, &m, &a),
        ManifestCommand::Set(a) => values::set(&engine, &m, a),
        ManifestCommand::Rotate(a) => generate::rotate(&engine, &m, &a),
        ManifestCommand::Backup(a) => saved::backup(&engine, &m, &a),
        ManifestCommand::Backups => saved::backups(&engine, &m),
        ManifestCommand::Restore(a) => saved::restore(&engine, &m, &a),
        ManifestCommand::Export(a) => saved::export(&engine, &m, &a),
        ManifestCommand::Import(a) => saved::import(&engine, &m, &a),
    }
}

/// The tag in front of a line of output, as the Kompose scripts print it.
#[derive(Debug, Clone, Copy)]
enum Tag {
    Info,
    Success,
    Skip,
    Warning,
    Error,
}

/// `[TAG] text`, the tag coloured on a terminal without NO_COLOR.
fn tagged(tag: Tag, text: &str) -> String {
    let (label, style) = match tag {
        Tag::Info => ("[INFO]", console::Style::new().blue()),
        Tag::Success => ("[SUCCESS]", console::Style::new().green()),
        Tag::Skip => ("[SKIP]", console::Style::new().cyan()),
        Tag::Warning => ("[WARNING]", console::Style::new().yellow()),
        Tag::Error => ("[ERROR]", console::Style::new().red()),
    };
    format!(
        "{} {text}",
        style.force_styling(color_stdout()).apply_to(label)
    )
}

fn say(tag: Tag, text: &str) -> Result<()> {
    outln!("{}", tagged(tag, text));
    Ok(())
}

/// More secrets than this get a progress bar (on a terminal).
const PROGRESS_OVER: usize = 5;

/// A progress bar on stderr for `n` steps: drawn only when stderr is a
/// terminal and there are more than a handful.
fn progress(n: usize) -> indicatif::ProgressBar {
    if n <= PROGRESS_OVER || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(u64::try_from(n).unwrap_or(u64::MAX));
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}

/// What several writes have to say, said once: the notices, a warning
/// when values went to a plaintext backend, a re-seal of each bundle.
fn report_writes(engine: &Engine, writes: &[Written], services: &[String]) -> Result<()> {
    let mut notices: Vec<&String> = writes.iter().flat_map(|w| &w.notices).collect();
    notices.sort();
    notices.dedup();
    crate::cli::notes(&notices);
    if let Some(w) = writes.iter().find(|w| w.plaintext) {
        let count = writes.iter().filter(|w| w.plaintext).count();
        crate::cli::warn(&format!(
            "{count} value{} stored in plaintext{}; an encrypted backend keeps them safer",
            if count == 1 { " is" } else { "s are" },
            w.location
                .as_deref()
                .map(|l| format!(" in {}", engine.paths.tilde(std::path::Path::new(l))))
                .unwrap_or_default()
        ));
        eprintln!(
            "hint: {}",
            crate::cli::secrets::move_to_encrypted(engine, &w.backend)
        );
    }
    let mut services = services.to_vec();
    services.sort();
    services.dedup();
    for s in services {
        crate::cli::secrets::resealed(engine, &s)?;
    }
    Ok(())
}

/// Ask before a change that cannot be taken back: on a terminal a typed
/// `yes`; without one, only `--yes` goes ahead.
fn confirm(yes: bool, question: &str, with_yes: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !crate::prompt::stdin_is_tty() {
        return Err(
            OvError::usage("there is no terminal to confirm on; nothing was changed")
                .hint(with_yes.to_owned()),
        );
    }
    if crate::prompt::ask_typed_yes(question)? {
        Ok(())
    } else {
        Err(OvError::new("not confirmed; nothing was changed"))
    }
}
