//! The resolution chain: reads walk the backends in priority order (env,
//! keyring, kdbx, config) and the first hit wins; writes go to the backend
//! `secret_backend` forces, or to the first available writable one.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use ov_plugin_api::{
    Availability, BackendError, Context, EntryRef, ErrorKind, Secret, SecretBytes, SettingKind,
};

use crate::env_backend::variable_name;
use crate::error::{OvError, Result};
use crate::held::Held;
use crate::host::{Host, Loaded};
use crate::paths::Paths;
use crate::settings::Settings;
use crate::unlock::Unlocker;

mod names;
mod outcomes;
#[cfg(test)]
mod tests;

pub use names::{MAX_VALUE_BYTES, random_bytes, random_hex, validate_entry, validate_value};
pub use outcomes::{Deleted, Listing, Miss, Source, Wait, Written};

pub struct Store {
    ctx: Context,
    host: Host,
    /// The unlock chain of each backend that declares an unlock secret.
    unlockers: BTreeMap<String, Unlocker>,
    forced: Option<String>,
    /// Each backend's reference settings, read from the other backends
    /// once per process: backend name → setting name → value.
    credentials: RefCell<BTreeMap<String, BTreeMap<String, Secret>>>,
    /// Reading some backend's credentials now (a guard against a loop).
    resolving: Cell<bool>,
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
        unlock_cached: false,
        credentials: BTreeMap::new(),
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
                Unlocker::described(&b.desc, b.backend.as_ref(), &ctx)
                    .map(|u| (b.desc.name.clone(), u))
            })
            .collect();
        Store {
            unlockers,
            ctx,
            host,
            forced: settings.forced_backend().map(str::to_owned),
            credentials: RefCell::default(),
            resolving: Cell::new(false),
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
        let mut ctx = self
            .context_for(b)
            .map_or_else(|_| self.ctx.clone(), Cow::into_owned);
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
        let ctx = self.context_for(b)?;
        let Some(unlocker) = self.unlocker(&b.desc.name) else {
            return Ok(op(&ctx));
        };
        match op(&ctx) {
            // Without a secret a store may still open (a key-file-only
            // database); if it refuses, the secret is what is missing.
            Err(e) if matches!(e.kind, ErrorKind::Locked | ErrorKind::WrongPassword) => {
                unlocker.run(&ctx, op).map(Ok)
            }
            other => Ok(other),
        }
    }

    /// The reference settings (`SettingKind::Reference`) the user set for
    /// backend `b`: setting name → the reference as written.
    fn references(&self, b: &Loaded) -> Vec<(String, String)> {
        b.desc
            .settings
            .iter()
            .filter(|s| s.kind == SettingKind::Reference)
            .filter_map(|s| {
                let v = self.ctx.setting_str(&s.name)?.trim();
                (!v.is_empty()).then(|| (s.name.clone(), v.to_owned()))
            })
            .collect()
    }

    /// The context backend `b` is called with: the common one, plus the
    /// entries its reference settings name, read from the other backends
    /// (a backend sees no other entry of another backend).
    fn context_for(&self, b: &Loaded) -> Result<Cow<'_, Context>> {
        let refs = self.references(b);
        if refs.is_empty() {
            return Ok(Cow::Borrowed(&self.ctx));
        }
        let known = self.credentials.borrow().get(&b.desc.name).cloned();
        let credentials = match known {
            Some(c) => c,
            None => {
                if self.resolving.replace(true) {
                    return Err(OvError::new(format!(
                        "the {} backend's credentials are needed to read another backend's credentials: a loop",
                        b.desc.name
                    ))
                    .hint("ov settings list   # keep the referenced entries in a backend that needs no reference"));
                }
                let read = self.read_credentials(b, &refs);
                self.resolving.set(false);
                let read = read?;
                self.credentials
                    .borrow_mut()
                    .insert(b.desc.name.clone(), read.clone());
                read
            }
        };
        let mut ctx = self.ctx.clone();
        ctx.credentials = credentials;
        Ok(Cow::Owned(ctx))
    }

    /// Read each reference of `refs` from the backends other than `b`
    /// that need no reference themselves, in chain order.
    fn read_credentials(
        &self,
        b: &Loaded,
        refs: &[(String, String)],
    ) -> Result<BTreeMap<String, Secret>> {
        let mut out = BTreeMap::new();
        for (setting, text) in refs {
            let entry = match crate::refs::parse(text)? {
                crate::refs::Reference::Entry(e) => e,
                crate::refs::Reference::Manifest(_) => {
                    return Err(OvError::new(format!(
                        "{setting} is {text}: a manifest secret, not a store entry"
                    ))
                    .hint(format!("ov settings set {setting} ov://SERVICE/KEY")));
                }
            };
            let mut searched = Vec::new();
            let mut unseen = Vec::new();
            let mut found = None;
            for other in self.chain() {
                if other.desc.name == b.desc.name || !self.references(other).is_empty() {
                    continue;
                }
                searched.push(other.desc.name.clone());
                match self.call(other, |c| other.backend.get(c, &entry))? {
                    Ok(Some(v)) => {
                        found = Some(v);
                        break;
                    }
                    Ok(None) => {}
                    Err(e) if matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Locked) => {
                        unseen.push(format!("{}: {}", other.desc.name, e.message));
                    }
                    Err(mut e) => {
                        e.message = format!(
                            "cannot read {text} ({setting}) from {}: {}",
                            other.desc.name, e.message
                        );
                        return Err(e);
                    }
                }
            }
            let Some(value) = found else {
                let mut message = format!(
                    "{setting} names {text}, which no other backend holds (searched: {})",
                    if searched.is_empty() {
                        "none".to_owned()
                    } else {
                        searched.join(", ")
                    }
                );
                if !unseen.is_empty() {
                    message.push_str(&format!("; not reachable: {}", unseen.join("; ")));
                }
                // Named, as the default write target may be the backend
                // that asks (secret_backend), which cannot hold its own.
                let local = self
                    .chain()
                    .iter()
                    .filter(|o| o.desc.writable && searched.contains(&o.desc.name))
                    .find(|o| matches!(o.backend.probe(&self.ctx), Availability::Available { .. }))
                    .map(|o| format!("--backend {} ", o.desc.name))
                    .unwrap_or_default();
                return Err(OvError::new(message)
                    .hint(format!(
                        "ov secrets set {local}{} {}   # the value on stdin, or at the prompt",
                        crate::refs::shell_word(&entry.service),
                        crate::refs::shell_word(&entry.key)
                    ))
                    .hint(format!("ov settings unset {setting}")));
            };
            out.insert(setting.clone(), value);
        }
        Ok(out)
    }

    /// One backend's value for an entry, unlocking as needed.
    pub fn get_from(&self, b: &Loaded, entry: &EntryRef) -> Result<Option<Secret>> {
        self.call(b, |c| b.backend.get(c, entry))?
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
                Err(e) => return Err(e),
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
            let b = self.writer_named(
                name,
                &format!("secret_backend is set to '{name}'"),
                "ov settings set secret_backend auto",
            )?;
            return Ok((b, Vec::new()));
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

    /// The writable backend `name`, usable now; `who` says who named it
    /// (the setting or the flag), `undo` how to stop naming it.
    fn writer_named(&self, name: &str, who: &str, undo: &str) -> Result<&Loaded> {
        let b = self.host.backend(name).ok_or_else(|| {
            OvError::new(format!("{who}, but no {name} backend is installed"))
                .hint("ov plugins list")
                .hint(undo)
        })?;
        if !b.desc.writable {
            return Err(OvError::new(format!("the {name} backend is read-only")).hint(undo));
        }
        match b.backend.probe(&self.ctx) {
            Availability::Available { .. } => Ok(b),
            Availability::Locked { reason } | Availability::Unavailable { reason, .. } => Err(
                OvError::new(format!("{who}, which cannot be used now: {reason}"))
                    .hint(format!("ov doctor {name}"))
                    .hint(undo),
            ),
        }
    }

    /// [`Store::set`] into the backend `name` (`ov secrets set --backend`).
    pub fn set_on(&self, name: &str, entry: &EntryRef, value: &Secret) -> Result<Written> {
        validate_value(value)?;
        let target = self.writer_named(
            name,
            &format!("--backend {name} was given"),
            "ov plugins list   # the backends, and which of them take writes",
        )?;
        self.set_in(target, entry, value)
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
        self.call(b, |c| b.backend.delete(c, entry))?
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
                out.notes.push(format!(
                    "{} entr{} in {} not listed: the name is not one ov can address \
                     (such as service {:?}, key {:?})",
                    unnamable.len(),
                    if unnamable.len() == 1 { "y" } else { "ies" },
                    b.desc.name,
                    first.service,
                    first.key
                ));
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
                Err(e) => return Err(e),
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
