//! `ov podman provision` and `prune` against the real podman, with its
//! secret store in the test's own directory (CONTAINERS_STORAGE_CONF), so
//! tests do not see each other's secrets or the machine's.

mod common;

use std::process::Command;

use common::{TestEnv, stderr, stdout};

fn podman_env() -> TestEnv {
    let mut env = TestEnv::new();
    let root = env.root().join("podman");
    let conf = env.root().join("storage.conf");
    env.write(
        &conf,
        &format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}/root\"\nrunroot = \"{}/run\"\n",
            root.display(),
            root.display()
        ),
        0o644,
    );
    env.set_env("CONTAINERS_STORAGE_CONF", conf.display().to_string());
    env
}

fn podman(env: &TestEnv, args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .args(args)
        .env("CONTAINERS_STORAGE_CONF", env.root().join("storage.conf"))
        .output()
        .expect("podman (./scripts/test installs it)")
}

/// The value podman holds for a secret, read from its file driver's store
/// (podman 4.3 has no `inspect --showsecret`; this is what it hands a
/// container).
fn value_in_podman(env: &TestEnv, name: &str) -> String {
    let id = podman(env, &["secret", "inspect", name, "--format", "{{.ID}}"]);
    assert!(id.status.success(), "{}", stderr(&id));
    let id = stdout(&id).trim().to_owned();
    let data = env
        .root()
        .join("podman/root/secrets/filedriver/secretsdata.json");
    let map: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(data).expect("podman's store")).expect("json");
    let b64 = map.get(&id).expect("the secret's data");
    String::from_utf8(base64_decode(b64)).expect("utf-8")
}

fn base64_decode(s: &str) -> Vec<u8> {
    let out = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(s.as_bytes())?;
            c.wait_with_output()
        })
        .expect("base64");
    out.stdout
}

fn names(env: &TestEnv) -> Vec<String> {
    let out = podman(
        env,
        &["secret", "ls", "--noheading", "--format", "{{.Name}}"],
    );
    let mut v: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    v.sort();
    v
}

fn env_file(env: &TestEnv, text: &str) -> String {
    let p = env.root().join("app.env");
    env.write(&p, text, 0o644);
    p.display().to_string()
}

#[test]
fn provision_creates_one_secret_per_variable_and_prints_the_quadlet_lines() {
    let env = podman_env();
    env.run_stdin(&["secrets", "set", "myapp/prod", "DB"], "p@ss 'w\"rd $x\n");
    let file = env_file(&env, "DB=ov://myapp/prod/DB\nMODE=literal mode\n");
    let out = env.run(&["podman", "provision", "--env-file", &file]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Secret=ov-DB,type=env,target=DB\nSecret=ov-MODE,type=env,target=MODE\n"
    );
    assert!(
        stderr(&out).contains("2 secrets: 2 created, 0 replaced, 0 kept"),
        "{}",
        stderr(&out)
    );
    assert_eq!(names(&env), ["ov-DB", "ov-MODE"]);
    assert_eq!(value_in_podman(&env, "ov-DB"), "p@ss 'w\"rd $x");
    assert_eq!(value_in_podman(&env, "ov-MODE"), "literal mode");

    // Again: nothing changes.
    let out = env.run(&["podman", "provision", "--env-file", &file]);
    assert!(
        stderr(&out).contains("0 created, 0 replaced, 2 kept"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("unchanged ov-DB"));
}

#[test]
fn a_changed_value_is_kept_until_rotate_replaces_it() {
    let env = podman_env();
    env.run_stdin(&["secrets", "set", "myapp/prod", "DB"], "old\n");
    let file = env_file(&env, "DB=ov://myapp/prod/DB\nSAME=ov://myapp/prod/DB\n");
    env.ok(&["podman", "provision", "--env-file", &file]);
    env.run_stdin(&["secrets", "set", "myapp/prod", "DB"], "new-value\n");

    let out = env.run(&["podman", "provision", "--env-file", &file]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("kept ov-DB from ov://myapp/prod/DB from config (its value changed: --rotate replaces it)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(value_in_podman(&env, "ov-DB"), "old");

    let out = env.run(&[
        "podman",
        "provision",
        "--env-file",
        &file,
        "--rotate",
        "--dry-run",
    ]);
    assert!(
        stderr(&out).contains("would replace ov-DB"),
        "{}",
        stderr(&out)
    );
    assert_eq!(value_in_podman(&env, "ov-DB"), "old");

    let out = env.run(&["podman", "provision", "--env-file", &file, "--rotate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("0 created, 2 replaced, 0 kept"),
        "{}",
        stderr(&out)
    );
    assert_eq!(value_in_podman(&env, "ov-DB"), "new-value");
    assert_eq!(value_in_podman(&env, "ov-SAME"), "new-value");
}

#[test]
fn prune_removes_only_secrets_ov_made_that_are_no_longer_declared() {
    let env = podman_env();
    let file = env_file(&env, "A=one\nB=two\n");
    env.ok(&[
        "podman",
        "provision",
        "--env-file",
        &file,
        "--prefix",
        "web-",
    ]);
    // Someone else's secret with the same prefix.
    let mut mine = Command::new("podman");
    mine.args(["secret", "create", "web-THEIRS", "-"])
        .env("CONTAINERS_STORAGE_CONF", env.root().join("storage.conf"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = mine.spawn().expect("podman");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), b"theirs").expect("write");
    assert!(child.wait().expect("podman").success());

    let file = env_file(&env, "A=one\n");
    let out = env.run(&[
        "podman",
        "prune",
        "--env-file",
        &file,
        "--prefix",
        "web-",
        "--dry-run",
    ]);
    assert!(
        stderr(&out).contains("would remove web-B"),
        "{}",
        stderr(&out)
    );
    assert_eq!(names(&env), ["web-A", "web-B", "web-THEIRS"]);
    let out = env.run(&["podman", "prune", "--env-file", &file, "--prefix", "web-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("removed web-B\n1 secret removed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(names(&env), ["web-A", "web-THEIRS"]);
}

#[test]
fn nothing_is_made_when_a_reference_is_missing_or_a_value_does_not_fit() {
    let env = podman_env();
    let file = env_file(&env, "A=fine\nB=ov://nobody/here\n");
    let out = env.run(&["podman", "provision", "--env-file", &file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("so no podman secret was changed"),
        "{}",
        stderr(&out)
    );
    assert!(names(&env).is_empty());

    // podman holds less than 512000 bytes: one less is fine, that many is not.
    for (len, ok) in [(511_999, true), (512_000, false)] {
        env.run_stdin(
            &["secrets", "set", "big", "v"],
            &format!("{}\n", "a".repeat(len)),
        );
        let file = env_file(&env, "BIG=ov://big/v\n");
        let out = env.run(&["podman", "provision", "--env-file", &file, "--rotate"]);
        assert_eq!(out.status.success(), ok, "{len}: {}", stderr(&out));
        if !ok {
            assert!(
                stderr(&out).contains(
                    "BIG is 512000 bytes; podman holds secrets of less than 512000 bytes"
                ),
                "{}",
                stderr(&out)
            );
        }
    }
}

#[test]
fn without_podman_the_error_says_how_to_install_it() {
    let mut env = podman_env();
    env.set_env("PATH", "/nonexistent");
    let file = env_file(&env, "A=1\n");
    let out = env.run(&["podman", "provision", "--env-file", &file]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("ov: error: podman is not installed"), "{err}");
    assert!(
        err.contains(&format!(
            "hint: {}",
            common::as_root("apt-get install -y podman")
        )),
        "{err}"
    );
}

#[test]
fn provision_from_the_manifest_generates_required_secrets_once() {
    let env = podman_env();
    let manifest = env.root().join("ov-secrets.toml");
    env.write(
        &manifest,
        "service = \"proj/secrets\"\n\
         [secrets.DB_PASSWORD]\ntype = \"password:24\"\nstacks = [\"core\"]\n\
         [secrets.API_KEY]\ntype = \"skip\"\noptional = true\nstacks = [\"core\"]\n",
        0o644,
    );
    let m = manifest.to_str().unwrap();
    let out = env.run(&["podman", "provision", "--manifest", m]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Secret=ov-DB_PASSWORD,type=env,target=DB_PASSWORD\n"
    );
    assert!(
        stderr(&out).contains("ov: note: API_KEY left out: it is optional and has no value"),
        "{}",
        stderr(&out)
    );
    let value = value_in_podman(&env, "ov-DB_PASSWORD");
    assert_eq!(value.len(), 24);
    let got = env.ok(&["manifest", "--manifest", m, "get", "DB_PASSWORD"]);
    assert_eq!(got.trim_end(), value);
}
