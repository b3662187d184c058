//! `ov systemd credentials`: drop-ins that systemd itself verifies, with
//! values that the real `systemd-creds decrypt` gives back exactly.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{TestEnv, stderr, stdout};

/// The credentials of a drop-in, each `(name, base64 of the encrypted
/// credential)`, the form `systemd-creds decrypt` reads.
fn credentials(drop_in: &str) -> Vec<(String, Vec<u8>)> {
    let joined = drop_in.replace("\\\n", "");
    joined
        .lines()
        .filter_map(|line| line.strip_prefix("SetCredentialEncrypted="))
        .map(|rest| {
            let (name, blob) = rest.split_once(':').expect("NAME: blob");
            let blob: String = blob.chars().filter(|c| !c.is_whitespace()).collect();
            (name.to_owned(), blob.into_bytes())
        })
        .collect()
}

fn decrypt(env: &TestEnv, name: &str, blob: &[u8]) -> String {
    let file = env.root().join(format!("{name}.cred"));
    std::fs::write(&file, blob).expect("write");
    let out = Command::new("systemd-creds")
        .args(["decrypt", &format!("--name={name}")])
        .arg(&file)
        .arg("-")
        .output()
        .expect("systemd-creds");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn a_drop_in_that_systemd_verifies_and_decrypts_to_the_store_values() {
    let env = TestEnv::new();
    env.run_stdin(
        &["secrets", "set", "myapp/prod", "DB"],
        "p@ss \"w'rd\" $HOME\n",
    );
    let file = env.root().join("app.env");
    env.write(&file, "DB=ov://myapp/prod/DB\nMODE=production\n", 0o644);
    let units = env.root().join("units");
    std::fs::create_dir(&units).expect("mkdir");
    env.write(
        &units.join("myapp.service"),
        "[Unit]\nDescription=test\n[Service]\nExecStart=/bin/sh -c 'cat \"$CREDENTIALS_DIRECTORY/DB\"'\n",
        0o644,
    );
    let out = env.run(&[
        "systemd",
        "credentials",
        "--env-file",
        file.to_str().unwrap(),
        "--unit",
        "myapp",
        "--dir",
        units.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("next: systemctl daemon-reload && systemctl restart myapp.service")
    );
    let drop_in = units.join("myapp.service.d/ov-credentials.conf");
    let mode = std::fs::metadata(&drop_in)
        .expect("drop-in")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&drop_in).expect("read");
    assert!(!text.contains("p@ss"), "a value in plaintext: {text}");

    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("myapp.service"))
        .env("SYSTEMD_UNIT_PATH", format!("{}:", units.display()))
        .output()
        .expect("systemd-analyze");
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(
        !stderr(&verify).contains("ov-credentials"),
        "{}",
        stderr(&verify)
    );

    let creds = credentials(&text);
    let names: Vec<&str> = creds.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["DB", "MODE"]);
    assert_eq!(decrypt(&env, "DB", &creds[0].1), "p@ss \"w'rd\" $HOME");
    assert_eq!(decrypt(&env, "MODE", &creds[1].1), "production");
}

#[test]
fn a_missing_reference_or_a_bad_unit_writes_nothing() {
    let env = TestEnv::new();
    let file = env.root().join("app.env");
    env.write(&file, "DB=ov://myapp/prod/NOPE\n", 0o644);
    let units = env.root().join("units");
    let out = env.run(&[
        "systemd",
        "credentials",
        "--env-file",
        file.to_str().unwrap(),
        "--unit",
        "myapp",
        "--dir",
        units.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("so nothing was written"),
        "{}",
        stderr(&out)
    );
    assert!(!units.exists());
    let out = env.run(&[
        "systemd",
        "credentials",
        "--env-file",
        file.to_str().unwrap(),
        "--unit",
        "../etc/x",
        "--dir",
        units.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!units.exists());
}
