//! Shell completion that knows the store: service and key names, app and
//! env names, manifest secrets, doctor checks, settings and their values,
//! backend names. Names only, never a value. The shells ask `ov` itself
//! at each TAB (clap_complete's dynamic completion, `COMPLETE=SHELL ov`),
//! so the candidates are those of this machine at that moment. Nothing
//! here prompts, and a store that cannot be read completes to nothing.

use std::collections::BTreeSet;

use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

use crate::host::Host;
use crate::paths::Paths;
use crate::settings::Kind;
use crate::settings::Specs;

fn candidates(names: impl IntoIterator<Item = String>) -> Vec<CompletionCandidate> {
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// The words of the command line being completed (after `--`).
fn words() -> Vec<String> {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match args.iter().position(|a| a == "--") {
        Some(i) => args[i + 1..].to_vec(),
        None => Vec::new(),
    }
}

/// The positional word after `after` on the line (the service after
/// `get`, the key after `set`).
fn word_after(after: &[&str]) -> Option<String> {
    let w = words();
    let i = w.iter().position(|x| after.contains(&x.as_str()))?;
    w[i + 1..].iter().find(|x| !x.starts_with('-')).cloned()
}

/// Every entry the store can list, quietly: no prompt, nothing printed.
fn entries(service: Option<&str>) -> Vec<ov_plugin_api::EntryRef> {
    let Ok(mut engine) = crate::cli::Engine::load() else {
        return Vec::new();
    };
    engine.store.never_prompt();
    engine
        .store
        .listing(service)
        .map(|l| l.entries.into_keys().collect())
        .unwrap_or_default()
}

fn services() -> Vec<CompletionCandidate> {
    let set: BTreeSet<String> = entries(None).into_iter().map(|e| e.service).collect();
    candidates(set)
}

fn keys() -> Vec<CompletionCandidate> {
    let Some(service) = word_after(&["get", "set", "delete", "which", "ensure"]) else {
        return Vec::new();
    };
    let set: BTreeSet<String> = entries(Some(&service))
        .into_iter()
        .filter(|e| e.service == service)
        .map(|e| e.key)
        .collect();
    candidates(set)
}

fn apps() -> Vec<CompletionCandidate> {
    let set: BTreeSet<String> = entries(None)
        .into_iter()
        .filter_map(|e| e.service.split_once('/').map(|(a, _)| a.to_owned()))
        .collect();
    candidates(set)
}

fn envs() -> Vec<CompletionCandidate> {
    let app = word_after(&["--app"]);
    let set: BTreeSet<String> = entries(None)
        .into_iter()
        .filter_map(|e| {
            let (a, env) = e.service.split_once('/')?;
            (app.as_deref().is_none_or(|x| x == a) && !env.contains('/')).then(|| env.to_owned())
        })
        .collect();
    candidates(set)
}

fn host() -> Host {
    Host::load(&Paths::plugin_search_path())
}

fn backends() -> Vec<CompletionCandidate> {
    candidates(host().backends.into_iter().map(|b| b.desc.name))
}

fn checks() -> Vec<CompletionCandidate> {
    let Ok(paths) = Paths::from_env() else {
        return Vec::new();
    };
    let tasks = crate::doctor::tasks(&paths, &host(), &[]);
    let mut out = Vec::new();
    for g in ov_checks::catalog(&tasks) {
        out.push(CompletionCandidate::new(&g.id));
        out.extend(g.checks.into_iter().map(|c| CompletionCandidate::new(c.id)));
    }
    out
}

fn setting_keys() -> Vec<CompletionCandidate> {
    candidates(Specs::of_host(&host()).iter().map(|s| s.name.clone()))
}

fn setting_values() -> Vec<CompletionCandidate> {
    let Some(key) = word_after(&["set"]) else {
        return Vec::new();
    };
    let specs = Specs::of_host(&host());
    let Some(spec) = specs.get(&key) else {
        return Vec::new();
    };
    match &spec.kind {
        Kind::Choice(c) | Kind::Backend(c) => candidates(c.clone()),
        Kind::Bool => candidates(["true".to_owned(), "false".to_owned()]),
        _ => Vec::new(),
    }
}

fn manifest_names() -> Vec<CompletionCandidate> {
    crate::manifest::load(None)
        .map(|m| candidates(m.secrets.into_iter().map(|d| d.name)))
        .unwrap_or_default()
}

/// What an argument completes to.
pub(crate) fn service() -> ArgValueCandidates {
    ArgValueCandidates::new(services)
}
pub(crate) fn key() -> ArgValueCandidates {
    ArgValueCandidates::new(keys)
}
pub(crate) fn app() -> ArgValueCandidates {
    ArgValueCandidates::new(apps)
}
pub(crate) fn env() -> ArgValueCandidates {
    ArgValueCandidates::new(envs)
}
pub(crate) fn backend() -> ArgValueCandidates {
    ArgValueCandidates::new(backends)
}
pub(crate) fn check() -> ArgValueCandidates {
    ArgValueCandidates::new(checks)
}
pub(crate) fn setting() -> ArgValueCandidates {
    ArgValueCandidates::new(setting_keys)
}
pub(crate) fn setting_value() -> ArgValueCandidates {
    ArgValueCandidates::new(setting_values)
}
pub(crate) fn manifest_secret() -> ArgValueCandidates {
    ArgValueCandidates::new(manifest_names)
}
