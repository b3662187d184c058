//! `ov agent` (issue 18): a real agent process, real clients, and the
//! bytes they send read off the socket.

mod common;

use std::fs;
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestEnv, core_limits, hints, stderr, stdout};

const DOTENV: &str = "DATABASE_URL=postgres://db/x\nAPI_KEY=s3cr3t-value-42\n";

/// myapp/production imported and sealed for a key at `m.key`.
fn setup() -> (TestEnv, String) {
    let (env, key) = common::with_machine_key(DOTENV);
    (env, key.display().to_string())
}

/// [`setup`]; with `threaded`, an agent started there waits for its
/// commands as on a kernel without pidfds.
fn setup_waiting(threaded: bool) -> (TestEnv, String) {
    let (mut env, key) = setup();
    if threaded {
        env.set_env("OV_AGENT_NO_PIDFD", "1");
    }
    (env, key)
}

fn socket(env: &TestEnv) -> PathBuf {
    env.root().join("run/ov-agent/ov-agent.sock")
}

fn alive(pid: i32) -> bool {
    // A zombie still has /proc/PID; only a reaped process is gone.
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Wait (bounded) for `cond`; fail with `what` if it never holds.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running agent, killed at the end of the test whatever happens.
struct Agent {
    pid: i32,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// `ov agent start` with the machine key of [`setup`], for myapp/production.
fn start_args(key: &str) -> Vec<&str> {
    vec![
        "agent",
        "start",
        "--machine-key",
        key,
        "--app",
        "myapp",
        "--env",
        "production",
    ]
}

/// `ov agent install` of [`setup`]'s key for myapp/production as `user`,
/// then `extra`.
fn install_args<'a>(key: &'a str, user: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "agent",
        "install",
        "--machine-key",
        key,
        "--app",
        "myapp",
        "--env",
        "production",
        "--user",
        user,
    ];
    v.extend_from_slice(extra);
    v
}

fn start(env: &TestEnv, key: &str, extra: &[&str]) -> Agent {
    let mut args = start_args(key);
    args.extend_from_slice(extra);
    let out = env.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    started(&stdout(&out))
}

/// The agent `ov agent start` said it started.
fn started(said: &str) -> Agent {
    let pid = said
        .strip_prefix("ov agent: started (pid ")
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    Agent { pid }
}

/// `cmd` run by `prefix` (a program and its arguments that end by running
/// what follows them), with `cmd`'s environment and directory.
fn wrapped(prefix: &[&str], cmd: &std::process::Command) -> std::process::Command {
    let mut w = std::process::Command::new(prefix[0]);
    w.args(&prefix[1..])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))));
    if let Some(dir) = cmd.get_current_dir() {
        w.current_dir(dir);
    }
    w
}

fn run_agent<'a>(key: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["run", "--agent", "--machine-key", key];
    v.extend_from_slice(rest);
    v
}

/// The JSON of one answer frame: past the 8-byte header and 32-byte tag.
fn answer_json(bytes: &[u8]) -> serde_json::Value {
    assert!(bytes.len() > 40, "no answer frame: {bytes:?}");
    assert_eq!(&bytes[..2], b"ov");
    let len = u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
    serde_json::from_slice(&bytes[8 + 32..8 + len]).expect("answer JSON")
}

/// Send raw bytes to the agent and read everything it answers.
fn send_raw(sock: &Path, bytes: &[u8]) -> Vec<u8> {
    let mut c = UnixStream::connect(sock).expect("connect");
    c.write_all(bytes).expect("write");
    let mut back = Vec::new();
    let _ = c.read_to_end(&mut back);
    back
}

/// What passed between a client and the agent, each way.
#[derive(Default)]
struct Capture {
    to_agent: Vec<u8>,
    to_client: Vec<u8>,
}

/// Put a socket between one client and the agent that passes everything
/// on (descriptors included) and records the bytes; run `args` through it.
fn through_proxy(env: &TestEnv, args: &[&str]) -> (Output, Capture) {
    let proxy = env.root().join("proxy.sock");
    let _ = fs::remove_file(&proxy);
    let listener = UnixListener::bind(&proxy).expect("bind proxy");
    let agent = socket(env);
    let cap = Arc::new(Mutex::new(Capture::default()));
    let worker = {
        let cap = Arc::clone(&cap);
        std::thread::spawn(move || {
            let (client, _) = listener.accept().expect("accept");
            let upstream = UnixStream::connect(&agent).expect("connect agent");
            let back = {
                let (mut from, mut to) = (
                    upstream.try_clone().expect("clone"),
                    client.try_clone().expect("clone"),
                );
                let cap = Arc::clone(&cap);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        cap.lock()
                            .expect("lock")
                            .to_client
                            .extend_from_slice(&buf[..n]);
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                })
            };
            let mut buf = vec![0u8; 1 << 21];
            loop {
                let mut space = nix::cmsg_space!([RawFd; 3]);
                let mut iov = [IoSliceMut::new(&mut buf)];
                let Ok(msg) = nix::sys::socket::recvmsg::<()>(
                    client.as_raw_fd(),
                    &mut iov,
                    Some(&mut space),
                    nix::sys::socket::MsgFlags::empty(),
                ) else {
                    break;
                };
                let mut fds = Vec::new();
                for c in msg.cmsgs().expect("cmsgs") {
                    if let nix::sys::socket::ControlMessageOwned::ScmRights(f) = c {
                        fds.extend(f);
                    }
                }
                let n = msg.bytes;
                if n == 0 {
                    break;
                }
                let rights = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
                let cmsgs: &[nix::sys::socket::ControlMessage] =
                    if fds.is_empty() { &[] } else { &rights };
                nix::sys::socket::sendmsg::<()>(
                    upstream.as_raw_fd(),
                    &[IoSlice::new(&buf[..n])],
                    cmsgs,
                    nix::sys::socket::MsgFlags::empty(),
                    None,
                )
                .expect("forward");
                for fd in fds {
                    let _ = nix::unistd::close(fd);
                }
                cap.lock()
                    .expect("lock")
                    .to_agent
                    .extend_from_slice(&buf[..n]);
            }
            let _ = upstream.shutdown(std::net::Shutdown::Write);
            back.join().expect("proxy back");
        })
    };
    let p = proxy.display().to_string();
    let mut full: Vec<&str> = args.to_vec();
    let at = full.iter().position(|a| *a == "--").unwrap_or(full.len());
    full.splice(at..at, ["--socket", p.as_str()]);
    let out = env.run(&full);
    worker.join().expect("proxy");
    let cap = std::mem::take(&mut *cap.lock().expect("lock"));
    (out, cap)
}

#[test]
fn run_through_the_agent_gets_the_named_secrets_and_the_exit_status() {
    let (env, key) = setup();
    let _agent = start(&env, &key, &[]);
    let out = env.run(&run_agent(
        &key,
        &[
            "--secrets",
            "DATABASE_URL",
            "--",
            "sh",
            "-c",
            "echo \"db=$DATABASE_URL api=${API_KEY-unset} pwd=$(pwd)\"; exit 7",
        ],
    ));
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "db=postgres://db/x api=unset pwd={}\n",
            env.root().display()
        )
    );
    // stdin is the client's own.
    let out = env
        .ov(&run_agent(
            &key,
            &["--all", "--", "sh", "-c", "cat; echo \"$API_KEY\""],
        ))
        .write_stdin("from the client\n")
        .output()
        .expect("run");
    assert_eq!(stdout(&out), "from the client\ns3cr3t-value-42\n");
    // A command killed by a signal: ov ends by the same signal.
    let out = env.run(&run_agent(
        &key,
        &["--all", "--", "sh", "-c", "kill -TERM $$"],
    ));
    assert_eq!(out.status.signal(), Some(15), "{}", stderr(&out));
    // 127 and 126, as ov run without the agent.
    let out = env.run(&run_agent(&key, &["--all", "--", "no-such-program-x"]));
    assert_eq!(out.status.code(), Some(127));
    assert!(
        stderr(&out).contains("command not found on PATH"),
        "{}",
        stderr(&out)
    );
    let script = env.root().join("noexec.sh");
    env.write(&script, "#!/bin/sh\n", 0o644);
    let s = script.display().to_string();
    let out = env.run(&run_agent(&key, &["--all", "--", &s]));
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    // A missing name is the agent's error, with its fix.
    let out = env.run(&run_agent(&key, &["--secrets", "NOPE", "--", "true"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("ov: error: secret is not in myapp/production: NOPE\n"));
    assert!(hints(&out).contains(&"ov secrets set --app myapp --env production NOPE".to_owned()));
}

#[test]
fn signals_the_client_gets_reach_the_command() {
    signals_reach_the_command(false);
}

#[test]
fn signals_reach_the_command_where_there_are_no_process_descriptors() {
    signals_reach_the_command(true);
}

/// With `threaded`, the agent waits as on a kernel without pidfds.
fn signals_reach_the_command(threaded: bool) {
    let (env, key) = setup_waiting(threaded);
    let _agent = start(&env, &key, &[]);
    let mark = env.root().join("got-hup");
    let script = format!(
        // Gives up after about 20 s, so a lost signal fails the test.
        "trap 'echo hup > {}; exit 3' HUP; echo ready; i=0; while [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; exit 9",
        mark.display()
    );
    let mut child = env
        .command(&run_agent(&key, &["--all", "--", "sh", "-c", &script]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = [0u8; 6];
    child
        .stdout
        .as_mut()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("ready");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("kill");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(3));
    assert_eq!(fs::read_to_string(&mark).expect("mark"), "hup\n");
}

#[test]
fn no_secret_value_crosses_the_socket() {
    let (env, key) = setup();
    let _agent = start(&env, &key, &[]);
    let (out, cap) = through_proxy(
        &env,
        &run_agent(&key, &["--all", "--", "sh", "-c", "echo \"$API_KEY\""]),
    );
    assert_eq!(stdout(&out), "s3cr3t-value-42\n", "{}", stderr(&out));
    let seen = |bytes: &[u8]| {
        bytes
            .windows(b"s3cr3t-value-42".len())
            .any(|w| w == b"s3cr3t-value-42")
    };
    assert!(!cap.to_agent.is_empty() && !cap.to_client.is_empty());
    assert!(!seen(&cap.to_agent), "the request holds the value");
    assert!(!seen(&cap.to_client), "the answer holds the value");
    assert_eq!(answer_json(&cap.to_client)["body"]["kind"], "exit");
}

#[test]
fn a_captured_request_replayed_inside_the_window_is_refused() {
    let (env, key) = setup();
    let _agent = start(&env, &key, &[]);
    let (out, cap) = through_proxy(&env, &["agent", "status", "--machine-key", &key]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("requests served: "));
    // The same bytes again, at once: well inside 30 s.
    let back = send_raw(&socket(&env), &cap.to_agent);
    let answer = answer_json(&back);
    assert_eq!(answer["body"]["kind"], "error");
    assert_eq!(
        answer["body"]["message"],
        "the agent refused the request: it was sent before (a replayed request)"
    );
    // One flipped byte of the body: the signature no longer fits.
    let mut forged = cap.to_agent.clone();
    let last = forged.len() - 3;
    forged[last] ^= 0x01;
    let answer = answer_json(&send_raw(&socket(&env), &forged));
    assert!(
        answer["body"]["message"]
            .as_str()
            .expect("message")
            .contains("its signature is wrong"),
        "{answer}"
    );
    // The agent goes on serving.
    env.ok(&["agent", "status", "--machine-key", &key]);
}

#[test]
fn a_client_with_another_key_is_refused() {
    let (env, key) = setup();
    let _agent = start(&env, &key, &[]);
    let other = env.root().join("other.key").display().to_string();
    env.ok(&[
        "auth",
        "derive-machine-key",
        "--out",
        &other,
        "--app",
        "other",
        "--env",
        "production",
        "--allow-empty",
    ]);
    let out = env.run(&run_agent(&other, &["--all", "--", "true"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(
            "ov: error: the agent refused the request: its signature is wrong (the client holds another key than the agent)\n"
        ),
        "{}",
        stderr(&out)
    );
    // status says the agent runs but refuses that key.
    let out = env.run(&["agent", "status", "--machine-key", &other, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["state"], "not-answering");
    assert!(
        v["why"]
            .as_str()
            .expect("why")
            .contains("signature is wrong")
    );
}

#[test]
fn stale_and_future_timestamps_are_refused() {
    let (env, key) = setup();
    let _agent = start(&env, &key, &[]);
    for (shift, word) in [("-45s", "old"), ("+45s", "in the future")] {
        let mut cmd = env.command_under(
            &["faketime", "-f", shift],
            &run_agent(&key, &["--all", "--", "true"]),
        );
        let out = cmd.output().expect("faketime (Debian package: faketime)");
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with("ov: error: the agent refused the request: its timestamp is ")
                && err.contains(&format!("s {word}, more than the 30s allowed")),
            "{err}"
        );
        assert!(err.contains("hint: timedatectl status"), "{err}");
    }
    // Inside the window is fine.
    let mut cmd = env.command_under(
        &["faketime", "-f", "+10s"],
        &run_agent(&key, &["--all", "--", "true"]),
    );
    assert!(cmd.output().expect("faketime").status.success());
}

#[test]
fn an_oversized_frame_is_refused_and_the_agent_goes_on() {
    let (env, key) = setup();
    let _agent = start(&env, &key, &[]);
    let mut header = b"ov".to_vec();
    header.extend_from_slice(&ov::agent::protocol::VERSION.to_be_bytes());
    header.extend_from_slice(&(16u32 << 20).to_be_bytes());
    let answer = answer_json(&send_raw(&socket(&env), &header));
    assert!(
        answer["body"]["message"]
            .as_str()
            .expect("message")
            .contains("a frame of 16777216 bytes is larger than the 1048576 allowed"),
        "{answer}"
    );
    // Another protocol version, and bytes that are not ov's at all.
    let answer = answer_json(&send_raw(&socket(&env), b"ov\x00\x09\x00\x00\x00\x10"));
    assert!(
        answer["body"]["message"]
            .as_str()
            .expect("m")
            .contains("version 9")
    );
    let answer = answer_json(&send_raw(&socket(&env), b"GET / HTTP/1.0\r\n\r\n"));
    assert!(
        answer["body"]["message"]
            .as_str()
            .expect("m")
            .contains("does not speak")
    );
    env.ok(&["agent", "status", "--machine-key", &key]);
}

#[test]
fn a_client_sending_a_byte_a_second_loses_its_connection() {
    let (env, key) = setup();
    let _agent = start(&env, &key, &["--read-timeout", "1s"]);
    let mut slow = UnixStream::connect(socket(&env)).expect("connect");
    // A header that promises 100 bytes, then one byte a second.
    let mut header = b"ov".to_vec();
    header.extend_from_slice(&ov::agent::protocol::VERSION.to_be_bytes());
    header.extend_from_slice(&100u32.to_be_bytes());
    slow.write_all(&header).expect("header");
    let mut dropped = false;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_secs(1));
        if slow.write_all(b"x").is_err() {
            dropped = true;
            break;
        }
        // Others are served meanwhile.
        env.ok(&["agent", "status", "--machine-key", &key]);
    }
    let mut back = Vec::new();
    let _ = slow.read_to_end(&mut back);
    assert!(dropped || !back.is_empty(), "the slow client kept its slot");
    if !back.is_empty() {
        assert!(
            answer_json(&back)["body"]["message"]
                .as_str()
                .expect("m")
                .contains("too slow")
        );
    }
}

#[test]
fn many_concurrent_runs_each_get_their_own_exit_status() {
    let (env, key) = setup();
    let _agent = start(&env, &key, &[]);
    let children: Vec<_> = (0..200)
        .map(|i| {
            let code = format!("exit {}", i % 250);
            let child = env
                .command(&run_agent(&key, &["--all", "--", "sh", "-c", &code]))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            (i, child)
        })
        .collect();
    for (i, child) in children {
        let out = child.wait_with_output().expect("wait");
        assert_eq!(
            out.status.code(),
            Some(i % 250),
            "run {i}: {}",
            stderr(&out)
        );
    }
    let out = env.ok(&["agent", "status", "--machine-key", &key, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(v["requests_served"].as_u64().expect("served") >= 200);
}

/// `ov run --agent -- sleep 60` started, and the pid of that sleep.
fn long_run(env: &TestEnv, key: &str) -> (std::process::Child, i32) {
    let pid_file = env.root().join("cmd.pid");
    let script = format!("echo $$ > {}; exec sleep 60", pid_file.display());
    let client = env
        .command(&run_agent(key, &["--all", "--", "sh", "-c", &script]))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for("the command started", || {
        fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    });
    let pid = fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    (client, pid)
}

#[test]
fn sigkill_of_the_agent_is_a_clear_error_and_a_new_start_works() {
    let (env, key) = setup();
    let agent = start(&env, &key, &[]);
    let (client, cmd_pid) = long_run(&env, &key);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let out = client.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("went away before it answered"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint: ov agent status"));
    // The command does not outlive its agent.
    wait_for("the command ended with the agent", || !alive(cmd_pid));
    // The dead agent's socket is still there; nothing answers on it.
    assert!(socket(&env).exists());
    let out = env.run(&["agent", "status", "--machine-key", &key]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("ov agent: stopped"),
        "{}",
        stdout(&out)
    );
    let out = env.run(&run_agent(&key, &["--all", "--", "true"]));
    assert!(
        stderr(&out).starts_with(&format!(
            "ov: error: no agent is running at {}: nothing answers on its socket",
            socket(&env).display()
        )),
        "{}",
        stderr(&out)
    );
    // The stale socket is replaced.
    let _again = start(&env, &key, &[]);
    env.ok(&run_agent(&key, &["--all", "--", "true"]));
}

#[test]
fn sigkill_of_a_client_mid_request_leaves_no_command_and_no_zombie() {
    client_killed_mid_request(false);
}

#[test]
fn a_client_killed_mid_request_ends_its_command_without_process_descriptors() {
    client_killed_mid_request(true);
}

fn client_killed_mid_request(threaded: bool) {
    let (env, key) = setup_waiting(threaded);
    let agent = start(&env, &key, &[]);
    let (mut client, cmd_pid) = long_run(&env, &key);
    client.kill().expect("kill client");
    client.wait().expect("wait");
    // Gone from /proc only once the agent reaped it: no zombie.
    wait_for("the orphaned command was ended and reaped", || {
        !alive(cmd_pid)
    });
    assert!(alive(agent.pid));
    env.ok(&run_agent(&key, &["--all", "--", "true"]));
}

#[test]
fn stop_lets_the_request_in_flight_finish() {
    let (env, key) = setup();
    let agent = start(&env, &key, &[]);
    let go = env.root().join("go");
    let started = env.root().join("started");
    let script = format!(
        "touch {}; while [ ! -e {} ]; do sleep 0.05; done; exit 5",
        started.display(),
        go.display()
    );
    let client = env
        .command(&run_agent(&key, &["--all", "--", "sh", "-c", &script]))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for("the command started", || started.exists());
    let out = env.ok(&["agent", "stop"]);
    assert!(out.starts_with(&format!("ov agent: stopping (pid {})", agent.pid)));
    // New clients are turned away while the old one finishes.
    wait_for("the socket is gone", || !socket(&env).exists());
    assert!(alive(agent.pid));
    fs::write(&go, "").expect("go");
    let out = client.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    wait_for("the agent exited", || !alive(agent.pid));
    let out = env.run(&["agent", "stop"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("ov: error: no agent is running at "));
    assert!(stderr(&out).contains("hint: ov agent start "));
}

#[test]
fn a_second_start_on_a_live_socket_is_refused() {
    let (env, key) = setup();
    let agent = start(&env, &key, &[]);
    let out = env.run(&start_args(&key));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        env.normalize(&stderr(&out)),
        format!(
            "ov: error: an agent is already running at [TMP]/run/ov-agent/ov-agent.sock (pid {})\n\
             hint: ov agent status --socket [TMP]/run/ov-agent/ov-agent.sock\n\
             hint: ov agent stop --socket [TMP]/run/ov-agent/ov-agent.sock   # to start a new one\n",
            agent.pid
        )
    );
    // The first one is untouched.
    env.ok(&run_agent(&key, &["--all", "--", "true"]));
    let dir = env.root().join("run/ov-agent");
    assert_eq!(common::mode_of(&dir), 0o700);
    assert_eq!(common::mode_of(&socket(&env)), 0o600);
}

#[test]
fn a_socket_in_a_world_writable_directory_without_the_sticky_bit_is_refused() {
    let (env, key) = setup();
    let open = env.root().join("open");
    fs::create_dir(&open).expect("mkdir");
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).expect("chmod");
    let sock = open.join("a.sock").display().to_string();
    let out = env.run(&["agent", "start", "--machine-key", &key, "--socket", &sock]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        env.normalize(&stderr(&out)).starts_with(
            "ov: error: refusing the socket directory [TMP]/open: it is world-writable without the sticky bit, so anyone could replace the socket\n"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read_dir(&open).expect("ls").count(), 0, "nothing made");
    // The fix it prints works.
    let fix = common::hint_starting(&out, "chmod o-w ");
    assert!(env.paste(&fix).status.success());
    let _agent = start(&env, &key, &["--socket", &sock]);
    let out = env.run(&[
        "run",
        "--agent",
        "--socket",
        &sock,
        "--machine-key",
        &key,
        "--all",
        "--",
        "true",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn machine_keys_failing_spec_001_are_refused_with_its_texts() {
    let (env, key) = setup();
    let path = PathBuf::from(&key);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = env.run(&["agent", "start", "--machine-key", &key, "--app", "myapp"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("ov: error: machine key has permissions 0644 — must be 0600\n"),
        "{}",
        stderr(&out)
    );
    assert!(!socket(&env).exists());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    let good = fs::read(&path).expect("key");
    fs::write(&path, &good[..31]).expect("write");
    let out = env.run(&["agent", "start", "--machine-key", &key, "--app", "myapp"]);
    assert!(stderr(&out).starts_with("ov: error: machine key must be exactly 32 bytes\n"));
    fs::write(&path, &good).expect("write");
    std::os::unix::fs::chown(&path, Some(65534), None).expect("chown");
    let out = env.run(&["agent", "start", "--machine-key", &key, "--app", "myapp"]);
    let uid = nix::unistd::Uid::effective().as_raw();
    assert!(
        stderr(&out).starts_with(&format!(
            "ov: error: machine key is owned by uid 65534 but current uid is {uid}\n"
        )),
        "{}",
        stderr(&out)
    );
    std::os::unix::fs::chown(&path, Some(uid), None).expect("chown");
    let link = env.root().join("link.key");
    std::os::unix::fs::symlink(&path, &link).expect("symlink");
    let l = link.display().to_string();
    let out = env.run(&["agent", "start", "--machine-key", &l, "--app", "myapp"]);
    assert!(
        stderr(&out)
            .starts_with("ov: error: opening machine key: too many levels of symbolic links\n")
    );
    // Nothing was started or left behind by any of them.
    let out = env.run(&["agent", "status", "--machine-key", &key]);
    assert_eq!(out.status.code(), Some(3));
}

/// A directory others can traverse (the test's own root is 0700).
fn shared_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("ov-agent-uid.")
        .tempdir()
        .expect("tempdir");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

#[test]
fn clients_of_another_uid_are_refused_unless_allowed() {
    let (env, key) = setup();
    let shared = shared_dir();
    let sock = shared.path().join("agent.sock");
    let s = sock.display().to_string();
    let _agent = start(&env, &key, &["--socket", &s, "--allow-uid", "65533"]);
    // Each client holds the agent's key in a file of its own.
    let key_for = |uid: u32| {
        let k = shared.path().join(format!("{uid}.key"));
        fs::copy(&key, &k).expect("copy key");
        std::os::unix::fs::chown(&k, Some(uid), Some(uid)).expect("chown");
        k.display().to_string()
    };
    let as_uid = |uid: u32, k: &str| {
        let uid = uid.to_string();
        env.command_under(
            &[
                "setpriv",
                "--reuid",
                &uid,
                "--regid",
                &uid,
                "--clear-groups",
            ],
            &[
                "run",
                "--agent",
                "--socket",
                &s,
                "--machine-key",
                k,
                "--all",
                "--",
                "true",
            ],
        )
        .output()
        .expect("setpriv (Debian package: util-linux)")
    };
    let k = key_for(65534);
    let out = as_uid(65534, &k);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(
            "ov: error: the agent refuses clients of uid 65534: it serves uid 0 only\n"
        ),
        "{}",
        stderr(&out)
    );
    let k = key_for(65533);
    let out = as_uid(65533, &k);
    assert!(out.status.success(), "{}", stderr(&out));
    // The default socket sits in a 0700 directory: no other uid gets there.
    let out = env.run(&[
        "agent",
        "start",
        "--machine-key",
        &key,
        "--allow-uid",
        "65533",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        env.normalize(&stderr(&out)).starts_with(
            "ov: error: --allow-uid: other users cannot reach [TMP]/run/ov-agent/ov-agent.sock: "
        ),
        "{}",
        stderr(&out)
    );
    assert!(!socket(&env).exists());
}

#[test]
fn a_client_of_another_uid_cannot_reach_a_private_socket() {
    let (env, key) = setup();
    let _agent = start(&env, &key, &[]);
    let s = socket(&env).display().to_string();
    let out = env
        .command_under(&common::AS_NOBODY, &["agent", "status", "--socket", &s])
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).starts_with(&format!(
            "ov: error: cannot reach the agent's socket {s}: permission denied (an agent serves its own user)\n"
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_rendezvous_file_not_owned_by_root_is_not_trusted() {
    let (env, key) = setup();
    let _agent = start(&env, &key, &[]);
    let rv = env.root().join("etc/agent.socket");
    env.write(&rv, &format!("{}\n", socket(&env).display()), 0o644);
    let mut no_runtime = env.command(&["agent", "status", "--machine-key", &key]);
    no_runtime.env_remove("XDG_RUNTIME_DIR");
    let out = no_runtime.output().expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    std::os::unix::fs::chown(&rv, Some(65534), None).expect("chown");
    // Refused with `error`, and the hint starting `fix` pasted.
    let refused_then_fixed = |no_runtime: &mut std::process::Command, error: &str, fix: &str| {
        let out = no_runtime.output().expect("run");
        assert_eq!(out.status.code(), Some(1));
        assert!(
            env.normalize(&stderr(&out)).starts_with(error),
            "{}",
            stderr(&out)
        );
        let fix = common::hint_starting(&out, fix);
        assert!(env.paste(&fix).status.success(), "{fix}");
    };
    refused_then_fixed(
        &mut no_runtime,
        "ov: error: refusing to trust [TMP]/etc/agent.socket: it is owned by uid 65534, not root\n",
        "chown root:root ",
    );
    // Its fix gave the file back to root, and clients trust it again.
    let out = no_runtime.output().expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    // A file that names no absolute path: its fix removes it, and clients
    // look at the default socket again.
    env.write(&rv, "ov-agent.sock\n", 0o644);
    refused_then_fixed(
        &mut no_runtime,
        "ov: error: [TMP]/etc/agent.socket does not hold an absolute socket path\n",
        "rm ",
    );
    assert!(!rv.exists());
    let out = env.run(&["agent", "status", "--machine-key", &key]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn install_by_another_user_is_told_the_same_install_as_root() {
    let (env, key) = setup();
    std::os::unix::fs::chown(&key, Some(65534), Some(65534)).expect("chown");
    let units = env.root().join("units");
    let args = install_args(&key, "nobody", &["--unit-name", "billing"]);
    let out = env
        .command_under(&common::AS_NOBODY, &args)
        .env("OV_SYSTEMD_UNIT_DIR", &units)
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!units.exists());
    let fix = common::hint_starting(&out, "sudo ");
    assert_eq!(
        fix,
        format!(
            "sudo ov agent install --machine-key {key} --app myapp --env production --user nobody --unit-name billing"
        )
    );
    // Pasted by root (no sudo here): the unit is written.
    let mut env = env;
    env.set_env("OV_SYSTEMD_UNIT_DIR", units.display().to_string());
    let out = env.paste(fix.strip_prefix("sudo ").expect("sudo"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(units.join("billing.service").exists());
}

#[test]
fn install_writes_a_unit_systemd_accepts_and_refuses_root() {
    let (mut env, key) = setup();
    std::os::unix::fs::chown(&key, Some(65534), Some(65534)).expect("chown");
    let out = env.ok(&install_args(&key, "nobody", &["--dry-run"]));
    let rv = env.root().join("etc/agent.socket");
    let (unit, rest) = out
        .strip_prefix("# /etc/systemd/system/ov-agent.service\n")
        .expect("unit header")
        .split_once(&format!("# {}\n", rv.display()))
        .expect("rendezvous header");
    assert_eq!(rest, "/run/ov-agent/ov-agent.sock\n");
    assert!(unit.contains("\nUser=nobody\n"));
    assert!(unit.contains(&format!(
        "\nExecStart={} agent start --foreground --machine-key {key} --app myapp --env production --socket /run/ov-agent/ov-agent.sock\n",
        env!("CARGO_BIN_EXE_ov")
    )));
    let file = env.root().join("ov-agent.service");
    fs::write(&file, unit).expect("write unit");
    let verify = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&file)
        .output()
        .expect("systemd-analyze (Debian package: systemd)");
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
    // --user root is refused, and nothing is written.
    let units = env.root().join("units");
    env.set_env("OV_SYSTEMD_UNIT_DIR", units.display().to_string());
    let out = env.run(&install_args(&key, "root", &[]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("ov: error: --user root: the agent must not run as root\n"));
    assert!(!units.exists());
    // Its hint is the same install as the key's owner: pasted, it installs
    // into the test's /etc.
    let fix = common::hint_starting(&out, "ov agent install ");
    assert_eq!(
        fix,
        format!(
            "ov agent install --machine-key {key} --app myapp --env production --user nobody   # the account that owns the machine key"
        )
    );
    let out = env.paste(&fix);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(units.join("ov-agent.service")).expect("unit"),
        unit
    );
    assert_eq!(common::mode_of(&rv), 0o644);
    assert_eq!(common::mode_of(&env.root().join("etc")), 0o755);
    assert_eq!(
        fs::read_to_string(&rv).expect("rv"),
        "/run/ov-agent/ov-agent.sock\n"
    );
}

/// `ov agent install --enable` on a machine that runs systemd, end to end
/// as the migration guide has an admin do it: a service account derives
/// its machine key into `/etc/ov`, root installs and enables the unit, the
/// account's `ov run --agent` gets its secret, the doctor sees the unit and
/// its fix starts it again, the agent comes back after a crash and after a
/// reboot with no one logged in.
#[test]
fn install_enable_runs_the_agent_under_systemd_through_crash_and_reboot() {
    use common::systemd::{Machine, ok};
    let mut m = Machine::boot();
    m.install_ov();
    m.add_user("deploy");
    ok(
        m.root("install -d -o deploy -g deploy -m 700 /etc/ov"),
        "install -d /etc/ov",
    );
    ok(
        m.user(
            "deploy",
            "ov settings set secret_backend config && \
             printf 'DATABASE_URL=postgres://db/x\\n' > .env && \
             ov secrets import .env --app myapp --env production && \
             ov auth derive-machine-key --out /etc/ov/myapp.key --app myapp --env production",
        ),
        "the service account's key",
    );
    let install = "ov agent install --machine-key /etc/ov/myapp.key --app myapp --env production --user deploy --enable";
    let out = ok(m.root(install), install);
    assert!(
        out.ends_with(
            "enabled and started ov-agent: the agent listens on /run/ov-agent/ov-agent.sock\n"
        ),
        "{out}"
    );
    let is = |m: &Machine, what: &str| {
        stdout(&m.root(&format!("systemctl {what} ov-agent")))
            .trim()
            .to_owned()
    };
    assert_eq!(
        (is(&m, "is-enabled"), is(&m, "is-active")),
        ("enabled".into(), "active".into())
    );
    assert_eq!(
        stdout(&m.root("stat -c '%U %a' /etc/ov /etc/ov/agent.socket /etc/ov/myapp.key")),
        "root 755\nroot 644\ndeploy 600\n"
    );
    // Type=notify: `enable --now` returned once the socket was there, so
    // the first request needs no retry.
    let run = "ov run --agent --machine-key /etc/ov/myapp.key --app myapp --env production \
               --secrets DATABASE_URL -- sh -c 'printf %s \"$DATABASE_URL\"'";
    assert_eq!(ok(m.user("deploy", run), run), "postgres://db/x");
    // An admin who turns core files on for the unit (as for debugging):
    // the agent still writes none, and its commands get the unit's limit.
    ok(
        m.root(
            "mkdir /etc/systemd/system/ov-agent.service.d && \
             printf '[Service]\\nLimitCORE=infinity\\n' > /etc/systemd/system/ov-agent.service.d/core.conf && \
             systemctl daemon-reload && systemctl restart ov-agent",
        ),
        "LimitCORE=infinity",
    );
    let limits = ok(
        m.root("cat /proc/$(systemctl show -p MainPID --value ov-agent)/limits"),
        "the agent's limits",
    );
    assert_eq!(core_limits(&limits), ["0", "unlimited"]);
    let theirs = "ov run --agent --machine-key /etc/ov/myapp.key --app myapp --env production \
                  --all -- cat /proc/self/limits";
    assert_eq!(
        core_limits(&ok(m.user("deploy", theirs), theirs)),
        ["unlimited", "unlimited"]
    );
    let unit_check = |m: &Machine| {
        let out = m.root("ov doctor agent --json");
        TestEnv::check_in(&stdout(&out), "agent.unit")
    };
    let check = unit_check(&m);
    assert_eq!(check["status"], "ok", "{check}");
    assert_eq!(check["finding"], "ov-agent is enabled and active");
    // Stopped and disabled: the doctor warns, and its fix, pasted, mends it.
    ok(m.root("systemctl disable --now ov-agent"), "disable");
    let check = unit_check(&m);
    assert_eq!(check["status"], "warn", "{check}");
    assert_eq!(check["finding"], "ov-agent is disabled, inactive");
    let fix = check["fix"].as_str().expect("fix").to_owned();
    assert_eq!(fix, common::as_root("systemctl enable --now ov-agent"));
    ok(m.root(&fix), &fix);
    assert_eq!(unit_check(&m)["status"], "ok");
    assert_eq!(ok(m.user("deploy", run), run), "postgres://db/x");
    // A crash: Restart=on-failure brings it back.
    let pid = |m: &Machine| {
        stdout(&m.root("systemctl show -p MainPID --value ov-agent"))
            .trim()
            .to_owned()
    };
    let before = pid(&m);
    ok(m.root("systemctl kill --signal=KILL ov-agent"), "kill");
    m.wait_for("systemd to restart the agent", || {
        let now = pid(&m);
        now != before && now != "0" && m.user("deploy", run).status.success()
    });
    // A reboot: /run starts empty, the unit is enabled, nobody logs in.
    m.reboot();
    m.wait_for("the agent to start at boot", || {
        m.user("deploy", run).status.success()
    });
    assert_eq!(ok(m.user("deploy", run), run), "postgres://db/x");
    assert_eq!(is(&m, "is-active"), "active");
    // Installed again under another name: the doctor follows the
    // rendezvous file to that unit, not to the default name.
    ok(m.root("systemctl disable --now ov-agent"), "disable");
    let other = format!("{install} --unit-name billing-agent");
    ok(m.root(&other), &other);
    let check = unit_check(&m);
    assert_eq!(check["status"], "ok", "{check}");
    assert_eq!(check["finding"], "billing-agent is enabled and active");
    assert_eq!(ok(m.user("deploy", run), run), "postgres://db/x");
    // root cannot ping an agent that serves deploy only; the fix asks as
    // deploy, whose doctor signs with the key file the agent was started
    // with (no --machine-key, nothing registered for root).
    let out = m.root("ov doctor agent --json");
    // The socket is deploy's, as systemd made its directory: root's
    // rendezvous file vouches for it, so it is not another user's trap.
    let socket = TestEnv::check_in(&stdout(&out), "agent.socket");
    assert_eq!(socket["status"], "ok", "{socket}");
    let alive = TestEnv::check_in(&stdout(&out), "agent.alive");
    assert_eq!(alive["status"], "warn", "{alive}");
    let fix = alive["fix"].as_str().expect("fix").to_owned();
    assert_eq!(
        fix,
        "runuser -u deploy -- ov doctor agent.alive   # the agent serves deploy only"
    );
    let out = ok(m.root(&fix), &fix);
    assert!(out.contains("the agent (ov "), "{out}");
    // The unit removed by hand: the rendezvous file still sends clients
    // to its socket. The fix removes it, and the group is quiet again.
    ok(
        m.root(
            "systemctl disable --now billing-agent && \
             rm /etc/systemd/system/billing-agent.service && systemctl daemon-reload",
        ),
        "remove the unit",
    );
    let check = unit_check(&m);
    assert_eq!(check["status"], "warn", "{check}");
    let fix = check["fix"].as_str().expect("fix").to_owned();
    assert_eq!(fix, "rm /etc/ov/agent.socket");
    ok(m.root(&fix), &fix);
    let out = m.root("ov doctor agent --json");
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(
        (&report["summary"]["warn"], &report["summary"]["fail"]),
        (&0.into(), &0.into()),
        "{report}"
    );
}

#[test]
fn install_enable_without_systemd_writes_nothing() {
    let (env, key) = setup();
    std::os::unix::fs::chown(&key, Some(65534), Some(65534)).expect("chown");
    let units = env.root().join("units");
    let ov = env.command(&install_args(&key, "nobody", &["--enable"]));
    // A machine without systemd, whatever this one runs: an empty /run.
    let mut cmd = wrapped(
        &[
            "unshare",
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /run && exec \"$@\"",
            "sh",
        ],
        &ov,
    );
    cmd.env("OV_SYSTEMD_UNIT_DIR", &units);
    let out = cmd.output().expect("unshare (util-linux)");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(
            "ov: error: --enable: systemd does not run on this machine (no /run/systemd/system)"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        common::hint_starting(&out, "ov agent start"),
        format!(
            "ov agent start --machine-key {key} --app myapp --env production   # as the service user, without systemd"
        )
    );
    assert!(!units.exists());
    assert!(!env.root().join("etc/agent.socket").exists());
}

/// One `agent.*` check of `ov doctor agent --json`.
fn doctor_check(env: &TestEnv, id: &str) -> serde_json::Value {
    let out = env.run(&["doctor", "agent", "--json"]);
    TestEnv::check_in(&stdout(&out), id)
}

/// Paste the fix `id` prints, then the check passes (ok, or skipped when
/// the fix removed what it looked at).
fn paste_fix_of(env: &TestEnv, id: &str, passes: &[&str]) {
    let check = doctor_check(env, id);
    let fix = check["fix"].as_str().unwrap_or_else(|| panic!("{check}"));
    let out = env.paste(fix);
    assert!(out.status.success(), "{fix}: {}", stderr(&out));
    let after = doctor_check(env, id);
    assert!(
        passes.contains(&after["status"].as_str().expect("status")),
        "after {fix}: {after}"
    );
}

#[test]
fn doctor_checks_the_agent_and_its_fixes_work() {
    let (env, key) = setup();
    let out = env.run(&["doctor", "agent", "--json"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(TestEnv::check_in(&stdout(&out), "agent")["status"], "skip");
    let agent = start(&env, &key, &[]);
    // The doctor signs its ping with the registered machine key.
    let ping = doctor_check(&env, "agent.alive");
    assert_eq!(ping["status"], "ok", "{ping}");
    assert_eq!(doctor_check(&env, "agent.socket")["status"], "ok");
    // A socket others may use, a directory others may enter.
    fs::set_permissions(socket(&env), fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_eq!(doctor_check(&env, "agent.socket")["status"], "warn");
    paste_fix_of(&env, "agent.socket", &["ok"]);
    let dir = socket(&env).parent().expect("dir").to_path_buf();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_eq!(doctor_check(&env, "agent.socket")["status"], "warn");
    paste_fix_of(&env, "agent.socket", &["ok"]);
    // A rendezvous file someone else owns is not trusted.
    let rv = env.root().join("etc/agent.socket");
    env.write(&rv, &format!("{}\n", socket(&env).display()), 0o666);
    std::os::unix::fs::chown(&rv, Some(65534), None).expect("chown");
    assert_eq!(doctor_check(&env, "agent.rendezvous")["status"], "fail");
    paste_fix_of(&env, "agent.rendezvous", &["ok"]);
    // A dead agent's socket.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    wait_for("the agent died", || !alive(agent.pid));
    let stale = doctor_check(&env, "agent.socket");
    assert_eq!(stale["status"], "warn", "{stale}");
    assert!(
        stale["finding"]
            .as_str()
            .expect("finding")
            .contains("is stale")
    );
    paste_fix_of(&env, "agent.socket", &["skip"]);
    assert!(env.run(&["doctor", "agent"]).status.success());
}

#[test]
fn an_interactive_agent_signs_with_a_private_session_token_and_stops_when_idle() {
    let (env, _key) = setup();
    let agent = started(&env.ok(&["agent", "start", "--idle-timeout", "2s"]));
    let pid = agent.pid;
    let token = PathBuf::from(format!("{}.token", socket(&env).display()));
    assert_eq!(common::mode_of(&token), 0o600);
    let out = env.run(&[
        "run",
        "--agent",
        "--app",
        "myapp",
        "--env",
        "production",
        "--all",
        "--",
        "sh",
        "-c",
        "echo \"$API_KEY\"",
    ]);
    assert_eq!(stdout(&out), "s3cr3t-value-42\n", "{}", stderr(&out));
    let status = env.ok(&["agent", "status", "--json"]);
    assert!(status.contains("\"mode\": \"interactive\""), "{status}");
    // A token others could read is not used.
    fs::set_permissions(&token, fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = env.run(&["run", "--agent", "--app", "myapp", "--all", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("ov: error: refusing the agent's token file "),
        "{}",
        stderr(&out)
    );
    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).expect("chmod");
    // Idle for its timeout: it stops by itself and cleans up.
    wait_for("the idle agent stopped", || !alive(pid));
    assert!(!socket(&env).exists());
    assert!(!token.exists());
}

#[test]
fn an_interactive_agent_unlocks_the_kdbx_once_and_serves_without_prompts() {
    const PW: &str = "correct horse battery";
    let mut env = TestEnv::new();
    env.ok(&["settings", "set", "secrets.kdbx_cache_timeout", "120"]);
    env.set_env("OV_KDBX_PASSWORD", PW);
    env.ok(&["secrets", "init"]);
    env.run_stdin(
        &[
            "secrets",
            "set",
            "--app",
            "myapp",
            "--env",
            "production",
            "TOKEN",
        ],
        "from-kdbx\n",
    );
    env.unset_env("OV_KDBX_PASSWORD");
    env.ok(&["secrets", "lock"]);
    // Asked once, at the terminal `ov agent start` runs on.
    let out = common::expect(
        &env,
        &format!(
            "spawn $ov agent start --idle-timeout 0\nexpect \"kdbx password for \"\nsend \"{PW}\\r\"\nexpect \"ov agent: started\"\nexpect eof\ncatch wait result\nexit [lindex $result 3]\n"
        ),
    );
    assert!(out.status.success(), "{}", stdout(&out));
    let pid: i32 = fs::read_to_string(format!("{}.pid", socket(&env).display()))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    let _agent = Agent { pid };
    // The cache is cleared: what the agent holds is its own.
    env.ok(&["secrets", "lock"]);
    for _ in 0..2 {
        let out = env
            .ov(&[
                "run",
                "--agent",
                "--app",
                "myapp",
                "--env",
                "production",
                "--secrets",
                "TOKEN",
                "--",
                "sh",
                "-c",
                "echo \"$TOKEN\"",
            ])
            .write_stdin("")
            .output()
            .expect("run");
        assert_eq!(stdout(&out), "from-kdbx\n", "{}", stderr(&out));
    }
}

/// Found when a test's temp directory went away under a running agent:
/// SIGTERM woke the accept loop by connecting to the socket, so an agent
/// whose socket file was deleted never stopped.
#[test]
fn sigterm_stops_an_agent_whose_socket_file_was_removed() {
    let (env, key) = setup();
    let agent = start(&env, &key, &[]);
    fs::remove_file(socket(&env)).expect("rm socket");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    wait_for("the agent stopped on SIGTERM", || !alive(agent.pid));
}

#[test]
fn the_command_starts_as_the_client_would_start_it() {
    let (env, key) = setup();
    let _agent = start(&env, &key, &[]);
    // The program is looked up on the client's PATH, not the agent's.
    let bin = env.root().join("client-bin");
    fs::create_dir_all(&bin).expect("mkdir");
    env.write(
        &bin.join("only-the-client-has-this"),
        "#!/bin/sh\necho found \"$1\"\n",
        0o755,
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = env
        .command(&run_agent(
            &key,
            &["--all", "--", "only-the-client-has-this", "arg one"],
        ))
        .env("PATH", &path)
        .output()
        .expect("run");
    assert_eq!(stdout(&out), "found arg one\n", "{}", stderr(&out));
    // A secret replaces the client's variable of the same name, once;
    // the client's other variables are kept.
    let out = env
        .command(&run_agent(
            &key,
            &[
                "--all",
                "--",
                "sh",
                "-c",
                "env | grep -c '^API_KEY='; echo \"$API_KEY $KEPT\"",
            ],
        ))
        .env("API_KEY", "the client's own")
        .env("KEPT", "kept")
        .output()
        .expect("run");
    assert_eq!(
        stdout(&out),
        "1\ns3cr3t-value-42 kept\n",
        "{}",
        stderr(&out)
    );
    // None of the command's signals is blocked, and none ignored that a
    // plain child of this test has not ignored too: the agent ignores
    // SIGPIPE and blocks the signals that stop it, and passes on neither.
    let masks = |text: &str| -> (u64, u64) {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .unwrap_or_else(|| panic!("no {name} in {text}"))
        };
        (field("SigBlk:"), field("SigIgn:"))
    };
    let signals = ["-E", "^Sig(Ign|Blk):", "/proc/self/status"];
    let plain = std::process::Command::new("grep")
        .args(signals)
        .output()
        .expect("grep");
    let (_, plain_ignored) = masks(&String::from_utf8(plain.stdout).expect("utf-8"));
    let mut args = vec!["--all", "--", "grep"];
    args.extend(signals);
    let (blocked, ignored) = masks(&env.ok(&run_agent(&key, &args)));
    assert_eq!(blocked, 0, "blocked signals: {blocked:x}");
    let sigpipe = 1u64 << (nix::libc::SIGPIPE - 1);
    assert_eq!(ignored & sigpipe, 0, "SIGPIPE is ignored");
    assert_eq!(ignored & !plain_ignored, 0, "ignored: {ignored:x}");
    // In the client's directory, in a process group of its own.
    let dir = env.root().join("work dir");
    fs::create_dir_all(&dir).expect("mkdir");
    let out = env
        .command(&run_agent(
            &key,
            &["--all", "--", "sh", "-c", "pwd; ps -o pgid= -p $$; echo $$"],
        ))
        .current_dir(&dir)
        .output()
        .expect("run");
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout)
        .expect("utf-8")
        .lines()
        .map(str::trim)
        .collect();
    assert_eq!(lines.len(), 3, "{}", stderr(&out));
    assert_eq!(lines[0], dir.display().to_string());
    assert_eq!(lines[1], lines[2], "its own process group");
    // Relative paths in the 126/127 errors are looked at from there too,
    // not from the agent's directory.
    env.write(&dir.join("tool"), "#!/bin/sh\n", 0o644);
    let in_dir = |args: &[&str]| {
        env.command(&run_agent(&key, args))
            .current_dir(&dir)
            .output()
            .expect("run")
    };
    let out = in_dir(&["--all", "--", "./tool"]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("ov: error: cannot run ./tool: ./tool is not executable\n"),
        "{}",
        stderr(&out)
    );
    assert_eq!(hints(&out), ["chmod +x ./tool"]);
    let out = in_dir(&["--all", "--", "tool"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert_eq!(
        hints(&out),
        ["ov run --agent ... -- ./tool   # the file in the current directory: give its path"]
    );
    // A directory on PATH the client cannot search is passed over, as a
    // shell does; a file it finds but cannot run is 126.
    let out = env
        .command(&run_agent(&key, &["--all", "--", "true"]))
        .env("PATH", format!("/nonexistent/dir:{path}"))
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    env.write(&bin.join("not-executable"), "#!/bin/sh\n", 0o644);
    let out = env
        .command(&run_agent(&key, &["--all", "--", "not-executable"]))
        .env("PATH", &path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
}

/// The notification socket systemd gives a `Type=notify` service, made
/// here: `READY=1` once the agent listens in the foreground; none from the
/// daemon a plain `start` leaves behind.
#[test]
fn the_foreground_agent_tells_notify_socket_it_is_ready_and_a_daemon_does_not() {
    use std::os::unix::net::UnixDatagram;
    let (env, key) = setup();
    let path = env.root().join("notify.sock");
    let notify = UnixDatagram::bind(&path).expect("bind");
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let args = start_args(&key);
    let mut fg = args.clone();
    fg.push("--foreground");
    let mut child = env
        .command(&fg)
        .env("NOTIFY_SOCKET", &path)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let _agent = Agent {
        pid: i32::try_from(child.id()).expect("pid"),
    };
    let mut buf = [0u8; 512];
    let n = notify.recv(&mut buf).expect("a notification");
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        format!("READY=1\nSTATUS=listening on {}", socket(&env).display())
    );
    // Clients can connect once it says so.
    env.ok(&["agent", "status", "--machine-key", &key]);
    env.ok(&["agent", "stop"]);
    let n = notify.recv(&mut buf).expect("stopping");
    assert_eq!(String::from_utf8_lossy(&buf[..n]), "STOPPING=1");
    assert!(child.wait().expect("wait").success());
    // Daemonized: started and answering, and nothing was sent.
    let out = env
        .command(&args)
        .env("NOTIFY_SOCKET", &path)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let _daemon = started(&stdout(&out));
    notify.set_nonblocking(true).expect("nonblocking");
    let got = notify.recv(&mut buf);
    assert!(
        got.as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "the daemon notified: {:?}",
        got.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    );
}

#[test]
fn the_agent_dumps_no_core_and_its_commands_keep_their_limit() {
    let (env, key) = setup();
    // Started where core files are on (4096 bytes, no hard limit).
    let ov = env.command(&start_args(&key));
    let out = wrapped(&["prlimit", "--core=4096:unlimited", "--"], &ov)
        .output()
        .expect("prlimit (util-linux)");
    assert!(out.status.success(), "{}", stderr(&out));
    let agent = started(&stdout(&out));
    let own = fs::read_to_string(format!("/proc/{}/limits", agent.pid)).expect("limits");
    assert_eq!(core_limits(&own), ["0", "unlimited"]);
    // The command it starts gets the limit the agent started with.
    let theirs = env.ok(&run_agent(
        &key,
        &["--all", "--", "cat", "/proc/self/limits"],
    ));
    assert_eq!(core_limits(&theirs), ["4096", "unlimited"]);
}

#[test]
fn a_value_changed_while_the_agent_runs_is_the_one_the_next_command_gets() {
    let (env, key) = setup();
    let _agent = start(&env, &key, &[]);
    let show = [
        "--secrets",
        "API_KEY",
        "--",
        "sh",
        "-c",
        "echo \"$API_KEY\"",
    ];
    assert_eq!(env.ok(&run_agent(&key, &show)), "s3cr3t-value-42\n");
    // Setting a value seals the bundle again; the agent reads the new one.
    // Same length, so only the file's identity tells them apart.
    env.ov(&[
        "secrets",
        "set",
        "--app",
        "myapp",
        "--env",
        "production",
        "API_KEY",
    ])
    .write_stdin("s3cr3t-value-43")
    .assert()
    .success();
    assert_eq!(env.ok(&run_agent(&key, &show)), "s3cr3t-value-43\n");
    // A bundle removed is an error, not the value the agent saw before.
    let bundle = env.root().join("data/ov/bundles/myapp/production.age");
    fs::remove_file(&bundle).expect("remove the bundle");
    let out = env.run(&run_agent(&key, &show));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("ov: error: cannot open the bundle"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bytes_that_are_not_utf8_reach_the_command_unchanged() {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let (env, key) = setup();
    let _agent = start(&env, &key, &[]);
    let odd = std::ffi::OsString::from_vec(b"caf\xe9 \"$(x)\" `y` {\"hex\": \"41\"}".to_vec());
    let dir = env.root().join(std::ffi::OsStr::from_bytes(b"dir-\xff"));
    fs::create_dir_all(&dir).expect("mkdir");
    let mut cmd = env.command(&run_agent(
        &key,
        &[
            "--all",
            "--",
            "sh",
            "-c",
            "printf '%s|%s|' \"$1\" \"$ODD\"; pwd",
            "sh",
        ],
    ));
    cmd.arg(&odd).env("ODD", &odd).current_dir(&dir);
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let mut want = odd.as_bytes().to_vec();
    want.push(b'|');
    want.extend_from_slice(odd.as_bytes());
    want.push(b'|');
    want.extend_from_slice(dir.as_os_str().as_bytes());
    want.push(b'\n');
    assert_eq!(out.stdout, want);
}

#[test]
fn a_client_without_the_key_is_told_the_file_the_agent_was_started_with() {
    let (env, key) = setup();
    // Started from the key's directory with a relative path: the hint
    // still names the file whole.
    let dir = Path::new(&key).parent().expect("key dir");
    let name = Path::new(&key).file_name().expect("key name");
    let mut args = start_args(name.to_str().expect("utf-8"));
    args.push("--foreground");
    let mut agent = env
        .command(&args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("agent");
    let _kill = Agent {
        pid: i32::try_from(agent.id()).expect("pid"),
    };
    wait_for("the socket", || {
        std::os::unix::net::UnixStream::connect(socket(&env)).is_ok()
    });
    let out = env.run(&[
        "run",
        "--agent",
        "--app",
        "myapp",
        "--env",
        "production",
        "--all",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("signs with a machine key: pass it"),
        "{}",
        stderr(&out)
    );
    let fix = common::hint_starting(&out, "ov agent status ");
    assert_eq!(
        fix,
        format!(
            "ov agent status --socket {} --machine-key {key}   # the key file the agent was started with; pass it to ov run --agent too",
            socket(&env).display()
        )
    );
    let out = env.paste(&fix);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("running"), "{}", stdout(&out));
    let _ = agent.kill();
    let _ = agent.wait();
}
