//! Which settings there are: the engine's one, and each installed
//! backend's, with its type; and the values they take.

use std::fmt;

use ov_plugin_api::{Binding, Description, SettingKind};
use serde::Serialize;

use crate::error::{OvError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Choice(Vec<String>),
    /// `secret_backend`: one of the installed writable backends or `auto`
    /// when set; read from a file, any backend name, so a setting naming a
    /// backend that is not installed is reported as such, not as a typo.
    Backend(Vec<String>),
    Text,
    Path,
    /// An `ov://SERVICE/KEY` reference to a store entry.
    Reference,
    Bool,
    Seconds,
}

impl Kind {
    pub(super) fn describe(&self) -> String {
        match self {
            Kind::Choice(c) | Kind::Backend(c) => format!("one of {}", c.join(", ")),
            Kind::Text => "text".into(),
            Kind::Reference => "a reference ov://SERVICE/KEY to a store entry".into(),
            Kind::Path => "an absolute file path or one starting with ~/".into(),
            Kind::Bool => "true or false".into(),
            Kind::Seconds => {
                format!(
                    "a whole number of seconds from 1 to {MAX_SECONDS} (the kernel keyring's limit)"
                )
            }
        }
    }

    fn of(kind: &SettingKind) -> Kind {
        match kind {
            SettingKind::Choice { choices } => Kind::Choice(choices.clone()),
            SettingKind::Path => Kind::Path,
            SettingKind::Reference => Kind::Reference,
            SettingKind::Bool => Kind::Bool,
            SettingKind::Seconds => Kind::Seconds,
            SettingKind::Text | SettingKind::Unknown => Kind::Text,
        }
    }
}

#[derive(Debug, Clone)]
pub struct KeySpec {
    pub name: String,
    pub kind: Kind,
    pub about: String,
    /// The value when none is set, as a user would write it; `{config_dir}`
    /// stands for ov's config directory.
    pub default: Option<String>,
    /// See [`SettingSpec::binds`].
    pub binds: Option<Binding>,
}

/// The longest time a `Seconds` setting may name: a kernel key's timeout
/// is an unsigned 32-bit number, and larger values wrap (2^32 would mean
/// "never expires", 2^32 + 1 one second).
pub const MAX_SECONDS: i64 = u32::MAX as i64;

/// The one setting the engine owns.
pub const BACKEND: &str = "secret_backend";

/// Every setting ov knows: its own, then each installed backend's, in
/// chain order. Anything else is refused.
#[derive(Debug, Clone, Default)]
pub struct Specs {
    keys: Vec<KeySpec>,
}

impl Specs {
    /// The engine's setting and those the backends declare.
    pub fn new<'a>(backends: impl IntoIterator<Item = &'a Description> + Clone) -> Specs {
        let writable: Vec<String> = backends
            .clone()
            .into_iter()
            .filter(|d| d.writable)
            .map(|d| d.name.clone())
            .collect();
        let mut choices = vec!["auto".to_owned()];
        choices.extend(writable.iter().cloned());
        let mut keys = vec![KeySpec {
            name: BACKEND.into(),
            kind: Kind::Backend(choices),
            about: format!(
                "backend that receives writes; auto picks the first available of {}",
                writable.join(", ")
            ),
            default: Some("auto".into()),
            binds: None,
        }];
        for d in backends {
            for s in &d.settings {
                // A name is owned by the first backend that declares it.
                if keys.iter().any(|k| k.name == s.name) {
                    continue;
                }
                keys.push(KeySpec {
                    name: s.name.clone(),
                    kind: Kind::of(&s.kind),
                    about: s.about.clone(),
                    default: s.default.clone(),
                    binds: s.binds.clone(),
                });
            }
        }
        Specs { keys }
    }

    /// The settings of the backends `host` loaded.
    pub fn of_host(host: &crate::host::Host) -> Specs {
        Specs::new(host.backends.iter().map(|b| &b.desc))
    }

    pub fn get(&self, name: &str) -> Option<&KeySpec> {
        self.keys.iter().find(|k| k.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &KeySpec> {
        self.keys.iter()
    }

    pub fn unknown_key(&self, name: &str) -> OvError {
        let valid: Vec<&str> = self.keys.iter().map(|k| k.name.as_str()).collect();
        OvError::usage(format!(
            "unknown setting '{name}'; valid settings: {}",
            valid.join(", ")
        ))
        .hint("ov settings list")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Text(String),
    Bool(bool),
    Int(i64),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
        }
    }
}

impl Value {
    pub(super) fn to_toml(&self) -> toml_edit::Value {
        match self {
            Value::Text(s) => s.as_str().into(),
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Text(s) => s.clone().into(),
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
        }
    }
}

/// Parse what the user typed after `ov settings set KEY`.
pub fn parse_value(spec: &KeySpec, raw: &str) -> Result<Value> {
    let bad = || {
        OvError::usage(format!(
            "'{raw}' is not a valid value for {}: expected {}",
            spec.name,
            spec.kind.describe()
        ))
    };
    match &spec.kind {
        Kind::Choice(choices) | Kind::Backend(choices) => {
            let v = raw.trim().to_ascii_lowercase();
            if choices.contains(&v) {
                Ok(Value::Text(v))
            } else {
                Err(bad().hint(format!("ov settings set {} {}", spec.name, choices[0])))
            }
        }
        Kind::Text => {
            if raw.chars().any(char::is_control) {
                Err(OvError::usage(format!(
                    "{} must be one line of printable text",
                    spec.name
                )))
            } else {
                Ok(Value::Text(raw.to_owned()))
            }
        }
        Kind::Reference => match crate::refs::parse(raw.trim()) {
            Ok(crate::refs::Reference::Entry(_)) => Ok(Value::Text(raw.trim().to_owned())),
            Ok(crate::refs::Reference::Manifest(_)) => {
                Err(bad().hint(format!("ov settings set {} ov://SERVICE/KEY", spec.name)))
            }
            Err(e) => Err(e.hint(format!("ov settings set {} ov://SERVICE/KEY", spec.name))),
        },
        Kind::Path => {
            if raw.trim().is_empty()
                || raw.chars().any(char::is_control)
                || !crate::paths::anchored(raw)
            {
                Err(bad().hint(format!(
                    "ov settings set {} ~/.config/ov/secrets.kdbx",
                    spec.name
                )))
            } else {
                Ok(Value::Text(raw.to_owned()))
            }
        }
        Kind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "off" | "0" => Ok(Value::Bool(false)),
            _ => Err(bad().hint(format!("ov settings set {} false", spec.name))),
        },
        Kind::Seconds => match raw.trim().parse::<i64>() {
            Ok(n) if (1..=MAX_SECONDS).contains(&n) => Ok(Value::Int(n)),
            _ => Err(bad().hint(format!("ov settings set {} 3600", spec.name))),
        },
    }
}

/// Check a value read from a file against its key's kind.
pub(super) fn typed_from_toml(spec: &KeySpec, item: &toml_edit::Value) -> Option<Value> {
    let v = match (&spec.kind, item) {
        (Kind::Backend(_), toml_edit::Value::String(s)) => {
            let name = s.value().trim().to_ascii_lowercase();
            let word = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            return word.then_some(Value::Text(name));
        }
        (Kind::Bool, toml_edit::Value::Boolean(b)) => Value::Bool(*b.value()),
        (Kind::Seconds, toml_edit::Value::Integer(i)) if (1..=MAX_SECONDS).contains(i.value()) => {
            Value::Int(*i.value())
        }
        (
            Kind::Choice(_) | Kind::Text | Kind::Path | Kind::Reference,
            toml_edit::Value::String(s),
        ) => {
            return parse_value(spec, s.value()).ok();
        }
        _ => return None,
    };
    Some(v)
}
