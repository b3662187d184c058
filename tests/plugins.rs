//! The plugin host against real shared libraries.

mod common;

use std::fs;

use common::{TestEnv, stderr, stdout};

#[test]
fn builtins_are_listed() {
    let env = TestEnv::new();
    let out = env.run(&["plugins", "list"]);
    crate::snap!("plugins_list_builtin", env.transcript(&out));
}

#[test]
fn a_loaded_config_plugin_replaces_the_builtin_and_serves_secrets() {
    let mut env = TestEnv::new();
    env.install_plugin("ov_plugin_config", "libov_plugin_config.so");
    let list = env.normalize(&env.ok(&["plugins", "list"]));
    let has_row = |words: &[&str]| list.lines().any(|l| words.iter().all(|w| l.contains(w)));
    assert!(
        has_row(&["config", "[TMP]/plugins/libov_plugin_config.so", "loaded"]),
        "{list}"
    );
    assert!(
        has_row(&[
            "config",
            "built-in",
            "shadowed (replaced by [TMP]/plugins/libov_plugin_config.so)"
        ]),
        "{list}"
    );

    env.run_stdin(&["secrets", "set", "ov/vnc", "pw"], "through-the-so\n");
    assert_eq!(
        env.ok(&["secrets", "get", "ov/vnc", "pw"]),
        "through-the-so\n"
    );
    let raw = env.run(&["secrets", "get", "--raw", "ov/vnc", "pw"]);
    assert_eq!(raw.stdout, b"through-the-so");
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["plugins", "list", "--json"])).unwrap();
    let loaded = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "config" && r["status"] == "loaded")
        .unwrap();
    assert_eq!(loaded["abi"], 1);
    assert!(
        loaded["origin"]
            .as_str()
            .unwrap()
            .ends_with("libov_plugin_config.so")
    );
}

#[test]
fn garbage_file_is_reported_by_name_and_not_fatal_to_store_commands() {
    let mut env = TestEnv::new();
    let bad = env.plugin_dir().join("libov_plugin_junk.so");
    fs::write(&bad, b"this is not an ELF file").unwrap();
    env.set_env("OV_PLUGIN_PATH", env.plugin_dir().display().to_string());
    let out = env.run(&["plugins", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = env.normalize(&stderr(&out));
    assert!(
        err.contains("ov: error: cannot load plugin [TMP]/plugins/libov_plugin_junk.so"),
        "{err}"
    );
    assert!(
        err.contains("hint: rm [TMP]/plugins/libov_plugin_junk.so"),
        "{err}"
    );
    // The store still works, with a warning.
    let out = env.run_stdin(&["secrets", "set", "s", "k"], "v\n");
    assert!(out.status.success());
    assert!(stderr(&out).contains("skipping a plugin"));
    // And the doctor fails that plugin's check.
    let out = env.run(&["doctor", "plugins"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("✗ plugins.libov_plugin_junk"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn wrong_abi_is_refused_with_both_versions() {
    let mut env = TestEnv::new();
    env.install_plugin("ov_plugin_fixture", "libov_plugin_fixture.so");
    env.set_env("OV_FIXTURE_ABI", "999");
    let out = env.run(&["plugins", "list"]);
    assert_eq!(out.status.code(), Some(1));
    crate::snap!("plugin_wrong_abi", env.transcript(&out));
}

#[test]
fn library_without_the_entry_symbol_is_not_a_plugin() {
    let mut env = TestEnv::new();
    // A real shared library that is not an ov plugin: the fixture under
    // another name, so the symbol the host derives does not exist.
    env.install_plugin("ov_plugin_fixture", "libsomething_else.so");
    let out = env.run(&["plugins", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = env.normalize(&stderr(&out));
    assert!(
        err.contains("[TMP]/plugins/libsomething_else.so is not an ov plugin: it has no symbol 'ov_plugin_entry_something_else'"),
        "{err}"
    );
}

#[test]
fn a_panicking_plugin_becomes_an_error_not_an_abort() {
    let mut env = TestEnv::new();
    env.install_plugin("ov_plugin_fixture", "libov_plugin_fixture.so");
    let out = env.run(&["secrets", "get", "s", "panic"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ov: error: plugin panicked: fixture asked to panic"),
        "{}",
        stderr(&out)
    );
    // Other keys still resolve through the whole chain.
    let out = env.run(&["secrets", "get", "s", "calm"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no secret s calm"));
}

#[test]
fn a_hung_plugin_check_times_out_and_the_doctor_finishes() {
    let mut env = TestEnv::new();
    env.install_plugin("ov_plugin_fixture", "libov_plugin_fixture.so");
    env.set_env("OV_FIXTURE_HANG", "1");
    let started = std::time::Instant::now();
    let out = env.run(&["doctor", "--timeout", "300"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("✗ fixture"), "{text}");
    assert!(text.contains("timed out after 300 ms"), "{text}");
    assert!(text.contains("✓ settings.parse"), "{text}");
}
