//! `ov podman` — podman secrets from the store, and the quadlet lines that
//! inject them.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::cli::{Engine, outln};
use crate::error::Result;
use crate::podman::{self, Macs, Podman};

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum PodmanCommand {
    /// Create a podman secret per variable (value on podman's stdin) and print the quadlet lines
    Provision(ProvisionArgs),
    /// Remove the podman secrets ov made that the sources no longer declare
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("from").required(true).multiple(true).args(["env_files", "manifest"])))]
pub struct Sources {
    /// A dotenv file whose values are literals or references (ov://SERVICE/KEY); repeatable
    #[arg(long = "env-file", value_name = "FILE")]
    env_files: Vec<PathBuf>,
    /// Every secret of the project's manifest (ov-secrets.toml here or above, or PATH)
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = "")]
    manifest: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    #[command(flatten)]
    sources: Sources,
    /// The start of every secret's name (the variable's name follows)
    #[arg(long, default_value = podman::DEFAULT_PREFIX)]
    prefix: String,
    /// Re-create the secrets whose value changed (others are kept)
    #[arg(long)]
    rotate: bool,
    /// Say what would be created or replaced, and change nothing
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    sources: Sources,
    /// The start of the names of the secrets to look at
    #[arg(long, default_value = podman::DEFAULT_PREFIX)]
    prefix: String,
    /// Say what would be removed, and remove nothing
    #[arg(long)]
    dry_run: bool,
}

impl Sources {
    /// The manifest's variables, then the env files' (a later one wins).
    pub(super) fn vars(
        &self,
        engine: &mut Option<Engine>,
        doing: &str,
    ) -> Result<Vec<super::run::Var>> {
        let mut vars = match &self.manifest {
            Some(p) => {
                let path = Some(p.as_path()).filter(|p| !p.as_os_str().is_empty());
                super::run::manifest_vars(path, engine, doing)?
            }
            None => Vec::new(),
        };
        super::run::overlay(
            &mut vars,
            super::run::env_file_vars(&self.env_files, engine, doing)?,
        );
        Ok(vars)
    }

    /// The sources, for a comment saying where something came from.
    pub(super) fn describe(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        if let Some(p) = &self.manifest {
            out.push(if p.as_os_str().is_empty() {
                "the project manifest".to_owned()
            } else {
                p.display().to_string()
            });
        }
        out.extend(self.env_files.iter().map(|f| f.display().to_string()));
        out.join(", ")
    }

    /// The names the sources declare, read without resolving anything.
    fn declared(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        if let Some(p) = &self.manifest {
            let path = Some(p.as_path()).filter(|p| !p.as_os_str().is_empty());
            names.extend(
                crate::manifest::load(path)?
                    .secrets
                    .into_iter()
                    .map(|d| d.name),
            );
        }
        for file in &self.env_files {
            let parsed = super::run::read_env_file(file)?;
            names.extend(parsed.entries.into_iter().map(|e| e.key));
        }
        Ok(names)
    }
}

pub fn run(cmd: PodmanCommand) -> Result<i32> {
    match cmd {
        PodmanCommand::Provision(a) => provision(a),
        PodmanCommand::Prune(a) => prune(a),
    }
}

fn provision(a: ProvisionArgs) -> Result<i32> {
    let prefix = &a.prefix;
    podman::validate_prefix(prefix)?;
    let podman = Podman::find()?;
    let mut engine = None;
    let vars = a
        .sources
        .vars(&mut engine, "no podman secret was changed")?;
    for v in &vars {
        podman::check_size(&v.name, &v.value)?;
    }
    let engine = match engine {
        Some(e) => e,
        None => Engine::load()?,
    };
    let macs = Macs::load(&engine.paths)?;
    let existing = podman.managed(prefix)?;
    let (mut created, mut replaced, mut kept) = (0, 0, 0);
    for v in &vars {
        let name = podman::secret_name(prefix, &v.name);
        let mac = macs.of(&name, &v.value);
        let old = existing.iter().find(|m| m.name == name);
        let action = match old {
            None => "created",
            Some(m) if m.mac.as_deref() == Some(mac.as_str()) => "unchanged",
            Some(_) if a.rotate => "replaced",
            Some(_) => "kept",
        };
        match action {
            "created" => created += 1,
            "replaced" => replaced += 1,
            _ => kept += 1,
        }
        if !a.dry_run && matches!(action, "created" | "replaced") {
            podman.create(&name, &v.value, &mac, action == "replaced")?;
        }
        let note = match action {
            "kept" => " (its value changed: --rotate replaces it)",
            _ => "",
        };
        let verb = if a.dry_run {
            match action {
                "created" => "would create",
                "replaced" => "would replace",
                other => other,
            }
        } else {
            action
        };
        eprintln!("{verb} {name} from {}{note}", v.origin);
    }
    for v in &vars {
        outln!(
            "{}",
            podman::quadlet_line(&podman::secret_name(prefix, &v.name), &v.name)
        );
    }
    let done = if a.dry_run { "would be " } else { "" };
    eprintln!(
        "{} secret{}: {created} {done}created, {replaced} {done}replaced, {kept} kept",
        vars.len(),
        if vars.len() == 1 { "" } else { "s" }
    );
    Ok(0)
}

fn prune(a: PruneArgs) -> Result<i32> {
    let prefix = &a.prefix;
    podman::validate_prefix(prefix)?;
    let podman = Podman::find()?;
    // Only the names are needed: nothing is resolved.
    let declared: Vec<String> = a
        .sources
        .declared()?
        .iter()
        .map(|n| podman::secret_name(prefix, n))
        .collect();
    let mut removed = 0;
    for m in podman.managed(prefix)? {
        if declared.contains(&m.name) {
            continue;
        }
        if a.dry_run {
            eprintln!("would remove {}", m.name);
        } else {
            podman.remove(&m.name)?;
            eprintln!("removed {}", m.name);
        }
        removed += 1;
    }
    eprintln!(
        "{removed} secret{} {}removed",
        if removed == 1 { "" } else { "s" },
        if a.dry_run { "would be " } else { "" }
    );
    Ok(0)
}
