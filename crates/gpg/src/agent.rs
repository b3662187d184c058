//! gpg-agent: its configuration file, whether it runs, what it has cached,
//! and presetting passphrases.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::{Error, Gpg, Result, fix};

pub const DEFAULT_CACHE_TTL: u64 = 28800;
pub const MAX_CACHE_TTL: u64 = 43200;

/// Pinentries in order of preference: the ones linked with libsecret first
/// (they look the passphrase up in the Secret Service), then terminal ones.
pub const PINENTRIES: &[&str] = &[
    "pinentry-qt",
    "pinentry-gnome3",
    "pinentry-gtk-2",
    "pinentry-curses",
    "pinentry-tty",
    "pinentry",
];

/// GNUPGHOME, or ~/.gnupg.
pub fn gnupg_home() -> PathBuf {
    std::env::var_os("GNUPGHOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".gnupg")
        })
}

pub fn conf_path() -> PathBuf {
    gnupg_home().join("gpg-agent.conf")
}

/// The first preferred pinentry installed here.
pub fn best_pinentry() -> Option<PathBuf> {
    PINENTRIES.iter().find_map(|p| which::which(p).ok())
}

/// The directives of a gpg-agent.conf, as (name, value) per line.
pub fn directives(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((k, v)) => (k.to_owned(), v.trim().to_owned()),
            None => (l.to_owned(), String::new()),
        })
        .collect()
}

pub fn directive<'a>(d: &'a [(String, String)], name: &str) -> Option<&'a str> {
    d.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// What must change in `text` for ov's agent setup, and the new text.
/// The user's own lines stay; a pinentry-program that exists stays; a TTL
/// shorter than ov's is raised. `None` when nothing changes.
pub fn merge_conf(text: &str, pinentry: &Path) -> Option<(String, Vec<String>)> {
    let mut changes = Vec::new();
    let mut out: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let ttl = |name: &str, min: u64| (name.to_owned(), min);
    let ttls = [
        ttl("default-cache-ttl", DEFAULT_CACHE_TTL),
        ttl("max-cache-ttl", MAX_CACHE_TTL),
    ];
    for line in text.lines() {
        let t = line.trim();
        let (k, v) = match t.split_once(char::is_whitespace) {
            Some((k, v)) => (k, v.trim()),
            None => (t, ""),
        };
        if t.starts_with('#') || t.is_empty() {
            out.push(line.to_owned());
            continue;
        }
        seen.insert(k.to_owned());
        if k == "pinentry-program" && !Path::new(v).is_file() {
            changes.push(format!(
                "pinentry-program {v} does not exist; using {}",
                pinentry.display()
            ));
            out.push(format!("pinentry-program {}", pinentry.display()));
            continue;
        }
        if let Some((_, min)) = ttls.iter().find(|(n, _)| n == k)
            && v.parse::<u64>().is_ok_and(|n| n < *min) | v.parse::<u64>().is_err()
        {
            changes.push(format!("{k} {v} -> {min}"));
            out.push(format!("{k} {min}"));
            continue;
        }
        out.push(line.to_owned());
    }
    let mut add = |line: String, changes: &mut Vec<String>| {
        changes.push(format!("added {line}"));
        out.push(line);
    };
    if !seen.contains("pinentry-program") {
        add(
            format!("pinentry-program {}", pinentry.display()),
            &mut changes,
        );
    }
    for (name, min) in &ttls {
        if !seen.contains(name) {
            add(format!("{name} {min}"), &mut changes);
        }
    }
    for flag in ["allow-preset-passphrase", "allow-loopback-pinentry"] {
        if !seen.contains(flag) {
            add(flag.to_owned(), &mut changes);
        }
    }
    if changes.is_empty() {
        return None;
    }
    let mut text = out.join("\n");
    text.push('\n');
    Some((text, changes))
}

/// One line of `KEYINFO --list`.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub keygrip: String,
    pub cached: bool,
    /// `false` for a key stored without a passphrase (PROTECTION `C`):
    /// there is nothing to cache or store for it.
    pub protected: bool,
}

impl Gpg {
    fn connect(&self, commands: &[&str], autostart: bool) -> Result<crate::Run> {
        let prog = self
            .connect_agent
            .clone()
            .ok_or_else(|| Error::new("gpg-connect-agent is not installed").hint(fix::install()))?;
        let mut args: Vec<&OsStr> = Vec::new();
        if !autostart {
            args.push(OsStr::new("--no-autostart"));
        }
        args.extend(commands.iter().map(OsStr::new));
        args.push(OsStr::new("/bye"));
        self.exec(&prog, &args, None)
    }

    /// The running agent's version, or why there is none.
    pub fn agent_version(&self) -> Result<String> {
        let r = self.connect(&["GETINFO version"], false)?;
        let out = r.stdout_text();
        match out.lines().find_map(|l| l.strip_prefix("D ")) {
            Some(v) if r.ok => Ok(v.to_owned()),
            _ => Err(Error::new(format!(
                "gpg-agent is not running ({})",
                first_line(&(out + &r.messages))
            ))
            .hint(fix::AGENT)),
        }
    }

    /// `KEYINFO --list`: which keygrips have a cached passphrase (field 7).
    pub fn keyinfo(&self) -> Result<Vec<KeyInfo>> {
        let r = self.connect(&["KEYINFO --list"], false)?;
        let out = r.stdout_text();
        if out.lines().any(|l| l.starts_with("ERR")) || !r.ok {
            return Err(Error::new(format!(
                "cannot ask gpg-agent: {}",
                first_line(&(out.clone() + &r.messages))
            ))
            .hint(fix::AGENT));
        }
        Ok(out
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&"S") && f.get(1) == Some(&"KEYINFO")).then(|| KeyInfo {
                    keygrip: f.get(2).copied().unwrap_or("").to_owned(),
                    cached: f.get(6) == Some(&"1"),
                    protected: f.get(7) != Some(&"C"),
                })
            })
            .collect())
    }

    /// Start the agent if it is not running.
    pub fn launch_agent(&self) -> Result<()> {
        let prog = self
            .gpgconf
            .clone()
            .ok_or_else(|| Error::new("gpgconf is not installed").hint(fix::install()))?;
        let r = self.exec(
            &prog,
            &[OsStr::new("--launch"), OsStr::new("gpg-agent")],
            None,
        )?;
        if !r.ok {
            return Err(
                Error::new(format!("cannot start gpg-agent: {}", r.messages.trim()))
                    .hint(fix::DOCTOR),
            );
        }
        Ok(())
    }

    /// Make a running agent read its configuration again; start it otherwise.
    pub fn reload_agent(&self) -> Result<()> {
        if self.agent_version().is_ok() {
            let r = self.connect(&["RELOADAGENT"], false)?;
            if r.ok {
                return Ok(());
            }
        }
        self.launch_agent()
    }

    /// Where gpg-preset-passphrase lives (`gpgconf --list-dirs libexecdir`).
    pub fn preset_program(&self) -> Option<PathBuf> {
        let dir = self
            .gpgconf
            .as_ref()
            .and_then(|g| {
                self.exec(
                    g,
                    &[OsStr::new("--list-dirs"), OsStr::new("libexecdir")],
                    None,
                )
                .ok()
            })
            .map(|r| PathBuf::from(r.stdout_text().trim()))
            .unwrap_or_else(|| PathBuf::from("/usr/lib/gnupg"));
        let p = dir.join("gpg-preset-passphrase");
        p.is_file().then_some(p)
    }

    /// Cache `passphrase` in the agent for `grip` (needs allow-preset-passphrase).
    pub fn preset(&self, grip: &str, passphrase: &[u8]) -> Result<()> {
        let prog = self.preset_program().ok_or_else(|| {
            Error::new("gpg-preset-passphrase is not installed").hint(fix::install())
        })?;
        let r = self.exec(
            &prog,
            &[OsStr::new("--preset"), OsStr::new(grip)],
            Some(passphrase),
        )?;
        if !r.ok {
            return Err(Error::new(format!(
                "gpg-agent refused the passphrase for {grip}: {}",
                r.messages.trim()
            ))
            .hint(fix::SETUP));
        }
        Ok(())
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no answer")
        .to_owned()
}

/// Does a systemd user manager run for this session?
pub fn user_manager_runs() -> bool {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(|d| Path::new(&d).join("systemd/private").exists())
        .unwrap_or(false)
        && which::which("systemctl").is_ok()
}

pub const SOCKETS: &[&str] = &["gpg-agent.socket", "gpg-agent-extra.socket"];

/// `systemctl --user is-enabled` for each socket: the ones not enabled.
pub fn sockets_not_enabled() -> Vec<String> {
    SOCKETS
        .iter()
        .filter(|s| {
            !std::process::Command::new("systemctl")
                .args(["--user", "is-enabled", "--quiet", s])
                .status()
                .is_ok_and(|st| st.success())
        })
        .map(|s| (*s).to_owned())
        .collect()
}

pub fn enable_sockets() -> Result<()> {
    let st = std::process::Command::new("systemctl")
        .args(["--user", "enable", "--now"])
        .args(SOCKETS)
        .status()?;
    if !st.success() {
        return Err(Error::new(
            "systemctl --user enable --now gpg-agent.socket failed",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_what_is_missing_and_keeps_the_rest() {
        let p = Path::new("/bin/sh");
        let (text, changes) =
            merge_conf("# mine\nenable-ssh-support\ndefault-cache-ttl 60\n", p).expect("changes");
        assert!(text.starts_with("# mine\nenable-ssh-support\ndefault-cache-ttl 28800\n"));
        assert!(text.contains("pinentry-program /bin/sh\n"));
        assert!(text.contains("allow-preset-passphrase\n"));
        assert!(text.contains("allow-loopback-pinentry\n"));
        assert!(text.contains("max-cache-ttl 43200\n"));
        assert_eq!(changes.len(), 5);
        assert!(merge_conf(&text, p).is_none(), "idempotent");
    }
}
