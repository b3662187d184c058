//! `ov secrets export [--format F]`

use clap::{Args, ValueEnum};
use std::collections::BTreeMap;

use ov_plugin_api::Secret;
use zeroize::Zeroizing;

use crate::cli::{Engine, out, warn};
use crate::error::{OvError, Result};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    format: Format,
}

pub(super) fn export(engine: &Engine, a: &ExportArgs) -> Result<i32> {
    // An export is a backup: one that leaves out a locked collection and
    // still exits 0 is found out only at restore time.
    let entries = engine
        .store
        .listing(None)?
        .complete("export every entry")
        .map_err(|e| e.hint("ov secrets export   # again, once it is readable"))?;
    let mut tree: BTreeMap<String, BTreeMap<String, Secret>> = BTreeMap::new();
    for (entry, source) in &entries {
        if let Some(v) = engine.store.get_in(source, entry)? {
            tree.entry(entry.service.clone())
                .or_default()
                .insert(entry.key.clone(), v);
        }
    }
    warn("the export below holds your secrets in plaintext; keep it out of shared places");
    let nested: BTreeMap<&str, BTreeMap<&str, &str>> = tree
        .iter()
        .map(|(s, keys)| {
            (
                s.as_str(),
                keys.iter().map(|(k, v)| (k.as_str(), v.expose())).collect(),
            )
        })
        .collect();
    let mut out = Zeroizing::new(String::new());
    match a.format {
        Format::Json => {
            let text = Zeroizing::new(
                serde_json::to_string_pretty(&nested)
                    .map_err(|e| OvError::new(format!("cannot encode JSON: {e}")))?,
            );
            out.push_str(&text);
            out.push('\n');
        }
        Format::Yaml => {
            out.push_str(&Zeroizing::new(crate::import::backup_yaml(&nested)?));
        }
    }
    out!("{}", out.as_str());
    Ok(0)
}
