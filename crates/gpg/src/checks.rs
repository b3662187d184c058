//! The doctor for the GnuPG chain: gpg, the agent and its configuration,
//! systemd sockets, secret keys, cached and stored passphrases, key backups,
//! and the `.secrets` file itself. Read-only: the decrypt test never starts
//! a pinentry.

use std::path::{Path, PathBuf};

use ov_checks::{CheckReport, Status, Task, report, with_fix};

use crate::agent::{self, DEFAULT_CACHE_TTL, MAX_CACHE_TTL};
use crate::keystore::Keystore;
use crate::{Gpg, SecretKey, fix};

/// Is GnuPG in use here: a `.secrets` file, or a GnuPG home with a keyring?
pub fn in_use(file: &Path) -> bool {
    let home = agent::gnupg_home();
    file.exists()
        || ["pubring.kbx", "pubring.gpg", "private-keys-v1.d"]
            .iter()
            .any(|f| home.join(f).exists())
}

/// For `ov doctor`: the whole chain when GnuPG is in use or one of its
/// checks was asked for by name (`asked`), otherwise one line saying it is
/// not (and no gpg-agent started for nothing).
pub fn doctor_tasks(file: PathBuf, asked: bool) -> Vec<Task> {
    if asked || in_use(&file) {
        return tasks(file);
    }
    vec![Task::single("gpg.used", "GnuPG for .secrets files", || {
        report(
            "gpg.used",
            "GnuPG for .secrets files",
            Status::Skip,
            "not in use: no .secrets here and no GnuPG keyring (`ov secrets gpg setup` sets it up)",
        )
    })]
}

/// The doctor tasks for the `gpg` group; `file` is the `.secrets` to test
/// (skipped when absent).
pub fn tasks(file: PathBuf) -> Vec<Task> {
    let mut tasks = vec![Task::single("gpg.binary", "gpg installed", binary)];
    for (id, title) in [
        ("gpg.agent.running", "gpg-agent running"),
        ("gpg.agent.conf", "gpg-agent.conf"),
        ("gpg.agent.systemd", "systemd sockets for gpg-agent"),
    ] {
        tasks.push(after_binary(id, title, move |g| agent_checks(g, id)));
    }
    for (id, title) in [
        ("gpg.keys.secret", "secret keys"),
        ("gpg.keys.cached", "passphrases cached in gpg-agent"),
        ("gpg.keys.stored", "passphrases in the Secret Service"),
        ("gpg.keys.backup", "key backups in the Secret Service"),
    ] {
        tasks.push(after_binary(id, title, move |g| key_checks(g, id)));
    }
    for (id, title) in [
        ("gpg.file.recipients", "the .secrets recipients"),
        ("gpg.file.decrypt", "decrypt test"),
    ] {
        let file = file.clone();
        tasks.push(after_binary(id, title, move |g| file_checks(g, &file, id)));
    }
    tasks
}

/// One check that needs gpg, as its own task with its own timeout: it
/// runs once `gpg.binary` passed, reports only its own line (nothing where
/// it does not apply, or if gpg vanished in between).
fn after_binary(
    id: &'static str,
    title: &str,
    checks: impl FnOnce(&Gpg) -> Vec<CheckReport> + Send + 'static,
) -> Task {
    Task::batch(id, title, move || match Gpg::find() {
        Ok(g) => {
            let mut out = checks(&g);
            out.retain(|r| r.id == id);
            out
        }
        Err(_) => vec![],
    })
    .listing([])
    .after("gpg.binary")
    // gpg starts its agent on first use and lists keys through it: seconds
    // on a cold or busy machine, which is not a fault.
    .at_least(std::time::Duration::from_secs(10))
}

fn binary() -> CheckReport {
    let (id, title) = ("gpg.binary", "gpg installed");
    match Gpg::find().and_then(|g| g.version().map(|v| (g, v))) {
        Ok((g, v)) => report(id, title, Status::Ok, format!("{v} ({})", g.gpg.display())),
        Err(e) => with_fix(report(id, title, Status::Fail, e.message), fix::install()),
    }
}

/// The gpg-agent checks (cheap: the caller keeps the one it asked for).
fn agent_checks(g: &Gpg, _only: &str) -> Vec<CheckReport> {
    let mut out = Vec::new();
    let (id, title) = ("gpg.agent.running", "gpg-agent running");
    out.push(match g.agent_version() {
        Ok(v) => report(id, title, Status::Ok, format!("gpg-agent {v}")),
        // Not a fault: gpg starts the agent when it first needs it.
        Err(e) => report(
            id,
            title,
            Status::Ok,
            format!("not running now; gpg starts it on demand ({})", e.message),
        ),
    });

    let (id, title) = ("gpg.agent.conf", "gpg-agent.conf");
    let path = agent::conf_path();
    out.push(match std::fs::read_to_string(&path) {
        Err(_) => with_fix(
            report(
                id,
                title,
                Status::Warn,
                format!(
                    "{} does not exist: gpg-agent's defaults (10 min cache, no preset)",
                    path.display()
                ),
            ),
            fix::SETUP,
        ),
        Ok(text) => {
            let d = agent::directives(&text);
            let mut problems = Vec::new();
            match agent::directive(&d, "pinentry-program") {
                Some(p) if !Path::new(p).is_file() => {
                    problems.push(format!("pinentry-program {p} does not exist"))
                }
                _ => {}
            }
            let ttl = |n: &str| agent::directive(&d, n).and_then(|v| v.parse::<u64>().ok());
            if ttl("default-cache-ttl").is_none_or(|t| t < DEFAULT_CACHE_TTL) {
                problems.push(format!("default-cache-ttl below {DEFAULT_CACHE_TTL}"));
            }
            if ttl("max-cache-ttl").is_none_or(|t| t < MAX_CACHE_TTL) {
                problems.push(format!("max-cache-ttl below {MAX_CACHE_TTL}"));
            }
            if agent::directive(&d, "allow-preset-passphrase").is_none() {
                problems.push("allow-preset-passphrase missing".into());
            }
            if problems.is_empty() {
                let pin = agent::directive(&d, "pinentry-program").unwrap_or("default pinentry");
                report(
                    id,
                    title,
                    Status::Ok,
                    format!(
                        "{}: {pin}, cache {DEFAULT_CACHE_TTL}/{MAX_CACHE_TTL} s, preset allowed",
                        path.display()
                    ),
                )
            } else {
                with_fix(
                    report(
                        id,
                        title,
                        Status::Warn,
                        format!("{}: {}", path.display(), problems.join("; ")),
                    ),
                    fix::SETUP,
                )
            }
        }
    });

    let (id, title) = ("gpg.agent.systemd", "systemd sockets for gpg-agent");
    out.push(if !agent::user_manager_runs() {
        report(
            id,
            title,
            Status::Skip,
            "no systemd user manager runs in this session",
        )
    } else {
        let missing = agent::sockets_not_enabled();
        if missing.is_empty() {
            report(
                id,
                title,
                Status::Ok,
                "gpg-agent.socket and gpg-agent-extra.socket enabled",
            )
        } else {
            with_fix(
                report(
                    id,
                    title,
                    Status::Warn,
                    format!("not enabled: {}", missing.join(", ")),
                ),
                "systemctl --user enable --now gpg-agent.socket gpg-agent-extra.socket",
            )
        }
    });
    out
}

/// The key checks; only the one `only` names does its expensive part.
fn key_checks(g: &Gpg, only: &str) -> Vec<CheckReport> {
    let mut out = Vec::new();
    let (id, title) = ("gpg.keys.secret", "secret keys");
    let keys = match g.secret_keys() {
        Ok(k) => k,
        Err(e) => {
            return vec![with_fix(
                report(id, title, Status::Fail, e.message),
                fix::DOCTOR,
            )];
        }
    };
    if keys.is_empty() {
        out.push(with_fix(
            report(
                id,
                title,
                Status::Fail,
                "no secret key in the keyring: nothing can be decrypted",
            ),
            fix::SETUP,
        ));
        return out;
    }
    out.push(report(
        id,
        title,
        Status::Ok,
        keys.iter()
            .map(|k| format!("{} {}", k.keyid, k.uid))
            .collect::<Vec<_>>()
            .join("; "),
    ));
    let grips: Vec<(String, &SecretKey)> = keys
        .iter()
        .flat_map(|k| k.encryption_grips().map(move |gr| (gr.to_owned(), k)))
        .collect();

    if only == "gpg.keys.cached" {
        let (id, title) = ("gpg.keys.cached", "passphrases cached in gpg-agent");
        out.push(match g.keyinfo() {
            Err(e) => with_fix(report(id, title, Status::Warn, e.message), fix::AGENT),
            Ok(info) => {
                // A key without a passphrase has nothing to cache.
                let not: Vec<&str> = grips
                    .iter()
                    .filter(|(gr, _)| {
                        !info
                            .iter()
                            .any(|i| &i.keygrip == gr && (i.cached || !i.protected))
                    })
                    .map(|(gr, _)| gr.as_str())
                    .collect();
                if !not.is_empty() {
                    with_fix(
                        report(
                            id,
                            title,
                            Status::Warn,
                            format!(
                                "not cached for keygrip {} (the next decrypt asks for it)",
                                not.join(", ")
                            ),
                        ),
                        fix::SETUP,
                    )
                } else {
                    report(
                        id,
                        title,
                        Status::Ok,
                        format!("cached for {}", keygrips(grips.len(), "encryption keygrip")),
                    )
                }
            }
        });
    }

    let ks = Keystore::new();
    if only == "gpg.keys.stored" {
        let (id, title) = ("gpg.keys.stored", "passphrases in the Secret Service");
        let mut unavailable = None;
        let mut missing = Vec::new();
        // Keys without a passphrase need none stored.
        let unprotected: Vec<String> = g
            .keyinfo()
            .map(|info| {
                info.into_iter()
                    .filter(|i| !i.protected)
                    .map(|i| i.keygrip)
                    .collect()
            })
            .unwrap_or_default();
        for (gr, _) in grips.iter().filter(|(gr, _)| !unprotected.contains(gr)) {
            match ks.has_passphrase(gr) {
                Ok(true) => {}
                Ok(false) => missing.push(gr.clone()),
                Err(e) => {
                    unavailable = Some(e);
                    break;
                }
            }
        }
        out.push(match (unavailable, missing.is_empty()) {
            (Some(e), _) if e.is(crate::problem::NO_SESSION_BUS) => no_bus_skip(id, title, &e),
            (Some(e), _) => with_fix(
                report(id, title, Status::Warn, format!("Secret Service not available: {}", e.message)),
                "gnome-keyring-daemon --start --components=secrets   # or start KeePassXC and unlock its database",
            ),
            (None, false) => with_fix(
                report(id, title, Status::Warn, format!("no org.gnupg.Passphrase with keygrip and key-grip n/<KEYGRIP> for keygrip {} (pinentry will ask)", missing.join(", "))),
                fix::SETUP,
            ),
            (None, true) => report(id, title, Status::Ok, format!("org.gnupg.Passphrase stored for {}", keygrips(grips.len(), "keygrip"))),
        });
    }

    if only == "gpg.keys.backup" {
        let (id, title) = ("gpg.keys.backup", "key backups in the Secret Service");
        out.push(match ks.keys(None, false) {
            Err(e) if e.is(crate::problem::NO_SESSION_BUS) => no_bus_skip(id, title, &e),
            Err(e) => with_fix(
                report(id, title, Status::Warn, format!("Secret Service not available: {}", e.message)),
                "gnome-keyring-daemon --start --components=secrets   # or start KeePassXC and unlock its database",
            ),
            Ok(found) => {
                let missing: Vec<&str> = keys
                    .iter()
                    .filter(|k| !found.iter().any(|(id, _, _)| k.matches(id)))
                    .map(|k| k.keyid.as_str())
                    .collect();
                if missing.is_empty() {
                    report(id, title, Status::Ok, "every secret key has an org.gnupg.Key backup")
                } else {
                    with_fix(
                        report(id, title, Status::Warn, format!("no org.gnupg.Key backup of {}", missing.join(", "))),
                        fix::BACKUP,
                    )
                }
            }
        });
    }
    out
}

/// `1 keygrip`, `2 keygrips`.
fn keygrips(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn no_bus_skip(id: &str, title: &str, e: &crate::Error) -> CheckReport {
    report(
        id,
        title,
        Status::Skip,
        format!(
            "skipped: no Secret Service here ({}); pinentry asks for the passphrase instead",
            e.message
        ),
    )
}

/// The `.secrets` checks; the decrypt test runs only when `only` asks.
fn file_checks(g: &Gpg, file: &Path, only: &str) -> Vec<CheckReport> {
    let (id, title) = ("gpg.file.recipients", "the .secrets recipients");
    if !file.exists() {
        return vec![report(
            id,
            title,
            Status::Skip,
            format!("no {} here", file.display()),
        )];
    }
    let recipients = match g.recipients(file) {
        Ok(r) => r,
        Err(e) => {
            let mut r = report(id, title, Status::Fail, e.message);
            r.fix = e.hints.first().cloned();
            return vec![r];
        }
    };
    let keys = g.secret_keys().unwrap_or_default();
    let held: Vec<&String> = recipients
        .iter()
        .filter(|r| keys.iter().any(|k| k.matches(r)))
        .collect();
    let mut out = vec![if held.is_empty() {
        with_fix(
            report(
                id,
                title,
                Status::Fail,
                format!(
                    "{} is encrypted to {}; no secret key here matches",
                    file.display(),
                    recipients.join(", ")
                ),
            ),
            import_fix(&recipients),
        )
    } else {
        report(
            id,
            title,
            Status::Ok,
            format!(
                "encrypted to {}; this keyring holds {}",
                recipients.join(", "),
                held.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    }];
    if only == "gpg.file.decrypt" {
        let (id, title) = ("gpg.file.decrypt", "decrypt test");
        out.push(match g.decrypt_with(file, false) {
            Ok(_) => report(
                id,
                title,
                Status::Ok,
                format!("{} decrypts", file.display()),
            ),
            Err(e) if e.is(crate::problem::NOT_CACHED) && stored_for(&keys, &recipients) => report(
                id,
                title,
                Status::Ok,
                format!(
                    "{} decrypts: the passphrase is not cached in gpg-agent, and without a terminal ov uses the one stored in the Secret Service",
                    file.display()
                ),
            ),
            Err(e) => {
                let status = if e.is(crate::problem::NOT_CACHED) {
                    Status::Warn
                } else {
                    Status::Fail
                };
                let mut r = report(id, title, status, e.message);
                r.fix = e.hints.last().cloned();
                r
            }
        });
    }
    out
}

/// How to bring a secret key for `recipients` here: from the key backups
/// in the Secret Service when there are any, else the directory
/// `export-key` writes on a machine that has the first one.
fn import_fix(recipients: &[String]) -> String {
    let backed_up = Keystore::new()
        .keys(None, false)
        .is_ok_and(|found| !found.is_empty());
    match recipients.first() {
        _ if backed_up => fix::IMPORT_KEYSTORE.to_owned(),
        Some(id) => fix::import_key(id),
        None => fix::IMPORT_KEYSTORE.to_owned(),
    }
}

/// Is a passphrase stored in the Secret Service for an encryption subkey
/// of a key here that `recipients` names?
fn stored_for(keys: &[SecretKey], recipients: &[String]) -> bool {
    let ks = Keystore::new();
    keys.iter()
        .filter(|k| recipients.iter().any(|r| k.matches(r)))
        .flat_map(|k| k.encryption_grips())
        .any(|g| ks.passphrase(g).is_ok_and(|p| p.is_some()))
}
