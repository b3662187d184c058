//! Completion that knows the store, through the real shells: bash's and
//! zsh's completion functions as `ov completions SHELL` registers them,
//! called the way each shell calls them on TAB, and fish's own
//! `complete -C`.

mod common;

use std::process::Command;

use common::{TestEnv, stderr, stdout, target_dir};

fn store() -> TestEnv {
    let env = TestEnv::new();
    env.run_stdin(
        &["secrets", "set", "myapp/prod", "DB_PASSWORD"],
        "value-never-shown\n",
    );
    env.run_stdin(
        &["secrets", "set", "myapp/prod", "API_KEY"],
        "value-never-shown\n",
    );
    env.run_stdin(
        &["secrets", "set", "ov/api-key", "openrouter"],
        "value-never-shown\n",
    );
    env.write(
        &env.root().join("ov-secrets.toml"),
        "[secrets.SESSION_SECRET]\ntype = \"hex:32\"\nstacks = [\"web\"]\n",
        0o644,
    );
    env
}

fn shell(env: &TestEnv, program: &str, script: &str, words: &[&str]) -> Vec<String> {
    let path = format!(
        "{}:{}",
        target_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(program)
        .arg("-c")
        .arg(script)
        // bash's and zsh's first word after the script is $0; fish has none.
        .args((program != "fish").then_some(program))
        .args(words)
        .envs(
            env.command(&[])
                .get_envs()
                .filter_map(|(k, v)| Some((k, v?))),
        )
        .env("PATH", path)
        .current_dir(env.root())
        .output()
        .unwrap_or_else(|e| panic!("{program} (./scripts/test installs it): {e}"));
    assert!(out.status.success(), "{program}: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        !text.contains("value-never-shown"),
        "a value was offered: {text}"
    );
    text.lines()
        .map(|l| l.split('\t').next().unwrap_or("").to_owned())
        .filter(|w| !w.starts_with('-'))
        .collect()
}

/// What bash offers for the last word of `words`.
fn bash(env: &TestEnv, words: &[&str]) -> Vec<String> {
    shell(
        env,
        "bash",
        r#"source <(ov completions bash)
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_TYPE=9
_clap_complete_ov ov "${@: -1}" "${@: -2:1}"
printf '%s\n' "${COMPREPLY[@]}""#,
        words,
    )
}

/// What zsh offers for the last word of `words`: the registered function
/// run by the real zsh with `words` and `CURRENT` as its completion system
/// sets them, `_describe` printing what it is handed.
fn zsh(env: &TestEnv, words: &[&str]) -> Vec<String> {
    shell(
        env,
        "zsh",
        r#"compdef() { :; }; _describe() { print -l -- "${(@P)3}"; }
source <(ov completions zsh)
words=("$@"); CURRENT=$#
_clap_dynamic_completer_ov"#,
        words,
    )
    .into_iter()
    .map(|l| l.split(':').next().unwrap_or("").to_owned())
    .collect()
}

/// What fish offers for the line `line`.
fn fish(env: &TestEnv, line: &str) -> Vec<String> {
    shell(
        env,
        "fish",
        "ov completions fish | source; complete -C $argv[1]",
        &[line],
    )
}

#[test]
fn bash_completes_services_keys_apps_checks_settings_and_manifest_names() {
    let env = store();
    assert_eq!(
        bash(&env, &["ov", "secrets", "get", ""]),
        ["myapp/prod", "ov/api-key"]
    );
    assert_eq!(
        bash(&env, &["ov", "secrets", "get", "myapp/prod", ""]),
        ["API_KEY", "DB_PASSWORD"]
    );
    assert_eq!(
        bash(&env, &["ov", "secrets", "delete", "ov/api-key", ""]),
        ["openrouter"]
    );
    assert_eq!(bash(&env, &["ov", "run", "--app", ""]), ["myapp", "ov"]);
    assert_eq!(
        bash(&env, &["ov", "run", "--app", "myapp", "--env", ""]),
        ["prod"]
    );
    assert!(
        bash(&env, &["ov", "doctor", "config"]).contains(&"config.credentials_mode".to_owned())
    );
    let keys = bash(&env, &["ov", "settings", "set", ""]);
    assert!(keys.contains(&"secret_backend".to_owned()), "{keys:?}");
    let values = bash(&env, &["ov", "settings", "set", "secret_backend", ""]);
    for b in ["auto", "kdbx", "config"] {
        assert!(values.contains(&b.to_owned()), "{values:?}");
    }
    assert_eq!(
        bash(&env, &["ov", "manifest", "get", ""]),
        ["SESSION_SECRET"]
    );
    assert!(bash(&env, &["ov", "init", "--backend", ""]).contains(&"kdbx".to_owned()));
    assert_eq!(bash(&env, &["ov", "sec"]), ["secrets"]);
}

#[test]
fn zsh_completes_from_the_same_store() {
    let env = store();
    assert_eq!(
        zsh(&env, &["ov", "secrets", "get", ""]),
        ["myapp/prod", "ov/api-key"]
    );
    assert_eq!(
        zsh(&env, &["ov", "secrets", "get", "myapp/prod", ""]),
        ["API_KEY", "DB_PASSWORD"]
    );
    assert_eq!(
        zsh(&env, &["ov", "manifest", "set", ""]),
        ["SESSION_SECRET"]
    );
}

#[test]
fn fish_completes_from_the_same_store() {
    let env = store();
    assert_eq!(fish(&env, "ov secrets get "), ["myapp/prod", "ov/api-key"]);
    assert_eq!(
        fish(&env, "ov secrets which myapp/prod "),
        ["API_KEY", "DB_PASSWORD"]
    );
    assert_eq!(fish(&env, "ov manifest rotate "), ["SESSION_SECRET"]);
}
