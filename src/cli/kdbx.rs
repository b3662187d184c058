//! `ov secrets init`, `unlock` and `lock`: the KeePass database and its
//! password cache.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ov_plugin_api::Secret;
use ov_plugin_support::shell_quote;

use crate::cli::Engine;
use crate::error::{OvError, Result};
use crate::unlock::{From, password_from_env};
use crate::{keycache, prompt, settings};

fn absolute(p: PathBuf) -> Result<PathBuf> {
    std::path::absolute(&p)
        .map_err(|e| OvError::new(format!("cannot resolve {}: {e}", p.display())))
}

/// A new key file: 32 random bytes, mode 0600, never over an existing file.
fn create_key_file(path: &Path) -> Result<()> {
    let key = crate::store::random_bytes(32)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            OvError::new(format!(
                "cannot create the key file {}: {e}",
                path.display()
            ))
        })?;
    f.write_all(&key)
        .and_then(|()| f.sync_all())
        .map_err(|e| OvError::new(format!("cannot write the key file {}: {e}", path.display())))
}

fn new_password() -> Result<(Secret, From)> {
    if let Some(pw) = password_from_env()? {
        return Ok((pw, From::Env));
    }
    if !prompt::stdin_is_tty() {
        return Err(crate::unlock::no_tty_error());
    }
    let pw = prompt::ask_hidden_twice("New kdbx password: ")?;
    if pw.is_empty() {
        return Err(OvError::new("the password is empty; nothing was created")
            .hint("ov secrets init --key-file ~/.config/ov/secrets.key --no-password   # a key file alone"));
    }
    Ok((pw, From::Prompt))
}

pub fn init(
    engine: &Engine,
    path: Option<PathBuf>,
    force: bool,
    key_file: Option<PathBuf>,
    no_password: bool,
    switch: bool,
) -> Result<i32> {
    let mut ctx = engine.store.ctx.clone();
    let path = match path {
        Some(p) => absolute(p)?,
        None => ov_plugin_kdbx::db_path(&ctx),
    };
    if path.is_dir() {
        return Err(
            OvError::new(format!("{} is a directory", path.display())).hint(format!(
                "ov secrets init {}",
                shell_quote(&path.join(ov_plugin_kdbx::DEFAULT_FILE))
            )),
        );
    }
    let current = ov_plugin_kdbx::db_path(&ctx);
    let switching = !crate::paths::same_file(&path, &current);
    if !force && std::fs::symlink_metadata(&path).is_ok() {
        let mut e = OvError::new(format!(
            "{} already exists; refusing to overwrite it",
            path.display()
        ));
        e = if switching {
            e.hint(format!(
                "ov settings set secrets.kdbx_path {}   # to use it",
                shell_quote(&path)
            ))
        } else {
            e.hint("ov secrets unlock   # to use it")
        };
        return Err(e.hint(format!(
            "ov secrets init {} --force   # replaces it: its secrets are lost",
            shell_quote(&path)
        )));
    }
    if switching && !switch {
        refuse_to_hide(engine, &current, &path)?;
    }
    let key_file = key_file.map(absolute).transpose()?;
    if let Some(kf) = &key_file
        && !kf.exists()
    {
        create_key_file(kf)?;
        eprintln!(
            "created key file {} (keep a copy: without it the database cannot be opened)",
            kf.display()
        );
    }
    let password = if no_password {
        None
    } else {
        Some(new_password()?)
    };

    ctx.settings.insert(
        "secrets.kdbx_path".into(),
        path.display().to_string().into(),
    );
    ctx.settings.insert(
        "secrets.kdbx_key_file".into(),
        key_file
            .as_ref()
            .map(|k| k.display().to_string())
            .unwrap_or_default()
            .into(),
    );
    ctx.unlock = password.as_ref().map(|(pw, _)| pw.clone());
    let created = ov_plugin_kdbx::create(&ctx, force)?;

    settings::set_user(
        &engine.paths,
        "secrets.kdbx_path",
        &created.display().to_string(),
    )?;
    // The key file belongs to this database alone (set_user binds it).
    match &key_file {
        Some(kf) => {
            settings::set_user(
                &engine.paths,
                "secrets.kdbx_key_file",
                &kf.display().to_string(),
            )?;
        }
        None => {
            settings::unset_user(&engine.paths, "secrets.kdbx_key_file")?;
        }
    }
    if switching {
        eprintln!(
            "reads and writes now use {}; {} is left as it was",
            created.display(),
            current.display()
        );
    }
    if let Some((pw, From::Prompt)) = &password
        && engine.store.unlocker.cache_enabled()
    {
        let _ = keycache::store(
            &keycache::description(&created),
            pw,
            engine.store.unlocker.cache_ttl(),
        );
    }
    eprintln!(
        "created {} (KDBX 4, Argon2id {} MiB, mode 0600)",
        created.display(),
        ov_plugin_kdbx::ARGON2_MEMORY / (1024 * 1024)
    );
    eprintln!("make it the active backend:  ov settings set secret_backend kdbx");
    eprintln!("copy existing secrets in:    ov secrets import --dry-run");
    Ok(0)
}

/// `init NEW` while the settings name another database: the new, empty one
/// would answer every read from now on and the current one's entries would
/// vanish from them. Refuse unless the current one is known to be empty,
/// saying how many entries it holds and how to bring them along.
fn refuse_to_hide(engine: &Engine, current: &Path, new: &Path) -> Result<()> {
    if !current.is_file() {
        return Ok(());
    }
    let mut ctx = engine.store.ctx.clone();
    ctx.unlock = engine.store.unlocker.quiet_password();
    let count = ov_plugin_api::Backend::list(&ov_plugin_kdbx::KdbxBackend, &ctx, None)
        .ok()
        .map(|entries| entries.len());
    if count == Some(0) {
        return Ok(());
    }
    let holds = match count {
        Some(n) => format!("holds {n} entr{}", if n == 1 { "y" } else { "ies" }),
        None => "may hold entries (it is locked, so ov cannot count them)".into(),
    };
    let (cur, new_q) = (shell_quote(current), shell_quote(new));
    Err(OvError::new(format!(
        "secrets.kdbx_path names {}, which {holds}; a new database at {} would take its place and those entries would vanish from reads",
        current.display(),
        new.display()
    ))
    .hint(format!(
        "ov secrets init {new_q} --switch   # switch anyway; {cur} stays as it is"
    ))
    .hint(format!(
        "keepassxc-cli merge --same-credentials {new_q} {cur}   # after the switch: copy the entries across, encrypted"
    ))
    .hint("ov secrets unlock   # to keep using the current database"))
}

fn kdbx_backend(engine: &Engine) -> Result<&crate::host::Loaded> {
    engine
        .store
        .host
        .backend("kdbx")
        .ok_or_else(|| OvError::new("the kdbx backend is not installed").hint("ov plugins list"))
}

pub fn unlock(engine: &Engine) -> Result<i32> {
    let unlocker = &engine.store.unlocker;
    if !unlocker.cache_enabled() {
        return Err(
            OvError::new("the kdbx password cache is off (secrets.kdbx_cache = false)")
                .hint("ov settings set secrets.kdbx_cache true"),
        );
    }
    let kdbx = kdbx_backend(engine)?;
    if !kdbx.backend.probe(&engine.store.ctx).is_available() {
        return Err(
            OvError::new(format!("no KeePass database at {}", unlocker.db.display()))
                .hint("ov secrets init"),
        );
    }
    // A stale cached password must not stand in for the one typed now.
    keycache::clear(unlocker.cache_description());
    // Opens with the password (never a cached derived key) and caches the
    // derived key, so the next read skips the key derivation.
    let (pw, _) = unlocker.run_with_password(&engine.store.ctx, ov_plugin_kdbx::unlock)?;
    keycache::store(unlocker.cache_description(), &pw, unlocker.cache_ttl()).map_err(|e| {
        OvError::new(e).hint("keyctl show @u   # is the kernel keyring usable here?")
    })?;
    eprintln!(
        "unlocked {}; its key and password are cached in the kernel keyring for {} s (`ov secrets lock` forgets them)",
        unlocker.db.display(),
        unlocker.cache_ttl()
    );
    Ok(0)
}

pub fn lock(engine: &Engine) -> Result<i32> {
    let unlocker = &engine.store.unlocker;
    let key = ov_plugin_kdbx::forget_cached_key(&engine.store.ctx);
    if keycache::clear(unlocker.cache_description()) || key {
        eprintln!(
            "forgot the cached password and key for {}",
            unlocker.db.display()
        );
    } else {
        eprintln!("no cached password or key for {}", unlocker.db.display());
    }
    Ok(0)
}
