//! `ov doctor openbao`: one check per question, each with its fix.

use ov_plugin_api::{BackendError, CheckDecl, CheckReport, Context, Status};
use ov_plugin_support::{report, with_fix};
use serde::Deserialize;

use crate::auth;
use crate::config::Config;
use crate::http::{Method, Server};
use crate::{Session, health_problem};

const REACHABLE: &str = "openbao.reachable";
const TLS: &str = "openbao.tls";
const SEALED: &str = "openbao.sealed";
const HA: &str = "openbao.ha";
const TOKEN: &str = "openbao.token";
const MOUNT: &str = "openbao.mount";
const POLICY: &str = "openbao.policy";

/// Tokens that cannot be renewed warn with less than this many seconds left.
const NEAR_EXPIRY: u64 = 3600;
/// A server certificate warns with fewer than this many days left.
const CERT_NEAR_EXPIRY_DAYS: i64 = 30;

/// Each check: its id, its title, and the check it runs after.
const CHECKS: &[(&str, &str, Option<&str>)] = &[
    (REACHABLE, "the OpenBao server answers", None),
    (
        TLS,
        "the OpenBao server's certificate is trusted and not about to expire",
        Some(REACHABLE),
    ),
    (SEALED, "the OpenBao server is unsealed", Some(REACHABLE)),
    (HA, "the OpenBao cluster has a leader", Some(SEALED)),
    (TOKEN, "the OpenBao token is valid", Some(SEALED)),
    (MOUNT, "the OpenBao mount is KV version 2", Some(TOKEN)),
    (
        POLICY,
        "the OpenBao token may read and write ov's secrets",
        Some(MOUNT),
    ),
];

pub fn declare() -> Vec<CheckDecl> {
    CHECKS
        .iter()
        .map(|(id, title, after)| {
            let d = CheckDecl::new(*id, *title);
            match after {
                Some(a) => d.after(*a),
                None => d,
            }
        })
        .collect()
}

fn title(id: &str) -> &'static str {
    CHECKS
        .iter()
        .find(|(i, _, _)| *i == id)
        .map_or("", |(_, t, _)| t)
}

fn failed(id: &str, e: &BackendError) -> CheckReport {
    let r = report(id, title(id), Status::Fail, e.message.clone());
    // A command's error sends people here; a finding names the next step.
    match e.hints.iter().find(|h| !h.starts_with("ov doctor")) {
        Some(h) => with_fix(r, h.clone()),
        None => r,
    }
}

pub fn run(ctx: &Context, id: &str) -> Vec<CheckReport> {
    if !CHECKS.iter().any(|(i, _, _)| *i == id) {
        return Vec::new();
    }
    // Not in use here: nothing to check.
    if crate::config::address(ctx).is_none() {
        return Vec::new();
    }
    let config = match Config::from_context(ctx) {
        Ok(Some(c)) => c,
        Ok(None) => return Vec::new(),
        Err(e) if id == REACHABLE => return vec![failed(id, &e)],
        Err(_) => return vec![skip(id, "the address comes first (openbao.reachable)")],
    };
    let server = match Server::new(config) {
        Ok(s) => s,
        Err(e) if id == REACHABLE || id == TLS => return vec![failed(id, &e)],
        Err(_) => return vec![skip(id, "the CA file comes first (openbao.tls)")],
    };
    let health = server.health();
    vec![match id {
        REACHABLE => match health {
            Ok(h) => report(
                id,
                title(id),
                Status::Ok,
                format!(
                    "OpenBao {} at {} answers ({})",
                    h.version,
                    server.config.target(),
                    if h.standby { "standby" } else { "active" }
                ),
            ),
            Err(e) if e.is("tls") => report(
                id,
                title(id),
                Status::Ok,
                format!(
                    "{} answers; TLS failed (openbao.tls)",
                    server.config.address
                ),
            ),
            Err(e) if e.is("unreachable") || e.is("timed_out") => with_fix(
                failed(id, &e),
                format!(
                    "bao status {}   # is the server up? if it listens elsewhere: ov settings set openbao.address https://HOST:8200",
                    server.config.server_flags()
                ),
            ),
            Err(e) => failed(id, &e),
        },
        TLS => tls(&server, health.err()),
        _ => match health {
            Err(_) => skip(id, "the server does not answer (openbao.reachable)"),
            Ok(h) => match (id, health_problem(&h, &server)) {
                (SEALED, None) => report(
                    id,
                    title(id),
                    Status::Ok,
                    format!("{} is unsealed", server.config.target()),
                ),
                (SEALED, Some(e)) => failed(id, &e),
                (_, Some(_)) => skip(id, "the server is sealed (openbao.sealed)"),
                (HA, None) => ha(&server),
                _ => with_token(ctx, id, server),
            },
        },
    }]
}

fn skip(id: &str, why: &str) -> CheckReport {
    report(id, title(id), Status::Skip, why)
}

fn tls(server: &Server, err: Option<BackendError>) -> CheckReport {
    let id = TLS;
    if let Some(rest) = server.config.address.strip_prefix("http://") {
        return with_fix(
            report(
                id,
                title(id),
                Status::Warn,
                format!(
                    "{} is plain http (openbao.allow_http is on): no TLS",
                    server.config.address
                ),
            ),
            format!(
                "ov settings set openbao.address https://{rest}   # once the server's listener has a certificate (tls_cert_file)"
            ),
        );
    }
    match err {
        // An expired certificate: say so, and that renewing it is the fix
        // (not another CA).
        Some(e) if e.is("tls") => match crate::tls::server_expiry(&server.config, &server.roots) {
            Ok(x) if x.left <= 0 => expiry(server, Ok(x)),
            _ => failed(id, &e),
        },
        Some(_) => skip(id, "the server does not answer (openbao.reachable)"),
        None => expiry(
            server,
            crate::tls::server_expiry(&server.config, &server.roots),
        ),
    }
}

/// How long the certificate has left, as a handshake of the check's own
/// (reads never make it) saw it after the API answered over verified TLS
/// (or failed for an expired certificate).
fn expiry(server: &Server, seen: Result<crate::tls::Expiry, String>) -> CheckReport {
    const DAY: i64 = 86_400;
    let id = TLS;
    let (status, finding, fix) = match seen {
        Err(why) => (
            Status::Warn,
            format!(
                "the API answered over TLS, but a second handshake to read the certificate failed: {why}; its expiry is not known"
            ),
            Some(format!(
                "openssl s_client -connect {} </dev/null | openssl x509 -noout -enddate   # read the expiry by hand",
                crate::tls::endpoint(&server.config.address).map_or_else(
                    |_| server.config.address.clone(),
                    |(h, p)| format!("{h}:{p}")
                )
            )),
        ),
        Ok(e) => {
            let renew = format!(
                "pkill -HUP -x bao   # on the server, once its certificate (the listener's tls_cert_file) is renewed: due {}; SIGHUP reloads it",
                e.date
            );
            // To the nearest day: a certificate made for 5 days a moment
            // ago has 5 days left, not 4.
            let when = match (e.left + DAY / 2) / DAY {
                _ if e.left < DAY => "in less than a day".to_owned(),
                1 => "in 1 day".to_owned(),
                d => format!("in {d} days"),
            };
            let verified = match &server.config.cacert {
                Some(ca) => format!("verified against {}", ca.display()),
                None => "verified against the system's root certificates".to_owned(),
            };
            if e.left <= 0 {
                (
                    Status::Fail,
                    format!("the server's certificate expired on {}", e.date),
                    Some(renew),
                )
            } else if e.left < CERT_NEAR_EXPIRY_DAYS * DAY {
                (
                    Status::Warn,
                    format!(
                        "{verified}, but the server's certificate expires on {} ({when})",
                        e.date
                    ),
                    Some(renew),
                )
            } else {
                (
                    Status::Ok,
                    format!("{verified}; the certificate expires on {} ({when})", e.date),
                    None,
                )
            }
        }
    };
    let r = report(id, title(id), status, finding);
    match fix {
        Some(f) => with_fix(r, f),
        None => r,
    }
}

fn ha(server: &Server) -> CheckReport {
    #[derive(Deserialize)]
    struct Leader {
        #[serde(default)]
        ha_enabled: bool,
        #[serde(default)]
        leader_address: String,
        #[serde(default)]
        is_self: bool,
    }
    let id = HA;
    let reply = match server.call_root(Method::Get, "sys/leader") {
        Ok(r) => r,
        Err(e) => return failed(id, &e),
    };
    match reply.json::<Leader>("sys/leader") {
        Ok(l) if !l.ha_enabled => report(id, title(id), Status::Ok, "a single server (no HA)"),
        Ok(l) if l.leader_address.is_empty() => report(
            id,
            title(id),
            Status::Fail,
            "HA is on but no node is the active one: a leader election is under way or the cluster lost its quorum",
        ),
        Ok(l) => report(
            id,
            title(id),
            Status::Ok,
            format!(
                "leader {}{}",
                l.leader_address,
                if l.is_self { " (this node)" } else { "" }
            ),
        ),
        Err(e) => failed(id, &e),
    }
}

fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn with_token(ctx: &Context, id: &str, server: Server) -> CheckReport {
    let token = match auth::token(&server, ctx) {
        Ok(Some(t)) => t,
        Ok(None) if id == TOKEN => {
            return report(
                id,
                title(id),
                Status::Skip,
                "no token at hand (BAO_TOKEN, openbao.token_file, openbao.token_ref, AppRole or the unlock cache)",
            );
        }
        Ok(None) => return skip(id, "no token at hand (openbao.token)"),
        Err(e) if id == TOKEN => return failed(id, &e),
        Err(_) => return skip(id, "the token comes first (openbao.token)"),
    };
    let lookup = auth::lookup(&server, &token.secret);
    let session = Session {
        server,
        token,
        mount_ok: std::sync::OnceLock::new(),
    };
    match (id, lookup) {
        (_, Err(e)) => failed(id, &e),
        (TOKEN, Ok(None)) => failed(id, &session.bad_token()),
        (_, Ok(None)) => skip(id, "the token is not valid (openbao.token)"),
        (TOKEN, Ok(Some(l))) => {
            let finding = format!(
                "{} ({}) is valid: {}, {}renewable, policies {}",
                session.token.source,
                l.display_name,
                match l.ttl {
                    0 => "it never expires".to_owned(),
                    t => format!("{} left", human(t)),
                },
                if l.renewable { "" } else { "not " },
                l.policies.join(", ")
            );
            // A renewable token ov renews itself near its expiry (an
            // AppRole one it also replaces): only one that cannot be
            // renewed runs out.
            if l.ttl != 0 && l.ttl < NEAR_EXPIRY && !l.renewable {
                with_fix(
                    report(id, title(id), Status::Warn, finding),
                    format!(
                        "bao login {}   # this token cannot be renewed: get a new one before it expires",
                        session.server.config.bao_flags()
                    ),
                )
            } else {
                report(id, title(id), Status::Ok, finding)
            }
        }
        (MOUNT, Ok(Some(_))) => match session.check_mount() {
            Ok(()) => report(
                id,
                title(id),
                Status::Ok,
                format!("{}/ is a KV version 2 mount", session.server.config.mount),
            ),
            Err(e) => failed(id, &e),
        },
        (_, Ok(Some(_))) => policy(&session),
    }
}

fn policy(session: &Session) -> CheckReport {
    let id = POLICY;
    let mount = &session.server.config.mount;
    let data = format!("{mount}/data/*");
    let meta = format!("{mount}/metadata/*");
    let body = serde_json::json!({ "paths": [data, meta] }).to_string();
    let reply = match session.call(Method::Post, "sys/capabilities-self", Some(body.as_bytes())) {
        Ok(r) => r,
        Err(e) => return failed(id, &e),
    };
    let caps: serde_json::Value = match reply.json("sys/capabilities-self") {
        Ok(v) => v,
        Err(e) => return failed(id, &e),
    };
    let of = |path: &str| -> Vec<String> {
        caps.get(path)
            .or_else(|| caps.get("data").and_then(|d| d.get(path)))
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (d, m) = (of(&data), of(&meta));
    let has = |caps: &[String], c: &str| caps.iter().any(|x| x == c || x == "root");
    let missing: Vec<String> = ["read", "create", "update"]
        .iter()
        .filter(|c| !has(&d, c))
        .map(|c| format!("{c} on {data}"))
        .chain(
            ["list", "read"]
                .iter()
                .filter(|c| !has(&m, c))
                .map(|c| format!("{c} on {meta}")),
        )
        .collect();
    if missing.is_empty() {
        report(
            id,
            title(id),
            Status::Ok,
            format!("read, write and list on {mount}/"),
        )
    } else {
        with_fix(
            report(
                id,
                title(id),
                Status::Warn,
                format!("the token's policy lacks {}", missing.join(", ")),
            ),
            format!(
                "bao token capabilities {mount}/data/SERVICE   # ask for read, create, update there and list on {mount}/metadata/"
            ),
        )
    }
}
