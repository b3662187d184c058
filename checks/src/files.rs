//! Checks on files: the same rules and fix texts the store uses when it
//! refuses a file, so a doctor finding and an error never disagree.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ov_plugin_api::{AutoFix, CheckReport, Status};
use ov_plugin_support::{shell_quote, user_name};

use crate::report;

/// A settings file: it holds no secrets, but whoever can write it can point
/// ov at another store, so it must be the user's and not writable by others.
pub fn config_file_mode_check(id: &str, title: &str, path: &Path) -> CheckReport {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if ov_plugin_support::is_missing(&e) => {
            return report(
                id,
                title,
                Status::Ok,
                format!("{} does not exist (defaults apply)", path.display()),
            );
        }
        Err(e) => {
            return report(
                id,
                title,
                Status::Fail,
                format!("cannot inspect {}: {e}", path.display()),
            );
        }
    };
    let me = nix::unistd::Uid::effective().as_raw();
    let quoted = shell_quote(path);
    if meta.uid() != me {
        let mut r = report(
            id,
            title,
            Status::Fail,
            format!(
                "{} is owned by {} (uid {}), not by {}",
                path.display(),
                user_name(meta.uid()),
                meta.uid(),
                user_name(me)
            ),
        );
        r.fix = Some(ov_plugin_support::as_root(&format!(
            "chown {} {quoted}",
            user_name(me)
        )));
        return r;
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        let mut r = report(
            id,
            title,
            Status::Warn,
            format!(
                "{} has mode {mode:04o}; others can change ov's settings",
                path.display()
            ),
        );
        r.fix = Some(format!("chmod go-w {quoted}"));
        r.auto_fix = Some(AutoFix::Chmod {
            path: path.to_path_buf(),
            mode: mode & !0o022,
        });
        return r;
    }
    report(
        id,
        title,
        Status::Ok,
        format!("{} has mode {mode:04o}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn world_writable_settings_warn_with_a_safe_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, "").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let r = config_file_mode_check("settings.permissions", "t", &p);
        assert_eq!(r.status, Status::Warn);
        assert_eq!(
            r.auto_fix,
            Some(AutoFix::Chmod {
                path: p.clone(),
                mode: 0o644
            })
        );
    }

    #[test]
    fn open_secret_file_fails_with_chmod_600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("creds");
        std::fs::write(&p, "").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let r = crate::private_file_check("x.mode", "t", &p);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(
            r.fix.as_deref(),
            Some(format!("chmod 600 {}", p.display()).as_str())
        );
    }
}
