//! Which services each backend held when ov last saw it.
//!
//! A backend that cannot be reached now (no session bus over ssh, a hung
//! `dbus-daemon`, a database on an unmounted disk) looks exactly like one
//! that holds nothing. This record, `$XDG_DATA_HOME/ov/held.json`, keeps the
//! service names (never values) each backend held at its last complete
//! listing or write, so sealing a bundle, `ov run --all` and an export can
//! tell the two apart and refuse instead of acting on part of the secrets.
//!
//! The record is best effort: a file that cannot be read or written costs
//! that protection, never a command.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ov_plugin_api::service_matches;
use ov_plugin_support::{with_lock, write_atomic};

pub const FILE_NAME: &str = "held.json";

/// Backend name → the services it held.
type Record = BTreeMap<String, BTreeSet<String>>;

#[derive(Debug)]
pub struct Held {
    path: PathBuf,
}

fn read(path: &Path) -> Record {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

impl Held {
    pub fn new(data_dir: &Path) -> Held {
        Held {
            path: data_dir.join(FILE_NAME),
        }
    }

    /// The services under `filter` (all with `None`) that `backend` held.
    pub fn services(&self, backend: &str, filter: Option<&str>) -> Vec<String> {
        read(&self.path)
            .remove(backend)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| service_matches(s, filter))
            .collect()
    }

    /// Change the record under its lock; written only when it changed.
    fn update(&self, change: impl FnOnce(&mut Record)) {
        let _ = with_lock(&self.path, || -> std::io::Result<()> {
            let before = read(&self.path);
            let mut after = before.clone();
            change(&mut after);
            after.retain(|_, services| !services.is_empty());
            if after != before {
                let text = serde_json::to_vec_pretty(&after).map_err(std::io::Error::other)?;
                write_atomic(&self.path, &text, Some(0o600))?;
            }
            Ok(())
        });
    }

    /// A complete listing of `backend` under `filter` found `found`.
    pub fn listed(&self, backend: &str, filter: Option<&str>, found: BTreeSet<String>) {
        self.update(|r| {
            let services = r.entry(backend.to_owned()).or_default();
            services.retain(|s| !service_matches(s, filter));
            services.extend(found);
        });
    }

    /// `backend` holds at least one entry of `service` now.
    pub fn holds(&self, backend: &str, service: &str) {
        if read(&self.path)
            .get(backend)
            .is_some_and(|s| s.contains(service))
        {
            return;
        }
        self.update(|r| {
            r.entry(backend.to_owned())
                .or_default()
                .insert(service.to_owned());
        });
    }

    /// Forget what `backend` held (it is gone for good); whether there was
    /// anything to forget.
    pub fn forget(&self, backend: &str) -> bool {
        let had = read(&self.path).contains_key(backend);
        if had {
            self.update(|r| {
                r.remove(backend);
            });
        }
        had
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_replace_what_they_cover_and_writes_add() {
        let dir = tempfile::tempdir().unwrap();
        let held = Held::new(dir.path());
        let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        held.listed("keyring", None, set(&["a/prod", "b/prod", "ov/vnc"]));
        assert_eq!(held.services("keyring", Some("a")), vec!["a/prod"]);
        // A listing of one service says nothing about the others.
        held.listed("keyring", Some("a/prod"), BTreeSet::new());
        assert_eq!(held.services("keyring", None), vec!["b/prod", "ov/vnc"]);
        held.holds("keyring", "c/dev");
        assert_eq!(held.services("keyring", Some("c/dev")), vec!["c/dev"]);
        assert!(held.services("kdbx", None).is_empty());
        assert!(held.forget("keyring"));
        assert!(!held.forget("keyring"));
        assert!(held.services("keyring", None).is_empty());
    }
}
