//! `ov secrets gpg setup`: gpg-agent, a key, and its passphrase where
//! pinentry finds it.

use std::path::PathBuf;

use clap::Args;
use ov_gpg::keystore::Keystore;
use ov_gpg::{Gpg, SecretKey, agent, fix};
use ov_plugin_api::Secret;
use ov_plugin_support::write_atomic;

use super::import_key::{import_keystore, import_path};
use super::{PassphraseArgs, passphrase};
use crate::cli::warn;
use crate::error::{OvError, Result};
use crate::prompt;

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Import key from file/directory before setup
    #[arg(long, value_name = "PATH")]
    import: Option<PathBuf>,
    /// Import key from the Secret Service before setup
    #[arg(long, conflicts_with = "import")]
    from_keystore: bool,
    /// Use specific existing key
    #[arg(long, value_name = "ID")]
    key_id: Option<String>,
    /// Skip passphrase storage in Secret Service
    #[arg(long)]
    skip_secret_service: bool,
    /// User ID for a generated key (default: $USER <$USER@hostname>)
    #[arg(long, value_name = "UID")]
    uid: Option<String>,
    #[command(flatten)]
    pass: PassphraseArgs,
}

fn default_uid() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| ov_plugin_support::user_name(nix::unistd::Uid::effective().as_raw()));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{user} <{user}@{host}>")
}

pub(super) fn setup(gpg: &Gpg, a: &SetupArgs) -> Result<i32> {
    let step = |s: &str| eprintln!("==> {s}");
    step("tools");
    if gpg.connect_agent.is_none() || gpg.gpgconf.is_none() {
        return Err(OvError::new("gpg-connect-agent or gpgconf is missing").hint(fix::install()));
    }
    let pinentry = agent::best_pinentry().ok_or_else(|| {
        OvError::new("no pinentry program is installed").hint(ov_plugin_support::as_root(
            "apt-get install pinentry-qt   # or pinentry-gnome3, pinentry-tty",
        ))
    })?;
    eprintln!(
        "  gpg {}, pinentry {}",
        gpg.gpg.display(),
        pinentry.display()
    );
    if which::which("secret-tool").is_err() {
        eprintln!(
            "  secret-tool not found (optional; {})",
            ov_plugin_support::as_root("apt-get install libsecret-tools")
        );
    }

    step("gpg-agent.conf");
    let home = agent::gnupg_home();
    ov_plugin_support::create_dir_all_mode(&home, 0o700)?;
    let conf = agent::conf_path();
    let old = std::fs::read_to_string(&conf).unwrap_or_default();
    match agent::merge_conf(&old, &pinentry) {
        None => eprintln!("  {} already set up", conf.display()),
        Some((text, changes)) => {
            if conf.exists() {
                let backup = conf.with_extension("conf.bak");
                std::fs::copy(&conf, &backup)?;
                eprintln!("  backed up the old file to {}", backup.display());
            }
            write_atomic(&conf, text.as_bytes(), Some(0o600))?;
            for c in changes {
                eprintln!("  {c}");
            }
        }
    }
    gpg.reload_agent()?;
    eprintln!("  gpg-agent reloaded");

    step("systemd sockets");
    if agent::user_manager_runs() {
        match agent::enable_sockets() {
            Ok(()) => eprintln!("  enabled {}", agent::SOCKETS.join(", ")),
            Err(e) => warn(&e.message),
        }
    } else {
        eprintln!("  skipped: no systemd user manager runs in this session");
    }

    step("key");
    let pass = passphrase(&a.pass)?;
    if let Some(p) = &a.import {
        import_path(gpg, p, pass.as_ref())?;
    }
    if a.from_keystore {
        import_keystore(gpg, a.key_id.as_deref(), pass.as_ref())?;
    }
    let have = gpg.secret_keys()?;
    let (key, pass): (SecretKey, Option<Secret>) = if let Some(id) = &a.key_id {
        (gpg.pick_key(Some(id))?, pass)
    } else if let Some(k) = have.into_iter().next() {
        (k, pass)
    } else {
        let pass = match pass {
            Some(p) => p,
            None if prompt::stdin_is_tty() => {
                prompt::ask_hidden_twice("Passphrase for the new GPG key: ")?
            }
            None => {
                return Err(OvError::new(
                    "no secret key to use, and no passphrase to generate one with (no terminal)",
                )
                .hint("ov secrets gpg setup --passphrase-file <FILE>")
                .hint("ov secrets gpg setup --import <path>"));
            }
        };
        let uid = a.uid.clone().unwrap_or_else(default_uid);
        let k = gpg.generate(&uid, pass.expose().as_bytes())?;
        eprintln!("  generated {} {}", k.keyid, k.uid);
        (k, Some(pass))
    };
    eprintln!("  using {} {}", key.keyid, key.uid);

    step("passphrase");
    let pass = match pass {
        Some(p) => Some(p),
        None if prompt::stdin_is_tty() => Some(prompt::ask_hidden(&format!(
            "Passphrase of {} (to cache and store it): ",
            key.keyid
        ))?),
        None => None,
    };
    match pass {
        None => {
            warn(
                "no passphrase given and no terminal: the passphrase is neither cached nor stored",
            );
            eprintln!("hint: ov secrets gpg setup --passphrase-file <FILE>");
        }
        Some(p) => {
            gpg.check_passphrase(&key.fingerprint, p.expose().as_bytes())
                .map_err(|e| OvError::from(e).hint("ov secrets gpg setup   # and type it again"))?;
            for g in key.grips() {
                gpg.preset(g, p.expose().as_bytes())?;
            }
            eprintln!("  cached in gpg-agent for every keygrip");
            if a.skip_secret_service {
                eprintln!("  Secret Service skipped (--skip-secret-service)");
            } else {
                let ks = Keystore::new();
                let stored = key
                    .grips()
                    .try_for_each(|g| ks.store_passphrase(g, p.expose().as_bytes()));
                match stored {
                    Ok(()) => eprintln!(
                        "  stored in the Secret Service as org.gnupg.Passphrase for {}",
                        key.grips().collect::<Vec<_>>().join(", ")
                    ),
                    // No session bus at all (a server, ssh): the rest of the
                    // set-up stands; only this step cannot be done here.
                    Err(e) if e.is(ov_gpg::problem::NO_SESSION_BUS) => {
                        warn(&format!(
                            "the Secret Service step was skipped: {}; the passphrase is cached in gpg-agent only",
                            e.message
                        ));
                        let mut again = format!(
                            "ov secrets gpg setup --skip-secret-service --key-id {}",
                            key.keyid
                        );
                        if let Some(f) = &a.pass.passphrase_file {
                            again.push_str(" --passphrase-file ");
                            again.push_str(&ov_plugin_support::shell_quote(f));
                        }
                        eprintln!("hint: {again}   # on machines without a desktop keyring");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    eprintln!(
        "done. Next: ov secrets gpg encrypt -r {} -i .env -o .secrets",
        key.keyid
    );
    Ok(0)
}
