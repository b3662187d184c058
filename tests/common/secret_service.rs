//! A real Secret Service for tests: a private D-Bus session bus
//! (`dbus-run-session`) with `gnome-keyring-daemon` on it, everything under
//! the test's temp tree, so the developer's own keyring is never touched.
//!
//! Missing tools fail the test with the Debian package to install; they are
//! never skipped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

use super::TestEnv;

/// The password of every test keyring.
pub const PASSWORD: &str = "test-keyring-password";
const SECRETS: &str = "org.freedesktop.secrets";
const SERVICE_PATH: &str = "/org/freedesktop/secrets";

/// Panic, naming the Debian package, when `cmd` is not installed.
pub fn require(cmd: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{cmd}` is not installed; this test needs the Debian package `{package}` \
         (sudo apt-get install {package}, or run ./scripts/test as root)"
    );
}

/// A bus config with no service activation: nothing starts behind the
/// test's back, so "no provider" really means none.
fn bus_config(listen: &str, extra_rules: &str) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>{listen}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    {extra_rules}
  </policy>
</busconfig>
"#
    )
}

/// A running `dbus-monitor`.
pub struct Monitor {
    child: Child,
    log: PathBuf,
}

impl Monitor {
    /// Stop recording; everything seen, as dbus-monitor prints it.
    pub fn stop(mut self) -> String {
        // It flushes after every message; give the last ones a moment.
        std::thread::sleep(Duration::from_millis(200));
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).expect("monitor log")
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct SecretService {
    /// `dbus-run-session … cat`: the bus lives until `cat` sees EOF, which
    /// also happens if the test process dies without running `Drop`.
    session: Child,
    session_stdin: Option<ChildStdin>,
    keyring: Option<Child>,
    pub address: String,
    /// Where the bus listens, as its config says.
    listen: String,
    root: PathBuf,
}

impl SecretService {
    /// A private bus with gnome-keyring on it, its login keyring unlocked;
    /// `env` is pointed at the bus.
    pub fn start(env: &mut TestEnv) -> SecretService {
        let mut s = SecretService::bus_only(env);
        s.start_keyring();
        s
    }

    /// A private bus with no Secret Service provider on it.
    pub fn bus_only(env: &mut TestEnv) -> SecretService {
        let listen = format!("unix:dir={}", env.root().join("run").display());
        SecretService::bus_listening(env, &listen)
    }

    /// A private bus at the standard place, `$XDG_RUNTIME_DIR/bus`, with
    /// gnome-keyring on it.
    pub fn start_at_runtime_bus(env: &mut TestEnv) -> SecretService {
        let listen = format!("unix:path={}", env.root().join("run/bus").display());
        let mut s = SecretService::bus_listening(env, &listen);
        s.start_keyring();
        s
    }

    /// A private bus on an abstract socket (what `unix:tmpdir=` gives on
    /// Linux), with gnome-keyring on it.
    pub fn start_abstract(env: &mut TestEnv) -> SecretService {
        let listen = format!("unix:abstract={}/bus", env.root().display());
        let mut s = SecretService::bus_listening(env, &listen);
        s.start_keyring();
        s
    }

    fn bus_listening(env: &mut TestEnv, listen: &str) -> SecretService {
        require("dbus-run-session", "dbus");
        require("dbus-daemon", "dbus");
        let root = env.root().to_path_buf();
        let conf = root.join("dbus.conf");
        std::fs::write(&conf, bus_config(listen, "")).expect("write bus config");
        let mut session = Command::new("dbus-run-session")
            .arg(format!("--config-file={}", conf.display()))
            .args([
                "--",
                "sh",
                "-c",
                "echo \"$DBUS_SESSION_BUS_ADDRESS\"; exec cat",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-run-session");
        let mut line = String::new();
        BufReader::new(session.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the bus address");
        let address = line.trim().to_owned();
        assert!(address.starts_with("unix:"), "bad bus address {address:?}");
        env.set_env("DBUS_SESSION_BUS_ADDRESS", &address);
        SecretService {
            session_stdin: session.stdin.take(),
            session,
            keyring: None,
            address,
            listen: listen.to_owned(),
            root,
        }
    }

    fn daemon_env(&self, cmd: &mut Command) {
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.root.join("home"))
            .env("XDG_DATA_HOME", self.root.join("data"))
            .env("XDG_CONFIG_HOME", self.root.join("config"))
            .env("XDG_RUNTIME_DIR", self.root.join("run"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env("LANG", "C.UTF-8");
    }

    /// The running gnome-keyring-daemon's pid (to stop it with SIGSTOP: a
    /// provider that hangs while the bus answers).
    pub fn keyring_pid(&self) -> Option<u32> {
        self.keyring.as_ref().map(Child::id)
    }

    /// Start gnome-keyring-daemon on the bus and wait until it owns the name.
    pub fn start_keyring(&mut self) {
        self.start_daemon(&["--unlock", "--components=secrets", "--foreground"]);
    }

    /// Start gnome-keyring-daemon with no login keyring: nothing unlocks
    /// or creates one, so only the in-memory `session` collection exists
    /// and no default alias is set (a fresh headless account).
    pub fn start_keyring_without_login(&mut self) {
        self.start_daemon(&["--components=secrets", "--foreground"]);
    }

    fn start_daemon(&mut self, args: &[&str]) {
        require("gnome-keyring-daemon", "gnome-keyring");
        let mut cmd = Command::new("gnome-keyring-daemon");
        self.daemon_env(&mut cmd);
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gnome-keyring-daemon");
        {
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(PASSWORD.as_bytes()).expect("password");
        }
        self.keyring = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.provider_present() {
            assert!(
                Instant::now() < deadline,
                "gnome-keyring-daemon did not claim {SECRETS} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Make the bus refuse property reads of one collection, as a
    /// sandbox's D-Bus filter (AppArmor, a Flatpak proxy) would: the
    /// provider lists the collection, but asking for its label or lock
    /// state fails with `AccessDenied`. gnome-keyring itself never gets
    /// into that state, so the test's own bus policy puts it there.
    pub fn deny_properties(&self, collection: &OwnedObjectPath) {
        let rule = format!(
            r#"<deny send_destination="{SECRETS}" send_path="{}" send_interface="org.freedesktop.DBus.Properties"/>"#,
            collection.as_str()
        );
        std::fs::write(self.root.join("dbus.conf"), bus_config(&self.listen, &rule))
            .expect("write bus config");
        self.connection()
            .call_method(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                Some("org.freedesktop.DBus"),
                "ReloadConfig",
                &(),
            )
            .expect("ReloadConfig");
    }

    /// KeePassXC as the provider instead of gnome-keyring: its Secret
    /// Service integration on (no confirmation dialogs), with one unlocked
    /// database whose root group is exposed as a collection. Runs the GUI
    /// on Qt's offscreen platform.
    pub fn start_keepassxc(&mut self) {
        require("keepassxc", "keepassxc");
        require("keepassxc-cli", "keepassxc");
        let dir = self.root.join("keepassxc");
        std::fs::create_dir_all(&dir).expect("keepassxc dir");
        let db = dir.join("desktop.kdbx");
        let xml = dir.join("desktop.xml");
        let kpx = |args: &[&str], stdin: &str| {
            let out = self.run_tool("keepassxc-cli", args, stdin.as_bytes());
            assert!(
                out.status.success(),
                "keepassxc-cli {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        };
        let plain = dir.join("plain.kdbx");
        let (pw, pw2) = (format!("{PASSWORD}\n"), format!("{PASSWORD}\n{PASSWORD}\n"));
        kpx(
            &["db-create", "-q", "-p", &plain.display().to_string()],
            &pw2,
        );
        // Which group the Secret Service sees lives in the database's own
        // custom data, FDO_SECRETS_EXPOSED_GROUP = {root group UUID}; only
        // the GUI sets it, so go through an XML export and import.
        let exported = String::from_utf8(kpx(
            &["export", "-q", "-f", "xml", &plain.display().to_string()],
            &pw,
        ))
        .expect("xml");
        let root_uuid = exported
            .split("<Root>")
            .nth(1)
            .and_then(|r| r.split("<UUID>").nth(1))
            .and_then(|r| r.split("</UUID>").next())
            .expect("root group UUID");
        let uuid = uuid_from_base64(root_uuid);
        let item =
            format!("<Item><Key>FDO_SECRETS_EXPOSED_GROUP</Key><Value>{{{uuid}}}</Value></Item>");
        let (meta, rest) = exported.split_once("</Meta>").expect("Meta");
        let meta = if meta.contains("<CustomData>") {
            meta.replacen("<CustomData>", &format!("<CustomData>{item}"), 1)
        } else {
            format!("{meta}<CustomData>{item}</CustomData>")
        };
        std::fs::write(&xml, format!("{meta}</Meta>{rest}")).expect("write xml");
        kpx(
            &[
                "import",
                "-q",
                "-p",
                &xml.display().to_string(),
                &db.display().to_string(),
            ],
            &pw2,
        );
        let ini = dir.join("keepassxc.ini");
        std::fs::write(
            &ini,
            "[General]\nConfigVersion=2\nSingleInstance=false\nRememberLastDatabases=false\n\
             [FdoSecrets]\nEnabled=true\nShowNotification=false\nConfirmAccessItem=false\n\
             ConfirmDeleteItem=false\n[Security]\nLockDatabaseIdle=false\n",
        )
        .expect("ini");
        let mut cmd = Command::new("keepassxc");
        self.daemon_env(&mut cmd);
        let mut child = cmd
            .env("QT_QPA_PLATFORM", "offscreen")
            .arg("--config")
            .arg(&ini)
            .arg("--localconfig")
            .arg(dir.join("local.ini"))
            .arg("--pw-stdin")
            .arg(&db)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start keepassxc");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(pw.as_bytes())
            .expect("password");
        self.keyring = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.collections().is_empty() {
            assert!(
                Instant::now() < deadline,
                "KeePassXC did not expose its database on the bus within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The provider's `Collections` property; empty when it cannot be read.
    fn collections(&self) -> Vec<OwnedObjectPath> {
        let conn = self.connection();
        conn.call_method(
            Some(SECRETS),
            SERVICE_PATH,
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &("org.freedesktop.Secret.Service", "Collections"),
        )
        .ok()
        .and_then(|m| m.body().deserialize::<OwnedValue>().ok())
        .and_then(|v| Vec::<OwnedObjectPath>::try_from(v).ok())
        .unwrap_or_default()
    }

    /// Kill the provider, leaving the bus up.
    pub fn stop_keyring(&mut self) {
        if let Some(mut child) = self.keyring.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.provider_present() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn connection(&self) -> zbus::blocking::Connection {
        zbus::blocking::connection::Builder::address(self.address.as_str())
            .expect("bus address")
            .build()
            .expect("connect to the test bus")
    }

    fn provider_present(&self) -> bool {
        let conn = self.connection();
        let dbus = zbus::blocking::fdo::DBusProxy::new(&conn).expect("bus proxy");
        dbus.name_has_owner(SECRETS.try_into().expect("name"))
            .unwrap_or(false)
    }

    /// Start recording every message on the bus (`dbus-monitor`, which the
    /// test bus allows); [`Monitor::stop`] returns what it saw.
    pub fn monitor(&self) -> Monitor {
        require("dbus-monitor", "dbus");
        let log = self
            .root
            .join(format!("monitor-{}.log", std::process::id()));
        let mut cmd = Command::new("dbus-monitor");
        self.daemon_env(&mut cmd);
        let child = cmd
            .args(["--address", &self.address])
            .stdout(std::fs::File::create(&log).expect("monitor log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-monitor");
        // It is listening once the bus has taken its name away (it became
        // a monitor).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("NameLost")
        {
            assert!(Instant::now() < deadline, "dbus-monitor did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Monitor { child, log }
    }

    /// `secret-tool ARGS…` on this bus, with `stdin` as its input.
    pub fn secret_tool(&self, args: &[&str], stdin: &[u8]) -> Output {
        require("secret-tool", "libsecret-tools");
        self.run_tool("secret-tool", args, stdin)
    }

    /// `PROGRAM ARGS…` in the daemons' environment, `stdin` as its input.
    fn run_tool(&self, program: &str, args: &[&str], stdin: &[u8]) -> Output {
        let mut cmd = Command::new(program);
        self.daemon_env(&mut cmd);
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("write stdin");
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{program} output: {e}"))
    }

    /// `bash -c SCRIPT` beside the daemon (its bus, its runtime
    /// directory), `stdin` as typed by a user.
    pub fn run_shell(&self, script: &str, stdin: &[u8]) -> Output {
        self.run_tool("bash", &["-c", script], stdin)
    }

    /// `secret-tool store --label=L ATTRS… <<< value`, insisting on success.
    pub fn store(&self, attrs: &[&str], value: &[u8]) {
        let mut args = vec!["store", "--label=stored by secret-tool"];
        args.extend_from_slice(attrs);
        let out = self.secret_tool(&args, value);
        assert!(
            out.status.success(),
            "secret-tool store failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `secret-tool lookup ATTRS…`: the value, or `None` when not found.
    pub fn lookup(&self, attrs: &[&str]) -> Option<Vec<u8>> {
        let mut args = vec!["lookup"];
        args.extend_from_slice(attrs);
        let out = self.secret_tool(&args, b"");
        out.status.success().then_some(out.stdout)
    }

    /// A second, unlocked collection with no GUI prompt, through
    /// gnome-keyring's private `CreateWithMasterPassword`.
    pub fn create_collection(&self, label: &str) -> OwnedObjectPath {
        let conn = self.connection();
        let session = plain_session(&conn);
        let props: HashMap<&str, Value<'_>> = HashMap::from([(
            "org.freedesktop.Secret.Collection.Label",
            Value::from(label),
        )]);
        let master = master_password(&session);
        let reply = conn
            .call_method(
                Some(SECRETS),
                SERVICE_PATH,
                Some("org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface"),
                "CreateWithMasterPassword",
                &(props, master),
            )
            .expect("CreateWithMasterPassword");
        reply.body().deserialize().expect("collection path")
    }

    /// Unlock a collection with no GUI prompt, through gnome-keyring's
    /// private `UnlockWithMasterPassword`, as a person at the desktop would.
    pub fn unlock(&self, collection: &OwnedObjectPath) {
        let conn = self.connection();
        let session = plain_session(&conn);
        let master = master_password(&session);
        conn.call_method(
            Some(SECRETS),
            SERVICE_PATH,
            Some("org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface"),
            "UnlockWithMasterPassword",
            &(collection.as_ref(), master),
        )
        .expect("UnlockWithMasterPassword");
    }

    /// Store an item with `attrs` straight into `collection`, as another
    /// tool writing to a non-default collection would (`secret-tool store`
    /// only writes to the default one).
    pub fn store_in(&self, collection: &OwnedObjectPath, attrs: &[(&str, &str)], value: &[u8]) {
        let conn = self.connection();
        let session = plain_session(&conn);
        let attrs: HashMap<&str, &str> = attrs.iter().copied().collect();
        let props: HashMap<&str, Value<'_>> = HashMap::from([
            (
                "org.freedesktop.Secret.Item.Label",
                Value::from("stored by another tool"),
            ),
            ("org.freedesktop.Secret.Item.Attributes", Value::from(attrs)),
        ]);
        let secret = (
            session.as_ref(),
            Vec::<u8>::new(),
            value.to_vec(),
            "text/plain",
        );
        conn.call_method(
            Some(SECRETS),
            collection.as_str(),
            Some("org.freedesktop.Secret.Collection"),
            "CreateItem",
            &(props, secret, true),
        )
        .expect("CreateItem");
    }

    /// Lock a collection with the standard `Service.Lock`.
    pub fn lock(&self, collection: &OwnedObjectPath) {
        let conn = self.connection();
        conn.call_method(
            Some(SECRETS),
            SERVICE_PATH,
            Some("org.freedesktop.Secret.Service"),
            "Lock",
            &(vec![collection.as_ref()],),
        )
        .expect("Lock");
    }
}

/// A plain (unencrypted) Secret Service session: enough on a private test
/// bus to hand gnome-keyring a master password.
fn plain_session(conn: &zbus::blocking::Connection) -> OwnedObjectPath {
    let reply = conn
        .call_method(
            Some(SECRETS),
            SERVICE_PATH,
            Some("org.freedesktop.Secret.Service"),
            "OpenSession",
            &("plain", Value::from("")),
        )
        .expect("OpenSession");
    let (_, session): (OwnedValue, OwnedObjectPath) =
        reply.body().deserialize().expect("OpenSession reply");
    session
}

/// The test keyrings' master password as a Secret Service secret struct.
fn master_password(session: &OwnedObjectPath) -> (ObjectPath<'_>, Vec<u8>, Vec<u8>, &'static str) {
    (
        session.as_ref(),
        Vec::new(),
        PASSWORD.as_bytes().to_vec(),
        "text/plain",
    )
}

impl Drop for SecretService {
    fn drop(&mut self) {
        self.stop_keyring();
        drop(self.session_stdin.take());
        let _ = self.session.wait();
    }
}

/// A KeePass UUID (base64 of 16 bytes) in its braced text form's body.
fn uuid_from_base64(b64: &str) -> String {
    let digit = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            _ => 63,
        }
    };
    let mut bytes = Vec::new();
    for chunk in b64.trim_end_matches('=').as_bytes().chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | digit(c) << (18 - 6 * i));
        bytes.extend_from_slice(&n.to_be_bytes()[1..=chunk.len() - 1]);
    }
    assert_eq!(bytes.len(), 16, "a UUID is 16 bytes: {b64}");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A Unix socket whose listener accepts every connection and never says a
/// word: a bus or provider that hangs.
pub struct SilentBus {
    pub address: String,
    _held: std::sync::Arc<std::sync::Mutex<Vec<UnixStream>>>,
}

impl SilentBus {
    pub fn start(env: &mut TestEnv) -> SilentBus {
        let path = env.root().join("silent.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = std::sync::Arc::clone(&held);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                keep.lock().expect("lock").push(stream);
            }
        });
        let address = format!("unix:path={}", path.display());
        env.set_env("DBUS_SESSION_BUS_ADDRESS", &address);
        SilentBus {
            address,
            _held: held,
        }
    }
}
