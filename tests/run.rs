//! Machine keys, sealed bundles, `ov run` and `.env` import (issue 7).

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;

use common::{TestEnv, core_limits, mode_of, stderr, stdout};

const DOTENV: &str = "DATABASE_URL=postgres://db/x\nAPI_KEY=\"s3cr3t value\"\n";

/// An environment with myapp/production imported and a key at `m.key`.
fn setup() -> (TestEnv, PathBuf) {
    common::with_machine_key(DOTENV)
}

fn run_args<'a>(key: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "run",
        "--app",
        "myapp",
        "--env",
        "production",
        "--machine-key",
        key,
    ];
    v.extend_from_slice(rest);
    v
}

fn bundle(env: &TestEnv) -> PathBuf {
    env.root().join("data/ov/bundles/myapp/production.age")
}

#[test]
fn import_lists_and_prints_next_steps() {
    let env = TestEnv::new();
    env.ok(&["settings", "set", "secret_backend", "config"]);
    let dotenv = env.root().join(".env");
    env.write(&dotenv, "A=1\nB=2\nA=3\n", 0o600);
    let p = dotenv.display().to_string();
    let dry = env.run(&[
        "secrets",
        "import",
        &p,
        "--app",
        "a",
        "--env",
        "e",
        "--dry-run",
    ]);
    assert!(dry.status.success());
    assert!(stdout(&dry).contains("Would import 2/2 secret(s) into a/e"));
    assert!(stderr(&dry).contains("repeats"), "{}", stderr(&dry));
    assert_eq!(env.ok(&["secrets", "list", "--app", "a", "--env", "e"]), "");
    let out = env.ok(&["secrets", "import", &p, "--app", "a", "--env", "e"]);
    assert!(out.contains("✓ A\n") && out.contains("✓ B\n"), "{out}");
    assert!(out.contains("Imported 2/2 secret(s) into a/e"), "{out}");
    assert!(out.contains("Next steps"), "{out}");
    assert_eq!(
        env.ok(&["secrets", "list", "--app", "a", "--env", "e"]),
        "A\nB\n"
    );
    assert_eq!(env.ok(&["secrets", "get", "a/e", "A"]), "3\n");
}

#[test]
fn import_of_an_unparseable_file_stores_nothing() {
    let env = TestEnv::new();
    env.ok(&["settings", "set", "secret_backend", "config"]);
    let dotenv = env.root().join(".env");
    env.write(&dotenv, "A=1\nthis is not a line\n", 0o600);
    let p = dotenv.display().to_string();
    for extra in [&["--dry-run"][..], &[][..]] {
        let mut args = vec!["secrets", "import", &p, "--app", "a", "--env", "e"];
        args.extend_from_slice(extra);
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(1));
        assert!(stdout(&out).contains("✗ line 2:"), "{}", stdout(&out));
        assert!(stderr(&out).contains("nothing was imported"));
        assert!(stderr(&out).contains("hint: "));
    }
    assert_eq!(env.ok(&["secrets", "list", "--app", "a", "--env", "e"]), "");
}

#[test]
fn set_with_app_refuses_a_bad_name() {
    let env = TestEnv::new();
    env.ok(&["settings", "set", "secret_backend", "config"]);
    let out = env.run(&[
        "secrets", "set", "--app", "a", "--env", "e", "bad-name", "v",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a valid environment variable name"));
    assert!(stderr(&out).contains("hint: ov secrets set --app a --env e BAD_NAME"));
}

#[test]
fn run_passes_only_the_named_secrets() {
    let (env, key) = setup();
    let k = key.display().to_string();
    assert_eq!(mode_of(&key), 0o600);
    assert_eq!(fs::metadata(&key).unwrap().len(), 32);
    assert_eq!(mode_of(&bundle(&env)), 0o600);
    let out = env.ok(&run_args(
        &k,
        &[
            "--secrets",
            "API_KEY",
            "--",
            "sh",
            "-c",
            "echo \"$API_KEY|${DATABASE_URL-unset}\"",
        ],
    ));
    assert_eq!(out, "s3cr3t value|unset\n");
    let out = env.ok(&run_args(
        &k,
        &["--all", "--", "sh", "-c", "echo \"$DATABASE_URL\""],
    ));
    assert_eq!(out, "postgres://db/x\n");
}

#[test]
fn a_key_that_cannot_be_locked_in_memory_is_used_with_a_warning() {
    let (env, key) = setup();
    let k = key.display().to_string();
    // No memlock allowance and no CAP_IPC_LOCK (tests may run as root).
    let ov = env.command(&run_args(
        &k,
        &["--all", "--", "sh", "-c", "echo \"$API_KEY\""],
    ));
    let mut cmd = std::process::Command::new("prlimit");
    cmd.args(["--memlock=0:0", "setpriv", "--bounding-set=-ipc_lock"])
        .arg(ov.get_program())
        .args(ov.get_args())
        .env_clear()
        .envs(ov.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    let out = cmd.output().expect("prlimit and setpriv (util-linux)");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "s3cr3t value\n");
    assert!(
        stderr(&out).contains("ov: warning: cannot lock the machine key in memory"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("LimitMEMLOCK=64K"),
        "{}",
        stderr(&out)
    );
    // With the allowance there is nothing to say.
    let out = env.run(&run_args(&k, &["--all", "--", "true"]));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

#[test]
fn secrets_are_not_in_the_childs_cmdline() {
    let (env, key) = setup();
    let k = key.display().to_string();
    let out = env.ok(&run_args(
        &k,
        &[
            "--all",
            "--",
            "sh",
            "-c",
            "cat /proc/$$/cmdline; cat /proc/$PPID/cmdline 2>/dev/null",
        ],
    ));
    assert!(!out.contains("s3cr3t"), "{out}");
    assert!(!out.contains("postgres://"), "{out}");
}

#[test]
fn run_passes_exit_status_and_signals_through() {
    let (env, key) = setup();
    let k = key.display().to_string();
    let out = env.run(&run_args(&k, &["--all", "--", "sh", "-c", "exit 7"]));
    assert_eq!(out.status.code(), Some(7));
    let out = env.run(&run_args(&k, &["--all", "--", "sh", "-c", "kill -TERM $$"]));
    assert_eq!(out.status.signal(), Some(15));
    let out = env.run(&run_args(
        &k,
        &["--all", "--secrets-dir", "--", "sh", "-c", "exit 9"],
    ));
    assert_eq!(out.status.code(), Some(9));
    let out = env.run(&run_args(
        &k,
        &["--all", "--secrets-dir", "--", "sh", "-c", "kill -TERM $$"],
    ));
    assert_eq!(out.status.signal(), Some(15));
}

#[test]
fn key_file_errors_have_the_spec_texts() {
    let (env, key) = setup();
    let k = key.display().to_string();
    let good = fs::read(&key).unwrap();
    let check = |expected: &str, hint: &str| {
        let out = env.run(&run_args(&k, &["--all", "--", "true"]));
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = env.normalize(&stderr(&out));
        assert!(
            err.starts_with(&format!("ov: error: {expected}\n")),
            "{err}"
        );
        assert!(err.contains(&format!("hint: {hint}")), "{err}");
    };
    let derive =
        "ov auth derive-machine-key --out [TMP]/m.key --app myapp --env production --force";
    for len in [31, 33] {
        let mut bytes = good.clone();
        bytes.resize(len, 0);
        fs::write(&key, &bytes).unwrap();
        check("machine key must be exactly 32 bytes", derive);
    }
    fs::write(&key, &good).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    check(
        "machine key has permissions 0644 — must be 0600",
        "chmod 600 [TMP]/m.key",
    );
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let uid = nix::unistd::Uid::effective().as_raw();
    std::os::unix::fs::chown(&key, Some(65534), None).unwrap();
    check(
        &format!("machine key is owned by uid 65534 but current uid is {uid}"),
        "chown ",
    );
    std::os::unix::fs::chown(&key, Some(uid), None).unwrap();
    // A symlink to the good key is refused at open.
    let link = env.root().join("link.key");
    std::os::unix::fs::symlink(&key, &link).unwrap();
    let l = link.display().to_string();
    let out = env.run(&run_args(&l, &["--all", "--", "true"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .starts_with("ov: error: opening machine key: too many levels of symbolic links\n"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint: "));
    // A directory.
    let dir = env.root().join("dir.key");
    fs::create_dir(&dir).unwrap();
    let d = dir.display().to_string();
    let out = env.run(&run_args(&d, &["--all", "--", "true"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));
    assert!(stderr(&out).contains("hint: ov auth derive-machine-key"));
    // The good key still works: nothing was lost.
    env.ok(&run_args(&k, &["--all", "--", "true"]));
}

#[test]
fn bad_secret_selections_are_refused_before_anything_runs() {
    let (env, key) = setup();
    let k = key.display().to_string();
    let marker = env.root().join("ran");
    let m = format!("touch {}", marker.display());
    for (sel, text) in [
        ("", "--secrets is empty"),
        (
            "API_KEY,9BAD",
            "'9BAD' is not a valid environment variable name",
        ),
        ("API_KEY,NOPE", "secret is not in myapp/production: NOPE"),
    ] {
        let out = env.run(&run_args(&k, &["--secrets", sel, "--", "sh", "-c", &m]));
        assert_ne!(out.status.code(), Some(0));
        assert!(stderr(&out).contains(text), "{}", stderr(&out));
        assert!(stderr(&out).contains("hint: "), "{}", stderr(&out));
        assert!(!marker.exists());
    }
}

#[test]
fn a_key_opens_only_the_apps_it_was_registered_for() {
    let (env, key) = setup();
    let k = key.display().to_string();
    env.ok(&[
        "secrets",
        "set",
        "--app",
        "other",
        "--env",
        "production",
        "TOKEN",
        "t",
    ]);
    let other_key = env.root().join("other.key");
    let o = other_key.display().to_string();
    env.ok(&[
        "auth",
        "derive-machine-key",
        "--out",
        &o,
        "--app",
        "other",
        "--env",
        "production",
    ]);
    // myapp's key against other's bundle.
    let other_bundle = env.root().join("data/ov/bundles/other/production.age");
    let ob = other_bundle.display().to_string();
    let out = env.run(&run_args(&k, &["--bundle", &ob, "--all", "--", "true"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("was not sealed for myapp/production with this machine key"));
    let out = env.run(&[
        "run",
        "--app",
        "other",
        "--env",
        "production",
        "--machine-key",
        &k,
        "--all",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("was not sealed for other/production"));
    // Registered for both, the one key opens both, each with its own secrets.
    env.ok(&[
        "auth",
        "machine-key",
        "add",
        &k,
        "--app",
        "other",
        "--env",
        "production",
    ]);
    let out = env.ok(&[
        "run",
        "--app",
        "other",
        "--env",
        "production",
        "--machine-key",
        &k,
        "--all",
        "--",
        "sh",
        "-c",
        "echo $TOKEN ${API_KEY-unset}",
    ]);
    assert_eq!(out, "t unset\n");
    // Revoked, it no longer does.
    env.ok(&[
        "auth",
        "machine-key",
        "revoke",
        "--app",
        "other",
        "--env",
        "production",
        "--key",
        &k,
    ]);
    let out = env.run(&[
        "run",
        "--app",
        "other",
        "--env",
        "production",
        "--machine-key",
        &k,
        "--all",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(1));
    env.ok(&[
        "run",
        "--app",
        "other",
        "--env",
        "production",
        "--machine-key",
        &o,
        "--all",
        "--",
        "true",
    ]);
}

#[test]
fn a_tampered_bundle_is_an_authentication_error() {
    let (env, key) = setup();
    let k = key.display().to_string();
    let b = bundle(&env);
    let mut bytes = fs::read(&b).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0x01;
    fs::write(&b, &bytes).unwrap();
    let out = env.run(&run_args(&k, &["--all", "--", "env"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("failed authentication"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint: ov auth machine-key seal --app myapp --env production"));
    assert!(!stdout(&out).contains("s3cr3t"));
    // Re-sealing repairs it.
    env.ok(&[
        "auth",
        "machine-key",
        "seal",
        "--app",
        "myapp",
        "--env",
        "production",
    ]);
    env.ok(&run_args(&k, &["--all", "--", "true"]));
}

#[test]
fn every_change_reseals_and_rotation_retires_the_old_key() {
    let (env, key) = setup();
    let k = key.display().to_string();
    env.ok(&[
        "secrets",
        "set",
        "--app",
        "myapp",
        "--env",
        "production",
        "NEW",
        "n",
    ]);
    let out = env.ok(&run_args(
        &k,
        &["--secrets", "NEW", "--", "sh", "-c", "echo $NEW"],
    ));
    assert_eq!(out, "n\n");
    env.ok(&["secrets", "delete", "myapp/production", "NEW"]);
    let out = env.run(&run_args(&k, &["--secrets", "NEW", "--", "true"]));
    assert_eq!(out.status.code(), Some(1));

    let old = env.root().join("old.key");
    fs::copy(&key, &old).unwrap();
    fs::set_permissions(&old, fs::Permissions::from_mode(0o600)).unwrap();
    // Without --force the key is not replaced.
    let out = env.run(&[
        "auth",
        "derive-machine-key",
        "--out",
        &k,
        "--app",
        "myapp",
        "--env",
        "production",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"));
    env.ok(&[
        "auth",
        "derive-machine-key",
        "--out",
        &k,
        "--app",
        "myapp",
        "--env",
        "production",
        "--force",
    ]);
    assert_ne!(fs::read(&key).unwrap(), fs::read(&old).unwrap());
    env.ok(&run_args(&k, &["--all", "--", "true"]));
    let o = old.display().to_string();
    let out = env.run(&run_args(&o, &["--all", "--", "true"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("was not sealed for myapp/production with this machine key"));
}

#[test]
fn run_needs_no_tty_no_dbus_and_no_home_config() {
    let (env, key) = setup();
    let b = bundle(&env);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ov"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.root().join("nonexistent"))
        .args([
            "run",
            "--app",
            "myapp",
            "--env",
            "production",
            "--machine-key",
        ])
        .arg(&key)
        .arg("--bundle")
        .arg(&b)
        .args([
            "--secrets",
            "API_KEY",
            "--",
            "sh",
            "-c",
            "echo \"$API_KEY\"",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "s3cr3t value\n");
}

#[test]
fn secrets_dir_files_are_private_and_removed() {
    let (env, key) = setup();
    let k = key.display().to_string();
    let out = env.ok(&run_args(
        &k,
        &[
            "--all",
            "--secrets-dir",
            "--",
            "sh",
            "-c",
            "echo $API_KEY_FILE; stat -c %a $(dirname $API_KEY_FILE) $API_KEY_FILE; cat $API_KEY_FILE; echo; echo ${API_KEY-unset}",
        ],
    ));
    let lines: Vec<&str> = out.lines().collect();
    let file = PathBuf::from(lines[0]);
    assert!(file.starts_with(env.root().join("run")), "{out}");
    assert_eq!(&lines[1..], ["700", "600", "s3cr3t value", "unset"]);
    assert!(!file.parent().unwrap().exists());

    // SIGTERM to ov reaches the child, and the directory still goes.
    let mut cmd = env.command(&run_args(
        &k,
        &[
            "--all",
            "--secrets-dir",
            "--",
            "sh",
            "-c",
            "echo $API_KEY_FILE; exec sleep 30",
        ],
    ));
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let file = PathBuf::from(line.trim());
    assert!(file.exists());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(15));
    assert!(!file.parent().unwrap().exists());
}

#[test]
fn doctor_checks_keys_and_bundles() {
    let (env, key) = setup();
    let out = env.run(&["doctor", "machine-key"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("machine-key.myapp.production.bundle"),
        "{}",
        stdout(&out)
    );
    // Stale: the bundle predates the last change. (With a key the doctor
    // cannot use, that is all it can go by.)
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let b = bundle(&env);
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&b)
        .unwrap()
        .set_modified(old)
        .unwrap();
    env.ok(&["secrets", "list"]);
    let reg = env.config_dir().join("machine-keys.json");
    let text = fs::read_to_string(&reg).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let text = text.replace(
        "\"changed\": {}",
        &format!("\"changed\": {{\"myapp/production\": {now}}}"),
    );
    fs::write(&reg, text).unwrap();
    let out = env.run(&["doctor", "machine-key", "--json"]);
    let json = stdout(&out);
    assert!(json.contains("is older than the last change"), "{json}");
    assert!(
        json.contains("ov auth machine-key seal --app myapp --env production"),
        "{json}"
    );
    // A bad key mode fails with the same fix as ov run's error.
    let out = env.run(&["doctor", "machine-key", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("machine key has permissions 0644 — must be 0600"));
    assert!(stdout(&out).contains("chmod 600"));
}

#[test]
fn run_without_a_machine_key_reads_the_store() {
    let (env, _key) = setup();
    let out = env.ok(&[
        "run",
        "--app",
        "myapp",
        "--env",
        "production",
        "--secrets",
        "DATABASE_URL",
        "--",
        "sh",
        "-c",
        "echo $DATABASE_URL",
    ]);
    assert_eq!(out, "postgres://db/x\n");
    let out = env.run(&["run", "--app", "myapp", "--env", "production", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--secrets NAME,… or --all"));
}

#[test]
fn identity_prints_an_age_secret_key() {
    let (env, key) = setup();
    let k = key.display().to_string();
    let out = env.ok(&[
        "auth",
        "machine-key",
        "identity",
        "--machine-key",
        &k,
        "--app",
        "myapp",
        "--env",
        "production",
    ]);
    assert!(out.starts_with("AGE-SECRET-KEY-1"), "{out}");
    let other = env.ok(&[
        "auth",
        "machine-key",
        "identity",
        "--machine-key",
        &k,
        "--app",
        "other",
        "--env",
        "production",
    ]);
    assert_ne!(out, other);
}

#[test]
fn snapshots_of_run_help_and_a_key_error() {
    let (env, key) = setup();
    let out = env.run(&["run", "--help"]);
    crate::snap!("help_run", stdout(&out));
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    let k = key.display().to_string();
    let out = env.run(&run_args(&k, &["--all", "--", "true"]));
    crate::snap!("run_machine_key_mode_0640", env.transcript(&out));
}

#[test]
fn every_forwarded_signal_reaches_the_command_and_the_files_go() {
    use nix::sys::signal::Signal;
    let (env, key) = setup();
    let k = key.display().to_string();
    for (sig, name) in [
        (Signal::SIGHUP, "HUP"),
        (Signal::SIGINT, "INT"),
        (Signal::SIGTERM, "TERM"),
        (Signal::SIGQUIT, "QUIT"),
        (Signal::SIGUSR1, "USR1"),
        (Signal::SIGUSR2, "USR2"),
        (Signal::SIGWINCH, "WINCH"),
    ] {
        // The command says which signal it got and exits 42.
        let script = format!(
            "trap 'echo got-{name}; exit 42' {name}; echo $API_KEY_FILE; i=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done"
        );
        let mut cmd = env.command(&run_args(
            &k,
            &["--all", "--secrets-dir", "--", "sh", "-c", &script],
        ));
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let file = PathBuf::from(line.trim());
        assert!(file.exists(), "{name}: {line}");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
            sig,
        )
        .unwrap();
        // ov's own end first: had it died of the signal, the command would
        // still be running (for 10 s at most) with the files on disk.
        let status = child.wait().unwrap();
        let mut rest = String::new();
        out.read_line(&mut rest).unwrap();
        assert_eq!(rest.trim(), format!("got-{name}"), "{name}");
        assert_eq!(status.code(), Some(42), "{name}: {status:?}");
        assert!(
            !file.parent().unwrap().exists(),
            "{name}: the secrets directory stayed"
        );
    }
}

#[test]
fn names_another_tool_stored_never_leave_the_directory_or_override_a_variable() {
    let env = TestEnv::new();
    // Written by another tool: ov refuses such names itself.
    env.write(
        &env.credentials(),
        "[\"myapp/production\"]\nGOOD = \"ok\"\n\"../../planted\" = \"outside\"\n\"PATH=/tmp/evil:\" = \"x\"\n\"bad name\" = \"y\"\n",
        0o600,
    );
    let planted = env.root().join("planted");
    let out = env.run(&[
        "run",
        "--app",
        "myapp",
        "--env",
        "production",
        "--all",
        "--secrets-dir",
        "--",
        "sh",
        "-c",
        "printf '%s|%s' \"$PATH\" \"$(cat $GOOD_FILE)\"",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let path = std::env::var("PATH").unwrap();
    assert_eq!(stdout(&out), format!("{path}|ok"));
    assert!(!planted.exists());
    assert!(!env.root().join("run/planted").exists());
    let err = stderr(&out);
    for bad in ["../../planted", "PATH=/tmp/evil:", "bad name"] {
        assert!(
            err.contains(&format!("left out myapp/production entry \"{bad}\"")),
            "{err}"
        );
    }
    // Without --secrets-dir: the environment, and PATH is the caller's.
    let out = env.run(&[
        "run",
        "--app",
        "myapp",
        "--env",
        "production",
        "--all",
        "--",
        "sh",
        "-c",
        "printf '%s|%s' \"$PATH\" \"$GOOD\"",
    ]);
    assert_eq!(stdout(&out), format!("{path}|ok"), "{}", stderr(&out));

    // A bundle sealed from this store opens, without the bad names.
    let key = env.root().join("m.key").display().to_string();
    let out = env.run(&[
        "auth",
        "derive-machine-key",
        "--out",
        &key,
        "--app",
        "myapp",
        "--env",
        "production",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run(&[
        "run",
        "--app",
        "myapp",
        "--env",
        "production",
        "--machine-key",
        &key,
        "--all",
        "--",
        "sh",
        "-c",
        "printf '%s' \"$GOOD\"",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok");
}

#[test]
fn an_apps_secret_written_by_service_and_key_must_be_a_variable_name() {
    let (env, _key) = setup();
    for bad in ["../../x/planted", "PATH=/tmp/evil:", "bad name", "9LIVES"] {
        let out = env.run_stdin(&["secrets", "set", "myapp/production", bad], "v\n");
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("is not a variable name"),
            "{bad}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("hint: ov secrets set --app myapp --env production"),
            "{}",
            stderr(&out)
        );
    }
    // A service that is not a registered app keeps its free-form keys.
    let out = env.run_stdin(&["secrets", "set", "ov/vnc", "my-image"], "v\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        env.ok(&["secrets", "list", "--app", "myapp", "--env", "production"]),
        "API_KEY\nDATABASE_URL\n"
    );
}

/// An environment with myapp/production imported, and no key yet.
fn imported() -> TestEnv {
    common::with_app(DOTENV)
}

#[test]
fn issue15_derive_without_env_refuses_an_empty_bundle_and_names_the_env() {
    let env = imported();
    let key = env.root().join("m.key");
    let k = key.display().to_string();
    let out = env.run(&["auth", "derive-machine-key", "--out", &k, "--app", "myapp"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("ov: error: myapp/default holds no secrets"),
        "{err}"
    );
    assert!(
        err.contains("myapp's secrets are in --env production"),
        "{err}"
    );
    // Nothing was written: no key, no bundle, no registration.
    assert!(!key.exists());
    assert!(
        !env.root()
            .join("data/ov/bundles/myapp/default.age")
            .exists()
    );
    assert!(
        env.ok(&["auth", "machine-key", "list", "--json"])
            .contains("[]")
    );
    let fixes = hints_of(&out);
    assert_eq!(fixes.len(), 2, "{}", stderr(&out));
    assert!(
        fixes[1].contains("--env default --allow-empty"),
        "{}",
        fixes[1]
    );
    let fix = fixes[0].clone();
    assert_eq!(
        fix,
        format!("ov auth derive-machine-key --out {k} --app myapp --env production")
    );
    let pasted = env.paste(&fix);
    assert!(pasted.status.success(), "{}", stderr(&pasted));
    let out = env.ok(&run_args(
        &k,
        &["--all", "--", "sh", "-c", "echo \"$API_KEY\""],
    ));
    assert_eq!(out, "s3cr3t value\n");

    // Asked for, an empty bundle is sealed; so is adding a key to an empty env.
    let out = env.run(&[
        "auth",
        "machine-key",
        "add",
        &k,
        "--app",
        "myapp",
        "--env",
        "staging",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        hints_of(&out)[0],
        format!("ov auth machine-key add {k} --app myapp --env production")
    );
    let allow = hints_of(&out)
        .into_iter()
        .find(|h| h.contains("--allow-empty"))
        .expect("an --allow-empty hint");
    let pasted = env.paste(&allow);
    assert!(pasted.status.success(), "{}", stderr(&pasted));
    assert!(
        env.root()
            .join("data/ov/bundles/myapp/staging.age")
            .exists()
    );
}

fn hints_of(out: &std::process::Output) -> Vec<String> {
    common::hints(out)
}

#[test]
fn issue15_run_all_never_starts_with_zero_secrets_and_names_the_env() {
    let (env, key) = setup();
    let k = key.display().to_string();
    let marker = env.root().join("started");
    let m = format!("touch {}; echo \"$API_KEY\"", marker.display());
    // Machine key, no bundle for myapp/default.
    let out = env.run(&[
        "run",
        "--app",
        "myapp",
        "--machine-key",
        &k,
        "--all",
        "--",
        "sh",
        "-c",
        &m,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did you mean --env production?"),
        "{}",
        stderr(&out)
    );
    assert!(!marker.exists());
    let fix = common::hint_starting(&out, "ov run ");
    assert!(fix.contains("--env production"), "{fix}");
    let pasted = env.paste(&fix);
    assert!(pasted.status.success(), "{}", stderr(&pasted));
    assert_eq!(stdout(&pasted), "s3cr3t value\n");
    fs::remove_file(&marker).unwrap();

    // An empty bundle (sealed on purpose) does not start the command either.
    env.ok(&[
        "auth",
        "machine-key",
        "add",
        &k,
        "--app",
        "myapp",
        "--env",
        "staging",
        "--allow-empty",
    ]);
    let out = env.run(&[
        "run",
        "--app",
        "myapp",
        "--env",
        "staging",
        "--machine-key",
        &k,
        "--all",
        "--",
        "sh",
        "-c",
        &m,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("holds no secrets"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("did you mean --env production?"),
        "{}",
        stderr(&out)
    );
    assert!(!marker.exists());
    let pasted = env.paste(&common::hint_starting(&out, "ov run "));
    assert_eq!(stdout(&pasted), "s3cr3t value\n", "{}", stderr(&pasted));
    fs::remove_file(&marker).unwrap();

    // From the store: myapp/default holds nothing.
    let out = env.run(&["run", "--app", "myapp", "--all", "--", "sh", "-c", &m]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ov: error: myapp/default holds no secrets, so the command was not started; did you mean --env production?"),
        "{}",
        stderr(&out)
    );
    assert!(!marker.exists());
    let fix = common::hint_starting(&out, "ov run ");
    let pasted = env.paste(&fix);
    assert_eq!(stdout(&pasted), "s3cr3t value\n", "{}", stderr(&pasted));
    for h in hints_of(&out) {
        assert!(env.paste(&h).status.success(), "{h}");
    }
}

#[test]
fn issue15_run_exits_127_for_a_missing_command_and_126_for_one_not_executable() {
    let (env, key) = setup();
    let k = key.display().to_string();
    for dir in [&[][..], &["--secrets-dir"][..]] {
        let mut args = run_args(&k, &["--all"]);
        args.extend_from_slice(dir);
        let mut missing = args.clone();
        missing.extend_from_slice(&["--", "no-such-command-ov-test"]);
        let out = env.run(&missing);
        assert_eq!(out.status.code(), Some(127), "{dir:?}: {}", stderr(&out));
        assert!(
            stderr(&out)
                .starts_with("ov: error: cannot run no-such-command-ov-test: command not found"),
            "{}",
            stderr(&out)
        );
        for h in hints_of(&out) {
            // A diagnosis, not a fix: it runs as printed and says so.
            let pasted = env.paste(&h);
            assert!(stdout(&pasted).contains("is not on PATH"), "{h}");
        }
        let mut missing = args.clone();
        missing.extend_from_slice(&["--", "./nowhere/server"]);
        let out = env.run(&missing);
        assert_eq!(out.status.code(), Some(127), "{dir:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("no such file"), "{}", stderr(&out));

        // Not executable: 126, and the hint makes it so.
        let script = env.root().join("server.sh");
        env.write(&script, "#!/bin/sh\necho \"ran $API_KEY\"\n", 0o644);
        let mut run = args.clone();
        run.extend_from_slice(&["--", "./server.sh"]);
        let out = env.run(&run);
        assert_eq!(out.status.code(), Some(126), "{dir:?}: {}", stderr(&out));
        assert!(
            stderr(&out)
                .starts_with("ov: error: cannot run ./server.sh: ./server.sh is not executable"),
            "{}",
            stderr(&out)
        );
        let fix = common::hint_starting(&out, "chmod");
        assert_eq!(fix, "chmod +x ./server.sh");
        assert!(env.paste(&fix).status.success());
        let out = env.run(&run);
        assert!(out.status.success(), "{}", stderr(&out));
        if dir.is_empty() {
            assert_eq!(stdout(&out), "ran s3cr3t value\n");
        }

        // A bare name is looked up on PATH only, as in a shell; the hint
        // gives the file's path.
        let mut bare = args.clone();
        bare.extend_from_slice(&["--", "server.sh"]);
        let out = env.run(&bare);
        assert_eq!(out.status.code(), Some(127), "{dir:?}: {}", stderr(&out));
        let fix = common::hint_starting(&out, "ov run ");
        assert!(fix.contains(" -- ./server.sh"), "{fix}");
        let pasted = env.paste(&fix);
        assert!(pasted.status.success(), "{}", stderr(&pasted));
        if dir.is_empty() {
            assert_eq!(stdout(&pasted), "ran s3cr3t value\n");
        }

        // A directory is not a program.
        let mut d = args.clone();
        d.extend_from_slice(&["--", "./data"]);
        let out = env.run(&d);
        assert_eq!(out.status.code(), Some(126), "{dir:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));
        fs::remove_file(&script).unwrap();
    }
    // The store path behaves the same.
    let out = env.run(&[
        "run",
        "--app",
        "myapp",
        "--env",
        "production",
        "--all",
        "--",
        "no-such-command-ov-test",
    ]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
}

#[test]
fn issue15_a_missing_directory_for_the_key_gets_the_mkdir_that_makes_it() {
    let env = imported();
    let key = env.root().join("keys/deploy/m.key");
    let k = key.display().to_string();
    let derive = [
        "auth",
        "derive-machine-key",
        "--out",
        &k,
        "--app",
        "myapp",
        "--env",
        "production",
    ];
    let out = env.run(&derive);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "ov: error: cannot create {k}: no such file or directory"
        )),
        "{}",
        stderr(&out)
    );
    let fix = common::hint_starting(&out, "mkdir");
    assert_eq!(
        fix,
        format!(
            "mkdir -p -m 700 {}",
            env.root().join("keys/deploy").display()
        )
    );
    assert!(env.paste(&fix).status.success());
    env.ok(&derive);
    assert_eq!(mode_of(&key), 0o600);
}

#[test]
fn issue15_doctor_compares_the_bundle_with_the_store_and_seal_all_reseals_every_app() {
    let (env, key) = setup();
    let k = key.display().to_string();
    env.ok(&[
        "secrets", "set", "--app", "other", "--env", "staging", "TOKEN", "t1",
    ]);
    env.ok(&[
        "auth",
        "machine-key",
        "add",
        &k,
        "--app",
        "other",
        "--env",
        "staging",
    ]);
    let out = env.ok(&["doctor", "machine-key"]);
    assert!(out.contains("holds what the store holds"), "{out}");
    // Both changed behind ov's back, as KeePassXC or secret-tool would:
    // the registry records no change, only the store knows.
    let creds = fs::read_to_string(env.credentials()).unwrap();
    assert!(
        creds.contains("postgres://db/x") && creds.contains("t1"),
        "{creds}"
    );
    fs::write(
        env.credentials(),
        creds
            .replace("postgres://db/x", "postgres://db/y")
            .replace("t1", "t2"),
    )
    .unwrap();
    let out = env.run(&["doctor", "machine-key", "--json"]);
    let json = stdout(&out);
    assert!(
        json.contains("is stale: DATABASE_URL changed in the store"),
        "{json}"
    );
    assert!(json.contains("TOKEN changed in the store"), "{json}");
    assert!(
        json.contains("\"fix\": \"ov auth machine-key seal --app myapp --env production\""),
        "{json}"
    );
    // The doctor's fix, pasted, makes that app current.
    let pasted = env.paste("ov auth machine-key seal --app myapp --env production");
    assert!(pasted.status.success(), "{}", stderr(&pasted));
    let out = env.ok(&run_args(
        &k,
        &["--all", "--", "sh", "-c", "echo \"$DATABASE_URL\""],
    ));
    assert_eq!(out, "postgres://db/y\n");
    // seal --all does every registered app.
    let out = env.run(&["auth", "machine-key", "seal", "--all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("sealed myapp/production"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("sealed other/staging"),
        "{}",
        stderr(&out)
    );
    let out = env.ok(&["doctor", "machine-key"]);
    assert!(!out.contains("stale"), "{out}");
    let out = env.ok(&[
        "run",
        "--app",
        "other",
        "--env",
        "staging",
        "--machine-key",
        &k,
        "--all",
        "--",
        "sh",
        "-c",
        "echo \"$TOKEN\"",
    ]);
    assert_eq!(out, "t2\n");
}

#[test]
fn issue15_a_key_directory_the_service_account_cannot_write_gets_the_chown() {
    use std::os::unix::fs::chown;
    // A tree the service account (nobody) can use, and /etc/ov made by root.
    let base = tempfile::Builder::new()
        .prefix("ov-svc.")
        .tempdir_in("/tmp")
        .unwrap();
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).unwrap();
    for d in ["home", "config", "data"] {
        let p = base.path().join(d);
        fs::create_dir(&p).unwrap();
        chown(&p, Some(65534), Some(65534)).unwrap();
    }
    let etc_ov = base.path().join("etc-ov");
    fs::create_dir(&etc_ov).unwrap();
    fs::set_permissions(&etc_ov, fs::Permissions::from_mode(0o755)).unwrap();
    let key = etc_ov.join("myapp.key");
    let k = key.display().to_string();
    let as_nobody = || {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_ov"))
            .args([
                "auth",
                "derive-machine-key",
                "--out",
                &k,
                "--app",
                "myapp",
                "--env",
                "production",
                "--allow-empty",
            ])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", base.path().join("home"))
            .env("XDG_CONFIG_HOME", base.path().join("config"))
            .env("XDG_DATA_HOME", base.path().join("data"))
            .env("OV_SYSTEM_PLUGIN_DIR", base.path().join("none"))
            .env("OV_SYSCONFDIR", base.path().join("none"))
            .current_dir(base.path())
            .output()
            .expect("setpriv (util-linux)")
    };
    let out = as_nobody();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("ov: error: cannot create {k}: permission denied")),
        "{}",
        stderr(&out)
    );
    let fix = common::hint_starting(&out, "chown");
    assert_eq!(
        fix,
        format!("chown nobody {}   # as root", etc_ov.display())
    );
    // Pasted as root (what the comment says), it lets the account write there.
    let pasted = std::process::Command::new("sh")
        .arg("-c")
        .arg(&fix)
        .output()
        .unwrap();
    assert!(pasted.status.success(), "{}", stderr(&pasted));
    let out = as_nobody();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&fs::metadata(&key).unwrap()),
        65534
    );
}

/// The unit template the packages ship (packaging/systemd/ov-run@.service),
/// under a real systemd, set up as its header says: the service account
/// derives its key and bundle into /etc/ov, the admin writes the instance's
/// conf and enables `ov-run@myapp`. The program gets its secret, with its
/// `$OV_COMMAND` split into words by systemd as documented; it is back
/// after a reboot; a missing key fails the start, never a quiet skip.
#[test]
fn the_packaged_unit_template_starts_a_service_with_its_secrets() {
    use common::systemd::{Machine, ok};
    let mut m = Machine::boot();
    let ov = m.install_ov();
    let unit = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/systemd/ov-run@.service"
    );
    ok(
        m.root(&format!(
            "install -m 755 {} /usr/bin/ov && install -m 644 {unit} /etc/systemd/system/ov-run@.service",
            ov.display()
        )),
        "install the package's files",
    );
    m.add_user("myapp");
    let home = m.home("myapp");
    ok(
        m.root("install -d -o myapp -g myapp -m 700 /etc/ov"),
        "/etc/ov for the account",
    );
    fs::write(
        home.join("serve"),
        "#!/bin/sh\nprintf '%s|%s' \"$DATABASE_URL\" \"$1\" > \"$HOME/got\"\nexec sleep 1000\n",
    )
    .expect("write serve");
    fs::set_permissions(home.join("serve"), fs::Permissions::from_mode(0o755)).expect("chmod");
    ok(
        m.user(
            "myapp",
            "ov settings set secret_backend config && \
             printf 'DATABASE_URL=postgres://db/x\\n' > .env && \
             ov secrets import .env --app myapp --env prod && rm .env && \
             ov auth derive-machine-key --out /etc/ov/myapp.key --app myapp --env prod --bundle /etc/ov/myapp.age",
        ),
        "key and bundle",
    );
    ok(
        m.root(&format!(
            "chown root:root /etc/ov && chmod 755 /etc/ov && \
             printf 'OV_ENV=prod\\nOV_COMMAND={} --serve\\n' > /etc/ov/myapp.conf && \
             systemctl enable --now ov-run@myapp.service",
            "/home/myapp/serve"
        )),
        "enable ov-run@myapp",
    );
    let got = home.join("got");
    let served = |m: &Machine| {
        m.wait_for("the service to start with its secret", || got.exists());
        fs::read_to_string(&got).expect("got")
    };
    assert_eq!(served(&m), "postgres://db/x|--serve");
    // The account's own store is not read: the unit has only the key and
    // the bundle (the sealed file, not the value, is what is on disk).
    let sealed = fs::read(m.dir().join("etc-up/ov/myapp.age")).expect("bundle");
    assert!(!String::from_utf8_lossy(&sealed).contains("postgres://db/x"));
    // A reboot: nobody logs in, the service comes back with its secret.
    fs::remove_file(&got).expect("rm got");
    m.reboot();
    assert_eq!(served(&m), "postgres://db/x|--serve");
    // A missing key: the start fails (and is retried, Restart=on-failure),
    // it is not skipped.
    // What it says goes to the journal; there is no journald here, so a
    // drop-in sends the same stderr to a file.
    ok(
        m.root(
            "systemctl stop ov-run@myapp && mv /etc/ov/myapp.key /etc/ov/myapp.key.away && \
             mkdir /etc/systemd/system/ov-run@myapp.service.d && \
             printf '[Service]\\nStandardError=file:/run/ov-run-myapp.err\\n' \
               > /etc/systemd/system/ov-run@myapp.service.d/stderr.conf && \
             systemctl daemon-reload",
        ),
        "move the key away",
    );
    fs::remove_file(&got).expect("rm got");
    let _ = m.root("systemctl start ov-run@myapp");
    m.wait_for("the start without a key to fail", || {
        stdout(&m.root("systemctl show -p Result -p ExecMainStatus ov-run@myapp"))
            == "Result=exit-code\nExecMainStatus=1\n"
    });
    assert!(!got.exists());
    let said = stdout(&m.root("cat /run/ov-run-myapp.err"));
    assert!(said.starts_with("ov: error: opening machine key"), "{said}");
    // Its fix names the unit's bundle; the account pastes it (with /etc/ov
    // its own for the moment, as when the key was first made), and the
    // service starts with its secret again.
    let fix = said
        .lines()
        .find_map(|l| l.strip_prefix("hint: "))
        .unwrap_or_else(|| panic!("no hint: {said}"))
        .to_owned();
    assert_eq!(
        fix,
        "ov auth derive-machine-key --out /etc/ov/myapp.key --app myapp --env prod --force --bundle /etc/ov/myapp.age"
    );
    ok(m.root("chown myapp: /etc/ov"), "lend /etc/ov");
    ok(m.user("myapp", &fix), &fix);
    ok(
        m.root("chown root: /etc/ov && systemctl restart ov-run@myapp"),
        "restart",
    );
    assert_eq!(served(&m), "postgres://db/x|--serve");
}

/// Every ov process, not only the agent, may hold a master password or
/// secret values: it is not dumpable (its /proc/PID is root's even when it
/// runs as nobody, so no other process of nobody can ptrace it or read
/// its memory) and its soft core limit is 0, while the command `ov run`
/// starts gets the limit ov was started with.
#[test]
fn ov_dumps_no_core_and_the_command_it_runs_keeps_its_limit() {
    use std::os::unix::fs::MetadataExt;
    let (env, key) = setup();
    let key = key.display().to_string();
    env.ok(&["settings", "set", "secret_backend", "config"]);
    let chown = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(env.root())
        .status()
        .expect("chown");
    assert!(chown.success());
    let wrapper = [
        &["prlimit", "--core=4096:unlimited", "--"][..],
        &common::AS_NOBODY,
    ]
    .concat();
    // `ov secrets set` waits for the value on its stdin: look at it then.
    let mut set = env
        .command_under(&wrapper, &["secrets", "set", "svc", "key"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit and setpriv (util-linux)");
    let proc_dir = PathBuf::from(format!("/proc/{}", set.id()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let limits = loop {
        let comm = fs::read_to_string(proc_dir.join("comm")).unwrap_or_default();
        let limits = fs::read_to_string(proc_dir.join("limits")).unwrap_or_default();
        if comm == "ov\n" && limits.contains("Max core file size") && core_limits(&limits)[0] == "0"
        {
            break limits;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ov never took its core limit down: {comm} {limits}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert_eq!(core_limits(&limits), ["0", "unlimited"]);
    let status = fs::read_to_string(proc_dir.join("status")).expect("status");
    assert!(status.contains("\nUid:\t65534\t"), "{status}");
    assert_eq!(
        fs::metadata(proc_dir.join("mem")).expect("mem").uid(),
        0,
        "a dumpable process's /proc/PID/mem is its own user's"
    );
    {
        use std::io::Write;
        let mut stdin = set.stdin.take().expect("stdin");
        stdin.write_all(b"v").expect("write");
    }
    let out = set.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", stderr(&out));
    // The command `ov run` execs: the limit ov was started with.
    let out = env
        .command_under(
            &wrapper,
            &run_args(&key, &["--all", "--", "cat", "/proc/self/limits"]),
        )
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(core_limits(&stdout(&out)), ["4096", "unlimited"]);
}

/// A forgotten `--app`: the hint is the command as typed with the app
/// that has a bundle for that env, and it works pasted.
#[test]
fn a_forgotten_app_is_hinted_as_the_command_with_the_app_there_is() {
    let (env, key) = setup();
    let key = key.display().to_string();
    let script = "printf %s \"$DATABASE_URL $MODE\"";
    let file = env.root().join("extra.env");
    env.write(&file, "MODE=dev\n", 0o600);
    let file = file.display().to_string();
    let out = env.run(&[
        "run",
        "--env-file",
        &file,
        "--env",
        "production",
        "--machine-key",
        &key,
        "--all",
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let fix = common::hint_starting(&out, "ov run ");
    assert_eq!(
        fix,
        format!(
            "ov run --app myapp --env-file {file} --env production --machine-key {key} --all -- sh -c 'printf %s \"$DATABASE_URL $MODE\"'"
        )
    );
    let out = env.paste(&fix);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "postgres://db/x dev");
    // The same for the agent's client, whose --env needs an --app.
    let out = env.run(&["run", "--agent", "--env", "production", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        common::hints(&out),
        ["ov run --app myapp --agent --env production -- true"]
    );
}
