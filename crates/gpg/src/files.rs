//! Encrypted files: decrypting (with the stored passphrase when nobody can
//! answer a pinentry), what a failure means, recipients, encrypting.

use std::path::Path;

use zeroize::Zeroizing;

use crate::{Error, Gpg, Result, Run, can_prompt, fix, keystore};

impl Gpg {
    /// Decrypt `file`; the errors say which `ov secrets gpg` command fixes
    /// them. With nobody to answer a pinentry (no terminal, no display) and
    /// the passphrase not cached in the agent, the passphrase stored in the
    /// Secret Service for the file's keygrip is handed to gpg on a pipe
    /// (`--pinentry-mode loopback --passphrase-fd 0`); with none stored the
    /// decryption fails at once, as before.
    pub fn decrypt(&self, file: &Path) -> Result<Zeroizing<Vec<u8>>> {
        if can_prompt() {
            return self.decrypt_with(file, true);
        }
        let path = file.to_string_lossy();
        let r = self.run(
            &[
                "--yes",
                "--pinentry-mode",
                "error",
                "--decrypt",
                "--",
                &path,
            ],
            None,
        )?;
        if r.ok {
            return Ok(r.stdout);
        }
        let first = self.diagnose(file, &r);
        if !needs_pinentry(&r) {
            return Err(first);
        }
        let enc_to: Vec<String> = r
            .status_args("ENC_TO")
            .into_iter()
            .filter_map(|a| a.first().map(|k| k.to_ascii_uppercase()))
            .collect();
        let keys = self.secret_keys().unwrap_or_default();
        let grips: Vec<&str> = keys
            .iter()
            .flat_map(|k| k.subkeys.iter())
            .filter(|s| enc_to.contains(&s.keyid.to_ascii_uppercase()))
            .map(|s| s.keygrip.as_str())
            .collect();
        let ks = keystore::Keystore::new();
        for grip in grips {
            let pass = match ks.passphrase(grip) {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                // No Secret Service here (cron, a bare ssh session): the
                // first error says what to do.
                Err(_) => break,
            };
            let r = self.run(
                &[
                    "--yes",
                    "--pinentry-mode",
                    "loopback",
                    "--passphrase-fd",
                    "0",
                    "--decrypt",
                    "--",
                    &path,
                ],
                Some(&pass),
            )?;
            if r.ok {
                return Ok(r.stdout);
            }
            if r.has_status("BAD_PASSPHRASE") || r.messages.contains("Bad passphrase") {
                return Err(Error::new(format!(
                    "decrypting {} failed: the passphrase stored in the Secret Service for keygrip {grip} does not open the key",
                    file.display()
                ))
                .hint(format!("{}   # stores the right passphrase", fix::SETUP))
                .hint(fix::DOCTOR));
            }
            return Err(self.diagnose(file, &r));
        }
        Err(first)
    }

    /// Decrypt; with `ask` false the agent may only use a cached passphrase.
    pub fn decrypt_with(&self, file: &Path, ask: bool) -> Result<Zeroizing<Vec<u8>>> {
        let path = file.to_string_lossy();
        // No --quiet: it also hides the `ERROR pkdecrypt_failed` status
        // line the diagnosis reads.
        let mut args = vec!["--yes"];
        if !ask {
            args.extend(["--pinentry-mode", "error"]);
        }
        args.extend(["--decrypt", "--", &path]);
        let r = self.run(&args, None)?;
        if r.ok {
            return Ok(r.stdout);
        }
        Err(self.diagnose(file, &r))
    }

    /// A hint that encrypts to this keyring's own key: `command(key id)`
    /// with the first secret key here, or `setup` (which makes one and
    /// prints that command) when there is none.
    pub fn to_own_key(&self, command: impl Fn(&str) -> String) -> String {
        match self.secret_keys().ok().and_then(|k| k.into_iter().next()) {
            Some(k) => command(&k.keyid),
            None => format!(
                "{}   # makes your key, then prints the command to run",
                fix::SETUP
            ),
        }
    }

    /// Turn a failed decryption into a message and its fixes.
    pub fn diagnose(&self, file: &Path, r: &Run) -> Error {
        let name = file.display();
        if r.has_status("NODATA") || r.messages.contains("no valid OpenPGP data") {
            return Error::new(format!(
                "decrypting {name} failed: it is not an OpenPGP file"
            ))
            .hint(self.to_own_key(|id| {
                format!(
                    "ov secrets gpg encrypt -r {id} -i .env -o {name}   # encrypt a plaintext .env"
                )
            }));
        }
        let enc_to: Vec<String> = r
            .status_args("ENC_TO")
            .into_iter()
            .filter_map(|a| a.first().cloned())
            .collect();
        let no_seckey: Vec<String> = r
            .status_args("NO_SECKEY")
            .into_iter()
            .filter_map(|a| a.first().cloned())
            .collect();
        if !no_seckey.is_empty() && no_seckey.len() >= enc_to.len() {
            return Error::new(format!(
                "decrypting {name} failed: gpg: No secret key — it is encrypted to {}, and this keyring holds none of them",
                no_seckey.join(", ")
            ))
            .hint(fix::import_key(&no_seckey[0]))
            .hint(fix::import_from_keystore(&no_seckey[0]))
            .hint(self.to_own_key(|id| {
                format!("ov secrets gpg add-recipient {id} -f {name}   # run by someone who can decrypt it")
            }));
        }
        let text = &r.messages;
        if needs_pinentry(r) {
            let mut e = Error::new(format!(
                "decrypting {name} failed: the key's passphrase is not cached in gpg-agent and no pinentry can ask for it{}",
                if can_prompt() { "" } else { " (no terminal)" }
            ))
            .with_problem(crate::problem::NOT_CACHED);
            e = e
                .hint(format!(
                    "ov secrets gpg show -f {name}   # on a terminal, to enter the passphrase once"
                ))
                .hint(format!(
                    "{}   # stores the passphrase where pinentry finds it",
                    fix::SETUP
                ));
            return e;
        }
        if r.has_status("BAD_PASSPHRASE") {
            return Error::new(format!("decrypting {name} failed: bad passphrase"))
                .hint(fix::DOCTOR);
        }
        if text.contains("connection to agent") || text.contains("can't connect to the agent") {
            return Error::new(format!(
                "decrypting {name} failed: gpg-agent is not running"
            ))
            .hint(fix::AGENT)
            .hint(fix::SETUP);
        }
        let detail = text
            .trim()
            .lines()
            .last()
            .unwrap_or("gpg failed")
            .to_owned();
        Error::new(format!("decrypting {name} failed: {detail}")).hint(fix::DOCTOR)
    }

    /// The key ids a file is encrypted to (long ids, as gpg prints them).
    pub fn recipients(&self, file: &Path) -> Result<Vec<String>> {
        let path = file.to_string_lossy();
        let r = self.run(
            &[
                "--list-only",
                "--pinentry-mode",
                "cancel",
                "--decrypt",
                "--",
                &path,
            ],
            None,
        )?;
        if r.has_status("NODATA") || r.messages.contains("no valid OpenPGP data") {
            return Err(self.diagnose(file, &r));
        }
        let mut ids = Vec::new();
        for a in r.status_args("ENC_TO") {
            if let Some(id) = a.first()
                && !ids.contains(id)
            {
                ids.push(id.clone());
            }
        }
        if ids.is_empty() {
            return Err(Error::new(format!(
                "{} names no recipient (symmetric encryption or hidden recipients); ov cannot re-encrypt it to the same people",
                file.display()
            ))
            .hint(self.to_own_key(|id| {
                format!(
                    "ov secrets gpg decrypt -i {0} | ov secrets gpg encrypt -r {id} -i /dev/stdin -o {0}",
                    file.display()
                )
            })));
        }
        Ok(ids)
    }

    /// Encrypt `plaintext` to `recipients`. Unknown recipients are an error
    /// that names them.
    pub fn encrypt(&self, plaintext: &[u8], recipients: &[String]) -> Result<Vec<u8>> {
        if recipients.is_empty() {
            return Err(Error::new("no recipient given")
                .hint(self.to_own_key(|id| format!("ov secrets gpg encrypt -r {id}"))));
        }
        for r in recipients {
            self.public_key(r)?;
        }
        // The user named these keys: they are trusted for this file whatever
        // their web-of-trust validity (`gpg --batch` would otherwise refuse
        // an unsigned colleague's key).
        let mut args = vec!["--yes", "--trust-model", "always", "--encrypt"];
        for r in recipients {
            args.push("--recipient");
            args.push(r);
        }
        args.extend(["--output", "-"]);
        let r = self.run(&args, Some(plaintext))?;
        if !r.ok {
            let detail = r.messages.trim().lines().last().unwrap_or("").to_owned();
            return Err(Error::new(format!("gpg could not encrypt: {detail}")).hint(fix::DOCTOR));
        }
        Ok(r.stdout.to_vec())
    }
}

/// Did gpg fail for want of a pinentry (passphrase not cached, nobody to
/// ask, or the asking timed out or was cancelled)?
fn needs_pinentry(r: &Run) -> bool {
    let text = &r.messages;
    r.has_status("PINENTRY_LAUNCHED") && text.contains("Timeout")
        || text.contains("No pinentry")
        || text.contains("Operation cancelled")
        || text.contains("Inappropriate ioctl")
        || r.status_args("ERROR").iter().any(|a| {
            // gpg-error codes: 85 no pinentry, 99 cancelled, 62 timeout.
            a.get(1)
                .and_then(|c| c.parse::<u32>().ok())
                .is_some_and(|c| matches!(c & 0xffff, 85 | 99 | 62))
        })
}
