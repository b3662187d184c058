//! What the backend trusts the server's certificate by — the CA file or
//! the system's roots — shared by the HTTP client and by the doctor's own
//! handshake, which reads the certificate's expiry (the HTTP client does
//! not show the peer's certificate).

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ov_plugin_api::BackendError;
use rustls::pki_types::{CertificateDer, ServerName};
use x509_cert::der::Decode;

use crate::config::Config;

/// The roots a server's certificate is verified against.
pub(crate) enum Roots {
    /// The certificates of the configured CA file.
    Ca(Vec<ureq::tls::Certificate<'static>>),
    /// The system's, through the platform's verifier.
    System,
}

impl Roots {
    /// The roots `config` names: its CA file (an error when it cannot be
    /// used), else the system's.
    pub fn of(config: &Config) -> Result<Roots, BackendError> {
        Ok(match &config.cacert {
            Some(path) => Roots::Ca(crate::config::load_ca(path)?),
            None => Roots::System,
        })
    }

    /// The same roots for the HTTP client.
    pub fn for_http(&self) -> ureq::tls::RootCerts {
        match self {
            Roots::Ca(certs) => ureq::tls::RootCerts::new_with_certs(certs),
            Roots::System => ureq::tls::RootCerts::PlatformVerifier,
        }
    }

    /// A rustls client configuration that verifies as the HTTP client
    /// does: the same crypto provider, protocol versions and roots.
    fn client_config(&self) -> Result<rustls::ClientConfig, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(rustls::ALL_VERSIONS)?;
        Ok(match self {
            Roots::Ca(certs) => {
                let mut store = rustls::RootCertStore::empty();
                store.add_parsable_certificates(
                    certs.iter().map(|c| CertificateDer::from(c.der().to_vec())),
                );
                builder.with_root_certificates(store)
            }
            Roots::System => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(
                    rustls_platform_verifier::Verifier::new(provider)?,
                )),
        }
        .with_no_client_auth())
    }
}

/// When the server's certificate stops being valid.
pub(crate) struct Expiry {
    /// Its notAfter, as a date (`2027-03-01`).
    pub date: String,
    /// Seconds from now until then; negative once it has expired.
    pub left: i64,
}

/// One TLS handshake with the server at `config.address`, verified
/// against `roots`, within `config.timeout` for the connection and each
/// read: the end-entity certificate's expiry (in the past when it failed
/// verification for having expired), or why it is not known.
pub(crate) fn server_expiry(config: &Config, roots: &Roots) -> Result<Expiry, String> {
    let (host, port) = endpoint(&config.address)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(bare.to_owned()).map_err(|e| format!("{host}: {e}"))?;
    let tls = roots.client_config().map_err(|e| e.to_string())?;
    let mut conn = rustls::ClientConnection::new(Arc::new(tls), name).map_err(|e| e.to_string())?;
    let mut sock = connect(bare, port, config.timeout)?;
    sock.set_read_timeout(Some(config.timeout))
        .and_then(|()| sock.set_write_timeout(Some(config.timeout)))
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            // A certificate past its notAfter fails verification; that is
            // still an answer to when it expires.
            if let Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ExpiredContext { not_after, .. },
            )) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
            {
                return expiry_at(Duration::from_secs(not_after.as_secs()));
            }
            return Err(match e.kind() {
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => format!(
                    "no answer within {}s during the handshake",
                    config.timeout.as_secs()
                ),
                _ => e.to_string(),
            });
        }
    }
    let cert = conn
        .peer_certificates()
        .and_then(<[_]>::first)
        .ok_or("the server sent no certificate")?;
    let expiry = not_after(cert)?;
    // Leave politely, without waiting for an answer.
    conn.send_close_notify();
    let _ = conn.write_tls(&mut sock);
    Ok(expiry)
}

/// The host (an IPv6 address in brackets) and port of an `https://`
/// address.
pub(crate) fn endpoint(address: &str) -> Result<(String, u16), String> {
    let uri: ureq::http::Uri = address
        .parse()
        .map_err(|e| format!("{address} is not a URL: {e}"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("{address} names no host"))?;
    Ok((host.to_owned(), uri.port_u16().unwrap_or(443)))
}

/// A TCP connection to `host:port`, trying each address it resolves to.
fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let mut last = format!("{host} resolves to no address");
    for addr in (host, port).to_socket_addrs().map_err(|e| e.to_string())? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// The notAfter of a DER certificate.
fn not_after(der: &CertificateDer<'_>) -> Result<Expiry, String> {
    let cert = x509_cert::Certificate::from_der(der.as_ref())
        .map_err(|e| format!("the server's certificate does not parse: {e}"))?;
    expiry_at(cert.tbs_certificate.validity.not_after.to_unix_duration())
}

/// An [`Expiry`] at `end`, seconds since the Unix epoch.
fn expiry_at(end: Duration) -> Result<Expiry, String> {
    let at = x509_cert::der::DateTime::from_unix_duration(end)
        .map_err(|e| format!("the certificate's notAfter is out of range: {e}"))?;
    let end_secs = i64::try_from(end.as_secs()).unwrap_or(i64::MAX);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Ok(Expiry {
        date: format!("{:04}-{:02}-{:02}", at.year(), at.month(), at.day()),
        left: end_secs.saturating_sub(now),
    })
}
