//! Encrypted systemd credentials: each value encrypted by `systemd-creds`
//! (value on its stdin, never in argv) into a `SetCredentialEncrypted=`
//! line of a drop-in, so the unit gets `$CREDENTIALS_DIRECTORY/NAME` at
//! start with no `ov` (and no plaintext on disk) at run time.

use std::path::{Path, PathBuf};
use std::process::Command;

use ov_plugin_api::Secret;

use crate::error::{Kind, OvError, Result};

/// The drop-in's file name inside `UNIT.d/`.
pub const DROP_IN: &str = "ov-credentials.conf";

/// The keys `systemd-creds` can encrypt with.
pub const KEYS: [&str; 4] = ["host", "tpm2", "host+tpm2", "auto"];

/// A unit name as systemd takes it: `NAME.service` (the suffix is added
/// when missing), one path component, systemd's characters only.
pub fn unit_name(unit: &str) -> Result<String> {
    let unit = if unit.contains('.') {
        unit.to_owned()
    } else {
        format!("{unit}.service")
    };
    let ok = !unit.starts_with('.')
        && unit
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '\\' | '@'));
    if !ok || unit.contains("..") {
        return Err(OvError::usage(format!(
            "'{unit}' is not a systemd unit name (such as myapp.service)"
        )));
    }
    Ok(unit)
}

/// `systemd-creds`, or the error that says where it comes from.
fn program() -> Result<PathBuf> {
    which::which("systemd-creds").map_err(|_| {
        OvError::new("systemd-creds is not installed (systemd 250 or newer)")
            .kind(Kind::Environment)
            .hint(ov_plugin_support::as_root("apt-get install -y systemd"))
    })
}

/// The `SetCredentialEncrypted=NAME: …` line for `value`, as
/// `systemd-creds encrypt --pretty` writes it.
pub fn encrypt(name: &str, value: &Secret, with_key: &str) -> Result<String> {
    let out = crate::run::tool_output(
        Command::new(program()?).args([
            "encrypt",
            &format!("--name={name}"),
            &format!("--with-key={with_key}"),
            "--pretty",
            "-",
            "-",
        ]),
        "systemd-creds",
        Some((name, value.expose().as_bytes())),
    )?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        let mut e = OvError::new(format!(
            "systemd-creds could not encrypt {name}: {}",
            said.trim()
        ))
        .kind(Kind::Environment);
        if !nix::unistd::Uid::effective().is_root() {
            e = e.hint("the host key is root's: run the same ov command with sudo");
        }
        return Err(e);
    }
    String::from_utf8(out.stdout)
        .map_err(|_| OvError::new("systemd-creds wrote something that is not text"))
}

/// The drop-in: a comment saying where it came from, and the lines.
pub fn drop_in(source: &str, lines: &[String]) -> String {
    let mut text = format!(
        "# Written by `ov systemd credentials` from {source}.\n\
         # Run it again to change a value; each is encrypted with this host's key.\n\
         [Service]\n"
    );
    for l in lines {
        text.push_str(l.trim_end());
        text.push('\n');
    }
    text
}

/// Where the drop-in of `unit` goes under `dir`.
pub fn drop_in_path(dir: &Path, unit: &str) -> PathBuf {
    dir.join(format!("{unit}.d")).join(DROP_IN)
}

/// Write the drop-in: 0600, atomically, under its lock.
pub fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        ov_plugin_support::create_dir_all_mode(parent, 0o755)
            .map_err(|e| OvError::new(format!("cannot create {}: {e}", parent.display())))?;
    }
    ov_plugin_support::with_lock(path, || {
        ov_plugin_support::write_atomic(path, text.as_bytes(), Some(0o600))
    })
    .map_err(|e| OvError::new(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_get_their_suffix_and_nothing_else_passes() {
        assert_eq!(unit_name("myapp").unwrap(), "myapp.service");
        assert_eq!(unit_name("web@1.service").unwrap(), "web@1.service");
        for bad in ["../x", "a/b", ".hidden", "a b", "x..service"] {
            assert!(unit_name(bad).is_err(), "{bad}");
        }
    }
}
