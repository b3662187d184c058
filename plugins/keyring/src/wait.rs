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

/// How long an `Unavailable` read waits for word that the provider left
/// the bus. The bus sends that signal before it refuses the read, but the
/// watching thread may not have passed it on yet.
const GONE_GRACE: Duration = Duration::from_millis(250);

/// What the watching thread saw.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// A signal from the provider (collection changed, properties changed…).
    Signal,
    /// The Secret Service name gained (`true`) or lost (`false`) its owner.
    Owner(bool),
}

/// Watch the bus: every signal the provider sends, and every change of
/// who owns the Secret Service name. Answers whether a provider owns the
/// name now, asked after subscribing so no change in between is missed.
fn subscribe() -> Result<(mpsc::Receiver<Event>, bool), BackendError> {
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let (tx, rx) = mpsc::channel();
    // Connecting and subscribing may hang on a bus that never answers: do
    // it on a thread and give up after the usual deadline.
    thread::Builder::new()
        .name("ov-keyring-signals".into())
        .spawn(move || {
            let setup = (|| -> zbus::Result<(zbus::blocking::MessageIterator, bool)> {
                let conn = zbus::blocking::Connection::session()?;
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
                let present = dbus.name_has_owner(zbus::names::BusName::from_static_str(DEST)?)?;
                Ok((iter, present))
            })();
            let iter = match setup {
                Ok((iter, present)) => {
                    let _ = ready_tx.send(Ok(present));
                    iter
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            for msg in iter {
                let Ok(msg) = msg else { break };
                if msg.message_type() != zbus::message::Type::Signal {
                    continue;
                }
                if tx.send(event_of(&msg)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| {
            BackendError::new(ErrorKind::Internal, format!("cannot start a thread: {e}"))
        })?;
    match ready_rx.recv_timeout(bus::timeout()) {
        Ok(Ok(present)) => Ok((rx, present)),
        Ok(Err(e)) => Err(
            unavailable(format!("cannot watch the keyring for an unlock: {e}"))
                .with_hint(bus::NO_BUS_FIX),
        ),
        Err(_) => Err(unavailable(
            "the session bus did not answer the subscription",
        )),
    }
}

/// A signal as an event: `NameOwnerChanged(name, old, new)` for the Secret
/// Service name says whether a provider owns it now; anything else is a
/// reason to look again.
fn event_of(msg: &zbus::message::Message) -> Event {
    let header = msg.header();
    if header.member().map(|m| m.as_str()) == Some("NameOwnerChanged")
        && let Ok((name, _old, new)) = msg.body().deserialize::<(&str, &str, &str)>()
        && name == DEST
    {
        return Event::Owner(!new.is_empty());
    }
    Event::Signal
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
    let (events, mut present) = match subscribe() {
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
            Err(e) if e.kind == ErrorKind::Unavailable => {
                // Waiting helps only while no provider is on the bus; one
                // that is there and fails (a hung one, say) is reported.
                if !provider_gone(&events, &mut present) {
                    return Err(e);
                }
                Waiting::Provider
            }
            other => return other,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(Event::Owner(owned)) => present = owned,
            Ok(Event::Signal) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => return Err(waiting_for.timed_out(timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(unavailable(
                    "the session bus closed while waiting for the keyring",
                ));
            }
        }
    }
}

/// Whether no provider owns the Secret Service name, after the events
/// already sent, or sent within [`GONE_GRACE`], are taken in.
fn provider_gone(events: &mpsc::Receiver<Event>, present: &mut bool) -> bool {
    while let Ok(ev) = events.try_recv() {
        if let Event::Owner(owned) = ev {
            *present = owned;
        }
    }
    let until = Instant::now() + GONE_GRACE;
    while *present {
        match events.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(Event::Owner(owned)) => *present = owned,
            Ok(Event::Signal) => {}
            Err(_) => break,
        }
    }
    !*present
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
            Waiting::Unlock => BackendError::new(
                ErrorKind::Locked,
                format!("the keyring is still locked after {secs} s"),
            )
            .with_hint("secret-tool search --all --unlock application ov   # or unlock it in your desktop's keyring app"),
            Waiting::Provider => unavailable(format!(
                "no Secret Service provider came onto the session bus within {secs} s"
            ))
            .with_hint(START_PROVIDER),
        }
    }
}
