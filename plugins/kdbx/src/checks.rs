//! The backend's doctor checks: the database file, its key file, its
//! format, whether it opens with what the engine has, and the strength of
//! its key derivation.

use std::fs;
use std::path::Path;

use keepass::config::{DatabaseVersion, KdfConfig};
use ov_plugin_api::{CheckReport, Context, ErrorKind, Status};
use ov_plugin_support::{private_file_report, report, shell_quote};

use crate::{DEFAULT_FILE, db_path, file_version, key_file, open, version_label};

/// Below these an attacker's guessing gets cheap; doctor warns.
const WEAK_ARGON2_MEMORY: u64 = 16 * 1024 * 1024;
const WEAK_AES_ROUNDS: u64 = 100_000;

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
pub fn checks(ctx: &Context, only: &str) -> Vec<CheckReport> {
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
        // Read as it is, and upgraded on the next write with a backup:
        // nothing for the user to do, so not a warning with a fix that
        // changes nothing.
        Ok(v) => report(
            "kdbx.format",
            "KeePass format",
            Status::Ok,
            format!(
                "{}; ov upgrades it to KDBX 4 on the next write (a backup is kept)",
                version_label(&v)
            ),
        ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KdbxBackend, new_config};
    use keepass::{Database, DatabaseKey};
    use ov_plugin_api::{Backend, EntryRef, Secret};
    use ov_plugin_support::write_atomic;

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
            version: rust_argon2::Version::Version13,
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
