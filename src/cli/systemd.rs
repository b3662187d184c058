//! `ov systemd` — encrypted credentials for units, with no ov at run time.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::error::Result;
use crate::systemd_creds as creds;

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum SystemdCommand {
    /// Encrypt each variable with systemd-creds into a drop-in of the unit (SetCredentialEncrypted=)
    Credentials(CredentialsArgs),
}

#[derive(Debug, Args)]
pub struct CredentialsArgs {
    #[command(flatten)]
    sources: super::podman::Sources,
    /// The unit that gets the credentials (".service" is added when missing)
    #[arg(long, value_name = "UNIT")]
    unit: String,
    /// Where unit drop-ins go
    #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
    dir: PathBuf,
    /// The key systemd-creds encrypts with
    #[arg(long, value_name = "KEY", default_value = "host", value_parser = clap::builder::PossibleValuesParser::new(creds::KEYS))]
    with_key: String,
    /// Print the drop-in instead of writing it
    #[arg(long)]
    dry_run: bool,
}

pub fn run(cmd: SystemdCommand) -> Result<i32> {
    match cmd {
        SystemdCommand::Credentials(a) => credentials(a),
    }
}

fn credentials(a: CredentialsArgs) -> Result<i32> {
    let unit = creds::unit_name(&a.unit)?;
    let mut engine = None;
    let vars = a.sources.vars(&mut engine, "nothing was written")?;
    let mut lines = Vec::new();
    for v in &vars {
        lines.push(creds::encrypt(&v.name, &v.value, &a.with_key)?);
    }
    let sources = a.sources.describe();
    let text = creds::drop_in(&sources, &lines);
    let path = creds::drop_in_path(&a.dir, &unit);
    if a.dry_run {
        crate::cli::outln!("# {}\n{text}", path.display());
        return Ok(0);
    }
    creds::write(&path, &text)?;
    eprintln!(
        "wrote {} ({} credential{}): {unit} reads each as $CREDENTIALS_DIRECTORY/NAME",
        path.display(),
        vars.len(),
        if vars.len() == 1 { "" } else { "s" }
    );
    eprintln!("next: systemctl daemon-reload && systemctl restart {unit}");
    Ok(0)
}
