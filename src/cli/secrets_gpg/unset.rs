//! `ov secrets gpg unset`: remove one entry, keeping every other line.

use clap::Args;
use ov_gpg::Gpg;
use zeroize::Zeroizing;

use super::{FileArgs, check_writable, document, recipients_for, write_secrets};
use crate::error::{OvError, Result};

#[derive(Debug, Args)]
pub struct UnsetArgs {
    /// Variable name
    key: String,
    #[command(flatten)]
    f: FileArgs,
}

pub(super) fn unset(gpg: &Gpg, a: &UnsetArgs) -> Result<i32> {
    let file = &a.f.file;
    check_writable(file)?;
    let recipients = recipients_for(gpg, file, &[])?;
    let mut doc = document(gpg, file)?;
    if !doc.unset(&a.key) {
        return Err(OvError::new(format!(
            "{} has no {}; nothing was changed",
            file.display(),
            a.key
        ))
        .hint(format!("ov secrets gpg show -f {}", file.display())));
    }
    let text = Zeroizing::new(doc.render());
    write_secrets(gpg, file, text.as_bytes(), &recipients)?;
    eprintln!("removed {} from {}", a.key, file.display());
    Ok(0)
}
