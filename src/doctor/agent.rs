//! `agent.*`: the rendezvous file, the agent's socket, whether the agent
//! answers a signed ping and runs this version, and its systemd unit.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::sys::socket::UnixCredentials;
use ov_checks::{CheckReport, Status, Task, report};

use crate::agent::{client, install, location, protocol};
use crate::paths::Paths;

const IDS: [(&str, &str); 4] = [
    ("agent.rendezvous", "agent rendezvous file"),
    ("agent.socket", "agent socket"),
    ("agent.alive", "agent answers a signed ping"),
    ("agent.unit", "agent systemd unit"),
];

pub(super) fn task(paths: &Paths) -> Task {
    let paths = paths.clone();
    Task::batch("agent", "ov agent", move || reports(&paths)).listing(
        IDS.iter()
            .map(|(id, title)| ((*id).to_owned(), (*title).to_owned())),
    )
}

fn title(id: &str) -> &'static str {
    IDS.iter().find(|(i, _)| *i == id).map_or("", |(_, t)| t)
}

fn rep(id: &str, status: Status, finding: impl Into<String>, fix: Option<String>) -> CheckReport {
    let mut r = report(id, title(id), status, finding.into());
    r.fix = fix;
    r
}

fn reports(paths: &Paths) -> Vec<CheckReport> {
    let mut out = Vec::new();
    let rv = location::rendezvous_file(paths);
    let rv_exists = std::fs::symlink_metadata(&rv).is_ok();
    let socket = location::for_client(paths, None);
    if !rv_exists
        && socket
            .as_ref()
            .is_ok_and(|s| std::fs::symlink_metadata(s).is_err())
    {
        // One line on a machine with no agent, as machine-key has.
        return vec![report(
            "agent",
            "ov agent",
            Status::Skip,
            "no agent runs and none is installed (`ov agent start` starts one)".to_owned(),
        )];
    }
    out.push(if !rv_exists {
        rep(
            "agent.rendezvous",
            Status::Skip,
            format!(
                "no {} (`ov agent install` writes one for a system agent)",
                rv.display()
            ),
            None,
        )
    } else {
        match location::rendezvous_problem(&rv) {
            Some((msg, fix)) => rep(
                "agent.rendezvous",
                Status::Fail,
                msg,
                (!fix.is_empty()).then_some(fix),
            ),
            None => rep(
                "agent.rendezvous",
                Status::Ok,
                format!("{}: root's, mode 0644", rv.display()),
                None,
            ),
        }
    });
    let socket = match socket {
        Ok(s) => s,
        Err(e) => {
            out.push(rep("agent.socket", Status::Skip, e.message, None));
            return out;
        }
    };
    // A system agent's socket is its service user's (systemd makes the
    // RuntimeDirectory theirs): root's rendezvous file vouches for it.
    let trusted = location::read_rendezvous(&rv).ok();
    let system = trusted.as_ref() == Some(&socket);
    let (socket_report, live) = socket_check(&socket, system);
    out.push(socket_report);
    out.push(if live {
        alive_check(paths, &socket)
    } else {
        rep(
            "agent.alive",
            Status::Skip,
            "no agent runs, so none to ask",
            None,
        )
    });
    out.push(unit_check(
        rv_exists.then_some(&rv),
        &installed_unit(trusted.as_deref()),
    ));
    out
}

/// The socket's kind, owner and mode, and whether something listens on it.
fn socket_check(socket: &Path, system: bool) -> (CheckReport, bool) {
    let q = ov_plugin_support::shell_quote(socket);
    let Ok(meta) = std::fs::symlink_metadata(socket) else {
        return (
            rep(
                "agent.socket",
                Status::Skip,
                format!(
                    "no agent socket at {} (`ov agent start` makes one)",
                    socket.display()
                ),
                None,
            ),
            false,
        );
    };
    if !meta.file_type().is_socket() {
        return (
            rep(
                "agent.socket",
                Status::Fail,
                format!(
                    "{} is not a socket: an agent cannot start there",
                    socket.display()
                ),
                Some(format!("rm {q}")),
            ),
            false,
        );
    }
    let me = nix::unistd::Uid::effective().as_raw();
    if meta.uid() != me && meta.uid() != 0 && !system {
        return (
            rep(
                "agent.socket",
                Status::Fail,
                format!(
                    "{} is owned by uid {}, not by you (uid {me}) or root",
                    socket.display(),
                    meta.uid()
                ),
                Some(format!("rm {q}   # then start your own agent")),
            ),
            false,
        );
    }
    if std::os::unix::net::UnixStream::connect(socket).is_err() {
        return (
            rep(
                "agent.socket",
                Status::Warn,
                format!(
                    "{} is stale: the agent that made it is gone (the next `ov agent start` replaces it)",
                    socket.display()
                ),
                Some(format!("rm {q}")),
            ),
            false,
        );
    }
    let mode = meta.mode() & 0o777;
    if mode != 0o600 && mode != 0o666 {
        return (
            rep(
                "agent.socket",
                Status::Warn,
                format!(
                    "{} has mode {mode:04o}; it should be 0600",
                    socket.display()
                ),
                Some(format!("chmod 600 {q}")),
            ),
            true,
        );
    }
    if let Some(dir) = socket.parent()
        && let Ok(d) = std::fs::metadata(dir)
        && d.uid() == me
        && d.mode() & 0o077 != 0
        && mode == 0o600
    {
        return (
            rep(
                "agent.socket",
                Status::Warn,
                format!(
                    "{} has mode {:04o}; the agent's directory should be 0700",
                    dir.display(),
                    d.mode() & 0o7777
                ),
                Some(format!("chmod 700 {}", ov_plugin_support::shell_quote(dir))),
            ),
            true,
        );
    }
    (
        rep(
            "agent.socket",
            Status::Ok,
            format!("{}: an agent listens, mode {mode:04o}", socket.display()),
            None,
        ),
        true,
    )
}

/// Keys the doctor can sign with: the session token, else the key file
/// the agent was started with, else every registered machine key that
/// loads here. With them, why the agent's own key file did not load.
fn keys(
    paths: &Paths,
    loc: &location::Location,
    peer: Option<&UnixCredentials>,
) -> (Vec<protocol::AuthKey>, Option<(PathBuf, String)>) {
    if let Ok(k) = client::key_for(loc, None) {
        return (vec![k], None);
    }
    let mut keys = Vec::new();
    let mut own = None;
    if let Some(path) = peer.and_then(location::key_of) {
        match crate::machine_key::load(&path, "APP", crate::machine_key::DEFAULT_ENV) {
            Ok(k) => keys.push(protocol::AuthKey::from_machine_key(&k)),
            Err(e) => own = Some((path, e.message)),
        }
    }
    if let Ok(registry) = crate::machine_key::Registry::load(paths) {
        keys.extend(
            registry
                .keys
                .iter()
                .filter_map(|r| crate::machine_key::load(&r.path, &r.app, &r.env).ok())
                .map(|k| protocol::AuthKey::from_machine_key(&k)),
        );
    }
    (keys, own)
}

/// The fix when no key signed for an agent of another user (a system
/// agent serves its service user only): the check as that user.
fn as_agent_user(peer: &UnixCredentials) -> Option<String> {
    let uid = peer.uid();
    if uid == nix::unistd::Uid::effective().as_raw() {
        return None;
    }
    let user = nix::unistd::User::from_uid(uid.into()).ok()??;
    let name = ov_plugin_support::shell_quote(Path::new(&user.name));
    // root has runuser (util-linux) where sudo may not be installed.
    let as_them = if nix::unistd::Uid::effective().is_root() {
        format!("runuser -u {name} --")
    } else {
        format!("sudo -u {name}")
    };
    Some(format!(
        "{as_them} ov doctor agent.alive   # the agent serves {} only",
        user.name
    ))
}

fn alive_check(paths: &Paths, socket: &Path) -> CheckReport {
    let loc = location::Location::new(socket.to_path_buf(), None);
    // Who listens: the key file it was started with, and whom it serves.
    let peer = location::listener(socket);
    let (keys, own) = keys(paths, &loc, peer.as_ref());
    let stop = format!(
        "ov agent stop --socket {}   # then start it again with this ov",
        ov_plugin_support::shell_quote(socket)
    );
    let mut last = String::from("no session token and no registered machine key to sign with");
    for key in keys {
        let asked =
            client::Client::connect(socket, key).and_then(|c| c.ask(protocol::Request::Ping));
        match asked {
            Ok(protocol::Answer::Pong { version }) if version == env!("CARGO_PKG_VERSION") => {
                return rep(
                    "agent.alive",
                    Status::Ok,
                    format!("the agent (ov {version}) answers a signed ping"),
                    None,
                );
            }
            Ok(protocol::Answer::Pong { version }) => {
                return rep(
                    "agent.alive",
                    Status::Warn,
                    format!(
                        "the agent runs ov {version}, this is ov {}: restart it",
                        env!("CARGO_PKG_VERSION")
                    ),
                    Some(stop),
                );
            }
            Ok(other) => last = format!("unexpected answer {other:?}"),
            Err(e) => last = e.message,
        }
    }
    if let Some((key, why)) = &own {
        last = format!("its key file {}: {why}", key.display());
    }
    let restart = || {
        format!(
            "ov agent stop --socket {}   # then start it again: a new session token, or a key file that loads",
            ov_plugin_support::shell_quote(socket)
        )
    };
    let fix = peer
        .as_ref()
        .and_then(as_agent_user)
        .unwrap_or_else(restart);
    rep(
        "agent.alive",
        Status::Warn,
        format!("cannot check the agent's answers: {last}"),
        Some(fix),
    )
}

/// The unit `ov agent install` wrote: the one whose socket, `/run/N/`,
/// a trusted rendezvous file names (`--unit-name N`), else the default.
fn installed_unit(trusted: Option<&Path>) -> String {
    let named = trusted.and_then(|socket| {
        let dir = socket.parent()?;
        (socket.file_name()? == location::SOCKET_NAME && dir.parent()? == Path::new("/run"))
            .then(|| dir.file_name()?.to_str().map(str::to_owned))
            .flatten()
    });
    named.unwrap_or_else(|| install::DEFAULT_UNIT.to_owned())
}

/// Installed, enabled and active, where systemd runs and a unit is there.
fn unit_check(rendezvous: Option<&PathBuf>, name: &str) -> CheckReport {
    if !Path::new("/run/systemd/system").exists() {
        return rep(
            "agent.unit",
            Status::Skip,
            "systemd does not run here",
            None,
        );
    }
    let unit_dir = std::env::var_os("OV_SYSTEMD_UNIT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/systemd/system"));
    let unit = unit_dir.join(format!("{name}.service"));
    if !unit.exists() {
        return rep(
            "agent.unit",
            if rendezvous.is_some() {
                Status::Warn
            } else {
                Status::Skip
            },
            match rendezvous {
                Some(rv) => format!(
                    "no {}, yet {} sends clients to its socket: remove that file, or put the agent back with `ov agent install --machine-key KEY --app APP --env ENV --user USER{}`",
                    unit.display(),
                    rv.display(),
                    if name == install::DEFAULT_UNIT {
                        String::new()
                    } else {
                        format!(" --unit-name {name}")
                    }
                ),
                None => format!("no {}", unit.display()),
            },
            rendezvous.map(|rv| {
                ov_plugin_support::as_root(&format!("rm {}", ov_plugin_support::shell_quote(rv)))
            }),
        );
    }
    let ask = |what: &str| {
        std::process::Command::new("systemctl")
            .args([what, name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let (enabled, active) = (ask("is-enabled"), ask("is-active"));
    if enabled == "enabled" && active == "active" {
        rep(
            "agent.unit",
            Status::Ok,
            format!("{name} is enabled and active"),
            None,
        )
    } else {
        rep(
            "agent.unit",
            Status::Warn,
            format!("{name} is {enabled}, {active}"),
            Some(ov_plugin_support::as_root(&format!(
                "systemctl enable --now {name}"
            ))),
        )
    }
}
