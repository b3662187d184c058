//! A machine with systemd as its init, for tests of units `ov` installs:
//! the real `/lib/systemd/systemd` as PID 1 of its own PID, mount, UTS, IPC
//! and network namespaces (unshare(1)). The host's `/etc` and `/usr` are
//! the lower layers of overlays whose writes land in the test's directory
//! (so a package's files can go where the package puts them), and
//! `/etc/systemd/system` and the unit search path hold only what the test
//! puts there, so no unit of the host (or its tmpfiles, sysctl, sysusers
//! setup) ever runs. `/run` is a fresh tmpfs at every boot, as on a real
//! machine; `/etc`, `/usr`, the enabled units and the directory survive a
//! [`Machine::reboot`]. Needs root, as `./scripts/test` runs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The targets a unit of `ov`'s refers to, empty: the machine boots
/// `multi-user.target` and nothing else.
const TARGETS: [&str; 5] = [
    "multi-user.target",
    "sysinit.target",
    "basic.target",
    "local-fs.target",
    "shutdown.target",
];

/// `$1` is the machine's directory. Runs as PID 1's parent in the new
/// namespaces, then becomes systemd.
const BOOT: &str = r#"
set -e
d=$1
mount --make-rprivate /
mount -t overlay overlay -o lowerdir=/etc,upperdir="$d/etc-up",workdir="$d/etc-work" /etc
mount -t overlay overlay -o lowerdir=/usr,upperdir="$d/usr-up",workdir="$d/usr-work" /usr
mount --bind "$d/units-enabled" /etc/systemd/system
mount --bind "$d/home" /home
mount -t tmpfs -o mode=755 tmpfs /run
mkdir /run/no-generators
export container=ov-test
export SYSTEMD_UNIT_PATH="/etc/systemd/system:$d/units"
export SYSTEMD_GENERATOR_PATH=/run/no-generators
export SYSTEMD_ENVIRONMENT_GENERATOR_PATH=/run/no-generators
exec /lib/systemd/systemd --system --unit=multi-user.target --log-target=console
"#;

pub struct Machine {
    dir: tempfile::TempDir,
    boot: Option<(Child, i32)>,
}

impl Machine {
    /// A machine, booted.
    pub fn boot() -> Machine {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "tests with systemd boot it in namespaces of their own and need root \
             (./scripts/test runs as root, as CI does)"
        );
        assert!(
            Path::new("/lib/systemd/systemd").exists(),
            "no /lib/systemd/systemd: ./scripts/test installs Debian's systemd package"
        );
        let dir = tempfile::Builder::new()
            .prefix("ov-machine.")
            .tempdir()
            .expect("tempdir");
        // Service users reach the program under it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        for sub in [
            "etc-up",
            "etc-work",
            "usr-up",
            "usr-work",
            "units-enabled",
            "units",
            "home",
            "bin",
        ] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        for t in TARGETS {
            std::fs::write(
                dir.path().join("units").join(t),
                format!("[Unit]\nDescription={t} of the test machine\n"),
            )
            .expect("write target");
        }
        let mut m = Machine { dir, boot: None };
        m.power_on();
        m
    }

    /// The machine's directory, on the host.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The home of `user` (`/home/USER` on the machine), seen from the host.
    pub fn home(&self, user: &str) -> PathBuf {
        self.dir().join("home").join(user)
    }

    /// A service account with its home in `/home`.
    pub fn add_user(&self, user: &str) {
        let out = self.root(&format!(
            "useradd --create-home --home-dir /home/{user} --shell /bin/sh {user}"
        ));
        assert!(
            out.status.success(),
            "useradd {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A copy of this build's `ov` that every user of the machine may run
    /// (the build's own may sit under a home only root enters).
    pub fn install_ov(&self) -> PathBuf {
        let dest = self.dir().join("bin/ov");
        std::fs::copy(env!("CARGO_BIN_EXE_ov"), &dest).expect("copy ov");
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        dest
    }

    fn power_on(&mut self) {
        let log = std::fs::File::create(self.dir().join("console.log")).expect("console log");
        let child = Command::new("unshare")
            .args([
                "--pid",
                "--fork",
                "--kill-child",
                "--mount",
                "--mount-proc",
                "--uts",
                "--ipc",
                "--net",
                "sh",
                "-c",
                BOOT,
                "sh",
            ])
            .arg(self.dir())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("unshare (util-linux)");
        let children = format!("/proc/{0}/task/{0}/children", child.id());
        let deadline = Instant::now() + Duration::from_secs(20);
        let init = loop {
            let pid = std::fs::read_to_string(&children)
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok());
            if let Some(pid) = pid {
                break pid;
            }
            assert!(
                Instant::now() < deadline,
                "systemd never started: {}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        self.boot = Some((child, init));
        self.wait_for("systemd to finish booting", || {
            assert!(
                Path::new(&format!("/proc/{init}")).exists(),
                "the boot failed: {}",
                self.console()
            );
            let out = self.root("systemctl is-system-running");
            matches!(
                String::from_utf8_lossy(&out.stdout).trim(),
                "running" | "degraded"
            )
        });
    }

    /// Pull the plug: SIGKILL to PID 1 ends every process of the machine.
    pub fn power_off(&mut self) {
        if let Some((mut child, init)) = self.boot.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(init),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.wait();
        }
    }

    pub fn reboot(&mut self) {
        self.power_off();
        self.power_on();
    }

    /// What systemd printed, for failure messages.
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir().join("console.log")).unwrap_or_default()
    }

    fn init(&self) -> i32 {
        self.boot.as_ref().expect("the machine is running").1
    }

    /// `line` through `sh -c` on the machine, as root, in `/`.
    pub fn root(&self, line: &str) -> Output {
        self.enter(&["sh", "-c", line], "/root", "/")
    }

    /// `line` through `sh -c` on the machine as `user`, in its home, with
    /// a login's environment.
    pub fn user(&self, user: &str, line: &str) -> Output {
        let home = format!("/home/{user}");
        let home = home.as_str();
        self.enter(
            &[
                "setpriv",
                &format!("--reuid={user}"),
                &format!("--regid={user}"),
                "--init-groups",
                "sh",
                "-c",
                line,
            ],
            home,
            home,
        )
    }

    fn enter(&self, argv: &[&str], home: &str, cwd: &str) -> Output {
        let path = format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            self.dir().join("bin").display()
        );
        Command::new("nsenter")
            .args(["-t", &self.init().to_string(), "-m", "-p", "-u", "-i", "-n"])
            // In the machine's mounts (nsenter's --wd opens it in ours).
            .args(["--", "sh", "-c", "cd \"$0\" && exec \"$@\"", cwd])
            .args(argv)
            .env_clear()
            .env("PATH", path)
            .env("HOME", home)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .output()
            .expect("nsenter (util-linux)")
    }

    /// Wait (bounded, 30 s) for `cond`; fail with `what` and the console.
    pub fn wait_for(&self, what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "never happened: {what}\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.power_off();
    }
}

/// The stdout of a command that must succeed; `what` and its output
/// otherwise.
pub fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
