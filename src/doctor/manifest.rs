//! `manifest.*`: the project manifest found from the current directory —
//! it parses, its required secrets resolve, none holds a placeholder, no
//! two entries give one store key different types, and a rendered
//! `secrets.env` beside it is private and ignored by git.

use std::path::Path;

use ov_checks::{CheckReport, Status, Task, report};

use crate::host::{Host, Loaded};
use crate::manifest::resolve::{Status as Held, status};
use crate::manifest::{self, Manifest};
use crate::paths::Paths;
use crate::settings::Settings;
use crate::store::Store;

/// The file a tool that needs one gets the values in, beside the manifest.
pub const ENV_FILE: &str = "secrets.env";

const CHECKS: &[(&str, &str)] = &[
    ("manifest.parse", "project manifest parses"),
    ("manifest.required", "required secrets resolve"),
    ("manifest.placeholders", "no placeholder values"),
    ("manifest.keys", "one type per store key"),
    ("manifest.env_file", "rendered secrets.env is private"),
    (
        "manifest.env_file_ignored",
        "rendered secrets.env is ignored by git",
    ),
];

/// The group, when there is a manifest in or above the current directory.
pub(super) fn task(
    paths: &Paths,
    host: &Host,
    settings: &crate::error::Result<Settings>,
) -> Option<Task> {
    let cwd = std::env::current_dir().ok()?;
    let path = manifest::find(&cwd)?;
    let p = paths.clone();
    let backends: Vec<Loaded> = host.backends.clone();
    let settings = settings.clone();
    Some(
        Task::batch("manifest", "project secrets manifest", move || {
            let store = settings.ok().map(|s| super::quiet_store(&p, &s, backends));
            reports(&path, store.as_ref())
        })
        .listing(
            CHECKS
                .iter()
                .map(|(id, title)| ((*id).to_owned(), (*title).to_owned())),
        )
        .at_least(super::SLOW_CHECK_BUDGET),
    )
}

fn check(id: &str, status: Status, finding: impl Into<String>, fix: Option<String>) -> CheckReport {
    let title = CHECKS.iter().find(|(i, _)| *i == id).map_or(id, |(_, t)| t);
    let mut r = report(id, title, status, finding);
    r.fix = fix;
    r
}

/// `A, B and 3 more`.
fn names(list: &[&str]) -> String {
    match list {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [a, b] => format!("{a} and {b}"),
        [a, b, c] => format!("{a}, {b} and {c}"),
        [a, b, c, rest @ ..] => format!("{a}, {b}, {c} and {} more", rest.len()),
    }
}

fn reports(path: &Path, store: Option<&Store>) -> Vec<CheckReport> {
    let m = match manifest::load(Some(path)) {
        Ok(m) => m,
        Err(e) => {
            return vec![check(
                "manifest.parse",
                Status::Fail,
                e.message,
                e.hints.first().cloned(),
            )];
        }
    };
    let mut out = vec![check(
        "manifest.parse",
        Status::Ok,
        format!(
            "{}: {} secrets across {} stacks, service {}",
            path.display(),
            m.secrets.len(),
            m.stacks().len(),
            m.service
        ),
        None,
    )];
    out.extend(store.map_or_else(
        || {
            vec![check(
                "manifest.required",
                Status::Skip,
                "the settings do not load, so the store cannot be asked",
                Some("ov doctor settings".to_owned()),
            )]
        },
        |store| value_reports(&m, store),
    ));
    out.push(keys_report(&m));
    out.extend(env_file_reports(&m));
    out
}

/// `manifest.required` and `manifest.placeholders`, from what the store holds.
fn value_reports(m: &Manifest, store: &Store) -> Vec<CheckReport> {
    let mut manual = Vec::new();
    let mut generated = Vec::new();
    let mut placeholders = Vec::new();
    let mut unreadable = None;
    for d in m.secrets.iter() {
        match status(store, d) {
            Ok((Held::Manual, _)) if d.required => manual.push(d.name.as_str()),
            Ok((Held::Missing, _)) if d.required => generated.push(d.name.as_str()),
            Ok((Held::Placeholder, _)) => placeholders.push(d),
            Ok((Held::Unknown(why, hints), _)) => {
                unreadable.get_or_insert((why, hints.first().cloned()));
            }
            Ok(_) => {}
            Err(e) => {
                unreadable.get_or_insert((
                    format!("cannot read {} from the store: {}", d.name, e.message),
                    e.hints.first().cloned(),
                ));
            }
        }
    }
    let required = m.secrets.iter().filter(|d| d.required).count();
    let first = |list: &[&str]| list.first().map(|n| (*n).to_owned()).unwrap_or_default();
    let req = if let Some((finding, fix)) = unreadable {
        check("manifest.required", Status::Warn, finding, fix)
    } else if !manual.is_empty() {
        check(
            "manifest.required",
            Status::Fail,
            {
                let (verb, have) = if manual.len() == 1 {
                    ("is", "has")
                } else {
                    ("are", "have")
                };
                format!(
                    "{} {verb} set by hand (type skip) and {have} no value",
                    names(&manual)
                )
            },
            Some(format!("ov manifest set {}", first(&manual))),
        )
    } else if !generated.is_empty() {
        check(
            "manifest.required",
            Status::Warn,
            format!(
                "{} {} no value yet (`ov manifest get` would generate it on first use)",
                names(&generated),
                if generated.len() == 1 { "has" } else { "have" }
            ),
            Some("ov manifest generate".to_owned()),
        )
    } else {
        check(
            "manifest.required",
            Status::Ok,
            format!("all {required} required secrets have values"),
            None,
        )
    };
    let ph = if placeholders.is_empty() {
        check(
            "manifest.placeholders",
            Status::Ok,
            "no secret holds CHANGE_ME or an empty value",
            None,
        )
    } else {
        let listed: Vec<&str> = placeholders.iter().map(|d| d.name.as_str()).collect();
        let generated: Vec<&str> = placeholders
            .iter()
            .filter(|d| d.kind.generated())
            .map(|d| d.name.as_str())
            .collect();
        let fix = if generated.is_empty() {
            format!("ov manifest set {}", listed[0])
        } else {
            format!("ov manifest generate {}", generated.join(" "))
        };
        check(
            "manifest.placeholders",
            Status::Fail,
            format!(
                "{} hold{} a placeholder value",
                names(&listed),
                if listed.len() == 1 { "s" } else { "" }
            ),
            Some(fix),
        )
    };
    vec![req, ph]
}

/// `manifest.keys`: entries that share a store key agree on its type.
fn keys_report(m: &Manifest) -> CheckReport {
    for (i, a) in m.secrets.iter().enumerate() {
        if let Some(b) = m.secrets[i + 1..]
            .iter()
            .find(|b| b.entry == a.entry && b.kind != a.kind)
        {
            return check(
                "manifest.keys",
                Status::Fail,
                format!(
                    "{} ({}, line {}) and {} ({}, line {}) share the store key {} but not the type",
                    a.name, a.kind, a.line, b.name, b.kind, b.line, a.entry
                ),
                Some(ov_plugin_support::edit_command(&m.path)),
            );
        }
    }
    check(
        "manifest.keys",
        Status::Ok,
        "every store key has one type",
        None,
    )
}

/// `manifest.env_file*`: a `secrets.env` beside the manifest is 0600 and
/// git ignores it. None when there is no such file.
fn env_file_reports(m: &Manifest) -> Vec<CheckReport> {
    let Some(dir) = m.path.parent() else {
        return Vec::new();
    };
    let file = dir.join(ENV_FILE);
    if std::fs::symlink_metadata(&file).is_err() {
        return Vec::new();
    }
    let mut out = vec![ov_plugin_support::private_file_report(
        "manifest.env_file",
        "rendered secrets.env is private",
        &file,
    )];
    // Not in a git work tree (or no git): nothing to commit it to.
    let ignored = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["check-ignore", "-q", "--", ENV_FILE])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()
        .and_then(|s| s.code());
    out.push(match ignored {
        Some(0) => check(
            "manifest.env_file_ignored",
            Status::Ok,
            format!("git ignores {}", file.display()),
            None,
        ),
        Some(1) => check(
            "manifest.env_file_ignored",
            Status::Fail,
            format!(
                "{} holds secret values and git does not ignore it: one `git add .` commits them",
                file.display()
            ),
            Some(format!(
                "echo {ENV_FILE} >> {}",
                ov_plugin_support::shell_quote(&dir.join(".gitignore"))
            )),
        ),
        _ => check(
            "manifest.env_file_ignored",
            Status::Skip,
            format!("{} is not in a git work tree", dir.display()),
            None,
        ),
    });
    out
}
