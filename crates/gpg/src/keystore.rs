//! The two Secret Service schemas of `ov secrets gpg`, over the Secret Service
//! client's connection (worker thread + deadline: a dead provider cannot
//! hang ov).
//!
//! `org.gnupg.Passphrase` is pinentry's own: its libsecret lookup
//! (`secret_password_lookup` with that schema and no flags, so `xdg:schema`
//! must match) searches for the agent's `SETKEYINFO` value, `n/<KEYGRIP>`
//! in gpg's normal cache mode, under an attribute whose name changed:
//! `keygrip` up to pinentry 1.2 (Debian 12's pinentry-gnome3 1.2.1),
//! `key-grip` in newer upstream releases. ov stores one item per keygrip
//! carrying both, so either version finds it.

use std::collections::HashMap;

use ov_plugin_api::BackendError;
use ov_secret_service::bus::{Bus, Link, map_error};
use zeroize::Zeroizing;

use crate::Error;

pub const SCHEMA_PASSPHRASE: &str = "org.gnupg.Passphrase";
pub const SCHEMA_KEY: &str = "org.gnupg.Key";
const ATTR_SCHEMA: &str = "xdg:schema";
const CONTENT_TYPE: &str = "text/plain";

/// The `key-grip` value pinentry looks up for a grip.
pub fn pinentry_keyinfo(grip: &str) -> String {
    format!("n/{grip}")
}

/// pinentry up to 1.2 (Debian 12) looks the passphrase up under this name …
pub const ATTR_GRIP_OLD: &str = "keygrip";
/// … and newer pinentry under this one.
pub const ATTR_GRIP_NEW: &str = "key-grip";

/// Schema plus one pinentry generation's attribute.
fn passphrase_search(attr: &str, grip: &str) -> Vec<(String, String)> {
    vec![
        (ATTR_SCHEMA.into(), SCHEMA_PASSPHRASE.into()),
        (attr.into(), pinentry_keyinfo(grip)),
    ]
}

/// What ov stores and the doctor looks for: both generations' attributes.
fn passphrase_attrs(grip: &str) -> Vec<(String, String)> {
    let mut attrs = passphrase_search(ATTR_GRIP_NEW, grip);
    attrs.push((ATTR_GRIP_OLD.into(), pinentry_keyinfo(grip)));
    attrs
}

fn as_map(v: &[(String, String)]) -> HashMap<&str, &str> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Write (or overwrite) the item the first of `searches` that matches
/// finds in the default collection.
fn put(
    link: &'static Link,
    searches: &[Vec<(String, String)>],
    attrs: &[(String, String)],
    label: &str,
    secret: &[u8],
) -> Result<(), BackendError> {
    let doing = format!("store {label:?} in the Secret Service");
    let coll = link
        .ss()?
        .get_default_collection()
        .map_err(|e| map_error(&e, &doing))?;
    if coll.is_locked().map_err(|e| map_error(&e, &doing))? {
        return Err(BackendError::of(
            ov_plugin_api::ErrorKind::Locked,
            "the default Secret Service collection is locked; nothing was stored",
        )
        .hint("secret-tool search --unlock xdg:schema org.gnupg.Passphrase   # the keyring asks for its password"));
    }
    let mut found = Vec::new();
    for search in searches {
        found = coll
            .search_items(as_map(search))
            .map_err(|e| map_error(&e, &doing))?;
        if !found.is_empty() {
            break;
        }
    }
    match found.first() {
        Some(item) => {
            item.set_secret(secret, CONTENT_TYPE)
                .map_err(|e| map_error(&e, &doing))?;
            item.set_attributes(as_map(attrs))
                .map_err(|e| map_error(&e, &doing))
        }
        None => coll
            .create_item(label, as_map(attrs), secret, true, CONTENT_TYPE)
            .map(|_| ())
            .map_err(|e| map_error(&e, &doing)),
    }
}

/// Items matching `search` in unlocked collections: attributes and secret.
type Found = Vec<(HashMap<String, String>, Zeroizing<Vec<u8>>)>;

fn get(
    link: &'static Link,
    search: &[(String, String)],
    secrets: bool,
) -> Result<Found, BackendError> {
    let doing = "search the Secret Service";
    let found = link
        .ss()?
        .search_items(as_map(search))
        .map_err(|e| map_error(&e, doing))?;
    let mut out = Vec::new();
    for item in found.unlocked {
        let attrs = item.get_attributes().map_err(|e| map_error(&e, doing))?;
        let secret = if secrets {
            Zeroizing::new(item.get_secret().map_err(|e| map_error(&e, doing))?)
        } else {
            Zeroizing::new(Vec::new())
        };
        out.push((attrs, secret));
    }
    Ok(out)
}

/// A key backup: key id, user id, armored secret key.
pub type KeyBackup = (String, String, Zeroizing<Vec<u8>>);

/// Secret Service access for the gpg commands.
#[derive(Debug, Default, Clone)]
pub struct Keystore {
    bus: Bus,
}

impl Keystore {
    pub fn new() -> Self {
        Keystore::default()
    }

    /// Store `passphrase` for `grip` as both pinentry generations find it,
    /// replacing an item either of them (or an older ov) stored.
    pub fn store_passphrase(&self, grip: &str, passphrase: &[u8]) -> Result<(), Error> {
        let searches = vec![
            passphrase_search(ATTR_GRIP_NEW, grip),
            passphrase_search(ATTR_GRIP_OLD, grip),
        ];
        let mut attrs = passphrase_attrs(grip);
        attrs.push(("stored-by".into(), "ov".into()));
        let label = format!("GnuPG: {}", pinentry_keyinfo(grip));
        let secret = Zeroizing::new(passphrase.to_vec());
        self.bus
            .run(move |link| put(link, &searches, &attrs, &label, &secret))
    }

    /// Is a passphrase stored for `grip` where every pinentry finds it
    /// (`keygrip` and `key-grip` both `n/<KEYGRIP>`)?
    pub fn has_passphrase(&self, grip: &str) -> Result<bool, Error> {
        let search = passphrase_attrs(grip);
        Ok(!self
            .bus
            .run(move |link| get(link, &search, false))?
            .is_empty())
    }

    /// The stored passphrase for `grip`: ov's item, or one that either
    /// pinentry generation stored or would find.
    pub fn passphrase(&self, grip: &str) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        let searches = vec![
            passphrase_attrs(grip),
            passphrase_search(ATTR_GRIP_OLD, grip),
            passphrase_search(ATTR_GRIP_NEW, grip),
        ];
        self.bus.run(move |link| {
            for search in &searches {
                if let Some((_, s)) = get(link, search, true)?.into_iter().next() {
                    return Ok(Some(s));
                }
            }
            Ok(None)
        })
    }

    /// Back up an armored secret key as `org.gnupg.Key` (keyid, uid).
    pub fn store_key(&self, keyid: &str, uid: &str, armored: &[u8]) -> Result<(), Error> {
        let search = vec![
            (ATTR_SCHEMA.into(), SCHEMA_KEY.into()),
            ("keyid".into(), keyid.to_owned()),
        ];
        let mut attrs = search.clone();
        attrs.push(("uid".into(), uid.to_owned()));
        let label = format!("GnuPG key {keyid} ({uid})");
        let secret = Zeroizing::new(armored.to_vec());
        let searches = vec![search];
        self.bus
            .run(move |link| put(link, &searches, &attrs, &label, &secret))
    }

    /// Key backups: (keyid, uid, armored key), optionally for one key id
    /// (matched as a suffix, so short ids work).
    pub fn keys(&self, keyid: Option<&str>, secrets: bool) -> Result<Vec<KeyBackup>, Error> {
        let search = vec![(ATTR_SCHEMA.to_owned(), SCHEMA_KEY.to_owned())];
        let found = self.bus.run(move |link| get(link, &search, secrets))?;
        let want = keyid.map(|k| k.trim_start_matches("0x").to_ascii_uppercase());
        Ok(found
            .into_iter()
            .filter_map(|(a, s)| {
                let id = a.get("keyid").cloned().unwrap_or_default();
                let uid = a.get("uid").cloned().unwrap_or_default();
                match &want {
                    Some(w) if !id.to_ascii_uppercase().ends_with(w.as_str()) => None,
                    _ => Some((id, uid, s)),
                }
            })
            .collect())
    }
}
