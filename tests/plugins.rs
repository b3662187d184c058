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
    // A real shared library that exports no entry symbol.
    let lib = env.plugin_dir().join("libov_plugin_plain.so");
    let marker = env.root().join("constructor-ran");
    constructor_library(&env, &lib, &marker);
    env.set_env("OV_PLUGIN_PATH", env.plugin_dir().display().to_string());
    let out = env.run(&["plugins", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = env.normalize(&stderr(&out));
    assert!(
        err.contains(
            "[TMP]/plugins/libov_plugin_plain.so is not an ov plugin: it exports no ov_plugin_entry_* symbol"
        ),
        "{err}"
    );
}

#[test]
fn doctor_list_probes_no_backend() {
    let mut env = TestEnv::new();
    env.install_plugin("ov_plugin_fixture", "libov_plugin_fixture.so");
    let marker = env.root().join("probed");
    env.set_env("OV_FIXTURE_PROBE_MARKER", marker.display().to_string());
    let out = env.run_stdin(&["secrets", "set", "svc", "k"], "v\n");
    assert!(out.status.success(), "{}", stderr(&out));
    fs::remove_file(&marker).ok();
    let list = env.ok(&["doctor", "--list"]);
    assert!(list.contains("backends.plaintext"), "{list}");
    assert!(list.contains("fixture.alive"), "{list}");
    assert!(!marker.exists(), "ov doctor --list probed the fixture");
    // Running the check does probe it: the marker works.
    env.run(&["doctor", "backends.plaintext"]);
    assert!(
        marker.exists(),
        "the plaintext check must probe the fixture"
    );
}

#[test]
fn a_renamed_plugin_still_loads() {
    let mut env = TestEnv::new();
    env.install_plugin("ov_plugin_fixture", "fixture-renamed.so");
    let list = env.normalize(&env.ok(&["plugins", "list"]));
    assert!(
        list.lines().any(|l| l.starts_with("fixture ")
            && l.contains("[TMP]/plugins/fixture-renamed.so")
            && l.ends_with("loaded")),
        "{list}"
    );
    // And it answers: its check runs through the library.
    let out = env.ok(&["doctor", "fixture.alive"]);
    assert!(out.contains("✓ fixture.alive"), "{out}");
}

#[test]
fn another_protocol_major_is_refused_with_both_versions() {
    let mut env = TestEnv::new();
    env.install_plugin("ov_plugin_fixture", "libov_plugin_fixture.so");
    env.set_env("OV_FIXTURE_PROTOCOL", "9.0");
    let out = env.run(&["plugins", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = env.normalize(&stderr(&out));
    assert!(
        err.contains(
            "ov: error: [TMP]/plugins/libov_plugin_fixture.so speaks plugin protocol v9.0, but this ov (v0.1.0) speaks plugin protocol v2.2"
        ),
        "{err}"
    );
    assert!(
        err.contains("hint: rm [TMP]/plugins/libov_plugin_fixture.so   # then install the plugin built for this ov version"),
        "{err}"
    );
    // A newer minor of the same major loads: it only adds.
    env.unset_env("OV_FIXTURE_PROTOCOL");
    env.set_env("OV_FIXTURE_PROTOCOL", "2.7");
    let list = env.ok(&["plugins", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("fixture ") && l.ends_with("loaded")),
        "{list}"
    );
}

#[test]
fn an_answer_from_a_newer_plugin_is_a_clear_error() {
    let mut env = TestEnv::new();
    env.install_plugin("ov_plugin_fixture", "libov_plugin_fixture.so");
    let out = env.run(&["secrets", "get", "s", "future-answer"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "ov: error: plugin fixture answered 'teleported', which this ov does not know: the plugin is newer than ov"
        ),
        "{err}"
    );
    assert!(err.contains("hint: ov plugins list"), "{err}");
    assert!(!err.contains("cannot read"), "{err}");
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

/// A shared library whose constructor writes `marker` the moment it is
/// loaded, built with the system C compiler.
fn constructor_library(env: &TestEnv, path: &std::path::Path, marker: &std::path::Path) {
    let src = env.root().join("evil.c");
    fs::write(
        &src,
        format!(
            "#include <stdio.h>\n__attribute__((constructor)) static void planted(void) {{\n\
             FILE *f = fopen(\"{}\", \"w\"); if (f) {{ fputs(\"ran\", f); fclose(f); }} }}\n",
            marker.display()
        ),
    )
    .expect("write the C source");
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(path)
        .arg(&src)
        .output()
        .expect("cc (Debian package gcc; ./scripts/test installs it)");
    assert!(out.status.success(), "{}", stderr(&out));
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown_nobody(path: &std::path::Path) {
    let out = std::process::Command::new("chown")
        .arg("nobody")
        .arg(path)
        .output()
        .expect("chown");
    assert!(out.status.success(), "chown needs root: {}", stderr(&out));
}

/// Run a hint's command line exactly as printed, through sh.
fn paste(hint: &str) {
    let cmd = hint.split("   #").next().unwrap_or(hint);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("sh");
    assert!(out.status.success(), "{cmd}: {}", stderr(&out));
}

fn hint_of(err: &str) -> String {
    err.lines()
        .find_map(|l| l.strip_prefix("hint: "))
        .unwrap_or_else(|| panic!("no hint in {err}"))
        .to_owned()
}

#[test]
fn a_constructor_in_a_plugin_anyone_could_write_never_runs() {
    let mut env = TestEnv::new();
    let marker = env.root().join("constructor-ran");
    let lib = env.plugin_dir().join("libov_plugin_evil.so");
    constructor_library(&env, &lib, &marker);
    env.set_env("OV_PLUGIN_PATH", env.plugin_dir().display().to_string());
    // Built here and loaded, the constructor runs: the marker works.
    env.run(&["plugins", "list"]);
    assert!(
        marker.exists(),
        "the fixture's constructor must write the marker"
    );
    fs::remove_file(&marker).unwrap();

    set_mode(&env.plugin_dir(), 0o777);
    let out = env.run(&["plugins", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = env.normalize(&stderr(&out));
    assert!(
        err.contains("refused to load plugin [TMP]/plugins/libov_plugin_evil.so: [TMP]/plugins is writable by its group and everyone (mode 777)"),
        "{err}"
    );
    let doctor = env.run(&["doctor", "plugins"]);
    assert!(
        stdout(&doctor).contains("✗ plugins.libov_plugin_evil"),
        "{}",
        stdout(&doctor)
    );
    assert!(
        stdout(&doctor).contains("refused to load plugin"),
        "{}",
        stdout(&doctor)
    );
    assert!(!marker.exists(), "a refused plugin's constructor ran");

    // Group-writable library in a safe directory, and one owned by someone else.
    set_mode(&env.plugin_dir(), 0o755);
    set_mode(&lib, 0o775);
    let out = env.run(&["plugins", "list"]);
    assert!(
        stderr(&out).contains("is writable by its group (mode 775)"),
        "{}",
        stderr(&out)
    );
    assert!(!marker.exists());
    set_mode(&lib, 0o755);
    chown_nobody(&lib);
    let out = env.run(&["plugins", "list"]);
    assert!(
        stderr(&out).contains("belongs to nobody, not to root or root"),
        "{}",
        stderr(&out)
    );
    assert!(!marker.exists());

    // A sticky world-writable directory: only a library of the user's own.
    set_mode(&env.plugin_dir(), 0o1777);
    let out = env.run(&["plugins", "list"]);
    assert!(
        stderr(&out).contains("belongs to nobody"),
        "{}",
        stderr(&out)
    );
    assert!(!marker.exists());
}

#[test]
fn the_fix_for_an_open_plugin_directory_pasted_makes_it_load() {
    let mut env = TestEnv::new();
    env.install_plugin("ov_plugin_config", "libov_plugin_config.so");
    set_mode(&env.plugin_dir(), 0o777);
    let out = env.run(&["plugins", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let hint = hint_of(&stderr(&out));
    assert!(hint.starts_with("chmod go-w "), "{hint}");
    paste(&hint);
    let list = env.normalize(&env.ok(&["plugins", "list"]));
    assert!(
        list.lines()
            .any(|l| l.contains("[TMP]/plugins/libov_plugin_config.so") && l.contains("loaded")),
        "{list}"
    );

    // The same for a group-writable library.
    set_mode(&env.plugin_dir().join("libov_plugin_config.so"), 0o664);
    let out = env.run(&["plugins", "list"]);
    let hint = hint_of(&stderr(&out));
    paste(&hint);
    env.ok(&["plugins", "list"]);
    // A sticky world-writable directory with the user's own library loads.
    set_mode(&env.plugin_dir(), 0o1777);
    env.ok(&["plugins", "list"]);
}
