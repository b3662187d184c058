//! What the kdbx backend declares to the engine (its settings and its
//! password) and `ov secrets init`: a new database, its key file, and the
//! settings that make it the active one.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ov_plugin_api::{
    Backend, BackendError, Binding, Context, CreateRequest, Created, ErrorKind, SettingKind,
    SettingSpec, UnlockSpec,
};
use ov_plugin_support::shell_quote;

use crate::{ARGON2_MEMORY, DEFAULT_FILE, KdbxBackend, db_path};

pub const PATH_SETTING: &str = "secrets.kdbx_path";
pub const KEY_FILE_SETTING: &str = "secrets.kdbx_key_file";
/// Which database `secrets.kdbx_key_file` was made for.
pub const KEY_FILE_DB_SETTING: &str = "secrets.kdbx_key_file_db";
pub const CACHE_SETTING: &str = "secrets.kdbx_cache";
pub const CACHE_TIMEOUT_SETTING: &str = "secrets.kdbx_cache_timeout";
pub const PASSWORD_ENV: &str = "OV_KDBX_PASSWORD";
/// The `create` option naming a key file (made if missing).
pub const KEY_FILE_OPTION: &str = "key_file";

fn setting(name: &str, kind: SettingKind, about: &str, default: Option<&str>) -> SettingSpec {
    SettingSpec {
        name: name.into(),
        kind,
        about: about.into(),
        default: default.map(str::to_owned),
        binds: None,
    }
}

/// The settings the kdbx backend owns, in the order `ov settings list`
/// shows them.
pub fn settings() -> Vec<SettingSpec> {
    let mut key_file = setting(
        KEY_FILE_SETTING,
        SettingKind::Path,
        "key file for the KeePass database (optional)",
        None,
    );
    key_file.binds = Some(Binding {
        to: PATH_SETTING.into(),
        recorded_as: KEY_FILE_DB_SETTING.into(),
    });
    vec![
        setting(
            PATH_SETTING,
            SettingKind::Path,
            "KeePass database file",
            Some(&format!("{{config_dir}}/{DEFAULT_FILE}")),
        ),
        key_file,
        setting(
            KEY_FILE_DB_SETTING,
            SettingKind::Path,
            "the database secrets.kdbx_key_file belongs to (set with it); the key file is never applied to another database",
            None,
        ),
        setting(
            CACHE_SETTING,
            SettingKind::Bool,
            "cache the KeePass password in the kernel keyring",
            Some("true"),
        ),
        setting(
            CACHE_TIMEOUT_SETTING,
            SettingKind::Seconds,
            "how long the cached KeePass password lives, in seconds",
            Some("3600"),
        ),
    ]
}

/// The password, as the engine's unlock chain serves it.
pub fn unlock_spec() -> UnlockSpec {
    UnlockSpec {
        label: "kdbx password".into(),
        env: PASSWORD_ENV.into(),
        cache_setting: Some(CACHE_SETTING.into()),
        cache_timeout_setting: Some(CACHE_TIMEOUT_SETTING.into()),
        legacy_cache_names: vec!["ov-kdbx-password".into()],
    }
}

fn invalid(message: String) -> BackendError {
    BackendError::of(ErrorKind::InvalidInput, message)
}

/// A new key file: 32 random bytes, mode 0600, never over an existing file.
fn create_key_file(path: &Path) -> Result<(), BackendError> {
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut key[..]).map_err(|e| {
        BackendError::of(
            ErrorKind::Internal,
            format!("the system random number generator failed: {e}"),
        )
    })?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            BackendError::of(
                ErrorKind::Io,
                format!("cannot create the key file {}: {e}", path.display()),
            )
        })?;
    f.write_all(&key[..])
        .and_then(|()| f.sync_all())
        .map_err(|e| {
            BackendError::of(
                ErrorKind::Io,
                format!("cannot write the key file {}: {e}", path.display()),
            )
        })
}

/// `ov secrets init`: refuse what would lose or hide secrets, then make
/// the database (and its key file) and name the settings that select it.
/// With `check`, only the refusals, before the engine asks for a password.
pub fn create(ctx: &Context, req: &CreateRequest) -> Result<Created, BackendError> {
    let current = db_path(ctx);
    let path = req
        .location
        .as_deref()
        .map(PathBuf::from)
        .unwrap_or_else(|| current.clone());
    if path.is_dir() {
        return Err(
            invalid(format!("{} is a directory", path.display())).hint(format!(
                "ov secrets init {}",
                shell_quote(&path.join(DEFAULT_FILE))
            )),
        );
    }
    let switching = !ov_plugin_support::same_file(&path, &current);
    if !req.force && std::fs::symlink_metadata(&path).is_ok() {
        let e = invalid(format!(
            "{} already exists; refusing to overwrite it",
            path.display()
        ));
        let e = if switching {
            e.hint(format!(
                "ov settings set {PATH_SETTING} {}   # to use it",
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
    if switching && !req.switch {
        refuse_to_hide(ctx, &current, &path)?;
    }
    let key_file = req.options.get(KEY_FILE_OPTION).map(PathBuf::from);
    let mut created = Created {
        target: path.display().to_string(),
        ..Created::default()
    };
    if req.check {
        return Ok(created);
    }
    if let Some(kf) = &key_file
        && !kf.exists()
    {
        create_key_file(kf)?;
        created.messages.push(format!(
            "created key file {} (keep a copy: without it the database cannot be opened)",
            kf.display()
        ));
    }
    let mut new = ctx.clone();
    new.settings
        .insert(PATH_SETTING.into(), path.display().to_string().into());
    new.settings.insert(
        KEY_FILE_SETTING.into(),
        key_file
            .as_ref()
            .map(|k| k.display().to_string())
            .unwrap_or_default()
            .into(),
    );
    new.unlock = req.secret.clone();
    let made = crate::create(&new, req.force)?;
    created.target = made.display().to_string();
    created
        .settings
        .push((PATH_SETTING.into(), Some(made.display().to_string())));
    // The key file belongs to this database alone (the engine binds it).
    created.settings.push((
        KEY_FILE_SETTING.into(),
        key_file.map(|k| k.display().to_string()),
    ));
    if switching {
        created.messages.push(format!(
            "reads and writes now use {}; {} is left as it was",
            made.display(),
            current.display()
        ));
    }
    created.messages.push(format!(
        "created {} (KDBX 4, Argon2id {} MiB, mode 0600)",
        made.display(),
        ARGON2_MEMORY / (1024 * 1024)
    ));
    Ok(created)
}

/// `init NEW` while the settings name another database: the new, empty one
/// would answer every read from now on and the current one's entries would
/// vanish from them. Refuse unless the current one is known to be empty,
/// saying how many entries it holds and how to bring them along. The
/// engine puts the current database's password in `ctx.unlock` when it
/// has one without asking.
fn refuse_to_hide(ctx: &Context, current: &Path, new: &Path) -> Result<(), BackendError> {
    if !current.is_file() {
        return Ok(());
    }
    let count = KdbxBackend
        .list(ctx, None)
        .ok()
        .map(|listed| listed.entries.len());
    if count == Some(0) {
        return Ok(());
    }
    let holds = match count {
        Some(n) => format!("holds {n} entr{}", if n == 1 { "y" } else { "ies" }),
        None => "may hold entries (it is locked, so ov cannot count them)".into(),
    };
    let (cur, new_q) = (shell_quote(current), shell_quote(new));
    Err(invalid(format!(
        "{PATH_SETTING} names {}, which {holds}; a new database at {} would take its place and those entries would vanish from reads",
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
