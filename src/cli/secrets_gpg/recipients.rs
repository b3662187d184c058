//! `ov secrets gpg recipients`: the keys that can decrypt a file.

use std::path::Path;

use ov_gpg::Gpg;

use super::missing;
use crate::cli::outln;
use crate::error::Result;

pub(super) fn recipients(gpg: &Gpg, file: &Path) -> Result<i32> {
    if !file.exists() {
        return Err(missing(gpg, file));
    }
    // A file names the encryption subkey it was encrypted to; people name
    // the primary key (`-r`, `add-recipient`), so that comes first.
    for id in gpg.recipients(file)? {
        match gpg.public_key(&id) {
            Ok((fpr, uid)) => {
                let primary = &fpr[fpr.len().saturating_sub(id.len())..];
                if primary.eq_ignore_ascii_case(&id) {
                    outln!("{primary}  {uid}");
                } else {
                    outln!("{primary}  {uid}  (encryption subkey {id})");
                }
            }
            Err(_) => outln!("{id}  (no public key here)"),
        }
    }
    Ok(0)
}
