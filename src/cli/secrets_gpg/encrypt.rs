//! `ov secrets gpg encrypt`: a plaintext env file, encrypted.

use std::path::PathBuf;

use clap::Args;
use ov_gpg::Gpg;
use zeroize::Zeroizing;

use super::{parse, write_secrets};
use crate::error::{OvError, Result};

#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// GPG key ID (repeatable)
    #[arg(short, long = "recipient", value_name = "KEY_ID", required = true)]
    recipient: Vec<String>,
    /// Input file
    #[arg(short, long, default_value = ".env")]
    input: PathBuf,
    /// Output file
    #[arg(short, long, default_value = ".secrets")]
    output: PathBuf,
}

pub(super) fn encrypt(gpg: &Gpg, a: &EncryptArgs) -> Result<i32> {
    let plain = Zeroizing::new(
        std::fs::read(&a.input)
            .map_err(|e| OvError::new(format!("cannot read {}: {e}", a.input.display())))?,
    );
    // The plaintext file is the user's own to fix, in their editor: the
    // `gpg edit` hint of an encrypted file does not apply to it.
    parse(&plain, &a.input).map_err(|mut e| {
        e.hints = vec![ov_plugin_support::edit_command(&a.input)];
        e
    })?;
    write_secrets(gpg, &a.output, &plain, &a.recipient)?;
    eprintln!(
        "encrypted {} to {} for {}",
        a.input.display(),
        a.output.display(),
        a.recipient.join(", ")
    );
    Ok(0)
}
