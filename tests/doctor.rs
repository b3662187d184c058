//! `ov doctor` end to end.

mod common;

use common::{TestEnv, mode_of, stdout};

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

#[test]
fn list_names_every_check() {
    let env = TestEnv::new();
    let text = env.ok(&["doctor", "--list"]);
    for id in [
        "settings.parse",
        "settings.permissions",
        "plugins.config",
        "backends.available",
        "config",
    ] {
        assert!(text.contains(id), "{id} missing from:\n{text}");
    }
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
