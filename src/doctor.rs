//! The checks `ov doctor` runs, assembled from the engine's own checks and
//! the ones each backend contributes.

use std::sync::Arc;
use std::time::Duration;

use ov_checks::{Status, Task, config_file_mode_check, report};
use ov_plugin_api::{Availability, Context};

use crate::host::{Host, Origin, State};
use crate::keycache;
use crate::paths::Paths;
use crate::settings::{Settings, Specs};
use crate::store::context;
use crate::unlock::Unlocker;

/// Every task, in display order.
pub fn tasks(paths: &Paths, host: &Host) -> Vec<Task> {
    let mut tasks = Vec::new();
    let settings = Settings::load(paths, &Specs::of_host(host));

    // settings.*
    {
        let p = paths.clone();
        let settings = settings.clone();
        tasks.push(Task::single(
            "settings.parse",
            "settings files parse",
            move || settings_parse(&p, &settings),
        ));
        let user = paths.user_config();
        tasks.push(Task::single(
            "settings.permissions",
            "settings file owner and mode",
            move || {
                config_file_mode_check(
                    "settings.permissions",
                    "settings file owner and mode",
                    &user,
                )
            },
        ));
    }

    // plugins.*
    for info in &host.plugins {
        if matches!(info.state, State::Shadowed { .. }) {
            continue;
        }
        let id = format!("plugins.{}", info.name);
        let title = format!("plugin {} loads", info.name);
        let shadowed: Vec<String> = host
            .plugins
            .iter()
            .filter(|p| p.name == info.name && matches!(p.state, State::Shadowed { .. }))
            .map(|p| p.origin.to_string())
            .collect();
        let info = info.clone();
        let (id2, title2) = (id.clone(), title.clone());
        tasks.push(Task::single(id, title, move || match &info.state {
            State::Failed { error, fix } => {
                let mut r = report(&id2, &title2, Status::Fail, error.clone());
                r.fix = Some(fix.clone());
                r
            }
            _ => {
                let from = match &info.origin {
                    Origin::BuiltIn => "built in".to_owned(),
                    Origin::Path(p) => format!("loaded from {}", p.display()),
                };
                let mut finding = format!(
                    "{} {} ({from}, ABI {})",
                    info.name,
                    info.version,
                    info.abi.unwrap_or(0)
                );
                if !shadowed.is_empty() {
                    finding.push_str(&format!("; takes the place of {}", shadowed.join(", ")));
                }
                report(&id2, &title2, Status::Ok, finding)
            }
        }));
    }

    // backends.available
    let ctx = match &settings {
        Ok(s) => context(paths, s),
        Err(_) => Context {
            config_dir: paths.config_dir.clone(),
            data_dir: paths.data_dir.clone(),
            runtime_dir: paths.runtime_dir.clone(),
            ..Context::default()
        },
    };
    let forced = settings
        .as_ref()
        .ok()
        .and_then(|s| s.forced_backend().map(str::to_owned));
    let missing: Vec<(&str, &str)> = crate::host::KNOWN_BACKENDS
        .iter()
        .filter(|(name, _)| host.backend(name).is_none())
        .copied()
        .collect();
    if !missing.is_empty() {
        tasks.push(Task::single(
            "backends.installed",
            "every backend is installed",
            move || missing_backends(&missing),
        ));
    }
    let backends: Vec<_> = host
        .backends
        .iter()
        .map(|b| (b.desc.clone(), Arc::clone(&b.backend)))
        .collect();
    {
        let ctx = ctx.clone();
        let forced = forced.clone();
        tasks.push(
            Task::single(
                "backends.available",
                "which backends can serve secrets",
                move || backends_available(&ctx, &backends, forced.as_deref()),
            )
            .after("settings.parse"),
        );
    }

    // backends.plaintext: only where there is somewhere better to keep
    // plaintext entries, so a machine with config alone reports as before.
    if let Some(task) = plaintext_task(&ctx, host, forced.as_deref()) {
        tasks.push(task);
    }

    // Each backend's own checks, grouped under its name.
    // The doctor never prompts: a store that needs a password gets what the
    // environment or the kernel-keyring cache has, or nothing.
    // One cache check per backend that declares an unlock secret; what
    // it opens and whether it is cached are found out when it runs.
    for b in host.backends.iter().filter(|b| b.desc.unlock.is_some()) {
        if settings.is_err() {
            break;
        }
        let name = b.desc.name.clone();
        // A backend that keeps more than the engine's secret (the kdbx
        // derived key) reports its cache itself.
        let id = format!("{name}.cache");
        if b.backend.declare_checks().iter().any(|d| d.id == id) {
            continue;
        }
        let (backend, ctx) = (Arc::clone(&b.backend), ctx.clone());
        let title = format!(
            "{} cache",
            b.desc
                .unlock
                .as_ref()
                .map_or("unlock secret", |u| u.label.as_str())
        );
        tasks.push(
            Task::batch(
                id.clone(),
                title.clone(),
                move || match Unlocker::for_backend(backend.as_ref(), &ctx) {
                    Some(u) if backend.probe(&ctx).is_available() => {
                        vec![cache_check(&id, &title, &u)]
                    }
                    _ => Vec::new(),
                },
            )
            .listing([])
            .after(format!("plugins.{name}")),
        );
    }
    // machine-key.*: a check per registered key and bundle; with none
    // registered, one skipped line that says how to make one, so
    // `ov doctor machine-key` and `--list` know the group on a fresh setup.
    // A registry that does not parse is a failure of the group, naming
    // the file and line: every service started with a key depends on it.
    {
        let p = paths.clone();
        let registry = crate::machine_key::Registry::load(paths);
        let listed: Vec<(String, String)> = match &registry {
            Ok(r) => r
                .keys
                .iter()
                .flat_map(|k| {
                    let (app, env) = (&k.app, &k.env);
                    [
                        (
                            format!("machine-key.{app}.{env}.file"),
                            format!("machine key for {app}/{env}"),
                        ),
                        (
                            format!("machine-key.{app}.{env}.bundle"),
                            format!("sealed bundle for {app}/{env}"),
                        ),
                    ]
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let title = if listed.is_empty() {
            "machine keys and sealed bundles (none registered)"
        } else {
            "machine keys and sealed bundles"
        };
        let backends = host.backends.clone();
        let settings = settings.clone();
        tasks.push(
            Task::batch("machine-key", title, move || match registry {
                Ok(r) if r.keys.is_empty() => vec![report(
                    "machine-key",
                    "machine keys and sealed bundles",
                    Status::Skip,
                    "no machine keys registered (`ov auth derive-machine-key` makes one for a service)",
                )],
                Ok(r) => {
                    // The store, to compare each bundle with what it
                    // holds; it never prompts here (a doctor asks for
                    // nothing).
                    let store = settings.ok().map(|settings| {
                        let host = Host {
                            plugins: Vec::new(),
                            backends,
                        };
                        let mut store = crate::store::Store::new(&p, &settings, host);
                        store.never_prompt();
                        store
                    });
                    machine_key_reports(&p, &r, store.as_ref())
                }
                Err(e) => {
                    let mut r = report(
                        "machine-key",
                        "machine keys and sealed bundles",
                        Status::Fail,
                        e.message.clone(),
                    );
                    r.fix = e.hints.first().cloned();
                    vec![r]
                }
            })
            .listing(listed)
            // Reading a KeePass database derives its key: slow, not hung.
            .at_least(SLOW_CHECK_BUDGET),
        );
    }
    // gpg.*: the GnuPG chain and the .secrets file of the current directory.
    tasks.extend(ov_gpg::checks::doctor_tasks(".secrets".into()));
    for b in &host.backends {
        tasks.extend(backend_tasks(b, &ctx));
    }
    tasks
}

/// One task per check a backend declares, each with its own timeout, run
/// after the checks it names. Declaring runs nothing: the store is opened
/// and the password looked up inside the tasks.
fn backend_tasks(b: &crate::host::Loaded, ctx: &Context) -> Vec<Task> {
    let name = &b.desc.name;
    let needs_unlock = b.desc.unlock.is_some();
    b.backend
        .declare_checks()
        .into_iter()
        .map(|decl| {
            let backend = Arc::clone(&b.backend);
            let mut ctx = ctx.clone();
            let (id, title) = (decl.id.clone(), decl.title.clone());
            let mut task = Task::batch(decl.id, decl.title, move || {
                // The doctor never prompts: a store that needs a secret
                // gets what the environment or the cache has, or nothing.
                if needs_unlock {
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

/// The least time a check that derives keys or starts an agent gets.
pub const SLOW_CHECK_BUDGET: Duration = Duration::from_secs(15);

/// `backends.plaintext`, when a plaintext backend can be listed and an
/// encrypted writable one is there (open or locked) to take its entries.
/// Which ones are there is found out when the check runs: the task itself
/// exists whenever both kinds are installed.
fn plaintext_task(ctx: &Context, host: &Host, forced: Option<&str>) -> Option<Task> {
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

fn missing_backends(missing: &[(&str, &str)]) -> ov_checks::CheckReport {
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
    r.fix = Some(
        "sudo apt-get install --reinstall ov   # dnf reinstall ov / pacman -S ov: the ov package ships every backend"
            .into(),
    );
    r
}

fn cache_check(id: &str, title: &str, u: &Unlocker) -> ov_checks::CheckReport {
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

fn settings_parse(
    paths: &Paths,
    settings: &crate::error::Result<Settings>,
) -> ov_checks::CheckReport {
    let id = "settings.parse";
    let title = "settings files parse";
    match settings {
        Err(e) => {
            let mut r = report(id, title, Status::Fail, e.message.clone());
            r.fix = e.hints.first().cloned();
            r
        }
        Ok(s) if !s.unknown.is_empty() => {
            let (key, file) = &s.unknown[0];
            let mut r = report(
                id,
                title,
                Status::Warn,
                format!(
                    "{}: unknown setting{} {} (ignored)",
                    file.display(),
                    if s.unknown.len() == 1 { "" } else { "s" },
                    s.unknown
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            r.fix = Some(if file == &paths.user_config() {
                format!("ov settings unset {key}")
            } else {
                ov_plugin_support::edit_command(file)
            });
            r
        }
        Ok(_) => {
            let files: Vec<String> = [paths.system_config(), paths.user_config()]
                .into_iter()
                .filter(|p| p.exists())
                .map(|p| p.display().to_string())
                .collect();
            let finding = if files.is_empty() {
                "no settings files; defaults apply".to_owned()
            } else {
                format!(
                    "{} parse{}",
                    files.join(" and "),
                    if files.len() == 1 { "s" } else { "" }
                )
            };
            report(id, title, Status::Ok, finding)
        }
    }
}

fn backends_available(
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

/// How a bundle's secrets differ from the store's, by name only: `X
/// changed in the store`, `Y is not sealed`, `Z is no longer stored`.
fn bundle_diff(
    sealed: &[(String, ov_plugin_api::Secret)],
    stored: &[(String, ov_plugin_api::Secret)],
) -> Vec<String> {
    let mut diff = Vec::new();
    for (name, value) in stored {
        match sealed.iter().find(|(n, _)| n == name) {
            Some((_, v)) if v.expose() == value.expose() => {}
            Some(_) => diff.push(format!("{name} changed in the store")),
            None => diff.push(format!("{name} is not sealed")),
        }
    }
    for (name, _) in sealed {
        if !stored.iter().any(|(n, _)| n == name) {
            diff.push(format!("{name} is no longer stored"));
        }
    }
    diff
}

/// For each registered key: the file passes `ov run`'s checks (same texts
/// and fixes as its errors), and the app's bundle exists, opens with the
/// key, and holds what the store holds (a value changed in another tool
/// makes it stale too); when the key or the store cannot be read here,
/// it is at least not older than the app's last change through ov.
fn machine_key_reports(
    paths: &Paths,
    registry: &crate::machine_key::Registry,
    store: Option<&crate::store::Store>,
) -> Vec<ov_checks::CheckReport> {
    use crate::machine_key as mk;
    let mut out = Vec::new();
    for r in &registry.keys {
        let (app, env) = (r.app.as_str(), r.env.as_str());
        let id = format!("machine-key.{app}.{env}.file");
        let title = format!("machine key for {app}/{env}");
        let key = match mk::load(&r.path, app, env) {
            Ok(k) => {
                out.push(report(
                    &id,
                    &title,
                    Status::Ok,
                    format!("{}: 32 bytes, mode 0600, owned by you", r.path.display()),
                ));
                Some(k)
            }
            Err(e) => {
                // The key may rightly belong to the service account.
                let status = if e.kind == crate::error::Kind::Environment {
                    Status::Warn
                } else {
                    Status::Fail
                };
                let mut rep = report(
                    &id,
                    &title,
                    status,
                    format!("{}: {}", r.path.display(), e.message),
                );
                rep.fix = e.hints.first().cloned();
                out.push(rep);
                None
            }
        };
        let id = format!("machine-key.{app}.{env}.bundle");
        let title = format!("sealed bundle for {app}/{env}");
        let bundle = registry.bundle_path(paths, app, env);
        let seal = mk::seal_command(app, env);
        let meta = match std::fs::metadata(&bundle) {
            Ok(m) => m,
            Err(e) => {
                let mut rep = report(
                    &id,
                    &title,
                    Status::Fail,
                    format!("{}: {e}", bundle.display()),
                );
                rep.fix = Some(seal);
                out.push(rep);
                continue;
            }
        };
        let sealed = match key.as_ref().map(|key| mk::open(&bundle, key, app, env)) {
            Some(Err(e)) => {
                let mut rep = report(&id, &title, Status::Fail, e.message);
                rep.fix = Some(seal);
                out.push(rep);
                continue;
            }
            Some(Ok(sealed)) => Some(sealed),
            None => None,
        };
        // What the store holds now, when all of it can be seen.
        let stored = store.and_then(|store| {
            mk::collect_complete(store, app, env, "compare")
                .ok()
                .and_then(Result::ok)
        });
        if let (Some(sealed), Some(stored)) = (&sealed, &stored) {
            let diff = bundle_diff(sealed, stored);
            if diff.is_empty() {
                out.push(report(
                    &id,
                    &title,
                    Status::Ok,
                    format!(
                        "{} opens with the key and holds what the store holds",
                        bundle.display()
                    ),
                ));
            } else {
                let mut rep = report(
                    &id,
                    &title,
                    Status::Warn,
                    format!(
                        "{} is stale: {}; the service would start with old secrets",
                        bundle.display(),
                        diff.join(", ")
                    ),
                );
                rep.fix = Some(seal);
                out.push(rep);
            }
            continue;
        }
        let sealed_at = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let changed = registry
            .changed
            .get(&mk::service(app, env))
            .copied()
            .unwrap_or(0);
        if sealed_at < changed {
            let mut rep = report(
                &id,
                &title,
                Status::Warn,
                format!(
                    "{} is older than the last change to {app}/{env}: the service would start with old secrets",
                    bundle.display()
                ),
            );
            rep.fix = Some(seal);
            out.push(rep);
            continue;
        }
        out.push(report(
            &id,
            &title,
            Status::Ok,
            format!(
                "{}{}",
                bundle.display(),
                if key.is_some() {
                    " opens with the key and is current"
                } else {
                    " is current"
                }
            ),
        ));
    }
    out
}
