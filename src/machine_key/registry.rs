//! The registry of which key files open which app/env, and where each
//! app/env's bundle lives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::key_file::MachineKey;
use super::service;
use crate::error::{OvError, Result};
use crate::paths::Paths;

/// One key file registered for one app/env.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Registration {
    pub path: PathBuf,
    pub app: String,
    pub env: String,
    /// The public half of the key's identity for this app/env (`age1…`).
    pub recipient: String,
    /// Seconds since the epoch.
    pub created: u64,
}

/// `$XDG_CONFIG_HOME/ov/machine-keys.json`: registrations, bundle paths
/// chosen with `--bundle`, and when each app/env last changed through ov.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Registry {
    #[serde(default)]
    pub keys: Vec<Registration>,
    /// `app/env` → bundle path, when not the default.
    #[serde(default)]
    pub bundles: BTreeMap<String, PathBuf>,
    /// `app/env` → seconds since the epoch of the last change through ov.
    #[serde(default)]
    pub changed: BTreeMap<String, u64>,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Registry {
    pub fn path(paths: &Paths) -> PathBuf {
        paths.config_dir.join("machine-keys.json")
    }

    pub fn load(paths: &Paths) -> Result<Registry> {
        let path = Registry::path(paths);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                OvError::new(format!("{} is not valid: {e}", path.display()))
                    .hint(ov_plugin_support::edit_command(&path))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry::default()),
            Err(e) => Err(OvError::new(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// Run `f` holding the registry's lock, so concurrent changes (two
    /// `ov secrets set` at once) do not lose a registration or seal a
    /// bundle from a half-updated store.
    pub fn locked<T>(paths: &Paths, f: impl FnOnce() -> Result<T>) -> Result<T> {
        ov_plugin_support::with_lock(&Registry::path(paths), f)
    }

    pub fn save(&self, paths: &Paths) -> Result<()> {
        let path = Registry::path(paths);
        ov_plugin_support::create_dir_all_mode(&paths.config_dir, 0o700)?;
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| OvError::new(format!("cannot encode the registry: {e}")))?;
        ov_plugin_support::write_atomic(&path, text.as_bytes(), Some(0o600))
            .map_err(|e| OvError::new(format!("cannot write {}: {e}", path.display())))?;
        Ok(())
    }

    pub fn for_app<'a>(
        &'a self,
        app: &'a str,
        env: &'a str,
    ) -> impl Iterator<Item = &'a Registration> {
        self.keys
            .iter()
            .filter(move |r| r.app == app && r.env == env)
    }

    pub fn bundle_path(&self, paths: &Paths, app: &str, env: &str) -> PathBuf {
        self.bundles
            .get(&service(app, env))
            .cloned()
            .unwrap_or_else(|| default_bundle_path(paths, app, env))
    }

    /// Add or replace (same path, app and env) a registration.
    pub fn register(&mut self, path: &Path, app: &str, env: &str, key: &MachineKey) {
        self.keys
            .retain(|r| !(r.path == path && r.app == app && r.env == env));
        self.keys.push(Registration {
            path: path.to_path_buf(),
            app: app.to_owned(),
            env: env.to_owned(),
            recipient: key.identity(app, env).to_public().to_string(),
            created: now(),
        });
    }
}

/// `$XDG_DATA_HOME/ov/bundles/<app>/<env>.age`
pub fn default_bundle_path(paths: &Paths, app: &str, env: &str) -> PathBuf {
    paths
        .data_dir
        .join("bundles")
        .join(app)
        .join(format!("{env}.age"))
}
