//! What the store's operations report: where a value came from, why a
//! read missed, what a listing could not see, what a write or delete did.

use std::collections::BTreeMap;

use ov_plugin_api::{BackendError, EntryRef};

use crate::error::{OvError, Result};

/// Where a value came from, for `ov secrets which` and `--json` output.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Source {
    pub backend: String,
    pub location: Option<String>,
}

/// Outcome of a read that found nothing: why each backend had nothing.
#[derive(Debug, Default)]
pub struct Miss {
    /// Backends that could not be asked, with their error (`transient`
    /// when the service behind one is not up yet).
    pub unavailable: Vec<(String, BackendError)>,
    /// Backends that are locked, with their error (its message says what
    /// is locked, its hints how to unlock it).
    pub locked: Vec<(String, BackendError)>,
    /// Backends `get --wait-unlock` waited on in vain, with why the wait
    /// ended.
    pub waited: Vec<(String, BackendError)>,
    /// The locked backends someone else can unlock while ov waits
    /// (`get --wait-unlock`).
    pub waitable: Vec<String>,
}

impl Miss {
    /// The backends not asked because their service is not up yet.
    pub fn starting(&self) -> impl Iterator<Item = &(String, BackendError)> {
        self.unavailable.iter().filter(|(_, e)| e.transient)
    }

    /// The backends not asked because their service did not answer.
    pub fn unresponsive(&self) -> impl Iterator<Item = &(String, BackendError)> {
        self.unavailable.iter().filter(|(_, e)| e.unresponsive)
    }

    /// Why the miss may not mean "not there", as sentences: what was
    /// locked, not up yet, or did not answer. Empty when every backend
    /// was asked and had nothing.
    pub fn reasons(&self) -> Vec<String> {
        self.locked
            .iter()
            .chain(&self.waited)
            .map(|(_, e)| e.message.clone())
            .chain(
                self.starting()
                    .map(|(name, e)| format!("{name} not searched: {}", e.message)),
            )
            .chain(
                self.unresponsive()
                    .map(|(name, e)| format!("{name} did not answer: {}", e.message)),
            )
            .collect()
    }

    /// The commands that would let a backend answer (unlock it, start its
    /// service), each once.
    pub fn hints(&self) -> Vec<String> {
        let mut hints: Vec<String> = Vec::new();
        for (_, e) in self
            .waited
            .iter()
            .chain(&self.locked)
            .chain(self.unresponsive())
            .chain(self.starting())
        {
            for h in &e.hints {
                if !hints.contains(h) {
                    hints.push(h.clone());
                }
            }
        }
        hints
    }
}

/// A listing across backends.
#[derive(Debug, Default)]
pub struct Listing {
    /// Each entry and the first backend in the chain that holds it.
    pub entries: BTreeMap<EntryRef, String>,
    /// What could not be seen, as sentences: a locked collection, a
    /// backend whose service is not up yet.
    pub unseen: Vec<String>,
    /// Backends that cannot be reached but held entries when last seen.
    pub unreachable: Vec<String>,
    /// What the caller should tell the user about what was seen (entries
    /// left out because ov cannot address their names), as sentences.
    pub notes: Vec<String>,
}

impl Listing {
    /// The entries, or an error saying what could not be seen, for a
    /// command that must not act on part of the store.
    pub fn complete(self, doing: &str) -> Result<BTreeMap<EntryRef, String>> {
        if self.unseen.is_empty() {
            return Ok(self.entries);
        }
        let mut e = OvError::new(format!("cannot {doing}: {}", self.unseen.join("; ")))
            .hint("ov doctor   # what is locked or not running");
        for name in &self.unreachable {
            e = e.hint(format!(
                "ov secrets forget {name}   # only if the {name} is gone for good: forget what it held"
            ));
        }
        Err(e)
    }
}

/// What `get --wait-unlock` waits on after a miss.
#[derive(Debug, Default)]
pub struct Wait {
    /// Locked backends someone else can unlock.
    pub locked: Vec<String>,
    /// Backends whose service is not up yet, with why.
    pub starting: Vec<(String, String)>,
}

/// What a delete did.
#[derive(Debug, Default)]
pub struct Deleted {
    /// Backends the entry was removed from.
    pub removed: Vec<String>,
    /// Writable backends not searched because their service is not up yet
    /// (name, why): a copy there remains.
    pub not_searched: Vec<(String, String)>,
}

/// What a write did, so the CLI can warn about plaintext once.
#[derive(Debug, Clone)]
pub struct Written {
    pub backend: String,
    pub plaintext: bool,
    pub location: Option<String>,
    /// What the backend said about the write (a format upgrade, say).
    pub notices: Vec<String>,
}
