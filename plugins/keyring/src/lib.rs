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
//! its timeouts (see [`wire`]), everything else on a worker thread the
//! caller stops waiting for (see [`bus`]). A missing bus, a missing
//! provider or one that does not answer is `Unavailable`, and the engine
//! moves on to the next backend.

mod checks;

use std::collections::HashMap;
use std::path::Path;

use ov_plugin_api::{
    Availability, Backend, BackendError, CheckReport, Context, Description, EntryRef, ErrorKind,
    Secret, SecretBytes, service_matches,
};
use ov_plugin_support::shell_quote;
use secret_service::blocking::{Collection, Item};
use zeroize::Zeroizing;

use ov_secret_service::bus::{self, Bus, Link, map_error, unavailable};
use ov_secret_service::session::{self, KeyPair, PeerKey, SecretReply};
use ov_secret_service::wait;
use ov_secret_service::wire::{self, Method, Wire};

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
    /// What the last `list` could not see, for `list_notices`.
    skipped: std::sync::Mutex<Vec<String>>,
}

/// A collection whose label and lock state could be read.
pub(crate) struct Coll {
    pub c: Collection<'static>,
    pub path: String,
    pub label: String,
    pub locked: bool,
    pub is_default: bool,
}

/// A collection that answered with an error when asked for its properties.
pub(crate) struct Broken {
    pub path: String,
    pub reason: String,
}

/// Every collection the provider lists, default alias first.
pub(crate) struct Scan {
    pub colls: Vec<Coll>,
    pub broken: Vec<Broken>,
    /// Where the `default` alias points; `Ok(None)` when it is not set.
    pub default: Result<Option<String>, String>,
}

impl Scan {
    pub fn labels(&self) -> Vec<String> {
        self.colls.iter().map(|c| c.label.clone()).collect()
    }
}

fn q(s: &str) -> String {
    shell_quote(Path::new(s))
}

pub(crate) fn pinned_label(ctx: &Context) -> Option<String> {
    ctx.setting_str(LABEL_SETTING)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
}

/// Fail with `Unavailable` when the provider went away; keep other errors.
fn or_gone(e: &secret_service::Error, doing: &str) -> Result<BackendError, BackendError> {
    let be = map_error(e, doing);
    if be.kind == ErrorKind::Unavailable {
        Err(be)
    } else {
        Ok(be)
    }
}

pub(crate) fn scan(link: &'static Link) -> Result<Scan, BackendError> {
    let ss = link.ss()?;
    let all = ss
        .get_all_collections()
        .map_err(|e| map_error(&e, "list the keyring collections"))?;
    let default = match ss.get_default_collection() {
        Ok(c) => Ok(Some(c.collection_path.to_string())),
        Err(secret_service::Error::NoResult) => Ok(None),
        Err(e) => Err(or_gone(&e, "read the default alias")?.message),
    };
    let default_path = default.clone().ok().flatten();
    let mut colls = Vec::new();
    let mut broken = Vec::new();
    for c in all {
        let path = c.collection_path.to_string();
        let props = c
            .get_label()
            .and_then(|label| c.is_locked().map(|locked| (label, locked)));
        match props {
            Ok((label, locked)) => colls.push(Coll {
                is_default: default_path.as_deref() == Some(path.as_str()),
                c,
                path,
                label,
                locked,
            }),
            Err(e) => broken.push(Broken {
                reason: or_gone(&e, "read the collection's properties")?.message,
                path,
            }),
        }
    }
    colls.sort_by_key(|c| !c.is_default);
    Ok(Scan {
        colls,
        broken,
        default,
    })
}

/// The collections an operation may touch: the pinned ones, or all.
fn select<'s>(scan: &'s Scan, pin: Option<&str>) -> Result<Vec<&'s Coll>, BackendError> {
    let Some(pin) = pin else {
        return Ok(scan.colls.iter().collect());
    };
    let chosen: Vec<_> = scan.colls.iter().filter(|c| c.label == pin).collect();
    if chosen.is_empty() {
        return Err(pin_error(scan, pin));
    }
    Ok(chosen)
}

pub(crate) fn pin_error(scan: &Scan, pin: &str) -> BackendError {
    let labels = scan.labels();
    let present = if labels.is_empty() {
        "none".to_owned()
    } else {
        labels
            .iter()
            .map(|l| format!("{l:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let unreadable = if scan.broken.is_empty() {
        String::new()
    } else {
        format!("; {} more could not be read", scan.broken.len())
    };
    let mut err = BackendError::new(
        ErrorKind::InvalidInput,
        format!(
            "{LABEL_SETTING} is {pin:?}, but no Secret Service collection has that label \
             (labels present: {present}{unreadable})"
        ),
    );
    if let Some(first) = labels.first() {
        err = err.with_hint(format!("ov settings set {LABEL_SETTING} {}", q(first)));
    }
    err.with_hint(format!("ov settings unset {LABEL_SETTING}"))
}

/// The attributes a read matches: ov's items and other tools' alike.
fn lookup_attrs(entry: &EntryRef) -> HashMap<&str, &str> {
    HashMap::from([
        (ATTR_SERVICE, entry.service.as_str()),
        (ATTR_USERNAME, entry.key.as_str()),
    ])
}

fn write_attrs(entry: &EntryRef) -> HashMap<&str, &str> {
    HashMap::from([
        (ATTR_APPLICATION, APPLICATION),
        (ATTR_SERVICE, entry.service.as_str()),
        (ATTR_KEY, entry.key.as_str()),
        (ATTR_USERNAME, entry.key.as_str()),
    ])
}

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

fn locked_error(message: String, entry: Option<&EntryRef>) -> BackendError {
    unlock_hints(entry)
        .into_iter()
        .fold(BackendError::new(ErrorKind::Locked, message), |e, h| {
            e.with_hint(h)
        })
}

fn quoted_list(labels: &[String]) -> String {
    labels
        .iter()
        .map(|l| format!("{l:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value as the provider holds it, and where it was found, for messages
/// (`the collection "Login"`).
struct Found {
    bytes: Zeroizing<Vec<u8>>,
    place: String,
}

fn read_secret(item: &Item<'_>, entry: &EntryRef, place: String) -> Result<Found, BackendError> {
    let bytes = Zeroizing::new(
        item.get_secret()
            .map_err(|e| map_error(&e, &format!("read {entry} from {place}")))?,
    );
    Ok(Found { bytes, place })
}

/// A value as text, or a clear error for bytes that are not UTF-8.
fn text_secret(found: Found, entry: &EntryRef) -> Result<Secret, BackendError> {
    let Found { bytes, place } = found;
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Secret::from(text)),
        Err(_) => Err(BackendError::new(
            ErrorKind::Unsupported,
            format!(
                "the keyring item for {entry} in {place} holds {} bytes that \
                 are not UTF-8 text; ov reads text values only",
                bytes.len()
            ),
        )
        .with_hint(format!(
            "ov secrets get --raw {} {} > value.bin   # the bytes as stored",
            q(&entry.service),
            q(&entry.key)
        ))),
    }
}

/// What the service-wide search decided.
enum Fast {
    Found(Found),
    /// No collection holds it, locked or not.
    Nowhere,
    /// Only locked copies, or a provider that refused the search: walk
    /// the collections one by one to say which.
    Undecided,
}

/// The common case, on ov's own connection and session (see [`wire`] and
/// [`session`]): one service-wide search, then the key exchange and the
/// secret. A miss costs the search alone: the keyring comes first in the
/// chain, so most reads of values kept elsewhere pass through here, and the
/// provider's half of a key exchange is the slowest call of a read. With a
/// pinned label, the collections' labels (one batch of calls, sent while
/// the search runs) narrow the search's answer to the pinned ones.
fn get_fast(bus: &Bus, pin: Option<&str>, entry: &EntryRef) -> Result<Fast, BackendError> {
    use session::{DEST, ITEM, SERVICE, SERVICE_PATH};
    use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};
    let Some(addrs) = wire::session_addresses() else {
        return Ok(Fast::Undecided);
    };
    bus.ready_at(Some(&addrs))?;
    let limit = bus::timeout();
    let doing = format!("read {entry}");
    let fail = |e: wire::Error, doing: &str| bus.wire_error(e, doing, limit);
    let mut wire =
        Wire::open(&addrs, std::time::Instant::now() + limit).map_err(|e| fail(e, &doing))?;
    // The handshake and the search leave in one write; our half of the key
    // exchange is computed while the provider searches.
    let service = |member| Method {
        dest: DEST,
        path: SERVICE_PATH,
        iface: SERVICE,
        member,
    };
    // Gone is gone; any other refusal gets the slow path's report, and a
    // bus that takes another authentication is zbus's to talk to.
    let undecided = |e: wire::Error| -> Result<Fast, BackendError> {
        if matches!(e, wire::Error::Auth(_)) {
            return Ok(Fast::Undecided);
        }
        let be = fail(e, &doing);
        if be.kind == ErrorKind::Unavailable {
            Err(be)
        } else {
            Ok(Fast::Undecided)
        }
    };
    let search = wire
        .queue(service("SearchItems"), &(lookup_attrs(entry),))
        .and_then(|search| {
            let listed = match pin {
                Some(_) => Some(wire.queue(props(SERVICE_PATH), &(SERVICE, "Collections"))?),
                None => None,
            };
            wire.flush().map(|()| (search, listed))
        });
    let (search, listed) = match search {
        Ok(serials) => serials,
        Err(e) => return undecided(e),
    };
    let keys = KeyPair::new().map_err(|why| fail(wire::Error::Protocol(why), &doing))?;
    type Paths = Vec<OwnedObjectPath>;
    let (mut found, mut locked) = match wire.reply::<(Paths, Paths)>(search) {
        Ok(answer) => answer,
        Err(e) => return undecided(e),
    };
    if let (Some(pin), Some(listed)) = (pin, listed) {
        let pinned = match pinned_collections(&mut wire, listed, pin) {
            Ok(Some(pinned)) => pinned,
            // No such label (the slow path lists those present), or a
            // collection that would not say its label.
            Ok(None) => return Ok(Fast::Undecided),
            Err(e) => return undecided(e),
        };
        let inside = |item: &OwnedObjectPath| {
            pinned.iter().any(|c| {
                item.as_str()
                    .strip_prefix(c.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
            })
        };
        found.retain(inside);
        locked.retain(inside);
    }
    if found.is_empty() {
        return Ok(if locked.is_empty() {
            Fast::Nowhere
        } else {
            Fast::Undecided
        });
    }
    let item = match found.as_slice() {
        [one] => one,
        several => {
            // The default collection's copy wins, as on the slow path.
            let default = wire
                .call::<_, (OwnedObjectPath,)>(service("ReadAlias"), &("default",))
                .ok()
                .map(|(c,)| format!("{}/", c.as_str()));
            default
                .and_then(|d| several.iter().find(|i| i.as_str().starts_with(&d)))
                .unwrap_or(&several[0])
        }
    };
    let path = item.as_str();
    let collection = path.rsplit_once('/').map_or(path, |(c, _)| c);
    let place = format!("the collection {collection}");
    let doing = format!("read {entry} from {place}");
    let (theirs, session_path): (OwnedValue, OwnedObjectPath) = wire
        .call(
            service("OpenSession"),
            &(session::ALGORITHM, Value::from(keys.public())),
        )
        .map_err(|e| fail(e, &doing))?;
    let theirs: Vec<u8> = theirs.try_into().map_err(|_| {
        fail(
            wire::Error::Protocol("the provider's session reply holds no public key".into()),
            &doing,
        )
    })?;
    // The provider encrypts while we finish the exchange: the secret is
    // asked for as soon as the provider's key has passed its checks.
    let peer = PeerKey::new(&theirs).map_err(|why| fail(wire::Error::Protocol(why), &doing))?;
    let get = wire
        .send(
            Method {
                dest: DEST,
                path,
                iface: ITEM,
                member: "GetSecret",
            },
            &(&session_path,),
        )
        .map_err(|e| fail(e, &doing))?;
    let session = keys
        .agree(&peer, session_path)
        .map_err(|why| fail(wire::Error::Protocol(why), &doing))?;
    let reply: SecretReply = wire.reply(get).map_err(|e| fail(e, &doing))?;
    let bytes = session
        .open(reply)
        .map_err(|why| fail(wire::Error::Protocol(why), &doing))?;
    Ok(Fast::Found(Found { bytes, place }))
}

/// `org.freedesktop.DBus.Properties.Get` on `path`.
fn props(path: &str) -> Method<'_> {
    Method {
        dest: session::DEST,
        path,
        iface: "org.freedesktop.DBus.Properties",
        member: "Get",
    }
}

/// The collections labelled `pin`, from the `Collections` property (the
/// reply to `listed`) and one batch of `Label` reads. `None` when no
/// collection has that label.
fn pinned_collections(
    wire: &mut Wire,
    listed: u32,
    pin: &str,
) -> Result<Option<Vec<zbus::zvariant::OwnedObjectPath>>, wire::Error> {
    use zbus::zvariant::{OwnedObjectPath, OwnedValue};
    let misread = |what: &str| wire::Error::Protocol(format!("{what} is not what the API says"));
    let (all,): (OwnedValue,) = wire.reply(listed)?;
    let all: Vec<OwnedObjectPath> = all.try_into().map_err(|_| misread("Collections"))?;
    let mut asked = Vec::with_capacity(all.len());
    for c in &all {
        asked.push(wire.queue(props(c.as_str()), &(session::COLLECTION, "Label"))?);
    }
    wire.flush()?;
    let mut pinned = Vec::new();
    for (c, serial) in all.into_iter().zip(asked) {
        let (label,): (OwnedValue,) = wire.reply(serial)?;
        let label: String = label.try_into().map_err(|_| misread("a Label"))?;
        if label == pin {
            pinned.push(c);
        }
    }
    Ok((!pinned.is_empty()).then_some(pinned))
}

fn get_in(
    link: &'static Link,
    pin: Option<&str>,
    entry: &EntryRef,
) -> Result<Option<Found>, BackendError> {
    let scan = scan(link)?;
    let colls = select(&scan, pin)?;
    let mut locked = Vec::new();
    let mut unreadable: Vec<String> = if pin.is_none() {
        scan.broken
            .iter()
            .map(|b| format!("{}: {}", b.path, b.reason))
            .collect()
    } else {
        Vec::new()
    };
    for c in colls {
        let items = match c.c.search_items(lookup_attrs(entry)) {
            Ok(items) => items,
            Err(e) => {
                let be = or_gone(&e, "search")?;
                if c.locked {
                    locked.push(c.label.clone());
                } else {
                    unreadable.push(format!("{:?}: {}", c.label, be.message));
                }
                continue;
            }
        };
        let Some(item) = items.first() else { continue };
        if c.locked {
            locked.push(c.label.clone());
            continue;
        }
        return read_secret(item, entry, format!("the collection {:?}", c.label)).map(Some);
    }
    if !locked.is_empty() {
        return Err(locked_error(
            format!(
                "{entry} is in the locked keyring collection{} {}",
                if locked.len() == 1 { "" } else { "s" },
                quoted_list(&locked)
            ),
            Some(entry),
        ));
    }
    if !unreadable.is_empty() {
        return Err(unavailable(format!(
            "{entry} is not in the readable keyring collections, and {} could not be searched ({})",
            if unreadable.len() == 1 { "one" } else { "some" },
            unreadable.join("; ")
        ))
        .with_hint("ov doctor keyring"));
    }
    Ok(None)
}

/// The collection writes go to: the pinned one, or the default alias.
fn write_target<'s>(scan: &'s Scan, pin: Option<&str>) -> Result<&'s Coll, BackendError> {
    if let Some(pin) = pin {
        return select(scan, Some(pin)).map(|v| v[0]);
    }
    if let Some(c) = scan.colls.iter().find(|c| c.is_default) {
        return Ok(c);
    }
    let why = match &scan.default {
        Ok(None) => "the Secret Service has no default collection".to_owned(),
        Ok(Some(path)) => format!("the default collection {path} does not answer"),
        Err(reason) => format!("the default alias cannot be read: {reason}"),
    };
    Err(BackendError::new(
        ErrorKind::Unavailable,
        format!("{why}, so ov does not know where to write"),
    )
    .with_hint(pin_fix(scan)))
}

/// GNOME Keyring's in-memory collection: what is written there is gone at
/// logout, so ov never steers writes into it.
pub(crate) fn in_memory(c: &Coll) -> bool {
    c.path.ends_with("/collection/session")
}

/// With no persistent collection at all: GNOME Keyring creates the login
/// keyring, with the password given, and makes it the default.
pub const CREATE_LOGIN: &str = "read -rs PW && printf '%s' \"$PW\" | gnome-keyring-daemon --replace --unlock --components=secrets; unset PW   # GNOME Keyring: creates the login keyring with that password and makes it the default";

/// A label to pin to when the default does not work: the first healthy
/// persistent one, never the in-memory `session` collection, whose label
/// is empty (pinning to it would unpin) and whose items die at logout.
pub(crate) fn pin_fix(scan: &Scan) -> String {
    let persistent = || {
        scan.colls
            .iter()
            .filter(|c| !in_memory(c) && !c.label.is_empty())
    };
    match persistent().find(|c| !c.locked).or(persistent().next()) {
        Some(c) => format!("ov settings set {LABEL_SETTING} {}", q(&c.label)),
        None if scan.colls.is_empty() => {
            format!("{}   # no collection to write to", bus::START_PROVIDER)
        }
        None => CREATE_LOGIN.to_owned(),
    }
}

fn set_in(
    link: &'static Link,
    pin: Option<&str>,
    entry: &EntryRef,
    value: &Secret,
) -> Result<(), BackendError> {
    let scan = scan(link)?;
    let target = write_target(&scan, pin)?;
    let label = &target.label;
    if target.locked {
        return Err(locked_error(
            format!("the keyring collection {label:?} is locked; nothing was written"),
            None,
        ));
    }
    let doing = format!("store {entry} in the collection {label:?}");
    let existing = target
        .c
        .search_items(lookup_attrs(entry))
        .map_err(|e| map_error(&e, &doing))?;
    let bytes = value.expose().as_bytes();
    match existing.first() {
        // Update in place: an item another tool made keeps its attributes,
        // so that tool still finds the new value.
        Some(item) => item.set_secret(bytes, CONTENT_TYPE),
        None => target
            .c
            .create_item(
                &entry.to_string(),
                write_attrs(entry),
                bytes,
                true,
                CONTENT_TYPE,
            )
            .map(|_| ()),
    }
    .map_err(|e| map_error(&e, &doing))
}

fn delete_in(
    link: &'static Link,
    pin: Option<&str>,
    entry: &EntryRef,
) -> Result<bool, BackendError> {
    let scan = scan(link)?;
    let mut removed_from = Vec::new();
    let mut locked = Vec::new();
    for c in select(&scan, pin)? {
        let doing = format!("delete {entry} from the collection {:?}", c.label);
        let items =
            c.c.search_items(lookup_attrs(entry))
                .map_err(|e| map_error(&e, &doing))?;
        if items.is_empty() {
            continue;
        }
        if c.locked {
            locked.push(c.label.clone());
            continue;
        }
        for item in &items {
            item.delete().map_err(|e| map_error(&e, &doing))?;
        }
        removed_from.push(c.label.clone());
    }
    if !locked.is_empty() {
        let done = if removed_from.is_empty() {
            String::new()
        } else {
            format!(" (removed from {})", quoted_list(&removed_from))
        };
        return Err(locked_error(
            format!(
                "{entry} is still in the locked keyring collection{} {}{done}",
                if locked.len() == 1 { "" } else { "s" },
                quoted_list(&locked)
            ),
            Some(entry),
        ));
    }
    Ok(!removed_from.is_empty())
}

/// The entry an item stands for: ov's own (`service` + `key`), or another
/// tool's under the common `service` + `username` pair.
fn entry_of(attrs: &HashMap<String, String>) -> Option<EntryRef> {
    let service = attrs.get(ATTR_SERVICE)?;
    let key = if attrs.get(ATTR_APPLICATION).map(String::as_str) == Some(APPLICATION) {
        attrs.get(ATTR_KEY).or(attrs.get(ATTR_USERNAME))?
    } else {
        attrs.get(ATTR_USERNAME)?
    };
    (!service.is_empty() && !key.is_empty()).then(|| EntryRef::new(service.as_str(), key.as_str()))
}

/// Every item of an unlocked collection that stands for an entry, with
/// the item: ov's own and other tools' `service` + `username` ones.
pub(crate) fn entries_in<'s>(c: &'s Coll) -> Result<Vec<(EntryRef, Item<'s>)>, BackendError> {
    let doing = format!("list the collection {:?}", c.label);
    let mut out = Vec::new();
    for item in c.c.get_all_items().map_err(|e| map_error(&e, &doing))? {
        let attrs = item.get_attributes().map_err(|e| map_error(&e, &doing))?;
        if let Some(e) = entry_of(&attrs) {
            out.push((e, item));
        }
    }
    Ok(out)
}

/// Entries in every selected collection, and what could not be listed.
fn list_in(
    link: &'static Link,
    pin: Option<&str>,
    service: Option<&str>,
) -> Result<(Vec<EntryRef>, Vec<String>), BackendError> {
    let scan = scan(link)?;
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for c in select(&scan, pin)? {
        if c.locked {
            notes.push(format!(
                "the keyring collection {:?} is locked; its entries are not listed \
                 (unlock: {})",
                c.label,
                unlock_hint(None)
            ));
            continue;
        }
        out.extend(
            entries_in(c)?
                .into_iter()
                .map(|(e, _)| e)
                .filter(|e| service_matches(&e.service, service)),
        );
    }
    if pin.is_none() {
        for b in &scan.broken {
            notes.push(format!(
                "the keyring collection {} cannot be read ({}); its entries are not listed \
                 (see: ov doctor keyring)",
                b.path, b.reason
            ));
        }
    }
    out.sort();
    out.dedup();
    Ok((out, notes))
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

    fn list(&self, ctx: &Context, service: Option<&str>) -> Result<Vec<EntryRef>, BackendError> {
        let pin = pinned_label(ctx);
        let service = service.map(str::to_owned);
        let (entries, skipped) = self
            .bus
            .run(move |link| list_in(link, pin.as_deref(), service.as_deref()))?;
        *self.skipped.lock().unwrap_or_else(|p| p.into_inner()) = skipped;
        Ok(entries)
    }

    fn list_notices(&self, _ctx: &Context) -> Vec<String> {
        std::mem::take(&mut *self.skipped.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn checks(&self, ctx: &Context) -> Vec<CheckReport> {
        let mut reports = checks::run(&self.bus, pinned_label(ctx));
        // A headless machine without a session bus is normal unless the
        // user asked for the keyring: then it is the thing to fix.
        if ctx.setting_str("secret_backend") != Some("keyring") {
            for r in &mut reports {
                if r.id == "keyring.session_bus" && r.fix.as_deref() == Some(bus::NO_BUS_FIX) {
                    r.status = ov_plugin_api::Status::Ok;
                    r.fix = None;
                }
            }
        }
        reports
    }
}

ov_plugin_api::export_plugin!(KeyringBackend::default());
