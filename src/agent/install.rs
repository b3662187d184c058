//! `ov agent install`: a systemd unit that runs the agent as a service
//! user, and the rendezvous file clients find its socket by.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::location;
use crate::error::{Kind, OvError, Result};
use crate::paths::Paths;

pub const DEFAULT_UNIT: &str = "ov-agent";
const UNIT_DIR: &str = "/etc/systemd/system";

/// What install writes, and where.
#[derive(Debug)]
pub struct Plan {
    pub unit_name: String,
    pub unit_path: PathBuf,
    pub unit: String,
    pub rendezvous_path: PathBuf,
    pub rendezvous: String,
    pub config_dir: PathBuf,
    /// How the service user starts the same agent by hand.
    pub manual_start: String,
    /// The same install, to paste as root.
    pub again: String,
}

#[derive(Debug)]
pub struct Request<'a> {
    pub machine_key: &'a Path,
    pub app: &'a str,
    pub env: &'a str,
    pub user: &'a str,
    pub unit_name: &'a str,
    pub enable: bool,
}

impl Request<'_> {
    /// This install as a command to paste, with `user` for `--user`.
    fn command(&self, user: &str) -> String {
        let q = |s: &str| ov_plugin_support::shell_quote(Path::new(s));
        let mut c = format!(
            "ov agent install --machine-key {} --app {} --env {} --user {}",
            self.key_quoted(),
            q(self.app),
            q(self.env),
            q(user)
        );
        if self.unit_name != DEFAULT_UNIT {
            c.push_str(&format!(" --unit-name {}", q(self.unit_name)));
        }
        if self.enable {
            c.push_str(" --enable");
        }
        c
    }

    /// The fix for `--user root`: the non-root owner of the key file, or
    /// a service account made for the agent that then owns it.
    fn not_root_hint(&self) -> String {
        let owner = std::fs::metadata(self.machine_key)
            .ok()
            .map(|m| m.uid())
            .filter(|uid| *uid != 0)
            .and_then(|uid| nix::unistd::User::from_uid(uid.into()).ok().flatten());
        match owner {
            Some(u) => format!(
                "{}   # the account that owns the machine key",
                ov_plugin_support::as_root(&self.command(&u.name))
            ),
            None => {
                let root = ov_plugin_support::as_root;
                format!(
                    "(id {SERVICE_USER} || {}) && {} && {}",
                    root(&format!("useradd --system --no-create-home {SERVICE_USER}")),
                    root(&format!("chown {SERVICE_USER}: {}", self.key_quoted())),
                    root(&self.command(SERVICE_USER))
                )
            }
        }
    }

    /// The key file's absolute path, quoted for a shell.
    fn key_quoted(&self) -> String {
        ov_plugin_support::shell_quote(&crate::machine_key::absolute(self.machine_key))
    }
}

/// The account `--user root`'s hint makes when the key is root's.
const SERVICE_USER: &str = "ov-agent";

/// A path as it can stand in a unit's ExecStart= unquoted: systemd gives
/// spaces, quotes, `%` and `$` meanings of their own.
fn unit_word(what: &str, p: &Path) -> Result<String> {
    let s = p.to_str().unwrap_or("\u{0}");
    if s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'\\%$;".contains(c))
    {
        return Err(OvError::usage(format!(
            "the {what} path {} cannot go into a unit file as it is: it holds a space, quote, '%', '$' or ';'",
            p.display()
        ))
        .hint(format!("ln -s {} /etc/ov/   # and pass that path", ov_plugin_support::shell_quote(p))));
    }
    Ok(s.to_owned())
}

pub fn plan(paths: &Paths, r: &Request<'_>) -> Result<Plan> {
    crate::machine_key::validate_app_env(r.app, r.env)?;
    if r.unit_name.is_empty()
        || !r
            .unit_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        return Err(OvError::usage(format!(
            "'{}' is not a valid unit name: use letters, digits, '-', '_', '.' or '@'",
            r.unit_name
        ))
        .hint(format!("--unit-name {DEFAULT_UNIT}")));
    }
    let user = nix::unistd::User::from_name(r.user)
        .ok()
        .flatten()
        .ok_or_else(|| {
            OvError::usage(format!("there is no user '{}' on this machine", r.user)).hint(format!(
                "id {}   # or create it: sudo useradd --system {}",
                r.user, r.user
            ))
        })?;
    if user.uid.is_root() {
        return Err(
            OvError::usage(format!("--user {}: the agent must not run as root", r.user))
                .hint(r.not_root_hint()),
        );
    }
    let key = crate::machine_key::absolute(r.machine_key);
    let kq = r.key_quoted();
    let meta = std::fs::symlink_metadata(&key).map_err(|e| {
        OvError::new(format!(
            "opening machine key: {}",
            e.to_string()
                .split(" (os error")
                .next()
                .unwrap_or_default()
                .to_lowercase()
        ))
        .hint(crate::machine_key::derive_command(&key, r.app, r.env))
    })?;
    if meta.file_type().is_symlink() {
        return Err(
            OvError::new("opening machine key: too many levels of symbolic links")
                .hint(format!("--machine-key \"$(readlink -f {kq})\"")),
        );
    }
    let mode = meta.mode() & 0o7777;
    if mode != 0o600 {
        return Err(OvError::new(format!(
            "machine key has permissions {mode:04o} — must be 0600"
        ))
        .hint(format!("chmod 600 {kq}")));
    }
    if meta.uid() != user.uid.as_raw() {
        return Err(OvError::new(format!(
            "machine key is owned by uid {} but the agent's user {} is uid {}",
            meta.uid(),
            r.user,
            user.uid
        ))
        .kind(Kind::Environment)
        .hint(format!("sudo chown {}: {kq}", r.user)));
    }
    if meta.len() != crate::machine_key::KEY_LEN as u64 {
        return Err(OvError::new("machine key must be exactly 32 bytes")
            .hint(crate::machine_key::derive_command(&key, r.app, r.env)));
    }
    let exe = std::env::current_exe()
        .map_err(|e| OvError::new(format!("cannot find the ov program: {e}")))?;
    let socket = PathBuf::from("/run")
        .join(r.unit_name)
        .join(location::SOCKET_NAME);
    let unit = format!(
        "# Written by `ov agent install`; run it again to change this file.\n\
         [Unit]\n\
         Description=ov agent for {app}/{env}\n\
         After=local-fs.target\n\
         \n\
         [Service]\n\
         # READY once the socket accepts connections.\n\
         Type=notify\n\
         User={user}\n\
         ExecStart={exe} agent start --foreground --machine-key {key} --app {app} --env {env} --socket {socket}\n\
         RuntimeDirectory={name}\n\
         RuntimeDirectoryMode=0700\n\
         UMask=0077\n\
         Restart=on-failure\n\
         RestartSec=2\n\
         # SIGTERM to the agent only: it lets the commands it runs finish.\n\
         KillMode=mixed\n\
         LimitMEMLOCK=64K\n\
         NoNewPrivileges=yes\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        app = r.app,
        env = r.env,
        user = r.user,
        exe = unit_word("ov program", &exe)?,
        key = unit_word("machine key", &key)?,
        socket = socket.display(),
        name = r.unit_name,
    );
    let unit_dir = std::env::var_os("OV_SYSTEMD_UNIT_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from(UNIT_DIR));
    Ok(Plan {
        unit_name: r.unit_name.to_owned(),
        unit_path: unit_dir.join(format!("{}.service", r.unit_name)),
        unit,
        rendezvous_path: location::rendezvous_file(paths),
        rendezvous: format!("{}\n", socket.display()),
        config_dir: paths.system_config_dir.clone(),
        manual_start: format!(
            "ov agent start --machine-key {kq} --app {} --env {}",
            r.app, r.env
        ),
        again: format!("sudo {}", r.command(r.user)),
    })
}

/// A write that failed as root: a read-only mount or a full disk.
fn as_root(e: impl std::fmt::Display, path: &Path) -> OvError {
    let q = ov_plugin_support::shell_quote(path.parent().unwrap_or(path));
    OvError::new(format!("cannot write {}: {e}", path.display()))
        .kind(Kind::Environment)
        .hint(format!(
            "findmnt -T {q}; df -h {q}   # mounted read-only, or full?"
        ))
}

/// Write the unit (0644), make the config directory root's 0755, write the
/// rendezvous file (root's, 0644).
pub fn apply(plan: &Plan) -> Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(OvError::new(
            "ov agent install writes the unit and /etc/ov as root: run it with sudo",
        )
        .kind(Kind::Environment)
        .hint(plan.again.clone()));
    }
    if let Some(dir) = plan.unit_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| as_root(e, dir))?;
    }
    ov_plugin_support::write_atomic(&plan.unit_path, plan.unit.as_bytes(), Some(0o644))
        .map_err(|e| as_root(e, &plan.unit_path))?;
    let dir = &plan.config_dir;
    std::fs::create_dir_all(dir).map_err(|e| as_root(e, dir))?;
    std::os::unix::fs::chown(dir, Some(0), Some(0)).map_err(|e| as_root(e, dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| as_root(e, dir))?;
    ov_plugin_support::write_atomic(
        &plan.rendezvous_path,
        plan.rendezvous.as_bytes(),
        Some(0o644),
    )
    .map_err(|e| as_root(e, &plan.rendezvous_path))?;
    std::os::unix::fs::chown(&plan.rendezvous_path, Some(0), Some(0))
        .map_err(|e| as_root(e, &plan.rendezvous_path))?;
    Ok(())
}

/// `--enable` needs a running systemd; asked before anything is written.
pub fn systemd_runs(plan: &Plan) -> Result<()> {
    if Path::new("/run/systemd/system").exists() {
        return Ok(());
    }
    Err(OvError::new(
        "--enable: systemd does not run on this machine (no /run/systemd/system), so nothing can enable or start the unit",
    )
    .kind(Kind::Environment)
    .hint(format!(
        "{}   # as the service user, without systemd",
        plan.manual_start
    )))
}

/// `systemctl daemon-reload` and `systemctl enable --now UNIT`; with
/// `Type=notify` the second returns once the agent accepts connections,
/// and fails when it exits first.
pub fn enable(plan: &Plan) -> Result<()> {
    for args in [
        vec!["daemon-reload"],
        vec!["enable", "--now", plan.unit_name.as_str()],
    ] {
        let status = std::process::Command::new("systemctl")
            .args(&args)
            .status()
            .map_err(|e| {
                OvError::new(format!("cannot run systemctl: {e}"))
                    .kind(Kind::Environment)
                    .hint(format!("systemctl enable --now {}", plan.unit_name))
            })?;
        if !status.success() {
            return Err(OvError::new(format!("systemctl {} failed", args.join(" ")))
                .kind(Kind::Environment)
                .hint(format!("systemctl status {} --no-pager", plan.unit_name))
                .hint(format!("journalctl -u {} -n 50", plan.unit_name)));
        }
    }
    Ok(())
}
