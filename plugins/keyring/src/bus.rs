//! The connection to the Secret Service, and the rule that no call into it
//! may hang: every operation runs on a worker thread and the caller waits
//! for it with a deadline.
//!
//! A provider that accepts the connection and then never answers (a hung
//! daemon, a bus that is half dead) would otherwise block `ov` forever; a
//! blocking D-Bus call cannot be cancelled, but it can be left behind. Once
//! the provider has missed a deadline, later calls in the same process fail
//! at once instead of waiting again.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};
use std::thread;
use std::time::Duration;

use ov_plugin_api::{BackendError, ErrorKind};
use secret_service::EncryptionType;
use secret_service::blocking::SecretService;

use crate::session::{self, Session};

/// Milliseconds to wait for the provider, overriding [`DEFAULT_TIMEOUT_MS`].
pub const TIMEOUT_ENV: &str = "OV_KEYRING_TIMEOUT_MS";
/// Long enough for a D-Bus activation of gnome-keyring on a busy laptop,
/// short enough that a dead provider does not make `ov` feel hung.
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;

pub type Service = SecretService<'static>;

/// One bus connection, and the Secret Service sessions opened on it when
/// first needed: a read opens only ov's own (see [`crate::session`]).
pub struct Link {
    pub dbus: zbus::blocking::Connection,
    ss: OnceLock<Service>,
    read: OnceLock<Session>,
}

impl Link {
    /// The `secret-service` crate's view of the provider, for writes,
    /// lists and the doctor.
    pub fn ss(&self) -> Result<&Service, BackendError> {
        if let Some(ss) = self.ss.get() {
            return Ok(ss);
        }
        let ss = SecretService::connect_with_existing(EncryptionType::Dh, self.dbus.clone())
            .map_err(|e| map_error(&e, "open a Secret Service session"))?;
        Ok(self.ss.get_or_init(|| ss))
    }

    /// Whether a provider owns the Secret Service name, or the bus can
    /// start one for the first call (D-Bus activation).
    pub fn provider(&self) -> Result<(), BackendError> {
        let dbus = zbus::blocking::fdo::DBusProxy::new(&self.dbus)
            .map_err(|e| map_error(&e.into(), "ask the session bus for the Secret Service"))?;
        let name = zbus::names::BusName::from_static_str(session::DEST)
            .map_err(|e| unavailable(e.to_string()))?;
        let fdo = |e: zbus::fdo::Error| {
            map_error(&e.into(), "ask the session bus for the Secret Service")
        };
        if dbus.name_has_owner(name).map_err(fdo)? {
            return Ok(());
        }
        let activatable = dbus.list_activatable_names().map_err(fdo)?;
        if activatable.iter().any(|n| n.as_str() == session::DEST) {
            return Ok(());
        }
        Err(unavailable(format!(
            "no Secret Service provider on the session bus: nothing owns {} and the bus cannot start one",
            session::DEST
        ))
        .with_hint(START_PROVIDER))
    }

    /// ov's own encrypted session, for reads.
    pub fn read_session(&self) -> Result<&Session, BackendError> {
        if let Some(s) = self.read.get() {
            return Ok(s);
        }
        let s = Session::open(&self.dbus)
            .map_err(|e| map_session_error(e, "open a Secret Service session"))?;
        Ok(self.read.get_or_init(|| s))
    }
}

/// The command that starts a provider, for hints and doctor fixes.
pub const START_PROVIDER: &str = "gnome-keyring-daemon --start --components=secrets   # or start KeePassXC / KWallet with Secret Service enabled";
/// The fix when there is no session bus at all.
pub const NO_BUS_FIX: &str = "export DBUS_SESSION_BUS_ADDRESS=unix:path=$XDG_RUNTIME_DIR/bus   # headless: ov settings set secret_backend kdbx";

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

pub fn timeout() -> Duration {
    let ms = std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .unwrap_or(DEFAULT_TIMEOUT_MS);
    Duration::from_millis(ms)
}

#[derive(Default)]
struct State {
    /// One connection and one encrypted session per process. Leaked on
    /// purpose: the `secret-service` API borrows the service for the life of
    /// every collection and item, and a `'static` borrow lets worker threads
    /// use it. At most one leaks per reconnect.
    service: Option<&'static Link>,
    /// Why the provider is considered gone for the rest of this process.
    unresponsive: Option<String>,
}

/// Shared between the backend and its worker threads.
#[derive(Clone, Default)]
pub struct Bus {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("Bus")
            .field("connected", &s.service.is_some())
            .field("unresponsive", &s.unresponsive)
            .finish()
    }
}

impl Bus {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A worker that panicked while holding the lock left nothing half
        // written: the state is two independent options.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `op` against the provider, waiting at most [`timeout`].
    pub fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&'static Link) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        if let Some(reason) = self.lock().unresponsive.clone() {
            return Err(unavailable(reason));
        }
        if self.lock().service.is_none()
            && let Some(missing) = missing_socket()
        {
            // The common headless case, decided without a thread or a
            // connection attempt: every read on a server passes here.
            return Err(missing);
        }
        let limit = timeout();
        let (tx, rx) = mpsc::sync_channel(1);
        let bus = self.clone();
        let spawned = thread::Builder::new()
            .name("ov-keyring".into())
            .spawn(move || {
                let result = bus.service(limit).and_then(|ss| {
                    let r = op(ss);
                    if r.as_ref().is_err_and(|e| e.kind == ErrorKind::Unavailable) {
                        // The provider or the bus went away: connect afresh next time.
                        bus.lock().service = None;
                    }
                    r
                });
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            return Err(BackendError::new(
                ErrorKind::Internal,
                format!("cannot start a thread for the keyring call: {e}"),
            ));
        }
        match rx.recv_timeout(limit) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let reason = format!(
                    "the Secret Service provider did not answer within {} ms",
                    limit.as_millis()
                );
                let mut s = self.lock();
                s.unresponsive = Some(reason.clone());
                s.service = None;
                Err(unavailable(reason)
                    .with_hint("ov doctor keyring")
                    .with_hint(format!(
                        "{TIMEOUT_ENV}=5000 ov …   # give a slow provider more time"
                    )))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(BackendError::new(
                ErrorKind::Internal,
                "the keyring call panicked; this is a bug in ov",
            )),
        }
    }

    /// The cached service, or a new connection and session.
    fn service(&self, limit: Duration) -> Result<&'static Link, BackendError> {
        if let Some(ss) = self.lock().service {
            return Ok(ss);
        }
        let conn = builder()
            .and_then(|b| b.method_timeout(limit).build())
            .map_err(|e| connect_error(&e))?;
        let link: &'static Link = Box::leak(Box::new(Link {
            dbus: conn,
            ss: OnceLock::new(),
            read: OnceLock::new(),
        }));
        self.lock().service = Some(link);
        Ok(link)
    }
}

pub fn unavailable(reason: impl Into<String>) -> BackendError {
    BackendError::new(ErrorKind::Unavailable, reason)
}

fn bus_address() -> String {
    match std::env::var("DBUS_SESSION_BUS_ADDRESS") {
        Ok(a) if !a.is_empty() => a,
        _ => match std::env::var("XDG_RUNTIME_DIR") {
            Ok(d) if !d.is_empty() => {
                format!("unix:path={d}/bus (DBUS_SESSION_BUS_ADDRESS is unset)")
            }
            _ => "no address (DBUS_SESSION_BUS_ADDRESS and XDG_RUNTIME_DIR are unset)".into(),
        },
    }
}

/// The session bus addresses zbus would try, as `unix:path=` socket paths;
/// `None` when any address is of another kind (ov cannot tell in advance).
fn socket_paths() -> Option<Vec<std::path::PathBuf>> {
    let address = match std::env::var("DBUS_SESSION_BUS_ADDRESS") {
        Ok(a) if !a.is_empty() => a,
        _ => {
            let dir = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty())?;
            return Some(vec![std::path::Path::new(&dir).join("bus")]);
        }
    };
    address
        .split(';')
        .filter(|a| !a.is_empty())
        .map(|a| {
            let rest = a.strip_prefix("unix:")?;
            let path = rest.split(',').find_map(|kv| kv.strip_prefix("path="))?;
            // Escaped bytes (%2f…) are rare in paths; leave those to zbus.
            (!path.contains('%')).then(|| path.into())
        })
        .collect()
}

/// A connection builder for the session bus. A plain socket path is
/// connected here, which spares zbus a thread for the `connect` call; any
/// other address is zbus's to dial.
fn builder() -> zbus::Result<zbus::blocking::connection::Builder<'static>> {
    let Some(paths) = socket_paths() else {
        return zbus::blocking::connection::Builder::session();
    };
    let mut last = std::io::Error::from(std::io::ErrorKind::NotFound);
    for path in paths {
        match std::os::unix::net::UnixStream::connect(&path) {
            Ok(stream) => return Ok(zbus::blocking::connection::Builder::unix_stream(stream)),
            Err(e) => last = e,
        }
    }
    Err(zbus::Error::InputOutput(last.into()))
}

/// An error when no session bus socket exists at any address.
fn missing_socket() -> Option<BackendError> {
    let paths = socket_paths()?;
    if paths.is_empty() || paths.iter().any(|p| p.exists()) {
        return None;
    }
    let io = std::io::Error::from(std::io::ErrorKind::NotFound);
    Some(connect_error(&zbus::Error::InputOutput(io.into())))
}

fn connect_error(e: &zbus::Error) -> BackendError {
    let why = match e {
        zbus::Error::InputOutput(io) => match io.kind() {
            std::io::ErrorKind::NotFound => "no such socket".to_owned(),
            std::io::ErrorKind::ConnectionRefused => "nothing listens there".to_owned(),
            _ => io.to_string(),
        },
        other => other.to_string(),
    };
    unavailable(format!("no D-Bus session bus: {why} at {}", bus_address())).with_hint(NO_BUS_FIX)
}

/// The D-Bus error inside an error (name and message), when the bus or
/// the provider sent one; zbus nests them in a few ways.
pub fn dbus_error(e: &secret_service::Error) -> Option<(String, Option<String>)> {
    use zbus::DBusError;
    fn from_zbus(e: &zbus::Error) -> Option<(String, Option<String>)> {
        match e {
            zbus::Error::MethodError(name, desc, _) => {
                Some((name.as_str().to_owned(), desc.clone()))
            }
            zbus::Error::FDO(f) => from_fdo(f),
            _ => None,
        }
    }
    fn from_fdo(f: &zbus::fdo::Error) -> Option<(String, Option<String>)> {
        match f {
            zbus::fdo::Error::ZBus(z) => from_zbus(z),
            other => Some((
                other.name().as_str().to_owned(),
                other.description().map(str::to_owned),
            )),
        }
    }
    match e {
        secret_service::Error::Zbus(z) => from_zbus(z),
        secret_service::Error::ZbusFdo(f) => from_fdo(f),
        _ => None,
    }
}

/// [`map_error`] for the read path's own calls.
pub fn map_session_error(e: session::Error, doing: &str) -> BackendError {
    match e {
        session::Error::Bus(z) => map_error(&secret_service::Error::Zbus(z), doing),
        session::Error::Protocol(why) => BackendError::new(
            ErrorKind::Io,
            format!("cannot {doing}: the Secret Service provider misbehaved: {why}"),
        ),
    }
}

/// Translate a `secret-service` error into the kinds the engine acts on:
/// anything that means "no provider here" becomes `Unavailable`, so the
/// chain moves on to the next backend.
pub fn map_error(e: &secret_service::Error, doing: &str) -> BackendError {
    use secret_service::Error as E;
    let dbus = dbus_error(e);
    let name = dbus.as_ref().map(|(name, _)| name.as_str());
    let gone = matches!(
        name,
        Some(
            "org.freedesktop.DBus.Error.ServiceUnknown"
                | "org.freedesktop.DBus.Error.NameHasNoOwner"
                | "org.freedesktop.DBus.Error.NoReply"
                | "org.freedesktop.DBus.Error.TimedOut"
                | "org.freedesktop.DBus.Error.Disconnected"
        )
    );
    match e {
        _ if gone => unavailable(format!(
            "no Secret Service provider answers on the session bus (cannot {doing}: {})",
            name.unwrap_or_default()
        ))
        .with_hint(START_PROVIDER),
        E::Unavailable => unavailable(format!(
            "no Secret Service provider or session bus (cannot {doing})"
        ))
        .with_hint(START_PROVIDER),
        E::Zbus(zbus::Error::InputOutput(io)) => unavailable(format!(
            "the session bus connection failed: {io} (cannot {doing})"
        ))
        .with_hint(NO_BUS_FIX),
        E::Zbus(zbus::Error::Address(_) | zbus::Error::Handshake(_)) => {
            unavailable(format!("cannot {doing}: {e}")).with_hint(NO_BUS_FIX)
        }
        _ if name == Some("org.freedesktop.Secret.Error.IsLocked") => {
            BackendError::new(ErrorKind::Locked, format!("cannot {doing}: it is locked"))
        }
        E::Locked => BackendError::new(ErrorKind::Locked, format!("cannot {doing}: it is locked")),
        E::Prompt | E::PromptDisconnected => BackendError::new(
            ErrorKind::Locked,
            format!("cannot {doing}: the provider asked for a prompt and it was dismissed"),
        ),
        _ => {
            let why = match dbus {
                Some((name, Some(desc))) if !desc.is_empty() => format!("{desc} ({name})"),
                Some((name, _)) => name,
                None => e.to_string(),
            };
            BackendError::new(ErrorKind::Io, format!("cannot {doing}: {why}"))
        }
    }
}
