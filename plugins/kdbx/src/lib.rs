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
    Description, EntryList, EntryRef, ErrorKind, Secret, Status, service_matches,
};

pub mod lifecycle;
use ov_plugin_support::{private_file_report, report, shell_quote, with_lock, write_atomic};
use zeroize::Zeroizing;

pub const DEFAULT_FILE: &str = "secrets.kdbx";

/// Argon2id with 64 MiB, as KeePassXC does by default; the iteration count
/// keeps one unlock near a quarter of a second on a small server.
pub const ARGON2_MEMORY: u64 = 64 * 1024 * 1024;
pub const ARGON2_ITERATIONS: u64 = 10;
pub const ARGON2_PARALLELISM: u32 = 2;

/// Below these an attacker's guessing gets cheap; doctor warns.
const WEAK_ARGON2_MEMORY: u64 = 16 * 1024 * 1024;
const WEAK_AES_ROUNDS: u64 = 100_000;

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
        version: argon2::Version::Version13,
    };
    config
}

/// Build the composite key from the unlock password and the key file.
fn database_key(ctx: &Context, path: &Path) -> Result<DatabaseKey, BackendError> {
    let mut key = DatabaseKey::new();
    if let Some(pw) = &ctx.unlock {
        key = key.with_password(pw.expose());
    }
    if let Some(kf) = key_file(ctx) {
        let mut file = ov_plugin_support::open_regular(&kf, 0).map_err(|e| {
            BackendError::new(
                ErrorKind::InvalidInput,
                format!("cannot open the key file {}: {e}", kf.display()),
            )
            .with_hint(format!("ls -l {}", shell_quote(&kf)))
            .with_hint(
                "ov settings unset secrets.kdbx_key_file   # if the database has no key file",
            )
        })?;
        key = key.with_keyfile(&mut file).map_err(|e| {
            BackendError::new(
                ErrorKind::InvalidInput,
                format!("cannot read the key file {}: {e}", kf.display()),
            )
        })?;
    }
    if key.is_empty() {
        return Err(locked(path));
    }
    Ok(key)
}

fn locked(path: &Path) -> BackendError {
    BackendError::new(
        ErrorKind::Locked,
        format!("{} is locked: a password is needed", path.display()),
    )
    .with_hint("ov secrets unlock")
}

fn wrong_password(path: &Path) -> BackendError {
    BackendError::new(
        ErrorKind::WrongPassword,
        format!(
            "decoding kdbx: Wrong password? ({} did not open)",
            path.display()
        ),
    )
    .with_hint(format!(
        "keepassxc-cli open {}   # check the password with KeePassXC",
        shell_quote(path)
    ))
}

/// Read the file, refusing what is not a regular file.
fn read_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, BackendError> {
    let meta = fs::metadata(path).map_err(|e| match e.raw_os_error() {
        Some(40) => BackendError::new(
            ErrorKind::Io,
            format!("{}: too many levels of symbolic links", path.display()),
        ),
        _ if ov_plugin_support::is_missing(&e) => BackendError::new(
            ErrorKind::Unavailable,
            format!("no KeePass database at {}", path.display()),
        )
        .with_hint("ov secrets init"),
        _ => BackendError::from(ov_plugin_support::io_context("read", path, e)),
    })?;
    if meta.is_dir() {
        return Err(BackendError::new(
            ErrorKind::InvalidInput,
            format!("{} is a directory, not a KeePass database", path.display()),
        )
        .with_hint(format!(
            "ov settings set secrets.kdbx_path {}",
            shell_quote(&path.join(DEFAULT_FILE))
        )));
    }
    ov_plugin_support::read_regular(path)
        .map(Zeroizing::new)
        .map_err(|e| BackendError::from(ov_plugin_support::io_context("read", path, e)))
}

fn open_error(path: &Path, err: DatabaseOpenError) -> BackendError {
    match err {
        DatabaseOpenError::Key(DatabaseKeyError::IncorrectKey) => wrong_password(path),
        DatabaseOpenError::Key(DatabaseKeyError::EmptyKey) => locked(path),
        DatabaseOpenError::Key(other) => BackendError::new(
            ErrorKind::InvalidInput,
            format!("{}: the key file was refused: {other}", path.display()),
        )
        .with_hint("ov settings get secrets.kdbx_key_file"),
        DatabaseOpenError::Io(e) => BackendError::from(ov_plugin_support::io_context("read", path, e)),
        other => BackendError::new(
            ErrorKind::Corrupt,
            format!("{} is not a readable KeePass database: {other}", path.display()),
        )
        .with_hint(format!(
            "keepassxc-cli db-info {}   # check the file; restore it from a backup if it is damaged",
            shell_quote(path)
        )),
    }
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

/// Walk the group path of a service from the root; `None` when a group is missing.
fn find_group(db: &Database, service: &str) -> Option<GroupId> {
    let mut current = db.root();
    for part in service.split('/') {
        let id = current.groups().find(|g| g.name == part)?.id();
        current = db.group(id)?;
    }
    Some(current.id())
}

/// Walk the group path, creating groups that are missing.
fn ensure_group(db: &mut Database, service: &str) -> GroupId {
    let mut current = db.root().id();
    for part in service.split('/') {
        let existing = db
            .group(current)
            .and_then(|g| g.groups().find(|c| c.name == part).map(|c| c.id()));
        current = match existing {
            Some(id) => id,
            None => match db.group_mut(current) {
                Some(mut parent) => {
                    let mut child = parent.add_group();
                    child.name = part.to_owned();
                    child.id()
                }
                None => current,
            },
        };
    }
    current
}

fn find_entry(db: &Database, entry: &EntryRef) -> Option<keepass::db::EntryId> {
    let group = db.group(find_group(db, &entry.service)?)?;
    group
        .entries()
        .find(|e| e.get_title() == Some(entry.key.as_str()))
        .map(|e| e.id())
}

/// The service path of a group: names from below the root down to it.
fn service_of(db: &Database, mut id: GroupId) -> Option<String> {
    let root = db.root().id();
    let mut parts = Vec::new();
    while id != root {
        let g = db.group(id)?;
        parts.push(g.name.clone());
        id = g.parent()?.id();
    }
    parts.reverse();
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// The version the `keepass` crate writes.
const SAVED_VERSION: DatabaseVersion = DatabaseVersion::KDB4(1);

/// Save `db` over `path` (temp file, fsync, rename). A database in another
/// format (KDBX 3.1, or 4.0 as KeePassXC writes when no 4.1 feature is in
/// use) is saved as KDBX 4.1, after a copy of the original is kept.
fn save(ctx: &Context, path: &Path, db: &mut Database) -> Result<(), BackendError> {
    if db.config.version != SAVED_VERSION {
        let backup = upgrade_backup_path(path, &db.config.version);
        if !backup.exists() {
            let original = read_file(path)?;
            write_atomic(&backup, &original, Some(0o600))?;
        }
        if matches!(db.config.version, DatabaseVersion::KDB4(_)) {
            db.config.version = SAVED_VERSION;
        } else {
            let kdf = db.config.kdf_config.clone();
            db.config = new_config();
            // Keep a stronger Argon2 the user chose; otherwise take ov's default.
            if let KdfConfig::Argon2 { memory, .. } | KdfConfig::Argon2id { memory, .. } = kdf
                && memory >= ARGON2_MEMORY
            {
                db.config.kdf_config = kdf;
            }
        }
    }
    let key = database_key(ctx, path)?;
    let mut out = Zeroizing::new(Vec::new());
    db.save(&mut *out, key).map_err(|e| {
        BackendError::new(
            ErrorKind::Internal,
            format!("cannot encode {}: {e}", path.display()),
        )
    })?;
    write_atomic(path, &out, None)?;
    Ok(())
}

/// Where the original of an upgraded database is kept: `<file>.kdbx3.bak`
/// for KDBX 3.x, `<file>.kdbx40.bak` for KDBX 4.0.
pub fn upgrade_backup_path(path: &Path, from: &DatabaseVersion) -> PathBuf {
    let tag = match from {
        DatabaseVersion::KDB4(minor) => format!("kdbx4{minor}"),
        DatabaseVersion::KDB3(_) => "kdbx3".to_owned(),
        _ => "old".to_owned(),
    };
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{tag}.bak"));
    path.with_file_name(name)
}

/// A database without its owner's write bit is meant to stay as it is; the
/// rename would replace it all the same, so refuse before writing.
fn refuse_read_only(path: &Path) -> Result<(), BackendError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|e| BackendError::from(ov_plugin_support::io_context("inspect", path, e)))?
        .permissions()
        .mode();
    if mode & 0o200 == 0 {
        return Err(BackendError::new(
            ErrorKind::Permissions,
            format!(
                "{} is read-only (mode {:04o}); ov does not replace it",
                path.display(),
                mode & 0o7777
            ),
        )
        .with_hint(format!(
            "chmod u+w {}   # if it should take changes",
            shell_quote(path)
        )));
    }
    Ok(())
}

/// Lock, open, change, save. `change` says whether it changed anything.
fn modify<T>(
    ctx: &Context,
    change: impl FnOnce(&mut Database) -> (T, bool),
) -> Result<T, BackendError> {
    let path = db_path(ctx);
    with_lock(&path, || {
        let (path, mut db) = open(ctx)?;
        refuse_read_only(&path)?;
        let (out, changed) = change(&mut db);
        if changed {
            save(ctx, &path, &mut db)?;
        }
        Ok(out)
    })
}

/// Create a new, empty database. Refuses to overwrite unless `force`.
pub fn create(ctx: &Context, force: bool) -> Result<PathBuf, BackendError> {
    let path = db_path(ctx);
    with_lock(&path, || {
        if !force && fs::symlink_metadata(&path).is_ok() {
            return Err(BackendError::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} already exists; refusing to overwrite it",
                    path.display()
                ),
            )
            .with_hint(format!(
                "ov secrets init {} --force   # replaces it: its secrets are lost",
                shell_quote(&path)
            )));
        }
        let mut db = Database::with_config(new_config());
        db.root_mut().name = "ov".to_owned();
        db.meta.database_name = Some("ov secrets".to_owned());
        let key = database_key(ctx, &path)?;
        let mut out = Zeroizing::new(Vec::new());
        db.save(&mut *out, key).map_err(|e| {
            BackendError::new(
                ErrorKind::Internal,
                format!("cannot encode a new database: {e}"),
            )
        })?;
        write_atomic(&path, &out, Some(0o600))?;
        Ok(path.clone())
    })
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

    fn unlock_target(&self, ctx: &Context) -> Option<String> {
        Some(db_path(ctx).display().to_string())
    }

    fn verify_unlock(&self, ctx: &Context) -> Result<(), BackendError> {
        open(ctx).map(|_| ())
    }

    fn create(&self, ctx: &Context, request: &CreateRequest) -> Result<Created, BackendError> {
        lifecycle::create(ctx, request)
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
        let (_, db) = open(ctx)?;
        Ok(find_entry(&db, entry)
            .and_then(|id| db.entry(id))
            .map(|e| Secret::from(e.get_password().unwrap_or_default())))
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
        let (_, db) = open(ctx)?;
        let recycle = db.recycle_bin().map(|g| g.id());
        let mut out = Vec::new();
        for e in db.iter_all_entries() {
            let group = e.parent();
            if Some(group.id()) == recycle || group.id() == db.root().id() {
                continue;
            }
            let (Some(title), Some(svc)) = (e.get_title(), service_of(&db, group.id())) else {
                continue;
            };
            if recycle.is_some_and(|r| svc_under(&db, group.id(), r)) {
                continue;
            }
            if service_matches(&svc, service) {
                out.push(EntryRef::new(svc, title));
            }
        }
        out.sort();
        out.dedup();
        Ok(out.into())
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
            CheckDecl::new(db, "KeePass database present"),
            CheckDecl::new("kdbx.permissions", "KeePass database owner and mode").after(db),
            CheckDecl::new("kdbx.key_file", "KeePass key file owner and mode").after(db),
            CheckDecl::new("kdbx.format", "KeePass format").after(db),
            CheckDecl::new("kdbx.unlock", "KeePass database opens").after("kdbx.format"),
            CheckDecl::new("kdbx.kdf", "KeePass key derivation strength").after("kdbx.unlock"),
        ]
    }

    fn run_check(&self, ctx: &Context, id: &str) -> Vec<CheckReport> {
        let mut out = checks(ctx, id);
        out.retain(|r| r.id == id);
        out
    }
}

/// Is group `id` inside group `ancestor`?
fn svc_under(db: &Database, mut id: GroupId, ancestor: GroupId) -> bool {
    while let Some(g) = db.group(id) {
        if g.id() == ancestor {
            return true;
        }
        match g.parent() {
            Some(p) => id = p.id(),
            None => return false,
        }
    }
    false
}

/// What raises a weak key derivation with the tools at hand:
/// `keepassxc-cli db-edit` cannot change it (2.7), so a new database with
/// a ~1 s derivation takes the entries over by `merge`, then its place.
fn stronger_kdf_fix(path: &Path, key_file: Option<&Path>) -> String {
    let db = shell_quote(path);
    let mut new_path = path.as_os_str().to_owned();
    new_path.push(".new");
    let new = shell_quote(Path::new(&new_path));
    let (create_kf, merge_kf) = match key_file {
        Some(kf) => {
            let kf = shell_quote(kf);
            (format!(" --set-key-file {kf}"), format!(" -k {kf}"))
        }
        None => (String::new(), String::new()),
    };
    format!(
        "keepassxc-cli db-create -p -t 1000{create_kf} {new} && keepassxc-cli merge -s{merge_kf} {new} {db} && mv {new} {db} && chmod 600 {db}   # a new database with a ~1 s key derivation takes the entries over (or raise it in KeePassXC: Database Security)"
    )
}

fn kdf_finding(kdf: &KdfConfig) -> (Status, String) {
    match kdf {
        KdfConfig::Aes { rounds } => (
            if *rounds < WEAK_AES_ROUNDS {
                Status::Warn
            } else {
                Status::Ok
            },
            format!("AES-KDF, {rounds} rounds"),
        ),
        KdfConfig::Argon2 {
            iterations,
            memory,
            parallelism,
            ..
        }
        | KdfConfig::Argon2id {
            iterations,
            memory,
            parallelism,
            ..
        } => {
            let name = if matches!(kdf, KdfConfig::Argon2id { .. }) {
                "Argon2id"
            } else {
                "Argon2d"
            };
            (
                if *memory < WEAK_ARGON2_MEMORY {
                    Status::Warn
                } else {
                    Status::Ok
                },
                format!(
                    "{name}, {} MiB, {iterations} iterations, parallelism {parallelism}",
                    memory / (1024 * 1024)
                ),
            )
        }
        _ => (Status::Warn, "an unknown KDF".into()),
    }
}

/// The checks up to `only` (a declared id), cheap ones all run because
/// later ones depend on what they find; the database is opened only for
/// `kdbx.unlock` and `kdbx.kdf`.
fn checks(ctx: &Context, only: &str) -> Vec<CheckReport> {
    let path = db_path(ctx);
    let mut out = Vec::new();
    let quoted = shell_quote(&path);

    // kdbx.database: configured and present.
    let present = path.is_file();
    // Something is there, but not a database file: say what it is, since
    // `ov secrets init` cannot create a database over it.
    let wrong_kind = match fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => Some(format!("{} is a directory", path.display())),
        Ok(m) if m.file_type().is_symlink() && !present => Some(match fs::metadata(&path) {
            // ELOOP
            Err(e) if e.raw_os_error() == Some(40) => {
                format!("{} is a symlink loop", path.display())
            }
            Err(_) => format!(
                "{} is a symlink to {}, which does not exist",
                path.display(),
                fs::read_link(&path).unwrap_or_default().display()
            ),
            Ok(_) => format!(
                "{} is a symlink to something that is not a file",
                path.display()
            ),
        }),
        Ok(m) if !m.is_file() => Some(format!("{} is not a regular file", path.display())),
        _ => None,
    };
    let mut r = if let Some(what) = wrong_kind {
        let mut r = report(
            "kdbx.database",
            "KeePass database present",
            Status::Fail,
            format!("secrets.kdbx_path names no database: {what}"),
        );
        r.fix = Some(format!(
            "ov settings set secrets.kdbx_path {}   # a file path for the database",
            shell_quote(&if path.is_dir() {
                path.join(DEFAULT_FILE)
            } else {
                ctx.config_dir.join(DEFAULT_FILE)
            })
        ));
        r
    } else if present {
        report(
            "kdbx.database",
            "KeePass database present",
            Status::Ok,
            format!("{} exists", path.display()),
        )
    } else if ctx.setting_str("secret_backend") == Some("kdbx") {
        let mut r = report(
            "kdbx.database",
            "KeePass database present",
            Status::Fail,
            format!(
                "secret_backend is kdbx but there is no database at {}",
                path.display()
            ),
        );
        r.fix = Some(format!("ov secrets init {quoted}"));
        r
    } else {
        report(
            "kdbx.database",
            "KeePass database present",
            Status::Ok,
            format!(
                "no database at {} (the kdbx backend is unused)",
                path.display()
            ),
        )
    };
    if !present {
        out.push(r);
        return out;
    }
    r.finding = format!("{} exists", path.display());
    out.push(r);

    // kdbx.permissions: mode and owner of the database and the key file.
    let mut perm =
        private_file_report("kdbx.permissions", "KeePass database owner and mode", &path);
    perm.depends_on = vec!["kdbx.database".into()];
    out.push(perm);
    if let Some(kf) = key_file(ctx) {
        let mut r = if kf.exists() {
            private_file_report("kdbx.key_file", "KeePass key file owner and mode", &kf)
        } else {
            let mut r = report(
                "kdbx.key_file",
                "KeePass key file owner and mode",
                Status::Fail,
                format!("the key file {} does not exist", kf.display()),
            );
            r.fix =
                Some("ov settings unset secrets.kdbx_key_file   # or restore the key file".into());
            r
        };
        r.depends_on = vec!["kdbx.database".into()];
        out.push(r);
    }

    // kdbx.format: version from the header (no key needed).
    let mut fmt = match file_version(&path) {
        Ok(v @ DatabaseVersion::KDB4(_)) => report(
            "kdbx.format",
            "KeePass format",
            Status::Ok,
            version_label(&v),
        ),
        Ok(v) => {
            let mut r = report(
                "kdbx.format",
                "KeePass format",
                Status::Warn,
                format!(
                    "{}; ov upgrades it to KDBX 4 on the next write (a backup is kept)",
                    version_label(&v)
                ),
            );
            r.fix = Some(format!(
                "keepassxc-cli db-info {quoted}   # then save it as KDBX 4 in KeePassXC, or let ov upgrade it"
            ));
            r
        }
        Err(e) => {
            let mut r = report(
                "kdbx.format",
                "KeePass format",
                Status::Fail,
                e.message.clone(),
            );
            r.fix = e.hints.first().cloned();
            r
        }
    };
    fmt.depends_on = vec!["kdbx.database".into()];
    let format_ok = fmt.status != Status::Fail;
    out.push(fmt);
    if !format_ok {
        return out;
    }

    if !matches!(only, "kdbx.unlock" | "kdbx.kdf") {
        return out;
    }
    // kdbx.unlock: opens with what the engine has (env or cache); never prompts.
    let mut unlock = if ctx.unlock.is_none() && key_file(ctx).is_none() {
        // Locked is the normal state of a database at rest, not a fault.
        report(
            "kdbx.unlock",
            "KeePass database opens",
            Status::Skip,
            "skipped: locked, as a database at rest normally is (no OV_KDBX_PASSWORD, no cached password); `ov secrets unlock` opens it for this check",
        )
    } else {
        match open(ctx) {
            Ok((_, db)) => {
                let mut r = report(
                    "kdbx.unlock",
                    "KeePass database opens",
                    Status::Ok,
                    format!("opens; {} entries", db.num_entries()),
                );
                r.depends_on = vec!["kdbx.format".into()];
                out.push(r);
                let (status, finding) = kdf_finding(&db.config.kdf_config);
                let mut k = report(
                    "kdbx.kdf",
                    "KeePass key derivation strength",
                    status,
                    finding,
                );
                if status != Status::Ok {
                    k.fix = Some(stronger_kdf_fix(&path, key_file(ctx).as_deref()));
                }
                k.depends_on = vec!["kdbx.unlock".into()];
                out.push(k);
                return out;
            }
            Err(e) if e.kind == ErrorKind::WrongPassword => {
                let mut r = report(
                    "kdbx.unlock",
                    "KeePass database opens",
                    Status::Fail,
                    "the password from OV_KDBX_PASSWORD or the cache does not open it",
                );
                r.fix = Some("ov secrets lock && ov secrets unlock".into());
                r
            }
            Err(e) => {
                let mut r = report(
                    "kdbx.unlock",
                    "KeePass database opens",
                    Status::Fail,
                    e.message.clone(),
                );
                r.fix = e
                    .hints
                    .first()
                    .cloned()
                    .or_else(|| Some(format!("ls -l {quoted}")));
                r
            }
        }
    };
    unlock.depends_on = vec!["kdbx.format".into()];
    out.push(unlock);
    out
}

ov_plugin_api::export_plugin!(KdbxBackend);

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "weak-kdf-pw";

    fn ctx_for(dir: &Path, db: &Path) -> Context {
        let mut ctx = Context {
            config_dir: dir.to_path_buf(),
            unlock: Some(Secret::from(PW)),
            ..Context::default()
        };
        ctx.settings
            .insert("secrets.kdbx_path".into(), db.display().to_string().into());
        ctx
    }

    fn kdf_check(ctx: &Context) -> CheckReport {
        checks(ctx, "kdbx.kdf")
            .into_iter()
            .find(|r| r.id == "kdbx.kdf")
            .expect("kdbx.kdf is reported")
    }

    /// A KDBX 4 database with 1 MiB of Argon2id, made here (KeePassXC's
    /// own tools refuse a derivation this cheap), then the printed fix run
    /// by bash with the real keepassxc-cli: the check passes and the entry
    /// is still there.
    #[test]
    fn the_weak_key_derivation_fix_works_when_pasted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db_path = dir.path().join("weak.kdbx");
        let ctx = ctx_for(dir.path(), &db_path);
        let mut config = new_config();
        config.kdf_config = KdfConfig::Argon2id {
            iterations: 2,
            memory: 1024 * 1024,
            parallelism: 1,
            version: argon2::Version::Version13,
        };
        let mut db = Database::with_config(config);
        db.meta.database_name = Some("weak".into());
        let mut out = Vec::new();
        db.save(&mut out, DatabaseKey::new().with_password(PW))
            .expect("save");
        write_atomic(&db_path, &out, Some(0o600)).expect("write");
        KdbxBackend
            .set(&ctx, &EntryRef::new("svc", "k"), &Secret::from("kept"))
            .expect("set");

        let before = kdf_check(&ctx);
        assert_eq!(before.status, Status::Warn, "{}", before.finding);
        let fix = before.fix.expect("a fix");
        // Typed at the prompts as a person would (expect, on a terminal):
        // the new password twice, then the one that opens both.
        let script = format!(
            "spawn bash -c $env(FIX)\n\
             foreach _ {{1 2 3}} {{ expect -re {{(?i)password}} {{ send \"{PW}\\r\" }} timeout {{ exit 90 }} }}\n\
             expect eof\n\
             catch wait result\n\
             exit [lindex $result 3]\n"
        );
        let done = std::process::Command::new("expect")
            .arg("-c")
            .arg(&script)
            .env("FIX", &fix)
            .output()
            .expect("expect (Debian package expect; ./scripts/test installs it)");
        assert!(
            done.status.success(),
            "{fix}: {}",
            String::from_utf8_lossy(&done.stdout)
        );
        let after = kdf_check(&ctx);
        assert_eq!(after.status, Status::Ok, "{}", after.finding);
        let kept = KdbxBackend
            .get(&ctx, &EntryRef::new("svc", "k"))
            .expect("get")
            .expect("the entry");
        assert_eq!(kept.expose(), "kept");
    }
}
