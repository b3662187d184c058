//! A project's secrets manifest, `ov-secrets.toml`: which secrets the
//! project needs, of which type, used by which stacks, kept under which
//! store entry. The manifest holds no values; the store does.

pub mod backup;
pub mod kind;
pub mod resolve;
pub mod transfer;

use std::path::{Path, PathBuf};

use ov_plugin_api::EntryRef;
use toml_edit::{Document, Item, Value};

use crate::error::{OvError, Result};
use crate::store::validate_entry;

pub use kind::{HashScheme, Kind};

/// The manifest's file name, looked for from the current directory up.
pub const FILE_NAME: &str = "ov-secrets.toml";
/// The stack name `list` uses for secrets several stacks share.
pub const SHARED: &str = "shared";
/// What `rotate` prints to restart the stacks when the manifest names no
/// command of its own; `{stacks}` becomes their names.
pub const DEFAULT_RESTART: &str = "docker compose restart {stacks}";

#[derive(Debug, Clone)]
pub struct Manifest {
    pub path: PathBuf,
    /// The store service entries live under unless they name a key.
    pub service: String,
    /// The command that restarts stacks, with `{stacks}`.
    pub restart: String,
    /// In file order.
    pub secrets: Vec<Decl>,
}

/// One declared secret.
#[derive(Debug, Clone)]
pub struct Decl {
    pub name: String,
    pub kind: Kind,
    pub hash: HashScheme,
    pub stacks: Vec<String>,
    /// Required ones are generated on first use; optional ones never.
    pub required: bool,
    /// Where the store keeps the value.
    pub entry: EntryRef,
    pub purpose: Option<String>,
    /// 1-based line of its table in the manifest.
    pub line: usize,
}

impl Decl {
    /// Used by more than one stack.
    pub fn shared(&self) -> bool {
        self.stacks.len() > 1
    }

    /// Where an htpasswd secret's plaintext password is kept.
    pub fn password_entry(&self) -> Option<EntryRef> {
        matches!(self.kind, Kind::Htpasswd(_))
            .then(|| EntryRef::new(&self.entry.service, format!("{}.password", self.entry.key)))
    }
}

impl Manifest {
    pub fn get(&self, name: &str) -> Result<&Decl> {
        self.secrets.iter().find(|d| d.name == name).ok_or_else(|| {
            let mut e =
                OvError::usage(format!("{} declares no secret {name}", self.path.display()));
            if let Some(d) = self
                .secrets
                .iter()
                .find(|d| d.name.eq_ignore_ascii_case(name))
            {
                e = e.hint(format!(
                    "ov manifest … {}   # names are case-sensitive",
                    d.name
                ));
            }
            e.hint("ov manifest list   # the secrets it declares")
        })
    }

    /// The secrets named, in manifest order; all of them when none are.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Decl>> {
        if names.is_empty() {
            return Ok(self.secrets.iter().collect());
        }
        names.iter().map(|n| self.get(n)).collect()
    }

    /// The stacks in the order they first appear.
    pub fn stacks(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in self.secrets.iter().flat_map(|d| &d.stacks) {
            if !out.contains(&s.as_str()) {
                out.push(s);
            }
        }
        out
    }

    /// The command line that restarts `stacks`.
    pub fn restart_command(&self, stacks: &[String]) -> String {
        self.restart.replace("{stacks}", &stacks.join(" "))
    }
}

/// `ov-secrets.toml` in `start` or the nearest directory above it.
pub fn find(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join(FILE_NAME))
        .find(|p| p.is_file())
}

/// The manifest `--manifest` names, or the one found from the current
/// directory upward.
pub fn load(explicit: Option<&Path>) -> Result<Manifest> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let cwd = std::env::current_dir()
                .map_err(|e| OvError::new(format!("cannot read the current directory: {e}")))?;
            find(&cwd).ok_or_else(|| {
                OvError::new(format!(
                    "no {FILE_NAME} in {} or any directory above it",
                    cwd.display()
                ))
                .hint(format!(
                    "ov manifest --manifest PATH …   # or create {FILE_NAME} (docs/manifest.md)"
                ))
            })?
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        OvError::new(format!("cannot read {}: {e}", path.display()))
            .hint("ov manifest --manifest PATH …   # the project's ov-secrets.toml")
    })?;
    parse(&path, &text)
}

/// A manifest error at `line`, with the command that opens the file.
fn at(path: &Path, line: usize, message: impl std::fmt::Display) -> OvError {
    OvError::new(format!("{}:{line}: {message}", path.display()))
        .hint(ov_plugin_support::edit_command(path))
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> usize {
    span.map_or(1, |s| {
        text[..s.start.min(text.len())].matches('\n').count() + 1
    })
}

const SECRET_KEYS: &[&str] = &[
    "type", "stacks", "purpose", "optional", "required", "key", "hash",
];

pub fn parse(path: &Path, text: &str) -> Result<Manifest> {
    let doc = Document::parse(text.to_owned()).map_err(|e| {
        let why = e.message().trim();
        let why = if why.contains("duplicate key") {
            format!("{why}: a secret or setting is declared twice")
        } else {
            format!("not valid TOML: {why}")
        };
        at(path, line_of(text, e.span()), why)
    })?;
    let root = doc.as_table();
    let key_line =
        |table: &toml_edit::Table, k: &str| line_of(text, table.key(k).and_then(|k| k.span()));
    for (k, _) in root.iter() {
        if !["service", "restart", "secrets"].contains(&k) {
            return Err(at(
                path,
                key_line(root, k),
                format!("unknown key {k:?} (known: service, restart, secrets)"),
            ));
        }
    }
    let string = |table: &toml_edit::Table, k: &str| -> Result<Option<String>> {
        match table.get(k) {
            None => Ok(None),
            Some(Item::Value(Value::String(s))) => Ok(Some(s.value().clone())),
            Some(_) => Err(at(
                path,
                key_line(table, k),
                format!("{k} must be a string"),
            )),
        }
    };
    let service = match string(root, "service")? {
        Some(s) => s,
        None => default_service(path),
    };
    validate_entry(&service, "x").map_err(|e| {
        at(
            path,
            key_line(root, "service"),
            format!("service {service:?}: {}", e.message),
        )
    })?;
    let restart = string(root, "restart")?.unwrap_or_else(|| DEFAULT_RESTART.to_owned());
    let mut secrets = Vec::new();
    let Some(table) = root.get("secrets") else {
        return Ok(Manifest {
            path: path.to_path_buf(),
            service,
            restart,
            secrets,
        });
    };
    let Some(table) = table.as_table() else {
        return Err(at(
            path,
            key_line(root, "secrets"),
            "secrets must be a table of [secrets.NAME] sections",
        ));
    };
    for (name, item) in table.iter() {
        let line = key_line(table, name);
        if !crate::dotenv::valid_name(name) {
            return Err(at(
                path,
                line,
                format!(
                    "secret name {name:?} is not an environment variable name (letters, digits and '_', not starting with a digit)"
                ),
            ));
        }
        let Some(t) = item.as_table() else {
            return Err(at(path, line, format!("secrets.{name} must be a table")));
        };
        for (k, _) in t.iter() {
            if !SECRET_KEYS.contains(&k) {
                return Err(at(
                    path,
                    key_line(t, k),
                    format!(
                        "secrets.{name}: unknown key {k:?} (known: {})",
                        SECRET_KEYS.join(", ")
                    ),
                ));
            }
        }
        let Some(type_text) = string(t, "type")? else {
            return Err(at(
                path,
                line,
                format!("secrets.{name} has no type (one of {})", kind::KNOWN),
            ));
        };
        let kind = Kind::parse(&type_text)
            .map_err(|why| at(path, key_line(t, "type"), format!("secrets.{name}: {why}")))?;
        let hash = match string(t, "hash")? {
            None => HashScheme::default(),
            Some(h) => match (&kind, HashScheme::parse(&h)) {
                (Kind::Htpasswd(_), Some(s)) => s,
                (Kind::Htpasswd(_), None) => {
                    return Err(at(
                        path,
                        key_line(t, "hash"),
                        format!("secrets.{name}: unknown hash {h:?} (bcrypt or apr1)"),
                    ));
                }
                _ => {
                    return Err(at(
                        path,
                        key_line(t, "hash"),
                        format!("secrets.{name}: hash applies to htpasswd secrets only"),
                    ));
                }
            },
        };
        let mut stacks = Vec::new();
        match t.get("stacks") {
            None => {}
            Some(Item::Value(Value::Array(a))) => {
                for v in a.iter() {
                    let at_v = |m: String| at(path, line_of(text, v.span()), m);
                    let Some(s) = v.as_str() else {
                        return Err(at_v(format!("secrets.{name}: stacks must be strings")));
                    };
                    if let Some(why) = bad_stack(s) {
                        return Err(at_v(format!("secrets.{name}: stack {s:?} {why}")));
                    }
                    if !stacks.iter().any(|x| x == s) {
                        stacks.push(s.to_owned());
                    }
                }
            }
            Some(_) => {
                return Err(at(
                    path,
                    key_line(t, "stacks"),
                    format!("secrets.{name}: stacks must be a list, like [\"core\", \"auth\"]"),
                ));
            }
        }
        let flag = |k: &str| -> Result<Option<bool>> {
            match t.get(k) {
                None => Ok(None),
                Some(Item::Value(Value::Boolean(b))) => Ok(Some(*b.value())),
                Some(_) => Err(at(
                    path,
                    key_line(t, k),
                    format!("secrets.{name}: {k} must be true or false"),
                )),
            }
        };
        let required = match (flag("optional")?, flag("required")?) {
            (Some(o), Some(r)) if o == r => {
                return Err(at(
                    path,
                    line,
                    format!("secrets.{name} is both optional and required"),
                ));
            }
            (Some(o), _) => !o,
            (None, Some(r)) => r,
            (None, None) => true,
        };
        let entry = match string(t, "key")? {
            None => validate_entry(&service, name),
            Some(k) => match k.rsplit_once('/') {
                Some((svc, key)) => validate_entry(svc, key),
                None => Err(OvError::new(
                    "write it as SERVICE/KEY, like ov/api-key/openrouter",
                )),
            }
            .map_err(|e| {
                at(
                    path,
                    key_line(t, "key"),
                    format!("secrets.{name}: key {k:?}: {}", e.message),
                )
            }),
        }
        .map_err(|e| e.hint(ov_plugin_support::edit_command(path)))?;
        secrets.push(Decl {
            name: name.to_owned(),
            kind,
            hash,
            stacks,
            required,
            entry,
            purpose: string(t, "purpose")?,
            line,
        });
    }
    Ok(Manifest {
        path: path.to_path_buf(),
        service,
        restart,
        secrets,
    })
}

/// Why `name` cannot be a stack, if it cannot.
fn bad_stack(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.chars().any(char::is_whitespace) {
        Some("has a space in it; stack names are one word")
    } else if name == SHARED {
        Some("is reserved: `shared` means the secrets several stacks use")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Some("may hold only letters, digits, '-', '_' and '.'")
    } else {
        None
    }
}

/// `<project dir name>/secrets`, the project being the manifest's directory.
fn default_service(path: &Path) -> String {
    let dir = std::path::absolute(path)
        .ok()
        .and_then(|p| {
            p.parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "project".to_owned());
    format!("{dir}/secrets")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("/p/ov-secrets.toml"), text)
            .expect_err("refused")
            .message
    }

    #[test]
    fn the_issue_form_parses() {
        let m = parse(
            Path::new("/work/kompose/ov-secrets.toml"),
            r#"
[secrets.DB_PASSWORD]
type = "password:32"
stacks = ["core", "auth", "code"]
purpose = "PostgreSQL password for all services"
[secrets.OPENROUTER_API_KEY]
type = "skip"
optional = true
key = "ov/api-key/openrouter"
stacks = ["chain"]
"#,
        )
        .expect("parses");
        assert_eq!(m.service, "kompose/secrets");
        assert_eq!(
            m.secrets[0].entry,
            EntryRef::new("kompose/secrets", "DB_PASSWORD")
        );
        assert_eq!(m.secrets[0].line, 2);
        assert!(m.secrets[0].required && m.secrets[0].shared());
        assert_eq!(
            m.secrets[1].entry,
            EntryRef::new("ov/api-key", "openrouter")
        );
        assert!(!m.secrets[1].required);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = err("service = \"a/b\"\n[secrets.A]\ntype = \"password:0\"\n");
        assert!(e.starts_with("/p/ov-secrets.toml:3: "), "{e}");
        let e = err("[secrets.A]\ntype = \"hex:100000000\"\n");
        assert!(e.contains(":2: ") && e.contains("over 4096"), "{e}");
        let e = err("[secrets.A]\ntype = \"nope\"\n");
        assert!(e.contains(":2: ") && e.contains("unknown type"), "{e}");
        let e = err("[secrets.A]\ntype = \"uuid\"\n[secrets.A]\ntype = \"uuid\"\n");
        assert!(e.contains(":3") && e.contains("duplicate"), "{e}");
        let e = err("[secrets.A]\ntype = \"uuid\"\nstacks = [\"ok\",\n  \"my stack\"]\n");
        assert!(e.contains(":4: ") && e.contains("space"), "{e}");
        let e = err("[secrets.A]\ntype = \"uuid\n");
        assert!(e.contains("ov-secrets.toml:2"), "{e}");
    }
}
