//! The keyring backend against a real gnome-keyring on a private D-Bus
//! session bus, with `secret-tool` (libsecret) as the reference client.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::secret_service::{PASSWORD, SecretService, SilentBus};
use common::{TestEnv, stderr, stdout};
use zbus::zvariant::OwnedObjectPath;

fn keyring_env() -> (TestEnv, SecretService) {
    let mut env = TestEnv::new();
    let ss = SecretService::start(&mut env);
    (env, ss)
}

#[test]
fn a_value_stored_by_ov_is_read_by_secret_tool() {
    let (env, ss) = keyring_env();
    let out = env.run_stdin(&["secrets", "set", "ov/vnc", "password"], "s3cret é\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("in keyring"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("plaintext"), "{}", stderr(&out));
    assert_eq!(
        ss.lookup(&["service", "ov/vnc", "username", "password"]),
        Some("s3cret é".as_bytes().to_vec())
    );
    // ov's own attributes are there too.
    assert!(
        ss.lookup(&["application", "ov", "service", "ov/vnc", "key", "password"])
            .is_some()
    );
    // Nothing went to the plaintext file.
    assert!(!env.credentials().exists());
    assert_eq!(
        env.ok(&["secrets", "which", "ov/vnc", "password"])
            .split_whitespace()
            .next(),
        Some("keyring")
    );
}

#[test]
fn a_bus_on_an_abstract_socket_serves_reads() {
    let mut env = TestEnv::new();
    let ss = SecretService::start_abstract(&mut env);
    assert!(ss.address.starts_with("unix:abstract="), "{}", ss.address);
    env.run_stdin(&["secrets", "set", "svc", "k"], "on-abstract\n");
    assert_eq!(
        ss.lookup(&["service", "svc", "username", "k"]).as_deref(),
        Some(&b"on-abstract"[..])
    );
    assert_eq!(env.ok(&["secrets", "get", "svc", "k"]), "on-abstract\n");
    assert!(
        env.ok(&["secrets", "which", "svc", "k"])
            .starts_with("keyring")
    );
}

#[test]
fn a_value_stored_by_secret_tool_is_read_by_ov() {
    let (env, ss) = keyring_env();
    ss.store(
        &["service", "myapp/prod", "username", "DB_PASSWORD"],
        b"from-libsecret",
    );
    assert_eq!(
        env.ok(&["secrets", "get", "myapp/prod", "DB_PASSWORD"]),
        "from-libsecret\n"
    );
    // A write updates that same item, so the other tool sees the new value.
    env.run_stdin(
        &["secrets", "set", "myapp/prod", "DB_PASSWORD"],
        "rotated\n",
    );
    assert_eq!(
        ss.lookup(&["service", "myapp/prod", "username", "DB_PASSWORD"]),
        Some(b"rotated".to_vec())
    );
}

/// The methods called on the provider, in order, from dbus-monitor's log.
fn provider_calls(seen: &str) -> Vec<&str> {
    seen.lines()
        .filter(|l| {
            l.starts_with("method call") && l.contains("destination=org.freedesktop.secrets")
        })
        .filter_map(|l| l.split("member=").nth(1))
        .collect()
}

#[test]
fn a_read_never_carries_the_secret_in_clear_over_the_bus() {
    let (env, ss) = keyring_env();
    let value = "bus-eavesdroppers-see-nothing";
    ss.store(&["service", "svc", "username", "k"], value.as_bytes());
    let monitor = ss.monitor();
    assert_eq!(
        env.ok(&["secrets", "get", "svc", "k"]),
        format!("{value}\n")
    );
    let seen = monitor.stop();
    // The monitor saw the read itself, over an encrypted session…
    assert!(seen.contains("member=GetSecret"), "{seen}");
    assert!(
        seen.contains("dh-ietf1024-sha256-aes128-cbc-pkcs7"),
        "{seen}"
    );
    assert!(!seen.contains(r#"string "plain""#), "{seen}");
    // …in three calls to the provider: search, key exchange, secret…
    let calls = provider_calls(&seen);
    assert_eq!(calls, ["SearchItems", "OpenSession", "GetSecret"], "{seen}");
    // …and the value in no form dbus-monitor prints bytes in.
    let hex: Vec<String> = value.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!seen.contains(value), "{seen}");
    assert!(!seen.contains(&hex[..8].join(" ")), "{seen}");

    // Pinned to a label: the same read, narrowed by the collections'
    // labels (read while the search runs), not the slow walk.
    env.ok(&["settings", "set", "keyring_collection_label", "Login"]);
    let monitor = ss.monitor();
    assert_eq!(
        env.ok(&["secrets", "get", "svc", "k"]),
        format!("{value}\n")
    );
    let seen = monitor.stop();
    let calls = provider_calls(&seen);
    let (first, rest) = calls.split_first().expect("calls");
    assert_eq!(*first, "SearchItems", "{seen}");
    assert_eq!(
        rest[rest.len() - 2..],
        ["OpenSession", "GetSecret"],
        "{seen}"
    );
    assert!(rest[..rest.len() - 2].len() >= 2, "{seen}");
    assert!(rest[..rest.len() - 2].iter().all(|c| *c == "Get"), "{seen}");
}

#[test]
fn list_and_delete_go_through_the_keyring() {
    let (env, ss) = keyring_env();
    env.run_stdin(&["secrets", "set", "ov/a", "one"], "1\n");
    env.run_stdin(&["secrets", "set", "ov/b", "two"], "2\n");
    env.run_stdin(&["secrets", "set", "other", "three"], "3\n");
    assert_eq!(env.ok(&["secrets", "list", "ov"]), "ov/a/one\nov/b/two\n");
    let out = env.run(&["secrets", "delete", "ov/a", "one"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("keyring"), "{}", stderr(&out));
    assert_eq!(ss.lookup(&["service", "ov/a", "username", "one"]), None);
    assert_eq!(env.ok(&["secrets", "list"]), "other/three\nov/b/two\n");
    // Other tools' items under service + username are listed too (reads
    // find them); items without that pair are not ov entries.
    ss.store(&["service", "ov/c", "username", "TOKEN"], b"x");
    ss.store(&["xdg:schema", "org.example.Other", "id", "7"], b"y");
    assert_eq!(env.ok(&["secrets", "list", "ov"]), "ov/b/two\nov/c/TOKEN\n");
    // A name ov could not be asked for is left out, with a word why.
    ss.store(&["service", "https://example.com", "username", "bob"], b"z");
    let out = env.run(&["secrets", "list"]);
    assert_eq!(stdout(&out), "other/three\nov/b/two\nov/c/TOKEN\n");
    assert!(
        stderr(&out).contains(
            r#"ov: note: 1 entry in keyring not listed: the name is not one ov can address (such as service "https://example.com", key "bob")"#
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn reads_find_secrets_in_any_collection_and_a_pin_restricts_them() {
    let (env, ss) = keyring_env();
    let work = ss.create_collection("Work");
    // Stored in Work, not in the default collection: still found.
    env.ok(&["settings", "set", "keyring_collection_label", "Work"]);
    env.run_stdin(&["secrets", "set", "svc", "k"], "in-work\n");
    env.ok(&["settings", "unset", "keyring_collection_label"]);
    assert_eq!(env.ok(&["secrets", "get", "svc", "k"]), "in-work\n");

    // The default collection is searched first.
    env.run_stdin(&["secrets", "set", "svc", "k"], "in-login\n");
    assert_eq!(env.ok(&["secrets", "get", "svc", "k"]), "in-login\n");

    // Pinned to Work, reads and writes stay there.
    env.ok(&["settings", "set", "keyring_collection_label", "Work"]);
    assert_eq!(env.ok(&["secrets", "get", "svc", "k"]), "in-work\n");
    env.run_stdin(&["secrets", "set", "only", "work"], "w\n");
    env.ok(&["settings", "set", "keyring_collection_label", "Login"]);
    let out = env.run(&["secrets", "get", "only", "work"]);
    assert!(!out.status.success());

    // The doctor sees the same value held twice with different contents.
    env.ok(&["settings", "unset", "keyring_collection_label"]);
    let doctor = stdout(&env.run(&["doctor", "keyring"]));
    assert!(
        doctor.contains("keyring.duplicates") && doctor.contains("svc k has different values"),
        "{doctor}"
    );
    assert!(
        doctor.contains("ov secrets delete svc k && ov secrets set svc k"),
        "{doctor}"
    );

    // Other tools' copies count too: once svc k agrees again, a foreign
    // item held twice with different values is the one reported.
    env.run_stdin(&["secrets", "set", "svc", "k"], "in-login\n");
    env.ok(&["settings", "set", "keyring_collection_label", "Work"]);
    env.run_stdin(&["secrets", "set", "svc", "k"], "in-login\n");
    env.ok(&["settings", "unset", "keyring_collection_label"]);
    ss.store(&["service", "tool", "username", "u"], b"one");
    ss.store_in(&work, &[("service", "tool"), ("username", "u")], b"two");
    let doctor = stdout(&env.run(&["doctor", "keyring"]));
    assert!(
        doctor.contains(r#"tool u has different values in the collections "Login", "Work""#),
        "{doctor}"
    );
}

#[test]
fn a_pinned_label_that_matches_nothing_lists_the_labels_present() {
    let (env, _ss) = keyring_env();
    env.ok(&[
        "settings",
        "set",
        "keyring_collection_label",
        "Tr'icky \"label\" ✓",
    ]);
    let out = env.run(&["secrets", "get", "svc", "k"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(r#"keyring_collection_label is "Tr'icky \"label\" ✓", but no Secret Service collection has that label (labels present: "Login""#),
        "{err}"
    );
    assert!(
        err.contains("hint: ov settings set keyring_collection_label Login"),
        "{err}"
    );
    assert!(
        err.contains("hint: ov settings unset keyring_collection_label"),
        "{err}"
    );
    let out = env.run(&["doctor", "keyring"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("✗ keyring.pinned_label"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn delete_removes_the_entry_from_every_collection() {
    let (env, ss) = keyring_env();
    ss.create_collection("Work");
    env.run_stdin(&["secrets", "set", "svc", "k"], "a\n");
    env.ok(&["settings", "set", "keyring_collection_label", "Work"]);
    env.run_stdin(&["secrets", "set", "svc", "k"], "b\n");
    env.ok(&["settings", "unset", "keyring_collection_label"]);
    let out = env.run(&["secrets", "delete", "svc", "k"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ss.lookup(&["service", "svc", "username", "k"]), None);
    let out = env.run(&["secrets", "get", "svc", "k"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_locked_collection_is_reported_and_nothing_is_lost() {
    let (env, ss) = keyring_env();
    let work = ss.create_collection("Work");
    env.ok(&["settings", "set", "keyring_collection_label", "Work"]);
    env.run_stdin(&["secrets", "set", "svc", "k"], "kept\n");
    ss.lock(&work);

    // A write to the locked collection fails clearly and writes nowhere else.
    let out = env.run_stdin(&["secrets", "set", "svc", "k"], "new\n");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(r#"the keyring collection "Work" is locked; nothing was written"#),
        "{err}"
    );
    assert!(
        err.contains("hint: secret-tool search --all --unlock application ov"),
        "{err}"
    );
    assert!(!env.credentials().exists());

    // A read says where it is locked rather than "not found", and how to
    // unlock it.
    env.ok(&["settings", "unset", "keyring_collection_label"]);
    let out = env.run(&["secrets", "get", "svc", "k"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            r#"ov: error: no secret svc k (svc/k is in the locked keyring collection "Work")"#
        ),
        "{err}"
    );
    assert!(
        err.contains("hint: secret-tool search --unlock service svc username k"),
        "{err}"
    );
    assert!(
        err.contains("hint: ov secrets get svc k --wait-unlock"),
        "{err}"
    );
    let doctor = stdout(&env.run(&["doctor", "keyring"]));
    assert!(doctor.contains("locked; reads skip it"), "{doctor}");
    // A listing says what it could not see.
    let out = env.run(&["secrets", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains(
            r#"ov: note: the keyring collection "Work" is locked; its entries are not listed"#
        ),
        "{}",
        stderr(&out)
    );
    // An export is a backup: it refuses rather than leave "Work" out.
    let out = env.run(&["secrets", "export"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains(
            r#"ov: error: cannot export every entry: the keyring collection "Work" is locked"#
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn without_a_desktop_the_unlock_hint_unlocks_the_login_keyring_itself() {
    let (env, ss) = keyring_env();
    env.run_stdin(&["secrets", "set", "svc", "k"], "in-login\n");
    let login = OwnedObjectPath::try_from("/org/freedesktop/secrets/collection/login").unwrap();
    ss.lock(&login);
    // ov runs here without DISPLAY or WAYLAND_DISPLAY, as over ssh: no
    // prompter could ask for the password.
    let out = env.run(&["secrets", "get", "svc", "k"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let hint = err
        .lines()
        .filter_map(|l| l.strip_prefix("hint: "))
        .find(|h| h.contains("gnome-keyring-daemon --replace --unlock"))
        .unwrap_or_else(|| panic!("no headless unlock hint in {err}"));
    // The hint, run as given, with the password typed on stdin.
    let ran = ss.run_shell(hint, format!("{PASSWORD}\n").as_bytes());
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    // The old daemon has left the bus by now, but the new one may not
    // have claimed the name yet: a script reads with --wait-unlock, which
    // waits for the provider to come onto the bus.
    assert_eq!(
        env.ok(&[
            "secrets",
            "get",
            "svc",
            "k",
            "--wait-unlock",
            "--wait-timeout",
            "20"
        ]),
        "in-login\n"
    );
}

/// `ov secrets get SERVICE KEY [--raw] --wait-unlock` started first, then
/// `act` once ov is waiting: ov's output, and how long it took after
/// `act` began.
fn get_waiting_while(env: &TestEnv, entry: &[&str], act: impl FnOnce()) -> (Output, Duration) {
    let mut args = vec!["secrets", "get"];
    args.extend_from_slice(entry);
    args.extend_from_slice(&["--wait-unlock", "--wait-timeout", "20"]);
    let child = env
        .command(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start ov");
    std::thread::sleep(Duration::from_millis(800));
    let started = Instant::now();
    act();
    let out = child.wait_with_output().expect("wait for ov");
    (out, started.elapsed())
}

#[test]
fn get_wait_unlock_waits_for_a_provider_to_come_onto_the_bus() {
    let (env, mut ss) = keyring_env();
    env.run_stdin(&["secrets", "set", "svc", "k"], "in-keyring\n");
    ss.stop_keyring();

    // The same keyring files, unlocked with the login password, as at login.
    let (out, took) = get_waiting_while(&env, &["svc", "k"], || ss.start_keyring());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "in-keyring\n");
    assert!(
        stderr(&out)
            .contains("waiting up to 20 s for keyring to come up (no Secret Service provider"),
        "{}",
        stderr(&out)
    );
    // Woken by the bus's name-owner signal, not by a slow poll.
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn get_wait_unlock_without_a_provider_ends_with_the_start_command() {
    let (env, mut ss) = keyring_env();
    ss.stop_keyring();
    let out = env.run(&[
        "secrets",
        "get",
        "svc",
        "k",
        "--wait-unlock",
        "--wait-timeout",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "ov: error: no secret svc k (no Secret Service provider came onto the session bus within 1 s)"
        ),
        "{err}"
    );
    assert!(err.contains("hint: gnome-keyring-daemon --start"), "{err}");
}

#[test]
fn get_wait_unlock_returns_once_someone_unlocks_the_collection() {
    let (env, ss) = keyring_env();
    let work = ss.create_collection("Work");
    env.ok(&["settings", "set", "keyring_collection_label", "Work"]);
    env.run_stdin(&["secrets", "set", "svc", "waited"], "after-unlock\n");
    env.ok(&["settings", "unset", "keyring_collection_label"]);
    ss.lock(&work);

    // Without --wait-unlock: locked, and the hint says how to wait.
    let out = env.run(&["secrets", "get", "svc", "waited"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--wait-unlock"), "{}", stderr(&out));

    let (out, took) = get_waiting_while(&env, &["svc", "waited"], || ss.unlock(&work));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "after-unlock\n");
    assert!(stderr(&out).contains("waiting up to 20 s for keyring to be unlocked"));
    // Woken by the unlock signal, not by a slow poll.
    assert!(took < Duration::from_secs(5), "{took:?}");

    // Still locked when the time runs out: a clear error.
    ss.lock(&work);
    let out = env.run(&[
        "secrets",
        "get",
        "svc",
        "waited",
        "--wait-unlock",
        "--wait-timeout",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("still locked after 1 s"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_secret_that_is_not_utf8_gets_a_clear_error_and_raw_gets_the_bytes() {
    let (env, ss) = keyring_env();
    let blob = [0xff, 0xfe, 0x00, 0x01, b'\n'];
    ss.store(&["service", "bin", "username", "blob"], &blob);
    let out = env.run(&["secrets", "get", "bin", "blob"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(
        err.contains("holds 5 bytes that are not UTF-8 text"),
        "{err}"
    );
    assert!(
        err.contains("hint: ov secrets get --raw bin blob > value.bin"),
        "{err}"
    );
    // --raw: exactly the stored bytes, nothing added.
    let out = env.run(&["secrets", "get", "--raw", "bin", "blob"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, blob);
    // Text values too, without the newline `get` adds.
    ss.store(&["service", "bin", "username", "text"], b"plain");
    assert_eq!(env.ok(&["secrets", "get", "bin", "text"]), "plain\n");
    let out = env.run(&["secrets", "get", "--raw", "bin", "text"]);
    assert_eq!(out.stdout, b"plain");
    // The same bytes when the read had to wait for an unlock.
    let login = OwnedObjectPath::try_from("/org/freedesktop/secrets/collection/login").unwrap();
    ss.lock(&login);
    let (out, _) = get_waiting_while(&env, &["--raw", "bin", "blob"], || ss.unlock(&login));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, blob);
}

#[test]
fn doctor_describes_the_provider_and_each_collection() {
    let (env, ss) = keyring_env();
    ss.create_collection("Work");
    env.run_stdin(&["secrets", "set", "svc", "k"], "v\n");
    let out = env.run(&["doctor", "keyring"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    for needle in [
        "✓ keyring.session_bus",
        "✓ keyring.provider",
        "gnome-keyring-daemon (pid",
        r#"default → "Login""#,
        "keyring.collection.login",
        "unlocked, 1 item (1 from ov), default",
        "keyring.collection.",
        "keyring.pinned_label",
        "keyring.duplicates",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(text.contains(r#""Work": unlocked, 0 items"#), "{text}");
}

#[test]
fn no_session_bus_falls_back_to_config_quickly() {
    let mut env = TestEnv::new();
    env.set_env(
        "DBUS_SESSION_BUS_ADDRESS",
        format!("unix:path={}/no-such-bus", env.root().display()),
    );
    let start = Instant::now();
    env.run_stdin(&["secrets", "set", "svc", "k"], "plain\n");
    assert_eq!(env.ok(&["secrets", "get", "svc", "k"]), "plain\n");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let which = env.ok(&["secrets", "which", "svc", "k"]);
    assert!(which.starts_with("config"), "{which}");
    let doctor = env.run(&["doctor", "keyring"]);
    assert!(doctor.status.success());
    assert!(
        stdout(&doctor).contains("no D-Bus session bus: no such socket at unix:path="),
        "{}",
        stdout(&doctor)
    );
    // With no bus there is nothing to wait on, and nothing will come: the
    // normal state of a server. --wait-unlock does not pretend to wait,
    // and the miss does not blame the keyring.
    let out = env.run(&[
        "secrets",
        "get",
        "svc",
        "gone",
        "--wait-unlock",
        "--wait-timeout",
        "60",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(!err.contains("waiting"), "{err}");
    assert!(err.starts_with("ov: error: no secret svc gone\n"), "{err}");
}

#[test]
fn a_bus_without_a_provider_is_unavailable() {
    let mut env = TestEnv::new();
    let _bus = SecretService::bus_only(&mut env);
    let start = Instant::now();
    env.run_stdin(&["secrets", "set", "svc", "k"], "plain\n");
    assert_eq!(env.ok(&["secrets", "get", "svc", "k"]), "plain\n");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let doctor = stdout(&env.run(&["doctor", "keyring"]));
    assert!(doctor.contains("✓ keyring.session_bus"), "{doctor}");
    assert!(doctor.contains("! keyring.provider"), "{doctor}");
    assert!(
        doctor.contains("gnome-keyring-daemon --start --components=secrets"),
        "{doctor}"
    );
    // A miss says the keyring was not searched, and how to start or wait
    // for it, instead of only suggesting to store the secret again.
    let out = env.run(&["secrets", "get", "svc", "elsewhere"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "ov: error: no secret svc elsewhere (keyring not searched: no Secret Service provider is running on the session bus (nothing owns org.freedesktop.secrets))\n"
        ),
        "{err}"
    );
    assert!(err.contains("hint: gnome-keyring-daemon --start"), "{err}");
    assert!(
        err.contains(
            "hint: ov secrets get svc elsewhere --wait-unlock   # waits for the keyring to come up"
        ),
        "{err}"
    );
}

#[test]
fn while_the_provider_is_down_list_set_and_delete_say_the_keyring_was_not_searched() {
    let (env, mut ss) = keyring_env();
    env.run_stdin(&["secrets", "set", "svc", "k"], "in-keyring\n");
    ss.stop_keyring();
    let down = "keyring not searched: no Secret Service provider is running on the session bus";

    // An empty listing says it is not the whole story.
    let out = env.run(&["secrets", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out)
            .contains("ov: note: keyring not listed: no Secret Service provider is running"),
        "{}",
        stderr(&out)
    );

    // Deleting what only the keyring holds is not "no stored secret".
    let out = env.run(&["secrets", "delete", "svc", "k"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("ov: error: no stored secret svc k ({down}")),
        "{err}"
    );
    assert!(err.contains("hint: ov doctor keyring"), "{err}");
    assert!(
        err.contains("hint: ov secrets delete svc k   # again, once the keyring is up"),
        "{err}"
    );

    // A write lands in config, and says why the keyring was not used.
    let out = env.run_stdin(&["secrets", "set", "svc", "k"], "in-config\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ov: note: keyring not used: no Secret Service provider is running"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("plaintext"), "{}", stderr(&out));

    // Deleting now removes the config copy and warns that the keyring's
    // copy stays: it answers again once the provider is back.
    let out = env.run(&["secrets", "delete", "svc", "k"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("a copy there is not deleted: run `ov secrets delete svc k` again"),
        "{}",
        stderr(&out)
    );
    ss.start_keyring();
    assert_eq!(env.ok(&["secrets", "get", "svc", "k"]), "in-keyring\n");
    env.ok(&["secrets", "delete", "svc", "k"]);
    assert_eq!(ss.lookup(&["service", "svc", "username", "k"]), None);
}

#[test]
fn sealing_and_run_all_refuse_a_keyring_they_cannot_see() {
    let (env, mut ss) = keyring_env();
    let app = ["--app", "myapp", "--env", "prod"];
    let set = |name: &str, value: &str| {
        let mut args = vec!["secrets", "set"];
        args.extend_from_slice(&app);
        args.push(name);
        env.run_stdin(&args, &format!("{value}\n"))
    };
    assert!(set("DB", "in-keyring").status.success());
    let key = env.root().join("m.key").display().to_string();
    let mut derive = vec!["auth", "derive-machine-key", "--out", &key];
    derive.extend_from_slice(&app);
    env.ok(&derive);
    let sealed_db = || {
        let mut run = vec!["run", "--machine-key", &key];
        run.extend_from_slice(&app);
        run.extend_from_slice(&["--all", "--", "sh", "-c", "printf '%s' \"$DB\""]);
        env.ok(&run)
    };
    assert_eq!(sealed_db(), "in-keyring");

    // The provider is down: the new secret lands in config, and the bundle
    // is not resealed without DB.
    ss.stop_keyring();
    let out = set("API", "in-config");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "ov: error: myapp/prod was changed, but re-sealing its bundle failed\n\
             caused by: cannot seal myapp/prod now: keyring not listed: no Secret Service provider is running"
        ),
        "{err}"
    );
    assert!(
        err.contains("hint: ov auth machine-key seal --app myapp --env prod   # once it is"),
        "{err}"
    );
    assert_eq!(
        err.matches("hint: ov auth machine-key seal").count(),
        1,
        "{err}"
    );
    assert_eq!(sealed_db(), "in-keyring");
    // Started from the store, --all is every secret or nothing; named
    // secrets that can be read are given.
    let mut from_store = vec!["run"];
    from_store.extend_from_slice(&app);
    let mut all = from_store.clone();
    all.extend_from_slice(&["--all", "--", "true"]);
    let out = env.run(&all);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "ov: error: cannot give the command every secret of myapp/prod: keyring not listed"
        ),
        "{}",
        stderr(&out)
    );
    from_store.extend_from_slice(&["--secrets", "API", "--", "sh", "-c", "printf '%s' \"$API\""]);
    assert_eq!(env.ok(&from_store), "in-config");

    // Back up, the seal command takes both.
    ss.start_keyring();
    let mut seal = vec!["auth", "machine-key", "seal"];
    seal.extend_from_slice(&app);
    env.ok(&seal);
    let mut run = vec!["run", "--machine-key", &key];
    run.extend_from_slice(&app);
    run.extend_from_slice(&["--all", "--", "sh", "-c", "printf '%s %s' \"$DB\" \"$API\""]);
    assert_eq!(env.ok(&run), "in-keyring in-config");

    // A locked collection is the same: sealing refuses rather than drop.
    let login = OwnedObjectPath::try_from("/org/freedesktop/secrets/collection/login").unwrap();
    ss.lock(&login);
    let out = env.run(&seal);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot seal myapp/prod now: the keyring collection"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.ok(&run), "in-keyring in-config");
}

#[test]
fn a_provider_that_never_answers_times_out_and_falls_back() {
    let mut env = TestEnv::new();
    env.run_stdin(&["secrets", "set", "svc", "k"], "plain\n");
    let _silent = SilentBus::start(&mut env);
    env.set_env("OV_KEYRING_TIMEOUT_MS", "500");
    let start = Instant::now();
    let out = env.run(&["secrets", "get", "svc", "k"]);
    let took = start.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "plain\n");
    // One timeout, not one per call.
    assert!(took < Duration::from_millis(1500), "took {took:?}");

    let start = Instant::now();
    let out = env.run(&["doctor", "keyring"]);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // The bus itself says nothing: it is the bus that is hung, not the
    // provider.
    let report = stdout(&out);
    assert!(
        report.contains("✗ keyring.session_bus")
            && report.contains("does not answer within 500 ms: a hung dbus-daemon"),
        "{report}"
    );
    assert!(report.contains("- keyring.provider"), "{report}");
}

#[test]
fn a_provider_that_hangs_on_a_bus_that_answers_is_blamed_on_the_provider() {
    let (mut env, ss) = keyring_env();
    env.set_env("OV_KEYRING_TIMEOUT_MS", "500");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(ss.keyring_pid().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let out = env.run(&["doctor", "keyring"]);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let report = stdout(&out);
    assert!(report.contains("✓ keyring.session_bus"), "{report}");
    assert!(
        report.contains("✗ keyring.provider") && report.contains("did not answer within 500 ms"),
        "{report}"
    );
}

#[test]
fn the_provider_disappearing_between_two_calls_falls_back() {
    let (env, mut ss) = keyring_env();
    env.run_stdin(&["secrets", "set", "svc", "k"], "in-keyring\n");
    assert_eq!(env.ok(&["secrets", "get", "svc", "k"]), "in-keyring\n");
    ss.stop_keyring();
    let out = env.run(&["secrets", "which", "svc", "k"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("keyring (unavailable)"),
        "{}",
        stderr(&out)
    );
    // Writes move on to the next backend, with the plaintext warning.
    let out = env.run_stdin(&["secrets", "set", "svc", "k"], "fallback\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("plaintext"), "{}", stderr(&out));
}

#[test]
fn a_value_larger_than_the_limit_is_refused_before_the_keyring() {
    let (env, ss) = keyring_env();
    let big = "x".repeat(1024 * 1024 + 1);
    let out = env.run_stdin(&["secrets", "set", "svc", "big"], &big);
    assert_eq!(out.status.code(), Some(2).or(out.status.code()));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("the limit is"), "{}", stderr(&out));
    assert_eq!(ss.lookup(&["service", "svc", "username", "big"]), None);
}

#[test]
fn a_collection_whose_properties_cannot_be_read_is_skipped_and_reported() {
    let (env, ss) = keyring_env();
    let broken = ss.create_collection("Broken");
    env.run_stdin(&["secrets", "set", "svc", "k"], "in-login\n");
    env.ok(&["settings", "set", "keyring_collection_label", "Broken"]);
    env.run_stdin(&["secrets", "set", "svc", "only-broken"], "in-broken\n");
    env.ok(&["settings", "unset", "keyring_collection_label"]);
    ss.deny_properties(&broken);

    let doctor = env.run(&["doctor", "keyring"]);
    let report = stdout(&doctor);
    assert_eq!(
        doctor.status.code(),
        Some(0),
        "a warning, not a failure: {report}"
    );
    let line = report
        .lines()
        .find(|l| l.contains("keyring.collection.Broken"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(line.starts_with('!'), "{report}");
    assert!(line.contains("properties cannot be read"), "{report}");
    assert!(
        line.contains("AccessDenied"),
        "the reason is kept: {report}"
    );
    assert!(report.contains("✓ keyring.collection.login"), "{report}");
    assert!(
        report.contains("ov settings set keyring_collection_label Login"),
        "{report}"
    );

    // Reads go on: the readable collection, and items the provider still
    // serves from the one whose properties are hidden.
    assert_eq!(env.ok(&["secrets", "get", "svc", "k"]), "in-login\n");
    assert_eq!(
        env.ok(&["secrets", "get", "svc", "only-broken"]),
        "in-broken\n"
    );
    let out = env.run(&["secrets", "list"]);
    assert_eq!(stdout(&out), "svc/k\n");
    assert!(
        stderr(&out).contains("collection/Broken cannot be read"),
        "{}",
        stderr(&out)
    );

    // Pinned to it, ov cannot tell it is there: say so, and touch nothing.
    env.ok(&["settings", "set", "keyring_collection_label", "Broken"]);
    let out = env.run_stdin(&["secrets", "set", "svc", "k"], "overwritten\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("labels present: \"Login\", \"\"; 1 more could not be read"),
        "{}",
        stderr(&out)
    );
    env.ok(&["settings", "unset", "keyring_collection_label"]);
    assert_eq!(env.ok(&["secrets", "get", "svc", "k"]), "in-login\n");
}

/// The same backend against KeePassXC's Secret Service, the second provider
/// the issue names (KWallet's is not packaged for this machine).
#[test]
fn keepassxc_as_the_provider_serves_ov_and_secret_tool_alike() {
    let mut env = TestEnv::new();
    let mut ss = SecretService::bus_only(&mut env);
    ss.start_keepassxc();
    let doctor = stdout(&env.run(&["doctor", "keyring"]));
    assert!(
        doctor
            .lines()
            .any(|l| l.starts_with("✓ keyring.provider") && l.contains("keepassxc (pid")),
        "{doctor}"
    );

    let out = env.run_stdin(&["secrets", "set", "kp/app", "TOKEN"], "in-keepassxc\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("in keyring"), "{}", stderr(&out));
    assert_eq!(
        env.ok(&["secrets", "get", "kp/app", "TOKEN"]),
        "in-keepassxc\n"
    );
    assert_eq!(
        ss.lookup(&["service", "kp/app", "username", "TOKEN"]),
        Some(b"in-keepassxc".to_vec())
    );
    ss.store(
        &["service", "kp/app", "username", "OTHER"],
        b"from-secret-tool",
    );
    assert_eq!(
        env.ok(&["secrets", "get", "kp/app", "OTHER"]),
        "from-secret-tool\n"
    );
    assert_eq!(
        env.ok(&["secrets", "list", "kp"]),
        "kp/app/OTHER\nkp/app/TOKEN\n"
    );
    assert!(
        env.run(&["secrets", "delete", "kp/app", "TOKEN"])
            .status
            .success()
    );
    assert_eq!(ss.lookup(&["service", "kp/app", "username", "TOKEN"]), None);
    assert!(
        !env.credentials().exists(),
        "nothing fell back to plaintext"
    );
}

/// The issue's everyday case: an app's secrets live in the keyring, and a
/// later command runs where the session bus cannot be reached (ssh, cron)
/// or hangs. Sealing, `run --all` and `export` refuse rather than act on
/// part of the secrets; `ov secrets forget` is the way out once the
/// keyring is gone for good.
#[test]
fn an_unreachable_keyring_that_held_entries_is_never_taken_for_an_empty_one() {
    let (mut env, ss) = keyring_env();
    let app = ["--app", "myapp", "--env", "prod"];
    let mut set = vec!["secrets", "set"];
    set.extend_from_slice(&app);
    set.push("DB");
    let out = env.run_stdin(&set, "in-keyring\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("in keyring"), "{}", stderr(&out));
    let key = env.root().join("m.key").display().to_string();
    let mut derive = vec!["auth", "derive-machine-key", "--out", &key];
    derive.extend_from_slice(&app);
    env.ok(&derive);
    let mut sealed_run = vec!["run", "--machine-key", &key];
    sealed_run.extend_from_slice(&app);
    sealed_run.extend_from_slice(&["--all", "--", "sh", "-c", "printf '%s' \"$DB\""]);
    assert_eq!(env.ok(&sealed_run), "in-keyring");

    let silent = env.root().join("silent.sock");
    for (bus, why) in [
        ("unix:path=/nonexistent/bus".to_owned(), "no session bus"),
        (String::new(), "a hung bus"),
    ] {
        let _hung = if bus.is_empty() {
            Some(SilentBus::start(&mut env))
        } else {
            env.set_env("DBUS_SESSION_BUS_ADDRESS", &bus);
            None
        };
        env.set_env("OV_KEYRING_TIMEOUT_MS", "300");
        // A change through --app lands in config, and the bundle keeps DB.
        let mut api = vec!["secrets", "set"];
        api.extend_from_slice(&app);
        api.push("API");
        let out = env.run_stdin(&api, "in-config\n");
        assert!(!out.status.success(), "{why}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("cannot seal myapp/prod now: keyring not listed: it held entries of myapp/prod when ov last saw it, and cannot be reached now"),
            "{why}: {err}"
        );
        assert!(
            err.contains("hint: ov secrets forget keyring"),
            "{why}: {err}"
        );
        assert_eq!(env.ok(&sealed_run), "in-keyring", "{why}");
        // run --all from the store, and export, refuse too.
        let mut all = vec!["run"];
        all.extend_from_slice(&app);
        all.extend_from_slice(&["--all", "--", "true"]);
        let out = env.run(&all);
        assert!(!out.status.success(), "{why}");
        assert!(
            stderr(&out).contains("keyring not listed: it held entries"),
            "{why}: {}",
            stderr(&out)
        );
        let out = env.run(&["secrets", "export"]);
        assert!(!out.status.success(), "{why}");
        assert_eq!(stdout(&out), "", "{why}");
        assert!(
            stderr(&out).contains("cannot export every entry: keyring not listed"),
            "{why}: {}",
            stderr(&out)
        );
        // A plain list says what it could not see.
        let out = env.run(&["secrets", "list"]);
        assert!(
            stderr(&out).contains("ov: note: keyring not listed: it held entries"),
            "{why}: {}",
            stderr(&out)
        );
        env.unset_env("DBUS_SESSION_BUS_ADDRESS");
        env.unset_env("OV_KEYRING_TIMEOUT_MS");
        let _ = std::fs::remove_file(&silent);
    }

    // Back on the desktop, sealing takes both.
    env.set_env("DBUS_SESSION_BUS_ADDRESS", &ss.address);
    let mut seal = vec!["auth", "machine-key", "seal"];
    seal.extend_from_slice(&app);
    env.ok(&seal);
    let mut both = vec!["run", "--machine-key", &key];
    both.extend_from_slice(&app);
    both.extend_from_slice(&["--all", "--", "sh", "-c", "printf '%s %s' \"$DB\" \"$API\""]);
    assert_eq!(env.ok(&both), "in-keyring in-config");

    // Gone for good: the hint, pasted, lets the rest be sealed again.
    env.set_env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    assert!(!env.run(&seal).status.success());
    let out = env.run(&["secrets", "forget", "keyring"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run(&seal);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn moving_from_config_into_the_keyring_keeps_a_differing_value_and_leaves_no_plaintext() {
    let (env, ss) = keyring_env();
    env.ok(&["settings", "set", "secret_backend", "config"]);
    env.run_stdin(&["secrets", "set", "ov/a", "k"], "alpha\n");
    env.run_stdin(&["secrets", "set", "ov/b", "k"], "bravo\n");
    env.ok(&["settings", "set", "secret_backend", "keyring"]);
    env.run_stdin(&["secrets", "set", "ov/b", "k"], "keyring's own\n");
    let creds = || std::fs::read_to_string(env.credentials()).unwrap_or_default();

    let out = env.run(&["secrets", "import", "--from", "config", "--move"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("✓ ov/a/k") && text.contains("deleted from config"),
        "{text}"
    );
    assert!(
        text.contains("~ ov/b/k") && text.contains("differs, kept"),
        "{text}"
    );
    assert_eq!(
        ss.lookup(&["service", "ov/a", "username", "k"]).as_deref(),
        Some(&b"alpha"[..])
    );
    assert_eq!(
        ss.lookup(&["service", "ov/b", "username", "k"]).as_deref(),
        Some(&b"keyring's own"[..])
    );
    // The differing entry stays in config: nothing is lost.
    assert!(
        !creds().contains("alpha") && creds().contains("bravo"),
        "{}",
        creds()
    );

    let text = env.ok(&["secrets", "import", "--from", "config", "--move", "--force"]);
    assert!(
        text.contains("! ov/b/k") && text.contains("deleted from config"),
        "{text}"
    );
    assert_eq!(
        ss.lookup(&["service", "ov/b", "username", "k"]).as_deref(),
        Some(&b"bravo"[..])
    );
    assert!(!creds().contains("bravo"), "{}", creds());
    let doctor = env.run(&["doctor", "backends.plaintext"]);
    assert!(
        stdout(&doctor).contains("nothing stored in config"),
        "{}",
        stdout(&doctor)
    );
}

#[test]
fn a_miss_behind_a_hung_keyring_says_the_keyring_did_not_answer() {
    let mut env = TestEnv::new();
    let _silent = SilentBus::start(&mut env);
    env.set_env("OV_KEYRING_TIMEOUT_MS", "300");
    let out = env.run(&["secrets", "get", "svc", "k"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "ov: error: no secret svc k (keyring did not answer: the Secret Service provider did not answer within 300 ms)\n"
        ),
        "{err}"
    );
    assert!(err.contains("hint: ov doctor keyring"), "{err}");
    assert!(err.contains("OV_KEYRING_TIMEOUT_MS=5000"), "{err}");
}

#[test]
fn issue15_import_from_a_keyring_that_is_down_says_it_is_down() {
    let (env, mut ss) = keyring_env();
    env.run_stdin(&["secrets", "set", "svc", "k"], "in-keyring\n");
    env.ok(&["settings", "set", "secret_backend", "config"]);
    ss.stop_keyring();
    let out = env.run(&["secrets", "import", "--from", "keyring"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains("not a listable backend"), "{err}");
    assert!(
        err.contains("ov: error: cannot import from 'keyring': the keyring is down (no Secret Service provider is running"),
        "{err}"
    );
    let doctor = common::hint_starting(&out, "ov doctor keyring");
    // The hint runs as printed and says what is wrong.
    let pasted = env.paste(&doctor);
    assert!(
        stdout(&pasted).contains("no Secret Service provider"),
        "{}",
        stdout(&pasted)
    );
    assert!(!env.credentials().exists());
    // Once it is up, the same import works.
    ss.start_keyring();
    let out = env.run(&["secrets", "import", "--from", "keyring"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.credentials().exists());
}

#[test]
fn issue15_list_strict_fails_when_a_collection_is_locked() {
    let (env, ss) = keyring_env();
    let work = ss.create_collection("Work");
    env.ok(&["settings", "set", "keyring_collection_label", "Work"]);
    env.run_stdin(&["secrets", "set", "svc", "k"], "kept\n");
    ss.lock(&work);
    env.ok(&["settings", "unset", "keyring_collection_label"]);
    // Without --strict: what was seen, a note on stderr, exit 0.
    let out = env.run(&["secrets", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(r#"the keyring collection "Work" is locked"#),
        "{}",
        stderr(&out)
    );
    // With --strict: exit 1, nothing listed, the same words as an error.
    let out = env.run(&["secrets", "list", "--strict"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains(
            r#"ov: error: cannot list every entry (--strict): the keyring collection "Work" is locked"#
        ),
        "{}",
        stderr(&out)
    );
    ss.unlock(&work);
    let out = env.run(&["secrets", "list", "--strict"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "svc/k\n");
}

#[test]
fn issue15_a_value_changed_with_secret_tool_makes_the_bundle_stale() {
    let (env, ss) = keyring_env();
    let out = env.run_stdin(
        &["secrets", "set", "--app", "myapp", "--env", "prod", "DB"],
        "v1\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let key = env.root().join("m.key").display().to_string();
    env.ok(&[
        "auth",
        "derive-machine-key",
        "--out",
        &key,
        "--app",
        "myapp",
        "--env",
        "prod",
    ]);
    let doctor = env.ok(&["doctor", "machine-key"]);
    assert!(doctor.contains("holds what the store holds"), "{doctor}");
    // Replace the item in place with secret-tool: same attributes, new value.
    let found = ss.secret_tool(&["search", "--all", "service", "myapp/prod"], b"");
    let text = format!("{}{}", stdout(&found), stderr(&found));
    let attrs: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("attribute."))
        .flat_map(|l| {
            let (k, v) = l.split_once(" = ").expect("attribute line");
            [k.to_owned(), v.to_owned()]
        })
        .collect();
    assert!(attrs.iter().any(|a| a == "DB"), "{text}");
    let attrs: Vec<&str> = attrs.iter().map(String::as_str).collect();
    ss.store(&attrs, b"v2");
    assert_eq!(
        env.ok(&["secrets", "get", "myapp/prod", "DB"]),
        "v2\n",
        "secret-tool replaced ov's item"
    );
    let out = env.run(&["doctor", "machine-key"]);
    let report = stdout(&out);
    assert!(report.contains("DB changed in the store"), "{report}");
    assert!(
        report.contains("ov auth machine-key seal --app myapp --env prod"),
        "{report}"
    );
    let pasted = env.paste("ov auth machine-key seal --app myapp --env prod");
    assert!(pasted.status.success(), "{}", stderr(&pasted));
    let out = env.ok(&[
        "run",
        "--app",
        "myapp",
        "--env",
        "prod",
        "--machine-key",
        &key,
        "--all",
        "--",
        "sh",
        "-c",
        "printf '%s' \"$DB\"",
    ]);
    assert_eq!(out, "v2");
    assert!(
        env.ok(&["doctor", "machine-key"])
            .contains("holds what the store holds")
    );
}

#[test]
fn with_no_login_keyring_the_default_alias_fix_creates_one_and_never_pins_to_session() {
    let mut env = TestEnv::new();
    let mut ss = SecretService::bus_only(&mut env);
    ss.start_keyring_without_login();
    let out = env.run(&["doctor", "keyring", "--json"]);
    let alias = TestEnv::check_in(&stdout(&out), "keyring.default_alias");
    assert_eq!(alias["status"], "warn", "{alias}");
    assert!(
        alias["finding"]
            .as_str()
            .unwrap()
            .contains("only the in-memory session collection exists, which is lost at logout"),
        "{alias}"
    );
    let fix = alias["fix"].as_str().unwrap().to_owned();
    assert!(!fix.contains("keyring_collection_label"), "{fix}");
    // A write says the same, rather than pinning to the session collection.
    env.ok(&["settings", "set", "secret_backend", "keyring"]);
    let out = env.run_stdin(&["secrets", "set", "svc", "k"], "v\n");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("hint: read -rs PW"),
        "{}",
        stderr(&out)
    );

    // Pasted, typed password and Enter: the login keyring exists, is the
    // default, and the check passes; the write goes through.
    let pasted = ss.run_shell(&fix, b"login-pw\n");
    assert!(pasted.status.success(), "{}", stderr(&pasted));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = env.run(&["doctor", "keyring.default_alias"]);
        if stdout(&out).contains("✓ keyring.default_alias") {
            break;
        }
        assert!(Instant::now() < deadline, "{}", stdout(&out));
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = env.run_stdin(&["secrets", "set", "svc", "k"], "v\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        ss.lookup(&["service", "svc", "username", "k"]).as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn the_locked_collection_fix_pasted_unlocks_it() {
    let (env, ss) = keyring_env();
    let login = OwnedObjectPath::try_from("/org/freedesktop/secrets/collection/login").unwrap();
    ss.lock(&login);
    let collection = |env: &TestEnv| {
        let out = env.run(&["doctor", "keyring", "--json"]);
        // null while the replaced daemon is not on the bus yet.
        TestEnv::check_in(&stdout(&out), "keyring.collection.login")
    };
    let c = collection(&env);
    assert_eq!(c["status"], "warn", "{c}");
    let fix = c["fix"].as_str().unwrap().to_owned();
    // Typed as a person would: the login password and Enter.
    let pasted = ss.run_shell(&fix, format!("{PASSWORD}\n").as_bytes());
    assert!(pasted.status.success(), "{fix}: {}", stderr(&pasted));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = collection(&env);
        if c["status"] == "ok" {
            break;
        }
        assert!(Instant::now() < deadline, "{c}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a backend held is what it holds: entries moved off the keyring
/// with `import --move` are no longer counted as its, so a later run where
/// the keyring cannot be reached exports them from their new home.
#[test]
fn entries_moved_off_the_keyring_are_not_held_against_it_later() {
    let (mut env, _ss) = keyring_env();
    let out = env.run_stdin(&["secrets", "set", "mv/app", "TOKEN"], "t0k3n\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("in keyring"), "{}", stderr(&out));
    env.ok(&["settings", "set", "secret_backend", "config"]);
    let out = env.run(&["secrets", "import", "--from", "keyring", "--move"]);
    assert!(out.status.success(), "{}", stderr(&out));
    env.set_env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    let out = env.run(&["secrets", "export"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("t0k3n"), "{}", stdout(&out));
}

/// Issue 15: with the keyring forced and no session bus reachable, the fix
/// named `$XDG_RUNTIME_DIR`, which may be unset (then it pointed at
/// `/bus`). Now: the user's own bus socket when there is one the
/// environment does not point at, else a store that needs no bus. Each,
/// pasted, makes the check pass.
#[test]
fn the_no_session_bus_fix_names_a_real_socket_or_a_store_without_one() {
    // A stale address while the user's bus runs at $XDG_RUNTIME_DIR/bus.
    let mut env = TestEnv::new();
    let _ss = SecretService::start_at_runtime_bus(&mut env);
    env.ok(&["settings", "set", "secret_backend", "keyring"]);
    env.unset_env("DBUS_SESSION_BUS_ADDRESS");
    env.set_env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    let report = stdout(&env.run(&["doctor", "keyring", "--json"]));
    let check = TestEnv::check_in(&report, "keyring.session_bus");
    assert_eq!(check["status"], "warn", "{report}");
    let fix = check["fix"].as_str().expect("a fix").to_owned();
    let runtime_bus = env.root().join("run/bus");
    assert_eq!(
        fix,
        format!(
            "export DBUS_SESSION_BUS_ADDRESS=unix:path={}",
            runtime_bus.display()
        )
    );
    // Pasted into the shell that then runs ov.
    let pasted = env.paste(&format!("{fix}; ov doctor keyring --json"));
    let after = stdout(&pasted);
    assert_eq!(
        TestEnv::check_in(&after, "keyring.session_bus")["status"],
        "ok",
        "{after}"
    );

    // No session bus at all: a KeePass database instead, which works
    // when pasted (OV_KDBX_PASSWORD answers init's question).
    let mut env = TestEnv::new();
    env.ok(&["settings", "set", "secret_backend", "keyring"]);
    env.set_env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    let report = stdout(&env.run(&["doctor", "keyring", "--json"]));
    let check = TestEnv::check_in(&report, "keyring.session_bus");
    let fix = check["fix"].as_str().expect("a fix").to_owned();
    assert!(!fix.contains("$XDG_RUNTIME_DIR"), "{fix}");
    if std::fs::metadata(format!("/run/user/{}/bus", nix::unistd::geteuid())).is_err() {
        assert!(
            fix.starts_with("ov secrets init && ov settings set secret_backend kdbx"),
            "{fix}"
        );
        env.set_env("OV_KDBX_PASSWORD", "a new database password");
        let pasted = env.paste(&fix);
        assert!(pasted.status.success(), "{fix}: {}", stderr(&pasted));
        let report = stdout(&env.run(&["doctor", "keyring", "backends", "--json"]));
        for id in ["keyring.session_bus", "backends.available"] {
            assert_eq!(
                TestEnv::check_in(&report, id)["status"],
                "ok",
                "{id}: {report}"
            );
        }
    }
}

/// Issue 15: no Secret Service provider on the bus: the fix the doctor
/// prints, pasted, starts one and `keyring.provider` passes.
#[test]
fn the_start_a_provider_fix_pasted_makes_it_answer() {
    let mut env = TestEnv::new();
    let _ss = SecretService::bus_only(&mut env);
    env.ok(&["settings", "set", "secret_backend", "keyring"]);
    let provider = |env: &TestEnv| {
        let report = stdout(&env.run(&["doctor", "keyring", "--json"]));
        TestEnv::check_in(&report, "keyring.provider")
    };
    let check = provider(&env);
    assert_ne!(check["status"], "ok", "{check}");
    let fix = check["fix"].as_str().expect("a fix").to_owned();
    assert!(fix.starts_with("gnome-keyring-daemon --start"), "{fix}");
    let pasted = env.paste(&fix);
    assert!(pasted.status.success(), "{fix}: {}", stderr(&pasted));
    assert_eq!(provider(&env)["status"], "ok", "{}", provider(&env));
}

/// Issue 15: a provider that holds the name and answers nothing. The old
/// fix, `gnome-keyring-daemon --replace`, asks it to quit and so hangs
/// when pasted; the fix now names the process the bus says owns the name.
/// Pasted (under a time limit, so a hang fails the test), the provider
/// answers again.
#[test]
fn the_hung_provider_fix_pasted_restarts_it_without_hanging() {
    let (mut env, ss) = keyring_env();
    env.ok(&["settings", "set", "secret_backend", "keyring"]);
    env.set_env("OV_KEYRING_TIMEOUT_MS", "500");
    let pid = ss.keyring_pid().expect("the keyring's pid");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("stop");
    let report = stdout(&env.run(&["doctor", "keyring", "--json"]));
    let check = TestEnv::check_in(&report, "keyring.provider");
    assert_eq!(check["status"], "fail", "{report}");
    let fix = check["fix"].as_str().expect("a fix").to_owned();
    assert!(
        fix.starts_with(&format!("kill -KILL {pid} && gnome-keyring-daemon --start")),
        "{fix}"
    );
    let pasted = env.paste(&format!("timeout 20 sh -c '{fix}'"));
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    assert!(pasted.status.success(), "{fix}: {}", stderr(&pasted));
    let report = stdout(&env.run(&["doctor", "keyring", "--json"]));
    let check = TestEnv::check_in(&report, "keyring.provider");
    assert_eq!(check["status"], "ok", "{report}");
}
