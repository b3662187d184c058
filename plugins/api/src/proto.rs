//! Messages between the engine and a backend. Pure data: no I/O here.
//!
//! Every message is JSON on the wire. Unknown fields are ignored, unknown
//! request kinds decode to [`Request::Unsupported`] and unknown answers to
//! [`Response::Unknown`], so an engine and a plugin one minor version apart
//! still talk: the newer side gets a typed "unsupported" answer, the older
//! one a clear "newer than me" error, instead of a crash. The two sides
//! exchange their [`ProtocolVersion`] first ([`Request::Hello`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[cfg(test)]
use crate::ErrorKind;
use crate::{BackendError, Secret, SecretBytes};

/// The version of the messages in this module, exchanged at load time.
///
/// The major number changes when an existing message changes meaning or
/// shape (a field removed or retyped, an answer replaced): a host refuses a
/// plugin of another major. The minor number changes when something is
/// added that an older side can ignore or refuse cleanly (a new request, a
/// new answer, a new optional field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProtocolVersion {
    pub major: u32,
    pub minor: u32,
}

/// The protocol this crate speaks.
pub const PROTOCOL: ProtocolVersion = ProtocolVersion { major: 2, minor: 2 };

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What the engine tells a backend about the machine and the user's settings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Context {
    /// `$XDG_CONFIG_HOME/ov` (default `~/.config/ov`).
    pub config_dir: PathBuf,
    /// `$XDG_DATA_HOME/ov` (default `~/.local/share/ov`).
    #[serde(default)]
    pub data_dir: PathBuf,
    /// `$XDG_RUNTIME_DIR`, when there is one.
    #[serde(default)]
    pub runtime_dir: Option<PathBuf>,
    /// Effective settings (system defaults overlaid by the user's file),
    /// keyed by dotted name, e.g. `secrets.kdbx_path`.
    #[serde(default)]
    pub settings: BTreeMap<String, serde_json::Value>,
    /// A secret that opens the store (a kdbx password), when the engine has one.
    #[serde(default)]
    pub unlock: Option<Secret>,
    /// The engine caches `unlock` in the kernel keyring (it was typed at
    /// the prompt or came from the cache, and caching is on): a backend
    /// may then cache what it derives from it, under the same rules. False
    /// for a secret from the environment, which leaves nothing behind.
    #[serde(default)]
    pub unlock_cached: bool,
    /// The values of the backend's [`crate::SettingKind::Reference`]
    /// settings the user set, read by the engine from the other backends:
    /// setting name → the entry's value. Empty for every other backend.
    /// (Protocol 2.2; an older engine sends none.)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub credentials: BTreeMap<String, Secret>,
}

impl Context {
    pub fn setting_str(&self, key: &str) -> Option<&str> {
        self.settings.get(key).and_then(|v| v.as_str())
    }
}

/// Where a secret lives: a service (`ov/vnc`, `myapp/prod`) and a key in it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntryRef {
    pub service: String,
    pub key: String,
}

impl EntryRef {
    pub fn new(service: impl Into<String>, key: impl Into<String>) -> Self {
        EntryRef {
            service: service.into(),
            key: key.into(),
        }
    }
}

impl fmt::Display for EntryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service, self.key)
    }
}

/// What a backend is and what it can do.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Description {
    /// Short name used in settings and output: `env`, `keyring`, `kdbx`, `config`.
    pub name: String,
    pub version: String,
    /// One line for `ov plugins list`.
    #[serde(default)]
    pub summary: String,
    /// Place in the read chain; lower is consulted first.
    pub priority: u32,
    #[serde(default)]
    pub writable: bool,
    /// Values are stored unencrypted; writes warn.
    #[serde(default)]
    pub plaintext: bool,
    /// The backend needs `Context::unlock` to open its store.
    #[serde(default)]
    pub needs_unlock: bool,
    /// The backend can enumerate its entries.
    #[serde(default)]
    pub listable: bool,
    /// `get_when_unlocked` waits for something outside `ov`: an unlock,
    /// or the service behind the store coming up.
    #[serde(default)]
    pub waits: bool,
    /// The settings this backend owns.
    #[serde(default)]
    pub settings: Vec<crate::SettingSpec>,
    /// The secret that opens the store, served by the engine's unlock
    /// chain; `None` for stores that need none.
    #[serde(default)]
    pub unlock: Option<crate::UnlockSpec>,
    /// `ov secrets init` can make a new store of this kind (`create`).
    #[serde(default)]
    pub creates: bool,
}

/// Whether a backend can serve requests right now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Availability {
    Available {
        /// The file or endpoint the backend uses, for `ov secrets which`.
        #[serde(default)]
        location: Option<String>,
    },
    /// The store exists but needs unlocking first.
    Locked { reason: String },
    Unavailable {
        reason: String,
        /// The service behind the store is not up yet and may come (see
        /// [`BackendError::transient`]).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        transient: bool,
    },
}

impl Availability {
    pub fn is_available(&self) -> bool {
        matches!(self, Availability::Available { .. })
    }

    /// Unavailable for a reason that will not pass by itself.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Availability::Unavailable {
            reason: reason.into(),
            transient: false,
        }
    }

    /// Why a backend that may come up soon is not usable now.
    pub fn starting(&self) -> Option<&str> {
        match self {
            Availability::Unavailable {
                reason,
                transient: true,
            } => Some(reason),
            _ => None,
        }
    }
}

/// The state of one doctor check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Skip,
    Warn,
    Fail,
}

/// A fix the doctor may apply by itself with `--fix`: small, local, reversible.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AutoFix {
    /// `chmod MODE PATH`.
    Chmod { path: PathBuf, mode: u32 },
}

/// A finished check, as a backend reports it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckReport {
    /// Dotted id, the group first: `config.credentials_mode`.
    pub id: String,
    pub title: String,
    pub status: Status,
    /// One line saying what was found.
    pub finding: String,
    /// The exact command that fixes a warn or fail.
    #[serde(default)]
    pub fix: Option<String>,
    #[serde(default)]
    pub auto_fix: Option<AutoFix>,
    /// Ids of checks that must pass before this one means anything.
    #[serde(default)]
    pub depends_on: Vec<String>,
}

/// A doctor check a backend can run, declared before anything runs (for
/// `ov doctor --list` and to select and time each check on its own).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckDecl {
    /// Dotted id, the backend's name first: `config.credentials_mode`. A
    /// check that reports one line per thing it finds (`keyring.collection`)
    /// reports ids below its own (`keyring.collection.login`).
    pub id: String,
    pub title: String,
    /// Checks that run before this one; its body decides what their outcome
    /// means for it.
    #[serde(default)]
    pub depends_on: Vec<String>,
}

impl CheckDecl {
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Self {
        CheckDecl {
            id: id.into(),
            title: title.into(),
            depends_on: Vec::new(),
        }
    }

    pub fn after(mut self, dep: impl Into<String>) -> Self {
        self.depends_on.push(dep.into());
        self
    }
}

/// What `list` found, and what it could not see (a locked or unreadable
/// part of the store), as sentences for stderr.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryList {
    pub entries: Vec<EntryRef>,
    #[serde(default)]
    pub notices: Vec<String>,
}

impl From<Vec<EntryRef>> for EntryList {
    fn from(entries: Vec<EntryRef>) -> Self {
        EntryList {
            entries,
            notices: Vec::new(),
        }
    }
}

/// A request from the engine to a backend. The host lends what it sends
/// (a built-in backend reads it in place); a plugin decodes its own copy.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request<'a> {
    /// The first message: the host's protocol version; answered with the
    /// plugin's ([`Response::Hello`]) by the protocol code, not the backend.
    Hello {
        host: ProtocolVersion,
    },
    Describe,
    Probe {
        ctx: Cow<'a, Context>,
    },
    Get {
        ctx: Cow<'a, Context>,
        entry: Cow<'a, EntryRef>,
    },
    Set {
        ctx: Cow<'a, Context>,
        entry: Cow<'a, EntryRef>,
        value: Cow<'a, Secret>,
    },
    Delete {
        ctx: Cow<'a, Context>,
        entry: Cow<'a, EntryRef>,
    },
    List {
        ctx: Cow<'a, Context>,
        service: Option<String>,
    },
    /// The checks the backend can run ([`CheckDecl`]); no I/O.
    DeclareChecks,
    /// Run one declared check.
    RunCheck {
        ctx: Cow<'a, Context>,
        id: String,
    },
    WriteNotices {
        ctx: Cow<'a, Context>,
    },
    GetWhenUnlocked {
        ctx: Cow<'a, Context>,
        entry: Cow<'a, EntryRef>,
        timeout_ms: u64,
    },
    /// `get`, as the stored bytes (`ov secrets get --raw`).
    GetBytes {
        ctx: Cow<'a, Context>,
        entry: Cow<'a, EntryRef>,
    },
    /// What the unlock secret opens here (its cache id), if any.
    UnlockTarget {
        ctx: Cow<'a, Context>,
    },
    /// Open the store with `ctx.unlock` and close it again.
    VerifyUnlock {
        ctx: Cow<'a, Context>,
    },
    /// `ov secrets init`.
    Create {
        ctx: Cow<'a, Context>,
        request: Cow<'a, crate::CreateRequest>,
    },
    /// `ov secrets lock`: drop what the backend keeps to open the store
    /// without its secret.
    Lock {
        ctx: Cow<'a, Context>,
    },
    /// Anything this side does not know.
    #[serde(other)]
    Unsupported,
}

/// A backend's answer: `{"answer": KIND, "value": …}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "answer", content = "value", rename_all = "snake_case")]
pub enum Response {
    Hello(ProtocolVersion),
    Description(Box<Description>),
    Availability(Availability),
    Value(Option<Secret>),
    Bytes(Option<SecretBytes>),
    Done,
    Deleted(bool),
    Entries(EntryList),
    CheckList(Vec<CheckDecl>),
    Checks(Vec<CheckReport>),
    Notices(Vec<String>),
    Target(Option<String>),
    Created(Box<crate::Created>),
    Error(BackendError),
    /// An answer this side does not know (from a newer plugin); see
    /// [`Response::from_json`].
    #[serde(other)]
    Unknown,
}

impl Response {
    /// Decode an answer. One of a kind this side does not know is
    /// [`Response::Unknown`] whatever its value holds; one of a known kind
    /// that does not decode is an error.
    pub fn from_json(bytes: &[u8]) -> Result<Response, serde_json::Error> {
        serde_json::from_slice(bytes).or_else(|err| {
            // serde's catch-all takes no value: look again at the kind alone.
            let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
            if let Some(map) = value.as_object_mut() {
                map.remove("value");
            }
            match serde_json::from_value(value) {
                Ok(Response::Unknown) => Ok(Response::Unknown),
                _ => Err(err),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_request_kind_decodes_as_unsupported() {
        let req: Request = serde_json::from_str(r#"{"op":"rotate_everything","x":1}"#).unwrap();
        assert!(matches!(req, Request::Unsupported));
    }

    #[test]
    fn unknown_answer_kind_decodes_as_unknown() {
        for json in [
            r#"{"answer":"teleported","value":{"to":"mars"}}"#,
            r#"{"answer":"teleported"}"#,
        ] {
            let resp = Response::from_json(json.as_bytes()).unwrap();
            assert!(matches!(resp, Response::Unknown), "{json}");
        }
        let known = Response::from_json(br#"{"answer":"deleted","value":true}"#).unwrap();
        assert!(matches!(known, Response::Deleted(true)));
        // A known kind with a broken value stays an error.
        assert!(Response::from_json(br#"{"answer":"deleted","value":"x"}"#).is_err());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let json = r#"{"op":"get","ctx":{"config_dir":"/c","future":true},
                       "entry":{"service":"s","key":"k","flavour":"x"}}"#;
        let req: Request = serde_json::from_str(json).unwrap();
        match req {
            Request::Get { entry, .. } => assert_eq!(*entry, EntryRef::new("s", "k")),
            other => panic!("decoded as {other:?}"),
        }
    }

    #[test]
    fn unknown_error_kind_is_other() {
        let e: BackendError = serde_json::from_str(r#"{"kind":"quantum","message":"m"}"#).unwrap();
        assert_eq!(e.kind, ErrorKind::Other);
    }

    #[test]
    fn status_orders_by_severity() {
        assert!(
            Status::Fail > Status::Warn && Status::Warn > Status::Skip && Status::Skip > Status::Ok
        );
    }
}
