//! Waiting for a locked collection to be unlocked: subscribe to the
//! provider's signals and look again only when one arrives. No polling, so
//! a `get --wait-unlock` costs nothing while the user finds their keyring.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ov_plugin_api::{BackendError, ErrorKind};

use crate::bus::{self, unavailable};

/// Every signal the Secret Service provider sends (collections changed,
/// properties changed…), as a wake-up on a channel.
fn subscribe() -> Result<mpsc::Receiver<()>, BackendError> {
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let (tx, rx) = mpsc::channel();
    // Connecting and subscribing may hang on a bus that never answers: do
    // it on a thread and give up after the usual deadline.
    thread::Builder::new()
        .name("ov-keyring-signals".into())
        .spawn(move || {
            let setup = (|| -> zbus::Result<zbus::blocking::MessageIterator> {
                let conn = zbus::blocking::Connection::session()?;
                let rule = zbus::MatchRule::builder()
                    .msg_type(zbus::message::Type::Signal)
                    .sender("org.freedesktop.secrets")?
                    .build();
                zbus::blocking::MessageIterator::for_match_rule(rule, &conn, Some(64))
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
                if msg.is_err() || tx.send(()).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| {
            BackendError::new(ErrorKind::Internal, format!("cannot start a thread: {e}"))
        })?;
    match ready_rx.recv_timeout(bus::timeout()) {
        Ok(Ok(())) => Ok(rx),
        Ok(Err(e)) => Err(unavailable(format!(
            "cannot watch the keyring for an unlock: {e}"
        ))),
        Err(_) => Err(unavailable(
            "the session bus did not answer the subscription",
        )),
    }
}

/// Read `entry` with `read` until it is no longer locked, waking only on the
/// provider's signals, for at most `timeout`.
pub fn read_when_unlocked<T>(
    timeout: Duration,
    mut read: impl FnMut() -> Result<T, BackendError>,
) -> Result<T, BackendError> {
    let deadline = Instant::now() + timeout;
    // Subscribe before the first read: an unlock between the two is seen.
    let signals = subscribe()?;
    loop {
        match read() {
            Err(e) if e.kind == ErrorKind::Locked => {}
            other => return other,
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match signals.recv_timeout(left) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(BackendError::new(
                    ErrorKind::Locked,
                    format!(
                        "the keyring is still locked after {} s",
                        timeout.as_secs()
                    ),
                )
                .with_hint("secret-tool search --all --unlock application ov   # or unlock it in your desktop's keyring app"));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(unavailable(
                    "the session bus closed while waiting for an unlock",
                ));
            }
        }
    }
}
