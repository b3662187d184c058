//! Waiting for the keyring to be readable: a locked collection being
//! unlocked, or a Secret Service provider that is not on the bus yet (at
//! login, or while the headless unlock hint replaces gnome-keyring).
//! Subscribe to the provider's signals and to the bus's name-owner changes,
//! and look again only when one arrives. No polling, so a
//! `get --wait-unlock` costs nothing while the user finds their keyring.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ov_plugin_api::{BackendError, ErrorKind};

use crate::bus::{self, START_PROVIDER, unavailable};
use crate::session::DEST;

/// Watch the bus: every signal the provider sends, and every change of
/// who owns the Secret Service name, as wake-ups on a channel.
fn subscribe() -> Result<mpsc::Receiver<()>, BackendError> {
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let (tx, rx) = mpsc::channel();
    // Connecting and subscribing may hang on a bus that never answers: do
    // it on a thread and give up after the usual deadline.
    thread::Builder::new()
        .name("ov-keyring-signals".into())
        .spawn(move || {
            let setup = (|| -> zbus::Result<zbus::blocking::MessageIterator> {
                // Dialled like every other keyring connection.
                let conn = bus::builder()?.build()?;
                // Every message the connection receives, filtered below;
                // the bus sends only what the two rules ask for.
                let iter = zbus::blocking::MessageIterator::from(&conn);
                let dbus = zbus::blocking::fdo::DBusProxy::new(&conn)?;
                let signal = || zbus::MatchRule::builder().msg_type(zbus::message::Type::Signal);
                dbus.add_match_rule(signal().sender(DEST)?.build())?;
                dbus.add_match_rule(
                    signal()
                        .sender("org.freedesktop.DBus")?
                        .interface("org.freedesktop.DBus")?
                        .member("NameOwnerChanged")?
                        .arg(0, DEST)?
                        .build(),
                )?;
                Ok(iter)
            })();
            let iter = match setup {
                Ok(iter) => {
                    let _ = ready_tx.send(Ok(()));
                    iter
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            for msg in iter {
                let Ok(msg) = msg else { break };
                if msg.message_type() == zbus::message::Type::Signal && tx.send(()).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| {
            BackendError::of(ErrorKind::Internal, format!("cannot start a thread: {e}"))
        })?;
    match ready_rx.recv_timeout(bus::timeout()) {
        Ok(Ok(())) => Ok(rx),
        Ok(Err(e)) => Err(
            unavailable(format!("cannot watch the keyring for an unlock: {e}"))
                .hint(bus::no_bus_fix())
                .with_problem(bus::NO_BUS),
        ),
        Err(_) => Err(unavailable(
            "the session bus did not answer the subscription",
        )),
    }
}

/// Read with `read` until the keyring answers — unlocked, or its provider
/// back on the bus — waking only on the bus's signals, for at most
/// `timeout`.
pub fn read_when_unlocked<T>(
    timeout: Duration,
    mut read: impl FnMut() -> Result<T, BackendError>,
) -> Result<T, BackendError> {
    let deadline = Instant::now() + timeout;
    // Subscribe before the first read: an unlock between the two is seen.
    let signals = match subscribe() {
        Ok(watch) => watch,
        // Nothing to watch (no session bus): the read's own answer says
        // why better than the failed subscription.
        Err(e) => {
            return match read() {
                Err(r) if r.kind == ErrorKind::Unavailable => Err(r),
                Err(_) => Err(e),
                ok => ok,
            };
        }
    };
    loop {
        let waiting_for = match read() {
            Err(e) if e.kind == ErrorKind::Locked => Waiting::Unlock,
            // Nothing owned the name when the bus routed the read: wait
            // for an owner. A provider that is there and fails (a hung
            // one, say) is reported at once.
            Err(e) if e.kind == ErrorKind::Unavailable && e.transient => Waiting::Provider,
            other => return other,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        match signals.recv_timeout(left) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => return Err(waiting_for.timed_out(timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(unavailable(
                    "the session bus closed while waiting for the keyring",
                ));
            }
        }
    }
}

/// What a read was waiting for when time ran out.
enum Waiting {
    Unlock,
    Provider,
}

impl Waiting {
    fn timed_out(&self, timeout: Duration) -> BackendError {
        let secs = timeout.as_secs();
        match self {
            Waiting::Unlock => BackendError::of(
                ErrorKind::Locked,
                format!("the keyring is still locked after {secs} s"),
            )
            .hint("secret-tool search --all --unlock application ov   # or unlock it in your desktop's keyring app"),
            Waiting::Provider => unavailable(format!(
                "no Secret Service provider came onto the session bus within {secs} s"
            ))
            .hint(START_PROVIDER),
        }
    }
}
