//! `ov secrets list [SERVICE] [--strict]`

use clap::Args;

use serde::Serialize;

use crate::cli::{Engine, outln, print_json};
use crate::error::Result;

use super::*;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only entries of this service or below it
    #[arg(conflicts_with = "app")]
    service: Option<String>,
    #[command(flatten)]
    app: AppFlags,
    /// Print JSON for scripts
    #[arg(long)]
    json: bool,
    /// Fail (exit 1, nothing listed) when part of the store could not be
    /// seen, such as a locked keyring collection
    #[arg(long)]
    strict: bool,
}

pub(super) fn list(engine: &Engine, a: ListArgs) -> Result<i32> {
    let app_service = a.app.service()?;
    let service = app_service.as_deref().or(a.service.as_deref());
    let listing = engine.store.listing(service)?;
    super::super::notes(&listing.notes);
    let mut entries = if a.strict {
        listing.complete("list every entry (--strict)")?
    } else {
        // What could not be seen is said, and the listing stands (exit 0).
        super::super::notes(&listing.unseen);
        listing.entries
    };
    if let Some(svc) = &app_service {
        // Exactly the app's secrets, by name.
        entries.retain(|e, _| &e.service == svc);
        if !a.json {
            for e in entries.keys() {
                outln!("{}", e.key);
            }
            return Ok(0);
        }
    }
    if a.json {
        #[derive(Serialize)]
        struct Row<'a> {
            service: &'a str,
            key: &'a str,
            source: &'a str,
        }
        let rows: Vec<Row> = entries
            .iter()
            .map(|(e, src)| Row {
                service: &e.service,
                key: &e.key,
                source: src,
            })
            .collect();
        print_json(&rows)?;
    } else {
        for e in entries.keys() {
            outln!("{e}");
        }
    }
    Ok(0)
}
