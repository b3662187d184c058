//! The unlock chain for stores that need a password (kdbx): the environment,
//! then the kernel-keyring cache, then a prompt, with retries; and the
//! no-terminal guard that fails fast instead of hanging.

use std::cell::RefCell;
use std::path::PathBuf;

use ov_plugin_api::{BackendError, Context, ErrorKind, Secret};

use crate::error::{OvError, Result};
use crate::keycache;
use crate::prompt;
use crate::settings::Settings;

pub const PASSWORD_ENV: &str = "OV_KDBX_PASSWORD";
pub const NO_TTY: &str = "kdbx password required but stdin is not a terminal; \
                          set OV_KDBX_PASSWORD=<password> or run interactively";
const TRIES: usize = 3;

/// Where a password came from: decides retries and caching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    Env,
    Cache,
    Prompt,
    /// Already used successfully in this process.
    Memory,
}

/// `OV_KDBX_PASSWORD`, refusing an empty one.
pub fn password_from_env() -> Result<Option<Secret>> {
    match std::env::var(PASSWORD_ENV) {
        Ok(v) if v.is_empty() => Err(OvError::new(format!(
            "{PASSWORD_ENV} is set but empty; a KeePass password cannot be empty"
        ))
        .hint(format!("unset {PASSWORD_ENV}   # to be prompted instead"))),
        Ok(v) => Ok(Some(Secret::new(v))),
        Err(_) => Ok(None),
    }
}

/// The no-terminal guard: fails at once where a prompt would hang.
pub fn no_tty_error() -> OvError {
    OvError::new(NO_TTY).hint(format!(
        "{PASSWORD_ENV}=… ov …   # for scripts, CI and systemd units"
    ))
}

#[derive(Debug)]
pub struct Unlocker {
    pub db: PathBuf,
    cache_desc: String,
    cache_enabled: bool,
    cache_ttl: u64,
    remembered: RefCell<Option<Secret>>,
    never_prompt: bool,
}

impl Unlocker {
    pub fn new(ctx: &Context, settings: &Settings) -> Unlocker {
        let db = ov_plugin_kdbx::db_path(ctx);
        Unlocker {
            cache_desc: keycache::description(&db),
            db,
            cache_enabled: !matches!(
                settings.get("secrets.kdbx_cache"),
                Some(crate::settings::Value::Bool(false))
            ),
            cache_ttl: match settings.get("secrets.kdbx_cache_timeout") {
                Some(crate::settings::Value::Int(n)) => u64::try_from(*n).unwrap_or(3600),
                _ => 3600,
            },
            remembered: RefCell::new(None),
            never_prompt: false,
        }
    }

    pub fn cache_enabled(&self) -> bool {
        self.cache_enabled
    }

    pub fn cache_ttl(&self) -> u64 {
        self.cache_ttl
    }

    pub fn cache_description(&self) -> &str {
        &self.cache_desc
    }

    pub fn cached(&self) -> Option<Secret> {
        if self.cache_enabled {
            keycache::load(&self.cache_desc)
        } else {
            None
        }
    }

    /// A password without prompting (for the doctor): env, then cache.
    pub fn quiet_password(&self) -> Option<Secret> {
        password_from_env().ok().flatten().or_else(|| self.cached())
    }

    pub fn remember(&self, pw: &Secret) {
        *self.remembered.borrow_mut() = Some(pw.clone());
    }

    pub fn store_in_cache(&self, pw: &Secret) {
        if self.cache_enabled {
            // A missing kernel keyring (some containers) only costs a prompt
            // next time; `ov doctor kdbx` reports it.
            let _ = keycache::store(&self.cache_desc, pw, self.cache_ttl);
        }
    }

    /// Use only the environment and the cache, as with no terminal (for
    /// checks that must not stop to ask).
    pub fn never_prompt(&mut self) {
        self.never_prompt = true;
    }

    pub fn prompt(&self) -> Result<Secret> {
        if self.never_prompt || !prompt::stdin_is_tty() {
            return Err(no_tty_error());
        }
        prompt::ask_hidden(&format!("kdbx password for {}: ", self.db.display()))
    }

    /// The first try's password: remembered, env, cache, then a prompt.
    fn first(&self) -> Result<(Secret, From)> {
        if let Some(pw) = self.remembered.borrow().clone() {
            return Ok((pw, From::Memory));
        }
        if let Some(pw) = password_from_env()? {
            return Ok((pw, From::Env));
        }
        if let Some(pw) = self.cached() {
            return Ok((pw, From::Cache));
        }
        Ok((self.prompt()?, From::Prompt))
    }

    /// Run `op` with a password, for a store that said it is locked. A
    /// wrong password gets "Sorry, try again." and a fresh prompt (never the
    /// env or the cache again), three tries in all; other errors return at
    /// once.
    pub fn run<T>(
        &self,
        base: &Context,
        op: impl Fn(&Context) -> std::result::Result<T, BackendError>,
    ) -> Result<T> {
        self.run_with_password(base, op).map(|(_, v)| v)
    }

    /// [`Unlocker::run`], also handing back the password that worked.
    pub fn run_with_password<T>(
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
                if self.never_prompt || !prompt::stdin_is_tty() {
                    // No one to ask: say why the earlier try failed.
                    break;
                }
                eprintln!("Sorry, try again.");
                (self.prompt()?, From::Prompt)
            };
            ctx.unlock = Some(pw.clone());
            // The backend caches its derived key where the password is cached.
            let cached = self.cache_enabled && matches!(from, From::Prompt | From::Cache);
            ctx.settings
                .insert(ov_plugin_kdbx::cache::CACHE_HINT.into(), cached.into());
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
                        keycache::clear(&self.cache_desc);
                    }
                    if from == From::Memory {
                        *self.remembered.borrow_mut() = None;
                    }
                    last = Some((e, from));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let (e, from) = last.unwrap_or_else(|| {
            (
                BackendError::new(ErrorKind::WrongPassword, "decoding kdbx: Wrong password?"),
                From::Prompt,
            )
        });
        let mut err = OvError::from(e);
        match from {
            From::Env => {
                err = err
                    .hint(format!(
                        "{PASSWORD_ENV} holds a password that does not open {}",
                        self.db.display()
                    ))
                    .hint(format!("unset {PASSWORD_ENV}; ov secrets unlock"));
            }
            From::Cache | From::Memory => err = err.hint("ov secrets unlock"),
            From::Prompt => {
                err = err.hint(format!(
                    "keepassxc-cli open {}   # check the password with KeePassXC",
                    ov_plugin_support::shell_quote(&self.db)
                ));
            }
        }
        Err(err)
    }
}
