//! `ov init` on the machines users have: a headless server with plaintext
//! entries, a desktop with a Secret Service, and again once set up.

mod common;

use common::secret_service::SecretService;
use common::{TestEnv, stderr, stdout};

const PW: &str = "init-test-pw";

fn with_plaintext() -> TestEnv {
    let env = TestEnv::new();
    env.run_stdin(&["secrets", "set", "myapp/prod", "DB"], "db-value\n");
    env.run_stdin(&["secrets", "set", "ov/api-key", "x"], "api-value\n");
    env
}

#[test]
fn on_a_headless_server_it_reports_then_creates_a_database_and_moves_plaintext_in() {
    let mut env = with_plaintext();
    let creds = std::fs::read_to_string(env.credentials()).unwrap();
    // No terminal, no --yes: a report, and nothing changed.
    let out = env.run(&["init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("2 entries in plaintext"), "{text}");
    assert!(
        text.contains("Plan: keep secrets in kdbx.\n  ov secrets init\n  ov secrets import --from config --move\n"),
        "{text}"
    );
    assert!(
        text.contains("Nothing was changed. To do it: ov init --yes"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(env.credentials()).unwrap(), creds);

    env.set_env("OV_KDBX_PASSWORD", PW);
    let out = env.run(&["init", "--yes"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("Done: writes go to kdbx."),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        env.ok(&["secrets", "get", "myapp/prod", "DB"]),
        "db-value\n"
    );
    let which = env.ok(&["secrets", "which", "ov/api-key", "x", "--json"]);
    assert!(which.contains("\"backend\": \"kdbx\""), "{which}");
    let left = std::fs::read_to_string(env.credentials()).unwrap_or_default();
    assert!(
        !left.contains("db-value") && !left.contains("api-value"),
        "{left}"
    );

    // Again: nothing to do.
    let out = env.run(&["init"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("ov is set up: writes go to kdbx, and nothing is left in plaintext."),
        "{}",
        stdout(&out)
    );
}

#[test]
fn on_a_desktop_it_picks_the_keyring_and_moves_plaintext_there() {
    let mut env = with_plaintext();
    let ss = SecretService::start(&mut env);
    let out = env.run(&["init", "--yes"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Plan: keep secrets in keyring.\n  ov secrets import --from config --move\n"),
        "{text}"
    );
    assert_eq!(
        ss.lookup(&["service", "myapp/prod", "username", "DB"]),
        Some(b"db-value".to_vec())
    );
    assert_eq!(
        env.ok(&["secrets", "get", "myapp/prod", "DB"]),
        "db-value\n"
    );
}

#[test]
fn a_plaintext_or_unknown_backend_is_refused() {
    let env = TestEnv::new();
    for (b, says) in [
        ("config", "cannot hold secrets safely"),
        ("nope", "no backend named"),
    ] {
        let out = env.run(&["init", "--backend", b]);
        assert_eq!(out.status.code(), Some(2), "{b}");
        assert!(stderr(&out).contains(says), "{b}: {}", stderr(&out));
    }
}

#[test]
fn a_failed_step_stops_and_says_what_is_left() {
    let env = with_plaintext();
    // --yes but no password and no terminal: the database cannot be made.
    let out = env.run(&["init", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("ov: error: `ov secrets init` failed"), "{err}");
    assert!(
        err.contains("hint: ov secrets import --from config --move   # then"),
        "{err}"
    );
    assert_eq!(
        env.ok(&["secrets", "get", "myapp/prod", "DB"]),
        "db-value\n"
    );
}

#[test]
fn on_a_terminal_it_asks_and_no_changes_nothing() {
    let env = with_plaintext();
    let creds = std::fs::read_to_string(env.credentials()).unwrap();
    let out = common::paste_on_tty(
        &env,
        "ov init",
        "expect \"Do it?\"\nsend \"n\\r\"\nexpect \"Nothing was changed.\"",
    );
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(std::fs::read_to_string(env.credentials()).unwrap(), creds);
    assert!(!env.config_dir().join("secrets.kdbx").exists());
}
