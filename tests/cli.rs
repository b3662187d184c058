//! Help text, usage errors and exit codes.

mod common;

use common::{TestEnv, stderr};

#[test]
fn help_text() {
    let env = TestEnv::new();
    crate::snap!("help_ov", env.ok(&["--help"]));
    crate::snap!("help_secrets", env.ok(&["secrets", "--help"]));
    crate::snap!("help_doctor", env.ok(&["doctor", "--help"]));
    crate::snap!("help_settings", env.ok(&["settings", "--help"]));
}

#[test]
fn version_prints_and_exits_zero() {
    let env = TestEnv::new();
    assert_eq!(
        env.ok(&["--version"]),
        format!("ov {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn no_arguments_shows_help_and_exits_2() {
    let env = TestEnv::new();
    let out = env.run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Usage: ov"));
}

#[test]
fn usage_errors_exit_2_in_ov_style() {
    let env = TestEnv::new();
    let out = env.run(&["secrets", "frobnicate"]);
    crate::snap!("usage_unknown_subcommand", env.transcript(&out));
    let out = env.run(&["doctor", "--timeout", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = env.run(&["secrets", "set", "s", "k", "v", "--generate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn secret_is_an_alias_of_secrets() {
    let env = TestEnv::new();
    env.run_stdin(&["secret", "set", "s", "k"], "v\n");
    assert_eq!(env.ok(&["secret", "get", "s", "k"]), "v\n");
}
