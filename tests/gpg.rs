//! `ov secrets gpg` against the real GnuPG: a private GNUPGHOME and agent
//! per test (killed on drop, panics included), keys made with
//! `--quick-gen-key`, and the private D-Bus + gnome-keyring fixture for the
//! Secret Service parts.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::secret_service::{SecretService, require};
use common::{TestEnv, mode_of, stderr, stdout};

const PASS: &str = "correct horse battery";

/// A GNUPGHOME with a short path (agent socket paths are limited) and the
/// agent it starts; `gpgconf --kill all` on drop.
struct Gnupg {
    dir: tempfile::TempDir,
}

impl Drop for Gnupg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--kill")
            .arg("all")
            .env("GNUPGHOME", self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

struct Key {
    fpr: String,
    keyid: String,
    grips: Vec<String>,
    enc_grip: String,
}

impl Gnupg {
    fn new(env: &mut TestEnv) -> Gnupg {
        let g = Gnupg::bare();
        env.set_env("GNUPGHOME", g.home().display().to_string());
        g
    }

    fn bare() -> Gnupg {
        require("gpg", "gnupg");
        require("gpg-connect-agent", "gnupg");
        require("gpgconf", "gnupg");
        let dir = tempfile::Builder::new()
            .prefix("g.")
            .tempdir_in("/tmp")
            .expect("GNUPGHOME");
        fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod");
        fs::write(
            dir.path().join("gpg-agent.conf"),
            "allow-preset-passphrase\nallow-loopback-pinentry\n",
        )
        .expect("agent conf");
        Gnupg { dir }
    }

    fn home(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self, prog: &str, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(prog)
            .args(args)
            .env("GNUPGHOME", self.home())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("stdin");
        child.wait_with_output().expect("wait")
    }

    fn gpg(&self, args: &[&str], stdin: &str) -> Output {
        let mut all = vec!["--batch", "--no-tty"];
        all.extend_from_slice(args);
        self.cmd("gpg", &all, stdin)
    }

    fn gen_key(&self, uid: &str) -> Key {
        let out = self.gpg(
            &[
                "--pinentry-mode",
                "loopback",
                "--passphrase-fd",
                "0",
                "--quick-gen-key",
                uid,
                "future-default",
                "default",
                "never",
            ],
            PASS,
        );
        assert!(out.status.success(), "keygen: {}", stderr(&out));
        let list = stdout(&self.gpg(
            &["--with-colons", "--with-keygrip", "--list-secret-keys", uid],
            "",
        ));
        let field = |l: &str| l.split(':').nth(9).unwrap_or("").to_owned();
        let lines: Vec<&str> = list.lines().collect();
        let fpr = field(lines.iter().find(|l| l.starts_with("fpr:")).expect("fpr"));
        let keyid = lines
            .iter()
            .find(|l| l.starts_with("sec:"))
            .and_then(|l| l.split(':').nth(4))
            .expect("keyid")
            .to_owned();
        let grips: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with("grp:"))
            .map(|l| field(l))
            .collect();
        let enc_grip = grips.last().expect("grip").clone();
        Key {
            fpr,
            keyid,
            grips,
            enc_grip,
        }
    }

    fn preset(&self, grip: &str) {
        let out = self.cmd(
            "/usr/lib/gnupg/gpg-preset-passphrase",
            &["--preset", grip],
            PASS,
        );
        assert!(out.status.success(), "preset: {}", stderr(&out));
    }

    fn clear(&self, grip: &str) {
        self.cmd(
            "gpg-connect-agent",
            &[&format!("CLEAR_PASSPHRASE --mode=normal {grip}"), "/bye"],
            "",
        );
    }

    fn cached(&self, grip: &str) -> bool {
        stdout(&self.cmd("gpg-connect-agent", &["KEYINFO --list", "/bye"], ""))
            .lines()
            .any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.get(2) == Some(&grip) && f.get(6) == Some(&"1")
            })
    }
}

/// A test environment with its own GnuPG home, one key, its passphrase
/// cached in the agent.
fn gpg_env() -> (TestEnv, Gnupg, Key) {
    let mut env = TestEnv::new();
    let g = Gnupg::new(&mut env);
    let key = g.gen_key("Alice <alice@example.com>");
    g.preset(&key.enc_grip);
    (env, g, key)
}

/// Another user's GnuPG home with a key of its own, and this environment's
/// `.secrets` encrypted to that key alone.
fn encrypted_to_a_stranger(env: &TestEnv) -> Gnupg {
    let other = Gnupg::bare();
    let stranger = other.gen_key("Stranger <s@example.com>");
    let out = other.gpg(
        &[
            "--trust-model",
            "always",
            "-e",
            "-r",
            &stranger.fpr,
            "-o",
            "-",
        ],
        "A=1\n",
    );
    fs::write(secrets(env), &out.stdout).expect("write");
    other
}

/// `ov ARGS` without a controlling terminal and with stdin from /dev/null.
fn no_tty(env: &TestEnv, args: &[&str]) -> Output {
    env.command_under(&["setsid", "-w"], args)
        .output()
        .expect("setsid")
}

fn secrets(env: &TestEnv) -> PathBuf {
    env.root().join(".secrets")
}

fn encrypt(env: &TestEnv, key: &Key, text: &str) {
    env.write(&env.root().join(".env"), text, 0o600);
    let out = env.run(&["secrets", "gpg", "encrypt", "-r", &key.keyid]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn env_prints_exports_a_shell_evaluates_back_to_the_exact_values() {
    let (env, _g, key) = gpg_env();
    encrypt(
        &env,
        &key,
        "PLAIN=abc\nQUOTE=\"it's\"\nDOLLAR=\"$HOME \\$x `id`\"\nNL=\"a\\nb\"\nexport SPACE = ' lead and trail '\nEMPTY=\n",
    );
    let exports = env.ok(&["secrets", "gpg", "env"]);
    assert!(exports.starts_with("export PLAIN='abc'\n"), "{exports}");
    let script = format!(
        "{exports}\nprintf '%s|' \"$PLAIN\" \"$QUOTE\" \"$DOLLAR\" \"$NL\" \"$SPACE\" \"$EMPTY\""
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh");
    assert_eq!(
        stdout(&out),
        "abc|it's|$HOME $x `id`|a\nb| lead and trail ||"
    );
}

#[test]
fn env_without_a_file_prints_nothing_and_succeeds() {
    let (env, _g, _key) = gpg_env();
    let out = env.run(&["secrets", "gpg", "env", "-f", ".secrets.prod"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), "");
}

#[test]
fn set_unset_and_add_recipient_keep_entries_and_recipients() {
    let (env, g, alice) = gpg_env();
    let bob = g.gen_key("Bob <bob@example.com>");
    encrypt(&env, &alice, "A=1\nB=2\n");
    env.ok(&["secrets", "gpg", "set", "C", "three 3"]);
    let out = env.run_stdin(&["secrets", "gpg", "set", "A"], "from stdin\n");
    assert!(out.status.success(), "{}", stderr(&out));
    env.ok(&["secrets", "gpg", "unset", "B"]);
    assert_eq!(
        env.ok(&["secrets", "gpg", "show"]),
        "A='from stdin'\nC='three 3'\n"
    );
    let before = env.ok(&["secrets", "gpg", "recipients"]);
    assert_eq!(before.lines().count(), 1, "{before}");
    env.ok(&["secrets", "gpg", "add-recipient", &bob.keyid]);
    let after = env.ok(&["secrets", "gpg", "recipients"]);
    assert_eq!(after.lines().count(), 2, "{after}");
    assert!(after.contains("Alice") && after.contains("Bob"), "{after}");
    // The same, for scripts: the primary key ids (what -r takes) and uids.
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["secrets", "gpg", "recipients", "--json"])).expect("json");
    let rows = json.as_array().expect("a list");
    assert_eq!(rows.len(), 2, "{json}");
    for (row, key) in rows.iter().zip([&alice, &bob]) {
        assert!(
            key.fpr.ends_with(row["key"].as_str().expect("key")),
            "{json}"
        );
        assert_eq!(row["public_key"], true);
        assert!(row["subkey"].is_string(), "{json}");
    }
    // Later writes keep both recipients.
    env.ok(&["secrets", "gpg", "set", "D", "4"]);
    assert_eq!(env.ok(&["secrets", "gpg", "recipients"]), after);
    // Bob alone can read it: drop Alice's secret key.
    let out = g.gpg(&["--yes", "--delete-secret-keys", &alice.fpr], "");
    assert!(out.status.success(), "{}", stderr(&out));
    g.preset(&bob.enc_grip);
    assert!(env.ok(&["secrets", "gpg", "show"]).contains("D='4'"));
}

#[test]
fn a_file_that_is_not_openpgp_is_refused_with_the_fix_and_left_alone() {
    let (env, _g, _key) = gpg_env();
    env.write(&secrets(&env), "A=plaintext\n", 0o600);
    for args in [
        &["secrets", "gpg", "env"][..],
        &["secrets", "gpg", "set", "B", "2"],
        &["secrets", "gpg", "recipients"],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("not an OpenPGP file"), "{args:?}: {err}");
        assert!(err.contains("hint: ov secrets gpg encrypt"), "{err}");
    }
    assert_eq!(
        fs::read_to_string(secrets(&env)).expect("read"),
        "A=plaintext\n"
    );
}

#[test]
fn a_file_encrypted_to_a_key_we_lack_says_no_secret_key_and_how_to_import() {
    let (env, _g, _key) = gpg_env();
    let _other = encrypted_to_a_stranger(&env);
    let before = fs::read(secrets(&env)).expect("read");
    let out = no_tty(&env, &["secrets", "gpg", "env"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("No secret key"), "{err}");
    // The fix names the key the file needs, not a placeholder.
    assert!(
        err.lines().any(
            |l| l.starts_with("hint: ov secrets gpg import-key gpg-key-")
                && l.contains("--key-id ")
        ),
        "{err}"
    );
    assert!(
        err.contains("hint: ov secrets gpg import-key --from-keystore --key-id "),
        "{err}"
    );
    assert!(
        !err.contains("<path>") && !err.contains("YOUR_KEY_ID"),
        "{err}"
    );
    let out = env.run(&["secrets", "gpg", "set", "B", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(fs::read(secrets(&env)).expect("read"), before);
}

#[test]
fn an_unparseable_plaintext_names_the_line_and_the_file_stays() {
    let (env, g, key) = gpg_env();
    let out = g.gpg(
        &["--trust-model", "always", "-e", "-r", &key.fpr, "-o", "-"],
        "A=1\nthis is not an assignment\nB=2\n",
    );
    fs::write(secrets(&env), &out.stdout).expect("write");
    let before = fs::read(secrets(&env)).expect("read");
    let out = env.run(&["secrets", "gpg", "env"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("line 2:"), "{err}");
    assert!(
        err.contains("hint: ov secrets gpg edit -f .secrets"),
        "{err}"
    );
    assert_eq!(stdout(&out), "");
    let out = env.run(&["secrets", "gpg", "set", "C", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(fs::read(secrets(&env)).expect("read"), before);
}

#[test]
fn duplicate_keys_warn_and_the_last_wins() {
    let (env, _g, key) = gpg_env();
    encrypt(&env, &key, "A=1\nA=2\n");
    let out = env.run(&["secrets", "gpg", "env"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "export A='2'\n");
    assert!(
        stderr(&out).contains("line 2: A repeats line 1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unknown_recipient_is_an_error_and_nothing_is_written() {
    let (env, _g, key) = gpg_env();
    encrypt(&env, &key, "A=1\n");
    let before = fs::read(secrets(&env)).expect("read");
    let out = env.run(&["secrets", "gpg", "add-recipient", "0xDEADBEEFDEADBEEF"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("unknown recipient 0xDEADBEEFDEADBEEF"),
        "{err}"
    );
    assert!(
        err.contains("hint: gpg --recv-keys 0xDEADBEEFDEADBEEF"),
        "{err}"
    );
    assert_eq!(fs::read(secrets(&env)).expect("read"), before);
    let out = env.run(&[
        "secrets",
        "gpg",
        "encrypt",
        "-r",
        "nobody@example.com",
        "-o",
        "new",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!env.root().join("new").exists());
}

#[test]
fn a_read_only_secrets_file_is_not_replaced() {
    let (env, _g, key) = gpg_env();
    encrypt(&env, &key, "A=1\n");
    let before = fs::read(secrets(&env)).expect("read");
    fs::set_permissions(
        secrets(&env),
        std::os::unix::fs::PermissionsExt::from_mode(0o444),
    )
    .expect("chmod");
    for args in [
        &["secrets", "gpg", "set", "B", "2"][..],
        &["secrets", "gpg", "unset", "A"],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains("is read-only"), "{}", stderr(&out));
        assert!(stderr(&out).contains("hint: chmod u+w .secrets"));
    }
    assert_eq!(fs::read(secrets(&env)).expect("read"), before);
    assert_eq!(mode_of(&secrets(&env)), 0o444);
}

#[test]
fn without_a_terminal_and_no_cached_passphrase_decrypt_fails_fast_with_the_fix() {
    let (env, g, key) = gpg_env();
    encrypt(&env, &key, "A=1\n");
    g.clear(&key.enc_grip);
    assert!(!g.cached(&key.enc_grip));
    let start = Instant::now();
    let out = no_tty(&env, &["secrets", "gpg", "env"]);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("not cached in gpg-agent"), "{err}");
    assert!(err.contains("hint: ov secrets gpg setup"), "{err}");
    assert_eq!(stdout(&out), "");
}

#[test]
fn edit_re_encrypts_changes_and_leaves_the_file_alone_otherwise() {
    let (mut env, _g, key) = gpg_env();
    encrypt(&env, &key, "A=1\n");
    let before = fs::read(secrets(&env)).expect("read");
    let runtime = env.root().join("run");
    let leftovers = || {
        fs::read_dir(&runtime)
            .expect("run dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("ov-gpg."))
            .count()
    };

    env.set_env("EDITOR", "true");
    let out = env.run(&["secrets", "gpg", "edit"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("no changes"));
    assert_eq!(fs::read(secrets(&env)).expect("read"), before);

    env.set_env("EDITOR", "false");
    let out = env.run(&["secrets", "gpg", "edit"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is unchanged"), "{}", stderr(&out));
    assert_eq!(fs::read(secrets(&env)).expect("read"), before);

    // The test's XDG_RUNTIME_DIR is under /tmp, usually a disk: the
    // plaintext must go to a memory filesystem all the same.
    let editor = env.root().join("ed.sh");
    env.write(
        &editor,
        "#!/bin/sh\nd=$(dirname \"$1\")\n{ ls -ld \"$d\"; stat -f -c %T \"$d\"; echo \"$d\"; } > \"$SEEN\"\nprintf 'B=2\\n' >> \"$1\"\n",
        0o755,
    );
    env.set_env("EDITOR", editor.display().to_string());
    env.set_env("SEEN", env.root().join("seen").display().to_string());
    let out = env.run(&["secrets", "gpg", "edit"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.ok(&["secrets", "gpg", "show"]), "A=1\nB=2\n");
    assert_eq!(leftovers(), 0, "plaintext left behind");
    let seen = fs::read_to_string(env.root().join("seen")).expect("the editor ran");
    let lines: Vec<&str> = seen.lines().collect();
    assert!(lines[0].starts_with("drwx------"), "{seen}");
    assert!(matches!(lines[1], "tmpfs" | "ramfs"), "plaintext on {seen}");
    assert!(!Path::new(lines[2]).exists(), "{} left behind", lines[2]);
}

/// Start `ov secrets gpg edit` with an editor that records the plaintext's
/// path and waits; return ov and that path once the editor runs.
fn edit_waiting(env: &TestEnv) -> (std::process::Child, PathBuf) {
    let mark = env.root().join("editing");
    let _ = fs::remove_file(&mark);
    let mut cmd = env.command(&["secrets", "gpg", "edit"]);
    cmd.env("EDITOR", env.root().join("wait.sh"))
        .env("MARK", &mark)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    env.write(
        &env.root().join("wait.sh"),
        "#!/bin/sh\necho \"$1\" > \"$MARK.tmp\"; mv \"$MARK.tmp\" \"$MARK\"\nexec sleep 30\n",
        0o755,
    );
    let child = cmd.spawn().expect("spawn ov");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !mark.exists() {
        assert!(Instant::now() < deadline, "the editor never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let path = PathBuf::from(fs::read_to_string(&mark).expect("mark").trim());
    (child, path)
}

#[test]
fn edit_removes_the_plaintext_when_ov_is_killed_by_a_signal() {
    let (env, _g, key) = gpg_env();
    encrypt(&env, &key, "A=1\n");
    let before = fs::read(secrets(&env)).expect("read");
    for sig in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGHUP,
    ] {
        let (mut ov, plaintext) = edit_waiting(&env);
        assert!(plaintext.exists(), "{}", plaintext.display());
        let pid = nix::unistd::Pid::from_raw(i32::try_from(ov.id()).expect("pid"));
        nix::sys::signal::kill(pid, sig).expect("kill");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = ov.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "ov did not end on {sig}");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!status.success(), "{sig}");
        let dir = plaintext.parent().expect("dir");
        assert!(!dir.exists(), "{sig}: {} left behind", dir.display());
        assert_eq!(fs::read(secrets(&env)).expect("read"), before);
    }
}

#[test]
fn edits_that_do_not_parse_are_never_lost() {
    let (mut env, g, key) = gpg_env();
    encrypt(&env, &key, "A=1\n");
    let before = fs::read(secrets(&env)).expect("read");
    // An editor session that leaves a line ov cannot read.
    let editor = env.root().join("ed.sh");
    env.write(
        &editor,
        "#!/bin/sh\nprintf 'B=my precious edit\\nnot an assignment\\n' >> \"$1\"\n",
        0o755,
    );
    env.set_env("EDITOR", editor.display().to_string());

    // No terminal to ask on: the file stays, the edits are kept encrypted.
    let out = env.run(&["secrets", "gpg", "edit"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("line 3:"), "{err}");
    assert!(
        err.contains(
            ".secrets is unchanged, and your edits are kept, encrypted, in .secrets.rejected"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "hint: ov secrets gpg edit -f .secrets.rejected && mv .secrets.rejected .secrets"
        ),
        "{err}"
    );
    assert_eq!(fs::read(secrets(&env)).expect("read"), before);
    let rejected = env.root().join(".secrets.rejected");
    let kept = g.gpg(&["--decrypt", &rejected.display().to_string()], "");
    assert_eq!(
        String::from_utf8_lossy(&kept.stdout),
        "A=1\nB=my precious edit\nnot an assignment\n"
    );
    // A second failure does not overwrite the first.
    env.run(&["secrets", "gpg", "edit"]);
    assert!(env.root().join(".secrets.rejected.1").exists());

    // On a terminal, ov offers the editor again on the same text; this
    // editor fixes what it wrote the first time.
    let fixer = env.root().join("fix.sh");
    env.write(
        &fixer,
        "#!/bin/sh\nif grep -q '^C=' \"$1\"; then sed -i 's/^oops$/D=4/' \"$1\"; else printf 'C=3\\noops\\n' >> \"$1\"; fi\n",
        0o755,
    );
    env.set_env("EDITOR", fixer.display().to_string());
    let out = common::expect(
        &env,
        r#"
        spawn $ov secrets gpg edit
        expect "Edit again"
        send "\r"
        expect "re-encrypted"
        expect eof
        catch wait result
        exit [lindex $result 3]
        "#,
    );
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(env.ok(&["secrets", "gpg", "show"]), "A=1\nC=3\nD=4\n");
}

#[test]
fn setup_configures_the_agent_and_stores_the_passphrase_where_pinentry_looks() {
    let mut env = TestEnv::new();
    let ss = SecretService::start(&mut env);
    let g = Gnupg::new(&mut env);
    fs::write(
        g.home().join("gpg-agent.conf"),
        "# my own settings\nenable-ssh-support\ndefault-cache-ttl 60\n",
    )
    .expect("conf");
    env.write(&env.root().join("pass"), &format!("{PASS}\n"), 0o600);
    let out = no_tty(
        &env,
        &[
            "secrets",
            "gpg",
            "setup",
            "--passphrase-file",
            "pass",
            "--uid",
            "Setup <s@example.com>",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let conf = fs::read_to_string(g.home().join("gpg-agent.conf")).expect("conf");
    assert!(
        conf.starts_with("# my own settings\nenable-ssh-support\ndefault-cache-ttl 28800\n"),
        "{conf}"
    );
    for line in [
        "max-cache-ttl 43200",
        "allow-preset-passphrase",
        "allow-loopback-pinentry",
        "pinentry-program /",
    ] {
        assert!(conf.contains(line), "{line} missing: {conf}");
    }
    assert!(g.home().join("gpg-agent.conf.bak").exists());
    assert!(
        stderr(&out).contains("no systemd user manager"),
        "{}",
        stderr(&out)
    );

    // Idempotent: a second run changes nothing and keeps the same key.
    let out = no_tty(
        &env,
        &["secrets", "gpg", "setup", "--passphrase-file", "pass"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("already set up"), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(g.home().join("gpg-agent.conf")).expect("conf"),
        conf
    );
    let keys = stdout(&g.gpg(&["--with-colons", "--with-keygrip", "-K"], ""));
    assert_eq!(keys.lines().filter(|l| l.starts_with("sec:")).count(), 1);
    let grips: Vec<String> = keys
        .lines()
        .filter(|l| l.starts_with("grp:"))
        .map(|l| l.split(':').nth(9).expect("grip").to_owned())
        .collect();
    assert_eq!(grips.len(), 2);

    for grip in &grips {
        // pinentry's lookup (secmem/password-cache.c): schema
        // org.gnupg.Passphrase, attribute key-grip = the agent's
        // SETKEYINFO value, "n/<grip>" in normal cache mode.
        let found = ss.lookup(&[
            "xdg:schema",
            "org.gnupg.Passphrase",
            "key-grip",
            &format!("n/{grip}"),
        ]);
        assert_eq!(found.as_deref(), Some(PASS.as_bytes()), "grip {grip}");
        assert!(g.cached(grip), "{grip} not cached in the agent");
    }
    // The agent now decrypts without any pinentry.
    let fpr = keys
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .expect("fpr")
        .to_owned();
    env.write(&env.root().join(".env"), "X=1\n", 0o600);
    env.ok(&["secrets", "gpg", "encrypt", "-r", &fpr]);
    assert_eq!(
        no_tty(&env, &["secrets", "gpg", "env"]).stdout,
        b"export X='1'\n"
    );

    let out = no_tty(&env, &["secrets", "gpg", "doctor"]);
    let report = stdout(&out);
    assert!(out.status.success(), "{report}");
    for id in [
        "gpg.binary",
        "gpg.agent.conf",
        "gpg.keys.cached",
        "gpg.keys.stored",
        "gpg.file.decrypt",
    ] {
        assert!(
            report.lines().any(|l| l.contains(id) && l.starts_with('✓')),
            "{id}: {report}"
        );
    }
    // No key backup yet: a warning with its fix.
    assert!(
        report.contains("fix: ov secrets gpg export-key --to-keystore"),
        "{report}"
    );
}

#[test]
fn setup_without_a_passphrase_or_terminal_fails_fast() {
    let mut env = TestEnv::new();
    let _g = Gnupg::new(&mut env);
    let out = no_tty(&env, &["secrets", "gpg", "setup", "--skip-secret-service"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("hint: ov secrets gpg setup --passphrase-file <FILE>"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn export_to_a_directory_and_the_keystore_then_import_elsewhere() {
    let mut env = TestEnv::new();
    let ss = SecretService::start(&mut env);
    let g = Gnupg::new(&mut env);
    let key = g.gen_key("Carol <carol@example.com>");
    env.write(&env.root().join("pass"), &format!("{PASS}\n"), 0o600);
    let out = no_tty(
        &env,
        &[
            "secrets",
            "gpg",
            "export-key",
            "backup",
            "--to-keystore",
            "--passphrase-file",
            "pass",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for f in ["public.asc", "secret.asc", "ownertrust.txt"] {
        assert_eq!(mode_of(&env.root().join("backup").join(f)), 0o600, "{f}");
    }
    let stored = ss
        .lookup(&["xdg:schema", "org.gnupg.Key", "keyid", &key.keyid])
        .expect("org.gnupg.Key item");
    assert!(String::from_utf8_lossy(&stored).contains("BEGIN PGP PRIVATE KEY BLOCK"));
    for grip in &key.grips {
        assert!(
            ss.lookup(&[
                "xdg:schema",
                "org.gnupg.Passphrase",
                "key-grip",
                &format!("n/{grip}")
            ])
            .is_some()
        );
    }

    // A fresh home restores the key from the Secret Service …
    let fresh = Gnupg::new(&mut env);
    let out = no_tty(
        &env,
        &[
            "secrets",
            "gpg",
            "import-key",
            "--from-keystore",
            "--key-id",
            &key.keyid,
            "--passphrase-file",
            "pass",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&fresh.gpg(&["-K", &key.fpr], "")).contains(&key.fpr));
    // … and another from the directory.
    let dir_home = Gnupg::new(&mut env);
    let out = no_tty(
        &env,
        &[
            "secrets",
            "gpg",
            "import-key",
            "backup",
            "--passphrase-file",
            "pass",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&dir_home.gpg(&["-K", &key.fpr], "")).contains(&key.fpr));
}

#[test]
fn the_passphrase_flag_warns_that_ps_shows_it() {
    let mut env = TestEnv::new();
    let g = Gnupg::new(&mut env);
    g.gen_key("Dave <d@example.com>");
    let out = no_tty(
        &env,
        &["secrets", "gpg", "export-key", "out", "--passphrase", PASS],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("visible to every user in ps until ov hid it"));
    // While ov runs, ps shows x's in its place, in either spelling.
    for args in [
        &["secrets", "gpg", "export-key", "out", "--passphrase", PASS][..],
        &[
            "secrets",
            "gpg",
            "export-key",
            "out",
            &format!("--passphrase={PASS}"),
        ],
    ] {
        let shown = common::cmdline_while_blocked(&env, args);
        assert!(!shown.contains(PASS), "{shown}");
        assert!(shown.contains(&"x".repeat(PASS.len())), "{shown}");
    }
}

#[test]
fn gpg_doctor_speaks_the_doctors_json() {
    let (env, _g, _key) = gpg_env();
    let out = env.run(&["secrets", "gpg", "doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["schema_version"], 1, "{v}");
    let binary = TestEnv::check_in(&stdout(&out), "gpg.binary");
    assert_eq!(binary["status"], "ok", "{binary}");
    assert_eq!(binary["group"], "gpg");
}

#[test]
fn doctor_without_gpg_gives_one_clear_result() {
    let mut env = TestEnv::new();
    env.set_env("PATH", "/nonexistent");
    let out = env.run(&["secrets", "gpg", "doctor"]);
    assert_eq!(out.status.code(), Some(1));
    let report = stdout(&out);
    assert!(report.contains("gpg is not installed"), "{report}");
    // As root (the test machine), without sudo, which may not be there.
    let install = common::as_root("apt-get install -y gnupg");
    assert!(report.contains(&format!("fix: {install}")), "{report}");
    let out = env.run(&["secrets", "gpg", "show"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("hint: {install}")));
}

#[test]
fn decrypt_writes_a_private_file_or_stdout_and_a_missing_file_says_how_to_create_it() {
    let (env, _g, key) = gpg_env();
    let out = env.run(&["secrets", "gpg", "show"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "hint: ov secrets gpg encrypt -r {} -i .env -o .secrets",
            key.keyid
        )),
        "{}",
        stderr(&out)
    );
    encrypt(&env, &key, "A=1\n");
    assert_eq!(env.ok(&["secrets", "gpg", "decrypt"]), "A=1\n");
    env.ok(&[
        "secrets",
        "gpg",
        "decrypt",
        "-i",
        ".secrets",
        "-o",
        "plain.env",
    ]);
    let plain = env.root().join("plain.env");
    assert_eq!(fs::read_to_string(&plain).expect("read"), "A=1\n");
    assert_eq!(mode_of(&plain), 0o600);
}

#[test]
fn setup_on_a_terminal_asks_for_the_new_key_passphrase_without_echo() {
    require("expect", "expect");
    let mut env = TestEnv::new();
    let g = Gnupg::new(&mut env);
    let out = common::expect(
        &env,
        r#"
        set timeout 60
        spawn $ov secrets gpg setup --skip-secret-service --uid "Tty <tty@example.com>"
        expect "Passphrase for the new GPG key: "
        send "typed secret\r"
        expect "Again: "
        send "typed secret\r"
        expect "done. Next: ov secrets gpg encrypt -r "
        expect eof
        catch wait result
        exit [lindex $result 3]
        "#,
    );
    let screen = stdout(&out);
    assert!(out.status.success(), "{screen}");
    assert!(!screen.contains("typed secret"), "echoed: {screen}");
    let keys = stdout(&g.gpg(&["--with-colons", "--with-keygrip", "-K"], ""));
    assert!(keys.contains("Tty <tty@example.com>"), "{keys}");
    for grip in keys.lines().filter(|l| l.starts_with("grp:")) {
        let grip = grip.split(':').nth(9).expect("grip");
        assert!(g.cached(grip), "{grip} not cached after setup");
    }
}

#[test]
fn help_and_the_not_openpgp_error_read_as_reviewed() {
    let mut env = TestEnv::new();
    let _g = Gnupg::new(&mut env);
    crate::snap!("help_secrets_gpg", env.ok(&["secrets", "gpg", "--help"]));
    env.write(&secrets(&env), "A=plaintext\n", 0o600);
    let out = env.run(&["secrets", "gpg", "env"]);
    crate::snap!("gpg_env_not_openpgp", env.transcript(&out));
}

#[test]
fn doctor_fails_on_a_file_no_key_here_can_open_and_names_the_fix() {
    let (env, _g, _key) = gpg_env();
    let _other = encrypted_to_a_stranger(&env);
    let out = no_tty(&env, &["secrets", "gpg", "doctor"]);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with('✗') && l.contains("gpg.file.recipients")),
        "{report}"
    );
    assert!(
        report.contains("fix: ov secrets gpg import-key gpg-key-"),
        "{report}"
    );
}

#[test]
fn set_on_a_new_file_encrypts_to_your_own_key_or_the_ones_named() {
    let (env, g, alice) = gpg_env();
    let bob = g.gen_key("Bob <bob@example.com>");
    env.ok(&["secrets", "gpg", "set", "A", "1"]);
    let own = env.ok(&["secrets", "gpg", "recipients"]);
    assert!(own.contains("Alice") && !own.contains("Bob"), "{own}");
    env.ok(&[
        "secrets",
        "gpg",
        "set",
        "A",
        "1",
        "-f",
        "two",
        "-r",
        &alice.keyid,
        "-r",
        &bob.keyid,
    ]);
    let both = env.ok(&["secrets", "gpg", "recipients", "-f", "two"]);
    assert_eq!(both.lines().count(), 2, "{both}");
}

#[test]
fn encrypt_and_set_leave_no_lock_file_in_the_project() {
    let (env, _g, key) = gpg_env();
    encrypt(&env, &key, "A=1\n");
    env.ok(&["secrets", "gpg", "set", "B", "2"]);
    let beside: Vec<String> = std::fs::read_dir(env.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("lock"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
    // The lock lives in the runtime directory, named after the file it guards.
    let locks: Vec<String> = std::fs::read_dir(env.root().join("run/ov/locks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert!(
        locks[0].starts_with("secrets.") && locks[0].ends_with(".lock"),
        "{locks:?}"
    );
}

/// The values of `keys` after `sh -c` (or bash, dash) sources `file` with
/// `set -a`, NUL-separated; and whether sourcing ran a command.
fn sourced(shell: &str, dir: &Path, file: &str, keys: &[&str]) -> (Vec<String>, bool) {
    require(shell, shell);
    let marker = dir.join("pwned");
    let _ = fs::remove_file(&marker);
    let prints: String = keys.iter().map(|k| format!(" \"${k}\"")).collect();
    let out = Command::new(shell)
        .arg("-c")
        .arg(format!("set -a; . ./{file}; printf '%s\\0'{prints}"))
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent-home")
        .output()
        .expect(shell);
    assert!(out.status.success(), "{shell}: {}", stderr(&out));
    let vals = stdout(&out)
        .split('\0')
        .take(keys.len())
        .map(str::to_owned)
        .collect();
    (vals, marker.exists())
}

/// The values direnv's own dotenv parser reads from `file`.
fn direnv_dotenv(dir: &Path, file: &str) -> serde_json::Value {
    require("direnv", "direnv");
    let out = Command::new("direnv")
        .args(["dotenv", "json", file])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .output()
        .expect("direnv");
    assert!(out.status.success(), "direnv: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("direnv json")
}

/// Values with everything a shell or direnv could act on.
const TRICKY: &[(&str, &str)] = &[
    ("BACKTICK", "a `touch pwned` b"),
    ("SUBST", "$(touch pwned) and ${HOME}"),
    ("VAR", "$HOME/x $1 $$"),
    ("BACKSLASH", "c:\\new\\table \\n \\"),
    ("SQUOTE", "it's `touch pwned` \"dq\" ü ✓"),
    ("DQUOTE", "say \"hi\" # not a comment"),
    ("UNICODE", "пароль ✓ 🔑 \t tab"),
    ("SPACES", "  lead and trail  "),
    ("EMPTY", ""),
];

#[test]
fn set_writes_values_sh_bash_dash_and_direnv_read_back_and_none_runs() {
    let (env, _g, key) = gpg_env();
    encrypt(&env, &key, "# mine\nFIRST=1\n");
    for (k, v) in TRICKY {
        let out = env.run(&["secrets", "gpg", "set", k, v]);
        assert!(out.status.success(), "{k}: {}", stderr(&out));
    }
    env.ok(&["secrets", "gpg", "decrypt", "-o", "plain.env"]);
    let keys: Vec<&str> = TRICKY.iter().map(|(k, _)| *k).collect();
    let want: Vec<String> = TRICKY.iter().map(|(_, v)| (*v).to_owned()).collect();
    for shell in ["sh", "bash", "dash"] {
        let (got, ran) = sourced(shell, env.root(), "plain.env", &keys);
        assert!(!ran, "{shell} ran a command from the file");
        assert_eq!(got, want, "{shell}");
    }
    let json = direnv_dotenv(env.root(), "plain.env");
    for (k, v) in TRICKY {
        assert_eq!(json[*k].as_str(), Some(*v), "direnv {k}: {json}");
    }
    // ov reads them back the same, and `env` is safe for eval in each shell.
    fs::write(
        env.root().join("exports.sh"),
        env.ok(&["secrets", "gpg", "env"]),
    )
    .expect("write");
    for shell in ["sh", "bash", "dash"] {
        let (got, ran) = sourced(shell, env.root(), "exports.sh", &keys);
        assert!(!ran, "{shell} ran a command from `env`");
        assert_eq!(got, want, "{shell} eval of env");
    }
}

#[test]
fn set_and_unset_change_one_entry_and_keep_comments_order_and_exports() {
    let (env, _g, key) = gpg_env();
    let original = "# API keys for the staging box\n\nexport A=1\n# b is rotated monthly\nexport B=\"old b\"  # note\nPEM=\"-----BEGIN\nxyz\n-----END\"\n\nZ='last'\n";
    encrypt(&env, &key, original);
    env.ok(&["secrets", "gpg", "set", "B", "new b"]);
    env.ok(&["secrets", "gpg", "set", "NEW", "n"]);
    env.ok(&["secrets", "gpg", "unset", "Z"]);
    assert_eq!(
        env.ok(&["secrets", "gpg", "show"]),
        "# API keys for the staging box\n\nexport A=1\n# b is rotated monthly\nexport B='new b'  # note\nPEM=\"-----BEGIN\nxyz\n-----END\"\n\nNEW='n'\n"
    );
}

#[test]
fn set_refuses_a_value_no_quoting_reads_back_and_changes_nothing() {
    let (env, _g, key) = gpg_env();
    encrypt(&env, &key, "A=1\n");
    let before = fs::read(secrets(&env)).expect("read");
    for (value, why) in [
        ("line one\nline two", "line break"),
        ("it's $HOME", "single quote"),
        ("it's c:\\dir", "single quote"),
    ] {
        let out = env.run(&["secrets", "gpg", "set", "BAD", value]);
        assert_eq!(out.status.code(), Some(1), "{value:?}");
        let err = stderr(&out);
        assert!(err.starts_with("ov: error: "), "{err}");
        assert!(err.contains(why), "{err}");
        assert!(err.contains("\nhint: "), "{err}");
        assert!(!err.contains(value), "the value leaked: {err}");
        assert_eq!(fs::read(secrets(&env)).expect("read"), before);
    }
}

/// Ask the real `pinentry-gnome3` for the passphrase of `grip` as gpg-agent
/// does (Assuan on stdin/stdout), on the test's bus, with no display and no
/// terminal: what it answers is what it found in the Secret Service.
fn pinentry_getpin(ss: &SecretService, grip: &str) -> String {
    require("pinentry-gnome3", "pinentry-gnome3");
    require("setsid", "util-linux");
    let out = ss.run_shell(
        "unset DISPLAY WAYLAND_DISPLAY; exec setsid -w pinentry-gnome3 2>/dev/null",
        format!("OPTION allow-external-password-cache\nSETKEYINFO n/{grip}\nGETPIN\nBYE\n")
            .as_bytes(),
    );
    stdout(&out)
}

#[test]
fn the_real_pinentry_gnome3_finds_the_passphrase_setup_and_export_key_store() {
    let mut env = TestEnv::new();
    let ss = SecretService::start(&mut env);
    let g = Gnupg::new(&mut env);
    let exported = g.gen_key("Erin <erin@example.com>");
    let set_up = g.gen_key("Frank <frank@example.com>");
    env.write(&env.root().join("pass"), &format!("{PASS}\n"), 0o600);
    let out = no_tty(
        &env,
        &[
            "secrets",
            "gpg",
            "export-key",
            "--to-keystore",
            "--key-id",
            &exported.fpr,
            "--passphrase-file",
            "pass",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = no_tty(
        &env,
        &[
            "secrets",
            "gpg",
            "setup",
            "--key-id",
            &set_up.fpr,
            "--passphrase-file",
            "pass",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for grip in exported.grips.iter().chain(&set_up.grips) {
        let answer = pinentry_getpin(&ss, grip);
        assert!(
            answer.lines().any(|l| l == format!("D {PASS}")),
            "pinentry-gnome3 did not find the passphrase of {grip}:\n{answer}"
        );
        // Newer pinentry looks up `key-grip` instead: found as well.
        let found = ss.lookup(&[
            "xdg:schema",
            "org.gnupg.Passphrase",
            "key-grip",
            &format!("n/{grip}"),
        ]);
        assert_eq!(found.as_deref(), Some(PASS.as_bytes()), "grip {grip}");
    }
    // A grip nothing was stored for: pinentry finds nothing (the test
    // really asks the Secret Service).
    let none = pinentry_getpin(&ss, &"0".repeat(40));
    assert!(!none.lines().any(|l| l.starts_with("D ")), "{none}");
}

#[test]
fn doctor_flags_a_passphrase_stored_where_debian_pinentry_does_not_look_and_setup_fixes_it() {
    let mut env = TestEnv::new();
    let ss = SecretService::start(&mut env);
    let g = Gnupg::new(&mut env);
    let key = g.gen_key("Gina <gina@example.com>");
    // What ov stored before: key-grip=n/<GRIP> and keygrip=<GRIP> (bare).
    for grip in &key.grips {
        ss.store(
            &[
                "xdg:schema",
                "org.gnupg.Passphrase",
                "key-grip",
                &format!("n/{grip}"),
                "keygrip",
                grip,
            ],
            PASS.as_bytes(),
        );
    }
    assert!(!pinentry_getpin(&ss, &key.enc_grip).contains(&format!("D {PASS}")));
    let stored_line = |report: &str| {
        report
            .lines()
            .find(|l| l.contains("gpg.keys.stored"))
            .unwrap_or("")
            .to_owned()
    };
    let report = stdout(&no_tty(&env, &["secrets", "gpg", "doctor"]));
    let line = stored_line(&report);
    assert!(!line.is_empty() && !line.starts_with('✓'), "{report}");
    assert!(
        report.contains("keygrip and key-grip n/<KEYGRIP>"),
        "{report}"
    );

    env.write(&env.root().join("pass"), &format!("{PASS}\n"), 0o600);
    let out = no_tty(
        &env,
        &["secrets", "gpg", "setup", "--passphrase-file", "pass"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&no_tty(&env, &["secrets", "gpg", "doctor"]));
    assert!(stored_line(&report).starts_with('✓'), "{report}");
    assert!(pinentry_getpin(&ss, &key.enc_grip).contains(&format!("D {PASS}")));
    // The old items were rewritten in place, not duplicated.
    let out = ss.secret_tool(
        &["search", "--all", "xdg:schema", "org.gnupg.Passphrase"],
        b"",
    );
    let items = stdout(&out).lines().filter(|l| l.starts_with('[')).count();
    assert_eq!(items, key.grips.len(), "{}", stdout(&out));
}

#[test]
fn without_a_terminal_a_restarted_agent_decrypts_with_the_stored_passphrase() {
    let mut env = TestEnv::new();
    let ss = SecretService::start(&mut env);
    let g = Gnupg::new(&mut env);
    let key = g.gen_key("Hank <hank@example.com>");
    encrypt(&env, &key, "TOKEN='t0k3n'\n");
    let restart = || {
        let out = g.cmd("gpgconf", &["--kill", "gpg-agent"], "");
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!g.cached(&key.enc_grip));
    };

    // Nothing stored: fails fast, as before, with the fix.
    restart();
    let start = Instant::now();
    let out = no_tty(&env, &["secrets", "gpg", "env"]);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("hint: ov secrets gpg setup"),
        "{}",
        stderr(&out)
    );

    // Stored (by setup), agent restarted so nothing is cached: works.
    env.write(&env.root().join("pass"), &format!("{PASS}\n"), 0o600);
    let out = no_tty(
        &env,
        &["secrets", "gpg", "setup", "--passphrase-file", "pass"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for args in [&["secrets", "gpg", "env"][..], &["secrets", "gpg", "show"]] {
        restart();
        let out = no_tty(&env, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).contains("t0k3n"), "{}", stdout(&out));
        assert!(!stderr(&out).contains(PASS));
    }
    // The doctor agrees: not cached, but stored, so it decrypts.
    restart();
    let report = stdout(&no_tty(&env, &["secrets", "gpg", "doctor"]));
    assert!(
        report
            .lines()
            .any(|l| l.starts_with('✓') && l.contains("gpg.file.decrypt")),
        "{report}"
    );

    // A wrong stored passphrase: a clear error, never the passphrase.
    for grip in &key.grips {
        ss.store(
            &[
                "xdg:schema",
                "org.gnupg.Passphrase",
                "key-grip",
                &format!("n/{grip}"),
                "keygrip",
                &format!("n/{grip}"),
                "stored-by",
                "ov",
            ],
            b"wrong passphrase",
        );
    }
    restart();
    let out = no_tty(&env, &["secrets", "gpg", "env"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("Secret Service"), "{err}");
    assert!(err.contains("hint: ov secrets gpg setup"), "{err}");
    assert!(!err.contains("wrong passphrase"), "{err}");
    assert_eq!(stdout(&out), "");
}

#[test]
fn the_unwritable_value_error_reads_as_reviewed() {
    let (env, _g, key) = gpg_env();
    encrypt(&env, &key, "A=1\n");
    let out = env.run(&["secrets", "gpg", "set", "PEM", "line one\nline two"]);
    crate::snap!("gpg_set_unwritable_line_break", env.transcript(&out));
    let out = env.run(&["secrets", "gpg", "set", "PW", "it's $5"]);
    crate::snap!("gpg_set_unwritable_quote_and_dollar", env.transcript(&out));
}

#[test]
fn a_value_given_to_gpg_set_is_hidden_from_ps_while_ov_runs() {
    let (env, _g, key) = gpg_env();
    encrypt(&env, &key, "A=1\n");
    let value = "gpg-inline-value-ps-must-not-show";
    let shown = common::cmdline_while_blocked(&env, &["secrets", "gpg", "set", "B", value]);
    assert!(!shown.contains(value), "{shown}");
    assert!(shown.contains(&"x".repeat(value.len())), "{shown}");
}

/// One check of `ov doctor gpg --json`.
#[derive(Debug)]
struct Check {
    status: String,
    finding: String,
    fix: Option<String>,
}

/// `ov doctor gpg --json`: each check, by id.
fn gpg_checks(env: &TestEnv) -> std::collections::BTreeMap<String, Check> {
    let out = no_tty(env, &["doctor", "gpg", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("doctor --json");
    let text = |c: &serde_json::Value, k: &str| c[k].as_str().unwrap_or_default().to_owned();
    v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            let check = Check {
                status: text(c, "status"),
                finding: text(c, "finding"),
                fix: c["fix"].as_str().map(str::to_owned),
            };
            (text(c, "id"), check)
        })
        .collect()
}

#[test]
fn with_no_session_bus_the_secret_service_checks_are_skipped_not_warned() {
    let (env, _g, _key) = gpg_env();
    let checks = gpg_checks(&env);
    for id in ["gpg.keys.stored", "gpg.keys.backup"] {
        let Check {
            status, finding, ..
        } = &checks[id];
        assert_eq!(status, "skip", "{id}: {finding}");
        assert!(
            finding.contains("no Secret Service here"),
            "{id}: {finding}"
        );
    }
}

#[test]
fn a_key_without_a_passphrase_and_an_agent_not_yet_started_are_not_warnings() {
    let mut env = TestEnv::new();
    let g = Gnupg::new(&mut env);
    let out = g.gpg(
        &[
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Nopass <nopass@example.com>",
            "future-default",
            "default",
            "never",
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let checks = gpg_checks(&env);
    let Check {
        status, finding, ..
    } = &checks["gpg.keys.cached"];
    assert_eq!(status, "ok", "{finding}");
    let Check {
        status, finding, ..
    } = &checks["gpg.agent.running"];
    assert_eq!(status, "ok", "{finding}");
    // Stopped: gpg starts it again when it needs it. The doctor's other
    // gpg checks run beside this one and may start it first, so the
    // finding is either the version or the on-demand note; never a warning.
    g.cmd("gpgconf", &["--kill", "gpg-agent"], "");
    let checks = gpg_checks(&env);
    let Check {
        status, finding, ..
    } = &checks["gpg.agent.running"];
    assert_eq!(status, "ok", "{finding}");
    assert!(
        finding.contains("gpg starts it on demand") || finding.starts_with("gpg-agent "),
        "{finding}"
    );
}

#[test]
fn encrypting_a_plaintext_file_that_does_not_parse_hints_at_editing_that_file() {
    let (env, _g, key) = gpg_env();
    env.write(
        &env.root().join("bad.env"),
        "A=1\nthis is not an entry\n",
        0o600,
    );
    let out = env.run(&[
        "secrets", "gpg", "encrypt", "-r", &key.keyid, "-i", "bad.env",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = env.normalize(&stderr(&out));
    assert!(
        err.contains("bad.env is not a valid env file: line 2"),
        "{err}"
    );
    assert!(err.contains("hint: ${EDITOR:-vi} bad.env"), "{err}");
    assert!(!err.contains("gpg edit"), "{err}");
    assert!(!secrets(&env).exists());
}

#[test]
fn setup_with_no_session_bus_succeeds_and_says_the_secret_service_step_was_skipped() {
    let mut env = TestEnv::new();
    let _g = Gnupg::new(&mut env);
    let pass = env.root().join("pass.txt");
    env.write(&pass, &format!("{PASS}\n"), 0o600);
    let out = no_tty(
        &env,
        &[
            "secrets",
            "gpg",
            "setup",
            "--passphrase-file",
            &pass.display().to_string(),
            "--uid",
            "Headless <headless@example.com>",
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("cached in gpg-agent"), "{err}");
    assert!(err.contains("the Secret Service step was skipped"), "{err}");
    assert!(err.contains("--skip-secret-service"), "{err}");
}

#[test]
fn issue15_recipients_names_the_primary_key_and_the_subkey() {
    let (env, g, alice) = gpg_env();
    encrypt(&env, &alice, "A=1\n");
    let list = stdout(&g.gpg(&["--with-colons", "--list-keys", &alice.fpr], ""));
    let sub = list
        .lines()
        .find(|l| l.starts_with("sub:"))
        .and_then(|l| l.split(':').nth(4))
        .expect("an encryption subkey")
        .to_owned();
    assert_ne!(sub, alice.keyid);
    let out = env.ok(&["secrets", "gpg", "recipients"]);
    assert_eq!(
        out,
        format!(
            "{}  Alice <alice@example.com>  (encryption subkey {sub})\n",
            alice.keyid
        )
    );
    // The first field is what -r takes.
    let first = out.split_whitespace().next().unwrap();
    env.ok(&[
        "secrets", "gpg", "set", "B", "2", "-f", "other", "-r", first,
    ]);
}

/// Issue 15: every gpg fix, pasted where a user would paste it (a terminal
/// for `setup`, which asks for the passphrase), makes its check pass.
#[test]
fn the_agent_cache_and_keystore_fixes_pasted_make_their_checks_pass() {
    require("expect", "expect");
    let mut env = TestEnv::new();
    let ss = SecretService::start(&mut env);
    let g = Gnupg::new(&mut env);
    let key = g.gen_key("Pat <pat@example.com>");
    fs::remove_file(g.home().join("gpg-agent.conf")).expect("rm conf");
    g.cmd("gpgconf", &["--reload", "gpg-agent"], "");
    for grip in &key.grips {
        g.clear(grip);
    }
    let checks = gpg_checks(&env);
    let mut fixes = Vec::new();
    for id in ["gpg.agent.conf", "gpg.keys.cached", "gpg.keys.stored"] {
        let Check {
            status,
            finding,
            fix,
        } = &checks[id];
        assert_eq!(status, "warn", "{id}: {finding}");
        fixes.push(fix.clone().expect("a fix"));
    }
    fixes.dedup();
    assert_eq!(fixes, ["ov secrets gpg setup"], "one fix for the three");
    let shown = common::paste_on_tty(
        &env,
        &fixes[0],
        &format!(
            "expect \"Passphrase of {}\"\nexpect \": \"\nsend \"{PASS}\\r\"",
            key.keyid
        ),
    );
    assert!(shown.status.success(), "{}", stdout(&shown));
    let checks = gpg_checks(&env);
    for id in ["gpg.agent.conf", "gpg.keys.cached", "gpg.keys.stored"] {
        let Check {
            status, finding, ..
        } = &checks[id];
        assert_eq!(status, "ok", "{id}: {finding}");
    }
    assert!(g.cached(&key.enc_grip));
    assert!(
        ss.lookup(&[
            "xdg:schema",
            "org.gnupg.Passphrase",
            "key-grip",
            &format!("n/{}", key.enc_grip),
        ])
        .is_some()
    );

    let backup = &checks["gpg.keys.backup"];
    assert_eq!(backup.status, "warn");
    let fix = backup.fix.clone().expect("a fix");
    let pasted = env.paste(&fix);
    assert!(pasted.status.success(), "{fix}: {}", stderr(&pasted));
    let Check {
        status, finding, ..
    } = &gpg_checks(&env)["gpg.keys.backup"];
    assert_eq!(status, "ok", "{finding}");
}

/// Issue 15: a file encrypted to a key this keyring lacks names that key
/// in its fix (no `<path>`), and the fix pasted after the export it
/// describes makes the recipients check pass.
#[test]
fn the_missing_key_fix_names_the_key_and_pasted_makes_recipients_pass() {
    let (env, _g, _key) = gpg_env();
    let other = encrypted_to_a_stranger(&env);
    let Check {
        status,
        finding,
        fix,
    } = &gpg_checks(&env)["gpg.file.recipients"];
    assert_eq!(status, "fail", "{finding}");
    let fix = fix.clone().expect("a fix");
    assert!(!fix.contains('<'), "a placeholder in {fix}");
    // The export the fix's comment names, run on "the machine that has the
    // key": the stranger's GnuPG home.
    let (_, comment) = fix.split_once("   # ").expect("a comment");
    let export = comment
        .split('`')
        .nth(1)
        .expect("the export command in backticks");
    assert!(export.contains("--key-id "), "{export}");
    env.write(&env.root().join("pass"), &format!("{PASS}\n"), 0o600);
    let exported = env
        .command(&[])
        .env("GNUPGHOME", other.home())
        .args(export.split_whitespace().skip(1))
        .args(["--passphrase-file", "pass"])
        .output()
        .expect("export");
    assert!(exported.status.success(), "{export}: {}", stderr(&exported));
    let pasted = env.paste(&fix);
    assert!(pasted.status.success(), "{fix}: {}", stderr(&pasted));
    let Check {
        status, finding, ..
    } = &gpg_checks(&env)["gpg.file.recipients"];
    assert_eq!(status, "ok", "{finding}");
}

/// Issue 15: with a session bus but no Secret Service on it, the doctor's
/// fix starts one, and pasted, the keystore checks reach it.
#[test]
fn the_start_a_secret_service_fix_pasted_makes_it_reachable() {
    let (mut env, _g, _key) = gpg_env();
    let _bus = SecretService::bus_only(&mut env);
    let checks = gpg_checks(&env);
    for id in ["gpg.keys.stored", "gpg.keys.backup"] {
        let Check {
            status, finding, ..
        } = &checks[id];
        assert_eq!(status, "warn", "{id}: {finding}");
        assert!(
            finding.contains("Secret Service not available"),
            "{finding}"
        );
    }
    let fix = checks["gpg.keys.backup"].fix.clone().expect("a fix");
    let pasted = env.paste(&fix);
    assert!(pasted.status.success(), "{fix}: {}", stderr(&pasted));
    let checks = gpg_checks(&env);
    for id in ["gpg.keys.stored", "gpg.keys.backup"] {
        let Check { finding, .. } = &checks[id];
        assert!(!finding.contains("not available"), "{id}: {finding}");
    }
}
