//! `ov secrets init`, `unlock` and `lock`: through the backend that
//! declares them (the engine's `lifecycle`).

use clap::Args;

use crate::cli::Engine;
use crate::error::Result;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to create the database
    path: Option<std::path::PathBuf>,
    /// Replace an existing database (its secrets are lost)
    #[arg(long)]
    force: bool,
    /// Also lock the database with this key file (created with 32 random bytes if missing)
    #[arg(long, value_name = "FILE")]
    key_file: Option<std::path::PathBuf>,
    /// Use the key file alone, with no password
    #[arg(long, requires = "key_file")]
    no_password: bool,
    /// Make the new database the active one even though the current one
    /// holds entries (they stay in the old file, no longer read)
    #[arg(long)]
    switch: bool,
}

pub(super) fn init(engine: &Engine, a: InitArgs) -> Result<i32> {
    let req = crate::lifecycle::Init {
        location: a.path,
        force: a.force,
        key_file: a.key_file,
        no_password: a.no_password,
        switch: a.switch,
    };
    for line in crate::lifecycle::init(&engine.paths, &engine.specs, &engine.store, req)? {
        eprintln!("{line}");
    }
    Ok(0)
}

pub(super) fn unlock(engine: &Engine) -> Result<i32> {
    eprintln!("{}", crate::lifecycle::unlock(&engine.store)?);
    Ok(0)
}

pub(super) fn lock(engine: &Engine) -> Result<i32> {
    for line in crate::lifecycle::lock(&engine.store) {
        eprintln!("{line}");
    }
    Ok(0)
}
