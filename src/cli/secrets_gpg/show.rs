//! `ov secrets gpg show`: decrypt and print.

use std::path::Path;

use ov_gpg::Gpg;

use super::decrypted;
use crate::error::Result;

pub(super) fn show(gpg: &Gpg, file: &Path) -> Result<i32> {
    let plain = decrypted(gpg, file)?;
    crate::cli::out_bytes(&plain)?;
    Ok(0)
}
