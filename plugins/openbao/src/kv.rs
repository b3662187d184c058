//! The KV version 2 secrets engine: one secret per service, one field per
//! key. `service` `myapp/prod`, key `DB_PASSWORD` is the field
//! `DB_PASSWORD` of `<mount>/data/myapp/prod`.

use std::collections::BTreeMap;

use ov_plugin_api::zeroize::Zeroizing;
use ov_plugin_api::{BackendError, EntryRef, ErrorKind, Secret};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::Session;
use crate::config::check_path;
use crate::http::{Method, encode_path};

/// One field of a secret: text, or any other JSON value another client
/// wrote (kept as it is on a write of a neighbouring field).
pub(crate) enum Field {
    Text(Secret),
    Json(Box<RawValue>),
}

impl Field {
    /// The value as `ov` hands it out: text as it is, other JSON as JSON.
    pub fn into_secret(self) -> Secret {
        match self {
            Field::Text(s) => s,
            Field::Json(raw) => Secret::from(raw.get()),
        }
    }
}

impl Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Text(t) => t.serialize(s),
            Field::Json(raw) => raw.serialize(s),
        }
    }
}

pub(crate) type Fields = BTreeMap<String, Field>;

/// A secret's fields at one version.
pub(crate) struct Version {
    pub fields: Fields,
    pub version: u64,
}

/// The key as given: a field name, and a version after a final `@N`.
pub(crate) fn split_key(key: &str) -> (&str, Option<u64>) {
    if let Some((field, v)) = key.rsplit_once('@')
        && !field.is_empty()
        && !v.is_empty()
        && v.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = v.parse()
    {
        return (field, Some(n));
    }
    (key, None)
}

fn check_entry(entry: &EntryRef) -> Result<(), BackendError> {
    check_path("service", &entry.service)?;
    if entry.key.is_empty() || entry.key.chars().any(char::is_control) {
        return Err(BackendError::of(
            ErrorKind::InvalidInput,
            format!("the key {:?} cannot be an OpenBao field name", entry.key),
        ));
    }
    Ok(())
}

impl Session {
    fn data_path(&self, service: &str) -> String {
        format!(
            "{}/data/{}",
            encode_path(&self.server.config.mount),
            encode_path(service)
        )
    }

    fn metadata_path(&self, folder: &str) -> String {
        let mount = encode_path(&self.server.config.mount);
        if folder.is_empty() {
            format!("{mount}/metadata/")
        } else {
            format!("{mount}/metadata/{}/", encode_path(folder))
        }
    }

    /// The secret at `service` (a version, or the latest); `None` when
    /// there is none, or that version was deleted or destroyed.
    pub fn read(
        &self,
        service: &str,
        version: Option<u64>,
    ) -> Result<Option<Version>, BackendError> {
        #[derive(Deserialize)]
        struct Reply<'a> {
            #[serde(borrow)]
            data: Option<Inner<'a>>,
        }
        #[derive(Deserialize)]
        struct Inner<'a> {
            #[serde(borrow)]
            data: Option<BTreeMap<String, &'a RawValue>>,
            metadata: Option<Meta>,
        }
        #[derive(Deserialize)]
        struct Meta {
            #[serde(default)]
            version: u64,
        }
        let mut path = self.data_path(service);
        if let Some(v) = version {
            path.push_str(&format!("?version={v}"));
        }
        let reply = self.call(Method::Get, &path, None)?;
        if reply.status == 404 {
            self.check_mount()?;
            return Ok(None);
        }
        let parsed: Reply = reply.json("a KV read")?;
        let Some(inner) = parsed.data else {
            return Ok(None);
        };
        let Some(data) = inner.data else {
            return Ok(None);
        };
        let mut fields = Fields::new();
        for (k, raw) in data {
            let field =
                if raw.get().starts_with('"') {
                    Field::Text(serde_json::from_str(raw.get()).map_err(|e| {
                        BackendError::of(ErrorKind::Corrupt, format!("field {k}: {e}"))
                    })?)
                } else {
                    Field::Json(raw.to_owned())
                };
            fields.insert(k, field);
        }
        Ok(Some(Version {
            fields,
            version: inner.metadata.map_or(0, |m| m.version),
        }))
    }

    /// Write `fields` as the next version, if the latest is still `cas`
    /// (0: no secret yet). `Ok(false)`: someone wrote in between.
    fn write(&self, service: &str, fields: &Fields, cas: u64) -> Result<bool, BackendError> {
        #[derive(Serialize)]
        struct Options {
            cas: u64,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            options: Options,
            data: &'a Fields,
        }
        let body = Zeroizing::new(
            serde_json::to_vec(&Body {
                options: Options { cas },
                data: fields,
            })
            .map_err(|e| BackendError::of(ErrorKind::Internal, e.to_string()))?,
        );
        let path = self.data_path(service);
        let reply = self.call(Method::Post, &path, Some(&body))?;
        match reply.status {
            200 | 204 => Ok(true),
            // The check-and-set did not match: a concurrent write.
            400 if reply.errors().contains("check-and-set") => Ok(false),
            413 => Err(BackendError::of(
                ErrorKind::InvalidInput,
                format!(
                    "OpenBao refused to store {service}: the request is larger than the server allows ({})",
                    reply.errors()
                ),
            )
            .with_problem("too_large")),
            s => Err(crate::unexpected(s, &reply, &format!("writing {path}"))),
        }
    }

    /// Change the latest version's fields with `change`, as a new
    /// version, trying again when another writer got in between.
    fn modify<T>(
        &self,
        service: &str,
        change: impl Fn(&mut Fields) -> (T, bool),
    ) -> Result<T, BackendError> {
        self.check_mount()?;
        for _ in 0..5 {
            let current = self.read(service, None)?;
            let (version, mut fields) = match current {
                Some(v) => (v.version, v.fields),
                None => (self.latest_version(service)?, Fields::new()),
            };
            let (out, changed) = change(&mut fields);
            if !changed {
                return Ok(out);
            }
            let done = if fields.is_empty() {
                self.delete_latest(service)?;
                true
            } else {
                self.write(service, &fields, version)?
            };
            if done {
                return Ok(out);
            }
        }
        Err(BackendError::of(
            ErrorKind::Unavailable,
            format!("{service} kept changing on the server while ov wrote it"),
        )
        .transient())
    }

    /// The current version number, also when the latest was deleted
    /// (the check-and-set of the next write needs it); 0 when none.
    fn latest_version(&self, service: &str) -> Result<u64, BackendError> {
        #[derive(Deserialize)]
        struct Reply {
            data: Meta,
        }
        #[derive(Deserialize)]
        struct Meta {
            #[serde(default)]
            current_version: u64,
        }
        let path = format!(
            "{}/metadata/{}",
            encode_path(&self.server.config.mount),
            encode_path(service)
        );
        let reply = self.call(Method::Get, &path, None)?;
        match reply.status {
            404 => Ok(0),
            200 => Ok(reply
                .json::<Reply>("a KV metadata read")?
                .data
                .current_version),
            s => Err(crate::unexpected(s, &reply, &format!("reading {path}"))),
        }
    }

    /// Soft-delete the latest version: `bao kv undelete` brings it back.
    fn delete_latest(&self, service: &str) -> Result<(), BackendError> {
        let path = self.data_path(service);
        let reply = self.call(Method::Delete, &path, None)?;
        match reply.status {
            200 | 204 | 404 => Ok(()),
            s => Err(crate::unexpected(s, &reply, &format!("deleting {path}"))),
        }
    }

    pub fn get(&self, entry: &EntryRef) -> Result<Option<Secret>, BackendError> {
        check_entry(entry)?;
        let (field, version) = split_key(&entry.key);
        Ok(self
            .read(&entry.service, version)?
            .and_then(|mut v| v.fields.remove(field))
            .map(Field::into_secret))
    }

    pub fn set(&self, entry: &EntryRef, value: &Secret) -> Result<(), BackendError> {
        check_entry(entry)?;
        if let (_, Some(_)) = split_key(&entry.key) {
            return Err(BackendError::of(
                ErrorKind::InvalidInput,
                format!(
                    "the key {} names a version (`@N` reads one); OpenBao writes only the next version",
                    entry.key
                ),
            ));
        }
        self.modify(&entry.service, |fields| {
            fields.insert(entry.key.clone(), Field::Text(value.clone()));
            ((), true)
        })
    }

    pub fn delete(&self, entry: &EntryRef) -> Result<bool, BackendError> {
        check_entry(entry)?;
        self.modify(&entry.service, |fields| {
            let removed = fields.remove(&entry.key).is_some();
            (removed, removed)
        })
    }

    /// The secrets' paths below `folder` (`""`: the whole mount).
    fn paths_below(&self, folder: &str, out: &mut Vec<String>) -> Result<(), BackendError> {
        #[derive(Deserialize)]
        struct Reply {
            data: Keys,
        }
        #[derive(Deserialize)]
        struct Keys {
            #[serde(default)]
            keys: Vec<String>,
        }
        let path = format!("{}?list=true", self.metadata_path(folder));
        let reply = self.call(Method::Get, &path, None)?;
        let keys = match reply.status {
            404 => return Ok(()),
            200 => reply.json::<Reply>("a KV listing")?.data.keys,
            s => return Err(crate::unexpected(s, &reply, &format!("listing {path}"))),
        };
        for key in keys {
            let full = if folder.is_empty() {
                key.clone()
            } else {
                format!("{folder}/{key}")
            };
            match full.strip_suffix('/') {
                Some(sub) => self.paths_below(sub, out)?,
                None => out.push(full),
            }
        }
        Ok(())
    }

    pub fn list(&self, service: Option<&str>) -> Result<Vec<EntryRef>, BackendError> {
        self.check_mount()?;
        let mut paths = Vec::new();
        match service
            .map(|s| s.trim_matches('/'))
            .filter(|s| !s.is_empty())
        {
            Some(s) => {
                check_path("service", s)?;
                paths.push(s.to_owned());
                self.paths_below(s, &mut paths)?;
            }
            None => self.paths_below("", &mut paths)?,
        }
        let mut entries = Vec::new();
        for path in paths {
            if let Some(v) = self.read(&path, None)? {
                entries.extend(v.fields.into_keys().map(|k| EntryRef::new(path.clone(), k)));
            }
        }
        entries.sort();
        Ok(entries)
    }

    /// Is the mount a KV version 2 engine? Asked once per process.
    pub fn check_mount(&self) -> Result<(), BackendError> {
        if let Some(known) = self.mount_ok.get() {
            return known.clone();
        }
        let result = self.mount_kind();
        let _ = self.mount_ok.set(result.clone());
        result
    }

    fn mount_kind(&self) -> Result<(), BackendError> {
        #[derive(Deserialize)]
        struct Reply {
            data: Mount,
        }
        #[derive(Deserialize)]
        struct Mount {
            #[serde(rename = "type", default)]
            kind: String,
            #[serde(default)]
            options: Option<BTreeMap<String, String>>,
        }
        let mount = &self.server.config.mount;
        let path = format!("sys/internal/ui/mounts/{}", encode_path(mount));
        // Not through `call`: a 403 here is no failure (below).
        let reply = self
            .server
            .call(Method::Get, &path, Some(&self.token.secret), None)?;
        let hint = format!("bao secrets enable -path={mount} kv-v2");
        match reply.status {
            200 => {}
            400 | 404 => {
                return Err(BackendError::new(format!(
                    "there is no secrets engine mounted at {mount}/ on {}",
                    self.server.config.target()
                ))
                .with_problem("no_mount")
                .hint(hint));
            }
            // A policy that hides the mount's description: the KV
            // requests themselves will say what they may do.
            403 => return Ok(()),
            s => return Err(crate::unexpected(s, &reply, &format!("reading {path}"))),
        }
        let m = reply.json::<Reply>("a mount description")?.data;
        let version = m
            .options
            .as_ref()
            .and_then(|o| o.get("version"))
            .map(String::as_str);
        if m.kind != "kv" {
            return Err(BackendError::new(format!(
                "{mount}/ is a {} secrets engine, not KV version 2",
                m.kind
            ))
            .with_problem("not_kv2")
            .hint("ov settings set openbao.mount MOUNT   # a KV version 2 mount"));
        }
        if version != Some("2") {
            return Err(BackendError::new(format!(
                "{mount}/ is a KV version 1 mount; ov stores secrets in KV version 2 (versions, check-and-set)"
            ))
            .with_problem("kv_v1")
            .hint(format!("bao kv enable-versioning {mount}/   # upgrades the mount in place"))
            .hint("ov settings set openbao.mount MOUNT   # or use another, KV version 2, mount"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::split_key;

    #[test]
    fn a_final_at_number_is_a_version() {
        assert_eq!(split_key("password@3"), ("password", Some(3)));
        assert_eq!(split_key("user@host"), ("user@host", None));
        assert_eq!(split_key("@3"), ("@3", None));
        assert_eq!(split_key("a@"), ("a@", None));
        assert_eq!(split_key("a@b@12"), ("a@b", Some(12)));
    }
}
