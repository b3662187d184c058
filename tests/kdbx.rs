//! The KeePass backend against the real tools: keepassxc-cli for the file
//! format both ways, a real pseudo-terminal for prompts and retries, and the
//! real kernel keyring for the password cache.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{TestEnv, expect, mode_of, stderr, stdout};

const PW: &str = "correct horse battery";

/// A test environment with a fresh kdbx database made by `ov secrets init`.
fn with_db() -> TestEnv {
    let mut env = TestEnv::new();
    env.ok(&["settings", "set", "secrets.kdbx_cache_timeout", "120"]);
    env.set_env("OV_KDBX_PASSWORD", PW);
    env.ok(&["secrets", "init"]);
    env
}

fn db(env: &TestEnv) -> PathBuf {
    env.config_dir().join("secrets.kdbx")
}

/// `keepassxc-cli ARGS` with `stdin`; the reference client for the format.
fn kpx(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new("keepassxc-cli")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run keepassxc-cli ({e}); ./scripts/test installs it (Debian package: keepassxc)")
        });
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("keepassxc-cli")
}

fn kpx_show(db: &Path, entry: &str, extra: &[&str], stdin: &str) -> String {
    let db = db.display().to_string();
    let mut args = vec!["show", "-q", "-a", "Password"];
    args.extend_from_slice(extra);
    args.push(&db);
    args.push(entry);
    let out = kpx(&args, stdin);
    assert!(
        out.status.success(),
        "keepassxc-cli show failed: {}",
        stderr(&out)
    );
    stdout(&out)
}

fn digest(path: &Path) -> Vec<u8> {
    fs::read(path).expect("read database")
}

#[test]
fn init_creates_a_private_kdbx4_and_records_it() {
    let env = with_db();
    let db = db(&env);
    assert_eq!(mode_of(&db), 0o600);
    assert_eq!(
        env.normalize(&env.ok(&["settings", "get", "secrets.kdbx_path"])),
        "[TMP]/config/ov/secrets.kdbx\n"
    );
    let info = kpx(
        &["db-info", "-q", &db.display().to_string()],
        &format!("{PW}\n"),
    );
    let info = stdout(&info);
    assert!(info.contains("KDF: Argon2id"), "{info}");

    // A second init refuses and leaves the database alone.
    let before = digest(&db);
    let out = env.run(&["secrets", "init"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already exists; refusing to overwrite it"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--force"));
    assert_eq!(digest(&db), before);
    // --force replaces it.
    assert!(env.run(&["secrets", "init", "--force"]).status.success());
    assert_ne!(digest(&db), before);
}

#[test]
fn a_database_written_by_ov_opens_in_keepassxc() {
    let env = with_db();
    env.run_stdin(&["secrets", "set", "ov/vnc", "my-image"], "s3cret value\n");
    env.run_stdin(&["secrets", "set", "ov/vnc", "other"], "two\n");
    assert_eq!(
        kpx_show(&db(&env), "ov/vnc/my-image", &[], &format!("{PW}\n")),
        "s3cret value\n"
    );
    assert_eq!(
        kpx_show(&db(&env), "ov/vnc/other", &[], &format!("{PW}\n")),
        "two\n"
    );
    assert_eq!(
        env.ok(&["secrets", "list"]),
        "ov/vnc/my-image\nov/vnc/other\n"
    );
    let which = env.normalize(&env.ok(&["secrets", "which", "ov/vnc", "other"]));
    assert_eq!(which, "kdbx\t[TMP]/config/ov/secrets.kdbx\n");
}

#[test]
fn key_file_with_password_and_key_file_alone() {
    let mut env = TestEnv::new();
    env.set_env("OV_KDBX_PASSWORD", PW);
    let key = env.root().join("db.key");
    let key_s = key.display().to_string();
    env.ok(&["secrets", "init", "--key-file", &key_s]);
    assert_eq!(mode_of(&key), 0o600);
    assert_eq!(fs::metadata(&key).unwrap().len(), 32);
    env.run_stdin(&["secrets", "set", "s", "k"], "both\n");
    assert_eq!(
        kpx_show(&db(&env), "s/k", &["-k", &key_s], &format!("{PW}\n")),
        "both\n"
    );

    // Key file alone: no password anywhere.
    let mut alone = TestEnv::new();
    let key2 = alone.root().join("only.key");
    let key2_s = key2.display().to_string();
    alone.ok(&["secrets", "init", "--key-file", &key2_s, "--no-password"]);
    alone.run_stdin(&["secrets", "set", "s", "k"], "keyfile-only\n");
    assert_eq!(alone.ok(&["secrets", "get", "s", "k"]), "keyfile-only\n");
    assert_eq!(
        kpx_show(&db(&alone), "s/k", &["--no-password", "-k", &key2_s], ""),
        "keyfile-only\n"
    );
    // Missing key file: clear error, database untouched.
    let before = digest(&db(&alone));
    fs::remove_file(&key2).unwrap();
    let out = alone.run(&["secrets", "get", "s", "k"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot open the key file"),
        "{}",
        stderr(&out)
    );
    assert_eq!(digest(&db(&alone)), before);
    alone.set_env("OV_KDBX_PASSWORD", "x");
}

#[test]
fn a_keepassxc_kdbx31_database_is_read_then_upgraded_with_a_backup() {
    let mut env = TestEnv::new();
    let db = env.root().join("kpx.kdbx");
    let db_s = db.display().to_string();
    let pw = format!("{PW}\n");
    assert!(
        kpx(&["db-create", "-q", "-p", &db_s], &format!("{PW}\n{PW}\n"))
            .status
            .success()
    );
    assert!(kpx(&["mkdir", "-q", &db_s, "svc"], &pw).status.success());
    assert!(
        kpx(
            &["add", "-q", "-p", &db_s, "svc/key"],
            &format!("{PW}\nfrom-keepassxc\n")
        )
        .status
        .success()
    );
    let info = stdout(&kpx(&["db-info", "-q", &db_s], &pw));
    assert!(
        info.contains("KDF: AES"),
        "expected a KDBX 3.1 database: {info}"
    );

    env.ok(&["settings", "set", "secrets.kdbx_path", &db_s]);
    env.set_env("OV_KDBX_PASSWORD", PW);
    assert_eq!(
        env.ok(&["secrets", "get", "svc", "key"]),
        "from-keepassxc\n"
    );
    let doctor = stdout(&env.run(&["doctor", "kdbx", "--timeout", "30000"]));
    assert!(
        doctor.contains("✓ kdbx.format") && doctor.contains("KDBX 3.1; ov upgrades it"),
        "{doctor}"
    );

    let original = digest(&db);
    let out = env.run_stdin(&["secrets", "set", "svc", "added"], "from-ov\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is KDBX 3.1; ov saves it as KDBX 4.1 and keeps the original as"),
        "{}",
        stderr(&out)
    );
    let backup = env.root().join("kpx.kdbx.kdbx3.bak");
    assert_eq!(
        digest(&backup),
        original,
        "the backup is the untouched original"
    );
    assert_eq!(mode_of(&backup), 0o600);
    // Both tools read both entries afterwards.
    assert_eq!(kpx_show(&db, "svc/key", &[], &pw), "from-keepassxc\n");
    assert_eq!(kpx_show(&db, "svc/added", &[], &pw), "from-ov\n");
    assert!(stdout(&kpx(&["db-info", "-q", &db_s], &pw)).contains("KDF: Argon2"));
    assert_eq!(env.ok(&["secrets", "get", "svc", "added"]), "from-ov\n");
}

#[test]
fn keepassxc_edits_are_seen_by_ov_and_the_other_way_round() {
    let env = with_db();
    let db_s = db(&env).display().to_string();
    let pw = format!("{PW}\n");
    env.run_stdin(&["secrets", "set", "app/prod", "A"], "1\n");
    assert!(
        kpx(
            &["add", "-q", "-p", &db_s, "app/prod/B"],
            &format!("{PW}\n2\n")
        )
        .status
        .success()
    );
    assert!(
        kpx(
            &["edit", "-q", "-p", &db_s, "app/prod/A"],
            &format!("{PW}\n11\n")
        )
        .status
        .success()
    );
    assert_eq!(env.ok(&["secrets", "get", "app/prod", "A"]), "11\n");
    assert_eq!(env.ok(&["secrets", "get", "app/prod", "B"]), "2\n");
    env.ok(&["secrets", "delete", "app/prod", "B"]);
    let out = kpx(&["show", "-q", &db_s, "app/prod/B"], &pw);
    assert!(!out.status.success(), "B should be gone");
}

#[test]
fn no_terminal_and_no_password_fails_fast_with_the_exact_error() {
    let mut env = with_db();
    env.set_env("OV_KDBX_PASSWORD", "");
    // An empty variable is refused, never tried.
    let out = env.run(&["secrets", "get", "s", "k"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("OV_KDBX_PASSWORD is set but empty"),
        "{}",
        stderr(&out)
    );

    let env = {
        let mut e = TestEnv::new();
        e.set_env("OV_KDBX_PASSWORD", PW);
        e.ok(&["secrets", "init"]);
        e
    };
    let mut cmd = env.command(&["secrets", "get", "s", "k"]);
    cmd.env_remove("OV_KDBX_PASSWORD").stdin(Stdio::null());
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).lines().next().unwrap(),
        "ov: error: kdbx password required but stdin is not a terminal; set OV_KDBX_PASSWORD=<password> or run interactively"
    );
    // The same inside a systemd unit.
    let mut cmd = env.command(&["secrets", "get", "s", "k"]);
    cmd.env_remove("OV_KDBX_PASSWORD")
        .env("INVOCATION_ID", "abc")
        .stdin(Stdio::null());
    let out = cmd.output().unwrap();
    assert!(stderr(&out).contains("stdin is not a terminal"));
}

#[test]
fn a_wrong_env_password_without_a_terminal_fails_with_the_reason() {
    let mut env = with_db();
    env.set_env("OV_KDBX_PASSWORD", "wrong");
    let out = env.run(&["secrets", "get", "s", "k"]);
    assert_eq!(out.status.code(), Some(1));
    let err = env.normalize(&stderr(&out));
    assert!(
        err.starts_with("ov: error: decoding kdbx: Wrong password?"),
        "{err}"
    );
    assert!(
        err.contains("hint: OV_KDBX_PASSWORD holds a password that does not open"),
        "{err}"
    );
}

/// Drive a prompt through a real terminal: each answer is sent after the
/// prompt shows; returns the expect output.
fn prompt_session(env: &TestEnv, args: &str, answers: &[&str], tail: &str) -> Output {
    let mut script = format!("spawn $ov {args}\n");
    for (i, a) in answers.iter().enumerate() {
        if i > 0 {
            script.push_str("expect \"Sorry, try again.\"\n");
        }
        script.push_str(&format!("expect \"kdbx password for \"\nsend \"{a}\\r\"\n"));
    }
    script.push_str(tail);
    script.push_str("\nexpect eof\ncatch wait result\nexit [lindex $result 3]\n");
    expect(env, &script)
}

#[test]
fn wrong_passwords_are_retried_three_times_in_all() {
    let mut env = with_db();
    env.run_stdin(&["secrets", "set", "s", "k"], "the-value\n");
    env.set_env("OV_KDBX_PASSWORD", "");
    let mut env2 = env;
    env2.unset_env("OV_KDBX_PASSWORD");
    env2.ok(&["settings", "set", "secrets.kdbx_cache", "false"]);

    let out = prompt_session(
        &env2,
        "secrets get s k",
        &["nope", "still-nope", PW],
        "expect \"the-value\"",
    );
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(
        stdout(&out).matches("Sorry, try again.").count(),
        2,
        "{}",
        stdout(&out)
    );

    let out = prompt_session(
        &env2,
        "secrets get s k",
        &["a", "b", "c"],
        "expect \"Wrong password?\"",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(!stdout(&out).contains("the-value"));
}

#[test]
fn a_wrong_env_password_on_a_terminal_reprompts() {
    let mut env = with_db();
    env.run_stdin(&["secrets", "set", "s", "k"], "v\n");
    env.set_env("OV_KDBX_PASSWORD", "wrong-from-env");
    let out = expect(
        &env,
        &format!(
            "spawn $ov secrets get s k\nexpect \"Sorry, try again.\"\nexpect \"kdbx password for \"\nsend \"{PW}\\r\"\nexpect \"v\"\nexpect eof\ncatch wait result\nexit [lindex $result 3]\n"
        ),
    );
    assert!(out.status.success(), "{}", stdout(&out));
}

/// `keyctl session - ov ARGS…`: ov in a fresh session keyring that does not
/// link the user keyring, as under ssh, `su` or systemd.
fn in_fresh_session(env: &TestEnv, args: &[&str], with_env_password: bool) -> Output {
    let mut k = env.in_fresh_keyring_session(args);
    if !with_env_password {
        k.env_remove("OV_KDBX_PASSWORD");
    }
    k.output().unwrap_or_else(|e| {
        panic!("cannot run keyctl ({e}); ./scripts/test installs it (Debian package: keyutils)")
    })
}

#[test]
fn the_cache_serves_a_fresh_session_keyring_and_lock_clears_it() {
    let env = with_db();
    env.run_stdin(&["secrets", "set", "s", "k"], "cached-read\n");
    let out = in_fresh_session(&env, &["secrets", "unlock"], true);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cached in the kernel keyring for 120 s"),
        "{}",
        stderr(&out)
    );

    // No env, no terminal, another fresh session: the cache answers.
    let out = in_fresh_session(&env, &["secrets", "get", "s", "k"], false);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "cached-read\n");
    let doctor = stdout(&in_fresh_session(
        &env,
        &["doctor", "kdbx", "--timeout", "30000"],
        false,
    ));
    assert!(
        doctor.contains("✓ kdbx.unlock") && doctor.contains("expires in"),
        "{doctor}"
    );

    // Another database never gets this one's password.
    let other = TestEnv::new();
    let out = in_fresh_session(&other, &["secrets", "get", "s", "k"], false);
    assert!(!stdout(&out).contains("cached-read"));

    assert!(
        in_fresh_session(&env, &["secrets", "lock"], false)
            .status
            .success()
    );
    let out = in_fresh_session(&env, &["secrets", "get", "s", "k"], false);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("stdin is not a terminal"),
        "{}",
        stderr(&out)
    );
}

/// Issue 16: the cache key is now `ov-kdbx:<path>`, the engine's name for
/// any backend's secret. A password an earlier ov cached under
/// `ov-kdbx-password:<path>` still opens the database, and moves to the
/// new name; `lock` forgets both. The doctor shows the time left, not the
/// key's permission mask.
#[test]
fn a_password_cached_under_the_old_name_keeps_working_and_moves() {
    let env = with_db();
    env.run_stdin(&["secrets", "set", "s", "k"], "migrated\n");
    let db = db(&env).display().to_string();
    let (old, new) = (format!("ov-kdbx-password:{db}"), format!("ov-kdbx:{db}"));
    // What the earlier ov left: the password in the user keyring, in a
    // session of its own, readable by the user.
    let script = format!(
        "keyctl link @u @s >/dev/null && id=$(printf %s '{PW}' | keyctl padd user '{old}' @u) && keyctl setperm $id 0x3f3f0000 && keyctl timeout $id 600"
    );
    let out = Command::new("keyctl")
        .args(["session", "-", "sh", "-c", &script])
        .output()
        .expect("keyctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let search = |name: &str| {
        Command::new("keyctl")
            .args([
                "session",
                "-",
                "sh",
                "-c",
                &format!("keyctl link @u @s && keyctl search @u user '{name}'"),
            ])
            .output()
            .expect("keyctl")
            .status
            .success()
    };
    let out = in_fresh_session(&env, &["secrets", "get", "s", "k"], false);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "migrated\n");
    assert!(search(&new), "not moved to {new}");
    assert!(!search(&old), "{old} left behind");
    let doctor = stdout(&in_fresh_session(&env, &["doctor", "kdbx.cache"], false));
    let line = doctor
        .lines()
        .find(|l| l.contains("kdbx.cache"))
        .unwrap_or_default()
        .to_owned();
    assert!(line.contains("the password (expires in "), "{doctor}");
    let left = line
        .split("the password (expires in ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_default();
    assert!(
        left.ends_with('m') || left.ends_with('h') || left.ends_with('s'),
        "not a time: {line}"
    );
    assert!(
        in_fresh_session(&env, &["secrets", "lock"], false)
            .status
            .success()
    );
    assert!(!search(&new));
}

#[test]
fn bad_database_files_are_refused_and_left_as_they_are() {
    let mut env = with_db();
    env.run_stdin(&["secrets", "set", "s", "k"], "v\n");
    let db = db(&env);
    let good = digest(&db);

    // Truncated.
    fs::write(&db, &good[..good.len() / 2]).unwrap();
    let out = env.run_stdin(&["secrets", "set", "s", "k2"], "x\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not a readable KeePass database"),
        "{}",
        stderr(&out)
    );
    assert_eq!(digest(&db), &good[..good.len() / 2]);

    // Not a kdbx at all.
    fs::write(&db, b"hello, I am a text file\n").unwrap();
    let out = env.run(&["secrets", "get", "s", "k"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not a readable KeePass database"),
        "{}",
        stderr(&out)
    );

    // A directory.
    fs::remove_file(&db).unwrap();
    fs::create_dir(&db).unwrap();
    env.ok(&["settings", "set", "secret_backend", "kdbx"]);
    let out = env.run_stdin(&["secrets", "set", "s", "k"], "x\n");
    assert_eq!(out.status.code(), Some(1));
    fs::remove_dir(&db).unwrap();

    // A symlink loop.
    let a = env.root().join("loop-a");
    let b = env.root().join("loop-b");
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    env.ok(&[
        "settings",
        "set",
        "secrets.kdbx_path",
        &a.display().to_string(),
    ]);
    let out = env.run(&["secrets", "get", "s", "k"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // Wrong key file for a password-only database.
    fs::write(&db, &good).unwrap();
    env.ok(&["settings", "unset", "secrets.kdbx_path"]);
    let bogus = env.root().join("bogus.key");
    fs::write(&bogus, [7u8; 32]).unwrap();
    env.ok(&[
        "settings",
        "set",
        "secrets.kdbx_key_file",
        &bogus.display().to_string(),
    ]);
    let out = env.run(&["secrets", "get", "s", "k"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Wrong password?"), "{}", stderr(&out));
    assert_eq!(digest(&db), good);
    env.set_env("OV_KDBX_PASSWORD", PW);
}

#[test]
fn a_stale_lock_file_from_a_crashed_writer_does_not_block() {
    let env = with_db();
    let lock = env.config_dir().join(".secrets.kdbx.lock");
    fs::write(&lock, "").unwrap();
    let out = env.run_stdin(&["secrets", "set", "s", "k"], "after-crash\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.ok(&["secrets", "get", "s", "k"]), "after-crash\n");
}

#[test]
fn sixteen_parallel_sets_on_one_database_keep_all_sixteen() {
    let env = with_db();
    let children: Vec<_> = (0..16)
        .map(|i| {
            let mut cmd =
                env.command(&["secrets", "set", "par", &format!("k{i}"), &format!("v{i}")]);
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(env.ok(&["secrets", "list", "par"]).lines().count(), 16);
    assert_eq!(env.ok(&["secrets", "get", "par", "k11"]), "v11\n");
}

#[test]
fn a_writer_killed_at_any_point_leaves_old_or_new_content() {
    let env = with_db();
    env.run_stdin(&["secrets", "set", "s", "k"], "old\n");
    // Kill writers at spread-out moments of their run (a write takes about
    // two key derivations); every time, the database must open and hold
    // either the old or the new value.
    for (i, delay_ms) in [5u64, 150, 400, 700, 1000, 1400, 1900].iter().enumerate() {
        let mut cmd = env.command(&["secrets", "set", "s", "k", &format!("new{i}")]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(*delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let value = env.ok(&["secrets", "get", "s", "k"]);
        let value = value.trim_end();
        assert!(
            value == "old" || value.starts_with("new"),
            "after a kill at {delay_ms} ms the value is {value:?}"
        );
    }
    // A killed writer may leave its temp file behind; the next writer, once
    // it holds the lock, knows it is stale and removes it.
    env.run_stdin(&["secrets", "set", "s", "after"], "x\n");
    let leftovers: Vec<String> = fs::read_dir(env.config_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_read_only_database_is_not_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let env = with_db();
    env.run_stdin(&["secrets", "set", "s", "k"], "v\n");
    let db = db(&env);
    fs::set_permissions(&db, fs::Permissions::from_mode(0o400)).unwrap();
    let before = digest(&db);
    let out = env.run_stdin(&["secrets", "set", "s", "k"], "changed\n");
    assert_eq!(out.status.code(), Some(1));
    let err = env.normalize(&stderr(&out));
    assert!(
        err.contains("is read-only (mode 0400); ov does not replace it"),
        "{err}"
    );
    assert!(
        err.contains("hint: chmod u+w [TMP]/config/ov/secrets.kdbx"),
        "{err}"
    );
    assert_eq!(digest(&db), before);
    assert_eq!(env.ok(&["secrets", "get", "s", "k"]), "v\n");
}

#[test]
fn init_on_a_terminal_asks_twice_and_caches_the_password() {
    let mut env = TestEnv::new();
    env.ok(&["settings", "set", "secrets.kdbx_cache_timeout", "120"]);
    let out = expect(
        &env,
        &format!(
            "spawn $ov secrets init\nexpect \"New kdbx password: \"\nsend \"{PW}\\r\"\nexpect \"Again: \"\nsend \"{PW}\\r\"\nexpect \"ov settings set secret_backend kdbx\"\nexpect eof\ncatch wait result\nexit [lindex $result 3]\n"
        ),
    );
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(!stdout(&out).contains(PW), "the password was echoed");
    // The prompt filled the cache: no env, no terminal, and still it opens.
    env.unset_env("OV_KDBX_PASSWORD");
    let mut cmd = env.command(&["secrets", "list"]);
    cmd.stdin(Stdio::null());
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    env.ok(&["secrets", "lock"]);
}

#[test]
fn import_moves_config_entries_into_kdbx_and_export_reads_them() {
    let mut env = TestEnv::new();
    env.run_stdin(&["secrets", "set", "ov/vnc", "pw"], "from-config\n");
    env.run_stdin(&["secrets", "set", "ov/api-key", "x"], "xx\n");
    env.set_env("OV_KDBX_PASSWORD", PW);
    env.ok(&["secrets", "init"]);

    let out = env.run(&["secrets", "import", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("+ ov/api-key/x") && text.contains("config → kdbx  would import"),
        "{text}"
    );
    assert!(
        text.contains("Would import 2/2 entries into kdbx"),
        "{text}"
    );

    let text = env.ok(&["secrets", "import"]);
    assert!(
        text.contains("✓ ov/vnc/pw") && text.contains("Imported 2/2 entries into kdbx"),
        "{text}"
    );
    assert_eq!(
        kpx_show(&db(&env), "ov/vnc/pw", &[], &format!("{PW}\n")),
        "from-config\n"
    );
    // A second import keeps what is there.
    let text = env.ok(&["secrets", "import"]);
    assert!(
        text.contains("= ov/vnc/pw") && text.contains("kept (the same value is stored)"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["secrets", "export", "--format", "json"])).unwrap();
    assert_eq!(json["ov/vnc"]["pw"], "from-config");
}

#[test]
fn a_second_database_never_silently_takes_over() {
    let env = with_db();
    env.run_stdin(&["secrets", "set", "ov/vnc", "password"], "old-value\n");
    env.run_stdin(&["secrets", "set", "ov/vnc", "user"], "me\n");
    let other = env.root().join("other.kdbx");
    let other_s = other.display().to_string();
    let out = env.run(&["secrets", "init", &other_s]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("which holds 2 entries"), "{err}");
    assert!(
        err.contains(&format!("hint: ov secrets init {other_s} --switch")),
        "{err}"
    );
    assert!(!other.exists(), "nothing is created");
    assert_eq!(
        env.ok(&["secrets", "get", "ov/vnc", "password"]),
        "old-value\n"
    );

    // --switch onto a directory is refused like any other init there.
    let dir = env.root().join("a-dir");
    fs::create_dir(&dir).unwrap();
    let out = env.run(&["secrets", "init", &dir.display().to_string(), "--switch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));

    // With --switch the new one takes over and says the old one stays.
    let out = env.run(&["secrets", "init", &other_s, "--switch"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is left as it was"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        env.run(&["secrets", "get", "ov/vnc", "password"])
            .status
            .code(),
        Some(1)
    );
    // The copy hint, pasted: keepassxc-cli brings the entries across, and ov reads them.
    let old_s = db(&env).display().to_string();
    let merged = kpx(&["merge", "-q", &other_s, &old_s], &format!("{PW}\n{PW}\n"));
    assert!(merged.status.success(), "{}", stderr(&merged));
    assert_eq!(
        env.ok(&["secrets", "get", "ov/vnc", "password"]),
        "old-value\n"
    );
    assert_eq!(
        env.ok(&["secrets", "list"]),
        "ov/vnc/password\nov/vnc/user\n"
    );
}

#[test]
fn a_current_database_that_is_empty_is_replaced_without_switch() {
    let env = with_db();
    let other = env.root().join("fresh.kdbx");
    let out = env.run(&["secrets", "init", &other.display().to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        env.ok(&["settings", "get", "secrets.kdbx_path"]),
        format!("{}\n", other.display())
    );
}

#[test]
fn a_key_file_is_never_applied_to_another_database() {
    let mut env = TestEnv::new();
    env.set_env("OV_KDBX_PASSWORD", PW);
    let key = env.root().join("a.key");
    env.ok(&["secrets", "init", "--key-file", &key.display().to_string()]);
    env.run_stdin(&["secrets", "set", "s", "a"], "from-a\n");
    // A second database made by KeePassXC, password only.
    let b = env.root().join("b.kdbx");
    let b_s = b.display().to_string();
    assert!(
        kpx(&["db-create", "-q", "-p", &b_s], &format!("{PW}\n{PW}\n"))
            .status
            .success()
    );
    let out = env.run(&["settings", "set", "secrets.kdbx_path", &b_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("belongs to"), "{}", stderr(&out));
    let out = env.run_stdin(&["secrets", "set", "s", "b"], "from-b\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(kpx_show(&b, "s/b", &[], &format!("{PW}\n")), "from-b\n");
    // Back to the first database: its key file applies again.
    env.ok(&[
        "settings",
        "set",
        "secrets.kdbx_path",
        &db(&env).display().to_string(),
    ]);
    assert_eq!(env.ok(&["secrets", "get", "s", "a"]), "from-a\n");
}

// ---- the derived-key cache and ov's own KDBX 4 reader ----

/// Whether the user keyring holds a key with this description.
fn in_keyring(desc: &str) -> bool {
    Command::new("keyctl")
        .args(["search", "@u", "user", desc])
        .output()
        .expect("keyctl")
        .status
        .success()
}

/// Drop one key from the user keyring, as its timeout would.
fn drop_from_keyring(desc: &str) {
    let out = Command::new("keyctl")
        .args(["search", "@u", "user", desc])
        .output()
        .expect("keyctl");
    assert!(out.status.success(), "{desc} is not in the user keyring");
    let id = stdout(&out).trim().to_owned();
    assert!(
        Command::new("keyctl")
            .args(["invalidate", &id])
            .status()
            .expect("keyctl")
            .success()
    );
}

/// The engine's cache key for a database's password.
fn password_desc(db: &Path) -> String {
    format!("ov-kdbx:{}", db.display())
}

fn key_desc(db: &Path) -> String {
    format!("ov-kdbx-key:{}", db.display())
}

/// `ov secrets get` in a fresh session, no password in the environment and
/// no terminal: only the cache can open the database.
fn warm_get(env: &TestEnv, service: &str, key: &str) -> Output {
    in_fresh_session(env, &["secrets", "get", service, key], false)
}

fn unlock_in_fresh_session(env: &TestEnv) {
    let out = in_fresh_session(env, &["secrets", "unlock"], true);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_warm_read_needs_only_the_derived_key_and_sees_keepassxc_edits() {
    let env = with_db();
    let db = db(&env);
    let db_s = db.display().to_string();
    env.run_stdin(&["secrets", "set", "s", "k"], "v1\n");
    unlock_in_fresh_session(&env);
    assert!(in_keyring(&key_desc(&db)) && in_keyring(&password_desc(&db)));
    let doctor = stdout(&in_fresh_session(&env, &["doctor", "kdbx.cache"], false));
    assert!(
        doctor.contains("the derived key (expires in")
            && doctor.contains("the password (expires in"),
        "{doctor}"
    );
    assert!(
        !doctor.contains("3f"),
        "the permission mask is no time: {doctor}"
    );

    // Without the password in the cache, the derived key alone answers.
    drop_from_keyring(&password_desc(&db));
    let out = warm_get(&env, "s", "k");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "v1\n");
    let doctor = stdout(&in_fresh_session(&env, &["doctor", "kdbx.cache"], false));
    assert!(
        doctor.contains("the derived key (expires in") && !doctor.contains("the password"),
        "{doctor}"
    );

    // KeePassXC saves with a new salt: the cached key no longer fits, the
    // cached password opens the database and the key is cached afresh.
    unlock_in_fresh_session(&env);
    assert!(
        kpx(&["edit", "-q", "-p", &db_s, "s/k"], &format!("{PW}\nv2\n"))
            .status
            .success()
    );
    let out = warm_get(&env, "s", "k");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "v2\n");
    drop_from_keyring(&password_desc(&db));
    let out = warm_get(&env, "s", "k");
    assert!(
        out.status.success(),
        "the key was cached afresh: {}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "v2\n");

    // A write through ov draws a new salt too; ov caches the new key, so
    // the read after it needs no password.
    unlock_in_fresh_session(&env);
    let out = in_fresh_session(&env, &["secrets", "set", "s", "k", "v3"], false);
    assert!(out.status.success(), "{}", stderr(&out));
    drop_from_keyring(&password_desc(&db));
    let out = warm_get(&env, "s", "k");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "v3\n");

    // `ov secrets lock` forgets the key too.
    assert!(
        in_fresh_session(&env, &["secrets", "lock"], false)
            .status
            .success()
    );
    assert!(!in_keyring(&key_desc(&db)));
    assert_eq!(warm_get(&env, "s", "k").status.code(), Some(1));
}

#[test]
fn a_password_from_the_environment_or_a_cache_turned_off_leaves_no_key_behind() {
    let mut env = with_db();
    let db = db(&env);
    env.run_stdin(&["secrets", "set", "s", "k"], "v\n");
    assert_eq!(env.ok(&["secrets", "get", "s", "k"]), "v\n");
    assert!(
        !in_keyring(&key_desc(&db)),
        "OV_KDBX_PASSWORD caches nothing"
    );
    // With the cache turned off, a key still in the keyring is not used.
    unlock_in_fresh_session(&env);
    env.ok(&["settings", "set", "secrets.kdbx_cache", "false"]);
    assert!(in_keyring(&key_desc(&db)));
    let out = warm_get(&env, "s", "k");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("stdin is not a terminal"),
        "{}",
        stderr(&out)
    );
    assert!(
        in_fresh_session(&env, &["secrets", "lock"], false)
            .status
            .success()
    );
    assert!(!in_keyring(&key_desc(&db)) && !in_keyring(&password_desc(&db)));
    let out = in_fresh_session(&env, &["secrets", "unlock"], true);
    assert_eq!(out.status.code(), Some(1));
    env.unset_env("OV_KDBX_PASSWORD");
    let out = prompt_session(&env, "secrets get s k", &[PW], "expect \"v\"");
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(!in_keyring(&key_desc(&db)) && !in_keyring(&password_desc(&db)));
}

#[test]
fn a_typed_password_caches_the_key_so_the_next_read_is_warm() {
    let mut env = with_db();
    let db = db(&env);
    env.run_stdin(&["secrets", "set", "s", "k"], "typed\n");
    env.unset_env("OV_KDBX_PASSWORD");
    let out = prompt_session(&env, "secrets get s k", &[PW], "expect \"typed\"");
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(in_keyring(&key_desc(&db)) && in_keyring(&password_desc(&db)));
    drop_from_keyring(&password_desc(&db));
    assert_eq!(stdout(&warm_get(&env, "s", "k")), "typed\n");
}

/// Rewrite the header's master seed and fix its SHA-256: the KDF
/// parameters (what the cached key is bound to) stay, the header HMAC no
/// longer matches.
fn tamper_master_seed(path: &Path) {
    use sha2::{Digest, Sha256};
    let mut b = fs::read(path).expect("read");
    let mut pos = 12;
    loop {
        let kind = b[pos];
        let len = u32::from_le_bytes(b[pos + 1..pos + 5].try_into().expect("4 bytes")) as usize;
        if kind == 4 {
            b[pos + 5] ^= 0xff;
        }
        pos += 5 + len;
        if kind == 0 {
            break;
        }
    }
    let sha = Sha256::digest(&b[..pos]);
    b[pos..pos + 32].copy_from_slice(&sha);
    fs::write(path, b).expect("write");
}

#[test]
fn a_wrong_cached_key_never_answers() {
    let env = with_db();
    let db = db(&env);
    env.run_stdin(&["secrets", "set", "s", "k"], "original\n");
    let original = digest(&db);
    unlock_in_fresh_session(&env);

    // A tampered header: the cached key is bound to the same KDF
    // parameters but fails the header HMAC; so does the password.
    tamper_master_seed(&db);
    let out = warm_get(&env, "s", "k");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(stdout(&out), "");
    assert!(!in_keyring(&key_desc(&db)), "the failing key is forgotten");

    // Another database at the same path, another password: neither the
    // cached key nor the cached password opens it, nothing is answered.
    fs::write(&db, &original).expect("restore");
    unlock_in_fresh_session(&env);
    let mut other = TestEnv::new();
    other.set_env("OV_KDBX_PASSWORD", "another password");
    other.ok(&["secrets", "init"]);
    other.run_stdin(&["secrets", "set", "s", "k"], "imposter\n");
    fs::copy(self::db(&other), &db).expect("replace");
    let out = warm_get(&env, "s", "k");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(stdout(&out), "");
    // Put back, unlocked again: the cache serves it as before.
    fs::write(&db, &original).expect("restore");
    unlock_in_fresh_session(&env);
    assert_eq!(stdout(&warm_get(&env, "s", "k")), "original\n");
}

/// A KeePass XML export with `n` entries in group `grüße`: non-ASCII
/// titles, a protected password and custom field, an unprotected user name.
fn xml_with_entries(n: usize) -> String {
    let mut entries = String::new();
    for i in 0..n {
        entries.push_str(&format!(
            "<Entry><UUID>{}</UUID>\
             <String><Key>Title</Key><Value>eintrag-{i}-ü</Value></String>\
             <String><Key>UserName</Key><Value>user{i}</Value></String>\
             <String><Key>Password</Key><Value ProtectInMemory=\"True\">wert-{i} ☃ &amp; &lt;x&gt;</Value></String>\
             <String><Key>token</Key><Value ProtectInMemory=\"True\">tok{i}</Value></String>\
             </Entry>",
            uuid_b64(1, i)
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
         <KeePassFile><Meta><Generator>ov tests</Generator></Meta><Root>\
         <Group><UUID>{}</UUID><Name>Root</Name>\
         <Group><UUID>{}</UUID><Name>grüße</Name>{entries}</Group>\
         </Group></Root></KeePassFile>\n",
        uuid_b64(2, 0),
        uuid_b64(3, 0)
    )
}

/// A UUID in base64 (16 bytes: 22 characters, the last with its low bits
/// clear, and `==`), distinct per (tag, n).
fn uuid_b64(tag: u8, n: usize) -> String {
    let tag = char::from(b'B' + tag % 20);
    format!("{tag}AAAAAAAAAAAA{n:08}A==")
}

/// The minor version of a KDBX file, from its header.
fn kdbx_version(path: &Path) -> (u16, u16) {
    let b = fs::read(path).expect("read");
    (
        u16::from_le_bytes([b[10], b[11]]),
        u16::from_le_bytes([b[8], b[9]]),
    )
}

/// Cold (password from the environment) and, where a password is cached,
/// warm (fresh session, cache only), `ov` answers what KeePassXC shows.
fn reads_like_keepassxc(
    env: &TestEnv,
    db: &Path,
    kpx_args: &[&str],
    stdin: &str,
    entries: &[(&str, &str)],
    warm: bool,
) {
    for (service, key) in entries {
        let want = kpx_show(db, &format!("{service}/{key}"), kpx_args, stdin);
        assert_eq!(
            env.ok(&["secrets", "get", service, key]),
            want,
            "cold {service}/{key}"
        );
        if warm {
            let out = warm_get(env, service, key);
            assert!(
                out.status.success(),
                "warm {service}/{key}: {}",
                stderr(&out)
            );
            assert_eq!(stdout(&out), want, "warm {service}/{key}");
        }
    }
}

#[test]
fn databases_of_every_kind_read_as_keepassxc_reads_them() {
    let pw = format!("{PW}\n");
    let xml_entries = [
        ("grüße", "eintrag-0-ü"),
        ("grüße", "eintrag-250-ü"),
        ("grüße", "eintrag-499-ü"),
    ];

    // Made by ov (KDBX 4.1, Argon2id, AES-256), then merged into by
    // KeePassXC: 500 entries, saved by KeePassXC as KDBX 4.0; then one
    // entry edited there (history with protected values).
    let env = with_db();
    let db = db(&env);
    let db_s = db.display().to_string();
    env.run_stdin(
        &["secrets", "set", "ov/ünï", "schlüssel ☃"],
        "ov wrote — this\n",
    );
    assert_eq!(kdbx_version(&db), (4, 1));
    let xml = env.root().join("big.xml");
    fs::write(&xml, xml_with_entries(500)).expect("xml");
    let big = env.root().join("big.kdbx");
    let big_s = big.display().to_string();
    let out = kpx(
        &[
            "import",
            "-q",
            "-p",
            "-t",
            "100",
            &xml.display().to_string(),
            &big_s,
        ],
        &format!("{PW}\n{PW}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        kpx(&["merge", "-q", "-s", &db_s, &big_s], &pw)
            .status
            .success()
    );
    assert!(
        kpx(
            &["edit", "-q", "-p", &db_s, "grüße/eintrag-250-ü"],
            &format!("{PW}\nedited ☃\n")
        )
        .status
        .success()
    );
    assert_eq!(kdbx_version(&db), (4, 0), "KeePassXC saves KDBX 4.0");
    unlock_in_fresh_session(&env);
    let mut both = xml_entries.to_vec();
    both.push(("ov/ünï", "schlüssel ☃"));
    reads_like_keepassxc(&env, &db, &[], &pw, &both, true);
    assert_eq!(env.ok(&["secrets", "list"]).lines().count(), 501);

    // Made by KeePassXC: KDBX 3.1, AES-KDF, 500 entries (read by the
    // keepass crate as before; warm through the cached password).
    env.ok(&["settings", "set", "secrets.kdbx_path", &big_s]);
    assert_eq!(kdbx_version(&big), (3, 1));
    unlock_in_fresh_session(&env);
    reads_like_keepassxc(&env, &big, &[], &pw, &xml_entries, true);
    assert_eq!(env.ok(&["secrets", "list"]).lines().count(), 500);

    // Made by ov with a key file and a password, and with a key file alone.
    let mut kf_env = TestEnv::new();
    kf_env.ok(&["settings", "set", "secrets.kdbx_cache_timeout", "120"]);
    kf_env.set_env("OV_KDBX_PASSWORD", PW);
    let key = kf_env.root().join("db.key");
    let key_s = key.display().to_string();
    kf_env.ok(&["secrets", "init", "--key-file", &key_s]);
    kf_env.run_stdin(&["secrets", "set", "ä/b", "c"], "with key file\n");
    unlock_in_fresh_session(&kf_env);
    reads_like_keepassxc(
        &kf_env,
        &self::db(&kf_env),
        &["-k", &key_s],
        &pw,
        &[("ä/b", "c")],
        true,
    );
    // The cached key is bound to the key file: without it, no answer.
    let moved = kf_env.root().join("moved.key");
    fs::rename(&key, &moved).expect("move");
    let out = warm_get(&kf_env, "ä/b", "c");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot open the key file"),
        "{}",
        stderr(&out)
    );
    fs::rename(&moved, &key).expect("move back");

    // A KeePassXC key file set by KeePassXC, which saves KDBX 4.0: with the
    // password, and alone. (keepassxc-cli 2.7 makes KDBX 3.1 files only
    // with AES-KDF, and cannot choose a KDF or cipher; those kinds come
    // from the keepass crate in the plugin's own tests.)
    for with_password in [true, false] {
        let mut k = TestEnv::new();
        k.ok(&["settings", "set", "secrets.kdbx_cache_timeout", "120"]);
        k.set_env("OV_KDBX_PASSWORD", PW);
        k.ok(&["secrets", "init"]);
        k.run_stdin(&["secrets", "set", "x", "y"], "from ov\n");
        let kdb = self::db(&k);
        let kdb_s = kdb.display().to_string();
        let kfile = k.root().join("k.keyx");
        let kfile_s = kfile.display().to_string();
        let mut edit = vec!["db-edit", "-q", "--set-key-file", &kfile_s];
        if !with_password {
            edit.push("--unset-password");
        }
        edit.push(&kdb_s);
        let out = kpx(&edit, &pw);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(kdbx_version(&kdb), (4, 0));
        let mut open_args = vec!["-k", kfile_s.as_str()];
        if !with_password {
            open_args.insert(0, "--no-password");
        }
        let stdin = if with_password {
            pw.clone()
        } else {
            String::new()
        };
        let mut edit = vec!["edit", "-q", "-p"];
        edit.extend_from_slice(&open_args);
        edit.extend_from_slice(&[&kdb_s, "x/y"]);
        assert!(
            kpx(&edit, &format!("{stdin}kpx value ü\n"))
                .status
                .success()
        );
        k.ok(&["settings", "set", "secrets.kdbx_key_file", &kfile_s]);
        if with_password {
            unlock_in_fresh_session(&k);
        } else {
            k.unset_env("OV_KDBX_PASSWORD");
        }
        reads_like_keepassxc(&k, &kdb, &open_args, &stdin, &[("x", "y")], with_password);
        // A key file alone needs no password: a fresh session reads it,
        // and nothing is cached for it.
        if !with_password {
            assert_eq!(stdout(&warm_get(&k, "x", "y")), "kpx value ü\n");
            assert!(!in_keyring(&key_desc(&kdb)));
        }
    }
}

/// Issue 15: every kdbx fix pasted makes its check pass. A key file the
/// settings name but that is gone: the fix drops the setting (the
/// database opens with its password alone), and `kdbx.key_file` no longer
/// fails. A wrong password in the cache: `lock && unlock` on a terminal.
#[test]
fn the_missing_key_file_and_wrong_cached_password_fixes_pasted_pass() {
    let mut env = with_db();
    let gone = env.root().join("gone.key");
    env.ok(&[
        "settings",
        "set",
        "secrets.kdbx_key_file",
        &gone.display().to_string(),
    ]);
    let check = |env: &TestEnv, id: &str| {
        let report = stdout(&env.run(&["doctor", "kdbx", "--json", "--timeout", "30000"]));
        TestEnv::check_in(&report, id)
    };
    let c = check(&env, "kdbx.key_file");
    assert_eq!(c["status"], "fail", "{c}");
    let fix = c["fix"].as_str().expect("a fix").to_owned();
    let pasted = env.paste(&fix);
    assert!(pasted.status.success(), "{fix}: {}", stderr(&pasted));
    let c = check(&env, "kdbx.key_file");
    assert!(c.is_null() || c["status"] == "ok", "{c}");
    assert_eq!(check(&env, "kdbx.unlock")["status"], "ok");

    // A wrong password where the cache is: kdbx.unlock fails with the fix
    // that forgets it and asks again.
    env.unset_env("OV_KDBX_PASSWORD");
    let out = in_fresh_session_with(&env, &["secrets", "unlock"], "not the password");
    assert!(!out.status.success(), "a wrong password must not unlock");
    let desc = format!("ov-kdbx:{}", db(&env).display());
    let store_wrong = Command::new("keyctl")
        .args([
            "session",
            "-",
            "sh",
            "-c",
            &format!(
                "keyctl link @u @s >/dev/null && id=$(printf %s wrong | keyctl padd user '{desc}' @u) && keyctl setperm $id 0x3f3f0000 && keyctl timeout $id 120"
            ),
        ])
        .output()
        .expect("keyctl");
    assert!(store_wrong.status.success());
    let c = check(&env, "kdbx.unlock");
    assert_ne!(c["status"], "ok", "{c}");
    let fix = c["fix"].as_str().expect("a fix").to_owned();
    assert_eq!(fix, "ov secrets lock && ov secrets unlock");
    let shown = common::paste_on_tty(
        &env,
        &fix,
        &format!("expect \"kdbx password for \"\nsend \"{PW}\\r\""),
    );
    assert!(shown.status.success(), "{}", stdout(&shown));
    assert_eq!(check(&env, "kdbx.unlock")["status"], "ok");
}

/// `ov ARGS…` in a fresh session keyring with `password` in
/// `OV_KDBX_PASSWORD`.
fn in_fresh_session_with(env: &TestEnv, args: &[&str], password: &str) -> Output {
    env.in_fresh_keyring_session(args)
        .env("OV_KDBX_PASSWORD", password)
        .output()
        .expect("keyctl")
}

#[test]
fn an_empty_password_variable_is_a_finding_whose_pasted_fix_clears_it() {
    let mut env = with_db();
    env.set_env("OV_KDBX_PASSWORD", "");
    let out = env.run(&["doctor", "kdbx.unlock_env", "--json"]);
    let check = TestEnv::check_in(&stdout(&out), "kdbx.unlock_env");
    assert_eq!(check["status"], "fail", "{check}");
    assert_eq!(
        check["finding"],
        "OV_KDBX_PASSWORD is set but empty; a kdbx password cannot be empty"
    );
    let fix = check["fix"].as_str().expect("a fix").to_owned();
    assert_eq!(fix, "unset OV_KDBX_PASSWORD   # to be prompted instead");
    // The same words stop a read.
    let get = env.run(&["secrets", "get", "s", "k"]);
    assert!(
        stderr(&get).contains(&format!("hint: {fix}")),
        "{}",
        stderr(&get)
    );

    let after = env.paste(&format!("{fix}\nov doctor kdbx.unlock_env --json"));
    let check = TestEnv::check_in(&stdout(&after), "kdbx.unlock_env");
    assert_eq!(check["status"], "ok", "{check}");
}
