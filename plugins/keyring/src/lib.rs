//! The desktop keyring backend: any Secret Service provider on the D-Bus
//! session bus (GNOME Keyring, KDE Wallet, KeePassXC).
//!
//! # Items
//!
//! `ov secrets set SERVICE KEY` stores an item labelled `SERVICE/KEY` with
//! the attributes
//!
//! | attribute     | value     | why                                             |
//! |---------------|-----------|-------------------------------------------------|
//! | `application` | `ov`      | marks the items ov owns (`list` shows these)    |
//! | `service`     | `SERVICE` | the common attribute other tools use too        |
//! | `key`         | `KEY`     | ov's own name for it                            |
//! | `username`    | `KEY`     | so `secret-tool lookup service S username K` and |
//! |               |           | keyring libraries find ov's items               |
//!
//! Reads search by `service` + `username`, so an item another tool stored
//! under those two attributes is found as well, and a write updates such an
//! item in place rather than adding a second one.
//!
//! # Collections
//!
//! Reads search every collection, the default alias first, skip (and
//! remember) collections whose properties cannot be read, and return the
//! first match in an unlocked collection. The `keyring_collection_label`
//! setting pins reads, writes, deletes and lists to the collections with
//! that label. Writes go to the pinned collection or the default alias.
//!
//! # Never hanging
//!
//! Every operation runs against a deadline: reads on their own socket with
//! its timeouts (see [`ov_secret_service::wire`]), everything else on a worker thread the
//! caller stops waiting for (see [`bus`]). A missing bus, a missing
//! provider or one that does not answer is `Unavailable`, and the engine
//! moves on to the next backend.

mod checks;
mod collections;
mod fast_read;
mod items;
mod locked;

use std::path::Path;

use ov_plugin_api::{
    Availability, Backend, BackendError, CheckDecl, CheckReport, Context, Description, EntryList,
    EntryRef, ErrorKind, Secret, SecretBytes, SettingKind, SettingSpec,
};
use ov_plugin_support::shell_quote;
use ov_secret_service::bus::Bus;
use ov_secret_service::wait;

pub use crate::collections::CREATE_LOGIN;
use crate::fast_read::{Fast, get_fast};
use crate::items::{Found, delete_in, get_in, list_in, set_in, text_secret};
pub use crate::locked::HEADLESS_UNLOCK;

pub const NAME: &str = "keyring";
/// The setting that pins ov to one collection; empty means "search them all".
pub const LABEL_SETTING: &str = "keyring_collection_label";
pub const ATTR_APPLICATION: &str = "application";
pub const APPLICATION: &str = "ov";
pub const ATTR_SERVICE: &str = "service";
pub const ATTR_KEY: &str = "key";
pub const ATTR_USERNAME: &str = "username";
const CONTENT_TYPE: &str = "text/plain";
const LOCATION: &str = "Secret Service (org.freedesktop.secrets) on the session bus";

#[derive(Debug, Default)]
pub struct KeyringBackend {
    bus: Bus,
}

fn q(s: &str) -> String {
    shell_quote(Path::new(s))
}

pub(crate) fn pinned_label(ctx: &Context) -> Option<String> {
    ctx.setting_str(LABEL_SETTING)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
}

impl KeyringBackend {
    fn find(&self, ctx: &Context, entry: &EntryRef) -> Result<Option<Found>, BackendError> {
        let pin = pinned_label(ctx);
        match get_fast(&self.bus, pin.as_deref(), entry)? {
            Fast::Found(found) => return Ok(Some(found)),
            Fast::Nowhere => return Ok(None),
            Fast::Undecided => {}
        }
        let entry = entry.clone();
        self.bus
            .run(move |link| get_in(link, pin.as_deref(), &entry))
    }
}

impl Backend for KeyringBackend {
    fn describe(&self) -> Description {
        Description {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary:
                "desktop keyring over the Secret Service API (GNOME Keyring, KWallet, KeePassXC)"
                    .into(),
            priority: 10,
            writable: true,
            plaintext: false,
            needs_unlock: false,
            listable: true,
            waits: true,
            settings: vec![SettingSpec {
                name: LABEL_SETTING.into(),
                kind: SettingKind::Text,
                about: "Secret Service collection to pin reads and writes to (empty: search every collection)".into(),
                default: Some(String::new()),
                binds: None,
            }],
            ..Description::default()
        }
    }

    fn probe(&self, _ctx: &Context) -> Availability {
        match self.bus.run(|link| link.provider()) {
            Ok(()) => Availability::Available {
                location: Some(LOCATION.into()),
            },
            Err(e) if e.kind == ErrorKind::Locked => Availability::Locked { reason: e.message },
            Err(e) => Availability::Unavailable {
                reason: e.message,
                transient: e.transient,
            },
        }
    }

    fn get(&self, ctx: &Context, entry: &EntryRef) -> Result<Option<Secret>, BackendError> {
        self.find(ctx, entry)?
            .map(|found| text_secret(found, entry))
            .transpose()
    }

    fn get_bytes(
        &self,
        ctx: &Context,
        entry: &EntryRef,
    ) -> Result<Option<SecretBytes>, BackendError> {
        Ok(self.find(ctx, entry)?.map(|f| SecretBytes::new(f.bytes)))
    }

    fn get_when_unlocked(
        &self,
        ctx: &Context,
        entry: &EntryRef,
        timeout_ms: u64,
    ) -> Result<Option<Secret>, BackendError> {
        wait::read_when_unlocked(std::time::Duration::from_millis(timeout_ms), || {
            self.get(ctx, entry)
        })
    }

    fn set(&self, ctx: &Context, entry: &EntryRef, value: &Secret) -> Result<(), BackendError> {
        let pin = pinned_label(ctx);
        let entry = entry.clone();
        let value = value.clone();
        self.bus
            .run(move |link| set_in(link, pin.as_deref(), &entry, &value))
    }

    fn delete(&self, ctx: &Context, entry: &EntryRef) -> Result<bool, BackendError> {
        let pin = pinned_label(ctx);
        let entry = entry.clone();
        self.bus
            .run(move |link| delete_in(link, pin.as_deref(), &entry))
    }

    fn list(&self, ctx: &Context, service: Option<&str>) -> Result<EntryList, BackendError> {
        let pin = pinned_label(ctx);
        let service = service.map(str::to_owned);
        let (entries, notices) = self
            .bus
            .run(move |link| list_in(link, pin.as_deref(), service.as_deref()))?;
        Ok(EntryList { entries, notices })
    }

    fn declare_checks(&self) -> Vec<CheckDecl> {
        checks::declared()
    }

    fn run_check(&self, ctx: &Context, id: &str) -> Vec<CheckReport> {
        let forced = ctx.setting_str("secret_backend") == Some(NAME);
        checks::run(&self.bus, pinned_label(ctx), id, forced)
    }
}

ov_plugin_api::export_plugin!(KeyringBackend::default());
