//! The provider's collections: one scan of labels and lock states, which of
//! them an operation may touch, and where writes go.

use ov_plugin_api::{BackendError, ErrorKind};
use ov_secret_service::bus::{self, Link, map_error};
use secret_service::blocking::Collection;

use crate::{LABEL_SETTING, q};

/// A collection whose label and lock state could be read.
pub(crate) struct Coll {
    pub c: Collection<'static>,
    pub path: String,
    pub label: String,
    pub locked: bool,
    pub is_default: bool,
}

/// A collection that answered with an error when asked for its properties.
pub(crate) struct Broken {
    pub path: String,
    pub reason: String,
}

/// Every collection the provider lists, default alias first.
pub(crate) struct Scan {
    pub colls: Vec<Coll>,
    pub broken: Vec<Broken>,
    /// Where the `default` alias points; `Ok(None)` when it is not set.
    pub default: Result<Option<String>, String>,
}

impl Scan {
    pub fn labels(&self) -> Vec<String> {
        self.colls.iter().map(|c| c.label.clone()).collect()
    }
}

/// Fail with `Unavailable` when the provider went away; keep other errors.
pub(crate) fn or_gone(
    e: &secret_service::Error,
    doing: &str,
) -> Result<BackendError, BackendError> {
    let be = map_error(e, doing);
    if be.kind == ErrorKind::Unavailable {
        Err(be)
    } else {
        Ok(be)
    }
}

pub(crate) fn scan(link: &'static Link) -> Result<Scan, BackendError> {
    let ss = link.ss()?;
    let all = ss
        .get_all_collections()
        .map_err(|e| map_error(&e, "list the keyring collections"))?;
    let default = match ss.get_default_collection() {
        Ok(c) => Ok(Some(c.collection_path.to_string())),
        Err(secret_service::Error::NoResult) => Ok(None),
        Err(e) => Err(or_gone(&e, "read the default alias")?.message),
    };
    let default_path = default.clone().ok().flatten();
    let mut colls = Vec::new();
    let mut broken = Vec::new();
    for c in all {
        let path = c.collection_path.to_string();
        let props = c
            .get_label()
            .and_then(|label| c.is_locked().map(|locked| (label, locked)));
        match props {
            Ok((label, locked)) => colls.push(Coll {
                is_default: default_path.as_deref() == Some(path.as_str()),
                c,
                path,
                label,
                locked,
            }),
            Err(e) => broken.push(Broken {
                reason: or_gone(&e, "read the collection's properties")?.message,
                path,
            }),
        }
    }
    colls.sort_by_key(|c| !c.is_default);
    Ok(Scan {
        colls,
        broken,
        default,
    })
}

/// The collections an operation may touch: the pinned ones, or all.
pub(crate) fn select<'s>(scan: &'s Scan, pin: Option<&str>) -> Result<Vec<&'s Coll>, BackendError> {
    let Some(pin) = pin else {
        return Ok(scan.colls.iter().collect());
    };
    let chosen: Vec<_> = scan.colls.iter().filter(|c| c.label == pin).collect();
    if chosen.is_empty() {
        return Err(pin_error(scan, pin));
    }
    Ok(chosen)
}

pub(crate) fn pin_error(scan: &Scan, pin: &str) -> BackendError {
    let labels = scan.labels();
    let present = if labels.is_empty() {
        "none".to_owned()
    } else {
        labels
            .iter()
            .map(|l| format!("{l:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let unreadable = if scan.broken.is_empty() {
        String::new()
    } else {
        format!("; {} more could not be read", scan.broken.len())
    };
    let mut err = BackendError::of(
        ErrorKind::InvalidInput,
        format!(
            "{LABEL_SETTING} is {pin:?}, but no Secret Service collection has that label \
             (labels present: {present}{unreadable})"
        ),
    );
    if let Some(first) = labels.first() {
        err = err.hint(format!("ov settings set {LABEL_SETTING} {}", q(first)));
    }
    err.hint(format!("ov settings unset {LABEL_SETTING}"))
}

/// The collection writes go to: the pinned one, or the default alias.
pub(crate) fn write_target<'s>(
    scan: &'s Scan,
    pin: Option<&str>,
) -> Result<&'s Coll, BackendError> {
    if let Some(pin) = pin {
        return select(scan, Some(pin)).map(|v| v[0]);
    }
    if let Some(c) = scan.colls.iter().find(|c| c.is_default) {
        return Ok(c);
    }
    let why = match &scan.default {
        Ok(None) => "the Secret Service has no default collection".to_owned(),
        Ok(Some(path)) => format!("the default collection {path} does not answer"),
        Err(reason) => format!("the default alias cannot be read: {reason}"),
    };
    Err(BackendError::of(
        ErrorKind::Unavailable,
        format!("{why}, so ov does not know where to write"),
    )
    .hint(pin_fix(scan)))
}

/// GNOME Keyring's in-memory collection: what is written there is gone at
/// logout, so ov never steers writes into it.
pub(crate) fn in_memory(c: &Coll) -> bool {
    c.path.ends_with("/collection/session")
}

/// With no persistent collection at all: GNOME Keyring creates the login
/// keyring, with the password given, and makes it the default.
pub const CREATE_LOGIN: &str = "read -rs PW && printf '%s' \"$PW\" | gnome-keyring-daemon --replace --unlock --components=secrets; unset PW   # GNOME Keyring: creates the login keyring with that password and makes it the default";

/// A label to pin to when the default does not work: the first healthy
/// persistent one, never the in-memory `session` collection, whose label
/// is empty (pinning to it would unpin) and whose items die at logout.
pub(crate) fn pin_fix(scan: &Scan) -> String {
    let persistent = || {
        scan.colls
            .iter()
            .filter(|c| !in_memory(c) && !c.label.is_empty())
    };
    match persistent().find(|c| !c.locked).or(persistent().next()) {
        Some(c) => format!("ov settings set {LABEL_SETTING} {}", q(&c.label)),
        None if scan.colls.is_empty() => {
            format!("{}   # no collection to write to", bus::START_PROVIDER)
        }
        None => CREATE_LOGIN.to_owned(),
    }
}
