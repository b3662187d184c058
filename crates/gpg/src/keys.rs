//! Keys: the secret keys gpg lists, looking one up, import and export,
//! checking a passphrase, generating a key.

use std::path::Path;

use zeroize::Zeroizing;

use crate::{Error, Gpg, Result, fix};

/// One secret key as `--list-secret-keys --with-colons` shows it.
#[derive(Debug, Clone, Default)]
pub struct SecretKey {
    pub keyid: String,
    pub fingerprint: String,
    pub uid: String,
    /// Primary key first, then subkeys.
    pub subkeys: Vec<SubKey>,
}

#[derive(Debug, Clone, Default)]
pub struct SubKey {
    pub keyid: String,
    pub fingerprint: String,
    pub keygrip: String,
    /// Capability letters (`e` encrypt, `s` sign, `c` certify).
    pub caps: String,
}

impl SecretKey {
    pub fn grips(&self) -> impl Iterator<Item = &str> {
        self.subkeys.iter().map(|s| s.keygrip.as_str())
    }
    pub fn encryption_grips(&self) -> impl Iterator<Item = &str> {
        self.subkeys
            .iter()
            .filter(|s| s.caps.contains('e'))
            .map(|s| s.keygrip.as_str())
    }
    /// Does `id` (key id, fingerprint, or a suffix) name this key or a subkey?
    pub fn matches(&self, id: &str) -> bool {
        let id = id.trim_start_matches("0x").to_ascii_uppercase();
        if id.len() < 8 {
            return false;
        }
        self.subkeys
            .iter()
            .any(|s| s.fingerprint.ends_with(&id) || s.keyid.ends_with(&id))
    }
}

impl Gpg {
    /// The public key `id` names: its fingerprint and first user id.
    pub fn public_key(&self, id: &str) -> Result<(String, String)> {
        let r = self.run(&["--with-colons", "--list-keys", "--", id], None)?;
        let text = r.stdout_text();
        let fpr = text
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .map(str::to_owned);
        let uid = text
            .lines()
            .find(|l| l.starts_with("uid:"))
            .and_then(|l| l.split(':').nth(9))
            .unwrap_or("")
            .to_owned();
        match (r.ok, fpr) {
            (true, Some(f)) => Ok((f, unescape_colons(&uid))),
            _ => Err(Error::new(format!(
                "unknown recipient {id}: no public key for it in the keyring"
            ))
            .hint(fix::fetch_public(id))),
        }
    }

    /// Secret keys in the keyring.
    pub fn secret_keys(&self) -> Result<Vec<SecretKey>> {
        let r = self.run(
            &["--with-colons", "--with-keygrip", "--list-secret-keys"],
            None,
        )?;
        if !r.ok && !r.messages.trim().is_empty() && r.stdout.is_empty() {
            return Err(Error::new(format!(
                "gpg cannot list the secret keys: {}",
                r.messages.trim()
            ))
            .hint(fix::DOCTOR));
        }
        Ok(parse_secret_keys(&r.stdout_text()))
    }

    /// The secret key `id` names, or the only/first one when `id` is None.
    pub fn pick_key(&self, id: Option<&str>) -> Result<SecretKey> {
        let keys = self.secret_keys()?;
        match id {
            Some(id) => keys.into_iter().find(|k| k.matches(id)).ok_or_else(|| {
                Error::new(format!("no secret key {id} in the keyring"))
                    .hint(fix::import_key(id))
                    .hint("gpg --list-secret-keys   # the keys there are")
            }),
            None => keys.into_iter().next().ok_or_else(|| {
                Error::new("no secret key in the keyring")
                    .hint(fix::SETUP)
                    .hint(fix::IMPORT_KEYSTORE)
            }),
        }
    }

    /// Import keys from `file`; with a passphrase, through loopback pinentry.
    pub fn import(&self, file: &Path, passphrase: Option<&[u8]>) -> Result<String> {
        let path = file.to_string_lossy();
        let mut args = Self::pinentry_args(passphrase.is_some());
        args.extend(["--import", "--", &path]);
        let r = self.run(&args, passphrase)?;
        if !r.ok && !r.has_status("IMPORT_OK") {
            return Err(Error::new(format!(
                "importing {} failed: {}",
                file.display(),
                r.messages.trim()
            ))
            .hint(fix::DOCTOR));
        }
        Ok(r.messages)
    }

    pub fn import_ownertrust(&self, file: &Path) -> Result<()> {
        let path = file.to_string_lossy();
        let r = self.run(&["--import-ownertrust", "--", &path], None)?;
        if !r.ok {
            return Err(Error::new(format!(
                "importing the owner trust from {} failed: {}",
                file.display(),
                r.messages.trim()
            )));
        }
        Ok(())
    }

    pub fn export_public(&self, fpr: &str) -> Result<Vec<u8>> {
        let r = self.run(&["--armor", "--export", "--", fpr], None)?;
        if !r.ok || r.stdout.is_empty() {
            return Err(Error::new(format!(
                "exporting the public key {fpr} failed: {}",
                r.messages.trim()
            )));
        }
        Ok(r.stdout.to_vec())
    }

    pub fn export_secret(
        &self,
        fpr: &str,
        passphrase: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let mut args = Self::pinentry_args(passphrase.is_some());
        args.extend(["--armor", "--export-secret-keys", "--", fpr]);
        let r = self.run(&args, passphrase)?;
        if !r.ok || r.stdout.is_empty() {
            return Err(Error::new(format!(
                "exporting the secret key {fpr} failed: {}",
                r.messages.trim()
            ))
            .hint("ov secrets gpg export-key --passphrase-file <FILE>   # or on a terminal, to enter the passphrase")
            .hint(fix::DOCTOR));
        }
        Ok(r.stdout)
    }

    pub fn export_ownertrust(&self) -> Result<Vec<u8>> {
        let r = self.run(&["--export-ownertrust"], None)?;
        Ok(r.stdout.to_vec())
    }

    /// Check a passphrase against a key by signing nothing with it.
    pub fn check_passphrase(&self, fpr: &str, passphrase: &[u8]) -> Result<()> {
        let r = self.run(
            &[
                "--pinentry-mode",
                "loopback",
                "--passphrase-fd",
                "0",
                "--local-user",
                fpr,
                "--output",
                "/dev/null",
                "--yes",
                "--sign",
                "/dev/null",
            ],
            Some(passphrase),
        )?;
        if r.ok {
            Ok(())
        } else if r.has_status("BAD_PASSPHRASE") || r.messages.contains("Bad passphrase") {
            Err(Error::new(format!("the passphrase is wrong for key {fpr}")))
        } else {
            Err(Error::new(format!(
                "cannot check the passphrase of {fpr}: {}",
                r.messages.trim()
            )))
        }
    }

    /// Generate a key (default algorithms, no expiry) protected by `passphrase`.
    pub fn generate(&self, uid: &str, passphrase: &[u8]) -> Result<SecretKey> {
        let r = self.run(
            &[
                "--pinentry-mode",
                "loopback",
                "--passphrase-fd",
                "0",
                "--quick-gen-key",
                uid,
                "default",
                "default",
                "never",
            ],
            Some(passphrase),
        )?;
        if !r.ok {
            return Err(Error::new(format!(
                "generating a key for {uid} failed: {}",
                r.messages.trim()
            )));
        }
        let fpr = r
            .status_args("KEY_CREATED")
            .first()
            .and_then(|a| a.get(1).cloned())
            .unwrap_or_default();
        self.pick_key(Some(&fpr))
    }
}

/// `\x3a` and friends in colon listings.
fn unescape_colons(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\\x") {
        out.push_str(&rest[..i]);
        let hex = rest
            .get(i + 2..i + 4)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push_str("\\x");
                rest = &rest[i + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn parse_secret_keys(text: &str) -> Vec<SecretKey> {
    let mut keys: Vec<SecretKey> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        let field = |i: usize| f.get(i).copied().unwrap_or("").to_owned();
        match f.first().copied() {
            Some("sec") => keys.push(SecretKey {
                keyid: field(4),
                subkeys: vec![SubKey {
                    keyid: field(4),
                    caps: field(11),
                    ..SubKey::default()
                }],
                ..SecretKey::default()
            }),
            Some("ssb") => {
                if let Some(k) = keys.last_mut() {
                    k.subkeys.push(SubKey {
                        keyid: field(4),
                        caps: field(11),
                        ..SubKey::default()
                    });
                }
            }
            Some("fpr") => {
                if let Some(k) = keys.last_mut() {
                    let fpr = field(9);
                    if k.fingerprint.is_empty() {
                        k.fingerprint = fpr.clone();
                    }
                    if let Some(s) = k.subkeys.last_mut()
                        && s.fingerprint.is_empty()
                    {
                        s.fingerprint = fpr;
                    }
                }
            }
            Some("grp") => {
                if let Some(s) = keys.last_mut().and_then(|k| k.subkeys.last_mut())
                    && s.keygrip.is_empty()
                {
                    s.keygrip = field(9);
                }
            }
            Some("uid") => {
                if let Some(k) = keys.last_mut()
                    && k.uid.is_empty()
                {
                    k.uid = unescape_colons(&field(9));
                }
            }
            _ => {}
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colon_listing_parses() {
        let text = "sec:u:255:22:AAAABBBBCCCCDDDD:1:::::scESC:::+:::ed25519:::0:\n\
fpr:::::::::1111AAAABBBBCCCCDDDD:\n\
grp:::::::::GRIPONE:\n\
uid:u::::1::X::Test \\x3a T <t@example.com>::::::::::0:\n\
ssb:u:255:18:EEEEFFFF00001111:1::::::e:::+:::cv25519::\n\
fpr:::::::::2222EEEEFFFF00001111:\n\
grp:::::::::GRIPTWO:\n";
        let keys = parse_secret_keys(text);
        assert_eq!(keys.len(), 1);
        let k = &keys[0];
        assert_eq!(k.fingerprint, "1111AAAABBBBCCCCDDDD");
        assert_eq!(k.uid, "Test : T <t@example.com>");
        assert_eq!(k.grips().collect::<Vec<_>>(), ["GRIPONE", "GRIPTWO"]);
        assert_eq!(k.encryption_grips().collect::<Vec<_>>(), ["GRIPTWO"]);
        assert!(k.matches("EEEEFFFF00001111"));
        assert!(k.matches("0xccccdddd"));
        assert!(!k.matches("DDDD"));
    }
}
