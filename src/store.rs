//! The resolution chain: reads walk the backends in priority order (env,
//! keyring, kdbx, config) and the first hit wins; writes go to the backend
//! `secret_backend` forces, or to the first available writable one.

use std::collections::BTreeMap;

use ov_plugin_api::{
    Availability, BackendError, Context, EntryRef, ErrorKind, Secret, SecretBytes,
};

use crate::env_backend::variable_name;
use crate::error::{OvError, Result};
use crate::held::Held;
use crate::host::{Host, Loaded};
use crate::paths::Paths;
use crate::settings::Settings;
use crate::unlock::Unlocker;

/// The largest value ov stores.
pub use ov_plugin_api::MAX_VALUE_BYTES;

/// Refuse names that cannot round-trip through every backend.
pub fn validate_entry(service: &str, key: &str) -> Result<EntryRef> {
    for (what, name) in [("service", service), ("key", key)] {
        if name.is_empty() {
            return Err(OvError::usage(format!("the {what} name is empty"))
                .hint("ov secrets set ov/vnc password   # a service, then a key"));
        }
        if name.chars().any(char::is_control) {
            return Err(OvError::usage(format!(
                "the {what} name contains a control character (newline, tab, NUL …); \
                 names must be one printable line"
            )));
        }
        if let Some(c) = name.chars().find(|c| invisible(*c)) {
            return Err(OvError::usage(format!(
                "the {what} name contains U+{:04X}, an invisible or direction-changing \
                 character; a name must read as what it is",
                u32::from(c)
            )));
        }
        if name.len() > 256 {
            return Err(OvError::usage(format!(
                "the {what} name is {} bytes long; the limit is 256",
                name.len()
            )));
        }
    }
    if service.starts_with('/') || service.ends_with('/') || service.contains("//") {
        return Err(OvError::usage(format!(
            "service '{service}' has an empty path segment; write it like ov/vnc"
        )));
    }
    if service.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(OvError::usage(format!(
            "service '{service}' has a '.' or '..' segment; write it like ov/vnc"
        )));
    }
    Ok(EntryRef::new(service, key))
}

/// Characters that change how a name looks without showing themselves:
/// zero-width ones, bidirectional overrides and isolates, the BOM. A name
/// holding one can pose as another in every listing.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

pub fn validate_value(value: &Secret) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(OvError::usage(format!(
            "the value is {} bytes; the limit is {MAX_VALUE_BYTES} bytes (1 MiB)",
            value.len()
        ))
        .hint("store a path to the file instead, or keep large files in an encrypted volume"));
    }
    Ok(())
}

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

pub struct Store {
    ctx: Context,
    host: Host,
    /// The unlock chain of each backend that declares an unlock secret.
    unlockers: BTreeMap<String, Unlocker>,
    forced: Option<String>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("forced", &self.forced)
            .finish_non_exhaustive()
    }
}

pub fn context(paths: &Paths, settings: &Settings) -> Context {
    Context {
        config_dir: paths.config_dir.clone(),
        data_dir: paths.data_dir.clone(),
        runtime_dir: paths.runtime_dir.clone(),
        settings: settings.to_context_map(paths),
        unlock: None,
    }
}

fn location(avail: &Availability) -> Option<String> {
    match avail {
        Availability::Available { location } => location.clone(),
        _ => None,
    }
}

impl Store {
    pub fn new(paths: &Paths, settings: &Settings, host: Host) -> Store {
        let ctx = context(paths, settings);
        let unlockers = host
            .backends
            .iter()
            .filter_map(|b| {
                Unlocker::for_backend(b.backend.as_ref(), &ctx).map(|u| (b.desc.name.clone(), u))
            })
            .collect();
        Store {
            unlockers,
            ctx,
            host,
            forced: settings.forced_backend().map(str::to_owned),
        }
    }

    /// The unlock chain of backend `name`, if it declares a secret.
    pub fn unlocker(&self, name: &str) -> Option<&Unlocker> {
        self.unlockers.get(name)
    }

    /// Never prompt for an unlock secret (the doctor asks for nothing):
    /// the environment and the cache only.
    pub fn never_prompt(&mut self) {
        for u in self.unlockers.values_mut() {
            u.never_prompt();
        }
    }

    /// `ctx` with backend `b`'s unlock secret when one is at hand without
    /// asking (environment, cache), for work that must not prompt.
    pub fn quiet_context(&self, b: &Loaded) -> Context {
        let mut ctx = self.ctx.clone();
        if let Some(u) = self.unlocker(&b.desc.name) {
            ctx.unlock = u.quiet_secret();
        }
        ctx
    }

    /// Call a backend, unlocking it first when it says it is locked. The
    /// outer error is fatal (no terminal to ask, wrong password three
    /// times); the inner one is the backend's answer, for the caller to
    /// classify.
    pub fn call<T>(
        &self,
        b: &Loaded,
        op: impl Fn(&Context) -> std::result::Result<T, ov_plugin_api::BackendError>,
    ) -> Result<std::result::Result<T, ov_plugin_api::BackendError>> {
        let Some(unlocker) = self.unlocker(&b.desc.name) else {
            return Ok(op(&self.ctx));
        };
        match op(&self.ctx) {
            // Without a secret a store may still open (a key-file-only
            // database); if it refuses, the secret is what is missing.
            Err(e) if matches!(e.kind, ErrorKind::Locked | ErrorKind::WrongPassword) => {
                unlocker.run(&self.ctx, op).map(Ok)
            }
            other => Ok(other),
        }
    }

    /// One backend's value for an entry, unlocking as needed.
    pub fn get_from(&self, b: &Loaded, entry: &EntryRef) -> Result<Option<Secret>> {
        Ok(self.call(b, |c| b.backend.get(c, entry))??)
    }

    /// The backends in read order.
    pub fn chain(&self) -> &[Loaded] {
        &self.host.backends
    }

    /// Fill in where `source`'s backend keeps its values (its file, its
    /// bus…), for `ov secrets which`.
    pub fn locate(&self, source: &mut Source) {
        if source.location.is_some() {
            return;
        }
        if let Some(b) = self.chain().iter().find(|b| b.desc.name == source.backend) {
            source.location = location(&b.backend.probe(&self.ctx));
        }
    }

    /// First hit in the chain, with its source; `Err(Miss)` when none has it.
    pub fn get(&self, entry: &EntryRef) -> Result<std::result::Result<(Secret, Source), Miss>> {
        self.first(entry, |b, c| b.backend.get(c, entry))
    }

    /// [`Store::get`] as the bytes the store holds (`ov secrets get --raw`).
    pub fn get_bytes(
        &self,
        entry: &EntryRef,
    ) -> Result<std::result::Result<(SecretBytes, Source), Miss>> {
        self.first(entry, |b, c| b.backend.get_bytes(c, entry))
    }

    /// Ask each backend in chain order with `read`; the first value wins.
    fn first<T>(
        &self,
        entry: &EntryRef,
        read: impl Fn(&Loaded, &Context) -> std::result::Result<Option<T>, BackendError>,
    ) -> Result<std::result::Result<(T, Source), Miss>> {
        let mut miss = Miss::default();
        for b in self.chain() {
            match self.call(b, |c| read(b, c))? {
                Ok(Some(value)) => {
                    // Where a backend lives costs a probe (a bus round trip
                    // for the keyring); `which` asks for it, a read does not.
                    let location =
                        (b.desc.name == "env").then(|| format!("${}", variable_name(entry)));
                    return Ok(Ok((
                        value,
                        Source {
                            backend: b.desc.name.clone(),
                            location,
                        },
                    )));
                }
                Ok(None) => {}
                Err(e) if e.kind == ErrorKind::Unavailable => {
                    miss.unavailable.push((b.desc.name.clone(), e));
                }
                Err(e) if e.kind == ErrorKind::Locked => {
                    if b.desc.waits {
                        miss.waitable.push(b.desc.name.clone());
                    }
                    miss.locked.push((b.desc.name.clone(), e));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Err(miss))
    }

    /// The backend `secret_backend` forces writes to, if any.
    pub fn forced(&self) -> Option<&str> {
        self.forced.as_deref()
    }

    /// The backend that receives writes.
    pub fn write_target(&self) -> Result<&Loaded> {
        self.pick_writer().map(|(target, _)| target)
    }

    /// The backend that receives writes, and the ones before it in the
    /// chain that were passed over only because their service is not up
    /// yet (name, why): a write that lands further down says so.
    fn pick_writer(&self) -> Result<(&Loaded, Vec<(String, String)>)> {
        if let Some(name) = &self.forced {
            let b = self.host.backend(name).ok_or_else(|| {
                OvError::new(format!(
                    "secret_backend is set to '{name}', but no {name} backend is installed"
                ))
                .hint("ov plugins list")
                .hint("ov settings set secret_backend auto")
            })?;
            if !b.desc.writable {
                return Err(OvError::new(format!("the {name} backend is read-only")));
            }
            return match b.backend.probe(&self.ctx) {
                Availability::Available { .. } => Ok((b, Vec::new())),
                Availability::Locked { reason } | Availability::Unavailable { reason, .. } => {
                    Err(OvError::new(format!(
                        "secret_backend is set to '{name}', which cannot be used now: {reason}"
                    ))
                    .hint(format!("ov doctor {name}"))
                    .hint("ov settings set secret_backend auto"))
                }
            };
        }
        let mut reasons = Vec::new();
        let mut passed_over = Vec::new();
        for b in self.chain().iter().filter(|b| b.desc.writable) {
            let probe = b.backend.probe(&self.ctx);
            if let Some(why) = probe.starting() {
                passed_over.push((b.desc.name.clone(), why.to_owned()));
            }
            match probe {
                Availability::Available { .. } => return Ok((b, passed_over)),
                Availability::Locked { reason } | Availability::Unavailable { reason, .. } => {
                    reasons.push(format!("{}: {reason}", b.desc.name));
                }
            }
        }
        Err(OvError::new(format!(
            "no writable backend is available ({})",
            if reasons.is_empty() {
                "none installed".to_owned()
            } else {
                reasons.join("; ")
            }
        ))
        .hint("ov doctor backends"))
    }

    pub fn set(&self, entry: &EntryRef, value: &Secret) -> Result<Written> {
        validate_value(value)?;
        let (target, passed_over) = self.pick_writer()?;
        let mut written = self.set_in(target, entry, value)?;
        for (name, why) in passed_over {
            written.notices.insert(0, format!("{name} not used: {why}"));
        }
        Ok(written)
    }

    pub fn set_in(&self, target: &Loaded, entry: &EntryRef, value: &Secret) -> Result<Written> {
        let notices = target.backend.write_notices(&self.ctx);
        self.call(target, |c| target.backend.set(c, entry, value))??;
        if target.desc.listable {
            Held::new(&self.ctx.data_dir).holds(&target.desc.name, &entry.service);
        }
        Ok(Written {
            backend: target.desc.name.clone(),
            plaintext: target.desc.plaintext,
            location: location(&target.backend.probe(&self.ctx)),
            notices,
        })
    }

    /// Remove the entry from every writable backend that holds it, so a
    /// stale copy further down the chain cannot answer the next read.
    /// Returns the backends it was removed from.
    pub fn delete(&self, entry: &EntryRef) -> Result<Deleted> {
        let mut done = Deleted::default();
        for b in self.chain().iter().filter(|b| b.desc.writable) {
            let probe = b.backend.probe(&self.ctx);
            if let Some(why) = probe.starting() {
                done.not_searched
                    .push((b.desc.name.clone(), why.to_owned()));
            }
            if !probe.is_available() {
                continue;
            }
            if self.call(b, |c| b.backend.delete(c, entry))?? {
                done.removed.push(b.desc.name.clone());
            }
        }
        Ok(done)
    }

    /// Remove the entry from the backend named `name` only; whether it held
    /// a copy. An unknown, read-only or unreachable backend is an error.
    pub fn delete_in(&self, name: &str, entry: &EntryRef) -> Result<bool> {
        let b = self.host.backend(name).ok_or_else(|| {
            OvError::usage(format!("there is no backend named '{name}'"))
                .hint("ov secrets path --all   # the backends and where they keep values")
        })?;
        if !b.desc.writable {
            return Err(OvError::usage(format!(
                "the {name} backend is read-only; ov cannot delete from it"
            )));
        }
        match b.backend.probe(&self.ctx) {
            Availability::Locked { .. } | Availability::Available { .. } => {}
            Availability::Unavailable { reason, .. } => {
                return Err(OvError::new(format!("{name} cannot be used now: {reason}"))
                    .hint(format!("ov doctor {name}")));
            }
        }
        Ok(self.call(b, |c| b.backend.delete(c, entry))??)
    }

    /// Entries across every listable backend; the first backend in the chain
    /// that holds an entry is its source. What could not be seen (a locked
    /// collection, a keyring whose provider is not up yet) is said on stderr.
    pub fn list(&self, service: Option<&str>) -> Result<BTreeMap<EntryRef, String>> {
        let listing = self.listing(service)?;
        for n in &listing.unseen {
            eprintln!("ov: note: {n}");
        }
        Ok(listing.entries)
    }

    /// Entries across every listable backend, and what could not be seen.
    pub fn listing(&self, service: Option<&str>) -> Result<Listing> {
        let mut out = Listing::default();
        let held = Held::new(&self.ctx.data_dir);
        for b in self.chain().iter().filter(|b| b.desc.listable) {
            let probe = b.backend.probe(&self.ctx);
            if let Some(why) = probe.starting() {
                // Not the quiet absence of a server's keyring: this one
                // may hold entries, so an empty listing must not look final.
                out.unseen
                    .push(format!("{} not listed: {why}", b.desc.name));
            } else if let Availability::Unavailable { reason, .. }
            | Availability::Locked { reason } = &probe
            {
                // Unreachable is not empty: a backend that held entries the
                // last time ov saw it (a keyring over ssh, where there is no
                // session bus) must not count as holding none.
                let services = held.services(&b.desc.name, service);
                if !services.is_empty() {
                    out.unreachable.push(b.desc.name.clone());
                    out.unseen.push(format!(
                        "{} not listed: it held entries of {} when ov last saw it, and cannot be reached now ({reason})",
                        b.desc.name,
                        name_some(&services)
                    ));
                }
            }
            if !probe.is_available() {
                continue;
            }
            let mut unnamable = Vec::new();
            let mut found = std::collections::BTreeSet::new();
            // What the listing could not see comes with it (a locked
            // collection), so a listing that leaves it out does not look
            // like lost secrets.
            let listed = self.call(b, |c| b.backend.list(c, service))??;
            let notices = listed.notices;
            for e in listed.entries {
                found.insert(e.service.clone());
                // Another tool's item can carry a name ov's commands would
                // refuse (`https://host`): listing it would promise a `get`
                // that cannot be typed.
                if validate_entry(&e.service, &e.key).is_err() {
                    unnamable.push(e);
                    continue;
                }
                out.entries.entry(e).or_insert_with(|| b.desc.name.clone());
            }
            if let Some(first) = unnamable.first() {
                eprintln!(
                    "ov: note: {} entr{} in {} not listed: the name is not one ov can address \
                     (such as service {:?}, key {:?})",
                    unnamable.len(),
                    if unnamable.len() == 1 { "y" } else { "ies" },
                    b.desc.name,
                    first.service,
                    first.key
                );
            }
            if notices.is_empty() {
                held.listed(&b.desc.name, service, found);
            } else {
                // Part of it was seen: what it holds can only grow.
                for svc in &found {
                    held.holds(&b.desc.name, svc);
                }
            }
            out.unseen.extend(notices);
        }
        Ok(out)
    }

    /// Entries of one backend, for import.
    /// The context every backend is called with.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// A backend by name.
    pub fn backend(&self, name: &str) -> Option<&Loaded> {
        self.host.backend(name)
    }

    /// Whether backend `b` can serve requests now, and where it keeps
    /// its values.
    pub fn probe(&self, b: &Loaded) -> Availability {
        b.backend.probe(&self.ctx)
    }

    /// Each backend in chain order with its state, for `ov secrets path --all`.
    pub fn locations(&self) -> Vec<(&str, Availability)> {
        self.chain()
            .iter()
            .map(|b| (b.desc.name.as_str(), self.probe(b)))
            .collect()
    }

    /// The value backend `name` holds for `entry`, unlocking it as needed
    /// (`None` for an unknown backend too).
    pub fn get_in(&self, name: &str, entry: &EntryRef) -> Result<Option<Secret>> {
        match self.backend(name) {
            Some(b) => self.get_from(b, entry),
            None => Ok(None),
        }
    }

    /// The first encrypted backend that can list and take writes and is
    /// not down: where plaintext entries should move.
    pub fn encrypted_home(&self) -> Option<&str> {
        self.chain()
            .iter()
            .find(|b| {
                b.desc.writable
                    && !b.desc.plaintext
                    && b.desc.listable
                    && !matches!(self.probe(b), Availability::Unavailable { .. })
            })
            .map(|b| b.desc.name.as_str())
    }

    /// The backends a missed read may wait on (`get --wait-unlock`):
    /// locked ones someone else can unlock first, then ones whose service
    /// is not up yet. Names with why, for the CLI to say what it waits for.
    pub fn waits_for(&self, miss: &Miss) -> Wait {
        let waits = |name: &str| self.backend(name).is_some_and(|b| b.desc.waits);
        Wait {
            locked: miss
                .locked
                .iter()
                .map(|(n, _)| n.clone())
                .filter(|n| waits(n))
                .collect(),
            starting: miss
                .starting()
                .filter(|(n, _)| waits(n))
                .map(|(n, e)| (n.clone(), e.message.clone()))
                .collect(),
        }
    }

    /// Wait up to `ms` on each backend of `wait` in turn for `entry`:
    /// the first value wins (as bytes with `raw`); a backend still locked
    /// or absent moves from `miss`'s lists to its `waited` one, with the
    /// wait's own words. A backend that declares an unlock secret is asked
    /// through the unlock chain.
    pub fn get_waiting(
        &self,
        entry: &EntryRef,
        wait: &Wait,
        ms: u64,
        raw: bool,
        miss: &mut Miss,
    ) -> Result<Option<SecretBytes>> {
        let names = wait
            .locked
            .iter()
            .chain(wait.starting.iter().map(|(n, _)| n));
        for name in names {
            let Some(b) = self.backend(name) else {
                continue;
            };
            match self.call(b, |c| b.backend.get_when_unlocked(c, entry, ms))? {
                Err(e) if matches!(e.kind, ErrorKind::Locked | ErrorKind::Unavailable) => {
                    miss.locked.retain(|(n, _)| n != name);
                    miss.unavailable.retain(|(n, _)| n != name);
                    miss.waited.push((name.clone(), e));
                }
                Ok(None) => {}
                // Readable now. Raw: the bytes as stored, also when they
                // are not the text the wait read them as.
                _ if raw => {
                    if let Some(bytes) = self.call(b, |c| b.backend.get_bytes(c, entry))?? {
                        return Ok(Some(bytes));
                    }
                }
                Ok(Some(value)) => return Ok(Some(SecretBytes::from(value))),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// Every entry of backend `b`: a complete listing, so it is also what
    /// `b` is recorded as holding.
    pub fn list_in(&self, b: &Loaded) -> Result<Vec<EntryRef>> {
        let entries = self.call(b, |c| b.backend.list(c, None))??.entries;
        let found = entries.iter().map(|e| e.service.clone()).collect();
        Held::new(&self.ctx.data_dir).listed(&b.desc.name, None, found);
        Ok(entries)
    }
}

/// `a/prod`, `a/prod and b/prod`, `a/prod, b/prod and 3 more`.
fn name_some(services: &[String]) -> String {
    match services {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [a, b, rest @ ..] => format!("{a}, {b} and {} more", rest.len()),
    }
}

/// `n` bytes from the system's random number generator.
pub fn random_bytes(n: usize) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let mut bytes = zeroize::Zeroizing::new(vec![0u8; n]);
    getrandom::fill(&mut bytes)
        .map_err(|e| OvError::new(format!("the system random number generator failed: {e}")))?;
    Ok(bytes)
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> Result<Secret> {
    let bytes = random_bytes(n)?;
    let mut s = String::with_capacity(n * 2);
    for b in bytes.iter() {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    Ok(Secret::new(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Mutex;

    use ov_plugin_api::{Backend, Description, EntryList};

    use crate::host::{Loaded, Origin, linked};

    /// A backend that keeps its entries in memory and answers as told.
    #[derive(Debug)]
    struct Mem {
        name: &'static str,
        writable: bool,
        /// What `probe` says.
        avail: Availability,
        /// Every read, write and listing fails with this.
        fails: Option<ErrorKind>,
        data: Mutex<BTreeMap<EntryRef, String>>,
        notices: Vec<String>,
    }

    fn mem(name: &'static str) -> Mem {
        Mem {
            name,
            writable: true,
            avail: Availability::Available { location: None },
            fails: None,
            data: Mutex::new(BTreeMap::new()),
            notices: Vec::new(),
        }
    }

    impl Mem {
        fn holding(self, service: &str, key: &str, value: &str) -> Mem {
            self.data
                .lock()
                .expect("lock")
                .insert(EntryRef::new(service, key), value.to_owned());
            self
        }

        fn check(&self) -> std::result::Result<(), BackendError> {
            match self.fails {
                Some(kind) => Err(BackendError::new(kind, format!("{} says no", self.name))),
                None => Ok(()),
            }
        }
    }

    impl Backend for Mem {
        fn describe(&self) -> Description {
            Description {
                name: self.name.into(),
                version: "0".into(),
                summary: String::new(),
                priority: 0,
                writable: self.writable,
                plaintext: false,
                needs_unlock: false,
                listable: true,
                waits: false,
                ..Description::default()
            }
        }

        fn probe(&self, _ctx: &Context) -> Availability {
            self.avail.clone()
        }

        fn get(
            &self,
            _ctx: &Context,
            entry: &EntryRef,
        ) -> std::result::Result<Option<Secret>, BackendError> {
            self.check()?;
            let data = self.data.lock().expect("lock");
            Ok(data.get(entry).map(|v| Secret::from(v.as_str())))
        }

        fn set(
            &self,
            _ctx: &Context,
            entry: &EntryRef,
            value: &Secret,
        ) -> std::result::Result<(), BackendError> {
            self.check()?;
            let mut data = self.data.lock().expect("lock");
            data.insert(entry.clone(), value.expose().to_owned());
            Ok(())
        }

        fn delete(
            &self,
            _ctx: &Context,
            entry: &EntryRef,
        ) -> std::result::Result<bool, BackendError> {
            self.check()?;
            Ok(self.data.lock().expect("lock").remove(entry).is_some())
        }

        fn list(
            &self,
            _ctx: &Context,
            _service: Option<&str>,
        ) -> std::result::Result<EntryList, BackendError> {
            self.check()?;
            Ok(EntryList {
                entries: self.data.lock().expect("lock").keys().cloned().collect(),
                notices: self.notices.clone(),
            })
        }
    }

    /// A store over `chain` (in read order), with `settings` as the
    /// user's config file, in a fresh temporary home.
    fn store(chain: Vec<Mem>, settings: &str) -> (Store, tempfile::TempDir) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let paths = Paths {
            home: tmp.path().join("home"),
            config_dir: tmp.path().join("config"),
            data_dir: tmp.path().join("data"),
            runtime_dir: None,
            system_config_dir: tmp.path().join("etc"),
        };
        std::fs::create_dir_all(&paths.config_dir).expect("mkdir");
        std::fs::write(paths.user_config(), settings).expect("write settings");
        let host = Host {
            plugins: Vec::new(),
            backends: chain
                .into_iter()
                .map(|m| {
                    let backend = linked(m);
                    Loaded {
                        desc: backend.describe(),
                        origin: Origin::BuiltIn,
                        backend,
                    }
                })
                .collect(),
        };
        let settings =
            Settings::load(&paths, &crate::settings::Specs::of_host(&host)).expect("settings");
        (Store::new(&paths, &settings, host), tmp)
    }

    fn entry() -> EntryRef {
        EntryRef::new("svc", "k")
    }

    fn down(reason: &str) -> Availability {
        Availability::unavailable(reason)
    }

    #[test]
    fn first_backend_in_the_chain_that_holds_the_entry_wins() {
        let (store, _tmp) = store(
            vec![
                mem("keyring"),
                mem("kdbx").holding("svc", "k", "from-kdbx"),
                mem("config").holding("svc", "k", "from-config"),
            ],
            "",
        );
        let (value, source) = store.get(&entry()).unwrap().unwrap();
        assert_eq!(value.expose(), "from-kdbx");
        assert_eq!(source.backend, "kdbx");
        assert_eq!(source.location, None);
    }

    #[test]
    fn a_miss_says_which_backends_could_not_be_asked() {
        let mut keyring = mem("keyring");
        keyring.fails = Some(ErrorKind::Unavailable);
        let mut kdbx = mem("kdbx");
        kdbx.fails = Some(ErrorKind::Locked);
        let (store, _tmp) = store(vec![keyring, kdbx, mem("config")], "");
        let miss = store.get(&entry()).unwrap().unwrap_err();
        let names =
            |v: &[(String, BackendError)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&miss.unavailable), ["keyring"]);
        assert_eq!(names(&miss.locked), ["kdbx"]);
        assert!(miss.waited.is_empty());
    }

    #[test]
    fn another_error_stops_the_chain_instead_of_reading_further_down() {
        let mut kdbx = mem("kdbx");
        kdbx.fails = Some(ErrorKind::Corrupt);
        let (store, _tmp) = store(vec![kdbx, mem("config").holding("svc", "k", "stale")], "");
        let err = store.get(&entry()).unwrap_err();
        assert!(err.message.contains("kdbx says no"), "{}", err.message);
    }

    #[test]
    fn writes_go_to_the_first_available_writable_backend() {
        let mut env = mem("keyring");
        env.writable = false;
        let mut kdbx = mem("kdbx");
        kdbx.avail = Availability::Unavailable {
            reason: "provider starting".into(),
            transient: true,
        };
        let (store, _tmp) = store(vec![env, kdbx, mem("config")], "");
        let written = store.set(&entry(), &Secret::from("v")).unwrap();
        assert_eq!(written.backend, "config");
        // The backend passed over only because it is starting is named.
        assert_eq!(written.notices, ["kdbx not used: provider starting"]);
        let (value, source) = store.get(&entry()).unwrap().unwrap();
        assert_eq!((value.expose(), source.backend.as_str()), ("v", "config"));
    }

    #[test]
    fn a_forced_backend_takes_writes_or_says_why_not() {
        let (forced, _tmp) = store(
            vec![mem("kdbx"), mem("config")],
            "secret_backend = \"config\"\n",
        );
        assert_eq!(forced.write_target().unwrap().desc.name, "config");

        let mut config = mem("config");
        config.avail = down("file gone");
        let (unusable, _tmp) = store(vec![mem("kdbx"), config], "secret_backend = \"config\"\n");
        let err = unusable.set(&entry(), &Secret::from("v")).unwrap_err();
        assert!(
            err.message
                .contains("secret_backend is set to 'config', which cannot be used now: file gone"),
            "{}",
            err.message
        );
        assert_eq!(err.hints[0], "ov doctor config");

        let (missing, _tmp) = store(vec![mem("config")], "secret_backend = \"kdbx\"\n");
        let err = missing.write_target().unwrap_err();
        assert!(
            err.message.contains("no kdbx backend is installed"),
            "{}",
            err.message
        );
    }

    #[test]
    fn no_writable_backend_names_each_reason() {
        let mut kdbx = mem("kdbx");
        kdbx.avail = down("no database");
        let mut config = mem("config");
        config.writable = false;
        let (store, _tmp) = store(vec![kdbx, config], "");
        let err = store.write_target().unwrap_err();
        assert!(
            err.message
                .contains("no writable backend is available (kdbx: no database)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn delete_removes_every_copy_and_listing_credits_the_first_holder() {
        let mut keyring = mem("keyring").holding("svc", "k", "a");
        keyring.notices = vec!["collection Work is locked".into()];
        let (store, _tmp) = store(
            vec![
                keyring,
                mem("kdbx")
                    .holding("svc", "k", "b")
                    .holding("svc", "only", "c"),
            ],
            "",
        );
        let listing = store.listing(None).unwrap();
        assert_eq!(listing.entries[&entry()], "keyring");
        assert_eq!(listing.entries[&EntryRef::new("svc", "only")], "kdbx");
        // What a backend could not see comes with its listing.
        assert_eq!(listing.unseen, ["collection Work is locked"]);
        assert!(listing.complete("export").is_err());

        let done = store.delete(&entry()).unwrap();
        assert_eq!(done.removed, ["keyring", "kdbx"]);
        assert!(store.get(&entry()).unwrap().is_err());
    }

    #[test]
    fn random_hex_has_the_right_shape() {
        let s = random_hex(16).unwrap();
        assert_eq!(s.len(), 32);
        assert!(s.expose().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(random_hex(16).unwrap().expose(), s.expose());
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(validate_entry("", "k").is_err());
        assert!(validate_entry("s", "").is_err());
        assert!(validate_entry("s\n", "k").is_err());
        assert!(validate_entry("s", "k\0").is_err());
        assert!(validate_entry("/s", "k").is_err());
        assert!(validate_entry("a//b", "k").is_err());
        assert!(validate_entry("ov/vnc", "my-image").is_ok());
        assert!(validate_entry("a/../b", "k").is_err());
        assert!(validate_entry("..", "k").is_err());
        assert!(validate_entry("s", "x\u{202e}gpj.exe").is_err());
        assert!(validate_entry("s\u{200b}", "k").is_err());
        assert!(validate_entry("s", &"k".repeat(10_000)).is_err());
        assert!(validate_entry("ünïcode/ок", "日本").is_ok());
    }
}
