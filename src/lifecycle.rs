//! `ov secrets init`, `unlock` and `lock` for whichever backend declares
//! them: a new store made by the backend, its unlock secret asked for by
//! the engine's chain and cached in the kernel keyring, and forgotten
//! again. Nothing here names a backend; the CLI prints what comes back.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ov_plugin_api::{Availability, CreateRequest};

use crate::error::{OvError, Result};
use crate::host::Loaded;
use crate::paths::Paths;
use crate::settings::{self, Specs};
use crate::store::Store;
use crate::unlock::{From, Unlocker, new_secret};

/// What `ov secrets init` was asked for.
#[derive(Debug, Default)]
pub struct Init {
    /// Where (made absolute here); `None`: the backend's default.
    pub location: Option<PathBuf>,
    pub force: bool,
    /// A key file to lock the store with too (made if missing).
    pub key_file: Option<PathBuf>,
    /// No unlock secret: the key file alone.
    pub no_password: bool,
    pub switch: bool,
}

/// The `create` option naming a key file (see [`CreateRequest::options`]).
const KEY_FILE_OPTION: &str = "key_file";

fn absolute(p: PathBuf) -> Result<PathBuf> {
    std::path::absolute(&p)
        .map_err(|e| OvError::new(format!("cannot resolve {}: {e}", p.display())))
}

impl Store {
    /// The backend `ov secrets init` makes a store for: the one
    /// `secret_backend` forces when it can, else the first that can.
    pub fn creator(&self) -> Result<&Loaded> {
        self.forced_or_first(|b| b.desc.creates).ok_or_else(|| {
            OvError::new("no installed backend can create a store")
                .hint("ov plugins list   # the backends and what they can do")
        })
    }

    /// The backend `ov secrets unlock` serves: the forced one when it
    /// takes a secret, else the first in the chain that does.
    fn unlockable(&self) -> Result<(&Loaded, &Unlocker)> {
        self.forced_or_first(|b| self.unlocker(&b.desc.name).is_some())
            .and_then(|b| Some((b, self.unlocker(&b.desc.name)?)))
            .ok_or_else(|| {
                OvError::new("no installed backend takes an unlock secret").hint("ov plugins list")
            })
    }

    /// The backend `secret_backend` forces when it can, else the first in
    /// the chain that can.
    fn forced_or_first(&self, can: impl Fn(&Loaded) -> bool) -> Option<&Loaded> {
        self.forced()
            .and_then(|f| self.chain().iter().find(|b| b.desc.name == f))
            .filter(|b| can(b))
            .or_else(|| self.chain().iter().find(|b| can(b)))
    }

    /// What the creator's store is, for `ov secrets path`: its unlock
    /// target (a database path), configured or default.
    pub fn store_path(&self) -> Result<String> {
        let b = self.creator()?;
        Ok(b.backend
            .unlock_target(self.context())
            .or_else(|| match b.backend.probe(self.context()) {
                Availability::Available { location } => location,
                _ => None,
            })
            .unwrap_or_default())
    }
}

/// `ov secrets init`: lines to print on stderr, in order.
pub fn init(paths: &Paths, specs: &Specs, store: &Store, req: Init) -> Result<Vec<String>> {
    let b = store.creator()?;
    let name = &b.desc.name;
    let mut request = CreateRequest {
        location: req
            .location
            .map(absolute)
            .transpose()?
            .map(|p| p.display().to_string()),
        force: req.force,
        switch: req.switch,
        secret: None,
        check: false,
        options: BTreeMap::new(),
    };
    if let Some(kf) = req.key_file {
        request
            .options
            .insert(KEY_FILE_OPTION.into(), absolute(kf)?.display().to_string());
    }
    // The current store's secret, when at hand without asking, lets the
    // backend see whether the new store would hide entries.
    let ctx = store.quiet_context(b);
    let check = CreateRequest {
        check: true,
        ..request.clone()
    };
    b.backend.create(&ctx, &check)?;

    let spec = b.desc.unlock.clone().filter(|_| !req.no_password);
    let secret = match &spec {
        Some(spec) => Some(new_secret(
            spec,
            "ov secrets init --key-file ~/.config/ov/secrets.key --no-password   # a key file alone",
        )?),
        None => None,
    };
    request.secret = secret.as_ref().map(|(s, _)| s.clone());
    let created = b.backend.create(&ctx, &request)?;

    for (setting, value) in &created.settings {
        match value {
            Some(v) => {
                settings::set_user(paths, specs, setting, v)?;
            }
            None => {
                settings::unset_user(paths, specs, setting)?;
            }
        }
    }
    if let (Some(spec), Some((pw, From::Prompt))) = (&spec, &secret) {
        let u = Unlocker::new(name, spec.clone(), created.target.clone(), store.context());
        if u.cache_enabled() {
            let _ = u.cache(pw);
        }
    }
    let mut lines = created.messages;
    lines.push(format!(
        "make it the active backend:  ov settings set secret_backend {name}"
    ));
    lines.push("copy existing secrets in:    ov secrets import --dry-run".into());
    Ok(lines)
}

/// `ov secrets unlock`: ask for the secret once (the chain: environment,
/// then a prompt) and cache it. The line to print.
pub fn unlock(store: &Store) -> Result<String> {
    let (b, u) = store.unlockable()?;
    let name = &b.desc.name;
    if !u.cache_enabled() {
        let setting = u.spec().cache_setting.clone().unwrap_or_default();
        return Err(OvError::new(format!(
            "the {} cache is off ({setting} = false)",
            u.spec().label
        ))
        .hint(format!("ov settings set {setting} true")));
    }
    if let Availability::Unavailable { reason, .. } = b.backend.probe(store.context()) {
        let e = OvError::new(format!("cannot unlock the {name} backend: {reason}"));
        return Err(if b.desc.creates {
            e.hint("ov secrets init")
        } else {
            e.hint(format!("ov doctor {name}"))
        });
    }
    // A stale cached secret must not stand in for the one typed now.
    u.clear_cache();
    // The secret is cached below whatever its source: the backend may
    // cache what it derives from it too.
    let mut ctx = store.context().clone();
    ctx.unlock_cached = true;
    let (pw, ()) = u.run_with_secret(&ctx, |c| b.backend.verify_unlock(c))?;
    u.cache(&pw).map_err(|e| {
        OvError::new(e).hint("keyctl show @u   # is the kernel keyring usable here?")
    })?;
    Ok(format!(
        "unlocked {}; the password is cached in the kernel keyring for {} s (`ov secrets lock` forgets it)",
        u.target,
        u.cache_ttl()
    ))
}

/// `ov secrets lock`: forget every cached unlock secret, and what each
/// backend keeps to open its store without one. The lines to print.
pub fn lock(store: &Store) -> Vec<String> {
    let mut lines = Vec::new();
    for b in store.chain() {
        let Some(u) = store.unlocker(&b.desc.name) else {
            continue;
        };
        lines.push(if u.clear_cache() {
            format!("forgot the cached password for {}", u.target)
        } else {
            format!("no cached password for {}", u.target)
        });
        lines.extend(b.backend.lock(store.context()));
    }
    if lines.is_empty() {
        lines.push("nothing to lock: no installed backend takes an unlock secret".into());
    }
    lines
}
