//! `ov secrets gpg decrypt`: to a file or stdout.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use ov_gpg::Gpg;
use ov_plugin_support::write_atomic;

use super::decrypted;
use crate::error::{OvError, Result};

#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// Input file
    #[arg(short, long, default_value = ".secrets")]
    input: PathBuf,
    /// Output file (default: stdout)
    #[arg(short, long)]
    output: Option<PathBuf>,
}

pub(super) fn decrypt(gpg: &Gpg, a: &DecryptArgs) -> Result<i32> {
    let plain = decrypted(gpg, &a.input)?;
    match &a.output {
        Some(out) => {
            write_atomic(out, &plain, Some(0o600))
                .map_err(|e| OvError::new(format!("cannot write {}: {e}", out.display())))?;
            eprintln!("decrypted {} to {}", a.input.display(), out.display());
        }
        None => std::io::stdout().write_all(&plain)?,
    }
    Ok(0)
}
