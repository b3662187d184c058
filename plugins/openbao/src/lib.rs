//! `openbao`: an ov backend over the KV version 2 HTTP API of OpenBao
//! (and HashiCorp Vault, which speaks the same API).
//!
//! - Mapping: service `myapp/prod`, key `DB_PASSWORD` is the field
//!   `DB_PASSWORD` of the secret `myapp/prod` in the mount `secret`
//!   (`openbao.mount`); a key ending in `@N` reads version N.
//! - Server: `openbao.address`, else `$BAO_ADDR`, else `$VAULT_ADDR`;
//!   with none set the backend is not in use. TLS is verified against
//!   `openbao.cacert` / `$BAO_CACERT` / `$VAULT_CACERT`, else the system
//!   roots; `http://` is refused unless `openbao.allow_http` is on.
//! - Token: the engine's unlock secret, `$BAO_TOKEN`/`$VAULT_TOKEN`,
//!   `openbao.token_file`, or an AppRole login (see [`auth`]).
//! - Faults: each request is bounded by `openbao.timeout`; 5xx answers and
//!   refused connections are tried again with backoff; a sealed or
//!   unreachable server is `unavailable` (transient), so the chain goes on.
//!
//! `docs/openbao.md` is the user's guide.

#![forbid(unsafe_code)]

mod auth;
mod checks;
pub mod config;
mod http;
mod kv;
mod tls;

use std::sync::OnceLock;

use ov_plugin_api::{
    Availability, Backend, BackendError, CheckDecl, CheckReport, Context, Description, EntryList,
    EntryRef, ErrorKind, Secret, UnlockSpec,
};
use serde::Deserialize;

use crate::auth::{Source, Token};
use crate::config::Config;
use crate::http::{Method, Reply, Server};

pub const NAME: &str = "openbao";
/// Below the local stores (config is 40): a miss everywhere on the
/// machine asks the server.
pub const PRIORITY: u32 = 50;

#[derive(Debug, Default)]
pub struct OpenBaoBackend;

/// A configured server and the token to use with it.
pub(crate) struct Session {
    pub server: Server,
    pub token: Token,
    /// The mount check's outcome, asked once.
    mount_ok: OnceLock<Result<(), BackendError>>,
}

/// An answer the backend did not expect, with the server's own words.
pub(crate) fn unexpected(status: u16, reply: &Reply, what: &str) -> BackendError {
    let errors = reply.errors();
    let kind = if status >= 500 {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Other
    };
    let mut e = BackendError::of(
        kind,
        format!(
            "OpenBao answered {status} to {what}{}",
            if errors.is_empty() {
                String::new()
            } else {
                format!(": {errors}")
            }
        ),
    );
    if status >= 500 {
        e = e.transient().hint("ov doctor openbao");
    }
    e
}

/// The server's state as `sys/health` tells it (no token needed).
#[derive(Deserialize, Debug, Default)]
pub(crate) struct Health {
    #[serde(default)]
    pub initialized: bool,
    #[serde(default)]
    pub sealed: bool,
    #[serde(default)]
    pub standby: bool,
    #[serde(default)]
    pub version: String,
}

impl Server {
    /// The server's state; needs no token.
    pub(crate) fn health(&self) -> Result<Health, BackendError> {
        let reply = self.call_root(Method::Get, crate::http::HEALTH)?;
        if reply.status != 200 {
            return Err(unexpected(reply.status, &reply, "a health check"));
        }
        reply.json("a health check")
    }
}

/// Why a server in this state cannot serve, when it cannot.
pub(crate) fn health_problem(h: &Health, server: &Server) -> Option<BackendError> {
    let at = server.config.target();
    if !h.initialized {
        Some(
            BackendError::of(
                ErrorKind::Unavailable,
                format!("OpenBao at {at} is not initialised"),
            )
            .with_problem("uninitialised")
            .hint(format!(
                "bao operator init -address={}",
                server.config.address
            )),
        )
    } else if h.sealed {
        Some(
            BackendError::of(ErrorKind::Unavailable, format!("OpenBao at {at} is sealed"))
                .with_problem("sealed")
                .transient()
                .hint(format!(
                    "bao operator unseal {}   # once per unseal key share",
                    server.config.server_flags()
                )),
        )
    } else {
        None
    }
}

impl Session {
    /// The session for `ctx`: `Ok(None)` when no server is configured.
    fn open(ctx: &Context) -> Result<Option<Session>, BackendError> {
        let Some(config) = Config::from_context(ctx)? else {
            return Ok(None);
        };
        let server = Server::new(config)?;
        let token = auth::token(&server, ctx)?.ok_or_else(|| {
            BackendError::of(
                ErrorKind::Locked,
                format!("no OpenBao token for {}", server.config.target()),
            )
            .with_problem("no_token")
            .hint("export BAO_TOKEN=…   # or: ov settings set openbao.token_file ~/.config/ov/openbao-token")
        })?;
        auth::keep_fresh(&server, ctx, &token);
        Ok(Some(Session {
            server,
            token,
            mount_ok: OnceLock::new(),
        }))
    }

    /// One authenticated request. A 403 is told apart: a token the server
    /// does not know (expired, revoked, mistyped) or a path its policy
    /// does not allow; a 503 from a sealed server says so.
    pub(crate) fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Reply, BackendError> {
        let reply = self
            .server
            .call(method, path, Some(&self.token.secret), body)?;
        match reply.status {
            403 => Err(self.refused(path, &reply)),
            503 => Err(match self.server.health() {
                Ok(h) => health_problem(&h, &self.server)
                    .unwrap_or_else(|| unexpected(503, &reply, path)),
                Err(e) => e,
            }),
            _ => Ok(reply),
        }
    }

    fn refused(&self, path: &str, reply: &Reply) -> BackendError {
        match auth::lookup(&self.server, &self.token.secret) {
            Ok(Some(_)) => BackendError::of(
                ErrorKind::Permissions,
                format!(
                    "OpenBao denied {path}: the token's policy does not allow it ({})",
                    reply.errors()
                ),
            )
            .with_problem("denied")
            .hint(format!(
                "bao token capabilities {}",
                path.split('?').next().unwrap_or(path)
            ))
            .hint("ov doctor openbao.policy"),
            Ok(None) => self.bad_token(),
            Err(e) => e,
        }
    }

    /// The token is not (or no longer) valid.
    fn bad_token(&self) -> BackendError {
        let at = self.server.config.target();
        let source = &self.token.source;
        let message = format!("{source} is not valid on {at}: it expired, was revoked or is wrong");
        match source {
            Source::Unlock => BackendError::of(ErrorKind::WrongPassword, message),
            Source::Env(var) => BackendError::of(ErrorKind::Permissions, message).hint(format!(
                "export {var}=$(bao login -token-only {})   # or unset {var}",
                self.server.config.bao_flags()
            )),
            Source::File(path) => BackendError::of(ErrorKind::Permissions, message).hint(format!(
                "bao login -token-only {} > {}",
                self.server.config.bao_flags(),
                ov_plugin_support::shell_quote(path)
            )),
            Source::Reference(r) => BackendError::of(ErrorKind::Permissions, message).hint(
                format!(
                    "bao login -token-only {} | ov secrets set {}   # a fresh token where {r} points",
                    self.server.config.bao_flags(),
                    r.trim_start_matches("ov://")
                        .rsplit_once('/')
                        .map(|(s, k)| format!("{s} {k}"))
                        .unwrap_or_default()
                ),
            ),
            Source::AppRole => {
                BackendError::of(ErrorKind::Permissions, message).hint("ov doctor openbao.token")
            }
        }
        .with_problem("bad_token")
    }
}

/// Run `op` on the session, or answer `quiet` when no server is set.
/// An AppRole token the server no longer knows is dropped and the login
/// done again, once.
fn with_session<T>(
    ctx: &Context,
    quiet: impl FnOnce() -> T,
    op: impl Fn(&Session) -> Result<T, BackendError>,
) -> Result<T, BackendError> {
    let Some(session) = Session::open(ctx)? else {
        return Ok(quiet());
    };
    match op(&session) {
        Err(e) if e.is("bad_token") && session.token.source == Source::AppRole => {
            auth::forget(&session.server, ctx);
            match Session::open(ctx)? {
                Some(fresh) => op(&fresh),
                None => Ok(quiet()),
            }
        }
        other => other,
    }
}

impl Backend for OpenBaoBackend {
    fn describe(&self) -> Description {
        Description {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "OpenBao / Vault KV version 2 over HTTPS".into(),
            priority: PRIORITY,
            writable: true,
            listable: true,
            needs_unlock: false,
            settings: config::specs(),
            unlock: Some(UnlockSpec {
                label: "OpenBao token".into(),
                env: "BAO_TOKEN".into(),
                cache_setting: None,
                cache_timeout_setting: None,
                legacy_cache_names: Vec::new(),
            }),
            ..Description::default()
        }
    }

    fn probe(&self, ctx: &Context) -> Availability {
        let config = match Config::from_context(ctx) {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Availability::unavailable(
                    "no server set (openbao.address, $BAO_ADDR or $VAULT_ADDR)",
                );
            }
            Err(e) => return Availability::unavailable(e.message),
        };
        let server = match Server::new(config) {
            Ok(s) => s,
            Err(e) => return Availability::unavailable(e.message),
        };
        match server.health() {
            Ok(h) => match health_problem(&h, &server) {
                None => Availability::Available {
                    location: Some(server.config.target()),
                },
                Some(e) => Availability::Unavailable {
                    reason: e.message,
                    transient: e.transient,
                },
            },
            Err(e) => Availability::Unavailable {
                reason: e.message,
                transient: e.transient,
            },
        }
    }

    fn get(&self, ctx: &Context, entry: &EntryRef) -> Result<Option<Secret>, BackendError> {
        with_session(ctx, || None, |s| s.get(entry))
    }

    fn set(&self, ctx: &Context, entry: &EntryRef, value: &Secret) -> Result<(), BackendError> {
        let Some(()) = with_session(ctx, || None, |s| s.set(entry, value).map(Some))? else {
            return Err(BackendError::new("no OpenBao server is set")
                .hint("ov settings set openbao.address https://HOST:8200"));
        };
        Ok(())
    }

    fn delete(&self, ctx: &Context, entry: &EntryRef) -> Result<bool, BackendError> {
        with_session(ctx, || false, |s| s.delete(entry))
    }

    fn list(&self, ctx: &Context, service: Option<&str>) -> Result<EntryList, BackendError> {
        match with_session(ctx, Vec::new, |s| s.list(service)) {
            Ok(entries) => Ok(entries.into()),
            // A token that may read but not list: say what was not seen.
            Err(e) if e.is("denied") => Ok(EntryList {
                entries: Vec::new(),
                notices: vec![format!("openbao not listed: {}", e.message)],
            }),
            Err(e) => Err(e),
        }
    }

    fn unlock_target(&self, ctx: &Context) -> Option<String> {
        Config::from_context(ctx).ok().flatten().map(|c| c.target())
    }

    fn verify_unlock(&self, ctx: &Context) -> Result<(), BackendError> {
        with_session(
            ctx,
            || (),
            |s| match auth::lookup(&s.server, &s.token.secret)? {
                Some(_) => Ok(()),
                None => Err(s.bad_token()),
            },
        )
    }

    fn declare_checks(&self) -> Vec<CheckDecl> {
        checks::declare()
    }

    fn run_check(&self, ctx: &Context, id: &str) -> Vec<CheckReport> {
        checks::run(ctx, id)
    }
}

ov_plugin_api::export_plugin!(OpenBaoBackend);
