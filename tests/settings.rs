//! `ov settings …` and how settings files are read.

mod common;

use std::fs;

use common::{TestEnv, stderr};

#[test]
fn set_get_unset_round_trip_with_types() {
    let env = TestEnv::new();
    assert_eq!(env.ok(&["settings", "get", "secrets.kdbx_cache"]), "true\n");
    assert_eq!(
        env.ok(&["settings", "get", "secrets.kdbx_cache_timeout"]),
        "3600\n"
    );
    env.ok(&["settings", "set", "secrets.kdbx_cache", "false"]);
    env.ok(&["settings", "set", "secrets.kdbx_cache_timeout", "7200"]);
    env.ok(&["settings", "set", "secret_backend", "config"]);
    assert_eq!(
        env.ok(&["settings", "get", "secrets.kdbx_cache"]),
        "false\n"
    );
    let text = fs::read_to_string(env.user_config()).unwrap();
    assert!(text.contains("kdbx_cache = false"), "{text}");
    assert!(text.contains("kdbx_cache_timeout = 7200"), "{text}");
    assert!(text.contains("secret_backend = \"config\""), "{text}");
    env.ok(&["settings", "unset", "secrets.kdbx_cache"]);
    assert_eq!(env.ok(&["settings", "get", "secrets.kdbx_cache"]), "true\n");
}

#[test]
fn comments_the_user_wrote_survive_a_set() {
    let env = TestEnv::new();
    let original = "# my ov settings\n\
                    secret_backend = \"auto\" # keep auto on the laptop\n\n\
                    [secrets]\n\
                    # the shared vault\n\
                    kdbx_path = \"/srv/vault.kdbx\"\n";
    env.write(&env.user_config(), original, 0o644);
    env.ok(&["settings", "set", "secret_backend", "config"]);
    env.ok(&["settings", "set", "secrets.kdbx_cache_timeout", "60"]);
    let text = fs::read_to_string(env.user_config()).unwrap();
    crate::snap!("settings_comments_survive", text);
    assert_eq!(common::mode_of(&env.user_config()), 0o644, "mode is kept");
}

#[test]
fn system_defaults_sit_under_the_users_file() {
    let env = TestEnv::new();
    env.write(
        &env.system_config(),
        "secret_backend = \"config\"\n[secrets]\nkdbx_cache_timeout = 10\n",
        0o644,
    );
    env.write(
        &env.user_config(),
        "[secrets]\nkdbx_cache_timeout = 20\n",
        0o600,
    );
    assert_eq!(env.ok(&["settings", "get", "secret_backend"]), "config\n");
    assert_eq!(
        env.ok(&["settings", "get", "secrets.kdbx_cache_timeout"]),
        "20\n"
    );
    let list = env.normalize(&env.ok(&["settings", "list"]));
    crate::snap!("settings_list_layered", list);
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["settings", "list", "--json"])).unwrap();
    let row = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "secret_backend")
        .unwrap();
    assert_eq!(row["value"], "config");
    assert_eq!(row["origin"]["kind"], "system");
}

#[test]
fn unknown_setting_is_refused_with_the_valid_keys() {
    let env = TestEnv::new();
    let out = env.run(&["settings", "set", "secret_backnd", "kdbx"]);
    crate::snap!("settings_unknown_key", env.transcript(&out));
    assert!(!env.user_config().exists());
}

#[test]
fn wrong_typed_values_are_refused() {
    let env = TestEnv::new();
    for (key, value) in [
        ("secrets.kdbx_cache", "maybe"),
        ("secrets.kdbx_cache_timeout", "-5"),
        ("secrets.kdbx_cache_timeout", "1h"),
        ("secret_backend", "vault"),
    ] {
        let out = env.run(&["settings", "set", key, value]);
        assert_eq!(out.status.code(), Some(2), "{key}={value}");
        assert!(
            stderr(&out).contains("is not a valid value"),
            "{}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("hint: ov settings set"),
            "{}",
            stderr(&out)
        );
    }
    let out = env.run(&["settings", "set", "secret_backend", "vault"]);
    crate::snap!("settings_wrong_type", env.transcript(&out));
    assert!(!env.user_config().exists());
}

#[test]
fn malformed_config_names_file_and_line_and_is_not_overwritten() {
    let env = TestEnv::new();
    let text = "secret_backend = \"config\"\n[secrets\nkdbx_cache = true\n";
    env.write(&env.user_config(), text, 0o600);
    let out = env.run(&["settings", "set", "secrets.kdbx_cache", "false"]);
    crate::snap!("settings_malformed", env.transcript(&out));
    assert_eq!(fs::read_to_string(env.user_config()).unwrap(), text);
    // Store commands refuse to guess too.
    let out = env.run(&["secrets", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("config.toml:2"), "{}", stderr(&out));
}

#[test]
fn wrong_type_inside_the_file_is_an_error_naming_the_file() {
    let env = TestEnv::new();
    env.write(
        &env.user_config(),
        "[secrets]\nkdbx_cache = \"yes\"\n",
        0o600,
    );
    let out = env.run(&["settings", "get", "secrets.kdbx_cache"]);
    assert_eq!(out.status.code(), Some(1));
    let err = env.normalize(&stderr(&out));
    assert!(err.contains("[TMP]/config/ov/config.toml: secrets.kdbx_cache = \"yes\" is not valid: expected true or false"), "{err}");
}

#[test]
fn forced_backend_that_is_missing_is_an_error_with_fixes() {
    let env = TestEnv::new();
    env.ok(&["settings", "set", "secret_backend", "kdbx"]);
    let out = env.run_stdin(&["secrets", "set", "s", "k"], "v\n");
    crate::snap!("forced_backend_missing", env.transcript(&out));
}

#[test]
fn a_relative_path_is_stored_absolute() {
    let env = TestEnv::new();
    let sub = env.root().join("project");
    fs::create_dir_all(&sub).unwrap();
    let out = env
        .ov(&["settings", "set", "secrets.kdbx_path", "rel.kdbx"])
        .current_dir(&sub)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let want = format!("{}\n", sub.join("rel.kdbx").display());
    // Read back from elsewhere: the same database.
    assert_eq!(env.ok(&["settings", "get", "secrets.kdbx_path"]), want);
    assert_eq!(env.ok(&["secrets", "path"]), want);
    // ~/ stays as typed: it does not depend on the directory either.
    env.ok(&["settings", "set", "secrets.kdbx_path", "~/vault.kdbx"]);
    assert_eq!(
        env.ok(&["secrets", "path"]),
        format!("{}\n", env.home().join("vault.kdbx").display())
    );
    // A relative path written into the file by hand is refused with the file named.
    env.write(
        &env.user_config(),
        "[secrets]\nkdbx_path = \"rel.kdbx\"\n",
        0o600,
    );
    let out = env.run(&["secrets", "path"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("kdbx_path = \"rel.kdbx\" is not valid: expected an absolute file path"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_cache_timeout_is_bounded_by_what_the_kernel_keeps() {
    let env = TestEnv::new();
    for bad in ["4294967296", "4294967297", "0", "99999999999999999999"] {
        let out = env.run(&["settings", "set", "secrets.kdbx_cache_timeout", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("from 1 to 4294967295"),
            "{}",
            stderr(&out)
        );
    }
    env.ok(&[
        "settings",
        "set",
        "secrets.kdbx_cache_timeout",
        "4294967295",
    ]);
    assert_eq!(
        env.ok(&["settings", "get", "secrets.kdbx_cache_timeout"]),
        "4294967295\n"
    );
    env.write(
        &env.user_config(),
        "[secrets]\nkdbx_cache_timeout = 4294967296\n",
        0o600,
    );
    let out = env.run(&["settings", "get", "secrets.kdbx_cache_timeout"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}
