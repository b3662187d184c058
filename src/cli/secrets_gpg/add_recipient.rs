//! `ov secrets gpg add-recipient`: re-encrypt to one more key.

use clap::Args;
use ov_gpg::Gpg;

use super::{FileArgs, check_writable, decrypted, missing, write_secrets};
use crate::error::Result;

#[derive(Debug, Args)]
pub struct AddRecipientArgs {
    /// The GPG key ID to add
    key_id: String,
    #[command(flatten)]
    f: FileArgs,
}

pub(super) fn add_recipient(gpg: &Gpg, a: &AddRecipientArgs) -> Result<i32> {
    let file = &a.f.file;
    check_writable(file)?;
    if !file.exists() {
        return Err(missing(gpg, file));
    }
    gpg.public_key(&a.key_id)?;
    let mut recipients = gpg.recipients(file)?;
    let plain = decrypted(gpg, file)?;
    recipients.push(a.key_id.clone());
    write_secrets(gpg, file, &plain, &recipients)?;
    eprintln!(
        "{} re-encrypted to {}",
        file.display(),
        recipients.join(", ")
    );
    Ok(0)
}
