//! Encrypted snapshots of a manifest's values: `age` to an X25519 key in
//! `$XDG_CONFIG_HOME/ov/backup-key.txt` (made on the first backup, 0600;
//! the user keeps a copy elsewhere), one file per snapshot under
//! `$XDG_DATA_HOME/ov/backups/<service>/`, mode 0600.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use ov_plugin_api::{EntryRef, Secret};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{OvError, Result};
use crate::paths::Paths;
use crate::store::Store;

use super::Manifest;

const FORMAT: &str = "ov-manifest-backup";
const EXTENSION: &str = "age";

/// What a backup holds once decrypted.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: String,
    pub version: u32,
    pub service: String,
    pub created: String,
    pub entries: Vec<Saved>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Saved {
    pub service: String,
    pub key: String,
    pub value: Secret,
}

impl Saved {
    pub fn entry(&self) -> EntryRef {
        EntryRef::new(&self.service, &self.key)
    }
}

/// A backup on disk.
#[derive(Debug, Clone)]
pub struct Backup {
    /// The file name without `.age`: what `restore` takes.
    pub name: String,
    pub path: PathBuf,
    pub modified: std::time::SystemTime,
}

/// The backup key file.
pub fn key_path(paths: &Paths) -> PathBuf {
    paths.config_dir.join("backup-key.txt")
}

/// Where `service`'s backups live.
pub fn dir(paths: &Paths, service: &str) -> PathBuf {
    paths.data_dir.join("backups").join(service)
}

/// The backup key, made on first use; `true` when it was just made.
fn key(paths: &Paths, create: bool) -> Result<(age::x25519::Identity, bool)> {
    let path = key_path(paths);
    let read = |path: &Path| -> Result<Option<age::x25519::Identity>> {
        match ov_plugin_support::read_regular(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let text = std::str::from_utf8(&bytes).unwrap_or_default();
                let line = text
                    .lines()
                    .find(|l| l.starts_with("AGE-SECRET-KEY-"))
                    .unwrap_or_default();
                age::x25519::Identity::from_str(line)
                    .map(Some)
                    .map_err(|_| {
                        OvError::new(format!(
                            "{} holds no age secret key (AGE-SECRET-KEY-…)",
                            path.display()
                        ))
                        .hint("put back the copy of the backup key you kept")
                    })
            }
            Err(e) if ov_plugin_support::is_missing(&e) => Ok(None),
            Err(e) => Err(OvError::new(format!("cannot read {}: {e}", path.display()))),
        }
    };
    if let Some(id) = read(&path)? {
        return Ok((id, false));
    }
    if !create {
        return Err(OvError::new(format!(
            "there is no backup key at {}, so no backup can be opened",
            path.display()
        ))
        .hint(format!(
            "cp /path/to/your/copy/backup-key.txt {}   # the key the backups were made with",
            ov_plugin_support::shell_quote(&path)
        )));
    }
    ov_plugin_support::with_lock(&path, || -> Result<_> {
        if let Some(id) = read(&path)? {
            return Ok((id, false));
        }
        let id = age::x25519::Identity::generate();
        let text = Zeroizing::new(format!(
            "# ov manifest backup key; public key: {}\n# Keep a copy somewhere safe: without it no backup opens.\n{}\n",
            id.to_public(),
            id.to_string().expose_secret()
        ));
        ov_plugin_support::write_atomic(&path, text.as_bytes(), Some(0o600))
            .map_err(|e| OvError::new(format!("cannot write {}: {e}", path.display())))?;
        Ok((id, true))
    })
}

/// The result of a backup.
#[derive(Debug)]
pub struct Made {
    pub path: PathBuf,
    pub entries: usize,
    /// The key was made by this backup: say where it is.
    pub new_key: Option<PathBuf>,
}

/// Snapshot every value the manifest's secrets have (htpasswd passwords
/// too) into a new backup named after the time and `suffix`.
pub fn backup(paths: &Paths, store: &Store, m: &Manifest, suffix: Option<&str>) -> Result<Made> {
    if let Some(s) = suffix
        && (s.is_empty()
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || s.starts_with('.'))
    {
        return Err(OvError::usage(format!(
            "backup suffix {s:?} may hold only letters, digits, '-', '_' and '.'"
        ))
        .hint("ov manifest backup before-upgrade"));
    }
    let mut entries = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for d in &m.secrets {
        for entry in std::iter::once(d.entry.clone()).chain(d.password_entry()) {
            if !seen.insert(entry.clone()) {
                continue;
            }
            // A backup that silently left out a value a locked backend
            // holds would restore as if it never existed.
            let name = entry.to_string();
            if let Some(value) = super::resolve::read(store, &entry, &name)?.map_err(|mut e| {
                e.message = format!("cannot back up: {}", e.message);
                e
            })? {
                entries.push(Saved {
                    service: entry.service,
                    key: entry.key,
                    value,
                });
            }
        }
    }
    let now = chrono::Utc::now();
    let snap = Snapshot {
        format: FORMAT.to_owned(),
        version: 1,
        service: m.service.clone(),
        created: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        entries,
    };
    let (id, fresh) = key(paths, true)?;
    let plain = Zeroizing::new(
        serde_json::to_vec(&snap)
            .map_err(|e| OvError::new(format!("cannot encode the backup: {e}")))?,
    );
    let failed =
        |e: &dyn std::fmt::Display| OvError::new(format!("cannot encrypt the backup: {e}"));
    let recipient = id.to_public();
    let enc = age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
        .map_err(|e| failed(&e))?;
    let mut sealed = Vec::new();
    let mut w = enc.wrap_output(&mut sealed).map_err(|e| failed(&e))?;
    w.write_all(&plain).map_err(|e| failed(&e))?;
    w.finish().map_err(|e| failed(&e))?;
    let dir = dir(paths, &m.service);
    ov_plugin_support::create_dir_all_mode(&dir, 0o700)?;
    let stamp = now.format("%Y%m%d-%H%M%S").to_string();
    let base = match suffix {
        Some(s) => format!("{stamp}-{s}"),
        None => stamp,
    };
    // One lock for the directory: two backups in one second get two names.
    let path = ov_plugin_support::with_lock(&dir.join(".backups"), || -> Result<PathBuf> {
        let mut n = 1;
        let mut path = dir.join(format!("{base}.{EXTENSION}"));
        while path.exists() {
            n += 1;
            path = dir.join(format!("{base}.{n}.{EXTENSION}"));
        }
        ov_plugin_support::write_atomic(&path, &sealed, Some(0o600))
            .map_err(|e| OvError::new(format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    })?;
    Ok(Made {
        path,
        entries: snap.entries.len(),
        new_key: fresh.then(|| key_path(paths)),
    })
}

/// `service`'s backups, newest first.
pub fn list(paths: &Paths, service: &str) -> Result<Vec<Backup>> {
    let dir = dir(paths, service);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(OvError::new(format!("cannot read {}: {e}", dir.display()))),
    };
    let mut out: Vec<Backup> = rd
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let name = path
                .file_name()?
                .to_str()?
                .strip_suffix(&format!(".{EXTENSION}"))?;
            if name.starts_with('.') || !e.file_type().ok()?.is_file() {
                return None;
            }
            Some(Backup {
                name: name.to_owned(),
                modified: e.metadata().ok()?.modified().ok()?,
                path,
            })
        })
        .collect();
    out.sort_by(|a, b| b.modified.cmp(&a.modified).then(b.name.cmp(&a.name)));
    Ok(out)
}

/// A backup by name (as `backups` lists it) or by path.
pub fn find(paths: &Paths, service: &str, name: &str) -> Result<PathBuf> {
    let as_path = Path::new(name);
    if name.contains('/') || as_path.is_file() {
        return Ok(as_path.to_path_buf());
    }
    let path = dir(paths, service).join(format!("{name}.{EXTENSION}"));
    if path.is_file() {
        return Ok(path);
    }
    Err(
        OvError::usage(format!("no backup named {name} for {service}"))
            .hint("ov manifest backups   # the backups there are, newest first"),
    )
}

/// Open a backup with the backup key and insist it is one of `service`.
pub fn open(paths: &Paths, path: &Path, service: &str) -> Result<Snapshot> {
    let sealed = ov_plugin_support::read_regular(path)
        .map_err(|e| OvError::new(format!("cannot read {}: {e}", path.display())))?;
    let (id, _) = key(paths, false)?;
    let damaged = || {
        OvError::new(format!(
            "{} is not a backup ov can open: it is damaged, or was made with another backup key than {}; nothing was changed",
            path.display(),
            key_path(paths).display()
        ))
        .hint("ov manifest backups   # pick another backup")
    };
    let dec = age::Decryptor::new_buffered(&sealed[..]).map_err(|_| damaged())?;
    let mut r = dec
        .decrypt(std::iter::once(&id as &dyn age::Identity))
        .map_err(|_| damaged())?;
    let mut plain = Zeroizing::new(Vec::new());
    r.read_to_end(&mut plain).map_err(|_| damaged())?;
    let snap: Snapshot = serde_json::from_slice(&plain).map_err(|_| damaged())?;
    if snap.format != FORMAT {
        return Err(damaged());
    }
    if snap.service != service {
        return Err(OvError::new(format!(
            "{} is a backup of {}, not of {service}; nothing was changed",
            path.display(),
            snap.service
        ))
        .hint(format!(
            "ov manifest --manifest PATH restore {}   # with the manifest of {}",
            ov_plugin_support::shell_quote(path),
            snap.service
        )));
    }
    Ok(snap)
}

/// What restoring a snapshot would do to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    Changed,
    Added,
}

/// Each entry of `snap` with what restoring it changes.
pub fn plan<'a>(store: &Store, snap: &'a Snapshot) -> Result<Vec<(&'a Saved, Change)>> {
    snap.entries
        .iter()
        .map(|s| {
            let now = super::resolve::read(store, &s.entry(), &s.entry().to_string())??;
            let change = match now {
                None => Change::Added,
                Some(v) if v.expose() == s.value.expose() => Change::Unchanged,
                Some(_) => Change::Changed,
            };
            Ok((s, change))
        })
        .collect()
}
