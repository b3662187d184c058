//! Help text, usage errors and exit codes.

mod common;

use common::{TestEnv, stderr, stdout};

#[test]
fn help_text() {
    let env = TestEnv::new();
    crate::snap!("help_ov", env.ok(&["--help"]));
    crate::snap!("help_secrets", env.ok(&["secrets", "--help"]));
    crate::snap!("help_doctor", env.ok(&["doctor", "--help"]));
    crate::snap!("help_settings", env.ok(&["settings", "--help"]));
}

#[test]
fn version_prints_and_exits_zero() {
    let env = TestEnv::new();
    assert_eq!(
        env.ok(&["--version"]),
        format!("ov {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn no_arguments_shows_help_and_exits_2() {
    let env = TestEnv::new();
    let out = env.run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Usage: ov"));
}

#[test]
fn usage_errors_exit_2_in_ov_style() {
    let env = TestEnv::new();
    let out = env.run(&["secrets", "frobnicate"]);
    crate::snap!("usage_unknown_subcommand", env.transcript(&out));
    let out = env.run(&["doctor", "--timeout", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = env.run(&["secrets", "set", "s", "k", "v", "--generate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn secret_is_an_alias_of_secrets() {
    let env = TestEnv::new();
    env.run_stdin(&["secret", "set", "s", "k"], "v\n");
    assert_eq!(env.ok(&["secret", "get", "s", "k"]), "v\n");
}

/// Every command's `--help`, in one snapshot: an interface change shows up
/// in review as a diff of what users read.
#[test]
fn cli_reference() {
    fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(path.clone());
        for sub in cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            let mut p = path.clone();
            p.push(sub.get_name().to_owned());
            walk(sub, p, out);
        }
    }
    let mut root = <ov::cli::Cli as clap::CommandFactory>::command();
    root.build();
    let mut paths = Vec::new();
    walk(&root, Vec::new(), &mut paths);
    let env = TestEnv::new();
    let mut reference = String::new();
    for p in &paths {
        let mut args: Vec<&str> = p.iter().map(String::as_str).collect();
        args.push("--help");
        reference.push_str(&format!("===== ov {}\n", p.join(" ")));
        reference.push_str(&env.ok(&args));
        reference.push('\n');
    }
    crate::snap!("cli_reference", reference);
}

#[test]
fn completions_and_man_pages_come_from_the_cli_definition() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish"] {
        // The script asks ov itself at each TAB (tests/completions.rs
        // drives it through the real shells).
        let script = env.ok(&["completions", shell]);
        assert!(script.contains("COMPLETE"), "{shell}: {script}");
    }
    let dir = env.root().join("man");
    env.ok(&["generate-man", &dir.display().to_string()]);
    let page = std::fs::read_to_string(dir.join("ov-secrets-get.1")).unwrap();
    assert!(page.contains(".TH ov-secrets-get 1"), "{page}");
    assert!(dir.join("ov.1").exists() && dir.join("ov-doctor.1").exists());
}

/// A full disk under stdout is an error with the reason, never a panic,
/// for every command that prints.
#[test]
fn a_full_stdout_is_an_error_not_a_panic() {
    let env = TestEnv::new();
    env.run_stdin(&["secrets", "set", "ov/vnc", "password"], "pw\n");
    for args in [
        &["secrets", "export"][..],
        &["secrets", "export", "--format", "json"],
        &["secrets", "list"],
        &["secrets", "list", "--json"],
        &["secrets", "get", "ov/vnc", "password"],
        &["secrets", "get", "ov/vnc", "password", "--raw"],
        &["secrets", "which", "ov/vnc", "password"],
        &["secrets", "path"],
        &["secrets", "path", "--all"],
        &["doctor"],
        &["doctor", "--json"],
        &["doctor", "--list"],
        &["settings", "list"],
        &["settings", "get", "secret_backend"],
        &["plugins", "list"],
        &["completions", "bash"],
        &["--version"],
        &["init"],
        &["secrets", "gpg", "doctor", "--json"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let out = env.command(args).stdout(full).output().expect("run ov");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("ov: error: writing output: No space left on device")
                || err.contains("cannot write the value to standard output"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// The pages a packager ships: man and lexgrog read each without a word
/// of complaint, ov(1) has the sections a reader looks for, and every
/// page named anywhere exists.
#[test]
fn man_pages_are_clean_complete_and_name_only_pages_that_exist() {
    let env = TestEnv::new();
    let dir = env.root().join("man");
    env.ok(&["generate-man", &dir.display().to_string()]);
    let pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(pages.len() > 40, "{pages:?}");
    let named = |text: &str| -> Vec<String> {
        // roff writes a page reference as \fBov-x\fR(1)
        let plain = text
            .replace("\\fB", "")
            .replace("\\fR", "")
            .replace("\\-", "-");
        plain
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '(' || c == ')'))
            .filter_map(|w| w.strip_suffix("(1)"))
            .filter(|w| w.starts_with("ov"))
            .map(|w| format!("{w}.1"))
            .collect()
    };
    for page in &pages {
        let path = dir.join(page);
        let out = std::process::Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0")
            .output()
            .expect("man (man-db)");
        assert!(out.status.success(), "{page}");
        assert_eq!(stderr(&out), "", "{page}: man --warnings");
        let lex = std::process::Command::new("lexgrog")
            .arg(&path)
            .output()
            .expect("lexgrog (man-db)");
        assert!(
            lex.status.success(),
            "{page}: lexgrog finds no NAME: {}",
            stdout(&lex)
        );
        let text = std::fs::read_to_string(&path).unwrap();
        for other in named(&text) {
            assert!(
                pages.contains(&other),
                "{page} names {other}, which does not exist"
            );
        }
    }
    let ov = std::fs::read_to_string(dir.join("ov.1")).unwrap();
    for section in [
        "DESCRIPTION",
        "RESOLUTION ORDER",
        "ENVIRONMENT",
        "FILES",
        "EXIT STATUS",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(
            ov.contains(&format!(".SH \"{section}\"")) || ov.contains(&format!(".SH {section}")),
            "ov.1 has no {section}"
        );
    }
    for var in ["OV_KDBX_PASSWORD", "XDG_CONFIG_HOME", "NO_COLOR"] {
        assert!(ov.contains(var), "ov.1 does not explain {var}");
    }
    assert!(!pages.contains(&"ov-help.1".to_owned()));
    let run = std::fs::read_to_string(dir.join("ov-run.1")).unwrap();
    assert!(
        run.contains(".SH EXAMPLES") && run.contains("\\fBov\\fR(1)"),
        "{run}"
    );
}

/// `--quiet` (or OV_QUIET=1) leaves out notes, progress lines and the
/// warning for a value on the command line; a warning about where the
/// value went stays.
#[test]
fn quiet_leaves_out_notes_progress_and_the_argv_warning() {
    let mut env = TestEnv::new();
    let loud = env.run(&["secrets", "set", "svc", "k", "v1"]);
    let err = stderr(&loud);
    assert!(
        err.contains("visible in ps") && err.contains("stored svc k in config"),
        "{err}"
    );
    for args in [
        &["--quiet", "secrets", "set", "svc", "k", "v2"][..],
        &["secrets", "set", "-q", "svc", "k", "v3"],
    ] {
        let out = env.run(args);
        assert!(out.status.success());
        let err = stderr(&out);
        assert!(
            !err.contains("visible in ps") && !err.contains("stored svc k"),
            "{args:?}: {err}"
        );
        assert!(err.contains("is stored in plaintext"), "{err}");
    }
    // Deleting and changing settings: their progress lines and notes go
    // too; errors stay.
    for args in [
        &["secrets", "delete", "svc", "k"][..],
        &["settings", "set", "secret_backend", "config"],
        &["settings", "unset", "secret_backend"],
    ] {
        let out = env.run(&[&["--quiet"][..], args].concat());
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
    let err = stderr(&env.run(&["secrets", "set", "svc", "k", "v5"]));
    assert!(err.contains("stored svc k"), "{err}");
    let out = env.run(&["secrets", "delete", "svc", "k"]);
    assert!(
        stderr(&out).contains("deleted svc k from config"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["--quiet", "secrets", "delete", "svc", "k"]);
    assert!(!out.status.success());
    assert!(stderr(&out).starts_with("ov: error: "), "{}", stderr(&out));
    env.set_env("OV_QUIET", "1");
    let err = stderr(&env.run(&["secrets", "set", "svc", "k", "v4"]));
    assert!(
        !err.contains("visible in ps") && !err.contains("stored svc k"),
        "{err}"
    );
}
