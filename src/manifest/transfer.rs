//! `export` / `import`: a manifest's secrets as JSON, their metadata only
//! or with their values.

use std::collections::BTreeMap;
use std::path::Path;

use ov_plugin_api::Secret;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{OvError, Result};
use crate::store::Store;

use super::Manifest;
use super::resolve::status;

const FORMAT: &str = "ov-manifest-export";

#[derive(Debug, Serialize, Deserialize)]
pub struct Export {
    pub format: String,
    pub version: u32,
    pub service: String,
    pub secrets: BTreeMap<String, Exported>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Exported {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub stacks: Vec<String>,
    #[serde(default = "yes")]
    pub required: bool,
    /// `SERVICE/KEY` in the store.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Secret>,
    /// An htpasswd secret's password: what `import` stores (the line is
    /// made again from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
}

fn yes() -> bool {
    true
}

/// The export of `m`, with values when `with_values`.
pub fn export(store: &Store, m: &Manifest, with_values: bool) -> Result<Export> {
    let mut secrets = BTreeMap::new();
    for d in &m.secrets {
        let (st, value) = status(store, d)?;
        let password = match (with_values, d.password_entry()) {
            (true, Some(e)) => store.get(&e)?.ok().map(|(v, _)| v),
            _ => None,
        };
        secrets.insert(
            d.name.clone(),
            Exported {
                kind: d.kind.to_string(),
                stacks: d.stacks.clone(),
                required: d.required,
                key: d.entry.to_string(),
                purpose: d.purpose.clone(),
                status: Some(st.label().to_owned()),
                value: value.filter(|_| with_values),
                password,
            },
        );
    }
    Ok(Export {
        format: FORMAT.to_owned(),
        version: 1,
        service: m.service.clone(),
        secrets,
    })
}

/// Write `e` to `path`: 0600 when it holds values, never over an existing
/// file unless `force`; atomically, under the file's lock.
pub fn write(path: &Path, e: &Export, with_values: bool, force: bool) -> Result<()> {
    let mut text = Zeroizing::new(
        serde_json::to_string_pretty(e)
            .map_err(|err| OvError::new(format!("cannot encode the export: {err}")))?,
    );
    text.push('\n');
    ov_plugin_support::with_lock(path, || -> Result<()> {
        if !force && std::fs::symlink_metadata(path).is_ok() {
            return Err(
                OvError::new(format!("{} exists; nothing was written", path.display())).hint(
                    format!(
                        "ov manifest export {}{} --force   # replace it",
                        ov_plugin_support::shell_quote(path),
                        if with_values { " --with-values" } else { "" }
                    ),
                ),
            );
        }
        let mode = if with_values { 0o600 } else { 0o644 };
        ov_plugin_support::write_atomic(path, text.as_bytes(), Some(mode))
            .map_err(|err| OvError::new(format!("cannot write {}: {err}", path.display())))
    })
}

/// Read an export, with or without values.
pub fn read(path: &Path) -> Result<Export> {
    let bytes = Zeroizing::new(
        ov_plugin_support::read_regular(path)
            .map_err(|e| OvError::new(format!("cannot read {}: {e}", path.display())))?,
    );
    // serde_json's message can quote the text it stumbled on, which may
    // be a value: say only where and what kind of error.
    let e: Export = serde_json::from_slice(&bytes).map_err(|err| {
        let kind = match err.classify() {
            serde_json::error::Category::Io => "a read error",
            serde_json::error::Category::Syntax => "not valid JSON",
            serde_json::error::Category::Data => "not the shape of an export",
            serde_json::error::Category::Eof => "cut short",
        };
        OvError::new(format!(
            "{}:{}:{}: not an ov manifest export ({kind})",
            path.display(),
            err.line(),
            err.column()
        ))
        .hint(format!(
            "ov manifest export {}   # what one looks like",
            ov_plugin_support::shell_quote(path)
        ))
    })?;
    if e.format != FORMAT {
        return Err(OvError::new(format!(
            "{}: not an ov manifest export (format {:?})",
            path.display(),
            e.format
        )));
    }
    Ok(e)
}
