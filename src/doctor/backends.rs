//! The `backends.*` checks, each backend's declared checks as tasks, and
//! the unlock-secret cache check.

use std::sync::Arc;

use ov_checks::{Status, Task, report};
use ov_plugin_api::{Availability, Context};

use crate::host::Host;
use crate::keycache;
use crate::unlock::Unlocker;

use super::SLOW_CHECK_BUDGET;

/// One task per check a backend declares, each with its own timeout, run
/// after the checks it names. Declaring runs nothing: the store is opened
/// and the password looked up inside the tasks.
/// The context a backend's checks run with, made by a store that never
/// prompts: with the entries its reference settings name, read from the
/// other backends (`openbao.token_ref`), and its unlock secret when the
/// environment or the cache has it.
pub(super) type StoreContext = Arc<dyn Fn(&str) -> Option<Context> + Send + Sync>;

pub(super) fn store_context(
    paths: &crate::paths::Paths,
    settings: &crate::settings::Settings,
    host: &crate::host::Host,
) -> StoreContext {
    let (paths, settings, backends) = (paths.clone(), settings.clone(), host.backends.clone());
    Arc::new(move |name: &str| {
        let store = super::quiet_store(&paths, &settings, backends.clone());
        let b = store.chain().iter().find(|b| b.desc.name == name)?;
        Some(store.quiet_context(b))
    })
}

pub(super) fn backend_tasks(
    b: &crate::host::Loaded,
    declared: Vec<ov_plugin_api::CheckDecl>,
    ctx: &Context,
    from_store: Option<&StoreContext>,
) -> Vec<Task> {
    let name = &b.desc.name;
    let needs_unlock = b.desc.unlock.is_some();
    // Only a backend with reference settings needs the store's context.
    let from_store = from_store
        .filter(|_| {
            b.desc
                .settings
                .iter()
                .any(|s| s.kind == ov_plugin_api::SettingKind::Reference)
        })
        .cloned();
    declared
        .into_iter()
        .map(|decl| {
            let backend = Arc::clone(&b.backend);
            let mut ctx = ctx.clone();
            let from_store = from_store.clone();
            let backend_name = name.clone();
            let (id, title) = (decl.id.clone(), decl.title.clone());
            let mut task = Task::batch(decl.id, decl.title, move || {
                // The doctor never prompts: a store that needs a secret
                // gets what the environment or the cache has, or nothing.
                if let Some(c) = from_store.and_then(|f| f(&backend_name)) {
                    ctx = c;
                } else if needs_unlock {
                    ctx.unlock = Unlocker::for_backend(backend.as_ref(), &ctx)
                        .and_then(|u| u.quiet_secret());
                }
                let mut reports = backend.run_check(&ctx, &id);
                for r in reports.iter_mut().filter(|r| r.title.is_empty()) {
                    r.title = title.clone();
                }
                reports
            })
            .listing([])
            .after(format!("plugins.{name}"));
            for dep in decl.depends_on {
                task = task.runs_after(dep);
            }
            if needs_unlock {
                // Opening the store derives a key (Argon2 takes seconds on a
                // small board): that is work, not a hang.
                task = task.at_least(SLOW_CHECK_BUDGET);
            }
            task
        })
        .collect()
}

/// Every check a backend declares, run one after the other, for a
/// summary that needs the first fix among them.
fn all_checks(
    backend: &dyn ov_plugin_api::Backend,
    ctx: &Context,
) -> impl Iterator<Item = ov_checks::CheckReport> {
    backend
        .declare_checks()
        .into_iter()
        .flat_map(move |d| backend.run_check(ctx, &d.id))
}

/// `backends.plaintext`, when a plaintext backend can be listed and an
/// encrypted writable one is there (open or locked) to take its entries.
/// Which ones are there is found out when the check runs: the task itself
/// exists whenever both kinds are installed.
pub(super) fn plaintext_task(ctx: &Context, host: &Host, forced: Option<&str>) -> Option<Task> {
    let plain = host
        .backends
        .iter()
        .find(|b| b.desc.plaintext && b.desc.listable && b.desc.writable)?
        .clone();
    let encrypted: Vec<crate::host::Loaded> = host
        .backends
        .iter()
        .filter(|b| !b.desc.plaintext && b.desc.writable)
        .cloned()
        .collect();
    if encrypted.is_empty() {
        return None;
    }
    let (id, title) = ("backends.plaintext", "no secrets left in plaintext");
    let (ctx, forced) = (ctx.clone(), forced.map(str::to_owned));
    Some(
        Task::batch(id, title, move || {
            let usable = |b: &&crate::host::Loaded| {
                matches!(
                    b.backend.probe(&ctx),
                    Availability::Available { .. } | Availability::Locked { .. }
                )
            };
            if !plain.backend.probe(&ctx).is_available() {
                return Vec::new();
            }
            let Some(encrypted) = encrypted.iter().find(usable) else {
                return Vec::new();
            };
            let (plain_name, enc_name) = (&plain.desc.name, &encrypted.desc.name);
            // Writes forced to the plaintext backend would send the import
            // back into it: point them at the encrypted one first.
            let mut fix = String::new();
            if forced.as_deref() == Some(plain_name.as_str()) {
                fix.push_str(&format!("ov settings set secret_backend {enc_name} && "));
            }
            fix.push_str(&format!("ov secrets import --from {plain_name} --move"));
            vec![match plain.backend.list(&ctx, None).map(|l| l.entries) {
                Err(e) => report(id, title, Status::Warn, format!("cannot list {plain_name}: {}", e.message)),
                Ok(entries) if entries.is_empty() => report(
                    id,
                    title,
                    Status::Ok,
                    format!("nothing stored in {plain_name} (plaintext)"),
                ),
                Ok(entries) => {
                    let mut r = report(
                        id,
                        title,
                        Status::Warn,
                        format!(
                            "{} entr{} in {plain_name} (plaintext) while {enc_name} can keep them encrypted",
                            entries.len(),
                            if entries.len() == 1 { "y is" } else { "ies are" }
                        ),
                    );
                    r.fix = Some(fix);
                    r
                }
            }]
        })
        .listing([])
        .after("backends.available")
        .quiet_skip(),
    )
}

/// The command that reinstalls the ov package with this machine's package
/// manager.
fn reinstall_command() -> &'static str {
    let on_path = |tool: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
    };
    if on_path("dnf") && !on_path("apt-get") {
        "dnf reinstall -y ov"
    } else if on_path("pacman") && !on_path("apt-get") {
        "pacman -S --noconfirm ov"
    } else {
        "apt-get install --reinstall -y ov"
    }
}

pub(super) fn missing_backends(missing: &[(&str, &str)]) -> ov_checks::CheckReport {
    if missing.is_empty() {
        let names: Vec<&str> = crate::host::KNOWN_BACKENDS
            .iter()
            .map(|(n, _)| *n)
            .collect();
        return report(
            "backends.installed",
            "every backend is installed",
            Status::Ok,
            format!("{} are installed", names.join(", ")),
        );
    }
    let names: Vec<String> = missing
        .iter()
        .map(|(name, lib)| format!("{name} ({}/{lib})", crate::paths::SYSTEM_PLUGIN_DIR))
        .collect();
    let mut r = report(
        "backends.installed",
        "every backend is installed",
        Status::Warn,
        format!("not installed: {}", names.join(", ")),
    );
    r.fix = Some(ov_plugin_support::as_root(&format!(
        "{}   # the ov package ships every backend",
        reinstall_command()
    )));
    r
}

/// The backend's unlock variable, when it is set: every command stops on
/// an empty one before a backend is asked.
/// `unused` says why the backend cannot be used here, if it cannot (no
/// server set, no database): then an unset variable is nothing to report.
pub(super) fn unlock_env_check(
    id: &str,
    spec: &ov_plugin_api::UnlockSpec,
    unused: impl FnOnce() -> Option<String>,
) -> ov_checks::CheckReport {
    let title = format!("{} in the environment", spec.env);
    if let Some(problem) = crate::unlock::env_problem(spec) {
        let mut r = report(id, &title, Status::Fail, problem.message());
        r.fix = Some(problem.fix());
        return r;
    }
    let set = std::env::var_os(&spec.env).is_some();
    if let Some(why) = unused() {
        // A backend that is not in use here (no store, no server) needs
        // no secret, whether or not the variable holds one.
        let state = if set {
            "set, but not used"
        } else {
            "not set, and not needed"
        };
        return report(
            id,
            &title,
            Status::Skip,
            format!("{} is {state}: {why}", spec.env),
        );
    }
    let finding = if set {
        format!("{} is set: commands use it instead of asking", spec.env)
    } else {
        format!(
            "{} is not set: commands use the cache, or ask on a terminal",
            spec.env
        )
    };
    report(id, &title, Status::Ok, finding)
}

pub(super) fn cache_check(id: &str, title: &str, u: &Unlocker) -> ov_checks::CheckReport {
    let desc = u.cache_description();
    if !u.cache_enabled() {
        return report(
            id,
            title,
            Status::Ok,
            format!(
                "off ({} = false): every command asks or reads {}",
                u.spec()
                    .cache_setting
                    .as_deref()
                    .unwrap_or("its cache setting"),
                u.spec().env
            ),
        );
    }
    match keycache::time_left(desc) {
        Some(left) => report(
            id,
            title,
            Status::Ok,
            format!("{desc} cached in the user keyring, expires in {left}"),
        ),
        None if keycache::load(desc).is_some() => report(
            id,
            title,
            Status::Ok,
            format!("{desc} cached in the user keyring"),
        ),
        None => report(
            id,
            title,
            Status::Ok,
            "no password cached (`ov secrets unlock` caches one)",
        ),
    }
}

pub(super) fn backends_available(
    ctx: &Context,
    backends: &[(ov_plugin_api::Description, Arc<dyn ov_plugin_api::Backend>)],
    forced: Option<&str>,
) -> ov_checks::CheckReport {
    let id = "backends.available";
    let title = "which backends can serve secrets";
    let mut available = Vec::new();
    let mut other = Vec::new();
    let mut target = None;
    for (desc, backend) in backends {
        match backend.probe(ctx) {
            Availability::Available { .. } => {
                available.push(desc.name.clone());
                if target.is_none() && desc.writable && forced.is_none_or(|f| f == desc.name) {
                    target = Some(desc.clone());
                }
            }
            Availability::Locked { reason } => {
                other.push(format!("{} locked ({reason})", desc.name))
            }
            Availability::Unavailable { reason, .. } => {
                other.push(format!("{} unavailable ({reason})", desc.name));
            }
        }
    }
    let mut finding = format!("available: {}", available.join(", "));
    if !other.is_empty() {
        finding.push_str(&format!("; {}", other.join("; ")));
    }
    // What makes a backend usable: the first fix its own checks give, or
    // else the first hint of the error a use of it gets now (a listing).
    let own_fix = |name: &str| {
        let (_, b) = backends.iter().find(|(d, _)| d.name == name)?;
        all_checks(b.as_ref(), ctx)
            .find(|r| matches!(r.status, Status::Warn | Status::Fail) && r.fix.is_some())
            .and_then(|r| r.fix)
            .or_else(|| {
                b.list(ctx, None)
                    .err()
                    .and_then(|e| e.hints.into_iter().next())
            })
    };
    match (target, forced) {
        (Some(t), _) if t.plaintext => {
            finding.push_str(&format!("; writes go to {} (plaintext)", t.name));
            // An encrypted backend that can take the writes: one ready
            // now (then only the setting is in the way), or the fix that
            // sets one up, preferring a fix ov carries out itself
            // (`ov secrets init`) over one that needs a desktop.
            let encrypted: Vec<&str> = backends
                .iter()
                .filter(|(d, _)| d.writable && !d.plaintext)
                .map(|(d, _)| d.name.as_str())
                .collect();
            let ready = backends
                .iter()
                .any(|(d, b)| encrypted.contains(&d.name.as_str()) && b.probe(ctx).is_available());
            let fixes: Vec<String> = encrypted.iter().filter_map(|n| own_fix(n)).collect();
            let setup = fixes
                .iter()
                .find(|f| f.starts_with("ov "))
                .or(fixes.first())
                .cloned();
            let auto = "ov settings set secret_backend auto";
            let mut r = report(id, title, Status::Warn, finding);
            r.fix = match (forced.is_some(), ready, setup) {
                (true, true, _) => Some(auto.into()),
                (true, false, Some(f)) => Some(format!("{f} && {auto}")),
                (false, _, Some(f)) => Some(f),
                (_, _, None) => None,
            };
            r
        }
        (Some(t), _) => {
            finding.push_str(&format!("; writes go to {}", t.name));
            report(id, title, Status::Ok, finding)
        }
        (None, Some(f)) => {
            let mut r = report(
                id,
                title,
                Status::Fail,
                format!("secret_backend is '{f}', but that backend cannot be used; {finding}"),
            );
            // The fix for that backend: `auto` would quietly mean plaintext.
            r.fix = Some(own_fix(f).unwrap_or_else(|| format!("ov doctor {f}")));
            r
        }
        (None, None) => {
            let mut r = report(
                id,
                title,
                Status::Fail,
                format!("no writable backend; {finding}"),
            );
            r.fix = Some("ov plugins list".into());
            r
        }
    }
}
