//! Which token a request carries, and where it came from (so an error can
//! say which one failed): the engine's unlock secret, `BAO_TOKEN` or
//! `VAULT_TOKEN`, a token file, or an AppRole login whose token is kept
//! in a private file and renewed while it is renewable.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ov_plugin_api::{BackendError, Context, ErrorKind, Secret};
use ov_plugin_support::check_private_file;
use serde::{Deserialize, Serialize};

use crate::config::Cred;
use crate::http::{Method, Server};

/// Where the token in use came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The engine's unlock chain (its variable, its cache or a prompt).
    Unlock,
    Env(&'static str),
    File(PathBuf),
    /// An entry of another backend, named by this reference setting.
    Reference(String),
    AppRole,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Unlock => f.write_str("the OpenBao token ov was given"),
            Source::Env(v) => write!(f, "the token in ${v}"),
            Source::File(p) => write!(f, "the token in {}", p.display()),
            Source::Reference(r) => write!(f, "the token {r} names"),
            Source::AppRole => f.write_str("the AppRole login's token"),
        }
    }
}

#[derive(Debug)]
pub struct Token {
    pub secret: Secret,
    pub source: Source,
}

/// Read a private file (owner only, 0600) holding one line: a token, a
/// role_id or a secret_id.
pub fn read_private(path: &Path, what: &str) -> Result<Secret, BackendError> {
    match check_private_file(path) {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            return Err(BackendError::new(format!(
                "the {what} file {} does not exist",
                path.display()
            ))
            .with_problem("missing_file"));
        }
        Ok(Err(problem)) => {
            return Err(BackendError::of(ErrorKind::Permissions, problem.message())
                .hint(problem.fix())
                .with_problem("file_permissions"));
        }
        Err(e) => return Err(BackendError::from(e)),
    }
    let bytes = ov_plugin_api::zeroize::Zeroizing::new(
        ov_plugin_support::read_regular(path).map_err(BackendError::from)?,
    );
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        BackendError::of(
            ErrorKind::Corrupt,
            format!("the {what} file {} is not text", path.display()),
        )
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(BackendError::new(format!(
            "the {what} file {} is empty",
            path.display()
        )));
    }
    Ok(Secret::from(value))
}

/// The value the engine read for reference setting `setting`.
fn referenced(ctx: &Context, setting: &str, what: &str) -> Result<Secret, BackendError> {
    ctx.credentials.get(setting).cloned().ok_or_else(|| {
        BackendError::new(format!(
            "{setting} is set, but ov did not read the {what} it names (an engine older than this backend?)"
        ))
        .with_problem("reference_unread")
        .hint(format!("ov settings unset {setting}"))
    })
}

/// A credential from its file or its reference.
fn read_cred(ctx: &Context, cred: &Cred, what: &str) -> Result<Secret, BackendError> {
    match cred {
        Cred::File(path) => read_private(path, what),
        Cred::Ref(setting) => referenced(ctx, setting, what),
    }
}

/// The token to use, or `None` when no source has one (the engine's
/// unlock chain is the last resort: its variable, cache, or prompt).
pub fn token(server: &Server, ctx: &Context) -> Result<Option<Token>, BackendError> {
    let from_env = ["BAO_TOKEN", "VAULT_TOKEN"].into_iter().find_map(|var| {
        let v = std::env::var(var).ok()?;
        (!v.trim().is_empty()).then(|| (var, Secret::from(v.trim())))
    });
    if let Some(secret) = &ctx.unlock {
        // The engine's unlock chain may have taken it from that variable:
        // then the variable is what to fix.
        let source = match &from_env {
            Some((var, v)) if v.expose() == secret.expose() => Source::Env(var),
            _ => Source::Unlock,
        };
        return Ok(Some(Token {
            secret: secret.clone(),
            source,
        }));
    }
    if let Some((var, secret)) = from_env {
        return Ok(Some(Token {
            secret,
            source: Source::Env(var),
        }));
    }
    if let Some(path) = &server.config.token_file {
        return Ok(Some(Token {
            secret: read_private(path, "token")?,
            source: Source::File(path.clone()),
        }));
    }
    if ctx.setting_str(crate::config::TOKEN_REF).is_some() {
        return referenced(ctx, crate::config::TOKEN_REF, "token").map(|secret| {
            Some(Token {
                secret,
                source: Source::Reference(
                    ctx.setting_str(crate::config::TOKEN_REF)
                        .unwrap_or_default()
                        .to_owned(),
                ),
            })
        });
    }
    if let Some((role, secret)) = &server.config.approle {
        return approle(server, ctx, role, secret).map(Some);
    }
    Ok(None)
}

/// What ov last learnt of a token it was handed (the token itself is not
/// kept): enough to renew a renewable token near its expiry without a
/// lookup on every command.
#[derive(Serialize, Deserialize)]
struct Seen {
    /// Unix seconds; 0: never expires.
    expires: u64,
    /// Its lease length, to decide what "near expiry" is.
    ttl: u64,
    renewable: bool,
}

/// Less than a third of its lease left, or a minute.
fn near_expiry(expires: u64, ttl: u64) -> bool {
    expires != 0 && expires.saturating_sub(now()) < (ttl / 3).max(60)
}

fn state_dir(ctx: &Context) -> PathBuf {
    ctx.runtime_dir
        .as_ref()
        .map(|d| d.join("ov"))
        .unwrap_or_else(|| ctx.data_dir.clone())
}

fn seen_path(server: &Server, ctx: &Context, token: &Secret) -> PathBuf {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [
        server.config.address.as_str(),
        server.config.namespace.as_deref().unwrap_or(""),
        token.expose(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    state_dir(ctx).join(format!("openbao-token-{name}.json"))
}

fn read_kept<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    if !matches!(check_private_file(path), Ok(Ok(true))) {
        return None;
    }
    let bytes = ov_plugin_api::zeroize::Zeroizing::new(ov_plugin_support::read_regular(path).ok()?);
    serde_json::from_slice(&bytes).ok()
}

/// Renew a token ov was handed when it is renewable and near expiry, at
/// the cost of one lookup the first time ov sees it. Best effort: a
/// token that fails here fails the request after it, with its reason.
pub fn keep_fresh(server: &Server, ctx: &Context, token: &Token) {
    if token.source == Source::AppRole {
        return; // renewed where it is kept (below)
    }
    let path = seen_path(server, ctx, &token.secret);
    let seen = match read_kept::<Seen>(&path) {
        Some(s) => s,
        None => match lookup(server, &token.secret) {
            Ok(Some(l)) => Seen {
                expires: if l.ttl == 0 { 0 } else { now() + l.ttl },
                ttl: l.creation_ttl.max(l.ttl),
                renewable: l.renewable,
            },
            _ => return,
        },
    };
    let seen = if seen.renewable && near_expiry(seen.expires, seen.ttl) {
        match renew(server, &token.secret) {
            Ok(k) => Seen {
                expires: k.expires,
                ttl: k.ttl,
                renewable: k.renewable,
            },
            Err(_) => return,
        }
    } else {
        seen
    };
    if let Ok(bytes) = serde_json::to_vec(&seen) {
        let _ = ov_plugin_support::write_atomic(&path, &bytes, Some(0o600));
    }
}

/// A token AppRole issued, as kept between runs.
#[derive(Serialize, Deserialize)]
struct Kept {
    token: Secret,
    /// Unix seconds when it expires; 0: never.
    expires: u64,
    /// Its lease length in seconds, to decide what "near expiry" is.
    ttl: u64,
    renewable: bool,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Where an AppRole token is kept: under the runtime directory (gone at
/// logout or reboot), else the data directory, one file per server,
/// namespace and role.
fn kept_path(server: &Server, ctx: &Context, role_id: &Secret) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    server.config.address.hash(&mut h);
    server.config.namespace.hash(&mut h);
    server.config.approle_mount.hash(&mut h);
    role_id.expose().hash(&mut h);
    state_dir(ctx).join(format!("openbao-approle-{:016x}.json", h.finish()))
}

#[derive(Deserialize)]
struct AuthReply {
    auth: AuthInfo,
}

#[derive(Deserialize)]
struct AuthInfo {
    client_token: Secret,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}

fn approle(
    server: &Server,
    ctx: &Context,
    role_file: &Cred,
    secret_file: &Cred,
) -> Result<Token, BackendError> {
    let role_id = read_cred(ctx, role_file, "AppRole role_id")?;
    let path = kept_path(server, ctx, &role_id);
    if let Some(kept) = read_kept::<Kept>(&path) {
        if !near_expiry(kept.expires, kept.ttl) {
            return Ok(Token {
                secret: kept.token,
                source: Source::AppRole,
            });
        }
        if kept.renewable
            && kept.expires > now()
            && let Ok(renewed) = renew(server, &kept.token)
        {
            keep(&path, &renewed)?;
            return Ok(Token {
                secret: renewed.token,
                source: Source::AppRole,
            });
        }
    }
    let secret_id = read_cred(ctx, secret_file, "AppRole secret_id")?;
    let kept = login(server, &role_id, &secret_id)?;
    keep(&path, &kept)?;
    Ok(Token {
        secret: kept.token,
        source: Source::AppRole,
    })
}

fn kept_from(info: AuthInfo) -> Kept {
    Kept {
        expires: if info.lease_duration == 0 {
            0
        } else {
            now() + info.lease_duration
        },
        ttl: info.lease_duration,
        renewable: info.renewable,
        token: info.client_token,
    }
}

fn login(server: &Server, role_id: &Secret, secret_id: &Secret) -> Result<Kept, BackendError> {
    #[derive(Serialize)]
    struct Login<'a> {
        role_id: &'a Secret,
        secret_id: &'a Secret,
    }
    let body = ov_plugin_api::zeroize::Zeroizing::new(
        serde_json::to_vec(&Login { role_id, secret_id })
            .map_err(|e| BackendError::of(ErrorKind::Internal, e.to_string()))?,
    );
    let mount = &server.config.approle_mount;
    let reply = server.call(
        Method::Post,
        &format!("auth/{mount}/login"),
        None,
        Some(&body),
    )?;
    match reply.status {
        200 => Ok(kept_from(
            reply.json::<AuthReply>("the AppRole login")?.auth,
        )),
        400 | 403 => Err(BackendError::of(
            ErrorKind::Permissions,
            format!(
                "the AppRole login at auth/{mount} was refused: {}",
                reply.errors()
            ),
        )
        .with_problem("approle_refused")
        .hint("ov doctor openbao.token")),
        404 => Err(BackendError::new(format!(
            "there is no AppRole auth method at auth/{mount} on {}",
            server.config.address
        ))
        .hint("ov settings set openbao.approle_mount MOUNT   # where AppRole is enabled")),
        s => Err(crate::unexpected(s, &reply, "the AppRole login")),
    }
}

fn renew(server: &Server, token: &Secret) -> Result<Kept, BackendError> {
    let reply = server.call(Method::Post, "auth/token/renew-self", Some(token), None)?;
    if reply.status != 200 {
        return Err(crate::unexpected(
            reply.status,
            &reply,
            "renewing the token",
        ));
    }
    Ok(kept_from(
        reply.json::<AuthReply>("renewing the token")?.auth,
    ))
}

fn keep(path: &Path, kept: &Kept) -> Result<(), BackendError> {
    let bytes = ov_plugin_api::zeroize::Zeroizing::new(
        serde_json::to_vec(kept)
            .map_err(|e| BackendError::of(ErrorKind::Internal, e.to_string()))?,
    );
    ov_plugin_support::write_atomic(path, &bytes, Some(0o600))?;
    Ok(())
}

/// Forget a kept AppRole token (the server refused it: revoked).
pub fn forget(server: &Server, ctx: &Context) {
    if let Some((role_file, _)) = &server.config.approle
        && let Ok(role_id) = read_cred(ctx, role_file, "AppRole role_id")
    {
        let _ = std::fs::remove_file(kept_path(server, ctx, &role_id));
    }
}

/// What the server says about a token (`auth/token/lookup-self`).
#[derive(Deserialize, Debug)]
pub struct Lookup {
    /// Seconds left; 0: does not expire.
    #[serde(default)]
    pub ttl: u64,
    #[serde(default)]
    pub creation_ttl: u64,
    #[serde(default)]
    pub renewable: bool,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub display_name: String,
}

/// `Ok(None)`: the server does not know the token (expired or revoked).
pub fn lookup(server: &Server, token: &Secret) -> Result<Option<Lookup>, BackendError> {
    #[derive(Deserialize)]
    struct Reply {
        data: Lookup,
    }
    let reply = server.call(Method::Get, "auth/token/lookup-self", Some(token), None)?;
    match reply.status {
        200 => Ok(Some(reply.json::<Reply>("a token lookup")?.data)),
        403 => Ok(None),
        s => Err(crate::unexpected(s, &reply, "looking up the token")),
    }
}
