//! Prompts through a real pseudo-terminal, driven by `expect`.

mod common;

use common::{TestEnv, expect, stdout};

#[test]
fn set_prompts_twice_without_echo() {
    let env = TestEnv::new();
    let out = expect(
        &env,
        r#"
        spawn $ov secrets set ov/vnc password
        expect "Value for ov/vnc password: "
        send "correct horse\r"
        expect "Again: "
        send "correct horse\r"
        expect "stored ov/vnc password in config"
        expect eof
        catch wait result
        exit [lindex $result 3]
        "#,
    );
    let screen = stdout(&out);
    assert!(out.status.success(), "{screen}");
    assert!(
        !screen.contains("correct horse"),
        "the value was echoed:\n{screen}"
    );
    assert_eq!(
        env.ok(&["secrets", "get", "ov/vnc", "password"]),
        "correct horse\n"
    );
}

#[test]
fn mismatched_entries_store_nothing() {
    let env = TestEnv::new();
    let out = expect(
        &env,
        r#"
        spawn $ov secrets set ov/vnc password
        expect "Value for ov/vnc password: "
        send "one\r"
        expect "Again: "
        send "two\r"
        expect "the two entries differ"
        expect eof
        catch wait result
        exit [lindex $result 3]
        "#,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(!env.credentials().exists());
}

#[test]
fn prompt_still_works_when_stderr_is_redirected() {
    let env = TestEnv::new();
    let log = env.root().join("stderr.log");
    let out = expect(
        &env,
        &format!(
            r#"
        spawn sh -c "exec $ov secrets set s k 2>{}"
        expect "Value for s k: "
        send "v1\r"
        expect "Again: "
        send "v1\r"
        expect eof
        catch wait result
        exit [lindex $result 3]
        "#,
            log.display()
        ),
    );
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(env.ok(&["secrets", "get", "s", "k"]), "v1\n");
}

#[test]
fn ctrl_c_at_the_prompt_stores_nothing() {
    let env = TestEnv::new();
    let out = expect(
        &env,
        r#"
        spawn $ov secrets set ov/vnc password
        expect "Value for ov/vnc password: "
        send "half-typed\003"
        expect "interrupted; nothing was stored"
        expect eof
        catch wait result
        exit [lindex $result 3]
        "#,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(!stdout(&out).contains("half-typed"), "{}", stdout(&out));
    assert!(!env.credentials().exists());
}
