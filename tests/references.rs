//! References (`ov://SERVICE/KEY`) in env files for `ov run`, templates
//! for `ov inject`, and `ov run --mask`, driven through the real binary
//! with real programs as the consumers.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use common::{TestEnv, stderr, stdout};

/// Values a shell or a parser could get wrong.
const AWKWARD: [(&str, &str, &str); 5] = [
    ("app/prod", "QUOTES", "it's \"quoted\""),
    ("app/prod", "DOLLAR", "$(touch pwned) $HOME `id`"),
    ("app/prod", "LINES", "line one\nline two\n"),
    ("ov/api-key", "openrouter", "sk-or-ünïcödé-✓"),
    ("svc", "a/b", "slash in the key"),
];

fn store_awkward(env: &TestEnv) {
    for (service, key, value) in AWKWARD {
        // `set` keeps all of stdin less one final newline.
        let out = env.run_stdin(&["secrets", "set", service, key], &format!("{value}\n"));
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

fn env_file(env: &TestEnv, name: &str, text: &str) -> String {
    let path = env.root().join(name);
    env.write(&path, text, 0o644);
    path.display().to_string()
}

#[test]
fn a_command_sees_exactly_the_referenced_values() {
    let env = TestEnv::new();
    store_awkward(&env);
    let file = env_file(
        &env,
        "app.env",
        "QUOTES=ov://app/prod/QUOTES\n\
         DOLLAR=ov://app/prod/DOLLAR\n\
         LINES=ov://app/prod/LINES\n\
         KEY=ov://ov/api-key/openrouter\n\
         SLASH=ov://svc/a%2Fb\n\
         PLAIN=\"literal\\twith tab\"\n",
    );
    for (var, expected) in [
        ("QUOTES", AWKWARD[0].2),
        ("DOLLAR", AWKWARD[1].2),
        ("LINES", AWKWARD[2].2),
        ("KEY", AWKWARD[3].2),
        ("SLASH", AWKWARD[4].2),
        ("PLAIN", "literal\twith tab"),
    ] {
        let out = env.run(&[
            "run",
            "--env-file",
            &file,
            "--",
            "sh",
            "-c",
            &format!("printf '%s' \"${var}\""),
        ]);
        assert!(out.status.success(), "{var}: {}", stderr(&out));
        assert_eq!(stdout(&out), expected, "{var}");
    }
    assert!(!env.root().join("pwned").exists(), "a value was run");
}

#[test]
fn one_missing_reference_names_every_miss_and_starts_nothing() {
    let env = TestEnv::new();
    store_awkward(&env);
    let file = env_file(
        &env,
        "app.env",
        "# a comment\nKEY=ov://ov/api-key/openrouter\nGONE=ov://app/prod/GONE\nALSO=ov://nobody/here\n",
    );
    let marker = env.root().join("started");
    let out = env.run(&[
        "run",
        "--env-file",
        &file,
        "--",
        "touch",
        marker.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!marker.exists(), "the command ran");
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "ov: error: 2 references did not resolve, so the command was not started:\n"
        ),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:3 GONE: ov://app/prod/GONE: no such secret in the store"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:4 ALSO: ov://nobody/here")),
        "{err}"
    );
    assert!(
        err.contains("hint: ov secrets set app/prod GONE\n"),
        "{err}"
    );
    // The printed fix works: with both set, the command starts.
    env.run_stdin(&["secrets", "set", "app/prod", "GONE"], "g\n");
    env.run_stdin(&["secrets", "set", "nobody", "here"], "h\n");
    let out = env.run(&[
        "run",
        "--env-file",
        &file,
        "--",
        "touch",
        marker.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(marker.exists());
}

#[test]
fn malformed_references_and_names_are_errors_with_their_line() {
    let env = TestEnv::new();
    for (text, line, why) in [
        ("A=ov:/x\n", 1, "it must start with ov://"),
        ("A=x\nB=ov://\n", 2, "nothing follows ov://"),
        ("A=ov://svc\n", 1, "names a service but no key"),
        ("A=ov://a/../k\n", 1, "'..' segment"),
    ] {
        let file = env_file(&env, "bad.env", text);
        let out = env.run(&["run", "--env-file", &file, "--", "true"]);
        assert_eq!(out.status.code(), Some(1), "{text}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("ov: error: {file}:{line} ")) && err.contains(why),
            "{text}: {err}"
        );
    }
    let file = env_file(&env, "names.env", "GOOD=1\n9BAD=2\nalso bad=3\n");
    let out = env.run(&["run", "--env-file", &file, "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("{file}:line 2:")), "{err}");
    assert!(err.contains(&format!("{file}:line 3:")), "{err}");
}

#[test]
fn dry_run_says_where_each_value_comes_from_and_never_the_value() {
    let env = TestEnv::new();
    store_awkward(&env);
    env.run_stdin(&["secrets", "set", "myapp/prod", "DB"], "from-app\n");
    env.run_stdin(&["secrets", "set", "myapp/prod", "KEY"], "overridden\n");
    let first = env_file(
        &env,
        "a.env",
        "KEY=ov://ov/api-key/openrouter\nMODE=first\n",
    );
    let second = env_file(&env, "b.env", "MODE=second\n");
    let out = env.run(&[
        "run",
        "--app",
        "myapp",
        "--env",
        "prod",
        "--all",
        "--env-file",
        &first,
        "--env-file",
        &second,
        "--dry-run",
        "--",
        "false",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text,
        format!(
            "DB\tmyapp/prod in the store\n\
             KEY\tov://ov/api-key/openrouter from config\n\
             MODE\t{second}:1 (literal)\n"
        )
    );
    for (_, _, value) in AWKWARD {
        assert!(!text.contains(value));
    }
    assert!(!text.contains("from-app") && !text.contains("first"));
    // The same files run: the later file and the env file win.
    let out = env.run(&[
        "run",
        "--app",
        "myapp",
        "--env",
        "prod",
        "--all",
        "--env-file",
        &first,
        "--env-file",
        &second,
        "--",
        "sh",
        "-c",
        "printf '%s %s %s' \"$DB\" \"$KEY\" \"$MODE\"",
    ]);
    assert_eq!(stdout(&out), format!("from-app {} second", AWKWARD[3].2));
}

#[test]
fn secrets_and_all_without_an_app_are_usage_errors() {
    let env = TestEnv::new();
    let file = env_file(&env, "a.env", "A=1\n");
    let out = env.run(&["run", "--env-file", &file, "--all", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("give --app too"));
    // No app has a bundle or a key here: the hint can only show the form.
    assert_eq!(
        common::hints(&out),
        ["ov run --app APP --env ENV --all --env-file FILE -- …"]
    );
    let out = env.run(&["run", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn inject_renders_byte_exact_into_a_private_file_it_owns() {
    let env = TestEnv::new();
    store_awkward(&env);
    let template = env.root().join("app.tpl");
    env.write(
        &template,
        "key: {{ ov://ov/api-key/openrouter }}\nlines: {{ov://app/prod/LINES}}|\ngo: {{ .Values.x }}\n",
        0o644,
    );
    let expected = format!(
        "key: {}\nlines: {}|\ngo: {{{{ .Values.x }}}}\n",
        AWKWARD[3].2, AWKWARD[2].2
    );
    let tpl = template.to_str().unwrap();
    let out = env.run(&["inject", "-i", tpl]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, expected.as_bytes());

    let target = env.root().join("out.yml");
    let target_s = target.to_str().unwrap();
    env.ok(&["inject", "-i", tpl, "-o", target_s]);
    assert_eq!(std::fs::read(&target).unwrap(), expected.as_bytes());
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // ov's own file is replaced again; an edited one is not, unless --force.
    env.ok(&["inject", "-i", tpl, "-o", target_s]);
    std::fs::write(&target, "edited by hand\n").unwrap();
    let out = env.run(&["inject", "-i", tpl, "-o", target_s]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("is not a file ov inject wrote"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "edited by hand\n"
    );
    let fix = err
        .lines()
        .find_map(|l| l.strip_prefix("hint: "))
        .expect("a hint")
        .to_owned();
    assert!(env.paste(&fix).status.success(), "{fix}");
    assert_eq!(std::fs::read(&target).unwrap(), expected.as_bytes());
}

#[test]
fn inject_writes_nothing_when_a_reference_is_broken_or_missing() {
    let env = TestEnv::new();
    store_awkward(&env);
    let target = env.root().join("out.conf");
    let target_s = target.to_str().unwrap();
    for (text, says) in [
        (
            "a\nb {{ ov://ov/api-key/openrouter\n",
            "tpl:2: `{{` opens a reference that is not closed",
        ),
        (
            "ok {{ ov://app/prod/QUOTES }}\n{{ ov://app }}\n",
            "tpl:2: bad reference",
        ),
        (
            "{{ ov://app/prod/QUOTES }}\n\n{{ ov://app/prod/MISSING }}\n",
            "tpl:3: ov://app/prod/MISSING: no such secret",
        ),
    ] {
        let tpl = env.root().join("tpl");
        env.write(&tpl, text, 0o644);
        let out = env
            .command(&["inject", "-i", "tpl", "-o", target_s])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(stderr(&out).contains(says), "{text}: {}", stderr(&out));
        assert!(!target.exists(), "{text}: something was written");
    }
}

#[test]
fn inject_refuses_a_directory_or_a_symlink_as_output() {
    let env = TestEnv::new();
    store_awkward(&env);
    let tpl = env.root().join("t");
    env.write(&tpl, "{{ ov://app/prod/QUOTES }}\n", 0o644);
    let victim = env.root().join("victim");
    std::fs::write(&victim, "keep me\n").unwrap();
    let link = env.root().join("link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    for (out, says) in [
        (env.root().to_path_buf(), "is not a regular file"),
        (link.clone(), "is a symlink"),
    ] {
        let o = env.run(&[
            "inject",
            "-i",
            tpl.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--force",
        ]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains(says), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
}

#[test]
fn mask_conceals_values_split_across_writes_on_both_streams() {
    let env = TestEnv::new();
    env.run_stdin(&["secrets", "set", "app/prod", "TOKEN"], "hunter22-token\n");
    env.run_stdin(&["secrets", "set", "app/prod", "PIN"], "123\n");
    let file = env_file(
        &env,
        "a.env",
        "TOKEN=ov://app/prod/TOKEN\nPIN=ov://app/prod/PIN\n",
    );
    // The value leaves the command in two writes with a pause between,
    // so ov reads it in two pieces; stderr gets it whole.
    let script = "printf 'a hunter22'; sleep 0.3; printf -- '-token b\\n'; \
                  printf 'err %s\\n' \"$TOKEN\" >&2; printf 'pin %s\\n' \"$PIN\"; exit 7";
    let out = env.run(&[
        "run",
        "--env-file",
        &file,
        "--mask",
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "a <concealed by ov> b\npin 123\n");
    assert!(
        stderr(&out).contains("err <concealed by ov>\n"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("hunter22"));
    assert!(
        stderr(&out).contains("ov: note: PIN is not masked: its value is under 4 bytes"),
        "{}",
        stderr(&out)
    );
    // Without --mask the command's output is its own.
    let out = env.run(&[
        "run",
        "--env-file",
        &file,
        "--",
        "sh",
        "-c",
        "printf %s \"$TOKEN\"",
    ]);
    assert_eq!(stdout(&out), "hunter22-token");
}

#[test]
fn a_masked_command_killed_by_a_signal_ends_ov_the_same_way() {
    let env = TestEnv::new();
    let file = env_file(&env, "a.env", "A=literal-value\n");
    let out = env.run(&[
        "run",
        "--env-file",
        &file,
        "--mask",
        "--",
        "sh",
        "-c",
        "kill -TERM $$",
    ]);
    assert_eq!(out.status.signal(), Some(15), "{:?}", out.status);
}

#[test]
fn the_documented_envrc_line_stops_direnv_when_decryption_fails() {
    let env = TestEnv::new();
    let dir = env.root().join("project");
    std::fs::create_dir(&dir).unwrap();
    env.write(&dir.join(".secrets"), "not encrypted\n", 0o600);
    let load = |envrc: &str| {
        env.write(&dir.join(".envrc"), envrc, 0o644);
        let path = format!(
            "{}:{}",
            common::target_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let run = |args: &[&str]| {
            Command::new("direnv")
                .args(args)
                .envs(
                    env.command(&[])
                        .get_envs()
                        .filter_map(|(k, v)| Some((k, v?))),
                )
                .env("PATH", &path)
                .current_dir(&dir)
                .output()
                .expect("direnv (./scripts/test installs it)")
        };
        assert!(run(&["allow", "."]).status.success());
        let out = run(&["exec", ".", "sh", "-c", "printf %s \"$LOADED\""]);
        (stdout(&out), stderr(&out))
    };
    // The line docs/run.md gives: a failed decrypt stops the .envrc.
    let (loaded, err) = load(&format!("{}\nexport LOADED=yes\n", ENVRC_LINE));
    assert_eq!(loaded, "", "the .envrc went on after a failed decrypt");
    assert!(
        err.contains("ov: error: decrypting .secrets failed"),
        "{err}"
    );
    // The common form hides the failure: the rest of the .envrc runs.
    let (loaded, _) = load("eval \"$(ov secrets gpg env)\"\nexport LOADED=yes\n");
    assert_eq!(loaded, "yes");
}

/// The `.envrc` line of docs/run.md, checked against the document.
const ENVRC_LINE: &str = "secrets=$(ov secrets gpg env) || return 1; eval \"$secrets\"";

#[test]
fn the_envrc_line_is_the_one_the_docs_give() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/run.md")).unwrap();
    assert!(doc.contains(ENVRC_LINE), "docs/run.md lost the .envrc line");
}

#[test]
fn a_manifest_reference_resolves_through_the_manifest_and_generates_once() {
    let env = TestEnv::new();
    let project = env.root().join("project");
    std::fs::create_dir(&project).unwrap();
    env.write(
        &project.join("ov-secrets.toml"),
        "service = \"proj/secrets\"\n\
         [secrets.DB_PASSWORD]\ntype = \"hex:16\"\nstacks = [\"core\"]\n\
         [secrets.MANUAL]\ntype = \"skip\"\nstacks = [\"core\"]\n",
        0o644,
    );
    env.write(
        &project.join("app.env"),
        "DB=ov://manifest/DB_PASSWORD\n",
        0o644,
    );
    let run = |file: &str| {
        env.command(&[
            "run",
            "--env-file",
            file,
            "--",
            "sh",
            "-c",
            "printf %s \"$DB\"",
        ])
        .current_dir(&project)
        .output()
        .unwrap()
    };
    let first = run("app.env");
    assert!(first.status.success(), "{}", stderr(&first));
    let value = stdout(&first);
    assert_eq!(value.len(), 16, "{value}");
    assert_eq!(stdout(&run("app.env")), value, "generated twice");
    let got = env
        .command(&["manifest", "get", "DB_PASSWORD"])
        .current_dir(&project)
        .output()
        .unwrap();
    assert_eq!(stdout(&got).trim_end(), value);

    // A manual secret without a value, and a name the manifest does not
    // declare, are misses like any other: named, and nothing starts.
    env.write(
        &project.join("bad.env"),
        "A=ov://manifest/MANUAL\nB=ov://manifest/NOT_DECLARED\n",
        0o644,
    );
    let out = run("bad.env");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("2 references did not resolve"), "{err}");
    assert!(
        err.contains("bad.env:1 A: ov://manifest/MANUAL: MANUAL has no value"),
        "{err}"
    );
    assert!(
        err.contains("bad.env:2 B: ov://manifest/NOT_DECLARED:"),
        "{err}"
    );
    assert!(err.contains("hint: ov manifest set MANUAL"), "{err}");

    // No manifest here or above: the miss says so.
    let out = env
        .command(&[
            "run",
            "--env-file",
            project.join("app.env").to_str().unwrap(),
            "--",
            "true",
        ])
        .current_dir(env.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("ov://manifest/DB_PASSWORD:"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_value_that_looks_like_a_reference_is_passed_on_not_followed() {
    let env = TestEnv::new();
    // Two entries whose values name each other: a loop if ov followed them.
    env.run_stdin(&["secrets", "set", "loop", "a"], "ov://loop/b\n");
    env.run_stdin(&["secrets", "set", "loop", "b"], "ov://loop/a\n");
    let file = env_file(&env, "loop.env", "A=ov://loop/a\n");
    let out = env.run(&[
        "run",
        "--env-file",
        &file,
        "--",
        "sh",
        "-c",
        "printf %s \"$A\"",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ov://loop/b");
    let tpl = env.root().join("t");
    env.write(&tpl, "{{ ov://loop/b }}\n", 0o644);
    assert_eq!(
        env.ok(&["inject", "-i", tpl.to_str().unwrap()]),
        "ov://loop/a\n"
    );
}

#[test]
fn env_files_combine_with_a_machine_keys_bundle() {
    let (env, key) = common::with_machine_key("DB=from-bundle\n");
    env.run_stdin(
        &["secrets", "set", "ov/api-key", "openrouter"],
        "from-store\n",
    );
    let file = env_file(
        &env,
        "extra.env",
        "API=ov://ov/api-key/openrouter\nMODE=literal\n",
    );
    let out = env.run(&[
        "run",
        "--machine-key",
        key.to_str().unwrap(),
        "--app",
        "myapp",
        "--env",
        "production",
        "--all",
        "--env-file",
        &file,
        "--",
        "sh",
        "-c",
        "printf '%s %s %s' \"$DB\" \"$API\" \"$MODE\"",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from-bundle from-store literal");
}
