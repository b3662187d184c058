//! `config.toml`: typed settings, system defaults under the user's file.
//!
//! Reads merge `/etc/ov/config.toml` and `$XDG_CONFIG_HOME/ov/config.toml`
//! (the user's wins). Writes touch only the user's file, through
//! `toml_edit`, so comments and layout the user wrote survive.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use ov_plugin_support::{edit_command, toml_error_message, with_lock, write_atomic};
use serde::Serialize;
use toml_edit::{DocumentMut, Item, Table};

use crate::error::{OvError, Result};
use crate::paths::Paths;

mod specs;

use specs::typed_from_toml;
pub use specs::{BACKEND, KeySpec, Kind, MAX_SECONDS, Specs, Value, parse_value};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "path")]
pub enum Origin {
    Default,
    System(PathBuf),
    User(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::System(p) | Origin::User(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The effective settings.
#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<String, (Value, Origin)>,
    /// Keys present in a file that ov does not know, with the file.
    pub unknown: Vec<(String, PathBuf)>,
    specs: Specs,
}

/// A setting bound to another's value that no longer matches it: a key
/// file set for one database while another is configured.
#[derive(Debug, Clone)]
pub struct Unbound {
    pub name: String,
    pub value: PathBuf,
    /// What it was set for.
    pub belongs_to: PathBuf,
    /// The setting it is bound to.
    pub to: String,
}

fn default_value(spec: &KeySpec, paths: &Paths) -> Option<Value> {
    let raw = spec.default.as_deref()?;
    let raw = raw.replace("{config_dir}", &paths.config_dir.display().to_string());
    match spec.kind {
        Kind::Text | Kind::Path => Some(Value::Text(raw)),
        _ => parse_value(spec, &raw).ok(),
    }
}

/// Find `a.b` in a document: the table `a`, the key `b`.
fn lookup<'d>(doc: &'d DocumentMut, dotted: &str) -> Option<&'d Item> {
    let mut item = doc.as_item();
    for part in dotted.split('.') {
        item = item.as_table_like()?.get(part)?;
    }
    Some(item)
}

/// Every dotted key with a value in the document.
fn leaf_keys(table: &dyn toml_edit::TableLike, prefix: &str, out: &mut Vec<String>) {
    for (k, item) in table.iter() {
        let name = if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        };
        match item.as_table_like() {
            Some(t) => leaf_keys(t, &name, out),
            None => out.push(name),
        }
    }
}

/// Read and parse a settings file; `None` when it does not exist.
pub fn read_doc(path: &Path) -> Result<Option<DocumentMut>> {
    // A FIFO here would hang every ov command: refused, not waited on.
    let read = ov_plugin_support::read_regular(path).and_then(|b| {
        String::from_utf8(b)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
    });
    let text = match read {
        Ok(t) => t,
        Err(e) if ov_plugin_support::is_missing(&e) => return Ok(None),
        Err(e) => {
            return Err(OvError::new(format!("cannot read {}: {e}", path.display()))
                .hint(format!("ls -l {}", ov_plugin_support::shell_quote(path))));
        }
    };
    text.parse::<DocumentMut>()
        .map(Some)
        .map_err(|e| OvError::new(toml_error_message(path, &text, &e)).hint(edit_command(path)))
}

impl Settings {
    /// Defaults, then the system file, then the user's file.
    pub fn load(paths: &Paths, specs: &Specs) -> Result<Settings> {
        let mut settings = Settings {
            values: specs
                .iter()
                .filter_map(|k| {
                    default_value(k, paths).map(|v| (k.name.clone(), (v, Origin::Default)))
                })
                .collect(),
            unknown: Vec::new(),
            specs: specs.clone(),
        };
        for (path, origin) in [
            (paths.system_config(), Origin::System(paths.system_config())),
            (paths.user_config(), Origin::User(paths.user_config())),
        ] {
            let Some(doc) = read_doc(&path)? else {
                continue;
            };
            settings.overlay(&path, &doc, &origin)?;
        }
        Ok(settings)
    }

    fn overlay(&mut self, path: &Path, doc: &DocumentMut, origin: &Origin) -> Result<()> {
        let mut present = Vec::new();
        leaf_keys(doc.as_table(), "", &mut present);
        for name in present {
            let Some(spec) = self.specs.get(&name) else {
                self.unknown.push((name, path.to_path_buf()));
                continue;
            };
            let Some(raw) = lookup(doc, &name).and_then(Item::as_value) else {
                continue;
            };
            let value = typed_from_toml(spec, raw).ok_or_else(|| {
                OvError::new(format!(
                    "{}: {} = {} is not valid: expected {}",
                    path.display(),
                    name,
                    raw.to_string().trim(),
                    spec.kind.describe()
                ))
                .hint(edit_command(path))
            })?;
            self.values
                .insert(spec.name.clone(), (value, origin.clone()));
        }
        Ok(())
    }

    pub fn specs(&self) -> &Specs {
        &self.specs
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name).map(|(v, _)| v)
    }

    pub fn origin(&self, name: &str) -> Option<&Origin> {
        self.values.get(name).map(|(_, o)| o)
    }

    pub fn get_str(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(Value::Text(s)) => Some(s),
            _ => None,
        }
    }

    /// `secret_backend`, `None` for auto.
    pub fn forced_backend(&self) -> Option<&str> {
        self.get_str(BACKEND).filter(|b| *b != "auto")
    }

    /// A path setting as the plugins see it: `~` expanded.
    pub fn path(&self, paths: &Paths, name: &str) -> Option<PathBuf> {
        self.get_str(name)
            .filter(|t| !t.is_empty())
            .map(|t| crate::paths::expand_tilde(paths, t))
    }

    /// The bound settings whose other half names something else now (a
    /// key file made for another database than the one configured). Such a
    /// value is not handed to its backend, so switching databases never
    /// turns every password into a wrong one.
    pub fn unbound(&self, paths: &Paths) -> Vec<Unbound> {
        self.specs
            .iter()
            .filter_map(|k| {
                let b = k.binds.as_ref()?;
                let value = self.path(paths, &k.name)?;
                let belongs_to = self.path(paths, &b.recorded_as)?;
                let current = self.path(paths, &b.to)?;
                (!crate::paths::same_file(&belongs_to, &current)).then(|| Unbound {
                    name: k.name.clone(),
                    value,
                    belongs_to,
                    to: b.to.clone(),
                })
            })
            .collect()
    }

    /// The settings as the plugins see them: paths with `~` expanded, and
    /// no bound value whose other half names something else.
    pub fn to_context_map(&self, paths: &Paths) -> BTreeMap<String, serde_json::Value> {
        let hidden: Vec<String> = self.unbound(paths).into_iter().map(|u| u.name).collect();
        self.values
            .iter()
            .filter(|(k, _)| !hidden.contains(k))
            .map(|(k, (v, _))| {
                let value = match (self.specs.get(k).map(|s| &s.kind), v) {
                    (Some(Kind::Path), Value::Text(t)) if !t.is_empty() => {
                        crate::paths::expand_tilde(paths, t)
                            .display()
                            .to_string()
                            .into()
                    }
                    _ => v.to_json(),
                };
                (k.clone(), value)
            })
            .collect()
    }

    /// Every known key with its effective value (if any) and where it came from.
    pub fn entries(&self) -> Vec<(&KeySpec, Option<&Value>, Option<&Origin>)> {
        self.specs
            .iter()
            .map(|k| (k, self.get(&k.name), self.origin(&k.name)))
            .collect()
    }
}

/// Write a value into the user's file, keeping everything else in it.
pub fn set_user(paths: &Paths, specs: &Specs, name: &str, raw: &str) -> Result<Value> {
    let spec = specs.get(name).ok_or_else(|| specs.unknown_key(name))?;
    // A relative path is taken from where the command runs and stored
    // absolute, so what it names never depends on the current directory.
    let anchored;
    let raw = match spec.kind {
        Kind::Path if !raw.trim().is_empty() && !crate::paths::anchored(raw) => {
            anchored = std::path::absolute(raw)
                .map_err(|e| OvError::usage(format!("cannot resolve {raw}: {e}")))?
                .display()
                .to_string();
            anchored.as_str()
        }
        _ => raw,
    };
    let value = parse_value(spec, raw)?;
    edit_user_file(paths, |doc| {
        let mut parts: Vec<&str> = name.split('.').collect();
        let leaf = parts.pop().unwrap_or(name);
        let mut table = doc.as_table_mut();
        for part in parts {
            let item = table
                .entry(part)
                .or_insert_with(|| Item::Table(Table::new()));
            if !item.is_table() {
                *item = Item::Table(Table::new());
            }
            table = match item.as_table_mut() {
                Some(t) => t,
                None => return false,
            };
        }
        match table.get_mut(leaf).and_then(Item::as_value_mut) {
            // Keep the decoration (comments after the value) the user wrote.
            Some(existing) => {
                let decor = existing.decor().clone();
                *existing = value.to_toml();
                *existing.decor_mut() = decor;
            }
            None => {
                table.insert(leaf, Item::Value(value.to_toml()));
            }
        }
        true
    })?;
    if let Some(b) = &spec.binds {
        // Record what the value was set for (the database a key file
        // belongs to).
        let settings = Settings::load(paths, specs)?;
        if let Some(current) = settings.path(paths, &b.to) {
            set_user(paths, specs, &b.recorded_as, &current.display().to_string())?;
        }
    }
    Ok(value)
}

/// Remove a key from the user's file; `false` when it was not there.
/// Keys ov does not know may be removed too, to clean up a file.
pub fn unset_user(paths: &Paths, specs: &Specs, name: &str) -> Result<bool> {
    let in_file = read_doc(&paths.user_config())?
        .map(|doc| lookup(&doc, name).is_some())
        .unwrap_or(false);
    if specs.get(name).is_none() && !in_file {
        return Err(specs.unknown_key(name));
    }
    let mut removed = false;
    edit_user_file(paths, |doc| {
        let mut parts: Vec<&str> = name.split('.').collect();
        let leaf = parts.pop().unwrap_or(name);
        let mut table: &mut dyn toml_edit::TableLike = doc.as_table_mut();
        for part in parts {
            table = match table.get_mut(part).and_then(Item::as_table_like_mut) {
                Some(t) => t,
                None => return false,
            };
        }
        removed = table.remove(leaf).is_some();
        removed
    })?;
    if let Some(b) = specs.get(name).and_then(|k| k.binds.clone()) {
        unset_user(paths, specs, &b.recorded_as)?;
    }
    Ok(removed)
}

/// Lock the user's file, load it (refusing a malformed one), apply `change`,
/// and write it back atomically when `change` says it changed something.
fn edit_user_file(paths: &Paths, change: impl FnOnce(&mut DocumentMut) -> bool) -> Result<()> {
    let path = paths.user_config();
    with_lock(&path, || {
        let mut doc = read_doc(&path)?.unwrap_or_default();
        if change(&mut doc) {
            write_atomic(&path, doc.to_string().as_bytes(), None).map_err(|e| {
                OvError::new(e.to_string()).hint(format!(
                    "ls -ld {}   # the directory must be writable by you",
                    ov_plugin_support::shell_quote(&paths.config_dir)
                ))
            })?;
        }
        Ok(())
    })
    .map_err(|e: OvError| e)
}
