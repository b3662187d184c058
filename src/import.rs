//! The one rule every import follows — a `.env` file, another backend, a
//! backup file — so none of them can silently replace a stored value:
//!
//! - nothing stored yet: the value is imported (`+` in a dry run);
//! - the same value stored: `= kept`, and it counts as imported;
//! - a different value stored: `~ differs, kept`, not imported, unless
//!   `--force` replaces it, which is said on its line;
//! - a value ov would refuse to store (too large): `✗`, in a dry run too.
//!
//! A dry run goes through every check and stops only short of the write,
//! so it reports exactly what the import would do.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use ov_plugin_api::{Availability, EntryRef, Secret};

use crate::error::{OvError, Result};
use crate::host::Loaded;
use crate::store::{Store, Written, validate_entry, validate_value};

/// How an import treats what it finds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Check everything, write nothing.
    pub dry_run: bool,
    /// Replace a different stored value instead of keeping it.
    pub force: bool,
}

/// What happened (or, in a dry run, would happen) to one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored where nothing was.
    Imported,
    /// The target already holds this very value.
    Kept,
    /// The target holds a different value, left as it is.
    Differs,
    /// The target held a different value; `--force` replaced it.
    Replaced,
    /// Not stored, and why.
    Failed(String),
}

impl Outcome {
    /// The mark at the start of the entry's line.
    pub fn mark(&self, dry_run: bool) -> &'static str {
        match self {
            Outcome::Imported if dry_run => "+",
            Outcome::Imported => "✓",
            Outcome::Kept => "=",
            Outcome::Differs => "~",
            Outcome::Replaced => "!",
            Outcome::Failed(_) => "✗",
        }
    }

    /// What happened, for the end of the entry's line.
    pub fn describe(&self, dry_run: bool) -> String {
        match (self, dry_run) {
            (Outcome::Imported, true) => "would import".into(),
            (Outcome::Imported, false) => "imported".into(),
            (Outcome::Kept, _) => "kept (the same value is stored)".into(),
            (Outcome::Differs, _) => {
                "differs, kept (a different value is stored; --force replaces it)".into()
            }
            (Outcome::Replaced, true) => "differs, would replace the stored value".into(),
            (Outcome::Replaced, false) => "differs, replaced the stored value".into(),
            (Outcome::Failed(why), _) => why.clone(),
        }
    }

    /// Does the target hold the imported value afterwards?
    pub fn counts(&self) -> bool {
        matches!(self, Outcome::Imported | Outcome::Kept | Outcome::Replaced)
    }
}

/// Imports into one target backend, under [`Options`].
#[derive(Debug)]
pub struct Importer<'a> {
    store: &'a Store,
    pub target: &'a Loaded,
    pub opts: Options,
    /// The first write's report (plaintext, notices), said once per import.
    pub first_write: Option<Written>,
    /// Services that received a write, to re-seal afterwards.
    pub touched: BTreeSet<String>,
}

impl<'a> Importer<'a> {
    pub fn new(store: &'a Store, target: &'a Loaded, opts: Options) -> Self {
        Importer {
            store,
            target,
            opts,
            first_write: None,
            touched: BTreeSet::new(),
        }
    }

    /// Apply the rule to one entry. The outer error is fatal (the target
    /// cannot be opened at all); a refused value or a failed write is an
    /// [`Outcome::Failed`], so the other entries still go in.
    pub fn put(&mut self, entry: &EntryRef, value: &Secret) -> Result<Outcome> {
        if let Err(e) = validate_value(value) {
            return Ok(Outcome::Failed(e.message));
        }
        let planned = match self.store.get_from(self.target, entry)? {
            None => Outcome::Imported,
            Some(stored) if stored == *value => return Ok(Outcome::Kept),
            Some(_) if !self.opts.force => return Ok(Outcome::Differs),
            Some(_) => Outcome::Replaced,
        };
        if self.opts.dry_run {
            return Ok(planned);
        }
        match self.store.set_in(self.target, entry, value) {
            Ok(w) => {
                self.first_write.get_or_insert(w);
                self.touched.insert(entry.service.clone());
                Ok(planned)
            }
            Err(e) => Ok(Outcome::Failed(e.message)),
        }
    }

    /// Does the target, read back now, hold exactly `value`?
    pub fn verify(&self, entry: &EntryRef, value: &Secret) -> Result<bool> {
        Ok(self
            .store
            .get_from(self.target, entry)?
            .is_some_and(|v| v == *value))
    }

    /// The second half of a move, after a [`Importer::put`] that counts:
    /// delete `src`'s copy, but only once the target reads back `value`.
    /// `Err(why)` inside when the source copy was kept.
    pub fn take_from(
        &mut self,
        src: &Loaded,
        entry: &EntryRef,
        value: &Secret,
    ) -> Result<std::result::Result<(), String>> {
        if !self.verify(entry, value)? {
            // Never delete the only good copy.
            return Ok(Err(format!(
                "the copy in {} does not read back the same; kept in {}",
                self.target.desc.name, src.desc.name
            )));
        }
        match self.store.call(src, |c| src.backend.delete(c, entry))? {
            Ok(_) => {
                self.touched.insert(entry.service.clone());
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(format!(
                "copied, but not deleted from {}: {}",
                src.desc.name, e.message
            ))),
        }
    }
}

/// A backup as `ov secrets export` writes it: service → key → value.
pub type Backup = BTreeMap<String, BTreeMap<String, Secret>>;

/// The backends `ov secrets import [--from F] [--move]` copies from into
/// `target`: every other listable backend that can be reached, or `F`.
/// `F` down or locked is an error naming its state and fix, not "nothing
/// to import"; `--move` needs sources it can delete from.
pub fn sources<'a>(
    store: &'a Store,
    target: &Loaded,
    from: Option<&str>,
    moving: bool,
) -> Result<Vec<&'a Loaded>> {
    let candidate = |b: &&Loaded| {
        b.desc.listable && b.desc.name != target.desc.name && from.is_none_or(|f| f == b.desc.name)
    };
    let sources: Vec<&Loaded> = store
        .chain()
        .iter()
        .filter(candidate)
        // A backend that cannot be reached here (no keyring on a headless
        // box) has nothing to import.
        .filter(|b| store.probe(b).is_available())
        .collect();
    if let Some(f) = from
        && sources.is_empty()
    {
        // Listable but not reachable now: that is a backend that is down,
        // not one that cannot be imported from.
        if let Some(b) = store.chain().iter().find(candidate) {
            let (state, reason) = match store.probe(b) {
                Availability::Locked { reason } => ("locked", reason),
                Availability::Unavailable { reason, .. } => ("down", reason),
                Availability::Available { .. } => ("down", String::new()),
            };
            let mut e = OvError::new(format!(
                "cannot import from '{f}': the {f} is {state} ({reason}); nothing was imported"
            ));
            // The backend's own word on how to bring it up, when it has one.
            if let Err(be) = b.backend.list(store.context(), None) {
                for h in be.hints {
                    e = e.hint(h);
                }
            }
            if !e
                .hints
                .iter()
                .any(|h| h.starts_with(&format!("ov doctor {f}")))
            {
                e = e.hint(format!(
                    "ov doctor {f}   # why it is {state} and how to fix it"
                ));
            }
            return Err(e);
        }
        return Err(OvError::usage(format!(
            "cannot import from '{f}': it is not a listable backend other than the target ({})",
            target.desc.name
        ))
        .hint("ov plugins list"));
    }
    if moving && sources.iter().any(|s| !s.desc.writable) {
        let names: Vec<&str> = sources
            .iter()
            .filter(|s| !s.desc.writable)
            .map(|s| s.desc.name.as_str())
            .collect();
        return Err(OvError::usage(format!(
            "--move deletes from the source, and {} cannot be written",
            names.join(", ")
        ))
        .hint("ov secrets import --from config --move   # name a source ov can delete from"));
    }
    Ok(sources)
}

/// Read an export back: JSON (`--format json`) or YAML (the default). A
/// file that is neither, or not shaped service → key → value, is an error
/// before anything is written.
pub fn parse_backup(text: &str, name: &str) -> Result<Backup> {
    let refused = |why: String| {
        OvError::new(format!(
            "{name} is not a backup ov can read (service → key → value, as `ov secrets export` writes): {why}; nothing was imported"
        ))
        .hint("ov secrets export --format json > backup.json   # the shape ov reads back")
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let parsed = if text.trim_start().starts_with('{') {
        // serde_json, not the YAML parser: JSON leaves DEL and C1 raw,
        // which YAML forbids.
        serde_json::from_str::<Unique<Unique<Secret>>>(text).ok()
    } else {
        None
    };
    let parsed = match parsed {
        Some(p) => p,
        None => {
            if let Some(b) = parse_legacy_yaml(text) {
                return Ok(b);
            }
            match serde_norway::from_str::<Option<Unique<Unique<Secret>>>>(text) {
                Ok(p) => p.unwrap_or_default(),
                Err(e) => return Err(refused(shape_error(text, &e))),
            }
        }
    };
    // Which of two values given for one name is right is not ov's to guess.
    if let Some(service) = &parsed.repeated {
        return Err(refused(format!("service {service:?} appears twice")));
    }
    let mut backup = Backup::new();
    for (service, keys) in parsed.map {
        if let Some(key) = &keys.repeated {
            return Err(refused(format!(
                "key {key:?} appears twice in service {service:?}"
            )));
        }
        backup.insert(service, keys.map);
    }
    Ok(backup)
}

/// A map read in full that remembers a name given twice instead of
/// letting the last value win silently.
#[derive(Debug)]
struct Unique<V> {
    map: BTreeMap<String, V>,
    repeated: Option<String>,
}

impl<V> Default for Unique<V> {
    fn default() -> Self {
        Unique {
            map: BTreeMap::new(),
            repeated: None,
        }
    }
}

impl<'de, V: serde::Deserialize<'de>> serde::Deserialize<'de> for Unique<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = Unique<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> std::result::Result<Unique<V>, A::Error> {
                let mut out = Unique::default();
                while let Some(name) = access.next_key::<String>()? {
                    let value = access.next_value()?;
                    if out.map.insert(name.clone(), value).is_some() {
                        out.repeated.get_or_insert(name);
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// The YAML ov wrote before it used a YAML emitter: `"service":` lines and
/// `  "key": "value"` lines, every name and value a JSON string. Raw DEL
/// and C1 characters in it make YAML parsers refuse the file, and a raw
/// NEL reads back as a space, so such a backup is read as what it is, JSON
/// strings, and restores exactly. `None` when the text is not in that form.
fn parse_legacy_yaml(text: &str) -> Option<Backup> {
    if text.trim() == "{}" {
        return Some(Backup::new());
    }
    let mut backup = Backup::new();
    let mut service: Option<String> = None;
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(pair) = line.strip_prefix("  ") {
            let keys = backup.get_mut(service.as_ref()?)?;
            let pair: BTreeMap<String, Secret> =
                serde_json::from_str(&format!("{{{pair}}}")).ok()?;
            if pair.len() != 1 {
                return None;
            }
            let (key, value) = pair.into_iter().next()?;
            if keys.contains_key(&key) {
                // Not read as legacy: the YAML parser then names the repeat.
                return None;
            }
            keys.insert(key, value);
        } else {
            let name = line.strip_suffix(':').filter(|n| n.starts_with('"'))?;
            let name: String = serde_json::from_str(name).ok()?;
            backup.entry(name.clone()).or_default();
            service = Some(name);
        }
    }
    service.map(|_| backup)
}

/// Why a backup did not parse, in words that never quote a value: serde's
/// own type errors do ("invalid type: string \"…\""), and the file is
/// full of secrets.
fn shape_error(text: &str, e: &serde_norway::Error) -> String {
    use serde_norway::Value;
    let at = e
        .location()
        .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
        .unwrap_or_default();
    let Ok(doc) = serde_norway::from_str::<Value>(text) else {
        return format!("it is not valid YAML or JSON{at}");
    };
    let Value::Mapping(services) = doc else {
        return "the top level is not a map of services".into();
    };
    for (service, keys) in &services {
        let Some(service) = service.as_str() else {
            return "a service name is not text".into();
        };
        let Value::Mapping(keys) = keys else {
            return format!("service {service:?} is not a map of key → value");
        };
        for (key, value) in keys {
            let Some(key) = key.as_str() else {
                return format!("a key of service {service:?} is not text");
            };
            if !value.is_string() {
                return format!("the value of {service:?} {key:?} is not text");
            }
        }
    }
    format!("it does not have that shape{at}")
}

/// The entries of a backup, each checked as `ov secrets set` checks names.
pub fn backup_entries(backup: &Backup) -> Vec<(std::result::Result<EntryRef, String>, &Secret)> {
    backup
        .iter()
        .flat_map(|(service, keys)| {
            keys.iter().map(move |(key, value)| {
                (
                    validate_entry(service, key)
                        .map_err(|e| format!("{service} {key}: {}", e.message)),
                    value,
                )
            })
        })
        .collect()
}

/// Write a backup as YAML that any YAML 1.2 parser reads back to the same
/// strings (docs/decisions.md says why this emitter).
pub fn backup_yaml(backup: &BTreeMap<&str, BTreeMap<&str, &str>>) -> Result<String> {
    serde_norway::to_string(backup).map_err(|e| OvError::new(format!("cannot encode YAML: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: &str) -> String {
        let mut inner = BTreeMap::new();
        inner.insert("k", value);
        let mut outer = BTreeMap::new();
        outer.insert("s", inner);
        let text = backup_yaml(&outer).unwrap();
        let back = parse_backup(&text, "x").unwrap();
        back["s"]["k"].expose().to_owned()
    }

    #[test]
    fn awkward_characters_survive_yaml() {
        for v in [
            "\u{7f}",
            "\u{85}",
            "a\u{85}b",
            "\u{80}\u{9f}",
            "\u{2028}x\u{2029}",
            "\u{feff}bom",
            "\r\n",
            "a\rb\n",
            "  lead\n\ttab \n",
            "\u{fffe}\u{ffff}",
            "\0",
            "null",
            "~",
            "",
            "- x",
            "'\"",
            "# not a comment",
        ] {
            assert_eq!(round_trip(v), v, "{v:?}");
        }
    }

    #[test]
    fn a_backup_from_before_the_yaml_emitter_restores_exactly() {
        // What the hand-written emitter produced: JSON string literals.
        let old = |s: &str| serde_json::Value::from(s).to_string();
        let values = [
            "del\u{7f}",
            "nel\u{85}x",
            "c1\u{80}",
            "a\"b: c",
            "line\nbreak",
        ];
        let mut text = format!("{}:\n", old("ov/odd"));
        for (i, v) in values.iter().enumerate() {
            text.push_str(&format!("  {}: {}\n", old(&format!("k{i}")), old(v)));
        }
        text.push_str(&format!("{}:\n  {}: {}\n", old("b"), old("k"), old("v")));
        let back = parse_backup(&text, "x").unwrap();
        for (i, v) in values.iter().enumerate() {
            assert_eq!(back["ov/odd"][&format!("k{i}")].expose(), *v);
        }
        assert_eq!(back["b"]["k"].expose(), "v");
        assert!(parse_backup("{}\n", "x").unwrap().is_empty());
    }

    #[test]
    fn a_name_given_twice_is_refused_and_a_bom_or_crlf_is_not() {
        for text in [
            "{\"s\": {\"k\": \"1\"}, \"s\": {\"j\": \"2\"}}",
            "{\"s\": {\"k\": \"1\", \"k\": \"2\"}}",
            "s:\n  k: '1'\ns:\n  j: '2'\n",
            "s:\n  k: '1'\n  k: '2'\n",
            "\"s\":\n  \"k\": \"1\"\n  \"k\": \"2\"\n",
        ] {
            let e = parse_backup(text, "f").unwrap_err();
            assert!(
                e.message.contains("appears twice"),
                "{text:?}: {}",
                e.message
            );
        }
        for text in [
            "\u{feff}s:\r\n  k: v\r\n",
            "\u{feff}{\"s\": {\"k\": \"v\"}}",
        ] {
            assert_eq!(parse_backup(text, "f").unwrap()["s"]["k"].expose(), "v");
        }
    }

    #[test]
    fn neither_json_nor_yaml_is_refused() {
        assert!(parse_backup("{ not json", "f").is_err());
        assert!(parse_backup("- a\n- b\n", "f").is_err());
        assert!(parse_backup("s: [1, 2]\n", "f").is_err());
        assert!(parse_backup("", "f").unwrap().is_empty());
        // The reason names the place, never the value.
        for text in [
            "s: hunter2\n",
            "- hunter2\n",
            "s: {k: [hunter2]}\n",
            "hunter2",
        ] {
            let e = parse_backup(text, "f").unwrap_err();
            assert!(!e.message.contains("hunter2"), "{}", e.message);
        }
    }
}
