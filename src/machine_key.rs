//! Machine keys and the per-app sealed bundles they open.
//!
//! A machine key is a file of exactly 32 random bytes. It never encrypts
//! anything itself: for each app/env it is registered for, HKDF-SHA256
//! derives an X25519 age identity from it and the app/env name, so one key
//! file opens exactly the bundles sealed to the identities of the apps it
//! was registered for. The registry keeps only the public age recipient, so
//! re-sealing after a change needs the user's store but never the key file.
//!
//! A bundle is an age file (X25519 recipients) whose plaintext is a `.env`
//! text in the format of [`crate::dotenv`], so an administrator can open
//! one by hand with `age -d` and the identity `ov auth machine-key identity`
//! prints.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use bech32::ToBase32;
use hkdf::Hkdf;
use ov_plugin_api::{EntryRef, Secret};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::dotenv;
use crate::error::{OvError, Result};
use crate::paths::Paths;
use crate::store::Store;

/// The exact size of a machine key file.
pub const KEY_LEN: usize = 32;
/// Bundles larger than this are refused unread.
const MAX_BUNDLE_BYTES: u64 = 64 * 1024 * 1024;
const HKDF_SALT: &[u8] = b"ov machine key v1";
/// The first line of every bundle's plaintext.
const BUNDLE_MAGIC: &str = "# ov bundle ";
/// The env an app's secrets live in when `--env` is left out.
pub const DEFAULT_ENV: &str = "default";

/// App and env names go into a service name (`app/env`), a file path and
/// the HKDF info string, so they are kept to one plain path segment.
pub fn validate_app_env(app: &str, env: &str) -> Result<()> {
    for (what, v) in [("app", app), ("env", env)] {
        let ok = !v.is_empty()
            && v.len() <= 64
            && !v.starts_with('.')
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !ok {
            return Err(OvError::usage(format!(
                "'{v}' is not a valid {what} name: use 1-64 letters, digits, '.', '_' or '-', not starting with '.'"
            ))
            .hint("ov secrets list --app myapp --env production"));
        }
    }
    Ok(())
}

/// The store service holding an app's secrets.
pub fn service(app: &str, env: &str) -> String {
    format!("{app}/{env}")
}

/// The command that writes (or rotates) a key file.
pub fn derive_command(path: &Path, app: &str, env: &str) -> String {
    format!(
        "ov auth derive-machine-key --out {} --app {app} --env {env} --force",
        ov_plugin_support::shell_quote(path)
    )
}

/// The command that re-seals an app's bundle.
pub fn seal_command(app: &str, env: &str) -> String {
    format!("ov auth machine-key seal --app {app} --env {env}")
}

/// 32 key bytes, locked in RAM, kept out of core dumps, zeroed on drop.
pub struct MachineKey {
    bytes: Box<[u8; KEY_LEN]>,
    locked: bool,
}

impl std::fmt::Debug for MachineKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MachineKey(..)")
    }
}

impl MachineKey {
    fn new() -> MachineKey {
        // Not dumpable: no core file, and no ptrace or /proc/<pid>/mem by
        // other processes of the same user. execve resets it for the child.
        let _ = nix::sys::prctl::set_dumpable(false);
        let mut bytes = Box::new([0u8; KEY_LEN]);
        let ptr = std::ptr::NonNull::from(&mut *bytes).cast();
        // SAFETY: the range is one live heap allocation of KEY_LEN bytes,
        // unlocked again in Drop before it is freed.
        let locked = match unsafe { nix::sys::mman::mlock(ptr, KEY_LEN) } {
            Ok(()) => true,
            Err(e) => {
                // Still safe to use, but the page could reach swap: say so
                // where the service's log will show it.
                eprintln!(
                    "ov: warning: cannot lock the machine key in memory ({}); it could be \
                     written to swap. Raise the limit: LimitMEMLOCK=64K in the unit, or \
                     ulimit -l 64",
                    e.desc()
                );
                false
            }
        };
        MachineKey { bytes, locked }
    }

    fn generate() -> Result<MachineKey> {
        let mut key = MachineKey::new();
        getrandom::fill(&mut key.bytes[..])
            .map_err(|e| OvError::new(format!("the system random number generator failed: {e}")))?;
        Ok(key)
    }

    /// The age identity this key has for one app/env.
    pub fn identity(&self, app: &str, env: &str) -> age::x25519::Identity {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), &self.bytes[..]);
        let mut okm = Zeroizing::new([0u8; 32]);
        let info = format!("ov bundle x25519 {app}/{env}");
        hk.expand(info.as_bytes(), &mut okm[..])
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mut text = Zeroizing::new(
            bech32::encode("age-secret-key-", okm.to_base32(), bech32::Variant::Bech32)
                .expect("the HRP is valid"),
        );
        text.make_ascii_uppercase();
        age::x25519::Identity::from_str(&text).expect("a freshly encoded identity parses")
    }
}

impl Drop for MachineKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
        if self.locked {
            let ptr = std::ptr::NonNull::from(&mut *self.bytes).cast();
            // SAFETY: the same range mlock'd in new(), still allocated.
            let _ = unsafe { nix::sys::mman::munlock(ptr, KEY_LEN) };
        }
    }
}

/// The system's text for an I/O error, lower-cased, without "(os error N)":
/// `too many levels of symbolic links`, as spec 001 quotes it.
fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or_default();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Open and check a key file the way spec 001 says: O_NOFOLLOW, then
/// fstat on the open descriptor (no race with a separate stat), mode
/// exactly 0600, owned by the current uid, exactly 32 bytes.
pub fn load(path: &Path, app: &str, env: &str) -> Result<MachineKey> {
    let file = ov_plugin_support::open_regular(path, nix::libc::O_NOFOLLOW).map_err(|e| {
        let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
        let err = OvError::new(format!("opening machine key: {}", io_text(&e)));
        match errno {
            nix::errno::Errno::ELOOP => err.hint(format!(
                "ov run refuses symlinks; pass the real file: --machine-key \"$(readlink -f {})\"",
                ov_plugin_support::shell_quote(path)
            )),
            nix::errno::Errno::EACCES => err.hint(format!(
                "sudo chown \"$(id -un)\": {}",
                ov_plugin_support::shell_quote(path)
            )),
            _ => err.hint(derive_command(path, app, env)),
        }
    })?;
    let meta = file.metadata()?;
    let mode = meta.mode() & 0o7777;
    if mode != 0o600 {
        return Err(OvError::new(format!(
            "machine key has permissions {mode:04o} — must be 0600"
        ))
        .hint(format!(
            "chmod 600 {}",
            ov_plugin_support::shell_quote(path)
        )));
    }
    let uid = nix::unistd::Uid::effective().as_raw();
    if meta.uid() != uid {
        return Err(OvError::new(format!(
            "machine key is owned by uid {} but current uid is {uid}",
            meta.uid()
        ))
        .hint(chown_command(path)));
    }
    if meta.len() != KEY_LEN as u64 || !meta.is_file() {
        return Err(OvError::new("machine key must be exactly 32 bytes")
            .hint(derive_command(path, app, env)));
    }
    let mut key = MachineKey::new();
    let mut file = file;
    file.read_exact(&mut key.bytes[..]).map_err(|_| {
        OvError::new("machine key must be exactly 32 bytes").hint(derive_command(path, app, env))
    })?;
    Ok(key)
}

fn libc_flags() -> i32 {
    (nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC).bits()
}

/// `chown USER:GROUP PATH` for the current user.
pub fn chown_command(path: &Path) -> String {
    let user = ov_plugin_support::user_name(nix::unistd::Uid::effective().as_raw());
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::effective())
        .ok()
        .flatten()
        .map_or_else(|| nix::unistd::Gid::effective().to_string(), |g| g.name);
    format!(
        "chown {user}:{group} {}",
        ov_plugin_support::shell_quote(path)
    )
}

/// Why a key file cannot be created at `path`, with the command that
/// makes its directory (missing) or hands it to the user (not writable).
fn out_dir_problem(path: &Path, e: &std::io::Error) -> OvError {
    let err = OvError::new(format!("cannot create {}: {}", path.display(), io_text(e)));
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return err;
    };
    let user = ov_plugin_support::user_name(nix::unistd::Uid::effective().as_raw());
    let dir_q = ov_plugin_support::shell_quote(dir);
    let writable = |d: &Path| nix::unistd::access(d, nix::unistd::AccessFlags::W_OK).is_ok();
    if ov_plugin_support::is_missing(e) && !dir.exists() {
        // The nearest directory that is there says whether root must make it.
        let ancestor = dir.ancestors().find(|d| d.exists());
        if ancestor.is_some_and(writable) {
            err.hint(format!("mkdir -p -m 700 {dir_q}"))
        } else {
            err.hint(format!("install -d -m 700 -o {user} {dir_q}   # as root"))
        }
    } else if e.kind() == std::io::ErrorKind::PermissionDenied
        && dir.is_dir()
        && !writable(dir)
        // Only a directory that is someone's or empty (made for the key,
        // such as /etc/ov) is handed over; /etc is not.
        && (std::fs::metadata(dir).is_ok_and(|m| m.uid() != 0)
            || std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none()))
    {
        err.hint(format!("chown {user} {dir_q}   # as root"))
    } else {
        err
    }
}

/// Write a fresh key for `app`/`env`: O_EXCL unless `force`, mode 0600,
/// never through a symlink.
pub fn create(path: &Path, force: bool, app: &str, env: &str) -> Result<MachineKey> {
    let key = MachineKey::generate()?;
    if force {
        ov_plugin_support::write_atomic(path, &key.bytes[..], Some(0o600))
            .map_err(|e| out_dir_problem(path, &e))?;
        return Ok(key);
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc_flags())
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                OvError::new(format!("{} already exists", path.display()))
                    .hint(format!(
                        "ov auth derive-machine-key --out {} --app {app} --env {env} --force   # rotate it",
                        ov_plugin_support::shell_quote(path)
                    ))
                    .hint(format!(
                        "ov auth machine-key add {} --app {app} --env {env}   # use this key for {app}/{env} as well",
                        ov_plugin_support::shell_quote(path)
                    ))
            } else {
                out_dir_problem(path, &e)
            }
        })?;
    f.write_all(&key.bytes[..])?;
    f.sync_all()?;
    Ok(key)
}

/// One key file registered for one app/env.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Registration {
    pub path: PathBuf,
    pub app: String,
    pub env: String,
    /// The public half of the key's identity for this app/env (`age1…`).
    pub recipient: String,
    /// Seconds since the epoch.
    pub created: u64,
}

/// `$XDG_CONFIG_HOME/ov/machine-keys.json`: registrations, bundle paths
/// chosen with `--bundle`, and when each app/env last changed through ov.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Registry {
    #[serde(default)]
    pub keys: Vec<Registration>,
    /// `app/env` → bundle path, when not the default.
    #[serde(default)]
    pub bundles: BTreeMap<String, PathBuf>,
    /// `app/env` → seconds since the epoch of the last change through ov.
    #[serde(default)]
    pub changed: BTreeMap<String, u64>,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Registry {
    pub fn path(paths: &Paths) -> PathBuf {
        paths.config_dir.join("machine-keys.json")
    }

    pub fn load(paths: &Paths) -> Result<Registry> {
        let path = Registry::path(paths);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                OvError::new(format!("{} is not valid: {e}", path.display()))
                    .hint(ov_plugin_support::edit_command(&path))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry::default()),
            Err(e) => Err(OvError::new(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// Run `f` holding the registry's lock, so concurrent changes (two
    /// `ov secrets set` at once) do not lose a registration or seal a
    /// bundle from a half-updated store.
    pub fn locked<T>(paths: &Paths, f: impl FnOnce() -> Result<T>) -> Result<T> {
        ov_plugin_support::with_lock(&Registry::path(paths), f)
    }

    pub fn save(&self, paths: &Paths) -> Result<()> {
        let path = Registry::path(paths);
        ov_plugin_support::create_dir_all_mode(&paths.config_dir, 0o700)?;
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| OvError::new(format!("cannot encode the registry: {e}")))?;
        ov_plugin_support::write_atomic(&path, text.as_bytes(), Some(0o600))
            .map_err(|e| OvError::new(format!("cannot write {}: {e}", path.display())))?;
        Ok(())
    }

    pub fn for_app<'a>(
        &'a self,
        app: &'a str,
        env: &'a str,
    ) -> impl Iterator<Item = &'a Registration> {
        self.keys
            .iter()
            .filter(move |r| r.app == app && r.env == env)
    }

    pub fn bundle_path(&self, paths: &Paths, app: &str, env: &str) -> PathBuf {
        self.bundles
            .get(&service(app, env))
            .cloned()
            .unwrap_or_else(|| default_bundle_path(paths, app, env))
    }

    /// Add or replace (same path, app and env) a registration.
    pub fn register(&mut self, path: &Path, app: &str, env: &str, key: &MachineKey) {
        self.keys
            .retain(|r| !(r.path == path && r.app == app && r.env == env));
        self.keys.push(Registration {
            path: path.to_path_buf(),
            app: app.to_owned(),
            env: env.to_owned(),
            recipient: key.identity(app, env).to_public().to_string(),
            created: now(),
        });
    }
}

/// `$XDG_DATA_HOME/ov/bundles/<app>/<env>.age`
pub fn default_bundle_path(paths: &Paths, app: &str, env: &str) -> PathBuf {
    paths
        .data_dir
        .join("bundles")
        .join(app)
        .join(format!("{env}.age"))
}

/// Absolute form of a user-given path, without resolving symlinks (the
/// run-time check must see a symlink to refuse it).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The secrets of one app/env in the user's store, in name order.
pub fn collect(store: &Store, app: &str, env: &str) -> Result<Vec<(String, Secret)>> {
    let svc = service(app, env);
    read_listed(store, &svc, store.list(Some(&svc))?)
}

/// The envs of `app` that hold at least one secret in the store, in name
/// order: where to point a user who named an env that holds none.
pub fn envs_holding(store: &Store, app: &str) -> Result<Vec<String>> {
    let prefix = format!("{app}/");
    let mut envs: Vec<String> = store
        .listing(None)?
        .entries
        .keys()
        .filter_map(|e| e.service.strip_prefix(&prefix))
        .filter(|env| validate_app_env(app, env).is_ok())
        .map(str::to_owned)
        .collect();
    envs.sort();
    envs.dedup();
    Ok(envs)
}

/// The envs of `app` with a bundle in the default place, other than `env`.
pub fn envs_with_bundles(paths: &Paths, app: &str, env: &str) -> Vec<String> {
    let dir = paths.data_dir.join("bundles").join(app);
    let mut envs: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let other = name.strip_suffix(".age")?.to_owned();
            (other != env && validate_app_env(app, &other).is_ok()).then_some(other)
        })
        .collect();
    envs.sort();
    envs
}

/// Every secret of an app/env, or (inside) the error that says what part
/// of the store could not be seen (a locked keyring collection, a provider
/// not up yet) for `doing`: a bundle sealed, or a command started, from a
/// partial listing would go without some secrets and not a word said.
pub fn collect_complete(
    store: &Store,
    app: &str,
    env: &str,
    doing: &str,
) -> Result<Result<Vec<(String, Secret)>>> {
    let svc = service(app, env);
    Ok(match store.listing(Some(&svc))?.complete(doing) {
        Ok(listed) => Ok(read_listed(store, &svc, listed)?),
        Err(unseen) => Err(unseen),
    })
}

/// Whether `name`, an entry of `service`, can become an environment
/// variable; if not (another tool stored it: as a variable it would
/// override another one, as a `--secrets-dir` file land elsewhere, and a
/// bundle holding it would not open), it is left out with a note.
pub fn usable_name(service: &str, name: &str) -> bool {
    let ok = dotenv::valid_name(name);
    if !ok {
        eprintln!(
            "ov: note: left out {service} entry {:?}: not an environment variable name (letters, digits and '_'); rename it where it is stored",
            name.escape_debug().to_string()
        );
    }
    ok
}

/// The values of listed entries of `svc`, from the backend that holds each.
fn read_listed(
    store: &Store,
    svc: &str,
    listed: std::collections::BTreeMap<EntryRef, String>,
) -> Result<Vec<(String, Secret)>> {
    let mut out = Vec::new();
    for (entry, source) in listed {
        if entry.service != svc {
            continue;
        }
        if !usable_name(svc, &entry.key) {
            continue;
        }
        if let Some(v) = store.get_in(&source, &EntryRef::new(svc, &entry.key))? {
            out.push((entry.key.clone(), v));
        }
    }
    Ok(out)
}

/// Seal an app/env's secrets to every key registered for it; with no
/// registration left, remove the bundle. Returns the bundle path when one
/// was written.
pub fn seal(
    paths: &Paths,
    registry: &Registry,
    store: &Store,
    app: &str,
    env: &str,
) -> Result<Option<PathBuf>> {
    let bundle = registry.bundle_path(paths, app, env);
    let recipients: Vec<age::x25519::Recipient> = registry
        .for_app(app, env)
        .map(|r| {
            age::x25519::Recipient::from_str(&r.recipient).map_err(|e| {
                OvError::new(format!(
                    "the registry holds a bad recipient for {app}/{env}: {e}"
                ))
                .hint(ov_plugin_support::edit_command(&Registry::path(paths)))
            })
        })
        .collect::<Result<_>>()?;
    if recipients.is_empty() {
        match std::fs::remove_file(&bundle) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(OvError::new(format!(
                    "cannot remove {}: {e}",
                    bundle.display()
                )));
            }
        }
        return Ok(None);
    }
    let secrets =
        collect_complete(store, app, env, &format!("seal {app}/{env} now"))?.map_err(|mut e| {
            e.message.push_str("; the bundle keeps the secrets it had");
            e.hint(format!("{}   # once it is", seal_command(app, env)))
        })?;
    let mut plain = Zeroizing::new(format!("{BUNDLE_MAGIC}{app}/{env}\n"));
    plain.push_str(&Zeroizing::new(dotenv::render(&secrets)));
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| OvError::new(format!("cannot seal {app}/{env}: {e}")))?;
    let mut sealed = Vec::new();
    let mut w = encryptor
        .wrap_output(&mut sealed)
        .map_err(|e| OvError::new(format!("cannot seal {app}/{env}: {e}")))?;
    w.write_all(plain.as_bytes())?;
    w.finish()?;
    if let Some(dir) = bundle.parent() {
        ov_plugin_support::create_dir_all_mode(dir, 0o700)?;
    }
    ov_plugin_support::write_atomic(&bundle, &sealed, Some(0o600))
        .map_err(|e| OvError::new(format!("cannot write {}: {e}", bundle.display())))?;
    Ok(Some(bundle))
}

/// Record a change to `service` made through ov and re-seal its bundle
/// when machine keys are registered for it. Services that are not
/// `app/env` pass through untouched.
pub fn after_change(paths: &Paths, store: &Store, service_name: &str) -> Result<Option<PathBuf>> {
    let Some((app, env)) = service_name.split_once('/') else {
        return Ok(None);
    };
    if env.contains('/') || validate_app_env(app, env).is_err() {
        return Ok(None);
    }
    Registry::locked(paths, || {
        let mut registry = Registry::load(paths)?;
        if registry.for_app(app, env).next().is_none() {
            return Ok(None);
        }
        registry.changed.insert(service_name.to_owned(), now());
        registry.save(paths)?;
        seal(paths, &registry, store, app, env).map_err(|mut e| {
            e.message = format!(
                "{service_name} was changed, but re-sealing its bundle failed: {}",
                e.message
            );
            if e.hints
                .iter()
                .any(|h| h.starts_with(&seal_command(app, env)))
            {
                e
            } else {
                e.hint(seal_command(app, env))
            }
        })
    })
}

/// Open a bundle with a machine key: the secrets, by name, in file order.
pub fn open(
    bundle: &Path,
    key: &MachineKey,
    app: &str,
    env: &str,
) -> Result<Vec<(String, Secret)>> {
    let mut file = File::open(bundle).map_err(|e| {
        OvError::new(format!(
            "cannot open the bundle {}: {}",
            bundle.display(),
            io_text(&e)
        ))
        .hint(format!(
            "{}   # as the user who owns the secrets",
            seal_command(app, env)
        ))
    })?;
    let mut sealed = Vec::new();
    Read::by_ref(&mut file)
        .take(MAX_BUNDLE_BYTES)
        .read_to_end(&mut sealed)?;
    let identity = key.identity(app, env);
    let not_ours = || {
        OvError::new(format!(
            "the bundle {} was not sealed for {app}/{env} with this machine key",
            bundle.display()
        ))
        .hint(format!("ov auth machine-key list   # which key is registered for {app}/{env}"))
        .hint(format!(
            "ov auth machine-key add KEYFILE --app {app} --env {env}   # register this key, as the owner of the secrets"
        ))
    };
    let tampered = || {
        OvError::new(format!(
            "the bundle {} failed authentication: it is damaged or was tampered with",
            bundle.display()
        ))
        .hint(seal_command(app, env))
    };
    let decryptor = age::Decryptor::new_buffered(&sealed[..]).map_err(|_| tampered())?;
    let mut reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => not_ours(),
            _ => tampered(),
        })?;
    let mut plain = Zeroizing::new(Vec::new());
    reader.read_to_end(&mut plain).map_err(|_| tampered())?;
    let text = std::str::from_utf8(&plain).map_err(|_| tampered())?;
    let expected = format!("{BUNDLE_MAGIC}{app}/{env}");
    if text.lines().next() != Some(expected.as_str()) {
        return Err(not_ours());
    }
    let parsed = dotenv::parse(text).map_err(|_| tampered())?;
    Ok(parsed
        .entries
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect())
}
