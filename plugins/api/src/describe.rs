//! What a backend declares beyond its name and flags, so the engine serves
//! it without knowing it: the settings it owns, the secret that unlocks
//! it, and how a new store of its kind is made.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The type of a setting's value, which `ov settings set` checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SettingKind {
    /// One line of printable text.
    Text,
    /// A file path, absolute or starting with `~/`; backends see it with
    /// `~` expanded.
    Path,
    Bool,
    /// Whole seconds from 1 to 4294967295 (a kernel key's timeout).
    Seconds,
    /// An `ov://SERVICE/KEY` reference to an entry of another backend
    /// (a token kept in the keyring): the engine reads that entry from the
    /// other backends of the chain, never from the backend that declares
    /// the setting, and hands its value over in
    /// [`crate::Context::credentials`] under the setting's name. Only
    /// entries a user named this way are ever handed to a backend.
    Reference,
    /// One of a fixed set of words.
    Choice {
        choices: Vec<String>,
    },
    /// A kind a newer plugin declares and this engine does not know:
    /// checked as [`SettingKind::Text`].
    #[serde(other)]
    Unknown,
}

/// A setting a backend owns: `ov settings` lists it, type-checks it and
/// hands its value to the backend in [`crate::Context::settings`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SettingSpec {
    /// Dotted name, e.g. `secrets.kdbx_path`. Owned by one backend.
    pub name: String,
    #[serde(flatten)]
    pub kind: SettingKind,
    /// One line for `ov settings list`.
    pub about: String,
    /// The value when none is set, as the user would write it (`~/` is
    /// allowed and expanded for paths); `None`: unset.
    #[serde(default)]
    pub default: Option<String>,
    /// A value that only holds together with another setting's: setting
    /// this one records the other's value beside it, and the engine hides
    /// this one from the backend once the other names something else (a
    /// key file made for one database is never offered to another).
    #[serde(default)]
    pub binds: Option<Binding>,
}

/// See [`SettingSpec::binds`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Binding {
    /// The setting this one belongs with (a path setting).
    pub to: String,
    /// Where the engine records the value `to` had (itself a setting of
    /// kind [`SettingKind::Path`] the backend declares).
    pub recorded_as: String,
}

/// The secret a backend needs to open its store. The engine's unlock
/// chain serves it: the environment variable, then the kernel-keyring
/// cache, then a prompt on the terminal with retries, and a fast failure
/// where nobody can be asked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnlockSpec {
    /// What the secret is called in prompts and errors: `kdbx password`.
    pub label: String,
    /// The variable scripts and units set it in: `OV_KDBX_PASSWORD`.
    pub env: String,
    /// The backend's bool setting that turns the kernel-keyring cache on
    /// or off (on when absent).
    #[serde(default)]
    pub cache_setting: Option<String>,
    /// The backend's seconds setting for how long a cached secret lives
    /// (3600 when absent).
    #[serde(default)]
    pub cache_timeout_setting: Option<String>,
    /// Kernel-keyring key names earlier versions cached this secret under
    /// (`<name>:<target>`): read once, moved to the current name.
    #[serde(default)]
    pub legacy_cache_names: Vec<String>,
}

/// `ov secrets init`: make a new store of this backend's kind.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CreateRequest {
    /// Where, as the user gave it (absolute); `None`: the backend's default.
    #[serde(default)]
    pub location: Option<String>,
    /// Replace an existing store (its secrets are lost).
    #[serde(default)]
    pub force: bool,
    /// Make it the active store even though the current one holds entries.
    #[serde(default)]
    pub switch: bool,
    /// The unlock secret for the new store, when it takes one. The current
    /// store's secret, if the engine has it, is in `Context::unlock`.
    #[serde(default)]
    pub secret: Option<crate::Secret>,
    /// Only refuse now what the create would refuse, before the engine
    /// asks for a new secret; make nothing.
    #[serde(default)]
    pub check: bool,
    /// Backend-specific options by name (`key_file`: a key file that locks
    /// the store too, made if missing).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// What `create` did, for the engine to record and say.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Created {
    /// The new store's unlock target (its cache id), e.g. its path.
    pub target: String,
    /// Settings to write to the user's file: name → value; `None` unsets.
    #[serde(default)]
    pub settings: Vec<(String, Option<String>)>,
    /// Lines to print on stderr, in order.
    #[serde(default)]
    pub messages: Vec<String>,
}
