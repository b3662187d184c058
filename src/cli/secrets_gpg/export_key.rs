//! `ov secrets gpg export-key`: a key to a directory and/or the Secret Service.

use std::path::PathBuf;

use clap::Args;
use ov_gpg::Gpg;
use ov_gpg::keystore::Keystore;
use ov_plugin_support::write_atomic;

use super::{PassphraseArgs, passphrase};
use crate::error::Result;

#[derive(Debug, Args)]
pub struct ExportKeyArgs {
    /// Directory for public.asc, secret.asc and ownertrust.txt
    #[arg(required_unless_present = "to_keystore")]
    path: Option<PathBuf>,
    /// Store the armored secret key in the Secret Service (org.gnupg.Key)
    #[arg(long)]
    to_keystore: bool,
    /// The key to export (default: the first secret key)
    #[arg(long, value_name = "ID")]
    key_id: Option<String>,
    #[command(flatten)]
    pass: PassphraseArgs,
}

pub(super) fn export_key(gpg: &Gpg, a: &ExportKeyArgs) -> Result<i32> {
    let pass = passphrase(&a.pass)?;
    let key = gpg.pick_key(a.key_id.as_deref())?;
    // gpg-agent never exports a key from its cache, and without a terminal
    // no pinentry can ask: the passphrase `setup` stored in the Secret
    // Service opens the key then, as it does for decrypting.
    let stored = match &pass {
        None if !ov_gpg::can_prompt() => {
            let ks = Keystore::new();
            key.grips().find_map(|g| ks.passphrase(g).ok().flatten())
        }
        _ => None,
    };
    let pbytes = pass
        .as_ref()
        .map(|p| p.expose().as_bytes())
        .or(stored.as_deref().map(Vec::as_slice));
    let secret = gpg.export_secret(&key.fingerprint, pbytes)?;
    if let Some(dir) = &a.path {
        ov_plugin_support::create_dir_all_mode(dir, 0o700)?;
        write_atomic(
            &dir.join("public.asc"),
            &gpg.export_public(&key.fingerprint)?,
            Some(0o600),
        )?;
        write_atomic(&dir.join("secret.asc"), &secret, Some(0o600))?;
        write_atomic(
            &dir.join("ownertrust.txt"),
            &gpg.export_ownertrust()?,
            Some(0o600),
        )?;
        eprintln!(
            "exported {} to {} (public.asc, secret.asc, ownertrust.txt)",
            key.keyid,
            dir.display()
        );
    }
    if a.to_keystore {
        let ks = Keystore::new();
        ks.store_key(&key.keyid, &key.uid, &secret)?;
        eprintln!("stored {} in the Secret Service (org.gnupg.Key)", key.keyid);
        if let Some(p) = &pass {
            gpg.check_passphrase(&key.fingerprint, p.expose().as_bytes())?;
            for g in key.grips() {
                ks.store_passphrase(g, p.expose().as_bytes())?;
            }
            eprintln!("stored the passphrase for every keygrip (org.gnupg.Passphrase)");
        }
    }
    Ok(0)
}
