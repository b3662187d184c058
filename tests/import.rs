//! Imports that never silently replace, moving off plaintext, and backups
//! that restore exactly (issue 13, items 2, 7, 10 and 12): the real binary
//! against the config backend and a real KeePass database.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TestEnv, stderr, stdout};
use proptest::prelude::*;

const PW: &str = "correct horse battery";

/// Writes go to config, where tests can look at the file.
fn config_env() -> TestEnv {
    let env = TestEnv::new();
    env.ok(&["settings", "set", "secret_backend", "config"]);
    env
}

fn set(env: &TestEnv, service: &str, key: &str, value: &str) {
    let out = env.run_stdin(&["secrets", "set", service, key], &format!("{value}\n"));
    assert!(out.status.success(), "{}", stderr(&out));
}

fn get(env: &TestEnv, service: &str, key: &str) -> String {
    env.ok(&["secrets", "get", service, key])
}

fn dotenv(env: &TestEnv, text: &str) -> String {
    let p = env.root().join(".env");
    fs::write(&p, text).expect("write .env");
    p.display().to_string()
}

fn import_env<'a>(file: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["secrets", "import", file, "--app", "a", "--env", "e"];
    args.extend_from_slice(extra);
    args
}

#[test]
fn env_import_keeps_a_different_stored_value_unless_forced() {
    let env = config_env();
    set(&env, "a/e", "A", "old");
    set(&env, "a/e", "C", "same");
    let file = dotenv(&env, "A=new\nB=2\nC=same\n");

    // The dry run and the import report the same outcomes.
    for extra in [&["--dry-run"][..], &[][..]] {
        let out = env.run(&import_env(&file, extra));
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
        assert!(
            text.contains("~ A ") && text.contains("differs, kept"),
            "{text}"
        );
        assert!(
            text.contains("= C ") && text.contains("kept (the same value"),
            "{text}"
        );
        assert!(text.contains(" 2/3 secret(s) into a/e"), "{text}");
        assert!(
            stderr(&out).contains("ov: error: 1 entry is already stored with a different value")
        );
        assert!(
            stderr(&out).contains("hint: ov secrets import"),
            "{}",
            stderr(&out)
        );
        assert!(
            !text.contains("new") && !stderr(&out).contains("new"),
            "no value printed"
        );
        assert_eq!(get(&env, "a/e", "A"), "old\n");
    }
    assert_eq!(get(&env, "a/e", "B"), "2\n");

    let dry = env.ok(&import_env(&file, &["--dry-run", "--force"]));
    assert!(
        dry.contains("! A ") && dry.contains("would replace"),
        "{dry}"
    );
    assert_eq!(get(&env, "a/e", "A"), "old\n");
    let text = env.ok(&import_env(&file, &["--force"]));
    assert!(
        text.contains("! A ") && text.contains("replaced the stored value"),
        "{text}"
    );
    assert!(text.contains("Imported 3/3"), "{text}");
    assert_eq!(get(&env, "a/e", "A"), "new\n");
    // Everything equal now: a re-run keeps all and succeeds.
    let text = env.ok(&import_env(&file, &[]));
    assert!(
        text.contains("Imported 3/3") && !text.contains('~'),
        "{text}"
    );
}

#[test]
fn env_import_dry_run_applies_the_size_limit() {
    let env = config_env();
    let limit = 1024 * 1024;
    let big = "x".repeat(2 * limit);
    let file = dotenv(&env, &format!("BIG={big}\nSMALL=1\n"));
    let dry = env.run(&import_env(&file, &["--dry-run"]));
    let text = stdout(&dry);
    assert!(text.contains("Would import 1/2 secret(s)"), "{text}");
    assert!(
        text.contains("✗ BIG") && text.contains("the limit is 1048576 bytes"),
        "{text}"
    );
    let out = env.run(&import_env(&file, &[]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("Imported 1/2 secret(s)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        env.ok(&["secrets", "list", "--app", "a", "--env", "e"]),
        "SMALL\n"
    );

    // Exactly the limit goes in; one byte more does not.
    let file = dotenv(
        &env,
        &format!(
            "EXACT={}\nOVER={}\n",
            "y".repeat(limit),
            "z".repeat(limit + 1)
        ),
    );
    let dry = stdout(&env.run(&import_env(&file, &["--dry-run"])));
    assert!(
        dry.contains("+ EXACT") && dry.contains("✗ OVER"),
        "{}",
        &dry[..200.min(dry.len())]
    );
    let out = env.run(&import_env(&file, &[]));
    assert!(stdout(&out).contains("✓ EXACT\n") && stdout(&out).contains("✗ OVER"));
    assert_eq!(get(&env, "a/e", "EXACT").len(), limit + 1);
    assert!(env.run(&["secrets", "get", "a/e", "OVER"]).status.code() == Some(1));
}

#[test]
fn env_import_reads_crlf_a_bom_and_repeated_keys() {
    let env = config_env();
    let file = dotenv(&env, "\u{feff}A=1\r\nB=\"two words\"\r\nA=3\r\n");
    let dry = env.run(&import_env(&file, &["--dry-run"]));
    assert!(
        stdout(&dry).contains("Would import 2/2"),
        "{}",
        stdout(&dry)
    );
    assert!(stderr(&dry).contains("repeats"), "{}", stderr(&dry));
    env.ok(&import_env(&file, &[]));
    assert_eq!(get(&env, "a/e", "A"), "3\n");
    assert_eq!(get(&env, "a/e", "B"), "two words\n");
    assert_eq!(
        env.ok(&["secrets", "list", "--app", "a", "--env", "e"]),
        "A\nB\n"
    );
}

/// Entries in config, then a KeePass database that receives writes.
fn config_then_kdbx() -> TestEnv {
    let mut env = TestEnv::new();
    env.ok(&["settings", "set", "secrets.kdbx_cache", "false"]);
    set(&env, "ov/a", "k", "alpha");
    set(&env, "ov/b", "k", "bravo");
    env.set_env("OV_KDBX_PASSWORD", PW);
    env.ok(&["secrets", "init"]);
    env.ok(&["settings", "set", "secret_backend", "kdbx"]);
    env
}

fn credentials(env: &TestEnv) -> String {
    fs::read_to_string(env.credentials()).unwrap_or_default()
}

#[test]
fn backend_import_keeps_a_different_value_unless_forced() {
    let env = config_then_kdbx();
    set(&env, "ov/b", "k", "changed in kdbx");
    for extra in [&["--dry-run"][..], &[][..]] {
        let mut args = vec!["secrets", "import"];
        args.extend_from_slice(extra);
        let out = env.run(&args);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains("~ ov/b/k") && text.contains("differs, kept"),
            "{text}"
        );
        assert!(text.contains(" 1/2 entries into kdbx"), "{text}");
        assert!(
            stderr(&out).contains("hint: ov secrets import --force"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(get(&env, "ov/b", "k"), "changed in kdbx\n");
    let text = env.ok(&["secrets", "import", "--force"]);
    assert!(
        text.contains("! ov/b/k") && text.contains("replaced"),
        "{text}"
    );
    assert_eq!(get(&env, "ov/b", "k"), "bravo\n");
    let text = env.ok(&["secrets", "import"]);
    assert!(
        text.contains("= ov/a/k") && text.contains("Imported 2/2"),
        "{text}"
    );
}

/// `ov doctor --json`'s report for one check id.
fn check(env: &TestEnv, id: &str) -> serde_json::Value {
    let out = env.run(&["doctor", "--json"]);
    let c = TestEnv::check_in(&stdout(&out), id);
    assert!(!c.is_null(), "no check {id} in {}", stdout(&out));
    c
}

#[test]
fn moving_off_plaintext_leaves_no_plaintext_and_the_doctor_fix_works() {
    let env = config_then_kdbx();
    // The session from the issue: the import copies, every value stays in
    // credentials.toml.
    let c = check(&env, "backends.plaintext");
    assert_eq!(c["status"], "warn", "{c}");
    let fix = c["fix"].as_str().unwrap().to_owned();
    assert_eq!(fix, "ov secrets import --from config --move");

    let dry = env.ok(&[
        "secrets",
        "import",
        "--from",
        "config",
        "--move",
        "--dry-run",
    ]);
    assert!(dry.contains("would delete it from config"), "{dry}");
    assert!(credentials(&env).contains("alpha"));

    // The fix, pasted.
    let args: Vec<&str> = fix.split_whitespace().skip(1).collect();
    let text = env.ok(&args);
    assert!(
        text.contains("✓ ov/a/k") && text.contains("deleted from config"),
        "{text}"
    );
    let left = credentials(&env);
    assert!(!left.contains("alpha") && !left.contains("bravo"), "{left}");
    assert_eq!(check(&env, "backends.plaintext")["status"], "ok");
    assert_eq!(get(&env, "ov/a", "k"), "alpha\n");
    assert_eq!(
        env.ok(&["secrets", "which", "ov/a", "k"])
            .split('\t')
            .next(),
        Some("kdbx")
    );
}

#[test]
fn delete_from_removes_only_that_backends_copy() {
    let env = config_then_kdbx();
    env.ok(&["secrets", "import"]);
    assert!(credentials(&env).contains("alpha"));
    let out = env.run(&["secrets", "delete", "ov/a", "k", "--from", "config"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("deleted ov/a k from config"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("still stored in kdbx"),
        "{}",
        stderr(&out)
    );
    assert!(!credentials(&env).contains("alpha"));
    assert!(credentials(&env).contains("bravo"));
    assert_eq!(get(&env, "ov/a", "k"), "alpha\n");

    // Nothing left there to delete, and an unknown backend: errors.
    let out = env.run(&["secrets", "delete", "ov/a", "k", "--from", "config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("ov: error: config holds no ov/a k"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint: ov secrets which ov/a k"));
    let out = env.run(&["secrets", "delete", "ov/a", "k", "--from", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no backend named 'nope'"),
        "{}",
        stderr(&out)
    );
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).expect("mkdir");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "mounting a tmpfs needs root (the tests run as root in CI)"
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Printable text that gzip (inside .kdbx) cannot shrink much.
fn noise(len: usize) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 94) as u8)
        })
        .collect()
}

#[test]
fn move_keeps_the_source_of_an_entry_whose_target_write_failed() {
    let mut env = TestEnv::new();
    env.ok(&["settings", "set", "secrets.kdbx_cache", "false"]);
    set(&env, "ov/a", "k", "alpha");
    set(&env, "ov/b", "k", &noise(300 * 1024));
    set(&env, "ov/c", "k", "charlie");
    let disk = Tmpfs::new(&env.root().join("small"), "160k");
    let db = disk.0.join("s.kdbx");
    env.set_env("OV_KDBX_PASSWORD", PW);
    env.ok(&["secrets", "init", &db.display().to_string()]);
    env.ok(&["settings", "set", "secret_backend", "kdbx"]);

    let out = env.run(&["secrets", "import", "--from", "config", "--move"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("✓ ov/a/k") && text.contains("✓ ov/c/k"),
        "{text}"
    );
    assert!(text.contains("✗ ov/b/k"), "{text}");
    assert!(text.contains("Imported 2/3"), "{text}");
    let left = credentials(&env);
    assert!(
        !left.contains("alpha") && !left.contains("charlie"),
        "moved ones are gone"
    );
    assert!(
        left.contains(&noise(300 * 1024)),
        "the failed one is still in config"
    );
    assert_eq!(get(&env, "ov/b", "k").trim_end(), noise(300 * 1024));
    drop(disk);
}

fn restore(env: &TestEnv, file: &Path, extra: &[&str]) -> std::process::Output {
    let f = file.display().to_string();
    let mut args = vec!["secrets", "import", "--file", f.as_str()];
    args.extend_from_slice(extra);
    env.run(&args)
}

#[test]
fn restore_follows_the_same_rule_and_refuses_a_file_that_is_no_backup() {
    let env = config_env();
    set(&env, "ov/a", "k", "old");
    let backup = env.root().join("backup.json");
    fs::write(&backup, r#"{"ov/a": {"k": "new"}, "ov/b": {"k": "x"}}"#).unwrap();
    for extra in [&["--dry-run"][..], &[][..]] {
        let out = restore(&env, &backup, extra);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains("~ ov/a/k") && text.contains(" 1/2 entries"),
            "{text}"
        );
    }
    assert_eq!(get(&env, "ov/a", "k"), "old\n");
    assert_eq!(get(&env, "ov/b", "k"), "x\n");
    let out = restore(&env, &backup, &["--force"]);
    assert!(out.status.success() && stdout(&out).contains("! ov/a/k"));
    assert_eq!(get(&env, "ov/a", "k"), "new\n");

    let before = credentials(&env);
    for bad in [
        "{\"ov/c\": {\"k\": ",
        "ov/c:\n  k: [hunter2]\n",
        "- hunter2\n- b\n",
        "\"ov/c\": \"hunter2\"\n",
        "ov/c:\n  k: hunter2\n  k: other\n",
    ] {
        fs::write(&backup, bad).unwrap();
        let out = restore(&env, &backup, &[]);
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("ov: error: ") && err.contains("not a backup ov can read"),
            "{err}"
        );
        assert!(
            err.contains("nothing was imported") && err.contains("hint: "),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "a value in the error: {err}");
        assert_eq!(credentials(&env), before, "nothing written for {bad:?}");
    }
    // Edited on Windows: a BOM and CRLF line ends.
    fs::write(&backup, "\u{feff}ov/d:\r\n  k: 'with space '\r\n").unwrap();
    assert!(restore(&env, &backup, &[]).status.success());
    assert_eq!(get(&env, "ov/d", "k"), "with space \n");
}

/// Parse a YAML file with PyYAML, a parser independent of ov's, and print
/// it back as JSON with every non-ASCII character escaped.
fn python_yaml(path: &Path) -> serde_json::Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1], encoding='utf-8'))))",
        ])
        .arg(path)
        .output()
        .expect("python3 (Debian: python3-yaml; ./scripts/test installs it)");
    assert!(
        out.status.success(),
        "PyYAML refused the export: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}

#[test]
fn a_yaml_export_of_awkward_values_parses_elsewhere_and_restores_exactly() {
    let env = config_env();
    let values = [
        "del\u{7f}",
        "c1\u{80}\u{9f}",
        "nel\u{85}x",
        "ls\u{2028}ps\u{2029}",
        "\u{feff}bom",
        "tab\tcr\r",
        "  lead and trail  ",
        "null",
        "\u{fffe}",
    ];
    let mut want = BTreeMap::new();
    for (i, v) in values.iter().enumerate() {
        want.insert(format!("k{i}"), v.to_string());
    }
    let json = serde_json::json!({ "ov/odd": want });
    // Stored by hand, in TOML's escapes, so this test needs nothing new
    // from ov but the export.
    let mut toml = String::from("[\"ov/odd\"]\n");
    for (k, v) in &want {
        let escaped: String = v
            .chars()
            .map(|c| format!("\\U{:08X}", u32::from(c)))
            .collect();
        toml.push_str(&format!("{k} = \"{escaped}\"\n"));
    }
    env.write(&env.credentials(), &toml, 0o600);
    assert_eq!(get(&env, "ov/odd", "k0"), "del\u{7f}\n");

    let yaml = env.root().join("out.yaml");
    fs::write(&yaml, env.ok(&["secrets", "export"])).unwrap();
    assert_eq!(python_yaml(&yaml), json);
    let other = config_env();
    let out = restore(&other, &yaml, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let back: serde_json::Value =
        serde_json::from_str(&other.ok(&["secrets", "export", "--format", "json"])).unwrap();
    assert_eq!(back, json);
}

/// Names `validate_entry` accepts: no control characters, no invisible or
/// direction-changing ones, at most 256 bytes, a service with no empty,
/// `.` or `..` path segment.
fn name() -> impl Strategy<Value = String> {
    "[^\\p{Cc}\\x{AD}\\x{61C}\\x{180E}\\x{200B}-\\x{200F}\\x{202A}-\\x{202E}\\x{2060}-\\x{2064}\\x{2066}-\\x{2069}\\x{FEFF}]{1,12}"
        .prop_filter("fits the limits", |s| s.len() <= 256)
}

fn service() -> impl Strategy<Value = String> {
    name().prop_filter("no empty, . or .. segment", |s| {
        !s.starts_with('/')
            && !s.ends_with('/')
            && !s.contains("//")
            && !s.split('/').any(|seg| seg == "." || seg == "..")
    })
}

/// Any text, weighted toward the characters YAML treats specially.
fn value() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '\0',
        '\t',
        '\n',
        '\r',
        '\u{7f}',
        '\u{80}',
        '\u{85}',
        '\u{9f}',
        '\u{a0}',
        '\u{2028}',
        '\u{2029}',
        '\u{feff}',
        '\u{fffe}',
        '\u{ffff}',
        '"',
        '\'',
        '\\',
        ':',
        '#',
        '-',
        ' ',
        '\u{10ffff}',
    ]);
    prop::collection::vec(prop_oneof![any::<char>(), special], 0..24)
        .prop_map(|cs| cs.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn export_then_import_round_trips_any_entries(
        entries in prop::collection::btree_map((service(), name()), value(), 1..5),
        yaml in any::<bool>(),
    ) {
        let mut want: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for ((s, k), v) in &entries {
            want.entry(s.clone()).or_default().insert(k.clone(), v.clone());
        }
        let first = config_env();
        let src = first.root().join("in.json");
        fs::write(&src, serde_json::to_string(&want).unwrap()).unwrap();
        let out = restore(&first, &src, &[]);
        prop_assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

        let format = if yaml { "yaml" } else { "json" };
        let backup = first.root().join(format!("backup.{format}"));
        fs::write(&backup, first.ok(&["secrets", "export", "--format", format])).unwrap();
        let second = config_env();
        let out = restore(&second, &backup, &[]);
        prop_assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        let back: BTreeMap<String, BTreeMap<String, String>> =
            serde_json::from_str(&second.ok(&["secrets", "export", "--format", "json"])).unwrap();
        prop_assert_eq!(back, want);
    }
}

#[test]
fn issue15_the_plaintext_warning_names_the_commands_that_move_off_it() {
    for forced in [false, true] {
        let mut env = TestEnv::new();
        env.ok(&["settings", "set", "secrets.kdbx_cache", "false"]);
        if forced {
            env.ok(&["settings", "set", "secret_backend", "config"]);
        }
        let out = env.run(&["secrets", "set", "ov/a", "k", "alpha"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("is stored in plaintext"),
            "{}",
            stderr(&out)
        );
        let fix = common::hint_starting(&out, "ov secrets init");
        let expected = if forced {
            "ov secrets init && ov settings set secret_backend auto && ov secrets import --from config --move"
        } else {
            "ov secrets init && ov secrets import --from config --move"
        };
        assert!(fix.starts_with(expected), "{fix}");
        env.set_env("OV_KDBX_PASSWORD", PW);
        let pasted = env.paste(&fix);
        assert!(pasted.status.success(), "{}", stderr(&pasted));
        assert!(
            !credentials(&env).contains("alpha"),
            "{}",
            credentials(&env)
        );
        assert_eq!(env.ok(&["secrets", "get", "ov/a", "k"]), "alpha\n");
        assert!(
            env.ok(&["secrets", "which", "ov/a", "k"])
                .starts_with("kdbx"),
            "forced={forced}"
        );
    }
}
