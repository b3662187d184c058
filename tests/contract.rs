//! One store contract, run against each backend built in and loaded from
//! its shared library through the real plugin ABI: the config backend, the
//! kdbx backend, the keyring backend against a real gnome-keyring, the
//! openbao backend against a real OpenBao server, and the example plugin
//! (loaded only: it is never linked).

#![allow(clippy::unwrap_used)] // the contract is test code called from tests

mod common;

use common::secret_service::SecretService;
use ov::host::Library;
use ov_plugin_api::{Backend, Context, EntryRef, ErrorKind, Secret};

fn ctx(dir: &std::path::Path) -> Context {
    Context {
        config_dir: dir.join("ov"),
        data_dir: dir.join("data"),
        ..Context::default()
    }
}

fn contract(backend: &dyn Backend, name: &str, plaintext: bool) {
    contract_with(backend, name, plaintext, Default::default());
}

/// The contract for a backend that needs settings to find its store.
fn contract_with(
    backend: &dyn Backend,
    name: &str,
    plaintext: bool,
    settings: std::collections::BTreeMap<String, serde_json::Value>,
) {
    let tmp = tempfile::tempdir().unwrap();
    let mut ctx = ctx(tmp.path());
    ctx.settings = settings;
    let desc = backend.describe();
    if desc.unlock.is_some() {
        unlock_contract(backend, &mut ctx);
    }
    assert_eq!(desc.name, name);
    assert!(desc.writable && desc.listable);
    assert_eq!(desc.plaintext, plaintext);
    assert!(backend.probe(&ctx).is_available());

    let a = EntryRef::new("ov/vnc", "password");
    let b = EntryRef::new("ov/vnc/deep", "k.with.dots");
    let c = EntryRef::new("other", "x");
    assert_eq!(backend.get(&ctx, &a).unwrap(), None);
    assert!(backend.list(&ctx, None).unwrap().entries.is_empty());

    let tricky = "quote\" backslash\\ newline\n tab\t unicode é ✓";
    backend.set(&ctx, &a, &Secret::from(tricky)).unwrap();
    backend.set(&ctx, &b, &Secret::from("")).unwrap();
    backend.set(&ctx, &c, &Secret::from("3")).unwrap();
    assert_eq!(backend.get(&ctx, &a).unwrap().unwrap().expose(), tricky);
    assert_eq!(backend.get(&ctx, &b).unwrap().unwrap().expose(), "");
    // The bytes as stored: the same text, for stores of text.
    assert_eq!(
        backend.get_bytes(&ctx, &a).unwrap().unwrap().expose(),
        tricky.as_bytes()
    );
    assert_eq!(
        backend
            .get_bytes(&ctx, &EntryRef::new("ov/vnc", "absent"))
            .unwrap(),
        None
    );

    // Overwrite.
    backend.set(&ctx, &c, &Secret::from("4")).unwrap();
    assert_eq!(backend.get(&ctx, &c).unwrap().unwrap().expose(), "4");

    // List, with and without a service prefix.
    assert_eq!(
        backend.list(&ctx, None).unwrap().entries,
        vec![c.clone(), a.clone(), b.clone()]
    );
    assert_eq!(
        backend.list(&ctx, Some("ov")).unwrap().entries,
        vec![a.clone(), b.clone()]
    );
    assert_eq!(
        backend.list(&ctx, Some("ov/vnc/deep")).unwrap().entries,
        vec![b.clone()]
    );
    assert!(
        backend
            .list(&ctx, Some("ov/vn"))
            .unwrap()
            .entries
            .is_empty()
    );

    // Delete.
    assert!(backend.delete(&ctx, &a).unwrap());
    assert!(!backend.delete(&ctx, &a).unwrap());
    assert_eq!(backend.get(&ctx, &a).unwrap(), None);

    // A large value survives.
    let big = "z".repeat(1024 * 1024);
    backend.set(&ctx, &a, &Secret::from(big.as_str())).unwrap();
    assert_eq!(backend.get(&ctx, &a).unwrap().unwrap().len(), big.len());

    // Checks are declared with ids in the backend's group, and each one
    // run reports under its own id (or ids below it).
    let declared = backend.declare_checks();
    assert!(!declared.is_empty());
    let group = format!("{name}.");
    assert!(
        declared.iter().all(|d| d.id.starts_with(&group)),
        "{declared:?}"
    );
    for d in &declared {
        assert!(
            d.depends_on
                .iter()
                .all(|dep| declared.iter().any(|o| &o.id == dep)),
            "{d:?} depends on an undeclared check"
        );
        for r in backend.run_check(&ctx, &d.id) {
            assert!(
                r.id == d.id || r.id.starts_with(&format!("{}.", d.id)),
                "{} reported {r:?}",
                d.id
            );
        }
    }
    assert!(
        backend
            .run_check(&ctx, &format!("{name}.no_such_check"))
            .is_empty()
    );
    if name == "config" {
        config_permissions(backend, &ctx, &c);
    }
}

/// A backend that declares an unlock secret: a store made (by `create`
/// when it can, else by the first write), refused without its secret and
/// with a wrong one, in the kinds the engine's chain acts on; then `ctx`
/// carries the right one for the rest of the contract.
fn unlock_contract(backend: &dyn Backend, ctx: &mut Context) {
    let secret = Secret::from("contract secret");
    let a = EntryRef::new("seed", "k");
    if backend.describe().creates {
        let req = ov_plugin_api::CreateRequest {
            secret: Some(secret.clone()),
            ..Default::default()
        };
        let created = backend.create(ctx, &req).unwrap();
        assert_eq!(Some(created.target), backend.unlock_target(ctx));
        ctx.unlock = Some(secret.clone());
    } else {
        ctx.unlock = Some(secret.clone());
        backend.set(ctx, &a, &Secret::from("1")).unwrap();
        assert!(backend.delete(ctx, &a).unwrap());
    }
    backend.verify_unlock(ctx).unwrap();
    ctx.unlock = None;
    assert_eq!(backend.get(ctx, &a).unwrap_err().kind, ErrorKind::Locked);
    ctx.unlock = Some(Secret::from("not the secret"));
    assert_eq!(
        backend.verify_unlock(ctx).unwrap_err().kind,
        ErrorKind::WrongPassword
    );
    assert_eq!(
        backend.get(ctx, &a).unwrap_err().kind,
        ErrorKind::WrongPassword
    );
    ctx.unlock = Some(secret);
    assert!(backend.unlock_target(ctx).is_some());
}

fn config_permissions(backend: &dyn Backend, ctx: &Context, c: &EntryRef) {
    // Permission problems come back typed, with the fix.
    use std::os::unix::fs::PermissionsExt;
    let file = ctx.config_dir.join("credentials.toml");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = backend.get(ctx, c).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permissions);
    assert_eq!(err.hints, vec![format!("chmod 600 {}", file.display())]);
}

#[test]
fn config_backend_built_in() {
    contract(&ov_plugin_config::ConfigBackend, "config", true);
}

#[test]
fn config_backend_loaded_from_its_shared_library() {
    let lib = common::plugin_lib("ov_plugin_config");
    let backend = Library::open(&lib).unwrap_or_else(|e| panic!("{}: {}", lib.display(), e.error));
    contract(&backend, "config", true);
}

/// Both keyring runs in one test: the backend finds its bus through the
/// process environment, which tests running in parallel would share.
#[test]
fn keyring_backend_built_in_and_loaded_from_its_shared_library() {
    let lib = common::plugin_lib("ov_plugin_keyring");
    for loaded in [false, true] {
        let mut env = common::TestEnv::new();
        let ss = SecretService::start(&mut env);
        // SAFETY: the only other tests in this binary never read this
        // variable, and std serialises its own environment access.
        unsafe { std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &ss.address) };
        if loaded {
            let backend =
                Library::open(&lib).unwrap_or_else(|e| panic!("{}: {}", lib.display(), e.error));
            contract(&backend, "keyring", false);
        } else {
            contract(
                &ov_plugin_keyring::KeyringBackend::default(),
                "keyring",
                false,
            );
        }
        drop(ss);
    }
}

#[test]
fn kdbx_backend_built_in() {
    contract(&ov_plugin_kdbx::KdbxBackend, "kdbx", false);
}

#[test]
fn kdbx_backend_loaded_from_its_shared_library() {
    let lib = common::plugin_lib("ov_plugin_kdbx");
    let backend = Library::open(&lib).unwrap_or_else(|e| panic!("{}: {}", lib.display(), e.error));
    contract(&backend, "kdbx", false);
}

#[test]
fn example_backend_loaded_from_its_shared_library() {
    let lib = common::plugin_lib("ov_plugin_example");
    let backend = Library::open(&lib).unwrap_or_else(|e| panic!("{}: {}", lib.display(), e.error));
    contract(&backend, "agefile", false);
}

/// A fresh OpenBao dev server for each run, with a token whose id is the
/// contract's unlock secret (the token is what unlocks this backend).
fn openbao_contract(backend: &dyn Backend) {
    let bao = common::openbao::Bao::start();
    bao.ok(&["token", "create", "-id=contract secret", "-policy=root"]);
    contract_with(backend, "openbao", false, bao.settings());
}

#[test]
fn openbao_backend_built_in() {
    openbao_contract(&ov_plugin_openbao::OpenBaoBackend);
}

#[test]
fn openbao_backend_loaded_from_its_shared_library() {
    let lib = common::plugin_lib("ov_plugin_openbao");
    let backend = Library::open(&lib).unwrap_or_else(|e| panic!("{}: {}", lib.display(), e.error));
    openbao_contract(&backend);
}
