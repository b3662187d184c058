//! Items through the `secret-service` crate: the read that walks the
//! collections one by one, writes, deletes and lists.

use std::collections::HashMap;

use ov_plugin_api::{BackendError, EntryRef, ErrorKind, Secret, service_matches};
use ov_secret_service::bus::{Link, map_error, unavailable};
use secret_service::blocking::Item;
use zeroize::Zeroizing;

use crate::collections::{Coll, or_gone, scan, select, write_target};
use crate::locked::{locked_error, quoted_list, unlock_hint};
use crate::{
    APPLICATION, ATTR_APPLICATION, ATTR_KEY, ATTR_SERVICE, ATTR_USERNAME, CONTENT_TYPE, q,
};

/// The attributes a read matches: ov's items and other tools' alike.
pub(crate) fn lookup_attrs(entry: &EntryRef) -> HashMap<&str, &str> {
    HashMap::from([
        (ATTR_SERVICE, entry.service.as_str()),
        (ATTR_USERNAME, entry.key.as_str()),
    ])
}

pub(crate) fn write_attrs(entry: &EntryRef) -> HashMap<&str, &str> {
    HashMap::from([
        (ATTR_APPLICATION, APPLICATION),
        (ATTR_SERVICE, entry.service.as_str()),
        (ATTR_KEY, entry.key.as_str()),
        (ATTR_USERNAME, entry.key.as_str()),
    ])
}

/// A value as the provider holds it, and where it was found, for messages
/// (`the collection "Login"`).
pub(crate) struct Found {
    pub(crate) bytes: Zeroizing<Vec<u8>>,
    pub(crate) place: String,
}

pub(crate) fn read_secret(
    item: &Item<'_>,
    entry: &EntryRef,
    place: String,
) -> Result<Found, BackendError> {
    let bytes = Zeroizing::new(
        item.get_secret()
            .map_err(|e| map_error(&e, &format!("read {entry} from {place}")))?,
    );
    Ok(Found { bytes, place })
}

/// A value as text, or a clear error for bytes that are not UTF-8.
pub(crate) fn text_secret(found: Found, entry: &EntryRef) -> Result<Secret, BackendError> {
    let Found { bytes, place } = found;
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Secret::from(text)),
        Err(_) => Err(BackendError::of(
            ErrorKind::Unsupported,
            format!(
                "the keyring item for {entry} in {place} holds {} bytes that \
                 are not UTF-8 text; ov reads text values only",
                bytes.len()
            ),
        )
        .hint(format!(
            "ov secrets get --raw {} {} > value.bin   # the bytes as stored",
            q(&entry.service),
            q(&entry.key)
        ))),
    }
}

pub(crate) fn get_in(
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
        .hint("ov doctor keyring"));
    }
    Ok(None)
}

pub(crate) fn set_in(
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

pub(crate) fn delete_in(
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
pub(crate) fn entry_of(attrs: &HashMap<String, String>) -> Option<EntryRef> {
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
pub(crate) fn list_in(
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
