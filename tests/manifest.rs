//! `ov manifest`: the spec's Kompose inventory as a project manifest,
//! driven through the real binary over the config, kdbx and keyring
//! backends, with Apache's own `htpasswd` as the reference for its lines.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use common::secret_service::{SecretService, require};
use common::{TestEnv, mode_of, stderr, stdout};

const INVENTORY: &str = include_str!("fixtures/kompose/ov-secrets.toml");

/// A small manifest with one secret of each type.
const EACH_TYPE: &str = r#"
service = "demo/secrets"
[secrets.PW]
type = "password:20"
stacks = ["web", "db"]
[secrets.HEX]
type = "hex:105"
stacks = ["web"]
[secrets.B64]
type = "base64:32"
stacks = ["web"]
[secrets.ID]
type = "uuid"
stacks = ["db"]
[secrets.AUTH]
type = "htpasswd:admin"
stacks = ["proxy"]
[secrets.AUTH_MD5]
type = "htpasswd:ops"
hash = "apr1"
stacks = ["proxy"]
[secrets.MANUAL]
type = "skip"
stacks = ["db"]
[secrets.API_KEY]
type = "skip"
optional = true
key = "ov/api-key/openrouter"
stacks = ["web"]
"#;

/// The project directory of an environment, holding `manifest`.
fn project(env: &TestEnv, manifest: &str) -> PathBuf {
    let dir = env.root().join("proj");
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join("ov-secrets.toml"), manifest).expect("write manifest");
    dir
}

/// `ov ARGS…` run from the project directory.
fn m(env: &TestEnv, args: &[&str]) -> Output {
    m_stdin(env, args, "")
}

fn m_stdin(env: &TestEnv, args: &[&str], input: &str) -> Output {
    let mut cmd = env.command(args);
    cmd.current_dir(env.root().join("proj"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn ov");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait ov")
}

/// Run from the project directory and insist on success; stdout.
fn m_ok(env: &TestEnv, args: &[&str]) -> String {
    let out = m(env, args);
    assert!(
        out.status.success(),
        "ov {args:?} failed ({:?}):\n{}{}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn get(env: &TestEnv, name: &str) -> String {
    m_ok(env, &["manifest", "get", name]).trim_end().to_owned()
}

/// `htpasswd -vb FILE USER PASSWORD` on the line ov stores: Apache's own
/// verifier says whether the line holds the password.
fn htpasswd_verifies(line: &str, user: &str, password: &str) -> bool {
    require("htpasswd", "apache2-utils");
    let file = tempfile::NamedTempFile::new().expect("temp file");
    fs::write(file.path(), format!("{line}\n")).expect("write");
    Command::new("htpasswd")
        .arg("-vb")
        .arg(file.path())
        .args([user, password])
        .output()
        .expect("run htpasswd")
        .status
        .success()
}

fn list_json(env: &TestEnv, args: &[&str]) -> Vec<serde_json::Value> {
    let mut a = vec!["manifest", "list", "--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&m_ok(env, &a)).expect("list --json")
}

#[test]
fn the_kompose_inventory_generates_validates_and_lists_by_stack() {
    let env = TestEnv::new();
    project(&env, INVENTORY);
    let rows = list_json(&env, &[]);
    assert_eq!(rows.len(), 35);
    let stacks: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r["stacks"].as_array().expect("stacks"))
        .filter_map(|s| s.as_str())
        .collect();
    assert_eq!(stacks.len(), 14, "{stacks:?}");
    let count = |f: &dyn Fn(&serde_json::Value) -> bool| rows.iter().filter(|r| f(r)).count();
    assert_eq!(count(&|r| r["shared"] == true), 3);
    assert_eq!(count(&|r| r["type"] == "skip"), 3);
    assert_eq!(
        count(&|r| r["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("htpasswd:"))),
        4
    );

    // Before: every generated one is missing, and validate says so.
    let before = m(&env, &["manifest", "validate"]);
    assert_eq!(before.status.code(), Some(1), "{}", stdout(&before));
    assert!(stdout(&before).contains("[ERROR] DB_PASSWORD: Missing"));
    assert!(
        stdout(&before)
            .contains("[WARNING] KMPS_CLIENT_SECRET: Manual configuration required (empty)")
    );
    assert!(
        stdout(&before).contains("Summary: 0 valid, 32 missing, 0 placeholders, 3 manual"),
        "{}",
        stdout(&before)
    );

    let out = m_ok(&env, &["m", "generate"]);
    assert!(out.contains("[SUCCESS] DB_PASSWORD: Generated successfully"));
    assert!(out.contains("[SKIP] EMAIL_SMTP_PASSWORD: Manual configuration required"));
    assert!(
        out.contains("Summary: 32 generated, 3 skipped, 0 errors"),
        "{out}"
    );
    assert!(out.contains("[SUCCESS] Secrets generation complete!"));
    // Not on a terminal: no progress bar, no colour.
    assert!(!out.contains('\u{1b}'), "{out:?}");

    let after = m_ok(&env, &["manifest", "validate"]);
    assert!(after.contains("[SUCCESS] DB_PASSWORD: Valid (32 chars)"));
    assert!(after.contains("[SUCCESS] CODE_GITEA_INTERNAL_TOKEN: Valid (105 chars)"));
    assert!(
        after.contains("Summary: 32 valid, 0 missing, 0 placeholders, 3 manual"),
        "{after}"
    );

    // A second run generates nothing and changes nothing.
    let db = get(&env, "DB_PASSWORD");
    let again = m_ok(&env, &["manifest", "generate"]);
    assert!(
        again.contains("Summary: 0 generated, 35 skipped, 0 errors"),
        "{again}"
    );
    assert_eq!(get(&env, "DB_PASSWORD"), db);

    // The text listing: shared first, then each stack, values never shown.
    let text = m_ok(&env, &["manifest", "list"]);
    assert!(text.contains("━━━ SHARED Secrets ━━━"), "{text}");
    assert!(text.contains(&format!("  {:<40} [OK]  (password:32)", "DB_PASSWORD")));
    assert!(text.contains(&format!("  {:<40} [MANUAL]  (skip)", "EMAIL_SMTP_PASSWORD")));
    assert!(text.contains("━━━ WATCH Stack ━━━"));
    assert!(!text.contains(&db));
    assert!(text.find("SHARED").expect("shared") < text.find("CORE Stack").expect("core"));

    // One stack: its own and the shared ones it uses; `shared`: those only.
    let auth: Vec<String> = list_json(&env, &["auth"])
        .iter()
        .map(|r| r["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(
        auth,
        [
            "DB_PASSWORD",
            "REDIS_PASSWORD",
            "AUTH_KEYCLOAK_ADMIN_PASSWORD",
            "AUTH_OAUTH2_CLIENT_SECRET",
            "AUTH_OAUTH2_COOKIE_SECRET"
        ]
    );
    assert_eq!(list_json(&env, &["shared"]).len(), 3);
    assert_eq!(list_json(&env, &["watch"]).len(), 8);
    let nope = m(&env, &["manifest", "list", "nosuch"]);
    assert_eq!(nope.status.code(), Some(2));
    assert!(
        stderr(&nope).contains("hint: ov manifest list"),
        "{}",
        stderr(&nope)
    );
}

#[test]
fn each_type_has_its_format_and_htpasswd_lines_verify_with_apache() {
    let env = TestEnv::new();
    project(&env, EACH_TYPE);
    m_ok(&env, &["manifest", "generate"]);
    let pw = get(&env, "PW");
    assert_eq!(pw.len(), 20);
    assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()), "{pw}");
    let hex = get(&env, "HEX");
    assert_eq!(hex.len(), 105);
    assert!(
        hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
        "{hex}"
    );
    let b64 = get(&env, "B64");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&b64)
        .expect("base64");
    assert_eq!(bytes.len(), 32);
    let id = get(&env, "ID");
    let parsed = uuid::Uuid::try_parse(&id).expect("uuid");
    assert_eq!(parsed.get_version_num(), 4);
    assert_eq!(id, parsed.hyphenated().to_string());

    for (name, user, prefix) in [("AUTH", "admin", "$2y$"), ("AUTH_MD5", "ops", "$apr1$")] {
        let line = get(&env, name);
        let password = m_ok(&env, &["manifest", "get", name, "--password"])
            .trim_end()
            .to_owned();
        assert!(line.starts_with(&format!("{user}:{prefix}")), "{line}");
        assert_eq!(password.len(), 32);
        assert!(htpasswd_verifies(&line, user, &password), "{line}");
        assert!(!htpasswd_verifies(&line, user, "wrong"), "{line}");
    }
    // --force regenerates a set one, after a backup.
    let out = m_ok(&env, &["manifest", "generate", "PW", "--force"]);
    assert!(out.contains("[SUCCESS] Secrets backed up to: "), "{out}");
    assert!(
        out.contains("Summary: 1 generated, 0 skipped, 0 errors"),
        "{out}"
    );
    assert_ne!(get(&env, "PW"), pw);
    assert!(m_ok(&env, &["manifest", "backups"]).contains("-before-generate  "));
    let pw = get(&env, "PW");

    // `set` of an htpasswd secret takes the password and makes the line.
    m_ok(&env, &["manifest", "set", "AUTH", "new pass word"]);
    assert!(htpasswd_verifies(
        &get(&env, "AUTH"),
        "admin",
        "new pass word"
    ));
    assert_eq!(
        m_ok(&env, &["manifest", "get", "AUTH", "--password"]),
        "new pass word\n"
    );
    let out = m(&env, &["manifest", "get", "PW", "--password"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // The explicit key is where the value lives.
    m_stdin(&env, &["manifest", "set", "API_KEY"], "sk-or-123\n");
    assert_eq!(
        env.ok(&["secrets", "get", "ov/api-key", "openrouter"]),
        "sk-or-123\n"
    );
    // …and the default one is SERVICE NAME.
    assert_eq!(
        env.ok(&["secrets", "get", "demo/secrets", "PW"]).trim_end(),
        pw
    );
}

#[test]
fn a_required_secret_is_generated_once_under_concurrency() {
    let env = TestEnv::new();
    project(&env, EACH_TYPE);
    let children: Vec<_> = (0..8)
        .map(|_| {
            env.command(&["manifest", "get", "HEX"])
                .current_dir(env.root().join("proj"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let values: BTreeSet<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("wait");
            assert!(out.status.success(), "{}", stderr(&out));
            stdout(&out)
        })
        .collect();
    assert_eq!(values.len(), 1, "{values:?}");
    assert_eq!(
        values.iter().next().expect("one").trim_end(),
        get(&env, "HEX")
    );
}

#[test]
fn optional_and_manual_secrets_are_never_generated_by_get() {
    let env = TestEnv::new();
    project(&env, EACH_TYPE);
    for name in ["API_KEY", "MANUAL"] {
        let out = m(&env, &["manifest", "get", name]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("hint: ov manifest set {name}")),
            "{}",
            stderr(&out)
        );
    }
    assert!(!env.credentials().exists());
    // An optional one is generated when asked for by name.
    project(
        &env,
        "[secrets.TOKEN]\ntype = \"hex:8\"\noptional = true\nstacks = [\"a\"]\n",
    );
    let all = m_ok(&env, &["manifest", "generate"]);
    assert!(all.contains("Optional, not generated"), "{all}");
    assert!(m_ok(&env, &["manifest", "generate", "TOKEN"]).contains("1 generated"));
    assert_eq!(get(&env, "TOKEN").len(), 8);
}

#[test]
fn validate_exit_codes_follow_missing_and_placeholder_required_secrets() {
    let env = TestEnv::new();
    project(&env, EACH_TYPE);
    m_ok(&env, &["manifest", "generate"]);
    // Missing manual and optional ones are warnings only.
    let ok = m(&env, &["manifest", "validate"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert!(stdout(&ok).contains("[WARNING] MANUAL: Manual configuration required (empty)"));

    env.ok(&["secrets", "set", "demo/secrets", "PW", "CHANGE_ME"]);
    let out = m(&env, &["manifest", "validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("[ERROR] PW: Placeholder value"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("1 placeholders"), "{}", stdout(&out));
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&m(&env, &["manifest", "validate", "--json"]))).expect("json");
    assert_eq!(json["ok"], false);
    assert_eq!(json["summary"]["placeholders"], 1);
    assert_eq!(
        m(&env, &["manifest", "validate", "--json"]).status.code(),
        Some(1)
    );
    // generate replaces a placeholder.
    assert!(m_ok(&env, &["manifest", "generate", "PW"]).contains("1 generated"));
    assert_eq!(m(&env, &["manifest", "validate"]).status.code(), Some(0));

    // A value of the wrong format, stored behind ov's back.
    env.ok(&["secrets", "set", "demo/secrets", "ID", "not-a-uuid"]);
    let out = m(&env, &["manifest", "validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("[ERROR] ID: Invalid, not a UUID"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn set_checks_the_value_against_the_type() {
    let env = TestEnv::new();
    project(&env, EACH_TYPE);
    for (name, bad) in [("B64", "not base64!"), ("HEX", "xyz"), ("ID", "1234")] {
        let out = m_stdin(&env, &["manifest", "set", name], &format!("{bad}\n"));
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("nothing was stored"),
            "{}",
            stderr(&out)
        );
    }
    assert!(!env.credentials().exists());
    let good = "550e8400-e29b-41d4-a716-446655440000";
    m_stdin(&env, &["manifest", "set", "ID"], &format!("{good}\n"));
    assert_eq!(get(&env, "ID"), good);
    let out = m(&env, &["manifest", "set", "NOPE", "x"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A backup's name, as `backups` lists it, that contains `part`.
fn backup_named(env: &TestEnv, part: &str) -> String {
    m_ok(env, &["manifest", "backups"])
        .lines()
        .find(|l| l.contains(part))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no backup with {part}"))
        .to_owned()
}

#[test]
fn rotate_backs_up_first_and_restore_brings_the_old_value_back_exactly() {
    let env = TestEnv::new();
    project(&env, INVENTORY);
    m_ok(&env, &["manifest", "generate"]);
    let old = get(&env, "DB_PASSWORD");

    // Manual ones are refused, and without a terminal so is no --yes.
    let manual = m(&env, &["manifest", "rotate", "KMPS_CLIENT_SECRET", "--yes"]);
    assert_eq!(manual.status.code(), Some(2));
    assert!(
        stderr(&manual).contains("hint: ov manifest set KMPS_CLIENT_SECRET"),
        "{}",
        stderr(&manual)
    );
    let unconfirmed = m(&env, &["manifest", "rotate", "DB_PASSWORD"]);
    assert_eq!(unconfirmed.status.code(), Some(2));
    assert!(
        stderr(&unconfirmed).contains("hint: ov manifest rotate DB_PASSWORD --yes"),
        "{}",
        stderr(&unconfirmed)
    );
    assert_eq!(get(&env, "DB_PASSWORD"), old);

    let out = m_ok(&env, &["manifest", "rotate", "DB_PASSWORD", "--yes"]);
    assert!(out.contains("[SUCCESS] Secrets backed up to: "), "{out}");
    assert!(out.contains("[SUCCESS] Secret rotated successfully"));
    assert!(
        out.contains("[INFO] This secret is used by:\n  - core\n  - auth\n"),
        "{out}"
    );
    assert!(
        out.contains("  ./kompose.sh restart core auth code chain kmps link track watch\n"),
        "{out}"
    );
    let new = get(&env, "DB_PASSWORD");
    assert_ne!(new, old);
    assert_eq!(new.len(), 32);
    // The first backup made the key, and said so.
    let key = env.config_dir().join("backup-key.txt");
    assert_eq!(mode_of(&key), 0o600);

    // The backup sits under XDG_DATA_HOME, 0600, encrypted.
    let dir = env.root().join("data/ov/backups/kompose/secrets");
    let name = backup_named(&env, "before-rotate-DB_PASSWORD");
    let file = dir.join(format!("{name}.age"));
    assert_eq!(mode_of(&file), 0o600);
    let raw = fs::read(&file).expect("backup");
    assert!(raw.starts_with(b"age-encryption.org/v1"));
    assert!(!String::from_utf8_lossy(&raw).contains(&old));

    // Newest first: one made now comes before the rotation's.
    m_ok(&env, &["manifest", "backup", "later"]);
    let listed = m_ok(&env, &["manifest", "backups"]);
    let first = listed.lines().next().expect("a line");
    assert!(
        first
            .split_whitespace()
            .next()
            .expect("name")
            .ends_with("-later"),
        "{listed}"
    );

    // Restore shows the change first and needs --yes without a terminal.
    let dry = m(&env, &["manifest", "restore", &name]);
    assert_eq!(dry.status.code(), Some(2));
    assert!(
        stdout(&dry).contains("  DB_PASSWORD: will be restored (the stored value differs)"),
        "{}",
        stdout(&dry)
    );
    assert!(stdout(&dry).contains("  REDIS_PASSWORD: unchanged"));
    assert_eq!(get(&env, "DB_PASSWORD"), new);
    let out = m_ok(&env, &["manifest", "restore", &name, "--yes"]);
    assert!(out.contains("Restored 1 value"), "{out}");
    assert_eq!(get(&env, "DB_PASSWORD"), old);
    // Restoring it again changes nothing.
    assert!(m_ok(&env, &["manifest", "restore", &name, "--yes"]).contains("Nothing to restore"));
}

#[test]
fn restore_refuses_a_backup_of_another_service_and_a_corrupted_one() {
    let env = TestEnv::new();
    project(&env, EACH_TYPE);
    m_ok(&env, &["manifest", "generate"]);
    m_ok(&env, &["manifest", "backup"]);
    let dir = env.root().join("data/ov/backups/demo/secrets");
    let name = m_ok(&env, &["manifest", "backups"])
        .split_whitespace()
        .next()
        .expect("a backup")
        .to_owned();
    let file = dir.join(format!("{name}.age"));
    let before = get(&env, "PW");

    // The same backup offered to another project's manifest.
    let other = env.root().join("other.toml");
    fs::write(
        &other,
        "service = \"other/secrets\"\n[secrets.PW]\ntype = \"password:20\"\n",
    )
    .expect("write");
    let out = m(
        &env,
        &[
            "manifest",
            "--manifest",
            &other.display().to_string(),
            "restore",
            &file.display().to_string(),
            "--yes",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is a backup of demo/secrets, not of other/secrets"),
        "{}",
        stderr(&out)
    );

    // One flipped byte in the middle.
    let mut raw = fs::read(&file).expect("read");
    let mid = raw.len() / 2;
    raw[mid] ^= 0x55;
    let bad = env.root().join("bad.age");
    fs::write(&bad, raw).expect("write");
    let out = m(
        &env,
        &["manifest", "restore", &bad.display().to_string(), "--yes"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("damaged"), "{}", stderr(&out));
    assert_eq!(get(&env, "PW"), before);
    let out = m(&env, &["manifest", "restore", "no-such-backup", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("hint: ov manifest backups"));

    // A secret set since is kept, and said so.
    m_stdin(&env, &["manifest", "set", "MANUAL"], "by hand\n");
    env.ok(&["secrets", "set", "demo/secrets", "PW", "changed"]);
    let out = m_ok(&env, &["manifest", "restore", &name, "--yes"]);
    assert!(out.contains("  MANUAL: kept (not in the backup)"), "{out}");
    assert!(out.contains("  PW: will be restored"), "{out}");
    assert_eq!(get(&env, "PW"), before);
    assert_eq!(get(&env, "MANUAL"), "by hand");

    // Without the backup key no backup opens, and the error says where
    // the copy goes.
    fs::remove_file(env.config_dir().join("backup-key.txt")).expect("rm key");
    let out = m(&env, &["manifest", "restore", &name, "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("there is no backup key at"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint: cp "), "{}", stderr(&out));

    // A suffix that is not one word is refused.
    let out = m(&env, &["manifest", "backup", "../escape"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!env.root().join("data/ov/backups/demo/escape.age").exists());
}

#[test]
fn export_and_import_carry_the_metadata_or_every_value() {
    let env = TestEnv::new();
    project(&env, EACH_TYPE);
    m_ok(&env, &["manifest", "generate"]);
    let meta = env.root().join("proj/meta.json");
    let out = m(&env, &["manifest", "export", "meta.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = fs::read_to_string(&meta).expect("export");
    assert!(!text.contains(&get(&env, "PW")));
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["secrets"]["HEX"]["type"], "hex:105");
    assert_eq!(v["secrets"]["API_KEY"]["key"], "ov/api-key/openrouter");

    // Never over an existing file without --force.
    let again = m(&env, &["manifest", "export", "meta.json", "--with-values"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("hint: ov manifest export meta.json --with-values --force"),
        "{}",
        stderr(&again)
    );
    assert_eq!(fs::read_to_string(&meta).expect("read"), text);

    // --force replaces it.
    let out = m(&env, &["manifest", "export", "meta.json", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let full = env.root().join("proj/full.json");
    let out = m(&env, &["manifest", "export", "full.json", "--with-values"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("IN PLAINTEXT"), "{}", stderr(&out));
    assert_eq!(mode_of(&full), 0o600);

    // Into a fresh machine: the same values, the htpasswd password too.
    let fresh = TestEnv::new();
    project(&fresh, EACH_TYPE);
    fs::copy(&full, fresh.root().join("proj/full.json")).expect("copy");
    let dry = m_ok(&fresh, &["manifest", "import", "full.json", "--dry-run"]);
    assert!(dry.contains("[INFO] PW: would be stored"), "{dry}");
    assert!(!fresh.credentials().exists());
    let out = m_ok(&fresh, &["manifest", "import", "full.json"]);
    assert!(
        out.contains("Summary: 6 imported, 2 skipped, 0 errors"),
        "{out}"
    );
    for name in ["PW", "HEX", "B64", "ID", "AUTH", "AUTH_MD5"] {
        assert_eq!(get(&fresh, name), get(&env, name), "{name}");
    }
    assert_eq!(
        m_ok(&fresh, &["manifest", "get", "AUTH", "--password"]),
        m_ok(&env, &["manifest", "get", "AUTH", "--password"])
    );
    // A damaged file is refused without quoting what it holds.
    fs::write(
        fresh.root().join("proj/bad.json"),
        r#"{"format":"ov-manifest-export","version":1,"service":"s","secrets":{"PW":{"type":"x","key":"a/b","value":12345678}}}"#,
    )
    .expect("write");
    let out = m(&fresh, &["manifest", "import", "bad.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("bad.json:1:"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("12345678"), "{}", stderr(&out));

    // The metadata-only form imports nothing and says why.
    let out = m_ok(&env, &["manifest", "import", "meta.json"]);
    assert!(out.contains("[SKIP] PW: no value in the file"), "{out}");
}

/// A manifest that does not parse: the error names the file and line, and
/// nothing is written.
fn refused(manifest: &str, line: usize, words: &str) {
    let env = TestEnv::new();
    let dir = project(&env, manifest);
    for args in [&["manifest", "validate"][..], &["manifest", "generate"]] {
        let out = m(&env, args);
        assert_eq!(out.status.code(), Some(1), "{manifest}");
        let err = stderr(&out);
        let at = format!(
            "ov: error: {}:{line}",
            dir.join("ov-secrets.toml").display()
        );
        assert!(err.starts_with(&at), "want {at}: {err}");
        assert!(err.contains(words), "want {words:?}: {err}");
        assert!(err.contains("hint: ${EDITOR:-vi} "), "{err}");
    }
    assert!(!env.credentials().exists());
}

#[test]
fn bad_manifests_are_refused_with_file_and_line() {
    refused("[secrets.A]\ntype = \"nope:3\"\n", 2, "unknown type");
    refused(
        "[secrets.A]\nstacks = []\ntype = \"password:0\"\n",
        3,
        "at least 1",
    );
    refused("[secrets.A]\ntype = \"hex:100000000\"\n", 2, "over 4096");
    refused(
        "[secrets.A]\ntype = \"uuid\"\n\n[secrets.A]\ntype = \"uuid\"\n",
        4,
        "duplicate",
    );
    refused(
        "[secrets.A]\ntype = \"uuid\"\nstacks = [\"core\", \"my stack\"]\n",
        3,
        "has a space",
    );
    refused(
        "[secrets.A]\ntype = \"uuid\nstacks = []\n",
        2,
        "not valid TOML",
    );
    refused("[secrets.A]\ntpye = \"uuid\"\n", 2, "unknown key \"tpye\"");
}

#[test]
fn the_manifest_is_found_from_a_subdirectory_and_manifest_overrides() {
    let env = TestEnv::new();
    project(&env, EACH_TYPE);
    let sub = env.root().join("proj/a/b");
    fs::create_dir_all(&sub).expect("mkdir");
    let out = env
        .command(&["m", "list", "--json"])
        .current_dir(&sub)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    // None above the environment's root.
    let out = env.run(&["manifest", "validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no ov-secrets.toml in"),
        "{}",
        stderr(&out)
    );
    let other = env.root().join("x.toml");
    fs::write(&other, "[secrets.ONLY]\ntype = \"uuid\"\n").expect("write");
    let out = env.ok(&[
        "manifest",
        "list",
        "--json",
        "--manifest",
        &other.display().to_string(),
    ]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    assert_eq!(rows.len(), 1);
    // The default service is the project directory's name.
    assert_eq!(
        rows[0]["key"],
        format!("{}/secrets/ONLY", root_name(env.root()))
    );
}

fn root_name(p: &Path) -> String {
    p.file_name().expect("name").to_string_lossy().into_owned()
}

#[test]
fn a_manifest_over_the_kdbx_backend_keeps_its_values_in_the_database() {
    let mut env = TestEnv::new();
    let pw = "correct horse battery";
    env.set_env("OV_KDBX_PASSWORD", pw);
    env.ok(&["secrets", "init"]);
    project(&env, EACH_TYPE);
    let out = m_ok(&env, &["manifest", "generate"]);
    assert!(
        out.contains("Summary: 6 generated, 2 skipped, 0 errors"),
        "{out}"
    );
    assert!(!env.credentials().exists());
    let hex = get(&env, "HEX");
    // KeePassXC reads what ov wrote.
    require("keepassxc-cli", "keepassxc");
    let mut kpx = Command::new("keepassxc-cli")
        .args(["show", "-q", "-a", "Password"])
        .arg(env.config_dir().join("secrets.kdbx"))
        .arg("demo/secrets/HEX")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("keepassxc-cli");
    {
        use std::io::Write;
        kpx.stdin
            .take()
            .expect("stdin")
            .write_all(format!("{pw}\n").as_bytes())
            .expect("write");
    }
    let shown = kpx.wait_with_output().expect("wait");
    assert_eq!(stdout(&shown).trim_end(), hex);
    // Rotation and restore go through the database too.
    m_ok(&env, &["manifest", "rotate", "HEX", "--yes"]);
    assert_ne!(get(&env, "HEX"), hex);
    let name = backup_named(&env, "before-rotate-HEX");
    m_ok(&env, &["manifest", "restore", &name, "--yes"]);
    assert_eq!(get(&env, "HEX"), hex);
    assert_eq!(m(&env, &["manifest", "validate"]).status.code(), Some(0));
}

#[test]
fn a_manifest_over_the_keyring_backend_keeps_its_values_in_the_keyring() {
    let mut env = TestEnv::new();
    let ss = SecretService::start(&mut env);
    project(&env, EACH_TYPE);
    let out = m(&env, &["manifest", "generate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("plaintext"), "{}", stderr(&out));
    assert!(!env.credentials().exists());
    let line = get(&env, "AUTH");
    assert_eq!(
        ss.lookup(&["service", "demo/secrets", "username", "AUTH"]),
        Some(line.clone().into_bytes())
    );
    let password = m_ok(&env, &["manifest", "get", "AUTH", "--password"]);
    assert!(htpasswd_verifies(&line, "admin", password.trim_end()));
    assert_eq!(m(&env, &["manifest", "validate"]).status.code(), Some(0));
}

/// `ov doctor manifest --json` from the project directory: the check `id`.
fn doctor_check(env: &TestEnv, id: &str) -> serde_json::Value {
    let out = m(env, &["doctor", "manifest", "--json"]);
    TestEnv::check_in(&stdout(&out), id)
}

/// Paste the fix check `id` prints (from the project directory, with
/// `stdin`), then the check passes.
fn fix_passes(env: &TestEnv, id: &str, stdin: &str) {
    assert_eq!(paste_fix(env, id, "fail", stdin)["status"], "ok");
}

/// Paste the fix of check `id`, which is in state `now`; the check after.
fn paste_fix(env: &TestEnv, id: &str, now: &str, stdin: &str) -> serde_json::Value {
    let check = doctor_check(env, id);
    assert_eq!(check["status"], now, "{check}");
    let fix = check["fix"].as_str().expect("a fix").to_owned();
    let out = env.paste_in(&fix, &env.root().join("proj"), stdin);
    assert!(out.status.success(), "{fix}: {}", stderr(&out));
    let after = doctor_check(env, id);
    assert_ne!(after["status"], now, "after {fix}: {after}");
    after
}

#[test]
fn doctor_checks_the_manifest_and_each_fix_it_prints_works() {
    let mut env = TestEnv::new();
    project(
        &env,
        r#"
[secrets.TOKEN]
type = "hex:16"
stacks = ["web"]
[secrets.SAME_TOKEN]
type = "hex:8"
key = "proj/secrets/TOKEN"
stacks = ["db"]
[secrets.CLIENT]
type = "skip"
stacks = ["web"]
"#,
    );
    assert_eq!(doctor_check(&env, "manifest.parse")["status"], "ok");
    // Without the manifest's directory above it, the group is not there.
    assert!(
        TestEnv::check_in(&stdout(&env.run(&["doctor", "--json"])), "manifest.parse").is_null()
    );

    // A manual secret with no value: set it by hand; then the generated
    // ones are only a warning, and generate clears it.
    let after = paste_fix(&env, "manifest.required", "fail", "from-keycloak\n");
    assert_eq!(after["status"], "warn", "{after}");
    assert_eq!(get(&env, "CLIENT"), "from-keycloak");
    assert_eq!(
        paste_fix(&env, "manifest.required", "warn", "")["status"],
        "ok"
    );

    // Two names for one store key with two types: the fix opens the file.
    env.set_env("EDITOR", "sed -i s/hex:8/hex:16/");
    fix_passes(&env, "manifest.keys", "");

    // A placeholder: generate replaces it.
    env.ok(&["secrets", "set", "proj/secrets", "TOKEN", "CHANGE_ME"]);
    fix_passes(&env, "manifest.placeholders", "");
    assert_eq!(get(&env, "TOKEN").len(), 16);

    // A rendered secrets.env: private, and ignored by git.
    let file = env.root().join("proj/secrets.env");
    env.write(&file, "TOKEN=x\n", 0o644);
    fix_passes(&env, "manifest.env_file", "");
    assert_eq!(mode_of(&file), 0o600);
    require("git", "git");
    let git = Command::new("git")
        .args(["init", "-q"])
        .current_dir(env.root().join("proj"))
        .status()
        .expect("git init");
    assert!(git.success());
    fix_passes(&env, "manifest.env_file_ignored", "");

    let out = m(&env, &["doctor", "manifest"]);
    assert!(out.status.success(), "{}", stdout(&out));

    // A manifest that does not parse fails the group with file and line.
    project(&env, "[secrets.X]\ntype = \"password:0\"\n");
    let parse = doctor_check(&env, "manifest.parse");
    assert_eq!(parse["status"], "fail");
    assert!(
        parse["finding"]
            .as_str()
            .is_some_and(|f| f.contains("ov-secrets.toml:2: ")),
        "{parse}"
    );
}

#[test]
fn on_a_terminal_rotate_asks_and_generate_shows_progress_in_colour() {
    let env = TestEnv::new();
    project(&env, INVENTORY);
    let out = common::expect(
        &env,
        // indicatif draws nothing on a terminal without TERM (or a dumb one).
        "set env(TERM) xterm\ncd proj\nspawn $ov manifest generate\nexpect \"Secrets generation complete!\"\nexpect eof\n",
    );
    let shown = stdout(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("/35"), "no progress bar: {shown:?}");
    assert!(
        shown.contains("\u{1b}[32m[SUCCESS]"),
        "no colour: {shown:?}"
    );

    let old = get(&env, "REDIS_PASSWORD");
    let out = common::expect(
        &env,
        "cd proj\nspawn $ov manifest rotate REDIS_PASSWORD\nexpect \"Continue? (yes/no): \"\nsend \"no\\r\"\nexpect \"not confirmed\"\nexpect eof\n",
    );
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(get(&env, "REDIS_PASSWORD"), old);
    let out = common::expect(
        &env,
        "set env(NO_COLOR) 1\ncd proj\nspawn $ov manifest rotate REDIS_PASSWORD\nexpect \"Continue? (yes/no): \"\nsend \"yes\\r\"\nexpect \"Secret rotated successfully\"\nexpect eof\n",
    );
    let shown = stdout(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        !shown.contains('\u{1b}'),
        "colour despite NO_COLOR: {shown:?}"
    );
    assert!(
        shown.contains("./kompose.sh restart core auth code link track"),
        "{shown}"
    );
    assert_ne!(get(&env, "REDIS_PASSWORD"), old);
}

#[test]
fn a_secret_behind_a_locked_keyring_collection_is_never_generated_again() {
    let mut env = TestEnv::new();
    let ss = SecretService::start(&mut env);
    project(&env, EACH_TYPE);
    let work = ss.create_collection("Work");
    env.ok(&["settings", "set", "keyring_collection_label", "Work"]);
    let hex = get(&env, "HEX");
    ss.lock(&work);
    // Writes would now go to the default collection, which is open.
    env.ok(&["settings", "unset", "keyring_collection_label"]);

    let out = m(&env, &["manifest", "get", "HEX"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("cannot tell whether HEX is stored"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint: "), "{}", stderr(&out));
    let out = m(&env, &["manifest", "generate", "HEX"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("Summary: 0 generated, 0 skipped, 1 errors"),
        "{}",
        stdout(&out)
    );
    let out = m(&env, &["manifest", "validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("[WARNING] HEX: Unknown, "),
        "{}",
        stdout(&out)
    );

    // Rotation backs up first, and a backup cannot leave the value out.
    let out = m(&env, &["manifest", "rotate", "HEX", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot back up: "),
        "{}",
        stderr(&out)
    );

    ss.unlock(&work);
    assert_eq!(get(&env, "HEX"), hex);
}
