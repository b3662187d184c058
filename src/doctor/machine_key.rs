//! `machine-key.*`: each registered key and its sealed bundle.

use ov_checks::{Status, report};

use crate::error::ErrorClass;
use crate::paths::Paths;

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
pub(super) fn machine_key_reports(
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
        let key = match mk::check(&r.path) {
            Ok(k) => {
                out.push(report(
                    &id,
                    &title,
                    Status::Ok,
                    format!("{}: 32 bytes, mode 0600, owned by you", r.path.display()),
                ));
                Some(k)
            }
            Err(problem) => {
                // The key may rightly belong to the service account.
                let status = match problem.kind().class() {
                    ErrorClass::Environment => Status::Warn,
                    _ => Status::Fail,
                };
                let mut rep = report(
                    &id,
                    &title,
                    status,
                    format!("{}: {}", r.path.display(), problem.message()),
                );
                rep.fix = Some(problem.fix(app, env));
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
            let diff = bundle_diff(sealed, &stored.secrets);
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
