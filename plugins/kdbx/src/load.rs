//! How a read opens the database: KDBX 4 through ov's reader, with the
//! cached derived key when there is one that passes the header HMAC, else
//! the password chain's key (whose derivation is then cached); anything
//! else through the `keepass` crate.

use std::path::Path;

use keepass::Database;
use ov_plugin_api::{BackendError, Context};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::read::{self, ReadError, Tree, tree};
use crate::{
    cache, database_key, db_path, key_file_bytes, locked, open_error, read_file, unreadable,
    wrong_password,
};

fn read_error(path: &Path, e: ReadError) -> BackendError {
    match e {
        ReadError::WrongKey => wrong_password(path),
        other => unreadable(path, other),
    }
}

/// What a cached derived key is bound to: the database's KDF parameters
/// (salt included) and the key file's contents, if there is one.
fn binding(header: &read::Header, key_file: Option<&[u8]>) -> [u8; 32] {
    let mut h = Sha256::new().chain_update(&header.kdf_params);
    match key_file {
        Some(kf) => {
            h.update([1u8]);
            h.update(Sha256::digest(kf));
        }
        None => h.update([0u8]),
    }
    h.finalize().into()
}

/// The database's tree for a read.
pub fn read_tree(ctx: &Context) -> Result<Tree, BackendError> {
    read_with(ctx, true)
}

fn read_with(ctx: &Context, use_cached: bool) -> Result<Tree, BackendError> {
    let path = db_path(ctx);
    let bytes = read_file(&path)?;
    let header = match read::header::parse(&bytes) {
        Ok(h) => h,
        Err(ReadError::Unsupported(_)) => {
            let key = database_key(ctx, &path)?;
            let db = Database::parse(&bytes, key).map_err(|e| open_error(&path, e))?;
            return Ok(tree_of(&db));
        }
        Err(e) => return Err(read_error(&path, e)),
    };
    // The key file is read first, warm or cold: a cached key is bound to
    // it, so a key file that is gone or changed stops the cached key too.
    let key_file = key_file_bytes(ctx)?;
    let binding = binding(&header, key_file.as_deref().map(|k| &k[..]));
    let caching = cache::enabled(ctx);
    let cached = if caching {
        cache::load(&cache::derived_description(&path))
    } else {
        None
    };
    if use_cached
        && let Some(key) = cached
            .as_deref()
            .and_then(|b| cache::derived_key(b, &binding))
    {
        match read::open(&bytes, &header, &key) {
            Ok(tree) => return Ok(tree),
            // Another database at this path, or a tampered header: the
            // cached key answers nothing; the password chain takes over.
            Err(ReadError::WrongKey) => {
                cache::forget_derived(&path);
            }
            Err(e) => return Err(read_error(&path, e)),
        }
    }
    let password = ctx.unlock.as_ref().map(|p| p.expose());
    if password.is_none() && key_file.is_none() {
        return Err(locked(&path));
    }
    let composite = read::composite_key(password, key_file.as_deref().map(|k| &k[..]));
    let transformed = read::transform(&header.kdf, &composite).map_err(|e| read_error(&path, e))?;
    let tree = read::open(&bytes, &header, &transformed).map_err(|e| read_error(&path, e))?;
    // As the password cache goes: when the engine caches the password
    // (`Context::unlock_cached`), or a stale derived key is there to
    // refresh. A key file alone caches nothing, as before.
    let wanted = cached.is_some() || ctx.unlock_cached;
    if caching && wanted {
        cache::store_derived(&path, &binding, &transformed, cache::ttl(ctx));
    }
    Ok(tree)
}

/// After ov saved the database (the save draws a new salt), cache its new
/// derived key where one was cached, so the reads after a write stay warm.
/// Best effort: without it the next read takes the password chain.
pub(crate) fn recache_after_write(ctx: &Context, path: &Path, saved: &[u8]) {
    if !cache::enabled(ctx) || cache::load(&cache::derived_description(path)).is_none() {
        return;
    }
    let (Ok(header), Ok(key_file)) = (read::header::parse(saved), key_file_bytes(ctx)) else {
        return;
    };
    let password = ctx.unlock.as_ref().map(|p| p.expose());
    let composite = read::composite_key(password, key_file.as_deref().map(|k| &k[..]));
    let Ok(key) = read::transform(&header.kdf, &composite) else {
        return;
    };
    // Only a key that passes the new header's HMAC is cached.
    let keys = read::payload::Keys::new(&header, &key);
    if read::payload::check_header(saved, &header, &keys).is_ok() {
        let binding = binding(&header, key_file.as_deref().map(|k| &k[..]));
        cache::store_derived(path, &binding, &key, cache::ttl(ctx));
    }
}

/// `ov secrets unlock`: open the database with the context's password
/// (never a cached derived key, so the password is checked), and cache its
/// derived key when the engine caches the password
/// (`Context::unlock_cached`, which `ov secrets unlock` sets).
pub fn unlock(ctx: &Context) -> Result<(), BackendError> {
    read_with(ctx, false).map(|_| ())
}

/// `ov secrets lock`: forget the cached derived key of the context's
/// database; `true` when there was one.
pub fn forget_cached_key(ctx: &Context) -> bool {
    cache::forget_derived(&db_path(ctx))
}

/// The tree of a database the `keepass` crate opened (KDBX 3.1).
pub(crate) fn tree_of(db: &Database) -> Tree {
    let mut out = Tree::default();
    let mut ids = vec![db.root().id()];
    out.groups.push(tree::Group {
        name: db.root().name.clone(),
        ..tree::Group::default()
    });
    let mut i = 0;
    while let Some(group) = ids.get(i).and_then(|id| db.group(*id)) {
        for child in group.groups() {
            ids.push(child.id());
            out.groups.push(tree::Group {
                name: child.name.clone(),
                uuid: Vec::new(),
                parent: Some(i),
            });
        }
        for e in group.entries() {
            out.entries.push(tree::Entry {
                group: i,
                title: e.get_title().map(str::to_owned),
                password: e.get_password().map(|p| Zeroizing::new(p.to_owned())),
            });
        }
        i += 1;
    }
    out.recycle_bin = db
        .recycle_bin()
        .and_then(|bin| ids.iter().position(|id| *id == bin.id()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ov_plugin_api::ErrorKind;

    /// A (sparse) file of 600 MiB is refused from its size, before a byte
    /// of it is read.
    #[test]
    fn a_file_too_large_to_be_a_database_is_refused_unread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("huge.kdbx");
        let f = std::fs::File::create(&db).expect("create");
        f.set_len(600 * 1024 * 1024).expect("sparse file");
        let mut ctx = Context {
            config_dir: dir.path().to_path_buf(),
            ..Context::default()
        };
        ctx.settings
            .insert("secrets.kdbx_path".into(), db.display().to_string().into());
        let e = read_tree(&ctx).expect_err("refused");
        assert_eq!(e.kind, ErrorKind::Corrupt);
        assert!(
            e.message.contains("ov reads no database over 512 MiB"),
            "{}",
            e.message
        );
    }
}
