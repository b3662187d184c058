//! Fixes that install system packages, pasted for real: each test works in
//! a throwaway copy of this machine (an overlay of `/` whose writes land in
//! a temporary directory, entered with `chroot` in a private mount
//! namespace), removes a package there with apt, and runs the doctor's fix
//! as printed. The machine itself, and the tests running beside these,
//! never see the change. Needs root and Debian's package registry, as
//! `./scripts/test` does.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{TestEnv, stderr, stdout, target_dir};

/// Enter the overlay kept in `$1` and run `$2` there with `sh`, in the
/// same directory (chroot(1) itself would start in `/`).
const ENTER: &str = r#"
d=$1
mount -t overlay overlay -o lowerdir=/,upperdir="$d/up",workdir="$d/work" "$d/merged" || exit 97
for m in /proc /sys /dev /run; do mount --rbind "$m" "$d/merged$m" || exit 98; done
cwd=$(pwd)
exec chroot "$d/merged" sh -c 'cd "$1" || exit 96; eval "$2"' sh "$cwd" "$2"
"#;

struct Overlay {
    dir: tempfile::TempDir,
}

impl Overlay {
    fn new() -> Overlay {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "tests/packages.rs changes packages in a copy of the machine and needs root \
             (./scripts/test runs as root, as CI does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("ov-overlay.")
            .tempdir()
            .expect("tempdir");
        for sub in ["up", "work", "merged"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        Overlay { dir }
    }

    /// `line` through `sh -c` in the copy, with `env`'s environment and
    /// this build's `ov` first on PATH, as a user would paste it.
    fn paste(&self, env: &TestEnv, line: &str) -> Output {
        let path = format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            target_dir().display()
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "sh", "-c", ENTER, "sh"])
            .arg(self.dir.path())
            .arg(line)
            .env_clear();
        for (k, v) in env.command(&[]).get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        let out = cmd
            .env("PATH", path)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .current_dir(env.root())
            .output()
            .expect("unshare (util-linux)");
        assert!(
            !matches!(out.status.code(), Some(96..=98)),
            "cannot enter the overlay: {}",
            stderr(&out)
        );
        out
    }

    fn has(&self, file: &str) -> bool {
        // The copy's own view: a file removed there is a whiteout in `up`.
        let env = TestEnv::new();
        self.paste(&env, &format!("test -e {file}"))
            .status
            .success()
    }
}

fn check(report: &Output, id: &str) -> serde_json::Value {
    assert!(
        stdout(report).starts_with('{'),
        "not a doctor report: {}\n{}",
        stdout(report),
        stderr(report)
    );
    TestEnv::check_in(&stdout(report), id)
}

#[test]
fn without_gnupg_the_doctors_fix_installs_it_and_gpg_binary_passes() {
    let overlay = Overlay::new();
    let env = TestEnv::new();
    // GnuPG is in use here: a .secrets file in the project.
    env.write(&env.root().join(".secrets"), "not yet encrypted\n", 0o600);
    let removed = overlay.paste(&env, "apt-get remove -y -q gpg");
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert!(!overlay.has("/usr/bin/gpg"));
    assert!(
        Path::new("/usr/bin/gpg").exists(),
        "the machine itself keeps gpg"
    );

    let report = overlay.paste(&env, "ov doctor gpg.binary --json");
    let binary = check(&report, "gpg.binary");
    assert_eq!(binary["status"], "fail", "{binary}");
    let fix = binary["fix"].as_str().expect("a fix").to_owned();
    assert_eq!(
        fix,
        common::as_root("apt-get install -y gnupg   # or your distribution's GnuPG package")
    );

    let fixed = overlay.paste(&env, &fix);
    assert!(
        fixed.status.success(),
        "{}\n{}",
        stdout(&fixed),
        stderr(&fixed)
    );
    let report = overlay.paste(&env, "ov doctor gpg.binary --json");
    assert_eq!(
        check(&report, "gpg.binary")["status"],
        "ok",
        "{}",
        stdout(&report)
    );
}
