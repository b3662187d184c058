//! `ov secrets path [--all]`

use clap::Args;

use crate::cli::{Engine, outln};
use crate::error::Result;

#[derive(Debug, Args)]
pub struct PathArgs {
    /// Print every backend's location instead
    #[arg(long)]
    all: bool,
}

pub(super) fn path(engine: &Engine, a: &PathArgs) -> Result<i32> {
    if a.all {
        for (name, state) in engine.store.locations() {
            let loc = match state {
                ov_plugin_api::Availability::Available { location } => {
                    location.unwrap_or_else(|| "-".into())
                }
                ov_plugin_api::Availability::Locked { reason } => format!("locked: {reason}"),
                ov_plugin_api::Availability::Unavailable { reason, .. } => {
                    format!("unavailable: {reason}")
                }
            };
            outln!("{name}\t{loc}");
        }
        return Ok(0);
    }
    outln!("{}", engine.store.store_path()?);
    Ok(0)
}
