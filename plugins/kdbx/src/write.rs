//! The write path: groups and entries found or made, saved atomically under
//! the lock, and new databases.

use super::*;

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
pub(crate) fn ensure_group(db: &mut Database, service: &str) -> GroupId {
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

pub(crate) fn find_entry(db: &Database, entry: &EntryRef) -> Option<keepass::db::EntryId> {
    let group = db.group(find_group(db, &entry.service)?)?;
    group
        .entries()
        .find(|e| e.get_title() == Some(entry.key.as_str()))
        .map(|e| e.id())
}

/// The version the `keepass` crate writes.
pub(crate) const SAVED_VERSION: DatabaseVersion = DatabaseVersion::KDB4(1);

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
        BackendError::of(
            ErrorKind::Internal,
            format!("cannot encode {}: {e}", path.display()),
        )
    })?;
    write_atomic(path, &out, None)?;
    load::recache_after_write(ctx, path, &out);
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
        return Err(BackendError::of(
            ErrorKind::Permissions,
            format!(
                "{} is read-only (mode {:04o}); ov does not replace it",
                path.display(),
                mode & 0o7777
            ),
        )
        .hint(format!(
            "chmod u+w {}   # if it should take changes",
            shell_quote(path)
        )));
    }
    Ok(())
}

/// Lock, open, change, save. `change` says whether it changed anything.
pub(crate) fn modify<T>(
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
            return Err(BackendError::of(
                ErrorKind::InvalidInput,
                format!(
                    "{} already exists; refusing to overwrite it",
                    path.display()
                ),
            )
            .hint(format!(
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
            BackendError::of(
                ErrorKind::Internal,
                format!("cannot encode a new database: {e}"),
            )
        })?;
        write_atomic(&path, &out, Some(0o600))?;
        Ok(path.clone())
    })
}
