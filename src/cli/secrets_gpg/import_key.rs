//! `ov secrets gpg import-key`: keys from a file, a directory or the Secret
//! Service.

use std::path::{Path, PathBuf};

use clap::Args;
use ov_gpg::keystore::Keystore;
use ov_gpg::{Gpg, fix};
use ov_plugin_api::Secret;
use ov_plugin_support::write_atomic;

use super::{PassphraseArgs, passphrase};
use crate::error::{OvError, Result};

#[derive(Debug, Args)]
pub struct ImportKeyArgs {
    /// A key file, or a directory with .asc/.gpg files and ownertrust.txt
    #[arg(required_unless_present = "from_keystore")]
    path: Option<PathBuf>,
    /// Import the keys stored as org.gnupg.Key in the Secret Service
    #[arg(long, conflicts_with = "path")]
    from_keystore: bool,
    /// Only this key (with --from-keystore)
    #[arg(long, value_name = "ID")]
    key_id: Option<String>,
    #[command(flatten)]
    pass: PassphraseArgs,
}

pub(super) fn import_path(gpg: &Gpg, path: &Path, pass: Option<&Secret>) -> Result<usize> {
    let pass = pass.map(|p| p.expose().as_bytes());
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "asc" || e == "gpg"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(
                OvError::new(format!("{} holds no .asc or .gpg key file", path.display()))
                    .hint("ov secrets gpg export-key <DIR>   # on the machine that has the key"),
            );
        }
        for f in &files {
            gpg.import(f, pass)?;
            eprintln!("imported {}", f.display());
        }
        let trust = path.join("ownertrust.txt");
        if trust.is_file() {
            gpg.import_ownertrust(&trust)?;
            eprintln!("imported owner trust from {}", trust.display());
        }
        Ok(files.len())
    } else if path.is_file() {
        gpg.import(path, pass)?;
        eprintln!("imported {}", path.display());
        Ok(1)
    } else {
        Err(OvError::new(format!("{} does not exist", path.display())))
    }
}

pub(super) fn import_keystore(
    gpg: &Gpg,
    key_id: Option<&str>,
    pass: Option<&Secret>,
) -> Result<usize> {
    let found = Keystore::new().keys(key_id, true)?;
    if found.is_empty() {
        return Err(OvError::new(format!(
            "no org.gnupg.Key{} in the Secret Service",
            key_id.map(|k| format!(" for {k}")).unwrap_or_default()
        ))
        .hint(format!(
            "{}   # on the machine that has the key",
            fix::BACKUP
        )));
    }
    let dir = ov_gpg::private_dir()?;
    for (id, uid, armored) in &found {
        let f = dir.path().join("key.asc");
        write_atomic(&f, armored, Some(0o600))?;
        gpg.import(&f, pass.map(|p| p.expose().as_bytes()))?;
        std::fs::remove_file(&f)?;
        eprintln!("imported {id} {uid} from the Secret Service");
    }
    Ok(found.len())
}

pub(super) fn import_key(gpg: &Gpg, a: &ImportKeyArgs) -> Result<i32> {
    let pass = passphrase(&a.pass)?;
    if a.from_keystore {
        import_keystore(gpg, a.key_id.as_deref(), pass.as_ref())?;
    } else if let Some(p) = &a.path {
        import_path(gpg, p, pass.as_ref())?;
    }
    Ok(0)
}
