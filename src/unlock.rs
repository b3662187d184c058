//! The unlock chain, for every backend that declares an unlock secret
//! ([`UnlockSpec`]): its environment variable, then the kernel-keyring
//! cache, then a prompt, with retries; and the no-terminal guard that
//! fails fast instead of hanging. The engine knows no backend by name: the
//! label, the variable and the cache settings come from the description,
//! the target (what the secret opens, its cache id) from the backend.

use std::cell::RefCell;

use ov_plugin_api::{Backend, BackendError, Context, Description, ErrorKind, Secret, UnlockSpec};

use crate::error::{OvError, Result};
use crate::keycache;
use crate::prompt;

const TRIES: usize = 3;
/// How long a cached secret lives when the backend names no setting.
const DEFAULT_TTL: u64 = 3600;

/// Where a secret came from: decides retries and caching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    Env,
    Cache,
    Prompt,
    /// Already used successfully in this process.
    Memory,
}

/// What stops the unlock chain before any backend is asked, with the
/// command that fixes it: the same words for a command's error and the
/// doctor's finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnlockProblem {
    /// The backend's variable is set, to nothing.
    EmptyEnv { env: String, label: String },
    /// A prompt is needed and there is no terminal to ask on.
    NoTty { env: String, label: String },
}

impl UnlockProblem {
    pub fn empty_env(spec: &UnlockSpec) -> Self {
        UnlockProblem::EmptyEnv {
            env: spec.env.clone(),
            label: spec.label.clone(),
        }
    }

    pub fn no_tty(spec: &UnlockSpec) -> Self {
        UnlockProblem::NoTty {
            env: spec.env.clone(),
            label: spec.label.clone(),
        }
    }

    /// The sentence for people (the no-terminal one is spec 001's).
    pub fn message(&self) -> String {
        match self {
            UnlockProblem::EmptyEnv { env, label } => {
                format!("{env} is set but empty; a {label} cannot be empty")
            }
            UnlockProblem::NoTty { env, label } => format!(
                "{label} required but stdin is not a terminal; set {env}=<password> or run interactively"
            ),
        }
    }

    /// The command that fixes it.
    pub fn fix(&self) -> String {
        match self {
            UnlockProblem::EmptyEnv { env, .. } => {
                format!("unset {env}   # to be prompted instead")
            }
            UnlockProblem::NoTty { env, .. } => {
                format!("{env}=… ov …   # for scripts, CI and systemd units")
            }
        }
    }

    pub fn error(&self) -> OvError {
        OvError::new(self.message()).hint(self.fix())
    }
}

/// Whether `spec`'s variable is set to nothing, which the chain refuses.
pub fn env_problem(spec: &UnlockSpec) -> Option<UnlockProblem> {
    std::env::var_os(&spec.env)
        .is_some_and(|v| v.is_empty())
        .then(|| UnlockProblem::empty_env(spec))
}

/// The secret in `spec`'s variable, refusing an empty one.
pub fn secret_from_env(spec: &UnlockSpec) -> Result<Option<Secret>> {
    if let Some(p) = env_problem(spec) {
        return Err(p.error());
    }
    Ok(std::env::var(&spec.env).ok().map(Secret::new))
}

/// The no-terminal guard: fails at once where a prompt would hang.
pub fn no_tty_error(spec: &UnlockSpec) -> OvError {
    UnlockProblem::no_tty(spec).error()
}

/// A new secret for a store being created: the variable, else asked twice
/// on the terminal. An empty one is refused, with `if_empty` as the hint.
pub fn new_secret(spec: &UnlockSpec, if_empty: &str) -> Result<(Secret, From)> {
    if let Some(pw) = secret_from_env(spec)? {
        return Ok((pw, From::Env));
    }
    if !prompt::stdin_is_tty() {
        return Err(no_tty_error(spec));
    }
    let pw = prompt::ask_hidden_twice(&format!("New {}: ", spec.label))?;
    if pw.is_empty() {
        return Err(OvError::new("the password is empty; nothing was created").hint(if_empty));
    }
    Ok((pw, From::Prompt))
}

/// The unlock chain for one backend's store.
#[derive(Debug)]
pub struct Unlocker {
    spec: UnlockSpec,
    /// What the secret opens (a database path), as the backend names it.
    pub target: String,
    cache_desc: String,
    cache_enabled: bool,
    cache_ttl: u64,
    remembered: RefCell<Option<Secret>>,
    never_prompt: bool,
}

impl Unlocker {
    /// The chain for `backend`, or `None` when it declares no unlock
    /// secret. `ctx.settings` holds the backend's cache settings.
    pub fn for_backend(backend: &dyn Backend, ctx: &Context) -> Option<Unlocker> {
        Unlocker::described(&backend.describe(), backend, ctx)
    }

    /// [`Unlocker::for_backend`] with the description already at hand.
    pub fn described(desc: &Description, backend: &dyn Backend, ctx: &Context) -> Option<Unlocker> {
        let spec = desc.unlock.clone()?;
        let target = backend.unlock_target(ctx).unwrap_or_default();
        Some(Unlocker::new(&desc.name, spec, target, ctx))
    }

    pub fn new(backend: &str, spec: UnlockSpec, target: String, ctx: &Context) -> Unlocker {
        let setting = |name: &Option<String>| name.as_deref().and_then(|n| ctx.settings.get(n));
        let cache_enabled = setting(&spec.cache_setting)
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true);
        let cache_ttl = setting(&spec.cache_timeout_setting)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(DEFAULT_TTL);
        Unlocker {
            cache_desc: keycache::description(backend, &target),
            target,
            spec,
            cache_enabled,
            cache_ttl,
            remembered: RefCell::new(None),
            never_prompt: false,
        }
    }

    pub fn spec(&self) -> &UnlockSpec {
        &self.spec
    }

    pub fn cache_enabled(&self) -> bool {
        self.cache_enabled
    }

    pub fn cache_ttl(&self) -> u64 {
        self.cache_ttl
    }

    /// The kernel-keyring key the secret is cached under.
    pub fn cache_description(&self) -> &str {
        &self.cache_desc
    }

    /// The cached secret. One cached by an earlier version under a name
    /// the backend lists as legacy is moved to the current name first.
    pub fn cached(&self) -> Option<Secret> {
        if !self.cache_enabled {
            return None;
        }
        if let Some(pw) = keycache::load(&self.cache_desc) {
            return Some(pw);
        }
        for old in &self.spec.legacy_cache_names {
            let old = format!("{old}:{}", self.target);
            if let Some(pw) = keycache::load(&old) {
                // Moved, keeping the time it has left only roughly: the
                // configured timeout starts again, as after an unlock.
                if keycache::store(&self.cache_desc, &pw, self.cache_ttl).is_ok() {
                    keycache::clear(&old);
                }
                return Some(pw);
            }
        }
        None
    }

    /// Forget the cached secret, under the current name and the legacy
    /// ones; whether there was one.
    pub fn clear_cache(&self) -> bool {
        let mut cleared = keycache::clear(&self.cache_desc);
        for old in &self.spec.legacy_cache_names {
            cleared |= keycache::clear(&format!("{old}:{}", self.target));
        }
        cleared
    }

    /// Cache `pw` for the configured time; why not, when it cannot be.
    pub fn cache(&self, pw: &Secret) -> std::result::Result<(), String> {
        keycache::store(&self.cache_desc, pw, self.cache_ttl)
    }

    /// A secret without prompting (for the doctor): env, then cache.
    pub fn quiet_secret(&self) -> Option<Secret> {
        secret_from_env(&self.spec)
            .ok()
            .flatten()
            .or_else(|| self.cached())
    }

    fn remember(&self, pw: &Secret) {
        *self.remembered.borrow_mut() = Some(pw.clone());
    }

    fn store_in_cache(&self, pw: &Secret) {
        if self.cache_enabled {
            // A missing kernel keyring (some containers) only costs a prompt
            // next time; `ov doctor` reports it.
            let _ = self.cache(pw);
        }
    }

    /// Use only the environment and the cache, as with no terminal (for
    /// checks that must not stop to ask).
    pub fn never_prompt(&mut self) {
        self.never_prompt = true;
    }

    fn can_prompt(&self) -> bool {
        !self.never_prompt && prompt::stdin_is_tty()
    }

    pub fn prompt(&self) -> Result<Secret> {
        if !self.can_prompt() {
            return Err(no_tty_error(&self.spec));
        }
        prompt::ask_hidden(&format!("{} for {}: ", self.spec.label, self.target))
    }

    /// The first try's secret: remembered, env, cache, then a prompt.
    fn first(&self) -> Result<(Secret, From)> {
        if let Some(pw) = self.remembered.borrow().clone() {
            return Ok((pw, From::Memory));
        }
        if let Some(pw) = secret_from_env(&self.spec)? {
            return Ok((pw, From::Env));
        }
        if let Some(pw) = self.cached() {
            return Ok((pw, From::Cache));
        }
        Ok((self.prompt()?, From::Prompt))
    }

    /// Run `op` with a secret, for a store that said it is locked. A wrong
    /// secret gets "Sorry, try again." and a fresh prompt (never the env or
    /// the cache again), three tries in all; other errors return at once.
    pub fn run<T>(
        &self,
        base: &Context,
        op: impl Fn(&Context) -> std::result::Result<T, BackendError>,
    ) -> Result<T> {
        self.run_with_secret(base, op).map(|(_, v)| v)
    }

    /// [`Unlocker::run`], also handing back the secret that worked.
    pub fn run_with_secret<T>(
        &self,
        base: &Context,
        op: impl Fn(&Context) -> std::result::Result<T, BackendError>,
    ) -> Result<(Secret, T)> {
        let mut ctx = base.clone();
        let mut last = None;
        for attempt in 1..=TRIES {
            let (pw, from) = if attempt == 1 {
                self.first()?
            } else {
                if !self.can_prompt() {
                    // No one to ask: say why the earlier try failed.
                    break;
                }
                prompt::say("Sorry, try again.");
                (self.prompt()?, From::Prompt)
            };
            ctx.unlock = Some(pw.clone());
            // A backend may cache what it derives from the secret, under
            // the same rules, only when the engine caches the secret itself.
            ctx.unlock_cached = base.unlock_cached
                || (self.cache_enabled && matches!(from, From::Prompt | From::Cache));
            match op(&ctx) {
                Ok(v) => {
                    if from == From::Prompt {
                        self.store_in_cache(&pw);
                    }
                    self.remember(&pw);
                    return Ok((pw, v));
                }
                Err(e) if e.kind == ErrorKind::WrongPassword => {
                    if from == From::Cache {
                        self.clear_cache();
                    }
                    if from == From::Memory {
                        *self.remembered.borrow_mut() = None;
                    }
                    last = Some((e, from));
                }
                Err(e) => return Err(e),
            }
        }
        let (e, from) = last.unwrap_or_else(|| {
            (
                BackendError::of(
                    ErrorKind::WrongPassword,
                    format!("the {} did not open {}", self.spec.label, self.target),
                ),
                From::Prompt,
            )
        });
        let mut err = OvError::from(e);
        match from {
            From::Env => {
                err = err
                    .hint(format!(
                        "{} holds a password that does not open {}",
                        self.spec.env, self.target
                    ))
                    .hint(format!("unset {}; ov secrets unlock", self.spec.env));
            }
            From::Cache | From::Memory => err = err.hint("ov secrets unlock"),
            // The backend's own error says how to check the secret.
            From::Prompt => {}
        }
        Err(err)
    }
}
