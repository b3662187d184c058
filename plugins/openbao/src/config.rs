//! The backend's settings, the environment variables OpenBao's own tools
//! read, and what they make together: where the server is and how to
//! speak to it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ov_plugin_api::{BackendError, Context, ErrorKind, SettingKind, SettingSpec};

pub const ADDRESS: &str = "openbao.address";
pub const MOUNT: &str = "openbao.mount";
pub const NAMESPACE: &str = "openbao.namespace";
pub const CACERT: &str = "openbao.cacert";
pub const ALLOW_HTTP: &str = "openbao.allow_http";
pub const TOKEN_FILE: &str = "openbao.token_file";
pub const ROLE_ID_FILE: &str = "openbao.role_id_file";
pub const SECRET_ID_FILE: &str = "openbao.secret_id_file";
pub const TOKEN_REF: &str = "openbao.token_ref";
pub const ROLE_ID_REF: &str = "openbao.role_id_ref";
pub const SECRET_ID_REF: &str = "openbao.secret_id_ref";
pub const APPROLE_MOUNT: &str = "openbao.approle_mount";
pub const TIMEOUT: &str = "openbao.timeout";

const DEFAULT_MOUNT: &str = "secret";
const DEFAULT_TIMEOUT: u64 = 5;

pub fn specs() -> Vec<SettingSpec> {
    let spec = |name: &str, kind: SettingKind, about: &str, default: Option<&str>| SettingSpec {
        name: name.into(),
        kind,
        about: about.into(),
        default: default.map(str::to_owned),
        binds: None,
    };
    vec![
        spec(
            ADDRESS,
            SettingKind::Text,
            "OpenBao/Vault server URL (else $BAO_ADDR, $VAULT_ADDR); unset: not used",
            None,
        ),
        spec(
            MOUNT,
            SettingKind::Text,
            "the KV version 2 mount that holds ov's secrets",
            Some(DEFAULT_MOUNT),
        ),
        spec(
            NAMESPACE,
            SettingKind::Text,
            "OpenBao namespace (else $BAO_NAMESPACE, $VAULT_NAMESPACE)",
            None,
        ),
        spec(
            CACERT,
            SettingKind::Path,
            "CA certificate (PEM) for the server (else $BAO_CACERT, $VAULT_CACERT, system roots)",
            None,
        ),
        spec(
            ALLOW_HTTP,
            SettingKind::Bool,
            "allow an http:// address (tokens and secrets in clear on the network)",
            Some("false"),
        ),
        spec(
            TOKEN_FILE,
            SettingKind::Path,
            "file holding an OpenBao token (mode 0600); $BAO_TOKEN/$VAULT_TOKEN win",
            None,
        ),
        spec(
            ROLE_ID_FILE,
            SettingKind::Path,
            "AppRole role_id file (mode 0600), with openbao.secret_id_file",
            None,
        ),
        spec(
            SECRET_ID_FILE,
            SettingKind::Path,
            "AppRole secret_id file (mode 0600)",
            None,
        ),
        spec(
            TOKEN_REF,
            SettingKind::Reference,
            "ov://SERVICE/KEY: a token kept in another backend (keyring, kdbx…)",
            None,
        ),
        spec(
            ROLE_ID_REF,
            SettingKind::Reference,
            "ov://SERVICE/KEY: the AppRole role_id kept in another backend",
            None,
        ),
        spec(
            SECRET_ID_REF,
            SettingKind::Reference,
            "ov://SERVICE/KEY: the AppRole secret_id kept in another backend",
            None,
        ),
        spec(
            APPROLE_MOUNT,
            SettingKind::Text,
            "where the AppRole auth method is mounted",
            Some("approle"),
        ),
        spec(
            TIMEOUT,
            SettingKind::Seconds,
            "seconds one request to the server may take",
            Some("5"),
        ),
    ]
}

/// Where a credential is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cred {
    /// A private file.
    File(PathBuf),
    /// A reference setting, whose value the engine hands over in
    /// `Context::credentials`.
    Ref(&'static str),
}

/// Where the server is and how to talk to it.
#[derive(Clone, Debug)]
pub struct Config {
    /// `https://host:port`, no trailing slash.
    pub address: String,
    pub namespace: Option<String>,
    pub mount: String,
    pub cacert: Option<PathBuf>,
    pub allow_http: bool,
    pub timeout: Duration,
    pub token_file: Option<PathBuf>,
    /// The AppRole role_id and secret_id, each from a file or a reference.
    pub approle: Option<(Cred, Cred)>,
    pub approle_mount: String,
}

fn setting_or_env(ctx: &Context, name: &str, vars: &[&str]) -> Option<String> {
    ctx.setting_str(name)
        .map(str::to_owned)
        .or_else(|| vars.iter().find_map(|v| std::env::var(v).ok()))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn path_setting(ctx: &Context, name: &str) -> Option<PathBuf> {
    ctx.setting_str(name)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// The address as given, when there is one: `None` means the backend is
/// not in use here.
pub fn address(ctx: &Context) -> Option<String> {
    setting_or_env(ctx, ADDRESS, &["BAO_ADDR", "VAULT_ADDR"])
}

impl Config {
    /// The configuration, `Ok(None)` when no address is set, an error for
    /// an address, mount or namespace that cannot be used.
    pub fn from_context(ctx: &Context) -> Result<Option<Config>, BackendError> {
        let Some(raw) = address(ctx) else {
            return Ok(None);
        };
        let allow_http = ctx
            .settings
            .get(ALLOW_HTTP)
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let address = raw.trim_end_matches('/').to_owned();
        if let Some(rest) = address.strip_prefix("http://") {
            if !allow_http {
                return Err(BackendError::of(
                    ErrorKind::InvalidInput,
                    format!(
                        "refusing the OpenBao address {address}: plain http sends the token and every secret unencrypted"
                    ),
                )
                .with_problem("plain_http")
                .hint(format!("ov settings set openbao.address https://{rest}"))
                .hint("ov settings set openbao.allow_http true   # only on a trusted network or loopback"));
            }
        } else if !address.starts_with("https://") {
            return Err(BackendError::of(
                ErrorKind::InvalidInput,
                format!("the OpenBao address {address} is not an https:// URL"),
            )
            .with_problem("bad_address")
            .hint("ov settings set openbao.address https://HOST:8200"));
        }
        let mount = ctx
            .setting_str(MOUNT)
            .unwrap_or(DEFAULT_MOUNT)
            .trim_matches('/')
            .to_owned();
        check_path("mount", &mount)?;
        let namespace = setting_or_env(ctx, NAMESPACE, &["BAO_NAMESPACE", "VAULT_NAMESPACE"])
            .map(|ns| ns.trim_matches('/').to_owned());
        if let Some(ns) = &namespace {
            check_path("namespace", ns)?;
        }
        let cacert = path_setting(ctx, CACERT).or_else(|| {
            ["BAO_CACERT", "VAULT_CACERT"]
                .iter()
                .find_map(|v| std::env::var_os(v).filter(|s| !s.is_empty()))
                .map(PathBuf::from)
        });
        let timeout = ctx
            .settings
            .get(TIMEOUT)
            .and_then(serde_json::Value::as_u64)
            .filter(|&s| s > 0)
            .unwrap_or(DEFAULT_TIMEOUT);
        let cred = |file: &str, reference: &'static str| {
            path_setting(ctx, file).map(Cred::File).or_else(|| {
                ctx.setting_str(reference)
                    .is_some_and(|v| !v.trim().is_empty())
                    .then_some(Cred::Ref(reference))
            })
        };
        let approle = cred(ROLE_ID_FILE, ROLE_ID_REF).zip(cred(SECRET_ID_FILE, SECRET_ID_REF));
        Ok(Some(Config {
            address,
            namespace,
            mount,
            cacert,
            allow_http,
            timeout: Duration::from_secs(timeout),
            token_file: path_setting(ctx, TOKEN_FILE),
            approle,
            approle_mount: ctx
                .setting_str(APPROLE_MOUNT)
                .unwrap_or("approle")
                .trim_matches('/')
                .to_owned(),
        }))
    }

    /// The flags that point a `bao` command at this server, for fixes
    /// that work when pasted into a shell without `BAO_ADDR`.
    pub fn bao_flags(&self) -> String {
        let mut flags = self.server_flags();
        if let Some(ns) = &self.namespace {
            flags.push_str(&format!(" -namespace={ns}"));
        }
        flags
    }

    /// [`Config::bao_flags`] without the namespace, for the server-wide
    /// `bao operator` commands.
    pub fn server_flags(&self) -> String {
        let mut flags = format!("-address={}", self.address);
        if let Some(ca) = &self.cacert {
            flags.push_str(&format!(" -ca-cert={}", ov_plugin_support::shell_quote(ca)));
        }
        flags
    }

    /// What the engine names the server by: its address and namespace.
    pub fn target(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} (namespace {ns})", self.address),
            None => self.address.clone(),
        }
    }
}

/// Refuse a path that would climb out of where it points (`..`), or has
/// empty or `.` segments.
pub fn check_path(what: &str, path: &str) -> Result<(), BackendError> {
    let bad = path.is_empty()
        || path
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        || path.chars().any(char::is_control);
    if bad {
        return Err(BackendError::of(
            ErrorKind::InvalidInput,
            format!(
                "the {what} {path:?} cannot be an OpenBao path: it needs non-empty segments, none of them `.` or `..`"
            ),
        )
        .with_problem("bad_path"));
    }
    Ok(())
}

/// The certificates in a PEM file, or an error naming the file.
pub fn load_ca(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, BackendError> {
    let bad = |why: String| {
        BackendError::of(
            ErrorKind::InvalidInput,
            format!("cannot use {} as the OpenBao CA: {why}", path.display()),
        )
        .with_problem("bad_cacert")
        .hint(
            "ov settings set openbao.cacert /path/to/ca.pem   # a PEM file with the CA certificate",
        )
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(bad(e.to_string())),
        }
    }
    if certs.is_empty() {
        return Err(bad("it holds no PEM certificate".into()));
    }
    Ok(certs)
}
