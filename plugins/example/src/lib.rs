//! `agefile`: an example ov backend, built as a plugin library only.
//!
//! It keeps every entry in one file, `agefile.path` (default
//! `~/.config/ov/agefile.age`): a JSON map `service → key → value`,
//! encrypted with age to a passphrase. It declares what the engine needs to
//! serve it without knowing it:
//!
//! - a setting, `agefile.path`, which `ov settings` lists and type-checks;
//! - an unlock secret, the passphrase: the engine asks for it on the
//!   terminal, reads `OV_AGEFILE_PASSPHRASE`, caches it in the kernel keyring
//!   (`ov secrets unlock`, `ov secrets lock`) and fails fast where nobody can
//!   be asked. The backend only answers `locked` or `wrong_password`;
//! - a doctor check, `agefile.file`.
//!
//! `docs/plugins.md` walks through this file. Its scrypt work factor is
//! modest on purpose (a test and an example); a real backend would take
//! age's default or its own setting.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use ov_plugin_api::{
    Availability, Backend, BackendError, CheckDecl, CheckReport, Context, Description, EntryList,
    EntryRef, ErrorKind, Secret, SettingKind, SettingSpec, Status, UnlockSpec, service_matches,
};
use ov_plugin_support::{is_missing, read_regular, report, with_fix, with_lock, write_atomic};

pub const NAME: &str = "agefile";
pub const PATH_SETTING: &str = "agefile.path";
pub const PASSPHRASE_ENV: &str = "OV_AGEFILE_PASSPHRASE";
const FILE_CHECK: &str = "agefile.file";
const FILE_TITLE: &str = "agefile store opens";
/// scrypt's log2(N) for new files; files with more are refused as too slow.
const WORK_FACTOR: u8 = 15;
const MAX_WORK_FACTOR: u8 = 20;

/// The entries, as the file holds them once decrypted.
type Entries = BTreeMap<String, BTreeMap<String, String>>;

#[derive(Debug, Default)]
pub struct AgeFile;

fn path(ctx: &Context) -> PathBuf {
    ctx.setting_str(PATH_SETTING)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| ctx.config_dir.join("agefile.age"))
}

fn locked(path: &Path) -> BackendError {
    BackendError::of(
        ErrorKind::Locked,
        format!("{} is locked: its passphrase is needed", path.display()),
    )
    .hint("ov secrets unlock")
}

fn passphrase(ctx: &Context) -> Option<SecretString> {
    ctx.unlock
        .as_ref()
        .map(|s| SecretString::from(s.expose().to_owned()))
}

/// The entries in the file; none when there is no file yet.
fn load(ctx: &Context) -> Result<Entries, BackendError> {
    let path = path(ctx);
    let bytes = match read_regular(&path) {
        Ok(b) => ov_plugin_api::zeroize::Zeroizing::new(b),
        Err(e) if is_missing(&e) => return Ok(Entries::new()),
        Err(e) => {
            return Err(BackendError::of(
                ErrorKind::Io,
                format!("cannot read {}: {e}", path.display()),
            ));
        }
    };
    let pass = passphrase(ctx).ok_or_else(|| locked(&path))?;
    let corrupt = |why: String| {
        BackendError::of(
            ErrorKind::Corrupt,
            format!("{} is not an agefile store: {why}", path.display()),
        )
    };
    let decryptor = age::Decryptor::new(&bytes[..]).map_err(|e| corrupt(e.to_string()))?;
    let mut identity = age::scrypt::Identity::new(pass);
    identity.set_max_work_factor(MAX_WORK_FACTOR);
    let mut reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
                BackendError::of(
                    ErrorKind::WrongPassword,
                    format!("the passphrase does not open {}", path.display()),
                )
            }
            other => corrupt(other.to_string()),
        })?;
    let mut json = ov_plugin_api::zeroize::Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut json)
        .map_err(|e| corrupt(e.to_string()))?;
    serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))
}

/// Encrypt `entries` to the passphrase and replace the file (mode 0600).
fn store(ctx: &Context, entries: &Entries) -> Result<(), BackendError> {
    let path = path(ctx);
    let pass = passphrase(ctx).ok_or_else(|| locked(&path))?;
    let mut recipient = age::scrypt::Recipient::new(pass);
    recipient.set_work_factor(WORK_FACTOR);
    let internal = |e: String| BackendError::of(ErrorKind::Internal, e);
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .map_err(|e| internal(e.to_string()))?;
    let json = ov_plugin_api::zeroize::Zeroizing::new(
        serde_json::to_vec(entries).map_err(|e| internal(e.to_string()))?,
    );
    let mut out = Vec::new();
    let mut writer = encryptor
        .wrap_output(&mut out)
        .map_err(|e| internal(e.to_string()))?;
    writer
        .write_all(&json)
        .and_then(|()| writer.finish().map(|_| ()))
        .map_err(|e| internal(e.to_string()))?;
    write_atomic(&path, &out, Some(0o600))?;
    Ok(())
}

/// Change the entries under the file's lock.
fn modify<T>(ctx: &Context, change: impl FnOnce(&mut Entries) -> T) -> Result<T, BackendError> {
    with_lock(&path(ctx), || {
        let mut entries = load(ctx)?;
        let out = change(&mut entries);
        store(ctx, &entries)?;
        Ok(out)
    })
}

impl Backend for AgeFile {
    fn describe(&self) -> Description {
        Description {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "example plugin: one age-encrypted file, opened with a passphrase".into(),
            priority: 30,
            writable: true,
            needs_unlock: true,
            listable: true,
            settings: vec![SettingSpec {
                name: PATH_SETTING.into(),
                kind: SettingKind::Path,
                about: "the agefile example backend's store".into(),
                default: Some("{config_dir}/agefile.age".into()),
                binds: None,
            }],
            unlock: Some(UnlockSpec {
                label: "agefile passphrase".into(),
                env: PASSPHRASE_ENV.into(),
                cache_setting: None,
                cache_timeout_setting: None,
                legacy_cache_names: Vec::new(),
            }),
            ..Description::default()
        }
    }

    fn probe(&self, ctx: &Context) -> Availability {
        let path = path(ctx);
        match std::fs::metadata(&path) {
            Ok(m) if !m.is_file() => {
                Availability::unavailable(format!("{} is not a regular file", path.display()))
            }
            _ => Availability::Available {
                location: Some(path.display().to_string()),
            },
        }
    }

    fn get(&self, ctx: &Context, entry: &EntryRef) -> Result<Option<Secret>, BackendError> {
        Ok(load(ctx)?
            .get(&entry.service)
            .and_then(|keys| keys.get(&entry.key))
            .map(|v| Secret::new(v.clone())))
    }

    fn set(&self, ctx: &Context, entry: &EntryRef, value: &Secret) -> Result<(), BackendError> {
        modify(ctx, |entries| {
            entries
                .entry(entry.service.clone())
                .or_default()
                .insert(entry.key.clone(), value.expose().to_owned());
        })
    }

    fn delete(&self, ctx: &Context, entry: &EntryRef) -> Result<bool, BackendError> {
        modify(ctx, |entries| {
            let removed = entries
                .get_mut(&entry.service)
                .is_some_and(|keys| keys.remove(&entry.key).is_some());
            entries.retain(|_, keys| !keys.is_empty());
            removed
        })
    }

    fn list(&self, ctx: &Context, service: Option<&str>) -> Result<EntryList, BackendError> {
        let entries: Vec<EntryRef> = load(ctx)?
            .iter()
            .filter(|(svc, _)| service_matches(svc, service))
            .flat_map(|(svc, keys)| keys.keys().map(|k| EntryRef::new(svc.clone(), k.clone())))
            .collect();
        Ok(entries.into())
    }

    fn unlock_target(&self, ctx: &Context) -> Option<String> {
        Some(path(ctx).display().to_string())
    }

    fn verify_unlock(&self, ctx: &Context) -> Result<(), BackendError> {
        load(ctx).map(|_| ())
    }

    fn declare_checks(&self) -> Vec<CheckDecl> {
        vec![CheckDecl::new(FILE_CHECK, FILE_TITLE)]
    }

    fn run_check(&self, ctx: &Context, id: &str) -> Vec<CheckReport> {
        if id != FILE_CHECK {
            return Vec::new();
        }
        let title = FILE_TITLE;
        let path = path(ctx);
        let shown = ov_plugin_support::shell_quote(&path);
        vec![match load(ctx) {
            Ok(_) if !path.exists() => report(
                id,
                title,
                Status::Ok,
                format!("no {} yet: the first write makes it", path.display()),
            ),
            Ok(e) => report(
                id,
                title,
                Status::Ok,
                format!(
                    "{} opens: {} service{}",
                    path.display(),
                    e.len(),
                    if e.len() == 1 { "" } else { "s" }
                ),
            ),
            Err(e) if e.kind == ErrorKind::Locked => report(
                id,
                title,
                Status::Skip,
                format!("{}: locked (no passphrase at hand)", path.display()),
            ),
            Err(e) if e.kind == ErrorKind::WrongPassword => with_fix(
                report(id, title, Status::Fail, e.message),
                "ov secrets lock && ov secrets unlock   # forget the cached passphrase, type the right one",
            ),
            Err(e) => with_fix(
                report(id, title, Status::Fail, e.message),
                format!(
                    "mv {shown} {shown}.broken   # set it aside; the next write starts a new store"
                ),
            ),
        }]
    }
}

ov_plugin_api::export_plugin!(AgeFile);
