//! Bundles: an app/env's secrets collected from the store, sealed to its
//! registered keys, and opened with a key file.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ov_plugin_api::{EntryRef, Secret};
use zeroize::Zeroizing;

use super::key_file::{MachineKey, io_text};
use super::registry::{Registry, now};
use super::{BUNDLE_MAGIC, MAX_BUNDLE_BYTES, seal_command, service, validate_app_env};
use crate::dotenv;
use crate::error::{OvError, Result};
use crate::paths::Paths;
use crate::store::Store;

/// An app/env's secrets as read from the store, and the notes to show
/// about what was seen (entries left out, parts not seen).
#[derive(Debug, Default)]
pub struct Collected {
    pub secrets: Vec<(String, Secret)>,
    pub notes: Vec<String>,
}

/// What sealing did: the bundle written (none when no key is registered
/// any more and the bundle was removed), and the notes to show.
#[derive(Debug)]
pub struct Sealed {
    pub bundle: Option<PathBuf>,
    pub notes: Vec<String>,
}

/// The secrets of one app/env in the user's store, in name order; what
/// could not be seen is a note, not an error.
pub fn collect(store: &Store, app: &str, env: &str) -> Result<Collected> {
    let svc = service(app, env);
    let listing = store.listing(Some(&svc))?;
    let mut got = read_listed(store, &svc, listing.entries)?;
    got.notes
        .splice(0..0, listing.unseen.into_iter().chain(listing.notes));
    Ok(got)
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

/// The apps that have `env` here: a sealed bundle in the data directory
/// or a registered key file, sorted and each once. What a hint for a
/// forgotten `--app` can name.
pub fn apps_with(paths: &Paths, env: &str) -> Vec<String> {
    let bundles = std::fs::read_dir(paths.data_dir.join("bundles"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|app| super::default_bundle_path(paths, app, env).is_file());
    let registered = Registry::load(paths)
        .map(|r| r.keys)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.env == env)
        .map(|r| r.app);
    let mut apps: Vec<String> = bundles
        .chain(registered)
        .filter(|app| validate_app_env(app, env).is_ok())
        .collect();
    apps.sort();
    apps.dedup();
    apps
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
) -> Result<Result<Collected>> {
    let svc = service(app, env);
    let listing = store.listing(Some(&svc))?;
    let notes = listing.notes.clone();
    Ok(match listing.complete(doing) {
        Ok(listed) => {
            let mut got = read_listed(store, &svc, listed)?;
            got.notes.splice(0..0, notes);
            Ok(got)
        }
        Err(unseen) => Err(unseen),
    })
}

/// Keep the secrets whose names can become environment variables; each
/// one left out (another tool stored it: as a variable it would override
/// another one, as a `--secrets-dir` file land elsewhere, and a bundle
/// holding it would not open) gets a note.
pub fn usable(service: &str, secrets: Vec<(String, Secret)>) -> Collected {
    let mut out = Collected::default();
    for (name, value) in secrets {
        if dotenv::valid_name(&name) {
            out.secrets.push((name, value));
        } else {
            out.notes.push(format!(
                "left out {service} entry {:?}: not an environment variable name (letters, digits and '_'); rename it where it is stored",
                name.escape_debug().to_string()
            ));
        }
    }
    out
}

/// The values of listed entries of `svc`, from the backend that holds each.
fn read_listed(
    store: &Store,
    svc: &str,
    listed: std::collections::BTreeMap<EntryRef, String>,
) -> Result<Collected> {
    let mut out = Vec::new();
    for (entry, source) in listed {
        if entry.service != svc {
            continue;
        }
        if let Some(v) = store.get_in(&source, &EntryRef::new(svc, &entry.key))? {
            out.push((entry.key.clone(), v));
        }
    }
    Ok(usable(svc, out))
}

/// Seal an app/env's secrets to every key registered for it; with no
/// registration left, remove the bundle.
pub fn seal(
    paths: &Paths,
    registry: &Registry,
    store: &Store,
    app: &str,
    env: &str,
) -> Result<Sealed> {
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
        return Ok(Sealed {
            bundle: None,
            notes: Vec::new(),
        });
    }
    let collected =
        collect_complete(store, app, env, &format!("seal {app}/{env} now"))?.map_err(|e| {
            e.hint(format!(
                "{}   # once it is; until then the bundle keeps the secrets it had",
                seal_command(app, env)
            ))
        })?;
    let mut plain = Zeroizing::new(format!("{BUNDLE_MAGIC}{app}/{env}\n"));
    plain.push_str(&Zeroizing::new(dotenv::render(&collected.secrets)));
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
    Ok(Sealed {
        bundle: Some(bundle),
        notes: collected.notes,
    })
}

/// Record a change to `service` made through ov and re-seal its bundle
/// when machine keys are registered for it. Services that are not
/// `app/env` pass through untouched.
pub fn after_change(paths: &Paths, store: &Store, service_name: &str) -> Result<Option<Sealed>> {
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
        seal(paths, &registry, store, app, env)
            .map(Some)
            .map_err(|e| {
                let e = if e
                    .hints
                    .iter()
                    .any(|h| h.starts_with(&seal_command(app, env)))
                {
                    e
                } else {
                    e.hint(seal_command(app, env))
                };
                e.context(format!(
                    "{service_name} was changed, but re-sealing its bundle failed"
                ))
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
