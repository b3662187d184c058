//! `ov secrets gpg recipients`: the keys that can decrypt a file.

use std::path::Path;

use ov_gpg::Gpg;

use super::missing;
use crate::cli::outln;
use crate::error::Result;

/// One recipient of a file, for `--json`.
#[derive(serde::Serialize)]
struct Recipient {
    /// The primary key's id (what `-r` and `add-recipient` take), or the
    /// id the file names when no public key for it is here.
    key: String,
    uid: Option<String>,
    /// The encryption subkey the file names, when it is not the primary.
    subkey: Option<String>,
    public_key: bool,
}

pub(super) fn recipients(gpg: &Gpg, file: &Path, json: bool) -> Result<i32> {
    if !file.exists() {
        return Err(missing(gpg, file));
    }
    // A file names the encryption subkey it was encrypted to; people name
    // the primary key (`-r`, `add-recipient`), so that comes first.
    let mut rows = Vec::new();
    for id in gpg.recipients(file)? {
        rows.push(match gpg.public_key(&id) {
            Ok((fpr, uid)) => {
                let primary = fpr[fpr.len().saturating_sub(id.len())..].to_owned();
                let subkey = (!primary.eq_ignore_ascii_case(&id)).then_some(id);
                Recipient {
                    key: primary,
                    uid: Some(uid),
                    subkey,
                    public_key: true,
                }
            }
            Err(_) => Recipient {
                key: id,
                uid: None,
                subkey: None,
                public_key: false,
            },
        });
    }
    if json {
        crate::cli::print_json(&rows)?;
        return Ok(0);
    }
    for r in &rows {
        match (&r.uid, &r.subkey) {
            (Some(uid), None) => outln!("{}  {uid}", r.key),
            (Some(uid), Some(sub)) => outln!("{}  {uid}  (encryption subkey {sub})", r.key),
            (None, _) => outln!("{}  (no public key here)", r.key),
        }
    }
    Ok(0)
}
