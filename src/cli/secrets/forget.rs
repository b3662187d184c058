//! `ov secrets forget BACKEND`

use clap::Args;

use crate::cli::Engine;
use crate::error::Result;

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The backend, as `ov secrets path --all` names it
    backend: String,
}

pub(super) fn forget(engine: &Engine, a: &ForgetArgs) -> Result<i32> {
    let held = crate::held::Held::new(&engine.paths.data_dir);
    if held.forget(&a.backend) {
        eprintln!(
            "forgot which services {} held; sealing, run --all and export no longer wait for it",
            a.backend
        );
    } else {
        eprintln!(
            "ov has no record of entries in {}",
            a.backend.escape_debug()
        );
    }
    Ok(0)
}
