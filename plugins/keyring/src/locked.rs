//! Locked collections: the error, and the commands that unlock them.

use ov_plugin_api::{BackendError, EntryRef, ErrorKind};

use crate::{APPLICATION, ATTR_APPLICATION, q};

/// Commands that unlock the collection holding `entry` (any locked
/// collection for `None`), best first. At a desktop the provider asks for
/// the password; without one (ssh, a server) nothing could ask, so the
/// first is GNOME Keyring's own way to take the login password on stdin.
pub(crate) fn unlock_hints(entry: Option<&EntryRef>) -> Vec<String> {
    let desktop = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
    let asks = if desktop {
        "# the keyring asks for its password"
    } else {
        "# at the desktop: the keyring asks for its password"
    };
    let prompt = match entry {
        Some(e) => format!(
            "secret-tool search --unlock service {} username {}   {asks}",
            q(&e.service),
            q(&e.key)
        ),
        None => {
            format!("secret-tool search --all --unlock {ATTR_APPLICATION} {APPLICATION}   {asks}")
        }
    };
    if desktop {
        vec![prompt]
    } else {
        vec![HEADLESS_UNLOCK.to_owned(), prompt]
    }
}

/// The first of [`unlock_hints`], where there is room for one command.
pub(crate) fn unlock_hint(entry: Option<&EntryRef>) -> String {
    unlock_hints(entry).swap_remove(0)
}

/// Unlocks GNOME Keyring's login collection with no desktop prompter: the
/// replacement daemon reads the password on stdin (`read` is a shell
/// builtin, so it never shows in `ps`).
pub const HEADLESS_UNLOCK: &str = "read -rs PW && printf '%s' \"$PW\" | gnome-keyring-daemon --replace --unlock --components=secrets; unset PW   # no desktop to ask: GNOME Keyring takes the login password on stdin";

pub(crate) fn locked_error(message: String, entry: Option<&EntryRef>) -> BackendError {
    unlock_hints(entry)
        .into_iter()
        .fold(BackendError::of(ErrorKind::Locked, message), |e, h| {
            e.hint(h)
        })
}

pub(crate) fn quoted_list(labels: &[String]) -> String {
    labels
        .iter()
        .map(|l| format!("{l:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
