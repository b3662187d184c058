//! `ov doctor` end to end.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{TestEnv, mode_of, stderr, stdout};

/// The JSON report with timings zeroed, for snapshots.
fn stable_json(env: &TestEnv, text: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(text).expect("doctor --json is JSON");
    for c in v["checks"].as_array_mut().expect("checks array") {
        c["duration_ms"] = 0.into();
    }
    env.normalize(&serde_json::to_string_pretty(&v).expect("re-encode"))
}

#[test]
fn healthy_fresh_setup_passes() {
    let env = TestEnv::new();
    let out = env.run(&["doctor"]);
    crate::snap!("doctor_fresh_human", env.transcript(&out));
    let out = env.run(&["doctor", "--json"]);
    assert!(out.status.success());
    crate::snap!("doctor_fresh_json", stable_json(&env, &stdout(&out)));
}

#[test]
fn broken_setup_fails_with_a_fix_for_every_problem() {
    let env = TestEnv::new();
    env.write(&env.credentials(), "[s]\nk = \"v\"\n", 0o644);
    env.write(
        &env.user_config(),
        "secret_backend = \"config\"\nsecrets_typo = 1\n",
        0o666,
    );
    let out = env.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    crate::snap!("doctor_broken_human", env.transcript(&out));
    let out = env.run(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json = stable_json(&env, &stdout(&out));
    crate::snap!("doctor_broken_json", json.clone());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for c in v["checks"].as_array().unwrap() {
        if c["status"] == "warn" || c["status"] == "fail" {
            assert!(c["fix"].is_string(), "no fix for {c}");
        }
    }
}

#[test]
fn fix_applies_safe_fixes_and_rechecks() {
    let env = TestEnv::new();
    env.write(&env.credentials(), "[s]\nk = \"v\"\n", 0o644);
    env.write(&env.user_config(), "", 0o666);
    let out = env.run(&["doctor", "--fix"]);
    assert!(out.status.success(), "{}", env.transcript(&out));
    assert_eq!(mode_of(&env.credentials()), 0o600);
    assert_eq!(mode_of(&env.user_config()), 0o644);
    let err = env.normalize(&common::stderr(&out));
    assert!(
        err.contains("fixed: chmod 600 [TMP]/config/ov/credentials.toml"),
        "{err}"
    );
    assert!(stdout(&out).contains("0 failed"));
}

#[test]
fn a_subset_runs_by_id_or_group() {
    let env = TestEnv::new();
    let text = stdout(&env.run(&["doctor", "settings"]));
    assert!(
        text.contains("settings.parse") && text.contains("settings.permissions"),
        "{text}"
    );
    assert!(!text.contains("plugins."), "{text}");
    let text = stdout(&env.run(&["doctor", "config.credentials_mode"]));
    assert!(text.contains("config.credentials_mode"), "{text}");
    assert!(!text.contains("settings."), "{text}");
}

/// Issue 15: the summary said `1 checks`.
#[test]
fn one_check_is_counted_as_one_check() {
    let env = TestEnv::new();
    let text = env.ok(&["doctor", "settings.parse"]);
    assert!(
        text.ends_with("\n1 check: 1 ok, 0 warnings, 0 failed, 0 skipped\n"),
        "{text}"
    );
}

#[test]
fn an_unknown_check_name_is_a_usage_error() {
    let env = TestEnv::new();
    let out = env.run(&["doctor", "nosuch"]);
    crate::snap!("doctor_unknown_check", env.transcript(&out));
}

#[test]
fn a_failed_prerequisite_skips_what_depends_on_it() {
    let env = TestEnv::new();
    env.write(&env.credentials(), "[s]\nk = \"v\"\n", 0o604);
    let text = stdout(&env.run(&["doctor", "config"]));
    assert!(text.contains("- config.credentials_parse"), "{text}");
}

/// A fresh environment with one machine key registered for myapp/production.
fn with_machine_key() -> TestEnv {
    let env = TestEnv::new();
    env.ok(&["settings", "set", "secret_backend", "config"]);
    let out = env.run_stdin(&["secrets", "set", "myapp/production", "API_KEY"], "v\n");
    assert!(out.status.success(), "{}", env.transcript(&out));
    let key = env.root().join("m.key").display().to_string();
    env.ok(&[
        "auth",
        "derive-machine-key",
        "--out",
        &key,
        "--app",
        "myapp",
        "--env",
        "production",
    ]);
    env
}

#[test]
fn list_names_every_check() {
    let env = TestEnv::new();
    let out = env.run(&["doctor", "--list"]);
    crate::snap!("doctor_list_fresh", env.transcript(&out));
    let text = stdout(&out);
    for id in [
        "settings.parse",
        "settings.permissions",
        "plugins.config",
        "backends.available",
        "config",
        "machine-key",
        "gpg.used",
        // Each backend's checks by id, declared without running them.
        "config.credentials_mode",
        "config.credentials_parse",
        "kdbx.kdf",
        "keyring.collection",
    ] {
        assert!(text.contains(id), "{id} missing from:\n{text}");
    }
}

/// Issue 16: a backend's check is selected by its id and runs alone.
#[test]
fn one_backend_check_is_selected_by_its_id() {
    let env = TestEnv::new();
    fs::create_dir_all(env.config_dir()).unwrap();
    let creds = env.config_dir().join("credentials.toml");
    fs::write(&creds, "[svc]\nKEY = \"v\"\n").unwrap();
    fs::set_permissions(&creds, fs::Permissions::from_mode(0o600)).unwrap();
    let out = env.run(&["doctor", "config.credentials_mode"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("✓ config.credentials_mode"), "{text}");
    assert!(!text.contains("config.credentials_parse"), "{text}");
    assert!(!text.contains("keyring."), "{text}");
    // A check shows the one it depends on, as before.
    let text = env.ok(&["doctor", "config.credentials_parse"]);
    assert!(text.contains("✓ config.credentials_parse"), "{text}");
    assert!(text.contains("1 entry stored in plaintext"), "{text}");
    assert!(text.contains("✓ config.credentials_mode"), "{text}");
    // Listed one by one, a check nobody declared is unknown.
    let out = env.run(&["doctor", "config.no_such_check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no check or group named 'config.no_such_check'"),
        "{}",
        stderr(&out)
    );
}

/// Issue 15: `--list` did not know `machine-key`, and refused `--json`.
#[test]
fn list_names_machine_key_checks_in_text_and_json() {
    let env = with_machine_key();
    let text = env.ok(&["doctor", "--list"]);
    for id in [
        "machine-key",
        "machine-key.myapp.production.file",
        "machine-key.myapp.production.bundle",
    ] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(id)),
            "{id} missing from:\n{text}"
        );
    }
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["doctor", "--list", "--json"]))
        .expect("--list --json is JSON");
    assert_eq!(json["schema_version"], 1);
    let groups = json["groups"].as_array().expect("groups");
    let mk = groups
        .iter()
        .find(|g| g["id"] == "machine-key")
        .unwrap_or_else(|| panic!("no machine-key group in {json}"));
    let ids: Vec<&str> = mk["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "machine-key.myapp.production.file",
            "machine-key.myapp.production.bundle"
        ]
    );
    for g in groups {
        for c in g["checks"].as_array().unwrap() {
            assert!(c["title"].is_string() && c["depends_on"].is_array(), "{c}");
        }
    }
    // The listed ids are the ones a run reports.
    let run: serde_json::Value =
        serde_json::from_str(&stdout(&env.run(&["doctor", "--json", "machine-key"]))).unwrap();
    let ran: Vec<&str> = run["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .filter(|id| id.starts_with("machine-key"))
        .collect();
    assert_eq!(ran, ids);
}

#[test]
fn machine_key_group_runs_on_a_fresh_setup() {
    let env = TestEnv::new();
    let out = env.run(&["doctor", "machine-key"]);
    assert!(out.status.success(), "{}", env.transcript(&out));
    assert!(
        stdout(&out).contains("- machine-key  no machine keys registered"),
        "{}",
        stdout(&out)
    );
    let out = env.run(&["doctor", "--list", "nosuch"]);
    assert_eq!(out.status.code(), Some(2), "{}", env.transcript(&out));
    assert!(common::stderr(&out).contains("hint: ov doctor --list"));
}

/// Issue 15: findings ran past the terminal's edge, and a fix wrapped
/// to the width no longer pasted as one command.
#[test]
fn with_columns_60_every_human_line_fits_and_every_fix_is_whole() {
    let mut env = TestEnv::new();
    env.write(&env.credentials(), "[s]\nk = \"v\"\n", 0o644);
    env.write(
        &env.user_config(),
        "secret_backend = \"config\"\nsecrets_typo = 1\n",
        0o666,
    );
    // The fixes as scripts read them: each is one whole command.
    let json = stdout(&env.run(&["doctor", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).expect("doctor --json");
    let fixes: Vec<String> = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["fix"].as_str().map(|f| format!("fix: {f}")))
        .collect();
    assert!(!fixes.is_empty(), "{json}");
    env.set_env("COLUMNS", "60");
    for args in [&["doctor"][..], &["doctor", "--list"], &["doctor", "--fix"]] {
        let out = env.run(args);
        let text = stdout(&out);
        assert!(text.lines().count() > 5, "{args:?}: {text}");
        if args == ["doctor"] {
            // A fix is never broken across lines, so it pastes whole.
            for fix in &fixes {
                assert!(text.lines().any(|l| l.trim() == fix), "{fix} in\n{text}");
            }
        }
        for line in text
            .lines()
            .filter(|l| !fixes.iter().any(|f| l.trim() == f))
        {
            assert!(
                console::measure_text_width(line) <= 60,
                "{args:?}: {} columns: {line:?}\n{text}",
                console::measure_text_width(line)
            );
        }
    }
    // A COLUMNS that is not a number is ignored, not a crash.
    env.unset_env("COLUMNS");
    env.set_env("COLUMNS", "wide");
    let out = env.run(&["doctor"]);
    assert!(out.status.success(), "{}", env.transcript(&out));
    assert!(common::stderr(&out).is_empty(), "{}", env.transcript(&out));
}

#[test]
fn no_color_and_pipes_get_plain_text() {
    let env = TestEnv::new();
    let text = stdout(&env.run(&["doctor"]));
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in piped output: {text:?}"
    );
}

#[test]
fn doctor_and_store_error_give_the_same_fix() {
    let env = TestEnv::new();
    env.write(&env.credentials(), "[s]\nk = \"v\"\n", 0o640);
    let out = env.run(&["doctor", "--json", "config"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let fix = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "config.credentials_mode")
        .and_then(|c| c["fix"].as_str())
        .unwrap()
        .to_owned();
    let err = common::stderr(&env.run(&["secrets", "get", "s", "k"]));
    assert!(
        err.contains(&format!("hint: {fix}\n")),
        "doctor says {fix:?}, the error says:\n{err}"
    );
}

/// The check's status and fix from `ov doctor ID --json`.
fn check(env: &TestEnv, id: &str) -> (String, Option<String>, String) {
    let out = env.run(&["doctor", id, "--json"]);
    let c = TestEnv::check_in(&stdout(&out), id);
    assert!(!c.is_null(), "no check {id} in {}", stdout(&out));
    (
        c["status"].as_str().unwrap_or_default().to_owned(),
        c["fix"].as_str().map(str::to_owned),
        c["finding"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Run a fix exactly as the doctor printed it.
fn paste(env: &TestEnv, fix: &str) {
    let out = env.paste(fix);
    assert!(out.status.success(), "{fix}: {}", common::stderr(&out));
}

#[test]
fn plaintext_writes_warn_and_the_pasted_fix_moves_them_to_an_encrypted_backend() {
    let mut env = TestEnv::new();
    env.set_env("OV_KDBX_PASSWORD", "doctor-pw");
    let (status, fix, finding) = check(&env, "backends.available");
    assert_eq!(status, "warn", "{finding}");
    assert!(
        finding.contains("writes go to config (plaintext)"),
        "{finding}"
    );
    assert_eq!(fix.as_deref(), Some("ov secrets init"));
    paste(&env, &fix.unwrap_or_default());
    let (status, fix, finding) = check(&env, "backends.available");
    assert_eq!(status, "ok", "{finding}");
    assert!(finding.contains("writes go to kdbx"), "{finding}");
    assert_eq!(fix, None);
}

#[test]
fn forced_plaintext_and_a_forced_missing_backend_get_fixes_that_work() {
    let mut env = TestEnv::new();
    env.set_env("OV_KDBX_PASSWORD", "doctor-pw");
    env.ok(&["settings", "set", "secret_backend", "config"]);
    let (status, fix, _) = check(&env, "backends.available");
    assert_eq!(status, "warn");
    let fix = fix.expect("a fix");
    assert_eq!(
        fix,
        "ov secrets init && ov settings set secret_backend auto"
    );
    paste(&env, &fix);
    assert_eq!(check(&env, "backends.available").0, "ok");

    // Forced to kdbx with no database: that backend's fix, not `auto`
    // (which would quietly mean plaintext here).
    let mut env = TestEnv::new();
    env.set_env("OV_KDBX_PASSWORD", "doctor-pw");
    env.ok(&["settings", "set", "secret_backend", "kdbx"]);
    let (status, fix, finding) = check(&env, "backends.available");
    assert_eq!(status, "fail", "{finding}");
    let fix = fix.expect("a fix");
    assert!(fix.starts_with("ov secrets init"), "{fix}");
    paste(&env, &fix);
    let (status, _, finding) = check(&env, "backends.available");
    assert_eq!(status, "ok", "{finding}");
}

#[test]
fn a_locked_database_is_the_normal_state_not_a_warning() {
    let mut env = TestEnv::new();
    env.set_env("OV_KDBX_PASSWORD", "doctor-pw");
    env.ok(&["secrets", "init"]);
    env.unset_env("OV_KDBX_PASSWORD");
    let (status, _, finding) = check(&env, "kdbx.unlock");
    assert_eq!(status, "skip", "{finding}");
    assert!(
        finding.contains("locked, as a database at rest normally is"),
        "{finding}"
    );
}

#[test]
fn a_database_path_that_is_a_directory_or_a_symlink_loop_is_named_as_such() {
    let env = TestEnv::new();
    let dir = env.root().join("vaults");
    std::fs::create_dir(&dir).unwrap();
    env.ok(&[
        "settings",
        "set",
        "secrets.kdbx_path",
        &dir.display().to_string(),
    ]);
    let (status, fix, finding) = check(&env, "kdbx.database");
    assert_eq!(status, "fail", "{finding}");
    assert!(finding.ends_with("vaults is a directory"), "{finding}");
    let fix = fix.expect("a fix");
    paste(&env, &fix);
    let (status, _, finding) = check(&env, "kdbx.database");
    assert_eq!(status, "ok", "{finding}");
    assert!(finding.contains("vaults/secrets.kdbx"), "{finding}");

    let looped = env.root().join("loop.kdbx");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    env.ok(&[
        "settings",
        "set",
        "secrets.kdbx_path",
        &looped.display().to_string(),
    ]);
    let (status, fix, finding) = check(&env, "kdbx.database");
    assert_eq!(status, "fail", "{finding}");
    assert!(
        finding.ends_with("loop.kdbx is a symlink loop"),
        "{finding}"
    );
    paste(&env, &fix.expect("a fix"));
    assert_eq!(check(&env, "kdbx.database").0, "ok");
}

#[test]
fn a_corrupt_machine_key_registry_fails_with_the_file_and_line() {
    let env = TestEnv::new();
    let reg = env.config_dir().join("machine-keys.json");
    env.write(
        &reg,
        "{\n  \"keys\": [\n    {\"app\": \"myapp\",,}\n  ]\n}\n",
        0o600,
    );
    let out = env.run(&["doctor", "machine-key"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = env.normalize(&stdout(&out));
    assert!(text.contains("✗ machine-key "), "{text}");
    assert!(
        text.contains("[TMP]/config/ov/machine-keys.json is not valid"),
        "{text}"
    );
    assert!(text.contains("line 3"), "{text}");
    // The whole doctor is not green either.
    assert_eq!(env.run(&["doctor"]).status.code(), Some(1));
}

/// Every fix the broken setup's report prints, pasted one after another
/// exactly as printed: the check it belonged to then passes. (Moving to an
/// encrypted backend makes `backends.plaintext` speak up about the entry
/// left in config; its own fix is pasted in tests/import.rs.)
#[test]
fn every_fix_of_a_broken_setup_pasted_makes_its_check_pass() {
    let mut env = TestEnv::new();
    env.set_env("OV_KDBX_PASSWORD", "doctor-pw");
    env.write(&env.credentials(), "[s]\nk = \"v\"\n", 0o644);
    env.write(
        &env.user_config(),
        "secret_backend = \"config\"\nsecrets_typo = 1\n",
        0o666,
    );
    let out = env.run(&["doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let broken: Vec<(String, String)> = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] == "warn" || c["status"] == "fail")
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_owned(),
                c["fix"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(broken.len() >= 4, "{broken:?}");
    for (id, fix) in &broken {
        assert!(!fix.is_empty(), "{id} has no fix");
        paste(&env, fix);
        let (status, _, finding) = check(&env, id);
        assert!(
            status == "ok" || status == "skip",
            "{id} after `{fix}`: {status} {finding}"
        );
    }
}

/// Fixes that open the file in the user's editor work when pasted: with
/// `EDITOR` set to a program that repairs the file (as the user would by
/// hand), the check passes.
#[test]
fn the_edit_fix_for_unparsable_credentials_opens_that_file() {
    let mut env = TestEnv::new();
    env.write(&env.credentials(), "[\"svc\"]\nk = \"unterminated\n", 0o600);
    let (status, fix, finding) = check(&env, "config.credentials_parse");
    assert_eq!(status, "fail", "{finding}");
    let fix = fix.expect("a fix");
    assert!(fix.starts_with("${EDITOR:-vi} "), "{fix}");
    // The "editor" writes back what the user meant.
    let editor = env.root().join("fix-it");
    env.write(
        &editor,
        "#!/bin/sh\nprintf '[\"svc\"]\\nk = \"terminated\"\\n' > \"$1\"\n",
        0o755,
    );
    env.set_env("EDITOR", editor.display().to_string());
    paste(&env, &fix);
    let (status, _, finding) = check(&env, "config.credentials_parse");
    assert_eq!(status, "ok", "{finding}");
}

#[test]
fn the_permissions_fix_for_a_database_pasted_makes_it_private() {
    let mut env = TestEnv::new();
    env.set_env("OV_KDBX_PASSWORD", "doctor-pw");
    env.ok(&["secrets", "init"]);
    let db = env.config_dir().join("secrets.kdbx");
    std::fs::set_permissions(&db, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (status, fix, finding) = check(&env, "kdbx.permissions");
    assert_ne!(status, "ok", "{finding}");
    paste(&env, &fix.expect("a fix"));
    assert_eq!(check(&env, "kdbx.permissions").0, "ok");
    assert_eq!(mode_of(&db), 0o600);
}
