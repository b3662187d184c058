//! The KeePass backend: a `.kdbx` database that KeePassXC opens too.
//!
//! Layout: service `a/b` is the group path `a` → `b` under the root group,
//! the key is the entry's title and the value its password field. So
//! `ov secrets set ov/vnc my-image` lands in KeePassXC as group `ov`, group
//! `vnc`, entry `my-image`.
//!
//! The engine supplies the password in `Context::unlock` and owns the
//! prompt, the retries and the kernel-keyring cache; this backend only says
//! `locked` (no password given) or `wrong_password`.
//!
//! Reads of KDBX 4 go through ov's own reader ([`read`]), which can open
//! the database with a derived key cached in the kernel keyring
//! ([`cache`]): a warm read skips the key derivation. KDBX 3.1 reads and
//! every write go through the `keepass` crate.
//!
//! Writes hold a lock beside the database, save to a temp file, fsync and
//! rename, keeping the file's mode and owner. A KDBX 3.1 database is saved as
//! KDBX 4 (the format the `keepass` crate writes), after a copy of the
//! original is kept as `<file>.kdbx3.bak`.

use std::fs;
use std::path::{Path, PathBuf};

use keepass::config::{DatabaseConfig, DatabaseVersion, InnerCipherConfig, KdfConfig};
use keepass::db::{DatabaseOpenError, GroupId};
use keepass::error::DatabaseKeyError;
use keepass::{Database, DatabaseKey};
use ov_plugin_api::{
    Availability, Backend, BackendError, CheckDecl, CheckReport, Context, CreateRequest, Created,
    Description, EntryList, EntryRef, ErrorKind, Secret,
};

pub mod lifecycle;
use ov_plugin_support::{shell_quote, with_lock, write_atomic};
use zeroize::Zeroizing;

pub mod cache;
mod checks;
mod load;
pub mod read;
mod write;

pub use load::{forget_cached_key, unlock};
use write::{SAVED_VERSION, ensure_group, find_entry, modify};
pub use write::{create, upgrade_backup_path};

pub const DEFAULT_FILE: &str = "secrets.kdbx";

/// Argon2id with 64 MiB, as KeePassXC does by default; the iteration count
/// keeps one unlock near a quarter of a second on a small server.
pub const ARGON2_MEMORY: u64 = 64 * 1024 * 1024;
pub const ARGON2_ITERATIONS: u64 = 10;
pub const ARGON2_PARALLELISM: u32 = 2;

#[derive(Debug, Default)]
pub struct KdbxBackend;

/// The database path: `secrets.kdbx_path`, or `secrets.kdbx` in the config dir.
pub fn db_path(ctx: &Context) -> PathBuf {
    ctx.setting_str("secrets.kdbx_path")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| ctx.config_dir.join(DEFAULT_FILE))
}

pub fn key_file(ctx: &Context) -> Option<PathBuf> {
    ctx.setting_str("secrets.kdbx_key_file")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// The configuration ov gives a new database.
pub fn new_config() -> DatabaseConfig {
    let mut config = DatabaseConfig::default();
    config.inner_cipher_config = InnerCipherConfig::ChaCha20;
    config.kdf_config = KdfConfig::Argon2id {
        iterations: ARGON2_ITERATIONS,
        memory: ARGON2_MEMORY,
        parallelism: ARGON2_PARALLELISM,
        version: rust_argon2::Version::Version13,
    };
    config
}

/// The contents of the configured key file, if there is one.
fn key_file_bytes(ctx: &Context) -> Result<Option<Zeroizing<Vec<u8>>>, BackendError> {
    let Some(kf) = key_file(ctx) else {
        return Ok(None);
    };
    let mut file = ov_plugin_support::open_regular(&kf, 0).map_err(|e| {
        BackendError::of(
            ErrorKind::InvalidInput,
            format!("cannot open the key file {}: {e}", kf.display()),
        )
        .hint(format!("ls -l {}", shell_quote(&kf)))
        .hint("ov settings unset secrets.kdbx_key_file   # if the database has no key file")
    })?;
    let mut bytes = Zeroizing::new(Vec::new());
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| {
        BackendError::of(
            ErrorKind::InvalidInput,
            format!("cannot read the key file {}: {e}", kf.display()),
        )
    })?;
    Ok(Some(bytes))
}

/// Build the composite key from the unlock password and the key file.
fn database_key(ctx: &Context, path: &Path) -> Result<DatabaseKey, BackendError> {
    let mut key = DatabaseKey::new();
    if let Some(pw) = &ctx.unlock {
        key = key.with_password(pw.expose());
    }
    if let Some(bytes) = key_file_bytes(ctx)? {
        key = key.with_keyfile(&mut &bytes[..]).map_err(|e| {
            BackendError::of(
                ErrorKind::InvalidInput,
                format!("cannot read the key file: {e}"),
            )
        })?;
    }
    if key.is_empty() {
        return Err(locked(path));
    }
    Ok(key)
}

fn locked(path: &Path) -> BackendError {
    BackendError::of(
        ErrorKind::Locked,
        format!("{} is locked: a password is needed", path.display()),
    )
    .hint("ov secrets unlock")
}

fn wrong_password(path: &Path) -> BackendError {
    BackendError::of(
        ErrorKind::WrongPassword,
        format!(
            "decoding kdbx: Wrong password? ({} did not open)",
            path.display()
        ),
    )
    .hint(format!(
        "keepassxc-cli open {}   # check the password with KeePassXC",
        shell_quote(path)
    ))
}

/// The largest database file ov reads: above the most a payload may
/// decompress to, far above any real database.
const MAX_FILE: u64 = 512 * 1024 * 1024;

/// Read the file, refusing what is not a regular file or is too large.
fn read_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, BackendError> {
    let meta = fs::metadata(path).map_err(|e| match e.raw_os_error() {
        Some(40) => BackendError::of(
            ErrorKind::Io,
            format!("{}: too many levels of symbolic links", path.display()),
        ),
        _ if ov_plugin_support::is_missing(&e) => BackendError::of(
            ErrorKind::Unavailable,
            format!("no KeePass database at {}", path.display()),
        )
        .hint("ov secrets init"),
        _ => BackendError::from(ov_plugin_support::io_context("read", path, e)),
    })?;
    if meta.is_dir() {
        return Err(BackendError::of(
            ErrorKind::InvalidInput,
            format!("{} is a directory, not a KeePass database", path.display()),
        )
        .hint(format!(
            "ov settings set secrets.kdbx_path {}",
            shell_quote(&path.join(DEFAULT_FILE))
        )));
    }
    if meta.len() > MAX_FILE {
        return Err(unreadable(
            path,
            format!(
                "it is {} MiB; ov reads no database over {} MiB",
                meta.len() / (1024 * 1024),
                MAX_FILE / (1024 * 1024)
            ),
        ));
    }
    ov_plugin_support::read_regular(path)
        .map(Zeroizing::new)
        .map_err(|e| BackendError::from(ov_plugin_support::io_context("read", path, e)))
}

fn open_error(path: &Path, err: DatabaseOpenError) -> BackendError {
    match err {
        DatabaseOpenError::Key(DatabaseKeyError::IncorrectKey) => wrong_password(path),
        DatabaseOpenError::Key(DatabaseKeyError::EmptyKey) => locked(path),
        DatabaseOpenError::Key(other) => BackendError::of(
            ErrorKind::InvalidInput,
            format!("{}: the key file was refused: {other}", path.display()),
        )
        .hint("ov settings get secrets.kdbx_key_file"),
        DatabaseOpenError::Io(e) => {
            BackendError::from(ov_plugin_support::io_context("read", path, e))
        }
        other => unreadable(path, other),
    }
}

/// A file that is damaged, truncated, hostile or not a database at all.
fn unreadable(path: &Path, why: impl std::fmt::Display) -> BackendError {
    BackendError::of(
        ErrorKind::Corrupt,
        format!(
            "{} is not a readable KeePass database: {why}",
            path.display()
        ),
    )
    .hint(format!(
        "keepassxc-cli db-info {}   # check the file; restore it from a backup if it is damaged",
        shell_quote(path)
    ))
}

/// Open the database with the context's key.
pub fn open(ctx: &Context) -> Result<(PathBuf, Database), BackendError> {
    let path = db_path(ctx);
    let bytes = read_file(&path)?;
    let key = database_key(ctx, &path)?;
    let db = Database::parse(&bytes, key).map_err(|e| open_error(&path, e))?;
    Ok((path, db))
}

/// The format of the file at `path`, read from its header without a key.
pub fn file_version(path: &Path) -> Result<DatabaseVersion, BackendError> {
    let mut file = fs::File::open(path)
        .map_err(|e| BackendError::from(ov_plugin_support::io_context("read", path, e)))?;
    Database::get_version(&mut file).map_err(|e| open_error(path, e))
}

pub fn version_label(v: &DatabaseVersion) -> String {
    match v {
        DatabaseVersion::KDB(_) => "KDB (KeePass 1)".into(),
        DatabaseVersion::KDB2(_) => "KDBX 2 (pre-release)".into(),
        DatabaseVersion::KDB3(minor) => format!("KDBX 3.{minor}"),
        DatabaseVersion::KDB4(minor) => format!("KDBX 4.{minor}"),
    }
}

impl Backend for KdbxBackend {
    fn describe(&self) -> Description {
        Description {
            name: "kdbx".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "KeePass .kdbx database (KeePassXC-compatible)".into(),
            priority: 20,
            writable: true,
            plaintext: false,
            needs_unlock: true,
            listable: true,
            waits: false,
            settings: lifecycle::settings(),
            unlock: Some(lifecycle::unlock_spec()),
            creates: true,
        }
    }

    fn probe(&self, ctx: &Context) -> Availability {
        let path = db_path(ctx);
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => Availability::Available {
                location: Some(path.display().to_string()),
            },
            Ok(_) => Availability::unavailable(format!("{} is not a regular file", path.display())),
            Err(_) => Availability::unavailable(format!(
                "no database at {} (create one with `ov secrets init`)",
                path.display()
            )),
        }
    }

    fn get(&self, ctx: &Context, entry: &EntryRef) -> Result<Option<Secret>, BackendError> {
        let tree = load::read_tree(ctx)?;
        Ok(tree
            .get(entry)
            .map(|e| Secret::from(e.password.as_deref().map_or("", |p| p.as_str()))))
    }

    fn set(&self, ctx: &Context, entry: &EntryRef, value: &Secret) -> Result<(), BackendError> {
        modify(ctx, |db| {
            let existing = find_entry(db, entry);
            let group = ensure_group(db, &entry.service);
            let id = match existing {
                Some(id) => Some(id),
                None => db.group_mut(group).map(|mut g| {
                    let mut e = g.add_entry();
                    e.set_unprotected("Title", entry.key.as_str());
                    e.id()
                }),
            };
            if let Some(mut e) = id.and_then(|id| db.entry_mut(id)) {
                e.set_protected("Password", value.expose());
            }
            ((), true)
        })
    }

    fn delete(&self, ctx: &Context, entry: &EntryRef) -> Result<bool, BackendError> {
        modify(ctx, |db| {
            match find_entry(db, entry).and_then(|id| db.entry_mut(id)) {
                Some(e) => {
                    e.remove();
                    (true, true)
                }
                None => (false, false),
            }
        })
    }

    fn list(&self, ctx: &Context, service: Option<&str>) -> Result<EntryList, BackendError> {
        Ok(load::read_tree(ctx)?.list(service).into())
    }

    fn write_notices(&self, ctx: &Context) -> Vec<String> {
        let path = db_path(ctx);
        match file_version(&path) {
            Ok(v) if v != SAVED_VERSION && !upgrade_backup_path(&path, &v).exists() => {
                vec![format!(
                    "{} is {}; ov saves it as {} and keeps the original as {}",
                    path.display(),
                    version_label(&v),
                    version_label(&SAVED_VERSION),
                    upgrade_backup_path(&path, &v).display()
                )]
            }
            _ => Vec::new(),
        }
    }

    fn declare_checks(&self) -> Vec<CheckDecl> {
        let db = "kdbx.database";
        vec![
            CheckDecl::new("kdbx.cache", "KeePass password cache").after(db),
            CheckDecl::new(db, "KeePass database present"),
            CheckDecl::new("kdbx.permissions", "KeePass database owner and mode").after(db),
            CheckDecl::new("kdbx.key_file", "KeePass key file owner and mode").after(db),
            CheckDecl::new("kdbx.format", "KeePass format").after(db),
            CheckDecl::new("kdbx.unlock", "KeePass database opens").after("kdbx.format"),
            CheckDecl::new("kdbx.kdf", "KeePass key derivation strength").after("kdbx.unlock"),
        ]
    }

    fn run_check(&self, ctx: &Context, id: &str) -> Vec<CheckReport> {
        if id == "kdbx.cache" {
            // What is cached for a database that is there: the engine's
            // password and this backend's derived key.
            let db = db_path(ctx);
            if !db.is_file() {
                return Vec::new();
            }
            return vec![cache::check(&db, cache::enabled(ctx))];
        }
        let mut out = checks::checks(ctx, id);
        out.retain(|r| r.id == id);
        out
    }

    fn unlock_target(&self, ctx: &Context) -> Option<String> {
        Some(db_path(ctx).display().to_string())
    }

    /// Opens with the password (never a cached derived key) and caches the
    /// derived key, so the next read skips the key derivation.
    fn verify_unlock(&self, ctx: &Context) -> Result<(), BackendError> {
        load::unlock(ctx)
    }

    fn create(&self, ctx: &Context, request: &CreateRequest) -> Result<Created, BackendError> {
        lifecycle::create(ctx, request)
    }

    fn lock(&self, ctx: &Context) -> Vec<String> {
        if load::forget_cached_key(ctx) {
            vec![format!(
                "forgot the cached key for {}",
                db_path(ctx).display()
            )]
        } else {
            Vec::new()
        }
    }
}

ov_plugin_api::export_plugin!(KdbxBackend);
