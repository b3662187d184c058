//! `ov secrets …` against the real binary, env and config backends.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{TestEnv, mode_of, stderr, stdout};

#[test]
fn set_get_list_delete_round_trip() {
    let env = TestEnv::new();
    env.run_stdin(&["secrets", "set", "ov/vnc", "my-image"], "s3cret\n");
    assert_eq!(
        env.ok(&["secrets", "get", "ov/vnc", "my-image"]),
        "s3cret\n"
    );
    env.run_stdin(&["secret", "set", "ov/api-key", "openrouter"], "sk-or-x\n");
    assert_eq!(
        env.ok(&["secrets", "list"]),
        "ov/api-key/openrouter\nov/vnc/my-image\n"
    );
    assert_eq!(env.ok(&["secrets", "list", "ov/vnc"]), "ov/vnc/my-image\n");
    assert_eq!(env.ok(&["secrets", "list", "ov"]).lines().count(), 2);
    assert_eq!(mode_of(&env.credentials()), 0o600);

    let out = env.run(&["secrets", "delete", "ov/vnc", "my-image"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("deleted ov/vnc my-image from config"));
    let out = env.run(&["secrets", "get", "ov/vnc", "my-image"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
}

#[test]
fn an_inline_value_is_hidden_from_ps_while_ov_runs() {
    let env = TestEnv::new();
    let value = "inline-value-ps-must-not-show";
    let shown =
        common::cmdline_while_blocked(&env, &["secrets", "set", "ov/secret", "PASSWORD", value]);
    assert!(!shown.contains(value), "{shown}");
    assert!(
        shown.contains(&format!(
            "secrets set ov/secret PASSWORD {}",
            "x".repeat(value.len())
        )),
        "{shown}"
    );
}

#[test]
fn inline_value_works_and_warns_about_argv() {
    let env = TestEnv::new();
    let out = env.run(&["secrets", "set", "ov/secret", "WEBUI_ADMIN_PASSWORD", "pw"]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.contains("visible in ps until ov hid it"), "{err}");
    // The plaintext warning comes once per command.
    assert_eq!(err.matches("plaintext").count(), 1, "{err}");
    assert_eq!(
        env.ok(&["secrets", "get", "ov/secret", "WEBUI_ADMIN_PASSWORD"]),
        "pw\n"
    );
}

#[test]
fn stdin_value_keeps_inner_spaces_and_drops_the_line_ending() {
    let env = TestEnv::new();
    env.run_stdin(&["secrets", "set", "s", "k"], "  two words \r\n");
    assert_eq!(env.ok(&["secrets", "get", "s", "k"]), "  two words \n");
}

#[test]
fn generate_prints_32_hex_chars_and_stores_them() {
    let env = TestEnv::new();
    let printed = env.ok(&["secrets", "set", "ov/vnc", "pw", "--generate"]);
    let value = printed.trim_end();
    assert_eq!(value.len(), 32);
    assert!(value.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        env.ok(&["secrets", "get", "ov/vnc", "pw"]).trim_end(),
        value
    );
}

#[test]
fn environment_wins_over_config_and_which_says_so() {
    let mut env = TestEnv::new();
    env.run_stdin(&["secrets", "set", "ov/vnc", "password"], "from-file\n");
    let which = env.ok(&["secrets", "which", "ov/vnc", "password"]);
    assert_eq!(
        env.normalize(&which),
        "config\t[TMP]/config/ov/credentials.toml\n"
    );

    env.set_env("OV_VNC_PASSWORD", "from-env");
    assert_eq!(
        env.ok(&["secrets", "get", "ov/vnc", "password"]),
        "from-env\n"
    );
    assert_eq!(
        env.ok(&["secrets", "which", "ov/vnc", "password"]),
        "env\t$OV_VNC_PASSWORD\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["secrets", "which", "ov/vnc", "password", "--json"]))
            .unwrap();
    assert_eq!(json["backend"], "env");
    // `which` never prints the value.
    assert!(
        !env.ok(&["secrets", "which", "ov/vnc", "password"])
            .contains("from-env")
    );
}

#[test]
fn missing_secret_names_the_fixes() {
    let env = TestEnv::new();
    let out = env.run(&["secrets", "get", "ov/vnc", "nope"]);
    crate::snap!("secrets_get_missing", env.transcript(&out));
    let out = env.run(&["secrets", "which", "ov/vnc", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "searched env ($OV_VNC_NOPE), keyring (unavailable), kdbx (unavailable), config"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn export_yaml_and_json_nest_service_key_value() {
    let env = TestEnv::new();
    env.run_stdin(&["secrets", "set", "ov/vnc", "pw"], "a\"b: c\n");
    env.run_stdin(&["secrets", "set", "ov/api-key", "x"], "line\n");
    let out = env.run(&["secrets", "export"]);
    assert!(stderr(&out).contains("plaintext"));
    crate::snap!("secrets_export_yaml", stdout(&out));
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["secrets", "export", "--format", "json"])).unwrap();
    assert_eq!(json["ov/vnc"]["pw"], "a\"b: c");
    assert_eq!(json["ov/api-key"]["x"], "line");
}

#[test]
fn path_prints_the_kdbx_location() {
    let env = TestEnv::new();
    let p = env.ok(&["secrets", "path"]);
    assert_eq!(env.normalize(&p), "[TMP]/config/ov/secrets.kdbx\n");
    env.ok(&["settings", "set", "secrets.kdbx_path", "~/vault.kdbx"]);
    assert_eq!(
        env.normalize(&env.ok(&["secrets", "path"])),
        "[TMP]/home/vault.kdbx\n"
    );
}

#[test]
fn import_with_a_single_backend_has_nothing_to_do() {
    let env = TestEnv::new();
    env.run_stdin(&["secrets", "set", "s", "k"], "v\n");
    let out = env.run(&["secrets", "import", "--dry-run"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("nothing to import"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["secrets", "import", "--from", "env"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sixteen_parallel_sets_keep_all_sixteen() {
    let env = TestEnv::new();
    let children: Vec<_> = (0..16)
        .map(|i| {
            let mut cmd = env.command(&["secrets", "set", "par", &format!("k{i}"), "--generate"]);
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            cmd.spawn().unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let listed = env.ok(&["secrets", "list", "par"]);
    assert_eq!(listed.lines().count(), 16, "{listed}");
}

#[test]
fn eight_concurrent_ensures_print_the_same_value() {
    let env = TestEnv::new();
    let children: Vec<_> = (0..8)
        .map(|_| {
            let mut cmd = env.command(&["secrets", "ensure", "ov/secret", "K3S_CLUSTER_TOKEN"]);
            cmd.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null());
            cmd.spawn().unwrap()
        })
        .collect();
    let values: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap()
        })
        .collect();
    let first = &values[0];
    assert_eq!(first.trim_end().len(), 64);
    assert!(values.iter().all(|v| v == first), "{values:?}");
    assert_eq!(
        &env.ok(&["secrets", "get", "ov/secret", "K3S_CLUSTER_TOKEN"]),
        first
    );
}

#[test]
fn ensure_keeps_an_existing_value() {
    let env = TestEnv::new();
    env.run_stdin(&["secrets", "set", "ov/secret", "T"], "mine\n");
    assert_eq!(env.ok(&["secrets", "ensure", "ov/secret", "T"]), "mine\n");
}

// ---- bad input: a clear error, a non-zero exit, nothing lost ----

#[test]
fn malformed_credentials_file_is_named_with_its_line_and_left_alone() {
    let env = TestEnv::new();
    let text = "[\"ov/vnc\"]\npassword = \"ok\"\nbroken = \n";
    env.write(&env.credentials(), text, 0o600);
    let out = env.run_stdin(&["secrets", "set", "ov/vnc", "other"], "v\n");
    crate::snap!("credentials_malformed", env.transcript(&out));
    assert_eq!(fs::read_to_string(env.credentials()).unwrap(), text);
    assert_eq!(
        env.run(&["secrets", "get", "ov/vnc", "password"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn world_readable_credentials_are_refused_with_chmod_fix() {
    let env = TestEnv::new();
    env.write(&env.credentials(), "[s]\nk = \"v\"\n", 0o644);
    let out = env.run(&["secrets", "get", "s", "k"]);
    crate::snap!("credentials_mode_0644", env.transcript(&out));
    assert_eq!(
        mode_of(&env.credentials()),
        0o644,
        "ov must not change it behind the user's back"
    );
}

#[test]
fn credentials_owned_by_another_user_are_refused() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test gives a file to another user and needs root; run it through ./scripts/test as root"
    );
    let env = TestEnv::new();
    env.write(&env.credentials(), "[s]\nk = \"v\"\n", 0o600);
    nix::unistd::chown(
        &env.credentials(),
        Some(nix::unistd::Uid::from_raw(65534)),
        None,
    )
    .unwrap();
    let out = env.run(&["secrets", "get", "s", "k"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("is owned by nobody (uid 65534) but ov runs as root"),
        "{err}"
    );
    assert!(
        err.contains(&format!("hint: {}", common::as_root("chown root"))),
        "{err}"
    );
}

#[test]
fn empty_and_multiline_names_are_usage_errors() {
    let env = TestEnv::new();
    for args in [
        vec!["secrets", "get", "", "k"],
        vec!["secrets", "get", "s", ""],
        vec!["secrets", "set", "s\nx", "k", "v"],
        vec!["secrets", "set", "s", "k\tx", "v"],
        vec!["secrets", "get", "/s", "k"],
    ] {
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("ov: error: "), "{}", stderr(&out));
    }
    let out = env.run(&["secrets", "get", "", "k"]);
    crate::snap!("secrets_empty_service", env.transcript(&out));
    assert!(!env.credentials().exists());
}

#[test]
fn value_over_one_mebibyte_is_refused_and_nothing_is_written() {
    let env = TestEnv::new();
    env.run_stdin(&["secrets", "set", "s", "keep"], "kept\n");
    let before = fs::read(env.credentials()).unwrap();
    let big = "x".repeat(1024 * 1024 + 1) + "\n";
    let out = env.run_stdin(&["secrets", "set", "s", "big"], &big);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the limit is 1048576 bytes (1 MiB)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(env.credentials()).unwrap(), before);
    // Exactly 1 MiB is fine.
    let max = "y".repeat(1024 * 1024) + "\n";
    assert!(
        env.run_stdin(&["secrets", "set", "s", "max"], &max)
            .status
            .success()
    );
}

#[test]
fn empty_stdin_is_an_error_not_an_empty_secret() {
    let env = TestEnv::new();
    let out = env.run_stdin(&["secrets", "set", "s", "k"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no value on standard input"));
    assert!(!env.credentials().exists());
}

#[test]
fn unwritable_config_dir_is_reported_with_the_path() {
    let mut env = TestEnv::new();
    // A regular file where the config directory's parent should be: even
    // root cannot create a directory below it.
    let blocker = env.root().join("blocker");
    fs::write(&blocker, "").unwrap();
    env.set_env("XDG_CONFIG_HOME", blocker.join("cfg").display().to_string());
    let out = env.run_stdin(&["secrets", "set", "s", "k"], "v\n");
    assert_eq!(out.status.code(), Some(1));
    let err = env.normalize(&stderr(&out));
    assert!(
        err.starts_with("ov: error: cannot create directory [TMP]/blocker/cfg/ov"),
        "{err}"
    );
}

#[test]
fn no_temp_files_are_left_next_to_the_credentials() {
    let env = TestEnv::new();
    for i in 0..3 {
        env.run_stdin(&["secrets", "set", "s", &format!("k{i}")], "v\n");
    }
    env.ok(&["secrets", "delete", "s", "k1"]);
    let mut names: Vec<String> = fs::read_dir(env.config_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec![".credentials.toml.lock", "credentials.toml"]);
    assert_eq!(
        fs::metadata(env.config_dir()).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn a_piped_multi_line_value_is_stored_whole() {
    let env = TestEnv::new();
    let pem = "-----BEGIN KEY-----\nabc\n-----END KEY-----\n";
    let out = env.run_stdin(&["secrets", "set", "certs", "tls_key"], pem);
    assert!(out.status.success(), "{}", stderr(&out));
    // Printed with one newline added, as every value is.
    assert_eq!(env.ok(&["secrets", "get", "certs", "tls_key"]), pem);
    let raw = env
        .ov(&["secrets", "get", "certs", "tls_key", "--raw"])
        .output()
        .unwrap();
    assert_eq!(raw.stdout, pem.trim_end().as_bytes());
}

#[test]
fn a_piped_value_over_the_limit_is_refused_and_nothing_is_stored() {
    let env = TestEnv::new();
    let limit = 1024 * 1024;
    let at = "v".repeat(limit) + "\n";
    let out = env.run_stdin(&["secrets", "set", "big", "at_limit"], &at);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        env.ok(&["secrets", "get", "big", "at_limit"]).len(),
        limit + 1
    );

    let over = "v".repeat(limit + 1);
    let out = env.run_stdin(&["secrets", "set", "big", "over"], &over);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the limit is 1048576 bytes"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint: "), "{}", stderr(&out));
    assert_eq!(
        env.run(&["secrets", "get", "big", "over"]).status.code(),
        Some(1)
    );
}

#[test]
fn a_symlinked_credentials_file_is_written_through_not_replaced() {
    let env = TestEnv::new();
    let real = env.root().join("dotfiles/credentials.toml");
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    env.write(&real, "[\"svc\"]\na = \"1\"\n", 0o600);
    fs::create_dir_all(env.config_dir()).unwrap();
    std::os::unix::fs::symlink(&real, env.credentials()).unwrap();
    let out = env.run_stdin(&["secrets", "set", "svc", "b"], "2\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        fs::symlink_metadata(env.credentials())
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let text = fs::read_to_string(&real).unwrap();
    assert!(
        text.contains("a = \"1\"") && text.contains("b = \"2\""),
        "{text}"
    );
    assert_eq!(mode_of(&real), 0o600);
    env.ok(&["secrets", "delete", "svc", "a"]);
    assert!(
        fs::symlink_metadata(env.credentials())
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(!fs::read_to_string(&real).unwrap().contains("a = "));
}

#[test]
fn a_credentials_symlink_to_nothing_is_refused_and_left() {
    let env = TestEnv::new();
    fs::create_dir_all(env.config_dir()).unwrap();
    let gone = env.root().join("unmounted/credentials.toml");
    std::os::unix::fs::symlink(&gone, env.credentials()).unwrap();
    let out = env.run_stdin(&["secrets", "set", "svc", "k"], "v\n");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("which does not exist; ov does not replace it"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read_link(env.credentials()).unwrap(), gone);
    assert!(!gone.exists());
}

#[test]
fn entries_of_a_shape_ov_did_not_write_are_never_replaced() {
    let env = TestEnv::new();
    let original = "svc = \"top-level value\"\n[\"other\"]\nport = 5432\nnested = { a = \"b\" }\n";
    env.write(&env.credentials(), original, 0o600);
    for (args, what) in [
        (
            ["secrets", "set", "svc", "k"],
            "top-level \"svc\" is a string",
        ),
        (
            ["secrets", "set", "other", "port"],
            "[\"other\"] port is an integer",
        ),
        (
            ["secrets", "set", "other", "nested"],
            "[\"other\"] nested is an inline table",
        ),
    ] {
        let out = env.run_stdin(&args, "new\n");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(what) && err.contains("ov leaves it as it is"),
            "{err}"
        );
        assert!(err.contains("hint: "), "{err}");
        assert_eq!(fs::read_to_string(env.credentials()).unwrap(), original);
    }
    let out = env.run(&["secrets", "delete", "other", "port"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(env.credentials()).unwrap(), original);
}

/// Hostile names through the write paths: refused with a usage error and
/// nothing stored, whichever way they come in.
#[test]
fn hostile_names_are_refused_on_every_write_path() {
    let env = TestEnv::new();
    let long = "k".repeat(10_000);
    let names: [(&str, &str); 7] = [
        ("a/../b", "k"),
        ("..", "k"),
        ("svc", "line\nbreak"),
        ("svc", &long),
        ("svc", "invoice\u{202e}fdp.exe"),
        ("s\u{200b}vc", "k"),
        ("/abs", "k"),
    ];
    for (service, key) in names {
        let out = env.run_stdin(&["secrets", "set", service, key], "v\n");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{service:?} {key:?}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).starts_with("ov: error: "), "{}", stderr(&out));
    }
    // The same names in a backup file: refused, nothing written.
    let mut json = serde_json::Map::new();
    for (service, key) in names {
        let mut keys = serde_json::Map::new();
        keys.insert(key.to_owned(), "v".into());
        json.insert(service.to_owned(), keys.into());
    }
    json.insert("ok".into(), serde_json::json!({"nul\u{0}key": "v"}));
    let backup = env.root().join("backup.json");
    fs::write(&backup, serde_json::Value::Object(json).to_string()).unwrap();
    let out = env.run(&["secrets", "import", "--file", &backup.display().to_string()]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(!env.credentials().exists() || env.ok(&["secrets", "list"]).is_empty());
}

#[test]
fn set_backend_writes_where_named_and_refuses_what_cannot_take_it() {
    let env = TestEnv::new();
    env.ok(&["settings", "set", "secret_backend", "kdbx"]);
    // secret_backend points at a kdbx file that does not exist; --backend
    // config writes past it.
    let out = env.run_stdin(
        &["secrets", "set", "--backend", "config", "ops", "token"],
        "t0ken\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        env.ok(&["secrets", "which", "ops", "token"])
            .split('\t')
            .next(),
        Some("config")
    );
    assert_eq!(env.ok(&["secrets", "get", "ops", "token"]), "t0ken\n");
    let before = fs::read(env.credentials()).expect("credentials");
    for (name, message) in [
        (
            "nosuch",
            "ov: error: --backend nosuch was given, but no nosuch backend is installed\n",
        ),
        ("env", "ov: error: the env backend is read-only\n"),
        (
            "keyring",
            "ov: error: --backend keyring was given, which cannot be used now: ",
        ),
    ] {
        let out = env.run_stdin(
            &["secrets", "set", "--backend", name, "ops", "token"],
            "other\n",
        );
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with(message),
            "{name}: {}",
            stderr(&out)
        );
        assert!(
            common::hints(&out)
                .iter()
                .any(|h| h.starts_with("ov plugins list")),
            "{name}: {}",
            stderr(&out)
        );
    }
    assert_eq!(fs::read(env.credentials()).expect("credentials"), before);
}
