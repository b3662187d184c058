//! The two Secret Service schemas of `ov secrets gpg`, over the keyring
//! plugin's connection (worker thread + deadline: a dead provider cannot
//! hang ov).
//!
//! `org.gnupg.Passphrase` is pinentry's own: its libsecret lookup
//! (pinentry `secmem/password-cache.c`) searches the schema name with the
//! attribute `key-grip` set to the agent's `SETKEYINFO` value, which is
//! `n/<KEYGRIP>` for gpg's normal cache mode. ov stores exactly that, and
//! also `keygrip=<KEYGRIP>` for people searching by the bare grip.

use std::collections::HashMap;

use ov_plugin_api::BackendError;
use ov_plugin_keyring::bus::{Bus, Link, map_error};
use zeroize::Zeroizing;

use crate::GpgError;

pub const SCHEMA_PASSPHRASE: &str = "org.gnupg.Passphrase";
pub const SCHEMA_KEY: &str = "org.gnupg.Key";
const ATTR_SCHEMA: &str = "xdg:schema";
const CONTENT_TYPE: &str = "text/plain";

impl From<BackendError> for GpgError {
    fn from(e: BackendError) -> Self {
        GpgError {
            message: e.message,
            hints: e.hints,
        }
    }
}

/// The `key-grip` value pinentry looks up for a grip.
pub fn pinentry_keyinfo(grip: &str) -> String {
    format!("n/{grip}")
}

fn passphrase_attrs(grip: &str) -> Vec<(String, String)> {
    vec![
        (ATTR_SCHEMA.into(), SCHEMA_PASSPHRASE.into()),
        ("key-grip".into(), pinentry_keyinfo(grip)),
    ]
}

fn as_map(v: &[(String, String)]) -> HashMap<&str, &str> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Write (or overwrite) the one item matching `search` in the default
/// collection.
fn put(
    link: &'static Link,
    search: &[(String, String)],
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
        return Err(BackendError::new(
            ov_plugin_api::ErrorKind::Locked,
            "the default Secret Service collection is locked; nothing was stored",
        )
        .with_hint("secret-tool search --unlock xdg:schema org.gnupg.Passphrase   # the keyring asks for its password"));
    }
    let found = coll
        .search_items(as_map(search))
        .map_err(|e| map_error(&e, &doing))?;
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

    /// Store `passphrase` for `grip` as pinentry's libsecret lookup finds it.
    pub fn store_passphrase(&self, grip: &str, passphrase: &[u8]) -> Result<(), GpgError> {
        let search = passphrase_attrs(grip);
        let mut attrs = search.clone();
        attrs.push(("keygrip".into(), grip.into()));
        attrs.push(("stored-by".into(), "ov".into()));
        let label = format!("GnuPG: {}", pinentry_keyinfo(grip));
        let secret = Zeroizing::new(passphrase.to_vec());
        Ok(self
            .bus
            .run(move |link| put(link, &search, &attrs, &label, &secret))?)
    }

    /// Is a passphrase stored for `grip`?
    pub fn has_passphrase(&self, grip: &str) -> Result<bool, GpgError> {
        let search = passphrase_attrs(grip);
        Ok(!self
            .bus
            .run(move |link| get(link, &search, false))?
            .is_empty())
    }

    /// The stored passphrase for `grip`, if any.
    pub fn passphrase(&self, grip: &str) -> Result<Option<Zeroizing<Vec<u8>>>, GpgError> {
        let search = passphrase_attrs(grip);
        Ok(self
            .bus
            .run(move |link| get(link, &search, true))?
            .into_iter()
            .next()
            .map(|(_, s)| s))
    }

    /// Back up an armored secret key as `org.gnupg.Key` (keyid, uid).
    pub fn store_key(&self, keyid: &str, uid: &str, armored: &[u8]) -> Result<(), GpgError> {
        let search = vec![
            (ATTR_SCHEMA.into(), SCHEMA_KEY.into()),
            ("keyid".into(), keyid.to_owned()),
        ];
        let mut attrs = search.clone();
        attrs.push(("uid".into(), uid.to_owned()));
        let label = format!("GnuPG key {keyid} ({uid})");
        let secret = Zeroizing::new(armored.to_vec());
        Ok(self
            .bus
            .run(move |link| put(link, &search, &attrs, &label, &secret))?)
    }

    /// Key backups: (keyid, uid, armored key), optionally for one key id
    /// (matched as a suffix, so short ids work).
    pub fn keys(&self, keyid: Option<&str>, secrets: bool) -> Result<Vec<KeyBackup>, GpgError> {
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
