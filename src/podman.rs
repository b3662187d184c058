//! podman secrets made from ov's store: one per variable, the value on
//! podman's stdin (never in argv), labelled so ov knows which are its own
//! and whether a value changed, and the quadlet lines that inject them.

use std::path::PathBuf;
use std::process::Command;

use hmac::{Hmac, Mac};
use ov_plugin_api::Secret;
use sha2::Sha256;

use crate::error::{Kind, OvError, Result};
use crate::paths::Paths;

/// podman refuses secrets of this size or more (and empty ones).
pub const MAX_SECRET_BYTES: usize = 512_000;

/// Marks a secret ov made.
pub const LABEL_MANAGED: &str = "io.ov.managed";
/// A keyed hash of the value (HMAC-SHA256 under a key only the user can
/// read), so a changed value can be found without reading it back and
/// without publishing a plain hash of it.
pub const LABEL_MAC: &str = "io.ov.mac";

/// A podman secret that ov made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Managed {
    pub name: String,
    pub mac: Option<String>,
}

#[derive(Debug)]
pub struct Podman {
    program: PathBuf,
}

impl Podman {
    /// podman on PATH, or the error that says how to install it.
    pub fn find() -> Result<Podman> {
        which::which("podman")
            .map(|program| Podman { program })
            .map_err(|_| {
                OvError::new("podman is not installed (no `podman` on PATH)")
                    .kind(Kind::Environment)
                    .hint(ov_plugin_support::as_root(
                        "apt-get install -y podman   # or your distribution's podman package",
                    ))
            })
    }

    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>> {
        let out = crate::run::tool_output(
            Command::new(&self.program).args(args),
            "podman",
            stdin.map(|data| ("the value", data)),
        )?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            let said = said.trim().trim_start_matches("Error: ");
            return Err(OvError::new(format!(
                "podman {} failed: {said}",
                args[..2.min(args.len())].join(" ")
            ))
            .kind(Kind::Environment)
            .hint("podman info   # is podman working here?"));
        }
        Ok(out.stdout)
    }

    /// The secrets ov made whose names start with `prefix`.
    pub fn managed(&self, prefix: &str) -> Result<Vec<Managed>> {
        let names = self.run(
            &["secret", "ls", "--noheading", "--format", "{{.Name}}"],
            None,
        )?;
        let names: Vec<String> = String::from_utf8_lossy(&names)
            .lines()
            .map(str::trim)
            .filter(|n| n.starts_with(prefix) && !n.is_empty())
            .map(str::to_owned)
            .collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec!["secret", "inspect"];
        args.extend(names.iter().map(String::as_str));
        let json = self.run(&args, None)?;
        #[derive(serde::Deserialize)]
        struct Inspected {
            #[serde(rename = "Spec")]
            spec: Spec,
        }
        #[derive(serde::Deserialize)]
        struct Spec {
            #[serde(rename = "Name")]
            name: String,
            #[serde(rename = "Labels", default)]
            labels: Option<std::collections::BTreeMap<String, String>>,
        }
        let found: Vec<Inspected> = serde_json::from_slice(&json)
            .map_err(|e| OvError::new(format!("cannot read podman's secret list: {e}")))?;
        Ok(found
            .into_iter()
            .filter_map(|i| {
                let labels = i.spec.labels.unwrap_or_default();
                labels.contains_key(LABEL_MANAGED).then(|| Managed {
                    name: i.spec.name,
                    mac: labels.get(LABEL_MAC).cloned(),
                })
            })
            .collect())
    }

    /// Create the secret `name` (removing an old one first when `replace`).
    pub fn create(&self, name: &str, value: &Secret, mac: &str, replace: bool) -> Result<()> {
        if replace {
            self.remove(name)?;
        }
        let managed = format!("{LABEL_MANAGED}=true");
        let mac = format!("{LABEL_MAC}={mac}");
        self.run(
            &[
                "secret", "create", "--label", &managed, "--label", &mac, name, "-",
            ],
            Some(value.expose().as_bytes()),
        )?;
        Ok(())
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        self.run(&["secret", "rm", name], None).map(drop)
    }
}

/// Whether podman can hold `value`; the reason if not.
pub fn check_size(var: &str, value: &Secret) -> Result<()> {
    let len = value.expose().len();
    if len == 0 {
        return Err(OvError::new(format!(
            "{var} is empty, and podman cannot hold an empty secret"
        )));
    }
    if len >= MAX_SECRET_BYTES {
        return Err(OvError::new(format!(
            "{var} is {len} bytes; podman holds secrets of less than {MAX_SECRET_BYTES} bytes"
        ))
        .hint("ov run --secrets-dir …   # large values as files instead"));
    }
    Ok(())
}

/// The podman secret's name for a variable.
pub fn secret_name(prefix: &str, var: &str) -> String {
    format!("{prefix}{var}")
}

/// The quadlet line that gives the container `var` from the secret.
pub fn quadlet_line(secret: &str, var: &str) -> String {
    format!("Secret={secret},type=env,target={var}")
}

/// The key of [`LABEL_MAC`]: 32 random bytes in ov's data directory,
/// made on first use, readable by the user only.
fn mac_key(paths: &Paths) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let path = paths.data_dir.join("podman.key");
    match ov_plugin_support::check_private_file(&path)? {
        Ok(true) => {
            let bytes = ov_plugin_support::read_regular(&path)?;
            if bytes.len() == 32 {
                return Ok(zeroize::Zeroizing::new(bytes));
            }
            Err(
                OvError::new(format!("{} is not a 32-byte key", path.display())).hint(format!(
                    "rm {}   # ov makes a new one; every secret then counts as changed",
                    ov_plugin_support::shell_quote(&path)
                )),
            )
        }
        Ok(false) => {
            ov_plugin_support::create_dir_all_mode(&paths.data_dir, 0o700)?;
            let key = crate::store::random_bytes(32)?;
            ov_plugin_support::with_lock(&path, || {
                ov_plugin_support::write_atomic(&path, key.as_slice(), Some(0o600))
            })?;
            Ok(key)
        }
        Err(problem) => Err(OvError::new(problem.to_string()).hint(problem.fix())),
    }
}

/// Keyed hashes of values, for [`LABEL_MAC`].
pub struct Macs {
    key: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Macs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Macs(..)")
    }
}

impl Macs {
    pub fn load(paths: &Paths) -> Result<Macs> {
        Ok(Macs {
            key: mac_key(paths)?,
        })
    }

    /// The MAC of `value` as the secret `name`.
    pub fn of(&self, name: &str, value: &Secret) -> String {
        let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(&self.key) else {
            unreachable!("HMAC takes a key of any length")
        };
        m.update(name.as_bytes());
        m.update(&[0]);
        m.update(value.expose().as_bytes());
        m.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The prefix of the secrets ov makes when none is given.
pub const DEFAULT_PREFIX: &str = "ov-";

/// Refuse a prefix podman would refuse in a name.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(())
    } else {
        Err(OvError::usage(format!(
            "'{prefix}' cannot begin a podman secret name: letters, digits, '-', '_' and '.' only"
        )))
    }
}
