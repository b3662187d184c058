//! `ov secrets which S K`

use clap::Args;

use serde::Serialize;

use crate::cli::{Engine, outln, print_json};
use crate::env_backend::variable_name;
use crate::error::{EXIT_ERROR, Result};

use super::*;

#[derive(Debug, Args)]
pub struct WhichArgs {
    #[command(flatten)]
    entry: EntryArgs,
    /// Print JSON for scripts
    #[arg(long)]
    json: bool,
}

pub(super) fn which(engine: &Engine, a: &WhichArgs) -> Result<i32> {
    let entry = entry_of(&a.entry)?;
    match engine.store.get(&entry)? {
        Ok((_, mut source)) => {
            engine.store.locate(&mut source);
            if a.json {
                print_json(&source)?;
            } else {
                match &source.location {
                    Some(loc) => outln!("{}\t{loc}", source.backend),
                    None => outln!("{}", source.backend),
                }
            }
            Ok(0)
        }
        Err(miss) => {
            if a.json {
                #[derive(Serialize)]
                struct NotFound<'a> {
                    backend: Option<&'a str>,
                    locked: Vec<&'a str>,
                    unavailable: Vec<&'a str>,
                }
                print_json(&NotFound {
                    backend: None,
                    locked: miss.locked.iter().map(|(n, _)| n.as_str()).collect(),
                    unavailable: miss.unavailable.iter().map(|(n, _)| n.as_str()).collect(),
                })?;
                return Ok(EXIT_ERROR);
            }
            let searched: Vec<String> = engine
                .store
                .chain()
                .iter()
                .map(|b| match b.desc.name.as_str() {
                    "env" => format!("env (${})", variable_name(&entry)),
                    n if miss.unavailable.iter().any(|(u, _)| u == n) => {
                        format!("{n} (unavailable)")
                    }
                    n => n.to_owned(),
                })
                .collect();
            let mut e = not_found(&entry, &miss);
            e.message
                .push_str(&format!("; searched {}", searched.join(", ")));
            Err(e)
        }
    }
}
