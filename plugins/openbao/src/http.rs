//! A thin typed client for the few OpenBao endpoints `ov` uses, over
//! ureq (blocking, rustls). Every request has a deadline; a 5xx answer or
//! a refused connection is tried again with backoff inside that budget; a
//! server that never answers costs one timeout, not a hang.

use std::io::Read;
use std::time::{Duration, Instant};

use ov_plugin_api::zeroize::Zeroizing;
use ov_plugin_api::{BackendError, ErrorKind, Secret};

use crate::config::Config;
use crate::tls::Roots;

/// How many times a request is tried on a refused connection: a server
/// that is down stays down, and the chain should go on soon.
const CONNECT_ATTEMPTS: u32 = 3;
/// The first pause between tries; each later one is twice as long, up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// `sys/health` with every state answered 200, so that no state of the
/// server is mistaken for a failed request and tried again.
pub(crate) const HEALTH: &str = "sys/health?standbycode=200&sealedcode=200&uninitcode=200&perfstandbyokcode=200&drsecondarycode=200";

/// The most of a response `ov` reads (a KV secret holds one or more
/// values of at most 1 MiB each, as JSON).
const MAX_BODY: u64 = 16 * 1024 * 1024;

/// One answer: the status and the body, wiped when dropped (it may hold
/// secrets).
pub(crate) struct Reply {
    pub status: u16,
    pub body: Zeroizing<Vec<u8>>,
    /// Where a standby sent the request (a 307 to the active node).
    pub location: Option<String>,
}

impl Reply {
    /// The `errors` the server listed, joined, for a message.
    pub fn errors(&self) -> String {
        #[derive(serde::Deserialize)]
        struct Errors {
            #[serde(default)]
            errors: Vec<String>,
        }
        serde_json::from_slice::<Errors>(&self.body)
            .map(|e| e.errors.join("; "))
            .unwrap_or_default()
    }

    pub fn json<'a, T: serde::Deserialize<'a>>(&'a self, what: &str) -> Result<T, BackendError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            BackendError::of(
                ErrorKind::Corrupt,
                format!("the server's answer to {what} is not what OpenBao sends: {e}"),
            )
        })
    }
}

pub(crate) enum Method {
    Get,
    Post,
    Delete,
}

/// A connection to one server, as the settings describe it.
pub(crate) struct Server {
    agent: ureq::Agent,
    pub config: Config,
    /// What the server's certificate is verified against.
    pub roots: Roots,
}

impl Server {
    pub fn new(config: Config) -> Result<Server, BackendError> {
        let roots = Roots::of(&config)?;
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(roots.for_http())
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(config.timeout))
            .tls_config(tls)
            .https_only(!config.allow_http)
            // A standby's redirect to the active node is followed by hand
            // (below), so that a dead leader's address counts as a leader
            // change to wait out, not as the end of the request.
            .max_redirects(0)
            .user_agent(concat!("ov/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Server {
            agent,
            config,
            roots,
        })
    }

    /// `/v1/<path>` with the token (when given) and the namespace.
    /// `body` is JSON. A 5xx answer other than a sealed server's (a
    /// standby that lost its leader, an election under way) is tried again
    /// with backoff until twice the configured timeout has passed; a
    /// refused connection a few times.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<&[u8]>,
    ) -> Result<Reply, BackendError> {
        self.call_in(method, path, token, body, self.config.namespace.as_deref())
    }

    /// [`Server::call`] outside any namespace, for the server-wide
    /// endpoints (`sys/health`, `sys/leader`) namespaces do not offer.
    pub fn call_root(&self, method: Method, path: &str) -> Result<Reply, BackendError> {
        self.call_in(method, path, None, None, None)
    }

    fn call_in(
        &self,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<&[u8]>,
        namespace: Option<&str>,
    ) -> Result<Reply, BackendError> {
        let url = format!("{}/v1/{path}", self.config.address);
        let deadline = Instant::now() + self.config.timeout * 2;
        let mut pause = FIRST_BACKOFF;
        let mut refused = 0;
        loop {
            let mut outcome = self.once(&method, &url, token, body, namespace);
            let mut redirected = false;
            if let Ok(Reply {
                status: 307 | 308,
                location: Some(to),
                ..
            }) = &outcome
            {
                let to = to.clone();
                redirected = true;
                outcome = self.once(&method, &to, token, body, namespace);
            }
            let again = match &outcome {
                // The active node the standby named is gone: an election
                // is under way.
                Err(Failure::Refused(_)) if redirected => true,
                // A sealed server stays sealed until someone acts.
                Ok(r) if r.status == 503 => !self.is_sealed(),
                Ok(r) => matches!(r.status, 500 | 502 | 504),
                Err(Failure::Refused(_)) => {
                    refused += 1;
                    refused < CONNECT_ATTEMPTS
                }
                Err(_) => false,
            };
            if !again || Instant::now() + pause >= deadline {
                return outcome.map_err(|f| f.error(&self.config.address, self.config.timeout));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_BACKOFF);
        }
    }

    /// Does the server say it is sealed? (No answer: not known to be.)
    fn is_sealed(&self) -> bool {
        #[derive(serde::Deserialize)]
        struct Sealed {
            #[serde(default)]
            sealed: bool,
        }
        let url = format!("{}/v1/{HEALTH}", self.config.address);
        self.once(&Method::Get, &url, None, None, None)
            .ok()
            .and_then(|r| serde_json::from_slice::<Sealed>(&r.body).ok())
            .is_some_and(|s| s.sealed)
    }

    fn once(
        &self,
        method: &Method,
        url: &str,
        token: Option<&Secret>,
        body: Option<&[u8]>,
        namespace: Option<&str>,
    ) -> Result<Reply, Failure> {
        macro_rules! headers {
            ($req:expr) => {{
                let mut req = $req;
                if let Some(t) = token {
                    req = req.header("X-Vault-Token", t.expose());
                }
                if let Some(ns) = namespace {
                    req = req.header("X-Vault-Namespace", ns);
                }
                req
            }};
        }
        let sent = match method {
            Method::Get => headers!(self.agent.get(url)).call(),
            Method::Delete => headers!(self.agent.delete(url)).call(),
            Method::Post => headers!(self.agent.post(url))
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(b"{}")),
        };
        let mut resp = sent.map_err(Failure::from)?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Zeroizing::new(Vec::new());
        resp.body_mut()
            .with_config()
            .limit(MAX_BODY)
            .reader()
            .read_to_end(&mut body)
            .map_err(|e| Failure::Other(e.to_string()))?;
        Ok(Reply {
            status,
            body,
            location,
        })
    }
}

enum Failure {
    Timeout,
    Refused(String),
    /// Why, and whether the certificate was refused for its dates (then
    /// the CA is right and renewing the certificate is the fix).
    Tls(String, bool),
    Other(String),
}

impl From<ureq::Error> for Failure {
    fn from(e: ureq::Error) -> Self {
        match e {
            ureq::Error::Timeout(_) => Failure::Timeout,
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => Failure::Timeout,
            // rustls reports a failed handshake (an untrusted or bad
            // certificate) through the stream as InvalidData.
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                let dated = io
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<rustls::Error>())
                    .is_some_and(out_of_date);
                Failure::Tls(io.to_string(), dated)
            }
            ureq::Error::Io(io) => Failure::Refused(io.to_string()),
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                Failure::Refused(e.to_string())
            }
            ureq::Error::Rustls(ref r) => Failure::Tls(e.to_string(), out_of_date(r)),
            ureq::Error::Tls(_) => Failure::Tls(e.to_string(), false),
            other => Failure::Other(other.to_string()),
        }
    }
}

/// A certificate refused for being past its notAfter or before its
/// notBefore: a server (or clock) to fix, not a CA to configure.
fn out_of_date(e: &rustls::Error) -> bool {
    use rustls::CertificateError as C;
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. }
        )
    )
}

impl Failure {
    fn error(self, address: &str, timeout: Duration) -> BackendError {
        match self {
            Failure::Timeout => BackendError::of(
                ErrorKind::Unavailable,
                format!(
                    "OpenBao at {address} did not answer within {}s",
                    timeout.as_secs()
                ),
            )
            .with_problem("timed_out")
            .unresponsive()
            .transient()
            .hint("ov doctor openbao"),
            Failure::Refused(why) => BackendError::of(
                ErrorKind::Unavailable,
                format!("cannot reach OpenBao at {address}: {why}"),
            )
            .with_problem("unreachable")
            .transient()
            .hint("ov doctor openbao"),
            // Not a fault to pass over quietly: an untrusted certificate
            // is a setup to fix, or someone in the middle.
            Failure::Tls(why, dated) => {
                let e = BackendError::of(
                    ErrorKind::Environment,
                    format!("TLS with OpenBao at {address} failed: {why}"),
                )
                .with_problem("tls");
                if dated {
                    e.hint("ov doctor openbao.tls   # the certificate's dates, and how to renew it")
                } else {
                    e.hint("ov settings set openbao.cacert /path/to/ca.pem   # the CA that signed the server's certificate")
                }
            }
            Failure::Other(why) => BackendError::of(
                ErrorKind::Unavailable,
                format!("talking to OpenBao at {address} failed: {why}"),
            )
            .with_problem("unreachable"),
        }
    }
}

/// `s` with every byte outside the URL's unreserved set percent-encoded,
/// for one path segment.
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `/`-separated path with each segment encoded.
pub(crate) fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded_and_slashes_kept() {
        assert_eq!(encode_path("my app/prod"), "my%20app/prod");
        assert_eq!(encode_segment("a/b?c#d"), "a%2Fb%3Fc%23d");
        assert_eq!(encode_path("é"), "%C3%A9");
    }
}
