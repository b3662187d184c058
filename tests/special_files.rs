//! Files ov reads that turn out to be FIFOs, directories or devices are
//! refused at once with the reason, never waited on.

mod common;

use std::path::Path;
use std::process::Output;

use common::{TestEnv, stderr};

fn mkfifo(path: &Path) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
}

/// `ov ARGS` under `timeout 20`: a command that blocks on a FIFO shows up
/// as exit 124 instead of hanging the suite.
fn run_bounded(env: &TestEnv, args: &[&str]) -> Output {
    env.command_under(&["timeout", "20"], args)
        .output()
        .expect("timeout")
}

fn assert_refused(out: &Output, what: &str) {
    assert_ne!(out.status.code(), Some(124), "{what}: ov hung on a FIFO");
    assert_eq!(out.status.code(), Some(1), "{what}: {}", stderr(out));
    assert!(
        stderr(out).contains("is a FIFO (named pipe), not a regular file"),
        "{what}: {}",
        stderr(out)
    );
}

#[test]
fn a_fifo_machine_key_is_refused_not_waited_on() {
    let env = TestEnv::new();
    let key = env.root().join("m.key");
    mkfifo(&key);
    let k = key.display().to_string();
    let out = run_bounded(
        &env,
        &[
            "run",
            "--app",
            "a",
            "--env",
            "prod",
            "--machine-key",
            &k,
            "--all",
            "--",
            "true",
        ],
    );
    assert_refused(&out, "machine key");
}

#[test]
fn a_fifo_settings_or_credentials_file_is_refused_not_waited_on() {
    let env = TestEnv::new();
    mkfifo(&env.user_config());
    assert_refused(&run_bounded(&env, &["secrets", "list"]), "config.toml");
    std::fs::remove_file(env.user_config()).expect("rm");

    mkfifo(&env.credentials());
    let out = run_bounded(&env, &["secrets", "get", "s", "k"]);
    assert_ne!(out.status.code(), Some(124), "credentials.toml: ov hung");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_fifo_key_file_or_database_is_refused_not_waited_on() {
    let env = TestEnv::new();
    let db = env.root().join("fifo.kdbx");
    mkfifo(&db);
    let db_s = db.display().to_string();
    env.ok(&["settings", "set", "secrets.kdbx_path", &db_s]);
    env.ok(&["settings", "set", "secret_backend", "kdbx"]);
    let out = run_bounded(&env, &["secrets", "get", "s", "k"]);
    assert_ne!(out.status.code(), Some(124), "database: ov hung");
    assert!(!out.status.success(), "{}", stderr(&out));

    // A real database, with a key file that is a FIFO.
    let mut env = TestEnv::new();
    env.set_env("OV_KDBX_PASSWORD", "pw");
    env.ok(&["secrets", "init"]);
    let kf = env.root().join("k.key");
    mkfifo(&kf);
    env.ok(&[
        "settings",
        "set",
        "secrets.kdbx_key_file",
        &kf.display().to_string(),
    ]);
    env.ok(&["settings", "set", "secret_backend", "kdbx"]);
    let out = run_bounded(&env, &["secrets", "get", "s", "k"]);
    assert_refused(&out, "key file");
}

#[test]
fn a_device_as_a_machine_key_or_key_file_is_refused() {
    let env = TestEnv::new();
    let out = run_bounded(
        &env,
        &[
            "run",
            "--app",
            "a",
            "--env",
            "prod",
            "--machine-key",
            "/dev/zero",
            "--all",
            "--",
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/dev/zero is a device, not a regular file"),
        "{}",
        stderr(&out)
    );

    let mut env = TestEnv::new();
    env.set_env("OV_KDBX_PASSWORD", "pw");
    env.ok(&["secrets", "init"]);
    env.ok(&["settings", "set", "secrets.kdbx_key_file", "/dev/zero"]);
    env.ok(&["settings", "set", "secret_backend", "kdbx"]);
    let out = run_bounded(&env, &["secrets", "get", "s", "k"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/dev/zero is a device, not a regular file"),
        "{}",
        stderr(&out)
    );
}
