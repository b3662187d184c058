//! A third party's backend is as good as a built-in one (issue 16): the
//! example plugin (`plugins/example`, an age-encrypted file) is only ever
//! loaded from its `.so`. It is chosen with `ov settings set
//! secret_backend agefile`, configured through the setting it declares, and
//! unlocked by the engine's chain: its variable, a prompt on a real
//! pseudo-terminal with retries, the kernel-keyring cache in a fresh
//! session, and the fast failure where nobody can be asked.

mod common;

use std::fs;

use common::{TestEnv, stderr, stdout};

const PASS: &str = "a long agefile passphrase";
const ENV: &str = "OV_AGEFILE_PASSPHRASE";

/// An environment with the example plugin installed, chosen for writes,
/// its store at `<root>/store.age`.
fn agefile_env() -> TestEnv {
    let mut env = TestEnv::new();
    env.install_plugin("ov_plugin_example", "libov_plugin_example.so");
    env.ok(&["settings", "set", "secret_backend", "agefile"]);
    let store = env.root().join("store.age").display().to_string();
    env.ok(&["settings", "set", "agefile.path", &store]);
    env
}

fn store(env: &TestEnv) -> std::path::PathBuf {
    env.root().join("store.age")
}

/// `ov ARGS…` in a fresh session keyring (as under ssh or systemd), with
/// no terminal.
fn fresh_session(env: &TestEnv, args: &[&str]) -> std::process::Output {
    env.in_fresh_keyring_session(args)
        .output()
        .expect("keyctl (./scripts/test installs keyutils)")
}

#[test]
fn the_plugin_is_chosen_and_configured_through_the_settings_it_declares() {
    let mut env = TestEnv::new();
    // Not installed: the setting and the choice are unknown.
    let out = env.run(&["settings", "set", "agefile.path", "/tmp/x.age"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("unknown setting 'agefile.path'"));
    let out = env.run(&["settings", "set", "secret_backend", "agefile"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("expected one of auto, keyring, kdbx, config"),
        "{}",
        stderr(&out)
    );

    env.install_plugin("ov_plugin_example", "libov_plugin_example.so");
    let out = env.run(&["plugins", "list"]);
    assert!(stdout(&out).contains("agefile"), "{}", stdout(&out));
    env.ok(&["settings", "set", "secret_backend", "agefile"]);
    let out = env.run(&["settings", "set", "agefile.path", "relative dir/s.age"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Stored absolute, as every path setting.
    let got = env.ok(&["settings", "get", "agefile.path"]);
    assert_eq!(
        got.trim(),
        env.root().join("relative dir/s.age").display().to_string()
    );
    let list = env.ok(&["settings", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&list).expect("json");
    let row = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["key"] == "agefile.path")
        .expect("agefile.path listed");
    assert_eq!(row["about"], "the agefile example backend's store");
    // Its checks are listed without running anything.
    let list = env.ok(&["doctor", "--list"]);
    assert!(
        list.contains("agefile.file") && list.contains("agefile.cache"),
        "{list}"
    );
    let out = env.run(&["settings", "get", "agefile.nothing"]);
    assert!(stderr(&out).contains("valid settings: secret_backend"));
}

#[test]
fn its_secret_comes_from_the_variable_and_nothing_is_stored_in_plaintext() {
    let mut env = agefile_env();
    env.set_env(ENV, PASS);
    let out = env.run_stdin(&["secrets", "set", "svc", "token"], "t0k3n-value\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("in agefile"), "{}", stderr(&out));
    let bytes = fs::read(store(&env)).expect("store written");
    assert!(bytes.starts_with(b"age-encryption.org/v1"));
    assert!(!String::from_utf8_lossy(&bytes).contains("t0k3n-value"));
    assert_eq!(common::mode_of(&store(&env)), 0o600);
    assert!(!env.credentials().exists(), "nothing went to plaintext");
    assert_eq!(env.ok(&["secrets", "get", "svc", "token"]), "t0k3n-value\n");

    // A wrong one: the engine's hints, naming the variable and the file.
    env.unset_env(ENV);
    env.set_env(ENV, "not it");
    let out = env.run(&["secrets", "get", "svc", "token"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("the passphrase does not open"), "{err}");
    assert!(
        err.contains(&format!(
            "hint: {ENV} holds a password that does not open {}",
            store(&env).display()
        )),
        "{err}"
    );

    // Nobody to ask: at once, the spec's words for this backend.
    env.unset_env(ENV);
    let out = fresh_session(&env, &["secrets", "get", "svc", "token"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "agefile passphrase required but stdin is not a terminal; set {ENV}=<password> or run interactively"
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_prompt_retries_on_a_terminal_and_the_cache_serves_a_fresh_session() {
    let mut env = agefile_env();
    env.set_env(ENV, PASS);
    let out = env.run_stdin(&["secrets", "set", "svc", "k"], "from-agefile\n");
    assert!(out.status.success(), "{}", stderr(&out));
    env.unset_env(ENV);

    let shown = common::expect(
        &env,
        &format!(
            "spawn $ov secrets get svc k\n\
             expect \"agefile passphrase for {}: \"\n\
             send \"wrong\\r\"\n\
             expect \"Sorry, try again.\"\n\
             expect \"agefile passphrase for \"\n\
             send \"{PASS}\\r\"\n\
             expect \"from-agefile\"\n\
             expect eof\n\
             catch wait result\n\
             exit [lindex $result 3]",
            store(&env).display()
        ),
    );
    assert!(shown.status.success(), "{}", stdout(&shown));
    assert!(!stdout(&shown).contains(PASS), "echoed: {}", stdout(&shown));

    // Unlocked once, read without a terminal from another fresh session.
    let unlock = env
        .in_fresh_keyring_session(&["secrets", "unlock"])
        .env(ENV, PASS)
        .output()
        .expect("keyctl");
    assert!(unlock.status.success(), "{}", stderr(&unlock));
    assert!(
        stderr(&unlock).contains(&format!("unlocked {}", store(&env).display())),
        "{}",
        stderr(&unlock)
    );
    let out = fresh_session(&env, &["secrets", "get", "svc", "k"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from-agefile\n");
    // The doctor opens it with the cached passphrase, and shows the cache.
    let report = stdout(&fresh_session(&env, &["doctor", "agefile", "--json"]));
    let check = TestEnv::check_in(&report, "agefile.file");
    assert_eq!(check["status"], "ok", "{report}");
    let cache = TestEnv::check_in(&report, "agefile.cache");
    assert!(
        cache["finding"]
            .as_str()
            .is_some_and(|f| f.contains("ov-agefile:")),
        "{report}"
    );

    let lock = fresh_session(&env, &["secrets", "lock"]);
    assert!(
        stderr(&lock).contains(&format!(
            "forgot the cached password for {}",
            store(&env).display()
        )),
        "{}",
        stderr(&lock)
    );
    let out = fresh_session(&env, &["secrets", "get", "svc", "k"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}
