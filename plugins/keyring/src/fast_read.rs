//! The read path on ov's own connection and session: one service-wide
//! search, then the key exchange and the secret.

use ov_plugin_api::{BackendError, EntryRef, ErrorKind};
use ov_secret_service::bus::{self, Bus};
use ov_secret_service::session::{self, KeyPair, PeerKey, SecretReply};
use ov_secret_service::wire::{self, Method, Wire};

use crate::items::{Found, lookup_attrs};

/// What the service-wide search decided.
pub(crate) enum Fast {
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
pub(crate) fn get_fast(
    bus: &Bus,
    pin: Option<&str>,
    entry: &EntryRef,
) -> Result<Fast, BackendError> {
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
