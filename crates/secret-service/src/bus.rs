//! The connection to the Secret Service, and the rule that no call into it
//! may hang: every operation runs on a worker thread and the caller waits
//! for it with a deadline.
//!
//! A provider that accepts the connection and then never answers (a hung
//! daemon, a bus that is half dead) would otherwise block `ov` forever; a
//! blocking D-Bus call cannot be cancelled, but it can be left behind. Once
//! the provider has missed a deadline, later calls in the same process fail
//! at once instead of waiting again.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};
use std::thread;
use std::time::Duration;

use ov_plugin_api::{BackendError, ErrorKind};
use secret_service::EncryptionType;
use secret_service::blocking::SecretService;

use crate::session;
use crate::wire::{self, Addr};

/// Milliseconds to wait for the provider, overriding [`DEFAULT_TIMEOUT_MS`].
pub const TIMEOUT_ENV: &str = "OV_KEYRING_TIMEOUT_MS";
/// Long enough for a D-Bus activation of gnome-keyring on a busy laptop,
/// short enough that a dead provider does not make `ov` feel hung.
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;

pub type Service = SecretService<'static>;

/// One bus connection, and the `secret-service` crate's session on it,
/// opened when first needed. Reads take their own socket (`wire.rs`).
pub struct Link {
    pub dbus: zbus::blocking::Connection,
    ss: OnceLock<Service>,
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
        Err(absent())
    }
}

/// No provider owns the Secret Service name and the bus cannot start one.
/// Transient: a provider may be on its way (at login, or while the
/// headless unlock hint replaces gnome-keyring).
pub fn absent() -> BackendError {
    unavailable(format!(
        "no Secret Service provider is running on the session bus (nothing owns {})",
        session::DEST
    ))
    .hint(START_PROVIDER)
    .transient()
}

/// The command that starts a provider, for hints and doctor fixes.
pub const START_PROVIDER: &str = "gnome-keyring-daemon --start --components=secrets   # or start KeePassXC / KWallet with Secret Service enabled";
/// The problem name of an error for a machine with no usable session bus.
pub const NO_BUS: &str = "no_session_bus";
/// The problem name of a provider that missed its deadline.
pub const TIMED_OUT: &str = "timed_out";
/// The user's own session bus socket, when there is one the environment
/// does not point at (a stale or missing `DBUS_SESSION_BUS_ADDRESS`, as
/// after `su`): `$XDG_RUNTIME_DIR/bus`, or `/run/user/<uid>/bus`.
pub fn own_bus_socket() -> Option<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let current = std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_default();
    [
        std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|d| !d.is_empty())
            .map(|d| PathBuf::from(d).join("bus")),
        Some(wire::fallback_socket()),
    ]
    .into_iter()
    .flatten()
    .find(|sock| {
        std::fs::metadata(sock).is_ok_and(|m| m.file_type().is_socket())
            && current != format!("unix:path={}", sock.display())
    })
}

/// The command that points this shell at the user's own bus, when there
/// is one the environment misses ([`own_bus_socket`]).
pub fn point_at_own_bus() -> Option<String> {
    own_bus_socket().map(|sock| {
        format!(
            "export DBUS_SESSION_BUS_ADDRESS=unix:path={}",
            sock.display()
        )
    })
}

/// The hint when no session bus can be reached: point at the user's own
/// bus when there is one, else start one for a new shell.
pub fn no_bus_fix() -> String {
    point_at_own_bus().unwrap_or_else(|| {
        "dbus-run-session -- \"$SHELL\"   # a session bus for a new shell; start a Secret Service provider in it".into()
    })
}

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
        self.ready()?;
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
            return Err(BackendError::of(
                ErrorKind::Internal,
                format!("cannot start a thread for the keyring call: {e}"),
            ));
        }
        match rx.recv_timeout(limit) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(self.give_up(limit)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(BackendError::of(
                ErrorKind::Internal,
                "the keyring call panicked; this is a bug in ov",
            )),
        }
    }

    /// Whether the provider is worth a try: not after it missed a deadline
    /// in this process, and not without a socket to dial.
    pub fn ready(&self) -> Result<(), BackendError> {
        self.ready_at(wire::session_addresses().as_deref())
    }

    /// [`Bus::ready`] for addresses the caller has already read.
    pub fn ready_at(&self, addrs: Option<&[Addr]>) -> Result<(), BackendError> {
        let s = self.lock();
        if let Some(reason) = &s.unresponsive {
            return Err(unavailable(reason.clone())
                .unresponsive()
                .with_problem(TIMED_OUT));
        }
        if s.service.is_none()
            && let Some(missing) = missing_socket(addrs)
        {
            // The common headless case, decided without a thread or a
            // connection attempt: every read on a server passes here.
            return Err(missing);
        }
        Ok(())
    }

    /// The provider missed its deadline: remember that for the rest of the
    /// process, so a run waits once, not once per call.
    pub fn give_up(&self, limit: Duration) -> BackendError {
        let reason = format!(
            "the Secret Service provider did not answer within {} ms",
            limit.as_millis()
        );
        let mut s = self.lock();
        s.unresponsive = Some(reason.clone());
        s.service = None;
        unavailable(reason)
            .unresponsive()
            .with_problem(TIMED_OUT)
            .hint("ov doctor keyring")
            .hint(format!(
                "{TIMEOUT_ENV}=5000 ov …   # give a slow provider more time"
            ))
    }

    /// An error from the read path's own connection, as the engine sees it.
    pub fn wire_error(&self, e: wire::Error, doing: &str, limit: Duration) -> BackendError {
        match e {
            wire::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => self.give_up(limit),
            wire::Error::Io(io) => match io.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    connect_error(&zbus::Error::InputOutput(io.into()))
                }
                _ => unavailable(format!(
                    "the session bus connection failed: {io} (cannot {doing})"
                ))
                .hint(no_bus_fix())
                .with_problem(NO_BUS),
            },
            wire::Error::Auth(line) => unavailable(format!(
                "the session bus refused ov's authentication ({line}) (cannot {doing})"
            ))
            .hint(no_bus_fix())
            .with_problem(NO_BUS),
            wire::Error::Dbus(name, desc) => map_dbus(&name, desc.as_deref(), doing),
            wire::Error::Protocol(why) => BackendError::of(
                ErrorKind::Io,
                format!("cannot {doing}: the Secret Service provider misbehaved: {why}"),
            ),
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
        }));
        self.lock().service = Some(link);
        Ok(link)
    }
}

pub fn unavailable(reason: impl Into<String>) -> BackendError {
    BackendError::of(ErrorKind::Unavailable, reason)
}

fn bus_address() -> String {
    match std::env::var("DBUS_SESSION_BUS_ADDRESS") {
        Ok(a) if !a.is_empty() => a,
        _ => match std::env::var("XDG_RUNTIME_DIR") {
            Ok(d) if !d.is_empty() => {
                format!("unix:path={d}/bus (DBUS_SESSION_BUS_ADDRESS is unset)")
            }
            _ => format!(
                "unix:path={} (DBUS_SESSION_BUS_ADDRESS and XDG_RUNTIME_DIR are unset)",
                wire::fallback_socket().display()
            ),
        },
    }
}

/// A connection builder for the session bus. A socket ov can dial is
/// connected here, which spares zbus a thread for the `connect` call; any
/// other address is zbus's to dial.
pub(crate) fn builder() -> zbus::Result<zbus::blocking::connection::Builder<'static>> {
    let Some(addrs) = wire::session_addresses() else {
        return zbus::blocking::connection::Builder::session();
    };
    let stream = wire::connect_first(&addrs, std::time::Instant::now() + timeout())
        .map_err(|e| zbus::Error::InputOutput(e.into()))?;
    Ok(zbus::blocking::connection::Builder::unix_stream(stream))
}

/// An error when no session bus socket exists at any address (abstract
/// sockets cannot be checked without dialling them).
fn missing_socket(addrs: Option<&[Addr]>) -> Option<BackendError> {
    let addrs = addrs?;
    let gone = |a: &Addr| matches!(a, Addr::Path(p) if !p.exists());
    if addrs.is_empty() || !addrs.iter().all(gone) {
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
    unavailable(format!("no D-Bus session bus: {why} at {}", bus_address()))
        .hint(no_bus_fix())
        .with_problem(NO_BUS)
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

/// Translate a `secret-service` error into the kinds the engine acts on:
/// anything that means "no provider here" becomes `Unavailable`, so the
/// chain moves on to the next backend.
pub fn map_error(e: &secret_service::Error, doing: &str) -> BackendError {
    use secret_service::Error as E;
    if let Some((name, desc)) = dbus_error(e) {
        return map_dbus(&name, desc.as_deref(), doing);
    }
    match e {
        E::Unavailable => unavailable(format!(
            "no Secret Service provider or session bus (cannot {doing})"
        ))
        .hint(START_PROVIDER),
        E::Zbus(zbus::Error::InputOutput(io)) => unavailable(format!(
            "the session bus connection failed: {io} (cannot {doing})"
        ))
        .hint(no_bus_fix())
        .with_problem(NO_BUS),
        E::Zbus(zbus::Error::Address(_) | zbus::Error::Handshake(_)) => {
            unavailable(format!("cannot {doing}: {e}"))
                .hint(no_bus_fix())
                .with_problem(NO_BUS)
        }
        E::Locked => BackendError::of(ErrorKind::Locked, format!("cannot {doing}: it is locked")),
        E::Prompt | E::PromptDisconnected => BackendError::of(
            ErrorKind::Locked,
            format!("cannot {doing}: the provider asked for a prompt and it was dismissed"),
        ),
        _ => BackendError::of(ErrorKind::Io, format!("cannot {doing}: {e}")),
    }
}

/// A D-Bus error reply (name and message) as the engine sees it.
pub fn map_dbus(name: &str, desc: Option<&str>, doing: &str) -> BackendError {
    match name {
        // Nothing owns the name: no provider yet, or one being replaced.
        "org.freedesktop.DBus.Error.ServiceUnknown"
        | "org.freedesktop.DBus.Error.NameHasNoOwner" => absent(),
        "org.freedesktop.DBus.Error.NoReply"
        | "org.freedesktop.DBus.Error.TimedOut"
        | "org.freedesktop.DBus.Error.Disconnected" => unavailable(format!(
            "no Secret Service provider answers on the session bus (cannot {doing}: {name})"
        ))
        .hint(START_PROVIDER),
        "org.freedesktop.Secret.Error.IsLocked" => {
            BackendError::of(ErrorKind::Locked, format!("cannot {doing}: it is locked"))
        }
        _ => {
            let why = match desc {
                Some(desc) if !desc.is_empty() => format!("{desc} ({name})"),
                _ => name.to_owned(),
            };
            BackendError::of(ErrorKind::Io, format!("cannot {doing}: {why}"))
        }
    }
}
