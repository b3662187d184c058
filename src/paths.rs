//! Where ov keeps its files, following the XDG base directory rules.

use std::env;
use std::path::{Path, PathBuf};

use crate::error::{OvError, Result};

/// The system-wide settings file, under the user's.
pub const SYSTEM_CONFIG_DIR: &str = "/etc/ov";
/// Where packaged plugins are installed.
pub const SYSTEM_PLUGIN_DIR: &str = "/usr/lib/ov/plugins";

#[derive(Debug, Clone)]
pub struct Paths {
    pub home: PathBuf,
    /// `$XDG_CONFIG_HOME/ov`
    pub config_dir: PathBuf,
    /// `$XDG_DATA_HOME/ov`
    pub data_dir: PathBuf,
    pub runtime_dir: Option<PathBuf>,
    /// `/etc/ov` (`OV_SYSCONFDIR` overrides it, for packagers and tests).
    pub system_config_dir: PathBuf,
}

/// An XDG variable counts only when it holds an absolute path.
fn xdg(var: &str) -> Option<PathBuf> {
    env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

fn home_dir() -> Option<PathBuf> {
    xdg("HOME").or_else(|| {
        nix::unistd::User::from_uid(nix::unistd::Uid::effective())
            .ok()
            .flatten()
            .map(|u| u.dir)
    })
}

impl Paths {
    pub fn from_env() -> Result<Self> {
        let home = home_dir().ok_or_else(|| {
            OvError::new(
                "cannot find your home directory: HOME is unset and there is no passwd entry",
            )
            .hint("export HOME=/path/to/home   # or XDG_CONFIG_HOME=/path/to/config")
        })?;
        let config_home = xdg("XDG_CONFIG_HOME").unwrap_or_else(|| home.join(".config"));
        let data_home = xdg("XDG_DATA_HOME").unwrap_or_else(|| home.join(".local/share"));
        Ok(Paths {
            config_dir: config_home.join("ov"),
            data_dir: data_home.join("ov"),
            runtime_dir: xdg("XDG_RUNTIME_DIR"),
            system_config_dir: xdg("OV_SYSCONFDIR")
                .unwrap_or_else(|| PathBuf::from(SYSTEM_CONFIG_DIR)),
            home,
        })
    }

    pub fn user_config(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    pub fn system_config(&self) -> PathBuf {
        self.system_config_dir.join("config.toml")
    }

    /// The lock that makes `ov secrets ensure` race-free across processes.
    pub fn ensure_lock(&self) -> PathBuf {
        self.config_dir.join("secrets-ensure")
    }

    /// Directories searched for plugin libraries, in order:
    /// `OV_PLUGIN_PATH` (colon-separated), then the system plugin directory
    /// (`OV_SYSTEM_PLUGIN_DIR` overrides `/usr/lib/ov/plugins`).
    pub fn plugin_search_path() -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = env::var_os("OV_PLUGIN_PATH")
            .map(|v| {
                env::split_paths(&v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let system = env::var_os("OV_SYSTEM_PLUGIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(SYSTEM_PLUGIN_DIR));
        if !system.as_os_str().is_empty() {
            dirs.push(system);
        }
        dirs
    }

    /// `~/…` for display, when the path lies under the home directory.
    pub fn tilde(&self, path: &Path) -> String {
        match path.strip_prefix(&self.home) {
            Ok(rest) => format!("~/{}", rest.display()),
            Err(_) => path.display().to_string(),
        }
    }
}

pub use ov_plugin_support::same_file;

/// A path setting that means the same wherever ov runs: absolute, or
/// starting at the home directory.
pub fn anchored(raw: &str) -> bool {
    raw == "~" || raw.starts_with("~/") || Path::new(raw).is_absolute()
}

/// `~/x` → `$HOME/x`; anything else unchanged.
pub fn expand_tilde(paths: &Paths, p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => paths.home.join(rest),
        None if p == "~" => paths.home.clone(),
        None => PathBuf::from(p),
    }
}
