//! The checks `ov doctor` runs, assembled from the engine's own checks and
//! the ones each backend contributes.

use std::sync::Arc;
use std::time::Duration;

use ov_checks::{Status, Task, config_file_mode_check, report};
use ov_plugin_api::Context;

use crate::host::{Host, Origin, State};
use crate::paths::Paths;
use crate::settings::{Settings, Specs};
use crate::store::context;
use crate::unlock::Unlocker;

/// Every task, in display order.
mod agent;
mod backends;
mod machine_key;
mod manifest;
mod settings;

use backends::{
    backend_tasks, backends_available, cache_check, missing_backends, plaintext_task,
    unlock_env_check,
};
use machine_key::machine_key_reports;
use settings::settings_parse;

/// `asked`: the check names and groups the user gave (`ov doctor ID…`).
pub fn tasks(paths: &Paths, host: &Host, asked: &[String]) -> Vec<Task> {
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
    tasks.push(Task::single(
        "backends.installed",
        "every backend is installed",
        move || missing_backends(&missing),
    ));
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
    // What each backend declares, asked once.
    let mut declared: std::collections::HashMap<String, Vec<ov_plugin_api::CheckDecl>> = host
        .backends
        .iter()
        .map(|b| (b.desc.name.clone(), b.backend.declare_checks()))
        .collect();
    for b in host.backends.iter().filter(|b| b.desc.unlock.is_some()) {
        if settings.is_err() {
            break;
        }
        let name = b.desc.name.clone();
        // A backend that keeps more than the engine's secret (the kdbx
        // derived key) reports its cache itself.
        let id = format!("{name}.cache");
        if declared
            .get(&name)
            .is_some_and(|d| d.iter().any(|d| d.id == id))
        {
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
                    let store = settings.ok().map(|s| quiet_store(&p, &s, backends));
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
    // manifest.*: the project manifest in or above the current directory.
    tasks.extend(manifest::task(paths, host, &settings));
    // agent.*: the rendezvous file, the socket, the agent itself, its unit.
    tasks.push(agent::task(paths));
    // gpg.*: the GnuPG chain and the .secrets file of the current directory.
    let gpg_asked = asked
        .iter()
        .any(|a| a.starts_with("gpg.") && a != "gpg.used");
    tasks.extend(ov_gpg::checks::doctor_tasks(".secrets".into(), gpg_asked));
    let from_store = settings
        .as_ref()
        .ok()
        .map(|s| backends::store_context(paths, s, host));
    for b in &host.backends {
        if let Some(spec) = b.desc.unlock.clone() {
            let id = format!("{}.unlock_env", b.desc.name);
            let title = format!("{} in the environment", spec.env);
            let (backend, ctx) = (Arc::clone(&b.backend), ctx.clone());
            tasks.push(
                Task::single(id.clone(), title, move || {
                    unlock_env_check(&id, &spec, || match backend.probe(&ctx) {
                        // Down for now (a sealed server) is still in use.
                        ov_plugin_api::Availability::Unavailable {
                            reason,
                            transient: false,
                        } => Some(reason),
                        _ => None,
                    })
                })
                .after(format!("plugins.{}", b.desc.name)),
            );
        }
        let decls = declared.remove(&b.desc.name).unwrap_or_default();
        tasks.extend(backend_tasks(b, decls, &ctx, from_store.as_ref()));
    }
    tasks
}

/// A store over `backends` for a check to read through: it never prompts
/// (a doctor asks for nothing), so it has what the environment or the
/// cache gives.
pub(super) fn quiet_store(
    paths: &Paths,
    settings: &Settings,
    backends: Vec<crate::host::Loaded>,
) -> crate::store::Store {
    let host = Host {
        plugins: Vec::new(),
        backends,
    };
    let mut store = crate::store::Store::new(paths, settings, host);
    store.never_prompt();
    store
}

/// The least time a check that derives keys or starts an agent gets.
pub const SLOW_CHECK_BUDGET: Duration = Duration::from_secs(15);
